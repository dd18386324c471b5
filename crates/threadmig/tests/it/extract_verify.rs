//! `threadmig extract` and `threadmig verify` on a `threadmig gen` workspace: the evidence they
//! write, their JSON, their exit codes, and bad input.

use std::path::{Path, PathBuf};

use instant_api::{AppAuth, InstantApi, SchemaPushRequest, TransactRequest};
use instant_local::engine::LocalEngine;
use instant_schema::{BuiltinSchema, Cardinality, Link, LinkEnd};
use serde_json::{json, Map, Value};

use super::{temp_dir, threadmig, Run};

fn json_of(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {}\n{}", run.stdout, run.stderr))
}

struct Fleet {
    dir: PathBuf,
    workspace: PathBuf,
    artifacts: PathBuf,
    /// (org id, context_events rows) of each org.
    orgs: Vec<(String, u64)>,
}

impl Fleet {
    fn ws(&self) -> String {
        self.workspace.to_string_lossy().into_owned()
    }
    fn art(&self) -> String {
        self.artifacts.to_string_lossy().into_owned()
    }
    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.artifacts.join("runs").join(run_id)
    }
    fn auth(&self, org: &str) -> (LocalEngine, AppAuth) {
        let engine = LocalEngine::open(&self.workspace).unwrap();
        let record = engine.store().org(org).unwrap().unwrap();
        let token = engine.store().org_admin_token(org).unwrap().unwrap();
        (engine, AppAuth::new(record.app_id.unwrap(), token))
    }
}

fn fleet(name: &str) -> Fleet {
    let dir = temp_dir(name);
    let workspace = dir.join("ws");
    let ws = workspace.to_string_lossy().into_owned();
    let run = threadmig(
        &[
            "--json",
            "gen",
            "--preset",
            "small",
            "--seed",
            "17",
            "--workspace",
            &ws,
            "--roles",
            "clean,clean",
            "--orgs",
            "2",
            "--events",
            "160",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(json_of(&run)["manifest"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let orgs = manifest["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| {
            (
                org["orgId"].as_str().unwrap().to_string(),
                org["rows"]["context_events"].as_u64().unwrap(),
            )
        })
        .collect();
    Fleet {
        artifacts: dir.join("artifacts"),
        dir,
        workspace,
        orgs,
    }
}

/// Writes the run's 02-transform/ into the org's app with plain `update` and `link` steps after
/// pushing the target schema: a stand-in for the apply stage, so these tests depend on extract,
/// transform and verify only.
fn write_transform_output_for_test(fleet: &Fleet, org: &str, run_id: &str) {
    let (engine, auth) = fleet.auth(org);
    // Thread V1 and the esolbay link the transform re-creates on items.
    let mut schema = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
    let end = |on: &str, label: &str| LinkEnd {
        on: on.into(),
        has: Cardinality::Many,
        label: label.into(),
        required: None,
        on_delete: None,
    };
    schema.links.insert(
        "threadItemsWhatsappMessages".into(),
        Link::new(
            end("thread_items", "whatsappMessages"),
            end("whatsapp_messages", "threadItems"),
        ),
    );
    let schema = schema.to_dsl_json();
    engine
        .schema_push(
            &auth,
            &SchemaPushRequest {
                schema,
                check_types: true,
                supports_background_updates: false,
            },
        )
        .unwrap();
    let dir = fleet.run_dir(run_id).join("02-transform");
    let mut steps = Vec::new();
    for ns in [
        "thread_contexts",
        "thread_executions",
        "thread_items",
        "thread_parts",
        "thread_steps",
        "thread_threads",
    ] {
        for line in std::fs::read_to_string(dir.join(format!("{ns}.ndjson")))
            .unwrap()
            .lines()
        {
            let mut row: Map<String, Value> = serde_json::from_str(line).unwrap();
            let id = row.remove("id").unwrap();
            steps.push(json!(["update", ns, id, row]));
        }
    }
    for line in std::fs::read_to_string(dir.join("links.ndjson"))
        .unwrap()
        .lines()
    {
        let link: Value = serde_json::from_str(line).unwrap();
        let label = link["label"].as_str().unwrap();
        steps.push(json!(["link", link["from_ns"], link["from_id"], { label: link["to_id"] }]));
    }
    for batch in steps.chunks(300) {
        engine
            .transact(
                &auth,
                &TransactRequest {
                    steps: batch.to_vec(),
                    throw_on_missing_attrs: false,
                },
            )
            .unwrap();
    }
}

/// Every file under `dir`, concatenated.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn one_line_error(run: &Run) -> String {
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("threadmig: error: "), "{}", lines[0]);
    lines[0].to_string()
}

#[test]
fn extract_transform_write_verify_on_a_generated_workspace() {
    let fleet = fleet("extract-verify");
    let (org, events) = fleet.orgs[0].clone();
    let (ws, art) = (fleet.ws(), fleet.art());

    let run = threadmig(
        &[
            "--json",
            "extract",
            "--run-id",
            "r1",
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            &org,
            "--page-size",
            "25",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = json_of(&run);
    let mut keys: Vec<&String> = summary.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "appId",
            "duplicates",
            "elapsedMs",
            "namespaces",
            "orgId",
            "out",
            "pageSize",
            "pages",
            "recount",
            "runId"
        ]
    );
    assert_eq!(summary["runId"], "r1");
    assert_eq!(summary["orgId"], json!(org));
    assert_eq!(summary["namespaces"]["context_events"], json!(events));
    assert_eq!(summary["namespaces"].as_object().unwrap().len(), 7);
    assert_eq!(
        PathBuf::from(summary["out"].as_str().unwrap()),
        fleet.run_dir("r1").join("01-extract")
    );
    let (_, auth) = fleet.auth(&org);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fleet.run_dir("r1").join("manifest.json")).unwrap())
            .unwrap();
    let stage = &manifest["stages"]["extract"];
    assert_eq!(stage["status"], "extracted");
    assert_eq!(stage["orgId"], json!(org));
    assert_eq!(stage["appId"], json!(auth.app_id));
    assert!(manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["path"] == "01-extract/context_events.ndjson"));

    let run_path = fleet.run_dir("r1").to_string_lossy().into_owned();
    let run = threadmig(
        &["transform", "--input", &run_path, "--out", &run_path],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    // Before anything is written the target holds no thread rows: findings, exit 1.
    let verify_args = [
        "--json",
        "verify",
        "--run-id",
        "r1",
        "--artifacts",
        &art,
        "--workspace",
        &ws,
        "--org",
        &org,
        "--sample",
        "50",
    ];
    let run = threadmig(&verify_args, None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let result = json_of(&run);
    assert_eq!(result["ok"], false);
    let count = result["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "count.thread_items")
        .unwrap();
    assert_eq!(count["status"], "fail");
    assert_eq!(count["expected"], json!(events));
    assert_eq!(count["actual"], json!(0));
    for invariant in result["invariants"].as_array().unwrap() {
        for key in ["id", "status", "expected", "actual", "sample"] {
            assert!(invariant.get(key).is_some(), "{key} in {invariant}");
        }
    }

    write_transform_output_for_test(&fleet, &org, "r1");
    let run = threadmig(&verify_args, None);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let result = json_of(&run);
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["invariants"].as_array().unwrap().len() > 40);
    let written: Value = serde_json::from_slice(
        &std::fs::read(fleet.run_dir("r1").join("04-verify/verify.result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["ok"], true);
    assert_eq!(written["invariants"], result["invariants"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fleet.run_dir("r1").join("manifest.json")).unwrap())
            .unwrap();
    let stage = &manifest["stages"]["verify"];
    assert_eq!(
        (
            &stage["status"],
            &stage["ok"],
            &stage["fail"],
            &stage["error"]
        ),
        (&json!("verified"), &json!(true), &json!(0), &json!(0))
    );
    assert_eq!(stage["appId"], json!(auth.app_id));

    // Human output: one line per invariant that did not pass, then the verdict.
    let run = threadmig(&verify_args[1..], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let verdict = run.stdout.lines().next().unwrap();
    assert!(
        verdict.starts_with(&format!(
            "verified: {n} invariants, {n} pass, 0 fail, 0 error",
            n = result["invariants"].as_array().unwrap().len()
        )),
        "{verdict}"
    );

    // The admin token is nowhere in the evidence.
    let token = auth.admin_token.expose().to_string();
    assert!(token.len() > 10);
    assert!(!all_text(&fleet.artifacts).contains(&token));
    let _ = std::fs::remove_dir_all(&fleet.dir);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let fleet = fleet("extract-verify-bad");
    let (ws, art) = (fleet.ws(), fleet.art());
    let (org, _) = fleet.orgs[0].clone();
    let (other, _) = fleet.orgs[1].clone();

    // Unknown org: nothing written.
    let run = threadmig(
        &[
            "extract",
            "--run-id",
            "r0",
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            "org_nope",
        ],
        None,
    );
    let line = one_line_error(&run);
    assert!(line.contains("org_nope"), "{line}");
    assert!(!fleet.run_dir("r0").exists());

    // A run id that is not a folder name.
    let run = threadmig(
        &[
            "extract",
            "--run-id",
            "../escape",
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            &org,
        ],
        None,
    );
    let line = one_line_error(&run);
    assert!(line.contains("\"../escape\""), "{line}");
    assert!(!fleet.artifacts.exists());

    // Verify of a run that does not exist.
    let run = threadmig(
        &[
            "verify",
            "--run-id",
            "nope",
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            &org,
        ],
        None,
    );
    let line = one_line_error(&run);
    assert!(line.contains("run nope not found"), "{line}");

    // Verify needs --run-id (a usage error).
    let run = threadmig(&["verify", "--workspace", &ws, "--org", &org], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--run-id"), "{}", run.stderr);

    // A default run id, then verify of that run against another org's app.
    let run = threadmig(
        &[
            "--json",
            "extract",
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            &org,
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run_id = json_of(&run)["runId"].as_str().unwrap().to_string();
    assert!(
        run_id
            .strip_prefix("run-")
            .is_some_and(|ms| ms.parse::<u64>().is_ok()),
        "{run_id}"
    );
    let run = threadmig(
        &[
            "verify",
            "--run-id",
            &run_id,
            "--artifacts",
            &art,
            "--workspace",
            &ws,
            "--org",
            &other,
        ],
        None,
    );
    let line = one_line_error(&run);
    assert!(
        line.contains(&format!("run {run_id} was extracted from app ")),
        "{line}"
    );
    assert!(!fleet.run_dir(&run_id).join("04-verify").exists());
    let _ = std::fs::remove_dir_all(&fleet.dir);
}
