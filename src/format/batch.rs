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

use std::ops::Range;

use bytes::Bytes;

use super::compression::{self, Compression};
use super::record::{Header, Record};
use super::varint::{self, VarintError};
use crate::error::{Error, Result};

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
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Largest decompressed records section [`DecodeOptions::default`] accepts: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

/// How a batch's timestamps are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Each record carries the producer's timestamp.
    #[default]
    CreateTime,
    /// Every record reads as the batch's `maxTimestamp`, set by the log at append.
    LogAppendTime,
}

/// The 61-byte header of a v2 batch, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are Kafka's, documented in the module table
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header fields from the first 61 bytes of `buf`; checks nothing else.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < RECORD_BATCH_OVERHEAD {
            return Err(Error::invalid_batch(
                "batchLength",
                format!("{} bytes is less than the 61-byte batch header", buf.len()),
            ));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Bytes the whole batch occupies (`batchLength + 12`), if the length is sane.
    pub fn size(&self) -> Option<usize> {
        usize::try_from(self.batch_length)
            .ok()?
            .checked_add(LOG_OVERHEAD)
    }

    /// `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The codec, or `UnsupportedCodec` for ids 5-7.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attributes bit 5: the batch holds one control record (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Attributes bit 6: `baseTimestamp` is the cleaner's delete horizon.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
}

/// Reads `baseOffset` and the total batch size from the first 12 bytes of `buf`, without
/// validating anything else. `None` if fewer than 12 bytes are given.
pub fn peek_size(buf: &[u8]) -> Option<(i64, i64)> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some((
        be_i64(buf, BASE_OFFSET_OFFSET),
        i64::from(be_i32(buf, BATCH_LENGTH_OFFSET)) + LOG_OVERHEAD as i64,
    ))
}

/// CRC-32C of the bytes the batch CRC covers (`[21, end)`; empty if `batch` is shorter).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
}

/// Checks a whole batch (exactly one, `buf.len()` bytes): size, batchLength, magic and
/// CRC, in that order, then the header fields every batch must satisfy. Returns the
/// parsed header.
pub fn validate(buf: &[u8]) -> Result<BatchHeader> {
    let header = BatchHeader::parse(buf)?;
    if header.size() != Some(buf.len()) {
        return Err(Error::invalid_batch(
            "batchLength",
            format!(
                "declares {} bytes after the length field, but {} are present",
                header.batch_length,
                buf.len() - LOG_OVERHEAD
            ),
        ));
    }
    if header.magic != MAGIC_V2 {
        return Err(Error::invalid_batch(
            "magic",
            format!("{} is not supported; only magic 2 is", header.magic),
        ));
    }
    let actual = compute_crc(buf);
    if actual != header.crc {
        return Err(Error::invalid_batch(
            "crc",
            format!("stored {:#010x}, computed {actual:#010x}", header.crc),
        ));
    }
    if header.records_count < 0 {
        return Err(Error::invalid_batch(
            "recordsCount",
            format!("{} is negative", header.records_count),
        ));
    }
    if header.last_offset_delta < 0 {
        return Err(Error::invalid_batch(
            "lastOffsetDelta",
            format!("{} is negative", header.last_offset_delta),
        ));
    }
    if header.attributes as u16 & 0xff80 != 0 {
        return Err(Error::invalid_batch(
            "attributes",
            format!("reserved bits set in {:#06x}", header.attributes),
        ));
    }
    Ok(header)
}

/// Refuses a record timestamp below -1 (Kafka's `InvalidTimestampException`): -1 is
/// "no timestamp", anything lower is meaningless and breaks time retention and lookups.
pub(crate) fn check_timestamp(timestamp: i64) -> Result<()> {
    if timestamp < -1 {
        return Err(Error::InvalidArgument {
            name: "timestamp",
            reason: format!(
                "{timestamp} is below -1 (-1 means none; otherwise ms since the epoch)"
            ),
        });
    }
    Ok(())
}

/// Limits applied while decoding records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The largest decompressed records section accepted; a batch that would inflate past
    /// it is rejected before the memory is allocated. Default = 64 MiB.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// A validated record batch (size, magic and CRC checked) held as zero-copy [`Bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
    header: BatchHeader,
}

impl Batch {
    /// Validates `bytes` as exactly one batch (see [`validate`]).
    ///
    /// # Errors
    /// `InvalidBatch` naming the first field that is wrong.
    pub fn parse(bytes: Bytes) -> Result<Batch> {
        let header = validate(&bytes)?;
        Ok(Batch { bytes, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// First offset of the batch.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Last offset of the batch.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Decodes the records with [`DecodeOptions::default`].
    ///
    /// # Errors
    /// `UnsupportedCodec` if the codec is compiled out; `InvalidBatch` if the compressed
    /// data does not inflate within the limit. Record-level errors come from the iterator.
    pub fn records(&self) -> Result<RecordIter> {
        self.records_with(&DecodeOptions::default())
    }

    /// Decodes the records, decompressing once if the batch is compressed. For an
    /// uncompressed batch keys and values are slices of [`Batch::bytes`].
    ///
    /// # Errors
    /// As [`Batch::records`].
    pub fn records_with(&self, options: &DecodeOptions) -> Result<RecordIter> {
        let data = self.records_data(options)?;
        let log_append_time = match self.header.timestamp_type() {
            TimestampType::LogAppendTime => Some(self.header.max_timestamp),
            TimestampType::CreateTime => None,
        };
        Ok(RecordIter {
            data,
            pos: 0,
            remaining: self.header.records_count,
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time,
            failed: false,
        })
    }

    /// The records section: a slice of the batch, or its decompressed copy.
    pub(crate) fn records_data(&self, options: &DecodeOptions) -> Result<Bytes> {
        Ok(match self.header.compression()? {
            Compression::None => self.bytes.slice(RECORDS_OFFSET..),
            codec => Bytes::from(compression::decompress(
                codec,
                &self.bytes[RECORDS_OFFSET..],
                options.max_decompressed_bytes,
            )?),
        })
    }

    /// For a control batch, its marker; `None` for an ordinary batch.
    ///
    /// # Errors
    /// `InvalidBatch` if the control record is malformed.
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.header.is_control() {
            return Ok(None);
        }
        let mut records = self.records()?;
        let record = records.next().ok_or_else(|| {
            Error::invalid_batch("recordsCount", "a control batch holds no record")
        })??;
        ControlRecord::parse(&record).map(Some)
    }
}

/// Iterates the records of one batch. Yields an error (once, then stops) if a record is
/// malformed or the declared count does not consume the records section exactly.
#[derive(Debug)]
pub struct RecordIter {
    data: Bytes,
    pos: usize,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    failed: bool,
}

fn varint_err(field: &'static str) -> impl Fn(VarintError) -> Error {
    move |e| {
        Error::invalid_batch(
            field,
            match e {
                VarintError::Truncated => "the varint runs past the end of the record",
                VarintError::TooLong => "the varint is longer than its type allows",
            },
        )
    }
}

/// Where the fields of one record lie in the records section (absolute positions).
pub(crate) struct Spans {
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<Range<usize>>,
    pub(crate) value: Option<Range<usize>>,
    pub(crate) headers: Range<usize>,
    pub(crate) header_count: usize,
    pub(crate) end: usize,
}

/// Reads a length-prefixed field at `*pos` of `data`, not past `limit`.
#[inline]
fn field(
    data: &[u8],
    pos: &mut usize,
    limit: usize,
    name: &'static str,
) -> Result<Option<Range<usize>>> {
    let len = varint::read_varint(&data[..limit], pos).map_err(varint_err(name))?;
    if len < -1 {
        return Err(Error::invalid_batch(
            name,
            format!("length {len} is below -1"),
        ));
    }
    if len == -1 {
        return Ok(None);
    }
    let len = len as usize;
    if len > limit - *pos {
        return Err(Error::invalid_batch(
            name,
            format!("length {len} runs past the end of the record"),
        ));
    }
    let r = *pos..*pos + len;
    *pos += len;
    Ok(Some(r))
}

/// Validates the record at `start` and locates its fields, without allocating.
#[inline]
pub(crate) fn record_spans(data: &[u8], start: usize) -> Result<Spans> {
    let mut p = start;
    let len = varint::read_varint(data, &mut p).map_err(varint_err("length"))?;
    if len < 1 || len as usize > data.len() - p {
        return Err(Error::invalid_batch(
            "length",
            format!(
                "record length {len} does not fit the {} bytes left",
                data.len() - p
            ),
        ));
    }
    let end = p + len as usize;
    p += 1; // record attributes: unused by Kafka, always 0
    let body = &data[..end];
    let timestamp_delta =
        varint::read_varlong(body, &mut p).map_err(varint_err("timestampDelta"))?;
    let offset_delta = varint::read_varint(body, &mut p).map_err(varint_err("offsetDelta"))?;
    let key = field(data, &mut p, end, "keyLength")?;
    let value = field(data, &mut p, end, "valueLength")?;
    let count = varint::read_varint(body, &mut p).map_err(varint_err("headerCount"))?;
    if count < 0 {
        return Err(Error::invalid_batch(
            "headerCount",
            format!("{count} is negative"),
        ));
    }
    let headers_start = p;
    for _ in 0..count {
        let k = field(data, &mut p, end, "headerKeyLength")?.ok_or_else(|| {
            Error::invalid_batch("headerKeyLength", "a header key cannot be null")
        })?;
        if std::str::from_utf8(&data[k]).is_err() {
            return Err(Error::invalid_batch(
                "headerKey",
                "a header key is not valid UTF-8",
            ));
        }
        field(data, &mut p, end, "headerValueLength")?;
    }
    if p != end {
        return Err(Error::invalid_batch(
            "length",
            format!(
                "record declares {} bytes but its fields use {}",
                end - start,
                p - start
            ),
        ));
    }
    Ok(Spans {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: headers_start..end,
        header_count: count as usize,
        end,
    })
}

/// [`record_spans`] for the common record: every varint one or two bytes, no headers.
/// Accepts only what `record_spans` accepts; `None` means "ask `record_spans`" (which
/// decodes the rest, or names what is wrong).
#[inline(always)]
pub(crate) fn record_spans_fast(data: &[u8], start: usize) -> Option<Spans> {
    #[inline(always)]
    fn short(data: &[u8], p: &mut usize) -> Option<i32> {
        let b0 = *data.get(*p)?;
        let v = if b0 < 0x80 {
            *p += 1;
            u32::from(b0)
        } else {
            let b1 = *data.get(*p + 1)?;
            if b1 >= 0x80 {
                return None;
            }
            *p += 2;
            u32::from(b0 & 0x7f) | (u32::from(b1) << 7)
        };
        Some(((v >> 1) as i32) ^ -((v & 1) as i32))
    }
    #[inline(always)]
    fn field(data: &[u8], p: &mut usize) -> Option<Option<Range<usize>>> {
        let len = short(data, p)?;
        if len == -1 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        let end = p.checked_add(len).filter(|&e| e <= data.len())?;
        let r = *p..end;
        *p = end;
        Some(Some(r))
    }
    let mut p = start;
    let len = short(data, &mut p)?;
    let end = p.checked_add(usize::try_from(len).ok().filter(|&l| l >= 1)?)?;
    let body = data.get(..end)?;
    p += 1; // record attributes
    let timestamp_delta = i64::from(short(body, &mut p)?);
    let offset_delta = short(body, &mut p)?;
    let key = field(body, &mut p)?;
    let value = field(body, &mut p)?;
    if short(body, &mut p)? != 0 || p != end {
        return None;
    }
    Some(Spans {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: end..end,
        header_count: 0,
        end,
    })
}

/// Validates every record of a batch (decompressing once if needed) without building
/// them: fields well formed, UTF-8 header keys, the declared count consuming the records
/// exactly, and offset deltas 0, 1, 2, ... Returns the record count.
///
/// # Errors
/// `InvalidBatch` naming the first bad field; `UnsupportedCodec`.
/// `batch` is the whole batch and `h` its header, as returned by [`validate`].
pub fn validate_records(batch: &[u8], h: &BatchHeader, options: &DecodeOptions) -> Result<usize> {
    let Some(records) = batch.get(RECORDS_OFFSET..) else {
        return Err(Error::invalid_batch(
            "batchLength",
            "shorter than the 61-byte header",
        ));
    };
    let inflated;
    let data: &[u8] = match h.compression()? {
        Compression::None => records,
        codec => {
            inflated = compression::decompress(codec, records, options.max_decompressed_bytes)?;
            &inflated
        }
    };
    let mut pos = 0;
    for i in 0..h.records_count {
        if pos >= data.len() {
            return Err(Error::invalid_batch(
                "recordsCount",
                format!(
                    "{} records are declared but the batch holds {i}",
                    h.records_count
                ),
            ));
        }
        let s = record_spans(data, pos)?;
        if s.offset_delta != i {
            return Err(Error::invalid_batch(
                "offsetDelta",
                format!("record {i} has offset delta {}", s.offset_delta),
            ));
        }
        pos = s.end;
    }
    if pos != data.len() {
        return Err(Error::invalid_batch(
            "recordsCount",
            format!(
                "{} bytes remain after the declared records (incorrect declared batch size)",
                data.len() - pos
            ),
        ));
    }
    Ok(h.records_count as usize)
}

/// The headers of a record located by [`record_spans`] in `data`.
pub(crate) fn decode_headers(data: &Bytes, s: &Spans) -> Result<Vec<Header>> {
    let mut headers = Vec::with_capacity(s.header_count);
    let mut p = s.headers.start;
    for _ in 0..s.header_count {
        let k = field(data, &mut p, s.end, "headerKeyLength")?.ok_or_else(|| {
            Error::invalid_batch("headerKeyLength", "a header key cannot be null")
        })?;
        let key = std::str::from_utf8(&data[k])
            .map_err(|_| Error::invalid_batch("headerKey", "a header key is not valid UTF-8"))?
            .to_owned();
        let value = field(data, &mut p, s.end, "headerValueLength")?.map(|r| data.slice(r));
        headers.push(Header { key, value });
    }
    Ok(headers)
}

impl RecordIter {
    fn decode_one(&mut self) -> Result<Record> {
        let s = record_spans(&self.data, self.pos)?;
        let headers = decode_headers(&self.data, &s)?;
        self.pos = s.end;
        Ok(Record {
            offset: self.base_offset.wrapping_add(i64::from(s.offset_delta)),
            timestamp: self
                .log_append_time
                .unwrap_or(self.base_timestamp.wrapping_add(s.timestamp_delta)),
            key: s.key.map(|r| self.data.slice(r)),
            value: s.value.map(|r| self.data.slice(r)),
            headers,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.data.len() {
                self.failed = true;
                return Some(Err(Error::invalid_batch(
                    "recordsCount",
                    format!(
                        "{} bytes remain after the declared records (incorrect declared batch size)",
                        self.data.len() - self.pos
                    ),
                )));
            }
            return None;
        }
        if self.pos >= self.data.len() {
            self.failed = true;
            return Some(Err(Error::invalid_batch(
                "recordsCount",
                format!(
                    "{} more records are declared than the batch holds",
                    self.remaining
                ),
            )));
        }
        match self.decode_one() {
            Ok(r) => {
                self.remaining -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

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
    compression: Compression,
    level: Option<i32>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
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
    /// An empty builder: no compression, no producer id, CreateTime, leader epoch 0.
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// As [`new`](Self::new), reserving `bytes` for the uncompressed batch up front (e.g.
    /// the producer's `batch_size`), so the buffer is not regrown while records are pushed.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(RECORDS_OFFSET));
        buf.resize(RECORDS_OFFSET, 0);
        BatchBuilder {
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
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
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
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
        let bytes = self.finish()?;
        let compressed = BatchHeader::parse(&bytes)?.compression()? != Compression::None;
        Ok(EncodedBatch {
            bytes,
            decompressed_len: compressed.then_some(records_len),
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
    pub fn decompressed_len(&self) -> Option<usize> {
        self.decompressed_len
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

/// Recomputes and stores the CRC of a whole batch (after patching covered fields).
///
/// # Panics
/// Never for a `batch` of at least 61 bytes; callers check that first.
pub(crate) fn write_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
}

/// Kafka's control record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Type 0: a transaction was aborted.
    Abort,
    /// Type 1: a transaction was committed.
    Commit,
    /// Any other type (2-6 are KRaft's); carried as read.
    Other(i16),
}

impl ControlRecordType {
    fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(n) => n,
        }
    }
}

/// A decoded control record (transaction marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// COMMIT, ABORT or another type.
    pub kind: ControlRecordType,
    /// For COMMIT/ABORT: the transaction coordinator's epoch; `None` for other types.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    fn parse(record: &Record) -> Result<ControlRecord> {
        let key = record
            .key
            .as_deref()
            .filter(|k| k.len() >= 4)
            .ok_or_else(|| {
                Error::invalid_batch(
                    "key",
                    "a control record key needs version and type (4 bytes)",
                )
            })?;
        let version = be_i16(key, 0);
        if version != 0 {
            return Err(Error::invalid_batch(
                "key",
                format!("control key version {version} is unknown"),
            ));
        }
        let kind = match be_i16(key, 2) {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            n => ControlRecordType::Other(n),
        };
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let v = record.value.as_deref().filter(|v| v.len() >= 6).ok_or_else(|| {
                    Error::invalid_batch(
                        "value",
                        "an end-transaction marker needs version and coordinator epoch (6 bytes)",
                    )
                })?;
                Some(be_i32(v, 2))
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(ControlRecord {
            kind,
            coordinator_epoch,
        })
    }
}

/// Encodes an end-transaction marker batch (COMMIT or ABORT) as Kafka's
/// `MemoryRecords.writeEndTransactionalMarker` does: one record, no compression,
/// CreateTime, base sequence -1, attributes 0x30.
///
/// # Errors
/// `InvalidArgument` if `kind` is not COMMIT or ABORT.
pub fn control_batch(
    kind: ControlRecordType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Vec<u8>> {
    if !matches!(kind, ControlRecordType::Abort | ControlRecordType::Commit) {
        return Err(Error::InvalidArgument {
            name: "kind",
            reason: "only COMMIT and ABORT markers are written".into(),
        });
    }
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = BatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .transactional(true);
    b.control = true;
    b.push(timestamp, Some(&key), Some(&value), &[])?;
    b.finish()
}

/// Iterates back-to-back batches in `buf` (a `.log` file or a slice of one), validating
/// each. Stops after the first error.
pub fn batches(buf: Bytes) -> BatchIter {
    BatchIter {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`batches`]; yields `(position, batch)`.
#[derive(Debug)]
pub struct BatchIter {
    buf: Bytes,
    pos: usize,
    failed: bool,
}

impl Iterator for BatchIter {
    type Item = Result<(usize, Batch)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let size = match peek_size(rest) {
            Some((_, size))
                if size >= RECORD_BATCH_OVERHEAD as i64 && size as u64 <= rest.len() as u64 =>
            {
                size as usize
            }
            Some((_, size)) if size < RECORD_BATCH_OVERHEAD as i64 => {
                self.failed = true;
                return Some(Err(Error::invalid_batch(
                    "batchLength",
                    format!(
                        "batch at position {} declares {size} bytes, below the 61-byte minimum",
                        self.pos
                    ),
                )));
            }
            _ => {
                self.failed = true;
                return Some(Err(Error::invalid_batch(
                    "batchLength",
                    format!(
                        "batch at position {} runs past the end of the data ({} bytes left)",
                        self.pos,
                        rest.len()
                    ),
                )));
            }
        };
        let pos = self.pos;
        match Batch::parse(self.buf.slice(pos..pos + size)) {
            Ok(b) => {
                self.pos += size;
                Some(Ok((pos, b)))
            }
            Err(Error::InvalidBatch { field, reason }) => {
                self.failed = true;
                Some(Err(Error::invalid_batch(
                    field,
                    format!("batch at position {pos}: {reason}"),
                )))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const GOLDEN_TWO_RECORDS: &str = "0000000000000000 00000047 00000000 02 fc09c09e 0000 00000001 0000018bcfe56800 0000018bcfe56805 ffffffffffffffff ffff ffffffff 00000002 | 18 00 00 00 02 6b 02 76 02 02 68 02 31 | 10 00 0a 02 01 04 7676 00";
    const GOLDEN_COMMIT: &str = "0000000000000002 00000042 00000000 02 9d3d2237 0030 00000000 0000018bcfe5680a 0000018bcfe5680a 00000000000003e8 0003 ffffffff 00000001 | 20 00 00 00 08 00000001 0c 000000000007 00";

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn golden_two_record_batch_is_reproduced_byte_for_byte() {
        let mut b = BatchBuilder::new();
        b.push(
            1_700_000_000_000,
            Some(b"k"),
            Some(b"v"),
            &[Header::new("h", &b"1"[..])],
        )
        .unwrap();
        b.push(1_700_000_000_005, None, Some(b"vv"), &[]).unwrap();
        let bytes = b.finish().unwrap();
        assert_eq!(bytes, hex(GOLDEN_TWO_RECORDS));
        assert_eq!(bytes.len(), 83);
    }

    #[test]
    fn golden_two_record_batch_decodes() {
        let batch = Batch::parse(hex(GOLDEN_TWO_RECORDS).into()).unwrap();
        let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset, 0);
        assert_eq!(recs[0].timestamp, 1_700_000_000_000);
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[0].value.as_deref(), Some(&b"v"[..]));
        assert_eq!(recs[0].headers, vec![Header::new("h", &b"1"[..])]);
        assert_eq!(recs[1].offset, 1);
        assert_eq!(recs[1].timestamp, 1_700_000_000_005);
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[1].value.as_deref(), Some(&b"vv"[..]));
        assert_eq!(batch.last_offset(), 1);
    }

    #[test]
    fn golden_commit_marker_is_reproduced_byte_for_byte() {
        let mut bytes =
            control_batch(ControlRecordType::Commit, 1000, 3, 7, 1_700_000_000_010).unwrap();
        bytes[..8].copy_from_slice(&2i64.to_be_bytes()); // base offset is outside the CRC
        assert_eq!(bytes, hex(GOLDEN_COMMIT));
        assert_eq!(bytes.len(), 78);
        let batch = Batch::parse(bytes.into()).unwrap();
        assert!(batch.header().is_control() && batch.header().is_transactional());
        assert_eq!(
            batch.control_record().unwrap(),
            Some(ControlRecord {
                kind: ControlRecordType::Commit,
                coordinator_epoch: Some(7)
            })
        );
    }

    #[test]
    fn every_single_bit_flip_in_crc_covered_bytes_is_rejected() {
        let good = hex(GOLDEN_TWO_RECORDS);
        for i in ATTRIBUTES_OFFSET..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    Batch::parse(bad.into()).is_err(),
                    "flip at byte {i} bit {bit} accepted"
                );
            }
        }
    }

    #[test]
    fn malformed_headers_name_the_field() {
        let good = hex(GOLDEN_TWO_RECORDS);
        let field = |bytes: Vec<u8>| match Batch::parse(bytes.into()) {
            Err(Error::InvalidBatch { field, .. }) => field,
            other => panic!("expected InvalidBatch, got {other:?}"),
        };
        assert_eq!(field(good[..60].to_vec()), "batchLength");
        assert_eq!(field(good[..70].to_vec()), "batchLength");
        let mut m = good.clone();
        m[MAGIC_OFFSET] = 1;
        assert_eq!(field(m), "magic");
        let mut c = good.clone();
        c[CRC_OFFSET] ^= 1;
        assert_eq!(field(c), "crc");
        let mut n = good.clone();
        n[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&3i32.to_be_bytes());
        write_crc(&mut n);
        let err = Batch::parse(n.into())
            .unwrap()
            .records()
            .unwrap()
            .last()
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidBatch {
                    field: "recordsCount",
                    ..
                }
            ),
            "{err}"
        );
        let mut extra = good.clone();
        extra[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&1i32.to_be_bytes());
        write_crc(&mut extra);
        let results: Vec<_> = Batch::parse(extra.into())
            .unwrap()
            .records()
            .unwrap()
            .collect();
        assert_eq!(results.len(), 2);
        assert!(matches!(
            results[1],
            Err(Error::InvalidBatch {
                field: "recordsCount",
                ..
            })
        ));
    }

    #[test]
    fn record_fields_with_bad_lengths_are_errors() {
        // key length 100 in a record that has 10 bytes.
        let mut b = hex(GOLDEN_TWO_RECORDS);
        b[RECORDS_OFFSET + 4] = 0xc8; // zigzag(100) = 200 = 0xc8 0x01 -> truncated varint/length
        write_crc(&mut b);
        let err = Batch::parse(b.into())
            .unwrap()
            .records()
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidBatch { .. }), "{err}");
    }

    /// `compress_only_if_smaller`: compressible records keep the codec, incompressible
    /// ones are written uncompressed (and read back the same); without the option every
    /// batch keeps the codec. `decompressed_len` is the records section's size exactly
    /// when the batch is compressed.
    #[test]
    fn only_if_smaller_falls_back_for_incompressible_records() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let zeros = vec![0u8; 4000];
        for codec in Compression::ALL {
            for (value, fallback, want) in [
                (&zeros, true, codec),
                (&noise, true, Compression::None),
                (&noise, false, codec),
            ] {
                let build = || {
                    let mut b = BatchBuilder::new()
                        .compression(codec)
                        .compress_only_if_smaller(fallback);
                    b.push(7, Some(&b"k"[..]), Some(&value[..]), &[]).unwrap();
                    let records_len = b.uncompressed_size() - RECORDS_OFFSET;
                    (b.build().unwrap(), records_len)
                };
                let (built, records_len) = build();
                let batch = Batch::parse(built.as_bytes().to_vec().into()).unwrap();
                let got = batch.header().compression().unwrap();
                assert_eq!(got, want, "{codec}, fallback {fallback}");
                let expected_len = (got != Compression::None).then_some(records_len);
                assert_eq!(built.decompressed_len(), expected_len, "{codec}");
                let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
                assert_eq!(recs[0].value.as_deref(), Some(&value[..]), "{codec}");
            }
        }
    }

    #[test]
    fn compressed_batches_decode_for_every_codec() {
        for codec in Compression::ALL {
            let mut b = BatchBuilder::new().compression(codec);
            for i in 0..100 {
                b.push(
                    i,
                    Some(format!("key-{i}").as_bytes()),
                    Some(&[i as u8; 50]),
                    &[],
                )
                .unwrap();
            }
            let bytes = b.finish().unwrap();
            let batch = Batch::parse(bytes.into()).unwrap();
            assert_eq!(batch.header().compression().unwrap(), codec);
            let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
            assert_eq!(recs.len(), 100);
            assert_eq!(recs[42].key.as_deref(), Some(&b"key-42"[..]));
            assert_eq!(recs[42].value.as_deref(), Some(&[42u8; 50][..]));
            let tight = DecodeOptions {
                max_decompressed_bytes: 100,
            };
            if codec != Compression::None {
                assert!(
                    batch.records_with(&tight).is_err(),
                    "{codec} ignored the cap"
                );
            }
        }
    }

    #[test]
    fn uncompressed_values_are_zero_copy_slices() {
        let mut b = BatchBuilder::new();
        b.push(0, None, Some(b"hello"), &[]).unwrap();
        let batch = Batch::parse(b.finish().unwrap().into()).unwrap();
        let rec = batch.records().unwrap().next().unwrap().unwrap();
        let v = rec.value.unwrap();
        let base = batch.bytes().as_ptr() as usize;
        let p = v.as_ptr() as usize;
        assert!(
            p >= base && p + v.len() <= base + batch.size(),
            "value is not a slice of the batch"
        );
    }

    #[test]
    fn empty_builder_refuses_to_finish() {
        assert!(matches!(
            BatchBuilder::new().finish(),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

#[cfg(test)]
mod fast_spans_tests {
    use proptest::prelude::*;

    use super::*;

    fn same(a: &Spans, b: &Spans) -> bool {
        (
            a.timestamp_delta,
            a.offset_delta,
            &a.key,
            &a.value,
            a.header_count,
            a.end,
        ) == (
            b.timestamp_delta,
            b.offset_delta,
            &b.key,
            &b.value,
            b.header_count,
            b.end,
        ) && (a.header_count > 0 || a.headers.is_empty() == b.headers.is_empty())
    }

    /// Records as the builder writes them: small and large fields, nulls, headers.
    fn records() -> impl Strategy<Value = Vec<u8>> {
        let field = prop::option::of(prop::collection::vec(any::<u8>(), 0..300));
        let header = (
            "[a-z]{0,5}",
            prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        );
        let record = (
            -70_000i64..70_000,
            field.clone(),
            field,
            prop::collection::vec(header, 0..2),
        );
        prop::collection::vec(record, 1..6).prop_map(|recs| {
            let mut b = BatchBuilder::new();
            for (ts, k, v, hs) in recs {
                let hs: Vec<Header> = hs
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: k,
                        value: v.map(Bytes::from),
                    })
                    .collect();
                b.push(1_700_000_000_000 + ts, k.as_deref(), v.as_deref(), &hs)
                    .expect("push");
            }
            b.finish().expect("finish")[RECORDS_OFFSET..].to_vec()
        })
    }

    proptest! {
        /// Wherever the fast decoder answers, it answers as `record_spans` does; and it
        /// answers for the common record (short varints, no headers).
        #[test]
        fn fast_spans_agree_with_record_spans(data in records(), noise in any::<Vec<u8>>()) {
            let mut pos = 0;
            while pos < data.len() {
                let slow = record_spans(&data, pos).expect("built records decode");
                if let Some(fast) = record_spans_fast(&data, pos) {
                    prop_assert!(same(&fast, &slow));
                } else {
                    let short = |r: &Option<Range<usize>>| r.as_ref().is_none_or(|r| r.len() < 64);
                    prop_assert!(
                        slow.header_count > 0 || !short(&slow.key) || !short(&slow.value)
                            || slow.end - pos > 8000 || slow.timestamp_delta.abs() > 8000
                            || slow.offset_delta > 8000,
                        "the fast path declined a common record"
                    );
                }
                pos = slow.end;
            }
            // Arbitrary bytes: never accepted by the fast path alone.
            for start in 0..noise.len() {
                if let Some(fast) = record_spans_fast(&noise, start) {
                    let slow = record_spans(&noise, start);
                    prop_assert!(slow.is_ok_and(|s| same(&fast, &s)));
                }
            }
        }
    }
}
