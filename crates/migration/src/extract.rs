//! Extract: every legacy namespace of one app, read through the [`InstantApi`] port and
//! streamed to `01-extract/<namespace>.ndjson` in the admin-query row shape the transform reads
//! (attributes, plus each forward link as `[{"id": …}]`), with `summary.json`.
//!
//! `/admin/query` has no cursors over HTTP, so each namespace is paged with `limit`/`offset` in
//! the server's default order (`serverCreatedAt`, then id: never an `order` on an attribute,
//! which would need it indexed and typed). Links are requested as nested forms with
//! `fields: ["id"]`, so only the linked ids travel.
//!
//! **Offset paging over a live app can shift.** New rows sort last (their `serverCreatedAt` is
//! the newest), so inserts are read or fall after the end; a row deleted behind the cursor
//! shifts the rest back by one, and the first row of the next page is skipped; a row that
//! moves forward is read twice. The guards: ids are de-duplicated across pages (and counted);
//! after the pages, an ids-only pass re-counts the namespace, fetches by id every row it lists
//! that the pages missed (`recovered`), and counts the extracted rows it no longer lists
//! (`vanished`, kept: they existed during the extract). The result is complete for every row
//! that existed from the first page to the re-count; rows written after the re-count are not in
//! it. An extract is a consistent snapshot only of an app nobody writes to meanwhile.
//!
//! Files appear together, by rename, only when every namespace was read: a failed extract
//! leaves no partial file.

// Errors carry the server's whole envelope on purpose; see `instant-api`.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use instant_api::{ApiError, AppAuth, InstantApi, QueryRequest};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::io::{AtomicFile, FinishedFile};
use crate::legacy::parse_uuid;

/// One namespace to extract and the forward links whose ids its rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub namespace: &'static str,
    pub links: &'static [&'static str],
}

/// What the transform reads: the five legacy namespaces with the links it maps (the esolbay
/// `whatsappMessages` / `emails` on events included; a label the app does not have comes back
/// empty), the `thread_threads` that already exist (their keys are reused) and the
/// `thread_contexts` that already exist (a key one of them holds is not given to a migrated
/// context, which would fail the unique `key` at apply).
pub const SOURCES: [Source; 7] = [
    Source {
        namespace: "context_contexts",
        links: &["currentExecution"],
    },
    Source {
        namespace: "context_events",
        links: &["context", "execution", "whatsappMessages", "emails"],
    },
    Source {
        namespace: "story_executions",
        links: &["context", "trigger", "reaction"],
    },
    Source {
        namespace: "story_steps",
        links: &["execution"],
    },
    Source {
        namespace: "story_parts",
        links: &["step"],
    },
    Source {
        namespace: "thread_threads",
        links: &[],
    },
    Source {
        namespace: "thread_contexts",
        links: &[],
    },
];

/// Ids fetched per `$in` query when recovering rows the pages missed.
const RECOVER_CHUNK: usize = 100;
/// Ids listed per offending set in the summary.
const MAX_LISTED: usize = 20;

#[derive(Debug, Clone)]
pub struct ExtractConfig {
    /// The `01-extract` directory itself (created).
    pub out_dir: PathBuf,
    /// Rows per page (default 500).
    pub page_size: usize,
    /// Ids per page of the re-count pass (ids only, so larger; default 5000).
    pub id_page_size: usize,
}

impl ExtractConfig {
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        ExtractConfig {
            out_dir: out_dir.into(),
            page_size: 500,
            id_page_size: 5000,
        }
    }
}

/// The re-count of one namespace after its pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recount {
    /// Rows the ids-only pass listed.
    pub count: u64,
    /// Rows it listed that the pages had missed, fetched by id and added.
    pub recovered: u64,
    /// Extracted rows it no longer listed (deleted during the extract; kept).
    pub vanished: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vanished_ids: Vec<String>,
}

/// The extract summary (`--json`; `summary.json` is the same without `out`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtractSummary {
    /// Rows written per namespace.
    pub namespaces: BTreeMap<String, u64>,
    /// Queries answered with rows (pages, re-count pages and recovery queries).
    pub pages: u64,
    pub out: PathBuf,
    pub page_size: usize,
    /// Rows returned again by a later page (an offset shift), written once.
    pub duplicates: BTreeMap<String, u64>,
    pub recount: BTreeMap<String, Recount>,
}

/// Progress after each page.
#[derive(Debug, Clone, Copy)]
pub struct ExtractProgress<'a> {
    pub namespace: &'a str,
    /// Rows written so far for this namespace.
    pub rows: u64,
    /// Queries so far, all namespaces.
    pub pages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("extract {namespace}: query at offset {offset} failed: {source}")]
    Query {
        namespace: String,
        offset: u64,
        #[source]
        source: ApiError,
    },
    #[error("extract {namespace}: {message}")]
    Answer { namespace: String, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Ids seen so far: UUIDs as 128-bit numbers, anything else (never from a real server) as text.
#[derive(Default)]
struct IdSet {
    uuids: HashSet<u128>,
    others: HashSet<String>,
}

impl IdSet {
    fn insert(&mut self, id: &str) -> bool {
        match parse_uuid(id) {
            Some((uuid, _)) => self.uuids.insert(uuid.as_u128()),
            None => self.others.insert(id.to_string()),
        }
    }

    fn contains(&self, id: &str) -> bool {
        match parse_uuid(id) {
            Some((uuid, _)) => self.uuids.contains(&uuid.as_u128()),
            None => self.others.contains(id),
        }
    }

    fn len(&self) -> usize {
        self.uuids.len() + self.others.len()
    }

    /// Members missing from `other`, sorted.
    fn difference(&self, other: &IdSet) -> Vec<String> {
        let mut out: Vec<String> = self
            .uuids
            .iter()
            .filter(|id| !other.uuids.contains(id))
            .map(|id| uuid::Uuid::from_u128(*id).to_string())
            .chain(
                self.others
                    .iter()
                    .filter(|id| !other.others.contains(*id))
                    .cloned(),
            )
            .collect();
        out.sort();
        out
    }
}

fn row_id(row: &Value) -> Option<&str> {
    row.get("id").and_then(Value::as_str)
}

/// The query of one page: the namespace's rows with each link's ids.
pub fn page_query(source: &Source, limit: usize, offset: u64) -> Value {
    let mut form = Map::new();
    form.insert("$".into(), json!({"limit": limit, "offset": offset}));
    for label in source.links {
        form.insert((*label).into(), json!({"$": {"fields": ["id"]}}));
    }
    json!({ source.namespace: Value::Object(form) })
}

struct Reader<'a> {
    api: &'a dyn InstantApi,
    auth: &'a AppAuth,
    pages: u64,
}

impl Reader<'_> {
    /// Runs one query and takes the namespace's rows out of the answer.
    fn rows(
        &mut self,
        source: &Source,
        query: Value,
        offset: u64,
    ) -> Result<Vec<Value>, ExtractError> {
        let answer = self
            .api
            .query(
                self.auth,
                &QueryRequest {
                    query,
                    inference: false,
                },
            )
            .map_err(|source_error| ExtractError::Query {
                namespace: source.namespace.to_string(),
                offset,
                source: source_error,
            })?;
        self.pages += 1;
        match answer {
            Value::Object(mut map) => match map.remove(source.namespace) {
                Some(Value::Array(rows)) => Ok(rows),
                Some(other) => Err(ExtractError::Answer {
                    namespace: source.namespace.to_string(),
                    message: format!(
                        "the answer holds {} under the namespace, not a list of rows",
                        kind(&other)
                    ),
                }),
                None => Err(ExtractError::Answer {
                    namespace: source.namespace.to_string(),
                    message: "the answer has no list for the namespace".into(),
                }),
            },
            other => Err(ExtractError::Answer {
                namespace: source.namespace.to_string(),
                message: format!("the answer is {}, not an object", kind(&other)),
            }),
        }
    }

    /// Pages through a query (`limit`/`offset` set per page by `query_at`), calling `row` for
    /// each row. A page that starts with the previous page's first row means the server
    /// ignores `offset`: an error, not an endless loop.
    fn paged(
        &mut self,
        source: &Source,
        limit: usize,
        query_at: impl Fn(u64) -> Value,
        mut row: impl FnMut(&mut Self, Value) -> Result<(), ExtractError>,
    ) -> Result<(), ExtractError> {
        let mut offset = 0u64;
        let mut previous_first: Option<String> = None;
        loop {
            let rows = self.rows(source, query_at(offset), offset)?;
            let count = rows.len();
            let first = rows.first().and_then(row_id).map(str::to_string);
            if offset > 0 && first.is_some() && first == previous_first {
                return Err(ExtractError::Answer {
                    namespace: source.namespace.to_string(),
                    message: format!(
                        "the page at offset {offset} starts with the previous page's first row: the server does not apply `offset`"
                    ),
                });
            }
            previous_first = first;
            for value in rows {
                row(self, value)?;
            }
            if count < limit {
                return Ok(());
            }
            offset += count as u64;
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Extracts every [`SOURCES`] namespace of the app into `config.out_dir`.
pub fn extract(
    api: &dyn InstantApi,
    auth: &AppAuth,
    config: &ExtractConfig,
    progress: &mut dyn FnMut(ExtractProgress<'_>),
) -> Result<ExtractSummary, ExtractError> {
    extract_sources(api, auth, config, &SOURCES, progress)
}

/// [`extract`] of the given namespaces.
pub fn extract_sources(
    api: &dyn InstantApi,
    auth: &AppAuth,
    config: &ExtractConfig,
    sources: &[Source],
    progress: &mut dyn FnMut(ExtractProgress<'_>),
) -> Result<ExtractSummary, ExtractError> {
    if config.page_size == 0 || config.id_page_size == 0 {
        return Err(ExtractError::Usage(
            "page sizes must be at least 1".to_string(),
        ));
    }
    let out_dir = &config.out_dir;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut reader = Reader {
        api,
        auth,
        pages: 0,
    };
    let mut summary = ExtractSummary {
        namespaces: BTreeMap::new(),
        pages: 0,
        out: out_dir.clone(),
        page_size: config.page_size,
        duplicates: BTreeMap::new(),
        recount: BTreeMap::new(),
    };
    let mut finished: Vec<FinishedFile> = Vec::new();
    for source in sources {
        let path = out_dir.join(format!("{}.ndjson", source.namespace));
        let mut file = AtomicFile::create(&path).map_err(io_err(&path))?;
        let mut seen = IdSet::default();
        let mut rows = 0u64;
        let mut duplicates = 0u64;
        let write = |file: &mut AtomicFile, value: &Value| -> Result<(), ExtractError> {
            serde_json::to_writer(file.writer(), value)
                .map_err(io::Error::other)
                .and_then(|_| file.writer().write_all(b"\n"))
                .map_err(io_err(&path))
        };

        reader.paged(
            source,
            config.page_size,
            |offset| page_query(source, config.page_size, offset),
            |reader, value| {
                if let Some(id) = row_id(&value) {
                    if !seen.insert(id) {
                        duplicates += 1;
                        return Ok(());
                    }
                }
                write(&mut file, &value)?;
                rows += 1;
                if rows % config.page_size as u64 == 0 {
                    progress(ExtractProgress {
                        namespace: source.namespace,
                        rows,
                        pages: reader.pages,
                    });
                }
                Ok(())
            },
        )?;

        // The re-count: which rows exist now, by id only.
        let mut present = IdSet::default();
        let mut missed: Vec<String> = Vec::new();
        reader.paged(
            source,
            config.id_page_size,
            |offset| {
                json!({ source.namespace: {"$": {"limit": config.id_page_size, "offset": offset, "fields": ["id"]}} })
            },
            |_, value| {
                if let Some(id) = row_id(&value) {
                    if present.insert(id) && !seen.contains(id) {
                        missed.push(id.to_string());
                    }
                }
                Ok(())
            },
        )?;
        let mut recount = Recount {
            count: present.len() as u64,
            ..Recount::default()
        };
        let vanished = seen.difference(&present);
        recount.vanished = vanished.len() as u64;
        recount.vanished_ids = vanished.into_iter().take(MAX_LISTED).collect();
        missed.sort();
        for chunk in missed.chunks(RECOVER_CHUNK) {
            let mut form = Map::new();
            form.insert("$".into(), json!({"where": {"id": {"$in": chunk}}}));
            for label in source.links {
                form.insert((*label).into(), json!({"$": {"fields": ["id"]}}));
            }
            let query = json!({ source.namespace: Value::Object(form) });
            for value in reader.rows(source, query, 0)? {
                let Some(id) = row_id(&value).map(str::to_string) else {
                    continue;
                };
                if !seen.insert(&id) {
                    continue;
                }
                write(&mut file, &value)?;
                rows += 1;
                recount.recovered += 1;
                if recount.recovered_ids.len() < MAX_LISTED {
                    recount.recovered_ids.push(id);
                }
            }
        }
        progress(ExtractProgress {
            namespace: source.namespace,
            rows,
            pages: reader.pages,
        });
        finished.push(file.finish().map_err(io_err(&path))?);
        summary
            .namespaces
            .insert(source.namespace.to_string(), rows);
        summary
            .duplicates
            .insert(source.namespace.to_string(), duplicates);
        summary
            .recount
            .insert(source.namespace.to_string(), recount);
    }
    summary.pages = reader.pages;

    let summary_path = out_dir.join("summary.json");
    let mut file = AtomicFile::create(&summary_path).map_err(io_err(&summary_path))?;
    let document = json!({
        "namespaces": summary.namespaces,
        "pages": summary.pages,
        "pageSize": summary.page_size,
        "duplicates": summary.duplicates,
        "recount": summary.recount,
    });
    serde_json::to_writer_pretty(file.writer(), &document)
        .map_err(io::Error::other)
        .and_then(|_| file.writer().write_all(b"\n"))
        .map_err(io_err(&summary_path))?;
    finished.push(file.finish().map_err(io_err(&summary_path))?);
    for file in finished {
        let path = file.path().to_path_buf();
        file.commit().map_err(io_err(&path))?;
    }
    Ok(summary)
}

/// Rows per namespace of an extract directory: its `summary.json` when present, else the
/// non-blank lines of each `<namespace>.ndjson`.
pub fn extract_counts(dir: &Path) -> Result<BTreeMap<String, u64>, ExtractError> {
    let summary_path = dir.join("summary.json");
    match std::fs::read(&summary_path) {
        Ok(bytes) => {
            #[derive(serde::Deserialize)]
            struct Counts {
                namespaces: BTreeMap<String, u64>,
            }
            return serde_json::from_slice::<Counts>(&bytes)
                .map(|counts| counts.namespaces)
                .map_err(|error| ExtractError::Malformed {
                    path: summary_path.clone(),
                    message: format!("not an extract summary: {error}"),
                });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_err(&summary_path)(error)),
    }
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(namespace) = name.strip_suffix(".ndjson") else {
            continue;
        };
        if namespace.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file = std::fs::File::open(&path).map_err(io_err(&path))?;
        let mut reader = crate::io::NdjsonReader::new(io::BufReader::new(file));
        let mut rows = 0;
        while reader.next_row().map_err(io_err(&path))?.is_some() {
            rows += 1;
        }
        counts.insert(namespace.to_string(), rows);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_asks_for_link_ids_only_in_default_order() {
        let query = page_query(&SOURCES[1], 7, 14);
        assert_eq!(
            query,
            json!({"context_events": {
                "$": {"limit": 7, "offset": 14},
                "context": {"$": {"fields": ["id"]}},
                "execution": {"$": {"fields": ["id"]}},
                "whatsappMessages": {"$": {"fields": ["id"]}},
                "emails": {"$": {"fields": ["id"]}},
            }})
        );
        assert!(query["context_events"]["$"].get("order").is_none());
    }

    #[test]
    fn id_set_treats_case_variants_as_one_id() {
        let mut set = IdSet::default();
        assert!(set.insert("0190a3a4-8f7e-4c2a-9b1d-3e5f6a7b8c9d"));
        assert!(!set.insert("0190A3A4-8F7E-4C2A-9B1D-3E5F6A7B8C9D"));
        assert!(set.insert("not-a-uuid"));
        assert!(!set.insert("not-a-uuid"));
        assert_eq!(set.len(), 2);
        let other = IdSet::default();
        assert_eq!(
            set.difference(&other),
            ["0190a3a4-8f7e-4c2a-9b1d-3e5f6a7b8c9d", "not-a-uuid"]
        );
    }
}
