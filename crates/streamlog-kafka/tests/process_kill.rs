//! The mirror in a process that dies (`std::process::abort`: no destructor, no flush, no
//! commit, like `kill -9`) at seeded random points and is restarted until it finishes:
//! the other side ends with exactly the source's records. The child is this test binary
//! again, running the ignored test `mirror_worker`; the mock cluster lives in the parent
//! and outlives every child.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Kafka, Rng, assert_sink_copy, assert_source_copy, fill_store, read_kafka, read_store,
};
use streamlog::{Compression, Store, StoreConfig, TopicConfig, TopicPartition};
use streamlog_kafka::{KafkaSinkConfig, KafkaSourceConfig, KillAction, KillSwitch, Mirror};

const DIR_VAR: &str = "STREAMLOG_KAFKA_TEST_DIR";
const BOOTSTRAP_VAR: &str = "STREAMLOG_KAFKA_TEST_BOOTSTRAP";
const MODE_VAR: &str = "STREAMLOG_KAFKA_TEST_MODE";
const KILL_VAR: &str = "STREAMLOG_KAFKA_TEST_KILL_AFTER";
const TOPIC_VAR: &str = "STREAMLOG_KAFKA_TEST_TOPIC";
const PARTITIONS: i32 = 2;
const RECORDS: usize = 400;

fn open(dir: &Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

/// The child: one mirror run that aborts the process after the given number of records.
#[test]
#[ignore = "run as a child process by the tests below"]
fn mirror_worker() {
    let (Ok(dir), Ok(bootstrap), Ok(mode), Ok(kill), Ok(topic)) = (
        std::env::var(DIR_VAR),
        std::env::var(BOOTSTRAP_VAR),
        std::env::var(MODE_VAR),
        std::env::var(KILL_VAR),
        std::env::var(TOPIC_VAR),
    ) else {
        return;
    };
    let kill = Some(KillSwitch {
        after_records: kill.parse().unwrap(),
        action: KillAction::Abort,
    });
    let store = open(Path::new(&dir));
    let mirror = if mode == "sink" {
        Mirror::to_kafka(
            &store,
            KafkaSinkConfig {
                bootstrap,
                topics: vec![topic],
                stop_at_end: true,
                poll_ms: 20,
                kafka: vec![("batch.num.messages".into(), "16".into())],
                kill,
                ..KafkaSinkConfig::default()
            },
        )
    } else {
        Mirror::from_kafka(
            &store,
            KafkaSourceConfig {
                bootstrap,
                partitions: Some(
                    (0..PARTITIONS)
                        .map(|p| TopicPartition::new(topic.clone(), p))
                        .collect(),
                ),
                max_batch_records: 23,
                stop_at_end: true,
                poll_ms: 20,
                kill,
                ..KafkaSourceConfig::default()
            },
        )
    };
    mirror.unwrap().join().unwrap();
    store.close().unwrap();
}

/// Runs children until one finishes; returns how many died.
fn run_until_done(
    dir: &Path,
    bootstrap: &str,
    (mode, topic): (&str, &str),
    seed: u64,
    most: u64,
) -> u32 {
    let mut rng = Rng(seed);
    let mut deaths = 0;
    loop {
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["mirror_worker", "--exact", "--ignored", "--test-threads=1"])
            .env(DIR_VAR, dir)
            .env(BOOTSTRAP_VAR, bootstrap)
            .env(MODE_VAR, mode)
            .env(TOPIC_VAR, topic)
            .env(KILL_VAR, (1 + rng.below(most)).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            return deaths;
        }
        deaths += 1;
        assert!(deaths < 100, "the {mode} never finished");
    }
}

#[test]
fn a_sink_process_killed_at_random_points_ends_with_the_exact_sequence() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .create_topic(
                "orders-sink-process",
                TopicConfig::default().partitions(PARTITIONS),
            )
            .unwrap();
        fill_store(
            &store,
            "orders-sink-process",
            PARTITIONS,
            0..RECORDS,
            Compression::Zstd,
        );
        store.close().unwrap();
    }
    kafka.prepare_topic("orders-sink-process", PARTITIONS);
    if let Some(mock) = &kafka.mock {
        // Requests spend a while on the wire, so that a death finds records in flight.
        for broker in 1..=3 {
            mock.broker_round_trip_time(broker, Duration::from_millis(20))
                .unwrap();
        }
    }
    let deaths = run_until_done(
        dir.path(),
        &kafka.bootstrap,
        ("sink", "orders-sink-process"),
        0x0dea_d001,
        90,
    );
    assert!(deaths >= 3, "the sink died only {deaths} times");
    println!("the sink finished after {deaths} deaths");
    let store = open(dir.path());
    assert_sink_copy(
        &read_store(&store, "orders-sink-process"),
        &read_kafka(&kafka.bootstrap, "orders-sink-process", PARTITIONS),
    );
}

#[test]
fn a_source_process_killed_at_random_points_ends_with_the_exact_sequence() {
    let kafka = Kafka::start();
    kafka.create_topic("orders-source-process", PARTITIONS);
    let records: Vec<_> = (0..RECORDS)
        .map(|i| (i as i32 % PARTITIONS, common::record(i)))
        .collect();
    kafka.produce("orders-source-process", &records);
    let dir = tempfile::tempdir().unwrap();
    let deaths = run_until_done(
        dir.path(),
        &kafka.bootstrap,
        ("source", "orders-source-process"),
        0x0dea_d002,
        60,
    );
    assert!(deaths >= 3, "the source died only {deaths} times");
    println!("the source finished after {deaths} deaths");
    let store = open(dir.path());
    assert_source_copy(
        &read_kafka(&kafka.bootstrap, "orders-source-process", PARTITIONS),
        &read_store(&store, "orders-source-process"),
    );
}
