//! Appends of compressed batches a client wrote (not the library's encoder): the log
//! takes what Kafka's readers read, and refuses what they cannot.
#![cfg(all(feature = "lz4", feature = "gzip"))]

mod common;

use common::*;
use streamlog::Error;
use streamlog::format::Compression;

/// `batch` (uncompressed) with its records replaced by `payload`, compressed with codec
/// `codec_id`, sealed again.
fn with_payload(batch: &[u8], codec_id: u16, payload: &[u8]) -> Vec<u8> {
    use streamlog::format::batch::{ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, RECORDS_OFFSET};
    let mut out = batch[..RECORDS_OFFSET].to_vec();
    out.extend_from_slice(payload);
    let len = (out.len() - BATCH_LENGTH_OFFSET - 4) as i32;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    let attributes = u16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]]);
    let attributes = (attributes & !0x07) | codec_id;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    reseal_crc(&mut out);
    out
}

/// From a review: a batch of linked lz4 blocks (liblz4's and the `lz4` crate's
/// default) was accepted and stored, though Kafka's reader refuses it; a gzip payload
/// of two members (which Java's `GZIPInputStream` reads whole) was refused as holding
/// fewer records than it declares.
#[test]
fn appends_take_what_kafka_reads_and_refuse_what_it_cannot() {
    use std::io::Write;
    let plain = batch(0, 4, Compression::None);
    let records = &plain[streamlog::format::batch::RECORDS_OFFSET..];
    let (_fs, log) = small_sim_log();

    let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
        lz4_flex::frame::FrameInfo::new().block_mode(lz4_flex::frame::BlockMode::Linked),
        Vec::new(),
    );
    enc.write_all(records).unwrap();
    let mut linked = with_payload(&plain, 3, &enc.finish().unwrap());
    let err = log.append(&mut linked).unwrap_err();
    assert!(matches!(err, Error::InvalidBatch { .. }), "{err}");
    assert_eq!(log.log_end_offset(), 0);

    // The records split after the second one, each part its own gzip member.
    let mut split = 0;
    for _ in 0..2 {
        let len = streamlog::format::varint::read_varint(records, &mut split).unwrap();
        split += len as usize;
    }
    let mut two = Vec::new();
    for part in [&records[..split], &records[split..]] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part).unwrap();
        two.extend(gz.finish().unwrap());
    }
    let mut members = with_payload(&plain, 1, &two);
    log.append(&mut members).unwrap();
    let values: Vec<_> = read_all(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values.len(), 4);
    assert_eq!(&values[3][..], value(0, 3).as_bytes());
}
