//! How long the store's syncs (`fdatasync` of files, fsync of directories) take: a
//! lock-free histogram the caching file system records into, read as a
//! [`LatencyHistogram`] by [`Store::metrics`](crate::Store::metrics).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Buckets: bucket 0 holds latencies under 1 µs, bucket `i` those in
/// `[2^(i-1), 2^i)` µs; the last one everything from about 18 minutes (2^30 µs) on.
const BUCKETS: usize = 32;

/// Counts of durations by power-of-two bucket of microseconds. Recording is a few
/// relaxed atomic additions, so threads syncing at once do not serialize on it.
#[derive(Debug)]
pub(crate) struct SyncStats {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
    /// The `store` label of the published histogram (the store's directory).
    #[cfg(feature = "metrics")]
    store: std::sync::OnceLock<String>,
}

impl Default for SyncStats {
    fn default() -> Self {
        SyncStats {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            store: std::sync::OnceLock::new(),
        }
    }
}

fn bucket_of(d: Duration) -> usize {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    // 0 µs -> 0, 1 µs -> 1, 2..3 µs -> 2, 4..7 µs -> 3, ...
    ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

impl SyncStats {
    /// Runs `sync` and records how long it took (failed syncs too: they took the time).
    pub(crate) fn time<T>(&self, sync: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = sync();
        self.record(started.elapsed());
        out
    }

    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(d)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        match self.store.get() {
            Some(store) => metrics::histogram!(
                "streamlog.log-flush-time-seconds",
                "store" => store.clone()
            )
            .record(d.as_secs_f64()),
            None => metrics::histogram!("streamlog.log-flush-time-seconds").record(d.as_secs_f64()),
        }
    }

    /// Labels the published histogram with `store` (a store's directory), as every
    /// other metric of the store is: two stores of one process stay apart.
    #[cfg(feature = "metrics")]
    pub(crate) fn label_store(&self, store: String) {
        let _ = self.store.set(store);
    }

    /// What was recorded so far.
    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)),
            max: Duration::from_nanos(self.max_ns.load(Ordering::Relaxed)),
        }
    }
}

/// A snapshot of durations counted in power-of-two buckets of microseconds (Kafka's
/// `LogFlushRateAndTimeMs` for the store's syncs). Percentiles are the upper bound of
/// the bucket they fall in: at most twice the true value, never below it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// `buckets[0]`: under 1 µs; `buckets[i]`: from `2^(i-1)` µs up to `2^i` µs.
    pub buckets: Vec<u64>,
    /// How many durations were recorded.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
    /// The longest.
    pub max: Duration,
}

impl LatencyHistogram {
    /// The mean, or zero when nothing was recorded.
    pub fn mean(&self) -> Duration {
        match u32::try_from(self.count) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.total / n,
            Err(_) => Duration::from_secs_f64(self.total.as_secs_f64() / self.count as f64),
        }
    }

    /// The `q` quantile (`0.99` for p99): the upper bound of the bucket holding it,
    /// capped at [`max`](Self::max). Zero when nothing was recorded; `q` is clamped to
    /// `0.0..=1.0`.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the wanted sample, 1-based.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen = n.saturating_add(seen);
            if seen >= rank {
                let us = if i == 0 {
                    1
                } else {
                    1u64.checked_shl(i as u32).unwrap_or(u64::MAX)
                };
                return Duration::from_micros(us).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_of_microseconds() {
        assert_eq!(bucket_of(Duration::from_nanos(999)), 0);
        assert_eq!(bucket_of(Duration::from_micros(1)), 1);
        assert_eq!(bucket_of(Duration::from_micros(3)), 2);
        assert_eq!(bucket_of(Duration::from_micros(4)), 3);
        assert_eq!(bucket_of(Duration::from_secs(1_000_000)), BUCKETS - 1);
    }

    #[test]
    fn quantiles_bound_the_samples_from_above_within_a_factor_of_two() {
        let s = SyncStats::default();
        for us in 1..=100u64 {
            s.record(Duration::from_micros(us * 10));
        }
        let h = s.snapshot();
        assert_eq!(h.count, 100);
        assert_eq!(h.max, Duration::from_micros(1000));
        assert_eq!(h.mean(), Duration::from_micros(505));
        let p50 = h.quantile(0.5);
        assert!(p50 >= Duration::from_micros(500) && p50 <= Duration::from_micros(1000));
        assert_eq!(h.quantile(1.0), h.max);
        assert_eq!(h.quantile(f64::NAN), h.max);
        assert!(h.quantile(0.0) >= Duration::from_micros(10));
        assert_eq!(LatencyHistogram::default().quantile(0.99), Duration::ZERO);
    }
}
