//! What the descriptor limit costs (`StoreConfig::max_open_files`).
//!
//! Workload: a store with one topic of 512 partitions; `Partition::append` of one record
//! (15-byte key, 100-byte value) to each partition in turn, 20 rounds (10,240 appends),
//! then a flush of every partition. A partition being written wants four files open
//! (its active segment, two indexes, its durable-position file), so about 2,000 here.
//! Limits the process's own descriptor limit (`ulimit -n`) cannot hold are skipped, with
//! a message: the first two cases need a soft limit of about 2,100.
//!
//! - `unlimited`: `max_open_files(65536)`: nothing is ever closed (the baseline).
//! - `limit_4096`, `limit_1024`, `limit_256`: files are closed and reopened by path; the
//!   sweep prefers files with nothing to sync, and a segment with unsynced appends is
//!   fdatasync'd before its descriptor closes.
//!
//! Store creation (the 512 partitions) is outside the timed part. After criterion's
//! output, a table gives appends/s and the ratio to `unlimited` in the same run.
//!
//! Run with `cargo bench -p streamlog-bench --bench files`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{bench_criterion, flat_group, mean_ns, tmp};
use criterion::{BatchSize, Throughput};
use streamlog::{Record, Store, StoreConfig, TopicConfig};

const PARTITIONS: i32 = 512;
const ROUNDS: usize = 20;
const LIMITS: [(&str, usize); 4] = [
    ("unlimited", 65_536),
    ("limit_4096", 4096),
    ("limit_1024", 1024),
    ("limit_256", 256),
];

fn store(dir: &std::path::Path, max_open_files: usize) -> Store {
    let store = Store::open_with(
        dir,
        StoreConfig::default()
            .background_maintenance(false)
            .max_open_files(max_open_files),
    )
    .expect("open store");
    store
        .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .expect("create topic");
    store
}

fn workload(store: &Store) {
    let topic = store.topic("t").expect("topic");
    let parts: Vec<_> = (0..PARTITIONS)
        .map(|p| topic.partition(p).expect("partition"))
        .collect();
    let value = vec![b'v'; 100];
    for round in 0..ROUNDS {
        for (p, part) in parts.iter().enumerate() {
            let key = format!("key-{round:04}-{p:06}");
            let record = Record::new(1_700_000_000_000, Some(key), Some(value.clone()));
            black_box(part.append(&[record]).expect("append"));
        }
    }
    for part in &parts {
        part.flush().expect("flush");
    }
}

fn main() {
    let mut c = bench_criterion(Duration::from_secs(5));
    let appends = PARTITIONS as usize * ROUNDS;
    let mut g = flat_group(&mut c, "files", Throughput::Elements(appends as u64));
    // The process's soft limit, as read by the store's default (half of it).
    let available = streamlog::fs::default_max_open_files() * 2;
    let mut ran = Vec::new();
    for (name, limit) in LIMITS {
        let wanted = 4 * PARTITIONS as usize + 64;
        if limit.min(wanted) > available {
            println!(
                "files/{name}: skipped, it needs about {} descriptors and `ulimit -n` is {available}",
                limit.min(wanted)
            );
            continue;
        }
        ran.push(name);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let d = tmp();
                    let s = store(d.path(), limit);
                    (d, s)
                },
                |(d, s)| {
                    workload(&s);
                    (s, d)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    c.final_summary();

    println!("\n{:<28} {:>12} {:>10}", "benchmark", "appends/s", "ratio");
    // Only this run's estimates (criterion keeps older ones on disk).
    let measured = |name: &str| {
        ran.contains(&name)
            .then(|| mean_ns("files", name))
            .flatten()
    };
    let base = measured("unlimited");
    for (name, limit) in LIMITS {
        let Some(ns) = measured(name) else {
            println!(
                "{:<28} (not measured in this run)",
                format!("max_open_files {limit}")
            );
            continue;
        };
        let ratio = base.map_or(String::from("-"), |b| format!("{:.2}x", b / ns));
        println!(
            "{:<28} {:>12.0} {:>10}",
            format!("max_open_files {limit}"),
            appends as f64 / (ns / 1e9),
            ratio
        );
    }
}
