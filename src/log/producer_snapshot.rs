//! Kafka's producer snapshot file format (`<offset>.snapshot`, ProducerSnapshot v1):
//! the producer state below an offset, one 46-byte entry per producer with its epoch,
//! its last batch, the coordinator epoch of its last marker and the first offset of its
//! open transaction.
//!
//! | off | field | type |
//! |---|---|---|
//! | 0 | version = 1 | i16 |
//! | 2 | CRC-32C of [6, end) | u32 |
//! | 6 | entry count | i32 |
//! | 10 | entries | |
//!
//! An entry: producerId i64, producerEpoch i16, lastSequence i32 (-1: known by its
//! epoch only), lastOffset i64, offsetDelta i32, timestamp i64, coordinatorEpoch i32
//! (-1: no marker yet), currentTxnFirstOffset i64 (-1: no open transaction).

use super::AppendInfo;
use super::producer_state::{ProducerBatch, ProducerEntry, ProducerStates};

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
/// `Timestamp` (i64): the producer's time (Kafka's `lastTimestamp`): its last batch's
/// max timestamp, or its last marker's time if later. A batch loaded from a snapshot
/// takes it as its max timestamp, as in Kafka.
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
            // A producer known by its epoch only: Kafka's "no sequence" (-1) entry. The
            // time is the producer's (its last batch's, or its last marker's if later),
            // as Kafka writes `lastTimestamp`: its expiry counts from it.
            let timestamp = e.last_timestamp;
            let (last_seq, last_offset, delta) = e.batches.back().map_or((-1, -1, 0), |b| {
                let delta = (b.appended.last_offset - b.appended.base_offset) as i32;
                (b.last_seq, b.appended.last_offset, delta)
            });
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&last_seq.to_be_bytes());
            out.extend_from_slice(&last_offset.to_be_bytes());
            out.extend_from_slice(&delta.to_be_bytes());
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_CRC_FROM..]);
        out[2..SNAPSHOT_CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a `.snapshot` file; `None` if it is not a whole, CRC-valid version 1 file
    /// whose entries make sense (offsets in `0..end`, deltas not negative, one entry per
    /// producer): the caller then starts from an older snapshot, or no state.
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
            let coordinator_epoch = i32_at(COORD_EPOCH_AT);
            let txn_first_offset = match i64_at(TXN_FIRST_OFFSET_AT) {
                -1 => None,
                first if (0..end).contains(&first) => Some(first),
                _ => return None,
            };
            if pid < 0 || states.producers.contains_key(&pid) {
                return None;
            }
            let mut entry = ProducerEntry::new(epoch);
            entry.last_timestamp = timestamp;
            entry.coordinator_epoch = coordinator_epoch;
            entry.txn_first_offset = txn_first_offset;
            if let Some(first) = txn_first_offset
                && states.open_txns.insert(first, pid).is_some()
            {
                return None; // two transactions cannot start at one offset
            }
            if last_seq < 0 {
                states.producers.insert(pid, entry);
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
                    record_count: delta.checked_add(1)?,
                    segment_base: -1,
                    position: 0,
                },
                located: false,
            };
            entry.batches.push_back(batch);
            states.producers.insert(pid, entry);
        }
        Some(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::format::batch::BatchHeader;
    use crate::log::producer_state::Verdict;
    use crate::log::producer_state::tests::{header, info};

    fn txn_header(pid: i64, epoch: i16, seq: i32) -> BatchHeader {
        let mut b = crate::format::BatchBuilder::new()
            .producer(pid, epoch, seq)
            .transactional(true);
        b.push(0, None::<&[u8]>, Some(b"v"), &[]).unwrap();
        BatchHeader::parse(&b.finish().unwrap()).unwrap()
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

    /// A CRC-valid entry whose offset delta is `i32::MAX` (no batch holds that many
    /// records) overflowed the record count: a panic at open in a debug build.
    #[test]
    fn an_entry_with_the_largest_offset_delta_is_refused() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 1);
        s.record(&h, info(&h, 10, 1_000));
        let mut bytes = s.encode_snapshot();
        let e = SNAPSHOT_HEADER;
        bytes[e + LAST_OFFSET_AT..e + LAST_OFFSET_AT + 8]
            .copy_from_slice(&(1i64 << 31).to_be_bytes());
        bytes[e + DELTA_AT..e + DELTA_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[SNAPSHOT_CRC_FROM..]);
        bytes[2..SNAPSHOT_CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        assert!(ProducerStates::decode_snapshot(&bytes, 1 << 32).is_none());
    }

    #[test]
    fn a_producer_whose_batches_were_truncated_away_keeps_its_epoch() {
        let mut s = ProducerStates::default();
        let h = header(7, 4, 0, 1);
        s.record(&h, info(&h, 10, 0));
        s.truncate_to(5, &ProducerStates::default());
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

    #[test]
    fn open_transactions_and_coordinator_epochs_survive_a_snapshot() {
        let mut s = ProducerStates::default();
        let h = txn_header(7, 2, 0);
        s.record(&h, info(&h, 10, 0));
        s.record_marker(9, 0, 4, 11, -1);
        let h = txn_header(9, 0, 0);
        s.record(&h, info(&h, 12, 0));
        let bytes = s.encode_snapshot();
        // Producer 7's entry (ids in order): coordinator epoch -1 (no marker yet),
        // currentTxnFirstOffset 10.
        let e = &bytes[SNAPSHOT_HEADER..SNAPSHOT_HEADER + SNAPSHOT_ENTRY];
        assert_eq!(
            &e[COORD_EPOCH_AT..TXN_FIRST_OFFSET_AT],
            &(-1i32).to_be_bytes()
        );
        assert_eq!(&e[TXN_FIRST_OFFSET_AT..], &10i64.to_be_bytes());
        let e = &bytes[SNAPSHOT_HEADER + SNAPSHOT_ENTRY..];
        assert_eq!(&e[COORD_EPOCH_AT..TXN_FIRST_OFFSET_AT], &4i32.to_be_bytes());
        assert_eq!(&e[TXN_FIRST_OFFSET_AT..], &12i64.to_be_bytes());
        let back = ProducerStates::decode_snapshot(&bytes, 13).unwrap();
        assert_eq!(back.open_transactions(), [(10, 7), (12, 9)]);
        assert_eq!(back.first_open_offset(), Some(10));
        assert!(matches!(
            back.check_marker(9, 0, 3).unwrap_err(),
            Error::InvalidTxnState { producer_id: 9, .. }
        ));
        // A transaction said to start at or past the snapshot's offset: refused.
        assert!(ProducerStates::decode_snapshot(&bytes, 12).is_none());
    }
}
