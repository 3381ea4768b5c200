//! Store-level retention, compaction and background maintenance (issue 4).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::intercept::{Hooks, InterceptFs};
use common::send_wait;
use streamlog::log::ManualClock;
use streamlog::{
    CleanupPolicy, ConsumerConfig, Error, OffsetReset, Partition, Record, Store, StoreConfig,
    TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

fn manual_store(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    Store::open_with(
        dir,
        StoreConfig::default()
            .background_maintenance(false)
            .clock(clock.clone()),
    )
    .unwrap()
}

/// A store in a fresh temp dir, maintenance off, with a manual clock at `T0`.
fn manual_fixture() -> (tempfile::TempDir, Arc<ManualClock>, Store) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = manual_store(dir.path(), &clock);
    (dir, clock, store)
}

/// Creates the topic `name` with `config` and returns its partition 0.
fn partition_0(store: &Store, name: &str, config: TopicConfig) -> Partition {
    store.create_topic(name, config).unwrap();
    store.topic(name).unwrap().partition(0).unwrap()
}

/// Creates the compacted topic `name` (small segments, compacted at any dirty ratio)
/// and returns its partition 0.
fn compacted_partition_0(store: &Store, name: &str) -> Partition {
    partition_0(
        store,
        name,
        TopicConfig::default()
            .segment_bytes(1024)
            .cleanup_policy(CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(0.0),
    )
}

fn rec(ts: i64, key: &str, value: &str) -> Record {
    Record::new(ts, Some(key.to_string()), Some(value.to_string()))
}

/// Retention by time with an injected clock: segments go once their newest record is
/// older than retention_ms; a consumer positioned in the deleted range follows
/// auto_offset_reset (earliest: the new log start).
#[test]
fn retention_by_time_with_manual_clock_moves_consumers() {
    let (_dir, clock, store) = manual_fixture();
    let p = partition_0(
        &store,
        "t",
        TopicConfig::default()
            .segment_bytes(1024)
            .retention_ms(60_000),
    );
    for i in 0..60i64 {
        p.append(&[rec(T0 + i * 1000, "k", &format!("{i:040}"))])
            .unwrap();
    }
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 0).unwrap();
    // Nothing is old enough yet.
    clock.set(T0 + 60_000);
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.segments_deleted, 0, "{r:?}");
    assert!(r.errors.is_empty());
    // 100 s later, records with ts < T0+40s are expired.
    clock.set(T0 + 100_000);
    let r = store.run_maintenance().unwrap();
    assert!(r.segments_deleted > 0 && r.bytes_reclaimed > 0, "{r:?}");
    let start = p.log_start_offset();
    assert!(start > 0 && start <= 40, "log start {start}");
    let first = c.poll(Duration::from_secs(1)).unwrap();
    assert_eq!(
        first.get(0).unwrap().offset(),
        start,
        "the consumer moved to the new log start"
    );
    // Time retention never deletes unexpired records.
    assert!(p.read(40, 100).is_ok());
    store.close().unwrap();
}

/// Consumer-gated retention: segments wait for the named group's committed offset,
/// and the hard byte cap overrides the gate.
#[test]
fn consumer_gated_retention_waits_for_the_group_up_to_the_cap() {
    let (dir, clock, store) = manual_fixture();
    let config = TopicConfig::default()
        .segment_bytes(1024)
        .retention_ms(0)
        .retention_gate_groups(["billing"])
        .retention_gate_max_bytes(1 << 30);
    store.create_topic("t", config.clone()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..50i64 {
        p.append(&[rec(T0, "k", &format!("{i:060}"))]).unwrap();
    }
    clock.set(T0 + 10);
    // No commit yet: everything is held.
    assert_eq!(store.run_maintenance().unwrap().segments_deleted, 0);
    assert_eq!(p.log_start_offset(), 0);
    let mut billing = store.consumer(ConsumerConfig::new("billing")).unwrap();
    let tp = TopicPartition::new("t", 0);
    billing.assign(std::slice::from_ref(&tp)).unwrap();
    billing
        .commit_sync_offsets(&BTreeMap::from([(tp.clone(), 20)]))
        .unwrap();
    let r = store.run_maintenance().unwrap();
    assert!(r.segments_deleted > 0);
    let start = p.log_start_offset();
    assert!(
        start > 0 && start <= 20,
        "deleted only below the commit: {start}"
    );
    // Reopen with a small cap: the stalled group no longer holds the data back.
    store.close().unwrap();
    let store = manual_store(dir.path(), &clock);
    let before = store.describe_topic("t").unwrap().partitions[0].size_bytes;
    let capped = store
        .describe_topic("t")
        .unwrap()
        .config
        .retention_gate_max_bytes(2048);
    store.delete_topic("t").unwrap();
    store.create_topic("t", capped).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..50i64 {
        p.append(&[rec(T0, "k", &format!("{i:060}"))]).unwrap();
    }
    assert!(before > 2048);
    store.run_maintenance().unwrap();
    let after = store.describe_topic("t").unwrap().partitions[0].size_bytes;
    assert!(after <= 2048 + 1024, "cap holds: {after}");
    store.close().unwrap();
}

/// From an API attack: the gate's cap deleted the oldest segments of topics whose own
/// policy keeps everything (compact only; delete with no time or size limit), though
/// the gate held nothing back there: the latest value of unique keys, never read by the
/// gating group, went. The cap bounds only what the gate holds back from retention.
#[test]
fn the_gate_cap_deletes_nothing_retention_would_keep() {
    let (_dir, _clock, store) = manual_fixture();
    let gated = |c: TopicConfig| {
        c.segment_bytes(1024)
            .retention_gate_groups(["g"])
            .retention_gate_max_bytes(2048)
    };
    let topics = [
        (
            "compacted",
            gated(TopicConfig::default().cleanup_policy(CleanupPolicy::Compact)),
        ),
        (
            "forever",
            gated(TopicConfig::default().retention_ms(-1).retention_bytes(-1)),
        ),
    ];
    for (name, config) in topics {
        let p = partition_0(&store, name, config);
        for i in 0..100i64 {
            p.append(&[rec(T0, &format!("key-{i}"), &format!("{i:040}"))])
                .unwrap();
        }
    }
    store.run_maintenance().unwrap();
    for name in ["compacted", "forever"] {
        let p = store.topic(name).unwrap().partition(0).unwrap();
        assert_eq!(p.log_start_offset(), 0, "{name}");
    }
}

/// A compacted topic through the store: the latest value per key survives with its
/// offset; a consumer positioned on a removed offset moves to the next surviving one.
#[test]
fn compacted_topic_keeps_latest_and_consumers_skip_removed_offsets() {
    let (_dir, _clock, store) = manual_fixture();
    let p = partition_0(
        &store,
        "profiles",
        TopicConfig::default()
            .segment_bytes(1024)
            .cleanup_policy(CleanupPolicy::Compact),
    );
    for i in 0..100i64 {
        p.append(&[rec(T0, &format!("user-{}", i % 10), &format!("v{i:030}"))])
            .unwrap();
    }
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.partitions_compacted, 1, "{r:?}");
    assert!(r.records_removed > 0 && r.bytes_saved_by_compaction > 0);
    // Offset 5 (user-5's first value) is gone; reading there gives the next survivor.
    let mut c = store.consumer(ConsumerConfig::default()).unwrap();
    let tp = TopicPartition::new("profiles", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 5).unwrap();
    let got = c.poll(Duration::from_secs(1)).unwrap();
    assert!(got.get(0).unwrap().offset() > 5);
    for r in &got {
        let v = std::str::from_utf8(r.value().unwrap()).unwrap();
        assert_eq!(
            v,
            format!("v{:030}", r.offset()),
            "offset and value still match"
        );
    }
    // Reading everything: the last value of each user is there.
    let mut latest = BTreeMap::new();
    let mut offset = p.log_start_offset();
    while offset < p.log_end_offset() {
        let recs = p.read(offset, 1 << 20).unwrap();
        for r in &recs {
            latest.insert(r.key.clone().unwrap(), r.offset);
        }
        offset = recs.last().unwrap().offset + 1;
    }
    for u in 0..10 {
        let key = bytes::Bytes::from(format!("user-{u}"));
        assert_eq!(latest[&key], 90 + u, "user-{u}");
    }
    store.close().unwrap();
}

/// From a review: a consumer at offset 5 of a batch (0..9) that compaction left
/// holding only records below 5 (it keeps the batch's offsets) read the batch, found
/// nothing at or past 5, moved on to 10 and returned nothing: a `recv` waited for an
/// append that might never come, with a backlog unread. The poll reads on.
#[test]
fn a_batch_left_with_records_only_below_the_position_does_not_end_a_poll_empty() {
    let (_dir, _clock, store) = manual_fixture();
    let p = compacted_partition_0(&store, "profiles");
    // One batch: users 0-9 (offsets 0..9); then users 5-9 again, one batch each (10..14).
    let batch: Vec<Record> = (0..10)
        .map(|i| rec(T0, &format!("user-{i}"), &format!("v{i}")))
        .collect();
    p.append(&batch).unwrap();
    for i in 5..10 {
        p.append(&[rec(T0, &format!("user-{i}"), &format!("again-{i}"))])
            .unwrap();
    }
    // Rolls the segment: compaction never cleans the one being written.
    for i in 0..20 {
        p.append(&[rec(T0, "filler", &format!("{i:0100}"))])
            .unwrap();
    }
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.partitions_compacted, 1, "{r:?}");
    let first = p.read(0, 1).unwrap();
    assert_eq!(
        first.last().map(|r| r.offset),
        Some(4),
        "users 5-9 left batch 0"
    );
    let mut c = store
        .consumer(ConsumerConfig::default().max_partition_fetch_bytes(1))
        .unwrap();
    let tp = TopicPartition::new("profiles", 0);
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, 5).unwrap();
    let got = c.poll(Duration::ZERO).unwrap();
    let offsets: Vec<i64> = got.iter().map(|r| r.offset()).collect();
    assert_eq!(offsets.first(), Some(&10), "{offsets:?}");
}

/// Readers running while retention and compaction passes delete and swap segments:
/// every read returns correct records or OffsetOutOfRange, never garbage or another
/// error.
#[test]
fn concurrent_readers_during_retention_and_compaction() {
    let (_dir, clock, store) = manual_fixture();
    let del = partition_0(
        &store,
        "del",
        TopicConfig::default()
            .segment_bytes(1024)
            .retention_ms(1000),
    );
    let cmp = compacted_partition_0(&store, "cmp");
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    // Each reader's count of successful reads, so every round can wait for each of
    // them to have read during it (instead of hoping they were scheduled at all).
    let progress: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
    for (part, progress) in [del.clone(), cmp.clone()].into_iter().zip(&progress) {
        let stop = stop.clone();
        let progress = progress.clone();
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut offset = part.log_start_offset();
                while offset < part.log_end_offset() {
                    match part.read(offset, 2048) {
                        Ok(recs) => {
                            for r in &recs {
                                let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
                                assert_eq!(v, format!("{:050}", r.offset), "wrong bytes");
                            }
                            reads += 1;
                            progress.store(reads, Ordering::Release);
                            offset = recs.last().map_or(offset, |r| r.offset + 1);
                        }
                        Err(Error::OffsetOutOfRange { .. }) => break,
                        Err(e) => panic!("read at {offset}: {e}"),
                    }
                }
            }
            reads
        }));
    }
    for round in 0..40i64 {
        let before: Vec<u64> = progress.iter().map(|p| p.load(Ordering::Acquire)).collect();
        for i in 0..30i64 {
            let ts = T0 + round * 1000;
            let o = del.log_end_offset();
            del.append(&[rec(ts, "k", &format!("{o:050}"))]).unwrap();
            let o = cmp.log_end_offset();
            cmp.append(&[rec(ts, &format!("key-{}", i % 7), &format!("{o:050}"))])
                .unwrap();
        }
        clock.set(T0 + round * 1000 + 500);
        let r = store.run_maintenance().unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        common::wait_until("both readers read during the round", || {
            progress
                .iter()
                .zip(&before)
                .all(|(p, b)| p.load(Ordering::Acquire) > *b)
        });
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(del.log_start_offset() > 0);
    store.close().unwrap();
}

/// A million offset commits, then maintenance: the internal offsets topic is compacted
/// back to a bounded size, and every committed offset survives a reopen.
#[test]
fn offsets_topic_stays_small_after_a_million_commits() {
    let (dir, clock, store) = manual_fixture();
    const PARTS: i32 = 100;
    store
        .create_topic("t", TopicConfig::default().partitions(PARTS))
        .unwrap();
    let mut c = store.consumer(ConsumerConfig::new("g")).unwrap();
    let tps: Vec<TopicPartition> = (0..PARTS).map(|p| TopicPartition::new("t", p)).collect();
    c.assign(&tps).unwrap();
    // 10,000 commits of 100 partitions each: 1,000,000 committed offsets.
    for round in 0..10_000i64 {
        let offsets: BTreeMap<TopicPartition, i64> =
            tps.iter().map(|tp| (tp.clone(), round)).collect();
        c.commit_sync_offsets(&offsets).unwrap();
    }
    let size = |store: &Store| {
        store
            .describe_topic("__consumer_offsets")
            .unwrap()
            .partitions[0]
            .size_bytes
    };
    let before = size(&store);
    let r = store.run_maintenance().unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let after = size(&store);
    // What is left: the active segment (at most segment_bytes = 8 MiB) and one compacted
    // segment holding the latest commit of each of the 100 partitions.
    assert!(before > 30 << 20, "a million commits take space: {before}");
    assert!(
        after < (8 << 20) + (64 << 10),
        "compacted to {after} bytes from {before}"
    );
    c.close().unwrap();
    store.close().unwrap();
    let store = manual_store(dir.path(), &clock);
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    let committed = c.committed(&tps).unwrap();
    assert_eq!(committed.len(), tps.len());
    assert!(
        committed.values().all(|&o| o == Some(9_999)),
        "{committed:?}"
    );
    store.close().unwrap();
}

/// Records without a key are refused by compacted topics (as Kafka does), through the
/// producer and through Partition::append; a delete-policy topic takes them.
#[test]
fn compacted_topics_refuse_records_without_a_key() {
    let (_dir, _clock, store) = manual_fixture();
    let p = partition_0(
        &store,
        "table",
        TopicConfig::default().cleanup_policy(CleanupPolicy::CompactDelete),
    );
    let other = partition_0(&store, "log", TopicConfig::default());
    let keyless = Record::new(T0, None::<&str>, Some("v"));
    assert!(matches!(
        p.append(std::slice::from_ref(&keyless)),
        Err(Error::InvalidArgument { name: "key", .. })
    ));
    let producer = store
        .producer(streamlog::ProducerConfig::default())
        .unwrap();
    assert!(matches!(
        producer.send(streamlog::ProducerRecord::new("table").value("v")),
        Err(Error::InvalidArgument { name: "key", .. })
    ));
    send_wait(
        &producer,
        streamlog::ProducerRecord::new("table").key("k").value("v"),
    );
    other.append(&[keyless]).unwrap();
    producer.close().unwrap();
    assert_eq!(p.log_end_offset(), 1);
    store.close().unwrap();
}

/// A read whose segment file cannot be opened while the segment list changed under it
/// (retention or compaction removed files meanwhile) asks again against the current list
/// instead of failing with an I/O error.
#[test]
fn a_read_that_loses_its_segment_file_to_a_change_reads_again() {
    use streamlog::fs::{CachingFs, FileSystem, SimFs};
    use streamlog::log::{Log, LogConfig};
    let target = std::path::PathBuf::from("/t-0/00000000000000000020.log");
    // Run once at the next open of `target`, which then fails as if the file was removed.
    type Hook = Box<dyn FnOnce() + Send>;
    let hook: Arc<parking_lot::Mutex<Option<Hook>>> = Arc::default();
    let vanishing = {
        let (hook, target) = (hook.clone(), target.clone());
        InterceptFs::new(
            SimFs::new(),
            Hooks {
                before_open: Box::new(move |path| {
                    if path == target {
                        let run = hook.lock().take();
                        if let Some(run) = run {
                            run();
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                "vanished",
                            ));
                        }
                    }
                    Ok(())
                }),
                ..Hooks::default()
            },
        )
    };
    let fs: Arc<dyn FileSystem> = Arc::new(CachingFs::new(Arc::new(vanishing), 2));
    let log = Arc::new(Log::open_with_fs(fs, "/t-0", LogConfig::default()).unwrap());
    for i in 0..60i64 {
        let mut b = streamlog::BatchBuilder::new();
        b.push(T0, Some(&i.to_be_bytes()), Some(&[7u8; 40]), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        if i % 20 == 19 {
            log.roll().unwrap(); // segments at 0, 20, 40, 60
        }
    }
    log.flush().unwrap();
    assert!(log.segments().iter().any(|s| s.path == target));
    // The next reopen of segment 20's file: the log appends and rolls (a new segment
    // list) and the file is gone for that one open.
    let weak = Arc::downgrade(&log);
    *hook.lock() = Some(Box::new(move || {
        let log = weak.upgrade().unwrap();
        let mut b = streamlog::BatchBuilder::new();
        b.push(T0, Some(b"k"), Some(b"v"), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.roll().unwrap();
    }));
    let batches = log.read(25, 1 << 10).unwrap();
    assert_eq!(batches[0].base_offset(), 25);
    assert!(
        hook.lock().is_none(),
        "the file was reopened during the read"
    );
}

/// Readers racing retention under a descriptor limit of 2 (so segment files are closed
/// and reopened all the time): every read gets data or `OffsetOutOfRange`, never an
/// error. A stress test: the narrow case of a file removed between a read's snapshot and
/// its open is made deterministic in `a_read_that_loses_its_segment_file_to_a_change_reads_again`.
#[test]
fn readers_racing_retention_under_a_tiny_descriptor_limit_see_no_io_error() {
    use streamlog::fs::{CachingFs, FileSystem, SimFs};
    use streamlog::log::{Log, LogConfig, RetentionPolicy};
    let fs: Arc<dyn FileSystem> = Arc::new(CachingFs::new(Arc::new(SimFs::new()), 2));
    let log = Log::open_with_fs(fs, "/t-0", LogConfig::default().segment_bytes(1024)).unwrap();
    for i in 0..1500u32 {
        let mut b = streamlog::BatchBuilder::new();
        b.push(T0, Some(&i.to_be_bytes()), Some(&[7u8; 40]), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    log.flush().unwrap();
    let segments = log.segments().len();
    assert!(segments > 100, "{segments} segments");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for r in 0..2 {
            let (log, done) = (&log, &done);
            s.spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let start = log.log_start_offset();
                    // Mostly the first segment: the one retention deletes next.
                    let at = start + (reads * 7 + r) as i64 % 4;
                    match log.read(at, 256) {
                        Ok(batches) => {
                            for b in &batches {
                                assert!(b.last_offset() >= at);
                            }
                        }
                        Err(Error::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read at {at}: {e}"),
                    }
                    reads += 1;
                }
            });
        }
        let policy = RetentionPolicy::log_start_only(T0);
        while log.segments().len() > 1 {
            let next = log.segments()[1].base_offset;
            log.advance_log_start(next).unwrap();
            log.enforce_retention(&policy).unwrap();
        }
        done.store(true, Ordering::Release);
    });
}

/// Retention by time for segments whose records carry no timestamp (-1): their age is
/// the `.log` file's modification time, as Kafka's `lastModified`; a fresh one stays.
#[test]
fn segments_without_timestamps_expire_by_file_age() {
    use streamlog::log::{Log, LogConfig, RetentionPolicy};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let append = |n: u8| {
        let mut b = streamlog::BatchBuilder::new();
        b.push(-1, Some(&[n]), Some(b"no time"), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
    };
    append(0);
    log.roll().unwrap();
    append(1);
    log.roll().unwrap();
    append(2);
    log.flush().unwrap();
    let segments = log.segments();
    assert_eq!(segments.len(), 3);
    assert!(segments.iter().all(|s| s.max_timestamp == -1));
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    // The first segment was last written two days ago; the others now.
    std::fs::File::options()
        .write(true)
        .open(&segments[0].path)
        .unwrap()
        .set_modified(now - 2 * day)
        .unwrap();
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let policy = RetentionPolicy {
        retention_ms: day.as_millis() as i64,
        ..RetentionPolicy::log_start_only(now_ms)
    };
    let out = log.enforce_retention(&policy).unwrap();
    assert_eq!(out.segments_deleted, 1);
    assert_eq!(log.log_start_offset(), 1);
    assert_eq!(log.enforce_retention(&policy).unwrap().segments_deleted, 0);
    log.close().unwrap();
}

/// From a review: the background thread planned its next pass from the topics' shortest
/// `flush_ms` when a pass ended, so a topic created (or given a `flush_ms`) after that
/// waited for the next full pass (`maintenance_interval_ms`, here an hour) to have its
/// records synced. Creating a topic and changing its config reschedule the thread. (60 s
/// failure guard; the flushes come within milliseconds.)
#[test]
fn a_flush_ms_newer_than_the_threads_plan_is_kept() {
    type Setup = fn(&Store) -> Partition;
    let setups: [(&str, Setup); 2] = [
        ("a topic created with flush_ms", |store| {
            let config = TopicConfig::default().flush_ms(5);
            store.create_topic("t", config).unwrap();
            store.topic("t").unwrap().partition(0).unwrap()
        }),
        ("flush_ms set on a topic", |store| {
            store.create_topic("t", TopicConfig::default()).unwrap();
            store.alter_topic_config("t", |c| c.flush_ms(5)).unwrap();
            store.topic("t").unwrap().partition(0).unwrap()
        }),
    ];
    for (what, setup) in setups {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::default().maintenance_interval_ms(3_600_000);
        let store = Store::open_with(dir.path(), config).unwrap();
        let p = setup(&store);
        p.append(&[Record::new(T0, Some("k"), Some("v"))]).unwrap();
        common::wait_until(what, || p.durable_offset() == p.log_end_offset());
        store.close().unwrap();
    }
}

/// One poll of `recv` with a waker that does nothing: its records, or `None` if it
/// would wait.
fn recv_now(c: &mut streamlog::Consumer) -> Option<Vec<i64>> {
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(c.recv()).as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r.unwrap().iter().map(|r| r.offset()).collect()),
        std::task::Poll::Pending => None,
    }
}

/// From a review: a position out of range (below a start `delete_records` raised, past
/// the end after a seek) was reset by the poll, which then returned nothing; `recv`
/// registered and waited, and nothing notifies for a reset: it slept until some
/// unrelated append. The poll now reads from the reset position.
#[test]
fn a_position_reset_is_read_in_the_same_poll() {
    let (_dir, _clock, store) = manual_fixture();
    let p = partition_0(&store, "t", TopicConfig::default());
    for i in 0..30 {
        p.append(&[rec(T0, "k", &format!("v{i}"))]).unwrap();
    }
    let tp = TopicPartition::new("t", 0);
    let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
    let mut c = store.consumer(config).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(recv_now(&mut c).map(|o| o.len()), Some(30));
    c.seek(&tp, 5).unwrap();
    store.delete_records("t", 0, 20).unwrap();
    assert_eq!(
        recv_now(&mut c),
        Some((20..30).collect()),
        "below the start"
    );
    c.seek(&tp, 1_000).unwrap();
    assert_eq!(recv_now(&mut c), Some((20..30).collect()), "past the end");
}

/// From a review: compaction keeps a producer's last batch even once its records are
/// gone (the batch holds its sequence). A fetch that took only such a batch ended with
/// nothing to return, so with a small `max_partition_fetch_bytes` the poll was empty
/// and `recv` waited for an append. Batches without records are skipped.
#[test]
fn a_batch_compaction_emptied_does_not_end_a_fetch() {
    let (_dir, _clock, store) = manual_fixture();
    let p = compacted_partition_0(&store, "c");
    let producer = store
        .producer(streamlog::ProducerConfig::default())
        .unwrap();
    send_wait(
        &producer,
        streamlog::ProducerRecord::new("c").key("k").value("old"),
    );
    producer.close().unwrap();
    // Newer values of `k` in later segments; the last in the active one.
    for i in 0..40 {
        p.append(&[rec(T0, "k", &format!("{i:080}"))]).unwrap();
    }
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.partitions_compacted, 1, "{r:?}");
    let tp = TopicPartition::new("c", 0);
    let config = ConsumerConfig::default()
        .auto_offset_reset(OffsetReset::Earliest)
        .max_partition_fetch_bytes(1);
    let mut c = store.consumer(config).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let got = recv_now(&mut c).expect("a record is there to return");
    assert!(!got.is_empty() && got[0] > 0, "{got:?}");
}

/// From a review: `delete_records` raised the log start of a compact-only topic (the
/// next retention pass then deleted its segments); Kafka refuses it there
/// (POLICY_VIOLATION): such a topic's records go only by compaction. With `delete` in
/// the policy it is allowed, also after the policy changed.
#[test]
fn delete_records_is_refused_on_a_compact_only_topic() {
    let (_dir, _clock, store) = manual_fixture();
    let compact = TopicConfig::default().cleanup_policy(CleanupPolicy::Compact);
    let p = partition_0(&store, "table", compact);
    p.append(&[rec(T0, "k", "v")]).unwrap();
    assert!(matches!(
        store.delete_records("table", 0, -1),
        Err(Error::InvalidArgument { name: "topic", .. })
    ));
    assert!(matches!(
        p.delete_records(1),
        Err(Error::InvalidArgument { name: "topic", .. })
    ));
    assert_eq!(p.log_start_offset(), 0);
    store
        .alter_topic_config("table", |c| c.cleanup_policy(CleanupPolicy::CompactDelete))
        .unwrap();
    assert_eq!(store.delete_records("table", 0, -1).unwrap(), 1);
}

/// From a review: a compacted topic's segment being written (never compacted) rolled
/// only by `segment_ms` (7 days by default), so a record there waited that long for
/// compaction whatever `max_compaction_lag_ms` said. It rolls by the lag too (Kafka's
/// KIP-354), and the sealed segment is then compacted once overdue (past the log's
/// first pass, which runs anyway, and with a dirty ratio that would not start one).
#[test]
fn a_compacted_topic_rolls_and_compacts_by_max_compaction_lag() {
    const LAG: i64 = 3_600_000;
    let (_dir, clock, store) = manual_fixture();
    let p = partition_0(
        &store,
        "profiles",
        TopicConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .min_cleanable_dirty_ratio(1.0)
            .max_compaction_lag_ms(LAG),
    );
    let now = |clock: &ManualClock| streamlog::log::Clock::now_ms(clock);
    p.append(&[rec(T0, "seed", "a")]).unwrap();
    clock.advance(LAG + 1);
    p.append(&[rec(now(&clock), "user-1", "old")]).unwrap();
    p.append(&[rec(now(&clock), "user-1", "new")]).unwrap();
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.partitions_compacted, 1, "the first pass: {r:?}");
    clock.advance(LAG + 1);
    p.append(&[rec(now(&clock), "user-2", "later")]).unwrap();
    let r = store.run_maintenance().unwrap();
    assert_eq!(r.partitions_compacted, 1, "overdue: {r:?}");
    let offsets: Vec<i64> = p
        .read(0, 1 << 20)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, [0, 2, 3], "user-1's old value compacted away");
}
