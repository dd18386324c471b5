//! `threadmig gates`, `status`, `registry update` and `ledger record|show` end to end: exit
//! codes, JSON keys, files written, missing inputs failing closed, and no token anywhere.

use std::path::{Path, PathBuf};

use migration::evidence::{RunDir, Section};
use serde_json::{json, Value};

use crate::{temp_dir, threadmig, Run};

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn json_of(run: &Run) -> Value {
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "one JSON line: {}",
        run.stdout
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn ready_inputs(dir: &Path) {
    let artifacts = dir.join("artifacts");
    write_json(
        &artifacts.join("preflight/scan.json"),
        &json!({"counts": {"endpointStoryRefs": 0, "agentStoryRefs": 0,
                           "endpointMissingThreadEvidence": 0, "unparsedFiles": 0},
                "readiness": {"endpointStoryFree": true, "agentStoryFree": true,
                              "targetAgentEndpointsReady": true}}),
    );
    write_json(
        &artifacts.join("reports/story-thread-model-plan.json"),
        &json!({"summary": {"legacyModelMatches": 0, "legacyApiMatches": 0,
                            "threadModelMatches": 6, "threadApiMatches": 2, "unparsedFiles": 0}}),
    );
    write_json(
        &artifacts.join("reports/schema-plan-org-matrix.json"),
        &json!({"summary": {"totalOrgs": 2, "blocked": 0, "plannedFailed": 0},
        "rows": [
            {"org": {"id": "org_a"}, "instant": {"appId": "app-a"},
             "plan": {"status": "ok", "gate": "safe"},
             "actionPlan": {"planId": "OK-000", "issueCode": "plan_ok"}},
            {"org": {"id": "org_b"}, "instant": {"appId": "app-b"},
             "plan": {"status": "ok", "gate": "safe"},
             "actionPlan": {"planId": "OK-000", "issueCode": "plan_ok"}},
        ]}),
    );
}

/// org_a: applied and verified in run-1; org_b: applied in run-2 with a verify file forged
/// after the manifest.
fn runs(dir: &Path) {
    let artifacts = dir.join("artifacts");
    for (run_id, org, forge) in [("run-1", "org_a", false), ("run-2", "org_b", true)] {
        let run = RunDir::new(&artifacts, run_id).unwrap();
        let apply = run.create_section(Section::Apply).unwrap();
        std::fs::write(apply.join("journal.ndjson"), b"{\"batch\":0}\n").unwrap();
        run.record_stage(
            "apply",
            json!({"status": "applied", "orgId": org, "appId": format!("app-{}", &org[4..]), "complete": true}),
            &[],
            "2026-01-01T00:00:00Z",
        )
        .unwrap();
        let verify = run.create_section(Section::Verify).unwrap();
        let result = |ok: bool| {
            serde_json::to_vec(&json!({"ok": ok, "invariants": [
                {"id": "count.thread_items", "status": if ok { "pass" } else { "fail" }}]}))
            .unwrap()
        };
        std::fs::write(verify.join("verify.result.json"), result(!forge)).unwrap();
        run.record_stage(
            "verify",
            json!({"status": "verified", "orgId": org, "ok": !forge}),
            &[],
            "2026-01-01T01:00:00Z",
        )
        .unwrap();
        if forge {
            std::fs::write(verify.join("verify.result.json"), result(true)).unwrap();
        }
    }
}

#[test]
fn gates_without_inputs_fail_closed_with_exit_1() {
    let dir = temp_dir("gates-missing");
    let run = threadmig(&["gates", "--json", "--allow-unsafe"], Some(&dir));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = json_of(&run);
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["proceed"], false);
    assert_eq!(summary["allowUnsafe"], true);
    assert_eq!(summary["failedGates"].as_array().unwrap().len(), 9);
    assert_eq!(summary["missingInputGates"], summary["failedGates"]);
    assert_eq!(summary["overriddenGates"], json!([]));
    assert_eq!(summary["out"], "artifacts/reports/hot-deploy-gates.json");
    let report = read_json(&dir.join("artifacts/reports/hot-deploy-gates.json"));
    assert_eq!(report["evaluation"]["gates"][0]["status"], "missing_input");
    assert_eq!(report["inputStatus"]["matrix"]["status"], "not_found");
    assert!(dir.join("artifacts/reports/hot-deploy-gates.md").is_file());
}

#[test]
fn gates_pass_with_exit_0_and_overrides_keep_exit_1() {
    let dir = temp_dir("gates-pass");
    ready_inputs(&dir);
    let run = threadmig(&["gates", "--json", "--run-id", "mig-7"], Some(&dir));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = json_of(&run);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["passedGates"], 9);
    assert_eq!(summary["runId"], "mig-7");

    let matrix = dir.join("artifacts/reports/schema-plan-org-matrix.json");
    let mut document = read_json(&matrix);
    document["rows"][1]["plan"] =
        json!({"status": "error", "gate": "blocked", "error": "Record not found: token"});
    write_json(&matrix, &document);
    let run = threadmig(&["gates", "--json", "--allow-unsafe"], Some(&dir));
    assert_eq!(run.code, 1, "an override never makes the gates pass");
    let summary = json_of(&run);
    assert_eq!(summary["proceed"], true);
    assert_eq!(
        summary["overriddenGates"],
        json!(["matrix.no_blocked_orgs", "matrix.no_failed_plans"])
    );

    let run = threadmig(&["gates", "--run-id", "../x"], Some(&dir));
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--run-id"), "{}", run.stderr);
}

#[test]
fn status_without_a_matrix_is_an_error_and_writes_nothing() {
    let dir = temp_dir("status-missing");
    let run = threadmig(&["status", "--json"], Some(&dir));
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("artifacts/reports/schema-plan-org-matrix.json: org matrix not found"),
        "{}",
        run.stderr
    );
    assert!(!dir.join("artifacts/reports/migration-status.json").exists());
}

#[test]
fn status_counts_only_evidence_that_checks_out() {
    let dir = temp_dir("status-runs");
    ready_inputs(&dir);
    runs(&dir);
    let run = threadmig(&["status", "--json"], Some(&dir));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = json_of(&run);
    assert_eq!(
        summary["summary"],
        json!({"total": 2, "blocked_plan": 0, "planned_only": 1, "applied_unverified": 0,
               "migrated_verified": 1})
    );
    assert_eq!(summary["rows"][0]["status"], "migrated_verified");
    assert_eq!(summary["rows"][0]["verifyRunId"], "run-1");
    assert_eq!(
        summary["rows"][1]["status"], "planned_only",
        "run-2 was forged: none of it counts"
    );
    assert_eq!(summary["rejectedEvidence"], 1);
    let report = read_json(&dir.join("artifacts/reports/migration-status.json"));
    assert_eq!(report["rejectedEvidence"][0]["runId"], "run-2");

    let table = threadmig(&["status"], Some(&dir));
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.starts_with("ORG    APP    STATUS"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("org_a  app-a  migrated_verified  plan_ok  run-1      run-1"),
        "{}",
        table.stdout
    );

    let strict = threadmig(&["status", "--require-all-verified"], Some(&dir));
    assert_eq!(strict.code, 1);
}

#[test]
fn registry_update_writes_both_files_and_is_idempotent() {
    let dir = temp_dir("registry");
    ready_inputs(&dir);
    runs(&dir);
    let matrix = dir.join("artifacts/reports/schema-plan-org-matrix.json");
    let mut document = read_json(&matrix);
    document["rows"][1]["plan"] = json!({"status": "error", "gate": "blocked",
                                         "error": "Record not found: token"});
    document["rows"][1]["actionPlan"] =
        json!({"planId": "TOK-001", "issueCode": "invalid_admin_token"});
    write_json(&matrix, &document);
    let args = [
        "registry",
        "update",
        "--json",
        "--out-md",
        "references/scenario-registry.md",
    ];
    let first = threadmig(&args, Some(&dir));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let summary = json_of(&first);
    assert_eq!(
        summary["scenarios"],
        json!([{"scenario": "invalid_admin_token", "count": 1, "runIds": ["matrix"]}])
    );
    assert_eq!(
        summary["outFile"],
        "artifacts/reports/scenario-registry.json"
    );
    let markdown = std::fs::read(dir.join("references/scenario-registry.md")).unwrap();
    let second = threadmig(&args, Some(&dir));
    assert_eq!(second.code, 0);
    assert_eq!(
        std::fs::read(dir.join("references/scenario-registry.md")).unwrap(),
        markdown
    );
    let registry = read_json(&dir.join("artifacts/reports/scenario-registry.json"));
    assert_eq!(registry["scenarios"][0]["planId"], "TOK-001");

    let bad = threadmig(
        &["registry", "update", "--reports-glob", "nope.json"],
        Some(&dir),
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("nope.json: no such file"),
        "{}",
        bad.stderr
    );
    std::fs::write(dir.join("broken.json"), b"{").unwrap();
    let bad = threadmig(
        &["registry", "update", "--reports-glob", "broken.json"],
        Some(&dir),
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("broken.json: not valid JSON"),
        "{}",
        bad.stderr
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn the_workspace_ledger_keeps_runs_without_any_token() {
    let dir = temp_dir("ledger");
    ready_inputs(&dir);
    runs(&dir);
    let show = threadmig(&["ledger", "show", "--workspace", "ws"], Some(&dir));
    assert_eq!(show.code, 2);
    assert!(
        show.stderr.contains("the workspace has no ledger yet"),
        "{}",
        show.stderr
    );

    let record = threadmig(
        &[
            "ledger",
            "record",
            "--workspace",
            "ws",
            "--run-id",
            "run-1",
            "--json",
            "--report",
            "artifacts/reports/schema-plan-org-matrix.json",
        ],
        Some(&dir),
    );
    assert_eq!(record.code, 0, "{}", record.stderr);
    let summary = json_of(&record);
    let app_id = summary["ledgerAppId"].as_str().unwrap().to_string();
    assert_eq!(summary["runs"][0]["artifactsWritten"], 2);
    assert_eq!(
        summary["runs"][0]["reports"],
        json!(["schema-plan-org-matrix.json"])
    );
    let pointer = read_json(&dir.join("ws/ledger.json"));
    assert_eq!(pointer["appId"], app_id.as_str());
    assert_eq!(
        pointer.as_object().unwrap().len(),
        3,
        "app id, title, time: no token"
    );

    let again = threadmig(
        &[
            "ledger",
            "record",
            "--workspace",
            "ws",
            "--run-id",
            "run-1",
            "--json",
        ],
        Some(&dir),
    );
    assert_eq!(json_of(&again)["runs"][0]["artifactsWritten"], 0);
    // A forged run is not recorded.
    let forged = threadmig(
        &["ledger", "record", "--workspace", "ws", "--run-id", "run-2"],
        Some(&dir),
    );
    assert_eq!(forged.code, 2);
    assert!(
        forged.stderr.contains("do not match manifest.json"),
        "{}",
        forged.stderr
    );

    // The run folder is gone; the ledger still proves the migration.
    std::fs::remove_dir_all(dir.join("artifacts/runs/run-1")).unwrap();
    let status = threadmig(&["status", "--workspace", "ws", "--json"], Some(&dir));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let summary = json_of(&status);
    assert_eq!(summary["ledgerAppId"], app_id.as_str());
    assert_eq!(summary["rows"][0]["status"], "migrated_verified");

    let show = threadmig(
        &[
            "ledger",
            "show",
            "--workspace",
            "ws",
            "--run-id",
            "run-1",
            "--json",
        ],
        Some(&dir),
    );
    assert_eq!(show.code, 0, "{}", show.stderr);
    let shown = json_of(&show);
    assert_eq!(shown["runs"][0]["orgId"], "org_a");
    assert_eq!(shown["runs"][0]["steps"].as_array().unwrap().len(), 2);

    // The ledger app's token is only in the workspace database: not in any other file, not in
    // any output.
    let engine = instant_local::engine::LocalEngine::open(&dir.join("ws")).unwrap();
    let token = engine.store().app_admin_token(&app_id).unwrap().unwrap();
    for path in files(&dir) {
        if path.starts_with(dir.join("ws"))
            && path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("instant.sqlite3")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the ledger token",
            path.display()
        );
    }
    for output in [&record, &again, &status, &show] {
        assert!(!output.stdout.contains(&token) && !output.stderr.contains(&token));
    }
}
