//! Open file descriptors (its own test binary, and its tests one at a time, so nothing
//! else opens files while they are counted):
//! - a sealed, synced segment of a `Log` keeps one descriptor (its `.log`), not three; its
//!   index entries live in memory;
//! - a `Store` keeps at most `max_open_files` descriptors however many partitions and
//!   segments it has, and loses nothing by closing and reopening
//!   files.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::send_wait;
use parking_lot::Mutex;
use streamlog::format::BatchBuilder;
use streamlog::log::{Log, LogConfig};
use streamlog::{
    Acks, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Record, Store, StoreConfig,
    TopicConfig, TopicPartition,
};

/// Held by each test: descriptors are counted process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[test]
fn sealed_segments_hold_one_descriptor_each() {
    let _one = ONE_AT_A_TIME.lock();
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

/// 300 partitions of small segments under `max_open_files(32)`: without the limit they
/// hold about five descriptors each (1,500), and a store of a few thousand partitions
/// could not open under an ordinary `ulimit -n`.
#[test]
fn a_store_holds_at_most_max_open_files_descriptors() {
    let _one = ONE_AT_A_TIME.lock();
    let Some(before) = open_fds() else {
        return; // not Linux
    };
    const LIMIT: usize = 32;
    // The store's lock file, the maintenance thread's and the test's own slack.
    let bound = |what: &str| {
        let open = open_fds().unwrap() - before;
        if open > LIMIT + 8 {
            for e in std::fs::read_dir("/proc/self/fd").unwrap() {
                eprintln!("{:?}", std::fs::read_link(e.unwrap().path()));
            }
        }
        assert!(
            open <= LIMIT + 8,
            "{open} descriptors {what} (max_open_files {LIMIT})"
        );
    };
    const PARTITIONS: i32 = 300;
    const RECORDS: usize = 6000;
    let dir = tempfile::tempdir().unwrap();
    let config = || StoreConfig::default().max_open_files(LIMIT);
    let store = Store::open_with(dir.path(), config()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(PARTITIONS)
                .segment_bytes(1024),
        )
        .unwrap();
    bound("after creating the topic");
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::Leader).linger_ms(0))
        .unwrap();
    let mut sent = HashMap::new();
    for i in 0..RECORDS {
        let value = format!("value-{i}-{}", "x".repeat(i % 50));
        let record = ProducerRecord::new("t")
            .key(format!("key-{i}"))
            .value(value.clone());
        let meta = send_wait(&producer, record);
        sent.insert((meta.partition, meta.offset), value);
    }
    producer.flush().unwrap();
    drop(producer);
    bound("after producing");
    let segments: usize = store
        .describe_topic("t")
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.segment_count)
        .sum();
    assert!(segments > 2 * PARTITIONS as usize, "{segments} segments");

    let read_all = |store: &Store| {
        let mut consumer = store
            .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
            .unwrap();
        let tps: Vec<TopicPartition> = (0..PARTITIONS)
            .map(|p| TopicPartition::new("t", p))
            .collect();
        consumer.assign(&tps).unwrap();
        let mut seen = 0;
        while seen < RECORDS {
            let records = consumer.poll(Duration::from_secs(5)).unwrap();
            assert!(
                !records.is_empty(),
                "only {seen} of {RECORDS} records read back"
            );
            for r in &records {
                let want = &sent[&(r.partition(), r.offset())];
                assert_eq!(r.value(), Some(want.as_bytes()));
                seen += 1;
            }
        }
        assert_eq!(seen, RECORDS);
    };
    read_all(&store);
    bound("after reading every partition");
    // Handles that outlive the close keep no descriptor.
    let partition = store.topic("t").unwrap().partition(7).unwrap();
    let clone = store.clone();
    store.close().unwrap();
    let open = open_fds().unwrap() - before;
    assert!(open <= 2, "{open} descriptors after closing the store");
    assert!(
        partition.read(0, 1 << 10).is_err(),
        "reads after close fail"
    );
    drop((partition, clone, store));
    let open = open_fds().unwrap() - before;
    assert!(open <= 2, "{open} descriptors after dropping the store");

    let store = Store::open_with(dir.path(), config()).unwrap();
    bound("after reopening");
    read_all(&store);
    bound("after reading again");
}

/// A reopened store whose partitions nobody uses holds no descriptor for them, under
/// the default `max_open_files` (issue 15, item 4): an untouched partition's files are
/// reopened at their first use. Using some partitions then opens only theirs.
#[test]
fn idle_partitions_of_a_reopened_store_hold_no_descriptor() {
    let _one = ONE_AT_A_TIME.lock();
    let Some(before) = open_fds() else {
        return; // not Linux
    };
    const PARTITIONS: i32 = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let topic = store.topic("t").unwrap();
    for p in 0..PARTITIONS {
        let record = streamlog::Record::new(0, Some("k"), Some(format!("v{p}")));
        topic.partition(p).unwrap().append(&[record]).unwrap();
    }
    drop(topic);
    store.close().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let open = open_fds().unwrap() - before;
    // The store's lock, its internal topics and the maintenance thread: not 4 per
    // partition (800) as when every partition kept its active segment's files open.
    assert!(
        open < 40,
        "{open} descriptors after reopening {PARTITIONS} partitions"
    );
    let topic = store.topic("t").unwrap();
    for p in [3, 7] {
        let part = topic.partition(p).unwrap();
        assert_eq!(
            part.read(0, 1 << 10).unwrap()[0].value.as_deref(),
            Some(format!("v{p}").as_bytes())
        );
        part.append(&[streamlog::Record::new(0, Some("k"), Some("again"))])
            .unwrap();
        assert_eq!(part.log_end_offset(), 2);
    }
    let open = open_fds().unwrap() - before;
    assert!(open < 50, "{open} descriptors after using two partitions");
    drop(topic);
    store.close().unwrap();
}

/// What the process holds open (descriptors and mappings) under `dir`.
fn held_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let mut held: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with(&dir))
        .collect();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    held.extend(
        maps.lines()
            .filter(|l| l.contains(&dir))
            .map(|l| format!("mapped: {l}")),
    );
    held
}

/// Deleting a topic lets go of its files (descriptors and mappings, which would keep
/// the deleted files' disk space; a transaction index too) although producers that sent
/// to it, a consumer that read it and a partition handle still live. The consumer lets
/// go of the batches it fetched ahead at its next poll, even with the partition paused.
#[test]
fn a_deleted_topics_files_are_let_go_while_handles_to_it_live() {
    let _one = ONE_AT_A_TIME.lock();
    if open_fds().is_none() {
        return; // not Linux
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("gone", TopicConfig::default().partitions(3))
        .unwrap();
    store.create_topic("kept", TopicConfig::default()).unwrap();
    let producer = store.producer(ProducerConfig::default()).unwrap();
    for i in 0..3000 {
        drop(
            producer
                .send(
                    ProducerRecord::new("gone")
                        .key(format!("k{i}"))
                        .value(vec![7u8; 100]),
                )
                .unwrap(),
        );
    }
    producer.flush().unwrap();
    // An aborted transaction: its marker opens the active segment's `.txnindex`.
    let txn = store
        .producer(ProducerConfig::default().transactional_id("tx"))
        .unwrap();
    txn.init_transactions().unwrap();
    txn.begin_transaction().unwrap();
    drop(
        txn.send(ProducerRecord::new("gone").partition(0).value("aborted"))
            .unwrap(),
    );
    txn.abort_transaction().unwrap();
    assert!(
        dir.path()
            .join("gone-0/00000000000000000000.txnindex")
            .exists(),
        "the test should have a transaction index"
    );
    let mut consumer = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    consumer.assign(&[TopicPartition::new("gone", 0)]).unwrap();
    let records = consumer.poll(Duration::from_secs(5)).unwrap();
    assert!(!records.is_empty());
    drop(records);
    // Paused, it still lets go of what it fetched ahead once the topic is deleted.
    consumer.pause(&[TopicPartition::new("gone", 0)]).unwrap();
    let partition = store.topic("gone").unwrap().partition(1).unwrap();
    let topic_dir = dir.path().join("gone-1");
    assert!(
        !held_under(dir.path()).is_empty(),
        "the test should see the topic's files held before the deletion"
    );

    store.delete_topic("gone").unwrap();
    assert!(!topic_dir.exists());
    assert!(consumer.poll(Duration::ZERO).unwrap().is_empty());
    let held: Vec<String> = held_under(dir.path())
        .into_iter()
        .filter(|p| p.contains("/gone-"))
        .collect();
    assert!(held.is_empty(), "still held after the deletion: {held:?}");
    // The producer lets go of the deleted topic's partitions at its next send, to
    // whichever topic.
    #[cfg(feature = "internals")]
    assert_eq!(streamlog::internals::producer_partitions_held(&producer), 3);
    drop(
        producer
            .send(ProducerRecord::new("kept").value("v"))
            .unwrap(),
    );
    #[cfg(feature = "internals")]
    assert_eq!(streamlog::internals::producer_partitions_held(&producer), 1);
    // The handles still answer, as closed.
    assert!(
        partition
            .append(&[Record::new(0, None::<&str>, Some("v"))])
            .is_err()
    );
    drop(
        producer
            .send(ProducerRecord::new("kept").value("v"))
            .unwrap(),
    );
    producer.flush().unwrap();
    drop((consumer, producer, txn, partition));
    store.close().unwrap();
}
