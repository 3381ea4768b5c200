//! What [`Consumer::poll`](super::Consumer::poll) returns: [`ConsumerRecords`], viewed
//! record by record as [`RecordRef`]s (zero-copy, no reference counting) or taken as
//! owned [`ConsumerRecord`]s.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::TopicPartition;
use crate::error::{Error, Result};
use crate::format::batch::{self, Batch};
use crate::format::{DecodeOptions, Header, TimestampType};

/// The records section of one batch (decompressed if it was compressed), shared by the
/// records read from it.
#[derive(Debug)]
struct Chunk {
    topic: Arc<str>,
    partition: i32,
    timestamp_type: TimestampType,
    data: Bytes,
}

/// Where a key or value lies in its chunk; `len == NULL` is Kafka's null.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    len: u32,
}

impl Field {
    const NULL: u32 = u32::MAX;

    fn new(range: Option<Range<usize>>) -> Field {
        match range {
            // Chunks are shorter than u32::MAX bytes (checked when they are made).
            Some(r) => Field {
                start: r.start as u32,
                len: (r.end - r.start) as u32,
            },
            None => Field {
                start: 0,
                len: Self::NULL,
            },
        }
    }

    #[inline]
    fn range(self) -> Option<Range<usize>> {
        (self.len != Self::NULL)
            .then(|| self.start as usize..self.start as usize + self.len as usize)
    }
}

/// One record's place in its chunk.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    timestamp: i64,
    key: Field,
    value: Field,
    /// Index of the chunk in its `ConsumerRecords`.
    chunk: u32,
    /// Index of the headers in its `ConsumerRecords`; `NO_HEADERS` for none.
    headers: u32,
}

const NO_HEADERS: u32 = u32::MAX;

/// The accessors of [`RecordRef`] and [`ConsumerRecord`], written once.
macro_rules! record_accessors {
    () => {
        /// The topic.
        #[inline]
        pub fn topic(&self) -> &str {
            &self.chunk().topic
        }
        /// The partition.
        #[inline]
        pub fn partition(&self) -> i32 {
            self.chunk().partition
        }
        /// The offset.
        #[inline]
        pub fn offset(&self) -> i64 {
            self.entry().offset
        }
        /// Milliseconds since the Unix epoch.
        #[inline]
        pub fn timestamp(&self) -> i64 {
            self.entry().timestamp
        }
        /// CreateTime or LogAppendTime.
        #[inline]
        pub fn timestamp_type(&self) -> TimestampType {
            self.chunk().timestamp_type
        }
        /// The key (`None` = null).
        #[inline]
        pub fn key(&self) -> Option<&[u8]> {
            self.entry().key.range().map(|r| &self.chunk().data[r])
        }
        /// The value (`None` = tombstone).
        #[inline]
        pub fn value(&self) -> Option<&[u8]> {
            self.entry().value.range().map(|r| &self.chunk().data[r])
        }
        /// The key as shared bytes (a zero-copy slice of the batch).
        #[inline]
        pub fn key_bytes(&self) -> Option<Bytes> {
            self.entry().key.range().map(|r| self.chunk().data.slice(r))
        }
        /// The value as shared bytes (a zero-copy slice of the batch).
        #[inline]
        pub fn value_bytes(&self) -> Option<Bytes> {
            self.entry()
                .value
                .range()
                .map(|r| self.chunk().data.slice(r))
        }
        /// Headers, in order.
        #[inline]
        pub fn headers(&self) -> &[Header] {
            self.header_list()
        }
    };
}

/// A record returned by [`Consumer::poll`](super::Consumer::poll), owned: key, value and
/// headers are zero-copy views of the stored batch (of its decompressed buffer for
/// compressed batches), which it keeps alive.
#[derive(Clone)]
pub struct ConsumerRecord {
    chunk: Arc<Chunk>,
    entry: Entry,
    headers: Vec<Header>,
}

impl ConsumerRecord {
    #[inline]
    fn chunk(&self) -> &Chunk {
        &self.chunk
    }
    #[inline]
    fn entry(&self) -> &Entry {
        &self.entry
    }
    #[inline]
    fn header_list(&self) -> &[Header] {
        &self.headers
    }
    record_accessors!();
}

/// A record of a [`ConsumerRecords`], borrowed: the same accessors as
/// [`ConsumerRecord`] without touching a reference count.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    chunk: &'a Arc<Chunk>,
    entry: &'a Entry,
    headers: &'a [Header],
}

impl<'a> RecordRef<'a> {
    #[inline]
    fn chunk(&self) -> &'a Chunk {
        self.chunk
    }
    #[inline]
    fn entry(&self) -> &'a Entry {
        self.entry
    }
    #[inline]
    fn header_list(&self) -> &'a [Header] {
        self.headers
    }
    record_accessors!();

    /// An owned copy of the record (it shares the batch's bytes).
    pub fn to_owned(&self) -> ConsumerRecord {
        ConsumerRecord {
            chunk: self.chunk.clone(),
            entry: *self.entry,
            headers: self.headers.to_vec(),
        }
    }
}

fn debug_record(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    (chunk, entry, headers): (&Chunk, &Entry, &[Header]),
) -> fmt::Result {
    let view = |r: Option<Range<usize>>| r.map(|r| Bytes::copy_from_slice(&chunk.data[r]));
    f.debug_struct(name)
        .field("topic", &chunk.topic)
        .field("partition", &chunk.partition)
        .field("offset", &entry.offset)
        .field("timestamp", &entry.timestamp)
        .field("timestamp_type", &chunk.timestamp_type)
        .field("key", &view(entry.key.range()))
        .field("value", &view(entry.value.range()))
        .field("headers", &headers)
        .finish()
}

impl fmt::Debug for ConsumerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_record(f, "ConsumerRecord", self.parts())
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_record(f, "RecordRef", self.parts())
    }
}

impl ConsumerRecord {
    fn parts(&self) -> (&Chunk, &Entry, &[Header]) {
        (&self.chunk, &self.entry, &self.headers)
    }
}

impl RecordRef<'_> {
    fn parts(&self) -> (&Chunk, &Entry, &[Header]) {
        (self.chunk, self.entry, self.headers)
    }
}

/// Records are equal when every field and every byte is.
fn same(a: (&Chunk, &Entry, &[Header]), b: (&Chunk, &Entry, &[Header])) -> bool {
    fn bytes(c: &Chunk, f: Field) -> Option<&[u8]> {
        f.range().map(|r| &c.data[r])
    }
    a.0.topic == b.0.topic
        && a.0.partition == b.0.partition
        && a.0.timestamp_type == b.0.timestamp_type
        && a.1.offset == b.1.offset
        && a.1.timestamp == b.1.timestamp
        && bytes(a.0, a.1.key) == bytes(b.0, b.1.key)
        && bytes(a.0, a.1.value) == bytes(b.0, b.1.value)
        && a.2 == b.2
}

impl PartialEq for ConsumerRecord {
    fn eq(&self, other: &Self) -> bool {
        same(self.parts(), other.parts())
    }
}

impl Eq for ConsumerRecord {}

impl PartialEq<ConsumerRecord> for RecordRef<'_> {
    fn eq(&self, other: &ConsumerRecord) -> bool {
        same(self.parts(), other.parts())
    }
}

/// The records one [`poll`](super::Consumer::poll) returned (Kafka's
/// `ConsumerRecords`): in offset order within each partition, partitions one after
/// another.
///
/// Iterate by reference for [`RecordRef`]s (zero-copy, the fastest way to read), or by
/// value for owned [`ConsumerRecord`]s (each keeps its batch's bytes alive):
///
/// ```
/// # use std::time::Duration;
/// # use streamlog::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig};
/// # let dir = tempfile::tempdir()?;
/// # let store = Store::open(dir.path())?;
/// # store.create_topic("clicks", TopicConfig::default())?;
/// # store.producer(ProducerConfig::default())?
/// #     .send(ProducerRecord::new("clicks").key("user-7").value("home"))?.wait()?;
/// # let mut consumer = store.consumer(
/// #     ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))?;
/// # consumer.subscribe(["clicks"])?;
/// let records = consumer.poll(Duration::from_secs(1))?;
/// for r in &records {
///     assert_eq!(r.value(), Some(&b"home"[..]));
/// }
/// let kept: Vec<streamlog::ConsumerRecord> = records.into_iter().collect();
/// assert_eq!(kept[0].key(), Some(&b"user-7"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default, Clone)]
pub struct ConsumerRecords {
    chunks: Vec<Arc<Chunk>>,
    entries: Vec<Entry>,
    /// The headers of the records that have any.
    headers: Vec<Vec<Header>>,
}

impl ConsumerRecords {
    pub(super) fn with_capacity(records: usize) -> Self {
        ConsumerRecords {
            chunks: Vec::new(),
            entries: Vec::with_capacity(records),
            headers: Vec::new(),
        }
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`th record.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        self.entries.get(i).map(|e| self.view(e))
    }

    /// The records in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            records: self,
            inner: self.entries.iter(),
        }
    }

    /// The records of one partition, in offset order.
    pub fn records<'a>(&'a self, tp: &'a TopicPartition) -> impl Iterator<Item = RecordRef<'a>> {
        self.iter()
            .filter(move |r| r.partition() == tp.partition() && r.topic() == tp.topic())
    }

    /// The partitions that have records here, in the order they appear.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = Vec::new();
        for c in &self.chunks {
            if !out
                .iter()
                .any(|tp| tp.partition() == c.partition && tp.topic() == &*c.topic)
            {
                out.push(TopicPartition::new(c.topic.to_string(), c.partition));
            }
        }
        out
    }

    #[inline]
    fn view<'a>(&'a self, entry: &'a Entry) -> RecordRef<'a> {
        RecordRef {
            chunk: &self.chunks[entry.chunk as usize],
            entry,
            headers: match entry.headers {
                NO_HEADERS => &[],
                i => &self.headers[i as usize],
            },
        }
    }
}

impl fmt::Debug for ConsumerRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Borrowing iterator over [`ConsumerRecords`].
#[derive(Clone)]
pub struct Iter<'a> {
    records: &'a ConsumerRecords,
    inner: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        self.inner.next().map(|e| self.records.view(e))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ConsumerRecords {
    type Item = RecordRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Owning iterator over [`ConsumerRecords`].
pub struct IntoIter {
    chunks: Vec<Arc<Chunk>>,
    headers: Vec<Vec<Header>>,
    inner: std::vec::IntoIter<Entry>,
}

impl Iterator for IntoIter {
    type Item = ConsumerRecord;

    #[inline]
    fn next(&mut self) -> Option<ConsumerRecord> {
        self.inner.next().map(|entry| ConsumerRecord {
            chunk: self.chunks[entry.chunk as usize].clone(),
            entry,
            headers: match entry.headers {
                NO_HEADERS => Vec::new(),
                i => std::mem::take(&mut self.headers[i as usize]),
            },
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for ConsumerRecords {
    type Item = ConsumerRecord;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter {
            chunks: self.chunks,
            headers: self.headers,
            inner: self.entries.into_iter(),
        }
    }
}

/// Records of one fetched batch not yet returned by `poll`, decoded as they are taken.
/// A compressed batch is decompressed when its first record is taken, not when it is
/// fetched: a fetch of many batches holds one decompressed batch at a time per
/// partition, beyond what `poll` returned.
#[derive(Debug)]
pub(super) struct Pending {
    records: Records,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    /// The batch's last offset, or that of later batches read with it that hold
    /// nothing to return (see [`skip_through`](Self::skip_through)).
    last_offset: i64,
    last_offset_delta: i32,
    /// The previous record's offset delta (-1 before the first).
    prev_delta: i32,
    /// Byte position of the next record in `chunk.data`, and records left.
    pos: usize,
    remaining: i32,
    /// The error that stopped decoding: returned again by every later `take`.
    failed: Option<Error>,
}

/// A batch's records section: as fetched, or decompressed and shared with the
/// records returned from it.
#[derive(Debug)]
enum Records {
    Fetched {
        batch: Batch,
        topic: Arc<str>,
        partition: i32,
        options: DecodeOptions,
    },
    Ready(Arc<Chunk>),
}

impl Records {
    /// The records section, decompressing it on first use.
    fn chunk(&mut self) -> Result<&Arc<Chunk>> {
        if let Records::Fetched {
            batch,
            topic,
            partition,
            options,
        } = self
        {
            let data = batch.records_data(options)?;
            if data.len() >= Field::NULL as usize {
                return Err(Error::invalid_batch(
                    "records",
                    "the records section is 4 GiB or more",
                ));
            }
            *self = Records::Ready(Arc::new(Chunk {
                topic: topic.clone(),
                partition: *partition,
                timestamp_type: batch.header().timestamp_type(),
                data,
            }));
        }
        match self {
            Records::Ready(chunk) => Ok(chunk),
            Records::Fetched { .. } => unreachable!("decompressed above"),
        }
    }
}

impl Pending {
    pub(super) fn new(tp: &TopicPartition, b: &Batch, options: &DecodeOptions) -> Self {
        let h = b.header();
        Pending {
            records: Records::Fetched {
                batch: b.clone(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                options: *options,
            },
            base_offset: h.base_offset,
            base_timestamp: h.base_timestamp,
            log_append_time: (h.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(h.max_timestamp),
            last_offset: b.last_offset(),
            last_offset_delta: h.last_offset_delta,
            prev_delta: -1,
            pos: 0,
            remaining: h.records_count,
            failed: None,
        }
    }

    /// Whether every record has been taken.
    pub(super) fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Decodes records into `out` until it holds `limit`, skipping offsets below
    /// `from`. Returns the offset after the last record returned, or the batch's next
    /// offset once it is exhausted (offsets removed by compaction are skipped); and the
    /// error that stopped it at a malformed record, if any (then returned again by every
    /// later call, so the position stays at that record).
    pub(super) fn take(
        &mut self,
        from: i64,
        limit: usize,
        out: &mut ConsumerRecords,
    ) -> (Option<i64>, Result<()>) {
        if let Some(e) = &self.failed {
            return (None, Err(e.clone()));
        }
        let mut next = None;
        let result = self.decode_into(from, limit, out, &mut next);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        (next, result)
    }

    /// The batches read after this one up to `last` hold nothing to return (markers,
    /// aborted records): once this one is done, the position moves past them too, as
    /// Kafka's fetch does (else the position would rest on a transaction's marker after
    /// the poll that returned its last records, until another poll).
    pub(super) fn skip_through(&mut self, last: i64) {
        self.last_offset = self.last_offset.max(last);
    }

    fn decode_into(
        &mut self,
        from: i64,
        limit: usize,
        out: &mut ConsumerRecords,
        next: &mut Option<i64>,
    ) -> Result<()> {
        let chunk = self.records.chunk()?.clone();
        let data = &chunk.data;
        let mut index = None;
        while self.remaining > 0 && out.entries.len() < limit {
            if self.pos >= data.len() {
                return Err(Error::invalid_batch(
                    "recordsCount",
                    format!(
                        "{} more records are declared than the batch holds",
                        self.remaining
                    ),
                ));
            }
            let s = match batch::record_spans_fast(data, self.pos) {
                Some(s) => s,
                None => batch::record_spans(data, self.pos)?,
            };
            batch::check_offset_delta(s.offset_delta, self.prev_delta, self.last_offset_delta)?;
            self.prev_delta = s.offset_delta;
            self.pos = s.end;
            self.remaining -= 1;
            let offset = self.base_offset.wrapping_add(i64::from(s.offset_delta));
            if offset < from {
                continue;
            }
            let headers = if s.header_count == 0 {
                NO_HEADERS
            } else {
                out.headers.push(batch::decode_headers(data, &s)?);
                (out.headers.len() - 1) as u32
            };
            let chunk = *index.get_or_insert_with(|| {
                out.chunks.push(chunk.clone());
                (out.chunks.len() - 1) as u32
            });
            out.entries.push(Entry {
                offset,
                timestamp: self
                    .log_append_time
                    .unwrap_or(self.base_timestamp.wrapping_add(s.timestamp_delta)),
                key: Field::new(s.key),
                value: Field::new(s.value),
                chunk,
                headers,
            });
            *next = Some(offset + 1);
        }
        if self.remaining == 0 {
            if self.pos != data.len() {
                return Err(Error::invalid_batch(
                    "recordsCount",
                    format!(
                        "{} bytes remain after the declared records (incorrect declared batch size)",
                        data.len() - self.pos
                    ),
                ));
            }
            *next = Some(self.last_offset + 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::BatchBuilder;
    use crate::format::batch::{LAST_OFFSET_DELTA_OFFSET, RECORDS_OFFSET, record_spans, write_crc};

    /// `n` CRC-valid records at offset 100, changed by `edit` (given the batch's bytes
    /// and where its third record starts) before the CRC is made valid again.
    fn edited_batch(n: u8, edit: impl FnOnce(&mut [u8], usize)) -> Batch {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(1_700_000_000_000, Some(&[i]), Some(&[i; 3]), &[])
                .unwrap();
        }
        let mut bytes = b.finish().unwrap();
        bytes[..8].copy_from_slice(&100i64.to_be_bytes());
        let records = &bytes[RECORDS_OFFSET..];
        let second = record_spans(records, 0).unwrap().end;
        let third = record_spans(records, second).unwrap().end;
        edit(&mut bytes, RECORDS_OFFSET + third);
        write_crc(&mut bytes);
        Batch::parse(Bytes::from(bytes)).unwrap()
    }

    /// Five records, the third claiming more bytes than the batch holds.
    fn batch_with_a_bad_third_record() -> Batch {
        edited_batch(5, |bytes, third| bytes[third] = 0x7e) // length 63: past the end
    }

    /// The same five records (zigzag varint offset deltas, one byte each), the third
    /// claiming offset delta `delta`.
    fn batch_with_third_delta(delta: u8) -> Batch {
        batch_of(5, delta, 4)
    }

    /// `n` records, the third claiming offset delta `delta`, the batch's
    /// `lastOffsetDelta` being `last_delta`.
    fn batch_of(n: u8, delta: u8, last_delta: i32) -> Batch {
        edited_batch(n, |bytes, third| {
            // length, attributes, timestampDelta (0), then offsetDelta
            assert_eq!(bytes[third + 3], 2 * 2);
            bytes[third + 3] = 2 * delta;
            bytes[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
                .copy_from_slice(&last_delta.to_be_bytes());
        })
    }

    /// A CRC-valid batch whose record offsets jump ahead (past the batch) or repeat is
    /// refused at that record: a consumer took 150 for the third record's offset and
    /// moved its position past the records between.
    #[test]
    fn a_record_offset_outside_its_batch_or_out_of_order_is_refused() {
        let tp = TopicPartition::new("t", 0);
        for delta in [50, 1, 0] {
            let mut p = Pending::new(
                &tp,
                &batch_with_third_delta(delta),
                &DecodeOptions::default(),
            );
            let mut out = ConsumerRecords::with_capacity(10);
            let (next, result) = p.take(i64::MIN, 10, &mut out);
            assert!(
                matches!(result, Err(Error::InvalidBatch { .. })),
                "delta {delta}"
            );
            assert_eq!(next, Some(102), "delta {delta}");
            assert_eq!(out.len(), 2, "delta {delta}");
            let mut records = batch_with_third_delta(delta).records().unwrap();
            assert_eq!(records.next().unwrap().unwrap().offset, 100);
            assert_eq!(records.next().unwrap().unwrap().offset, 101);
            assert!(records.next().unwrap().is_err(), "delta {delta}");
        }
        // A gap (compaction's: offsets 100, 101, 104 of 100..=104) is fine.
        let gap = batch_of(3, 4, 4);
        let mut p = Pending::new(&tp, &gap, &DecodeOptions::default());
        let mut out = ConsumerRecords::with_capacity(10);
        let (next, result) = p.take(i64::MIN, 10, &mut out);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            out.iter().map(|r| r.offset()).collect::<Vec<_>>(),
            [100, 101, 104]
        );
        assert_eq!(next, Some(105));
        let offsets: Vec<i64> = gap.records().unwrap().map(|r| r.unwrap().offset).collect();
        assert_eq!(offsets, [100, 101, 104]);
        // The append path's check agrees with the readers': deltas 0, 1, 2 with a
        // lastOffsetDelta of 1 are refused by both.
        let short = batch_of(3, 2, 1);
        let h = short.header();
        assert!(
            crate::format::batch::validate_records(short.bytes(), h, &DecodeOptions::default())
                .is_err()
        );
        assert!(short.records().unwrap().any(|r| r.is_err()));
    }

    #[test]
    fn a_malformed_record_stops_at_itself_every_time() {
        let tp = TopicPartition::new("t", 0);
        let mut p = Pending::new(
            &tp,
            &batch_with_a_bad_third_record(),
            &DecodeOptions::default(),
        );
        let mut out = ConsumerRecords::with_capacity(10);
        let (next, result) = p.take(i64::MIN, 10, &mut out);
        assert!(matches!(result, Err(Error::InvalidBatch { .. })));
        assert_eq!(next, Some(102), "the position moves to the bad record");
        assert_eq!(
            out.iter().map(|r| r.offset()).collect::<Vec<_>>(),
            [100, 101]
        );
        // Again: the same error, nothing more returned, nothing skipped.
        let (next, result) = p.take(102, 10, &mut out);
        assert!(result.is_err());
        assert_eq!(next, None);
        assert_eq!(out.len(), 2);
        assert!(!p.is_done());
    }
}
