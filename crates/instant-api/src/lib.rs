//! The `InstantApi` port: everything threadmig asks of an InstantDB server, as typed requests,
//! typed responses and one typed error that keeps the server's envelope.
//!
//! Two adapters implement it: the embedded engine (`instant-local`, in-process) and the HTTP
//! adapter (real service, or `threadmig serve`). **Everything above the port is written against
//! this trait only**, so the path rehearsed locally is the path run against production.
//!
//! The port is synchronous: the embedded engine is SQLite, and callers get concurrency from
//! threads with bounded pools, which keeps the code above the port free of an async runtime.

// The error keeps the whole server envelope (hint included) by design; errors are the rare
// path, so their size does not matter next to losing what the server said.
#![allow(clippy::result_large_err)]

pub mod http;

use std::fmt;

use instant_schema::plan::PlanStep;
use instant_schema::{ServerAttr, ServerSchema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Secrets (admin tokens) are [`http_client::Secret`]: never shown by `Debug` or `Display`.
pub use http_client::Secret;

/// Which app a call is for and the admin token that proves the right to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAuth {
    pub app_id: String,
    pub admin_token: Secret,
}

impl AppAuth {
    pub fn new(app_id: impl Into<String>, admin_token: impl Into<String>) -> Self {
        AppAuth {
            app_id: app_id.into(),
            admin_token: Secret::new(admin_token),
        }
    }
}

/// `POST /admin/query` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The InstaQL query object.
    pub query: Value,
    /// `inference?`: has-one links come back as an object (or null) instead of an array.
    #[serde(rename = "inference?", default)]
    pub inference: bool,
}

/// `POST /admin/transact` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactRequest {
    /// User-facing steps (`["update", etype, eid, {attrs}]`, …), kept as JSON because their
    /// validation and its exact errors belong to the server.
    pub steps: Vec<Value>,
    /// `throw-on-missing-attrs?`: refuse to auto-create attributes.
    #[serde(rename = "throw-on-missing-attrs?", default)]
    pub throw_on_missing_attrs: bool,
}

/// `POST /admin/transact` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactResponse {
    #[serde(rename = "tx-id")]
    pub tx_id: i64,
}

/// Body of schema push plan and apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaPushRequest {
    /// The schema in the DSL serialisation (`{entities, links, rooms}`).
    pub schema: Value,
    #[serde(default)]
    pub check_types: bool,
    #[serde(default)]
    pub supports_background_updates: bool,
}

/// `POST …/schema/steps/apply` body: client-computed steps, `delete-attr` allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsApplyRequest {
    pub steps: Vec<PlanStep>,
}

/// `GET /dash/apps/:id/schema/pull` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaPullResponse {
    pub schema: ServerSchema,
    /// Every attribute, system ones included.
    #[serde(default)]
    pub attrs: Vec<ServerAttr>,
    #[serde(rename = "app-title", default)]
    pub app_title: Option<String>,
}

/// `POST …/schema/push/plan` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaPlanResponse {
    #[serde(rename = "new-schema")]
    pub new_schema: ServerSchema,
    #[serde(rename = "current-schema")]
    pub current_schema: ServerSchema,
    #[serde(rename = "current-attrs", default)]
    pub current_attrs: Vec<ServerAttr>,
    pub steps: Vec<PlanStep>,
}

/// The indexing jobs an apply created, all in one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexingJobGroup {
    #[serde(rename = "group-id")]
    pub group_id: String,
    pub jobs: Vec<IndexingJob>,
}

/// An indexing job in the polling format (`job->client-format`). Unknown columns are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexingJob {
    pub id: String,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub attr_id: Option<String>,
    #[serde(default)]
    pub attr_name: Option<String>,
    pub job_type: String,
    pub job_status: String,
    #[serde(default)]
    pub job_stage: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IndexingJob {
    /// `completed` and `errored` are the states clients wait for.
    pub fn is_terminal(&self) -> bool {
        matches!(self.job_status.as_str(), "completed" | "errored")
    }
}

/// Schema push apply and steps apply response: the plan keys (push only) plus what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaApplyResponse {
    #[serde(
        rename = "new-schema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub new_schema: Option<ServerSchema>,
    #[serde(
        rename = "current-schema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_schema: Option<ServerSchema>,
    #[serde(
        rename = "current-attrs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_attrs: Option<Vec<ServerAttr>>,
    pub steps: Vec<PlanStep>,
    /// `{}` when no attribute step ran.
    #[serde(default)]
    pub transaction: Value,
    #[serde(rename = "indexing-jobs", default)]
    pub indexing_jobs: Option<IndexingJobGroup>,
}

/// `GET …/indexing-jobs/group/:group_id` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexingJobsResponse {
    pub jobs: Vec<IndexingJob>,
}

/// `GET …/indexing-jobs/:job_id` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexingJobResponse {
    pub job: IndexingJob,
}

/// `GET /dash/apps/:id/perms/pull` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermsPullResponse {
    pub perms: Option<Value>,
}

/// `POST /dash/apps/ephemeral` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EphemeralAppRequest {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Value>,
}

/// An app row as the server returns it, with its admin token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub creator_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(rename = "admin-token")]
    pub admin_token: String,
}

impl fmt::Debug for AppRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRecord")
            .field("id", &self.id)
            .field("title", &self.title)
            .field("status", &self.status)
            .field("admin_token", &"<redacted>")
            .finish()
    }
}

impl AppRecord {
    pub fn auth(&self) -> AppAuth {
        AppAuth::new(&self.id, &self.admin_token)
    }
}

/// `POST /dash/apps/ephemeral` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EphemeralAppResponse {
    pub app: AppRecord,
    pub expires_ms: i64,
}

/// An error as InstantDB reports it: the envelope `{type, message, hint, trace-id?}` and the
/// HTTP status it came with. Transport failures (no response at all) have `status` 0 and type
/// `transport`.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("{status} {error_type}: {message}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    #[serde(rename = "type")]
    pub error_type: String,
    pub message: String,
    #[serde(default)]
    pub hint: Value,
    #[serde(rename = "trace-id", default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, error_type: &str, message: impl Into<String>, hint: Value) -> Self {
        ApiError {
            status,
            error_type: error_type.to_string(),
            message: message.into(),
            hint,
            trace_id: None,
        }
    }

    /// `validation-failed`, 400: `Validation failed for <input_type>[: <messages>]` with the
    /// hint `{data-type, input, errors}`, as the server's `throw-validation-err!` builds it.
    pub fn validation(input_type: &str, input: Value, errors: Vec<Value>) -> Self {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|error| error.get("message").and_then(Value::as_str))
            .collect();
        let message = if messages.is_empty() {
            format!("Validation failed for {input_type}")
        } else {
            format!(
                "Validation failed for {input_type}: {}",
                messages.join(", ")
            )
        };
        ApiError::new(
            400,
            "validation-failed",
            message,
            serde_json::json!({"data-type": input_type, "input": input, "errors": errors}),
        )
    }

    /// `record-not-found`, 400: `Record not found: <record_type>`.
    pub fn record_not_found(record_type: &str, extra_hint: Map<String, Value>) -> Self {
        let mut hint = Map::new();
        hint.insert("record-type".into(), Value::String(record_type.into()));
        hint.extend(extra_hint);
        ApiError::new(
            400,
            "record-not-found",
            format!("Record not found: {record_type}"),
            Value::Object(hint),
        )
    }

    /// The envelope as the server writes it.
    pub fn envelope(&self) -> Value {
        serde_json::to_value(self).expect("an error envelope always serialises")
    }

    /// Whether retrying the same request may succeed: rate limits, timeouts, server errors
    /// and transport failures. A 4xx validation or permission error never is.
    pub fn is_retryable(&self) -> bool {
        self.status == 0 || self.status == 429 || self.status >= 500
    }
}

/// Everything threadmig asks of an InstantDB server.
pub trait InstantApi: Send + Sync {
    /// `POST /admin/query`: the result tree.
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError>;
    /// `POST /admin/transact`.
    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError>;
    /// `GET /dash/apps/:id/schema/pull`.
    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError>;
    /// `POST /superadmin/apps/:id/schema/push/plan`.
    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError>;
    /// `POST /superadmin/apps/:id/schema/push/apply`.
    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError>;
    /// `POST /dash/apps/:id/schema/steps/apply`.
    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError>;
    /// `GET /dash/apps/:id/perms/pull`.
    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError>;
    /// `GET /dash/apps/:id/indexing-jobs/group/:group_id`.
    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError>;
    /// `GET /dash/apps/:id/indexing-jobs/:job_id`.
    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError>;
    /// `POST /dash/apps/ephemeral` (no auth).
    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_print() {
        let auth = AppAuth::new(
            "7a1c0d1e-0000-4000-8000-000000000001",
            "fake-token-do-not-use",
        );
        let shown = format!("{auth:?} {}", auth.admin_token);
        assert!(!shown.contains("fake-token-do-not-use"), "{shown}");
        let app = AppRecord {
            id: "a".into(),
            title: "t".into(),
            creator_id: None,
            created_at: None,
            org_id: None,
            status: None,
            admin_token: "fake-token-do-not-use".into(),
        };
        assert!(!format!("{app:?}").contains("fake-token-do-not-use"));
    }

    #[test]
    fn validation_errors_join_messages_like_the_server() {
        let error = ApiError::validation(
            "query",
            json!({"posts": {}}),
            vec![
                json!({"message": "first"}),
                json!({"expected": "map?"}),
                json!({"message": "second"}),
            ],
        );
        assert_eq!(error.message, "Validation failed for query: first, second");
        assert_eq!(error.status, 400);
        assert_eq!(error.envelope()["type"], "validation-failed");
        assert_eq!(error.envelope()["hint"]["data-type"], "query");
        assert!(error.envelope().get("status").is_none());
    }

    #[test]
    fn request_keys_use_the_wire_names() {
        let request = TransactRequest {
            steps: vec![json!(["update", "posts", "x", {}])],
            throw_on_missing_attrs: true,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"steps":[["update","posts","x",{}]],"throw-on-missing-attrs?":true}"#
        );
        let query: QueryRequest =
            serde_json::from_str(r#"{"query":{"posts":{}},"inference?":true}"#).unwrap();
        assert!(query.inference);
    }

    #[test]
    fn retryable_is_429_5xx_and_transport_only() {
        let retryable: Vec<u16> = [0u16, 400, 401, 404, 429, 500, 503]
            .into_iter()
            .filter(|status| ApiError::new(*status, "x", "m", Value::Null).is_retryable())
            .collect();
        assert_eq!(retryable, [0, 429, 500, 503]);
    }
}
