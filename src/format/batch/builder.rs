//! Encoding: the batch builder, the cleaner's re-encoding of kept records, and the
//! well-formed-by-construction [`EncodedBatch`].

use super::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, BASE_SEQUENCE_OFFSET, BASE_TIMESTAMP_OFFSET,
    BATCH_LENGTH_OFFSET, BatchHeader, CONTROL_BIT, DELETE_HORIZON_BIT, LAST_OFFSET_DELTA_OFFSET,
    LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MAX_TIMESTAMP_OFFSET, PARTITION_LEADER_EPOCH_OFFSET,
    PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, RECORDS_COUNT_OFFSET, RECORDS_OFFSET,
    TRANSACTIONAL_BIT, TimestampType, write_crc,
};
use crate::error::{Error, Result};
use crate::format::compression::{self, Compression};
use crate::format::record::{Header, Record};
use crate::format::varint;

/// Builds one v2 batch, encoding each record straight into the batch buffer.
///
/// ```
/// use streamlog::format::{Batch, BatchBuilder, Compression};
/// let mut b = BatchBuilder::new().compression(Compression::Lz4);
/// b.push(1_700_000_000_000, Some(b"user-7"), Some(b"{\"page\":\"home\"}"), &[])?;
/// let batch = Batch::parse(b.finish()?.into())?;
/// let rec = batch.records()?.next().unwrap()?;
/// assert_eq!(rec.key.as_deref(), Some(&b"user-7"[..]));
/// # Ok::<(), streamlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// The lowest record timestamp (meaningful once a record is pushed).
    min_timestamp: i64,
    /// The lowest timestamp a record carries (not -1); `i64::MAX` while none does.
    oldest_timestamp: i64,
    compression: Compression,
    level: Option<i32>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    pub(super) control: bool,
    partition_leader_epoch: i32,
    /// `base_timestamp` was set before the first record (the cleaner's delete horizon).
    preset_base: bool,
    /// See [`compress_only_if_smaller`](Self::compress_only_if_smaller).
    only_if_smaller: bool,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// The most [`with_capacity`](Self::with_capacity) reserves: 64 MiB.
    pub const MAX_RESERVED_BYTES: usize = 64 << 20;

    /// An empty builder: no compression, no producer id, CreateTime, leader epoch 0.
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// As [`new`](Self::new), reserving `bytes` for the uncompressed batch up front (e.g.
    /// the producer's `batch_size`), so the buffer is not regrown while records are pushed.
    /// At most [`MAX_RESERVED_BYTES`](Self::MAX_RESERVED_BYTES) are reserved (a hint, not
    /// a limit: the buffer grows past it as records are pushed).
    pub fn with_capacity(bytes: usize) -> Self {
        let reserved = bytes.clamp(RECORDS_OFFSET, Self::MAX_RESERVED_BYTES);
        let mut buf = Vec::with_capacity(reserved);
        buf.resize(RECORDS_OFFSET, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
            min_timestamp: -1,
            oldest_timestamp: i64::MAX,
            compression: Compression::None,
            level: None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            preset_base: false,
            only_if_smaller: false,
        }
    }

    /// Writes the batch uncompressed when compressing it would not make it smaller
    /// (incompressible data: random bytes, or already compressed ones), as the format
    /// allows per batch; readers see the codec in each batch's attributes. Default =
    /// false (always the codec set by [`compression`](Self::compression)).
    #[must_use]
    pub fn compress_only_if_smaller(mut self, yes: bool) -> Self {
        self.only_if_smaller = yes;
        self
    }

    /// The codec applied by [`finish`](Self::finish). Default = none.
    #[must_use]
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// The codec's level (gzip 0-9, zstd 1-22; ignored by snappy and lz4). Default =
    /// Kafka's (gzip 6, zstd 3).
    #[must_use]
    pub fn compression_level(mut self, level: Option<i32>) -> Self {
        self.level = level;
        self
    }

    /// Producer id, epoch and the sequence of the first record (idempotence).
    /// Default = -1, -1, -1 (none).
    #[must_use]
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// As [`producer`](Self::producer), on a builder already holding records (the
    /// producer learns a batch's first sequence when the batch closes).
    pub(crate) fn set_producer(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }

    /// The sequence of the first record (-1: none).
    pub(crate) fn base_sequence(&self) -> i32 {
        self.base_sequence
    }

    /// Marks the batch transactional (attributes bit 4). Default = false.
    #[must_use]
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// The partition leader epoch written in the header. Default = 0.
    #[must_use]
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were finished uncompressed.
    pub fn uncompressed_size(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the builder's buffer has allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Lets go of the buffer's allocation past `bytes` (never below the batch so far).
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        self.buf.shrink_to(bytes);
    }

    /// The bytes a record would add to the uncompressed batch.
    pub fn record_size(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> usize {
        let body = self.body_len(self.count, timestamp, key, value, headers);
        varint::varint_len(body as i32) + body
    }

    fn body_len(
        &self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> usize {
        fn field(b: Option<&[u8]>) -> usize {
            match b {
                None => 1,
                Some(b) => varint::varint_len(b.len() as i32) + b.len(),
            }
        }
        let base = if self.count == 0 && !self.preset_base {
            timestamp
        } else {
            self.base_timestamp
        };
        let mut n = 1
            + varint::varlong_len(timestamp.wrapping_sub(base))
            + varint::varint_len(offset_delta)
            + field(key)
            + field(value)
            + varint::varint_len(headers.len() as i32);
        for h in headers {
            n += field(Some(h.key.as_bytes())) + field(h.value.as_deref());
        }
        n
    }

    /// Appends a record with the next offset delta.
    ///
    /// # Errors
    /// `InvalidArgument` if the batch already holds `i32::MAX` records or a field is
    /// longer than `i32::MAX` bytes.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<()> {
        self.push_at(self.count, timestamp, key, value, headers)
    }

    /// Appends a record with an explicit offset delta (the cleaner keeps original offsets).
    fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<()> {
        let too_long = |name: &'static str| Error::InvalidArgument {
            name,
            reason: "longer than i32::MAX bytes".into(),
        };
        if self.count == i32::MAX {
            return Err(Error::InvalidArgument {
                name: "records",
                reason: "a batch holds at most i32::MAX records".into(),
            });
        }
        if key.is_some_and(|k| k.len() > i32::MAX as usize) {
            return Err(too_long("key"));
        }
        if value.is_some_and(|v| v.len() > i32::MAX as usize) {
            return Err(too_long("value"));
        }
        if headers.len() > i32::MAX as usize
            || headers.iter().any(|h| {
                h.key.len() > i32::MAX as usize
                    || h.value
                        .as_ref()
                        .is_some_and(|v| v.len() > i32::MAX as usize)
            })
        {
            return Err(too_long("headers"));
        }
        let body = self.body_len(offset_delta, timestamp, key, value, headers);
        if body > i32::MAX as usize {
            return Err(too_long("record"));
        }
        if self.count == 0 {
            if !self.preset_base {
                self.base_timestamp = timestamp;
            }
            self.max_timestamp = timestamp;
            self.min_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.min_timestamp = self.min_timestamp.min(timestamp);
        if timestamp >= 0 {
            self.oldest_timestamp = self.oldest_timestamp.min(timestamp);
        }
        let buf = &mut self.buf;
        // Room for the record, and for the whole word a varint is stored as.
        buf.reserve(body + 5 + 8);
        varint::put_varint(buf, body as i32);
        buf.push(0); // attributes
        varint::put_varlong(buf, timestamp.wrapping_sub(self.base_timestamp));
        varint::put_varint(buf, offset_delta);
        varint::put_varint(buf, key.map_or(-1, |k| k.len() as i32));
        if let Some(k) = key {
            buf.extend_from_slice(k);
        }
        put_field(buf, value);
        varint::put_varint(buf, headers.len() as i32);
        for h in headers {
            put_field(buf, Some(h.key.as_bytes()));
            put_field(buf, h.value.as_deref());
        }
        self.count += 1;
        Ok(())
    }

    /// Appends `record` (its `offset` is ignored).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_record(&mut self, record: &Record) -> Result<()> {
        self.push(
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )
    }

    /// Compresses the records (once) and writes the header and CRC. The base offset is 0;
    /// the log assigns the real one at append.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty batch; `UnsupportedCodec` if the codec is compiled out.
    pub fn build(self) -> Result<EncodedBatch> {
        let records_len = self.buf.len().saturating_sub(RECORDS_OFFSET);
        let (min_timestamp, oldest_timestamp) = (self.min_timestamp, self.oldest_timestamp);
        let max_timestamp = self.max_timestamp;
        let bytes = self.finish()?;
        let compressed = BatchHeader::parse(&bytes)?.compression()? != Compression::None;
        Ok(EncodedBatch {
            bytes,
            decompressed_len: compressed.then_some(records_len),
            min_timestamp,
            oldest_timestamp,
            max_timestamp,
        })
    }

    /// As [`build`](Self::build), returning the plain bytes.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn finish(self) -> Result<Vec<u8>> {
        if self.count == 0 {
            return Err(Error::InvalidArgument {
                name: "records",
                reason: "a batch needs at least one record".into(),
            });
        }
        let last_delta = self.count - 1;
        self.encode(0, last_delta, 0, None)
    }

    /// Compresses the records and writes header and CRC with the given base offset, last
    /// offset delta, extra attribute bits and (if set) max timestamp.
    fn encode(
        self,
        base_offset: i64,
        last_offset_delta: i32,
        extra_attributes: i16,
        max_timestamp: Option<i64>,
    ) -> Result<Vec<u8>> {
        // An empty batch (kept by the cleaner to hold an offset range) is never compressed.
        let mut codec = if self.count == 0 {
            Compression::None
        } else {
            self.compression
        };
        let mut out = if codec == Compression::None {
            self.buf
        } else {
            let mut out = Vec::with_capacity(RECORDS_OFFSET + self.buf.len() / 2);
            out.resize(RECORDS_OFFSET, 0);
            compression::compress(codec, self.level, &self.buf[RECORDS_OFFSET..], &mut out)?;
            if self.only_if_smaller && out.len() >= self.buf.len() {
                codec = Compression::None;
                self.buf
            } else {
                out
            }
        };
        let mut attributes = i16::from(codec.id()) | extra_attributes;
        if self.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        if self.control {
            attributes |= CONTROL_BIT;
        }
        let len = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| Error::InvalidArgument {
            name: "records",
            reason: "the batch is larger than i32::MAX bytes".into(),
        })?;
        let max_timestamp = max_timestamp.unwrap_or(self.max_timestamp);
        let h = &mut out[..RECORDS_OFFSET];
        h[BASE_OFFSET_OFFSET..BATCH_LENGTH_OFFSET].copy_from_slice(&base_offset.to_be_bytes());
        h[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET].copy_from_slice(&len.to_be_bytes());
        h[PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        h[MAGIC_OFFSET] = MAGIC_V2 as u8;
        h[ATTRIBUTES_OFFSET..LAST_OFFSET_DELTA_OFFSET].copy_from_slice(&attributes.to_be_bytes());
        h[LAST_OFFSET_DELTA_OFFSET..BASE_TIMESTAMP_OFFSET]
            .copy_from_slice(&last_offset_delta.to_be_bytes());
        h[BASE_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET]
            .copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[MAX_TIMESTAMP_OFFSET..PRODUCER_ID_OFFSET].copy_from_slice(&max_timestamp.to_be_bytes());
        h[PRODUCER_ID_OFFSET..PRODUCER_EPOCH_OFFSET]
            .copy_from_slice(&self.producer_id.to_be_bytes());
        h[PRODUCER_EPOCH_OFFSET..BASE_SEQUENCE_OFFSET]
            .copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[BASE_SEQUENCE_OFFSET..RECORDS_COUNT_OFFSET]
            .copy_from_slice(&self.base_sequence.to_be_bytes());
        h[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&self.count.to_be_bytes());
        write_crc(&mut out);
        Ok(out)
    }
}

/// Re-encodes the records the cleaner keeps from the batch `orig` (Kafka's
/// `MemoryRecords.filterTo`): same base offset and last offset (so offsets are
/// preserved even when records are gone), codec, timestamp type, producer fields and
/// leader epoch; each record keeps its offset, timestamp, key, value and headers.
/// With `delete_horizon`, attribute bit 6 is set and `baseTimestamp` becomes the horizon
/// (record timestamp deltas are rebased, so record timestamps are unchanged). `kept`
/// may be empty: the batch then only holds its offset range.
///
/// # Errors
/// `UnsupportedCodec` if the batch's codec is compiled out; `InvalidArgument` if a
/// record's offset lies outside the batch.
pub(crate) fn rebuild_batch(
    orig: &BatchHeader,
    kept: &[Record],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>> {
    let size: usize = kept
        .iter()
        .map(|r| {
            32 + r.key.as_ref().map_or(0, |k| k.len())
                + r.value.as_ref().map_or(0, |v| v.len())
                + r.headers
                    .iter()
                    .map(|h| 8 + h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                    .sum::<usize>()
        })
        .sum();
    let mut b = BatchBuilder::with_capacity(RECORDS_OFFSET + size)
        .compression(orig.compression()?)
        .producer(orig.producer_id, orig.producer_epoch, orig.base_sequence)
        .transactional(orig.is_transactional())
        .partition_leader_epoch(orig.partition_leader_epoch);
    b.control = orig.is_control();
    b.base_timestamp = delete_horizon.unwrap_or(orig.base_timestamp);
    b.preset_base = true;
    let mut extra = orig.attributes & 0x08; // the timestamp type
    if delete_horizon.is_some() || orig.has_delete_horizon() {
        extra |= DELETE_HORIZON_BIT;
    }
    for r in kept {
        let delta = r
            .offset
            .checked_sub(orig.base_offset)
            .filter(|d| (0..=i64::from(orig.last_offset_delta)).contains(d))
            .ok_or_else(|| Error::InvalidArgument {
                name: "offset",
                reason: format!(
                    "record offset {} is outside its batch {}..={}",
                    r.offset,
                    orig.base_offset,
                    orig.last_offset()
                ),
            })?;
        b.push_at(
            delta as i32,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        )?;
    }
    // Under LogAppendTime the batch's max timestamp is the append time; keep it. Under
    // CreateTime it is the largest kept timestamp (the original's if nothing is kept).
    let max_ts = if orig.timestamp_type() == TimestampType::LogAppendTime || kept.is_empty() {
        Some(orig.max_timestamp)
    } else {
        None
    };
    b.encode(orig.base_offset, orig.last_offset_delta, extra, max_ts)
}

/// A batch made by [`BatchBuilder::build`]: well formed by construction (header, CRC,
/// records with offset deltas 0..n), so `Log::append_encoded` need not decode its records
/// again. Its bytes cannot be changed from outside the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    bytes: Vec<u8>,
    /// For a compressed batch, the size of its records once decompressed.
    decompressed_len: Option<usize>,
    /// Its lowest record timestamp.
    min_timestamp: i64,
    /// Its lowest record timestamp other than -1 (`i64::MAX` if every record has -1).
    oldest_timestamp: i64,
    /// Its highest record timestamp.
    max_timestamp: i64,
}

impl EncodedBatch {
    /// The batch bytes (the base offset is the one assigned by the last append, or 0).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a built batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes, for sending elsewhere.
    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    /// For a compressed batch, the size of its records section once decompressed (what
    /// a reader's [`DecodeOptions::max_decompressed_bytes`] is compared with); `None`
    /// for an uncompressed batch.
    ///
    /// [`DecodeOptions::max_decompressed_bytes`]: super::DecodeOptions::max_decompressed_bytes
    pub fn decompressed_len(&self) -> Option<usize> {
        self.decompressed_len
    }

    /// Its lowest record timestamp.
    pub fn min_timestamp(&self) -> i64 {
        self.min_timestamp
    }

    /// Its lowest record timestamp other than -1 ("none"), as the log's
    /// `timestamp_before_max_ms` check reads it; `i64::MAX` if no record carries one.
    pub(crate) fn oldest_timestamp(&self) -> i64 {
        self.oldest_timestamp
    }

    /// Its highest record timestamp.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

fn put_field(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint::put_varint(buf, -1),
        Some(b) => {
            varint::put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}
