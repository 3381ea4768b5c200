//! A sink and a source stopped abruptly by the bridge's kill switch at seeded random
//! points (records queued or in flight to Kafka are dropped, the source stops between two
//! appends), restarted until done: the other side ends with exactly the source's records,
//! in order. And broker errors injected by the mock cluster are retried, losing nothing.

mod common;

use common::{
    Kafka, Rng, assert_sink_copy, assert_source_copy, fill_store, read_kafka, read_store,
};
use streamlog::{Compression, Store, StoreConfig, TopicConfig, TopicPartition};
use streamlog_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use streamlog_kafka::{Error, KillAction, KillSwitch, Mirror};

const PARTITIONS: i32 = 2;
const RECORDS: usize = 600;

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

/// Runs `start` with kill points drawn from `seed` until a run finishes; returns the
/// number of kills.
/// A kill comes after 1..=`most` records were handed over in the run.
fn until_done(
    seed: u64,
    most: u64,
    mut run: impl FnMut(Option<KillSwitch>) -> Result<u64, Error>,
) -> u32 {
    let mut rng = Rng(seed);
    let mut kills = 0;
    loop {
        let kill = KillSwitch {
            after_records: 1 + rng.below(most),
            action: KillAction::Stop,
        };
        match run(Some(kill)) {
            Ok(n) => {
                eprintln!("finished: {n} records after {kills} kills");
                return kills;
            }
            Err(Error::Killed { records }) => {
                assert!(records >= kill.after_records, "{records}");
                eprintln!("killed after {records} records");
                kills += 1;
                assert!(kills < 200, "never finished");
            }
            Err(e) => panic!("the mirror failed: {e}"),
        }
    }
}

#[test]
fn a_sink_killed_at_random_points_ends_with_the_exact_sequence_in_kafka() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic(
            "orders-killed",
            TopicConfig::default().partitions(PARTITIONS),
        )
        .unwrap();
    fill_store(
        &store,
        "orders-killed",
        PARTITIONS,
        0..RECORDS,
        Compression::Snappy,
    );
    kafka.prepare_topic("orders-killed", PARTITIONS);
    if let Some(mock) = &kafka.mock {
        // Requests spend a while on the wire, so that a kill finds records in flight.
        for broker in 1..=3 {
            mock.broker_round_trip_time(broker, std::time::Duration::from_millis(20))
                .unwrap();
        }
    }
    let kills = until_done(0x5eed_0001, 90, |kill| {
        let mut config = kafka.sink(&["orders-killed"]);
        // Small produce requests, so that a kill finds some acknowledged and some in
        // flight.
        config
            .kafka
            .push(("batch.num.messages".into(), "16".into()));
        config.kill = kill;
        Mirror::to_kafka(&store, config)?.join().map(|s| s.records)
    });
    assert!(kills >= 5, "only {kills} kills");
    println!("the sink finished after {kills} kills");
    assert_sink_copy(
        &read_store(&store, "orders-killed"),
        &read_kafka(&kafka.bootstrap, "orders-killed", PARTITIONS),
    );
}

#[test]
fn a_source_killed_at_random_points_ends_with_the_exact_sequence_in_the_store() {
    let kafka = Kafka::start();
    kafka.create_topic("payments", PARTITIONS);
    let records: Vec<_> = (0..RECORDS)
        .map(|i| (i as i32 % PARTITIONS, common::record(i)))
        .collect();
    kafka.produce("payments", &records);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kills = until_done(0x5eed_0002, 90, |kill| {
        let mut config = kafka.source(&[]);
        config.partitions = Some(
            (0..PARTITIONS)
                .map(|p| TopicPartition::new("payments", p))
                .collect(),
        );
        config.max_batch_records = 37;
        config.kill = kill;
        Mirror::from_kafka(&store, config)?
            .join()
            .map(|s| s.records)
    });
    assert!(kills >= 5, "only {kills} kills");
    println!("the source finished after {kills} kills");
    assert_source_copy(
        &read_kafka(&kafka.bootstrap, "payments", PARTITIONS),
        &read_store(&store, "payments"),
    );
}

/// Retriable errors a broker answers while leadership moves or replicas lag.
const BROKER_ERRORS: [RDKafkaRespErr; 4] = [
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
];

#[test]
fn broker_errors_are_retried_and_lose_nothing() {
    let kafka = Kafka::start();
    let Some(mock) = &kafka.mock else {
        println!("skipped: injecting broker errors needs the mock cluster");
        return;
    };
    let errors: Vec<RDKafkaRespErr> = BROKER_ERRORS.iter().cycle().take(24).copied().collect();

    // Store -> Kafka with failing Produce requests.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .create_topic("flaky", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    fill_store(&store, "flaky", PARTITIONS, 0..RECORDS, Compression::None);
    kafka.prepare_topic("flaky", PARTITIONS);
    let mut config = kafka.sink(&["flaky"]);
    // Small requests, so that many of them meet the injected errors.
    config
        .kafka
        .push(("batch.num.messages".into(), "20".into()));
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    let stats = Mirror::to_kafka(&store, config).unwrap().join().unwrap();
    assert_eq!(stats.records, RECORDS as u64);
    let in_kafka = read_kafka(&kafka.bootstrap, "flaky", PARTITIONS);
    assert_sink_copy(&read_store(&store, "flaky"), &in_kafka);

    // Kafka -> store with failing Fetch requests.
    let other = tempfile::tempdir().unwrap();
    let dest = open(other.path());
    let mut config = kafka.source(&[]);
    config.partitions = Some(
        (0..PARTITIONS)
            .map(|p| TopicPartition::new("flaky", p))
            .collect(),
    );
    config
        .kafka
        .push(("message.max.bytes".into(), "1000".into()));
    config.kafka.push(("fetch.max.bytes".into(), "2000".into()));
    config
        .kafka
        .push(("max.partition.fetch.bytes".into(), "1000".into()));
    mock.request_errors(RDKafkaApiKey::Fetch, &errors);
    let stats = Mirror::from_kafka(&dest, config).unwrap().join().unwrap();
    assert_eq!(stats.records, RECORDS as u64);
    assert_source_copy(&in_kafka, &read_store(&dest, "flaky"));
}
