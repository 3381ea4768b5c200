//! The order in which a task processes the records of its several input partitions (a
//! merge, a stream-table join): by timestamp, the earliest head first, as Kafka Streams'
//! `PartitionGroup` does, whatever order and batches the consumer returns them in. Tasks
//! processed each poll's records as they came, so whole topics went in the order of
//! their names: records of the later topic were dropped as late, and a join missed a
//! table row older than the stream record.

mod common;

use std::time::Duration;

use common::*;
use streamlog::{Record, Store};
use streamlog_streams::{
    Consumed, Materialized, ProcessingGuarantee, Produced, StreamsBuilder, StreamsConfig,
    TimeWindows, serdes,
};

fn strings() -> Consumed<String, String> {
    Consumed::with(serdes::string(), serdes::string())
}

/// Two topics merged and counted in 10 ms windows without grace, both filled before the
/// start, interleaved in time: none of their records is late. With one record per poll
/// too, and across more records than a partition buffers before it is paused.
#[test]
fn merged_topics_are_processed_in_timestamp_order() {
    for (records, max_poll) in [(20i64, 500), (20, 1), (3000, 7)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        create_topics(&store, &[("b-events", 1), ("a-events", 1)]);
        let a = store.topic("a-events").unwrap().partition(0).unwrap();
        let b = store.topic("b-events").unwrap().partition(0).unwrap();
        for t in 0..records {
            let p = if t % 2 == 0 { &a } else { &b };
            p.append(&[Record::new(t * 10, Some("k"), Some("v"))])
                .unwrap();
        }
        let builder = StreamsBuilder::new();
        let sa = builder.stream("a-events", strings());
        let sb = builder.stream("b-events", strings());
        sa.merge(&sb)
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
                10,
            )))
            .count(Materialized::named("w").with_retention(Duration::from_secs(86_400)));
        let config = StreamsConfig::new("m").max_poll_records(max_poll);
        let s = run_caught_up(&store, builder.build().unwrap(), config);
        let counted: i64 = s
            .window_store::<String, i64>("w")
            .unwrap()
            .all()
            .unwrap()
            .iter()
            .map(|x| x.1)
            .sum();
        let dropped = s.metrics().dropped_late;
        s.close().unwrap();
        assert_eq!(
            (counted, dropped),
            (records, 0),
            "{records} records, {max_poll} per poll: counted, dropped as late"
        );
    }
}

/// A stream-table join sees the table as of each stream record's time: table rows and
/// clicks interleaved in time, the table topic's name sorting after the stream's, each
/// click joins the profile written just before it, under both guarantees.
#[test]
fn a_join_sees_the_table_as_of_each_stream_record() {
    for guarantee in [
        ProcessingGuarantee::AtLeastOnce,
        ProcessingGuarantee::ExactlyOnce,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        create_topics(&store, &[("clicks", 1), ("profiles", 1), ("joined", 1)]);
        let profiles = store.topic("profiles").unwrap().partition(0).unwrap();
        let clicks = store.topic("clicks").unwrap().partition(0).unwrap();
        for i in 0..50i64 {
            let region = format!("region-{i}");
            profiles
                .append(&[Record::new(i * 100, Some("user"), Some(region))])
                .unwrap();
            let click = format!("click-{i}");
            clicks
                .append(&[Record::new(i * 100 + 50, Some("user"), Some(click))])
                .unwrap();
        }
        let b = StreamsBuilder::new();
        let t = b.table("profiles", strings());
        b.stream("clicks", strings())
            .join(&t, |c, p| format!("{c}@{p}"))
            .to("joined", Produced::with(serdes::string(), serdes::string()));
        let config = StreamsConfig::new("j")
            .processing_guarantee(guarantee)
            .max_poll_records(3);
        let s = run_caught_up(&store, b.build().unwrap(), config);
        s.close().unwrap();
        let mut got: Vec<String> = read_strings(&store, "joined")
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let mut want: Vec<String> = (0..50).map(|i| format!("click-{i}@region-{i}")).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{guarantee:?}");
    }
}
