//! Applying plan steps (`apply-plan!`, `apply-plan-with-deletes!`): attribute steps as one
//! catalogue transaction with the checks the server's database makes, then one indexing job per
//! job step, all in one group.

use instant_api::{ApiError, IndexingJobGroup};
use instant_schema::plan::{AttrPayload, PlanStep};
use instant_schema::{AttrKind, Cardinality, Identity, ServerAttr};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use super::jobs;
use super::system_catalog::{is_editable_system_etype, is_reserved_ident};
use crate::dates::iso_from_ms;
use crate::store::{
    attr_from_row, insert_attr, next_tx_id, now_ms, sql_error, App, AttrRow, ATTR_COLUMNS,
};

/// What an apply did: `{transaction, steps, indexing-jobs}`.
pub(crate) struct Applied {
    pub transaction: Value,
    pub steps: Vec<PlanStep>,
    pub indexing_jobs: Option<IndexingJobGroup>,
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// An attribute row with whether it is soft-deleted.
fn attr_by_id(
    conn: &Connection,
    app_pk: i64,
    id: &str,
) -> Result<Option<(AttrRow, bool)>, ApiError> {
    conn.query_row(
        &format!("SELECT {ATTR_COLUMNS}, deleted_at FROM attrs WHERE app_pk = ?1 AND id = ?2"),
        params![app_pk, id],
        |row| {
            Ok((
                attr_from_row(row)?,
                row.get::<_, Option<i64>>(18)?.is_some(),
            ))
        },
    )
    .optional()
    .map_err(sql_error)
}

/// A live attribute of the app itself (not the system catalog), as the server's
/// `WHERE app_id = ?` finds it.
fn live_user_attr(conn: &Connection, app_pk: i64, id: &str) -> Result<Option<AttrRow>, ApiError> {
    Ok(attr_by_id(conn, app_pk, id)?
        .filter(|(attr, deleted)| !deleted && !attr.attr.is_system())
        .map(|(attr, _)| attr))
}

// ---------------------------------------------------------------------------------------------
// Step shape (the server's `::tx-steps` spec)

fn spec_error(input: &Value, index: usize, path: &[&str], expected: &str) -> ApiError {
    let mut in_path = vec![json!(index), json!(1)];
    in_path.extend(path.iter().map(|key| json!(key)));
    ApiError::validation(
        "tx-steps",
        input.clone(),
        vec![json!({"expected": expected, "in": in_path})],
    )
}

fn check_identity(
    fields: &Map<String, Value>,
    key: &str,
) -> Result<(), (Vec<String>, &'static str)> {
    let Some(Value::Array(parts)) = fields.get(key) else {
        return Err((
            vec![key.to_string()],
            "(cat :id uuid? :etype non-blank-string? :label non-blank-string?)",
        ));
    };
    let non_blank = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .is_some_and(|text| !text.trim().is_empty())
    };
    if parts.len() != 3 {
        return Err((
            vec![key.to_string()],
            "(cat :id uuid? :etype non-blank-string? :label non-blank-string?)",
        ));
    }
    if !parts[0].as_str().is_some_and(is_uuid) {
        return Err((vec![key.to_string(), "0".into()], "uuid?"));
    }
    if !non_blank(parts.get(1)) {
        return Err((vec![key.to_string(), "1".into()], "non-blank-string?"));
    }
    if !non_blank(parts.get(2)) {
        return Err((vec![key.to_string(), "2".into()], "non-blank-string?"));
    }
    Ok(())
}

fn check_add_attr(fields: &Map<String, Value>) -> Result<(), (Vec<String>, &'static str)> {
    let missing = |key: &str| (vec![key.to_string()], "contains?");
    for key in [
        "id",
        "forward-identity",
        "value-type",
        "cardinality",
        "unique?",
        "index?",
    ] {
        if !fields.contains_key(key) {
            return Err(missing(key));
        }
    }
    if !fields["id"].as_str().is_some_and(is_uuid) {
        return Err((vec!["id".into()], "uuid?"));
    }
    check_identity(fields, "forward-identity")?;
    let value_type = fields["value-type"].as_str();
    if !matches!(value_type, Some("blob" | "ref")) {
        return Err((vec!["value-type".into()], "#{:blob :ref}"));
    }
    check_common(fields)?;
    if value_type == Some("ref") {
        if !fields.contains_key("reverse-identity") {
            return Err(missing("reverse-identity"));
        }
        check_identity(fields, "reverse-identity")?;
    }
    Ok(())
}

/// The optional keys both specs share.
fn check_common(fields: &Map<String, Value>) -> Result<(), (Vec<String>, &'static str)> {
    if let Some(cardinality) = fields.get("cardinality") {
        if !matches!(cardinality.as_str(), Some("one" | "many")) {
            return Err((vec!["cardinality".into()], "#{:one :many}"));
        }
    }
    for key in [
        "unique?",
        "index?",
        "required?",
        "indexing?",
        "checking-data-type?",
        "setting-unique?",
    ] {
        if let Some(flag) = fields.get(key) {
            if !(flag.is_boolean() || (key == "required?" && flag.is_null())) {
                return Err((vec![key.to_string()], "boolean?"));
            }
        }
    }
    if let Some(data_type) = fields.get("checked-data-type") {
        if !data_type
            .as_str()
            .is_some_and(|text| jobs::CHECKED_DATA_TYPES.contains(&text))
        {
            return Err((
                vec!["checked-data-type".into()],
                "#{:number :string :boolean :date}",
            ));
        }
    }
    Ok(())
}

fn check_update_attr(fields: &Map<String, Value>) -> Result<(), (Vec<String>, &'static str)> {
    match fields.get("id") {
        None => return Err((vec!["id".into()], "contains?")),
        Some(id) if !id.as_str().is_some_and(is_uuid) => return Err((vec!["id".into()], "uuid?")),
        _ => {}
    }
    for key in ["forward-identity", "reverse-identity"] {
        if fields.get(key).is_some_and(|value| !value.is_null()) {
            check_identity(fields, key)?;
        }
    }
    check_common(fields)
}

/// Checks every attribute step against the server's spec; the first problem is the error.
fn check_steps(steps: &[PlanStep], input: &Value) -> Result<(), ApiError> {
    for (index, step) in steps.iter().enumerate() {
        let problem = match step {
            PlanStep::AddAttr(attr) => check_add_attr(attr.fields()),
            PlanStep::UpdateAttr(attr) => check_update_attr(attr.fields()),
            PlanStep::DeleteAttr(delete) if !is_uuid(&delete.attr_id) => Err((vec![], "uuid?")),
            _ => Ok(()),
        };
        if let Err((path, expected)) = problem {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            return Err(spec_error(input, index, &path, expected));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors the server's attribute model raises

fn attributes_error(input: Value, message: String) -> ApiError {
    ApiError::validation("attributes", input, vec![json!({"message": message})])
}

/// `validate-system-ident-names!`.
fn check_system_names(fields: &Map<String, Value>) -> Result<(), ApiError> {
    for key in ["forward-identity", "reverse-identity"] {
        let Some(identity) = fields.get(key).and_then(identity_of) else {
            continue;
        };
        if is_reserved_ident(&identity.etype, &identity.label) {
            return Err(attributes_error(
                Value::Object(fields.clone()),
                format!(
                    "{}.{} is a system column and it already exists.",
                    identity.etype, identity.label
                ),
            ));
        }
        if identity.etype.starts_with('$') && !is_editable_system_etype(&identity.etype) {
            return Err(attributes_error(
                Value::Object(fields.clone()),
                format!(
                    "$ is reserved for system tables. You can't create {}",
                    identity.etype
                ),
            ));
        }
    }
    Ok(())
}

fn identity_of(value: &Value) -> Option<Identity> {
    let parts = value.as_array()?;
    match parts.as_slice() {
        [id, etype, label] => Some(Identity::new(
            id.as_str().map(str::to_string),
            etype.as_str()?,
            label.as_str()?,
        )),
        _ => None,
    }
}

fn ident_taken(etype: &str, label: &str) -> ApiError {
    ApiError::new(
        400,
        "record-not-unique",
        format!("`{label}` already exists on `{etype}`"),
        json!({"record-type": "ident", "etype": etype, "label": label}),
    )
}

/// Whether a live attribute of the app other than `except` uses `[etype, label]` as its forward
/// or reverse identity (the server's idents are unique per app across both directions).
fn ident_in_use(
    conn: &Connection,
    app_pk: i64,
    etype: &str,
    label: &str,
    except: Option<&str>,
) -> Result<bool, ApiError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM attrs WHERE app_pk = ?1 AND deleted_at IS NULL AND catalog = 'user' \
         AND id <> ?4 AND ((etype = ?2 AND label = ?3) OR (reverse_etype = ?2 AND reverse_label = ?3)))",
        params![app_pk, etype, label, except.unwrap_or("")],
        |row| row.get(0),
    )
    .map_err(sql_error)
}

fn etype_has_entities(conn: &Connection, app_pk: i64, etype: &str) -> Result<bool, ApiError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM entities WHERE app_pk = ?1 AND etype = ?2)",
        params![app_pk, etype],
        |row| row.get(0),
    )
    .map_err(sql_error)
}

fn on_delete_of(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if matches!(text.as_str(), "cascade" | "restrict") => {
            Ok(Some(text.clone()))
        }
        // The column is a Postgres enum; anything else fails the cast.
        Some(_) => Err(ApiError::new(
            500,
            "sql-exception",
            "SQL Exception: invalid-text-representation",
            json!({"table": "attrs", "condition": "invalid-text-representation", "debug-uri": null}),
        )),
    }
}

/// The attribute an `add-attr` payload describes (the spec has been checked).
fn attr_of_payload(payload: &AttrPayload) -> Result<ServerAttr, ApiError> {
    let fields = payload.fields();
    let forward = payload
        .forward_identity()
        .unwrap_or_else(|| Identity::new(None, "", ""));
    let mut attr = ServerAttr::blob(&forward.etype, &forward.label);
    attr.forward_identity = forward;
    attr.id = payload.id().map(str::to_string);
    attr.value_type = payload.kind().unwrap_or(AttrKind::Blob);
    attr.cardinality = payload.cardinality().unwrap_or(Cardinality::One);
    attr.reverse_identity = payload.reverse_identity();
    attr.unique = payload.flag("unique?").unwrap_or(false);
    attr.index = payload.flag("index?").unwrap_or(false);
    attr.required = payload.flag("required?").unwrap_or(false);
    attr.checked_data_type = payload.checked_data_type().map(str::to_string);
    attr.on_delete = on_delete_of(fields, "on-delete")?;
    attr.on_delete_reverse = on_delete_of(fields, "on-delete-reverse")?;
    attr.catalog = Some("user".into());
    Ok(attr)
}

/// Whether a stored attribute has exactly the columns an `add-attr` would write.
fn same_columns(stored: &ServerAttr, wanted: &ServerAttr) -> bool {
    let mut stored = stored.clone();
    stored.extra.clear();
    stored == *wanted
}

// ---------------------------------------------------------------------------------------------
// The three attribute operations

fn add_attrs(
    conn: &Connection,
    app_pk: i64,
    payloads: &[&AttrPayload],
    results: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    for payload in payloads {
        check_system_names(payload.fields())?;
    }
    for payload in payloads {
        if payload.flag("required?") != Some(true) {
            continue;
        }
        if let Some(forward) = payload.forward_identity() {
            if etype_has_entities(conn, app_pk, &forward.etype)? {
                return Err(attributes_error(
                    Value::Object(payload.fields().clone()),
                    format!(
                        "Can't create attribute `{}` as required because `{}` already have entities",
                        forward.label, forward.etype
                    ),
                ));
            }
        }
    }
    let (mut attrs_out, mut idents_out, mut triples_out) = (vec![], vec![], vec![]);
    for payload in payloads {
        let attr = attr_of_payload(payload)?;
        let id = attr.id.clone().unwrap_or_default();
        if let Some((stored, deleted)) = attr_by_id(conn, app_pk, &id)? {
            if !deleted && same_columns(&stored.attr, &attr) {
                continue;
            }
            return Err(ApiError::new(
                400,
                "sql-raise",
                format!(
                    "Raised Exception: The attribute with id {id} conflicts with an existing attribute with id {id}."
                ),
                json!({"condition": "raise-exception"}),
            ));
        }
        let mut idents = vec![&attr.forward_identity];
        idents.extend(attr.reverse_identity.as_ref());
        for identity in &idents {
            if ident_in_use(conn, app_pk, &identity.etype, &identity.label, None)? {
                return Err(ident_taken(&identity.etype, &identity.label));
            }
        }
        if attr.reverse_identity.as_ref().is_some_and(|reverse| {
            reverse.etype == attr.forward_identity.etype
                && reverse.label == attr.forward_identity.label
        }) {
            return Err(ident_taken(
                &attr.forward_identity.etype,
                &attr.forward_identity.label,
            ));
        }
        let attr_pk = insert_attr(conn, app_pk, &attr)?;
        attrs_out.push(json!({"id": id}));
        for identity in &idents {
            idents_out.push(json!({"id": identity.id}));
        }
        if attr.index && !attr.is_ref() {
            let row = AttrRow { attr_pk, attr };
            let (_, filled) = jobs::insert_null_triples(conn, app_pk, &row)?;
            triples_out.extend(filled.into_iter().map(|id| json!({"entity_id": id})));
        }
    }
    results.insert(
        "add-attr".into(),
        json!({"attrs": attrs_out, "idents": idents_out, "triples": triples_out}),
    );
    Ok(())
}

fn delete_attrs(
    conn: &Connection,
    app_pk: i64,
    ids: &[&str],
    results: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let now = now_ms();
    let mut deleted = 0usize;
    for id in ids {
        deleted += conn
            .execute(
                "UPDATE attrs SET deleted_at = ?1, is_indexed = 0, is_required = 0 \
                 WHERE app_pk = ?2 AND id = ?3 AND deleted_at IS NULL AND catalog = 'user'",
                params![now, app_pk, id],
            )
            .map_err(sql_error)?;
    }
    results.insert("delete-attr".into(), json!([{"count": deleted}]));
    Ok(())
}

/// The `record-not-unique` the server's unique triple index raises.
fn value_not_unique(attr: &AttrRow, value_text: &str) -> ApiError {
    let (etype, label) = (attr.etype(), attr.label());
    ApiError::new(
        400,
        "record-not-unique",
        format!(
            "`{label}` is a unique attribute on `{etype}` and an entity already exists with `{etype}.{label}` = {value_text}"
        ),
        json!({"record-type": "triple", "attr-id": attr.id(), "etype": etype, "label": label, "value": value_text}),
    )
}

fn update_attrs(
    conn: &Connection,
    app_pk: i64,
    payloads: &[&AttrPayload],
    results: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    for payload in payloads {
        check_system_names(payload.fields())?;
    }
    let mut updated = 0usize;
    for payload in payloads {
        let fields = payload.fields();
        let Some(current) = live_user_attr(conn, app_pk, payload.id().unwrap_or_default())? else {
            continue;
        };
        let old = &current.attr;
        let forward = fields
            .get("forward-identity")
            .and_then(identity_of)
            .unwrap_or_else(|| old.forward_identity.clone());
        let reverse = fields
            .get("reverse-identity")
            .and_then(identity_of)
            .or_else(|| old.reverse_identity.clone());
        let renamed = |new: &Identity, old: Option<&Identity>| {
            old.is_none_or(|old| old.etype != new.etype || old.label != new.label)
        };
        let mut moved = vec![];
        if renamed(&forward, Some(&old.forward_identity)) {
            moved.push(&forward);
        }
        if let Some(reverse) = &reverse {
            if renamed(reverse, old.reverse_identity.as_ref()) {
                moved.push(reverse);
            }
        }
        for identity in moved {
            if ident_in_use(
                conn,
                app_pk,
                &identity.etype,
                &identity.label,
                old.id.as_deref(),
            )? {
                return Err(ident_taken(&identity.etype, &identity.label));
            }
        }
        let value_type = payload.kind().unwrap_or(old.value_type);
        let cardinality = payload.cardinality().unwrap_or(old.cardinality);
        let unique = payload.flag("unique?").unwrap_or(old.unique);
        let index = payload.flag("index?").unwrap_or(old.index);
        let required = payload.flag("required?").unwrap_or(old.required);
        if unique && !old.unique {
            if let (_, Some(value_text)) =
                jobs::first_duplicate_value(conn, app_pk, current.attr_pk)?
            {
                return Err(value_not_unique(&current, &value_text));
            }
        }
        if cardinality == Cardinality::One && old.cardinality == Cardinality::Many {
            let crowded: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM triples WHERE app_pk = ?1 AND attr_pk = ?2 \
                     GROUP BY entity_pk HAVING COUNT(*) > 1)",
                    params![app_pk, current.attr_pk],
                    |row| row.get(0),
                )
                .map_err(sql_error)?;
            if crowded {
                return Err(ApiError::new(
                    400,
                    "record-not-unique",
                    "Record not unique: triple",
                    json!({"record-type": "triple"}),
                ));
            }
        }
        // The server writes both on-delete columns from the payload as given, so an update
        // that leaves them out clears them.
        let on_delete = on_delete_of(fields, "on-delete")?;
        let on_delete_reverse = on_delete_of(fields, "on-delete-reverse")?;
        updated += conn
            .execute(
                "UPDATE attrs SET etype = ?1, label = ?2, reverse_etype = ?3, reverse_label = ?4, \
                 value_type = ?5, cardinality = ?6, is_unique = ?7, is_indexed = ?8, is_required = ?9, \
                 on_delete = ?10, on_delete_reverse = ?11 WHERE attr_pk = ?12",
                params![
                    forward.etype,
                    forward.label,
                    reverse.as_ref().map(|r| r.etype.clone()),
                    reverse.as_ref().map(|r| r.label.clone()),
                    if value_type == AttrKind::Ref { "ref" } else { "blob" },
                    cardinality.as_str(),
                    unique,
                    index,
                    required,
                    on_delete,
                    on_delete_reverse,
                    current.attr_pk,
                ],
            )
            .map_err(sql_error)?;
        crate::store::refresh_value_index(conn, app_pk, current.attr_pk)?;
        // Reverse identities need an ident id; a link made from a data attribute gets one.
        if reverse.is_some() && old.reverse_identity.is_none() {
            conn.execute(
                "UPDATE attrs SET reverse_ident = ?1 WHERE attr_pk = ?2",
                params![uuid::Uuid::new_v4().to_string(), current.attr_pk],
            )
            .map_err(sql_error)?;
        }
    }
    results.insert("update-attr".into(), json!([{"count": updated}]));
    Ok(())
}

/// `validate-update-required!`: an attribute updated to required must be set on every entity
/// of its namespace.
fn check_updated_required(
    conn: &Connection,
    app_pk: i64,
    payloads: &[&AttrPayload],
) -> Result<(), ApiError> {
    for payload in payloads {
        if payload.flag("required?") != Some(true) {
            continue;
        }
        let id = payload.id().unwrap_or_default();
        let Some(attr) = live_user_attr(conn, app_pk, id)? else {
            continue;
        };
        let (_, missing) = jobs::entities_missing(conn, app_pk, &attr)?;
        if !missing.is_empty() {
            return Err(attributes_error(
                json!({"id": id}),
                format!(
                    "Can't update attribute `{}` to required because `{}` already have entities without it",
                    attr.label(),
                    attr.etype()
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Apply

/// Gives a fresh id to every `add-attr` whose (plan-derived) id the app already used, for
/// instance by an attribute deleted since; the steps then carry the ids actually written.
pub(crate) fn fresh_ids_where_taken(
    conn: &Connection,
    app_pk: i64,
    steps: Vec<PlanStep>,
) -> Result<Vec<PlanStep>, ApiError> {
    steps
        .into_iter()
        .map(|step| match step {
            PlanStep::AddAttr(payload) => {
                let taken = match payload.id() {
                    Some(id) => attr_by_id(conn, app_pk, id)?.is_some(),
                    None => false,
                };
                if !taken {
                    return Ok(PlanStep::AddAttr(payload));
                }
                let mut fields = payload.into_fields();
                fields.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
                Ok(PlanStep::AddAttr(AttrPayload::new(fields)))
            }
            other => Ok(other),
        })
        .collect()
}

/// Applies `steps` to the app. The caller owns the SQLite transaction.
pub(crate) fn apply_steps(
    conn: &Connection,
    app: &App,
    steps: Vec<PlanStep>,
) -> Result<Applied, ApiError> {
    let input = Value::Array(steps.iter().map(PlanStep::to_wire).collect());
    check_steps(&steps, &input)?;

    // Attribute steps run grouped by operation, groups in order of first appearance.
    let mut order: Vec<&str> = vec![];
    for step in &steps {
        let op = step.step_type();
        if matches!(op, "add-attr" | "update-attr" | "delete-attr") && !order.contains(&op) {
            order.push(op);
        }
    }
    let adds: Vec<&AttrPayload> = steps
        .iter()
        .filter_map(|step| match step {
            PlanStep::AddAttr(payload) => Some(payload),
            _ => None,
        })
        .collect();
    let updates: Vec<&AttrPayload> = steps
        .iter()
        .filter_map(|step| match step {
            PlanStep::UpdateAttr(payload) => Some(payload),
            _ => None,
        })
        .collect();
    let deletes: Vec<&str> = steps
        .iter()
        .filter_map(|step| match step {
            PlanStep::DeleteAttr(delete) => Some(delete.attr_id.as_str()),
            _ => None,
        })
        .collect();

    let transaction = if order.is_empty() {
        json!({})
    } else {
        let created_at = now_ms();
        let tx_id = next_tx_id(conn, app.app_pk, created_at)?;
        let mut results = Map::new();
        for op in &order {
            match *op {
                "add-attr" => add_attrs(conn, app.app_pk, &adds, &mut results)?,
                "update-attr" => update_attrs(conn, app.app_pk, &updates, &mut results)?,
                _ => delete_attrs(conn, app.app_pk, &deletes, &mut results)?,
            }
        }
        check_updated_required(conn, app.app_pk, &updates)?;
        json!({"id": tx_id, "app_id": app.id, "created_at": iso_from_ms(created_at), "results": results})
    };

    let group_id = uuid::Uuid::new_v4().to_string();
    let mut job_count = 0usize;
    let mut applied_steps = Vec::with_capacity(steps.len());
    for mut step in steps {
        let job_type = step.step_type().to_string();
        if let Some(job) = job_payload_mut(&mut step) {
            // Looked up afresh: an earlier job may have changed the attribute.
            let Some((attr, _)) = attr_by_id(conn, app.app_pk, &job.attr_id)? else {
                return Err(ApiError::new(
                    400,
                    "record-foreign-key-invalid",
                    "Foreign Key Invalid: foreign-key-violation",
                    json!({"table": "indexing_jobs", "condition": "foreign-key-violation",
                           "constraint": "indexing_jobs_attr_id_fkey"}),
                ));
            };
            let data_type = if job_type == "check-data-type" {
                match job.checked_data_type.as_deref() {
                    Some(text) if jobs::CHECKED_DATA_TYPES.contains(&text) => {
                        Some(text.to_string())
                    }
                    _ => {
                        return Err(ApiError::new(
                            500,
                            "sql-exception",
                            "SQL Exception: invalid-text-representation",
                            json!({"table": "indexing_jobs", "condition": "invalid-text-representation",
                                   "debug-uri": null}),
                        ))
                    }
                }
            } else {
                None
            };
            let job_id = jobs::create_and_run(
                conn,
                app.app_pk,
                &group_id,
                &attr,
                &job_type,
                data_type.as_deref(),
            )?;
            job.extra.insert("job-id".into(), json!(job_id));
            job_count += 1;
        }
        applied_steps.push(step);
    }
    let indexing_jobs = if job_count == 0 {
        None
    } else {
        let jobs = jobs::jobs_in_group(conn, app.app_pk, &app.id, &group_id)?
            .into_iter()
            .map(jobs::with_raw_columns)
            .collect();
        Some(IndexingJobGroup { group_id, jobs })
    };
    Ok(Applied {
        transaction,
        steps: applied_steps,
        indexing_jobs,
    })
}

fn job_payload_mut(step: &mut PlanStep) -> Option<&mut instant_schema::plan::JobPayload> {
    match step {
        PlanStep::Index(job)
        | PlanStep::RemoveIndex(job)
        | PlanStep::Unique(job)
        | PlanStep::RemoveUnique(job)
        | PlanStep::Required(job)
        | PlanStep::RemoveRequired(job)
        | PlanStep::CheckDataType(job)
        | PlanStep::RemoveDataType(job) => Some(job),
        _ => None,
    }
}
