//! Many partitions (issue 15, item 4): a store with `PARTITIONS` partitions (one topic,
//! one record each) is created, closed and reopened; each step is timed, and the
//! descriptors the reopened store holds are counted (Linux: `/proc/self/fd`).
//!
//! Targets: 10,000 partitions reopen in < 1 s holding < 256 descriptors; creating and
//! closing them take < 2 s each; 100,000 partitions reopen in < 10 s.
//!
//! Run with `cargo bench -p streamlog-bench --bench partitions` (`PARTITIONS` and `ROUNDS`
//! can be set in the environment; defaults 10000 and 3; the 100,000-partition row is
//! `PARTITIONS=100000 ROUNDS=1`, which creates 600,000 files). Each round uses a fresh
//! directory, and all are removed at the end, not between rounds: on ext4 without a
//! journal, creating files right after removing many skips the recently freed inodes,
//! which slowed the next round's creation several-fold. The table gives the median of
//! the rounds.

use std::time::{Duration, Instant};

use streamlog::{Record, Store, TopicConfig};

fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Round {
    create: Duration,
    append: Duration,
    close: Duration,
    reopen: Duration,
    fds: Option<usize>,
}

fn round(n: i32, d: &tempfile::TempDir) -> Round {
    let base_fds = open_fds();
    let store = Store::open(d.path()).expect("open");
    let t = Instant::now();
    store
        .create_topic("t", TopicConfig::default().partitions(n))
        .expect("create");
    let create = t.elapsed();
    let t = Instant::now();
    let topic = store.topic("t").expect("topic");
    for p in 0..n {
        topic
            .partition(p)
            .expect("partition")
            .append(&[Record::new(0, Some("k"), Some("v"))])
            .expect("append");
    }
    let append = t.elapsed();
    drop(topic);
    let t = Instant::now();
    store.close().expect("close");
    drop(store);
    let close = t.elapsed();
    let t = Instant::now();
    let store = Store::open(d.path()).expect("reopen");
    let reopen = t.elapsed();
    let fds = open_fds()
        .zip(base_fds)
        .map(|(now, base)| now.saturating_sub(base));
    assert_eq!(
        store
            .topic("t")
            .expect("topic")
            .partition(n - 1)
            .expect("p")
            .log_end_offset(),
        1
    );
    store.close().expect("close");
    Round {
        create,
        append,
        close,
        reopen,
        fds,
    }
}

fn main() {
    let n = env_or("PARTITIONS", 10_000) as i32;
    let rounds = env_or("ROUNDS", 3).max(1);
    let dirs: Vec<tempfile::TempDir> = (0..rounds)
        .map(|_| {
            tempfile::Builder::new()
                .prefix("streamlog-partitions")
                .tempdir()
                .expect("tempdir")
        })
        .collect();
    let results: Vec<Round> = dirs.iter().map(|d| round(n, d)).collect();
    let median = |f: &dyn Fn(&Round) -> Duration| {
        let mut v: Vec<Duration> = results.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    println!("{n} partitions, one record each, median of {rounds} rounds");
    // The targets: 10,000 partitions create and close in < 2 s and reopen in
    // < 1 s; 100,000 reopen in < 10 s (reopen scales linearly in between).
    let small = n <= 10_000;
    let reopen_target = Duration::from_secs_f64((f64::from(n) / 10_000.0).max(1.0));
    let rows: [(&str, Duration, Option<Duration>); 4] = [
        (
            "create_topic",
            median(&|r| r.create),
            small.then(|| Duration::from_secs(2)),
        ),
        ("append one record each", median(&|r| r.append), None),
        (
            "close",
            median(&|r| r.close),
            small.then(|| Duration::from_secs(2)),
        ),
        ("reopen", median(&|r| r.reopen), Some(reopen_target)),
    ];
    for (name, took, target) in rows {
        let verdict = target.map_or(String::new(), |t| {
            format!(
                "target < {t:?}: {}",
                if took < t { "met" } else { "NOT met" }
            )
        });
        println!("{name:<24} {took:>12.2?}  {verdict}");
    }
    match results.iter().filter_map(|r| r.fds).max() {
        Some(fds) => println!(
            "descriptors held after reopen: {fds} (target < 256: {})",
            if fds < 256 { "met" } else { "NOT met" }
        ),
        None => println!("descriptors held after reopen: unknown (no /proc/self/fd)"),
    }
}
