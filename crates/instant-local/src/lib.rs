//! The embedded InstantDB-compatible engine: SQLite storage, the `InstantApi` port in-process,
//! and (in `server`) the same API over HTTP for `threadmig serve`.
//!
//! It behaves like InstantDB wherever threadmig and its users can observe it: routes, request
//! and response shapes, error envelopes and their exact texts. The reference is the InstantDB
//! server; where the engine simplifies (jobs run synchronously, no permissions under
//! impersonation), the module that does so says so.

// Engine functions return the port's `ApiError`, which keeps the whole server envelope by
// design (see `instant-api`).
#![allow(clippy::result_large_err)]

mod dates;
pub mod directory;
pub mod engine;
pub mod query;
pub mod schema_ops;
pub mod server;
pub mod store;
pub mod transact;

pub use store::{Store, StoreError};
