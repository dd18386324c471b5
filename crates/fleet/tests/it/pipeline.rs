//! The planning pipeline on the generated fleet (embedded engine, in memory), with a scripted
//! host for the environment check, scan and model plan: the step list and statuses, findings
//! that never stop diagnostics, runbook and gates, failures that do (unless
//! `continue_on_error`), `allow_unsafe` recorded but never making the wave safe, and the
//! validation of each `org_ids` org.

use std::path::Path;

use fleet::matrix::Connection;
use fleet::pipeline::{
    run_pipeline, Host, HostOutcome, PipelineConfig, PipelineError, PipelineReport, Ports,
    StepStatus,
};
use fleet::validate::ValidateOptions;
use migration::evidence::sha256_file;
use migration::gen::OrgRole;
use serde_json::{json, Value};

use crate::matrix::fleet;
use crate::validate::{bridge_target, org_of, rehearsal_engine};

/// Writes ready inputs (as a thread-ready repository gives), or fails the scan.
struct ScriptedHost {
    fail_scan: bool,
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

impl Host for ScriptedHost {
    fn now(&self) -> String {
        "2026-01-01T00:00:00Z".into()
    }

    fn env_check(&mut self) -> HostOutcome {
        HostOutcome::ok("embedded workspace")
    }

    fn preflight_scan(&mut self, _repo: &Path, out: &Path, out_md: &Path) -> HostOutcome {
        if self.fail_scan {
            return HostOutcome::failed("the repository cannot be read");
        }
        write_json(
            out,
            &json!({"counts": {"endpointStoryRefs": 0, "agentStoryRefs": 0,
                               "endpointMissingThreadEvidence": 0, "unparsedFiles": 0},
                    "readiness": {"endpointStoryFree": true, "agentStoryFree": true,
                                  "targetAgentEndpointsReady": true}}),
        );
        std::fs::write(out_md, "# scan\n").unwrap();
        HostOutcome::ok("ready")
    }

    fn model_plan(&mut self, _repo: &Path, out: &Path, out_md: &Path) -> HostOutcome {
        write_json(
            out,
            &json!({"summary": {"legacyModelMatches": 0, "legacyApiMatches": 0,
                                "threadModelMatches": 6, "threadApiMatches": 2,
                                "unparsedFiles": 0}}),
        );
        std::fs::write(out_md, "# model plan\n").unwrap();
        HostOutcome::ok("ready")
    }
}

fn config(artifacts: &Path, run_id: &str, org_ids: &[&str]) -> PipelineConfig {
    PipelineConfig {
        run_id: run_id.into(),
        artifacts: artifacts.to_path_buf(),
        repo: artifacts.to_path_buf(),
        schema: bridge_target(),
        org_ids: org_ids.iter().map(|id| id.to_string()).collect(),
        allow_unsafe: false,
        continue_on_error: false,
        concurrency: 4,
        env_name: "test".into(),
        validate: ValidateOptions::default(),
    }
}

fn run(config: &PipelineConfig, fail_scan: bool) -> Result<PipelineReport, PipelineError> {
    let fleet = fleet();
    run_pipeline(
        config,
        &Ports {
            directory: &fleet.engine,
            api: &fleet.engine,
            connection: Connection {
                instant_api_uri: "embedded:<workspace>".into(),
                clerk_api_uri: None,
                workspace: Some("<workspace>".into()),
            },
            ledger: None,
            rehearsal_engine: &rehearsal_engine,
        },
        &mut ScriptedHost { fail_scan },
    )
}

fn statuses(report: &PipelineReport) -> Vec<(String, &'static str)> {
    report
        .steps
        .iter()
        .map(|step| (step.id.clone(), step.status.as_str()))
        .collect()
}

fn owned(steps: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    steps.iter().map(|(id, s)| (id.to_string(), *s)).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn blocked_orgs_are_findings_and_diagnose_runbook_gates_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&config(dir.path(), "p-1", &[]), false).unwrap();
    assert_eq!(
        statuses(&report),
        owned(&[
            ("01-verify_env", "ok"),
            ("02-preflight_scan", "ok"),
            ("03-plan_story_thread_model_migration", "ok"),
            ("04-plan_schema_push_org_matrix", "findings"),
            ("05-diagnose_plan_failures", "findings"),
            ("06-build_case_runbook", "findings"),
            ("07-assert_hot_deploy_safe", "findings"),
            ("08-report_migration_status", "ok"),
            ("09-validate_pre_migration_bundle", "skipped"),
        ])
    );
    assert!(!report.ok);
    assert_eq!(
        report.steps[8].reason.as_deref(),
        Some("no_org_ids_provided")
    );
    let summary = &report.summary;
    assert_eq!(
        (
            summary.total,
            summary.ok,
            summary.findings,
            summary.failed,
            summary.skipped
        ),
        (9, 4, 4, 0, 1)
    );
    assert_eq!(report.blockers.len(), 4, "{:?}", report.blockers);
    assert!(report.blockers[3].starts_with(
        "07-assert_hot_deploy_safe: 7 of 9 gates passed; failed: matrix.no_blocked_orgs, matrix.no_failed_plans"
    ));

    // Every artifact of the run, pinned by the sha256 of the file as it is.
    let document = read_json(&dir.path().join("reports/pipeline.p-1.json"));
    for key in [
        "ok",
        "mode",
        "runId",
        "repoPath",
        "schemaPath",
        "summary",
        "steps",
        "artifacts",
    ] {
        assert!(document.get(key).is_some(), "{key}");
    }
    assert_eq!(document["mode"], "planning");
    for key in [
        "preflightOut",
        "modelPlanJson",
        "modelPlanMd",
        "matrixOut",
        "matrixMd",
        "diagnosticsOut",
        "diagnosticsMd",
        "caseRunbookJson",
        "caseRunbookMd",
        "hotDeployGatesJson",
        "migrationStatusJson",
    ] {
        let artifact = &document["artifacts"][key];
        let path = Path::new(artifact["path"].as_str().unwrap_or_else(|| panic!("{key}")));
        assert_eq!(
            artifact["sha256"].as_str().unwrap(),
            sha256_file(path).unwrap().0,
            "{key}"
        );
    }
    assert_eq!(document["artifacts"]["validationSummaryJson"], Value::Null);

    // The reports carry the run id; the diagnostics cover both blocked orgs.
    for report in [
        "schema-plan-org-matrix.json",
        "schema-plan-diagnostics.json",
        "hot-deploy-gates.json",
        "migration-status.json",
    ] {
        assert_eq!(
            read_json(&dir.path().join("reports").join(report))["runId"],
            "p-1",
            "{report}"
        );
    }
    let diagnostics = read_json(&dir.path().join("reports/schema-plan-diagnostics.json"));
    let mut codes: Vec<&str> = diagnostics["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["issueCode"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["missing_instant_credentials", "schema_duplicate_link"]
    );

    // This run's evidence: copies of its reports, hashed in its manifest.
    let manifest = read_json(&dir.path().join("runs/p-1/manifest.json"));
    assert_eq!(manifest["stages"]["pipeline"]["status"], "not_safe");
    let listed: Vec<&str> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"00-planning/schema-plan-org-matrix.json"));
    assert!(listed.contains(&"00-planning/pipeline.p-1.json"));

    // A run id names one run.
    let again = run(&config(dir.path(), "p-1", &[]), false).unwrap_err();
    assert!(matches!(again, PipelineError::RunExists { .. }), "{again}");
}

#[test]
fn a_failed_step_stops_the_rest_unless_continue_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let report = run(&config(dir.path(), "p-2", &[]), true).unwrap();
    let stopped = "stopped_after:02-preflight_scan";
    assert_eq!(report.steps[1].status, StepStatus::Failed);
    assert_eq!(
        report.steps[1].error.as_deref(),
        Some("the repository cannot be read")
    );
    for step in &report.steps[2..] {
        assert_eq!(step.status, StepStatus::Skipped, "{}", step.id);
        assert_eq!(step.reason.as_deref(), Some(stopped), "{}", step.id);
    }
    assert!(!report.ok);

    // With continue_on_error the rest runs, and the gates do not read the scan an earlier
    // run left at the default path: this run produced none, so its gates fail closed.
    let stale = dir.path().join("preflight/scan.json");
    write_json(
        &stale,
        &json!({"readiness": {"endpointStoryFree": true, "agentStoryFree": true,
                              "targetAgentEndpointsReady": true}}),
    );
    let mut config = config(dir.path(), "p-3", &[]);
    config.continue_on_error = true;
    let report = run(&config, true).unwrap();
    assert_eq!(
        statuses(&report),
        owned(&[
            ("01-verify_env", "ok"),
            ("02-preflight_scan", "failed"),
            ("03-plan_story_thread_model_migration", "ok"),
            ("04-plan_schema_push_org_matrix", "findings"),
            ("05-diagnose_plan_failures", "findings"),
            ("06-build_case_runbook", "findings"),
            ("07-assert_hot_deploy_safe", "findings"),
            ("08-report_migration_status", "ok"),
            ("09-validate_pre_migration_bundle", "skipped"),
        ])
    );
    let gates = read_json(&dir.path().join("reports/hot-deploy-gates.json"));
    let missing: Vec<&str> = gates["evaluation"]["missingInputGates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "preflight.endpoint_story_free",
            "preflight.agent_story_free",
            "preflight.target_endpoints_thread_ready"
        ]
    );
    assert_eq!(
        gates["inputStatus"]["preflight"]["status"], "unreadable",
        "{}",
        gates["inputStatus"]
    );
    let document = read_json(&dir.path().join("reports/pipeline.p-3.json"));
    assert_eq!(document["artifacts"]["preflightOut"], Value::Null);
}

#[test]
fn allow_unsafe_is_recorded_and_never_makes_the_wave_safe() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "p-4", &[]);
    config.allow_unsafe = true;
    let report = run(&config, false).unwrap();
    assert!(!report.ok);
    assert!(report.allow_unsafe);
    assert_eq!(
        report.overridden_gates,
        ["matrix.no_blocked_orgs", "matrix.no_failed_plans"]
    );
    assert_eq!(report.steps[6].status, StepStatus::Findings);
    let gates = read_json(&dir.path().join("reports/hot-deploy-gates.json"));
    assert_eq!(
        (gates["ok"].clone(), gates["allowUnsafe"].clone()),
        (json!(false), json!(true))
    );
}

#[test]
fn validations_continue_past_a_missing_credentials_org_only_when_asked() {
    let missing = org_of(OrgRole::MissingCredentials);
    let clean = org_of(OrgRole::Clean);
    let dir = tempfile::tempdir().unwrap();

    let report = run(&config(dir.path(), "p-5", &[&missing, &clean]), false).unwrap();
    let validations: Vec<(String, &'static str)> = report.steps[8..]
        .iter()
        .map(|step| (step.id.clone(), step.status.as_str()))
        .collect();
    assert_eq!(
        validations,
        [
            (
                format!("09-validate_pre_migration_bundle-{missing}"),
                "failed"
            ),
            (
                format!("09-validate_pre_migration_bundle-{clean}"),
                "skipped"
            ),
        ]
    );
    let failed = &report.steps[8];
    assert_eq!(failed.org_id.as_deref(), Some(missing.as_str()));
    assert_eq!(
        failed.issue_code.as_deref(),
        Some("missing_instant_credentials")
    );
    assert_eq!(
        report.steps[9].reason.as_deref(),
        Some(format!("stopped_after:09-validate_pre_migration_bundle-{missing}").as_str())
    );
    // The matrix covered only the given orgs.
    assert!(
        report.steps[3].detail.starts_with("2 org(s):"),
        "{}",
        report.steps[3].detail
    );

    let mut config = config(dir.path(), "p-6", &[&missing, &clean]);
    config.continue_on_error = true;
    let report = run(&config, false).unwrap();
    let last: Vec<&'static str> = report.steps[8..]
        .iter()
        .map(|step| step.status.as_str())
        .collect();
    assert_eq!(last, ["failed", "ok"]);
    assert!(!report.ok);
    let summary = read_json(
        &dir.path()
            .join("reports/pre-migration-validation.summary.json"),
    );
    assert_eq!(summary["runId"], "p-6");
    let entries = summary["validations"].as_array().unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (
                e["orgId"].as_str().unwrap(),
                e["stepStatus"].as_str().unwrap(),
                e["ok"].clone()
            ))
            .collect::<Vec<_>>(),
        [
            (missing.as_str(), "failed", json!(false)),
            (clean.as_str(), "ok", json!(true))
        ]
    );
    let clean_report = read_json(
        &dir.path()
            .join(format!("reports/pre-migration-validation.p-6.{clean}.json")),
    );
    assert_eq!(clean_report["ok"], true);
    assert_eq!(clean_report["runId"], format!("p-6.{clean}"));
    assert!(dir
        .path()
        .join(format!("runs/p-6.{clean}/manifest.json"))
        .is_file());
    let document = read_json(&dir.path().join("reports/pipeline.p-6.json"));
    assert_eq!(
        document["artifacts"]["validationSummaryJson"]["sha256"],
        sha256_file(
            &dir.path()
                .join("reports/pre-migration-validation.summary.json")
        )
        .unwrap()
        .0
    );
}
