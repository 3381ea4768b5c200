//! The maintenance thread's life cycle. Its own test binary (one test), so no other
//! store's thread runs in the process while threads are counted.
mod common;

use std::time::{Duration, Instant};

use streamlog::{Record, Store, StoreConfig, TopicConfig};

/// Linux's `PF_EXITING`: the thread has begun to exit (set before `pthread_join` can
/// return; the kernel lists the thread a while longer, until it reaps it).
const PF_EXITING: u64 = 0x4;

/// Threads of this process named like the maintenance thread that have not begun to exit
/// (Linux; None elsewhere). A thread joined a moment ago may still be listed by the
/// kernel, so "has not begun to exit" rather than "is listed" is what makes a count of 0
/// right after a join exact instead of a race with the kernel.
fn maintenance_threads() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|e| {
                let path = e.ok()?.path();
                let name = std::fs::read_to_string(path.join("comm")).ok()?;
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                // `tid (comm) state ppid pgrp session tty_nr tpgid flags ...`
                let after_comm = &stat[stat.rfind(')')? + 1..];
                let flags: u64 = after_comm.split_whitespace().nth(6)?.parse().ok()?;
                (name.starts_with("streamlog-maint") && flags & PF_EXITING == 0).then_some(())
            })
            .count(),
    )
}

/// Waits until the maintenance thread of a store just opened runs (it names itself
/// once it does); a failure guard of 60 s.
fn wait_for_the_thread_to_run() {
    common::wait_until("the maintenance thread runs", || {
        maintenance_threads().is_none_or(|n| n > 0)
    });
    if let Some(n) = maintenance_threads() {
        assert_eq!(n, 1);
    }
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
    wait_for_the_thread_to_run();
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
    // A failure guard: the thread flushes and deletes by itself, every 10 and 20 ms.
    let deadline = Instant::now() + common::HANG;
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
    // Dropping the last handle without close stops it too (once it runs: not a
    // thread that has not started yet).
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval_ms(1),
    )
    .unwrap();
    wait_for_the_thread_to_run();
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
