//! Readers and `truncate_to`: a read that overlaps a truncation and the appends after
//! it never returns a batch the truncation removed.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use common::intercept::{Hooks, InterceptFs};
use common::{batch, value};
use streamlog::format::Compression;
use streamlog::fs::{FileSystem, SimFs};
use streamlog::log::{Log, LogConfig};

/// The values of the records in `batches` from offset `from` on.
fn values_from(batches: &[streamlog::format::Batch], from: i64) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in b.records().unwrap() {
            let r = r.unwrap();
            if r.offset >= from {
                out.push(String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned());
            }
        }
    }
    out
}

/// From a read-path hunt: a read took the log end (10) and the segment list, then
/// stalled in its segment while `truncate_to(5)` cut the log and ten batches were
/// appended again (end 15). Its batches past the cut, from the old file, passed the
/// epoch check it took before the cut, and the end it checked them against last was
/// 15: the removed batches 5..9 were returned. A read that overlapped a new epoch is
/// read again now.
#[test]
fn a_read_overlapping_a_truncation_returns_no_removed_batch() {
    // The reader, once armed, stops at its first read of a batch body until the
    // truncation and the appends are done.
    let armed = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(Barrier::new(2));
    let resume = Arc::new(Barrier::new(2));
    let hooks = {
        let (armed, stalled, resume) = (armed.clone(), stalled.clone(), resume.clone());
        Hooks {
            before_read: Box::new(move |path, len| {
                let body = len > 61 && path.extension().is_some_and(|e| e == "log");
                if body && armed.swap(false, Ordering::AcqRel) {
                    stalled.wait();
                    resume.wait();
                }
            }),
            ..Hooks::default()
        }
    };
    let fs = Arc::new(InterceptFs::new(SimFs::new(), hooks)) as Arc<dyn FileSystem>;
    let log = Arc::new(Log::open_with_fs(fs, common::dir(), LogConfig::default()).unwrap());
    for tag in 0..10 {
        log.append(&mut batch(tag, 1, Compression::None)).unwrap();
    }
    armed.store(true, Ordering::Release);
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || log.read(5, 1 << 20))
    };
    stalled.wait();
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    for tag in 100..110 {
        log.append(&mut batch(tag, 1, Compression::None)).unwrap();
    }
    resume.wait();
    let batches = reader.join().unwrap().unwrap();
    let expected: Vec<String> = (100..110).map(|tag| value(tag, 0)).collect();
    let got = values_from(&batches, 5);
    assert!(!got.is_empty());
    assert_eq!(got, expected[..got.len()]);
}

/// From a read-path hunt: a `TailReader` keeps its segment file open between reads. A
/// truncation writes the cut segment anew and renames it over the old name; the reader
/// went on in the old file, served the removed batches at 5..9, and then, the old file
/// done, looked its position (10) up in the new one: the batches appended at 5..9
/// after the cut were never served. A batch read from a file the writer replaced is
/// served only if no truncation removed it; else the reader looks its offset up again.
#[test]
fn a_tail_reader_serves_no_batch_a_truncation_removed() {
    use streamlog::format::DecodeOptions;
    use streamlog::log::TailReader;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    for tag in 0..10 {
        log.append(&mut batch(tag, 1, Compression::None)).unwrap();
    }
    let mut tail = TailReader::new(&dir, DecodeOptions::default());
    // Offset 0 only: the reader keeps its file, at offset 1.
    let (first, mut at) = tail.read_on(0, 1).unwrap();
    assert_eq!((first.len(), at), (1, 1));
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    for tag in 100..110 {
        log.append(&mut batch(tag, 1, Compression::None)).unwrap();
    }
    let mut got = Vec::new();
    loop {
        let (records, next) = tail.read_on(at, 1 << 20).unwrap();
        if records.is_empty() {
            break;
        }
        got.extend(records);
        at = next;
    }
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (1..15).collect::<Vec<_>>());
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned())
        .collect();
    let expected: Vec<String> = (1..5)
        .map(|tag| value(tag, 0))
        .chain((100..110).map(|tag| value(tag, 0)))
        .collect();
    assert_eq!(values, expected);
}
