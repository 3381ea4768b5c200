//! Consumer-group membership changes, printed as they happen.
//!
//! ```text
//! cargo run --example groups -- [--dir DIR] [--assignor range|roundrobin|cooperative-sticky]
//! ```
//!
//! Members join and leave a group reading a 6-partition topic: alice, bob and carol join
//! one by one, bob leaves, dave joins, carol stalls (stops polling for longer than her
//! `max_poll_interval_ms`, so the group removes her) and comes back, then everybody
//! leaves. Every member is a `Consumer` with a `RebalanceListener` that prints each set of
//! partitions it is assigned, has revoked, or lost. All members are polled from this one
//! thread (a `Consumer` is driven by its `poll`, which runs the group protocol), so the
//! output is deterministic. Between changes the example produces a few records and polls
//! every member until the group is stable and everything produced was consumed, then
//! prints every member's assignment from `Store::describe_group`.
//!
//! Without `--assignor` it runs the scenario twice, with the eager `range` assignor
//! (every rebalance revokes every partition from every member) and with
//! `cooperative-sticky` (only the partitions that move are revoked), and compares how
//! many partitions each revoked. Members commit after each poll, so each run also checks
//! that every record was consumed exactly once across all the rebalances. Exit status: 0
//! if so, 1 otherwise or on an error, 2 for bad arguments. DIR defaults to a fresh
//! directory under the system temp dir, removed after a successful run.

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use streamlog::{
    Assignor, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    RebalanceListener, Store, TopicConfig, TopicPartition,
};

#[path = "common/mod.rs"]
mod common;

const PARTITIONS: i32 = 6;
const RECORDS_PER_STEP: usize = 60;
/// carol's `max_poll_interval_ms`: how long she may go without polling.
const CAROL_MAX_POLL_INTERVAL_MS: u64 = 500;
/// A change that has not settled after this long is an error.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The assignors there are, by their names.
const ASSIGNORS: [Assignor; 3] = [
    Assignor::Range,
    Assignor::RoundRobin,
    Assignor::CooperativeSticky,
];

/// Consumer-group membership changes, printed as they happen
///
/// Members join, leave and stall, and every assignment, revocation and loss is printed.
/// Exit status: 0 if every record was consumed exactly once, 1 otherwise or on an
/// error, 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(name = "groups")]
struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Run the scenario with this assignor only [default: range, then
    /// cooperative-sticky, compared]
    #[arg(long, value_name = "ASSIGNOR",
          value_parser = PossibleValuesParser::new(ASSIGNORS.map(Assignor::name))
              .try_map(|name| assignor_named(&name)))]
    assignor: Option<Assignor>,
}

impl Args {
    /// The assignors to run the scenario with, in order.
    fn assignors(&self) -> Vec<Assignor> {
        match self.assignor {
            Some(a) => vec![a],
            None => vec![Assignor::Range, Assignor::CooperativeSticky],
        }
    }
}

fn assignor_named(name: &str) -> Result<Assignor, String> {
    ASSIGNORS
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or(format!(
            "`{name}` is not one of range, roundrobin, cooperative-sticky"
        ))
}

fn partition_list(partitions: &[TopicPartition]) -> String {
    format!("[{}]", common::partition_numbers(partitions))
}

/// Prints every callback and counts the partitions revoked or lost.
struct Printer {
    name: &'static str,
    revoked: Arc<AtomicUsize>,
}

impl RebalanceListener for Printer {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.revoked.fetch_add(partitions.len(), Ordering::Relaxed);
        println!("    {}: revoked {}", self.name, partition_list(partitions));
    }

    fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        println!("    {}: assigned {}", self.name, partition_list(partitions));
    }

    fn on_partitions_lost(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.revoked.fetch_add(partitions.len(), Ordering::Relaxed);
        println!(
            "    {}: lost {} (removed from the group; cannot commit them)",
            self.name,
            partition_list(partitions)
        );
    }
}

struct Member {
    name: &'static str,
    consumer: Consumer,
    records: usize,
    /// Polled by `settle` (false while stalled and after leaving).
    polling: bool,
}

/// One scenario run with one assignor.
struct Run<'a> {
    store: &'a Store,
    assignor: Assignor,
    topic: String,
    group: String,
    producer: Producer,
    members: Vec<Member>,
    produced: usize,
    consumed: usize,
    seen: HashSet<(i32, i64)>,
    duplicates: usize,
    revoked: Arc<AtomicUsize>,
    changes: usize,
}

impl Run<'_> {
    fn join(
        &mut self,
        name: &'static str,
        max_poll_interval_ms: u64,
    ) -> Result<(), Box<dyn Error>> {
        let mut consumer = self.store.consumer(
            ConsumerConfig::new(self.group.clone())
                .client_id(name)
                .assignor(self.assignor)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .max_poll_interval_ms(max_poll_interval_ms),
        )?;
        consumer.set_rebalance_listener(Printer {
            name,
            revoked: self.revoked.clone(),
        });
        consumer.subscribe([self.topic.as_str()])?;
        self.members.push(Member {
            name,
            consumer,
            records: 0,
            polling: true,
        });
        Ok(())
    }

    fn member(&mut self, name: &str) -> Result<&mut Member, Box<dyn Error>> {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("no member named {name}").into())
    }

    fn leave(&mut self, name: &str) -> Result<(), Box<dyn Error>> {
        let m = self.member(name)?;
        m.consumer.close()?;
        m.polling = false;
        Ok(())
    }

    /// Polls one member once (without waiting), commits what it consumed.
    fn poll(&mut self, index: usize) -> Result<(), Box<dyn Error>> {
        let m = &mut self.members[index];
        let records = m.consumer.poll(Duration::ZERO)?;
        if records.is_empty() {
            return Ok(());
        }
        m.records += records.len();
        m.consumer.commit_sync()?;
        self.consumed += records.len();
        for r in &records {
            if !self.seen.insert((r.partition(), r.offset())) {
                self.duplicates += 1;
            }
        }
        Ok(())
    }

    fn produce(&mut self, n: usize) -> Result<(), Box<dyn Error>> {
        let mut pending = Vec::with_capacity(n);
        for i in self.produced..self.produced + n {
            let record = ProducerRecord::new(self.topic.clone())
                .key(format!("order-{}", i * 7919 % 1000))
                .value(format!("order event {i}"));
            pending.push(self.producer.send(record)?);
        }
        self.producer.flush()?;
        for f in pending {
            f.wait()?;
        }
        self.produced += n;
        Ok(())
    }

    /// Polls every polling member until the group is stable and has consumed everything.
    fn settle(&mut self) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            for i in 0..self.members.len() {
                if self.members[i].polling {
                    self.poll(i)?;
                }
            }
            let stable = match self.store.describe_group(&self.group) {
                Ok(g) => g.state == "Stable" || g.state == "Empty",
                Err(streamlog::Error::NotFound { .. }) => true,
                Err(e) => return Err(e.into()),
            };
            let active = self.members.iter().any(|m| m.polling);
            if stable && (self.consumed >= self.produced || !active) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the group did not settle within {SETTLE_TIMEOUT:?} (stable: {stable}, \
                     consumed {} of {})",
                    self.consumed, self.produced
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Prints the change, lets it settle, and prints every member's assignment.
    fn step(
        &mut self,
        what: &str,
        change: impl FnOnce(&mut Self) -> Result<(), Box<dyn Error>>,
    ) -> Result<(), Box<dyn Error>> {
        self.changes += 1;
        println!("  * {what}");
        change(self)?;
        self.produce(RECORDS_PER_STEP)?;
        self.settle()?;
        self.print_group()
    }

    fn print_group(&self) -> Result<(), Box<dyn Error>> {
        let g = match self.store.describe_group(&self.group) {
            Ok(g) => g,
            Err(streamlog::Error::NotFound { .. }) => {
                println!("    group {}: no members, nothing committed", self.group);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        println!(
            "    group {}: {}, generation {}, {} member(s)",
            g.group_id,
            g.state,
            g.generation,
            g.members.len()
        );
        for m in &g.members {
            let records = self
                .members
                .iter()
                .find(|x| x.name == m.client_id)
                .map_or(0, |x| x.records);
            println!(
                "      {:<8} (member id {:<9}) owns {:<14} consumed {records} so far",
                m.client_id,
                m.member_id,
                partition_list(&m.assignment)
            );
        }
        Ok(())
    }
}

/// Runs the scenario; returns (partitions revoked or lost, failed checks).
fn scenario(store: &Store, assignor: Assignor) -> Result<(usize, Vec<String>), Box<dyn Error>> {
    let topic = format!("orders-{}", assignor.name());
    store.create_topic(&topic, TopicConfig::default().partitions(PARTITIONS))?;
    let mut run = Run {
        store,
        assignor,
        group: format!("group-{}", assignor.name()),
        topic,
        producer: store.producer(ProducerConfig::default())?,
        members: Vec::new(),
        produced: 0,
        consumed: 0,
        seen: HashSet::new(),
        duplicates: 0,
        revoked: Arc::new(AtomicUsize::new(0)),
        changes: 0,
    };
    println!(
        "\n== assignor {} (group {}, topic {} with {PARTITIONS} partitions) ==",
        assignor.name(),
        run.group,
        run.topic
    );
    let default_interval = 300_000;
    run.step("alice joins", |r| r.join("alice", default_interval))?;
    run.step("bob joins", |r| r.join("bob", default_interval))?;
    run.step("carol joins", |r| {
        r.join("carol", CAROL_MAX_POLL_INTERVAL_MS)
    })?;
    run.step("bob leaves (close)", |r| r.leave("bob"))?;
    run.step("dave joins", |r| r.join("dave", default_interval))?;
    run.step(
        &format!(
            "carol stalls: no poll for longer than her max_poll_interval_ms \
             ({CAROL_MAX_POLL_INTERVAL_MS}); the others keep polling and the group removes her"
        ),
        |r| {
            r.member("carol")?.polling = false;
            let deadline = Instant::now() + SETTLE_TIMEOUT;
            loop {
                r.settle()?;
                let g = r.store.describe_group(&r.group)?;
                if g.members.iter().all(|m| m.client_id != "carol") {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err("carol was not removed from the group".into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        },
    )?;
    run.step(
        "carol polls again: she lost her partitions and rejoins",
        |r| {
            r.member("carol")?.polling = true;
            Ok(())
        },
    )?;
    run.step("alice leaves (close)", |r| r.leave("alice"))?;
    run.changes += 1;
    println!("  * carol and dave leave (close)");
    run.leave("carol")?;
    run.leave("dave")?;
    run.print_group()?;
    run.producer.close()?;

    let revoked = run.revoked.load(Ordering::Relaxed);
    println!(
        "  {} changes, {revoked} partition revocations, consumed {} of {} records \
         ({} duplicates)",
        run.changes, run.consumed, run.produced, run.duplicates
    );
    let mut failed = Vec::new();
    if run.consumed != run.produced || run.seen.len() != run.produced {
        failed.push(format!(
            "{}: consumed {} ({} distinct) of {} records",
            assignor.name(),
            run.consumed,
            run.seen.len(),
            run.produced
        ));
    }
    if run.duplicates > 0 {
        failed.push(format!(
            "{}: {} records consumed twice",
            assignor.name(),
            run.duplicates
        ));
    }
    Ok((revoked, failed))
}

fn run(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    println!("streamlog groups: store in {}", dir.display());
    let store = Store::open(dir)?;
    let mut failed = Vec::new();
    let mut revoked = Vec::new();
    for assignor in args.assignors() {
        let (n, f) = scenario(&store, assignor)?;
        revoked.push((assignor, n));
        failed.extend(f);
    }
    store.close()?;
    println!();
    for (assignor, n) in &revoked {
        println!("{:<19} revoked {n:>3} partitions in all", assignor.name());
    }
    if failed.is_empty() {
        println!("ok: every record was consumed exactly once through every rebalance");
    }
    Ok(failed)
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "groups", None, |dir| run(&args, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example itself, as `cargo run --example groups` runs it (in a temp dir).
    #[test]
    fn a_default_run_passes_every_check() {
        common::assert_run_passes(&common::parse_ok::<Args>(&[]), run);
    }

    #[test]
    fn assignor_flag_picks_one_run() {
        let a: Args = common::parse_ok(&["--assignor", "cooperative-sticky"]);
        assert_eq!(a.assignors(), [Assignor::CooperativeSticky]);
        let a: Args = common::parse_ok(&[]);
        assert_eq!(
            a.assignors(),
            [Assignor::Range, Assignor::CooperativeSticky]
        );
        common::assert_usage_errors::<Args>(&[&["--assignor"], &["--assignor", "sticky"], &["-x"]]);
    }
}
