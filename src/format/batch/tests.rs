//! Golden batches and the checks of the format as a whole: encoding, decoding, CRC,
//! malformed headers and records, codecs.

use super::*;
use crate::error::{Error, Result};
use crate::format::compression::Compression;
use crate::format::record::{Header, Record};

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

/// From a review: a control key of a later version was refused, where Kafka's
/// `ControlRecordType.parse` reads it as version 0 (only a negative one is damage);
/// the same for the end-transaction marker's value.
#[test]
fn later_control_versions_read_as_version_0_and_negative_ones_are_refused() {
    let marker = control_batch(ControlRecordType::Abort, 1000, 3, 7, 1_700_000_000_010).unwrap();
    // The record: length, attributes, timestamp and offset deltas, key length (one
    // byte each), then the key (version, type) and value length, version, epoch.
    let (key_version, value_version) = (RECORDS_OFFSET + 5, RECORDS_OFFSET + 10);
    let with = |at: usize, version: i16| {
        let mut b = marker.clone();
        b[at..at + 2].copy_from_slice(&version.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[ATTRIBUTES_OFFSET - 4..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        Batch::parse(b.into()).unwrap().control_record()
    };
    let abort = Some(ControlRecord {
        kind: ControlRecordType::Abort,
        coordinator_epoch: Some(7),
    });
    assert_eq!(with(key_version, 0).unwrap(), abort);
    assert_eq!(with(key_version, 1).unwrap(), abort);
    assert_eq!(with(value_version, 3).unwrap(), abort);
    assert!(with(key_version, -1).is_err());
    assert!(with(value_version, -1).is_err());
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

/// From a review: a header key that is not UTF-8 (librdkafka and Go clients write keys
/// as bytes; Kafka's broker stores them and its Java client reads them with U+FFFD)
/// failed the batch's checks: after an import of such a topic, a consumer stopped at
/// the record for good, and compaction of the partition failed at every pass. It is
/// accepted and read as Kafka's Java client reads it.
#[test]
fn a_header_key_that_is_not_utf8_reads_as_kafkas_java_client_reads_it() {
    let mut b = BatchBuilder::new();
    b.push(
        1_700_000_000_000,
        Some(b"k"),
        Some(b"v"),
        &[Header::new("ab", &b"1"[..])],
    )
    .unwrap();
    let mut bytes = b.finish().unwrap().to_vec();
    let at = bytes
        .windows(2)
        .rposition(|w| w == b"ab")
        .expect("the key's bytes");
    bytes[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    write_crc(&mut bytes);
    let h = validate(&bytes).unwrap();
    assert_eq!(
        validate_records(&bytes, &h, &DecodeOptions::default()).unwrap(),
        1
    );
    let batch = Batch::parse(bytes.into()).unwrap();
    let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
    assert_eq!(recs[0].headers[0].key, "\u{fffd}\u{fffd}");
    assert_eq!(recs[0].headers[0].value.as_deref(), Some(&b"1"[..]));
}

/// From a review: a key, value or header-value length below -1 was refused, while
/// Kafka's Java readers (`DefaultRecord`, also the broker's) take any negative length for
/// null and its broker stores such a batch. It reads as null; a header key stays
/// refused when null (as in Kafka).
#[test]
fn a_length_below_minus_one_reads_as_null_as_in_kafka() {
    let mut b = BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"v"), &[]).unwrap();
    let mut bytes = b.finish().unwrap().to_vec();
    // The record: length, attributes, timestamp delta, offset delta, key length -1 (01).
    let key_len_at = RECORDS_OFFSET + 4;
    assert_eq!(bytes[key_len_at], 0x01, "the null key's length");
    bytes[key_len_at] = 0x03; // -2
    write_crc(&mut bytes);
    let h = validate(&bytes).unwrap();
    validate_records(&bytes, &h, &DecodeOptions::default()).unwrap();
    let batch = Batch::parse(bytes.into()).unwrap();
    let recs: Vec<Record> = batch.records().unwrap().collect::<Result<_>>().unwrap();
    assert_eq!(recs[0].key, None);
    assert_eq!(recs[0].value.as_deref(), Some(&b"v"[..]));
}
