//! The log appends a batch of an idempotent producer once: a re-sent batch is answered
//! with where the original went, a sequence that skips or goes back and an epoch that
//! was fenced are refused with typed errors (Kafka's producer state checks).

mod common;

use common::{read_values, small_sim_log};
use streamlog::Error;
use streamlog::format::BatchBuilder;
use streamlog::fs::{CrashImage, Fault, FileSystem};

/// A batch of producer `pid` (epoch `epoch`) starting at sequence `seq`, with values
/// `tag-0`, `tag-1`, ...
fn batch(pid: i64, epoch: i16, seq: i32, tag: &str, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..records {
        b.push(
            1_700_000_000_000,
            Some(b"k"),
            Some(format!("{tag}-{i}").as_bytes()),
            &[],
        )
        .unwrap();
    }
    b.finish().unwrap()
}

#[test]
fn a_resent_batch_is_appended_once_and_answered_with_the_original_offsets() {
    let (_fs, log) = small_sim_log();
    let first = log.append(&mut batch(7, 0, 0, "a", 3)).unwrap();
    let second = log.append(&mut batch(7, 0, 3, "b", 2)).unwrap();
    // Both re-sent (a producer that did not see the answers): nothing is appended.
    assert_eq!(log.append(&mut batch(7, 0, 0, "a", 3)).unwrap(), first);
    assert_eq!(log.append(&mut batch(7, 0, 3, "b", 2)).unwrap(), second);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(
        read_values(&log).unwrap(),
        ["a-0", "a-1", "a-2", "b-0", "b-1"]
    );
    // The same sequences from another producer, or without a producer, are new data.
    log.append(&mut batch(8, 0, 0, "c", 1)).unwrap();
    log.append(&mut batch(-1, -1, -1, "d", 1)).unwrap();
    log.append(&mut batch(-1, -1, -1, "d", 1)).unwrap();
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn sequences_that_skip_or_go_back_and_fenced_epochs_are_refused() {
    let (_fs, log) = small_sim_log();
    log.append(&mut batch(7, 1, 0, "a", 2)).unwrap();
    let e = log.append(&mut batch(7, 1, 5, "x", 1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfOrderSequence {
                producer_id: 7,
                expected: 2,
                found: 5,
                ..
            }
        ),
        "{e}"
    );
    let e = log.append(&mut batch(7, 0, 2, "x", 1)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProducerEpoch {
                producer_id: 7,
                epoch: 0,
                current: 1
            }
        ),
        "{e}"
    );
    // A new epoch starts at sequence 0; then the old epoch is fenced.
    let e = log.append(&mut batch(7, 2, 2, "x", 1)).unwrap_err();
    assert!(
        matches!(e, Error::OutOfOrderSequence { expected: 0, .. }),
        "{e}"
    );
    log.append(&mut batch(7, 2, 0, "b", 1)).unwrap();
    assert!(matches!(
        log.append(&mut batch(7, 1, 2, "x", 1)).unwrap_err(),
        Error::InvalidProducerEpoch { current: 2, .. }
    ));
    // Nothing refused was written.
    assert_eq!(read_values(&log).unwrap(), ["a-0", "a-1", "b-0"]);
}

#[test]
fn a_batch_resent_after_a_failed_write_is_appended_once() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, "a", 1)).unwrap();
    fs.inject(Fault::Eio, fs.op_count() + 1, false);
    assert!(log.append(&mut batch(7, 0, 1, "b", 2)).is_err());
    // The retry is the first copy that landed; the one after it is a duplicate.
    let landed = log.append(&mut batch(7, 0, 1, "b", 2)).unwrap();
    assert_eq!(log.append(&mut batch(7, 0, 1, "b", 2)).unwrap(), landed);
    assert_eq!(read_values(&log).unwrap(), ["a-0", "b-0", "b-1"]);
}

#[test]
fn after_a_truncation_a_resent_batch_is_appended_again() {
    let (_fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    log.append(&mut batch(7, 0, 2, "b", 2)).unwrap();
    assert_eq!(log.truncate_to(2).unwrap(), 2);
    // `b` is gone: sent again it is written again, not answered with removed offsets.
    let again = log.append(&mut batch(7, 0, 2, "b", 2)).unwrap();
    assert_eq!((again.base_offset, again.last_offset), (2, 3));
    assert_eq!(read_values(&log).unwrap(), ["a-0", "a-1", "b-0", "b-1"]);
}

#[test]
fn a_truncation_after_a_crash_keeps_the_batches_below_the_cut() {
    // Found by the log_ops fuzz target. After a crash the state comes from the roll's
    // snapshot, which holds each producer's last batch only (`b`); cutting `b` off
    // left the producer with no batch, so any sequence was accepted: `a` re-sent was
    // appended twice, and a gap was taken.
    let (fs, log) = small_sim_log();
    let a = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    log.append(&mut batch(7, 0, 2, "b", 3)).unwrap();
    log.roll().unwrap();
    log.flush().unwrap();
    let image = fs.crash_image(CrashImage::DropAll);
    drop(log);
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert_eq!(log.truncate_to(3).unwrap(), 2);
    assert_eq!(
        log.append(&mut batch(7, 0, 0, "a", 2)).unwrap().base_offset,
        a.base_offset
    );
    assert!(matches!(
        log.append(&mut batch(7, 0, 5, "x", 1)).unwrap_err(),
        Error::OutOfOrderSequence {
            expected: 2,
            found: 5,
            ..
        }
    ));
    assert_eq!(read_values(&log).unwrap(), ["a-0", "a-1"]);
}

#[test]
fn a_snapshot_past_the_end_a_crash_left_is_never_read() {
    // Found by the log_ops fuzz target. The roll after `a` writes a snapshot at offset
    // 1 naming `a`; the power cut loses `a` but not the snapshot. The log then grows
    // again, and offset 1 becomes a segment base: a later crash rebuilt the producer
    // state from that stale snapshot, and `a`, sent now, was answered as a duplicate at
    // offset 0, which holds another record: acknowledged, never appended.
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, "a", 1)).unwrap();
    log.roll().unwrap();
    let image = fs.crash_image(CrashImage::KeepAll);
    drop(log);
    let first = common::dir().join("00000000000000000000.log");
    image.write_file(&first, Vec::new()); // `a` never reached the disk
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    log.append(&mut common::batch(
        1,
        1,
        streamlog::format::Compression::None,
    ))
    .unwrap();
    log.roll().unwrap();
    log.flush().unwrap();
    let image = image.crash_image(CrashImage::DropAll);
    drop(log);
    let log = common::open_sim(&image, common::small_config()).unwrap();
    let sent = log.append(&mut batch(7, 0, 0, "a", 1)).unwrap();
    assert_eq!(sent.base_offset, 1, "appended, not answered as a duplicate");
    assert_eq!(read_values(&log).unwrap()[1], "a-0");
}

#[test]
fn a_truncation_that_fails_before_its_cut_keeps_the_producer_state() {
    // Found by the log_ops fuzz target: the truncation removed the snapshots past the
    // new end before cutting. When it failed before the cut and the machine crashed,
    // the batches were all there but the rebuild had lost the snapshot naming them: a
    // re-sent batch was appended twice.
    for k in 1.. {
        let (fs, log) = small_sim_log();
        log.append(&mut common::batch(
            1,
            7,
            streamlog::format::Compression::None,
        ))
        .unwrap();
        let sent = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
        log.close().unwrap(); // the snapshot at 9 names `a`
        let log = common::open_sim(&fs, common::small_config()).unwrap();
        log.roll().unwrap();
        log.flush().unwrap();
        fs.inject(Fault::Eio, fs.op_count() + k, true);
        if log.truncate_to(3).is_ok() {
            assert!(k > 3, "the truncation never failed");
            break;
        }
        fs.clear_faults();
        for mode in [CrashImage::KeepAll, CrashImage::DropAll] {
            let log = common::open_sim(&fs.crash_image(mode), common::small_config()).unwrap();
            if log.log_end_offset() == 9 {
                let again = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
                assert_eq!(
                    again.base_offset, sent.base_offset,
                    "fault at op {k}, {mode:?}"
                );
            } else {
                assert_eq!(log.log_end_offset(), 0, "fault at op {k}, {mode:?}");
            }
        }
    }
}

#[test]
fn the_snapshots_a_truncation_removes_stay_removed_after_a_crash() {
    // Removed but not made durable, a snapshot came back with a crash and could then lie
    // at or below a later log end (found by the log_ops fuzz target).
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    log.roll().unwrap();
    log.append(&mut batch(7, 0, 2, "b", 2)).unwrap();
    log.flush().unwrap();
    let snapshot = "00000000000000000002.snapshot".to_string();
    let names = |fs: &streamlog::fs::SimFs| fs.list_dir(&common::dir()).unwrap();
    assert!(names(&fs.crash_image(CrashImage::DropAll)).contains(&snapshot));
    assert_eq!(log.truncate_to(1).unwrap(), 0);
    assert!(!names(&fs).contains(&snapshot));
    assert!(!names(&fs.crash_image(CrashImage::DropAll)).contains(&snapshot));
}

/// `a` at 0..=1, rolls with producer snapshots at 2 and 5 (pending, or with `flush`
/// synced and the recovery point at 5), more records, and a truncation into the last
/// segment; returns the file system and where `a` went.
fn rolled_then_truncated(flush: bool) -> (streamlog::fs::SimFs, i64) {
    let (fs, log) = small_sim_log();
    let a = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    log.roll().unwrap();
    log.append(&mut common::batch(
        1,
        3,
        streamlog::format::Compression::None,
    ))
    .unwrap();
    log.roll().unwrap();
    log.append(&mut common::batch(
        2,
        3,
        streamlog::format::Compression::None,
    ))
    .unwrap();
    if flush {
        log.flush().unwrap();
    }
    assert_eq!(log.truncate_to(6).unwrap(), 5);
    (fs, a.base_offset)
}

#[test]
fn a_truncation_syncs_the_snapshots_of_the_rolls_before_their_names() {
    // Found by the log_ops fuzz target: the truncation's directory fsync made the rolls'
    // snapshot names durable, not their bytes. After a power cut they were empty, the
    // rebuild took that as "no producer had written" and started at the last segment:
    // `a`, re-sent, was appended twice.
    let (fs, a) = rolled_then_truncated(false);
    let image = fs.crash_image(CrashImage::DropAll);
    for base in [2, 5] {
        let path = common::dir().join(format!("{base:020}.snapshot"));
        let bytes = image.read_file(&path).unwrap_or_default();
        assert!(!bytes.is_empty(), "{path:?} lost its bytes");
    }
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(
        log.append(&mut batch(7, 0, 0, "a", 2)).unwrap().base_offset,
        a
    );
}

#[test]
fn a_truncation_that_fails_leaves_no_empty_snapshot_behind() {
    // From a review: the snapshots past the new end were dropped from the pending
    // writes before the truncation's directory fsync made their names durable. A failure
    // before the cut left empty ones inside the log, and every later rebuild replayed
    // the log from its first segment.
    for k in 1.. {
        let (fs, log) = small_sim_log();
        log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
        log.roll().unwrap();
        log.append(&mut common::batch(
            1,
            3,
            streamlog::format::Compression::None,
        ))
        .unwrap();
        log.roll().unwrap();
        fs.inject(Fault::Eio, fs.op_count() + k, true);
        let result = log.truncate_to(3);
        fs.clear_faults();
        let image = fs.crash_image(CrashImage::DropAll);
        for name in image.list_dir(&common::dir()).unwrap() {
            if name.ends_with(".snapshot") {
                let bytes = image.read_file(&common::dir().join(&name)).unwrap();
                assert!(!bytes.is_empty(), "fault at operation {k}: {name} is empty");
            }
        }
        if result.is_ok() {
            break;
        }
    }
}

#[test]
fn unreadable_snapshots_make_the_rebuild_start_at_the_first_segment() {
    // The flush moved the recovery point to 5, making both snapshots candidates.
    let (fs, a) = rolled_then_truncated(true);
    let image = fs.crash_image(CrashImage::DropAll);
    for base in [2, 5] {
        let path = common::dir().join(format!("{base:020}.snapshot"));
        assert!(image.read_file(&path).is_some(), "the roll wrote {path:?}");
        image.write_file(&path, b"damaged".to_vec());
    }
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert_eq!(
        log.append(&mut batch(7, 0, 0, "a", 2)).unwrap().base_offset,
        a
    );
}

#[test]
fn an_open_that_fails_removing_a_stale_snapshot_leaves_no_clean_marker() {
    // From a review: the removal's error returned without poisoning, so the dropped
    // log's close wrote the clean-shutdown marker; the next open trusted the directory
    // and kept the stale snapshot (and an empty producer state).
    let mut failed = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        log.append(&mut batch(7, 0, 0, "a", 1)).unwrap();
        log.roll().unwrap(); // the snapshot at 1
        let image = fs.crash_image(CrashImage::KeepAll);
        drop(log);
        let first = common::dir().join("00000000000000000000.log");
        image.write_file(&first, Vec::new()); // `a` never reached the disk
        image.inject(Fault::Eio, image.op_count() + k, false);
        let opened = common::open_sim(&image, common::small_config());
        image.clear_faults();
        let done = opened.is_ok();
        drop(opened);
        if !done {
            failed += 1;
        }
        let log = common::open_sim(&image, common::small_config()).unwrap();
        let names = image.list_dir(&common::dir()).unwrap();
        assert!(
            !names.contains(&"00000000000000000001.snapshot".to_string()),
            "fault at operation {k}: the stale snapshot is still there: {names:?}"
        );
        drop(log);
        if done {
            break;
        }
    }
    assert!(failed > 0);
}

#[test]
fn a_truncation_of_a_compacted_log_takes_no_batches_from_the_replay() {
    // From a review: compaction had removed the producer's batch at 1, so the replay's
    // last batch (seq 0) was not the producer's last, and seq 2 sent again after the
    // cut was refused as out of order.
    let config = || common::small_config().allow_offset_gaps(true);
    let fs = streamlog::fs::SimFs::new();
    let log = common::open_sim(&fs, config()).unwrap();
    let keyed = |seq: i32, key: &[u8]| {
        let mut b = BatchBuilder::new().producer(7, 0, seq);
        b.push(1_700_000_000_000, Some(key), Some(b"v"), &[])
            .unwrap();
        b.finish().unwrap()
    };
    log.append(&mut keyed(0, b"x")).unwrap();
    log.append(&mut keyed(1, b"y")).unwrap();
    log.append(&mut keyed(2, b"y")).unwrap();
    log.roll().unwrap();
    log.append(&mut keyed(3, b"z")).unwrap();
    log.close().unwrap(); // the snapshot remembers seq 3 only
    let log = common::open_sim(&fs, config()).unwrap();
    let policy = streamlog::log::CleanPolicy {
        force: true,
        ..Default::default()
    };
    assert!(log.clean(&policy).unwrap().records_removed > 0);
    // Offset 1 is gone: the cut lands right after the batch at 0.
    assert_eq!(log.truncate_to(2).unwrap(), 1);
    let again = log.append(&mut keyed(2, b"y")).unwrap();
    assert_eq!(again.base_offset, 1);
}

#[test]
fn after_a_clean_reopen_the_last_batch_of_each_producer_is_still_recognized() {
    // Kafka keeps one batch per producer in a snapshot: the last.
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 3, 0, "a", 2)).unwrap();
    let last = log.append(&mut batch(7, 3, 2, "b", 2)).unwrap();
    log.close().unwrap();
    // Kafka's file name: the log end offset.
    let names = fs.list_dir(&common::dir()).unwrap();
    assert!(
        names.contains(&"00000000000000000004.snapshot".to_string()),
        "{names:?}"
    );
    let log = common::open_sim(&fs, common::small_config()).unwrap();
    assert_eq!(log.append(&mut batch(7, 3, 2, "b", 2)).unwrap(), last);
    assert!(matches!(
        log.append(&mut batch(7, 2, 4, "x", 1)).unwrap_err(),
        Error::InvalidProducerEpoch { current: 3, .. }
    ));
    log.append(&mut batch(7, 3, 4, "c", 1)).unwrap();
    assert_eq!(
        read_values(&log).unwrap(),
        ["a-0", "a-1", "b-0", "b-1", "c-0"]
    );
    log.close().unwrap();
    // The new close wrote its own snapshot at the new log end.
    let names = fs.list_dir(&common::dir()).unwrap();
    assert!(
        names.contains(&"00000000000000000005.snapshot".to_string()),
        "{names:?}"
    );
    let log = common::open_sim(&fs, common::small_config()).unwrap();
    assert!(matches!(
        log.append(&mut batch(7, 3, 4, "c", 1)).unwrap(),
        streamlog::log::AppendInfo {
            base_offset: 4,
            last_offset: 4,
            ..
        }
    ));
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn after_a_crash_the_state_is_rebuilt_from_a_snapshot_and_the_batches_after_it() {
    let (fs, log) = small_sim_log();
    let mut last = None;
    for seq in 0..40 {
        last = Some(
            log.append(&mut batch(7, 0, seq, &format!("a{seq}"), 1))
                .unwrap(),
        );
    }
    log.flush().unwrap();
    assert!(log.segments().len() > 2, "the test needs rolls (snapshots)");
    let image = fs.crash_image(CrashImage::KeepAll);
    drop(log);
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    // The last batch is known again (it came after the last roll's snapshot)...
    assert_eq!(
        log.append(&mut batch(7, 0, 39, "a39", 1)).unwrap(),
        last.unwrap()
    );
    // ...and so is the producer's next sequence.
    let e = log.append(&mut batch(7, 0, 41, "x", 1)).unwrap_err();
    assert!(
        matches!(e, Error::OutOfOrderSequence { expected: 40, .. }),
        "{e}"
    );
    log.append(&mut batch(7, 0, 40, "a40", 1)).unwrap();
    assert_eq!(log.log_end_offset(), 41);
}

#[test]
fn batches_a_crash_removed_are_appended_again_not_answered_as_duplicates() {
    let (fs, log) = small_sim_log();
    for seq in 0..30 {
        log.append(&mut batch(7, 0, seq, &format!("a{seq}"), 1))
            .unwrap();
    }
    log.flush().unwrap();
    for seq in 30..32 {
        log.append(&mut batch(7, 0, seq, &format!("a{seq}"), 1))
            .unwrap();
    }
    // The unsynced batches 30 and 31 are lost.
    let image = fs.crash_image(CrashImage::DropAll);
    drop(log);
    let log = common::open_sim(&image, common::small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    let again = log.append(&mut batch(7, 0, 30, "a30", 1)).unwrap();
    assert_eq!(again.base_offset, 30);
    assert_eq!(log.log_end_offset(), 31);
}

#[test]
fn idle_producers_are_forgotten_after_the_expiration_but_open_transactions_are_not() {
    use std::sync::Arc;
    use streamlog::log::{ManualClock, TransactionResult};
    const DAY: i64 = 86_400_000;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let fs = streamlog::fs::SimFs::new();
    let log = common::open_sim(&fs, common::small_config().clock(clock.clone())).unwrap();
    let first = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    // Producer 8 opens a transaction it never ends.
    let mut txn = BatchBuilder::new().producer(8, 0, 0).transactional(true);
    txn.push(1_700_000_000_000, Some(b"k"), Some(b"t"), &[])
        .unwrap();
    log.append(&mut txn.finish().unwrap()).unwrap();
    assert_eq!(log.expire_producers(DAY), 0, "nothing is a day old yet");
    clock.advance(DAY);
    assert_eq!(
        log.expire_producers(DAY),
        1,
        "producer 7 only: 8 has an open transaction"
    );
    // Forgotten: its old batch is a new producer's first batch now, appended again.
    let again = log.append(&mut batch(7, 0, 0, "a", 2)).unwrap();
    assert_ne!(again.base_offset, first.base_offset);
    // Producer 8's transaction is still open (the last stable offset stays at it).
    assert_eq!(log.last_stable_offset(), 2);
    log.append_marker(8, 0, 0, TransactionResult::Abort)
        .unwrap();
    clock.advance(DAY);
    // Its transaction ended, and its last batch is two days old: both go.
    assert_eq!(log.expire_producers(DAY), 2);
    // A producer known by a marker alone is given the expiry pass's time, then ages.
    log.append_marker(9, 3, 0, TransactionResult::Abort)
        .unwrap();
    assert_eq!(log.expire_producers(DAY), 0);
    clock.advance(DAY);
    assert_eq!(
        log.expire_producers(DAY),
        1,
        "producer 9, a day after it was first seen"
    );
}

/// A producer's age counts from its last marker too, as in Kafka. It counted from its
/// last data batch's time only: a transaction of records dated (by their producer)
/// older than the expiration had its producer forgotten by the first expiry after its
/// end, and with it the epoch its marker fenced, so a zombie at the old epoch was
/// taken for a new producer.
#[test]
fn a_producer_is_remembered_for_the_expiration_after_its_last_marker() {
    use std::sync::Arc;
    use streamlog::log::{ManualClock, TransactionResult};
    const DAY: i64 = 86_400_000;
    let now = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::new(now));
    let fs = streamlog::fs::SimFs::new();
    let log = common::open_sim(&fs, common::small_config().clock(clock.clone())).unwrap();
    // Records of event time two days back, in a transaction the coordinator fences
    // (its ABORT at epoch 1), now.
    let mut txn = BatchBuilder::new().producer(8, 0, 0).transactional(true);
    txn.push(now - 2 * DAY, Some(b"k"), Some(b"t"), &[])
        .unwrap();
    log.append(&mut txn.finish().unwrap()).unwrap();
    log.append_marker(8, 1, 0, TransactionResult::Abort)
        .unwrap();
    assert_eq!(log.expire_producers(DAY), 0, "its marker is not a day old");
    let mut zombie = BatchBuilder::new().producer(8, 0, 1).transactional(true);
    zombie.push(now, Some(b"k"), Some(b"z"), &[]).unwrap();
    assert!(
        log.append(&mut zombie.finish().unwrap()).is_err(),
        "epoch 0 was fenced"
    );
    clock.advance(DAY);
    assert_eq!(log.expire_producers(DAY), 1, "a day after its marker");
}

/// From a review: the producer snapshot stored the last batch's time, not the
/// producer's, so the refresh its marker gave it (above) was lost at the next reopen,
/// and the first expiry forgot a producer whose commit was minutes old. The snapshot
/// keeps the producer's time, as Kafka's does.
#[test]
fn a_reopen_keeps_the_time_a_marker_gave_its_producer() {
    use std::sync::Arc;
    use streamlog::log::{ManualClock, TransactionResult};
    const DAY: i64 = 86_400_000;
    let now = 1_700_000_000_000;
    let clock = Arc::new(ManualClock::new(now));
    let config = || common::small_config().clock(clock.clone());
    let fs = streamlog::fs::SimFs::new();
    let log = common::open_sim(&fs, config()).unwrap();
    let mut txn = BatchBuilder::new().producer(8, 0, 0).transactional(true);
    txn.push(now - 2 * DAY, Some(b"k"), Some(b"t"), &[])
        .unwrap();
    log.append(&mut txn.finish().unwrap()).unwrap();
    log.append_marker(8, 0, 0, TransactionResult::Commit)
        .unwrap();
    log.close().unwrap();
    let log = common::open_sim(&fs, config()).unwrap();
    assert_eq!(log.expire_producers(DAY), 0, "its marker is not a day old");
}

/// Each close writes the producer snapshot at its log end; those earlier closes wrote
/// (inside a segment now, read by no open) are removed, so reopening and appending
/// does not leave one more snapshot per close.
#[test]
fn the_snapshots_earlier_closes_wrote_do_not_pile_up() {
    let (fs, log) = small_sim_log();
    let snapshots = |fs: &streamlog::fs::SimFs| -> Vec<String> {
        let names = fs.list_dir(&common::dir()).unwrap();
        names
            .into_iter()
            .filter(|n| n.ends_with(".snapshot"))
            .collect()
    };
    let mut seq = 0;
    log.append(&mut batch(7, 0, seq, "a", 1)).unwrap();
    seq += 1;
    log.close().unwrap();
    for round in 0..20 {
        let log = common::open_sim(&fs, common::small_config()).unwrap();
        log.append(&mut batch(7, 0, seq, &format!("r{round}"), 1))
            .unwrap();
        seq += 1;
        let end = log.log_end_offset();
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        log.close().unwrap();
        for name in snapshots(&fs) {
            let offset: i64 = name.trim_end_matches(".snapshot").parse().unwrap();
            assert!(
                offset == end || bases.contains(&offset),
                "round {round}: {name} is neither the end {end} nor a base of {bases:?}"
            );
        }
    }
    let log = common::open_sim(&fs, common::small_config()).unwrap();
    // The producer is still known: its next sequence is taken, an old one refused.
    log.append(&mut batch(7, 0, seq, "last", 1)).unwrap();
    assert!(log.append(&mut batch(7, 0, seq + 5, "gap", 1)).is_err());
}
