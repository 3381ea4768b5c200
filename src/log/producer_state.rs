//! Producer state: what the log remembers of each idempotent producer's recent batches,
//! to append a batch re-sent after an error once, and to refuse sequences that skip or
//! go back and epochs that were fenced (Kafka's `ProducerStateManager`).
//!
//! Per producer id the log keeps its epoch and its last five batches (first and last
//! sequence, and where each was appended). A batch of a known producer:
//! - with a lower epoch is refused (`InvalidProducerEpoch`);
//! - with the same epoch and the sequence range of a remembered batch is a duplicate:
//!   it is not appended again, and the offsets of the original are returned;
//! - with the same epoch must start right after the last sequence (wrapping from
//!   `i32::MAX` to 0), and with a higher epoch at sequence 0, else `OutOfOrderSequence`.
//!
//! A producer the log does not know is accepted at any sequence (it may be new, or its
//! state may have been lost), as Kafka does. Batches without a producer id (-1) are
//! never checked.
//!
//! Transactions (Kafka's `currentTxnFirstOffset`): a producer's first transactional
//! batch opens its transaction at that batch's base offset; its COMMIT or ABORT marker
//! closes it. While it is open, a batch of that producer without the transactional
//! attribute is refused (`InvalidTxnState`). A marker with an epoch below the
//! producer's is refused (`InvalidProducerEpoch`); one with a higher epoch raises it
//! (fencing the older producer's later batches); one from a coordinator epoch below the
//! last marker's is refused (`InvalidTxnState`). Open transactions are kept ordered by
//! their first offset: the first one bounds the last stable offset.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::AppendInfo;
use crate::error::{Error, Result};
use crate::format::batch::BatchHeader;

/// How many batches per producer the log remembers (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, and the producer's `max_in_flight_requests` limit).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// A batch of an idempotent producer, as remembered: its sequences and where it was
/// appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) appended: AppendInfo,
    /// Whether `appended.segment_base` and `position` are known (not for a batch loaded
    /// from a snapshot, which records offsets only).
    pub(crate) located: bool,
}

/// One producer id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProducerEntry {
    pub(super) epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    pub(super) batches: VecDeque<ProducerBatch>,
    /// The coordinator epoch of the producer's last marker (-1: none yet).
    pub(super) coordinator_epoch: i32,
    /// The first offset of the producer's open transaction.
    pub(super) txn_first_offset: Option<i64>,
    /// The max timestamp of its last batch, or its last marker's time if later (-1: not
    /// known yet), for expiry (Kafka's `lastTimestamp`).
    pub(super) last_timestamp: i64,
}

impl ProducerEntry {
    pub(super) fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    /// A new epoch forgets the batches of the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// A transaction a marker closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// The marker's offset.
    pub(crate) last_offset: i64,
}

/// What the check of a batch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Append it (and then [`ProducerStates::record`] it).
    Append,
    /// It was appended before: this is where.
    Duplicate(ProducerBatch),
}

/// The last sequence of a batch: `base + delta`, wrapping from `i32::MAX` to 0 as
/// Kafka's sequences do.
pub(crate) fn last_sequence(base: i32, delta: i32) -> i32 {
    let sum = i64::from(base) + i64::from(delta);
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

/// The sequence after `last`.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// The state of every producer that wrote to one partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerStates {
    pub(super) producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: first offset -> producer id (kept in step with the entries'
    /// `txn_first_offset`).
    pub(super) open_txns: BTreeMap<i64, i64>,
}

impl ProducerStates {
    /// Decides what to do with a batch about to be appended.
    ///
    /// # Errors
    /// `InvalidProducerEpoch` for an epoch below the producer's; `OutOfOrderSequence`
    /// for a sequence that does not follow the producer's last one.
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<Verdict> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(Verdict::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return Ok(Verdict::Append);
        };
        if h.producer_epoch < entry.epoch {
            return Err(Error::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current: entry.epoch,
            });
        }
        let last = last_sequence(h.base_sequence, h.last_offset_delta);
        let expected = if h.producer_epoch > entry.epoch {
            0
        } else {
            // The newest match: an older one with the same sequences (remembered from
            // a snapshot after the log had forgotten the producer and took them again)
            // may lie below the log start.
            if let Some(b) = entry
                .batches
                .iter()
                .rev()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
            {
                return Ok(Verdict::Duplicate(*b));
            }
            match entry.batches.back() {
                Some(b) => next_sequence(b.last_seq),
                // The epoch is known, its batches are not (truncated away, a snapshot
                // entry without one, or a marker raised it): any sequence continues it.
                None => return Self::check_txn(h, entry).map(|()| Verdict::Append),
            }
        };
        if h.base_sequence != expected {
            return Err(Error::OutOfOrderSequence {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                expected,
                found: h.base_sequence,
            });
        }
        Self::check_txn(h, entry)?;
        Ok(Verdict::Append)
    }

    /// A producer with an open transaction writes only transactional batches.
    fn check_txn(h: &BatchHeader, entry: &ProducerEntry) -> Result<()> {
        match entry.txn_first_offset {
            Some(first) if !h.is_transactional() => Err(Error::InvalidTxnState {
                producer_id: h.producer_id,
                reason: format!(
                    "a batch without the transactional attribute while the producer's \
                     transaction from offset {first} is open (end it with a marker first)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Remembers a batch appended as `appended` says (call after [`check`](Self::check)
    /// said `Append` and the write succeeded).
    pub(crate) fn record(&mut self, h: &BatchHeader, appended: AppendInfo) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry::new(h.producer_epoch));
        entry.set_epoch(h.producer_epoch);
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(appended.base_offset);
            self.open_txns.insert(appended.base_offset, h.producer_id);
        }
        entry.last_timestamp = appended.max_timestamp;
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(ProducerBatch {
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
            appended,
            located: true,
        });
    }

    /// Whether no producer is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Remembers a batch read from the log at open (no checks: it is what the log holds).
    pub(crate) fn replay(&mut self, h: &BatchHeader) {
        let appended = AppendInfo {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            record_count: h.records_count,
            segment_base: -1,
            position: 0,
        };
        self.record(h, appended);
        if let Some(b) = self
            .producers
            .get_mut(&h.producer_id)
            .and_then(|e| e.batches.back_mut())
        {
            b.located = false;
        }
    }

    /// Forgets batches at or past `end` (the log was truncated there): a batch re-sent
    /// after it is appended again, never answered with offsets that no longer exist.
    /// Epochs are kept. The open transactions become those of `rebuilt` (the state
    /// replayed from a snapshot up to `end`: markers past `end` are gone, so the
    /// transactions they closed are open again); coordinator epochs keep their maximum.
    pub(crate) fn truncate_to(&mut self, end: i64, rebuilt: &ProducerStates) {
        // Entries stay (with their epochs: a fenced producer stays fenced) even with no
        // batch left.
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.appended.last_offset < end);
            entry.txn_first_offset = None;
        }
        for (pid, r) in &rebuilt.producers {
            let entry = self
                .producers
                .entry(*pid)
                .or_insert_with(|| ProducerEntry::new(r.epoch));
            // Every batch remembered was past the cut, but the log below it holds
            // earlier ones (a state loaded from a snapshot remembers only each
            // producer's last batch): those from the replay, so that a re-sent one is
            // still a duplicate and a sequence gap still refused.
            if entry.batches.is_empty() && entry.epoch == r.epoch {
                entry.batches = r.batches.clone();
            }
            entry.txn_first_offset = r.txn_first_offset;
            entry.coordinator_epoch = entry.coordinator_epoch.max(r.coordinator_epoch);
        }
        self.open_txns = rebuilt.open_txns.clone();
    }

    /// Checks an end-transaction marker of `producer_id` before it is appended.
    ///
    /// # Errors
    /// `InvalidProducerEpoch` for an epoch below the producer's; `InvalidTxnState` for a
    /// coordinator epoch below that of the producer's last marker.
    pub(crate) fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if epoch < entry.epoch {
            return Err(Error::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(Error::InvalidTxnState {
                producer_id,
                reason: format!(
                    "a marker from coordinator epoch {coordinator_epoch}, older than the \
                     last marker's {} (the coordinator was fenced)",
                    entry.coordinator_epoch
                ),
            });
        }
        Ok(())
    }

    /// Records a marker appended at `offset` with time `timestamp` (checked by
    /// [`check_marker`](Self::check_marker), or read from the log): the producer's epoch
    /// rises to the marker's, its time to the marker's (as Kafka's producer state does:
    /// a producer is remembered for the expiration after its last marker too, also the
    /// epoch a fencing marker gave it), and its open transaction, if any, is closed and
    /// returned.
    pub(crate) fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch));
        if epoch > entry.epoch {
            entry.set_epoch(epoch);
        }
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        let first = entry.txn_first_offset.take()?;
        self.open_txns.remove(&first);
        Some(CompletedTxn {
            producer_id,
            first_offset: first,
            last_offset: offset,
        })
    }

    /// Forgets every remembered batch, keeping epochs and transactions (a compacted
    /// log's rebuilt state: its batches may not be the producers' last ones).
    pub(crate) fn forget_batches(&mut self) {
        for entry in self.producers.values_mut() {
            entry.batches.clear();
        }
    }

    /// The first offset of the earliest open transaction.
    pub(crate) fn first_open_offset(&self) -> Option<i64> {
        self.open_txns.keys().next().copied()
    }

    /// The open transactions, by first offset: (first offset, producer id).
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.open_txns.iter().map(|(&f, &p)| (f, p)).collect()
    }

    /// Forgets producers that have written nothing for `max_age_ms` (Kafka's
    /// `producer.id.expiration.ms`): their last batch's max timestamp (or marker's
    /// time) is that old, and no transaction of theirs is open. A producer whose time
    /// is not known (a marker without one) is given `now_ms` as its time. Returns how
    /// many were forgotten.
    pub(crate) fn expire(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            if e.last_timestamp < 0 {
                e.last_timestamp = now_ms;
            }
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < max_age_ms
        });
        before - self.producers.len()
    }

    /// Forgets every producer without an open transaction; returns how many.
    pub(crate) fn forget_all_but_open(&mut self) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.txn_first_offset.is_some());
        before - self.producers.len()
    }

    /// The largest producer id known, if any.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().max().copied()
    }

    /// The current epoch of `producer_id`, if known.
    pub(crate) fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// The coordinator epoch of `producer_id`'s last marker (-1: none), if remembered.
    pub(crate) fn coordinator_epoch_of(&self, producer_id: i64) -> Option<i32> {
        self.producers
            .get(&producer_id)
            .map(|e| e.coordinator_epoch)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The header of a batch of `records` records of producer `pid`.
    pub(in crate::log) fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        let mut b = crate::format::BatchBuilder::new().producer(pid, epoch, seq);
        for i in 0..records {
            b.push(i64::from(i), None::<&[u8]>, Some(b"v"), &[])
                .unwrap();
        }
        let encoded = b.finish().unwrap();
        BatchHeader::parse(&encoded).unwrap()
    }

    /// Where a batch with header `h` lands at `base` (with max timestamp `ts`).
    pub(in crate::log) fn info(h: &BatchHeader, base: i64, ts: i64) -> AppendInfo {
        AppendInfo {
            base_offset: base,
            last_offset: base + i64::from(h.last_offset_delta),
            max_timestamp: ts,
            record_count: h.records_count,
            segment_base: 0,
            position: 0,
        }
    }

    #[test]
    fn sequences_must_follow_and_duplicates_return_the_original() {
        let mut s = ProducerStates::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(s.check(&first).unwrap(), Verdict::Append);
        s.record(&first, info(&first, 100, 5));
        // The same batch again: the original's offsets.
        let Verdict::Duplicate(b) = s.check(&first).unwrap() else {
            panic!("not a duplicate");
        };
        assert_eq!(b.appended, info(&first, 100, 5));
        // Skipping a sequence, or going back to one not remembered, is refused.
        for seq in [4, 1] {
            let e = s.check(&header(7, 0, seq, 1)).unwrap_err();
            assert!(
                matches!(e, Error::OutOfOrderSequence { expected: 3, found, .. } if found == seq),
                "{e}"
            );
        }
        let next = header(7, 0, 3, 2);
        assert_eq!(s.check(&next).unwrap(), Verdict::Append);
        s.record(&next, info(&next, 103, 6));
        // Other producers and batches without a producer are independent.
        assert_eq!(s.check(&header(8, 0, 42, 1)).unwrap(), Verdict::Append);
        assert_eq!(s.check(&header(-1, -1, -1, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn a_new_epoch_starts_at_zero_and_fences_the_old_one() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 1);
        s.record(&h, info(&h, 0, 0));
        let e = s.check(&header(7, 1, 1, 1)).unwrap_err();
        assert!(
            matches!(e, Error::OutOfOrderSequence { expected: 0, .. }),
            "{e}"
        );
        let bumped = header(7, 1, 0, 1);
        assert_eq!(s.check(&bumped).unwrap(), Verdict::Append);
        s.record(&bumped, info(&bumped, 1, 0));
        let e = s.check(&header(7, 0, 1, 1)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidProducerEpoch {
                    epoch: 0,
                    current: 1,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            let h = header(7, 0, i, 1);
            assert_eq!(s.check(&h).unwrap(), Verdict::Append);
            s.record(&h, info(&h, i64::from(i), 0));
        }
        // Batch 0 is forgotten: re-sent, it is out of order rather than a duplicate.
        assert!(s.check(&header(7, 0, 0, 1)).is_err());
        for i in 1..6 {
            assert!(matches!(
                s.check(&header(7, 0, i, 1)).unwrap(),
                Verdict::Duplicate(_)
            ));
        }
    }

    #[test]
    fn sequences_wrap_from_max_to_zero() {
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 2), 1);
        let mut s = ProducerStates::default();
        let h = header(7, 0, i32::MAX - 1, 2);
        s.record(&h, info(&h, 0, 0));
        let e = s.check(&header(7, 0, 1, 1)).unwrap_err();
        assert!(
            matches!(e, Error::OutOfOrderSequence { expected: 0, .. }),
            "{e}"
        );
        assert_eq!(s.check(&header(7, 0, 0, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn truncation_forgets_batches_past_the_new_end() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 2);
        s.record(&a, info(&a, 0, 0));
        let b = header(7, 0, 2, 2);
        s.record(&b, info(&b, 2, 0));
        s.truncate_to(2, &ProducerStates::default());
        // `b` is gone: sent again it is appended again (it follows `a`).
        assert_eq!(s.check(&b).unwrap(), Verdict::Append);
        s.truncate_to(0, &ProducerStates::default());
        // Nothing left of the producer: any sequence is accepted.
        assert_eq!(s.check(&header(7, 0, 9, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn truncation_past_every_remembered_batch_takes_the_batches_below_the_cut() {
        // Loaded from a snapshot: only the producer's last batch (2..=3) is known.
        let mut s = ProducerStates::default();
        let b = header(7, 0, 2, 2);
        s.record(&b, info(&b, 2, 0));
        // The replay of the log up to the cut found the batch before it.
        let mut rebuilt = ProducerStates::default();
        let a = header(7, 0, 0, 2);
        rebuilt.replay(&a);
        s.truncate_to(2, &rebuilt);
        // `a` re-sent is a duplicate, and a sequence past `a`'s end is a gap.
        assert!(matches!(s.check(&a).unwrap(), Verdict::Duplicate(_)));
        assert!(matches!(
            s.check(&header(7, 0, 5, 1)),
            Err(Error::OutOfOrderSequence { expected: 2, .. })
        ));
        assert_eq!(s.check(&b).unwrap(), Verdict::Append);
    }

    #[test]
    fn a_duplicate_is_answered_with_the_newest_batch_of_its_sequences() {
        // The same sequences twice: remembered from a snapshot at 0, taken again at 20
        // after the log had forgotten the producer (found by the log_ops fuzz target).
        let mut s = ProducerStates::default();
        let b = header(7, 0, 9, 3);
        s.record(&b, info(&b, 0, 0));
        s.record(&b, info(&b, 20, 0));
        let Verdict::Duplicate(d) = s.check(&b).unwrap() else {
            panic!("not a duplicate")
        };
        assert_eq!(d.appended.base_offset, 20);
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, transactional: bool) -> BatchHeader {
        let mut b = crate::format::BatchBuilder::new()
            .producer(pid, epoch, seq)
            .transactional(transactional);
        b.push(0, None::<&[u8]>, Some(b"v"), &[]).unwrap();
        BatchHeader::parse(&b.finish().unwrap()).unwrap()
    }

    #[test]
    fn a_transactional_batch_opens_a_transaction_and_a_marker_closes_it() {
        let mut s = ProducerStates::default();
        let a = txn_header(7, 0, 0, true);
        s.record(&a, info(&a, 10, 0));
        let b = txn_header(7, 0, 1, true);
        s.record(&b, info(&b, 12, 0));
        let c = txn_header(8, 0, 0, true);
        s.record(&c, info(&c, 11, 0));
        // Opened by each producer's first batch; ordered by first offset.
        assert_eq!(s.open_transactions(), [(10, 7), (11, 8)]);
        assert_eq!(s.first_open_offset(), Some(10));
        // While open, the producer writes transactional batches only.
        let plain = txn_header(7, 0, 2, false);
        assert!(matches!(
            s.check(&plain).unwrap_err(),
            Error::InvalidTxnState { producer_id: 7, .. }
        ));
        assert_eq!(
            s.check(&txn_header(7, 0, 2, true)).unwrap(),
            Verdict::Append
        );
        let done = s.record_marker(7, 0, 0, 13, -1).unwrap();
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 7,
                first_offset: 10,
                last_offset: 13
            }
        );
        assert_eq!(s.first_open_offset(), Some(11));
        assert_eq!(s.check(&plain).unwrap(), Verdict::Append);
        // A marker without an open transaction closes nothing.
        assert_eq!(s.record_marker(7, 0, 0, 14, -1), None);
    }

    #[test]
    fn markers_fence_older_epochs_and_older_coordinators() {
        let mut s = ProducerStates::default();
        let a = txn_header(7, 1, 0, true);
        s.record(&a, info(&a, 0, 0));
        assert!(matches!(
            s.check_marker(7, 0, 0).unwrap_err(),
            Error::InvalidProducerEpoch {
                epoch: 0,
                current: 1,
                ..
            }
        ));
        // A higher epoch (a new producer with the same transactional id) raises it.
        s.check_marker(7, 2, 5).unwrap();
        assert!(s.record_marker(7, 2, 5, 1, -1).is_some());
        assert!(matches!(
            s.check(&txn_header(7, 1, 1, true)).unwrap_err(),
            Error::InvalidProducerEpoch { current: 2, .. }
        ));
        // The new epoch goes on at any sequence (its batches are not known yet).
        assert_eq!(
            s.check(&txn_header(7, 2, 0, true)).unwrap(),
            Verdict::Append
        );
        assert!(matches!(
            s.check_marker(7, 2, 4).unwrap_err(),
            Error::InvalidTxnState { .. }
        ));
        s.check_marker(7, 2, 5).unwrap();
    }

    #[test]
    fn truncation_takes_the_open_transactions_of_the_rebuilt_state() {
        let mut s = ProducerStates::default();
        let a = txn_header(7, 0, 0, true);
        s.record(&a, info(&a, 0, 0));
        s.record_marker(7, 0, 3, 1, -1);
        let mut rebuilt = ProducerStates::default();
        rebuilt.record(&a, info(&a, 0, 0));
        s.truncate_to(1, &rebuilt);
        assert_eq!(s.open_transactions(), [(0, 7)]);
        // The coordinator epoch seen stays (fencing is not undone).
        assert!(s.check_marker(7, 0, 2).is_err());
    }
}
