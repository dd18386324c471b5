//! Integration tests of the HTTP client against a scripted loopback server: what is retried,
//! what is not, how long it waits, the limits, and what is logged.

mod client;
mod server;
