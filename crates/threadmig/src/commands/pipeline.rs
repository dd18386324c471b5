//! `threadmig pipeline --mode planning`: the nine planning steps in this process
//! (`fleet::pipeline`), with the environment check, the preflight scan and the model plan
//! supplied from here (they need the engine and the code scanner). Writes
//! `reports/pipeline.<run id>.json`; never mutates an app or the directory.
//!
//! Exit codes: 0 the wave is safe, 1 it is not (a gate fails, an org is blocked, a step or a
//! validation failed), 2 the pipeline could not start (a usage error, a missing repository
//! or schema, a run id already used, ports that cannot be opened) or its report could not be
//! written. Everything is checked before the first step.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use code_scan::{ModelPlan, PreflightReport, RepoScan};
use fleet::matrix::{parse_org_ids, TargetSchema};
use fleet::pipeline::{
    self, HostOutcome, PipelineConfig, PipelineReport, Ports, StepRecord, StepStatus,
};
use fleet::validate::ValidateOptions;
use instant_api::InstantApi;
use instant_local::engine::LocalEngine;
use migration::evidence::{new_run_id, validate_run_id};
use org_directory::clerk::SECRET_KEY_VARIABLE;
use org_directory::OrgDirectory;
use serde_json::json;

use super::ledger::{open_ledger, Open};
use super::matrix::open_ports;
use crate::cli::{PipelineArgs, PipelineMode};
use crate::output::{now_rfc3339, print_json};
use crate::Outcome;

pub fn run(args: PipelineArgs, json: bool) -> anyhow::Result<Outcome> {
    let PipelineMode::Planning = args.mode;
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => new_run_id("mig", unix_ms()),
    };
    validate_run_id(&run_id).map_err(|error| anyhow::anyhow!("--run-id: {error}"))?;
    if !args.repo.is_dir() {
        bail!(
            "--repo {}: not a folder (the application repository the scan and the model plan read)",
            args.repo.display()
        );
    }
    let schema_source = resolve_schema(&args.repo, args.schema_file.as_deref())?;
    let schema = TargetSchema::load(&schema_source)
        .with_context(|| format!("--schema-file {schema_source}"))?;
    let org_ids = match &args.org_ids {
        Some(text) => {
            let mut ids = parse_org_ids(text);
            let mut seen = std::collections::BTreeSet::new();
            ids.retain(|id| seen.insert(id.clone()));
            if ids.is_empty() {
                bail!("--org-ids {text:?} names no organisation");
            }
            ids
        }
        None => Vec::new(),
    };
    let config = PipelineConfig {
        run_id,
        artifacts: args.artifacts.clone(),
        repo: args.repo.clone(),
        schema,
        org_ids,
        allow_unsafe: args.allow_unsafe,
        continue_on_error: args.continue_on_error,
        concurrency: args.concurrency as usize,
        env_name: args.env.clone(),
        validate: ValidateOptions {
            page_size: args.page_size as usize,
            batch_size: args.batch_size as usize,
            ..ValidateOptions::default()
        },
    };
    pipeline::check_start(&config)?;
    let ports = open_ports(&args.source)?;
    let ledger = open_ledger(
        args.source.workspace.as_deref(),
        &args.ledger,
        &args.source.http,
        Open::IfPresent,
    )?;
    let rehearsal_engine = || -> Result<Box<dyn InstantApi>, String> {
        LocalEngine::in_memory()
            .map(|engine| Box::new(engine) as Box<dyn InstantApi>)
            .map_err(|error| error.to_string())
    };
    let mut host = Host {
        workspace: args.source.workspace.clone(),
        directory: ports.directory.clone(),
        scan: None,
        progress: !json && std::io::stderr().is_terminal(),
    };
    let report = pipeline::run_pipeline(
        &config,
        &Ports {
            directory: ports.directory.as_ref(),
            api: ports.api.as_ref(),
            connection: ports.connection.clone(),
            ledger: ledger.as_ref(),
            rehearsal_engine: &rehearsal_engine,
        },
        &mut host,
    )?;
    let report_path = config
        .artifacts
        .join("reports")
        .join(pipeline::report_file_name(&config.run_id));
    if json {
        print_json(&json!({
            "ok": report.ok,
            "runId": report.run_id,
            "summary": report.summary,
            "blockers": report.blockers,
            "overriddenGates": report.overridden_gates,
            "pipelineJson": report_path,
            "evidence": report.evidence,
        }))?;
    } else {
        print_table(&report);
        println!("wave: {}", if report.ok { "safe" } else { "NOT safe" });
        for blocker in &report.blockers {
            println!("  {}", fleet::issues::text::truncate(blocker, 160));
        }
        println!("wrote {}", report_path.display());
    }
    Ok(if report.ok {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

/// `--schema-file`, else `<repo>/instant.schema.ts`; a file that does not exist is an error
/// here, before any step (a `builtin:` name is not a file).
fn resolve_schema(repo: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let source = match given {
        Some(source) => source.to_string(),
        None => repo.join("instant.schema.ts").display().to_string(),
    };
    if !source.starts_with("builtin:") && !Path::new(&source).is_file() {
        if given.is_some() {
            bail!("--schema-file {source}: no such file");
        }
        bail!(
            "no target schema: {source} does not exist; give --schema-file (a schema file or builtin:thread-v1)"
        );
    }
    Ok(source)
}

fn print_table(report: &PipelineReport) {
    let width = report
        .steps
        .iter()
        .map(|step| step.id.len())
        .max()
        .unwrap_or(0);
    for step in &report.steps {
        println!(
            "{:<width$}  {:<8}  {:>7} ms  {}",
            step.id,
            step.status.as_str(),
            step.elapsed_ms,
            fleet::issues::text::truncate(&line(step), 120)
        );
    }
    let s = &report.summary;
    println!(
        "{} steps: {} ok, {} findings, {} failed, {} skipped in {:.1} s",
        s.total,
        s.ok,
        s.findings,
        s.failed,
        s.skipped,
        report.elapsed_ms as f64 / 1000.0
    );
}

fn line(step: &StepRecord) -> String {
    match step.status {
        StepStatus::Failed => step.error.clone().unwrap_or_default(),
        StepStatus::Skipped => step.reason.clone().unwrap_or_default(),
        _ => step.detail.clone(),
    }
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0)
}

/// The steps that need this crate's dependencies, and progress on stderr.
struct Host {
    workspace: Option<PathBuf>,
    directory: Arc<dyn OrgDirectory>,
    /// The repository scan of step 02, reused by step 03.
    scan: Option<RepoScan>,
    progress: bool,
}

impl Host {
    fn scan(&mut self, repo: &Path) -> Result<&RepoScan, String> {
        if self.scan.is_none() {
            let scan = code_scan::scan_repository(repo).map_err(|error| error.to_string())?;
            self.scan = Some(scan);
        }
        self.scan
            .as_ref()
            .ok_or_else(|| "the repository scan is not available".to_string())
    }
}

fn write_pair(out: &Path, json: &[u8], out_md: &Path, markdown: &str) -> Result<(), String> {
    crate::output::write_atomic(out, json).map_err(|error| format!("{error:#}"))?;
    crate::output::write_atomic(out_md, markdown.as_bytes()).map_err(|error| format!("{error:#}"))
}

impl pipeline::Host for Host {
    fn now(&self) -> String {
        now_rfc3339()
    }

    fn env_check(&mut self) -> HostOutcome {
        match &self.workspace {
            Some(dir) => match self.directory.list_orgs() {
                Ok(orgs) => HostOutcome::ok(format!(
                    "workspace {} opens; {} organisation(s)",
                    dir.display(),
                    orgs.len()
                )),
                Err(error) => HostOutcome::failed(format!("workspace {}: {error}", dir.display())),
            },
            None => {
                let present =
                    std::env::var(SECRET_KEY_VARIABLE).is_ok_and(|value| !value.trim().is_empty());
                if present {
                    HostOutcome::ok(format!("{SECRET_KEY_VARIABLE} is set"))
                } else {
                    HostOutcome::failed(format!("{SECRET_KEY_VARIABLE} is not set or empty"))
                }
            }
        }
    }

    fn preflight_scan(&mut self, repo: &Path, out: &Path, out_md: &Path) -> HostOutcome {
        let scan = match self.scan(repo) {
            Ok(scan) => scan,
            Err(error) => return HostOutcome::failed(error),
        };
        let report = PreflightReport::build(scan, now_rfc3339());
        let mut body = match serde_json::to_vec_pretty(&report) {
            Ok(body) => body,
            Err(error) => return HostOutcome::failed(format!("serialising the scan: {error}")),
        };
        body.push(b'\n');
        if let Err(error) = write_pair(out, &body, out_md, &report.to_markdown()) {
            return HostOutcome::failed(error);
        }
        let c = &report.counts;
        let detail = format!(
            "{} file(s) scanned ({} did not parse): story imports {}, story API {}, thread imports {}; ready: {}",
            c.scanned_files,
            c.unparsed_files,
            c.story_imports,
            c.old_apis,
            c.thread_imports,
            if report.readiness.overall { "yes" } else { "no" }
        );
        if report.has_findings() {
            HostOutcome::findings(detail)
        } else {
            HostOutcome::ok(detail)
        }
    }

    fn model_plan(&mut self, repo: &Path, out: &Path, out_md: &Path) -> HostOutcome {
        let scan = match self.scan(repo) {
            Ok(scan) => scan,
            Err(error) => return HostOutcome::failed(error),
        };
        let plan = ModelPlan::build(scan, now_rfc3339());
        let mut body = match serde_json::to_vec_pretty(&plan) {
            Ok(body) => body,
            Err(error) => return HostOutcome::failed(format!("serialising the plan: {error}")),
        };
        body.push(b'\n');
        if let Err(error) = write_pair(out, &body, out_md, &plan.to_markdown()) {
            return HostOutcome::failed(error);
        }
        let s = &plan.summary;
        let detail = format!(
            "legacy model {} | legacy API {} | thread model {} | thread API {}; ready: {}",
            s.legacy_model_matches,
            s.legacy_api_matches,
            s.thread_model_matches,
            s.thread_api_matches,
            if s.ready { "yes" } else { "no" }
        );
        if plan.has_findings() {
            HostOutcome::findings(detail)
        } else {
            HostOutcome::ok(detail)
        }
    }

    fn step_started(&mut self, id: &str) {
        if self.progress {
            eprint!("\rthreadmig pipeline: {id}…\x1b[K");
        }
    }

    fn step_finished(&mut self, step: &StepRecord) {
        if self.progress {
            eprintln!(
                "\r\x1b[Kthreadmig pipeline: {} {} ({} ms)",
                step.id,
                step.status.as_str(),
                step.elapsed_ms
            );
        }
    }
}
