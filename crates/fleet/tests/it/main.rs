//! Integration tests of the fleet crate, one module per capability.
