//! One partition on disk: a directory of Kafka segments with crash-safe append, read,
//! flush, roll, truncation and recovery.
//!
//! # Durability
//! - [`Log::append`] returns once the batch is written to the active segment (the OS
//!   page cache): it survives a process crash, not a power cut.
//! - [`Log::flush`] returns once everything appended before it is covered by
//!   `fdatasync` of every segment holding it (and of the directory when segments were
//!   created): it survives a power cut. [`Log::durable_offset`] is the watermark.
//! - After a crash, [`Log::open`] yields a prefix of what was appended that contains
//!   everything flushed. Invalid bytes after the last recorded flushed position
//!   (`streamlog.durable`; a torn tail) are truncated and described in
//!   [`Log::recovery_report`]; invalid bytes before it are [`Error::Corruption`] and
//!   nothing is truncated. Under concurrent [`Log::flush_to`] callers the recorded
//!   position may trail the durable offset by the groups synced in the last 20 ms within
//!   the active segment (one fsync per group instead of two): those bytes were fsync'd,
//!   so only a failing medium can damage them, and such damage is truncated and reported
//!   rather than refused.
//! - A failed fsync poisons the log: later writes fail with [`Error::Poisoned`] until it
//!   is reopened. fsyncs are never retried.
//! - Transactions ([`Log::append_marker`], [`Log::last_stable_offset`],
//!   [`Log::aborted_transactions`]): the open transactions and the `.txnindex` entries
//!   after any reopen are those of the markers and transactional batches the recovered
//!   log holds (see `transactions.rs`).

mod append;
mod checkpoint;
mod clean;
mod clean_txn;
mod close;
mod config;
mod durable;
mod epoch;
mod index;
mod maps;
mod open;
mod producer_expiry;
mod producer_snapshot;
mod producer_state;
mod read;
mod recent_clock;
mod recovery;
mod retention;
mod segment;
mod snapshots;
mod swap;
// Read-only following of another process's files: pread and inodes (unix).
#[cfg(unix)]
mod tail;
mod transactions;
mod truncate;
mod txn_index;
mod untouched;
mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result, io_ctx};
use crate::fs::{DirLock, FileSystem};
pub use append::AppendInfo;
pub(crate) use checkpoint::{
    CONTAINER_MARKER, DURABLE_FILE, PARTITION_METADATA_FILE, WriteStep,
    read_small as read_small_file, write_atomic_steps as write_file_atomically_steps,
    write_atomic_via as write_file_atomically_via,
};
use checkpoint::{DurableFile, DurablePoint};
pub use clean::{CleanOutcome, CleanPolicy};
pub use config::{Clock, LogConfig, ManualClock, SystemClock};
pub use index::{OffsetEntry, TimeEntry};
pub use maps::{DEFAULT_MAX_MAPPED_SEGMENTS, max_mapped_segments, set_max_mapped_segments};
pub use retention::{RetentionOutcome, RetentionPolicy};
use segment::Segment;
pub(crate) use segment::file_name as segment_file_name;
#[cfg(unix)]
pub use tail::TailReader;
pub use transactions::TransactionResult;
pub use txn_index::AbortedTxn;
pub use verify::{PartitionCheck, verify_partition_dir};

/// Suffixes of segment files (`<20-digit base offset>.<suffix>`).
const SEGMENT_SUFFIXES: [&str; 5] = ["log", "index", "timeindex", "txnindex", "snapshot"];
/// What the cleaner, deletion and atomic writes append to a file's name meanwhile.
const TRANSIENT_SUFFIXES: [&str; 4] = [".cleaned", ".swap", ".deleted", ".tmp"];
/// The checkpoint files of a partition directory.
const CHECKPOINT_FILES: [&str; 10] = [
    checkpoint::PARTITION_METADATA_FILE,
    checkpoint::RECOVERY_POINT_FILE,
    checkpoint::UNSYNCED_FILE,
    checkpoint::CLEAN_SHUTDOWN_FILE,
    checkpoint::DURABLE_FILE,
    checkpoint::LEADER_EPOCH_FILE,
    checkpoint::LOCK_FILE,
    checkpoint::LOG_START_FILE,
    clean::CLEANER_OFFSET_FILE,
    clean::HORIZON_FILE,
];

/// Whether `name` is a file a partition directory holds: a segment file or index
/// (`<20-digit base offset>.log` and so on, also while being cleaned, swapped in,
/// deleted or written), or one of the partition's checkpoint files (or its temporary
/// copy). Anything else in a directory means the directory is not (only) ours.
pub(crate) fn is_partition_file(name: &str) -> bool {
    let name = TRANSIENT_SUFFIXES
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    SEGMENT_SUFFIXES
        .iter()
        .any(|suffix| segment::parse_file_name(name, suffix).is_some())
        || CHECKPOINT_FILES.contains(&name)
}

/// What [`Log::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The directory had a clean-shutdown marker that matched the log.
    pub clean_shutdown: bool,
    /// Segments in the log after opening.
    pub segments: usize,
    /// Segments whose `.log` was scanned and validated.
    pub segments_scanned: usize,
    /// Bytes read while scanning.
    pub bytes_scanned: u64,
    /// Segments whose `.index`/`.timeindex` were missing or damaged and were rebuilt.
    pub indexes_rebuilt: usize,
    /// The torn tail that was removed, if any.
    pub truncation: Option<Truncation>,
    /// Compaction swaps a crash interrupted, finished at open (with the index files
    /// written before the swap: no rebuild).
    pub swaps_completed: usize,
    /// After an unclean shutdown, bytes past the last flush read from the disk itself
    /// (`O_DIRECT`) to compare with what the page cache holds: a failed fsync in an
    /// earlier process may have left bytes there that the disk lacks. The read costs
    /// about as much as reading the same bytes from the device.
    pub bytes_compared: u64,
    /// Bytes written again, and made durable by the open: the pages the disk lacked
    /// (after a failed fsync), or, after a poisoned log, all past the last flush.
    pub bytes_rewritten: u64,
}

/// A torn tail removed by recovery: data after the last flushed position that did not
/// survive the crash intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The file truncated.
    pub path: PathBuf,
    /// The position it was truncated to.
    pub position: u64,
    /// Why the data there was invalid.
    pub reason: String,
    /// Offsets lost: from the new log end offset up to (not including) the highest
    /// offset known to have been written. The range may understate the loss when the
    /// damaged bytes hid further offsets.
    pub lost_offsets: std::ops::Range<i64>,
    /// Bytes removed, including whole later segments.
    pub bytes_removed: u64,
    /// Later segments deleted because they followed the damage.
    pub segments_deleted: usize,
}

/// Summary of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Base offset (the file name).
    pub base_offset: i64,
    /// Bytes in the `.log` file.
    pub size: u64,
    /// Largest record timestamp (-1 if unknown).
    pub max_timestamp: i64,
    /// Path of the `.log` file.
    pub path: PathBuf,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    bytes_since_index: u64,
    first_batch_timestamp: Option<i64>,
    created_ms: i64,
    /// Sealed segments with data (or index files) not yet synced.
    unflushed: Vec<Arc<Segment>>,
    /// Files were created or removed since the directory was last synced.
    dir_dirty: bool,
    messages_since_flush: u64,
    /// Idempotent producers' recent batches and open transactions (rebuilt at open from
    /// `.snapshot` files and the batches after them).
    producers: producer_state::ProducerStates,
    /// Producer snapshots written (unsynced) at rolls since the last flush, with their
    /// bytes: the flush writes and syncs them again before the recovery point passes
    /// them (a rebuild after a crash relies on them, see `snapshots`).
    pending_snapshots: Vec<(i64, Vec<u8>)>,
}

#[derive(Debug)]
struct FlushState {
    recovery_point: i64,
    /// The recovery-point file holds `recovery_point` (or is absent and it is 0): false
    /// while a point the open did not trust, or could not read, is still there.
    point_on_disk: bool,
}

/// One partition log. `Send + Sync`: appends are serialized by an internal lock;
/// readers never take it.
///
/// ```
/// use streamlog::log::{Log, LogConfig};
/// use streamlog::format::BatchBuilder;
/// let dir = tempfile::tempdir()?;
/// let log = Log::open(dir.path().join("clicks-0"), LogConfig::default())?;
/// let mut b = BatchBuilder::new();
/// b.push(1_700_000_000_000, Some(b"user-7"), Some(b"home"), &[])?;
/// let info = log.append(&mut b.finish()?)?;
/// log.flush()?; // durable: survives power loss
/// let records = log.read_records(info.base_offset, 1 << 20)?;
/// assert_eq!(records[0].value.as_deref(), Some(&b"home"[..]));
/// log.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    topic: String,
    partition: i32,
    fs: Arc<dyn FileSystem>,
    config: LogConfig,
    /// The partition epoch (see [`epoch`](self::epoch)), stamped on every appended batch.
    epoch: AtomicI32,
    /// Where each epoch started (`leader-epoch-checkpoint`). Replaced under `writer`.
    epochs: RwLock<Arc<epoch::EpochHistory>>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    next_offset: AtomicI64,
    /// The first offset of the earliest open transaction (i64::MAX: none); the last
    /// stable offset is the smaller of it and `next_offset`. Stored under `writer`
    /// before `next_offset` whenever both change.
    first_unstable: AtomicI64,
    durable_offset: AtomicI64,
    log_start: AtomicI64,
    writer: Mutex<Writer>,
    flush_state: Mutex<FlushState>,
    /// `streamlog.durable`. Written after the fsyncs it describes, by the flush that
    /// made them, possibly after that flush released `flush_state` (see `flush_to`).
    durable_file: Mutex<DurableFile>,
    /// A durable position synced but not yet written to `durable_file`.
    durable_pending: Mutex<Option<DurablePoint>>,
    /// The highest offset a parked `flush_to` caller waits to see durable.
    flush_wanted: AtomicI64,
    /// Segment base and time (log clock) of the durable position written last.
    recorded_base: AtomicI64,
    recorded_ms: AtomicI64,
    /// Group commit: callers of `flush_to` waiting for another caller's fsync park
    /// here and are unparked together when it completes (each directly: a condvar would
    /// hand them one mutex in turn, and the first woken would start the next fsync
    /// before the others had appended again).
    flush_waiters: Mutex<Vec<std::thread::Thread>>,
    /// Serializes retention, compaction and truncation (each rewrites the segment list).
    maintenance: Mutex<()>,
    /// The cleaner's checkpoint: offsets below it have been compacted.
    cleaner_offset: Mutex<i64>,
    /// When the earliest kept tombstone may go (see `clean`); i64::MIN: unknown.
    tombstone_horizon: AtomicI64,
    /// When the last flush completed (the log's clock), for `flush_ms`.
    last_flush_ms: AtomicI64,
    poison: Mutex<Option<String>>,
    /// `UNSYNCED_FILE` was created (by the first poison that left data at risk).
    unsynced_marked: AtomicBool,
    closed: AtomicBool,
    /// The knobs that may change while open (see [`alter_config`](Self::alter_config)).
    live: config::LiveConfig,
    /// Opened after a clean shutdown and not changed since: the clean-shutdown marker is
    /// still on disk (see `untouched.rs`).
    untouched: AtomicBool,
    /// Opened after the log was poisoned (`checkpoint::UNSYNCED_FILE`): the open writes
    /// again what it keeps where it cannot compare it with the disk.
    opened_unsynced: bool,
    /// Serializes [`touch`](Self::touch).
    touch_lock: Mutex<()>,
    report: RecoveryReport,
    /// Held until the log is closed (not merely dropped: handles may outlive a close).
    locks: Mutex<Vec<Box<dyn DirLock>>>,
}

impl Log {
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening the log found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The first offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// The next offset to be assigned (one past the last record).
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Every offset below this is covered by a completed fsync.
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset.load(Ordering::Acquire)
    }

    /// When the last flush completed, by the log's clock (the open time if none yet).
    pub fn last_flush_ms(&self) -> i64 {
        self.last_flush_ms.load(Ordering::Acquire)
    }

    /// The configuration the log was opened with (a store's topic whose config was
    /// altered since applies the new `segment_bytes`, `segment_ms`, `max_message_bytes`
    /// and `flush_messages`; see `Store::alter_topic_config`).
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The largest batch accepted now.
    pub fn max_message_bytes(&self) -> u64 {
        self.live.max_message_bytes()
    }

    /// Applies `config`'s alterable knobs from the next use on: `segment_bytes`,
    /// `segment_ms` (the next roll), `max_message_bytes` and the timestamp bounds
    /// (`timestamp_before_max_ms`, `timestamp_after_max_ms`: the next append),
    /// `flush_messages`, and offset gaps (once allowed, they stay allowed). The others
    /// stay as opened.
    ///
    /// # Errors
    /// `InvalidConfig` for a knob out of range (nothing is applied then).
    pub(crate) fn alter_config(&self, config: &LogConfig) -> Result<()> {
        config.validate()?;
        self.live.set(config);
        Ok(())
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.snapshot()
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base,
                size: s.size(),
                max_timestamp: s.max_timestamp.load(Ordering::Acquire),
                path: s.log_path.clone(),
            })
            .collect()
    }

    /// Total bytes in `.log` files.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.size()).sum()
    }

    /// Whether the log was closed (appends return `Closed`).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The partition epoch: changed by every open after a crash and by every
    /// [`truncate_to`](Self::truncate_to), that is whenever records may have been removed
    /// from the end (Kafka's leader epoch, KIP-320). Batches appended now carry it.
    pub fn epoch(&self) -> i32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Where the records appended under `epoch` ended (exclusive): where the next epoch
    /// started, capped at the log end. A position `(offset, epoch)` taken earlier (a
    /// committed offset) still points into the records it was taken from iff `offset <=`
    /// this; otherwise the records between were removed and this is where they were
    /// cut. `None` for the current epoch (its records go on), a later one, or a
    /// negative (unknown) one.
    pub fn epoch_end_offset(&self, epoch: i32) -> Option<i64> {
        let end = self.epochs.read().end_offset(epoch)?;
        Some(end.min(self.log_end_offset()))
    }

    /// Starts a new epoch at `start`, the log end once records may have been removed
    /// (the caller holds the writer lock, so no append interleaves). Durable before any
    /// batch carries it.
    fn begin_epoch(&self, _writer: &Writer, start: i64) -> Result<i32> {
        let mut next = epoch::EpochHistory::clone(&self.epochs.read());
        let epoch = next.begin(start);
        checkpoint::write_atomic(
            self.fs.as_ref(),
            &self.dir,
            checkpoint::LEADER_EPOCH_FILE,
            next.render().as_bytes(),
        )
        .map_err(io_ctx(format!(
            "write {}/{}",
            self.dir.display(),
            checkpoint::LEADER_EPOCH_FILE
        )))
        // Its fsyncs are never retried, and the open that begins an epoch after a
        // crash must not be followed by a clean-shutdown marker without it.
        .inspect_err(|e| self.poison_with(e.to_string()))?;
        *self.epochs.write() = Arc::new(next);
        self.epoch.store(epoch, Ordering::Release);
        Ok(epoch)
    }

    /// What a batch header is checked against: the epoch of its offset, and contiguous
    /// offsets unless compaction may leave gaps.
    fn rules(&self) -> segment::Rules {
        segment::Rules {
            epochs: Some(self.epochs.read().clone()),
            allow_gaps: self.live.allow_offset_gaps(),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    /// Why the log stopped taking writes, if it did: a failed fsync or a write that
    /// failed part-way poisons it (see the module docs), and every later write fails
    /// with [`Error::Poisoned`] until the log is reopened.
    pub fn poison_reason(&self) -> Option<String> {
        self.poison.lock().clone()
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        self.check_poison()
    }

    /// `Poisoned` if the log is.
    fn check_poison(&self) -> Result<()> {
        if let Some(reason) = self.poison.lock().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// Runs an fsync (`what` names it in the error); a failure poisons the log. Never
    /// retry an fsync: the kernel may have dropped the pages it could not write, and a
    /// second fsync would report success without them.
    fn fsync_or_poison(&self, what: String, sync: impl FnOnce() -> io::Result<()>) -> Result<()> {
        sync()
            .map_err(io_ctx(what))
            .inspect_err(|e| self.poison_with(e.to_string()))
    }

    fn poison_with(&self, reason: String) {
        self.poison_only(reason);
        // A poisoned log runs no later flush: the position a group commit synced and
        // left for one is recorded now (else the next open takes the acknowledged bytes
        // past the older one for unsynced ones and writes them again). Skipped when the
        // durable file is busy: its holder is recording (or dropping) that position.
        if let Some(mut file) = self.durable_file.try_lock()
            && let Err(e) = self.record_pending_in(&mut file)
        {
            tracing::warn!("{}: after a poison: {e}", self.dir.display());
        }
        // Also after a poison that did not need it: a failure that did may follow it.
        if !self.unsynced_marked.swap(true, Ordering::AcqRel) {
            // For the next open on this machine (see `UNSYNCED_FILE`). If even this
            // fails, the disk is gone for this process as well.
            let path = self.dir.join(checkpoint::UNSYNCED_FILE);
            if let Err(e) = self.fs.open(&path, true) {
                tracing::warn!("{}: not created: {e}", path.display());
            }
        }
    }

    /// Poisons after a failure that left no segment byte unsynced: every write before
    /// it was fsync'd (only the durable-position record failed). No `UNSYNCED_FILE`,
    /// whose next open would write all of the tail again: bytes a flush synced would
    /// then be exposed to a write torn by a power cut during that open.
    fn poison_data_synced(&self, reason: String) {
        self.poison_only(reason);
    }

    /// Writes `bytes` as the partition's file `name` through `name.tmp` (atomically,
    /// synced; see [`checkpoint::write_atomic_steps`]). A failed fsync poisons, as does
    /// any failure with `poison_any`; a failed write, create or rename (ENOSPC) changed
    /// nothing on disk and otherwise does not. `what` starts the error's context.
    pub(super) fn write_file_or_poison(
        &self,
        name: &str,
        bytes: &[u8],
        what: &str,
        poison_any: bool,
    ) -> Result<()> {
        let tmp = format!("{name}.tmp");
        checkpoint::write_atomic_steps(self.fs.as_ref(), &self.dir, name, &tmp, bytes).map_err(
            |(step, e)| {
                let e = io_ctx(format!("{what} {}", self.dir.join(name).display()))(e);
                if poison_any || step.is_fsync() {
                    self.poison_with(e.to_string());
                }
                e
            },
        )
    }

    /// Sets the poison (the first reason stays).
    fn poison_only(&self, reason: String) {
        tracing::error!("log {} poisoned: {reason}", self.dir.display());
        self.poison.lock().get_or_insert(reason);
    }
}

#[cfg(test)]
mod partition_file_tests {
    use super::segment::file_name;
    use super::*;

    /// Every segment name in every transient state, and every checkpoint and its
    /// temporary copy, is recognized (so orphaned partitions are removed whole; the
    /// literal names are also checked in crates/streamlog-tests/tests/store.rs), and
    /// names that only look alike are not (so a user's directory is left alone).
    #[test]
    fn partition_files_are_recognized_by_their_exact_names() {
        let mut ours = Vec::new();
        for base in [0, 42, i64::MAX] {
            for suffix in SEGMENT_SUFFIXES {
                let name = file_name(base, suffix);
                ours.push(name.clone());
                ours.extend(TRANSIENT_SUFFIXES.map(|extra| format!("{name}{extra}")));
            }
        }
        for name in CHECKPOINT_FILES {
            ours.push(name.to_string());
            ours.push(format!("{name}.tmp"));
        }
        for name in &ours {
            assert!(is_partition_file(name), "{name} not recognized");
        }
        for name in [
            "server.log",
            "notes.index",
            "0000000000000000000.log",   // 19 digits
            "000000000000000000000.log", // 21 digits
            "0000000000000000000a.log",
            "00000000000000000000.txt",
            "00000000000000000000.log.bak",
            "recovery-point-offset-checkpoint.bak",
            ".lock.old",
            "notes.tmp",
            "",
        ] {
            assert!(
                !is_partition_file(name),
                "{name} taken for a partition file"
            );
        }
    }
}
