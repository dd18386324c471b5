//! `threadmig gen`: determinism, case coverage, manifest accounting, and the workspace target.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use instant_api::{AppAuth, InstantApi, QueryRequest, SchemaPushRequest};
use instant_local::engine::LocalEngine;
use instant_local::store::{OrgCredentials, OrgRecord};
use instant_schema::BuiltinSchema;
use migration::gen::{
    generate, CaseKind, EngineTarget, FileFormat, GenConfig, GenReport, OrgRegistration, OrgRole,
    Preset, Targets,
};
use serde_json::{json, Value};

fn gen_files(config: &GenConfig, dir: &Path, format: FileFormat) -> GenReport {
    let mut targets = Targets {
        files: Some((dir.to_path_buf(), format)),
        engine: None,
        manifest_dir: dir.to_path_buf(),
    };
    generate(config, &mut targets, &mut |_| {}).unwrap()
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

/// Parses generated JSON text; the lone-surrogate escape (valid JSON, not valid Unicode) is
/// read as U+FFFD, as a lenient reader would.
fn parse(bytes: &[u8]) -> Value {
    let text = std::str::from_utf8(bytes)
        .unwrap()
        .replace("\\ud800", "\\ufffd");
    serde_json::from_str(&text).unwrap()
}

fn manifest(dir: &Path) -> Value {
    parse(&std::fs::read(dir.join("manifest.json")).unwrap())
}

fn canonical(id: &str) -> String {
    id.trim().to_lowercase()
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_differs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let config = GenConfig::new(Preset::Small, 42);
    gen_files(&config, a.path(), FileFormat::Json);
    gen_files(&config, b.path(), FileFormat::Json);
    gen_files(
        &GenConfig::new(Preset::Small, 43),
        c.path(),
        FileFormat::Json,
    );
    let (ta, tb, tc) = (tree(a.path()), tree(b.path()), tree(c.path()));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (path, bytes) in &ta {
        assert!(
            tb[path] == *bytes,
            "{} differs between two runs with one seed",
            path.display()
        );
    }
    assert!(ta.keys().any(|path| path.ends_with("dataset.json")));
    assert_ne!(
        ta[Path::new("manifest.json")],
        tc[Path::new("manifest.json")]
    );
    let dataset = ta
        .keys()
        .find(|path| path.ends_with("dataset.json"))
        .unwrap();
    assert_ne!(ta[dataset], tc[dataset]);
    // NDJSON is deterministic too.
    let d = tempfile::tempdir().unwrap();
    let e = tempfile::tempdir().unwrap();
    gen_files(&config, d.path(), FileFormat::Ndjson);
    gen_files(&config, e.path(), FileFormat::Ndjson);
    assert_eq!(tree(d.path()), tree(e.path()));
}

#[test]
fn small_has_every_case_with_real_ids_and_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let config = GenConfig::new(Preset::Small, 7);
    let report = gen_files(&config, dir.path(), FileFormat::Json);
    let manifest = manifest(dir.path());
    assert_eq!(manifest["format"], "threadmig-gen-manifest/1");
    assert_eq!(manifest["orgs"].as_array().unwrap().len(), 2);
    let total_events = manifest["totals"]["rows"]["context_events"]
        .as_u64()
        .unwrap();
    assert!((900..1300).contains(&total_events), "{total_events} events");

    let mut seen = HashSet::new();
    for org in manifest["orgs"].as_array().unwrap() {
        let slug = org["slug"].as_str().unwrap();
        let dataset = parse(&std::fs::read(dir.path().join(slug).join("dataset.json")).unwrap());
        // Counts in the manifest are the rows written.
        let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
        let mut all_canonical = HashSet::new();
        for (ns, rows) in dataset.as_object().unwrap() {
            let rows = rows.as_array().unwrap();
            assert_eq!(
                org["rows"][ns].as_u64(),
                Some(rows.len() as u64),
                "{slug} {ns}"
            );
            for row in rows {
                let id = row["id"].as_str().unwrap().to_string();
                all_canonical.insert(canonical(&id));
                ids.entry(ns.clone()).or_default().insert(id);
            }
        }
        for (ns, count) in org["rows"].as_object().unwrap() {
            assert_eq!(
                dataset[ns].as_array().map(|rows| rows.len() as u64),
                count.as_u64(),
                "{slug} {ns}"
            );
        }
        // Every case names rows that exist: its first id exactly, in its namespace.
        let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
        for case in org["cases"].as_array().unwrap() {
            let kind = case["kind"].as_str().unwrap();
            *per_kind.entry(kind.to_string()).or_insert(0) += 1;
            seen.insert(kind.to_string());
            let case_ids: Vec<&str> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap())
                .collect();
            assert!(!case_ids.is_empty(), "{case}");
            let ns = case["namespace"].as_str().unwrap();
            assert!(
                ids.get(ns).is_some_and(|set| set.contains(case_ids[0])),
                "{kind}: {} not in {ns}",
                case_ids[0]
            );
            for id in &case_ids[1..] {
                assert!(
                    all_canonical.contains(&canonical(id)),
                    "{kind}: {id} does not exist"
                );
            }
            let kind = CaseKind::from_id(kind).unwrap();
            assert_eq!(case["rule"], kind.rule());
        }
        let counts: BTreeMap<String, u64> = org["caseCounts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(kind, count)| (kind.clone(), count.as_u64().unwrap()))
            .collect();
        assert_eq!(per_kind, counts, "{slug}");
    }
    for kind in CaseKind::ALL.iter().filter(|kind| !kind.is_fleet()) {
        assert!(
            seen.contains(kind.id()),
            "case {} never injected in small",
            kind.id()
        );
    }
    // The report agrees with the manifest.
    let rows = report.total_rows();
    for (ns, count) in rows {
        assert_eq!(manifest["totals"]["rows"][ns.name()].as_u64(), Some(count));
    }
}

#[test]
fn ndjson_rows_match_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GenConfig::new(Preset::Small, 11);
    config.roles = OrgRole::PIPELINE.to_vec();
    config.orgs = 5;
    gen_files(&config, dir.path(), FileFormat::Ndjson);
    let manifest = manifest(dir.path());
    let roles: Vec<&str> = manifest["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| org["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "clean",
            "schema-conflict",
            "conversation-orphan",
            "missing-credentials",
            "standard"
        ]
    );
    for org in manifest["orgs"].as_array().unwrap() {
        let slug = org["slug"].as_str().unwrap();
        for (ns, count) in org["rows"].as_object().unwrap() {
            let text = std::fs::read(dir.path().join(slug).join(format!("{ns}.ndjson"))).unwrap();
            let lines = text
                .split(|byte| *byte == b'\n')
                .filter(|line| !line.is_empty())
                .count();
            assert_eq!(Some(lines as u64), count.as_u64(), "{slug} {ns}");
        }
        let kinds: HashSet<&str> = org["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| case["kind"].as_str().unwrap())
            .collect();
        match org["role"].as_str().unwrap() {
            "clean" => assert!(kinds.is_empty(), "clean org has cases {kinds:?}"),
            "schema-conflict" => assert_eq!(kinds, HashSet::from(["schema_duplicate_link"])),
            "conversation-orphan" => {
                assert_eq!(kinds, HashSet::from(["conversation_history_orphan"]))
            }
            "missing-credentials" => {
                assert_eq!(kinds, HashSet::from(["missing_instant_credentials"]))
            }
            _ => assert!(kinds.len() > 40),
        }
    }
}

#[test]
fn workspace_rows_read_back_match_the_manifest() {
    let engine = LocalEngine::in_memory().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = GenConfig::new(Preset::Small, 5);
    config.engine_compatible = true;
    config.roles = OrgRole::PIPELINE.to_vec();
    config.orgs = 5;
    let directory = engine.clone();
    let mut register = |org: OrgRegistration| -> Result<(), String> {
        directory
            .store()
            .upsert_org(&OrgRecord {
                org_id: org.org_id,
                name: org.name,
                slug: org.slug,
                app_id: org.app_id,
                credentials: if org.credentials == "present" {
                    OrgCredentials::Present
                } else {
                    OrgCredentials::Missing
                },
            })
            .map_err(|error| error.to_string())
    };
    let mut targets = Targets {
        files: Some((dir.path().to_path_buf(), FileFormat::Ndjson)),
        engine: Some(EngineTarget {
            api: &engine,
            register: &mut register,
            batch_size: 500,
        }),
        manifest_dir: dir.path().to_path_buf(),
    };
    let report = generate(&config, &mut targets, &mut |_| {}).unwrap();
    let manifest = manifest(dir.path());
    assert!(manifest["excludedCases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|case| case["kind"] == "id_uppercase"));
    let orgs = engine.store().orgs().unwrap();
    assert_eq!(orgs.len(), 5);
    for (summary, org) in report.orgs.iter().zip(manifest["orgs"].as_array().unwrap()) {
        let record = orgs
            .iter()
            .find(|record| record.org_id == summary.plan.org_id)
            .unwrap();
        if summary.plan.role == OrgRole::MissingCredentials {
            assert_eq!(record.credentials, OrgCredentials::Missing);
            assert!(record.app_id.is_none());
            continue;
        }
        let app_id = summary.app_id.clone().unwrap();
        assert_eq!(record.app_id.as_deref(), Some(app_id.as_str()));
        let token = engine
            .store()
            .org_admin_token(&summary.plan.org_id)
            .unwrap()
            .unwrap();
        let auth = AppAuth::new(&app_id, token);
        // Pushing thread V1 collides only in the schema-conflict org.
        let thread_v1 = BuiltinSchema::ThreadV1.load().unwrap().dsl().to_dsl_json();
        let plan = engine.schema_plan(
            &auth,
            &SchemaPushRequest {
                schema: thread_v1,
                check_types: true,
                supports_background_updates: true,
            },
        );
        match summary.plan.role {
            OrgRole::SchemaConflict => {
                let error = plan.unwrap_err();
                assert!(
                    error
                        .message
                        .contains("thread_contexts->thread: Duplicate entry"),
                    "{error}"
                );
            }
            _ => assert!(plan.is_ok(), "{}: {:?}", summary.plan.slug, plan.err()),
        }
        if summary.plan.role == OrgRole::ConversationOrphan {
            let case = &org["cases"][0];
            assert_eq!(case["kind"], "conversation_history_orphan");
            let key = case["detail"]["contextKey"].as_str().unwrap();
            let found = engine
                .query(
                    &auth,
                    &QueryRequest {
                        query: json!({"context_contexts": {"$": {"where": {"key": key}}}}),
                        inference: false,
                    },
                )
                .unwrap();
            assert_eq!(found["context_contexts"], json!([]));
            let messages = engine
                .query(&auth, &QueryRequest { query: json!({"whatsapp_messages": {"$": {"where": {"conversation": case["detail"]["conversation"]}}}}), inference: false })
                .unwrap();
            assert_eq!(
                messages["whatsapp_messages"].as_array().unwrap().len() as u64,
                case["detail"]["messages"].as_u64().unwrap()
            );
        }
        for (ns, count) in org["rows"].as_object().unwrap() {
            let result = engine
                .query(
                    &auth,
                    &QueryRequest {
                        query: json!({ ns.as_str(): {} }),
                        inference: false,
                    },
                )
                .unwrap();
            let rows = result[ns.as_str()].as_array().map(Vec::len).unwrap_or(0) as u64;
            assert_eq!(Some(rows), count.as_u64(), "{} {ns}", summary.plan.slug);
        }
    }
}

/// The workspace is written by a thread of its own while rows are made: a refused transaction
/// must still stop `gen` with that transaction's number, send nothing after it, and not hang.
#[test]
fn a_refused_transaction_stops_the_workspace_write_and_names_it() {
    let engine = LocalEngine::in_memory().unwrap();
    let failing = super::apply::Wrapped::new(&engine, Some((2, super::apply::Failure::Before)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = GenConfig::new(Preset::Small, 5);
    config.engine_compatible = true;
    config.roles = vec![OrgRole::Clean];
    config.orgs = 1;
    let mut registered = 0;
    let mut register = |_: OrgRegistration| -> Result<(), String> {
        registered += 1;
        Ok(())
    };
    let mut targets = Targets {
        files: None,
        engine: Some(EngineTarget {
            api: &failing,
            register: &mut register,
            batch_size: 50,
        }),
        manifest_dir: dir.path().to_path_buf(),
    };
    let error = generate(&config, &mut targets, &mut |_| {}).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, migration::gen::GenError::Target { .. }),
        "{text}"
    );
    assert!(text.contains("transaction 3 failed"), "{text}");
    assert!(text.contains("connection reset by peer"), "{text}");
    assert_eq!(
        failing.count(),
        3,
        "nothing is sent after the refused batch"
    );
    assert_eq!(
        registered, 0,
        "an org whose data was not written is not registered"
    );
}
