//! Opening a partition directory: lock, clean-up, checkpoints, and recovery.
//!
//! Opening reads and checks everything before it changes anything (steps 1-4 only
//! read), so an open that fails with `Corruption` leaves the directory byte for byte as
//! it was, and the next open fails the same way (I5).
//!
//! 1. Take the lock file; check an interrupted compaction swap (`*.log.swap`) and work
//!    out what finishing it replaces; find `*.tmp`, `*.deleted`, `*.cleaned` files and
//!    orphan indexes.
//! 2. Read the clean-shutdown marker, the recovery point, the durable position and the
//!    other checkpoints.
//! 3. Clean shutdown that matches the durable position: load indexes (sanity-checked,
//!    rebuilt in memory if damaged), read the tail of the active segment only. Nothing
//!    else is scanned; the end of each sealed segment is read from the few batch headers
//!    after its last index entry, so that segments that overlap (or leave a gap) are
//!    found.
//! 4. Otherwise load the segments below the one holding the recovery point as in 3, and
//!    scan every segment from it. The first invalid batch, or segment that does not
//!    begin where the previous one ends, is damage (an error, nothing changed) if it
//!    lies before the durable position, and a torn tail (to be truncated, later segments
//!    removed, reported) if after.
//! 5. Every check passed: finish the swaps, delete the leftovers, delete the marker and
//!    sync the directory before any other write (so a later crash is seen as one), then
//!    write what recovery decided: rebuilt indexes, removed stray segments, the cut.
//! 6. Flush what recovery changed, so recovering again finds the same log.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::checkpoint::{self, DurableFile, DurablePoint};
use super::index::{OffsetEntry, TimeEntry};
use super::segment::{self, Scan, Segment, parse_file_name};
use super::{FlushState, Log, LogConfig, RecoveryReport, Truncation, Writer};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::RECORD_BATCH_OVERHEAD;
use crate::fs::{FileSystem, OsFs};

fn topic_partition(dir: &Path) -> (String, i32) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    match name.rsplit_once('-') {
        Some((t, p)) if !t.is_empty() => match p.parse::<i32>() {
            Ok(p) if p >= 0 => (t.to_string(), p),
            _ => (name.to_string(), 0),
        },
        _ => (name.to_string(), 0),
    }
}

impl Log {
    /// Opens (creating if needed) the partition directory `dir` on the real file system.
    /// See [`open_with_fs`](Self::open_with_fs).
    ///
    /// # Errors
    /// As [`open_with_fs`](Self::open_with_fs).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        Self::open_with_fs(Arc::new(OsFs), dir, config)
    }

    /// Opens (creating if needed) the partition directory `dir` on `fs`, recovering it
    /// if it was not closed cleanly. The directory name `<topic>-<partition>` is used in
    /// the checkpoint files.
    ///
    /// # Errors
    /// `InvalidConfig`; `Locked` if another `Log` (in any process) has the directory
    /// open, or, for a partition directory of a store, if that store or a `Log` of
    /// another of its partitions is open; `Corruption` if data that was flushed fails
    /// its checks (nothing is changed then); `Io`.
    pub fn open_with_fs(
        fs: Arc<dyn FileSystem>,
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let d = dir.display().to_string();
        crate::fs::create_dir_durable(fs.as_ref(), &dir)
            .map_err(io_ctx(format!("create directory {d}")))?;
        let mut locks = Vec::new();
        if config.lock_dir {
            // A partition directory of a store: its lock too, so that a `Log` and a
            // `Store` (whose partitions take no lock of their own) never both have it.
            // `dir/..` is the real parent even through a symbolic link (the operating
            // system resolves it); the lexical parent for file systems that do not
            // resolve `..` (SimFs).
            for root in [Some(dir.join("..")), dir.parent().map(Path::to_path_buf)]
                .into_iter()
                .flatten()
            {
                let store_dir = root.join(checkpoint::CONTAINER_MARKER);
                if fs
                    .exists(&store_dir)
                    .map_err(io_ctx(format!("stat {}", store_dir.display())))?
                {
                    locks.push(crate::fs::take_lock(fs.as_ref(), &root)?);
                    break;
                }
            }
            // The directory itself: a lock nobody can delete while the log is open.
            locks.extend(crate::fs::take_dir_lock(
                fs.as_ref(),
                &dir,
                checkpoint::LOCK_FILE,
            )?);
        }
        // Phase 1: read and check everything; nothing in the directory changes, so a
        // failed open (Corruption) leaves it exactly as it was and the next open fails
        // the same way (I5). What recovery will change is only decided here.
        let listed = fs.list_dir(&dir).map_err(io_ctx(format!("list {d}")))?;
        // A swap file was written and fsync'd by our cleaner; any leader epoch passes here
        // (the segment is checked again by recovery with the real bound).
        let swap_params = |base: i64| segment::ScanParams {
            base,
            index_interval_bytes: config.index_interval_bytes,
            max_offset_entries: usize::MAX,
            max_time_entries: usize::MAX,
            rules: segment::Rules {
                epochs: None,
                allow_gaps: config.allow_offset_gaps,
            },
        };
        // `names`: the directory as it will be once the swaps are finished.
        let (plan, names) = super::clean::plan_swaps(fs.as_ref(), &dir, &listed, swap_params)?;
        let bases: Vec<i64> = names
            .iter()
            .filter_map(|n| parse_file_name(n, "log"))
            .collect();
        let base_set: std::collections::HashSet<i64> = bases.iter().copied().collect();
        let leftovers: Vec<&String> = names
            .iter()
            .filter(|n| {
                let orphan = ["index", "timeindex"]
                    .iter()
                    .any(|suf| parse_file_name(n, suf).is_some_and(|b| !base_set.contains(&b)));
                orphan || n.ends_with(".tmp") || n.ends_with(".deleted") || n.ends_with(".cleaned")
            })
            .collect();
        let clean_path = dir.join(checkpoint::CLEAN_SHUTDOWN_FILE);
        let clean_marker = fs
            .exists(&clean_path)
            .map_err(io_ctx(format!("stat {}", clean_path.display())))?;
        let (topic, partition) = topic_partition(&dir);
        let read_offset = |name: &str, what: &str| -> Result<Option<i64>> {
            Ok(checkpoint::read_small(fs.as_ref(), &dir.join(name))
                .map_err(io_ctx(format!("read {what} in {d}")))?
                .and_then(|b| {
                    checkpoint::parse_recovery_point(&String::from_utf8_lossy(&b), partition)
                }))
        };
        let recovery_point = read_offset(checkpoint::RECOVERY_POINT_FILE, "the recovery point")?;
        // The partition epochs (Kafka's, if Kafka wrote the directory): batches must carry
        // the epoch of their offset. A file that does not parse is damage, refused: as
        // none, valid batches of later epochs would be cut as a torn tail.
        let epoch_path = dir.join(checkpoint::LEADER_EPOCH_FILE);
        let epochs = checkpoint::read_small(fs.as_ref(), &epoch_path)
            .map_err(io_ctx(format!("read the leader epoch checkpoint in {d}")))?
            .map(|b| {
                super::epoch::EpochHistory::parse(&String::from_utf8_lossy(&b)).ok_or_else(|| {
                    Error::corruption(&epoch_path, 0, "not Kafka's leader epoch checkpoint")
                })
            })
            .transpose()?
            .map(Arc::new)
            .unwrap_or_default();
        let max_epoch = epochs.current();
        let (durable_seq, durable) = DurableFile::read(fs.as_ref(), &dir)
            .map_err(io_ctx(format!("read the durable position in {d}")))?;
        // A recovery point is only trusted when it agrees with the durable record (a stale
        // or foreign checkpoint past it would make recovery trust unsynced segments).
        let recovery_point =
            recovery_point.filter(|&r| durable.is_some_and(|d| r <= d.next_offset));
        let stored_start = read_offset(checkpoint::LOG_START_FILE, "the log start offset")?;
        let stored_clean =
            read_offset(super::clean::CLEANER_OFFSET_FILE, "the cleaner checkpoint")?;
        let horizon =
            read_offset(super::clean::HORIZON_FILE, "the tombstone horizon")?.unwrap_or(i64::MIN);

        let mut segs = Vec::with_capacity(bases.len());
        for &b in &bases {
            // A segment a swap will become is read from the swap files until then: its
            // log, and the index files written before it (those not yet renamed).
            let swap = plan.swaps.iter().rev().find(|s| s.base == b);
            let log_file = swap.map_or_else(
                || dir.join(segment::file_name(b, "log")),
                |s| dir.join(&s.name),
            );
            let source = |suffix: &str| {
                let name = segment::file_name(b, suffix);
                let pending = format!("{name}.swap");
                if swap.is_some_and(|s| s.indexes.contains(&pending)) {
                    Some(dir.join(pending))
                } else {
                    names.contains(&name).then(|| dir.join(name))
                }
            };
            segs.push(
                Segment::open_existing(
                    fs.as_ref(),
                    &dir,
                    b,
                    config.segment_index_bytes,
                    &log_file,
                    source("index").as_deref(),
                    source("timeindex").as_deref(),
                )
                .map_err(io_ctx(format!("open segment {b} in {d}")))?,
            );
        }
        let mut rec = Recovery {
            fs: fs.as_ref(),
            config: &config,
            rules: segment::Rules {
                epochs: Some(epochs.clone()),
                allow_gaps: config.allow_offset_gaps,
            },
            names: names.iter().map(String::as_str).collect(),
            report: RecoveryReport {
                swaps_completed: plan.swaps.len(),
                ..RecoveryReport::default()
            },
            plan: Plan::default(),
        };
        let outcome = rec
            .run(&mut segs, clean_marker, recovery_point, durable)
            .map_err(|e| name_swap_file(e, &plan.swaps))?;

        // Phase 2: every check passed; now change the directory. First whatever makes
        // the directory a consistent one (swaps, leftovers), then the clean-shutdown
        // marker goes, synced before any write, so a crash from here on is seen as one;
        // then what recovery decided.
        super::clean::finish_swaps(fs.as_ref(), &dir, &plan)?;
        for n in leftovers {
            fs.remove_file(&dir.join(n))
                .map_err(io_ctx(format!("remove {d}/{n}")))?;
        }
        let durable_file = DurableFile::create(fs.as_ref(), &dir, durable_seq)
            .map_err(io_ctx(format!("open the durable position in {d}")))?;
        if clean_marker {
            fs.remove_file(&clean_path)
                .map_err(io_ctx(format!("remove {}", clean_path.display())))?;
        }
        fs.sync_dir(&dir)
            .map_err(io_ctx(format!("fsync directory {d}")))?;
        rec.apply(&segs)?;
        let mut report = rec.report;
        if segs.is_empty() {
            let seg = Segment::open(fs.as_ref(), &dir, 0, config.segment_index_bytes, true)
                .map_err(io_ctx(format!("create the first segment in {d}")))?;
            segs.push(seg);
        }
        let segs: Vec<Arc<Segment>> = segs.into_iter().map(Arc::new).collect();
        let n = segs.len();
        for s in &segs[..n - 1] {
            s.sealed.store(true, Ordering::Release);
        }
        let active = segs[n - 1].clone();
        active
            .offset_index
            .preallocate()
            .and_then(|()| active.time_index.preallocate())
            .map_err(io_ctx(format!(
                "preallocate the indexes of {}",
                active.log_path.display()
            )))?;
        let next_offset = outcome.next_offset.unwrap_or(active.base);
        report.segments = n;
        if let Some(t) = &report.truncation {
            log::warn!(
                "{d}: recovery truncated {} at position {} ({}); offsets {:?} and {} bytes were lost; {} later segments removed",
                t.path.display(),
                t.position,
                t.reason,
                t.lost_offsets,
                t.bytes_removed,
                t.segments_deleted
            );
        }
        let unflushed: Vec<Arc<Segment>> = if report.clean_shutdown {
            Vec::new()
        } else {
            segs[..n - 1]
                .iter()
                .filter(|s| s.base >= outcome.scan_from)
                .cloned()
                .collect()
        };
        // Sealed segments whose indexes are already synced need no index descriptors.
        for s in &segs[..n - 1] {
            if report.clean_shutdown || s.base < outcome.scan_from {
                s.release_index_files();
            }
        }
        // A log start raised by delete_records; never below the first segment nor past the end.
        let log_start = stored_start.map_or(segs[0].base, |o| o.clamp(segs[0].base, next_offset));
        let cleaner_offset = stored_clean.map_or(0, |o| o.clamp(0, next_offset));
        let log = Log {
            dir: dir.clone(),
            topic,
            partition,
            fs: fs.clone(),
            epoch: AtomicI32::new(max_epoch),
            epochs: RwLock::new(epochs),
            segments: RwLock::new(Arc::new(segs.clone())),
            next_offset: AtomicI64::new(next_offset),
            durable_offset: AtomicI64::new(if report.clean_shutdown {
                next_offset
            } else {
                -1
            }),
            log_start: AtomicI64::new(log_start),
            writer: Mutex::new(Writer {
                active,
                bytes_since_index: outcome.bytes_since_index,
                first_batch_timestamp: outcome.first_batch_timestamp,
                created_ms: config.clock.now_ms(),
                unflushed,
                dir_dirty: !report.clean_shutdown,
                messages_since_flush: 0,
            }),
            flush_state: Mutex::new(FlushState {
                recovery_point: recovery_point.unwrap_or(0),
            }),
            durable_file: Mutex::new(durable_file),
            durable_pending: Mutex::new(None),
            flush_wanted: AtomicI64::new(-1),
            recorded_base: AtomicI64::new(durable.map_or(-1, |d| d.segment_base)),
            recorded_ms: AtomicI64::new(config.clock.now_ms()),
            flush_waiters: Mutex::new(Vec::new()),
            maintenance: Mutex::new(()),
            cleaner_offset: Mutex::new(cleaner_offset),
            tombstone_horizon: AtomicI64::new(horizon),
            last_flush_ms: AtomicI64::new(config.clock.now_ms()),
            poison: Mutex::new(None),
            closed: AtomicBool::new(false),
            report,
            config,
            locks: Mutex::new(locks),
        };
        if !log.report.clean_shutdown {
            // Make the recovered state durable, so a crash now recovers to the same log.
            log.flush()?;
            // A crash may have dropped unsynced records without a trace: positions taken
            // before it (committed offsets) are checked against a new epoch.
            if !bases.is_empty() {
                log.begin_epoch(&log.writer.lock(), next_offset)?;
            }
        }
        // Checkpoints past a log end that recovery lowered are lowered on disk too:
        // offsets appended again there are new records (readable, and dirty).
        if stored_start.is_some_and(|s| s > log_start) {
            log.write_log_start(log_start)?;
        }
        if stored_clean.is_some_and(|c| c > cleaner_offset) {
            log.write_clean_offset(cleaner_offset)?;
        }
        Ok(log)
    }
}

struct Outcome {
    next_offset: Option<i64>,
    bytes_since_index: u64,
    first_batch_timestamp: Option<i64>,
    scan_from: i64,
}

struct Recovery<'a> {
    fs: &'a dyn FileSystem,
    config: &'a LogConfig,
    rules: segment::Rules,
    names: std::collections::HashSet<&'a str>,
    report: RecoveryReport,
    plan: Plan,
}

/// What recovery decided to change on disk. [`Recovery::run`] only reads (the segments'
/// state in memory already is the recovered one); [`Recovery::apply`] writes this once
/// every check passed.
#[derive(Default)]
struct Plan {
    /// Segments (indexes into the recovered list) whose index files are rewritten from
    /// the entries in memory, and whether they are then synced (rebuilt below the
    /// recovery point, they must be as durable as the log).
    index_writes: std::collections::BTreeMap<usize, bool>,
    /// Empty stray segments to remove (no longer in the list).
    strays: Vec<Segment>,
    /// A torn tail: the segment (index into the list) and the length it is cut to.
    cut: Option<(usize, u64)>,
    /// The segments after the torn tail, to remove (no longer in the list).
    after_cut: Vec<Segment>,
}

impl Recovery<'_> {
    fn params(&self, seg: &Segment) -> segment::ScanParams {
        seg.scan_params(
            self.config.index_interval_bytes,
            self.rules.clone(),
            self.config.segment_index_bytes,
        )
    }

    fn scan(&mut self, seg: &Segment) -> Result<Scan> {
        let len = seg.size();
        self.report.segments_scanned += 1;
        self.report.bytes_scanned += len;
        segment::scan(seg.log.as_ref(), len, self.params(seg))
            .map_err(io_ctx(format!("scan {}", seg.log_path.display())))
    }

    fn has_file(&self, seg: &Segment, suffix: &str) -> bool {
        self.names
            .contains(segment::file_name(seg.base, suffix).as_str())
    }

    /// Loads the indexes of trusted segment `idx`; rebuilds them (in memory; written by
    /// `apply`) from the log if missing or insane (the log must then be entirely valid:
    /// it is below the durable point). Returns the offset after the segment's last batch
    /// if `need_end` (from the headers after the last index entry, or from the
    /// rebuild's full scan).
    ///
    /// A sealed segment's (`deferred`) indexes are read only up to their last entries
    /// (Kafka's sanity check); the rest is read on first use: opening a log reads no
    /// index file whole.
    fn load_indexes(
        &mut self,
        seg: &Segment,
        idx: usize,
        need_end: bool,
        deferred: bool,
    ) -> Result<Option<i64>> {
        let size = seg.size();
        let offset_valid = |e: &OffsetEntry| u64::from(e.position) < size;
        let time_valid = |e: &TimeEntry| e.timestamp >= 0;
        let sane = self.has_file(seg, "index")
            && self.has_file(seg, "timeindex")
            && if deferred {
                seg.offset_index.load_tail(offset_valid)
            } else {
                seg.offset_index.load(offset_valid)
            }
            .map_err(io_ctx(format!(
                "read {}",
                seg.offset_index.path().display()
            )))?
            && if deferred {
                seg.time_index.load_tail(time_valid)
            } else {
                seg.time_index.load(time_valid)
            }
            .map_err(io_ctx(format!("read {}", seg.time_index.path().display())))?;
        if sane && self.time_tail_matches(seg)? {
            // An index that names no batch boundary, or headers that do not chain up to
            // the end of the file, discredit the index: the full scan below decides
            // whether the log itself is damaged.
            let end = if need_end {
                self.header_end(seg)?
            } else {
                None
            };
            if end.is_some() || !need_end {
                let ts = seg.time_index.last().map_or(-1, |e| e.timestamp);
                seg.max_timestamp.store(ts, Ordering::Release);
                if let Some(e) = seg.time_index.last() {
                    seg.offset_of_max_timestamp.store(
                        seg.base.saturating_add(i64::from(e.relative_offset)),
                        Ordering::Release,
                    );
                }
                return Ok(end);
            }
        }
        self.report.indexes_rebuilt += 1;
        log::warn!(
            "{}: index missing or damaged; rebuilding from the log",
            seg.log_path.display()
        );
        let scan = self.scan(seg)?;
        if let Some((pos, reason)) = scan.stopped {
            return Err(Error::corruption(&seg.log_path, pos, reason));
        }
        // The segment lies below the recovery point, so its rebuilt indexes must be
        // durable like the rest of it.
        seg.adopt_scan(&scan);
        self.plan.index_writes.insert(idx, true);
        Ok(Some(scan.next_offset.unwrap_or(seg.base)))
    }

    /// The offset after a trusted segment's last batch, read from the batch headers
    /// between the offset index's last entry (which must name the batch there, as Kafka
    /// writes it) and the end of the file: a few small reads, not a scan (CRCs are
    /// checked when the batches are read). `None` if the index or the headers do not
    /// add up.
    fn header_end(&self, seg: &Segment) -> Result<Option<i64>> {
        let size = seg.size();
        let (mut pos, mut claimed, mut expected) = match seg.offset_index.last() {
            Some(e) => (
                u64::from(e.position),
                Some(seg.base.saturating_add(i64::from(e.relative_offset))),
                None,
            ),
            None => (0, None, Some(seg.base)),
        };
        let mut end = seg.base;
        while pos < size {
            if size - pos < RECORD_BATCH_OVERHEAD as u64 {
                return Ok(None);
            }
            let bytes = seg.read(pos, RECORD_BATCH_OVERHEAD)?;
            let Ok(h) = crate::format::BatchHeader::parse(&bytes) else {
                return Ok(None);
            };
            let Some(n) = h
                .size()
                .filter(|&n| n >= RECORD_BATCH_OVERHEAD && n as u64 <= size - pos)
            else {
                return Ok(None);
            };
            if segment::check_header(&h, seg.base, expected, &self.rules).is_some()
                || claimed.take().is_some_and(|c| c != h.last_offset())
            {
                return Ok(None);
            }
            // check_header keeps the last offset below i64::MAX.
            end = h.last_offset() + 1;
            expected = Some(end);
            pos += n as u64;
        }
        Ok(Some(end))
    }

    /// The last time-index entry sets the segment's max timestamp, so it is checked
    /// against the batch it names (found through the offset index). Reads a few headers.
    fn time_tail_matches(&self, seg: &Segment) -> Result<bool> {
        // A segment with data always gets a final time entry unless every timestamp is
        // negative; an empty time index is rebuilt rather than trusted.
        let Some(e) = seg.time_index.last() else {
            return Ok(seg.size() == 0);
        };
        let claimed = seg.base.saturating_add(i64::from(e.relative_offset));
        let size = seg.size();
        // With only its last entry read, the offset index may not reach below it.
        if seg
            .offset_index
            .last()
            .is_some_and(|o| seg.base.saturating_add(i64::from(o.relative_offset)) > claimed)
        {
            let loaded = seg
                .offset_index
                .load_deferred(
                    |_| Err(std::io::Error::other("the index file is held at open")),
                    |o: &OffsetEntry| u64::from(o.position) < size,
                )
                .map_err(io_ctx(format!(
                    "read {}",
                    seg.offset_index.path().display()
                )))?;
            if !loaded {
                return Ok(false);
            }
        }
        let mut pos = seg
            .offset_index
            .floor(|o| seg.base.saturating_add(i64::from(o.relative_offset)) <= claimed)
            .map_or(0, |o| u64::from(o.position));
        while pos + RECORD_BATCH_OVERHEAD as u64 <= size {
            let bytes = seg.read(pos, RECORD_BATCH_OVERHEAD)?;
            let Ok(h) = crate::format::BatchHeader::parse(&bytes) else {
                return Ok(false);
            };
            match h.size() {
                Some(n) if n >= RECORD_BATCH_OVERHEAD && h.last_offset() < claimed => {
                    pos += n as u64
                }
                Some(_) => return Ok(h.last_offset() == claimed && h.max_timestamp == e.timestamp),
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    fn run(
        &mut self,
        segs: &mut Vec<Segment>,
        clean_marker: bool,
        recovery_point: Option<i64>,
        durable: Option<DurablePoint>,
    ) -> Result<Outcome> {
        let mut outcome = Outcome {
            next_offset: None,
            bytes_since_index: 0,
            first_batch_timestamp: None,
            scan_from: 0,
        };
        // The durable point: everything before (segment base, position) was synced.
        let from_checkpoint = recovery_point
            .and_then(|r| segs.iter().rev().find(|s| s.base <= r))
            .map(|s| (s.base, 0u64));
        let durable_pos = durable
            .map(|d| (d.segment_base, d.position))
            .max(from_checkpoint);
        if let Some((base, pos)) = durable_pos
            && pos > 0
        {
            match segs.iter().find(|s| s.base == base) {
                None => {
                    return Err(Error::corruption(
                        segment::file_name(base, "log"),
                        0,
                        format!("the segment holding flushed data up to position {pos} is missing"),
                    ));
                }
                Some(s) if s.size() < pos => {
                    return Err(Error::corruption(
                        &s.log_path,
                        s.size(),
                        format!("the file has {} bytes but {pos} were flushed", s.size()),
                    ));
                }
                _ => {}
            }
        }
        if let (Some(d), Some(first)) = (durable, segs.first())
            && first.base > d.log_start
        {
            return Err(Error::corruption(
                &first.log_path,
                0,
                format!(
                    "the log starts at offset {} but segments from offset {} were flushed",
                    first.base, d.log_start
                ),
            ));
        }
        if segs.is_empty() {
            if durable.is_some_and(|d| d.next_offset > 0) {
                return Err(Error::corruption(
                    "segments",
                    0,
                    "every segment is missing but data was flushed",
                ));
            }
            return Ok(outcome);
        }
        let last = segs.len() - 1;
        // An empty segment between two others may be a stray left by a failed roll; the
        // scan below removes it if its offsets overlap the previous segment's.
        let empty_middle = (1..last).find(|&k| segs[k].size() == 0);
        let clean = empty_middle.is_none()
            && clean_marker
            && durable.is_some_and(|d| {
                d.segment_base == segs[last].base && d.position == segs[last].size()
            });
        self.report.clean_shutdown = clean;
        let scan_from = if clean {
            segs.len()
        } else {
            let from_rp =
                recovery_point.map_or(0, |r| segs.iter().rposition(|s| s.base <= r).unwrap_or(0));
            empty_middle.map_or(from_rp, |k| from_rp.min(k - 1))
        };
        outcome.scan_from = segs.get(scan_from).map_or(i64::MAX, |s| s.base);
        // Each segment must begin where the previous one ends (or later, in a compacted
        // log): overlapping segments would serve their common offsets twice (I2, I3),
        // so this is checked between every two segments, trusted or scanned.
        //
        // Segments before `scan_from` are trusted without a scan; their ends come from
        // their batch headers. An overlap or gap among them is never a torn tail that
        // recovery may cut: without a clean shutdown each of them lies wholly below the
        // recovery point (the segment holding it begins after them), and with one the
        // durable position is the end of the last segment. Either way every byte of
        // them was synced, so the damage is reported, never cut away or served.
        //
        // From `scan_from` on the scan loop checks it and applies the torn-tail rule: a
        // segment that does not follow the previous one is cut away (with all later
        // ones) only if the cut, at the end of the previous segment, lies at or past
        // the durable position, i.e. the segment was created after the last completed
        // flush. For the first scanned segment the previous one is the last trusted
        // one, which lies below the durable position, so that too is Corruption.
        let mut expected_base = None;
        for (i, seg) in segs.iter().enumerate().take(scan_from) {
            if let Some(reason) = expected_base.and_then(|e| self.discontinuity(seg.base, e)) {
                return Err(Error::corruption(&seg.log_path, 0, reason));
            }
            // The clean path below reads the active segment's end itself.
            let need_end = !(clean && i == last);
            expected_base = self.load_indexes(seg, i, need_end, i != last)?;
        }
        if clean {
            // Find the log end offset from the last index entry of the active segment.
            let seg = &segs[last];
            let start = seg.offset_index.last().map_or(0, |e| u64::from(e.position));
            let tail =
                segment::scan_from(seg.log.as_ref(), seg.size(), self.params(seg), start).map_err(
                    io_ctx(format!("read the tail of {}", seg.log_path.display())),
                )?;
            if let Some((pos, reason)) = tail.stopped {
                return Err(Error::corruption(&seg.log_path, pos, reason));
            }
            let next = tail.next_offset.unwrap_or(seg.base);
            if let Some(d) = durable
                && d.next_offset != next
            {
                return Err(Error::corruption(
                    &seg.log_path,
                    seg.size(),
                    format!(
                        "the log ends at offset {next} but {} was flushed at shutdown",
                        d.next_offset
                    ),
                ));
            }
            if tail.max_timestamp > seg.max_timestamp.load(Ordering::Acquire) {
                seg.max_timestamp
                    .store(tail.max_timestamp, Ordering::Release);
                seg.offset_of_max_timestamp
                    .store(tail.offset_of_max_timestamp, Ordering::Release);
            }
            outcome.next_offset = Some(next);
            outcome.bytes_since_index = seg.size() - start;
            outcome.first_batch_timestamp = first_batch_timestamp(seg)?;
            return Ok(outcome);
        }
        if scan_from == 0 {
            expected_base = Some(segs[0].base);
        }
        let mut i = scan_from;
        while i < segs.len() {
            // A stray: empty, not last, and starting inside the previous segment's offsets
            // (no roll makes that). It holds nothing; drop it.
            if segs[i].size() == 0
                && i > 0
                && i + 1 < segs.len()
                && expected_base.is_some_and(|e| segs[i].base < e)
            {
                self.plan.strays.push(segs.remove(i));
                continue;
            }
            let seg = &segs[i];
            let mut scan = self.scan(seg)?;
            // A segment must begin where the previous one ended.
            let discontinuity = expected_base.and_then(|e| self.discontinuity(seg.base, e));
            let gap = discontinuity.is_some();
            if let Some(reason) = discontinuity {
                scan.stopped = Some((0, reason));
                scan.valid_bytes = 0;
                scan.next_offset = None;
            }
            if let Some((pos, reason)) = scan.stopped.clone() {
                let (cut_seg, cut_pos) = if gap && i > 0 {
                    (i - 1, segs[i - 1].size())
                } else {
                    (i, pos)
                };
                let Some(durable_pos) = durable_pos else {
                    // Without a record of what was flushed (a directory another program
                    // wrote, or a lost streamlog.durable), a torn tail cannot be told from
                    // damage: refuse rather than delete data that may have been acknowledged.
                    return Err(Error::corruption(
                        &segs[i].log_path,
                        pos,
                        format!(
                            "{reason}; no durable-position record says whether this data was flushed, so nothing was truncated"
                        ),
                    ));
                };
                if (segs[cut_seg].base, cut_pos) < durable_pos {
                    return Err(Error::corruption(&segs[i].log_path, pos, reason));
                }
                // Check what the cut would leave before cutting: a failed open changes nothing.
                let end_after_cut = if gap {
                    outcome.next_offset.unwrap_or(segs[cut_seg].base)
                } else {
                    scan.next_offset.unwrap_or(segs[cut_seg].base)
                };
                if let Some(d) = durable
                    && end_after_cut < d.next_offset
                {
                    return Err(Error::corruption(
                        &segs[i].log_path,
                        pos,
                        format!(
                            "{reason}; cutting here would end the log at offset {end_after_cut}, below the flushed offset {}",
                            d.next_offset
                        ),
                    ));
                }
                self.truncate_tail(
                    segs,
                    cut_seg,
                    cut_pos,
                    &reason,
                    if gap { None } else { Some(&scan) },
                    &mut outcome,
                )?;
                return check_durable_end(outcome, durable, &segs[cut_seg]);
            }
            seg.adopt_scan(&scan);
            self.plan.index_writes.entry(i).or_insert(false);
            expected_base = Some(scan.next_offset.unwrap_or(seg.base));
            outcome.next_offset = Some(scan.next_offset.unwrap_or(seg.base));
            outcome.bytes_since_index = scan.bytes_since_index;
            outcome.first_batch_timestamp = scan.first_batch_max_timestamp;
            i += 1;
        }
        check_durable_end(outcome, durable, &segs[segs.len() - 1])
    }

    /// Carries out the plan `run` made: index files, stray segments, the cut and the
    /// segments after it. Only I/O can fail here. The clean-shutdown marker is gone by
    /// now, so after a crash part-way the next open scans from the recovery point again
    /// and reaches the same log.
    fn apply(&mut self, segs: &[Segment]) -> Result<()> {
        let plan = std::mem::take(&mut self.plan);
        let fs = self.fs;
        for seg in segs {
            seg.create_index_files(fs).map_err(io_ctx(format!(
                "create the indexes of {}",
                seg.log_path.display()
            )))?;
        }
        let last = segs.len().saturating_sub(1);
        for (&idx, &sync) in &plan.index_writes {
            let seg = &segs[idx];
            seg.write_indexes(idx == last)
                .and_then(|()| {
                    if sync {
                        seg.offset_index.sync()?;
                        seg.time_index.sync()?;
                    }
                    Ok(())
                })
                .map_err(io_ctx(format!(
                    "rewrite the indexes of {}",
                    seg.log_path.display()
                )))?;
        }
        for s in &plan.strays {
            log::warn!(
                "{}: removing an empty segment that overlaps the previous one",
                s.log_path.display()
            );
            s.remove_files(fs)?;
        }
        if let Some((idx, pos)) = plan.cut {
            let seg = &segs[idx];
            seg.log
                .set_len(pos)
                .map_err(io_ctx(format!("truncate {}", seg.log_path.display())))?;
        }
        for s in &plan.after_cut {
            s.remove_files(fs)?;
        }
        Ok(())
    }

    /// Why a segment at `base` cannot follow one that ends before offset `expected`, if
    /// it cannot: it starts inside it (never allowed), or after it while offsets must be
    /// contiguous.
    fn discontinuity(&self, base: i64, expected: i64) -> Option<String> {
        if base < expected {
            Some(format!(
                "segment {base} overlaps the previous segment, which holds offsets up to {}",
                expected - 1
            ))
        } else if base > expected && !self.rules.allow_gaps {
            Some(format!(
                "segment {base} does not follow offset {}",
                expected - 1
            ))
        } else {
            None
        }
    }

    /// Cuts segment `idx` at `pos` and drops every later segment (in memory; `apply`
    /// truncates and removes the files).
    fn truncate_tail(
        &mut self,
        segs: &mut Vec<Segment>,
        idx: usize,
        pos: u64,
        reason: &str,
        scan: Option<&Scan>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let seg = &segs[idx];
        let mut bytes_removed = seg.size() - pos;
        let mut highest = scan.and_then(|s| s.next_offset).unwrap_or(seg.base);
        // What the segment holds once cut: its first `pos` bytes.
        let kept = segment::scan(seg.log.as_ref(), pos, self.params(seg))
            .map_err(io_ctx(format!("scan {}", seg.log_path.display())))?;
        seg.size.store(pos, Ordering::Release);
        seg.adopt_scan(&kept);
        self.plan.cut = Some((idx, pos));
        self.plan.index_writes.entry(idx).or_insert(false);
        let new_end = kept.next_offset.unwrap_or(seg.base);
        let path = seg.log_path.clone();
        let later: Vec<Segment> = segs.drain(idx + 1..).collect();
        let segments_deleted = later.len();
        for s in later {
            bytes_removed += s.size();
            highest = highest.max(s.base);
            if let Ok(sc) = segment::scan(s.log.as_ref(), s.size(), self.params(&s))
                && let Some(n) = sc.next_offset
            {
                highest = highest.max(n);
            }
            self.plan.after_cut.push(s);
        }
        self.report.truncation = Some(Truncation {
            path,
            position: pos,
            reason: reason.to_string(),
            lost_offsets: new_end..highest.max(new_end),
            bytes_removed,
            segments_deleted,
        });
        outcome.next_offset = Some(new_end);
        outcome.bytes_since_index = kept.bytes_since_index;
        outcome.first_batch_timestamp = kept.first_batch_max_timestamp;
        Ok(())
    }
}

/// Damage found in a segment that an unfinished swap is to become lies in the swap
/// file (nothing was renamed yet): the error names that file.
fn name_swap_file(e: Error, swaps: &[super::clean::PendingSwap]) -> Error {
    match e {
        Error::Corruption {
            path,
            position,
            reason,
        } => {
            let swap = swaps.iter().rev().find(|s| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == segment::file_name(s.base, "log"))
            });
            let path = match (swap, path.parent()) {
                (Some(s), Some(dir)) => dir.join(&s.name),
                _ => path,
            };
            Error::corruption(path, position, reason)
        }
        e => e,
    }
}

/// Recovery must end at or past the last flushed offset.
fn check_durable_end(
    outcome: Outcome,
    durable: Option<DurablePoint>,
    last: &Segment,
) -> Result<Outcome> {
    let end = outcome.next_offset.unwrap_or(last.base);
    match durable {
        Some(d) if end < d.next_offset => Err(Error::corruption(
            &last.log_path,
            last.size(),
            format!(
                "the log ends at offset {end} but offsets up to {} were flushed",
                d.next_offset
            ),
        )),
        _ => Ok(outcome),
    }
}

fn first_batch_timestamp(seg: &Segment) -> Result<Option<i64>> {
    if seg.size() < RECORD_BATCH_OVERHEAD as u64 {
        return Ok(None);
    }
    let h = seg.read(0, RECORD_BATCH_OVERHEAD)?;
    Ok(crate::format::BatchHeader::parse(&h)
        .ok()
        .map(|h| h.max_timestamp))
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Log>();
}
