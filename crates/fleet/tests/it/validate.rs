//! The pre-migration validation bundle on the generated fleet (embedded engine, in memory):
//! the eight items and their evidence, the report's keys, not a single write on the target,
//! organisations without credentials or with a refused plan, and the non-blocking extract
//! rule (only with a target proven empty).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use fleet::matrix::TargetSchema;
use fleet::validate::{
    resolve_credentials, validate_org, Credentials, ValidateError, ValidateOptions, ValidateTarget,
    ValidationReport,
};
use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};
use instant_local::engine::LocalEngine;
use migration::evidence::{sha256_file, RunDir};
use migration::gen::OrgRole;
use serde_json::{json, Value};

use crate::matrix::{fleet, thread_v1};

/// Thread V1 plus the esolbay links the plan writes (`thread_items` -> `whatsappMessages`,
/// …), as the esolbay app's schema declares them: what the rehearsal's copy must accept.
pub fn bridge_target() -> TargetSchema {
    let mut target = thread_v1();
    migration::conversation::schema::add_bridge_schema(&mut target.schema).unwrap();
    target.sha256 = fleet::matrix::schema_sha256(&target.schema);
    target.source = "thread-v1-with-bridge.json".into();
    target
}

pub fn org_of(role: OrgRole) -> String {
    fleet()
        .orgs
        .iter()
        .find(|(_, r, _)| *r == role)
        .map(|(id, _, _)| id.clone())
        .unwrap()
}

pub fn rehearsal_engine() -> Result<Box<dyn InstantApi>, String> {
    LocalEngine::in_memory()
        .map(|engine| Box::new(engine) as Box<dyn InstantApi>)
        .map_err(|error| error.to_string())
}

pub struct FixedClock;

impl fleet::validate::Observer for FixedClock {
    fn now(&self) -> String {
        "2026-01-01T00:00:00Z".into()
    }
}

/// Reads go to the engine; every write is counted and refused.
pub struct NoWrites<'a> {
    pub inner: &'a dyn InstantApi,
    pub writes: AtomicUsize,
    /// Answers the extract's page queries (those without `fields`) with this error.
    pub fail_extract: Option<ApiError>,
}

impl<'a> NoWrites<'a> {
    pub fn new(inner: &'a dyn InstantApi) -> Self {
        NoWrites {
            inner,
            writes: AtomicUsize::new(0),
            fail_extract: None,
        }
    }

    fn refuse(&self, what: &str) -> ApiError {
        self.writes.fetch_add(1, Ordering::SeqCst);
        ApiError::new(
            400,
            "test-refused",
            format!("{what} on the target"),
            Value::Null,
        )
    }
}

impl InstantApi for NoWrites<'_> {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        if let Some(error) = &self.fail_extract {
            let paged_rows = request
                .query
                .as_object()
                .and_then(|forms| forms.values().next())
                .and_then(|form| form.get("$"))
                .is_some_and(|options| options.get("fields").is_none());
            if paged_rows {
                return Err(error.clone());
            }
        }
        self.inner.query(auth, request)
    }
    fn transact(&self, _: &AppAuth, _: &TransactRequest) -> Result<TransactResponse, ApiError> {
        Err(self.refuse("transact"))
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
        _: &AppAuth,
        _: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        Err(self.refuse("schema push"))
    }
    fn schema_steps_apply(
        &self,
        _: &AppAuth,
        _: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        Err(self.refuse("steps apply"))
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
        _: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        Err(self.refuse("app creation"))
    }
}

pub fn validate(
    api: &dyn InstantApi,
    credentials: &Credentials,
    org: &str,
    artifacts: &Path,
    run_id: &str,
) -> Result<ValidationReport, ValidateError> {
    let run = RunDir::new(artifacts, run_id).unwrap();
    let report_path = artifacts
        .join("reports")
        .join(fleet::validate::report_file_name(run_id, org));
    validate_org(
        &ValidateTarget {
            api,
            credentials,
            org_id: org,
            schema: &bridge_target(),
            run: &run,
            report_path: &report_path,
            rehearsal_engine: &rehearsal_engine,
        },
        &ValidateOptions::default(),
        &mut FixedClock,
    )
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

fn token_of(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Present(auth) => auth.admin_token.expose().to_string(),
        Credentials::Unusable { .. } => panic!("no credentials"),
    }
}

#[test]
fn clean_org_bundle_is_ok_with_eight_hashed_items_and_no_write_on_the_target() {
    let fleet = fleet();
    let org = org_of(OrgRole::Clean);
    let credentials = resolve_credentials(&fleet.engine, &org);
    let api = NoWrites::new(&fleet.engine);
    let dir = tempfile::tempdir().unwrap();
    let report = validate(&api, &credentials, &org, dir.path(), "pre-1").unwrap();
    assert_eq!(
        api.writes.load(Ordering::SeqCst),
        0,
        "no write reached the target"
    );
    assert!(report.ok, "{:?}", report.reasons);
    assert!(report.reasons.is_empty());

    let report_path = dir
        .path()
        .join("reports")
        .join(format!("pre-migration-validation.pre-1.{org}.json"));
    let document = read_json(&report_path);
    let keys: Vec<&str> = document
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "ok",
        "runId",
        "orgId",
        "targetAppId",
        "validation",
        "artifactsRoot",
    ] {
        assert!(keys.contains(&key), "report key {key}: {keys:?}");
    }
    assert_eq!(document["ok"], true);
    assert_eq!(document["runId"], "pre-1");
    assert_eq!(document["orgId"], org.as_str());
    let items: Vec<&str> = document["validation"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        items,
        [
            "schemaPull",
            "permsPull",
            "schemaPlan",
            "sourceExtract",
            "transform",
            "txPlan",
            "txDryRun",
            "verifyBefore"
        ]
    );
    let validation = &document["validation"];
    assert_eq!(validation["schemaPlan"]["summary"]["gate"], "safe");
    assert_eq!(validation["sourceExtract"]["nonBlockingFailure"], false);
    assert_eq!(validation["txPlan"]["destructiveOps"], 0);
    assert_eq!(validation["txDryRun"]["parsed"]["dryRun"], true);
    assert_eq!(
        validation["txDryRun"]["parsed"]["rehearsal"]["notPassing"],
        json!([])
    );

    // The counts before migration: the legacy rows the extract read, no thread rows yet.
    let extracted = &validation["sourceExtract"]["entityCounts"];
    let before = &validation["verifyBefore"]["entityCounts"];
    for namespace in [
        "context_contexts",
        "context_events",
        "story_executions",
        "story_steps",
        "story_parts",
    ] {
        assert_eq!(before[namespace], extracted[namespace], "{namespace}");
    }
    assert_eq!(validation["verifyBefore"]["threadRows"], 0);
    assert!(validation["verifyBefore"]["legacyRows"].as_u64().unwrap() > 0);

    // The plan's sha256 is the file's, and the dry run rehearsed that plan.
    let run_dir = dir.path().join("runs/pre-1");
    let (plan_sha, _) = sha256_file(&run_dir.join("03-apply/tx-plan.ndjson")).unwrap();
    assert_eq!(validation["txPlan"]["sha256"], plan_sha.as_str());
    assert_eq!(
        validation["txDryRun"]["parsed"]["sha256"],
        plan_sha.as_str()
    );

    // The eight items, each a manifest stage, and their files hashed in the manifest.
    let manifest = read_json(&run_dir.join("manifest.json"));
    for stage in [
        "schemaPull",
        "permsPull",
        "schemaPlan",
        "sourceExtract",
        "transform",
        "txPlan",
        "txDryRun",
        "verifyBefore",
    ] {
        assert_eq!(manifest["stages"][stage]["status"], "ok", "{stage}");
        assert_eq!(manifest["stages"][stage]["orgId"], org.as_str());
    }
    assert_eq!(manifest["stages"]["validation"]["status"], "completed");
    let listed: Vec<(String, String)> = manifest["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for path in [
        "01-extract/schema.pull.json",
        "01-extract/perms.pull.json",
        "01-extract/schema.plan.before-push.json",
        "01-extract/context_events.ndjson",
        "01-extract/source.extract.meta.json",
        "02-transform/thread_items.ndjson",
        "03-apply/tx-plan.ndjson",
        "03-apply/tx-plan.json",
        "03-apply/tx.dry-run.summary.json",
        "04-verify/rehearsal/verify.result.json",
        "04-verify/verify.before.json",
    ] {
        let (_, sha) = listed
            .iter()
            .find(|(listed, _)| listed == path)
            .unwrap_or_else(|| panic!("{path} not in the manifest"));
        assert_eq!(*sha, sha256_file(&run_dir.join(path)).unwrap().0, "{path}");
    }
    for (_, check) in report.validation.items() {
        for file in &check.files {
            assert!(run_dir.join(file).is_file(), "{file}");
        }
    }

    // No token anywhere.
    let token = token_of(&credentials);
    for file in files(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(token.len())
                .any(|window| window == token.as_bytes()),
            "{} holds the admin token",
            file.display()
        );
    }

    // The run id names one run: a second validation under it is refused, untouched.
    let again = validate(&api, &credentials, &org, dir.path(), "pre-1").unwrap_err();
    assert!(matches!(again, ValidateError::RunExists { .. }), "{again}");
}

#[test]
fn missing_credentials_org_is_not_ok_and_says_why() {
    let fleet = fleet();
    let org = org_of(OrgRole::MissingCredentials);
    let credentials = resolve_credentials(&fleet.engine, &org);
    assert!(matches!(credentials, Credentials::Unusable { .. }));
    let api = NoWrites::new(&fleet.engine);
    let dir = tempfile::tempdir().unwrap();
    let report = validate(&api, &credentials, &org, dir.path(), "pre-2").unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.issue_code.as_deref(),
        Some("missing_instant_credentials")
    );
    assert_eq!(report.reasons.len(), 1);
    assert!(
        report.reasons[0].starts_with("missing_instant_credentials: no usable Instant credentials"),
        "{:?}",
        report.reasons
    );
    assert_eq!(report.target_app_id, None);
    assert!(!report.target_admin_token_present);
    for (key, check) in report.validation.items() {
        assert!(!check.ok, "{key}");
        assert_eq!(
            check.skipped.as_deref(),
            Some("missing_instant_credentials (see reasons)"),
            "{key}"
        );
    }
    let manifest = read_json(&dir.path().join("runs/pre-2/manifest.json"));
    assert_eq!(manifest["stages"]["validation"]["status"], "failed");
    assert_eq!(
        manifest["stages"]["validation"]["issueCode"],
        "missing_instant_credentials"
    );
    assert!(dir
        .path()
        .join(format!("reports/pre-migration-validation.pre-2.{org}.json"))
        .is_file());
    assert_eq!(api.writes.load(Ordering::SeqCst), 0);

    // An org the directory does not know: a directory failure, not a crash.
    let unknown = resolve_credentials(&fleet.engine, "org_does_not_exist");
    let Credentials::Unusable { issue_code, .. } = &unknown else {
        panic!("an unknown org has no credentials");
    };
    assert_eq!(issue_code, "clerk_lookup_error");
}

#[test]
fn refused_plan_is_not_ok_with_its_issue_code() {
    let fleet = fleet();
    let org = org_of(OrgRole::SchemaConflict);
    let credentials = resolve_credentials(&fleet.engine, &org);
    let api = NoWrites::new(&fleet.engine);
    let dir = tempfile::tempdir().unwrap();
    let report = validate(&api, &credentials, &org, dir.path(), "pre-3").unwrap();
    assert!(!report.ok);
    assert_eq!(report.issue_code.as_deref(), Some("schema_duplicate_link"));
    let plan = &report.validation.schema_plan;
    assert_eq!((plan.ok, plan.status), (false, Some(400)));
    assert!(report.reasons.iter().any(|r| r.starts_with("schemaPlan: ")));
    // The backups and the refused plan are evidence too.
    let plan_file = dir
        .path()
        .join("runs/pre-3/01-extract/schema.plan.before-push.json");
    assert_eq!(read_json(&plan_file)["status"], 400);
    assert!(report.validation.schema_pull.ok && report.validation.perms_pull.ok);
    assert_eq!(api.writes.load(Ordering::SeqCst), 0);
}

fn query_refused(status: u16, message: &str) -> ApiError {
    ApiError::new(status, "validation-failed", message, Value::Null)
}

#[test]
fn a_non_blocking_extract_failure_blocks_while_legacy_rows_exist() {
    let fleet = fleet();
    let org = org_of(OrgRole::Clean);
    let credentials = resolve_credentials(&fleet.engine, &org);
    let dir = tempfile::tempdir().unwrap();

    let mut api = NoWrites::new(&fleet.engine);
    api.fail_extract = Some(query_refused(
        400,
        "Validation failed for query: context_events.context needs to be a link",
    ));
    let report = validate(&api, &credentials, &org, dir.path(), "pre-4").unwrap();
    let extract = &report.validation.source_extract;
    assert!(!report.ok);
    assert_eq!(extract.detail["matchesNonBlockingRule"], true);
    assert_eq!(extract.detail["nonBlockingFailure"], false);
    assert!(extract.detail["nonBlockingReason"]
        .as_str()
        .unwrap()
        .contains("legacy row(s) that could not be extracted"));
    assert_eq!(
        report.validation.transform.skipped.as_deref(),
        Some("the source extract failed")
    );
    let meta = read_json(
        &dir.path()
            .join("runs/pre-4/01-extract/source.extract.meta.json"),
    );
    assert_eq!(
        (
            meta["ok"].clone(),
            meta["status"].clone(),
            meta["nonBlockingFailure"].clone()
        ),
        (json!(false), json!(400), json!(false))
    );

    // Authentication failures never match the rule.
    api.fail_extract = Some(query_refused(401, "Validation failed for query"));
    let report = validate(&api, &credentials, &org, dir.path(), "pre-5").unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.validation.source_extract.detail["matchesNonBlockingRule"],
        false
    );
    assert_eq!(api.writes.load(Ordering::SeqCst), 0);
}

#[test]
fn a_non_blocking_extract_failure_on_a_target_without_legacy_rows_is_ok() {
    let engine = LocalEngine::in_memory().unwrap();
    let app = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "empty".into(),
            schema: None,
            rules: None,
        })
        .unwrap();
    let credentials = Credentials::Present(app.app.auth());
    let mut api = NoWrites::new(&engine);
    api.fail_extract = Some(query_refused(
        400,
        "The `context_events.createdAt` attribute is not indexed.",
    ));
    let dir = tempfile::tempdir().unwrap();
    let report = validate(&api, &credentials, "org_empty", dir.path(), "pre-6").unwrap();
    let extract = &report.validation.source_extract;
    assert!(!extract.ok);
    assert_eq!(extract.detail["nonBlockingFailure"], true);
    assert_eq!(report.validation.verify_before.detail["legacyRows"], 0);
    assert!(report.ok, "{:?}", report.reasons);
    assert_eq!(report.validation.tx_plan.detail["total"], 0);
    assert_eq!(api.writes.load(Ordering::SeqCst), 0);
}
