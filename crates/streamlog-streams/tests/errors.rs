//! Bad input and misuse give typed errors naming what and where (never a panic).

mod common;

use std::time::Duration;

use common::*;
use streamlog::{ProducerConfig, Record, Store};
use streamlog_streams::{
    Consumed, DeserializationPolicy, Grouped, Materialized, ProcessingGuarantee, Produced, Streams,
    StreamsBuilder, StreamsConfig, StreamsError, StreamsState, TimeWindows, serdes,
};

#[test]
fn topologies_missing_serdes_or_with_bad_windows_do_not_build() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(serdes::string(), serdes::string()))
        .map_values(|v| v.len())
        .to("out", Produced::default());
    let e = b.build().err().unwrap();
    assert!(matches!(e, StreamsError::Topology { .. }), "{e}");
    assert!(e.to_string().contains("to(out)"), "{e}");

    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(serdes::string(), serdes::string()))
        .map(|k, v| (v.clone(), k.clone()))
        .group_by_key()
        .count(Materialized::default());
    let e = b.build().err().unwrap();
    assert!(e.to_string().contains("repartition"), "{e}");

    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(serdes::string(), serdes::string()))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::ZERO))
        .count(Materialized::default());
    assert!(b.build().is_err());

    let b = StreamsBuilder::new();
    let s = b.stream("in", Consumed::with(serdes::string(), serdes::string()));
    s.group_by_key().count(Materialized::named("same"));
    s.group_by_key().count(Materialized::named("same"));
    assert!(b.build().err().unwrap().to_string().contains("same"));

    assert!(StreamsBuilder::new().build().is_err());
}

#[test]
fn bad_config_and_missing_topics_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream(
            "nowhere",
            Consumed::with(serdes::string(), serdes::string()),
        )
        .to("out", Produced::default());
        b.build().unwrap()
    };
    for bad in [
        StreamsConfig::new(""),
        StreamsConfig::new("a/b"),
        StreamsConfig::new("ok").threads(0),
        StreamsConfig::new("ok").poll_ms(0),
        StreamsConfig::new("ok").max_poll_interval_ms(0),
        // It names the threads: spawning one whose name holds a NUL panicked.
        StreamsConfig::new("ok").client_id("a\0b"),
        // Under exactly-once the store would abort each transaction before its commit.
        StreamsConfig::new("ok")
            .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
            .producer(ProducerConfig::default().transaction_timeout_ms(1_000))
            .commit_interval_ms(1_000),
        // Under at-least-once every thread's producer had this id and refused to send
        // outside a transaction: each thread stopped at its first output.
        StreamsConfig::new("ok").producer(ProducerConfig::default().transactional_id("x")),
    ] {
        let e = Streams::new(topology(), bad, &store).err().unwrap();
        assert!(matches!(e, StreamsError::InvalidConfig { .. }), "{e}");
    }
    let eos = StreamsConfig::new("eos")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .producer(ProducerConfig::default().transaction_timeout_ms(1_000))
        .commit_interval_ms(999);
    assert!(Streams::new(topology(), eos, &store).is_ok());
    let s = Streams::new(topology(), StreamsConfig::new("ok"), &store).unwrap();
    assert_eq!(s.state(), StreamsState::Created);
    let e = s.start().err().unwrap();
    assert!(
        matches!(&e, StreamsError::MissingTopic { topic } if topic == "nowhere"),
        "{e}"
    );
    assert!(matches!(
        s.wait_until_caught_up(Duration::from_secs(1)),
        Err(StreamsError::State { .. })
    ));
    assert!(matches!(
        s.key_value_store::<String, i64>("none"),
        Err(StreamsError::StoreNotFound { .. })
    ));
    // A missing output topic is found at start too: `to` never listed its topic, so
    // the application started and its thread failed at the first record.
    store
        .create_topic("nowhere", streamlog::TopicConfig::default())
        .unwrap();
    assert!(topology().describe().contains("output out"));
    let s = Streams::new(topology(), StreamsConfig::new("ok2"), &store).unwrap();
    let e = s.start().err().unwrap();
    assert!(
        matches!(&e, StreamsError::MissingTopic { topic } if topic == "out"),
        "{e}"
    );
}

/// From an API attack: internal topic names that can never be valid were found only
/// when `start` created them, as a bare client error, after creating the topics before
/// them. A repartition name with a bad character and a table whose changelog name is
/// too long are refused by `build`; an application id too long for its internal
/// topics is refused by `start`, naming the topic, before any is created.
#[test]
fn internal_topic_names_are_checked_before_any_is_created() {
    let strings = || Consumed::with(serdes::string(), serdes::string());
    let b = StreamsBuilder::new();
    b.stream("in", strings())
        .map(|k, v| (v.clone(), k.clone()))
        .group_by_key_with(Grouped::with(serdes::string(), serdes::string()).named("by/kind"))
        .count(Materialized::default());
    let e = b.build().err().unwrap();
    assert!(e.to_string().contains("by/kind"), "{e}");

    let long = "t".repeat(249);
    let b = StreamsBuilder::new();
    b.table(&long, strings());
    let e = b.build().err().unwrap();
    assert!(e.to_string().contains("changelog"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    let b = StreamsBuilder::new();
    let s = b.stream("in", strings());
    s.map(|k, v| (v.clone(), k.clone()))
        .group_by_key_with(Grouped::with(serdes::string(), serdes::string()).named("g"))
        .count(Materialized::named("c"));
    s.group_by_key().count(Materialized::named("kv"));
    let app = "a".repeat(240);
    let streams = Streams::new(b.build().unwrap(), StreamsConfig::new(&*app), &store).unwrap();
    let topics_before = store.list_topics();
    let e = streams.start().err().unwrap();
    assert!(matches!(e, StreamsError::Topology { .. }), "{e}");
    assert!(e.to_string().contains("-repartition`"), "{e}");
    assert_eq!(
        store.list_topics(),
        topics_before,
        "no internal topic was created"
    );
}

#[test]
fn co_partitioning_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("left", 2), ("right", 3)]);
    let b = StreamsBuilder::new();
    let l = b.stream("left", Consumed::with(serdes::string(), serdes::string()));
    let r = b.stream("right", Consumed::with(serdes::string(), serdes::string()));
    l.merge(&r).group_by_key().count(Materialized::default());
    let s = Streams::new(b.build().unwrap(), StreamsConfig::new("cop"), &store).unwrap();
    let e = s.start().err().unwrap();
    assert!(matches!(e, StreamsError::CoPartitioning { .. }), "{e}");
}

/// Starts application `app` counting `nums` per key in store `n` (its changelog
/// `<app>-n-changelog`).
fn start_counting_nums(store: &Store, app: &str) -> streamlog_streams::Result<Streams> {
    let b = StreamsBuilder::new();
    b.stream("nums", Consumed::with(serdes::string(), serdes::i64()))
        .group_by_key()
        .count(Materialized::named("n"));
    let s = Streams::new(b.build().unwrap(), StreamsConfig::new(app), store).unwrap();
    s.start().map(|()| s)
}

/// A store's changelog with another partition count than its input (the input grew
/// after the changelog was made): tasks of the higher partitions failed at restore or
/// at their first changelog write. It is refused at start, naming the topic.
#[test]
fn a_changelog_with_another_partition_count_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("nums", 3), ("grown-n-changelog", 2)]);
    let e = start_counting_nums(&store, "grown").err().unwrap();
    assert!(
        matches!(&e, StreamsError::Topology { reason } if reason.contains("grown-n-changelog")),
        "{e}"
    );
}

/// A store's changelog made before (by the application) with the default cleanup
/// policy, `delete`: it was taken as it was, retention deleted the values of keys not
/// updated for a week, and a store restored from it lost them while the input offsets
/// that made them stayed committed (counts began again at 1). It is refused at start,
/// naming the topic and its policy, and left as it was.
#[test]
fn a_changelog_that_is_not_compacted_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("nums", 2), ("kept-n-changelog", 2)]);
    let e = start_counting_nums(&store, "kept").err().unwrap();
    assert!(
        matches!(&e, StreamsError::Topology { reason }
            if reason.contains("kept-n-changelog") && reason.contains("`delete`")),
        "{e}"
    );
    let policy = store
        .topic("kept-n-changelog")
        .unwrap()
        .config()
        .settings()
        .cleanup_policy;
    assert_eq!(policy, streamlog::CleanupPolicy::Delete);
}

fn counting(policy: DeserializationPolicy, store: &Store) -> Streams {
    let b = StreamsBuilder::new();
    b.stream("nums", Consumed::with(serdes::string(), serdes::i64()))
        .group_by_key()
        .count(Materialized::named("n"));
    let s = Streams::new(
        b.build().unwrap(),
        StreamsConfig::new("nums").deserialization_policy(policy),
        store,
    )
    .unwrap();
    s.start().unwrap();
    s
}

#[test]
fn undecodable_records_fail_the_thread_or_are_skipped_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("nums", 1)]);
    let p = store.topic("nums").unwrap().partition(0).unwrap();
    p.append(&[
        Record::new(1, Some("k"), Some(7i64.to_be_bytes().to_vec())),
        Record::new(2, Some("k"), Some("not a number")),
        Record::new(3, None::<&str>, Some(7i64.to_be_bytes().to_vec())),
        Record::new(4, Some("k"), Some(8i64.to_be_bytes().to_vec())),
    ])
    .unwrap();

    let s = counting(DeserializationPolicy::Fail, &store);
    let e = s.wait_until_caught_up(CATCH_UP).err().unwrap();
    assert!(matches!(s.state(), StreamsState::Failed { reason } if reason.contains("nums-0")));
    let text = e.to_string();
    assert!(
        text.contains("nums-0 at offset 1") && text.contains("value"),
        "{text}"
    );
    assert!(s.close().is_err());
    drop(s);

    // Nothing of the failed poll was committed: the next run starts from the beginning.
    let s = counting(DeserializationPolicy::SkipAndCount, &store);
    s.wait_until_caught_up(CATCH_UP).unwrap();
    assert_eq!(s.state(), StreamsState::Running);
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&"k".to_string()).unwrap(), Some(2));
    assert_eq!(s.metrics().skipped, 2, "the bad value and the null key");
    s.close().unwrap();
    assert_eq!(s.state(), StreamsState::Closed);
}

/// Counts the records of `in` by key into store `n`; with `explode`, a processor
/// panics at a value "boom".
fn counting_unless_boom(explode: bool) -> streamlog_streams::Topology {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(serdes::string(), serdes::string()))
        .filter(move |_, v| {
            assert!(!(explode && v == "boom"), "a processor panicked");
            true
        })
        .group_by_key()
        .count(Materialized::named("n"));
    b.build().unwrap()
}

/// A processor that panics stops its thread with an error (no hang, no commit of the
/// poll it was in): a later run processes those records again.
#[test]
fn a_panicking_processor_fails_the_thread_without_committing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    produce(
        &store,
        "in",
        &[
            ev("user-0", 1, "ok"),
            ev("user-0", 2, "boom"),
            ev("user-0", 3, "ok"),
        ],
    );
    let topology = counting_unless_boom;
    let s = Streams::new(topology(true), StreamsConfig::new("panics"), &store).unwrap();
    s.start().unwrap();
    let e = s.wait_until_caught_up(CATCH_UP).err().unwrap();
    assert!(e.to_string().contains("a processor panicked"), "{e}");
    drop(s);
    let s = run_caught_up(&store, topology(false), StreamsConfig::new("panics"));
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(
        n.get(&"user-0".to_string()).unwrap(),
        Some(3),
        "each record counted once"
    );
    s.close().unwrap();
}

/// From an API attack: a timeout too long for an `Instant` (`Duration::MAX`, "no
/// limit") panicked with an overflow; it waits without a deadline.
#[test]
fn waiting_without_a_limit_is_no_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("nums", 1)]);
    let p = store.topic("nums").unwrap().partition(0).unwrap();
    p.append(&[Record::new(1, Some("k"), Some(7i64.to_be_bytes().to_vec()))])
        .unwrap();
    let s = counting(DeserializationPolicy::Fail, &store);
    s.wait_until_caught_up(Duration::MAX).unwrap();
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&"k".to_string()).unwrap(), Some(1));
    s.close().unwrap();
}

/// From an API attack: after `close`, `start` returned Ok and ran nothing, and
/// `wait_until_caught_up` never returned with `Duration::MAX` (with a limit, it waited
/// all of it and said `Timeout`). Both are `State` errors now, as Kafka's `start`
/// outside `CREATED` is.
#[test]
fn start_and_waiting_after_close_are_state_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("nums", 1)]);
    let s = std::sync::Arc::new(counting(DeserializationPolicy::Fail, &store));
    s.wait_until_caught_up(CATCH_UP).unwrap();
    s.close().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::sync::Arc::clone(&s);
    std::thread::spawn(move || {
        let _ = tx.send(waiter.wait_until_caught_up(Duration::MAX));
    });
    // A bound only against a hang; the answer comes at once.
    let waited = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("wait_until_caught_up after close never returned");
    assert!(
        matches!(waited, Err(StreamsError::State { .. })),
        "{waited:?}"
    );
    let started = s.start();
    assert!(
        matches!(started, Err(StreamsError::State { .. })),
        "{started:?}"
    );
    assert_eq!(s.state(), StreamsState::Closed);

    // Closed before it was ever started: the same.
    let built = Streams::new(
        {
            let b = StreamsBuilder::new();
            b.stream("nums", Consumed::with(serdes::string(), serdes::i64()))
                .to("nums-out", Produced::with(serdes::string(), serdes::i64()));
            b.build().unwrap()
        },
        StreamsConfig::new("never"),
        &store,
    )
    .unwrap();
    built.close().unwrap();
    assert!(matches!(built.start(), Err(StreamsError::State { .. })));
}

/// From an API attack: a store queried with the wrong kind or types was refused only
/// once one of its partitions ran here; before start (or with none local) an empty
/// store of the asked types came back. The topology knows what each store holds.
#[test]
fn a_store_queried_with_the_wrong_types_is_refused_with_no_partition_local() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    let b = StreamsBuilder::new();
    let s = b.stream("in", Consumed::with(serdes::string(), serdes::string()));
    s.group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(1)))
        .count(Materialized::named("win"));
    s.group_by_key().count(Materialized::named("kv"));
    let streams = Streams::new(b.build().unwrap(), StreamsConfig::new("types"), &store).unwrap();
    let kv_of_win = streams.key_value_store::<String, i64>("win");
    assert!(matches!(kv_of_win, Err(StreamsError::StoreType { .. })));
    let wrong_types = streams.key_value_store::<u64, bool>("kv");
    assert!(matches!(wrong_types, Err(StreamsError::StoreType { .. })));
    let win_of_kv = streams.window_store::<String, i64>("kv");
    assert!(matches!(win_of_kv, Err(StreamsError::StoreType { .. })));
    assert!(streams.key_value_store::<String, i64>("kv").is_ok());
    assert!(streams.window_store::<String, i64>("win").is_ok());
}

/// While a task restores its stores from their changelogs, queries of them answered as
/// if the store were empty (`get` found nothing); Kafka Streams refuses them
/// (`InvalidStateStoreException`) until the restore is done.
#[test]
fn a_store_being_restored_is_not_queryable() {
    use std::sync::{Mutex, mpsc};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    let topology = || {
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(serdes::string(), serdes::string()))
            .group_by_key()
            .count(Materialized::named("c"));
        b.build().unwrap()
    };
    produce(&store, "in", &[ev("k", 1, "a"), ev("k", 2, "b")]);
    let s = run_caught_up(&store, topology(), StreamsConfig::new("restoring"));
    s.close().unwrap();
    drop(s);

    // Restarted: the restore waits in its listener until the test has queried.
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let hold = Mutex::new(Some((entered_tx, go_rx)));
    let config = StreamsConfig::new("restoring").restore_listener(move |p| {
        if !p.done
            && let Some((entered_tx, go_rx)) = hold.lock().unwrap().take()
        {
            entered_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        }
    });
    let s = Streams::new(topology(), config, &store).unwrap();
    s.start().unwrap();
    entered
        .recv_timeout(Duration::from_secs(60))
        .expect("the restore started");
    let during = s
        .key_value_store::<String, i64>("c")
        .map(|v| v.get(&"k".to_string()));
    go.send(()).unwrap();
    assert!(
        matches!(&during, Err(StreamsError::StoreUnavailable { name, partition: 0 }) if name == "c"),
        "{during:?}"
    );
    s.wait_until_caught_up(Duration::from_secs(60)).unwrap();
    let view = s.key_value_store::<String, i64>("c").unwrap();
    assert_eq!(view.get(&"k".to_string()).unwrap(), Some(2));
    s.close().unwrap();
}

/// From a review: a thread that died of a panic left its tasks' stores queryable (the
/// consumer's drop, unwinding, runs no listener to remove them), with the updates of
/// the poll the panic cut short, which no commit covers; and a panic during a restore
/// (a serde's, the restore listener's) left the store refused (`StoreUnavailable`)
/// for good. Both leave the store with no local partition instead.
#[test]
fn a_thread_dead_of_a_panic_leaves_no_store_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    produce(&store, "in", &[ev("k", 1, "ok"), ev("k", 2, "boom")]);
    let topology = counting_unless_boom;
    let config =
        || StreamsConfig::new("dead").processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    let s = Streams::new(topology(true), config(), &store).unwrap();
    s.start().unwrap();
    assert!(s.wait_until_caught_up(CATCH_UP).is_err());
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&"k".to_string()).unwrap(), None, "an aborted count");
    drop(s);
    // Run once without the panic (the changelog then holds the count), then restart
    // with a restore listener that panics.
    let s = run_caught_up(&store, topology(false), config());
    s.close().unwrap();
    drop(s);
    let config = config().restore_listener(|p| assert!(p.done, "a restore listener panicked"));
    let s = Streams::new(topology(false), config, &store).unwrap();
    s.start().unwrap();
    assert!(s.wait_until_caught_up(CATCH_UP).is_err());
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&"k".to_string()).unwrap(), None, "refused for good");
}

/// From a review: a query view held the stores of the tasks running when it was taken,
/// and kept answering from them after they were dropped. A view taken before a
/// processor panicked under exactly-once went on returning the count of the aborted
/// transaction, which the next run does not have. Views look the local stores up at
/// each call now, as Kafka Streams' queryable stores do.
#[test]
fn a_view_taken_before_a_thread_died_stops_answering_from_its_stores() {
    use std::sync::{Mutex, mpsc};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("in", 1)]);
    produce(&store, "in", &[ev("k", 1, "ok"), ev("k", 2, "boom")]);
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let hold = Mutex::new(Some((entered_tx, go_rx)));
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(serdes::string(), serdes::string()))
        .filter(move |_, v| {
            if v == "boom" {
                if let Some((entered_tx, go_rx)) = hold.lock().unwrap().take() {
                    entered_tx.send(()).unwrap();
                    let _ = go_rx.recv();
                }
                panic!("a processor panicked");
            }
            true
        })
        .group_by_key()
        .count(Materialized::named("n"));
    let config =
        StreamsConfig::new("stale-view").processing_guarantee(ProcessingGuarantee::ExactlyOnce);
    let s = Streams::new(b.build().unwrap(), config, &store).unwrap();
    s.start().unwrap();
    entered
        .recv_timeout(CATCH_UP)
        .expect("the processor reached the bad record");
    // The thread is stopped in the middle of the transaction that counted "ok".
    let view = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(
        view.get(&"k".to_string()).unwrap(),
        Some(1),
        "uncommitted, local"
    );
    go.send(()).unwrap();
    assert!(s.wait_until_caught_up(CATCH_UP).is_err());
    assert_eq!(
        view.get(&"k".to_string()).unwrap(),
        None,
        "the aborted count is gone with its task"
    );
    assert!(view.all().unwrap().is_empty());
    assert_eq!(view.approximate_num_entries().unwrap(), 0);
}
