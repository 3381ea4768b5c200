//! Model test (issue 17, item 5): windowed counts and aggregates, and a plain
//! aggregate, over random keys and timestamps (in order, out of order within grace, and
//! late), tumbling and hopping windows, both processing guarantees, and graceful
//! restarts between chunks of input, against a model computed from the input.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use streamlog::{IsolationLevel, Store};
use streamlog_streams::{
    Consumed, Materialized, ProcessingGuarantee, Produced, Streams, StreamsBuilder, StreamsConfig,
    TimeWindows, serdes,
};

const PARTITIONS: i32 = 2;

fn topology(windows: TimeWindows) -> streamlog_streams::Topology {
    let builder = StreamsBuilder::new();
    let grouped = builder
        .stream("events", Consumed::with(serdes::string(), serdes::string()))
        .map_values(|v| v.parse::<i64>().unwrap_or(0))
        .group_by_key();
    let windowed = grouped.windowed_by(windows);
    windowed
        .count(Materialized::named("counts").with_retention(DAY))
        .to_stream()
        .to(
            "counts-out",
            Produced::with(
                serdes::windowed(serdes::string(), windows.size_ms()),
                serdes::i64(),
            ),
        );
    windowed.aggregate(
        || 0i64,
        |_, v, sum| sum + v,
        Materialized::named("sums")
            .with_value_serde(serdes::i64())
            .with_retention(DAY),
    );
    grouped.reduce(
        |a, b| a + b,
        Materialized::named("totals").with_value_serde(serdes::i64()),
    );
    builder.build().unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    events: Vec<Event>,
    windows: TimeWindows,
    exactly_once: bool,
    /// Input is produced in chunks; `true` restarts the application before that chunk.
    chunks: Vec<(usize, bool)>,
}

fn case() -> impl Strategy<Value = Case> {
    let event = (0..4u8, 0..12_000i64, prop::bool::weighted(0.2), 1..100i64);
    (
        prop::collection::vec(event, 1..60),
        prop_oneof![Just(10_000i64), Just(5_000), Just(2_500)],
        prop_oneof![Just(0i64), Just(3_000)],
        any::<bool>(),
        prop::collection::vec((1..20usize, any::<bool>()), 1..4),
    )
        .prop_map(|(raw, advance, grace, exactly_once, chunks)| {
            let windows = TimeWindows::of_size_and_grace(
                Duration::from_millis(10_000),
                Duration::from_millis(grace as u64),
            )
            .advance_by(Duration::from_millis(advance as u64));
            // Time mostly moves forward; some records go back by up to 12 s (within
            // grace or late).
            let events = raw
                .iter()
                .enumerate()
                .map(|(i, &(k, back, goes_back, v))| Event {
                    key: format!("user-{k}"),
                    ts: (i as i64 * 1_500 + 20_000 - if goes_back { back } else { 0 }),
                    value: v.to_string(),
                })
                .collect();
            Case {
                events,
                windows,
                exactly_once,
                chunks,
            }
        })
}

fn run(case: &Case) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    create_topics(
        &store,
        &[("events", PARTITIONS), ("counts-out", PARTITIONS)],
    );
    let guarantee = if case.exactly_once {
        ProcessingGuarantee::ExactlyOnce
    } else {
        ProcessingGuarantee::AtLeastOnce
    };
    let config = || {
        StreamsConfig::new("model")
            .processing_guarantee(guarantee)
            .max_poll_records(7)
            .poll_ms(5)
    };
    let start = || {
        let s = Streams::new(topology(case.windows), config(), &store).unwrap();
        s.start().unwrap();
        s
    };
    let mut streams = start();
    let mut dropped = 0;
    let mut sent = 0;
    for &(len, restart) in &case.chunks {
        if restart {
            streams.close().unwrap();
            dropped += streams.metrics().dropped_late;
            streams = start();
        }
        let end = (sent + len).min(case.events.len());
        produce(&store, "events", &case.events[sent..end]);
        sent = end;
        streams.wait_until_caught_up(CATCH_UP).unwrap();
    }
    produce(&store, "events", &case.events[sent..]);
    streams.wait_until_caught_up(CATCH_UP).unwrap();

    let w = case.windows;
    let (counts, late) = window_model(&case.events, PARTITIONS, w, |_| true);
    let got: BTreeMap<(String, i64), i64> = streams
        .window_store::<String, i64>("counts")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(wk, n)| ((wk.key, wk.window.start), n))
        .collect();
    assert_eq!(got, counts, "windowed counts");

    // Sums per window: the same drops, values added.
    let mut sums: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut stream_time = i64::MIN;
        for e in case
            .events
            .iter()
            .filter(|e| partition_of(&e.key, PARTITIONS) == p)
        {
            stream_time = stream_time.max(e.ts);
            let v: i64 = e.value.parse().unwrap();
            *totals.entry(e.key.clone()).or_default() += v;
            for win in w.windows_for(e.ts) {
                if stream_time < win.end + w.grace_ms() {
                    *sums.entry((e.key.clone(), win.start)).or_default() += v;
                }
            }
        }
    }
    let got: BTreeMap<(String, i64), i64> = streams
        .window_store::<String, i64>("sums")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(wk, n)| ((wk.key, wk.window.start), n))
        .collect();
    assert_eq!(got, sums, "windowed sums");
    let got: BTreeMap<String, i64> = streams
        .key_value_store::<String, i64>("totals")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got, totals, "totals");

    streams.close().unwrap();
    dropped += streams.metrics().dropped_late;
    // Two windowed aggregations drop the same record-window pairs.
    assert_eq!(dropped, 2 * late, "late record-window pairs dropped");
    let isolation = if case.exactly_once {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let updates = count_updates(&read_all(&store, "counts-out", isolation));
    assert_exact_updates(&updates, &counts);
    drop(streams);
    store.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn windowed_aggregates_match_the_model(case in case()) {
        run(&case);
    }
}

/// A late record in a tumbling window without grace is dropped and counted; one within
/// grace is counted in its window.
#[test]
fn late_records_are_dropped_and_counted() {
    let w =
        TimeWindows::of_size_and_grace(Duration::from_millis(10_000), Duration::from_millis(2_000));
    let ev = |ts: i64| Event {
        key: "user-0".into(),
        ts,
        value: "1".into(),
    };
    // Stream time 21 s: [10, 20) closes at 22 s, so 19 s is still counted; then 23 s
    // closes it and 18 s is late.
    let case = Case {
        events: vec![ev(15_000), ev(21_000), ev(19_000), ev(23_000), ev(18_000)],
        windows: w,
        exactly_once: true,
        chunks: vec![(5, false)],
    };
    let (model, late) = window_model(&case.events, PARTITIONS, w, |_| true);
    assert_eq!(late, 1);
    assert_eq!(model[&("user-0".to_string(), 10_000)], 2);
    run(&case);
}

/// The starts of the windows window store `store` of `s` holds, in order.
fn window_starts(s: &Streams, store: &str) -> Vec<i64> {
    let mut v: Vec<i64> = s
        .window_store::<String, i64>(store)
        .unwrap()
        .all()
        .unwrap()
        .iter()
        .map(|(wk, _)| wk.window.start)
        .collect();
    v.sort();
    v
}

/// Windows that started the retention or more before the stream time leave the store
/// (Kafka's rule: they were kept until they had ended that long before), and a restore
/// from the changelog does not bring them back.
#[test]
fn windows_past_retention_are_removed_and_stay_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("events", 1)]);
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("events", Consumed::with(serdes::string(), serdes::string()))
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
            .count(Materialized::named("c").with_retention(Duration::from_secs(20)));
        b.build().unwrap()
    };
    produce(
        &store,
        "events",
        &[
            ev("user-0", 1_000, "a"),
            ev("user-0", 15_000, "b"),
            ev("user-0", 22_000, "b"),
            ev("user-0", 45_000, "c"),
        ],
    );
    let starts = |s: &Streams| window_starts(s, "c");
    // Stream time 45 s, retention 20 s: windows starting by 25 s are gone.
    let s = run_caught_up(&store, topology(), StreamsConfig::new("ret"));
    assert_eq!(starts(&s), [40_000]);
    s.close().unwrap();
    drop(s);
    let s = run_caught_up(&store, topology(), StreamsConfig::new("ret"));
    assert_eq!(starts(&s), [40_000]);
    s.close().unwrap();

    let b = StreamsBuilder::new();
    b.stream("events", Consumed::with(serdes::string(), serdes::string()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
        .count(Materialized::named("c").with_retention(Duration::from_secs(5)));
    assert!(b.build().is_err(), "a retention shorter than the window");
}

/// Without `with_retention` a window store keeps a window until it closes (size plus
/// grace, Kafka Streams' default since 3.0), not a day: one-minute windows of a key
/// updated every minute would otherwise pile up 1,440 windows per key.
#[test]
fn the_default_retention_is_the_window_size_plus_grace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("events", 1)]);
    let b = StreamsBuilder::new();
    b.stream("events", Consumed::with(serdes::string(), serdes::string()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(10),
            Duration::from_secs(5),
        ))
        .count(Materialized::named("c"));
    let times = [1_000, 12_000, 23_000, 34_000];
    let events: Vec<Event> = times.iter().map(|&t| ev("user-0", t, "a")).collect();
    produce(&store, "events", &events);
    let s = run_caught_up(
        &store,
        b.build().unwrap(),
        StreamsConfig::new("default-ret"),
    );
    let starts = window_starts(&s, "c");
    // Stream time 34 s: [0, 10) and [10, 20) closed at 15 s and 25 s and left;
    // [20, 30) closes at 35 s and stays, as does [30, 40).
    assert_eq!(starts, [20_000, 30_000]);
    s.close().unwrap();
}
