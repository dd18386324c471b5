//! `threadmig`: the command-line front of the story -> thread migration tool.
//!
//! This binary is CLI definition plus glue. Business rules live in the library crates under
//! `crates/`; this crate parses arguments, calls them, renders tables or JSON, and maps the
//! outcome to an exit code.

mod cli;
mod commands;
mod connect;
mod output;

use std::process::ExitCode;

/// What a command concluded, mapped onto the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: the command ran and found nothing that needs attention.
    Ok,
    /// Exit 1: the command ran and reports findings, or a blocked gate.
    Findings,
}

fn main() -> ExitCode {
    match run() {
        Ok(Outcome::Ok) => ExitCode::from(0),
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) => {
            eprintln!("threadmig: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<Outcome> {
    let args = match cli::parse() {
        Ok(args) => args,
        Err(err) => {
            // clap prints help and version on stdout and exits 0; usage errors exit 2.
            err.exit();
        }
    };
    commands::dispatch(args)
}
