//! The records section: locating and validating each record's fields (with a fast path
//! for the common record), decoding records and their headers, and the record
//! timestamp check.

use std::ops::Range;

use bytes::Bytes;

use super::{BatchHeader, DecodeOptions, RECORDS_OFFSET};
use crate::error::{Error, Result};
use crate::format::compression::{self, Compression};
use crate::format::record::{Header, Record};
use crate::format::varint::{self, VarintError};

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

/// Iterates the records of one batch. Yields an error (once, then stops) if a record is
/// malformed or the declared count does not consume the records section exactly.
#[derive(Debug)]
pub struct RecordIter {
    pub(super) data: Bytes,
    pub(super) pos: usize,
    pub(super) remaining: i32,
    pub(super) base_offset: i64,
    pub(super) base_timestamp: i64,
    pub(super) log_append_time: Option<i64>,
    pub(super) failed: bool,
    pub(super) last_offset_delta: i32,
    /// The previous record's offset delta (-1 before the first).
    pub(super) prev_delta: i32,
}

/// Checks a decoded record's offset delta: after the previous record's (`prev`, -1
/// before the first) and within the batch's `lastOffsetDelta`. Compaction leaves gaps
/// between records, never a repeat, a step back or an offset past the batch, each of
/// which would give readers a wrong offset (and move a consumer past records).
#[inline]
pub(crate) fn check_offset_delta(delta: i32, prev: i32, last_offset_delta: i32) -> Result<()> {
    if delta <= prev || delta > last_offset_delta {
        return Err(offset_delta_error(delta, prev, last_offset_delta));
    }
    Ok(())
}

#[cold]
fn offset_delta_error(delta: i32, prev: i32, last_offset_delta: i32) -> Error {
    Error::invalid_batch(
        "offsetDelta",
        format!(
            "{delta} follows {prev}: it must rise, up to the batch's lastOffsetDelta \
             {last_offset_delta}"
        ),
    )
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
    // Null is -1 on the wire, but Kafka's Java readers (`DefaultRecord`, the broker's)
    // take any negative length for null, and its broker stores what a client sent:
    // refused here, such a batch would stop every reader of an imported topic.
    if len < 0 {
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
        // A key that is not UTF-8 is read as Kafka's Java client reads it (see
        // `decode_headers`), not refused: any other client can write one.
        field(data, &mut p, end, "headerKeyLength")?.ok_or_else(|| {
            Error::invalid_batch("headerKeyLength", "a header key cannot be null")
        })?;
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
/// them: fields well formed, header keys not null, the declared count consuming the records
/// exactly, and offset deltas 0, 1, 2, ... up to the batch's `lastOffsetDelta`. Returns
/// the record count.
///
/// # Errors
/// `InvalidBatch` naming the first bad field; `UnsupportedCodec`.
/// `batch` is the whole batch and `h` its header, as returned by [`validate`](super::validate).
pub fn validate_records(batch: &[u8], h: &BatchHeader, options: &DecodeOptions) -> Result<usize> {
    scan_records(batch, h, options).map(|s| s.count)
}

/// What [`scan_records`] found in a batch's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordsScan {
    pub(crate) count: usize,
    /// The lowest and highest record timestamp, as readers decode them (the base
    /// timestamp for no record).
    pub(crate) min_timestamp: i64,
    pub(crate) max_timestamp: i64,
    /// The lowest timestamp other than -1 ("none"); `i64::MAX` if no record has one.
    pub(crate) oldest_timestamp: i64,
}

/// [`validate_records`], also returning the records' timestamp range.
pub(crate) fn scan_records(
    batch: &[u8],
    h: &BatchHeader,
    options: &DecodeOptions,
) -> Result<RecordsScan> {
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
    let (mut min_ts, mut max_ts, mut oldest) = (i64::MAX, i64::MIN, i64::MAX);
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
        // As every reader checks it (`check_offset_delta`).
        check_offset_delta(s.offset_delta, i - 1, h.last_offset_delta)?;
        // Decoded as the record iterator does (the builder stores a wrapping difference).
        let ts = h.base_timestamp.wrapping_add(s.timestamp_delta);
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        if ts >= 0 {
            oldest = oldest.min(ts);
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
    Ok(RecordsScan {
        count: h.records_count as usize,
        min_timestamp: if h.records_count > 0 {
            min_ts
        } else {
            h.base_timestamp
        },
        max_timestamp: if h.records_count > 0 {
            max_ts
        } else {
            h.base_timestamp
        },
        oldest_timestamp: oldest,
    })
}

/// The headers of a record located by [`record_spans`] in `data`.
pub(crate) fn decode_headers(data: &Bytes, s: &Spans) -> Result<Vec<Header>> {
    let mut headers = Vec::with_capacity(s.header_count);
    let mut p = s.headers.start;
    for _ in 0..s.header_count {
        let k = field(data, &mut p, s.end, "headerKeyLength")?.ok_or_else(|| {
            Error::invalid_batch("headerKeyLength", "a header key cannot be null")
        })?;
        // As Kafka's Java client and broker read one (`Utils.utf8`): bytes that are not
        // UTF-8 become U+FFFD. librdkafka and other clients write keys as bytes.
        let key = String::from_utf8_lossy(&data[k]).into_owned();
        let value = field(data, &mut p, s.end, "headerValueLength")?.map(|r| data.slice(r));
        headers.push(Header { key, value });
    }
    Ok(headers)
}

impl RecordIter {
    /// The bytes of the records section it decodes (decompressed for a compressed
    /// batch), which the records it returns share.
    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    fn decode_one(&mut self) -> Result<Record> {
        let s = record_spans(&self.data, self.pos)?;
        check_offset_delta(s.offset_delta, self.prev_delta, self.last_offset_delta)?;
        let headers = decode_headers(&self.data, &s)?;
        self.pos = s.end;
        self.prev_delta = s.offset_delta;
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

#[cfg(test)]
mod fast_spans_tests {
    use proptest::prelude::*;

    use super::*;
    use crate::format::batch::BatchBuilder;

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
