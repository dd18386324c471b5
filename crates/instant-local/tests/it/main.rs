//! Integration tests of instant-local: one test binary, one module per area.

// The port's error keeps the whole server envelope by design (see `instant-api`).
#![allow(clippy::result_large_err)]

mod http;
mod port;
mod port_over_http;
mod value_index;
