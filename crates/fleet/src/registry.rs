//! The scenario registry (`update_scenario_registry`, anchor §3.23 and §5.11): failure
//! signatures found in the run reports, grouped by scenario, each with its deterministic
//! action, counts, orgs and run ids.
//!
//! Sources, whichever exist: the org matrix rows that did not plan, the diagnostics report,
//! pipeline reports (`pipeline.<runId>.json`), the run folders (failed stage records and
//! failed invariants of `04-verify/verify.result.json`; only folders whose files match their
//! manifest), the old scripts' `migration.temp-domain.*.json` reports, and the run ledger
//! (failed steps, warning artifacts, failed reports). Unlike the old script (§8.9), real error
//! texts are recognised ("duplicate entry found for attribute", "record not found: token"),
//! issue codes are taken as they are, and `instant_app_not_found` gets the same action as the
//! matrix's `APP-404`. The registry is rebuilt from scratch each time; one occurrence (run,
//! step, signature) counts once even when both a run folder and the ledger hold it, so
//! re-running the update gives the same registry (`generatedAt` aside; the Markdown has no
//! timestamp at all).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::gates::{md_cell, md_inline};
use crate::status::{EvidenceSet, RunEvidence, VERIFY_RESULT};

/// File name of the JSON registry in `artifacts/reports/`.
pub const REPORT_JSON: &str = "scenario-registry.json";
/// The Markdown registry, relative to the repository root.
pub const REFERENCE_MD: &str = "references/scenario-registry.md";

const SIGNATURE_CHARS: usize = 140;
const SAMPLE_CHARS: usize = 220;
const SAMPLES: usize = 3;

/// Where an occurrence was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    MatrixRows,
    Diagnostics,
    Pipeline,
    RunStage,
    VerifyResult,
    TempDomainSteps,
    TempDomainWarnings,
    LedgerSteps,
    LedgerWarnings,
    LedgerReports,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::MatrixRows => "schema-plan-org-matrix.rows",
            Source::Diagnostics => "schema-plan-diagnostics",
            Source::Pipeline => "pipeline.steps",
            Source::RunStage => "manifest.stages",
            Source::VerifyResult => "verify.result.invariants",
            Source::TempDomainSteps => "migration_steps",
            Source::TempDomainWarnings => "migration_artifacts.warning",
            Source::LedgerSteps => "ledger.migration_steps",
            Source::LedgerWarnings => "ledger.migration_artifacts.warning",
            Source::LedgerReports => "ledger.migration_reports",
        }
    }
}

/// One failure seen in one report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    pub scenario: String,
    pub step_name: String,
    pub source: Source,
    pub run_id: String,
    pub org_id: Option<String>,
    /// The failure text, whitespace-normalised.
    pub message: String,
    /// When the evidence says it happened (not when the registry was built).
    pub seen_at: Option<String>,
}

impl Occurrence {
    /// Builds an occurrence, classifying it from `code` (an issue code, when the source has
    /// one) or else from the text.
    pub fn new(
        source: Source,
        step_name: &str,
        run_id: &str,
        org_id: Option<&str>,
        code: Option<&str>,
        message: &str,
        seen_at: Option<&str>,
    ) -> Occurrence {
        let message = normalise(message);
        let scenario = match code.filter(|code| !code.is_empty() && *code != "plan_ok") {
            Some(code) => code.to_string(),
            None => classify(&message, step_name),
        };
        Occurrence {
            scenario,
            step_name: step_name.to_string(),
            source,
            run_id: run_id.to_string(),
            org_id: org_id.filter(|org| !org.is_empty()).map(str::to_string),
            message,
            seen_at: seen_at.map(str::to_string),
        }
    }

    /// `<step>|<scenario>|<first 140 characters of the message>`.
    pub fn signature(&self) -> String {
        format!(
            "{}|{}|{}",
            self.step_name,
            self.scenario,
            cut(&self.message, SIGNATURE_CHARS)
        )
    }
}

/// The scenario of a failure text (lower-cased match, first rule wins).
pub fn classify(text: &str, step_name: &str) -> String {
    let lower = text.to_lowercase();
    let has = |needle: &str| lower.contains(needle);
    let scenario = if has("schema_duplicate_link") || has("duplicate entry found for attribute") {
        "schema_duplicate_link"
    } else if has("invalid admin token")
        || has("invalid_admin_token")
        || has("record not found: token")
        || has("record not found: app-admin-token")
    {
        "invalid_admin_token"
    } else if has("instant app not found")
        || has("instant_app_not_found")
        || has("record not found: app")
    {
        "instant_app_not_found"
    } else if has("conversation_history_orphan") {
        "conversation_history_orphan"
    } else if has("missing_instant_credentials") {
        "missing_instant_credentials"
    } else if has("account_mismatch") {
        "account_mismatch"
    } else if has("not indexed") && has("order") {
        "verify_non_indexed_order"
    } else if has("validation failed for steps") {
        "validation_failed_steps"
    } else {
        return format!("generic_{}", generic_suffix(step_name));
    };
    scenario.to_string()
}

fn generic_suffix(step_name: &str) -> String {
    let name: String = step_name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.trim_matches('_').is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// The deterministic action for a scenario, and the matrix action plan it corresponds to.
pub fn recommended_action(scenario: &str) -> (&'static str, Option<&'static str>) {
    match scenario {
        "schema_duplicate_link" => (
            "Two-phase schema convergence: `threadmig diagnose` names the legacy owner of the link; \
             `threadmig schema phase1` writes the schema without the conflicting link; apply it, \
             then re-plan the full schema (`threadmig runbook` lists every step).",
            Some("SCH-001"),
        ),
        "invalid_admin_token" => (
            "Rotate the app's admin token in Instant, store it in Clerk \
             `privateMetadata.instant.adminToken`, then re-run `threadmig matrix` for the org.",
            Some("TOK-001"),
        ),
        "instant_app_not_found" => (
            "Check that the app exists; fix or clear Clerk `privateMetadata.instant.appId`, then \
             re-run `threadmig matrix` for the org.",
            Some("APP-404"),
        ),
        "missing_instant_credentials" => (
            "Populate `privateMetadata.instant.appId` and `adminToken` in Clerk, then re-run \
             `threadmig matrix` for the org.",
            Some("CREDS-001"),
        ),
        "account_mismatch" => (
            "Keep the app out of the wave; request collaborator access to it, then re-plan.",
            Some("ACC-001"),
        ),
        "conversation_history_orphan" => (
            "Backfill the award timeline: `threadmig backfill-conversations --org <org> \
             --tender-id <tender>` (the verify detail names each tender), then re-run \
             `threadmig verify` for the run.",
            None,
        ),
        "verify_non_indexed_order" => (
            "Order verification queries only by indexed attributes (or index them), then re-run \
             `threadmig verify`.",
            None,
        ),
        "validation_failed_steps" => (
            "Inspect the tx plan for invalid links or attributes, regenerate it from the \
             transform output, and re-plan before applying.",
            None,
        ),
        scenario if scenario.starts_with("verify_invariant_") => (
            "Read the invariant's expected/actual values and first offending ids in \
             `04-verify/verify.result.json`, fix the cause in the transform or apply, re-apply \
             (idempotent) and re-verify.",
            None,
        ),
        "unknown_plan_error" => (
            "Inspect the plan error, make a targeted fix, and re-run `threadmig matrix` for the org.",
            Some("GEN-001"),
        ),
        _ => (
            "Inspect the payload and add a deterministic rule for it before retrying.",
            None,
        ),
    }
}

/// Whitespace collapsed to single spaces.
pub fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// Text of a JSON value for matching: strings as they are, anything else as compact JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn str_at<'a>(value: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers
        .iter()
        .find_map(|pointer| value.pointer(pointer).and_then(Value::as_str))
        .filter(|text| !text.is_empty())
}

/// Reads a JSON report; `None` when absent, an error string when unusable.
fn read_json(path: &Path) -> Result<Option<Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    serde_json::from_slice(text)
        .map(Some)
        .map_err(|error| format!("{}: not valid JSON ({error})", path.display()))
}

/// A report file the update read or could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    pub path: PathBuf,
    /// Why it could not be used, when it could not.
    pub problem: Option<String>,
}

/// Everything the registry is built from.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub occurrences: Vec<Occurrence>,
    pub files: Vec<ScannedFile>,
}

impl Findings {
    fn file(&mut self, path: &Path, result: Result<Option<Value>, String>) -> Option<Value> {
        match result {
            Ok(Some(value)) => {
                self.files.push(ScannedFile {
                    path: path.to_path_buf(),
                    problem: None,
                });
                Some(value)
            }
            Ok(None) => None,
            Err(problem) => {
                self.files.push(ScannedFile {
                    path: path.to_path_buf(),
                    problem: Some(problem),
                });
                None
            }
        }
    }

    /// The fleet reports under `<artifacts>/reports/`: the matrix, the diagnostics, every
    /// `pipeline.*.json` and every `migration.temp-domain.*.json`.
    pub fn scan_reports(&mut self, artifacts: &Path) {
        let reports = artifacts.join("reports");
        let matrix = reports.join("schema-plan-org-matrix.json");
        if let Some(document) = self.file(&matrix, read_json(&matrix)) {
            self.matrix(&document);
        }
        let diagnostics = reports.join("schema-plan-diagnostics.json");
        if let Some(document) = self.file(&diagnostics, read_json(&diagnostics)) {
            self.diagnostics(&document);
        }
        for path in files_named(&reports, "pipeline.", ".json") {
            if let Some(document) = self.file(&path, read_json(&path)) {
                self.pipeline(&document);
            }
        }
        for path in files_named(&reports, "migration.temp-domain.", ".json") {
            self.scan_file(&path);
        }
    }

    /// One report given by path (`--reports-glob`): recognised by its shape.
    pub fn scan_file(&mut self, path: &Path) {
        let Some(document) = self.file(path, read_json(path)) else {
            return;
        };
        if document.get("reportFromMigrationDomain").is_some() {
            self.temp_domain(&document);
        } else if document.get("steps").is_some() && document.get("mode").is_some() {
            self.pipeline(&document);
        } else if document.get("rows").is_some() && document.pointer("/summary/totalOrgs").is_some()
        {
            self.matrix(&document);
        } else {
            self.diagnostics(&document);
        }
    }

    fn matrix(&mut self, document: &Value) {
        let run_id = str_at(document, &["/runId", "/meta/runId"]).unwrap_or("matrix");
        let seen_at = str_at(document, &["/createdAt"]);
        for row in document
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let status = str_at(row, &["/plan/status"]);
            let code = str_at(row, &["/actionPlan/issueCode", "/issueCode"]);
            if status == Some("ok") && matches!(code, None | Some("plan_ok")) {
                continue;
            }
            let message = str_at(row, &["/plan/error", "/plan/reason"])
                .or(code)
                .unwrap_or("plan did not succeed");
            self.occurrences.push(Occurrence::new(
                Source::MatrixRows,
                "matrix",
                run_id,
                str_at(row, &["/org/id", "/orgId"]),
                code,
                message,
                seen_at,
            ));
        }
    }

    fn diagnostics(&mut self, document: &Value) {
        let run_id = str_at(document, &["/runId", "/meta/runId"]).unwrap_or("diagnose");
        let seen_at = str_at(document, &["/createdAt"]);
        let items = ["rows", "diagnostics", "cases", "items"]
            .iter()
            .find_map(|key| document.get(*key).and_then(Value::as_array));
        for item in items.into_iter().flatten() {
            let code = str_at(
                item,
                &[
                    "/issueCode",
                    "/diagnosis/issueCode",
                    "/actionPlan/issueCode",
                ],
            );
            if matches!(code, Some("plan_ok")) {
                continue;
            }
            let message = str_at(
                item,
                &[
                    "/error",
                    "/plan/error",
                    "/message",
                    "/rootCause",
                    "/diagnosis/rootCause",
                ],
            );
            if code.is_none() && message.is_none() {
                continue;
            }
            self.occurrences.push(Occurrence::new(
                Source::Diagnostics,
                "diagnose",
                run_id,
                str_at(item, &["/org/id", "/orgId"]),
                code,
                message.or(code).unwrap_or_default(),
                seen_at,
            ));
        }
    }

    fn pipeline(&mut self, document: &Value) {
        let run_id = str_at(document, &["/runId"]).unwrap_or("pipeline");
        for step in document
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let status = str_at(step, &["/status"]).unwrap_or("");
            if matches!(status, "ok" | "skipped") {
                continue;
            }
            let name = str_at(step, &["/id", "/name"]).unwrap_or("unknown");
            let message = str_at(step, &["/error", "/reason"])
                .map(str::to_string)
                .unwrap_or_else(|| format!("step status {status}"));
            self.occurrences.push(Occurrence::new(
                Source::Pipeline,
                name,
                run_id,
                str_at(step, &["/orgId"]),
                str_at(step, &["/issueCode"]),
                &message,
                str_at(step, &["/endedAt", "/startedAt"]),
            ));
        }
    }

    /// The old scripts' temp-domain output (`reportFromMigrationDomain`).
    fn temp_domain(&mut self, document: &Value) {
        let run_id = str_at(document, &["/runId"]).unwrap_or("unknown");
        let domain = &document["reportFromMigrationDomain"];
        for step in domain["migration_steps"].as_array().into_iter().flatten() {
            if str_at(step, &["/status"]) == Some("ok") {
                continue;
            }
            self.occurrences.push(Occurrence::new(
                Source::TempDomainSteps,
                str_at(step, &["/name"]).unwrap_or("unknown"),
                str_at(step, &["/runId"]).unwrap_or(run_id),
                str_at(document, &["/orgId"]),
                None,
                &text_of(&step["detail"]),
                str_at(step, &["/endedAt", "/startedAt"]),
            ));
        }
        for artifact in domain["migration_artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if str_at(artifact, &["/kind"]) != Some("warning") {
                continue;
            }
            let message = warning_message(str_at(artifact, &["/inlineContent"]).unwrap_or(""));
            self.occurrences.push(Occurrence::new(
                Source::TempDomainWarnings,
                str_at(artifact, &["/stepName"]).unwrap_or("unknown"),
                str_at(artifact, &["/runId"]).unwrap_or(run_id),
                None,
                None,
                &message,
                str_at(artifact, &["/createdAt"]),
            ));
        }
    }

    /// Failed stage records and failed invariants of runs whose evidence counted.
    pub fn scan_runs(&mut self, evidence: &EvidenceSet) {
        for run in &evidence.runs {
            self.run(run, Source::RunStage, Source::VerifyResult);
        }
    }

    fn run(&mut self, run: &RunEvidence, stage_source: Source, verify_source: Source) {
        let result: Option<Result<Value, _>> = run
            .verify_result
            .as_ref()
            .map(|bytes| serde_json::from_slice::<Value>(bytes));
        // A failed verify stage is explained by its failed invariants; counting the stage too
        // would count one failure twice.
        let invariants_explain_verify = matches!(&result, Some(Ok(result))
            if result["invariants"].as_array().is_some_and(|invariants| invariants
                .iter()
                .any(|invariant| invariant.get("status").and_then(Value::as_str) != Some("pass"))));
        for (name, record) in &run.stages {
            if !stage_failed(record) || (name == "verify" && invariants_explain_verify) {
                continue;
            }
            let message = str_at(record, &["/error", "/reason", "/message"])
                .map(str::to_string)
                .unwrap_or_else(|| text_of(record));
            self.occurrences.push(Occurrence::new(
                stage_source,
                name,
                &run.run_id,
                str_at(record, &["/orgId"]),
                str_at(record, &["/issueCode"]),
                &message,
                str_at(record, &["/endedAt", "/at"]).or(run.updated_at.as_deref()),
            ));
        }
        let Some(result) = result else {
            return;
        };
        let Ok(result) = result else {
            self.occurrences.push(Occurrence::new(
                verify_source,
                "verify",
                &run.run_id,
                None,
                None,
                &format!("{VERIFY_RESULT} is not JSON"),
                run.updated_at.as_deref(),
            ));
            return;
        };
        let org = str_at(&result, &["/orgId"]).or_else(|| {
            run.stages
                .get("verify")
                .and_then(|r| str_at(r, &["/orgId"]))
        });
        for invariant in result["invariants"].as_array().into_iter().flatten() {
            let status = str_at(invariant, &["/status"]).unwrap_or("");
            if status == "pass" {
                continue;
            }
            let id = str_at(invariant, &["/id"]).unwrap_or("unknown");
            let message = format!(
                "invariant {id} {status}: {}",
                text_of(&json!({
                    "expected": invariant.get("expected"),
                    "actual": invariant.get("actual"),
                    "error": invariant.get("error"),
                    "sample": invariant.get("sample"),
                    "detail": invariant.get("detail"),
                }))
            );
            let mut occurrence = Occurrence::new(
                verify_source,
                "verify",
                &run.run_id,
                org,
                None,
                &message,
                run.updated_at.as_deref(),
            );
            if occurrence.scenario.starts_with("generic_") {
                // One scenario per invariant family (`count`, `links`, …); the full id stays in
                // the message and signature.
                let family = id.split('.').next().unwrap_or(id);
                occurrence.scenario = format!("verify_invariant_{}", generic_suffix(family));
            }
            self.occurrences.push(occurrence);
        }
    }

    /// Warnings, failed reports, and failed steps of the runs the ledger did not record from
    /// a run folder (those are read as run evidence by [`Findings::scan_runs`], like folders).
    pub fn scan_ledger(&mut self, ledger: &crate::ledger::Snapshot) {
        for run in &ledger.runs {
            let from_folder =
                run.summary.get("source").and_then(Value::as_str) == Some("run_folder");
            for step in run.steps.iter().filter(|_| !from_folder) {
                if step.status == "ok" || !stage_failed_status(&step.status, &step.detail) {
                    continue;
                }
                let message = str_at(&step.detail, &["/error", "/reason", "/message"])
                    .map(str::to_string)
                    .unwrap_or_else(|| text_of(&step.detail));
                self.occurrences.push(Occurrence::new(
                    Source::LedgerSteps,
                    &step.name,
                    &run.run_id,
                    str_at(&step.detail, &["/orgId"]).or(run.org_id.as_deref()),
                    str_at(&step.detail, &["/issueCode"]),
                    &message,
                    step.ended_at.as_deref().or(Some(step.started_at.as_str())),
                ));
            }
            for warning in &run.warnings {
                self.occurrences.push(Occurrence::new(
                    Source::LedgerWarnings,
                    &warning.step_name,
                    &run.run_id,
                    run.org_id.as_deref(),
                    None,
                    &warning_message(&warning.text),
                    Some(warning.created_at.as_str()),
                ));
            }
            for report in &run.reports {
                // A failed report with a stated reason (the gate and matrix reports are read
                // from their own files, row by row).
                let reason = str_at(&report.report, &["/reason", "/error"]);
                let Some(message) =
                    reason.filter(|_| matches!(report.status.as_str(), "failed" | "error"))
                else {
                    continue;
                };
                // A reason such as `schema_push_failed` is already a scenario code.
                let is_code = !message.is_empty()
                    && message
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                self.occurrences.push(Occurrence::new(
                    Source::LedgerReports,
                    "report",
                    &run.run_id,
                    run.org_id.as_deref(),
                    is_code.then_some(message),
                    message,
                    Some(report.created_at.as_str()),
                ));
            }
        }
    }
}

/// A stage record that says it failed (`ok: false`, or a failure status).
fn stage_failed(record: &Value) -> bool {
    let status = record.get("status").and_then(Value::as_str).unwrap_or("");
    stage_failed_status(status, record)
}

fn stage_failed_status(status: &str, record: &Value) -> bool {
    record.get("ok") == Some(&Value::Bool(false))
        || matches!(status, "failed" | "error" | "errored" | "aborted")
}

/// A warning artifact's message: `message` of its JSON, else the text.
fn warning_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| {
            value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.to_string())
}

/// Files in `dir` named `<prefix>…<suffix>`, sorted.
fn files_named(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_type()
                .map(|kind| kind.is_file())
                .unwrap_or(false)
        })
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .map(|name| {
                    let name = name.to_string_lossy();
                    name.starts_with(prefix) && name.ends_with(suffix) && !name.starts_with('.')
                })
                .unwrap_or(false)
        })
        .collect();
    out.sort();
    out
}

/// Expands a `--reports-glob`: `*` (any run of characters) only in the last path component,
/// matched case-insensitively; without `*`, the file itself when it exists.
pub fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains('*') {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = match pattern.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parts: Vec<String> = name.to_lowercase().split('*').map(str::to_string).collect();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_type()
                .map(|kind| kind.is_file())
                .unwrap_or(false)
        })
        .filter(|entry| wildcard_match(&parts, &entry.file_name().to_string_lossy().to_lowercase()))
        .map(|entry| entry.path())
        .collect();
    out.sort();
    out
}

fn wildcard_match(parts: &[String], name: &str) -> bool {
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return name.is_empty(),
    };
    let Some(mut remaining) = name.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last.as_str())
}

/// One scenario of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub scenario: String,
    pub count: usize,
    pub signature: String,
    pub step_name: String,
    pub source: Source,
    pub recommended_action: &'static str,
    pub plan_id: Option<&'static str>,
    pub run_ids: Vec<String>,
    pub org_ids: Vec<String>,
    pub samples: Vec<String>,
    pub first_seen_at: Option<String>,
    pub last_seen_at: Option<String>,
}

impl Scenario {
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "count": self.count,
            "signature": self.signature,
            "stepName": self.step_name,
            "source": self.source.as_str(),
            "recommendedAction": self.recommended_action,
            "planId": self.plan_id,
            "runIds": self.run_ids,
            "orgIds": self.org_ids,
            "samples": self.samples,
            "firstSeenAt": self.first_seen_at,
            "lastSeenAt": self.last_seen_at,
        })
    }
}

/// Groups occurrences by scenario. Occurrences are de-duplicated by (run, step, signature) and
/// ordered canonically first, so the first occurrence that fixes a scenario's signature does
/// not depend on the order sources were read in.
pub fn group(occurrences: &[Occurrence]) -> Vec<Scenario> {
    let mut sorted: Vec<&Occurrence> = occurrences.iter().collect();
    sorted.sort();
    let mut seen = BTreeSet::new();
    let mut by_scenario: BTreeMap<&str, Vec<&Occurrence>> = BTreeMap::new();
    for occurrence in sorted {
        if seen.insert((
            occurrence.run_id.clone(),
            occurrence.step_name.clone(),
            occurrence.signature(),
            occurrence.org_id.clone(),
        )) {
            by_scenario
                .entry(occurrence.scenario.as_str())
                .or_default()
                .push(occurrence);
        }
    }
    let mut scenarios: Vec<Scenario> = by_scenario
        .into_iter()
        .map(|(name, group)| {
            let first = group[0];
            let (action, plan_id) = recommended_action(name);
            let mut samples: Vec<String> = Vec::new();
            for occurrence in &group {
                let sample = cut(&occurrence.message, SAMPLE_CHARS);
                if samples.len() < SAMPLES && !samples.contains(&sample) {
                    samples.push(sample);
                }
            }
            let times: BTreeSet<(i64, &str)> = group
                .iter()
                .filter_map(|o| o.seen_at.as_deref())
                .filter_map(|at| migration::dates::parse_iso(at).map(|ms| (ms, at)))
                .collect();
            Scenario {
                scenario: name.to_string(),
                count: group.len(),
                signature: first.signature(),
                step_name: first.step_name.clone(),
                source: first.source,
                recommended_action: action,
                plan_id,
                run_ids: group
                    .iter()
                    .map(|o| o.run_id.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                org_ids: group
                    .iter()
                    .filter_map(|o| o.org_id.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                samples,
                first_seen_at: times.first().map(|(_, at)| at.to_string()),
                last_seen_at: times.last().map(|(_, at)| at.to_string()),
            }
        })
        .collect();
    scenarios.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.scenario.cmp(&b.scenario))
    });
    scenarios
}

/// The registry (`scenario-registry.json` and `references/scenario-registry.md`).
#[derive(Debug, Clone)]
pub struct Registry {
    pub generated_at: String,
    /// Files read, as given (paths relative to where the command ran when given so).
    pub files: Vec<ScannedFile>,
    pub runs_scanned: usize,
    pub ledger_app_id: Option<String>,
    pub scenarios: Vec<Scenario>,
}

impl Registry {
    pub fn build(
        findings: &Findings,
        runs_scanned: usize,
        ledger_app_id: Option<String>,
        generated_at: impl Into<String>,
    ) -> Registry {
        let mut files = findings.files.clone();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        Registry {
            generated_at: generated_at.into(),
            files,
            runs_scanned,
            ledger_app_id,
            scenarios: group(&findings.occurrences),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "generatedAt": self.generated_at,
            "filesScanned": self.files.len(),
            "files": self.files.iter().map(|file| json!({
                "path": file.path.to_string_lossy(),
                "problem": file.problem,
            })).collect::<Vec<_>>(),
            "runsScanned": self.runs_scanned,
            "ledgerAppId": self.ledger_app_id,
            "scenarios": self.scenarios.iter().map(Scenario::to_json).collect::<Vec<_>>(),
        })
    }

    /// The Markdown registry: deterministic, no timestamp, so an update that found nothing
    /// new leaves the file byte for byte as it was.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Scenario Registry");
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Failure signatures seen in run reports, grouped by scenario, each with its \
             deterministic action. Rebuilt from scratch by `threadmig registry update`."
        );
        let _ = writeln!(out);
        if self.scenarios.is_empty() {
            let _ = writeln!(out, "No failure signature found.");
            return out;
        }
        let _ = writeln!(out, "| Scenario | Count | Step | Recommended Action |");
        let _ = writeln!(out, "|---|---|---|---|");
        for scenario in &self.scenarios {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md_cell(&scenario.scenario),
                scenario.count,
                md_cell(&scenario.step_name),
                md_cell(scenario.recommended_action)
            );
        }
        for scenario in &self.scenarios {
            let _ = writeln!(out);
            let _ = writeln!(out, "## {}", md_inline(&scenario.scenario));
            let _ = writeln!(out);
            let _ = writeln!(out, "- Count: {}", scenario.count);
            let _ = writeln!(out, "- Step: {}", md_inline(&scenario.step_name));
            let _ = writeln!(
                out,
                "- Signature: `{}`",
                md_inline(&scenario.signature).replace('`', "'")
            );
            let _ = writeln!(out, "- Source: {}", scenario.source.as_str());
            if let Some(plan_id) = scenario.plan_id {
                let _ = writeln!(out, "- Plan ID: {plan_id}");
            }
            let _ = writeln!(out, "- Run IDs: {}", scenario.run_ids.join(", "));
            if !scenario.org_ids.is_empty() {
                let _ = writeln!(out, "- Org IDs: {}", scenario.org_ids.join(", "));
            }
            let _ = writeln!(out, "- Action: {}", scenario.recommended_action);
            let _ = writeln!(out, "- Samples:");
            for sample in &scenario.samples {
                let _ = writeln!(out, "  - {}", md_inline(sample));
            }
        }
        out
    }
}
