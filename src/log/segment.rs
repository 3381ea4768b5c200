//! One segment: `<base>.log` with its `.index` and `.timeindex`, and the scan that
//! validates a `.log` file and rebuilds its indexes (used by recovery, by index repair
//! and by truncation).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;

use super::epoch::EpochHistory;
use super::index::{Index, OffsetEntry, TimeEntry};
use super::maps::MapSlot;
use super::txn_index::TxnIndex;
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::{self, BatchHeader, LOG_OVERHEAD, MAGIC_V2, RECORD_BATCH_OVERHEAD};
use crate::fs::{File, FileSystem};

/// `<20-digit base offset>.<suffix>`, Kafka's file names.
pub fn file_name(base: i64, suffix: &str) -> String {
    format!("{base:020}.{suffix}")
}

/// Parses a segment file name `<20 digits>.<suffix>` into its base offset.
pub fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One segment.
#[derive(Debug)]
pub struct Segment {
    pub base: i64,
    pub log_path: PathBuf,
    pub log: Arc<dyn File>,
    /// Published size: bytes readers may read. Grows only under the writer lock.
    pub size: AtomicU64,
    pub offset_index: Index<OffsetEntry>,
    pub time_index: Index<TimeEntry>,
    /// The aborted transactions whose markers the segment holds (`.txnindex`).
    pub txn_index: TxnIndex,
    /// Largest timestamp in the segment (-1 if none) and the offset of the batch that has it.
    pub max_timestamp: AtomicI64,
    pub offset_of_max_timestamp: AtomicI64,
    /// Set once the segment is no longer written; it may then be memory-mapped.
    pub sealed: AtomicBool,
    /// Set when an index lookup did not match the log: lookups then scan from the start.
    pub index_suspect: AtomicBool,
    /// The segment's mapping, bounded process-wide (see `maps`).
    mapped: Arc<MapSlot>,
    /// The newest timestamp of its first batch, once read (see
    /// [`first_batch_timestamp`](Self::first_batch_timestamp)).
    first_batch_ts: std::sync::OnceLock<Option<i64>>,
}

/// The outcome of scanning a `.log` file from position 0.
#[derive(Debug, Default)]
pub struct Scan {
    /// Bytes of valid batches from the start.
    pub valid_bytes: u64,
    /// One past the last offset of the last valid batch (`None` if no batch).
    pub next_offset: Option<i64>,
    pub offset_entries: Vec<OffsetEntry>,
    pub time_entries: Vec<TimeEntry>,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub bytes_since_index: u64,
    pub first_batch_max_timestamp: Option<i64>,
    pub batches: u64,
    /// Batches with a producer id (idempotent or transactional, markers included).
    pub producer_batches: u64,
    /// The largest producer id of any batch (-1: none).
    pub max_producer_id: i64,
    /// Where and why the scan stopped before the end of the file.
    pub stopped: Option<(u64, String)>,
}

/// Parameters of a scan.
#[derive(Debug, Clone)]
pub struct ScanParams {
    pub base: i64,
    pub index_interval_bytes: u64,
    pub max_offset_entries: usize,
    pub max_time_entries: usize,
    pub rules: Rules,
}

/// What a batch header must satisfy beyond its CRC.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The partition epochs: a batch must carry the one current at its offset. `None`:
    /// any epoch (a cleaner's swap file, checked again by recovery).
    pub epochs: Option<Arc<EpochHistory>>,
    /// Whether offsets may skip values between batches (compacted logs). When false,
    /// each batch must start exactly after the previous one, which also detects damage
    /// to the base offset, a field the CRC does not cover.
    pub allow_gaps: bool,
}

/// Checks a batch header in the context of its segment; returns the reason it is bad.
pub fn check_header(
    h: &BatchHeader,
    base: i64,
    expected_base: Option<i64>,
    rules: &Rules,
) -> Option<String> {
    if h.magic != MAGIC_V2 {
        return Some(format!("magic {} is not 2", h.magic));
    }
    if let Some(epochs) = &rules.epochs
        && !epochs.allows(h.partition_leader_epoch, h.base_offset)
    {
        return Some(format!(
            "partitionLeaderEpoch {} is not the partition epoch at offset {} ({})",
            h.partition_leader_epoch,
            h.base_offset,
            super::checkpoint::LEADER_EPOCH_FILE
        ));
    }
    if h.last_offset_delta < 0 || h.records_count < 0 {
        return Some("negative lastOffsetDelta or recordsCount".into());
    }
    if let Some(expected) = expected_base
        && (h.base_offset < expected || (!rules.allow_gaps && h.base_offset != expected))
    {
        return Some(format!(
            "batch base offset {} where {expected} was expected",
            h.base_offset
        ));
    }
    let last = h.base_offset.checked_add(i64::from(h.last_offset_delta));
    if h.base_offset < base || last.is_none_or(|l| l == i64::MAX || l - base > i64::from(i32::MAX))
    {
        return Some(format!(
            "offsets from {} (+{}) do not fit segment {base}",
            h.base_offset, h.last_offset_delta
        ));
    }
    None
}

/// Validates every batch of `file[0..len)` and computes the indexes Kafka would have
/// written (an entry when more than `index_interval_bytes` were appended since the last
/// one; time entries at the same points when the max timestamp grew; a final time entry).
pub fn scan(file: &dyn File, len: u64, p: ScanParams) -> std::io::Result<Scan> {
    scan_from(file, len, p, 0)
}

/// [`scan`] starting at `start` (a batch boundary, e.g. an index entry's position). From
/// a position other than 0 the first batch's base offset is not checked and the index
/// entries are relative to that start.
pub fn scan_from(file: &dyn File, len: u64, p: ScanParams, start: u64) -> std::io::Result<Scan> {
    const CHUNK: u64 = 1 << 20;
    let mut s = Scan {
        max_timestamp: -1,
        max_producer_id: -1,
        offset_of_max_timestamp: p.base,
        ..Scan::default()
    };
    let mut pos: u64 = start;
    let mut buf = Bytes::new();
    let mut buf_start: u64 = 0;
    let mut expected = (start == 0).then_some(p.base);
    while pos < len {
        let remaining = len - pos;
        if remaining < LOG_OVERHEAD as u64 {
            s.stopped = Some((
                pos,
                format!("{remaining} bytes at the end are too few for a batch header"),
            ));
            break;
        }
        // Make sure the header is buffered.
        let ensure = |need: u64, buf: &mut Bytes, buf_start: &mut u64| -> std::io::Result<()> {
            if pos >= *buf_start && pos + need <= *buf_start + buf.len() as u64 {
                return Ok(());
            }
            let n = need.max(CHUNK).min(len - pos);
            *buf = file.read_exact_at(pos, n as usize)?;
            *buf_start = pos;
            Ok(())
        };
        ensure(LOG_OVERHEAD as u64, &mut buf, &mut buf_start)?;
        let at = (pos - buf_start) as usize;
        let (_, size) = batch::peek_size(&buf[at..]).expect("12 bytes are buffered");
        if size < RECORD_BATCH_OVERHEAD as i64 {
            // A message of Kafka before 0.11 (magic 0 or 1, at the offset of a batch's
            // magic; at least 26 bytes with its offset and size) is said to be one, not
            // taken for damage.
            let old_magic = if size >= 26 && remaining >= 17 {
                ensure(17, &mut buf, &mut buf_start)?;
                Some(buf[(pos - buf_start) as usize + 16]).filter(|&m| m < 2)
            } else {
                None
            };
            let reason = match old_magic {
                Some(m) => format!("message format v{m} (Kafka before 0.11) is not supported"),
                None => format!("batch length {size} is below the 61-byte minimum"),
            };
            s.stopped = Some((pos, reason));
            break;
        }
        if size as u64 > remaining {
            s.stopped = Some((
                pos,
                format!("batch of {size} bytes runs past the end of the file ({remaining} left)"),
            ));
            break;
        }
        let size = size as u64;
        ensure(size, &mut buf, &mut buf_start)?;
        let at = (pos - buf_start) as usize;
        let bytes = &buf[at..at + size as usize];
        let header = match batch::validate(bytes) {
            Ok(h) => h,
            Err(e) => {
                s.stopped = Some((pos, e.to_string()));
                break;
            }
        };
        if let Some(reason) = check_header(&header, p.base, expected, &p.rules) {
            s.stopped = Some((pos, reason));
            break;
        }
        let last = header.last_offset();
        if header.max_timestamp > s.max_timestamp {
            s.max_timestamp = header.max_timestamp;
            s.offset_of_max_timestamp = last;
        }
        if s.first_batch_max_timestamp.is_none() {
            s.first_batch_max_timestamp = Some(header.max_timestamp);
        }
        if s.bytes_since_index > p.index_interval_bytes {
            let rel = (last - p.base) as u32;
            if s.offset_entries.len() < p.max_offset_entries {
                s.offset_entries.push(OffsetEntry {
                    relative_offset: rel,
                    position: pos as u32,
                });
            }
            push_time_entry(
                &mut s.time_entries,
                p.max_time_entries,
                s.max_timestamp,
                s.offset_of_max_timestamp - p.base,
            );
            s.bytes_since_index = 0;
        }
        s.bytes_since_index += size;
        s.batches += 1;
        s.producer_batches += u64::from(header.producer_id >= 0);
        s.max_producer_id = s.max_producer_id.max(header.producer_id);
        pos += size;
        s.valid_bytes = pos;
        s.next_offset = Some(last + 1);
        expected = Some(last + 1);
    }
    push_time_entry(
        &mut s.time_entries,
        p.max_time_entries,
        s.max_timestamp,
        s.offset_of_max_timestamp - p.base,
    );
    Ok(s)
}

/// Kafka's `TimeIndex.maybeAppend`: only a strictly larger timestamp is added.
pub fn push_time_entry(entries: &mut Vec<TimeEntry>, max: usize, ts: i64, rel: i64) {
    if ts < 0 || entries.len() >= max || entries.last().is_some_and(|e| e.timestamp >= ts) {
        return;
    }
    entries.push(TimeEntry {
        timestamp: ts,
        relative_offset: rel as u32,
    });
}

/// Opens an existing file read-only with its length, for a scan (errors name the path).
pub(crate) fn open_sized(fs: &dyn FileSystem, path: &Path) -> Result<(Arc<dyn File>, u64)> {
    let file = fs
        .open_read(path)
        .map_err(io_ctx(format!("open {}", path.display())))?;
    let len = file
        .len()
        .map_err(io_ctx(format!("stat {}", path.display())))?;
    Ok((file, len))
}

/// The smallest live mapping of an active segment (address space only).
const LIVE_MAP_MIN: u64 = 1 << 20;

impl Segment {
    /// Opens (creating if `create`) the segment's three files. Indexes are not loaded.
    pub fn open(
        fs: &dyn FileSystem,
        dir: &Path,
        base: i64,
        index_bytes: u64,
        create: bool,
    ) -> std::io::Result<Self> {
        let log = fs.open(&dir.join(file_name(base, "log")), create)?;
        let offset_index = Index::create(fs, &dir.join(file_name(base, "index")), index_bytes)?;
        let time_index = Index::create(fs, &dir.join(file_name(base, "timeindex")), index_bytes)?;
        Self::assemble(dir, base, log, (offset_index, time_index))
    }

    /// A segment of these files, nothing known of its contents yet.
    fn assemble(
        dir: &Path,
        base: i64,
        log: Arc<dyn File>,
        (offset_index, time_index): (Index<OffsetEntry>, Index<TimeEntry>),
    ) -> std::io::Result<Self> {
        let size = log.len()?;
        Ok(Segment {
            base,
            log_path: dir.join(file_name(base, "log")),
            log,
            size: AtomicU64::new(size),
            offset_index,
            time_index,
            txn_index: TxnIndex::new(dir.join(file_name(base, "txnindex")), base, false),
            max_timestamp: AtomicI64::new(-1),
            offset_of_max_timestamp: AtomicI64::new(base),
            sealed: AtomicBool::new(false),
            index_suspect: AtomicBool::new(false),
            mapped: Arc::default(),
            first_batch_ts: std::sync::OnceLock::new(),
        })
    }

    /// Opens an existing segment without creating or changing any file: the `.log` is
    /// read from `log_file` (its own path, or the compaction swap file that is to be
    /// renamed to it), an index file only if it exists. Recovery uses this while it
    /// checks the directory; [`create_index_files`](Self::create_index_files) creates
    /// the missing index files once the checks passed.
    #[allow(clippy::too_many_arguments)]
    pub fn open_existing(
        fs: &dyn FileSystem,
        dir: &Path,
        base: i64,
        index_bytes: u64,
        log_file: &Path,
        index_file: Option<&Path>,
        time_index_file: Option<&Path>,
    ) -> std::io::Result<Self> {
        let log = fs.open(log_file, false)?;
        let offset_index = Index::open_existing(
            fs,
            &dir.join(file_name(base, "index")),
            index_bytes,
            index_file,
        )?;
        let time_index = Index::open_existing(
            fs,
            &dir.join(file_name(base, "timeindex")),
            index_bytes,
            time_index_file,
        )?;
        Self::assemble(dir, base, log, (offset_index, time_index))
    }

    /// Creates the index files [`open_existing`](Self::open_existing) found missing.
    pub fn create_index_files(&self, fs: &dyn FileSystem) -> std::io::Result<()> {
        self.offset_index.create_if_missing(fs)?;
        self.time_index.create_if_missing(fs)
    }

    /// The published size.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Kafka's `LogSegment.largestTimestamp`, which time retention and the minimum
    /// compaction lag go by: the largest record timestamp, or where no record carries
    /// one, the file's modification time (-1 if that is unknown too).
    pub fn largest_timestamp(&self) -> i64 {
        match self.max_timestamp.load(Ordering::Acquire) {
            ts if ts >= 0 => ts,
            _ => self.modified_ms().unwrap_or(-1),
        }
    }

    /// The newest timestamp of the first batch (`None` without a batch, or if it cannot
    /// be read: logged, not returned), read once (Kafka's `getFirstBatchTimestamp`, by
    /// which `max.compaction.lag.ms` ages a segment). For a sealed segment: its first
    /// batch does not change.
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        let read = || {
            if self.size() < RECORD_BATCH_OVERHEAD as u64 {
                return Ok(None);
            }
            let head = self.read_unmapped(0, RECORD_BATCH_OVERHEAD)?;
            Ok(BatchHeader::parse(&head).ok().map(|h| h.max_timestamp))
        };
        if let Some(ts) = self.first_batch_ts.get() {
            return *ts;
        }
        match read() {
            Ok(ts) => *self.first_batch_ts.get_or_init(|| ts),
            Err(e) => {
                let e: crate::error::Error = e;
                tracing::warn!("{}: reading its first batch: {e}", self.log_path.display());
                None
            }
        }
    }

    /// The `.log` file's modification time, where the file system keeps one (a failure
    /// to read it is logged, not returned: it only ages the segment).
    pub fn modified_ms(&self) -> Option<i64> {
        self.log.modified_ms().unwrap_or_else(|e| {
            if e.kind() != std::io::ErrorKind::Unsupported {
                tracing::warn!("{}: no modification time: {e}", self.log_path.display());
            }
            None
        })
    }

    /// Reads `[pos, pos+len)` of the log: a slice of a mapping where the file system
    /// maps files (the active segment's mapping is live and grows by doubling), else a
    /// fresh buffer. The caller keeps the range within `size()`.
    pub fn read(&self, pos: u64, len: usize) -> Result<Bytes> {
        let end = pos + len as u64;
        let mut admit = false;
        {
            let mut mapped = self.mapped.view.lock();
            if mapped.as_ref().is_none_or(|v| (v.len() as u64) < end) && MapSlot::may_map() {
                // A mapping is an optimization: if the system refuses one (address space,
                // map count), read with pread.
                // SAFETY: a sealed segment is never shrunk or rewritten, and the active
                // one only grows past what readers were given (a failed write is undone
                // down to the published size, never below; truncation and compaction
                // write new files and rename them into place; retention unlinks); reads
                // stay below `size()`. Recovery, which cuts a torn tail in place, runs at
                // open, which maps nothing, and cuts only past what an earlier instance
                // in this process published. Another process shortening the files of an
                // open store is outside this (the README says so), as are pages the
                // kernel dropped after a failed fsync.
                #[allow(unsafe_code)]
                let view = unsafe {
                    if self.sealed.load(Ordering::Acquire) {
                        self.log.map(self.size()).map(Some)
                    } else {
                        self.log.map_live(end.max(LIVE_MAP_MIN).next_power_of_two())
                    }
                };
                match view {
                    Ok(Some(view)) => {
                        admit = mapped.is_none();
                        *mapped = Some(view);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(
                        "{}: no mapping ({e}); reading with pread",
                        self.log_path.display()
                    ),
                }
            }
            if let Some(view) = mapped.as_ref()
                && end <= view.len() as u64
            {
                let slice = view.slice(pos as usize..end as usize);
                drop(mapped);
                if admit {
                    self.mapped.admit();
                } else {
                    self.mapped.touch();
                }
                return Ok(slice);
            }
        }
        self.read_unmapped(pos, len)
    }

    /// Reads with `pread`, never mapping the file: for one-off reads (the checks at
    /// open), so that opening a store maps nothing and leaves the process-wide
    /// mapping budget to the segments that are read.
    pub fn read_unmapped(&self, pos: u64, len: usize) -> Result<Bytes> {
        self.log.read_exact_at(pos, len).map_err(|e| {
            Error::io(
                format!("read {} at position {pos}", self.log_path.display()),
                e,
            )
        })
    }

    /// Scan parameters for this segment.
    pub fn scan_params(
        &self,
        index_interval_bytes: u64,
        rules: Rules,
        index_bytes: u64,
    ) -> ScanParams {
        ScanParams {
            base: self.base,
            index_interval_bytes,
            max_offset_entries: (index_bytes / super::index::OFFSET_ENTRY) as usize,
            max_time_entries: (index_bytes / super::index::TIME_ENTRY) as usize,
            rules,
        }
    }

    /// Kafka's `TimeIndex.maybeAppend` with this segment's max timestamp so far: added
    /// only if it grew. A failed write is logged and skipped: the index is a verified
    /// hint that recovery rebuilds.
    pub fn maybe_append_time_entry(&self) {
        let ts = self.max_timestamp.load(Ordering::Acquire);
        let rel = self.offset_of_max_timestamp.load(Ordering::Acquire) - self.base;
        if ts < 0
            || self.time_index.is_full()
            || self.time_index.last().is_some_and(|e| e.timestamp >= ts)
        {
            return;
        }
        if let Err(e) = self.time_index.append(TimeEntry {
            timestamp: ts,
            relative_offset: rel as u32,
        }) {
            tracing::warn!(
                "{}: time index entry not written: {e}",
                self.time_index.path().display()
            );
        }
    }

    /// Extends the active segment's index files to their full size, from their first
    /// entry (they are trimmed when it is sealed or closed).
    pub fn preallocate_indexes(&self) -> Result<()> {
        self.offset_index
            .preallocate()
            .and_then(|()| self.time_index.preallocate())
            .map_err(|e| {
                Error::io(
                    format!("preallocate the indexes of {}", self.log_path.display()),
                    e,
                )
            })
    }

    /// The segment will not be used for a while: its files' descriptors may be closed
    /// (see [`File::release_descriptor`](crate::fs::File::release_descriptor)).
    pub fn release_descriptors(&self) {
        self.log.release_descriptor();
        self.offset_index.release_descriptor();
        self.time_index.release_descriptor();
    }

    /// Drops the segment's mapping (views already handed out keep it alive until they
    /// drop).
    pub fn release_mapping(&self) {
        *self.mapped.view.lock() = None;
    }

    /// Drops the log file's handle of a segment whose file was removed in use (see
    /// [`remove_files`](Self::remove_files)) or replaced by a rename, once no reader of
    /// the segment list can reach it: the list no longer has it.
    pub fn forget_log_descriptor(&self) {
        self.log.forget_descriptor();
    }

    /// Drops the index files' handles of a sealed segment whose indexes are synced (its
    /// entries stay in memory).
    pub fn release_index_files(&self) {
        self.offset_index.release();
        self.time_index.release();
        self.txn_index.release();
    }

    /// Removes the segment's files (open handles and mappings stay valid; `in_use`:
    /// readers of the current segment list may still read it, so its log stays readable
    /// through a cache of descriptors too, see [`FileSystem::remove_file_in_use`]). An
    /// index file that does not exist (recovery had not created it yet, or a
    /// `.txnindex` of a segment without aborted transactions) is no error.
    pub fn remove_files(&self, fs: &dyn FileSystem, in_use: bool) -> Result<()> {
        if in_use {
            fs.remove_file_in_use(&self.log_path)
        } else {
            fs.remove_file(&self.log_path)
        }
        .map_err(|e| Error::io(format!("remove {}", self.log_path.display()), e))?;
        for p in [
            self.offset_index.path(),
            self.time_index.path(),
            self.txn_index.path(),
        ] {
            match fs.remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("remove {}", p.display()), e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Installs the indexes and statistics computed by a scan and rewrites the index
    /// files (preallocated for the active segment, trimmed otherwise).
    pub fn install_scan(&self, scan: &Scan, active: bool) -> std::io::Result<()> {
        self.adopt_scan(scan);
        self.write_indexes(active)
    }

    /// [`install_scan`](Self::install_scan) in memory only: the index files are left as
    /// they are until [`write_indexes`](Self::write_indexes) (or already hold these
    /// entries: a cleaned segment's, written from the same scan).
    pub fn adopt_scan(&self, scan: &Scan) {
        self.offset_index.set_entries(scan.offset_entries.clone());
        self.time_index.set_entries(scan.time_entries.clone());
        self.max_timestamp
            .store(scan.max_timestamp, Ordering::Release);
        self.offset_of_max_timestamp
            .store(scan.offset_of_max_timestamp, Ordering::Release);
        self.index_suspect.store(false, Ordering::Release);
    }

    /// Rewrites both index files from the entries in memory (preallocated for the
    /// active segment, trimmed otherwise). Not synced.
    pub fn write_indexes(&self, active: bool) -> std::io::Result<()> {
        self.offset_index.rewrite(active)?;
        self.time_index.rewrite(active)
    }
}
