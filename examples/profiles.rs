//! A compacted topic used as a table: user profiles keyed by user id, updated many times
//! and sometimes deleted, compacted, then rebuilt by reading the topic from the start.
//!
//! ```text
//! cargo run --release --example profiles -- [--dir DIR] [--users N]
//! ```
//!
//! It creates the topic `profiles` (4 partitions, `cleanup_policy` compact, 64 KiB
//! segments so compaction has many sealed segments to work on) on a store with background
//! maintenance off, and produces N users' profiles with a [`Producer`]: each user gets 1 to
//! 8 versions of a JSON profile (the versions of all users interleaved, as updates arrive
//! in real life), about 10% of the users are then deleted with a tombstone (a record with
//! a key and no value), and one in ten of those signs up again afterwards. An in-memory
//! `HashMap` holds what the table must contain at the end.
//!
//! It prints the topic's size, runs one maintenance pass with
//! [`Store::run_maintenance`] and prints what it did and the size after. It then rebuilds
//! the table by reading every partition from its log start to its end offset (a
//! [`Consumer`] with `assign` and `seek_to_beginning`, no group), applying each profile as
//! an upsert and each tombstone as a delete (tombstones stay in a compacted topic for
//! `delete_retention_ms`, 1 day by default, so readers from the start see deletions), and
//! checks it equals the model. It closes the store, reopens it and rebuilds once more, to
//! check that the compacted files alone give the same table.
//!
//! Defaults: N = 10000, DIR = a fresh directory under the system temp dir, removed at the
//! end when every check passed (pass `--dir` to keep the files and look at them with
//! `cargo run -p streamlog-cli -- dump DIR/profiles-0`).
//!
//! Exit status: 0 when every check passed, 1 on an error or a failed check, 2 for bad
//! arguments.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use streamlog::{
    CleanupPolicy, Consumer, ConsumerConfig, DeliveryFuture, MaintenanceReport, Producer,
    ProducerConfig, ProducerRecord, Store, StoreConfig, TopicConfig, TopicPartition,
};

#[path = "common/mod.rs"]
mod common;

const TOPIC: &str = "profiles";
const PARTITIONS: i32 = 4;
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Most versions of one profile.
const MAX_VERSIONS: u32 = 8;
/// The rebuild gives up when no record arrives for this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A compacted topic used as a table, rebuilt from the topic and checked against a model
///
/// A compacted topic used as a table: N users' profiles, updated and sometimes deleted,
/// compacted, then rebuilt by reading the topic from the start and checked against a
/// model. Exit status: 0 when every check passed, 1 on an error or a failed check, 2 for
/// bad arguments.
#[derive(Debug, Parser)]
#[command(name = "profiles")]
struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many users' profiles to write
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = common::at_least_one)]
    users: usize,
}

/// A fixed pseudo-random number for user `u` and purpose `salt` (splitmix64), so every
/// run produces the same workload.
fn mix(u: usize, salt: u64) -> u64 {
    let mut z = (u as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What happens to one user.
struct Plan {
    /// Profile versions written (1 to MAX_VERSIONS).
    versions: u32,
    /// Deleted (with a tombstone) after the last version.
    deleted: bool,
    /// Signs up again (a new profile) after the deletion.
    returns: bool,
}

fn plan(u: usize) -> Plan {
    let versions = 1 + (mix(u, 1) % u64::from(MAX_VERSIONS)) as u32;
    let deleted = mix(u, 2).is_multiple_of(10);
    Plan {
        versions,
        deleted,
        returns: deleted && mix(u, 3).is_multiple_of(10),
    }
}

fn key_for(u: usize) -> String {
    format!("user-{u:07}")
}

const CITIES: [&str; 6] = ["Lisbon", "Osaka", "Nairobi", "Lima", "Oslo", "Perth"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

fn profile(u: usize, version: u32) -> String {
    let r = mix(u, 100 + u64::from(version));
    format!(
        r#"{{"id":"{}","name":"User {u}","email":"user{u}@example.com","city":"{}","plan":"{}","version":{version},"bio":"{}"}}"#,
        key_for(u),
        CITIES[(r % 6) as usize],
        PLANS[(r / 6 % 3) as usize],
        "x".repeat((r / 18 % 64) as usize),
    )
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Bytes and segments of the topic, over all partitions.
fn topic_size(store: &Store) -> Result<(u64, usize), Box<dyn Error>> {
    let t = store.describe_topic(TOPIC)?;
    Ok((
        t.partitions.iter().map(|p| p.size_bytes).sum(),
        t.partitions.iter().map(|p| p.segment_count).sum(),
    ))
}

/// Sends a record, keeping its delivery future.
fn send(
    producer: &Producer,
    record: ProducerRecord,
    pending: &mut Vec<DeliveryFuture>,
) -> Result<(), Box<dyn Error>> {
    pending.push(producer.send(record)?);
    Ok(())
}

/// The records produced, and the table they leave.
struct Produced {
    records: usize,
    tombstones: usize,
    payload_bytes: u64,
    model: HashMap<String, String>,
}

/// Produces every user's profile versions, interleaved by round, with the deletions and
/// returns at their place in the user's history.
fn produce(store: &Store, users: usize) -> Result<Produced, Box<dyn Error>> {
    let producer = store.producer(ProducerConfig::default())?;
    let plans: Vec<Plan> = (0..users).map(plan).collect();
    let mut model = HashMap::with_capacity(users);
    let mut pending = Vec::new();
    let (mut records, mut tombstones, mut payload_bytes) = (0, 0, 0u64);
    // Round v writes version v of every user that has one; a deleted user's tombstone
    // follows its last version, and a returning user's new profile the round after.
    for round in 0..MAX_VERSIONS + 2 {
        for (u, p) in plans.iter().enumerate() {
            let key = key_for(u);
            let value = if round < p.versions {
                Some(profile(u, round))
            } else if round == p.versions && p.deleted {
                None
            } else if round == p.versions + 1 && p.returns {
                Some(profile(u, round))
            } else {
                continue;
            };
            let record = ProducerRecord::new(TOPIC).key(key.clone());
            records += 1;
            payload_bytes += key.len() as u64;
            match value {
                Some(v) => {
                    payload_bytes += v.len() as u64;
                    model.insert(key, v.clone());
                    send(&producer, record.value(v), &mut pending)?;
                }
                None => {
                    tombstones += 1;
                    model.remove(&key);
                    send(&producer, record, &mut pending)?;
                }
            }
        }
    }
    producer.flush()?;
    for f in pending {
        f.wait()?;
    }
    producer.close()?;
    Ok(Produced {
        records,
        tombstones,
        payload_bytes,
        model,
    })
}

/// What a rebuild read.
struct Rebuilt {
    table: HashMap<String, String>,
    records: usize,
    tombstones: usize,
    elapsed: Duration,
}

/// Reads every partition from its log start to its end offset into a table: a profile
/// is an upsert, a tombstone a delete.
fn rebuild(store: &Store) -> Result<Rebuilt, Box<dyn Error>> {
    let started = Instant::now();
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    // No group: `assign` reads exactly these partitions and commits nothing.
    let mut consumer: Consumer = store.consumer(ConsumerConfig::default())?;
    consumer.assign(&tps)?;
    consumer.seek_to_beginning(&[])?;
    let ends = consumer.end_offsets(&tps)?;
    let mut table = HashMap::new();
    let (mut records, mut tombstones) = (0, 0);
    let mut last_progress = Instant::now();
    loop {
        let mut caught_up = true;
        for tp in &tps {
            caught_up &= consumer.position(tp)? >= ends[tp];
        }
        if caught_up {
            break;
        }
        let batch = consumer.poll(Duration::from_millis(100))?;
        if batch.is_empty() {
            if last_progress.elapsed() >= IDLE_TIMEOUT {
                return Err(format!(
                    "the rebuild stalled: no record for {IDLE_TIMEOUT:?} before the end offsets"
                )
                .into());
            }
            continue;
        }
        last_progress = Instant::now();
        for r in batch {
            records += 1;
            let key = r.key().ok_or("a record without a key")?;
            let key = String::from_utf8(key.to_vec())?;
            match r.value() {
                Some(v) => {
                    table.insert(key, String::from_utf8(v.to_vec())?);
                }
                None => {
                    tombstones += 1;
                    table.remove(&key);
                }
            }
        }
    }
    consumer.close()?;
    Ok(Rebuilt {
        table,
        records,
        tombstones,
        elapsed: started.elapsed(),
    })
}

/// Differences between the rebuilt table and the model, as failed checks.
fn compare(
    when: &str,
    rebuilt: &HashMap<String, String>,
    model: &HashMap<String, String>,
) -> Vec<String> {
    let mut checks = Vec::new();
    let missing = model.keys().filter(|k| !rebuilt.contains_key(*k)).count();
    let extra = rebuilt.keys().filter(|k| !model.contains_key(*k)).count();
    let wrong = model
        .iter()
        .filter(|(k, v)| rebuilt.get(*k).is_some_and(|r| r != *v))
        .count();
    if missing + extra + wrong > 0 {
        let mut example: Vec<&String> = model
            .iter()
            .filter(|(k, v)| rebuilt.get(*k) != Some(v))
            .map(|(k, _)| k)
            .chain(rebuilt.keys().filter(|k| !model.contains_key(*k)))
            .collect();
        example.sort();
        checks.push(format!(
            "{when}: the rebuilt table differs from the model: {missing} users missing, \
             {extra} users that should be deleted, {wrong} stale profiles (first: {:?})",
            example.first()
        ));
    }
    checks
}

fn print_report(r: &MaintenanceReport) {
    println!(
        "maintenance: {} partitions checked, {} compacted: read {:.2} MB, saved {:.2} MB, \
         removed {} records; retention deleted {} segments ({:.2} MB); {} errors",
        r.partitions_checked,
        r.partitions_compacted,
        mb(r.bytes_compacted),
        mb(r.bytes_saved_by_compaction),
        r.records_removed,
        r.segments_deleted,
        mb(r.bytes_reclaimed),
        r.errors.len()
    );
    for (tp, e) in &r.errors {
        println!("  {tp}: {e}");
    }
}

fn print_rebuild(when: &str, r: &Rebuilt) {
    println!(
        "rebuilt the table {when}: read {} records ({} tombstones) in {:.2?}: {} users",
        r.records,
        r.tombstones,
        r.elapsed,
        r.table.len()
    );
}

/// Runs the example on the store in `dir`; returns every failed check (none: success).
fn run(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    println!(
        "streamlog profiles: {} users, store in {}",
        args.users,
        dir.display()
    );
    let config = || StoreConfig::default().background_maintenance(false);
    let store = Store::open_with(dir, config())?;
    common::check_no_topic(&store, dir, TOPIC)?;
    store.create_topic(
        TOPIC,
        TopicConfig::default()
            .partitions(PARTITIONS)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(SEGMENT_BYTES)
            // Kafka's default 0.5; everything produced here is dirty (ratio 1.0).
            .min_cleanable_dirty_ratio(0.5),
    )?;

    let started = Instant::now();
    let produced = produce(&store, args.users)?;
    let deleted = (0..args.users).filter(|&u| plan(u).deleted).count();
    let returned = (0..args.users).filter(|&u| plan(u).returns).count();
    println!(
        "produced {} records ({} profile versions, {} tombstones; {:.2} MB of keys and values) \
         in {:.2?}: {deleted} users deleted, {returned} of them signed up again",
        produced.records,
        produced.records - produced.tombstones,
        produced.tombstones,
        mb(produced.payload_bytes),
        started.elapsed()
    );
    let mut checks = Vec::new();
    let (before, segments_before) = topic_size(&store)?;
    println!(
        "topic size before compaction: {:.2} MB in {segments_before} segments",
        mb(before)
    );

    let started = Instant::now();
    let report = store.run_maintenance()?;
    let maintenance_time = started.elapsed();
    print_report(&report);
    let (after, segments_after) = topic_size(&store)?;
    println!(
        "topic size after compaction:  {:.2} MB in {segments_after} segments ({:.1}% of before; \
         pass took {maintenance_time:.2?})",
        mb(after),
        100.0 * after as f64 / before.max(1) as f64
    );
    if !report.errors.is_empty() {
        checks.push(format!(
            "maintenance failed in {} partitions",
            report.errors.len()
        ));
    }
    if report.partitions_compacted == 0 || after >= before {
        checks.push(format!(
            "compaction did not shrink the topic ({} partitions compacted, {before} -> {after} bytes)",
            report.partitions_compacted
        ));
    }

    let rebuilt = rebuild(&store)?;
    print_rebuild("after compaction", &rebuilt);
    if rebuilt.records >= produced.records {
        checks.push(format!(
            "the rebuild read {} records, not fewer than the {} produced",
            rebuilt.records, produced.records
        ));
    }
    let differences = compare("after compaction", &rebuilt.table, &produced.model);
    if differences.is_empty() {
        println!("rebuilt state matches: {} users", rebuilt.table.len());
    }
    checks.extend(differences);
    store.close()?;

    // The compacted files alone, after a clean reopen.
    let store = Store::open_with(dir, config())?;
    let reopened = rebuild(&store)?;
    print_rebuild("after reopening the store", &reopened);
    let differences = compare("after reopening", &reopened.table, &produced.model);
    if differences.is_empty() {
        println!(
            "rebuilt state after reopening matches: {} users",
            reopened.table.len()
        );
    }
    checks.extend(differences);
    store.close()?;
    if checks.is_empty() {
        println!(
            "ok: the compacted topic rebuilds the table of {} users",
            produced.model.len()
        );
    }
    Ok(checks)
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "profiles", Some(TOPIC), |dir| {
        run(&args, dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_usage_errors() {
        common::assert_usage_errors::<Args>(&[
            &["--users"],
            &["--users", "0"],
            &["--users", "-5"],
            &["--users", "many"],
            &["--dir"],
            &["--frobnicate"],
        ]);
        let a: Args = common::parse_ok(&["--users", "7", "--dir", "x"]);
        assert_eq!((a.users, a.dir), (7, Some(PathBuf::from("x"))));
    }

    #[test]
    fn about_a_tenth_of_users_are_deleted() {
        let deleted = (0..10_000).filter(|&u| plan(u).deleted).count();
        assert!((800..1200).contains(&deleted), "{deleted}");
        assert!((0..10_000).all(|u| (1..=MAX_VERSIONS).contains(&plan(u).versions)));
    }

    #[test]
    fn compare_reports_every_kind_of_difference() {
        let table = |rows: &[(&str, &str)]| -> HashMap<String, String> {
            rows.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let model = table(&[("a", "1"), ("b", "2")]);
        assert!(compare("t", &model.clone(), &model).is_empty());
        for rebuilt in [
            table(&[("a", "1")]),
            table(&[("a", "1"), ("b", "2"), ("c", "3")]),
            table(&[("a", "1"), ("b", "old")]),
        ] {
            assert_eq!(compare("t", &rebuilt, &model).len(), 1, "{rebuilt:?}");
        }
    }

    /// The example itself, as `cargo run --example profiles` runs it (in a temp dir).
    #[test]
    fn a_default_run_passes_every_check() {
        let args: Args = common::parse_ok(&[]);
        assert_eq!((args.users, &args.dir), (10_000, &None));
        common::assert_run_passes(&args, run);
    }
}
