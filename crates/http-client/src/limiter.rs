//! Per-key limits shared by every thread that uses one client: a semaphore bounds the requests
//! in flight, a token bucket bounds the rate at which they start.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Locks a mutex even if a thread panicked while holding it: the guarded counters stay
/// meaningful (they are only ever updated in one step).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A counting semaphore.
#[derive(Debug)]
pub struct Semaphore {
    capacity: usize,
    in_use: Mutex<usize>,
    released: Condvar,
}

impl Semaphore {
    pub fn new(capacity: usize) -> Self {
        Semaphore {
            capacity: capacity.max(1),
            in_use: Mutex::new(0),
            released: Condvar::new(),
        }
    }

    /// Blocks until a slot is free and takes it.
    pub fn acquire(self: &Arc<Self>) -> Permit {
        let mut in_use = lock(&self.in_use);
        while *in_use >= self.capacity {
            in_use = self
                .released
                .wait(in_use)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *in_use += 1;
        Permit {
            semaphore: self.clone(),
        }
    }

    pub fn in_use(&self) -> usize {
        *lock(&self.in_use)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    semaphore: Arc<Semaphore>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut in_use = lock(&self.semaphore.in_use);
        *in_use = in_use.saturating_sub(1);
        drop(in_use);
        self.semaphore.released.notify_one();
    }
}

/// A token bucket of `burst` tokens refilled at `rate` per second, in its virtual-scheduling
/// form (GCRA): it keeps the time at which the bucket will be full again instead of a token
/// count, so a reservation is one comparison and callers are served in reservation order.
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    burst: u32,
    /// When the next request could start if the bucket had no burst allowance.
    theoretical_arrival: Mutex<Option<Instant>>,
}

impl TokenBucket {
    /// `rate_per_second` starts per `1 s + jitter_allowance` (see
    /// [`crate::ResilienceConfig::rate_jitter_allowance`]).
    pub fn new(rate_per_second: f64, burst: u32, jitter_allowance: Duration) -> Self {
        let window = 1.0 + jitter_allowance.as_secs_f64();
        TokenBucket {
            interval: Duration::from_secs_f64(window / rate_per_second),
            burst: burst.max(1),
            theoretical_arrival: Mutex::new(None),
        }
    }

    /// The spacing between two starts at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the next start slot and returns how long after `now` it is. The slot is the
    /// caller's whatever happens, so a caller must wait that long before starting.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut arrival = lock(&self.theoretical_arrival);
        let tat = arrival.map_or(now, |tat| tat.max(now));
        let tolerance = self.interval * (self.burst - 1);
        let wait = tat.saturating_duration_since(now).saturating_sub(tolerance);
        *arrival = Some(tat + self.interval);
        wait
    }

    /// Blocks until the caller may start.
    pub fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// The limits of one key.
#[derive(Debug)]
pub struct KeyLimits {
    pub concurrency: Arc<Semaphore>,
    pub rate: Option<TokenBucket>,
}

impl KeyLimits {
    /// Waits for a slot, then for the rate: the slot first, so a rate slot is never spent by a
    /// request that then still waits for the semaphore.
    pub fn acquire(&self) -> Permit {
        let permit = self.concurrency.acquire();
        if let Some(rate) = &self.rate {
            rate.acquire();
        }
        permit
    }
}

/// The limits of every key seen so far, created on first use with the same settings.
#[derive(Debug)]
pub struct KeyedLimiter {
    max_concurrency: usize,
    max_requests_per_second: Option<f64>,
    rate_burst: u32,
    rate_jitter_allowance: Duration,
    keys: Mutex<HashMap<String, Arc<KeyLimits>>>,
}

impl KeyedLimiter {
    pub fn new(
        max_concurrency: usize,
        max_requests_per_second: Option<f64>,
        rate_burst: u32,
        rate_jitter_allowance: Duration,
    ) -> Self {
        KeyedLimiter {
            max_concurrency,
            max_requests_per_second,
            rate_burst,
            rate_jitter_allowance,
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self, key: &str) -> Arc<KeyLimits> {
        let mut keys = lock(&self.keys);
        if let Some(limits) = keys.get(key) {
            return limits.clone();
        }
        let limits = Arc::new(KeyLimits {
            concurrency: Arc::new(Semaphore::new(self.max_concurrency)),
            rate: self
                .max_requests_per_second
                .map(|rate| TokenBucket::new(rate, self.rate_burst, self.rate_jitter_allowance)),
        });
        keys.insert(key.to_string(), limits.clone());
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn semaphore_bounds_concurrency_across_threads() {
        let semaphore = Arc::new(Semaphore::new(3));
        let current = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (semaphore, current, peak) = (semaphore.clone(), current.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        let _permit = semaphore.acquire();
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        current.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(semaphore.in_use(), 0);
    }

    #[test]
    fn bucket_spaces_starts_at_the_rate() {
        let bucket = TokenBucket::new(10.0, 1, Duration::ZERO);
        let now = Instant::now();
        let waits: Vec<u128> = (0..4).map(|_| bucket.reserve(now).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
        // After an idle period the bucket is full again, but holds only one token.
        let later = now + Duration::from_secs(5);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later).as_millis(), 100);
    }

    #[test]
    fn jitter_allowance_stretches_the_window() {
        // 10 per 1.1 s: 11 starts span 1.1 s, so arrivals up to 100 ms late or early still
        // put at most 10 into any one second.
        let bucket = TokenBucket::new(10.0, 1, Duration::from_millis(100));
        assert_eq!(bucket.interval(), Duration::from_millis(110));
    }

    #[test]
    fn bucket_burst_allows_that_many_back_to_back() {
        let bucket = TokenBucket::new(10.0, 3, Duration::ZERO);
        let now = Instant::now();
        let waits: Vec<u128> = (0..6).map(|_| bucket.reserve(now).as_millis()).collect();
        assert_eq!(waits, [0, 0, 0, 100, 200, 300]);
    }

    /// Whatever the arrival pattern, a burst of 1 never lets more than `rate` starts into any
    /// one-second window.
    #[test]
    fn no_window_exceeds_the_rate() {
        let bucket = TokenBucket::new(20.0, 1, Duration::ZERO);
        let origin = Instant::now();
        let mut starts = Vec::new();
        // Arrivals in clumps, with idle gaps, over several seconds of virtual time.
        for step in 0..400u64 {
            let arrival = origin + Duration::from_millis((step / 25) * 700 + step % 7);
            starts.push(arrival + bucket.reserve(arrival));
        }
        starts.sort();
        for (index, start) in starts.iter().enumerate() {
            let in_window = starts[index..]
                .iter()
                .take_while(|other| other.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 20, "{in_window} starts within 1 s");
        }
    }

    #[test]
    fn keys_are_limited_separately_and_shared_by_name() {
        let limiter = KeyedLimiter::new(2, None, 1, Duration::ZERO);
        let a = limiter.limits("app-a");
        let _one = a.acquire();
        let _two = a.acquire();
        assert_eq!(a.concurrency.in_use(), 2);
        // Another key is not affected by app-a being full.
        let b = limiter.limits("app-b");
        let _three = b.acquire();
        assert_eq!(b.concurrency.in_use(), 1);
        // The same name is the same limits.
        assert_eq!(limiter.limits("app-a").concurrency.in_use(), 2);
    }
}
