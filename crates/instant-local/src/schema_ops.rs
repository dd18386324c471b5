//! Schema operations: pull, plan, push (plan + apply), client-computed steps apply, indexing
//! job status, permissions pull and temporary ("ephemeral") apps, as the server's
//! `model/schema.clj`, `dash/routes.clj`, `dash/ephemeral_app.clj` and `db/indexing_jobs.clj`
//! do them.
//!
//! The diff itself is the schema crate's ([`instant_schema::plan::plan`]); this module supplies
//! the app's catalogue as the current schema and applies the steps to it. Every function that
//! writes does so in one SQLite transaction.
//!
//! Simplifications, on purpose: indexing jobs run synchronously inside the apply (they come
//! back `completed` or `errored`, never `waiting`); plan-derived attribute ids are deterministic
//! (the server draws random ones); rules are stored without compiling their CEL expressions.

// Errors carry the server's whole envelope by design (see `instant-api`); they are the rare path.
#![allow(clippy::result_large_err)]

mod apply;
mod jobs;
mod system_catalog;
#[cfg(test)]
mod tests;

use indexmap::IndexMap;
use instant_api::{
    ApiError, AppRecord, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, PermsPullResponse, SchemaApplyResponse, SchemaPlanResponse,
    SchemaPullResponse, SchemaPushRequest, StepsApplyRequest,
};
use instant_schema::plan::{plan, PlanErrors, PlanOptions};
use instant_schema::server::ref_key;
use instant_schema::{Identity, Schema, ServerAttr, ServerSchema};
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Map, Value};

use crate::store::{load_attrs, now_ms, sql_error, App, AttrRow, Store};

pub use system_catalog::ensure_system_catalog;

/// How long a temporary app lives before the server's sweeper may delete it.
const EPHEMERAL_LIFETIME_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// The user that owns every temporary app (the server's "ephemeral" creator account). A fixed
/// id, so the apps of a workspace share one creator as on the hosted service.
const EPHEMERAL_CREATOR_ID: &str = "e1e1e1e1-0000-4000-8000-000000000001";

// ---------------------------------------------------------------------------------------------
// The app's catalogue in the server's forms

/// Every attribute of the app, system ones included, ordered by id as the server orders them.
fn current_attrs(conn: &Connection, app_pk: i64) -> Result<Vec<AttrRow>, ApiError> {
    let mut attrs = load_attrs(conn, app_pk)?;
    attrs.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(attrs)
}

fn ref_key_of(attr: &ServerAttr) -> String {
    let none = Identity::new(None, "", "");
    ref_key(
        &attr.forward_identity,
        attr.reverse_identity.as_ref().unwrap_or(&none),
    )
}

/// `attrs->schema`: `{refs, blobs}` without the hidden system attributes, `$files.url` shown as
/// required (the server always derives it).
fn attrs_to_schema(attrs: &[AttrRow]) -> ServerSchema {
    let mut schema = ServerSchema::default();
    for row in attrs {
        let attr = &row.attr;
        if system_catalog::is_hidden(attr.is_system(), row.etype(), row.label()) {
            continue;
        }
        let mut attr = attr.clone();
        if attr.is_system() && row.etype() == "$files" && row.label() == "url" {
            attr.required = true;
        }
        if attr.is_ref() {
            schema.refs.insert(ref_key_of(&attr), attr);
        } else {
            schema
                .blobs
                .entry(row.etype().to_string())
                .or_insert_with(IndexMap::new)
                .insert(row.label().to_string(), attr);
        }
    }
    schema
}

/// Every attribute in `{refs, blobs}` form, hidden ones included: what the server's
/// `plan-errors` checks new names against.
fn all_attrs_schema(attrs: &[AttrRow]) -> ServerSchema {
    let mut schema = ServerSchema::default();
    for row in attrs {
        if row.is_ref() {
            schema.refs.insert(ref_key_of(&row.attr), row.attr.clone());
        } else {
            schema
                .blobs
                .entry(row.etype().to_string())
                .or_default()
                .insert(row.label().to_string(), row.attr.clone());
        }
    }
    schema
}

fn plain_attrs(attrs: Vec<AttrRow>) -> Vec<ServerAttr> {
    attrs.into_iter().map(|row| row.attr).collect()
}

// ---------------------------------------------------------------------------------------------
// Pull and plan

/// `GET /dash/apps/:id/schema/pull`: `{schema, attrs, app-title}`.
pub fn schema_pull(conn: &Connection, app: &App) -> Result<SchemaPullResponse, ApiError> {
    ensure_system_catalog(conn, app.app_pk)?;
    let attrs = current_attrs(conn, app.app_pk)?;
    Ok(SchemaPullResponse {
        schema: attrs_to_schema(&attrs),
        attrs: plain_attrs(attrs),
        app_title: Some(app.title.clone()),
    })
}

fn plan_errors_to_api(errors: &PlanErrors) -> ApiError {
    let envelope = errors.to_envelope();
    ApiError::new(
        400,
        "validation-failed",
        errors.message(),
        envelope.get("hint").cloned().unwrap_or(Value::Null),
    )
}

/// The desired schema of a push request, or the server's `validation-failed` for `schema`.
fn desired_schema(schema: &Value) -> Result<Schema, ApiError> {
    Schema::from_dsl_json(schema).map_err(|error| {
        ApiError::validation(
            "schema",
            schema.clone(),
            vec![json!({"in": ["schema"], "message": error.to_string()})],
        )
    })
}

fn compute_plan(
    conn: &Connection,
    app: &App,
    schema: &Value,
    options: PlanOptions,
) -> Result<SchemaPlanResponse, ApiError> {
    let desired = desired_schema(schema)?;
    ensure_system_catalog(conn, app.app_pk)?;
    let attrs = current_attrs(conn, app.app_pk)?;
    let current = attrs_to_schema(&attrs);
    // The diff only looks at names the desired schema can hold (system names are filtered out
    // of it), so diffing against every attribute gives the same steps as against the visible
    // ones, while collisions are checked against every attribute, as the server does.
    let planned = plan(&all_attrs_schema(&attrs), &desired, options)
        .map_err(|errors| plan_errors_to_api(&errors))?;
    Ok(SchemaPlanResponse {
        new_schema: planned.new_schema,
        current_schema: current,
        current_attrs: plain_attrs(attrs),
        steps: planned.steps,
    })
}

fn options_of(request: &SchemaPushRequest) -> PlanOptions {
    PlanOptions {
        check_types: request.check_types,
        supports_background_updates: request.supports_background_updates,
    }
}

/// `POST …/schema/push/plan`: `{new-schema, current-schema, current-attrs, steps}`, or the
/// server's 400 when the plan collides with existing attributes.
pub fn schema_plan(
    conn: &Connection,
    app: &App,
    request: &SchemaPushRequest,
) -> Result<SchemaPlanResponse, ApiError> {
    compute_plan(conn, app, &request.schema, options_of(request))
}

// ---------------------------------------------------------------------------------------------
// Apply

fn write_transaction(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>, ApiError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)
}

/// `POST …/schema/push/apply`: the plan, applied; the response is the plan merged with the
/// apply result (`steps` then carry the `job-id` of their jobs).
pub fn schema_push(
    conn: &mut Connection,
    app: &App,
    request: &SchemaPushRequest,
) -> Result<SchemaApplyResponse, ApiError> {
    let tx = write_transaction(conn)?;
    let planned = compute_plan(&tx, app, &request.schema, options_of(request))?;
    let steps = apply::fresh_ids_where_taken(&tx, app.app_pk, planned.steps)?;
    let applied = apply::apply_steps(&tx, app, steps)?;
    tx.commit().map_err(sql_error)?;
    Ok(SchemaApplyResponse {
        new_schema: Some(planned.new_schema),
        current_schema: Some(planned.current_schema),
        current_attrs: Some(planned.current_attrs),
        steps: applied.steps,
        transaction: applied.transaction,
        indexing_jobs: applied.indexing_jobs,
    })
}

/// `POST /dash/apps/:id/schema/steps/apply`: client-computed steps (`delete-attr` allowed).
/// Step types the server does not know pass through untouched, as on the server.
pub fn schema_steps_apply(
    conn: &mut Connection,
    app: &App,
    request: &StepsApplyRequest,
) -> Result<SchemaApplyResponse, ApiError> {
    let tx = write_transaction(conn)?;
    ensure_system_catalog(&tx, app.app_pk)?;
    let applied = apply::apply_steps(&tx, app, request.steps.clone())?;
    tx.commit().map_err(sql_error)?;
    Ok(SchemaApplyResponse {
        new_schema: None,
        current_schema: None,
        current_attrs: None,
        steps: applied.steps,
        transaction: applied.transaction,
        indexing_jobs: applied.indexing_jobs,
    })
}

// ---------------------------------------------------------------------------------------------
// Indexing jobs

fn uuid_param(name: &str, value: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(value)
        .map(|id| id.to_string())
        .map_err(|_| {
            ApiError::new(
                400,
                "param-malformed",
                format!("Malformed parameter: [\"params\" \"{name}\"]"),
                json!({"in": ["params", name], "original-input": value}),
            )
        })
}

/// `GET /dash/apps/:id/indexing-jobs/group/:group_id`: `{jobs}` (empty for an unknown group).
pub fn indexing_job_group(
    conn: &Connection,
    app: &App,
    group_id: &str,
) -> Result<IndexingJobsResponse, ApiError> {
    let group_id = uuid_param("group_id", group_id)?;
    Ok(IndexingJobsResponse {
        jobs: jobs::jobs_in_group(conn, app.app_pk, &app.id, &group_id)?,
    })
}

/// `GET /dash/apps/:id/indexing-jobs/:job_id`: `{job}`.
pub fn indexing_job(
    conn: &Connection,
    app: &App,
    job_id: &str,
) -> Result<IndexingJobResponse, ApiError> {
    let job_id = uuid_param("job_id", job_id)?;
    match jobs::job_by_id(conn, app.app_pk, &app.id, &job_id)? {
        Some(job) => Ok(IndexingJobResponse { job }),
        // The server answers `{"job": {}}` here (its client format of no row); the typed port
        // needs a job, so a missing one is reported as a missing record.
        None => {
            let mut extra = Map::new();
            extra.insert("args".into(), json!([{"id": job_id}]));
            Err(ApiError::record_not_found("indexing-job", extra))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Permissions and temporary apps

/// `GET /dash/apps/:id/perms/pull`: `{perms}`, the stored rules or null.
pub fn perms_pull(conn: &Connection, app: &App) -> Result<PermsPullResponse, ApiError> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT perms FROM apps WHERE app_pk = ?1",
            [app.app_pk],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    Ok(PermsPullResponse {
        perms: stored.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// The rules code of an ephemeral request (`rules.code`), if any.
fn rules_code(request: &EphemeralAppRequest) -> Result<Option<Value>, ApiError> {
    let code = request
        .rules
        .as_ref()
        .and_then(|rules| rules.get("code"))
        .filter(|code| !code.is_null());
    match code {
        None => Ok(None),
        Some(Value::Object(code)) => Ok(Some(Value::Object(code.clone()))),
        Some(other) => Err(ApiError::new(
            400,
            "param-malformed",
            "Malformed parameter: [\"body\" \"rules\" \"code\"]",
            json!({"in": ["body", "rules", "code"], "original-input": other}),
        )),
    }
}

/// `POST /dash/apps/ephemeral`: a new app with a fresh admin token, its rules stored and its
/// schema (if given) applied with `check_types` on and no background updates, all or nothing.
pub fn create_ephemeral_app(
    store: &Store,
    request: &EphemeralAppRequest,
) -> Result<EphemeralAppResponse, ApiError> {
    let title = request.title.trim();
    if title.is_empty() {
        return Err(ApiError::new(
            400,
            "param-malformed",
            "Malformed parameter: [\"body\" \"title\"]",
            json!({"in": ["body", "title"], "original-input": request.title}),
        ));
    }
    let code = rules_code(request)?;
    let options = PlanOptions {
        check_types: true,
        supports_background_updates: false,
    };
    let mut conn = store.conn();
    let tx = write_transaction(&mut conn)?;
    let id = uuid::Uuid::new_v4().to_string();
    let token = uuid::Uuid::new_v4().to_string();
    let created_at = now_ms();
    tx.execute(
        "INSERT INTO apps (id, title, admin_token, created_at, ephemeral, perms) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
        params![id, title, token, created_at, code.as_ref().map(Value::to_string)],
    )
    .map_err(sql_error)?;
    let app = App {
        app_pk: tx.last_insert_rowid(),
        id: id.clone(),
        title: title.to_string(),
        created_at,
        ephemeral: true,
        status: "active".into(),
    };
    ensure_system_catalog(&tx, app.app_pk)?;
    if let Some(schema) = request.schema.as_ref().filter(|schema| !schema.is_null()) {
        let planned = compute_plan(&tx, &app, schema, options)?;
        apply::apply_steps(&tx, &app, planned.steps)?;
    }
    tx.commit().map_err(sql_error)?;
    Ok(EphemeralAppResponse {
        app: AppRecord {
            id,
            title: app.title,
            creator_id: Some(EPHEMERAL_CREATOR_ID.to_string()),
            created_at: Some(crate::dates::iso_from_ms(created_at)),
            org_id: None,
            status: Some("active".into()),
            admin_token: token,
        },
        expires_ms: created_at + EPHEMERAL_LIFETIME_MS,
    })
}
