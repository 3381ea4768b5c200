//! Partition-log throughput against a raw-file baseline measured in the same run
//! (ARCHITECTURE.md, "Benchmarks").
//!
//! - append: records encoded into ~16 KiB batches (Kafka's default `batch.size`) with
//!   `BatchBuilder` and appended with `Log::append` (no fsync: the Acks::Leader path),
//!   against a buffered file append of the same key/value bytes with a CRC-32C per record.
//! - read: `Log::read` from offset 0 to the end (each batch CRC-checked and its offsets
//!   checked; sealed segments memory-mapped), against reading the raw file and checking
//!   each record's CRC.
//! - read_decode: the same read, plus decoding every record into a `Record` and touching
//!   its key and value (what a consumer does; zero-copy `Bytes` for uncompressed data).
//!
//! Workloads: 16-byte keys with 100-byte values (half random, half text), uncompressed;
//! 1 KiB values; 100-byte values with each codec. After criterion's own output, a table
//! gives records/s, MB/s (of key+value bytes) and the ratio to the baseline.
//!
//! Run with `cargo bench -p streamlog-bench --bench log` (a few minutes on 2 cores).

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use common::{Workload, bench_criterion, bench_raw_append, mean_ns, raw_append, raw_read, tmp};
use criterion::{BatchSize, Criterion, Throughput};
use streamlog::format::{BatchBuilder, Compression};
use streamlog::log::{Log, LogConfig};

const BATCH_BYTES: usize = 16 * 1024;

fn log_config() -> LogConfig {
    LogConfig::default().segment_bytes(64 << 20)
}

fn log_append(log: Log, w: &Workload) -> Log {
    let builder = || BatchBuilder::with_capacity(BATCH_BYTES + 1024).compression(w.codec);
    let mut b = builder();
    for (i, (k, v)) in w.records.iter().enumerate() {
        b.push(1_700_000_000_000 + i as i64, Some(k), Some(v), &[])
            .expect("push");
        if b.uncompressed_size() >= BATCH_BYTES {
            let full = std::mem::replace(&mut b, builder());
            log.append_encoded(&mut full.build().expect("build"))
                .expect("append");
        }
    }
    if !b.is_empty() {
        log.append_encoded(&mut b.build().expect("build"))
            .expect("append");
    }
    log
}

/// Reads every batch (each CRC-checked by `Log::read`); with `decode`, also decodes
/// every record and touches its key and value. Returns bytes seen.
fn log_read(log: &Log, decode: bool) -> u64 {
    let (mut offset, mut total) = (0i64, 0u64);
    let end = log.log_end_offset();
    while offset < end {
        for batch in log.read(offset, 1 << 20).expect("read") {
            if decode {
                for r in batch.records().expect("records") {
                    let r = r.expect("record");
                    total += (r.key.map_or(0, |k| k.len()) + r.value.map_or(0, |v| v.len())) as u64;
                }
            } else {
                total += batch.size() as u64;
            }
            offset = batch.last_offset() + 1;
        }
    }
    total
}

fn bench_workload(c: &mut Criterion, w: &Workload, groups: &mut Vec<(String, usize, u64)>) {
    let n = w.records.len();
    let group_name = format!("append_{}", w.name);
    let mut g = c.benchmark_group(&group_name);
    g.throughput(Throughput::Elements(n as u64));
    bench_raw_append(&mut g, "raw", w);
    g.bench_function("streamlog", |b| {
        b.iter_batched(
            || {
                let d = tmp();
                let log = Log::open(d.path().join("bench-0"), log_config()).expect("open");
                (d, log)
            },
            |(d, log)| (log_append(log, w), d),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    groups.push((group_name, n, w.payload_bytes()));

    let group_name = format!("read_{}", w.name);
    let d = tmp();
    let raw_path = d.path().join("raw.bin");
    drop(raw_append(&raw_path, w));
    let log_dir: PathBuf = d.path().join("bench-0");
    log_append(Log::open(&log_dir, log_config()).expect("open"), w)
        .close()
        .expect("close");
    let log = Log::open(&log_dir, log_config()).expect("reopen");
    assert_eq!(
        log_read(&log, true),
        raw_read(&raw_path),
        "both read the same payload"
    );
    for (group_name, decode) in [
        (group_name, false),
        (format!("read_decode_{}", w.name), true),
    ] {
        let mut g = c.benchmark_group(&group_name);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("raw", |b| b.iter(|| black_box(raw_read(&raw_path))));
        g.bench_function("streamlog", |b| {
            b.iter(|| black_box(log_read(&log, decode)))
        });
        g.finish();
        groups.push((group_name, n, w.payload_bytes()));
    }
}

fn main() {
    let mut c = bench_criterion(Duration::from_secs(3));
    let mut workloads = vec![
        Workload::new(100_000, 100, Compression::None),
        Workload::new(10_000, 1024, Compression::None),
    ];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        workloads.push(Workload::new(100_000, 100, codec));
    }
    let mut groups = Vec::new();
    for w in &workloads {
        bench_workload(&mut c, w, &mut groups);
    }
    c.final_summary();
    println!(
        "\n{:<32} {:>14} {:>10} {:>14} {:>10}",
        "benchmark", "records/s", "MB/s", "raw records/s", "ratio"
    );
    for (group, n, bytes) in groups {
        let (Some(ours), Some(raw)) = (mean_ns(&group, "streamlog"), mean_ns(&group, "raw")) else {
            continue;
        };
        let per_s = |ns: f64| n as f64 / (ns / 1e9);
        println!(
            "{group:<32} {:>14.0} {:>10.1} {:>14.0} {:>9.2}x",
            per_s(ours),
            bytes as f64 / (ours / 1e9) / 1e6,
            per_s(raw),
            raw / ours
        );
    }
}
