//! Walking a segment's batches and records: the checks of each batch, the default mode's
//! batch lines, and the records handed to the `--json` output.

use std::io::{self, Write};
use std::path::Path;

use streamlog::Error;
use streamlog::format::batch::{self, RECORD_BATCH_OVERHEAD};
use streamlog::format::{Batch, BatchHeader, ControlRecord, ControlRecordType};

use super::segment_file::{Checked, SegmentFile};
use super::{BatchInfo, Dumper, control_type_name, json};

impl<O: Write, E: Write> Dumper<'_, O, E> {
    /// Walks the batches of `file` (opened from `path`), printing each, and with
    /// `--verify-index` returns those that passed their checks.
    pub(super) fn batches(
        &mut self,
        path: &Path,
        base: Option<i64>,
        file: &mut SegmentFile,
    ) -> io::Result<Vec<BatchInfo>> {
        let mut valid = Vec::new();
        let mut previous_last_offset: Option<i64> = None;
        let mut pos = 0u64;
        while pos < file.len() {
            let position = pos;
            let left = file.len() - pos;
            let read_failed = |source| Error::Io {
                context: format!("read {} at position {position}", path.display()),
                source,
            };
            let (prefix, got) = match file.prefix(position) {
                Ok(read) => read,
                Err(e) => return self.problem(read_failed(e)).map(|()| valid),
            };
            let size = match batch::peek_size(&prefix[..got]) {
                None => {
                    let reason = format!(
                        "truncated batch: the last {left} bytes are too few for a batch header"
                    );
                    return self.corruption(path, position, reason).map(|()| valid);
                }
                Some((_, size)) if size < RECORD_BATCH_OVERHEAD as i64 => {
                    let reason =
                        format!("batchLength declares {size} bytes, below the 61-byte minimum");
                    return self.corruption(path, position, reason).map(|()| valid);
                }
                Some((_, size)) => match usize::try_from(size) {
                    Ok(size) if size as u64 <= left => size,
                    _ => {
                        let reason = format!(
                            "truncated batch: it declares {size} bytes, {left} are left in the file"
                        );
                        return self.corruption(path, position, reason).map(|()| valid);
                    }
                },
            };
            pos += size as u64;
            let batch = match file.batch(position, size) {
                Ok(Checked::Valid(batch)) => batch,
                Ok(Checked::Damaged {
                    header,
                    crc_valid,
                    error,
                }) => {
                    // Print what the header claims when it is a v2 header at all.
                    if let Some(h) = header
                        && !self.options.json
                    {
                        self.batch_line(position, &h, size, crc_valid, "")?;
                    }
                    self.corruption(path, position, error.to_string())?;
                    continue;
                }
                Err(e) => return self.problem(read_failed(e)).map(|()| valid),
            };
            let h = *batch.header();
            self.summary.batches += 1;
            let control = if h.is_control() && h.records_count > 0 {
                match batch.control_record() {
                    Ok(control) => control,
                    Err(e) => {
                        self.corruption(path, position, format!("control batch: {e}"))?;
                        None
                    }
                }
            } else {
                None
            };
            if !self.options.json {
                let suffix = match control {
                    Some(c) => control_suffix(c),
                    // Compaction removed its marker and kept the batch to hold its offset.
                    None if h.is_control() && h.records_count == 0 => {
                        " endTxnMarker: none (removed by compaction)".to_owned()
                    }
                    None if h.is_control() => " control: INVALID".to_owned(),
                    None => String::new(),
                };
                self.batch_line(position, &h, size, true, &suffix)?;
            }
            if let Some(base) = base
                && h.base_offset < base
            {
                let reason = format!(
                    "baseOffset {} is below the segment's base offset {base}",
                    h.base_offset
                );
                self.corruption(path, position, reason)?;
            }
            // What the log's own check refuses too: offsets past the segment's 32-bit
            // relative range, or past i64 (the base offset is outside the CRC).
            let last = h.base_offset.checked_add(i64::from(h.last_offset_delta));
            let fits =
                |base: i64| last.is_some_and(|l| l < i64::MAX && l - base <= i64::from(i32::MAX));
            if h.last_offset_delta < 0
                || base.is_some_and(|base| h.base_offset >= base && !fits(base))
            {
                let reason = format!(
                    "offsets from {} (+{}) do not fit the segment",
                    h.base_offset, h.last_offset_delta
                );
                self.corruption(path, position, reason)?;
            }
            if let Some(previous) = previous_last_offset
                && h.base_offset <= previous
            {
                let reason = format!(
                    "baseOffset {} does not follow the previous batch's last offset {previous}",
                    h.base_offset
                );
                self.corruption(path, position, reason)?;
            }
            previous_last_offset = Some(h.last_offset());
            if self.options.verify_index {
                valid.push(BatchInfo {
                    position,
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                });
            }
            self.records(path, position, &batch, h.is_control(), control)?;
        }
        Ok(valid)
    }

    /// One batch line of the default mode.
    fn batch_line(
        &mut self,
        position: u64,
        h: &BatchHeader,
        size: usize,
        crc_valid: bool,
        suffix: &str,
    ) -> io::Result<()> {
        let codec = match h.compression() {
            Ok(codec) => codec.name().to_owned(),
            Err(_) => format!("unknown({})", h.attributes & 0x07),
        };
        writeln!(
            self.out,
            "position: {position} baseOffset: {} lastOffset: {} count: {} baseSequence: {} \
             lastSequence: {} producerId: {} producerEpoch: {} isTransactional: {} \
             isControl: {} codec: {codec} crcValid: {crc_valid} size: {size} \
             maxTimestamp: {}{suffix}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.base_sequence,
            last_sequence(h),
            h.producer_id,
            h.producer_epoch,
            h.is_transactional(),
            h.is_control(),
            h.max_timestamp,
        )
    }

    /// Decodes the records of a valid batch, counting them and, with `--json`, printing
    /// them. A control batch's records are printed as markers, if its marker decoded.
    fn records(
        &mut self,
        path: &Path,
        position: u64,
        batch: &Batch,
        is_control: bool,
        control: Option<ControlRecord>,
    ) -> io::Result<()> {
        let records = match batch.records() {
            Ok(records) => records,
            Err(e) => return self.record_error(path, position, e),
        };
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => return self.record_error(path, position, e),
            };
            self.summary.records += 1;
            if !self.options.json {
                continue;
            }
            match (is_control, control) {
                (false, _) => json::write_record(self.out, &record)?,
                (true, Some(c)) => json::write_control(self.out, &record, c)?,
                (true, None) => {} // reported as corrupt already
            }
        }
        Ok(())
    }

    fn record_error(&mut self, path: &Path, position: u64, e: Error) -> io::Result<()> {
        match e {
            // Not damage: this build cannot decompress the batch.
            Error::UnsupportedCodec { .. } => self.problem(format_args!(
                "{}: records of the batch at position {position} not decoded: {e}",
                path.display()
            )),
            e => self.corruption(path, position, e.to_string()),
        }
    }
}

/// The sequence of a batch's last record, as Kafka computes it: -1 without a producer,
/// else the base sequence plus the last offset delta, wrapping from `i32::MAX` to 0.
fn last_sequence(h: &BatchHeader) -> i32 {
    if h.base_sequence < 0 {
        return -1;
    }
    let space = i64::from(i32::MAX) + 1;
    let last = (i64::from(h.base_sequence) + i64::from(h.last_offset_delta)).rem_euclid(space);
    i32::try_from(last).expect("below 2^31 by the remainder")
}

/// Appended to a control batch's line as kafka-dump-log prints it: a transaction marker
/// as ` endTxnMarker: COMMIT coordinatorEpoch: 7` (or ABORT), other control types (KRaft's)
/// as ` control: LEADER_CHANGE`.
fn control_suffix(c: ControlRecord) -> String {
    match (c.kind, c.coordinator_epoch) {
        (ControlRecordType::Commit | ControlRecordType::Abort, Some(epoch)) => format!(
            " endTxnMarker: {} coordinatorEpoch: {epoch}",
            control_type_name(c.kind)
        ),
        _ => format!(" control: {}", control_type_name(c.kind)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fs;

    use bytes::Bytes;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        self as kp, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use serde_json::{Value, json};
    use streamlog::format::batch;
    use streamlog::format::{BatchBuilder, Compression, ControlRecordType, control_batch};
    use streamlog::log::{Log, LogConfig};

    use crate::dump::EXIT_PROBLEMS;
    use crate::dump::testing::{
        Appended, T, dump, field, fields, parse_json, segment_path, write_log, write_segment,
    };

    fn expected_line(a: &Appended) -> String {
        format!(
            "position: {} baseOffset: {} lastOffset: {} count: {} baseSequence: -1 \
             lastSequence: -1 producerId: -1 producerEpoch: -1 isTransactional: false \
             isControl: false codec: {} crcValid: true size: {} maxTimestamp: {}",
            a.info.position,
            a.info.base_offset,
            a.info.last_offset,
            a.info.record_count,
            a.codec.name(),
            a.size,
            a.info.max_timestamp
        )
    }

    #[test]
    fn default_output_has_a_header_per_segment_and_a_line_per_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("events-0");
        let appended = write_log(&dir, 30);
        let bases: BTreeSet<i64> = appended.iter().map(|a| a.info.segment_base).collect();
        assert!(bases.len() >= 3, "only {} segments", bases.len());

        let o = dump(&[], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.files, bases.len());
        assert_eq!(o.summary.batches, 30);
        let records: i32 = appended.iter().map(|a| a.info.record_count).sum();
        assert_eq!(o.summary.records, records as u64);

        // Exactly: per segment a header line, then its batches; then the summary.
        let mut expected = Vec::new();
        for &base in &bases {
            let path = segment_path(&dir, base, "log");
            let len = fs::metadata(&path).unwrap().len();
            expected.push(format!(
                "Dumping {} (base offset {base}, {len} bytes)",
                path.display()
            ));
            expected.extend(
                appended
                    .iter()
                    .filter(|a| a.info.segment_base == base)
                    .map(expected_line),
            );
        }
        expected.push(format!(
            "Summary: files: {} batches: 30 records: {records} problems: 0",
            bases.len()
        ));
        assert_eq!(o.out.lines().collect::<Vec<_>>(), expected);
        assert!(o.out.contains(" codec: lz4 ") && o.out.contains(" codec: snappy "));

        // A single file dumps only that file.
        let first = segment_path(&dir, 0, "log");
        let o = dump(&[], &[&first]);
        assert_eq!(o.summary.files, 1);
        assert_eq!(
            o.out.lines().nth(1).unwrap(),
            expected_line(&appended[0]),
            "{}",
            o.out
        );
    }

    #[test]
    fn control_batches_are_labelled_and_marked_in_json() {
        let tmp = tempfile::tempdir().unwrap();
        let mut data = BatchBuilder::new();
        data.push(T, Some(b"k"), Some(b"v"), &[]).unwrap();
        data.push(T + 1, Some(b"k"), Some(b"w"), &[]).unwrap();
        let abort = control_batch(ControlRecordType::Abort, 1000, 3, 7, T + 10).unwrap();
        let commit = control_batch(ControlRecordType::Commit, 1000, 4, 8, T + 20).unwrap();
        let path = write_segment(tmp.path(), 40, vec![data.finish().unwrap(), abort, commit]);

        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        let lines: Vec<&str> = o.out.lines().collect();
        assert!(lines[1].starts_with("position: 0 baseOffset: 40 lastOffset: 41 count: 2 "));
        assert!(lines[1].contains(" isTransactional: false isControl: false "));
        assert!(!lines[1].contains("endTxnMarker") && !lines[1].contains(" control: "));
        assert!(lines[2].contains(
            " baseOffset: 42 lastOffset: 42 count: 1 baseSequence: -1 lastSequence: -1 \
             producerId: 1000 producerEpoch: 3 isTransactional: true isControl: true codec: none "
        ));
        assert!(
            lines[2]
                .ends_with(" maxTimestamp: 1700000000010 endTxnMarker: ABORT coordinatorEpoch: 7")
        );
        assert!(
            lines[3].ends_with(" endTxnMarker: COMMIT coordinatorEpoch: 8"),
            "{}",
            lines[3]
        );

        let o = dump(&["--json"], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        let lines: Vec<&str> = o.out.lines().collect();
        assert_eq!(lines.len(), 4, "{}", o.out);
        assert_eq!(
            lines[0],
            r#"{"offset":40,"timestamp":1700000000000,"key":"k","value":"v","headers":{}}"#
        );
        assert_eq!(
            lines[2],
            r#"{"offset":42,"timestamp":1700000000010,"control":"ABORT","coordinatorEpoch":7}"#
        );
        assert_eq!(
            lines[3],
            r#"{"offset":43,"timestamp":1700000000020,"control":"COMMIT","coordinatorEpoch":8}"#
        );
    }

    /// From a review: the base offset is outside the CRC, and a flipped high bit of
    /// the last batch's passed the dump (only a following batch would have shown it).
    #[test]
    fn offsets_that_do_not_fit_the_segment_are_a_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("far-0");
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let mut last = None;
        for i in 0..3 {
            let mut b = BatchBuilder::new();
            b.push(T + i, Some(b"key"), Some(b"value"), &[]).unwrap();
            last = Some(log.append(&mut b.finish().unwrap()).unwrap());
        }
        log.close().unwrap();
        let path = segment_path(&dir, 0, "log");
        let mut bytes = fs::read(&path).unwrap();
        let at = last.unwrap().position as usize;
        bytes[at + 2] ^= 0x01; // + 2^40
        fs::write(&path, &bytes).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(o.err.contains("do not fit the segment"), "{}", o.err);
    }

    #[test]
    fn corrupt_and_truncated_batches_report_path_and_position() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bad-0");
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let mut infos = Vec::new();
        for i in 0..5 {
            let mut b = BatchBuilder::new();
            b.push(T + i, Some(b"key"), Some(b"some value"), &[])
                .unwrap();
            infos.push(log.append(&mut b.finish().unwrap()).unwrap());
        }
        log.close().unwrap();
        let path = segment_path(&dir, 0, "log");
        let good = fs::read(&path).unwrap();

        // A flipped byte inside batch 2 (in its maxTimestamp, covered by the CRC).
        let pos2 = infos[2].position as usize;
        let mut bad = good.clone();
        bad[pos2 + batch::MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert_eq!(o.summary.exit_status(), EXIT_PROBLEMS);
        let want = format!("error: {}: corruption at position {pos2}: ", path.display());
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert!(o.err.contains("`crc`"), "{}", o.err);
        let lines: Vec<&str> = o
            .out
            .lines()
            .filter(|l| l.starts_with("position:"))
            .collect();
        assert_eq!(
            lines.len(),
            5,
            "the dump goes on after a CRC failure: {}",
            o.out
        );
        assert!(lines[2].starts_with(&format!("position: {pos2} ")));
        assert!(lines[2].contains("crcValid: false"), "{}", lines[2]);
        assert!(lines[3].contains("crcValid: true"));
        assert_eq!(o.summary.batches, 4);
        // --json reports the same and prints the other records.
        let o = dump(&["--json"], &[&path]);
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert_eq!(o.out.lines().count(), 4);

        // A wrong magic byte.
        let mut bad = good.clone();
        bad[pos2 + batch::MAGIC_OFFSET] = 1;
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert!(
            o.err.starts_with(&want) && o.err.contains("`magic`"),
            "{}",
            o.err
        );

        // A file cut in the middle of batch 4.
        let pos4 = infos[4].position as usize;
        fs::write(&path, &good[..pos4 + 30]).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        let want = format!(
            "error: {}: corruption at position {pos4}: truncated batch",
            path.display()
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert_eq!(o.summary.batches, 4);

        // Fewer bytes than a batch prefix at the end.
        fs::write(&path, &good[..pos4 + 5]).unwrap();
        let o = dump(&[], &[&dir]);
        assert!(o.err.starts_with(&want), "{}", o.err);

        // An impossible batch length: the rest of the file cannot be located.
        let mut bad = good.clone();
        bad[pos2 + batch::BATCH_LENGTH_OFFSET..pos2 + batch::PARTITION_LEADER_EPOCH_OFFSET]
            .copy_from_slice(&(-5i32).to_be_bytes());
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err
                .contains(&format!("position {pos2}: batchLength declares 7 bytes"))
        );
        assert_eq!(o.summary.batches, 2);

        // Offsets going backwards (the base offset is outside the CRC).
        let mut bad = good.clone();
        bad[pos2..pos2 + 8].copy_from_slice(&0i64.to_be_bytes());
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err
                .contains("does not follow the previous batch's last offset 1")
        );
    }

    /// A record at `offset`, the `delta`-th of its batch. Its encoder starts a new batch
    /// whenever offset - sequence changes, so the sequence follows the offset delta (from
    /// -1, which is what it writes as the base sequence of a batch without a producer).
    fn kp_record(offset: i64, delta: i32, key: Option<Bytes>, value: Option<Bytes>) -> kp::Record {
        kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: delta - 1,
            timestamp: T + offset,
            key,
            value,
            headers: IndexMap::new(),
        }
    }

    fn kp_encode(records: &[kp::Record], codec: kp::Compression) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    /// Raw snappy (no xerial framing), as librdkafka writes it.
    #[cfg(feature = "snappy")]
    fn kp_encode_raw_snappy(records: &[kp::Record]) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: kp::Compression::Snappy,
        };
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            records,
            &options,
            Some(
                |input: &mut bytes::BytesMut, out: &mut bytes::BytesMut, _| {
                    out.extend_from_slice(&snap::raw::Encoder::new().compress_vec(input).unwrap());
                    Ok(())
                },
            ),
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_segment_written_by_kafka_protocol_dumps_correctly() {
        // (our codec name, kafka-protocol's codec or None for raw snappy)
        let mut codecs = vec![("none", Some(kp::Compression::None))];
        for (codec, theirs) in [
            (Compression::Gzip, Some(kp::Compression::Gzip)),
            (Compression::Snappy, Some(kp::Compression::Snappy)),
            (Compression::Snappy, None),
            (Compression::Lz4, Some(kp::Compression::Lz4)),
            (Compression::Zstd, Some(kp::Compression::Zstd)),
        ] {
            if codec.is_available() {
                codecs.push((codec.name(), theirs));
            }
        }
        let mut file = Vec::new();
        let mut expected_records = Vec::new();
        let mut next = 0i64;
        for (i, &(_, codec)) in codecs.iter().enumerate() {
            let records: Vec<kp::Record> = (0..3)
                .map(|j| {
                    let offset = next + j;
                    let key = (j != 1).then(|| Bytes::from(format!("key-{offset}")));
                    let value = Bytes::from(format!("batch {i} \"record\" {j}\n").repeat(20));
                    let mut r = kp_record(offset, j as i32, key, Some(value));
                    r.headers
                        .insert(StrBytes::from_static_str("h"), Some(Bytes::from("1")));
                    r.headers.insert(StrBytes::from_static_str("nothing"), None);
                    r
                })
                .collect();
            let batch = match codec {
                Some(codec) => kp_encode(&records, codec),
                #[cfg(feature = "snappy")]
                None => kp_encode_raw_snappy(&records),
                #[cfg(not(feature = "snappy"))]
                None => unreachable!("snappy is not available"),
            };
            if codec.is_none() {
                let data = &batch[batch::RECORDS_OFFSET..];
                assert_ne!(data.get(..2), Some(&b"\x82S"[..]), "not raw snappy");
            }
            file.extend_from_slice(&batch);
            expected_records.extend(records);
            next += 3;
        }
        let mut commit = kp_record(next, 0, None, None);
        commit.transactional = true;
        commit.control = true;
        commit.producer_id = 77;
        commit.producer_epoch = 2;
        commit.key = Some(Bytes::from_static(&[0, 0, 0, 1])); // version 0, COMMIT
        commit.value = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 19])); // coordinator epoch 19
        file.extend_from_slice(&kp_encode(&[commit], kp::Compression::None));

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kp-0");
        fs::create_dir(&dir).unwrap();
        fs::write(segment_path(&dir, 0, "log"), &file).unwrap();

        let o = dump(&[], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        let lines: Vec<&str> = o
            .out
            .lines()
            .filter(|l| l.starts_with("position:"))
            .collect();
        assert_eq!(lines.len(), codecs.len() + 1, "{}", o.out);
        for (i, (line, (name, _))) in lines.iter().zip(&codecs).enumerate() {
            let offsets = format!("baseOffset: {} lastOffset: {} count: 3 ", 3 * i, 3 * i + 2);
            assert!(line.contains(&offsets), "{line}");
            assert!(
                line.contains(&format!(" codec: {name} crcValid: true ")),
                "{line}"
            );
            let max_ts = T + 3 * i as i64 + 2;
            assert!(line.contains(&format!(" maxTimestamp: {max_ts}")), "{line}");
        }
        let marker = lines.last().unwrap();
        assert!(marker.contains(&format!("baseOffset: {next} lastOffset: {next} count: 1")));
        assert!(
            marker.ends_with(" endTxnMarker: COMMIT coordinatorEpoch: 19"),
            "{marker}"
        );

        let o = dump(&["--json"], &[&dir]);
        assert_eq!(o.err, "");
        let lines: Vec<Value> = o.out.lines().map(parse_json).collect();
        assert_eq!(lines.len(), expected_records.len() + 1);
        for (got, want) in lines.iter().zip(&expected_records) {
            assert_eq!(field(got, "offset"), &json!(want.offset));
            assert_eq!(field(got, "timestamp"), &json!(want.timestamp));
            let key = want
                .key
                .as_ref()
                .map(|k| String::from_utf8(k.to_vec()).unwrap());
            assert_eq!(field(got, "key"), &json!(key));
            let value = String::from_utf8(want.value.clone().unwrap().to_vec()).unwrap();
            assert_eq!(field(got, "value").as_str(), Some(value.as_str()));
            assert_eq!(
                fields(field(got, "headers")),
                [("h", &json!("1")), ("nothing", &Value::Null)]
            );
        }
        let last = lines.last().unwrap();
        assert_eq!(field(last, "offset"), &json!(next));
        assert_eq!(field(last, "control").as_str(), Some("COMMIT"));
        assert_eq!(field(last, "coordinatorEpoch"), &json!(19));
    }

    /// A batch with a codec id Kafka does not define (and a valid CRC) is listed, and its
    /// records are reported as not decoded rather than as damage.
    #[test]
    fn unknown_codecs_are_listed_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = BatchBuilder::new();
        b.push(T, None, Some(b"v"), &[]).unwrap();
        let mut bytes = b.finish().unwrap();
        bytes[batch::ATTRIBUTES_OFFSET + 1] = 5;
        let crc = batch::compute_crc(&bytes);
        bytes[batch::CRC_OFFSET..batch::ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        let path = write_segment(tmp.path(), 0, vec![bytes]);
        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.out.contains(" codec: unknown(5) crcValid: true "),
            "{}",
            o.out
        );
        let want = format!(
            "error: {}: records of the batch at position 0 not decoded: unsupported \
             compression codec 5",
            path.display()
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
    }

    /// Sequences wrap from `i32::MAX` to 0 (Kafka's `incrementSequence`), and the
    /// snapshot's first sequence wraps back the other way.
    #[test]
    fn the_last_sequence_wraps_past_i32_max() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = BatchBuilder::new().producer(9, 4, i32::MAX - 1);
        for i in 0..3 {
            b.push(T + i, None, Some(b"v"), &[]).unwrap();
        }
        let path = write_segment(tmp.path(), 0, vec![b.finish().unwrap()]);
        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        let line = o.out.lines().nth(1).unwrap();
        assert!(
            line.contains(&format!(
                " count: 3 baseSequence: {} lastSequence: 0 producerId: 9 producerEpoch: 4 \
                 isTransactional: false isControl: false ",
                i32::MAX - 1
            )),
            "{line}"
        );
    }
}
