//! Helpers shared by the scenario tests: topics, input, reading outputs back, the seeds'
//! topology and the models the results are checked against.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use streamlog::{
    ConsumerConfig, IsolationLevel, OffsetReset, Record, Store, TopicConfig, TopicPartition,
};
use streamlog_streams::{
    Consumed, Materialized, Produced, StreamsBuilder, TimeWindows, Topology, Window, serdes,
};

/// Generous bound for waits on a background condition; never reached by a passing run.
pub const CATCH_UP: Duration = Duration::from_secs(120);

/// A window store retention that keeps every window a test makes.
pub const DAY: Duration = Duration::from_secs(86_400);

/// An input record: key, timestamp, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub key: String,
    pub ts: i64,
    pub value: String,
}

/// Keys are placed in partitions by their number (`user-<n>` -> n % partitions), as a
/// keyed producer would keep each key in one partition.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let n: i32 = key
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    n % partitions
}

pub fn create_topics(store: &Store, topics: &[(&str, i32)]) {
    for (t, n) in topics {
        store
            .create_topic(t, TopicConfig::default().partitions(*n))
            .unwrap();
    }
}

/// Appends `events` to `topic`, each in its key's partition.
pub fn produce(store: &Store, topic: &str, events: &[Event]) {
    let t = store.topic(topic).unwrap();
    let n = t.partition_count();
    for e in events {
        t.partition(partition_of(&e.key, n))
            .unwrap()
            .append(&[Record::new(
                e.ts,
                Some(e.key.clone()),
                Some(e.value.clone()),
            )])
            .unwrap();
    }
}

/// Every record of `topic` (key, value bytes) in partition and offset order.
pub fn read_all(store: &Store, topic: &str, isolation: IsolationLevel) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = store.topic(topic).unwrap().partition_count();
    let mut reader = store
        .consumer(
            ConsumerConfig::default()
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )
        .unwrap();
    let mut out = Vec::new();
    for p in 0..n {
        let tp = TopicPartition::new(topic, p);
        reader.assign(std::slice::from_ref(&tp)).unwrap();
        let end = reader.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp];
        while reader.position(&tp).unwrap() < end {
            let recs = reader.poll(Duration::ZERO).unwrap();
            for r in recs.iter() {
                out.push((
                    r.key().unwrap_or_default().to_vec(),
                    r.value().unwrap_or_default().to_vec(),
                ));
            }
            if recs.is_empty() && reader.position(&tp).unwrap() < end {
                // Only markers were left before `end`.
                let _ = reader.poll(Duration::ZERO).unwrap();
                break;
            }
        }
    }
    out
}

pub const WINDOW_MS: i64 = 300_000;

/// The seeds' topology: purchases of `raw-events`, enriched, counted per key in 5-minute
/// windows (store `purchase-counts-store`), written to `purchase-counts`. `peek` sees
/// every purchase before it is counted (the kill test dies there).
pub fn seeds_topology(
    windows: TimeWindows,
    peek: impl Fn(&String, &String) + Send + Sync + 'static,
) -> Topology {
    let builder = StreamsBuilder::new();
    seeds_into(&builder, windows, peek);
    builder.build().unwrap()
}

/// Adds the seeds' topology to `builder`; returns its source stream.
pub fn seeds_into(
    builder: &StreamsBuilder,
    windows: TimeWindows,
    peek: impl Fn(&String, &String) + Send + Sync + 'static,
) -> streamlog_streams::KStream<String, String> {
    let source = builder.stream(
        "raw-events",
        Consumed::with(serdes::string(), serdes::string()),
    );
    source
        .filter(|_, v| v.starts_with("purchase"))
        .map_values(|v| format!("enriched:{v}"))
        .peek(peek)
        .group_by_key()
        .windowed_by(windows)
        // Kept past closing: the tests compare every window with a model.
        .count(Materialized::named("purchase-counts-store").with_retention(DAY))
        .to_stream()
        .to(
            "purchase-counts",
            Produced::with(
                serdes::windowed(serdes::string(), windows.size_ms()),
                serdes::i64(),
            ),
        );
    source
}

/// Windowed counts of the records `pass` keeps, per key and window start, as the
/// topology computes them: per input partition in offset order, a stream time (largest
/// timestamp seen), and a record dropped from each window already closed. Also returns
/// the number of dropped record-window pairs.
pub fn window_model(
    events: &[Event],
    partitions: i32,
    windows: TimeWindows,
    pass: impl Fn(&Event) -> bool,
) -> (BTreeMap<(String, i64), i64>, u64) {
    let mut counts = BTreeMap::new();
    let mut dropped = 0;
    for p in 0..partitions {
        let mut stream_time = i64::MIN;
        for e in events
            .iter()
            .filter(|e| partition_of(&e.key, partitions) == p && pass(e))
        {
            stream_time = stream_time.max(e.ts);
            for w in windows.windows_for(e.ts) {
                if stream_time >= w.end + windows.grace_ms() {
                    dropped += 1;
                } else {
                    *counts.entry((e.key.clone(), w.start)).or_insert(0) += 1;
                }
            }
        }
    }
    (counts, dropped)
}

/// Decodes the windowed-count output: per (key, window start), the counts in the order
/// they were written.
pub fn count_updates(records: &[(Vec<u8>, Vec<u8>)]) -> BTreeMap<(String, i64), Vec<i64>> {
    let ks = serdes::windowed(serdes::string(), WINDOW_MS);
    let vs = serdes::i64();
    let mut out: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for (k, v) in records {
        let wk = ks.deserialize(k).unwrap();
        out.entry((wk.key, wk.window.start))
            .or_default()
            .push(vs.deserialize(v).unwrap());
    }
    out
}

/// Checks that each window's updates are exactly 1, 2, .., n with n its model count:
/// every record counted once, none twice, none missing.
pub fn assert_exact_updates(
    updates: &BTreeMap<(String, i64), Vec<i64>>,
    model: &BTreeMap<(String, i64), i64>,
) {
    let finals: BTreeMap<(String, i64), i64> = updates
        .iter()
        .map(|(k, v)| (k.clone(), v.last().copied().unwrap_or(0)))
        .collect();
    assert_eq!(&finals, model, "final counts differ from the model");
    for (k, v) in updates {
        let expected: Vec<i64> = (1..=v.len() as i64).collect();
        assert_eq!(v, &expected, "the updates of {k:?} are not 1..=n");
    }
}

/// A window's start for a window store entry.
pub fn start(w: &Window) -> i64 {
    w.start
}

/// Starts `topology` on `store` and waits until it has processed every input record.
pub fn run_caught_up(
    store: &Store,
    topology: Topology,
    config: streamlog_streams::StreamsConfig,
) -> streamlog_streams::Streams {
    let streams = streamlog_streams::Streams::new(topology, config, store).unwrap();
    streams.start().unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    streams
}

/// `topic`'s records decoded as UTF-8 key and value, sorted.
pub fn read_strings(store: &Store, topic: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = read_all(store, topic, IsolationLevel::ReadCommitted)
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect();
    v.sort();
    v
}

pub fn ev(key: &str, ts: i64, value: &str) -> Event {
    Event {
        key: key.into(),
        ts,
        value: value.into(),
    }
}
