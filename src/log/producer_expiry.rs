//! What a log tells of its producers beyond appends: forgetting idle ones (and those
//! of an adopted log), and the epochs it holds for one.
//!
//! Forgetting idle producers (Kafka's `producer.id.expiration.ms`): the state of a
//! producer id that has not written for that long, and has no open transaction, is
//! dropped, so a store whose producers come and go does not remember them forever.

use super::Log;

impl Log {
    /// Forgets the producers whose last batch is older than `max_age_ms` by this log's
    /// clock and that have no open transaction (see the module docs). A batch such a
    /// producer sends later is accepted at any sequence, as a new producer's. Returns how
    /// many were forgotten. Takes the append lock.
    pub fn expire_producers(&self, max_age_ms: i64) -> usize {
        let now = self.config.clock.now_ms();
        self.writer.lock().producers.expire(now, max_age_ms)
    }

    /// Forgets every producer without an open transaction, durably: the state left is
    /// written (synced) as the snapshot at the log end, which a reopen starts from.
    /// For a log adopted from elsewhere (another store's directories, a Kafka
    /// cluster's): its producers can never send here, and one of this store's with the
    /// same id would be taken for one of them (its first batch answered as a duplicate
    /// of theirs, its records dropped, or refused as out of order). Returns how many
    /// were forgotten.
    ///
    /// # Errors
    /// `Io` if the snapshot cannot be written.
    pub(crate) fn forget_adopted_producers(&self) -> crate::error::Result<usize> {
        let mut w = self.writer.lock();
        let forgotten = w.producers.forget_all_but_open();
        if forgotten > 0 {
            self.write_producer_snapshot(self.log_end_offset(), &w.producers)?;
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
