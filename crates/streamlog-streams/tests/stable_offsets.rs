//! A streams application whose input partition has offsets of an undecided transaction
//! pending for its group (KIP-447) waits for it, and then starts where it commits.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use streamlog::{
    CleanupPolicy, ConsumerGroupMetadata, IsolationLevel, ProducerConfig, ProducerRecord, Record,
    Store, TopicConfig, TopicPartition,
};
use streamlog_streams::{
    Consumed, Materialized, ProcessingGuarantee, Produced, StreamsBuilder, StreamsConfig,
    StreamsError, serdes,
};

/// Ten records of key `k` (`v0`..`v9`, timestamps 0..9) in `in-0`.
fn append_ten(store: &Store) {
    let input = store.topic("in").unwrap().partition(0).unwrap();
    for i in 0..10 {
        input
            .append(&[Record::new(i, Some("k"), Some(format!("v{i}")))])
            .unwrap();
    }
}

/// A producer of transactional id `other` in a transaction.
fn in_a_transaction(store: &Store) -> streamlog::Producer {
    let other = store
        .producer(ProducerConfig::default().transactional_id("other"))
        .unwrap();
    other.init_transactions().unwrap();
    other.begin_transaction().unwrap();
    other
}

/// Another producer's transaction holds offset 5 of `in-0` for the application's
/// group. The application's threads find the partition's position unresolved (its
/// `position` is `Timeout`), which their commit took for a failure: the thread
/// stopped. It waits instead, and once the transaction commits, copies 5..10 only.
/// The wait before the commit is a lower bound for the thread to have committed (with
/// `commit_interval_ms` 0, every loop) while the offsets were pending.
#[test]
fn an_application_waits_for_pending_offsets_and_starts_where_they_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("out", 1)]);
    append_ten(&store);
    let other = in_a_transaction(&store);
    other
        .send_offsets_to_transaction(
            &BTreeMap::from([(TopicPartition::new("in", 0), 5)]),
            &ConsumerGroupMetadata::new("copy"),
        )
        .unwrap();

    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(serdes::string(), serdes::string()))
        .to("out", Produced::with(serdes::string(), serdes::string()));
    let config = StreamsConfig::new("copy")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval_ms(0);
    let streams =
        streamlog_streams::Streams::new(builder.build().unwrap(), config, &store).unwrap();
    streams.start().unwrap();
    match streams.wait_until_caught_up(Duration::from_millis(300)) {
        Err(StreamsError::Timeout { .. }) => {}
        other => panic!("expected to wait for the pending offsets, got {other:?}"),
    }
    other.commit_transaction().unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    streams.close().unwrap();
    let copied: Vec<String> = read_strings(&store, "out")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(copied, ["v5", "v6", "v7", "v8", "v9"]);
}

/// The previous owner's last transaction wrote a count to the store's changelog and
/// the input offsets after the records it counted, and is still undecided when this
/// instance's task restores the store: the restore stops at the changelog's last stable
/// offset, before that count. The offsets then commit with the count, and the task
/// started from them with the count missing (5 instead of 10). It reads the changelog
/// again once its input's position is decided, before its first record. The restore
/// listener says when the first restore ended, so the commit comes after it without a
/// wait.
#[test]
fn a_store_restored_while_input_offsets_are_pending_reads_what_their_transaction_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("out", 1)]);
    store
        .create_topic(
            "count-counts-changelog",
            TopicConfig::default().cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    append_ten(&store);
    // The previous owner counted 0..5 in the transaction it is committing.
    let other = in_a_transaction(&store);
    let sent = other
        .send(
            ProducerRecord::new("count-counts-changelog")
                .partition(0)
                .key("k")
                .value(serdes::i64().serialize(&5).unwrap()),
        )
        .unwrap();
    other
        .send_offsets_to_transaction(
            &BTreeMap::from([(TopicPartition::new("in", 0), 5)]),
            &ConsumerGroupMetadata::new("count"),
        )
        .unwrap();

    let builder = StreamsBuilder::new();
    builder
        .stream("in", Consumed::with(serdes::string(), serdes::string()))
        .group_by_key()
        .count(Materialized::named("counts"))
        .to_stream()
        .to("out", Produced::with(serdes::string(), serdes::i64()));
    let (restored, restores) = std::sync::mpsc::channel();
    let restored = parking_lot::Mutex::new(restored);
    let config = StreamsConfig::new("count")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .restore_listener(move |p| {
            if p.done {
                let _ = restored.lock().send(p.restored);
            }
        });
    let streams =
        streamlog_streams::Streams::new(builder.build().unwrap(), config, &store).unwrap();
    streams.start().unwrap();
    assert_eq!(
        restores.recv_timeout(CATCH_UP).unwrap(),
        0,
        "the first restore stops before the undecided count"
    );
    other.commit_transaction().unwrap();
    sent.wait().unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    streams.close().unwrap();
    let counts: Vec<i64> = read_all(&store, "out", IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|(_, v)| i64::from_be_bytes(v.try_into().unwrap()))
        .collect();
    assert_eq!(counts, [6, 7, 8, 9, 10]);
}
