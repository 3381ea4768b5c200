//! Kafka RecordBatch v2 (magic 2): encoding, validation and zero-copy decoding.
//!
//! Layout (big-endian), all offsets derived from the field before:
//!
//! | off | field | type |
//! |---|---|---|
//! | 0 | baseOffset | i64 |
//! | 8 | batchLength (bytes after this field) | i32 |
//! | 12 | partitionLeaderEpoch (not in the CRC) | i32 |
//! | 16 | magic = 2 | i8 |
//! | 17 | crc: CRC-32C over [21, end) | u32 |
//! | 21 | attributes: codec bits 0-2, LogAppendTime bit 3, transactional bit 4, control bit 5, delete horizon bit 6 | i16 |
//! | 23 | lastOffsetDelta | i32 |
//! | 27 | baseTimestamp | i64 |
//! | 35 | maxTimestamp | i64 |
//! | 43 | producerId | i64 |
//! | 51 | producerEpoch | i16 |
//! | 53 | baseSequence | i32 |
//! | 57 | recordsCount | i32 |
//! | 61 | records: raw, or one compressed blob to the end of the batch | |
//!
//! A record is: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint (-1 = null), key, valueLength varint (-1 = null), value, headerCount
//! varint, then per header keyLength varint + UTF-8 key, valueLength varint (-1 = null) +
//! value.

mod builder;
mod control;
mod decode;
mod header;
mod records;

pub(crate) use builder::rebuild_batch;
pub use builder::{BatchBuilder, EncodedBatch};
pub use control::{ControlRecord, ControlRecordType, control_batch};
pub use decode::{Batch, BatchIter, DEFAULT_MAX_DECOMPRESSED_BYTES, DecodeOptions, batches};
pub use header::{BatchHeader, TimestampType, compute_crc, peek_size, validate};
pub(crate) use header::{add_sequence, set_base_sequence, write_crc};
pub use records::{RecordIter, validate_records};
pub(crate) use records::{
    check_offset_delta, check_timestamp, decode_headers, record_spans, record_spans_fast,
    scan_records,
};

/// Offset of `baseOffset`.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Offset of `batchLength`.
pub const BATCH_LENGTH_OFFSET: usize = BASE_OFFSET_OFFSET + 8;
/// Offset of `partitionLeaderEpoch`.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = BATCH_LENGTH_OFFSET + 4;
/// Offset of `magic`.
pub const MAGIC_OFFSET: usize = PARTITION_LEADER_EPOCH_OFFSET + 4;
/// Offset of `crc`.
pub const CRC_OFFSET: usize = MAGIC_OFFSET + 1;
/// Offset of `attributes`; the CRC covers everything from here to the end.
pub const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of `lastOffsetDelta`.
pub const LAST_OFFSET_DELTA_OFFSET: usize = ATTRIBUTES_OFFSET + 2;
/// Offset of `baseTimestamp`.
pub const BASE_TIMESTAMP_OFFSET: usize = LAST_OFFSET_DELTA_OFFSET + 4;
/// Offset of `maxTimestamp`.
pub const MAX_TIMESTAMP_OFFSET: usize = BASE_TIMESTAMP_OFFSET + 8;
/// Offset of `producerId`.
pub const PRODUCER_ID_OFFSET: usize = MAX_TIMESTAMP_OFFSET + 8;
/// Offset of `producerEpoch`.
pub const PRODUCER_EPOCH_OFFSET: usize = PRODUCER_ID_OFFSET + 8;
/// Offset of `baseSequence`.
pub const BASE_SEQUENCE_OFFSET: usize = PRODUCER_EPOCH_OFFSET + 2;
/// Offset of `recordsCount`.
pub const RECORDS_COUNT_OFFSET: usize = BASE_SEQUENCE_OFFSET + 4;
/// Offset of the first record; also the size of an empty batch (61).
pub const RECORDS_OFFSET: usize = RECORDS_COUNT_OFFSET + 4;
/// Kafka's `RECORD_BATCH_OVERHEAD`: the smallest valid batch.
pub const RECORD_BATCH_OVERHEAD: usize = RECORDS_OFFSET;
/// Kafka's `LOG_OVERHEAD`: baseOffset + batchLength, the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = BATCH_LENGTH_OFFSET + 4;
/// The only batch format streamlog reads and writes.
pub const MAGIC_V2: i8 = 2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// Attribute bit 6: `baseTimestamp` is the delete horizon the cleaner set (KIP-534).
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

#[cfg(test)]
mod tests;
