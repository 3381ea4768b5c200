//! Records/s through the seeds' topology (filter purchases, enrich, count per key in
//! 5-minute windows, write the counts), with `AtLeastOnce` and `ExactlyOnce`, against a
//! hand-written consumer loop computing the same counts and writing the same updates,
//! measured in the same run (issue 17, item 7). Targets: AtLeastOnce >= 0.5x the hand
//! loop, ExactlyOnce >= 0.35x.
//!
//! Each iteration: 50,000 events (2/3 purchases, 64 users, 4 partitions) already in
//! `raw-events`, the application's changelog topic already created (as after its first
//! start); timed from starting the application (or the loop) to every record
//! processed and committed. One stream thread; the loop commits every 100 ms as the
//! application does (`commit_interval_ms` = 100).
//!
//! `cargo bench -p streamlog-streams --bench topology` (about a minute on 2 cores).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use streamlog::{
    ConsumerConfig, OffsetReset, ProducerRecord, Record, Store, TopicConfig, TopicPartition,
};
use streamlog_streams::{
    Consumed, Materialized, ProcessingGuarantee, Produced, Streams, StreamsBuilder, StreamsConfig,
    TimeWindows, serdes,
};

const EVENTS: usize = 50_000;
const PARTITIONS: i32 = 4;
const WINDOW_MS: i64 = 300_000;

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let config = TopicConfig::default().partitions(PARTITIONS);
    store
        .create_topic("raw-events", config.clone())
        .expect("topic");
    store
        .create_topic("purchase-counts", config.clone())
        .expect("topic");
    // The application's changelog exists before the timer starts, as on every start of
    // an application but its first: the runs compare processing, not the creation of
    // files (which on a file system that just deleted many can cost more than the
    // processing; the hand loop creates none).
    store
        .create_topic(
            "bench-counts-changelog",
            config.cleanup_policy(streamlog::CleanupPolicy::Compact),
        )
        .expect("topic");
    let topic = store.topic("raw-events").expect("topic");
    let mut batches: Vec<Vec<Record>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    for i in 0..EVENTS {
        let user = i % 64;
        let kind = if i % 3 == 0 { "view" } else { "purchase" };
        let rec = Record::new(
            1_700_000_000_000 + i as i64 * 100,
            Some(format!("user-{user}")),
            Some(format!("{kind}:item-{}", i % 100)),
        );
        batches[user % PARTITIONS as usize].push(rec);
    }
    for (p, b) in batches.iter().enumerate() {
        for chunk in b.chunks(1000) {
            topic
                .partition(p as i32)
                .expect("partition")
                .append(chunk)
                .expect("append");
        }
    }
    (dir, store)
}

fn streams_run(store: &Store, guarantee: ProcessingGuarantee) -> Duration {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "raw-events",
            Consumed::with(serdes::string(), serdes::string()),
        )
        .filter(|_, v| v.starts_with("purchase"))
        .map_values(|v| format!("{v};enriched"))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
            WINDOW_MS as u64,
        )))
        .count(Materialized::named("counts"))
        .to_stream()
        .to(
            "purchase-counts",
            Produced::with(serdes::windowed(serdes::string(), WINDOW_MS), serdes::i64()),
        );
    let config = StreamsConfig::new("bench").processing_guarantee(guarantee);
    let start = Instant::now();
    let streams = Streams::new(builder.build().expect("build"), config, store).expect("new");
    streams.start().expect("start");
    streams
        .wait_until_caught_up(Duration::from_secs(600))
        .expect("caught up");
    streams.close().expect("close");
    start.elapsed()
}

/// The same counts by hand: poll, filter, enrich, count in a map, send each update,
/// commit every 100 ms.
fn hand_loop(store: &Store) -> Duration {
    let start = Instant::now();
    let mut consumer = store
        .consumer(
            ConsumerConfig::new("hand")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .expect("consumer");
    consumer.subscribe(["raw-events"]).expect("subscribe");
    let producer = store.producer(Default::default()).expect("producer");
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("raw-events", p))
        .collect();
    let mut counts: HashMap<(Vec<u8>, i64), i64> = HashMap::new();
    let mut last_commit = Instant::now();
    loop {
        let records = consumer.poll(Duration::from_millis(50)).expect("poll");
        if records.is_empty() {
            let ends = consumer.end_offsets(&tps).expect("ends");
            let mut done = true;
            for tp in &tps {
                done &= consumer.position(tp).expect("position") >= ends[tp];
            }
            if done {
                break;
            }
            continue;
        }
        for r in records.iter() {
            let v = r.value().unwrap_or_default();
            if !v.starts_with(b"purchase") {
                continue;
            }
            let enriched = format!("{};enriched", String::from_utf8_lossy(v));
            black_box(&enriched);
            let key = r.key().unwrap_or_default().to_vec();
            let start = r.timestamp() - r.timestamp() % WINDOW_MS;
            let n = counts.entry((key.clone(), start)).or_insert(0);
            *n += 1;
            let mut out_key = key;
            out_key.extend_from_slice(&start.to_be_bytes());
            drop(
                producer
                    .send(
                        ProducerRecord::new("purchase-counts")
                            .key(out_key)
                            .value(n.to_be_bytes().to_vec())
                            .timestamp(r.timestamp()),
                    )
                    .expect("send"),
            );
        }
        if last_commit.elapsed() >= Duration::from_millis(100) {
            producer.flush().expect("flush");
            consumer.commit_sync().expect("commit");
            last_commit = Instant::now();
        }
    }
    producer.flush().expect("flush");
    consumer.commit_sync().expect("commit");
    consumer.close().expect("close");
    producer.close().expect("close");
    start.elapsed()
}

fn measure(c: &mut Criterion, name: &str, run: impl Fn(&Store) -> Duration) -> f64 {
    let mut g = c.benchmark_group("seeds_topology");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500))
        .throughput(Throughput::Elements(EVENTS as u64));
    let mut total = Duration::ZERO;
    let mut runs = 0u32;
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                let (_dir, store) = setup();
                t += run(&store);
                store.close().expect("close");
            }
            total += t;
            runs += iters as u32;
            t
        })
    });
    g.finish();
    EVENTS as f64 * f64::from(runs.max(1)) / total.as_secs_f64().max(1e-9)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let hand = measure(&mut c, "hand_loop", hand_loop);
    let alo = measure(&mut c, "at_least_once", |s| {
        streams_run(s, ProcessingGuarantee::AtLeastOnce)
    });
    let eos = measure(&mut c, "exactly_once", |s| {
        streams_run(s, ProcessingGuarantee::ExactlyOnce)
    });
    c.final_summary();
    println!("\n| run | records/s | vs hand loop | target |");
    println!("|---|---|---|---|");
    println!("| hand loop | {hand:.0} | 1.00x | |");
    println!("| AtLeastOnce | {alo:.0} | {:.2}x | >= 0.5x |", alo / hand);
    println!("| ExactlyOnce | {eos:.0} | {:.2}x | >= 0.35x |", eos / hand);
}
