//! The tx plan: `02-transform/` turned into Instant transact steps, batched, canonically
//! ordered and checksummed, in `03-apply/tx-plan.ndjson` (one batch per line,
//! `{"batch": n, "steps": [...]}`, batches numbered from 1) with its summary
//! `03-apply/tx-plan.json` (`{steps, batches, sha256, stepsByOp, stepsByNamespace, batchSize}`,
//! sha256 of the plan file's bytes).
//!
//! What a built plan contains, and in which order (the same input gives the same bytes):
//!
//! 1. **Entities**: one `["update", ns, id, {attrs}]` per target row (an upsert: no options),
//!    attributes named as thread V1 names them, `id` only in the step, values copied verbatim
//!    from the row text. Namespaces in dependency order ([`ENTITY_ORDER`]: threads, contexts,
//!    executions, items, steps, parts), rows by id within each.
//! 2. **Links**, in their own batches after every entity batch: one
//!    `["link", ns, id, {label: target | [targets]}]` per source entity, labels and targets
//!    in order (a single target is a string, several an array; the server accepts both), at
//!    most [`MAX_LINK_TARGETS`] targets per step. Sources in `links.ndjson` order: source
//!    namespace (alphabetical), source id, label, target id.
//!
//! Links get their own phase so that, applied with several batches in flight, a link is only
//! ever sent once every entity of the plan exists (`apply` waits for one phase to finish before
//! starting the next). Nothing is ever deleted: a built plan holds `update` and `link` only.
//!
//! [`check_plan`] reads any plan file (built here or given by hand) in one streaming pass:
//! shape of every batch and step, the op policy below, the sha256, counts. Op policy:
//!
//! | op | verdict |
//! |---|---|
//! | `update` (no options, or `{"upsert": true}`), `link` | accepted: idempotent upserts |
//! | `delete`, `unlink`, `merge` | destructive (they remove entities, links or, with a `null`, keys): refused unless `allow_destructive` |
//! | `create`, `update` with `{"upsert": false}`, `add-attr`, `delete-attr`, `ruleParams`, anything else | always refused: not idempotent (a resumed batch would fail), or a schema change (those go through the gated schema push), or meaningless for an admin |
//!
//! Entity ids must be UUIDs (no lookups: a lookup that matches nothing creates an entity with
//! a random id, so a re-run would not be an upsert), link targets too; system namespaces
//! (`$…`) are refused.
//!
//! Memory: rows and links are streamed; only the current batch is held.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::io::{open_ndjson, AtomicFile};
use crate::model::{LinkIntent, TargetNamespace};

/// Steps per batch unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Most targets one link step carries; a source with more gets several steps.
pub const MAX_LINK_TARGETS: usize = 100;
/// The plan file in `03-apply/`.
pub const PLAN_FILE: &str = "tx-plan.ndjson";
/// The plan summary in `03-apply/`.
pub const SUMMARY_FILE: &str = "tx-plan.json";
/// Link intents in `02-transform/`.
pub const LINKS_FILE: &str = "links.ndjson";

/// Entity namespaces in dependency order: a row comes after the rows it refers to.
pub const ENTITY_ORDER: [TargetNamespace; 6] = [
    TargetNamespace::ThreadThreads,
    TargetNamespace::ThreadContexts,
    TargetNamespace::ThreadExecutions,
    TargetNamespace::ThreadItems,
    TargetNamespace::ThreadSteps,
    TargetNamespace::ThreadParts,
];

/// Link labels outside thread V1 that the transform re-creates on `thread_items` (the esolbay
/// app declares them next to the thread domain).
pub const ESOLBAY_ITEM_LABELS: [&str; 2] = ["whatsappMessages", "emails"];

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Steps per batch (at least 1).
    pub batch_size: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// `tx-plan.json`, and the `--json` summary of `threadmig tx-plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub steps: u64,
    pub batches: u64,
    /// sha256 of `tx-plan.ndjson`'s bytes, lowercase hex.
    pub sha256: String,
    /// Steps per op (`update`, `link`, …).
    pub steps_by_op: BTreeMap<String, u64>,
    /// Steps per namespace, then per op.
    pub steps_by_namespace: BTreeMap<String, BTreeMap<String, u64>>,
    /// Steps per batch the plan was built with.
    pub batch_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A row, link or batch that cannot be planned: file, 1-based line, what is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A step whose op is never applied (see the module docs).
    #[error("{}:{line}: batch {batch}, step {step}: {message}", path.display())]
    Unsupported {
        path: PathBuf,
        line: u64,
        batch: u64,
        step: usize,
        message: String,
    },
    /// Destructive steps without `allow_destructive`.
    #[error(
        "{}: the plan holds {total} destructive step(s) ({by_op}; first in batch {first_batch}): \
         refused without --allow-destructive",
        path.display()
    )]
    Destructive {
        path: PathBuf,
        total: u64,
        by_op: String,
        first_batch: u64,
    },
    #[error("{0}")]
    Usage(String),
    /// `03-apply/` holds the journal of another plan: replacing the plan would orphan it.
    #[error(
        "{}: records batches of plan {journal_sha256}, and the new plan is {new_sha256}: \
         use a new run id, or move the journal away if that plan will never be resumed",
        journal.display()
    )]
    JournalOfAnotherPlan {
        journal: PathBuf,
        journal_sha256: String,
        new_sha256: String,
    },
    #[error("the thread V1 schema: {0}")]
    Schema(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Building

/// Attribute names and link labels thread V1 declares, per target namespace.
struct Vocabulary {
    attrs: BTreeMap<&'static str, Vec<String>>,
    labels: BTreeMap<&'static str, Vec<String>>,
}

impl Vocabulary {
    fn thread_v1() -> Result<Vocabulary, PlanError> {
        let loaded = instant_schema::BuiltinSchema::ThreadV1
            .load()
            .map_err(|error| PlanError::Schema(error.to_string()))?;
        let schema = loaded.dsl();
        let mut attrs = BTreeMap::new();
        let mut labels: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for ns in TargetNamespace::ALL {
            let entity = schema.entities.get(ns.as_str()).ok_or_else(|| {
                PlanError::Schema(format!("{ns} is not declared in builtin:thread-v1"))
            })?;
            attrs.insert(ns.as_str(), entity.attrs.keys().cloned().collect());
            let mut own: Vec<String> = schema
                .links
                .values()
                .filter(|link| link.forward.on == ns.as_str())
                .map(|link| link.forward.label.clone())
                .collect();
            if ns == TargetNamespace::ThreadItems {
                own.extend(ESOLBAY_ITEM_LABELS.iter().map(|label| label.to_string()));
            }
            labels.insert(ns.as_str(), own);
        }
        Ok(Vocabulary { attrs, labels })
    }
}

/// Accumulates steps into batches and writes them, hashing as it goes.
struct BatchWriter {
    file: AtomicFile,
    path: PathBuf,
    hasher: Sha256,
    batch_size: usize,
    current: Vec<u8>,
    in_batch: usize,
    batches: u64,
    steps: u64,
    steps_by_op: BTreeMap<String, u64>,
    steps_by_namespace: BTreeMap<String, BTreeMap<String, u64>>,
}

impl BatchWriter {
    fn push(&mut self, op: &str, ns: &str, step: &[u8]) -> Result<(), PlanError> {
        if self.in_batch == self.batch_size {
            self.flush()?;
        }
        if self.in_batch > 0 {
            self.current.push(b',');
        }
        self.current.extend_from_slice(step);
        self.in_batch += 1;
        self.steps += 1;
        *self.steps_by_op.entry(op.to_string()).or_default() += 1;
        *self
            .steps_by_namespace
            .entry(ns.to_string())
            .or_default()
            .entry(op.to_string())
            .or_default() += 1;
        Ok(())
    }

    /// Ends the current batch (a phase boundary, or the end of the plan).
    fn flush(&mut self) -> Result<(), PlanError> {
        if self.in_batch == 0 {
            return Ok(());
        }
        self.batches += 1;
        let mut line = Vec::with_capacity(self.current.len() + 32);
        write!(line, "{{\"batch\":{},\"steps\":[", self.batches).expect("writes to a Vec");
        line.extend_from_slice(&self.current);
        line.extend_from_slice(b"]}\n");
        self.hasher.update(&line);
        self.file
            .writer()
            .write_all(&line)
            .map_err(io_err(&self.path))?;
        self.current.clear();
        self.in_batch = 0;
        Ok(())
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// Builds the plan of the transform output in `transform_dir` and writes `tx-plan.ndjson` and
/// `tx-plan.json` into `apply_dir` (created), atomically. Refuses to replace the plan of a
/// run whose journal records another plan.
pub fn build_plan(
    transform_dir: &Path,
    apply_dir: &Path,
    options: &PlanOptions,
) -> Result<PlanSummary, PlanError> {
    if options.batch_size == 0 {
        return Err(PlanError::Usage("the batch size must be at least 1".into()));
    }
    if !transform_dir.is_dir() {
        return Err(PlanError::Usage(format!(
            "{}: no transform output (run `threadmig transform` first)",
            transform_dir.display()
        )));
    }
    let vocabulary = Vocabulary::thread_v1()?;
    std::fs::create_dir_all(apply_dir).map_err(io_err(apply_dir))?;
    let plan_path = apply_dir.join(PLAN_FILE);
    let mut writer = BatchWriter {
        file: AtomicFile::create(&plan_path).map_err(io_err(&plan_path))?,
        path: plan_path.clone(),
        hasher: Sha256::new(),
        batch_size: options.batch_size,
        current: Vec::new(),
        in_batch: 0,
        batches: 0,
        steps: 0,
        steps_by_op: BTreeMap::new(),
        steps_by_namespace: BTreeMap::new(),
    };

    for ns in ENTITY_ORDER {
        let path = transform_dir.join(ns.file_name());
        if !path.is_file() {
            return Err(PlanError::Usage(format!(
                "{}: missing (an incomplete transform output; run `threadmig transform` again)",
                path.display()
            )));
        }
        plan_rows(ns, &path, &vocabulary, &mut writer)?;
    }
    writer.flush()?;

    let links_path = transform_dir.join(LINKS_FILE);
    if !links_path.is_file() {
        return Err(PlanError::Usage(format!(
            "{}: missing (an incomplete transform output; run `threadmig transform` again)",
            links_path.display()
        )));
    }
    plan_links(&links_path, &vocabulary, &mut writer)?;
    writer.flush()?;

    let BatchWriter {
        file,
        hasher,
        batches,
        steps,
        steps_by_op,
        steps_by_namespace,
        ..
    } = writer;
    let summary = PlanSummary {
        steps,
        batches,
        sha256: hex(&hasher.finalize()),
        steps_by_op,
        steps_by_namespace,
        batch_size: options.batch_size,
    };
    let plan = file.finish().map_err(io_err(&plan_path))?;

    if let Some(journal_sha256) = crate::apply::journal_plan(apply_dir)
        .map_err(|error| PlanError::Usage(error.to_string()))?
    {
        if journal_sha256 != summary.sha256 {
            return Err(PlanError::JournalOfAnotherPlan {
                journal: apply_dir.join(crate::apply::JOURNAL_FILE),
                journal_sha256,
                new_sha256: summary.sha256,
            });
        }
    }

    let summary_path = apply_dir.join(SUMMARY_FILE);
    let mut file = AtomicFile::create(&summary_path).map_err(io_err(&summary_path))?;
    let mut bytes = serde_json::to_vec_pretty(&summary).expect("the summary serialises");
    bytes.push(b'\n');
    file.writer()
        .write_all(&bytes)
        .map_err(io_err(&summary_path))?;
    let summary_file = file.finish().map_err(io_err(&summary_path))?;
    // The plan first: nothing trusts the summary, every reader re-hashes the plan.
    plan.commit().map_err(io_err(&plan_path))?;
    summary_file.commit().map_err(io_err(&summary_path))?;
    Ok(summary)
}

fn plan_rows(
    ns: TargetNamespace,
    path: &Path,
    vocabulary: &Vocabulary,
    writer: &mut BatchWriter,
) -> Result<(), PlanError> {
    let known = &vocabulary.attrs[ns.as_str()];
    let mut reader = open_ndjson(path).map_err(|error| PlanError::Usage(error.to_string()))?;
    let mut previous: Option<Uuid> = None;
    let mut step = Vec::with_capacity(64 * 1024);
    let ns_json = json_string(ns.as_str());
    let mut line_no = 0u64;
    while let Some((offset, text)) = reader.next_row().map_err(io_err(path))? {
        // The transform writes no blank lines, so rows are lines.
        line_no += 1;
        let invalid = |message: String| PlanError::Invalid {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("{message} (byte {offset})"),
        };
        let row: IndexMap<String, &RawValue> = serde_json::from_slice(text)
            .map_err(|error| invalid(format!("not a JSON object: {error}")))?;
        let id = row
            .get("id")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .ok_or_else(|| invalid("the row has no string `id`".into()))?;
        let id = Uuid::parse_str(&id).map_err(|_| invalid(format!("id {id:?} is not a UUID")))?;
        if let Some(previous) = previous {
            if id <= previous {
                return Err(invalid(format!(
                    "id {id} is not after {previous}: rows must be in id order, each id once \
                     (run `threadmig transform` again)"
                )));
            }
        }
        previous = Some(id);
        step.clear();
        write!(step, "[\"update\",{ns_json},\"{id}\",{{").expect("writes to a Vec");
        let mut first = true;
        for (name, value) in &row {
            if name == "id" {
                continue;
            }
            if !known.iter().any(|attr| attr == name) {
                return Err(invalid(format!(
                    "attribute {name:?} is not declared on {ns} in thread V1"
                )));
            }
            if !first {
                step.push(b',');
            }
            first = false;
            step.extend_from_slice(json_string(name).as_bytes());
            step.push(b':');
            step.extend_from_slice(value.get().as_bytes());
        }
        step.extend_from_slice(b"}]");
        writer.push("update", ns.as_str(), &step)?;
    }
    Ok(())
}

/// One link step being assembled: a source entity and its targets per label.
struct LinkStep {
    ns: TargetNamespace,
    id: Uuid,
    labels: Vec<(String, Vec<Uuid>)>,
    targets: usize,
}

impl LinkStep {
    fn render(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 + self.targets * 40);
        let _ = write!(
            out,
            "[\"link\",{},\"{}\",{{",
            json_string(self.ns.as_str()),
            self.id
        );
        for (index, (label, targets)) in self.labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(&json_string(label));
            out.push(':');
            if let [single] = targets.as_slice() {
                let _ = write!(out, "\"{single}\"");
            } else {
                out.push('[');
                for (i, target) in targets.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"{target}\"");
                }
                out.push(']');
            }
        }
        out.push_str("}]");
        out.into_bytes()
    }
}

fn plan_links(
    path: &Path,
    vocabulary: &Vocabulary,
    writer: &mut BatchWriter,
) -> Result<(), PlanError> {
    let mut reader = open_ndjson(path).map_err(|error| PlanError::Usage(error.to_string()))?;
    let mut previous: Option<LinkIntent> = None;
    let mut pending: Option<LinkStep> = None;
    let mut line_no = 0u64;
    let emit = |step: LinkStep, writer: &mut BatchWriter| -> Result<(), PlanError> {
        writer.push("link", step.ns.as_str(), &step.render())
    };
    while let Some((offset, text)) = reader.next_row().map_err(io_err(path))? {
        line_no += 1;
        let invalid = |message: String| PlanError::Invalid {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("{message} (byte {offset})"),
        };
        let link: LinkIntent = serde_json::from_slice(text)
            .map_err(|error| invalid(format!("not a link intent: {error}")))?;
        if !vocabulary.labels[link.from_ns.as_str()].contains(&link.label) {
            return Err(invalid(format!(
                "{:?} is not a link label of {} in thread V1",
                link.label, link.from_ns
            )));
        }
        match &previous {
            Some(prev) if *prev == link => continue,
            Some(prev) if *prev > link => {
                return Err(invalid(format!(
                    "link {} {}.{} -> {} is not after {} {}.{} -> {}: links must be in \
                     canonical order (run `threadmig transform` again)",
                    link.from_ns,
                    link.from_id,
                    link.label,
                    link.to_id,
                    prev.from_ns,
                    prev.from_id,
                    prev.label,
                    prev.to_id
                )))
            }
            _ => {}
        }
        let same_source = pending
            .as_ref()
            .is_some_and(|step| step.ns == link.from_ns && step.id == link.from_id);
        if !same_source
            || pending
                .as_ref()
                .is_some_and(|s| s.targets == MAX_LINK_TARGETS)
        {
            if let Some(step) = pending.take() {
                emit(step, writer)?;
            }
            pending = Some(LinkStep {
                ns: link.from_ns,
                id: link.from_id,
                labels: Vec::new(),
                targets: 0,
            });
        }
        let step = pending.as_mut().expect("set above");
        match step.labels.last_mut() {
            Some((label, targets)) if *label == link.label => targets.push(link.to_id),
            _ => step.labels.push((link.label.clone(), vec![link.to_id])),
        }
        step.targets += 1;
        previous = Some(link);
    }
    if let Some(step) = pending.take() {
        emit(step, writer)?;
    }
    Ok(())
}

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Reads `tx-plan.json` (informative only: the plan file is what counts).
pub fn read_summary(apply_dir: &Path) -> Result<Option<PlanSummary>, PlanError> {
    let path = apply_dir.join(SUMMARY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| PlanError::Invalid {
                path,
                line: error.line() as u64,
                message: error.to_string(),
            }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PlanError::Io {
            path,
            source: error,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Checking any plan file

/// The ops a step may carry, as bits of a batch's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Update,
    Link,
    Merge,
    Unlink,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Update => "update",
            Op::Link => "link",
            Op::Merge => "merge",
            Op::Unlink => "unlink",
            Op::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Op> {
        [Op::Update, Op::Link, Op::Merge, Op::Unlink, Op::Delete]
            .into_iter()
            .find(|op| op.as_str() == text)
    }

    /// Removes entities, links or keys.
    pub fn is_destructive(self) -> bool {
        matches!(self, Op::Merge | Op::Unlink | Op::Delete)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One batch of a checked plan: what apply needs to run it and to detect that the file
/// changed after the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub batch: u64,
    pub steps: u32,
    /// The ops of its steps, one bit per [`Op`]. Batches of different kinds are never in
    /// flight together: apply finishes one run of equal kinds before starting the next.
    pub kind: u8,
    /// sha256 of the batch's line (newline included).
    pub digest: [u8; 32],
}

/// A plan file, checked.
#[derive(Debug, Clone)]
pub struct PlanCheck {
    pub steps: u64,
    pub sha256: String,
    pub steps_by_op: BTreeMap<String, u64>,
    pub steps_by_namespace: BTreeMap<String, BTreeMap<String, u64>>,
    /// Steps in the largest batch.
    pub largest_batch: u32,
    /// Destructive steps per op (empty for a built plan).
    pub destructive: BTreeMap<String, u64>,
    pub batches: Vec<BatchInfo>,
}

impl PlanCheck {
    pub fn batch_count(&self) -> u64 {
        self.batches.len() as u64
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine<'a> {
    batch: u64,
    #[serde(borrow)]
    steps: Vec<&'a RawValue>,
}

/// Reads and checks a plan file in one streaming pass (see the module docs for the policy).
pub fn check_plan(path: &Path, allow_destructive: bool) -> Result<PlanCheck, PlanError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut line = Vec::with_capacity(1 << 20);
    let mut check = PlanCheck {
        steps: 0,
        sha256: String::new(),
        steps_by_op: BTreeMap::new(),
        steps_by_namespace: BTreeMap::new(),
        largest_batch: 0,
        destructive: BTreeMap::new(),
        batches: Vec::new(),
    };
    let mut first_destructive: Option<u64> = None;
    let mut line_no = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(io_err(path))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        hasher.update(&line);
        let invalid = |message: String| PlanError::Invalid {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        if line.last() != Some(&b'\n') {
            return Err(invalid(
                "the last line does not end with a newline (a truncated plan file)".into(),
            ));
        }
        let parsed: BatchLine = serde_json::from_slice(&line)
            .map_err(|error| invalid(format!("not a batch {{\"batch\", \"steps\"}}: {error}")))?;
        let expected = check.batches.len() as u64 + 1;
        if parsed.batch != expected {
            return Err(invalid(format!(
                "batch {} where batch {expected} was expected (batches are numbered 1, 2, … in order)",
                parsed.batch
            )));
        }
        if parsed.steps.is_empty() {
            return Err(invalid(format!("batch {} has no steps", parsed.batch)));
        }
        let steps = u32::try_from(parsed.steps.len())
            .map_err(|_| invalid(format!("batch {} has too many steps", parsed.batch)))?;
        let mut kind = 0u8;
        for (index, raw) in parsed.steps.iter().enumerate() {
            let (op, ns) = check_step(raw).map_err(|message| PlanError::Unsupported {
                path: path.to_path_buf(),
                line: line_no,
                batch: parsed.batch,
                step: index + 1,
                message,
            })?;
            kind |= op.bit();
            check.steps += 1;
            *check.steps_by_op.entry(op.as_str().into()).or_default() += 1;
            *check
                .steps_by_namespace
                .entry(ns)
                .or_default()
                .entry(op.as_str().into())
                .or_default() += 1;
            if op.is_destructive() {
                *check.destructive.entry(op.as_str().into()).or_default() += 1;
                first_destructive.get_or_insert(parsed.batch);
            }
        }
        check.largest_batch = check.largest_batch.max(steps);
        check.batches.push(BatchInfo {
            batch: parsed.batch,
            steps,
            kind,
            digest: Sha256::digest(&line).into(),
        });
    }
    check.sha256 = hex(&hasher.finalize());
    if !allow_destructive {
        if let Some(first_batch) = first_destructive {
            return Err(PlanError::Destructive {
                path: path.to_path_buf(),
                total: check.destructive.values().sum(),
                by_op: check
                    .destructive
                    .iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                first_batch,
            });
        }
    }
    Ok(check)
}

/// The digest of one plan line, as [`BatchInfo::digest`] holds it.
pub fn line_digest(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

/// Checks one step; returns its op and namespace, or why it is refused.
fn check_step(raw: &RawValue) -> Result<(Op, String), String> {
    let parts: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| format!("not a step array: {}", preview(raw.get())))?;
    let text = |index: usize, what: &str| -> Result<String, String> {
        parts
            .get(index)
            .and_then(|part| serde_json::from_str::<String>(part.get()).ok())
            .ok_or_else(|| format!("element {index} ({what}) must be a string"))
    };
    let name = text(0, "the action")?;
    let Some(op) = Op::parse(&name) else {
        return Err(match name.as_str() {
            "create" => "`create` is not idempotent (a resumed batch would fail on entities it \
                         already created): use `update`"
                .into(),
            "add-attr" | "delete-attr" | "update-attr" => format!(
                "`{name}` changes the schema: schema changes go through the gated schema push"
            ),
            _ => format!("action {name:?} is not applied by threadmig"),
        });
    };
    let ns = text(1, "the namespace")?;
    if ns.is_empty() || ns.starts_with('$') {
        return Err(format!("namespace {ns:?} is not writable by a migration"));
    }
    let id = text(2, "the entity id")?;
    if Uuid::parse_str(&id).is_err() {
        return Err(format!(
            "entity id {id:?} is not a UUID (lookups are refused: one that matches nothing \
             creates an entity with a random id)"
        ));
    }
    let is_object = |index: usize| {
        parts
            .get(index)
            .is_some_and(|part| part.get().starts_with('{'))
    };
    match op {
        Op::Update | Op::Merge => {
            if !is_object(3) {
                return Err(format!("`{name}` needs an attribute object as element 3"));
            }
            match parts.len() {
                4 => {}
                5 => {
                    let options: serde_json::Value = serde_json::from_str(parts[4].get())
                        .map_err(|_| "bad options".to_string())?;
                    if options != serde_json::json!({"upsert": true}) {
                        return Err(format!(
                            "`{name}` with options {options} is not an upsert (only \
                             {{\"upsert\": true}} or none)"
                        ));
                    }
                }
                n => return Err(format!("`{name}` has {n} elements (4 or 5 expected)")),
            }
        }
        Op::Link | Op::Unlink => {
            if parts.len() != 4 || !is_object(3) {
                return Err(format!("`{name}` needs exactly a {{label: target}} object"));
            }
            let links: IndexMap<String, serde_json::Value> =
                serde_json::from_str(parts[3].get()).map_err(|error| error.to_string())?;
            if links.is_empty() {
                return Err(format!("`{name}` without a label"));
            }
            for (label, targets) in &links {
                let ok = match targets {
                    serde_json::Value::String(target) => Uuid::parse_str(target).is_ok(),
                    serde_json::Value::Array(targets) => {
                        !targets.is_empty()
                            && targets.iter().all(|target| {
                                target.as_str().is_some_and(|t| Uuid::parse_str(t).is_ok())
                            })
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "`{name}` label {label:?}: targets must be a UUID or a non-empty array \
                         of UUIDs"
                    ));
                }
            }
        }
        Op::Delete => {
            let ok = parts.len() == 3 || (parts.len() == 4 && parts[3].get() == "null");
            if !ok {
                return Err("`delete` takes no attributes".into());
            }
        }
    }
    Ok((op, ns))
}

fn preview(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    const ID: &str = "0b8a2c4e-1f2d-4c6b-9a8e-7d6c5b4a3f21";

    #[test]
    fn step_policy() {
        let ok = |value| check_step(&raw(value)).map(|(op, _)| op);
        assert_eq!(ok(json!(["update", "t", ID, {"a": 1}])), Ok(Op::Update));
        assert_eq!(
            ok(json!(["update", "t", ID, {}, {"upsert": true}])),
            Ok(Op::Update)
        );
        assert_eq!(ok(json!(["link", "t", ID, {"x": [ID, ID]}])), Ok(Op::Link));
        assert_eq!(ok(json!(["unlink", "t", ID, {"x": ID}])), Ok(Op::Unlink));
        assert_eq!(ok(json!(["delete", "t", ID])), Ok(Op::Delete));
        assert_eq!(ok(json!(["delete", "t", ID, null])), Ok(Op::Delete));
        assert_eq!(ok(json!(["merge", "t", ID, {"a": null}])), Ok(Op::Merge));
        for bad in [
            json!(["create", "t", ID, {}]),
            json!(["update", "t", ID, {}, {"upsert": false}]),
            json!(["update", "t", ["key", "k"], {}]),
            json!(["update", "t", "lookup__key__\"k\"", {}]),
            json!(["update", "$users", ID, {}]),
            json!(["update", "t", ID, []]),
            json!(["link", "t", ID, {"x": "not-a-uuid"}]),
            json!(["link", "t", ID, {"x": []}]),
            json!(["link", "t", ID, {}]),
            json!(["add-attr", {"id": ID}]),
            json!(["ruleParams", "t", ID, {}]),
            json!(["delete", "t", ID, {"a": 1}]),
            json!({"op": "update"}),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad} accepted");
        }
        assert!(Op::Delete.is_destructive() && Op::Unlink.is_destructive());
        assert!(!Op::Update.is_destructive() && !Op::Link.is_destructive());
    }

    #[test]
    fn link_steps_group_labels_and_split_large_sources() {
        let id = Uuid::parse_str(ID).unwrap();
        let step = LinkStep {
            ns: TargetNamespace::ThreadItems,
            id,
            labels: vec![
                ("context".into(), vec![id]),
                ("whatsappMessages".into(), vec![id, id]),
            ],
            targets: 3,
        };
        assert_eq!(
            String::from_utf8(step.render()).unwrap(),
            format!(
                "[\"link\",\"thread_items\",\"{ID}\",{{\"context\":\"{ID}\",\"whatsappMessages\":[\"{ID}\",\"{ID}\"]}}]"
            )
        );
    }
}
