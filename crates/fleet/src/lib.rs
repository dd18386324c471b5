//! Fleet planning and gated execution across every organisation: the org matrix, diagnostics,
//! runbook, hot-deploy gates, migration status, scenario registry and the run ledger. Written
//! against the `InstantApi` and `OrgDirectory` ports only; no module here builds an HTTP request.

pub mod diagnose;
pub mod gates;
pub mod issues;
pub mod ledger;
pub mod matrix;
pub mod migrate;
pub mod pipeline;
pub mod registry;
pub mod runbook;
pub mod status;
pub mod timeline;
pub mod validate;
