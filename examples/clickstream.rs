//! Click events keyed by user: one producer thread, a consumer group of three worker
//! threads computing per-user metrics, a summary every 2 seconds.
//!
//! ```text
//! cargo run --release --example clickstream -- [--dir DIR] [--seconds S] [--rate N] [--users U]
//! ```
//!
//! The producer thread sends click events (`{"user":"user-42","page":"/products/7",
//! "ts":1700000000123}`, keyed by the user id, so all clicks of a user land on one
//! partition and stay in order) to the 6-partition topic `clicks` at N events per second
//! (default 20000) for S seconds (default 6), with U users (default 500; a few users and
//! pages are much more popular than the rest). Three worker threads, each its own
//! `Consumer` in the group `clickstream`, split the partitions between them and count
//! clicks per user, pages per user and the end-to-end latency (consume time minus the
//! event's `ts`). Every 2 seconds the main thread prints what was sent and consumed, each
//! worker's partitions and share, the top users and the top pages.
//!
//! When the producer stops, the workers drain what is left, commit and leave the group.
//! The run then checks that the group consumed every acknowledged event exactly once
//! (consumed = produced, no (partition, offset) twice) and that the committed offsets are
//! the partitions' end offsets. Exit status: 0 if so, 1 otherwise or on an error, 2 for
//! bad arguments. DIR defaults to a fresh directory under the system temp dir, removed
//! after a successful run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use parking_lot::Mutex;
use streamlog::{
    Consumer, ConsumerConfig, DeliveryFuture, OffsetReset, ProducerConfig, ProducerRecord,
    RebalanceListener, RecordRef, Store, TopicConfig, TopicPartition,
};

#[path = "common/mod.rs"]
mod common;

const TOPIC: &str = "clicks";
const GROUP: &str = "clickstream";
const PARTITIONS: i32 = 6;
const WORKERS: usize = 3;
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// After the producer stopped, give up when the group makes no progress for this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const PAGES: [&str; 12] = [
    "/home",
    "/search",
    "/products/1",
    "/products/2",
    "/products/3",
    "/products/4",
    "/products/5",
    "/cart",
    "/checkout",
    "/account",
    "/help",
    "/blog",
];

type BoxError = Box<dyn Error + Send + Sync>;

/// Click events keyed by user, consumed by a group of three threads computing metrics
///
/// Click events keyed by user: one producer thread, a consumer group of three worker
/// threads computing per-user metrics, a summary every 2 seconds, then a check that the
/// group consumed every event exactly once. Exit status: 0 if so, 1 otherwise or on an
/// error, 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(name = "clickstream")]
struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How long to produce, in seconds (more than 0, at most 86400)
    #[arg(long, value_name = "S", default_value_t = 6.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Events per second
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate: u64,
    /// How many users click
    #[arg(long, value_name = "U", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    users: u64,
}

fn parse_seconds(value: &str) -> Result<f64, String> {
    value
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .ok_or(format!("`{value}` is not a duration between 0 and 86400"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// xorshift64: a deterministic stream of event choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A skewed pick in `0..n`: the product of two uniform picks favours small numbers.
    fn skewed(&mut self, n: u64) -> u64 {
        (self.next() % n) * (self.next() % n) / n
    }
}

/// The string value of `"name":"..."` in a flat JSON object without escapes.
fn str_field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

/// The number value of `"name":123` in a flat JSON object.
fn num_field(json: &str, name: &str) -> Option<i64> {
    let start = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let len = json[start..]
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(json.len() - start);
    json[start..start + len].parse().ok()
}

#[derive(Debug, Default, Clone)]
struct UserStats {
    clicks: u64,
    pages: HashMap<String, u64>,
}

/// What one worker computed from the records it consumed.
#[derive(Debug, Default)]
struct WorkerMetrics {
    /// Partitions the worker owned after its last poll.
    assignment: Vec<i32>,
    records: u64,
    malformed: u64,
    users: HashMap<String, UserStats>,
    latency_ms_sum: i64,
    latency_ms_max: i64,
}

impl WorkerMetrics {
    fn add(&mut self, r: RecordRef<'_>, now: i64) {
        self.records += 1;
        let value = r.value().and_then(|v| std::str::from_utf8(v).ok());
        let user = r.key().and_then(|k| std::str::from_utf8(k).ok());
        let parsed = value.and_then(|v| Some((str_field(v, "page")?, num_field(v, "ts")?)));
        let (Some(user), Some((page, ts))) = (user, parsed) else {
            self.malformed += 1;
            return;
        };
        let stats = self.users.entry(user.to_string()).or_default();
        stats.clicks += 1;
        *stats.pages.entry(page.to_string()).or_default() += 1;
        let latency = (now - ts).max(0);
        self.latency_ms_sum += latency;
        self.latency_ms_max = self.latency_ms_max.max(latency);
    }
}

/// State the threads share with the reporting main thread.
struct Shared {
    stop_producer: AtomicBool,
    stop_workers: AtomicBool,
    sent: AtomicU64,
    /// Sends whose delivery was confirmed (`wait` returned Ok).
    acked: AtomicU64,
    consumed: AtomicU64,
    workers: Vec<Mutex<WorkerMetrics>>,
    /// Every (partition, offset) consumed by any worker: a second sighting is a duplicate.
    seen: Mutex<HashSet<(i32, i64)>>,
    duplicates: AtomicU64,
}

fn produce(store: &Store, args: &Args, shared: &Shared) -> Result<(), BoxError> {
    let producer = store.producer(ProducerConfig::default())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let confirm = |pending: &mut Vec<DeliveryFuture>| -> Result<(), BoxError> {
        for f in pending.drain(..) {
            f.wait()?;
            shared.acked.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    };
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.seconds);
    let mut sent = 0u64;
    while !shared.stop_producer.load(Ordering::Relaxed) {
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break;
        }
        // Pace: send what is due by now, in steps of at most 1000 events.
        let due = (elapsed.as_secs_f64() * args.rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let ts = now_ms();
        let step_end = due.min(sent + 1000);
        while sent < step_end {
            let uid = rng.skewed(args.users);
            let user = format!("user-{uid}");
            // Half the clicks follow the site-wide popularity, half the user's own taste.
            let taste = if rng.next().is_multiple_of(2) {
                0
            } else {
                uid * 7
            };
            let page =
                PAGES[((rng.skewed(PAGES.len() as u64) + taste) % PAGES.len() as u64) as usize];
            let value = format!(r#"{{"user":"{user}","page":"{page}","ts":{ts}}}"#);
            pending.push(producer.send(ProducerRecord::new(TOPIC).key(user).value(value))?);
            sent += 1;
        }
        shared.sent.store(sent, Ordering::Relaxed);
        if pending.len() >= 10_000 {
            confirm(&mut pending)?;
        }
    }
    producer.flush()?;
    confirm(&mut pending)?;
    producer.close()?;
    Ok(())
}

/// Prints a worker's partitions as the group moves them.
struct PrintRebalance(String);

impl RebalanceListener for PrintRebalance {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        println!(
            "  {}: revoked partitions [{}]",
            self.0,
            common::partition_numbers(partitions)
        );
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        println!(
            "  {}: assigned partitions [{}]",
            self.0,
            common::partition_numbers(partitions)
        );
    }
}

fn work(store: &Store, id: usize, shared: &Shared) -> Result<(), BoxError> {
    let mut consumer = store.consumer(
        ConsumerConfig::new(GROUP)
            .client_id(format!("worker-{id}"))
            .auto_offset_reset(OffsetReset::Earliest),
    )?;
    consumer.subscribe([TOPIC])?;
    consumer.set_rebalance_listener(PrintRebalance(format!("worker-{id}")));
    while !shared.stop_workers.load(Ordering::Relaxed) {
        let records = consumer.poll(Duration::from_millis(100))?;
        let assignment: Vec<i32> = consumer
            .assignment()
            .iter()
            .map(|tp| tp.partition())
            .collect();
        if records.is_empty() {
            shared.workers[id].lock().assignment = assignment;
            continue;
        }
        let now = now_ms();
        {
            let mut seen = shared.seen.lock();
            for r in &records {
                if !seen.insert((r.partition(), r.offset())) {
                    shared.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut m = shared.workers[id].lock();
        m.assignment = assignment;
        for r in &records {
            m.add(r, now);
        }
        drop(m);
        shared
            .consumed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
    }
    consumer.commit_sync()?;
    consumer.close()?;
    Ok(())
}

/// Merges the workers' metrics: (clicks per user, clicks per page, latency sum, max).
fn merged(shared: &Shared) -> (HashMap<String, UserStats>, BTreeMap<String, u64>, i64, i64) {
    let mut users: HashMap<String, UserStats> = HashMap::new();
    let mut pages: BTreeMap<String, u64> = BTreeMap::new();
    let (mut lat_sum, mut lat_max) = (0, 0);
    for w in &shared.workers {
        let w = w.lock();
        lat_sum += w.latency_ms_sum;
        lat_max = lat_max.max(w.latency_ms_max);
        for (user, s) in &w.users {
            let u = users.entry(user.clone()).or_default();
            u.clicks += s.clicks;
            for (page, n) in &s.pages {
                *u.pages.entry(page.clone()).or_default() += n;
                *pages.entry(page.clone()).or_default() += n;
            }
        }
    }
    (users, pages, lat_sum, lat_max)
}

fn top<'a>(counts: impl Iterator<Item = (&'a String, u64)>, n: usize) -> Vec<(&'a String, u64)> {
    let mut v: Vec<(&String, u64)> = counts.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.truncate(n);
    v
}

fn summary(shared: &Shared, started: Instant, users_shown: usize) {
    let sent = shared.sent.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    println!(
        "[{:5.1}s] sent {sent}, consumed {consumed} (behind by {})",
        started.elapsed().as_secs_f64(),
        sent.saturating_sub(consumed)
    );
    for (id, w) in shared.workers.iter().enumerate() {
        let w = w.lock();
        let parts: Vec<String> = w.assignment.iter().map(ToString::to_string).collect();
        println!(
            "  worker-{id}: {:>8} records, {:>5} users, partitions [{}]",
            w.records,
            w.users.len(),
            parts.join(",")
        );
    }
    let (users, pages, lat_sum, lat_max) = merged(shared);
    if consumed > 0 {
        println!(
            "  latency (consume time - event ts): mean {:.1} ms, max {lat_max} ms",
            lat_sum as f64 / consumed as f64
        );
    }
    let top_users = top(users.iter().map(|(u, s)| (u, s.clicks)), users_shown);
    let shown: Vec<String> = top_users
        .iter()
        .map(|(u, clicks)| {
            let fav = top(users[*u].pages.iter().map(|(p, n)| (p, *n)), 1);
            let fav = fav.first().map_or("-", |(p, _)| p.as_str());
            format!("{u} {clicks} (mostly {fav})")
        })
        .collect();
    println!(
        "  {} users; top: {}",
        users.len(),
        if shown.is_empty() {
            "-".to_string()
        } else {
            shown.join(", ")
        }
    );
    let top_pages: Vec<String> = top(pages.iter().map(|(p, n)| (p, *n)), 5)
        .into_iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    println!("  top pages: {}", top_pages.join(", "));
}

/// Joins a thread, turning a panic into an error.
fn join(handle: JoinHandle<Result<(), BoxError>>, what: &str) -> Result<(), BoxError> {
    handle
        .join()
        .map_err(|_| format!("the {what} thread panicked"))?
        .map_err(|e| format!("{what}: {e}").into())
}

fn run(args: &Args, dir: &std::path::Path) -> Result<Vec<String>, BoxError> {
    println!(
        "streamlog clickstream: {} s at {} events/s from {} users, topic `{TOPIC}` with \
         {PARTITIONS} partitions, group `{GROUP}` of {WORKERS} workers, store in {}",
        args.seconds,
        args.rate,
        args.users,
        dir.display()
    );
    let store = Store::open(dir)?;
    common::check_no_topic(&store, dir, TOPIC)?;
    store.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;
    let shared = Arc::new(Shared {
        stop_producer: AtomicBool::new(false),
        stop_workers: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        workers: (0..WORKERS).map(|_| Mutex::default()).collect(),
        seen: Mutex::new(HashSet::new()),
        duplicates: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut workers = Vec::new();
    for id in 0..WORKERS {
        let (store, shared) = (store.clone(), shared.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("worker-{id}"))
                .spawn(move || work(&store, id, &shared))?,
        );
    }
    let producer = {
        let (store, shared) = (store.clone(), shared.clone());
        let args = Args {
            dir: None,
            seconds: args.seconds,
            rate: args.rate,
            users: args.users,
        };
        std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || produce(&store, &args, &shared))?
    };

    // Report every 2 s until the producer is done and the group has caught up (or a
    // thread failed, or the group stopped making progress).
    let mut next_report = started + REPORT_EVERY;
    let mut producer = Some(producer);
    let mut result: Result<(), BoxError> = Ok(());
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_report {
            summary(&shared, started, 5);
            next_report += REPORT_EVERY;
        }
        if producer.as_ref().is_some_and(JoinHandle::is_finished) {
            let handle = producer.take().expect("checked");
            result = join(handle, "producer");
            if result.is_err() {
                break;
            }
        }
        if workers.iter().any(JoinHandle::is_finished) {
            result = Err("a worker stopped early".into());
            break;
        }
        let consumed = shared.consumed.load(Ordering::Relaxed);
        if consumed != last_progress.1 {
            last_progress = (Instant::now(), consumed);
        }
        if producer.is_none() {
            if consumed >= shared.acked.load(Ordering::Relaxed) {
                // Caught up; a last moment so that any duplicate would show up.
                std::thread::sleep(Duration::from_millis(300));
                break;
            }
            if last_progress.0.elapsed() >= DRAIN_TIMEOUT {
                break; // The checks below report the missing records.
            }
        }
    }
    shared.stop_producer.store(true, Ordering::Relaxed);
    shared.stop_workers.store(true, Ordering::Relaxed);
    if let Some(handle) = producer {
        let r = join(handle, "producer");
        if result.is_ok() {
            result = r;
        }
    }
    for (id, handle) in workers.into_iter().enumerate() {
        let r = join(handle, &format!("worker-{id}"));
        if result.is_ok() {
            result = r;
        }
    }
    result?;
    let elapsed = started.elapsed();

    println!("\nfinal, after {elapsed:.2?}:");
    summary(&shared, started, 10);
    let produced = shared.acked.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let (users, _, _, _) = merged(&shared);
    let malformed: u64 = shared.workers.iter().map(|w| w.lock().malformed).sum();
    let per_user_total: u64 = users.values().map(|u| u.clicks).sum();
    let group = store.describe_group(GROUP)?;
    println!("  committed offsets (partition: offset / log end):");
    for c in &group.offsets {
        println!("    {}: {} / {}", c.partition, c.offset, c.log_end_offset);
    }
    let topic = store.describe_topic(TOPIC)?;
    let end_total: i64 = topic.partitions.iter().map(|p| p.log_end_offset).sum();

    let mut failed = Vec::new();
    if consumed != produced {
        failed.push(format!(
            "consumed {consumed} events but {produced} were produced"
        ));
    }
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    if duplicates > 0 {
        failed.push(format!("{duplicates} events were consumed more than once"));
    }
    let distinct = shared.seen.lock().len() as u64;
    if distinct != produced {
        failed.push(format!(
            "{distinct} distinct (partition, offset) consumed, {produced} produced"
        ));
    }
    if end_total != produced as i64 {
        failed.push(format!(
            "the partitions hold {end_total} events, {produced} were acknowledged"
        ));
    }
    if malformed > 0 || per_user_total + malformed != consumed {
        failed.push(format!(
            "{malformed} events did not parse; per-user clicks add up to {per_user_total}"
        ));
    }
    for p in &topic.partitions {
        let committed = common::committed_offset(&group, TOPIC, p.partition);
        if committed != Some(p.log_end_offset) {
            failed.push(format!(
                "partition {}: committed {committed:?}, end offset {}",
                p.partition, p.log_end_offset
            ));
        }
    }
    store.close()?;
    if failed.is_empty() {
        println!(
            "ok: produced {produced} events, consumed {consumed}, each exactly once, by {WORKERS} \
             workers ({:.0} events/s over the run)",
            consumed as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(failed)
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "clickstream", None, |dir| run(&args, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_extracted_from_event_values() {
        let v = r#"{"user":"user-42","page":"/products/7","ts":1700000000123}"#;
        assert_eq!(str_field(v, "page"), Some("/products/7"));
        assert_eq!(str_field(v, "user"), Some("user-42"));
        assert_eq!(num_field(v, "ts"), Some(1_700_000_000_123));
        assert_eq!(num_field(v, "page"), None);
        assert_eq!(str_field(v, "referrer"), None);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        common::assert_usage_errors::<Args>(&[
            &["--seconds", "0"],
            &["--seconds", "NaN"],
            &["--seconds"],
            &["--rate", "0"],
            &["--users", "many"],
            &["--verbose"],
        ]);
    }
}
