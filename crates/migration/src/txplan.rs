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
//!    executions, items, steps, parts). Within each, rows by id, or, given the run's extract
//!    ([`PlanOptions::source_order`]), in the order the extract lists the legacy rows (the
//!    order they were created in), rows it does not hold after them by id.
//! 2. **Links**, in their own batches after every entity batch: one
//!    `["link", ns, id, {label: target | [targets]}]` per source entity, labels and targets
//!    in order (a single target is a string, several an array; the server accepts both), at
//!    most [`MAX_LINK_TARGETS`] targets per step. Sources in `links.ndjson` order (source
//!    namespace alphabetical, source id, label, target id), or, given the extract, the sources
//!    of each namespace in its order as for rows.
//!
//! The plan is a function of its input (the transform output, and the extract when given): the
//! same input gives the same bytes. Writing rows in their creation order puts each batch's
//! writes on neighbouring pages of the target's indexes, where id order spreads them over the
//! whole app; applied on the embedded engine, one 30,000-event org's plan went in 17.6-20.5 s
//! instead of 21.8-26.2 s.
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
//! Memory: rows and links are read twice, streamed: the first pass keeps each row's (or link
//! source's) place and byte range (32 bytes), the second reads them back in plan order;
//! the source order keeps 12 bytes or so per extracted id. Only the current batch of steps is
//! held.

use std::collections::{BTreeMap, HashMap};
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
    /// The run's `01-extract/`: when given, each namespace's rows, and each namespace's link
    /// sources, are planned in the order the extract lists the legacy rows (rows it does not
    /// hold, such as new threads, after them in id order). Without it, in id order.
    pub source_order: Option<PathBuf>,
}

impl PlanOptions {
    /// The options of a run's plan: its extract gives the order when the run has one (a run
    /// transformed from a dataset file has none, and is planned in id order).
    pub fn in_run(batch_size: usize, extract_dir: PathBuf) -> PlanOptions {
        PlanOptions {
            batch_size,
            source_order: Some(extract_dir).filter(|dir| dir.is_dir()),
        }
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            source_order: None,
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
    let order = match &options.source_order {
        Some(dir) => SourceOrder::read(dir)?,
        None => SourceOrder::default(),
    };
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
        plan_rows(ns, &path, &vocabulary, &order, &mut writer)?;
    }
    writer.flush()?;

    let links_path = transform_dir.join(LINKS_FILE);
    if !links_path.is_file() {
        return Err(PlanError::Usage(format!(
            "{}: missing (an incomplete transform output; run `threadmig transform` again)",
            links_path.display()
        )));
    }
    plan_links(&links_path, &vocabulary, &order, &mut writer)?;
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

/// Where each legacy row stands in the run's extract, by id: the extract lists every namespace
/// in the order its rows were created (`serverCreatedAt`, then id), which is also the order in
/// which the engine laid them out. A plan that writes rows (and links from them) in that order
/// lands each batch's writes on neighbouring pages of the target's indexes instead of pages
/// spread over the whole app (measured on the embedded engine: apply 15-20% faster than in id
/// order). Ids are kept as their first 64 bits: a collision only moves a row within the plan,
/// and the plan stays a function of its input.
#[derive(Debug, Default)]
struct SourceOrder {
    positions: HashMap<u64, u32>,
}

impl SourceOrder {
    /// Every `.ndjson` file of `dir` (by name), each row's `id` in order.
    fn read(dir: &Path) -> Result<SourceOrder, PlanError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        files.retain(|path| path.extension().is_some_and(|ext| ext == "ndjson"));
        files.sort();
        let mut positions = HashMap::new();
        let mut next = 0u32;
        for path in &files {
            let mut reader =
                open_ndjson(path).map_err(|error| PlanError::Usage(error.to_string()))?;
            while let Some((_, text)) = reader.next_row().map_err(io_err(path))? {
                // A row that is not JSON, or has no UUID id, has no place: the transform
                // reports the first and rejects the second.
                if let Ok(id) = row_id(text) {
                    positions.entry(id_bits(&id)).or_insert(next);
                    next = next.saturating_add(1);
                }
            }
        }
        Ok(SourceOrder { positions })
    }

    /// The id's place in the extract; ids the extract does not hold come last.
    fn position(&self, id: &Uuid) -> u32 {
        self.positions
            .get(&id_bits(id))
            .copied()
            .unwrap_or(u32::MAX)
    }
}

fn id_bits(id: &Uuid) -> u64 {
    (id.as_u128() >> 64) as u64
}

/// A stretch of lines of an input file, planned after the others are sorted: its byte range,
/// its first line (1-based) and its sort key (a place in the source order, then the line, so
/// that stretches without a place keep the file's own order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stretch {
    position: u32,
    line: u64,
    offset: u64,
    len: u64,
}

/// Reads stretches of a file by their byte ranges.
struct StretchReader {
    file: std::fs::File,
    buffer: Vec<u8>,
}

impl StretchReader {
    fn open(path: &Path) -> Result<StretchReader, PlanError> {
        Ok(StretchReader {
            file: std::fs::File::open(path).map_err(io_err(path))?,
            buffer: Vec::new(),
        })
    }

    fn read(&mut self, stretch: &Stretch) -> io::Result<&[u8]> {
        self.buffer.resize(stretch.len as usize, 0);
        crate::run::read_at(&self.file, &mut self.buffer, stretch.offset)?;
        Ok(&self.buffer)
    }
}

fn plan_rows(
    ns: TargetNamespace,
    path: &Path,
    vocabulary: &Vocabulary,
    order: &SourceOrder,
    writer: &mut BatchWriter,
) -> Result<(), PlanError> {
    let known = &vocabulary.attrs[ns.as_str()];
    let invalid = |line: u64, offset: u64, message: String| PlanError::Invalid {
        path: path.to_path_buf(),
        line,
        message: format!("{message} (byte {offset})"),
    };
    // First pass: every row's id, in id order (the transform's contract), and where it is.
    let mut reader = open_ndjson(path).map_err(|error| PlanError::Usage(error.to_string()))?;
    let mut previous: Option<Uuid> = None;
    let mut rows: Vec<Stretch> = Vec::new();
    let mut line_no = 0u64;
    while let Some((offset, text)) = reader.next_row().map_err(io_err(path))? {
        // The transform writes no blank lines, so rows are lines.
        line_no += 1;
        let id = row_id(text).map_err(|message| invalid(line_no, offset, message))?;
        if let Some(previous) = previous {
            if id <= previous {
                return Err(invalid(
                    line_no,
                    offset,
                    format!(
                        "id {id} is not after {previous}: rows must be in id order, each id once \
                         (run `threadmig transform` again)"
                    ),
                ));
            }
        }
        previous = Some(id);
        rows.push(Stretch {
            position: order.position(&id),
            line: line_no,
            offset,
            len: text.len() as u64,
        });
    }
    rows.sort_unstable();
    // Second pass: the steps, in source order.
    let mut stretches = StretchReader::open(path)?;
    let mut step = Vec::with_capacity(64 * 1024);
    let ns_json = json_string(ns.as_str());
    for stretch in &rows {
        let text = stretches.read(stretch).map_err(io_err(path))?;
        let invalid = |message: String| invalid(stretch.line, stretch.offset, message);
        let row: IndexMap<String, &RawValue> = serde_json::from_slice(text)
            .map_err(|error| invalid(format!("not a JSON object: {error}")))?;
        let id = row
            .get("id")
            .and_then(|raw| serde_json::from_str::<Uuid>(raw.get()).ok())
            .ok_or_else(|| invalid("the row has no UUID `id`".into()))?;
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

/// The UUID `id` of a transform row.
fn row_id(text: &[u8]) -> Result<Uuid, String> {
    if let Some(id) = leading_id(text).and_then(|id| Uuid::parse_str(id).ok()) {
        return Ok(id);
    }
    let row: IdOnly =
        serde_json::from_slice(text).map_err(|error| format!("not a JSON object: {error}"))?;
    let id = row
        .id
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .ok_or("the row has no string `id`")?;
    Uuid::parse_str(&id).map_err(|_| format!("id {id:?} is not a UUID"))
}

/// The id of a row laid out as the extract and the transform write them, `{"id":"<36
/// characters>"` first, read without parsing the rest of the row: rows are large, and the
/// source order and the first pass only need their ids. `None` for any other layout, which is
/// then parsed (a malformed row is reported when its step is built).
fn leading_id(text: &[u8]) -> Option<&str> {
    const HEAD: &[u8] = b"{\"id\":\"";
    let rest = text.strip_prefix(HEAD)?;
    let (id, after) = (rest.get(..36)?, rest.get(36..)?);
    if !(after.starts_with(b"\",") || after == b"\"}") || id.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(id).ok()
}

/// A row's `id`, the rest skipped.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
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

/// Links in two passes: the first checks every intent (label, canonical order) and finds each
/// source's stretch of lines; the second plans the sources of each namespace in source order,
/// a source's labels and targets in file order.
fn plan_links(
    path: &Path,
    vocabulary: &Vocabulary,
    order: &SourceOrder,
    writer: &mut BatchWriter,
) -> Result<(), PlanError> {
    let mut reader = open_ndjson(path).map_err(|error| PlanError::Usage(error.to_string()))?;
    let mut previous: Option<LinkIntent> = None;
    // Per source namespace (in file order), its sources' stretches.
    let mut namespaces: Vec<(TargetNamespace, Vec<Stretch>)> = Vec::new();
    let mut line_no = 0u64;
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
        let same_source = match &previous {
            Some(prev) if *prev == link => true,
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
            Some(prev) => prev.from_ns == link.from_ns && prev.from_id == link.from_id,
            None => false,
        };
        let end = offset + text.len() as u64;
        if same_source {
            let (_, sources) = namespaces.last_mut().expect("a source was started");
            let source = sources.last_mut().expect("a source was started");
            source.len = end - source.offset;
        } else {
            if namespaces.last().is_none_or(|(ns, _)| *ns != link.from_ns) {
                namespaces.push((link.from_ns, Vec::new()));
            }
            let (_, sources) = namespaces.last_mut().expect("pushed above");
            sources.push(Stretch {
                position: order.position(&link.from_id),
                line: line_no,
                offset,
                len: text.len() as u64,
            });
        }
        previous = Some(link);
    }
    let mut stretches = StretchReader::open(path)?;
    for (ns, mut sources) in namespaces {
        sources.sort_unstable();
        for source in &sources {
            let text = stretches.read(source).map_err(io_err(path))?;
            let mut step: Option<LinkStep> = None;
            let mut last: Option<LinkIntent> = None;
            for (index, line) in text.split(|byte| *byte == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let link: LinkIntent =
                    serde_json::from_slice(line).map_err(|error| PlanError::Invalid {
                        path: path.to_path_buf(),
                        line: source.line + index as u64,
                        message: format!("not a link intent: {error}"),
                    })?;
                // A repeated intent is planned once (checked in the first pass).
                if last.as_ref() == Some(&link) {
                    continue;
                }
                if step.as_ref().is_some_and(|s| s.targets == MAX_LINK_TARGETS) {
                    let full = step.take().expect("checked above");
                    writer.push("link", ns.as_str(), &full.render())?;
                }
                let current = step.get_or_insert_with(|| LinkStep {
                    ns,
                    id: link.from_id,
                    labels: Vec::new(),
                    targets: 0,
                });
                match current.labels.last_mut() {
                    Some((label, targets)) if *label == link.label => targets.push(link.to_id),
                    _ => current.labels.push((link.label.clone(), vec![link.to_id])),
                }
                current.targets += 1;
                last = Some(link);
            }
            if let Some(step) = step {
                writer.push("link", ns.as_str(), &step.render())?;
            }
        }
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
    fn leading_id_reads_only_the_layout_the_tools_write_and_leaves_the_rest_to_the_parser() {
        let row = |text: String| leading_id(text.as_bytes()).map(str::to_string);
        assert_eq!(row(format!(r#"{{"id":"{ID}","a":1}}"#)), Some(ID.into()));
        assert_eq!(row(format!(r#"{{"id":"{ID}"}}"#)), Some(ID.into()));
        // Anything else goes to the JSON parser.
        assert_eq!(row(format!(r#"{{ "id":"{ID}","a":1}}"#)), None);
        assert_eq!(row(format!(r#"{{"a":1,"id":"{ID}"}}"#)), None);
        assert_eq!(row(format!(r#"{{"id":"{ID}x","a":1}}"#)), None);
        assert_eq!(row(format!(r#"{{"id":"{}","a":1}}"#, &ID[..35])), None);
        assert_eq!(
            row(r#"{"id":"0b8a2c4e-1f2d-4c6b-9a8e-7d6c5b4a3f\u0031","a":1}"#.to_string()),
            None
        );
        assert_eq!(row(format!(r#"{{"id":"{ID}""#)), None);
        // Both paths give the same id.
        let text = format!(r#"{{"a":1,"id":"{ID}"}}"#);
        assert_eq!(row_id(text.as_bytes()).unwrap().to_string(), ID);
        assert_eq!(
            row_id(format!(r#"{{"id":"{ID}","a":1}}"#).as_bytes())
                .unwrap()
                .to_string(),
            ID
        );
        assert!(row_id(br#"{"id":7}"#)
            .unwrap_err()
            .contains("no string `id`"));
    }

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
