//! An async service on tokio: a producer task, a consumer group of tasks, and a graceful
//! shutdown.
//!
//! ```text
//! cargo run --example async_service -- [--dir DIR] [--records N] [--consumers N]
//! ```
//!
//! A producer task sends N orders with `Producer::send_async` (which waits for
//! `buffer_memory` by yielding, and leaves appends and fsyncs to the producer's own
//! thread, so it never blocks the executor), awaiting each `DeliveryFuture`, to a
//! 3-partition topic while a consumer group of tasks reads them with `Consumer::recv`
//! (a future woken by the store's appends: no thread per consumer, no polling loop).
//! Each consumer `select!`s between its next records and the shutdown signal; `recv` is
//! cancellation-safe, so the branch not taken loses nothing. Once every order was
//! consumed, main signals shutdown; each consumer commits and leaves its group, and the
//! store closes. The run checks that every order was consumed exactly once and that the
//! group's committed offsets reach every partition's end. Exit status: 0 if so, 1
//! otherwise or on an error, 2 for bad arguments. DIR defaults to a fresh directory
//! under the system temp dir, removed after a successful run.

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use streamlog::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig};
use tokio::sync::{Mutex, watch};

#[path = "common/mod.rs"]
mod common;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// An async service on tokio: a producer task, a consumer group of tasks, and a
/// graceful shutdown
///
/// Exit status: 0 if every order was consumed exactly once and committed, 1 otherwise
/// or on an error, 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(name = "async_service")]
struct Args {
    /// The store's directory [default: a fresh directory under the system temp dir,
    /// removed after a successful run]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Orders to send
    #[arg(long, default_value = "300", value_parser = common::at_least_one)]
    records: usize,
    /// Consumer tasks in the group
    #[arg(long, default_value = "3", value_parser = common::at_least_one)]
    consumers: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::run_in_dir(args.dir.clone(), "async_service", Some(TOPIC), |dir| {
        run(&args, dir)
    })
}

/// The service, on a tokio runtime of its own; returns the checks that failed.
fn run(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(service(args, dir))
}

async fn service(args: &Args, dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let store = Store::open(dir)?;
    common::check_no_topic(&store, dir, TOPIC)?;
    store.create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))?;

    // Consumers first, so they are waiting when the orders arrive.
    let (shutdown, stop) = watch::channel(false);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (progress, mut consumed) = watch::channel(0usize);
    let progress = Arc::new(progress);
    let mut consumers = Vec::new();
    for n in 0..args.consumers {
        let mut consumer = store.consumer(
            ConsumerConfig::new("billing")
                .client_id(format!("billing-{n}"))
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )?;
        consumer.subscribe([TOPIC])?;
        let (mut stop, seen, progress) = (stop.clone(), seen.clone(), progress.clone());
        consumers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    records = consumer.recv() => {
                        let records = records?;
                        let mut seen = seen.lock().await;
                        for r in records.iter() {
                            seen.push(String::from_utf8_lossy(r.value().unwrap_or_default()).into_owned());
                        }
                        progress.send_replace(seen.len());
                        drop(seen);
                        // An fsync: off the async worker for its duration.
                        tokio::task::block_in_place(|| consumer.commit_sync())?;
                    }
                    _ = stop.changed() => break,
                }
            }
            tokio::task::block_in_place(|| consumer.close())?;
            Ok::<(), streamlog::Error>(())
        }));
    }

    let producer = store.producer(ProducerConfig::default())?;
    let orders = args.records;
    let sender = tokio::spawn(async move {
        for i in 0..orders {
            let record = ProducerRecord::new(TOPIC)
                .key(format!("customer-{}", i % 17))
                .value(format!("order-{i}"));
            producer.send_async(record).await?.await?;
        }
        producer.close()
    });
    sender.await??;
    consumed.wait_for(|&n| n >= orders).await?;
    shutdown.send(true)?;
    for c in consumers {
        c.await??;
    }

    let mut failed = Vec::new();
    let seen = seen.lock().await;
    let distinct: HashSet<&String> = seen.iter().collect();
    println!(
        "{} orders sent, {} consumed by {} consumer tasks ({} distinct)",
        orders,
        seen.len(),
        args.consumers,
        distinct.len()
    );
    if seen.len() != orders || distinct.len() != orders {
        failed.push(format!(
            "{} consumed, {} distinct, of {orders} orders",
            seen.len(),
            distinct.len()
        ));
    }
    let group = store.describe_group("billing")?;
    for o in &group.offsets {
        println!("committed {}: {} (lag {})", o.partition, o.offset, o.lag);
        if o.lag != 0 {
            failed.push(format!("{} committed with lag {}", o.partition, o.lag));
        }
    }
    if group.offsets.len() != PARTITIONS as usize {
        failed.push(format!("{} partitions committed", group.offsets.len()));
    }
    store.close()?;
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example itself, as `cargo run --example async_service` runs it (in a temp dir).
    #[test]
    fn a_default_run_passes_every_check() {
        common::assert_run_passes(&common::parse_ok::<Args>(&[]), run);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        common::assert_usage_errors::<Args>(&[&["--records", "0"], &["--consumers", "x"]]);
    }
}
