//! The HTTP server against a test double of the port (what the server itself decides: routes,
//! parameter parsing, envelopes, body handling, faults, logging) and against the engine.
//! Requests go through a minimal HTTP/1.1 client over `TcpStream`, so what is checked is what
//! is on the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_api::{
    ApiError, AppAuth, AppRecord, EphemeralAppRequest, EphemeralAppResponse, IndexingJob,
    IndexingJobResponse, IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest,
    SchemaApplyResponse, SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest,
    StepsApplyRequest, TransactRequest, TransactResponse,
};
use instant_local::server::faults::FaultConfig;
use instant_local::server::{spawn, RequestLog, ServerConfig, ServerHandle};
use instant_schema::ServerSchema;
use serde_json::{json, Map, Value};

const APP: &str = "7a1c0d1e-0000-4000-8000-000000000001";
const OTHER_APP: &str = "7a1c0d1e-0000-4000-8000-000000000002";
const TOKEN: &str = "5e0c9a52-1111-4222-8333-944445555666";
const GROUP: &str = "9f000000-0000-4000-8000-0000000000aa";

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole answer;
/// `None` when the server closed the connection without answering.
fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before reading a refused body.
    let _ = stream.write_all(body);
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("reading the answer: {error}"),
    }
    if received.is_empty() {
        return None;
    }
    Some(parse_reply(&received))
}

fn parse_reply(received: &[u8]) -> Reply {
    let split = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&received[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect();
    let raw_body = &received[split + 4..];
    let chunked = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A request with the usual headers; `extra` are added as they are.
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> Option<Reply> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    send_raw(addr, &head, body.as_bytes())
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A JSON request with the admin SDK's headers.
fn admin(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let auth = bearer();
    request(
        addr,
        "POST",
        &format!("{path}?app_id={APP}"),
        &[
            ("content-type", "application/json"),
            ("app-id", APP),
            ("authorization", &auth),
        ],
        Some(body),
    )
    .expect("an answer")
}

fn dash_get(addr: SocketAddr, path: &str) -> Reply {
    let auth = bearer();
    request(addr, "GET", path, &[("authorization", &auth)], None).expect("an answer")
}

fn dash_post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let auth = bearer();
    request(
        addr,
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        Some(body),
    )
    .expect("an answer")
}

// ---------------------------------------------------------------------------------------------
// The test double

/// Authenticates like the engine (one app, one token) and records every call it answers.
#[derive(Default)]
struct Double {
    calls: Mutex<Vec<String>>,
}

impl Double {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn admin_auth(&self, auth: &AppAuth) -> Result<(), ApiError> {
        if auth.app_id == APP && auth.admin_token.expose() == TOKEN {
            Ok(())
        } else {
            Err(ApiError::record_not_found(
                "app-admin-token",
                Map::from_iter([("args".to_string(), json!([{"app-id": auth.app_id}]))]),
            ))
        }
    }

    fn dash_auth(&self, auth: &AppAuth) -> Result<(), ApiError> {
        if auth.admin_token.expose() != TOKEN {
            let mut error = ApiError::record_not_found("instant-user", Map::new());
            error.status = 401;
            return Err(error);
        }
        if auth.app_id != APP {
            return Err(ApiError::new(
                400,
                "validation-failed",
                format!("This admin token does not belong to app {}.", auth.app_id),
                json!({"reason": "admin-token-mismatch"}),
            ));
        }
        Ok(())
    }
}

fn job(id: &str) -> IndexingJob {
    IndexingJob {
        id: id.into(),
        app_id: Some(APP.into()),
        group_id: Some(GROUP.into()),
        attr_id: None,
        attr_name: Some("posts.title".into()),
        job_type: "index".into(),
        job_status: "completed".into(),
        job_stage: None,
        error: None,
        extra: Map::new(),
    }
}

impl InstantApi for Double {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.admin_auth(auth)?;
        if request.query.get("panic").is_some() {
            panic!("the double was asked to panic");
        }
        if request.query.get("invalid").is_some() {
            return Err(ApiError::validation(
                "query",
                request.query.clone(),
                vec![json!({"expected": "map?", "in": ["invalid"]})],
            ));
        }
        self.record(format!("query {}", request.query));
        Ok(json!({"query": request.query, "inference": request.inference}))
    }

    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        self.admin_auth(auth)?;
        self.record(format!(
            "transact {} {}",
            Value::Array(request.steps.clone()),
            request.throw_on_missing_attrs
        ));
        Ok(TransactResponse { tx_id: 42 })
    }

    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record("schema_pull".into());
        Ok(SchemaPullResponse {
            schema: ServerSchema::default(),
            attrs: Vec::new(),
            app_title: Some("double".into()),
        })
    }

    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record(format!(
            "schema_plan {} {} {}",
            request.schema, request.check_types, request.supports_background_updates
        ));
        Ok(SchemaPlanResponse {
            new_schema: ServerSchema::default(),
            current_schema: ServerSchema::default(),
            current_attrs: Vec::new(),
            steps: Vec::new(),
        })
    }

    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record(format!("schema_push {}", request.schema));
        Ok(SchemaApplyResponse {
            new_schema: None,
            current_schema: None,
            current_attrs: None,
            steps: Vec::new(),
            transaction: json!({}),
            indexing_jobs: None,
        })
    }

    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record(format!("steps_apply {}", request.steps.len()));
        Ok(SchemaApplyResponse {
            new_schema: None,
            current_schema: None,
            current_attrs: None,
            steps: request.steps.clone(),
            transaction: json!({}),
            indexing_jobs: None,
        })
    }

    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        self.dash_auth(auth)?;
        Ok(PermsPullResponse {
            perms: Some(json!({"posts": {"allow": {"view": "true"}}})),
        })
    }

    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record(format!("job_group {group_id}"));
        Ok(IndexingJobsResponse {
            jobs: vec![job("9f000000-0000-4000-8000-000000000001")],
        })
    }

    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        self.dash_auth(auth)?;
        self.record(format!("job {job_id}"));
        Ok(IndexingJobResponse { job: job(job_id) })
    }

    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        self.record(format!(
            "ephemeral {:?} {}",
            request.title,
            request.schema.is_some()
        ));
        Ok(EphemeralAppResponse {
            app: AppRecord {
                id: APP.into(),
                title: request.title.clone(),
                creator_id: None,
                created_at: None,
                org_id: None,
                status: Some("active".into()),
                admin_token: TOKEN.into(),
            },
            expires_ms: 1,
        })
    }
}

struct Fixture {
    server: ServerHandle,
    double: Arc<Double>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve_with(configure: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let double = Arc::new(Double::default());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut config = ServerConfig {
        log: RequestLog::Memory(log.clone()),
        ..ServerConfig::default()
    };
    configure(&mut config);
    let server = spawn(double.clone(), config).expect("server starts");
    Fixture {
        server,
        double,
        log,
    }
}

fn serve() -> Fixture {
    serve_with(|_| {})
}

// ---------------------------------------------------------------------------------------------
// Routes

#[test]
fn binds_loopback_on_a_free_port() {
    let fixture = serve();
    assert!(fixture.addr().ip().is_loopback());
    assert_ne!(fixture.addr().port(), 0);
    assert_eq!(
        fixture.server.url(),
        format!("http://127.0.0.1:{}", fixture.addr().port())
    );
}

#[test]
fn admin_routes_answer_with_the_engine_result() {
    let fixture = serve();
    let reply = admin(
        fixture.addr(),
        "/admin/query",
        r#"{"query":{"posts":{}},"inference?":true}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        reply.json(),
        json!({"query": {"posts": {}}, "inference": true})
    );

    let reply = admin(
        fixture.addr(),
        "/admin/transact",
        r#"{"steps":[["update","posts","x",{"a":1}]],"throw-on-missing-attrs?":1}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"tx-id": 42}));
    assert_eq!(
        fixture.double.calls(),
        [
            r#"query {"posts":{}}"#,
            r#"transact [["update","posts","x",{"a":1}]] true"#
        ]
    );
}

#[test]
fn booleans_follow_clojure_truthiness() {
    let fixture = serve();
    for (flag, expected) in [
        ("true", true),
        ("\"no\"", true),
        ("0", true),
        ("false", false),
        ("null", false),
    ] {
        let reply = admin(
            fixture.addr(),
            "/admin/query",
            &format!(r#"{{"query":{{}},"inference?":{flag}}}"#),
        );
        assert_eq!(reply.json()["inference"], json!(expected), "{flag}");
    }
}

#[test]
fn schema_perms_jobs_and_ephemeral_routes() {
    let fixture = serve();
    let addr = fixture.addr();
    let upper_app = APP.to_uppercase();

    let reply = dash_get(addr, &format!("/superadmin/apps/{APP}/schema"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"schema": {"refs": {}, "blobs": {}}}));

    let reply = dash_get(addr, &format!("/dash/apps/{upper_app}/schema/pull"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["app-title"], "double");

    for family in ["superadmin", "dash"] {
        let reply = dash_post(
            addr,
            &format!("/{family}/apps/{APP}/schema/push/plan"),
            r#"{"schema":{"entities":{}},"check_types":true,"supports_background_updates":true}"#,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["steps"], json!([]));
        let reply = dash_post(
            addr,
            &format!("/{family}/apps/{APP}/schema/push/apply"),
            r#"{"schema":{"entities":{}}}"#,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["indexing-jobs"], Value::Null);
    }

    let reply = dash_post(
        addr,
        &format!("/dash/apps/{APP}/schema/steps/apply"),
        r#"{"steps":[["delete-attr","9f000000-0000-4000-8000-000000000003"]]}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["steps"],
        json!([["delete-attr", "9f000000-0000-4000-8000-000000000003"]])
    );

    let reply = dash_get(
        addr,
        &format!("/dash/apps/{APP}/indexing-jobs/group/{GROUP}"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["jobs"][0]["job_status"], "completed");

    let job_id = "9F000000-0000-4000-8000-000000000007";
    let reply = dash_get(addr, &format!("/dash/apps/{APP}/indexing-jobs/{job_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["job"]["id"], job_id.to_lowercase());

    for path in [
        format!("/dash/apps/{APP}/perms/pull"),
        format!("/superadmin/apps/{APP}/perms"),
    ] {
        let reply = dash_get(addr, &path);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({"perms": {"posts": {"allow": {"view": "true"}}}})
        );
    }

    // No authorization at all.
    let reply = request(
        addr,
        "POST",
        "/dash/apps/ephemeral",
        &[("content-type", "application/json")],
        Some(r#"{"title":"  temp  ","schema":{"entities":{}}}"#),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["app"]["title"], "temp");
    assert_eq!(reply.json()["app"]["admin-token"], TOKEN);
    assert_eq!(reply.json()["expires_ms"], 1);

    assert_eq!(
        fixture.double.calls(),
        [
            "schema_pull",
            "schema_pull",
            r#"schema_plan {"entities":{}} true true"#,
            r#"schema_push {"entities":{}}"#,
            r#"schema_plan {"entities":{}} true true"#,
            r#"schema_push {"entities":{}}"#,
            "steps_apply 1",
            &format!("job_group {GROUP}"),
            &format!("job {}", job_id.to_lowercase()),
            r#"ephemeral "temp" true"#,
        ]
    );
}

#[test]
fn ephemeral_title_is_required_and_non_blank() {
    let fixture = serve();
    let post = |body: &str| {
        request(
            fixture.addr(),
            "POST",
            "/dash/apps/ephemeral",
            &[("content-type", "application/json")],
            Some(body),
        )
        .unwrap()
    };
    let missing = post("{}");
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"type": "param-missing", "message": "Missing parameter: [\"body\" \"title\"]",
               "hint": {"in": ["body", "title"]}})
    );
    let blank = post(r#"{"title":"   "}"#);
    assert_eq!(blank.status, 400);
    assert_eq!(blank.json()["type"], "param-malformed");
    assert_eq!(blank.json()["hint"]["original-input"], "   ");
    assert_eq!(post(r#"{"title":12}"#).json()["app"]["title"], "12");
}

// ---------------------------------------------------------------------------------------------
// Headers and parameters, in the server's order

#[test]
fn app_id_comes_from_the_header_or_the_query_string() {
    let fixture = serve();
    let addr = fixture.addr();
    let auth = bearer();
    let body = Some(r#"{"query":{}}"#);
    let json_type = ("content-type", "application/json");

    let by_query = request(
        addr,
        "POST",
        &format!("/admin/query?app_id={}", APP.to_uppercase()),
        &[json_type, ("authorization", &auth)],
        body,
    )
    .unwrap();
    assert_eq!(by_query.status, 200, "{}", by_query.text());

    let missing = request(
        addr,
        "POST",
        "/admin/query",
        &[json_type, ("authorization", &auth)],
        body,
    )
    .unwrap();
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"type": "param-missing",
               "message": "Missing parameter: [\"headers\" \"app-id\"]",
               "hint": {"in": ["headers", "app-id"], "possible-ins": [["query-params", "app_id"]]}})
    );

    // The header wins over the query string, even when it is the malformed one.
    let malformed = request(
        addr,
        "POST",
        &format!("/admin/query?app_id={APP}"),
        &[json_type, ("authorization", &auth), ("app-id", "nope")],
        body,
    )
    .unwrap();
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.json(),
        json!({"type": "param-malformed",
               "message": "Malformed parameter: [\"headers\" \"app-id\"]",
               "hint": {"in": ["headers", "app-id"],
                        "possible-ins": [["headers", "app-id"], ["query-params", "app_id"]],
                        "original-input": "nope"}})
    );

    let wrong_app = request(
        addr,
        "POST",
        "/admin/query",
        &[json_type, ("authorization", &auth), ("app-id", OTHER_APP)],
        body,
    )
    .unwrap();
    assert_eq!(wrong_app.status, 400);
    assert_eq!(wrong_app.json()["type"], "record-not-found");
}

#[test]
fn authorization_is_parsed_like_the_server() {
    let fixture = serve();
    let addr = fixture.addr();
    let query = |authorization: Option<&str>| {
        let mut headers = vec![("content-type", "application/json"), ("app-id", APP)];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        request(
            addr,
            "POST",
            "/admin/query",
            &headers,
            Some(r#"{"query":{}}"#),
        )
        .unwrap()
    };

    let missing = query(None);
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"type": "param-missing",
               "message": "Missing parameter: [\"headers\" \"authorization\"]",
               "hint": {"in": ["headers", "authorization"]}})
    );

    let malformed_token = "Bearer not-a-token-1234";
    let malformed = query(Some(malformed_token));
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["type"], "param-malformed");
    assert_eq!(
        malformed.json()["message"],
        "Malformed parameter: [\"headers\" \"authorization\"]"
    );
    assert!(!malformed.text().contains("not-a-token-1234"));

    // Without `Bearer `, the whole header is the token; case and spaces do not matter.
    assert_eq!(query(Some(TOKEN)).status, 200);
    assert_eq!(
        query(Some(&format!("Bearer   {}  ", TOKEN.to_uppercase()))).status,
        200
    );
    assert_eq!(query(Some(&format!("bearer {TOKEN}"))).status, 400);

    let platform = query(Some("Bearer pat_abcdef"));
    assert_eq!(platform.status, 400);
    assert_eq!(
        platform.json(),
        json!({"type": "record-not-found",
               "message": "Record not found: oauth-access-token",
               "hint": {"record-type": "oauth-access-token"}})
    );
    let personal = query(Some("Bearer per_abcdef"));
    assert_eq!(personal.json()["message"], "Record not found: instant-user");

    // Impersonation is refused, not silently run as admin.
    let auth = bearer();
    let impersonated = request(
        addr,
        "POST",
        "/admin/query",
        &[
            ("content-type", "application/json"),
            ("app-id", APP),
            ("authorization", &auth),
            ("as-email", "a@b.c"),
        ],
        Some(r#"{"query":{}}"#),
    )
    .unwrap();
    assert_eq!(impersonated.status, 400);
    assert_eq!(impersonated.json()["type"], "validation-failed");
    assert!(fixture.double.calls().iter().all(|call| call == "query {}"));
}

#[test]
fn body_parameters_are_checked_before_authentication_on_admin_routes() {
    let fixture = serve();
    let addr = fixture.addr();
    let json_type = ("content-type", "application/json");
    // No app id and no token: the body is still what is reported.
    let no_query = request(
        addr,
        "POST",
        "/admin/query",
        &[json_type],
        Some(r#"{"q":1}"#),
    )
    .unwrap();
    assert_eq!(
        no_query.json(),
        json!({"type": "param-missing", "message": "Missing parameter: [\"body\" \"query\"]",
               "hint": {"in": ["body", "query"]}})
    );
    let not_a_map = request(
        addr,
        "POST",
        "/admin/query",
        &[json_type],
        Some(r#"{"query":[1]}"#),
    )
    .unwrap();
    assert_eq!(
        not_a_map.json(),
        json!({"type": "param-malformed", "message": "Malformed parameter: [\"body\" \"query\"]",
               "hint": {"in": ["body", "query"], "original-input": [1]}})
    );
    let steps = request(
        addr,
        "POST",
        "/admin/transact",
        &[json_type],
        Some(r#"{"steps":"x"}"#),
    )
    .unwrap();
    assert_eq!(
        steps.json()["message"],
        "Malformed parameter: [\"body\" \"steps\"]"
    );
    let no_steps = request(
        addr,
        "POST",
        "/admin/transact",
        &[json_type],
        Some(r#"{"steps":false}"#),
    )
    .unwrap();
    assert_eq!(no_steps.json()["type"], "param-missing");

    // A map of steps is walked as its entries, as the server's collection check does.
    let map_steps = admin(addr, "/admin/transact", r#"{"steps":{"update":["posts"]}}"#);
    assert_eq!(map_steps.status, 200);
    assert_eq!(
        fixture.double.calls(),
        [r#"transact [["update",["posts"]]] false"#]
    );
}

#[test]
fn superadmin_and_dash_routes_check_in_the_server_order() {
    let fixture = serve();
    let addr = fixture.addr();
    // Superadmin: the token first.
    let reply = request(addr, "GET", "/superadmin/apps/not-a-uuid/schema", &[], None).unwrap();
    assert_eq!(
        reply.json()["message"],
        "Missing parameter: [\"headers\" \"authorization\"]"
    );
    // Dash: the path app id first (the dashboard-user fallback reads it before the token).
    let reply = request(addr, "GET", "/dash/apps/not-a-uuid/schema/pull", &[], None).unwrap();
    assert_eq!(
        reply.json(),
        json!({"type": "param-malformed", "message": "Malformed parameter: [\"params\" \"app_id\"]",
               "hint": {"in": ["params", "app_id"], "original-input": "not-a-uuid"}})
    );
    let reply = request(
        addr,
        "GET",
        &format!("/dash/apps/{APP}/schema/pull"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(reply.json()["type"], "param-missing");
    // Path parameters are percent-decoded; undecodable ones are malformed, not refused.
    let reply = dash_get(addr, "/dash/apps/%ff/schema/pull");
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["message"],
        "Malformed parameter: [\"params\" \"app_id\"]"
    );
    let encoded = format!("/dash/apps/%37{}/schema/pull", &APP[1..]);
    assert_eq!(dash_get(addr, &encoded).status, 200);

    // The engine's answers pass through with their status.
    let mismatch = dash_get(addr, &format!("/dash/apps/{OTHER_APP}/schema/pull"));
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json()["hint"],
        json!({"reason": "admin-token-mismatch"})
    );
    let unknown = request(
        addr,
        "GET",
        &format!("/dash/apps/{APP}/schema/pull"),
        &[(
            "authorization",
            "Bearer 00000000-0000-4000-8000-000000000009",
        )],
        None,
    )
    .unwrap();
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["message"], "Record not found: instant-user");
    // A platform token on a dash route ends on the dashboard-user lookup too.
    let platform = request(
        addr,
        "GET",
        &format!("/dash/apps/{APP}/schema/pull"),
        &[("authorization", "Bearer pat_x")],
        None,
    )
    .unwrap();
    assert_eq!(platform.status, 401);

    // Parameters read after authentication lose to a bad token, and win over a good one.
    let bad_token_bad_job = request(
        addr,
        "GET",
        &format!("/dash/apps/{APP}/indexing-jobs/nope"),
        &[(
            "authorization",
            "Bearer 00000000-0000-4000-8000-000000000009",
        )],
        None,
    )
    .unwrap();
    assert_eq!(bad_token_bad_job.status, 401);
    let bad_job = dash_get(addr, &format!("/dash/apps/{APP}/indexing-jobs/nope"));
    assert_eq!(
        bad_job.json(),
        json!({"type": "param-malformed", "message": "Malformed parameter: [\"params\" \"job_id\"]",
               "hint": {"in": ["params", "job_id"], "original-input": "nope"}})
    );
    let bad_group = dash_get(addr, &format!("/dash/apps/{APP}/indexing-jobs/group/nope"));
    assert_eq!(
        bad_group.json()["message"],
        "Malformed parameter: [\"params\" \"group_id\"]"
    );
    let bad_steps = dash_post(
        addr,
        &format!("/dash/apps/{APP}/schema/steps/apply"),
        r#"{"steps":[1]}"#,
    );
    assert_eq!(bad_steps.status, 400);
    assert_eq!(
        bad_steps.json(),
        json!({"type": "validation-failed", "message": "Validation failed for tx-steps",
               "hint": {"data-type": "tx-steps", "input": [1],
                        "errors": [{"expected": "coll?", "in": [0]}]}})
    );
    let no_steps = dash_post(addr, &format!("/dash/apps/{APP}/schema/steps/apply"), "{}");
    assert_eq!(
        no_steps.json()["message"],
        "Missing parameter: [\"body\" \"steps\"]"
    );
    assert_eq!(fixture.double.calls(), ["schema_pull"]);
}

// ---------------------------------------------------------------------------------------------
// Errors and bad input

#[test]
fn engine_errors_keep_their_envelope_and_status() {
    let fixture = serve();
    let reply = admin(
        fixture.addr(),
        "/admin/query",
        r#"{"query":{"invalid":{}}}"#,
    );
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"type": "validation-failed", "message": "Validation failed for query",
               "hint": {"data-type": "query", "input": {"invalid": {}},
                        "errors": [{"expected": "map?", "in": ["invalid"]}]}})
    );
}

#[test]
fn a_panicking_engine_call_is_the_servers_500_and_the_server_lives_on() {
    let fixture = serve();
    let reply = admin(fixture.addr(), "/admin/query", r#"{"query":{"panic":{}}}"#);
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"type": "unknown", "message": "Something went wrong. Sorry about this!",
               "hint": {"debug-uri": null}})
    );
    assert_eq!(
        admin(fixture.addr(), "/admin/query", r#"{"query":{}}"#).status,
        200
    );
}

#[test]
fn unmatched_routes_are_the_servers_404() {
    let fixture = serve();
    let addr = fixture.addr();
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/admin/query"),
        ("POST", "/admin/query/"),
        ("DELETE", "/dash/apps/ephemeral"),
        ("POST", "/superadmin/apps/x/schema"),
        ("GET", "/"),
    ] {
        let reply = request(addr, method, path, &[], None).unwrap();
        assert_eq!(reply.status, 404, "{method} {path}");
        assert_eq!(
            reply.json(),
            json!({"message": "Oops! We couldn't match this route."}),
            "{method} {path}"
        );
    }
}

#[test]
fn malformed_json_is_ring_jsons_plain_text_400() {
    let fixture = serve();
    let addr = fixture.addr();
    for body in [r#"{"query": "#, "{nope}", "[1,]"] {
        let reply = admin(addr, "/admin/query", body);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.header("content-type"), Some("text/plain"));
        assert_eq!(reply.text(), "Malformed JSON in request body.");
    }
    // Only the first JSON value is read, as the server's parser does.
    assert_eq!(
        admin(addr, "/admin/query", r#"{"query":{}} trailing"#).status,
        200
    );
    // Not JSON at all, or no body: the server sees no parameters.
    let reply = request(
        addr,
        "POST",
        "/admin/query",
        &[("content-type", "text/plain"), ("app-id", APP)],
        Some(r#"{"query":{}}"#),
    )
    .unwrap();
    assert_eq!(reply.json()["type"], "param-missing");
    let reply = admin(addr, "/admin/query", "");
    assert_eq!(
        reply.json()["message"],
        "Missing parameter: [\"body\" \"query\"]"
    );
    // Invalid UTF-8 inside a string.
    let auth = bearer();
    let invalid: &[u8] = b"{\"query\":\"\xff\"}";
    let head = format!(
        "POST /admin/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: application/json\r\napp-id: {APP}\r\nauthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
        invalid.len()
    );
    let reply = send_raw(addr, &head, invalid).unwrap();
    assert_eq!(reply.status, 400);
    assert!(fixture.double.calls().len() <= 2);
}

#[test]
fn oversized_bodies_get_413_and_the_connection_ends() {
    let fixture = serve_with(|config| config.body_limit = 1024);
    let addr = fixture.addr();
    let big = format!(r#"{{"query":{{"x":"{}"}}}}"#, "a".repeat(4096));
    let started = Instant::now();
    let reply = admin(addr, "/admin/query", &big);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(
        reply.json(),
        json!({"type": "validation-failed",
               "message": "Validation failed for body: The request body is too large.",
               "hint": {"data-type": "body", "input": null,
                        "errors": [{"message": "The request body is too large."}]}})
    );
    // Chunked, so the size is only known while reading.
    let auth = bearer();
    let head = format!(
        "POST /admin/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: application/json\r\napp-id: {APP}\r\nauthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut chunked = Vec::new();
    for _ in 0..8 {
        chunked.extend_from_slice(format!("200\r\n{}\r\n", "b".repeat(512)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = send_raw(addr, &head, &chunked).unwrap();
    assert_eq!(reply.status, 413);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(fixture.double.calls().is_empty());
    // Within the limit is fine.
    assert_eq!(admin(addr, "/admin/query", r#"{"query":{}}"#).status, 200);
}

#[test]
fn an_incomplete_body_times_out_with_408() {
    let fixture = serve_with(|config| config.body_timeout = Duration::from_millis(300));
    let auth = bearer();
    let head = format!(
        "POST /admin/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\ncontent-type: application/json\r\napp-id: {APP}\r\nauthorization: {auth}\r\nContent-Length: 100\r\n\r\n"
    );
    let started = Instant::now();
    let reply = send_raw(fixture.addr(), &head, br#"{"query""#).unwrap();
    assert_eq!(reply.status, 408);
    assert_eq!(reply.json()["type"], "validation-failed");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(fixture.double.calls().is_empty());
}

#[test]
fn garbage_requests_get_an_answer_or_a_close_never_a_hang() {
    let fixture = serve();
    let addr = fixture.addr();
    for garbage in [
        "NOT HTTP AT ALL\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "POST /admin/query HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ] {
        let started = Instant::now();
        let reply = send_raw(addr, garbage, b"");
        if let Some(reply) = reply {
            assert!(reply.status >= 400, "{garbage:?}: {}", reply.status);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{garbage:?}");
    }
    assert_eq!(admin(addr, "/admin/query", r#"{"query":{}}"#).status, 200);
}

// ---------------------------------------------------------------------------------------------
// Logging

#[test]
fn tokens_never_reach_the_log() {
    let fixture = serve();
    let addr = fixture.addr();
    admin(addr, "/admin/query", r#"{"query":{}}"#);
    let malformed = "Bearer secret-looking-token-value";
    request(
        addr,
        "POST",
        "/admin/transact?token=5e0c9a52-1111-4222-8333-944445555666",
        &[
            ("content-type", "application/json"),
            ("app-id", APP),
            ("authorization", malformed),
        ],
        Some(&format!(r#"{{"steps":[],"admin-token":"{TOKEN}"}}"#)),
    );
    dash_get(addr, &format!("/dash/apps/{APP}/schema/pull"));
    let log = fixture.log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[0].starts_with("POST /admin/query 200 "), "{log:?}");
    assert!(log[1].starts_with("POST /admin/transact 400 "), "{log:?}");
    for line in &log {
        assert!(!line.contains(TOKEN), "{line}");
        assert!(
            !line.to_lowercase().contains(&TOKEN.to_lowercase()),
            "{line}"
        );
        assert!(!line.contains("secret-looking"), "{line}");
        assert!(!line.contains("Bearer"), "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

fn faulty(configure: impl FnOnce(&mut FaultConfig)) -> Fixture {
    serve_with(|config| configure(&mut config.faults))
}

#[test]
fn fault_429_has_retry_after_the_envelope_and_no_side_effect() {
    let fixture = faulty(|faults| {
        faults.rate_429 = 1.0;
        faults.retry_after_secs = 3;
    });
    let reply = admin(fixture.addr(), "/admin/transact", r#"{"steps":[]}"#);
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert_eq!(
        reply.json(),
        json!({"type": "rate-limited",
               "message": "You're making too many requests. Please email support@instantdb.com or ask for help in the Discord.",
               "hint": null})
    );
    assert!(fixture.double.calls().is_empty());
    assert!(
        fixture.log()[0].ends_with("fault=429"),
        "{:?}",
        fixture.log()
    );
}

#[test]
fn fault_5xx_is_a_500_envelope_or_a_plain_503_with_no_side_effect() {
    let fixture = faulty(|faults| {
        faults.rate_5xx = 1.0;
        faults.seed = 11;
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..16 {
        let reply = admin(fixture.addr(), "/admin/transact", r#"{"steps":[]}"#);
        match reply.status {
            500 => assert_eq!(reply.json()["type"], "unknown"),
            503 => assert_eq!(reply.text(), "Service Unavailable"),
            other => panic!("{other}"),
        }
        seen.insert(reply.status);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [500, 503]);
    assert!(fixture.double.calls().is_empty());
}

#[test]
fn fault_drop_closes_without_a_response_before_the_side_effect() {
    let fixture = faulty(|faults| faults.drop_rate = 1.0);
    let started = Instant::now();
    let reply = request(
        fixture.addr(),
        "POST",
        "/admin/transact",
        &[
            ("content-type", "application/json"),
            ("app-id", APP),
            ("authorization", &bearer()),
        ],
        Some(r#"{"steps":[]}"#),
    );
    assert!(reply.is_none(), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(fixture.double.calls().is_empty());
    assert!(
        fixture.log()[0].contains(" dropped "),
        "{:?}",
        fixture.log()
    );
}

#[test]
fn fault_drop_after_keeps_the_side_effect_and_loses_the_answer() {
    let fixture = faulty(|faults| faults.drop_after_rate = 1.0);
    let reply = request(
        fixture.addr(),
        "POST",
        "/admin/transact",
        &[
            ("content-type", "application/json"),
            ("app-id", APP),
            ("authorization", &bearer()),
        ],
        Some(r#"{"steps":[["update","posts","x",{}]]}"#),
    );
    assert!(reply.is_none(), "{reply:?}");
    assert_eq!(
        fixture.double.calls(),
        [r#"transact [["update","posts","x",{}]] false"#]
    );
    assert!(
        fixture.log()[0].contains(" dropped-after-200 "),
        "{:?}",
        fixture.log()
    );
}

#[test]
fn fault_slow_body_sends_the_same_body_in_delayed_chunks() {
    let delay = Duration::from_millis(40);
    let fixture = faulty(|faults| {
        faults.slow_body_rate = 1.0;
        faults.slow_body_delay = delay;
    });
    let query = format!(r#"{{"query":{{"posts":{{"x":"{}"}}}}}}"#, "p".repeat(400));
    let started = Instant::now();
    let reply = admin(fixture.addr(), "/admin/query", &query);
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["query"]["posts"]["x"], "p".repeat(400));
    // Eight chunks, seven pauses.
    assert!(elapsed >= delay * 7, "{elapsed:?}");
}

#[test]
fn fault_latency_delays_every_request() {
    let fixture = faulty(|faults| faults.latency = Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(
        admin(fixture.addr(), "/admin/query", r#"{"query":{}}"#).status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[test]
fn faults_are_limited_to_the_configured_paths() {
    let fixture = faulty(|faults| {
        faults.rate_429 = 1.0;
        faults.path_prefixes = vec!["/admin/transact".into()];
    });
    assert_eq!(
        admin(fixture.addr(), "/admin/query", r#"{"query":{}}"#).status,
        200
    );
    assert_eq!(
        admin(fixture.addr(), "/admin/transact", r#"{"steps":[]}"#).status,
        429
    );
}

#[test]
fn the_same_seed_replays_the_same_fault_sequence() {
    let run = |seed: u64| {
        let fixture = faulty(|faults| {
            faults.seed = seed;
            faults.rate_429 = 0.3;
            faults.rate_5xx = 0.2;
            faults.drop_rate = 0.1;
        });
        (0..30)
            .map(|_| {
                request(
                    fixture.addr(),
                    "POST",
                    "/admin/query",
                    &[
                        ("content-type", "application/json"),
                        ("app-id", APP),
                        ("authorization", &bearer()),
                    ],
                    Some(r#"{"query":{}}"#),
                )
                .map_or(0, |reply| reply.status)
            })
            .collect::<Vec<u16>>()
    };
    let first = run(2024);
    assert_eq!(first, run(2024));
    assert_ne!(first, run(2025));
    for status in [0, 200, 429] {
        assert!(first.contains(&status), "{first:?}");
    }
    // And it is exactly what the pure decision function says.
    let config = FaultConfig {
        seed: 2024,
        rate_429: 0.3,
        rate_5xx: 0.2,
        drop_rate: 0.1,
        ..FaultConfig::default()
    };
    let predicted: Vec<&str> = (0..30).map(|n| config.decide(n).label()).collect();
    let observed: Vec<&str> = first
        .iter()
        .map(|status| match status {
            0 => "drop",
            200 => "-",
            429 => "429",
            500 => "500",
            503 => "503",
            _ => "?",
        })
        .collect();
    assert_eq!(predicted, observed);
}

#[test]
fn shutdown_drains_and_stops_accepting() {
    let fixture = serve();
    let addr = fixture.addr();
    assert_eq!(admin(addr, "/admin/query", r#"{"query":{}}"#).status, 200);
    fixture.server.shutdown().unwrap();
    assert!(TcpStream::connect(addr).is_err());
}

// ---------------------------------------------------------------------------------------------
// The engine over HTTP

fn engine_server() -> ServerHandle {
    let engine = instant_local::engine::LocalEngine::in_memory().expect("engine");
    spawn(
        Arc::new(engine),
        ServerConfig {
            log: RequestLog::Off,
            ..ServerConfig::default()
        },
    )
    .expect("server starts")
}

/// A request as the admin SDK sends it, for `app`.
fn sdk(addr: SocketAddr, path: &str, app: &str, token: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {token}");
    request(
        addr,
        "POST",
        &format!("{path}?app_id={app}"),
        &[
            ("content-type", "application/json"),
            ("app-id", app),
            ("authorization", &auth),
            ("Instant-Admin-Version", "v1.0.67"),
        ],
        Some(&body.to_string()),
    )
    .expect("an answer")
}

fn platform(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Reply {
    let auth = format!("Bearer {token}");
    let text = body.map(Value::to_string);
    request(
        addr,
        method,
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        text.as_deref(),
    )
    .expect("an answer")
}

fn posts_schema(extra: Value) -> Value {
    let mut attrs = json!({
        "title": {"valueType": "string", "required": true, "isIndexed": true,
                  "config": {"indexed": true, "unique": false}, "metadata": {}},
        "body": {"valueType": "string", "required": false, "isIndexed": false,
                 "config": {"indexed": false, "unique": false}, "metadata": {}}
    });
    attrs
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"entities": {"posts": {"attrs": attrs, "links": {}}}, "links": {}, "rooms": {}})
}

#[test]
fn the_engine_end_to_end_over_http() {
    let server = engine_server();
    let addr = server.addr();

    let created = request(
        addr,
        "POST",
        "/dash/apps/ephemeral",
        &[("content-type", "application/json")],
        Some(&json!({"title": "e2e", "schema": posts_schema(json!({}))}).to_string()),
    )
    .unwrap();
    assert_eq!(created.status, 200, "{}", created.text());
    let app = created.json()["app"]["id"].as_str().unwrap().to_string();
    let token = created.json()["app"]["admin-token"]
        .as_str()
        .unwrap()
        .to_string();

    let post = "8aa64e4c-64f9-472e-8a61-3fa28870e6cb";
    let written = sdk(
        addr,
        "/admin/transact",
        &app,
        &token,
        &json!({"steps": [["update", "posts", post, {"title": "hello", "body": "b"}]]}),
    );
    assert_eq!(written.status, 200, "{}", written.text());
    assert!(written.json()["tx-id"].as_i64().is_some());

    let read = sdk(
        addr,
        "/admin/query",
        &app,
        &token,
        &json!({"query": {"posts": {"$": {"where": {"title": "hello"}}}}}),
    );
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["posts"][0]["id"], post);
    assert_eq!(read.json()["posts"][0]["title"], "hello");

    let bad_order = sdk(
        addr,
        "/admin/query",
        &app,
        &token,
        &json!({"query": {"posts": {"$": {"order": {"body": "asc"}}}}}),
    );
    assert_eq!(bad_order.status, 400, "{}", bad_order.text());
    assert_eq!(bad_order.json()["type"], "validation-failed");

    let bad_id = sdk(
        addr,
        "/admin/transact",
        &app,
        &token,
        &json!({"steps": [["update", "posts", "not-a-uuid", {"title": "x"}]]}),
    );
    assert_eq!(bad_id.status, 400, "{}", bad_id.text());
    assert_eq!(bad_id.json()["type"], "validation-failed");

    let other = uuid_v4();
    let wrong_token = sdk(addr, "/admin/query", &app, &other, &json!({"query": {}}));
    assert_eq!(wrong_token.status, 400);
    assert_eq!(wrong_token.json()["type"], "record-not-found");
    assert!(!wrong_token.text().contains(&token));

    let pulled = platform(
        addr,
        "GET",
        &format!("/dash/apps/{app}/schema/pull"),
        &token,
        None,
    );
    assert_eq!(pulled.status, 200, "{}", pulled.text());
    assert_eq!(pulled.json()["app-title"], "e2e");
    assert!(pulled.json()["schema"]["blobs"]["posts"]["title"].is_object());
    let schema = platform(
        addr,
        "GET",
        &format!("/superadmin/apps/{app}/schema"),
        &token,
        None,
    );
    assert_eq!(schema.status, 200, "{}", schema.text());
    assert_eq!(schema.json()["schema"], pulled.json()["schema"]);

    let changed = posts_schema(json!({
        "rank": {"valueType": "number", "required": false, "isIndexed": true,
                 "config": {"indexed": true, "unique": false}, "metadata": {}}
    }));
    let body = json!({"schema": changed, "check_types": true, "supports_background_updates": true});
    let plan = platform(
        addr,
        "POST",
        &format!("/superadmin/apps/{app}/schema/push/plan"),
        &token,
        Some(&body),
    );
    assert_eq!(plan.status, 200, "{}", plan.text());
    assert_eq!(plan.json()["steps"][0][0], "add-attr");
    let applied = platform(
        addr,
        "POST",
        &format!("/superadmin/apps/{app}/schema/push/apply"),
        &token,
        Some(&body),
    );
    assert_eq!(applied.status, 200, "{}", applied.text());
    let after = platform(
        addr,
        "GET",
        &format!("/superadmin/apps/{app}/schema"),
        &token,
        None,
    );
    assert!(after.json()["schema"]["blobs"]["posts"]["rank"].is_object());

    let perms = platform(
        addr,
        "GET",
        &format!("/dash/apps/{app}/perms/pull"),
        &token,
        None,
    );
    assert_eq!(perms.status, 200, "{}", perms.text());
    assert!(perms.json().get("perms").is_some());

    // A second app's token is bound to its own app.
    let second = request(
        addr,
        "POST",
        "/dash/apps/ephemeral",
        &[("content-type", "application/json")],
        Some(r#"{"title":"second"}"#),
    )
    .unwrap();
    let second_token = second.json()["app"]["admin-token"]
        .as_str()
        .unwrap()
        .to_string();
    let mismatch = platform(
        addr,
        "GET",
        &format!("/dash/apps/{app}/schema/pull"),
        &second_token,
        None,
    );
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json()["hint"],
        json!({"reason": "admin-token-mismatch"})
    );

    let unknown = platform(
        addr,
        "GET",
        &format!("/dash/apps/{app}/schema/pull"),
        &other,
        None,
    );
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["message"], "Record not found: instant-user");

    let bad_job = platform(
        addr,
        "GET",
        &format!("/dash/apps/{app}/indexing-jobs/{}", uuid_v4()),
        &token,
        None,
    );
    assert_eq!(bad_job.status, 400, "{}", bad_job.text());
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads one response with a `content-length` from a kept-alive connection.
fn read_one(stream: &mut TcpStream) -> Reply {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("a response head");
        received.push(byte[0]);
    }
    let head = parse_reply(&received);
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    Reply { body, ..head }
}

#[test]
fn kept_alive_connections_serve_several_requests_and_a_drop_ends_only_that_one() {
    let fixture = faulty(|faults| {
        faults.drop_after_rate = 1.0;
        faults.path_prefixes = vec!["/admin/transact".into()];
    });
    let mut stream = TcpStream::connect(fixture.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let auth = bearer();
    let body = r#"{"query":{}}"#;
    let query = format!(
        "POST /admin/query HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\napp-id: {APP}\r\nauthorization: {auth}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..3 {
        stream.write_all(query.as_bytes()).unwrap();
        assert_eq!(read_one(&mut stream).status, 200);
    }
    let steps = r#"{"steps":[]}"#;
    let transact = format!(
        "POST /admin/transact HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\napp-id: {APP}\r\nauthorization: {auth}\r\nContent-Length: {}\r\n\r\n{steps}",
        steps.len()
    );
    stream.write_all(transact.as_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // The server itself is fine.
    assert_eq!(admin(fixture.addr(), "/admin/query", body).status, 200);
}
