//! The idempotent producer (issue 14, item 1, client side): producer ids allocated
//! durably by the store, per-partition sequence numbers in each batch header, and a
//! partition's sequences kept contiguous when a batch fails.

mod common;

use std::collections::BTreeSet;

use common::{sim_store, sim_topic_t, temp_topic_t};
use streamlog::fs::{CrashImage, Fault};
use streamlog::{ProducerConfig, ProducerRecord, Store};

/// (producer id, epoch, base sequence, record count) of every batch of `t`-`partition`.
fn batch_producers(store: &Store, partition: i32) -> Vec<(i64, i16, i32, i32)> {
    let part = store.topic("t").unwrap().partition(partition).unwrap();
    part.read_batches(part.log_start_offset(), usize::MAX)
        .unwrap()
        .iter()
        .map(|b| {
            let h = b.header();
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.records_count,
            )
        })
        .collect()
}

fn send(producer: &streamlog::Producer, partition: i32, value: &str) -> streamlog::Result<i64> {
    producer
        .send(ProducerRecord::new("t").partition(partition).value(value))?
        .wait()
        .map(|m| m.offset)
}

#[test]
fn batches_carry_the_producer_id_and_contiguous_sequences_per_partition() {
    let (_dir, store) = temp_topic_t(2);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    for i in 0..5 {
        send(&producer, i % 2, &format!("v{i}")).unwrap();
    }
    // A batch of several records takes as many sequence numbers.
    let records: Vec<_> = (0..3)
        .map(|i| ProducerRecord::new("t").partition(0).value(format!("b{i}")))
        .collect();
    producer.send_batch(&records).unwrap().wait().unwrap();
    let p0 = batch_producers(&store, 0);
    let p1 = batch_producers(&store, 1);
    let pid = p0[0].0;
    assert!(pid >= 0, "an idempotent producer has a producer id");
    for (id, epoch, _, _) in p0.iter().chain(&p1) {
        assert_eq!((*id, *epoch), (pid, 0));
    }
    // Each partition numbers its own records from 0, without gaps.
    for batches in [&p0, &p1] {
        let mut next = 0;
        for (_, _, seq, count) in batches.iter() {
            assert_eq!(*seq, next, "{batches:?}");
            next += count;
        }
    }
    assert_eq!(p0.iter().map(|b| b.3).sum::<i32>(), 6);
}

#[test]
fn producer_ids_are_never_reused_across_producers_reopens_and_crashes() {
    let (fs, store) = sim_topic_t(1);
    let mut seen = BTreeSet::new();
    let mut pid_of = |store: &Store| {
        let producer = store
            .producer(ProducerConfig::default().linger_ms(0))
            .unwrap();
        send(&producer, 0, "x").unwrap();
        producer.close().unwrap();
        let pid = batch_producers(store, 0).last().unwrap().0;
        assert!(seen.insert(pid), "producer id {pid} was handed out twice");
    };
    pid_of(&store);
    pid_of(&store);
    store.close().unwrap();
    let store = sim_store(&fs).unwrap();
    pid_of(&store);
    // A power cut: what was not synced is gone, the ids handed out are not reused.
    let image = fs.crash_image(CrashImage::DropAll);
    drop(store);
    let store = sim_store(&image).unwrap();
    pid_of(&store);
    assert_eq!(seen.len(), 4);
}

#[test]
fn without_idempotence_batches_carry_no_producer_id() {
    let (_dir, store) = temp_topic_t(1);
    let producer = store
        .producer(
            ProducerConfig::default()
                .linger_ms(0)
                .enable_idempotence(false),
        )
        .unwrap();
    send(&producer, 0, "x").unwrap();
    assert_eq!(batch_producers(&store, 0), [(-1, -1, -1, 1)]);
}

#[test]
fn a_failed_batch_does_not_break_the_sequences_of_the_next() {
    let (fs, store) = sim_topic_t(1);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    send(&producer, 0, "a").unwrap();
    // The disk is full: the next batch is not appended.
    fs.inject(Fault::Enospc, fs.op_count() + 1, true);
    assert!(send(&producer, 0, "b").is_err());
    fs.clear_faults();
    // The batch after it takes the failed batch's sequence: the log expects the one
    // after the last batch it appended, and would refuse a gap as out of order.
    assert_eq!(send(&producer, 0, "c").unwrap(), 1);
    assert_eq!(send(&producer, 0, "d").unwrap(), 2);
    let seqs: Vec<i32> = batch_producers(&store, 0).iter().map(|b| b.2).collect();
    assert_eq!(seqs, [0, 1, 2]);
}

#[test]
fn maintenance_forgets_producers_idle_past_the_expiration() {
    use streamlog::{StoreConfig, TopicConfig};
    let dir = tempfile::tempdir().unwrap();
    let (clock, store) = common::clocked_store(
        dir.path(),
        StoreConfig::default().producer_id_expiration_ms(60_000),
    );
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    send(&producer, 0, "a").unwrap();
    send(&producer, 1, "b").unwrap();
    assert_eq!(store.run_maintenance().unwrap().producers_expired, 0);
    clock.advance(60_000);
    assert_eq!(
        store.run_maintenance().unwrap().producers_expired,
        2,
        "one per partition"
    );
    // The producer goes on: its next sequences are a new producer's to the partitions.
    assert_eq!(send(&producer, 0, "c").unwrap(), 1);
    assert!(matches!(
        Store::open_with(
            tempfile::tempdir().unwrap().path(),
            StoreConfig::default().producer_id_expiration_ms(0)
        ),
        Err(streamlog::Error::InvalidConfig { .. })
    ));
}
