//! Verify through the port: extract -> transform -> (a test-only writer of the transform output)
//! -> verify passes; each corruption of the target fails exactly the invariants it breaks, with
//! the offending ids; a broken API or a missing transform output is `error`, never `pass`.

// The port's error keeps the whole server envelope on purpose; see `instant-api`.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use instant_api::{ApiError, AppAuth, InstantApi, SchemaPushRequest, TransactRequest};
use instant_schema::{BuiltinSchema, Cardinality, Link, LinkEnd};
use migration::gen::{CaseKind, OrgRole};
use migration::verify::{verify, Status, VerifyConfig, VerifyResult, RESULT_FILE};
use migration::{LinkIntent, TargetNamespace};
use serde_json::{json, Map, Value};

use super::extract::{
    extract_with, generate_org, generate_org_with, transform, GeneratedOrg, Hooked,
};

/// Writes `02-transform/` into the app as plain `update` and `link` steps, after pushing
/// thread V1 (plus the esolbay `thread_items.whatsappMessages` link). A stand-in for the
/// apply stage in these tests only: no journal, no plan hash, no resume.
pub fn write_transform_output_for_test(api: &dyn InstantApi, auth: &AppAuth, dir: &Path) {
    let mut schema = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
    let end = |on: &str, label: &str| LinkEnd {
        on: on.into(),
        has: Cardinality::Many,
        label: label.into(),
        required: None,
        on_delete: None,
    };
    schema.links.insert(
        "threadItemsWhatsappMessages".into(),
        Link::new(
            end("thread_items", "whatsappMessages"),
            end("whatsapp_messages", "threadItems"),
        ),
    );
    api.schema_push(
        auth,
        &SchemaPushRequest {
            schema: schema.to_dsl_json(),
            check_types: true,
            supports_background_updates: false,
        },
    )
    .unwrap();
    let mut steps: Vec<Value> = Vec::new();
    let flush = |steps: &mut Vec<Value>, all: bool| {
        if steps.len() >= 1000 || (all && !steps.is_empty()) {
            api.transact(
                auth,
                &TransactRequest {
                    steps: std::mem::take(steps),
                    throw_on_missing_attrs: false,
                },
            )
            .unwrap();
        }
    };
    for ns in TargetNamespace::ALL {
        let text = std::fs::read_to_string(dir.join(ns.file_name())).unwrap();
        for line in text.lines() {
            let mut row: Map<String, Value> = serde_json::from_str(line).unwrap();
            let id = row.remove("id").unwrap();
            steps.push(json!(["update", ns.as_str(), id, row]));
            flush(&mut steps, false);
        }
    }
    flush(&mut steps, true);
    let text = std::fs::read_to_string(dir.join("links.ndjson")).unwrap();
    for line in text.lines() {
        let link: LinkIntent = serde_json::from_str(line).unwrap();
        steps.push(json!([
            "link",
            link.from_ns.as_str(),
            link.from_id,
            { link.label.as_str(): link.to_id }
        ]));
        flush(&mut steps, false);
    }
    flush(&mut steps, true);
}

struct Migrated {
    org: GeneratedOrg,
    run: PathBuf,
}

/// gen -> extract -> transform -> the test writer.
fn migrated(org: GeneratedOrg) -> Migrated {
    let run = org.tmp.path().join("runs/run-1");
    extract_with(&org.engine, &org.auth, &run.join("01-extract"), 50);
    transform(&run.join("01-extract"), &run.join("02-transform"));
    write_transform_output_for_test(&org.engine, &org.auth, &run.join("02-transform"));
    Migrated { org, run }
}

fn config(run: &Path, sample: usize) -> VerifyConfig {
    let mut config = VerifyConfig::for_run(run, "run-1");
    config.page_size = 9;
    config.sample_size = sample;
    config.sort_budget = 64 << 10;
    config
}

fn run_verify(api: &dyn InstantApi, auth: &AppAuth, config: &VerifyConfig) -> VerifyResult {
    let result = verify(api, auth, config, &mut |_| {}).unwrap();
    let written: VerifyResult =
        serde_json::from_slice(&std::fs::read(config.out_dir.join(RESULT_FILE)).unwrap()).unwrap();
    assert_eq!(written, result, "the file holds what verify returned");
    assert_eq!(
        result.ok,
        result.invariants.iter().all(|i| i.status == Status::Pass)
    );
    result
}

/// Invariants that did not pass: id -> (status, offending ids).
fn not_passing(result: &VerifyResult) -> BTreeMap<String, (Status, Vec<String>)> {
    result
        .invariants
        .iter()
        .filter(|invariant| invariant.status != Status::Pass)
        .map(|invariant| {
            (
                invariant.id.clone(),
                (invariant.status, invariant.sample.clone()),
            )
        })
        .collect()
}

fn rows(dir: &Path, ns: TargetNamespace) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(dir.join(ns.file_name()))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn links(dir: &Path) -> Vec<LinkIntent> {
    std::fs::read_to_string(dir.join("links.ndjson"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn expected_count(result: &VerifyResult, id: &str) -> u64 {
    result.get(id).unwrap().expected.as_u64().unwrap()
}

#[test]
fn a_faithful_migration_passes_every_invariant() {
    let m = migrated(generate_org(OrgRole::Clean, 41, 90));
    let result = run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 200));
    assert!(result.ok, "{:#?}", not_passing(&result));
    assert_eq!(
        result.invariants.len(),
        migration::verify::invariant_ids().len()
    );
    // It asserted something: the counts are the transform's, the sample is full.
    let out = m.run.join("02-transform");
    for ns in TargetNamespace::ALL {
        let n = rows(&out, ns).len() as u64;
        assert!(n > 0, "{ns}");
        assert_eq!(expected_count(&result, &format!("count.{ns}")), n, "{ns}");
        assert_eq!(
            expected_count(&result, &format!("sample.{ns}")),
            n.min(200),
            "{ns}"
        );
    }
    let all_links = links(&out);
    let item_threads = all_links
        .iter()
        .filter(|l| l.from_ns == TargetNamespace::ThreadItems && l.label == "thread")
        .count() as u64;
    assert_eq!(
        expected_count(&result, "links.thread_items.thread"),
        item_threads
    );
    assert!(expected_count(&result, "keys.thread_contexts.legacy") > 0);
    assert_eq!(
        result.get("accounting.context_events").unwrap().expected,
        json!(m.org.rows(migration::gen::Ns::ContextEvents))
    );
    // The same run verifies to the same bytes (the sample is seeded by the run id).
    let first = std::fs::read(m.run.join("04-verify").join(RESULT_FILE)).unwrap();
    run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 200));
    assert_eq!(
        std::fs::read(m.run.join("04-verify").join(RESULT_FILE)).unwrap(),
        first
    );
    // No work files left behind.
    let names: Vec<String> = std::fs::read_dir(m.run.join("04-verify"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [RESULT_FILE]);
}

#[test]
fn a_standard_org_with_its_edge_cases_passes_too() {
    // Every injected case but a thread_contexts row already holding a legacy key, which the
    // transform does not resolve (apply would collide on the unique key).
    let org = generate_org_with(OrgRole::Standard, 43, 150, |config| {
        config.rates.set(CaseKind::PreexistingThreadContextKey, 0.0);
    });
    let m = migrated(org);
    let result = run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 50));
    assert!(result.ok, "{:#?}", not_passing(&result));
    // The thread that existed before is reused, not counted as unexpected.
    let preexisting = m.org.rows(migration::gen::Ns::ThreadThreads);
    assert!(preexisting > 0);
}

fn transact(m: &Migrated, steps: Vec<Value>) -> Result<(), ApiError> {
    m.org
        .engine
        .transact(
            &m.org.auth,
            &TransactRequest {
                steps,
                throw_on_missing_attrs: false,
            },
        )
        .map(|_| ())
}

#[test]
fn each_corruption_fails_exactly_its_invariants_with_the_offending_ids() {
    let m = migrated(generate_org(OrgRole::Clean, 47, 90));
    let out = m.run.join("02-transform");
    let all_links = links(&out);
    let labels_of = |id: &str| -> Vec<String> {
        let mut labels: Vec<String> = all_links
            .iter()
            .filter(|l| l.from_id.to_string() == id)
            .map(|l| l.label.clone())
            .collect();
        labels.sort();
        labels
    };
    let items = rows(&out, TargetNamespace::ThreadItems);
    // The item fewest rows point at (deleting it also removes the links to it).
    let deleted = items
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .min_by_key(|id| {
            let incoming = all_links
                .iter()
                .filter(|l| l.to_id.to_string() == *id)
                .count();
            (incoming, id.clone())
        })
        .unwrap();
    assert!(!labels_of(&deleted).is_empty());
    let rewritten = items
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .find(|id| *id != deleted)
        .unwrap();
    let step_link = all_links
        .iter()
        .find(|l| l.from_ns == TargetNamespace::ThreadSteps && l.label == "execution")
        .unwrap()
        .clone();
    let execution = rows(&out, TargetNamespace::ThreadExecutions)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let context = rows(&out, TargetNamespace::ThreadContexts)
        .into_iter()
        .find(|row| row.get("key").is_some())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let before = run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 100_000));
    assert!(before.ok, "{:#?}", not_passing(&before));

    transact(
        &m,
        vec![
            json!(["delete", "thread_items", deleted]),
            json!(["update", "thread_items", rewritten, {"content": {"parts": [{"type": "text", "text": "tampered"}]}}]),
            json!(["unlink", "thread_steps", step_link.from_id, {"execution": step_link.to_id}]),
            json!(["update", "thread_executions", execution, {"createdAt": "2001-01-01T00:00:00.000Z"}]),
            json!(["update", "thread_contexts", context, {"key": "tampered-key"}]),
        ],
    )
    .unwrap();

    let after = run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 100_000));
    assert!(!after.ok);
    let fail = |ids: &[&String]| {
        (
            Status::Fail,
            ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
        )
    };
    let step = step_link.from_id.to_string();
    let mut expected: BTreeMap<String, (Status, Vec<String>)> = [
        ("count.thread_items", fail(&[&deleted])),
        ("sample.thread_items", fail(&[&rewritten])),
        ("links.thread_steps.execution", fail(&[&step])),
        ("preserved.thread_executions.createdAt", fail(&[&execution])),
        ("sample.thread_executions", fail(&[&execution])),
        ("keys.thread_contexts.legacy", fail(&[&context])),
        ("keys.thread_threads.context", fail(&[&context])),
        ("sample.thread_contexts", fail(&[&context])),
    ]
    .into_iter()
    .map(|(id, outcome)| (id.to_string(), outcome))
    .collect();
    // The deleted item's own links, and the links to it.
    for link in &all_links {
        if link.from_id.to_string() != deleted && link.to_id.to_string() != deleted {
            continue;
        }
        let entry = expected
            .entry(format!("links.{}.{}", link.from_ns, link.label))
            .or_insert((Status::Fail, Vec::new()));
        entry.1.push(link.from_id.to_string());
        entry.1.sort();
    }
    assert_eq!(not_passing(&after), expected);
    let count = after.get("count.thread_items").unwrap();
    assert_eq!(
        (
            count.expected.as_u64().unwrap(),
            count.actual.as_u64().unwrap()
        ),
        (items.len() as u64, items.len() as u64 - 1)
    );
    assert!(after
        .get("sample.thread_items")
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .starts_with(&format!("thread_items {rewritten}: content is ")));

    // The schema refuses a duplicate key outright: the uniqueness checks are the second line.
    let contexts = rows(&out, TargetNamespace::ThreadContexts);
    let keyed: Vec<&Map<String, Value>> = contexts
        .iter()
        .filter(|row| row.get("key").is_some() && row["id"] != json!(context))
        .collect();
    let error = transact(
        &m,
        vec![json!(["update", "thread_contexts", keyed[0]["id"], {"key": keyed[1]["key"]}])],
    )
    .unwrap_err();
    assert_eq!(error.error_type, "record-not-unique", "{error}");
}

#[test]
fn a_broken_api_is_error_never_pass() {
    let m = migrated(generate_org(OrgRole::Clean, 53, 40));
    let broken = Hooked::new(&m.org.engine, |_, _, _, _| {
        Err(ApiError::new(
            503,
            "unavailable",
            "upstream is down",
            Value::Null,
        ))
    });
    let result = run_verify(&broken, &m.org.auth, &config(&m.run, 20));
    assert!(!result.ok);
    for invariant in &result.invariants {
        if invariant.id.starts_with("accounting.") {
            // Files only: the extract and the transform agree.
            assert_eq!(invariant.status, Status::Pass, "{}", invariant.id);
        } else {
            assert_eq!(invariant.status, Status::Error, "{}", invariant.id);
            assert!(
                invariant
                    .detail
                    .as_deref()
                    .unwrap()
                    .ends_with("failed: 503 unavailable: upstream is down"),
                "{:?}",
                invariant.detail
            );
            assert_eq!(invariant.expected, Value::Null);
        }
    }
    // A failure midway (the sample read) is an error of that invariant only.
    let sample_broken = Hooked::new(&m.org.engine, |engine, auth, request, _| {
        let (ns, options) = super::extract::top(request);
        if ns == "thread_items" && options.get("where").is_some() {
            return Err(ApiError::new(429, "rate-limited", "slow down", Value::Null));
        }
        engine.query(auth, request)
    });
    let result = run_verify(&sample_broken, &m.org.auth, &config(&m.run, 20));
    let errors: Vec<&str> = result
        .invariants
        .iter()
        .filter(|i| i.status == Status::Error)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(
        errors,
        migration::verify::invariant_ids()
            .iter()
            .filter(|id| id.contains("thread_items"))
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(result.count(Status::Fail), 0);
}

#[test]
fn missing_inputs_are_error_never_pass() {
    let m = migrated(generate_org(OrgRole::Clean, 59, 30));
    // No transform output at all.
    let mut no_transform = config(&m.run, 20);
    no_transform.transform_dir = m.run.join("nowhere");
    let result = run_verify(&m.org.engine, &m.org.auth, &no_transform);
    assert!(!result.ok);
    assert!(result
        .invariants
        .iter()
        .all(|invariant| invariant.status == Status::Error));
    assert!(result
        .get("accounting.context_events")
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .starts_with("no transform output at "));
    assert!(result
        .get("count.thread_items")
        .unwrap()
        .detail
        .as_deref()
        .unwrap()
        .contains("thread_items.ndjson"));
    // No extract: what needs the legacy rows is error, the rest is checked.
    let mut no_extract = config(&m.run, 20);
    no_extract.extract_dir = m.run.join("nowhere");
    let result = run_verify(&m.org.engine, &m.org.auth, &no_extract);
    let mut errors: Vec<&str> = result
        .invariants
        .iter()
        .filter(|i| i.status != Status::Pass)
        .map(|i| i.id.as_str())
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "accounting.context_contexts",
            "accounting.context_events",
            "accounting.story_executions",
            "accounting.story_parts",
            "accounting.story_steps",
            "keys.thread_contexts.legacy"
        ]
    );
    assert_eq!(result.count(Status::Error), 6);
}

#[test]
fn the_transform_output_must_belong_to_the_extract() {
    let m = migrated(generate_org(OrgRole::Clean, 61, 30));
    // Another extract (one context more) against the same transform output.
    let summary_path = m.run.join("01-extract/summary.json");
    let mut summary: Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let contexts = summary["namespaces"]["context_contexts"].as_u64().unwrap();
    summary["namespaces"]["context_contexts"] = json!(contexts + 1);
    std::fs::write(&summary_path, serde_json::to_vec(&summary).unwrap()).unwrap();
    let result = run_verify(&m.org.engine, &m.org.auth, &config(&m.run, 20));
    let accounting = result.get("accounting.context_contexts").unwrap();
    assert_eq!(accounting.status, Status::Fail);
    assert_eq!(
        (accounting.expected.clone(), accounting.actual.clone()),
        (json!(contexts + 1), json!(contexts))
    );
    assert_eq!(
        not_passing(&result).keys().collect::<Vec<_>>(),
        ["accounting.context_contexts"]
    );
}

/// Figures for the closing note, not a check of speed: `THREADMIG_BENCH_EVENTS=100000 cargo
/// test -p migration --release --test it bench_extract_verify -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_extract_verify() {
    use std::time::Instant;
    let events: u64 = std::env::var("THREADMIG_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000);
    let started = Instant::now();
    let org = generate_org(OrgRole::Clean, 1, events);
    let generated = started.elapsed();
    let run = org.tmp.path().join("runs/bench");
    let started = Instant::now();
    let summary = migration::extract::extract(
        &org.engine,
        &org.auth,
        &migration::extract::ExtractConfig::new(run.join("01-extract")),
        &mut |_| {},
    )
    .unwrap();
    let extracted = started.elapsed();
    let rows: u64 = summary.namespaces.values().sum();
    let started = Instant::now();
    transform(&run.join("01-extract"), &run.join("02-transform"));
    let transformed = started.elapsed();
    let started = Instant::now();
    write_transform_output_for_test(&org.engine, &org.auth, &run.join("02-transform"));
    let written = started.elapsed();
    let started = Instant::now();
    let result = verify(
        &org.engine,
        &org.auth,
        &VerifyConfig::for_run(&run, "bench"),
        &mut |_| {},
    )
    .unwrap();
    let verified = started.elapsed();
    assert!(result.ok, "{:#?}", not_passing(&result));
    eprintln!(
        "bench: {events} events, {rows} legacy rows; gen {:.1} s; extract {:.2} s ({:.0} rows/s, {} queries); transform {:.2} s; write {:.2} s; verify {:.2} s ({} invariants)",
        generated.as_secs_f64(),
        extracted.as_secs_f64(),
        rows as f64 / extracted.as_secs_f64(),
        summary.pages,
        transformed.as_secs_f64(),
        written.as_secs_f64(),
        verified.as_secs_f64(),
        result.invariants.len()
    );
}
