//! Regressions from a review of the log against its design: each test asserts what the
//! design promises for a case that once went wrong (failed roll, stale recovery point,
//! offset overflow, lost final time-index entry, unsynced indexes, compacted gaps).
mod common;

use std::panic::AssertUnwindSafe;

use common::*;
use streamlog::format::{BatchBuilder, Compression};
use streamlog::fs::{CrashImage, Fault, SimFs};
use streamlog::log::LogConfig;

/// One record whose value is `tag` padded to `value_len` bytes, timestamp grows with tag.
fn sized(tag: u64, value_len: usize) -> (Vec<u8>, String) {
    let mut v = format!("v{tag}-");
    while v.len() < value_len {
        v.push('x');
    }
    let mut b = BatchBuilder::new();
    b.push(
        1_700_000_000_000 + tag as i64 * 10,
        Some(b"k"),
        Some(v.as_bytes()),
        &[],
    )
    .unwrap();
    (b.finish().unwrap(), v)
}

fn seg_name(base: i64) -> String {
    format!("{base:020}.log")
}

/// F1: an ENOSPC/EIO while `roll_locked` creates the next segment leaves an empty
/// `<next_offset>.log` (+ indexes) behind that is not in the segment list. Appends that
/// still fit continue in the old segment, so that stray file ends up in the middle of
/// the log; after close + reopen the log is unreadable (Corruption at the stray).
#[test]
fn f1_failed_roll_leaves_a_stray_segment_that_breaks_the_log() {
    let mut failed_rolls = 0;
    let mut failures = Vec::new();
    for k in 1..=8u64 {
        let (fs, log) = small_sim_log();
        let mut values = Vec::new();
        let mut tag = 0;
        while log.segments()[0].size < 700 {
            let (mut b, v) = sized(tag, 40);
            log.append(&mut b).unwrap();
            values.push(v);
            tag += 1;
        }
        // A batch that does not fit: the append rolls, and the roll hits a fault.
        let (mut big, big_v) = sized(tag, 400);
        tag += 1;
        fs.inject(Fault::Enospc, fs.op_count() + k, false);
        let res = log.append(&mut big);
        fs.clear_faults();
        if res.is_ok() {
            values.push(big_v);
            continue;
        }
        if log.segments().len() > 1 {
            // The roll itself succeeded: the fault hit the write after it.
            continue;
        }
        failed_rolls += 1;
        let stray = seg_name(log.log_end_offset());
        let has_stray = fs
            .files(&dir())
            .iter()
            .any(|(p, _)| p.file_name().unwrap().to_str() == Some(stray.as_str()));
        assert!(!has_stray, "k={k}: the failed roll left {stray} behind");
        assert_eq!(log.segments().len(), 1);
        // Smaller batches still fit the old segment; later a real roll happens.
        for _ in 0..12 {
            let (mut b, v) = sized(tag, 40);
            log.append(&mut b).unwrap();
            values.push(v);
            tag += 1;
        }
        assert!(log.segments().len() >= 2);
        read_all(&log).unwrap(); // fine while open: the stray is not in the list
        log.close().unwrap();
        match open_sim(&fs, small_config()) {
            Err(e) => failures.push(format!("k={k}: reopen failed: {e}")),
            Ok(log) => match read_all(&log) {
                Err(e) => failures.push(format!("k={k}: read failed after reopen: {e}")),
                Ok(recs) if recs.len() != values.len() => {
                    failures.push(format!("k={k}: {} of {} records", recs.len(), values.len()))
                }
                Ok(_) => {}
            },
        }
    }
    // The roll creates three files (.log, .index, .timeindex): a fault at each.
    assert!(
        failed_rolls >= 3,
        "{failed_rolls} injected faults hit the roll"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// F1, the open side: an empty segment file in the middle of the log (left by a roll cut
/// short in an older version, or by hand) holds nothing and is removed at open.
#[test]
fn f1_empty_segment_in_the_middle_is_removed_at_open() {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..30, 2);
    let second = log.segments()[1].base_offset;
    log.close().unwrap();
    fs.write_file(&dir().join(seg_name(second - 1)), Vec::new());
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(read_all(&log).unwrap().len(), 60);
    assert!(
        !fs.files(&dir())
            .iter()
            .any(|(p, _)| p.ends_with(seg_name(second - 1)))
    );
}

fn bogus_rp_failures(bogus_rp: bool) -> Vec<String> {
    let fs = SimFs::new();
    if bogus_rp {
        // A recovery point past the end (foreign/stale checkpoint). Kafka clamps it to
        // the log end offset; streamlog keeps it forever.
        fs.write_file(
            &dir().join("recovery-point-offset-checkpoint"),
            b"0\n1\nclicks 0 1000000000\n".to_vec(),
        );
    }
    let log = open_sim(&fs, small_config()).unwrap();
    let mut obs = Observed::default();
    for tag in 0..40u64 {
        let n = 1 + (tag as usize % 3);
        log.append(&mut batch(tag, n, Compression::None)).unwrap();
        obs.appended.extend((0..n).map(|i| value(tag, i)));
        if tag == 15 {
            obs.acked = log.flush().unwrap();
        }
    }
    assert!(log.segments().len() >= 5);
    std::mem::forget(log); // power cut: nothing after tag 15 was flushed
    let mut failures = Vec::new();
    for seed in 0..64 {
        let img = fs.crash_image(CrashImage::Random(seed));
        match open_sim(&img, small_config()) {
            Err(e) => failures.push(format!("seed {seed}: open: {e}")),
            Ok(log) => {
                if let Err(v) = check_invariants(&log, &obs) {
                    failures.push(format!("seed {seed}: {v}"));
                }
            }
        }
    }
    failures
}

/// F2: a recovery-point checkpoint past the log end is never clamped (Kafka: min(rp, LEO))
/// and never lowered by flush, so every later crash recovery trusts sealed segments whose
/// data was never synced: Corruption for never-acknowledged data, or a log with holes.
#[test]
fn f2_recovery_point_past_the_end_makes_later_recoveries_trust_unsynced_segments() {
    let control = bogus_rp_failures(false);
    assert!(control.is_empty(), "control run failed: {control:#?}");
    let failures = bogus_rp_failures(true);
    assert!(
        failures.is_empty(),
        "{} of 64 crash images: {failures:#?}",
        failures.len()
    );
}

/// F3: `append` computes `last_offset + 1` unchecked (mod.rs:360): a segment whose base is
/// i64::MAX (a file name on disk) makes the next append panic (debug) or wrap to i64::MIN
/// (release). DESIGN 7: no public function panics on bad input.
#[test]
fn f3_offset_overflow_at_i64_max_is_an_error_not_a_panic() {
    let fs = SimFs::new();
    fs.write_file(&dir().join(seg_name(i64::MAX)), Vec::new());
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(log.log_end_offset(), i64::MAX);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        log.append(&mut batch(0, 1, Compression::None))
    }));
    std::mem::forget(log);
    match r {
        Err(_) => panic!("append panicked on offset overflow"),
        Ok(res) => assert!(res.is_err(), "append past i64::MAX succeeded"),
    }
}

/// F4: if writing the final time-index entry at roll fails (ENOSPC on a sparse,
/// preallocated index), the failure is only logged; the trimmed index still passes the
/// open-time checks, so after a reopen the segment's max timestamp is stale and
/// `offset_for_timestamp` skips records (I4).
#[test]
fn f4_lost_final_time_entry_gives_wrong_timestamp_lookups_after_reopen() {
    let mut failures = Vec::new();
    for k in 1..=12u64 {
        let (fs, log) = small_sim_log();
        let mut tag = 0;
        while log.segments()[0].size < 800 {
            log.append(&mut sized(tag, 40).0).unwrap();
            tag += 1;
        }
        fs.inject(Fault::Enospc, fs.op_count() + k, false);
        let res = log.append(&mut sized(tag, 400).0);
        fs.clear_faults();
        if res.is_err() {
            continue; // the roll itself failed (see F1)
        }
        tag += 1;
        for _ in 0..3 {
            log.append(&mut sized(tag, 40).0).unwrap();
            tag += 1;
        }
        log.close().unwrap();
        let log = open_sim(&fs, small_config()).unwrap();
        let recs = read_all(&log).unwrap();
        for r in &recs {
            let by_scan = recs
                .iter()
                .find(|x| x.timestamp >= r.timestamp)
                .map(|x| (x.offset, x.timestamp));
            let by_index = log.offset_for_timestamp(r.timestamp).unwrap();
            if by_index != by_scan {
                failures.push(format!(
                    "k={k}: ts {}: index {by_index:?}, scan {by_scan:?}",
                    r.timestamp
                ));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// F5: `truncate_to` step 0 drains `unflushed` syncing only the `.log` files, so the next
/// flush moves the recovery point past sealed segments whose index files were never
/// synced (checkpoint.rs documents "every segment below the recovery point, with its
/// indexes, is synced"). After a power cut those indexes are empty and get rebuilt by a
/// full scan of segments below the recovery point.
#[test]
fn f5_truncate_then_flush_moves_recovery_point_past_unsynced_indexes() {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..30, 3);
    let segs = log.segments();
    assert!(segs.len() >= 4);
    log.truncate_to(segs[2].base_offset + 1).unwrap();
    log.append(&mut batch(99, 1, Compression::None)).unwrap();
    log.flush().unwrap(); // writes the recovery point = segs[2].base
    std::mem::forget(log);
    let img = fs.crash_image(CrashImage::DropAll);
    let log = open_sim(&img, small_config()).unwrap();
    let r = log.recovery_report();
    assert_eq!(
        r.indexes_rebuilt, 0,
        "indexes below the recovery point were not durable: {r:?}"
    );
}

/// F6: a Kafka-compacted segment (first batch above the file's base offset; Kafka's
/// segment rules) opened without `streamlog.durable` (any directory Kafka wrote) fails the
/// `expected_base` check at position 0, which lies at the durable point (segs[0], 0), so
/// recovery "truncates a torn tail": the whole valid log is deleted.
#[test]
fn f6_compacted_kafka_segment_is_never_truncated_and_reads_with_gaps_allowed() {
    let fs = SimFs::new();
    let mut data = Vec::new();
    let mut offset = 5i64; // offsets 0..5 were compacted away
    for tag in 0..4u64 {
        let mut b = batch(tag, 2, Compression::None);
        b[..8].copy_from_slice(&offset.to_be_bytes()); // baseOffset is outside the CRC
        offset += 2;
        data.extend_from_slice(&b);
    }
    let path = dir().join(seg_name(0));
    fs.write_file(&path, data.clone());
    // Strict offsets (the default): refused loudly, nothing deleted.
    let err = open_sim(&fs, small_config()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!(
        fs.read_file(&path).unwrap(),
        data,
        "a refused open must not change the data"
    );
    // A compacted log allows gaps and keeps everything.
    let log = open_sim(&fs, small_config().allow_offset_gaps(true)).unwrap();
    assert_eq!(
        log.log_end_offset(),
        13,
        "{:?}",
        log.recovery_report().truncation
    );
    assert_eq!(read_all_from(&log, 5), 8);
}

fn read_all_from(log: &streamlog::log::Log, start: i64) -> usize {
    let mut n = 0;
    let mut offset = start;
    while offset < log.log_end_offset() {
        let recs = log.read_records(offset, 1 << 20).unwrap();
        n += recs.len();
        offset = recs.last().unwrap().offset + 1;
    }
    n
}

/// Regression (found by the Vec-model proptest after the stray-segment fix): an empty
/// segment after a crash can be where a torn tail starts, even the first segment or the
/// one holding the durable position; removing it turned a torn tail into a false
/// Corruption. Only an empty segment overlapping the previous one is a stray.
#[test]
fn empty_segments_after_a_crash_are_torn_tails_not_strays() {
    for seed in 0..64u64 {
        for flush_first in [false, true] {
            let (fs, log) = small_sim_log();
            let mut obs = Observed::default();
            log.append(&mut batch(1, 1, Compression::None)).unwrap();
            obs.appended.push(value(1, 0));
            log.roll().unwrap();
            if flush_first {
                obs.acked = log.flush().unwrap();
            }
            log.append(&mut batch(2, 1, Compression::None)).unwrap();
            obs.appended.push(value(2, 0));
            log.roll().unwrap();
            std::mem::forget(log);
            let img = fs.crash_image(CrashImage::Random(seed));
            let log = open_sim(&img, small_config())
                .unwrap_or_else(|e| panic!("seed {seed}, flush {flush_first}: {e}"));
            check_invariants(&log, &obs).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        }
    }
}

/// Regression (found by the log_ops fuzz target): in a log that allows offset gaps (a
/// compacted topic's), a crash that lost a segment's unflushed tail but kept the next
/// segment, rolled after the last flush, left a gap recovery took for compaction's. The
/// log then served the later segment's records past the lost ones: no prefix of what
/// was appended (I2). Compaction flushes before it cleans, so a gap from the flushed
/// offset on is lost data, and recovery cuts there.
#[test]
fn a_gap_past_the_flushed_offset_is_a_torn_tail_even_where_gaps_are_allowed() {
    let config = || small_config().allow_offset_gaps(true);
    let fs = SimFs::new();
    let log = open_sim(&fs, config()).unwrap();
    append_batches(&log, 0..1, 2);
    assert_eq!(log.flush().unwrap(), 2);
    let flushed_size = log.segments()[0].size;
    append_batches(&log, 1..2, 3);
    log.roll().unwrap();
    append_batches(&log, 2..3, 2);
    // The power cut kept everything but the first segment's unflushed tail.
    let image = fs.crash_image(CrashImage::KeepAll);
    drop(log);
    let first = dir().join(seg_name(0));
    let mut data = image.read_file(&first).unwrap();
    data.truncate(flushed_size as usize);
    image.write_file(&first, data);
    let log = open_sim(&image, config()).unwrap();
    assert_eq!(
        log.log_end_offset(),
        2,
        "the log is cut where the data was lost"
    );
    assert_eq!(
        read_values(&log).unwrap(),
        [value(0, 0), value(0, 1)],
        "nothing past the lost records is served"
    );
    assert!(log.recovery_report().truncation.is_some());
    assert_eq!(log.segments().len(), 1);
}

/// Regression (found by the recover_log fuzz target): a sealed segment's index files cut
/// short, keeping only sane entries, passed the open's checks after a clean close. The
/// last time entry left set the segment's largest timestamp too low, and timestamp
/// lookups skipped the segment. The headers the open reads after the last offset entry
/// now show the time index is stale, and it is rebuilt.
#[test]
fn index_files_cut_short_are_rebuilt_not_trusted_for_timestamps() {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..12, 3);
    assert!(log.segments().len() >= 2, "the test needs a sealed segment");
    let first_end = log.segments()[1].base_offset;
    log.close().unwrap();
    for (suffix, entry) in [("index", 8), ("timeindex", 12)] {
        let path = dir().join(format!("{:020}.{suffix}", 0));
        let mut data = fs.read_file(&path).unwrap();
        assert!(data.len() > entry, "{suffix} holds more than one entry");
        data.truncate(entry);
        fs.write_file(&path, data);
    }
    let log = open_sim(&fs, small_config()).unwrap();
    let records = read_all(&log).unwrap();
    for r in records.iter().filter(|r| r.offset < first_end) {
        let want = records
            .iter()
            .find(|x| x.timestamp >= r.timestamp)
            .map(|x| (x.offset, x.timestamp));
        assert_eq!(log.offset_for_timestamp(r.timestamp).unwrap(), want);
    }
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
}

/// Three segments, 0 (offsets 0..=5), 6 (6..=11) and 12 (12..=17), written by a real log
/// that is still open.
fn three_segments() -> (SimFs, streamlog::log::Log) {
    let (fs, log) = small_sim_log();
    for tag in 0..9u64 {
        log.append(&mut batch(tag, 2, Compression::None)).unwrap();
        if tag == 2 || tag == 5 {
            log.roll().unwrap();
        }
    }
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, [0, 6, 12]);
    (fs, log)
}

/// Appends to `<base>.log` a CRC-valid batch of two records at offsets `at` and `at + 1`
/// (the base offset is outside the CRC), as a segment that overlaps the next one holds.
fn append_batch_at(fs: &SimFs, base: i64, at: i64) {
    let path = dir().join(seg_name(base));
    let mut data = fs.read_file(&path).unwrap();
    let mut b = batch(100, 2, Compression::None);
    b[..8].copy_from_slice(&at.to_be_bytes());
    data.extend_from_slice(&b);
    fs.write_file(&path, data);
}

fn assert_overlap_is_corruption(fs: &SimFs, later: i64, case: &str) {
    match open_sim(fs, small_config()) {
        Err(streamlog::Error::Corruption {
            path,
            position,
            reason,
        }) => {
            assert!(
                path.ends_with(seg_name(later)),
                "{case}: {path:?}: {reason}"
            );
            assert_eq!(position, 0, "{case}: {reason}");
            assert!(reason.contains("overlaps"), "{case}: {reason}");
        }
        Err(e) => panic!("{case}: not Corruption: {e}"),
        Ok(log) => {
            // One batch per read, as a consumer with a small budget reads.
            let mut served = Vec::new();
            let mut next = log.log_start_offset();
            while next < log.log_end_offset() {
                match log.read(next, 1) {
                    Ok(bs) if !bs.is_empty() => {
                        served.extend(bs.iter().map(|b| (b.base_offset(), b.last_offset())));
                        next = bs[bs.len() - 1].last_offset() + 1;
                    }
                    other => {
                        served.push((next, -1));
                        eprintln!("{case}: read({next}): {other:?}");
                        break;
                    }
                }
            }
            panic!("{case}: overlapping segments were accepted; batches served: {served:?}");
        }
    }
}

/// Fuzz finding `overlapping-segment-below-recovery-point.bin` (issue 19, item 10): with
/// the recovery point in segment 12, segments 0 and 6 are trusted without a scan and the
/// scan starts at segment 12, whose base was never checked against where segment 6
/// ends. A segment 6 that runs on to offset 13 overlapped segment 12, the open
/// succeeded, and offsets 12..=13 were served twice (I2, I3). The same overlap inside
/// the trusted part (a clean reopen scans nothing) went unnoticed too. Both lie in
/// flushed data, so both are Corruption naming the later segment at position 0.
#[test]
fn overlapping_segments_below_the_recovery_point_are_corruption() {
    // After a crash: segments 0 and 6 lie below the recovery point (12), segment 12 is
    // scanned; segment 6 now ends at offset 13.
    let (fs, log) = three_segments();
    log.flush().unwrap();
    std::mem::forget(log);
    let img = fs.crash_image(CrashImage::DropAll);
    append_batch_at(&img, 6, 12);
    assert_overlap_is_corruption(&img, 12, "crash, overlap where the scan starts");

    // After a clean close every segment is trusted: segment 0 now ends at offset 7.
    let (fs, log) = three_segments();
    log.close().unwrap();
    append_batch_at(&fs, 0, 6);
    assert_overlap_is_corruption(&fs, 6, "clean close, overlap in the trusted part");

    // Control: the untouched images open and read back every offset.
    for clean in [false, true] {
        let img = three_segment_image(clean);
        let log = open_sim(&img, small_config()).unwrap();
        assert_eq!(read_all(&log).unwrap().len(), 18, "clean {clean}");
    }
}

/// Every file of the partition directory with its bytes.
fn snapshot(fs: &SimFs) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    fs.files(&dir())
        .into_iter()
        .map(|(p, _)| {
            let data = fs.read_file(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Damage {
    None,
    /// A flipped bit in the records of segment 12's first batch.
    Crc,
    /// Segment 6 is gone: segment 12 does not follow segment 0.
    Gap,
}

/// [`three_segments`] after a clean close or a crash right after a flush, with what a
/// successful open changes: two empty stray segments inside segments 0 and 6, an orphan
/// index, leftover `.deleted` and `.tmp` files, a compaction swap to finish (and, after a
/// `three_segments()` closed cleanly, or flushed and then cut by a power cut.
fn three_segment_image(clean: bool) -> SimFs {
    let (fs, log) = three_segments();
    if clean {
        log.close().unwrap();
        fs
    } else {
        log.flush().unwrap();
        std::mem::forget(log);
        fs.crash_image(CrashImage::DropAll)
    }
}

/// clean close, the clean-shutdown marker); and `damage` to flushed data.
fn image_with_leftovers(clean: bool, damage: Damage) -> SimFs {
    let img = three_segment_image(clean);
    let put = |name: &str, data: Vec<u8>| img.write_file(&dir().join(name), data);
    put(&seg_name(2), Vec::new());
    put(&seg_name(8), Vec::new());
    put("00000000000000000009.index", vec![0; 8]);
    put("00000000000000000003.log.deleted", b"deleted".to_vec());
    put(
        "recovery-point-offset-checkpoint.tmp",
        b"0\n1\nclicks 0 3\n".to_vec(),
    );
    let seg0 = img.read_file(&dir().join(seg_name(0))).unwrap();
    put("00000000000000000000.log.swap", seg0);
    match damage {
        Damage::None => {}
        Damage::Crc => {
            let path = dir().join(seg_name(12));
            let mut data = img.read_file(&path).unwrap();
            data[70] ^= 0x10;
            img.write_file(&path, data);
        }
        Damage::Gap => img.delete_file(&dir().join(seg_name(6))),
    }
    img
}

/// Fuzz finding `failed-open-deletes-empty-segments.bin` (issue 19, item 10): an open
/// that ended in `Corruption` had already deleted two empty stray segments and the
/// clean-shutdown marker (and leftover files, an orphan index, rewritten indexes,
/// finished a compaction swap), so the next open of the same image saw another
/// directory, and even succeeded. I5: a failed open changes nothing. Open now checks
/// everything before it changes anything.
#[test]
fn a_failed_open_leaves_the_directory_byte_for_byte_unchanged() {
    for clean in [true, false] {
        for damage in [Damage::Crc, Damage::Gap] {
            let case = format!("clean {clean}, {damage:?}");
            let img = image_with_leftovers(clean, damage);
            let before = snapshot(&img);
            let first = match open_sim(&img, small_config()) {
                Err(e) if e.is_corruption() => e.to_string(),
                Err(e) => panic!("{case}: not Corruption: {e}"),
                Ok(_) => panic!("{case}: damaged flushed data opened"),
            };
            let after: Vec<_> = snapshot(&img);
            let changed: Vec<_> = before
                .iter()
                .filter(|f| !after.contains(f))
                .map(|(p, _)| p.display().to_string())
                .chain(
                    after
                        .iter()
                        .filter(|f| !before.contains(f))
                        .map(|(p, _)| format!("+{}", p.display())),
                )
                .collect();
            assert!(
                changed.is_empty(),
                "{case}: the open failed ({first}) but changed {changed:?}"
            );
            match open_sim(&img, small_config()) {
                Err(e) => assert_eq!(e.to_string(), first, "{case}: second open"),
                Ok(_) => panic!("{case}: failed with `{first}`, then opened"),
            }
        }
    }
    // Control: undamaged, the same image opens, and only then is it cleaned up.
    for clean in [true, false] {
        let img = image_with_leftovers(clean, Damage::None);
        let log = open_sim(&img, small_config()).unwrap();
        assert_eq!(read_all(&log).unwrap().len(), 18, "clean {clean}");
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, [0, 6, 12], "clean {clean}");
        let names: Vec<String> = img
            .files(&dir())
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for gone in [
            seg_name(2),
            seg_name(8),
            "00000000000000000009.index".into(),
            "00000000000000000003.log.deleted".into(),
            "recovery-point-offset-checkpoint.tmp".into(),
            "00000000000000000000.log.swap".into(),
            ".kafka_cleanshutdown".into(),
        ] {
            assert!(!names.contains(&gone), "clean {clean}: {gone} is left");
        }
    }
}

/// A compaction swap is checked before it is finished, and a failed open leaves it
/// unfinished: here the swap file scans clean with any leader epoch, but its batches
/// carry epoch 5 where the log allows 0, which recovery finds. The error names the swap
/// file (the damage is there; nothing was renamed), and the directory is unchanged.
#[test]
fn damage_in_an_unfinished_swap_is_reported_in_the_swap_file_and_nothing_is_changed() {
    let (fs, log) = three_segments();
    log.close().unwrap();
    let mut swap = fs.read_file(&dir().join(seg_name(0))).unwrap();
    swap[12..16].copy_from_slice(&5i32.to_be_bytes()); // partitionLeaderEpoch, outside the CRC
    fs.write_file(&dir().join("00000000000000000000.log.swap"), swap);
    let before = snapshot(&fs);
    match open_sim(&fs, small_config()) {
        Err(streamlog::Error::Corruption { path, reason, .. }) => {
            assert!(
                path.ends_with("00000000000000000000.log.swap"),
                "{path:?}: {reason}"
            );
            assert!(reason.contains("partitionLeaderEpoch"), "{reason}");
        }
        other => panic!("{:?}", other.map(|l| l.log_end_offset())),
    }
    assert!(
        snapshot(&fs) == before,
        "the failed open changed the directory"
    );
}

/// From a review: an open after a crash that failed part-way (here: writing the new
/// leader epoch) returned without poisoning the log, so dropping it wrote the
/// clean-shutdown marker, and the next open trusted the directory without the recovery
/// (and without the new epoch that checks positions taken before the crash).
#[test]
fn an_open_after_a_crash_that_fails_leaves_the_next_open_a_recovery() {
    let mut failures = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        append_batches(&log, 0..20, 2);
        log.flush().unwrap();
        append_batches(&log, 20..22, 2);
        let image = fs.crash_image(CrashImage::KeepAll);
        std::mem::forget(log);
        image.inject(Fault::Eio, image.op_count() + k, false);
        let opened = open_sim(&image, small_config());
        image.clear_faults();
        let failed = opened.is_err();
        drop(opened);
        let log = open_sim(&image, small_config()).unwrap();
        if !failed {
            break;
        }
        failures += 1;
        assert!(
            !log.recovery_report().clean_shutdown,
            "fault at operation {k}: the failed open left a clean-shutdown marker"
        );
        assert!(k < 1000);
    }
    assert!(failures > 0);
}

/// Segments whose records carry no timestamp (-1) have an empty time index, as Kafka's
/// do. The open took an empty time index on a non-empty segment for damage: every
/// reopen, even after a clean close, rescanned those segments and rewrote their
/// indexes. It is trusted once the headers show no timestamp; a lost time index of
/// records that have one is still rebuilt.
#[test]
fn segments_without_timestamps_reopen_without_a_rescan() {
    let (fs, log) = small_sim_log();
    for n in 0..12u8 {
        let mut b = BatchBuilder::new();
        b.push(-1, Some(&[n]), Some(&[7u8; 100][..]), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    assert!(log.segments().len() >= 3);
    log.close().unwrap();
    for _ in 0..2 {
        let log = open_sim(&fs, small_config()).unwrap();
        let r = log.recovery_report();
        assert_eq!((r.indexes_rebuilt, r.segments_scanned), (0, 0), "{r:?}");
        assert_eq!(read_all(&log).unwrap().len(), 12);
        log.close().unwrap();
    }
    // The same segments with timestamps, their time index emptied: rebuilt.
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..12, 3);
    assert!(log.segments().len() >= 2);
    log.close().unwrap();
    fs.write_file(&dir().join(format!("{:020}.timeindex", 0)), Vec::new());
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    let records = read_all(&log).unwrap();
    let first = &records[0];
    assert_eq!(
        log.offset_for_timestamp(first.timestamp).unwrap(),
        Some((first.offset, first.timestamp))
    );
}

/// Every record offset from the log start (gaps allowed).
fn offsets(log: &streamlog::log::Log) -> Vec<i64> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let recs = log.read_records(at, 1 << 20).unwrap();
        let Some(last) = recs.last() else { break };
        at = last.offset + 1;
        out.extend(recs.iter().map(|r| r.offset));
    }
    out
}

/// Makes the newest slot of `streamlog.durable` unreadable (as a torn write of it
/// would), so that an open falls back to the other slot.
fn tear_newest_durable_slot(fs: &SimFs) {
    let path = dir().join("streamlog.durable");
    let mut data = fs.read_file(&path).unwrap();
    let seq = |at: usize| {
        (data.len() >= at + 12 && &data[at..at + 4] == b"SLDP")
            .then(|| u64::from_be_bytes(data[at + 4..at + 12].try_into().unwrap()))
    };
    let newest = [0usize, 4096]
        .into_iter()
        .filter_map(|at| seq(at).map(|s| (s, at)))
        .max()
        .unwrap()
        .1;
    data[newest..newest + 4].copy_from_slice(b"XXXX");
    fs.write_file(&path, data);
}

/// The durable-position file keeps two slots, the older one from an earlier write.
/// After a truncation, a retention pass or a compaction pass, that older point named
/// bytes or segments no longer there: should the newest slot be torn later (a failed
/// write, then a crash), the open fell back to it and refused the log as corrupt. Each
/// of them now leaves its point in both slots.
#[test]
fn the_older_durable_slot_never_names_what_a_cut_removed() {
    use streamlog::log::{CleanPolicy, RetentionPolicy};
    type Op = fn(&streamlog::log::Log);
    let ops: [(&str, Op); 3] = [
        ("truncate", |log| {
            let second = log.segments()[1].base_offset;
            log.truncate_to(second + 1).unwrap();
        }),
        ("retention", |log| {
            let policy = RetentionPolicy {
                retention_bytes: 1,
                ..RetentionPolicy::log_start_only(1_700_000_000_000)
            };
            assert!(log.enforce_retention(&policy).unwrap().segments_deleted > 0);
        }),
        ("compaction", |log| {
            let policy = CleanPolicy {
                now_ms: 1_700_000_000_000,
                force: true,
                ..CleanPolicy::default()
            };
            assert!(log.clean(&policy).unwrap().cleaned);
        }),
    ];
    for (what, op) in ops {
        let fs = SimFs::new();
        let config = small_config().allow_offset_gaps(true);
        let log = open_sim(&fs, config.clone()).unwrap();
        append_batches(&log, 0..30, 3);
        log.flush().unwrap();
        assert!(log.segments().len() >= 4, "{what}");
        op(&log);
        let expected = offsets(&log);
        std::mem::forget(log);
        let img = fs.crash_image(CrashImage::KeepAll);
        tear_newest_durable_slot(&img);
        let log =
            open_sim(&img, config).unwrap_or_else(|e| panic!("{what}: the log does not open: {e}"));
        assert_eq!(offsets(&log), expected, "{what}");
    }
}

/// `truncate_to` found the new end from headers it did not check against each other:
/// a base offset damaged on disk (it is outside the CRC) set the log end below offsets
/// the log kept, and the next appends reused them. It is now `Corruption`, and nothing
/// is cut.
#[test]
fn a_truncation_over_a_damaged_base_offset_is_corruption() {
    use streamlog::fs::FileSystem as _;
    let fs = SimFs::new();
    let log = open_sim(&fs, streamlog::log::LogConfig::default()).unwrap();
    append_batches(&log, 0..1, 30);
    append_batches(&log, 1..3, 10);
    log.roll().unwrap();
    append_batches(&log, 3..4, 10);
    // In the sealed first segment, the second batch (offsets 30..39) now says it
    // starts at 0, so it ends at 9 (damaged under the running log, not read since).
    let second = batch(0, 30, Compression::None).len() as u64;
    let f = fs.open(&dir().join(seg_name(0)), false).unwrap();
    f.write_all_at(&0i64.to_be_bytes(), second).unwrap();
    f.sync_data().unwrap();
    let err = log.truncate_to(45).unwrap_err();
    assert!(matches!(err, streamlog::Error::Corruption { .. }), "{err}");
    assert_eq!(log.log_end_offset(), 60, "nothing was cut");
}

/// From a review: a clean open finds the active segment's end by scanning from its last
/// offset-index entry. The time-index check reads only the entry at or below the
/// segment's largest timestamp; with that timestamp early in the segment, a last entry
/// damaged since the close (naming no batch start) went unchecked, and the tail scan
/// from it refused the whole log as `Corruption` of the `.log`, whose bytes are sound.
/// The segment is now read from its start, and its indexes rebuilt.
#[test]
fn a_damaged_last_index_entry_of_the_active_segment_is_rebuilt_at_a_clean_open() {
    let fs = SimFs::new();
    let config = || {
        LogConfig::default()
            .segment_bytes(1 << 20)
            .index_interval_bytes(1)
    };
    let log = open_sim(&fs, config()).unwrap();
    for tag in 0..5i64 {
        let mut b = BatchBuilder::new();
        // The largest timestamp is the first batch's: the time index ends there.
        let ts = if tag == 0 {
            1_700_000_000_000
        } else {
            1_000 + tag
        };
        b.push(ts, Some(b"k"), Some(format!("v{tag}").as_bytes()), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    let before = read_all(&log).unwrap();
    log.close().unwrap();
    let path = dir().join(format!("{:020}.index", 0));
    let mut index = fs.read_file(&path).unwrap();
    let sound = index.clone();
    assert!(index.len() >= 16, "an entry per batch");
    let at = index.len() - 4;
    let position = u32::from_be_bytes(index[at..].try_into().unwrap());
    // Still increasing and inside the file: only the batch it names is wrong.
    index[at..].copy_from_slice(&(position + 1).to_be_bytes());
    fs.write_file(&path, index);

    let log = open_sim(&fs, config()).unwrap();
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(read_all(&log).unwrap(), before);
    assert_eq!(log.log_end_offset(), 5);
    // Written back by the open itself (the active index is preallocated past its entries).
    let rewritten = fs.read_file(&path).unwrap();
    assert_eq!(rewritten[..sound.len()], sound[..]);
    log.close().unwrap();
    let log = open_sim(&fs, config()).unwrap();
    assert_eq!(log.recovery_report().indexes_rebuilt, 0, "written back");
    assert_eq!(read_all(&log).unwrap(), before);
}

/// Retention records the new log start, unlinks the segments below it and fsyncs the
/// directory once after them all. A power cut before that fsync may keep any of the
/// unlinks without the others: here the second segment's, not the first's. The open
/// took the gap between the first and third segments for damage and refused the log
/// (`Corruption`) although no offset at or above the log start was missing. It opens,
/// serves from the log start, and the next retention pass removes the first segment.
#[test]
fn a_gap_below_the_log_start_left_by_retention_is_not_damage() {
    let (fs, log) = small_sim_log();
    for tag in 0..12u64 {
        log.append(&mut batch(tag, 2, Compression::None)).unwrap();
        if tag % 3 == 2 && tag < 11 {
            log.roll().unwrap();
        }
    }
    let segments = log.segments();
    let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, [0, 6, 12, 18]);
    log.flush().unwrap();
    let first: Vec<_> = ["log", "index", "timeindex"]
        .iter()
        .map(|ext| {
            let path = dir().join(format!("{:020}.{ext}", 0));
            let bytes = fs.read_file(&path).unwrap();
            (path, bytes)
        })
        .collect();
    let mut policy = streamlog::log::RetentionPolicy::log_start_only(1_700_000_000_000);
    policy.retention_bytes = (segments[2].size + segments[3].size) as i64;
    let outcome = log.enforce_retention(&policy).unwrap();
    assert_eq!(
        (outcome.segments_deleted, outcome.log_start_offset),
        (2, 12)
    );
    // The power cut: the first segment's unlinks did not reach the disk.
    let image = fs.crash_image(CrashImage::KeepAll);
    std::mem::forget(log);
    for (path, bytes) in first {
        image.write_file(&path, bytes);
    }
    // A check of the directory (the CLI's `verify`) lets it pass too.
    let check = streamlog::log::verify_partition_dir(&image, &dir(), false).unwrap();
    assert_eq!((check.segments, check.log_end_offset), (3, 24));
    let log = open_sim(&image, small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 24));
    assert_eq!(read_all_from(&log, 12), 12);
    let outcome = log
        .enforce_retention(&streamlog::log::RetentionPolicy::log_start_only(0))
        .unwrap();
    assert_eq!(outcome.segments_deleted, 1);
    let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, [12, 18]);
}

/// From a retention hunt: the log start offset checkpoint `delete_records` wrote was
/// taken as none at open when it did not parse, or was gone: the records it deleted
/// were readable again, silently. A lost one falls back to the start the durable
/// position recorded now, and one that does not parse is refused as damage.
#[test]
fn a_lost_or_damaged_log_start_checkpoint_does_not_bring_deleted_records_back() {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..3, 5);
    assert_eq!(log.advance_log_start(7).unwrap(), 7);
    // A flush after it records the raised start with the durable position.
    append_batches(&log, 3..4, 5);
    log.flush().unwrap();
    log.close().unwrap();
    let checkpoint = dir().join("log-start-offset-checkpoint");
    assert!(fs.read_file(&checkpoint).is_some());
    streamlog::fs::FileSystem::remove_file(&fs, &checkpoint).unwrap();
    let log = open_sim(&fs, small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 7, "from the durable position");
    assert!(log.read(0, 1 << 20).is_err(), "offset 0 was deleted");
    log.close().unwrap();
    fs.write_file(&checkpoint, b"0\n1\nclicks 0 x7\n".to_vec());
    match open_sim(&fs, small_config()) {
        Err(streamlog::Error::Corruption { .. }) => {}
        other => panic!("a damaged log start checkpoint: {:?}", other.map(|_| ())),
    }
    // The read-only check refuses what the open refuses.
    match streamlog::log::verify_partition_dir(&fs, &dir(), false) {
        Err(streamlog::Error::Corruption { .. }) => {}
        other => panic!("verify: {:?}", other.map(|_| ())),
    }
}

/// From a format hunt: a Kafka directory holding a message of the format before Kafka
/// 0.11 (magic 1, here 37 bytes) was refused as "batch length 37 is below the 61-byte
/// minimum", which reads as damage. It is named for what it is now (still refused:
/// the old formats are not read).
#[test]
fn a_message_of_the_old_format_is_named_as_one() {
    let fs = SimFs::new();
    let mut m = Vec::new();
    m.extend_from_slice(&0i64.to_be_bytes()); // offset
    m.extend_from_slice(&25i32.to_be_bytes()); // size
    m.extend_from_slice(&0u32.to_be_bytes()); // crc
    m.push(1); // magic
    m.push(0); // attributes
    m.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    m.extend_from_slice(&(-1i32).to_be_bytes()); // null key
    m.extend_from_slice(&3i32.to_be_bytes());
    m.extend_from_slice(b"abc");
    assert_eq!(m.len(), 12 + 25);
    fs.write_file(&dir().join(seg_name(0)), m);
    match streamlog::log::verify_partition_dir(&fs, &dir(), false) {
        Err(e @ streamlog::Error::Corruption { .. }) => {
            assert!(e.to_string().contains("message format v1"), "{e}");
        }
        other => panic!("an old message: {:?}", other.map(|_| ())),
    }
}
