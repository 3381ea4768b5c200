//! Interop with an independent implementation of RecordBatch v2: the `kafka-protocol`
//! crate (tychedelia/kafka-protocol-rs, v0.18). Batches we build decode there to the same
//! records, batches it builds decode here to the same records, for every codec and for
//! transaction markers (control batches).
//!
//! What kafka-protocol cannot express, and therefore is not tested here:
//! - duplicate header keys: it keeps headers in an `IndexMap`, so a repeated key collapses
//!   into one entry. Interop records use distinct header keys; `format_roundtrip.rs` covers
//!   duplicates against our own decoder.
//! - LogAppendTime: its encoder never sets attributes bit 3 (and neither does our builder).
//! - `maxTimestamp` and `lastOffsetDelta`: its decoder does not report them, so for batches
//!   we encode they are checked only by our own decoder; for batches it encodes we check
//!   that our header carries what it wrote.
//! - offset gaps (as compaction leaves them): it encodes them, our builder cannot, so they
//!   are tested in one direction only.
//!
//! Its encoder uses the *smallest* timestamp as `baseTimestamp` (Java uses the first
//! record's), so batches it encodes never hold negative timestamp deltas; batches we encode
//! do, and its decoder must handle them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    self as kp, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use streamlog::format::batch::{
    ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, PARTITION_LEADER_EPOCH_OFFSET,
    RECORDS_OFFSET,
};
use streamlog::format::{
    Batch, BatchBuilder, Compression, ControlRecord, ControlRecordType, Header, Record, batches,
    compression, control_batch,
};

const T: i64 = 1_700_000_000_000;

/// Producer identity and placement for one batch, as both encoders take it.
#[derive(Debug, Clone, Copy)]
struct Meta {
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    partition_leader_epoch: i32,
    transactional: bool,
}

const NO_PRODUCER: Meta = Meta {
    base_offset: 0,
    producer_id: -1,
    producer_epoch: -1,
    base_sequence: -1,
    partition_leader_epoch: 0,
    transactional: false,
};

const IDEMPOTENT: Meta = Meta {
    base_offset: 1_000,
    producer_id: 4_242,
    producer_epoch: 7,
    base_sequence: 100,
    partition_leader_epoch: 12,
    transactional: false,
};

/// The codecs this build of streamlog has, each with kafka-protocol's name for it.
fn codecs() -> Vec<(Compression, kp::Compression)> {
    let all: Vec<_> = Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .map(|c| (c, kp_codec(c)))
        .collect();
    assert!(!all.is_empty() && all[0].0 == Compression::None);
    all
}

fn kp_codec(codec: Compression) -> kp::Compression {
    match codec {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
        other => panic!("kafka-protocol has no codec for {other}"),
    }
}

/// A value larger than one snappy xerial block (32 KiB) and one lz4 block (64 KiB), half
/// incompressible, half text.
fn big_value() -> Bytes {
    let mut x: u32 = 0x1234_5678;
    (0..150_000usize)
        .map(|i| {
            if (i / 1_000) % 2 == 0 {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            } else {
                b"the quick brown fox "[i % 20]
            }
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Records covering every field shape: null and empty keys/values, tombstones, headers with
/// null values, empty and non-ASCII header keys, binary bytes, non-monotonic timestamps (the
/// record at index 3 is earlier than the first: a negative delta), a delta needing a long
/// varlong, and a value spanning several compression blocks. Offsets are filled in by
/// [`with_offsets`].
fn sample_records() -> Vec<Record> {
    vec![
        Record::new(T, Some("user-1"), Some("hello"))
            .header("trace", "abc")
            .header_null("null-valued"),
        Record::new(T + 5, None::<Bytes>, Some("no key")),
        Record::new(T + 2, Some("user-1"), None::<Bytes>),
        Record::new(T - 3, Some(""), Some(""))
            .header("", "")
            .header("ünïcødé-ключ", (0..=255u8).collect::<Vec<u8>>()),
        Record::new(T + 1_000, None::<Bytes>, None::<Bytes>).header_null("only-null"),
        Record::new(T + 7, Some(&[0u8, 0xff, 0x80][..]), Some(big_value())),
        Record::new(T + (1 << 40), Some("far future"), Some("v")),
    ]
}

/// `sample_records` without the records older than the first one, so that the first
/// record holds the smallest timestamp, as kafka-protocol's encoder assumes.
fn sample_records_first_is_oldest() -> Vec<Record> {
    let recs = sample_records();
    let first = recs[0].timestamp;
    recs.into_iter().filter(|r| r.timestamp >= first).collect()
}

trait NullHeader {
    fn header_null(self, key: &str) -> Self;
}

impl NullHeader for Record {
    fn header_null(mut self, key: &str) -> Self {
        self.headers.push(Header {
            key: key.to_owned(),
            value: None,
        });
        self
    }
}

fn with_offsets(mut records: Vec<Record>, base_offset: i64) -> Vec<Record> {
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = base_offset + i as i64;
    }
    records
}

/// Builds one batch with our encoder and moves it to `meta.base_offset` (the base offset
/// is outside the CRC; the log patches it the same way at append).
fn encode_ours(records: &[Record], codec: Compression, meta: Meta) -> Bytes {
    let mut b = BatchBuilder::new()
        .compression(codec)
        .producer(meta.producer_id, meta.producer_epoch, meta.base_sequence)
        .partition_leader_epoch(meta.partition_leader_epoch)
        .transactional(meta.transactional);
    for r in records {
        b.push_record(r).unwrap();
    }
    let mut bytes = b.finish().unwrap();
    bytes[..BATCH_LENGTH_OFFSET].copy_from_slice(&meta.base_offset.to_be_bytes());
    bytes.into()
}

fn to_kp(records: &[Record], meta: Meta) -> Vec<kp::Record> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let headers: IndexMap<StrBytes, Option<Bytes>> = r
                .headers
                .iter()
                .map(|h| (StrBytes::from_string(h.key.clone()), h.value.clone()))
                .collect();
            assert_eq!(
                headers.len(),
                r.headers.len(),
                "kafka-protocol cannot carry duplicate header keys"
            );
            kp::Record {
                transactional: meta.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: meta.partition_leader_epoch,
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: meta.base_offset + i as i64,
                // The encoder derives baseSequence from (first sequence - offset delta) and
                // splits batches where offset - sequence changes, so sequences follow offsets.
                sequence: meta.base_sequence.wrapping_add(i as i32),
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect()
}

fn from_kp(r: &kp::Record) -> Record {
    Record {
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.as_str().to_owned(),
                value: v.clone(),
            })
            .collect(),
    }
}

fn encode_kp(records: &[kp::Record], codec: kp::Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .unwrap();
    buf.freeze()
}

fn decode_kp(bytes: &Bytes) -> Vec<kp::RecordSet> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .unwrap_or_else(|e| panic!("kafka-protocol rejected our batch: {e:#}"));
    assert!(buf.is_empty());
    sets
}

fn decode_ours(bytes: Bytes) -> (Batch, Vec<Record>) {
    let batch = Batch::parse(bytes).unwrap();
    let records = batch
        .records()
        .unwrap()
        .collect::<streamlog::Result<Vec<_>>>()
        .unwrap();
    (batch, records)
}

/// Checks that kafka-protocol decodes `bytes` (one batch we encoded with `meta`) to
/// exactly `expected`, with the batch-level fields it reports.
fn assert_kp_decodes_to(bytes: &Bytes, codec: Compression, meta: Meta, expected: &[Record]) {
    let sets = decode_kp(bytes);
    assert_eq!(sets.len(), 1, "{codec}");
    let set = &sets[0];
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, kp_codec(codec), "{codec}");
    let got: Vec<Record> = set.records.iter().map(from_kp).collect();
    assert_eq!(got, expected, "{codec}: records differ");
    for (i, r) in set.records.iter().enumerate() {
        assert_eq!(r.producer_id, meta.producer_id, "{codec}");
        assert_eq!(r.producer_epoch, meta.producer_epoch, "{codec}");
        assert_eq!(
            r.sequence,
            meta.base_sequence.wrapping_add(i as i32),
            "{codec}"
        );
        assert_eq!(r.partition_leader_epoch, meta.partition_leader_epoch);
        assert_eq!(r.transactional, meta.transactional, "{codec}");
        assert!(!r.control && !r.delete_horizon, "{codec}");
        assert_eq!(r.timestamp_type, TimestampType::Creation, "{codec}");
    }
    let mut buf = bytes.clone();
    let info = RecordBatchDecoder::decode_batch_info(&mut buf).unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].record_count as usize, expected.len());
    assert_eq!(info[0].min_offset, meta.base_offset);
    assert_eq!(
        info[0].min_timestamp, expected[0].timestamp,
        "baseTimestamp"
    );
    assert_eq!(info[0].base_sequence, meta.base_sequence);
}

/// Checks our header and records for one batch kafka-protocol encoded from `expected`.
fn assert_ours_decodes_to(bytes: Bytes, codec: Compression, meta: Meta, expected: &[Record]) {
    let (batch, got) = decode_ours(bytes);
    let h = *batch.header();
    assert_eq!(h.compression().unwrap(), codec);
    assert_eq!(h.base_offset, meta.base_offset, "{codec}");
    assert_eq!(h.records_count as usize, expected.len(), "{codec}");
    assert_eq!(
        batch.last_offset(),
        meta.base_offset + expected.len() as i64 - 1
    );
    assert_eq!(h.producer_id, meta.producer_id, "{codec}");
    assert_eq!(h.producer_epoch, meta.producer_epoch, "{codec}");
    assert_eq!(h.base_sequence, meta.base_sequence, "{codec}");
    assert_eq!(h.partition_leader_epoch, meta.partition_leader_epoch);
    assert_eq!(h.is_transactional(), meta.transactional, "{codec}");
    assert!(!h.is_control() && !h.has_delete_horizon());
    let max_ts = expected.iter().map(|r| r.timestamp).max().unwrap();
    assert_eq!(h.max_timestamp, max_ts, "{codec}: maxTimestamp");
    assert_eq!(batch.control_record().unwrap(), None);
    assert_eq!(got, expected, "{codec}: records differ");
}

#[test]
fn our_batches_decode_in_kafka_protocol_for_every_codec() {
    for (codec, _) in codecs() {
        for meta in [NO_PRODUCER, IDEMPOTENT] {
            let expected = with_offsets(sample_records(), meta.base_offset);
            let bytes = encode_ours(&expected, codec, meta);
            assert_kp_decodes_to(&bytes, codec, meta, &expected);
        }
    }
}

#[test]
fn kafka_protocol_batches_decode_in_streamlog_for_every_codec() {
    for (codec, kp_codec) in codecs() {
        for meta in [NO_PRODUCER, IDEMPOTENT] {
            let expected = with_offsets(sample_records(), meta.base_offset);
            let bytes = encode_kp(&to_kp(&expected, meta), kp_codec);
            assert_ours_decodes_to(bytes, codec, meta, &expected);
        }
    }
}

#[test]
fn transactional_batches_cross_both_ways() {
    let meta = Meta {
        transactional: true,
        ..IDEMPOTENT
    };
    for (codec, kp_codec) in codecs() {
        let expected = with_offsets(sample_records(), meta.base_offset);
        let ours = encode_ours(&expected, codec, meta);
        assert_kp_decodes_to(&ours, codec, meta, &expected);
        let theirs = encode_kp(&to_kp(&expected, meta), kp_codec);
        assert_ours_decodes_to(theirs, codec, meta, &expected);
    }
}

#[test]
fn uncompressed_batches_are_byte_identical_to_kafka_protocol() {
    for meta in [NO_PRODUCER, IDEMPOTENT] {
        let records = with_offsets(sample_records_first_is_oldest(), meta.base_offset);
        let ours = encode_ours(&records, Compression::None, meta);
        let theirs = encode_kp(&to_kp(&records, meta), kp::Compression::None);
        assert_eq!(ours, theirs);
    }
}

/// For compressed batches the compressor output may differ (kafka-protocol's liblz4 frames
/// carry block and content checksums, FLG 0x74, ours none, FLG 0x60), so compare everything
/// but the compressed bytes: the header fields outside batchLength and CRC, and the records
/// section after decompression.
#[test]
fn compressed_batches_match_kafka_protocol_apart_from_compressor_output() {
    let meta = IDEMPOTENT;
    let records = with_offsets(sample_records_first_is_oldest(), meta.base_offset);
    let plain = encode_ours(&records, Compression::None, meta);
    for (codec, kp_codec) in codecs().into_iter().skip(1) {
        let ours = encode_ours(&records, codec, meta);
        let theirs = encode_kp(&to_kp(&records, meta), kp_codec);
        for b in [&ours, &theirs] {
            assert_eq!(
                b[..BATCH_LENGTH_OFFSET],
                plain[..BATCH_LENGTH_OFFSET],
                "{codec}"
            );
            assert_eq!(
                b[PARTITION_LEADER_EPOCH_OFFSET..CRC_OFFSET],
                plain[PARTITION_LEADER_EPOCH_OFFSET..CRC_OFFSET],
                "{codec}"
            );
        }
        assert_eq!(
            ours[ATTRIBUTES_OFFSET..RECORDS_OFFSET],
            theirs[ATTRIBUTES_OFFSET..RECORDS_OFFSET],
            "{codec}: header fields differ"
        );
        assert_eq!(ours[ATTRIBUTES_OFFSET + 1], codec.id());
        for (who, b) in [("ours", &ours), ("kafka-protocol", &theirs)] {
            let inflated = compression::decompress(codec, &b[RECORDS_OFFSET..], 1 << 24).unwrap();
            assert!(
                inflated == plain[RECORDS_OFFSET..],
                "{codec}: {who}'s records section differs after decompression"
            );
        }
        assert!(
            ours.len() < plain.len() && theirs.len() < plain.len(),
            "{codec} did not compress"
        );
    }
}

#[test]
fn our_control_batches_decode_in_kafka_protocol() {
    for (kind, type_id) in [
        (ControlRecordType::Commit, 1u8),
        (ControlRecordType::Abort, 0),
    ] {
        let mut bytes = control_batch(kind, 1_000, 3, 7, T + 10).unwrap();
        bytes[..BATCH_LENGTH_OFFSET].copy_from_slice(&2i64.to_be_bytes());
        let bytes = Bytes::from(bytes);
        let sets = decode_kp(&bytes);
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].compression, kp::Compression::None);
        let [r] = &sets[0].records[..] else {
            panic!(
                "{kind:?}: expected one control record, got {:?}",
                sets[0].records
            );
        };
        assert!(r.control, "{kind:?}: control flag");
        assert!(r.transactional, "{kind:?}: transactional flag");
        assert_eq!(r.producer_id, 1_000);
        assert_eq!(r.producer_epoch, 3);
        assert_eq!(r.sequence, -1);
        assert_eq!(r.offset, 2);
        assert_eq!(r.timestamp, T + 10);
        assert_eq!(r.timestamp_type, TimestampType::Creation);
        // Key: version 0, type; value: version 0, coordinator epoch.
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, type_id][..]));
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 7][..]));
        assert!(r.headers.is_empty());

        let mut buf = bytes.clone();
        let info = RecordBatchDecoder::decode_batch_info(&mut buf).unwrap();
        assert!(info[0].control && info[0].transactional);
        assert_eq!(info[0].base_sequence, -1);
    }
}

fn kp_control_record(type_id: i16, coordinator_epoch: i32, offset: i64) -> kp::Record {
    let mut key = Vec::new();
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&type_id.to_be_bytes());
    let mut value = Vec::new();
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    kp::Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: 77,
        producer_epoch: 2,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: T + 10,
        key: Some(key.into()),
        value: Some(value.into()),
        headers: IndexMap::new(),
    }
}

#[test]
fn kafka_protocol_control_batches_decode_as_markers() {
    for (kind, type_id) in [
        (ControlRecordType::Commit, 1),
        (ControlRecordType::Abort, 0),
    ] {
        let bytes = encode_kp(&[kp_control_record(type_id, 19, 55)], kp::Compression::None);
        let batch = Batch::parse(bytes.clone()).unwrap();
        let h = batch.header();
        assert!(h.is_control() && h.is_transactional(), "{kind:?}");
        assert_eq!(h.compression().unwrap(), Compression::None);
        assert_eq!((h.producer_id, h.producer_epoch), (77, 2));
        assert_eq!(h.base_sequence, -1);
        assert_eq!((batch.base_offset(), batch.last_offset()), (55, 55));
        assert_eq!(
            batch.control_record().unwrap(),
            Some(ControlRecord {
                kind,
                coordinator_epoch: Some(19)
            })
        );

        // With the same inputs the two encoders write the same bytes.
        let mut ours = control_batch(kind, 77, 2, 19, T + 10).unwrap();
        ours[..BATCH_LENGTH_OFFSET].copy_from_slice(&55i64.to_be_bytes());
        assert_eq!(ours, bytes, "{kind:?}");
    }
}

/// KRaft control types (2-6) are not transaction markers: we read them as `Other` with no
/// coordinator epoch.
#[test]
fn kafka_protocol_other_control_types_decode_as_other() {
    let bytes = encode_kp(&[kp_control_record(2, 0, 0)], kp::Compression::None);
    let batch = Batch::parse(bytes).unwrap();
    assert_eq!(
        batch.control_record().unwrap(),
        Some(ControlRecord {
            kind: ControlRecordType::Other(2),
            coordinator_epoch: None
        })
    );
}

#[test]
fn back_to_back_batches_decode_both_ways() {
    // Ours -> kafka-protocol: one batch per codec, at contiguous base offsets.
    let records = sample_records();
    let mut log = BytesMut::new();
    let mut expected = Vec::new();
    let mut next = 0i64;
    for (codec, _) in codecs() {
        let meta = Meta {
            base_offset: next,
            ..NO_PRODUCER
        };
        let recs = with_offsets(records.clone(), next);
        log.extend_from_slice(&encode_ours(&recs, codec, meta));
        next += recs.len() as i64;
        expected.push((kp_codec(codec), recs));
    }
    let log = log.freeze();
    let sets = decode_kp(&log);
    assert_eq!(sets.len(), expected.len());
    for (set, (codec, recs)) in sets.iter().zip(&expected) {
        assert_eq!(set.compression, *codec);
        assert_eq!(set.records.iter().map(from_kp).collect::<Vec<_>>(), *recs);
    }

    // kafka-protocol -> ours: its encoder starts a new batch whenever the producer changes.
    let a = Meta {
        base_offset: 10,
        ..IDEMPOTENT
    };
    let b = Meta {
        base_offset: 10 + records.len() as i64,
        producer_id: IDEMPOTENT.producer_id + 1,
        ..IDEMPOTENT
    };
    let mut input = to_kp(&records, a);
    input.extend(to_kp(&records, b));
    let log = encode_kp(&input, kp::Compression::Lz4);
    let mut positions = Vec::new();
    let mut all = Vec::new();
    for item in batches(log.clone()) {
        let (pos, batch) = item.unwrap();
        positions.push(pos);
        assert_eq!(batch.header().compression().unwrap(), Compression::Lz4);
        all.extend(batch.records().unwrap().map(Result::unwrap));
    }
    assert_eq!(positions.len(), 2, "two producers make two batches");
    assert_eq!(positions[0], 0);
    let mut want = with_offsets(records.clone(), a.base_offset);
    want.extend(with_offsets(records, b.base_offset));
    assert_eq!(all, want);
}

/// Compaction leaves gaps between offsets inside a batch; a batch kafka-protocol encodes
/// with gaps decodes here with the same offsets and `lastOffsetDelta` spanning the gaps.
#[test]
fn kafka_protocol_batches_with_offset_gaps_decode() {
    let offsets = [100i64, 103, 104, 110, 120, 121, 200];
    let records = sample_records();
    assert_eq!(records.len(), offsets.len());
    let expected: Vec<Record> = records
        .into_iter()
        .zip(offsets)
        .map(|(r, offset)| Record { offset, ..r })
        .collect();
    let input: Vec<kp::Record> = to_kp(&expected, IDEMPOTENT)
        .into_iter()
        .zip(offsets)
        .map(|(r, offset)| kp::Record {
            offset,
            sequence: IDEMPOTENT.base_sequence + (offset - offsets[0]) as i32,
            ..r
        })
        .collect();
    for (codec, kp_codec) in codecs() {
        let (batch, got) = decode_ours(encode_kp(&input, kp_codec));
        assert_eq!(batch.base_offset(), 100, "{codec}");
        assert_eq!(batch.last_offset(), 200, "{codec}");
        assert_eq!(batch.header().records_count, 7, "{codec}");
        assert_eq!(batch.header().base_sequence, IDEMPOTENT.base_sequence);
        assert_eq!(got, expected, "{codec}");
    }
}

/// librdkafka writes raw snappy without xerial framing; kafka-protocol can be made to write
/// it with a custom compressor, and our decoder must read it.
#[cfg(feature = "snappy")]
#[test]
fn raw_snappy_batches_decode() {
    let meta = IDEMPOTENT;
    let expected = with_offsets(sample_records(), meta.base_offset);
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &to_kp(&expected, meta),
        &RecordEncodeOptions {
            version: 2,
            compression: kp::Compression::Snappy,
        },
        Some(|records: &mut BytesMut, out: &mut BytesMut, codec| {
            assert_eq!(codec, kp::Compression::Snappy);
            let raw = snap::raw::Encoder::new().compress_vec(records).unwrap();
            out.extend_from_slice(&raw);
            Ok(())
        }),
    )
    .unwrap();
    let bytes = buf.freeze();
    assert_ne!(
        &bytes[RECORDS_OFFSET..RECORDS_OFFSET + 2],
        b"\x82S",
        "not raw"
    );
    assert_ours_decodes_to(bytes, Compression::Snappy, meta, &expected);
}

fn arb_record() -> impl Strategy<Value = Record> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300));
    (
        // Kafka timestamps are -1 (none) or non-negative; kafka-protocol computes deltas
        // without wrapping, so they stay in a range whose differences fit an i64.
        prop_oneof![
            4 => T - 1_000_000..T + 1_000_000,
            1 => Just(-1i64),
            1 => 0..=i64::MAX / 2,
        ],
        bytes(),
        bytes(),
        // Distinct header keys: kafka-protocol keeps headers in a map.
        proptest::collection::btree_map(
            "(?s).{0,12}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            0..4,
        ),
    )
        .prop_map(|(timestamp, key, value, headers)| Record {
            offset: 0,
            timestamp,
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: headers
                .into_iter()
                .map(|(key, value)| Header {
                    key,
                    value: value.map(Bytes::from),
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random records, including negative timestamp deltas, cross both ways for every codec.
    #[test]
    fn random_records_cross_both_ways(
        records in proptest::collection::vec(arb_record(), 1..20),
        base_offset in 0i64..1 << 40,
        producer_id in -1i64..1 << 20,
        base_sequence in -1i32..i32::MAX - 100,
    ) {
        let meta = Meta { base_offset, producer_id, base_sequence, ..IDEMPOTENT };
        let expected = with_offsets(records, base_offset);
        for (codec, kp_codec) in codecs() {
            let ours = encode_ours(&expected, codec, meta);
            assert_kp_decodes_to(&ours, codec, meta, &expected);
            let theirs = encode_kp(&to_kp(&expected, meta), kp_codec);
            assert_ours_decodes_to(theirs, codec, meta, &expected);
        }
    }
}
