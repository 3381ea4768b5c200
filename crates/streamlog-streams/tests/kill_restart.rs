//! Exactly-once under process death (issue 17, item 4): the seeds' topology runs with
//! `ProcessingGuarantee::ExactlyOnce` in a child process that dies abruptly
//! (`std::process::abort`, like kill -9: no destructor, no flush, no commit) at seeded
//! points (while processing a poll's records, possibly after earlier polls of the same
//! transaction were sent, or while restoring its store), and is
//! restarted until it has processed everything. The committed output then holds, for
//! every key and window, exactly the updates 1, 2, .., n with n the model's count, and
//! a fresh instance restores the same counts from the changelog. A second
//! sub-topology counts the events per kind after re-keying them through a repartition
//! topic (written and read in the same transactions), with the same checks.
//!
//! The child is this test binary again, running the ignored test `seeds_worker`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use streamlog::{IsolationLevel, ProducerConfig, Store};
use streamlog_streams::{
    Grouped, Materialized, ProcessingGuarantee, Produced, Streams, StreamsBuilder, StreamsConfig,
    TimeWindows, Topology, serdes,
};

const DIR_VAR: &str = "STREAMLOG_STREAMS_KILL_DIR";
const SEED_VAR: &str = "STREAMLOG_STREAMS_KILL_SEED";
const PARTITIONS: i32 = 2;
const EVENTS: usize = 500;

fn windows() -> TimeWindows {
    TimeWindows::of_size_with_no_grace(Duration::from_millis(WINDOW_MS as u64))
}

/// xorshift: each seed dies at the same points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Mostly increasing timestamps over ~40 minutes, some out of order (late past a
/// window's end: dropped), purchases and views for 6 users.
fn events() -> Vec<Event> {
    let mut rng = Rng(0x5eed_1234_abcd);
    (0..EVENTS)
        .map(|i| {
            let back = if rng.below(8) == 0 {
                rng.below(400_000) as i64
            } else {
                0
            };
            let ts = (i as i64) * 5_000 + 1_000 - back;
            let kind = if rng.below(3) == 0 {
                "view"
            } else {
                "purchase"
            };
            Event {
                key: format!("user-{}", rng.below(6)),
                ts: ts.max(0),
                value: format!("{kind}:{i}"),
            }
        })
        .collect()
}

/// The seeds' topology, plus events counted per kind (`purchase`, `view`) through a
/// repartition topic into `kind-counts`.
fn topology(peek: impl Fn(&String, &String) + Send + Sync + 'static) -> Topology {
    let builder = StreamsBuilder::new();
    seeds_into(&builder, windows(), peek)
        .group_by(
            |_, v| v.split(':').next().unwrap_or("").to_string(),
            Grouped::with(serdes::string(), serdes::string()).named("by-kind"),
        )
        .count(Materialized::named("kind-store"))
        .to_stream()
        .to(
            "kind-counts",
            Produced::with(serdes::string(), serdes::i64()),
        );
    builder.build().unwrap()
}

fn config() -> StreamsConfig {
    StreamsConfig::new("seeds")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .max_poll_records(13)
        .commit_interval_ms(0)
        .poll_ms(10)
}

#[test]
#[ignore = "run as a child process by seeds_topology_survives_kill_9"]
fn seeds_worker() {
    let (Ok(dir), Ok(seed)) = (std::env::var(DIR_VAR), std::env::var(SEED_VAR)) else {
        return;
    };
    let mut rng = Rng(seed.parse::<u64>().unwrap() * 2_654_435_761 + 1);
    // Dies at the n-th purchase this run processes, or during a restore.
    let die_at = 1 + rng.below(50);
    let die_in_restore = rng.below(5) == 0;
    let seen = AtomicU64::new(0);
    let topology = topology(move |_, _| {
        if seen.fetch_add(1, Ordering::Relaxed) + 1 == die_at {
            std::process::abort();
        }
    });
    // One thread, or two (each with its own transactional producer and partition).
    let mut c = config().threads(1 + rng.below(2) as usize);
    if rng.below(2) == 0 {
        // Commits only when idle: a death leaves the run's earlier polls' outputs and
        // changelog records in the log, uncommitted (then aborted).
        // (The interval must stay below the transaction timeout: 10 minutes is never
        // reached in a run.)
        c = c.commit_interval_ms(600_000).producer(
            ProducerConfig::default()
                .linger_ms(0)
                .transaction_timeout_ms(900_000),
        );
    }
    if die_in_restore {
        c = c.restore_listener(|p| {
            if p.restored > 0 || p.done {
                std::process::abort();
            }
        });
    }
    let store = Store::open(&dir).unwrap();
    let streams = Streams::new(topology, c, &store).unwrap();
    streams.start().unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    streams.close().unwrap();
    store.close().unwrap();
}

/// Runs a child: true if it finished, false if it died by a signal (its abort); any
/// other failure (an error, a panic) fails the test with the child's output.
fn run_worker(dir: &Path, seed: u64) -> bool {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "seeds_worker",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(DIR_VAR, dir)
        .env(SEED_VAR, seed.to_string())
        .output()
        .unwrap();
    if out.status.success() {
        return true;
    }
    assert!(
        out.status.code().is_none(),
        "child {seed} failed ({}) instead of dying:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// `STREAMLOG_STREAMS_KILL_ROUNDS=N` repeats the test with N different seed ranges (a
/// soak run; default 1).
#[test]
fn seeds_topology_survives_kill_9() {
    let rounds: u64 = std::env::var("STREAMLOG_STREAMS_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        one_round(round * 1_000 + 1);
    }
}

fn one_round(first_seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = events();
    {
        let store = Store::open(dir).unwrap();
        create_topics(
            &store,
            &[
                ("raw-events", PARTITIONS),
                ("purchase-counts", PARTITIONS),
                ("kind-counts", 1),
            ],
        );
        produce(&store, "raw-events", &input);
        store.close().unwrap();
    }
    let mut deaths = 0;
    let mut seed = first_seed;
    while !run_worker(dir, seed) {
        deaths += 1;
        seed += 1;
        assert!(deaths < 300, "the application never finished");
    }
    assert!(deaths >= 5, "the workload died only {deaths} times");
    println!("finished after {deaths} deaths");

    let (model, dropped) = window_model(&input, PARTITIONS, windows(), |e| {
        e.value.starts_with("purchase")
    });
    assert!(dropped > 0, "the input should have late records");
    let store = Store::open(dir).unwrap();
    let committed = read_all(&store, "purchase-counts", IsolationLevel::ReadCommitted);
    let everything = read_all(&store, "purchase-counts", IsolationLevel::ReadUncommitted);
    assert!(
        everything.len() > committed.len(),
        "the deaths left aborted output behind ({} records in all, {} committed)",
        everything.len(),
        committed.len()
    );
    assert_exact_updates(&count_updates(&committed), &model);

    // A fresh instance restores the counts from the changelog.
    // Per kind: the committed updates are 1..=n.
    let mut kinds: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for (k, v) in read_all(&store, "kind-counts", IsolationLevel::ReadCommitted) {
        kinds
            .entry(String::from_utf8(k).unwrap())
            .or_default()
            .push(serdes::i64().deserialize(&v).unwrap());
    }
    let mut kind_model: std::collections::BTreeMap<String, i64> = Default::default();
    for e in &input {
        *kind_model
            .entry(e.value.split(':').next().unwrap().to_string())
            .or_default() += 1;
    }
    for (kind, updates) in &kinds {
        let expected: Vec<i64> = (1..=kind_model[kind]).collect();
        assert_eq!(updates, &expected, "the updates of kind {kind}");
    }
    assert_eq!(kinds.len(), kind_model.len());

    let streams = Streams::new(topology(|_, _| {}), config(), &store).unwrap();
    streams.start().unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    let restored: std::collections::BTreeMap<(String, i64), i64> = streams
        .window_store::<String, i64>("purchase-counts-store")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(wk, n)| ((wk.key, wk.window.start), n))
        .collect();
    assert_eq!(restored, model);
    let per_kind: std::collections::BTreeMap<String, i64> = streams
        .key_value_store::<String, i64>("kind-store")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(per_kind, kind_model);
    assert_eq!(
        streams.metrics().processed,
        0,
        "nothing was left to process"
    );
    streams.close().unwrap();
    store.close().unwrap();
}
