//! Verify: the invariants of data-model §3.4, checked by reading the target app through the
//! [`InstantApi`] port after apply, against what the run says must be there: the transform
//! output in `02-transform/` (rows, link intents, rejects, summary) and the legacy rows in
//! `01-extract/`. Writes `04-verify/verify.result.json`:
//! `{ok, invariants: [{id, status, expected, actual, sample, detail?}], sampling}`.
//!
//! * Every invariant has a stable id ([`invariant_ids`]) and is always listed: one that could
//!   not be evaluated (a query failed, an input file is missing or malformed) is `error`, never
//!   `pass`, and `ok` is true only when every invariant passed.
//! * Each target namespace is read once in full, in pages (`limit`/`offset`, the server's
//!   default order: no `order` at all, so nothing needs an index), asking only for its scalar
//!   attributes and its links' ids; the pages go through an external sort by id and are
//!   merge-joined with the expected rows (`<namespace>.ndjson`, ordered by id) and link intents
//!   (`links.ndjson`, ordered by source id). Memory holds a page, the sort budget, the keys of
//!   contexts and threads, and the sample; never a namespace.
//! * A deterministic sample per namespace (the ids with the smallest `sha256(seed, namespace,
//!   id)`, so the same run picks the same rows) is then read in full, JSON attributes included,
//!   and compared field by field with the expected rows (dates as instants, numbers by value).
//!
//! A target that changes while it is read can make an offset page skip a row (a delete behind
//! the cursor); that row is then reported missing: a false failure, never a false pass.

// Errors carry the server's whole envelope on purpose; see `instant-api`.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use instant_api::{AppAuth, InstantApi, QueryRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::evidence::Section;
use crate::io::{write_atomic, NdjsonReader};
use crate::legacy::{parse_uuid, type_row};
use crate::model::{LegacyNamespace, LegacyRow, LinkIntent, Reject, TargetNamespace};
use crate::rules::Rule;
use crate::sort::Sorter;

/// The result file in `04-verify/`.
pub const RESULT_FILE: &str = "verify.result.json";
/// Offending ids listed per invariant.
pub const MAX_SAMPLE_IDS: usize = 20;
/// Ids per `$in` query when reading the sample.
const FETCH_CHUNK: usize = 100;

/// What verify knows of one thread V1 namespace.
#[derive(Debug)]
struct Spec {
    ns: TargetNamespace,
    /// Every thread V1 attribute (compared in the sample).
    attrs: &'static [&'static str],
    /// The `any` attributes: left out of the full read, compared in the sample only.
    json: &'static [&'static str],
    /// Compared as instants (Instant accepts ISO text and epoch milliseconds alike).
    dates: &'static [&'static str],
    /// Required by thread V1 (§3.4 item 9).
    required: &'static [&'static str],
    /// Forward links the migration writes from this namespace.
    links: &'static [&'static str],
}

/// In the order they are checked: threads before contexts (a context's thread key is checked
/// against the thread read just before).
static SPECS: [Spec; 6] = [
    Spec {
        ns: TargetNamespace::ThreadThreads,
        attrs: &["createdAt", "updatedAt", "key", "name", "status"],
        json: &[],
        dates: &["createdAt", "updatedAt"],
        required: &["createdAt"],
        links: &[],
    },
    Spec {
        ns: TargetNamespace::ThreadContexts,
        attrs: &["createdAt", "updatedAt", "key", "status", "content"],
        json: &["content"],
        dates: &["createdAt", "updatedAt"],
        required: &["createdAt"],
        links: &["thread", "currentExecution"],
    },
    Spec {
        ns: TargetNamespace::ThreadExecutions,
        attrs: &["createdAt", "updatedAt", "status", "workflowRunId"],
        json: &[],
        dates: &["createdAt", "updatedAt"],
        required: &["createdAt"],
        links: &["context", "thread", "trigger", "reaction"],
    },
    Spec {
        ns: TargetNamespace::ThreadItems,
        attrs: &["channel", "createdAt", "type", "content", "status"],
        json: &["content"],
        dates: &["createdAt"],
        required: &["channel", "createdAt"],
        links: &[
            "context",
            "thread",
            "execution",
            "whatsappMessages",
            "emails",
        ],
    },
    Spec {
        ns: TargetNamespace::ThreadSteps,
        attrs: &[
            "createdAt",
            "updatedAt",
            "status",
            "iteration",
            "executionId",
            "triggerEventId",
            "reactionEventId",
            "eventId",
            "toolCalls",
            "toolExecutionResults",
            "continueLoop",
            "errorText",
        ],
        json: &["toolCalls", "toolExecutionResults"],
        dates: &["createdAt", "updatedAt"],
        required: &["createdAt", "iteration", "executionId", "eventId"],
        links: &["execution"],
    },
    Spec {
        ns: TargetNamespace::ThreadParts,
        attrs: &["key", "stepId", "idx", "type", "part", "updatedAt"],
        json: &["part"],
        dates: &["updatedAt"],
        required: &["key", "stepId", "idx"],
        links: &["step"],
    },
];

/// The invariant ids of one namespace, in report order.
fn spec_ids(spec: &Spec) -> Vec<String> {
    let ns = spec.ns.as_str();
    let mut ids = vec![format!("count.{ns}"), format!("required.{ns}")];
    for attr in ["createdAt", "idx"] {
        if spec.attrs.contains(&attr) {
            ids.push(format!("preserved.{ns}.{attr}"));
        }
    }
    for label in spec.links {
        ids.push(format!("links.{ns}.{label}"));
    }
    match spec.ns {
        TargetNamespace::ThreadThreads => ids.push("keys.thread_threads.unique".into()),
        TargetNamespace::ThreadContexts => ids.extend([
            "keys.thread_contexts.unique".into(),
            "keys.thread_contexts.legacy".into(),
            "keys.thread_threads.context".into(),
        ]),
        TargetNamespace::ThreadSteps => ids.push("links.thread_steps.executionId".into()),
        TargetNamespace::ThreadParts => ids.extend([
            "links.thread_parts.stepId".into(),
            "keys.thread_parts.format".into(),
            "keys.thread_parts.unique".into(),
        ]),
        _ => {}
    }
    ids.push(format!("sample.{ns}"));
    ids
}

/// Every invariant id, in report order.
pub fn invariant_ids() -> Vec<String> {
    let mut ids: Vec<String> = LegacyNamespace::ALL
        .iter()
        .map(|ns| format!("accounting.{ns}"))
        .collect();
    for spec in &SPECS {
        ids.extend(spec_ids(spec));
    }
    ids
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Error,
}

/// One invariant's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invariant {
    pub id: String,
    pub status: Status,
    /// What must hold (a count), or `null` when the invariant could not be evaluated.
    pub expected: Value,
    pub actual: Value,
    /// The first offending ids (at most [`MAX_SAMPLE_IDS`]).
    pub sample: Vec<String>,
    /// Why it failed (the first offence) or could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Invariant {
    fn error(id: &str, reason: &str) -> Invariant {
        Invariant {
            id: id.to_string(),
            status: Status::Error,
            expected: Value::Null,
            actual: Value::Null,
            sample: Vec::new(),
            detail: Some(reason.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sampling {
    /// Rows compared field by field per namespace (at most).
    pub per_namespace: usize,
    pub seed: String,
}

/// `verify.result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub ok: bool,
    pub invariants: Vec<Invariant>,
    pub sampling: Sampling,
}

impl VerifyResult {
    pub fn count(&self, status: Status) -> usize {
        self.invariants
            .iter()
            .filter(|invariant| invariant.status == status)
            .count()
    }

    pub fn get(&self, id: &str) -> Option<&Invariant> {
        self.invariants.iter().find(|invariant| invariant.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// `01-extract/` (legacy rows and counts).
    pub extract_dir: PathBuf,
    /// `02-transform/` (expected rows, links, rejects, summary).
    pub transform_dir: PathBuf,
    /// `04-verify/` (created; the result is written there).
    pub out_dir: PathBuf,
    /// Rows per page of the full read (default 500).
    pub page_size: usize,
    /// Rows compared field by field per namespace (default 200).
    pub sample_size: usize,
    /// Seeds the sample (the run id): the same run always compares the same rows.
    pub seed: String,
    /// Memory for the sort of one namespace before it spills to disk.
    pub sort_budget: usize,
}

impl VerifyConfig {
    /// The sections of the run folder `run_dir`.
    pub fn for_run(run_dir: &Path, seed: &str) -> VerifyConfig {
        VerifyConfig {
            extract_dir: run_dir.join(Section::Extract.dir_name()),
            transform_dir: run_dir.join(Section::Transform.dir_name()),
            out_dir: run_dir.join(Section::Verify.dir_name()),
            page_size: 500,
            sample_size: 200,
            seed: seed.to_string(),
            sort_budget: 64 << 20,
        }
    }
}

/// Progress after each page of the full read.
#[derive(Debug, Clone, Copy)]
pub struct VerifyProgress<'a> {
    pub namespace: &'a str,
    pub rows: u64,
}

/// Only the result file itself can fail verify; everything else is an `error` invariant.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Removes the sort's work directory however verify ends.
struct WorkDir(PathBuf);
impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// What the run folder says must be in the target. Each part is loaded on its own: a missing
/// one makes only the invariants that need it `error`.
struct Inputs {
    /// `02-transform/summary.json`: rows read, written and rejected.
    transform: Result<TransformCounts, String>,
    /// Rows per namespace of `01-extract/`.
    extracted: Result<BTreeMap<String, u64>, String>,
    /// Legacy context id -> key (`01-extract/context_contexts.ndjson`, typed as the transform
    /// types it).
    legacy_keys: Result<HashMap<Uuid, String>, String>,
    /// Contexts whose key the transform omitted under `key_conflict` or
    /// `thread_context_key_conflict` (reported, not kept).
    key_conflicts: Result<HashSet<Uuid>, String>,
    /// `thread_threads` that existed before the migration (`01-extract/thread_threads.ndjson`).
    preexisting_threads: HashSet<Uuid>,
    /// `thread_contexts` that existed before the migration (`01-extract/thread_contexts.ndjson`).
    preexisting_contexts: HashSet<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransformCounts {
    input: BTreeMap<String, u64>,
    output: BTreeMap<String, u64>,
    #[serde(default)]
    rejected_by_namespace: BTreeMap<String, u64>,
}

fn read_ndjson(path: &Path, mut row: impl FnMut(u64, &[u8])) -> Result<(), String> {
    let file = File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut reader = NdjsonReader::new(BufReader::with_capacity(256 * 1024, file));
    let mut ordinal = 0;
    while let Some((_, text)) = reader
        .next_row()
        .map_err(|error| format!("{}: {error}", path.display()))?
    {
        ordinal += 1;
        row(ordinal, text);
    }
    Ok(())
}

impl Inputs {
    /// Rows of `ns` that were in the target before the migration: allowed beside the
    /// transform output, and compared leniently.
    fn preexisting(&self, ns: TargetNamespace) -> Option<&HashSet<Uuid>> {
        match ns {
            TargetNamespace::ThreadThreads => Some(&self.preexisting_threads),
            TargetNamespace::ThreadContexts => Some(&self.preexisting_contexts),
            _ => None,
        }
    }

    fn load(config: &VerifyConfig) -> Inputs {
        let extract = &config.extract_dir;
        let transform = &config.transform_dir;
        let missing_extract = || {
            format!(
                "no extract at {}: the legacy rows are needed (run extract)",
                extract.display()
            )
        };
        let transform_counts = (|| {
            let path = transform.join("summary.json");
            if !transform.is_dir() {
                return Err(format!(
                    "no transform output at {} (run transform)",
                    transform.display()
                ));
            }
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_slice::<TransformCounts>(&bytes)
                .map_err(|e| format!("{}: not a transform summary: {e}", path.display()))
        })();
        let extracted = if extract.is_dir() {
            crate::extract::extract_counts(extract).map_err(|error| error.to_string())
        } else {
            Err(missing_extract())
        };
        let legacy_keys = if extract.is_dir() {
            let path = extract.join(LegacyNamespace::ContextContexts.file_name());
            let mut keys = HashMap::new();
            read_ndjson(&path, |ordinal, text| {
                if let Ok(LegacyRow::Context(row)) =
                    type_row(LegacyNamespace::ContextContexts, text, ordinal)
                {
                    if let Some(key) = row.key {
                        keys.insert(row.id, key);
                    }
                }
            })
            .map(|_| keys)
        } else {
            Err(missing_extract())
        };
        let key_conflicts = {
            let path = transform.join("rejects.ndjson");
            let mut ids = HashSet::new();
            let mut bad = None;
            read_ndjson(&path, |ordinal, text| {
                match serde_json::from_slice::<Reject>(text) {
                    Ok(reject) => {
                        // Both rules leave the context without its legacy key: taken by
                        // another context, or held by a pre-existing thread_contexts row.
                        if matches!(
                            reject.rule,
                            Rule::KeyConflict | Rule::ThreadContextKeyConflict
                        ) && reject.namespace == LegacyNamespace::ContextContexts.as_str()
                        {
                            if let Some((id, _)) = parse_uuid(&reject.id) {
                                ids.insert(id);
                            }
                        }
                    }
                    Err(error) => {
                        bad.get_or_insert_with(|| {
                            format!("{} row {ordinal}: {error}", path.display())
                        });
                    }
                }
            })
            .and_then(|_| bad.map_or(Ok(ids), Err))
        };
        let preexisting = |namespace: &str| {
            let mut ids = HashSet::new();
            let _ = read_ndjson(&extract.join(format!("{namespace}.ndjson")), |_, text| {
                #[derive(Deserialize)]
                struct Id {
                    id: Option<String>,
                }
                if let Ok(Id { id: Some(id) }) = serde_json::from_slice(text) {
                    if let Some((id, _)) = parse_uuid(&id) {
                        ids.insert(id);
                    }
                }
            });
            ids
        };
        let preexisting_threads = preexisting("thread_threads");
        let preexisting_contexts = preexisting("thread_contexts");
        Inputs {
            transform: transform_counts,
            extracted,
            legacy_keys,
            key_conflicts,
            preexisting_threads,
            preexisting_contexts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tallies

/// One invariant being evaluated: `expected` items checked, `actual` of them holding.
#[derive(Debug, Default)]
struct Tally {
    expected: u64,
    actual: u64,
    offenders: u64,
    sample: Vec<String>,
    detail: Option<String>,
    error: Option<String>,
}

impl Tally {
    fn check(&mut self, holds: bool, id: &dyn std::fmt::Display, detail: impl FnOnce() -> String) {
        self.expected += 1;
        if holds {
            self.actual += 1;
        } else {
            self.offend(id, detail);
        }
    }

    fn offend(&mut self, id: &dyn std::fmt::Display, detail: impl FnOnce() -> String) {
        self.offenders += 1;
        let id = id.to_string();
        // A row offending twice (two links of one label) is listed once.
        if self.sample.len() < MAX_SAMPLE_IDS && self.sample.last() != Some(&id) {
            self.sample.push(id);
        }
        if self.detail.is_none() {
            self.detail = Some(detail());
        }
    }

    fn finish(self, id: &str) -> Invariant {
        if let Some(reason) = self.error {
            return Invariant::error(id, &reason);
        }
        let pass = self.offenders == 0 && self.expected == self.actual;
        Invariant {
            id: id.to_string(),
            status: if pass { Status::Pass } else { Status::Fail },
            expected: json!(self.expected),
            actual: json!(self.actual),
            sample: self.sample,
            detail: if pass { None } else { self.detail },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// The instant of a date value (epoch ms, or ISO text), if it is one.
fn instant(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(text) => crate::dates::parse_iso(text),
        _ => None,
    }
}

fn same_instant(a: &Value, b: &Value) -> bool {
    match (instant(a), instant(b)) {
        (Some(x), Some(y)) => x == y,
        _ => json_eq(a, b),
    }
}

/// JSON equality with numbers compared by value (`1` = `1.0`), as a database may re-encode
/// them.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| json_eq(value, other)))
        }
        _ => a == b,
    }
}

/// A value for a message: its JSON text, cut at 80 characters.
fn show(value: Option<&Value>) -> String {
    let text = match value {
        None => "absent".to_string(),
        Some(value) => value.to_string(),
    };
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The ids a link holds in a query answer (`[{id}]`, `{id}`, `"id"`).
fn link_ids(value: Option<&Value>) -> Vec<Uuid> {
    let one = |value: &Value| match value {
        Value::String(text) => parse_uuid(text).map(|(id, _)| id),
        Value::Object(map) => map
            .get("id")
            .and_then(Value::as_str)
            .and_then(parse_uuid)
            .map(|(id, _)| id),
        _ => None,
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn present(row: &Map<String, Value>, attr: &str) -> bool {
    row.get(attr).is_some_and(|value| !value.is_null())
}

/// The sort key of a row id: UUIDs by their bytes (the order of the expected files), anything
/// else after them.
fn sort_key(id: Option<&str>) -> Vec<u8> {
    match id.and_then(parse_uuid) {
        Some((uuid, _)) => {
            let mut key = Vec::with_capacity(17);
            key.push(0);
            key.extend_from_slice(uuid.as_bytes());
            key
        }
        None => {
            let mut key = vec![1];
            key.extend_from_slice(id.unwrap_or_default().as_bytes());
            key
        }
    }
}

fn key_uuid(key: &[u8]) -> Option<Uuid> {
    match key.split_first() {
        Some((0, bytes)) => Uuid::from_slice(bytes).ok(),
        _ => None,
    }
}

fn sample_rank(seed: &str, ns: TargetNamespace, id: &Uuid) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update([0])
        .chain_update(ns.as_str().as_bytes())
        .chain_update([0])
        .chain_update(id.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------------------------------------
// Cursors over the expected files

#[derive(Deserialize)]
struct ExpectedSmall {
    id: String,
    #[serde(rename = "createdAt", default)]
    created_at: Option<Value>,
    #[serde(default)]
    idx: Option<Value>,
}

struct ExpectedRow {
    id: Uuid,
    created_at: Option<Value>,
    idx: Option<Value>,
    /// Byte offset of the row in its file (the sample re-reads it from there).
    offset: u64,
}

/// `02-transform/<namespace>.ndjson`, row by row, checked to be ordered by id.
struct ExpectedCursor {
    reader: NdjsonReader<BufReader<File>>,
    path: PathBuf,
    peeked: Option<ExpectedRow>,
    last: Option<Uuid>,
}

impl ExpectedCursor {
    fn open(path: PathBuf) -> Result<ExpectedCursor, String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ExpectedCursor {
            reader: NdjsonReader::new(BufReader::with_capacity(256 * 1024, file)),
            path,
            peeked: None,
            last: None,
        })
    }

    fn peek_id(&mut self) -> Result<Option<Uuid>, String> {
        if self.peeked.is_none() {
            let Some((offset, text)) = self
                .reader
                .next_row()
                .map_err(|e| format!("{}: {e}", self.path.display()))?
            else {
                return Ok(None);
            };
            let row: ExpectedSmall = serde_json::from_slice(text).map_err(|e| {
                format!(
                    "{}: byte {offset}: not a target row: {e}",
                    self.path.display()
                )
            })?;
            let Some((id, _)) = parse_uuid(&row.id) else {
                return Err(format!(
                    "{}: byte {offset}: id {:?} is not a UUID",
                    self.path.display(),
                    row.id
                ));
            };
            if self.last.is_some_and(|last| last >= id) {
                return Err(format!(
                    "{}: byte {offset}: rows are not ordered by id ({id} after {})",
                    self.path.display(),
                    self.last.unwrap_or_default()
                ));
            }
            self.last = Some(id);
            self.peeked = Some(ExpectedRow {
                id,
                created_at: row.created_at,
                idx: row.idx,
                offset,
            });
        }
        Ok(self.peeked.as_ref().map(|row| row.id))
    }

    fn next(&mut self) -> Result<Option<ExpectedRow>, String> {
        self.peek_id()?;
        Ok(self.peeked.take())
    }
}

/// The link intents of one namespace from `02-transform/links.ndjson`, checked to be ordered
/// by source id.
struct LinkCursor {
    reader: NdjsonReader<BufReader<File>>,
    path: PathBuf,
    ns: TargetNamespace,
    peeked: Option<LinkIntent>,
    last: Option<Uuid>,
}

impl LinkCursor {
    fn open(path: PathBuf, ns: TargetNamespace) -> Result<LinkCursor, String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(LinkCursor {
            reader: NdjsonReader::new(BufReader::with_capacity(256 * 1024, file)),
            path,
            ns,
            peeked: None,
            last: None,
        })
    }

    fn peek_from(&mut self) -> Result<Option<Uuid>, String> {
        while self.peeked.is_none() {
            let Some((offset, text)) = self
                .reader
                .next_row()
                .map_err(|e| format!("{}: {e}", self.path.display()))?
            else {
                return Ok(None);
            };
            let link: LinkIntent = serde_json::from_slice(text).map_err(|e| {
                format!(
                    "{}: byte {offset}: not a link intent: {e}",
                    self.path.display()
                )
            })?;
            if link.from_ns != self.ns {
                continue;
            }
            if self.last.is_some_and(|last| last > link.from_id) {
                return Err(format!(
                    "{}: byte {offset}: links are not ordered by source id",
                    self.path.display()
                ));
            }
            self.last = Some(link.from_id);
            self.peeked = Some(link);
        }
        Ok(self.peeked.as_ref().map(|link| link.from_id))
    }

    /// Hands every link whose source id is below `upto` (all of them for `None`) to `before`,
    /// and those from `upto` itself to `at`.
    fn advance(
        &mut self,
        upto: Option<Uuid>,
        mut before: impl FnMut(LinkIntent),
        mut at: impl FnMut(LinkIntent),
    ) -> Result<(), String> {
        while let Some(from) = self.peek_from()? {
            let link = match upto {
                Some(id) if from > id => return Ok(()),
                _ => self.peeked.take().expect("peeked"),
            };
            if Some(from) == upto {
                at(link);
            } else {
                before(link);
            }
        }
        Ok(())
    }
}

/// Keys to check for uniqueness: sorted externally, duplicates are adjacent.
struct KeyIndex {
    sorter: Sorter,
    rows: u64,
}

impl KeyIndex {
    fn new(work: &Path, name: &str, budget: usize) -> KeyIndex {
        KeyIndex {
            sorter: Sorter::new(work, name, budget),
            rows: 0,
        }
    }

    fn push(&mut self, key: &str, id: &str) -> io::Result<()> {
        self.rows += 1;
        self.sorter.push(key.as_bytes(), id.as_bytes())
    }

    /// expected = keyed rows, actual = distinct keys; every row of a repeated key offends.
    fn finish(self) -> io::Result<Tally> {
        let mut tally = Tally {
            expected: self.rows,
            ..Tally::default()
        };
        let mut group: Vec<(Vec<u8>, String)> = Vec::new();
        let close = |group: &mut Vec<(Vec<u8>, String)>, tally: &mut Tally| {
            if group.len() > 1 {
                let key = String::from_utf8_lossy(&group[0].0).into_owned();
                let n = group.len();
                for (_, id) in group.iter() {
                    tally.offend(id, || format!("key {key:?} is held by {n} rows"));
                }
            }
            if !group.is_empty() {
                tally.actual += 1;
            }
            group.clear();
        };
        self.sorter.drain(|key, id| {
            if group.first().is_some_and(|(first, _)| first != key) {
                close(&mut group, &mut tally);
            }
            group.push((key.to_vec(), String::from_utf8_lossy(id).into_owned()));
            Ok(())
        })?;
        close(&mut group, &mut tally);
        Ok(tally)
    }
}

// ---------------------------------------------------------------------------------------------
// One namespace

/// State carried from one namespace to the next.
#[derive(Default)]
struct Carry {
    /// Actual `thread_threads` id -> key, once the threads were read (`None`: they could not be).
    thread_keys: Option<HashMap<Uuid, Option<String>>>,
    thread_error: Option<String>,
}

struct Merge<'a> {
    spec: &'static Spec,
    inputs: &'a Inputs,
    carry: &'a mut Carry,
    seed: &'a str,
    sample_size: usize,
    expected: ExpectedCursor,
    links: LinkCursor,
    previous: Option<Vec<u8>>,
    duplicates: u64,
    // count
    expected_rows: u64,
    actual_rows: u64,
    allowed_extra: u64,
    missing: Tally,
    extra: Tally,
    required: Tally,
    created_at: Tally,
    idx: Tally,
    link_tallies: BTreeMap<String, Tally>,
    keys: Option<KeyIndex>,
    legacy_key: Tally,
    thread_key: Tally,
    denormalised: Tally,
    key_format: Tally,
    thread_keys: HashMap<Uuid, Option<String>>,
    /// The rows with the smallest ranks: (rank, id, offset in the expected file).
    sample: BinaryHeap<(u64, Uuid, u64)>,
}

impl Merge<'_> {
    fn missing_row(&mut self, row: ExpectedRow) {
        self.expected_rows += 1;
        self.missing.offend(&row.id, || {
            format!("{} has no row {}", self.spec.ns, row.id)
        });
    }

    fn link_tally(&mut self, label: &str) -> &mut Tally {
        self.link_tallies.entry(label.to_string()).or_default()
    }

    fn missing_link(&mut self, link: LinkIntent) {
        let ns = self.spec.ns;
        self.link_tally(&link.label)
            .check(false, &link.from_id, || {
                format!(
                    "{ns} {} is missing (its link {} -> {} cannot exist)",
                    link.from_id, link.label, link.to_id
                )
            });
    }

    fn actual(&mut self, key: &[u8], line: &[u8]) -> Result<(), String> {
        if self.previous.as_deref() == Some(key) {
            // A row two pages returned (the target changed while it was read).
            self.duplicates += 1;
            return Ok(());
        }
        self.previous = Some(key.to_vec());
        let row: Map<String, Value> = serde_json::from_slice(line)
            .map_err(|e| format!("reading back {}: {e}", self.spec.ns))?;
        let id_text = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = key_uuid(key);

        while let Some(next) = self.expected.peek_id()? {
            if id.is_some_and(|id| next >= id) {
                break;
            }
            let row = self.expected.next()?.expect("peeked");
            self.missing_row(row);
        }
        let matched = match id {
            Some(id) if self.expected.peek_id()? == Some(id) => self.expected.next()?,
            _ => None,
        };

        if let Some(id) = id {
            let mut before = Vec::new();
            let mut at = Vec::new();
            self.links
                .advance(Some(id), |link| before.push(link), |link| at.push(link))?;
            for link in before {
                self.missing_link(link);
            }
            let ns = self.spec.ns;
            for link in at {
                let found = link_ids(row.get(&link.label));
                self.link_tally(&link.label.clone()).check(
                    found.contains(&link.to_id),
                    &id,
                    || {
                        format!(
                            "{ns} {id}.{} is {} instead of {}",
                            link.label,
                            show(row.get(&link.label)),
                            link.to_id
                        )
                    },
                );
            }
        }

        self.actual_rows += 1;
        self.row_checks(&row, id, &id_text)
            .map_err(|e| format!("sorting keys of {}: {e}", self.spec.ns))?;
        match matched {
            Some(expected) => self.both(&row, expected),
            None => {
                if id.is_some_and(|id| {
                    self.inputs
                        .preexisting(self.spec.ns)
                        .is_some_and(|rows| rows.contains(&id))
                }) {
                    self.allowed_extra += 1;
                } else {
                    let ns = self.spec.ns;
                    self.extra.offend(&id_text, || {
                        format!("{ns} {id_text} is not in the transform output")
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks of every target row, migrated or not.
    fn row_checks(
        &mut self,
        row: &Map<String, Value>,
        id: Option<Uuid>,
        id_text: &str,
    ) -> io::Result<()> {
        let spec = self.spec;
        let absent: Vec<&str> = spec
            .required
            .iter()
            .copied()
            .filter(|attr| !present(row, attr))
            .collect();
        self.required.check(absent.is_empty(), &id_text, || {
            format!("{} {id_text} lacks {}", spec.ns, absent.join(", "))
        });
        let key = row.get("key").and_then(Value::as_str);
        if let (Some(keys), Some(key)) = (self.keys.as_mut(), key) {
            keys.push(key, id_text)?;
        }
        match spec.ns {
            TargetNamespace::ThreadThreads => {
                if let Some(id) = id {
                    self.thread_keys.insert(id, key.map(str::to_string));
                }
            }
            TargetNamespace::ThreadContexts => {
                if let (Some(id), Ok(legacy), Ok(conflicts)) =
                    (id, &self.inputs.legacy_keys, &self.inputs.key_conflicts)
                {
                    if let Some(legacy_key) = legacy.get(&id) {
                        if !conflicts.contains(&id) {
                            self.legacy_key.check(key == Some(legacy_key.as_str()), &id, || {
                                format!(
                                    "thread_contexts {id} has key {} instead of the legacy key {legacy_key:?}",
                                    show(row.get("key"))
                                )
                            });
                        }
                    }
                }
                let thread = link_ids(row.get("thread")).into_iter().next();
                if let (Some(thread), Some(threads)) = (thread, self.carry.thread_keys.as_ref()) {
                    // The context's key, else its id; none when the transform found that taken
                    // by another context (`key_conflict`, reported).
                    let conflicted = id.is_some_and(|id| {
                        self.inputs
                            .key_conflicts
                            .as_ref()
                            .is_ok_and(|conflicts| conflicts.contains(&id))
                    });
                    let wanted = match key {
                        Some(key) => Some(key.to_string()),
                        None if conflicted => None,
                        None => Some(id_text.to_string()),
                    };
                    match threads.get(&thread) {
                        Some(thread_key) => self.thread_key.check(
                            *thread_key == wanted,
                            &id_text,
                            || {
                                format!(
                                    "thread {thread} of context {id_text} has key {thread_key:?} instead of {wanted:?}"
                                )
                            },
                        ),
                        None => self.thread_key.check(false, &id_text, || {
                            format!("context {id_text} links thread {thread}, which does not exist")
                        }),
                    }
                }
            }
            TargetNamespace::ThreadSteps | TargetNamespace::ThreadParts => {
                let (label, attr) = if spec.ns == TargetNamespace::ThreadSteps {
                    ("execution", "executionId")
                } else {
                    ("step", "stepId")
                };
                if let Some(linked) = link_ids(row.get(label)).into_iter().next() {
                    let value = row.get(attr).and_then(Value::as_str).and_then(parse_uuid);
                    self.denormalised.check(
                        value.map(|(v, _)| v) == Some(linked),
                        &id_text,
                        || {
                            format!(
                                "{} {id_text}: {attr} {} but linked {label} {linked}",
                                spec.ns,
                                show(row.get(attr))
                            )
                        },
                    );
                }
                if spec.ns == TargetNamespace::ThreadParts {
                    let step = row.get("stepId").and_then(Value::as_str);
                    let idx = row.get("idx").and_then(Value::as_i64);
                    if let (Some(key), Some(step), Some(idx)) = (key, step, idx) {
                        let wanted = format!("{step}:{idx}");
                        self.key_format.check(key == wanted, &id_text, || {
                            format!("thread_parts {id_text} has key {key:?} instead of {wanted:?}")
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks of a row that is both expected and in the target.
    fn both(&mut self, row: &Map<String, Value>, expected: ExpectedRow) {
        self.expected_rows += 1;
        let ns = self.spec.ns;
        let id = expected.id;
        if let Some(created) = &expected.created_at {
            self.created_at.check(
                row.get("createdAt")
                    .is_some_and(|actual| same_instant(created, actual)),
                &id,
                || {
                    format!(
                        "{ns} {id}: createdAt {} instead of {}",
                        show(row.get("createdAt")),
                        show(Some(created))
                    )
                },
            );
        }
        if let Some(idx) = &expected.idx {
            self.idx.check(
                row.get("idx").is_some_and(|actual| json_eq(idx, actual)),
                &id,
                || {
                    format!(
                        "{ns} {id}: idx {} instead of {}",
                        show(row.get("idx")),
                        show(Some(idx))
                    )
                },
            );
        }
        if self.sample_size > 0 {
            let rank = sample_rank(self.seed, ns, &id);
            if self.sample.len() < self.sample_size {
                self.sample.push((rank, id, expected.offset));
            } else if self
                .sample
                .peek()
                .is_some_and(|top| (rank, id) < (top.0, top.1))
            {
                self.sample.pop();
                self.sample.push((rank, id, expected.offset));
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        while let Some(row) = self.expected.next()? {
            self.missing_row(row);
        }
        let mut rest = Vec::new();
        self.links.advance(None, |link| rest.push(link), |_| {})?;
        for link in rest {
            self.missing_link(link);
        }
        Ok(())
    }
}

/// Reads the whole namespace (scalar attributes and link ids) into a sort by id.
fn read_target(
    api: &dyn InstantApi,
    auth: &AppAuth,
    spec: &Spec,
    page_size: usize,
    work: &Path,
    budget: usize,
    progress: &mut dyn FnMut(VerifyProgress<'_>),
) -> Result<Sorter, String> {
    let ns = spec.ns.as_str();
    let fields: Vec<&str> = spec
        .attrs
        .iter()
        .copied()
        .filter(|attr| !spec.json.contains(attr))
        .collect();
    let mut sorter = Sorter::new(work, ns, budget);
    let mut offset = 0u64;
    let mut previous_first: Option<String> = None;
    loop {
        let mut form = Map::new();
        form.insert(
            "$".into(),
            json!({"limit": page_size, "offset": offset, "fields": fields}),
        );
        for label in spec.links {
            form.insert((*label).into(), json!({"$": {"fields": ["id"]}}));
        }
        let answer = api
            .query(
                auth,
                &QueryRequest {
                    query: json!({ ns: Value::Object(form) }),
                    inference: false,
                },
            )
            .map_err(|e| format!("query of {ns} at offset {offset} failed: {e}"))?;
        let Some(rows) = answer.get(ns).and_then(Value::as_array) else {
            return Err(format!(
                "the answer for {ns} at offset {offset} has no list of rows"
            ));
        };
        let first = rows
            .first()
            .and_then(|row| row.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if offset > 0 && first.is_some() && first == previous_first {
            return Err(format!(
                "the page of {ns} at offset {offset} starts with the previous page's first row: the server does not apply `offset`"
            ));
        }
        previous_first = first;
        for row in rows {
            let key = sort_key(row.get("id").and_then(Value::as_str));
            let line = serde_json::to_vec(row).map_err(|e| e.to_string())?;
            sorter
                .push(&key, &line)
                .map_err(|e| format!("sorting {ns}: {e}"))?;
        }
        progress(VerifyProgress {
            namespace: ns,
            rows: sorter.len(),
        });
        if rows.len() < page_size {
            return Ok(sorter);
        }
        offset += rows.len() as u64;
    }
}

/// Reads the sampled rows in full and compares them field by field with the expected rows.
fn compare_sample(
    api: &dyn InstantApi,
    auth: &AppAuth,
    spec: &Spec,
    expected_path: &Path,
    sample: Vec<(u64, Uuid, u64)>,
    lenient: &HashSet<Uuid>,
) -> Result<Tally, String> {
    let ns = spec.ns.as_str();
    let mut rows: Vec<(Uuid, u64)> = sample
        .into_iter()
        .map(|(_, id, offset)| (id, offset))
        .collect();
    rows.sort();
    let mut file =
        File::open(expected_path).map_err(|e| format!("{}: {e}", expected_path.display()))?;
    let mut tally = Tally::default();
    for chunk in rows.chunks(FETCH_CHUNK) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
        let answer = api
            .query(
                auth,
                &QueryRequest {
                    query: json!({ ns: {"$": {"where": {"id": {"$in": ids}}}} }),
                    inference: false,
                },
            )
            .map_err(|e| format!("query of the {ns} sample failed: {e}"))?;
        let Some(found) = answer.get(ns).and_then(Value::as_array) else {
            return Err(format!(
                "the answer for the {ns} sample has no list of rows"
            ));
        };
        let by_id: HashMap<Uuid, &Map<String, Value>> = found
            .iter()
            .filter_map(|row| {
                let map = row.as_object()?;
                let (id, _) = parse_uuid(map.get("id")?.as_str()?)?;
                Some((id, map))
            })
            .collect();
        for (id, offset) in chunk {
            let line = read_line_at(&mut file, *offset)
                .map_err(|e| format!("{}: {e}", expected_path.display()))?;
            let difference = match (
                serde_json::from_slice::<Map<String, Value>>(&line),
                by_id.get(id),
            ) {
                (Err(error), _) => {
                    Some(format!("the expected row cannot be read as JSON: {error}"))
                }
                (_, None) => Some("the row is not in the target".to_string()),
                (Ok(expected), Some(actual)) => {
                    compare_row(spec, &expected, actual, lenient.contains(id))
                }
            };
            tally.check(difference.is_none(), id, || {
                format!("{ns} {id}: {}", difference.clone().unwrap_or_default())
            });
        }
    }
    Ok(tally)
}

fn read_line_at(file: &mut File, offset: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(&mut *file);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

/// The first difference between an expected row and the target's, if any. Every expected
/// attribute must be equal; a thread V1 attribute the migration did not write must be absent
/// or null (unless the row existed before the migration: `lenient`).
fn compare_row(
    spec: &Spec,
    expected: &Map<String, Value>,
    actual: &Map<String, Value>,
    lenient: bool,
) -> Option<String> {
    for (attr, want) in expected {
        if attr == "id" {
            continue;
        }
        let got = actual.get(attr).unwrap_or(&Value::Null);
        let same = if spec.dates.contains(&attr.as_str()) {
            same_instant(want, got)
        } else {
            json_eq(want, got)
        };
        if !same {
            return Some(format!(
                "{attr} is {} instead of {}",
                show(actual.get(attr)),
                show(Some(want))
            ));
        }
    }
    if !lenient {
        for attr in spec.attrs {
            if !expected.contains_key(*attr) && present(actual, attr) {
                return Some(format!(
                    "{attr} is {} but the migration wrote none",
                    show(actual.get(*attr))
                ));
            }
        }
    }
    None
}

/// Checks one namespace; `Err` when it could not be checked at all.
#[allow(clippy::too_many_arguments)]
fn check_namespace(
    api: &dyn InstantApi,
    auth: &AppAuth,
    config: &VerifyConfig,
    inputs: &Inputs,
    carry: &mut Carry,
    spec: &'static Spec,
    work: &Path,
    progress: &mut dyn FnMut(VerifyProgress<'_>),
) -> Result<Vec<Invariant>, String> {
    let ns = spec.ns;
    let expected_path = config.transform_dir.join(ns.file_name());
    let expected = ExpectedCursor::open(expected_path.clone())?;
    let links = LinkCursor::open(config.transform_dir.join("links.ndjson"), ns)?;
    let sorter = read_target(
        api,
        auth,
        spec,
        config.page_size,
        work,
        config.sort_budget,
        progress,
    )?;
    let keyed = matches!(
        ns,
        TargetNamespace::ThreadThreads
            | TargetNamespace::ThreadContexts
            | TargetNamespace::ThreadParts
    );
    let budget = (config.sort_budget / 4).max(1 << 20);
    let mut merge = Merge {
        spec,
        inputs,
        carry,
        seed: &config.seed,
        sample_size: config.sample_size,
        expected,
        links,
        previous: None,
        duplicates: 0,
        expected_rows: 0,
        actual_rows: 0,
        allowed_extra: 0,
        missing: Tally::default(),
        extra: Tally::default(),
        required: Tally::default(),
        created_at: Tally::default(),
        idx: Tally::default(),
        link_tallies: spec
            .links
            .iter()
            .map(|label| (label.to_string(), Tally::default()))
            .collect(),
        keys: keyed.then(|| KeyIndex::new(work, &format!("{ns}.keys"), budget)),
        legacy_key: Tally::default(),
        thread_key: Tally::default(),
        denormalised: Tally::default(),
        key_format: Tally::default(),
        thread_keys: HashMap::new(),
        sample: BinaryHeap::new(),
    };
    let mut failure = None;
    sorter
        .drain(|key, line| {
            merge.actual(key, line).map_err(|e| {
                failure = Some(e.clone());
                io::Error::other(e)
            })
        })
        .map_err(|e| {
            failure
                .take()
                .unwrap_or_else(|| format!("sorting {ns}: {e}"))
        })?;
    merge.finish()?;

    let mut out = Vec::new();
    let id = |name: &str| format!("{name}.{ns}");

    // count: every expected row present, nothing else (but rows that predate the migration).
    let missing = std::mem::take(&mut merge.missing);
    let extra = std::mem::take(&mut merge.extra);
    let mut sample = missing.sample.clone();
    sample.extend(extra.sample.iter().cloned());
    sample.truncate(MAX_SAMPLE_IDS);
    let count_pass = missing.offenders == 0 && extra.offenders == 0;
    out.push(Invariant {
        id: id("count"),
        status: if count_pass {
            Status::Pass
        } else {
            Status::Fail
        },
        expected: json!(merge.expected_rows + merge.allowed_extra),
        actual: json!(merge.actual_rows),
        sample,
        detail: (!count_pass).then(|| {
            let mut parts = Vec::new();
            if missing.offenders > 0 {
                parts.push(format!("{} expected rows missing", missing.offenders));
            }
            if extra.offenders > 0 {
                parts.push(format!(
                    "{} rows not in the transform output",
                    extra.offenders
                ));
            }
            let first = missing.detail.or(extra.detail).unwrap_or_default();
            format!("{} (first: {first})", parts.join(", "))
        }),
    });
    out.push(std::mem::take(&mut merge.required).finish(&id("required")));
    if spec.attrs.contains(&"createdAt") {
        out.push(
            std::mem::take(&mut merge.created_at).finish(&format!("preserved.{ns}.createdAt")),
        );
    }
    if spec.attrs.contains(&"idx") {
        out.push(std::mem::take(&mut merge.idx).finish(&format!("preserved.{ns}.idx")));
    }
    for (label, tally) in std::mem::take(&mut merge.link_tallies) {
        out.push(tally.finish(&format!("links.{ns}.{label}")));
    }
    if let Some(keys) = merge.keys.take() {
        let tally = keys
            .finish()
            .map_err(|e| format!("sorting keys of {ns}: {e}"))?;
        out.push(tally.finish(&format!("keys.{ns}.unique")));
    }
    match ns {
        TargetNamespace::ThreadThreads => {
            merge.carry.thread_keys = Some(std::mem::take(&mut merge.thread_keys));
        }
        TargetNamespace::ThreadContexts => {
            let mut legacy = std::mem::take(&mut merge.legacy_key);
            if let Err(reason) = &inputs.legacy_keys {
                legacy.error = Some(reason.clone());
            } else if let Err(reason) = &inputs.key_conflicts {
                legacy.error = Some(reason.clone());
            }
            out.push(legacy.finish("keys.thread_contexts.legacy"));
            let mut thread_key = std::mem::take(&mut merge.thread_key);
            if merge.carry.thread_keys.is_none() {
                thread_key.error = Some(format!(
                    "thread_threads could not be read: {}",
                    merge.carry.thread_error.clone().unwrap_or_default()
                ));
            } else if let Err(reason) = &inputs.key_conflicts {
                thread_key.error = Some(reason.clone());
            }
            out.push(thread_key.finish("keys.thread_threads.context"));
        }
        TargetNamespace::ThreadSteps => {
            out.push(
                std::mem::take(&mut merge.denormalised).finish("links.thread_steps.executionId"),
            );
        }
        TargetNamespace::ThreadParts => {
            out.push(std::mem::take(&mut merge.denormalised).finish("links.thread_parts.stepId"));
            out.push(std::mem::take(&mut merge.key_format).finish("keys.thread_parts.format"));
        }
        _ => {}
    }

    let sample_id = format!("sample.{ns}");
    if config.sample_size == 0 {
        out.push(Invariant::error(
            &sample_id,
            "the sample size is 0: no row compared",
        ));
    } else {
        let picked = std::mem::take(&mut merge.sample).into_vec();
        let lenient = inputs.preexisting(ns).cloned().unwrap_or_default();
        let tally = compare_sample(api, auth, spec, &expected_path, picked, &lenient)?;
        out.push(tally.finish(&sample_id));
    }
    Ok(out)
}

fn accounting(inputs: &Inputs) -> Vec<Invariant> {
    LegacyNamespace::ALL
        .iter()
        .map(|ns| {
            let id = format!("accounting.{ns}");
            let (transform, extracted) = match (&inputs.transform, &inputs.extracted) {
                (Err(reason), _) | (_, Err(reason)) => return Invariant::error(&id, reason),
                (Ok(transform), Ok(extracted)) => (transform, extracted),
            };
            let got = |map: &BTreeMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
            let rows = got(extracted, ns.as_str());
            let input = got(&transform.input, ns.as_str());
            let output = got(&transform.output, ns.target().as_str());
            let rejected = got(&transform.rejected_by_namespace, ns.as_str());
            let pass = rows == input && input == output + rejected;
            Invariant {
                id,
                status: if pass { Status::Pass } else { Status::Fail },
                expected: json!(rows),
                actual: json!(input),
                sample: Vec::new(),
                detail: (!pass).then(|| {
                    format!(
                        "01-extract holds {rows} {ns} rows; the transform read {input} and accounts for {output} migrated + {rejected} rejected"
                    )
                }),
            }
        })
        .collect()
}

/// Runs every check and writes `verify.result.json` into `config.out_dir`.
pub fn verify(
    api: &dyn InstantApi,
    auth: &AppAuth,
    config: &VerifyConfig,
    progress: &mut dyn FnMut(VerifyProgress<'_>),
) -> Result<VerifyResult, VerifyError> {
    let out_dir = &config.out_dir;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let work = WorkDir(out_dir.join(format!(".work-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(io_err(&work.0))?;

    let inputs = Inputs::load(config);
    let mut found: HashMap<String, Invariant> = HashMap::new();
    for invariant in accounting(&inputs) {
        found.insert(invariant.id.clone(), invariant);
    }
    let mut extra_ids = Vec::new();
    let mut carry = Carry::default();
    for spec in &SPECS {
        let ids = spec_ids(spec);
        match check_namespace(
            api, auth, config, &inputs, &mut carry, spec, &work.0, progress,
        ) {
            Ok(invariants) => {
                for invariant in invariants {
                    if !ids.contains(&invariant.id) {
                        extra_ids.push(invariant.id.clone());
                    }
                    found.insert(invariant.id.clone(), invariant);
                }
            }
            Err(reason) => {
                if spec.ns == TargetNamespace::ThreadThreads {
                    carry.thread_error = Some(reason.clone());
                }
                for id in ids {
                    found.insert(id.clone(), Invariant::error(&id, &reason));
                }
            }
        }
    }
    let mut ids = invariant_ids();
    extra_ids.sort();
    ids.extend(extra_ids);
    let invariants: Vec<Invariant> = ids
        .iter()
        .map(|id| {
            found
                .remove(id)
                .unwrap_or_else(|| Invariant::error(id, "not evaluated"))
        })
        .collect();
    let result = VerifyResult {
        ok: invariants
            .iter()
            .all(|invariant| invariant.status == Status::Pass),
        invariants,
        sampling: Sampling {
            per_namespace: config.sample_size,
            seed: config.seed.clone(),
        },
    };
    let path = out_dir.join(RESULT_FILE);
    let mut bytes = serde_json::to_vec_pretty(&result).expect("the result serialises");
    bytes.push(b'\n');
    write_atomic(&path, &bytes).map_err(io_err(&path))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use instant_schema::BuiltinSchema;

    #[test]
    fn specs_match_thread_v1() {
        let schema = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
        for spec in &SPECS {
            let entity = &schema.entities[spec.ns.as_str()];
            let attrs: Vec<&str> = entity.attrs.keys().map(String::as_str).collect();
            assert_eq!(attrs, spec.attrs, "{}", spec.ns);
            for (name, attr) in &entity.attrs {
                assert_eq!(
                    attr.required,
                    spec.required.contains(&name.as_str()),
                    "{}.{name} required",
                    spec.ns
                );
                assert_eq!(
                    attr.value_type == instant_schema::ValueType::Json,
                    spec.json.contains(&name.as_str()),
                    "{}.{name} json",
                    spec.ns
                );
                assert_eq!(
                    attr.value_type == instant_schema::ValueType::Date,
                    spec.dates.contains(&name.as_str()),
                    "{}.{name} date",
                    spec.ns
                );
            }
            for label in spec.links {
                let declared = schema.links.values().any(|link| {
                    link.forward.on == spec.ns.as_str() && link.forward.label == *label
                });
                let esolbay = matches!(*label, "whatsappMessages" | "emails");
                assert!(
                    declared || esolbay,
                    "{}.{label} is not a thread V1 link",
                    spec.ns
                );
            }
        }
    }

    #[test]
    fn invariant_ids_are_unique_and_stable() {
        let ids = invariant_ids();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        expect_test::expect![[r#"
            accounting.context_contexts accounting.context_events accounting.story_executions accounting.story_steps accounting.story_parts
            count.thread_threads required.thread_threads preserved.thread_threads.createdAt keys.thread_threads.unique sample.thread_threads
            count.thread_contexts required.thread_contexts preserved.thread_contexts.createdAt links.thread_contexts.thread links.thread_contexts.currentExecution keys.thread_contexts.unique keys.thread_contexts.legacy keys.thread_threads.context sample.thread_contexts
            count.thread_executions required.thread_executions preserved.thread_executions.createdAt links.thread_executions.context links.thread_executions.thread links.thread_executions.trigger links.thread_executions.reaction sample.thread_executions
            count.thread_items required.thread_items preserved.thread_items.createdAt links.thread_items.context links.thread_items.thread links.thread_items.execution links.thread_items.whatsappMessages links.thread_items.emails sample.thread_items
            count.thread_steps required.thread_steps preserved.thread_steps.createdAt links.thread_steps.execution links.thread_steps.executionId sample.thread_steps
            count.thread_parts required.thread_parts preserved.thread_parts.idx links.thread_parts.step links.thread_parts.stepId keys.thread_parts.format keys.thread_parts.unique sample.thread_parts
        "#]]
        .assert_eq(&group(&ids));
    }

    fn group(ids: &[String]) -> String {
        let mut out = String::new();
        let mut last = String::new();
        for id in ids {
            let head = if id.starts_with("accounting.") {
                "accounting".to_string()
            } else {
                id.split('.').nth(1).unwrap_or_default().to_string()
            };
            let head = match id.as_str() {
                "keys.thread_threads.context" => "thread_contexts".to_string(),
                _ => head,
            };
            if !out.is_empty() {
                out.push(if head == last { ' ' } else { '\n' });
            }
            last = head;
            out.push_str(id);
        }
        out.push('\n');
        out
    }

    #[test]
    fn repeated_keys_offend_with_every_row_that_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = KeyIndex::new(dir.path(), "keys", 1024);
        for (key, id) in [("a", "id-1"), ("b", "id-2"), ("a", "id-3"), ("c", "id-4")] {
            keys.push(key, id).unwrap();
        }
        let invariant = keys.finish().unwrap().finish("keys.thread_parts.unique");
        assert_eq!(invariant.status, Status::Fail);
        assert_eq!((invariant.expected, invariant.actual), (json!(4), json!(3)));
        assert_eq!(invariant.sample, ["id-1", "id-3"]);
        assert_eq!(
            invariant.detail.as_deref(),
            Some("key \"a\" is held by 2 rows")
        );
    }

    #[test]
    fn values_compare_as_the_database_keeps_them() {
        assert!(same_instant(
            &json!("2024-03-01T10:00:00.000Z"),
            &json!(1_709_287_200_000i64)
        ));
        assert!(!same_instant(
            &json!("2024-03-01T10:00:00.001Z"),
            &json!(1_709_287_200_000i64)
        ));
        assert!(json_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert_eq!(
            link_ids(Some(
                &json!([{"id": "0190a3a4-8f7e-4c2a-9b1d-3e5f6a7b8c9d"}])
            )),
            [Uuid::parse_str("0190a3a4-8f7e-4c2a-9b1d-3e5f6a7b8c9d").unwrap()]
        );
        assert_eq!(link_ids(Some(&json!([]))), Vec::<Uuid>::new());
    }
}
