mod typescript_equivalence;
