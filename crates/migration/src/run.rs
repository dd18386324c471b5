//! The streaming driver of the transform: reads an input (an extract directory of NDJSON files,
//! or the old scripts' dataset file), runs the two passes of [`crate::transform`], and writes
//! `02-transform/`: one NDJSON file per target namespace (ordered by id), `links.ndjson`,
//! `rejects.ndjson` (both in canonical order) and `summary.json`. All files appear together,
//! by rename, only when everything succeeded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

use crate::io::{open_ndjson, AtomicFile, DatasetEvent, DatasetReader, FinishedFile, InputError};
use crate::legacy::{parse_uuid, type_row, RowError};
use crate::model::*;
use crate::rules::{Effect, Rule};
use crate::sort::Sorter;
use crate::transform::{Emitted, JoinBuilder, Options};

/// Where the legacy rows come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The old scripts' single admin-query document (bare, `{data}` or `{payload: {data}}`).
    Dataset(PathBuf),
    /// A directory of `<namespace>.ndjson` files (`01-extract/`). A `thread_threads.ndjson`
    /// there lists threads that already exist (their keys are reused).
    ExtractDir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub input: Input,
    /// The `02-transform` directory itself.
    pub out_dir: PathBuf,
    pub options: Options,
    /// Memory for each sort buffer before it spills to disk.
    pub sort_budget: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{}: {source}", path.display())]
    Output { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Usage(String),
}

/// The transform summary (`--json` and `summary.json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Rows read per input namespace (legacy, unknown, and `thread_threads` when given).
    pub input: BTreeMap<String, u64>,
    /// Rows written per target namespace.
    pub output: BTreeMap<String, u64>,
    pub links: u64,
    /// Legacy rows not migrated.
    pub rejected: u64,
    /// Report entries per rule id.
    pub rejects_by_rule: BTreeMap<String, u64>,
    /// Legacy rows not migrated per legacy namespace.
    #[serde(skip)]
    pub dropped: BTreeMap<String, u64>,
    pub out: PathBuf,
}

/// One input namespace stream.
struct Source {
    name: String,
    path: PathBuf,
    /// For spooled dataset rows: the original offset of each row (u64 LE), and the dataset path.
    offsets: Option<(PathBuf, PathBuf)>,
}

/// Removes the work directory however the run ends.
struct WorkDir(PathBuf);
impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn out_err(path: &Path) -> impl FnOnce(io::Error) -> RunError + '_ {
    move |source| RunError::Output {
        path: path.to_path_buf(),
        source,
    }
}

pub fn run(config: &Config) -> Result<Summary, RunError> {
    let out_dir = &config.out_dir;
    std::fs::create_dir_all(out_dir).map_err(out_err(out_dir))?;
    let work = WorkDir(out_dir.join(format!(".work-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(out_err(&work.0))?;

    let sources = match &config.input {
        Input::Dataset(path) => split_dataset(path, &work.0)?,
        Input::ExtractDir(dir) => extract_sources(dir)?,
    };
    let source = |name: &str| sources.iter().find(|s| s.name == name);
    let mut summary = Summary {
        input: BTreeMap::new(),
        output: BTreeMap::new(),
        links: 0,
        rejected: 0,
        rejects_by_rule: BTreeMap::new(),
        dropped: BTreeMap::new(),
        out: out_dir.clone(),
    };

    // Pass 1: the join.
    let mut options = config.options.clone();
    if let Some(threads) = source("thread_threads") {
        let mut count = 0;
        for_each_row(threads, |_, text| {
            count += 1;
            #[derive(serde::Deserialize)]
            struct Existing {
                id: Option<String>,
                key: Option<serde_json::Value>,
            }
            if let Ok(Existing {
                id: Some(id),
                key: Some(serde_json::Value::String(key)),
            }) = serde_json::from_slice(text)
            {
                if let Some((id, _)) = parse_uuid(&id) {
                    options.existing_threads.entry(key).or_insert(id);
                }
            }
            Ok(())
        })?;
        summary.input.insert("thread_threads".into(), count);
    }
    let mut join = JoinBuilder::new();
    for ns in [
        LegacyNamespace::ContextContexts,
        LegacyNamespace::StoryExecutions,
        LegacyNamespace::StorySteps,
        LegacyNamespace::ContextEvents,
    ] {
        let Some(src) = source(ns.as_str()) else {
            continue;
        };
        for_each_typed(src, ns, |_, row| {
            match row {
                Ok(LegacyRow::Context(row)) => join.add_context(&row),
                Ok(LegacyRow::Execution(row)) => join.add_execution(&row),
                Ok(LegacyRow::Step(row)) => join.add_step(&row),
                Ok(LegacyRow::Event(row)) => join.add_event(&row),
                _ => {}
            }
            Ok(())
        })?;
    }
    let join = join.finish(&options);

    // Pass 2: map every row; sort the outputs.
    let budget = config.sort_budget;
    let mut links = Sorter::new(&work.0, "links", budget / 4);
    let mut rejects = Sorter::new(&work.0, "rejects", budget / 8);
    let mut finished: Vec<FinishedFile> = Vec::new();
    let mut threads = Sorter::new(&work.0, "thread_threads", budget / 4);
    let mut sink = Sink {
        links: &mut links,
        rejects: &mut rejects,
        summary: &mut summary,
        work: &work.0,
    };

    for ns in LegacyNamespace::ALL {
        sink.summary.input.insert(ns.as_str().to_string(), 0);
    }
    for ns in [
        LegacyNamespace::ContextContexts,
        LegacyNamespace::StoryExecutions,
        LegacyNamespace::StorySteps,
        LegacyNamespace::ContextEvents,
    ] {
        let target = ns.target();
        let mut rows = Sorter::new(&work.0, target.as_str(), budget);
        if let Some(src) = source(ns.as_str()) {
            let mut count = 0;
            for_each_typed(src, ns, |_, row| {
                count += 1;
                let emitted = match row {
                    Err(reject) => {
                        sink.drop_row(ns, reject)?;
                        return Ok(());
                    }
                    Ok(LegacyRow::Context(row)) => join.context(row),
                    Ok(LegacyRow::Execution(row)) => join.execution(row),
                    Ok(LegacyRow::Step(row)) => join.step(row),
                    Ok(LegacyRow::Event(row)) => join.event(row),
                    Ok(LegacyRow::Part(_)) => unreachable!("parts are read below"),
                };
                sink.emitted(ns, emitted, |row| match row.namespace() {
                    TargetNamespace::ThreadThreads => {
                        threads.push(row.id().as_bytes(), &row.to_json())
                    }
                    _ => rows.push(row.id().as_bytes(), &row.to_json()),
                })
            })?;
            sink.summary.input.insert(ns.as_str().to_string(), count);
        }
        finished.push(sink.write_target(ns, target, rows, out_dir)?);
    }

    // Parts: map, then keep one part per key (newest updatedAt, then smallest id), then by id.
    {
        const NS: LegacyNamespace = LegacyNamespace::StoryParts;
        let mut by_key = Sorter::new(&work.0, "thread_parts.bykey", budget);
        if let Some(src) = source(NS.as_str()) {
            let mut count = 0;
            for_each_typed(src, NS, |ordinal, row| {
                count += 1;
                let emitted = match row {
                    Err(reject) => return sink.drop_row(NS, reject),
                    Ok(LegacyRow::Part(row)) => join.part(row, ordinal),
                    Ok(_) => unreachable!(),
                };
                let Emitted {
                    rows,
                    rejects,
                    dropped,
                    ..
                } = emitted;
                for reject in rejects {
                    sink.reject(&reject)?;
                }
                if dropped {
                    sink.count_drop(NS);
                }
                for row in rows {
                    if let TargetRow::Part(part) = row {
                        let updated = part
                            .updated_at
                            .as_ref()
                            .and_then(date_millis)
                            .unwrap_or(i64::MIN);
                        let mut key = part.key.as_bytes().to_vec();
                        key.push(0);
                        key.extend_from_slice(
                            &(u64::MAX - (updated as u64 ^ (1 << 63))).to_be_bytes(),
                        );
                        key.extend_from_slice(part.id.as_bytes());
                        by_key
                            .push(&key, &serde_json::to_vec(&part).expect("serialises"))
                            .map_err(out_err(sink.work))?;
                    }
                }
                Ok(())
            })?;
            sink.summary.input.insert(NS.as_str().to_string(), count);
        }
        let mut rows = Sorter::new(&work.0, "thread_parts", budget);
        let mut previous: Option<(String, Uuid)> = None;
        let mut pending: Vec<Reject> = Vec::new();
        let mut err = None;
        by_key
            .drain(|_, line| {
                let part: ThreadPartRow = serde_json::from_slice(line).map_err(io::Error::other)?;
                match &previous {
                    Some((key, winner)) if *key == part.key => pending.push(Reject {
                        namespace: NS.to_string(),
                        id: part.id.to_string(),
                        rule: Rule::PartKeyDuplicate,
                        detail: format!(
                            "key {key} is also part {winner}'s (newer or smaller id): not migrated"
                        ),
                    }),
                    _ => {
                        previous = Some((part.key.clone(), part.id));
                        rows.push(part.id.as_bytes(), line)?;
                        if let Err(e) = sink.link(&LinkIntent {
                            from_ns: TargetNamespace::ThreadParts,
                            from_id: part.id,
                            label: "step".into(),
                            to_id: part.step_id,
                        }) {
                            err = Some(e);
                        }
                    }
                }
                Ok(())
            })
            .map_err(out_err(&work.0))?;
        if let Some(e) = err {
            return Err(e);
        }
        for reject in pending {
            sink.drop_row(NS, reject)?;
        }
        finished.push(sink.write_target(NS, TargetNamespace::ThreadParts, rows, out_dir)?);
    }
    // Threads (one per migrated context; duplicates come from duplicate contexts, reported there).
    finished.push(sink.write_sorted(TargetNamespace::ThreadThreads, threads, out_dir, |_| {})?);

    // Unknown namespaces: every row reported.
    for src in &sources {
        if LegacyNamespace::parse(&src.name).is_some() || src.name == "thread_threads" {
            continue;
        }
        let mut count = 0;
        for_each_row(src, |ordinal, text| {
            count += 1;
            let id = serde_json::from_slice::<IdOnly>(text)
                .ok()
                .and_then(|r| r.id)
                .map(|id| id.trim().to_string())
                .unwrap_or_else(|| format!("#{ordinal}"));
            sink.summary.rejected += 1;
            *sink.summary.dropped.entry(src.name.clone()).or_default() += 1;
            sink.reject(&Reject {
                namespace: src.name.clone(),
                id,
                rule: Rule::UnknownNamespace,
                detail: format!("namespace {} is not a legacy story namespace", src.name),
            })
        })?;
        sink.summary.input.insert(src.name.clone(), count);
    }

    let links_path = out_dir.join("links.ndjson");
    let mut file = AtomicFile::create(&links_path).map_err(out_err(&links_path))?;
    let mut link_count = 0;
    let mut previous: Vec<u8> = Vec::new();
    links
        .drain(|_, line| {
            // The same link twice (duplicate legacy rows) is written once.
            if previous == line {
                return Ok(());
            }
            previous.clear();
            previous.extend_from_slice(line);
            link_count += 1;
            file.writer().write_all(line)?;
            file.writer().write_all(b"\n")
        })
        .map_err(out_err(&links_path))?;
    finished.push(file.finish().map_err(out_err(&links_path))?);
    summary.links = link_count;

    let rejects_path = out_dir.join("rejects.ndjson");
    let mut file = AtomicFile::create(&rejects_path).map_err(out_err(&rejects_path))?;
    rejects
        .drain(|_, line| {
            file.writer().write_all(line)?;
            file.writer().write_all(b"\n")
        })
        .map_err(out_err(&rejects_path))?;
    finished.push(file.finish().map_err(out_err(&rejects_path))?);

    let summary_path = out_dir.join("summary.json");
    let mut file = AtomicFile::create(&summary_path).map_err(out_err(&summary_path))?;
    let document = summary_document(&summary);
    serde_json::to_writer_pretty(file.writer(), &document)
        .map_err(io::Error::other)
        .and_then(|_| file.writer().write_all(b"\n"))
        .map_err(out_err(&summary_path))?;
    finished.push(file.finish().map_err(out_err(&summary_path))?);

    for file in finished {
        let path = file.path().to_path_buf();
        file.commit().map_err(out_err(&path))?;
    }
    Ok(summary)
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: Option<String>,
}

fn date_millis(date: &DateValue) -> Option<i64> {
    match date {
        DateValue::Millis(ms) => Some(*ms),
        DateValue::Text(text) => crate::dates::parse_iso(text),
    }
}

/// `summary.json`: the summary plus the rule table (id, effect, description, count).
fn summary_document(summary: &Summary) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = Rule::ALL
        .iter()
        .map(|rule| {
            serde_json::json!({
                "id": rule.as_str(),
                "effect": rule.effect().as_str(),
                "doc": rule.doc(),
                "count": summary.rejects_by_rule.get(rule.as_str()).copied().unwrap_or(0),
            })
        })
        .collect();
    serde_json::json!({
        "input": summary.input,
        "output": summary.output,
        "links": summary.links,
        "rejected": summary.rejected,
        "rejectedByNamespace": summary.dropped,
        "rejectsByRule": summary.rejects_by_rule,
        "rules": rules,
    })
}

struct Sink<'a> {
    links: &'a mut Sorter,
    rejects: &'a mut Sorter,
    summary: &'a mut Summary,
    work: &'a Path,
}

impl Sink<'_> {
    fn reject(&mut self, reject: &Reject) -> Result<(), RunError> {
        *self
            .summary
            .rejects_by_rule
            .entry(reject.rule.as_str().to_string())
            .or_default() += 1;
        let mut key = Vec::with_capacity(reject.namespace.len() + reject.id.len() + 32);
        key.extend_from_slice(reject.namespace.as_bytes());
        key.push(0);
        key.extend_from_slice(reject.id.as_bytes());
        key.push(0);
        key.extend_from_slice(reject.rule.as_str().as_bytes());
        key.push(0);
        key.extend_from_slice(reject.detail.as_bytes());
        let line = serde_json::to_vec(reject).expect("serialises");
        self.rejects.push(&key, &line).map_err(out_err(self.work))
    }

    fn count_drop(&mut self, ns: LegacyNamespace) {
        self.summary.rejected += 1;
        *self
            .summary
            .dropped
            .entry(ns.as_str().to_string())
            .or_default() += 1;
    }

    fn drop_row(&mut self, ns: LegacyNamespace, reject: Reject) -> Result<(), RunError> {
        debug_assert_eq!(reject.rule.effect(), Effect::Dropped);
        self.count_drop(ns);
        self.reject(&reject)
    }

    fn link(&mut self, link: &LinkIntent) -> Result<(), RunError> {
        let mut key = Vec::with_capacity(64);
        key.extend_from_slice(link.from_ns.as_str().as_bytes());
        key.push(0);
        key.extend_from_slice(link.from_id.as_bytes());
        key.extend_from_slice(link.label.as_bytes());
        key.push(0);
        key.extend_from_slice(link.to_id.as_bytes());
        let line = serde_json::to_vec(link).expect("serialises");
        self.links.push(&key, &line).map_err(out_err(self.work))
    }

    fn emitted(
        &mut self,
        ns: LegacyNamespace,
        emitted: Emitted,
        mut push: impl FnMut(&TargetRow) -> io::Result<()>,
    ) -> Result<(), RunError> {
        for reject in &emitted.rejects {
            self.reject(reject)?;
        }
        if emitted.dropped {
            self.count_drop(ns);
            return Ok(());
        }
        for row in &emitted.rows {
            push(row).map_err(out_err(self.work))?;
        }
        for link in &emitted.links {
            self.link(link)?;
        }
        Ok(())
    }

    /// Writes a target namespace in id order; a repeated id is a duplicate legacy row.
    fn write_target(
        &mut self,
        ns: LegacyNamespace,
        target: TargetNamespace,
        rows: Sorter,
        out_dir: &Path,
    ) -> Result<FinishedFile, RunError> {
        let mut duplicates = Vec::new();
        let file = self.write_sorted(target, rows, out_dir, |id| duplicates.push(id))?;
        for id in duplicates {
            self.drop_row(
                ns,
                Reject {
                    namespace: ns.to_string(),
                    id: id.to_string(),
                    rule: Rule::DuplicateId,
                    detail: format!("another {ns} row has id {id}; the first by row text is kept"),
                },
            )?;
        }
        Ok(file)
    }

    fn write_sorted(
        &mut self,
        target: TargetNamespace,
        rows: Sorter,
        out_dir: &Path,
        mut duplicate: impl FnMut(Uuid),
    ) -> Result<FinishedFile, RunError> {
        let path = out_dir.join(target.file_name());
        let mut file = AtomicFile::create(&path).map_err(out_err(&path))?;
        let mut previous: Option<Vec<u8>> = None;
        let mut count = 0;
        rows.drain(|key, line| {
            if previous.as_deref() == Some(key) {
                duplicate(Uuid::from_slice(key).unwrap_or_default());
                return Ok(());
            }
            previous = Some(key.to_vec());
            count += 1;
            file.writer().write_all(line)?;
            file.writer().write_all(b"\n")
        })
        .map_err(out_err(&path))?;
        self.summary
            .output
            .insert(target.as_str().to_string(), count);
        file.finish().map_err(out_err(&path))
    }
}

/// Calls `f(ordinal, text)` for every row of a source; ordinals are 1-based.
fn for_each_row(
    source: &Source,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let mut reader = open_ndjson(&source.path)?;
    let mut ordinal = 0;
    while let Some((_, text)) = reader
        .next_row()
        .map_err(|e| InputError::io(&source.path, e))?
    {
        ordinal += 1;
        f(ordinal, text)?;
    }
    Ok(())
}

/// Types every row of a source; a syntax error becomes one error with the byte offset in the
/// original file.
fn for_each_typed(
    source: &Source,
    ns: LegacyNamespace,
    mut f: impl FnMut(u64, Result<LegacyRow, Reject>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let mut reader = open_ndjson(&source.path)?;
    let mut ordinal = 0;
    while let Some((offset, text)) = reader
        .next_row()
        .map_err(|e| InputError::io(&source.path, e))?
    {
        ordinal += 1;
        let typed = match type_row(ns, text, ordinal) {
            Ok(row) => Ok(row),
            Err(RowError::Reject(reject)) => Err(reject),
            Err(RowError::Syntax {
                offset: inner,
                error,
            }) => {
                let (path, start) = match &source.offsets {
                    Some((offsets, dataset)) => (dataset.clone(), row_offset(offsets, ordinal)?),
                    None => (source.path.clone(), offset),
                };
                return Err(InputError::Malformed {
                    path,
                    offset: start + inner as u64,
                    message: format!(
                        "{ns} row {ordinal}: invalid JSON: {}",
                        strip_position(&error)
                    ),
                }
                .into());
            }
        };
        f(ordinal, typed)?;
    }
    Ok(())
}

fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn row_offset(offsets: &Path, ordinal: u64) -> Result<u64, RunError> {
    let read = || -> io::Result<u64> {
        let mut file = File::open(offsets)?;
        file.seek(SeekFrom::Start((ordinal - 1) * 8))?;
        let mut bytes = [0u8; 8];
        file.read_exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    };
    read().map_err(|e| InputError::io(offsets, e).into())
}

fn extract_sources(dir: &Path) -> Result<Vec<Source>, RunError> {
    let entries = std::fs::read_dir(dir).map_err(|e| InputError::io(dir, e))?;
    let mut sources = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| InputError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(ns) = name.strip_suffix(".ndjson") {
            if !ns.starts_with('.') {
                sources.push(Source {
                    name: ns.to_string(),
                    path: entry.path(),
                    offsets: None,
                });
            }
        }
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    if !sources
        .iter()
        .any(|s| LegacyNamespace::parse(&s.name).is_some())
    {
        return Err(RunError::Usage(format!(
            "{}: no legacy namespace file (context_contexts.ndjson, context_events.ndjson, story_executions.ndjson, story_steps.ndjson, story_parts.ndjson)",
            dir.display()
        )));
    }
    Ok(sources)
}

/// Splits the dataset document into one spooled NDJSON file per namespace (and the original
/// offset of each row), reading it as a stream.
fn split_dataset(path: &Path, work: &Path) -> Result<Vec<Source>, RunError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut reader = DatasetReader::new(file);
    let mut writers: BTreeMap<String, (BufWriter<File>, BufWriter<File>)> = BTreeMap::new();
    let mut current: Option<String> = None;
    let malformed = |(offset, message): (u64, String)| InputError::Malformed {
        path: path.to_path_buf(),
        offset,
        message,
    };
    loop {
        let event = reader.next_event().map_err(malformed)?;
        match event {
            None => break,
            Some(DatasetEvent::Namespace(name)) => {
                if !writers.contains_key(&name) {
                    let spool = |ext: &str| -> Result<BufWriter<File>, RunError> {
                        let p = work.join(format!("{}.{ext}", spool_name(&name)));
                        let f = File::create(&p).map_err(out_err(&p))?;
                        Ok(BufWriter::with_capacity(1 << 20, f))
                    };
                    let pair = (spool("ndjson")?, spool("offsets")?);
                    writers.insert(name.clone(), pair);
                }
                current = Some(name);
            }
            Some(DatasetEvent::Row(offset)) => {
                let name = current.as_ref().expect("a row follows its namespace");
                let (rows, offsets) = writers.get_mut(name).expect("opened");
                rows.write_all(reader.row())
                    .and_then(|_| rows.write_all(b"\n"))
                    .and_then(|_| offsets.write_all(&offset.to_le_bytes()))
                    .map_err(out_err(work))?;
            }
        }
    }
    let mut sources = Vec::new();
    for (name, (mut rows, mut offsets)) in writers {
        rows.flush()
            .and_then(|_| offsets.flush())
            .map_err(out_err(work))?;
        sources.push(Source {
            path: work.join(format!("{}.ndjson", spool_name(&name))),
            offsets: Some((
                work.join(format!("{}.offsets", spool_name(&name))),
                path.to_path_buf(),
            )),
            name,
        });
    }
    Ok(sources)
}

/// A file-name-safe spool name for any namespace key.
fn spool_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        name.as_bytes(),
    ));
    format!(
        "{safe}-{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

#[allow(dead_code)]
fn open_reader(path: &Path) -> io::Result<BufReader<File>> {
    Ok(BufReader::new(File::open(path)?))
}
