//! Where the source starts in a partition its store holds no mirrored record of: the
//! group's committed offset, else `start` (`Earliest` or `Latest`). A committed offset
//! Kafka's retention has passed resumes at Kafka's earliest offset, whatever `start`
//! says: the consumer's `auto.offset.reset` was `start`, and librdkafka applies it to
//! such a position too, so a `Latest` source jumped to the end and skipped every
//! record Kafka still held.

mod common;

use bytes::Bytes;
use common::{Kafka, TIMEOUT};
use streamlog::{Record, Store, StoreConfig, TopicPartition};
use streamlog_kafka::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use streamlog_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streamlog_kafka::{KafkaSourceConfig, Mirror, StartFrom};

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

/// A `Latest` source of `topic`, as a group member or (`assign`) of partition 0.
fn latest(kafka: &Kafka, topic: &str, assign: bool) -> KafkaSourceConfig {
    let mut c = kafka.source(&[topic]);
    c.start = StartFrom::Latest;
    c.group_id = format!("{topic}-mirror");
    if assign {
        c.partitions = Some(vec![TopicPartition::new(topic, 0)]);
    }
    // librdkafka's mock keeps an emptied group rebalancing for the session timeout.
    c.kafka.push(("session.timeout.ms".into(), "6000".into()));
    c
}

/// Commits `offset` of `topic`-0 for `group`, as an earlier member would have.
fn commit(kafka: &Kafka, group: &str, topic: &str, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// The records a mirror copied, once it stopped at the end (within two minutes).
fn copied_by(mirror: Mirror) -> u64 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(mirror.join()).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the mirror never stopped at the end")
        .unwrap()
        .records
}

fn small(n: usize) -> Vec<(i32, Record)> {
    (0..n).map(|i| (0, common::record(i))).collect()
}

/// From the bridge review: the group's offset of a partition (2) is below Kafka's
/// earliest (the mock keeps 5 MB a partition). A `Latest` source reset it to the end
/// and copied nothing (and never stopped at the end: the commit was below it); it
/// copies everything Kafka holds.
#[test]
fn a_committed_offset_kafka_deleted_resumes_at_the_earliest_not_the_end() {
    let kafka = Kafka::start();
    if kafka.mock.is_none() {
        return; // relies on the mock's retention by size
    }
    for assign in [false, true] {
        let topic = format!("aged-{assign}");
        kafka.create_topic(&topic, 1);
        kafka.produce(&topic, &small(5));
        let config = latest(&kafka, &topic, assign);
        commit(&kafka, &config.group_id, &topic, 2);
        let big: Vec<_> = (0..70)
            .map(|i| {
                let value = Bytes::from(vec![b'a' + (i % 26) as u8; 100_000]);
                (
                    0,
                    Record::new(1_700_000_000_000, None::<Bytes>, Some(value)),
                )
            })
            .collect();
        kafka.produce(&topic, &big);
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.bootstrap)
            .create()
            .expect("consumer");
        let (low, high) = reader.fetch_watermarks(&topic, 0, TIMEOUT).unwrap();
        assert!(
            low > 2 && high > low,
            "{low}..{high}: Kafka dropped offset 2"
        );
        let dir = tempfile::tempdir().unwrap();
        let copied = copied_by(Mirror::from_kafka(&open(dir.path()), config).unwrap());
        assert_eq!(copied, (high - low) as u64, "assign: {assign}");
    }
}

/// `Latest` without a committed offset starts at the end: nothing Kafka held before
/// is copied.
#[test]
fn latest_without_a_committed_offset_starts_at_the_end() {
    let kafka = Kafka::start();
    for assign in [false, true] {
        let topic = format!("fresh-{assign}");
        kafka.create_topic(&topic, 1);
        kafka.produce(&topic, &small(10));
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::from_kafka(&open(dir.path()), latest(&kafka, &topic, assign));
        assert_eq!(copied_by(mirror.unwrap()), 0, "assign: {assign}");
    }
}

/// A `-X auto.offset.reset` other than earliest (by any of librdkafka's names for it),
/// or another fixed setting weakened, is refused before anything starts, however it
/// is spelt.
#[test]
fn a_reset_other_than_earliest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let settings = [
        ("auto.offset.reset", "latest"),
        ("auto.offset.reset", "largest"),
        ("auto.offset.reset", "end"),
        ("auto.offset.reset", "error"),
        // librdkafka's other spelling of a topic property, and values in capitals
        // (from a review).
        ("topic.auto.offset.reset", "latest"),
        ("topic.auto.offset.reset", "Latest"),
        ("isolation.level", "READ_UNCOMMITTED"),
    ];
    for (name, value) in settings {
        let mut config = KafkaSourceConfig {
            bootstrap: "127.0.0.1:1".into(),
            topics: vec!["t".into()],
            ..KafkaSourceConfig::default()
        };
        config.kafka.push((name.into(), value.into()));
        let err = Mirror::from_kafka(&store, config).unwrap_err();
        assert!(
            matches!(
                err,
                streamlog_kafka::Error::InvalidConfig { name: "kafka", .. }
            ),
            "{name}={value}: {err}"
        );
    }
}

/// From the bridge review: a group member started at the group's offset and moved to
/// where its store ends only when a record arrived. With the group's offset ahead of
/// the store (another store's member copied further) and nothing new in Kafka, no
/// record came: the gap stayed, and a `stop_at_end` source never stopped. A partition
/// the store holds records of is assigned where the store ends.
#[test]
fn a_group_offset_ahead_of_the_store_resumes_where_the_store_ends() {
    let kafka = Kafka::start();
    kafka.create_topic("ahead", 1);
    let records = small(20);
    kafka.produce("ahead", &records[..10]);
    let mut config = kafka.source(&["ahead"]);
    config
        .kafka
        .push(("session.timeout.ms".into(), "6000".into()));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = Mirror::from_kafka(&store, config.clone()).unwrap();
    assert_eq!(copied_by(first), 10);
    kafka.produce("ahead", &records[10..]);
    // A group whose offset is at Kafka's end (the mock keeps the first group's member
    // until its session times out, and refuses a commit from outside it meanwhile).
    config.group_id = "ahead-elsewhere".into();
    commit(&kafka, &config.group_id, "ahead", 20);
    let second = Mirror::from_kafka(&store, config).unwrap();
    assert_eq!(copied_by(second), 10);
    common::assert_source_copy(
        &common::read_kafka(&kafka.bootstrap, "ahead", 1),
        &common::read_store(&store, "ahead"),
    );
}

/// From a bridge review: a `Latest` start at Kafka's end was never committed for a
/// partition no record reached in that run (only partitions the store appended to
/// were), so the next run, with the store still empty and no group offset, started at
/// the end again: every record Kafka received between the runs was skipped. The start
/// is committed; the second run copies exactly those records.
#[test]
fn a_latest_start_no_record_reached_is_where_the_next_run_resumes() {
    let kafka = Kafka::start();
    for assign in [false, true] {
        let topic = format!("between-{assign}");
        kafka.create_topic(&topic, 1);
        let records = small(15);
        kafka.produce(&topic, &records[..10]);
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = Mirror::from_kafka(&store, latest(&kafka, &topic, assign)).unwrap();
        assert_eq!(copied_by(first), 0, "assign: {assign}");
        kafka.produce(&topic, &records[10..]);
        let second = Mirror::from_kafka(&store, latest(&kafka, &topic, assign)).unwrap();
        assert_eq!(copied_by(second), 5, "assign: {assign}");
        let kept = common::read_store(&store, &topic);
        let offsets: Vec<Option<i64>> = kept
            .iter()
            .map(|s| s.offset_header(streamlog_kafka::KAFKA_OFFSET_HEADER))
            .collect();
        assert_eq!(offsets, (10..15).map(Some).collect::<Vec<_>>());
    }
}

/// From a bridge hunt: a `Latest` start was committed only at the first periodic
/// commit (or a clean stop), so a run that died before it (an error, a crash; here the
/// kill switch, after the one record Kafka got in partition 1) left partition 0 with no
/// store record and no group offset: the next run started at Kafka's end again and
/// skipped what partition 0 received between the runs. The start is committed before
/// the first append now.
#[cfg(feature = "internals")]
#[test]
fn a_latest_start_survives_a_run_that_dies_before_its_first_commit() {
    use streamlog_kafka::{KillAction, KillSwitch};
    let kafka = Kafka::start();
    let topic = "dies-early";
    kafka.create_topic(topic, 2);
    let before: Vec<(i32, Record)> = (0..6)
        .map(|i| ((i % 2) as i32, common::record(i)))
        .collect();
    kafka.produce(topic, &before);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let config = |kill: Option<KillSwitch>| {
        let mut c = latest(&kafka, topic, true);
        c.partitions = Some(vec![
            TopicPartition::new(topic, 0),
            TopicPartition::new(topic, 1),
        ]);
        c.commit_interval_ms = 600_000;
        c.stop_at_end = kill.is_none();
        c.kill = kill;
        c
    };
    // Explicit partitions: their start is read before `from_kafka` returns, so the
    // record below comes after it.
    let kill = KillSwitch {
        after_records: 1,
        action: KillAction::Stop,
    };
    let first = Mirror::from_kafka(&store, config(Some(kill))).unwrap();
    kafka.produce(topic, &[(1, common::record(6))]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(first.join()).unwrap());
    let ended = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the first run never reached its kill");
    assert!(
        matches!(ended, Err(streamlog_kafka::Error::Killed { records: 1 })),
        "{ended:?}"
    );
    kafka.produce(topic, &[(0, common::record(7)), (0, common::record(8))]);
    let second = Mirror::from_kafka(&store, config(None)).unwrap();
    assert_eq!(copied_by(second), 2);
    let part0: Vec<Option<i64>> = common::read_store(&store, topic)
        .iter()
        .filter(|s| s.partition == 0)
        .map(|s| s.offset_header(streamlog_kafka::KAFKA_OFFSET_HEADER))
        .collect();
    assert_eq!(part0, vec![Some(3), Some(4)]);
}

/// From a review: the fix above committed a `Latest` start only after a poll brought
/// records, so a run that received nothing and died before its first periodic commit
/// still lost it. Explicit partitions' starts are committed before `from_kafka`
/// returns.
#[test]
fn explicit_latest_starts_are_committed_when_the_source_starts() {
    let kafka = Kafka::start();
    let topic = "committed-at-start";
    kafka.create_topic(topic, 1);
    kafka.produce(topic, &small(4));
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut config = latest(&kafka, topic, true);
    config.commit_interval_ms = 600_000;
    config.stop_at_end = false;
    let group = config.group_id.clone();
    let mirror = Mirror::from_kafka(&store, config).unwrap();
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = reader.committed_offsets(tpl, TIMEOUT).unwrap();
    mirror.stop().unwrap();
    let at = committed.find_partition(topic, 0).unwrap().offset();
    assert_eq!(at, Offset::Offset(4));
}
