//! The batch decoder's fuzz entry point and its checks.

use bytes::Bytes;

use streamlog::Error;
use streamlog::format::batch::{self, ATTRIBUTES_OFFSET, MAGIC_V2};
use streamlog::format::{Batch, DecodeOptions, Record, TimestampType, batches};

use crate::*;

/// Fuzz entry point for the batch decoder. Feeds `data` to [`Batch::parse`] and, if it
/// parses, checks that the stored CRC-32C really covers bytes 21.. and the length is the
/// input's, decodes every record (1 MiB decompression cap), compares the record iterator
/// with `validate_records` and calls `control_record`; then iterates [`batches`] over
/// the whole input.
///
/// # Panics
/// Only if an invariant of the decoder is violated.
pub fn fuzz_decode_batch(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    match Batch::parse(bytes.clone()) {
        Ok(batch) => check_batch(&batch, data),
        Err(e) => assert!(
            matches!(e, Error::InvalidBatch { .. }),
            "Batch::parse failed with {e:?}, not InvalidBatch"
        ),
    }
    let mut expected_pos = 0;
    let mut failed = false;
    for item in batches(bytes) {
        assert!(!failed, "batches() yielded an item after an error");
        match item {
            Ok((pos, batch)) => {
                assert_eq!(pos, expected_pos, "batches() skipped or re-read bytes");
                let raw = data
                    .get(pos..pos + batch.size())
                    .expect("batches() yielded a batch past the end of its input");
                assert_eq!(&batch.bytes()[..], raw, "batch bytes differ from the input");
                check_batch(&batch, raw);
                expected_pos += batch.size();
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::InvalidBatch { .. }),
                    "batches() failed with {e:?}, not InvalidBatch"
                );
                failed = true;
            }
        }
    }
    if !failed {
        assert_eq!(
            expected_pos,
            data.len(),
            "batches() ended early without an error"
        );
    }
}

/// What decoding the records of one batch gave.
pub(crate) struct Decoded {
    /// The records yielded before the iterator stopped.
    pub(crate) records: Vec<Record>,
    /// The error that stopped it, or that `records_with` returned.
    pub(crate) error: Option<Error>,
}

/// Decodes every record of `batch`, checking the iterator's contract: it stops after its
/// first error and never yields more than `recordsCount` records.
pub(crate) fn decode(batch: &Batch, options: &DecodeOptions) -> Decoded {
    let declared = batch.header().records_count;
    let mut iter = match batch.records_with(options) {
        Ok(iter) => iter,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::InvalidBatch { .. } | Error::UnsupportedCodec { .. }
                ),
                "records_with failed with {e:?}"
            );
            return Decoded {
                records: Vec::new(),
                error: Some(e),
            };
        }
    };
    let mut records = Vec::new();
    let mut error = None;
    for item in iter.by_ref() {
        match item {
            Ok(r) => {
                records.push(r);
                assert!(
                    records.len() as u64 <= declared as u64,
                    "the iterator yielded more than the {declared} declared records"
                );
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    match &error {
        Some(e) => {
            assert!(
                matches!(e, Error::InvalidBatch { .. }),
                "a record failed with {e:?}, not InvalidBatch"
            );
            assert!(
                iter.next().is_none(),
                "the record iterator went on after an error"
            );
        }
        None => assert_eq!(
            records.len() as u64,
            declared as u64,
            "the iterator ended cleanly after fewer records than declared"
        ),
    }
    Decoded { records, error }
}

fn check_batch(batch: &Batch, raw: &[u8]) {
    let h = batch.header();
    assert_eq!(
        h.size(),
        Some(raw.len()),
        "accepted a batch whose length field does not match its size"
    );
    assert_eq!(h.magic, MAGIC_V2, "accepted magic {}", h.magic);
    let crc = crc32c::crc32c(&raw[ATTRIBUTES_OFFSET..]);
    assert_eq!(
        crc, h.crc,
        "accepted a batch whose stored CRC {:#010x} is not the CRC-32C {crc:#010x} of its bytes",
        h.crc
    );
    assert!(
        h.records_count >= 0 && h.last_offset_delta >= 0,
        "accepted negative counts"
    );

    let options = fuzz_options();
    let decoded = decode(batch, &options);
    if h.timestamp_type() == TimestampType::LogAppendTime {
        for r in &decoded.records {
            assert_eq!(
                r.timestamp, h.max_timestamp,
                "LogAppendTime record not stamped"
            );
        }
    }
    // The validator and the iterator share one record parser; they must agree. The
    // validator also requires offset deltas 0, 1, 2, ...
    let sequential = decoded.error.is_none()
        && decoded
            .records
            .iter()
            .zip(0i64..)
            .all(|(r, i)| r.offset == h.base_offset.wrapping_add(i));
    match batch::validate_records(raw, h, &options) {
        Ok(n) => {
            assert!(
                decoded.error.is_none(),
                "validate_records accepted a batch whose records fail to decode: {:?}",
                decoded.error
            );
            assert_eq!(n, decoded.records.len(), "validate_records miscounted");
            assert!(
                sequential,
                "validate_records accepted non-sequential offsets"
            );
        }
        Err(e) => assert!(
            !sequential,
            "validate_records rejected records the iterator decodes in sequence: {e}"
        ),
    }

    match batch.control_record() {
        Ok(Some(_)) => assert!(h.is_control(), "a control record in an ordinary batch"),
        Ok(None) => assert!(!h.is_control(), "a control batch without its record"),
        Err(e) => assert!(
            h.is_control(),
            "control_record failed on an ordinary batch: {e}"
        ),
    }
}
