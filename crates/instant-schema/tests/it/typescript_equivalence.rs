//! The native TypeScript evaluator must serialise every schema file exactly like the real
//! `@instantdb/core` does under Node (`JSON.stringify` of the default export).
//!
//! Node is started once for all files (`tools/node/serialize-schema.mjs`, loaded through
//! `tsx`), from the workspace root. Each file's Node line is compared byte for byte with
//! `serde_json::to_string` of `instant_schema::typescript::evaluate_schema_file`.
//!
//! Files compared:
//! - every `instant.schema.ts` under `tests/fixtures/ts/` (recursively),
//! - every `.ts` file directly in `tests/fixtures/ts/default-forms/`,
//! - every `.ts` file in `schemas/` (the built-in schemas compiled into the binary).
//!
//! Requires Node and the pinned packages: run `npm ci` at the repository root. The test
//! fails (it never skips) when they are missing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Fixtures that the native loader may reject although Node serialises them. If the
/// evaluator accepts one, its output must still match Node's.
const MAY_BE_REJECTED: &[(&str, &str)] = &[(
    "crates/instant-schema/tests/fixtures/ts/duplicate-link-in-file/instant.schema.ts",
    "externalConnections",
)];

const NODE_SCRIPT: &str = "tools/node/serialize-schema.mjs";
const SETUP_HINT: &str = "run `npm ci` at the repository root (Node 20+ must be on PATH)";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    let root = crate_dir().join("..").join("..");
    root.canonicalize()
        .unwrap_or_else(|err| panic!("cannot resolve workspace root {}: {err}", root.display()))
}

/// Path relative to the workspace root, with `/` separators (used for display and as the
/// argument given to Node).
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn is_ts(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "ts")
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    entries
}

fn collect_instant_schema_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for path in sorted_entries(dir) {
        if path.is_dir() {
            collect_instant_schema_files(&path, out);
        } else if path
            .file_name()
            .is_some_and(|name| name == "instant.schema.ts")
        {
            out.push(path);
        }
    }
}

fn collect_files() -> Vec<PathBuf> {
    let fixtures = crate_dir().join("tests").join("fixtures").join("ts");
    let mut files = Vec::new();
    collect_instant_schema_files(&fixtures, &mut files);
    files.extend(
        sorted_entries(&fixtures.join("default-forms"))
            .into_iter()
            .filter(|path| path.is_file() && is_ts(path)),
    );
    files.extend(
        sorted_entries(&crate_dir().join("schemas"))
            .into_iter()
            .filter(|path| path.is_file() && is_ts(path)),
    );
    let root = workspace_root();
    files
        .into_iter()
        .map(|path| {
            path.canonicalize()
                .unwrap_or_else(|err| panic!("cannot resolve {}: {err}", path.display()))
        })
        .inspect(|path| {
            assert!(
                path.starts_with(&root),
                "{} is outside the workspace",
                path.display()
            );
        })
        .collect()
}

/// Fails (never skips) when Node or the pinned packages are missing.
fn check_node_setup(root: &Path) {
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`node --version` failed ({}): {}\n{SETUP_HINT}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => panic!("cannot start `node`: {err}\n{SETUP_HINT}"),
    }
    for package in ["@instantdb/core", "tsx"] {
        let manifest = root.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: {SETUP_HINT}",
            manifest.display()
        );
    }
    assert!(
        root.join(NODE_SCRIPT).is_file(),
        "{NODE_SCRIPT} is missing from the workspace"
    );
}

/// One Node start for all files; returns one line per file, in order.
fn serialize_with_node(root: &Path, files: &[String]) -> (Vec<String>, String) {
    let output = Command::new("node")
        .arg("--import")
        .arg("tsx")
        .arg(NODE_SCRIPT)
        .args(files)
        .current_dir(root)
        .output()
        .unwrap_or_else(|err| panic!("cannot start `node`: {err}\n{SETUP_HINT}"));
    let stdout = String::from_utf8(output.stdout).expect("Node printed non-UTF-8 output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        files.len(),
        "{NODE_SCRIPT} printed {} lines for {} files (status {}).\nstderr:\n{stderr}\n{SETUP_HINT}",
        lines.len(),
        files.len(),
        output.status
    );
    (lines, stderr)
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    index = index.min(s.len());
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(s: &str, mut index: usize) -> usize {
    index = index.min(s.len());
    while !s.is_char_boundary(index) {
        index += 1;
    }
    index
}

fn excerpt(s: &str, at: usize) -> String {
    const CONTEXT: usize = 100;
    let start = floor_char_boundary(s, at.saturating_sub(CONTEXT));
    let at = floor_char_boundary(s, at);
    let end = ceil_char_boundary(s, at + CONTEXT);
    format!(
        "{}{}⟦{}⟧{}",
        if start > 0 { "…" } else { "" },
        &s[start..at],
        &s[at..end],
        if end < s.len() { "…" } else { "" }
    )
}

fn json_pointer(path: &[String]) -> String {
    if path.is_empty() {
        return "(root)".to_owned();
    }
    path.iter()
        .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The first place (as a JSON pointer) where the two values differ, including key order.
fn first_value_difference(path: &mut Vec<String>, node: &Value, native: &Value) -> Option<String> {
    match (node, native) {
        (Value::Object(a), Value::Object(b)) => {
            let a_keys: Vec<&String> = a.keys().collect();
            let b_keys: Vec<&String> = b.keys().collect();
            for (index, key) in a_keys.iter().enumerate() {
                match b_keys.get(index) {
                    Some(other) if other == key => {
                        path.push((*key).clone());
                        let found = first_value_difference(path, &a[*key], &b[*key]);
                        path.pop();
                        if found.is_some() {
                            return found;
                        }
                    }
                    Some(other) => {
                        return Some(format!(
                            "{}: key #{index} is {key:?} in Node but {other:?} in native \
                             (Node keys {a_keys:?}, native keys {b_keys:?})",
                            json_pointer(path)
                        ));
                    }
                    None => {
                        return Some(format!(
                            "{}: key {key:?} is missing in native (Node keys {a_keys:?}, \
                             native keys {b_keys:?})",
                            json_pointer(path)
                        ));
                    }
                }
            }
            if b_keys.len() > a_keys.len() {
                return Some(format!(
                    "{}: native has extra keys {:?}",
                    json_pointer(path),
                    &b_keys[a_keys.len()..]
                ));
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                path.push(index.to_string());
                let found = first_value_difference(path, x, y);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            (a.len() != b.len()).then(|| {
                format!(
                    "{}: array length {} in Node, {} in native",
                    json_pointer(path),
                    a.len(),
                    b.len()
                )
            })
        }
        (a, b) if a == b => None,
        (a, b) => Some(format!(
            "{}: Node has {a}, native has {b}",
            json_pointer(path)
        )),
    }
}

fn describe_mismatch(name: &str, node: &str, native: &str) -> String {
    let position = node
        .bytes()
        .zip(native.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(node.len().min(native.len()));
    let mut report = String::new();
    let _ = writeln!(
        report,
        "{name}: native output differs from Node at byte {position} \
         (Node {} bytes, native {} bytes)",
        node.len(),
        native.len()
    );
    if let (Ok(node_value), Ok(native_value)) = (
        serde_json::from_str::<Value>(node),
        serde_json::from_str::<Value>(native),
    ) {
        if let Some(difference) =
            first_value_difference(&mut Vec::new(), &node_value, &native_value)
        {
            let _ = writeln!(report, "  first difference: {difference}");
        }
    }
    let _ = writeln!(report, "  node:   {}", excerpt(node, position));
    let _ = writeln!(report, "  native: {}", excerpt(native, position));
    report
}

#[test]
fn native_typescript_evaluation_matches_instantdb_core_under_node() {
    let root = workspace_root();
    check_node_setup(&root);

    let files = collect_files();
    assert!(!files.is_empty(), "no schema files found");
    let names: Vec<String> = files.iter().map(|path| relative(&root, path)).collect();
    let (node_lines, node_stderr) = serialize_with_node(&root, &names);

    let mut failures = Vec::new();
    let mut matched = 0usize;
    for ((path, name), node_line) in files.iter().zip(&names).zip(&node_lines) {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(node_line) {
            if let Some(message) = map.get("$serializeError") {
                failures.push(format!(
                    "{name}: Node could not serialise it: {message}\n{node_stderr}"
                ));
                continue;
            }
        }
        let rejection = MAY_BE_REJECTED
            .iter()
            .find(|(fixture, _)| *fixture == name.as_str());
        let value = match instant_schema::typescript::evaluate_schema_file(path) {
            Ok(value) => value,
            Err(err) => {
                match rejection {
                    Some((_, expected)) if err.to_string().contains(expected) => {
                        eprintln!("{name}: rejected by the native loader as expected: {err}");
                        matched += 1;
                    }
                    Some((_, expected)) => failures.push(format!(
                        "{name}: rejected, but the error does not mention {expected:?}: {err}"
                    )),
                    None => failures.push(format!(
                        "{name}: native evaluation failed (Node serialised it): {err}"
                    )),
                }
                continue;
            }
        };
        let native = serde_json::to_string(&value).expect("serialise evaluated schema");
        if native == *node_line {
            matched += 1;
        } else {
            failures.push(describe_mismatch(name, node_line, &native));
        }
    }

    eprintln!(
        "{matched}/{} schema files match @instantdb/core",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} schema files differ from @instantdb/core under Node:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
