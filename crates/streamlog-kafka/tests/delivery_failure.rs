//! A record Kafka refuses for good stops the store -> Kafka mirror with an error, and
//! the progress it commits never passes that record.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Kafka, fill_store};
use streamlog::{Compression, Store, StoreConfig, TopicConfig};
use streamlog_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamlog_kafka::{Error, Mirror};

/// The delivery report of the refused record woke the loop, which committed (its
/// interval due) the consumer's position, past the refused record, before it looked
/// at the failure: `describe_group` showed no lag, and a restart with nothing of the
/// partition in Kafka resumed from that commit, skipping the record.
#[test]
fn a_refused_record_is_never_committed_as_copied() {
    let kafka = Kafka::start();
    let Some(mock) = &kafka.mock else {
        println!("skipped: refusing a record needs the mock cluster");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store
        .create_topic("doomed", TopicConfig::default())
        .unwrap();
    fill_store(&store, "doomed", 1, 0..1, Compression::None);
    kafka.prepare_topic("doomed", 1);
    let mut config = kafka.sink(&["doomed"]);
    config.commit_interval_ms = 0;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let err = Mirror::to_kafka(&store, config)
        .unwrap()
        .join()
        .unwrap_err();
    assert!(matches!(err, Error::Delivery { .. }), "{err}");
    let group = store.describe_group("streamlog-kafka-sink").unwrap();
    for o in &group.offsets {
        assert_eq!(o.offset, 0, "{o:?}: committed past the refused record");
    }
}

/// A sink of 20 records of topic `topic` whose producer queue holds one record, with
/// Kafka refusing the first `refusals` Produce requests (a retriable error, retried
/// with librdkafka's backoff), once it waits for room in the queue (its second record
/// handed over while the first is unacknowledged); `timeout_ms` bounds its flush at
/// stop. `None` without the mock cluster.
fn sink_waiting_for_room(
    kafka: &Kafka,
    topic: &str,
    refusals: usize,
    timeout_ms: u64,
) -> Option<(tempfile::TempDir, Store, Mirror)> {
    let mock = kafka.mock.as_ref()?;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store.create_topic(topic, TopicConfig::default()).unwrap();
    fill_store(&store, topic, 1, 0..20, Compression::None);
    kafka.prepare_topic(topic, 1);
    let mut config = kafka.sink(&[topic]);
    config.stop_at_end = false;
    config.timeout_ms = timeout_ms;
    config
        .kafka
        .push(("queue.buffering.max.messages".into(), "1".into()));
    let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; refusals];
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    let mirror = Mirror::to_kafka(&store, config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mirror.in_flight() < 2 {
        assert!(Instant::now() < deadline, "the sink never filled the queue");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some((dir, store, mirror))
}

/// With Kafka taking nothing (every Produce refused with a retriable error), the
/// producer's queue stays full: the sink waited for room without looking at `stop`, so
/// `stop` (and dropping the mirror) never returned.
#[test]
fn stop_returns_while_kafka_takes_nothing() {
    let kafka = Kafka::start();
    let Some((_dir, store, mirror)) = sink_waiting_for_room(&kafka, "stuck", 100_000, 1_000) else {
        println!("skipped: refusing every request needs the mock cluster");
        return;
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(mirror.stop()).unwrap());
    let stopped = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("stop never returned");
    // The record in the queue was not acknowledged within timeout_ms.
    assert!(matches!(stopped, Err(Error::Kafka { .. })), "{stopped:?}");
    // Nothing was acknowledged, so nothing may be committed (the group may not exist).
    if let Ok(group) = store.describe_group("streamlog-kafka-sink") {
        for o in &group.offsets {
            assert_eq!(o.offset, 0, "{o:?}: committed what Kafka never took");
        }
    }
}

/// A stop that gave up records the store's consumer had returned (the sink was waiting
/// for room in the producer's queue), followed by a flush that Kafka took in time,
/// committed the consumer's position, past the records never handed over: a restart
/// of a partition with no mirrored record in Kafka resumed after them.
#[test]
fn a_stop_that_gives_up_records_commits_only_what_kafka_took() {
    let kafka = Kafka::start();
    // Refused for a few seconds, then taken: the flush at stop succeeds.
    let Some((_dir, store, mirror)) = sink_waiting_for_room(&kafka, "slow", 8, 60_000) else {
        println!("skipped: delaying Kafka's acknowledgements needs the mock cluster");
        return;
    };
    let stats = mirror.stop().unwrap();
    assert_eq!(stats.records, 1, "only the queued record reached Kafka");
    let group = store.describe_group("streamlog-kafka-sink").unwrap();
    assert_eq!(group.offsets.len(), 1);
    assert_eq!(
        group.offsets[0].offset, 1,
        "committed past records never handed to Kafka"
    );
}
