//! A stream thread whose processor stalls past `max_poll_interval_ms` is removed from
//! the group, and another instance takes its tasks over. When the stalled thread comes
//! back, its commit is refused: Kafka Streams' task migration. It used to stop the
//! thread (the application failed); it now drops the work since its last commit and
//! rejoins, and the results stay exact under exactly-once.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use streamlog::{IsolationLevel, Store};
use streamlog_streams::{ProcessingGuarantee, Streams, StreamsConfig, TimeWindows};

/// Holds a processor at a record until released; says when one is held.
#[derive(Default)]
struct Stall {
    state: Mutex<(bool, bool)>, // (held, released)
    changed: Condvar,
}

impl Stall {
    fn hold(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn wait_held(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// Releases the stall when dropped: a failing assertion must not leave the held thread
/// waiting (and the test hanging at the instance's close).
struct ReleaseOnDrop(Arc<Stall>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A store whose clock (which times transactions) the test moves, at 30 s, without
/// background maintenance.
fn store_on_manual_clock(dir: &std::path::Path) -> (Store, Arc<streamlog::log::ManualClock>) {
    let clock = Arc::new(streamlog::log::ManualClock::new(30_000));
    let config = streamlog::StoreConfig::default()
        .background_maintenance(false)
        .clock(clock.clone());
    (Store::open_with(dir, config).unwrap(), clock)
}

/// Twenty purchases of three users, a second apart; the eleventh stalls its processor.
fn purchases_with_a_stall() -> Vec<Event> {
    let mut input: Vec<Event> = (0..10)
        .map(|i| ev(&format!("user-{}", i % 3), i * 1000, "purchase"))
        .collect();
    input.push(ev("user-0", 10_000, "purchase-stall"));
    input.extend((11..20).map(|i| ev(&format!("user-{}", i % 3), i * 1000, "purchase")));
    input
}

fn run(guarantee: ProcessingGuarantee) {
    let windows = TimeWindows::of_size_and_grace(
        Duration::from_millis(WINDOW_MS as u64),
        Duration::from_secs(3600),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(&store, &[("raw-events", 1), ("purchase-counts", 1)]);
    let config = |client: &str| {
        StreamsConfig::new("migrating")
            .client_id(client)
            .processing_guarantee(guarantee)
            .commit_interval_ms(0)
            .poll_ms(5)
            .max_poll_interval_ms(200)
    };
    let stall = Arc::new(Stall::default());
    let held = stall.clone();
    let a = Streams::new(
        seeds_topology(windows, move |_, v| {
            if v.contains("stall") {
                held.hold();
            }
        }),
        config("a"),
        &store,
    )
    .unwrap();
    // Dropped before `a`: a failed assertion must not leave its thread held.
    let _release = ReleaseOnDrop(stall.clone());
    a.start().unwrap();
    let mut input = purchases_with_a_stall();
    produce(&store, "raw-events", &input);
    stall.wait_held();
    // `b` takes the partition over once `a` is past its poll interval (at one of b's
    // polls), restores the state `a` committed and processes everything.
    let b = Streams::new(seeds_topology(windows, |_, _| {}), config("b"), &store).unwrap();
    b.start().unwrap();
    b.wait_until_caught_up(CATCH_UP).unwrap();
    stall.release();
    // `a` finishes its poll, finds its commit refused, and rejoins instead of failing.
    let more: Vec<Event> = (20..30)
        .map(|i| ev(&format!("user-{}", i % 3), i * 1000, "purchase"))
        .collect();
    produce(&store, "raw-events", &more);
    input.extend(more);
    a.wait_until_caught_up(CATCH_UP).unwrap();
    b.wait_until_caught_up(CATCH_UP).unwrap();
    a.close().unwrap();
    b.close().unwrap();
    if guarantee == ProcessingGuarantee::ExactlyOnce {
        let (model, _) = window_model(&input, 1, windows, |e| e.value.starts_with("purchase"));
        let out = read_all(&store, "purchase-counts", IsolationLevel::ReadCommitted);
        assert_exact_updates(&count_updates(&out), &model);
    }
}

#[test]
fn a_stalled_exactly_once_thread_rejoins_and_the_results_stay_exact() {
    run(ProcessingGuarantee::ExactlyOnce);
}

#[test]
fn a_stalled_at_least_once_thread_rejoins() {
    run(ProcessingGuarantee::AtLeastOnce);
}

/// From a review: under exactly-once, a processor stalled past the producer's
/// `transaction_timeout_ms` (still within `max_poll_interval_ms`) had its transaction
/// aborted by the store, which fences the producer; the next send failed with `Fenced`
/// and the thread died (the application failed). It now does what Kafka Streams does on
/// such a fence: drops the aborted work, goes back to the last commit with a new
/// producer, and processes again; the results stay exact.
#[test]
fn a_transaction_aborted_after_its_timeout_is_processed_again() {
    let windows = TimeWindows::of_size_and_grace(
        Duration::from_millis(WINDOW_MS as u64),
        Duration::from_secs(3600),
    );
    let dir = tempfile::tempdir().unwrap();
    // The store's clock times transactions; the events are stamped 0..20 s.
    let (store, clock) = store_on_manual_clock(dir.path());
    create_topics(&store, &[("raw-events", 1), ("purchase-counts", 1)]);
    let input = purchases_with_a_stall();
    produce(&store, "raw-events", &input);
    let stall = Arc::new(Stall::default());
    let held = stall.clone();
    // One record a poll and no commit by interval: the transaction holding the first
    // ten records' results is open when the processor stalls.
    let config = StreamsConfig::new("timing-out")
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval_ms(600_000)
        .max_poll_records(1)
        .producer(streamlog::ProducerConfig::default().transaction_timeout_ms(900_000));
    let s = Streams::new(
        seeds_topology(windows, move |_, v| {
            if v.contains("stall") {
                held.hold();
            }
        }),
        config,
        &store,
    )
    .unwrap();
    // Dropped before `s`: a failed assertion must not leave its thread held.
    let _release = ReleaseOnDrop(stall.clone());
    s.start().unwrap();
    stall.wait_held();
    clock.advance(3_600_000);
    let report = store.run_maintenance().unwrap();
    assert_eq!(report.transactions_aborted, 1, "{report:?}");
    stall.release();
    s.wait_until_caught_up(CATCH_UP).unwrap();
    s.close().unwrap();
    let (model, _) = window_model(&input, 1, windows, |e| e.value.starts_with("purchase"));
    let out = read_all(&store, "purchase-counts", IsolationLevel::ReadCommitted);
    assert_exact_updates(&count_updates(&out), &model);
}

const QUIET: &str = "user-0";
const BUSY: &str = "user-1";

/// Application `app` (exactly-once) copies `in` (2 partitions) to `copy` and counts it
/// by key into store `n`, one record a poll, committing only when idle. Once `QUIET`'s
/// "ok" (partition 0) and `BUSY`'s (partition 1) are committed, `BUSY`'s next "ok" and a
/// "stall" arrive in one batch: `on_stall` runs at each "stall" processed (the first
/// one should hold on `stall`), the transaction holding the "ok" is aborted by the
/// store after its timeout, and this returns, the processor still held. Bind the
/// result in order: the guard that releases it drops first.
fn a_transaction_timed_out_under_a_held_processor(
    dir: &std::path::Path,
    app: &str,
    stall: &Arc<Stall>,
    on_stall: impl Fn() + Send + Sync + 'static,
) -> (Store, Streams, ReleaseOnDrop) {
    let (store, clock) = store_on_manual_clock(dir);
    create_topics(&store, &[("in", 2), ("copy", 2)]);
    assert_eq!((partition_of(QUIET, 2), partition_of(BUSY, 2)), (0, 1));
    produce(&store, "in", &[ev(QUIET, 1, "ok"), ev(BUSY, 2, "ok")]);
    let b = streamlog_streams::StreamsBuilder::new();
    let passed = b
        .stream(
            "in",
            streamlog_streams::Consumed::with(
                streamlog_streams::serdes::string(),
                streamlog_streams::serdes::string(),
            ),
        )
        .filter(move |_, v| {
            if v == "stall" {
                on_stall();
            }
            true
        });
    // Sent at each poll (the store's changelog only at a commit).
    passed.to("copy", streamlog_streams::Produced::default());
    passed
        .group_by_key()
        .count(streamlog_streams::Materialized::named("n"));
    let config = StreamsConfig::new(app)
        .processing_guarantee(ProcessingGuarantee::ExactlyOnce)
        .commit_interval_ms(600_000)
        .max_poll_records(1)
        .producer(streamlog::ProducerConfig::default().transaction_timeout_ms(900_000));
    let s = Streams::new(b.build().unwrap(), config, &store).unwrap();
    // Dropped before `s` (returned after it): a failed assertion must not leave the
    // thread held.
    let release = ReleaseOnDrop(stall.clone());
    s.start().unwrap();
    s.wait_until_caught_up(CATCH_UP).unwrap();
    // In one batch: the thread is not idle between the two.
    store
        .topic("in")
        .unwrap()
        .partition(1)
        .unwrap()
        .append(&[
            streamlog::Record::new(3, Some(BUSY), Some("ok")),
            streamlog::Record::new(4, Some(BUSY), Some("stall")),
        ])
        .unwrap();
    stall.wait_held();
    clock.advance(3_600_000);
    assert_eq!(store.run_maintenance().unwrap().transactions_aborted, 1);
    (store, s, release)
}

/// From a review: after a transaction that timed out, every task was dropped (its
/// state went with the transaction) and came back only with its partition's next
/// record. A partition whose input stayed quiet had no store to query meanwhile: its
/// keys were not found. The tasks of every partition still owned restart at once.
#[test]
fn after_a_timed_out_transaction_every_owned_partition_is_queryable_again() {
    let dir = tempfile::tempdir().unwrap();
    let stall = Arc::new(Stall::default());
    let held = stall.clone();
    let (_store, s, _release) = a_transaction_timed_out_under_a_held_processor(
        dir.path(),
        "quiet-after-timeout",
        &stall,
        move || held.hold(),
    );
    stall.release();
    s.wait_until_caught_up(CATCH_UP).unwrap();
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&BUSY.to_string()).unwrap(), Some(3));
    assert_eq!(
        n.get(&QUIET.to_string()).unwrap(),
        Some(1),
        "the quiet partition's count"
    );
    s.close().unwrap();
}

/// From a review: recovering from a timed-out transaction read the group's committed
/// offsets with `committed`, which fails at once while another transaction holds
/// offsets of one of the partitions for the group (a member that owned it before, not
/// yet decided): the thread died. The partitions now go back to their committed
/// offsets through the poll, which waits for that transaction's decision.
#[test]
fn a_timed_out_transaction_recovers_while_another_holds_offsets_of_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let stall = Arc::new(Stall::default());
    let held = stall.clone();
    // Says when the stalled record is processed again: the recovery is done.
    let (again_tx, again) = std::sync::mpsc::channel();
    let again_tx = Mutex::new(again_tx);
    let stalls = std::sync::atomic::AtomicUsize::new(0);
    let app = "recovers-past-pending-offsets";
    let (store, s, _release) =
        a_transaction_timed_out_under_a_held_processor(dir.path(), app, &stall, move || {
            if stalls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                held.hold();
            } else {
                let _ = again_tx.lock().unwrap().send(());
            }
        });
    // Another producer's transaction, not yet decided, holds offsets of the quiet
    // partition for the application's group.
    let other = store
        .producer(streamlog::ProducerConfig::default().transactional_id("earlier-owner"))
        .unwrap();
    other.init_transactions().unwrap();
    other.begin_transaction().unwrap();
    let offsets = [(streamlog::TopicPartition::new("in", 0), 0)].into();
    other
        .send_offsets_to_transaction(&offsets, &streamlog::ConsumerGroupMetadata::new(app))
        .unwrap();
    stall.release();
    again
        .recv_timeout(CATCH_UP)
        .expect("the busy partition is processed again after the timed-out transaction");
    other.abort_transaction().unwrap();
    s.wait_until_caught_up(CATCH_UP).unwrap();
    let n = s.key_value_store::<String, i64>("n").unwrap();
    assert_eq!(n.get(&BUSY.to_string()).unwrap(), Some(3));
    assert_eq!(n.get(&QUIET.to_string()).unwrap(), Some(1));
    s.close().unwrap();
    let copied = read_all(&store, "copy", IsolationLevel::ReadCommitted);
    assert_eq!(copied.len(), 4, "{copied:?}");
}
