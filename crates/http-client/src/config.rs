//! How hard the client tries, how long it waits, and how much load it puts on one key.

use std::time::Duration;

/// Timeouts, retries and per-key limits. The defaults suit a hosted API shared with live
/// traffic: a few requests in flight per key, a moderate rate, patient retries.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceConfig {
    /// Deadline of one attempt: connecting, sending and reading the whole response.
    pub timeout: Duration,
    /// Deadline of establishing the connection (part of `timeout`).
    pub connect_timeout: Duration,
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Backoff cap of the first retry; it doubles per retry up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` the client waits for. A server asking for a longer pause gets
    /// its answer handed back to the caller instead of a retry.
    pub max_retry_after: Duration,
    /// Requests in flight at once per key (e.g. per app). Waiting between retries does not
    /// hold a slot.
    pub max_concurrency: usize,
    /// Requests started per second per key; `None` for no limit. Each attempt counts.
    pub max_requests_per_second: Option<f64>,
    /// How many requests may start back to back after an idle period (token-bucket capacity).
    /// With 1, starts are spaced at least `1 / max_requests_per_second` apart, so no window of
    /// one second sees more than the configured rate.
    pub rate_burst: u32,
    /// Slack for the time between a request starting here and the server counting it (network
    /// and scheduling jitter): `rate` starts are spread over one second plus this, so a server
    /// counting per second still sees at most the configured rate when some requests reach it
    /// a little later than others. The sustained rate is `rate / (1 s + allowance)`.
    pub rate_jitter_allowance: Duration,
    /// Largest response body read; a larger one is an error, not a truncated answer.
    pub max_response_bytes: u64,
    /// Idle connections kept per host for reuse.
    pub idle_connections_per_host: usize,
    /// Seed of the backoff jitter; `None` seeds from the clock. Tests fix it.
    pub jitter_seed: Option<u64>,
    pub user_agent: String,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 6,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(15),
            max_retry_after: Duration::from_secs(120),
            max_concurrency: 8,
            max_requests_per_second: Some(50.0),
            rate_burst: 1,
            rate_jitter_allowance: Duration::from_millis(10),
            max_response_bytes: 512 << 20,
            idle_connections_per_host: 32,
            jitter_seed: None,
            user_agent: concat!("threadmig/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A configuration value the client cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP client setting {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl ResilienceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |name, reason: &str| {
            Err(ConfigError {
                name,
                reason: reason.to_string(),
            })
        };
        if self.timeout.is_zero() {
            return fail("timeout", "must be positive");
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout", "must be positive");
        }
        if self.max_concurrency == 0 {
            return fail("max_concurrency", "must be at least 1");
        }
        if let Some(rate) = self.max_requests_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return fail("max_requests_per_second", "must be a positive number");
            }
        }
        if self.rate_burst == 0 {
            return fail("rate_burst", "must be at least 1");
        }
        if self.base_backoff > self.max_backoff {
            return fail("base_backoff", "must not exceed max_backoff");
        }
        Ok(())
    }
}
