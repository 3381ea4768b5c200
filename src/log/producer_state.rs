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

use std::collections::{HashMap, VecDeque};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    batches: VecDeque<ProducerBatch>,
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
    producers: HashMap<i64, ProducerEntry>,
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
            if let Some(b) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
            {
                return Ok(Verdict::Duplicate(*b));
            }
            match entry.batches.back() {
                Some(b) => next_sequence(b.last_seq),
                // The epoch is known, its batches are not (truncated away, or a snapshot
                // entry without one): any sequence continues it.
                None => return Ok(Verdict::Append),
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
        Ok(Verdict::Append)
    }

    /// Remembers a batch appended as `appended` says (call after [`check`](Self::check)
    /// said `Append` and the write succeeded).
    pub(crate) fn record(&mut self, h: &BatchHeader, appended: AppendInfo) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
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
    /// Epochs are kept.
    pub(crate) fn truncate_to(&mut self, end: i64) {
        // Entries stay (with their epochs: a fenced producer stays fenced) even with no
        // batch left.
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.appended.last_offset < end);
        }
    }
}

/// Kafka's producer snapshot version.
const SNAPSHOT_VERSION: i16 = 1;
/// version (i16) + CRC (u32) + entry count (i32).
const SNAPSHOT_HEADER: usize = 2 + 4 + 4;
/// Where the CRC-32C starts (after the version and the CRC itself).
const SNAPSHOT_CRC_FROM: usize = 2 + 4;
// A snapshot entry's fields (big-endian), each after the one before.
/// `ProducerId` (i64).
const PID_AT: usize = 0;
/// `ProducerEpoch` (i16).
const EPOCH_AT: usize = PID_AT + 8;
/// `LastSequence` (i32; -1: the producer is known by its epoch only).
const LAST_SEQ_AT: usize = EPOCH_AT + 2;
/// `LastOffset` (i64).
const LAST_OFFSET_AT: usize = LAST_SEQ_AT + 4;
/// `OffsetDelta` (i32): last offset minus base offset of the last batch.
const DELTA_AT: usize = LAST_OFFSET_AT + 8;
/// `Timestamp` (i64): the last batch's max timestamp.
const TIMESTAMP_AT: usize = DELTA_AT + 4;
/// `CoordinatorEpoch` (i32; -1 without transactions).
const COORD_EPOCH_AT: usize = TIMESTAMP_AT + 8;
/// `CurrentTxnFirstOffset` (i64; -1 without an open transaction).
const TXN_FIRST_OFFSET_AT: usize = COORD_EPOCH_AT + 4;
/// One entry: 46 bytes.
const SNAPSHOT_ENTRY: usize = TXN_FIRST_OFFSET_AT + 8;

impl ProducerStates {
    /// Kafka's `.snapshot` file (ProducerSnapshot v1): every producer with its epoch and
    /// its last batch (Kafka keeps only the last one in a snapshot), in producer id order.
    pub(crate) fn encode_snapshot(&self) -> Vec<u8> {
        let mut entries: Vec<(&i64, &ProducerEntry)> = self.producers.iter().collect();
        entries.sort_by_key(|(pid, _)| **pid);
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER + entries.len() * SNAPSHOT_ENTRY);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        for (pid, e) in entries {
            // A producer known by its epoch only: Kafka's "no sequence" (-1) entry.
            let (last_seq, last_offset, delta, timestamp) =
                e.batches.back().map_or((-1, -1, 0, -1), |b| {
                    let delta = (b.appended.last_offset - b.appended.base_offset) as i32;
                    (
                        b.last_seq,
                        b.appended.last_offset,
                        delta,
                        b.appended.max_timestamp,
                    )
                });
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&last_seq.to_be_bytes());
            out.extend_from_slice(&last_offset.to_be_bytes());
            out.extend_from_slice(&delta.to_be_bytes());
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&(-1i32).to_be_bytes()); // no transaction coordinator
            out.extend_from_slice(&(-1i64).to_be_bytes()); // no open transaction
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_CRC_FROM..]);
        out[2..SNAPSHOT_CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a `.snapshot` file; `None` if it is not a whole, CRC-valid version 1 file
    /// whose entries make sense (offsets in `0..end`, deltas not negative): the caller
    /// then starts from no state, which accepts any sequence.
    /// Offsets must lie below `end` (the log end the snapshot is loaded for).
    pub(crate) fn decode_snapshot(bytes: &[u8], end: i64) -> Option<ProducerStates> {
        let be = |at: usize, n: usize| bytes.get(at..at + n);
        let version = i16::from_be_bytes(be(0, 2)?.try_into().ok()?);
        let crc = u32::from_be_bytes(be(2, 4)?.try_into().ok()?);
        let count = i32::from_be_bytes(be(6, 4)?.try_into().ok()?);
        let count = usize::try_from(count).ok()?;
        if version != SNAPSHOT_VERSION
            || bytes.len() != SNAPSHOT_HEADER.checked_add(count.checked_mul(SNAPSHOT_ENTRY)?)?
            || crc32c::crc32c(&bytes[SNAPSHOT_CRC_FROM..]) != crc
        {
            return None;
        }
        let mut states = ProducerStates::default();
        for e in bytes[SNAPSHOT_HEADER..].chunks_exact(SNAPSHOT_ENTRY) {
            let i64_at = |at: usize| i64::from_be_bytes(e[at..at + 8].try_into().expect("8"));
            let i32_at = |at: usize| i32::from_be_bytes(e[at..at + 4].try_into().expect("4"));
            let pid = i64_at(PID_AT);
            let epoch = i16::from_be_bytes(e[EPOCH_AT..LAST_SEQ_AT].try_into().expect("2"));
            let last_seq = i32_at(LAST_SEQ_AT);
            let last_offset = i64_at(LAST_OFFSET_AT);
            let delta = i32_at(DELTA_AT);
            let timestamp = i64_at(TIMESTAMP_AT);
            if pid < 0 {
                return None;
            }
            if last_seq < 0 {
                states.producers.insert(
                    pid,
                    ProducerEntry {
                        epoch,
                        batches: VecDeque::new(),
                    },
                );
                continue;
            }
            let base_offset = last_offset.checked_sub(i64::from(delta))?;
            if delta < 0 || base_offset < 0 || last_offset >= end {
                return None;
            }
            let first_seq = if last_seq >= delta {
                last_seq - delta
            } else {
                // Wrapped past i32::MAX.
                (i64::from(i32::MAX) + 1 + i64::from(last_seq) - i64::from(delta)) as i32
            };
            let batch = ProducerBatch {
                first_seq,
                last_seq,
                appended: AppendInfo {
                    base_offset,
                    last_offset,
                    max_timestamp: timestamp,
                    record_count: delta + 1,
                    segment_base: -1,
                    position: 0,
                },
                located: false,
            };
            states.producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches: VecDeque::from([batch]),
                },
            );
        }
        Some(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        let mut b = crate::format::BatchBuilder::new().producer(pid, epoch, seq);
        for i in 0..records {
            b.push(i64::from(i), None::<&[u8]>, Some(b"v"), &[])
                .unwrap();
        }
        let encoded = b.finish().unwrap();
        BatchHeader::parse(&encoded).unwrap()
    }

    /// Where a batch with header `h` lands at `base` (with max timestamp `ts`).
    fn info(h: &BatchHeader, base: i64, ts: i64) -> AppendInfo {
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
        s.truncate_to(2);
        // `b` is gone: sent again it is appended again (it follows `a`).
        assert_eq!(s.check(&b).unwrap(), Verdict::Append);
        s.truncate_to(0);
        // Nothing left of the producer: any sequence is accepted.
        assert_eq!(s.check(&header(7, 0, 9, 1)).unwrap(), Verdict::Append);
    }

    #[test]
    fn snapshots_are_kafkas_layout_and_keep_the_last_batch_per_producer() {
        let mut s = ProducerStates::default();
        for (pid, epoch, seq, n, base) in [(7, 2, 0, 3, 10), (7, 2, 3, 2, 13), (5, 0, 9, 1, 20)] {
            let h = header(pid, epoch, seq, n);
            s.record(&h, info(&h, base, 1_000 + base));
        }
        let bytes = s.encode_snapshot();
        assert_eq!(SNAPSHOT_ENTRY, 46);
        assert_eq!(bytes.len(), 10 + 2 * 46);
        assert_eq!(&bytes[..2], &[0, 1], "version 1");
        assert_eq!(&bytes[6..10], &[0, 0, 0, 2], "two producers");
        // The first entry is producer 5 (ids in order): pid, epoch, lastSeq, lastOffset,
        // offsetDelta, timestamp, coordinatorEpoch -1, currentTxnFirstOffset -1.
        let e = &bytes[10..56];
        assert_eq!(&e[..8], &5i64.to_be_bytes());
        assert_eq!(&e[8..10], &0i16.to_be_bytes());
        assert_eq!(&e[10..14], &9i32.to_be_bytes());
        assert_eq!(&e[14..22], &20i64.to_be_bytes());
        assert_eq!(&e[22..26], &0i32.to_be_bytes());
        assert_eq!(&e[26..34], &1_020i64.to_be_bytes());
        assert_eq!(&e[34..38], &(-1i32).to_be_bytes());
        assert_eq!(&e[38..46], &(-1i64).to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(bytes[2..6].try_into().unwrap()),
            crc32c::crc32c(&bytes[6..])
        );
        let back = ProducerStates::decode_snapshot(&bytes, 100).unwrap();
        // Producer 7's last batch (sequences 3..=4 at offsets 13..=14) is a duplicate;
        // its earlier batch is not remembered, as in Kafka.
        let Verdict::Duplicate(b) = back.check(&header(7, 2, 3, 2)).unwrap() else {
            panic!("not a duplicate after a snapshot");
        };
        assert_eq!((b.appended.base_offset, b.appended.last_offset), (13, 14));
        assert!(!b.located);
        assert_eq!(back.check(&header(7, 2, 5, 1)).unwrap(), Verdict::Append);
        assert!(
            back.check(&header(7, 1, 5, 1)).is_err(),
            "the epoch survives"
        );
        // Any damage: no state rather than wrong state.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(
                ProducerStates::decode_snapshot(&bad, 100).is_none(),
                "flip at {i} accepted"
            );
        }
        assert!(ProducerStates::decode_snapshot(&bytes[..bytes.len() - 1], 100).is_none());
        // Offsets past the log it is loaded for: refused.
        assert!(ProducerStates::decode_snapshot(&bytes, 14).is_none());
    }

    #[test]
    fn a_producer_whose_batches_were_truncated_away_keeps_its_epoch() {
        let mut s = ProducerStates::default();
        let h = header(7, 4, 0, 1);
        s.record(&h, info(&h, 10, 0));
        s.truncate_to(5);
        // Fenced stays fenced; the current epoch goes on at any sequence.
        assert!(matches!(
            s.check(&header(7, 3, 0, 1)).unwrap_err(),
            Error::InvalidProducerEpoch { current: 4, .. }
        ));
        assert_eq!(s.check(&header(7, 4, 8, 1)).unwrap(), Verdict::Append);
        // Kept across a snapshot as Kafka's epoch-only entry (lastSeq -1).
        let bytes = s.encode_snapshot();
        assert_eq!(&bytes[10 + 10..10 + 14], &(-1i32).to_be_bytes());
        let back = ProducerStates::decode_snapshot(&bytes, 5).unwrap();
        assert!(back.check(&header(7, 3, 0, 1)).is_err());
        assert_eq!(back.check(&header(7, 4, 8, 1)).unwrap(), Verdict::Append);
    }
}
