//! Stream-table joins against a model (issue 17, item 5): a table of a topic (updates
//! and deletes) and a stream joined to it, inner and left, in rounds; each round is
//! processed before the next, so each stream record meets the table as the model has
//! it then.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use streamlog::{Record, Store};
use streamlog_streams::{Consumed, Produced, StreamsBuilder, StreamsConfig, serdes};

const PARTITIONS: i32 = 2;

#[derive(Debug, Clone)]
enum Round {
    /// Table updates: key, value or delete.
    Table(Vec<(u8, Option<u8>)>),
    /// Stream records: key, value.
    Stream(Vec<(u8, u8)>),
}

fn round() -> impl Strategy<Value = Round> {
    prop_oneof![
        prop::collection::vec((0..5u8, prop::option::weighted(0.8, 0..9u8)), 1..6)
            .prop_map(Round::Table),
        prop::collection::vec((0..5u8, 0..9u8), 1..8).prop_map(Round::Stream),
    ]
}

fn run(rounds: &[Round]) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(
        &store,
        &[
            ("profiles", PARTITIONS),
            ("clicks", PARTITIONS),
            ("inner", PARTITIONS),
            ("left", PARTITIONS),
        ],
    );
    let b = StreamsBuilder::new();
    let strings = || Consumed::with(serdes::string(), serdes::string());
    let profiles = b.table("profiles", strings());
    assert_eq!(profiles.store_name(), Some("profiles-table"));
    let clicks = b.stream("clicks", strings());
    clicks
        .join(&profiles, |c, p| format!("{c}@{p}"))
        .to("inner", Produced::with(serdes::string(), serdes::string()));
    clicks
        .left_join(&profiles, |c, p| {
            format!("{c}@{}", p.map_or("-", String::as_str))
        })
        .to("left", Produced::with(serdes::string(), serdes::string()));
    let streams = streamlog_streams::Streams::new(
        b.build().unwrap(),
        StreamsConfig::new("joins").poll_ms(5),
        &store,
    )
    .unwrap();
    streams.start().unwrap();

    let mut table: BTreeMap<String, String> = BTreeMap::new();
    let (mut inner, mut left) = (Vec::new(), Vec::new());
    for (i, r) in rounds.iter().enumerate() {
        match r {
            Round::Table(updates) => {
                let t = store.topic("profiles").unwrap();
                for (k, v) in updates {
                    let key = format!("user-{k}");
                    let value = v.map(|v| format!("region-{v}"));
                    t.partition(partition_of(&key, PARTITIONS))
                        .unwrap()
                        .append(&[Record::new(i as i64, Some(key.clone()), value.clone())])
                        .unwrap();
                    match value {
                        Some(v) => table.insert(key, v),
                        None => table.remove(&key),
                    };
                }
            }
            Round::Stream(clicks) => {
                let events: Vec<Event> = clicks
                    .iter()
                    .map(|(k, v)| ev(&format!("user-{k}"), i as i64, &format!("click-{v}")))
                    .collect();
                produce(&store, "clicks", &events);
                for e in &events {
                    let found = table.get(&e.key);
                    if let Some(p) = found {
                        inner.push((e.key.clone(), format!("{}@{p}", e.value)));
                    }
                    left.push((
                        e.key.clone(),
                        format!("{}@{}", e.value, found.map_or("-", String::as_str)),
                    ));
                }
            }
        }
        streams.wait_until_caught_up(CATCH_UP).unwrap();
    }
    let got: BTreeMap<String, String> = streams
        .key_value_store::<String, String>("profiles-table")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got, table, "the table's store");
    streams.close().unwrap();
    inner.sort();
    left.sort();
    assert_eq!(read_strings(&store, "inner"), inner, "inner join");
    assert_eq!(read_strings(&store, "left"), left, "left join");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]

    #[test]
    fn joins_match_the_model(rounds in prop::collection::vec(round(), 1..6)) {
        run(&rounds);
    }
}

#[test]
fn a_deleted_key_no_longer_joins() {
    run(&[
        Round::Table(vec![(1, Some(1)), (2, Some(2))]),
        Round::Stream(vec![(1, 0), (2, 0), (3, 0)]),
        Round::Table(vec![(1, None)]),
        Round::Stream(vec![(1, 1), (2, 1)]),
    ]);
}

/// A stream joined with the count of a re-keyed stream read from a topic with another
/// partition count: the repartition topic takes the join's partition count (the
/// stream's, 4), as Kafka Streams sizes it. It took the count of the topic feeding it
/// (2), and start refused the join as not co-partitioned.
#[test]
fn a_repartition_topic_takes_the_partition_count_of_the_join_it_feeds() {
    use streamlog::{ProducerConfig, ProducerRecord};
    use streamlog_streams::{Grouped, Materialized};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("orders", 2), ("lookups", 4), ("looked-up", 4)]);
    let strings = || Consumed::with(serdes::string(), serdes::string());
    let b = StreamsBuilder::new();
    let counts = b
        .stream("orders", strings())
        .group_by(
            |_, item| item.clone(),
            Grouped::with(serdes::string(), serdes::string()),
        )
        .count(Materialized::named("per-item"));
    b.stream("lookups", strings())
        .join(&counts, |who, n| format!("{who}:{n}"))
        .to(
            "looked-up",
            Produced::with(serdes::string(), serdes::string()),
        );
    let items = ["apple", "pear", "fig", "plum", "kiwi"];
    // Orders: item i ordered i + 1 times.
    let orders = store.topic("orders").unwrap();
    let mut ts = 0;
    for (i, item) in items.iter().enumerate() {
        for _ in 0..=i {
            ts += 1;
            let p = orders.partition((ts % 2) as i32).unwrap();
            p.append(&[Record::new(ts, Some(format!("user-{ts}")), Some(*item))])
                .unwrap();
        }
    }
    let s = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("cp"));
    assert_eq!(
        store
            .topic("cp-KSTREAM-GROUP-0000000001-repartition")
            .map(|t| t.partition_count())
            .ok(),
        Some(4),
        "{:?}",
        store.list_topics()
    );
    // Lookups keyed by item, placed by the key's hash as the repartition topic is.
    let producer = store.producer(ProducerConfig::default()).unwrap();
    for item in items {
        producer
            .send(
                ProducerRecord::new("lookups")
                    .key(item)
                    .value("me")
                    .timestamp(1_000),
            )
            .unwrap()
            .wait()
            .unwrap();
    }
    s.wait_until_caught_up(CATCH_UP).unwrap();
    s.close().unwrap();
    let got = read_strings(&store, "looked-up");
    let mut want: Vec<(String, String)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.to_string(), format!("me:{}", i + 1)))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// A key serde that does not write back the bytes it read (here it trims spaces, as a
/// JSON serde reorders an object's fields): the table stored its records under the
/// bytes read, while joins and queries looked the key up as the serde writes it, so
/// nothing joined and `get` found nothing. The store now keeps the serde's bytes, as
/// Kafka's store serializes the typed key.
#[test]
fn a_table_key_is_stored_as_its_serde_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("profiles", 1), ("clicks", 1), ("inner", 1)]);
    let trimmed = || {
        streamlog_streams::Serde::new(
            |s: &String| Ok(s.trim().as_bytes().to_vec()),
            |b: &[u8]| {
                std::str::from_utf8(b)
                    .map(|s| s.trim().to_string())
                    .map_err(|e| e.to_string())
            },
        )
    };
    let b = StreamsBuilder::new();
    let profiles = b.table("profiles", Consumed::with(trimmed(), serdes::string()));
    b.stream("clicks", Consumed::with(trimmed(), serdes::string()))
        .join(&profiles, |c, p| format!("{c}@{p}"))
        .to("inner", Produced::with(serdes::string(), serdes::string()));
    let table = store.topic("profiles").unwrap().partition(0).unwrap();
    table
        .append(&[Record::new(0, Some(" u1 "), Some("eu"))])
        .unwrap();
    let streams = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("keys"));
    let view = streams
        .key_value_store::<String, String>("profiles-table")
        .unwrap();
    assert_eq!(view.get(&"u1".to_string()).unwrap(), Some("eu".to_string()));
    produce(&store, "clicks", &[ev("u1", 1, "c1")]);
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    // A tombstone under yet another spelling of the key deletes it.
    table
        .append(&[Record::new(2, Some("u1  "), None::<&str>)])
        .unwrap();
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    produce(&store, "clicks", &[ev("u1", 3, "c2")]);
    streams.wait_until_caught_up(CATCH_UP).unwrap();
    assert_eq!(view.get(&"u1".to_string()).unwrap(), None);
    streams.close().unwrap();
    assert_eq!(
        read_strings(&store, "inner"),
        [("u1".to_string(), "c1@eu".to_string())]
    );
}
