//! The files on disk are Kafka's: index entries by Kafka's rule, preallocated and
//! trimmed index files, a final time-index entry, roll on a full index; and recovery
//! after a crash scans only what follows the recovery point.
mod common;

use common::*;
use streamlog::format::{BatchBuilder, Compression};
use streamlog::fs::{CrashImage, SimFs};
use streamlog::log::{Log, LogConfig};

fn batch_of(ts: i64, value_len: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(ts, Some(b"k"), Some(&vec![b'v'; value_len]), &[])
        .unwrap();
    b.push(ts, Some(b"k"), Some(&vec![b'w'; value_len]), &[])
        .unwrap();
    b.finish().unwrap()
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().unwrap())
}

#[test]
fn index_files_follow_kafkas_rules_and_are_trimmed_on_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    let index = dir.join("00000000000000000000.index");
    let timeindex = dir.join("00000000000000000000.timeindex");
    let len = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    // Preallocated at the first entry, not before: a partition that is never indexed
    // leaves its index files untouched.
    assert_eq!(len(&index), 0);
    assert_eq!(len(&timeindex), 0);
    // Kafka's rule, computed independently: an entry (lastOffset, position) before a batch
    // is appended when more than 4096 bytes were appended since the last entry.
    let (mut expected_index, mut expected_time) = (Vec::new(), Vec::new());
    let (mut since, mut pos, mut offset, mut max_ts) = (0u64, 0u64, 0i64, -1i64);
    for i in 0..60i64 {
        let ts = 1_000 + (i * 7) % 50; // not monotonic: the time index only grows
        let mut b = batch_of(ts, 300 + (i as usize * 37) % 900);
        let size = b.len() as u64;
        log.append(&mut b).unwrap();
        let last = offset + 1;
        if ts > max_ts {
            max_ts = ts;
        }
        if since > 4096 {
            expected_index.push((last as u32, pos as u32));
            if expected_time.last().is_none_or(|&(t, _)| t < max_ts) {
                expected_time.push((max_ts, last as u32));
            }
            since = 0;
        }
        since += size;
        pos += size;
        offset += 2;
    }
    assert!(!expected_index.is_empty() && !expected_time.is_empty());
    assert_eq!(len(&index), 10 << 20, "preallocated to segment_index_bytes");
    assert_eq!(
        len(&timeindex),
        10_485_756,
        "rounded down to 12-byte entries"
    );
    log.close().unwrap();
    let idx = std::fs::read(&index).unwrap();
    assert_eq!(idx.len(), expected_index.len() * 8, "trimmed on close");
    let got: Vec<(u32, u32)> = idx
        .chunks(8)
        .map(|c| (be32(&c[..4]), be32(&c[4..])))
        .collect();
    assert_eq!(got, expected_index);
    let tix = std::fs::read(&timeindex).unwrap();
    assert_eq!(tix.len() % 12, 0);
    let got: Vec<(i64, u32)> = tix
        .chunks(12)
        .map(|c| {
            (
                i64::from_be_bytes(c[..8].try_into().unwrap()),
                be32(&c[8..]),
            )
        })
        .collect();
    // The timestamps in the index are the max so far, paired with the batch carrying it
    // (its last offset); the final entry (added at close) holds the segment's max.
    for w in got.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "time index timestamps strictly grow: {got:?}"
        );
    }
    assert_eq!(
        got.last().unwrap().0,
        1_049,
        "final entry holds the segment max timestamp"
    );
    for (t, _) in &expected_time {
        assert!(
            got.iter().any(|(g, _)| g == t),
            "missing time entry {t}: {got:?}"
        );
    }
    // One segment: a crash recovery after the next open scans it whole wherever the
    // point lies in it, so the close writes none (the flushes never needed one either).
    assert!(
        !dir.join("recovery-point-offset-checkpoint").exists(),
        "no recovery point inside the only segment"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".kafka_cleanshutdown")).unwrap(),
        r#"{"version":0,"brokerEpoch":0}"#
    );
}

#[test]
fn a_full_index_rolls_the_segment() {
    let fs = SimFs::new();
    // 24 bytes: 3 offset entries or 2 time entries.
    let log = open_sim(
        &fs,
        LogConfig::default()
            .segment_index_bytes(24)
            .index_interval_bytes(1),
    )
    .unwrap();
    for i in 0..10 {
        log.append(&mut batch_of(i, 10)).unwrap();
    }
    assert!(log.segments().len() >= 3, "{:?}", log.segments());
    assert_eq!(read_all(&log).unwrap().len(), 20);
}

#[test]
fn after_a_crash_only_segments_past_the_recovery_point_are_scanned() {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..40, 3);
    log.flush().unwrap();
    let segments = log.segments().len();
    assert!(segments > 5);
    log.append(&mut batch(99, 3, Compression::None)).unwrap();
    std::mem::forget(log);
    let img = fs.crash_image(CrashImage::KeepAll);
    let log = open_sim(&img, small_config()).unwrap();
    let report = log.recovery_report();
    assert!(!report.clean_shutdown);
    assert!(
        report.segments_scanned <= 2,
        "scanned {} of {segments} segments",
        report.segments_scanned
    );
    assert_eq!(log.log_end_offset(), 123);
    assert_eq!(read_all(&log).unwrap().len(), 123);
}
