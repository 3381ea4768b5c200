//! The sink and the store's transactions: a COMMIT marker is fsync'd before its
//! records go to Kafka, and the sink's positions step over the markers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Kafka;
use streamlog::fs::{Fault, SimFs};
use streamlog::{ProducerConfig, ProducerRecord, Store, StoreConfig, TopicConfig, TopicPartition};
use streamlog_kafka::Mirror;

/// A transactional producer that sent three records to partition 0 of `topic`, each
/// acknowledged (`Acks::All`: fsync'd), in a transaction it has not committed.
fn three_in_a_transaction(store: &Store, topic: &str) -> streamlog::Producer {
    let producer = store
        .producer(ProducerConfig::default().transactional_id("tx"))
        .unwrap();
    producer.init_transactions().unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..3 {
        let sent = producer.send(
            ProducerRecord::new(topic)
                .value(format!("v{i}"))
                .partition(0),
        );
        sent.unwrap().wait().unwrap();
    }
    producer
}

/// A store on `fs` whose topic `t` holds three records of a transaction, fsync'd, and
/// its COMMIT marker appended but not fsync'd (the commit's fsync failed: the
/// partition is poisoned). `None` if no fault point gives that.
fn committed_but_marker_not_durable(k: u64) -> Option<(SimFs, Store)> {
    marker_not_durable(k, false).map(|(fs, store, _)| (fs, store))
}

/// As [`committed_but_marker_not_durable`]; with `other_open`, a second transaction
/// (another producer's) holds one record at offset 3, fsync'd and still open, so the
/// marker is at 4 and the last stable offset stays at 3, below the marker. Returned:
/// the open transaction's producer (dropping it would abort its transaction).
fn marker_not_durable(
    k: u64,
    other_open: bool,
) -> Option<(SimFs, Store, Option<streamlog::Producer>)> {
    let fs = SimFs::new();
    let store = Store::open_with(
        "/store",
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(Arc::new(fs.clone())),
    )
    .unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = three_in_a_transaction(&store, "t");
    let other = other_open.then(|| {
        let other = store
            .producer(ProducerConfig::default().transactional_id("tx2"))
            .unwrap();
        other.init_transactions().unwrap();
        other.begin_transaction().unwrap();
        let sent = other.send(ProducerRecord::new("t").value("open").partition(0));
        sent.unwrap().wait().unwrap();
        other
    });
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.flush().unwrap();
    let durable = part.durable_offset();
    fs.inject(Fault::Eio, fs.op_count() + k, false);
    let failed = producer.commit_transaction().is_err();
    fs.clear_faults();
    let marker_only = part.log_end_offset() == durable + 1 && part.durable_offset() == durable;
    (failed && marker_only).then_some((fs, store, other))
}

/// From a bridge review: the sink fsync'd only up to the records it sent. A
/// transaction's records made durable before its commit (`Acks::All`) passed that
/// check while its COMMIT marker, appended (the transaction visible) but not yet
/// fsync'd, could still be lost: a power cut then, and the store's recovery aborts the
/// transaction whose records Kafka holds. The marker is fsync'd first; here its fsync
/// cannot succeed (the partition is poisoned), so nothing is sent.
#[test]
fn a_transaction_goes_to_kafka_only_once_its_marker_is_durable() {
    let kafka = Kafka::start();
    let Some((_fs, store)) = (1..40).find_map(committed_but_marker_not_durable) else {
        panic!("no fault point fails the marker's fsync alone");
    };
    refuses_to_send_before_the_marker_is_durable(&kafka, &store);
}

/// From a bridge hunt: the sink fsync'd a transaction's marker only while the store was
/// durable below the last stable offset. Another transaction open since before the
/// marker holds the last stable offset below the marker (here at 3, the marker at 4,
/// durable 4): the check passed, the records went to Kafka, and a power cut then would
/// abort the transaction whose records Kafka holds.
#[test]
fn a_transaction_waits_for_its_marker_while_another_is_open() {
    let kafka = Kafka::start();
    let Some((_fs, store, _open)) = (1..40).find_map(|k| marker_not_durable(k, true)) else {
        panic!("no fault point fails the marker's fsync alone");
    };
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!((part.log_end_offset(), part.durable_offset()), (5, 4));
    refuses_to_send_before_the_marker_is_durable(&kafka, &store);
}

/// From a bridge review: the sink's positions moved only with Kafka's delivery reports,
/// to the offset after each record. A store topic written in transactions ends in a
/// COMMIT marker, so no position reached its log end offset, and the documented wait
/// for it (`wait_for_positions` of `log_end_offset`) timed out. Once nothing is in
/// flight the positions step over markers to the sink's consumer position.
#[test]
fn positions_reach_the_log_end_past_a_final_commit_marker() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store.create_topic("tx", TopicConfig::default()).unwrap();
    let producer = three_in_a_transaction(&store, "tx");
    producer.commit_transaction().unwrap();
    let end = store
        .topic("tx")
        .unwrap()
        .partition(0)
        .unwrap()
        .log_end_offset();
    assert_eq!(end, 4, "three records and a marker");
    kafka.prepare_topic("tx", 1);
    let mut config = kafka.sink(&["tx"]);
    config.stop_at_end = false;
    let mirror = Mirror::to_kafka(&store, config).unwrap();
    let target = [(TopicPartition::new("tx", 0), end)].into_iter().collect();
    let reached = mirror.wait_for_positions(&target, Duration::from_secs(60));
    let positions = mirror.positions();
    mirror.stop().unwrap();
    assert!(reached, "positions {positions:?}, log end {end}");
    assert_eq!(common::read_kafka(&kafka.bootstrap, "tx", 1).len(), 3);
}

/// A sink of `store`'s `t` to `kafka` fails and sends nothing: a record's transaction
/// marker is not durable (a power cut could abort what Kafka would hold).
fn refuses_to_send_before_the_marker_is_durable(kafka: &Kafka, store: &Store) {
    kafka.prepare_topic("t", 1);
    let result = Mirror::to_kafka(store, kafka.sink(&["t"])).unwrap().join();
    assert!(
        result.is_err(),
        "the sink sent records whose marker is not durable"
    );
    assert!(
        common::read_kafka(&kafka.bootstrap, "t", 1).is_empty(),
        "Kafka holds records of a transaction the store may abort"
    );
}
