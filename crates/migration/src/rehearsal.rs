//! Rehearsal: an embedded copy of one org's app, built from the org's own evidence (the schema
//! pulled from the target and the rows of `01-extract/`), on which the exact tx plan is applied
//! and verified before the real target is touched.
//!
//! The copy is made through the `InstantApi` port (the caller passes an embedded engine), so it
//! goes through the same transact rules as the target. Link targets that lie outside the
//! extracted namespaces (an event's `whatsappMessages`, `emails`) are created as empty
//! placeholder entities in the copy only, so the links the plan re-creates have something to
//! point at; nothing is invented on the real target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use instant_api::{ApiError, AppAuth, InstantApi, SchemaPushRequest, TransactRequest};
use instant_schema::Schema;
use serde_json::{json, Map, Value};

use crate::extract::SOURCES;
use crate::io::open_ndjson;

#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<ApiError>,
    },
    #[error("{}:{line}: {message}", path.display())]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
}

fn api_error(what: impl Into<String>) -> impl FnOnce(ApiError) -> RehearsalError {
    let what = what.into();
    move |source| RehearsalError::Api {
        what,
        source: Box::new(source),
    }
}

/// What the copy holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySummary {
    /// Rows written per extracted namespace.
    pub rows: BTreeMap<String, u64>,
    /// Link steps written.
    pub links: u64,
    /// Empty entities created for link targets outside the extract, per namespace.
    pub placeholders: BTreeMap<String, u64>,
    pub transactions: u64,
}

/// Pushes `schema` (the target's schema as pulled, in DSL form) to the copy.
pub fn copy_schema(
    api: &dyn InstantApi,
    auth: &AppAuth,
    schema: &Schema,
) -> Result<(), RehearsalError> {
    api.schema_push(
        auth,
        &SchemaPushRequest {
            schema: schema.to_dsl_json(),
            check_types: false,
            supports_background_updates: false,
        },
    )
    .map(|_| ())
    .map_err(api_error(
        "pushing the target's schema to the rehearsal copy",
    ))
}

/// Writes every row of `extract_dir` (`<namespace>.ndjson` in the admin-query shape, links as
/// `[{"id": …}]`) into the copy: all entities first, then the links, then placeholders for
/// link targets in namespaces the extract does not hold. `schema` names the namespace at the
/// other end of each link.
pub fn load_extract(
    api: &dyn InstantApi,
    auth: &AppAuth,
    extract_dir: &Path,
    schema: &Schema,
    batch_size: usize,
) -> Result<CopySummary, RehearsalError> {
    let mut summary = CopySummary::default();
    let mut batch = Batch {
        api,
        auth,
        steps: Vec::new(),
        size: batch_size.max(1),
        transactions: 0,
    };
    let extracted: BTreeSet<&str> = SOURCES.iter().map(|source| source.namespace).collect();
    let mut outside: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

    for pass in [Pass::Entities, Pass::Links] {
        for source in SOURCES {
            let path = extract_dir.join(format!("{}.ndjson", source.namespace));
            if !path.is_file() {
                continue;
            }
            let mut reader = open_ndjson(&path).map_err(|error| RehearsalError::Input {
                path: path.clone(),
                message: error.to_string(),
            })?;
            let mut line = 0u64;
            loop {
                let row = reader.next_row().map_err(|error| RehearsalError::Input {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
                let Some((_, bytes)) = row else { break };
                line += 1;
                let bad = |message: String| RehearsalError::Row {
                    path: path.clone(),
                    line,
                    message,
                };
                let mut row: Map<String, Value> = serde_json::from_slice(bytes)
                    .map_err(|error| bad(format!("not a JSON object: {error}")))?;
                let Some(Value::String(id)) = row.remove("id") else {
                    return Err(bad("row without a string id".into()));
                };
                let mut links = Map::new();
                for label in source.links {
                    let Some(value) = row.remove(*label) else {
                        continue;
                    };
                    let targets: Vec<String> = match value {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(|item| item.get("id").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect(),
                        Value::Object(item) => item
                            .get("id")
                            .and_then(Value::as_str)
                            .map(|id| vec![id.to_string()])
                            .unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    if targets.is_empty() {
                        continue;
                    }
                    if pass == Pass::Links {
                        if let Some(other) = link_target(schema, source.namespace, label) {
                            if !extracted.contains(other.as_str()) {
                                outside
                                    .entry(other)
                                    .or_default()
                                    .extend(targets.iter().cloned());
                            }
                        }
                    }
                    links.insert(
                        (*label).to_string(),
                        Value::Array(targets.into_iter().map(Value::String).collect()),
                    );
                }
                match pass {
                    Pass::Entities => {
                        *summary
                            .rows
                            .entry(source.namespace.to_string())
                            .or_default() += 1;
                        batch.push(json!(["update", source.namespace, id, Value::Object(row)]))?;
                    }
                    Pass::Links if !links.is_empty() => {
                        summary.links += 1;
                        batch.push(json!(["link", source.namespace, id, Value::Object(links)]))?;
                    }
                    Pass::Links => {}
                }
            }
        }
        batch.flush()?;
        if pass == Pass::Entities {
            continue;
        }
        for (namespace, ids) in &outside {
            summary
                .placeholders
                .insert(namespace.clone(), ids.len() as u64);
            for id in ids {
                batch.push(json!(["update", namespace, id, {}]))?;
            }
        }
        batch.flush()?;
    }
    summary.transactions = batch.transactions;
    Ok(summary)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Entities,
    Links,
}

/// The namespace at the other end of `namespace.label` (forward or reverse).
fn link_target(schema: &Schema, namespace: &str, label: &str) -> Option<String> {
    schema.links.values().find_map(|link| {
        if link.forward.on == namespace && link.forward.label == label {
            Some(link.reverse.on.clone())
        } else if link.reverse.on == namespace && link.reverse.label == label {
            Some(link.forward.on.clone())
        } else {
            None
        }
    })
}

struct Batch<'a> {
    api: &'a dyn InstantApi,
    auth: &'a AppAuth,
    steps: Vec<Value>,
    size: usize,
    transactions: u64,
}

impl Batch<'_> {
    fn push(&mut self, step: Value) -> Result<(), RehearsalError> {
        self.steps.push(step);
        if self.steps.len() >= self.size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RehearsalError> {
        if self.steps.is_empty() {
            return Ok(());
        }
        let steps = std::mem::take(&mut self.steps);
        self.transactions += 1;
        self.api
            .transact(
                self.auth,
                &TransactRequest {
                    steps,
                    throw_on_missing_attrs: false,
                },
            )
            .map_err(api_error(format!(
                "writing the rehearsal copy (transaction {})",
                self.transactions
            )))?;
        Ok(())
    }
}
