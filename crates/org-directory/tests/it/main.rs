//! Integration tests of the org directory.

mod clerk;
mod clerk_double;
