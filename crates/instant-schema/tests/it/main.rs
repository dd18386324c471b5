mod loaders_never_panic;
mod typescript_equivalence;
