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
//!    After an unclean shutdown, also write again what past the durable position the
//!    disk lacks though reads return it (a failed fsync leaves that on Linux).
//! 6. Flush what recovery changed and wrote, so recovering again finds the same log.
//!
//! Steps 3 and 4, and the writes of step 5 that carry out what they decided, are in
//! `recovery.rs`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::checkpoint::{self, DurableFile};
use super::recovery::{Plan, Recovery};
use super::segment::{self, Segment, parse_file_name};
use super::{FlushState, Log, LogConfig, RecoveryReport, Writer};
use crate::error::{Error, Result, io_ctx};
use crate::fs::{FileSystem, OsFs};

pub(super) fn topic_partition(dir: &Path) -> (String, i32) {
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
        let _span = tracing::debug_span!("recovery", dir = %d).entered();
        // A clean-shutdown marker is only written by the close of a log whose open made
        // the directory durable: a clean reopen needs no mkdir and no fsync of the parent.
        // (Read again once the lock is held: only then does it describe the log.)
        let clean_path = dir.join(checkpoint::CLEAN_SHUTDOWN_FILE);
        let made_durable = fs
            .exists(&clean_path)
            .map_err(io_ctx(format!("stat {}", clean_path.display())))?;
        if !made_durable {
            if config.entry_synced_by_caller {
                fs.create_dir_all(&dir)
            } else {
                crate::fs::create_dir_durable(fs.as_ref(), &dir)
            }
            .map_err(io_ctx(format!("create directory {d}")))?;
        }
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
        let (plan, names) = super::swap::plan_swaps(fs.as_ref(), &dir, &listed, swap_params)?;
        let bases: Vec<i64> = names
            .iter()
            .filter_map(|n| parse_file_name(n, "log"))
            .collect();
        let base_set: std::collections::HashSet<i64> = bases.iter().copied().collect();
        let (leftovers, foreign): (Vec<&String>, Vec<&String>) = names
            .iter()
            .filter(|n| {
                let orphan = ["index", "timeindex", "txnindex"]
                    .iter()
                    .any(|suf| parse_file_name(n, suf).is_some_and(|b| !base_set.contains(&b)));
                orphan || n.ends_with(".tmp") || n.ends_with(".deleted") || n.ends_with(".cleaned")
            })
            // Only names the store (or Kafka) writes in a partition directory: a user's
            // `notes.tmp` is not a leftover of ours, and is left alone.
            .partition(|n| super::is_partition_file(n));
        for n in foreign {
            tracing::warn!("{d}/{n}: not a file of the log; left alone");
        }
        let clean_marker = fs
            .exists(&clean_path)
            .map_err(io_ctx(format!("stat {}", clean_path.display())))?;
        let (topic, partition) = topic_partition(&dir);
        // The file's text, and the offset it gives (`None` for text that does not parse).
        let read_checkpoint = |name: &str, what: &str| -> Result<(bool, Option<i64>)> {
            let text = checkpoint::read_small(fs.as_ref(), &dir.join(name))
                .map_err(io_ctx(format!("read {what} in {d}")))?;
            let offset = text.as_ref().and_then(|b| {
                checkpoint::parse_recovery_point(&String::from_utf8_lossy(b), partition)
            });
            Ok((text.is_some(), offset))
        };
        let read_offset =
            |name: &str, what: &str| -> Result<Option<i64>> { Ok(read_checkpoint(name, what)?.1) };
        let (point_file, recovery_point) =
            read_checkpoint(checkpoint::RECOVERY_POINT_FILE, "the recovery point")?;
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
        let stored_point = recovery_point;
        let recovery_point =
            recovery_point.filter(|&r| durable.is_some_and(|d| r <= d.next_offset));
        let stored_start = checkpoint::read_log_start(fs.as_ref(), &dir)?;
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
            if let Some(seg) = segs.last()
                && !names.contains(&segment::file_name(b, "txnindex"))
            {
                // Never looked for again (most segments have none).
                seg.txn_index.set_absent();
            }
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
        // A clean shutdown with nothing to finish, remove or rewrite: the directory is
        // left as it is, marker included, until the log first changes (`untouched.rs`).
        let untouched = clean_marker
            && rec.report.clean_shutdown
            && plan.swaps.is_empty()
            && leftovers.is_empty()
            && rec.plan.is_empty()
            && !segs.is_empty()
            && names.iter().any(|n| n == checkpoint::DURABLE_FILE);
        // Removals (the marker, leftovers, swapped-out segments) are made durable before
        // any write. With none, the directory is synced once by the flush that makes
        // the recovered state durable (its `dir_dirty`), with the files it created.
        let removes = clean_marker || !plan.swaps.is_empty() || !leftovers.is_empty();
        super::swap::finish_swaps(fs.as_ref(), &dir, &plan)?;
        for n in leftovers {
            fs.remove_file(&dir.join(n))
                .map_err(io_ctx(format!("remove {d}/{n}")))?;
        }
        let durable_file = DurableFile::create(fs.as_ref(), &dir, durable_seq)
            .map_err(io_ctx(format!("open the durable position in {d}")))?;
        if !untouched {
            if clean_marker {
                fs.remove_file(&clean_path)
                    .map_err(io_ctx(format!("remove {}", clean_path.display())))?;
            }
            if removes {
                fs.sync_dir(&dir)
                    .map_err(io_ctx(format!("fsync directory {d}")))?;
            }
        }
        rec.apply(&segs)?;
        let unsynced = names.iter().any(|n| n == checkpoint::UNSYNCED_FILE);
        if !rec.report.clean_shutdown {
            (rec.report.bytes_compared, rec.report.bytes_rewritten) =
                super::recovery::rewrite_unflushed(&segs, durable, outcome.scan_from, unsynced)?;
        }
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
        if !untouched {
            active.preallocate_indexes()?;
        }
        let next_offset = outcome.next_offset.unwrap_or(active.base);
        report.segments = n;
        if let Some(t) = &report.truncation {
            tracing::warn!(
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
        // A log start raised by delete_records; never below the first segment nor past the
        // end, nor below the one the durable position recorded (the checkpoint lost,
        // say). (A truncation lowers the start to the new end before the durable record
        // catches up: the clamp to the end gives the same.)
        let log_start = stored_start
            .max(durable.map(|d| d.log_start))
            .map_or(segs[0].base, |o| o.clamp(segs[0].base, next_offset));
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
            first_unstable: AtomicI64::new(i64::MAX),
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
                producers: Default::default(),
                pending_snapshots: Vec::new(),
            }),
            flush_state: Mutex::new(FlushState {
                recovery_point: recovery_point.unwrap_or(0),
                // An untrusted or unreadable point stays on disk until the next one is
                // written.
                point_on_disk: stored_point == recovery_point
                    && (stored_point.is_some() || !point_file),
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
            unsynced_marked: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            live: super::config::LiveConfig::new(&config),
            untouched: AtomicBool::new(untouched),
            opened_unsynced: unsynced,
            touch_lock: Mutex::new(()),
            report,
            config,
            locks: Mutex::new(locks),
        };
        // Snapshots past the recovered end describe batches the crash took. Left in
        // place, one would later lie at or below a new log end, and a replay from it
        // would remember batches the log does not hold (a re-sent batch answered as a
        // duplicate, never appended). The open's flush below syncs the directory.
        let stale_removed = if log.report.clean_shutdown {
            Ok(0)
        } else {
            log.remove_producer_snapshots(|o| o > next_offset)
        };
        let producers = stale_removed
            .and_then(|_| {
                log.rebuild_producer_state(
                    log.report.clean_shutdown,
                    recovery_point.unwrap_or(0),
                    outcome.producer_batches,
                )
            })
            .inspect_err(|e| {
                // No clean-shutdown marker on the way out (the log is dropped): the next
                // open rebuilds again.
                log.poison_with(format!("rebuilding the producer state failed: {e}"));
            })?;
        {
            let mut w = log.writer.lock();
            w.producers = producers;
            log.publish_first_unstable(&w);
        }
        // A failure from here drops the log: poisoned first, so that its close writes no
        // clean-shutdown marker over a recovery it did not finish.
        let finish = || -> Result<()> {
            if !log.report.clean_shutdown {
                // Make the recovered state durable, so a crash now recovers to the same log.
                log.flush()?;
                if unsynced {
                    // Best effort and unsynced: a marker left costs one more comparison.
                    let path = dir.join(checkpoint::UNSYNCED_FILE);
                    if let Err(e) = fs.remove_file(&path) {
                        tracing::warn!("{}: not removed: {e}", path.display());
                    }
                }
                // A crash may have dropped unsynced records without a trace: positions
                // taken before it (committed offsets) are checked against a new epoch.
                if !bases.is_empty() {
                    log.begin_epoch(&log.writer.lock(), next_offset)?;
                }
            }
            // Checkpoints past a log end that recovery lowered are lowered on disk too:
            // offsets appended again there are new records (readable, and dirty).
            if stored_start.is_some_and(|s| s > log_start) {
                log.touch()?;
                log.write_log_start(log_start)?;
            }
            if stored_clean.is_some_and(|c| c > cleaner_offset) {
                log.touch()?;
                log.write_clean_offset(cleaner_offset, false)?;
            }
            Ok(())
        };
        finish().inspect_err(|e| log.poison_with(format!("the open failed part-way: {e}")))?;
        if log.is_untouched() {
            // Idle until first used: no descriptor held meanwhile.
            log.release_descriptors();
        }
        Ok(log)
    }
}

/// Damage found in a segment that an unfinished swap is to become lies in the swap
/// file (nothing was renamed yet): the error names that file.
fn name_swap_file(e: Error, swaps: &[super::swap::PendingSwap]) -> Error {
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

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Log>();
}
