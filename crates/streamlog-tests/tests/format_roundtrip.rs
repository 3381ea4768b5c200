//! Property tests of the batch codec against itself: every record we build reads back
//! exactly, for every codec; and the decoder never panics, whatever the bytes, while a
//! single changed byte under the CRC is always rejected.
mod common;

use bytes::Bytes;
use common::reseal_crc;
use proptest::prelude::*;
use proptest::sample::select;
use streamlog::format::batch::{
    ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET, MAGIC_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, RECORDS_COUNT_OFFSET, RECORDS_OFFSET, compute_crc,
};
use streamlog::format::{
    Batch, BatchBuilder, Compression, ControlRecordType, Header, Record, batches, control_batch,
};

fn available_codecs() -> Vec<Compression> {
    Compression::ALL
        .into_iter()
        .filter(|c| c.is_available())
        .collect()
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

/// Timestamps near "now", -1, and anywhere in i64: deltas to the first record are often
/// negative and sometimes wrap (as they do in Java's long arithmetic).
fn arb_timestamp() -> impl Strategy<Value = i64> {
    const T: i64 = 1_700_000_000_000;
    prop_oneof![
        4 => T - 1_000_000..T + 1_000_000,
        1 => Just(-1i64),
        1 => any::<i64>(),
    ]
}

fn arb_header() -> impl Strategy<Value = Header> {
    // Any UTF-8, newlines included; keys may repeat within a record.
    ("(?s).{0,16}", arb_bytes(40)).prop_map(|(key, value)| Header { key, value })
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        arb_timestamp(),
        arb_bytes(300),
        arb_bytes(300),
        proptest::collection::vec(arb_header(), 0..=4),
    )
        .prop_map(|(timestamp, key, value, headers)| Record {
            offset: 0,
            timestamp,
            key,
            value,
            headers,
        })
}

fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    proptest::collection::vec(arb_record(), 1..40)
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    select(available_codecs())
}

fn build(records: &[Record], codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new().compression(codec);
    for r in records {
        b.push_record(r).unwrap();
    }
    b.finish().unwrap()
}

fn with_offsets(records: &[Record], base_offset: i64) -> Vec<Record> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: base_offset + i as i64,
            ..r.clone()
        })
        .collect()
}

fn decode(batch: &Batch) -> streamlog::Result<Vec<Record>> {
    batch.records()?.collect()
}

/// Decodes whatever `bytes` hold through every entry point, checking the iterators'
/// contracts: a record iterator yields at most `recordsCount` records, stops after its
/// first error, and yields exactly `recordsCount` when it reports none; a batch that
/// parses has magic 2, its declared size and a matching CRC.
fn exercise(bytes: &[u8]) {
    if let Ok(batch) = Batch::parse(Bytes::copy_from_slice(bytes)) {
        let h = *batch.header();
        assert_eq!(h.magic, 2);
        assert_eq!(batch.size(), bytes.len());
        assert_eq!(h.size(), Some(bytes.len()));
        assert_eq!(h.crc, compute_crc(bytes));
        assert!(h.records_count >= 0 && h.last_offset_delta >= 0);
        if let Ok(mut iter) = batch.records() {
            let mut ok = 0usize;
            let mut failed = false;
            for item in iter.by_ref() {
                match item {
                    Ok(_) => ok += 1,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
                assert!(ok <= h.records_count as usize, "more records than declared");
            }
            assert!(iter.next().is_none(), "iterator continued after its end");
            if !failed {
                assert_eq!(ok, h.records_count as usize);
            }
        } else {
            assert_ne!(h.compression().ok(), Some(Compression::None));
        }
        let _ = batch.control_record();
    }
    let mut seen_err = false;
    for item in batches(Bytes::copy_from_slice(bytes)) {
        assert!(!seen_err, "batches() continued after an error");
        match item {
            Ok((pos, batch)) => assert!(pos + batch.size() <= bytes.len()),
            Err(_) => seen_err = true,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// build -> finish -> parse -> records() gives back exactly what was pushed, with
    /// offsets 0..n, for every codec, and the header says what the builder was told.
    #[test]
    fn records_round_trip_for_every_codec(
        records in arb_records(),
        producer in (any::<i64>(), any::<i16>(), any::<i32>()),
        leader_epoch in any::<i32>(),
        transactional in any::<bool>(),
    ) {
        let (producer_id, producer_epoch, base_sequence) = producer;
        let expected = with_offsets(&records, 0);
        for codec in available_codecs() {
            let mut b = BatchBuilder::new()
                .compression(codec)
                .producer(producer_id, producer_epoch, base_sequence)
                .partition_leader_epoch(leader_epoch)
                .transactional(transactional);
            let mut size = RECORDS_OFFSET;
            for r in &records {
                size += b.record_size(
                    r.timestamp,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &r.headers,
                );
                b.push_record(r).unwrap();
                prop_assert_eq!(b.uncompressed_size(), size);
            }
            prop_assert_eq!(b.len(), records.len());
            let bytes = b.finish().unwrap();
            if codec == Compression::None {
                prop_assert_eq!(bytes.len(), size);
            }
            let batch = Batch::parse(Bytes::from(bytes.clone())).unwrap();
            let h = *batch.header();
            prop_assert_eq!(h.compression().unwrap(), codec);
            prop_assert_eq!(h.base_offset, 0);
            prop_assert_eq!(h.records_count as usize, records.len());
            prop_assert_eq!(batch.last_offset(), records.len() as i64 - 1);
            prop_assert_eq!(h.base_timestamp, records[0].timestamp);
            prop_assert_eq!(h.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap());
            prop_assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (producer_id, producer_epoch, base_sequence)
            );
            prop_assert_eq!(h.partition_leader_epoch, leader_epoch);
            prop_assert_eq!(h.is_transactional(), transactional);
            prop_assert!(!h.is_control() && !h.has_delete_horizon());
            prop_assert_eq!(batch.control_record().unwrap(), None);
            prop_assert_eq!(&decode(&batch).unwrap(), &expected, "{}", codec);

            let mut all = batches(Bytes::from(bytes));
            let (pos, again) = all.next().unwrap().unwrap();
            prop_assert_eq!(pos, 0);
            prop_assert_eq!(again, batch);
            prop_assert!(all.next().is_none());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    /// Random headers and record sections behind a correct length, magic and CRC, so the
    /// record decoder and the decompressors see the garbage. Parsing succeeds exactly when
    /// the counts are non-negative; ids 5-7 are unsupported codecs, not a panic.
    #[test]
    fn garbage_behind_a_valid_crc_never_panics(
        attributes in 0u8..0x80,
        fields in proptest::collection::vec(any::<u8>(), RECORDS_COUNT_OFFSET - LAST_OFFSET_DELTA_OFFSET),
        records_count in prop_oneof![0i32..64, any::<i32>()],
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut b = vec![0u8; RECORDS_OFFSET];
        b.extend_from_slice(&body);
        let len = (b.len() - PARTITION_LEADER_EPOCH_OFFSET) as i32;
        b[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET].copy_from_slice(&len.to_be_bytes());
        b[MAGIC_OFFSET] = 2;
        b[ATTRIBUTES_OFFSET + 1] = attributes;
        b[LAST_OFFSET_DELTA_OFFSET..RECORDS_COUNT_OFFSET].copy_from_slice(&fields);
        b[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&records_count.to_be_bytes());
        reseal_crc(&mut b);

        let last_offset_delta = i32::from_be_bytes(fields[..4].try_into().unwrap());
        let parsed = Batch::parse(Bytes::from(b.clone()));
        prop_assert_eq!(parsed.is_ok(), records_count >= 0 && last_offset_delta >= 0);
        if let Ok(batch) = parsed {
            let records = batch.records();
            match attributes & 0x07 {
                0 => prop_assert!(records.is_ok()),
                1..=4 => {}
                _ => prop_assert!(
                    matches!(records, Err(streamlog::Error::UnsupportedCodec { .. })),
                    "{:?}", records
                ),
            }
        }
        exercise(&b);
    }

    /// A valid batch whose compressed or plain records section is damaged, with the CRC
    /// recomputed so the damage reaches the decoder: no panic, and the iterators keep
    /// their contracts.
    #[test]
    fn damaged_records_behind_a_valid_crc_never_panic(
        records in proptest::collection::vec(arb_record(), 1..8),
        codec in arb_codec(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut b = build(&records, codec);
        let pos = RECORDS_OFFSET + at.index(b.len() - RECORDS_OFFSET);
        b[pos] ^= xor;
        reseal_crc(&mut b);
        prop_assert!(Batch::parse(Bytes::from(b.clone())).is_ok());
        exercise(&b);
    }

    /// One changed byte in a valid batch: the base offset and the partition leader epoch
    /// are outside the CRC and change only what they name; any other change, and in
    /// particular every change in the CRC-covered bytes [21, end), fails `Batch::parse`.
    #[test]
    fn one_changed_byte_is_rejected_unless_outside_the_crc(
        records in proptest::collection::vec(arb_record(), 1..8),
        codec in arb_codec(),
        in_header in any::<bool>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let good = build(&records, codec);
        // Half the changes go to the header, where each field has its own rule.
        let pos = at.index(if in_header { RECORDS_OFFSET } else { good.len() });
        let mut bad = good.clone();
        bad[pos] ^= xor;
        let parsed = Batch::parse(Bytes::from(bad.clone()));
        if pos < BATCH_LENGTH_OFFSET {
            let batch = parsed.unwrap();
            let base = i64::from_be_bytes(bad[..BATCH_LENGTH_OFFSET].try_into().unwrap());
            prop_assert_eq!(batch.base_offset(), base);
            let got = decode(&batch).unwrap();
            let want: Vec<Record> = with_offsets(&records, 0)
                .into_iter()
                .map(|r| Record { offset: base.wrapping_add(r.offset), ..r })
                .collect();
            prop_assert_eq!(got, want);
        } else if (PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET).contains(&pos) {
            let batch = parsed.unwrap();
            prop_assert_ne!(batch.header().partition_leader_epoch, 0);
            prop_assert_eq!(decode(&batch).unwrap(), with_offsets(&records, 0));
        } else {
            prop_assert!(parsed.is_err(), "byte {} ^ {:#04x} accepted ({})", pos, xor, codec);
        }
        exercise(&bad);
    }

    /// A batch cut short is never a batch, and `batches` reports it instead of stopping
    /// silently.
    #[test]
    fn truncated_batches_are_rejected(
        records in proptest::collection::vec(arb_record(), 1..8),
        codec in arb_codec(),
        at in any::<prop::sample::Index>(),
    ) {
        let good = build(&records, codec);
        let cut = &good[..at.index(good.len())];
        prop_assert!(Batch::parse(Bytes::copy_from_slice(cut)).is_err());
        let results: Vec<_> = batches(Bytes::copy_from_slice(cut)).collect();
        if cut.is_empty() {
            prop_assert!(results.is_empty());
        } else {
            prop_assert_eq!(results.len(), 1);
            prop_assert!(results[0].is_err());
        }
    }
}

/// The CRC-coverage property for control batches too, exhaustively over every byte and bit.
#[test]
fn every_bit_flip_in_a_control_batch_under_the_crc_is_rejected() {
    for kind in [ControlRecordType::Commit, ControlRecordType::Abort] {
        let good = control_batch(kind, 9, 1, 4, 1_700_000_000_000).unwrap();
        assert!(Batch::parse(Bytes::from(good.clone())).is_ok());
        for pos in ATTRIBUTES_OFFSET..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[pos] ^= 1 << bit;
                assert!(
                    Batch::parse(Bytes::from(bad)).is_err(),
                    "{kind:?}: flip of bit {bit} at byte {pos} accepted"
                );
            }
        }
    }
}

/// A capacity hint past any batch (the builder is public) reserves a bounded buffer:
/// it was reserved whole ("capacity overflow" panic, or an abort for a huge one). The
/// batch still holds what is pushed.
#[test]
fn a_huge_capacity_hint_is_only_a_hint() {
    for hint in [usize::MAX, 1 << 40] {
        let mut b = BatchBuilder::with_capacity(hint);
        b.push(1, Some(b"k"), Some(b"v"), &[]).unwrap();
        let bytes = b.finish().unwrap();
        let batch = streamlog::format::Batch::parse(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(batch.header().records_count, 1);
    }
}
