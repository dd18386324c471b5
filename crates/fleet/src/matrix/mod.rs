//! The org matrix: for every organisation (or the ones asked for), resolve its app credentials
//! in the organisation directory, ask the server to plan pushing the target schema, grade the
//! plan and classify the row ([`crate::issues`]). Read-only: nothing is pushed or written to
//! any app.
//!
//! Organisations are planned concurrently by a bounded pool of threads (the ports are
//! synchronous); rows come out ordered by org id whatever the completion order, so the same
//! fleet gives the same report. One org's failure (unknown id, refused directory key, missing
//! credentials, unknown app, foreign token, transport error, even a panic in an adapter) is a
//! row with its issue code and a one-line reason, never an abort; such rows are `blocked` and
//! never count as safe.
//!
//! The report keeps the old `plan_schema_push_org_matrix` keys (`summary.blocked`,
//! `summary.plannedFailed`, `rows[].plan.gate`, `rows[].actionPlan.planId`, …), which the
//! hot-deploy gates and the status report read, with these changes on purpose:
//! - rows without credentials have gate `blocked` (was `missing-creds`, counted as review);
//! - `ok` is whether every org is safe (was always `true`), and an empty fleet is not safe;
//! - `rows[].plan.output` keeps only the plan's steps in wire form (the full response holds
//!   two copies of the app's schema; diagnose pulls what it needs);
//! - instructions carry their `action`, and every row has a one-line `reason`.

mod markdown;
mod pool;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use indexmap::IndexMap;
use instant_api::{ApiError, AppAuth, InstantApi, SchemaPushRequest};
use instant_schema::plan::instructions;
use instant_schema::severity::{Gate, Severity, SeverityCounts};
use instant_schema::{load_schema, LoadedSchema, Schema, SchemaError};
use org_directory::{CredentialsOutcome, DirectoryError, OrgDirectory};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::issues::{
    classify, text, ActionContext, ActionPlan, IssueCode, Observation, PlanFailure,
};

pub(crate) use pool::pool_map;

/// The report file names under `artifacts/reports/`.
pub const REPORT_JSON: &str = "schema-plan-org-matrix.json";
pub const REPORT_MD: &str = "schema-plan-org-matrix.md";

/// The pool size when none is given: enough to hide a round trip of ~100 ms behind the
/// others on a fleet of hundreds of orgs, small enough for any directory's rate limits.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// More threads than this only queue at the server.
pub const MAX_CONCURRENCY: usize = 256;

/// The org id of the row that stands for a failed organisation listing.
pub const LISTING_ROW_ID: &str = "*";

/// The schema to plan, loaded once, with what the report says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSchema {
    pub schema: Schema,
    /// As given (`builtin:thread-v1` or a path).
    pub source: String,
    /// `typescript`, `json`, `json:wrapped`, `server`, … (`schemaType`).
    pub schema_type: String,
    /// sha256 of the DSL serialisation, so diagnose can check it plans the same schema.
    pub sha256: String,
}

impl TargetSchema {
    /// Loads `source` (a schema file or `builtin:<name>`).
    pub fn load(source: &str) -> Result<TargetSchema, SchemaError> {
        Ok(TargetSchema::from_loaded(source, &load_schema(source)?))
    }

    pub fn from_loaded(source: &str, loaded: &LoadedSchema) -> TargetSchema {
        let schema = loaded.dsl().into_owned();
        TargetSchema {
            sha256: schema_sha256(&schema),
            schema,
            source: source.to_string(),
            schema_type: loaded.format.as_str().to_string(),
        }
    }

    /// The plan request for this schema, with the flags the platform SDK always sends.
    pub fn plan_request(&self) -> SchemaPushRequest {
        plan_request(&self.schema)
    }
}

/// The plan request for `schema`.
pub fn plan_request(schema: &Schema) -> SchemaPushRequest {
    SchemaPushRequest {
        schema: schema.to_dsl_json(),
        check_types: true,
        supports_background_updates: true,
    }
}

/// sha256 of a schema's DSL serialisation.
pub fn schema_sha256(schema: &Schema) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(&schema.to_dsl_json()).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Where the ports point, as the report records it (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The Instant API base URL, or `embedded:<workspace>` for the in-process engine.
    pub instant_api_uri: String,
    /// The Clerk Backend API base URL; `None` when the directory is a workspace.
    pub clerk_api_uri: Option<String>,
    /// The embedded workspace whose organisations are the directory.
    pub workspace: Option<String>,
}

/// Everything a matrix run needs besides the ports.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// Plan only these organisations; `None` lists every organisation of the directory.
    pub org_ids: Option<Vec<String>>,
    /// Threads planning at once (1..=[`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// Keep each plan's steps (wire form) in `rows[].plan.output`.
    pub keep_plan_steps: bool,
    pub env_name: String,
    /// The report's `createdAt` (the caller reads the clock; this module never does).
    pub created_at: String,
    pub run_id: Option<String>,
    pub connection: Connection,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        MatrixConfig {
            org_ids: None,
            concurrency: DEFAULT_CONCURRENCY,
            keep_plan_steps: true,
            env_name: "production".into(),
            created_at: String::new(),
            run_id: None,
            connection: Connection::default(),
        }
    }
}

/// A matrix that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("--org-ids names no organisation")]
    NoOrgIds,
    #[error("concurrency must be between 1 and {MAX_CONCURRENCY}, got {0}")]
    Concurrency(usize),
}

/// Splits an `--org-ids` text on `,` and `;`, trimming, dropping empty parts.
pub fn parse_org_ids(text: &str) -> Vec<String> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// One step of a plan as a row lists it (`index, type, severity, target, summary, action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInstruction {
    pub index: usize,
    #[serde(rename = "type")]
    pub step_type: String,
    pub severity: Severity,
    pub target: Option<String>,
    pub summary: String,
    pub action: String,
}

/// `type on target, …` for the first `max` steps of `severity` (`(+n more)` after).
pub fn name_steps(steps: &[StepInstruction], severity: Severity, max: usize) -> String {
    let matching: Vec<&StepInstruction> = steps
        .iter()
        .filter(|step| step.severity == severity)
        .collect();
    let mut names: Vec<String> = matching
        .iter()
        .take(max)
        .map(|step| match &step.target {
            Some(target) => format!("{} on {target}", step.step_type),
            None => step.step_type.clone(),
        })
        .collect();
    if matching.len() > max {
        names.push(format!("(+{} more)", matching.len() - max));
    }
    let mut text = names.join(", ");
    if let Some(last) = text.rfind(", (+") {
        text.replace_range(last..last + 2, " ");
    }
    text
}

/// `{total, countsBySeverity, countsByType}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    pub total: usize,
    pub counts_by_severity: SeverityCounts,
    pub counts_by_type: IndexMap<String, usize>,
}

/// `ok` (the server planned), `skipped` (no credentials) or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    Ok,
    Skipped,
    Error,
}

/// What kind of failure an `error` row is (the old `errorKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The organisation directory could not answer.
    ClerkLookupError,
    /// The server denies the credentials' account access to the app.
    AccountMismatch,
    /// Any other failed plan request.
    PlanError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub id: String,
    pub name: String,
    pub slug: String,
}

/// What the directory said about the org's app (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstantRef {
    pub app_id: Option<String>,
    pub has_app_id: bool,
    pub has_admin_token: bool,
}

/// A row's plan outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowPlan {
    pub status: PlanStatus,
    pub gate: Gate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub summary: StepSummary,
    #[serde(default)]
    pub instructions: Vec<StepInstruction>,
    /// `{steps: [[type, payload], …]}` of the plan response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Of a skipped row: `missing_instant_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The failure's message (one line, scrubbed of the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP status of a refused plan request (0: no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The server's error `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// `hint.reason` / `hint.record-type` of the refusal, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
}

/// One organisation of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixRow {
    pub org: OrgRef,
    pub instant: InstantRef,
    pub plan: RowPlan,
    pub action_plan: ActionPlan,
    /// Why the row is what it is, in one line.
    pub reason: String,
}

impl MatrixRow {
    pub fn issue_code(&self) -> IssueCode {
        self.action_plan.issue_code
    }

    /// The refusal as classification sees it (rebuilt from the row's fields).
    pub fn plan_failure(&self) -> Option<PlanFailure> {
        if self.plan.status != PlanStatus::Error
            || self.plan.error_kind == Some(ErrorKind::ClerkLookupError)
        {
            return None;
        }
        let detail = self.plan.error_detail.clone();
        let is_reason = detail.as_deref() == Some("admin-token-mismatch");
        Some(PlanFailure {
            status: self.plan.http_status.unwrap_or(0),
            error_type: self.plan.error_type.clone().unwrap_or_default(),
            message: self.plan.error.clone().unwrap_or_default(),
            record_type: if is_reason { None } else { detail.clone() },
            hint_reason: if is_reason { detail } else { None },
        })
    }
}

/// The report's `summary` (the old keys, plus `directoryErrors` and `allSafe`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixSummary {
    pub total_orgs: usize,
    pub with_instant_credentials: usize,
    pub missing_instant_credentials: usize,
    pub planned_ok: usize,
    pub planned_failed: usize,
    pub safe: usize,
    pub review_required: usize,
    pub blocked: usize,
    pub total_steps: usize,
    pub total_critical: usize,
    pub total_warning: usize,
    pub account_mismatch_rows: usize,
    pub account_mismatch_count: usize,
    pub account_mismatch_app_ids: Vec<String>,
    pub directory_errors: usize,
    /// At least one org, and every org safe.
    pub all_safe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountMismatchApp {
    pub app_id: String,
    pub org_id: String,
    pub org_name: String,
    pub org_slug: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionPlanCounts {
    pub counts_by_plan_id: BTreeMap<String, usize>,
    pub counts_by_issue_code: BTreeMap<String, usize>,
}

/// The whole matrix report (`schema-plan-org-matrix.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixReport {
    /// Every org safe (the old scripts wrote a constant `true`).
    pub ok: bool,
    pub env_name: String,
    pub created_at: String,
    #[serde(default)]
    pub run_id: Option<String>,
    pub instant_api_uri: String,
    #[serde(default)]
    pub clerk_api_uri: Option<String>,
    #[serde(default)]
    pub workspace: Option<String>,
    pub schema_source: String,
    pub schema_type: String,
    #[serde(default)]
    pub schema_sha256: String,
    #[serde(default)]
    pub concurrency: usize,
    pub summary: MatrixSummary,
    pub account_mismatch_apps: Vec<AccountMismatchApp>,
    pub action_plans: ActionPlanCounts,
    pub rows: Vec<MatrixRow>,
    #[serde(default)]
    pub meta: Value,
}

impl MatrixReport {
    pub fn connection(&self) -> Connection {
        Connection {
            instant_api_uri: self.instant_api_uri.clone(),
            clerk_api_uri: self.clerk_api_uri.clone(),
            workspace: self.workspace.clone(),
        }
    }

    /// The JSON document, pretty, with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The Markdown report.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// Reads a report written by [`MatrixReport::to_json_bytes`]; errors name the place.
    pub fn from_json(text: &str) -> Result<MatrixReport, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Progress of a pool: `(done, total)`.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Plans every organisation and builds the report.
pub fn run_matrix(
    config: &MatrixConfig,
    target: &TargetSchema,
    directory: &dyn OrgDirectory,
    api: &dyn InstantApi,
    progress: Progress<'_>,
) -> Result<MatrixReport, MatrixError> {
    if config.concurrency == 0 || config.concurrency > MAX_CONCURRENCY {
        return Err(MatrixError::Concurrency(config.concurrency));
    }
    let seeds: Vec<OrgRef> = match &config.org_ids {
        Some(ids) => {
            let ids: BTreeSet<&str> = ids
                .iter()
                .map(|id| id.trim())
                .filter(|id| !id.is_empty())
                .collect();
            if ids.is_empty() {
                return Err(MatrixError::NoOrgIds);
            }
            ids.into_iter()
                .map(|id| OrgRef {
                    id: id.to_string(),
                    name: String::new(),
                    slug: String::new(),
                })
                .collect()
        }
        None => match directory.list_orgs() {
            Ok(orgs) => {
                let unique: BTreeMap<String, OrgRef> = orgs
                    .into_iter()
                    .map(|org| {
                        (
                            org.id.clone(),
                            OrgRef {
                                id: org.id,
                                name: org.name,
                                slug: org.slug,
                            },
                        )
                    })
                    .collect();
                unique.into_values().collect()
            }
            Err(error) => {
                let row = listing_failed_row(&error, target);
                return Ok(build_report(config, target, vec![row]));
            }
        },
    };
    let request = target.plan_request();
    let planner = OrgPlanner {
        config,
        target,
        request: &request,
        directory,
        api,
    };
    let rows = pool_map(
        &seeds,
        config.concurrency,
        |seed| planner.plan(seed),
        |seed, panic| planner.panicked(seed, &panic),
        progress,
    );
    Ok(build_report(config, target, rows))
}

struct OrgPlanner<'a> {
    config: &'a MatrixConfig,
    target: &'a TargetSchema,
    request: &'a SchemaPushRequest,
    directory: &'a dyn OrgDirectory,
    api: &'a dyn InstantApi,
}

impl OrgPlanner<'_> {
    fn plan(&self, seed: &OrgRef) -> MatrixRow {
        let resolved = match self.directory.resolve(&seed.id) {
            Ok(resolved) => resolved,
            Err(error) => {
                return directory_failed_row(seed.clone(), &error.to_string(), self.target)
            }
        };
        let org = OrgRef {
            id: resolved.org.id.clone(),
            name: non_empty_or(resolved.org.name, &seed.name),
            slug: non_empty_or(resolved.org.slug, &seed.slug),
        };
        let credentials = match resolved.credentials {
            CredentialsOutcome::Present(credentials) => credentials,
            outcome => {
                let reason = outcome.reason().unwrap_or_default().to_string();
                return missing_credentials_row(org, &reason, self.target);
            }
        };
        let auth = AppAuth::new(&credentials.app_id, credentials.admin_token.expose());
        let endpoint = endpoint(&self.config.connection, &auth.app_id);
        let instant = InstantRef {
            app_id: Some(auth.app_id.clone()),
            has_app_id: true,
            has_admin_token: true,
        };
        match self.api.schema_plan(&auth, self.request) {
            Ok(response) => {
                let steps: Vec<StepInstruction> =
                    instructions(&response.steps, &response.current_schema)
                        .into_iter()
                        .map(|step| StepInstruction {
                            index: step.index,
                            step_type: step.step_type,
                            severity: step.severity,
                            target: step.target,
                            summary: step.summary,
                            action: step.action,
                        })
                        .collect();
                let counts: SeverityCounts = steps.iter().map(|step| step.severity).collect();
                let gate = Gate::from_counts(&counts);
                let mut by_type: IndexMap<String, usize> = IndexMap::new();
                for step in &steps {
                    *by_type.entry(step.step_type.clone()).or_insert(0) += 1;
                }
                let observation = Observation::Planned {
                    counts,
                    gate,
                    steps: &steps,
                };
                let plan = RowPlan {
                    status: PlanStatus::Ok,
                    gate,
                    endpoint,
                    summary: StepSummary {
                        total: counts.total(),
                        counts_by_severity: counts,
                        counts_by_type: by_type,
                    },
                    instructions: Vec::new(),
                    output: self
                        .config
                        .keep_plan_steps
                        .then(|| json!({ "steps": response.steps })),
                    reason: None,
                    error_kind: None,
                    error: None,
                    http_status: None,
                    error_type: None,
                    error_detail: None,
                };
                let mut row = finish_row(org, instant, plan, &observation, self.target);
                row.plan.instructions = steps;
                row
            }
            Err(error) => {
                let error = scrub(error, credentials.admin_token.expose());
                failed_plan_row(org, instant, endpoint, &error, self.target)
            }
        }
    }

    /// A bug in an adapter must not take the fleet down: the org becomes an error row.
    fn panicked(&self, seed: &OrgRef, panic: &str) -> MatrixRow {
        let failure = PlanFailure {
            status: 0,
            error_type: crate::issues::INTERNAL_ERROR_TYPE.into(),
            message: panic.to_string(),
            record_type: None,
            hint_reason: None,
        };
        let instant = InstantRef {
            app_id: None,
            has_app_id: false,
            has_admin_token: false,
        };
        let plan = error_plan(&failure, ErrorKind::PlanError, None);
        finish_row(
            seed.clone(),
            instant,
            plan,
            &Observation::PlanFailed(&failure),
            self.target,
        )
    }
}

fn non_empty_or(value: String, fallback: &str) -> String {
    if value.is_empty() {
        fallback.to_string()
    } else {
        value
    }
}

/// The route the plan went to, for the reader (the adapter builds the real request).
fn endpoint(connection: &Connection, app_id: &str) -> Option<String> {
    let uri = &connection.instant_api_uri;
    (uri.starts_with("http://") || uri.starts_with("https://")).then(|| {
        format!(
            "{}/superadmin/apps/{app_id}/schema/push/plan",
            uri.trim_end_matches('/')
        )
    })
}

/// The error without the token, should a server have echoed it.
fn scrub(mut error: ApiError, token: &str) -> ApiError {
    if !token.is_empty() {
        error.message = error.message.replace(token, "<redacted>");
    }
    error
}

fn context<'a>(
    org: &'a OrgRef,
    instant: &'a InstantRef,
    target: &'a TargetSchema,
) -> ActionContext<'a> {
    ActionContext {
        org_id: &org.id,
        app_id: instant.app_id.as_deref(),
        schema_source: &target.source,
    }
}

fn finish_row(
    org: OrgRef,
    instant: InstantRef,
    plan: RowPlan,
    observation: &Observation<'_>,
    target: &TargetSchema,
) -> MatrixRow {
    let code = classify(observation);
    let (reason, action_plan) = {
        let context = context(&org, &instant, target);
        (
            code.reason(observation, &context),
            code.action_plan(&context),
        )
    };
    let mut plan = plan;
    if plan.error_kind == Some(ErrorKind::PlanError) && code == IssueCode::AccountMismatch {
        plan.error_kind = Some(ErrorKind::AccountMismatch);
    }
    MatrixRow {
        org,
        instant,
        plan,
        action_plan,
        reason,
    }
}

fn error_plan(failure: &PlanFailure, kind: ErrorKind, endpoint: Option<String>) -> RowPlan {
    RowPlan {
        status: PlanStatus::Error,
        gate: Gate::Blocked,
        endpoint,
        summary: StepSummary::default(),
        instructions: Vec::new(),
        output: None,
        reason: None,
        error_kind: Some(kind),
        error: Some(text::one_line(&failure.message)),
        http_status: (kind != ErrorKind::ClerkLookupError).then_some(failure.status),
        error_type: (kind != ErrorKind::ClerkLookupError).then(|| failure.error_type.clone()),
        error_detail: failure
            .hint_reason
            .clone()
            .or_else(|| failure.record_type.clone()),
    }
}

fn failed_plan_row(
    org: OrgRef,
    instant: InstantRef,
    endpoint: Option<String>,
    error: &ApiError,
    target: &TargetSchema,
) -> MatrixRow {
    let failure = PlanFailure::from_api_error(error);
    let plan = error_plan(&failure, ErrorKind::PlanError, endpoint);
    finish_row(
        org,
        instant,
        plan,
        &Observation::PlanFailed(&failure),
        target,
    )
}

fn no_credentials() -> InstantRef {
    InstantRef {
        app_id: None,
        has_app_id: false,
        has_admin_token: false,
    }
}

fn directory_failed_row(org: OrgRef, error: &str, target: &TargetSchema) -> MatrixRow {
    let failure = PlanFailure {
        message: error.to_string(),
        ..PlanFailure::default()
    };
    let plan = error_plan(&failure, ErrorKind::ClerkLookupError, None);
    finish_row(
        org,
        no_credentials(),
        plan,
        &Observation::DirectoryFailed { error },
        target,
    )
}

fn listing_failed_row(error: &DirectoryError, target: &TargetSchema) -> MatrixRow {
    let org = OrgRef {
        id: LISTING_ROW_ID.into(),
        name: "(organisation listing)".into(),
        slug: String::new(),
    };
    directory_failed_row(
        org,
        &format!("listing organisations failed: {error}"),
        target,
    )
}

fn missing_credentials_row(org: OrgRef, reason: &str, target: &TargetSchema) -> MatrixRow {
    let plan = RowPlan {
        status: PlanStatus::Skipped,
        gate: Gate::Blocked,
        endpoint: None,
        summary: StepSummary::default(),
        instructions: Vec::new(),
        output: None,
        reason: Some(IssueCode::MissingInstantCredentials.as_str().into()),
        error_kind: None,
        error: None,
        http_status: None,
        error_type: None,
        error_detail: None,
    };
    finish_row(
        org,
        no_credentials(),
        plan,
        &Observation::MissingCredentials { reason },
        target,
    )
}

/// Summary, mismatch list and counts over rows already ordered by org id.
pub fn build_report(
    config: &MatrixConfig,
    target: &TargetSchema,
    rows: Vec<MatrixRow>,
) -> MatrixReport {
    let mut summary = MatrixSummary {
        total_orgs: rows.len(),
        ..MatrixSummary::default()
    };
    let mut mismatch_apps = Vec::new();
    let mut mismatch_ids = BTreeSet::new();
    let mut counts = ActionPlanCounts::default();
    for row in &rows {
        if row.instant.has_app_id && row.instant.has_admin_token {
            summary.with_instant_credentials += 1;
        }
        match row.plan.status {
            PlanStatus::Ok => {
                summary.planned_ok += 1;
                summary.total_steps += row.plan.summary.total;
                summary.total_critical += row.plan.summary.counts_by_severity.critical;
                summary.total_warning += row.plan.summary.counts_by_severity.warning;
            }
            PlanStatus::Skipped => summary.missing_instant_credentials += 1,
            PlanStatus::Error => summary.planned_failed += 1,
        }
        match row.plan.gate {
            Gate::Safe => summary.safe += 1,
            Gate::Review => summary.review_required += 1,
            Gate::Blocked => summary.blocked += 1,
        }
        match row.plan.error_kind {
            Some(ErrorKind::AccountMismatch) => {
                summary.account_mismatch_rows += 1;
                if let Some(app_id) = &row.instant.app_id {
                    if mismatch_ids.insert(app_id.clone()) {
                        mismatch_apps.push(AccountMismatchApp {
                            app_id: app_id.clone(),
                            org_id: row.org.id.clone(),
                            org_name: row.org.name.clone(),
                            org_slug: row.org.slug.clone(),
                            error: row.plan.error.clone().unwrap_or_default(),
                        });
                    }
                }
            }
            Some(ErrorKind::ClerkLookupError) => summary.directory_errors += 1,
            _ => {}
        }
        *counts
            .counts_by_plan_id
            .entry(row.action_plan.plan_id.clone())
            .or_insert(0) += 1;
        *counts
            .counts_by_issue_code
            .entry(row.issue_code().as_str().to_string())
            .or_insert(0) += 1;
    }
    summary.account_mismatch_count = mismatch_ids.len();
    summary.account_mismatch_app_ids = mismatch_ids.into_iter().collect();
    summary.all_safe = summary.total_orgs > 0 && summary.safe == summary.total_orgs;
    MatrixReport {
        ok: summary.all_safe,
        env_name: config.env_name.clone(),
        created_at: config.created_at.clone(),
        run_id: config.run_id.clone(),
        instant_api_uri: config.connection.instant_api_uri.clone(),
        clerk_api_uri: config.connection.clerk_api_uri.clone(),
        workspace: config.connection.workspace.clone(),
        schema_source: target.source.clone(),
        schema_type: target.schema_type.clone(),
        schema_sha256: target.sha256.clone(),
        concurrency: config.concurrency,
        summary,
        account_mismatch_apps: mismatch_apps,
        action_plans: counts,
        rows,
        // No dotenv file is ever loaded; the keys stay for readers of the old reports.
        meta: json!({"envFilesLoaded": [], "envFilesFailed": [], "envAliasesApplied": []}),
    }
}

/// Writes a JSON report and its Markdown twin: both are fully written to temporary files
/// before either is renamed into place, so a failure leaves no half-written file and never a
/// new JSON without its Markdown.
pub fn write_report_pair(
    json_path: &Path,
    json: &[u8],
    md_path: &Path,
    md: &str,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut json_file = migration::io::AtomicFile::create(json_path)?;
    json_file.writer().write_all(json)?;
    let json_file = json_file.finish()?;
    let mut md_file = migration::io::AtomicFile::create(md_path)?;
    md_file.writer().write_all(md.as_bytes())?;
    let md_file = md_file.finish()?;
    // The JSON is what gates and later commands read: it lands last, only after its twin.
    md_file.commit()?;
    json_file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step_type: &str, target: Option<&str>) -> StepInstruction {
        StepInstruction {
            index: 1,
            step_type: step_type.into(),
            severity: Severity::of(step_type),
            target: target.map(str::to_string),
            summary: String::new(),
            action: String::new(),
        }
    }

    #[test]
    fn org_ids_split_and_steps_are_named() {
        assert_eq!(parse_org_ids(" a, b;;c ,"), ["a", "b", "c"]);
        assert!(parse_org_ids(" , ;").is_empty());
        let steps = [
            step("unique", Some("a.b")),
            step("add-attr", Some("a.c")),
            step("required", None),
            step("check-data-type", Some("a.d")),
        ];
        assert_eq!(
            name_steps(&steps, Severity::Critical, 2),
            "unique on a.b, required (+1 more)"
        );
        assert_eq!(name_steps(&steps, Severity::Warning, 2), "");
    }

    #[test]
    fn endpoints_only_for_http_backends() {
        let http = Connection {
            instant_api_uri: "http://127.0.0.1:8888/".into(),
            ..Connection::default()
        };
        assert_eq!(
            endpoint(&http, "app").as_deref(),
            Some("http://127.0.0.1:8888/superadmin/apps/app/schema/push/plan")
        );
        let embedded = Connection {
            instant_api_uri: "embedded:/ws".into(),
            ..Connection::default()
        };
        assert_eq!(endpoint(&embedded, "app"), None);
    }

    #[test]
    fn write_report_pair_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let (json, md) = (dir.path().join("r/a.json"), dir.path().join("r/a.md"));
        write_report_pair(&json, b"{}\n", &md, "# A\n").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("r"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.json", "a.md"]);
        // A target that cannot be written (a directory in the way) fails without a trace.
        std::fs::create_dir_all(dir.path().join("s/b.md")).unwrap();
        assert!(write_report_pair(
            &dir.path().join("s/b.json"),
            b"{}",
            &dir.path().join("s/b.md"),
            "x"
        )
        .is_err());
        let names: Vec<String> = std::fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["b.md"]);
    }
}
