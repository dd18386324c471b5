//! `POST /admin/query`: InstaQL over the SQLite store, answering with the bare result tree the
//! server's `query-post` returns (no page info, no aggregates).
//!
//! The work follows the server's own phases, because which error a client sees depends on it:
//! 1. `forms` reads the query object into forms, as `coerce-forms!` does (shape checks, `$`
//!    options, `where` rewriting of `or`/`and`/`$not`/`$isNull`), then checks the `where`
//!    values as the server's spec conform does (`Validation failed for coerced-query`).
//! 2. `plan` resolves every form against the attribute catalogue, top-level form by form and
//!    depth first (`query-one`): `where` typing and link errors, top-level `order` validation,
//!    children. An unknown namespace or `where` attribute makes that form empty, not an error.
//! 3. `exec` reads the rows: a narrowing `where` condition on the top-level form is answered
//!    from an index, the rest is evaluated in memory on the candidates only, and the default
//!    order with `limit`/`offset` streams the `entities_created` index.
//!
//! **Entity objects** hold `"id"`, then every cardinality-one attribute of the namespace that has
//! a stored triple (stored nulls included), in catalogue order, then the requested children in
//! query order. That set is the server's `ea-ids-for-etype` (every cardinality-one attribute
//! whose forward namespace is the entity's, refs included) read through `triples->map`, so an
//! unexpanded forward has-one link appears under its label as the linked entity's id (a UUID
//! string); when the child is requested, the nested result replaces it.

// Errors carry the whole server envelope on purpose; see `instant-api`.
#![allow(clippy::result_large_err)]

mod dates;
mod exec;
mod forms;
mod plan;

#[cfg(test)]
mod tests;

use instant_api::{ApiError, QueryRequest};
use serde_json::{json, Value};

use crate::store::{load_attrs, App};

/// Runs an InstaQL query for `app` and returns the result tree, or the server's error envelope.
pub fn query(
    conn: &rusqlite::Connection,
    app: &App,
    request: &QueryRequest,
) -> Result<Value, ApiError> {
    let object = match &request.query {
        Value::Null | Value::Bool(false) => {
            return Err(ApiError::new(
                400,
                "param-missing",
                "Missing parameter: [\"body\" \"query\"]",
                json!({"in": ["body", "query"]}),
            ))
        }
        Value::Object(object) => object,
        other => {
            return Err(ApiError::new(
                400,
                "param-malformed",
                "Malformed parameter: [\"body\" \"query\"]",
                json!({"in": ["body", "query"], "original-input": other}),
            ))
        }
    };
    // Rule params only matter for permission rules, which admin queries skip.
    let mut root = object.clone();
    root.shift_remove("$$ruleParams");
    let root = Value::Object(root);

    let catalogue = plan::Catalogue::new(load_attrs(conn, app.app_pk)?);
    let forms = forms::read_forms(&catalogue, &root)?;
    let plans = plan::plan_forms(&catalogue, &root, &forms)?;
    let reader = exec::Reader::new(conn, app.app_pk, &catalogue);
    let mut tree = serde_json::Map::new();
    for top in &plans {
        let value = reader.run_top(top, request.inference)?;
        tree.insert(top.key.clone(), value);
    }
    Ok(Value::Object(tree))
}
