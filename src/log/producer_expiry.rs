//! What a log tells of its producers beyond appends: forgetting idle ones (and those
//! of an adopted log), and the epochs it holds for one.
//!
//! Forgetting idle producers (Kafka's `producer.id.expiration.ms`): the state of a
//! producer id that has not written for that long, and has no open transaction, is
//! dropped, so a store whose producers come and go does not remember them forever.

use std::sync::atomic::Ordering;

use super::Log;
use super::checkpoint::DurablePoint;
use super::segment::file_name;
use crate::error::Result;

impl Log {
    /// Forgets the producers whose last batch is older than `max_age_ms` by this log's
    /// clock and that have no open transaction (see the module docs). A batch such a
    /// producer sends later is accepted at any sequence, as a new producer's. Returns how
    /// many were forgotten. Takes the append lock.
    pub fn expire_producers(&self, max_age_ms: i64) -> usize {
        let now = self.config.clock.now_ms();
        self.writer.lock().producers.expire(now, max_age_ms)
    }

    /// Forgets every producer without an open transaction, durably. For a log adopted
    /// from elsewhere (another store's directories, a Kafka cluster's): its producers
    /// can never send here, and one of this store's with the same id would be taken for
    /// one of them (its first batch answered as a duplicate of theirs, its records
    /// dropped, or refused as out of order). Returns how many were forgotten.
    ///
    /// The state left is the snapshot at the base of a new active segment (rolled to if
    /// the active one holds data), synced, and the log flushed, the recovery point
    /// moved to it: a rebuild after a crash starts only from a snapshot at a
    /// segment base at or below the recovery point, and from an older one it would
    /// replay the forgotten producers' batches again.
    ///
    /// # Errors
    /// `Io` if the roll, the snapshot or the flush fails (a failed fsync poisons);
    /// `Poisoned`; `Closed`.
    pub(crate) fn forget_adopted_producers(&self) -> Result<usize> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        // Done whatever is remembered now: a clean open of a directory without a
        // snapshot at its end starts empty, while a rebuild after a crash would replay
        // producers from an older snapshot.
        let forgotten = w.producers.forget_all_but_open();
        self.touch()?;
        let base = self.next_offset.load(Ordering::Acquire);
        if w.active.size() > 0 {
            self.roll_locked(&mut w, base)?;
        }
        let name = file_name(base, "snapshot");
        let bytes = w.producers.encode_snapshot();
        self.write_file_or_poison(&name, &bytes, "write the producer snapshot", false)?;
        drop(w);
        self.flush()?;
        // The flush leaves the recovery point behind when it cannot write it short of
        // an fsync (ENOSPC), and moves nothing with nothing to sync: here it must move.
        let mut fl = self.flush_state.lock();
        if fl.recovery_point < base {
            // A durable position at the new base first: an open trusts a recovery
            // point only with one at or past it (a directory without one, whose flush
            // had nothing to sync, has none). Everything below it is synced: by the
            // flush, or before the directory was closed clean.
            let point = {
                let w = self.writer.lock();
                DurablePoint {
                    segment_base: w.active.base,
                    position: w.active.size(),
                    next_offset: self.log_end_offset(),
                    log_start: self.log_start_offset(),
                }
            };
            *self.durable_pending.lock() = Some(point);
            self.record_pending()?;
            self.write_recovery_point_steps(base).map_err(|(step, e)| {
                if step.is_fsync() {
                    self.poison_data_synced(e.to_string());
                }
                e
            })?;
            fl.recovery_point = base;
            fl.point_on_disk = true;
        }
        Ok(forgotten)
    }
}

impl Log {
    /// The epoch this log holds for `producer_id` (of its latest batch or marker), if it
    /// remembers the producer. Takes the append lock.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.writer.lock().producers.epoch_of(producer_id)
    }

    /// The coordinator epoch of `producer_id`'s last marker this log holds (-1 for
    /// none, or a producer it does not remember): a marker from a lower one is refused.
    pub fn marker_coordinator_epoch(&self, producer_id: i64) -> i32 {
        self.writer
            .lock()
            .producers
            .coordinator_epoch_of(producer_id)
            .unwrap_or(-1)
    }

    /// The epochs this log holds for each of `producer_ids` it remembers, under one
    /// hold of the append lock.
    pub fn producer_epochs(&self, producer_ids: &[i64]) -> Vec<(i64, i16)> {
        let w = self.writer.lock();
        producer_ids
            .iter()
            .filter_map(|&id| Some((id, w.producers.epoch_of(id)?)))
            .collect()
    }
}
