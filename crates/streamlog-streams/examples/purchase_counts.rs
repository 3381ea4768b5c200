//! The seeds' topology: purchases from `raw-events`, enriched, counted per user in
//! 5-minute windows, written to `purchase-counts` with exactly-once processing; then
//! the counts are read back (read_committed) and printed.
//!
//! `cargo run -p streamlog-streams --example purchase_counts [DIR]` (a temporary
//! directory by default).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::time::Duration;

use streamlog::{
    ConsumerConfig, IsolationLevel, OffsetReset, Record, Store, TopicConfig, TopicPartition,
};
use streamlog_streams::{
    Consumed, Materialized, ProcessingGuarantee, Produced, Streams, StreamsBuilder, StreamsConfig,
    TimeWindows, serdes,
};

const PARTITIONS: i32 = 3;
const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// Event `i`: a user, a timestamp (an event every 20 s) and `purchase:<item>` or
/// `view:<page>`.
fn event(i: i64) -> (String, i64, String) {
    let user = format!("user-{}", i % 5);
    let value = if i % 3 == 0 {
        format!("view:page-{i}")
    } else {
        format!("purchase:item-{}", i % 7)
    };
    (user, 1_700_000_000_000 + i * 20_000, value)
}

fn run(dir: &Path, events: i64) -> Result<Vec<String>, Box<dyn Error>> {
    let store = Store::open(dir)?;
    let config = TopicConfig::default().partitions(PARTITIONS);
    store.create_topic("raw-events", config.clone())?;
    store.create_topic("purchase-counts", config)?;
    let topic = store.topic("raw-events")?;
    for i in 0..events {
        let (user, ts, value) = event(i);
        let p = (i % 5) as i32 % PARTITIONS; // each user in one partition, as by key
        topic
            .partition(p)?
            .append(&[Record::new(ts, Some(user), Some(value))])?;
    }

    // stream("raw-events").filter(..).mapValues(..).groupByKey()
    //   .windowedBy(TimeWindows.ofSizeWithNoGrace(5 min)).count().toStream().to("purchase-counts")
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "raw-events",
            Consumed::with(serdes::string(), serdes::string()),
        )
        .filter(|_user, event| event.starts_with("purchase:"))
        .map_values(|event| format!("{event};enriched"))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(FIVE_MINUTES))
        .count(Materialized::named("purchase-counts-store"))
        .to_stream()
        .to(
            "purchase-counts",
            Produced::with(serdes::windowed(serdes::string(), 300_000), serdes::i64()),
        );
    let config = StreamsConfig::new("purchase-counts-app")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    let streams = Streams::new(builder.build()?, config, &store)?;
    streams.start()?;
    streams.wait_until_caught_up(Duration::from_secs(120))?;
    streams.close()?;

    // The latest count of each user's windows, as a consumer of the output sees them.
    let keys = serdes::windowed(serdes::string(), 300_000);
    let mut reader = store.consumer(
        ConsumerConfig::default()
            .auto_offset_reset(OffsetReset::Earliest)
            .isolation_level(IsolationLevel::ReadCommitted),
    )?;
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("purchase-counts", p))
        .collect();
    reader.assign(&all)?;
    let mut latest = BTreeMap::new();
    loop {
        let records = reader.poll(Duration::ZERO)?;
        if records.is_empty() {
            break;
        }
        for r in records.iter() {
            let key = keys.deserialize(r.key().unwrap_or_default())?;
            let count = serdes::i64().deserialize(r.value().unwrap_or_default())?;
            latest.insert((key.key, key.window.start), count);
        }
    }
    for ((user, start), count) in &latest {
        println!("{user} window starting {start}: {count} purchases");
    }

    let mut expected = BTreeMap::new();
    for i in 0..events {
        let (user, ts, value) = event(i);
        if value.starts_with("purchase:") {
            *expected.entry((user, ts - ts % 300_000)).or_insert(0i64) += 1;
        }
    }
    let mut failed = Vec::new();
    if latest != expected {
        failed.push("the counts differ from those computed from the input".to_string());
    } else {
        println!(
            "{} windows, every count equal to the input's ({} events)",
            latest.len(),
            events
        );
    }
    store.close()?;
    Ok(failed)
}

fn main() -> Result<(), Box<dyn Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let failed = run(&dir, 300)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_default_run_counts_every_purchase() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::run(dir.path(), 300).unwrap(), Vec::<String>::new());
    }
}
