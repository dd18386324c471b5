use expect_test::{expect, Expect};
use instant_api::{EphemeralAppRequest, SchemaApplyResponse, SchemaPushRequest, StepsApplyRequest};
use instant_schema::plan::PlanStep;
use instant_schema::BuiltinSchema;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use super::*;
use crate::store::Store;

fn new_app(store: &Store) -> App {
    let (app, _) = store.create_app("test", false).unwrap();
    ensure_system_catalog(&store.conn(), app.app_pk).unwrap();
    app
}

fn push_request(schema: Value, background: bool) -> SchemaPushRequest {
    SchemaPushRequest {
        schema,
        check_types: true,
        supports_background_updates: background,
    }
}

fn thread_v1() -> Value {
    BuiltinSchema::ThreadV1
        .load()
        .unwrap()
        .dsl()
        .into_owned()
        .to_dsl_json()
}

/// A DSL data attribute.
fn attr(value_type: &str, required: bool, indexed: bool, unique: bool) -> Value {
    json!({"valueType": value_type, "required": required, "isIndexed": indexed,
           "config": {"indexed": indexed, "unique": unique}, "metadata": {}})
}

/// Replaces the values of `keys` (anywhere in `value`) with `"<key>"`: random ids and clocks.
fn redact(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if keys.contains(&key.as_str()) && !inner.is_null() {
                    *inner = Value::String(format!("<{key}>"));
                } else {
                    redact(inner, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, keys)),
        _ => {}
    }
}

fn step_lines(steps: &[PlanStep]) -> String {
    steps
        .iter()
        .map(|step| step.to_wire().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn attr_pk(conn: &Connection, app_pk: i64, etype: &str, label: &str) -> i64 {
    conn.query_row(
        "SELECT attr_pk FROM attrs WHERE app_pk = ?1 AND etype = ?2 AND label = ?3 AND deleted_at IS NULL",
        params![app_pk, etype, label],
        |row| row.get(0),
    )
    .unwrap()
}

/// Writes an entity the way the transact engine stores it (see the shared conventions).
fn seed(conn: &Connection, app_pk: i64, etype: &str, id: &str, at: i64, values: &[(&str, Value)]) {
    conn.execute(
        "INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES (?1, ?2)",
        params![app_pk, id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO entities (app_pk, etype, entity_pk, entity_id, created_at) VALUES (?1, ?2, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?3), ?3, ?4)",
        params![app_pk, etype, id, at],
    )
    .unwrap();
    for (label, value) in values {
        conn.execute(
            "INSERT INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) \
             VALUES (?1, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2), ?3, ?4, ?7, ?5, NULL, (SELECT CASE WHEN a.value_type = 'blob' AND (a.is_unique OR a.is_indexed) THEN 1 ELSE 0 END FROM attrs a WHERE a.attr_pk = ?3), ?6)",
            params![
                app_pk,
                id,
                attr_pk(conn, app_pk, etype, label),
                value.to_string(),
                value.as_f64(),
                at,
                crate::store::value_key(&value.to_string())
            ],
        )
        .unwrap();
    }
}

fn flags(conn: &Connection, app: &App, etype: &str) -> String {
    let pull = schema_pull(conn, app).unwrap();
    pull.schema.blobs[etype]
        .iter()
        .map(|(label, attr)| {
            format!(
                "{label}: unique={} index={} required={} type={}",
                attr.unique,
                attr.index,
                attr.required,
                attr.checked_data_type.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn job_lines(applied: &SchemaApplyResponse) -> String {
    let jobs = &applied.indexing_jobs.as_ref().expect("jobs").jobs;
    jobs.iter()
        .map(|job| {
            format!(
                "{} {} {} {} error={} unique_value={} sample={} data={}",
                job.job_type,
                job.attr_name.as_deref().unwrap_or("?"),
                job.job_status,
                job.job_stage.as_deref().unwrap_or("-"),
                job.error.as_deref().unwrap_or("-"),
                job.extra["invalid_unique_value"],
                job.extra["invalid_triples_sample"],
                job.extra["error_data"],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_error(error: &ApiError, expected: Expect) {
    expected.assert_eq(&format!("{} {}", error.status, error.envelope()));
}

#[test]
fn fresh_app_pulls_the_visible_system_catalog() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let conn = store.conn();
    let pull = schema_pull(&conn, &app).unwrap();
    assert_eq!(pull.app_title.as_deref(), Some("test"));
    // Every system attribute is in `attrs`; only the visible ones are in `schema`.
    assert_eq!(pull.attrs.len(), 57);
    assert!(pull.attrs.iter().all(|attr| attr.is_system()));
    let mut lines: Vec<String> = pull
        .schema
        .blobs
        .iter()
        .flat_map(|(etype, attrs)| attrs.keys().map(move |label| format!("{etype}.{label}")))
        .collect();
    lines.sort();
    lines.extend(pull.schema.refs.keys().cloned());
    expect![[r#"
        $files.id
        $files.path
        $files.url
        $streams.abortReason
        $streams.clientId
        $streams.done
        $streams.id
        $streams.size
        $users.email
        $users.id
        $users.imageURL
        $users.type
        ["$streams" "$files" "$files" "$stream"]
        ["$users" "linkedPrimaryUser" "$users" "linkedGuestUsers"]"#]]
    .assert_eq(&lines.join("\n"));
    // System ids are the hosted service's (its `$files.url` id is hard-coded in its clients).
    expect![[r#"{"id":"96653230-13ff-ffff-2a35-48afffffffff","value-type":"blob","cardinality":"one","forward-identity":["96653231-03ff-ffff-2a35-48afffffffff","$files","url"],"unique?":false,"index?":false,"required?":true,"checked-data-type":"string","catalog":"system","inferred-types":null}"#]]
    .assert_eq(&serde_json::to_string(&pull.schema.blobs["$files"]["url"]).unwrap());
    expect![[r#"{"id":"96653230-13ff-ffff-a4b4-b7d3ffffffff","value-type":"ref","cardinality":"one","forward-identity":["96653231-03ff-ffff-a4b4-b7d3ffffffff","$users","linkedPrimaryUser"],"reverse-identity":["96653231-03ff-ffff-a4b4-b353ffffffff","$users","linkedGuestUsers"],"unique?":false,"index?":false,"required?":false,"on-delete":"cascade","catalog":"system","inferred-types":null}"#]]
    .assert_eq(
        &serde_json::to_string(
            &pull.schema.refs["[\"$users\" \"linkedPrimaryUser\" \"$users\" \"linkedGuestUsers\"]"],
        )
        .unwrap(),
    );
    assert_eq!(perms_pull(&conn, &app).unwrap().perms, None);
    // Calling it again adds nothing.
    ensure_system_catalog(&conn, app.app_pk).unwrap();
    assert_eq!(schema_pull(&conn, &app).unwrap().attrs.len(), 57);
}

#[test]
fn thread_v1_plans_pushes_and_then_plans_nothing() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let request = push_request(thread_v1(), true);
    let planned = schema_plan(&store.conn(), &app, &request).unwrap();
    assert_eq!(planned.current_attrs.len(), 57);
    let counts = planned
        .steps
        .iter()
        .fold(IndexMap::<&str, usize>::new(), |mut counts, step| {
            *counts.entry(step.step_type()).or_default() += 1;
            counts
        });
    expect![[r#"{"add-attr": 122}"#]].assert_eq(&format!("{counts:?}"));
    expect![[r#"["add-attr",{"value-type":"blob","cardinality":"one","id":"08ebb12e-d067-5c3a-82d5-262b9bc43a56","forward-identity":["405f4f90-c3b3-599b-8ccf-3aa0b5a248f8","thread_threads","id"],"unique?":true,"index?":false}]"#]]
    .assert_eq(&step_lines(&planned.steps[..1]).to_string());

    let pushed = schema_push(&mut store.conn(), &app, &request).unwrap();
    assert_eq!(pushed.steps, planned.steps, "apply keeps the planned ids");
    assert!(pushed.indexing_jobs.is_none());
    let mut transaction = pushed.transaction.clone();
    redact(&mut transaction, &["id", "app_id", "created_at"]);
    transaction["results"]["add-attr"]["attrs"] = json!(transaction["results"]["add-attr"]
        ["attrs"]
        .as_array()
        .unwrap()
        .len());
    transaction["results"]["add-attr"]["idents"] = json!(transaction["results"]["add-attr"]
        ["idents"]
        .as_array()
        .unwrap()
        .len());
    expect![[r#"{"id":"<id>","app_id":"<app_id>","created_at":"<created_at>","results":{"add-attr":{"attrs":122,"idents":134,"triples":[]}}}"#]]
    .assert_eq(&transaction.to_string());

    let again = schema_plan(&store.conn(), &app, &request).unwrap();
    assert!(again.steps.is_empty(), "{}", step_lines(&again.steps));
    let pull = schema_pull(&store.conn(), &app).unwrap();
    let key = &pull.schema.blobs["thread_parts"]["key"];
    assert!(key.unique && key.index && key.required);
    assert_eq!(
        key.id.as_deref(),
        Some(instant_schema::plan::new_attr_id("thread_parts", "key").as_str())
    );
}

#[test]
fn flag_changes_run_one_job_each() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let base = json!({"entities": {"posts": {"attrs": {
        "title": attr("string", false, false, false),
        "slug": attr("string", false, false, false),
        "views": attr("json", false, false, false),
        "published": attr("json", false, false, false)}}}, "links": {}});
    schema_push(&mut store.conn(), &app, &push_request(base.clone(), true)).unwrap();
    {
        let conn = store.conn();
        let p = |n: u8| format!("00000000-0000-4000-8000-00000000000{n}");
        seed(
            &conn,
            app.app_pk,
            "posts",
            &p(1),
            1,
            &[
                ("title", json!("A")),
                ("slug", json!("dup")),
                ("views", json!(1)),
                ("published", json!("2025-01-01T00:00:00Z")),
            ],
        );
        seed(
            &conn,
            app.app_pk,
            "posts",
            &p(2),
            2,
            &[
                ("title", json!("B")),
                ("slug", json!("dup")),
                ("views", json!("many")),
                ("published", json!(1700000000000u64)),
            ],
        );
        seed(
            &conn,
            app.app_pk,
            "posts",
            &p(3),
            3,
            &[("title", json!("C")), ("views", json!(3))],
        );
    }
    let mut wanted = base.clone();
    let posts = &mut wanted["entities"]["posts"]["attrs"];
    posts["title"] = attr("string", true, true, true);
    posts["slug"] = attr("string", true, false, true);
    posts["views"] = attr("number", false, false, false);
    posts["published"] = attr("date", false, false, false);
    let request = push_request(wanted.clone(), true);
    let planned = schema_plan(&store.conn(), &app, &request).unwrap();
    expect![[r#"
        index posts.title
        unique posts.title
        required posts.title
        unique posts.slug
        required posts.slug
        check-data-type posts.views
        check-data-type posts.published"#]]
    .assert_eq(
        &planned
            .steps
            .iter()
            .map(|step| format!("{} {}", step.step_type(), step.target().unwrap()))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let applied = schema_push(&mut store.conn(), &app, &request).unwrap();
    assert_eq!(applied.transaction, json!({}));
    expect![[r#"
        index posts.title completed update-attr-done error=- unique_value=null sample=null data=null
        unique posts.title completed update-attr-done error=- unique_value=null sample=null data=null
        required posts.title completed revalidate error=- unique_value=null sample=null data=null
        unique posts.slug errored update-triples error=triple-not-unique-error unique_value="dup" sample=[{"entity_id":"00000000-0000-4000-8000-000000000001","value":"dup","json_type":"string"},{"entity_id":"00000000-0000-4000-8000-000000000002","value":"dup","json_type":"string"}] data=null
        required posts.slug errored validate error=missing-required-error unique_value=null sample=[{"entity_id":"00000000-0000-4000-8000-000000000003","value":null,"json_type":"null"}] data={"count":1,"etype":"posts","label":"slug","entity-ids":["00000000-0000-4000-8000-000000000003"]}
        check-data-type posts.views errored validate error=invalid-triple-error unique_value=null sample=[{"entity_id":"00000000-0000-4000-8000-000000000002","value":"many","json_type":"string"}] data=null
        check-data-type posts.published completed update-attr-done error=- unique_value=null sample=null data=null"#]]
    .assert_eq(&job_lines(&applied));
    let conn = store.conn();
    expect![[r#"
        views: unique=false index=false required=false type=-
        published: unique=false index=false required=false type=date
        slug: unique=false index=false required=false type=string
        title: unique=true index=true required=true type=string
        id: unique=true index=false required=false type=-"#]]
    .assert_eq(&flags(&conn, &app, "posts"));
    // Dates got their epoch milliseconds.
    let nums: Vec<Option<f64>> = conn
        .prepare("SELECT num FROM triples WHERE attr_pk = ?1 ORDER BY created_at")
        .unwrap()
        .query_map([attr_pk(&conn, app.app_pk, "posts", "published")], |row| {
            row.get(0)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        nums,
        vec![Some(1_735_689_600_000.0), Some(1_700_000_000_000.0)]
    );

    // The steps carry their job ids, and polling returns the same jobs.
    let group = applied.indexing_jobs.as_ref().unwrap();
    for (step, job) in applied.steps.iter().zip(&group.jobs) {
        assert_eq!(step.job().unwrap().extra["job-id"], json!(job.id));
    }
    let polled = indexing_job_group(&conn, &app, &group.group_id).unwrap();
    assert_eq!(polled.jobs.len(), 7);
    assert!(polled.jobs.iter().all(|job| job.is_terminal()));
    let mut one =
        serde_json::to_value(indexing_job(&conn, &app, &group.jobs[4].id).unwrap()).unwrap();
    redact(
        &mut one,
        &[
            "id",
            "app_id",
            "group_id",
            "attr_id",
            "created_at",
            "updated_at",
        ],
    );
    expect![[r#"{"job":{"id":"<id>","app_id":"<app_id>","group_id":"<group_id>","attr_id":"<attr_id>","attr_name":"posts.slug","job_type":"required","job_status":"errored","job_stage":"validate","error":"missing-required-error","work_estimate":3,"work_completed":3,"checked_data_type":null,"created_at":"<created_at>","updated_at":"<updated_at>","done_at":null,"invalid_unique_value":null,"invalid_triples_sample":[{"entity_id":"00000000-0000-4000-8000-000000000003","value":null,"json_type":"null"}],"error_data":{"count":1,"etype":"posts","label":"slug","entity-ids":["00000000-0000-4000-8000-000000000003"]}}}"#]]
    .assert_eq(&one.to_string());
    let mut applied_job = serde_json::to_value(&group.jobs[0]).unwrap();
    redact(
        &mut applied_job,
        &[
            "id",
            "app_id",
            "group_id",
            "attr_id",
            "created_at",
            "updated_at",
            "done_at",
        ],
    );
    expect![[r#"{"id":"<id>","app_id":"<app_id>","group_id":"<group_id>","attr_id":"<attr_id>","attr_name":"posts.title","job_type":"index","job_status":"completed","job_stage":"update-attr-done","error":null,"work_estimate":6,"work_completed":6,"checked_data_type":null,"created_at":"<created_at>","updated_at":"<updated_at>","done_at":"<done_at>","invalid_unique_value":null,"invalid_triples_sample":null,"error_data":null,"job_serial_key":"index","job_dependency":null,"worker_id":null,"invalid_entity_id":null,"error_detail":null,"context":null}"#]]
    .assert_eq(&applied_job.to_string());
    assert!(indexing_job_group(&conn, &app, "not-a-uuid").is_err());
    drop(conn);

    // Back to the base schema: every removal job completes.
    let removed = schema_push(&mut store.conn(), &app, &push_request(base, true)).unwrap();
    expect![[r#"
        remove-index posts.title completed update-attr-done error=- unique_value=null sample=null data=null
        remove-unique posts.title completed update-attr-done error=- unique_value=null sample=null data=null
        remove-required posts.title completed update-attr error=- unique_value=null sample=null data=null
        remove-data-type posts.published completed update-attr-done error=- unique_value=null sample=null data=null"#]]
    .assert_eq(&job_lines(&removed));
    let conn = store.conn();
    expect![[r#"
        views: unique=false index=false required=false type=-
        published: unique=false index=false required=false type=-
        slug: unique=false index=false required=false type=string
        title: unique=false index=false required=false type=string
        id: unique=true index=false required=false type=-"#]]
    .assert_eq(&flags(&conn, &app, "posts"));
    let string_date_num: Option<f64> = conn
        .query_row(
            "SELECT num FROM triples WHERE attr_pk = ?1 AND created_at = 1",
            [attr_pk(&conn, app.app_pk, "posts", "published")],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(string_date_num, None, "an untyped string has no num");
}

#[test]
fn synchronous_flag_updates_are_checked_by_the_catalogue() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let base = json!({"entities": {"posts": {"attrs": {
        "slug": attr("string", false, false, false)}}}});
    schema_push(&mut store.conn(), &app, &push_request(base.clone(), false)).unwrap();
    seed(
        &store.conn(),
        app.app_pk,
        "posts",
        "00000000-0000-4000-8000-000000000001",
        1,
        &[("slug", json!("x"))],
    );
    seed(
        &store.conn(),
        app.app_pk,
        "posts",
        "00000000-0000-4000-8000-000000000002",
        2,
        &[("slug", json!("x"))],
    );
    seed(
        &store.conn(),
        app.app_pk,
        "posts",
        "00000000-0000-4000-8000-000000000003",
        3,
        &[],
    );

    let mut unique = base.clone();
    unique["entities"]["posts"]["attrs"]["slug"] = attr("string", false, true, true);
    let error = schema_push(&mut store.conn(), &app, &push_request(unique, false)).unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"record-not-unique","message":"`slug` is a unique attribute on `posts` and an entity already exists with `posts.slug` = \"x\"","hint":{"record-type":"triple","attr-id":"7df56105-f849-55b6-9547-05042ce7552d","etype":"posts","label":"slug","value":"\"x\""}}"#
        ]],
    );

    let mut required = base.clone();
    required["entities"]["posts"]["attrs"]["slug"] = attr("string", true, false, false);
    let error = schema_push(&mut store.conn(), &app, &push_request(required, false)).unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"validation-failed","message":"Validation failed for attributes: Can't update attribute `slug` to required because `posts` already have entities without it","hint":{"data-type":"attributes","input":{"id":"7df56105-f849-55b6-9547-05042ce7552d"},"errors":[{"message":"Can't update attribute `slug` to required because `posts` already have entities without it"}]}}"#
        ]],
    );

    let mut new_required = base.clone();
    new_required["entities"]["posts"]["attrs"]["body"] = attr("string", true, false, false);
    let error =
        schema_push(&mut store.conn(), &app, &push_request(new_required, false)).unwrap_err();
    assert_eq!(
        error.message,
        "Validation failed for attributes: Can't create attribute `body` as required because `posts` already have entities"
    );
    // Nothing of the failed pushes was kept.
    expect![[r#"
        slug: unique=false index=false required=false type=string
        id: unique=true index=false required=false type=-"#]]
    .assert_eq(&flags(&store.conn(), &app, "posts"));

    // An index added synchronously gives the entities without a value a null.
    let mut indexed = base;
    indexed["entities"]["posts"]["attrs"]["slug"] = attr("string", false, true, false);
    let pushed = schema_push(
        &mut store.conn(),
        &app,
        &push_request(indexed.clone(), false),
    )
    .unwrap();
    expect![[r#"["update-attr",{"value-type":"blob","cardinality":"one","id":"7df56105-f849-55b6-9547-05042ce7552d","forward-identity":["87e3b581-bdfe-54ff-878b-3fb528b6b66e","posts","slug"],"unique?":false,"index?":true,"required?":false}]"#]]
    .assert_eq(&step_lines(&pushed.steps));
    indexed["entities"]["posts"]["attrs"]["tag"] = attr("string", false, true, false);
    schema_push(&mut store.conn(), &app, &push_request(indexed, false)).unwrap();
    let nulls: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM triples WHERE value = 'null'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        nulls, 3,
        "the new indexed `tag` got a null on each of the three posts"
    );
}

#[test]
fn steps_apply_adds_renames_and_deletes() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let schema = json!({"entities": {"posts": {"attrs": {"slug": attr("string", false, false, false)}},
                                     "profiles": {"attrs": {"name": attr("string", false, false, false)}}},
                        "links": {"postAuthor": {"forward": {"on": "posts", "has": "one", "label": "author"},
                                                 "reverse": {"on": "profiles", "has": "many", "label": "posts"}}}});
    schema_push(&mut store.conn(), &app, &push_request(schema, true)).unwrap();
    let pull = schema_pull(&store.conn(), &app).unwrap();
    let slug_id = pull.schema.blobs["posts"]["slug"].id.clone().unwrap();
    let name = &pull.schema.blobs["profiles"]["name"];
    let name_id = name.id.clone().unwrap();
    let name_ident = name.forward_identity.id.clone().unwrap();
    let new_id = "11111111-2222-4333-8444-555555555555";
    let steps: Vec<PlanStep> = serde_json::from_value(json!([
        ["delete-attr", slug_id],
        ["add-attr", {"id": new_id, "forward-identity": [new_id, "posts", "slug"], "reverse-identity": null,
                      "inferred-types": null, "value-type": "blob", "cardinality": "one",
                      "unique?": false, "index?": false, "required?": false, "catalog": "user"}],
        ["unique", {"attr-id": new_id, "forward-identity": [new_id, "posts", "slug"]}],
        ["update-attr", {"id": name_id, "forward-identity": [name_ident, "profiles", "handle"]}],
        ["rename-namespace", {"from": "a", "to": "b"}]
    ]))
    .unwrap();
    let applied =
        schema_steps_apply(&mut store.conn(), &app, &StepsApplyRequest { steps }).unwrap();
    let mut response = serde_json::to_value(&applied).unwrap();
    redact(
        &mut response,
        &[
            "id",
            "app_id",
            "created_at",
            "updated_at",
            "done_at",
            "group-id",
            "group_id",
            "job-id",
        ],
    );
    response["indexing-jobs"]["jobs"] = json!(job_lines(&applied));
    expect![[r#"{"steps":[["delete-attr","7df56105-f849-55b6-9547-05042ce7552d"],["add-attr",{"id":"<id>","forward-identity":["11111111-2222-4333-8444-555555555555","posts","slug"],"reverse-identity":null,"inferred-types":null,"value-type":"blob","cardinality":"one","unique?":false,"index?":false,"required?":false,"catalog":"user"}],["unique",{"attr-id":"11111111-2222-4333-8444-555555555555","forward-identity":["11111111-2222-4333-8444-555555555555","posts","slug"],"job-id":"<job-id>"}],["update-attr",{"id":"<id>","forward-identity":["32709284-ac8f-5231-8b0a-a50bc7bead50","profiles","handle"]}],["rename-namespace",{"from":"a","to":"b"}]],"transaction":{"id":"<id>","app_id":"<app_id>","created_at":"<created_at>","results":{"delete-attr":[{"count":1}],"add-attr":{"attrs":[{"id":"<id>"}],"idents":[{"id":"<id>"}],"triples":[]},"update-attr":[{"count":1}]}},"indexing-jobs":{"group-id":"<group-id>","jobs":"unique posts.slug completed update-attr-done error=- unique_value=null sample=null data=null"}}"#]]
    .assert_eq(&response.to_string());
    let pull = schema_pull(&store.conn(), &app).unwrap();
    let slug = &pull.schema.blobs["posts"]["slug"];
    assert_eq!((slug.id.as_deref(), slug.unique), (Some(new_id), true));
    assert!(pull.schema.blobs["profiles"].contains_key("handle"));
    assert!(!pull.schema.blobs["profiles"].contains_key("name"));

    // The same `add-attr` again is a no-op; the same id with other properties is refused.
    let again = |unique: bool| -> Vec<PlanStep> {
        serde_json::from_value(json!([["add-attr", {"id": new_id, "forward-identity": [new_id, "posts", "slug"],
            "value-type": "blob", "cardinality": "one", "unique?": unique, "index?": false, "required?": false}]]))
        .unwrap()
    };
    let repeated = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest { steps: again(true) },
    )
    .unwrap();
    assert_eq!(
        repeated.transaction["results"]["add-attr"]["attrs"],
        json!([])
    );
    let error = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest {
            steps: again(false),
        },
    )
    .unwrap_err();
    assert_eq!(
        (error.status, error.error_type.as_str()),
        (400, "sql-raise")
    );
    // A name taken by the link's reverse end, and a system name.
    let clash = |etype: &str, label: &str| -> Vec<PlanStep> {
        let id = uuid::Uuid::new_v4().to_string();
        serde_json::from_value(
            json!([["add-attr", {"id": id, "forward-identity": [id, etype, label],
            "value-type": "blob", "cardinality": "one", "unique?": false, "index?": false}]]),
        )
        .unwrap()
    };
    let error = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest {
            steps: clash("profiles", "posts"),
        },
    )
    .unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"record-not-unique","message":"`posts` already exists on `profiles`","hint":{"record-type":"ident","etype":"profiles","label":"posts"}}"#
        ]],
    );
    let error = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest {
            steps: clash("$users", "email"),
        },
    )
    .unwrap_err();
    assert_eq!(
        error.message,
        "Validation failed for attributes: $users.email is a system column and it already exists."
    );
    let error = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest {
            steps: clash("$secrets", "x"),
        },
    )
    .unwrap_err();
    assert_eq!(error.message, "Validation failed for attributes: $ is reserved for system tables. You can't create $secrets");
    // Malformed steps are the server's spec error, never a panic.
    let bad: Vec<PlanStep> =
        serde_json::from_value(json!([["add-attr", {"id": "nope"}], ["delete-attr", "x"]]))
            .unwrap();
    let error =
        schema_steps_apply(&mut store.conn(), &app, &StepsApplyRequest { steps: bad }).unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"validation-failed","message":"Validation failed for tx-steps","hint":{"data-type":"tx-steps","input":[["add-attr",{"id":"nope"}],["delete-attr","x"]],"errors":[{"expected":"contains?","in":[0,1,"forward-identity"]}]}}"#
        ]],
    );
    let unknown_attr: Vec<PlanStep> = serde_json::from_value(json!([["index", {"attr-id": new_id.replace('1', "9"), "forward-identity": [null, "posts", "x"]}]])).unwrap();
    let error = schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest {
            steps: unknown_attr,
        },
    )
    .unwrap_err();
    assert_eq!(error.error_type, "record-foreign-key-invalid");
}

#[test]
fn duplicate_link_is_refused_with_the_servers_envelope() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let link = |reverse_label: &str| {
        json!({
        "forward": {"on": "posts", "has": "one", "label": "author"},
        "reverse": {"on": "profiles", "has": "many", "label": reverse_label}})
    };
    let entities = json!({"posts": {"attrs": {}}, "profiles": {"attrs": {}}});
    let first = json!({"entities": entities, "links": {"postAuthor": link("posts")}});
    schema_push(&mut store.conn(), &app, &push_request(first, true)).unwrap();
    let second = json!({"entities": entities, "links": {"postAuthor": link("posts"), "postWriter": link("written")}});
    let error = schema_plan(&store.conn(), &app, &push_request(second, true)).unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"validation-failed","message":"Validation failed for schema: posts->author: Duplicate entry found for attribute. Check your schema file for duplicate link definitions. If it's not in the schema file, it may have been generated by the backend. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer","hint":{"data-type":"schema","input":"plan","errors":[{"in":["schema"],"message":"posts->author: Duplicate entry found for attribute. Check your schema file for duplicate link definitions. If it's not in the schema file, it may have been generated by the backend. Check your full schema in the dashboard: https://www.instantdb.com/dash?s=main&t=explorer"}]}}"#
        ]],
    );
    // A link onto a system name collides even though pull hides nothing of it.
    let system = json!({"entities": {"posts": {"attrs": {}}},
        "links": {"x": {"forward": {"on": "posts", "has": "many", "label": "owners"},
                        "reverse": {"on": "$users", "has": "many", "label": "linkedGuestUsers"}}}});
    let error = schema_plan(&store.conn(), &app, &push_request(system, true)).unwrap_err();
    assert!(
        error
            .message
            .starts_with("Validation failed for schema: $users->linkedGuestUsers: Duplicate"),
        "{}",
        error.message
    );
    let error = schema_plan(
        &store.conn(),
        &app,
        &push_request(json!({"entities": []}), true),
    )
    .unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"validation-failed","message":"Validation failed for schema: entities: expected an object, found an array","hint":{"data-type":"schema","input":{"entities":[]},"errors":[{"in":["schema"],"message":"entities: expected an object, found an array"}]}}"#
        ]],
    );
}

#[test]
fn ephemeral_apps_get_their_schema_rules_and_token() {
    let store = Store::open_in_memory().unwrap();
    let rules = json!({"thread_threads": {"allow": {"view": "true"}}});
    let response = create_ephemeral_app(
        &store,
        &EphemeralAppRequest {
            title: "  rehearsal ".into(),
            schema: Some(thread_v1()),
            rules: Some(json!({"code": rules})),
        },
    )
    .unwrap();
    let created_at = store.apps().unwrap()[0].created_at;
    assert_eq!(response.expires_ms, created_at + 14 * 24 * 3600 * 1000);
    let mut shown = serde_json::to_value(&response).unwrap();
    redact(
        &mut shown,
        &["id", "admin-token", "created_at", "expires_ms"],
    );
    expect![[r#"{"app":{"id":"<id>","title":"rehearsal","creator_id":"e1e1e1e1-0000-4000-8000-000000000001","created_at":"<created_at>","org_id":null,"status":"active","admin-token":"<admin-token>"},"expires_ms":"<expires_ms>"}"#]]
    .assert_eq(&shown.to_string());
    assert_eq!(
        response.app.created_at.as_deref(),
        Some(crate::dates::iso_from_ms(created_at).as_str())
    );

    let app = store.authenticate_admin(&response.app.auth()).unwrap();
    assert!(app.ephemeral);
    let conn = store.conn();
    assert_eq!(perms_pull(&conn, &app).unwrap().perms, Some(rules));
    let pull = schema_pull(&conn, &app).unwrap();
    // No background updates: flags are set on the attributes directly.
    let channel = &pull.schema.blobs["thread_items"]["channel"];
    assert!(channel.index && channel.required);
    assert!(schema_plan(&conn, &app, &push_request(thread_v1(), true))
        .unwrap()
        .steps
        .is_empty());
    drop(conn);

    let error = create_ephemeral_app(
        &store,
        &EphemeralAppRequest {
            title: " ".into(),
            schema: None,
            rules: None,
        },
    )
    .unwrap_err();
    check_error(
        &error,
        expect![[
            r#"400 {"type":"param-malformed","message":"Malformed parameter: [\"body\" \"title\"]","hint":{"in":["body","title"],"original-input":" "}}"#
        ]],
    );
    // A schema the plan refuses creates no app.
    let refused = json!({"entities": {"posts": {"attrs": {}}},
        "links": {"x": {"forward": {"on": "posts", "has": "many", "label": "tags", "onDelete": "cascade"},
                        "reverse": {"on": "tags", "has": "many", "label": "posts"}}}});
    let error = create_ephemeral_app(
        &store,
        &EphemeralAppRequest {
            title: "x".into(),
            schema: Some(refused),
            rules: None,
        },
    )
    .unwrap_err();
    assert!(
        error.message.contains("Cascade delete is only possible"),
        "{}",
        error.message
    );
    assert_eq!(store.apps().unwrap().len(), 1);
}

#[test]
fn a_deleted_attribute_can_be_pushed_again() {
    let store = Store::open_in_memory().unwrap();
    let app = new_app(&store);
    let schema =
        json!({"entities": {"posts": {"attrs": {"slug": attr("string", false, false, false)}}}});
    schema_push(&mut store.conn(), &app, &push_request(schema.clone(), true)).unwrap();
    let derived = instant_schema::plan::new_attr_id("posts", "slug");
    let delete: Vec<PlanStep> = serde_json::from_value(json!([["delete-attr", derived]])).unwrap();
    schema_steps_apply(
        &mut store.conn(),
        &app,
        &StepsApplyRequest { steps: delete },
    )
    .unwrap();
    assert!(!schema_pull(&store.conn(), &app).unwrap().schema.blobs["posts"].contains_key("slug"));
    // The plan derives the same id again; the apply writes the attribute under a fresh one.
    let planned = schema_plan(&store.conn(), &app, &push_request(schema.clone(), true)).unwrap();
    assert_eq!(planned.steps[0].attr_id(), Some(derived.as_str()));
    let pushed = schema_push(&mut store.conn(), &app, &push_request(schema, true)).unwrap();
    let written = pushed.steps[0].attr_id().unwrap().to_string();
    assert_ne!(written, derived);
    let pull = schema_pull(&store.conn(), &app).unwrap();
    assert_eq!(
        pull.schema.blobs["posts"]["slug"].id.as_deref(),
        Some(written.as_str())
    );
}
