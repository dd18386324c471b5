//! The scenario registry: grouping of failure signatures from every kind of report, the
//! deterministic action per scenario, stable ordering, and idempotence.

use std::path::Path;

use fleet::registry::{classify, expand_glob, recommended_action, Findings, Registry};
use fleet::status::collect_run_folders;
use migration::evidence::RunDir;
use serde_json::{json, Value};

use crate::gates::write_json;
use crate::status::{apply_run, row, verify_result, verify_run, write_matrix};

fn crafted(artifacts: &Path) {
    let mut dup = row(
        "org_dup",
        "app-d",
        "error",
        "blocked",
        "schema_duplicate_link",
    );
    dup["plan"]["error"] = json!(
        "planSchemaPush failed (400): Duplicate entry found for attribute \
         organization_organizations->externalConnections"
    );
    let mut token = row(
        "org_tok",
        "app-t",
        "error",
        "blocked",
        "invalid_admin_token",
    );
    token["plan"]["error"] = json!("Record not found: token");
    let mut creds = row(
        "org_creds",
        "app-c",
        "skipped",
        "blocked",
        "missing_instant_credentials",
    );
    creds["plan"]["reason"] = json!("missing_instant_credentials");
    write_matrix(
        artifacts,
        vec![
            dup,
            token,
            creds,
            row("org_ok", "app-o", "ok", "safe", "plan_ok"),
        ],
    );
    write_json(
        &artifacts.join("reports/pipeline.run-9.json"),
        &json!({"ok": false, "mode": "planning", "runId": "run-9", "steps": [
            {"id": "04-matrix", "status": "failed", "error": "2 organisations are blocked"},
            {"id": "05-diagnose", "status": "ok"},
            {"id": "09-validate", "status": "skipped"},
        ]}),
    );
    write_json(
        &artifacts.join("reports/migration.temp-domain.run-old.json"),
        &json!({"ok": true, "runId": "run-old", "reportFromMigrationDomain": {
            "migration_steps": [
                {"runId": "run-old", "name": "source_query", "status": "ok", "detail": {}},
                {"runId": "run-old", "name": "schema_plan_before_push", "status": "error",
                 "detail": {"status": 400, "message": "Record not found: token"}},
            ],
            "migration_artifacts": [
                {"runId": "run-old", "stepName": "verify", "kind": "warning",
                 "inlineContent": "{\"message\": \"The `createdAt` attribute is not indexed; order requires an index\"}",
                 "createdAt": "2025-06-01T00:00:00Z"},
                {"runId": "run-old", "stepName": "verify", "kind": "query", "inlineContent": "{}"},
            ],
        }}),
    );
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
        &verify_result(false, &["links"]),
    );
    let run = RunDir::new(artifacts, "run-x1").unwrap();
    run.record_stage(
        "extract",
        json!({"orgId": "org_z", "ok": false,
               "error": "Validation failed for steps: thread_items.context is not a valid link"}),
        &[],
        "2026-01-20T00:00:00Z",
    )
    .unwrap();
}

fn build(artifacts: &Path, generated_at: &str) -> Registry {
    let mut findings = Findings::default();
    findings.scan_reports(artifacts);
    let runs = collect_run_folders(artifacts).unwrap();
    findings.scan_runs(&runs);
    Registry::build(&findings, runs.runs.len(), None, generated_at)
}

#[test]
fn classification_recognises_real_error_texts_first_match_wins() {
    let cases = [
        (
            "Duplicate entry found for attribute a->b",
            "plan",
            "schema_duplicate_link",
        ),
        ("Record not found: token", "plan", "invalid_admin_token"),
        (
            "Record not found: app-admin-token",
            "plan",
            "invalid_admin_token",
        ),
        ("Record not found: app", "plan", "instant_app_not_found"),
        (
            "createdAt is not indexed, cannot ORDER by it",
            "verify",
            "verify_non_indexed_order",
        ),
        ("not indexed", "verify", "generic_verify"),
        (
            "Validation failed for steps",
            "tx_apply",
            "validation_failed_steps",
        ),
        ("boom", "Schema Push", "generic_schema_push"),
        ("boom", "", "generic_unknown"),
    ];
    for (text, step, scenario) in cases {
        assert_eq!(classify(text, step), scenario, "{text:?} at {step:?}");
    }
    assert_eq!(
        recommended_action("instant_app_not_found").1,
        Some("APP-404")
    );
    assert_eq!(
        recommended_action("schema_duplicate_link").1,
        Some("SCH-001")
    );
}

#[test]
fn groups_every_source_by_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    crafted(&artifacts);
    let registry = build(&artifacts, "2026-03-01T00:00:00Z");
    let summary: Vec<(&str, usize, &str, Vec<&str>)> = registry
        .scenarios
        .iter()
        .map(|s| {
            (
                s.scenario.as_str(),
                s.count,
                s.step_name.as_str(),
                s.run_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "invalid_admin_token",
                2,
                "matrix",
                vec!["matrix", "run-old"]
            ),
            ("generic_04_matrix", 1, "04-matrix", vec!["run-9"]),
            ("missing_instant_credentials", 1, "matrix", vec!["matrix"]),
            ("schema_duplicate_link", 1, "matrix", vec!["matrix"]),
            ("validation_failed_steps", 1, "extract", vec!["run-x1"]),
            ("verify_invariant_links", 1, "verify", vec!["run-a1"]),
            ("verify_non_indexed_order", 1, "verify", vec!["run-old"]),
        ]
    );
    let token = &registry.scenarios[0];
    assert_eq!(token.org_ids, ["org_tok"]);
    assert_eq!(token.plan_id, Some("TOK-001"));
    assert_eq!(
        token.signature,
        "matrix|invalid_admin_token|Record not found: token"
    );
    assert_eq!(token.first_seen_at, None);
    let verify = &registry.scenarios[5];
    assert_eq!(
        verify.first_seen_at.as_deref(),
        Some("2026-01-11T09:10:00Z")
    );
    assert!(
        verify.samples[0].starts_with("invariant links fail: "),
        "{:?}",
        verify.samples
    );
    let json = registry.to_json();
    assert_eq!(json["filesScanned"], 3);
    assert_eq!(json["runsScanned"], 2);
    assert!(json["scenarios"][3]["recommendedAction"]
        .as_str()
        .unwrap()
        .contains("phase1"));
    insta::assert_snapshot!(registry.to_markdown());
}

/// A verify result whose award-timeline invariant has `status` with `detail`, beside a
/// passing `counts` invariant.
fn timeline_result(status: &str, actual: Value, sample: &[&str], detail: &str) -> Value {
    json!({"ok": false, "invariants": [
        {"id": "counts", "status": "pass", "expected": 10, "actual": 10, "sample": []},
        {"id": "timeline.award_conversations", "status": status, "expected": 0,
         "actual": actual, "sample": sample, "detail": detail},
    ]})
}

#[test]
fn an_award_timeline_orphan_groups_under_its_scenario_with_the_backfill_action() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let orphan_detail = |org: &str| {
        format!(
            "conversation_history_orphan: 3 award conversation item(s) have no timeline; run \
             `threadmig backfill-conversations --org {org} --tender-id tender-1`, \
             `threadmig backfill-conversations --org {org} --tender-id tender-2`"
        )
    };
    for (run, org, at) in [
        ("run-o1", "org_orphan_a", "2026-02-01T10:00:00Z"),
        ("run-o2", "org_orphan_b", "2026-02-02T10:00:00Z"),
    ] {
        apply_run(&artifacts, run, org, "app-o", at);
        verify_run(
            &artifacts,
            run,
            org,
            "app-o",
            at,
            &timeline_result(
                "fail",
                json!(2),
                &["tender-1", "tender-2"],
                &orphan_detail(org),
            ),
        );
    }
    // The same invariant failing to run names no orphan: it stays in its invariant family.
    apply_run(
        &artifacts,
        "run-o3",
        "org_down",
        "app-x",
        "2026-02-03T10:00:00Z",
    );
    verify_run(
        &artifacts,
        "run-o3",
        "org_down",
        "app-x",
        "2026-02-03T10:00:00Z",
        &timeline_result("error", Value::Null, &[], "query thread_items failed (500)"),
    );
    let registry = build(&artifacts, "2026-03-01T00:00:00Z");
    let summary: Vec<String> = registry
        .scenarios
        .iter()
        .map(|s| {
            format!(
                "{} count={} step={} runs={} orgs={}",
                s.scenario,
                s.count,
                s.step_name,
                s.run_ids.join(","),
                s.org_ids.join(",")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "conversation_history_orphan count=2 step=verify runs=run-o1,run-o2 orgs=org_orphan_a,org_orphan_b",
            "verify_invariant_timeline count=1 step=verify runs=run-o3 orgs=org_down",
        ]
    );
    let orphan = &registry.scenarios[0];
    assert_eq!(
        orphan.recommended_action,
        recommended_action("conversation_history_orphan").0
    );
    assert!(
        orphan
            .recommended_action
            .starts_with("Backfill the award timeline: `threadmig backfill-conversations"),
        "{}",
        orphan.recommended_action
    );
    assert_eq!(orphan.plan_id, None);
    // The detail is read whole to classify; samples and signature keep its first characters
    // (the org names come later, so both runs share one sample).
    assert_eq!(
        orphan.samples,
        ["invariant timeline.award_conversations fail: {\"expected\":0,\"actual\":2,\"error\":null,\"sample\":[\"tender-1\",\"tender-2\"],\"detail\":\"conversation_history_orphan: 3 award conversation item(s) have no timeline; run `threadmig bac"]
    );
    assert_eq!(
        orphan.signature,
        "verify|conversation_history_orphan|invariant timeline.award_conversations fail: {\"expected\":0,\"actual\":2,\"error\":null,\"sample\":[\"tender-1\",\"tender-2\"],\"detail\":\"conversation_h"
    );
    assert_eq!(
        orphan.first_seen_at.as_deref(),
        Some("2026-02-01T10:00:00Z")
    );
    assert_eq!(orphan.last_seen_at.as_deref(), Some("2026-02-02T10:00:00Z"));
    let timeline = &registry.scenarios[1];
    assert_eq!(
        timeline.recommended_action,
        recommended_action("verify_invariant_timeline").0
    );
    assert_eq!(
        timeline.samples,
        ["invariant timeline.award_conversations error: {\"expected\":0,\"actual\":null,\"error\":null,\"sample\":[],\"detail\":\"query thread_items failed (500)\"}"]
    );
    let json = registry.to_json();
    assert_eq!(
        json["scenarios"][0]["scenario"],
        "conversation_history_orphan"
    );
    assert_eq!(
        json["scenarios"][0]["recommendedAction"],
        recommended_action("conversation_history_orphan").0
    );
}

#[test]
fn rebuilding_is_idempotent_and_counts_each_occurrence_once() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    crafted(&artifacts);
    let first = build(&artifacts, "2026-03-01T00:00:00Z");
    let second = build(&artifacts, "2026-03-02T00:00:00Z");
    let strip = |registry: &Registry| {
        let mut json = registry.to_json();
        json.as_object_mut().unwrap().remove("generatedAt");
        json
    };
    assert_eq!(strip(&first), strip(&second));
    assert_eq!(first.to_markdown(), second.to_markdown());

    // The same runs seen twice (a folder and its ledger copy) count once.
    let mut findings = Findings::default();
    findings.scan_reports(&artifacts);
    let runs = collect_run_folders(&artifacts).unwrap();
    findings.scan_runs(&runs);
    findings.scan_runs(&runs);
    let doubled = Registry::build(&findings, runs.runs.len(), None, "x");
    let counts = |registry: &Registry| -> Vec<(String, usize)> {
        registry
            .scenarios
            .iter()
            .map(|s| (s.scenario.clone(), s.count))
            .collect()
    };
    assert_eq!(counts(&doubled), counts(&first));
}

#[test]
fn an_empty_tree_gives_an_empty_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = build(dir.path(), "t");
    assert!(registry.scenarios.is_empty());
    assert_eq!(registry.to_json()["scenarios"], Value::Array(vec![]));
    assert!(registry
        .to_markdown()
        .ends_with("No failure signature found.\n"));
}

#[test]
fn globs_match_the_last_component_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "migration.temp-domain.A.json",
        "Migration.Temp-Domain.b.JSON",
        "other.json",
    ] {
        std::fs::write(dir.path().join(name), b"{}").unwrap();
    }
    let found = expand_glob(&dir.path().join("migration.temp-domain.*.json"));
    let names: Vec<String> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "Migration.Temp-Domain.b.JSON",
            "migration.temp-domain.A.json"
        ]
    );
    assert_eq!(expand_glob(&dir.path().join("other.json")).len(), 1);
    assert!(expand_glob(&dir.path().join("absent.json")).is_empty());
}
