//! Kafka records whose header keys are not UTF-8 (any client but Java's can write
//! them; the broker does not check). rdkafka's header reader panicked on them, in the
//! source's thread (a mirror that could never get past the record) and in the caller
//! of `Mirror::to_kafka` (its resume probe reads the last record's headers). The key
//! now arrives as Java's client reads it: invalid sequences become U+FFFD.

mod common;

use std::time::Duration;

use common::Kafka;
use streamlog::{Store, StoreConfig, TopicConfig, TopicPartition};
use streamlog_kafka::Mirror;
use streamlog_kafka::rdkafka::ClientConfig;
use streamlog_kafka::rdkafka::message::{Header, OwnedHeaders};
use streamlog_kafka::rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};

/// Writes one record to partition 0 of `topic` with a header whose key is the bytes
/// `k\xff\xfe` and whose value is `v`.
fn write_foreign_header(kafka: &Kafka, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .unwrap();
    let raw: &[u8] = b"k\xff\xfe";
    // SAFETY (of the API contract, not memory): rdkafka takes header keys as &str but
    // hands only their pointer and length to librdkafka's rd_kafka_header_add, which
    // copies the bytes; no Rust code reads this str. It is the only way rdkafka offers
    // to write the bytes a non-Java client writes.
    #[allow(invalid_from_utf8_unchecked)]
    let key: &str = unsafe { std::str::from_utf8_unchecked(raw) };
    let headers = OwnedHeaders::new().insert(Header {
        key,
        value: Some(&b"v"[..]),
    });
    let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
        .partition(0)
        .payload(&b"x"[..])
        .headers(headers);
    producer.send(record).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

#[test]
fn a_header_key_that_is_not_utf8_is_copied_as_javas_client_reads_it() {
    let kafka = Kafka::start();
    kafka.create_topic("bin", 1);
    write_foreign_header(&kafka, "bin");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut source = kafka.source(&["bin"]);
    source.partitions = Some(vec![TopicPartition::new("bin", 0)]);
    let stats = Mirror::from_kafka(&store, source).unwrap().join().unwrap();
    assert_eq!(stats.records, 1);
    let records = store
        .topic("bin")
        .unwrap()
        .partition(0)
        .unwrap()
        .read(0, 1 << 20)
        .unwrap();
    assert_eq!(records.len(), 1);
    let header = &records[0].headers[0];
    assert_eq!(header.key, "k\u{fffd}\u{fffd}");
    assert_eq!(header.value.as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_foreign_header_key_at_the_kafka_end_does_not_panic_the_sink_start() {
    let kafka = Kafka::start();
    kafka.create_topic("bin2", 1);
    write_foreign_header(&kafka, "bin2");
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_topic("bin2", TopicConfig::default()).unwrap();
    let mut sink = kafka.sink(&["bin2"]);
    sink.create_topics = false;
    // The last Kafka record lacks the mirror's offset header: a record the mirror did
    // not write, refused by name (not a panic).
    let started = Mirror::to_kafka(&store, sink).map(|_| ());
    assert!(started.is_err(), "{started:?}");
}
