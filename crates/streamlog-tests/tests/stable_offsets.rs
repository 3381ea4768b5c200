//! KIP-447's stable offsets: a read_committed consumer does not start a partition from
//! its group's committed offset while a transaction not yet decided wrote offsets of it
//! for the group; it waits until that transaction commits or aborts.

use std::collections::BTreeMap;
use std::time::Duration;

use streamlog::{
    ConsumerConfig, ConsumerGroupMetadata, Error, IsolationLevel, OffsetReset, ProducerConfig,
    Record, Store, StoreConfig, TopicConfig, TopicPartition,
};

fn store_with_input(dir: &std::path::Path) -> Store {
    let store =
        Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap();
    store.create_topic("in", TopicConfig::default()).unwrap();
    let part = store.topic("in").unwrap().partition(0).unwrap();
    for i in 0..10 {
        part.append(&[Record::new(1, None::<&[u8]>, Some(format!("v{i}")))])
            .unwrap();
    }
    store
}

/// An exactly-once worker ("worker") whose open transaction sent offset `offset` of
/// `in-0` for group `g`.
fn worker_with_open_offsets(store: &Store, offset: i64) -> streamlog::Producer {
    let p = store
        .producer(ProducerConfig::default().transactional_id("worker"))
        .unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    let offsets = BTreeMap::from([(TopicPartition::new("in", 0), offset)]);
    p.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
        .unwrap();
    p
}

/// What a consumer of group `g` (isolation `isolation`) sees of `in-0`: the offsets of
/// the records it polls in a few polls, then its position and the group's committed
/// offset (`None` for a `Timeout`).
fn first_polls(
    store: &Store,
    isolation: IsolationLevel,
) -> (Vec<i64>, Option<i64>, Option<Option<i64>>) {
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .isolation_level(isolation)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.subscribe(["in"]).unwrap();
    let mut offsets = Vec::new();
    for _ in 0..3 {
        offsets.extend(c.poll(Duration::ZERO).unwrap().iter().map(|r| r.offset()));
    }
    let tp = TopicPartition::new("in", 0);
    let position = match c.position(&tp) {
        Ok(p) => Some(p),
        Err(Error::Timeout { .. }) => None,
        Err(e) => panic!("{e}"),
    };
    let committed = match c.committed(std::slice::from_ref(&tp)) {
        Ok(map) => Some(map[&tp]),
        Err(Error::Timeout { .. }) => None,
        Err(e) => panic!("{e}"),
    };
    c.close().unwrap();
    (offsets, position, committed)
}

/// An exactly-once worker's transaction sent offset 5 of `in-0` and is still open
/// when another consumer of the group gets the partition: read_committed, it must not
/// start from the committed offset (none: the earliest) and process 0..5 again; it
/// waits, and starts at 5 once the transaction commits (at 0 again once one aborts).
/// Before, it started at 0, and both workers' outputs of 0..5 committed.
#[test]
fn a_partition_with_open_transactional_offsets_waits_for_them() {
    for commit in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_input(dir.path());
        let p = worker_with_open_offsets(&store, 5);

        let (polled, position, committed) = first_polls(&store, IsolationLevel::ReadCommitted);
        assert_eq!(polled, Vec::<i64>::new(), "nothing before the decision");
        assert_eq!(position, None, "position times out meanwhile");
        assert_eq!(committed, None, "so does committed");
        // read_uncommitted does not wait (Kafka asks for stable offsets only then).
        let (polled, _, committed) = first_polls(&store, IsolationLevel::ReadUncommitted);
        assert_eq!(polled.first(), Some(&0));
        assert_eq!(committed, Some(None));

        if commit {
            p.commit_transaction().unwrap();
        } else {
            p.abort_transaction().unwrap();
        }
        let (polled, position, committed) = first_polls(&store, IsolationLevel::ReadCommitted);
        let from = if commit { 5 } else { 0 };
        assert_eq!(polled.first(), Some(&from), "commit {commit}: {polled:?}");
        assert!(position.is_some());
        assert_eq!(committed, Some(commit.then_some(5)));
    }
}

/// From an API attack: an open transaction's offsets of a topic deleted since held a
/// read_committed consumer of the topic created again under its name (`committed` and
/// `position` timed out) until that transaction ended, though its commit never applies
/// them to the new topic. Pending offsets now count for their own topic only.
#[test]
fn open_offsets_of_a_deleted_topic_do_not_hold_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_input(dir.path());
    let p = worker_with_open_offsets(&store, 8);
    store.delete_topic("in").unwrap();
    store.create_topic("in", TopicConfig::default()).unwrap();
    let (polled, position, committed) = first_polls(&store, IsolationLevel::ReadCommitted);
    assert_eq!(polled, Vec::<i64>::new(), "the new topic is empty");
    assert_eq!(position, Some(0));
    assert_eq!(committed, Some(None));
    p.commit_transaction().unwrap();
    let (_, position, committed) = first_polls(&store, IsolationLevel::ReadCommitted);
    assert_eq!((position, committed), (Some(0), Some(None)));
    // The deletion tombstoned the offsets the transaction had sent (review): they stay
    // in no listing, and a reopen applies none of them either.
    let gone = |store: &Store| {
        !store.list_groups().contains(&"g".to_string())
            && matches!(store.describe_group("g"), Err(Error::NotFound { .. }))
    };
    assert!(gone(&store), "live");
    drop(p);
    store.close().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    assert!(gone(&store), "after a reopen");
}

/// `seek_to_committed` puts a partition back to its group's committed offset as an
/// assignment would: while a transaction holds offsets of it, a read_committed consumer
/// reads nothing of it (where `committed` fails at once), and starts at the offset that
/// transaction commits; records fetched before the seek are not returned.
#[test]
fn seek_to_committed_waits_for_open_transactional_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_input(dir.path());
    let tp = TopicPartition::new("in", 0);
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .isolation_level(IsolationLevel::ReadCommitted)
                .max_poll_records(2),
        )
        .unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.commit_sync_offsets(&BTreeMap::from([(tp.clone(), 2)]))
        .unwrap();
    let first: Vec<i64> = c
        .poll(Duration::ZERO)
        .unwrap()
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(first, [2, 3]);
    let p = worker_with_open_offsets(&store, 7);
    c.seek_to_committed(&[]).unwrap();
    assert!(matches!(c.position(&tp), Err(Error::Timeout { .. })));
    assert!(
        c.poll(Duration::ZERO).unwrap().is_empty(),
        "nothing before the decision"
    );
    p.commit_transaction().unwrap();
    let next: Vec<i64> = c
        .poll(Duration::ZERO)
        .unwrap()
        .iter()
        .map(|r| r.offset())
        .collect();
    assert_eq!(next, [7, 8]);

    // Without a group there is no committed offset to go back to; unassigned
    // partitions are refused.
    c.seek(&tp, 0).unwrap();
    assert!(matches!(
        c.seek_to_committed(&[TopicPartition::new("in", 1)]),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(c.position(&tp).unwrap(), 0, "a refused seek moves nothing");
    let mut plain = store.consumer(ConsumerConfig::default()).unwrap();
    plain.assign(std::slice::from_ref(&tp)).unwrap();
    assert!(matches!(
        plain.seek_to_committed(&[]),
        Err(Error::InvalidArgument { .. })
    ));
}
