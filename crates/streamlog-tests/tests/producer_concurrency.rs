//! The producer's per-partition locks (issue 15, item 2): threads sending at once to
//! shared partitions keep each thread's order and lose nothing, batches close by size
//! under either lock, and memory a lingering batch holds in advance never costs
//! another partition its batching.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use common::sim_topic_t;
use streamlog::{ProducerConfig, ProducerRecord, Store};

/// Every record of every partition, as `(thread, sequence)` parsed from `t<thread>-<seq>`.
fn sent_order(store: &Store, partitions: i32) -> Vec<Vec<(usize, usize)>> {
    let topic = store.topic("t").unwrap();
    (0..partitions)
        .map(|p| {
            let part = topic.partition(p).unwrap();
            part.read(0, usize::MAX)
                .unwrap()
                .iter()
                .map(|r| {
                    let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
                    let (t, seq) = v.trim_start_matches('t').split_once('-').unwrap();
                    (t.parse().unwrap(), seq.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

/// Four threads send to the same three partitions at once (one with `send_batch`), in
/// batches small enough that many close on either path. Idempotence is on (the
/// default), so a batch appended out of its sequence order would be refused. Each
/// thread's records of each partition come back complete and in its order.
#[test]
fn threads_sending_to_shared_partitions_keep_each_threads_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 1500;
    const PARTITIONS: i32 = 3;
    let (_fs, store) = sim_topic_t(PARTITIONS);
    let producer = store
        .producer(ProducerConfig::default().batch_size(600).linger_ms(60_000))
        .unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let producer = producer.clone();
            let start = start.clone();
            s.spawn(move || {
                start.wait();
                let record = |i: usize| {
                    ProducerRecord::new("t")
                        .partition((i % PARTITIONS as usize) as i32)
                        .value(format!("t{t}-{i}"))
                };
                let mut futures = Vec::new();
                if t == 0 {
                    for chunk in (0..PER_THREAD).collect::<Vec<_>>().chunks(50) {
                        let records: Vec<_> = chunk.iter().map(|&i| record(i)).collect();
                        futures.push(Err(producer.send_batch(&records).unwrap()));
                    }
                } else {
                    for i in 0..PER_THREAD {
                        futures.push(Ok(producer.send(record(i)).unwrap()));
                    }
                }
                producer.flush().unwrap();
                for f in futures {
                    match f {
                        Ok(one) => drop(one.wait().unwrap()),
                        Err(batch) => drop(batch.wait().unwrap()),
                    }
                }
            });
        }
    });
    let order = sent_order(&store, PARTITIONS);
    for (p, records) in order.iter().enumerate() {
        let mut last: HashMap<usize, usize> = HashMap::new();
        for &(t, seq) in records {
            assert_eq!(seq % PARTITIONS as usize, p, "t{t}-{seq} in partition {p}");
            if let Some(&before) = last.get(&t) {
                assert!(
                    seq == before + PARTITIONS as usize,
                    "partition {p}: t{t}-{seq} follows t{t}-{before}"
                );
            } else {
                assert_eq!(seq, p, "partition {p}: thread {t} starts at t{t}-{seq}");
            }
            last.insert(t, seq);
        }
        assert_eq!(records.len(), THREADS * PER_THREAD / PARTITIONS as usize);
    }
}

/// A lingering batch takes up to `batch_size` of `buffer_memory` at its first record,
/// so later records join it without the producer's lock. When another partition needs
/// that memory, the unused part is taken back rather than appending batches early: with
/// room for every record, each partition still ends with a single batch.
#[test]
fn memory_held_in_advance_is_taken_back_before_batches_are_cut_short() {
    const PARTITIONS: i32 = 8;
    let (_fs, store) = sim_topic_t(PARTITIONS);
    let producer = store
        .producer(
            ProducerConfig::default()
                .buffer_memory(8192)
                .batch_size(2048)
                .linger_ms(60_000),
        )
        .unwrap();
    // 8 partitions x 5 records of about 100 bytes: 4 KiB, half the memory; 8 batches
    // holding 2 KiB each in advance would need twice what there is.
    let mut futures = Vec::new();
    for i in 0..5 {
        for p in 0..PARTITIONS {
            let record = ProducerRecord::new("t")
                .partition(p)
                .value(format!("t0-{i}-{}", "x".repeat(60)));
            futures.push(producer.send(record).unwrap());
        }
    }
    producer.flush().unwrap();
    for f in futures {
        f.wait().unwrap();
    }
    let topic = store.topic("t").unwrap();
    for p in 0..PARTITIONS {
        let batches = topic
            .partition(p)
            .unwrap()
            .read_batches(0, usize::MAX)
            .unwrap();
        assert_eq!(
            batches.len(),
            1,
            "partition {p}: its records were cut into {} batches",
            batches.len()
        );
        assert_eq!(batches[0].last_offset() - batches[0].base_offset() + 1, 5);
    }
}

/// `buffer_memory` bounds what open batches allocate, not only what they account for.
/// A small record to each of 200 partitions within a linger, twice, with room for 16
/// batches of 64 KiB: every batch allocated `batch_size` up front and kept it when
/// memory ran short and its unused part was taken back (200 x 64 KiB, twelve times the
/// budget); now its buffer shrinks with the accounting. The bound is twice the budget
/// (buffers grow by doubling) plus a batch header's slack per partition.
#[cfg(feature = "internals")]
#[test]
fn open_batches_allocate_within_buffer_memory() {
    const PARTITIONS: i32 = 200;
    const BUDGET: usize = 1 << 20;
    let (_fs, store) = sim_topic_t(PARTITIONS);
    let producer = store
        .producer(
            ProducerConfig::default()
                .buffer_memory(BUDGET)
                .batch_size(64 << 10)
                .linger_ms(3_600_000),
        )
        .unwrap();
    let mut futures = Vec::new();
    for round in 0..2 {
        for p in 0..PARTITIONS {
            let record = ProducerRecord::new("t")
                .partition(p)
                .value(format!("r{round}-p{p}-{}", "x".repeat(100)));
            futures.push(producer.send(record).unwrap());
            let allocated = streamlog::internals::producer_open_batch_allocations(&producer);
            let bound = 2 * BUDGET + PARTITIONS as usize * 512;
            assert!(
                allocated <= bound,
                "round {round}, partition {p}: {allocated} bytes allocated, over {bound}"
            );
        }
    }
    producer.flush().unwrap();
    for f in futures {
        f.wait().unwrap();
    }
    let topic = store.topic("t").unwrap();
    for p in 0..PARTITIONS {
        let end = topic.partition(p).unwrap().log_end_offset();
        assert_eq!(end, 2, "partition {p}");
    }
}

/// Each thread remembers the partitions of the topic it last sent to, so that a send
/// takes no producer-wide lock (`producer/fast_path.rs`). What it remembers follows the
/// store: a topic deleted and created again with fewer partitions refuses a partition it
/// no longer has, partitions added later take records, and a second producer used from
/// the same thread sends through its own batches, not the first one's.
#[test]
fn a_threads_remembered_partitions_follow_topic_changes_and_producers() {
    use streamlog::{Error, ProducerConfig, TopicConfig};

    // Not dropped should an assertion fail: a record wrongly put in the other
    // producer's batch leaves that producer (and the store, which closes its
    // producers) waiting at close for a batch it no longer has, so the failure would
    // show as a hang instead of the assertion.
    use std::mem::ManuallyDrop;
    let dir = tempfile::tempdir().unwrap();
    let store = ManuallyDrop::new(Store::open(dir.path()).unwrap());
    store
        .create_topic("t", TopicConfig::default().partitions(3))
        .unwrap();
    let eager = ManuallyDrop::new(
        store
            .producer(ProducerConfig::default().linger_ms(0))
            .unwrap(),
    );
    let send = |p: i32, v: &str| eager.send(ProducerRecord::new("t").partition(p).value(v));
    // A batch left open (lingering) in partition 2 of the topic about to be deleted.
    let lazy = ManuallyDrop::new(
        store
            .producer(ProducerConfig::default().linger_ms(60_000))
            .unwrap(),
    );
    let lost = lazy
        .send(ProducerRecord::new("t").partition(2).value("old"))
        .unwrap();

    store.delete_topic("t").unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(1))
        .unwrap();
    // Not into the deleted topic's open batch: the partition is gone.
    let err = lazy
        .send(ProducerRecord::new("t").partition(2).value("gone"))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    lazy.flush().unwrap();
    assert!(
        lost.wait().is_err(),
        "the deleted topic's batch is not delivered"
    );
    assert_eq!(send(0, "new").unwrap().wait().unwrap().offset, 0);

    store.add_partitions("t", 3).unwrap();
    send(0, "new").unwrap().wait().unwrap();
    assert_eq!(send(2, "added").unwrap().wait().unwrap().offset, 0);

    // The lingering producer, used from this thread after the eager one: its record
    // must wait in its own batch, and the eager producer's next record must not join
    // that batch.
    let pending = lazy
        .send(ProducerRecord::new("t").partition(1).value("lazy"))
        .unwrap();
    // Flushing the eager producer shows where its record went (waiting on it would
    // wait for the other producer's linger if it had joined that batch).
    let eager_sent = send(1, "eager").unwrap();
    eager.flush().unwrap();
    let part = store.topic("t").unwrap().partition(1).unwrap();
    let values = |part: &streamlog::Partition| -> Vec<String> {
        part.read(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect()
    };
    assert_eq!(values(&part), ["eager"]);
    assert_eq!(eager_sent.wait().unwrap().offset, 0);
    lazy.flush().unwrap();
    assert_eq!(pending.wait().unwrap().offset, 1);
    assert_eq!(values(&part), ["eager", "lazy"]);
    drop(part);
    drop(ManuallyDrop::into_inner(lazy));
    drop(ManuallyDrop::into_inner(eager));
    ManuallyDrop::into_inner(store).close().unwrap();
}

/// One sender fills batches much faster than the linger thread appends them: up to 8
/// wait for it, and past that the sender appends its own. Whoever appends a batch, each
/// partition's records keep their send order and every future names its record's
/// offset.
#[test]
fn batches_past_the_linger_threads_backlog_keep_their_order() {
    const RECORDS: usize = 3000;
    const PARTITIONS: i32 = 2;
    let (_fs, store) = sim_topic_t(PARTITIONS);
    // Each record fills a batch by itself: thousands of full batches.
    let producer = store
        .producer(ProducerConfig::default().batch_size(1).linger_ms(60_000))
        .unwrap();
    let mut futures = Vec::new();
    for i in 0..RECORDS {
        let p = (i % PARTITIONS as usize) as i32;
        let f = producer
            .send(
                ProducerRecord::new("t")
                    .partition(p)
                    .value(format!("t0-{i}")),
            )
            .unwrap();
        futures.push((p, i, f));
    }
    producer.flush().unwrap();
    let order = sent_order(&store, PARTITIONS);
    for (p, i, f) in futures {
        let meta = f.wait().unwrap();
        assert_eq!(meta.partition, p);
        assert_eq!(
            order[p as usize][meta.offset as usize],
            (0, i),
            "record {i}"
        );
    }
    for (p, records) in order.iter().enumerate() {
        assert_eq!(records.len(), RECORDS / PARTITIONS as usize);
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p} out of send order"
        );
    }
}
