//! The streaming driver of the transform: reads an input (an extract directory of NDJSON files,
//! or the old scripts' dataset file), runs the two passes of [`crate::transform`], and writes
//! `02-transform/`: one NDJSON file per target namespace (ordered by id), `links.ndjson`,
//! `rejects.ndjson` (both in canonical order) and `summary.json`. All files appear together,
//! by rename, only when everything succeeded.
//!
//! How it stays fast and small (memory follows the join and the sort budget, not the input):
//!
//! 1. **Pass 1** reads the input once, in order. The scanning thread delimits rows (8 bytes of
//!    index per row, `Rows`) and hands blocks of row text to workers, which type each row
//!    for the join only (members delimited, not parsed, big JSON attributes skipped) and give
//!    it a *cell*: the first byte of its id. Their [`JoinBuilder`]s are merged in input order;
//!    report entries go straight to a sorter that spills beyond its budget. Nothing is
//!    spooled: pass 2 reads the input again (from the page cache).
//! 2. [`JoinBuilder::finish`] decides what depends on several rows; part keys that may repeat
//!    (their hash does) are read again and compared exactly.
//! 3. **Pass 2**, one target namespace at a time in the order `links.ndjson` needs: the rows
//!    of a range of cells (as many as fit half the sort budget) are read back, typed in full
//!    (validated), mapped, serialised with their links and sorted by id, in parallel; one
//!    range is written while the next is mapped. Id order is cell order, so ranges are written
//!    one after the other and the rows themselves are never spilled.
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

/// The rows of one source in file order, 8 bytes each (a large input has tens of millions):
/// a row's offset is the previous row's end plus the gap before it, usually one byte (a
/// comma, a newline); the offset of every [`MARK`]th row is kept for random access.
#[derive(Debug, Default)]
struct Rows {
    packed: Vec<Packed>,
    marks: Vec<u64>,
    /// Offsets of rows whose gap does not fit a byte.
    far: HashMap<usize, u64>,
    /// The end of the last row.
    end: u64,
}

#[derive(Debug, Clone, Copy)]
struct Packed {
    len: u32,
    /// `FAR`: the offset is in [`Rows::far`].
    gap: u8,
    cell: u8,
    skip: bool,
}

const MARK: usize = 1024;
const FAR: u8 = u8::MAX;

impl Rows {
    fn len(&self) -> usize {
        self.packed.len()
    }

    fn push(&mut self, offset: u64, len: u32) {
        let index = self.packed.len();
        let gap = match offset.checked_sub(self.end) {
            Some(gap) if gap < u64::from(FAR) => gap as u8,
            _ => {
                self.far.insert(index, offset);
                FAR
            }
        };
        if index % MARK == 0 {
            self.marks.push(offset);
        }
        self.packed.push(Packed {
            len,
            gap,
            cell: 0,
            skip: false,
        });
        self.end = offset + u64::from(len);
    }

    fn offset_after(&self, index: usize, previous_end: u64) -> u64 {
        match self.packed[index].gap {
            FAR => self.far.get(&index).copied().unwrap_or(previous_end),
            gap => previous_end + u64::from(gap),
        }
    }

    /// The rows of `range` with their offsets, in order.
    fn iter(&self, range: Range<usize>) -> impl Iterator<Item = (usize, RowRef)> + '_ {
        let first = range.start;
        let mut end = 0u64;
        range.map(move |index| {
            let offset = if index == first {
                self.offset_of(index)
            } else {
                self.offset_after(index, end)
            };
            let packed = self.packed[index];
            end = offset + u64::from(packed.len);
            let cell = if packed.skip {
                SKIP
            } else {
                u16::from(packed.cell)
            };
            (
                index,
                RowRef {
                    offset,
                    len: packed.len,
                    cell,
                },
            )
        })
    }

    /// The offset of row `index` (< len), walking from the nearest mark.
    fn offset_of(&self, index: usize) -> u64 {
        let first = index / MARK * MARK;
        let mut offset = self.marks.get(index / MARK).copied().unwrap_or(self.end);
        for i in first + 1..=index {
            offset = self.offset_after(i, offset + u64::from(self.packed[i - 1].len));
        }
        offset
    }

    fn get(&self, index: usize) -> Option<RowRef> {
        if index >= self.packed.len() {
            return None;
        }
        self.iter(index..index + 1).next().map(|(_, row)| row)
    }

    fn set_cell(&mut self, index: usize, cell: u16) {
        if let Some(packed) = self.packed.get_mut(index) {
            packed.skip = cell == SKIP;
            packed.cell = cell as u8;
        }
    }
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
    rows: Rows,
    /// Estimated output bytes of the rows of each cell (legacy namespaces, after pass 1).
    cells: Box<[u64; CELLS]>,
}

impl Source {
    fn new(name: String, path: PathBuf) -> Source {
        Source {
            kind: Kind::of(&name),
            name,
            path,
            rows: Rows::default(),
            cells: Box::new([0; CELLS]),
        }
    }

    fn push(&mut self, offset: u64, len: u64) -> Result<(), RunError> {
        let len = u32::try_from(len).map_err(|_| InputError::Malformed {
            path: self.path.clone(),
            offset,
            message: format!(
                "{} row {}: larger than 4 GiB",
                self.name,
                self.rows.len() + 1
            ),
        })?;
        self.rows.push(offset, len);
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
    send: &'a mut SendBlock<'a>,
}

/// Hands a block of rows (and the sources known so far) to pass 1's workers.
type SendBlock<'a> = dyn FnMut(Block, &[Source]) -> Result<(), RunError> + 'a;

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
            let event =
                reader
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

/// Calls `f(index, row, text)` for each row of `range` that `want` selects, in file order,
/// reading consecutive rows in one window.
fn for_each_row(
    file: &File,
    path: &Path,
    rows: &Rows,
    range: Range<usize>,
    want: impl Fn(&RowRef) -> bool,
    mut f: impl FnMut(usize, &RowRef, &[u8]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut window: Vec<(usize, RowRef)> = Vec::new();
    let mut selected = rows.iter(range).filter(|(_, row)| want(row)).peekable();
    while let Some(first) = selected.next() {
        window.clear();
        window.push(first);
        let start = first.1.offset;
        let mut end = start + u64::from(first.1.len);
        while let Some((_, row)) = selected.peek() {
            let row_end = row.offset + u64::from(row.len);
            if row.offset < end || row_end - start > WINDOW || row.offset - end > GAP {
                break;
            }
            end = row_end;
            window.extend(selected.next());
        }
        let size = usize::try_from(end - start).map_err(|_| InputError::Malformed {
            path: path.to_path_buf(),
            offset: start,
            message: "row too large for this platform".into(),
        })?;
        buf.resize(size, 0);
        read_at(file, &mut buf, start).map_err(|e| InputError::io(path, e))?;
        for (index, row) in &window {
            let at = (row.offset - start) as usize;
            f(*index, row, &buf[at..at + row.len as usize])?;
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes of `file` from `offset` (one positional read on unix).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Splits `rows` into at most `parts` contiguous ranges of about equal bytes.
fn split_by_bytes(rows: &Rows, parts: usize) -> Vec<Range<usize>> {
    let total: u64 = rows.packed.iter().map(|r| u64::from(r.len)).sum();
    let parts = if rows.len() < 2048 || total < (4 << 20) {
        1
    } else {
        parts.max(1)
    };
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    let mut acc = 0u64;
    for (i, row) in rows.packed.iter().enumerate() {
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
    rows: &Rows,
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
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    // The first error in input order is the one reported.
    results.into_iter().collect()
}

fn malformed(
    path: &Path,
    offset: u64,
    ns: impl std::fmt::Display,
    ordinal: u64,
    error: &serde_json::Error,
) -> RunError {
    InputError::Malformed {
        path: path.to_path_buf(),
        offset,
        message: format!(
            "{ns} row {ordinal}: invalid JSON: {}",
            strip_position(error)
        ),
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

/// The reject report being built: entries in the report's order (spilled to disk beyond the
/// budget, never all in memory) and counted per rule.
struct Reports {
    sorter: Sorter,
    by_rule: BTreeMap<String, u64>,
    work: PathBuf,
}

impl Reports {
    fn new(work: &Path, budget: usize) -> Reports {
        Reports {
            sorter: Sorter::new(work, "rejects", budget),
            by_rule: BTreeMap::new(),
            work: work.to_path_buf(),
        }
    }

    fn push(&mut self, reject: &Reject) -> Result<(), RunError> {
        *self
            .by_rule
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
        self.sorter.push(&key, &line).map_err(out_err(&self.work))
    }
}

/// What a row adds to its own length once mapped: its links (a link line is about 150 bytes)
/// and its sort record; contexts also make a thread row. Pass 2 sizes its cell ranges on it.
fn extra_output(kind: Kind) -> u32 {
    let links = match kind {
        Kind::Legacy(LegacyNamespace::ContextContexts) => 3,
        Kind::Legacy(LegacyNamespace::StoryExecutions) => 4,
        Kind::Legacy(LegacyNamespace::ContextEvents) => 3,
        Kind::Legacy(_) => 1,
        _ => 0,
    };
    links * 150 + 48
}

/// What pass 1 found in one block.
#[derive(Default)]
struct Light {
    seq: u64,
    join: JoinBuilder,
    /// (source, reject) of rows not migrated, and how many rows per source that is.
    rejects: Vec<(u32, Reject)>,
    dropped: Vec<(u32, u64)>,
    /// (source, estimated output bytes) and cell of each row of the block.
    rows: Vec<(u32, u32)>,
    cells: Vec<u16>,
    /// (hash of the key, ordinal) of each part that has a step and an idx.
    /// The key hash of each part row in order (0: no key, not migrated).
    part_keys: Vec<u64>,
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
        rows: block
            .rows
            .iter()
            .map(|r| {
                (
                    r.source,
                    r.len
                        .saturating_add(extra_output(sources[r.source as usize].1)),
                )
            })
            .collect(),
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
                Ok(typed) => light.cells[k] = light.add(typed),
                Err(RowError::Reject(reject)) => {
                    if ns == LegacyNamespace::StoryParts {
                        light.part_keys.push(0);
                    }
                    not_migrated(&mut light, reject)
                }
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
    fn add(&mut self, row: LegacyRow) -> u16 {
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
                    self.part_keys.push(key_hash(&slot.step, slot.idx));
                    cell(&slot.id)
                }
                // Not migrated, but mapped all the same for its report.
                None => {
                    self.part_keys.push(0);
                    0
                }
            },
        }
    }
}

/// Pass 1 over the whole input: the row index of every source and the join.
#[derive(Default)]
struct Scanned {
    sources: Vec<Source>,
    join: JoinBuilder,
    reports: Option<Reports>,
    /// Writing a spilled report run failed.
    report_error: Option<RunError>,
    dropped: Vec<(u32, u64)>,
    /// (hash of the key, ordinal) of each part that has a step and an idx.
    /// The key hash of each part row in order (0: no key, not migrated).
    part_keys: Vec<u64>,
    existing_threads: Vec<(String, Uuid)>,
    existing_contexts: Vec<(String, Uuid)>,
    /// Per source: the cell of each row, and the bytes of each cell.
    cells: Vec<Vec<u16>>,
    bytes: Vec<[u64; CELLS]>,
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
            if let Some(reports) = self.reports.as_mut() {
                for (_, reject) in &light.rejects {
                    if let Err(error) = reports.push(reject) {
                        self.report_error.get_or_insert(error);
                    }
                }
            }
            self.dropped.extend(light.dropped);
            self.part_keys.extend(light.part_keys);
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
                    self.bytes.resize_with(source + 1, || [0; CELLS]);
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
fn scan(input: &Input, reports: Reports) -> Result<Scanned, RunError> {
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
            reports: Some(reports),
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
        if let Some(error) = scanned.report_error.take() {
            return Err(error);
        }
        scanned.sources = sources;
        for (index, source) in scanned.sources.iter_mut().enumerate() {
            if let (Some(cells), Some(bytes)) = (scanned.cells.get(index), scanned.bytes.get(index))
            {
                for (row, cell) in cells.iter().enumerate() {
                    source.rows.set_cell(row, *cell);
                }
                *source.cells = *bytes;
            }
        }
        scanned.cells = Vec::new();
        Ok(scanned)
    })
}

/// A 64-bit hash of a part key `<step>:<idx>`: equal keys hash equal, so only parts whose
/// hashes collide can share a key; those few are read again and compared exactly.
fn key_hash(step: &Uuid, idx: i64) -> u64 {
    let mut hasher = crate::transform::IdHasher::default();
    std::hash::Hasher::write(&mut hasher, step.as_bytes());
    std::hash::Hasher::write(&mut hasher, &idx.to_le_bytes());
    // Never 0, which marks a part without a key.
    std::hash::Hasher::finish(&hasher).max(1)
}

/// The ordinals of the parts whose key hash is not unique (the only ones that may share a
/// key), from the key hash of every part row in order. Sorted in place as one word per part:
/// the high bits of the hash and the row index (two parts differing only in the dropped bits
/// are a false candidate, checked exactly afterwards).
fn key_candidates(mut keys: Vec<u64>) -> Vec<u64> {
    let bits = u64::BITS - (keys.len() as u64).leading_zeros();
    let low = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut kept = 0;
    for index in 0..keys.len() {
        if keys[index] != 0 {
            keys[kept] = (keys[index] & !low) | index as u64;
            kept += 1;
        }
    }
    keys.truncate(kept);
    keys.sort_unstable();
    let mut candidates: Vec<u64> = keys
        .chunk_by(|a, b| a & !low == b & !low)
        .filter(|group| group.len() > 1)
        .flat_map(|group| group.iter().map(|key| (key & low) + 1))
        .collect();
    candidates.sort_unstable();
    candidates
}

/// Parts whose key another part wins (newest updatedAt, then smallest id): ordinal -> (the
/// winner's id, the key). Parts tied with the winner on both share its id; which of those is
/// kept is decided on their text, where they meet in pass 2. Only parts whose key hash is
/// not unique are read again (from the input) for their exact key.
fn part_losers(
    candidates: Vec<u64>,
    parts: Option<&Source>,
    join: &Join,
) -> Result<HashMap<u64, (Uuid, String)>, RunError> {
    let mut losers = HashMap::new();
    let Some(parts) = parts else {
        return Ok(losers);
    };
    if candidates.is_empty() {
        return Ok(losers);
    }
    /// A part that will be migrated if its step is.
    struct Fact {
        step: Uuid,
        idx: i64,
        /// updatedAt in ms (`i64::MIN` when absent or invalid).
        updated: i64,
        id: Uuid,
        ordinal: u64,
    }
    let file = File::open(&parts.path).map_err(|e| InputError::io(&parts.path, e))?;
    let mut facts = Vec::with_capacity(candidates.len());
    let mut buf = Vec::new();
    for ordinal in candidates {
        let Some(row) = parts.rows.get(ordinal as usize - 1) else {
            continue;
        };
        buf.resize(row.len as usize, 0);
        read_at(&file, &mut buf, row.offset).map_err(|e| InputError::io(&parts.path, e))?;
        let ns = LegacyNamespace::StoryParts;
        let part = match type_row_light(ns, &buf, ordinal) {
            Ok(LegacyRow::Part(part)) => part,
            Err(RowError::Syntax { offset, error }) => {
                return Err(malformed(
                    &parts.path,
                    row.offset + offset as u64,
                    ns,
                    ordinal,
                    &error,
                ));
            }
            _ => continue,
        };
        if let Some(slot) = part_slot(&part).filter(|slot| join.is_step_migrated(&slot.step)) {
            facts.push(Fact {
                step: slot.step,
                idx: slot.idx,
                updated: part
                    .updated_at
                    .as_ref()
                    .and_then(LegacyDate::millis)
                    .unwrap_or(i64::MIN),
                id: slot.id,
                ordinal,
            });
        }
    }
    facts.sort_unstable_by(|a, b| {
        (a.step, a.idx)
            .cmp(&(b.step, b.idx))
            .then(b.updated.cmp(&a.updated))
            .then(a.id.cmp(&b.id))
            .then(a.ordinal.cmp(&b.ordinal))
    });
    for group in facts.chunk_by(|a, b| (a.step, a.idx) == (b.step, b.idx)) {
        let winner = &group[0];
        for fact in &group[1..] {
            if (fact.updated, fact.id) != (winner.updated, winner.id) {
                losers.insert(
                    fact.ordinal,
                    (winner.id, format!("{}:{}", winner.step, winner.idx)),
                );
            }
        }
    }
    Ok(losers)
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
                detail: format!(
                    "key {key} is also part {winner}'s (newer or smaller id): not migrated"
                ),
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
    if link
        .label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
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

/// What pass 2 maps a namespace with.
struct Mapping<'a> {
    ns: LegacyNamespace,
    source: &'a Source,
    file: &'a File,
    join: &'a Join,
    losers: &'a HashMap<u64, (Uuid, String)>,
    pool: &'a Pool,
}

/// Maps the rows of `range` whose cell is in `cells`, sorted by (id, text).
fn map_slice(
    mapping: &Mapping,
    range: Range<usize>,
    cells: (u16, u16),
) -> Result<Mapped, RunError> {
    let Mapping {
        ns,
        source,
        file,
        join,
        losers,
        pool,
    } = *mapping;
    let want = |row: &RowRef| row.cell != SKIP && row.cell >= cells.0 && row.cell <= cells.1;
    // Output rows are about as long as input rows, plus their links: reserved once (only
    // the pages written count), rather than grown and copied.
    let (selected, bytes) = source.rows.packed[range.clone()]
        .iter()
        .filter(|row| !row.skip && u16::from(row.cell) >= cells.0 && u16::from(row.cell) <= cells.1)
        .fold((0usize, 0usize), |(n, b), row| {
            (n + 1, b + row.len as usize)
        });
    let mut out = Mapped {
        arena: pool.take(bytes + bytes / 4 + selected * 600),
        recs: Vec::with_capacity(selected),
        ..Mapped::default()
    };
    for_each_row(
        file,
        &source.path,
        &source.rows,
        range,
        want,
        |index, at, text| {
            let ordinal = index as u64 + 1;
            let row = match type_row(ns, text, ordinal) {
                Ok(row) => row,
                // Pass 1 typed the same text the same way: these do not happen.
                Err(RowError::Reject(reject)) => {
                    out.rejects.push(reject);
                    out.dropped += 1;
                    return Ok(());
                }
                Err(RowError::Syntax { offset, error }) => {
                    return Err(malformed(
                        &source.path,
                        at.offset + offset as u64,
                        ns,
                        ordinal,
                        &error,
                    ));
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
        },
    )?;
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
    reports: Reports,
    threads: Sorter,
    finished: Vec<FinishedFile>,
    syncer: Syncer,
}

impl Out<'_> {
    fn reject(&mut self, reject: &Reject) -> Result<(), RunError> {
        self.reports.push(reject)
    }

    fn count_drops(&mut self, namespace: &str, rows: u64) {
        if rows > 0 {
            self.summary.rejected += rows;
            *self
                .summary
                .dropped
                .entry(namespace.to_string())
                .or_default() += rows;
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
            let mapping = Mapping {
                ns,
                source,
                file: &input,
                join,
                losers,
                pool,
            };
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
                let mut failed = Ok(());
                for cells in passes {
                    let mapped = parallel(&source.rows, |range| map_slice(&mapping, range, cells));
                    match mapped {
                        // The writer stopped on an error: it says which.
                        Ok(mapped) => {
                            if tx.send(mapped).is_err() {
                                break;
                            }
                        }
                        Err(error) => {
                            failed = Err(error);
                            break;
                        }
                    }
                }
                drop(tx);
                let written = writer
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                failed?;
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
        let handle = links
            .get_ref()
            .try_clone()
            .map_err(out_err(&self.links_path))?;
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
                        Some((s, best)) => {
                            (rec.id, part.line(rec)) < (best.id, mapped[*s].line(best))
                        }
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
            mut summary,
            links,
            links_path,
            reports,
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
        summary.rejects_by_rule = reports.by_rule;
        reports
            .sorter
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

        syncer.finish()?;
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

    // 1. Read the input once: the row index and the join.
    let Scanned {
        sources,
        join,
        reports: scan_reports,
        dropped: scan_dropped,
        part_keys,
        existing_threads,
        existing_contexts,
        ..
    } = scan(&config.input, Reports::new(&work.0, budget / 8))?;
    // Always there: `scan` hands its sorter back.
    let scan_reports = scan_reports.unwrap_or_else(|| Reports::new(&work.0, budget / 8));
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
    // Only the few parts that may share a key are kept past this point.
    let candidates = key_candidates(part_keys);
    let join = join.finish(&options);
    let parts = sources
        .iter()
        .find(|s| s.kind == Kind::Legacy(LegacyNamespace::StoryParts));
    let losers = part_losers(candidates, parts, &join)?;

    // 3. Map, sort, write.
    let links_path = out_dir.join("links.ndjson");
    let mut out = Out {
        dir: out_dir,
        work: &work.0,
        summary,
        links: AtomicFile::create(&links_path).map_err(out_err(&links_path))?,
        links_path,
        link_count: 0,
        reports: scan_reports,
        threads: Sorter::new(&work.0, "thread_threads", budget / 4),
        finished: Vec::new(),
        syncer: Syncer::new(),
    };
    // Arenas of mapped rows, reused from one cell range (and namespace) to the next.
    let pool = Pool::default();
    for (source, rows) in scan_dropped {
        out.count_drops(&sources[source as usize].name, rows);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_written_exactly_as_serde_json_writes_them() {
        let labels = [
            "thread",
            "currentExecution",
            "whatsappMessages",
            "odd \"label\"\n",
        ];
        for (i, label) in labels.iter().enumerate() {
            let link = LinkIntent {
                from_ns: TargetNamespace::ALL[i],
                from_id: Uuid::from_u128(0xABCD_0000_0000_4000_8000_0000_0000_0001 + i as u128),
                label: label.to_string(),
                to_id: Uuid::from_u128(u128::MAX - i as u128),
            };
            let mut ours = Vec::new();
            write_link(&mut ours, &link);
            let mut theirs = serde_json::to_vec(&link).unwrap();
            theirs.push(b'\n');
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn passes_cover_every_cell_once_within_the_budget() {
        let mut bytes = [10u64; CELLS];
        bytes[3] = 500;
        let passes = plan_passes(&bytes, 100);
        assert_eq!(passes.first().map(|p| p.0), Some(0));
        assert_eq!(passes.last().map(|p| p.1), Some(255));
        for pair in passes.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0);
        }
        for (low, high) in &passes {
            let size: u64 = bytes[*low as usize..=*high as usize].iter().sum();
            // A cell alone may exceed the budget; several never do.
            assert!(size <= 100 || low == high, "{low}..{high}: {size}");
        }
    }

    #[test]
    fn slices_split_rows_by_bytes_in_order() {
        let mut rows = Rows::default();
        for i in 0..10_000u64 {
            rows.push(i * 2000, if i < 5000 { 100 } else { 1500 });
        }
        let ranges = split_by_bytes(&rows, 2);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[0].end, ranges[1].start);
        assert_eq!(ranges[1].end, rows.len());
        // Half of the 8 MB: the 5000 short rows (0.5 MB) and 2334 long ones (3.5 MB).
        assert_eq!(ranges[0].end, 7334, "{ranges:?}");
    }

    #[test]
    fn row_offsets_come_back_from_lengths_and_gaps_near_and_far() {
        let mut rows = Rows::default();
        let mut expected = Vec::new();
        let mut offset = 17u64;
        for i in 0..5000u64 {
            let len = 10 + (i * 7919 % 300) as u32;
            rows.push(offset, len);
            expected.push((offset, len));
            // Gaps of one byte, of a few, and now and then far beyond a byte.
            offset += u64::from(len) + if i % 997 == 0 { 70_000 } else { 1 + i % 3 };
        }
        let all: Vec<(u64, u32)> = rows
            .iter(0..rows.len())
            .map(|(_, r)| (r.offset, r.len))
            .collect();
        assert_eq!(all, expected);
        for start in [0, 1, 1023, 1024, 1025, 2048, 4999] {
            let first = rows.iter(start..rows.len()).next().unwrap().1;
            assert_eq!((first.offset, first.len), expected[start], "from {start}");
            assert_eq!(rows.get(start).map(|r| r.offset), Some(expected[start].0));
        }
        assert!(rows.get(5000).is_none());
        rows.set_cell(3, 200);
        rows.set_cell(4, SKIP);
        let cells: Vec<u16> = rows.iter(2..5).map(|(_, r)| r.cell).collect();
        assert_eq!(cells, vec![0, 200, SKIP]);
        assert_eq!(std::mem::size_of::<Packed>(), 8);
    }

    #[test]
    fn key_candidates_are_the_parts_whose_key_repeats() {
        // Ordinal = index + 1; 0 = no key.
        let keys = vec![5 << 40, 0, 9 << 40, 5 << 40, 7 << 40, 0, 9 << 40];
        assert_eq!(key_candidates(keys), vec![1, 3, 4, 7]);
        assert_eq!(key_candidates(vec![1 << 40, 2 << 40, 0]), Vec::<u64>::new());
    }
}
