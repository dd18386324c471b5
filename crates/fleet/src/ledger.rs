//! The run ledger: runs, steps, artifacts and reports recorded as migration-domain entities
//! (anchor §6.4, `builtin:migration-domain`) in a ledger app, through the `InstantApi` port.
//!
//! What the old temp-domain script got wrong, and what is done here instead (§8.3, §8.5, §8.7):
//!
//! * **No secret is ever stored.** The legacy schema requires `targetAdminToken` and
//!   `migrationAdminToken` on `migration_runs`; they are always written as the empty string.
//!   Every payload is checked before it is sent against the secrets the ledger knows (its own
//!   admin token and any the caller adds with [`Ledger::guard_secret`]); a payload holding one
//!   is refused whole, nothing of it written.
//! * **Deterministic ids** (UUIDv5 under [`ID_NAMESPACE`]): a run from its run id, a step from
//!   run id + step name, an artifact from run id + label, a report from run id + report name,
//!   a chunk from its artifact + the content's sha256 + its index. Recording the same thing
//!   twice writes the same rows; an artifact whose sha256 is already recorded (with all its
//!   chunks) is not sent again.
//! * **Content-addressed, chunked artifacts**: each artifact row carries the sha256 and byte
//!   size of its content; content up to the chunk size is inline, larger content goes into
//!   `migration_payload_chunks` split on UTF-8 character boundaries (never inside a character),
//!   written before the artifact row that points at them, so a crash never leaves a row whose
//!   content is incomplete. Reading reassembles the chunks of the current sha256 only and checks
//!   the hash. Binary content is stored base64-encoded (`contentType` says so).
//! * **The schema is pushed before first use**, and only when the plan is additive (new
//!   attributes and their indexes/flags); anything else is refused with the steps named.
//! * Links (`migrationRunSteps`, `migrationRunArtifacts`, `migrationArtifactChunks`,
//!   `migrationRunReports`) are written, so the ledger can be browsed from a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use instant_api::{
    ApiError, AppAuth, InstantApi, QueryRequest, SchemaPushRequest, Secret, TransactRequest,
};
use instant_schema::builtin::BuiltinSchema;
use instant_schema::plan::PlanStep;
use instant_schema::severity::Severity;
use migration::evidence::{scan_artifacts, sha256_hex, RunDir};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::status::{EvidenceSet, EvidenceSource, RejectedEvidence, RunEvidence, VERIFY_RESULT};

/// Title of the ledger app threadmig creates in an embedded workspace.
pub const LEDGER_APP_TITLE: &str = "threadmig-ledger";
/// Largest inline content and largest chunk, in bytes.
pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;
/// Chunks sent per transaction (keeps a request near 1 MiB).
const CHUNKS_PER_TRANSACT: usize = 4;
/// Rows per page when reading the ledger back.
const PAGE: usize = 500;
/// Namespace of every ledger entity id (UUIDv5).
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_4000_8000_7468_7265_6164);

const RUNS: &str = "migration_runs";
const STEPS: &str = "migration_steps";
const ARTIFACTS: &str = "migration_artifacts";
const CHUNKS: &str = "migration_payload_chunks";
const REPORTS: &str = "migration_reports";
const BASE64_SUFFIX: &str = "; encoding=base64";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger app {app_id}: {operation}: {source}")]
    Api {
        app_id: String,
        operation: String,
        source: Box<ApiError>,
    },
    #[error("ledger app {app_id}: the migration-domain schema cannot be pushed safely (steps: {steps}); use an empty app for the ledger")]
    SchemaConflict { app_id: String, steps: String },
    #[error("ledger app {app_id}: indexing after the schema push did not complete: {detail}")]
    Indexing { app_id: String, detail: String },
    #[error("{what} holds a secret (an admin token); nothing of it was recorded")]
    SecretRefused { what: String },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("ledger app {app_id}: {what}: {message}")]
    Corrupt {
        app_id: String,
        what: String,
        message: String,
    },
    #[error("ledger app {app_id}: run {run_id} is not recorded (record the run before its steps, artifacts and reports)")]
    UnknownRun { app_id: String, run_id: String },
}

/// A run as the ledger records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub org_id: Option<String>,
    /// The org's app (an id, never its token).
    pub target_app_id: Option<String>,
    /// `running`, `failed` or `completed`.
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub summary: Value,
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub name: String,
    /// `ok` or `error`.
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub detail: Value,
}

/// What an artifact is; its content is given separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactMeta {
    pub step_name: String,
    pub kind: String,
    /// Unique within the run (a run folder's files use their run-relative path).
    pub label: String,
    pub content_type: String,
}

/// What recording one artifact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArtifactOutcome {
    /// The artifact row was written (new or changed content).
    pub written: bool,
    pub chunks_written: usize,
    pub bytes: u64,
}

/// What recording a run folder did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderRecord {
    pub run_id: String,
    pub steps: usize,
    pub artifacts: usize,
    pub artifacts_written: usize,
    pub chunks_written: usize,
    pub bytes: u64,
}

/// Whether [`Ledger::ensure_schema`] had to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOutcome {
    AlreadyCurrent,
    Pushed { steps: usize },
}

/// The ledger app, reached through the port.
#[derive(Clone)]
pub struct Ledger {
    api: Arc<dyn InstantApi>,
    auth: AppAuth,
    chunk_bytes: usize,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("app_id", &self.auth.app_id)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish_non_exhaustive()
    }
}

/// A deterministic entity id.
pub fn entity_id(kind: &str, parts: &[&str]) -> String {
    let mut name = kind.to_string();
    for part in parts {
        name.push('\u{1f}');
        name.push_str(part);
    }
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string()
}

pub fn run_entity_id(run_id: &str) -> String {
    entity_id("run", &[run_id])
}

pub fn step_entity_id(run_id: &str, name: &str) -> String {
    entity_id("step", &[run_id, name])
}

pub fn artifact_entity_id(run_id: &str, label: &str) -> String {
    entity_id("artifact", &[run_id, label])
}

pub fn chunk_entity_id(artifact_id: &str, sha256: &str, index: usize) -> String {
    entity_id("chunk", &[artifact_id, sha256, &index.to_string()])
}

pub fn report_entity_id(run_id: &str, name: &str) -> String {
    entity_id("report", &[run_id, name])
}

impl Ledger {
    /// A ledger in the app `auth` names. Its own admin token is guarded from the start.
    pub fn new(api: Arc<dyn InstantApi>, auth: AppAuth) -> Ledger {
        let secrets = vec![auth.admin_token.clone()];
        Ledger {
            api,
            auth,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            secrets,
        }
    }

    /// Sets the inline limit and chunk size (at least 4 bytes, so a character always fits).
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Ledger {
        self.chunk_bytes = bytes.max(4);
        self
    }

    /// Refuses any payload that contains `secret` (e.g. the org's admin token during a run).
    pub fn guard_secret(&mut self, secret: &Secret) {
        if !secret.expose().is_empty() && !self.secrets.contains(secret) {
            self.secrets.push(secret.clone());
        }
    }

    pub fn app_id(&self) -> &str {
        &self.auth.app_id
    }

    fn api_error(&self, operation: impl Into<String>) -> impl FnOnce(ApiError) -> LedgerError + '_ {
        let operation = operation.into();
        move |source| LedgerError::Api {
            app_id: self.auth.app_id.clone(),
            operation,
            source: Box::new(source),
        }
    }

    fn check_secrets(&self, what: &str, bytes: &[u8]) -> Result<(), LedgerError> {
        for secret in &self.secrets {
            let secret = secret.expose().as_bytes();
            if !secret.is_empty()
                && bytes.len() >= secret.len()
                && bytes.windows(secret.len()).any(|window| window == secret)
            {
                return Err(LedgerError::SecretRefused {
                    what: what.to_string(),
                });
            }
        }
        Ok(())
    }

    fn transact(&self, what: &str, steps: Vec<Value>) -> Result<(), LedgerError> {
        if steps.is_empty() {
            return Ok(());
        }
        let text = serde_json::to_vec(&steps).unwrap_or_default();
        self.check_secrets(what, &text)?;
        self.api
            .transact(
                &self.auth,
                &TransactRequest {
                    steps,
                    throw_on_missing_attrs: true,
                },
            )
            .map(|_| ())
            .map_err(self.api_error(format!("writing {what}")))
    }

    fn query(&self, what: &str, query: Value) -> Result<Value, LedgerError> {
        self.api
            .query(
                &self.auth,
                &QueryRequest {
                    query,
                    inference: false,
                },
            )
            .map_err(self.api_error(format!("reading {what}")))
    }

    /// Every row of `namespace` matching `where_` (paged with limit/offset).
    fn rows(
        &self,
        namespace: &str,
        where_: Option<Value>,
    ) -> Result<Vec<Map<String, Value>>, LedgerError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let mut options = json!({"limit": PAGE, "offset": offset});
            if let Some(where_) = &where_ {
                options["where"] = where_.clone();
            }
            let result = self.query(namespace, json!({ namespace: {"$": options} }))?;
            let page: Vec<Map<String, Value>> = result
                .get(namespace)
                .and_then(Value::as_array)
                .map(|rows| {
                    rows.iter()
                        .filter_map(|row| row.as_object().cloned())
                        .collect()
                })
                .unwrap_or_default();
            let count = page.len();
            out.extend(page);
            if count < PAGE {
                return Ok(out);
            }
            offset += count;
        }
    }

    /// Pushes the migration-domain schema when the app lacks part of it. Only an additive plan
    /// is pushed (new attributes, and index/unique/required/type steps on those new
    /// attributes); anything that would change existing attributes is refused.
    pub fn ensure_schema(&self) -> Result<SchemaOutcome, LedgerError> {
        let loaded =
            BuiltinSchema::MigrationDomain
                .load()
                .map_err(|error| LedgerError::Invalid {
                    what: "builtin:migration-domain".to_string(),
                    message: error.to_string(),
                })?;
        let request = SchemaPushRequest {
            schema: loaded.dsl().to_dsl_json(),
            check_types: true,
            supports_background_updates: true,
        };
        let plan = self
            .api
            .schema_plan(&self.auth, &request)
            .map_err(self.api_error("planning the migration-domain schema"))?;
        if plan.steps.is_empty() {
            return Ok(SchemaOutcome::AlreadyCurrent);
        }
        let added: BTreeSet<&str> = plan
            .steps
            .iter()
            .filter_map(|step| match step {
                PlanStep::AddAttr(attr) => attr.id(),
                _ => None,
            })
            .collect();
        let refused: Vec<String> = plan
            .steps
            .iter()
            .filter(|step| {
                let on_new_attr =
                    step.job().is_some() && step.attr_id().is_some_and(|id| added.contains(id));
                step.severity() != Severity::Safe && !on_new_attr
            })
            .map(|step| match step.target() {
                Some(target) => format!("{} {target}", step.step_type()),
                None => step.step_type().to_string(),
            })
            .collect();
        if !refused.is_empty() {
            return Err(LedgerError::SchemaConflict {
                app_id: self.auth.app_id.clone(),
                steps: refused.join(", "),
            });
        }
        let applied = self
            .api
            .schema_push(&self.auth, &request)
            .map_err(self.api_error("pushing the migration-domain schema"))?;
        if let Some(group) = applied.indexing_jobs {
            self.wait_for_jobs(&group.group_id, group.jobs)?;
        }
        Ok(SchemaOutcome::Pushed {
            steps: plan.steps.len(),
        })
    }

    fn wait_for_jobs(
        &self,
        group_id: &str,
        mut jobs: Vec<instant_api::IndexingJob>,
    ) -> Result<(), LedgerError> {
        const POLLS: usize = 300;
        for poll in 0..=POLLS {
            if let Some(failed) = jobs.iter().find(|job| job.job_status == "errored") {
                return Err(LedgerError::Indexing {
                    app_id: self.auth.app_id.clone(),
                    detail: format!(
                        "job {} ({}) errored: {}",
                        failed.id,
                        failed.attr_name.as_deref().unwrap_or("?"),
                        failed.error.as_deref().unwrap_or("no error text")
                    ),
                });
            }
            if jobs.iter().all(|job| job.is_terminal()) {
                return Ok(());
            }
            if poll == POLLS {
                break;
            }
            std::thread::sleep(Duration::from_millis(if poll < 10 { 50 } else { 500 }));
            jobs = self
                .api
                .indexing_job_group(&self.auth, group_id)
                .map_err(self.api_error("polling the indexing jobs"))?
                .jobs;
        }
        Err(LedgerError::Indexing {
            app_id: self.auth.app_id.clone(),
            detail: format!("jobs of group {group_id} still running after {POLLS} polls"),
        })
    }

    /// Records (or updates) a run. Both admin-token attributes are written empty.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), LedgerError> {
        migration::evidence::validate_run_id(&run.run_id).map_err(|error| {
            LedgerError::Invalid {
                what: "run id".to_string(),
                message: error.to_string(),
            }
        })?;
        check_date("run startedAt", &run.started_at)?;
        let mut summary = match &run.summary {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other.clone());
                map
            }
        };
        summary.insert("runId".into(), json!(run.run_id));
        let mut attrs = json!({
            "orgId": run.org_id.clone().unwrap_or_default(),
            "status": run.status,
            "startedAt": run.started_at,
            "targetAppId": run.target_app_id.clone().unwrap_or_default(),
            "targetAdminToken": "",
            "migrationAppId": self.auth.app_id,
            "migrationAdminToken": "",
            "summary": summary,
        });
        if let Some(ended_at) = &run.ended_at {
            check_date("run endedAt", ended_at)?;
            attrs["endedAt"] = json!(ended_at);
        }
        self.transact(
            &format!("run {}", run.run_id),
            vec![json!(["update", RUNS, run_entity_id(&run.run_id), attrs])],
        )
    }

    fn require_run(&self, run_id: &str) -> Result<String, LedgerError> {
        let id = run_entity_id(run_id);
        let result = self.query(
            RUNS,
            json!({ RUNS: {"$": {"where": {"id": id}, "fields": ["status"]}} }),
        )?;
        let found = result
            .get(RUNS)
            .and_then(Value::as_array)
            .is_some_and(|rows| !rows.is_empty());
        if found {
            Ok(id)
        } else {
            Err(LedgerError::UnknownRun {
                app_id: self.auth.app_id.clone(),
                run_id: run_id.to_string(),
            })
        }
    }

    /// Records (or updates) a step of a recorded run.
    pub fn record_step(&self, run_id: &str, step: &StepRecord) -> Result<(), LedgerError> {
        let run = self.require_run(run_id)?;
        self.write_step(run_id, &run, step)
    }

    fn write_step(&self, run_id: &str, run: &str, step: &StepRecord) -> Result<(), LedgerError> {
        check_date("step startedAt", &step.started_at)?;
        let id = step_entity_id(run_id, &step.name);
        let mut attrs = json!({
            "runId": run_id,
            "name": step.name,
            "status": step.status,
            "startedAt": step.started_at,
            "detail": step.detail,
        });
        if let Some(ended_at) = &step.ended_at {
            check_date("step endedAt", ended_at)?;
            attrs["endedAt"] = json!(ended_at);
        }
        self.transact(
            &format!("step {} of run {run_id}", step.name),
            vec![
                json!(["update", STEPS, id, attrs]),
                json!(["link", RUNS, run, {"steps": id}]),
            ],
        )
    }

    /// Records an artifact of a recorded run, content-addressed by its sha256.
    pub fn record_artifact(
        &self,
        run_id: &str,
        meta: &ArtifactMeta,
        content: &[u8],
        created_at: &str,
    ) -> Result<ArtifactOutcome, LedgerError> {
        let run = self.require_run(run_id)?;
        let existing = self.artifact_hashes(run_id)?;
        self.write_artifact(run_id, &run, meta, content, created_at, &existing)
    }

    /// label -> sha256 of the artifacts already recorded for a run.
    fn artifact_hashes(&self, run_id: &str) -> Result<BTreeMap<String, String>, LedgerError> {
        Ok(self
            .rows(ARTIFACTS, Some(json!({"runId": run_id})))?
            .into_iter()
            .filter_map(|row| {
                Some((
                    row.get("label")?.as_str()?.to_string(),
                    row.get("sha256")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    fn write_artifact(
        &self,
        run_id: &str,
        run: &str,
        meta: &ArtifactMeta,
        content: &[u8],
        created_at: &str,
        existing: &BTreeMap<String, String>,
    ) -> Result<ArtifactOutcome, LedgerError> {
        check_date("artifact createdAt", created_at)?;
        let what = format!("artifact {} of run {run_id}", meta.label);
        self.check_secrets(&what, content)?;
        let sha256 = sha256_hex(content);
        let bytes = content.len() as u64;
        let id = artifact_entity_id(run_id, &meta.label);
        let (text, content_type) = match std::str::from_utf8(content) {
            Ok(text) => (text.to_string(), meta.content_type.clone()),
            Err(_) => (
                base64_encode(content),
                format!("{}{BASE64_SUFFIX}", meta.content_type),
            ),
        };
        let chunked = text.len() > self.chunk_bytes;
        let pieces = if chunked {
            split_chars(&text, self.chunk_bytes)
        } else {
            Vec::new()
        };
        let present: BTreeSet<String> = if chunked {
            self.rows(CHUNKS, Some(json!({"artifactId": id})))?
                .into_iter()
                .filter_map(|row| row.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
        } else {
            BTreeSet::new()
        };
        let chunk_ids: Vec<String> = (0..pieces.len())
            .map(|index| chunk_entity_id(&id, &sha256, index))
            .collect();
        let complete = chunk_ids.iter().all(|chunk| present.contains(chunk));
        if existing.get(&meta.label) == Some(&sha256) && complete {
            return Ok(ArtifactOutcome {
                written: false,
                chunks_written: 0,
                bytes,
            });
        }
        // Chunks first: the row that names the new sha256 is written only once its content is
        // complete.
        let mut chunks_written = 0;
        let missing: Vec<(usize, &str)> = pieces
            .iter()
            .enumerate()
            .filter(|(index, _)| !present.contains(&chunk_ids[*index]))
            .map(|(index, piece)| (index, piece.as_str()))
            .collect();
        for batch in missing.chunks(CHUNKS_PER_TRANSACT) {
            let steps = batch
                .iter()
                .map(|(index, piece)| {
                    json!(["update", CHUNKS, chunk_ids[*index], {
                        "artifactId": id,
                        "runId": run_id,
                        "chunkIndex": index,
                        "content": piece,
                        "createdAt": created_at,
                    }])
                })
                .collect();
            self.transact(&what, steps)?;
            chunks_written += batch.len();
        }
        let mut steps = vec![
            json!(["update", ARTIFACTS, id, {
                "runId": run_id,
                "stepName": meta.step_name,
                "kind": meta.kind,
                "label": meta.label,
                "contentType": content_type,
                "sizeBytes": bytes,
                "sha256": sha256,
                "chunked": chunked,
                "inlineContent": if chunked { "" } else { text.as_str() },
                "createdAt": created_at,
            }]),
            json!(["link", RUNS, run, {"artifacts": id}]),
        ];
        if !chunk_ids.is_empty() {
            steps.push(json!(["link", ARTIFACTS, id, {"chunks": chunk_ids}]));
        }
        self.transact(&what, steps)?;
        Ok(ArtifactOutcome {
            written: true,
            chunks_written,
            bytes,
        })
    }

    /// Records a report (`hot-deploy-gates.json`, …) of a recorded run: its content as an
    /// artifact (step `report`, kind `report`, label `reports/<name>`) and a
    /// `migration_reports` row pointing at it with the report's `ok`/`summary`.
    pub fn record_report(
        &self,
        run_id: &str,
        name: &str,
        status: &str,
        content: &[u8],
        created_at: &str,
    ) -> Result<ArtifactOutcome, LedgerError> {
        let run = self.require_run(run_id)?;
        let label = format!("reports/{name}");
        let existing = self.artifact_hashes(run_id)?;
        let meta = ArtifactMeta {
            step_name: "report".to_string(),
            kind: "report".to_string(),
            label: label.clone(),
            content_type: content_type_of(name).to_string(),
        };
        let outcome = self.write_artifact(run_id, &run, &meta, content, created_at, &existing)?;
        let parsed: Option<Value> = serde_json::from_slice(content).ok();
        let id = report_entity_id(run_id, name);
        let report = json!({
            "name": name,
            "artifactLabel": label,
            "sha256": sha256_hex(content),
            "sizeBytes": content.len(),
            "ok": parsed.as_ref().and_then(|p| p.get("ok")).cloned(),
            "summary": parsed.as_ref().and_then(|p| p.get("summary")).cloned(),
            "reason": parsed.as_ref().and_then(|p| p.get("reason")).cloned(),
        });
        self.transact(
            &format!("report {name} of run {run_id}"),
            vec![
                json!(["update", REPORTS, id, {
                    "runId": run_id,
                    "status": status,
                    "report": report,
                    "createdAt": created_at,
                }]),
                json!(["link", RUNS, run_entity_id(run_id), {"reports": id}]),
            ],
        )?;
        Ok(outcome)
    }

    /// Records a whole run folder: the run (org and app from its stage records), one step per
    /// manifest stage (the stage record as detail) and every file the manifest lists. A folder
    /// whose files do not match its manifest is refused: the ledger only holds evidence that
    /// checks out.
    pub fn record_run_folder(&self, folder: &Path) -> Result<FolderRecord, LedgerError> {
        let invalid = |message: String| LedgerError::Invalid {
            what: folder.display().to_string(),
            message,
        };
        let run_dir = RunDir::at(folder).map_err(|e| invalid(e.to_string()))?;
        let manifest = run_dir
            .read_manifest()
            .map_err(|e| invalid(e.to_string()))?
            .ok_or_else(|| invalid("no manifest.json (not a run folder)".to_string()))?;
        if manifest.run_id != run_dir.run_id() {
            return Err(invalid(format!(
                "manifest runId {:?} does not name this folder",
                manifest.run_id
            )));
        }
        let on_disk = scan_artifacts(folder).map_err(|e| invalid(e.to_string()))?;
        if on_disk != manifest.artifacts {
            return Err(invalid(
                "its files do not match manifest.json (changed after the last recorded stage)"
                    .to_string(),
            ));
        }
        let run_id = manifest.run_id.clone();
        // Everything is checked for secrets before anything is written, so a run folder that
        // holds a token leaves no trace in the ledger.
        for (name, record) in &manifest.stages {
            self.check_secrets(
                &format!("stage {name} of run {run_id}"),
                record.to_string().as_bytes(),
            )?;
        }
        for artifact in &manifest.artifacts {
            let content = std::fs::read(folder.join(&artifact.path))
                .map_err(|e| invalid(format!("{}: {e}", artifact.path)))?;
            self.check_secrets(
                &format!("artifact {} of run {run_id}", artifact.path),
                &content,
            )?;
        }
        let stage_text = |key: &str| {
            ["apply", "verify", "transform", "extract"]
                .iter()
                .filter_map(|stage| manifest.stages.get(*stage))
                .chain(manifest.stages.values())
                .find_map(|record| record.get(key).and_then(Value::as_str))
                .map(str::to_string)
        };
        let failed = manifest.stages.values().any(stage_failed);
        let verified = manifest
            .stages
            .get("verify")
            .is_some_and(|record| record.get("ok") == Some(&Value::Bool(true)));
        let status = if failed {
            "failed"
        } else if verified {
            "completed"
        } else {
            "running"
        };
        self.record_run(&RunRecord {
            run_id: run_id.clone(),
            org_id: stage_text("orgId"),
            target_app_id: stage_text("appId"),
            status: status.to_string(),
            started_at: manifest.created_at.clone(),
            ended_at: (status != "running").then(|| manifest.updated_at.clone()),
            summary: json!({
                "source": "run_folder",
                "manifestCreatedAt": manifest.created_at,
                "manifestUpdatedAt": manifest.updated_at,
                "stages": manifest.stages.keys().collect::<Vec<_>>(),
                "artifacts": manifest.artifacts.len(),
                "notes": manifest.notes,
            }),
        })?;
        let run = run_entity_id(&run_id);
        for (name, record) in &manifest.stages {
            let time = |key: &str| {
                record
                    .get(key)
                    .and_then(Value::as_str)
                    .filter(|text| migration::dates::parse_iso(text).is_some())
                    .map(str::to_string)
            };
            self.write_step(
                &run_id,
                &run,
                &StepRecord {
                    name: name.clone(),
                    status: if stage_failed(record) { "error" } else { "ok" }.to_string(),
                    started_at: time("startedAt").unwrap_or_else(|| manifest.updated_at.clone()),
                    ended_at: time("endedAt"),
                    detail: record.clone(),
                },
            )?;
        }
        let existing = self.artifact_hashes(&run_id)?;
        let mut record = FolderRecord {
            run_id: run_id.clone(),
            steps: manifest.stages.len(),
            artifacts: manifest.artifacts.len(),
            ..FolderRecord::default()
        };
        for artifact in &manifest.artifacts {
            let path = folder.join(&artifact.path);
            let content =
                std::fs::read(&path).map_err(|e| invalid(format!("{}: {e}", artifact.path)))?;
            if sha256_hex(&content) != artifact.sha256 {
                return Err(invalid(format!(
                    "{} changed while it was recorded",
                    artifact.path
                )));
            }
            let meta = ArtifactMeta {
                step_name: step_of_path(&artifact.path).to_string(),
                kind: "run_artifact".to_string(),
                label: artifact.path.clone(),
                content_type: content_type_of(&artifact.path).to_string(),
            };
            let outcome = self.write_artifact(
                &run_id,
                &run,
                &meta,
                &content,
                &manifest.updated_at,
                &existing,
            )?;
            record.artifacts_written += usize::from(outcome.written);
            record.chunks_written += outcome.chunks_written;
            record.bytes += outcome.bytes;
        }
        Ok(record)
    }

    /// Everything but chunk contents: runs with their steps, artifacts, reports, and the
    /// content of warning artifacts.
    pub fn snapshot(&self) -> Result<Snapshot, LedgerError> {
        let mut runs: BTreeMap<String, LedgerRun> = BTreeMap::new();
        for row in self.rows(RUNS, None)? {
            let summary = row.get("summary").cloned().unwrap_or(Value::Null);
            let Some(run_id) = summary.get("runId").and_then(Value::as_str) else {
                continue;
            };
            runs.insert(
                run_id.to_string(),
                LedgerRun {
                    run_id: run_id.to_string(),
                    org_id: text(&row, "orgId"),
                    target_app_id: text(&row, "targetAppId"),
                    status: text(&row, "status").unwrap_or_default(),
                    started_at: text(&row, "startedAt").unwrap_or_default(),
                    ended_at: text(&row, "endedAt"),
                    summary,
                    ..LedgerRun::default()
                },
            );
        }
        for row in self.rows(STEPS, None)? {
            let Some(run) = text(&row, "runId").and_then(|id| runs.get_mut(&id)) else {
                continue;
            };
            run.steps.push(LedgerStep {
                name: text(&row, "name").unwrap_or_default(),
                status: text(&row, "status").unwrap_or_default(),
                started_at: text(&row, "startedAt").unwrap_or_default(),
                ended_at: text(&row, "endedAt"),
                detail: row.get("detail").cloned().unwrap_or(Value::Null),
            });
        }
        for row in self.rows(ARTIFACTS, None)? {
            let Some(run) = text(&row, "runId").and_then(|id| runs.get_mut(&id)) else {
                continue;
            };
            run.artifacts.push(LedgerArtifact {
                id: text(&row, "id").unwrap_or_default(),
                step_name: text(&row, "stepName").unwrap_or_default(),
                kind: text(&row, "kind").unwrap_or_default(),
                label: text(&row, "label").unwrap_or_default(),
                content_type: text(&row, "contentType"),
                size_bytes: row.get("sizeBytes").and_then(Value::as_u64),
                sha256: text(&row, "sha256"),
                chunked: row.get("chunked").and_then(Value::as_bool).unwrap_or(false),
                inline_content: text(&row, "inlineContent"),
                created_at: text(&row, "createdAt").unwrap_or_default(),
            });
        }
        for row in self.rows(REPORTS, None)? {
            let Some(run) = text(&row, "runId").and_then(|id| runs.get_mut(&id)) else {
                continue;
            };
            run.reports.push(LedgerReport {
                status: text(&row, "status").unwrap_or_default(),
                report: row.get("report").cloned().unwrap_or(Value::Null),
                created_at: text(&row, "createdAt").unwrap_or_default(),
            });
        }
        let mut runs: Vec<LedgerRun> = runs.into_values().collect();
        for run in &mut runs {
            run.steps.sort_by(|a, b| a.name.cmp(&b.name));
            run.artifacts.sort_by(|a, b| a.label.cmp(&b.label));
            run.reports.sort_by(|a, b| {
                (a.report.get("name").and_then(Value::as_str), &a.created_at)
                    .cmp(&(b.report.get("name").and_then(Value::as_str), &b.created_at))
            });
            let warnings: Vec<&LedgerArtifact> = run
                .artifacts
                .iter()
                .filter(|a| a.kind == "warning")
                .collect();
            let mut loaded = Vec::new();
            for artifact in warnings {
                let content = self.content(&run.run_id, artifact)?;
                loaded.push(LedgerWarning {
                    step_name: artifact.step_name.clone(),
                    text: String::from_utf8_lossy(&content).into_owned(),
                    created_at: artifact.created_at.clone(),
                });
            }
            run.warnings = loaded;
        }
        Ok(Snapshot {
            app_id: self.auth.app_id.clone(),
            runs,
        })
    }

    /// An artifact's content, reassembled from the chunks of its current sha256 and checked
    /// against it.
    pub fn content(&self, run_id: &str, artifact: &LedgerArtifact) -> Result<Vec<u8>, LedgerError> {
        let corrupt = |message: String| LedgerError::Corrupt {
            app_id: self.auth.app_id.clone(),
            what: format!("artifact {} of run {run_id}", artifact.label),
            message,
        };
        let Some(sha256) = &artifact.sha256 else {
            return Err(corrupt("no sha256 recorded".to_string()));
        };
        let text = if artifact.chunked {
            let mut chunks: Vec<(u64, String)> = self
                .rows(CHUNKS, Some(json!({"artifactId": artifact.id})))?
                .into_iter()
                .filter_map(|row| {
                    let index = row.get("chunkIndex")?.as_u64()?;
                    let id = row.get("id")?.as_str()?;
                    // Only the chunks of the current content (ids embed the sha256).
                    (id == chunk_entity_id(&artifact.id, sha256, index as usize))
                        .then(|| Some((index, row.get("content")?.as_str()?.to_string())))
                        .flatten()
                })
                .collect();
            chunks.sort_by_key(|(index, _)| *index);
            if chunks
                .iter()
                .enumerate()
                .any(|(expected, (index, _))| *index != expected as u64)
            {
                return Err(corrupt("chunks are missing".to_string()));
            }
            chunks
                .into_iter()
                .map(|(_, content)| content)
                .collect::<String>()
        } else {
            artifact.inline_content.clone().unwrap_or_default()
        };
        let bytes = if artifact
            .content_type
            .as_deref()
            .is_some_and(|kind| kind.ends_with(BASE64_SUFFIX))
        {
            base64_decode(&text)
                .ok_or_else(|| corrupt("base64 content does not decode".to_string()))?
        } else {
            text.into_bytes()
        };
        if &sha256_hex(&bytes) != sha256 {
            return Err(corrupt("content does not match its sha256".to_string()));
        }
        Ok(bytes)
    }

    /// The ledger's runs as status evidence: stages from the steps, artifact hashes from the
    /// artifact rows, and the verify result reassembled and hash-checked. A run whose verify
    /// result does not check out is rejected.
    pub fn evidence(&self, snapshot: &Snapshot) -> Result<EvidenceSet, LedgerError> {
        let mut set = EvidenceSet::default();
        for run in &snapshot.runs {
            let summary_time = |key: &str| {
                run.summary
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let artifacts: BTreeMap<String, String> = run
                .artifacts
                .iter()
                .filter(|artifact| artifact.kind == "run_artifact")
                .filter_map(|artifact| Some((artifact.label.clone(), artifact.sha256.clone()?)))
                .collect();
            let verify_result =
                match run.artifacts.iter().find(|artifact| {
                    artifact.kind == "run_artifact" && artifact.label == VERIFY_RESULT
                }) {
                    None => None,
                    Some(artifact) => match self.content(&run.run_id, artifact) {
                        Ok(bytes) => Some(bytes),
                        Err(LedgerError::Corrupt { message, .. }) => {
                            set.rejected.push(RejectedEvidence {
                                run_id: run.run_id.clone(),
                                source: EvidenceSource::Ledger,
                                reason: format!("{VERIFY_RESULT}: {message}"),
                            });
                            continue;
                        }
                        Err(other) => return Err(other),
                    },
                };
            set.runs.push(RunEvidence {
                run_id: run.run_id.clone(),
                source: EvidenceSource::Ledger,
                created_at: summary_time("manifestCreatedAt").or(Some(run.started_at.clone())),
                updated_at: summary_time("manifestUpdatedAt")
                    .or(run.ended_at.clone())
                    .or(Some(run.started_at.clone())),
                stages: run
                    .steps
                    .iter()
                    .map(|step| (step.name.clone(), step.detail.clone()))
                    .collect(),
                artifacts,
                verify_result,
            });
        }
        set.runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        set.rejected.sort();
        Ok(set)
    }
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

fn check_date(what: &str, text: &str) -> Result<(), LedgerError> {
    if migration::dates::parse_iso(text).is_some() {
        Ok(())
    } else {
        Err(LedgerError::Invalid {
            what: what.to_string(),
            message: format!("{text:?} is not an RFC 3339 time"),
        })
    }
}

fn stage_failed(record: &Value) -> bool {
    record.get("ok") == Some(&Value::Bool(false))
        || matches!(
            record.get("status").and_then(Value::as_str),
            Some("failed" | "error" | "errored" | "aborted" | "blocked")
        )
}

/// The step a run-folder file belongs to, by its section.
fn step_of_path(path: &str) -> &'static str {
    match path.split('/').next().unwrap_or("") {
        "01-extract" => "extract",
        "02-transform" => "transform",
        "03-apply" => "apply",
        "04-verify" => "verify",
        _ => "run",
    }
}

fn content_type_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "json" => "application/json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "md" => "text/markdown",
        "txt" | "log" => "text/plain",
        "ts" => "text/typescript",
        _ => "application/octet-stream",
    }
}

/// `text` in pieces of at most `max` bytes, never splitting a character.
fn split_chars(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = max.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece.to_string());
        rest = tail;
    }
    pieces
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(BASE64[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| BASE64.iter().position(|&b| b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quad in bytes.chunks(4) {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

/// The ledger read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub app_id: String,
    pub runs: Vec<LedgerRun>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerRun {
    pub run_id: String,
    pub org_id: Option<String>,
    pub target_app_id: Option<String>,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub summary: Value,
    pub steps: Vec<LedgerStep>,
    pub artifacts: Vec<LedgerArtifact>,
    pub reports: Vec<LedgerReport>,
    /// Content of the run's `warning` artifacts.
    pub warnings: Vec<LedgerWarning>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerStep {
    pub name: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerArtifact {
    pub id: String,
    pub step_name: String,
    pub kind: String,
    pub label: String,
    pub content_type: Option<String>,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub chunked: bool,
    pub inline_content: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerReport {
    pub status: String,
    pub report: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWarning {
    pub step_name: String,
    pub text: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let encoded = base64_encode(&bytes);
            assert_eq!(encoded.len() % 4, 0);
            assert_eq!(base64_decode(&encoded).unwrap(), bytes, "length {len}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), None);
    }

    #[test]
    fn chunks_never_split_a_character() {
        let text = "aé€😀".repeat(50);
        for max in 4..12 {
            let pieces = split_chars(&text, max);
            assert!(pieces.iter().all(|p| p.len() <= max && !p.is_empty()));
            assert_eq!(pieces.concat(), text);
        }
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(run_entity_id("run-1"), run_entity_id("run-1"));
        assert_ne!(run_entity_id("run-1"), run_entity_id("run-2"));
        assert_ne!(step_entity_id("a", "bc"), step_entity_id("ab", "c"));
        assert_ne!(
            chunk_entity_id("x", "sha", 1),
            chunk_entity_id("x", "sha", 10)
        );
    }
}
