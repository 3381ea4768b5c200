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
