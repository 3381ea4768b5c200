//! Idempotence and transactions against the same records sent without them, measured
//! in the same run (issue 14, item 9).
//!
//! Workload: the standard records (16-byte keys, 100-byte values), uncompressed, to a
//! topic with one partition.
//!
//! - `idempotence`: 100000 records sent with `Producer::send` (`Acks::Leader`, default
//!   batching), then `flush()`, by an idempotent producer (the default) and by one with
//!   `enable_idempotence(false)`. Target: idempotent >= 0.95x plain.
//! - `txn_10`, `txn_100`, `txn_1000`: 100 transactions of 10, 100 or 1000 records each
//!   (`begin_transaction`, the sends, `commit_transaction`), against the same records
//!   sent without a transaction: `plain` (`Acks::Leader`, one `flush()` at the end:
//!   nothing fsync'd) and `durable` (after every 10, 100 or 1000 records, `flush()` and
//!   one fsync of the partition: the durability a commit gives). Only the sends, flushes
//!   and commits are timed, not opening and closing the store. A commit fsyncs the
//!   records, the commit decision in `__transaction_state`, and the markers: three
//!   fsyncs where `durable` has one. Target: 100-record transactions >= 0.7x `plain`.
//! - Commit latency: 300 transactions of 100 records, each `commit_transaction()` call
//!   timed; p50, p99 and max printed.
//!
//! After criterion's output, a table gives records/s and the ratios. Run with
//! `cargo bench -p streamlog-bench --bench transactions` (about a minute on 2 cores, plus the
//! build).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Workload, bench_criterion, flat_group, mean_ns, tmp};
use criterion::{BatchSize, Throughput};
use streamlog::{Compression, Producer, ProducerConfig, ProducerRecord, Store, TopicConfig};

const TOPIC: &str = "bench";
const RECORDS: usize = 100_000;
const TRANSACTIONS: usize = 100;
const SIZES: [usize; 3] = [10, 100, 1000];
const LATENCY_SAMPLES: usize = 300;

type Records = Vec<(Bytes, Bytes)>;

fn store_with_topic(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).expect("open store");
    store
        .create_topic(TOPIC, TopicConfig::default().partitions(1))
        .expect("create topic");
    store
}

fn send_all(producer: &Producer, records: &[(Bytes, Bytes)]) {
    for (k, v) in records {
        drop(
            producer
                .send(ProducerRecord::new(TOPIC).key(k).value(v))
                .expect("send"),
        );
    }
}

/// How `records` are sent: in transactions of `size`, or without (`durable`: a flush
/// after every `size` records under `Acks::All`; else one flush at the end).
#[derive(Clone, Copy)]
enum Mode {
    Plain,
    Durable,
    Transactional,
}

/// Sends `records` as `mode` says in groups of `size` on a fresh store; returns the time
/// of the sends (and flushes, commits) only, not of opening or closing the store.
fn run(mode: Mode, records: &[(Bytes, Bytes)], size: usize) -> Duration {
    let d = tmp();
    let store = store_with_topic(d.path());
    let partition = store
        .topic(TOPIC)
        .and_then(|t| t.partition(0))
        .expect("partition");
    let config = match mode {
        Mode::Plain | Mode::Durable => ProducerConfig::default(),
        Mode::Transactional => ProducerConfig::default().transactional_id("bench"),
    };
    let producer = store.producer(config).expect("producer");
    if let Mode::Transactional = mode {
        producer.init_transactions().expect("init");
    }
    let start = Instant::now();
    for chunk in records.chunks(size) {
        match mode {
            Mode::Plain => send_all(&producer, chunk),
            Mode::Durable => {
                // Appended, then one fsync for the group: the durability of a commit.
                send_all(&producer, chunk);
                producer.flush().expect("flush");
                partition.flush().expect("fsync");
            }
            Mode::Transactional => {
                producer.begin_transaction().expect("begin");
                send_all(&producer, chunk);
                producer.commit_transaction().expect("commit");
            }
        }
    }
    producer.flush().expect("flush");
    let took = start.elapsed();
    producer.close().expect("close");
    store.close().expect("close store");
    took
}

/// Per-commit latencies of `LATENCY_SAMPLES` transactions of 100 records, sorted.
fn commit_latencies(records: &[(Bytes, Bytes)]) -> Vec<Duration> {
    let d = tmp();
    let store = store_with_topic(d.path());
    let producer = store
        .producer(ProducerConfig::default().transactional_id("latency"))
        .expect("producer");
    producer.init_transactions().expect("init");
    let mut out = Vec::with_capacity(LATENCY_SAMPLES);
    for chunk in records.chunks(100).cycle().take(LATENCY_SAMPLES) {
        producer.begin_transaction().expect("begin");
        send_all(&producer, chunk);
        let t = Instant::now();
        producer.commit_transaction().expect("commit");
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn main() {
    let mut c = bench_criterion(Duration::from_secs(3));
    let w = Workload::new(RECORDS, 100, Compression::None);
    let records: Records = w
        .records
        .iter()
        .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
        .collect();

    let mut g = flat_group(&mut c, "idempotence", Throughput::Elements(RECORDS as u64));
    for (name, idempotent) in [("plain", false), ("idempotent", true)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let d = tmp();
                    let store = store_with_topic(d.path());
                    let producer = store
                        .producer(ProducerConfig::default().enable_idempotence(idempotent))
                        .expect("producer");
                    (d, store, producer)
                },
                |(d, store, producer)| {
                    send_all(&producer, &records);
                    producer.flush().expect("flush");
                    (producer, store, d)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();

    for size in SIZES {
        let n = size * TRANSACTIONS;
        let group = format!("txn_{size}");
        let mut g = flat_group(&mut c, &group, Throughput::Elements(n as u64));
        for (name, mode) in [
            ("plain", Mode::Plain),
            ("durable", Mode::Durable),
            ("transactional", Mode::Transactional),
        ] {
            g.bench_function(name, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(mode, &records[..n], size)).sum())
            });
        }
        g.finish();
    }
    c.final_summary();

    let per_s = |n: usize, ns: f64| n as f64 / (ns / 1e9);
    println!(
        "\n{:<44} {:>12}  {:>16}  {:>16}",
        "benchmark", "records/s", "vs plain", "vs durable"
    );
    if let (Some(plain), Some(idem)) = (
        mean_ns("idempotence", "plain"),
        mean_ns("idempotence", "idempotent"),
    ) {
        let ratio = plain / idem;
        println!(
            "{:<44} {:>12.0}  {:>7.2}x {:<8}",
            "idempotent producer (send, Acks::Leader)",
            per_s(RECORDS, idem),
            ratio,
            if ratio >= 0.95 {
                "(>= 0.95 met)"
            } else {
                "(>= 0.95 NOT met)"
            }
        );
    }
    for size in SIZES {
        let n = size * TRANSACTIONS;
        let group = format!("txn_{size}");
        let (Some(plain), Some(durable), Some(txn)) = (
            mean_ns(&group, "plain"),
            mean_ns(&group, "durable"),
            mean_ns(&group, "transactional"),
        ) else {
            println!("{group}: no criterion estimates found");
            continue;
        };
        let target = if size == 100 {
            if plain / txn >= 0.7 {
                "(>= 0.7 met)"
            } else {
                "(>= 0.7 NOT met)"
            }
        } else {
            ""
        };
        println!(
            "{:<44} {:>12.0}  {:>7.2}x {:<8}  {:>7.2}x",
            format!("transactions of {size} records"),
            per_s(n, txn),
            plain / txn,
            target,
            durable / txn,
        );
        println!(
            "  without: plain {:.0} records/s, durable (a flush per {size}) {:.0} records/s",
            per_s(n, plain),
            per_s(n, durable),
        );
    }
    let lat = commit_latencies(&records);
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "commit_transaction latency (100-record transactions, {} samples): p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        at(0.5),
        at(0.99),
        lat[lat.len() - 1]
    );
}
