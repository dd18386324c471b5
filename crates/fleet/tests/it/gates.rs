//! The hot-deploy gate report over real files: inputs missing, unparsable or failing, the
//! `--allow-unsafe` override, and the Markdown report (snapshot, paths redacted).

use std::path::Path;

use fleet::gates::{Gate, GateInputs, GateReport, GateStatus, InputKind};
use serde_json::{json, Value};

/// The envelope time, redacted in snapshots by being given as a placeholder.
const CREATED_AT: &str = "<created-at>";

pub fn preflight_ready() -> Value {
    json!({
        "createdAt": "2026-01-01T00:00:00Z",
        "repo": "/repo",
        "counts": {"endpointStoryRefs": 0, "agentStoryRefs": 0, "endpointMissingThreadEvidence": 0,
                   "scannedFiles": 12, "unparsedFiles": 0},
        "readiness": {"endpointStoryFree": true, "agentStoryFree": true,
                      "targetAgentEndpointsReady": true, "overall": true},
    })
}

pub fn model_plan_ready() -> Value {
    json!({
        "createdAt": "2026-01-01T00:00:00Z",
        "summary": {"legacyModelMatches": 0, "legacyApiMatches": 0, "threadModelMatches": 9,
                    "threadApiMatches": 4, "reactorMatches": 1, "ready": true, "unparsedFiles": 0},
    })
}

pub fn matrix_safe() -> Value {
    json!({
        "ok": true,
        "summary": {"totalOrgs": 2, "plannedOk": 2, "plannedFailed": 0, "safe": 1,
                    "reviewRequired": 1, "blocked": 0},
        "rows": [
            {"org": {"id": "org_a"}, "instant": {"appId": "app-a"}, "plan": {"status": "ok", "gate": "safe"}},
            {"org": {"id": "org_b"}, "instant": {"appId": "app-b"}, "plan": {"status": "ok", "gate": "review"}},
        ],
    })
}

pub fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// Writes the three inputs under `<dir>/artifacts` at their default places.
pub fn write_inputs(dir: &Path, preflight: &Value, model_plan: &Value, matrix: &Value) {
    let artifacts = dir.join("artifacts");
    write_json(
        &artifacts.join(InputKind::Preflight.default_relative_path()),
        preflight,
    );
    write_json(
        &artifacts.join(InputKind::ModelPlan.default_relative_path()),
        model_plan,
    );
    write_json(
        &artifacts.join(InputKind::Matrix.default_relative_path()),
        matrix,
    );
}

fn report(dir: &Path, allow_unsafe: bool) -> GateReport {
    let inputs = GateInputs::load_defaults(&dir.join("artifacts"));
    GateReport::build(inputs, allow_unsafe, Some("mig-1".into()), CREATED_AT)
}

fn redact(dir: &Path, text: &str) -> String {
    text.replace(&*dir.to_string_lossy(), "<dir>")
}

fn statuses(report: &GateReport) -> Vec<(&'static str, GateStatus)> {
    report
        .evaluation
        .gates
        .iter()
        .map(|gate| (gate.gate.id(), gate.status))
        .collect()
}

#[test]
fn the_registry_holds_the_nine_anchor_ids_in_order() {
    let ids: Vec<&str> = Gate::ALL.iter().map(|gate| gate.id()).collect();
    assert_eq!(
        ids,
        [
            "preflight.endpoint_story_free",
            "preflight.agent_story_free",
            "preflight.target_endpoints_thread_ready",
            "model.no_legacy_model_refs",
            "model.no_legacy_api_refs",
            "model.thread_api_present",
            "model.thread_model_present",
            "matrix.no_blocked_orgs",
            "matrix.no_failed_plans",
        ]
    );
    for gate in Gate::ALL {
        assert_eq!(Gate::from_id(gate.id()), Some(gate));
    }
}

#[test]
fn every_gate_passes_on_ready_inputs() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(
        dir.path(),
        &preflight_ready(),
        &model_plan_ready(),
        &matrix_safe(),
    );
    let report = report(dir.path(), false);
    assert!(report.ok());
    assert!(report.proceed());
    assert_eq!(report.evaluation.passed(), 9);
    let json = report.to_json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["runId"], "mig-1");
    assert_eq!(json["evaluation"]["totalGates"], 9);
    assert_eq!(json["evaluation"]["failedGates"], 0);
    assert_eq!(json["evaluation"]["blockers"], json!([]));
    assert_eq!(json["inputStatus"]["matrix"]["status"], "loaded");
    assert_eq!(
        json["inputs"]["matrixPath"],
        dir.path()
            .join("artifacts/reports/schema-plan-org-matrix.json")
            .to_string_lossy()
            .as_ref()
    );
    insta::assert_snapshot!(redact(dir.path(), &report.to_markdown()));
}

#[test]
fn missing_inputs_fail_closed_and_cannot_be_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let report = report(dir.path(), true);
    assert!(!report.ok());
    assert!(
        !report.proceed(),
        "a missing input must never let the wave proceed"
    );
    assert!(report
        .evaluation
        .gates
        .iter()
        .all(|gate| gate.status == GateStatus::MissingInput && !gate.overridden));
    let json = report.to_json();
    assert_eq!(json["evaluation"]["failedGates"], 9);
    assert_eq!(json["evaluation"]["overriddenGates"], json!([]));
    assert_eq!(json["inputStatus"]["preflight"]["status"], "not_found");
    assert_eq!(
        json["evaluation"]["missingInputGates"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    insta::assert_snapshot!(redact(dir.path(), &report.to_markdown()));
}

#[test]
fn an_unparsable_matrix_fails_only_its_gates() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(
        dir.path(),
        &preflight_ready(),
        &model_plan_ready(),
        &json!({}),
    );
    let matrix = dir
        .path()
        .join("artifacts/reports/schema-plan-org-matrix.json");
    std::fs::write(&matrix, b"{\"rows\": [").unwrap();
    let report = report(dir.path(), false);
    let matrix_gates: Vec<_> = statuses(&report)
        .into_iter()
        .filter(|(id, _)| id.starts_with("matrix."))
        .collect();
    assert_eq!(
        matrix_gates,
        [
            ("matrix.no_blocked_orgs", GateStatus::MissingInput),
            ("matrix.no_failed_plans", GateStatus::MissingInput)
        ]
    );
    assert_eq!(report.evaluation.passed(), 7);
    let json = report.to_json();
    assert_eq!(json["inputStatus"]["matrix"]["status"], "invalid_json");
    let detail = json["evaluation"]["gates"][7]["detail"].as_str().unwrap();
    assert!(detail.starts_with("org matrix "), "{detail}");
    assert!(detail.contains("not valid JSON"), "{detail}");
}

#[test]
fn a_byte_order_mark_is_tolerated_and_a_json_array_is_not_an_input() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(
        dir.path(),
        &preflight_ready(),
        &json!([1, 2]),
        &matrix_safe(),
    );
    let preflight = dir.path().join("artifacts/preflight/scan.json");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(serde_json::to_vec(&preflight_ready()).unwrap());
    std::fs::write(&preflight, bytes).unwrap();
    let report = report(dir.path(), false);
    assert_eq!(
        report
            .evaluation
            .get(Gate::PreflightAgentStoryFree)
            .unwrap()
            .status,
        GateStatus::Pass
    );
    assert_eq!(
        report
            .evaluation
            .get(Gate::ModelThreadApiPresent)
            .unwrap()
            .status,
        GateStatus::MissingInput
    );
    assert_eq!(
        report.to_json()["inputStatus"]["modelPlan"]["status"],
        "not_an_object"
    );
}

#[test]
fn allow_unsafe_records_overrides_without_widening_a_gate() {
    let dir = tempfile::tempdir().unwrap();
    let mut model_plan = model_plan_ready();
    model_plan["summary"]["legacyModelMatches"] = json!(3);
    let mut matrix = matrix_safe();
    matrix["rows"][1]["plan"] = json!({"status": "skipped", "gate": "missing-creds",
                                       "reason": "missing_instant_credentials"});
    write_inputs(dir.path(), &preflight_ready(), &model_plan, &matrix);

    let strict = report(dir.path(), false);
    assert!(!strict.ok());
    assert!(!strict.proceed());
    assert_eq!(strict.evaluation.overridden_ids(), Vec::<&str>::new());

    let unsafe_ = report(dir.path(), true);
    assert!(
        !unsafe_.ok(),
        "--allow-unsafe never turns a failed gate into a pass"
    );
    assert!(unsafe_.proceed());
    assert_eq!(
        unsafe_.evaluation.failed_ids(),
        ["model.no_legacy_model_refs", "matrix.no_blocked_orgs"]
    );
    assert_eq!(
        unsafe_.evaluation.overridden_ids(),
        unsafe_.evaluation.failed_ids()
    );
    let json = unsafe_.to_json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["allowUnsafe"], true);
    assert_eq!(json["proceed"], true);
    assert_eq!(json["evaluation"]["blockers"][1]["overridden"], true);
    assert_eq!(json["evaluation"]["blockers"][1]["status"], "fail");
    assert_eq!(
        json["evaluation"]["blockers"][1]["detail"],
        "blocked=1; summary.blocked says 0 but 1 row(s) count; orgs: org_b"
    );
    insta::assert_snapshot!(redact(dir.path(), &unsafe_.to_markdown()));
}
