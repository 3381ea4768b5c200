//! The records of `__transaction_state`, in Kafka's schemas: `TransactionLogKey` v0
//! (the transactional id) and `TransactionLogValue` v0 (producer id and epoch, timeout,
//! status, partitions, timestamps). A null value is a tombstone.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::format::schema::{get_string, put_string};
use crate::topic::TopicPartition;

/// Kafka's `TransactionState` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// No transaction open (after init, or after a completed one).
    Empty,
    /// A transaction is open.
    Ongoing,
    /// Decided: commit. Every partition gets a COMMIT marker, also after a crash.
    PrepareCommit,
    /// Decided: abort.
    PrepareAbort,
    /// Every partition of the transaction has its COMMIT marker.
    CompleteCommit,
    /// Every partition of the transaction has its ABORT marker.
    CompleteAbort,
}

impl Status {
    fn id(self) -> i8 {
        match self {
            Status::Empty => 0,
            Status::Ongoing => 1,
            Status::PrepareCommit => 2,
            Status::PrepareAbort => 3,
            Status::CompleteCommit => 4,
            Status::CompleteAbort => 5,
        }
    }

    fn from_id(id: i8) -> Option<Status> {
        Some(match id {
            0 => Status::Empty,
            1 => Status::Ongoing,
            2 => Status::PrepareCommit,
            3 => Status::PrepareAbort,
            4 => Status::CompleteCommit,
            5 => Status::CompleteAbort,
            _ => return None,
        })
    }
}

/// One `TransactionLogValue`: a transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnRecord {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) status: Status,
    pub(crate) partitions: BTreeSet<TopicPartition>,
    pub(crate) last_update_ms: i64,
    pub(crate) start_ms: i64,
}

/// `TransactionLogKey` v0.
pub(crate) fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_string(&mut b, transactional_id);
    b.to_vec()
}

/// The transactional id of a `TransactionLogKey` v0.
pub(crate) fn decode_key(mut b: Bytes) -> Option<String> {
    if b.remaining() < 2 || b.get_i16() != 0 {
        return None;
    }
    let id = get_string(&mut b)?;
    b.is_empty().then_some(id)
}

/// `TransactionLogValue` v0; partitions grouped by topic, in order.
pub(crate) fn encode_value(r: &TxnRecord) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(r.producer_id);
    b.put_i16(r.producer_epoch);
    b.put_i32(r.timeout_ms);
    b.put_i8(r.status.id());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &r.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == tp.topic() => ps.push(tp.partition()),
            _ => topics.push((tp.topic(), vec![tp.partition()])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (topic, parts) in topics {
        put_string(&mut b, topic);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(p);
        }
    }
    b.put_i64(r.last_update_ms);
    b.put_i64(r.start_ms);
    b.to_vec()
}

/// A `TransactionLogValue` v0 (or v1, whose tagged fields are ignored); `None` if the
/// bytes are not one.
pub(crate) fn decode_value(mut b: Bytes) -> Option<TxnRecord> {
    let need = |b: &Bytes, n: usize| (b.remaining() >= n).then_some(());
    need(&b, 2 + 8 + 2 + 4 + 1 + 4)?;
    let version = b.get_i16();
    if version != 0 {
        // v1 is flexible (compact strings and arrays): not written by this store.
        return None;
    }
    let producer_id = b.get_i64();
    let producer_epoch = b.get_i16();
    let timeout_ms = b.get_i32();
    let status = Status::from_id(b.get_i8())?;
    let topics = b.get_i32();
    let mut partitions = BTreeSet::new();
    // -1: a null array (no partitions).
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut b)?;
        need(&b, 4)?;
        let n = b.get_i32();
        need(&b, usize::try_from(n).ok()?.checked_mul(4)?)?;
        for _ in 0..n {
            partitions.insert(TopicPartition::new(topic.as_str(), b.get_i32()));
        }
    }
    need(&b, 16)?;
    let last_update_ms = b.get_i64();
    let start_ms = b.get_i64();
    Some(TxnRecord {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms,
        start_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafkas_layout() {
        let r = TxnRecord {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            status: Status::PrepareCommit,
            partitions: [
                TopicPartition::new("a", 1),
                TopicPartition::new("a", 0),
                TopicPartition::new("b", 2),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 11,
            start_ms: 10,
        };
        let bytes = encode_value(&r);
        // version, pid, epoch, timeout, status, 2 topics: "a" [0, 1], "b" [2], times.
        let mut expected = Vec::new();
        expected.extend_from_slice(&0i16.to_be_bytes());
        expected.extend_from_slice(&7i64.to_be_bytes());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(2);
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 1, b'b', 0, 0, 0, 1, 0, 0, 0, 2]);
        expected.extend_from_slice(&11i64.to_be_bytes());
        expected.extend_from_slice(&10i64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(decode_value(Bytes::from(bytes)), Some(r));
        assert_eq!(
            decode_key(Bytes::from(encode_key("orders-app"))).as_deref(),
            Some("orders-app")
        );
        assert_eq!(encode_key("x"), [0, 0, 0, 1, b'x']);
    }

    #[test]
    fn damaged_values_are_none_not_panics() {
        let r = TxnRecord {
            producer_id: 1,
            producer_epoch: 0,
            timeout_ms: 1,
            status: Status::Ongoing,
            partitions: [TopicPartition::new("t", 0)].into_iter().collect(),
            last_update_ms: 0,
            start_ms: 0,
        };
        let bytes = encode_value(&r);
        for cut in 0..bytes.len() {
            assert_eq!(decode_value(Bytes::copy_from_slice(&bytes[..cut])), None);
        }
        let mut bad = bytes.clone();
        bad[16] = 9; // status
        assert_eq!(decode_value(Bytes::from(bad)), None);
        let mut huge = bytes;
        huge[19..23].copy_from_slice(&i32::MAX.to_be_bytes()); // topic count
        assert_eq!(decode_value(Bytes::from(huge)), None);
    }
}
