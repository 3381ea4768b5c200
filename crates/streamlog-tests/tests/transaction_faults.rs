//! The transaction protocol under I/O errors: an abort, a fencing or a commit that
//! fails part-way must leave the transaction open (to retry) or decided, never in
//! between, and never let a later transaction carry records the user aborted or sent
//! after a failed commit. Each test sweeps an injected error over every file operation
//! of the step.

mod common;

use std::time::Duration;

use common::sim_store_with;
use streamlog::fs::{Fault, SimFs};
use streamlog::{
    Consumer, ConsumerConfig, Error, IsolationLevel, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, Store, StoreConfig, TopicConfig,
};

fn store(fs: &SimFs) -> Store {
    let store = sim_store_with(fs, StoreConfig::default().background_maintenance(false)).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    store
}

fn txn_producer(store: &Store) -> Producer {
    let p = store
        .producer(
            ProducerConfig::default()
                .transactional_id("app")
                .linger_ms(0),
        )
        .unwrap();
    p.init_transactions().unwrap();
    p
}

fn send(p: &Producer, partition: i32, value: &str) -> streamlog::Result<()> {
    p.send(ProducerRecord::new("t").partition(partition).value(value))?
        .wait()
        .map(|_| ())
}

/// Every value a read_committed consumer of `t` gets.
fn committed_values(store: &Store) -> Vec<String> {
    let mut c: Consumer = store
        .consumer(
            ConsumerConfig::new("reader")
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(IsolationLevel::ReadCommitted)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.subscribe(["t"]).unwrap();
    let mut out = Vec::new();
    loop {
        let recs = c.poll(Duration::ZERO).unwrap();
        if recs.is_empty() {
            break;
        }
        out.extend(
            recs.iter()
                .map(|r| String::from_utf8_lossy(r.value().unwrap()).into()),
        );
    }
    out.sort();
    out
}

/// Runs `step` with an ENOSPC at its `k`-th file operation: its result, or `None` if it
/// took fewer (the sweep over `k` is done).
fn with_enospc_at<T>(fs: &SimFs, k: u64, step: impl FnOnce() -> T) -> Option<T> {
    let at = fs.op_count() + k;
    fs.inject(Fault::Enospc, at, false);
    let out = step();
    fs.clear_faults();
    (fs.op_count() >= at).then_some(out)
}

/// A store on `fs` with the topic `t` and a transactional producer in a transaction.
fn in_transaction(fs: &SimFs) -> (Store, Producer) {
    let store = store(fs);
    let p = txn_producer(&store);
    p.begin_transaction().unwrap();
    (store, p)
}

/// `p`'s next transaction writes `value` and commits: read_committed then sees only
/// `value`, also after a reopen (`store` is closed for it). A decided abort or fencing
/// whose markers failed refuses work until the reopen: `Poisoned`.
fn next_transaction_is_all_that_commits(
    fs: &SimFs,
    store: Store,
    p: Producer,
    value: &str,
    k: u64,
) {
    let next = p
        .begin_transaction()
        .and_then(|()| send(&p, 0, value))
        .and_then(|()| p.commit_transaction());
    match next {
        Ok(()) => assert_eq!(committed_values(&store), [value], "ENOSPC at {k}"),
        Err(e) => assert!(matches!(e, Error::Poisoned { .. }), "ENOSPC at {k}: {e}"),
    }
    drop(p);
    drop(store);
    let store = sim_store_with(fs, StoreConfig::default()).unwrap();
    let seen = committed_values(&store);
    assert!(
        seen.iter().all(|v| v == value),
        "ENOSPC at {k}: after a reopen {seen:?}"
    );
}

/// An abort whose write to the transaction log fails left the coordinator believing
/// the abort was under way: the retried abort answered Ok without writing a marker or
/// moving to the next epoch, and the next transaction (same epoch, same partition)
/// then committed the aborted records with its own.
#[test]
fn a_failed_abort_leaves_the_transaction_open_to_abort_again() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let (store, p) = in_transaction(&fs);
        send(&p, 0, "aborted-0").unwrap();
        send(&p, 1, "aborted-1").unwrap();
        let Some(aborted) = with_enospc_at(&fs, k, || p.abort_transaction()) else {
            break;
        };
        if aborted.is_err() {
            struck += 1;
            // From a review: nothing but an abort may follow a failed one; a send and
            // a commit went through, committing the records the abort was to remove.
            assert!(send(&p, 0, "after").is_err(), "ENOSPC at {k}");
            assert!(p.commit_transaction().is_err(), "ENOSPC at {k}");
            // The user retries, as the error invites (or must reopen the store).
            if p.abort_transaction().is_err() {
                continue;
            }
        }
        next_transaction_is_all_that_commits(&fs, store, p, "committed", k);
        assert!(k < 2_000);
    }
    assert!(struck > 0);
}

/// A fencing abort (a second producer's `init_transactions`) whose write to the
/// transaction log failed left the old session fenced at the coordinator only: the
/// retried `init` skipped the abort, the old producer's later batches were still
/// accepted by its partitions, and the new producer's first batch there joined that
/// open transaction, so its commit committed the fenced producer's records. The old
/// producer is told it is fenced whatever failed.
#[test]
fn a_failed_fencing_leaves_the_old_transaction_to_be_aborted_by_the_next_try() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let store = store(&fs);
        let old = txn_producer(&store);
        old.begin_transaction().unwrap();
        send(&old, 0, "old-0").unwrap();
        send(&old, 1, "old-1").unwrap();
        let new = store
            .producer(
                ProducerConfig::default()
                    .transactional_id("app")
                    .linger_ms(0),
            )
            .unwrap();
        let Some(fenced) = with_enospc_at(&fs, k, || new.init_transactions()) else {
            break;
        };
        // Once the fencing is decided, the old producer is told it is fenced, also
        // when the fencing's markers failed (it was told to reopen the store, which
        // would not let it on).
        if matches!(fenced, Ok(()) | Err(Error::Poisoned { .. })) {
            match send(&old, 0, "zombie") {
                Err(Error::Fenced { .. }) => {}
                other => panic!("ENOSPC at {k}: the fenced producer's send: {other:?}"),
            }
        }
        if fenced.is_err() {
            struck += 1;
            if new.init_transactions().is_err() {
                continue; // refused until a reopen
            }
        }
        // The old producer, fenced, goes on writing to a partition it had added.
        assert!(send(&old, 0, "zombie").is_err(), "ENOSPC at {k}");
        drop(old);
        next_transaction_is_all_that_commits(&fs, store, new, "new", k);
        assert!(k < 2_000);
    }
    assert!(struck > 0);
}

/// A commit that failed once its decision may have reached the disk (the fsync of
/// `PrepareCommit`) left the producer in its transaction, and sends to partitions it
/// had written to went on without asking the coordinator: the next open, finding the
/// decision, committed them too, though they were sent after the commit failed. Every
/// failed commit now leaves the transaction only to be aborted, and sends are refused
/// until then (Kafka's abortable-error state).
#[test]
fn nothing_sent_after_a_failed_commit_is_committed() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let (store, p) = in_transaction(&fs);
        send(&p, 0, "txn-0").unwrap();
        send(&p, 1, "txn-1").unwrap();
        let Some(committed) = with_enospc_at(&fs, k, || p.commit_transaction()) else {
            break;
        };
        if committed.is_ok() {
            continue;
        }
        struck += 1;
        assert!(send(&p, 0, "after").is_err(), "ENOSPC at {k}");
        assert!(p.commit_transaction().is_err(), "ENOSPC at {k}");
        drop(p);
        drop(store);
        let store = sim_store_with(&fs, StoreConfig::default()).unwrap();
        let seen = committed_values(&store);
        assert!(
            seen.is_empty() || seen == ["txn-0", "txn-1"],
            "ENOSPC at {k}: after a reopen {seen:?}"
        );
        assert!(k < 2_000);
    }
    assert!(struck > 0);
}

/// A send call that failed inside a transaction (here `send_batch`, whose first record
/// was added before the second's partition could be added to the transaction) makes
/// the transaction abort-only, as any failed send does in Kafka: its commit is refused,
/// so it never commits part of a call that returned an error.
#[test]
fn a_failed_send_call_makes_the_transaction_abort_only() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let (store, p) = in_transaction(&fs);
        let records = [
            ProducerRecord::new("t").partition(0).value("a"),
            ProducerRecord::new("t").partition(1).value("b"),
        ];
        let Some(sent) = with_enospc_at(&fs, k, || p.send_batch(&records)) else {
            break;
        };
        let Err(e) = sent else { continue };
        struck += 1;
        let commit = p.commit_transaction();
        assert!(
            commit.is_err(),
            "ENOSPC at {k} ({e}): the commit went through"
        );
        if p.abort_transaction().is_ok() {
            assert_eq!(
                committed_values(&store),
                Vec::<String>::new(),
                "ENOSPC at {k}"
            );
        }
        assert!(k < 2_000);
    }
    assert!(struck > 0);
}

/// An abort decides its offsets away, marker or not: if the ABORT marker on
/// `__consumer_offsets` fails (the transactional id is then broken until a reopen), a
/// read_committed consumer of the group still starts from the committed offset. Left
/// pending (KIP-447), the offsets held its partitions until the reopen.
#[test]
fn an_aborted_transactions_offsets_never_hold_a_consumer() {
    use streamlog::{ConsumerConfig, ConsumerGroupMetadata, IsolationLevel, TopicPartition};
    let mut decided = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let (store, p) = in_transaction(&fs);
        let tp = TopicPartition::new("t", 0);
        let offsets = std::collections::BTreeMap::from([(tp.clone(), 1)]);
        p.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
            .unwrap();
        let Some(aborted) = with_enospc_at(&fs, k, || p.abort_transaction()) else {
            break;
        };
        if aborted.is_err() {
            continue; // still open: its offsets are rightly pending
        }
        decided += 1;
        let mut c = store
            .consumer(ConsumerConfig::new("g").isolation_level(IsolationLevel::ReadCommitted))
            .unwrap();
        c.assign(std::slice::from_ref(&tp)).unwrap();
        assert!(c.position(&tp).is_ok(), "ENOSPC at {k}: the consumer waits");
        assert!(k < 2_000);
    }
    assert!(decided > 1);
}

/// A commit that failed once its decision may have reached the disk (here the fsync
/// of a one-partition transaction's COMMIT marker) leaves the outcome to the next open.
/// The timeout's abort used to write an abort for it anyway and count it aborted,
/// though the marker was in the log and the next open showed the records committed.
#[test]
fn a_commit_of_unknown_outcome_is_not_aborted_by_its_timeout() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let clock = std::sync::Arc::new(streamlog::log::ManualClock::new(1_700_000_000_000));
        let store = sim_store_with(
            &fs,
            StoreConfig::default()
                .background_maintenance(false)
                .clock(clock.clone()),
        )
        .unwrap();
        store
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let p = store
            .producer(
                ProducerConfig::default()
                    .transactional_id("app")
                    .transaction_timeout_ms(1000)
                    .linger_ms(0),
            )
            .unwrap();
        p.init_transactions().unwrap();
        p.begin_transaction().unwrap();
        send(&p, 0, "txn-0").unwrap();
        let Some(committed) = with_enospc_at(&fs, k, || p.commit_transaction()) else {
            break;
        };
        let Err(e) = committed else { continue };
        // Its outcome is the next open's: even an abort is refused until then.
        if !matches!(p.abort_transaction(), Err(Error::Poisoned { .. })) {
            continue; // refused before its decision: aborted now, not this case
        }
        struck += 1;
        clock.advance(1001);
        let report = store.run_maintenance().unwrap();
        assert_eq!(report.transactions_aborted, 0, "ENOSPC at {k}: {e}");
        drop(p);
        drop(store);
        let store = sim_store_with(&fs, StoreConfig::default()).unwrap();
        let seen = committed_values(&store);
        assert!(
            seen.is_empty() || seen == ["txn-0"],
            "ENOSPC at {k}: after a reopen {seen:?}"
        );
        assert!(k < 2_000);
    }
    assert!(struck > 0);
}

/// From a review: a topic deletion whose metadata write failed with its outcome unknown
/// stops the topic's partitions, and the transaction coordinator took a stopped
/// partition for a deleted topic: a commit skipped its marker there and answered Ok.
/// When the next open brought the topic back (the deletion had not reached the disk),
/// recovery found the transaction's batch without a marker and aborted it: a commit
/// acknowledged, its records never readable. A commit acknowledged is now readable
/// wherever its topic survives.
#[test]
fn a_commit_across_an_undecided_topic_deletion_is_never_lost() {
    let mut undecided = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let (store, p) = in_transaction(&fs);
        send(&p, 0, "x").unwrap();
        store
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .flush()
            .unwrap();
        let at = fs.op_count() + k;
        fs.inject(Fault::Eio, at, false);
        let deleted = store.delete_topic("t");
        fs.clear_faults();
        if fs.op_count() < at {
            break;
        }
        let unsettled = deleted.is_err()
            && matches!(
                store.create_topic("t", TopicConfig::default()),
                Err(Error::Poisoned { .. })
            );
        if !unsettled {
            continue;
        }
        undecided += 1;
        let committed = p.commit_transaction();
        let image = fs.crash_image(streamlog::fs::CrashImage::DropAll);
        if committed.is_err() {
            // Refused, it is aborted (review: its ABORT marker may skip the stopped
            // partition, as before; the next open aborts there anyway), and the
            // producer goes on.
            p.abort_transaction().unwrap();
            p.begin_transaction()
                .unwrap_or_else(|e| panic!("EIO at {k}: {e}"));
            p.abort_transaction().unwrap();
        }
        drop(p);
        drop(store);
        let store = sim_store_with(&image, StoreConfig::default()).unwrap();
        if committed.is_ok() && store.topic("t").is_ok() {
            assert_eq!(committed_values(&store), ["x"], "EIO at {k}");
        }
        assert!(k < 2_000);
    }
    assert!(undecided > 0, "no fault left the deletion undecided");
}
