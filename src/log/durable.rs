//! Group commit and the durable point: flushes, fsync batching across concurrent
//! `flush_to` callers, the durable offset and the recorded durable position.

use std::sync::atomic::Ordering;

use super::checkpoint::{self, DurableFile, DurablePoint, WriteStep};
use super::{FlushState, Log};
use crate::error::{Error, Result, io_ctx};

/// How many fsyncs in a row one `flush_to` caller does for callers waiting on it.
const LEADER_ROUNDS: u32 = 3;

/// How long (log clock) a group-commit flush may leave its durable position for a later
/// flush to write (see `Log::record_can_wait`).
const DURABLE_RECORD_MAX_LAG_MS: i64 = 20;

impl Log {
    /// Makes everything appended so far durable: fdatasync of each segment written since
    /// the last flush (and its indexes, `.txnindex` included, once sealed), of the
    /// producer snapshots written at rolls since, the directory if files were created,
    /// then the durable position and the recovery-point checkpoint (when it moves,
    /// in that order). The
    /// active segment's `.txnindex` is not synced (recovery rewrites it from the
    /// markers; `close` syncs it).
    /// Returns the new durable offset. Concurrent callers share the work that one fsync
    /// covers.
    ///
    /// # Errors
    /// `Io` with the failed operation; the log is then poisoned and every later write
    /// or flush returns `Poisoned` (the fsync is never retried); `Closed` after
    /// `close`.
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
                    (_, Some(e)) => {
                        self.record_synced_after_failure();
                        return Err(e);
                    }
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
    pub(super) fn sync_locked(&self, fl: &mut FlushState) -> Result<i64> {
        let (target, point) = self
            .sync_data_locked(fl)
            .inspect_err(|_| self.record_synced_after_failure())?;
        if let Some(p) = point {
            *self.durable_pending.lock() = Some(p);
        }
        self.record_pending()?;
        Ok(target)
    }

    /// The data half of a flush: fdatasync of every segment written since the last one
    /// (sealed segments' indexes too), the directory if files were created; when the
    /// recovery point moves (a roll), the durable position is recorded and then the
    /// recovery point written; then publishes the durable offset. Returns it and the
    /// durable position to record (`None` if nothing was synced; after a roll, the one
    /// just recorded, which recording again does not write). Poisons on failure.
    fn sync_data_locked(&self, fl: &mut FlushState) -> Result<(i64, Option<DurablePoint>)> {
        if let Some(reason) = self.poison.lock().clone() {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
                reason,
            });
        }
        if self.is_untouched() {
            // Nothing written since the clean open: all of it is durable.
            return Ok((self.durable_offset(), None));
        }
        let (target, active, position, sealed, dir_dirty, snapshots) = {
            let mut w = self.writer.lock();
            w.messages_since_flush = 0;
            (
                self.next_offset.load(Ordering::Acquire),
                w.active.clone(),
                w.active.size(),
                std::mem::take(&mut w.unflushed),
                std::mem::take(&mut w.dir_dirty),
                std::mem::take(&mut w.pending_snapshots),
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
                s.txn_index
                    .sync()
                    .map_err(io_ctx(format!("fsync {}", s.txn_index.path().display())))?;
                s.release_index_files();
            }
            // The producer snapshots of the rolls, before the recovery point passes them.
            for (offset, bytes) in &snapshots {
                self.write_snapshot_bytes(*offset, bytes, true)?;
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
            Ok(())
        })();
        if let Err(e) = result {
            self.poison_with(e.to_string());
            return Err(e);
        }
        let point = DurablePoint {
            segment_base: active.base,
            position,
            next_offset: target,
            log_start: self.log_start_offset(),
        };
        if fl.recovery_point < active.base {
            // A roll since the last flush: the durable position is recorded before the
            // recovery point moves to the new segment, and before any waiter is woken.
            // Recorded after (as a group commit may), a crash between the two left the
            // recovery point past the recorded position: the next open distrusted it
            // and scanned the whole log, and took acknowledged bytes of two segments
            // for a tail it may cut. (A failed record poisons on its own.)
            *self.durable_pending.lock() = Some(point);
            self.record_pending()?;
            match self.write_recovery_point_steps(active.base) {
                Ok(()) => {
                    fl.recovery_point = active.base;
                    fl.point_on_disk = true;
                }
                // Nothing changed on disk (ENOSPC writing its temporary file): the
                // recovery point stays behind (the next open scans from it: slower,
                // never wrong), the data is durable, and the next flush tries again.
                Err((step, e)) if !step.is_fsync() => {
                    tracing::warn!("{e}: the recovery point stays where it was");
                }
                // Its fsync failed: the segments were synced before it.
                Err((_, e)) => {
                    self.poison_data_synced(e.to_string());
                    return Err(e);
                }
            }
        }
        self.durable_offset.fetch_max(target, Ordering::AcqRel);
        self.last_flush_ms
            .store(self.config.clock.now_ms(), Ordering::Release);
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

    /// After a failed flush: records the position an earlier group commit synced and
    /// left for a later flush, which a poisoned log never runs. Left unwritten, the
    /// next open would take the acknowledged bytes after the older position for
    /// unsynced ones and write them again, where a power cut could tear them. (A
    /// failure here poisons as well; the flush's own error is the one reported.)
    fn record_synced_after_failure(&self) {
        if let Err(e) = self.record_pending() {
            tracing::warn!("{}: after a failed flush: {e}", self.dir.display());
        }
    }

    /// Writes (and fsyncs) the newest durable position a flush left to record, if any.
    /// Poisons on failure: the flush synced its data, so that alone is not at risk.
    pub(super) fn record_pending(&self) -> Result<()> {
        self.record_pending_in(&mut self.durable_file.lock())
    }

    /// [`record_pending`](Self::record_pending) with the durable file's lock held.
    pub(super) fn record_pending_in(&self, file: &mut DurableFile) -> Result<()> {
        let Some(point) = self.durable_pending.lock().take() else {
            return Ok(());
        };
        if let Err(e) = self.write_point(file, point) {
            let e = io_ctx(format!(
                "write and fsync {}",
                self.dir.join(checkpoint::DURABLE_FILE).display()
            ))(e);
            self.poison_data_synced(e.to_string());
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn write_point(
        &self,
        file: &mut DurableFile,
        point: DurablePoint,
    ) -> std::io::Result<()> {
        self.write_point_with(file, point, false)
    }

    /// [`write_point`](Self::write_point); `both`: into both slots
    /// ([`DurableFile::write_both`], for a truncation).
    pub(super) fn write_point_with(
        &self,
        file: &mut DurableFile,
        point: DurablePoint,
        both: bool,
    ) -> std::io::Result<()> {
        if both {
            file.write_both(point)?;
        } else {
            file.write(point)?;
        }
        self.recorded_base
            .store(point.segment_base, Ordering::Release);
        self.recorded_ms
            .store(self.config.clock.now_ms(), Ordering::Release);
        Ok(())
    }

    /// The durable point recorded last, written into both slots: before files the
    /// older slot's point may name are removed (retention) or rewritten (compaction).
    /// Should a later write tear the newest slot, an open would otherwise fall back to
    /// a point naming files that are gone, and refuse the log. A failure poisons.
    pub(super) fn record_in_both_slots(&self) -> Result<()> {
        let mut file = self.durable_file.lock();
        file.rewrite_last_in_both()
            .map_err(io_ctx("write the durable position"))
            .inspect_err(|e| self.poison_with(e.to_string()))
    }

    /// Writes the recovery point (atomically, synced), telling which step failed.
    pub(super) fn write_recovery_point_steps(
        &self,
        offset: i64,
    ) -> std::result::Result<(), (WriteStep, Error)> {
        let text = checkpoint::recovery_point_text(&self.topic, self.partition, offset);
        let file = checkpoint::RECOVERY_POINT_FILE;
        checkpoint::write_atomic_steps(
            self.fs.as_ref(),
            &self.dir,
            file,
            &format!("{file}.tmp"),
            text.as_bytes(),
        )
        .map_err(|(step, e)| {
            let context = format!("write {}", self.dir.join(file).display());
            (step, io_ctx(context)(e))
        })
    }
}

#[cfg(test)]
mod group_commit_tests {
    //! The durable position a group-commit flush leaves for a later flush to record
    //! (`record_can_wait`): forced here by faking a parked waiter.
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use crate::format::BatchBuilder;
    use crate::fs::{CrashImage, Fault, SimFs};
    use crate::log::checkpoint::DurableFile;
    use crate::log::{Log, LogConfig, ManualClock};

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

    /// A log whose `a` is recorded durable and whose `b` (at the offset returned) a
    /// group commit synced and left for a later flush to record.
    fn a_position_left_for_later(fs: &SimFs) -> (Log, i64) {
        let log = open(fs);
        append(&log, b"a");
        log.flush().expect("flush");
        let b = append(&log, b"b");
        flush_to_with_a_waiter(&log, b + 1);
        assert!(log.durable_pending.lock().is_some());
        (log, b)
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

    /// From a review: a flush that failed after a group commit had left its synced
    /// position for a later flush returned before recording it, and a poisoned log
    /// runs no later flush: the next open took the acknowledged bytes after the older
    /// position for unsynced ones (and wrote them again, exposed to a torn write).
    #[test]
    fn a_failed_flush_records_the_position_a_group_commit_left() {
        let fs = SimFs::new();
        let (log, b) = a_position_left_for_later(&fs);
        append(&log, b"c");
        fs.inject(Fault::Eio, fs.op_count() + 1, false);
        assert!(log.flush().is_err(), "the segment's fsync fails");
        fs.clear_faults();
        let (_, point) = DurableFile::read(&fs, std::path::Path::new(DIR)).expect("read");
        assert_eq!(point.expect("a durable position").next_offset, b + 1);
        drop(log);
    }

    /// A poison outside a flush (here a failed write whose undo failed too) stops
    /// every later flush as well: the position a group commit left must be recorded
    /// then, or the next open rewrites acknowledged bytes past the older one.
    #[test]
    fn a_poison_outside_a_flush_records_the_position_a_group_commit_left() {
        let fs = SimFs::new();
        let (log, b) = a_position_left_for_later(&fs);
        // The append's write fails, and so does cutting the file back after it.
        let n = fs.op_count();
        fs.inject(Fault::Eio, n + 1, false);
        fs.inject(Fault::Eio, n + 2, false);
        let mut batch = BatchBuilder::new();
        batch
            .push(1_700_000_000_000, Some(b"k"), Some(b"c"), &[])
            .expect("push");
        assert!(log.append(&mut batch.finish().expect("finish")).is_err());
        fs.clear_faults();
        let reason = log.poison_reason().expect("poisoned");
        assert!(reason.contains("could not undo"), "{reason}");
        let (_, point) = DurableFile::read(&fs, std::path::Path::new(DIR)).expect("read");
        assert_eq!(point.expect("a durable position").next_offset, b + 1);
        drop(log);
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
