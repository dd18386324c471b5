//! The run ledger on an in-memory embedded engine: schema pushed before first use (and only
//! when additive), a run folder round trip, chunking of a large artifact, idempotent
//! re-recording, ledger evidence for the status, and no secret stored anywhere.

use std::path::Path;
use std::sync::Arc;

use fleet::ledger::{
    chunk_entity_id, ArtifactMeta, Ledger, LedgerError, RunRecord, SchemaOutcome,
    DEFAULT_CHUNK_BYTES,
};
use fleet::status::{self, collect_run_folders, EvidenceSource, MatrixInput, MigrationState};
use instant_api::{AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, Secret};
use instant_local::engine::LocalEngine;
use migration::evidence::{RunDir, Section};
use serde_json::{json, Value};

use crate::status::{apply_run, row, verify_result, verify_run, write_matrix};

/// Obviously fake: the org's admin token that must never reach the ledger.
const FAKE_TARGET_TOKEN: &str = "fa4e0000-7a46-4e7a-9000-00000000f00d";

fn ledger_app(engine: &LocalEngine) -> AppAuth {
    engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "ledger-test".into(),
            schema: None,
            rules: None,
        })
        .unwrap()
        .app
        .auth()
}

fn ledger(engine: &LocalEngine) -> (Ledger, AppAuth) {
    let auth = ledger_app(engine);
    let mut ledger = Ledger::new(Arc::new(engine.clone()), auth.clone());
    ledger.guard_secret(&Secret::new(FAKE_TARGET_TOKEN));
    assert_eq!(
        ledger.ensure_schema().unwrap(),
        SchemaOutcome::Pushed { steps: 43 }
    );
    (ledger, auth)
}

/// Every entity of the five namespaces, as JSON text.
fn dump(engine: &LocalEngine, auth: &AppAuth) -> String {
    let query = json!({
        "migration_runs": {}, "migration_steps": {}, "migration_artifacts": {},
        "migration_payload_chunks": {}, "migration_reports": {},
    });
    engine
        .query(
            auth,
            &QueryRequest {
                query,
                inference: false,
            },
        )
        .unwrap()
        .to_string()
}

fn count(engine: &LocalEngine, auth: &AppAuth, namespace: &str) -> usize {
    let result = engine
        .query(
            auth,
            &QueryRequest {
                query: json!({ namespace: {} }),
                inference: false,
            },
        )
        .unwrap();
    result[namespace].as_array().unwrap().len()
}

/// A run folder for org_l: apply, verify (passing) and a large NDJSON extract with
/// multi-byte characters around the chunk boundaries.
fn run_folder(artifacts: &Path) -> std::path::PathBuf {
    let run = RunDir::new(artifacts, "run-l1").unwrap();
    let extract = run.create_section(Section::Extract).unwrap();
    let mut big = String::new();
    let mut i = 0;
    while big.len() < 3 * DEFAULT_CHUNK_BYTES + 1000 {
        big.push_str(&format!(
            "{{\"id\":{i},\"content\":\"héllo wörld ✓ 😀 {i}\"}}\n"
        ));
        i += 1;
    }
    std::fs::write(extract.join("context_events.ndjson"), &big).unwrap();
    run.record_stage(
        "extract",
        json!({"orgId": "org_l", "appId": "app-l", "rows": i}),
        &[],
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
    apply_run(
        artifacts,
        "run-l1",
        "org_l",
        "app-l",
        "2026-01-01T01:00:00Z",
    );
    verify_run(
        artifacts,
        "run-l1",
        "org_l",
        "app-l",
        "2026-01-01T02:00:00Z",
        &verify_result(true, &[]),
    );
    run.path().to_path_buf()
}

#[test]
fn a_run_folder_round_trips_with_chunks_and_no_secret() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, auth) = ledger(&engine);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let folder = run_folder(&artifacts);

    let first = ledger.record_run_folder(&folder).unwrap();
    assert_eq!(first.run_id, "run-l1");
    assert_eq!(first.steps, 3);
    assert_eq!(first.artifacts, 3);
    assert_eq!(first.artifacts_written, 3);
    assert_eq!(first.chunks_written, 4, "3 full chunks and a tail");
    assert_eq!(count(&engine, &auth, "migration_payload_chunks"), 4);

    let snapshot = ledger.snapshot().unwrap();
    assert_eq!(snapshot.runs.len(), 1);
    let run = &snapshot.runs[0];
    assert_eq!(run.run_id, "run-l1");
    assert_eq!(run.org_id.as_deref(), Some("org_l"));
    assert_eq!(run.target_app_id.as_deref(), Some("app-l"));
    assert_eq!(run.status, "completed");
    assert_eq!(
        run.steps
            .iter()
            .map(|s| (s.name.as_str(), s.status.as_str()))
            .collect::<Vec<_>>(),
        [("apply", "ok"), ("extract", "ok"), ("verify", "ok")]
    );
    let labels: Vec<(&str, bool, &str)> = run
        .artifacts
        .iter()
        .map(|a| (a.label.as_str(), a.chunked, a.step_name.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("01-extract/context_events.ndjson", true, "extract"),
            ("03-apply/journal.ndjson", false, "apply"),
            ("04-verify/verify.result.json", false, "verify"),
        ]
    );
    for artifact in &run.artifacts {
        let on_disk = std::fs::read(folder.join(&artifact.label)).unwrap();
        assert_eq!(
            ledger.content("run-l1", artifact).unwrap(),
            on_disk,
            "{}",
            artifact.label
        );
        assert_eq!(artifact.size_bytes, Some(on_disk.len() as u64));
    }

    // Re-recording writes nothing new.
    let again = ledger.record_run_folder(&folder).unwrap();
    assert_eq!((again.artifacts_written, again.chunks_written), (0, 0));
    assert_eq!(count(&engine, &auth, "migration_payload_chunks"), 4);
    assert_eq!(count(&engine, &auth, "migration_artifacts"), 3);
    assert_eq!(count(&engine, &auth, "migration_runs"), 1);
    assert_eq!(ledger.snapshot().unwrap(), snapshot);

    // The ledger's copy is the same evidence as the folder.
    let from_ledger = ledger.evidence(&snapshot).unwrap();
    let from_folder = collect_run_folders(&artifacts).unwrap();
    assert_eq!(from_ledger.rejected, []);
    let (l, f) = (&from_ledger.runs[0], &from_folder.runs[0]);
    assert_eq!(l.source, EvidenceSource::Ledger);
    assert_eq!(
        (&l.stages, &l.artifacts, &l.verify_result),
        (&f.stages, &f.artifacts, &f.verify_result)
    );
    assert_eq!(l.updated_at, f.updated_at);
    let merged = status::merge_evidence(from_folder, from_ledger);
    assert_eq!(merged.runs.len(), 1);
    assert_eq!(merged.runs[0].source, EvidenceSource::RunFolderAndLedger);

    // No secret anywhere: neither the ledger's own token nor the org's.
    let everything = dump(&engine, &auth);
    assert!(!everything.contains(auth.admin_token.expose()));
    assert!(!everything.contains(FAKE_TARGET_TOKEN));
    assert!(everything.contains("\"targetAdminToken\":\"\""));
    assert!(everything.contains("\"migrationAdminToken\":\"\""));
}

#[test]
fn status_counts_a_run_the_ledger_holds_after_its_folder_is_gone() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, _) = ledger(&engine);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let folder = run_folder(&artifacts);
    ledger.record_run_folder(&folder).unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
    write_matrix(
        &artifacts,
        vec![row("org_l", "app-l", "ok", "safe", "plan_ok")],
    );
    let matrix = MatrixInput::load(&artifacts.join("reports/schema-plan-org-matrix.json")).unwrap();
    let snapshot = ledger.snapshot().unwrap();
    let evidence = status::merge_evidence(
        collect_run_folders(&artifacts).unwrap(),
        ledger.evidence(&snapshot).unwrap(),
    );
    let report = status::StatusReport::build(&matrix, &evidence, &artifacts, None, None, "t");
    assert_eq!(report.rows[0].state, MigrationState::MigratedVerified);
    assert_eq!(
        report.rows[0].verify.as_ref().unwrap().source,
        EvidenceSource::Ledger
    );
}

#[test]
fn a_folder_and_a_ledger_copy_that_disagree_do_not_count() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, _) = ledger(&engine);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    apply_run(
        &artifacts,
        "run-d1",
        "org_d",
        "app-d",
        "2026-01-01T00:00:00Z",
    );
    ledger
        .record_run_folder(&artifacts.join("runs/run-d1"))
        .unwrap();
    // Rewrite the journal and the manifest by hand, keeping the manifest's time.
    let folder = artifacts.join("runs/run-d1");
    std::fs::write(
        folder.join("03-apply/journal.ndjson"),
        b"{\"batch\":0,\"forged\":true}\n",
    )
    .unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    manifest["artifacts"] =
        serde_json::to_value(migration::evidence::scan_artifacts(&folder).unwrap()).unwrap();
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();

    let merged = status::merge_evidence(
        collect_run_folders(&artifacts).unwrap(),
        ledger.evidence(&ledger.snapshot().unwrap()).unwrap(),
    );
    assert!(merged.runs.is_empty());
    assert_eq!(merged.rejected.len(), 2);
    assert_eq!(
        merged.rejected[0].reason,
        "run folder and ledger disagree: 03-apply/journal.ndjson (sha256 differs)"
    );
}

#[test]
fn a_secret_in_the_evidence_is_refused_and_nothing_is_written() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, auth) = ledger(&engine);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let run = RunDir::new(&artifacts, "run-s1").unwrap();
    let apply = run.create_section(Section::Apply).unwrap();
    std::fs::write(
        apply.join("leak.json"),
        format!("{{\"token\":\"{FAKE_TARGET_TOKEN}\"}}"),
    )
    .unwrap();
    run.record_stage(
        "apply",
        json!({"orgId": "org_s"}),
        &[],
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
    let error = ledger.record_run_folder(run.path()).unwrap_err();
    assert!(
        matches!(error, LedgerError::SecretRefused { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "artifact 03-apply/leak.json of run run-s1 holds a secret (an admin token); nothing of it was recorded"
    );
    assert_eq!(count(&engine, &auth, "migration_runs"), 0);

    // The ledger's own token is guarded too, in any payload.
    ledger
        .record_run(&RunRecord {
            run_id: "run-s2".into(),
            org_id: Some("org_s".into()),
            target_app_id: None,
            status: "running".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            ended_at: None,
            summary: json!({}),
        })
        .unwrap();
    let error = ledger
        .record_artifact(
            "run-s2",
            &ArtifactMeta {
                step_name: "apply".into(),
                kind: "note".into(),
                label: "note.txt".into(),
                content_type: "text/plain".into(),
            },
            format!("token={}", auth.admin_token.expose()).as_bytes(),
            "2026-01-01T00:00:00Z",
        )
        .unwrap_err();
    assert!(
        matches!(error, LedgerError::SecretRefused { .. }),
        "{error}"
    );
    assert!(!dump(&engine, &auth).contains(auth.admin_token.expose()));
}

#[test]
fn binary_content_and_small_chunks_round_trip_and_stale_chunks_are_ignored() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, auth) = ledger(&engine);
    let ledger = ledger.with_chunk_bytes(16);
    ledger
        .record_run(&RunRecord {
            run_id: "run-b1".into(),
            org_id: None,
            target_app_id: None,
            status: "running".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            ended_at: None,
            summary: Value::Null,
        })
        .unwrap();
    let meta = ArtifactMeta {
        step_name: "run".into(),
        kind: "blob".into(),
        label: "blob.bin".into(),
        content_type: "application/octet-stream".into(),
    };
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let outcome = ledger
        .record_artifact("run-b1", &meta, &binary, "2026-01-01T00:00:00Z")
        .unwrap();
    assert!(outcome.written);
    assert_eq!(
        outcome.chunks_written, 22,
        "344 base64 characters in 16-byte chunks"
    );
    // New content under the same label: new chunks, and reading gives the new content only.
    let text = "ünïcödé ".repeat(5);
    ledger
        .record_artifact("run-b1", &meta, text.as_bytes(), "2026-01-01T00:00:01Z")
        .unwrap();
    let snapshot = ledger.snapshot().unwrap();
    let artifact = &snapshot.runs[0].artifacts[0];
    assert_eq!(ledger.content("run-b1", artifact).unwrap(), text.as_bytes());
    assert_eq!(
        artifact.content_type.as_deref(),
        Some("application/octet-stream")
    );
    // A missing chunk is detected, not papered over.
    let missing = chunk_entity_id(&artifact.id, artifact.sha256.as_deref().unwrap(), 1);
    engine
        .transact(
            &auth,
            &instant_api::TransactRequest {
                steps: vec![json!(["delete", "migration_payload_chunks", missing])],
                throw_on_missing_attrs: false,
            },
        )
        .unwrap();
    let error = ledger.content("run-b1", artifact).unwrap_err().to_string();
    assert!(
        error.ends_with("artifact blob.bin of run run-b1: chunks are missing"),
        "{error}"
    );
}

#[test]
fn steps_of_an_unknown_run_are_refused() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, _) = ledger(&engine);
    let error = ledger
        .record_step(
            "run-none",
            &fleet::ledger::StepRecord {
                name: "apply".into(),
                status: "ok".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                ended_at: None,
                detail: json!({}),
            },
        )
        .unwrap_err();
    assert!(matches!(error, LedgerError::UnknownRun { .. }), "{error}");
}

#[test]
fn the_schema_is_pushed_once_and_only_when_additive() {
    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, _) = ledger(&engine);
    assert_eq!(
        ledger.ensure_schema().unwrap(),
        SchemaOutcome::AlreadyCurrent
    );

    // An app whose migration_runs.orgId is unique: making it plain again would drop a
    // guarantee, so the ledger refuses to use the app.
    let schema = json!({
        "entities": {"migration_runs": {"attrs": {"orgId": {"valueType": "string",
            "required": true, "config": {"indexed": true, "unique": true}}}, "links": {}}},
        "links": {}, "rooms": {},
    });
    let other = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "not-a-ledger".into(),
            schema: Some(schema),
            rules: None,
        })
        .unwrap()
        .app
        .auth();
    let error = Ledger::new(Arc::new(engine.clone()), other)
        .ensure_schema()
        .unwrap_err();
    assert!(
        matches!(error, LedgerError::SchemaConflict { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("remove-unique migration_runs.orgId"),
        "{error}"
    );
}

#[test]
fn the_registry_reads_the_ledger_without_counting_a_run_twice() {
    use fleet::registry::{Findings, Registry};

    let engine = LocalEngine::in_memory().unwrap();
    let (ledger, _) = ledger(&engine);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    apply_run(
        &artifacts,
        "run-r1",
        "org_r",
        "app-r",
        "2026-01-01T00:00:00Z",
    );
    verify_run(
        &artifacts,
        "run-r1",
        "org_r",
        "app-r",
        "2026-01-01T01:00:00Z",
        &verify_result(false, &["links"]),
    );
    ledger
        .record_run_folder(&artifacts.join("runs/run-r1"))
        .unwrap();
    // A run recorded step by step (no folder), with a failed step, a warning and a failed
    // report that states its reason.
    ledger
        .record_run(&RunRecord {
            run_id: "run-r2".into(),
            org_id: Some("org_q".into()),
            target_app_id: Some("app-q".into()),
            status: "failed".into(),
            started_at: "2026-01-02T00:00:00Z".into(),
            ended_at: Some("2026-01-02T00:10:00Z".into()),
            summary: json!({"source": "migrate"}),
        })
        .unwrap();
    ledger
        .record_step(
            "run-r2",
            &fleet::ledger::StepRecord {
                name: "schema_push".into(),
                status: "error".into(),
                started_at: "2026-01-02T00:01:00Z".into(),
                ended_at: Some("2026-01-02T00:02:00Z".into()),
                detail: json!({"error": "Record not found: app"}),
            },
        )
        .unwrap();
    ledger
        .record_artifact(
            "run-r2",
            &ArtifactMeta {
                step_name: "verify".into(),
                kind: "warning".into(),
                label: "verify.order-fallback".into(),
                content_type: "application/json".into(),
            },
            br#"{"message": "thread_threads.createdAt is not indexed; order dropped"}"#,
            "2026-01-02T00:05:00Z",
        )
        .unwrap();
    ledger
        .record_report(
            "run-r2",
            "migration.run-r2.json",
            "failed",
            br#"{"ok": false, "reason": "schema_push_failed"}"#,
            "2026-01-02T00:10:00Z",
        )
        .unwrap();

    let snapshot = ledger.snapshot().unwrap();
    let from_ledger = ledger.evidence(&snapshot).unwrap();
    let folders = collect_run_folders(&artifacts).unwrap();
    let mut findings = Findings::default();
    findings.scan_runs(&folders);
    findings.scan_ledger(&snapshot);
    findings.scan_runs(&from_ledger);
    let registry = Registry::build(&findings, 2, Some(snapshot.app_id.clone()), "t");
    let summary: Vec<(&str, usize, Vec<&str>)> = registry
        .scenarios
        .iter()
        .map(|s| {
            (
                s.scenario.as_str(),
                s.count,
                s.run_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("instant_app_not_found", 1, vec!["run-r2"]),
            ("schema_push_failed", 1, vec!["run-r2"]),
            ("verify_invariant_links", 1, vec!["run-r1"]),
            ("verify_non_indexed_order", 1, vec!["run-r2"]),
        ]
    );
    assert_eq!(
        registry.scenarios[0].source.as_str(),
        "ledger.migration_steps"
    );
    assert_eq!(registry.scenarios[0].step_name, "schema_push");
    assert_eq!(
        registry.scenarios[1].source.as_str(),
        "ledger.migration_reports"
    );
    assert_eq!(
        registry.scenarios[3].samples,
        ["thread_threads.createdAt is not indexed; order dropped"]
    );
}
