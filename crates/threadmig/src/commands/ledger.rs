//! `threadmig ledger record | show`, and opening the run ledger for the commands that read
//! or write it (`status`, `registry update`).
//!
//! Where the ledger lives: with `--ledger-app-id` (and `--ledger-token-file`), that InstantDB
//! app; otherwise, with `--workspace`, the workspace's ledger app. The workspace keeps only
//! the ledger app's **id** in `<workspace>/ledger.json`; its admin token stays in the
//! workspace database, with every other app token of the embedded default, and is read from
//! there (`Store::app_admin_token`). No token is written to a file, an artifact or the ledger.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use fleet::ledger::{Ledger, RunRecord, SchemaOutcome, LEDGER_APP_TITLE};
use instant_api::http::HttpInstantApi;
use instant_api::{AppAuth, EphemeralAppRequest, InstantApi};
use instant_local::engine::LocalEngine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cli::{LedgerArgs, LedgerCommand, LedgerRecordArgs, LedgerShowArgs, LedgerSourceArgs};
use crate::connect::{read_token, resilience};
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

/// `<workspace>/ledger.json`: which app of the workspace is the ledger (never its token).
pub const POINTER_FILE: &str = "ledger.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pointer {
    app_id: String,
    title: String,
    created_at: String,
}

/// Whether a missing embedded ledger is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Readers: no ledger yet is not an error.
    IfPresent,
    /// Writers: create the workspace's ledger app on first use.
    CreateIfMissing,
}

/// The ledger named by the flags, `None` when there is none (no flags, or a workspace without
/// a ledger yet and `Open::IfPresent`). Writers get the migration-domain schema pushed first.
pub fn open_ledger(
    workspace: Option<&Path>,
    ledger: &LedgerArgs,
    http: &crate::cli::InstantHttpArgs,
    mode: Open,
) -> anyhow::Result<Option<Ledger>> {
    let engine = match workspace {
        Some(dir) => Some(
            LocalEngine::open(dir)
                .map_err(|error| anyhow::anyhow!("workspace {}: {error}", dir.display()))?,
        ),
        None => None,
    };
    let opened = if let (Some(app_id), Some(token_file)) =
        (&ledger.ledger_app_id, &ledger.ledger_token_file)
    {
        let token = read_token(token_file).context("--ledger-token-file")?;
        let api: Arc<dyn InstantApi> = match (&engine, &http.instant_api_uri) {
            (Some(engine), None) => Arc::new(engine.clone()),
            _ => {
                let base_url = http.api_uri().to_string();
                Arc::new(
                    HttpInstantApi::new(&base_url, resilience(http)).map_err(|error| {
                        anyhow::anyhow!("--instant-api-uri {base_url}: {error}")
                    })?,
                )
            }
        };
        Ledger::new(api, AppAuth::new(app_id, token))
    } else if let (Some(dir), Some(engine)) = (workspace, &engine) {
        match embedded_ledger(dir, engine, mode)? {
            Some(ledger) => ledger,
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    if mode == Open::CreateIfMissing {
        match opened.ensure_schema()? {
            SchemaOutcome::AlreadyCurrent => {}
            SchemaOutcome::Pushed { steps } => eprintln!(
                "ledger app {}: pushed the migration-domain schema ({steps} step(s))",
                opened.app_id()
            ),
        }
    }
    Ok(Some(opened))
}

fn embedded_ledger(dir: &Path, engine: &LocalEngine, mode: Open) -> anyhow::Result<Option<Ledger>> {
    let pointer_path = dir.join(POINTER_FILE);
    let api: Arc<dyn InstantApi> = Arc::new(engine.clone());
    match std::fs::read(&pointer_path) {
        Ok(bytes) => {
            let pointer: Pointer = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a ledger pointer", pointer_path.display()))?;
            let token = engine
                .store()
                .app_admin_token(&pointer.app_id)
                .map_err(|error| anyhow::anyhow!("workspace {}: {error}", dir.display()))?
                .with_context(|| {
                    format!(
                        "{} names ledger app {}, which the workspace does not have",
                        pointer_path.display(),
                        pointer.app_id
                    )
                })?;
            Ok(Some(Ledger::new(api, AppAuth::new(&pointer.app_id, token))))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if mode == Open::IfPresent {
                return Ok(None);
            }
            let schema = instant_schema::BuiltinSchema::MigrationDomain
                .load()
                .map_err(|error| anyhow::anyhow!("builtin:migration-domain: {error}"))?
                .dsl()
                .to_dsl_json();
            let created = api
                .create_ephemeral_app(&EphemeralAppRequest {
                    title: LEDGER_APP_TITLE.to_string(),
                    schema: Some(schema),
                    rules: None,
                })
                .map_err(|error| anyhow::anyhow!("creating the ledger app: {error}"))?;
            let pointer = Pointer {
                app_id: created.app.id.clone(),
                title: created.app.title.clone(),
                created_at: now_rfc3339(),
            };
            let mut bytes = serde_json::to_vec_pretty(&pointer)?;
            bytes.push(b'\n');
            write_atomic(&pointer_path, &bytes)?;
            eprintln!(
                "created ledger app {} in workspace {}",
                pointer.app_id,
                dir.display()
            );
            Ok(Some(Ledger::new(api, created.app.auth())))
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", pointer_path.display())),
    }
}

pub fn run(command: LedgerCommand, json: bool) -> anyhow::Result<Outcome> {
    match command {
        LedgerCommand::Record(args) => record(args, json),
        LedgerCommand::Show(args) => show(args, json),
    }
}

fn require_ledger(source: &LedgerSourceArgs, mode: Open) -> anyhow::Result<Ledger> {
    open_ledger(source.workspace.as_deref(), &source.ledger, &source.http, mode)?.with_context(|| {
        if source.workspace.is_some() {
            "the workspace has no ledger yet (`threadmig ledger record` creates it)".to_string()
        } else {
            "which ledger? give --workspace DIR, or --ledger-app-id APP with --ledger-token-file FILE"
                .to_string()
        }
    })
}

fn record(args: LedgerRecordArgs, json: bool) -> anyhow::Result<Outcome> {
    if args.run_ids.is_empty() && !args.all {
        bail!("which runs? give --run-id RUN_ID (repeatable) or --all");
    }
    if !args.reports.is_empty() && args.run_ids.len() != 1 {
        bail!("--report needs exactly one --run-id (the run the reports belong to)");
    }
    for run_id in &args.run_ids {
        migration::evidence::validate_run_id(run_id)
            .map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    }
    // Inputs are checked before the ledger is created or written.
    let mut reports = Vec::new();
    for path in &args.reports {
        let bytes = std::fs::read(path)
            .with_context(|| format!("--report {}: cannot read", path.display()))?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .with_context(|| format!("--report {}: not a file", path.display()))?;
        reports.push((name, bytes));
    }
    let runs_dir = args.artifacts.join("runs");
    let run_ids: Vec<String> = if args.all {
        let mut ids: Vec<String> = std::fs::read_dir(&runs_dir)
            .with_context(|| format!("reading {}", runs_dir.display()))?
            .flatten()
            .filter(|entry| {
                entry
                    .path()
                    .join(migration::evidence::MANIFEST_FILE)
                    .is_file()
            })
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    } else {
        args.run_ids.clone()
    };
    for run_id in &run_ids {
        let folder = runs_dir.join(run_id);
        if !folder.is_dir() && reports.is_empty() {
            bail!(
                "run {run_id}: no run folder {} (and no --report to record)",
                folder.display()
            );
        }
    }
    let ledger = require_ledger(&args.source, Open::CreateIfMissing)?;
    let now = now_rfc3339();
    let mut recorded = Vec::new();
    for run_id in &run_ids {
        let folder: PathBuf = runs_dir.join(run_id);
        let mut entry = if folder.is_dir() {
            let record = ledger
                .record_run_folder(&folder)
                .with_context(|| format!("recording run {run_id}"))?;
            json!({
                "runId": run_id,
                "source": "run_folder",
                "steps": record.steps,
                "artifacts": record.artifacts,
                "artifactsWritten": record.artifacts_written,
                "chunksWritten": record.chunks_written,
                "bytes": record.bytes,
            })
        } else {
            ledger.record_run(&RunRecord {
                run_id: run_id.clone(),
                org_id: None,
                target_app_id: None,
                status: "completed".to_string(),
                started_at: now.clone(),
                ended_at: Some(now.clone()),
                summary: json!({"source": "reports"}),
            })?;
            json!({"runId": run_id, "source": "reports"})
        };
        let mut report_names = Vec::new();
        for (name, bytes) in &reports {
            let status = match serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|report| report.get("ok").and_then(Value::as_bool))
            {
                Some(false) => "failed",
                _ => "completed",
            };
            ledger
                .record_report(run_id, name, status, bytes, &now)
                .with_context(|| format!("recording report {name} of run {run_id}"))?;
            report_names.push(name.clone());
        }
        entry["reports"] = json!(report_names);
        recorded.push(entry);
    }
    if json {
        print_json(&json!({
            "ok": true,
            "ledgerAppId": ledger.app_id(),
            "runs": recorded,
        }))?;
    } else {
        for entry in &recorded {
            println!(
                "recorded run {} ({}): {} step(s), {} artifact(s), {} written, {} chunk(s), {} report(s)",
                entry["runId"].as_str().unwrap_or(""),
                entry["source"].as_str().unwrap_or(""),
                entry["steps"].as_u64().unwrap_or(0),
                entry["artifacts"].as_u64().unwrap_or(0),
                entry["artifactsWritten"].as_u64().unwrap_or(0),
                entry["chunksWritten"].as_u64().unwrap_or(0),
                entry["reports"].as_array().map_or(0, Vec::len),
            );
        }
        println!("ledger app {}", ledger.app_id());
    }
    Ok(Outcome::Ok)
}

fn show(args: LedgerShowArgs, json: bool) -> anyhow::Result<Outcome> {
    let ledger = require_ledger(&args.source, Open::IfPresent)?;
    let snapshot = ledger.snapshot()?;
    let runs: Vec<&fleet::ledger::LedgerRun> = snapshot
        .runs
        .iter()
        .filter(|run| args.run_id.as_deref().is_none_or(|id| id == run.run_id))
        .collect();
    if let Some(run_id) = &args.run_id {
        if runs.is_empty() {
            bail!("run {run_id} is not in ledger app {}", snapshot.app_id);
        }
    }
    if json {
        let runs: Vec<Value> = runs
            .iter()
            .map(|run| {
                json!({
                    "runId": run.run_id,
                    "orgId": run.org_id,
                    "targetAppId": run.target_app_id,
                    "status": run.status,
                    "startedAt": run.started_at,
                    "endedAt": run.ended_at,
                    "summary": run.summary,
                    "steps": run.steps.iter().map(|step| json!({
                        "name": step.name,
                        "status": step.status,
                        "startedAt": step.started_at,
                        "endedAt": step.ended_at,
                    })).collect::<Vec<_>>(),
                    "artifacts": run.artifacts.iter().map(|artifact| json!({
                        "label": artifact.label,
                        "stepName": artifact.step_name,
                        "kind": artifact.kind,
                        "sha256": artifact.sha256,
                        "sizeBytes": artifact.size_bytes,
                        "chunked": artifact.chunked,
                    })).collect::<Vec<_>>(),
                    "reports": run.reports.iter().map(|report| json!({
                        "status": report.status,
                        "report": report.report,
                        "createdAt": report.created_at,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&json!({"ok": true, "ledgerAppId": snapshot.app_id, "runs": runs}))?;
    } else {
        println!("ledger app {}: {} run(s)", snapshot.app_id, runs.len());
        for run in runs {
            println!(
                "{}  org {}  {}  steps {}  artifacts {}  reports {}",
                run.run_id,
                run.org_id.as_deref().unwrap_or("-"),
                run.status,
                run.steps.len(),
                run.artifacts.len(),
                run.reports.len()
            );
        }
    }
    Ok(Outcome::Ok)
}
