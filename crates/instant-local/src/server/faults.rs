//! Fault injection for reliability tests: off by default, seeded and deterministic.
//!
//! Every request that a fault config covers gets a sequence number (0, 1, 2, … in arrival
//! order). Whether request `n` is faulted, and how, is a pure function of `(seed, n)`
//! ([`FaultConfig::decide`]), so the same seed replays the same fault sequence. Each fault kind
//! draws its own number, so changing one rate does not reshuffle the others.
//!
//! When each fault strikes, relative to the engine call (the side effect):
//!
//! | fault | when | side effect happened? |
//! |---|---|---|
//! | latency | before the call | yes, after the delay |
//! | drop (`drop_rate`) | before the call: the connection is closed without a response | **no** |
//! | 429 `rate-limited` with `Retry-After` | before the call | **no** |
//! | 500 / 503 | before the call | **no** |
//! | drop after (`drop_after_rate`) | after the call returned: the connection is closed without a response | **yes** (a committed transaction whose answer is lost) |
//! | slow body | after the call: the response is sent in small chunks with delays | yes |
//!
//! Precedence when several are drawn for one request: drop, 429, 5xx, then (after the call)
//! drop-after, then slow body. Latency adds to all of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What to inject. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    pub seed: u64,
    /// Added to every covered request, before anything else.
    pub latency: Duration,
    /// 429 `rate-limited` with a `Retry-After` header, before the engine call.
    pub rate_429: f64,
    /// Seconds in the `Retry-After` header of an injected 429.
    pub retry_after_secs: u64,
    /// 500 (the server's untyped-error envelope) or 503 (a proxy's plain-text answer), half
    /// each, before the engine call.
    pub rate_5xx: f64,
    /// Connection closed without a response, before the engine call.
    pub drop_rate: f64,
    /// Connection closed without a response, after the engine call (its effect is kept).
    pub drop_after_rate: f64,
    /// Response body sent in small chunks with a delay between them.
    pub slow_body_rate: f64,
    /// Delay between two chunks of a slow body.
    pub slow_body_delay: Duration,
    /// Only requests whose path starts with one of these are covered; empty covers all.
    pub path_prefixes: Vec<String>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            latency: Duration::ZERO,
            rate_429: 0.0,
            retry_after_secs: 1,
            rate_5xx: 0.0,
            drop_rate: 0.0,
            drop_after_rate: 0.0,
            slow_body_rate: 0.0,
            slow_body_delay: Duration::from_millis(20),
            path_prefixes: Vec::new(),
        }
    }
}

/// An invalid fault flag value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be a probability between 0 and 1, got {value}")]
pub struct FaultConfigError {
    pub name: &'static str,
    pub value: String,
}

/// What happens before the engine call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeFault {
    None,
    Drop,
    RateLimited,
    InternalError,
    Unavailable,
}

/// What happens after the engine call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    None,
    Drop,
    SlowBody,
}

/// The faults drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDecision {
    pub sequence: u64,
    pub before: BeforeFault,
    pub after: AfterFault,
}

impl FaultDecision {
    /// A short label for the request log (`-` when nothing was injected).
    pub fn label(&self) -> &'static str {
        match (self.before, self.after) {
            (BeforeFault::Drop, _) => "drop",
            (BeforeFault::RateLimited, _) => "429",
            (BeforeFault::InternalError, _) => "500",
            (BeforeFault::Unavailable, _) => "503",
            (BeforeFault::None, AfterFault::Drop) => "drop-after",
            (BeforeFault::None, AfterFault::SlowBody) => "slow-body",
            (BeforeFault::None, AfterFault::None) => "-",
        }
    }
}

// One independent draw per fault kind.
const DRAW_DROP: u64 = 1;
const DRAW_429: u64 = 2;
const DRAW_5XX: u64 = 3;
const DRAW_5XX_KIND: u64 = 4;
const DRAW_DROP_AFTER: u64 = 5;
const DRAW_SLOW: u64 = 6;

impl FaultConfig {
    /// Checks that every rate is a probability.
    pub fn validate(&self) -> Result<(), FaultConfigError> {
        for (name, value) in [
            ("--fault-429-rate", self.rate_429),
            ("--fault-5xx-rate", self.rate_5xx),
            ("--fault-drop-rate", self.drop_rate),
            ("--fault-drop-after-rate", self.drop_after_rate),
            ("--fault-slow-body-rate", self.slow_body_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultConfigError {
                    name,
                    value: value.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether any fault is configured at all.
    pub fn is_active(&self) -> bool {
        !self.latency.is_zero()
            || self.rate_429 > 0.0
            || self.rate_5xx > 0.0
            || self.drop_rate > 0.0
            || self.drop_after_rate > 0.0
            || self.slow_body_rate > 0.0
    }

    /// Whether requests to `path` are subject to faults.
    pub fn covers(&self, path: &str) -> bool {
        self.path_prefixes.is_empty()
            || self
                .path_prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
    }

    /// The faults of request number `sequence`: a pure function of the seed and the number.
    pub fn decide(&self, sequence: u64) -> FaultDecision {
        let hit = |kind: u64, rate: f64| rate > 0.0 && self.draw(sequence, kind) < rate;
        let before = if hit(DRAW_DROP, self.drop_rate) {
            BeforeFault::Drop
        } else if hit(DRAW_429, self.rate_429) {
            BeforeFault::RateLimited
        } else if hit(DRAW_5XX, self.rate_5xx) {
            if self.draw(sequence, DRAW_5XX_KIND) < 0.5 {
                BeforeFault::InternalError
            } else {
                BeforeFault::Unavailable
            }
        } else {
            BeforeFault::None
        };
        let after = if before != BeforeFault::None {
            AfterFault::None
        } else if hit(DRAW_DROP_AFTER, self.drop_after_rate) {
            AfterFault::Drop
        } else if hit(DRAW_SLOW, self.slow_body_rate) {
            AfterFault::SlowBody
        } else {
            AfterFault::None
        };
        FaultDecision {
            sequence,
            before,
            after,
        }
    }

    /// A uniform number in `[0, 1)` for `(seed, sequence, kind)`.
    fn draw(&self, sequence: u64, kind: u64) -> f64 {
        let mixed =
            splitmix64(self.seed ^ splitmix64(sequence.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ kind));
        (mixed >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// SplitMix64's finaliser: a small, well-mixed, dependency-free hash of a 64-bit value.
fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fault config of a running server and its request counter.
#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    next_sequence: AtomicU64,
}

impl FaultInjector {
    pub fn new(config: FaultConfig) -> Self {
        FaultInjector {
            config,
            next_sequence: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// The decision for the next covered request, or `None` when `path` is not covered or no
    /// fault is configured (such requests take no sequence number).
    pub fn next(&self, path: &str) -> Option<FaultDecision> {
        if !self.config.is_active() || !self.config.covers(path) {
            return None;
        }
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        Some(self.config.decide(sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> FaultConfig {
        FaultConfig {
            seed,
            rate_429: 0.1,
            rate_5xx: 0.1,
            drop_rate: 0.1,
            drop_after_rate: 0.1,
            slow_body_rate: 0.1,
            ..FaultConfig::default()
        }
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let run = |seed| (0..200).map(|n| config(seed).decide(n)).collect::<Vec<_>>();
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let config = FaultConfig {
            seed: 42,
            rate_429: 0.25,
            ..FaultConfig::default()
        };
        let hits = (0..10_000)
            .filter(|n| config.decide(*n).before == BeforeFault::RateLimited)
            .count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        let never = FaultConfig {
            seed: 42,
            ..FaultConfig::default()
        };
        assert!((0..1_000).all(|n| never.decide(n).label() == "-"));
        let always = FaultConfig {
            drop_rate: 1.0,
            ..FaultConfig::default()
        };
        assert!((0..1_000).all(|n| always.decide(n).before == BeforeFault::Drop));
    }

    #[test]
    fn before_faults_exclude_after_faults() {
        let config = FaultConfig {
            seed: 3,
            rate_5xx: 0.5,
            drop_after_rate: 1.0,
            ..FaultConfig::default()
        };
        for n in 0..500 {
            let decision = config.decide(n);
            match decision.before {
                BeforeFault::None => assert_eq!(decision.after, AfterFault::Drop),
                _ => assert_eq!(decision.after, AfterFault::None),
            }
        }
    }

    #[test]
    fn rates_outside_zero_one_are_refused() {
        let bad = FaultConfig {
            rate_5xx: 1.5,
            ..FaultConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "--fault-5xx-rate");
        assert!(FaultConfig::default().validate().is_ok());
        assert!(!FaultConfig::default().is_active());
    }

    #[test]
    fn path_prefixes_limit_coverage_and_uncovered_requests_take_no_number() {
        let injector = FaultInjector::new(FaultConfig {
            rate_429: 1.0,
            path_prefixes: vec!["/admin/".into()],
            ..FaultConfig::default()
        });
        assert_eq!(injector.next("/dash/apps/ephemeral"), None);
        assert_eq!(injector.next("/admin/transact").unwrap().sequence, 0);
        assert_eq!(injector.next("/admin/query").unwrap().sequence, 1);
    }
}
