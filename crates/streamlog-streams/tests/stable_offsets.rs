//! A streams application whose input partition has offsets of an undecided transaction
//! pending for its group (KIP-447) waits for it, and then starts where it commits.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use streamlog::{ConsumerGroupMetadata, ProducerConfig, Record, Store, TopicPartition};
use streamlog_streams::{
    Consumed, ProcessingGuarantee, Produced, StreamsBuilder, StreamsConfig, StreamsError, serdes,
};

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
    let input = store.topic("in").unwrap().partition(0).unwrap();
    for i in 0..10 {
        input
            .append(&[Record::new(i, Some("k"), Some(format!("v{i}")))])
            .unwrap();
    }
    let other = store
        .producer(ProducerConfig::default().transactional_id("other"))
        .unwrap();
    other.init_transactions().unwrap();
    other.begin_transaction().unwrap();
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
