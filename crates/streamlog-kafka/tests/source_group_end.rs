//! A source that stops at the end, as a group member the group gives nothing.

mod common;

use std::time::Duration;

use common::Kafka;
use streamlog::{Store, StoreConfig, TopicPartition};
use streamlog_kafka::Mirror;

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

/// From a bridge hunt: `stop_at_end` waited for an assignment to copy to its end, and a
/// member the group gave no partition (one partition, held by another member; the
/// sticky assignor keeps it there) waited for ever. A member given nothing has nothing
/// to copy: it stops.
#[test]
fn a_member_given_no_partition_stops_at_the_end() {
    let kafka = Kafka::start();
    kafka.create_topic("one", 1);
    let records: Vec<_> = (0..5).map(|i| (0, common::record(i))).collect();
    kafka.produce("one", &records);
    let config = |stop_at_end: bool| {
        let mut c = kafka.source(&["one"]);
        c.group_id = "one-mirror".into();
        c.stop_at_end = stop_at_end;
        c.kafka.push(("session.timeout.ms".into(), "6000".into()));
        c.kafka.push((
            "partition.assignment.strategy".into(),
            "cooperative-sticky".into(),
        ));
        c
    };
    // The holder: it has the partition once it copied its records.
    let held = tempfile::tempdir().unwrap();
    let held_store = open(held.path());
    let holder = Mirror::from_kafka(&held_store, config(false)).unwrap();
    let target = [(TopicPartition::new("one", 0), 5)].into_iter().collect();
    if !holder.wait_for_positions(&target, Duration::from_secs(120)) {
        panic!("the holder ended: {:?}", holder.join());
    }
    let other = tempfile::tempdir().unwrap();
    let other_store = open(other.path());
    let member = Mirror::from_kafka(&other_store, config(true)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(member.join()).unwrap());
    let ended = rx.recv_timeout(Duration::from_secs(120));
    holder.stop().unwrap();
    let stats = ended
        .expect("a member given nothing never stopped")
        .unwrap();
    assert_eq!(stats.records, 0);
}
