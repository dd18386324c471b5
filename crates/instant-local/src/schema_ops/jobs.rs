//! Indexing jobs (`db/indexing_jobs.clj`): the background work behind `index`, `unique`,
//! `required`, `check-data-type` and their removals.
//!
//! The server queues each job and a worker walks it through its stages in batches. Here a job
//! runs to its end as soon as it is created, inside the caller's transaction (the reference's
//! emulator shortcut), so an apply answers with jobs already `completed` or `errored` and
//! clients never need to poll. The job row keeps what the server's row would hold at that
//! point: the last stage reached, the error kind, `error_data`, `invalid_unique_value`, and the
//! sample of offending triples that the server computes when it is polled.

use indexmap::IndexSet;
use instant_api::{ApiError, IndexingJob};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::dates::{iso_from_ms, parse_date_ms};
use crate::store::{now_ms, sql_error, AttrRow};

pub(crate) const INVALID_TRIPLE_ERROR: &str = "invalid-triple-error";
pub(crate) const TRIPLE_NOT_UNIQUE_ERROR: &str = "triple-not-unique-error";
pub(crate) const MISSING_REQUIRED_ERROR: &str = "missing-required-error";
pub(crate) const INVALID_ATTR_STATE_ERROR: &str = "invalid-attr-state-error";

/// The job types and their serial keys (`indexing-jobs/jobs`).
pub(crate) fn serial_key(job_type: &str) -> Option<&'static str> {
    Some(match job_type {
        "check-data-type" | "remove-data-type" => "data-type",
        "index" | "remove-index" => "index",
        "unique" | "remove-unique" => "unique",
        "required" | "remove-required" => "required",
        _ => return None,
    })
}

/// The data types a `check-data-type` job may enforce (the `checked_data_type` enum).
pub(crate) const CHECKED_DATA_TYPES: &[&str] = &["string", "number", "boolean", "date"];

/// What running a job came to.
struct Outcome {
    status: &'static str,
    stage: &'static str,
    error: Option<&'static str>,
    error_data: Option<Value>,
    invalid_unique_value: Option<Value>,
    invalid_triples_sample: Option<Value>,
    work_estimate: Option<i64>,
    work_completed: Option<i64>,
}

impl Outcome {
    fn completed(stage: &'static str, work: Option<i64>) -> Outcome {
        Outcome {
            status: "completed",
            stage,
            error: None,
            error_data: None,
            invalid_unique_value: None,
            invalid_triples_sample: None,
            work_estimate: work,
            work_completed: work.filter(|count| *count > 0),
        }
    }

    fn errored(stage: &'static str, error: &'static str, work: Option<i64>) -> Outcome {
        Outcome {
            status: "errored",
            error: Some(error),
            ..Outcome::completed(stage, work)
        }
    }
}

/// The JSON type name Postgres' `jsonb_typeof` gives.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `triples_valid_value`: whether `value` may be stored under `data_type`. Null always may.
pub(crate) fn valid_for_type(data_type: &str, value: &Value) -> bool {
    match (data_type, value) {
        (_, Value::Null) => true,
        ("string", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_)) => true,
        ("date", Value::Number(n)) => n.as_f64().is_some_and(f64::is_finite),
        ("date", Value::String(text)) => parse_date_ms(text).is_some(),
        _ => false,
    }
}

/// The `num` column of a value under a checked data type (see the shared conventions).
pub(crate) fn num_for(data_type: Option<&str>, value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) if data_type == Some("date") => parse_date_ms(text),
        _ => None,
    }
}

struct TripleRow {
    rowid: i64,
    entity_id: String,
    value_text: String,
    value: Value,
}

fn triples_of(conn: &Connection, app_pk: i64, attr_pk: i64) -> Result<Vec<TripleRow>, ApiError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT k.entity_id, t.value, t.rowid FROM triples t \
             JOIN entity_keys k ON k.entity_pk = t.entity_pk \
             WHERE t.app_pk = ?1 AND t.attr_pk = ?2 ORDER BY t.created_at, k.entity_id, t.value",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![app_pk, attr_pk], |row| {
            let value_text: String = row.get(1)?;
            Ok(TripleRow {
                rowid: row.get(2)?,
                entity_id: row.get(0)?,
                value: serde_json::from_str(&value_text).unwrap_or(Value::Null),
                value_text,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error);
    rows
}

fn sample_entry(triple: &TripleRow) -> Value {
    json!({"entity_id": triple.entity_id, "value": triple.value, "json_type": json_type(&triple.value)})
}

/// Rewrites `num` of every triple of the attribute for its (new) checked data type.
pub(crate) fn recompute_nums(
    conn: &Connection,
    app_pk: i64,
    attr_pk: i64,
    data_type: Option<&str>,
) -> Result<(), ApiError> {
    let mut update = conn
        .prepare_cached("UPDATE triples SET num = ?1 WHERE rowid = ?2")
        .map_err(sql_error)?;
    for triple in triples_of(conn, app_pk, attr_pk)? {
        update
            .execute(params![num_for(data_type, &triple.value), triple.rowid])
            .map_err(sql_error)?;
    }
    Ok(())
}

/// Gives every entity of the attribute's namespace that lacks the attribute a `null` triple, as
/// the server does when a data attribute becomes indexed (so `$isNull` can use the index).
/// Returns how many entities were checked.
pub(crate) fn insert_null_triples(
    conn: &Connection,
    app_pk: i64,
    attr: &AttrRow,
) -> Result<(i64, Vec<String>), ApiError> {
    if attr.is_ref() {
        return Ok((0, Vec::new()));
    }
    let checked: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM entities WHERE app_pk = ?1 AND etype = ?2",
            params![app_pk, attr.etype()],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let mut statement = conn
        .prepare_cached(
            "SELECT e.entity_id, e.entity_pk FROM entities e WHERE e.app_pk = ?1 AND e.etype = ?2 AND NOT EXISTS \
             (SELECT 1 FROM triples t WHERE t.app_pk = e.app_pk AND t.entity_pk = e.entity_pk AND t.attr_pk = ?3) \
             ORDER BY e.created_at, e.entity_id",
        )
        .map_err(sql_error)?;
    let missing = statement
        .query_map(params![app_pk, attr.etype(), attr.attr_pk], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    let now = now_ms();
    let mut insert = conn
        .prepare_cached(
            // Null triples exist for indexed attributes only, so they are in the value index.
            "INSERT OR IGNORE INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) \
             VALUES (?1, ?2, ?3, 'null', 'null', NULL, NULL, 1, ?4)",
        )
        .map_err(sql_error)?;
    for (_, entity_pk) in &missing {
        insert
            .execute(params![app_pk, entity_pk, attr.attr_pk, now])
            .map_err(sql_error)?;
    }
    Ok((checked, missing.into_iter().map(|(id, _)| id).collect()))
}

/// The first value (in write order) held by a second entity, which is where the server's unique
/// index stops a `unique` job. Nulls are never unique-checked.
pub(crate) fn first_duplicate_value(
    conn: &Connection,
    app_pk: i64,
    attr_pk: i64,
) -> Result<(i64, Option<String>), ApiError> {
    let triples = triples_of(conn, app_pk, attr_pk)?;
    let mut seen = IndexSet::new();
    for triple in &triples {
        if triple.value.is_null() {
            continue;
        }
        if !seen.insert(triple.value_text.as_str()) {
            return Ok((triples.len() as i64, Some(triple.value_text.clone())));
        }
    }
    Ok((triples.len() as i64, None))
}

/// Entities of the attribute's namespace without a non-null value for it, in write order, and
/// how many entities were checked.
pub(crate) fn entities_missing(
    conn: &Connection,
    app_pk: i64,
    attr: &AttrRow,
) -> Result<(i64, Vec<String>), ApiError> {
    let checked: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM entities WHERE app_pk = ?1 AND etype = ?2",
            params![app_pk, attr.etype()],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let mut statement = conn
        .prepare_cached(
            "SELECT e.entity_id FROM entities e WHERE e.app_pk = ?1 AND e.etype = ?2 AND NOT EXISTS \
             (SELECT 1 FROM triples t WHERE t.app_pk = e.app_pk AND t.entity_pk = e.entity_pk \
              AND t.attr_pk = ?3 AND t.vkey <> 'null') \
             ORDER BY e.created_at, e.entity_id",
        )
        .map_err(sql_error)?;
    let missing = statement
        .query_map(params![app_pk, attr.etype(), attr.attr_pk], |row| {
            row.get::<_, String>(0)
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    Ok((checked, missing))
}

fn set_attr_flag(
    conn: &Connection,
    app_pk: i64,
    attr_pk: i64,
    column: &'static str,
    on: bool,
) -> Result<(), ApiError> {
    conn.execute(
        &format!("UPDATE attrs SET {column} = ?1 WHERE attr_pk = ?2"),
        params![on, attr_pk],
    )
    .map_err(sql_error)?;
    crate::store::refresh_value_index(conn, app_pk, attr_pk)
}

fn set_checked_type(
    conn: &Connection,
    app_pk: i64,
    attr: &AttrRow,
    data_type: Option<&str>,
) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE attrs SET checked_data_type = ?1 WHERE attr_pk = ?2",
        params![data_type, attr.attr_pk],
    )
    .map_err(sql_error)?;
    recompute_nums(conn, app_pk, attr.attr_pk, data_type)
}

/// The stage at which the server's worker finds it cannot update a system attribute (it looks
/// the attribute up under the app, where system attributes do not live).
fn first_attr_update_stage(job_type: &str) -> &'static str {
    match job_type {
        "required" | "remove-required" => "update-attr",
        _ => "update-attr-start",
    }
}

fn run(
    conn: &Connection,
    app_pk: i64,
    attr: &AttrRow,
    job_type: &str,
    checked_data_type: Option<&str>,
) -> Result<Outcome, ApiError> {
    if attr.attr.is_system() {
        return Ok(Outcome::errored(
            first_attr_update_stage(job_type),
            INVALID_ATTR_STATE_ERROR,
            None,
        ));
    }
    let count_triples = || -> Result<i64, ApiError> {
        conn.query_row(
            "SELECT COUNT(*) FROM triples WHERE app_pk = ?1 AND attr_pk = ?2",
            params![app_pk, attr.attr_pk],
            |row| row.get(0),
        )
        .map_err(sql_error)
    };
    Ok(match job_type {
        "check-data-type" => {
            let data_type = checked_data_type.unwrap_or_default();
            let triples = triples_of(conn, app_pk, attr.attr_pk)?;
            let work = Some(triples.len() as i64);
            let invalid: Vec<Value> = triples
                .iter()
                .filter(|triple| !valid_for_type(data_type, &triple.value))
                .take(10)
                .map(sample_entry)
                .collect();
            if invalid.is_empty() {
                set_checked_type(conn, app_pk, attr, Some(data_type))?;
                Outcome::completed("update-attr-done", work)
            } else {
                Outcome {
                    invalid_triples_sample: Some(Value::Array(invalid)),
                    ..Outcome::errored("validate", INVALID_TRIPLE_ERROR, work)
                }
            }
        }
        "remove-data-type" => {
            set_checked_type(conn, app_pk, attr, None)?;
            Outcome::completed("update-attr-done", Some(count_triples()?))
        }
        "index" => {
            set_attr_flag(conn, app_pk, attr.attr_pk, "is_indexed", true)?;
            let triples = count_triples()?;
            let (checked, _) = insert_null_triples(conn, app_pk, attr)?;
            Outcome::completed("update-attr-done", Some(triples + checked))
        }
        "remove-index" => {
            set_attr_flag(conn, app_pk, attr.attr_pk, "is_indexed", false)?;
            Outcome::completed("update-attr-done", Some(count_triples()?))
        }
        "unique" => {
            let (work, duplicate) = first_duplicate_value(conn, app_pk, attr.attr_pk)?;
            match duplicate {
                None => {
                    set_attr_flag(conn, app_pk, attr.attr_pk, "is_unique", true)?;
                    Outcome::completed("update-attr-done", Some(work))
                }
                Some(value_text) => {
                    let value: Value = serde_json::from_str(&value_text).unwrap_or(Value::Null);
                    let sample: Vec<Value> = triples_of(conn, app_pk, attr.attr_pk)?
                        .iter()
                        .filter(|triple| triple.value_text == value_text)
                        .take(10)
                        .map(sample_entry)
                        .collect();
                    Outcome {
                        invalid_unique_value: Some(value),
                        invalid_triples_sample: Some(Value::Array(sample)),
                        ..Outcome::errored("update-triples", TRIPLE_NOT_UNIQUE_ERROR, Some(work))
                    }
                }
            }
        }
        "remove-unique" => {
            set_attr_flag(conn, app_pk, attr.attr_pk, "is_unique", false)?;
            Outcome::completed("update-attr-done", Some(count_triples()?))
        }
        "required" => {
            let (checked, missing) = entities_missing(conn, app_pk, attr)?;
            if missing.is_empty() {
                set_attr_flag(conn, app_pk, attr.attr_pk, "is_required", true)?;
                Outcome::completed("revalidate", Some(checked))
            } else {
                set_attr_flag(conn, app_pk, attr.attr_pk, "is_required", false)?;
                let first: Vec<&String> = missing.iter().take(10).collect();
                let sample: Vec<Value> = first
                    .iter()
                    .map(|id| json!({"entity_id": id, "value": null, "json_type": "null"}))
                    .collect();
                Outcome {
                    error_data: Some(json!({
                        "count": missing.len(),
                        "etype": attr.etype(),
                        "label": attr.label(),
                        "entity-ids": first,
                    })),
                    invalid_triples_sample: Some(Value::Array(sample)),
                    ..Outcome::errored("validate", MISSING_REQUIRED_ERROR, Some(checked))
                }
            }
        }
        "remove-required" => {
            set_attr_flag(conn, app_pk, attr.attr_pk, "is_required", false)?;
            Outcome {
                work_estimate: None,
                ..Outcome::completed("update-attr", None)
            }
        }
        other => {
            return Err(ApiError::validation(
                "job-type",
                Value::String(other.to_string()),
                vec![json!({"message": format!("Invalid job type {other}.")})],
            ))
        }
    })
}

/// Creates a job for `attr`, runs it to its end and stores it; returns its id.
pub(crate) fn create_and_run(
    conn: &Connection,
    app_pk: i64,
    group_id: &str,
    attr: &AttrRow,
    job_type: &str,
    checked_data_type: Option<&str>,
) -> Result<String, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = now_ms();
    let outcome = run(conn, app_pk, attr, job_type, checked_data_type)?;
    let finished_at = now_ms();
    let json_text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    conn.execute(
        "INSERT INTO indexing_jobs (id, app_pk, group_id, attr_id, attr_name, job_type, job_status, job_stage, \
         checked_data_type, error, error_data, invalid_unique_value, invalid_triples_sample, work_estimate, \
         work_completed, created_at, updated_at, done_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            id,
            app_pk,
            group_id,
            attr.id(),
            attr.attr.forward_identity.dotted(),
            job_type,
            outcome.status,
            outcome.stage,
            checked_data_type,
            outcome.error,
            json_text(&outcome.error_data),
            json_text(&outcome.invalid_unique_value),
            json_text(&outcome.invalid_triples_sample),
            outcome.work_estimate,
            outcome.work_completed,
            created_at,
            finished_at,
            (outcome.status == "completed").then_some(finished_at),
        ],
    )
    .map_err(sql_error)?;
    Ok(id)
}

const JOB_COLUMNS: &str = "id, group_id, attr_id, attr_name, job_type, job_status, job_stage, checked_data_type, \
     error, error_data, invalid_unique_value, invalid_triples_sample, work_estimate, work_completed, \
     created_at, updated_at, done_at";

fn json_column(text: Option<String>) -> Value {
    text.and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// A job row in the polling format (`job->client-format`).
fn job_from_row(row: &rusqlite::Row<'_>, app_id: &str) -> rusqlite::Result<IndexingJob> {
    let iso = |ms: Option<i64>| ms.map_or(Value::Null, |ms| Value::String(iso_from_ms(ms)));
    let mut extra = Map::new();
    extra.insert(
        "work_estimate".into(),
        json!(row.get::<_, Option<i64>>(12)?),
    );
    extra.insert(
        "work_completed".into(),
        json!(row.get::<_, Option<i64>>(13)?),
    );
    extra.insert(
        "checked_data_type".into(),
        json!(row.get::<_, Option<String>>(7)?),
    );
    extra.insert("created_at".into(), iso(row.get(14)?));
    extra.insert("updated_at".into(), iso(row.get(15)?));
    extra.insert("done_at".into(), iso(row.get(16)?));
    extra.insert("invalid_unique_value".into(), json_column(row.get(10)?));
    extra.insert("invalid_triples_sample".into(), json_column(row.get(11)?));
    extra.insert("error_data".into(), json_column(row.get(9)?));
    Ok(IndexingJob {
        id: row.get(0)?,
        app_id: Some(app_id.to_string()),
        group_id: row.get(1)?,
        attr_id: row.get(2)?,
        attr_name: row.get(3)?,
        job_type: row.get(4)?,
        job_status: row.get(5)?,
        job_stage: row.get(6)?,
        error: row.get(8)?,
        extra,
    })
}

/// The jobs of a group, oldest first.
pub(crate) fn jobs_in_group(
    conn: &Connection,
    app_pk: i64,
    app_id: &str,
    group_id: &str,
) -> Result<Vec<IndexingJob>, ApiError> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM indexing_jobs WHERE app_pk = ?1 AND group_id = ?2 ORDER BY rowid"
        ))
        .map_err(sql_error)?;
    let jobs = statement
        .query_map(params![app_pk, group_id], |row| job_from_row(row, app_id))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error);
    jobs
}

/// One job of the app.
pub(crate) fn job_by_id(
    conn: &Connection,
    app_pk: i64,
    app_id: &str,
    job_id: &str,
) -> Result<Option<IndexingJob>, ApiError> {
    conn.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM indexing_jobs WHERE app_pk = ?1 AND id = ?2"),
        params![app_pk, job_id],
        |row| job_from_row(row, app_id),
    )
    .optional()
    .map_err(sql_error)
}

/// A job as an apply returns it: the polling format plus the raw row's other columns, so a
/// client reading either shape finds its keys.
pub(crate) fn with_raw_columns(mut job: IndexingJob) -> IndexingJob {
    let serial = serial_key(&job.job_type).unwrap_or_default();
    for (key, value) in [
        ("job_serial_key", json!(serial)),
        ("job_dependency", Value::Null),
        ("worker_id", Value::Null),
        ("invalid_entity_id", Value::Null),
        ("error_detail", Value::Null),
        ("context", Value::Null),
    ] {
        job.extra.insert(key.to_string(), value);
    }
    job
}
