//! The planning pipeline (`threadmig pipeline --mode planning`): the nine steps of the old
//! `run_migration_pipeline`, in this process, in order, with the old step ids, report names and
//! the keys of `pipeline.<runId>.json`. It never mutates an app or the directory.
//!
//! | step | what | status |
//! |---|---|---|
//! | `01-verify_env` | the caller's environment check | ok / failed |
//! | `02-preflight_scan` | the caller's repository scan -> `preflight/scan.json` | ok / findings / failed |
//! | `03-plan_story_thread_model_migration` | the caller's model plan | ok / findings / failed |
//! | `04-plan_schema_push_org_matrix` | [`crate::matrix`] | ok / findings (an org not safe) / failed |
//! | `05-diagnose_plan_failures` | [`crate::diagnose`] on this run's matrix | ok / findings / failed / skipped |
//! | `06-build_case_runbook` | [`crate::runbook`] on this run's matrix and diagnostics | ok / findings / failed / skipped |
//! | `07-assert_hot_deploy_safe` | [`crate::gates`] on this run's three inputs | ok / findings |
//! | `08-report_migration_status` | [`crate::status`] on this run's matrix | ok / failed / skipped |
//! | `09-validate_pre_migration_bundle-<org>` | [`crate::validate`] per `--org-ids` org | ok / failed / skipped |
//!
//! What differs from the old scripts, on purpose:
//! - **Findings never stop the pipeline.** A matrix with blocked rows is a finding, not a
//!   failure, so diagnostics, the runbook and the gates run exactly when they matter. Only a
//!   step that could not do its job (`failed`) stops the rest, unless `continue_on_error`; the
//!   steps it stops are listed as `skipped` with `stopped_after:<step id>`.
//! - **Only this run's evidence is read.** Diagnose, runbook and status read the matrix this
//!   run produced (otherwise `skipped`, `missing_matrix:<path>`), and the gates treat an input
//!   this run did not produce as missing (fail closed), never a stale file from an earlier run.
//! - **`allow_unsafe` never widens a gate.** It is passed to the gate report (which records
//!   the overridden gates) and recorded here; `ok` stays false when a gate fails.
//! - **`ok` means the wave is safe**: every step `ok` (or validation `skipped` for want of org
//!   ids). Findings anywhere (a gate failing, a blocked org) or a failed step make it false;
//!   `blockers` says which, one line each.
//! - **One run id everywhere**: every report records it, each org's validation bundle has its
//!   own run folder `<runId>.<org>`, and the reports of this run are copied with their sha256
//!   into `runs/<runId>/00-planning/` (its manifest), so a later run overwriting the fixed
//!   report names does not erase this run's evidence.
//! - One org's failure is one step's status, never an abort of the pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use instant_api::InstantApi;
use migration::evidence::{sha256_file, EvidenceError, RunDir};
use org_directory::OrgDirectory;
use serde::Serialize;
use serde_json::{json, Value};

use crate::diagnose::{self, DiagnoseConfig, DiagnosticsReport};
use crate::gates::{self, GateInput, GateInputs, GateReport, InputKind, InputProblem, InputState};
use crate::ledger::Ledger;
use crate::matrix::{self, Connection, MatrixConfig, MatrixReport, TargetSchema};
use crate::migrate::RehearsalEngine;
use crate::runbook::{self, RunbookConfig};
use crate::status::{self, LedgerInfo, MatrixInput, MigrationState, StatusReport};
use crate::validate::{self, ValidateOptions, ValidateTarget};

/// The only mode: planning and pre-migration validation.
pub const MODE_PLANNING: &str = "planning";

pub const STEP_ENV: &str = "01-verify_env";
pub const STEP_PREFLIGHT: &str = "02-preflight_scan";
pub const STEP_MODEL_PLAN: &str = "03-plan_story_thread_model_migration";
pub const STEP_MATRIX: &str = "04-plan_schema_push_org_matrix";
pub const STEP_DIAGNOSE: &str = "05-diagnose_plan_failures";
pub const STEP_RUNBOOK: &str = "06-build_case_runbook";
pub const STEP_GATES: &str = "07-assert_hot_deploy_safe";
pub const STEP_STATUS: &str = "08-report_migration_status";
/// Followed by `-<org>` (sanitised) per organisation; alone when there is none.
pub const STEP_VALIDATE: &str = "09-validate_pre_migration_bundle";

/// The reason of the validation step when no org id was given.
pub const NO_ORG_IDS: &str = "no_org_ids_provided";
/// `reports/pre-migration-validation.summary.json`.
pub const VALIDATION_SUMMARY: &str = "pre-migration-validation.summary.json";
/// The copies of this run's reports inside its run folder.
pub const PLANNING_SECTION: &str = "00-planning";

/// `pipeline.<runId>.json`.
pub fn report_file_name(run_id: &str) -> String {
    format!("pipeline.{run_id}.json")
}

/// The step id of one org's validation.
pub fn validate_step_id(org_id: &str) -> String {
    format!("{STEP_VALIDATE}-{}", validate::file_name_part(org_id))
}

/// The run id of one org's validation bundle: `<runId>.<org>`.
pub fn validation_run_id(run_id: &str, org_id: &str) -> String {
    format!("{run_id}.{}", validate::file_name_part(org_id))
}

/// Where every file of a pipeline run goes, by the old names under the artifacts root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub artifacts: PathBuf,
    pub preflight: PathBuf,
    pub preflight_md: PathBuf,
    pub model_plan: PathBuf,
    pub model_plan_md: PathBuf,
    pub matrix: PathBuf,
    pub matrix_md: PathBuf,
    pub diagnostics: PathBuf,
    pub diagnostics_md: PathBuf,
    pub runbook: PathBuf,
    pub runbook_md: PathBuf,
    pub cases: PathBuf,
    pub gates: PathBuf,
    pub gates_md: PathBuf,
    pub status: PathBuf,
    pub status_md: PathBuf,
    pub validation_summary: PathBuf,
    pub report: PathBuf,
}

impl Paths {
    pub fn new(artifacts: &Path, run_id: &str) -> Paths {
        let reports = artifacts.join("reports");
        Paths {
            artifacts: artifacts.to_path_buf(),
            preflight: artifacts.join(InputKind::Preflight.default_relative_path()),
            preflight_md: artifacts.join("preflight/scan.md"),
            model_plan: artifacts.join(InputKind::ModelPlan.default_relative_path()),
            model_plan_md: reports.join("story-thread-model-plan.md"),
            matrix: reports.join(matrix::REPORT_JSON),
            matrix_md: reports.join(matrix::REPORT_MD),
            diagnostics: reports.join(diagnose::REPORT_JSON),
            diagnostics_md: reports.join(diagnose::REPORT_MD),
            runbook: reports.join(runbook::REPORT_JSON),
            runbook_md: reports.join(runbook::REPORT_MD),
            cases: artifacts.join("cases"),
            gates: reports.join(gates::REPORT_JSON),
            gates_md: reports.join(gates::REPORT_MD),
            status: reports.join(status::REPORT_JSON),
            status_md: reports.join(status::REPORT_MD),
            validation_summary: reports.join(VALIDATION_SUMMARY),
            report: reports.join(report_file_name(run_id)),
        }
    }

    /// One org's validation report: `reports/pre-migration-validation.<runId>.<org>.json`.
    pub fn validation_report(&self, run_id: &str, org_id: &str) -> PathBuf {
        self.artifacts
            .join("reports")
            .join(validate::report_file_name(run_id, org_id))
    }
}

/// Everything a pipeline run needs besides the ports.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub run_id: String,
    pub artifacts: PathBuf,
    /// The application repository (an existing folder).
    pub repo: PathBuf,
    /// The target schema, loaded (its `source` is the resolved schema path).
    pub schema: TargetSchema,
    /// `--org-ids`, in order, without duplicates; empty: no validation.
    pub org_ids: Vec<String>,
    pub allow_unsafe: bool,
    pub continue_on_error: bool,
    /// Orgs planned at once by the matrix and rows diagnosed at once.
    pub concurrency: usize,
    pub env_name: String,
    pub validate: ValidateOptions,
}

/// The ports and what the caller owns.
pub struct Ports<'a> {
    pub directory: &'a dyn OrgDirectory,
    pub api: &'a dyn InstantApi,
    /// How the reports name the ports (never a secret).
    pub connection: Connection,
    /// The run ledger the status reads, when there is one.
    pub ledger: Option<&'a Ledger>,
    pub rehearsal_engine: RehearsalEngine<'a>,
}

/// What a step provided by the caller reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOutcome {
    pub status: StepStatus,
    pub detail: String,
    pub error: Option<String>,
}

impl HostOutcome {
    pub fn ok(detail: impl Into<String>) -> HostOutcome {
        HostOutcome {
            status: StepStatus::Ok,
            detail: detail.into(),
            error: None,
        }
    }

    pub fn findings(detail: impl Into<String>) -> HostOutcome {
        HostOutcome {
            status: StepStatus::Findings,
            detail: detail.into(),
            error: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> HostOutcome {
        let error = error.into();
        HostOutcome {
            status: StepStatus::Failed,
            detail: String::new(),
            error: Some(error),
        }
    }
}

/// The caller's side: the clock, the three steps that need other crates (environment,
/// repository scan, model plan), and progress.
pub trait Host {
    /// RFC 3339 "now" (the caller owns the clock).
    fn now(&self) -> String;
    fn env_check(&mut self) -> HostOutcome;
    /// Scans `repo` and writes the preflight report to `out` and `out_md`.
    fn preflight_scan(&mut self, repo: &Path, out: &Path, out_md: &Path) -> HostOutcome;
    /// Writes the model plan of `repo` to `out` and `out_md`.
    fn model_plan(&mut self, repo: &Path, out: &Path, out_md: &Path) -> HostOutcome;
    fn step_started(&mut self, _id: &str) {}
    fn step_finished(&mut self, _step: &StepRecord) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Done, nothing to report.
    Ok,
    /// Done; what it found makes the wave unsafe (blocked orgs, failed gates, …).
    Findings,
    /// Could not do its job.
    Failed,
    /// Not run; `reason` says why.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Findings => "findings",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// A file a step wrote, pinned by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    pub key: String,
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
}

/// One entry of `steps[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub id: String,
    pub status: StepStatus,
    pub started_at: String,
    pub ended_at: String,
    pub elapsed_ms: u64,
    pub detail: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was skipped, or what it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_code: Option<String>,
    pub artifacts: Vec<ArtifactRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Steps, skipped ones included.
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub findings: usize,
    pub skipped: usize,
}

/// `pipeline.<runId>.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineReport {
    /// The wave is safe: see the module docs.
    pub ok: bool,
    pub mode: String,
    pub run_id: String,
    pub repo_path: PathBuf,
    pub schema_path: String,
    pub schema_sha256: String,
    pub allow_unsafe: bool,
    pub continue_on_error: bool,
    pub org_ids: Vec<String>,
    /// Failed gates that `allow_unsafe` recorded as overridden (they still fail).
    pub overridden_gates: Vec<String>,
    /// One line per step that makes the wave unsafe.
    pub blockers: Vec<String>,
    pub summary: Summary,
    pub steps: Vec<StepRecord>,
    /// The old artifact keys; `null` for a file this run did not produce.
    pub artifacts: BTreeMap<String, Option<ArtifactRef>>,
    /// The run folder holding the copies of this run's reports.
    pub evidence: PathBuf,
    pub created_at: String,
    pub ended_at: String,
    pub elapsed_ms: u64,
}

impl PipelineReport {
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "{}: already exists; a run id names one run's evidence, so give a new --run-id",
        path.display()
    )]
    RunExists { path: PathBuf },
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What must hold before the first step: the repository exists, and neither the run folder
/// nor any org's validation folder does.
pub fn check_start(config: &PipelineConfig) -> Result<(), PipelineError> {
    if !config.repo.is_dir() {
        return Err(PipelineError::Io {
            path: config.repo.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the application repository is not a folder",
            ),
        });
    }
    let mut runs = vec![RunDir::new(&config.artifacts, &config.run_id)?];
    for org in &config.org_ids {
        runs.push(RunDir::new(
            &config.artifacts,
            &validation_run_id(&config.run_id, org),
        )?);
    }
    for run in runs {
        if run.path().exists() {
            return Err(PipelineError::RunExists {
                path: run.path().to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Runs the nine steps and writes `pipeline.<runId>.json`. Errors only when the run cannot
/// start ([`check_start`]) or its own report and evidence cannot be written; every step's
/// trouble is that step's status.
pub fn run_pipeline(
    config: &PipelineConfig,
    ports: &Ports<'_>,
    host: &mut dyn Host,
) -> Result<PipelineReport, PipelineError> {
    check_start(config)?;
    let started = Instant::now();
    let created_at = host.now();
    let paths = Paths::new(&config.artifacts, &config.run_id);
    let mut run = Runner {
        config,
        ports,
        host,
        paths: &paths,
        steps: Vec::new(),
        stopped_after: None,
        produced: BTreeMap::new(),
        matrix: None,
        diagnostics: None,
        overridden: Vec::new(),
    };
    run.env();
    run.preflight();
    run.model_plan();
    run.matrix();
    run.diagnose();
    run.runbook();
    run.gates();
    run.status();
    run.validations()?;

    let steps = std::mem::take(&mut run.steps);
    let mut summary = Summary {
        total: steps.len(),
        ..Summary::default()
    };
    let mut blockers = Vec::new();
    for step in &steps {
        match step.status {
            StepStatus::Ok => summary.ok += 1,
            StepStatus::Findings => summary.findings += 1,
            StepStatus::Failed => summary.failed += 1,
            StepStatus::Skipped => summary.skipped += 1,
        }
        let why = match step.status {
            StepStatus::Ok => None,
            StepStatus::Skipped if step.reason.as_deref() == Some(NO_ORG_IDS) => None,
            StepStatus::Findings => step.reason.clone(),
            StepStatus::Failed => step.error.clone(),
            StepStatus::Skipped => step
                .reason
                .clone()
                .map(|reason| format!("skipped: {reason}")),
        };
        if let Some(why) = why {
            blockers.push(format!("{}: {why}", step.id));
        }
    }
    let artifact_keys = [
        ("preflightOut", &paths.preflight),
        ("preflightMd", &paths.preflight_md),
        ("modelPlanJson", &paths.model_plan),
        ("modelPlanMd", &paths.model_plan_md),
        ("matrixOut", &paths.matrix),
        ("matrixMd", &paths.matrix_md),
        ("diagnosticsOut", &paths.diagnostics),
        ("diagnosticsMd", &paths.diagnostics_md),
        ("caseRunbookJson", &paths.runbook),
        ("caseRunbookMd", &paths.runbook_md),
        ("hotDeployGatesJson", &paths.gates),
        ("hotDeployGatesMd", &paths.gates_md),
        ("migrationStatusJson", &paths.status),
        ("migrationStatusMd", &paths.status_md),
        ("validationSummaryJson", &paths.validation_summary),
    ];
    let artifacts: BTreeMap<String, Option<ArtifactRef>> = artifact_keys
        .iter()
        .map(|(key, path)| (key.to_string(), run.produced.get(*path).cloned()))
        .collect();
    let overridden_gates = std::mem::take(&mut run.overridden);
    let evidence = RunDir::new(&config.artifacts, &config.run_id)?;
    let report = PipelineReport {
        ok: blockers.is_empty(),
        mode: MODE_PLANNING.to_string(),
        run_id: config.run_id.clone(),
        repo_path: config.repo.clone(),
        schema_path: config.schema.source.clone(),
        schema_sha256: config.schema.sha256.clone(),
        allow_unsafe: config.allow_unsafe,
        continue_on_error: config.continue_on_error,
        org_ids: config.org_ids.clone(),
        overridden_gates,
        blockers,
        summary,
        steps,
        artifacts,
        evidence: evidence.path().to_path_buf(),
        created_at,
        ended_at: run.host.now(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    write_file(&paths.report, &report.to_json_bytes())?;
    record_evidence(&evidence, &report, &paths.report, &run.host.now())?;
    Ok(report)
}

/// Copies this run's reports into `runs/<runId>/00-planning/` and records the `pipeline`
/// stage (the manifest hashes the copies).
fn record_evidence(
    run: &RunDir,
    report: &PipelineReport,
    report_path: &Path,
    now: &str,
) -> Result<(), PipelineError> {
    let dir = run.path().join(PLANNING_SECTION);
    std::fs::create_dir_all(&dir).map_err(|source| PipelineError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut sources: Vec<&Path> = report
        .artifacts
        .values()
        .flatten()
        .map(|artifact| artifact.path.as_path())
        .collect();
    sources.push(report_path);
    for source in sources {
        let Some(name) = source.file_name() else {
            continue;
        };
        let target = dir.join(name);
        let bytes = std::fs::read(source).map_err(|error| PipelineError::Io {
            path: source.to_path_buf(),
            source: error,
        })?;
        write_file(&target, &bytes)?;
    }
    let steps: Vec<Value> = report
        .steps
        .iter()
        .map(|step| json!({"id": step.id, "status": step.status, "orgId": step.org_id}))
        .collect();
    run.record_stage(
        "pipeline",
        json!({"status": if report.ok { "ok" } else { "not_safe" }, "ok": report.ok,
               "mode": report.mode, "allowUnsafe": report.allow_unsafe,
               "overriddenGates": report.overridden_gates, "summary": report.summary,
               "steps": steps, "schemaSha256": report.schema_sha256}),
        &[],
        now,
    )?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    migration::io::write_atomic(path, bytes).map_err(|source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What one step ended with, before timing and hashing.
struct Outcome {
    status: StepStatus,
    detail: String,
    error: Option<String>,
    reason: Option<String>,
    org_id: Option<String>,
    issue_code: Option<String>,
    /// `(key, path)` of the files the step wrote (hashed when the step did not fail).
    artifacts: Vec<(&'static str, PathBuf)>,
}

impl Outcome {
    fn new(status: StepStatus, detail: impl Into<String>) -> Outcome {
        Outcome {
            status,
            detail: detail.into(),
            error: None,
            reason: None,
            org_id: None,
            issue_code: None,
            artifacts: Vec::new(),
        }
    }

    fn ok(detail: impl Into<String>) -> Outcome {
        Outcome::new(StepStatus::Ok, detail)
    }

    /// `ok` or `findings` by `clean`; the reason is the detail.
    fn judged(clean: bool, detail: impl Into<String>) -> Outcome {
        let detail = detail.into();
        let mut outcome = Outcome::new(
            if clean {
                StepStatus::Ok
            } else {
                StepStatus::Findings
            },
            detail.clone(),
        );
        if !clean {
            outcome.reason = Some(detail);
        }
        outcome
    }

    fn failed(error: impl Into<String>) -> Outcome {
        let mut outcome = Outcome::new(StepStatus::Failed, "");
        outcome.error = Some(error.into());
        outcome
    }

    fn skipped(reason: impl Into<String>) -> Outcome {
        let mut outcome = Outcome::new(StepStatus::Skipped, "");
        outcome.reason = Some(reason.into());
        outcome
    }

    fn with(mut self, key: &'static str, path: &Path) -> Outcome {
        self.artifacts.push((key, path.to_path_buf()));
        self
    }
}

impl From<HostOutcome> for Outcome {
    fn from(host: HostOutcome) -> Outcome {
        let mut outcome = Outcome::new(host.status, host.detail.clone());
        match host.status {
            StepStatus::Failed => outcome.error = host.error,
            StepStatus::Findings => outcome.reason = Some(host.detail),
            _ => {}
        }
        outcome
    }
}

struct Runner<'a, 'b> {
    config: &'b PipelineConfig,
    ports: &'b Ports<'a>,
    host: &'b mut dyn Host,
    paths: &'b Paths,
    steps: Vec<StepRecord>,
    /// The first failed step, when it stops the rest.
    stopped_after: Option<String>,
    /// Files this run wrote, by path.
    produced: BTreeMap<PathBuf, ArtifactRef>,
    matrix: Option<MatrixReport>,
    diagnostics: Option<DiagnosticsReport>,
    overridden: Vec<String>,
}

impl Runner<'_, '_> {
    /// Runs `body` as step `id` unless an earlier failure stopped the pipeline; times it,
    /// hashes its files and records it.
    fn step(&mut self, id: &str, body: impl FnOnce(&mut Self) -> Outcome) -> StepStatus {
        let started_at = self.host.now();
        let started = Instant::now();
        self.host.step_started(id);
        let mut outcome = match &self.stopped_after {
            Some(failed) => Outcome::skipped(format!("stopped_after:{failed}")),
            None => body(self),
        };
        // A step that did its job must leave its files; a failed one may leave evidence of
        // the failure (a validation report), pinned when it is there.
        let must_exist = matches!(outcome.status, StepStatus::Ok | StepStatus::Findings);
        let mut artifacts = Vec::new();
        for (key, path) in &outcome.artifacts {
            match sha256_file(path) {
                Ok((sha256, bytes)) => {
                    let artifact = ArtifactRef {
                        key: key.to_string(),
                        path: path.clone(),
                        sha256,
                        bytes,
                    };
                    if must_exist {
                        self.produced.insert(path.clone(), artifact.clone());
                    }
                    artifacts.push(artifact);
                }
                Err(error) if must_exist => {
                    outcome.status = StepStatus::Failed;
                    outcome.error = Some(format!("the step did not leave {key}: {error}"));
                }
                Err(_) => {}
            }
        }
        let record = StepRecord {
            id: id.to_string(),
            status: outcome.status,
            started_at,
            ended_at: self.host.now(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            detail: outcome.detail,
            error: outcome.error,
            reason: outcome.reason,
            org_id: outcome.org_id,
            issue_code: outcome.issue_code,
            artifacts,
        };
        if record.status == StepStatus::Failed
            && !self.config.continue_on_error
            && self.stopped_after.is_none()
        {
            self.stopped_after = Some(record.id.clone());
        }
        self.host.step_finished(&record);
        let status = record.status;
        self.steps.push(record);
        status
    }

    fn produced(&self, path: &Path) -> bool {
        self.produced.contains_key(path)
    }

    fn env(&mut self) {
        self.step(STEP_ENV, |run| run.host.env_check().into());
    }

    fn preflight(&mut self) {
        let (out, out_md) = (&self.paths.preflight, &self.paths.preflight_md);
        self.step(STEP_PREFLIGHT, |run| {
            Outcome::from(run.host.preflight_scan(&run.config.repo, out, out_md))
                .with("preflightOut", out)
                .with("preflightMd", out_md)
        });
    }

    fn model_plan(&mut self) {
        let (out, out_md) = (&self.paths.model_plan, &self.paths.model_plan_md);
        self.step(STEP_MODEL_PLAN, |run| {
            Outcome::from(run.host.model_plan(&run.config.repo, out, out_md))
                .with("modelPlanJson", out)
                .with("modelPlanMd", out_md)
        });
    }

    fn matrix(&mut self) {
        self.step(STEP_MATRIX, |run| {
            let config = MatrixConfig {
                org_ids: (!run.config.org_ids.is_empty()).then(|| run.config.org_ids.clone()),
                concurrency: run.config.concurrency,
                keep_plan_steps: true,
                env_name: run.config.env_name.clone(),
                created_at: run.host.now(),
                run_id: Some(run.config.run_id.clone()),
                connection: run.ports.connection.clone(),
            };
            let report = match matrix::run_matrix(
                &config,
                &run.config.schema,
                run.ports.directory,
                run.ports.api,
                &|_, _| {},
            ) {
                Ok(report) => report,
                Err(error) => return Outcome::failed(error.to_string()),
            };
            let (out, out_md) = (&run.paths.matrix, &run.paths.matrix_md);
            if let Err(error) = matrix::write_report_pair(
                out,
                &report.to_json_bytes(),
                out_md,
                &report.to_markdown(),
            ) {
                return Outcome::failed(format!("writing {}: {error}", out.display()));
            }
            let s = &report.summary;
            let detail = format!(
                "{} org(s): {} safe, {} review, {} blocked ({} failed plans, {} without credentials, {} directory errors)",
                s.total_orgs,
                s.safe,
                s.review_required,
                s.blocked,
                s.planned_failed,
                s.missing_instant_credentials,
                s.directory_errors
            );
            let outcome = Outcome::judged(report.ok, detail)
                .with("matrixOut", out)
                .with("matrixMd", out_md);
            run.matrix = Some(report);
            outcome
        });
    }

    /// The reason of a step that needs this run's matrix when there is none.
    fn missing_matrix(&self) -> Option<String> {
        (!self.produced(&self.paths.matrix) || self.matrix.is_none())
            .then(|| format!("missing_matrix:{}", self.paths.matrix.display()))
    }

    fn diagnose(&mut self) {
        self.step(STEP_DIAGNOSE, |run| {
            if let Some(reason) = run.missing_matrix() {
                return Outcome::skipped(reason);
            }
            let Some(matrix) = run.matrix.as_ref() else {
                return Outcome::skipped("missing_matrix");
            };
            let config = DiagnoseConfig {
                matrix_file: run.paths.matrix.display().to_string(),
                created_at: run.host.now(),
                run_id: Some(run.config.run_id.clone()),
                concurrency: run.config.concurrency,
            };
            let ports = diagnose::Ports {
                directory: run.ports.directory,
                api: run.ports.api,
            };
            let report = match diagnose::run_diagnose(
                &config,
                matrix,
                &run.config.schema,
                Some(ports),
                &|_, _| {},
            ) {
                Ok(report) => report,
                Err(error) => return Outcome::failed(error.to_string()),
            };
            let (out, out_md) = (&run.paths.diagnostics, &run.paths.diagnostics_md);
            if let Err(error) = matrix::write_report_pair(
                out,
                &report.to_json_bytes(),
                out_md,
                &report.to_markdown(),
            ) {
                return Outcome::failed(format!("writing {}: {error}", out.display()));
            }
            let detail = format!(
                "{} row(s) diagnosed, {} blocking",
                report.summary.total_failures, report.summary.blocking
            );
            let outcome = Outcome::judged(report.ok, detail)
                .with("diagnosticsOut", out)
                .with("diagnosticsMd", out_md);
            run.diagnostics = Some(report);
            outcome
        });
    }

    fn runbook(&mut self) {
        self.step(STEP_RUNBOOK, |run| {
            if let Some(reason) = run.missing_matrix() {
                return Outcome::skipped(reason);
            }
            let (Some(matrix), Some(diagnostics)) = (run.matrix.as_ref(), run.diagnostics.as_ref())
            else {
                return Outcome::skipped(format!(
                    "missing_diagnostics:{}",
                    run.paths.diagnostics.display()
                ));
            };
            let config = RunbookConfig {
                generated_at: run.host.now(),
                matrix_file: run.paths.matrix.display().to_string(),
                diagnostics_file: run.paths.diagnostics.display().to_string(),
                schema_file: run.config.schema.source.clone(),
                cases_root: run.paths.cases.display().to_string(),
            };
            let report = match runbook::build_runbook(&config, matrix, diagnostics) {
                Ok(report) => report,
                Err(error) => return Outcome::failed(error.to_string()),
            };
            let (out, out_md) = (&run.paths.runbook, &run.paths.runbook_md);
            if let Err(error) = matrix::write_report_pair(
                out,
                &report.to_json_bytes(),
                out_md,
                &report.to_markdown(),
            ) {
                return Outcome::failed(format!("writing {}: {error}", out.display()));
            }
            if let Err(error) = report.create_case_dirs() {
                return Outcome::failed(format!(
                    "creating the case folders under {}: {error}",
                    run.paths.cases.display()
                ));
            }
            let detail = format!(
                "{} case(s), {} blocking",
                report.summary.total_cases, report.summary.blocking_cases
            );
            Outcome::judged(report.ok, detail)
                .with("caseRunbookJson", out)
                .with("caseRunbookMd", out_md)
        });
    }

    /// A gate input as this run produced it; an input it did not produce is missing (so its
    /// gates fail closed), whatever an earlier run left at that path.
    fn gate_input(&self, kind: InputKind, path: &Path, step: &str) -> GateInput {
        if self.produced(path) {
            return GateInput::load(kind, path);
        }
        let status = self
            .steps
            .iter()
            .find(|record| record.id == step)
            .map(|record| record.status.as_str())
            .unwrap_or("not run");
        GateInput {
            kind,
            path: path.to_path_buf(),
            state: InputState::Missing(InputProblem::Unreadable(format!(
                "not produced by this pipeline run (step {step}: {status})"
            ))),
        }
    }

    fn gates(&mut self) {
        self.step(STEP_GATES, |run| {
            let inputs = GateInputs {
                preflight: run.gate_input(
                    InputKind::Preflight,
                    &run.paths.preflight,
                    STEP_PREFLIGHT,
                ),
                model_plan: run.gate_input(
                    InputKind::ModelPlan,
                    &run.paths.model_plan,
                    STEP_MODEL_PLAN,
                ),
                matrix: run.gate_input(InputKind::Matrix, &run.paths.matrix, STEP_MATRIX),
            };
            let report = GateReport::build(
                inputs,
                run.config.allow_unsafe,
                Some(run.config.run_id.clone()),
                run.host.now(),
            );
            let (out, out_md) = (&run.paths.gates, &run.paths.gates_md);
            let mut body = match serde_json::to_vec_pretty(&report.to_json()) {
                Ok(body) => body,
                Err(error) => {
                    return Outcome::failed(format!("serialising the gate report: {error}"))
                }
            };
            body.push(b'\n');
            if let Err(error) = matrix::write_report_pair(out, &body, out_md, &report.to_markdown())
            {
                return Outcome::failed(format!("writing {}: {error}", out.display()));
            }
            let evaluation = &report.evaluation;
            run.overridden = evaluation
                .overridden_ids()
                .into_iter()
                .map(str::to_string)
                .collect();
            let mut detail = format!(
                "{} of {} gates passed",
                evaluation.passed(),
                evaluation.gates.len()
            );
            if !evaluation.failed_ids().is_empty() {
                detail.push_str(&format!("; failed: {}", evaluation.failed_ids().join(", ")));
            }
            if !evaluation.missing_input_ids().is_empty() {
                detail.push_str(&format!(
                    "; missing input (fails closed): {}",
                    evaluation.missing_input_ids().join(", ")
                ));
            }
            if !run.overridden.is_empty() {
                detail.push_str(&format!(
                    "; overridden with --allow-unsafe (still failed): {}",
                    run.overridden.join(", ")
                ));
            }
            Outcome::judged(report.ok(), detail)
                .with("hotDeployGatesJson", out)
                .with("hotDeployGatesMd", out_md)
        });
    }

    fn status(&mut self) {
        self.step(STEP_STATUS, |run| {
            if let Some(reason) = run.missing_matrix() {
                return Outcome::skipped(reason);
            }
            let matrix = match MatrixInput::load(&run.paths.matrix) {
                Ok(matrix) => matrix,
                Err(error) => return Outcome::failed(error.to_string()),
            };
            let folders = match status::collect_run_folders(&run.paths.artifacts) {
                Ok(folders) => folders,
                Err(error) => return Outcome::failed(error.to_string()),
            };
            let (evidence, ledger_info) = match run.ports.ledger {
                Some(ledger) => {
                    let read = ledger.snapshot().and_then(|snapshot| {
                        let evidence = ledger.evidence(&snapshot)?;
                        Ok((snapshot, evidence))
                    });
                    match read {
                        Ok((snapshot, from_ledger)) => (
                            status::merge_evidence(folders, from_ledger),
                            Some(LedgerInfo {
                                app_id: snapshot.app_id.clone(),
                                runs: snapshot.runs.len(),
                            }),
                        ),
                        Err(error) => {
                            return Outcome::failed(format!("reading the run ledger: {error}"))
                        }
                    }
                }
                None => (folders, None),
            };
            let report = StatusReport::build(
                &matrix,
                &evidence,
                &run.paths.artifacts,
                ledger_info,
                Some(run.config.run_id.clone()),
                run.host.now(),
            );
            let (out, out_md) = (&run.paths.status, &run.paths.status_md);
            let mut body = match serde_json::to_vec_pretty(&report.to_json()) {
                Ok(body) => body,
                Err(error) => {
                    return Outcome::failed(format!("serialising the status report: {error}"))
                }
            };
            body.push(b'\n');
            if let Err(error) = matrix::write_report_pair(out, &body, out_md, &report.to_markdown())
            {
                return Outcome::failed(format!("writing {}: {error}", out.display()));
            }
            let counts: Vec<String> = MigrationState::ALL
                .iter()
                .map(|state| format!("{} {}", state.as_str(), report.count(*state)))
                .collect();
            Outcome::ok(format!(
                "{} org(s): {}",
                report.rows.len(),
                counts.join(", ")
            ))
            .with("migrationStatusJson", out)
            .with("migrationStatusMd", out_md)
        });
    }

    fn validations(&mut self) -> Result<(), PipelineError> {
        if self.config.org_ids.is_empty() {
            self.step(STEP_VALIDATE, |_| Outcome::skipped(NO_ORG_IDS));
            return Ok(());
        }
        let mut entries = Vec::new();
        for org in self.config.org_ids.clone() {
            let id = validate_step_id(&org);
            let out = self.paths.validation_report(&self.config.run_id, &org);
            let mut validation: Option<(bool, Option<String>)> = None;
            let status = self.step(&id, |run| {
                let outcome = run.validate(&org, &out);
                validation = Some((outcome.status == StepStatus::Ok, outcome.issue_code.clone()));
                outcome
            });
            let record = self.steps.last().filter(|record| record.id == id);
            entries.push(json!({
                "orgId": org,
                "out": out,
                "runId": validation_run_id(&self.config.run_id, &org),
                "stepStatus": status,
                "stepError": record.and_then(|record| record.error.clone().or(record.reason.clone())),
                "ok": validation.as_ref().map(|(ok, _)| *ok),
                "issueCode": validation.and_then(|(_, code)| code),
            }));
        }
        let summary = json!({
            "runId": self.config.run_id,
            "createdAt": self.host.now(),
            "orgIds": self.config.org_ids,
            "validations": entries,
        });
        let mut bytes = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        bytes.push(b'\n');
        write_file(&self.paths.validation_summary, &bytes)?;
        let (sha256, size) = sha256_file(&self.paths.validation_summary)?;
        self.produced.insert(
            self.paths.validation_summary.clone(),
            ArtifactRef {
                key: "validationSummaryJson".into(),
                path: self.paths.validation_summary.clone(),
                sha256,
                bytes: size,
            },
        );
        Ok(())
    }

    fn validate(&mut self, org: &str, out: &Path) -> Outcome {
        let credentials = validate::resolve_credentials(self.ports.directory, org);
        let run_dir = match RunDir::new(
            &self.config.artifacts,
            &validation_run_id(&self.config.run_id, org),
        ) {
            Ok(run_dir) => run_dir,
            Err(error) => return Outcome::failed(error.to_string()),
        };
        let target = ValidateTarget {
            api: self.ports.api,
            credentials: &credentials,
            org_id: org,
            schema: &self.config.schema,
            run: &run_dir,
            report_path: out,
            rehearsal_engine: self.ports.rehearsal_engine,
        };
        let mut observer = Clock(&*self.host);
        let mut outcome =
            match validate::validate_org(&target, &self.config.validate, &mut observer) {
                Ok(report) if report.ok => Outcome::ok(format!(
                    "all 8 items ok; evidence {}",
                    report.artifacts_root.display()
                ))
                .with("validationReport", out),
                Ok(report) => {
                    let mut outcome =
                        Outcome::failed(report.reasons.join("; ")).with("validationReport", out);
                    outcome.detail =
                        format!("not ok; evidence {}", report.artifacts_root.display());
                    outcome.issue_code = report.issue_code.clone();
                    outcome
                }
                Err(error) => Outcome::failed(error.to_string()),
            };
        outcome.org_id = Some(org.to_string());
        outcome
    }
}

/// The validation's observer: only the clock.
struct Clock<'a>(&'a dyn Host);

impl validate::Observer for Clock<'_> {
    fn now(&self) -> String {
        self.0.now()
    }
}
