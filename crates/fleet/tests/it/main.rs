//! Integration tests of the fleet crate, one module per capability.

mod diagnose;
mod matrix;
mod pipeline;
mod runbook;
mod gates;
mod ledger;
mod registry;
mod status;
mod validate;
