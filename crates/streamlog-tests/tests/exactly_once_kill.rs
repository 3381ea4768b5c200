//! Exactly-once under process death (issue 14, item 6): a consume-transform-produce
//! pipeline (orders in, totals out) with a transactional producer runs in a child
//! process that dies abruptly (`std::process::abort`: no destructor, no flush, no
//! close, like `kill -9`) at seeded random points, and is restarted until it has
//! processed every order. A read_committed reader of the output then finds every
//! order's output exactly once.
//!
//! The child is this test binary again, running the ignored test `pipeline_worker`
//! with the store directory and a seed in its environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use streamlog::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig, ProducerRecord, Record, Store,
    TopicConfig, TopicPartition,
};

const DIR_VAR: &str = "STREAMLOG_PIPELINE_DIR";
const SEED_VAR: &str = "STREAMLOG_PIPELINE_SEED";
const ORDERS: usize = 300;
const PARTITIONS: i32 = 2;

/// A small deterministic generator (xorshift), so each run dies at the same points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The child: processes orders in transactions of up to `max_poll_records` until every
/// order is consumed, dying with a small chance at each step.
#[test]
#[ignore = "run as a child process by exactly_once_survives_kill_9_at_random_points"]
fn pipeline_worker() {
    let (Ok(dir), Ok(seed)) = (std::env::var(DIR_VAR), std::env::var(SEED_VAR)) else {
        return;
    };
    let mut rng = Rng(seed.parse::<u64>().unwrap() * 2654435761 + 1);
    let mut die = |step: &str, odds: u64| {
        if rng.below(odds) == 0 {
            eprintln!("worker: dying {step}");
            std::process::abort();
        }
    };
    let store = Store::open(&dir).unwrap();
    let mut consumer = store
        .consumer(
            ConsumerConfig::new("totals-app")
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted)
                .enable_auto_commit(false)
                .max_poll_records(17),
        )
        .unwrap();
    consumer.subscribe(["orders"]).unwrap();
    let producer = store
        .producer(ProducerConfig::default().transactional_id("totals-app-0"))
        .unwrap();
    producer.init_transactions().unwrap();
    let inputs: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("orders", p))
        .collect();
    loop {
        let records = consumer.poll(Duration::ZERO).unwrap();
        if records.is_empty() {
            let ends = consumer.end_offsets(&inputs).unwrap();
            let done = inputs
                .iter()
                .all(|tp| consumer.position(tp).unwrap() == ends[tp]);
            if done {
                break;
            }
            continue;
        }
        producer.begin_transaction().unwrap();
        let mut next = BTreeMap::new();
        for r in records.iter() {
            let amount: u64 = std::str::from_utf8(r.value().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            let out = format!("{}-{}:{}", r.partition(), r.offset(), amount * 2);
            let _delivery = producer
                .send(
                    ProducerRecord::new("totals")
                        .key(r.key().unwrap())
                        .value(out),
                )
                .unwrap();
            next.insert(TopicPartition::new("orders", r.partition()), r.offset() + 1);
            die("after a send", 100);
        }
        producer
            .send_offsets_to_transaction(&next, &consumer.group_metadata().unwrap())
            .unwrap();
        // The records reach the log (not yet committed) before the next chance to die.
        producer.flush().unwrap();
        die("before the commit", 6);
        producer.commit_transaction().unwrap();
        die("after the commit", 6);
    }
    producer.close().unwrap();
    store.close().unwrap();
}

/// How many times each output value was read at `isolation`.
fn read_outputs(store: &Store, isolation: IsolationLevel) -> BTreeMap<String, usize> {
    let mut reader = store
        .consumer(
            ConsumerConfig::new(format!("verify-{isolation:?}"))
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )
        .unwrap();
    reader.subscribe(["totals"]).unwrap();
    let mut outputs: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let records = reader.poll(Duration::ZERO).unwrap();
        if records.is_empty() {
            return outputs;
        }
        for r in records.iter() {
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            *outputs.entry(v).or_default() += 1;
        }
    }
}

fn run_worker(dir: &Path, seed: u64) -> bool {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "pipeline_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .env(SEED_VAR, seed.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    status.success()
}

#[test]
fn exactly_once_survives_kill_9_at_random_points() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let store = Store::open(dir).unwrap();
        store
            .create_topic("orders", TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
        store
            .create_topic("totals", TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
        let topic = store.topic("orders").unwrap();
        for i in 0..ORDERS {
            let p = topic.partition(i as i32 % PARTITIONS).unwrap();
            let key = format!("customer-{}", i % 7);
            p.append(&[Record::new(0, Some(key), Some((i + 1).to_string()))])
                .unwrap();
        }
        store.close().unwrap();
    }
    let mut deaths = 0;
    let mut seed = 1;
    while !run_worker(dir, seed) {
        deaths += 1;
        seed += 1;
        assert!(deaths < 200, "the pipeline never finished");
    }
    assert!(deaths >= 10, "the workload died only {deaths} times");
    println!("the pipeline finished after {deaths} deaths");

    let store = Store::open(dir).unwrap();
    let outputs = read_outputs(&store, IsolationLevel::ReadCommitted);
    // The deaths left work behind that only read_committed leaves out.
    let everything: usize = read_outputs(&store, IsolationLevel::ReadUncommitted)
        .values()
        .sum();
    assert!(everything > ORDERS, "{everything} outputs in all");
    let dupes: Vec<_> = outputs.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(dupes.is_empty(), "outputs seen more than once: {dupes:?}");
    let mut expected = BTreeMap::new();
    for i in 0..ORDERS {
        let p = i as i32 % PARTITIONS;
        let offset = i as i32 / PARTITIONS;
        expected.insert(format!("{p}-{offset}:{}", (i + 1) * 2), 1);
    }
    assert_eq!(outputs, expected, "after {deaths} deaths");
    // The group's committed offsets are at the end of the input.
    let ends: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("orders", p))
        .collect();
    let committed = store
        .consumer(ConsumerConfig::new("totals-app"))
        .unwrap()
        .committed(&ends)
        .unwrap();
    for tp in &ends {
        assert_eq!(committed[tp], Some(i64::from(ORDERS as i32 / PARTITIONS)));
    }
}
