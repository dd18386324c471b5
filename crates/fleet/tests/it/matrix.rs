//! The org matrix on a generated fleet (embedded engine, in memory) and under injected
//! failures: every org gets its exact row, failures are rows, never a crash or a safe count.

use std::collections::HashMap;
use std::sync::OnceLock;

use fleet::issues::IssueCode;
use fleet::matrix::{
    run_matrix, Connection, ErrorKind, MatrixConfig, MatrixReport, MatrixRow, PlanStatus,
    TargetSchema, LISTING_ROW_ID,
};
use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};
use instant_local::engine::LocalEngine;
use instant_local::store::{OrgCredentials, OrgRecord};
use instant_schema::severity::{Gate, Severity};
use migration::gen::{
    generate, ContentMode, EngineTarget, GenConfig, OrgRegistration, OrgRole, Preset, Targets,
};
use org_directory::{
    AppCredentials, CredentialsOutcome, DirectoryError, Org, OrgDirectory, ResolvedOrg, Secret,
};
use serde_json::Value;

/// A generated fleet in an in-memory engine, with the role and app id of each org.
pub struct Fleet {
    pub engine: LocalEngine,
    /// (org id, role, app id) in generation order.
    pub orgs: Vec<(String, OrgRole, Option<String>)>,
}

impl Fleet {
    pub fn role_of(&self, org_id: &str) -> OrgRole {
        self.orgs
            .iter()
            .find(|(id, _, _)| id == org_id)
            .map(|(_, role, _)| *role)
            .unwrap()
    }

    /// `text` with every app id replaced by `<app:role>` (app ids are the server's, random).
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (_, role, app) in &self.orgs {
            if let Some(app) = app {
                text = text.replace(app, &format!("<app:{}>", role.as_str()));
            }
        }
        text
    }
}

/// The pipeline fleet (clean, schema-conflict, conversation-orphan, missing-credentials),
/// generated once per test binary.
pub fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| generate_fleet(&OrgRole::PIPELINE))
}

/// The pipeline fleet plus one `standard` org, generated once per test binary. Clean-data
/// apps are deployed typed, so only the standard app (untyped, with injected wrong-type
/// values) still plans critical `check-data-type` steps against thread V1.
pub fn fleet_with_standard() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let mut roles = OrgRole::PIPELINE.to_vec();
        roles.push(OrgRole::Standard);
        generate_fleet(&roles)
    })
}

/// One org per role, in that order, into a fresh in-memory engine and its directory.
fn generate_fleet(roles: &[OrgRole]) -> Fleet {
    let engine = LocalEngine::in_memory().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = GenConfig::new(Preset::Small, 7);
    config.roles = roles.to_vec();
    config.orgs = roles.len();
    config.engine_compatible = true;
    config.target_events = Some(40);
    config.content = ContentMode::Lean;
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
        files: None,
        engine: Some(EngineTarget {
            api: &engine,
            register: &mut register,
            batch_size: 500,
        }),
        manifest_dir: dir.path().to_path_buf(),
    };
    let report = generate(&config, &mut targets, &mut |_| {}).unwrap();
    let orgs = report
        .orgs
        .iter()
        .map(|org| (org.plan.org_id.clone(), org.plan.role, org.app_id.clone()))
        .collect();
    Fleet { engine, orgs }
}

pub fn config(concurrency: usize) -> MatrixConfig {
    MatrixConfig {
        concurrency,
        created_at: "2026-01-01T00:00:00Z".into(),
        connection: Connection {
            instant_api_uri: "embedded:<workspace>".into(),
            clerk_api_uri: None,
            workspace: Some("<workspace>".into()),
        },
        ..MatrixConfig::default()
    }
}

pub fn thread_v1() -> TargetSchema {
    TargetSchema::load("builtin:thread-v1").unwrap()
}

/// thread V1 without `document_documents`, whose typed attributes an untyped legacy app
/// holds untyped (so it would get critical `check-data-type` steps on them).
pub fn thread_v1_without_documents() -> TargetSchema {
    let mut target = thread_v1();
    target.schema.entities.shift_remove("document_documents");
    target.schema.links.retain(|_, link| {
        link.forward.on != "document_documents" && link.reverse.on != "document_documents"
    });
    target.sha256 = fleet::matrix::schema_sha256(&target.schema);
    target.source = "thread-v1-without-documents.json".into();
    target
}

/// The matrix of the pipeline fleet.
pub fn matrix_of(target: &TargetSchema) -> MatrixReport {
    matrix_of_fleet(fleet(), target)
}

pub fn matrix_of_fleet(fleet: &Fleet, target: &TargetSchema) -> MatrixReport {
    run_matrix(&config(4), target, &fleet.engine, &fleet.engine, &|_, _| {}).unwrap()
}

/// One line per row: what the row must be, without the random app id.
fn row_line(row: &MatrixRow, label: &str) -> String {
    let counts = &row.plan.summary.counts_by_severity;
    format!(
        "{label}: status={:?} gate={} issue={} plan={} blocking={} kind={:?} http={:?} steps={}/{}c/{}w creds={}/{}",
        row.plan.status,
        row.plan.gate.as_str(),
        row.issue_code(),
        row.action_plan.plan_id,
        row.action_plan.blocking,
        row.plan.error_kind,
        row.plan.http_status,
        row.plan.summary.total,
        counts.critical,
        counts.warning,
        row.instant.has_app_id,
        row.instant.has_admin_token,
    )
}

#[test]
fn generated_fleet_rows_against_thread_v1() {
    // The pipeline fleet plus a standard org: the clean-data apps were deployed typed and
    // plan safely; the standard app's untyped attributes still need critical type checks.
    let fleet = fleet_with_standard();
    let report = matrix_of_fleet(fleet, &thread_v1());
    let ids: Vec<&str> = report.rows.iter().map(|row| row.org.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows are ordered by org id");
    let mut lines: Vec<String> = report
        .rows
        .iter()
        .map(|row| row_line(row, fleet.role_of(&row.org.id).as_str()))
        .collect();
    lines.sort();
    expect_test::expect![[r#"
        clean: status=Ok gate=safe issue=plan_ok plan=OK-000 blocking=false kind=None http=None steps=110/0c/0w creds=true/true
        conversation-orphan: status=Ok gate=safe issue=plan_ok plan=OK-000 blocking=false kind=None http=None steps=110/0c/0w creds=true/true
        missing-credentials: status=Skipped gate=blocked issue=missing_instant_credentials plan=CREDS-001 blocking=true kind=None http=None steps=0/0c/0w creds=false/false
        schema-conflict: status=Error gate=blocked issue=schema_duplicate_link plan=SCH-001 blocking=true kind=Some(PlanError) http=Some(400) steps=0/0c/0w creds=true/true
        standard: status=Ok gate=blocked issue=plan_critical_steps plan=CRIT-001 blocking=true kind=None http=None steps=116/18c/0w creds=true/true"#]]
    .assert_eq(&lines.join("\n"));
    let summary = &report.summary;
    assert_eq!(
        (
            summary.total_orgs,
            summary.safe,
            summary.review_required,
            summary.blocked
        ),
        (5, 2, 0, 3)
    );
    assert_eq!(
        (
            summary.planned_ok,
            summary.planned_failed,
            summary.missing_instant_credentials
        ),
        (3, 1, 1)
    );
    assert_eq!(summary.with_instant_credentials, 4);
    assert!(!report.ok && !summary.all_safe);
    let row_of = |role: OrgRole| {
        report
            .rows
            .iter()
            .find(|row| fleet.role_of(&row.org.id) == role)
            .unwrap()
    };
    assert_eq!(
        row_of(OrgRole::SchemaConflict).reason,
        "the server refuses the target schema: thread_contexts->thread already taken by a link or attribute of the live schema"
    );
    let missing = row_of(OrgRole::MissingCredentials);
    assert_eq!(missing.plan.status, PlanStatus::Skipped);
    assert_eq!(
        missing.plan.reason.as_deref(),
        Some("missing_instant_credentials")
    );
    assert_eq!(
        missing.reason,
        "no usable Instant credentials: the workspace records no Instant credentials for this organization"
    );
    for role in [OrgRole::Clean, OrgRole::ConversationOrphan] {
        let row = row_of(role);
        assert_eq!(
            row.reason,
            "the server planned 110 step(s), none critical or warning (110 safe, 0 review)",
            "{}",
            role.as_str()
        );
        assert_eq!(row.plan.instructions.len(), 110);
        assert_eq!(
            row.plan.output.as_ref().unwrap()["steps"]
                .as_array()
                .unwrap()
                .len(),
            110
        );
    }
    let standard = row_of(OrgRole::Standard);
    assert_eq!(
        standard.reason,
        "18 critical step(s) can reject or rewrite existing data: check-data-type on thread_threads.createdAt, check-data-type on thread_threads.updatedAt, check-data-type on thread_threads.key (+15 more)"
    );
    assert_eq!(standard.plan.instructions.len(), 116);
    let critical: Vec<String> = standard
        .plan
        .instructions
        .iter()
        .filter(|step| step.severity == Severity::Critical)
        .map(|step| {
            format!(
                "{} {}",
                step.step_type,
                step.target.as_deref().unwrap_or("-")
            )
        })
        .collect();
    expect_test::expect![[r#"
        check-data-type thread_threads.createdAt
        check-data-type thread_threads.updatedAt
        check-data-type thread_threads.key
        check-data-type thread_threads.name
        check-data-type thread_threads.status
        check-data-type thread_contexts.createdAt
        check-data-type thread_contexts.updatedAt
        check-data-type thread_contexts.key
        check-data-type thread_contexts.status
        check-data-type document_documents.name
        check-data-type document_documents.mimeType
        check-data-type document_documents.size
        check-data-type document_documents.ownerId
        check-data-type document_documents.orgId
        check-data-type document_documents.createdAt
        check-data-type document_documents.processedAt
        check-data-type document_documents.updatedAt
        check-data-type document_documents.lastJobId"#]]
    .assert_eq(&critical.join("\n"));
}

#[test]
fn generated_fleet_rows_against_a_schema_the_clean_apps_take_safely() {
    let fleet = fleet();
    let report = matrix_of(&thread_v1_without_documents());
    let mut lines: Vec<String> = report
        .rows
        .iter()
        .map(|row| {
            format!(
                "{}: {} {}",
                fleet.role_of(&row.org.id).as_str(),
                row.plan.gate.as_str(),
                row.issue_code()
            )
        })
        .collect();
    lines.sort();
    expect_test::expect![[r#"
        clean: safe plan_ok
        conversation-orphan: safe plan_ok
        missing-credentials: blocked missing_instant_credentials
        schema-conflict: blocked schema_duplicate_link"#]]
    .assert_eq(&lines.join("\n"));
    assert_eq!((report.summary.safe, report.summary.blocked), (2, 2));
    assert!(!report.ok);
}

#[test]
fn output_is_the_same_whatever_the_pool_size_and_reads_back() {
    let fleet = fleet();
    let target = thread_v1();
    let one = run_matrix(
        &config(1),
        &target,
        &fleet.engine,
        &fleet.engine,
        &|_, _| {},
    )
    .unwrap();
    let mut many = run_matrix(
        &config(16),
        &target,
        &fleet.engine,
        &fleet.engine,
        &|_, _| {},
    )
    .unwrap();
    many.concurrency = one.concurrency;
    assert_eq!(one.to_json_bytes(), many.to_json_bytes());
    assert_eq!(one.to_markdown(), many.to_markdown());
    let text = String::from_utf8(one.to_json_bytes()).unwrap();
    assert_eq!(MatrixReport::from_json(&text).unwrap(), one);
    // The keys the gates and the status report read.
    let value: Value = serde_json::from_str(&text).unwrap();
    for pointer in [
        "/summary/blocked",
        "/summary/plannedFailed",
        "/rows/0/plan/gate",
        "/rows/0/actionPlan/planId",
        "/rows/0/actionPlan/issueCode",
    ] {
        assert!(value.pointer(pointer).is_some(), "{pointer}");
    }
}

#[test]
fn markdown_of_the_generated_fleet() {
    let fleet = fleet();
    let report = matrix_of(&thread_v1_without_documents());
    let markdown = fleet.redact(&report.to_markdown());
    insta::assert_snapshot!(markdown);
}

// ---------------------------------------------------------------------------------------------
// Failure injection

/// What the wrapped directory does for an org.
#[derive(Clone)]
enum DirectoryFault {
    Unauthorized,
    Transport,
    /// Credentials of the org's app id with this token.
    Token(String),
}

struct FaultyDirectory {
    inner: LocalEngine,
    faults: HashMap<String, DirectoryFault>,
    listing_fails: bool,
}

impl OrgDirectory for FaultyDirectory {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        if self.listing_fails {
            return Err(DirectoryError::Unauthorized {
                status: 401,
                message: "Unauthorized".into(),
            });
        }
        self.inner.list_orgs()
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        Ok(self.resolve(org_id)?.org)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        Ok(self.resolve(org_id)?.credentials)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        match self.faults.get(org_id) {
            Some(DirectoryFault::Unauthorized) => Err(DirectoryError::Unauthorized {
                status: 401,
                message: "Unauthorized".into(),
            }),
            Some(DirectoryFault::Transport) => Err(DirectoryError::Transport {
                operation: format!("GET /v1/organizations/{org_id}"),
                message: "connection refused".into(),
            }),
            Some(DirectoryFault::Token(token)) => {
                let mut resolved = self.inner.resolve(org_id)?;
                let app_id = resolved.credentials.present().unwrap().app_id.clone();
                resolved.credentials = CredentialsOutcome::Present(AppCredentials {
                    app_id,
                    admin_token: Secret::new(token.clone()),
                });
                Ok(resolved)
            }
            None => self.inner.resolve(org_id),
        }
    }
}

/// What the wrapped API does when planning for an app.
#[derive(Clone)]
enum ApiFault {
    Error(ApiError),
    /// The error echoes the admin token it was sent.
    EchoToken,
    Panic,
}

struct FaultyApi {
    inner: LocalEngine,
    faults: HashMap<String, ApiFault>,
}

impl InstantApi for FaultyApi {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.inner.query(auth, request)
    }
    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        self.inner.transact(auth, request)
    }
    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.inner.schema_pull(auth)
    }
    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        match self.faults.get(&auth.app_id) {
            Some(ApiFault::Error(error)) => Err(error.clone()),
            Some(ApiFault::EchoToken) => Err(ApiError::new(
                500,
                "unknown",
                format!("bad token {} in request", auth.admin_token.expose()),
                Value::Null,
            )),
            Some(ApiFault::Panic) => panic!("adapter bug"),
            None => self.inner.schema_plan(auth, request),
        }
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

/// A workspace of empty apps, one per org id, and the token of each.
fn small_fleet(org_ids: &[&str]) -> (LocalEngine, HashMap<String, (String, String)>) {
    let engine = LocalEngine::in_memory().unwrap();
    let mut apps = HashMap::new();
    for org_id in org_ids {
        let (app, token) = engine.store().create_app(org_id, false).unwrap();
        engine
            .store()
            .upsert_org(&OrgRecord {
                org_id: org_id.to_string(),
                name: format!("Name of {org_id}"),
                slug: org_id.to_string(),
                app_id: Some(app.id.clone()),
                credentials: OrgCredentials::Present,
            })
            .unwrap();
        apps.insert(org_id.to_string(), (app.id, token));
    }
    (engine, apps)
}

#[test]
fn every_injected_failure_is_a_blocked_row_with_its_code_and_reason() {
    let orgs = [
        "org_a_ok",
        "org_b_clerk401",
        "org_c_dir_down",
        "org_d_foreign_token",
        "org_e_unknown_token",
        "org_f_app_gone",
        "org_g_transport",
        "org_h_echo",
        "org_i_panic",
        "org_j_denied",
    ];
    let (engine, apps) = small_fleet(&orgs);
    let app = |org: &str| apps[org].0.clone();
    let directory = FaultyDirectory {
        inner: engine.clone(),
        faults: HashMap::from([
            ("org_b_clerk401".to_string(), DirectoryFault::Unauthorized),
            ("org_c_dir_down".to_string(), DirectoryFault::Transport),
            (
                "org_d_foreign_token".to_string(),
                DirectoryFault::Token(apps["org_a_ok"].1.clone()),
            ),
            (
                "org_e_unknown_token".to_string(),
                DirectoryFault::Token("00000000-0000-4000-8000-00000000dead".into()),
            ),
        ]),
        listing_fails: false,
    };
    let api = FaultyApi {
        inner: engine.clone(),
        faults: HashMap::from([
            (
                app("org_f_app_gone"),
                ApiFault::Error(ApiError::record_not_found("app", serde_json::Map::new())),
            ),
            (
                app("org_g_transport"),
                ApiFault::Error(ApiError::new(
                    0,
                    "transport",
                    "POST /superadmin/apps/x/schema/push/plan: connection refused",
                    Value::Null,
                )),
            ),
            (app("org_h_echo"), ApiFault::EchoToken),
            (app("org_i_panic"), ApiFault::Panic),
            (
                app("org_j_denied"),
                ApiFault::Error(ApiError::new(
                    400,
                    "permission-denied",
                    "Permission denied: not apps-read",
                    Value::Null,
                )),
            ),
        ]),
    };
    let mut config = config(3);
    config.org_ids = Some(
        orgs.iter()
            .map(|o| o.to_string())
            .chain(["org_zz_unknown".to_string()])
            .collect(),
    );
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let report = run_matrix(&config, &thread_v1(), &directory, &api, &|_, _| {}).unwrap();
    std::panic::set_hook(previous);
    let mut lines = Vec::new();
    for row in &report.rows {
        let app = row.instant.app_id.as_deref().map(|app| {
            apps.iter()
                .find(|(_, (id, _))| id == app)
                .map(|(org, _)| format!("<app of {org}>"))
                .unwrap()
        });
        lines.push(format!(
            "{} {:?} {} {} {:?} | {}",
            row.org.id,
            row.plan.status,
            row.plan.gate.as_str(),
            row.issue_code(),
            row.plan.error_kind,
            apps.iter()
                .fold(row.reason.clone(), |text, (org, (id, _))| text
                    .replace(id, &format!("<app of {org}>")))
        ));
        let _ = app;
    }
    expect_test::expect![[r#"
        org_a_ok Ok safe plan_ok None | the server planned 122 step(s), none critical or warning (122 safe, 0 review)
        org_b_clerk401 Error blocked clerk_lookup_error Some(ClerkLookupError) | the organisation directory could not resolve the org: the organisation directory refused the secret key (401): Unauthorized
        org_c_dir_down Error blocked clerk_lookup_error Some(ClerkLookupError) | the organisation directory could not resolve the org: the organisation directory could not be reached for GET /v1/organizations/org_c_dir_down: connection refused
        org_d_foreign_token Error blocked invalid_admin_token Some(PlanError) | the admin token belongs to another app, not <app of org_d_foreign_token> (the directory pairs this app id with another app's token)
        org_e_unknown_token Error blocked invalid_admin_token Some(PlanError) | the server does not accept the admin token of app <app of org_e_unknown_token> (401 record-not-found: Record not found: instant-user)
        org_f_app_gone Error blocked instant_app_not_found Some(PlanError) | the server has no app <app of org_f_app_gone> (400 record-not-found: Record not found: app)
        org_g_transport Error blocked unknown_plan_error Some(PlanError) | the Instant API could not be reached: POST /superadmin/apps/x/schema/push/plan: connection refused
        org_h_echo Error blocked unknown_plan_error Some(PlanError) | the server kept failing after retries (500 unknown: bad token <redacted> in request)
        org_i_panic Error blocked unknown_plan_error Some(PlanError) | planning this org failed inside threadmig (a bug): adapter bug
        org_j_denied Error blocked account_mismatch Some(AccountMismatch) | the server denies access to the app (400 permission-denied: Permission denied: not apps-read)
        org_zz_unknown Error blocked clerk_lookup_error Some(ClerkLookupError) | the organisation directory could not resolve the org: organization org_zz_unknown not found"#]]
    .assert_eq(&lines.join("\n"));
    let summary = &report.summary;
    assert_eq!(
        (summary.total_orgs, summary.safe, summary.blocked),
        (11, 1, 10)
    );
    assert_eq!((summary.planned_ok, summary.planned_failed), (1, 10));
    assert_eq!(summary.directory_errors, 3);
    assert_eq!(summary.account_mismatch_app_ids, [app("org_j_denied")]);
    assert!(!report.ok);
    // No token anywhere in what is written.
    let written = format!(
        "{}{}",
        String::from_utf8(report.to_json_bytes()).unwrap(),
        report.to_markdown()
    );
    for (_, token) in apps.values() {
        assert!(!written.contains(token.as_str()), "a token leaked");
    }
    assert!(!written.contains("00000000-0000-4000-8000-00000000dead"));
    let foreign = report
        .rows
        .iter()
        .find(|row| row.org.id == "org_d_foreign_token")
        .unwrap();
    assert_eq!(
        foreign.plan.error_detail.as_deref(),
        Some("admin-token-mismatch")
    );
    assert_eq!(
        foreign.plan_failure().map(|f| f.hint_reason),
        Some(Some("admin-token-mismatch".into()))
    );
}

#[test]
fn a_failed_listing_is_one_blocked_row_and_an_empty_fleet_is_not_safe() {
    let (engine, _) = small_fleet(&["org_a"]);
    let directory = FaultyDirectory {
        inner: engine.clone(),
        faults: HashMap::new(),
        listing_fails: true,
    };
    let report = run_matrix(&config(4), &thread_v1(), &directory, &engine, &|_, _| {}).unwrap();
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    assert_eq!(
        (
            row.org.id.as_str(),
            row.plan.gate,
            row.issue_code(),
            row.plan.error_kind
        ),
        (
            LISTING_ROW_ID,
            Gate::Blocked,
            IssueCode::ClerkLookupError,
            Some(ErrorKind::ClerkLookupError)
        )
    );
    assert_eq!(
        row.reason,
        "the organisation directory could not resolve the org: listing organisations failed: the organisation directory refused the secret key (401): Unauthorized"
    );
    assert_eq!(
        (report.summary.blocked, report.summary.planned_failed),
        (1, 1)
    );
    assert!(!report.ok);

    let empty = LocalEngine::in_memory().unwrap();
    let report = run_matrix(&config(4), &thread_v1(), &empty, &empty, &|_, _| {}).unwrap();
    assert!(report.rows.is_empty());
    assert!(!report.ok && !report.summary.all_safe);
    assert!(report
        .to_markdown()
        .contains("- Wave: **not safe (no organisation was planned)**"));
}

#[test]
fn bad_configuration_is_refused_up_front() {
    let (engine, _) = small_fleet(&["org_a"]);
    let mut bad = config(0);
    assert_eq!(
        run_matrix(&bad, &thread_v1(), &engine, &engine, &|_, _| {})
            .unwrap_err()
            .to_string(),
        "concurrency must be between 1 and 256, got 0"
    );
    bad.concurrency = 2;
    bad.org_ids = Some(vec![" ".into()]);
    assert_eq!(
        run_matrix(&bad, &thread_v1(), &engine, &engine, &|_, _| {})
            .unwrap_err()
            .to_string(),
        "--org-ids names no organisation"
    );
    // Duplicated ids are planned once.
    bad.org_ids = Some(vec!["org_a".into(), "org_a".into()]);
    let report = run_matrix(&bad, &thread_v1(), &engine, &engine, &|_, _| {}).unwrap();
    assert_eq!(report.rows.len(), 1);
    assert!(report.ok);
}
