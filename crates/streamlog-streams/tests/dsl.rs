//! The DSL's operators end to end (issue 17, item 1): stateless operators, branch,
//! split and merge, grouping after a key change through a repartition topic, group_by,
//! reduce and aggregate, serdes.

mod common;

use common::*;
use streamlog::{CleanupPolicy, Store, TopicConfig};
use streamlog_streams::{
    Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig, Topology, serdes,
};

fn input(store: &Store) {
    create_topics(
        store,
        &[("in", 2), ("out", 2), ("a", 2), ("b", 2), ("rest", 2)],
    );
    produce(
        store,
        "in",
        &[
            ev("user-0", 1, "red apple"),
            ev("user-1", 2, "green pear"),
            ev("user-2", 3, "red cherry"),
            ev("user-3", 4, "blue"),
            ev("user-0", 5, "green apple"),
        ],
    );
}

fn strings() -> Consumed<String, String> {
    Consumed::with(serdes::string(), serdes::string())
}

#[test]
fn stateless_operators_transform_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    input(&store);
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .filter(|_, v| v.contains(' '))
        .filter_not(|k, _| k == "user-2")
        .flat_map_values(|v| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .map_values(|w| w.to_uppercase())
        .to("out", Produced::with(serdes::string(), serdes::string()));
    let s = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("stateless"));
    s.close().unwrap();
    let got = read_strings(&store, "out");
    let want: Vec<(String, String)> = [
        ("user-0", "APPLE"),
        ("user-0", "APPLE"),
        ("user-0", "GREEN"),
        ("user-0", "RED"),
        ("user-1", "GREEN"),
        ("user-1", "PEAR"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(s.metrics().processed, 5);
}

#[test]
fn branch_split_and_merge_route_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    input(&store);
    let b = StreamsBuilder::new();
    let s = b.stream("in", strings());
    let branches = s.branch(vec![
        Box::new(|_, v: &String| v.starts_with("red")),
        Box::new(|_, v: &String| v.starts_with("green")),
    ]);
    branches[0].to("a", Produced::default());
    branches[1].to("b", Produced::default());
    let (blue, _not_blue) = s.split(|_, v| v == "blue");
    blue.merge(&branches[0]).to("rest", Produced::default());
    let streams = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("branches"));
    streams.close().unwrap();
    let values = |t| -> Vec<String> { read_strings(&store, t).into_iter().map(|x| x.1).collect() };
    assert_eq!(values("a"), ["red apple", "red cherry"]);
    assert_eq!(values("b"), ["green apple", "green pear"]);
    let mut rest = values("rest");
    rest.sort();
    assert_eq!(rest, ["blue", "red apple", "red cherry"]);
}

/// Counting by color re-keys the records: they go through
/// `<app>-by-color-repartition`, so each color is counted in one task even though its
/// records came from both input partitions.
#[test]
fn grouping_after_a_key_change_repartitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    input(&store);
    let b = StreamsBuilder::new();
    let colors = b
        .stream("in", strings())
        .map(|_, v| (v.split(' ').next().unwrap_or("").to_string(), v.clone()))
        .group_by_key_with(Grouped::with(serdes::string(), serdes::string()).named("by-color"));
    colors
        .count(Materialized::named("color-counts"))
        .to_stream()
        .to("out", Produced::with(serdes::string(), serdes::i64()));
    b.stream("a", strings())
        .group_by(
            |_, v| v.len() as i64,
            Grouped::with(serdes::i64(), serdes::string()),
        )
        .aggregate(
            String::new,
            |_, v, acc| format!("{acc}{v};"),
            Materialized::named("by-length").with_value_serde(serdes::string()),
        );
    let topology = b.build().unwrap();
    assert!(
        topology
            .describe()
            .contains("repartition by-color-repartition")
    );
    let s = run_caught_up(&store, topology, StreamsConfig::new("recount").threads(2));
    assert!(store.topic("recount-by-color-repartition").is_ok());
    let counts = s.key_value_store::<String, i64>("color-counts").unwrap();
    let mut all = counts.all().unwrap();
    all.sort();
    assert_eq!(
        all,
        [("blue".into(), 1), ("green".into(), 2), ("red".into(), 2)]
    );
    assert_eq!(counts.get(&"red".to_string()).unwrap(), Some(2));
    assert_eq!(counts.get(&"purple".to_string()).unwrap(), None);
    s.close().unwrap();
    // The output holds each update once: red 1, red 2, ...
    let out = read_all(&store, "out", streamlog::IsolationLevel::ReadCommitted);
    let mut reds: Vec<i64> = out
        .iter()
        .filter(|(k, _)| k == b"red")
        .map(|(_, v)| serdes::i64().deserialize(v).unwrap())
        .collect();
    reds.sort();
    assert_eq!(reds, [1, 2]);
}

/// A repartition topic keeps its records until the threads purge them below their
/// commits (Kafka Streams' repartition topics have no retention). It had the default
/// seven days of time retention, and its records carry their inputs' times: those of
/// replayed or backfilled inputs (these are from 1970) could be deleted before the
/// sub-topology reading them got to them, which then skipped them.
#[test]
fn repartition_topics_keep_records_until_processed_then_purge_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    input(&store);
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .map(|_, v| (v.split(' ').next().unwrap_or("").to_string(), v.clone()))
        .group_by_key_with(Grouped::with(serdes::string(), serdes::string()).named("by-color"))
        .count(Materialized::named("color-counts"));
    let config = StreamsConfig::new("purged").repartition_purge_interval_ms(0);
    let s = run_caught_up(&store, b.build().unwrap(), config);
    s.close().unwrap();
    let topic = store.topic("purged-by-color-repartition").unwrap();
    let settings = topic.config().settings();
    assert_eq!((settings.retention_ms, settings.retention_bytes), (-1, -1));
    let mut written = 0;
    for p in 0..topic.partition_count() {
        let p = topic.partition(p).unwrap();
        written += p.log_end_offset();
        assert_eq!(
            p.log_start_offset(),
            p.log_end_offset(),
            "purged once processed"
        );
    }
    assert_eq!(written, 5, "every input record went through it");
}

#[test]
fn reduce_keeps_the_combined_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    input(&store);
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .group_by_key()
        .reduce(|a, v| format!("{a}+{v}"), Materialized::named("joined"));
    let s = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("reduce"));
    let joined = s.key_value_store::<String, String>("joined").unwrap();
    assert_eq!(
        joined.get(&"user-0".to_string()).unwrap().as_deref(),
        Some("red apple+green apple")
    );
    assert_eq!(joined.approximate_num_entries().unwrap(), 4);
    s.close().unwrap();
}

/// Counts of `s` per key in tumbling windows of `size` (store `w`), written to `topic`.
fn windowed_counts_to(
    s: &streamlog_streams::KStream<String, String>,
    size: std::time::Duration,
    topic: &str,
) {
    let windows = streamlog_streams::TimeWindows::of_size_with_no_grace(size);
    s.group_by_key()
        .windowed_by(windows)
        .count(Materialized::named("w"))
        .to_stream()
        .to(
            topic,
            Produced::with(
                serdes::windowed(serdes::string(), windows.size_ms()),
                serdes::i64(),
            ),
        );
}

/// `(value, timestamp)` of every record of partition 0 of `topic`.
fn values_and_times(store: &Store, topic: &str) -> Vec<(i64, i64)> {
    let p = store.topic(topic).unwrap().partition(0).unwrap();
    p.read(0, 1 << 20)
        .unwrap()
        .iter()
        .map(|r| {
            let v = r.value.as_deref().unwrap();
            (i64::from_be_bytes(v.try_into().unwrap()), r.timestamp)
        })
        .collect()
}

/// An aggregate's time is the latest of the records it was made from (Kafka Streams'
/// timestamped stores): a late record's update does not go back in time, and the time
/// survives a restart (it is the changelog record's). It took the input record's time.
#[test]
fn an_aggregate_takes_the_latest_time_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("counts", 1), ("wcounts", 1)]);
    let size = std::time::Duration::from_secs(1000);
    let topology = || {
        let b = StreamsBuilder::new();
        let s = b.stream("in", strings());
        s.group_by_key()
            .count(Materialized::named("c"))
            .to_stream()
            .to("counts", Produced::with(serdes::string(), serdes::i64()));
        windowed_counts_to(&s, size, "wcounts");
        b.build().unwrap()
    };
    let config = || StreamsConfig::new("times");
    produce(&store, "in", &[ev("k", 100, "a"), ev("k", 50, "b")]);
    let s = run_caught_up(&store, topology(), config());
    s.close().unwrap();
    drop(s);
    produce(&store, "in", &[ev("k", 60, "c")]);
    let s = run_caught_up(&store, topology(), config());
    s.close().unwrap();
    let expected = [(1, 100), (2, 100), (3, 100)];
    assert_eq!(values_and_times(&store, "counts"), expected);
    assert_eq!(values_and_times(&store, "wcounts"), expected);
}

/// Counts of `in` per key (store `c`, with a changelog), written to `counts`.
fn counts_of_in() -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .group_by_key()
        .count(Materialized::named("c"))
        .to_stream()
        .to("counts", Produced::with(serdes::string(), serdes::i64()));
    b.build().unwrap()
}

/// A partitioner that sends each record to the next partition, whatever its key.
#[derive(Debug, Default)]
struct RoundRobin(std::sync::atomic::AtomicI32);

impl streamlog::producer::Partitioner for RoundRobin {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: usize, partitions: i32) -> i32 {
        self.0
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .rem_euclid(partitions)
    }
}

/// An application's own partitioner (in its producer config) also chose the partitions
/// of repartition records: a key's records were spread over the repartition topic's
/// partitions, so each task counted a part of them. Repartition records go by their
/// key's hash; outputs keep the application's partitioner.
#[test]
fn repartition_records_go_by_key_whatever_the_producer_partitioner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 2), ("out", 1)]);
    let events: Vec<Event> = (0..20)
        .map(|i| {
            ev(
                &format!("k{i}"),
                i64::from(i),
                if i < 10 { "x" } else { "y" },
            )
        })
        .collect();
    produce(&store, "in", &events);
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .map(|_, v| (v.clone(), v.clone()))
        .group_by_key_with(Grouped::with(serdes::string(), serdes::string()).named("by-v"))
        .count(Materialized::named("v-counts"))
        .to_stream()
        .to("out", Produced::with(serdes::string(), serdes::i64()));
    let producer = streamlog::ProducerConfig::default()
        .partitioner(std::sync::Arc::new(RoundRobin::default()));
    let config = StreamsConfig::new("rr").threads(2).producer(producer);
    let s = run_caught_up(&store, b.build().unwrap(), config);
    let counts = s.key_value_store::<String, i64>("v-counts").unwrap();
    let mut all = counts.all().unwrap();
    all.sort();
    assert_eq!(all, [("x".into(), 10), ("y".into(), 10)]);
    s.close().unwrap();
    let repartition = store.topic("rr-by-v-repartition").unwrap();
    for p in 0..2 {
        for r in repartition.partition(p).unwrap().read(0, 1 << 20).unwrap() {
            let key = r.key.as_deref().unwrap();
            assert_eq!(streamlog::producer::partition_for_key(key, 2), p);
        }
    }
}

/// From the streams review: an aggregate made from a record without a timestamp (-1)
/// was written to its changelog with the commit's wall-clock time, so after a restart
/// the restored aggregate's time was the commit's and every later update carried it:
/// the output's times depended on whether the application had restarted. The
/// changelog keeps -1.
#[test]
fn an_aggregate_of_a_record_without_time_restores_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("counts", 1)]);
    let topology = counts_of_in;
    let config = || StreamsConfig::new("untimed");
    produce(&store, "in", &[ev("k", -1, "a")]);
    let s = run_caught_up(&store, topology(), config());
    s.close().unwrap();
    drop(s);
    produce(&store, "in", &[ev("k", 60, "b")]);
    let s = run_caught_up(&store, topology(), config());
    s.close().unwrap();
    assert_eq!(values_and_times(&store, "counts"), [(1, -1), (2, 60)]);
}

/// With the store's bound on future record times (an hour by default), an input topic
/// that allows later times fed records whose aggregates its changelog (created by the
/// application, with the default bound) refused: the thread stopped. Internal topics
/// take the times their inputs took.
#[test]
fn internal_topics_take_the_times_their_inputs_took() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let unbounded = TopicConfig::default().message_timestamp_after_max_ms(i64::MAX);
    for t in ["in", "counts"] {
        store.create_topic(t, unbounded.clone()).unwrap();
    }
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2 * 86_400_000;
    produce(&store, "in", &[ev("k", later, "a")]);
    let s = run_caught_up(&store, counts_of_in(), StreamsConfig::new("future"));
    s.close().unwrap();
    assert_eq!(values_and_times(&store, "counts"), [(1, later)]);

    // Also a changelog made before (by the application, compacted as the runtime would,
    // but with the default bound on later times and one on earlier ones) takes them: it
    // refused the aggregates and the thread stopped before any output.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["in", "counts"] {
        store.create_topic(t, unbounded.clone()).unwrap();
    }
    let compacted = TopicConfig::default()
        .cleanup_policy(CleanupPolicy::Compact)
        .message_timestamp_before_max_ms(86_400_000);
    store.create_topic("made-c-changelog", compacted).unwrap();
    let earlier = later - 4 * 86_400_000;
    produce(&store, "in", &[ev("k", later, "a"), ev("j", earlier, "b")]);
    let s = run_caught_up(&store, counts_of_in(), StreamsConfig::new("made"));
    s.close().unwrap();
    assert_eq!(
        values_and_times(&store, "counts"),
        [(1, later), (1, earlier)]
    );
}

/// Windowed results written to a topic go to their inner key's partition (Kafka
/// Streams' `WindowedStreamPartitioner`), every window of a key in one partition. They
/// were spread by the whole windowed key (key and window start).
#[test]
fn windowed_results_are_partitioned_by_their_inner_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("wcounts", 4)]);
    let b = StreamsBuilder::new();
    let size = std::time::Duration::from_secs(1);
    windowed_counts_to(&b.stream("in", strings()), size, "wcounts");
    let events: Vec<Event> = (0..40)
        .map(|i| ev(&format!("key-{}", i % 5), i64::from(i) * 1000, "x"))
        .collect();
    produce(&store, "in", &events);
    let s = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("wpart"));
    s.close().unwrap();
    let topic = store.topic("wcounts").unwrap();
    let mut seen = 0;
    for p in 0..4 {
        for r in topic.partition(p).unwrap().read(0, 1 << 20).unwrap() {
            let key = r.key.as_deref().unwrap();
            let inner = &key[..key.len() - 8];
            assert_eq!(
                streamlog::producer::partition_for_key(inner, 4),
                p,
                "{} in partition {p}",
                String::from_utf8_lossy(inner)
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 40);
}

/// From a review: records lost their headers on the way through (sources dropped them,
/// sinks and repartition topics sent none). Kafka Streams forwards a record's headers
/// to every record sent while it is processed: outputs, repartition records, and an
/// aggregation's updates.
#[test]
fn headers_travel_with_records_through_sinks_and_repartition_topics() {
    use streamlog::{ConsumerConfig, Header, OffsetReset, Record};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1), ("copy", 1), ("lengths", 1)]);
    let headers = vec![Header::new("trace", "t-1"), Header::null("flag")];
    store
        .topic("in")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[Record {
            offset: 0,
            timestamp: 7,
            key: Some("user-0".into()),
            value: Some("apple".into()),
            headers: headers.clone(),
        }])
        .unwrap();
    let b = StreamsBuilder::new();
    let s = b.stream("in", strings());
    s.to("copy", Produced::with(serdes::string(), serdes::string()));
    // Re-keyed: through a repartition topic, then counted.
    s.group_by(
        |_, v| v.len() as i64,
        Grouped::with(serdes::i64(), serdes::string()),
    )
    .count(Materialized::named("by-length"))
    .to_stream()
    .to("lengths", Produced::with(serdes::i64(), serdes::i64()));
    let streams = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("headers"));
    streams.close().unwrap();
    for topic in ["copy", "lengths"] {
        let mut c = store
            .consumer(
                ConsumerConfig::default()
                    .enable_auto_commit(false)
                    .auto_offset_reset(OffsetReset::Earliest),
            )
            .unwrap();
        c.assign(&[streamlog::TopicPartition::new(topic, 0)])
            .unwrap();
        let records = c.poll(std::time::Duration::from_secs(10)).unwrap();
        let got: Vec<Vec<Header>> = records.iter().map(|r| r.headers().to_vec()).collect();
        assert_eq!(got, vec![headers.clone()], "{topic}");
    }
}
