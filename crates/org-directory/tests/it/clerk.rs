//! The Clerk adapter against the loopback double.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_client::ResilienceConfig;
use org_directory::{
    ClerkDirectory, CredentialsOutcome, DirectoryError, IssueCode, Org, OrgDirectory, Secret,
};
use serde_json::{json, Value};

use crate::clerk_double::{organization, ClerkDouble, Scripted};

const SECRET: &str = "sk_test_Zq8dWlDoubleSecret0001";

/// Fast retries, no rate limit, fixed jitter: tests measure behaviour, not patience.
fn fast() -> ResilienceConfig {
    ResilienceConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_requests_per_second: None,
        jitter_seed: Some(7),
        ..ResilienceConfig::default()
    }
}

fn directory(double: &ClerkDouble, secret: &str) -> ClerkDirectory {
    ClerkDirectory::new(&format!("{}//", double.base_url()), Secret::new(secret))
        .unwrap()
        .with_resilience(fast())
        .unwrap()
}

fn fleet(count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| {
            organization(
                &format!("org_{index:04}"),
                &format!("Org {index}"),
                &format!("org-{index}"),
                json!({"instant": {"appId": format!("app-{index}"), "adminToken": format!("tok-{index}")}}),
            )
        })
        .collect()
}

fn kind(outcome: &CredentialsOutcome) -> &'static str {
    match outcome {
        CredentialsOutcome::Present(_) => "present",
        CredentialsOutcome::Missing { .. } => "missing",
        CredentialsOutcome::Malformed { .. } => "malformed",
    }
}

#[test]
fn lists_every_org_across_pages_once_in_creation_order() {
    let double = ClerkDouble::start(SECRET, fleet(253));
    let orgs = directory(&double, SECRET)
        .with_page_size(50)
        .list_orgs()
        .unwrap();
    let ids: Vec<&str> = orgs.iter().map(|org| org.id.as_str()).collect();
    let expected: Vec<String> = (0..253).map(|index| format!("org_{index:04}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(
        orgs[7],
        Org {
            id: "org_0007".into(),
            name: "Org 7".into(),
            slug: "org-7".into()
        }
    );

    let seen = double.seen();
    let offsets: Vec<&str> = seen.iter().filter_map(|r| r.param("offset")).collect();
    assert_eq!(offsets, ["0", "50", "100", "150", "200", "250"]);
    for request in &seen {
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/v1/organizations");
        assert_eq!(request.param("limit"), Some("50"));
        assert_eq!(request.param("order_by"), Some("+created_at"));
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(request.header("accept"), Some("application/json"));
    }
}

#[test]
fn a_last_full_page_costs_one_empty_page_and_bare_arrays_are_read() {
    let double = ClerkDouble::start(SECRET, fleet(100));
    double.set_bare_array_pages(true);
    let orgs = directory(&double, SECRET)
        .with_page_size(50)
        .list_orgs()
        .unwrap();
    assert_eq!(orgs.len(), 100);
    let offsets: Vec<String> = double
        .seen()
        .iter()
        .filter_map(|r| r.param("offset").map(str::to_string))
        .collect();
    assert_eq!(offsets, ["0", "50", "100"]);
}

#[test]
fn default_page_size_is_one_hundred_and_sizes_are_clamped() {
    let double = ClerkDouble::start(SECRET, fleet(3));
    let clerk = directory(&double, SECRET);
    assert_eq!(clerk.page_size(), 100);
    assert_eq!(clerk.list_orgs().unwrap().len(), 3);
    assert_eq!(double.seen()[0].param("limit"), Some("100"));
    let clerk = clerk.with_page_size(10_000);
    assert_eq!(clerk.page_size(), 500);
    assert_eq!(clerk.with_page_size(0).page_size(), 1);
}

#[test]
fn a_server_that_ignores_offset_is_an_error_not_an_endless_loop() {
    let double = ClerkDouble::start(SECRET, fleet(10));
    let same_page = json!({"data": fleet(2), "total_count": 10});
    for _ in 0..3 {
        double.push_scripted(Scripted::status(200, same_page.clone()));
    }
    let error = directory(&double, SECRET)
        .with_page_size(2)
        .list_orgs()
        .unwrap_err();
    assert!(
        matches!(&error, DirectoryError::InvalidResponse { message, .. } if message.contains("paging does not advance")),
        "{error}"
    );
    assert_eq!(double.seen().len(), 2);
}

#[test]
fn credential_outcomes_are_typed() {
    let orgs = vec![
        organization(
            "org_present",
            "Acme",
            "acme",
            json!({"instant": {"appId": " 6f1c0000-0000-4000-8000-000000000001 ", "adminToken": " tok-acme "}}),
        ),
        organization(
            "org_no_instant",
            "Beta",
            "beta",
            json!({"billing": {"plan": "pro"}}),
        ),
        organization(
            "org_numeric_token",
            "Gamma",
            "gamma",
            json!({"instant": {"appId": "app-g", "adminToken": 424242}}),
        ),
        organization(
            "org_blank",
            "Delta",
            "delta",
            json!({"instant": {"appId": "app-d", "adminToken": "   "}}),
        ),
    ];
    let double = ClerkDouble::start(SECRET, orgs);
    let clerk = directory(&double, SECRET);

    let resolved = clerk.resolve("org_present").unwrap();
    assert_eq!(
        resolved.org,
        Org {
            id: "org_present".into(),
            name: "Acme".into(),
            slug: "acme".into()
        }
    );
    let credentials = resolved.credentials.present().unwrap();
    assert_eq!(credentials.app_id, "6f1c0000-0000-4000-8000-000000000001");
    assert_eq!(credentials.admin_token.expose(), "tok-acme");
    assert!(!format!("{resolved:?}").contains("tok-acme"));
    // One request for the org and its credentials together.
    assert_eq!(double.seen().len(), 1);
    assert_eq!(double.seen()[0].path, "/v1/organizations/org_present");

    let cases = [
        (
            "org_no_instant",
            "missing",
            "private_metadata has no `instant` entry",
        ),
        (
            "org_numeric_token",
            "malformed",
            "private_metadata.instant.adminToken is a number, not a string",
        ),
        (
            "org_blank",
            "missing",
            "private_metadata.instant.adminToken is blank",
        ),
    ];
    for (org_id, expected_kind, reason) in cases {
        let outcome = clerk.credentials(org_id).unwrap();
        assert_eq!(
            (kind(&outcome), outcome.reason()),
            (expected_kind, Some(reason)),
            "{org_id}"
        );
        assert_eq!(
            outcome.issue_code().map(IssueCode::as_str),
            Some("missing_instant_credentials")
        );
    }
    assert_eq!(clerk.get_org("org_blank").unwrap().name, "Delta");
}

#[test]
fn a_bad_key_is_unauthorized_and_the_key_never_shows() {
    let double = ClerkDouble::start(SECRET, fleet(1));
    let wrong = "sk_test_WrongKeyThatMustNotLeak";
    let clerk = directory(&double, wrong);
    for error in [
        clerk.list_orgs().unwrap_err(),
        clerk.credentials("org_0000").unwrap_err(),
    ] {
        match &error {
            DirectoryError::Unauthorized { status, message } => {
                assert_eq!(*status, 401);
                assert!(message.contains("[authentication_invalid]"), "{message}");
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(wrong), "{shown}");
        }
    }
    // A 401 is final: no retry.
    assert_eq!(double.seen().len(), 2);
    assert!(!format!("{clerk:?}").contains(wrong));
}

#[test]
fn an_unknown_org_is_not_found_and_ids_are_url_encoded() {
    let double = ClerkDouble::start(SECRET, fleet(1));
    let clerk = directory(&double, SECRET);
    assert_eq!(
        clerk.get_org("org_missing").unwrap_err(),
        DirectoryError::OrgNotFound {
            org_id: "org_missing".into()
        }
    );
    assert_eq!(
        clerk.credentials("../v1/organizations?x=1").unwrap_err(),
        DirectoryError::OrgNotFound {
            org_id: "../v1/organizations?x=1".into()
        }
    );
    let seen = double.seen();
    assert_eq!(seen.len(), 2, "a 404 is not retried");
    assert_eq!(
        seen[1].path,
        "/v1/organizations/..%2Fv1%2Forganizations%3Fx%3D1"
    );
    assert!(seen[1].query.is_empty());
}

#[test]
fn rate_limits_are_retried_after_the_servers_pause() {
    let double = ClerkDouble::start(SECRET, fleet(3));
    double.push_scripted(Scripted::too_many_requests(1));
    let clerk = directory(&double, SECRET);
    let started = Instant::now();
    assert_eq!(clerk.list_orgs().unwrap().len(), 3);
    let waited = started.elapsed();
    // Backoff alone is at most 20 ms here; only `Retry-After: 1` explains a second's wait.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(double.seen().len(), 2);

    double.push_scripted(Scripted::too_many_requests(1));
    assert_eq!(clerk.get_org("org_0001").unwrap().id, "org_0001");
    assert_eq!(double.seen().len(), 4);
}

#[test]
fn server_errors_are_retried_then_reported_with_clerks_message() {
    let double = ClerkDouble::start(SECRET, fleet(3));
    let failure = json!({
        "errors": [{"message": "oops", "long_message": "Something went wrong", "code": "internal_clerk_error"}],
        "clerk_trace_id": "trace-42"
    });
    double.push_scripted(Scripted::status(503, failure.clone()));
    assert_eq!(directory(&double, SECRET).list_orgs().unwrap().len(), 3);

    for _ in 0..4 {
        double.push_scripted(Scripted::status(500, failure.clone()));
    }
    let error = directory(&double, SECRET).get_org("org_0000").unwrap_err();
    assert_eq!(
        error,
        DirectoryError::Status {
            operation: "GET /v1/organizations/org_0000".into(),
            status: 500,
            message: "Something went wrong [internal_clerk_error]".into(),
            trace_id: Some("trace-42".into()),
        }
    );
    // 2 for the listing (503, then success), 4 attempts (1 + 3 retries) for the lookup.
    assert_eq!(double.seen().len(), 6);
}

#[test]
fn client_errors_are_final_and_echoed_keys_are_scrubbed() {
    let double = ClerkDouble::start(SECRET, fleet(1));
    double.push_scripted(Scripted::status(
        422,
        json!({"errors": [{"message": format!("key {SECRET} is not allowed here"), "code": "form_param_value_invalid"}]}),
    ));
    let error = directory(&double, SECRET).list_orgs().unwrap_err();
    assert_eq!(double.seen().len(), 1, "a 422 is not retried");
    let shown = error.to_string();
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains("key <redacted> is not allowed here [form_param_value_invalid]"),
        "{shown}"
    );

    double.push_scripted(Scripted::raw(502, "<html>bad gateway</html>"));
    double.push_scripted(Scripted::raw(200, "not json"));
    let error = directory(&double, SECRET).list_orgs().unwrap_err();
    assert!(
        matches!(&error, DirectoryError::InvalidResponse { message, .. } if message.starts_with("the body is not JSON")),
        "{error}"
    );
}

#[test]
fn an_unreachable_directory_is_a_transport_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clerk = ClerkDirectory::new(&format!("http://127.0.0.1:{port}"), Secret::new(SECRET))
        .unwrap()
        .with_resilience(ResilienceConfig {
            max_retries: 1,
            ..fast()
        })
        .unwrap();
    let error = clerk.list_orgs().unwrap_err();
    assert!(
        matches!(&error, DirectoryError::Transport { operation, message } if operation == "GET /v1/organizations (offset 0)" && message.contains("2 attempt(s)")),
        "{error}"
    );
}

#[test]
fn configuration_is_checked() {
    assert!(matches!(
        ClerkDirectory::new("api.clerk.com", Secret::new(SECRET)),
        Err(DirectoryError::InvalidConfig { .. })
    ));
    assert!(matches!(
        ClerkDirectory::new("https://api.clerk.com", Secret::new("  ")),
        Err(DirectoryError::InvalidConfig { .. })
    ));
    let clerk = ClerkDirectory::new("https://api.clerk.com/", Secret::new(SECRET)).unwrap();
    assert_eq!(clerk.base_url(), org_directory::clerk::DEFAULT_BASE_URL);
}

/// The only test that touches `CLERK_SECRET_KEY`, so parallel tests cannot race on it.
#[test]
fn the_secret_comes_from_clerk_secret_key() {
    let double = ClerkDouble::start(SECRET, fleet(2));
    std::env::remove_var("CLERK_SECRET_KEY");
    assert_eq!(
        ClerkDirectory::from_env(&double.base_url()).unwrap_err(),
        DirectoryError::MissingSecret {
            variable: "CLERK_SECRET_KEY"
        }
    );
    std::env::set_var("CLERK_SECRET_KEY", " \n");
    assert!(matches!(
        ClerkDirectory::from_env(&double.base_url()),
        Err(DirectoryError::MissingSecret { .. })
    ));
    std::env::set_var("CLERK_SECRET_KEY", format!("{SECRET}\n"));
    let clerk = ClerkDirectory::from_env(&double.base_url()).unwrap();
    std::env::remove_var("CLERK_SECRET_KEY");
    assert_eq!(clerk.list_orgs().unwrap().len(), 2);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tracing_logs_never_carry_the_key_or_a_token() {
    let orgs = vec![organization(
        "org_logged",
        "Logged",
        "logged",
        json!({"instant": {"appId": "app-l", "adminToken": "tok-must-not-be-logged"}}),
    )];
    let double = ClerkDouble::start(SECRET, orgs);
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        double.push_scripted(Scripted::too_many_requests(0));
        let clerk = directory(&double, SECRET);
        clerk.list_orgs().unwrap();
        clerk.credentials("org_logged").unwrap();
        clerk.get_org("org_unknown").unwrap_err();
        directory(&double, "sk_test_wrong_key_in_logs")
            .list_orgs()
            .unwrap_err();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("/v1/organizations"), "{log}");
    assert!(log.contains("retrying"), "the 429 retry is logged: {log}");
    for secret in [
        SECRET,
        "sk_test_wrong_key_in_logs",
        "tok-must-not-be-logged",
        "Bearer",
    ] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}
