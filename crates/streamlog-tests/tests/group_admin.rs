//! Group administration (issue 18, item 6), as `kafka-consumer-groups` does it:
//! `Store::alter_group_offsets` (earliest, latest, a timestamp, an offset, shift by N;
//! a dry run with `plan_group_offsets`) and `Store::delete_group`, both refused with
//! `GroupNotEmpty` while the group has live members, both durable.
mod common;

use std::time::Duration;

use streamlog::{
    ConsumerConfig, Error, OffsetReset, OffsetSpec, Record, Store, StoreConfig, TopicConfig,
    TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

/// A store with topic `t` of 2 partitions holding offsets 0..10 each (record `i` at
/// time `T0 + i`).
fn store_with_records(dir: &std::path::Path) -> Store {
    let store =
        Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let topic = store.topic("t").unwrap();
    for p in 0..2 {
        let part = topic.partition(p).unwrap();
        for i in 0..10 {
            part.append(&[Record::new(T0 + i, Some("k"), Some(format!("v{i}")))])
                .unwrap();
        }
    }
    store
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// Where a fresh consumer of `group` assigned `t-0` starts reading (with
/// `auto_offset_reset` latest and no committed offset: the log end). It commits nothing.
fn resumes_at(store: &Store, group: &str) -> i64 {
    let mut c = store
        .consumer(
            ConsumerConfig::new(group)
                .auto_offset_reset(OffsetReset::Latest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(&[tp(0)]).unwrap();
    let records = c.poll(Duration::from_millis(10)).unwrap();
    records.iter().next().map_or(10, |r| r.offset())
}

fn committed(store: &Store, group: &str, p: i32) -> Option<i64> {
    store
        .describe_group(group)
        .ok()?
        .offsets
        .iter()
        .find(|o| o.partition == tp(p))
        .map(|o| o.offset)
}

#[test]
fn offsets_reset_to_each_target_and_a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    let both = [tp(0), tp(1)];
    let new = |to| -> Vec<i64> {
        store
            .alter_group_offsets("g", &both, to)
            .unwrap()
            .into_iter()
            .map(|c| c.new)
            .collect()
    };
    assert_eq!(new(OffsetSpec::Offset(4)), [4, 4]);
    assert_eq!(committed(&store, "g", 1), Some(4));
    assert_eq!(resumes_at(&store, "g"), 4);
    assert_eq!(new(OffsetSpec::ShiftBy(3)), [7, 7]);
    assert_eq!(
        new(OffsetSpec::ShiftBy(-100)),
        [0, 0],
        "clamped at the log start"
    );
    assert_eq!(new(OffsetSpec::Latest), [10, 10]);
    assert_eq!(new(OffsetSpec::Earliest), [0, 0]);
    assert_eq!(new(OffsetSpec::Timestamp(T0 + 6)), [6, 6]);
    assert_eq!(
        new(OffsetSpec::Timestamp(T0 + 99)),
        [10, 10],
        "none that late: the end"
    );
    assert_eq!(
        new(OffsetSpec::Offset(1_000)),
        [10, 10],
        "clamped at the log end"
    );
    // A negative time is not one (Kafka's -1 means latest): it reset the group to the
    // log start. Refused, as by the partition's own lookup and the read-only planner.
    let refused = store.alter_group_offsets("g", &both, OffsetSpec::Timestamp(-1));
    assert!(
        matches!(refused, Err(Error::InvalidArgument { .. })),
        "{refused:?}"
    );
    assert_eq!(committed(&store, "g", 1), Some(10));
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert!(matches!(
        part.offset_for_timestamp(-1),
        Err(Error::InvalidArgument { .. })
    ));
    let read_only = Store::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        read_only.plan_group_offsets("g", &both, OffsetSpec::Timestamp(-1)),
        Err(Error::InvalidArgument { .. })
    ));

    // The dry run reports the change and commits nothing.
    let plan = store
        .plan_group_offsets("g", &[tp(0)], OffsetSpec::Offset(2))
        .unwrap();
    assert_eq!((plan[0].current, plan[0].new), (Some(10), 2));
    assert_eq!(committed(&store, "g", 0), Some(10));
    // A partition named twice is planned once.
    let plan = store
        .plan_group_offsets("g", &[tp(0), tp(1), tp(0)], OffsetSpec::Offset(2))
        .unwrap();
    let planned: Vec<TopicPartition> = plan.into_iter().map(|c| c.partition).collect();
    assert_eq!(planned, [tp(0), tp(1)]);

    // Shifting a partition the group never committed is refused, naming it.
    let err = store
        .plan_group_offsets("other", &[tp(0)], OffsetSpec::ShiftBy(1))
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("t-0")),
        "{err}"
    );
    // An unknown partition is not found.
    assert!(matches!(
        store.plan_group_offsets("g", &[tp(5)], OffsetSpec::Earliest),
        Err(Error::NotFound { .. })
    ));

    // Durable: the last reset survives a reopen.
    store
        .alter_group_offsets("g", &[tp(0)], OffsetSpec::Offset(3))
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(committed(&store, "g", 0), Some(3));
    assert_eq!(resumes_at(&store, "g"), 3);
}

#[test]
fn a_group_with_live_members_is_neither_reset_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    store
        .alter_group_offsets("g", &[tp(0)], OffsetSpec::Offset(5))
        .unwrap();
    let mut member = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    member.subscribe(["t"]).unwrap();
    member.poll(Duration::from_millis(10)).unwrap();
    let refused = store.alter_group_offsets("g", &[tp(0)], OffsetSpec::Earliest);
    assert!(
        matches!(&refused, Err(Error::GroupNotEmpty { group, members: 1 }) if group == "g"),
        "{refused:?}"
    );
    assert!(matches!(
        store.delete_group("g"),
        Err(Error::GroupNotEmpty { .. })
    ));
    // The group is found empty before the offsets are planned, as Kafka's tool does
    // (from a review: planned first, outside the lock that keeps members out, a
    // shift could start from an offset a member committed after the plan). A plan
    // that would fail (no offset of partition 1 to shift) is not even made.
    let refused = store.alter_group_offsets("g", &[tp(1)], OffsetSpec::ShiftBy(-1));
    assert!(
        matches!(&refused, Err(Error::GroupNotEmpty { .. })),
        "{refused:?}"
    );
    assert_eq!(committed(&store, "g", 0), Some(5), "nothing changed");
    // Once the member has left, both are allowed.
    member.close().unwrap();
    store
        .alter_group_offsets("g", &[tp(0)], OffsetSpec::Earliest)
        .unwrap();
    assert_eq!(committed(&store, "g", 0), Some(0));
    store.delete_group("g").unwrap();
}

#[test]
fn a_deleted_group_forgets_its_offsets_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    store
        .alter_group_offsets("g", &[tp(0), tp(1)], OffsetSpec::Offset(6))
        .unwrap();
    assert!(store.list_groups().contains(&"g".to_string()));
    store.delete_group("g").unwrap();
    assert!(matches!(
        store.describe_group("g"),
        Err(Error::NotFound { .. })
    ));
    assert!(!store.list_groups().contains(&"g".to_string()));
    // A consumer of the group now starts from auto_offset_reset (latest: the end).
    assert_eq!(resumes_at(&store, "g"), 10);
    assert!(matches!(
        store.delete_group("g"),
        Err(Error::NotFound { .. })
    ));
    // Durable: still gone after a reopen.
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.describe_group("g"),
        Err(Error::NotFound { .. })
    ));
    store.close().unwrap();
}

/// A consumer of group `g` (from the earliest offset) whose `max_poll_interval_ms` is 5.
fn member_of_g_polling_within_5ms(store: &Store) -> streamlog::Consumer {
    store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .max_poll_interval_ms(5),
        )
        .unwrap()
}

/// A group id that could not be stored whole is refused (cut short, it would change
/// another group's offsets), and a member that stopped polling longer than its
/// `max_poll_interval_ms` ago does not hold the group.
#[test]
fn bad_group_ids_are_refused_and_stale_members_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    let long = "g".repeat(40_000);
    for group in ["", long.as_str()] {
        assert!(matches!(
            store.alter_group_offsets(group, &[tp(0)], OffsetSpec::Earliest),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            store.delete_group(group),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let mut stale = member_of_g_polling_within_5ms(&store);
    stale.subscribe(["t"]).unwrap();
    stale.poll(Duration::ZERO).unwrap();
    // Longer than its max_poll_interval_ms (a lower bound: more only makes it staler).
    std::thread::sleep(Duration::from_millis(20));
    store
        .alter_group_offsets("g", &[tp(0)], OffsetSpec::Offset(3))
        .unwrap();
    assert_eq!(committed(&store, "g", 0), Some(3));
    // The stale member is out of the group for its own next poll and commits too: it
    // rejoins and reads t-0 from the reset offset. Before, its poll took it back as if
    // nothing happened, and its commit put its old position over the reset.
    let mut from = std::collections::BTreeMap::new();
    for _ in 0..5 {
        for r in stale.poll(Duration::ZERO).unwrap().iter() {
            from.entry(r.partition()).or_insert(r.offset());
        }
    }
    assert_eq!(from.get(&0), Some(&3), "{from:?}");
}

/// A member removed from its group for not polling within `max_poll_interval_ms` (here
/// by another member's poll, which took its partitions) that closes has lost them: its
/// listener hears `on_partitions_lost` (not "revoked, you still own them"), and close
/// commits nothing and succeeds. Before, close ran `on_partitions_revoked` and failed
/// with the refused auto-commit.
#[test]
fn closing_a_stale_member_loses_its_partitions_and_commits_nothing() {
    use std::sync::{Arc, Mutex};
    struct Heard(Arc<Mutex<Vec<&'static str>>>);
    impl streamlog::RebalanceListener for Heard {
        fn on_partitions_revoked(&mut self, _: &mut streamlog::Consumer, _: &[TopicPartition]) {
            self.0.lock().unwrap().push("revoked");
        }
        fn on_partitions_assigned(&mut self, _: &mut streamlog::Consumer, _: &[TopicPartition]) {
            self.0.lock().unwrap().push("assigned");
        }
        fn on_partitions_lost(&mut self, _: &mut streamlog::Consumer, _: &[TopicPartition]) {
            self.0.lock().unwrap().push("lost");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    let heard = Arc::new(Mutex::new(Vec::new()));
    let mut stale = member_of_g_polling_within_5ms(&store);
    stale.set_rebalance_listener(Heard(heard.clone()));
    stale.subscribe(["t"]).unwrap();
    assert!(!stale.poll(Duration::ZERO).unwrap().is_empty());
    // Longer than its max_poll_interval_ms (a lower bound: more only makes it staler).
    std::thread::sleep(Duration::from_millis(20));
    let mut other = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    other.subscribe(["t"]).unwrap();
    other.poll(Duration::ZERO).unwrap();
    assert_eq!(
        other.assignment().len(),
        2,
        "it took the stale member's partitions"
    );
    stale.close().unwrap();
    assert_eq!(*heard.lock().unwrap(), ["assigned", "lost"]);
    assert_eq!(committed(&store, "g", 0), None, "nothing committed");
}

/// A consumer that assigns its own partitions is no member of its group: while the
/// group has live members, its commits are refused (Kafka answers `UNKNOWN_MEMBER_ID`),
/// explicit or automatic, and the members' offsets stay; once they have left, it
/// commits as before.
#[test]
fn a_consumer_outside_a_live_group_cannot_move_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    let mut member = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    member.subscribe(["t"]).unwrap();
    let mut polled = 0;
    while polled < 20 {
        polled += member.poll(Duration::from_millis(10)).unwrap().len();
    }
    member.commit_sync().unwrap();
    let outsider = |auto_commit: bool| {
        let mut c = store
            .consumer(
                ConsumerConfig::new("g")
                    .auto_offset_reset(OffsetReset::Earliest)
                    .enable_auto_commit(auto_commit),
            )
            .unwrap();
        c.assign(&[tp(0)]).unwrap();
        c.seek(&tp(0), 2).unwrap();
        c
    };
    let mut c = outsider(false);
    let refused = c.commit_sync();
    assert!(
        matches!(&refused, Err(Error::CommitFailed { group, .. }) if group == "g"),
        "{refused:?}"
    );
    let explicit = c.commit_sync_offsets(&[(tp(0), 3)].into());
    assert!(
        matches!(explicit, Err(Error::CommitFailed { .. })),
        "{explicit:?}"
    );
    // Auto-commit from poll: refused and logged, the poll goes on; on close: refused.
    let mut reader = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .auto_commit_interval_ms(0),
        )
        .unwrap();
    reader.assign(&[tp(0)]).unwrap();
    reader.seek(&tp(0), 0).unwrap();
    let mut read = 0;
    for _ in 0..3 {
        read += reader.poll(Duration::from_millis(10)).unwrap().len();
    }
    assert_eq!(read, 10);
    assert!(matches!(reader.close(), Err(Error::CommitFailed { .. })));
    let closed = outsider(true).close();
    assert!(
        matches!(closed, Err(Error::CommitFailed { .. })),
        "{closed:?}"
    );
    drop(outsider(true));
    assert_eq!(
        committed(&store, "g", 0),
        Some(10),
        "the members' offset stays"
    );
    // The group empty, a standalone consumer commits for it.
    member.close().unwrap();
    c.commit_sync().unwrap();
    assert_eq!(committed(&store, "g", 0), Some(2));
}

/// Subscribing to no topics is unsubscribing, as in Kafka: the consumer leaves its
/// group, which an administrator can then reset or delete. It used to stay a member
/// with an empty subscription, keeping the group "not empty" for as long as it lived.
#[test]
fn subscribing_to_no_topics_leaves_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_records(dir.path());
    let mut c = store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    c.subscribe(["t"]).unwrap();
    c.poll(Duration::from_millis(10)).unwrap();
    assert_eq!(store.describe_group("g").unwrap().members.len(), 1);
    c.subscribe(Vec::<String>::new()).unwrap();
    assert!(c.subscription().is_empty());
    assert_eq!(c.member_id(), None);
    // Nothing to read now: a poll is refused, as Kafka's throws, and joins nothing.
    let polled = c.poll(Duration::from_millis(10));
    assert!(
        matches!(polled, Err(streamlog::Error::InvalidArgument { .. })),
        "{polled:?}"
    );
    assert!(store.describe_group("g").unwrap().members.is_empty());
    store
        .alter_group_offsets("g", &[tp(0)], OffsetSpec::Earliest)
        .unwrap();
    store.delete_group("g").unwrap();
}

/// From the groups review: forgetting offsets (a deleted group, a deleted topic, and at
/// open the commits of topics deleted before) wrote every tombstone in one batch, so
/// past the offsets topic's `max_message_bytes` (1 MiB) the deletion failed with
/// `RecordTooLarge`, and at open the same batch failed `Store::open` for good. The
/// tombstones are split as commits are.
#[test]
fn forgetting_more_offsets_than_one_batch_holds_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Store::open_with(
            dir.path(),
            StoreConfig::default().background_maintenance(false),
        )
        .unwrap()
    };
    let store = open();
    // 1,000 commits of a 1,000-byte group id each: over a megabyte of tombstones.
    let topic = "t".repeat(249);
    store
        .create_topic(&topic, TopicConfig::default().partitions(1000))
        .unwrap();
    let partitions: Vec<_> = (0..1000).map(|p| TopicPartition::new(&topic, p)).collect();
    let groups = ["a", "b"].map(|g| g.repeat(1000));
    for g in &groups {
        store
            .alter_group_offsets(g, &partitions, OffsetSpec::Offset(0))
            .unwrap();
        assert_eq!(store.describe_group(g).unwrap().offsets.len(), 1000);
    }
    store.delete_group(&groups[0]).unwrap();
    store.delete_topic(&topic).unwrap();
    for g in &groups {
        assert!(matches!(
            store.describe_group(g),
            Err(Error::NotFound { .. })
        ));
    }
    store.close().unwrap();
    let store = open();
    for g in &groups {
        assert!(matches!(
            store.describe_group(g),
            Err(Error::NotFound { .. })
        ));
    }
}

/// From a review: a commit split in batches (more than one holds) whose second batch
/// failed to be written returned the error with its first batch in the offsets topic,
/// neither applied nor synced: the next fsync (another commit's, the close) made it
/// durable, and a reopen applied offsets the live store never had (a deleted group came
/// back with them). What was written is made durable and applied, as a reopen would.
#[test]
fn a_commit_that_fails_part_way_leaves_memory_as_a_reopen_finds_it() {
    use common::intercept::{Hooks, InterceptFs, Op};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use streamlog::fs::{Fault, FileSystem, SimFs};

    let sim = SimFs::new();
    // Once armed (0 means not), counts the writes of the offsets topic's log; the
    // second fails.
    let writes = Arc::new(AtomicUsize::new(0));
    let hooks = {
        let (sim, writes) = (sim.clone(), writes.clone());
        Hooks {
            before_op: Box::new(move |op, path| {
                let log = path.to_string_lossy().contains("__consumer_offsets")
                    && path.extension().is_some_and(|e| e == "log");
                if op == Op::Write
                    && log
                    && writes.load(Ordering::SeqCst) > 0
                    && writes.fetch_add(1, Ordering::SeqCst) == 2
                {
                    sim.inject(Fault::Eio, sim.op_count() + 1, false);
                }
            }),
            ..Hooks::default()
        }
    };
    let fs: Arc<dyn FileSystem> = Arc::new(InterceptFs::new(sim, hooks));
    let open = || HeldCommit::open(&fs);
    let store = open();
    // 40 commits of a 30,000-byte group id: two batches of the offsets topic (1 MiB).
    let topic = "t".repeat(249);
    store
        .create_topic(&topic, TopicConfig::default().partitions(40))
        .unwrap();
    let partitions: Vec<_> = (0..40).map(|p| TopicPartition::new(&topic, p)).collect();
    let group = "g".repeat(30_000);
    writes.store(1, Ordering::SeqCst);
    let failed = store.alter_group_offsets(&group, &partitions, OffsetSpec::Offset(0));
    assert!(matches!(failed, Err(Error::Io { .. })), "the commit failed");
    assert!(
        writes.load(Ordering::SeqCst) > 2,
        "the second batch was written"
    );
    // (A group's errors name it: not printed, it is 30,000 bytes long.)
    let part_way = store.describe_group(&group).map_or(0, |g| g.offsets.len());
    assert!(
        part_way > 0 && part_way < 40,
        "the first batch's offsets apply: {part_way} of 40"
    );
    store.close().unwrap();
    let store = open();
    let reopened = store.describe_group(&group).map_or(0, |g| g.offsets.len());
    assert_eq!(reopened, part_way, "as the live store had them");
}

/// A store on a simulated disk whose next fsync of `__consumer_offsets` (once `hold`
/// is set) waits: `held` says it is waiting, `release` lets it go on (failing, if
/// `fail` is set); once `watch` is set, `wrote` says the offsets topic is about to be
/// written.
struct HeldCommit {
    store: Store,
    fs: std::sync::Arc<dyn streamlog::fs::FileSystem>,
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    held: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
    watch: std::sync::Arc<std::sync::atomic::AtomicBool>,
    wrote: std::sync::mpsc::Receiver<()>,
}

impl HeldCommit {
    fn new() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::mpsc::channel;
        use std::sync::{Arc, Mutex};

        use common::intercept::{Hooks, InterceptFs, Op};
        use streamlog::fs::SimFs;

        let hold = Arc::new(AtomicBool::new(false));
        let fail = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(AtomicBool::new(false));
        let sim = SimFs::new();
        let (held_tx, held) = channel();
        let (release, release_rx) = channel::<()>();
        let (wrote_tx, wrote) = channel();
        let hooks = {
            let (hold, fail, watch) = (hold.clone(), fail.clone(), watch.clone());
            let sim = sim.clone();
            let (held_tx, wrote_tx) = (Mutex::new(held_tx), Mutex::new(wrote_tx));
            let release_rx = Mutex::new(release_rx);
            Hooks {
                before_sync: Box::new(move |path| {
                    let offsets = path.to_string_lossy().contains("__consumer_offsets");
                    if offsets && hold.swap(false, Ordering::SeqCst) {
                        held_tx.lock().unwrap().send(()).unwrap();
                        release_rx.lock().unwrap().recv().unwrap();
                        if fail.load(Ordering::SeqCst) {
                            sim.inject(streamlog::fs::Fault::Eio, sim.op_count() + 1, false);
                        }
                    }
                }),
                before_op: Box::new(move |op, path| {
                    let offsets = path.to_string_lossy().contains("__consumer_offsets");
                    if op == Op::Write && offsets && watch.swap(false, Ordering::SeqCst) {
                        wrote_tx.lock().unwrap().send(()).unwrap();
                    }
                }),
                ..Hooks::default()
            }
        };
        let fs: Arc<dyn streamlog::fs::FileSystem> = Arc::new(InterceptFs::new(sim, hooks));
        let store = Self::open(&fs);
        store
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        HeldCommit {
            store,
            fs,
            hold,
            fail,
            held,
            release,
            watch,
            wrote,
        }
    }

    fn open(fs: &std::sync::Arc<dyn streamlog::fs::FileSystem>) -> Store {
        Store::open_with(
            "/store",
            StoreConfig::default()
                .background_maintenance(false)
                .file_system(fs.clone()),
        )
        .unwrap()
    }

    /// Commits `offset` of `t-p` for group `g` from a consumer that assigns it, on
    /// another thread, and returns once the commit waits in its fsync.
    fn commit_held(&self, p: i32, offset: i64) -> std::thread::JoinHandle<streamlog::Result<()>> {
        self.hold.store(true, std::sync::atomic::Ordering::SeqCst);
        let store = self.store.clone();
        let committing = std::thread::spawn(move || commit_for_g(&store, p, offset));
        self.held.recv().unwrap();
        committing
    }
}

/// Commits `offset` of `t-p` for group `g` from a consumer that assigns it.
fn commit_for_g(store: &Store, p: i32, offset: i64) -> streamlog::Result<()> {
    let mut c = store
        .consumer(ConsumerConfig::new("g").enable_auto_commit(false))
        .unwrap();
    c.assign(&[tp(p)]).unwrap();
    c.commit_sync_offsets(&[(tp(p), offset)].into())
}

/// From a review: `delete_group` tombstoned the partitions whose commits had applied;
/// a commit appended and still in its fsync got no tombstone and applied after the
/// deletion returned: the deleted group resumed there, also after a reopen. The
/// partitions of commits in flight are tombstoned too now.
#[test]
fn a_commit_in_its_fsync_does_not_survive_the_groups_deletion() {
    let h = HeldCommit::new();
    commit_for_g(&h.store, 0, 0).unwrap();
    let in_flight = h.commit_held(1, 0);
    h.watch.store(true, std::sync::atomic::Ordering::SeqCst);
    let deletion = {
        let store = h.store.clone();
        std::thread::spawn(move || store.delete_group("g"))
    };
    h.wrote.recv().unwrap(); // the deletion writes its tombstones
    h.release.send(()).unwrap();
    in_flight.join().unwrap().unwrap();
    deletion.join().unwrap().unwrap();
    assert_eq!(committed(&h.store, "g", 1), None, "live");
    h.store.close().unwrap();
    let store = HeldCommit::open(&h.fs);
    assert_eq!(committed(&store, "g", 1), None, "after a reopen");
}

/// From a review: deleting a topic tombstoned the group offsets of it that had
/// applied; a group's first commit of it, still in its fsync, got none and applied
/// after: the group outlived the topic in `list_groups` and `describe_group` (and a
/// read-only store, which does not check topic ids, read that offset as the new
/// topic's). Commits in flight, and those open transactions sent, are tombstoned too.
#[test]
fn a_commit_in_its_fsync_does_not_survive_its_topics_deletion() {
    let h = HeldCommit::new();
    let in_flight = h.commit_held(1, 4);
    h.watch.store(true, std::sync::atomic::Ordering::SeqCst);
    let deletion = {
        let store = h.store.clone();
        std::thread::spawn(move || store.delete_topic("t"))
    };
    common::recv(&h.wrote, "the deletion writes a tombstone");
    h.release.send(()).unwrap();
    in_flight.join().unwrap().unwrap();
    deletion.join().unwrap().unwrap();
    h.store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let gone = |store: &Store| {
        !store.list_groups().contains(&"g".to_string())
            && matches!(store.describe_group("g"), Err(Error::NotFound { .. }))
    };
    assert!(gone(&h.store), "live");
    h.store.close().unwrap();
    let store = HeldCommit::open(&h.fs);
    assert!(gone(&store), "after a reopen");
}

/// From a review: a member of the group started a partition from its committed
/// offset while another consumer's commit of it was in its fsync (a previous owner's,
/// say): it read again what that one had, and its own later commits moved the group's
/// offset back. The poll now waits for the commit to apply, as for a transaction's.
#[test]
fn a_new_owner_starts_after_a_commit_still_in_its_fsync() {
    let h = HeldCommit::new();
    let part = h.store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        part.append(&[Record::new(T0 + i, Some("k"), Some(format!("v{i}")))])
            .unwrap();
    }
    let in_flight = h.commit_held(0, 7);
    let mut member = h
        .store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    member.subscribe(["t"]).unwrap();
    let early = member.poll(Duration::ZERO).unwrap();
    // Nor is the position resolved meanwhile (review): it would pin the old offset.
    assert!(
        matches!(member.position(&tp(0)), Err(Error::Timeout { .. })),
        "position during the commit's fsync"
    );
    h.release.send(()).unwrap();
    in_flight.join().unwrap().unwrap();
    let mut first = early.iter().next().map(|r| r.offset());
    for _ in 0..60 {
        if first.is_some() {
            break;
        }
        first = member
            .poll(Duration::from_secs(1))
            .unwrap()
            .iter()
            .next()
            .map(|r| r.offset());
    }
    assert_eq!(first, Some(7), "the first record the member read");
}

/// From a review: a poll waiting for a commit in its fsync was woken when the commit
/// applied, by the committing consumer; a commit whose fsync failed woke nobody, and
/// an async `recv` waiting for it slept on (a quiet store has nothing else to wake
/// it). The commit's end wakes waiters whatever its outcome.
#[test]
fn a_failed_commit_wakes_a_recv_waiting_for_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct Counting(AtomicUsize);
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    let h = HeldCommit::new();
    let part = h.store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(T0, Some("k"), Some("v"))])
        .unwrap();
    h.fail.store(true, Ordering::SeqCst);
    let in_flight = h.commit_held(0, 1);
    let mut member = h
        .store
        .consumer(ConsumerConfig::new("g").auto_offset_reset(OffsetReset::Earliest))
        .unwrap();
    member.subscribe(["t"]).unwrap();
    assert!(
        member.poll(Duration::ZERO).unwrap().is_empty(),
        "waits for the commit"
    );
    let woken = Arc::new(Counting(AtomicUsize::new(0)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    {
        let mut recv = std::pin::pin!(member.recv());
        assert!(matches!(recv.as_mut().poll(&mut cx), Poll::Pending));
        h.release.send(()).unwrap();
        assert!(in_flight.join().unwrap().is_err(), "its fsync failed");
        assert!(
            woken.0.load(Ordering::SeqCst) > 0,
            "the waiting recv was woken"
        );
    }
}

/// From a DDL hunt: `alter_group_offsets` planned each partition on the topic it found,
/// then looked each one up again to commit, with that (second) topic's id. A topic
/// deleted and created again while a later partition was being planned (DDL does not
/// wait for the admin lock) got the offset planned on the old one's records: the group
/// started the new topic at 5 and skipped its records below. Each offset is committed
/// for the topic it was planned on now, and one since recreated is refused.
#[test]
fn an_offset_planned_on_a_deleted_topic_is_not_committed_for_its_successor() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};

    use common::intercept::{Hooks, InterceptFs};
    use streamlog::fs::SimFs;

    let armed = Arc::new(AtomicBool::new(false));
    let (stalled, resume) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let hooks = {
        let (armed, stalled, resume) = (armed.clone(), stalled.clone(), resume.clone());
        Hooks {
            before_read: Box::new(move |path, _| {
                let of_u = path.to_string_lossy().contains("/u-0/");
                if of_u && armed.swap(false, Ordering::AcqRel) {
                    stalled.wait();
                    resume.wait();
                }
            }),
            ..Hooks::default()
        }
    };
    let fs = InterceptFs::new(SimFs::new(), hooks);
    let config = StoreConfig::default()
        .background_maintenance(false)
        .file_system(std::sync::Arc::new(fs));
    let store = Store::open_with("/store", config).unwrap();
    let fill = |topic: &str| {
        store.create_topic(topic, TopicConfig::default()).unwrap();
        let part = store.topic(topic).unwrap().partition(0).unwrap();
        for i in 0..10 {
            part.append(&[Record::new(T0 + i, Some("k"), Some(format!("v{i}")))])
                .unwrap();
        }
    };
    fill("t");
    fill("u");
    armed.store(true, Ordering::Release);
    let reset = {
        let store = store.clone();
        std::thread::spawn(move || {
            let both = [TopicPartition::new("t", 0), TopicPartition::new("u", 0)];
            store.alter_group_offsets("g", &both, OffsetSpec::Timestamp(T0 + 5))
        })
    };
    stalled.wait();
    store.delete_topic("t").unwrap();
    fill("t");
    resume.wait();
    let result = reset.join().unwrap();
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    let offsets = store
        .describe_group("g")
        .map(|d| d.offsets)
        .unwrap_or_default();
    assert!(
        offsets.iter().all(|o| o.partition.topic() != "t"),
        "{offsets:?}"
    );
}
