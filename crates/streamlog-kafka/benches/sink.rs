//! Sink throughput against librdkafka's mock cluster (in this process, 127.0.0.1), next
//! to a baseline measured in the same run: a plain idempotent librdkafka producer sending
//! the same records (no store read, no headers added). The ratio is the bridge's cost;
//! absolute numbers depend on the machine and the mock, which is not a real broker.
//!
//! `cargo bench -p streamlog-kafka --bench sink` (records: `STREAMLOG_KAFKA_BENCH_RECORDS`,
//! default 200000; standard workload: 16-byte keys, 100-byte values, 4 partitions).

use std::time::{Duration, Instant};

use bytes::Bytes;
use streamlog::{Record, Store, StoreConfig, TopicConfig};
use streamlog_kafka::rdkafka::ClientConfig;
use streamlog_kafka::rdkafka::mocking::MockCluster;
use streamlog_kafka::rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};
use streamlog_kafka::{KafkaSinkConfig, Mirror};

const PARTITIONS: i32 = 4;
const VALUE_BYTES: usize = 100;

fn value(i: usize) -> Vec<u8> {
    // Half pseudo-random bytes, half text.
    let mut v = Vec::with_capacity(VALUE_BYTES);
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..VALUE_BYTES / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v.extend(
        b"the quick brown fox jumps over the lazy dog, again "
            .iter()
            .take(VALUE_BYTES / 2),
    );
    v
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{:012}", i % 100_000).into_bytes()
}

fn report(name: &str, records: usize, elapsed: Duration) -> f64 {
    let rps = records as f64 / elapsed.as_secs_f64();
    let mbps = rps * (16 + VALUE_BYTES) as f64 / 1e6;
    println!(
        "{name:<28} {records} records in {elapsed:.2?}: {rps:>10.0} records/s {mbps:>7.1} MB/s"
    );
    rps
}

fn main() {
    let records: usize = std::env::var("STREAMLOG_KAFKA_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mock = MockCluster::new(1).expect("mock cluster");
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("baseline", PARTITIONS, 1).expect("topic");
    mock.create_topic("bench", PARTITIONS, 1).expect("topic");

    // Baseline: the same records through a plain idempotent producer.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let payloads: Vec<(Vec<u8>, Vec<u8>)> = (0..records).map(|i| (key(i), value(i))).collect();
    let start = Instant::now();
    for (i, (k, v)) in payloads.iter().enumerate() {
        let mut rec = BaseRecord::to("baseline")
            .partition(i as i32 % PARTITIONS)
            .key(k.as_slice())
            .payload(v.as_slice());
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let baseline = report("plain producer (baseline)", records, start.elapsed());
    drop(producer);

    // The sink: store -> Kafka.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .expect("store");
    store
        .create_topic("bench", TopicConfig::default().partitions(PARTITIONS))
        .expect("topic");
    let topic = store.topic("bench").expect("topic");
    for p in 0..PARTITIONS {
        let part = topic.partition(p).expect("partition");
        let mine: Vec<Record> = payloads
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i32 % PARTITIONS == p)
            .map(|(i, (k, v))| {
                Record::new(
                    1_700_000_000_000 + i as i64,
                    Some(Bytes::copy_from_slice(k)),
                    Some(Bytes::copy_from_slice(v)),
                )
            })
            .collect();
        for chunk in mine.chunks(500) {
            part.append(chunk).expect("append");
        }
    }
    let start = Instant::now();
    let mirror = Mirror::to_kafka(
        &store,
        KafkaSinkConfig {
            bootstrap: bootstrap.clone(),
            topics: vec!["bench".into()],
            stop_at_end: true,
            ..KafkaSinkConfig::default()
        },
    )
    .expect("sink");
    // Checking the topics and finding where to resume (metadata, watermarks, clients).
    let setup = start.elapsed();
    let stats = mirror.join().expect("sink run");
    let total = start.elapsed();
    assert_eq!(stats.records as usize, records);
    println!("sink start (topic checks, resume positions): {setup:.2?}");
    report("sink, start included", records, total);
    let sink = report("sink (store -> Kafka)", records, total - setup);
    println!("sink / baseline: {:.2}x", sink / baseline);
}
