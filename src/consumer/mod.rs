//! The consumer side: [`Consumer`] with manual assignment or group subscription,
//! committed offsets, and the in-store group coordinator.
//!
//! ```
//! use std::time::Duration;
//! use streamlog::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("clicks", TopicConfig::default().partitions(2))?;
//! let producer = store.producer(ProducerConfig::default())?;
//! producer.send(ProducerRecord::new("clicks").key("user-7").value("home"))?.wait()?;
//!
//! let mut consumer = store.consumer(
//!     ConsumerConfig::new("analytics").auto_offset_reset(OffsetReset::Earliest),
//! )?;
//! consumer.subscribe(["clicks"])?;
//! let records = consumer.poll(Duration::from_secs(1))?;
//! assert_eq!(records.get(0).unwrap().value(), Some(&b"home"[..]));
//! consumer.commit_sync()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod fetch;
mod membership;
mod records;
mod recv;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::catalog::{Catalog, Counter, PartitionState};
use crate::error::{Error, Result};
use crate::groups::{Commit, Coordinator};

pub use crate::groups::{
    Assignor, CommittedOffset, ConsumerGroupMetadata, GroupDescription, MemberDescription,
    OffsetChange, OffsetSpec, assign,
};
pub use crate::topic::TopicPartition;
pub use config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use membership::RebalanceListener;
use records::Pending;
pub use records::{ConsumerRecord, ConsumerRecords, IntoIter, Iter, RecordRef};
pub use recv::{RecordStream, Recv};

/// An offset and the timestamp of the record there ([`Consumer::offsets_for_times`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The offset.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

#[derive(Debug)]
struct Assigned {
    state: Arc<PartitionState>,
    /// Next offset to return; `None` until first resolved from commits / reset.
    position: Option<i64>,
    /// The end a `seek_to_beginning` (`Earliest`) or `seek_to_end` (`Latest`) asked
    /// for, until a read from the position it gave: while `position` is `None` it is
    /// resolved there (as Kafka resolves these seeks) at the next poll or `position`;
    /// then, should the log start move past that position before a poll reads from it
    /// (one whose byte budget earlier partitions spent reads nothing of it), a seek to
    /// the beginning is gone to again rather than by `auto_offset_reset` (which could
    /// skip to the end); a seek to the end is not (that could skip what `Earliest`
    /// returns).
    sought: Option<OffsetReset>,
    paused: bool,
    /// Batches read but not yet wholly returned (at and after `position`).
    buffer: VecDeque<Pending>,
}

#[derive(Debug)]
struct Membership {
    group: String,
    member_id: String,
    generation: i32,
}

/// Reads records from partitions it is assigned (by [`assign`](Self::assign)) or that
/// its group gives it (by [`subscribe`](Self::subscribe)). `Send`, not `Sync`: one
/// thread polls it, as in Kafka; make one consumer per thread. After
/// [`close`](Self::close), or once its store is closed, the methods that return a
/// `Result` return `Closed` (but `unsubscribe` and `close`, which then have nothing left
/// to do, return `Ok`).
pub struct Consumer {
    catalog: Arc<Catalog>,
    groups: Arc<Coordinator>,
    /// Keeps the store open while the consumer lives (the store's own handle, opaque).
    _owner: Arc<dyn std::any::Any + Send + Sync>,
    config: ConsumerConfig,
    assigned: BTreeMap<TopicPartition, Assigned>,
    subscription: Option<BTreeSet<String>>,
    membership: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_auto_commit: Instant,
    next_partition: usize,
    closed: bool,
    /// A rebalance listener is running (it may not change the subscription or poll).
    in_callback: bool,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("assigned", &self.assigned.keys().collect::<Vec<_>>())
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A new consumer of `catalog`'s topics in `groups`; `owner` keeps the store open
    /// while it lives.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        groups: Arc<Coordinator>,
        owner: Arc<dyn std::any::Any + Send + Sync>,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        config.validate()?;
        Ok(Consumer {
            catalog,
            groups,
            _owner: owner,
            config,
            assigned: BTreeMap::new(),
            subscription: None,
            membership: None,
            listener: None,
            last_auto_commit: Instant::now(),
            next_partition: 0,
            closed: false,
            in_callback: false,
        })
    }
}

impl Consumer {
    /// Refuses `what` (which changes the subscription or assignment, or polls) while a
    /// rebalance listener runs: the rebalance that called it is still changing them.
    fn check_not_in_callback(&self, what: &str) -> Result<()> {
        if self.in_callback {
            return Err(Error::InvalidArgument {
                name: "consumer",
                reason: format!("`{what}` cannot be called inside a rebalance listener"),
            });
        }
        Ok(())
    }

    /// Polling needs a subscription or an assignment, as in Kafka (whose `poll` throws
    /// `IllegalStateException`): otherwise nothing could ever arrive, and `recv` would
    /// wait for ever.
    fn check_reading(&self, what: &str) -> Result<()> {
        if self.subscription.is_none() && self.membership.is_none() && self.assigned.is_empty() {
            return Err(Error::InvalidArgument {
                name: "consumer",
                reason: format!(
                    "`{what}` needs a subscription or assigned partitions (subscribe or assign first)"
                ),
            });
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed { what: "consumer" });
        }
        self.catalog.check_open()
    }

    fn group(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument {
                name: "group_id",
                reason: "this needs a consumer group: set ConsumerConfig::group_id".into(),
            })
    }

    /// Reads exactly these partitions, without a group's assignment (Kafka's `assign`).
    /// Replaces an earlier assignment; ends a subscription. With
    /// [`enable_auto_commit`](ConsumerConfig::enable_auto_commit) and a group, the
    /// positions of the partitions it drops are committed first, whatever
    /// `auto_commit_interval_ms` says (Kafka's `assign` starts an asynchronous
    /// auto-commit of the old assignment only once the interval passed); a failed
    /// commit is logged, as Kafka's is, and the assignment changes all the same (the
    /// next reader of a dropped partition reads again from the last commit).
    ///
    /// # Errors
    /// `NotFound` for an unknown topic or partition; `InvalidArgument` inside a
    /// [`RebalanceListener`]; `Closed`. Ending a subscription, the errors of
    /// [`unsubscribe`](Self::unsubscribe) (its auto-commit failed): the subscription is
    /// ended and nothing assigned; calling again assigns.
    pub fn assign(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.check_not_in_callback("assign")?;
        let mut states = Vec::new();
        for tp in partitions {
            states.push((
                tp.clone(),
                self.catalog.partition(tp.topic(), tp.partition())?,
            ));
        }
        if self.subscription.is_some() {
            self.unsubscribe()?;
        } else if self.config.enable_auto_commit && self.config.group_id.is_some() {
            // As Kafka's `assign`: the positions of partitions this one drops are
            // committed first (else their next reader starts over from the last
            // commit). Kept ones are committed later, by poll.
            let dropped: Vec<TopicPartition> = self
                .assigned
                .iter()
                .filter(|(tp, a)| {
                    !states
                        .iter()
                        .any(|(t, s)| t == *tp && Arc::ptr_eq(s, &a.state))
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            if let Err(e) = self.auto_commit(&dropped) {
                tracing::warn!("auto-commit of the partitions assign drops: {e}");
            }
        }
        let old = std::mem::take(&mut self.assigned);
        for (tp, state) in states {
            // Kept only for the same partition: not for a topic deleted and created
            // again meanwhile, whose offsets the old position says nothing of.
            let kept = old
                .get(&tp)
                .filter(|a| Arc::ptr_eq(&a.state, &state))
                .map(|a| (a.position, a.sought, a.paused));
            self.assigned.insert(
                tp,
                Assigned {
                    state,
                    position: kept.and_then(|k| k.0),
                    sought: kept.and_then(|k| k.1),
                    paused: kept.is_some_and(|k| k.2),
                    buffer: VecDeque::new(),
                },
            );
        }
        Ok(())
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    /// Positions to commit (not of partitions whose topic was deleted: that would bring
    /// back offsets the deletion removed).
    fn positions_of(&self, partitions: &[TopicPartition]) -> BTreeMap<TopicPartition, i64> {
        partitions
            .iter()
            .filter_map(|tp| {
                self.assigned
                    .get(tp)
                    .filter(|a| !a.state.is_closed())
                    .and_then(|a| a.position)
                    .map(|p| (tp.clone(), p))
            })
            .collect()
    }

    fn assigned(&self, tp: &TopicPartition) -> Result<&Assigned> {
        self.assigned.get(tp).ok_or_else(|| Error::InvalidArgument {
            name: "partition",
            reason: format!("{tp} is not assigned to this consumer"),
        })
    }

    fn assigned_mut(&mut self, tp: &TopicPartition) -> Result<&mut Assigned> {
        self.assigned
            .get_mut(tp)
            .ok_or_else(|| Error::InvalidArgument {
                name: "partition",
                reason: format!("{tp} is not assigned to this consumer"),
            })
    }

    /// Sets the next offset `poll` returns for `tp` (checked against the log at the next
    /// fetch: out of range follows `auto_offset_reset`).
    ///
    /// # Errors
    /// `InvalidArgument` if `tp` is not assigned or `offset` is negative; `Closed`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.check_open()?;
        if offset < 0 {
            return Err(Error::InvalidArgument {
                name: "offset",
                reason: format!("{offset} is negative"),
            });
        }
        self.assigned(tp)?;
        // A seek on a topic created again is a seek in the new one.
        self.follow_recreated(tp);
        let a = self.assigned_mut(tp)?;
        a.position = Some(offset);
        a.sought = None;
        a.buffer.clear();
        Ok(())
    }

    /// Puts `tp`'s position back to `offset`, the first record a dropped stream fetched
    /// and did not yield. Not for a partition no longer assigned (nothing of it is
    /// committed here), nor one whose topic was deleted since (maybe created again:
    /// the offset says nothing of the new topic, which the next poll reads afresh).
    pub(super) fn give_back(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(a) = self.assigned.get_mut(tp)
            && !a.state.is_closed()
        {
            a.position = Some(offset);
            a.buffer.clear();
        }
    }

    /// Moves to the log start of each partition (all assigned if empty), as it is at
    /// the next [`poll`](Self::poll) or [`position`](Self::position) (as Kafka resolves
    /// it): retention or `delete_records` moving the log start before then moves this
    /// position with it, never by `auto_offset_reset` (which, `Latest`, would skip every
    /// record left). Records fetched and not yet returned are dropped.
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.seek_each(partitions, Some(OffsetReset::Earliest))
    }

    /// Moves to the log end of each partition (all assigned if empty; the last stable
    /// offset for a read_committed consumer), as it is at the next
    /// [`poll`](Self::poll) or [`position`](Self::position) (as Kafka resolves it).
    /// Once resolved, the position is as any other: should the log start pass it later,
    /// `auto_offset_reset` applies. Records fetched and not yet returned are dropped.
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.seek_each(partitions, Some(OffsetReset::Latest))
    }

    /// Moves each partition (all assigned if empty) back to its group's committed
    /// offset, resolved as at an assignment: by the next [`poll`](Self::poll) or
    /// [`position`](Self::position), from the committed offset, else
    /// `auto_offset_reset`, once that is settled (see [`poll`](Self::poll)): a
    /// read_committed consumer whose group has offsets of a partition in a transaction
    /// not yet decided reads nothing of it until that transaction is decided, where
    /// [`committed`](Self::committed) would fail at once with `Timeout` (as librdkafka's
    /// seek to `RD_KAFKA_OFFSET_STORED`). Records fetched and not yet returned are
    /// dropped.
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition or a consumer without a group;
    /// `Closed`.
    ///
    /// # Example
    /// ```
    /// use streamlog::{ConsumerConfig, ProducerConfig, ProducerRecord, Store, TopicConfig, TopicPartition};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default().partitions(1))?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// producer.send(ProducerRecord::new("clicks").value("home"))?.wait()?;
    /// let tp = TopicPartition::new("clicks", 0);
    /// let mut consumer = store.consumer(ConsumerConfig::new("analytics"))?;
    /// consumer.assign(std::slice::from_ref(&tp))?;
    /// consumer.commit_sync_offsets(&[(tp.clone(), 1)].into())?;
    /// consumer.seek(&tp, 0)?;
    /// consumer.seek_to_committed(&[])?;
    /// assert_eq!(consumer.position(&tp)?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek_to_committed(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.group()?;
        self.seek_each(partitions, None)
    }

    /// Leaves each partition's position to be resolved at the next poll: at the end
    /// `sought` says, else from the committed offset.
    fn seek_each(
        &mut self,
        partitions: &[TopicPartition],
        sought: Option<OffsetReset>,
    ) -> Result<()> {
        let list: Vec<TopicPartition> = if partitions.is_empty() {
            self.assigned.keys().cloned().collect()
        } else {
            partitions.to_vec()
        };
        for tp in &list {
            self.assigned(tp)?;
        }
        for tp in &list {
            self.follow_recreated(tp);
            let a = self.assigned.get_mut(tp).expect("checked");
            a.position = None;
            a.sought = sought;
            a.buffer.clear();
        }
        Ok(())
    }

    /// The next offset `poll` will return for `tp` (resolving it from the committed
    /// offset or `auto_offset_reset` if needed).
    ///
    /// # Errors
    /// `InvalidArgument` if not assigned; `OffsetOutOfRange` with reset `None`;
    /// `Timeout` for a read_committed consumer while a transaction not yet decided
    /// wrote offsets of `tp` for its group (at once; Kafka's `position` waits up to
    /// `default.api.timeout.ms` for stable offsets first; `poll` waits for them and
    /// then starts there), and for any consumer of a group while another consumer's
    /// commit of `tp` for it is in its fsync (call again: the committed offset is about
    /// to move); `Closed`.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.check_open()?;
        self.assigned(tp)?;
        self.follow_recreated(tp);
        let a = self.assigned(tp)?;
        if let Some(p) = a.position {
            return Ok(p);
        }
        if a.sought.is_none() && self.position_must_wait(tp) {
            return Err(unstable_offsets());
        }
        let p = self.resolve_position(tp, a)?;
        self.assigned_mut(tp)?.position = Some(p);
        Ok(p)
    }

    /// Stops returning records from these partitions until [`resume`](Self::resume).
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.set_paused(partitions, true)
    }

    /// Undoes [`pause`](Self::pause).
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.set_paused(partitions, false)
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        for tp in partitions {
            self.assigned(tp)?;
        }
        for tp in partitions {
            self.assigned_mut(tp)?.paused = paused;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|(_, a)| a.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn lookup(&self, tp: &TopicPartition) -> Result<Arc<PartitionState>> {
        match self.assigned.get(tp) {
            Some(a) if !a.state.is_closed() => Ok(a.state.clone()),
            // Not assigned, or its topic was deleted since (and maybe created again).
            _ => self.catalog.partition(tp.topic(), tp.partition()),
        }
    }

    /// `offset` of each partition (assigned or not).
    fn offsets_of(
        &self,
        partitions: &[TopicPartition],
        offset: impl Fn(&PartitionState) -> i64,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.check_open()?;
        partitions
            .iter()
            .map(|tp| Ok((tp.clone(), offset(&*self.lookup(tp)?))))
            .collect()
    }

    /// The log start offset of each partition (assigned or not).
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.offsets_of(partitions, PartitionState::log_start_offset)
    }

    /// The log end offset of each partition (assigned or not); under
    /// [`IsolationLevel::ReadCommitted`], the last stable offset.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let isolation = self.config.isolation_level;
        self.offsets_of(partitions, |p| isolation.end_offset(p))
    }

    /// For each partition, the first record with a timestamp at or after the given one
    /// (`None` if there is none).
    ///
    /// # Errors
    /// `InvalidArgument` for a negative timestamp (as Kafka's `offsetsForTimes`);
    /// `NotFound`; `Corruption`; `Io`; `Closed`.
    pub fn offsets_for_times(
        &self,
        query: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        self.check_open()?;
        if let Some((tp, ts)) = query.iter().find(|(_, ts)| **ts < 0) {
            return Err(Error::InvalidArgument {
                name: "timestamp",
                reason: format!("{ts} for {tp} is negative: a target time cannot be"),
            });
        }
        query
            .iter()
            .map(|(tp, &ts)| {
                let p = self.lookup(tp)?;
                // Nothing at or past where this consumer sees the partition end.
                let end = self.config.isolation_level.end_offset(&p);
                let found = p.offset_for_timestamp(ts)?.filter(|&(o, _)| o < end);
                Ok((
                    tp.clone(),
                    found.map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp }),
                ))
            })
            .collect()
    }

    /// Commits the current position of every assigned partition, durably (fsync'd into
    /// the internal offsets topic before this returns).
    ///
    /// # Errors
    /// `InvalidArgument` without a group; `CommitFailed` if a rebalance took a partition
    /// away, or if this consumer assigns its own partitions and the group has live
    /// members (whose offsets the commit would move); `NotFound` for a partition whose
    /// topic was deleted; `Io` (a commit of more partitions than one batch of the
    /// offsets topic holds is written in several: those written before the failure
    /// stay committed, as a reopen finds them); `Poisoned` once the offsets topic's
    /// fsync failed (until the store is reopened); `Closed`.
    pub fn commit_sync(&mut self) -> Result<()> {
        self.check_open()?;
        let all: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        let offsets = self.positions_of(&all);
        self.group()?;
        self.commit_offsets(&offsets)
    }

    /// Commits explicit offsets (the next offset to read, as Kafka).
    ///
    /// # Errors
    /// As [`commit_sync`](Self::commit_sync); `InvalidArgument` for a negative offset or
    /// an unknown partition.
    pub fn commit_sync_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.check_open()?;
        self.group()?;
        for (tp, &o) in offsets {
            if o < 0 {
                return Err(Error::InvalidArgument {
                    name: "offset",
                    reason: format!("{o} for {tp} is negative"),
                });
            }
            self.commit_target(tp)?;
        }
        self.commit_offsets(offsets)
    }

    /// The partition a commit of `tp` is for: the one this consumer was assigned, even
    /// if its topic was deleted since (the commit is then refused, never moved to a new
    /// topic of that name); otherwise the topic's current partition.
    fn commit_target(&self, tp: &TopicPartition) -> Result<Arc<PartitionState>> {
        match self.assigned.get(tp) {
            Some(a) => Ok(a.state.clone()),
            None => self.catalog.partition(tp.topic(), tp.partition()),
        }
    }

    /// Commits offsets of the topics as they are now: each commit names its topic's id
    /// and the partition's epoch, so it never applies to a later topic of the same name
    /// nor past records a crash removed.
    fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let group = self.group()?;
        let member = self.membership.as_ref().map(|m| m.member_id.as_str());
        let mut commits = BTreeMap::new();
        for (tp, &offset) in offsets {
            let state = self.commit_target(tp)?;
            commits.insert(
                tp.clone(),
                Commit {
                    offset,
                    epoch: state.epoch(),
                    topic_id: Some(state.topic_id),
                    at: -1,
                },
            );
        }
        let part = self.groups.offsets_partition(&self.catalog)?;
        let now = part.now_ms();
        let live = |tp: &TopicPartition, id| {
            self.catalog
                .partition(tp.topic(), tp.partition())
                .is_ok_and(|p| Some(p.topic_id) == id)
        };
        let committed = self
            .groups
            .commit(&part, group, member, &commits, now, &live);
        // Ok or not: a poll waiting for the commit in flight goes on.
        part.wake();
        committed?;
        self.catalog.stats().add(Counter::Commits, 1);
        Ok(())
    }

    /// This consumer's group, generation and member id, for
    /// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
    /// (exactly-once consume-transform-produce).
    ///
    /// # Errors
    /// `InvalidArgument` without a group.
    pub fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        let group = self.group()?.to_string();
        let topic_ids = self
            .assigned
            .iter()
            .map(|(tp, a)| (tp.clone(), a.state.topic_id))
            .collect();
        Ok(match &self.membership {
            Some(m) => ConsumerGroupMetadata::of_member(
                group,
                m.generation,
                m.member_id.clone(),
                topic_ids,
            ),
            None => ConsumerGroupMetadata::of_member(group, -1, String::new(), topic_ids),
        })
    }

    /// The group's committed offset of each partition (`None` where nothing is committed).
    ///
    /// # Errors
    /// `InvalidArgument` without a group; `Closed`; `Timeout` for a read_committed
    /// consumer while a transaction not yet decided wrote offsets of one of
    /// `partitions` for its group: the committed offset is about to move (KIP-447's
    /// stable offsets; at once, where Kafka's `committed` waits up to
    /// `default.api.timeout.ms` first). Call again once the transaction is decided.
    pub fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        self.check_open()?;
        let group = self.group()?;
        if partitions.iter().any(|tp| self.offsets_unstable(tp)) {
            return Err(unstable_offsets());
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    self.groups.resume_offset(&self.catalog, group, tp),
                )
            })
            .collect())
    }

    /// Records behind the log end (under `ReadCommitted`, the last stable offset) for
    /// each assigned partition with a known position.
    pub fn lag(&self) -> BTreeMap<TopicPartition, i64> {
        let isolation = self.config.isolation_level;
        self.assigned
            .iter()
            .filter_map(|(tp, a)| {
                a.position.map(|p| {
                    (
                        tp.clone(),
                        isolation.end_offset(&a.state).saturating_sub(p).max(0),
                    )
                })
            })
            .collect()
    }

    /// Commits (with auto-commit), runs the revoke callback, and leaves the group.
    /// Also done on drop, with errors logged; but a drop during a panic's unwinding
    /// only leaves the group: it commits nothing (the last poll's records may not have
    /// been processed) and runs no callback (a second panic would abort the process).
    ///
    /// # Errors
    /// A failed final commit (the consumer is closed anyway); `InvalidArgument` inside
    /// a [`RebalanceListener`] (the consumer stays open).
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.check_not_in_callback("close")?;
        let result = if self.membership.is_some() {
            self.unsubscribe()
        } else if self.config.enable_auto_commit && self.config.group_id.is_some() {
            let all: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            let offsets = self.positions_of(&all);
            self.commit_offsets(&offsets)
        } else {
            Ok(())
        };
        self.closed = true;
        self.assigned.clear();
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Not inside a listener (it borrows the consumer), even after one panicked.
        self.in_callback = false;
        if std::thread::panicking() {
            // Dropped by a panic (the application's or a listener's): no listener runs,
            // as a second panic would abort the process; and nothing is auto-committed,
            // as the records of the last poll may not have been processed. The consumer
            // still leaves its group, so that the others take over its partitions.
            self.listener = None;
            self.config.enable_auto_commit = false;
        }
        if let Err(e) = self.close() {
            tracing::warn!("closing consumer on drop: {e}");
        }
    }
}

/// What `position` (and `committed`, of a read_committed consumer) return while the
/// group's committed offset of the partition is about to move: an open transaction
/// holds offsets of it, or (`position` only) a commit of it is in its fsync.
fn unstable_offsets() -> Error {
    Error::Timeout {
        what: "the group's offset of the partition, about to move (the offsets an open \
               transaction wrote for it, KIP-447, or a commit in its fsync)",
        waited_ms: 0,
    }
}
