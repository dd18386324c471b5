//! Story -> thread migration: the legacy and target row model, streaming readers and writers,
//! and the pure transform (data-model.md §3, thread V1).
//!
//! Layering: [`model`] (row types, the contract with extract, gen, plan, apply and verify),
//! [`rules`] (the table of reported decisions), [`legacy`] (lenient typing of one raw row),
//! [`io`] (NDJSON and the old scripts' dataset file, streamed), [`transform`] (the mapping,
//! pure: rows in, rows out; no clock, no file) and [`run`] (the streaming driver that reads an
//! input, runs the transform and writes `02-transform/`). Nothing here knows HTTP.

pub mod apply;
pub mod conversation;
pub mod dates;
pub mod evidence;
pub mod extract;
pub mod gen;
pub mod io;
pub mod legacy;
pub mod model;
pub mod rehearsal;
pub mod rules;
pub mod run;
pub mod sort;
pub mod transform;
pub mod txplan;
pub mod verify;

pub use model::*;
pub use rules::{Effect, Rule};

/// The fixed UUIDv5 namespace of every id the migration derives (thread ids, part ids).
/// Never change it: derived ids must be the same in every run.
pub const MIGRATION_NS: uuid::Uuid = uuid::uuid!("4d1f8a52-6a0b-5c3e-9f27-7e0c1b2a9d64");

/// `uuidv5(MIGRATION_NS, "thread:" + contextId)`.
pub fn derived_thread_id(context_id: &uuid::Uuid) -> uuid::Uuid {
    uuid::Uuid::new_v5(&MIGRATION_NS, format!("thread:{context_id}").as_bytes())
}

/// `uuidv5(MIGRATION_NS, "part:" + key)`.
pub fn derived_part_id(key: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&MIGRATION_NS, format!("part:{key}").as_bytes())
}
