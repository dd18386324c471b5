//! The routes, and how each reads its request the way the InstantDB server does.
//!
//! The server reads parameters in a fixed order and the first failure wins, so each handler
//! checks in that order:
//! - `/admin/query`, `/admin/transact`: the body key (`query` / `steps`), then the app id
//!   (header `app-id`, else query `app_id`), then `authorization` (`admin/routes.clj`
//!   `query-post`, `transact-post`, `get-perms!`).
//! - `/superadmin/apps/:app_id/…`: `authorization` first, then the path app id, then the token
//!   lookup (`superadmin/routes.clj` `req->superadmin-app!`).
//! - `/dash/apps/:app_id/…`: the same, but any failure other than an admin-token mismatch
//!   falls back to the dashboard-user path, which checks the path app id first (`dash/routes.clj`
//!   `req->app-accepting-superadmin-or-ref-token!`). Body and path parameters come after.
//!
//! Where a body or path parameter is checked after authentication but has to be parsed here
//! (the engine takes typed requests), a bad parameter is answered only after a side-effect-free
//! call has authenticated the request, so a bad token still wins over a bad parameter.
//!
//! Parameter values follow Clojure truthiness: a key is "missing" when absent, `null` or
//! `false`; booleans such as `inference?` are true for any other value.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Frame;
use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, InstantApi, QueryRequest, SchemaPushRequest,
    StepsApplyRequest, TransactRequest,
};
use instant_schema::plan::PlanStep;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// What the handlers share.
pub(crate) struct RouteState {
    pub api: Arc<dyn InstantApi>,
    pub body: BodyRules,
}

/// How much of a request body is read, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRules {
    pub limit: usize,
    pub timeout: Duration,
}

type Shared = State<Arc<RouteState>>;

/// Every route of the real service that the engine serves. Anything else, including a known
/// path with another method (Compojure matches method and path together), is the server's 404.
pub(crate) fn router(state: Arc<RouteState>) -> Router {
    Router::new()
        .route("/admin/query", post(admin_query))
        .route("/admin/transact", post(admin_transact))
        .route("/superadmin/apps/{app_id}/schema", get(superadmin_schema))
        .route(
            "/superadmin/apps/{app_id}/schema/push/plan",
            post(superadmin_schema_plan),
        )
        .route(
            "/superadmin/apps/{app_id}/schema/push/apply",
            post(superadmin_schema_apply),
        )
        .route("/superadmin/apps/{app_id}/perms", get(superadmin_perms))
        .route("/dash/apps/ephemeral", post(dash_ephemeral))
        .route("/dash/apps/{app_id}/schema/pull", get(dash_schema_pull))
        .route(
            "/dash/apps/{app_id}/schema/push/plan",
            post(dash_schema_plan),
        )
        .route(
            "/dash/apps/{app_id}/schema/push/apply",
            post(dash_schema_apply),
        )
        .route(
            "/dash/apps/{app_id}/schema/steps/apply",
            post(dash_steps_apply),
        )
        .route(
            "/dash/apps/{app_id}/indexing-jobs/group/{group_id}",
            get(dash_indexing_job_group),
        )
        .route(
            "/dash/apps/{app_id}/indexing-jobs/{job_id}",
            get(dash_indexing_job),
        )
        .route("/dash/apps/{app_id}/perms/pull", get(dash_perms_pull))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

/// `core.clj` `not-found`.
pub(crate) async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"message": "Oops! We couldn't match this route."}),
    )
}

// ---------------------------------------------------------------------------------------------
// Responses

pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Err(_) => error_response(&unknown_error()),
    }
}

/// The envelope `{type, message, hint, trace-id?}` with the error's status.
pub(crate) fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status)
        .ok()
        .filter(|status| status.is_client_error() || status.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error.envelope())
}

/// The server's answer to an untyped exception (`util/http.clj` `wrap-errors`).
pub(crate) fn unknown_error() -> ApiError {
    ApiError::new(
        500,
        "unknown",
        "Something went wrong. Sorry about this!",
        json!({"debug-uri": null}),
    )
}

pub(crate) fn plain_response(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// Runs a blocking engine call on the blocking pool and answers with its JSON or its error.
/// A panic in the engine is the server's untyped 500, never a dropped connection.
async fn run<T, F>(call: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(call).await {
        Ok(Ok(value)) => json_response(StatusCode::OK, &value),
        Ok(Err(error)) => error_response(&error),
        Err(_) => error_response(&unknown_error()),
    }
}

/// Answers `error`, unless authenticating `auth` fails first: for the dash routes' parameters,
/// which the server checks after authentication. The probe (a perms read) has no side effect.
async fn after_auth(state: &RouteState, auth: AppAuth, error: ApiError) -> Response {
    let api = state.api.clone();
    match tokio::task::spawn_blocking(move || api.perms_pull(&auth)).await {
        Ok(Ok(_)) => error_response(&error),
        Ok(Err(auth_error)) => error_response(&auth_error),
        Err(_) => error_response(&unknown_error()),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// `Missing parameter: ["body" "query"]` (`util/exception.clj` `throw-missing-param!`).
pub(crate) fn param_missing(path: &[&str], possible_ins: Option<Value>) -> ApiError {
    let mut hint = Map::new();
    hint.insert("in".into(), json!(path));
    if let Some(possible) = possible_ins {
        hint.insert("possible-ins".into(), possible);
    }
    ApiError::new(
        400,
        "param-missing",
        format!("Missing parameter: {}", clojure_path(path)),
        Value::Object(hint),
    )
}

/// `Malformed parameter: […]` with the offending input.
pub(crate) fn param_malformed(
    path: &[&str],
    original_input: Value,
    possible_ins: Option<Value>,
) -> ApiError {
    let mut hint = Map::new();
    hint.insert("in".into(), json!(path));
    if let Some(possible) = possible_ins {
        hint.insert("possible-ins".into(), possible);
    }
    hint.insert("original-input".into(), original_input);
    ApiError::new(
        400,
        "param-malformed",
        format!("Malformed parameter: {}", clojure_path(path)),
        Value::Object(hint),
    )
}

/// A path as Clojure prints a vector of names: `["headers" "app-id"]`.
fn clojure_path(path: &[&str]) -> String {
    let names: Vec<String> = path.iter().map(|name| format!("{name:?}")).collect();
    format!("[{}]", names.join(" "))
}

/// Clojure truthiness: present and neither `null` nor `false`.
fn truthy(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Null) | Some(Value::Bool(false)))
}

/// A body key, when truthy. A body that is not an object has no keys (`get-in` on it is nil).
fn body_param<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.as_object()
        .and_then(|object| object.get(key))
        .filter(|value| truthy(Some(value)))
}

/// `uuid-util/coerce`: a string that, trimmed, is a 36-character UUID; canonical lowercase.
pub(crate) fn coerce_uuid(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if trimmed.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(trimmed)
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}

/// A bearer token classified by its prefix (`util/token.clj` `coerce-token-from-string`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A UUID: an app admin token (or, on the real service, a user's token).
    Uuid(String),
    /// `pat_…`: an OAuth platform access token.
    PlatformAccess,
    /// `per_…`: a personal access token.
    Personal,
    /// `eyJ…`: a JWT.
    Jwt,
}

/// `util/http.clj` `coerce-bearer-token`: split on `Bearer `, keep the last part, trim, classify.
/// `None` when nothing usable is left (the server's malformed case).
pub(crate) fn coerce_bearer_token(header: &str) -> Option<Token> {
    // Java's split drops trailing empty parts, so `"Bearer "` leaves nothing.
    let last = header
        .split("Bearer ")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|part| !part.is_empty())?;
    let token = last.trim();
    if token.starts_with("pat_") {
        Some(Token::PlatformAccess)
    } else if token.starts_with("per_") {
        Some(Token::Personal)
    } else if token.starts_with("eyJ") {
        Some(Token::Jwt)
    } else {
        coerce_uuid(token).map(Token::Uuid)
    }
}

/// A token no app has. The engine answers it exactly as the server answers a token it cannot
/// find, so that answer is written once, in the engine.
const UNKNOWN_TOKEN: &str = "00000000-0000-0000-0000-000000000000";

/// The `authorization` header: missing, present but unusable, or a token.
fn authorization(headers: &HeaderMap) -> Result<Token, ApiError> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Err(param_missing(&["headers", "authorization"], None));
    };
    let text = String::from_utf8_lossy(raw.as_bytes());
    coerce_bearer_token(&text).ok_or_else(|| {
        // The server echoes the header; a token never goes back out, even a malformed one.
        param_malformed(&["headers", "authorization"], json!("<redacted>"), None)
    })
}

/// Impersonation needs permission rules, which the engine does not evaluate: refuse it
/// rather than silently answering as an admin.
fn refuse_impersonation(headers: &HeaderMap) -> Result<(), ApiError> {
    for name in ["as-token", "as-email", "as-guest"] {
        if headers.contains_key(name) {
            return Err(ApiError::validation(
                "params",
                json!(name),
                vec![json!({
                    "message": format!("The `{name}` header (impersonation) is not supported by the local server."),
                    "in": ["headers", name],
                })],
            ));
        }
    }
    Ok(())
}

/// The admin routes' app and token (`req->app-id-untrusted!`, `req->app-id-authed!`).
fn admin_auth(headers: &HeaderMap, raw_query: Option<&str>) -> Result<AppAuth, ApiError> {
    let header_app_id = headers
        .get("app-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let (app_id_text, found_in) = match header_app_id {
        Some(value) => (value, ["headers", "app-id"]),
        None => match raw_query.and_then(|query| query_param(query, "app_id")) {
            Some(value) => (value, ["query-params", "app_id"]),
            None => {
                return Err(param_missing(
                    &["headers", "app-id"],
                    Some(json!([["query-params", "app_id"]])),
                ))
            }
        },
    };
    let app_id = coerce_uuid(&app_id_text).ok_or_else(|| {
        param_malformed(
            &found_in,
            json!(app_id_text),
            Some(json!([["headers", "app-id"], ["query-params", "app_id"]])),
        )
    })?;
    // The server reads the app id, then the impersonation headers, then the token.
    refuse_impersonation(headers)?;
    match authorization(headers)? {
        Token::Uuid(token) => Ok(AppAuth::new(app_id, token)),
        Token::Jwt => Ok(AppAuth::new(app_id, UNKNOWN_TOKEN)),
        // No platform users exist locally, so their lookups fail as on the server.
        Token::PlatformAccess => Err(record_not_found("oauth-access-token", false)),
        Token::Personal => Err(record_not_found("instant-user", false)),
    }
}

fn record_not_found(record_type: &str, auth: bool) -> ApiError {
    let mut extra = Map::new();
    if auth {
        extra.insert("args".into(), json!([{"auth?": true}]));
    }
    let mut error = ApiError::record_not_found(record_type, extra);
    if auth {
        error.status = 401;
    }
    error
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `/superadmin/apps/:app_id/…`
    Superadmin,
    /// `/dash/apps/:app_id/…`: falls back to the dashboard-user path on failure.
    Dash,
}

/// The app and token of a superadmin or dash route.
fn app_route_auth(
    headers: &HeaderMap,
    path_app_id: &str,
    family: Family,
) -> Result<AppAuth, ApiError> {
    let app_id = || {
        coerce_uuid(path_app_id)
            .ok_or_else(|| param_malformed(&["params", "app_id"], json!(path_app_id), None))
    };
    let token = authorization(headers);
    match (family, token) {
        (Family::Dash, Err(error)) => {
            app_id()?;
            Err(error)
        }
        (Family::Superadmin, Err(error)) => Err(error),
        (_, Ok(Token::Uuid(token))) => Ok(AppAuth::new(app_id()?, token)),
        (Family::Superadmin, Ok(Token::PlatformAccess)) => {
            Err(record_not_found("oauth-access-token", false))
        }
        (Family::Superadmin, Ok(Token::Personal)) => Err(record_not_found("instant-user", false)),
        // Every other token ends on the dashboard-user lookup, which the engine answers for an
        // unknown token (401 `Record not found: instant-user`).
        (_, Ok(_)) => Ok(AppAuth::new(app_id()?, UNKNOWN_TOKEN)),
    }
}

/// The `:app_id` of `/superadmin/apps/:app_id/…` and `/dash/apps/:app_id/…`, percent-decoded.
/// Path segments are read here rather than by an extractor, so no path can be refused with
/// anything but the server's own errors.
fn app_id(uri: &Uri) -> String {
    uri.path()
        .split('/')
        .nth(3)
        .map(percent_decode)
        .unwrap_or_default()
}

/// The last path segment (`:job_id`, `:group_id`), percent-decoded.
fn last_segment(uri: &Uri) -> String {
    uri.path()
        .rsplit('/')
        .next()
        .map(percent_decode)
        .unwrap_or_default()
}

fn percent_decode(text: &str) -> String {
    decode(text, false)
}

/// A query-string parameter, form-decoded (`ring.middleware.params`).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key) == name).then(|| form_decode(value))
    })
}

fn form_decode(text: &str) -> String {
    decode(text, true)
}

/// `%XX` escapes (invalid ones kept as they are), `+` as a space in form encoding, and
/// invalid UTF-8 replaced.
fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON body that could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    TooLarge,
    Malformed,
    /// The client stopped sending before the body was complete.
    Incomplete,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            // ring-json's answer, verbatim: plain text, not the envelope.
            BodyError::Malformed => {
                plain_response(StatusCode::BAD_REQUEST, "Malformed JSON in request body.")
            }
            BodyError::TooLarge => body_error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            BodyError::Incomplete => body_error_response(
                StatusCode::REQUEST_TIMEOUT,
                "The request body was not received in time.",
            ),
        }
    }
}

/// The server sets no body limit and no body timeout, so these answers are the engine's own,
/// in the server's validation style, and close the connection (its input is not fully read).
fn body_error_response(status: StatusCode, message: &str) -> Response {
    let mut error = ApiError::validation("body", Value::Null, vec![json!({"message": message})]);
    error.status = status.as_u16();
    let mut response = error_response(&error);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// After the limit, how much more of an oversized body is read and discarded so the client,
/// still sending, sees the answer instead of a reset connection.
fn drain_budget(limit: usize) -> usize {
    limit.clamp(1 << 20, 64 << 20)
}

/// `^application/(.+\+)?json` found in the content type (ring-json's `json-request?`).
fn is_json_request(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some(rest) = content_type.strip_prefix("application/") else {
        return false;
    };
    rest.starts_with("json") || rest.match_indices("+json").any(|(at, _)| at > 0)
}

/// Reads the body as ring-json does: only with a JSON content type (otherwise the handler sees
/// no body), the first JSON value (trailing bytes ignored), `null` for an empty body.
pub(crate) async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    rules: BodyRules,
) -> Result<Value, BodyError> {
    let bytes = read_body(headers, body, rules).await?;
    if !is_json_request(headers) {
        return Ok(Value::Null);
    }
    let mut values = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
    match values.next() {
        None => Ok(Value::Null),
        Some(Ok(value)) => Ok(value),
        Some(Err(_)) => Err(BodyError::Malformed),
    }
}

/// The body, up to `limit` bytes.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    rules: BodyRules,
) -> Result<Bytes, BodyError> {
    let limit = rules.limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    let read = async {
        if declared.is_some_and(|length| length > limit as u64) {
            drain(&mut body, drain_budget(limit)).await;
            return Err(BodyError::TooLarge);
        }
        let mut buffer = Vec::new();
        while let Some(frame) = next_frame(&mut body).await {
            let Ok(data) = frame.map_err(|_| BodyError::Incomplete)?.into_data() else {
                continue;
            };
            if buffer.len() + data.len() > limit {
                drain(&mut body, drain_budget(limit)).await;
                return Err(BodyError::TooLarge);
            }
            buffer.extend_from_slice(&data);
        }
        Ok(Bytes::from(buffer))
    };
    tokio::time::timeout(rules.timeout, read)
        .await
        .unwrap_or(Err(BodyError::Incomplete))
}

/// Reads and discards up to `budget` bytes of what is left of a body.
pub(crate) async fn drain(body: &mut Body, budget: usize) {
    let mut discarded = 0usize;
    while discarded < budget {
        match next_frame(body).await {
            Some(Ok(frame)) => discarded += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

async fn next_frame(body: &mut Body) -> Option<Result<Frame<Bytes>, axum::Error>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

/// A `coll?` body parameter as a list: an object counts as its `[key, value]` entries, as a
/// Clojure map does when walked as a collection.
fn as_collection(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items.clone()),
        Value::Object(entries) => Some(
            entries
                .iter()
                .map(|(key, value)| json!([key, value]))
                .collect(),
        ),
        _ => None,
    }
}

/// `[:body :steps]` with the `coll?` coercer.
fn steps_param(body: &Value) -> Result<Vec<Value>, ApiError> {
    let steps = body_param(body, "steps").ok_or_else(|| param_missing(&["body", "steps"], None))?;
    as_collection(steps).ok_or_else(|| param_malformed(&["body", "steps"], steps.clone(), None))
}

// ---------------------------------------------------------------------------------------------
// Admin routes

async fn admin_query(
    State(state): Shared,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_json_body(&headers, body, state.body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let query = match body_param(&body, "query") {
        None => return error_response(&param_missing(&["body", "query"], None)),
        Some(query @ Value::Object(_)) => query.clone(),
        Some(other) => {
            return error_response(&param_malformed(&["body", "query"], other.clone(), None))
        }
    };
    let request = QueryRequest {
        query,
        inference: truthy(body.get("inference?")),
    };
    let auth = match admin_auth(&headers, raw_query.as_deref()) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || api.query(&auth, &request)).await
}

async fn admin_transact(
    State(state): Shared,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_json_body(&headers, body, state.body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let steps = match steps_param(&body) {
        Ok(steps) => steps,
        Err(error) => return error_response(&error),
    };
    let request = TransactRequest {
        steps,
        throw_on_missing_attrs: truthy(body.get("throw-on-missing-attrs?")),
    };
    let auth = match admin_auth(&headers, raw_query.as_deref()) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || api.transact(&auth, &request)).await
}

// ---------------------------------------------------------------------------------------------
// Schema, perms and jobs

/// `{schema, check_types, supports_background_updates}`, read without validation: the server
/// passes the schema to its planner as it is.
fn push_request(body: &Value) -> SchemaPushRequest {
    SchemaPushRequest {
        schema: body
            .as_object()
            .and_then(|object| object.get("schema"))
            .cloned()
            .unwrap_or(Value::Null),
        check_types: truthy(body.get("check_types")),
        supports_background_updates: truthy(body.get("supports_background_updates")),
    }
}

async fn superadmin_schema(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Superadmin) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || {
        api.schema_pull(&auth)
            .map(|pull| json!({"schema": pull.schema}))
    })
    .await
}

async fn superadmin_perms(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Superadmin) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || api.perms_pull(&auth)).await
}

async fn superadmin_schema_plan(
    state: Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    schema_push_route(
        state,
        uri,
        headers,
        body,
        Family::Superadmin,
        PushStage::Plan,
    )
    .await
}

async fn dash_schema_plan(state: Shared, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    schema_push_route(state, uri, headers, body, Family::Dash, PushStage::Plan).await
}

async fn superadmin_schema_apply(
    state: Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    schema_push_route(
        state,
        uri,
        headers,
        body,
        Family::Superadmin,
        PushStage::Apply,
    )
    .await
}

async fn dash_schema_apply(state: Shared, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    schema_push_route(state, uri, headers, body, Family::Dash, PushStage::Apply).await
}

/// `…/schema/push/plan` and `…/schema/push/apply` take the same body and checks; only the
/// engine call differs.
#[derive(Clone, Copy)]
enum PushStage {
    Plan,
    Apply,
}

async fn schema_push_route(
    State(state): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    family: Family,
    stage: PushStage,
) -> Response {
    let body = match read_json_body(&headers, body, state.body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let auth = match app_route_auth(&headers, &app_id(&uri), family) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let request = push_request(&body);
    let api = state.api.clone();
    match stage {
        PushStage::Plan => run(move || api.schema_plan(&auth, &request)).await,
        PushStage::Apply => run(move || api.schema_push(&auth, &request)).await,
    }
}

async fn dash_schema_pull(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Dash) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || api.schema_pull(&auth)).await
}

async fn dash_perms_pull(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Dash) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let api = state.api.clone();
    run(move || api.perms_pull(&auth)).await
}

/// Client-computed steps. The server checks `steps` after authentication, then that each step
/// is a collection (`tx/coerce!`); the step shapes are read by the schema crate.
fn plan_steps(body: &Value) -> Result<Vec<PlanStep>, ApiError> {
    let steps = steps_param(body)?;
    let root = Value::Array(steps.clone());
    steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            if !matches!(step, Value::Array(_) | Value::Object(_)) {
                return Err(ApiError::validation(
                    "tx-steps",
                    root.clone(),
                    vec![json!({"expected": "coll?", "in": [index]})],
                ));
            }
            PlanStep::from_json_at(&format!("steps[{index}]"), step).map_err(|error| {
                ApiError::validation(
                    "tx-steps",
                    root.clone(),
                    vec![json!({"message": error.to_string(), "in": [index]})],
                )
            })
        })
        .collect()
}

async fn dash_steps_apply(
    State(state): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_json_body(&headers, body, state.body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Dash) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let request = match plan_steps(&body) {
        Ok(steps) => StepsApplyRequest { steps },
        Err(error) => return after_auth(&state, auth, error).await,
    };
    let api = state.api.clone();
    run(move || api.schema_steps_apply(&auth, &request)).await
}

async fn dash_indexing_job_group(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Dash) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let group_id = last_segment(&uri);
    let Some(group_id) = coerce_uuid(&group_id) else {
        let error = param_malformed(&["params", "group_id"], json!(group_id), None);
        return after_auth(&state, auth, error).await;
    };
    let api = state.api.clone();
    run(move || api.indexing_job_group(&auth, &group_id)).await
}

async fn dash_indexing_job(State(state): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let auth = match app_route_auth(&headers, &app_id(&uri), Family::Dash) {
        Ok(auth) => auth,
        Err(error) => return error_response(&error),
    };
    let job_id = last_segment(&uri);
    let Some(job_id) = coerce_uuid(&job_id) else {
        let error = param_malformed(&["params", "job_id"], json!(job_id), None);
        return after_auth(&state, auth, error).await;
    };
    let api = state.api.clone();
    run(move || api.indexing_job(&auth, &job_id)).await
}

/// `dash/ephemeral_app.clj` `http-post-handler`: no auth; `title` must be a non-blank string
/// (a number is taken as its text).
async fn dash_ephemeral(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    let body = match read_json_body(&headers, body, state.body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let title = match body_param(&body, "title") {
        None => return error_response(&param_missing(&["body", "title"], None)),
        Some(Value::String(text)) if !text.trim().is_empty() => text.trim().to_string(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => {
            return error_response(&param_malformed(&["body", "title"], other.clone(), None))
        }
    };
    let request = EphemeralAppRequest {
        title,
        schema: body_param(&body, "schema").cloned(),
        rules: body_param(&body, "rules").cloned(),
    };
    let api = state.api.clone();
    run(move || api.create_ephemeral_app(&request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_like_the_server() {
        let uuid = "7A1C0D1E-0000-4000-8000-000000000001";
        let lower = "7a1c0d1e-0000-4000-8000-000000000001";
        assert_eq!(
            coerce_bearer_token(&format!("Bearer {uuid}")),
            Some(Token::Uuid(lower.into()))
        );
        assert_eq!(
            coerce_bearer_token(&format!("  Bearer   {uuid}  ")),
            Some(Token::Uuid(lower.into()))
        );
        // No `Bearer ` at all: the whole header is the token.
        assert_eq!(coerce_bearer_token(uuid), Some(Token::Uuid(lower.into())));
        assert_eq!(
            coerce_bearer_token(&format!("Bearer x Bearer {uuid}")),
            Some(Token::Uuid(lower.into()))
        );
        assert_eq!(coerce_bearer_token("Bearer "), None);
        assert_eq!(coerce_bearer_token(""), None);
        assert_eq!(coerce_bearer_token(&format!("bearer {uuid}")), None);
        assert_eq!(coerce_bearer_token("Bearer not-a-uuid"), None);
        assert_eq!(
            coerce_bearer_token("Bearer pat_abc"),
            Some(Token::PlatformAccess)
        );
        assert_eq!(coerce_bearer_token("Bearer per_abc"), Some(Token::Personal));
        assert_eq!(coerce_bearer_token("Bearer eyJhbGc"), Some(Token::Jwt));
        // 32 hex digits parse as a UUID elsewhere, not on the server.
        assert_eq!(
            coerce_bearer_token("Bearer 7a1c0d1e000040008000000000000001"),
            None
        );
    }

    #[test]
    fn param_errors_print_paths_like_clojure() {
        let missing = param_missing(&["headers", "authorization"], None);
        assert_eq!(
            missing.message,
            r#"Missing parameter: ["headers" "authorization"]"#
        );
        assert_eq!(
            missing.envelope()["hint"],
            json!({"in": ["headers", "authorization"]})
        );
        let malformed = param_malformed(&["body", "query"], json!(5), None);
        assert_eq!(
            malformed.message,
            r#"Malformed parameter: ["body" "query"]"#
        );
        assert_eq!(malformed.envelope()["hint"]["original-input"], json!(5));
    }

    #[test]
    fn query_params_are_form_decoded() {
        assert_eq!(
            query_param("a=1&app_id=x%2Dy+z", "app_id").as_deref(),
            Some("x-y z")
        );
        assert_eq!(query_param("app_id", "app_id").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "app_id"), None);
        assert_eq!(
            query_param("app_id=%zz%4", "app_id").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(percent_decode("a+b%2Fc%ff"), "a+b/c\u{fffd}");
    }

    #[test]
    fn json_content_types_match_ring_json() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json_request(&headers)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("application/vnd.api+json"));
        assert!(!with("application/+json"));
        assert!(!with("text/json"));
        assert!(!with("Application/JSON"));
        assert!(!is_json_request(&HeaderMap::new()));
    }
}
