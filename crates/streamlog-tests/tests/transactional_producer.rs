//! Transactions (issue 14, items 2, 3 and 5): a transactional producer's records and
//! offsets are seen by read_committed consumers all at once or not at all, fencing,
//! timeouts, and recovery after a crash at every file operation.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{sim_store_with, temp_topic_t};
use streamlog::fs::{CrashImage, SimFs};
use streamlog::{
    Consumer, ConsumerConfig, ConsumerGroupMetadata, Error, IsolationLevel, OffsetReset,
    OffsetSpec, Producer, ProducerConfig, ProducerRecord, Store, StoreConfig, TopicConfig,
    TopicPartition,
};

fn txn_producer(store: &Store, id: &str) -> Producer {
    let p = store
        .producer(ProducerConfig::default().transactional_id(id))
        .unwrap();
    p.init_transactions().unwrap();
    p
}

fn reader(store: &Store, isolation: IsolationLevel, topic: &str) -> Consumer {
    let mut c = store
        .consumer(
            ConsumerConfig::new(format!("reader-{isolation:?}-{topic}"))
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation),
        )
        .unwrap();
    c.subscribe([topic]).unwrap();
    c
}

/// Values a consumer returns until a poll returns nothing.
fn drain(c: &mut Consumer) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::ZERO).unwrap();
        if recs.is_empty() {
            return out;
        }
        out.extend(
            recs.iter()
                .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap()),
        );
    }
}

fn send(p: &Producer, topic: &str, partition: i32, value: &str) {
    let _delivery = p
        .send(ProducerRecord::new(topic).partition(partition).value(value))
        .unwrap();
}

/// After the poll that returned a transaction's last records, a read_committed
/// consumer's position rested on the COMMIT marker (its lag 1, a commit short of the
/// end) until another poll; Kafka's moves past the marker in that same poll.
#[test]
fn the_poll_that_returns_a_transactions_last_records_passes_its_marker() {
    let (_dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    for i in 0..10 {
        send(&p, "t", 0, &i.to_string());
    }
    p.commit_transaction().unwrap();
    let mut c = reader(&store, IsolationLevel::ReadCommitted, "t");
    let mut got = 0;
    while got < 10 {
        got += c.poll(Duration::from_secs(5)).unwrap().len();
    }
    let tp = TopicPartition::new("t", 0);
    let end = c.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp];
    assert_eq!(end, 11, "ten records and the marker");
    assert_eq!(c.position(&tp).unwrap(), end);
}

#[test]
fn read_committed_sees_a_transaction_only_once_it_commits() {
    let (_dir, store) = temp_topic_t(2);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "a");
    send(&p, "t", 1, "b");
    p.flush().unwrap();
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    let mut uncommitted = reader(&store, IsolationLevel::ReadUncommitted, "t");
    assert_eq!(drain(&mut committed), Vec::<String>::new());
    let mut seen = drain(&mut uncommitted);
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    // The last stable offset holds read_committed's end offsets back.
    let tp0 = TopicPartition::new("t", 0);
    assert_eq!(
        committed.end_offsets(std::slice::from_ref(&tp0)).unwrap()[&tp0],
        0
    );
    assert_eq!(
        uncommitted.end_offsets(std::slice::from_ref(&tp0)).unwrap()[&tp0],
        1
    );

    p.commit_transaction().unwrap();
    let mut seen = drain(&mut committed);
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    // Past the COMMIT marker: end offsets agree again, and no control record was returned.
    assert_eq!(
        committed.end_offsets(std::slice::from_ref(&tp0)).unwrap()[&tp0],
        2
    );
    assert_eq!(drain(&mut uncommitted), Vec::<String>::new());
}

#[test]
fn aborted_records_and_offsets_are_never_seen_by_read_committed() {
    let (_dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "aborted-1");
    send(&p, "t", 0, "aborted-2");
    let offsets = BTreeMap::from([(TopicPartition::new("t", 0), 7)]);
    p.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
        .unwrap();
    p.abort_transaction().unwrap();
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "kept");
    p.commit_transaction().unwrap();

    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), ["kept"]);
    let mut uncommitted = reader(&store, IsolationLevel::ReadUncommitted, "t");
    assert_eq!(drain(&mut uncommitted), ["aborted-1", "aborted-2", "kept"]);
    let g = store
        .consumer(ConsumerConfig::new("g"))
        .unwrap()
        .committed(&[TopicPartition::new("t", 0)])
        .unwrap();
    assert_eq!(
        g[&TopicPartition::new("t", 0)],
        None,
        "aborted offsets are dropped"
    );
}

#[test]
fn offsets_sent_to_a_transaction_commit_with_it_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let p = txn_producer(&store, "app");
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "x");
        p.send_offsets_to_transaction(
            &BTreeMap::from([(tp.clone(), 5)]),
            &ConsumerGroupMetadata::new("g"),
        )
        .unwrap();
        let c = store.consumer(ConsumerConfig::new("g")).unwrap();
        assert_eq!(
            c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
            None,
            "not before the commit"
        );
        p.commit_transaction().unwrap();
        assert_eq!(
            c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
            Some(5)
        );
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
        Some(5)
    );
}

/// From an API attack: a group id longer than a Kafka string's 32767 bytes was stored
/// cut short, so after a reopen its offsets were another group's (and an id cut inside
/// a UTF-8 character was lost). Such ids, and the empty one, are refused as
/// everywhere else, and the group whose id is the cut one keeps its offset.
#[test]
fn send_offsets_to_transaction_refuses_group_ids_a_kafka_string_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    let longest = "g".repeat(32_767);
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let mut c = store.consumer(ConsumerConfig::new(&longest)).unwrap();
        c.commit_sync_offsets(&BTreeMap::from([(tp.clone(), 1)]))
            .unwrap();
        let p = txn_producer(&store, "app");
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "x");
        for group in ["g".repeat(40_000), "é".repeat(20_000), String::new()] {
            let r = p.send_offsets_to_transaction(
                &BTreeMap::from([(tp.clone(), 4)]),
                &ConsumerGroupMetadata::new(&group),
            );
            assert!(
                matches!(r, Err(Error::InvalidArgument { name: "group", .. })),
                "a group id of {} bytes: {r:?}",
                group.len()
            );
        }
        p.commit_transaction().unwrap();
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let c = store.consumer(ConsumerConfig::new(&longest)).unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
        Some(1)
    );
    assert_eq!(store.list_groups(), vec![longest]);
}

#[test]
fn a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction() {
    let (_dir, store) = temp_topic_t(1);
    let old = txn_producer(&store, "app");
    old.begin_transaction().unwrap();
    send(&old, "t", 0, "zombie");
    old.flush().unwrap();
    let new = txn_producer(&store, "app");
    // The old one's transaction was aborted, and its next calls are refused.
    assert!(matches!(
        old.commit_transaction(),
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(old.begin_transaction(), Err(Error::Fenced { .. })));
    new.begin_transaction().unwrap();
    send(&new, "t", 0, "fresh");
    new.commit_transaction().unwrap();
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), ["fresh"]);
}

#[test]
fn a_fenced_producer_cannot_append_to_a_partition_of_its_aborted_transaction() {
    let (_dir, store) = temp_topic_t(1);
    let old = store
        .producer(
            ProducerConfig::default()
                .transactional_id("app")
                .linger_ms(0),
        )
        .unwrap();
    old.init_transactions().unwrap();
    old.begin_transaction().unwrap();
    send(&old, "t", 0, "before");
    let _new = txn_producer(&store, "app");
    // Already added to its transaction: the send checks the session (and the
    // partition would refuse the old epoch).
    assert_fenced_by_a_newer_producer(&old);
    assert!(matches!(
        old.commit_transaction(),
        Err(Error::Fenced { .. })
    ));
    let mut uncommitted = reader(&store, IsolationLevel::ReadUncommitted, "t");
    assert_eq!(drain(&mut uncommitted), ["before"]);
}

/// `old`'s send of "after" to `t`-0 fails: a newer producer with its id fenced it
/// (not the store's timeout abort).
fn assert_fenced_by_a_newer_producer(old: &Producer) {
    let late = old
        .send(ProducerRecord::new("t").partition(0).value("after"))
        .and_then(|d| d.wait());
    assert!(matches!(late, Err(Error::Fenced { .. })), "{late:?}");
    assert!(
        !late.unwrap_err().is_transaction_timeout(),
        "a newer producer's fence"
    );
}

/// A store on a manual clock with topic `t`, and a transactional producer of `config`
/// whose open transaction holds `value` in `t`-0 (appended).
fn clocked_open_transaction(
    store_config: StoreConfig,
    config: ProducerConfig,
    value: &str,
) -> (
    tempfile::TempDir,
    std::sync::Arc<streamlog::log::ManualClock>,
    Store,
    Producer,
) {
    let dir = tempfile::tempdir().unwrap();
    let (clock, store) = common::clocked_store(dir.path(), store_config);
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = store.producer(config).unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    send(&p, "t", 0, value);
    p.flush().unwrap();
    (dir, clock, store, p)
}

/// The same once the partition forgot the producer id (its last batch older than
/// `producer_id_expiration_ms`): the partition no longer knew the fenced epoch, so the
/// old producer's record was appended and opened a transaction no coordinator knew
/// of, which the new producer's next commit would have committed (Kafka's hanging
/// transaction, KIP-890). Each send now checks the producer's session.
#[test]
fn a_fenced_producer_cannot_append_after_the_partition_forgot_its_id() {
    let (_dir, clock, store, old) = clocked_open_transaction(
        StoreConfig::default().producer_id_expiration_ms(1_000),
        ProducerConfig::default()
            .transactional_id("app")
            .linger_ms(0),
        "before",
    );
    let _new = txn_producer(&store, "app");
    clock.advance(60_000);
    store.run_maintenance().unwrap();
    assert_fenced_by_a_newer_producer(&old);
    let mut uncommitted = reader(&store, IsolationLevel::ReadUncommitted, "t");
    assert_eq!(drain(&mut uncommitted), ["before"]);
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), Vec::<String>::new());
    let tp = TopicPartition::new("t", 0);
    let end = committed.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp];
    assert_eq!(end, 2, "stable up to the end (the record and its abort)");
}

/// From a review: a batch still lingering when the store aborted the transaction after
/// its timeout is refused its epoch at append; the producer then reported only "a
/// partition refused its epoch", not that its transaction timed out (which a caller
/// alone using the id may start over from).
#[test]
fn a_batch_refused_after_a_timeout_abort_reports_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, store) = common::clocked_store(dir.path(), StoreConfig::default());
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = store
        .producer(
            ProducerConfig::default()
                .transactional_id("lingering")
                .transaction_timeout_ms(1000)
                .linger_ms(600_000),
        )
        .unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    let sent = p
        .send(ProducerRecord::new("t").partition(0).value("lingers"))
        .unwrap();
    clock.advance(1001);
    assert_eq!(store.run_maintenance().unwrap().transactions_aborted, 1);
    let err = p.commit_transaction().unwrap_err();
    assert!(err.is_transaction_timeout(), "{err}");
    // The batch's own error says so too (it said a newer producer fenced it).
    let refused = sent.wait().unwrap_err();
    assert!(refused.is_transaction_timeout(), "{refused}");
    let again = p.begin_transaction().unwrap_err();
    assert!(again.is_transaction_timeout(), "{again}");
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let (_dir, clock, store, p) = clocked_open_transaction(
        StoreConfig::default(),
        ProducerConfig::default()
            .transactional_id("slow")
            .transaction_timeout_ms(1000),
        "late",
    );
    assert_eq!(store.run_maintenance().unwrap().transactions_aborted, 0);
    clock.advance(1001);
    assert_eq!(store.run_maintenance().unwrap().transactions_aborted, 1);
    let err = p.commit_transaction().unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // Told apart from a newer producer's fence (a new producer may take the id and
    // start over), also by every later call (it used to say only "an earlier call
    // found it fenced").
    assert!(err.is_transaction_timeout(), "{err}");
    let again = p.begin_transaction().unwrap_err();
    assert!(again.is_transaction_timeout(), "{again}");
    // The partition is stable again: read_committed reaches its end.
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), Vec::<String>::new());
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        committed.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp],
        2
    );
}

#[test]
fn transactional_calls_out_of_order_are_typed_errors() {
    let (_dir, store) = temp_topic_t(1);
    let plain = store.producer(ProducerConfig::default()).unwrap();
    assert!(matches!(
        plain.begin_transaction(),
        Err(Error::TransactionState { .. })
    ));
    let p = store
        .producer(ProducerConfig::default().transactional_id("app"))
        .unwrap();
    let send = |p: &Producer| p.send(ProducerRecord::new("t").value("x")).map(|_| ());
    assert!(
        matches!(send(&p), Err(Error::TransactionState { .. })),
        "before init"
    );
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::TransactionState { .. })
    ));
    p.init_transactions().unwrap();
    assert!(matches!(
        p.init_transactions(),
        Err(Error::TransactionState { .. })
    ));
    assert!(
        matches!(send(&p), Err(Error::TransactionState { .. })),
        "outside a transaction"
    );
    assert!(matches!(
        p.commit_transaction(),
        Err(Error::TransactionState { .. })
    ));
    p.begin_transaction().unwrap();
    assert!(matches!(
        p.begin_transaction(),
        Err(Error::TransactionState { .. })
    ));
    send(&p).unwrap();
    p.commit_transaction().unwrap();
    for bad in [
        ProducerConfig::default().transactional_id(""),
        ProducerConfig::default()
            .transactional_id("x")
            .enable_idempotence(false),
        ProducerConfig::default().transaction_timeout_ms(0),
    ] {
        assert!(matches!(
            store.producer(bad),
            Err(Error::InvalidConfig { .. })
        ));
    }
}

#[test]
fn a_read_committed_poll_wakes_when_the_transaction_commits() {
    let (_dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "v");
    p.flush().unwrap();
    let mut c = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(()).unwrap();
        // Returns as soon as the COMMIT marker moves the last stable offset.
        let recs = c.poll(Duration::from_secs(60)).unwrap();
        recs.iter()
            .map(|r| r.value().unwrap().to_vec())
            .collect::<Vec<_>>()
    });
    rx.recv().unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(t.join().unwrap(), [b"v".to_vec()]);
}

/// A transaction over three partitions and the offsets of a group, crashed after every
/// file operation: after recovery a read_committed reader sees all of it or none, the
/// group's offset is committed exactly when the data is, and a commit that returned is
/// always all of it.
#[test]
fn a_crash_at_any_point_of_a_transaction_leaves_all_of_it_or_none() {
    crash_sweep(3, true);
}

/// The same for a transaction of three batches to one partition, which commits with a
/// single fsync of its records and COMMIT marker.
#[test]
fn a_crash_at_any_point_of_a_one_partition_transaction_leaves_all_of_it_or_none() {
    crash_sweep(1, false);
}

fn crash_sweep(partitions: i32, offsets: bool) {
    // Returns whether the commit returned Ok, and the file operations the setup took.
    let run = |fs: &SimFs| -> (bool, u64) {
        let store = sim_store_with(fs, StoreConfig::default().background_maintenance(false));
        let Ok(store) = store else { return (false, 0) };
        let mut setup = 0;
        let committed = (|| -> streamlog::Result<()> {
            if !store.list_topics().contains(&"t".to_string()) {
                store.create_topic("t", TopicConfig::default().partitions(partitions))?;
                // The input the offsets are of, durable before the transaction.
                store.create_topic("in", TopicConfig::default())?;
                let input = store.topic("in")?.partition(0)?;
                input.append(&[streamlog::Record::new(0, None::<&[u8]>, Some("order"))])?;
                input.flush()?;
            }
            setup = fs.mutating_op_count();
            let p = store.producer(
                ProducerConfig::default()
                    .transactional_id("app")
                    .linger_ms(0),
            )?;
            p.init_transactions()?;
            p.begin_transaction()?;
            for i in 0..3 {
                let _delivery = p.send(
                    ProducerRecord::new("t")
                        .partition(i % partitions)
                        .value(format!("v{i}")),
                )?;
            }
            if offsets {
                p.send_offsets_to_transaction(
                    &BTreeMap::from([(TopicPartition::new("in", 0), 1)]),
                    &ConsumerGroupMetadata::new("g"),
                )?;
            }
            p.commit_transaction()
        })()
        .is_ok();
        (committed, setup)
    };
    // The file operations of the transaction: from the producer's start to the end.
    let (ops, total) = {
        let fs = SimFs::new();
        let (ok, setup) = run(&fs);
        assert!(ok);
        (setup, fs.mutating_op_count())
    };
    let mut outcomes = [0usize; 2];
    for k in ops..total {
        let fs = SimFs::new();
        fs.crash_after(k);
        let (returned_ok, _) = run(&fs);
        for mode in [
            CrashImage::KeepAll,
            CrashImage::DropAll,
            CrashImage::Random(k),
        ] {
            let image = fs.crash_image(mode);
            let store =
                sim_store_with(&image, StoreConfig::default().background_maintenance(false))
                    .unwrap_or_else(|e| panic!("reopen after op {k} ({mode:?}): {e}"));
            if !store.list_topics().contains(&"t".to_string()) {
                assert!(!returned_ok);
                continue;
            }
            let mut c = reader(&store, IsolationLevel::ReadCommitted, "t");
            let mut seen = drain(&mut c);
            seen.sort();
            let tp = TopicPartition::new("in", 0);
            let offset = store
                .consumer(ConsumerConfig::new("g"))
                .unwrap()
                .committed(std::slice::from_ref(&tp))
                .unwrap()[&tp];
            match seen.len() {
                0 => {
                    assert!(
                        !returned_ok,
                        "op {k} {mode:?}: a commit that returned was lost"
                    );
                    assert_eq!(offset, None, "op {k} {mode:?}: offsets without data");
                    outcomes[0] += 1;
                }
                3 => {
                    assert_eq!(seen, ["v0", "v1", "v2"]);
                    let expected = offsets.then_some(1);
                    assert_eq!(offset, expected, "op {k} {mode:?}: data without offsets");
                    outcomes[1] += 1;
                }
                _ => panic!("op {k} {mode:?}: part of a transaction is visible: {seen:?}"),
            }
            // Every transaction is closed: the partitions are stable to their end.
            for i in 0..partitions {
                let tp = TopicPartition::new("t", i);
                let end = c.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp];
                let part = store.topic("t").unwrap().partition(i).unwrap();
                assert_eq!(
                    end,
                    part.log_end_offset(),
                    "op {k} {mode:?}: {tp} is not stable"
                );
            }
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// The producer id and epoch of the batches of `t`-0, in order (markers included).
fn producers_of(store: &Store) -> Vec<(i64, i16)> {
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.read_batches(part.log_start_offset(), usize::MAX)
        .unwrap()
        .iter()
        .map(|b| (b.header().producer_id, b.header().producer_epoch))
        .collect()
}

#[test]
fn a_transactional_id_keeps_its_producer_id_across_restarts_and_resends_count_once() {
    let fs = SimFs::new();
    let config = || StoreConfig::default().background_maintenance(false);
    let image = {
        let store = sim_store_with(&fs, config()).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let p = txn_producer(&store, "orders-app");
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "order-1");
        p.commit_transaction().unwrap();
        // The next transaction is cut short by a crash after its record reached the log.
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "order-2");
        p.flush().unwrap();
        store
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .flush()
            .unwrap();
        // The process dies here (kill -9): what the disk holds now is what the next
        // process finds.
        fs.crash_image(CrashImage::KeepAll)
    };
    let store = sim_store_with(&image, config()).unwrap();
    let report = store.recovery_report();
    assert_eq!(report.transactions.len(), 1, "{report:?}");
    assert!(!report.transactions[0].committed);
    let first = producers_of(&store);
    // The restarted process sends the unfinished work again.
    let p = txn_producer(&store, "orders-app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "order-2");
    p.commit_transaction().unwrap();
    let all = producers_of(&store);
    let pid = first[0].0;
    assert!(
        all.iter().all(|&(id, _)| id == pid),
        "one producer id for the transactional id across the restart: {all:?}"
    );
    assert!(
        all.last().unwrap().1 > first.last().unwrap().1,
        "a newer epoch: {all:?}"
    );
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), ["order-1", "order-2"]);
}

#[test]
fn a_topic_deleted_during_a_transaction_does_not_block_its_commit() {
    let (_dir, store) = temp_topic_t(1);
    store.create_topic("gone", TopicConfig::default()).unwrap();
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "kept");
    send(&p, "gone", 0, "lost");
    p.flush().unwrap();
    store.delete_topic("gone").unwrap();
    p.commit_transaction().unwrap();
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), ["kept"]);
    // The transactional id goes on working.
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "next");
    p.commit_transaction().unwrap();
    assert_eq!(drain(&mut committed), ["next"]);
}

/// A topic deleted and created again during a transaction is a new partition to it:
/// the transaction's records in the new topic get its COMMIT marker, so read_committed
/// consumers see them and records after them. The transaction counted the new `t-0` as
/// the old one, already added: its marker went nowhere and the new partition's last
/// stable offset stayed at 0 until a reopen.
#[test]
fn a_topic_recreated_during_a_transaction_gets_its_marker() {
    let (_dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "old");
    p.flush().unwrap();
    store.delete_topic("t").unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    send(&p, "t", 0, "new");
    p.commit_transaction().unwrap();
    let plain = store.producer(ProducerConfig::default()).unwrap();
    plain
        .send(ProducerRecord::new("t").partition(0).value("plain"))
        .unwrap()
        .wait()
        .unwrap();
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), ["new", "plain"]);
    // The marker is in the new partition: record, marker, plain record.
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        committed.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp],
        3
    );
}

/// When `delete_records` (or retention) moves the log start past the first offset of an
/// open transaction, the last stable offset is the log start, as in Kafka, not below
/// it: a read_committed consumer that starts at the end reads on from there once the
/// transaction commits. It was the open transaction's first offset, below the start:
/// the consumer reset to it, got `OffsetOutOfRange` at every poll, and after the commit
/// skipped to the end past two committed records.
#[test]
fn the_last_stable_offset_is_never_below_the_log_start() {
    let (_dir, store) = temp_topic_t(1);
    let tp = TopicPartition::new("t", 0);
    let p = txn_producer(&store, "app");
    let plain = store.producer(ProducerConfig::default()).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "a");
    p.flush().unwrap();
    send(&plain, "t", 0, "b");
    send(&plain, "t", 0, "c");
    plain.flush().unwrap();
    assert_eq!(store.delete_records("t", 0, 2).unwrap(), 2);

    let mut c = store
        .consumer(
            ConsumerConfig::new("late")
                .auto_offset_reset(OffsetReset::Latest)
                .isolation_level(IsolationLevel::ReadCommitted),
        )
        .unwrap();
    c.subscribe(["t"]).unwrap();
    assert_eq!(drain(&mut c), Vec::<String>::new());
    let ends = c.end_offsets(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(
        ends[&tp], 2,
        "the log start, not the open transaction's offset 0"
    );
    assert_eq!(c.position(&tp).unwrap(), 2);
    send(&p, "t", 0, "d");
    p.commit_transaction().unwrap();
    assert_eq!(drain(&mut c), ["c", "d"]);
}

/// Offsets a transaction commits rank where their records stand in `__consumer_offsets`
/// (Kafka's rule, which compaction preserves): a plain commit written after them, but
/// before the transaction's marker, still wins, before and after a reopen.
#[test]
fn a_plain_commit_written_after_a_transactions_offsets_wins() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("in", 0);
    {
        let store = Store::open(dir.path()).unwrap();
        store.create_topic("in", TopicConfig::default()).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let input = store.topic("in").unwrap().partition(0).unwrap();
        for i in 0..10 {
            input
                .append(&[streamlog::Record::new(
                    0,
                    None::<&[u8]>,
                    Some(i.to_string()),
                )])
                .unwrap();
        }
        let p = txn_producer(&store, "app");
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "out");
        p.send_offsets_to_transaction(
            &BTreeMap::from([(tp.clone(), 5)]),
            &ConsumerGroupMetadata::new("g"),
        )
        .unwrap();
        let mut plain = store.consumer(ConsumerConfig::new("g")).unwrap();
        plain
            .commit_sync_offsets(&BTreeMap::from([(tp.clone(), 9)]))
            .unwrap();
        p.commit_transaction().unwrap();
        assert_eq!(
            plain.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
            Some(9)
        );
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
        Some(9)
    );
}

/// A consumer that lost its partitions (a zombie) cannot commit offsets for them through
/// a transaction: the group checks ownership as for a plain commit (KIP-447).
#[test]
fn offsets_from_a_consumer_that_lost_its_partitions_are_refused() {
    let (_dir, store) = temp_topic_t(1);
    store.create_topic("in", TopicConfig::default()).unwrap();
    let tp = TopicPartition::new("in", 0);
    let member = |store: &Store| {
        let mut c = store
            .consumer(ConsumerConfig::new("g").enable_auto_commit(false))
            .unwrap();
        c.subscribe(["in"]).unwrap();
        c.poll(Duration::ZERO).unwrap();
        c
    };
    let mut zombie = member(&store);
    assert_eq!(zombie.assignment(), std::slice::from_ref(&tp));
    let stale = zombie.group_metadata().unwrap();
    zombie.close().unwrap();
    let owner = member(&store);
    assert_eq!(owner.assignment(), std::slice::from_ref(&tp));
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    let offsets = BTreeMap::from([(tp.clone(), 0)]);
    let err = p.send_offsets_to_transaction(&offsets, &stale).unwrap_err();
    assert!(matches!(err, Error::CommitFailed { .. }), "{err}");
    // As in Kafka, the refusal makes the transaction abort-only.
    assert!(p.commit_transaction().is_err());
    p.abort_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(&offsets, &owner.group_metadata().unwrap())
        .unwrap();
    p.commit_transaction().unwrap();
}

/// A consumer that lost a partition and got it back later is the owner again, but
/// offsets that come with metadata from before it lost it are a zombie's (a thread
/// still finishing work of the old generation): they would move the group back over
/// what the partition's owner in between committed. Refused, as Kafka refuses a stale
/// generation (KIP-447); offsets with the current metadata pass.
#[test]
fn offsets_with_metadata_from_before_a_partition_was_lost_and_regained_are_refused() {
    let (_dir, store) = temp_topic_t(1);
    store
        .create_topic("in", TopicConfig::default().partitions(2))
        .unwrap();
    let in0 = TopicPartition::new("in", 0);
    // Range assignment in member id order: `a-..` takes in-0 from `z-..`.
    let member = |store: &Store, client_id: &str| {
        let mut c = store
            .consumer(
                ConsumerConfig::new("g")
                    .client_id(client_id)
                    .enable_auto_commit(false),
            )
            .unwrap();
        c.subscribe(["in"]).unwrap();
        c.poll(Duration::ZERO).unwrap();
        c
    };
    let mut first = member(&store, "z");
    assert_eq!(first.assignment().len(), 2);
    let stale = first.group_metadata().unwrap();
    let mut second = member(&store, "a");
    // Rebalances until in-0 has moved to `second`.
    for _ in 0..10 {
        if second.assignment().contains(&in0) {
            break;
        }
        first.poll(Duration::ZERO).unwrap();
        second.poll(Duration::ZERO).unwrap();
    }
    assert!(second.assignment().contains(&in0), "in-0 moved");
    assert!(!first.assignment().contains(&in0));
    second
        .commit_sync_offsets(&BTreeMap::from([(in0.clone(), 7)]))
        .unwrap();
    second.close().unwrap();
    first.poll(Duration::ZERO).unwrap();
    assert!(first.assignment().contains(&in0), "in-0 came back");

    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    let offsets = BTreeMap::from([(in0.clone(), 3)]);
    let err = p.send_offsets_to_transaction(&offsets, &stale).unwrap_err();
    assert!(matches!(err, Error::CommitFailed { .. }), "{err}");
    let current = first.group_metadata().unwrap();
    assert!(current.generation_id() > stale.generation_id());
    // The refused offsets made the transaction abort-only (Kafka's abortable error).
    let refused = p.send_offsets_to_transaction(&BTreeMap::from([(in0.clone(), 9)]), &current);
    assert!(
        matches!(refused, Err(Error::TransactionState { .. })),
        "{refused:?}"
    );
    p.abort_transaction().unwrap();
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(&BTreeMap::from([(in0.clone(), 9)]), &current)
        .unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(
        first.committed(std::slice::from_ref(&in0)).unwrap()[&in0],
        Some(9)
    );
}

#[test]
fn closing_a_producer_aborts_its_open_transaction() {
    let (_dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "unfinished");
    p.close().unwrap();
    let mut committed = reader(&store, IsolationLevel::ReadCommitted, "t");
    assert_eq!(drain(&mut committed), Vec::<String>::new());
    // Aborted, not left open: the partition is stable to its end (record + marker).
    let tp = TopicPartition::new("t", 0);
    assert_eq!(
        committed.end_offsets(std::slice::from_ref(&tp)).unwrap()[&tp],
        2
    );
    let mut uncommitted = reader(&store, IsolationLevel::ReadUncommitted, "t");
    assert_eq!(drain(&mut uncommitted), ["unfinished"]);
}

/// `send_offsets_to_transaction` and `commit_transaction` on two clones of one
/// producer, started together: either the offsets come first and commit with the
/// transaction, or the commit comes first and the offsets find no open transaction.
/// The offsets call checked for an open transaction, let go of the producer's state
/// while it looked up each partition, and went on with a session the commit had
/// replaced meanwhile: the coordinator refused it as from a newer producer, and
/// `Fenced` ended the producer for good.
///
/// Correct code passes every round whatever the interleaving. The thousand partitions
/// make the old window long enough that the bug showed within a few rounds.
#[test]
fn offsets_sent_while_a_clone_commits_are_not_taken_for_a_fenced_producer() {
    use std::sync::{Arc, Barrier};

    let fs = SimFs::new();
    let store = sim_store_with(&fs, StoreConfig::default().background_maintenance(false)).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    store
        .create_topic("in", TopicConfig::default().partitions(1000))
        .unwrap();
    let offsets: BTreeMap<TopicPartition, i64> = (0..1000)
        .map(|i| (TopicPartition::new("in", i), 1))
        .collect();
    let p = txn_producer(&store, "app");
    let meta = ConsumerGroupMetadata::new("g");
    for round in 0..30 {
        p.begin_transaction().unwrap();
        send(&p, "t", 0, "out");
        let barrier = Arc::new(Barrier::new(2));
        let (p2, b2, offsets2, meta2) = (p.clone(), barrier.clone(), offsets.clone(), meta.clone());
        let sender = std::thread::spawn(move || {
            b2.wait();
            p2.send_offsets_to_transaction(&offsets2, &meta2)
        });
        barrier.wait();
        let committed = p.commit_transaction();
        let sent = sender.join().unwrap();
        committed.unwrap_or_else(|e| panic!("round {round}: commit {e}, offsets {sent:?}"));
        match sent {
            Ok(()) => {}
            Err(Error::TransactionState { .. }) => {} // the commit came first
            Err(e) => panic!("round {round}: offsets racing the commit: {e}"),
        }
    }
}

/// `Partition::read` returned the COMMIT marker as an ordinary record (key
/// `00 00 00 01`), which no Kafka reader shows an application; the read-only reader
/// left it out. Both now return the data only.
#[test]
fn partition_reads_leave_out_transaction_markers() {
    let (dir, store) = temp_topic_t(1);
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    send(&p, "t", 0, "v");
    p.commit_transaction().unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(part.log_end_offset(), 2, "the record and its marker");
    let values = |records: Vec<streamlog::Record>| -> Vec<(i64, Vec<u8>)> {
        records
            .into_iter()
            .map(|r| (r.offset, r.value.unwrap_or_default().to_vec()))
            .collect()
    };
    assert_eq!(values(part.read(0, 1 << 20).unwrap()), [(0, b"v".to_vec())]);
    assert_eq!(values(part.read(1, 1 << 20).unwrap()), []);
    let reader = Store::open_read_only(dir.path()).unwrap();
    let ro = reader.partition("t", 0).unwrap();
    assert_eq!(values(ro.read(0, 1 << 20).unwrap()), [(0, b"v".to_vec())]);
}

/// From a review: `_.transaction_state` passed as a user topic (it does not start with
/// `__`), and Kafka takes it for one name with `__transaction_state` (up to '.' and
/// '_'): the internal topic, created at the first transactional producer, was then
/// refused, and so was every transactional producer of the store. Such names are
/// reserved too.
#[test]
fn a_topic_named_like_an_internal_one_up_to_dots_is_refused() {
    let (_dir, store) = temp_topic_t(1);
    for name in ["_.transaction_state", "._consumer_offsets", "..other"] {
        assert!(
            matches!(
                store.create_topic(name, TopicConfig::default()),
                Err(Error::InvalidArgument { name: "topic", .. })
            ),
            "{name}"
        );
    }
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    let sent = p.send(ProducerRecord::new("t").value("v")).unwrap();
    p.commit_transaction().unwrap();
    assert_eq!(sent.wait().unwrap().offset, 0);
}

/// A store whose topic `t` (`partitions` of them) holds "a", "b", "c" committed in
/// `t-0`, read by a consumer of group `g` assigned every partition; then `t` is deleted
/// and created again. Returns the store (in `dir`), the transactional producer that
/// wrote them, and the consumer.
fn read_then_recreated(
    dir: &std::path::Path,
    partitions: i32,
) -> (Store, streamlog::Producer, streamlog::Consumer) {
    let store = Store::open(dir).unwrap();
    let config = || TopicConfig::default().partitions(partitions);
    store.create_topic("t", config()).unwrap();
    store.create_topic("out", TopicConfig::default()).unwrap();
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    for v in ["a", "b", "c"] {
        send(&p, "t", 0, v);
    }
    p.commit_transaction().unwrap();
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    let all: Vec<_> = (0..partitions)
        .map(|n| TopicPartition::new("t", n))
        .collect();
    c.assign(&all).unwrap();
    assert_eq!(drain(&mut c), ["a", "b", "c"]);
    store.delete_topic("t").unwrap();
    store.create_topic("t", config()).unwrap();
    (store, p, c)
}

/// From the groups review: offsets sent with a consumer's metadata were tagged with the
/// topic as it is now, so a consumer that read `t` before `t` was deleted and created
/// again (no rebalance between) committed its old positions into the new topic: a
/// restart then skipped the new topic's first records. A plain commit refuses this
/// (`NotFound`); so does the transactional one now, from the topic ids the metadata
/// carries (Kafka's `new ConsumerGroupMetadata(group)` carries none and is not checked).
#[test]
fn offsets_a_consumer_read_from_a_deleted_topic_never_commit_into_its_successor() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, p, mut c) = read_then_recreated(dir.path(), 1);
    let tp = TopicPartition::new("t", 0);
    let read = BTreeMap::from([(tp.clone(), 3)]);
    let not_found = |r: streamlog::Result<()>| matches!(r, Err(Error::NotFound { .. }));
    assert!(not_found(c.commit_sync_offsets(&read)), "the plain commit");
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "x");
    assert!(not_found(p.send_offsets_to_transaction(
        &read,
        &c.group_metadata().unwrap()
    )));
    p.commit_transaction().unwrap();
    assert_eq!(c.committed(std::slice::from_ref(&tp)).unwrap()[&tp], None);
}

/// From a review: the metadata carried one topic id per topic, taken from whichever
/// assigned partition came last; a consumer moves each partition of a recreated topic
/// to the new topic only when it next reads (or seeks) it, so after a seek of `t-1`
/// the metadata named the new topic, and offsets of the old `t-0` passed the check
/// and were committed into the new `t-0`, skipping its first records.
#[test]
fn offsets_of_a_partition_not_yet_moved_to_the_recreated_topic_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, p, mut c) = read_then_recreated(dir.path(), 2);
    let (t0, t1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    c.seek(&t1, 0).unwrap(); // moves t-1 (only) to the new topic
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "x");
    let sent = p.send_offsets_to_transaction(
        &BTreeMap::from([(t0.clone(), 3)]),
        &c.group_metadata().unwrap(),
    );
    assert!(matches!(sent, Err(Error::NotFound { .. })), "{sent:?}");
    p.abort_transaction().unwrap();
    assert_eq!(c.committed(std::slice::from_ref(&t0)).unwrap()[&t0], None);
}

/// From the groups review: a group deleted while an open transaction held offsets for
/// it came back when the transaction committed, and kept them after a reopen until
/// compaction (which keeps each key's newest record, the tombstone) dropped them: the
/// group's position depended on whether the offsets topic had been compacted. As in
/// Kafka, the deletion's tombstones cancel the transaction's pending offsets, including
/// those of a group with nothing committed yet (which `delete_group` refused before).
#[test]
fn a_group_deleted_during_a_transaction_stays_deleted_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    let committed = |store: &Store, group: &str| {
        let c = store.consumer(ConsumerConfig::new(group)).unwrap();
        c.committed(std::slice::from_ref(&tp)).unwrap()[&tp]
    };
    {
        let store = Store::open(dir.path()).unwrap();
        for t in ["t", "out"] {
            store.create_topic(t, TopicConfig::default()).unwrap();
        }
        store
            .alter_group_offsets("g", std::slice::from_ref(&tp), OffsetSpec::Offset(0))
            .unwrap();
        let p = txn_producer(&store, "app");
        p.begin_transaction().unwrap();
        send(&p, "out", 0, "x");
        for group in ["g", "only-pending"] {
            p.send_offsets_to_transaction(
                &BTreeMap::from([(tp.clone(), 5)]),
                &ConsumerGroupMetadata::new(group),
            )
            .unwrap();
            store.delete_group(group).unwrap();
        }
        p.commit_transaction().unwrap();
        for group in ["g", "only-pending"] {
            assert_eq!(committed(&store, group), None, "{group}");
        }
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    for group in ["g", "only-pending"] {
        assert_eq!(committed(&store, group), None, "{group} after a reopen");
    }
}

/// From the read_committed review: a poll read a segment's batches, then retention
/// dropped that segment (and its `.txnindex`) before the poll looked up the aborted
/// transactions among them: the lookup found none, and the aborted records were
/// returned as committed. The poll now sees the log start retention raised first and
/// resets (the records are gone anyway). The read is held at the first segment
/// retention keeps, with the intercepting file system (the ones before it read
/// already), while retention removes those.
#[test]
fn retention_during_a_read_committed_poll_never_passes_aborted_records() {
    use common::intercept::{Hooks, InterceptFs};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use streamlog::fs::FileSystem;
    use streamlog::log::ManualClock;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let armed = Arc::new(AtomicBool::new(false));
    // The segment to hold the read at: the active one when the clock moves.
    let kept: Arc<std::sync::Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, released) = (
        std::sync::Mutex::new(entered_tx),
        std::sync::Mutex::new(released),
    );
    let (hold, at) = (armed.clone(), kept.clone());
    let sim = SimFs::new();
    let fs = InterceptFs::new(
        sim.clone(),
        Hooks {
            // Every read of a segment goes through `read_at`, where the hook is.
            before_map: Box::new(|_| Err(std::io::Error::other("no mappings here"))),
            before_read: Box::new(move |path, _| {
                let kept = at.lock().unwrap().as_deref() == Some(path);
                if kept && hold.swap(false, Ordering::SeqCst) {
                    entered_tx.lock().unwrap().send(()).unwrap();
                    common::recv(&released.lock().unwrap(), "the retention pass");
                }
            }),
            ..Hooks::default()
        },
    );
    let store = Store::open_with(
        "/store",
        StoreConfig::default()
            .file_system(Arc::new(fs) as Arc<dyn FileSystem>)
            .clock(clock.clone())
            .background_maintenance(false),
    )
    .unwrap();
    let config = TopicConfig::default()
        .segment_bytes(1024)
        .retention_ms(3_600_000);
    store.create_topic("t", config).unwrap();
    let p = txn_producer(&store, "app");
    // A day old: an aborted transaction, and committed records that fill the segment.
    let write = |what: &str, n: usize, commit: bool| {
        p.begin_transaction().unwrap();
        for i in 0..n {
            send(&p, "t", 0, &format!("{what}-{i:0100}"));
        }
        if commit {
            p.commit_transaction().unwrap();
        } else {
            p.abort_transaction().unwrap();
        }
    };
    write("aborted", 3, false);
    write("committed-old", 12, true);
    let segments = || store.describe_topic("t").unwrap().partitions[0].segment_count;
    assert!(segments() > 1, "the first segment is sealed");
    let active = sim
        .files(std::path::Path::new("/store/t-0"))
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    *kept.lock().unwrap() = Some(active);
    clock.advance(86_400_000);
    // Now: the next segments, which retention keeps.
    let before = segments();
    write("committed-new", 3, true);
    assert!(segments() >= before);
    let mut c = reader(&store, IsolationLevel::ReadCommitted, "t");
    armed.store(true, Ordering::SeqCst);
    let polled = std::thread::spawn(move || {
        let records = c.poll(Duration::ZERO).unwrap();
        records
            .iter()
            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
            .collect::<Vec<_>>()
    });
    common::recv(&entered, "the poll reads the segment retention keeps");
    let report = store.run_maintenance().unwrap();
    assert!(report.segments_deleted > 0, "{report:?}");
    release.send(()).unwrap();
    let values = polled.join().unwrap();
    assert!(
        values.iter().all(|v| v.starts_with("committed")),
        "{values:?}"
    );
}

/// Closes the consumer it holds when its own consumer's partitions are revoked: a
/// rebalance while that consumer's revoke callback runs.
struct LeaveOnRevoke(Arc<parking_lot::Mutex<Option<streamlog::Consumer>>>);

impl streamlog::RebalanceListener for LeaveOnRevoke {
    fn on_partitions_revoked(&mut self, _: &mut streamlog::Consumer, _: &[TopicPartition]) {
        if let Some(mut other) = self.0.lock().take() {
            other.close().unwrap();
        }
    }
    fn on_partitions_assigned(&mut self, _: &mut streamlog::Consumer, _: &[TopicPartition]) {}
}

/// A partition a member took back in a rebalance that happened while its revoke
/// callback ran was recorded as its since the generation it had synced to, before
/// that rebalance: offsets with metadata of that generation passed the KIP-447 check
/// for it (from a groups hunt). The member takes it at its next sync, in the
/// generation that gave it. (Review: taken at once but owned since the new generation,
/// the member's own commits with its metadata, a streams thread's from its revoke
/// callback, were refused until then.)
#[test]
fn a_partition_given_by_a_rebalance_in_the_revoke_callback_is_taken_at_the_next_sync() {
    let (_dir, store) = temp_topic_t(1);
    store
        .create_topic("in", TopicConfig::default().partitions(2))
        .unwrap();
    let config = |id: &str| {
        ConsumerConfig::new("g")
            .client_id(id)
            .enable_auto_commit(false)
            .assignor(streamlog::Assignor::CooperativeSticky)
    };
    let mut first = store.consumer(config("z")).unwrap();
    first.subscribe(["in"]).unwrap();
    first.poll(Duration::ZERO).unwrap();
    assert_eq!(first.assignment().len(), 2);
    let second = Arc::new(parking_lot::Mutex::new(None));
    first.set_rebalance_listener(LeaveOnRevoke(second.clone()));
    let mut joining = store.consumer(config("a")).unwrap();
    joining.subscribe(["in"]).unwrap();
    joining.poll(Duration::ZERO).unwrap();
    *second.lock() = Some(joining);
    // Gives one partition up; the callback's close makes another rebalance, which
    // gives it back.
    first.poll(Duration::ZERO).unwrap();
    assert!(second.lock().is_none(), "the revoke callback ran");
    assert_eq!(first.assignment().len(), 1, "taken at the next sync");
    let stale = first.group_metadata().unwrap();
    let p = txn_producer(&store, "app");
    p.begin_transaction().unwrap();
    let offsets: BTreeMap<_, _> = (0..2).map(|n| (TopicPartition::new("in", n), 1)).collect();
    let err = p.send_offsets_to_transaction(&offsets, &stale).unwrap_err();
    assert!(matches!(err, Error::CommitFailed { .. }), "{err}");
    p.abort_transaction().unwrap();
    // Synced to that rebalance, the member holds both, and its offsets pass.
    first.poll(Duration::ZERO).unwrap();
    assert_eq!(first.assignment().len(), 2);
    let current = first.group_metadata().unwrap();
    assert!(current.generation_id() > stale.generation_id());
    p.begin_transaction().unwrap();
    p.send_offsets_to_transaction(&offsets, &current).unwrap();
    p.commit_transaction().unwrap();
}
