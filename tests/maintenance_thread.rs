//! The maintenance thread's life cycle. Its own test binary (one test), so no other
//! store's thread runs in the process while threads are counted.

use std::time::{Duration, Instant};

use streamlog::{Record, Store, StoreConfig, TopicConfig};

/// Threads of this process named like the maintenance thread (Linux; None elsewhere).
fn maintenance_threads() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
            .filter(|n| n.starts_with("streamlog-maint"))
            .count(),
    )
}

/// The background thread flushes (flush_ms) and runs retention on its own, and stops on
/// close and when the last store handle is dropped; with background maintenance off
/// there is no thread.
#[test]
fn background_thread_flushes_deletes_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval_ms(20),
    )
    .unwrap();
    // The thread names itself once it runs: wait for that.
    let named = Instant::now() + Duration::from_secs(5);
    while maintenance_threads().is_some_and(|n| n == 0) && Instant::now() < named {
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(n) = maintenance_threads() {
        assert_eq!(n, 1);
    }
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .segment_bytes(1024)
                .retention_ms(0)
                .flush_ms(10),
        )
        .unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let old = 1_000_000_000_000; // long expired
    for i in 0..40 {
        let r = Record::new(old, Some("k"), Some(format!("{i:050}")));
        p.append(&[r]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (p.durable_offset() < p.log_end_offset() || p.log_start_offset() == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        p.durable_offset(),
        p.log_end_offset(),
        "flushed by flush_ms"
    );
    assert!(p.log_start_offset() > 0, "retention ran in the background");
    store.close().unwrap();
    if let Some(n) = maintenance_threads() {
        assert_eq!(n, 0, "close joins the thread");
    }
    // Dropping the last handle without close stops it too.
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval_ms(1),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(store);
    if let Some(n) = maintenance_threads() {
        assert_eq!(n, 0, "drop joins the thread");
    }
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    if let Some(n) = maintenance_threads() {
        assert_eq!(n, 0, "disabled: no thread");
    }
    store.close().unwrap();
}
