//! Counters of a running application, shared by its threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// The application's counters (shared by its threads, updated as they work).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) processed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) dropped_late: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) restored: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            processed: self.processed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dropped_late: self.dropped_late.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            restored: self.restored.load(Ordering::Relaxed),
        }
    }
}

/// The counters of a [`Streams`](crate::Streams) application at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Input records processed, including ones processed again: after a failure under
    /// at-least-once, and after an aborted transaction (one that timed out, or a task
    /// that moved) under exactly-once. `skipped` and `dropped_late` count redone work
    /// again too.
    pub processed: u64,
    /// Records skipped: a null key or value where the operator needs one, a negative
    /// timestamp in a windowed aggregation, or an undecodable record under
    /// [`DeserializationPolicy::SkipAndCount`](crate::DeserializationPolicy).
    pub skipped: u64,
    /// Record-window updates dropped because the window had closed (stream time past
    /// its end plus grace): a late record counts once per closed window it belongs to.
    pub dropped_late: u64,
    /// Commits (transactions under exactly-once).
    pub commits: u64,
    /// Changelog records read back into state stores.
    pub restored: u64,
}
