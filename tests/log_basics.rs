//! Scenario tests of the partition log on the real file system and on SimFs.
mod common;

use common::*;
use streamlog::Error;
use streamlog::format::Compression;
use streamlog::fs::SimFs;
use streamlog::log::{Log, LogConfig};

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
    let got: Vec<String> = read_all(&log)
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(got, expected);
    log.close().unwrap();
    assert!(list(&dir).contains(&".kafka_cleanshutdown".to_string()));

    let log = Log::open(&dir, small_config()).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(report.segments_scanned, 0, "a clean reopen scans nothing");
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.durable_offset(), 200);
    let got: Vec<String> = read_all(&log)
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
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
    for tag in 0..200 {
        log.append(&mut batch(tag, 3, Compression::None)).unwrap();
    }
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
    let fs = SimFs::new();
    let log = open_sim(&fs, small_config()).unwrap();
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
