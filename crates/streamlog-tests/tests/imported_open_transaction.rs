//! A Kafka topic imported with a transaction still open: the store's transaction
//! coordinator closes it at the next open (aborts it: no commit was decided in this
//! store), although Kafka's markers of that producer carry a coordinator epoch above
//! the store's own (Kafka's rises when its transaction log's leader changes).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use streamlog::fs::{FileSystem, SimFs};
use streamlog::log::{Log, LogConfig, TransactionResult};
use streamlog::{
    BatchBuilder, ConsumerConfig, IsolationLevel, OffsetReset, Record, Store, StoreConfig,
    TopicConfig, TopicPartition,
};

const PID: i64 = 7;

fn open(sim: &SimFs) -> streamlog::Result<Store> {
    Store::open_with(
        "/store",
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(Arc::new(sim.clone()) as Arc<dyn FileSystem>),
    )
}

/// A transactional batch of producer `PID` (epoch 0) holding `value`.
fn txn_batch(seq: i32, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new()
        .producer(PID, 0, seq)
        .transactional(true);
    b.push(1_700_000_000_000, Some(b"k"), Some(value.as_bytes()), &[])
        .unwrap();
    b.finish().unwrap()
}

/// Kafka's `clicks-0`: a transaction committed by coordinator epoch 3, then another
/// of the same producer, still open.
fn kafka_partition(sim: &SimFs) {
    let dir = "/store/clicks-0";
    let log = Log::open_with_fs(Arc::new(sim.clone()), dir, LogConfig::default()).unwrap();
    log.append(&mut txn_batch(0, "committed")).unwrap();
    log.append_marker(PID, 0, 3, TransactionResult::Commit)
        .unwrap();
    log.append(&mut txn_batch(1, "open")).unwrap();
    log.close().unwrap();
    let meta = "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n";
    sim.write_file(&Path::new(dir).join("partition.metadata"), meta.into());
}

/// The values a read_committed consumer reads from the start.
fn read_committed(store: &Store) -> Vec<String> {
    let mut reader = store
        .consumer(
            ConsumerConfig::new("check")
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted)
                .enable_auto_commit(false),
        )
        .unwrap();
    reader.assign(&[TopicPartition::new("clicks", 0)]).unwrap();
    let mut values = Vec::new();
    loop {
        let records = reader.poll(Duration::ZERO).unwrap();
        if records.is_empty() {
            return values;
        }
        for r in records.iter() {
            values.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
    }
}

/// From a review: the open's recovery closed the imported transaction with a marker of
/// coordinator epoch 0, which the partition refused (older than Kafka's 3): the open
/// failed, and so did every later one.
#[test]
fn an_imported_open_transaction_is_aborted_at_the_next_open() {
    let sim = SimFs::new();
    kafka_partition(&sim);
    let store = open(&sim).unwrap();
    store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    let part = store.topic("clicks").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1_700_000_000_001, Some("k"), Some("after"))])
        .unwrap();
    assert_eq!(
        read_committed(&store),
        ["committed"],
        "held by the open one"
    );
    store.close().unwrap();
    for _ in 0..2 {
        let store = open(&sim).unwrap();
        assert_eq!(read_committed(&store), ["committed", "after"]);
        store.close().unwrap();
    }
}
