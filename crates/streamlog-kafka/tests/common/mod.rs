//! Helpers shared by the bridge's tests: a mock Kafka cluster, record generators, and
//! readers of both sides.
//!
//! The Kafka peer is librdkafka's mock cluster (`rdkafka::mocking::MockCluster`): it
//! speaks Kafka's protocol on 127.0.0.1 inside this process. To run the same tests
//! against a real broker, set `STREAMLOG_KAFKA_BOOTSTRAP=host:port` (README, "Outgrowing
//! one machine"); the tests that inject broker errors need the mock and are skipped then.
#![allow(dead_code)]

pub mod admin_shim;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::{Compression, Header, Record, Store};
use streamlog_kafka::rdkafka::ClientConfig;
use streamlog_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use streamlog_kafka::rdkafka::error::KafkaError;
use streamlog_kafka::rdkafka::message::{Headers, Message};
use streamlog_kafka::rdkafka::mocking::MockCluster;
use streamlog_kafka::rdkafka::producer::DefaultProducerContext;
use streamlog_kafka::rdkafka::{Offset, TopicPartitionList};
use streamlog_kafka::{
    KAFKA_OFFSET_HEADER, KafkaSinkConfig, KafkaSourceConfig, SOURCE_OFFSET_HEADER,
    SOURCE_TOPIC_ID_HEADER,
};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The Kafka peer: a mock cluster in this process, or a real broker named by
/// `STREAMLOG_KAFKA_BOOTSTRAP`.
pub struct Kafka {
    pub mock: Option<MockCluster<'static, DefaultProducerContext>>,
    pub bootstrap: String,
}

impl Kafka {
    pub fn start() -> Kafka {
        if let Ok(b) = std::env::var("STREAMLOG_KAFKA_BOOTSTRAP") {
            return Kafka {
                mock: None,
                bootstrap: b,
            };
        }
        let mock = MockCluster::new(3).expect("mock cluster");
        let bootstrap = mock.bootstrap_servers();
        // The mock listens on the loopback interface only.
        for server in bootstrap.split(',') {
            assert!(server.starts_with("127.0.0.1:"), "mock listens on {server}");
        }
        Kafka {
            mock: Some(mock),
            bootstrap,
        }
    }

    pub fn sink(&self, topics: &[&str]) -> KafkaSinkConfig {
        KafkaSinkConfig {
            bootstrap: self.bootstrap.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            replication_factor: 1,
            stop_at_end: true,
            poll_ms: 20,
            commit_interval_ms: 50,
            timeout_ms: 20_000,
            ..KafkaSinkConfig::default()
        }
    }

    pub fn source(&self, topics: &[&str]) -> KafkaSourceConfig {
        KafkaSourceConfig {
            bootstrap: self.bootstrap.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            stop_at_end: true,
            poll_ms: 20,
            commit_interval_ms: 50,
            timeout_ms: 20_000,
            ..KafkaSourceConfig::default()
        }
    }

    /// Creates a Kafka topic directly: through the mock's own API (librdkafka's mock
    /// does not implement Kafka's CreateTopics request), or a broker's admin API.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        use streamlog_kafka::rdkafka::admin::{
            AdminClient, AdminOptions, NewTopic, TopicReplication,
        };
        match &self.mock {
            Some(m) => m.create_topic(topic, partitions, 1).expect("create topic"),
            None => {
                let admin: AdminClient<_> = ClientConfig::new()
                    .set("bootstrap.servers", &self.bootstrap)
                    .create()
                    .expect("admin");
                let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                let r = futures_executor::block_on(admin.create_topics([&t], &AdminOptions::new()))
                    .expect("create topic");
                assert!(r.iter().all(Result::is_ok), "{r:?}");
            }
        }
    }

    /// Before a sink runs: with the mock, creates the Kafka topic the sink would create
    /// through the admin API (which the mock lacks); a real broker gets it from the sink.
    pub fn prepare_topic(&self, topic: &str, partitions: i32) {
        if self.mock.is_some() {
            self.create_topic(topic, partitions);
        }
    }

    /// Produces records straight to Kafka with a plain producer (not the mirror).
    pub fn produce(&self, topic: &str, records: &[(i32, Record)]) {
        use streamlog_kafka::rdkafka::message::{Header as KHeader, OwnedHeaders};
        use streamlog_kafka::rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        for (p, r) in records {
            let mut headers = OwnedHeaders::new();
            for h in &r.headers {
                headers = headers.insert(KHeader {
                    key: &h.key,
                    value: h.value.as_deref(),
                });
            }
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .partition(*p)
                .timestamp(r.timestamp)
                .headers(headers);
            rec.key = r.key.as_deref();
            rec.payload = r.value.as_deref();
            producer.send(rec).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(TIMEOUT).expect("flush");
    }
}

/// One record as read from either side, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Seen {
    pub fn from_record(partition: i32, r: &Record) -> Seen {
        Seen {
            partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_ref().map(|b| b.to_vec()),
            value: r.value.as_ref().map(|b| b.to_vec()),
            headers: r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                .collect(),
        }
    }

    /// The value of the last header `name` as an offset.
    pub fn offset_header(&self, name: &str) -> Option<i64> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
            .and_then(streamlog_kafka::decode_offset)
    }

    /// The record without the headers a mirror adds.
    pub fn without_mirror_headers(&self) -> Seen {
        let mut s = self.clone();
        s.headers.retain(|(k, _)| {
            ![
                SOURCE_OFFSET_HEADER,
                SOURCE_TOPIC_ID_HEADER,
                KAFKA_OFFSET_HEADER,
            ]
            .contains(&k.as_str())
        });
        s
    }
}

/// The i-th generated record: keys, values and headers with nulls and empties mixed in.
pub fn record(i: usize) -> Record {
    let key = match i % 5 {
        0 => None,
        1 => Some(Bytes::new()),
        _ => Some(Bytes::from(format!("key-{}", i % 13))),
    };
    let value = match i % 7 {
        0 => None,
        1 => Some(Bytes::new()),
        _ => Some(Bytes::from(format!("value {i} {}", "x".repeat(i % 50)))),
    };
    let mut r = Record {
        offset: 0,
        timestamp: 1_700_000_000_000 + i as i64,
        key,
        value,
        headers: Vec::new(),
    };
    if i.is_multiple_of(3) {
        r.headers.push(Header::new("trace", format!("t{i}")));
    }
    if i.is_multiple_of(4) {
        r.headers.push(Header::null("null-header"));
        r.headers.push(Header::new("empty", Bytes::new()));
    }
    r
}

/// Appends the generated records `range` to `topic`, record i to partition
/// i % partitions, in batches of up to 16 records compressed with `codec`.
pub fn fill_store(
    store: &Store,
    topic: &str,
    partitions: i32,
    range: std::ops::Range<usize>,
    codec: Compression,
) {
    let t = store.topic(topic).expect("topic");
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for i in range {
        by_partition
            .entry(i as i32 % partitions)
            .or_default()
            .push(record(i));
    }
    for (p, records) in by_partition {
        let part = t.partition(p).expect("partition");
        for chunk in records.chunks(16) {
            part.append_with(chunk, codec).expect("append");
        }
    }
}

/// Every record of every partition of a store topic, in partition then offset order.
pub fn read_store(store: &Store, topic: &str) -> Vec<Seen> {
    let t = store.topic(topic).expect("topic");
    let mut out = Vec::new();
    for p in 0..t.partition_count() {
        let part = t.partition(p).expect("partition");
        let mut at = part.log_start_offset();
        while at < part.log_end_offset() {
            let recs = part.read(at, 1 << 20).expect("read");
            for r in recs.iter().filter(|r| r.offset >= at) {
                out.push(Seen::from_record(p, r));
            }
            at = recs.last().map_or(part.log_end_offset(), |r| r.offset + 1);
        }
    }
    out
}

/// Every record of every partition of a Kafka topic up to its high watermarks, in
/// partition then offset order.
pub fn read_kafka(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Seen> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_end = BTreeSet::new();
    let mut by_partition: BTreeMap<i32, Vec<Seen>> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    // The Kafka client hands out records only through poll; the end of each partition
    // is a PartitionEOF event.
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "reading {topic} from Kafka timed out"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // Injected broker errors show up here while the client retries.
            Some(Err(e)) => eprintln!("reading {topic}: {e} (retrying)"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                let timestamp = m.timestamp().to_millis().unwrap_or(-1);
                by_partition.entry(m.partition()).or_default().push(Seen {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
        }
    }
    by_partition.into_values().flatten().collect()
}

/// Asserts that `kafka` is exactly `store` as the sink copies it: same partitions and
/// order, same fields, and the source offset in the header.
pub fn assert_sink_copy(store: &[Seen], kafka: &[Seen]) {
    assert_eq!(store.len(), kafka.len(), "record counts differ");
    for (s, k) in store.iter().zip(kafka) {
        assert_eq!(k.partition, s.partition);
        assert_eq!(
            k.offset_header(SOURCE_OFFSET_HEADER),
            Some(s.offset),
            "{k:?}"
        );
        assert_eq!(
            k.without_mirror_headers(),
            Seen {
                offset: k.offset,
                ..s.without_mirror_headers()
            }
        );
    }
}

/// Asserts that `store` is exactly `kafka` as the source copies it.
pub fn assert_source_copy(kafka: &[Seen], store: &[Seen]) {
    assert_eq!(kafka.len(), store.len(), "record counts differ");
    for (k, s) in kafka.iter().zip(store) {
        assert_eq!(s.partition, k.partition);
        assert_eq!(
            s.offset_header(KAFKA_OFFSET_HEADER),
            Some(k.offset),
            "{s:?}"
        );
        let mut expected = k.clone();
        expected.offset = s.offset;
        expected.headers.push((
            KAFKA_OFFSET_HEADER.to_string(),
            Some(k.offset.to_string().into_bytes()),
        ));
        assert_eq!(s, &expected);
    }
}

/// A small deterministic generator (xorshift), so each run dies at the same points.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
