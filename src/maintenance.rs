//! Background maintenance: retention, compaction and background
//! flush (`flush_ms`), run by one store thread at `maintenance_interval_ms` or on demand
//! with [`Store::run_maintenance`](crate::Store::run_maintenance).

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::catalog::{Catalog, Counter, PartitionState};
use crate::error::{Error, Result};
use crate::groups::Coordinator;
use crate::log::{CleanPolicy, RetentionPolicy};
use crate::topic::TopicPartition;
use crate::topic::{CleanupPolicy, TopicConfig};
use crate::txn::TxnCoordinator;

/// What one maintenance pass did ([`Store::run_maintenance`](crate::Store::run_maintenance)).
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
    /// Producer ids forgotten because they were idle longer than the store's
    /// `producer_id_expiration_ms`.
    pub producers_expired: usize,
    /// Transactions aborted because they stayed open past their producer's
    /// `transaction_timeout_ms` (their producers are fenced).
    pub transactions_aborted: usize,
    /// Partitions whose maintenance failed, with the error; the others were still done.
    pub errors: Vec<(TopicPartition, Error)>,
}

/// What the maintenance thread runs after each full pass, with the store's catalog (the
/// store publishes its metrics there).
pub(crate) type AfterPass = Box<dyn Fn(&Catalog) + Send + Sync>;

/// The maintenance thread's handle and stop signal, shared with the thread (which holds
/// the catalog only weakly and never the store, so dropping the last store handle
/// stops it and closes the store).
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The thread's id: a `stop` on the thread itself (a waker its pass woke polled a
    /// task inline, which closed the store) neither joins nor waits for another stop's
    /// join of it.
    thread_id: std::sync::OnceLock<std::thread::ThreadId>,
    /// Serializes passes (thread and `run_maintenance`).
    pass: Mutex<()>,
    /// Set by [`nudge`](Self::nudge): the thread recomputes when to wake.
    nudged: std::sync::atomic::AtomicBool,
    /// The thread wakes at least every [`WATCH`] because a member waits in `recv`: a
    /// member starting to wait then needs no nudge.
    watching: std::sync::atomic::AtomicBool,
}

impl Maintenance {
    /// Starts the thread: a full pass every `interval`, and flush checks in between as
    /// often as the shortest `flush_ms` needs.
    pub(crate) fn start(
        self: &Arc<Self>,
        catalog: &Arc<Catalog>,
        groups: &Arc<Coordinator>,
        txn: &Arc<TxnCoordinator>,
        interval: Duration,
        after_pass: Option<AfterPass>,
    ) -> std::io::Result<()> {
        let weak = Arc::downgrade(catalog);
        let groups = groups.clone();
        let txn = txn.clone();
        let m = self.clone();
        let handle = std::thread::Builder::new()
            .name("streamlog-maintenance".into())
            .spawn(move || run_thread(&weak, (&groups, &txn), &m, interval, after_pass))?;
        let _ = self.thread_id.set(handle.thread().id());
        *self.thread.lock() = Some(handle);
        Ok(())
    }

    /// Wakes the thread to recompute its next wake-up (a consumer started waiting in
    /// `recv`: its group's other members must be expired on time).
    pub(crate) fn nudge(&self) {
        if self.watching.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.reschedule();
    }

    /// Wakes the thread to recompute when its next pass is due: a topic was created or
    /// its `flush_ms` changed, and a background flush may be due sooner than the pass
    /// it planned (up to `maintenance_interval_ms` away).
    pub(crate) fn reschedule(&self) {
        self.nudged
            .store(true, std::sync::atomic::Ordering::Release);
        let _stop = self.stop.lock();
        self.wake.notify_all();
    }

    /// Whether `stop` was called (a pass in progress ends at the next partition).
    fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Stops the thread and waits for a pass in progress to end. (The thread never holds
    /// the store, so this is not called on it; the check is a guard against a join of
    /// itself.)
    ///
    /// The handle's lock is held through the join: a second caller (two `close`s at
    /// once) returns once the thread has ended too, not while its pass still runs.
    pub(crate) fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
        if self.thread_id.get() == Some(&std::thread::current().id()) {
            return;
        }
        let mut handle = self.thread.lock();
        if let Some(h) = handle.take()
            && h.join().is_err()
        {
            tracing::error!("the maintenance thread panicked");
        }
    }
}

/// The longest the thread sleeps while a member waits in `recv`.
const WATCH: Duration = Duration::from_secs(1);

fn run_thread(
    weak: &Weak<Catalog>,
    (groups, txn): (&Coordinator, &TxnCoordinator),
    m: &Maintenance,
    interval: Duration,
    after_pass: Option<AfterPass>,
) {
    let mut last_full = Instant::now();
    // When the next pass (a flush check, or a full one) is due; wake-ups in between
    // (a member's expiry, a nudge) only expire members.
    let mut next_pass = Instant::now();
    // When the last pass ended: a flush check is due `flush_ms` after it, also for a
    // topic created or changed since that pass (its `reschedule` wakes the thread).
    let mut last_pass = Instant::now();
    loop {
        let tick = {
            let Some(catalog) = weak.upgrade() else {
                return;
            };
            if catalog.is_closed() {
                return;
            }
            // Members gone stale in a group where a member waits in `recv` (before a
            // pass, which may take long, and after it).
            if groups.expire_for_waiters(&|names| catalog.partition_counts(names)) {
                catalog.notifier().notify();
            }
            if let Some(f) = min_flush_ms(&catalog) {
                next_pass = next_pass.min(last_pass + Duration::from_millis(f));
            }
            if Instant::now() >= next_pass {
                let full = last_full.elapsed() >= interval;
                if full {
                    last_full = Instant::now();
                }
                match m.run_pass(&catalog, groups, txn, full) {
                    Ok(r) => {
                        for (tp, e) in &r.errors {
                            tracing::error!(
                                "maintenance of {}-{}: {e}",
                                tp.topic(),
                                tp.partition()
                            );
                        }
                    }
                    Err(Error::Closed { .. }) => return,
                    Err(e) => tracing::error!("maintenance pass failed: {e}"),
                }
                if let (true, Some(after)) = (full, &after_pass) {
                    // The application's metrics recorder runs here: a panic in it must
                    // not end retention, flushes and member expiry for the store's life.
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        after(&catalog);
                    }));
                    if run.is_err() {
                        tracing::error!(
                            "publishing the metrics of {} panicked (in the metrics recorder)",
                            catalog.dir().display()
                        );
                    }
                }
                let until_full = interval.saturating_sub(last_full.elapsed());
                let flush = min_flush_ms(&catalog).map(Duration::from_millis);
                let until_pass = flush
                    .map_or(until_full, |f| f.min(until_full))
                    .max(Duration::from_millis(1));
                last_pass = Instant::now();
                next_pass = last_pass + until_pass;
            }
            // Members gone stale in a group where a member waits in `recv`.
            if groups.expire_for_waiters(&|names| catalog.partition_counts(names)) {
                catalog.notifier().notify();
            }
            let now = Instant::now();
            // While a member waits in `recv`, at least every `WATCH`: members that join
            // or stop polling later set deadlines this did not see (as a blocking poll
            // re-checks every second).
            let watch = groups.has_waiters();
            m.watching
                .store(watch, std::sync::atomic::Ordering::Release);
            let until_expiry = groups
                .next_expiry()
                .map(|at| at.saturating_duration_since(now))
                .or(watch.then_some(WATCH))
                .map(|e| if watch { e.min(WATCH) } else { e });
            let until_pass = next_pass.saturating_duration_since(now);
            until_expiry
                .map_or(until_pass, |e| e.min(until_pass))
                .max(Duration::from_millis(1))
        };
        // No strong reference is held while sleeping. `stop` sets the flag under this
        // mutex before notifying, so no wake-up is lost.
        let mut stop = m.stop.lock();
        if *stop {
            return;
        }
        // A nudge since the tick was computed: compute it again.
        if m.nudged.swap(false, std::sync::atomic::Ordering::AcqRel) {
            continue;
        }
        m.wake.wait_for(&mut stop, tick);
        if *stop {
            return;
        }
    }
}

impl Maintenance {
    /// A pass: everything when `full`, else only the background flush.
    pub(crate) fn run_pass(
        &self,
        catalog: &Catalog,
        groups: &Coordinator,
        txn: &TxnCoordinator,
        full: bool,
    ) -> Result<MaintenanceReport> {
        catalog.check_open()?;
        let mut report = MaintenanceReport::default();
        if full {
            // First: an aborted transaction no longer holds back the cleaner. Not under
            // the pass lock: its markers wake readers, whose wakers may poll a task
            // that runs a pass itself (each transaction is aborted under its own lock).
            report.transactions_aborted = txn.abort_expired(catalog);
        }
        let pass = self.pass.lock();
        let now = catalog.now_ms();
        // Partitions whose retention moved their start: woken once the pass lock is
        // let go, since a waker may poll its task inline and that task may call into
        // maintenance (or close the store) itself.
        let mut to_wake = Vec::new();
        for topic in catalog.topics() {
            let tc = topic.config();
            for p in topic.partitions() {
                if catalog.is_closed() || self.stopping() {
                    // What the pass did so far still counts.
                    count_pass(catalog, &report, false);
                    drop(pass);
                    to_wake.iter().for_each(|p: &Arc<PartitionState>| p.wake());
                    return Err(Error::Closed { what: "store" });
                }
                if p.is_closed() {
                    continue;
                }
                report.partitions_checked += 1;
                let deleted_before = report.segments_deleted;
                let key_map_bytes = catalog.config().key_map_bytes();
                if full {
                    let max_age = catalog.config().producer_id_expiration_ms;
                    report.producers_expired += p
                        .log()
                        .expire_producers(i64::try_from(max_age).unwrap_or(i64::MAX));
                }
                let r = maintain_partition(&p, &tc, groups, now, full, key_map_bytes, &mut report);
                if report.segments_deleted > deleted_before {
                    to_wake.push(p.clone());
                }
                if let Err(e) = r {
                    report.errors.push((p.topic_partition(), e));
                }
            }
        }
        count_pass(catalog, &report, full);
        drop(pass);
        to_wake.iter().for_each(|p| p.wake());
        Ok(report)
    }
}

/// Adds a pass's work to the store's totals (metrics).
fn count_pass(catalog: &Catalog, report: &MaintenanceReport, full: bool) {
    let stats = catalog.stats();
    if full {
        stats.add(Counter::MaintenancePasses, 1);
    }
    stats.add(Counter::CleanerRuns, report.partitions_compacted as u64);
    stats.add(Counter::CleanerBytesRead, report.bytes_compacted);
    stats.add(Counter::CleanerBytesSaved, report.bytes_saved_by_compaction);
    stats.add(Counter::CleanerRecordsRemoved, report.records_removed);
    stats.add(
        Counter::RetentionSegmentsDeleted,
        report.segments_deleted as u64,
    );
    stats.add(Counter::RetentionBytesDeleted, report.bytes_reclaimed);
}

/// Flush, retention and compaction of one partition, as its topic's config says.
fn maintain_partition(
    p: &PartitionState,
    tc: &TopicConfig,
    groups: &Coordinator,
    now: i64,
    full: bool,
    key_map_bytes: usize,
    report: &mut MaintenanceReport,
) -> Result<()> {
    let log = p.log();
    if tc.flush_ms != u64::MAX
        && log.durable_offset() < log.log_end_offset()
        && now.saturating_sub(log.last_flush_ms()) >= i64::try_from(tc.flush_ms).unwrap_or(i64::MAX)
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
        let tp = p.topic_partition();
        let floor = log.log_start_offset();
        policy.gate = tc
            .retention_gate_groups
            .iter()
            .map(|g| {
                let c = groups.committed(g, &tp);
                c.and_then(|c| c.applied_to(p)).unwrap_or(floor)
            })
            .min();
        // A hard cap on the partition, for topics whose policy deletes by time or
        // size (where a stalled group would hold data back for ever); a topic that
        // keeps everything (compact only, or no limit) loses nothing to it.
        if deletes && (tc.retention_ms >= 0 || tc.retention_bytes >= 0) {
            policy.max_bytes = tc.retention_gate_max_bytes;
        }
    }
    let r = log.enforce_retention(&policy)?;
    report.segments_deleted += r.segments_deleted;
    report.bytes_reclaimed += r.bytes_reclaimed;
    if tc.cleanup_policy != CleanupPolicy::Delete {
        let c = log.clean(&CleanPolicy {
            now_ms: now,
            delete_retention_ms: tc.delete_retention_ms,
            min_compaction_lag_ms: tc.min_compaction_lag_ms,
            max_compaction_lag_ms: tc.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: tc.min_cleanable_dirty_ratio,
            key_map_bytes,
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
fn min_flush_ms(catalog: &Catalog) -> Option<u64> {
    catalog
        .topics()
        .iter()
        .map(|t| t.config().flush_ms)
        .filter(|&f| f != u64::MAX)
        .min()
}
