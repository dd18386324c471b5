//! Migration status per organisation (`report_migration_status`, anchor §3.12 and §5.7):
//! `blocked_plan`, `planned_only`, `applied_unverified` or `migrated_verified`.
//!
//! The plan side comes from the org matrix; the execution side from run evidence, never from
//! file names: a run folder (`artifacts/runs/<runId>/`) counts only when every file matches
//! the sha256 its `manifest.json` lists (and the manifest lists every file), and the ledger's
//! copy of a run counts only when its artifacts reassemble to the hashes it recorded. Then:
//!
//! * an **apply** is the `apply` stage record of a run, for the org (`orgId`, and `appId` when
//!   both sides name one), whose `status` (when present) is a success (`applied`, `ok`,
//!   `completed`), not a dry run, not `complete: false`, not `ok: false`;
//! * a **verify** is the `verify` stage record of a run for the org whose
//!   `04-verify/verify.result.json` (hash-checked) says `ok: true` with a non-empty
//!   `invariants` list that all `pass`, recorded no earlier than the org's latest apply.
//!
//! The old script counted any verify of any age (§8.19); here a verify older than the latest
//! apply proves nothing about the data the apply wrote. A stage's time is its record's
//! `endedAt` (or `finishedAt`, `completedAt`, `recordedAt`, `at`), else the manifest's
//! `updatedAt`. Output is deterministic: rows sorted by org id, timestamps only in the envelope
//! and in evidence references.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use migration::evidence::{scan_artifacts, sha256_hex, RunDir};
use serde::Serialize;
use serde_json::{json, Value};

use crate::gates::{md_cell, md_inline};

/// File name of the JSON report in `artifacts/reports/`.
pub const REPORT_JSON: &str = "migration-status.json";
/// File name of the Markdown report in `artifacts/reports/`.
pub const REPORT_MD: &str = "migration-status.md";
/// The verify result a run's `04-verify/` holds.
pub const VERIFY_RESULT: &str = "04-verify/verify.result.json";

/// The four states, in order of progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    BlockedPlan,
    PlannedOnly,
    AppliedUnverified,
    MigratedVerified,
}

impl MigrationState {
    pub const ALL: [MigrationState; 4] = [
        MigrationState::BlockedPlan,
        MigrationState::PlannedOnly,
        MigrationState::AppliedUnverified,
        MigrationState::MigratedVerified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::BlockedPlan => "blocked_plan",
            MigrationState::PlannedOnly => "planned_only",
            MigrationState::AppliedUnverified => "applied_unverified",
            MigrationState::MigratedVerified => "migrated_verified",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{}: {message}", path.display())]
    Matrix { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Runs { path: PathBuf, message: String },
}

/// Where a run's evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    RunFolder,
    Ledger,
    /// The run folder, corroborated by the ledger's copy.
    RunFolderAndLedger,
}

impl EvidenceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceSource::RunFolder => "run_folder",
            EvidenceSource::Ledger => "ledger",
            EvidenceSource::RunFolderAndLedger => "run_folder+ledger",
        }
    }
}

/// One run whose integrity was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvidence {
    pub run_id: String,
    pub source: EvidenceSource,
    pub created_at: Option<String>,
    /// The manifest's `updatedAt`: the time of a stage record that carries none.
    pub updated_at: Option<String>,
    /// Stage name -> the stage's record.
    pub stages: BTreeMap<String, Value>,
    /// Run-relative artifact path -> sha256.
    pub artifacts: BTreeMap<String, String>,
    /// `04-verify/verify.result.json`, hash-checked, when the run has one.
    pub verify_result: Option<Vec<u8>>,
}

/// Evidence that was looked at and not counted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedEvidence {
    pub run_id: String,
    pub source: EvidenceSource,
    pub reason: String,
}

/// The runs that count and the ones that did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvidenceSet {
    pub runs: Vec<RunEvidence>,
    pub rejected: Vec<RejectedEvidence>,
}

impl EvidenceSet {
    fn sort(&mut self) {
        self.runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        self.rejected.sort();
        self.rejected.dedup();
    }
}

/// Reads every run folder under `<artifacts>/runs/`, keeping only the ones whose files match
/// their manifest. A missing `runs/` folder is an empty set.
pub fn collect_run_folders(artifacts: &Path) -> Result<EvidenceSet, StatusError> {
    let runs_dir = artifacts.join("runs");
    let mut set = EvidenceSet::default();
    let entries = match std::fs::read_dir(&runs_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(set),
        Err(error) => {
            return Err(StatusError::Runs {
                path: runs_dir,
                message: error.to_string(),
            })
        }
    };
    let mut folders = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StatusError::Runs {
            path: runs_dir.clone(),
            message: error.to_string(),
        })?;
        if entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false) {
            folders.push(entry.path());
        }
    }
    folders.sort();
    for folder in folders {
        match read_run_folder(&folder) {
            Ok(run) => set.runs.push(run),
            Err(reason) => set.rejected.push(RejectedEvidence {
                run_id: folder
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source: EvidenceSource::RunFolder,
                reason,
            }),
        }
    }
    set.sort();
    Ok(set)
}

/// One run folder, or why it does not count.
pub fn read_run_folder(folder: &Path) -> Result<RunEvidence, String> {
    let run = RunDir::at(folder).map_err(|error| error.to_string())?;
    let manifest = match run.read_manifest() {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Err("no manifest.json".to_string()),
        Err(error) => return Err(format!("manifest.json unreadable: {error}")),
    };
    if manifest.run_id != run.run_id() {
        return Err(format!(
            "manifest runId {:?} does not name this folder",
            manifest.run_id
        ));
    }
    let listed: BTreeMap<String, String> = manifest
        .artifacts
        .iter()
        .map(|artifact| (artifact.path.clone(), artifact.sha256.clone()))
        .collect();
    let on_disk: BTreeMap<String, String> = scan_artifacts(run.path())
        .map_err(|error| format!("cannot hash the run folder: {error}"))?
        .into_iter()
        .map(|artifact| (artifact.path, artifact.sha256))
        .collect();
    let differences = differences(&listed, &on_disk, "in the manifest", "on disk");
    if !differences.is_empty() {
        return Err(format!(
            "files do not match manifest.json: {}",
            summarise(&differences)
        ));
    }
    let verify_result = match listed.get(VERIFY_RESULT) {
        None => None,
        Some(expected) => {
            // Read once and hash what was read, so the bytes judged are the bytes checked.
            let bytes = std::fs::read(run.path().join(VERIFY_RESULT))
                .map_err(|error| format!("{VERIFY_RESULT}: {error}"))?;
            if &sha256_hex(&bytes) != expected {
                return Err(format!("{VERIFY_RESULT} changed while it was read"));
            }
            Some(bytes)
        }
    };
    Ok(RunEvidence {
        run_id: manifest.run_id,
        source: EvidenceSource::RunFolder,
        created_at: Some(manifest.created_at),
        updated_at: Some(manifest.updated_at),
        stages: manifest.stages.into_iter().collect(),
        artifacts: listed,
        verify_result,
    })
}

/// How two path -> sha256 maps differ, one line per path.
fn differences(
    left: &BTreeMap<String, String>,
    right: &BTreeMap<String, String>,
    left_name: &str,
    right_name: &str,
) -> Vec<String> {
    let paths: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| match (left.get(path), right.get(path)) {
            (Some(a), Some(b)) if a == b => None,
            (Some(_), Some(_)) => Some(format!("{path} (sha256 differs)")),
            (Some(_), None) => Some(format!("{path} (only {left_name})")),
            (None, _) => Some(format!("{path} (only {right_name})")),
        })
        .collect()
}

fn summarise(differences: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = differences
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if differences.len() > SHOWN {
        let _ = write!(text, " (+{} more)", differences.len() - SHOWN);
    }
    text
}

/// Joins run-folder evidence with the ledger's. A run in both counts once; when the two
/// copies disagree on a file they share the same manifest time, so one of them was altered and
/// neither counts. A folder updated after the ledger recorded it (new stages) wins over the
/// older ledger copy; a ledger copy newer than the folder means the folder went back in time,
/// which does not count either.
pub fn merge_evidence(folders: EvidenceSet, ledger: EvidenceSet) -> EvidenceSet {
    let mut merged = EvidenceSet {
        runs: Vec::new(),
        rejected: folders.rejected,
    };
    merged.rejected.extend(ledger.rejected);
    let mut from_ledger: BTreeMap<String, RunEvidence> = ledger
        .runs
        .into_iter()
        .map(|run| (run.run_id.clone(), run))
        .collect();
    for mut folder in folders.runs {
        let Some(copy) = from_ledger.remove(&folder.run_id) else {
            merged.runs.push(folder);
            continue;
        };
        let folder_time = folder.updated_at.as_deref().and_then(millis);
        let ledger_time = copy.updated_at.as_deref().and_then(millis);
        let differences = differences(
            &folder.artifacts,
            &copy.artifacts,
            "in the folder",
            "in the ledger",
        );
        let conflict = |reason: String| {
            [EvidenceSource::RunFolder, EvidenceSource::Ledger].map(|source| RejectedEvidence {
                run_id: folder.run_id.clone(),
                source,
                reason: reason.clone(),
            })
        };
        match (folder_time, ledger_time) {
            _ if differences.is_empty() => {
                folder.source = EvidenceSource::RunFolderAndLedger;
                merged.runs.push(folder);
            }
            (Some(f), Some(l)) if f > l => merged.runs.push(folder),
            (Some(f), Some(l)) if f < l => merged.rejected.extend(conflict(format!(
                "the ledger recorded a newer state of this run than its folder holds: {}",
                summarise(&differences)
            ))),
            _ => merged.rejected.extend(conflict(format!(
                "run folder and ledger disagree: {}",
                summarise(&differences)
            ))),
        }
    }
    merged.runs.extend(from_ledger.into_values());
    merged.sort();
    merged
}

/// A matrix row as the status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub org_id: String,
    pub org_name: Option<String>,
    pub app_id: Option<String>,
    pub plan_status: Option<String>,
    pub plan_gate: Option<String>,
    pub issue_code: Option<String>,
    pub plan_id: Option<String>,
    pub plan_error: Option<String>,
}

impl PlanRow {
    /// A plan that succeeded with gate `safe` or `review`; anything else (an error, a skip for
    /// missing credentials, critical steps, a row that does not say) is blocked.
    pub fn planned(&self) -> bool {
        self.plan_status.as_deref() == Some("ok")
            && matches!(self.plan_gate.as_deref(), Some("safe" | "review"))
    }
}

/// The org matrix report, read for its rows.
#[derive(Debug, Clone)]
pub struct MatrixInput {
    pub path: PathBuf,
    pub sha256: String,
    pub rows: Vec<PlanRow>,
}

impl MatrixInput {
    /// Reads `schema-plan-org-matrix.json`; a missing or unparsable file, or one without a
    /// `rows` array, is an error naming the file.
    pub fn load(path: &Path) -> Result<MatrixInput, StatusError> {
        let bytes = std::fs::read(path).map_err(|error| StatusError::Matrix {
            path: path.to_path_buf(),
            message: if error.kind() == std::io::ErrorKind::NotFound {
                "org matrix not found (run `threadmig matrix` first)".to_string()
            } else {
                error.to_string()
            },
        })?;
        MatrixInput::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<MatrixInput, StatusError> {
        let error = |message: String| StatusError::Matrix {
            path: path.to_path_buf(),
            message,
        };
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let document: Value =
            serde_json::from_slice(text).map_err(|e| error(format!("not valid JSON: {e}")))?;
        let rows = document
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| error("not an org matrix: `rows` is not an array".to_string()))?;
        let rows = rows
            .iter()
            .enumerate()
            .map(|(index, row)| plan_row(index, row))
            .collect();
        Ok(MatrixInput {
            path: path.to_path_buf(),
            sha256: sha256_hex(bytes),
            rows,
        })
    }
}

fn plan_row(index: usize, row: &Value) -> PlanRow {
    let text = |pointers: &[&str]| {
        pointers
            .iter()
            .find_map(|pointer| row.pointer(pointer).and_then(Value::as_str))
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    PlanRow {
        // A row that names no org cannot be matched to evidence; it stays visible, blocked.
        org_id: text(&["/org/id", "/orgId"]).unwrap_or_else(|| format!("<row {index}>")),
        org_name: text(&["/org/name", "/orgName"]),
        app_id: text(&["/instant/appId", "/appId"]),
        plan_status: text(&["/plan/status"]),
        plan_gate: text(&["/plan/gate"]),
        issue_code: text(&["/actionPlan/issueCode", "/issueCode", "/plan/issueCode"]),
        plan_id: text(&["/actionPlan/planId", "/planId"]),
        plan_error: text(&["/plan/error", "/plan/reason"]),
    }
}

/// A stage of a run that counted for an org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRef {
    pub run_id: String,
    pub at: Option<String>,
    pub source: EvidenceSource,
}

/// One org's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgStatus {
    pub plan: PlanRow,
    pub state: MigrationState,
    pub apply: Option<StageRef>,
    pub verify: Option<StageRef>,
    /// Why evidence for this org did not count (sorted).
    pub notes: Vec<String>,
}

impl OrgStatus {
    pub fn to_json(&self) -> Value {
        let plan = &self.plan;
        json!({
            "orgId": plan.org_id,
            "orgName": plan.org_name,
            "appId": plan.app_id,
            "planStatus": plan.plan_status,
            "planGate": plan.plan_gate,
            "status": self.state.as_str(),
            "issueCode": plan.issue_code,
            "planId": plan.plan_id,
            "evidence": {
                "planError": plan.plan_error,
                "applyRunId": self.apply.as_ref().map(|s| &s.run_id),
                "applyAt": self.apply.as_ref().and_then(|s| s.at.as_ref()),
                "applySource": self.apply.as_ref().map(|s| s.source.as_str()),
                "verifyRunId": self.verify.as_ref().map(|s| &s.run_id),
                "verifyAt": self.verify.as_ref().and_then(|s| s.at.as_ref()),
                "verifySource": self.verify.as_ref().map(|s| s.source.as_str()),
            },
            "notes": self.notes,
        })
    }
}

/// A stage found for an org, with its time.
#[derive(Debug, Clone)]
struct Found {
    run_id: String,
    at: Option<String>,
    millis: Option<i64>,
    source: EvidenceSource,
}

impl Found {
    fn stage_ref(&self) -> StageRef {
        StageRef {
            run_id: self.run_id.clone(),
            at: self.at.clone(),
            source: self.source,
        }
    }
}

fn millis(text: &str) -> Option<i64> {
    migration::dates::parse_iso(text)
}

/// The time of a stage: its record's own time, else the manifest's `updatedAt`.
fn stage_time(run: &RunEvidence, record: &Value) -> Option<String> {
    ["endedAt", "finishedAt", "completedAt", "recordedAt", "at"]
        .iter()
        .find_map(|key| {
            record
                .get(*key)
                .and_then(Value::as_str)
                .filter(|text| millis(text).is_some())
        })
        .map(str::to_string)
        .or_else(|| run.updated_at.clone())
}

/// The stage record of `name` when it is about `org` (and the same app, when both say).
fn stage_for<'a>(run: &'a RunEvidence, name: &str, row: &PlanRow) -> Option<&'a Value> {
    let record = run.stages.get(name)?;
    if record.get("orgId").and_then(Value::as_str) != Some(row.org_id.as_str()) {
        return None;
    }
    Some(record)
}

/// Why an apply record does not count, if it does not.
fn apply_problem(record: &Value, row: &PlanRow) -> Option<String> {
    if let (Some(recorded), Some(planned)) =
        (record.get("appId").and_then(Value::as_str), &row.app_id)
    {
        if recorded != planned {
            return Some(format!(
                "applied to app {recorded}, but the matrix has app {planned}"
            ));
        }
    }
    if record.get("dryRun").and_then(Value::as_bool) == Some(true) {
        return Some("a dry run".to_string());
    }
    if let Some(ok) = record.get("ok") {
        if ok != &Value::Bool(true) {
            return Some("its record says ok is not true".to_string());
        }
    }
    if record.get("complete") == Some(&Value::Bool(false)) {
        return Some("the plan was not applied completely".to_string());
    }
    if let Some(status) = record.get("status") {
        let accepted = matches!(
            status.as_str(),
            Some("ok" | "completed" | "applied" | "success")
        );
        if !accepted {
            return Some(format!("its record has status {status}"));
        }
    }
    None
}

/// Why a verify does not count, if it does not.
fn verify_problem(run: &RunEvidence, record: &Value, row: &PlanRow) -> Option<String> {
    if let (Some(recorded), Some(planned)) =
        (record.get("appId").and_then(Value::as_str), &row.app_id)
    {
        if recorded != planned {
            return Some(format!(
                "verified app {recorded}, but the matrix has app {planned}"
            ));
        }
    }
    let Some(bytes) = &run.verify_result else {
        return Some(format!("no {VERIFY_RESULT} in the run's evidence"));
    };
    let result: Value = match serde_json::from_slice(bytes) {
        Ok(result) => result,
        Err(error) => return Some(format!("{VERIFY_RESULT} is not JSON ({error})")),
    };
    if let Some(org) = result.get("orgId").and_then(Value::as_str) {
        if org != row.org_id {
            return Some(format!("{VERIFY_RESULT} is about org {org}"));
        }
    }
    if result.get("ok") != Some(&Value::Bool(true)) {
        return Some(format!("{VERIFY_RESULT} does not say ok: true"));
    }
    let Some(invariants) = result.get("invariants").and_then(Value::as_array) else {
        return Some(format!("{VERIFY_RESULT} lists no invariants"));
    };
    if invariants.is_empty() {
        return Some(format!("{VERIFY_RESULT} lists no invariants"));
    }
    let not_passed = invariants
        .iter()
        .filter(|invariant| invariant.get("status").and_then(Value::as_str) != Some("pass"))
        .count();
    if not_passed > 0 {
        return Some(format!(
            "{not_passed} invariant(s) of {VERIFY_RESULT} did not pass although it says ok"
        ));
    }
    None
}

/// The status of one matrix row given the evidence.
pub fn org_status(row: &PlanRow, evidence: &EvidenceSet) -> OrgStatus {
    let mut notes = BTreeSet::new();
    let mut applies = Vec::new();
    let mut verifies = Vec::new();
    for run in &evidence.runs {
        if let Some(record) = stage_for(run, "apply", row) {
            match apply_problem(record, row) {
                None => applies.push(found(run, record)),
                Some(problem) => {
                    notes.insert(format!(
                        "apply of run {} not counted: {problem}",
                        run.run_id
                    ));
                }
            }
        }
        if let Some(record) = stage_for(run, "verify", row) {
            match verify_problem(run, record, row) {
                None => verifies.push(found(run, record)),
                Some(problem) => {
                    notes.insert(format!(
                        "verify of run {} not counted: {problem}",
                        run.run_id
                    ));
                }
            }
        }
    }
    let latest = |found: &[Found]| {
        found
            .iter()
            .max_by(|a, b| (a.millis, &a.run_id).cmp(&(b.millis, &b.run_id)))
            .cloned()
    };
    let apply = latest(&applies);
    let verify = match &apply {
        None => None,
        Some(apply) => {
            let (later, earlier): (Vec<Found>, Vec<Found>) = verifies.iter().cloned().partition(
                |verify| matches!((verify.millis, apply.millis), (Some(v), Some(a)) if v >= a),
            );
            for verify in &earlier {
                notes.insert(format!(
                    "verify of run {} not counted: it is not later than the latest apply (run {})",
                    verify.run_id, apply.run_id
                ));
            }
            latest(&later)
        }
    };
    if apply.is_none() {
        for verify in &verifies {
            notes.insert(format!(
                "verify of run {} not counted: no apply for this org",
                verify.run_id
            ));
        }
    }
    let state = if !row.planned() {
        MigrationState::BlockedPlan
    } else if apply.is_none() {
        MigrationState::PlannedOnly
    } else if verify.is_none() {
        MigrationState::AppliedUnverified
    } else {
        MigrationState::MigratedVerified
    };
    OrgStatus {
        plan: row.clone(),
        state,
        apply: apply.as_ref().map(Found::stage_ref),
        verify: verify.as_ref().map(Found::stage_ref),
        notes: notes.into_iter().collect(),
    }
}

fn found(run: &RunEvidence, record: &Value) -> Found {
    let at = stage_time(run, record);
    Found {
        run_id: run.run_id.clone(),
        millis: at.as_deref().and_then(millis),
        at,
        source: run.source,
    }
}

/// The ledger the evidence came from, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInfo {
    pub app_id: String,
    pub runs: usize,
}

/// The status report (`migration-status.json` and `.md`).
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub created_at: String,
    pub run_id: Option<String>,
    pub matrix_path: PathBuf,
    pub matrix_sha256: String,
    pub artifacts_dir: PathBuf,
    pub ledger: Option<LedgerInfo>,
    pub rows: Vec<OrgStatus>,
    pub runs_considered: usize,
    pub rejected: Vec<RejectedEvidence>,
    /// Orgs with apply or verify evidence but no matrix row.
    pub orgs_without_matrix_row: Vec<String>,
}

impl StatusReport {
    pub fn build(
        matrix: &MatrixInput,
        evidence: &EvidenceSet,
        artifacts_dir: &Path,
        ledger: Option<LedgerInfo>,
        run_id: Option<String>,
        created_at: impl Into<String>,
    ) -> StatusReport {
        let mut rows: Vec<OrgStatus> = matrix
            .rows
            .iter()
            .map(|row| org_status(row, evidence))
            .collect();
        rows.sort_by(|a, b| a.plan.org_id.cmp(&b.plan.org_id));
        let known: BTreeSet<&str> = matrix.rows.iter().map(|row| row.org_id.as_str()).collect();
        let orgs_without_matrix_row: Vec<String> = evidence
            .runs
            .iter()
            .flat_map(|run| ["apply", "verify"].map(|stage| run.stages.get(stage)))
            .flatten()
            .filter_map(|record| record.get("orgId").and_then(Value::as_str))
            .filter(|org| !known.contains(org))
            .map(str::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        StatusReport {
            created_at: created_at.into(),
            run_id,
            matrix_path: matrix.path.clone(),
            matrix_sha256: matrix.sha256.clone(),
            artifacts_dir: artifacts_dir.to_path_buf(),
            ledger,
            rows,
            runs_considered: evidence.runs.len(),
            rejected: evidence.rejected.clone(),
            orgs_without_matrix_row,
        }
    }

    pub fn count(&self, state: MigrationState) -> usize {
        self.rows.iter().filter(|row| row.state == state).count()
    }

    /// `{total, blocked_plan, planned_only, applied_unverified, migrated_verified}`.
    pub fn summary_json(&self) -> Value {
        let mut summary = serde_json::Map::new();
        summary.insert("total".into(), json!(self.rows.len()));
        for state in MigrationState::ALL {
            summary.insert(state.as_str().into(), json!(self.count(state)));
        }
        Value::Object(summary)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": true,
            "createdAt": self.created_at,
            "runId": self.run_id,
            "matrixPath": self.matrix_path.to_string_lossy(),
            "matrixSha256": self.matrix_sha256,
            "artifactsDir": self.artifacts_dir.to_string_lossy(),
            "ledger": self.ledger.as_ref().map(|ledger| json!({
                "appId": ledger.app_id,
                "runs": ledger.runs,
            })),
            "summary": self.summary_json(),
            "runsConsidered": self.runs_considered,
            "rows": self.rows.iter().map(OrgStatus::to_json).collect::<Vec<_>>(),
            "rejectedEvidence": self.rejected,
            "orgsWithoutMatrixRow": self.orgs_without_matrix_row,
        })
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Migration Status");
        let _ = writeln!(out);
        let _ = writeln!(out, "- Generated: {}", self.created_at);
        let _ = writeln!(out, "- Matrix: `{}`", self.matrix_path.display());
        let _ = writeln!(
            out,
            "- Ledger: {}",
            match &self.ledger {
                Some(ledger) => format!("app {} ({} run(s))", ledger.app_id, ledger.runs),
                None => "none".to_string(),
            }
        );
        let _ = writeln!(
            out,
            "- Runs counted: {}; evidence not counted: {}",
            self.runs_considered,
            self.rejected.len()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "## Summary");
        let _ = writeln!(out);
        let _ = writeln!(out, "- Organizations: {}", self.rows.len());
        for state in MigrationState::ALL {
            let _ = writeln!(out, "- {}: {}", state.as_str(), self.count(state));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## Per Org");
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| Org | App | Plan | Gate | Status | Issue | Apply run | Verify run |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let plan = &row.plan;
            let cell = |value: &Option<String>| md_cell(value.as_deref().unwrap_or("-"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&plan.org_id),
                cell(&plan.app_id),
                cell(&plan.plan_status),
                cell(&plan.plan_gate),
                row.state.as_str(),
                cell(&plan.issue_code),
                cell(&row.apply.as_ref().map(|s| s.run_id.clone())),
                cell(&row.verify.as_ref().map(|s| s.run_id.clone())),
            );
        }
        let noted: Vec<&OrgStatus> = self.rows.iter().filter(|r| !r.notes.is_empty()).collect();
        if !noted.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "## Evidence Not Counted Per Org");
            for row in noted {
                let _ = writeln!(out);
                let _ = writeln!(out, "### {}", md_inline(&row.plan.org_id));
                let _ = writeln!(out);
                for note in &row.notes {
                    let _ = writeln!(out, "- {}", md_inline(note));
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## Rejected Runs");
        let _ = writeln!(out);
        if self.rejected.is_empty() {
            let _ = writeln!(out, "none");
        } else {
            let _ = writeln!(out, "| Run | Source | Reason |");
            let _ = writeln!(out, "|---|---|---|");
            for rejected in &self.rejected {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    md_cell(&rejected.run_id),
                    rejected.source.as_str(),
                    md_cell(&rejected.reason)
                );
            }
        }
        if !self.orgs_without_matrix_row.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "## Evidence For Orgs Not In The Matrix");
            let _ = writeln!(out);
            for org in &self.orgs_without_matrix_row {
                let _ = writeln!(out, "- {}", md_inline(org));
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "## States");
        let _ = writeln!(out);
        let _ = writeln!(out, "- blocked_plan: the schema plan failed, was skipped (no credentials) or is gated `blocked`.");
        let _ = writeln!(out, "- planned_only: planned, no counted apply.");
        let _ = writeln!(
            out,
            "- applied_unverified: applied, no passing verify later than the latest apply."
        );
        let _ = writeln!(
            out,
            "- migrated_verified: applied and verified (every invariant passed) afterwards."
        );
        out
    }
}
