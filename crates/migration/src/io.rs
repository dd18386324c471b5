//! Streaming row I/O: NDJSON per namespace, the old scripts' single-document dataset file
//! (parsed incrementally, never loaded whole), and atomic file writes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A malformed input: one error naming the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: byte {offset}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl InputError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        InputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NDJSON

/// Reads one JSON row per line; blank lines are skipped, a trailing `\r` is dropped.
pub struct NdjsonReader<R> {
    reader: R,
    line: Vec<u8>,
    offset: u64,
}

impl<R: BufRead> NdjsonReader<R> {
    pub fn new(reader: R) -> Self {
        NdjsonReader {
            reader,
            line: Vec::with_capacity(64 * 1024),
            offset: 0,
        }
    }

    /// The next row: its byte offset in the stream and its text (without the newline).
    pub fn next_row(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            self.line.clear();
            let read = self.reader.read_until(b'\n', &mut self.line)?;
            if read == 0 {
                return Ok(None);
            }
            let start = self.offset;
            self.offset += read as u64;
            let mut end = self.line.len();
            while end > 0 && matches!(self.line[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if self.line[..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((start, &self.line[..end])));
        }
    }
}

/// Opens an NDJSON file for row reading.
pub fn open_ndjson(path: &Path) -> Result<NdjsonReader<BufReader<File>>, InputError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    Ok(NdjsonReader::new(BufReader::with_capacity(
        256 * 1024,
        file,
    )))
}

// ---------------------------------------------------------------------------------------------
// Atomic writes

/// A file written through a temporary file in the same directory; [`AtomicFile::commit`]
/// renames it into place. Dropped without commit, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> io::Result<Self> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("not committed")
    }

    /// Flushes and syncs the temporary file; the rename is [`AtomicFile::commit`].
    pub fn finish(mut self) -> io::Result<FinishedFile> {
        let writer = self.writer.take().expect("not committed");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(FinishedFile {
            path: std::mem::take(&mut self.path),
            tmp: std::mem::take(&mut self.tmp),
        })
    }

    /// Flushes the temporary file and hands back a handle on it with the [`FinishedFile`]:
    /// the caller syncs it (`sync_all`, possibly on another thread) before the commit.
    pub fn finish_unsynced(mut self) -> io::Result<(FinishedFile, File)> {
        let writer = self.writer.take().expect("not committed");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        Ok((
            FinishedFile {
                path: std::mem::take(&mut self.path),
                tmp: std::mem::take(&mut self.tmp),
            },
            file,
        ))
    }

    /// Writes, syncs and renames in one go.
    pub fn commit(self) -> io::Result<()> {
        self.finish()?.commit()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A fully written temporary file waiting for its rename (so several files can be put in
/// place together, after everything succeeded). Dropped without commit, it is removed.
pub struct FinishedFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl FinishedFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn commit(mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for FinishedFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.writer().write_all(bytes)?;
    file.commit()
}

// ---------------------------------------------------------------------------------------------
// The dataset file: `{ns: [rows]}`, bare or wrapped in `{data}` / `{payload: {data}}`

/// What the incremental dataset reader yields.
#[derive(Debug, PartialEq, Eq)]
pub enum DatasetEvent {
    /// A namespace array starts (`ns` is its key).
    Namespace(String),
    /// One row of the current namespace: its byte offset in the file. The text is in
    /// [`DatasetReader::row`]; newlines outside strings are replaced by spaces, so it fits on
    /// one NDJSON line, and byte offsets within it equal offsets within the file.
    Row(u64),
}

/// An incremental reader of the dataset document over any `Read`. It keeps only the current
/// row in memory. Every array-valued member of the root object, or of a `data` / `payload`
/// object (nested in any order), is a namespace; other members are skipped.
pub struct DatasetReader<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// File offset of `buf[0]`.
    base: u64,
    row: Vec<u8>,
    /// Open containers: `true` for an object we descend into.
    stack: Vec<Frame>,
    started: bool,
    finished: bool,
    in_array: bool,
    rows_in_array: u64,
    copy_rows: bool,
    row_len: u64,
    /// Copied rows have their newlines (between tokens) made spaces.
    one_line: bool,
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    /// An object whose members are inspected; `first` until a member has been read.
    Container { first: bool },
}

const CHUNK: usize = 1 << 20;

/// The bytes that matter between strings: quotes, brackets and newlines.
static STRUCTURAL: [bool; 256] = table(b"\"{}[]\n\r");
/// The same, when newlines are copied as they are.
static STRUCTURAL_NO_NEWLINES: [bool; 256] = table(b"\"{}[]");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}

/// Where a string's text stops (its closing quote or an escape): short strings (ids, names,
/// dates: most of them) by a plain loop, long ones with `memchr`.
fn string_stop(window: &[u8]) -> Option<usize> {
    let head = window.len().min(32);
    match window[..head]
        .iter()
        .position(|b| *b == b'"' || *b == b'\\')
    {
        Some(i) => Some(i),
        None if head == window.len() => None,
        None => memchr::memchr2(b'"', b'\\', &window[head..]).map(|i| head + i),
    }
}

impl<R: Read> DatasetReader<R> {
    pub fn new(reader: R) -> Self {
        DatasetReader {
            reader,
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            base: 0,
            row: Vec::with_capacity(64 * 1024),
            stack: Vec::new(),
            started: false,
            finished: false,
            in_array: false,
            rows_in_array: 0,
            copy_rows: true,
            row_len: 0,
            one_line: true,
        }
    }

    /// Whether [`DatasetReader::row`] holds the row text (the default). Without it the reader
    /// only delimits rows (offset and [`DatasetReader::row_len`]), which is faster.
    pub fn copy_rows(mut self, copy: bool) -> Self {
        self.copy_rows = copy;
        self
    }

    /// The text of the last [`DatasetEvent::Row`] (empty when rows are not copied).
    pub fn row(&self) -> &[u8] {
        &self.row
    }

    /// The length in bytes of the last [`DatasetEvent::Row`] in the file.
    pub fn row_len(&self) -> u64 {
        self.row_len
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn error(&self, message: impl Into<String>) -> (u64, String) {
        (self.offset(), message.into())
    }

    /// Makes at least one byte available; `false` at the end of the input.
    fn fill(&mut self) -> Result<bool, (u64, String)> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(format!("read error: {e}"))),
            }
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, (u64, String)> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let b = self.buf[self.pos];
            if b.is_ascii_whitespace() || (self.offset() == 0 && b == 0xEF) {
                if b == 0xEF {
                    // UTF-8 BOM at the start of the file.
                    self.skip_bom()?;
                    continue;
                }
                self.pos += 1;
                continue;
            }
            return Ok(Some(b));
        }
    }

    fn skip_bom(&mut self) -> Result<(), (u64, String)> {
        for expected in [0xEF, 0xBB, 0xBF] {
            if !self.fill()? || self.buf[self.pos] != expected {
                return Err(self.error("unexpected byte (expected a JSON document)"));
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn expect_any(&mut self, what: &str) -> Result<u8, (u64, String)> {
        match self.peek()? {
            Some(b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(format!("unexpected end of input, expected {what}"))),
        }
    }

    /// Copies (or skips) one JSON value starting at the next non-space byte. Structure is
    /// checked (brackets, strings); the full grammar of a row is checked when it is typed.
    /// Works on whole slices of the buffer: strings are skipped with `memchr`, the bytes
    /// between them with a table lookup, and copies are bulk.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<(), (u64, String)> {
        let first = match self.peek()? {
            Some(b) => b,
            None => return Err(self.error("unexpected end of input, expected a value")),
        };
        if !matches!(first, b'"' | b'{' | b'[') {
            // A scalar: letters, digits, sign, point, exponent.
            let mut any = false;
            while self.fill()? {
                let window = &self.buf[self.pos..self.len];
                let n = window
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')))
                    .unwrap_or(window.len());
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(&window[..n]);
                }
                self.pos += n;
                any |= n > 0;
                if self.pos < self.len {
                    break;
                }
            }
            if !any {
                return Err(self.error(format!("unexpected byte 0x{first:02x}, expected a value")));
            }
            return Ok(());
        }
        let mut depth: Vec<u8> = Vec::new();
        let mut in_string = false;
        // Newlines matter only when a copied row must fit on one line.
        let table = if out.is_some() && self.one_line {
            &STRUCTURAL
        } else {
            &STRUCTURAL_NO_NEWLINES
        };
        loop {
            if !self.fill()? {
                return Err(self.error(if in_string {
                    "unexpected end of input inside a string"
                } else {
                    "unexpected end of input inside a value"
                }));
            }
            if in_string {
                let window = &self.buf[self.pos..self.len];
                match string_stop(window) {
                    None => {
                        if let Some(out) = out.as_deref_mut() {
                            out.extend_from_slice(window);
                        }
                        self.pos = self.len;
                    }
                    Some(i) => {
                        let stop = window[i];
                        if let Some(out) = out.as_deref_mut() {
                            out.extend_from_slice(&window[..=i]);
                        }
                        self.pos += i + 1;
                        if stop == b'"' {
                            in_string = false;
                            if depth.is_empty() {
                                return Ok(());
                            }
                        } else {
                            // An escape: the escaped byte is copied as is.
                            if !self.fill()? {
                                return Err(self.error("unexpected end of input inside a string"));
                            }
                            let escaped = self.buf[self.pos];
                            if let Some(out) = out.as_deref_mut() {
                                out.push(escaped);
                            }
                            self.pos += 1;
                        }
                    }
                }
                continue;
            }
            // Between strings: up to the next byte that matters.
            let window = &self.buf[self.pos..self.len];
            let mut copied = 0;
            let mut i = 0;
            let mut done = false;
            while i < window.len() {
                let b = window[i];
                if !table[b as usize] {
                    i += 1;
                    continue;
                }
                match b {
                    b'"' => {
                        in_string = true;
                        i += 1;
                        break;
                    }
                    b'{' | b'[' => depth.push(b),
                    b'}' | b']' => {
                        let open = if b == b'}' { b'{' } else { b'[' };
                        if depth.pop() != Some(open) {
                            if let Some(out) = out.as_deref_mut() {
                                out.extend_from_slice(&window[copied..i]);
                            }
                            self.pos += i;
                            return Err(self.error(format!("unexpected `{}`", b as char)));
                        }
                        if depth.is_empty() {
                            i += 1;
                            done = true;
                            break;
                        }
                    }
                    // Newlines between tokens become spaces: a copied row stays on one line.
                    _ => {
                        if let Some(out) = out.as_deref_mut() {
                            out.extend_from_slice(&window[copied..i]);
                            out.push(b' ');
                        }
                        copied = i + 1;
                    }
                }
                i += 1;
            }
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&window[copied..i]);
            }
            self.pos += i;
            if done {
                return Ok(());
            }
        }
    }

    fn key(&mut self) -> Result<String, (u64, String)> {
        let at = self.offset();
        if self.peek()? != Some(b'"') {
            return Err(self.error("expected a member name (a string)"));
        }
        let mut text = Vec::new();
        self.value(Some(&mut text))?;
        serde_json::from_slice::<String>(&text).map_err(|e| (at, format!("bad member name: {e}")))
    }

    /// The next event, or `None` at the end of the document.
    pub fn next_event(&mut self) -> Result<Option<DatasetEvent>, (u64, String)> {
        self.next_event_into(None)
    }

    /// [`DatasetReader::next_event`], appending a row's text to `out` exactly as in the file
    /// (newlines included) instead of keeping it in [`DatasetReader::row`]: a caller gathering
    /// many rows saves a copy.
    pub fn next_row_into(
        &mut self,
        out: &mut Vec<u8>,
    ) -> Result<Option<DatasetEvent>, (u64, String)> {
        self.next_event_into(Some(out))
    }

    fn next_event_into(
        &mut self,
        out: Option<&mut Vec<u8>>,
    ) -> Result<Option<DatasetEvent>, (u64, String)> {
        if self.finished {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            if self.expect_any("`{`")? != b'{' {
                self.pos -= 1;
                return Err(self.error("the dataset must be a JSON object"));
            }
            self.stack.push(Frame::Container { first: true });
        }
        loop {
            if self.in_array {
                // Inside a namespace array: a row, `,` or `]`.
                match self.peek()? {
                    Some(b']') => {
                        self.pos += 1;
                        self.in_array = false;
                        continue;
                    }
                    None => return Err(self.error("unexpected end of input inside an array")),
                    Some(b',') if self.rows_in_array > 0 => self.pos += 1,
                    Some(_) if self.rows_in_array > 0 => {
                        return Err(self.error("expected `,` or `]` after a row"))
                    }
                    Some(_) => {}
                }
                // The row starts at its first byte, after any space following the comma.
                self.peek()?;
                let at = self.offset();
                self.row.clear();
                if let Some(out) = out {
                    self.one_line = false;
                    self.value(Some(out))?;
                } else if self.copy_rows {
                    self.one_line = true;
                    let mut row = std::mem::take(&mut self.row);
                    let result = self.value(Some(&mut row));
                    self.row = row;
                    result?;
                } else {
                    self.value(None)?;
                }
                self.row_len = self.offset() - at;
                self.rows_in_array += 1;
                return Ok(Some(DatasetEvent::Row(at)));
            }
            let Some(Frame::Container { first }) = self.stack.last().copied() else {
                // The root object is closed: only whitespace may follow.
                if self.peek()?.is_some() {
                    return Err(self.error("unexpected data after the dataset document"));
                }
                self.finished = true;
                return Ok(None);
            };
            match self.expect_any("a member or `}`")? {
                b'}' => {
                    self.stack.pop();
                    continue;
                }
                b',' if !first => {}
                b'"' if first => self.pos -= 1,
                _ => {
                    self.pos -= 1;
                    return Err(self.error(if first {
                        "expected a member name or `}`"
                    } else {
                        "expected `,` or `}`"
                    }));
                }
            }
            if let Some(Frame::Container { first }) = self.stack.last_mut() {
                *first = false;
            }
            let name = self.key()?;
            if self.expect_any("`:`")? != b':' {
                self.pos -= 1;
                return Err(self.error("expected `:`"));
            }
            match self.peek()? {
                Some(b'[') => {
                    self.pos += 1;
                    self.in_array = true;
                    self.rows_in_array = 0;
                    self.row.clear();
                    return Ok(Some(DatasetEvent::Namespace(name)));
                }
                Some(b'{') if name == "data" || name == "payload" => {
                    self.pos += 1;
                    self.stack.push(Frame::Container { first: true });
                }
                _ => self.value(None)?,
            }
        }
    }
}
