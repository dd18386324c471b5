//! The streaming driver of the transform: reads an input (an extract directory of NDJSON files,
//! or the old scripts' dataset file), runs the two passes of [`crate::transform`], and writes
//! `02-transform/`: one NDJSON file per target namespace (ordered by id), `links.ndjson`,
//! `rejects.ndjson` (both in canonical order) and `summary.json`. All files appear together,
//! by rename, only when everything succeeded.
//!
//! How it stays fast and small (memory follows the join and the sort budget, not the input):
//!
//! 1. **Index**: one sequential read delimits every row (offset, length) per namespace; no
//!    row is copied, nothing is spooled.
//! 2. **Join** (pass 1): the rows are typed without their big JSON attributes, in parallel over
//!    contiguous slices; each slice feeds its own [`JoinBuilder`], merged in input order.
//!    Each row also gets its *cell*: the first byte of its id.
//! 3. **Map** (pass 2), one target namespace at a time in the order `links.ndjson` needs: the
//!    rows of a range of cells (as many as fit the sort budget) are read back from the input
//!    (page cache), typed in full, mapped, serialised and sorted by id in memory, in parallel;
//!    then written with their links. Id order is cell order, so ranges are written one after
//!    the other and nothing is ever spilled for the rows themselves.
//! 4. Files are synced on a background thread as soon as they are complete, then renamed
//!    together at the end.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use uuid::Uuid;

use crate::io::{open_ndjson, AtomicFile, DatasetEvent, DatasetReader, FinishedFile, InputError};
use crate::legacy::{parse_uuid, type_row, type_row_light, RowError};
use crate::model::*;
use crate::rules::{Effect, Rule};
use crate::sort::Sorter;
use crate::transform::{part_slot, Emitted, Join, JoinBuilder, Options};

/// Where the legacy rows come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The old scripts' single admin-query document (bare, `{data}` or `{payload: {data}}`).
    Dataset(PathBuf),
    /// A directory of `<namespace>.ndjson` files (`01-extract/`). Besides the five legacy
    /// namespaces it may hold rows that already exist in the target: `thread_threads` (their
    /// keys are reused) and `thread_contexts` (their keys are not taken over), and
    /// `whatsapp_messages` (their dates date the items that mirror them). The dataset file may
    /// hold the same namespaces.
    ExtractDir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub input: Input,
    /// The `02-transform` directory itself.
    pub out_dir: PathBuf,
    pub options: Options,
    /// Memory for the rows being sorted at one time (and for each other sort buffer) before
    /// the work is split or spilled to disk.
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
    /// Rows read per input namespace (legacy, unknown, and the existing target rows given).
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

// ---------------------------------------------------------------------------------------------
// Sources and the row index

/// One row of an input file: where it is, and its cell (first byte of its id) once known.
#[derive(Debug, Clone, Copy)]
struct RowRef {
    offset: u64,
    len: u32,
    cell: u16,
}

/// Not mapped in pass 2: rejected while typed in pass 1, or not a legacy row.
const SKIP: u16 = u16::MAX;
const CELLS: usize = 256;

/// What a namespace of the input is to the transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Legacy(LegacyNamespace),
    ExistingThreads,
    ExistingContexts,
    /// `whatsapp_messages`: read for dates, reported like any namespace that is not migrated.
    Whatsapp,
    Unknown,
}

impl Kind {
    fn of(name: &str) -> Kind {
        match LegacyNamespace::parse(name) {
            Some(ns) => Kind::Legacy(ns),
            None => match name {
                "thread_threads" => Kind::ExistingThreads,
                "thread_contexts" => Kind::ExistingContexts,
                "whatsapp_messages" => Kind::Whatsapp,
                _ => Kind::Unknown,
            },
        }
    }
}

/// One input namespace: its file and its rows in file order.
struct Source {
    name: String,
    kind: Kind,
    path: PathBuf,
    rows: Vec<RowRef>,
    /// Bytes of the rows of each cell (legacy namespaces, after pass 1).
    cells: Box<[u64; CELLS]>,
}

impl Source {
    fn new(name: String, path: PathBuf) -> Source {
        Source {
            kind: Kind::of(&name),
            name,
            path,
            rows: Vec::new(),
            cells: Box::new([0; CELLS]),
        }
    }

    fn push(&mut self, offset: u64, len: u64) -> Result<(), RunError> {
        let len = u32::try_from(len).map_err(|_| InputError::Malformed {
            path: self.path.clone(),
            offset,
            message: format!("{} row {}: larger than 4 GiB", self.name, self.rows.len() + 1),
        })?;
        self.rows.push(RowRef {
            offset,
            len,
            cell: 0,
        });
        Ok(())
    }
}

/// Reads the input once, in order: delimits every row into its [`Source`] and hands the row
/// text, in blocks, to `block` (which types it for the join on other threads).
struct Scanner<'a> {
    sources: Vec<Source>,
    block: Block,
    seq: u64,
    pool: &'a Pool,
    send: &'a mut dyn FnMut(Block, &[Source]) -> Result<(), RunError>,
}

/// Consecutive rows of the input, with their text, for pass 1.
#[derive(Default)]
struct Block {
    seq: u64,
    bytes: Vec<u8>,
    rows: Vec<BlockRow>,
}

#[derive(Debug, Clone, Copy)]
struct BlockRow {
    source: u32,
    /// The row's index in its source (its ordinal minus one).
    index: u32,
    /// File offset, and where the text is in [`Block::bytes`].
    offset: u64,
    start: u32,
    len: u32,
}

const BLOCK: usize = 4 << 20;

impl Scanner<'_> {
    fn source(&mut self, name: &str, path: &Path) -> usize {
        match self.sources.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.sources
                    .push(Source::new(name.to_string(), path.to_path_buf()));
                self.sources.len() - 1
            }
        }
    }

    /// Records the row whose text was just appended to the block (from `start`).
    fn row(&mut self, source: usize, offset: u64, start: usize) -> Result<(), RunError> {
        let len = (self.block.bytes.len() - start) as u64;
        let src = &mut self.sources[source];
        let index = u32::try_from(src.rows.len()).map_err(|_| InputError::Malformed {
            path: src.path.clone(),
            offset,
            message: format!("{}: more than 4 billion rows", src.name),
        })?;
        src.push(offset, len)?;
        self.block.rows.push(BlockRow {
            source: source as u32,
            index,
            offset,
            start: start as u32,
            len: len as u32,
        });
        if self.block.bytes.len() >= BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RunError> {
        if self.block.rows.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        let block = std::mem::replace(
            &mut self.block,
            Block {
                seq: self.seq,
                bytes: self.pool.take(BLOCK + (64 << 10)),
                rows: Vec::new(),
            },
        );
        (self.send)(block, &self.sources)
    }

    fn dataset(&mut self, path: &Path) -> Result<(), RunError> {
        let file = File::open(path).map_err(|e| InputError::io(path, e))?;
        let mut reader = DatasetReader::new(file).copy_rows(false);
        let mut current = None;
        loop {
            let start = self.block.bytes.len();
            let event = reader
                .next_row_into(&mut self.block.bytes)
                .map_err(|(offset, message)| InputError::Malformed {
                    path: path.to_path_buf(),
                    offset,
                    message,
                })?;
            match event {
                None => break,
                Some(DatasetEvent::Namespace(name)) => current = Some(self.source(&name, path)),
                Some(DatasetEvent::Row(offset)) => match current {
                    Some(source) => self.row(source, offset, start)?,
                    // A row always follows its namespace.
                    None => self.block.bytes.truncate(start),
                },
            }
        }
        Ok(())
    }

    fn ndjson(&mut self, name: &str, path: &Path) -> Result<(), RunError> {
        let source = self.source(name, path);
        let mut reader = open_ndjson(path)?;
        while let Some((offset, text)) = reader.next_row().map_err(|e| InputError::io(path, e))? {
            let start = self.block.bytes.len();
            self.block.bytes.extend_from_slice(text);
            self.row(source, offset, start)?;
        }
        Ok(())
    }
}

/// The `<namespace>.ndjson` files of an extract directory, by name.
fn extract_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, RunError> {
    let entries = std::fs::read_dir(dir).map_err(|e| InputError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| InputError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(ns) = name.strip_suffix(".ndjson") {
            if !ns.starts_with('.') {
                files.push((ns.to_string(), entry.path()));
            }
        }
    }
    files.sort();
    if !files
        .iter()
        .any(|(name, _)| LegacyNamespace::parse(name).is_some())
    {
        return Err(RunError::Usage(format!(
            "{}: no legacy namespace file (context_contexts.ndjson, context_events.ndjson, story_executions.ndjson, story_steps.ndjson, story_parts.ndjson)",
            dir.display()
        )));
    }
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Reading rows back

/// Rows are read back in windows of consecutive rows of this size at most...
const WINDOW: u64 = 4 << 20;
/// ...unless the next wanted row starts this far after the previous one.
const GAP: u64 = 256 << 10;

/// Calls `f(index, text)` for each row of `rows` that `want` selects, in file order.
fn for_each_row(
    file: &File,
    path: &Path,
    rows: &[RowRef],
    want: impl Fn(&RowRef) -> bool,
    mut f: impl FnMut(usize, &[u8]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        if !want(&rows[i]) {
            i += 1;
            continue;
        }
        let start = rows[i].offset;
        let mut end = start + u64::from(rows[i].len);
        let mut j = i + 1;
        while j < rows.len() {
            let row = &rows[j];
            if !want(row) {
                j += 1;
                continue;
            }
            let row_end = row.offset + u64::from(row.len);
            if row.offset < end || row_end - start > WINDOW || row.offset - end > GAP {
                break;
            }
            end = row_end;
            j += 1;
        }
        let size = usize::try_from(end - start).map_err(|_| InputError::Malformed {
            path: path.to_path_buf(),
            offset: start,
            message: "row too large for this platform".into(),
        })?;
        buf.resize(size, 0);
        read_at(file, &mut buf, start).map_err(|e| InputError::io(path, e))?;
        for (k, row) in rows.iter().enumerate().take(j).skip(i) {
            if want(row) && row.offset + u64::from(row.len) <= end {
                let at = (row.offset - start) as usize;
                f(k, &buf[at..at + row.len as usize])?;
            }
        }
        i = j;
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Splits `rows` into at most `parts` contiguous ranges of about equal bytes.
fn split_by_bytes(rows: &[RowRef], parts: usize) -> Vec<Range<usize>> {
    let total: u64 = rows.iter().map(|r| u64::from(r.len)).sum();
    let parts = if rows.len() < 2048 || total < (4 << 20) {
        1
    } else {
        parts.max(1)
    };
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    let mut acc = 0u64;
    for (i, row) in rows.iter().enumerate() {
        acc += u64::from(row.len);
        if ranges.len() + 1 < parts && acc * parts as u64 >= total * (ranges.len() as u64 + 1) {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    ranges.push(start..rows.len());
    ranges
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// Runs `work` on each range of `rows` in parallel; results in range order.
fn parallel<T: Send>(
    rows: &[RowRef],
    work: impl Fn(Range<usize>) -> Result<T, RunError> + Sync,
) -> Result<Vec<T>, RunError> {
    let ranges = split_by_bytes(rows, workers());
    if ranges.len() == 1 {
        return Ok(vec![work(ranges[0].clone())?]);
    }
    let results: Vec<Result<T, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let work = &work;
                scope.spawn(move || work(range))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    // The first error in input order is the one reported.
    results.into_iter().collect()
}

fn malformed(path: &Path, offset: u64, ns: impl std::fmt::Display, ordinal: u64, error: &serde_json::Error) -> RunError {
    InputError::Malformed {
        path: path.to_path_buf(),
        offset,
        message: format!("{ns} row {ordinal}: invalid JSON: {}", strip_position(error)),
    }
    .into()
}

fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 1: the join

/// A part that will be migrated if its step is: the key de-duplication needs these.
#[derive(Debug, Clone, Copy)]
struct PartFact {
    step: Uuid,
    idx: i64,
    /// updatedAt in ms (`i64::MIN` when absent or invalid).
    updated: i64,
    id: Uuid,
    ordinal: u64,
}

/// What pass 1 found in one block.
#[derive(Default)]
struct Light {
    seq: u64,
    join: JoinBuilder,
    /// (source, reject) of rows not migrated, and how many rows per source that is.
    rejects: Vec<(u32, Reject)>,
    dropped: Vec<(u32, u64)>,
    /// (source, length) and cell of each row of the block.
    rows: Vec<(u32, u32)>,
    cells: Vec<u16>,
    part_facts: Vec<PartFact>,
    /// Existing target rows: (kind, key, id), in input order.
    existing: Vec<(Kind, String, Uuid)>,
    /// The first malformed row: (file offset, error).
    error: Option<(u64, RunError)>,
}

#[derive(serde::Deserialize)]
struct Existing {
    id: Option<String>,
    key: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct SideRow {
    id: Option<serde_json::Value>,
    #[serde(rename = "createdAt")]
    created_at: Option<serde_json::Value>,
}

/// Pass 1 on one block: every row typed for the join (big attributes left out).
fn light_block(block: &Block, sources: &[(String, Kind, PathBuf)]) -> Light {
    let mut light = Light {
        seq: block.seq,
        rows: block.rows.iter().map(|r| (r.source, r.len)).collect(),
        cells: vec![SKIP; block.rows.len()],
        ..Light::default()
    };
    for (k, row) in block.rows.iter().enumerate() {
        let text = &block.bytes[row.start as usize..(row.start + row.len) as usize];
        let (name, kind, path) = &sources[row.source as usize];
        let ordinal = u64::from(row.index) + 1;
        let not_migrated = |light: &mut Light, reject: Reject| {
            light.rejects.push((row.source, reject));
            match light.dropped.last_mut() {
                Some((source, n)) if *source == row.source => *n += 1,
                _ => light.dropped.push((row.source, 1)),
            }
        };
        match *kind {
            Kind::Legacy(ns) => match type_row_light(ns, text, ordinal) {
                Ok(typed) => light.cells[k] = light.add(typed, ordinal),
                Err(RowError::Reject(reject)) => not_migrated(&mut light, reject),
                Err(RowError::Syntax { offset, error }) => {
                    let at = row.offset + offset as u64;
                    light.error = Some((at, malformed(path, at, ns, ordinal, &error)));
                    return light;
                }
            },
            Kind::ExistingThreads | Kind::ExistingContexts => {
                if let Ok(Existing {
                    id: Some(id),
                    key: Some(serde_json::Value::String(key)),
                }) = serde_json::from_slice(text)
                {
                    if let Some((id, _)) = parse_uuid(&id) {
                        light.existing.push((*kind, key, id));
                    }
                }
            }
            Kind::Whatsapp | Kind::Unknown => {
                let side = serde_json::from_slice::<SideRow>(text).ok();
                let id_text = match side.as_ref().and_then(|s| s.id.as_ref()) {
                    Some(serde_json::Value::String(id)) => Some(id.trim().to_string()),
                    _ => None,
                };
                if *kind == Kind::Whatsapp {
                    let id = id_text.as_deref().and_then(parse_uuid).map(|(id, _)| id);
                    let created = side
                        .and_then(|s| s.created_at)
                        .and_then(|value| crate::dates::classify(&value).millis());
                    if let (Some(id), Some(created)) = (id, created) {
                        light.join.add_whatsapp_message(id, created);
                    }
                }
                not_migrated(
                    &mut light,
                    Reject {
                        namespace: name.clone(),
                        id: id_text.unwrap_or_else(|| format!("#{ordinal}")),
                        rule: Rule::UnknownNamespace,
                        detail: format!("namespace {name} is not a legacy story namespace"),
                    },
                );
            }
        }
    }
    light
}

impl Light {
    /// Feeds the join; returns the row's cell.
    fn add(&mut self, row: LegacyRow, ordinal: u64) -> u16 {
        let cell = |id: &Uuid| u16::from(id.as_bytes()[0]);
        match row {
            LegacyRow::Context(row) => {
                self.join.add_context(&row);
                cell(&row.id)
            }
            LegacyRow::Execution(row) => {
                self.join.add_execution(&row);
                cell(&row.id)
            }
            LegacyRow::Step(row) => {
                self.join.add_step(&row);
                cell(&row.id)
            }
            LegacyRow::Event(row) => {
                self.join.add_event(&row);
                cell(&row.id)
            }
            LegacyRow::Part(row) => match part_slot(&row) {
                Some(slot) => {
                    self.part_facts.push(PartFact {
                        step: slot.step,
                        idx: slot.idx,
                        updated: row
                            .updated_at
                            .as_ref()
                            .and_then(LegacyDate::millis)
                            .unwrap_or(i64::MIN),
                        id: slot.id,
                        ordinal,
                    });
                    cell(&slot.id)
                }
                // Not migrated, but mapped all the same for its report.
                None => 0,
            },
        }
    }
}

/// Pass 1 over the whole input: the row index of every source and the join.
#[derive(Default)]
struct Scanned {
    sources: Vec<Source>,
    join: JoinBuilder,
    rejects: Vec<(u32, Reject)>,
    dropped: Vec<(u32, u64)>,
    part_facts: Vec<PartFact>,
    existing_threads: Vec<(String, Uuid)>,
    existing_contexts: Vec<(String, Uuid)>,
    /// Per source: the cell of each row, and the bytes of each cell.
    cells: Vec<Vec<u16>>,
    bytes: Vec<Box<[u64; CELLS]>>,
    /// The next block to merge, blocks typed but waiting for an earlier one.
    next: u64,
    pending: BTreeMap<u64, Light>,
    /// The malformed row or document part with the smallest offset: the one reported.
    error: Option<(u64, RunError)>,
}

impl Scanned {
    fn note_error(&mut self, at: u64, error: RunError) {
        if self.error.as_ref().is_none_or(|(seen, _)| at < *seen) {
            self.error = Some((at, error));
        }
    }

    /// Takes the result of one block; merges every block that is next in input order (the
    /// join keeps the first row of an id).
    fn take(&mut self, light: Light) {
        self.pending.insert(light.seq, light);
        while let Some(mut light) = self.pending.remove(&self.next) {
            self.next += 1;
            if let Some((at, error)) = light.error.take() {
                self.note_error(at, error);
            }
            self.join.merge(light.join);
            self.rejects.extend(light.rejects);
            self.dropped.extend(light.dropped);
            self.part_facts.extend(light.part_facts);
            for (kind, key, id) in light.existing {
                match kind {
                    Kind::ExistingThreads => self.existing_threads.push((key, id)),
                    _ => self.existing_contexts.push((key, id)),
                }
            }
            for ((source, len), cell) in light.rows.into_iter().zip(light.cells) {
                let source = source as usize;
                if self.cells.len() <= source {
                    self.cells.resize_with(source + 1, Vec::new);
                    self.bytes.resize_with(source + 1, || Box::new([0; CELLS]));
                }
                self.cells[source].push(cell);
                if cell != SKIP {
                    self.bytes[source][cell as usize] += u64::from(len);
                }
            }
        }
    }
}

/// Buffers handed back for reuse: large buffers fresh from the allocator cost a page fault per
/// page written, every time.
#[derive(Default)]
struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut buffer = self
            .0
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default();
        buffer.clear();
        buffer.reserve(capacity);
        buffer
    }

    fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut pool) = self.0.lock() {
            pool.push(buffer);
        }
    }
}

/// Reads the input once: the scanning thread delimits rows and sends blocks of them to
/// workers, which type them for the join; results are merged in input order as they come.
fn scan(input: &Input) -> Result<Scanned, RunError> {
    type Job = (Block, Arc<Vec<(String, Kind, PathBuf)>>);
    let threads = workers();
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
    let job_rx = Mutex::new(job_rx);
    let (light_tx, light_rx) = mpsc::channel::<Light>();
    let pool = Pool::default();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let light_tx = light_tx.clone();
            let job_rx = &job_rx;
            let pool = &pool;
            scope.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((block, sources)) = job else { return };
                let light = light_block(&block, &sources);
                pool.give(block.bytes);
                if light_tx.send(light).is_err() {
                    return;
                }
            });
        }
        drop(light_tx);

        let mut scanned = Scanned {
            next: 1,
            ..Scanned::default()
        };
        let mut names: Arc<Vec<(String, Kind, PathBuf)>> = Arc::new(Vec::new());
        let (result, sources) = {
            let mut send = |block: Block, sources: &[Source]| -> Result<(), RunError> {
                if names.len() != sources.len() {
                    names = Arc::new(
                        sources
                            .iter()
                            .map(|s| (s.name.clone(), s.kind, s.path.clone()))
                            .collect(),
                    );
                }
                while let Ok(light) = light_rx.try_recv() {
                    scanned.take(light);
                }
                job_tx
                    .send((block, Arc::clone(&names)))
                    .map_err(|_| RunError::Usage("pass 1 stopped".into()))
            };
            let mut scanner = Scanner {
                sources: Vec::new(),
                block: Block {
                    seq: 1,
                    ..Block::default()
                },
                seq: 1,
                pool: &pool,
                send: &mut send,
            };
            let result = match input {
                Input::Dataset(path) => scanner.dataset(path),
                Input::ExtractDir(dir) => extract_files(dir).and_then(|files| {
                    files
                        .iter()
                        .try_for_each(|(name, path)| scanner.ndjson(name, path))
                }),
            }
            .and_then(|()| scanner.flush());
            (result, scanner.sources)
        };
        drop(job_tx);
        // Every block sent is typed and merged, even after a scan error: the earliest
        // problem in the input is the one reported, whatever the thread timing.
        for light in light_rx.iter() {
            scanned.take(light);
        }
        if let Err(error) = result {
            let at = match &error {
                RunError::Input(InputError::Malformed { offset, .. }) => *offset,
                _ => 0,
            };
            scanned.note_error(at, error);
        }
        if let Some((_, error)) = scanned.error.take() {
            return Err(error);
        }
        scanned.sources = sources;
        for (index, source) in scanned.sources.iter_mut().enumerate() {
            if let (Some(cells), Some(bytes)) = (scanned.cells.get(index), scanned.bytes.get(index)) {
                for (row, cell) in source.rows.iter_mut().zip(cells) {
                    row.cell = *cell;
                }
                source.cells = bytes.clone();
            }
        }
        scanned.cells = Vec::new();
        Ok(scanned)
    })
}

/// Parts whose key another part wins (newest updatedAt, then smallest id): ordinal -> (the
/// winner's id, the key). Parts tied with the winner on both share its id; which of those is
/// kept is decided on their text, where they meet in pass 2.
fn part_losers(mut facts: Vec<PartFact>, join: &Join) -> HashMap<u64, (Uuid, String)> {
    facts.retain(|fact| join.is_step_migrated(&fact.step));
    facts.sort_unstable_by(|a, b| {
        (a.step, a.idx)
            .cmp(&(b.step, b.idx))
            .then(b.updated.cmp(&a.updated))
            .then(a.id.cmp(&b.id))
            .then(a.ordinal.cmp(&b.ordinal))
    });
    let mut losers = HashMap::new();
    for group in facts.chunk_by(|a, b| (a.step, a.idx) == (b.step, b.idx)) {
        let winner = group[0];
        for fact in &group[1..] {
            if (fact.updated, fact.id) != (winner.updated, winner.id) {
                losers.insert(
                    fact.ordinal,
                    (winner.id, format!("{}:{}", winner.step, winner.idx)),
                );
            }
        }
    }
    losers
}

// ---------------------------------------------------------------------------------------------
// Pass 2: map, sort, write

/// One mapped row: its id, its JSON line and its links (JSON lines, each ending in `\n`).
#[derive(Debug, Clone, Copy)]
struct Rec {
    id: Uuid,
    start: usize,
    line: u32,
    links: u32,
}

/// What pass 2 produced for one slice of one cell range.
#[derive(Default)]
struct Mapped {
    arena: Vec<u8>,
    recs: Vec<Rec>,
    /// `thread_threads` rows (from contexts): (id, line).
    threads: Vec<(Uuid, Vec<u8>)>,
    rejects: Vec<Reject>,
    dropped: u64,
}

impl Mapped {
    fn line(&self, rec: &Rec) -> &[u8] {
        &self.arena[rec.start..rec.start + rec.line as usize]
    }

    fn links(&self, rec: &Rec) -> &[u8] {
        let start = rec.start + rec.line as usize;
        &self.arena[start..start + rec.links as usize]
    }

    fn take(
        &mut self,
        ns: LegacyNamespace,
        emitted: Emitted,
        ordinal: u64,
        losers: &HashMap<u64, (Uuid, String)>,
    ) {
        let Emitted {
            rows,
            mut links,
            rejects,
            dropped,
        } = emitted;
        self.rejects.extend(rejects);
        if dropped {
            self.dropped += 1;
            return;
        }
        let loser = match ns {
            LegacyNamespace::StoryParts => losers.get(&ordinal),
            _ => None,
        };
        if let Some((winner, key)) = loser {
            let id = match rows.first() {
                Some(row) => row.id().to_string(),
                None => format!("#{ordinal}"),
            };
            self.rejects.push(Reject {
                namespace: ns.to_string(),
                id,
                rule: Rule::PartKeyDuplicate,
                detail: format!("key {key} is also part {winner}'s (newer or smaller id): not migrated"),
            });
            self.dropped += 1;
            return;
        }
        links.sort();
        links.dedup();
        for row in rows {
            if let TargetRow::Thread(thread) = &row {
                let line = serde_json::to_vec(thread).unwrap_or_default();
                self.threads.push((thread.id, line));
                continue;
            }
            let start = self.arena.len();
            write_row(&mut self.arena, &row);
            let line = self.arena.len() - start;
            for link in &links {
                write_link(&mut self.arena, link);
            }
            self.recs.push(Rec {
                id: row.id(),
                start,
                line: line as u32,
                links: (self.arena.len() - start - line) as u32,
            });
        }
    }

    fn sort(&mut self) {
        let arena = &self.arena;
        let line = |rec: &Rec| &arena[rec.start..rec.start + rec.line as usize];
        self.recs
            .sort_unstable_by(|a, b| a.id.cmp(&b.id).then_with(|| line(a).cmp(line(b))));
    }
}

fn write_json<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    // Serialising the row model cannot fail: string keys, no floats, raw values already valid.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// One line of `links.ndjson` (with its `\n`): what `serde_json` writes for a [`LinkIntent`],
/// without its generic string escaping (ids are hex, labels are identifiers; a label that
/// would need escaping goes through `serde_json`).
fn write_link(out: &mut Vec<u8>, link: &LinkIntent) {
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(b"{\"from_ns\":\"");
    out.extend_from_slice(link.from_ns.as_str().as_bytes());
    out.extend_from_slice(b"\",\"from_id\":\"");
    out.extend_from_slice(link.from_id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\",\"label\":");
    if link.label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        out.push(b'"');
        out.extend_from_slice(link.label.as_bytes());
        out.push(b'"');
    } else {
        write_json(out, &link.label);
    }
    out.extend_from_slice(b",\"to_id\":\"");
    out.extend_from_slice(link.to_id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn write_row(out: &mut Vec<u8>, row: &TargetRow) {
    match row {
        TargetRow::Thread(row) => write_json(out, row),
        TargetRow::Context(row) => write_json(out, row),
        TargetRow::Item(row) => write_json(out, row),
        TargetRow::Execution(row) => write_json(out, row),
        TargetRow::Step(row) => write_json(out, row),
        TargetRow::Part(row) => write_json(out, row),
    }
}

fn map_slice(
    source: &Source,
    ns: LegacyNamespace,
    file: &File,
    range: Range<usize>,
    cells: (u16, u16),
    join: &Join,
    losers: &HashMap<u64, (Uuid, String)>,
    pool: &Pool,
) -> Result<Mapped, RunError> {
    let rows = &source.rows[range.clone()];
    let first = range.start as u64;
    let want = |row: &RowRef| row.cell != SKIP && row.cell >= cells.0 && row.cell <= cells.1;
    // Output rows are about as long as input rows, plus their links: reserved once (only
    // the pages written count), rather than grown and copied.
    let (selected, bytes) = rows
        .iter()
        .filter(|row| want(row))
        .fold((0usize, 0usize), |(n, b), row| (n + 1, b + row.len as usize));
    let mut out = Mapped {
        arena: pool.take(bytes + bytes / 4 + selected * 600),
        recs: Vec::with_capacity(selected),
        ..Mapped::default()
    };
    for_each_row(file, &source.path, rows, want, |k, text| {
        let ordinal = first + k as u64 + 1;
        let row = match type_row(ns, text, ordinal) {
            Ok(row) => row,
            // Pass 1 typed the same text the same way: these do not happen.
            Err(RowError::Reject(reject)) => {
                out.rejects.push(reject);
                out.dropped += 1;
                return Ok(());
            }
            Err(RowError::Syntax { offset, error }) => {
                return Err(malformed(&source.path, rows[k].offset + offset as u64, ns, ordinal, &error));
            }
        };
        let emitted = match row {
            LegacyRow::Context(row) => join.context(row),
            LegacyRow::Execution(row) => join.execution(row),
            LegacyRow::Step(row) => join.step(row),
            LegacyRow::Event(row) => join.event(row),
            LegacyRow::Part(row) => join.part(row, ordinal),
        };
        out.take(ns, emitted, ordinal, losers);
        Ok(())
    })?;
    out.sort();
    Ok(out)
}

/// Cell ranges whose rows fit the budget together (at least one cell each).
fn plan_passes(bytes: &[u64; CELLS], budget: u64) -> Vec<(u16, u16)> {
    let mut passes = Vec::new();
    let mut low = 0;
    let mut acc = 0;
    for (cell, size) in bytes.iter().enumerate() {
        if acc > 0 && acc + size > budget {
            passes.push((low, cell as u16 - 1));
            low = cell as u16;
            acc = 0;
        }
        acc += size;
    }
    passes.push((low, CELLS as u16 - 1));
    passes
}

/// Syncs finished files on a background thread while the work goes on.
struct Syncer {
    tx: Option<mpsc::Sender<(PathBuf, File)>>,
    handle: Option<JoinHandle<Result<(), RunError>>>,
}

impl Syncer {
    fn new() -> Syncer {
        let (tx, rx) = mpsc::channel::<(PathBuf, File)>();
        let handle = std::thread::spawn(move || {
            for (path, file) in rx {
                file.sync_all().map_err(out_err(&path))?;
            }
            Ok(())
        });
        Syncer {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn sync(&self, path: &Path, file: File) {
        if let Some(tx) = &self.tx {
            // A send fails only when the thread stopped on an error, reported by `finish`.
            let _ = tx.send((path.to_path_buf(), file));
        }
    }

    fn finish(mut self) -> Result<(), RunError> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(()),
        }
    }
}

/// The output side of pass 2.
struct Out<'a> {
    dir: &'a Path,
    work: &'a Path,
    summary: Summary,
    links: AtomicFile,
    links_path: PathBuf,
    link_count: u64,
    rejects: Sorter,
    threads: Sorter,
    finished: Vec<FinishedFile>,
    syncer: Syncer,
}

impl Out<'_> {
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
        let mut line = Vec::with_capacity(128);
        write_json(&mut line, reject);
        self.rejects.push(&key, &line).map_err(out_err(self.work))
    }

    fn count_drops(&mut self, namespace: &str, rows: u64) {
        if rows > 0 {
            self.summary.rejected += rows;
            *self.summary.dropped.entry(namespace.to_string()).or_default() += rows;
        }
    }

    fn drop_row(&mut self, ns: LegacyNamespace, reject: Reject) -> Result<(), RunError> {
        debug_assert_eq!(reject.rule.effect(), Effect::Dropped);
        self.count_drops(ns.as_str(), 1);
        self.reject(&reject)
    }

    fn finish_file(&mut self, file: AtomicFile, path: &Path) -> Result<(), RunError> {
        let (finished, file) = file.finish_unsynced().map_err(out_err(path))?;
        self.syncer.sync(path, file);
        self.finished.push(finished);
        Ok(())
    }

    /// Maps, sorts and writes one legacy namespace into its target file.
    fn namespace(
        &mut self,
        ns: LegacyNamespace,
        source: Option<&Source>,
        join: &Join,
        losers: &HashMap<u64, (Uuid, String)>,
        budget: u64,
        pool: &Pool,
    ) -> Result<(), RunError> {
        let target = ns.target();
        let path = self.dir.join(target.file_name());
        let mut file = AtomicFile::create(&path).map_err(out_err(&path))?;
        let mut count = 0;
        if let Some(source) = source {
            let input = File::open(&source.path).map_err(|e| InputError::io(&source.path, e))?;
            // One cell range is written while the next is mapped: two in memory at most, so
            // each gets half the budget.
            let passes = plan_passes(&source.cells, (budget / 2).max(1));
            let (tx, rx) = mpsc::sync_channel::<Vec<Mapped>>(0);
            let (this, writer_file, writer_path) = (&mut *self, &mut file, &path);
            count = std::thread::scope(|scope| -> Result<u64, RunError> {
                let writer = scope.spawn(move || -> Result<u64, RunError> {
                    let mut count = 0;
                    for mapped in rx {
                        count += this.write_pass(ns, &mapped, writer_file, writer_path)?;
                        for slice in mapped {
                            pool.give(slice.arena);
                        }
                    }
                    Ok(count)
                });
                let mut mapping = Ok(());
                for cells in passes {
                    let mapped = parallel(&source.rows, |range| {
                        map_slice(source, ns, &input, range, cells, join, losers, pool)
                    });
                    match mapped {
                        // The writer stopped on an error: it says which.
                        Ok(mapped) => {
                            if tx.send(mapped).is_err() {
                                break;
                            }
                        }
                        Err(error) => {
                            mapping = Err(error);
                            break;
                        }
                    }
                }
                drop(tx);
                let written = writer
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                mapping?;
                written
            })?;
        }
        self.summary
            .output
            .insert(target.as_str().to_string(), count);
        self.finish_file(file, &path)?;
        // The links written so far are complete up to this namespace: sync them now.
        let links = self.links.writer();
        links.flush().map_err(out_err(&self.links_path))?;
        let handle = links.get_ref().try_clone().map_err(out_err(&self.links_path))?;
        self.syncer.sync(&self.links_path, handle);
        Ok(())
    }

    /// Writes the rows of one cell range in (id, text) order, each with its links; a repeated
    /// id is a duplicate legacy row (the first by text is kept).
    fn write_pass(
        &mut self,
        ns: LegacyNamespace,
        mapped: &[Mapped],
        file: &mut AtomicFile,
        path: &Path,
    ) -> Result<u64, RunError> {
        for part in mapped {
            self.count_drops(ns.as_str(), part.dropped);
            for reject in &part.rejects {
                self.reject(reject)?;
            }
            for (id, line) in &part.threads {
                self.threads
                    .push(id.as_bytes(), line)
                    .map_err(out_err(self.work))?;
            }
        }
        let mut heads: Vec<usize> = vec![0; mapped.len()];
        let mut count = 0;
        let mut kept: Option<(usize, Rec)> = None;
        let mut run_keys: Vec<String> = Vec::new();
        loop {
            // The smallest (id, line) among the slices' sorted records.
            let mut next: Option<(usize, Rec)> = None;
            for (slice, part) in mapped.iter().enumerate() {
                if let Some(rec) = part.recs.get(heads[slice]) {
                    let better = match &next {
                        None => true,
                        Some((s, best)) => (rec.id, part.line(rec)) < (best.id, mapped[*s].line(best)),
                    };
                    if better {
                        next = Some((slice, *rec));
                    }
                }
            }
            let Some((slice, rec)) = next else { break };
            heads[slice] += 1;
            if let Some((kept_slice, kept_rec)) = &kept {
                if kept_rec.id == rec.id {
                    let reject = if ns == LegacyNamespace::StoryParts {
                        if run_keys.is_empty() {
                            run_keys.push(part_key(mapped[*kept_slice].line(kept_rec)));
                        }
                        let key = part_key(mapped[slice].line(&rec));
                        if run_keys.contains(&key) {
                            Reject {
                                namespace: ns.to_string(),
                                id: rec.id.to_string(),
                                rule: Rule::PartKeyDuplicate,
                                detail: format!("key {key} is also part {}'s (newer or smaller id): not migrated", rec.id),
                            }
                        } else {
                            run_keys.push(key);
                            duplicate_id(ns, rec.id)
                        }
                    } else {
                        duplicate_id(ns, rec.id)
                    };
                    self.drop_row(ns, reject)?;
                    continue;
                }
            }
            kept = Some((slice, rec));
            run_keys.clear();
            count += 1;
            let part = &mapped[slice];
            let out = file.writer();
            out.write_all(part.line(&rec))
                .and_then(|_| out.write_all(b"\n"))
                .map_err(out_err(path))?;
            let links = part.links(&rec);
            if !links.is_empty() {
                self.link_count += memchr::memchr_iter(b'\n', links).count() as u64;
                self.links
                    .writer()
                    .write_all(links)
                    .map_err(out_err(&self.links_path))?;
            }
        }
        Ok(count)
    }

    /// Writes the threads, the links, the reject report and the summary, waits for every file
    /// to be on disk, then puts them all in place.
    fn finish(mut self) -> Result<Summary, RunError> {
        let threads = std::mem::replace(&mut self.threads, Sorter::new(self.work, "threads", 0));
        self.write_sorted(TargetNamespace::ThreadThreads, threads)?;
        self.summary.links = self.link_count;
        let Out {
            dir,
            summary,
            links,
            links_path,
            rejects,
            mut finished,
            syncer,
            ..
        } = self;
        let mut finish = |file: AtomicFile, path: &Path| -> Result<(), RunError> {
            let (done, file) = file.finish_unsynced().map_err(out_err(path))?;
            syncer.sync(path, file);
            finished.push(done);
            Ok(())
        };
        finish(links, &links_path)?;

        let rejects_path = dir.join("rejects.ndjson");
        let mut file = AtomicFile::create(&rejects_path).map_err(out_err(&rejects_path))?;
        rejects
            .drain(|_, line| {
                file.writer().write_all(line)?;
                file.writer().write_all(b"\n")
            })
            .map_err(out_err(&rejects_path))?;
        finish(file, &rejects_path)?;

        let summary_path = dir.join("summary.json");
        let mut file = AtomicFile::create(&summary_path).map_err(out_err(&summary_path))?;
        let document = summary_document(&summary);
        serde_json::to_writer_pretty(file.writer(), &document)
            .map_err(io::Error::other)
            .and_then(|_| file.writer().write_all(b"\n"))
            .map_err(out_err(&summary_path))?;
        finish(file, &summary_path)?;

        let t0 = std::time::Instant::now(); // TIMING
        syncer.finish()?;
        eprintln!("TIMING sync wait {:?}", t0.elapsed()); // TIMING
        for file in finished {
            let path = file.path().to_path_buf();
            file.commit().map_err(out_err(&path))?;
        }
        Ok(summary)
    }

    /// Writes a sorter's lines in order to `name`, skipping repeated keys.
    fn write_sorted(&mut self, target: TargetNamespace, rows: Sorter) -> Result<(), RunError> {
        let path = self.dir.join(target.file_name());
        let mut file = AtomicFile::create(&path).map_err(out_err(&path))?;
        let mut previous: Option<Vec<u8>> = None;
        let mut count = 0;
        rows.drain(|key, line| {
            if previous.as_deref() == Some(key) {
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
        self.finish_file(file, &path)
    }
}

fn duplicate_id(ns: LegacyNamespace, id: Uuid) -> Reject {
    Reject {
        namespace: ns.to_string(),
        id: id.to_string(),
        rule: Rule::DuplicateId,
        detail: format!("another {ns} row has id {id}; the first by row text is kept"),
    }
}

fn part_key(line: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Key {
        key: String,
    }
    serde_json::from_slice::<Key>(line)
        .map(|k| k.key)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

pub fn run(config: &Config) -> Result<Summary, RunError> {
    let out_dir = &config.out_dir;
    std::fs::create_dir_all(out_dir).map_err(out_err(out_dir))?;
    let work = WorkDir(out_dir.join(format!(".work-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).map_err(out_err(&work.0))?;
    let budget = config.sort_budget.max(1024);

    let t0 = std::time::Instant::now(); // TIMING
    // 1. Read the input once: the row index and the join.
    let Scanned {
        sources,
        join,
        rejects: scan_rejects,
        dropped: scan_dropped,
        part_facts,
        existing_threads,
        existing_contexts,
        ..
    } = scan(&config.input)?;
    eprintln!("TIMING scan {:?} cpu {}", t0.elapsed(), cpu_ms()); // TIMING
    let mut summary = Summary {
        input: BTreeMap::new(),
        output: BTreeMap::new(),
        links: 0,
        rejected: 0,
        rejects_by_rule: BTreeMap::new(),
        dropped: BTreeMap::new(),
        out: out_dir.clone(),
    };
    for ns in LegacyNamespace::ALL {
        summary.input.insert(ns.as_str().to_string(), 0);
    }
    for source in &sources {
        summary
            .input
            .insert(source.name.clone(), source.rows.len() as u64);
    }
    let mut options = config.options.clone();
    for (key, id) in existing_threads {
        options.existing_threads.entry(key).or_insert(id);
    }
    for (key, id) in existing_contexts {
        options.existing_contexts.entry(key).or_insert(id);
    }
    let join = join.finish(&options);
    let losers = part_losers(part_facts, &join);
    eprintln!("TIMING finish {:?} cpu {}", t0.elapsed(), cpu_ms()); // TIMING

    // 3. Map, sort, write.
    let links_path = out_dir.join("links.ndjson");
    let mut out = Out {
        dir: out_dir,
        work: &work.0,
        summary,
        links: AtomicFile::create(&links_path).map_err(out_err(&links_path))?,
        links_path,
        link_count: 0,
        rejects: Sorter::new(&work.0, "rejects", budget / 8),
        threads: Sorter::new(&work.0, "thread_threads", budget / 4),
        finished: Vec::new(),
        syncer: Syncer::new(),
    };
    // Arenas of mapped rows, reused from one cell range (and namespace) to the next.
    let pool = Pool::default();
    for (source, rows) in scan_dropped {
        out.count_drops(&sources[source as usize].name, rows);
    }
    for (_, reject) in &scan_rejects {
        out.reject(reject)?;
    }
    // The order of `links.ndjson`: by source namespace, then source id.
    for ns in [
        LegacyNamespace::ContextContexts,
        LegacyNamespace::StoryExecutions,
        LegacyNamespace::ContextEvents,
        LegacyNamespace::StoryParts,
        LegacyNamespace::StorySteps,
    ] {
        let source = sources.iter().find(|s| s.kind == Kind::Legacy(ns));
        out.namespace(ns, source, &join, &losers, budget as u64, &pool)?;
        eprintln!("TIMING {ns} {:?} cpu {}", t0.elapsed(), cpu_ms()); // TIMING
    }
    drop(sources);
    out.finish()
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

fn cpu_ms() -> u64 { // TIMING
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default(); // TIMING
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect(); // TIMING
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default(); // TIMING
    let rss = status.lines().filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM")).collect::<Vec<_>>().join(" "); // TIMING
    eprint!("[{rss}] "); // TIMING
    (fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)) * 10 // TIMING
} // TIMING
