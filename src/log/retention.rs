//! Retention: deleting the oldest segments by time, by size, by the log start offset and
//! by an optional hard byte cap (Kafka's `UnifiedLog.deleteOldSegments`).
//!
//! Crash safety. The steps are: (1) roll if every segment is to go, (2) flush, so
//! everything below the new log start is durable, (3) raise the log start offset
//! (`log-start-offset-checkpoint`, written atomically), (4) flush again, writing the
//! durable point with the new log start, (5) drop the segments from the readers'
//! snapshot, (6) unlink their files and sync the directory. A crash before (2)
//! loses nothing; after it, the next open finds the segments below the log start and the
//! next pass deletes them again. Readers holding the old snapshot keep reading the
//! unlinked files through their open handles and mappings (the mmap rule in
//! ARCHITECTURE.md: files are unlinked, never shrunk).

use std::sync::Arc;

use super::Log;
use super::segment::Segment;
use crate::error::{Error, Result};

/// What a retention pass may delete. Built by the store from the topic config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete a segment once its largest timestamp is more than this many milliseconds
    /// before `now_ms`; -1 keeps segments forever. For a segment whose records carry no
    /// timestamps, its file's modification time instead, where the file system keeps
    /// one: that is wall-clock time, so with a [`ManualClock`](super::ManualClock) far
    /// from it such segments go at once or never. A compaction pass gives the file it
    /// rewrites the old file's time, as Kafka does; where it cannot (with a warning),
    /// or after a power cut that lost the time (only the data is fsync'd), the file is
    /// young again.
    pub retention_ms: i64,
    /// Delete the oldest segments while the partition would still hold at least this many
    /// bytes without them; -1 for no limit.
    pub retention_bytes: i64,
    /// The current time (the store's clock).
    pub now_ms: i64,
    /// Consumer gate: time and size retention delete only segments whose offsets all lie
    /// below this offset (the smallest committed offset of the gating groups).
    pub gate: Option<i64>,
    /// Hard cap that no gate holds back: the oldest segments go while the partition would
    /// still hold at least this many bytes without them; -1 for none.
    pub max_bytes: i64,
}

impl RetentionPolicy {
    /// A policy that only removes segments below the log start offset.
    pub fn log_start_only(now_ms: i64) -> Self {
        RetentionPolicy {
            retention_ms: -1,
            retention_bytes: -1,
            now_ms,
            gate: None,
            max_bytes: -1,
        }
    }
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of `.log` files deleted.
    pub bytes_reclaimed: u64,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl Log {
    /// Deletes the oldest segments that `policy` allows, oldest first, stopping at the
    /// first one it keeps (Kafka's `deleteOldSegments`). When every segment may go, the
    /// active segment is rolled first so it can go too; an empty active segment is never
    /// deleted. Reads below the new log start offset return `OffsetOutOfRange`.
    ///
    /// # Errors
    /// `Io` (a failed flush also poisons the log); `Poisoned`; `Closed`.
    pub fn enforce_retention(&self, policy: &RetentionPolicy) -> Result<RetentionOutcome> {
        let _m = self.maintenance.lock();
        let _span =
            tracing::debug_span!("retention", topic = %self.topic, partition = self.partition)
                .entered();
        self.check_writable()?;
        let segs = self.snapshot();
        // Sizes first, then the end offset: a segment that grows after this is caught by
        // the size check under the writer lock below.
        let sizes: Vec<u64> = segs.iter().map(|s| s.size()).collect();
        let end = self.log_end_offset();
        let start = self.log_start_offset();
        let mut remaining: u64 = sizes.iter().sum();
        let mut doomed: Vec<(Arc<Segment>, u64)> = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            let size = sizes[i];
            if last && size == 0 {
                break;
            }
            let upper = segs.get(i + 1).map_or(end, |s| s.base);
            let rest = remaining.saturating_sub(size);
            let beyond = |limit: i64| limit >= 0 && rest >= limit as u64;
            // Read only where time retention looks (a file's modification time is a
            // system call).
            let max_ts = if policy.retention_ms >= 0 {
                seg.largest_timestamp()
            } else {
                -1
            };
            let expired = policy.retention_ms >= 0
                && max_ts >= 0
                && policy.now_ms.saturating_sub(max_ts) > policy.retention_ms;
            let gated = policy.gate.is_some_and(|g| upper > g);
            let delete = upper <= start
                || beyond(policy.max_bytes)
                || (!gated && (expired || beyond(policy.retention_bytes)));
            if !delete {
                break;
            }
            remaining = rest;
            doomed.push((seg.clone(), size));
        }
        let mut outcome = RetentionOutcome {
            log_start_offset: start,
            ..RetentionOutcome::default()
        };
        if doomed.is_empty() {
            return Ok(outcome);
        }
        self.touch()?;
        let mut fl = self.flush_state.lock();
        {
            let mut w = self.writer.lock();
            // Judged without the writer lock: a segment that grew since may not go (only
            // the last one can grow), and the active one only if nothing was appended.
            doomed.retain(|(s, size)| s.size() == *size);
            if let Some(k) = doomed.iter().position(|(s, _)| Arc::ptr_eq(s, &w.active)) {
                doomed.truncate(k + 1);
                if self.log_end_offset() == end {
                    // Every segment goes: roll so the active one can go too (as Kafka does).
                    self.roll_locked(&mut w, end)?;
                } else {
                    doomed.truncate(k);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(outcome);
        }
        // Everything below the new log start must be durable before the start is saved
        // (else a crash could truncate below it and later appends would be hidden), and
        // after a roll the durable point must name the new active segment.
        self.sync_locked(&mut fl)?;
        // `doomed` is a prefix of the segment list (rolls only add at the end), so the
        // first kept segment follows it; the roll above made sure there is one.
        let next = self
            .snapshot()
            .get(doomed.len())
            .map_or(self.log_end_offset(), |s| s.base);
        // Re-read under the flush lock, which `advance_log_start` holds too.
        let start = self.log_start_offset();
        let new_start = start.max(next);
        if new_start > start {
            self.write_log_start(new_start)?;
            self.log_start
                .store(new_start, std::sync::atomic::Ordering::Release);
        }
        // The durable point must carry the new log start before any file goes, or
        // recovery would see flushed segments missing.
        self.writer.lock().dir_dirty = true;
        self.sync_locked(&mut fl)?;
        self.record_in_both_slots()?;
        drop(fl);
        // `doomed` is a prefix of the list (checked by base, so this is linear).
        let last_doomed = doomed.last().map_or(i64::MIN, |(s, _)| s.base);
        {
            let mut segs = self.segments.write();
            let list: Vec<Arc<Segment>> = segs
                .iter()
                .filter(|s| s.base > last_doomed)
                .cloned()
                .collect();
            *segs = Arc::new(list);
        }
        self.writer
            .lock()
            .unflushed
            .retain(|s| s.base > last_doomed);
        // Oldest first, stopping at a failure: what stays on disk (found again by the
        // next open, below the log start) is a run of segments that follow each other,
        // up to the first kept one. (A crash before the directory fsync below may keep
        // any of these unlinks without the others; the open lets such a gap pass, as it
        // lies below the log start recorded before them.)
        for (seg, size) in &doomed {
            seg.remove_files(self.fs.as_ref(), false)?;
            outcome.segments_deleted += 1;
            outcome.bytes_reclaimed += size;
        }
        if !doomed.is_empty() {
            // Snapshots before the first segment left can no longer be rebuilt from.
            let first = self.snapshot().first().map_or(i64::MAX, |s| s.base);
            self.remove_producer_snapshots(|o| o < first)?;
        }
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            // Never retried: the next pass must not fsync again as if this one counted.
            let e = Error::io(format!("fsync directory {}", self.dir.display()), e);
            self.poison_with(e.to_string());
            return Err(e);
        }
        outcome.log_start_offset = new_start;
        if outcome.segments_deleted > 0 {
            tracing::info!(
                "{}: retention deleted {} segments ({} bytes); log start offset {new_start}",
                self.dir.display(),
                outcome.segments_deleted,
                outcome.bytes_reclaimed
            );
        }
        Ok(outcome)
    }

    /// Writes the log start offset checkpoint atomically. A failed fsync poisons the
    /// log; a failed write, create or rename (ENOSPC) changed nothing on disk and does
    /// not: the caller has not moved the start yet, and a full disk must not stop the
    /// appends (and the retention that frees space) once space returns.
    pub(super) fn write_log_start(&self, offset: i64) -> Result<()> {
        let text = super::checkpoint::recovery_point_text(&self.topic, self.partition, offset);
        let file = super::checkpoint::LOG_START_FILE;
        self.write_file_or_poison(file, text.as_bytes(), "write", false)
    }
}
