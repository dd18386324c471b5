//! File output: per org a directory with the rows in the admin-query shape, either one JSON
//! document (`dataset.json`, `{context_contexts:[…], context_events:[…], …}`: the old scripts'
//! dataset shape) or one NDJSON file per namespace (`<namespace>.ndjson`, the extract's
//! layout), plus `schema.json` (the app's as-deployed schema).
//!
//! Written streaming (the JSON document is assembled from per-namespace spool files at the
//! end) into a temporary directory that is renamed into place when the org is complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::ns::Ns;
use super::text::LONE_SURROGATE_MARK;
use super::GenError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One admin-query document per org.
    Json,
    /// One NDJSON file per namespace per org.
    Ndjson,
}

impl FileFormat {
    pub fn parse(text: &str) -> Option<FileFormat> {
        match text {
            "json" => Some(FileFormat::Json),
            "ndjson" => Some(FileFormat::Ndjson),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Ndjson => "ndjson",
        }
    }
}

/// One written file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Relative to the output directory, `/`-separated.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    pub bytes: u64,
    pub sha256: String,
}

/// Serialises rows compactly; the lone-surrogate mark becomes the escape `\ud800` (valid JSON
/// text that no Rust string can hold).
struct MarkFormatter;

impl serde_json::ser::Formatter for MarkFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !fragment.contains(LONE_SURROGATE_MARK) {
            return writer.write_all(fragment.as_bytes());
        }
        for (index, piece) in fragment.split(LONE_SURROGATE_MARK).enumerate() {
            if index > 0 {
                writer.write_all(b"\\ud800")?;
            }
            writer.write_all(piece.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes one row as compact JSON.
pub fn write_row<W: Write>(writer: &mut W, row: &Map<String, Value>) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, MarkFormatter);
    row.serialize(&mut serializer).map_err(io::Error::other)
}

/// A writer that hashes and counts what passes through.
pub struct HashWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(mut self) -> io::Result<(W, u64, String)> {
        self.inner.flush()?;
        let digest = self.hasher.finalize();
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        Ok((self.inner, self.bytes, hex))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct NsOut {
    writer: HashWriter<BufWriter<File>>,
    path: PathBuf,
    rows: u64,
}

/// One org's files while they are written.
pub struct OrgFiles {
    out_dir: PathBuf,
    slug: String,
    tmp: PathBuf,
    format: FileFormat,
    outs: Vec<Option<NsOut>>,
}

impl OrgFiles {
    pub fn create(out_dir: &Path, slug: &str, format: FileFormat) -> Result<OrgFiles, GenError> {
        let tmp = out_dir.join(format!(".{slug}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|error| GenError::io(&tmp, error))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|error| GenError::io(&tmp, error))?;
        let mut files = OrgFiles {
            out_dir: out_dir.to_path_buf(),
            slug: slug.to_string(),
            tmp,
            format,
            outs: (0..Ns::ALL.len()).map(|_| None).collect(),
        };
        // The five legacy namespaces always exist, empty or not.
        for ns in Ns::ALL.into_iter().filter(|ns| ns.is_legacy()) {
            files.open(ns)?;
        }
        Ok(files)
    }

    fn open(&mut self, ns: Ns) -> Result<&mut NsOut, GenError> {
        if self.outs[ns.index()].is_none() {
            let name = match self.format {
                FileFormat::Json => format!(".{}.spool", ns.name()),
                FileFormat::Ndjson => format!("{}.ndjson", ns.name()),
            };
            let path = self.tmp.join(name);
            let file = File::create(&path).map_err(|error| GenError::io(&path, error))?;
            self.outs[ns.index()] = Some(NsOut {
                writer: HashWriter::new(BufWriter::with_capacity(256 * 1024, file)),
                path,
                rows: 0,
            });
        }
        Ok(self.outs[ns.index()].as_mut().expect("opened above"))
    }

    pub fn row(&mut self, ns: Ns, row: &Map<String, Value>) -> Result<(), GenError> {
        let format = self.format;
        let out = self.open(ns)?;
        let path = out.path.clone();
        let result = (|| -> io::Result<()> {
            if format == FileFormat::Json && out.rows > 0 {
                out.writer.write_all(b",\n")?;
            }
            write_row(&mut out.writer, row)?;
            if format == FileFormat::Ndjson {
                out.writer.write_all(b"\n")?;
            }
            Ok(())
        })();
        out.rows += 1;
        result.map_err(|error| GenError::io(&path, error))
    }

    /// Closes every file, writes `schema.json` (and `dataset.json`), and moves the org's
    /// directory into place.
    pub fn finish(mut self, schema: &instant_schema::Schema) -> Result<Vec<FileEntry>, GenError> {
        let mut entries = Vec::new();
        let mut spools = Vec::new();
        for ns in Ns::ALL {
            let Some(out) = self.outs[ns.index()].take() else {
                continue;
            };
            let (writer, bytes, sha256) = out
                .writer
                .finish()
                .map_err(|error| GenError::io(&out.path, error))?;
            writer
                .into_inner()
                .map_err(|error| GenError::io(&out.path, error.into_error()))?
                .sync_all()
                .map_err(|error| GenError::io(&out.path, error))?;
            match self.format {
                FileFormat::Ndjson => entries.push(FileEntry {
                    path: format!("{}/{}.ndjson", self.slug, ns.name()),
                    namespace: Some(ns.name().to_string()),
                    rows: Some(out.rows),
                    bytes,
                    sha256,
                }),
                FileFormat::Json => spools.push((ns, out.path, out.rows)),
            }
        }
        if self.format == FileFormat::Json {
            let path = self.tmp.join("dataset.json");
            let file = File::create(&path).map_err(|error| GenError::io(&path, error))?;
            let mut writer = HashWriter::new(BufWriter::with_capacity(1024 * 1024, file));
            let result = (|| -> io::Result<()> {
                writer.write_all(b"{")?;
                for (index, (ns, spool, rows)) in spools.iter().enumerate() {
                    if index > 0 {
                        writer.write_all(b",\n")?;
                    }
                    write!(writer, "\"{}\":[", ns.name())?;
                    if *rows > 0 {
                        writer.write_all(b"\n")?;
                    }
                    let mut input = File::open(spool)?;
                    io::copy(&mut input, &mut writer)?;
                    writer.write_all(b"]")?;
                }
                writer.write_all(b"}\n")?;
                Ok(())
            })();
            result.map_err(|error| GenError::io(&path, error))?;
            let (inner, bytes, sha256) = writer
                .finish()
                .map_err(|error| GenError::io(&path, error))?;
            inner
                .into_inner()
                .map_err(|error| GenError::io(&path, error.into_error()))?
                .sync_all()
                .map_err(|error| GenError::io(&path, error))?;
            for (_, spool, _) in &spools {
                std::fs::remove_file(spool).map_err(|error| GenError::io(spool, error))?;
            }
            entries.push(FileEntry {
                path: format!("{}/dataset.json", self.slug),
                namespace: None,
                rows: Some(spools.iter().map(|(_, _, rows)| rows).sum()),
                bytes,
                sha256,
            });
        }
        let schema_text = serde_json::to_vec_pretty(&schema.to_dsl_json())
            .map_err(|error| GenError::Schema(error.to_string()))?;
        let schema_path = self.tmp.join("schema.json");
        std::fs::write(&schema_path, &schema_text)
            .map_err(|error| GenError::io(&schema_path, error))?;
        let mut hasher = Sha256::new();
        hasher.update(&schema_text);
        entries.push(FileEntry {
            path: format!("{}/schema.json", self.slug),
            namespace: None,
            rows: None,
            bytes: schema_text.len() as u64,
            sha256: hasher
                .finalize()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        });
        let target = self.out_dir.join(&self.slug);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|error| GenError::io(&target, error))?;
        }
        std::fs::rename(&self.tmp, &target).map_err(|error| GenError::io(&target, error))?;
        Ok(entries)
    }
}

impl Drop for OrgFiles {
    fn drop(&mut self) {
        // A failed run leaves no half-written org behind (after a finish the tmp dir is gone).
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}
