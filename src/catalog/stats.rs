//! Running totals of what the store's clients and maintenance did: the counters behind
//! [`Store::metrics`](crate::Store::metrics). Each is a relaxed atomic added to once per
//! batch, poll, commit or maintenance pass (never per record), so keeping them costs
//! the hot paths nothing measurable.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter of [`ClientStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Counter {
    /// Records producers appended (Kafka's `record-send-total`).
    RecordsSent,
    /// Bytes of the batches producers appended, as written (compressed): `byte-total`.
    BytesSent,
    /// Batches producers appended (for `batch-size-avg`).
    BatchesSent,
    /// Records whose send failed: `record-error-total`.
    RecordErrors,
    /// Records consumers' polls returned: `records-consumed-total`.
    RecordsConsumed,
    /// Bytes of the batches consumers read: `bytes-consumed-total`.
    BytesConsumed,
    /// Offset commits (each a durable append to `__consumer_offsets`): `commit-total`.
    Commits,
    /// Partition compactions.
    CleanerRuns,
    /// Bytes compaction read.
    CleanerBytesRead,
    /// Bytes compaction saved (read minus written).
    CleanerBytesSaved,
    /// Records compaction removed.
    CleanerRecordsRemoved,
    /// Segments retention deleted.
    RetentionSegmentsDeleted,
    /// Bytes of those segments.
    RetentionBytesDeleted,
    /// Maintenance passes (full ones; the background flush checks between them are not
    /// counted).
    MaintenancePasses,
}

const COUNTERS: usize = Counter::MaintenancePasses as usize + 1;

/// The totals since the store was opened.
#[derive(Debug)]
pub(crate) struct ClientStats {
    counters: [AtomicU64; COUNTERS],
}

impl Default for ClientStats {
    fn default() -> Self {
        ClientStats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ClientStats {
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        if n != 0 {
            self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }
}
