//! Where the sink starts and what it copies: a `Latest` start is kept for the next run
//! from the moment the sink starts, and a topic named twice is copied once.

mod common;

use common::{Kafka, fill_store, read_kafka};
use streamlog::{Compression, Store, StoreConfig, TopicConfig};
use streamlog_kafka::{Mirror, StartFrom};

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

/// The sink's run, once it stopped (within two minutes).
fn joined(mirror: Mirror) -> streamlog_kafka::Result<streamlog_kafka::MirrorStats> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(mirror.join()).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("the mirror never stopped")
}

/// From a bridge hunt: a `Latest` start at the store's end was committed to the store
/// group only at the first periodic commit, so a sink that died before it (here the
/// kill switch, after the one record of partition 1 Kafka acknowledged) left partition
/// 0 with no record in Kafka and no committed offset: the next run started at the
/// store's end again and skipped what partition 0 received between the runs. The
/// start is committed when the sink starts now.
#[cfg(feature = "internals")]
#[test]
fn a_latest_start_survives_a_run_that_dies_before_its_first_commit() {
    use streamlog_kafka::{KillAction, KillSwitch};
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("late", TopicConfig::default().partitions(2))
        .unwrap();
    fill_store(&store, "late", 2, 0..6, Compression::None);
    kafka.prepare_topic("late", 2);
    let config = |kill: Option<KillSwitch>| {
        let mut c = kafka.sink(&["late"]);
        c.start = StartFrom::Latest;
        c.commit_interval_ms = 600_000;
        c.stop_at_end = kill.is_none();
        c.kill = kill;
        c
    };
    let kill = KillSwitch {
        after_records: 1,
        action: KillAction::Stop,
    };
    // Its start is read before `to_kafka` returns: the record below comes after it.
    let first = Mirror::to_kafka(&store, config(Some(kill))).unwrap();
    fill_store(&store, "late", 2, 7..8, Compression::None); // partition 1
    let ended = joined(first);
    assert!(
        matches!(ended, Err(streamlog_kafka::Error::Killed { records: 1 })),
        "{ended:?}"
    );
    fill_store(&store, "late", 2, 8..12, Compression::None); // 2 records in each
    let second = joined(Mirror::to_kafka(&store, config(None)).unwrap()).unwrap();
    let in_kafka = read_kafka(&kafka.bootstrap, "late", 2);
    let part0 = in_kafka.iter().filter(|s| s.partition == 0).count();
    let part1 = in_kafka.iter().filter(|s| s.partition == 1).count();
    assert_eq!((part0, part1), (2, 3), "{in_kafka:?}");
    assert_eq!(second.records, 4);
}

/// From a bridge hunt: a topic named twice (`-t clicks -t clicks`) put its partitions
/// in the sink's list twice, and the sink stopped at once with a `PartitionMismatch`
/// counting them twice ("4 partitions in the store but 8 in Kafka"). It is copied once.
#[test]
fn a_topic_named_twice_is_copied_once() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("twice", TopicConfig::default().partitions(2))
        .unwrap();
    fill_store(&store, "twice", 2, 0..10, Compression::None);
    kafka.prepare_topic("twice", 2);
    let stats = joined(Mirror::to_kafka(&store, kafka.sink(&["twice", "twice"])).unwrap());
    assert_eq!(stats.unwrap().records, 10);
    assert_eq!(read_kafka(&kafka.bootstrap, "twice", 2).len(), 10);
}
