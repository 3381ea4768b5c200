//! Cutting the log: truncation at the end (`truncate_to`) and raising the log start
//! (`advance_log_start`, Kafka's `DeleteRecords`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::checkpoint::DurablePoint;
use super::segment::{self, Segment, file_name};
use super::{FlushState, Log, Writer};
use crate::error::{Error, Result, io_ctx};

impl Log {
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
        self.touch()?;
        self.write_log_start(offset)?;
        self.log_start.store(offset, Ordering::Release);
        Ok(offset)
    }

    /// Removes every batch from the one containing `offset` onwards, so the log end
    /// offset becomes that batch's base offset (at most `offset`). Durable on return.
    ///
    /// Transactions: the `.txnindex` entries of removed markers go; the open
    /// transactions become those open at the new end (a transaction whose marker was
    /// removed is open again; one whose batches were all removed is gone), replayed from
    /// the newest producer snapshot at or below it. Producer epochs and coordinator
    /// epochs stay (fencing is not undone).
    ///
    /// Compaction: a cut below the clean offset (where the last pass ended) can take a
    /// key's only value. A pass removed each older value of a key whose newer one it
    /// saw; a cut that removes the newer one leaves none. Kafka cleans only below its
    /// high watermark and truncates only above it, so this never happens there. Cut
    /// only at or above the clean offset, or accept that loss.
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
        self.touch()?;
        if offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let segs = self.snapshot();
        let idx = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let seg = segs[idx].clone();
        // Find the batch containing `offset` (or the first after it). Each header is
        // checked against the one before it, as reads check them: the new end comes
        // from these offsets, and one that a damaged header moved would set it wrong.
        let rules = self.rules();
        let mut pos = 0u64;
        let mut new_end = seg.base;
        while pos < seg.size() {
            let h = self.header_at(&seg, pos, seg.size())?;
            if let Some(reason) = segment::check_header(&h, seg.base, Some(new_end), &rules) {
                return Err(Error::corruption(&seg.log_path, pos, reason));
            }
            if h.last_offset() >= offset {
                break;
            }
            new_end = h.last_offset() + 1;
            pos += h.size().expect("checked") as u64;
        }
        // The rolls' producer snapshots still waiting for a flush, synced first: the
        // replay below reads them (one a roll failed to write is missing until then),
        // and the directory fsync of the cut must not make a name durable whose bytes
        // are not. A failed fsync poisons: it is never retried.
        for (offset, bytes) in std::mem::take(&mut w.pending_snapshots) {
            if let Err(e) = self.write_snapshot_bytes(offset, &bytes, true) {
                self.poison_with(format!("truncation failed part-way: {e}"));
                return Err(e);
            }
        }
        // The transactions open at the new end, from the batches below it (read before
        // the cut changes anything).
        let mut rebuilt = self
            .replay_producers(new_end, new_end, false, false, &[])?
            .states;
        if self.live.allow_offset_gaps() {
            // As a compacted log's open: its batches may not be the producers' last.
            rebuilt.forget_batches();
        }
        // While the end moves, the last stable offset must not pass a transaction the
        // cut reopens: the smaller bound until the state is replaced below.
        let reopened = rebuilt.first_open_offset().unwrap_or(i64::MAX);
        self.first_unstable.fetch_min(reopened, Ordering::AcqRel);
        let record_only = std::cell::Cell::new(false);
        let unchanged = std::cell::Cell::new(false);
        let cut = self.truncate_locked(
            &mut fl,
            &mut w,
            (&segs, idx, pos, new_end),
            (&record_only, &unchanged),
        );
        if cut.is_ok() {
            // Batches past the new end are gone: a producer re-sending one appends it
            // again.
            w.producers.truncate_to(new_end, &rebuilt);
            self.publish_first_unstable(&w);
        } else if unchanged.get() {
            // Nothing was cut: the last stable offset is the log's again.
            self.publish_first_unstable(&w);
        }
        // Else the log in memory is still the one before the cut (its segment list and
        // end are replaced last), and so is its producer state: the log is poisoned, and
        // the last stable offset keeps the lower bound taken above until a reopen.
        // A new epoch from `new_end`: a position taken past it in the old epoch is then
        // known to point at removed records. (A crash before it is written makes the next
        // open start a new epoch anyway.)
        let result = cut.and_then(|()| self.begin_epoch(&w, new_end).map(drop));
        // Snapshots past the new end describe batches that are gone, and go once the cut
        // is durable: removed before it, a crash that kept the batches would rebuild the
        // state without them (a re-sent batch appended twice). A crash before they are
        // removed leaves them past the recovered end, where an open removes them.
        let result = result.and_then(|()| {
            if self.remove_producer_snapshots(|o| o > new_end)? > 0 {
                // Durable too: a crash that brought one back could leave it at or below
                // a later log end.
                self.fs
                    .sync_dir(&self.dir)
                    .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
            }
            Ok(())
        });
        // (Unless only the durable position's record failed, which poisoned without
        // the marker: every byte was synced before it, and nothing was cut.)
        if let Err(e) = &result
            && !record_only.get()
            && !unchanged.get()
        {
            self.poison_with(format!("truncation failed part-way: {e}"));
        }
        result?;
        // Offsets from the new end on will be new records: readable, and dirty again.
        if self.log_start_offset() > new_end {
            // Left above the new end, the start would hide the records appended next:
            // any failure poisons here.
            self.write_log_start(new_end)
                .inspect_err(|e| self.poison_with(format!("truncation: {e}")))?;
            self.log_start.store(new_end, Ordering::Release);
        }
        if self.clean_offset() > new_end {
            self.write_clean_offset(new_end, false)?;
        }
        Ok(new_end)
    }

    /// The cut itself, at `pos` of `segs[idx]`, ending the log at `new_end`. Sets
    /// `record_only` when it failed at the durable position's record alone (after every
    /// fsync of data succeeded, before anything was cut), and `unchanged` when it failed
    /// writing the lowered recovery point short of an fsync (ENOSPC): every byte was
    /// synced, nothing else was written, and the log takes writes as it did.
    fn truncate_locked(
        &self,
        fl: &mut FlushState,
        w: &mut Writer,
        (segs, idx, pos, new_end): (&[Arc<Segment>], usize, u64, i64),
        (record_only, unchanged): (&std::cell::Cell<bool>, &std::cell::Cell<bool>),
    ) -> Result<()> {
        let seg = segs[idx].clone();
        // 0. Everything written so far is synced first, so the durable position written
        //    next never claims bytes that are not on disk.
        for s in w.unflushed.drain(..) {
            // All its files, as a flush syncs them: once it is taken off the list no
            // flush will, and the recovery point passes it later.
            s.log
                .sync_data()
                .and_then(|()| s.offset_index.sync())
                .and_then(|()| s.time_index.sync())
                .and_then(|()| s.txn_index.sync())
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
            self.write_recovery_point_steps(seg.base)
                .map_err(|(step, e)| {
                    unchanged.set(!step.is_fsync());
                    e
                })?;
            fl.recovery_point = seg.base;
            fl.point_on_disk = true;
        }
        {
            // Under the durable file's lock, a position a flush left to record (older
            // than the cut) is dropped rather than written after it.
            let mut file = self.durable_file.lock();
            *self.durable_pending.lock() = None;
            self.write_point_with(
                &mut file,
                DurablePoint {
                    segment_base: seg.base,
                    position: pos,
                    next_offset: new_end,
                    // A log start inside the removed range comes down to the new end (its
                    // checkpoint is lowered once the cut is done; until then open clamps it).
                    log_start: self.log_start_offset().min(new_end),
                },
                true,
            )
            .map_err(io_ctx("write the durable position"))
            .inspect_err(|e| {
                // Everything was synced in step 0, and nothing is cut yet.
                self.poison_data_synced(format!("truncation failed part-way: {e}"));
                record_only.set(true);
            })?;
        }
        // 2. Later segments go (unlinking keeps any live mapping valid; readers of the
        //    list, not swapped yet, may still read them).
        for s in &segs[idx + 1..] {
            s.remove_files(self.fs.as_ref(), true)?;
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
        // The aborted transactions whose markers remain (synced; the directory next).
        let kept = seg
            .txn_index
            .entries(self.fs.as_ref())?
            .iter()
            .filter(|e| e.last_offset < new_end)
            .copied()
            .collect();
        new_seg.txn_index.rewrite(self.fs.as_ref(), kept, false)?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        let mut list: Vec<Arc<Segment>> = segs[..idx].to_vec();
        list.push(new_seg.clone());
        *self.segments.write() = Arc::new(list);
        // Readers of the old list that still reach a removed file now fail, find the
        // list changed, and read again.
        for s in &segs[idx..] {
            s.forget_log_descriptor();
        }
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
}
