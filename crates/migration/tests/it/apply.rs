//! Apply: content after apply, approval by sha256, destructive steps, crash and resume,
//! idempotency, phases, and clean stops on server errors. Also the fixtures the tx plan tests
//! share: a small generated org, transformed once per test process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use instant_api::*;
use instant_local::engine::LocalEngine;
use instant_local::store::{OrgCredentials, OrgRecord};
use instant_schema::{BuiltinSchema, Cardinality, Link, LinkEnd, Schema};
use migration::apply::{
    apply, content_digest, read_journal, ApplyError, ApplyOptions, ApplyPaths, ApplySummary,
    JOURNAL_FILE, LOCK_FILE, RESULT_FILE,
};
use migration::gen::{
    generate, EngineTarget, FileFormat, GenConfig, OrgRegistration, Preset, Targets,
};
use migration::run::{run, Config, Input};
use migration::transform::Options;
use migration::txplan::{build_plan, PlanError, PlanOptions, PlanSummary, PLAN_FILE};
use migration::TargetNamespace;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A fresh directory under the target's test scratch space. The first call also removes what
/// earlier test processes left there (the shared fixtures live as long as their process).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static SWEEP: OnceLock<()> = OnceLock::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    SWEEP.get_or_init(|| {
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("migration-apply-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                let alive = Path::new("/proc").join(pid.to_string()).exists();
                if pid != std::process::id() && !alive {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    });
    let dir = root.join(format!(
        "migration-apply-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes a scratch directory when the test ends (also when it fails).
pub struct Scratch(pub PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const EVENTS: u64 = 120;
pub const SEED: u64 = 11;

fn gen_config(seed: u64) -> GenConfig {
    let mut config = GenConfig::new(Preset::Small, seed);
    config.orgs = 1;
    config.engine_compatible = true;
    config.target_events = Some(EVENTS);
    // A pre-existing thread_contexts row holding a legacy context's key collides on the
    // unique key at apply; the transform does not resolve that case, so it stays out of the
    // data these tests apply.
    config
        .rates
        .set(migration::gen::CaseKind::PreexistingThreadContextKey, 0.0);
    config
}

/// Generated legacy files of one org (NDJSON per namespace), once per process.
pub fn legacy_files() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("legacy");
        let mut targets = Targets {
            files: Some((dir.clone(), FileFormat::Ndjson)),
            engine: None,
            manifest_dir: dir.clone(),
        };
        let report = generate(&gen_config(SEED), &mut targets, &mut |_| {}).unwrap();
        dir.join(&report.orgs[0].plan.slug)
    })
}

/// Transforms `extract` into `<run>/02-transform`.
pub fn transform(extract: &Path, run_dir: &Path) -> PathBuf {
    let out = run_dir.join("02-transform");
    run(&Config {
        input: Input::ExtractDir(extract.to_path_buf()),
        out_dir: out.clone(),
        options: Options::default(),
        sort_budget: 8 << 20,
    })
    .unwrap();
    out
}

/// The shared transform output, once per process.
pub fn transformed() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| transform(legacy_files(), &scratch("run")))
}

/// A run folder of its own (its 02-transform copied from the shared one) with a built plan.
pub struct Planned {
    pub _scratch: Scratch,
    pub run: PathBuf,
    pub apply_dir: PathBuf,
    pub plan: PathBuf,
    pub summary: PlanSummary,
}

pub fn planned(name: &str, batch_size: usize) -> Planned {
    let run = scratch(name);
    let transform_dir = run.join("02-transform");
    std::fs::create_dir_all(&transform_dir).unwrap();
    for entry in std::fs::read_dir(transformed()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, transform_dir.join(path.file_name().unwrap())).unwrap();
    }
    let apply_dir = run.join("03-apply");
    let summary = build_plan(
        &transform_dir,
        &apply_dir,
        &PlanOptions {
            batch_size,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    Planned {
        plan: apply_dir.join(PLAN_FILE),
        _scratch: Scratch(run.clone()),
        run,
        apply_dir,
        summary,
    }
}

/// The target schema of a migrated esolbay app: what it had, plus thread V1, plus the
/// esolbay link `thread_items.whatsappMessages`.
pub fn target_schema(current: Schema) -> Schema {
    let mut schema = current;
    let thread = BuiltinSchema::ThreadV1.load().unwrap().dsl().into_owned();
    for (name, entity) in thread.entities {
        schema.entities.insert(name, entity);
    }
    for (name, link) in thread.links {
        schema.links.insert(name, link);
    }
    schema
        .entities
        .entry("whatsapp_messages".into())
        .or_default();
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
    schema
}

pub fn push_target_schema(api: &dyn InstantApi, auth: &AppAuth) {
    let current = api.schema_pull(auth).unwrap().schema.to_dsl();
    api.schema_push(
        auth,
        &SchemaPushRequest {
            schema: target_schema(current).to_dsl_json(),
            check_types: false,
            supports_background_updates: false,
        },
    )
    .unwrap();
}

/// A fresh in-memory engine with one empty app carrying the target schema.
pub fn target_app() -> (LocalEngine, AppAuth) {
    let engine = LocalEngine::in_memory().unwrap();
    let (app, token) = engine.store().create_app("target", false).unwrap();
    let auth = AppAuth::new(&app.id, token);
    push_target_schema(&engine, &auth);
    (engine, auth)
}

pub fn thread_namespaces() -> Vec<&'static str> {
    TargetNamespace::ALL.iter().map(|ns| ns.as_str()).collect()
}

pub fn digest(api: &dyn InstantApi, auth: &AppAuth) -> String {
    content_digest(api, auth, &thread_namespaces(), 250)
        .unwrap()
        .sha256
}

pub fn options(sha: &str) -> ApplyOptions {
    ApplyOptions {
        approved_sha256: sha.to_string(),
        allow_destructive: false,
        concurrency: 4,
        resume: false,
    }
}

pub fn paths(planned: &Planned) -> ApplyPaths {
    ApplyPaths {
        plan: planned.plan.clone(),
        dir: planned.apply_dir.clone(),
    }
}

pub fn run_apply(
    api: &dyn InstantApi,
    auth: &AppAuth,
    paths: &ApplyPaths,
    options: &ApplyOptions,
) -> Result<ApplySummary, ApplyError> {
    apply(api, auth, paths, options, &mut |_| {})
}

/// The content a clean apply of the shared plan gives (computed once).
fn clean_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let planned = planned("clean", 40);
        let (engine, auth) = target_app();
        run_apply(
            &engine,
            &auth,
            &paths(&planned),
            &options(&planned.summary.sha256),
        )
        .unwrap();
        digest(&engine, &auth)
    })
}

// ---------------------------------------------------------------------------------------------
// An InstantApi wrapper that counts, fails and records

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Failure {
    /// Transacts after the first `k` succeed fail without reaching the engine.
    Before,
    /// Transact number `k + 1` is committed and then reported failed (a lost answer); the
    /// ones after it fail without reaching the engine.
    AfterCommit,
}

pub struct Wrapped<'a> {
    pub inner: &'a dyn InstantApi,
    pub transacts: AtomicUsize,
    pub fail: Option<(usize, Failure)>,
    /// (op of the batch's first step, started) in call order.
    pub events: Mutex<Vec<(String, bool)>>,
    pub batches_seen: Mutex<Vec<Value>>,
}

impl<'a> Wrapped<'a> {
    pub fn new(inner: &'a dyn InstantApi, fail: Option<(usize, Failure)>) -> Self {
        Wrapped {
            inner,
            transacts: AtomicUsize::new(0),
            fail,
            events: Mutex::new(Vec::new()),
            batches_seen: Mutex::new(Vec::new()),
        }
    }

    pub fn count(&self) -> usize {
        self.transacts.load(Ordering::SeqCst)
    }
}

impl InstantApi for Wrapped<'_> {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.inner.query(auth, request)
    }
    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        let n = self.transacts.fetch_add(1, Ordering::SeqCst);
        let op = request.steps[0][0].as_str().unwrap_or("").to_string();
        self.events.lock().unwrap().push((op.clone(), true));
        self.batches_seen
            .lock()
            .unwrap()
            .push(request.steps[0].clone());
        let lost = || ApiError::new(0, "transport", "connection reset by peer", Value::Null);
        let result = match self.fail {
            Some((k, Failure::Before)) if n >= k => Err(lost()),
            Some((k, Failure::AfterCommit)) if n == k => {
                self.inner.transact(auth, request).unwrap();
                Err(lost())
            }
            Some((k, Failure::AfterCommit)) if n > k => Err(lost()),
            _ => self.inner.transact(auth, request),
        };
        self.events.lock().unwrap().push((op, false));
        result
    }
    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.inner.schema_pull(auth)
    }
    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        self.inner.schema_plan(auth, request)
    }
    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.inner.schema_push(auth, request)
    }
    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.inner.schema_steps_apply(auth, request)
    }
    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        self.inner.perms_pull(auth)
    }
    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        self.inner.indexing_job_group(auth, group_id)
    }
    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        self.inner.indexing_job(auth, job_id)
    }
    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        self.inner.create_ephemeral_app(request)
    }
}

fn journal_batches(dir: &Path) -> Vec<u64> {
    read_journal(dir)
        .unwrap()
        .entries
        .iter()
        .map(|entry| entry.batch)
        .collect()
}

fn assert_no_batch_twice(dir: &Path) {
    let batches = journal_batches(dir);
    let unique: BTreeSet<u64> = batches.iter().copied().collect();
    assert_eq!(
        unique.len(),
        batches.len(),
        "a batch journaled twice: {batches:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Content

/// Reads every entity of a namespace with its forward links as id sets.
fn entities(
    api: &dyn InstantApi,
    auth: &AppAuth,
    ns: &str,
    labels: &[&str],
) -> HashMap<String, serde_json::Map<String, Value>> {
    let mut node = serde_json::Map::new();
    for label in labels {
        node.insert((*label).into(), json!({"$": {"fields": ["id"]}}));
    }
    let result = api
        .query(
            auth,
            &QueryRequest {
                query: json!({ ns: Value::Object(node) }),
                inference: false,
            },
        )
        .unwrap();
    result[ns]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row = row.as_object().unwrap().clone();
            (row["id"].as_str().unwrap().to_string(), row)
        })
        .collect()
}

#[test]
fn apply_writes_exactly_the_transform_output_into_the_generated_app() {
    // The org as generated into an engine: legacy rows, esolbay rows, pre-existing thread rows.
    let engine = LocalEngine::in_memory().unwrap();
    let scratch_dir = Scratch(scratch("generated"));
    let directory = engine.clone();
    let mut register = |org: OrgRegistration| -> Result<(), String> {
        directory
            .store()
            .upsert_org(&OrgRecord {
                org_id: org.org_id,
                name: org.name,
                slug: org.slug,
                app_id: org.app_id,
                credentials: OrgCredentials::Present,
            })
            .map_err(|error| error.to_string())
    };
    let gen_dir = scratch_dir.0.join("gen");
    let mut targets = Targets {
        files: Some((gen_dir.clone(), FileFormat::Ndjson)),
        engine: Some(EngineTarget {
            api: &engine,
            register: &mut register,
            batch_size: 500,
        }),
        manifest_dir: gen_dir.clone(),
    };
    let report = generate(&gen_config(SEED), &mut targets, &mut |_| {}).unwrap();
    let org = &report.orgs[0];
    let token = engine
        .store()
        .org_admin_token(&org.plan.org_id)
        .unwrap()
        .unwrap();
    let auth = AppAuth::new(org.app_id.clone().unwrap(), token);
    push_target_schema(&engine, &auth);

    let run_dir = scratch_dir.0.join("run");
    let transform_dir = transform(&gen_dir.join(&org.plan.slug), &run_dir);
    let apply_dir = run_dir.join("03-apply");
    let summary = build_plan(
        &transform_dir,
        &apply_dir,
        &PlanOptions {
            batch_size: 64,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let applied = run_apply(
        &engine,
        &auth,
        &ApplyPaths {
            plan: apply_dir.join(PLAN_FILE),
            dir: apply_dir.clone(),
        },
        &options(&summary.sha256),
    )
    .unwrap();
    assert_eq!(applied.batches_committed, summary.batches);
    assert_eq!(applied.steps_applied, summary.steps);
    assert!(applied.complete && !applied.resumed);

    // Every target row is in the app with exactly its attributes, every link intent present.
    let mut links: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(transform_dir.join("links.ndjson"))
        .unwrap()
        .lines()
    {
        let link: Value = serde_json::from_str(line).unwrap();
        links
            .entry((
                link["from_ns"].as_str().unwrap().into(),
                link["from_id"].as_str().unwrap().into(),
                link["label"].as_str().unwrap().into(),
            ))
            .or_default()
            .insert(link["to_id"].as_str().unwrap().into());
    }
    let mut existing_ids: BTreeSet<String> = BTreeSet::new();
    for ns in thread_namespaces().into_iter().chain(["whatsapp_messages"]) {
        existing_ids.extend(entities(&engine, &auth, ns, &[]).into_keys());
    }
    let mut checked_rows = 0;
    for ns in TargetNamespace::ALL {
        let labels: BTreeSet<&str> = links
            .keys()
            .filter(|(from, _, _)| from == ns.as_str())
            .map(|(_, _, label)| label.as_str())
            .collect();
        let labels: Vec<&str> = labels.into_iter().collect();
        let stored = entities(&engine, &auth, ns.as_str(), &labels);
        for line in std::fs::read_to_string(transform_dir.join(ns.file_name()))
            .unwrap()
            .lines()
        {
            let row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            let id = row["id"].as_str().unwrap();
            let found = stored
                .get(id)
                .unwrap_or_else(|| panic!("{ns} {id} missing after apply"));
            for (name, value) in &row {
                assert_eq!(found.get(name), Some(value), "{ns} {id}.{name}");
            }
            for label in &labels {
                let expected = links
                    .get(&(ns.as_str().into(), id.into(), (*label).into()))
                    .cloned()
                    .unwrap_or_default();
                let actual: BTreeSet<String> = found
                    .get(*label)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|target| target["id"].as_str().unwrap().to_string())
                    .collect();
                // A link whose target is no entity of the app (an esolbay row the org never
                // had, or a row the transform did not migrate) is stored but never read back.
                let existing: BTreeSet<String> = expected
                    .iter()
                    .filter(|target| existing_ids.contains(*target))
                    .cloned()
                    .collect();
                assert_eq!(actual, existing, "{ns} {id}.{label}");
            }
            checked_rows += 1;
        }
    }
    assert_eq!(
        checked_rows as u64, summary.steps_by_op["update"],
        "one update step per row"
    );

    // The same content, whatever the concurrency: a second app of the same legacy data applied
    // with one batch in flight gives the same digest.
    let first = digest(&engine, &auth);
    let engine2 = LocalEngine::in_memory().unwrap();
    let directory2 = engine2.clone();
    let mut register2 = |org: OrgRegistration| -> Result<(), String> {
        directory2
            .store()
            .upsert_org(&OrgRecord {
                org_id: org.org_id,
                name: org.name,
                slug: org.slug,
                app_id: org.app_id,
                credentials: OrgCredentials::Present,
            })
            .map_err(|error| error.to_string())
    };
    let mut targets = Targets {
        files: None,
        engine: Some(EngineTarget {
            api: &engine2,
            register: &mut register2,
            batch_size: 500,
        }),
        manifest_dir: scratch_dir.0.join("gen2"),
    };
    let report2 = generate(&gen_config(SEED), &mut targets, &mut |_| {}).unwrap();
    let org2 = &report2.orgs[0];
    let auth2 = AppAuth::new(
        org2.app_id.clone().unwrap(),
        engine2
            .store()
            .org_admin_token(&org2.plan.org_id)
            .unwrap()
            .unwrap(),
    );
    push_target_schema(&engine2, &auth2);
    let apply_dir2 = scratch_dir.0.join("run2/03-apply");
    std::fs::create_dir_all(&apply_dir2).unwrap();
    std::fs::copy(apply_dir.join(PLAN_FILE), apply_dir2.join(PLAN_FILE)).unwrap();
    run_apply(
        &engine2,
        &auth2,
        &ApplyPaths {
            plan: apply_dir2.join(PLAN_FILE),
            dir: apply_dir2,
        },
        &ApplyOptions {
            concurrency: 1,
            ..options(&summary.sha256)
        },
    )
    .unwrap();
    assert_eq!(digest(&engine2, &auth2), first);

    // The result file says what happened, with the app id and never a token.
    let result: Value =
        serde_json::from_slice(&std::fs::read(apply_dir.join(RESULT_FILE)).unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["appId"], json!(auth.app_id));
    assert_eq!(result["batchesCommitted"], json!(summary.batches));
    assert_eq!(result["sha256"], json!(summary.sha256));
    assert!(
        !String::from_utf8(std::fs::read(apply_dir.join(RESULT_FILE)).unwrap())
            .unwrap()
            .contains(auth.admin_token.expose())
    );
}

#[test]
fn a_plan_edited_by_one_byte_is_refused_before_any_transact() {
    let planned = planned("edited", 40);
    let mut bytes = std::fs::read(&planned.plan).unwrap();
    // Flip one byte inside a value: still a valid plan, but not the approved one.
    let at = bytes
        .windows(9)
        .position(|w| w == b"\"channel\"")
        .expect("an item in the plan")
        + 12;
    bytes[at] ^= 0x01;
    std::fs::write(&planned.plan, &bytes).unwrap();

    let (engine, auth) = target_app();
    let counting = Wrapped::new(&engine, None);
    let error = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap_err();
    match &error {
        ApplyError::ShaMismatch {
            approved, actual, ..
        } => {
            assert_eq!(approved, &planned.summary.sha256);
            assert_ne!(actual, &planned.summary.sha256);
        }
        other => panic!("expected a sha256 mismatch, got {other}"),
    }
    assert_eq!(counting.count(), 0);
    assert!(!planned.apply_dir.join(JOURNAL_FILE).exists());
    assert!(!planned.apply_dir.join(RESULT_FILE).exists());
    assert!(!planned.apply_dir.join(LOCK_FILE).exists());
    // A partial approval (a prefix) is no approval either.
    let error = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256[..12]),
    )
    .unwrap_err();
    assert!(matches!(error, ApplyError::ShaMismatch { .. }), "{error}");
    assert_eq!(counting.count(), 0);
}

#[test]
fn destructive_steps_are_refused_unless_allowed() {
    let planned = planned("destructive", 40);
    // A plan given by hand: the built plan plus a batch deleting one of its items.
    let text = std::fs::read_to_string(&planned.plan).unwrap();
    let item_id = text
        .split("[\"update\",\"thread_items\",\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let hand = planned.run.join("hand-plan.ndjson");
    std::fs::write(
        &hand,
        format!(
            "{text}{{\"batch\":{},\"steps\":[[\"delete\",\"thread_items\",\"{item_id}\"]]}}\n",
            planned.summary.batches + 1
        ),
    )
    .unwrap();
    let sha = migration::evidence::sha256_file(&hand).unwrap().0;
    let hand_paths = ApplyPaths {
        plan: hand.clone(),
        dir: planned.apply_dir.clone(),
    };
    let (engine, auth) = target_app();
    let counting = Wrapped::new(&engine, None);
    let error = run_apply(&counting, &auth, &hand_paths, &options(&sha)).unwrap_err();
    match &error {
        ApplyError::Plan(PlanError::Destructive {
            total, first_batch, ..
        }) => {
            assert_eq!(*total, 1);
            assert_eq!(*first_batch, planned.summary.batches + 1);
        }
        other => panic!("expected a destructive refusal, got {other}"),
    }
    assert!(error.to_string().contains("delete 1"), "{error}");
    assert_eq!(counting.count(), 0);

    let summary = run_apply(
        &counting,
        &auth,
        &hand_paths,
        &ApplyOptions {
            allow_destructive: true,
            ..options(&sha)
        },
    )
    .unwrap();
    assert_eq!(summary.batches_committed, planned.summary.batches + 1);
    let items = entities(&engine, &auth, "thread_items", &[]);
    assert!(!items.contains_key(&item_id), "the delete step ran last");
    assert_eq!(
        items.len() as u64,
        planned.summary.steps_by_namespace["thread_items"]["update"] - 1
    );
}

#[test]
fn a_crash_after_k_batches_resumes_to_the_clean_content_with_no_batch_twice() {
    let clean = clean_digest();
    let batches = planned("probe", 40).summary.batches as usize;
    assert!(
        batches >= 8,
        "the fixture should have several batches ({batches})"
    );
    for (k, failure) in [
        (0, Failure::Before),
        (1, Failure::AfterCommit),
        (3, Failure::Before),
        (batches / 2, Failure::AfterCommit),
        (batches - 1, Failure::Before),
        (batches - 1, Failure::AfterCommit),
    ] {
        let planned = planned("crash", 40);
        let (engine, auth) = target_app();
        let failing = Wrapped::new(&engine, Some((k, failure)));
        let error = run_apply(
            &failing,
            &auth,
            &paths(&planned),
            &options(&planned.summary.sha256),
        )
        .unwrap_err();
        let ApplyError::Batch {
            committed, error, ..
        } = &error
        else {
            panic!("k={k}: expected a batch failure, got {error}");
        };
        assert_eq!(error.error_type, "transport");
        assert_eq!(
            *committed as usize, k,
            "k={k} {failure:?}: journaled batches"
        );
        assert_eq!(journal_batches(&planned.apply_dir).len(), k);
        assert!(
            !planned.apply_dir.join(LOCK_FILE).exists(),
            "the lock is released"
        );
        let result: Value =
            serde_json::from_slice(&std::fs::read(planned.apply_dir.join(RESULT_FILE)).unwrap())
                .unwrap();
        assert_eq!(result["ok"], false);
        assert_eq!(result["error"]["type"], "transport");

        // Without --resume a partly applied plan is not continued (and nothing is sent).
        let counting = Wrapped::new(&engine, None);
        if k > 0 {
            let error = run_apply(
                &counting,
                &auth,
                &paths(&planned),
                &options(&planned.summary.sha256),
            )
            .unwrap_err();
            assert!(
                matches!(error, ApplyError::Interrupted { committed, .. } if committed as usize == k),
                "{error}"
            );
            assert_eq!(counting.count(), 0);
        }
        let resumed = run_apply(
            &counting,
            &auth,
            &paths(&planned),
            &ApplyOptions {
                resume: true,
                ..options(&planned.summary.sha256)
            },
        )
        .unwrap();
        assert_eq!(resumed.resumed, k > 0);
        assert_eq!(resumed.batches_skipped as usize, k);
        assert_eq!(resumed.batches_committed as usize, batches - k);
        assert_eq!(
            counting.count(),
            batches - k,
            "k={k}: skipped batches are not sent"
        );
        assert!(resumed.complete);
        assert_no_batch_twice(&planned.apply_dir);
        assert_eq!(journal_batches(&planned.apply_dir).len(), batches);
        assert_eq!(digest(&engine, &auth), clean, "k={k} {failure:?}");
    }
}

#[test]
fn a_torn_journal_line_is_ignored_and_cut_before_the_next_entry() {
    let clean = clean_digest();
    let planned = planned("torn", 40);
    let (engine, auth) = target_app();
    let failing = Wrapped::new(&engine, Some((5, Failure::Before)));
    run_apply(
        &failing,
        &auth,
        &paths(&planned),
        &ApplyOptions {
            concurrency: 1,
            ..options(&planned.summary.sha256)
        },
    )
    .unwrap_err();
    // A crash while appending batch 6's entry (batch 6 itself committed).
    let journal = planned.apply_dir.join(JOURNAL_FILE);
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"batch\":6,\"txId\":9");
    std::fs::write(&journal, &text).unwrap();
    let state = read_journal(&planned.apply_dir).unwrap();
    assert!(state.torn);
    assert_eq!(state.entries.len(), 5);

    let summary = run_apply(
        &engine,
        &auth,
        &paths(&planned),
        &ApplyOptions {
            resume: true,
            ..options(&planned.summary.sha256)
        },
    )
    .unwrap();
    assert_eq!(summary.batches_skipped, 5);
    let state = read_journal(&planned.apply_dir).unwrap();
    assert!(!state.torn, "the torn tail was cut, every line reads");
    assert_eq!(state.entries.len() as u64, planned.summary.batches);
    assert_no_batch_twice(&planned.apply_dir);
    assert_eq!(digest(&engine, &auth), clean);
}

#[test]
fn a_finished_plan_is_never_sent_again_and_a_lost_journal_rewrites_the_same_data() {
    let clean = clean_digest();
    let planned = planned("again", 40);
    let (engine, auth) = target_app();
    run_apply(
        &engine,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap();
    let journal_before = std::fs::read(planned.apply_dir.join(JOURNAL_FILE)).unwrap();

    let counting = Wrapped::new(&engine, None);
    let again = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap();
    assert_eq!(counting.count(), 0, "no transact for a finished plan");
    assert_eq!(again.batches_committed, 0);
    assert_eq!(again.steps_applied, 0);
    assert_eq!(again.batches_skipped, planned.summary.batches);
    assert!(again.resumed && again.complete);
    assert_eq!(
        std::fs::read(planned.apply_dir.join(JOURNAL_FILE)).unwrap(),
        journal_before
    );

    // The journal lost: every batch is sent again, and the data stays what it was.
    std::fs::remove_file(planned.apply_dir.join(JOURNAL_FILE)).unwrap();
    let replay = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap();
    assert_eq!(counting.count() as u64, planned.summary.batches);
    assert_eq!(replay.batches_committed, planned.summary.batches);
    assert_eq!(digest(&engine, &auth), clean);
}

#[test]
fn link_batches_start_only_after_every_entity_batch_committed() {
    let planned = planned("phases", 25);
    let (engine, auth) = target_app();
    let recording = Wrapped::new(&engine, None);
    run_apply(
        &recording,
        &auth,
        &paths(&planned),
        &ApplyOptions {
            concurrency: 4,
            ..options(&planned.summary.sha256)
        },
    )
    .unwrap();
    let events = recording.events.lock().unwrap().clone();
    let updates = events
        .iter()
        .filter(|(op, start)| op == "update" && *start)
        .count();
    assert_eq!(
        updates as u64,
        planned.summary.batches - link_batches(&planned)
    );
    let first_link = events
        .iter()
        .position(|(op, start)| op == "link" && *start)
        .expect("link batches");
    let updates_ended_before = events[..first_link]
        .iter()
        .filter(|(op, start)| op == "update" && !*start)
        .count();
    assert_eq!(
        updates_ended_before, updates,
        "a link batch started while an entity batch was in flight"
    );
    // And batches of one phase did overlap (the concurrency is real).
    let mut in_flight = 0i32;
    let mut most = 0;
    for (_, start) in &events {
        in_flight += if *start { 1 } else { -1 };
        most = most.max(in_flight);
    }
    assert!(most >= 2, "never two batches in flight");
}

fn link_batches(planned: &Planned) -> u64 {
    std::fs::read_to_string(&planned.plan)
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"steps\":[[\"link\""))
        .count() as u64
}

#[test]
fn a_validation_error_stops_cleanly_naming_the_batch_and_is_not_retried() {
    let planned = planned("refused", 40);
    // An app without the thread schema: the server refuses to invent the attributes.
    let engine = LocalEngine::in_memory().unwrap();
    let (app, token) = engine.store().create_app("bare", false).unwrap();
    let auth = AppAuth::new(&app.id, token);
    let counting = Wrapped::new(&engine, None);
    let error = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap_err();
    let ApplyError::Batch {
        batch,
        error: api_error,
        committed,
        ..
    } = &error
    else {
        panic!("expected a batch failure, got {error}");
    };
    assert_eq!(api_error.status, 400);
    assert_eq!(api_error.error_type, "validation-failed");
    assert!(
        api_error
            .message
            .contains("Attributes are missing in your schema"),
        "{api_error}"
    );
    assert_eq!(*committed, 0);
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("batch {batch} of {}", planned.summary.batches)),
        "{text}"
    );
    assert!(text.contains("--resume"), "{text}");
    // Each batch is tried once: only those in flight when the first failed were sent.
    let seen = counting.batches_seen.lock().unwrap().clone();
    assert!(counting.count() <= 4, "{} transacts", counting.count());
    let unique: BTreeSet<String> = seen.iter().map(|step| step.to_string()).collect();
    assert_eq!(unique.len(), seen.len(), "a batch was retried");
    assert!(journal_batches(&planned.apply_dir).is_empty());
    // Nothing was written to the app.
    let items = entities(&engine, &auth, "thread_items", &[]);
    assert!(items.is_empty());
}

#[test]
fn a_journal_of_another_plan_and_a_held_lock_are_refused() {
    let planned = planned("other", 40);
    let (engine, auth) = target_app();
    std::fs::write(
        planned.apply_dir.join(JOURNAL_FILE),
        format!(
            "{{\"batch\":1,\"txId\":1,\"steps\":40,\"plan\":\"{}\"}}\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let counting = Wrapped::new(&engine, None);
    let error = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap_err();
    assert!(
        matches!(error, ApplyError::JournalOfAnotherPlan { .. }),
        "{error}"
    );
    // Rebuilding the plan next to that journal is refused too (it would orphan it).
    let rebuilt = build_plan(
        &planned.run.join("02-transform"),
        &planned.apply_dir,
        &PlanOptions {
            batch_size: 41,
            ..PlanOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(rebuilt, PlanError::JournalOfAnotherPlan { .. }),
        "{rebuilt}"
    );
    std::fs::remove_file(planned.apply_dir.join(JOURNAL_FILE)).unwrap();

    // A lock held by a live process (this one) is respected ...
    std::fs::write(
        planned.apply_dir.join(LOCK_FILE),
        std::process::id().to_string(),
    )
    .unwrap();
    let error = run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap_err();
    assert!(matches!(error, ApplyError::Locked { .. }), "{error}");
    assert_eq!(counting.count(), 0);
    // ... one left by a process that is gone is taken over.
    std::fs::write(planned.apply_dir.join(LOCK_FILE), "4294967295").unwrap();
    run_apply(
        &counting,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
    )
    .unwrap();
    assert!(!planned.apply_dir.join(LOCK_FILE).exists());
    assert_eq!(counting.count() as u64, planned.summary.batches);
}

#[test]
fn progress_reports_every_batch_with_a_rate() {
    let planned = planned("progress", 40);
    let (engine, auth) = target_app();
    let mut seen = Vec::new();
    apply(
        &engine,
        &auth,
        &paths(&planned),
        &options(&planned.summary.sha256),
        &mut |p| seen.push(*p),
    )
    .unwrap();
    assert_eq!(seen.len() as u64, planned.summary.batches + 1);
    let last = seen.last().unwrap();
    assert_eq!(last.batches_done, planned.summary.batches);
    assert_eq!(last.steps_done, planned.summary.steps);
    assert_eq!(last.steps_total, planned.summary.steps);
    assert!(last.steps_per_second() > 0.0);
    assert_eq!(last.eta(), Some(std::time::Duration::ZERO));
    assert!(seen.windows(2).all(|w| w[0].steps_done < w[1].steps_done));
}
