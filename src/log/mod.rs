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

mod checkpoint;
mod clean;
mod config;
mod epoch;
mod index;
mod maps;
mod open;
mod retention;
mod segment;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result, io_ctx};
use crate::format::batch::{self, BatchHeader, RECORD_BATCH_OVERHEAD};
use crate::format::{Batch, EncodedBatch, Record, TimestampType};
use crate::fs::{DirLock, FileSystem};
pub(crate) use checkpoint::{
    CONTAINER_MARKER, read_small as read_small_file, write_atomic_via as write_file_atomically_via,
};
use checkpoint::{DurableFile, DurablePoint};
pub use clean::{CleanOutcome, CleanPolicy};
pub use config::{Clock, LogConfig, ManualClock, SystemClock};
pub use index::{OffsetEntry, TimeEntry};
pub use maps::{DEFAULT_MAX_MAPPED_SEGMENTS, max_mapped_segments, set_max_mapped_segments};
pub use retention::{RetentionOutcome, RetentionPolicy};
use segment::{Segment, file_name};
pub use verify::{PartitionCheck, verify_partition_dir};

/// Suffixes of segment files (`<20-digit base offset>.<suffix>`).
const SEGMENT_SUFFIXES: [&str; 5] = ["log", "index", "timeindex", "txnindex", "snapshot"];
/// What the cleaner, deletion and atomic writes append to a file's name meanwhile.
const TRANSIENT_SUFFIXES: [&str; 4] = [".cleaned", ".swap", ".deleted", ".tmp"];
/// The checkpoint files of a partition directory.
const CHECKPOINT_FILES: [&str; 8] = [
    checkpoint::RECOVERY_POINT_FILE,
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

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The batch's max timestamp (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Number of records.
    pub record_count: i32,
    /// Base offset of the segment it was written to.
    pub segment_base: i64,
    /// Byte position in that segment.
    pub position: u64,
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

/// How a read of one segment ended.
enum SegmentRead {
    /// The byte budget ran out inside the segment.
    BudgetUsed,
    /// The segment was read to its end; the next segment must start at this offset.
    Exhausted(i64),
}

/// How many fsyncs in a row one `flush_to` caller does for callers waiting on it.
const LEADER_ROUNDS: u32 = 3;

/// How long (log clock) a group-commit flush may leave its durable position for a later
/// flush to write (see `Log::record_can_wait`).
const DURABLE_RECORD_MAX_LAG_MS: i64 = 20;

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
}

#[derive(Debug)]
struct FlushState {
    recovery_point: i64,
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
    closed: AtomicBool,
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

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
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
        )))?;
        *self.epochs.write() = Arc::new(next);
        self.epoch.store(epoch, Ordering::Release);
        Ok(epoch)
    }

    /// What a batch header is checked against: the epoch of its offset, and contiguous
    /// offsets unless compaction may leave gaps.
    fn rules(&self) -> segment::Rules {
        segment::Rules {
            epochs: Some(self.epochs.read().clone()),
            allow_gaps: self.config.allow_offset_gaps,
        }
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().clone()
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        if let Some(reason) = self.poison.lock().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                reason,
            });
        }
        Ok(())
    }

    fn poison_with(&self, reason: String) {
        log::error!("log {} poisoned: {reason}", self.dir.display());
        self.poison.lock().get_or_insert(reason);
    }

    /// Appends one client batch: validates it, assigns offsets from the log end offset
    /// (patching baseOffset and the partition leader epoch, and under LogAppendTime the
    /// timestamp and CRC), writes it to the active segment (rolling first if needed) and
    /// publishes the new end offset. The batch buffer is modified in place.
    ///
    /// Durability: in the OS page cache on return; call [`flush`](Self::flush) to make it
    /// survive power loss.
    ///
    /// # Errors
    /// `InvalidBatch` if the batch is malformed (bad CRC, a control batch,
    /// `lastOffsetDelta + 1 != recordsCount`, offset deltas not 0..n, a producer id
    /// without a sequence, undecodable records); `RecordTooLarge` past
    /// `max_message_bytes`; `Io` if the write failed (the log stays usable);
    /// `Poisoned` after an earlier fsync failure; `Closed`.
    pub fn append(&self, batch: &mut [u8]) -> Result<AppendInfo> {
        self.append_inner(batch, false)
    }

    /// Appends a batch made by [`BatchBuilder::build`](crate::format::BatchBuilder::build),
    /// which is well formed by construction: as [`append`](Self::append), without decoding
    /// its records again.
    ///
    /// # Errors
    /// As [`append`](Self::append); also `RecordTooLarge` for a compressed batch whose
    /// records decompress to more than this log's
    /// [`max_decompressed_bytes`](crate::format::DecodeOptions::max_decompressed_bytes)
    /// (no reader of this log could decompress it).
    pub fn append_encoded(&self, batch: &mut EncodedBatch) -> Result<AppendInfo> {
        self.check_writable()?;
        let limit = self.config.decode.max_decompressed_bytes;
        if let Some(size) = batch.decompressed_len().filter(|&n| n > limit) {
            return Err(Error::RecordTooLarge {
                size: size as u64,
                limit: limit as u64,
                limit_name: "max_decompressed_bytes",
            });
        }
        self.append_inner(batch.bytes_mut(), true)
    }

    fn append_inner(&self, batch: &mut [u8], built: bool) -> Result<AppendInfo> {
        self.check_writable()?;
        if batch.len() as u64 > self.config.max_message_bytes {
            return Err(Error::RecordTooLarge {
                size: batch.len() as u64,
                limit: self.config.max_message_bytes,
                limit_name: "max_message_bytes",
            });
        }
        let header = if built {
            BatchHeader::parse(batch)?
        } else {
            self.validate_client_batch(batch)?
        };
        let mut w = self.writer.lock();
        self.check_writable()?;
        let base_offset = self.next_offset.load(Ordering::Acquire);
        let delta = i64::from(header.last_offset_delta);
        let last_offset = base_offset
            .checked_add(delta)
            .filter(|&last| last < i64::MAX)
            .ok_or_else(|| Error::InvalidArgument {
                name: "batch",
                reason: "the partition's offsets would pass i64::MAX".into(),
            })?;
        let now = self.config.clock.now_ms();
        let mut max_timestamp = header.max_timestamp;
        batch[batch::BASE_OFFSET_OFFSET..batch::BATCH_LENGTH_OFFSET]
            .copy_from_slice(&base_offset.to_be_bytes());
        batch[batch::PARTITION_LEADER_EPOCH_OFFSET..batch::MAGIC_OFFSET]
            .copy_from_slice(&self.epoch.load(Ordering::Acquire).to_be_bytes());
        if self.config.timestamp_type == TimestampType::LogAppendTime {
            max_timestamp = now;
            let attrs = header.attributes | 0x08;
            batch[batch::ATTRIBUTES_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET]
                .copy_from_slice(&attrs.to_be_bytes());
            batch[batch::MAX_TIMESTAMP_OFFSET..batch::PRODUCER_ID_OFFSET]
                .copy_from_slice(&now.to_be_bytes());
            batch::write_crc(batch);
        }
        if self.should_roll(&w, batch.len() as u64, max_timestamp, last_offset, now) {
            self.roll_locked(&mut w, base_offset)?;
        }
        let seg = w.active.clone();
        let position = seg.size();
        if let Err(e) = seg.log.write_all_at(batch, position) {
            // Drop whatever part was written so the file ends at the published size.
            if let Err(e2) = seg.log.set_len(position) {
                self.poison_with(format!(
                    "could not undo a failed write to {}: {e2}",
                    seg.log_path.display()
                ));
            }
            return Err(Error::io(
                format!("write {} at position {position}", seg.log_path.display()),
                e,
            ));
        }
        if max_timestamp > seg.max_timestamp.load(Ordering::Acquire) {
            seg.max_timestamp.store(max_timestamp, Ordering::Release);
            seg.offset_of_max_timestamp
                .store(last_offset, Ordering::Release);
        }
        if w.bytes_since_index > self.config.index_interval_bytes {
            let rel = (last_offset - seg.base) as u32;
            // Index writes failing is not fatal: the index is a verified hint that
            // recovery rebuilds. The entry is only kept if it reached the file.
            if !seg.offset_index.is_full()
                && let Err(e) = seg.offset_index.append(OffsetEntry {
                    relative_offset: rel,
                    position: position as u32,
                })
            {
                log::warn!(
                    "{}: index entry not written: {e}",
                    seg.offset_index.path().display()
                );
            }
            seg.maybe_append_time_entry();
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += batch.len() as u64;
        if w.first_batch_timestamp.is_none() {
            w.first_batch_timestamp = Some(max_timestamp);
        }
        seg.size
            .store(position + batch.len() as u64, Ordering::Release);
        self.next_offset.store(last_offset + 1, Ordering::Release);
        w.messages_since_flush += u64::from(header.records_count as u32);
        let flush_now = w.messages_since_flush >= self.config.flush_messages;
        drop(w);
        if flush_now && let Err(e) = self.flush() {
            // The batch is appended and visible, so this call reports success; the failed
            // fsync has poisoned the log and every later write reports it.
            log::error!(
                "{}: flush after flush_messages records failed: {e}",
                self.dir.display()
            );
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            record_count: header.records_count,
            segment_base: seg.base,
            position,
        })
    }

    fn validate_client_batch(&self, batch: &[u8]) -> Result<BatchHeader> {
        let h = batch::validate(batch)?;
        if h.is_control() {
            return Err(Error::invalid_batch(
                "attributes",
                "control batches cannot be appended by clients",
            ));
        }
        if h.records_count == 0 || i64::from(h.last_offset_delta) + 1 != i64::from(h.records_count)
        {
            return Err(Error::invalid_batch(
                "lastOffsetDelta",
                format!(
                    "lastOffsetDelta {} + 1 must equal recordsCount {} (> 0)",
                    h.last_offset_delta, h.records_count
                ),
            ));
        }
        if h.producer_id >= 0 && h.base_sequence < 0 {
            return Err(Error::invalid_batch(
                "baseSequence",
                "a producer id needs a base sequence >= 0",
            ));
        }
        // Every record must be well formed, with offset deltas 0..n.
        batch::validate_records(batch, &h, &self.config.decode)?;
        Ok(h)
    }

    fn should_roll(&self, w: &Writer, len: u64, max_ts: i64, last_offset: i64, now: i64) -> bool {
        let seg = &w.active;
        let size = seg.size();
        if size == 0 {
            return false;
        }
        let waited = match w.first_batch_timestamp {
            Some(first) if first >= 0 && max_ts >= 0 => max_ts.saturating_sub(first),
            _ => now.saturating_sub(w.created_ms),
        };
        size + len > self.config.segment_bytes
            || waited > self.config.segment_ms
            || seg.offset_index.is_full()
            || seg.time_index.is_full()
            || last_offset - seg.base > i64::from(i32::MAX)
    }

    /// Closes the active segment (final time-index entry, indexes trimmed) and starts a
    /// new one at `new_base`. The sealed segment is synced by the next flush.
    fn roll_locked(&self, w: &mut Writer, new_base: i64) -> Result<()> {
        let created = Segment::open(
            self.fs.as_ref(),
            &self.dir,
            new_base,
            self.config.segment_index_bytes,
            true,
        )
        .and_then(|s| {
            s.offset_index.preallocate()?;
            s.time_index.preallocate()?;
            Ok(s)
        });
        let new = match created {
            Ok(s) => s,
            Err(e) => {
                // Leave no stray files behind: a later roll at a higher offset would
                // otherwise find an empty segment in the middle of the log.
                for suffix in ["log", "index", "timeindex"] {
                    let p = self.dir.join(file_name(new_base, suffix));
                    if self.fs.exists(&p).unwrap_or(true) && self.fs.remove_file(&p).is_err() {
                        log::warn!("{}: could not remove after a failed roll", p.display());
                    }
                }
                return Err(Error::io(
                    format!(
                        "create segment {} in {}",
                        file_name(new_base, "log"),
                        self.dir.display()
                    ),
                    e,
                ));
            }
        };
        let old = w.active.clone();
        self.seal(&old);
        let new = Arc::new(new);
        {
            let mut segs = self.segments.write();
            let mut list: Vec<Arc<Segment>> = segs.as_ref().clone();
            list.push(new.clone());
            *segs = Arc::new(list);
        }
        w.unflushed.push(old);
        w.dir_dirty = true;
        w.active = new;
        w.bytes_since_index = 0;
        w.first_batch_timestamp = None;
        w.created_ms = self.config.clock.now_ms();
        Ok(())
    }

    /// Final time-index entry and trimmed index files. Failures only cost a rebuild at
    /// the next recovery, so they are logged, not returned.
    fn seal(&self, seg: &Segment) {
        seg.maybe_append_time_entry();
        let max_ts = seg.max_timestamp.load(Ordering::Acquire);
        if max_ts >= 0 && seg.time_index.last().is_none_or(|e| e.timestamp != max_ts) {
            // The final entry did not reach the file: empty the time index so the next
            // open rebuilds it instead of trusting a stale maximum.
            if let Err(e) = seg.time_index.replace(Vec::new(), false) {
                log::warn!(
                    "{}: could not reset after a failed write: {e}",
                    seg.time_index.path().display()
                );
            }
        }
        for r in [seg.offset_index.trim(), seg.time_index.trim()] {
            if let Err(e) = r {
                log::warn!("segment {}: index not trimmed: {e}", seg.log_path.display());
            }
        }
        seg.sealed.store(true, Ordering::Release);
    }

    /// Rolls to a new segment now, if the active one holds data.
    ///
    /// # Errors
    /// `Io` if the new segment's files cannot be created; `Poisoned`; `Closed`.
    pub fn roll(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        if w.active.size() == 0 {
            return Ok(());
        }
        let base = self.next_offset.load(Ordering::Acquire);
        self.roll_locked(&mut w, base)
    }

    /// Makes everything appended so far durable: fdatasync of each segment written since
    /// the last flush (and its indexes once sealed), the directory if files were created,
    /// then the recovery-point checkpoint (when it moves) and the durable position.
    /// Returns the new durable offset. Concurrent callers share the work that one fsync
    /// covers.
    ///
    /// # Errors
    /// `Io` with the failed operation; the log is then poisoned and every later write
    /// returns `Poisoned` (the fsync is never retried).
    pub fn flush(&self) -> Result<i64> {
        let mut fl = self.flush_state.lock();
        let result = self.flush_locked(&mut fl);
        drop(fl);
        self.wake_flush_waiters();
        result
    }

    fn wake_flush_waiters(&self) {
        let waiters = std::mem::take(&mut *self.flush_waiters.lock());
        for t in waiters {
            t.unpark();
        }
    }

    /// Makes every offset below `offset` durable, sharing fsyncs between callers (group
    /// commit): the caller holding the flush lock syncs everything appended so far, and
    /// a caller whose records that covered returns without an fsync of its own. Returns
    /// the durable offset (at least `offset` unless `offset` is past the log end).
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn flush_to(&self, offset: i64) -> Result<i64> {
        let covered = |d: i64| d >= offset.min(self.log_end_offset());
        loop {
            let durable = self.durable_offset();
            if covered(durable) {
                return Ok(durable);
            }
            // The first caller syncs everything appended so far; everyone who arrives while
            // it runs sleeps and is woken together, so the next fsync covers all of them.
            if let Some(mut fl) = self.flush_state.try_lock() {
                let mut target = None;
                let mut failed = None;
                for _ in 0..LEADER_ROUNDS {
                    match self
                        .check_writable()
                        .and_then(|()| self.sync_data_locked(&mut fl))
                    {
                        Ok((t, point)) => {
                            target = Some(t);
                            match point {
                                Some(p) => *self.durable_pending.lock() = Some(p),
                                None => break, // nothing new to sync
                            }
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                    // Records appended during that fsync whose senders already wait are
                    // synced by this leader at once (up to a bound on its own wait):
                    // handing the lock to a parked waiter costs a wake-up per group.
                    if self.flush_wanted.load(Ordering::Acquire) <= self.durable_offset() {
                        break;
                    }
                    self.wake_flush_waiters();
                }
                // The covered waiters go before the durable position is written (its
                // own fsync), and append again meanwhile.
                drop(fl);
                self.wake_flush_waiters();
                // A later round's failure (the log is poisoned now) does not undo an
                // earlier round that covered this caller.
                let poisoned = failed.is_some();
                let target = match (target, failed) {
                    (Some(t), _) if covered(t) => t,
                    (_, Some(e)) => return Err(e),
                    (t, None) => t.unwrap_or_else(|| self.durable_offset()),
                };
                // No later flush succeeds on a poisoned log: record now what was synced.
                let pending = *self.durable_pending.lock();
                if pending.is_some_and(|p| poisoned || !self.record_can_wait(p, target)) {
                    self.record_pending()?;
                }
                return Ok(target);
            }
            {
                let mut waiters = self.flush_waiters.lock();
                // A flusher publishes its durable offset before it takes this list, so
                // a flush still running here cannot finish without unparking us. The
                // timeout only covers the other holders of the flush lock (truncation,
                // close, delete_records); a stale unpark only ends a park early.
                if covered(self.durable_offset()) || !self.flush_state.is_locked() {
                    continue;
                }
                self.flush_wanted
                    .fetch_max(offset.min(self.log_end_offset()), Ordering::AcqRel);
                // After a timed-out park this thread may still be listed.
                let me = std::thread::current();
                if !waiters.iter().any(|t| t.id() == me.id()) {
                    waiters.push(me);
                }
            }
            std::thread::park_timeout(std::time::Duration::from_millis(10));
        }
    }

    fn flush_locked(&self, fl: &mut FlushState) -> Result<i64> {
        self.check_writable()?;
        self.sync_locked(fl)
    }

    /// The fsyncs of a flush, without the closed check (the final flush of `close`),
    /// including the durable position (written before this returns).
    fn sync_locked(&self, fl: &mut FlushState) -> Result<i64> {
        let (target, point) = self.sync_data_locked(fl)?;
        if let Some(p) = point {
            *self.durable_pending.lock() = Some(p);
        }
        self.record_pending()?;
        Ok(target)
    }

    /// The data half of a flush: fdatasync of every segment written since the last one
    /// (sealed segments' indexes too), the directory if files were created, the recovery
    /// point when it moves; then publishes the durable offset. Returns it and the
    /// durable position to record (`None` if nothing was synced). Poisons on failure.
    fn sync_data_locked(&self, fl: &mut FlushState) -> Result<(i64, Option<DurablePoint>)> {
        if let Some(reason) = self.poison.lock().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                reason,
            });
        }
        let (target, active, position, sealed, dir_dirty) = {
            let mut w = self.writer.lock();
            w.messages_since_flush = 0;
            (
                self.next_offset.load(Ordering::Acquire),
                w.active.clone(),
                w.active.size(),
                std::mem::take(&mut w.unflushed),
                std::mem::take(&mut w.dir_dirty),
            )
        };
        if target == self.durable_offset() && sealed.is_empty() && !dir_dirty {
            return Ok((target, None));
        }
        let result = (|| -> Result<()> {
            for s in &sealed {
                let what = format!("fsync {}", s.log_path.display());
                s.log.sync_data().map_err(io_ctx(what))?;
                s.offset_index
                    .sync()
                    .map_err(io_ctx(format!("fsync {}", s.offset_index.path().display())))?;
                s.time_index
                    .sync()
                    .map_err(io_ctx(format!("fsync {}", s.time_index.path().display())))?;
                s.release_index_files();
            }
            active
                .log
                .sync_data()
                .map_err(io_ctx(format!("fsync {}", active.log_path.display())))?;
            if dir_dirty {
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
            }
            if fl.recovery_point < active.base {
                self.write_recovery_point(active.base)?;
                fl.recovery_point = active.base;
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.poison_with(e.to_string());
            return Err(e);
        }
        self.durable_offset.fetch_max(target, Ordering::AcqRel);
        self.last_flush_ms
            .store(self.config.clock.now_ms(), Ordering::Release);
        let point = DurablePoint {
            segment_base: active.base,
            position,
            next_offset: target,
            log_start: self.log_start_offset(),
        };
        Ok((target, Some(point)))
    }

    /// Whether a group-commit flush that synced up to `target` may leave its durable
    /// position (`p`) for a later flush to record: only while a waiter already needs a
    /// flush past `target` (it cannot return before some flush covers it, and that
    /// flush records a newer position), the position recorded last is in the same
    /// segment (so the recovery point checkpoint stays trusted), and it is younger than
    /// [`DURABLE_RECORD_MAX_LAG_MS`]. Under a steady stream of concurrent `Acks::All`
    /// sends this halves the fsyncs per group; a lone sender always records.
    fn record_can_wait(&self, p: DurablePoint, target: i64) -> bool {
        self.flush_wanted.load(Ordering::Acquire) > target
            && self.recorded_base.load(Ordering::Acquire) == p.segment_base
            && self
                .config
                .clock
                .now_ms()
                .saturating_sub(self.recorded_ms.load(Ordering::Acquire))
                < DURABLE_RECORD_MAX_LAG_MS
    }

    /// Writes (and fsyncs) the newest durable position a flush left to record, if any.
    /// Poisons on failure.
    fn record_pending(&self) -> Result<()> {
        let mut file = self.durable_file.lock();
        let Some(point) = self.durable_pending.lock().take() else {
            return Ok(());
        };
        if let Err(e) = self.write_point(&mut file, point) {
            let e = io_ctx(format!(
                "write and fsync {}",
                self.dir.join(checkpoint::DURABLE_FILE).display()
            ))(e);
            self.poison_with(e.to_string());
            return Err(e);
        }
        Ok(())
    }

    fn write_point(&self, file: &mut DurableFile, point: DurablePoint) -> std::io::Result<()> {
        file.write(point)?;
        self.recorded_base
            .store(point.segment_base, Ordering::Release);
        self.recorded_ms
            .store(self.config.clock.now_ms(), Ordering::Release);
        Ok(())
    }

    fn write_recovery_point(&self, offset: i64) -> Result<()> {
        let text = checkpoint::recovery_point_text(&self.topic, self.partition, offset);
        checkpoint::write_atomic(
            self.fs.as_ref(),
            &self.dir,
            checkpoint::RECOVERY_POINT_FILE,
            text.as_bytes(),
        )
        .map_err(io_ctx(format!(
            "write {}",
            self.dir.join(checkpoint::RECOVERY_POINT_FILE).display()
        )))
    }

    fn out_of_range(&self, requested: i64) -> Error {
        Error::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset(),
            log_end: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one that contains `offset`, up to
    /// `max_bytes` in total (at least one batch, even a larger one). Every returned
    /// batch has passed its CRC and offset checks; the first may start before `offset`.
    /// Sealed segments are served as zero-copy slices of a memory map.
    ///
    /// # Errors
    /// `OffsetOutOfRange` if `offset` is below the log start or above the log end;
    /// `Corruption` (path, position) if stored bytes fail a check; `Io`; `Closed` once the
    /// log was shut down (its directory may then belong to another process).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        let mut tries = 0;
        loop {
            let segs = self.snapshot();
            match self.read_snapshot(&segs, offset, max_bytes) {
                // A segment of this snapshot was removed meanwhile (retention, compaction)
                // and its file could not be read: ask again, against the log as it is now.
                Err(Error::Io { .. })
                    if tries < 3 && !Arc::ptr_eq(&segs, &self.segments.read()) =>
                {
                    tries += 1;
                    if offset < self.log_start_offset() {
                        return Err(self.out_of_range(offset));
                    }
                }
                r => return r,
            }
        }
    }

    /// [`read`](Self::read) against one snapshot of the segment list.
    fn read_snapshot(
        &self,
        segs: &[Arc<Segment>],
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<Batch>> {
        let end = self.log_end_offset();
        if offset < self.log_start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        let mut out = Vec::new();
        if offset == end {
            return Ok(out);
        }
        // Retention raises the log start before it drops segments from the snapshot: a
        // snapshot without the segment holding `offset` comes with a raised start.
        if offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let mut budget = max_bytes;
        // The offset the next segment must start at, once a segment was read to its end.
        let mut next_base: Option<i64> = None;
        for seg in &segs[first..] {
            if let Some(n) = next_base
                && (seg.base < n || (!self.config.allow_offset_gaps && seg.base != n))
            {
                return Err(Error::corruption(
                    &seg.log_path,
                    0,
                    format!(
                        "segment starts at offset {} but the previous one ends at {}",
                        seg.base,
                        n - 1
                    ),
                ));
            }
            // The last segment may be growing: read only what is published.
            let limit = seg.size();
            match self.read_segment(seg, limit, offset, &mut budget, &mut out)? {
                SegmentRead::BudgetUsed => break,
                SegmentRead::Exhausted(next) => next_base = Some(next),
            }
        }
        // A batch published to its segment just after `end` was read is left for the next read.
        out.retain(|b| b.base_offset() < end);
        Ok(out)
    }

    /// Reads from one segment into `out`.
    fn read_segment(
        &self,
        seg: &Segment,
        limit: u64,
        offset: i64,
        budget: &mut usize,
        out: &mut Vec<Batch>,
    ) -> Result<SegmentRead> {
        let corrupt = |pos: u64, reason: String| Error::corruption(&seg.log_path, pos, reason);
        let rules = self.rules();
        // Start from the index entry at or below `offset` (verified against the batch it
        // names), or from the segment start.
        let (mut pos, mut index_claim) = match self.index_floor(seg, offset) {
            Some(e) if out.is_empty() => (
                u64::from(e.position),
                Some(seg.base + i64::from(e.relative_offset)),
            ),
            _ => (0, None),
        };
        let mut expected = (pos == 0).then_some(seg.base);
        // Skip batches that end before `offset`, reading headers only.
        let header = loop {
            if pos >= limit {
                if index_claim.is_some() {
                    self.distrust_index(
                        seg,
                        &format!("entry points at position {pos}, past the end"),
                    );
                    (pos, index_claim, expected) = (0, None, Some(seg.base));
                    continue;
                }
                let Some(next) = expected else {
                    return Err(corrupt(
                        pos,
                        "no batch found to establish the segment's end offset".into(),
                    ));
                };
                return Ok(SegmentRead::Exhausted(next));
            }
            let h = match self.header_at(seg, pos, limit) {
                Ok(h) => h,
                // Only bytes that fail a check discredit the index; an I/O error is not
                // the index's fault.
                Err(e @ Error::Corruption { .. }) if index_claim.is_some() => {
                    self.distrust_index(seg, &e.to_string());
                    (pos, index_claim, expected) = (0, None, Some(seg.base));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(claim) = index_claim.take()
                && h.last_offset() != claim
            {
                let why = format!(
                    "entry names offset {claim} at position {pos}, the batch there ends at {}",
                    h.last_offset()
                );
                self.distrust_index(seg, &why);
                (pos, expected) = (0, Some(seg.base));
                continue;
            }
            if let Some(reason) = segment::check_header(&h, seg.base, expected, &rules) {
                return Err(corrupt(pos, reason));
            }
            if h.last_offset() >= offset || !out.is_empty() {
                break h;
            }
            expected = Some(h.last_offset() + 1);
            pos += h.size().expect("checked by header_at") as u64;
        };
        let first_size = header.size().expect("checked by header_at") as u64;
        let available = limit - pos;
        let want = if out.is_empty() {
            (*budget as u64).max(first_size)
        } else {
            *budget as u64
        };
        let chunk_len = want.min(available);
        if chunk_len < first_size {
            return Ok(SegmentRead::BudgetUsed);
        }
        let chunk = seg.read(pos, chunk_len as usize)?;
        let ends_segment = chunk_len == available;
        let mut at = 0usize;
        let mut expected = Some(header.base_offset);
        while at < chunk.len() {
            let here = pos + at as u64;
            let Some((_, size)) = batch::peek_size(&chunk[at..]) else {
                if ends_segment {
                    return Err(corrupt(
                        here,
                        "a partial batch header ends the segment".into(),
                    ));
                }
                return Ok(SegmentRead::BudgetUsed);
            };
            if size < RECORD_BATCH_OVERHEAD as i64 {
                return Err(corrupt(
                    here,
                    format!("batch length {size} is below the 61-byte minimum"),
                ));
            }
            let size = size as usize;
            if at + size > chunk.len() {
                if ends_segment || here + size as u64 > limit {
                    return Err(corrupt(
                        here,
                        "the batch runs past the end of the segment".into(),
                    ));
                }
                return Ok(SegmentRead::BudgetUsed);
            }
            let b = Batch::parse(chunk.slice(at..at + size))
                .map_err(|e| corrupt(here, e.to_string()))?;
            if let Some(reason) = segment::check_header(b.header(), seg.base, expected, &rules) {
                return Err(corrupt(here, reason));
            }
            expected = Some(b.last_offset() + 1);
            *budget = budget.saturating_sub(size);
            out.push(b);
            at += size;
        }
        match (ends_segment, expected) {
            (true, Some(next)) => Ok(SegmentRead::Exhausted(next)),
            _ => Ok(SegmentRead::BudgetUsed),
        }
    }

    /// The index entry with the largest offset at or below `offset`: the batch it names
    /// ends at or before `offset`, so reading may start there.
    fn index_floor(&self, seg: &Segment, offset: i64) -> Option<OffsetEntry> {
        if seg.index_suspect.load(Ordering::Acquire) {
            return None;
        }
        if seg.offset_index.is_deferred() {
            let size = seg.size();
            match seg.offset_index.load_deferred(
                |p| self.fs.open(p, false),
                |e: &OffsetEntry| u64::from(e.position) < size,
            ) {
                Ok(true) => {}
                Ok(false) => self.rebuild_sealed_index(seg),
                // Read this time from the segment start; the load is tried again.
                Err(e) => {
                    log::warn!("{}: {e}", seg.offset_index.path().display());
                    return None;
                }
            }
        }
        let rel = offset - seg.base;
        seg.offset_index
            .floor(|e| i64::from(e.relative_offset) <= rel)
    }

    /// A sealed segment's index whose deferred entries failed their checks: rebuilt
    /// from the segment (scanned once) in memory and on disk, as recovery rebuilds a
    /// damaged index at open. If the segment itself fails the scan, or the files cannot
    /// be written, reads go on by scan (and report damage where they meet it).
    fn rebuild_sealed_index(&self, seg: &Segment) {
        let params = seg.scan_params(
            self.config.index_interval_bytes,
            self.rules(),
            self.config.segment_index_bytes,
        );
        let rebuilt = segment::scan(seg.log.as_ref(), seg.size(), params)
            .ok()
            .filter(|scan| scan.stopped.is_none())
            .map(|scan| {
                seg.adopt_scan(&scan);
                let reopen = |path: &Path| self.fs.open(path, false);
                reopen(seg.offset_index.path())
                    .and_then(|f| seg.offset_index.write_synced_to(f.as_ref()))
                    .and_then(|()| reopen(seg.time_index.path()))
                    .and_then(|f| seg.time_index.write_synced_to(f.as_ref()))
            });
        match rebuilt {
            Some(Ok(())) => log::warn!(
                "{}: index entries failed their checks; rebuilt from the log",
                seg.offset_index.path().display()
            ),
            Some(Err(e)) => log::warn!(
                "{}: index rebuilt in memory only ({e})",
                seg.offset_index.path().display()
            ),
            None => self.distrust_index(seg, "its entries fail the sanity check"),
        }
    }

    fn distrust_index(&self, seg: &Segment, why: &str) {
        if !seg.index_suspect.swap(true, Ordering::AcqRel) {
            log::warn!(
                "{}: index does not match the log ({why}); reading by scan until it is rebuilt",
                seg.offset_index.path().display()
            );
        }
    }

    /// Reads and checks the 61-byte header at `pos`.
    fn header_at(&self, seg: &Segment, pos: u64, limit: u64) -> Result<BatchHeader> {
        let corrupt = |reason: String| Error::corruption(&seg.log_path, pos, reason);
        if limit - pos < RECORD_BATCH_OVERHEAD as u64 {
            return Err(corrupt(format!(
                "{} bytes left, fewer than a batch header",
                limit - pos
            )));
        }
        let bytes = seg.read(pos, RECORD_BATCH_OVERHEAD)?;
        let h = BatchHeader::parse(&bytes)?;
        match h.size() {
            Some(size) if size >= RECORD_BATCH_OVERHEAD && pos + size as u64 <= limit => Ok(h),
            _ => Err(corrupt(format!(
                "batch length {} does not fit the segment",
                h.batch_length
            ))),
        }
    }

    /// Reads and decodes records from `offset` (records before it in the first batch are
    /// skipped), up to about `max_bytes` of batches. Returns at least one record unless
    /// no record follows `offset` (offsets removed by compaction are skipped).
    ///
    /// # Errors
    /// As [`read`](Self::read), plus `InvalidBatch`/`UnsupportedCodec` from decoding.
    pub fn read_records(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        let mut out = Vec::new();
        let mut from = offset;
        // Batches may hold no record at or after `from` (compaction leaves empty batches
        // and gaps): read on until a record turns up or the log ends.
        while out.is_empty() && from < self.log_end_offset() {
            let batches = self.read(from, max_bytes)?;
            let Some(next) = batches.last().map(|b| b.last_offset() + 1) else {
                break;
            };
            for b in batches {
                for r in b.records_with(&self.config.decode)? {
                    let r = r?;
                    if r.offset >= from {
                        out.push(r);
                    }
                }
            }
            from = next;
        }
        Ok(out)
    }

    /// The first record with a timestamp at or after `timestamp` (Kafka's
    /// `offsetsForTimes`): its offset and timestamp, or `None` if every record is older.
    ///
    /// # Errors
    /// `Corruption`/`Io` from reading; `Closed` once the log was shut down.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        let segs = self.snapshot();
        for (i, seg) in segs.iter().enumerate() {
            if seg.max_timestamp.load(Ordering::Acquire) < timestamp {
                continue;
            }
            let seg_end = segs.get(i + 1).map_or(end, |s| s.base);
            // Batches up to a time entry's offset carry timestamps <= the entry's. The
            // entry is verified: the batch it names must carry exactly its timestamp.
            if seg.time_index.is_deferred() {
                let loaded = seg
                    .time_index
                    .load_deferred(|p| self.fs.open(p, false), |e: &TimeEntry| e.timestamp >= 0);
                if !matches!(loaded, Ok(true)) {
                    // Only the last entry is known: the search starts lower (correct,
                    // slower).
                    log::warn!(
                        "{}: time index unreadable past its last entry ({loaded:?})",
                        seg.time_index.path().display()
                    );
                }
            }
            let entry = seg.time_index.floor(|e| e.timestamp < timestamp);
            let verified = match entry {
                Some(e) => self.time_entry_matches(seg, e),
                None => true,
            };
            if !verified {
                log::warn!(
                    "{}: time index entry does not match the log; searching the segment from its start",
                    seg.time_index.path().display()
                );
            }
            let mut offset = entry
                .filter(|_| verified)
                .map_or(seg.base, |e| seg.base + i64::from(e.relative_offset) + 1)
                .max(start);
            while offset < seg_end {
                let batches = match self.read(offset, 1 << 20) {
                    Ok(b) => b,
                    // Retention raised the log start meanwhile: go on from there.
                    Err(Error::OffsetOutOfRange { .. }) if offset < self.log_start_offset() => {
                        offset = self.log_start_offset();
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let Some(last) = batches.last().map(Batch::last_offset) else {
                    break;
                };
                for b in batches
                    .iter()
                    .filter(|b| b.header().max_timestamp >= timestamp)
                {
                    for r in b.records_with(&self.config.decode)? {
                        let r = r?;
                        if r.timestamp >= timestamp && r.offset >= start {
                            return Ok(Some((r.offset, r.timestamp)));
                        }
                    }
                }
                offset = last + 1;
            }
        }
        Ok(None)
    }

    fn time_entry_matches(&self, seg: &Segment, e: TimeEntry) -> bool {
        let claimed = seg.base + i64::from(e.relative_offset);
        match self.read(claimed, 1) {
            Ok(batches) => batches.first().is_some_and(|b| {
                b.last_offset() == claimed && b.header().max_timestamp == e.timestamp
            }),
            Err(_) => false,
        }
    }

    /// Raises the log start offset to `offset` (Kafka's `DeleteRecords`): reads below it
    /// return `OffsetOutOfRange` from now on and after a reopen (the new start is written
    /// atomically and fsync'd before this returns). Segments wholly below it are removed
    /// by retention. Lowering is a no-op; returns the log start offset.
    ///
    /// # Errors
    /// `OffsetOutOfRange` past the log end; `Io`; `Poisoned`; `Closed`.
    pub fn advance_log_start(&self, offset: i64) -> Result<i64> {
        let mut fl = self.flush_state.lock();
        self.check_writable()?;
        if offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        let start = self.log_start_offset();
        if offset <= start {
            return Ok(start);
        }
        // What lies below the new start must be durable first: otherwise a crash could
        // truncate below it, and records appended again there would be hidden.
        if offset > self.durable_offset() {
            self.sync_locked(&mut fl)?;
        }
        let _w = self.writer.lock();
        self.write_log_start(offset)?;
        self.log_start.store(offset, Ordering::Release);
        Ok(offset)
    }

    /// Removes every batch from the one containing `offset` onwards, so the log end
    /// offset becomes that batch's base offset (at most `offset`). Durable on return.
    ///
    /// # Errors
    /// `OffsetOutOfRange` below the log start; `Io`; `Poisoned`; `Closed`.
    pub fn truncate_to(&self, offset: i64) -> Result<i64> {
        let _m = self.maintenance.lock();
        let mut fl = self.flush_state.lock();
        self.check_writable()?;
        let mut w = self.writer.lock();
        let end = self.log_end_offset();
        if offset >= end {
            return Ok(end);
        }
        if offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let segs = self.snapshot();
        let idx = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let seg = segs[idx].clone();
        // Find the batch containing `offset` (or the first after it).
        let mut pos = 0u64;
        let mut new_end = seg.base;
        while pos < seg.size() {
            let h = self.header_at(&seg, pos, seg.size())?;
            if h.last_offset() >= offset {
                break;
            }
            new_end = h.last_offset() + 1;
            pos += h.size().expect("checked") as u64;
        }
        let result = self
            .truncate_locked(&mut fl, &mut w, &segs, idx, pos, new_end)
            // A new epoch from `new_end`: a position taken past it in the old epoch is
            // then known to point at removed records. (A crash before it is written
            // makes the next open start a new epoch anyway.)
            .and_then(|()| self.begin_epoch(&w, new_end).map(drop));
        if let Err(e) = &result {
            self.poison_with(format!("truncation failed part-way: {e}"));
        }
        result?;
        // Offsets from the new end on will be new records: readable, and dirty again.
        if self.log_start_offset() > new_end {
            self.write_log_start(new_end)?;
            self.log_start.store(new_end, Ordering::Release);
        }
        if self.clean_offset() > new_end {
            self.write_clean_offset(new_end)?;
        }
        Ok(new_end)
    }

    fn truncate_locked(
        &self,
        fl: &mut FlushState,
        w: &mut Writer,
        segs: &[Arc<Segment>],
        idx: usize,
        pos: u64,
        new_end: i64,
    ) -> Result<()> {
        let seg = segs[idx].clone();
        // 0. Everything written so far is synced first, so the durable position written
        //    next never claims bytes that are not on disk.
        for s in w.unflushed.drain(..) {
            s.log
                .sync_data()
                .and_then(|()| s.offset_index.sync())
                .and_then(|()| s.time_index.sync())
                .map_err(io_ctx(format!(
                    "fsync {} and its indexes",
                    s.log_path.display()
                )))?;
            s.release_index_files();
        }
        w.active
            .log
            .sync_data()
            .map_err(io_ctx(format!("fsync {}", w.active.log_path.display())))?;
        if std::mem::take(&mut w.dir_dirty) {
            self.fs
                .sync_dir(&self.dir)
                .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        }
        // 1. Recovery must rescan the affected segment, and must treat everything after
        //    the cut as not durable, before anything is changed.
        if fl.recovery_point > seg.base {
            self.write_recovery_point(seg.base)?;
            fl.recovery_point = seg.base;
        }
        {
            // Under the durable file's lock, a position a flush left to record (older
            // than the cut) is dropped rather than written after it.
            let mut file = self.durable_file.lock();
            *self.durable_pending.lock() = None;
            self.write_point(
                &mut file,
                DurablePoint {
                    segment_base: seg.base,
                    position: pos,
                    next_offset: new_end,
                    // A log start inside the removed range comes down to the new end (its
                    // checkpoint is lowered once the cut is done; until then open clamps it).
                    log_start: self.log_start_offset().min(new_end),
                },
            )
            .map_err(io_ctx("write the durable position"))?;
        }
        // 2. Later segments go (unlinking keeps any live mapping valid).
        for s in &segs[idx + 1..] {
            s.remove_files(self.fs.as_ref())?;
        }
        // 3. Cut the segment. Readers may have it mapped (the active segment too), so
        //    it is rewritten into a new file and renamed over the old one, never shrunk.
        let new_seg = {
            let data = seg.read(0, pos as usize)?;
            let tmp = self.dir.join(format!("{}.tmp", file_name(seg.base, "log")));
            let f = self
                .fs
                .open(&tmp, true)
                .map_err(io_ctx(format!("create {}", tmp.display())))?;
            f.set_len(0)
                .and_then(|()| f.write_all_at(&data, 0))
                .and_then(|()| f.sync_data())
                .map_err(io_ctx(format!("write {}", tmp.display())))?;
            self.fs
                .rename(&tmp, &seg.log_path)
                .map_err(io_ctx(format!("rename {}", tmp.display())))?;
            Arc::new(
                Segment::open(
                    self.fs.as_ref(),
                    &self.dir,
                    seg.base,
                    self.config.segment_index_bytes,
                    false,
                )
                .map_err(io_ctx(format!("open {}", seg.log_path.display())))?,
            )
        };
        let params = new_seg.scan_params(
            self.config.index_interval_bytes,
            self.rules(),
            self.config.segment_index_bytes,
        );
        let scan = segment::scan(new_seg.log.as_ref(), pos, params)
            .map_err(io_ctx(format!("scan {}", seg.log_path.display())))?;
        new_seg
            .install_scan(&scan, true)
            .map_err(io_ctx("rebuild indexes"))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        let mut list: Vec<Arc<Segment>> = segs[..idx].to_vec();
        list.push(new_seg.clone());
        *self.segments.write() = Arc::new(list);
        w.active = new_seg;
        w.bytes_since_index = scan.bytes_since_index;
        w.first_batch_timestamp = scan.first_batch_max_timestamp;
        self.next_offset.store(new_end, Ordering::Release);
        self.durable_offset.store(new_end, Ordering::Release);
        // Offsets waiters wanted beyond the cut no longer exist (they are covered now).
        // Under the waiters' lock, which a waiter computes its wish under: no wish made
        // against the old end lands after this.
        let _waiters = self.flush_waiters.lock();
        self.flush_wanted.store(-1, Ordering::Release);
        Ok(())
    }

    /// Flushes, seals the active segment's indexes, writes the recovery point and the
    /// clean-shutdown marker so the next open scans nothing.
    ///
    /// # Errors
    /// `Io`/`Poisoned` if the final flush fails; the marker is then not written and the
    /// next open recovers.
    pub fn close(self) -> Result<()> {
        self.close_inner()
    }

    /// Closes through a shared reference (the store owns its logs behind `Arc`s).
    pub(crate) fn shutdown(&self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = self.close_files();
        // Closed either way: release the directory so it can be opened again.
        self.locks.lock().clear();
        result
    }

    fn close_files(&self) -> Result<()> {
        // A retention or compaction pass in progress finishes first (it may be writing
        // files into the directory), and none starts after: they check `closed`.
        let _m = self.maintenance.lock();
        let mut fl = self.flush_state.lock();
        // Closed under the writer lock first, so no append can land after the final fsync.
        let w = self.writer.lock();
        self.closed.store(true, Ordering::Release);
        drop(w);
        self.sync_locked(&mut fl)?;
        let w = self.writer.lock();
        let active = &w.active;
        self.seal(active);
        active.offset_index.sync().map_err(io_ctx(format!(
            "fsync {}",
            active.offset_index.path().display()
        )))?;
        active.time_index.sync().map_err(io_ctx(format!(
            "fsync {}",
            active.time_index.path().display()
        )))?;
        self.write_recovery_point(self.log_end_offset())?;
        checkpoint::write_atomic(
            self.fs.as_ref(),
            &self.dir,
            checkpoint::CLEAN_SHUTDOWN_FILE,
            br#"{"version":0,"brokerEpoch":0}"#,
        )
        .map_err(io_ctx("write the clean shutdown marker"))
    }
}

impl Drop for Log {
    /// Closes cleanly if [`Log::close`] was not called; errors are logged.
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            log::warn!("closing {} on drop failed: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod partition_file_tests {
    use super::*;

    /// Every segment name in every transient state, and every checkpoint and its
    /// temporary copy, is recognized (so orphaned partitions are removed whole; the
    /// literal names are also checked in tests/store.rs), and names that only look alike
    /// are not (so a user's directory is left alone).
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

#[cfg(test)]
mod group_commit_tests {
    //! The durable position a group-commit flush leaves for a later flush to record
    //! (`record_can_wait`): forced here by faking a parked waiter.
    use std::sync::Arc;

    use super::*;
    use crate::format::BatchBuilder;
    use crate::fs::{CrashImage, SimFs};
    use crate::log::ManualClock;

    const DIR: &str = "/gc/t-0";

    fn open(fs: &SimFs) -> Log {
        let config = LogConfig::default().clock(Arc::new(ManualClock::new(1_700_000_000_000)));
        Log::open_with_fs(Arc::new(fs.clone()), DIR, config).expect("open")
    }

    fn append(log: &Log, value: &[u8]) -> i64 {
        let mut b = BatchBuilder::new();
        b.push(1_700_000_000_000, Some(b"k"), Some(value), &[])
            .expect("push");
        log.append(&mut b.finish().expect("finish"))
            .expect("append")
            .last_offset
    }

    /// `flush_to` as the leader of a group whose next member is already parked.
    fn flush_to_with_a_waiter(log: &Log, offset: i64) {
        log.flush_wanted.store(i64::MAX, Ordering::Release);
        assert_eq!(log.flush_to(offset).expect("flush_to"), offset);
        log.flush_wanted.store(-1, Ordering::Release);
    }

    fn values(log: &Log) -> Vec<Vec<u8>> {
        log.read_records(0, 1 << 20)
            .expect("read")
            .into_iter()
            .map(|r| r.value.expect("value").to_vec())
            .collect()
    }

    #[test]
    fn a_skipped_durable_position_loses_nothing_at_a_crash() {
        let fs = SimFs::new();
        let log = open(&fs);
        append(&log, b"a");
        log.flush().expect("flush");
        let b = append(&log, b"b");
        flush_to_with_a_waiter(&log, b + 1);
        assert!(
            log.durable_pending.lock().is_some(),
            "the position should be left for the next flush"
        );
        // Power cut: everything not fsync'd is gone, the durable file says offset 1.
        let img = fs.crash_image(CrashImage::DropAll);
        let again = open(&img);
        assert_eq!(values(&again), [b"a".to_vec(), b"b".to_vec()]);
        assert!(again.recovery_report().truncation.is_none());
        // Without a waiter the position is written before `flush_to` returns.
        let c = append(&log, b"c");
        log.flush_to(c + 1).expect("flush_to");
        assert!(log.durable_pending.lock().is_none());
        drop(again);
        log.close().expect("close");
    }

    /// A waiter's wish for offsets a truncation removed must not make later lone
    /// flushes leave their durable position unwritten.
    #[test]
    fn after_a_truncation_a_lone_flush_records_its_position() {
        let fs = SimFs::new();
        let log = open(&fs);
        for v in [b"a", b"b", b"c"] {
            append(&log, v);
        }
        log.flush_wanted.store(100, Ordering::Release); // a waiter once wanted offset 100
        log.flush().expect("flush");
        assert_eq!(log.truncate_to(1).expect("truncate"), 1);
        let d = append(&log, b"d");
        assert_eq!(log.flush_to(d + 1).expect("flush_to"), d + 1);
        assert!(
            log.durable_pending.lock().is_none(),
            "a lone flush must write its durable position"
        );
        log.close().expect("close");
    }

    #[test]
    fn truncation_drops_a_position_left_for_later() {
        let fs = SimFs::new();
        let log = open(&fs);
        append(&log, b"a");
        let b = append(&log, b"b");
        let c = append(&log, b"c");
        flush_to_with_a_waiter(&log, c + 1);
        assert!(log.durable_pending.lock().is_some());
        assert_eq!(log.truncate_to(b).expect("truncate"), b);
        // A flush with nothing new must not write the stale position (offset 3, past
        // the cut): the reopened log would find its durable data missing.
        log.flush().expect("flush");
        let img = fs.crash_image(CrashImage::DropAll);
        let again = open(&img);
        assert_eq!(values(&again), [b"a".to_vec()]);
        assert_eq!(again.log_end_offset(), b);
        drop(again);
        log.close().expect("close");
    }
}
