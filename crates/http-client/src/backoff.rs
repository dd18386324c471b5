//! Exponential backoff with full jitter, and the tiny PRNG behind the jitter.
//!
//! Full jitter (a uniform delay between zero and the exponential cap) spreads the retries of
//! many clients that failed together, so they do not come back together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// SplitMix64 as a shared counter: each draw adds the golden gamma to the state and mixes it,
/// so threads can draw concurrently without a lock and a fixed seed gives a fixed sequence.
#[derive(Debug)]
pub struct Jitter {
    state: AtomicU64,
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from the clock and the address of a local, so two clients started together in
    /// one process still differ.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        Jitter::new(nanos ^ (&local as *const u8 as u64).rotate_left(32))
    }

    pub fn next_u64(&self) -> u64 {
        let state = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        mix(state)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The cap of retry number `retry` (0 for the first retry): `base * 2^retry`, at most `max`.
pub fn backoff_cap(retry: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// The full-jitter delay of retry number `retry` for a draw `unit` in `[0, 1)`.
pub fn backoff_delay(retry: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    backoff_cap(retry, base, max).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn cap_doubles_up_to_the_maximum() {
        let caps: Vec<u128> = (0..8)
            .map(|retry| backoff_cap(retry, MS(100), MS(2_000)).as_millis())
            .collect();
        assert_eq!(caps, [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000]);
        // A huge retry number neither overflows nor exceeds the maximum.
        assert_eq!(backoff_cap(u32::MAX, MS(100), MS(2_000)), MS(2_000));
        assert_eq!(
            backoff_cap(40, Duration::from_secs(u64::MAX / 2), MS(5)),
            MS(5)
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_cap() {
        assert_eq!(backoff_delay(2, MS(100), MS(10_000), 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(2, MS(100), MS(10_000), 0.5), MS(200));
        assert!(backoff_delay(2, MS(100), MS(10_000), 0.999_999) < MS(400));
        // Out-of-range draws are clamped, never a longer delay than the cap.
        assert_eq!(backoff_delay(0, MS(100), MS(10_000), 7.0), MS(100));
    }

    #[test]
    fn jitter_is_seedable_uniform_and_shared_across_threads() {
        let first: Vec<u64> = {
            let jitter = Jitter::new(42);
            (0..5).map(|_| jitter.next_u64()).collect()
        };
        let again: Vec<u64> = {
            let jitter = Jitter::new(42);
            (0..5).map(|_| jitter.next_u64()).collect()
        };
        assert_eq!(first, again);
        assert_ne!(first, {
            let jitter = Jitter::new(43);
            (0..5).map(|_| jitter.next_u64()).collect::<Vec<_>>()
        });

        let jitter = Jitter::new(7);
        let draws: Vec<f64> = (0..10_000).map(|_| jitter.next_unit()).collect();
        assert!(draws.iter().all(|unit| (0.0..1.0).contains(unit)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.47..0.53).contains(&mean), "{mean}");
        let low = draws.iter().filter(|unit| **unit < 0.1).count();
        assert!((850..1_150).contains(&low), "{low}");

        // Concurrent draws never repeat a value: each takes its own step of the counter.
        let shared = std::sync::Arc::new(Jitter::new(1));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    (0..1_000).map(|_| shared.next_u64()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4_000);
    }
}
