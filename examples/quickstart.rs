//! The README's main example: a producer and a consumer group on a store in a fresh
//! directory.
//!
//! ```text
//! cargo run --release --example quickstart -- [--dir DIR] [--records N] [--compression CODEC]
//! ```
//!
//! It creates the topic `clicks` (4 partitions), produces N records keyed `user-{i % 1000}`
//! with a [`Producer`] (`Acks::Leader`, then `flush`), consumes them with the consumer
//! group `quickstart` (earliest offsets), commits, and prints counts, throughput, the
//! partitions' end offsets and the group's committed offsets. It then checks that it
//! consumed exactly N distinct (partition, offset) records, each record once, on the
//! partition Kafka's partitioner gives its key, and that the committed offsets equal the
//! end offsets.
//!
//! Defaults: N = 100000, CODEC = lz4 (`none`, `gzip`, `snappy`, `lz4`, `zstd`), DIR = a
//! fresh directory under the system temp dir, removed at the end when every check passed
//! (pass `--dir` to keep the files and look at them with
//! `cargo run -p streamlog-cli -- dump DIR/clicks-0`).
//!
//! Exit status: 0 when every check passed, 1 on an error or a failed check, 2 for bad
//! arguments.

use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use streamlog::producer::partition_for_key;
use streamlog::{
    Acks, Compression, ConsumerConfig, DeliveryFuture, OffsetReset, ProducerConfig, ProducerRecord,
    Store, TopicConfig,
};

#[path = "common/mod.rs"]
mod common;

const TOPIC: &str = "clicks";
const GROUP: &str = "quickstart";
const PARTITIONS: i32 = 4;
const USERS: usize = 1000;
/// Sends whose delivery is not yet checked; bounds the memory of a large `--records`.
const MAX_PENDING: usize = 100_000;
/// The consumer gives up when no record arrives for this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Produces N records, consumes them with a consumer group and checks each arrived once
///
/// The README's main example: produces N records keyed by user to the topic `clicks`,
/// consumes them with the consumer group `quickstart`, commits, and checks that every
/// record arrived exactly once. Exit status: 0 when every check passed, 1 on an error or
/// a failed check, 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(name = "quickstart")]
// `pub(crate)`, as `run`: the CLI's tests include this file to write a store with it.
pub(crate) struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many records to produce
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = common::at_least_one)]
    records: usize,
    /// The producer's compression codec
    #[arg(long, value_name = "CODEC", default_value_t = Compression::Lz4,
          value_parser = PossibleValuesParser::new(Compression::ALL.map(Compression::name))
              .try_map(|name| name.parse::<Compression>()))]
    compression: Compression,
}

fn key_for(i: usize) -> String {
    format!("user-{}", i % USERS)
}

fn value_for(i: usize) -> String {
    format!(
        r#"{{"user":"{}","page":"/item/{}","seq":{i}}}"#,
        key_for(i),
        i % 97
    )
}

/// The `seq` of a value written by [`value_for`].
fn seq_of(value: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(value).ok()?;
    let start = text.find(r#""seq":"#)? + r#""seq":"#.len();
    text[start..].strip_suffix('}')?.parse().ok()
}

fn rate(count: f64, elapsed: Duration) -> f64 {
    count / elapsed.as_secs_f64().max(1e-9)
}

/// Waits for sends in order, counting the records each partition acknowledged.
fn confirm(
    pending: impl Iterator<Item = DeliveryFuture>,
    acked: &mut BTreeMap<i32, i64>,
) -> Result<(), Box<dyn Error>> {
    for future in pending {
        let meta = future.wait()?;
        *acked.entry(meta.partition).or_default() += 1;
    }
    Ok(())
}

/// Runs the example on the store in `dir`; returns every failed check (none: success).
pub(crate) fn run(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let n = args.records;
    println!(
        "streamlog quickstart: {n} records, {} compression, store in {}",
        args.compression,
        dir.display()
    );
    let store = Store::open(dir)?;
    common::check_no_topic(&store, dir, TOPIC)?;
    store.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;

    // Produce.
    let producer = store.producer(
        ProducerConfig::default()
            .acks(Acks::Leader)
            .compression(args.compression),
    )?;
    let mut acked: BTreeMap<i32, i64> = BTreeMap::new();
    let mut pending = Vec::with_capacity(n.min(MAX_PENDING));
    let mut payload_bytes = 0u64;
    let started = Instant::now();
    for i in 0..n {
        let (key, value) = (key_for(i), value_for(i));
        payload_bytes += (key.len() + value.len()) as u64;
        pending.push(producer.send(ProducerRecord::new(TOPIC).key(key).value(value))?);
        if pending.len() == MAX_PENDING {
            confirm(pending.drain(..), &mut acked)?;
        }
    }
    producer.flush()?;
    confirm(pending.drain(..), &mut acked)?;
    let produce_time = started.elapsed();
    producer.close()?;
    println!(
        "produced {n} records ({:.1} MB of keys and values) in {produce_time:.2?}: \
         {:.0} records/s, {:.1} MB/s",
        payload_bytes as f64 / 1e6,
        rate(n as f64, produce_time),
        rate(payload_bytes as f64, produce_time) / 1e6
    );

    // Consume with a group.
    let mut consumer =
        store.consumer(ConsumerConfig::new(GROUP).auto_offset_reset(OffsetReset::Earliest))?;
    consumer.subscribe([TOPIC])?;
    let mut seen: HashSet<(i32, i64)> = HashSet::with_capacity(n);
    let mut seq_seen = vec![false; n];
    let mut checks = Vec::new();
    let (mut consumed, mut duplicates, mut misplaced, mut unexpected) = (0usize, 0, 0, 0);
    let mut consumed_bytes = 0u64;
    let started = Instant::now();
    let mut last_progress = started;
    // Until N records arrived (or nothing came for IDLE_TIMEOUT), then one more short
    // poll so that any extra records would be noticed.
    loop {
        let timeout = if seen.len() >= n {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(100)
        };
        let records = consumer.poll(timeout)?;
        if records.is_empty() {
            if seen.len() >= n || last_progress.elapsed() >= IDLE_TIMEOUT {
                break;
            }
            continue;
        }
        last_progress = Instant::now();
        for r in &records {
            consumed += 1;
            let (key, value) = (r.key().unwrap_or_default(), r.value().unwrap_or_default());
            consumed_bytes += (key.len() + value.len()) as u64;
            if !seen.insert((r.partition(), r.offset())) {
                duplicates += 1;
            }
            match seq_of(value).filter(|&s| s < n && key == key_for(s).as_bytes()) {
                Some(s) if seq_seen[s] => duplicates += 1,
                Some(s) => seq_seen[s] = true,
                None => unexpected += 1,
            }
            if partition_for_key(key, PARTITIONS) != r.partition() {
                misplaced += 1;
            }
        }
    }
    // Up to the last record (not the final empty poll).
    let consume_time = last_progress.duration_since(started);
    consumer.commit_sync()?;
    println!(
        "consumed {consumed} records ({:.1} MB) with group `{GROUP}` in {consume_time:.2?}: \
         {:.0} records/s, {:.1} MB/s",
        consumed_bytes as f64 / 1e6,
        rate(consumed as f64, consume_time),
        rate(consumed_bytes as f64, consume_time) / 1e6
    );

    // Report.
    let topic = store.describe_topic(TOPIC)?;
    println!("partition  end offset  acked  size on disk");
    let mut end_offsets = BTreeMap::new();
    for p in &topic.partitions {
        end_offsets.insert(p.partition, p.log_end_offset);
        println!(
            "{:>9}  {:>10}  {:>5}  {:>9.1} MB",
            p.partition,
            p.log_end_offset,
            acked.get(&p.partition).copied().unwrap_or(0),
            p.size_bytes as f64 / 1e6
        );
    }
    let group = store.describe_group(GROUP)?;
    println!(
        "group `{}`: state {}, generation {}, assignor {}",
        group.group_id,
        group.state,
        group.generation,
        group.assignor.name()
    );
    for m in &group.members {
        let parts: Vec<String> = m.assignment.iter().map(ToString::to_string).collect();
        println!("  member {}: {}", m.member_id, parts.join(", "));
    }
    println!("  committed offsets (partition: offset / log end, lag):");
    for c in &group.offsets {
        println!(
            "    {}: {} / {}, lag {}",
            c.partition, c.offset, c.log_end_offset, c.lag
        );
    }
    consumer.close()?;

    // Checks.
    if seen.len() != n {
        checks.push(format!(
            "consumed {} distinct (partition, offset) records, expected {n}",
            seen.len()
        ));
    }
    if consumed != n {
        checks.push(format!("consumed {consumed} records in all, expected {n}"));
    }
    if duplicates > 0 {
        checks.push(format!(
            "{duplicates} records were delivered more than once"
        ));
    }
    if unexpected > 0 {
        checks.push(format!(
            "{unexpected} records had a value or key this run did not produce"
        ));
    }
    let missing = seq_seen.iter().filter(|s| !**s).count();
    if missing > 0 {
        checks.push(format!("{missing} produced records never arrived"));
    }
    if misplaced > 0 {
        checks.push(format!(
            "{misplaced} records were not on their key's murmur2 partition"
        ));
    }
    let total_end: i64 = end_offsets.values().sum();
    if total_end != n as i64 {
        checks.push(format!(
            "the partitions hold {total_end} records, expected {n}"
        ));
    }
    for (&p, &end) in &end_offsets {
        let ack = acked.get(&p).copied().unwrap_or(0);
        if ack != end {
            checks.push(format!(
                "partition {p}: {ack} sends acknowledged but the log end offset is {end}"
            ));
        }
        let committed = common::committed_offset(&group, TOPIC, p);
        if committed != Some(end) {
            checks.push(format!(
                "partition {p}: committed offset {committed:?}, expected the end offset {end}"
            ));
        }
    }
    store.close()?;
    if checks.is_empty() {
        println!("ok: every one of the {n} records arrived exactly once");
    }
    Ok(checks)
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "quickstart", Some(TOPIC), |dir| {
        run(&args, dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_usage_errors() {
        common::assert_usage_errors::<Args>(&[
            &["--records"],
            &["--records", "0"],
            &["--records", "-5"],
            &["--records", "lots"],
            &["--compression", "brotli"],
            &["--dir"],
            &["--frobnicate"],
        ]);
        let a: Args = common::parse_ok(&["--records", "7", "--compression", "zstd"]);
        assert_eq!((a.records, a.compression), (7, Compression::Zstd));
    }

    /// The example itself, as `cargo run --example quickstart` runs it (in a temp dir).
    #[test]
    fn a_default_run_passes_every_check() {
        common::assert_run_passes(&common::parse_ok::<Args>(&[]), run);
    }

    #[test]
    fn seq_round_trips_through_the_value() {
        assert_eq!(seq_of(value_for(123_456).as_bytes()), Some(123_456));
        assert_eq!(seq_of(b"{\"seq\":x}"), None);
    }
}
