//! The HTTP adapter of the port: InstantDB's real API (or `threadmig serve`), spoken exactly as
//! the official SDKs speak it (paths, headers, bodies), through the shared resilient client.
//!
//! - Admin routes (`/admin/query`, `/admin/transact`) as `@instantdb/admin` sends them: the app
//!   id in the `app-id` header and in `?app_id=`, `authorization: Bearer <admin token>`, JSON
//!   content type and the SDK version headers.
//! - Schema, perms and indexing-job routes as `@instantdb/platform` and the CLI send them,
//!   authorised with the app's admin token (which those routes accept for its own app).
//! - Every call is limited per app (concurrency and rate, keyed by app id) and retried only
//!   where that can help (429, 5xx, timeouts, lost connections): see `http-client`.
//! - Errors come back as [`ApiError`] with the server's envelope and status; a transport
//!   failure is status 0, type `transport`. The admin token never appears in one.

use http_client::{encode_path_segment, encode_query_value, HttpClient, HttpError, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

pub use http_client::ResilienceConfig;

use crate::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};

/// The public service.
pub const DEFAULT_BASE_URL: &str = "https://api.instantdb.com";

/// The SDK release whose wire form this adapter follows; sent in the SDKs' version headers.
pub const SDK_VERSION: &str = "v1.0.67";

/// `type` of an error whose body is not the server's envelope (a proxy's plain-text 503, a
/// route-not-found `{message}`): the status and the text are all there is.
pub const HTTP_ERROR_TYPE: &str = "http-error";

/// `type` of an error where no response came back at all (status 0).
pub const TRANSPORT_ERROR_TYPE: &str = "transport";

/// `type` of a success response that does not have the documented shape.
pub const MALFORMED_RESPONSE_TYPE: &str = "malformed-response";

/// The limit key of calls that belong to no app (temporary app creation).
const NO_APP_KEY: &str = "(no app)";

/// How much of a non-JSON error body is kept as the message.
const MAX_TEXT_MESSAGE: usize = 2_000;

/// The adapter. Clones share connections and per-app limits.
#[derive(Debug, Clone)]
pub struct HttpInstantApi {
    client: HttpClient,
    base_url: String,
}

impl HttpInstantApi {
    /// An adapter for `base_url` (e.g. [`DEFAULT_BASE_URL`] or `threadmig serve`'s URL) with its
    /// own client.
    pub fn new(base_url: &str, config: ResilienceConfig) -> Result<Self, ApiError> {
        let client = HttpClient::new(config)
            .map_err(|error| ApiError::new(0, "invalid-config", error.to_string(), Value::Null))?;
        Self::with_client(base_url, client)
    }

    /// An adapter sharing an existing client (and so its limits) with other users.
    pub fn with_client(base_url: &str, client: HttpClient) -> Result<Self, ApiError> {
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
        let host = base_url.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() || host.contains(['?', '#']) {
            return Err(ApiError::new(
                0,
                "invalid-config",
                format!(
                    "the Instant API URI must be http(s)://host[:port][/prefix], got {base_url:?}"
                ),
                Value::Null,
            ));
        }
        Ok(HttpInstantApi { client, base_url })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `/admin/…` as `@instantdb/admin` sends it.
    fn admin_post<B: Serialize, T: DeserializeOwned>(
        &self,
        auth: &AppAuth,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let url = format!(
            "{}{path}?app_id={}",
            self.base_url,
            encode_query_value(&auth.app_id)
        );
        let response = self
            .client
            .post(url)
            .limit_key(auth.app_id.as_str())
            .header("app-id", auth.app_id.as_str())
            .bearer(auth.admin_token.expose())
            .header("Instant-Admin-Version", SDK_VERSION)
            .header("Instant-Core-Version", SDK_VERSION)
            .json(body)
            .and_then(|request| request.send());
        decode(response, Some(auth))
    }

    /// `/superadmin/apps/:id/…` and `/dash/apps/:id/…` as the platform SDK and the CLI send them.
    fn app_route<B: Serialize, T: DeserializeOwned>(
        &self,
        auth: &AppAuth,
        family: &str,
        rest: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let url = format!(
            "{}/{family}/apps/{}{rest}",
            self.base_url,
            encode_path_segment(&auth.app_id)
        );
        let request = match body {
            Some(_) => self.client.post(url),
            None => self.client.get(url),
        }
        .limit_key(auth.app_id.as_str())
        .bearer(auth.admin_token.expose())
        .header("Instant-Platform-Version", SDK_VERSION)
        .header("Instant-Core-Version", SDK_VERSION)
        .header("X-Instant-Source", "threadmig")
        .header("X-Instant-Version", env!("CARGO_PKG_VERSION"));
        let response = match body {
            Some(body) => request.json(body).and_then(|request| request.send()),
            None => request.send(),
        };
        decode(response, Some(auth))
    }
}

/// The body of a GET.
const NO_BODY: Option<&()> = None;

impl InstantApi for HttpInstantApi {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.admin_post(auth, "/admin/query", request)
    }

    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        self.admin_post(auth, "/admin/transact", request)
    }

    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.app_route(auth, "dash", "/schema/pull", NO_BODY)
    }

    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        self.app_route(auth, "superadmin", "/schema/push/plan", Some(request))
    }

    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.app_route(auth, "superadmin", "/schema/push/apply", Some(request))
    }

    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.app_route(auth, "dash", "/schema/steps/apply", Some(request))
    }

    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        self.app_route(auth, "dash", "/perms/pull", NO_BODY)
    }

    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        let rest = format!("/indexing-jobs/group/{}", encode_path_segment(group_id));
        self.app_route(auth, "dash", &rest, NO_BODY)
    }

    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        let rest = format!("/indexing-jobs/{}", encode_path_segment(job_id));
        self.app_route(auth, "dash", &rest, NO_BODY)
    }

    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        // `createTemporaryApp` sends no authorization header.
        let response = self
            .client
            .post(self.url("/dash/apps/ephemeral"))
            .limit_key(NO_APP_KEY)
            .header("Instant-Platform-Version", SDK_VERSION)
            .header("Instant-Core-Version", SDK_VERSION)
            .header("X-Instant-Source", "threadmig")
            .header("X-Instant-Version", env!("CARGO_PKG_VERSION"))
            .json(request)
            .and_then(|request| request.send());
        decode(response, None)
    }
}

/// A response (or its absence) as the port's result.
fn decode<T: DeserializeOwned>(
    response: Result<HttpResponse, HttpError>,
    auth: Option<&AppAuth>,
) -> Result<T, ApiError> {
    let token = auth.map(|auth| auth.admin_token.expose());
    let response = response.map_err(|error| transport_error(&error))?;
    if !response.is_success() {
        return Err(scrub(error_from_response(&response), token));
    }
    serde_json::from_slice(&response.body).map_err(|error| {
        // Line and column only: the body may hold an admin token.
        ApiError::new(
            response.status,
            MALFORMED_RESPONSE_TYPE,
            format!(
                "the response does not have the expected shape ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
            Value::Null,
        )
    })
}

/// Status 0, type `transport`: nothing came back. The hint says what failed and how often.
pub fn transport_error(error: &HttpError) -> ApiError {
    let mut hint = Map::new();
    hint.insert("kind".into(), json!(error.kind_str()));
    if let Some(attempts) = error.attempts() {
        hint.insert("attempts".into(), json!(attempts));
    }
    ApiError::new(
        0,
        TRANSPORT_ERROR_TYPE,
        error.to_string(),
        Value::Object(hint),
    )
}

/// A non-2xx response as the server's error: its envelope when the body is one, otherwise the
/// text as the message under [`HTTP_ERROR_TYPE`].
pub fn error_from_response(response: &HttpResponse) -> ApiError {
    let status = response.status;
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&response.body) {
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        if body.contains_key("type") || body.contains_key("message") {
            let mut error = ApiError::new(
                status,
                text("type").as_deref().unwrap_or(HTTP_ERROR_TYPE),
                text("message").unwrap_or_default(),
                body.get("hint").cloned().unwrap_or(Value::Null),
            );
            error.trace_id = text("trace-id");
            return error;
        }
    }
    let text = response.text();
    let text = text.trim();
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else if text.len() > MAX_TEXT_MESSAGE {
        let mut end = MAX_TEXT_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    };
    ApiError::new(status, HTTP_ERROR_TYPE, message, Value::Null)
}

/// Replaces the admin token wherever a server echoed it (some envelopes quote the offending
/// header), so an error can be printed and written to a report.
fn scrub(mut error: ApiError, token: Option<&str>) -> ApiError {
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        return error;
    };
    if error.message.contains(token) {
        error.message = error.message.replace(token, "<redacted>");
    }
    scrub_value(&mut error.hint, token);
    error
}

fn scrub_value(value: &mut Value, token: &str) {
    match value {
        Value::String(text) if text.contains(token) => {
            *text = text.replace(token, "<redacted>");
        }
        Value::Array(items) => items.iter_mut().for_each(|item| scrub_value(item, token)),
        Value::Object(map) => map.values_mut().for_each(|item| scrub_value(item, token)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            attempts: 1,
        }
    }

    #[test]
    fn envelopes_become_typed_errors_with_trace_id() {
        let error = error_from_response(&response(
            400,
            r#"{"type":"record-not-found","message":"Record not found: app-admin-token","hint":{"record-type":"app-admin-token"},"trace-id":"abc123"}"#,
        ));
        assert_eq!(error.status, 400);
        assert_eq!(error.error_type, "record-not-found");
        assert_eq!(error.message, "Record not found: app-admin-token");
        assert_eq!(error.hint, json!({"record-type": "app-admin-token"}));
        assert_eq!(error.trace_id.as_deref(), Some("abc123"));
        assert!(!error.is_retryable());
    }

    #[test]
    fn other_bodies_keep_their_text_as_the_message() {
        let plain = error_from_response(&response(503, "Service Unavailable\n"));
        assert_eq!(
            (
                plain.status,
                plain.error_type.as_str(),
                plain.message.as_str()
            ),
            (503, HTTP_ERROR_TYPE, "Service Unavailable")
        );
        assert!(plain.is_retryable());
        let not_found = error_from_response(&response(
            404,
            r#"{"message":"Oops! We couldn't match this route."}"#,
        ));
        assert_eq!(not_found.error_type, HTTP_ERROR_TYPE);
        assert_eq!(not_found.message, "Oops! We couldn't match this route.");
        let empty = error_from_response(&response(502, ""));
        assert_eq!(empty.message, "HTTP 502");
        let array = error_from_response(&response(400, "[1,2]"));
        assert_eq!(array.message, "[1,2]");
        let long = error_from_response(&response(500, &"é".repeat(3_000)));
        assert!(long.message.len() <= MAX_TEXT_MESSAGE + 3);
    }

    #[test]
    fn echoed_tokens_are_scrubbed() {
        let token = "5e0c9a52-1111-4222-8333-944445555666";
        let error = ApiError::new(
            400,
            "param-malformed",
            format!("bad token {token}"),
            json!({"original-input": format!("Bearer {token}"), "in": ["headers", "authorization"]}),
        );
        let scrubbed = scrub(error, Some(token));
        let shown = format!("{scrubbed:?} {}", scrubbed.envelope());
        assert!(!shown.contains(token), "{shown}");
        assert_eq!(scrubbed.hint["original-input"], "Bearer <redacted>");
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let config = ResilienceConfig::default();
        let api = HttpInstantApi::new("http://127.0.0.1:8888/", config.clone()).unwrap();
        assert_eq!(api.url("/admin/query"), "http://127.0.0.1:8888/admin/query");
        for bad in [
            "",
            "api.instantdb.com",
            "ftp://x",
            "https://",
            "https://x?y=1",
        ] {
            let error = HttpInstantApi::new(bad, config.clone()).unwrap_err();
            assert_eq!(error.error_type, "invalid-config", "{bad}");
        }
    }

    #[test]
    fn transport_errors_are_status_zero() {
        let error = transport_error(&HttpError::Transport {
            method: "POST".into(),
            path: "/admin/transact".into(),
            kind: http_client::TransportKind::Timeout,
            message: "global timed out".into(),
            attempts: 7,
        });
        assert_eq!(
            (error.status, error.error_type.as_str()),
            (0, TRANSPORT_ERROR_TYPE)
        );
        assert_eq!(error.hint, json!({"kind": "timeout", "attempts": 7}));
        assert!(error.is_retryable());
    }
}
