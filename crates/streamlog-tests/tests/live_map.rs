//! The active segment is read through a live, growing memory map (zero-copy like the
//! sealed segments): reads see every append, and truncation never shrinks a file a
//! reader may have mapped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use streamlog::format::BatchBuilder;
use streamlog::log::{Log, LogConfig};

fn batch(i: u64, len: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    let value: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
    b.push(1_700_000_000_000, Some(&i.to_be_bytes()), Some(&value), &[])
        .unwrap();
    b.finish().unwrap()
}

fn expected_value(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// A reader follows a writer through several map growths (the first map is 1 MiB):
/// every record it reads has the bytes that were appended at its offset.
#[test]
fn a_reader_sees_every_append_across_map_growth() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap());
    const N: u64 = 3000;
    const LEN: usize = 2000; // ~6 MB: the live map grows 1 -> 2 -> 4 -> 8 MiB
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut next = 0i64;
            while next < N as i64 {
                // `done` first: once it is seen, every append is visible, so a log end
                // still at `next` means a lost append (read the other way round, the
                // writer could finish between the two loads).
                let finished = done.load(Ordering::Acquire);
                if next >= log.log_end_offset() {
                    assert!(!finished, "offset {next} never appended");
                    std::thread::yield_now();
                    continue;
                }
                for r in log.read_records(next, 64 << 10).unwrap() {
                    assert_eq!(r.offset, next);
                    assert_eq!(
                        r.value.as_deref(),
                        Some(&expected_value(next as u64, LEN)[..])
                    );
                    next += 1;
                }
            }
        });
        for i in 0..N {
            log.append(&mut batch(i, LEN)).unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap();
    });
    assert_eq!(log.segments().len(), 1, "all in the active segment");
}

/// Bytes read from the active segment stay valid and unchanged after it is truncated
/// below them and overwritten by new appends (a shrunk mapped file would fault on
/// access, SIGBUS, and the new appends would show through).
#[test]
fn bytes_read_before_truncating_the_active_segment_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    for i in 0..200 {
        log.append(&mut batch(i, 5000)).unwrap();
    }
    let held: Vec<Bytes> = log
        .read(100, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|b| b.bytes().clone())
        .collect();
    let copies: Vec<Vec<u8>> = held.iter().map(|b| b.to_vec()).collect();
    assert_eq!(held.len(), 100);
    assert_eq!(log.truncate_to(50).unwrap(), 50);
    for i in 50..200 {
        log.append(&mut batch(i + 1000, 5000)).unwrap();
    }
    for (b, c) in held.iter().zip(&copies) {
        assert_eq!(&b[..], &c[..]);
    }
    let now = log.read_records(100, 6000).unwrap();
    assert_eq!(
        now[0].value.as_deref(),
        Some(&expected_value(1100, 5000)[..])
    );
    log.close().unwrap();
}
