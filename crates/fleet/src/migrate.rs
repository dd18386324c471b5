//! The gated migration of one organisation (`threadmig migrate`): snapshot -> plan -> gates ->
//! schema push (only when the plan is safe or the override is recorded) -> indexing jobs ->
//! clean re-plan -> extract -> transform -> tx plan -> rehearsal on an embedded copy ->
//! approval of the plan's sha256 -> apply (journaled, resumable) -> verify.
//!
//! Every stage is recorded in the run's `manifest.json` with `orgId`/`appId` (never a token)
//! and its evidence lands in the run folder's sections. The function never returns an error
//! for something the target or the data did: that is an [`Outcome`] the report carries. Only
//! a run folder that cannot be written is an error.
//!
//! **Resumption.** When the run's `03-apply/journal.ndjson` already belongs to a plan, the
//! data stages are not rebuilt (the target now holds part of the migrated rows, and a fresh
//! extract would plan differently): apply continues that plan, under the approval of its
//! sha256, and verify runs against the run's own transform output. This is what makes a
//! `migrate` killed during apply end, once re-run, in the same data as an uninterrupted run.
//!
//! **Determinism.** The transform runs without a clock (no execution counts as live), so a
//! dry run and the approved run of the same data plan the same bytes and the same sha256.
//!
//! The data stages (transform configuration, checked tx plan, rehearsal) are shared with the
//! pre-migration validation bundle ([`crate::validate`]), so a validation plans the same sha256
//! that `migrate` later asks approval for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use instant_api::{AppAuth, EphemeralAppRequest, InstantApi, SchemaPlanResponse};
use instant_schema::severity::{Gate as PlanGate, SeverityCounts};
use migration::apply::{self, ApplyOptions, ApplyPaths};
use migration::evidence::{EvidenceError, RunDir, Section};
use migration::extract::{self, ExtractConfig};
use migration::rehearsal;
use migration::run::{self as transform_run, Input};
use migration::txplan::{self, PlanOptions};
use migration::verify::{self, VerifyConfig};
use serde::Serialize;
use serde_json::{json, Value};

use crate::gates::{Evaluation, GateInput, GateInputs, InputKind};
use crate::matrix::TargetSchema;

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Applied and every invariant passed.
    MigratedVerified,
    /// Applied, but verify failed or could not run.
    AppliedUnverified { reason: String },
    /// A gate, the plan or the rehearsal stopped the run before any data was written.
    Blocked { stage: String, reason: String },
    /// Everything up to the approval ran; the plan waits for `--approve <sha256>`.
    AwaitingApproval { sha256: String },
    /// `--dry-run`: the plan is built and rehearsed; nothing on the target was mutated.
    DryRun { sha256: String },
    /// A stage failed (the target or the data); the reason names it.
    Failed { stage: String, reason: String },
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::MigratedVerified => "migrated_verified",
            Outcome::AppliedUnverified { .. } => "applied_unverified",
            Outcome::Blocked { .. } => "blocked",
            Outcome::AwaitingApproval { .. } => "awaiting_approval",
            Outcome::DryRun { .. } => "dry_run",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// Whether a wave may go on to the next org after this one.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::MigratedVerified | Outcome::DryRun { .. } | Outcome::AwaitingApproval { .. }
        )
    }
}

/// One stage as the report lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageResult {
    pub name: String,
    /// `ok`, `skipped`, `blocked`, `failed`.
    pub status: String,
    pub detail: String,
    pub elapsed_ms: u64,
}

/// The final report of one org's migration (`artifacts/reports/migration.<runId>.<org>.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    pub org_id: String,
    pub app_id: String,
    pub run_id: String,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub allow_unsafe: bool,
    /// Failed gates that `--allow-unsafe` let through (recorded, never silent).
    pub overridden_gates: Vec<String>,
    pub plan_sha256: Option<String>,
    pub resumed: bool,
    pub stages: Vec<StageResult>,
    pub evidence: PathBuf,
}

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub dry_run: bool,
    pub allow_unsafe: bool,
    pub allow_destructive: bool,
    /// The sha256 of the tx plan a human approved.
    pub approved_sha256: Option<String>,
    pub concurrency: usize,
    pub batch_size: usize,
    pub page_size: usize,
    pub sample_size: usize,
    /// How long to wait for the schema push's indexing jobs.
    pub indexing_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            dry_run: false,
            allow_unsafe: false,
            allow_destructive: false,
            approved_sha256: None,
            concurrency: apply::DEFAULT_CONCURRENCY,
            batch_size: txplan::DEFAULT_BATCH_SIZE,
            page_size: 500,
            sample_size: 200,
            indexing_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Makes a fresh embedded engine for the rehearsal (the caller owns the engine crate).
pub type RehearsalEngine<'a> = &'a dyn Fn() -> Result<Box<dyn InstantApi>, String>;

/// What the caller wants to hear about while the run goes on.
pub trait Observer {
    /// RFC 3339 "now" for manifest envelopes (the caller owns the clock).
    fn now(&self) -> String;
    fn stage_started(&mut self, _name: &str) {}
    fn stage_finished(&mut self, _stage: &StageResult) {}
    fn apply_progress(&mut self, _progress: &apply::Progress) {}
    /// Asked when no `--approve` was given: may a human approve this plan now (an interactive
    /// confirmation)? The default is no: the run stops awaiting approval.
    fn approve(&mut self, _org_id: &str, _sha256: &str, _summary: &str) -> bool {
        false
    }
}

/// Everything the run works on.
pub struct MigrateTarget<'a> {
    pub api: &'a dyn InstantApi,
    pub auth: &'a AppAuth,
    pub org_id: &'a str,
    pub schema: &'a TargetSchema,
    pub run: &'a RunDir,
    /// The artifacts root: the hot-deploy gate inputs and the fleet matrix are read from it.
    pub artifacts: &'a Path,
    pub rehearsal_engine: RehearsalEngine<'a>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the gated sequence for one org. See the module docs.
pub fn migrate_org(
    target: &MigrateTarget<'_>,
    options: &MigrateOptions,
    observer: &mut dyn Observer,
) -> Result<MigrateReport, MigrateError> {
    let mut run = Runner {
        target,
        options,
        observer,
        stages: Vec::new(),
        overridden: Vec::new(),
    };
    let mut report = MigrateReport {
        org_id: target.org_id.to_string(),
        app_id: target.auth.app_id.clone(),
        run_id: target.run.run_id().to_string(),
        outcome: Outcome::Failed {
            stage: "start".into(),
            reason: "not run".into(),
        },
        dry_run: options.dry_run,
        allow_unsafe: options.allow_unsafe,
        overridden_gates: Vec::new(),
        plan_sha256: None,
        resumed: false,
        stages: Vec::new(),
        evidence: target.run.path().to_path_buf(),
    };
    let outcome = run.sequence(&mut report)?;
    report.outcome = outcome;
    report.overridden_gates = run.overridden.clone();
    report.stages = std::mem::take(&mut run.stages);
    run.record(
        "migrate",
        json!({
            "status": report.outcome.as_str(),
            "orgId": report.org_id,
            "appId": report.app_id,
            "outcome": report.outcome,
            "dryRun": report.dry_run,
            "allowUnsafe": report.allow_unsafe,
            "overriddenGates": report.overridden_gates,
            "planSha256": report.plan_sha256,
            "resumed": report.resumed,
        }),
    )?;
    Ok(report)
}

struct Runner<'a, 'b> {
    target: &'b MigrateTarget<'a>,
    options: &'b MigrateOptions,
    observer: &'b mut dyn Observer,
    stages: Vec<StageResult>,
    overridden: Vec<String>,
}

/// A stage's verdict: go on, or stop the run with this outcome.
type Step<T> = Result<T, Outcome>;

impl Runner<'_, '_> {
    fn run_dir(&self) -> &RunDir {
        self.target.run
    }

    fn section(&self, section: Section) -> Result<PathBuf, MigrateError> {
        Ok(self.run_dir().create_section(section)?)
    }

    fn record(&mut self, stage: &str, record: Value) -> Result<(), MigrateError> {
        let now = self.observer.now();
        self.run_dir().record_stage(stage, record, &[], &now)?;
        Ok(())
    }

    fn ids(&self) -> (String, String) {
        (
            self.target.org_id.to_string(),
            self.target.auth.app_id.clone(),
        )
    }

    fn finish(&mut self, name: &str, status: &str, detail: String, started: Instant) {
        let stage = StageResult {
            name: name.to_string(),
            status: status.to_string(),
            detail,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        self.observer.stage_finished(&stage);
        self.stages.push(stage);
    }

    fn write_json(&self, path: &Path, value: &Value) -> Result<(), MigrateError> {
        write_json_file(path, value)
    }

    fn sequence(&mut self, report: &mut MigrateReport) -> Result<Outcome, MigrateError> {
        if let Err(outcome) = self.snapshot()? {
            return Ok(outcome);
        }
        let plan_gate = match self.plan("schema-plan", "schema.plan.before-push.json")? {
            Ok(plan) => plan,
            Err(outcome) => return Ok(outcome),
        };
        if let Err(outcome) = self.gates(&plan_gate)? {
            return Ok(outcome);
        }
        let apply_dir = self.run_dir().section(Section::Apply);
        let journaled = apply::journal_plan(&apply_dir).unwrap_or(None);
        let sha256 = if let Some(sha256) = journaled {
            // A plan of this run is already partly or wholly applied: continue it.
            report.resumed = true;
            let started = Instant::now();
            self.finish(
                "resume",
                "ok",
                format!("03-apply/journal.ndjson belongs to plan {sha256}; continuing it"),
                started,
            );
            sha256
        } else {
            if !self.options.dry_run && plan_gate.steps > 0 {
                if let Err(outcome) = self.schema_push()? {
                    return Ok(outcome);
                }
            }
            match self.data_stages()? {
                Ok(sha256) => sha256,
                Err(outcome) => return Ok(outcome),
            }
        };
        report.plan_sha256 = Some(sha256.clone());
        if self.options.dry_run {
            return Ok(Outcome::DryRun { sha256 });
        }
        let summary = self
            .stages
            .iter()
            .find(|stage| stage.name == "tx-plan")
            .map(|stage| stage.detail.clone())
            .unwrap_or_else(|| format!("plan {sha256}"));
        match self.options.approved_sha256.as_deref() {
            None if self.observer.approve(self.target.org_id, &sha256, &summary) => {
                let _ = self.record(
                    "approval",
                    json!({"status": "approved", "orgId": self.target.org_id,
                           "sha256": sha256, "by": "interactive confirmation"}),
                );
            }
            None => return Ok(Outcome::AwaitingApproval { sha256 }),
            Some(approved) if !apply::sha_matches(approved, &sha256) => {
                return Ok(Outcome::Blocked {
                    stage: "approval".into(),
                    reason: format!(
                        "the approved sha256 {approved} is not the plan's ({sha256}, built with \
                         --batch-size {batch_size}): the data changed since the plan was \
                         reviewed, or it was reviewed with another --batch-size; review the new \
                         plan and approve its hash",
                        batch_size = self.options.batch_size
                    ),
                })
            }
            Some(_) => {
                self.record(
                    "approval",
                    json!({"status": "approved", "orgId": self.target.org_id,
                           "sha256": sha256, "by": "--approve"}),
                )?;
            }
        }
        if let Err(outcome) = self.apply(&sha256)? {
            return Ok(outcome);
        }
        self.verify()
    }

    /// Schema and permissions backups.
    fn snapshot(&mut self) -> Result<Step<()>, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started("snapshot");
        let dir = self.section(Section::Extract)?;
        let schema = match self.target.api.schema_pull(self.target.auth) {
            Ok(schema) => schema,
            Err(error) => {
                let reason = format!("schema pull failed: {error}");
                self.finish("snapshot", "failed", reason.clone(), started);
                return Ok(Err(Outcome::Failed {
                    stage: "snapshot".into(),
                    reason,
                }));
            }
        };
        let perms = match self.target.api.perms_pull(self.target.auth) {
            Ok(perms) => perms,
            Err(error) => {
                let reason = format!("perms pull failed: {error}");
                self.finish("snapshot", "failed", reason.clone(), started);
                return Ok(Err(Outcome::Failed {
                    stage: "snapshot".into(),
                    reason,
                }));
            }
        };
        self.write_json(
            &dir.join("schema.pull.json"),
            &serde_json::to_value(&schema).unwrap_or(Value::Null),
        )?;
        self.write_json(
            &dir.join("perms.pull.json"),
            &serde_json::to_value(&perms).unwrap_or(Value::Null),
        )?;
        let (org, app) = self.ids();
        let attrs = schema.attrs.len();
        self.record(
            "snapshot",
            json!({"status": "ok", "orgId": org, "appId": app, "attrs": attrs}),
        )?;
        self.finish(
            "snapshot",
            "ok",
            format!("schema ({attrs} attrs) and permissions backed up"),
            started,
        );
        Ok(Ok(()))
    }

    /// Asks the server for the push plan of the target schema and grades it.
    fn plan(&mut self, stage: &str, file: &str) -> Result<Step<PlanVerdict>, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started(stage);
        let dir = self.section(Section::Extract)?;
        let (org, app) = self.ids();
        let request = self.target.schema.plan_request();
        match self.target.api.schema_plan(self.target.auth, &request) {
            Ok(response) => {
                let (counts, gate) = grade_plan(&response);
                let value = serde_json::to_value(&response).unwrap_or(Value::Null);
                self.write_json(&dir.join(file), &value)?;
                let verdict = PlanVerdict {
                    gate,
                    steps: response.steps.len(),
                };
                self.record(
                    stage,
                    json!({"status": "ok", "orgId": org, "appId": app, "gate": gate.as_str(),
                           "steps": verdict.steps, "countsBySeverity": counts}),
                )?;
                self.finish(
                    stage,
                    "ok",
                    format!("{} step(s), gate {}", verdict.steps, gate.as_str()),
                    started,
                );
                Ok(Ok(verdict))
            }
            Err(error) => {
                let refused = error.status == 400;
                let value = json!({"ok": false, "status": error.status, "error": error.envelope()});
                self.write_json(&dir.join(file), &value)?;
                let reason = format!("the server refused the plan: {error}");
                self.record(
                    stage,
                    json!({"status": if refused { "blocked" } else { "failed" }, "orgId": org,
                           "appId": app, "error": error.envelope(), "httpStatus": error.status}),
                )?;
                self.finish(
                    stage,
                    if refused { "blocked" } else { "failed" },
                    reason.clone(),
                    started,
                );
                Ok(Err(if refused {
                    Outcome::Blocked {
                        stage: stage.into(),
                        reason,
                    }
                } else {
                    Outcome::Failed {
                        stage: stage.into(),
                        reason,
                    }
                }))
            }
        }
    }

    /// The hot-deploy gates (the fleet matrix restricted to this org's row) and the plan gate.
    fn gates(&mut self, plan: &PlanVerdict) -> Result<Step<()>, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started("gates");
        let inputs = org_gate_inputs(self.target.artifacts, self.target.org_id);
        let evaluation = Evaluation::run(&inputs, self.options.allow_unsafe);
        let missing: Vec<&str> = evaluation.missing_input_ids();
        let failed: Vec<&str> = evaluation.failed_ids();
        let plan_ok = plan.gate == PlanGate::Safe;
        let mut overridden: Vec<String> = evaluation
            .overridden_ids()
            .into_iter()
            .map(str::to_string)
            .collect();
        if !plan_ok && self.options.allow_unsafe {
            overridden.push(format!("plan.gate={}", plan.gate.as_str()));
        }
        let pass =
            missing.is_empty() && ((failed.is_empty() && plan_ok) || self.options.allow_unsafe);
        let dir = self.section(Section::Apply)?;
        let gates_json: Vec<Value> = evaluation.gates.iter().map(|gate| gate.to_json()).collect();
        self.write_json(
            &dir.join("gates.json"),
            &json!({"orgId": self.target.org_id, "planGate": plan.gate.as_str(), "gates": gates_json,
                    "allowUnsafe": self.options.allow_unsafe, "overridden": overridden}),
        )?;
        let (org, app) = self.ids();
        self.record(
            "gates",
            json!({"status": if pass { "ok" } else { "blocked" }, "orgId": org, "appId": app,
                   "planGate": plan.gate.as_str(), "failed": failed, "missingInput": missing,
                   "allowUnsafe": self.options.allow_unsafe, "overridden": overridden}),
        )?;
        self.overridden = overridden;
        if pass {
            let detail = if self.overridden.is_empty() {
                format!(
                    "{} hot-deploy gates pass; plan gate safe",
                    evaluation.passed()
                )
            } else {
                format!(
                    "passed with --allow-unsafe overriding {}",
                    self.overridden.join(", ")
                )
            };
            self.finish("gates", "ok", detail, started);
            return Ok(Ok(()));
        }
        let mut reasons = Vec::new();
        if !missing.is_empty() {
            reasons.push(format!(
                "missing input for {} (fails closed)",
                missing.join(", ")
            ));
        }
        if !failed.is_empty() {
            reasons.push(format!("failed: {}", failed.join(", ")));
        }
        if !plan_ok {
            reasons.push(format!("plan gate is {}", plan.gate.as_str()));
        }
        let reason = reasons.join("; ");
        self.finish("gates", "blocked", reason.clone(), started);
        Ok(Err(Outcome::Blocked {
            stage: "gates".into(),
            reason,
        }))
    }

    /// Pushes the target schema, waits for its indexing jobs, and requires a clean re-plan.
    fn schema_push(&mut self) -> Result<Step<()>, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started("schema-push");
        let dir = self.section(Section::Apply)?;
        let (org, app) = self.ids();
        let request = self.target.schema.plan_request();
        let response = match self.target.api.schema_push(self.target.auth, &request) {
            Ok(response) => response,
            Err(error) => {
                let reason = format!("schema push failed: {error}");
                self.write_json(
                    &dir.join("schema.push.json"),
                    &json!({"ok": false, "error": error.envelope(), "status": error.status}),
                )?;
                self.record(
                    "schema-push",
                    json!({"status": "failed", "orgId": org, "appId": app, "error": error.envelope()}),
                )?;
                self.finish("schema-push", "failed", reason.clone(), started);
                return Ok(Err(Outcome::Failed {
                    stage: "schema-push".into(),
                    reason,
                }));
            }
        };
        let group = response
            .indexing_jobs
            .as_ref()
            .map(|group| group.group_id.clone());
        let mut indexing = json!({"groupId": group, "polls": 0, "jobs": []});
        if let Some(group_id) = &group {
            let deadline = Instant::now() + self.options.indexing_timeout;
            let mut polls = 0u64;
            loop {
                polls += 1;
                match self
                    .target
                    .api
                    .indexing_job_group(self.target.auth, group_id)
                {
                    Ok(jobs) => {
                        let pending = jobs.jobs.iter().filter(|job| !job.is_terminal()).count();
                        let errored: Vec<&str> = jobs
                            .jobs
                            .iter()
                            .filter(|job| job.job_status == "errored")
                            .map(|job| job.id.as_str())
                            .collect();
                        indexing = json!({"groupId": group_id, "polls": polls,
                                          "jobs": serde_json::to_value(&jobs.jobs).unwrap_or(Value::Null),
                                          "erroredJobs": errored});
                        if !errored.is_empty() {
                            let reason = format!("indexing jobs errored: {}", errored.join(", "));
                            return self.push_failed(&dir, &response, indexing, reason, started);
                        }
                        if pending == 0 {
                            break;
                        }
                    }
                    Err(error) => {
                        let reason = format!("polling indexing jobs failed: {error}");
                        return self.push_failed(&dir, &response, indexing, reason, started);
                    }
                }
                if Instant::now() >= deadline {
                    let reason = format!(
                        "indexing jobs still running after {} s",
                        self.options.indexing_timeout.as_secs()
                    );
                    return self.push_failed(&dir, &response, indexing, reason, started);
                }
                std::thread::sleep(self.options.poll_interval);
            }
        }
        self.write_json(
            &dir.join("schema.push.json"),
            &json!({"ok": true, "steps": response.steps.len(), "indexing": indexing}),
        )?;
        self.record(
            "schema-push",
            json!({"status": "ok", "orgId": org, "appId": app, "steps": response.steps.len(),
                   "indexingGroupId": group}),
        )?;
        self.finish(
            "schema-push",
            "ok",
            format!("{} step(s) applied; indexing done", response.steps.len()),
            started,
        );
        match self.plan("schema-plan-after-push", "schema.plan.after-push.json")? {
            Ok(verdict) if verdict.steps == 0 => Ok(Ok(())),
            Ok(verdict) => Ok(Err(Outcome::Failed {
                stage: "schema-plan-after-push".into(),
                reason: format!(
                    "the re-plan after the push still has {} step(s); the push did not take",
                    verdict.steps
                ),
            })),
            Err(outcome) => Ok(Err(outcome)),
        }
    }

    fn push_failed(
        &mut self,
        dir: &Path,
        response: &instant_api::SchemaApplyResponse,
        indexing: Value,
        reason: String,
        started: Instant,
    ) -> Result<Step<()>, MigrateError> {
        let (org, app) = self.ids();
        self.write_json(
            &dir.join("schema.push.json"),
            &json!({"ok": false, "steps": response.steps.len(), "indexing": indexing, "reason": reason}),
        )?;
        self.record(
            "schema-push",
            json!({"status": "failed", "orgId": org, "appId": app, "reason": reason}),
        )?;
        self.finish("schema-push", "failed", reason.clone(), started);
        Ok(Err(Outcome::Failed {
            stage: "schema-push".into(),
            reason,
        }))
    }

    /// Extract -> transform -> tx plan -> rehearsal; returns the plan's sha256.
    fn data_stages(&mut self) -> Result<Step<String>, MigrateError> {
        let (org, app) = self.ids();
        let extract_dir = self.section(Section::Extract)?;
        let transform_dir = self.run_dir().section(Section::Transform);
        let apply_dir = self.section(Section::Apply)?;

        // Extract.
        let started = Instant::now();
        self.observer.stage_started("extract");
        let mut config = ExtractConfig::new(&extract_dir);
        config.page_size = self.options.page_size;
        let summary =
            match extract::extract(self.target.api, self.target.auth, &config, &mut |_| {}) {
                Ok(summary) => summary,
                Err(error) => return self.stage_failed("extract", error.to_string(), started),
            };
        let rows: u64 = summary.namespaces.values().sum();
        self.record(
            "extract",
            json!({"status": "ok", "orgId": org, "appId": app, "namespaces": summary.namespaces,
                   "pages": summary.pages}),
        )?;
        self.finish(
            "extract",
            "ok",
            format!("{rows} rows in {} pages", summary.pages),
            started,
        );

        // Transform.
        let started = Instant::now();
        self.observer.stage_started("transform");
        let summary = match transform_run::run(&transform_config(&extract_dir, &transform_dir)) {
            Ok(summary) => summary,
            Err(error) => return self.stage_failed("transform", error.to_string(), started),
        };
        let output: u64 = summary.output.values().sum();
        self.record(
            "transform",
            json!({"status": "ok", "orgId": org, "appId": app, "input": summary.input,
                   "output": summary.output, "links": summary.links, "rejected": summary.rejected,
                   "rejectsByRule": summary.rejects_by_rule}),
        )?;
        self.finish(
            "transform",
            "ok",
            format!(
                "{output} rows, {} links, {} legacy rows not migrated (see 02-transform/rejects.ndjson)",
                summary.links, summary.rejected
            ),
            started,
        );

        // Tx plan.
        let started = Instant::now();
        self.observer.stage_started("tx-plan");
        let plan = match build_checked_plan(
            &extract_dir,
            &transform_dir,
            &apply_dir,
            self.options.batch_size,
            self.options.allow_destructive,
        ) {
            Ok(plan) => plan,
            Err(reason) => return self.stage_failed("tx-plan", reason, started),
        };
        self.record(
            "tx-plan",
            json!({"status": "planned", "orgId": org, "appId": app, "steps": plan.steps,
                   "batches": plan.batches, "sha256": plan.sha256, "batchSize": plan.batch_size,
                   "stepsByOp": plan.steps_by_op}),
        )?;
        self.finish(
            "tx-plan",
            "ok",
            format!(
                "{} steps in {} batches, sha256 {}",
                plan.steps, plan.batches, plan.sha256
            ),
            started,
        );

        // Rehearsal.
        let started = Instant::now();
        self.observer.stage_started("rehearsal");
        let rehearsal = Rehearsal {
            api: self.target.api,
            auth: self.target.auth,
            org_id: self.target.org_id,
            schema: self.target.schema,
            run: self.target.run,
            engine: self.target.rehearsal_engine,
            options: self.options,
        };
        match rehearsal
            .run(&extract_dir, &apply_dir, &plan.sha256)
            .and_then(Rehearsed::passed)
        {
            Ok(detail) => {
                self.record(
                    "rehearsal",
                    json!({"status": "ok", "orgId": org, "appId": app, "sha256": plan.sha256,
                           "detail": detail}),
                )?;
                self.finish("rehearsal", "ok", detail, started);
            }
            Err(reason) => {
                self.record(
                    "rehearsal",
                    json!({"status": "blocked", "orgId": org, "appId": app, "sha256": plan.sha256,
                           "reason": reason}),
                )?;
                self.finish("rehearsal", "blocked", reason.clone(), started);
                return Ok(Err(Outcome::Blocked {
                    stage: "rehearsal".into(),
                    reason,
                }));
            }
        }
        Ok(Ok(plan.sha256))
    }

    fn stage_failed<T>(
        &mut self,
        stage: &str,
        reason: String,
        started: Instant,
    ) -> Result<Step<T>, MigrateError> {
        let (org, app) = self.ids();
        self.record(
            stage,
            json!({"status": "failed", "orgId": org, "appId": app, "reason": reason}),
        )?;
        self.finish(stage, "failed", reason.clone(), started);
        Ok(Err(Outcome::Failed {
            stage: stage.into(),
            reason,
        }))
    }

    fn apply(&mut self, sha256: &str) -> Result<Step<()>, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started("apply");
        let (org, app) = self.ids();
        let apply_dir = self.section(Section::Apply)?;
        let paths = ApplyPaths {
            plan: apply_dir.join(txplan::PLAN_FILE),
            dir: apply_dir,
        };
        let options = ApplyOptions {
            approved_sha256: sha256.to_string(),
            allow_destructive: self.options.allow_destructive,
            concurrency: self.options.concurrency,
            resume: true,
        };
        let observer = &mut *self.observer;
        let result = apply::apply(
            self.target.api,
            self.target.auth,
            &paths,
            &options,
            &mut |progress| observer.apply_progress(progress),
        );
        match result {
            Ok(summary) => {
                self.record(
                    "apply",
                    json!({"status": "applied", "orgId": org, "appId": app,
                           "sha256": summary.sha256, "complete": summary.complete,
                           "batchesCommitted": summary.batches_committed,
                           "stepsApplied": summary.steps_applied, "resumed": summary.resumed,
                           "batchesSkipped": summary.batches_skipped,
                           "batches": summary.batches, "steps": summary.steps}),
                )?;
                self.finish(
                    "apply",
                    "ok",
                    format!(
                        "{} batches committed ({} steps), {} already journaled",
                        summary.batches_committed, summary.steps_applied, summary.batches_skipped
                    ),
                    started,
                );
                Ok(Ok(()))
            }
            Err(error) => {
                let reason = error.to_string();
                self.record(
                    "apply",
                    json!({"status": "failed", "orgId": org, "appId": app, "sha256": sha256,
                           "complete": false, "reason": reason}),
                )?;
                self.finish("apply", "failed", reason.clone(), started);
                Ok(Err(Outcome::Failed {
                    stage: "apply".into(),
                    reason,
                }))
            }
        }
    }

    fn verify(&mut self) -> Result<Outcome, MigrateError> {
        let started = Instant::now();
        self.observer.stage_started("verify");
        let (org, app) = self.ids();
        let run_path = self.run_dir().path().to_path_buf();
        let mut config = VerifyConfig::for_run(&run_path, self.target.run.run_id());
        config.sample_size = self.options.sample_size;
        let mut result = verify::verify(self.target.api, self.target.auth, &config, &mut |_| {});
        if let Ok(result) = &mut result {
            // The award timelines: conversations the data migration cannot carry over (they
            // were never story events) keep the org unverified until they are backfilled.
            let invariant = timeline_invariant(self.target.api, self.target.auth, &org);
            result.ok = result.ok && invariant.status == verify::Status::Pass;
            result.invariants.push(invariant);
            let path = config.out_dir.join(verify::RESULT_FILE);
            let value = serde_json::to_value(&*result).unwrap_or(Value::Null);
            write_json_file(&path, &value)?;
        }
        let (ok, detail, counts) = match &result {
            Ok(result) => {
                let not_passing: Vec<&str> = result
                    .invariants
                    .iter()
                    .filter(|invariant| invariant.status != verify::Status::Pass)
                    .map(|invariant| invariant.id.as_str())
                    .collect();
                let detail = if result.ok {
                    format!("all {} invariants pass", result.invariants.len())
                } else {
                    format!("not passing: {}", not_passing.join(", "))
                };
                (
                    result.ok,
                    detail,
                    json!({"invariants": result.invariants.len(),
                           "pass": result.count(verify::Status::Pass),
                           "fail": result.count(verify::Status::Fail),
                           "error": result.count(verify::Status::Error),
                           "notPassing": not_passing}),
                )
            }
            Err(error) => (
                false,
                format!("verify could not write its result: {error}"),
                json!({}),
            ),
        };
        let mut record = json!({"status": if ok { "verified" } else { "failed" }, "ok": ok,
                                "orgId": org, "appId": app});
        if let (Value::Object(record), Value::Object(counts)) = (&mut record, counts) {
            record.extend(counts);
        }
        self.record("verify", record)?;
        self.finish(
            "verify",
            if ok { "ok" } else { "failed" },
            detail.clone(),
            started,
        );
        Ok(if ok {
            Outcome::MigratedVerified
        } else {
            Outcome::AppliedUnverified { reason: detail }
        })
    }
}

/// Writes `value` as pretty JSON with a final newline, atomically.
pub(crate) fn write_json_file(path: &Path, value: &Value) -> Result<(), MigrateError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("JSON values serialise");
    bytes.push(b'\n');
    migration::io::write_atomic(path, &bytes).map_err(|source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The severity counts of a plan's steps and the gate they give.
pub(crate) fn grade_plan(response: &SchemaPlanResponse) -> (SeverityCounts, PlanGate) {
    let counts = response
        .steps
        .iter()
        .fold(SeverityCounts::default(), |mut counts, step| {
            counts.add(step.severity());
            counts
        });
    (counts, PlanGate::from_counts(&counts))
}

/// The transform of a run folder's extract. No clock (no execution counts as live), so every
/// command that plans the same data (a validation, a dry run, the approved run) gets the same
/// bytes and the same plan sha256.
pub(crate) fn transform_config(extract_dir: &Path, transform_dir: &Path) -> transform_run::Config {
    transform_run::Config {
        input: Input::ExtractDir(extract_dir.to_path_buf()),
        out_dir: transform_dir.to_path_buf(),
        options: migration::transform::Options::default(),
        sort_budget: 96 << 20,
    }
}

/// Builds the tx plan of `transform_dir` into `apply_dir`, in the source order of
/// `extract_dir` (the run's extract), and checks it as apply will.
pub(crate) fn build_checked_plan(
    extract_dir: &Path,
    transform_dir: &Path,
    apply_dir: &Path,
    batch_size: usize,
    allow_destructive: bool,
) -> Result<txplan::PlanSummary, String> {
    let options = PlanOptions::in_run(batch_size, extract_dir.to_path_buf());
    let plan = txplan::build_plan(transform_dir, apply_dir, &options)
        .map_err(|error| error.to_string())?;
    txplan::check_plan(&apply_dir.join(txplan::PLAN_FILE), allow_destructive)
        .map_err(|error| error.to_string())?;
    Ok(plan)
}

/// The rehearsal of one org's plan: an embedded copy of its legacy data (from the run's
/// `01-extract/` and the target's schema), the plan applied to it (journal in
/// `03-apply/rehearsal/`) and verified (`04-verify/rehearsal/`). Nothing reaches the target
/// but a schema pull.
pub(crate) struct Rehearsal<'a> {
    pub api: &'a dyn InstantApi,
    pub auth: &'a AppAuth,
    pub org_id: &'a str,
    pub schema: &'a TargetSchema,
    pub run: &'a RunDir,
    pub engine: RehearsalEngine<'a>,
    pub options: &'a MigrateOptions,
}

/// What a rehearsal that ran to the end found.
#[derive(Debug, Clone)]
pub(crate) struct Rehearsed {
    /// Legacy rows in the copy.
    pub rows: u64,
    pub steps_applied: u64,
    pub invariants: usize,
    /// Verify's verdict on the copy.
    pub verified: bool,
    /// Invariants that did not pass on the copy.
    pub not_passing: Vec<String>,
}

impl Rehearsed {
    pub fn ok(&self) -> bool {
        self.verified
    }

    /// The one-line outcome: `Ok(detail)` when every invariant passed, else why not.
    pub fn passed(self) -> Result<String, String> {
        if self.ok() {
            Ok(format!(
                "copy of {} legacy rows; {} steps applied; all {} invariants pass",
                self.rows, self.steps_applied, self.invariants
            ))
        } else {
            Err(format!(
                "the plan applied to an embedded copy ({} legacy rows) fails verification: {}",
                self.rows,
                self.not_passing.join(", ")
            ))
        }
    }
}

impl Rehearsal<'_> {
    /// Runs the rehearsal of the plan `03-apply/tx-plan.ndjson` whose sha256 is `sha256`.
    /// `Err` when it could not run to the end (no engine, the copy or the apply failed).
    pub fn run(
        &self,
        extract_dir: &Path,
        apply_dir: &Path,
        sha256: &str,
    ) -> Result<Rehearsed, String> {
        let engine = (self.engine)()
            .map_err(|error| format!("no embedded engine for the rehearsal: {error}"))?;
        let created = engine
            .create_ephemeral_app(&EphemeralAppRequest {
                title: format!("rehearsal-{}", self.org_id),
                schema: None,
                rules: None,
            })
            .map_err(|error| format!("creating the rehearsal app: {error}"))?;
        let auth = created.app.auth();
        // The copy gets the target's schema as it is now, plus the target schema (a dry run
        // has not pushed it), so the plan meets the attributes it will meet on the target.
        let pulled = self
            .api
            .schema_pull(self.auth)
            .map_err(|error| format!("pulling the target's schema: {error}"))?;
        rehearsal::copy_schema(engine.as_ref(), &auth, &pulled.schema.to_dsl())
            .map_err(|error| error.to_string())?;
        rehearsal::copy_schema(engine.as_ref(), &auth, &self.schema.schema)
            .map_err(|error| error.to_string())?;
        let copy = rehearsal::load_extract(
            engine.as_ref(),
            &auth,
            extract_dir,
            &pulled.schema.to_dsl(),
            self.options.batch_size,
        )
        .map_err(|error| error.to_string())?;
        // Every rehearsal starts from a fresh copy, so its journal must start empty too (an
        // earlier rehearsal's journal would make apply skip every batch).
        let rehearsal_apply = apply_dir.join("rehearsal");
        match std::fs::remove_dir_all(&rehearsal_apply) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("{}: {error}", rehearsal_apply.display())),
        }
        let summary = apply::apply(
            engine.as_ref(),
            &auth,
            &ApplyPaths {
                plan: apply_dir.join(txplan::PLAN_FILE),
                dir: rehearsal_apply,
            },
            &ApplyOptions {
                approved_sha256: sha256.to_string(),
                allow_destructive: self.options.allow_destructive,
                concurrency: self.options.concurrency,
                resume: false,
            },
            &mut |_| {},
        )
        .map_err(|error| {
            let text = error.to_string();
            // The apply error speaks to `threadmig apply` users; here the fix is the schema.
            let text = text
                .split("; it is not journaled")
                .next()
                .unwrap_or(&text)
                .to_string();
            if text.contains("Attributes are missing") {
                format!(
                    "applying the plan to the copy: {text}. The target schema (--schema-file) \
                     lacks an attribute or link the plan writes; apps whose events link \
                     `whatsappMessages` or `emails` need a target schema declaring those \
                     `thread_items` links (thread V1 plus the esolbay links)"
                )
            } else {
                format!("applying the plan to the copy: {text}")
            }
        })?;
        let run_path = self.run.path();
        let mut config = VerifyConfig::for_run(run_path, self.run.run_id());
        config.out_dir = run_path.join(Section::Verify.dir_name()).join("rehearsal");
        config.sample_size = self.options.sample_size;
        let result = verify::verify(engine.as_ref(), &auth, &config, &mut |_| {})
            .map_err(|error| format!("verifying the copy: {error}"))?;
        Ok(Rehearsed {
            rows: copy.rows.values().sum(),
            steps_applied: summary.steps_applied,
            invariants: result.invariants.len(),
            verified: result.ok,
            not_passing: result
                .invariants
                .iter()
                .filter(|invariant| invariant.status != verify::Status::Pass)
                .map(|invariant| invariant.id.clone())
                .collect(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct PlanVerdict {
    gate: PlanGate,
    steps: usize,
}

/// The gate inputs for one org: the preflight scan and model plan as they are, and the fleet
/// matrix restricted to this org's row (the wave-wide matrix gates judge the whole fleet; a
/// single org's migration is judged on its own row). A missing matrix, or one without a row
/// for the org, is a missing input: fail closed.
pub fn org_gate_inputs(artifacts: &Path, org_id: &str) -> GateInputs {
    let mut inputs = GateInputs::load_defaults(artifacts);
    let matrix_path = artifacts.join(InputKind::Matrix.default_relative_path());
    let restricted = std::fs::read(&matrix_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|mut matrix| {
            let rows = matrix.get_mut("rows")?.as_array_mut()?;
            rows.retain(|row| row.pointer("/org/id").and_then(Value::as_str) == Some(org_id));
            if rows.is_empty() {
                return None;
            }
            // The fleet summary describes every org; the gates then count this org's row.
            matrix.as_object_mut()?.remove("summary");
            serde_json::to_vec(&matrix).ok()
        });
    // No matrix, or no row for the org: an unparsable input, so the matrix gates fail closed.
    inputs.matrix = GateInput::from_bytes(
        InputKind::Matrix,
        &matrix_path,
        restricted.as_deref().unwrap_or(b""),
    );
    inputs
}

/// The `timeline.award_conversations` invariant: no award conversation is missing from the
/// thread timeline (`conversation_history_orphan`). Failing, it names the tenders and the one
/// command that repairs each.
pub fn timeline_invariant(api: &dyn InstantApi, auth: &AppAuth, org_id: &str) -> verify::Invariant {
    const ID: &str = "timeline.award_conversations";
    match crate::timeline::find_orphans(api, auth, 500) {
        Ok(orphans) => verify::Invariant {
            id: ID.to_string(),
            status: if orphans.is_empty() {
                verify::Status::Pass
            } else {
                verify::Status::Fail
            },
            expected: json!(0),
            actual: json!(orphans.len()),
            sample: orphans
                .iter()
                .take(verify::MAX_SAMPLE_IDS)
                .map(|orphan| orphan.tender_id.clone())
                .collect(),
            detail: (!orphans.is_empty()).then(|| {
                format!(
                    "conversation_history_orphan: {} award conversation item(s) have no timeline; run {}",
                    orphans.iter().map(|orphan| orphan.items_missing).sum::<usize>(),
                    orphans
                        .iter()
                        .map(|orphan| format!("`{}`", orphan.action(org_id)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        },
        Err(error) => verify::Invariant {
            id: ID.to_string(),
            status: verify::Status::Error,
            expected: json!(0),
            actual: Value::Null,
            sample: Vec::new(),
            detail: Some(error),
        },
    }
}
