//! Scenario tests of the partition log on the real file system and on SimFs.
mod common;

use common::*;
use std::sync::Arc;
use streamlog::Error;
use streamlog::format::Compression;
use streamlog::fs::SimFs;
use streamlog::log::{Log, LogConfig, ManualClock};

#[test]
fn append_read_reopen_with_every_codec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-3");
    let log = Log::open(&dir, small_config()).unwrap();
    let mut expected = Vec::new();
    for (tag, codec) in Compression::ALL.into_iter().cycle().take(40).enumerate() {
        let info = log.append(&mut batch(tag as u64, 5, codec)).unwrap();
        assert_eq!(info.base_offset, tag as i64 * 5);
        assert_eq!(info.last_offset, tag as i64 * 5 + 4);
        for i in 0..5 {
            expected.push(value(tag as u64, i));
        }
    }
    assert!(
        log.segments().len() > 3,
        "small segments must roll: {:?}",
        log.segments()
    );
    let got: Vec<String> = read_values(&log).unwrap();
    assert_eq!(got, expected);
    log.close().unwrap();
    assert!(list(&dir).contains(&".kafka_cleanshutdown".to_string()));

    let log = Log::open(&dir, small_config()).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(report.segments_scanned, 0, "a clean reopen scans nothing");
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.durable_offset(), 200);
    let got: Vec<String> = read_values(&log).unwrap();
    assert_eq!(got, expected);
    // Appending after reopen continues the offsets.
    assert_eq!(
        log.append(&mut batch(99, 2, Compression::None))
            .unwrap()
            .base_offset,
        200
    );
}

#[test]
fn second_writer_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap();
    let err = Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(log);
    Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap();
}

#[test]
fn reads_start_mid_log_via_the_index_and_respect_max_bytes() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::default().index_interval_bytes(100)).unwrap();
    append_batches(&log, 0..200, 3);
    for offset in [0, 1, 2, 3, 299, 300, 301, 598, 599] {
        let batches = log.read(offset, 1).unwrap();
        assert_eq!(batches.len(), 1, "at least one batch even past max_bytes");
        assert!(batches[0].base_offset() <= offset && offset <= batches[0].last_offset());
    }
    let batches = log.read(30, 10_000).unwrap();
    let total: usize = batches.iter().map(|b| b.size()).sum();
    assert!(
        total <= 10_000 && batches.len() > 10,
        "{total} bytes in {} batches",
        batches.len()
    );
    assert_eq!(
        log.read(600, 100).unwrap().len(),
        0,
        "reading at the end gives nothing"
    );
    assert!(matches!(
        log.read(601, 100),
        Err(Error::OffsetOutOfRange {
            requested: 601,
            log_start: 0,
            log_end: 600
        })
    ));
    assert!(matches!(
        log.read(-1, 100),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

/// Regression (found by the Vec-model proptest): truncate_to moved the durable position
/// while a rolled segment was still unsynced, so a power cut right after made recovery
/// report corruption and refuse to open.
#[test]
fn truncate_after_an_unflushed_roll_survives_a_power_cut() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(1, 3, Compression::None)).unwrap();
    log.roll().unwrap();
    log.append(&mut batch(2, 3, Compression::None)).unwrap();
    log.append(&mut batch(3, 3, Compression::None)).unwrap();
    assert_eq!(
        log.truncate_to(7).unwrap(),
        6,
        "cut at the start of the batch holding 7"
    );
    assert_eq!(log.durable_offset(), 6, "truncate_to is durable on return");
    std::mem::forget(log);
    let img = fs.crash_image(streamlog::fs::CrashImage::DropAll);
    let log = open_sim(&img, small_config()).unwrap();
    let values: Vec<_> = read_all(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    let expected: Vec<String> = (0..3)
        .map(|i| value(1, i))
        .chain((0..3).map(|i| value(2, i)))
        .collect();
    assert_eq!(
        values,
        expected
            .iter()
            .map(|v| bytes::Bytes::from(v.clone()))
            .collect::<Vec<_>>()
    );
}

/// Every kind of bad batch gets a typed error, and the log is unchanged and usable.
#[test]
fn append_rejects_bad_batches_without_damage() {
    use streamlog::format::{BatchBuilder, ControlRecordType, control_batch};
    let fs = SimFs::new();
    let log = open_sim(&fs, small_config().max_message_bytes(2000)).unwrap();
    log.append(&mut batch(1, 2, Compression::None)).unwrap();
    let good = batch(2, 2, Compression::None);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", vec![0xab; 100]),
        ("truncated", good[..good.len() - 1].to_vec()),
    ];
    let mut bad_crc = good.clone();
    bad_crc[30] ^= 1;
    cases.push(("bad crc", bad_crc));
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    cases.push(("magic 1", bad_magic));
    cases.push((
        "control batch",
        control_batch(ControlRecordType::Commit, 1, 0, 0, 0).unwrap(),
    ));
    let mut count = good.clone();
    count[57..61].copy_from_slice(&3i32.to_be_bytes());
    reseal_crc(&mut count);
    cases.push(("count != lastOffsetDelta + 1", count));
    let mut delta = good.clone();
    delta[23..27].copy_from_slice(&2i32.to_be_bytes());
    delta[57..61].copy_from_slice(&3i32.to_be_bytes());
    reseal_crc(&mut delta);
    cases.push(("declared count exceeds records", delta));
    let mut pid = good.clone();
    pid[43..51].copy_from_slice(&7i64.to_be_bytes());
    reseal_crc(&mut pid);
    cases.push(("producer id without sequence", pid));
    // Second record's offsetDelta (1) rewritten to 5: find it by re-encoding.
    let mut b = BatchBuilder::new();
    b.push(0, None, Some(b"a"), &[]).unwrap();
    b.push(0, None, Some(b"b"), &[]).unwrap();
    let mut od = b.finish().unwrap();
    let second = 61 + 1 + od[61] as usize / 2; // after the first record (len varint + body)
    assert_eq!(od[second + 3], 2, "offsetDelta 1 encoded as zigzag 2");
    od[second + 3] = 10;
    reseal_crc(&mut od);
    cases.push(("offset deltas not 0..n", od));
    let mut big = BatchBuilder::new();
    big.push(0, None, Some(&[0u8; 3000]), &[]).unwrap();
    cases.push(("too large", big.finish().unwrap()));
    let mut codec = good.clone();
    codec[22] |= 0x07;
    reseal_crc(&mut codec);
    cases.push(("codec 7", codec));

    for (name, mut bytes) in cases {
        let err = log.append(&mut bytes).expect_err(name);
        assert!(
            matches!(
                err,
                streamlog::Error::InvalidBatch { .. }
                    | streamlog::Error::RecordTooLarge { .. }
                    | streamlog::Error::UnsupportedCodec { .. }
            ),
            "{name}: {err}"
        );
        assert_eq!(log.log_end_offset(), 2, "{name} changed the log");
    }
    log.append(&mut batch(3, 1, Compression::None)).unwrap();
    log.flush().unwrap();
    assert_eq!(read_all(&log).unwrap().len(), 3);
}

/// From an API attack: `Log::append` and `append_encoded` took batches that broke
/// lookups, retention or transactions: a record timestamp below -1, a transactional
/// batch without a producer id (no marker can end it), and in `append_encoded` a
/// producer id without a sequence (a transactional one went unrecorded, so its ABORT
/// listed nothing). Each gets its own error, from both calls.
#[test]
fn append_refuses_batches_that_break_lookups_or_transactions() {
    use streamlog::format::BatchBuilder;
    let (_fs, log) = small_sim_log();
    let mut below = BatchBuilder::new();
    below.push(i64::MIN, None, Some(b"a"), &[]).unwrap();
    let mut below_in_second = BatchBuilder::new();
    below_in_second.push(5, None, Some(b"a"), &[]).unwrap();
    below_in_second.push(-2, None, Some(b"b"), &[]).unwrap();
    let mut txn_no_pid = BatchBuilder::new().transactional(true);
    txn_no_pid.push(5, None, Some(b"a"), &[]).unwrap();
    let mut pid_no_seq = BatchBuilder::new().producer(5, 0, -1);
    pid_no_seq.push(5, None, Some(b"a"), &[]).unwrap();
    for (name, b, want) in [
        ("a timestamp of i64::MIN", below, "timestamp"),
        (
            "a timestamp of -2 in the second record",
            below_in_second,
            "timestamp",
        ),
        (
            "transactional without a producer id",
            txn_no_pid,
            "producerId",
        ),
        (
            "a producer id without a sequence",
            pid_no_seq,
            "baseSequence",
        ),
    ] {
        let encoded = b.build().unwrap();
        let mut raw = encoded.as_bytes().to_vec();
        let by_bytes = log.append(&mut raw);
        let by_encoded = log.append_encoded(&mut encoded.clone());
        for (how, r) in [("append", by_bytes), ("append_encoded", by_encoded)] {
            let field = match &r {
                Err(Error::InvalidArgument { name, .. }) => *name,
                Err(Error::InvalidBatch { field, .. }) => *field,
                _ => panic!("{how} of a batch with {name}: {r:?}"),
            };
            assert_eq!(field, want, "{how} of a batch with {name}: {r:?}");
        }
        assert_eq!(log.log_end_offset(), 0, "{name} changed the log");
    }
    // The extremes readers decode are taken by both calls alike (the builder stores
    // the difference to the base timestamp wrapping), on a log that bounds no
    // timestamp.
    let log = open_sim(
        &SimFs::new(),
        small_config().timestamp_after_max_ms(i64::MAX),
    )
    .unwrap();
    let mut extremes = BatchBuilder::new();
    extremes.push(-1, None, Some(b"a"), &[]).unwrap();
    extremes.push(i64::MAX, None, Some(b"b"), &[]).unwrap();
    let encoded = extremes.build().unwrap();
    log.append(&mut encoded.as_bytes().to_vec()).unwrap();
    log.append_encoded(&mut encoded.clone()).unwrap();
    let stamps: Vec<i64> = read_all(&log)
        .unwrap()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(stamps, [-1, i64::MAX, -1, i64::MAX]);
}

/// From the retention review: a record from the far future (a producer's clock gone
/// wrong) held time retention back for its segment and every later one. Under
/// CreateTime the log refuses records outside `timestamp_before_max_ms` /
/// `timestamp_after_max_ms` of its clock (Kafka's `message.timestamp.*.max.ms`; after
/// defaults to Kafka 4.0's hour), by both append calls; records without a timestamp
/// pass, and LogAppendTime checks nothing.
#[test]
fn create_time_records_far_from_the_clock_are_refused() {
    use streamlog::format::{BatchBuilder, TimestampType};
    const NOW: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;
    let open = |config: LogConfig| {
        let clock = Arc::new(ManualClock::new(NOW));
        open_sim(&SimFs::new(), config.clock(clock)).unwrap()
    };
    let batch = |stamps: &[i64]| {
        let mut b = BatchBuilder::new();
        for &ts in stamps {
            b.push(ts, None, Some(b"v"), &[]).unwrap();
        }
        b.build().unwrap()
    };
    // Both calls, each on its own copy; `Ok` or the refused field.
    let append_both = |log: &Log, stamps: &[i64]| -> [Result<(), &'static str>; 2] {
        let encoded = batch(stamps);
        let mut raw = encoded.as_bytes().to_vec();
        [
            log.append(&mut raw),
            log.append_encoded(&mut encoded.clone()),
        ]
        .map(|r| match r {
            Ok(_) => Ok(()),
            Err(Error::InvalidArgument { name, .. }) => Err(name),
            Err(e) => panic!("{e:?}"),
        })
    };
    let refused = [Err("timestamp"), Err("timestamp")];
    let taken = [Ok(()), Ok(())];
    let log = open(small_config());
    assert_eq!(append_both(&log, &[NOW, NOW + HOUR + 1]), refused);
    assert_eq!(append_both(&log, &[NOW + HOUR + 1, -1]), refused);
    assert_eq!(log.log_end_offset(), 0, "a refused batch is not written");
    assert_eq!(
        append_both(&log, &[NOW + HOUR, 0, -1]),
        taken,
        "no before bound"
    );
    let bounded = open(
        small_config()
            .timestamp_before_max_ms(1000)
            .timestamp_after_max_ms(0),
    );
    assert_eq!(append_both(&bounded, &[NOW, NOW - 1001]), refused);
    assert_eq!(
        append_both(&bounded, &[-1, NOW - 1001]),
        refused,
        "-1 aside"
    );
    assert_eq!(append_both(&bounded, &[NOW + 1]), refused);
    assert_eq!(append_both(&bounded, &[-1, NOW - 1000, NOW]), taken);
    let append_time = open(
        small_config()
            .timestamp_type(TimestampType::LogAppendTime)
            .timestamp_after_max_ms(0),
    );
    assert_eq!(append_both(&append_time, &[NOW + 10 * HOUR]), taken);
    assert!(
        small_config()
            .timestamp_after_max_ms(-1)
            .validate()
            .is_err()
    );
    assert!(
        small_config()
            .timestamp_before_max_ms(-1)
            .validate()
            .is_err()
    );
}

/// From a review: a buffer appended to a LogAppendTime log says LogAppendTime after
/// the append, and a retry of it (an idempotent re-send) was refused as a client batch
/// claiming LogAppendTime. It is a duplicate again; and on a CreateTime log such a
/// batch is taken as CreateTime with its records' timestamps, as Kafka's broker does.
#[test]
fn a_batch_stamped_by_a_log_append_time_log_can_be_sent_again() {
    use std::sync::Arc;
    use streamlog::format::{BatchBuilder, TimestampType};
    use streamlog::log::ManualClock;
    let fs = SimFs::new();
    let config = LogConfig::default()
        .timestamp_type(TimestampType::LogAppendTime)
        .clock(Arc::new(ManualClock::new(5_000)));
    let log = open_sim(&fs, config).unwrap();
    let mut b = BatchBuilder::new().producer(7, 0, 0);
    b.push(1_000, Some(b"k"), Some(b"v"), &[]).unwrap();
    let mut bytes = b.finish().unwrap();
    let first = log.append(&mut bytes).unwrap();
    let again = log.append(&mut bytes).unwrap();
    assert_eq!(again.base_offset, first.base_offset, "a duplicate");
    assert_eq!(log.log_end_offset(), 1);
    let other = SimFs::new();
    let create_time = open_sim(&other, LogConfig::default()).unwrap();
    let info = create_time.append(&mut bytes).unwrap();
    assert_eq!(info.max_timestamp, 1_000);
    let batches = create_time.read(0, 1 << 20).unwrap();
    assert_eq!(
        batches[0].header().timestamp_type(),
        TimestampType::CreateTime
    );
    assert_eq!(read_all(&create_time).unwrap()[0].timestamp, 1_000);
}

/// From an API attack: a batch whose header maxTimestamp (0) was below its records'
/// (1.7e12) was taken as is. Time lookups then skipped its records, and a time
/// retention pass deleted records stamped "now". The log sets the header to the
/// records' maximum, as Kafka's broker does.
#[test]
fn append_sets_a_wrong_max_timestamp_to_the_records() {
    use streamlog::format::BatchBuilder;
    let (_fs, log) = small_sim_log();
    let ts = 1_700_000_000_000;
    let mut b = BatchBuilder::new();
    b.push(ts, Some(b"k"), Some(b"v"), &[]).unwrap();
    b.push(ts + 5, Some(b"k"), Some(b"w"), &[]).unwrap();
    let mut bytes = b.finish().unwrap();
    bytes[35..43].copy_from_slice(&0i64.to_be_bytes());
    reseal_crc(&mut bytes);
    let info = log.append(&mut bytes).unwrap();
    assert_eq!(info.max_timestamp, ts + 5);
    assert_eq!(
        log.offset_for_timestamp(ts - 1_000).unwrap(),
        Some((0, ts)),
        "a lookup before the records finds the first"
    );
    let batches = log.read(0, 1 << 20).unwrap();
    assert_eq!(batches[0].header().max_timestamp, ts + 5);
    // The fixed header still has a valid CRC.
    streamlog::format::batch::validate(batches[0].bytes()).unwrap();
    let policy = streamlog::log::RetentionPolicy {
        retention_ms: 7 * 24 * 3_600_000,
        ..streamlog::log::RetentionPolicy::log_start_only(ts)
    };
    log.roll().unwrap();
    let outcome = log.enforce_retention(&policy).unwrap();
    assert_eq!(outcome.log_start_offset, 0, "fresh records were deleted");
}

#[test]
fn config_knobs_out_of_range_are_typed_errors() {
    let cases = [
        ("segment_bytes", LogConfig::default().segment_bytes(10)),
        ("segment_bytes", LogConfig::default().segment_bytes(1 << 40)),
        ("segment_ms", LogConfig::default().segment_ms(0)),
        (
            "segment_index_bytes",
            LogConfig::default().segment_index_bytes(8),
        ),
        (
            "max_message_bytes",
            LogConfig::default().max_message_bytes(10),
        ),
        ("flush_messages", LogConfig::default().flush_messages(0)),
    ];
    let fs = SimFs::new();
    for (knob, config) in cases {
        match open_sim(&fs, config) {
            Err(Error::InvalidConfig { name, .. }) => assert_eq!(name, knob),
            other => panic!("{knob}: expected InvalidConfig, got {other:?}"),
        }
    }
    open_sim(&fs, LogConfig::default()).unwrap();
}

#[test]
fn log_append_time_stamps_batches_with_the_clock() {
    use std::sync::Arc;
    use streamlog::format::TimestampType;
    use streamlog::log::ManualClock;
    let clock = Arc::new(ManualClock::new(5_000));
    let fs = SimFs::new();
    let log = open_sim(
        &fs,
        LogConfig::default()
            .timestamp_type(TimestampType::LogAppendTime)
            .clock(clock.clone()),
    )
    .unwrap();
    let info = log.append(&mut batch(1, 3, Compression::Lz4)).unwrap();
    assert_eq!(info.max_timestamp, 5_000);
    let recs = read_all(&log).unwrap();
    assert!(recs.iter().all(|r| r.timestamp == 5_000), "{recs:?}");
    assert_eq!(log.offset_for_timestamp(4_000).unwrap(), Some((0, 5_000)));
}

#[test]
fn segment_ms_rolls_by_record_time() {
    let fs = SimFs::new();
    let log = open_sim(&fs, LogConfig::default().segment_ms(1000)).unwrap();
    let mut b = streamlog::format::BatchBuilder::new();
    b.push(10_000, None, Some(b"a"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    let mut b = streamlog::format::BatchBuilder::new();
    b.push(10_500, None, Some(b"b"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    assert_eq!(log.segments().len(), 1);
    let mut b = streamlog::format::BatchBuilder::new();
    b.push(11_001, None, Some(b"c"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    assert_eq!(
        log.segments().len(),
        2,
        "a batch more than segment_ms after the first rolls"
    );
    assert_eq!(log.segments()[1].base_offset, 2);
}

#[test]
fn flush_messages_makes_appends_durable() {
    let fs = SimFs::new();
    let log = open_sim(&fs, small_config().flush_messages(4)).unwrap();
    log.append(&mut batch(1, 3, Compression::None)).unwrap();
    assert_eq!(log.durable_offset(), 0);
    log.append(&mut batch(2, 1, Compression::None)).unwrap();
    assert_eq!(log.durable_offset(), 4, "the 4th record triggered a flush");
}

/// Group commit: a caller whose records an earlier flush covered does not fsync again,
/// and concurrent appenders each get their records durable.
#[test]
fn flush_to_shares_fsyncs_between_callers() {
    let (fs, log) = small_sim_log();
    let a = log.append(&mut batch(1, 2, Compression::None)).unwrap();
    let b = log.append(&mut batch(2, 2, Compression::None)).unwrap();
    assert_eq!(log.flush_to(b.last_offset + 1).unwrap(), 4);
    let ops = fs.mutating_op_count();
    assert_eq!(
        log.flush_to(a.last_offset + 1).unwrap(),
        4,
        "already covered"
    );
    assert_eq!(
        fs.mutating_op_count(),
        ops,
        "no fsync for a caller already covered"
    );

    let log = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let info = log
                        .append(&mut batch(100 + t * 100 + i, 1, Compression::None))
                        .unwrap();
                    let durable = log.flush_to(info.last_offset + 1).unwrap();
                    assert!(
                        durable > info.last_offset,
                        "flush_to returned before covering its offset"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.durable_offset(), log.log_end_offset());
    assert_eq!(log.log_end_offset(), 4 + 200);
}

/// Partition epochs (Kafka's leader epochs): a clean reopen keeps the epoch, an open
/// after a crash and every `truncate_to` start a new one where the log then ends;
/// batches appended afterwards carry it, and it is in Kafka's `leader-epoch-checkpoint`.
#[test]
fn epochs_change_when_records_may_have_been_removed() {
    let fs = SimFs::new();
    let epoch_of_batch_at = |log: &Log, offset: i64| {
        log.read(offset, 1).unwrap()[0]
            .header()
            .partition_leader_epoch
    };
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(log.epoch(), 0);
    log.append(&mut batch(0, 10, Compression::None)).unwrap();
    log.close().unwrap();
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(log.epoch(), 0, "a clean reopen loses nothing: same epoch");
    log.append(&mut batch(1, 10, Compression::None)).unwrap();
    let img = fs.crash_image(streamlog::fs::CrashImage::DropAll);
    drop(log);
    let log = open_sim(&img, small_config()).unwrap();
    let end = log.log_end_offset();
    assert_eq!(end, 10, "the unsynced batch is gone");
    assert_eq!(log.epoch(), 1, "a crash may have lost records: new epoch");
    assert_eq!(log.epoch_end_offset(0), Some(10));
    assert_eq!(log.epoch_end_offset(1), None, "the current epoch goes on");
    log.append(&mut batch(2, 10, Compression::None)).unwrap();
    assert_eq!(epoch_of_batch_at(&log, 0), 0);
    assert_eq!(epoch_of_batch_at(&log, 10), 1);
    assert_eq!(log.truncate_to(15).unwrap(), 10, "whole batches go");
    assert_eq!(log.epoch(), 2);
    assert_eq!(log.epoch_end_offset(1), Some(10));
    log.append(&mut batch(3, 10, Compression::None)).unwrap();
    assert_eq!(epoch_of_batch_at(&log, 10), 2);
    log.close().unwrap();
    let text = String::from_utf8(
        img.read_file(&dir().join("leader-epoch-checkpoint"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(text, "0\n3\n0 0\n1 10\n2 10\n");
    let log = open_sim(&img, small_config()).unwrap();
    assert_eq!((log.epoch(), log.epoch_end_offset(0)), (2, Some(10)));
    assert_eq!(read_values(&log).unwrap().len(), 20);
}

/// A `leader-epoch-checkpoint` that does not parse is damage: open refuses it rather
/// than reading it as "no epochs" (which would cut valid batches of later epochs as a
/// torn tail).
#[test]
fn an_unreadable_epoch_checkpoint_is_corruption() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(0, 3, Compression::None)).unwrap();
    log.close().unwrap();
    fs.write_file(
        &dir().join("leader-epoch-checkpoint"),
        b"0\n2\nfive 0\n".to_vec(),
    );
    let err = open_sim(&fs, small_config()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

/// From a review: verify leaves its check against the synced position out when a
/// running store moves that position while verify reads the segments (else live
/// changes would look like damage), and said nothing of it. `PartitionCheck` now
/// says whether the check ran. The position moves here between verify's two reads of
/// it (a hook at its first segment read installs a later `streamlog.durable`).
#[test]
fn verify_says_when_the_synced_position_moved_under_it() {
    use common::intercept::{Hooks, InterceptFs};
    use std::sync::atomic::{AtomicBool, Ordering};
    let sim = SimFs::new();
    let dir = &dir();
    let durable = dir.join("streamlog.durable");
    let log = open_sim(&sim, small_config()).unwrap();
    append_batches(&log, 0..3, 2);
    log.flush().unwrap();
    let earlier = sim.read_file(&durable).unwrap();
    append_batches(&log, 3..6, 2);
    log.flush().unwrap();
    let later = sim.read_file(&durable).unwrap();
    assert_ne!(earlier, later);
    log.close().unwrap();
    let check = streamlog::log::verify_partition_dir(&sim, dir, false).unwrap();
    assert!(check.durable_position_checked, "{check:?}");
    sim.write_file(&durable, earlier);
    let moved = AtomicBool::new(false);
    let (inner, at) = (sim.clone(), durable.clone());
    let fs = InterceptFs::new(
        sim.clone(),
        Hooks {
            before_read: Box::new(move |path, _| {
                if path.extension().is_some_and(|e| e == "log")
                    && !moved.swap(true, Ordering::SeqCst)
                {
                    inner.write_file(&at, later.clone());
                }
            }),
            ..Hooks::default()
        },
    );
    let check = streamlog::log::verify_partition_dir(&fs, dir, false).unwrap();
    assert!(!check.durable_position_checked, "{check:?}");
    assert_eq!(check.log_end_offset, 12, "the rest is checked");
    assert!(check.batches > 0);
}

/// Kafka's rule for an offset index entry: at the start of a batch ending at or before
/// the entry's offset, which is in the segment. Kafka before 3.8 wrote one entry per
/// append (a follower's or the cleaner's many batches: the last offset of them all at
/// the first one's position), which verify reported as damage; an entry past the
/// segment still is.
#[test]
fn verify_takes_kafkas_offset_index_entries_for_whole_appends() {
    let sim = SimFs::new();
    let dir = &dir();
    let log = open_sim(&sim, small_config()).unwrap();
    append_batches(&log, 0..12, 2);
    let second = log.segments()[1].base_offset;
    log.close().unwrap();
    let index = dir.join(format!("{:020}.index", 0));
    let bytes = sim.read_file(&index).unwrap();
    assert!(bytes.len() >= 8, "an entry to change");
    let last = bytes.len() - 8;
    let with_offset = |rel: i64| {
        let mut b = bytes.clone();
        b[last..last + 4].copy_from_slice(&u32::try_from(rel).unwrap().to_be_bytes());
        b
    };
    let check = || streamlog::log::verify_partition_dir(&sim, dir, false).unwrap();
    // The segment's last offset, at the position of an earlier batch.
    sim.write_file(&index, with_offset(second - 1));
    let found = check();
    assert!(found.index_problems.is_empty(), "{found:?}");
    // Past the segment.
    sim.write_file(&index, with_offset(second));
    let found = check();
    assert_eq!(found.index_problems.len(), 1, "{found:?}");
    // Inside its batch (of two records, the entry named its last one): no Kafka
    // wrote that.
    let rel = u32::from_be_bytes(bytes[last..last + 4].try_into().unwrap());
    sim.write_file(&index, with_offset(i64::from(rel) - 1));
    let found = check();
    assert_eq!(found.index_problems.len(), 1, "{found:?}");
    // At a position inside a batch whose bytes parse as a header ending at or before
    // the entry's offset (a negative "base offset": a producer id of -1, a CRC): it
    // passed as a batch start.
    let log_bytes = sim.read_file(&dir.join(format!("{:020}.log", 0))).unwrap();
    let mut starts = std::collections::BTreeSet::new();
    let mut at = 0;
    while at + 12 <= log_bytes.len() {
        starts.insert(at);
        at += 12 + i32::from_be_bytes(log_bytes[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    let claimed = i64::from(rel);
    // Past the entry before (entries go up).
    let after = match last {
        0 => 0,
        _ => u32::from_be_bytes(bytes[last - 4..last].try_into().unwrap()) as usize + 1,
    };
    let inside = (after..log_bytes.len().saturating_sub(61))
        .filter(|p| !starts.contains(p))
        .find(|&p| {
            streamlog::format::batch::BatchHeader::parse(&log_bytes[p..])
                .is_ok_and(|h| h.last_offset() <= claimed)
        })
        .expect("a position inside a batch that parses as an earlier batch");
    let mut b = bytes.clone();
    b[last + 4..last + 8].copy_from_slice(&u32::try_from(inside).unwrap().to_be_bytes());
    sim.write_file(&index, b);
    let found = check();
    assert_eq!(
        found.index_problems.len(),
        1,
        "position {inside}: {found:?}"
    );
}

/// From a review: `offset_for_timestamp` filtered the records it found by the log
/// start it read first; a `delete_records` during its read moved the start into the
/// batch it was reading, and it answered an offset below the new start (whose read is
/// `OffsetOutOfRange`).
#[test]
fn offset_for_timestamp_answers_nothing_below_a_log_start_moved_meanwhile() {
    use common::intercept::Hooks;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    let shared: Arc<OnceLock<Log>> = Arc::new(OnceLock::new());
    let armed = Arc::new(AtomicBool::new(false));
    let (log_ref, fire) = (shared.clone(), armed.clone());
    // At the first read of a segment once armed, records 0..7 are deleted.
    let move_start = Arc::new(move |path: &std::path::Path| {
        if path.extension().is_some_and(|e| e == "log") && fire.swap(false, Ordering::SeqCst) {
            let log = log_ref.get().expect("the log is open");
            log.advance_log_start(7).expect("delete_records");
        }
    });
    let (on_read, on_map) = (move_start.clone(), move_start);
    let hooks = Hooks {
        before_read: Box::new(move |path, _| on_read(path)),
        before_map: Box::new(move |path| {
            on_map(path);
            Ok(())
        }),
        ..Hooks::default()
    };
    let log = hooked_log(hooks, &shared);
    for (base, ts) in [(0, 100), (5, 200)] {
        let mut b = streamlog::BatchBuilder::new();
        for i in 0..5 {
            b.push(
                ts,
                Some(b"k"),
                Some(format!("{}", base + i).as_bytes()),
                &[],
            )
            .unwrap();
        }
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    armed.store(true, Ordering::SeqCst);
    let found = log.offset_for_timestamp(150).unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the lookup read the segment");
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(found, Some((7, 200)));
}

/// From a review: a read across segments fetched the partition epochs again for each
/// segment; a `truncate_to` between two of them (which begins a new epoch at the new
/// end) made the batches past the new end, still in the reader's view of the old
/// active segment, fail the epoch check: `Corruption` for a healthy log. The read asks
/// again against the log as it is now.
#[test]
fn a_read_racing_truncate_to_is_no_corruption() {
    use common::intercept::Hooks;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    let shared: Arc<OnceLock<Log>> = Arc::new(OnceLock::new());
    let armed = Arc::new(AtomicBool::new(false));
    let (log_ref, fire) = (shared.clone(), armed.clone());
    // At the first mapping of the first segment once armed, the log is cut to 10 (a batch boundary).
    let hooks = Hooks {
        before_map: Box::new(move |path| {
            let first = path
                .file_name()
                .is_some_and(|n| n == "00000000000000000000.log");
            if first && fire.swap(false, Ordering::SeqCst) {
                let log = log_ref.get().expect("the log is open");
                assert_eq!(log.truncate_to(10).expect("truncate_to"), 10);
            }
            Ok(())
        }),
        ..Hooks::default()
    };
    let log = hooked_log(hooks, &shared);
    let append = |base: i64| {
        let mut b = streamlog::BatchBuilder::new();
        for i in 0..5 {
            let v = format!("{}", base + i);
            b.push(100, Some(b"k"), Some(v.as_bytes()), &[]).unwrap();
        }
        log.append(&mut b.finish().unwrap()).unwrap();
    };
    append(0);
    log.roll().unwrap();
    append(5);
    append(10);
    // The active segment (5..15) is mapped by this read; the first is not yet.
    assert_eq!(log.read(5, 1 << 20).unwrap().len(), 2);
    let epoch = log.epoch();
    armed.store(true, Ordering::SeqCst);
    let batches = log.read(0, 1 << 20).expect("a read racing truncate_to");
    assert!(
        !armed.load(Ordering::SeqCst),
        "the read mapped the first segment"
    );
    assert!(log.epoch() > epoch, "the truncation began a new epoch");
    assert_eq!(log.log_end_offset(), 10);
    let bases: Vec<i64> = batches.iter().map(|b| b.base_offset()).collect();
    assert_eq!(bases, [0, 5], "every batch below the new end, none past it");
}

/// From a review: replaying producers for a `truncate_to` read the segment after an
/// offset gap at a segment boundary (Kafka's cleaner leaves such gaps; this store opens
/// its segments) until it found a batch below the new end: a cut at that segment's
/// start found none, and with more than one read's worth in it (1 MiB) the replay read
/// the same batches for ever, holding the log's locks. It stops at the new end.
#[test]
fn a_cut_at_a_segment_after_an_offset_gap_returns() {
    const TS: i64 = 1_700_000_000_000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let config = || LogConfig::default().allow_offset_gaps(true);
    let log = Log::open(&dir, config()).unwrap();
    // 0..90 from one idempotent producer: the close leaves a snapshot at 90.
    for i in 0..9 {
        let mut b = streamlog::BatchBuilder::new().producer(7, 0, i * 10);
        for j in 0..10 {
            b.push(
                TS,
                Some(b"k"),
                Some(format!("{}", i * 10 + j).as_bytes()),
                &[],
            )
            .unwrap();
        }
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    log.close().unwrap();
    // A segment after a gap, at 100: two batches of 600 KB, more than one read.
    let mut segment = Vec::new();
    for k in 0..2u8 {
        let mut b = streamlog::BatchBuilder::new();
        b.push(TS, Some(b"k"), Some(&vec![k; 600_000]), &[])
            .unwrap();
        let mut bytes = b.finish().unwrap();
        // The base offset is outside the batch's CRC.
        bytes[..8].copy_from_slice(&(100 + i64::from(k)).to_be_bytes());
        segment.extend(bytes);
    }
    std::fs::write(dir.join("00000000000000000100.log"), segment).unwrap();
    std::fs::remove_file(dir.join("streamlog.durable")).unwrap();
    let log = Arc::new(Log::open(&dir, config()).unwrap());
    assert_eq!(log.log_end_offset(), 102);
    // No snapshot at the gap's end (as after a crash that lost the one the open wrote
    // there): the cut replays from the one at 90.
    std::fs::remove_file(dir.join("00000000000000000100.snapshot")).unwrap();
    let (done, cut) = std::sync::mpsc::channel();
    let cutting = log.clone();
    std::thread::spawn(move || done.send(cutting.truncate_to(100)).unwrap());
    let end = common::recv(&cut, "the cut returned").unwrap();
    assert_eq!(end, 100);
    assert_eq!(log.log_end_offset(), 100);
    let offsets: Vec<i64> = log
        .read_records(85, 1 << 20)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, (85..90).collect::<Vec<_>>());
}

/// A log at `/d/t-0` on a simulated disk with `hooks`, its clock stopped, put in
/// `shared` (where the hooks find it).
fn hooked_log(hooks: common::intercept::Hooks, shared: &std::sync::OnceLock<Log>) -> &Log {
    let fs = common::intercept::InterceptFs::new(SimFs::new(), hooks);
    let config = LogConfig::default().clock(Arc::new(ManualClock::new(1_700_000_000_000)));
    let log = Log::open_with_fs(Arc::new(fs), "/d/t-0", config).unwrap();
    shared.get_or_init(|| log)
}
