//! Integration tests of the migration crate: the transform rules on small hand-written
//! datasets, the row accounting invariant, determinism, and malformed input.

mod accounting;
mod apply;
mod conversation;
mod extract;
mod gen;
mod io_input;
mod support;
mod transform_rules;
mod txplan;
mod verify;
