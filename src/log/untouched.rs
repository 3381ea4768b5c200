//! A log opened after a clean shutdown stays as that shutdown left it until something
//! changes it: its clean-shutdown marker stays on disk, its active segment's indexes
//! stay trimmed, and its files need no descriptor. Opening and closing a partition
//! nobody writes to then costs no write and no fsync (a store of 10,000 partitions
//! reopens without 10,000 directory fsyncs), and an idle partition holds no descriptor.
//!
//! The invariant: while the marker is on disk, the directory holds exactly what the
//! clean close left. So every operation that writes to the directory (append, roll,
//! truncation, retention, compaction, checkpoints) first calls [`Log::touch`], which
//! removes the marker and syncs the directory before anything else is written: a crash
//! from then on is seen as one, as when the marker is removed at open.

use std::sync::atomic::Ordering;

use super::Log;
use super::checkpoint;
use crate::error::{Result, io_ctx};

impl Log {
    /// Whether nothing changed since the log was opened after a clean shutdown.
    pub(super) fn is_untouched(&self) -> bool {
        self.untouched.load(Ordering::Acquire)
    }

    /// Before the first change to a log opened after a clean shutdown: removes the
    /// clean-shutdown marker, syncs the directory, and preallocates the active
    /// segment's indexes (from their first entry). May be called with any of the log's
    /// locks held (it takes only its own and reads the segment list).
    ///
    /// # Errors
    /// `Io` (a failed directory fsync also poisons the log: it is never retried);
    /// `Poisoned`; `Closed`.
    pub(super) fn touch(&self) -> Result<()> {
        if !self.is_untouched() {
            return Ok(());
        }
        let _t = self.touch_lock.lock();
        if !self.is_untouched() {
            return Ok(());
        }
        self.check_writable()?;
        let marker = self.dir.join(checkpoint::CLEAN_SHUTDOWN_FILE);
        match self.fs.remove_file(&marker) {
            // Removed by an earlier attempt that failed later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.map_err(io_ctx(format!("remove {}", marker.display())))?,
        }
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            let what = format!("fsync directory {}", self.dir.display());
            self.poison_with(format!("{what}: {e}"));
            return Err(crate::error::Error::io(what, e));
        }
        // Untouched, the active segment is the last one (a roll touches first).
        if let Some(active) = self.snapshot().last() {
            active.preallocate_indexes()?;
        }
        self.untouched.store(false, Ordering::Release);
        Ok(())
    }

    /// Closes the descriptors of the files of an untouched or closed log; they are
    /// reopened by path at their next use (with a [`CachingFs`](crate::fs::CachingFs),
    /// as the store uses).
    pub(super) fn release_descriptors(&self) {
        for seg in self.snapshot().iter() {
            seg.release_descriptors();
        }
        self.durable_file.lock().release_descriptor();
    }
}
