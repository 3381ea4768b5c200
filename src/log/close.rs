//! Closing: the final flush, sealed indexes, recovery point and clean-shutdown marker.

use std::sync::atomic::Ordering;

use super::Log;
use super::checkpoint;
use crate::error::{Result, io_ctx};

impl Log {
    /// Flushes, seals the active segment's indexes and writes the clean-shutdown marker,
    /// so the next open scans nothing (and the recovery point, if the one on disk lies
    /// in an older segment). A log opened after a clean shutdown and not changed since
    /// writes nothing: its marker is still on disk.
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
        self.release_files();
        result
    }

    /// Lets go of a closed log's files: nothing reads or writes them again, so their
    /// mappings and (with a [`CachingFs`](crate::fs::CachingFs), as the store uses)
    /// descriptors go now, not when the last handle to the log drops. A deleted topic's
    /// files would otherwise keep their disk space for as long as a producer, a consumer
    /// or the application holds one of its partitions. A file with unsynced writes,
    /// after a failed close, keeps its descriptor: closing it would need an fsync.
    /// Also called by a read that finds the log closed when it ends, in case it mapped
    /// or reopened a file after the close let go of it.
    pub(super) fn release_files(&self) {
        for seg in self.snapshot().iter() {
            seg.release_mapping();
            seg.txn_index.release();
        }
        self.release_descriptors();
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
        {
            let _t = self.touch_lock.lock();
            if self.is_untouched() {
                // Nothing changed since the clean open: the marker, checkpoints and
                // trimmed indexes on disk still describe the log. Unless its first write
                // failed at the fsync that makes the marker's removal durable: that
                // poisoned it, and a close does not report such a log closed Ok.
                return self.check_poison();
            }
        }
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
        // The clean open trusts the `.txnindex` files as they are.
        active.txn_index.sync().map_err(io_ctx(format!(
            "fsync {}",
            active.txn_index.path().display()
        )))?;
        let end = self.log_end_offset();
        // The snapshot at the log end offset is all a clean open needs. Older ones go
        // with their segments (retention) or past a truncation.
        if !w.producers.is_empty() {
            self.write_producer_snapshot(end, &w.producers)?;
            // Those earlier closes wrote at their log ends, now inside a segment, no
            // open reads (a clean one reads the end's; one after a crash, those at
            // segment bases): one more per close that writes one, each as large as the
            // producer state, until retention took their segment. Kafka removes them
            // at load (`removeStraySnapshots`). A close without producers writes none
            // and lists nothing (closing many partitions pays no directory listing).
            let bases: std::collections::BTreeSet<i64> =
                self.snapshot().iter().map(|s| s.base).collect();
            self.remove_producer_snapshots(|o| o < end && !bases.contains(&o))?;
        }
        // A crash recovery scans from the segment holding the recovery point. If the
        // point on disk already lies in the active segment (as the flushes leave it while
        // the log runs), it is not rewritten, saving an fsync: a later crash recovery
        // scans at most this one segment more (if the log rolls after the next open
        // before any flush moves the point), and replays producers from the snapshot at
        // its base rather than at its end.
        let unchanged = fl.point_on_disk && (active.base..=end).contains(&fl.recovery_point);
        let point =
            (!unchanged).then(|| checkpoint::recovery_point_text(&self.topic, self.partition, end));
        checkpoint::write_close_files(
            self.fs.as_ref(),
            &self.dir,
            point.as_deref().map(str::as_bytes),
        )
        .map_err(io_ctx(format!(
            "write the recovery point and clean shutdown marker of {}",
            self.dir.display()
        )))
    }
}

impl Drop for Log {
    /// Closes cleanly if [`Log::close`] was not called; errors are logged.
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            tracing::warn!("closing {} on drop failed: {e}", self.dir.display());
        }
    }
}
