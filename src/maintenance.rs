//! Background maintenance (DESIGN.md section 6): retention, compaction and background
//! flush (`flush_ms`), run by one store thread at `maintenance_interval_ms` or on demand
//! with [`Store::run_maintenance`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::consumer::TopicPartition;
use crate::error::{Error, Result};
use crate::log::{CleanPolicy, RetentionPolicy};
use crate::store::{Inner, PartitionState, Store};
use crate::topic::{CleanupPolicy, TopicConfig};

/// What one maintenance pass did ([`Store::run_maintenance`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Partitions looked at.
    pub partitions_checked: usize,
    /// Segments deleted by retention (time, size, log start offset, gate cap).
    pub segments_deleted: usize,
    /// Bytes of segments deleted by retention.
    pub bytes_reclaimed: u64,
    /// Partitions a compaction pass cleaned.
    pub partitions_compacted: usize,
    /// Bytes compaction read (the segments it rewrote).
    pub bytes_compacted: u64,
    /// Bytes compaction saved (read minus written).
    pub bytes_saved_by_compaction: u64,
    /// Records compaction removed.
    pub records_removed: u64,
    /// Partitions flushed because `flush_ms` passed.
    pub partitions_flushed: usize,
    /// Partitions whose maintenance failed, with the error; the others were still done.
    pub errors: Vec<(TopicPartition, Error)>,
}

/// The maintenance thread's handle and stop signal, shared with the thread (which holds
/// the store itself only weakly, so dropping the last store handle still closes it).
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Serializes passes (thread and `run_maintenance`).
    pass: Mutex<()>,
}

impl Maintenance {
    /// Starts the thread: a full pass every `interval`, and flush checks in between as
    /// often as the shortest `flush_ms` needs.
    pub(crate) fn start(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        interval: Duration,
    ) -> std::io::Result<()> {
        let weak = Arc::downgrade(inner);
        let m = self.clone();
        let handle = std::thread::Builder::new()
            .name("streamlog-maintenance".into())
            .spawn(move || run_thread(&weak, &m, interval))?;
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Whether `stop` was called (a pass in progress ends at the next partition).
    fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Stops the thread and waits for a pass in progress to end (unless called on the
    /// thread itself, when it dropped the store's last handle).
    pub(crate) fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
        let handle = self.thread.lock().take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
            && h.join().is_err()
        {
            log::error!("the maintenance thread panicked");
        }
    }
}

fn run_thread(weak: &Weak<Inner>, m: &Maintenance, interval: Duration) {
    let mut last_full = Instant::now();
    loop {
        let tick = {
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            let store = Store { inner };
            let full = last_full.elapsed() >= interval;
            if full {
                last_full = Instant::now();
            }
            match store.maintenance_pass(full) {
                Ok(r) => {
                    for (tp, e) in &r.errors {
                        log::error!("maintenance of {}-{}: {e}", tp.topic(), tp.partition());
                    }
                }
                Err(Error::Closed { .. }) => return,
                Err(e) => log::error!("maintenance pass failed: {e}"),
            }
            let until_full = interval.saturating_sub(last_full.elapsed());
            let flush = store.min_flush_ms().map(Duration::from_millis);
            flush
                .map_or(until_full, |f| f.min(until_full))
                .max(Duration::from_millis(1))
        };
        // No strong reference is held while sleeping. `stop` sets the flag under this
        // mutex before notifying, so no wake-up is lost.
        let mut stop = m.stop.lock();
        if *stop {
            return;
        }
        m.wake.wait_for(&mut stop, tick);
        if *stop {
            return;
        }
    }
}

impl Store {
    /// Runs one maintenance pass now over every partition (including the internal
    /// committed-offsets topic): retention for `delete` and `compact,delete` topics
    /// (segments below the log start offset go for every topic), compaction for
    /// `compact` topics when dirty enough, and a flush of partitions whose `flush_ms`
    /// passed. Returns what it did; a failure in one partition is reported in
    /// [`MaintenanceReport::errors`] and the others are still done.
    ///
    /// ```
    /// use streamlog::{Store, StoreConfig, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open_with(dir.path(), StoreConfig::default().background_maintenance(false))?;
    /// store.create_topic("events", TopicConfig::default().retention_bytes(0).segment_bytes(1024))?;
    /// let p = store.topic("events")?.partition(0)?;
    /// for i in 0..100 {
    ///     p.append(&[streamlog::Record::new(i, Some("k"), Some(vec![0u8; 100]))])?;
    /// }
    /// let report = store.run_maintenance()?;
    /// assert!(report.segments_deleted > 0);
    /// store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `Closed` if the store is closed.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.maintenance_pass(true)
    }

    /// A pass: everything when `full`, else only the background flush.
    fn maintenance_pass(&self, full: bool) -> Result<MaintenanceReport> {
        self.check_open()?;
        let _pass = self.inner.maintenance.pass.lock();
        let now = self.inner.config.now_ms();
        let mut report = MaintenanceReport::default();
        for topic in self.inner.topic_states() {
            let tc = topic.config.read().clone();
            let parts = topic.partitions.read().clone();
            for p in parts {
                if self.inner.closed.load(Ordering::Acquire) || self.inner.maintenance.stopping() {
                    return Err(Error::Closed { what: "store" });
                }
                if p.log.is_closed() {
                    continue;
                }
                report.partitions_checked += 1;
                if let Err(e) = self.maintain_partition(&p, &tc, now, full, &mut report) {
                    report
                        .errors
                        .push((TopicPartition::new(p.topic.clone(), p.partition), e));
                }
            }
        }
        Ok(report)
    }

    fn maintain_partition(
        &self,
        p: &PartitionState,
        tc: &TopicConfig,
        now: i64,
        full: bool,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let log = &p.log;
        if tc.flush_ms != u64::MAX
            && log.durable_offset() < log.log_end_offset()
            && now.saturating_sub(log.last_flush_ms())
                >= i64::try_from(tc.flush_ms).unwrap_or(i64::MAX)
        {
            log.flush()?;
            report.partitions_flushed += 1;
        }
        if !full {
            return Ok(());
        }
        let deletes = tc.cleanup_policy != CleanupPolicy::Compact;
        let mut policy = RetentionPolicy::log_start_only(now);
        if deletes {
            policy.retention_ms = tc.retention_ms;
            policy.retention_bytes = tc.retention_bytes;
        }
        if !tc.retention_gate_groups.is_empty() {
            let tp = TopicPartition::new(p.topic.clone(), p.partition);
            let floor = log.log_start_offset();
            policy.gate = tc
                .retention_gate_groups
                .iter()
                .map(|g| {
                    let c = self.inner.groups.committed(g, &tp);
                    c.and_then(|c| p.apply_commit(&c)).unwrap_or(floor)
                })
                .min();
            policy.max_bytes = tc.retention_gate_max_bytes;
        }
        let r = log.enforce_retention(&policy)?;
        report.segments_deleted += r.segments_deleted;
        report.bytes_reclaimed += r.bytes_reclaimed;
        if r.segments_deleted > 0 {
            p.wake();
        }
        if tc.cleanup_policy != CleanupPolicy::Delete {
            let c = log.clean(&CleanPolicy {
                now_ms: now,
                delete_retention_ms: tc.delete_retention_ms,
                min_compaction_lag_ms: tc.min_compaction_lag_ms,
                max_compaction_lag_ms: tc.max_compaction_lag_ms,
                min_cleanable_dirty_ratio: tc.min_cleanable_dirty_ratio,
                key_map_bytes: self.inner.config.key_map_bytes(),
                force: false,
            })?;
            if c.cleaned {
                report.partitions_compacted += 1;
                report.bytes_compacted += c.bytes_read;
                report.bytes_saved_by_compaction += c.bytes_read.saturating_sub(c.bytes_written);
                report.records_removed += c.records_removed;
            }
        }
        Ok(())
    }

    /// The shortest `flush_ms` of any topic, if any topic sets one.
    fn min_flush_ms(&self) -> Option<u64> {
        self.inner
            .topic_states()
            .iter()
            .map(|t| t.config.read().flush_ms)
            .filter(|&f| f != u64::MAX)
            .min()
    }
}
