//! The pre-migration validation bundle of one organisation (`threadmig validate --org O`):
//! the eight items of the seed, all read-only on the target, into a fresh run folder
//! `artifacts/runs/<runId>/`, each recorded as a manifest stage, plus the report
//! `artifacts/reports/pre-migration-validation.<runId>.<org>.json`.
//!
//! | item | evidence |
//! |---|---|
//! | `schemaPull` | `01-extract/schema.pull.json` (schema backup) |
//! | `permsPull` | `01-extract/perms.pull.json` (permissions backup) |
//! | `schemaPlan` | `01-extract/schema.plan.before-push.json` |
//! | `sourceExtract` | `01-extract/<namespace>.ndjson`, `summary.json`, `source.extract.meta.json` |
//! | `transform` | `02-transform/` |
//! | `txPlan` | `03-apply/tx-plan.ndjson` and `tx-plan.json` (with its sha256) |
//! | `txDryRun` | `03-apply/tx.dry-run.summary.json`: the plan check and the rehearsal on an embedded copy (`03-apply/rehearsal/`, `04-verify/rehearsal/`) |
//! | `verifyBefore` | `04-verify/verify.before.json`: rows per legacy and thread namespace on the target |
//!
//! The target sees queries, schema and permission pulls and a schema plan: never a transact,
//! a schema push or a steps apply. The dry run is a real apply, but on a copy.
//!
//! `ok` is the old rule: every item ok, the source extract either ok or a non-blocking failure
//! (§5.8). Unlike the old bundle, a failure matching the non-blocking rule only counts as
//! non-blocking when the target provably has nothing to extract (the ids-only counts of
//! `verifyBefore` find no legacy row): the dataset is then empty by fact, not by a swallowed
//! error, and the later items run on it. With legacy rows present the failure blocks, and the
//! report says that it matched the rule and why it still blocks. Plan severity does not make
//! the bundle fail (the hot-deploy gates judge it); it is reported with the plan's gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use instant_api::{ApiError, AppAuth, InstantApi, QueryRequest};
use migration::evidence::{EvidenceError, RunDir, Section};
use migration::extract::{self, ExtractConfig, ExtractError};
use migration::model::{LegacyNamespace, TargetNamespace};
use migration::run as transform_run;
use migration::txplan::{self, Op, PlanSummary};
use org_directory::{CredentialsOutcome, OrgDirectory};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::issues::{self, IssueCode, Observation, PlanFailure};
use crate::matrix::TargetSchema;
use crate::migrate::{
    build_checked_plan, grade_plan, transform_config, write_json_file, MigrateError,
    MigrateOptions, Rehearsal, RehearsalEngine,
};

/// `artifacts/reports/pre-migration-validation.<runId>.<org>.json`.
pub const REPORT_PREFIX: &str = "pre-migration-validation";
/// The dry run's summary in `03-apply/`.
pub const DRY_RUN_FILE: &str = "tx.dry-run.summary.json";
/// The counts before migration in `04-verify/`.
pub const VERIFY_BEFORE_FILE: &str = "verify.before.json";
/// What the source extract did, in `01-extract/`.
pub const EXTRACT_META_FILE: &str = "source.extract.meta.json";

/// The report's file name for `run_id` and `org_id`.
pub fn report_file_name(run_id: &str, org_id: &str) -> String {
    format!("{REPORT_PREFIX}.{run_id}.{}.json", file_name_part(org_id))
}

/// An org id as a file-name part (`[^a-zA-Z0-9_-]` -> `_`, as the old scripts did).
pub fn file_name_part(org_id: &str) -> String {
    org_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The §5.8 rule: the request failed, not for authentication (401/403), and the server said
/// the query is invalid for this app (400 `validation failed for query`), or that something
/// it names does not exist or is not indexed.
pub fn matches_non_blocking_rule(status: u16, message: &str) -> bool {
    if status == 401 || status == 403 || (200..300).contains(&status) {
        return false;
    }
    let message = message.to_lowercase();
    (status == 400 && message.contains("validation failed for query"))
        || message.contains("does not exist")
        || message.contains("not indexed")
}

/// The org's app credentials, or why there are none (an outcome, not an error: the report
/// says it and the bundle is not ok).
#[derive(Debug, Clone)]
pub enum Credentials {
    Present(AppAuth),
    Unusable { issue_code: String, reason: String },
}

/// Resolves `org_id` in the directory. Missing or malformed credentials are
/// `missing_instant_credentials`; a directory that cannot answer is `clerk_lookup_error`.
pub fn resolve_credentials(directory: &dyn OrgDirectory, org_id: &str) -> Credentials {
    match directory.credentials(org_id) {
        Ok(CredentialsOutcome::Present(credentials)) => Credentials::Present(AppAuth::new(
            &credentials.app_id,
            credentials.admin_token.expose(),
        )),
        Ok(outcome) => Credentials::Unusable {
            issue_code: IssueCode::MissingInstantCredentials.as_str().to_string(),
            reason: format!(
                "no usable Instant credentials: {}",
                outcome.reason().unwrap_or("the directory records none")
            ),
        },
        Err(error) => Credentials::Unusable {
            issue_code: IssueCode::ClerkLookupError.as_str().to_string(),
            reason: format!("the organisation directory could not answer: {error}"),
        },
    }
}

#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Rows per page of the extract.
    pub page_size: usize,
    /// Ids per page of the `verifyBefore` counts.
    pub count_page_size: usize,
    /// Steps per batch of the tx plan (the same as `migrate`'s, so the sha256 is the one a
    /// later `migrate` of the same data plans).
    pub batch_size: usize,
    /// Batches in flight during the rehearsal.
    pub concurrency: usize,
    /// Rows per namespace compared field by field on the copy.
    pub sample_size: usize,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        let migrate = MigrateOptions::default();
        ValidateOptions {
            page_size: migrate.page_size,
            count_page_size: 5000,
            batch_size: migrate.batch_size,
            concurrency: migrate.concurrency,
            sample_size: migrate.sample_size,
        }
    }
}

/// Everything a validation works on.
pub struct ValidateTarget<'a> {
    pub api: &'a dyn InstantApi,
    pub credentials: &'a Credentials,
    pub org_id: &'a str,
    pub schema: &'a TargetSchema,
    /// A run folder that does not exist yet (see [`check_fresh_run`]).
    pub run: &'a RunDir,
    /// Where the report goes (`<artifacts>/reports/` + [`report_file_name`]).
    pub report_path: &'a Path,
    pub rehearsal_engine: RehearsalEngine<'a>,
}

/// What the caller wants to hear while the items run.
pub trait Observer {
    /// RFC 3339 "now" for the report and manifest envelopes (the caller owns the clock).
    fn now(&self) -> String;
    fn item_finished(&mut self, _item: &str, _check: &Check) {}
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(
        "{}: the run folder already exists; a validation's evidence is never mixed with another run's, so give a new --run-id",
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

impl From<MigrateError> for ValidateError {
    fn from(error: MigrateError) -> Self {
        match error {
            MigrateError::Evidence(error) => ValidateError::Evidence(error),
            MigrateError::Io { path, source } => ValidateError::Io { path, source },
        }
    }
}

/// Refuses a run folder that already exists (even empty: its name is taken).
pub fn check_fresh_run(run: &RunDir) -> Result<(), ValidateError> {
    if run.path().exists() {
        return Err(ValidateError::RunExists {
            path: run.path().to_path_buf(),
        });
    }
    Ok(())
}

/// One item of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub ok: bool,
    /// HTTP status of the item's request, for the items that are one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The item's own keys (`summary`, `entityCounts`, `records`, `sha256`, …).
    #[serde(flatten)]
    pub detail: Map<String, Value>,
    /// Why the item did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its evidence, relative to the run folder.
    pub files: Vec<String>,
}

impl Check {
    fn passed(status: Option<u16>, detail: Value, files: Vec<String>) -> Check {
        Check {
            ok: true,
            status,
            detail: into_map(detail),
            skipped: None,
            error: None,
            files,
        }
    }

    fn failed(status: Option<u16>, error: String, detail: Value, files: Vec<String>) -> Check {
        Check {
            ok: false,
            status,
            detail: into_map(detail),
            skipped: None,
            error: Some(error),
            files,
        }
    }

    fn skipped(reason: &str) -> Check {
        Check {
            ok: false,
            status: None,
            detail: Map::new(),
            skipped: Some(reason.to_string()),
            error: None,
            files: Vec::new(),
        }
    }

    /// A failed source extract judged non-blocking (only the source extract has the key).
    pub fn is_non_blocking_failure(&self) -> bool {
        !self.ok && self.detail.get("nonBlockingFailure") == Some(&Value::Bool(true))
    }

    fn why(&self) -> String {
        self.error
            .clone()
            .or_else(|| {
                self.skipped
                    .as_ref()
                    .map(|reason| format!("not run: {reason}"))
            })
            .unwrap_or_else(|| "not ok".into())
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The eight items, under the old report's keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub schema_pull: Check,
    pub perms_pull: Check,
    pub schema_plan: Check,
    pub source_extract: Check,
    pub transform: Check,
    pub tx_plan: Check,
    pub tx_dry_run: Check,
    pub verify_before: Check,
}

impl Validation {
    /// `(key, item)` in report order.
    pub fn items(&self) -> [(&'static str, &Check); 8] {
        [
            ("schemaPull", &self.schema_pull),
            ("permsPull", &self.perms_pull),
            ("schemaPlan", &self.schema_plan),
            ("sourceExtract", &self.source_extract),
            ("transform", &self.transform),
            ("txPlan", &self.tx_plan),
            ("txDryRun", &self.tx_dry_run),
            ("verifyBefore", &self.verify_before),
        ]
    }

    fn all_skipped(reason: &str) -> Validation {
        Validation {
            schema_pull: Check::skipped(reason),
            perms_pull: Check::skipped(reason),
            schema_plan: Check::skipped(reason),
            source_extract: Check::skipped(reason),
            transform: Check::skipped(reason),
            tx_plan: Check::skipped(reason),
            tx_dry_run: Check::skipped(reason),
            verify_before: Check::skipped(reason),
        }
    }

    /// The old rule, with the source extract's non-blocking failure (already judged).
    pub fn ok(&self) -> bool {
        let source_ok = self.source_extract.ok || self.source_extract.is_non_blocking_failure();
        self.items()
            .into_iter()
            .filter(|(key, _)| *key != "sourceExtract")
            .all(|(_, check)| check.ok)
            && source_ok
    }
}

/// `pre-migration-validation.<runId>.<org>.json`. Never holds a token.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationReport {
    pub ok: bool,
    pub run_id: String,
    pub org_id: String,
    pub target_app_id: Option<String>,
    pub target_admin_token_present: bool,
    pub schema_source: String,
    pub schema_sha256: String,
    pub started_at: String,
    pub ended_at: String,
    /// The issue code behind a bundle that is not ok, when one is known (credentials, a
    /// refused plan).
    pub issue_code: Option<String>,
    /// One line per item that is not ok.
    pub reasons: Vec<String>,
    pub validation: Validation,
    /// The run folder.
    pub artifacts_root: PathBuf,
    pub report_file: PathBuf,
}

impl ValidationReport {
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Runs the bundle for one org. Errors only when the run folder or the report cannot be
/// written (or the run folder already exists); everything the target or the data does is in
/// the report.
pub fn validate_org(
    target: &ValidateTarget<'_>,
    options: &ValidateOptions,
    observer: &mut dyn Observer,
) -> Result<ValidationReport, ValidateError> {
    check_fresh_run(target.run)?;
    let started_at = observer.now();
    let mut bundle = Bundle {
        target,
        options,
        observer,
        issue_code: None,
    };
    let (validation, app_id) = match target.credentials {
        Credentials::Unusable { issue_code, .. } => {
            bundle.issue_code = Some(issue_code.clone());
            // The reason is in `reasons` once; the items only say why they did not run.
            let validation = Validation::all_skipped(&format!("{issue_code} (see reasons)"));
            (validation, None)
        }
        Credentials::Present(auth) => (bundle.run_items(auth)?, Some(auth.app_id.clone())),
    };
    let ok = validation.ok();
    let reasons: Vec<String> =
        if let Credentials::Unusable { issue_code, reason } = target.credentials {
            vec![format!("{issue_code}: {reason}")]
        } else {
            validation
                .items()
                .into_iter()
                .filter(|(_, check)| !check.ok && !check.is_non_blocking_failure())
                .map(|(key, check)| format!("{key}: {}", check.why()))
                .collect()
        };
    let report = ValidationReport {
        ok,
        run_id: target.run.run_id().to_string(),
        org_id: target.org_id.to_string(),
        target_app_id: app_id.clone(),
        target_admin_token_present: matches!(target.credentials, Credentials::Present(_)),
        schema_source: target.schema.source.clone(),
        schema_sha256: target.schema.sha256.clone(),
        started_at,
        ended_at: bundle.observer.now(),
        issue_code: bundle.issue_code.clone(),
        reasons,
        validation,
        artifacts_root: target.run.path().to_path_buf(),
        report_file: target.report_path.to_path_buf(),
    };
    migration::io::write_atomic(target.report_path, &report.to_json_bytes()).map_err(|source| {
        ValidateError::Io {
            path: target.report_path.to_path_buf(),
            source,
        }
    })?;
    let summary: Map<String, Value> = report
        .validation
        .items()
        .into_iter()
        .map(|(key, check)| (key.to_string(), json!(check.ok)))
        .collect();
    target.run.record_stage(
        "validation",
        json!({"status": if ok { "completed" } else { "failed" }, "ok": ok,
               "orgId": target.org_id, "appId": app_id, "issueCode": report.issue_code,
               "reportFile": target.report_path, "summary": summary,
               "reasons": report.reasons}),
        &[],
        &report.ended_at,
    )?;
    Ok(report)
}

struct Bundle<'a, 'b> {
    target: &'b ValidateTarget<'a>,
    options: &'b ValidateOptions,
    observer: &'b mut dyn Observer,
    issue_code: Option<String>,
}

impl Bundle<'_, '_> {
    fn run(&self) -> &RunDir {
        self.target.run
    }

    fn dir(&self, section: Section) -> Result<PathBuf, ValidateError> {
        Ok(self.run().create_section(section)?)
    }

    /// `<section>/<name>` relative to the run folder.
    fn rel(section: Section, name: &str) -> String {
        format!("{}/{name}", section.dir_name())
    }

    /// Records the item in the manifest and tells the observer.
    fn finish(&mut self, item: &str, check: &Check, app_id: &str) -> Result<(), ValidateError> {
        let status = if check.ok {
            "ok"
        } else if check.skipped.is_some() {
            "skipped"
        } else {
            "failed"
        };
        let mut record = json!({"status": status, "orgId": self.target.org_id, "appId": app_id,
                                "files": check.files});
        if let (Value::Object(record), Some(reason)) =
            (&mut record, check.error.as_ref().or(check.skipped.as_ref()))
        {
            record.insert("reason".into(), json!(reason));
        }
        let now = self.observer.now();
        self.run().record_stage(item, record, &[], &now)?;
        self.observer.item_finished(item, check);
        Ok(())
    }

    fn run_items(&mut self, auth: &AppAuth) -> Result<Validation, ValidateError> {
        let app = auth.app_id.clone();
        let extract_dir = self.dir(Section::Extract)?;

        let schema_pull = {
            let file = Self::rel(Section::Extract, "schema.pull.json");
            let path = extract_dir.join("schema.pull.json");
            match self.target.api.schema_pull(auth) {
                Ok(response) => {
                    write_json_file(&path, &serde_json::to_value(&response).unwrap_or_default())?;
                    Check::passed(
                        Some(200),
                        json!({"attrs": response.attrs.len()}),
                        vec![file],
                    )
                }
                Err(error) => {
                    write_json_file(&path, &error_document(&error))?;
                    Check::failed(
                        Some(error.status),
                        format!("schema pull failed: {error}"),
                        json!({}),
                        vec![file],
                    )
                }
            }
        };
        self.finish("schemaPull", &schema_pull, &app)?;

        let perms_pull = {
            let file = Self::rel(Section::Extract, "perms.pull.json");
            let path = extract_dir.join("perms.pull.json");
            match self.target.api.perms_pull(auth) {
                Ok(response) => {
                    write_json_file(&path, &serde_json::to_value(&response).unwrap_or_default())?;
                    Check::passed(
                        Some(200),
                        json!({"hasRules": response.perms.as_ref().is_some_and(|perms| !perms.is_null())}),
                        vec![file],
                    )
                }
                Err(error) => {
                    write_json_file(&path, &error_document(&error))?;
                    Check::failed(
                        Some(error.status),
                        format!("perms pull failed: {error}"),
                        json!({}),
                        vec![file],
                    )
                }
            }
        };
        self.finish("permsPull", &perms_pull, &app)?;

        let schema_plan = {
            let name = "schema.plan.before-push.json";
            let file = Self::rel(Section::Extract, name);
            let path = extract_dir.join(name);
            match self
                .target
                .api
                .schema_plan(auth, &self.target.schema.plan_request())
            {
                Ok(response) => {
                    write_json_file(&path, &serde_json::to_value(&response).unwrap_or_default())?;
                    let (counts, gate) = grade_plan(&response);
                    Check::passed(
                        Some(200),
                        json!({"summary": {"total": response.steps.len(), "critical": counts.critical,
                                           "warning": counts.warning, "review": counts.review,
                                           "safe": counts.safe, "gate": gate.as_str()}}),
                        vec![file],
                    )
                }
                Err(error) => {
                    write_json_file(&path, &error_document(&error))?;
                    let failure = PlanFailure::from_api_error(&error);
                    let code = issues::classify(&Observation::PlanFailed(&failure));
                    self.issue_code = Some(code.as_str().to_string());
                    Check::failed(
                        Some(error.status),
                        format!("the server refused the plan: {error}"),
                        json!({"issueCode": code.as_str()}),
                        vec![file],
                    )
                }
            }
        };
        self.finish("schemaPlan", &schema_plan, &app)?;

        let mut extract_config = ExtractConfig::new(&extract_dir);
        extract_config.page_size = self.options.page_size;
        let extracted = extract::extract(self.target.api, auth, &extract_config, &mut |_| {});

        // The counts are what makes a non-blocking extract failure believable, so they run
        // before the extract is judged.
        let (verify_before, legacy_rows) = self.verify_before(auth)?;
        self.finish("verifyBefore", &verify_before, &app)?;

        let source_extract = self.judge_extract(extracted, &extract_dir, legacy_rows)?;
        self.finish("sourceExtract", &source_extract, &app)?;
        let dataset_known = source_extract.ok || source_extract.is_non_blocking_failure();

        let transform_dir = self.run().section(Section::Transform);
        let transform = if dataset_known {
            match transform_run::run(&transform_config(&extract_dir, &transform_dir)) {
                Ok(summary) => Check::passed(
                    None,
                    json!({"records": summary.output.values().sum::<u64>(),
                           "linkIntents": summary.links,
                           "warnings": summary.rejects_by_rule.values().sum::<u64>(),
                           "rejected": summary.rejected,
                           "input": summary.input, "output": summary.output,
                           "rejectsByRule": summary.rejects_by_rule}),
                    files_under(self.run().path(), Section::Transform.dir_name()),
                ),
                Err(error) => Check::failed(None, error.to_string(), json!({}), Vec::new()),
            }
        } else {
            Check::skipped("the source extract failed")
        };
        self.finish("transform", &transform, &app)?;

        let apply_dir = self.dir(Section::Apply)?;
        let mut plan: Option<PlanSummary> = None;
        let tx_plan = if transform.ok {
            let extract_dir = self.run().section(Section::Extract);
            match build_checked_plan(
                &extract_dir,
                &transform_dir,
                &apply_dir,
                self.options.batch_size,
                false,
            ) {
                Ok(summary) => {
                    let check = Check::passed(None, tx_plan_detail(&summary), tx_plan_files());
                    plan = Some(summary);
                    check
                }
                Err(reason) => Check::failed(None, reason, json!({}), tx_plan_files()),
            }
        } else {
            Check::skipped("the transform did not run to the end")
        };
        self.finish("txPlan", &tx_plan, &app)?;

        let tx_dry_run = match &plan {
            Some(plan) => self.dry_run(auth, &extract_dir, &apply_dir, plan)?,
            None => Check::skipped("no checked tx plan"),
        };
        self.finish("txDryRun", &tx_dry_run, &app)?;

        Ok(Validation {
            schema_pull,
            perms_pull,
            schema_plan,
            source_extract,
            transform,
            tx_plan,
            tx_dry_run,
            verify_before,
        })
    }

    /// Judges the extract (§5.8 and the emptiness proof) and writes its meta file.
    fn judge_extract(
        &mut self,
        extracted: Result<extract::ExtractSummary, ExtractError>,
        extract_dir: &Path,
        legacy_rows: Option<u64>,
    ) -> Result<Check, ValidateError> {
        let meta_file = Self::rel(Section::Extract, EXTRACT_META_FILE);
        let check = match extracted {
            Ok(summary) => {
                let mut files: Vec<String> = summary
                    .namespaces
                    .keys()
                    .map(|namespace| Self::rel(Section::Extract, &format!("{namespace}.ndjson")))
                    .collect();
                files.push(Self::rel(Section::Extract, "summary.json"));
                files.push(meta_file);
                Check::passed(
                    Some(200),
                    json!({"fallbackUsed": false, "nonBlockingFailure": false,
                           "matchesNonBlockingRule": false,
                           "entityCounts": summary.namespaces, "pages": summary.pages,
                           "duplicates": summary.duplicates}),
                    files,
                )
            }
            Err(error) => {
                let (status, message) = match &error {
                    ExtractError::Query { source, .. } => {
                        (Some(source.status), source.message.clone())
                    }
                    _ => (None, error.to_string()),
                };
                let rule = status.is_some_and(|status| matches_non_blocking_rule(status, &message));
                let (non_blocking, why) = match (rule, legacy_rows) {
                    (false, _) => (false, None),
                    (true, Some(0)) => (
                        true,
                        Some("the target holds no legacy row (ids-only counts), so there is nothing to extract".to_string()),
                    ),
                    (true, Some(rows)) => (
                        false,
                        Some(format!("it matches the non-blocking rule, but the target holds {rows} legacy row(s) that could not be extracted")),
                    ),
                    (true, None) => (
                        false,
                        Some("it matches the non-blocking rule, but the legacy rows could not be counted, so an empty dataset is not proven".to_string()),
                    ),
                };
                let mut files = Vec::new();
                if non_blocking {
                    // Proven empty: the later items run on empty namespace files.
                    for source in extract::SOURCES {
                        let name = format!("{}.ndjson", source.namespace);
                        let path = extract_dir.join(&name);
                        if !path.exists() {
                            migration::io::write_atomic(&path, b"").map_err(|source| {
                                ValidateError::Io {
                                    path: path.clone(),
                                    source,
                                }
                            })?;
                        }
                        files.push(Self::rel(Section::Extract, &name));
                    }
                }
                files.push(meta_file);
                Check::failed(
                    status,
                    format!("source extract failed: {error}"),
                    json!({"fallbackUsed": false, "nonBlockingFailure": non_blocking,
                           "matchesNonBlockingRule": rule, "nonBlockingReason": why,
                           "entityCounts": {}}),
                    files,
                )
            }
        };
        let mut meta = json!({"ok": check.ok, "status": check.status, "error": check.error});
        if let Value::Object(meta) = &mut meta {
            for key in [
                "fallbackUsed",
                "nonBlockingFailure",
                "matchesNonBlockingRule",
                "nonBlockingReason",
            ] {
                if let Some(value) = check.detail.get(key) {
                    meta.insert(key.to_string(), value.clone());
                }
            }
        }
        write_json_file(&extract_dir.join(EXTRACT_META_FILE), &meta)?;
        Ok(check)
    }

    /// Rows per legacy and thread namespace on the target, by id only. Returns the check and
    /// the legacy row total when every legacy count succeeded.
    fn verify_before(&mut self, auth: &AppAuth) -> Result<(Check, Option<u64>), ValidateError> {
        let dir = self.dir(Section::Verify)?;
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut errors: BTreeMap<&str, String> = BTreeMap::new();
        let mut status = 200u16;
        let legacy: Vec<&'static str> = LegacyNamespace::ALL.iter().map(|ns| ns.as_str()).collect();
        let thread: Vec<&'static str> = TargetNamespace::ALL.iter().map(|ns| ns.as_str()).collect();
        for namespace in legacy.iter().chain(thread.iter()) {
            match count_rows(
                self.target.api,
                auth,
                namespace,
                self.options.count_page_size,
            ) {
                Ok(rows) => {
                    counts.insert(namespace, rows);
                }
                Err(CountError::Api(error)) => {
                    status = error.status;
                    errors.insert(namespace, error.to_string());
                }
                Err(CountError::Answer(message)) => {
                    errors.insert(namespace, message);
                }
            }
        }
        let legacy_total: Option<u64> = legacy
            .iter()
            .map(|namespace| counts.get(namespace).copied())
            .sum();
        let thread_total: Option<u64> = thread
            .iter()
            .map(|namespace| counts.get(namespace).copied())
            .sum();
        let document = json!({
            "ok": errors.is_empty(),
            "orgId": self.target.org_id,
            "appId": auth.app_id,
            "entityCounts": counts,
            "legacyRows": legacy_total,
            "threadRows": thread_total,
            "errors": errors,
        });
        write_json_file(&dir.join(VERIFY_BEFORE_FILE), &document)?;
        let files = vec![Self::rel(Section::Verify, VERIFY_BEFORE_FILE)];
        let detail = json!({"entityCounts": counts, "legacyRows": legacy_total,
                            "threadRows": thread_total});
        let check = if errors.is_empty() {
            Check::passed(Some(200), detail, files)
        } else {
            let failed: Vec<String> = errors
                .iter()
                .map(|(namespace, error)| format!("{namespace}: {error}"))
                .collect();
            Check::failed(
                Some(status),
                format!("counting rows failed: {}", failed.join("; ")),
                detail,
                files,
            )
        };
        Ok((check, legacy_total))
    }

    /// The plan check (again, from the file on disk) and the rehearsal on an embedded copy.
    fn dry_run(
        &mut self,
        auth: &AppAuth,
        extract_dir: &Path,
        apply_dir: &Path,
        plan: &PlanSummary,
    ) -> Result<Check, ValidateError> {
        let migrate_options = MigrateOptions {
            dry_run: true,
            allow_destructive: false,
            batch_size: self.options.batch_size,
            concurrency: self.options.concurrency,
            page_size: self.options.page_size,
            sample_size: self.options.sample_size,
            ..MigrateOptions::default()
        };
        let rehearsal = Rehearsal {
            api: self.target.api,
            auth,
            org_id: self.target.org_id,
            schema: self.target.schema,
            run: self.target.run,
            engine: self.target.rehearsal_engine,
            options: &migrate_options,
        };
        let outcome = rehearsal.run(extract_dir, apply_dir, &plan.sha256);
        let mut parsed = json!({"dryRun": true, "txCount": plan.steps, "batches": plan.batches,
                                "sha256": plan.sha256, "planCheck": "ok"});
        let check_files = vec![
            Self::rel(Section::Apply, DRY_RUN_FILE),
            format!(
                "{}/rehearsal/{}",
                Section::Verify.dir_name(),
                migration::verify::RESULT_FILE
            ),
        ];
        let check = match outcome {
            Ok(rehearsed) => {
                parsed["rehearsal"] = json!({"ok": rehearsed.ok(), "legacyRows": rehearsed.rows,
                                              "stepsApplied": rehearsed.steps_applied,
                                              "invariants": rehearsed.invariants,
                                              "notPassing": rehearsed.not_passing});
                match rehearsed.passed() {
                    Ok(_) => Check::passed(None, json!({"parsed": parsed}), check_files),
                    Err(reason) => {
                        Check::failed(None, reason, json!({"parsed": parsed}), check_files)
                    }
                }
            }
            Err(reason) => {
                parsed["rehearsal"] = json!({"ok": false, "error": reason});
                Check::failed(
                    None,
                    format!("rehearsal: {reason}"),
                    json!({"parsed": parsed}),
                    vec![Self::rel(Section::Apply, DRY_RUN_FILE)],
                )
            }
        };
        write_json_file(
            &apply_dir.join(DRY_RUN_FILE),
            &json!({"ok": check.ok, "orgId": self.target.org_id, "appId": auth.app_id,
                    "parsed": parsed, "error": check.error}),
        )?;
        Ok(check)
    }
}

/// The old report's tx plan keys from a built plan. `warnings` is 0 by construction: the
/// planner fails on a row it cannot plan instead of skipping it.
fn tx_plan_detail(plan: &PlanSummary) -> Value {
    let destructive: u64 = [Op::Update, Op::Link, Op::Merge, Op::Unlink, Op::Delete]
        .into_iter()
        .filter(|op| op.is_destructive())
        .filter_map(|op| plan.steps_by_op.get(op.as_str()))
        .sum();
    let by_entity: BTreeMap<&String, u64> = plan
        .steps_by_namespace
        .iter()
        .map(|(namespace, ops)| (namespace, ops.values().sum()))
        .collect();
    json!({"total": plan.steps, "destructiveOps": destructive, "countsByOp": plan.steps_by_op,
           "countsByEntity": by_entity, "warnings": 0, "batches": plan.batches,
           "batchSize": plan.batch_size, "sha256": plan.sha256})
}

fn tx_plan_files() -> Vec<String> {
    [txplan::PLAN_FILE, txplan::SUMMARY_FILE]
        .into_iter()
        .map(|name| format!("{}/{name}", Section::Apply.dir_name()))
        .collect()
}

/// Files directly under `<root>/<section>`, relative to `root`, sorted.
fn files_under(root: &Path, section: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root.join(section))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .map(|name| format!("{section}/{name}"))
        .collect();
    files.sort();
    files
}

/// The error as evidence: status and the server's envelope (never a token: the adapter
/// scrubs an echoed one).
fn error_document(error: &ApiError) -> Value {
    json!({"ok": false, "status": error.status, "error": error.envelope()})
}

enum CountError {
    Api(Box<ApiError>),
    Answer(String),
}

/// Rows of `namespace`, paged by id only in the server's default order.
fn count_rows(
    api: &dyn InstantApi,
    auth: &AppAuth,
    namespace: &str,
    page: usize,
) -> Result<u64, CountError> {
    let page = page.max(1);
    let mut offset = 0u64;
    let mut previous_first: Option<String> = None;
    loop {
        let query = json!({namespace: {"$": {"limit": page, "offset": offset, "fields": ["id"]}}});
        let answer = api
            .query(
                auth,
                &QueryRequest {
                    query,
                    inference: false,
                },
            )
            .map_err(|error| CountError::Api(Box::new(error)))?;
        let Some(rows) = answer.get(namespace).and_then(Value::as_array) else {
            return Err(CountError::Answer(
                "the answer has no list of rows for the namespace".into(),
            ));
        };
        let first = rows
            .first()
            .and_then(|row| row.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if offset > 0 && first.is_some() && first == previous_first {
            return Err(CountError::Answer(format!(
                "the page at offset {offset} repeats the previous page: the server does not apply `offset`"
            )));
        }
        previous_first = first;
        offset += rows.len() as u64;
        if rows.len() < page {
            return Ok(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_blocking_rule_table() {
        let cases: [(u16, &str, bool); 10] = [
            (400, "Validation failed for query: bad", true),
            (400, "The `x.y` attribute is not indexed.", true),
            (500, "namespace foo does not exist", true),
            (404, "The entity for the lookup does not exist.", true),
            (400, "Validation failed for steps", false),
            (401, "Validation failed for query", false),
            (403, "something does not exist", false),
            (500, "internal error", false),
            (0, "connection refused", false),
            (200, "does not exist", false),
        ];
        for (status, message, expected) in cases {
            assert_eq!(
                matches_non_blocking_rule(status, message),
                expected,
                "{status} {message}"
            );
        }
    }

    #[test]
    fn report_names_sanitise_the_org() {
        assert_eq!(
            report_file_name("r1", "org_A/b c"),
            "pre-migration-validation.r1.org_A_b_c.json"
        );
    }

    #[test]
    fn ok_accepts_only_a_judged_non_blocking_extract_failure() {
        let passed = || Check::passed(Some(200), json!({}), Vec::new());
        let mut validation = Validation {
            schema_pull: passed(),
            perms_pull: passed(),
            schema_plan: passed(),
            source_extract: Check::failed(
                Some(400),
                "x".into(),
                json!({"nonBlockingFailure": false, "matchesNonBlockingRule": true}),
                Vec::new(),
            ),
            transform: passed(),
            tx_plan: passed(),
            tx_dry_run: passed(),
            verify_before: passed(),
        };
        assert!(!validation.ok());
        validation
            .source_extract
            .detail
            .insert("nonBlockingFailure".into(), json!(true));
        assert!(validation.ok());
        validation.verify_before = Check::skipped("x");
        assert!(!validation.ok());
    }
}
