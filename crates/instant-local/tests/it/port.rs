//! The port suite: what a client observes through `InstantApi`, written once over
//! `&dyn InstantApi` so the same cases run against the in-process engine and, through the HTTP
//! adapter, against `threadmig serve`.
//!
//! Expected values come from the InstantDB server (routes, transaction, InstaQL and schema
//! code and its tests), never from the engine's own output. Every case creates its own
//! temporary app, so cases are independent and can share one server.

use std::collections::BTreeSet;
use std::time::Duration;

use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, SchemaPushRequest,
    TransactRequest, TransactResponse,
};
use instant_schema::{BuiltinSchema, ServerAttr};
use serde_json::{json, Value};

/// A case of the suite.
pub type Case = fn(&dyn InstantApi);

/// Declares the cases once: the list other adapters iterate, and one test per case against
/// the in-process engine.
macro_rules! port_cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name, for any adapter.
        #[allow(dead_code)]
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), $name)),*];

        mod local {
            $(
                #[test]
                fn $name() {
                    let engine = instant_local::engine::LocalEngine::in_memory()
                        .expect("an in-memory engine opens");
                    super::$name(&engine);
                }
            )*
        }
    };
}

port_cases!(
    ephemeral_app_is_created_with_a_token,
    ephemeral_app_needs_a_title,
    push_thread_v1_then_replan_is_empty,
    pull_shows_the_pushed_attrs,
    update_creates_then_replaces,
    update_without_upsert_and_create_over_existing_fail,
    link_and_unlink_in_both_directions,
    merge_deep_merges_and_null_removes_keys,
    delete_removes_the_entity_and_its_links,
    steps_run_grouped_by_action,
    lookups_in_every_form,
    lookup_errors,
    where_variants,
    order_limit_offset_and_fields,
    nested_queries_both_directions,
    unknown_names_give_empty_results,
    query_validation_errors,
    inference_makes_has_one_links_singular,
    bad_admin_token_is_refused,
    dash_routes_refuse_a_foreign_admin_token,
    order_by_a_non_indexed_attribute_is_refused,
    non_uuid_entity_id_is_refused,
    unique_violation_is_record_not_unique,
    checked_type_violation,
    required_attributes_are_checked_at_the_end,
    throw_on_missing_attrs_refuses_new_attributes,
    failed_transact_writes_nothing,
    flag_change_runs_an_indexing_job,
    perms_pull_returns_the_rules_code,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A canonical UUID whose order follows `n`, so the default order (`serverCreatedAt`, then id)
/// of entities created in one transaction is known in advance.
fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn thread_v1_dsl() -> Value {
    let loaded = BuiltinSchema::ThreadV1
        .load()
        .expect("the built-in thread V1 schema loads");
    serde_json::to_value(&*loaded.dsl()).expect("a schema serialises")
}

fn new_app(api: &dyn InstantApi) -> AppAuth {
    let created = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "port suite".into(),
            schema: None,
            rules: None,
        })
        .unwrap_or_else(|error| panic!("creating an ephemeral app failed: {error:?}"));
    created.app.auth()
}

fn push_request(schema: Value) -> SchemaPushRequest {
    // What `PlatformApi.planSchemaPush` / `schemaPush` send.
    SchemaPushRequest {
        schema,
        check_types: true,
        supports_background_updates: true,
    }
}

/// A fresh app with the thread V1 schema pushed.
fn thread_app(api: &dyn InstantApi) -> AppAuth {
    let auth = new_app(api);
    api.schema_push(&auth, &push_request(thread_v1_dsl()))
        .unwrap_or_else(|error| panic!("pushing thread V1 failed: {error:?}"));
    auth
}

fn transact(
    api: &dyn InstantApi,
    auth: &AppAuth,
    steps: Value,
) -> Result<TransactResponse, ApiError> {
    api.transact(
        auth,
        &TransactRequest {
            steps: steps.as_array().expect("steps are an array").clone(),
            throw_on_missing_attrs: false,
        },
    )
}

fn transact_ok(api: &dyn InstantApi, auth: &AppAuth, steps: Value) -> i64 {
    match transact(api, auth, steps.clone()) {
        Ok(response) => response.tx_id,
        Err(error) => panic!("transact {steps} failed: {error:?}"),
    }
}

fn transact_err(api: &dyn InstantApi, auth: &AppAuth, steps: Value) -> ApiError {
    match transact(api, auth, steps.clone()) {
        Ok(response) => panic!("transact {steps} succeeded ({response:?}), expected an error"),
        Err(error) => error,
    }
}

fn query_with(
    api: &dyn InstantApi,
    auth: &AppAuth,
    query: Value,
    inference: bool,
) -> Result<Value, ApiError> {
    api.query(auth, &QueryRequest { query, inference })
}

fn query(api: &dyn InstantApi, auth: &AppAuth, query: Value) -> Value {
    query_with(api, auth, query.clone(), false)
        .unwrap_or_else(|error| panic!("query {query} failed: {error:?}"))
}

fn query_err(api: &dyn InstantApi, auth: &AppAuth, query: Value) -> ApiError {
    match query_with(api, auth, query.clone(), false) {
        Ok(result) => panic!("query {query} returned {result}, expected an error"),
        Err(error) => error,
    }
}

/// The ids of `result[key]`, in order.
fn ids(result: &Value, key: &str) -> Vec<String> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not an array in {result}"))
        .iter()
        .map(|entity| {
            entity["id"]
                .as_str()
                .expect("an entity has an id")
                .to_string()
        })
        .collect()
}

/// Ids of the top-level `etype` result of `query`.
fn query_ids(api: &dyn InstantApi, auth: &AppAuth, etype: &str, options: Value) -> Vec<String> {
    let result = query(api, auth, json!({ etype: {"$": options} }));
    ids(&result, etype)
}

fn assert_error(error: &ApiError, status: u16, error_type: &str, message: &str) {
    assert_eq!(
        (
            error.status,
            error.error_type.as_str(),
            error.message.as_str()
        ),
        (status, error_type, message),
        "full error: {}",
        error.envelope()
    );
}

fn pulled_attr<'a>(attrs: &'a [ServerAttr], etype: &str, label: &str) -> &'a ServerAttr {
    attrs
        .iter()
        .find(|attr| attr.forward_identity.etype == etype && attr.forward_identity.label == label)
        .unwrap_or_else(|| panic!("no pulled attribute {etype}.{label}"))
}

fn thread(n: u64, extra: Value) -> Value {
    let mut attrs = json!({"createdAt": 1_700_000_000_000u64 + n});
    if let (Some(attrs), Some(extra)) = (attrs.as_object_mut(), extra.as_object()) {
        attrs.extend(extra.clone());
    }
    json!(["update", "thread_threads", uid(n), attrs])
}

// ---------------------------------------------------------------------------------------------
// Apps and schema

fn ephemeral_app_is_created_with_a_token(api: &dyn InstantApi) {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let created = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "temporary".into(),
            schema: None,
            rules: None,
        })
        .expect("app created");
    assert_eq!(created.app.title, "temporary");
    assert!(
        uuid::Uuid::parse_str(&created.app.id).is_ok(),
        "{}",
        created.app.id
    );
    assert!(uuid::Uuid::parse_str(&created.app.admin_token).is_ok());
    // `created_at` plus 14 days.
    let fourteen_days = 14 * 24 * 60 * 60 * 1000;
    assert!(
        (created.expires_ms - (before + fourteen_days)).abs() < 60_000,
        "expires_ms {} is not 14 days after creation",
        created.expires_ms
    );
    // Every app answers queries at once; an unknown namespace is an empty list.
    assert_eq!(
        query(api, &created.app.auth(), json!({"thread_threads": {}})),
        json!({"thread_threads": []})
    );
}

fn ephemeral_app_needs_a_title(api: &dyn InstantApi) {
    // `ephemeral_app.clj`: `get-param! [:body :title] coerce-non-blank-str`.
    let error = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "  ".into(),
            schema: None,
            rules: None,
        })
        .expect_err("a blank title is refused");
    assert_error(
        &error,
        400,
        "param-malformed",
        "Malformed parameter: [\"body\" \"title\"]",
    );
}

/// The add-attr steps the server plans for thread V1 on a fresh app: an `id` per new user
/// namespace, one per data attribute, one per link (`model/schema.clj` `schemas->ops`).
fn expected_thread_v1_additions(dsl: &Value) -> usize {
    let entities = dsl["entities"].as_object().unwrap();
    let user_entities = entities.iter().filter(|(name, _)| !name.starts_with('$'));
    let ids_and_blobs: usize = user_entities
        .map(|(_, entity)| 1 + entity["attrs"].as_object().unwrap().len())
        .sum();
    ids_and_blobs + dsl["links"].as_object().unwrap().len()
}

fn push_thread_v1_then_replan_is_empty(api: &dyn InstantApi) {
    let auth = new_app(api);
    let dsl = thread_v1_dsl();
    let plan = api
        .schema_plan(&auth, &push_request(dsl.clone()))
        .expect("plan");
    let step_types: Vec<&str> = plan.steps.iter().map(|step| step.step_type()).collect();
    assert_eq!(
        step_types.len(),
        expected_thread_v1_additions(&dsl),
        "{step_types:?}"
    );
    assert!(
        step_types.iter().all(|step| *step == "add-attr"),
        "{step_types:?}"
    );
    let key = &plan.new_schema.blobs["thread_threads"]["key"];
    assert!(key.unique && key.index && !key.required, "{key:?}");
    assert_eq!(key.checked_data_type.as_deref(), Some("string"));
    assert!(
        plan.current_schema.blobs.get("thread_threads").is_none(),
        "a fresh app has no thread namespaces"
    );

    let applied = api
        .schema_push(&auth, &push_request(dsl.clone()))
        .expect("push");
    assert_eq!(applied.steps.len(), step_types.len());
    // New attributes carry their flags directly: no job.
    assert!(
        applied.indexing_jobs.is_none(),
        "{:?}",
        applied.indexing_jobs
    );

    let replan = api
        .schema_plan(&auth, &push_request(dsl.clone()))
        .expect("re-plan");
    assert_eq!(replan.steps, vec![], "re-planning the same schema");
    assert!(replan.current_schema.blobs.contains_key("thread_steps"));
    let again = api.schema_push(&auth, &push_request(dsl)).expect("re-push");
    assert_eq!(again.steps, vec![]);
    assert_eq!(again.transaction, json!({}));
}

fn pull_shows_the_pushed_attrs(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let dsl = thread_v1_dsl();
    let pulled = api.schema_pull(&auth).expect("pull");
    assert_eq!(pulled.app_title.as_deref(), Some("port suite"));
    for (etype, entity) in dsl["entities"].as_object().unwrap() {
        if etype.starts_with('$') {
            continue;
        }
        let blobs = &pulled.schema.blobs[etype.as_str()];
        let id = &blobs["id"];
        assert!(id.unique && !id.index, "{etype}.id: {id:?}");
        for (label, attr) in entity["attrs"].as_object().unwrap() {
            let got = blobs
                .get(label.as_str())
                .unwrap_or_else(|| panic!("pull lacks {etype}.{label}"));
            let checked = match attr["valueType"].as_str().unwrap() {
                typed @ ("string" | "number" | "boolean" | "date") => Some(typed),
                _ => None,
            };
            assert_eq!(
                (
                    got.unique,
                    got.index,
                    got.required,
                    got.checked_data_type.as_deref(),
                    got.cardinality.as_str(),
                    got.is_ref(),
                ),
                (
                    attr["config"]["unique"].as_bool().unwrap(),
                    attr["config"]["indexed"].as_bool().unwrap(),
                    attr["required"].as_bool().unwrap(),
                    checked,
                    "one",
                    false,
                ),
                "{etype}.{label}"
            );
            assert!(got.id.is_some(), "{etype}.{label} has an id");
            // The full list carries the same attribute.
            assert_eq!(pulled_attr(&pulled.attrs, etype, label).id, got.id);
        }
    }
    for (name, link) in dsl["links"].as_object().unwrap() {
        let (forward, reverse) = (&link["forward"], &link["reverse"]);
        let found = pulled
            .schema
            .refs
            .values()
            .find(|attr| {
                attr.forward_identity.etype == forward["on"]
                    && attr.forward_identity.label == forward["label"]
            })
            .unwrap_or_else(|| panic!("pull lacks link {name}"));
        let reverse_identity = found
            .reverse_identity
            .as_ref()
            .expect("a ref has a reverse");
        assert_eq!(
            (
                reverse_identity.etype.as_str(),
                reverse_identity.label.as_str(),
                found.cardinality.as_str(),
                found.unique,
                found.index,
                found.is_ref(),
            ),
            (
                reverse["on"].as_str().unwrap(),
                reverse["label"].as_str().unwrap(),
                forward["has"].as_str().unwrap(),
                reverse["has"] == "one",
                false,
                true,
            ),
            "link {name}"
        );
    }
    // System attributes are part of every app and of the full list.
    let users_id = pulled_attr(&pulled.attrs, "$users", "id");
    assert_eq!(users_id.catalog.as_deref(), Some("system"));
    assert_eq!(
        pulled_attr(&pulled.attrs, "thread_threads", "key")
            .catalog
            .as_deref(),
        Some("user")
    );
}

// ---------------------------------------------------------------------------------------------
// Transact

fn update_creates_then_replaces(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let first = transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", uid(1), {"createdAt": 1_700_000_000_000u64, "name": "first"}]]),
    );
    // Indexed attributes the transaction did not set get a null triple on creation
    // (`triple.clj` `indexed-null-triples`); non-indexed ones stay absent.
    let expected = json!({"thread_threads": [{
        "id": uid(1), "createdAt": 1_700_000_000_000u64, "name": "first", "key": null, "status": null
    }]});
    assert_eq!(query(api, &auth, json!({"thread_threads": {}})), expected);

    let second = transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", uid(1), {"name": "renamed", "status": "open", "id": uid(99)}]]),
    );
    assert!(second > first, "tx ids grow: {first} then {second}");
    // The value replaces the old one; an `id` key in the attributes is ignored.
    let expected = json!({"thread_threads": [{
        "id": uid(1), "createdAt": 1_700_000_000_000u64, "name": "renamed", "key": null, "status": "open"
    }]});
    assert_eq!(query(api, &auth, json!({"thread_threads": {}})), expected);

    // `{"upsert": false}` on an existing entity updates it.
    transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", uid(1), {"name": "strict"}, {"upsert": false}]]),
    );
    let result = query(api, &auth, json!({"thread_threads": {}}));
    assert_eq!(result["thread_threads"][0]["name"], "strict");

    // `create` of a new entity.
    transact_ok(
        api,
        &auth,
        json!([["create", "thread_threads", uid(2), {"createdAt": 5, "name": "made"}]]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(1), uid(2)]
    );
}

fn update_without_upsert_and_create_over_existing_fail(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(api, &auth, json!([thread(1, json!({}))]));
    let missing = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", uid(2), {"name": "x"}, {"upsert": false}]]),
    );
    // `validate-mode` lists the eid of every offending triple (`id` first, then one per
    // attribute) without deduplicating.
    assert_error(
        &missing,
        400,
        "validation-failed",
        &format!(
            "Validation failed for tx-step: Updating entities that don't exist: {0}, {0}",
            uid(2)
        ),
    );
    assert_eq!(missing.hint["data-type"], "tx-step");

    let existing = transact_err(
        api,
        &auth,
        json!([["create", "thread_threads", uid(1), {"createdAt": 1}]]),
    );
    assert_error(
        &existing,
        400,
        "validation-failed",
        &format!(
            "Validation failed for tx-step: Creating entities that exist: {0}, {0}",
            uid(1)
        ),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(1)]
    );
}

fn link_and_unlink_in_both_directions(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([
            thread(1, json!({})),
            thread(2, json!({})),
            ["update", "thread_contexts", uid(11), {"createdAt": 1}],
            ["update", "thread_contexts", uid(12), {"createdAt": 2}],
            // Through the reverse label, several targets at once.
            ["link", "thread_threads", uid(1), {"contexts": [uid(11), uid(12)]}],
        ]),
    );
    let result = query(api, &auth, json!({"thread_threads": {"contexts": {}}}));
    assert_eq!(
        ids(&result["thread_threads"][0], "contexts"),
        vec![uid(11), uid(12)]
    );
    assert_eq!(result["thread_threads"][1]["contexts"], json!([]));
    let result = query(api, &auth, json!({"thread_contexts": {"thread": {}}}));
    for context in result["thread_contexts"].as_array().unwrap() {
        assert_eq!(ids(context, "thread"), vec![uid(1)], "{context}");
    }

    // Forward has-one: linking again replaces the target.
    transact_ok(
        api,
        &auth,
        json!([["link", "thread_contexts", uid(12), {"thread": uid(2)}]]),
    );
    let result = query(api, &auth, json!({"thread_threads": {"contexts": {}}}));
    assert_eq!(ids(&result["thread_threads"][0], "contexts"), vec![uid(11)]);
    assert_eq!(ids(&result["thread_threads"][1], "contexts"), vec![uid(12)]);

    // Unlink from the forward side.
    transact_ok(
        api,
        &auth,
        json!([["unlink", "thread_contexts", uid(11), {"thread": uid(1)}]]),
    );
    let result = query(api, &auth, json!({"thread_contexts": {"thread": {}}}));
    assert_eq!(result["thread_contexts"][0]["thread"], json!([]));
    assert_eq!(ids(&result["thread_contexts"][1], "thread"), vec![uid(2)]);
    // Unlink from the reverse side.
    transact_ok(
        api,
        &auth,
        json!([["unlink", "thread_threads", uid(2), {"contexts": uid(12)}]]),
    );
    let result = query(api, &auth, json!({"thread_threads": {"contexts": {}}}));
    assert_eq!(result["thread_threads"][1]["contexts"], json!([]));
}

fn merge_deep_merges_and_null_removes_keys(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([["update", "thread_contexts", uid(1), {
            "createdAt": 1,
            "content": {"a": {"b": 1, "c": 2}, "d": [1, 2], "keep": "yes"}
        }]]),
    );
    transact_ok(
        api,
        &auth,
        json!([["merge", "thread_contexts", uid(1), {
            "content": {"a": {"c": null, "e": 3}, "d": [3], "f": true}
        }]]),
    );
    let result = query(
        api,
        &auth,
        json!({"thread_contexts": {"$": {"fields": ["content"]}}}),
    );
    assert_eq!(
        result,
        json!({"thread_contexts": [{
            "id": uid(1),
            "content": {"a": {"b": 1, "e": 3}, "d": [3], "keep": "yes", "f": true}
        }]})
    );
    // When either side is not an object the patch replaces the value.
    transact_ok(
        api,
        &auth,
        json!([["merge", "thread_contexts", uid(1), {"content": "flat"}]]),
    );
    let result = query(
        api,
        &auth,
        json!({"thread_contexts": {"$": {"fields": ["content"]}}}),
    );
    assert_eq!(result["thread_contexts"][0]["content"], "flat");
    // A merge of a new entity creates it.
    transact_ok(
        api,
        &auth,
        json!([["merge", "thread_contexts", uid(2), {"createdAt": 2, "content": {"x": 1}}]]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_contexts", json!({})),
        vec![uid(1), uid(2)]
    );
}

fn delete_removes_the_entity_and_its_links(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([
            thread(1, json!({})),
            ["update", "thread_contexts", uid(11), {"createdAt": 1}],
            ["link", "thread_contexts", uid(11), {"thread": uid(1)}],
        ]),
    );
    // The SDK sends a fourth element `null`.
    transact_ok(
        api,
        &auth,
        json!([["delete", "thread_threads", uid(1), null]]),
    );
    assert_eq!(
        query(api, &auth, json!({"thread_threads": {}})),
        json!({"thread_threads": []})
    );
    let result = query(api, &auth, json!({"thread_contexts": {"thread": {}}}));
    assert_eq!(ids(&result, "thread_contexts"), vec![uid(11)]);
    assert_eq!(result["thread_contexts"][0]["thread"], json!([]));
    // No link points at a deleted entity, even when it comes back.
    transact_ok(api, &auth, json!([thread(1, json!({}))]));
    let result = query(api, &auth, json!({"thread_threads": {"contexts": {}}}));
    assert_eq!(result["thread_threads"][0]["contexts"], json!([]));
    // Deleting what does not exist is not an error.
    transact_ok(api, &auth, json!([["delete", "thread_threads", uid(42)]]));
}

fn steps_run_grouped_by_action(api: &dyn InstantApi) {
    // `transaction.clj` groups steps by op in order of first appearance.
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([thread(1, json!({})), ["delete", "thread_threads", uid(1)]]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        Vec::<String>::new()
    );
    transact_ok(
        api,
        &auth,
        json!([["delete", "thread_threads", uid(2)], thread(2, json!({}))]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(2)]
    );
    // [update A, delete B, update B]: both updates run before the delete group.
    transact_ok(
        api,
        &auth,
        json!([
            thread(3, json!({})),
            ["delete", "thread_threads", uid(4)],
            thread(4, json!({}))
        ]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(2), uid(3)]
    );
}

fn lookups_in_every_form(api: &dyn InstantApi) {
    let auth = thread_app(api);
    // A pair lookup that matches nothing creates the entity with the lookup value.
    transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", ["key", "k1"], {"createdAt": 1, "name": "by pair"}]]),
    );
    let result = query(
        api,
        &auth,
        json!({"thread_threads": {"$": {"where": {"key": "k1"}}}}),
    );
    let id = result["thread_threads"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(result["thread_threads"][0]["name"], "by pair");
    // The single-key object form finds the same entity.
    transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", {"key": "k1"}, {"name": "by object"}]]),
    );
    // The encoded string form as a link target.
    transact_ok(
        api,
        &auth,
        json!([
            ["update", "thread_contexts", uid(11), {"createdAt": 2}],
            ["link", "thread_contexts", uid(11), {"thread": "lookup__key__\"k1\""}],
        ]),
    );
    let result = query(api, &auth, json!({"thread_threads": {"contexts": {}}}));
    assert_eq!(ids(&result, "thread_threads"), vec![id.clone()]);
    assert_eq!(result["thread_threads"][0]["name"], "by object");
    assert_eq!(ids(&result["thread_threads"][0], "contexts"), vec![uid(11)]);
    // Updating the lookup attribute itself through an existing entity.
    transact_ok(
        api,
        &auth,
        json!([["update", "thread_threads", ["key", "k1"], {"key": "k2"}]]),
    );
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_threads",
            json!({"where": {"key": "k2"}})
        ),
        vec![id.clone()]
    );
    // Deleting through a lookup; a lookup that matches nothing is a no-op.
    transact_ok(
        api,
        &auth,
        json!([
            ["delete", "thread_threads", ["key", "nothing"]],
            ["delete", "thread_threads", ["key", "k2"]],
        ]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        Vec::<String>::new()
    );
}

fn lookup_errors(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let not_unique = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", ["name", "x"], {"createdAt": 1}]]),
    );
    assert_error(
        &not_unique,
        400,
        "validation-failed",
        "Validation failed for lookup: name is not a unique attribute on thread_threads",
    );
    let dotted = transact_err(
        api,
        &auth,
        json!([["update", "thread_contexts", ["thread.key", "k"], {"createdAt": 1}]]),
    );
    assert_error(
        &dotted,
        400,
        "validation-failed",
        "Validation failed for lookup: thread.key is not a valid lookup attribute.",
    );
    let bad_json = transact_err(
        api,
        &auth,
        json!([["link", "thread_contexts", uid(1), {"thread": "lookup__key__undefined"}]]),
    );
    assert_error(
        &bad_json,
        400,
        "validation-failed",
        "Validation failed for lookup: lookup value is invalid",
    );
    assert_eq!(
        bad_json.hint["errors"][0]["hint"],
        json!({"attribute": "key", "value": "undefined"})
    );
    let first_time = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", ["key", "new"], {"key": "newer"}]]),
    );
    assert_eq!(
        first_time.hint["errors"][0]["message"],
        "Updates with lookups can only update the lookup attribute if an entity with the unique attribute value already exists.",
        "{}",
        first_time.envelope()
    );
    assert_eq!(first_time.error_type, "validation-failed");
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Thread 1 with executions 10 (completed) and 11 (executing); steps 20..24 with iterations
/// 0..4, the first three under execution 10. One transaction, so the default order is by id.
fn seed_steps(api: &dyn InstantApi, auth: &AppAuth) {
    let statuses = [
        Some("completed"),
        Some("completed"),
        Some("failed"),
        Some("running"),
        None,
    ];
    let mut steps = vec![
        thread(1, json!({"key": "t-1"})),
        json!(["update", "thread_executions", uid(10), {"createdAt": 1, "status": "completed"}]),
        json!(["update", "thread_executions", uid(11), {"createdAt": 2, "status": "executing"}]),
        json!(["link", "thread_threads", uid(1), {"executions": [uid(10), uid(11)]}]),
    ];
    for (i, status) in statuses.iter().enumerate() {
        let mut attrs = json!({
            "createdAt": 1_700_000_000_000u64 + i as u64,
            "iteration": i,
            "executionId": if i < 3 { "e1" } else { "e2" },
            "eventId": format!("ev-{i}"),
        });
        if let Some(status) = status {
            attrs["status"] = json!(status);
        }
        if i == 2 {
            attrs["errorText"] = json!("boom");
        }
        let step = uid(20 + i as u64);
        steps.push(json!(["update", "thread_steps", step.clone(), attrs]));
        let execution = if i < 3 { uid(10) } else { uid(11) };
        steps.push(json!(["link", "thread_steps", step, {"execution": execution}]));
    }
    transact_ok(api, auth, Value::Array(steps));
}

fn steps_ids(indexes: &[u64]) -> Vec<String> {
    indexes.iter().map(|i| uid(20 + i)).collect()
}

fn where_variants(api: &dyn InstantApi) {
    let auth = thread_app(api);
    seed_steps(api, &auth);
    let where_ids = |clause: Value| query_ids(api, &auth, "thread_steps", json!({"where": clause}));

    assert_eq!(
        where_ids(json!({"status": "completed"})),
        steps_ids(&[0, 1])
    );
    assert_eq!(where_ids(json!({"iteration": 3})), steps_ids(&[3]));
    assert_eq!(where_ids(json!({"id": uid(22)})), steps_ids(&[2]));
    assert_eq!(
        where_ids(json!({"status": "completed", "iteration": 1})),
        steps_ids(&[1])
    );
    assert_eq!(
        where_ids(json!({"status": {"$in": ["failed", "running"]}})),
        steps_ids(&[2, 3])
    );
    assert_eq!(where_ids(json!({"status": {"$in": []}})), steps_ids(&[]));
    // `$not` / `$ne` also match a missing value.
    assert_eq!(
        where_ids(json!({"status": {"$not": "completed"}})),
        steps_ids(&[2, 3, 4])
    );
    assert_eq!(
        where_ids(json!({"status": {"$ne": "completed"}})),
        steps_ids(&[2, 3, 4])
    );
    assert_eq!(
        where_ids(json!({"status": {"$isNull": true}})),
        steps_ids(&[4])
    );
    assert_eq!(
        where_ids(json!({"errorText": {"$isNull": true}})),
        steps_ids(&[0, 1, 3, 4])
    );
    assert_eq!(
        where_ids(json!({"errorText": {"$isNull": false}})),
        steps_ids(&[2])
    );
    assert_eq!(
        where_ids(json!({"iteration": {"$gt": 2}})),
        steps_ids(&[3, 4])
    );
    assert_eq!(
        where_ids(json!({"iteration": {"$gte": 2}})),
        steps_ids(&[2, 3, 4])
    );
    assert_eq!(where_ids(json!({"iteration": {"$lt": 1}})), steps_ids(&[0]));
    assert_eq!(
        where_ids(json!({"iteration": {"$lte": 1}})),
        steps_ids(&[0, 1])
    );
    assert_eq!(
        where_ids(json!({"createdAt": {"$gte": 1_700_000_000_003u64}})),
        steps_ids(&[3, 4])
    );
    assert_eq!(
        where_ids(json!({"eventId": {"$like": "ev-%"}, "iteration": {"$lt": 2}})),
        steps_ids(&[0, 1])
    );
    assert_eq!(
        where_ids(json!({"eventId": {"$like": "EV-3"}})),
        steps_ids(&[])
    );
    assert_eq!(
        where_ids(json!({"eventId": {"$ilike": "EV-3"}})),
        steps_ids(&[3])
    );
    assert_eq!(
        where_ids(json!({"or": [{"status": "failed"}, {"iteration": 4}]})),
        steps_ids(&[2, 4])
    );
    assert_eq!(
        where_ids(json!({"and": [{"executionId": "e1"}, {"iteration": {"$gte": 1}}]})),
        steps_ids(&[1, 2])
    );
    assert_eq!(
        where_ids(
            json!({"or": [{"and": [{"executionId": "e2"}, {"iteration": 3}]}, {"iteration": 0}]})
        ),
        steps_ids(&[0, 3])
    );
    // Through links: a link label matches the linked id, dotted paths walk links.
    assert_eq!(
        where_ids(json!({"execution": uid(10)})),
        steps_ids(&[0, 1, 2])
    );
    assert_eq!(
        where_ids(json!({"execution.id": uid(11)})),
        steps_ids(&[3, 4])
    );
    assert_eq!(
        where_ids(json!({"execution.status": "executing"})),
        steps_ids(&[3, 4])
    );
    assert_eq!(
        where_ids(json!({"execution.thread.key": "t-1"})),
        steps_ids(&[0, 1, 2, 3, 4])
    );
    // Reverse direction: executions that have a failed step.
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_executions",
            json!({"where": {"steps.status": "failed"}})
        ),
        vec![uid(10)]
    );
    // A link with nothing on the other end.
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_executions",
            json!({"where": {"steps": {"$isNull": true}}})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_executions",
            json!({"where": {"trigger": {"$isNull": true}}})
        ),
        vec![uid(10), uid(11)]
    );
}

fn order_limit_offset_and_fields(api: &dyn InstantApi) {
    let auth = thread_app(api);
    seed_steps(api, &auth);
    let ordered = |options: Value| query_ids(api, &auth, "thread_steps", options);
    assert_eq!(ordered(json!({})), steps_ids(&[0, 1, 2, 3, 4]));
    assert_eq!(
        ordered(json!({"order": {"iteration": "desc"}})),
        steps_ids(&[4, 3, 2, 1, 0])
    );
    assert_eq!(
        ordered(json!({"order": {"iteration": "desc"}, "limit": 2, "offset": 1})),
        steps_ids(&[3, 2])
    );
    assert_eq!(
        ordered(json!({"order": {"createdAt": "asc"}, "first": 2})),
        steps_ids(&[0, 1])
    );
    assert_eq!(ordered(json!({"limit": 2})), steps_ids(&[0, 1]));
    assert_eq!(ordered(json!({"offset": 3})), steps_ids(&[3, 4]));
    assert_eq!(
        ordered(json!({"order": {"serverCreatedAt": "desc"}})),
        steps_ids(&[4, 3, 2, 1, 0])
    );
    // Missing values sort first ascending (`sort-entries`).
    assert_eq!(
        ordered(json!({"order": {"status": "asc"}, "where": {"iteration": {"$gte": 2}}})),
        steps_ids(&[4, 2, 3])
    );
    // `fields` keeps the named attributes plus `id`.
    let result = query(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"iteration": 2}, "fields": ["status", "errorText"]}}}),
    );
    assert_eq!(
        result,
        json!({"thread_steps": [{"id": uid(22), "status": "failed", "errorText": "boom"}]})
    );
}

fn nested_queries_both_directions(api: &dyn InstantApi) {
    let auth = thread_app(api);
    seed_steps(api, &auth);
    // Forward, two levels.
    let result = query(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"iteration": 0}}, "execution": {"thread": {}}}}),
    );
    let step = &result["thread_steps"][0];
    assert_eq!(step["id"], uid(20));
    assert_eq!(ids(step, "execution"), vec![uid(10)]);
    assert_eq!(ids(&step["execution"][0], "thread"), vec![uid(1)]);
    assert_eq!(step["execution"][0]["thread"][0]["key"], "t-1");
    assert_eq!(step["execution"][0]["status"], "completed");

    // Reverse, two levels, with child options applied in memory.
    let result = query(
        api,
        &auth,
        json!({"thread_threads": {
            "executions": {"steps": {"$": {"order": {"iteration": "desc"}}}}
        }}),
    );
    let executions = &result["thread_threads"][0];
    assert_eq!(ids(executions, "executions"), vec![uid(10), uid(11)]);
    assert_eq!(
        ids(&executions["executions"][0], "steps"),
        steps_ids(&[2, 1, 0])
    );
    assert_eq!(
        ids(&executions["executions"][1], "steps"),
        steps_ids(&[4, 3])
    );
    // Child `order` is not validated: a non-indexed attribute works.
    let result = query(
        api,
        &auth,
        json!({"thread_executions": {
            "$": {"where": {"id": uid(10)}},
            "steps": {"$": {"order": {"errorText": "desc"}, "where": {"iteration": {"$lte": 1}}}}
        }}),
    );
    assert_eq!(
        ids(&result["thread_executions"][0], "steps"),
        steps_ids(&[1, 0])
    );
    let result = query(
        api,
        &auth,
        json!({"thread_threads": {"executions": {"$": {"where": {"status": "completed"}}}}}),
    );
    assert_eq!(
        ids(&result["thread_threads"][0], "executions"),
        vec![uid(10)]
    );
    // Several top-level keys in one query.
    let result = query(
        api,
        &auth,
        json!({"thread_threads": {}, "thread_executions": {}}),
    );
    assert_eq!(ids(&result, "thread_threads"), vec![uid(1)]);
    assert_eq!(ids(&result, "thread_executions"), vec![uid(10), uid(11)]);
}

fn unknown_names_give_empty_results(api: &dyn InstantApi) {
    let auth = thread_app(api);
    seed_steps(api, &auth);
    assert_eq!(
        query(api, &auth, json!({"nothing_here": {}})),
        json!({"nothing_here": []})
    );
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_steps",
            json!({"where": {"noSuchAttr": 1}})
        ),
        Vec::<String>::new()
    );
    let result = query(api, &auth, json!({"thread_threads": {"noSuchLink": {}}}));
    assert_eq!(ids(&result, "thread_threads"), vec![uid(1)]);
    assert_eq!(result["thread_threads"][0]["noSuchLink"], json!([]));
}

fn query_validation_errors(api: &dyn InstantApi) {
    let auth = thread_app(api);
    seed_steps(api, &auth);
    let not_a_map = query_err(api, &auth, json!({"thread_threads": {"executions": []}}));
    assert_error(
        &not_a_map,
        400,
        "validation-failed",
        "Validation failed for query",
    );
    assert_eq!(
        not_a_map.hint["errors"][0],
        json!({"expected": "map?", "in": ["thread_threads", "executions"]})
    );
    let limit = query_err(api, &auth, json!({"thread_steps": {"$": {"limit": -1}}}));
    assert_error(
        &limit,
        400,
        "validation-failed",
        "Validation failed for query: The limit field must be a positive integer. Got -1.",
    );
    let unindexed = query_err(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"errorText": {"$like": "b%"}}}}}),
    );
    assert_error(
        &unindexed,
        400,
        "validation-failed",
        "Validation failed for query: The `thread_steps.errorText` attribute must be indexed to use comparison operators.",
    );
    let like_number = query_err(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"eventId": {"$like": 10}}}}}),
    );
    assert_error(
        &like_number,
        400,
        "validation-failed",
        "Validation failed for query: The $like value for `thread_steps.eventId` must be a string, but the query got the value `10` of type `number`.",
    );
    let empty_or = query_err(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"or": []}}}}),
    );
    assert_error(
        &empty_or,
        400,
        "validation-failed",
        "Validation failed for query: The list of `or` conditions can't be empty.",
    );
    let not_a_link = query_err(
        api,
        &auth,
        json!({"thread_steps": {"$": {"where": {"status.x": "a"}}}}),
    );
    assert_error(
        &not_a_link,
        400,
        "validation-failed",
        "Validation failed for attr: thread_steps.status needs to be a link",
    );
}

fn inference_makes_has_one_links_singular(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([
            thread(1, json!({})),
            ["update", "thread_contexts", uid(11), {"createdAt": 1}],
            ["update", "thread_contexts", uid(12), {"createdAt": 2}],
            ["update", "thread_executions", uid(21), {"createdAt": 3}],
            ["link", "thread_contexts", uid(11), {"thread": uid(1), "currentExecution": uid(21)}],
        ]),
    );
    let q = json!({"thread_contexts": {"thread": {}, "currentExecution": {}}});
    let plain = query(api, &auth, q.clone());
    assert_eq!(ids(&plain["thread_contexts"][0], "thread"), vec![uid(1)]);
    assert_eq!(plain["thread_contexts"][1]["thread"], json!([]));

    let inferred = query_with(api, &auth, q, true).expect("query with inference");
    let (linked, unlinked) = (
        &inferred["thread_contexts"][0],
        &inferred["thread_contexts"][1],
    );
    assert_eq!(linked["thread"]["id"], uid(1));
    assert_eq!(linked["currentExecution"]["id"], uid(21));
    assert_eq!(unlinked["thread"], Value::Null);
    assert_eq!(unlinked["currentExecution"], Value::Null);
    // A reverse label on a unique link (has one both ways) is singular; a reverse has-many
    // stays a list.
    let inferred = query_with(
        api,
        &auth,
        json!({"thread_executions": {"currentOf": {}}, "thread_threads": {"contexts": {}}}),
        true,
    )
    .expect("query with inference");
    assert_eq!(inferred["thread_executions"][0]["currentOf"]["id"], uid(11));
    assert_eq!(
        ids(&inferred["thread_threads"][0], "contexts"),
        vec![uid(11)]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

fn bad_admin_token_is_refused(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let wrong = AppAuth::new(&auth.app_id, uuid::Uuid::new_v4().to_string());
    let error = query_with(api, &wrong, json!({"thread_threads": {}}), false).unwrap_err();
    assert_error(
        &error,
        400,
        "record-not-found",
        "Record not found: app-admin-token",
    );
    assert_eq!(error.hint["record-type"], "app-admin-token");
    let error = api
        .transact(
            &wrong,
            &TransactRequest {
                steps: vec![thread(1, json!({}))],
                throw_on_missing_attrs: false,
            },
        )
        .unwrap_err();
    assert_error(
        &error,
        400,
        "record-not-found",
        "Record not found: app-admin-token",
    );
    // Another app's own token is just as wrong.
    let other = new_app(api);
    let crossed = AppAuth::new(&auth.app_id, other.admin_token.expose());
    let error = query_with(api, &crossed, json!({"thread_threads": {}}), false).unwrap_err();
    assert_error(
        &error,
        400,
        "record-not-found",
        "Record not found: app-admin-token",
    );
    // A token that is not a UUID is a malformed header.
    let malformed = AppAuth::new(&auth.app_id, "not-a-token");
    let error = query_with(api, &malformed, json!({"thread_threads": {}}), false).unwrap_err();
    assert_error(
        &error,
        400,
        "param-malformed",
        "Malformed parameter: [\"headers\" \"authorization\"]",
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        Vec::<String>::new()
    );
}

fn dash_routes_refuse_a_foreign_admin_token(api: &dyn InstantApi) {
    let mine = new_app(api);
    let other = new_app(api);
    let crossed = AppAuth::new(&mine.app_id, other.admin_token.expose());
    let message = format!(
        "This admin token does not belong to app {}. Admin tokens are bound to a single app. Use a personal access token to manage other apps.",
        mine.app_id
    );
    let check = |error: ApiError| {
        assert_error(&error, 400, "validation-failed", &message);
        assert_eq!(error.hint["reason"], "admin-token-mismatch");
    };
    check(api.schema_pull(&crossed).unwrap_err());
    check(
        api.schema_plan(&crossed, &push_request(thread_v1_dsl()))
            .unwrap_err(),
    );
    check(
        api.schema_push(&crossed, &push_request(thread_v1_dsl()))
            .unwrap_err(),
    );
    check(api.perms_pull(&crossed).unwrap_err());
    // Nothing was pushed into either app.
    let pulled = api.schema_pull(&mine).expect("pull with the right token");
    assert!(!pulled.schema.blobs.contains_key("thread_threads"));
}

fn order_by_a_non_indexed_attribute_is_refused(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let error = query_err(
        api,
        &auth,
        json!({"thread_threads": {"$": {"order": {"name": "asc"}}}}),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for query: The `thread_threads.name` attribute is not indexed. Only indexed and typed attributes can be used to order by.",
    );
    assert_eq!(
        error.hint["errors"][0]["expected"],
        "supported-order?",
        "{}",
        error.envelope()
    );
    assert_eq!(
        error.hint["errors"][0]["in"],
        json!(["thread_threads", "$", "order"])
    );
    // Neither indexed nor typed: both messages, joined.
    let error = query_err(
        api,
        &auth,
        json!({"thread_contexts": {"$": {"order": {"content": "desc"}, "limit": 5}}}),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for query: The `thread_contexts.content` attribute is not indexed. Only indexed and typed attributes can be used to order by., The `thread_contexts.content` attribute is not typed. Only typed and indexed attributes can be used to order by.",
    );
    let error = query_err(
        api,
        &auth,
        json!({"thread_threads": {"$": {"order": {"nope": "asc"}}}}),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for query: There is no `nope` attribute for thread_threads.",
    );
}

fn non_uuid_entity_id_is_refused(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let error = transact_err(
        api,
        &auth,
        json!([thread(1, json!({})), ["link", "thread_contexts", "bad-id", {"thread": uid(1)}]]),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for steps: Invalid entity ID 'bad-id'. Entity IDs must be UUIDs or lookup references.",
    );
    assert_eq!(error.hint["errors"][0]["in"], json!([1, 2]));
    let error = transact_err(api, &auth, json!([["delete", "thread_threads", 12345]]));
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for steps: Invalid entity ID '12345'. Entity IDs must be UUIDs or lookup references.",
    );
    assert_eq!(error.hint["errors"][0]["in"], json!([0, 2]));
    // A wrong shape elsewhere is reported by the step spec.
    let error = transact_err(api, &auth, json!([["update", 1, uid(1), {"name": "x"}]]));
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for steps",
    );
    assert_eq!(
        error.hint["errors"][0],
        json!({"expected": "string?", "in": [0, 1]})
    );
    let error = transact_err(
        api,
        &auth,
        json!([["updatez", "thread_threads", uid(1), {"name": "x"}]]),
    );
    assert_eq!(
        (error.status, error.error_type.as_str()),
        (400, "validation-failed")
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        Vec::<String>::new()
    );
}

fn unique_violation_is_record_not_unique(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(api, &auth, json!([thread(1, json!({"key": "k1"}))]));
    let error = transact_err(api, &auth, json!([thread(2, json!({"key": "k1"}))]));
    assert_error(
        &error,
        400,
        "record-not-unique",
        "`key` is a unique attribute on `thread_threads` and an entity already exists with `thread_threads.key` = \"k1\"",
    );
    assert_eq!(error.hint["etype"], "thread_threads");
    assert_eq!(error.hint["label"], "key");
    // Nulls never conflict, and an entity may keep its own value.
    transact_ok(
        api,
        &auth,
        json!([
            thread(2, json!({"key": null})),
            thread(3, json!({"key": null})),
            thread(1, json!({"key": "k1"}))
        ]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(1), uid(2), uid(3)]
    );
}

fn checked_type_violation(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let error = transact_err(api, &auth, json!([thread(1, json!({"name": 5}))]));
    assert_error(
        &error,
        400,
        "validation-failed",
        "Invalid value type for thread_threads.name. Value must be a string but the provided value type is number.",
    );
    assert_eq!(error.hint["namespace"], "thread_threads");
    assert_eq!(error.hint["attribute"], "name");
    // Dates take epoch numbers and ISO strings; `any` takes everything.
    transact_ok(
        api,
        &auth,
        json!([
            ["update", "thread_threads", uid(2), {"createdAt": "2025-01-02T03:04:05.000Z"}],
            ["update", "thread_contexts", uid(3), {"createdAt": 7, "content": [1, {"a": null}]}],
        ]),
    );
    let error = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", uid(4), {"createdAt": {"not": "a date"}}]]),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        "Invalid value type for thread_threads.createdAt. Value must be a date but the provided value type is object.",
    );
}

fn required_attributes_are_checked_at_the_end(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let error = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", uid(1), {"name": "no date"}]]),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        &format!(
            "Missing required attribute `thread_threads/createdAt`: {}",
            uid(1)
        ),
    );
    // Set by a later step of the same transaction: fine.
    transact_ok(
        api,
        &auth,
        json!([
            ["update", "thread_threads", uid(1), {"name": "late date"}],
            ["update", "thread_threads", uid(1), {"createdAt": 1}],
        ]),
    );
    // A null counts as missing.
    let error = transact_err(
        api,
        &auth,
        json!([["update", "thread_threads", uid(1), {"createdAt": null}]]),
    );
    assert_error(
        &error,
        400,
        "validation-failed",
        &format!(
            "Missing required attribute `thread_threads/createdAt`: {}",
            uid(1)
        ),
    );
    // A deleted entity is not checked.
    transact_ok(
        api,
        &auth,
        json!([
            ["update", "thread_threads", uid(2), {"name": "gone"}],
            ["delete", "thread_threads", uid(2)],
        ]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(1)]
    );
}

fn throw_on_missing_attrs_refuses_new_attributes(api: &dyn InstantApi) {
    let auth = thread_app(api);
    let strict = |steps: Value| {
        api.transact(
            &auth,
            &TransactRequest {
                steps: steps.as_array().unwrap().clone(),
                throw_on_missing_attrs: true,
            },
        )
    };
    let error = strict(json!([thread(1, json!({"myFavoriteColor": "purple"}))])).unwrap_err();
    assert_error(
        &error,
        400,
        "validation-failed",
        "Validation failed for steps: Attributes are missing in your schema",
    );
    let attributes: BTreeSet<String> =
        serde_json::from_value(error.hint["errors"][0]["hint"]["attributes"].clone())
            .expect("a list of names");
    assert_eq!(
        attributes,
        BTreeSet::from(["thread_threads.myFavoriteColor".to_string()])
    );
    // A new namespace needs its `id` too.
    let error = strict(json!([["update", "brand_new", uid(2), {"a": 1}]])).unwrap_err();
    let attributes: BTreeSet<String> =
        serde_json::from_value(error.hint["errors"][0]["hint"]["attributes"].clone())
            .expect("a list of names");
    assert_eq!(
        attributes,
        BTreeSet::from(["brand_new.id".to_string(), "brand_new.a".to_string()])
    );
    // Known attributes pass.
    strict(json!([thread(1, json!({"name": "known"}))])).expect("known attributes");
    // Without the flag, attributes are created.
    transact_ok(
        api,
        &auth,
        json!([thread(1, json!({"myFavoriteColor": "purple"}))]),
    );
    let pulled = api.schema_pull(&auth).expect("pull");
    let created = pulled_attr(&pulled.attrs, "thread_threads", "myFavoriteColor");
    assert!(!created.unique && !created.index && created.checked_data_type.is_none());
    assert_eq!(
        query(
            api,
            &auth,
            json!({"thread_threads": {"$": {"fields": ["myFavoriteColor"]}}})
        ),
        json!({"thread_threads": [{"id": uid(1), "myFavoriteColor": "purple"}]})
    );
}

fn failed_transact_writes_nothing(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(api, &auth, json!([thread(1, json!({"key": "taken"}))]));
    let before = api.schema_pull(&auth).expect("pull").attrs.len();
    let error = transact_err(
        api,
        &auth,
        json!([
            thread(2, json!({"name": "would be new", "freshAttr": 1})),
            ["update", "thread_contexts", uid(3), {"createdAt": 1}],
            ["link", "thread_contexts", uid(3), {"thread": uid(1)}],
            thread(1, json!({"name": "changed"})),
            thread(4, json!({"key": "taken"})),
        ]),
    );
    assert_eq!(
        error.error_type,
        "record-not-unique",
        "{}",
        error.envelope()
    );
    let result = query(
        api,
        &auth,
        json!({"thread_threads": {"contexts": {}}, "thread_contexts": {}}),
    );
    assert_eq!(ids(&result, "thread_threads"), vec![uid(1)]);
    assert_eq!(result["thread_threads"][0].get("name"), None);
    assert_eq!(result["thread_threads"][0]["contexts"], json!([]));
    assert_eq!(result["thread_contexts"], json!([]));
    // The attribute the failed transaction would have created does not exist either.
    let pulled = api.schema_pull(&auth).expect("pull");
    assert_eq!(pulled.attrs.len(), before);
    assert!(!pulled.schema.blobs["thread_threads"].contains_key("freshAttr"));
    // A failing required check at the end also undoes everything.
    transact_err(
        api,
        &auth,
        json!([thread(5, json!({})), ["update", "thread_threads", uid(6), {"name": "no date"}]]),
    );
    assert_eq!(
        query_ids(api, &auth, "thread_threads", json!({})),
        vec![uid(1)]
    );
}

// ---------------------------------------------------------------------------------------------
// Indexing jobs and perms

fn flag_change_runs_an_indexing_job(api: &dyn InstantApi) {
    let auth = thread_app(api);
    transact_ok(
        api,
        &auth,
        json!([
            thread(1, json!({"name": "b"})),
            thread(2, json!({"name": "a"}))
        ]),
    );
    let name_id = api.schema_pull(&auth).expect("pull").schema.blobs["thread_threads"]["name"]
        .id
        .clone()
        .expect("an attribute id");

    let mut dsl = thread_v1_dsl();
    let name = &mut dsl["entities"]["thread_threads"]["attrs"]["name"];
    name["isIndexed"] = json!(true);
    name["config"]["indexed"] = json!(true);

    let plan = api
        .schema_plan(&auth, &push_request(dsl.clone()))
        .expect("plan");
    let steps = serde_json::to_value(&plan.steps).expect("steps serialise");
    assert_eq!(
        steps,
        json!([["index", {
            "attr-id": name_id,
            "forward-identity": serde_json::to_value(
                &api.schema_pull(&auth).unwrap().schema.blobs["thread_threads"]["name"].forward_identity
            ).unwrap()
        }]])
    );

    let applied = api
        .schema_push(&auth, &push_request(dsl.clone()))
        .expect("push");
    let group = applied
        .indexing_jobs
        .expect("an index step creates a job group");
    assert_eq!(group.jobs.len(), 1);
    assert_eq!(group.jobs[0].job_type, "index");
    assert_eq!(group.jobs[0].attr_id.as_deref(), Some(name_id.as_str()));
    assert_eq!(applied.transaction, json!({}), "no attribute step ran");
    assert_eq!(applied.steps[0].step_type(), "index", "{:?}", applied.steps);

    // Poll the group as the platform SDK does, until every job is terminal.
    let mut polled = api
        .indexing_job_group(&auth, &group.group_id)
        .expect("group");
    for _ in 0..200 {
        if polled.jobs.iter().all(|job| job.is_terminal()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        polled = api
            .indexing_job_group(&auth, &group.group_id)
            .expect("group");
    }
    assert_eq!(polled.jobs.len(), 1);
    let job = &polled.jobs[0];
    assert_eq!(
        (
            job.job_type.as_str(),
            job.job_status.as_str(),
            job.attr_name.as_deref(),
            job.group_id.as_deref(),
            job.app_id.as_deref(),
        ),
        (
            "index",
            "completed",
            Some("thread_threads.name"),
            Some(group.group_id.as_str()),
            Some(auth.app_id.as_str()),
        )
    );
    let single = api.indexing_job(&auth, &job.id).expect("one job");
    assert_eq!(single.job.id, job.id);
    assert_eq!(single.job.job_status, "completed");

    // The flag is on, so `name` now orders at the top level.
    let pulled = api.schema_pull(&auth).expect("pull");
    assert!(pulled.schema.blobs["thread_threads"]["name"].index);
    assert_eq!(
        query_ids(
            api,
            &auth,
            "thread_threads",
            json!({"order": {"name": "asc"}})
        ),
        vec![uid(2), uid(1)]
    );
    let replan = api.schema_plan(&auth, &push_request(dsl)).expect("re-plan");
    assert_eq!(replan.steps, vec![]);
}

fn perms_pull_returns_the_rules_code(api: &dyn InstantApi) {
    let code = json!({"thread_threads": {"allow": {"view": "true", "create": "false"}}});
    let created = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "with rules".into(),
            schema: None,
            rules: Some(json!({"code": code})),
        })
        .expect("app with rules");
    let pulled = api.perms_pull(&created.app.auth()).expect("perms pull");
    assert_eq!(pulled.perms, Some(code));

    let without = new_app(api);
    assert_eq!(api.perms_pull(&without).expect("perms pull").perms, None);
}
