//! End-to-end tests of the `threadmig` binary: one test binary, one module per command.

mod apply;
mod backfill;
mod cli;
mod demo;
mod extract_verify;
mod gates_status;
mod matrix;
mod migrate;
mod pipeline;
mod scan;
mod schema;
mod schema_plan;
mod serve;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run of the binary produced.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `threadmig` with `args` in `cwd` (the workspace root when `None`).
pub fn threadmig(args: &[&str], cwd: Option<&Path>) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .args(args)
        .current_dir(cwd.map(Path::to_path_buf).unwrap_or_else(workspace_root))
        .env_remove("CLERK_SECRET_KEY")
        .output()
        .expect("running threadmig");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The schema fixtures of the schema crate.
pub fn fixture(relative: &str) -> String {
    workspace_root()
        .join("crates/instant-schema/tests/fixtures")
        .join(relative)
        .to_string_lossy()
        .into_owned()
}

/// A benchmark setting from the environment, else its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A fresh, empty directory for one test.
/// Copies a folder and everything under it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("threadmig-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces the workspace path in output so expectations don't depend on the checkout.
pub fn redact(text: &str) -> String {
    text.replace(&*workspace_root().to_string_lossy(), "<root>")
}
