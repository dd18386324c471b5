//! `threadmig env check`: is what the next command needs available? The Clerk secret for the
//! real fleet (presence only: it is never printed, and no dotenv file is read, unlike the old
//! `verify_env`, which swept `.env*` files from six ancestor directories), or an embedded
//! workspace that opens and lists its organisations.

use std::path::Path;

use instant_local::directory::LocalDirectory;
use instant_local::engine::LocalEngine;
use org_directory::clerk::SECRET_KEY_VARIABLE;
use org_directory::OrgDirectory;
use serde_json::json;

use crate::cli::EnvCheckArgs;
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: EnvCheckArgs, json: bool) -> anyhow::Result<Outcome> {
    let (ok, detail) = match &args.workspace {
        Some(dir) => check_workspace(dir),
        None => check_clerk_secret(),
    };
    if json {
        print_json(&json!({
            "ok": ok,
            "mode": if args.workspace.is_some() { "embedded" } else { "clerk" },
            "required": if args.workspace.is_some() { json!([]) } else { json!([SECRET_KEY_VARIABLE]) },
            "detail": detail,
            "timestamp": now_rfc3339(),
        }))?;
    } else if ok {
        println!("ok: {detail}");
    } else {
        eprintln!("missing: {detail}");
    }
    Ok(if ok { Outcome::Ok } else { Outcome::Findings })
}

fn check_clerk_secret() -> (bool, String) {
    let present = std::env::var(SECRET_KEY_VARIABLE).is_ok_and(|value| !value.trim().is_empty());
    if present {
        (
            true,
            format!("{SECRET_KEY_VARIABLE} is set (its validity is checked by the first directory call)"),
        )
    } else {
        (
            false,
            format!(
                "{SECRET_KEY_VARIABLE} is not set or empty; export it, or use an embedded \
                 workspace with --workspace DIR"
            ),
        )
    }
}

fn check_workspace(dir: &Path) -> (bool, String) {
    if !dir.is_dir() {
        return (
            false,
            format!(
                "workspace {} does not exist (create one with `threadmig gen --workspace`)",
                dir.display()
            ),
        );
    }
    let engine = match LocalEngine::open(dir) {
        Ok(engine) => engine,
        Err(error) => return (false, format!("workspace {}: {error}", dir.display())),
    };
    match LocalDirectory::new(engine.shared_store()).list_orgs() {
        Ok(orgs) => (
            true,
            format!(
                "workspace {} opens; {} organisation(s)",
                dir.display(),
                orgs.len()
            ),
        ),
        Err(error) => (false, format!("workspace {}: {error}", dir.display())),
    }
}
