//! A small resilient blocking HTTP client, shared by every adapter that talks to a remote API
//! (InstantDB, Clerk). It knows nothing about either: it sends a request with headers and a
//! body and hands back the status, headers and body, trying as hard as configured.
//!
//! - **Timeouts** per attempt ([`ResilienceConfig::timeout`], `connect_timeout`).
//! - **Retries** only where trying again can help: 429, 5xx, timeouts and connection failures.
//!   Any other status (a 4xx validation or permission error) is returned at once. Waits are
//!   exponential backoff with full jitter, and at least what `Retry-After` asks for.
//! - **Per-key limits** (a key is e.g. an app id): a semaphore bounds the requests in flight
//!   and a token bucket the rate at which attempts start. Every clone of a client shares them,
//!   so all threads working on one app share one budget.
//! - **Logging** with `tracing`, one event per attempt (method, URL path, key, status, attempt,
//!   elapsed). Never a header, a query string or a body, so never a credential.
//!
//! Retrying a request that may have taken effect (a timeout or a connection lost after the
//! server committed) sends it again: callers whose requests are not naturally idempotent must
//! make them so (fixed ids, upserts).

pub mod backoff;
mod config;
mod error;
pub mod limiter;
pub mod retry_after;
mod secret;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use ureq::http;

pub use config::{ConfigError, ResilienceConfig};
pub use error::{HttpError, TransportKind};
pub use secret::Secret;

use backoff::{backoff_delay, Jitter};
use limiter::KeyedLimiter;
use retry_after::parse_retry_after;

/// The `tracing` target of every event this crate emits.
pub const LOG_TARGET: &str = "http_client";

/// The methods the adapters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    fn to_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a status is worth retrying: rate limited, or a server-side failure.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// A response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many attempts it took (1 when the first one answered).
    pub attempts: u32,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

struct Inner {
    agent: ureq::Agent,
    config: ResilienceConfig,
    limiter: KeyedLimiter,
    jitter: Jitter,
}

/// The client. Cheap to clone; clones share connections, limits and jitter.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(config: ResilienceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Statuses are the caller's business, not errors.
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.connect_timeout))
            .max_idle_connections(config.idle_connections_per_host.max(1) * 4)
            .max_idle_connections_per_host(config.idle_connections_per_host.max(1))
            .user_agent(config.user_agent.as_str())
            .build()
            .into();
        let jitter = match config.jitter_seed {
            Some(seed) => Jitter::new(seed),
            None => Jitter::from_entropy(),
        };
        let limiter = KeyedLimiter::new(
            config.max_concurrency,
            config.max_requests_per_second,
            config.rate_burst,
            config.rate_jitter_allowance,
        );
        Ok(HttpClient {
            inner: Arc::new(Inner {
                agent,
                config,
                limiter,
                jitter,
            }),
        })
    }

    pub fn config(&self) -> &ResilienceConfig {
        &self.inner.config
    }

    /// The limits of `key`, for callers that want to look at them (tests, progress output).
    pub fn limits(&self, key: &str) -> Arc<limiter::KeyLimits> {
        self.inner.limiter.limits(key)
    }

    pub fn request(&self, method: Method, url: impl Into<String>) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            key: String::new(),
        }
    }

    pub fn get(&self, url: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::Get, url)
    }

    pub fn post(&self, url: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::Post, url)
    }
}

/// One request being put together. Header values are kept out of `Debug`.
pub struct RequestBuilder<'c> {
    client: &'c HttpClient,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    key: String,
}

impl fmt::Debug for RequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("path", &url_path(&self.url))
            .field("headers", &names)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("key", &self.key)
            .finish()
    }
}

impl<'c> RequestBuilder<'c> {
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Which limits this request counts against (an app id, an API key's owner…). Requests
    /// without a key share the limits of the empty key.
    pub fn limit_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, HttpError> {
        let bytes = serde_json::to_vec(body).map_err(|error| HttpError::InvalidRequest {
            method: self.method.to_string(),
            path: url_path(&self.url),
            reason: format!("the body does not serialise to JSON: {error}"),
        })?;
        self.body = Some(bytes);
        Ok(self.header("content-type", "application/json"))
    }

    /// A raw body; set the content type with [`Self::header`].
    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    /// Sends with retries. `Ok` for any status; `Err` when no response could be had.
    pub fn send(self) -> Result<HttpResponse, HttpError> {
        self.client.clone().execute(self)
    }
}

/// What one attempt gave.
enum Attempt {
    Answered(HttpResponse),
    Failed(HttpError, bool),
}

impl HttpClient {
    fn execute(&self, request: RequestBuilder<'_>) -> Result<HttpResponse, HttpError> {
        let config = &self.inner.config;
        let method = request.method;
        let path = url_path(&request.url);
        let invalid = |reason: String| HttpError::InvalidRequest {
            method: method.to_string(),
            path: path.clone(),
            reason,
        };
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|_| invalid("the URL does not parse".into()))?;
        if uri.scheme().is_none() || uri.host().is_none() {
            return Err(invalid("the URL needs a scheme and a host".into()));
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &request.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            // The value is never echoed: it may be a credential.
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value for header {name}")))?;
            headers.append(name, value);
        }
        let limits = self.inner.limiter.limits(&request.key);
        let key = request.key.as_str();
        let mut retry: u32 = 0;
        loop {
            let attempt = retry + 1;
            let started = Instant::now();
            let outcome = {
                let _permit = limits.acquire();
                self.attempt(method, &uri, &headers, request.body.as_deref(), &path)
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (retryable, retry_after, outcome) = match outcome {
                Attempt::Answered(mut response) => {
                    response.attempts = attempt;
                    tracing::debug!(
                        target: LOG_TARGET,
                        method = method.as_str(),
                        path = path.as_str(),
                        key,
                        status = response.status,
                        attempt,
                        elapsed_ms,
                        "http attempt"
                    );
                    let retryable = is_retryable_status(response.status);
                    let retry_after = response
                        .header("retry-after")
                        .and_then(|value| parse_retry_after(value, SystemTime::now()));
                    (retryable, retry_after, Ok(response))
                }
                Attempt::Failed(error, retryable) => {
                    tracing::debug!(
                        target: LOG_TARGET,
                        method = method.as_str(),
                        path = path.as_str(),
                        key,
                        status = 0u16,
                        error = error.kind_str(),
                        attempt,
                        elapsed_ms,
                        "http attempt failed"
                    );
                    (retryable, None, Err(error))
                }
            };
            if !retryable {
                return outcome;
            }
            let outcome = outcome.map_err(|error| with_attempts(error, attempt));
            if retry >= config.max_retries {
                tracing::warn!(
                    target: LOG_TARGET,
                    method = method.as_str(),
                    path = path.as_str(),
                    key,
                    attempts = attempt,
                    "giving up after the last retry"
                );
                return outcome;
            }
            if let Some(wait) = retry_after {
                if wait > config.max_retry_after {
                    tracing::warn!(
                        target: LOG_TARGET,
                        method = method.as_str(),
                        path = path.as_str(),
                        key,
                        retry_after_ms = wait.as_millis() as u64,
                        "Retry-After is longer than allowed; not retrying"
                    );
                    return outcome;
                }
            }
            let delay = retry_delay(
                retry,
                config.base_backoff,
                config.max_backoff,
                self.inner.jitter.next_unit(),
                retry_after,
            );
            tracing::info!(
                target: LOG_TARGET,
                method = method.as_str(),
                path = path.as_str(),
                key,
                attempt,
                status = outcome.as_ref().map(|response| response.status).unwrap_or(0),
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            std::thread::sleep(delay);
            retry += 1;
        }
    }

    fn attempt(
        &self,
        method: Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
        path: &str,
    ) -> Attempt {
        let mut builder = http::Request::builder()
            .method(method.to_http())
            .uri(uri.clone());
        if let Some(map) = builder.headers_mut() {
            map.extend(headers.clone());
        }
        let sent = match body {
            Some(bytes) => builder
                .body(bytes)
                .map(|request| self.inner.agent.run(request)),
            None => builder
                .body(())
                .map(|request| self.inner.agent.run(request)),
        };
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return classify(error, method, path),
            Err(_) => {
                return Attempt::Failed(
                    HttpError::InvalidRequest {
                        method: method.to_string(),
                        path: path.to_string(),
                        reason: "the request could not be built".into(),
                    },
                    false,
                )
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.inner.config.max_response_bytes)
            .read_to_vec();
        match body {
            Ok(body) => Attempt::Answered(HttpResponse {
                status,
                headers,
                body,
                attempts: 1,
            }),
            Err(ureq::Error::BodyExceedsLimit(limit)) => Attempt::Failed(
                HttpError::ResponseTooLarge {
                    method: method.to_string(),
                    path: path.to_string(),
                    limit,
                },
                false,
            ),
            Err(error) => classify(error, method, path),
        }
    }
}

/// The wait before retry number `retry`: the jittered backoff, but never less than the
/// server's `Retry-After`.
pub fn retry_delay(
    retry: u32,
    base: Duration,
    max: Duration,
    unit: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let backoff = backoff_delay(retry, base, max, unit);
    match retry_after {
        Some(wait) => wait.max(backoff),
        None => backoff,
    }
}

fn with_attempts(error: HttpError, attempts: u32) -> HttpError {
    match error {
        HttpError::Transport {
            method,
            path,
            kind,
            message,
            ..
        } => HttpError::Transport {
            method,
            path,
            kind,
            message,
            attempts,
        },
        other => other,
    }
}

/// Sorts a ureq error into retryable transport failures and final ones. Messages are ureq's
/// own except where it would repeat the URL.
fn classify(error: ureq::Error, method: Method, path: &str) -> Attempt {
    let transport = |kind: TransportKind, message: String| {
        Attempt::Failed(
            HttpError::Transport {
                method: method.to_string(),
                path: path.to_string(),
                kind,
                message,
                attempts: 1,
            },
            true,
        )
    };
    let fatal = |error: HttpError| Attempt::Failed(error, false);
    match error {
        ureq::Error::Timeout(which) => {
            transport(TransportKind::Timeout, format!("{which} timed out"))
        }
        ureq::Error::HostNotFound => transport(TransportKind::Connect, "host not found".into()),
        ureq::Error::ConnectionFailed => {
            transport(TransportKind::Connect, "connection failed".into())
        }
        ureq::Error::Io(io) => {
            let kind = match io.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NotConnected => TransportKind::Connect,
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    TransportKind::Timeout
                }
                _ => TransportKind::Connection,
            };
            transport(kind, io.to_string())
        }
        ureq::Error::Protocol(protocol) => transport(TransportKind::Protocol, protocol.to_string()),
        ureq::Error::Tls(message) => fatal(HttpError::Tls {
            method: method.to_string(),
            path: path.to_string(),
            message: message.to_string(),
        }),
        ureq::Error::Rustls(tls) => fatal(HttpError::Tls {
            method: method.to_string(),
            path: path.to_string(),
            message: tls.to_string(),
        }),
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => {
            fatal(HttpError::InvalidRequest {
                method: method.to_string(),
                path: path.to_string(),
                reason: "the URL is not usable".into(),
            })
        }
        ureq::Error::BodyExceedsLimit(limit) => fatal(HttpError::ResponseTooLarge {
            method: method.to_string(),
            path: path.to_string(),
            limit,
        }),
        other => fatal(HttpError::InvalidRequest {
            method: method.to_string(),
            path: path.to_string(),
            reason: other.to_string(),
        }),
    }
}

/// The path of a URL, without scheme, host, query or fragment: what logs and errors show.
pub fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path_and_more = match after_scheme.find('/') {
        Some(at) => &after_scheme[at..],
        None => "/",
    };
    let end = path_and_more
        .find(['?', '#'])
        .unwrap_or(path_and_more.len());
    path_and_more[..end].to_string()
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters), so an id
/// taken from input cannot change the path.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-encodes a query parameter value.
pub fn encode_query_value(value: &str) -> String {
    encode_path_segment(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses_are_429_and_5xx_only() {
        let retryable: Vec<u16> = (100..600)
            .filter(|status| is_retryable_status(*status))
            .collect();
        assert_eq!(retryable.first(), Some(&429));
        assert_eq!(retryable.len(), 1 + 100);
        for status in [400, 401, 403, 404, 409, 413, 422] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_on_the_backoff() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert_eq!(
            retry_delay(0, base, max, 0.5, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        // A jittered backoff longer than Retry-After wins.
        assert_eq!(
            retry_delay(6, base, max, 0.9, Some(Duration::from_secs(1))),
            Duration::from_millis(5_760)
        );
        assert_eq!(
            retry_delay(1, base, max, 0.5, None),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn paths_drop_host_query_and_fragment() {
        assert_eq!(
            url_path("https://api.example/admin/query?app_id=x&t=secret"),
            "/admin/query"
        );
        assert_eq!(url_path("http://127.0.0.1:8/a/b#frag"), "/a/b");
        assert_eq!(url_path("https://host"), "/");
        assert_eq!(url_path("https://host?token=secret"), "/");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_path_segment("org_2abc-X.~"), "org_2abc-X.~");
        assert_eq!(encode_path_segment("../a b/?#"), "..%2Fa%20b%2F%3F%23");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = ResilienceConfig {
            max_concurrency: 0,
            ..ResilienceConfig::default()
        };
        assert_eq!(HttpClient::new(bad).unwrap_err().name, "max_concurrency");
        let bad = ResilienceConfig {
            max_requests_per_second: Some(f64::NAN),
            ..ResilienceConfig::default()
        };
        assert_eq!(
            HttpClient::new(bad).unwrap_err().name,
            "max_requests_per_second"
        );
        assert!(HttpClient::new(ResilienceConfig::default()).is_ok());
    }
}
