//! `threadmig migrate`: the gated migration of one org, or a wave (`--org-ids`, canary
//! first). The sequence itself is `fleet::migrate`; this module resolves the orgs and their
//! credentials, renders progress on stderr, asks for interactive approval on a terminal,
//! records each run in the ledger and prints the final JSON (never a token).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fleet::matrix::{parse_org_ids, TargetSchema};
use fleet::migrate::{
    migrate_org, MigrateOptions, MigrateReport, MigrateTarget, Observer, Outcome as RunOutcome,
    StageResult,
};
use instant_api::InstantApi;
use instant_local::engine::LocalEngine;
use migration::evidence::{new_run_id, RunDir};
use serde_json::{json, Value};

use crate::cli::MigrateArgs;
use crate::commands::ledger::{open_ledger, Open};
use crate::connect::connect;
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

pub fn run(args: MigrateArgs, json: bool) -> anyhow::Result<Outcome> {
    let orgs = wave(&args)?;
    let target = TargetSchema::load(&args.schema_file)
        .with_context(|| format!("--schema-file {}", args.schema_file))?;
    let connection = connect(&args.connect, true)?;
    let base_run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => new_run_id("mig", unix_ms()),
    };
    migration::evidence::validate_run_id(&base_run_id)?;
    let ledger = if args.ledger_temporary {
        Some(temporary_ledger(connection.api.clone(), &base_run_id)?)
    } else {
        open_ledger(
            args.connect.workspace.as_deref(),
            &args.ledger,
            &args.connect.http,
            Open::CreateIfMissing,
        )?
    };
    let options = MigrateOptions {
        dry_run: args.dry_run,
        allow_unsafe: args.allow_unsafe,
        allow_destructive: args.allow_destructive,
        approved_sha256: None,
        concurrency: args.concurrency as usize,
        batch_size: args.batch_size as usize,
        page_size: args.page_size as usize,
        sample_size: args.sample as usize,
        ..MigrateOptions::default()
    };
    let rehearsal_engine = || -> Result<Box<dyn InstantApi>, String> {
        LocalEngine::in_memory()
            .map(|engine| Box::new(engine) as Box<dyn InstantApi>)
            .map_err(|error| error.to_string())
    };
    let mut results = Vec::new();
    let mut stopped_by: Option<String> = None;
    for org in &orgs {
        if let Some(failed) = &stopped_by {
            results.push(json!({"org": org, "status": "not_run",
                                "reason": format!("the wave stopped after {failed} (no --continue-on-error)")}));
            continue;
        }
        let run_id = if orgs.len() == 1 {
            base_run_id.clone()
        } else {
            format!("{base_run_id}.{}", sanitise(org))
        };
        let run = RunDir::new(&args.artifacts, &run_id)?;
        let auth = match connection.org_auth(org) {
            Ok(auth) => auth,
            Err(error) => {
                let reason = format!("{error:#}");
                eprintln!("threadmig migrate: {org}: {reason}");
                results.push(
                    json!({"org": org, "status": "blocked", "stage": "credentials",
                                    "reason": reason, "runId": run_id}),
                );
                if !args.continue_on_error {
                    stopped_by = Some(org.clone());
                }
                continue;
            }
        };
        let mut org_options = options.clone();
        // One org: its --approve must be the plan's hash, or the run is blocked with both
        // hashes named. A wave: each org's plan is approved when one of the --approve values
        // is its hash (the observer checks), else it waits for approval.
        if orgs.len() == 1 && args.approve.len() == 1 {
            org_options.approved_sha256 = args.approve.first().cloned();
        }
        let mut observer = Terminal {
            org: org.clone(),
            approvals: args.approve.clone(),
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            progress: std::io::stderr().is_terminal(),
            quiet: json,
        };
        let migrate_target = MigrateTarget {
            api: connection.api.as_ref(),
            auth: &auth,
            org_id: org,
            schema: &target,
            run: &run,
            artifacts: &args.artifacts,
            rehearsal_engine: &rehearsal_engine,
        };
        let report = migrate_org(&migrate_target, &org_options, &mut observer)
            .with_context(|| format!("organisation {org}: writing the run evidence"))?;
        let report_path = write_report(&args.artifacts, &report)?;
        let ledger_app = match &ledger {
            Some(ledger) => {
                record_in_ledger(ledger, run.path())
                    .with_context(|| format!("recording run {} in the ledger", report.run_id))?;
                Some(ledger.app_id().to_string())
            }
            None => None,
        };
        if !json {
            eprintln!(
                "{org}: {} ({})",
                report.outcome.as_str(),
                outcome_detail(&report.outcome)
            );
        }
        let success = report.outcome.is_success();
        results.push(json!({
            "org": report.org_id,
            "appId": report.app_id,
            "ledgerAppId": ledger_app,
            "runId": report.run_id,
            "status": report.outcome.as_str(),
            "outcome": report.outcome,
            "planSha256": report.plan_sha256,
            "resumed": report.resumed,
            "overriddenGates": report.overridden_gates,
            "evidence": report.evidence,
            "report": report_path,
        }));
        if !success && !args.continue_on_error {
            stopped_by = Some(org.clone());
        }
    }
    let all_verified = results.iter().all(|result| {
        matches!(
            result["status"].as_str(),
            Some("migrated_verified") | Some("dry_run")
        )
    });
    let summary = json!({
        "ok": all_verified,
        "dryRun": args.dry_run,
        "allowUnsafe": args.allow_unsafe,
        "orgs": results,
    });
    if json {
        print_json(&summary)?;
    } else {
        for result in summary["orgs"].as_array().into_iter().flatten() {
            println!(
                "{:<32} {:<20} {}",
                result["org"].as_str().unwrap_or("?"),
                result["status"].as_str().unwrap_or("?"),
                result["evidence"]
                    .as_str()
                    .or(result["reason"].as_str())
                    .unwrap_or("")
            );
            if result["status"] == "awaiting_approval" {
                println!(
                    "  approve with: --approve {}",
                    result["planSha256"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(if all_verified {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

/// A fresh temporary ledger app (`POST /dash/apps/ephemeral` through the port) with the
/// migration-domain schema; only its id is ever shown.
fn temporary_ledger(
    api: std::sync::Arc<dyn InstantApi>,
    run_id: &str,
) -> anyhow::Result<fleet::ledger::Ledger> {
    let schema = instant_schema::BuiltinSchema::MigrationDomain
        .load()
        .map_err(|error| anyhow::anyhow!("builtin:migration-domain: {error}"))?
        .dsl()
        .to_dsl_json();
    let created = api
        .create_ephemeral_app(&instant_api::EphemeralAppRequest {
            title: format!("threadmig-ledger-{run_id}"),
            schema: Some(schema),
            rules: None,
        })
        .map_err(|error| anyhow::anyhow!("creating the temporary ledger app: {error}"))?;
    let ledger = fleet::ledger::Ledger::new(api, created.app.auth());
    ledger.ensure_schema()?;
    eprintln!("temporary ledger app {}", ledger.app_id());
    Ok(ledger)
}

/// The orgs of the run: `--org`, or the `--org-ids` wave with the canary first.
fn wave(args: &MigrateArgs) -> anyhow::Result<Vec<String>> {
    let mut orgs = match (&args.connect.org, &args.org_ids) {
        (Some(_), Some(_)) => {
            bail!("give --org (one organisation) or --org-ids (a wave), not both")
        }
        (Some(org), None) => vec![org.clone()],
        (None, Some(ids)) => parse_org_ids(ids),
        (None, None) => bail!("which organisation? give --org ORG or --org-ids A,B,C"),
    };
    if orgs.is_empty() {
        bail!("--org-ids names no organisation");
    }
    if let Some(canary) = &args.canary {
        let Some(position) = orgs.iter().position(|org| org == canary) else {
            bail!("--canary {canary} is not one of --org-ids");
        };
        let canary = orgs.remove(position);
        orgs.insert(0, canary);
    }
    let mut seen = std::collections::BTreeSet::new();
    orgs.retain(|org| seen.insert(org.clone()));
    Ok(orgs)
}

/// `artifacts/reports/migration.<runId>.<org>.json`.
fn write_report(artifacts: &Path, report: &MigrateReport) -> anyhow::Result<PathBuf> {
    let path = artifacts.join("reports").join(format!(
        "migration.{}.{}.json",
        report.run_id,
        sanitise(&report.org_id)
    ));
    let mut value = serde_json::to_value(report)?;
    if let Value::Object(map) = &mut value {
        map.insert("createdAt".into(), json!(now_rfc3339()));
    }
    let mut bytes = serde_json::to_vec_pretty(&value)?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// The run folder as migration-domain entities (its `migrate` stage carries the outcome; the
/// run's status is derived from the stages: a blocked or failed stage makes it `failed`).
fn record_in_ledger(ledger: &fleet::ledger::Ledger, folder: &Path) -> anyhow::Result<()> {
    ledger.record_run_folder(folder)?;
    Ok(())
}

fn outcome_detail(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::MigratedVerified => "every invariant passes".into(),
        RunOutcome::AppliedUnverified { reason } => reason.clone(),
        RunOutcome::Blocked { stage, reason } | RunOutcome::Failed { stage, reason } => {
            format!("{stage}: {reason}")
        }
        RunOutcome::AwaitingApproval { sha256 } => {
            format!("nothing applied; approve the plan with --approve {sha256}")
        }
        RunOutcome::DryRun { sha256 } => {
            format!("dry run: nothing on the target was mutated; plan sha256 {sha256}")
        }
    }
}

/// An org id as a file-name part.
fn sanitise(org: &str) -> String {
    org.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}

/// Progress on stderr, and the interactive approval.
struct Terminal {
    org: String,
    approvals: Vec<String>,
    interactive: bool,
    progress: bool,
    quiet: bool,
}

impl Observer for Terminal {
    fn now(&self) -> String {
        now_rfc3339()
    }

    fn stage_started(&mut self, name: &str) {
        if self.progress && !self.quiet {
            eprint!("\r{}: {name}…\x1b[K", self.org);
        }
    }

    fn stage_finished(&mut self, stage: &StageResult) {
        if self.quiet {
            return;
        }
        if self.progress {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "{}: {:<22} {:<8} {} ({} ms)",
            self.org, stage.name, stage.status, stage.detail, stage.elapsed_ms
        );
    }

    fn apply_progress(&mut self, progress: &migration::apply::Progress) {
        if self.progress && !self.quiet {
            eprint!(
                "\r{}: apply {}/{} batches, {}/{} steps, {:.0} steps/s, ETA {}\x1b[K",
                self.org,
                progress.batches_done,
                progress.batches_total,
                progress.steps_done,
                progress.steps_total,
                progress.steps_per_second(),
                progress
                    .eta()
                    .map(|eta| format!("{}s", eta.as_secs()))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }

    fn approve(&mut self, org_id: &str, sha256: &str, summary: &str) -> bool {
        if self
            .approvals
            .iter()
            .any(|approved| migration::apply::sha_matches(approved, sha256))
        {
            return true;
        }
        if !self.interactive {
            return false;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\n{org_id}: the rehearsal passed. Plan: {summary}\nType the plan's sha256 (its \
             first 12 characters are enough) to apply it to the org's app, or press Enter to \
             stop: "
        );
        let _ = stderr.flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        let answer = answer.trim().to_ascii_lowercase();
        answer.len() >= 12 && sha256.starts_with(&answer)
    }
}
