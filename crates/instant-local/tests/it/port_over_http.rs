//! The port suite again, through the HTTP adapter (`instant_api::http`) against the engine
//! served over HTTP in-process (what `threadmig serve` runs), and the adapter's reliability
//! under injected faults.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_api::http::{HttpInstantApi, ResilienceConfig};
use instant_api::{AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, TransactRequest};
use instant_local::engine::LocalEngine;
use instant_local::server::faults::FaultConfig;
use instant_local::server::{spawn, RequestLog, ServerConfig, ServerHandle};
use serde_json::{json, Value};

use crate::port::CASES;

fn serve(faults: FaultConfig, log: RequestLog) -> ServerHandle {
    let engine = LocalEngine::in_memory().expect("an in-memory engine opens");
    spawn(
        Arc::new(engine),
        ServerConfig {
            faults,
            log,
            ..ServerConfig::default()
        },
    )
    .expect("the server starts")
}

/// Every case of the port suite, over HTTP. One server for all (each case makes its own app);
/// every case runs even when one fails, and the failures are listed together.
#[test]
fn port_suite_over_the_http_adapter() {
    let server = serve(FaultConfig::default(), RequestLog::Off);
    let api = HttpInstantApi::new(
        &server.url(),
        ResilienceConfig {
            max_requests_per_second: None,
            ..ResilienceConfig::default()
        },
    )
    .expect("the adapter builds");
    let mut failures = Vec::new();
    for (name, case) in CASES {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&api))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed over HTTP:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

const ENTITIES: usize = 10_000;
const WORKERS: usize = 64;

/// The content of entity `n`: fixed by `n` alone.
fn item(n: usize) -> (String, Value) {
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    let content = json!({"title": format!("item {n}"), "n": n, "even": n % 2 == 0});
    (id, content)
}

/// JSON with object keys sorted, so equal content has one text whatever the key order.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{}:{}", Value::from(key.as_str()), canonical(&map[key])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// FNV-1a over the entities in id order, each in canonical JSON: a content hash that the
/// expected set and what the server holds can be compared by.
fn content_hash(entities: &BTreeMap<String, Value>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, content) in entities {
        for byte in id.bytes().chain(canonical(content).bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// 10,000 transacts, one entity each, against a server that fails about one request in five
/// (429 with `Retry-After`, 500, 503, connections dropped before the request takes effect, and
/// connections dropped *after* it committed), and every entity lands exactly once.
///
/// What makes it exactly-once: each transact is `["update", "items", <fixed id>, <fixed
/// content>]`, an upsert keyed by the entity id. When a connection drops after the commit, the
/// adapter cannot know the write happened and sends it again; applying the same upsert twice
/// leaves the same single entity with the same content (the id is the identity, so a retry
/// cannot create a second entity, and the content is a pure function of the id). Faults before
/// the engine call have no effect, so retrying them is trivially safe. The check is a count and
/// a content hash over everything the app holds, plus an exact comparison.
#[test]
fn every_transact_lands_exactly_once_under_faults() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let server = serve(
        FaultConfig {
            seed: 20_260_101,
            rate_429: 0.07,
            retry_after_secs: 1,
            rate_5xx: 0.06,
            drop_rate: 0.04,
            drop_after_rate: 0.04,
            ..FaultConfig::default()
        },
        RequestLog::Memory(lines.clone()),
    );
    let api = HttpInstantApi::new(
        &server.url(),
        ResilienceConfig {
            timeout: Duration::from_secs(20),
            max_retries: 12,
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(200),
            max_concurrency: WORKERS,
            max_requests_per_second: None,
            jitter_seed: Some(11),
            ..ResilienceConfig::default()
        },
    )
    .expect("the adapter builds");
    let auth = api
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "faults".into(),
            schema: None,
            rules: None,
        })
        .expect("an app is created through the faults")
        .app
        .auth();
    let write = |api: &HttpInstantApi, auth: &AppAuth, n: usize| {
        let (id, content) = item(n);
        api.transact(
            auth,
            &TransactRequest {
                steps: vec![json!(["update", "items", id, content])],
                throw_on_missing_attrs: false,
            },
        )
    };
    // The first write creates the attributes; the rest only add data.
    write(&api, &auth, 0).expect("the first write lands");

    let started = Instant::now();
    let next = AtomicUsize::new(1);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= ENTITIES {
                    break;
                }
                if let Err(error) = write(&api, &auth, n) {
                    failed.lock().unwrap().push(format!("{n}: {error}"));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let failed = failed.into_inner().unwrap();
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    let result = api
        .query(
            &auth,
            &QueryRequest {
                query: json!({"items": {}}),
                inference: false,
            },
        )
        .expect("the read-back query succeeds");
    let stored: BTreeMap<String, Value> = result["items"]
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|entity| {
            let mut content = entity.clone();
            let id = content
                .as_object_mut()
                .and_then(|object| object.remove("id"))
                .and_then(|id| id.as_str().map(str::to_string))
                .expect("every entity has an id");
            (id, content)
        })
        .collect();
    let expected: BTreeMap<String, Value> = (0..ENTITIES).map(item).collect();
    assert_eq!(
        result["items"].as_array().unwrap().len(),
        ENTITIES,
        "entity count"
    );
    assert_eq!(stored.len(), ENTITIES, "distinct ids");
    assert_eq!(
        content_hash(&stored),
        content_hash(&expected),
        "content hash"
    );
    assert!(
        stored == expected,
        "stored entities differ from the written ones"
    );

    // The faults really happened, every kind of them.
    let log = lines.lock().unwrap();
    let count = |fault: &str| {
        log.iter()
            .filter(|line| line.ends_with(&format!("fault={fault}")))
            .count()
    };
    let injected: Vec<(&str, usize)> = ["429", "500", "503", "drop", "drop-after"]
        .into_iter()
        .map(|fault| (fault, count(fault)))
        .collect();
    for (fault, hits) in &injected {
        assert!(*hits > 0, "no {fault} fault was injected: {injected:?}");
    }
    let requests = log.len();
    let faulted: usize = injected.iter().map(|(_, hits)| hits).sum();
    assert!(
        faulted * 100 / requests >= 18,
        "only {faulted} of {requests} requests were faulted"
    );
    eprintln!(
        "{ENTITIES} transacts in {elapsed:?} over {requests} requests, {faulted} faulted: {injected:?}"
    );
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
