//! A log reopened after a clean shutdown writes nothing until it changes (issue 15,
//! item 4): the clean-shutdown marker stays, so reopening and closing an idle partition
//! costs no write and no fsync. Every change first removes the marker durably, so a
//! crash at any point is never mistaken for a clean shutdown: whenever a crash image
//! still holds the marker, every other file is byte for byte what the clean close left.
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{crash_modes, dir, open_sim, open_sim_limited};
use streamlog::format::BatchBuilder;
use streamlog::fs::SimFs;
use streamlog::log::{CleanPolicy, Log, LogConfig, RetentionPolicy};

const MARKER: &str = ".kafka_cleanshutdown";
const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_index_bytes(240)
        .index_interval_bytes(128)
        .allow_offset_gaps(true)
}

fn put(log: &Log, key: &str, value: &str) {
    let mut b = BatchBuilder::new();
    b.push(T0, Some(key.as_bytes()), Some(value.as_bytes()), &[])
        .unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
}

/// Every file under the log's directory with its bytes; the marker's bytes left out:
/// only its presence counts (the close does not sync them, and an open never reads them).
fn files(fs: &SimFs) -> BTreeMap<PathBuf, Vec<u8>> {
    fs.files(&dir())
        .into_iter()
        .map(|(p, _)| {
            let bytes = if p.ends_with(MARKER) {
                Vec::new()
            } else {
                fs.read_file(&p).unwrap()
            };
            (p, bytes)
        })
        .collect()
}

fn has_marker(fs: &SimFs) -> bool {
    fs.read_file(&dir().join(MARKER)).is_some()
}

/// A log of several segments (keys repeat, so compaction has work), closed cleanly.
fn closed_log(fs: &SimFs) {
    let log = open_sim(fs, config()).unwrap();
    for i in 0..60 {
        put(&log, &format!("k{}", i % 5), &format!("value-{i:03}"));
    }
    log.close().unwrap();
    assert!(has_marker(fs));
}

#[test]
fn a_clean_reopen_and_close_write_nothing() {
    let fs = SimFs::new();
    closed_log(&fs);
    let before = files(&fs);
    let writes = fs.mutating_op_count();
    // Through a CachingFs, as a store opens its logs.
    let log = open_sim_limited(&fs, config(), Some(64)).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.read_records(0, 1 << 20).unwrap()[0].offset, 0);
    log.flush().unwrap();
    log.close().unwrap();
    assert_eq!(
        fs.mutating_op_count(),
        writes,
        "a reopen, a read, a flush and a close of an unchanged log change nothing"
    );
    assert_eq!(files(&fs), before);
    // Still clean: the next open scans nothing either.
    let log = open_sim(&fs, config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().segments_scanned, 0);
    assert_eq!(log.log_end_offset(), 60);
    log.close().unwrap();
}

type Change = (&'static str, fn(&Log));

/// Each operation that writes to a log's directory.
fn changes() -> Vec<Change> {
    vec![
        ("append", |log| put(log, "k9", "new")),
        ("append and flush", |log| {
            put(log, "k9", "new");
            log.flush().unwrap();
        }),
        ("roll", |log| log.roll().unwrap()),
        ("truncate", |log| {
            log.truncate_to(30).unwrap();
        }),
        ("advance the log start", |log| {
            log.advance_log_start(20).unwrap();
        }),
        ("retention", |log| {
            let policy = RetentionPolicy {
                retention_ms: -1,
                retention_bytes: 1,
                now_ms: T0,
                gate: None,
                max_bytes: -1,
            };
            log.enforce_retention(&policy).unwrap();
        }),
        ("compaction", |log| {
            let policy = CleanPolicy {
                now_ms: T0,
                force: true,
                ..CleanPolicy::default()
            };
            log.clean(&policy).unwrap();
        }),
    ]
}

/// For each change, a crash after every one of its writes, in every crash image: if
/// the image still holds the marker, nothing else differs from the clean close; the
/// log reopens without error either way and keeps what was flushed before.
#[test]
fn every_change_after_a_clean_reopen_removes_the_marker_before_it_writes() {
    for (name, change) in changes() {
        // How many writes the change makes, to crash after each.
        let writes = {
            let fs = SimFs::new();
            closed_log(&fs);
            let log = open_sim(&fs, config()).unwrap();
            let before = fs.mutating_op_count();
            change(&log);
            let n = fs.mutating_op_count() - before;
            assert!(n > 0, "{name} writes something");
            drop(log);
            n
        };
        for k in 0..=writes {
            for mode in crash_modes(k) {
                let fs = SimFs::new();
                closed_log(&fs);
                let clean = files(&fs);
                let log = open_sim(&fs, config()).unwrap();
                fs.crash_after(fs.mutating_op_count() + k);
                // A crash makes later writes fail: the change may fail, or panic in
                // the closure's unwrap, which is the same to this test.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(&log)));
                drop(log);
                let image = fs.crash_image(mode);
                if has_marker(&image) {
                    assert_eq!(
                        files(&image),
                        clean,
                        "{name}, crash after {k} writes ({mode:?}): the marker survived \
                         a change"
                    );
                }
                let log = open_sim(&image, config())
                    .unwrap_or_else(|e| panic!("{name}, crash after {k} ({mode:?}): {e}"));
                let start = log.log_start_offset();
                let records = log.read_records(start, 1 << 20).unwrap();
                assert!(
                    !records.is_empty() || log.log_end_offset() == start,
                    "{name}, crash after {k} ({mode:?}): records unreadable"
                );
                log.close().unwrap();
            }
        }
    }
}

/// A read that finds a sealed segment's index damaged rebuilds it on disk: that is a
/// change, so the marker goes first (a crash while the index is rewritten must not be
/// taken for a clean shutdown).
#[test]
fn an_index_rebuilt_by_a_read_removes_the_marker_first() {
    let fs = SimFs::new();
    {
        // Increasing timestamps: each sealed segment's last time entry names its last
        // batch, so the open reads no offset entry before the last one.
        let log = open_sim(&fs, config()).unwrap();
        for i in 0..60 {
            let mut b = BatchBuilder::new();
            b.push(
                T0 + i,
                Some(b"k"),
                Some(format!("value-{i:03}").as_bytes()),
                &[],
            )
            .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.close().unwrap();
    }
    let index = dir().join("00000000000000000000.index");
    let mut bytes = fs.read_file(&index).unwrap();
    assert!(
        bytes.len() >= 32,
        "the first segment has several index entries"
    );
    // A middle entry's position, far past the segment's end (the open checks only the
    // last entry; the others are read at first use).
    bytes[20..24].copy_from_slice(&u32::MAX.to_be_bytes());
    fs.write_file(&index, bytes.clone());
    let log = open_sim(&fs, config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert!(has_marker(&fs));
    let records = log.read_records(5, 1 << 10).unwrap();
    assert_eq!(records[0].offset, 5);
    assert_ne!(
        fs.read_file(&index).unwrap(),
        bytes,
        "the index was rebuilt on disk"
    );
    assert!(
        !has_marker(&fs),
        "the index changed under a clean-shutdown marker"
    );
    log.close().unwrap();
}

#[test]
fn a_marker_whose_bytes_were_lost_still_marks_a_clean_close() {
    let fs = SimFs::new();
    closed_log(&fs);
    let before = files(&fs);
    // The close syncs the directory after creating the marker, not the marker's bytes:
    // a crash keeps its name and may lose what it holds.
    let image = fs.crash_image(streamlog::fs::CrashImage::DropAll);
    assert_eq!(image.read_file(&dir().join(MARKER)), Some(Vec::new()));
    let log = open_sim(&image, config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().segments_scanned, 0);
    drop(log);
    assert_eq!(
        files(&image),
        before,
        "every file is what the clean close left"
    );
}

#[test]
fn a_recovery_point_the_open_did_not_trust_is_replaced_at_close() {
    // A point past the durable end (a stale or foreign checkpoint: not trusted, and it
    // would be once the log grew past it), and text that does not parse.
    let bad: [&[u8]; 2] = [b"0\n1\nclicks 0 500\n", b"not a checkpoint"];
    for text in bad {
        let fs = SimFs::new();
        let config = LogConfig::default();
        let log = open_sim(&fs, config.clone()).unwrap();
        for i in 0..3 {
            put(&log, "k", &format!("v{i}"));
        }
        log.close().unwrap();
        let point = dir().join("recovery-point-offset-checkpoint");
        fs.write_file(&point, text.to_vec());
        let log = open_sim(&fs, config).unwrap();
        put(&log, "k", "v3");
        log.close().unwrap();
        assert_eq!(
            fs.read_file(&point).map(|b| String::from_utf8(b).unwrap()),
            Some("0\n1\nclicks 0 4\n".to_string())
        );
    }
}

#[test]
fn a_crash_after_a_clean_reopen_scans_only_the_active_segment() {
    let fs = SimFs::new();
    // Closed just after a roll: the active segment has room for more.
    let log = open_sim(&fs, config()).unwrap();
    let mut i = 0;
    while log.segments().len() < 3 {
        put(&log, &format!("k{}", i % 5), &format!("value-{i:03}"));
        i += 1;
    }
    log.close().unwrap();
    let log = open_sim(&fs, config()).unwrap();
    let segments = log.segments().len();
    put(&log, "k9", "after-reopen");
    log.flush().unwrap();
    let end = log.log_end_offset();
    // The close left the recovery point where the flushes had put it (the active
    // segment's base); no roll since, so a crash recovery scans that segment alone.
    assert_eq!(log.segments().len(), segments);
    let image = fs.crash_image(streamlog::fs::CrashImage::DropAll);
    drop(log);
    let log = open_sim(&image, config()).unwrap();
    let report = log.recovery_report();
    assert!(!report.clean_shutdown);
    assert_eq!(report.segments_scanned, 1, "{report:?}");
    assert_eq!(log.log_end_offset(), end);
    let records = log.read_records(log.log_start_offset(), 1 << 20).unwrap();
    assert_eq!(records.len() as i64, end - log.log_start_offset());
}
