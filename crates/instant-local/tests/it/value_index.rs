//! Regression: only unique or indexed attributes are in the value indexes (`triples.av`), so a
//! where-clause must find values whether or not the attribute is indexed, and must keep finding
//! them after a schema change adds or removes the index.

use instant_api::{
    AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, SchemaPushRequest, TransactRequest,
};
use instant_local::engine::LocalEngine;
use serde_json::{json, Value};

fn schema(indexed: bool) -> Value {
    let title = if indexed {
        json!({"valueType": "string", "required": false, "isIndexed": true, "config": {"indexed": true, "unique": false}, "metadata": {}})
    } else {
        json!({"valueType": "string", "required": false, "isIndexed": false, "config": {"indexed": false, "unique": false}, "metadata": {}})
    };
    json!({"entities": {"posts": {"attrs": {"title": title}, "links": {}}}, "links": {}, "rooms": {}})
}

fn titles_where(api: &LocalEngine, auth: &AppAuth, title: &str) -> Vec<String> {
    let result = api
        .query(
            auth,
            &QueryRequest {
                query: json!({"posts": {"$": {"where": {"title": title}}}}),
                inference: false,
            },
        )
        .unwrap();
    result["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|post| post["id"].as_str().unwrap().to_string())
        .collect()
}

fn push(api: &LocalEngine, auth: &AppAuth, indexed: bool) {
    let response = api
        .schema_push(
            auth,
            &SchemaPushRequest {
                schema: schema(indexed),
                check_types: true,
                supports_background_updates: true,
            },
        )
        .unwrap();
    if let Some(group) = response.indexing_jobs {
        assert!(
            group.jobs.iter().all(|job| job.job_status == "completed"),
            "{group:?}"
        );
    }
}

#[test]
fn where_finds_values_before_and_after_the_attribute_is_indexed() {
    let api = LocalEngine::in_memory().unwrap();
    let app = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "value index".into(),
            schema: Some(schema(false)),
            rules: None,
        })
        .unwrap()
        .app;
    let auth = app.auth();
    let first = "6f1f4f4e-1c1a-4c55-9a59-2b0e6f8f0001";
    let second = "6f1f4f4e-1c1a-4c55-9a59-2b0e6f8f0002";
    api.transact(
        &auth,
        &TransactRequest {
            steps: vec![
                json!(["update", "posts", first, {"title": "hello"}]),
                json!(["update", "posts", second, {"title": "other"}]),
            ],
            throw_on_missing_attrs: false,
        },
    )
    .unwrap();
    assert_eq!(
        titles_where(&api, &auth, "hello"),
        [first],
        "not indexed: found by scanning"
    );

    push(&api, &auth, true);
    assert_eq!(
        titles_where(&api, &auth, "hello"),
        [first],
        "indexed by a job: found through the index"
    );
    api.transact(
        &auth,
        &TransactRequest {
            steps: vec![json!(["update", "posts", second, {"title": "hello"}])],
            throw_on_missing_attrs: false,
        },
    )
    .unwrap();
    let mut both = titles_where(&api, &auth, "hello");
    both.sort();
    assert_eq!(both, [first, second]);

    push(&api, &auth, false);
    let mut both = titles_where(&api, &auth, "hello");
    both.sort();
    assert_eq!(
        both,
        [first, second],
        "index removed: found by scanning again"
    );
}

/// Regression: transact, schema jobs and queries once had three date parsers that disagreed
/// (`2024-01-02 03:04:05 UTC` was stored but refused in a `where`). They share one now.
#[test]
fn a_date_accepted_on_write_is_accepted_in_a_where() {
    let api = LocalEngine::in_memory().unwrap();
    let schema = json!({"entities": {"events": {"attrs": {"at": {"valueType": "date", "required": false,
        "isIndexed": true, "config": {"indexed": true, "unique": false}, "metadata": {}}}, "links": {}}},
        "links": {}, "rooms": {}});
    let app = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "dates".into(),
            schema: Some(schema),
            rules: None,
        })
        .unwrap()
        .app;
    let auth = app.auth();
    let id = "6f1f4f4e-1c1a-4c55-9a59-2b0e6f8f0003";
    let at = "2024-01-02 03:04:05 UTC";
    api.transact(
        &auth,
        &TransactRequest {
            steps: vec![json!(["update", "events", id, {"at": at}])],
            throw_on_missing_attrs: false,
        },
    )
    .unwrap();
    for condition in [
        json!(at),
        json!({"$gte": at}),
        json!("2024-01-02T03:04:05Z"),
    ] {
        let result = api
            .query(
                &auth,
                &QueryRequest {
                    query: json!({"events": {"$": {"where": {"at": condition}}}}),
                    inference: false,
                },
            )
            .unwrap_or_else(|error| panic!("{condition}: {error}"));
        assert_eq!(result["events"][0]["id"], id, "{condition}");
    }
}
