//! Exactly-once stream processing: orders in, running totals per customer out, with a
//! worker that dies in the middle of its work and is restarted.
//!
//! ```text
//! cargo run --release --example exactly_once -- [--dir DIR] [--orders N] [--deaths K]
//! ```
//!
//! The worker is a consume-transform-produce loop: a consumer of the group
//! `order-totals` reads `orders` with `IsolationLevel::ReadCommitted`; for each batch it
//! polls, a transactional producer (`transactional_id` `order-totals-worker`) writes each
//! customer's new running total to `totals` and adds the consumer's offsets to the same
//! transaction. The outputs and the input offsets therefore commit together or not at
//! all. The worker keeps its totals in memory and, when it starts, restores them from
//! `totals` itself (the latest committed total of each customer).
//!
//! The first K workers die part-way through a transaction, after its records reached the
//! log but before the commit (their producer is abandoned with the transaction open, as
//! a crashed process leaves it; their consumer's membership ends). Each restart fences
//! the dead worker's producer and aborts its transaction, then resumes from the last
//! committed offsets. At the end the example checks, with a read_committed reader, that
//! every order produced exactly one output and that each customer's final total is the
//! sum of their orders; a read_uncommitted reader shows the aborted outputs the deaths
//! left behind.
//!
//! Defaults: N = 2000, K = 3, DIR = a fresh directory under the system temp dir, removed
//! when every check passed. Exit status: 0 when every check passed, 1 on an error or a
//! failed check, 2 for bad arguments. `crates/streamlog-tests/tests/exactly_once_kill.rs`
//! runs the same kind of pipeline in a child process killed with `abort()` (as `kill -9`).

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use streamlog::{
    ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig, ProducerRecord, Record, Store,
    TopicConfig, TopicPartition,
};

#[path = "common/mod.rs"]
mod common;

const ORDERS: &str = "orders";
const TOTALS: &str = "totals";
const GROUP: &str = "order-totals";
const TRANSACTIONAL_ID: &str = "order-totals-worker";
const PARTITIONS: i32 = 2;
const CUSTOMERS: usize = 25;

/// Orders in, running totals out, exactly once, with workers that die part-way
///
/// Exit status: 0 when every check passed, 1 on an error or a failed check, 2 for bad
/// arguments.
#[derive(Debug, Parser)]
#[command(name = "exactly_once")]
struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many orders to process
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = common::at_least_one)]
    orders: usize,
    /// How many workers die before one finishes
    #[arg(long, value_name = "K", default_value_t = 3)]
    deaths: usize,
}

/// Order `i`: its customer and amount in cents.
fn order(i: usize) -> (String, u64) {
    (
        format!("customer-{}", i % CUSTOMERS),
        100 + (i as u64 * 37) % 900,
    )
}

/// A `totals` record's value: the running total after the order at (partition, offset).
fn total_value(total: u64, partition: i32, offset: i64) -> String {
    format!("{total} after {partition}-{offset}")
}

/// The total and the order of a `totals` value.
fn parse_total(v: &[u8]) -> Option<(u64, String)> {
    let (total, order) = std::str::from_utf8(v).ok()?.split_once(" after ")?;
    Some((total.parse().ok()?, order.to_string()))
}

/// What one worker did before it returned.
struct Worker {
    transactions: usize,
    died: bool,
}

/// The worker: consume `orders`, add to each customer's total, produce to `totals`, one
/// transaction per poll. With `die_in`, it dies in that transaction (counted from 1)
/// after its records were appended, leaving the transaction open.
fn worker(store: &Store, die_in: Option<usize>) -> Result<Worker, Box<dyn Error>> {
    let mut totals = restore_totals(store)?;
    let mut consumer = store.consumer(
        ConsumerConfig::new(GROUP)
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted)
            .enable_auto_commit(false)
            .max_poll_records(100),
    )?;
    consumer.subscribe([ORDERS])?;
    let producer = store.producer(ProducerConfig::default().transactional_id(TRANSACTIONAL_ID))?;
    // Fences the dead worker's producer and aborts its open transaction.
    producer.init_transactions()?;
    let inputs: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(ORDERS, p))
        .collect();
    let mut done = Worker {
        transactions: 0,
        died: false,
    };
    loop {
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() {
            let ends = consumer.end_offsets(&inputs)?;
            let mut caught_up = true;
            for tp in &inputs {
                caught_up &= consumer.position(tp)? == ends[tp];
            }
            if caught_up {
                break;
            }
            continue;
        }
        producer.begin_transaction()?;
        let mut next = BTreeMap::new();
        for r in records.iter() {
            let customer = String::from_utf8(r.key().unwrap_or_default().to_vec())?;
            let amount: u64 = std::str::from_utf8(r.value().unwrap_or_default())?.parse()?;
            let total = totals.entry(customer.clone()).or_default();
            *total += amount;
            let value = total_value(*total, r.partition(), r.offset());
            let _delivery =
                producer.send(ProducerRecord::new(TOTALS).key(customer).value(value))?;
            next.insert(TopicPartition::new(ORDERS, r.partition()), r.offset() + 1);
        }
        producer.send_offsets_to_transaction(&next, &consumer.group_metadata()?)?;
        done.transactions += 1;
        if die_in == Some(done.transactions) {
            // Dies: the records are in the log, the transaction stays open, nothing is
            // cleaned up (the consumer's membership ends, as its session would expire).
            producer.flush()?;
            std::mem::forget(producer);
            consumer.close()?;
            done.died = true;
            return Ok(done);
        }
        producer.commit_transaction()?;
    }
    producer.close()?;
    consumer.close()?;
    Ok(done)
}

/// Each customer's latest committed total, read back from `totals`.
fn restore_totals(store: &Store) -> Result<HashMap<String, u64>, Box<dyn Error>> {
    let mut totals = HashMap::new();
    for (key, value) in read_all(store, TOTALS, IsolationLevel::ReadCommitted)? {
        let (total, _) = parse_total(&value).ok_or("a totals record is malformed")?;
        totals.insert(key, total);
    }
    Ok(totals)
}

/// A record's key and value.
type KeyValue = (String, Vec<u8>);

/// Every record of `topic` as `isolation` reads it.
fn read_all(
    store: &Store,
    topic: &str,
    isolation: IsolationLevel,
) -> Result<Vec<KeyValue>, Box<dyn Error>> {
    let mut reader = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(isolation),
    )?;
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    reader.assign(&all)?;
    let mut out = Vec::new();
    loop {
        let records = reader.poll(Duration::ZERO)?;
        if records.is_empty() {
            return Ok(out);
        }
        for r in records.iter() {
            let key = String::from_utf8(r.key().unwrap_or_default().to_vec())?;
            out.push((key, r.value().unwrap_or_default().to_vec()));
        }
    }
}

fn run(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let store = Store::open(dir)?;
    common::check_no_topic(&store, dir, ORDERS)?;
    let config = TopicConfig::default().partitions(PARTITIONS);
    store.create_topic(ORDERS, config.clone())?;
    store.create_topic(TOTALS, config)?;
    let topic = store.topic(ORDERS)?;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..args.orders {
        let (customer, amount) = order(i);
        *expected.entry(customer.clone()).or_default() += amount;
        let p = topic.partition(i as i32 % PARTITIONS)?;
        p.append(&[Record::new(0, Some(customer), Some(amount.to_string()))])?;
    }
    println!(
        "{} orders for {CUSTOMERS} customers in `{ORDERS}`",
        args.orders
    );

    for death in 1..=args.deaths {
        // Each dies in a different transaction of its run.
        let w = worker(&store, Some(1 + death % 3))?;
        println!(
            "worker {death}: died in transaction {} (its records are in the log, uncommitted)",
            w.transactions
        );
    }
    let w = worker(&store, None)?;
    println!(
        "worker {}: finished after {} transactions",
        args.deaths + 1,
        w.transactions
    );

    let mut failed = Vec::new();
    let committed = read_all(&store, TOTALS, IsolationLevel::ReadCommitted)?;
    let everything = read_all(&store, TOTALS, IsolationLevel::ReadUncommitted)?;
    let mut per_order: HashMap<String, usize> = HashMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for (key, value) in &committed {
        let (total, order) = parse_total(value).ok_or("a totals record is malformed")?;
        *per_order.entry(order).or_default() += 1;
        last.insert(key.clone(), total);
    }
    let twice = per_order.values().filter(|&&n| n > 1).count();
    if per_order.len() != args.orders || twice > 0 {
        failed.push(format!(
            "{} orders have an output ({twice} more than one); expected each of {} once",
            per_order.len(),
            args.orders
        ));
    }
    if last != expected {
        failed.push("a customer's final total is not the sum of their orders".into());
    }
    println!(
        "read_committed: {} outputs, one per order; read_uncommitted: {} (the {} extra are the \
         dead workers' aborted work)",
        committed.len(),
        everything.len(),
        everything.len() - committed.len()
    );
    if failed.is_empty() {
        println!(
            "every one of the {} orders produced exactly one output, and every final total \
             matches",
            args.orders
        );
    }
    store.close()?;
    Ok(failed)
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "exactly_once", Some(TOTALS), |dir| {
        run(&args, dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_usage_errors() {
        common::assert_usage_errors::<Args>(&[
            &["--orders", "0"],
            &["--orders", "x"],
            &["--deaths", "-1"],
            &["--dir"],
        ]);
        let a: Args = common::parse_ok(&["--orders", "7", "--deaths", "0"]);
        assert_eq!((a.orders, a.deaths), (7, 0));
    }

    /// The example itself, as `cargo run --example exactly_once` runs it (in a temp dir).
    #[test]
    fn a_default_run_passes_every_check() {
        common::assert_run_passes(&common::parse_ok::<Args>(&[]), run);
    }

    #[test]
    fn totals_round_trip() {
        assert_eq!(
            parse_total(total_value(1234, 1, 56).as_bytes()),
            Some((1234, "1-56".to_string()))
        );
        assert_eq!(parse_total(b"12 before x"), None);
    }
}
