//! Integration tests of the fleet crate, one module per capability.

mod diagnose;
mod gates;
mod ledger;
mod matrix;
mod pipeline;
mod registry;
mod runbook;
mod status;
mod validate;
