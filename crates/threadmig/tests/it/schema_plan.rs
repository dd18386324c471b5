//! `threadmig schema plan` against the embedded engine served over HTTP in-process.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use instant_api::{AppAuth, EphemeralAppRequest, InstantApi, SchemaPushRequest};
use instant_local::engine::LocalEngine;
use instant_local::server::{spawn, RequestLog, ServerConfig, ServerHandle};
use serde_json::{json, Value};

use crate::{temp_dir, threadmig};

struct Served {
    server: ServerHandle,
    engine: LocalEngine,
    auth: AppAuth,
}

fn served() -> Served {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "plan".into(),
            schema: None,
            rules: None,
        })
        .unwrap()
        .app
        .auth();
    let server = spawn(
        Arc::new(engine.clone()),
        ServerConfig {
            log: RequestLog::Off,
            ..ServerConfig::default()
        },
    )
    .unwrap();
    Served {
        server,
        engine,
        auth,
    }
}

fn posts_schema(title_unique: bool) -> Value {
    let attr = |unique: bool| {
        json!({"valueType": "string", "required": false, "isIndexed": false,
               "config": {"indexed": false, "unique": unique}, "metadata": {}})
    };
    json!({"entities": {"posts": {"attrs": {"title": attr(title_unique), "body": attr(false)}, "links": {}}},
           "links": {}, "rooms": {}})
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn plans_through_the_http_adapter_and_writes_both_files() {
    let served = served();
    let dir = temp_dir("schema-plan");
    let token_file = dir.join("token");
    std::fs::write(
        &token_file,
        format!("{}\n", served.auth.admin_token.expose()),
    )
    .unwrap();
    let (out, md) = (dir.join("plan.json"), dir.join("plan.md"));
    let url = served.server.url();
    let run = threadmig(
        &[
            "--json",
            "schema",
            "plan",
            "--app-id",
            &served.auth.app_id,
            "--schema-file",
            "builtin:thread-v1",
            "--instant-api-uri",
            &url,
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--instructions-out",
            md.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A fresh app only gains attributes: every step is safe.
    let printed: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let keys: Vec<&str> = printed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["appId", "summary", "gate", "out"]);
    assert_eq!(printed["gate"], "safe");
    assert_eq!(printed["appId"], served.auth.app_id.as_str());
    let total = printed["summary"]["total"].as_u64().unwrap();
    assert!(total > 20, "{printed}");
    assert_eq!(
        printed["summary"]["countsBySeverity"]["safe"].as_u64(),
        Some(total)
    );

    let report = read_json(&out);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["endpoint"],
        format!(
            "{url}/superadmin/apps/{}/schema/push/plan",
            served.auth.app_id
        )
    );
    assert_eq!(
        report["instructions"].as_array().unwrap().len() as u64,
        total
    );
    assert_eq!(report["instructions"][0]["index"], 1);
    assert_eq!(
        report["payload"]["steps"].as_array().unwrap().len() as u64,
        total
    );
    assert_eq!(report["meta"]["tokenSource"], "file");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("- Gate: **safe**"), "{markdown}");

    // The token appears nowhere.
    let token = served.auth.admin_token.expose();
    for text in [
        &run.stdout,
        &run.stderr,
        &std::fs::read_to_string(&out).unwrap(),
        &markdown,
    ] {
        assert!(!text.contains(token));
    }
}

#[test]
fn a_critical_step_blocks_and_exits_1_with_the_token_from_stdin() {
    let served = served();
    served
        .engine
        .schema_push(
            &served.auth,
            &SchemaPushRequest {
                schema: posts_schema(false),
                check_types: true,
                supports_background_updates: true,
            },
        )
        .unwrap();
    let dir = temp_dir("schema-plan-blocked");
    let schema_file = dir.join("schema.json");
    std::fs::write(&schema_file, posts_schema(true).to_string()).unwrap();
    let out = dir.join("plan.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_threadmig"))
        .args([
            "schema",
            "plan",
            "--app-id",
            &served.auth.app_id,
            "--schema-file",
            schema_file.to_str().unwrap(),
            "--api-uri",
            &served.server.url(),
            "--admin-token-file",
            "-",
            "--out",
            out.to_str().unwrap(),
            "--instructions-out",
            dir.join("plan.md").to_str().unwrap(),
        ])
        .env_remove("CLERK_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(served.auth.admin_token.expose().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unique") && stdout.contains("gate: blocked"),
        "{stdout}"
    );
    let report = read_json(&out);
    assert_eq!(report["gate"], "blocked");
    assert_eq!(report["summary"]["countsByType"], json!({"unique": 1}));
    assert_eq!(report["instructions"][0]["target"], "posts.title");
    assert_eq!(report["meta"]["tokenSource"], "stdin");
}

#[test]
fn refusals_and_missing_credentials_are_clear_errors() {
    let served = served();
    let dir = temp_dir("schema-plan-errors");
    let token_file = dir.join("token");
    let wrong = "00000000-1111-4222-8333-444444444444";
    std::fs::write(&token_file, wrong).unwrap();
    let base = [
        "schema",
        "plan",
        "--app-id",
        &served.auth.app_id,
        "--schema-file",
        "builtin:thread-v1",
        "--instant-api-uri",
        &served.server.url(),
    ];
    let out = dir.join("plan.json");
    let with = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        threadmig(&args, Some(&dir))
    };

    let run = with(&["--admin-token-file", token_file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("record-not-found"), "{}", run.stderr);
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);
    assert!(!out.exists());

    let run = with(&[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--admin-token-file"), "{}", run.stderr);

    let run = with(&["--org", "org_123"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("CLERK_SECRET_KEY"), "{}", run.stderr);

    // Nothing listens here: a transport failure after the retries, reported, exit 2.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = threadmig(
        &[
            "schema",
            "plan",
            "--app-id",
            &served.auth.app_id,
            "--schema-file",
            "builtin:thread-v1",
            "--instant-api-uri",
            &closed,
            "--http-max-retries",
            "1",
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("connect error after 2 attempt(s)"),
        "{}",
        run.stderr
    );
}

/// A one-route stand-in for Clerk's Backend API: `GET /v1/organizations/org_1` with the app's
/// credentials in `private_metadata.instant`, 401 for any other key.
fn fake_clerk(app_id: &str, token: &str, key: &'static str) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = json!({"object": "organization", "id": "org_1", "name": "Org", "slug": "org",
                      "private_metadata": {"instant": {"appId": app_id, "adminToken": token}}})
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.to_ascii_lowercase());
            }
            let authorised = head
                .iter()
                .any(|line| line.trim() == format!("authorization: bearer {key}"));
            let found = head[0].starts_with("get /v1/organizations/org_1 ");
            let (status, text) = match (authorised, found) {
                (false, _) => (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"authentication_invalid"}]}"#.to_string(),
                ),
                (true, false) => (
                    "404 Not Found",
                    r#"{"errors":[{"code":"resource_not_found"}]}"#.to_string(),
                ),
                (true, true) => ("200 OK", body.clone()),
            };
            let _ = (&stream).write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
        }
    });
    url
}

#[test]
fn org_credentials_come_from_the_directory() {
    let served = served();
    let key = "sk_test_fake_clerk_key";
    let clerk = fake_clerk(&served.auth.app_id, served.auth.admin_token.expose(), key);
    let dir = temp_dir("schema-plan-org");
    let out = dir.join("plan.json");
    let run = |org: &str, app_id: &str| {
        Command::new(env!("CARGO_BIN_EXE_threadmig"))
            .args([
                "--json",
                "schema",
                "plan",
                "--app-id",
                app_id,
                "--schema-file",
                "builtin:thread-v1",
                "--instant-api-uri",
                &served.server.url(),
                "--org",
                org,
                "--clerk-api-uri",
                &clerk,
                "--out",
                out.to_str().unwrap(),
                "--instructions-out",
                dir.join("plan.md").to_str().unwrap(),
            ])
            .env("CLERK_SECRET_KEY", key)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let output = run("org_1", &served.auth.app_id);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report = read_json(&out);
    assert_eq!(report["meta"]["tokenSource"], "org-directory");
    assert_eq!(report["orgId"], "org_1");
    let token = served.auth.admin_token.expose();
    assert!(!String::from_utf8_lossy(&output.stdout).contains(token));
    assert!(!stderr.contains(token) && !stderr.contains(key));

    let output = run("org_2", &served.auth.app_id);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("org_2"));

    let output = run("org_1", "7a1c0d1e-0000-4000-8000-00000000ffff");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("not --app-id"), "{stderr}");
}

#[test]
fn org_credentials_come_from_the_embedded_workspace() {
    // The embedded default: the workspace's own organisations, served over HTTP by the same
    // engine, and no Clerk key anywhere.
    let dir = temp_dir("schema-plan-workspace");
    let workspace = dir.join("ws");
    let engine = LocalEngine::open(&workspace).unwrap();
    let app = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "acme".into(),
            schema: None,
            rules: None,
        })
        .unwrap()
        .app;
    for (org_id, credentials) in [
        ("org_acme", instant_local::store::OrgCredentials::Present),
        ("org_nocreds", instant_local::store::OrgCredentials::Missing),
    ] {
        engine
            .store()
            .upsert_org(&instant_local::store::OrgRecord {
                org_id: org_id.into(),
                name: org_id.into(),
                slug: org_id.into(),
                app_id: Some(app.id.clone()),
                credentials,
            })
            .unwrap();
    }
    let server = spawn(
        Arc::new(engine),
        ServerConfig {
            log: RequestLog::Off,
            ..ServerConfig::default()
        },
    )
    .unwrap();
    let run = |org: &str| {
        Command::new(env!("CARGO_BIN_EXE_threadmig"))
            .args([
                "--json",
                "schema",
                "plan",
                "--app-id",
                &app.id,
                "--schema-file",
                "builtin:thread-v1",
            ])
            .args([
                "--instant-api-uri",
                &server.url(),
                "--org",
                org,
                "--workspace",
                workspace.to_str().unwrap(),
            ])
            .args(["--out", "plan.json", "--instructions-out", "plan.md"])
            .env_remove("CLERK_SECRET_KEY")
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let output = run("org_acme");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        read_json(&dir.join("plan.json"))["meta"]["tokenSource"],
        "org-directory"
    );

    let output = run("org_nocreds");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("missing_instant_credentials"), "{stderr}");
}
