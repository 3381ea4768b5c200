//! Producer and consumer throughput against raw-file baselines measured in the same run
//! (ARCHITECTURE.md, "Benchmarks").
//!
//! Workload: the standard records (16-byte keys, 100-byte values, half random,
//! half text), uncompressed, to a topic with one partition (so the producer side is
//! comparable with one raw file, and `Acks::All` senders share one log's fsyncs).
//!
//! - `producer`: 100000 records sent with `Producer::send` under `Acks::Leader` with the
//!   default batching (`batch_size` 16384, `linger_ms` 5), then `flush()`; by 1 thread and
//!   by 4 threads sharing one producer (25000 records each); then the same with
//!   `Producer::send_batch` of 1000 records per call (building the records included).
//!   Records borrow the workload's key and value bytes (as the baseline writes them from
//!   where they are); `send` copies them into the batch.
//!   Baseline `raw_append`: a buffered file append of the same key/value bytes with a
//!   CRC-32C per record.
//! - `consumer`: a `Consumer` (assigned the partition, from the beginning, default
//!   `max_poll_records` 500) polling all 100000 records and touching each key and value,
//!   iterating each poll's records by reference (`for r in &records`, zero-copy views)
//!   and, as a second row, by value (owned `ConsumerRecord`s). Baseline `raw_read`:
//!   reading the raw file and checking each record's CRC.
//! - `acks_all`: 2000 records sent under `Acks::All` with `linger_ms(0)` by 1, 4 and 16
//!   threads, each looping `send(..)?.wait()?` (so a thread has one record in flight, and
//!   concurrent threads share fsyncs: group commit). Baseline `raw_fdatasync`: one thread
//!   writing each record (same bytes plus the 12-byte raw header) with one `write` and
//!   then `fdatasync`.
//!
//! - `commits`: 2000 offset commits (`commit_sync_offsets` of one partition, each
//!   fsync'd into `__consumer_offsets`) by 1, 4 and 8 threads, each thread a consumer of
//!   its own group committing its share in turn: concurrent commits share fsyncs.
//!   Baseline `raw_fdatasync` as for `acks_all`.
//!
//! After criterion's own output, a table gives records/s, MB/s (of key+value bytes), the
//! ratio to the baseline, the targets from the design (producer 1 thread >= 0.6x raw
//! append, consumer >= 0.8x raw read, Acks::All 16 threads >= 8x 1 thread) and whether
//! this run met them.
//!
//! Run with `cargo bench -p streamlog-bench --bench client` (about a minute and a half on
//! 2 cores, plus the build).

mod common;

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use common::{
    Workload, bench_criterion, bench_raw_append, flat_group, mean_ns, raw_append, raw_read,
    raw_record, tmp,
};
use criterion::{BatchSize, Throughput};
use streamlog::{
    Acks, Compression, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, Store,
    TopicConfig, TopicPartition,
};

const TOPIC: &str = "bench";
const RECORDS: usize = 100_000;
const SYNC_RECORDS: usize = 2_000;
const ACKS_ALL_THREADS: [usize; 3] = [1, 4, 16];
const COMMIT_THREADS: [usize; 3] = [1, 4, 8];
/// Records per `send_batch` call.
const BATCH_CALL: usize = 1000;

type Records = Vec<(Bytes, Bytes)>;

fn to_bytes(w: &Workload, n: usize) -> Records {
    w.records
        .iter()
        .take(n)
        .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
        .collect()
}

/// A store with the one-partition bench topic.
fn store_with_topic(dir: &std::path::Path) -> Store {
    let store = Store::open(dir).expect("open store");
    store
        .create_topic(TOPIC, TopicConfig::default().partitions(1))
        .expect("create topic");
    store
}

fn log_end(store: &Store) -> i64 {
    store
        .topic(TOPIC)
        .and_then(|t| t.partition(0))
        .expect("partition")
        .log_end_offset()
}

/// Sends every record without waiting for its future (`flush` resolves them all).
fn send_all(producer: &Producer, records: &[(Bytes, Bytes)]) {
    for (k, v) in records {
        let record = ProducerRecord::new(TOPIC).key(k).value(v);
        drop(producer.send(record).expect("send"));
    }
}

/// Sends every record with `send_batch`, `BATCH_CALL` records per call (building the
/// `ProducerRecord`s is part of the work measured, as for `send`).
fn send_batches(producer: &Producer, records: &[(Bytes, Bytes)]) {
    for chunk in records.chunks(BATCH_CALL) {
        let batch: Vec<ProducerRecord> = chunk
            .iter()
            .map(|(k, v)| ProducerRecord::new(TOPIC).key(k).value(v))
            .collect();
        drop(producer.send_batch(&batch).expect("send_batch"));
    }
}

/// Runs `work` on `threads` equal shares of `records`: on this thread when `threads` is
/// 1, else each share on a thread of its own.
fn in_threads<T: Sync>(records: &[T], threads: usize, work: impl Fn(&[T]) + Sync) {
    if threads == 1 {
        work(records);
    } else {
        let work = &work;
        std::thread::scope(|s| {
            for chunk in records.chunks(records.len().div_ceil(threads)) {
                s.spawn(move || work(chunk));
            }
        });
    }
}

/// Sends `records` from `threads` threads sharing `producer` (per record, or with
/// `send_batch`), then flushes.
fn produce(producer: &Producer, records: &[(Bytes, Bytes)], threads: usize, batched: bool) {
    in_threads(records, threads, |chunk| {
        if batched {
            send_batches(producer, chunk);
        } else {
            send_all(producer, chunk);
        }
    });
    producer.flush().expect("flush");
}

/// `threads` threads each looping `send(..).wait()` over their share of `records`.
fn send_and_wait(producer: &Producer, records: &[(Bytes, Bytes)], threads: usize) {
    in_threads(records, threads, |chunk| {
        for (k, v) in chunk {
            let record = ProducerRecord::new(TOPIC).key(k.clone()).value(v.clone());
            producer
                .send(record)
                .expect("send")
                .wait()
                .expect("durable");
        }
    });
}

/// `threads` consumers (one group each) committing `total` offsets between them, each
/// commit fsync'd before the next.
fn commit_all(consumers: &mut [streamlog::Consumer], total: usize) {
    let tp = TopicPartition::new(TOPIC, 0);
    let per = total / consumers.len();
    let one = |c: &mut streamlog::Consumer| {
        for i in 0..per {
            let offsets = std::collections::BTreeMap::from([(tp.clone(), i as i64)]);
            c.commit_sync_offsets(&offsets).expect("commit");
        }
    };
    if consumers.len() == 1 {
        one(&mut consumers[0]);
    } else {
        std::thread::scope(|s| {
            for c in consumers.iter_mut() {
                s.spawn(move || one(c));
            }
        });
    }
}

/// The `Acks::All` baseline: one `write` and one `fdatasync` per record.
fn raw_write_fdatasync(file: &mut File, records: &[Vec<u8>]) {
    for r in records {
        file.write_all(r).expect("write");
        file.sync_data().expect("fdatasync");
    }
}

/// The plural ending of "thread" for `threads` threads.
fn plural(threads: usize) -> &'static str {
    if threads == 1 { "" } else { "s" }
}

/// One table row: `group/function` against `group/baseline`.
struct Row {
    label: String,
    group: &'static str,
    function: String,
    baseline: &'static str,
    records: usize,
    bytes: u64,
    /// The least ratio to the baseline the design asks for, if any.
    target: Option<f64>,
}

fn main() {
    let mut c = bench_criterion(Duration::from_secs(3));
    let w = Workload::new(RECORDS, 100, Compression::None);
    let records = to_bytes(&w, RECORDS);
    let payload = w.payload_bytes();
    let sync_payload: u64 = records
        .iter()
        .take(SYNC_RECORDS)
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum();
    let mut rows = Vec::new();

    // Producer (Acks::Leader), 1 and 4 threads, against a buffered raw append.
    let mut g = flat_group(&mut c, "producer", Throughput::Elements(RECORDS as u64));
    bench_raw_append(&mut g, "raw_append", &w);
    for (threads, batched) in [(1, false), (4, false), (1, true), (4, true)] {
        let plural = plural(threads);
        let name = format!(
            "{threads}_thread{plural}{}",
            if batched { "_send_batch" } else { "" }
        );
        g.bench_function(&name, |b| {
            b.iter_batched(
                || {
                    let d = tmp();
                    let store = store_with_topic(d.path());
                    let producer = store
                        .producer(ProducerConfig::default().acks(Acks::Leader))
                        .expect("producer");
                    (d, store, producer)
                },
                |(d, store, producer)| {
                    produce(&producer, &records, threads, batched);
                    assert_eq!(log_end(&store), RECORDS as i64, "every record appended");
                    (producer, store, d)
                },
                BatchSize::PerIteration,
            )
        });
        rows.push(Row {
            label: format!(
                "producer {threads} thread{plural} ({})",
                if batched {
                    "send_batch of 1000"
                } else {
                    "send"
                }
            ),
            group: "producer",
            function: name,
            baseline: "raw_append",
            records: RECORDS,
            bytes: payload,
            target: (threads == 1).then_some(0.6),
        });
    }
    g.finish();

    // Consumer against a raw read + CRC scan of the same records.
    let d = tmp();
    let raw_path = d.path().join("raw.bin");
    drop(raw_append(&raw_path, &w));
    let store = store_with_topic(&d.path().join("store"));
    let producer = store.producer(ProducerConfig::default()).expect("producer");
    produce(&producer, &records, 1, false);
    producer.close().expect("close producer");
    let tp = TopicPartition::new(TOPIC, 0);
    let mut g = flat_group(&mut c, "consumer", Throughput::Elements(RECORDS as u64));
    g.bench_function("raw_read", |b| b.iter(|| black_box(raw_read(&raw_path))));
    // Borrowed iteration (`for r in &records`: zero-copy views, the fast path), then
    // owned (`for r in records`: each record holds a reference to its batch).
    for (function, owned) in [("streamlog", false), ("streamlog_owned", true)] {
        g.bench_function(function, |b| {
            b.iter_batched(
                || {
                    let mut consumer = store.consumer(ConsumerConfig::default()).expect("consumer");
                    consumer.assign(std::slice::from_ref(&tp)).expect("assign");
                    consumer.seek_to_beginning(&[]).expect("seek");
                    consumer
                },
                |mut consumer| {
                    let (mut count, mut bytes) = (0usize, 0usize);
                    let size = |k: Option<&[u8]>, v: Option<&[u8]>| {
                        k.map_or(0, <[u8]>::len) + v.map_or(0, <[u8]>::len)
                    };
                    while count < RECORDS {
                        let records = consumer.poll(Duration::from_secs(1)).expect("poll");
                        count += records.len();
                        if owned {
                            for r in records {
                                bytes += size(r.key(), r.value());
                            }
                        } else {
                            for r in &records {
                                bytes += size(r.key(), r.value());
                            }
                        }
                    }
                    assert_eq!(bytes as u64, payload, "every record read");
                    consumer
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    rows.push(Row {
        label: "consumer (assign, poll, &records)".into(),
        group: "consumer",
        function: "streamlog".into(),
        baseline: "raw_read",
        records: RECORDS,
        bytes: payload,
        target: Some(0.8),
    });
    rows.push(Row {
        label: "consumer (owned records)".into(),
        group: "consumer",
        function: "streamlog_owned".into(),
        baseline: "raw_read",
        records: RECORDS,
        bytes: payload,
        target: None,
    });
    store.close().expect("close store");
    drop(d);

    // Acks::All with 1, 4, 16 threads against one thread's write + fdatasync per record.
    let d = tmp();
    let mut raw_file = File::create(d.path().join("raw-sync.bin")).expect("create");
    let raw_records: Vec<Vec<u8>> = records
        .iter()
        .take(SYNC_RECORDS)
        .map(|(k, v)| raw_record(k, v))
        .collect();
    let store = store_with_topic(&d.path().join("store"));
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .expect("producer");
    let sync_records = &records[..SYNC_RECORDS];
    let mut g = flat_group(
        &mut c,
        "acks_all",
        Throughput::Elements(SYNC_RECORDS as u64),
    );
    g.bench_function("raw_fdatasync", |b| {
        b.iter(|| raw_write_fdatasync(&mut raw_file, &raw_records))
    });
    for threads in ACKS_ALL_THREADS {
        let name = format!("{threads}_thread{}", plural(threads));
        g.bench_function(&name, |b| {
            b.iter(|| send_and_wait(&producer, sync_records, threads))
        });
        rows.push(Row {
            label: format!("Acks::All {threads} thread{}", plural(threads)),
            group: "acks_all",
            function: name,
            baseline: "raw_fdatasync",
            records: SYNC_RECORDS,
            bytes: sync_payload,
            target: None,
        });
    }
    g.finish();
    producer.close().expect("close producer");

    // Offset commits from 1, 4 and 8 threads against the same fdatasync baseline.
    let mut g = flat_group(&mut c, "commits", Throughput::Elements(SYNC_RECORDS as u64));
    g.bench_function("raw_fdatasync", |b| {
        b.iter(|| raw_write_fdatasync(&mut raw_file, &raw_records))
    });
    for threads in COMMIT_THREADS {
        let mut consumers: Vec<streamlog::Consumer> = (0..threads)
            .map(|i| {
                store
                    .consumer(ConsumerConfig::new(format!("bench-{threads}-{i}")))
                    .expect("consumer")
            })
            .collect();
        let name = format!("{threads}_thread{}", plural(threads));
        g.bench_function(&name, |b| {
            b.iter(|| commit_all(&mut consumers, SYNC_RECORDS))
        });
        rows.push(Row {
            label: format!("offset commits {threads} thread{}", plural(threads)),
            group: "commits",
            function: name,
            baseline: "raw_fdatasync",
            records: SYNC_RECORDS,
            bytes: 0,
            target: None,
        });
    }
    g.finish();
    store.close().expect("close store");
    drop(d);

    c.final_summary();
    print_table(&rows);
}

fn print_table(rows: &[Row]) {
    let per_s = |n: usize, ns: f64| n as f64 / (ns / 1e9);
    println!(
        "\n{:<40} {:>12} {:>8}  {:<14} {:>12} {:>8}  {:>7}",
        "benchmark", "records/s", "MB/s", "baseline", "records/s", "ratio", "target"
    );
    for r in rows {
        let (Some(ours), Some(base)) =
            (mean_ns(r.group, &r.function), mean_ns(r.group, r.baseline))
        else {
            println!("{:<40} (no criterion estimates found)", r.label);
            continue;
        };
        let ratio = base / ours;
        let target = r.target.map_or(String::new(), |t| {
            format!(">= {t:.1}x {}", if ratio >= t { "met" } else { "NOT met" })
        });
        println!(
            "{:<40} {:>12.0} {:>8.1}  {:<14} {:>12.0} {:>7.2}x  {target}",
            r.label,
            per_s(r.records, ours),
            r.bytes as f64 / (ours / 1e9) / 1e6,
            r.baseline,
            per_s(r.records, base),
            ratio,
        );
    }
    if let (Some(one), Some(sixteen)) = (
        mean_ns("acks_all", "1_thread"),
        mean_ns("acks_all", "16_threads"),
    ) {
        let scale = one / sixteen;
        println!(
            "Acks::All 16 threads / 1 thread: {scale:.2}x (target >= 8x: {})",
            if scale >= 8.0 { "met" } else { "NOT met" }
        );
    }
}
