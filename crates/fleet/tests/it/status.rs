//! Migration status on a crafted artifacts tree: each of the four states, evidence that must
//! not count (a verify file changed or dropped in after the manifest, a verify older than the
//! apply, a dry run, a failed invariant), and byte-identical output for the same inputs.

use std::path::Path;

use fleet::status::{
    collect_run_folders, EvidenceSource, MatrixInput, MigrationState, StatusReport,
};
use migration::evidence::{RunDir, Section};
use serde_json::{json, Value};

/// The envelope time, redacted in snapshots by being given as a placeholder.
const CREATED_AT: &str = "<created-at>";

/// A matrix row.
pub fn row(org: &str, app: &str, status: &str, gate: &str, issue: &str) -> Value {
    json!({
        "org": {"id": org, "name": org.to_uppercase(), "slug": org},
        "instant": {"appId": app, "hasAppId": true, "hasAdminToken": status != "skipped"},
        "plan": {"status": status, "gate": gate},
        "actionPlan": {"planId": if issue == "plan_ok" { "OK-000" } else { "GEN-001" },
                       "issueCode": issue, "blocking": issue != "plan_ok"},
    })
}

pub fn write_matrix(artifacts: &Path, rows: Vec<Value>) {
    crate::gates::write_json(
        &artifacts.join("reports/schema-plan-org-matrix.json"),
        &json!({"ok": false, "summary": {"totalOrgs": rows.len()}, "rows": rows}),
    );
}

/// Records an `apply` stage for `org` in run `run_id`, with a journal file, at `at`.
pub fn apply_run(artifacts: &Path, run_id: &str, org: &str, app: &str, at: &str) {
    let run = RunDir::new(artifacts, run_id).unwrap();
    let dir = run.create_section(Section::Apply).unwrap();
    std::fs::write(
        dir.join("journal.ndjson"),
        format!("{{\"batch\":0,\"org\":\"{org}\"}}\n"),
    )
    .unwrap();
    run.record_stage(
        "apply",
        json!({"orgId": org, "appId": app, "batchesCommitted": 1, "stepsApplied": 10,
               "resumed": false, "endedAt": at}),
        &[],
        at,
    )
    .unwrap();
}

/// A verify result with every invariant passing (or `failing` not passing).
pub fn verify_result(ok: bool, failing: &[&str]) -> Value {
    let invariants: Vec<Value> = ["counts", "links", "keys"]
        .iter()
        .map(|id| {
            json!({"id": id, "status": if failing.contains(id) { "fail" } else { "pass" },
                   "expected": 10, "actual": if failing.contains(id) { 9 } else { 10 },
                   "sample": []})
        })
        .collect();
    json!({"ok": ok, "invariants": invariants})
}

/// Records a `verify` stage for `org` in run `run_id` with `result`, at `at`.
pub fn verify_run(artifacts: &Path, run_id: &str, org: &str, app: &str, at: &str, result: &Value) {
    let run = RunDir::new(artifacts, run_id).unwrap();
    let dir = run.create_section(Section::Verify).unwrap();
    std::fs::write(
        dir.join("verify.result.json"),
        serde_json::to_vec_pretty(result).unwrap(),
    )
    .unwrap();
    run.record_stage(
        "verify",
        json!({"orgId": org, "appId": app, "ok": result["ok"], "endedAt": at}),
        &[],
        at,
    )
    .unwrap();
}

/// The crafted tree: one org per state plus the evidence that must not count.
pub fn crafted_tree(artifacts: &Path) {
    write_matrix(
        artifacts,
        vec![
            row("org_verified", "app-v", "ok", "safe", "plan_ok"),
            row(
                "org_blocked",
                "app-b",
                "error",
                "blocked",
                "schema_duplicate_link",
            ),
            row(
                "org_creds",
                "app-c",
                "skipped",
                "blocked",
                "missing_instant_credentials",
            ),
            row("org_planned", "app-p", "ok", "review", "plan_ok"),
            row("org_applied", "app-a", "ok", "safe", "plan_ok"),
            row("org_faked", "app-f", "ok", "safe", "plan_ok"),
            row("org_stale", "app-s", "ok", "safe", "plan_ok"),
        ],
    );
    // migrated_verified: apply then verify in one run.
    apply_run(
        artifacts,
        "run-v1",
        "org_verified",
        "app-v",
        "2026-01-10T10:00:00Z",
    );
    verify_run(
        artifacts,
        "run-v1",
        "org_verified",
        "app-v",
        "2026-01-10T10:05:00Z",
        &verify_result(true, &[]),
    );
    // blocked_plan even with evidence.
    apply_run(
        artifacts,
        "run-b1",
        "org_blocked",
        "app-b",
        "2026-01-10T10:00:00Z",
    );
    // applied_unverified: a verify that says ok but whose invariant failed does not count.
    apply_run(
        artifacts,
        "run-a1",
        "org_applied",
        "app-a",
        "2026-01-11T09:00:00Z",
    );
    verify_run(
        artifacts,
        "run-a1",
        "org_applied",
        "app-a",
        "2026-01-11T09:10:00Z",
        &verify_result(true, &["links"]),
    );
    // planned_only: only a dry run.
    let run = RunDir::new(artifacts, "run-p1").unwrap();
    run.record_stage(
        "apply",
        json!({"orgId": "org_planned", "appId": "app-p", "dryRun": true}),
        &[],
        "2026-01-12T00:00:00Z",
    )
    .unwrap();
    // org_faked: applied; its verify file was edited after the manifest was written.
    apply_run(
        artifacts,
        "run-f1",
        "org_faked",
        "app-f",
        "2026-01-13T00:00:00Z",
    );
    verify_run(
        artifacts,
        "run-f2",
        "org_faked",
        "app-f",
        "2026-01-13T01:00:00Z",
        &verify_result(false, &["counts"]),
    );
    std::fs::write(
        artifacts.join("runs/run-f2/04-verify/verify.result.json"),
        serde_json::to_vec_pretty(&verify_result(true, &[])).unwrap(),
    )
    .unwrap();
    // A verify result dropped into a folder by hand, never recorded.
    apply_run(
        artifacts,
        "run-f3",
        "org_faked",
        "app-f",
        "2026-01-13T00:30:00Z",
    );
    std::fs::create_dir_all(artifacts.join("runs/run-f3/04-verify")).unwrap();
    std::fs::write(
        artifacts.join("runs/run-f3/04-verify/verify.result.json"),
        serde_json::to_vec_pretty(&verify_result(true, &[])).unwrap(),
    )
    .unwrap();
    // org_stale: a passing verify older than a later apply.
    verify_run(
        artifacts,
        "run-s1",
        "org_stale",
        "app-s",
        "2026-01-14T00:00:00Z",
        &verify_result(true, &[]),
    );
    apply_run(
        artifacts,
        "run-s2",
        "org_stale",
        "app-s",
        "2026-01-15T00:00:00Z",
    );
}

fn build(artifacts: &Path) -> StatusReport {
    let matrix = MatrixInput::load(&artifacts.join("reports/schema-plan-org-matrix.json")).unwrap();
    let evidence = collect_run_folders(artifacts).unwrap();
    StatusReport::build(
        &matrix,
        &evidence,
        Path::new("artifacts"),
        None,
        None,
        CREATED_AT,
    )
}

fn states(report: &StatusReport) -> Vec<(&str, MigrationState)> {
    report
        .rows
        .iter()
        .map(|row| (row.plan.org_id.as_str(), row.state))
        .collect()
}

#[test]
fn each_state_from_crafted_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    crafted_tree(&artifacts);
    let report = build(&artifacts);
    assert_eq!(
        states(&report),
        [
            ("org_applied", MigrationState::AppliedUnverified),
            ("org_blocked", MigrationState::BlockedPlan),
            ("org_creds", MigrationState::BlockedPlan),
            ("org_faked", MigrationState::AppliedUnverified),
            ("org_planned", MigrationState::PlannedOnly),
            ("org_stale", MigrationState::AppliedUnverified),
            ("org_verified", MigrationState::MigratedVerified),
        ]
    );
    let verified = &report.rows[6];
    assert_eq!(verified.apply.as_ref().unwrap().run_id, "run-v1");
    assert_eq!(verified.verify.as_ref().unwrap().run_id, "run-v1");
    assert_eq!(
        verified.verify.as_ref().unwrap().at.as_deref(),
        Some("2026-01-10T10:05:00Z")
    );
    assert_eq!(
        verified.verify.as_ref().unwrap().source,
        EvidenceSource::RunFolder
    );

    let rejected: Vec<(&str, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.run_id.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (
                "run-f2",
                "files do not match manifest.json: 04-verify/verify.result.json (sha256 differs)"
            ),
            (
                "run-f3",
                "files do not match manifest.json: 04-verify/verify.result.json (only on disk)"
            ),
        ]
    );
    let faked = &report.rows[3];
    assert_eq!(
        faked.apply.as_ref().unwrap().run_id,
        "run-f1",
        "the latest counted apply"
    );
    assert_eq!(faked.verify, None);
    assert_eq!(
        report.rows[0].notes,
        ["verify of run run-a1 not counted: 1 invariant(s) of 04-verify/verify.result.json did not pass although it says ok"]
    );
    assert_eq!(
        report.rows[4].notes,
        ["apply of run run-p1 not counted: a dry run"]
    );
    assert_eq!(
        report.rows[5].notes,
        ["verify of run run-s1 not counted: it is not later than the latest apply (run run-s2)"]
    );
    let summary = report.summary_json();
    assert_eq!(
        summary,
        json!({"total": 7, "blocked_plan": 2, "planned_only": 1, "applied_unverified": 3,
               "migrated_verified": 1})
    );
    let markdown = report
        .to_markdown()
        .replace(&*dir.path().to_string_lossy(), "<dir>");
    insta::assert_snapshot!(markdown);
}

#[test]
fn output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    crafted_tree(&artifacts);
    let first = serde_json::to_string_pretty(&build(&artifacts).to_json()).unwrap();
    let second = serde_json::to_string_pretty(&build(&artifacts).to_json()).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        build(&artifacts).to_markdown(),
        build(&artifacts).to_markdown()
    );
    let json: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(json["createdAt"], CREATED_AT);
    assert_eq!(json["rows"][6]["evidence"]["verifyRunId"], "run-v1");
    assert_eq!(json["rows"][1]["issueCode"], "schema_duplicate_link");
    assert_eq!(json["rows"][1]["status"], "blocked_plan");
}

#[test]
fn a_verify_for_another_app_or_org_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    write_matrix(
        &artifacts,
        vec![row("org_x", "app-x", "ok", "safe", "plan_ok")],
    );
    apply_run(
        &artifacts,
        "run-1",
        "org_x",
        "app-x",
        "2026-01-01T00:00:00Z",
    );
    verify_run(
        &artifacts,
        "run-2",
        "org_x",
        "app-other",
        "2026-01-02T00:00:00Z",
        &verify_result(true, &[]),
    );
    let mut mislabelled = verify_result(true, &[]);
    mislabelled["orgId"] = json!("org_y");
    verify_run(
        &artifacts,
        "run-3",
        "org_x",
        "app-x",
        "2026-01-02T00:00:00Z",
        &mislabelled,
    );
    let report = build(&artifacts);
    assert_eq!(report.rows[0].state, MigrationState::AppliedUnverified);
    assert_eq!(
        report.rows[0].notes,
        [
            "verify of run run-2 not counted: verified app app-other, but the matrix has app app-x",
            "verify of run run-3 not counted: 04-verify/verify.result.json is about org org_y",
        ]
    );
}

#[test]
fn a_matrix_that_is_missing_or_not_a_matrix_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let error = MatrixInput::load(&missing).unwrap_err().to_string();
    assert!(
        error.ends_with("none.json: org matrix not found (run `threadmig matrix` first)"),
        "{error}"
    );
    let not_matrix = dir.path().join("scan.json");
    std::fs::write(&not_matrix, b"{\"readiness\": {}}").unwrap();
    let error = MatrixInput::load(&not_matrix).unwrap_err().to_string();
    assert!(
        error.ends_with("scan.json: not an org matrix: `rows` is not an array"),
        "{error}"
    );
    std::fs::write(&not_matrix, b"{\"rows\": [").unwrap();
    let error = MatrixInput::load(&not_matrix).unwrap_err().to_string();
    assert!(error.contains("scan.json: not valid JSON"), "{error}");
}
