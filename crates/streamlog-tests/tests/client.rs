//! Producer, consumer and consumer-group behaviour (issue 3's acceptance tests).
// Fire-and-forget sends (`let _ = producer.send(..)`) are followed by `flush()`.
#![allow(clippy::let_underscore_future)]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::intercept::{Hooks, InterceptFs};
use common::{
    crash_modes, log_end, reseal_crc, send_wait, sim_store_at, sim_store_maintained,
    sim_store_with, sim_topic_t, temp_topic_t, with_topic_t,
};
use parking_lot::Mutex;
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::{
    Acks, Assignor, Compression, Consumer, ConsumerConfig, Error, OffsetReset, ProducerConfig,
    ProducerRecord, RebalanceListener, RecordRef, Store, StoreConfig, TopicConfig, TopicPartition,
};

fn earliest(group: &str) -> ConsumerConfig {
    ConsumerConfig::new(group)
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
}

/// Polls until `n` records arrived (they are in the store already, or on their way),
/// or [`common::HANG`] passed: a failure guard, the callers check the count.
fn poll_n(c: &mut Consumer, n: usize) -> Vec<streamlog::ConsumerRecord> {
    let mut out = Vec::new();
    let deadline = Instant::now() + common::HANG;
    while out.len() < n && Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(50)).unwrap());
    }
    out
}

/// Polls until a poll of 200 ms returns nothing.
fn drain(c: &mut Consumer) -> Vec<streamlog::ConsumerRecord> {
    let mut out = Vec::new();
    loop {
        let got = c.poll(Duration::from_millis(200)).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[test]
fn keyed_records_keep_per_key_order_and_land_on_kafkas_partition() {
    let (_dir, store) = temp_topic_t(5);
    for codec in [Compression::None, Compression::Lz4] {
        let producer = store
            .producer(
                ProducerConfig::default()
                    .compression(codec)
                    .batch_size(300)
                    .linger_ms(1),
            )
            .unwrap();
        let mut futures = Vec::new();
        for i in 0..2000 {
            let key = format!("k{}", i % 37);
            let rec = ProducerRecord::new("t")
                .key(key.clone())
                .value(format!("{codec:?}:{i}"));
            futures.push((key, i, producer.send(rec).unwrap()));
        }
        producer.flush().unwrap();
        for (key, _, f) in futures {
            let meta = f.wait().unwrap();
            assert_eq!(
                meta.partition,
                streamlog::producer::partition_for_key(key.as_bytes(), 5)
            );
        }
    }
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(&(0..5).map(|p| tp("t", p)).collect::<Vec<_>>())
        .unwrap();
    let recs = poll_n(&mut c, 4000);
    assert_eq!(recs.len(), 4000);
    let mut last: HashMap<(Vec<u8>, String), i32> = HashMap::new();
    for r in &recs {
        let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
        let (codec, i) = v.split_once(':').unwrap();
        let i: i32 = i.parse().unwrap();
        let k = (r.key().unwrap().to_vec(), codec.to_string());
        if let Some(prev) = last.insert(k, i) {
            assert!(prev < i, "key order broken: {prev} then {i}");
        }
    }
}

#[test]
fn per_key_order_holds_across_eight_sending_threads() {
    let (_dir, store) = temp_topic_t(2);
    let producer = store
        .producer(
            ProducerConfig::default()
                .batch_size(512)
                .linger_ms(1)
                .compression(Compression::Gzip),
        )
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let p = producer.clone();
            std::thread::spawn(move || {
                for i in 0..1500 {
                    let _ = p
                        .send(
                            ProducerRecord::new("t")
                                .key(format!("t{t}-k{}", i % 3))
                                .value(format!("{i}")),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    producer.flush().unwrap();
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(&[tp("t", 0), tp("t", 1)]).unwrap();
    let recs = poll_n(&mut c, 12_000);
    assert_eq!(recs.len(), 12_000);
    let mut last: HashMap<Vec<u8>, i32> = HashMap::new();
    for r in &recs {
        let i: i32 = std::str::from_utf8(r.value().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        if let Some(prev) = last.insert(r.key().unwrap().to_vec(), i) {
            assert!(prev < i, "key {:?}: {prev} then {i}", r.key());
        }
    }
}

#[test]
fn eight_producer_threads_and_a_group_lose_and_duplicate_nothing() {
    let (_dir, store) = temp_topic_t(6);
    let producer = store
        .producer(ProducerConfig::default().batch_size(4096))
        .unwrap();
    let per_thread = 2500;
    let producers: Vec<_> = (0..8)
        .map(|t| {
            let p = producer.clone();
            std::thread::spawn(move || {
                let mut fs = Vec::new();
                for i in 0..per_thread {
                    let key = if i % 3 == 0 {
                        None
                    } else {
                        Some(format!("u{}", i % 101))
                    };
                    let mut r = ProducerRecord::new("t").value(format!("{t}-{i}"));
                    if let Some(k) = key {
                        r = r.key(k);
                    }
                    fs.push(p.send(r).unwrap());
                }
                fs.into_iter()
                    .map(|f| f.wait())
                    .filter(Result::is_ok)
                    .count()
            })
        })
        .collect();
    let total = 8 * per_thread;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            let seen = seen.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut c = store.consumer(earliest("g")).unwrap();
                c.subscribe(["t"]).unwrap();
                while !done.load(Ordering::Acquire) {
                    let recs = c.poll(Duration::from_millis(20)).unwrap();
                    let mut s = seen.lock();
                    for r in recs {
                        s.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
                    }
                    drop(s);
                    // Commit what was processed: a partition moved in a rebalance resumes
                    // right after it, so nothing is read twice.
                    match c.commit_sync() {
                        Ok(()) | Err(Error::CommitFailed { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                c.close().unwrap();
            })
        })
        .collect();
    for p in producers {
        assert_eq!(p.join().unwrap(), per_thread);
    }
    // A failure guard: the producers are done, the consumers read on by themselves.
    let deadline = Instant::now() + common::HANG;
    while seen.lock().len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::Release);
    for c in consumers {
        c.join().unwrap();
    }
    let seen = seen.lock();
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), total, "lost records");
    assert_eq!(seen.len(), total, "duplicated records");
}

/// Drives every member's poll until the group is stable, checking after every single
/// poll that no partition has two owners (not even in the middle of a rebalance).
fn settle(members: &mut [Consumer]) {
    for _ in 0..20 {
        settle_round(members);
    }
}

/// Polls every member once, checking after each poll that no partition has two owners.
fn settle_round(members: &mut [Consumer]) {
    for i in 0..members.len() {
        members[i].poll(Duration::ZERO).unwrap();
        let mut seen = BTreeSet::new();
        for m in members.iter() {
            for tp in m.assignment() {
                assert!(seen.insert(tp.clone()), "{tp} has two owners mid-rebalance");
            }
        }
    }
}

/// Like [`settle`], until `done` holds after a round (the members' liveness is real
/// time: a stall of the test may expire a member with a short `max_poll_interval_ms`,
/// which then rejoins, so no fixed number of rounds is enough).
fn settle_until(members: &mut [Consumer], what: &str, done: impl Fn(&[Consumer]) -> bool) {
    common::wait_until(what, || {
        settle_round(members);
        done(members)
    });
}

fn check_exactly_one_owner(store: &Store, members: &[Consumer], topics: &[&str]) {
    let mut owners: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for m in members {
        for tp in m.assignment() {
            *owners.entry(tp).or_default() += 1;
        }
    }
    let mut expected = BTreeSet::new();
    for t in topics {
        let n = store.topic(t).unwrap().partition_count();
        for p in 0..n {
            expected.insert(tp(t, p));
        }
    }
    if members.is_empty() {
        assert!(owners.is_empty());
        return;
    }
    assert_eq!(
        owners.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "not every partition is owned"
    );
    assert!(
        owners.values().all(|&n| n == 1),
        "a partition has two owners: {owners:?}"
    );
    // The coordinator agrees.
    let d = store.describe_group("g").unwrap();
    assert_eq!(d.state, "Stable");
}

mod assignment_model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Join,
        Leave(usize),
        AddPartition,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Join),
            2 => (0usize..8).prop_map(Step::Leave),
            1 => Just(Step::AddPartition),
        ]
    }

    fn assignor() -> impl Strategy<Value = Assignor> {
        prop_oneof![
            Just(Assignor::Range),
            Just(Assignor::RoundRobin),
            Just(Assignor::CooperativeSticky)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn after_every_rebalance_each_partition_has_exactly_one_owner(
            steps in proptest::collection::vec(step(), 1..12),
            assignor in assignor(),
        ) {
            let fs = SimFs::new();
            let store = sim_store_maintained(&fs).unwrap();
            store.create_topic("a", TopicConfig::default().partitions(3)).unwrap();
            store.create_topic("b", TopicConfig::default().partitions(2)).unwrap();
            let mut members: Vec<Consumer> = Vec::new();
            for s in steps {
                match s {
                    Step::Join => {
                        let mut c = store.consumer(earliest("g").assignor(assignor)).unwrap();
                        c.subscribe(["a", "b"]).unwrap();
                        members.push(c);
                    }
                    Step::Leave(i) => {
                        if !members.is_empty() {
                            let i = i % members.len();
                            // Alternate close and drop.
                            let mut c = members.remove(i);
                            if i.is_multiple_of(2) { c.close().unwrap(); }
                        }
                    }
                    Step::AddPartition => {
                        let n = store.topic("a").unwrap().partition_count();
                        store.add_partitions("a", n + 1).unwrap();
                    }
                }
                settle(&mut members);
                check_exactly_one_owner(&store, &members, &["a", "b"]);
            }
        }
    }
}

/// Records what the listener saw, and commits on revoke.
#[derive(Clone, Default)]
struct Recorder {
    revoked: Arc<Mutex<Vec<Vec<TopicPartition>>>>,
    assigned: Arc<Mutex<Vec<Vec<TopicPartition>>>>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        consumer.commit_sync().unwrap();
        self.revoked.lock().push(partitions.to_vec());
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.assigned.lock().push(partitions.to_vec());
    }
}

#[test]
fn cooperative_sticky_revokes_only_moved_partitions_and_eager_revokes_all() {
    for (assignor, eager) in [
        (Assignor::CooperativeSticky, false),
        (Assignor::Range, true),
        (Assignor::RoundRobin, true),
    ] {
        let fs = SimFs::new();
        let store = sim_store_maintained(&fs).unwrap();
        store
            .create_topic("a", TopicConfig::default().partitions(6))
            .unwrap();
        let rec = Recorder::default();
        let mut first = store.consumer(earliest("g").assignor(assignor)).unwrap();
        first.set_rebalance_listener(rec.clone());
        first.subscribe(["a"]).unwrap();
        settle(std::slice::from_mut(&mut first));
        assert_eq!(first.assignment().len(), 6);
        let before: BTreeSet<_> = first.assignment().into_iter().collect();
        let mut second = store.consumer(earliest("g").assignor(assignor)).unwrap();
        second.subscribe(["a"]).unwrap();
        let mut members = vec![first, second];
        settle(&mut members);
        check_exactly_one_owner(&store, &members, &["a"]);
        let moved: BTreeSet<_> = members[1].assignment().into_iter().collect();
        assert_eq!(moved.len(), 3);
        let revoked: BTreeSet<_> = rec.revoked.lock().concat().into_iter().collect();
        if eager {
            assert_eq!(revoked, before, "{assignor:?}: eager revokes everything");
        } else {
            assert_eq!(revoked, moved, "cooperative revokes only what moved");
        }
    }
}

#[test]
fn commit_close_reopen_resumes_from_the_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = with_topic_t(Store::open(dir.path()).unwrap(), 2);
        let p = store.producer(ProducerConfig::default()).unwrap();
        for i in 0..100 {
            let _ = p
                .send(
                    ProducerRecord::new("t")
                        .partition(i % 2)
                        .value(format!("{i}")),
                )
                .unwrap();
        }
        p.flush().unwrap();
        let mut c = store.consumer(earliest("g").max_poll_records(30)).unwrap();
        c.subscribe(["t"]).unwrap();
        let got = c.poll(Duration::from_secs(5)).unwrap();
        assert_eq!(got.len(), 30);
        c.commit_sync().unwrap();
        let committed = c.committed(&[tp("t", 0), tp("t", 1)]).unwrap();
        assert_eq!(committed.values().flatten().sum::<i64>(), 30);
        // Read more without committing: these come again after the reopen.
        assert_eq!(c.poll(Duration::from_secs(5)).unwrap().len(), 30);
        drop(c);
        store.close().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let d = store.describe_group("g").unwrap();
    assert_eq!(d.offsets.iter().map(|o| o.offset).sum::<i64>(), 30);
    for o in &d.offsets {
        assert_eq!(o.log_end_offset, 50);
        assert_eq!(o.lag, 50 - o.offset);
    }
    let mut c = store.consumer(earliest("g")).unwrap();
    c.subscribe(["t"]).unwrap();
    let rest = poll_n(&mut c, 70);
    assert_eq!(rest.len(), 70);
    let mut all: Vec<i64> = rest.iter().map(|r| r.offset()).collect();
    all.sort_unstable();
    assert!(rest.iter().all(|r| r.offset() >= 0));
    let lag: i64 = c.lag().values().sum();
    assert_eq!(lag, 0);
}

#[test]
fn uncommitted_records_are_redelivered_after_a_crash_and_acked_sends_survive() {
    let (fs, store) = sim_topic_t(3);
    let p = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..60 {
        let meta = send_wait(
            &p,
            ProducerRecord::new("t")
                .key(format!("k{i}"))
                .value(format!("v{i}")),
        );
        acked.push((meta.partition, meta.offset, format!("v{i}")));
    }
    let mut c = store.consumer(earliest("g")).unwrap();
    c.subscribe(["t"]).unwrap();
    let first = poll_n(&mut c, 60);
    assert_eq!(first.len(), 60);
    // Commit only partition 0's progress, then crash (no close).
    let pos = c.position(&tp("t", 0)).unwrap();
    c.commit_sync_offsets(&BTreeMap::from([(tp("t", 0), pos)]))
        .unwrap();
    // Unsynced extra records (Acks::Leader) may or may not survive; acked ones must.
    let leader = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    for i in 0..10 {
        send_wait(&leader, ProducerRecord::new("t").value(format!("extra{i}")));
    }
    for image in crash_modes(7) {
        let crashed = fs.crash_image(image);
        let store = sim_store_maintained(&crashed).unwrap();
        for (part, offset, value) in &acked {
            let recs = store
                .topic("t")
                .unwrap()
                .partition(*part)
                .unwrap()
                .read(*offset, 1)
                .unwrap();
            let r = recs.iter().find(|r| r.offset == *offset).unwrap();
            assert_eq!(r.value.as_deref(), Some(value.as_bytes()), "{image:?}");
        }
        let mut c = store.consumer(earliest("g")).unwrap();
        c.subscribe(["t"]).unwrap();
        let again = drain(&mut c);
        // Partition 0 was committed: nothing before its position comes again.
        assert!(
            again
                .iter()
                .all(|r| r.partition() != 0 || r.offset() >= pos)
        );
        // Partitions 1 and 2 were not: every acked record of them is redelivered.
        let values: BTreeSet<Vec<u8>> = again.iter().map(|r| r.value().unwrap().to_vec()).collect();
        for (part, _, value) in &acked {
            if *part != 0 {
                assert!(
                    values.contains(value.as_bytes()),
                    "{image:?}: {value} not redelivered"
                );
            }
        }
    }
}

/// A poll whose timeout passes with nothing to read returns nothing; one with nothing to
/// read sleeps on the store's wake-ups (seen asleep through
/// `internals::sleeping_readers`, not timed) until an append wakes it, and returns the
/// appended record: it neither returned empty-handed before the append nor missed it.
#[cfg(feature = "internals")]
#[test]
fn poll_sleeps_until_an_append_wakes_it() {
    let (_dir, store) = temp_topic_t(1);
    let mut c = store.consumer(ConsumerConfig::default()).unwrap();
    c.assign(&[tp("t", 0)]).unwrap();
    assert!(c.poll(Duration::from_millis(10)).unwrap().is_empty());
    let poller = std::thread::spawn(move || {
        let got = c.poll(common::HANG).unwrap();
        got.iter()
            .map(|r| (r.offset(), r.value().map(<[u8]>::to_vec)))
            .collect::<Vec<_>>()
    });
    common::wait_until("the poll goes to sleep", || {
        streamlog::internals::sleeping_readers(&store) > 0 || poller.is_finished()
    });
    assert!(!poller.is_finished(), "poll returned with nothing to read");
    let p = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    send_wait(&p, ProducerRecord::new("t").value("hello"));
    assert_eq!(poller.join().unwrap(), [(0, Some(b"hello".to_vec()))]);
}

#[test]
fn seek_pause_offsets_for_times_and_delete_records() {
    let (dir, store) = temp_topic_t(1);
    let p = store.producer(ProducerConfig::default()).unwrap();
    for i in 0..50 {
        let _ = p
            .send(
                ProducerRecord::new("t")
                    .value(format!("{i}"))
                    .timestamp(1000 + i * 10),
            )
            .unwrap();
    }
    p.flush().unwrap();
    let t0 = tp("t", 0);
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(std::slice::from_ref(&t0)).unwrap();
    assert_eq!(c.position(&t0).unwrap(), 0);
    c.seek(&t0, 40).unwrap();
    assert_eq!(poll_n(&mut c, 10)[0].offset(), 40);
    let found = c
        .offsets_for_times(&BTreeMap::from([(t0.clone(), 1205)]))
        .unwrap();
    assert_eq!(found[&t0].unwrap().offset, 21);
    // Past the end: auto_offset_reset (earliest) applies instead of waiting forever.
    c.seek(&t0, 10_000).unwrap();
    assert_eq!(poll_n(&mut c, 1)[0].offset(), 0);
    c.seek_to_beginning(&[]).unwrap();
    c.pause(std::slice::from_ref(&t0)).unwrap();
    assert!(c.poll(Duration::from_millis(20)).unwrap().is_empty());
    c.resume(std::slice::from_ref(&t0)).unwrap();
    assert_eq!(
        c.poll(Duration::from_secs(1))
            .unwrap()
            .get(0)
            .unwrap()
            .offset(),
        0
    );
    assert_eq!(c.end_offsets(std::slice::from_ref(&t0)).unwrap()[&t0], 50);
    // delete_records: a consumer below the new start follows auto_offset_reset.
    assert_eq!(store.delete_records("t", 0, 30).unwrap(), 30);
    c.seek(&t0, 5).unwrap();
    assert_eq!(poll_n(&mut c, 1)[0].offset(), 30);
    assert_eq!(
        c.beginning_offsets(std::slice::from_ref(&t0)).unwrap()[&t0],
        30
    );
    // ... durably.
    drop(c);
    store.close().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(part.log_start_offset(), 30);
    assert!(matches!(
        part.read(10, 100),
        Err(Error::OffsetOutOfRange { .. })
    ));
    // auto_offset_reset None: a typed error.
    let mut strict = store
        .consumer(ConsumerConfig::new("other").auto_offset_reset(OffsetReset::None))
        .unwrap();
    strict.assign(&[t0]).unwrap();
    assert!(matches!(
        strict.poll(Duration::from_millis(10)),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

/// `seek_to_beginning` and `seek_to_end` were resolved at the call: the log start
/// moving past that position before the next poll (retention, `delete_records`) left
/// the consumer to `auto_offset_reset` (`Latest`: past every record left; `None`: an
/// error), and records appended before the poll were read after a `seek_to_end`. As in
/// Kafka, both are resolved at the next poll (or `position`).
#[test]
fn seeks_to_the_ends_are_resolved_at_the_next_poll() {
    let (_dir, store) = temp_topic_t(1);
    let p = store.producer(ProducerConfig::default()).unwrap();
    let send = |n: i32| {
        for i in 0..n {
            let _ = p
                .send(ProducerRecord::new("t").value(format!("{i}")))
                .unwrap();
        }
        p.flush().unwrap();
    };
    send(50);
    let t0 = tp("t", 0);
    for (start, reset) in [(10, OffsetReset::Latest), (20, OffsetReset::None)] {
        let config = ConsumerConfig::new(format!("g{start}")).auto_offset_reset(reset);
        let mut c = store.consumer(config).unwrap();
        c.assign(std::slice::from_ref(&t0)).unwrap();
        c.seek(&t0, 5).unwrap();
        c.seek_to_beginning(&[]).unwrap();
        assert_eq!(store.delete_records("t", 0, start).unwrap(), start);
        assert_eq!(poll_n(&mut c, 1)[0].offset(), start, "{reset:?}");
    }
    let mut c = store.consumer(ConsumerConfig::new("end")).unwrap();
    c.assign(std::slice::from_ref(&t0)).unwrap();
    c.seek_to_end(&[]).unwrap();
    send(5);
    assert_eq!(c.position(&t0).unwrap(), 55);
}

/// A poll whose byte budget an earlier partition spent resolves a `seek_to_beginning`
/// of a later one without reading from it: the seek still holds for that position
/// (review: it was dropped there, and a log start moved past it before the next poll
/// left the partition to `auto_offset_reset` again).
#[test]
fn a_seek_to_the_beginning_holds_until_a_poll_reads_from_it() {
    let (_dir, store) = temp_topic_t(2);
    let p = store.producer(ProducerConfig::default()).unwrap();
    for partition in 0..2 {
        for i in 0..10 {
            let record = ProducerRecord::new("t")
                .partition(partition)
                .value(format!("{i}"));
            let _ = p.send(record).unwrap();
        }
    }
    p.flush().unwrap();
    let (t0, t1) = (tp("t", 0), tp("t", 1));
    // One byte: the first partition read spends it all.
    let config = ConsumerConfig::new("g").fetch_max_bytes(1);
    let mut c = store.consumer(config).unwrap();
    c.assign(&[t0.clone(), t1.clone()]).unwrap();
    c.seek_to_beginning(&[]).unwrap();
    let first = c.poll(Duration::from_secs(1)).unwrap();
    assert!(first.iter().all(|r| r.partition() == 0), "{first:?}");
    assert_eq!(c.position(&t1).unwrap(), 0);
    assert_eq!(store.delete_records("t", 1, 5).unwrap(), 5);
    let mut offsets = Vec::new();
    while offsets.is_empty() {
        let polled = c.poll(Duration::from_secs(1)).unwrap();
        assert!(!polled.is_empty());
        offsets.extend(
            polled
                .iter()
                .filter(|r| r.partition() == 1)
                .map(|r| r.offset()),
        );
    }
    assert_eq!(offsets[0], 5);
}

/// From a consumer hunt: a `seek_to_end` resolved by a poll that found the partition
/// caught up (nothing to read) was kept, and a later out-of-range read reset by it
/// (`Latest`) rather than by `auto_offset_reset` (`Earliest` here): the records appended
/// after the seek that retention left (15..19) were skipped. Kafka drops the seek once
/// the position is resolved; so does this now for a seek to the end.
#[test]
fn a_resolved_seek_to_the_end_does_not_decide_a_later_reset() {
    let (_dir, store) = temp_topic_t(1);
    let p = store.producer(ProducerConfig::default()).unwrap();
    let send = |r: std::ops::Range<i32>| {
        for i in r {
            let _ = p
                .send(ProducerRecord::new("t").value(i.to_string()))
                .unwrap();
        }
        p.flush().unwrap();
    };
    send(0..10);
    let t0 = tp("t", 0);
    let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
    let mut c = store.consumer(config).unwrap();
    c.assign(std::slice::from_ref(&t0)).unwrap();
    c.seek_to_end(&[]).unwrap();
    assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    assert_eq!(c.position(&t0).unwrap(), 10);
    send(10..20);
    assert_eq!(store.delete_records("t", 0, 15).unwrap(), 15);
    let got: Vec<i64> = c
        .poll(Duration::ZERO)
        .unwrap()
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(got, (15..20).collect::<Vec<_>>());
}

/// A member that stops polling for longer than its `max_poll_interval_ms` is removed
/// at another member's poll, its partition moves, its commits fail, and it rejoins when
/// it polls again.
///
/// The stall is real time (the group's liveness is measured on the monotonic clock, which
/// a test cannot move), so only its lower bound matters: the sleep makes at least 300 ms
/// pass, more under load. Nothing else may depend on how fast the test runs: the other
/// member's interval is an hour, so no stall of the test expires it, and the slow
/// member's 200 ms only matter while the two settle, which they are polled until they
/// do (a slow member expired by a stall there rejoins and the group settles again).
#[test]
fn a_member_that_stops_polling_is_removed_and_its_commits_fail() {
    let (_fs, store) = sim_topic_t(2);
    let mut slow = store
        .consumer(earliest("g").max_poll_interval_ms(200))
        .unwrap();
    slow.subscribe(["t"]).unwrap();
    let mut fast = store
        .consumer(earliest("g").max_poll_interval_ms(3_600_000))
        .unwrap();
    fast.subscribe(["t"]).unwrap();
    let mut both = vec![slow, fast];
    let one_each = |m: &[Consumer]| m.iter().all(|c| c.assignment().len() == 1);
    settle_until(&mut both, "one partition each", one_each);
    let mut fast = both.pop().unwrap();
    let mut slow = both.pop().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fast.poll(Duration::ZERO).unwrap();
    fast.poll(Duration::ZERO).unwrap();
    assert_eq!(
        fast.assignment().len(),
        2,
        "the stalled member's partition moved"
    );
    assert!(matches!(
        slow.commit_sync(),
        Err(Error::CommitFailed { .. })
    ));
    // Polling again rejoins.
    let mut both = vec![slow, fast];
    settle_until(&mut both, "the stalled member rejoined", one_each);
    assert_eq!(store.describe_group("g").unwrap().members.len(), 2);
}

/// Polls the other member from inside a revoke callback once the callback outlasted
/// its own consumer's `max_poll_interval_ms`: the other member's poll removes it.
struct StallsThenPollsOther {
    other: Arc<Mutex<Consumer>>,
}

impl RebalanceListener for StallsThenPollsOther {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, _: &[TopicPartition]) {
        // A lower bound only (see the test above): at least 300 ms pass.
        std::thread::sleep(Duration::from_millis(300));
        self.other.lock().poll(Duration::ZERO).unwrap();
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, _: &[TopicPartition]) {}
}

/// A member removed from the group while its own revoke callback ran (the callback
/// outlasted `max_poll_interval_ms`, and another member's poll took all partitions)
/// kept the partitions it was not revoking and went on fetching them: two members
/// owned one partition. It now takes the removal as an expiry: lost, then rejoined.
#[test]
fn a_member_removed_during_its_revoke_callback_keeps_nothing() {
    let (_fs, store) = sim_topic_t(2);
    let config = |ms| {
        earliest("g")
            .assignor(Assignor::CooperativeSticky)
            .max_poll_interval_ms(ms)
    };
    let mut slow = store.consumer(config(200)).unwrap();
    slow.subscribe(["t"]).unwrap();
    settle(std::slice::from_mut(&mut slow));
    assert_eq!(slow.assignment().len(), 2);
    let mut fast = store.consumer(config(3_600_000)).unwrap();
    fast.subscribe(["t"]).unwrap();
    let fast = Arc::new(Mutex::new(fast));
    slow.set_rebalance_listener(StallsThenPollsOther {
        other: fast.clone(),
    });
    // Revokes one partition (the callback stalls and `fast` takes both), keeps one.
    slow.poll(Duration::ZERO).unwrap();
    let theirs: BTreeSet<TopicPartition> = fast.lock().assignment().into_iter().collect();
    for tp in slow.assignment() {
        assert!(!theirs.contains(&tp), "{tp} owned by both members");
    }
}

/// Deletes topic `t` from inside the revoke callback, between the rebalance that
/// counted its partitions and the acquire that takes them.
struct DeletesT {
    store: Store,
}

impl RebalanceListener for DeletesT {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, _: &[TopicPartition]) {
        let _ = self.store.delete_topic("t");
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, _: &[TopicPartition]) {}
}

/// A partition acquired after its topic was deleted stayed owned in the group by a
/// member that did not read it; with the topic created again at the same count (so no
/// rebalance), nobody ever read the new topic's partition.
#[test]
fn a_partition_acquired_after_its_topic_went_is_taken_when_it_returns() {
    let (_fs, store) = sim_topic_t(1);
    store.create_topic("u", TopicConfig::default()).unwrap();
    let mut c = store.consumer(earliest("g")).unwrap();
    c.subscribe(["t", "u"]).unwrap();
    settle(std::slice::from_mut(&mut c));
    assert_eq!(c.assignment().len(), 2);
    c.set_rebalance_listener(DeletesT {
        store: store.clone(),
    });
    // A rebalance (u grows): the eager revoke deletes t, the acquire finds it gone.
    store.add_partitions("u", 2).unwrap();
    c.poll(Duration::ZERO).unwrap();
    assert!(!c.assignment().contains(&tp("t", 0)));
    store.create_topic("t", TopicConfig::default()).unwrap();
    settle(std::slice::from_mut(&mut c));
    assert!(
        c.assignment().contains(&tp("t", 0)),
        "{:?}: the re-created topic's partition is read by nobody",
        c.assignment()
    );
}

/// A member configured with another assignor than the group's was silently run with
/// the group's (an eager revoke-all where it expected cooperative, or the reverse);
/// Kafka refuses its join (INCONSISTENT_GROUP_PROTOCOL).
#[test]
fn a_member_with_another_assignor_is_refused() {
    let (_fs, store) = sim_topic_t(2);
    let mut range = store.consumer(earliest("g")).unwrap();
    range.subscribe(["t"]).unwrap();
    let mut sticky = store
        .consumer(earliest("g").assignor(Assignor::CooperativeSticky))
        .unwrap();
    let e = sticky.subscribe(["t"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidConfig {
                name: "assignor",
                ..
            }
        ),
        "{e}"
    );
    assert!(sticky.assignment().is_empty());
    assert_eq!(store.describe_group("g").unwrap().members.len(), 1);
    // Once the group is empty, it takes the next member's.
    range.close().unwrap();
    sticky.subscribe(["t"]).unwrap();
    settle(std::slice::from_mut(&mut sticky));
    assert_eq!(sticky.assignment().len(), 2);
}

/// From a review: `subscribe` after `assign` dropped the manual assignment before the
/// join, so a refused join (another assignor) left the consumer with neither: it read
/// nothing and its positions were gone. The assignment is replaced only by a join that
/// succeeds.
#[test]
fn a_refused_subscribe_keeps_the_manual_assignment() {
    let (_fs, store) = sim_topic_t(2);
    let p = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..3 {
        p.append(&[streamlog::Record::new(0, Some("k"), Some(format!("v{i}")))])
            .unwrap();
    }
    let mut range = store.consumer(earliest("g")).unwrap();
    range.subscribe(["t"]).unwrap();
    let mut manual = store
        .consumer(earliest("g").assignor(Assignor::CooperativeSticky))
        .unwrap();
    manual.assign(&[tp("t", 0)]).unwrap();
    assert_eq!(manual.poll(Duration::ZERO).unwrap().len(), 3);
    assert!(matches!(
        manual.subscribe(["t"]),
        Err(Error::InvalidConfig {
            name: "assignor",
            ..
        })
    ));
    assert_eq!(manual.assignment(), [tp("t", 0)]);
    assert_eq!(manual.position(&tp("t", 0)).unwrap(), 3);
}

/// A member expired while the group took another assignor (its members had all gone)
/// had its rejoin refused once, and then lost its subscription: its polls returned
/// nothing for ever. It now reports the refusal at each poll and rejoins once the
/// group takes its assignor again. (A member that stopped polling no longer keeps a
/// member with another assignor out, either.)
#[test]
fn a_refused_rejoin_keeps_the_subscription() {
    let (_fs, store) = sim_topic_t(2);
    let mut range = store
        .consumer(earliest("g").max_poll_interval_ms(200))
        .unwrap();
    range.subscribe(["t"]).unwrap();
    settle(std::slice::from_mut(&mut range));
    // A lower bound only: at least 300 ms without a poll expire it.
    std::thread::sleep(Duration::from_millis(300));
    let mut sticky = store
        .consumer(earliest("g").assignor(Assignor::CooperativeSticky))
        .unwrap();
    sticky.subscribe(["t"]).unwrap();
    for _ in 0..2 {
        let e = range.poll(Duration::ZERO).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidConfig {
                    name: "assignor",
                    ..
                }
            ),
            "{e}"
        );
    }
    sticky.close().unwrap();
    settle(std::slice::from_mut(&mut range));
    assert_eq!(range.assignment().len(), 2);
}

/// From a review: a join refused for its assignor had already removed the group's
/// members that stopped polling, and rebalanced nothing. Their partitions stayed with
/// no owner (the group described as stable) until some later join, leave or topic
/// change; their records were not read meanwhile. The refusal rebalances now.
#[test]
fn a_refused_join_still_hands_out_the_partitions_of_expired_members() {
    let (_fs, store) = sim_topic_t(2);
    let mut steady = store
        .consumer(earliest("g").max_poll_interval_ms(3_600_000))
        .unwrap();
    steady.subscribe(["t"]).unwrap();
    let mut slow = store
        .consumer(earliest("g").max_poll_interval_ms(200))
        .unwrap();
    slow.subscribe(["t"]).unwrap();
    let mut both = vec![steady, slow];
    let one_each = |m: &[Consumer]| m.iter().all(|c| c.assignment().len() == 1);
    settle_until(&mut both, "one partition each", one_each);
    let _slow = both.pop().unwrap();
    let mut steady = both.pop().unwrap();
    // A lower bound only: at least 300 ms without a poll expire `slow`.
    std::thread::sleep(Duration::from_millis(300));
    let mut other = store
        .consumer(earliest("g").assignor(Assignor::RoundRobin))
        .unwrap();
    let e = other.subscribe(["t"]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidConfig {
                name: "assignor",
                ..
            }
        ),
        "{e}"
    );
    settle(std::slice::from_mut(&mut steady));
    assert_eq!(
        steady.assignment().len(),
        2,
        "the expired member's partition"
    );
}

#[test]
fn auto_commit_commits_on_close_and_on_interval() {
    let (_fs, store) = sim_topic_t(1);
    let p = store.producer(ProducerConfig::default()).unwrap();
    for i in 0..20 {
        let _ = p
            .send(ProducerRecord::new("t").value(format!("{i}")))
            .unwrap();
    }
    p.flush().unwrap();
    // A member of `group` (auto-commit every `interval_ms`) that read `n` records of `t`.
    let read_with_auto_commit = |group: &str, interval_ms: u64, n: usize| {
        let config = ConsumerConfig::new(group)
            .auto_offset_reset(OffsetReset::Earliest)
            .auto_commit_interval_ms(interval_ms);
        let mut c = store.consumer(config).unwrap();
        c.subscribe(["t"]).unwrap();
        assert_eq!(poll_n(&mut c, n).len(), n);
        c
    };
    let mut c = read_with_auto_commit("g", 0, 20);
    c.poll(Duration::ZERO).unwrap(); // the interval (0) passed: commits position 20
    assert_eq!(c.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)], Some(20));
    let _ = p.send(ProducerRecord::new("t").value("late")).unwrap();
    p.flush().unwrap();
    let mut c2 = read_with_auto_commit("h", 3_600_000, 21);
    c2.close().unwrap();
    assert_eq!(
        store.describe_group("h").unwrap().offsets[0].offset,
        21,
        "close commits"
    );
    assert_eq!(store.list_groups(), vec!["g".to_string(), "h".to_string()]);
}

/// From a review: an auto-commit wrote the positions even when the group had them
/// committed already, and each commit wakes every waiting consumer of the store: two
/// idle consumers (of two groups) with a short interval woke each other into committing
/// without end. An auto-commit of nothing new writes nothing.
#[test]
fn an_auto_commit_of_unchanged_positions_writes_nothing() {
    let (_fs, store) = sim_topic_t(2);
    let p = store.producer(ProducerConfig::default()).unwrap();
    for i in 0..4 {
        let _ = p
            .send(ProducerRecord::new("t").key(format!("{i}")).value("v"))
            .unwrap();
    }
    p.flush().unwrap();
    let offsets = store
        .topic("__consumer_offsets")
        .unwrap()
        .partition(0)
        .unwrap();
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .auto_commit_interval_ms(0),
        )
        .unwrap();
    c.subscribe(["t"]).unwrap();
    assert_eq!(poll_n(&mut c, 4).len(), 4);
    c.poll(Duration::ZERO).unwrap(); // commits the positions
    let committed = offsets.log_end_offset();
    for _ in 0..3 {
        assert!(c.poll(Duration::ZERO).unwrap().is_empty());
    }
    assert_eq!(
        offsets.log_end_offset(),
        committed,
        "idle polls wrote commits"
    );
    // A position that moves is committed at the next poll (the interval is 0).
    let _ = p
        .send(ProducerRecord::new("t").key("4").value("v"))
        .unwrap();
    p.flush().unwrap();
    assert_eq!(poll_n(&mut c, 1).len(), 1);
    c.poll(Duration::ZERO).unwrap();
    assert!(offsets.log_end_offset() > committed);
    let described = store.describe_group("g").unwrap().offsets;
    assert_eq!(described.iter().map(|o| o.offset).sum::<i64>(), 5);
}

#[test]
fn send_is_a_std_future_and_a_full_buffer_appends_open_batches_to_make_room() {
    let (_fs, store) = sim_topic_t(1);
    let p = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    let fut = p.send(ProducerRecord::new("t").value("x")).unwrap();
    // A minimal executor: the future resolves when polled to completion.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = Box::pin(fut);
    let meta = loop {
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            break r.unwrap();
        }
        std::thread::yield_now();
    };
    assert_eq!(meta.offset, 0);
    // buffer_memory full and no record can be appended to make room: see
    // `send_times_out_when_buffer_memory_stays_full`.
    let tight = store
        .producer(
            ProducerConfig::default()
                .buffer_memory(1024)
                .batch_size(1024)
                .max_block_ms(50)
                .linger_ms(60_000),
        )
        .unwrap();
    let big = "y".repeat(600);
    let _first = tight
        .send(ProducerRecord::new("t").value(big.clone()))
        .unwrap();
    // The second does not fit: send appends the open batch to make room and succeeds.
    let second = tight
        .send(ProducerRecord::new("t").value(big.clone()))
        .unwrap();
    tight.flush().unwrap();
    assert!(second.wait().is_ok());
}

/// Keys, values and topic names may borrow the caller's buffers: `send` and
/// `send_batch` copy them into the open batch, so the buffers can be reused at once, even
/// while the batch lingers. Every kind of `Payload` source stores the same bytes.
#[test]
fn borrowed_records_are_copied_at_send_and_stored_like_owned_ones() {
    let (_fs, store) = sim_topic_t(1);
    let p = store
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    let topic = String::from("t");
    let mut key = Vec::new();
    let mut value = String::new();
    let mut futures = Vec::new();
    for i in 0..50 {
        key.clear();
        key.extend_from_slice(format!("k{i}").as_bytes());
        value.clear();
        value.push_str(&format!("v{i}"));
        let record = ProducerRecord::new(topic.as_str()).key(&key).value(&value);
        futures.push(p.send(record).unwrap());
    }
    let texts: Vec<(String, String)> = (50..60)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let batch: Vec<ProducerRecord<'_>> = texts
        .iter()
        .map(|(k, v)| ProducerRecord::new(&topic).key(k.as_bytes()).value(v))
        .collect();
    let batch_future = p.send_batch(&batch).unwrap();
    drop(batch);
    // Owned and other borrowed sources of the same bytes.
    let owned: ProducerRecord<'static> = ProducerRecord::new("t")
        .key(b"k60".to_vec())
        .value(bytes::Bytes::from_static(b"v60"));
    futures.push(p.send(owned).unwrap());
    let array = *b"k61";
    let shared = bytes::Bytes::from_static(b"v61");
    futures.push(
        p.send(ProducerRecord::new("t").key(&array).value(&shared))
            .unwrap(),
    );
    let short_lived = ProducerRecord::new("t")
        .key(String::from("k62").as_str())
        .value("v62")
        .into_owned();
    futures.push(p.send(short_lived).unwrap());
    p.flush().unwrap();
    let mut offsets: Vec<i64> = futures
        .into_iter()
        .map(|f| f.wait().unwrap().offset)
        .collect();
    offsets.extend(batch_future.wait().unwrap().iter().map(|m| m.offset));
    offsets.sort_unstable();
    assert_eq!(offsets, (0..63).collect::<Vec<i64>>());
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(&[tp("t", 0)]).unwrap();
    let got = poll_n(&mut c, 63);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = got
        .iter()
        .map(|r| (r.key().unwrap().to_vec(), r.value().unwrap().to_vec()))
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..63)
        .map(|i| (format!("k{i}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    assert_eq!(pairs, expected);
}

#[test]
fn acks_none_resolves_at_once_and_close_flushes() {
    let (_dir, store) = temp_topic_t(1);
    let p = store
        .producer(ProducerConfig::default().acks(Acks::None).linger_ms(60_000))
        .unwrap();
    let meta = send_wait(&p, ProducerRecord::new("t").value("a"));
    assert_eq!(meta.offset, -1);
    assert_eq!(log_end(&store, "t", 0), 0);
    p.close().unwrap();
    assert_eq!(log_end(&store, "t", 0), 1);
    assert!(matches!(
        p.send(ProducerRecord::new("t").value("b")),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn bad_input_at_every_entry_point_is_a_typed_error_and_the_store_stays_usable() {
    let (fs, store) = sim_topic_t(2);
    let p = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    let huge = vec![0u8; 2 << 20];
    type Case<'a> = (
        &'static str,
        Box<dyn Fn() -> streamlog::Result<()> + 'a>,
        fn(&Error) -> bool,
    );
    let consumer = || store.consumer(ConsumerConfig::new("g"));
    let partition_0 = |topic: &str| store.topic(topic)?.partition(0);
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown topic",
            Box::new(|| p.send(ProducerRecord::new("nope")).map(drop)),
            |e| not_found_kind(e, "topic"),
        ),
        (
            "partition too high",
            Box::new(|| p.send(ProducerRecord::new("t").partition(2)).map(drop)),
            |e| not_found_kind(e, "partition"),
        ),
        (
            "negative partition",
            Box::new(|| p.send(ProducerRecord::new("t").partition(-1)).map(drop)),
            not_found,
        ),
        (
            "record too large",
            Box::new(|| {
                p.send(ProducerRecord::new("t").value(huge.clone()))
                    .map(drop)
            }),
            too_large,
        ),
        (
            "send_batch: unknown topic",
            Box::new(|| {
                p.send_batch(&[ProducerRecord::new("t"), ProducerRecord::new("nope")])
                    .map(drop)
            }),
            |e| not_found_kind(e, "topic"),
        ),
        (
            "send_batch: internal topic",
            Box::new(|| {
                p.send_batch(&[ProducerRecord::new("__consumer_offsets").key("k")])
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "send_batch: record too large",
            Box::new(|| {
                p.send_batch(&[ProducerRecord::new("t").value(huge.clone())])
                    .map(drop)
            }),
            too_large,
        ),
        (
            "batch_size 0",
            Box::new(|| {
                store
                    .producer(ProducerConfig::default().batch_size(0))
                    .map(drop)
            }),
            |e| config_named(e, "batch_size"),
        ),
        (
            "gzip level 99",
            Box::new(|| {
                store
                    .producer(
                        ProducerConfig::default()
                            .compression(Compression::Gzip)
                            .compression_level(Some(99)),
                    )
                    .map(drop)
            }),
            invalid_config,
        ),
        (
            "max_poll_records 0",
            Box::new(|| {
                store
                    .consumer(ConsumerConfig::new("g").max_poll_records(0))
                    .map(drop)
            }),
            invalid_config,
        ),
        (
            "empty group id",
            Box::new(|| store.consumer(ConsumerConfig::new("")).map(drop)),
            invalid_config,
        ),
        (
            // Stored as a Kafka string (int16 length): a longer id was cut on disk,
            // and its commits were lost (or merged with another id's) at reopen.
            "group id over 32767 bytes",
            Box::new(|| {
                store
                    .consumer(ConsumerConfig::new("g".repeat(32_768)))
                    .map(drop)
            }),
            |e| config_named(e, "group_id"),
        ),
        (
            "subscribe without group",
            Box::new(|| store.consumer(ConsumerConfig::default())?.subscribe(["t"])),
            invalid_argument,
        ),
        (
            "subscribe to a bad name",
            Box::new(|| consumer()?.subscribe(["bad/name"])),
            invalid_argument,
        ),
        (
            "assign unknown partition",
            Box::new(|| consumer()?.assign(&[tp("t", 9)])),
            not_found,
        ),
        (
            "seek unassigned",
            Box::new(|| consumer()?.seek(&tp("t", 0), 0)),
            invalid_argument,
        ),
        (
            "seek negative",
            Box::new(|| {
                let mut c = consumer()?;
                c.assign(&[tp("t", 0)])?;
                c.seek(&tp("t", 0), -5)
            }),
            invalid_argument,
        ),
        (
            "offsets_for_times negative",
            Box::new(|| {
                let c = consumer()?;
                c.offsets_for_times(&BTreeMap::from([(tp("t", 0), -1), (tp("t", 1), 5)]))
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "offsets_for_times i64::MIN",
            Box::new(|| {
                let c = consumer()?;
                c.offsets_for_times(&BTreeMap::from([(tp("t", 0), i64::MIN)]))
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "pause unassigned",
            Box::new(|| consumer()?.pause(&[tp("t", 1)])),
            invalid_argument,
        ),
        (
            "commit without group",
            Box::new(|| store.consumer(ConsumerConfig::default())?.commit_sync()),
            invalid_argument,
        ),
        (
            "commit negative offset",
            Box::new(|| consumer()?.commit_sync_offsets(&BTreeMap::from([(tp("t", 0), -1)]))),
            invalid_argument,
        ),
        (
            "commit unknown partition",
            Box::new(|| consumer()?.commit_sync_offsets(&BTreeMap::from([(tp("zz", 0), 1)]))),
            not_found,
        ),
        (
            "end offsets unknown",
            Box::new(|| consumer()?.end_offsets(&[tp("zz", 0)]).map(drop)),
            not_found,
        ),
        (
            "delete_records past end",
            Box::new(|| store.delete_records("t", 0, 99).map(drop)),
            |e| matches!(e, Error::OffsetOutOfRange { .. }),
        ),
        (
            "delete_records unknown",
            Box::new(|| store.delete_records("zz", 0, 0).map(drop)),
            not_found,
        ),
        (
            "describe unknown group",
            Box::new(|| store.describe_group("nobody").map(drop)),
            not_found,
        ),
        (
            "delete internal topic",
            Box::new(|| store.delete_topic("__consumer_offsets")),
            invalid_argument,
        ),
        (
            "produce to internal topic",
            Box::new(|| {
                p.send(ProducerRecord::new("__consumer_offsets").value("x"))
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "delete_records on internal topic",
            Box::new(|| store.delete_records("__consumer_offsets", 0, 0).map(drop)),
            invalid_argument,
        ),
        (
            "append to internal topic through its partition",
            Box::new(|| {
                partition_0("__consumer_offsets")?
                    .append(&[streamlog::Record::new(0, Some("k"), Some("v"))])
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "delete_records on internal topic through its partition",
            Box::new(|| {
                partition_0("__consumer_offsets")?
                    .delete_records(0)
                    .map(drop)
            }),
            invalid_argument,
        ),
        (
            "add partitions to internal topic",
            Box::new(|| store.add_partitions("__consumer_offsets", 2)),
            invalid_argument,
        ),
        (
            "add too many partitions",
            Box::new(|| store.add_partitions("t", 1)),
            invalid_argument,
        ),
        (
            "max_decompressed_bytes 0",
            Box::new(|| {
                let decode = streamlog::format::DecodeOptions {
                    max_decompressed_bytes: 0,
                };
                other_store(&fs, StoreConfig::default().decode_options(decode))
            }),
            |e| config_named(e, "max_decompressed_bytes"),
        ),
        (
            // A pass would cover a batch or two: compaction would crawl.
            "cleaner_key_map_bytes 0",
            Box::new(|| other_store(&fs, StoreConfig::default().cleaner_key_map_bytes(0))),
            |e| config_named(e, "cleaner_key_map_bytes"),
        ),
        (
            // Was silently clamped to 1.
            "maintenance_interval_ms 0",
            Box::new(|| other_store(&fs, StoreConfig::default().maintenance_interval_ms(0))),
            |e| config_named(e, "maintenance_interval_ms"),
        ),
        (
            "send with a timestamp below -1",
            Box::new(|| {
                p.send(ProducerRecord::new("t").value("v").timestamp(-2))
                    .map(drop)
            }),
            |e| argument_named(e, "timestamp"),
        ),
        (
            "append with a timestamp below -1",
            Box::new(|| {
                partition_0("t")?
                    .append(&[streamlog::Record::new(-5, Some("k"), Some("v"))])
                    .map(drop)
            }),
            |e| argument_named(e, "timestamp"),
        ),
        (
            "delete_records below -1",
            Box::new(|| store.delete_records("t", 1, -2).map(drop)),
            invalid_argument,
        ),
        (
            "open a store at an empty path",
            Box::new(|| Store::open("").map(drop)),
            invalid_argument,
        ),
        (
            "open a store inside another",
            Box::new(|| other_store_at(&fs, "/store/t-0", StoreConfig::default())),
            invalid_argument,
        ),
        (
            "open the same store twice",
            Box::new(|| other_store_at(&fs, "/store", StoreConfig::default())),
            |e| matches!(e, Error::Locked { .. }),
        ),
        (
            "commit to a deleted topic",
            Box::new(|| {
                store.create_topic("doomed", TopicConfig::default())?;
                let mut c = consumer()?;
                c.assign(&[tp("doomed", 0)])?;
                store.delete_topic("doomed")?;
                c.commit_sync_offsets(&BTreeMap::from([(tp("doomed", 0), 0)]))
            }),
            not_found,
        ),
    ];
    for (name, case, expected) in &cases {
        match case() {
            Err(e) => assert!(expected(&e), "{name}: unexpected error {e:?}"),
            Ok(()) => panic!("{name}: accepted"),
        }
        // Still usable after each.
        let meta = send_wait(&p, ProducerRecord::new("t").partition(0).value(*name));
        assert_eq!(meta.partition, 0);
    }
    assert_eq!(log_end(&store, "t", 0), cases.len() as i64);
    store.close().unwrap();
    assert!(matches!(
        p.send(ProducerRecord::new("t").value("x")),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        store.consumer(ConsumerConfig::default()),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        store.describe_topic("t"),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        store.describe_group("g"),
        Err(Error::Closed { .. })
    ));
}

/// A second store on `fs` at `/other`, opened and closed.
fn other_store(fs: &SimFs, config: StoreConfig) -> streamlog::Result<()> {
    other_store_at(fs, "/other", config)
}

fn other_store_at(fs: &SimFs, dir: &str, config: StoreConfig) -> streamlog::Result<()> {
    sim_store_at(fs, dir, config)?.close()
}

// What `bad_input_at_every_entry_point_is_a_typed_error_and_the_store_stays_usable`
// expects a refusal to be.

fn invalid_argument(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}

fn argument_named(e: &Error, argument: &str) -> bool {
    matches!(e, Error::InvalidArgument { name, .. } if *name == argument)
}

fn invalid_config(e: &Error) -> bool {
    matches!(e, Error::InvalidConfig { .. })
}

fn config_named(e: &Error, knob: &str) -> bool {
    matches!(e, Error::InvalidConfig { name, .. } if *name == knob)
}

fn not_found(e: &Error) -> bool {
    matches!(e, Error::NotFound { .. })
}

fn not_found_kind(e: &Error, what: &str) -> bool {
    matches!(e, Error::NotFound { kind, .. } if *kind == what)
}

fn too_large(e: &Error) -> bool {
    matches!(e, Error::RecordTooLarge { .. })
}

/// Kafka's meanings the bad-input battery found missing: `delete_records(.., -1)`
/// deletes up to the end; tombstones and null header values can be written and read
/// back; a commit of more partitions than one batch of `__consumer_offsets` holds is
/// split, not refused, and survives a reopen.
#[test]
fn kafka_meanings_of_minus_one_tombstones_null_headers_and_wide_commits() {
    let (fs, store) = sim_topic_t(1);
    let part = store.topic("t").unwrap().partition(0).unwrap();
    let record = streamlog::Record::tombstone(1_700_000_000_000, "user-7").null_header("trace");
    part.append(&[record, streamlog::Record::new(-1, Some("k"), Some("v"))])
        .unwrap();
    let back = part.read(0, 1 << 20).unwrap();
    assert_eq!(back[0].key.as_deref(), Some(&b"user-7"[..]));
    assert_eq!(back[0].value, None);
    assert_eq!(back[0].headers, vec![streamlog::Header::null("trace")]);
    assert_eq!(back[1].timestamp, -1, "-1 is Kafka's no-timestamp");
    assert_eq!(store.delete_records("t", 0, -1).unwrap(), 2);
    assert_eq!(part.log_start_offset(), 2);

    let partitions = 64;
    store
        .create_topic("wide", TopicConfig::default().partitions(partitions))
        .unwrap();
    let group = "g".repeat(32_767);
    let offsets: BTreeMap<TopicPartition, i64> =
        (0..partitions).map(|p| (tp("wide", p), 0)).collect();
    // 64 records of over 32 KiB each: more than one batch of 1 MiB.
    store
        .consumer(ConsumerConfig::new(group.as_str()))
        .unwrap()
        .commit_sync_offsets(&offsets)
        .unwrap();
    store.close().unwrap();
    let store = sim_store_maintained(&fs).unwrap();
    let c = store.consumer(ConsumerConfig::new(group.as_str())).unwrap();
    let committed = c
        .committed(&offsets.keys().cloned().collect::<Vec<_>>())
        .unwrap();
    assert!(committed.values().all(|o| *o == Some(0)), "{committed:?}");
}

/// Every `Result` method of a closed consumer says `Closed` (not, say, that its
/// partition is not assigned), and so do they once its store is closed.
#[test]
fn a_closed_consumer_answers_closed() {
    let (_fs, store) = sim_topic_t(1);
    let t0 = tp("t", 0);
    let t0s = std::slice::from_ref(&t0);
    let check = |c: &mut Consumer, when: &str| {
        let results: Vec<(&str, streamlog::Result<()>)> = vec![
            ("seek", c.seek(&t0, 0)),
            ("seek_to_beginning", c.seek_to_beginning(&[])),
            ("seek_to_end", c.seek_to_end(&[])),
            ("position", c.position(&t0).map(drop)),
            ("pause", c.pause(t0s)),
            ("resume", c.resume(t0s)),
            ("beginning_offsets", c.beginning_offsets(t0s).map(drop)),
            ("end_offsets", c.end_offsets(t0s).map(drop)),
            (
                "offsets_for_times",
                c.offsets_for_times(&BTreeMap::from([(t0.clone(), 0)]))
                    .map(drop),
            ),
            ("committed", c.committed(t0s).map(drop)),
            ("poll", c.poll(Duration::ZERO).map(drop)),
            ("commit_sync", c.commit_sync()),
        ];
        for (name, r) in results {
            assert!(
                matches!(r, Err(Error::Closed { .. })),
                "{when}: {name}: {r:?}"
            );
        }
    };
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(t0s).unwrap();
    c.close().unwrap();
    check(&mut c, "after close");
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(t0s).unwrap();
    store.close().unwrap();
    check(&mut c, "after the store's close");
}

/// `send_batch`: records go where `send` would put them, in order, with their metadata;
/// a refused record means none was sent; with `linger_ms` 0 they are appended when the
/// call returns; under `Acks::None` offsets are -1; the future also works when polled.
#[test]
fn send_batch_sends_like_send_and_checks_everything_first() {
    let (_dir, store) = temp_topic_t(3);
    store.create_topic("u", TopicConfig::default()).unwrap();
    let p = store
        .producer(ProducerConfig::default().batch_size(400))
        .unwrap();
    let records: Vec<ProducerRecord> = (0..60)
        .map(|i| {
            let topic = if i % 4 == 3 { "u" } else { "t" };
            ProducerRecord::new(topic)
                .key(format!("k{i}"))
                .value(format!("v{i}"))
                .timestamp(1_700_000_000_000 + i)
        })
        .collect();
    let sent = p.send_batch(&records).unwrap();
    assert_eq!(sent.len(), 60);
    let metas = sent.wait().unwrap();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for (i, (r, m)) in records.iter().zip(&metas).enumerate() {
        let topic = if i % 4 == 3 { "u" } else { "t" };
        let key = format!("k{i}");
        let n = if topic == "t" { 3 } else { 1 };
        assert_eq!(&*m.topic, topic);
        assert_eq!(
            m.partition,
            streamlog::producer::partition_for_key(key.as_bytes(), n)
        );
        assert_eq!(m.timestamp, 1_700_000_000_000 + i as i64);
        // Per partition, offsets follow the records' order.
        let e = next.entry((topic.to_string(), m.partition)).or_insert(0);
        assert_eq!(m.offset, *e, "{r:?}");
        *e += 1;
        let got = store
            .topic(topic)
            .unwrap()
            .partition(m.partition)
            .unwrap()
            .read(m.offset, 1)
            .unwrap();
        assert_eq!(got[0].value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    // One bad record: nothing of the call is sent.
    let end = |t: &str, part: i32| log_end(&store, t, part);
    let before: Vec<i64> = (0..3).map(|part| end("t", part)).collect();
    let mut bad = records[..5].to_vec();
    bad.push(ProducerRecord::new("t").partition(7).value("x"));
    assert!(matches!(p.send_batch(&bad), Err(Error::NotFound { .. })));
    bad.pop();
    bad.push(ProducerRecord::new("nope").value("x"));
    assert!(matches!(p.send_batch(&bad), Err(Error::NotFound { .. })));
    bad.pop();
    bad.push(ProducerRecord::new("t").value(vec![0u8; 2 << 20]));
    assert!(matches!(
        p.send_batch(&bad),
        Err(Error::RecordTooLarge { .. })
    ));
    p.flush().unwrap();
    assert_eq!(
        (0..3).map(|part| end("t", part)).collect::<Vec<_>>(),
        before
    );
    // linger_ms 0: appended when the call returns.
    let now = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    let u_end = end("u", 0);
    let f = now
        .send_batch(&[
            ProducerRecord::new("u").value("a"),
            ProducerRecord::new("u").value("b"),
        ])
        .unwrap();
    assert!(f.is_ready());
    assert_eq!(end("u", 0), u_end + 2);
    // Polled as a future.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(f);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => {
            assert_eq!(
                r.unwrap().iter().map(|m| m.offset).collect::<Vec<_>>(),
                [u_end, u_end + 1]
            );
        }
        std::task::Poll::Pending => panic!("appended, so ready"),
    }
    // Acks::None: offsets are not reported.
    let fire = store
        .producer(ProducerConfig::default().acks(Acks::None))
        .unwrap();
    let m = fire
        .send_batch(&[ProducerRecord::new("u").value("c")])
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(m[0].offset, -1);
    fire.close().unwrap();
}

/// With `linger_ms` set, a batch that fills is handed to the producer's linger thread,
/// which appends it at once (not at the linger deadline, an hour away here), also when
/// the thread sleeps until that deadline, while the sender goes on; every future of a
/// full batch resolves without a flush.
#[cfg(feature = "internals")]
#[test]
fn full_batches_are_appended_by_the_linger_thread_without_waiting_for_linger() {
    let (_dir, store) = temp_topic_t(1);
    let p = store
        .producer(
            ProducerConfig::default()
                .linger_ms(3_600_000)
                .batch_size(300),
        )
        .unwrap();
    let send = |i: i32| {
        p.send(ProducerRecord::new("t").value(format!("value-{i:04}")))
            .unwrap()
    };
    // The first batch opens; the linger thread goes to sleep until its deadline (seen
    // through internals, not waited for with a sleep).
    let mut futures = vec![send(0)];
    common::wait_until("the linger thread sleeps until the deadline", || {
        streamlog::internals::linger_thread_waits_for_a_deadline(&p)
    });
    futures.extend((1..50).map(send));
    // The last batch is still open (under batch_size); the ones before it filled.
    common::wait_until("full batches are appended", || {
        futures[..40].iter().all(|f| f.is_ready())
    });
    assert!(
        !futures[49].is_ready(),
        "the open batch waits for linger_ms"
    );
    p.flush().unwrap();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.wait().unwrap().offset, i as i64);
    }
}

/// A producer caches topic metadata; it must notice every topic change: new partitions,
/// a deleted topic, a topic deleted and created again (with another partition count and
/// cleanup policy), each between two sends of the same producer.
#[test]
fn producer_follows_topic_changes_between_sends() {
    let (_dir, store) = temp_topic_t(1);
    let p = store
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    let send = |r: ProducerRecord| {
        p.send(r).and_then(|f| {
            p.flush()?;
            f.wait()
        })
    };
    assert_eq!(send(ProducerRecord::new("t").value("a")).unwrap().offset, 0);
    assert!(matches!(
        send(ProducerRecord::new("t").partition(2).value("b")),
        Err(Error::NotFound { .. })
    ));
    store.add_partitions("t", 3).unwrap();
    let m = send(ProducerRecord::new("t").partition(2).value("b")).unwrap();
    assert_eq!((m.partition, m.offset), (2, 0));
    // An open batch of a topic that is then deleted fails; later sends are NotFound.
    let pending = p
        .send(ProducerRecord::new("t").partition(1).value("c"))
        .unwrap();
    store.delete_topic("t").unwrap();
    assert!(matches!(
        send(ProducerRecord::new("t").value("d")),
        Err(Error::NotFound { .. })
    ));
    p.flush().unwrap();
    assert!(
        pending.wait().is_err(),
        "the deleted topic's batch cannot be appended"
    );
    // Created again: 2 partitions, compacted (keys required), offsets from 0.
    store
        .create_topic(
            "t",
            TopicConfig::default()
                .partitions(2)
                .cleanup_policy(streamlog::CleanupPolicy::Compact),
        )
        .unwrap();
    assert!(matches!(
        send(ProducerRecord::new("t").partition(1).value("e")),
        Err(Error::InvalidArgument { .. })
    ));
    let m = send(ProducerRecord::new("t").partition(1).key("k").value("e")).unwrap();
    assert_eq!((m.partition, m.offset), (1, 0));
    assert!(matches!(
        send(ProducerRecord::new("t").partition(2).key("k").value("f")),
        Err(Error::NotFound { .. })
    ));
    let part = store.topic("t").unwrap().partition(1).unwrap();
    let recs = part.read(0, 1 << 20).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_deref(), Some(&b"e"[..]));
}

/// What a poll returns, read both ways: borrowed views and owned records carry the same
/// topic, partition, offset, timestamp, key, value (null too) and headers, and a
/// compressed batch reads like an uncompressed one.
#[test]
fn consumer_records_borrowed_and_owned_agree() {
    let (_dir, store) = temp_topic_t(2);
    for codec in [Compression::None, Compression::Lz4] {
        let p = store
            .producer(ProducerConfig::default().compression(codec))
            .unwrap();
        for i in 0..20 {
            let mut r = ProducerRecord::new("t")
                .partition(i % 2)
                .key(format!("k{i}"))
                .timestamp(1_700_000_000_000 + i64::from(i));
            if i % 5 != 0 {
                r = r.value(format!("v{i}"));
            }
            if i % 3 == 0 {
                r = r.header("h", format!("x{i}")).header("g", "");
            }
            drop(p.send(r).unwrap());
        }
        p.close().unwrap();
    }
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(&[tp("t", 0), tp("t", 1)]).unwrap();
    let mut seen = 0;
    while seen < 40 {
        let records = c.poll(Duration::from_secs(5)).unwrap();
        assert!(!records.is_empty());
        let borrowed: Vec<RecordRef<'_>> = records.iter().collect();
        assert_eq!(borrowed.len(), records.len());
        for part in records.partitions() {
            let offsets: Vec<i64> = records.records(&part).map(|r| r.offset()).collect();
            assert!(
                offsets.windows(2).all(|w| w[0] < w[1]),
                "{part}: {offsets:?}"
            );
        }
        for (i, r) in borrowed.iter().enumerate() {
            let n: i32 = std::str::from_utf8(&r.key().unwrap()[1..])
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.topic(), "t");
            assert_eq!(r.partition(), n % 2);
            assert_eq!(r.timestamp(), 1_700_000_000_000 + i64::from(n));
            let value = (n % 5 != 0).then(|| format!("v{n}"));
            assert_eq!(r.value(), value.as_deref().map(str::as_bytes));
            assert_eq!(
                r.value_bytes().as_deref(),
                value.as_deref().map(str::as_bytes)
            );
            let headers: Vec<(&str, Option<&[u8]>)> = r
                .headers()
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_deref()))
                .collect();
            let want_h = format!("x{n}");
            if n % 3 == 0 {
                assert_eq!(
                    headers,
                    [("h", Some(want_h.as_bytes())), ("g", Some(&b""[..]))]
                );
            } else {
                assert!(headers.is_empty());
            }
            assert_eq!(records.get(i).unwrap(), r.to_owned());
        }
        let owned: Vec<streamlog::ConsumerRecord> = records.clone().into_iter().collect();
        for (b, o) in borrowed.iter().zip(&owned) {
            assert_eq!(*b, *o);
            assert_eq!(o.headers(), b.headers());
            assert_eq!(o.key_bytes(), b.key_bytes());
        }
        seen += records.len();
    }
}

/// Concurrent `Acks::All` senders on one partition: one of them appends and fsyncs the
/// others' batches too (the partition queue drains for everyone). Every resolved send
/// must be at its reported offset with its bytes, and survive a power cut.
#[test]
fn concurrent_acks_all_sends_are_each_durable_at_their_offset() {
    let (fs, store) = sim_topic_t(1);
    let p = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .unwrap();
    let acked = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..12 {
            let (p, acked) = (&p, &acked);
            s.spawn(move || {
                for i in 0..40 {
                    let value = format!("t{t}-{i}");
                    let meta = send_wait(
                        p,
                        ProducerRecord::new("t")
                            .key(format!("k{t}"))
                            .value(value.clone()),
                    );
                    acked.lock().push((meta.offset, value));
                }
            });
        }
    });
    let acked = acked.into_inner();
    let offsets: BTreeSet<i64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets.len(), 480, "every send got its own offset");
    // Taken while the store is open: only what was fsync'd is in the image.
    let crashed = fs.crash_image(CrashImage::DropAll);
    let store = sim_store_maintained(&crashed).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for (offset, value) in &acked {
        let recs = part.read(*offset, 1).unwrap();
        let r = recs.iter().find(|r| r.offset == *offset).unwrap();
        assert_eq!(r.value.as_deref(), Some(value.as_bytes()));
    }
}

/// A send that needs buffer memory held by a send stuck in its fsync waits
/// `max_block_ms`, then fails with `Timeout`; once the fsync completes the memory is
/// free again. The second send starts once the first is inside its fsync (a hook
/// reports it), not after a sleep.
#[test]
fn send_times_out_when_buffer_memory_stays_full() {
    // Data fsyncs block while the gate is closed; the first one of `t-0` reports it.
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let entered_tx = std::sync::Mutex::new(Some(entered_tx));
    let closed = gate.clone();
    let fs = InterceptFs::new(
        SimFs::new(),
        Hooks {
            before_sync: Box::new(move |path| {
                let (m, cv) = &*closed;
                let mut closed = m.lock().unwrap();
                if *closed
                    && path.starts_with("/store/t-0")
                    && let Some(tx) = entered_tx.lock().unwrap().take()
                {
                    tx.send(()).unwrap();
                }
                while *closed {
                    closed = cv.wait(closed).unwrap();
                }
            }),
            ..Hooks::default()
        },
    );
    let store = Store::open_with(
        "/store",
        StoreConfig::default()
            .file_system(Arc::new(fs) as Arc<dyn FileSystem>)
            .background_maintenance(false),
    )
    .unwrap();
    let store = with_topic_t(store, 1);
    let p = store
        .producer(
            ProducerConfig::default()
                .acks(Acks::All)
                .linger_ms(0)
                .buffer_memory(1024)
                .batch_size(1024)
                .max_block_ms(100),
        )
        .unwrap();
    *gate.0.lock().unwrap() = true;
    // The first send holds 600 bytes of buffer_memory while its fsync is blocked.
    let p1 = p.clone();
    let stuck = std::thread::spawn(move || {
        p1.send(ProducerRecord::new("t").value("y".repeat(600)))
            .map(|f| f.wait())
    });
    common::recv(&entered, "the first send reaches its fsync");
    let second = p.send(ProducerRecord::new("t").value("z".repeat(600)));
    // It reports the whole max_block_ms waited: the library's own measure of its
    // deadline wait (which only times out past the deadline), not a duration the test
    // takes, so load cannot change it.
    assert!(
        matches!(second, Err(Error::Timeout { what, waited_ms })
            if what.contains("max_block_ms") && waited_ms >= 100),
        "expected Timeout naming max_block_ms after waiting it, got {second:?}"
    );
    *gate.0.lock().unwrap() = false;
    gate.1.notify_all();
    let meta = stuck.join().unwrap().unwrap().unwrap();
    assert_eq!(meta.offset, 0);
    // Memory is free again.
    send_wait(&p, ProducerRecord::new("t").value("z".repeat(600)));
}

#[test]
fn handles_are_send_and_sync_as_documented() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync_clone::<streamlog::Producer>();
    send_sync_clone::<Store>();
    send::<Consumer>();
    send::<streamlog::DeliveryFuture>();
}

/// A batch of 5 records (offsets 0..5) whose third record's length runs past the batch,
/// with a valid CRC: only decoding the records finds it.
fn batch_with_a_malformed_third_record() -> Vec<u8> {
    let mut b = streamlog::BatchBuilder::new();
    for i in 0..5u8 {
        b.push(1_700_000_000_000, Some(&[i]), Some(&[i; 3]), &[])
            .unwrap();
    }
    let mut bytes = b.finish().unwrap();
    // Records start after the 61-byte header; these are short, so each length is one
    // zigzag varint byte.
    let mut pos = 61;
    for _ in 0..2 {
        pos += 1 + usize::from(bytes[pos] / 2);
    }
    bytes[pos] = 0x7e; // length 63: past the end
    reseal_crc(&mut bytes);
    bytes
}

/// A malformed record in one partition, met after other partitions returned records in
/// the same poll, is reported first at the next poll (not deferred again behind records
/// of partitions appended to meanwhile), and at every poll after until a seek past it.
#[test]
fn a_deferred_partition_error_is_reported_first_at_the_next_poll() {
    let (fs, store) = sim_topic_t(3);
    let topic = store.topic("t").unwrap();
    let append = |p: i32, n: usize| {
        let recs: Vec<streamlog::Record> = (0..n)
            .map(|i| streamlog::Record::new(1_700_000_000_000, Some(format!("k{i}")), Some("v")))
            .collect();
        topic.partition(p).unwrap().append(&recs).unwrap();
    };
    append(0, 3);
    append(1, 3);
    store.close().unwrap();
    drop(topic);
    drop(store);
    // Partition 2 gets the bad batch; without its clean-shutdown marker it is scanned
    // (batch checks only) at open.
    fs.write_file(
        std::path::Path::new("/store/t-2/00000000000000000000.log"),
        batch_with_a_malformed_third_record(),
    );
    fs.delete_file(std::path::Path::new("/store/t-2/.kafka_cleanshutdown"));
    let store = sim_store_maintained(&fs).unwrap();
    let topic = store.topic("t").unwrap();
    assert_eq!(topic.partition(2).unwrap().log_end_offset(), 5);
    let append = |p: i32, n: usize| {
        let recs: Vec<streamlog::Record> = (0..n)
            .map(|i| streamlog::Record::new(1_700_000_000_000, Some(format!("n{i}")), Some("w")))
            .collect();
        topic.partition(p).unwrap().append(&recs).unwrap();
    };
    let mut c = store.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("t", p)).collect();
    c.assign(&tps).unwrap();
    c.seek_to_beginning(&tps).unwrap();
    // Partitions 0 and 1, then partition 2 up to the bad record; its error is deferred.
    let first = c.poll(Duration::from_secs(1)).unwrap();
    let got = |records: &streamlog::ConsumerRecords| {
        records
            .iter()
            .map(|r| (r.partition(), r.offset()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        got(&first),
        [
            (0, 0),
            (0, 1),
            (0, 2),
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 0),
            (2, 1)
        ]
    );
    assert_eq!(c.position(&tps[2]).unwrap(), 2, "stopped at the bad record");
    // New records elsewhere do not push the error back again.
    append(0, 2);
    append(1, 2);
    for _ in 0..2 {
        let e = c.poll(Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, Error::InvalidBatch { .. }), "{e}");
        assert_eq!(c.position(&tps[2]).unwrap(), 2);
    }
    // Past its batch (the records after a record whose length is damaged cannot be
    // found), everything else arrives.
    c.seek(&tps[2], 5).unwrap();
    let mut rest = Vec::new();
    while rest.len() < 4 {
        let records = c.poll(Duration::from_secs(1)).unwrap();
        assert!(!records.is_empty(), "got only {rest:?}");
        rest.extend(got(&records));
    }
    rest.sort();
    assert_eq!(rest, [(0, 3), (0, 4), (1, 3), (1, 4)]);
}

/// A partition whose topic is deleted while a consumer lags on it returns nothing (and
/// does not block the other partitions' records); once the topic is created again, its
/// new records arrive from the start.
#[test]
fn a_consumer_follows_a_deleted_and_recreated_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for t in ["t", "u"] {
        store.create_topic(t, TopicConfig::default()).unwrap();
    }
    let append = |topic: &str, values: &[&str]| {
        let recs: Vec<streamlog::Record> = values
            .iter()
            .map(|v| streamlog::Record::new(1_700_000_000_000, Some("k"), Some(v.to_string())))
            .collect();
        store
            .topic(topic)
            .unwrap()
            .partition(0)
            .unwrap()
            .append(&recs)
            .unwrap();
    };
    append("t", &["t1", "t2"]);
    append("u", &["u1"]);
    let mut c = store
        .consumer(ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.assign(&[TopicPartition::new("t", 0), TopicPartition::new("u", 0)])
        .unwrap();
    let values = |c: &mut Consumer| -> Vec<String> {
        let mut out: Vec<String> = c
            .poll(Duration::from_millis(50))
            .unwrap()
            .iter()
            .map(|r| String::from_utf8(r.value().unwrap().to_vec()).unwrap())
            .collect();
        out.sort();
        out
    };
    assert_eq!(values(&mut c), ["t1", "t2", "u1"]);
    // `t` gets records the consumer has not read, then goes.
    append("t", &["t3"]);
    append("u", &["u2"]);
    store.delete_topic("t").unwrap();
    assert_eq!(values(&mut c), ["u2"]);
    assert!(values(&mut c).is_empty());
    append("u", &["u3"]);
    assert_eq!(values(&mut c), ["u3"]);
    // Created again: its records from offset 0.
    store.create_topic("t", TopicConfig::default()).unwrap();
    append("t", &["new"]);
    assert_eq!(values(&mut c), ["new"]);
    assert_eq!(c.position(&TopicPartition::new("t", 0)).unwrap(), 1);
}

/// A topic deleted and created again between polls, then `assign` (adding a
/// partition) or a seek: `assign` kept the old topic's position 5 for the new one, and
/// a seek went to the old (deleted) partition and was dropped when the next poll moved
/// to the new one. Records 0..5 of the new topic were skipped (or, after a seek to 0
/// with reset `Latest`, every record).
#[test]
fn assign_and_seek_after_a_topic_was_created_again_apply_to_the_new_one() {
    let tp = TopicPartition::new("t", 0);
    for how in ["assign", "seek", "seek_to_beginning", "position"] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for t in ["t", "u"] {
            store.create_topic(t, TopicConfig::default()).unwrap();
        }
        let append = |n: i64| {
            let part = store.topic("t").unwrap().partition(0).unwrap();
            for i in 0..n {
                part.append(&[streamlog::Record::new(1, Some("k"), Some(format!("v{i}")))])
                    .unwrap();
            }
        };
        append(5);
        let reset = if how == "assign" || how == "position" {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        };
        let mut c = store
            .consumer(ConsumerConfig::default().auto_offset_reset(reset))
            .unwrap();
        c.assign(std::slice::from_ref(&tp)).unwrap();
        c.seek(&tp, 0).unwrap();
        let first: Vec<i64> = c
            .poll(Duration::ZERO)
            .unwrap()
            .iter()
            .map(|r| r.offset())
            .collect();
        assert_eq!(first, [0, 1, 2, 3, 4]);
        store.delete_topic("t").unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        append(8);
        match how {
            "assign" => c
                .assign(&[tp.clone(), TopicPartition::new("u", 0)])
                .unwrap(),
            "seek" => c.seek(&tp, 0).unwrap(),
            "seek_to_beginning" => c.seek_to_beginning(&[]).unwrap(),
            _ => assert_eq!(c.position(&tp).unwrap(), 0, "the new topic's start"),
        }
        let mut got = Vec::new();
        loop {
            let records = c.poll(Duration::ZERO).unwrap();
            if records.is_empty() {
                break;
            }
            got.extend(
                records
                    .iter()
                    .filter(|r| r.topic() == "t")
                    .map(|r| r.offset()),
            );
        }
        assert_eq!(got, (0..8).collect::<Vec<_>>(), "{how}");
    }
}

/// Wakers that panic (the application's executor) when their sends complete: the panic
/// is contained (logged), every batch completed with them is appended and resolved, and
/// the producer goes on (memory freed, later sends and `flush` complete).
#[test]
fn a_panicking_waker_leaves_the_producer_consistent() {
    struct PanickingWaker;
    impl std::task::Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("the application's waker panicked");
        }
    }
    let (_dir, store) = temp_topic_t(3);
    let p = store
        .producer(ProducerConfig::default().linger_ms(60_000))
        .unwrap();
    // One batch per partition, all shipped by the flush below; the first two are polled
    // with a panicking waker.
    let mut futures: Vec<_> = (0..3)
        .map(|i| {
            p.send(ProducerRecord::new("t").partition(i).value("a"))
                .unwrap()
        })
        .collect();
    let waker = std::task::Waker::from(Arc::new(PanickingWaker));
    let mut cx = std::task::Context::from_waker(&waker);
    for f in &mut futures[..2] {
        assert!(std::pin::Pin::new(f).poll(&mut cx).is_pending());
    }
    // Nothing is left waiting: a watchdog instead of a hang if it were.
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = p.clone();
    std::thread::spawn(move || {
        let r = p2.flush().and_then(|()| {
            let f = p2.send(ProducerRecord::new("t").partition(0).value("b"))?;
            p2.flush()?;
            f.wait()
        });
        tx.send(r.map(|m| m.offset)).unwrap();
    });
    let offset = common::recv(&rx, "flush completed").unwrap();
    assert_eq!(offset, 1);
    for (i, f) in futures.into_iter().enumerate() {
        assert!(f.is_ready());
        let m = f.wait().unwrap();
        assert_eq!((m.partition, m.offset), (i as i32, 0));
    }
}

/// Bytes that no codec makes smaller (xorshift64).
fn incompressible(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The codec of each batch in partition 0 of `topic`, in order.
fn batch_codecs(store: &Store, topic: &str) -> Vec<Compression> {
    let part = store.topic(topic).unwrap().partition(0).unwrap();
    let mut codecs = Vec::new();
    let mut next = 0;
    while next < part.log_end_offset() {
        for b in part.read_batches(next, 1 << 20).unwrap() {
            codecs.push(b.header().compression().unwrap());
            next = b.header().last_offset() + 1;
        }
    }
    codecs
}

/// A batch that compression would make larger is written uncompressed. Without that, a
/// random value just under the topic's `max_message_bytes`, which `send` accepts
/// (checked uncompressed), grew past the limit under gzip or snappy and its future failed
/// with `RecordTooLarge`. Compressible batches still use the codec.
#[test]
fn incompressible_batches_are_written_uncompressed() {
    let fs = SimFs::new();
    let store = sim_store_maintained(&fs).unwrap();
    for codec in Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let topic = format!("t-{codec}");
        store
            .create_topic(&topic, TopicConfig::default().max_message_bytes(100_000))
            .unwrap();
        let p = store
            .producer(ProducerConfig::default().compression(codec).linger_ms(0))
            .unwrap();
        // The largest value `send` accepts under this limit (checked uncompressed).
        let random = incompressible(99_912, 42);
        let zeros = vec![0u8; 99_912];
        for value in [&random, &zeros] {
            let r = p
                .send(ProducerRecord::new(&topic).value(value))
                .unwrap()
                .wait();
            assert!(r.is_ok(), "{codec}: {r:?}");
        }
        assert_eq!(
            batch_codecs(&store, &topic),
            [Compression::None, codec],
            "{codec}: random then zeros"
        );
        let part = store.topic(&topic).unwrap().partition(0).unwrap();
        let got: Vec<_> = (0..2)
            .map(|o| part.read(o, 1 << 20).unwrap()[0].value.clone().unwrap())
            .collect();
        assert_eq!(got[0], random, "{codec}");
        assert_eq!(got[1], zeros, "{codec}");
    }
}

/// With a codec, a batch holds at most the store's `max_decompressed_bytes`
/// uncompressed, or no reader could decompress it: `send` refuses a larger record, and
/// records that together pass the limit go into several batches, all read back.
#[test]
fn compressing_producer_keeps_batches_within_the_decode_limit() {
    let fs = SimFs::new();
    let decode = streamlog::format::DecodeOptions {
        max_decompressed_bytes: 64 << 10,
    };
    let config = StoreConfig::default().decode_options(decode);
    let store = with_topic_t(sim_store_with(&fs, config).unwrap(), 1);
    let p = store
        .producer(
            ProducerConfig::default()
                .compression(Compression::Gzip)
                .batch_size(1 << 20)
                .linger_ms(60_000),
        )
        .unwrap();
    let r = p.send(ProducerRecord::new("t").value(vec![1u8; 100 << 10]));
    assert!(
        matches!(
            r,
            Err(Error::RecordTooLarge {
                limit_name: "max_decompressed_bytes",
                ..
            })
        ),
        "{r:?}"
    );
    let values: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 << 10]).collect();
    let futures: Vec<_> = values
        .iter()
        .map(|v| p.send(ProducerRecord::new("t").value(v)).unwrap())
        .collect();
    p.flush().unwrap();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.wait().unwrap().offset, i as i64);
    }
    let codecs = batch_codecs(&store, "t");
    assert!(codecs.len() >= 4, "200 KiB in 64 KiB batches: {codecs:?}");
    assert!(codecs.iter().all(|c| *c == Compression::Gzip), "{codecs:?}");
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for (i, v) in values.iter().enumerate() {
        let got = part.read(i as i64, 1).unwrap();
        assert_eq!(got[0].value.as_deref(), Some(&v[..]), "offset {i}");
    }
}

/// Group ids up to the 32767-byte limit (multi-byte characters included) keep their
/// commits across a reopen, under their own name.
#[test]
fn the_longest_group_ids_keep_their_commits_across_a_reopen() {
    let fs = SimFs::new();
    let a = "é".repeat(16_383); // 32766 bytes
    let b = format!("{a}x"); // 32767 bytes, sharing a's first 32766
    {
        let store = sim_store_maintained(&fs).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        for (group, offset) in [(&a, 3), (&b, 5)] {
            let mut c = store
                .consumer(ConsumerConfig::new(group.as_str()).enable_auto_commit(false))
                .unwrap();
            c.commit_sync_offsets(&BTreeMap::from([(tp("t", 0), offset)]))
                .unwrap();
        }
        store.close().unwrap();
    }
    let store = sim_store_maintained(&fs).unwrap();
    for (group, offset) in [(&a, 3), (&b, 5)] {
        let c = store.consumer(ConsumerConfig::new(group.as_str())).unwrap();
        assert_eq!(
            c.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)],
            Some(offset),
            "group of {} bytes",
            group.len()
        );
    }
    let mut groups = store.list_groups();
    groups.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(groups, want);
}

/// A committed offset below 0 in `__consumer_offsets` (no commit writes one; the file
/// was damaged or written by other software) is skipped at open, not loaded: describing
/// the group computed its lag as `end - i64::MIN` and panicked on the overflow.
#[test]
fn a_negative_committed_offset_on_disk_is_skipped() {
    let fs = SimFs::new();
    {
        let store = sim_store_maintained(&fs).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let mut c = store.consumer(earliest("g")).unwrap();
        c.commit_sync_offsets(&BTreeMap::from([(tp("t", 0), 0)]))
            .unwrap();
        drop(c);
        store.close().unwrap();
    }
    {
        // OffsetCommitKey v1 (group "g", topic "t", partition 0) and a value v3 with
        // offset i64::MIN, appended to the offsets topic's log directly.
        let mut key = vec![0, 1, 0, 1, b'g', 0, 1, b't'];
        key.extend(0i32.to_be_bytes());
        let mut value = vec![0, 3];
        value.extend(i64::MIN.to_be_bytes());
        value.extend([0xff; 4]);
        value.extend([0, 0]);
        value.extend(0i64.to_be_bytes());
        let log = streamlog::log::Log::open_with_fs(
            Arc::new(fs.clone()),
            "/store/__consumer_offsets-0",
            streamlog::log::LogConfig::default(),
        )
        .unwrap();
        let mut batch = streamlog::BatchBuilder::new();
        batch
            .push(0, Some(&key[..]), Some(&value[..]), &[])
            .unwrap();
        log.append_encoded(&mut batch.build().unwrap()).unwrap();
        log.close().unwrap();
    }
    let store = sim_store_maintained(&fs).unwrap();
    let d = store.describe_group("g").unwrap();
    assert_eq!(d.offsets.len(), 1);
    assert_eq!(d.offsets[0].offset, 0, "the valid commit before it stands");
    assert_eq!(d.offsets[0].lag, 0);
}

/// A consumer assigned a partition whose topic is deleted and created again over and
/// over keeps polling without errors: a partition whose log closes under a poll is
/// skipped until the next one finds the new topic (the store itself is open).
#[test]
fn polls_race_topic_deletion_and_recreation_without_errors() {
    let (_dir, store) = temp_topic_t(1);
    let mut c = store.consumer(earliest("g")).unwrap();
    c.assign(&[tp("t", 0)]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let churn = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                if let Ok(p) = store.topic("t").and_then(|t| t.partition(0)) {
                    let _ = p.append(&[streamlog::Record::new(0, Some("k"), Some(format!("{i}")))]);
                }
                store.delete_topic("t").unwrap();
                store.create_topic("t", TopicConfig::default()).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut polls = 0;
    let mut errors = Vec::new();
    while !done.load(Ordering::Acquire) {
        polls += 1;
        if let Err(e) = c.poll(Duration::from_millis(1)) {
            errors.push(e);
        }
    }
    churn.join().unwrap();
    assert!(
        errors.is_empty(),
        "{} of {polls} polls failed, first: {:?}",
        errors.len(),
        errors.first()
    );
    // The last topic's records are read.
    store
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[streamlog::Record::new(0, Some("k"), Some("last"))])
        .unwrap();
    let got = poll_n(&mut c, 1);
    assert_eq!(got.last().and_then(|r| r.value()), Some(&b"last"[..]));
}

/// A listener that tries to change the subscription, poll or close from inside the
/// rebalance that called it, and records what each attempt returned.
#[derive(Clone, Default)]
struct Meddler {
    results: Arc<Mutex<Vec<(String, String)>>>,
}

impl Meddler {
    fn meddle(&self, consumer: &mut Consumer, when: &str) {
        let attempts: Vec<(&str, streamlog::Result<()>)> = vec![
            ("assign", consumer.assign(&[tp("other", 0)])),
            ("subscribe", consumer.subscribe(["other"])),
            ("unsubscribe", consumer.unsubscribe()),
            ("poll", consumer.poll(Duration::ZERO).map(drop)),
            ("close", consumer.close()),
            // Allowed: commits and lookups.
            ("commit_sync", consumer.commit_sync()),
        ];
        for (name, r) in attempts {
            self.results
                .lock()
                .push((format!("{when}: {name}"), format!("{r:?}")));
        }
    }
}

impl RebalanceListener for Meddler {
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, _: &[TopicPartition]) {
        self.meddle(consumer, "revoked");
    }
    fn on_partitions_assigned(&mut self, consumer: &mut Consumer, _: &[TopicPartition]) {
        self.meddle(consumer, "assigned");
    }
}

/// Inside a rebalance listener, `assign`, `subscribe`, `unsubscribe`, `poll` and
/// `close` are refused: an `assign` there used to be undone silently by the revoke that
/// called it, leaving the consumer with no partitions (and out of its group).
#[test]
fn a_rebalance_listener_cannot_change_the_subscription_under_the_rebalance() {
    let (_fs, store) = sim_topic_t(2);
    store.create_topic("other", TopicConfig::default()).unwrap();
    let mut c = store.consumer(earliest("g")).unwrap();
    let meddler = Meddler::default();
    c.set_rebalance_listener(meddler.clone());
    c.subscribe(["t"]).unwrap();
    let deadline = Instant::now() + common::HANG;
    while c.assignment().len() < 2 && Instant::now() < deadline {
        c.poll(Duration::from_millis(20)).unwrap();
    }
    assert_eq!(c.assignment(), [tp("t", 0), tp("t", 1)]);
    assert_eq!(c.subscription(), ["t"]);
    c.unsubscribe().unwrap();
    let results = meddler.results.lock().clone();
    assert_eq!(results.len(), 12, "{results:?}");
    for (what, r) in &results {
        if what.ends_with("commit_sync") {
            assert_eq!(r, "Ok(())", "{what}");
        } else {
            assert!(r.starts_with("Err(InvalidArgument"), "{what}: {r}");
        }
    }
    // Still a working consumer afterwards.
    c.assign(&[tp("other", 0)]).unwrap();
    c.close().unwrap();
}

/// Panics in its first `on_partitions_assigned`.
struct PanicsOnce {
    panicked: Arc<AtomicBool>,
}

impl RebalanceListener for PanicsOnce {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, _: &[TopicPartition]) {}
    fn on_partitions_assigned(&mut self, _: &mut Consumer, _: &[TopicPartition]) {
        if !self.panicked.swap(true, Ordering::AcqRel) {
            panic!("listener bug");
        }
    }
}

/// A listener's panic reaches the caller of `poll`; a caller that catches it can go on
/// polling, and close the consumer (its listener is still called).
#[test]
fn a_consumer_outlives_a_panicking_listener() {
    let (_fs, store) = sim_topic_t(2);
    let mut c = store.consumer(earliest("g")).unwrap();
    let panicked = Arc::new(AtomicBool::new(false));
    c.set_rebalance_listener(PanicsOnce {
        panicked: panicked.clone(),
    });
    c.subscribe(["t"]).unwrap();
    let deadline = Instant::now() + common::HANG;
    while !panicked.load(Ordering::Acquire) && Instant::now() < deadline {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.poll(Duration::from_millis(20)).map(drop)
        }));
        if let Ok(r) = r {
            r.unwrap();
        }
    }
    assert!(panicked.load(Ordering::Acquire));
    for _ in 0..3 {
        let r = c.poll(Duration::from_millis(20));
        assert!(r.is_ok(), "poll after a listener panicked: {r:?}");
    }
    c.unsubscribe().unwrap();
    c.subscribe(["t"]).unwrap();
    c.close().unwrap();
}

/// Panics in every callback.
struct AlwaysPanics;

impl RebalanceListener for AlwaysPanics {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, _: &[TopicPartition]) {
        panic!("revoke");
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, _: &[TopicPartition]) {
        panic!("assign");
    }
}

/// Sends `n` records to topic `t`, alternating between its partitions 0 and 1.
fn send_to_both(producer: &streamlog::Producer, n: i32) {
    for i in 0..n {
        let record = ProducerRecord::new("t").partition(i % 2).value("v");
        producer.send(record).unwrap().wait().unwrap();
    }
}

/// Topic `t` of 2 partitions in a temporary store, 4 records in each, and the
/// producer that sent them.
fn topic_t_with_8_records() -> (tempfile::TempDir, Store, streamlog::Producer) {
    let (dir, store) = temp_topic_t(2);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    send_to_both(&producer, 8);
    (dir, store, producer)
}

/// Polls until `n` records came.
fn poll_count(c: &mut Consumer, n: usize) {
    let mut polled = 0;
    while polled < n {
        polled += c.poll(Duration::from_millis(20)).unwrap().len();
    }
}

/// Group `g`'s committed offsets of `t-0` and `t-1`, once it has no members.
fn committed_by_a_gone_member(store: &Store) -> Vec<i64> {
    let group = store.describe_group("g").unwrap();
    assert!(group.members.is_empty(), "{:?}", group.members);
    (0..2)
        .map(|p| {
            let o = group.offsets.iter().find(|o| o.partition == tp("t", p));
            o.map(|o| o.offset).unwrap()
        })
        .collect()
}

/// A consumer dropped while a listener's panic unwinds (the panic left `poll` and the
/// consumer's scope): its drop runs no listener, which would panic again and abort
/// the process, and it leaves the group.
#[test]
fn a_consumer_dropped_by_a_listeners_panic_leaves_its_group() {
    let (_dir, store, _producer) = topic_t_with_8_records();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut c = store.consumer(earliest("g")).unwrap();
        c.subscribe(["t"]).unwrap();
        poll_count(&mut c, 8);
        c.commit_sync().unwrap();
        c.set_rebalance_listener(AlwaysPanics);
        store.add_partitions("t", 3).unwrap();
        // The rebalance revokes: the listener panics, and `c` is dropped unwinding.
        let _ = c.poll(Duration::from_millis(20));
    }));
    assert!(unwound.is_err(), "the listener's panic reaches the caller");
    assert_eq!(committed_by_a_gone_member(&store), [4, 4]);
}

/// A consumer with auto-commit dropped while the application's panic unwinds (its
/// processing of the polled records failed): its drop commits nothing, so the group
/// reads those records again; it leaves the group.
#[test]
fn a_consumer_dropped_by_a_panic_does_not_auto_commit() {
    let (_dir, store, producer) = topic_t_with_8_records();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Auto-commit on, its interval never reached by a poll: only close commits.
        let config = ConsumerConfig::new("g")
            .auto_offset_reset(OffsetReset::Earliest)
            .auto_commit_interval_ms(u64::MAX);
        let mut c = store.consumer(config).unwrap();
        c.subscribe(["t"]).unwrap();
        poll_count(&mut c, 8);
        c.commit_sync().unwrap();
        send_to_both(&producer, 4);
        poll_count(&mut c, 4);
        panic!("processing the polled records failed");
    }));
    assert!(unwound.is_err());
    assert_eq!(committed_by_a_gone_member(&store), [4, 4], "auto-committed");
}

/// Record timestamps come from the wall clock read at most once a millisecond per
/// thread: each is at most 1 behind the wall clock's millisecond at its send, never
/// ahead, and they never go back from one send to the next on a thread (unless the
/// wall clock itself is set back, which this test does not do).
#[test]
fn record_timestamps_are_the_wall_clock_at_most_a_millisecond_behind() {
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (_dir, store) = temp_topic_t(1);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    let mut last = i64::MIN;
    for i in 0..2000 {
        let before = wall_ms();
        let meta = producer
            .send(ProducerRecord::new("t").value(format!("{i}")))
            .unwrap()
            .wait()
            .unwrap();
        let after = wall_ms();
        assert!(
            meta.timestamp >= before - 1 && meta.timestamp <= after,
            "record {i}: timestamp {} outside [{}, {after}]",
            meta.timestamp,
            before - 1
        );
        assert!(meta.timestamp >= last, "record {i} went back in time");
        last = meta.timestamp;
    }
}

/// From a review: once a poll's `fetch_max_bytes` was spent, every later partition
/// still read a whole batch (the budget was floored at one byte per partition), so a
/// poll over many partitions read up to one batch from each, past the limit the config
/// documents. Kafka's fetch stops adding partitions once it is full.
#[test]
fn fetch_max_bytes_bounds_a_poll_over_several_partitions() {
    let (_fs, store) = sim_topic_t(3);
    for p in 0..3 {
        let part = store.topic("t").unwrap().partition(p).unwrap();
        part.append(&[streamlog::Record::new(0, Some("k"), Some("v"))])
            .unwrap();
    }
    let mut c = store
        .consumer(ConsumerConfig::default().fetch_max_bytes(1))
        .unwrap();
    c.assign(&[tp("t", 0), tp("t", 1), tp("t", 2)]).unwrap();
    for p in 0..3 {
        c.seek(&tp("t", p), 0).unwrap();
    }
    let mut polls = Vec::new();
    for _ in 0..3 {
        polls.push(c.poll(Duration::ZERO).unwrap().len());
    }
    assert_eq!(polls, [1, 1, 1], "one batch a poll");
}

/// From a review: with reset `None`, a partition without a committed offset failed its
/// poll after other partitions had returned records (the error deferred), but unlike
/// the other deferred errors the next poll did not start with it: as long as the other
/// partitions had new records, the error waited for the rotation to reach it.
#[test]
fn a_deferred_no_offset_error_is_reported_at_the_next_poll() {
    let (_fs, store) = sim_topic_t(3);
    let append = |p: i32| {
        let part = store.topic("t").unwrap().partition(p).unwrap();
        part.append(&[streamlog::Record::new(0, Some("k"), Some("v"))])
            .unwrap();
    };
    // Offsets committed for partitions 0 and 1 only.
    let mut setup = store.consumer(earliest("g")).unwrap();
    setup.assign(&[tp("t", 0), tp("t", 1)]).unwrap();
    let offsets = [(tp("t", 0), 0), (tp("t", 1), 0)].into_iter().collect();
    setup.commit_sync_offsets(&offsets).unwrap();
    drop(setup);
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::None))
        .unwrap();
    c.assign(&[tp("t", 0), tp("t", 1), tp("t", 2)]).unwrap();
    append(0);
    append(1);
    // Partitions 0 and 1 return records; 2's error is deferred.
    assert_eq!(c.poll(Duration::ZERO).unwrap().len(), 2);
    append(0);
    append(1);
    let next = c.poll(Duration::ZERO);
    assert!(
        matches!(next, Err(Error::OffsetOutOfRange { .. })),
        "{:?}",
        next.map(|r| r.len())
    );
}

/// From the producer review: with `buffer_memory` and `batch_size` both `usize::MAX`
/// (a config `validate` takes), a lingering batch reserved all of it and the next
/// partition's send added to that: an overflow (a panic in a debug build, wrapped
/// memory accounting in release).
#[test]
fn unbounded_buffer_memory_and_batch_size_do_not_overflow() {
    let (_fs, store) = sim_topic_t(2);
    let p = store
        .producer(
            ProducerConfig::default()
                .buffer_memory(usize::MAX)
                .batch_size(usize::MAX)
                .linger_ms(60_000),
        )
        .unwrap();
    let sends: Vec<_> = (0..2)
        .map(|partition| {
            p.send(ProducerRecord::new("t").partition(partition).value("v"))
                .unwrap()
        })
        .collect();
    p.flush().unwrap();
    for (partition, f) in sends.into_iter().enumerate() {
        assert_eq!(f.wait().unwrap().partition, partition as i32);
    }
}

/// From the producer review: the first `send_batch` to a topic counted loading the
/// topic as a refresh (the topic changed) and checked every record again, asking the
/// default partitioner twice for each: it counted each keyless record's bytes twice and
/// left its sticky partition after half a batch.
#[test]
fn send_batch_counts_each_keyless_record_once_for_stickiness() {
    let (_fs, store) = sim_topic_t(8);
    let p = store.producer(ProducerConfig::default()).unwrap();
    // About 12 KB: less than one 16 KiB batch, more than half of one.
    let records: Vec<_> = (0..100)
        .map(|i| ProducerRecord::new("t").value(format!("{i:0100}")))
        .collect();
    let sent = p.send_batch(&records).unwrap().wait().unwrap();
    let partitions: BTreeSet<i32> = sent.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), 1, "{partitions:?}");
}
