use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_client::{HttpClient, HttpError, Method, ResilienceConfig, TransportKind};
use serde_json::json;

use crate::server::{reply, reply_with, serve, Action};

/// Fast retries, no rate limit, fixed jitter: tests wait only where they mean to.
fn fast() -> ResilienceConfig {
    ResilienceConfig {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_retries: 4,
        base_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(20),
        max_requests_per_second: None,
        jitter_seed: Some(7),
        ..ResilienceConfig::default()
    }
}

fn client(config: ResilienceConfig) -> HttpClient {
    HttpClient::new(config).expect("a valid config")
}

#[test]
fn sends_method_path_query_headers_and_json_body() {
    let server = serve(vec![reply(200, r#"{"ok":true}"#)], reply(500, "{}"));
    let response = client(fast())
        .post(server.url("/admin/transact?app_id=abc"))
        .header("app-id", "abc")
        .bearer("tok")
        .json(&json!({"steps": [1, 2]}))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.attempts, 1);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert_eq!(
        response.json::<serde_json::Value>().unwrap(),
        json!({"ok": true})
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/admin/transact?app_id=abc");
    assert_eq!(request.header("app-id"), Some("abc"));
    assert_eq!(request.header("authorization"), Some("Bearer tok"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, br#"{"steps":[1,2]}"#);
}

#[test]
fn never_retries_other_4xx() {
    for status in [400u16, 401, 403, 404, 409, 422] {
        let server = serve(vec![reply(status, r#"{"type":"x"}"#)], reply(200, "{}"));
        let response = client(fast()).get(server.url("/x")).send().unwrap();
        assert_eq!(response.status, status);
        assert_eq!(response.attempts, 1);
        assert_eq!(server.received().len(), 1, "status {status} was retried");
    }
}

#[test]
fn retries_429_and_5xx_until_an_answer() {
    let server = serve(
        vec![
            reply(503, "busy"),
            reply(500, "{}"),
            reply_with(429, ("retry-after", "0"), "{}"),
            reply(502, ""),
        ],
        reply(200, r#"{"done":1}"#),
    );
    let response = client(fast()).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (200, 5));
    assert_eq!(server.received().len(), 5);
}

#[test]
fn gives_up_after_max_retries_with_the_last_answer() {
    let server = serve(Vec::new(), reply(503, "still busy"));
    let config = ResilienceConfig {
        max_retries: 2,
        ..fast()
    };
    let response = client(config).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (503, 3));
    assert_eq!(response.text(), "still busy");
    assert_eq!(server.received().len(), 3);
}

#[test]
fn honours_retry_after_in_seconds_and_as_a_date() {
    let server = serve(
        vec![reply_with(429, ("retry-after", "1"), "{}")],
        reply(200, "{}"),
    );
    let started = Instant::now();
    let response = client(fast()).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (200, 2));
    let received = server.received();
    let gap = received[1].at.duration_since(received[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A date two seconds ahead (whole seconds, so at least one second away).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date = http_date(now + 2);
    let server = serve(
        vec![reply_with(503, ("retry-after", &date), "{}")],
        reply(200, "{}"),
    );
    let response = client(fast()).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (200, 2));
    let received = server.received();
    let gap = received[1].at.duration_since(received[0].at);
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
}

#[test]
fn a_retry_after_beyond_the_allowed_wait_is_handed_back() {
    let server = serve(
        vec![reply_with(
            429,
            ("retry-after", "3600"),
            r#"{"type":"rate-limited"}"#,
        )],
        reply(200, "{}"),
    );
    let started = Instant::now();
    let response = client(fast()).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (429, 1));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn dropped_connections_are_retried() {
    let server = serve(vec![Action::Drop, Action::Drop], reply(200, "{}"));
    let response = client(fast())
        .post(server.url("/x"))
        .json(&json!({"n": 1}))
        .unwrap()
        .send()
        .unwrap();
    assert_eq!((response.status, response.attempts), (200, 3));
    // Every attempt carried the whole body.
    assert!(server.received().iter().all(|r| r.body == br#"{"n":1}"#));
}

#[test]
fn timeouts_are_retried() {
    let server = serve(
        vec![Action::Delay(
            Duration::from_secs(2),
            Box::new(reply(200, "{}")),
        )],
        reply(200, r#"{"second":true}"#),
    );
    let config = ResilienceConfig {
        timeout: Duration::from_millis(300),
        ..fast()
    };
    let response = client(config).get(server.url("/x")).send().unwrap();
    assert_eq!((response.status, response.attempts), (200, 2));
    assert_eq!(response.text(), r#"{"second":true}"#);
}

#[test]
fn connection_refused_ends_as_a_transport_error_after_every_retry() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = ResilienceConfig {
        max_retries: 2,
        ..fast()
    };
    let error = client(config)
        .get(format!("http://127.0.0.1:{port}/x?token=secret"))
        .send()
        .unwrap_err();
    match &error {
        HttpError::Transport {
            kind,
            attempts,
            path,
            ..
        } => {
            assert_eq!(*kind, TransportKind::Connect);
            assert_eq!(*attempts, 3);
            assert_eq!(path, "/x");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.to_string().contains("secret"), "{error}");
}

#[test]
fn bad_requests_fail_before_sending_without_echoing_values() {
    let http = client(fast());
    let error = http.get("not a url").send().unwrap_err();
    assert!(
        matches!(error, HttpError::InvalidRequest { .. }),
        "{error:?}"
    );
    let error = http
        .get("http://127.0.0.1:1/x")
        .header("authorization", "Bearer secret\nvalue")
        .send()
        .unwrap_err();
    assert!(
        matches!(error, HttpError::InvalidRequest { .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("secret"));
    let builder = http
        .get("http://127.0.0.1:1/x?token=secret")
        .bearer("secret");
    assert!(!format!("{builder:?}").contains("secret"));
}

#[test]
fn oversized_responses_are_an_error_not_a_truncation() {
    let server = serve(Vec::new(), reply(200, &"x".repeat(10_000)));
    let config = ResilienceConfig {
        max_response_bytes: 1_000,
        ..fast()
    };
    let error = client(config).get(server.url("/x")).send().unwrap_err();
    assert!(
        matches!(error, HttpError::ResponseTooLarge { limit: 1_000, .. }),
        "{error:?}"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn concurrency_limit_is_shared_by_threads_per_key() {
    let server = serve(
        Vec::new(),
        Action::Delay(Duration::from_millis(40), Box::new(reply(200, "{}"))),
    );
    let config = ResilienceConfig {
        max_concurrency: 3,
        ..fast()
    };
    let http = client(config);
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let (http, url) = (http.clone(), server.url("/x"));
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let response = http.get(&url).limit_key("app-1").send().unwrap();
                    assert_eq!(response.status, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(server.received().len(), 36);
    assert_eq!(
        server
            .peak_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[test]
fn rate_limit_is_shared_by_threads_per_key() {
    let server = serve(Vec::new(), reply(200, "{}"));
    let config = ResilienceConfig {
        max_requests_per_second: Some(20.0),
        max_concurrency: 8,
        ..fast()
    };
    let http = client(config);
    let started = Instant::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (http, url) = (http.clone(), server.url("/x"));
            std::thread::spawn(move || {
                for _ in 0..5 {
                    http.get(&url).limit_key("app-1").send().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // 30 starts at 20/s with a burst of one: the last starts 29 intervals after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    let mut arrivals: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    arrivals.sort();
    let busiest = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|at| at.duration_since(arrivals[i]) < Duration::from_millis(900))
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 20, "{busiest} requests within 900 ms");

    // Another key has its own budget: it is not slowed by app-1's.
    let started = Instant::now();
    http.get(server.url("/x"))
        .limit_key("app-2")
        .send()
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[test]
fn waiting_between_retries_does_not_hold_a_concurrency_slot() {
    let server = serve(
        vec![reply_with(503, ("retry-after", "1"), "{}")],
        reply(200, "{}"),
    );
    let config = ResilienceConfig {
        max_concurrency: 1,
        ..fast()
    };
    let http = client(config);
    let first = {
        let (http, url) = (http.clone(), server.url("/slow"));
        std::thread::spawn(move || http.get(&url).limit_key("k").send().unwrap())
    };
    // Let the first request get its 503 and start waiting.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let second = http.get(server.url("/fast")).limit_key("k").send().unwrap();
    assert_eq!(second.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.join().unwrap().attempts, 2);
}

/// A `tracing` writer into a shared buffer.
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
fn every_attempt_is_logged_and_no_credential_ever_is() {
    const TOKEN: &str = "fake-token-5e0c9a52-never-log";
    let server = serve(vec![reply(503, "{}"), Action::Drop], reply(200, "{}"));
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
        // Other tests' threads may have met these callsites with no subscriber and cached
        // "never"; recompute now that this one is installed.
        tracing::callsite::rebuild_interest_cache();
        let response = client(fast())
            .request(
                Method::Post,
                server.url(&format!("/v1/things?token={TOKEN}")),
            )
            .bearer(TOKEN)
            .header("x-api-key", TOKEN)
            .limit_key("org-1")
            .json(&json!({"secret": TOKEN}))
            .unwrap()
            .send()
            .unwrap();
        assert_eq!(response.attempts, 3);
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // Three attempts, two retries, each naming the method, the path and the outcome.
    assert_eq!(log.matches("http attempt").count(), 3, "{log}");
    assert_eq!(log.matches("retrying").count(), 2, "{log}");
    assert!(
        log.contains("method=\"POST\"") && log.contains("path=\"/v1/things\""),
        "{log}"
    );
    assert!(
        log.contains("status=503") && log.contains("status=200"),
        "{log}"
    );
    assert!(
        log.contains("attempt=3") && log.contains("elapsed_ms="),
        "{log}"
    );
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );
    assert!(!log.to_ascii_lowercase().contains("bearer"), "{log}");
}

/// IMF-fixdate of `seconds` since the epoch.
fn http_date(seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
