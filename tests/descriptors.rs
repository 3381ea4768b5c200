//! Open file descriptors per segment (its own test binary, so nothing else opens files
//! while they are counted): a sealed, synced segment keeps one descriptor (its `.log`),
//! not three; its index entries live in memory.

use streamlog::format::BatchBuilder;
use streamlog::log::{Log, LogConfig};

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[test]
fn sealed_segments_hold_one_descriptor_each() {
    let Some(before) = open_fds() else {
        return; // not Linux
    };
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().segment_index_bytes(1024);
    let log = Log::open(dir.path().join("t-0"), config.clone()).unwrap();
    const SEGMENTS: usize = 400;
    for i in 0..SEGMENTS {
        let mut b = BatchBuilder::new();
        b.push(i as i64, Some(b"k"), Some(b"v"), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.roll().unwrap();
    }
    log.flush().unwrap();
    let open = open_fds().unwrap() - before;
    assert!(
        open < SEGMENTS + 50,
        "{open} descriptors for {SEGMENTS} sealed segments (3 each before)"
    );
    log.close().unwrap();
    // The same after a clean reopen, and reads still work (entries are in memory).
    let log = Log::open(dir.path().join("t-0"), config).unwrap();
    let open = open_fds().unwrap() - before;
    assert!(open < SEGMENTS + 50, "{open} descriptors after reopening");
    let recs = log.read_records(123, 1 << 10).unwrap();
    assert_eq!(recs[0].offset, 123);
    assert_eq!(log.offset_for_timestamp(300).unwrap(), Some((300, 300)));
    log.close().unwrap();
}
