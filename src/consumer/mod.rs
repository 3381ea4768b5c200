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

mod records;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::{Catalog, PartitionState};
use crate::error::{Error, Result};
use crate::groups::{self, Commit, Coordinator};

pub use crate::groups::{Assignor, CommittedOffset, GroupDescription, MemberDescription, assign};
pub use crate::topic::TopicPartition;
use records::Pending;
pub use records::{ConsumerRecord, ConsumerRecords, IntoIter, Iter, RecordRef};

/// Where a consumer starts when it has no valid position (no committed offset, or one
/// outside the log): Kafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on (Kafka's default).
    #[default]
    Latest,
    /// No reset: `poll` returns `OffsetOutOfRange` (Kafka's `none`).
    None,
}

/// Which records `poll` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Only committed records. streamlog has no transactions yet, so every record is
    /// committed and this reads the same as `ReadUncommitted`; it becomes different when
    /// transactions arrive.
    ReadCommitted,
}

/// Consumer settings; knob names follow Kafka's consumer configs.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    group_id: Option<String>,
    client_id: String,
    auto_offset_reset: OffsetReset,
    enable_auto_commit: bool,
    auto_commit_interval_ms: u64,
    max_poll_records: usize,
    fetch_max_bytes: usize,
    max_partition_fetch_bytes: usize,
    max_poll_interval_ms: u64,
    isolation_level: IsolationLevel,
    assignor: Assignor,
}

impl Default for ConsumerConfig {
    /// No group; Kafka's defaults otherwise.
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5000,
            max_poll_records: 500,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_interval_ms: 300_000,
            isolation_level: IsolationLevel::ReadUncommitted,
            assignor: Assignor::Range,
        }
    }
}

impl ConsumerConfig {
    /// A consumer in group `group_id`, Kafka's defaults otherwise.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..Default::default()
        }
    }

    /// The group (needed for `subscribe` and for committing). Default = none. Not empty
    /// and at most 32767 bytes (stored as a Kafka string).
    #[must_use]
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// A name for this consumer in `describe_group`. Default = "consumer".
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    setter!(
        /// Where to start without a valid committed offset. Default = `Latest`.
        auto_offset_reset: OffsetReset
    );
    setter!(
        /// Commit positions every `auto_commit_interval_ms` from `poll`, before a
        /// rebalance revokes partitions, and on close. Default = true (needs a group).
        enable_auto_commit: bool
    );
    setter!(
        /// Default = 5000.
        auto_commit_interval_ms: u64
    );
    setter!(
        /// Most records one `poll` returns. Default = 500; at least 1.
        max_poll_records: usize
    );
    setter!(
        /// Most batch bytes one `poll` reads (at least one batch). Default = 50 MiB.
        fetch_max_bytes: usize
    );
    setter!(
        /// Most batch bytes read from one partition per `poll`. Default = 1 MiB.
        max_partition_fetch_bytes: usize
    );
    setter!(
        /// A group member that does not poll for this long is removed and its partitions
        /// reassigned. Default = 300000 (5 minutes).
        max_poll_interval_ms: u64
    );
    setter!(
        /// Default = `ReadUncommitted`.
        isolation_level: IsolationLevel
    );
    setter!(
        /// The group's partition assignment strategy. Default = `Range`.
        assignor: Assignor
    );

    fn validate(&self) -> Result<()> {
        if self.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        if self.fetch_max_bytes == 0 || self.max_partition_fetch_bytes == 0 {
            return Err(Error::config(
                "fetch_max_bytes",
                "fetch_max_bytes and max_partition_fetch_bytes must be at least 1",
            ));
        }
        if self.max_poll_interval_ms == 0 {
            return Err(Error::config("max_poll_interval_ms", "must be at least 1"));
        }
        if let Some(g) = &self.group_id {
            if g.is_empty() {
                return Err(Error::config("group_id", "must not be empty"));
            }
            if g.len() > groups::MAX_STRING_BYTES {
                return Err(Error::config(
                    "group_id",
                    format!(
                        "is {} bytes; at most {} (a Kafka string's int16 length)",
                        g.len(),
                        groups::MAX_STRING_BYTES
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Callbacks around a rebalance (Kafka's `ConsumerRebalanceListener`). They run inside
/// [`Consumer::poll`] (and `unsubscribe`/`close`) with the consumer, so they can commit,
/// seek and look up offsets; `poll`, `assign`, `subscribe`, `unsubscribe` and `close`
/// return `InvalidArgument` there (the rebalance that called them is not done).
pub trait RebalanceListener: Send {
    /// Called before the consumer gives up `partitions`; it still owns them, so a
    /// `commit_sync` here succeeds.
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]);
    /// Called after the consumer received `partitions`, before records from them are
    /// returned (positions may be changed with `seek`).
    fn on_partitions_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]);
    /// Called when the consumer lost `partitions` without a chance to revoke them (it was
    /// removed from the group for not polling within `max_poll_interval_ms`); commits
    /// would fail. Default: `on_partitions_revoked`.
    fn on_partitions_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(consumer, partitions);
    }
}

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

fn counts_fn(catalog: &Catalog) -> impl Fn(&BTreeSet<String>) -> BTreeMap<String, i32> + '_ {
    move |names| catalog.partition_counts(names)
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
    /// Replaces an earlier assignment; ends a subscription.
    ///
    /// # Errors
    /// `NotFound` for an unknown topic or partition; `InvalidArgument` inside a
    /// [`RebalanceListener`]; `Closed`.
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
        }
        let old = std::mem::take(&mut self.assigned);
        for (tp, state) in states {
            let kept = old.get(&tp).map(|a| (a.position, a.paused));
            self.assigned.insert(
                tp,
                Assigned {
                    state,
                    position: kept.and_then(|k| k.0),
                    paused: kept.is_some_and(|k| k.1),
                    buffer: VecDeque::new(),
                },
            );
        }
        Ok(())
    }

    /// Joins the group (needs `group_id`) for these topics; the group assigns
    /// partitions at the next `poll`. Replaces an earlier subscription or assignment.
    ///
    /// # Errors
    /// `InvalidArgument` without a group, for an invalid topic name, or inside a
    /// [`RebalanceListener`]; `Closed`.
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.check_open()?;
        self.check_not_in_callback("subscribe")?;
        let group = self.group()?.to_string();
        let topics: BTreeSet<String> = topics.into_iter().map(|t| t.as_ref().to_string()).collect();
        for t in &topics {
            crate::topic::validate_topic_name(t)?;
        }
        if self.subscription.is_none() {
            self.assigned.clear();
        }
        let counts = counts_fn(&self.catalog);
        match &self.membership {
            Some(m) => self
                .groups
                .resubscribe(&m.group, &m.member_id, topics.clone(), &counts),
            None => {
                let member_id = self.groups.join(
                    &group,
                    &self.config.client_id,
                    topics.clone(),
                    self.config.assignor,
                    Duration::from_millis(self.config.max_poll_interval_ms),
                    &counts,
                );
                self.membership = Some(Membership {
                    group,
                    member_id,
                    generation: -1,
                });
            }
        }
        self.subscription = Some(topics);
        self.catalog.notifier().notify();
        Ok(())
    }

    /// Sets the listener called around rebalances.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// Leaves the group (revoking and, with auto-commit, committing first) or drops a
    /// manual assignment.
    ///
    /// # Errors
    /// A failed auto-commit; `InvalidArgument` inside a [`RebalanceListener`].
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.check_not_in_callback("unsubscribe")?;
        let mut result = Ok(());
        if self.membership.is_some() {
            let owned: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            result = self.revoke(&owned);
            let m = self.membership.take().expect("checked");
            let counts = counts_fn(&self.catalog);
            self.groups.leave(&m.group, &m.member_id, &counts);
            self.catalog.notifier().notify();
        }
        self.subscription = None;
        self.assigned.clear();
        result
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    /// The subscribed topics.
    pub fn subscription(&self) -> Vec<String> {
        self.subscription
            .iter()
            .flat_map(|s| s.iter().cloned())
            .collect()
    }

    /// This consumer's member id in its group, once subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member_id.as_str())
    }

    fn with_listener(&mut self, f: impl FnOnce(&mut dyn RebalanceListener, &mut Consumer)) {
        if let Some(mut l) = self.listener.take() {
            let outer = std::mem::replace(&mut self.in_callback, true);
            // A panicking listener must not leave the consumer refusing every poll as
            // "inside a listener": the flag (and the listener) are restored first.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(l.as_mut(), self);
            }));
            self.in_callback = outer;
            if self.listener.is_none() {
                self.listener = Some(l);
            }
            if let Err(panic) = run {
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// Revokes `partitions`: auto-commit, listener, then drop them locally.
    fn revoke(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        if self.config.enable_auto_commit {
            let offsets = self.positions_of(partitions);
            result = self.commit_offsets(&offsets);
        }
        self.with_listener(|l, c| l.on_partitions_revoked(c, partitions));
        for tp in partitions {
            self.assigned.remove(tp);
        }
        if let Some(m) = &self.membership {
            self.groups.release(&m.group, &m.member_id, partitions);
            self.catalog.notifier().notify();
        }
        result
    }

    /// Brings the group assignment up to date (revoke, acquire, rejoin if expired).
    fn sync_group(&mut self) -> Result<()> {
        let Some(m) = &self.membership else {
            return Ok(());
        };
        let (group, member_id, known) = (m.group.clone(), m.member_id.clone(), m.generation);
        let counts = counts_fn(&self.catalog);
        let sync = self.groups.sync(&group, &member_id, known, &counts);
        drop(counts);
        let result;
        match sync {
            groups::Sync::Expired => {
                let lost: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
                if !lost.is_empty() {
                    self.with_listener(|l, c| l.on_partitions_lost(c, &lost));
                }
                self.assigned.clear();
                self.membership = None;
                let topics = self.subscription.take().unwrap_or_default();
                self.subscribe(topics)?;
                return self.sync_group();
            }
            groups::Sync::Revoke {
                generation,
                partitions,
            } => {
                result = self.revoke(&partitions);
                if let Some(m) = &mut self.membership {
                    m.generation = generation;
                }
            }
        }
        let got = self.groups.acquire(&group, &member_id);
        if !got.is_empty() {
            for tp in &got {
                match self.catalog.partition(tp.topic(), tp.partition()) {
                    Ok(state) => {
                        self.assigned.insert(
                            tp.clone(),
                            Assigned {
                                state,
                                position: None,
                                paused: false,
                                buffer: VecDeque::new(),
                            },
                        );
                    }
                    Err(e) => log::warn!("assigned {tp}, which no longer exists: {e}"),
                }
            }
            self.with_listener(|l, c| l.on_partitions_assigned(c, &got));
        }
        result
    }

    /// Resolves a partition's position: committed offset, else `auto_offset_reset`.
    fn resolve_position(&self, tp: &TopicPartition, a: &Assigned) -> Result<i64> {
        let log = &a.state;
        let committed = self
            .config
            .group_id
            .as_deref()
            .and_then(|g| self.groups.committed(g, tp))
            .and_then(|c| c.applied_to(&a.state));
        match committed {
            Some(o) if o >= log.log_start_offset() && o <= log.log_end_offset() => Ok(o),
            _ => self.reset_position(tp, a, committed.unwrap_or(-1)),
        }
    }

    fn reset_position(&self, _tp: &TopicPartition, a: &Assigned, requested: i64) -> Result<i64> {
        let log = &a.state;
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => Ok(log.log_start_offset()),
            OffsetReset::Latest => Ok(log.log_end_offset()),
            OffsetReset::None => Err(Error::OffsetOutOfRange {
                requested,
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
            }),
        }
    }

    /// Returns records from the assigned, unpaused partitions: in offset order within a
    /// partition, at most `max_poll_records`. With nothing available it blocks until an
    /// append (or a group change) wakes it or `timeout` passes, without busy-waiting.
    /// Also runs the group protocol (rebalance callbacks) and auto-commit.
    ///
    /// # Errors
    /// `OffsetOutOfRange` with `auto_offset_reset = None`; `Corruption`; `Io`;
    /// `CommitFailed` from an auto-commit; `InvalidArgument` inside a
    /// [`RebalanceListener`]; `Closed`.
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        self.check_open()?;
        self.check_not_in_callback("poll")?;
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let seen = self.catalog.notifier().seq();
            self.sync_group()?;
            self.maybe_auto_commit()?;
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(records);
            }
            // Wake for appends and group changes; re-check membership liveness at least
            // every second so a stalled member is noticed by the others.
            let nap = Instant::now() + Duration::from_secs(1);
            let until = deadline.map_or(nap, |d| d.min(nap));
            self.catalog.notifier().wait(seen, Some(until));
            self.check_open()?;
        }
    }

    fn maybe_auto_commit(&mut self) -> Result<()> {
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && self.last_auto_commit.elapsed()
                >= Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            self.last_auto_commit = Instant::now();
            let all: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            let offsets = self.positions_of(&all);
            self.commit_offsets(&offsets)?;
        }
        Ok(())
    }

    /// Records from the assigned partitions. An error in one partition after others
    /// returned records is reported at the next poll instead, so records whose positions
    /// already moved are never dropped.
    fn fetch(&mut self) -> Result<ConsumerRecords> {
        let mut out = ConsumerRecords::with_capacity(self.config.max_poll_records.min(4096));
        match self.fetch_into(&mut out) {
            Err(e) if !out.is_empty() => {
                log::warn!(
                    "poll: returning {} records; deferring an error: {e}",
                    out.len()
                );
                Ok(out)
            }
            r => r.map(|()| out),
        }
    }

    fn fetch_into(&mut self, out: &mut ConsumerRecords) -> Result<()> {
        let mut budget = self.config.fetch_max_bytes;
        let keys: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let n = keys.len();
        let start = self.next_partition % n;
        self.next_partition = self.next_partition.wrapping_add(1);
        for i in 0..n {
            if out.len() >= self.config.max_poll_records {
                break;
            }
            let tp = &keys[(start + i) % n];
            let a = &self.assigned[tp];
            if a.paused {
                continue;
            }
            if a.state.is_closed() {
                // Its topic was deleted: nothing to read, unless it was created again,
                // which is read from a fresh position (committed offsets of the old
                // topic went with it).
                match self.catalog.partition(tp.topic(), tp.partition()) {
                    Ok(fresh) if !fresh.is_closed() => {
                        log::info!("{tp}: its topic was created again; reading the new one");
                        let a = self.assigned.get_mut(tp).expect("present");
                        a.state = fresh;
                        a.position = None;
                        a.buffer.clear();
                    }
                    _ => continue,
                }
            }
            let a = &self.assigned[tp];
            let position = match a.position {
                Some(p) => p,
                None => {
                    let p = self.resolve_position(tp, a)?;
                    self.assigned.get_mut(tp).expect("present").position = Some(p);
                    p
                }
            };
            let limit = self.config.max_poll_records - out.len();
            let isolation = self.config.isolation_level;
            let max_bytes = self.config.max_partition_fetch_bytes.min(budget.max(1));
            let a = self.assigned.get_mut(tp).expect("present");
            if a.buffer.is_empty() {
                let log = &a.state;
                // Caught up. (Past the end or below the start: the read reports
                // OffsetOutOfRange and auto_offset_reset applies.)
                if position == log.log_end_offset() && position >= log.log_start_offset() {
                    continue;
                }
                match read_partition(a, tp, position, max_bytes, isolation) {
                    Ok(bytes) => budget = budget.saturating_sub(bytes),
                    Err(Error::OffsetOutOfRange { requested, .. }) => {
                        let p = self.reset_position(tp, &self.assigned[tp], requested)?;
                        log::info!("{tp}: offset {requested} is out of range; reset to {p}");
                        let a = self.assigned.get_mut(tp).expect("present");
                        a.position = Some(p);
                        continue;
                    }
                    // Its topic was deleted during this read: skipped like a deleted
                    // topic's partition above (the next poll looks for a new topic).
                    Err(Error::Closed { .. }) if self.assigned[tp].state.is_closed() => {
                        continue;
                    }
                    Err(e) => {
                        // Reported first at the next poll if deferred now (see below).
                        self.next_partition = (start + i) % n;
                        return Err(e);
                    }
                }
            }
            let a = self.assigned.get_mut(tp).expect("present");
            let limit = out.len() + limit;
            while out.len() < limit
                && let Some(p) = a.buffer.front_mut()
            {
                let from = a.position.unwrap_or(i64::MIN);
                let (next, result) = p.take(from, limit, out);
                if let Some(next) = next {
                    a.position = Some(next.max(from));
                }
                // A malformed record: the records before it are returned, the position
                // stays at it, and the batch stays first so every poll reports it again
                // (until a seek); the next poll starts with this partition, so the error
                // is not deferred behind other partitions' records again.
                if let Err(e) = result {
                    self.next_partition = (start + i) % n;
                    return Err(e);
                }
                if p.is_done() {
                    a.buffer.pop_front();
                }
            }
        }
        Ok(())
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
        let a = self.assigned_mut(tp)?;
        a.position = Some(offset);
        a.buffer.clear();
        Ok(())
    }

    /// Moves to the log start of each partition (all assigned if empty).
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.seek_each(partitions, |a| a.state.log_start_offset())
    }

    /// Moves to the log end of each partition (all assigned if empty).
    ///
    /// # Errors
    /// `InvalidArgument` for an unassigned partition; `Closed`.
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        self.seek_each(partitions, |a| a.state.log_end_offset())
    }

    fn seek_each(
        &mut self,
        partitions: &[TopicPartition],
        to: impl Fn(&Assigned) -> i64,
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
            let a = self.assigned.get_mut(tp).expect("checked");
            a.position = Some(to(a));
            a.buffer.clear();
        }
        Ok(())
    }

    /// The next offset `poll` will return for `tp` (resolving it from the committed
    /// offset or `auto_offset_reset` if needed).
    ///
    /// # Errors
    /// `InvalidArgument` if not assigned; `OffsetOutOfRange` with reset `None`; `Closed`.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.check_open()?;
        let a = self.assigned(tp)?;
        if let Some(p) = a.position {
            return Ok(p);
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

    /// The log start offset of each partition (assigned or not).
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn beginning_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.check_open()?;
        partitions
            .iter()
            .map(|tp| Ok((tp.clone(), self.lookup(tp)?.log_start_offset())))
            .collect()
    }

    /// The log end offset of each partition (assigned or not).
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.check_open()?;
        partitions
            .iter()
            .map(|tp| Ok((tp.clone(), self.lookup(tp)?.log_end_offset())))
            .collect()
    }

    /// For each partition, the first record with a timestamp at or after the given one
    /// (`None` if there is none).
    ///
    /// # Errors
    /// `NotFound`; `Corruption`; `Io`; `Closed`.
    pub fn offsets_for_times(
        &self,
        query: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        self.check_open()?;
        query
            .iter()
            .map(|(tp, &ts)| {
                let found = self.lookup(tp)?.offset_for_timestamp(ts)?;
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
    /// away; `Io`; `Closed`.
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
        self.groups
            .commit(&part, group, member, &commits, now, &live)?;
        part.wake();
        Ok(())
    }

    /// The group's committed offset of each partition (`None` where nothing is committed).
    ///
    /// # Errors
    /// `InvalidArgument` without a group; `Closed`.
    pub fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
        self.check_open()?;
        let group = self.group()?;
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

    /// Records behind the log end for each assigned partition with a known position.
    pub fn lag(&self) -> BTreeMap<TopicPartition, i64> {
        self.assigned
            .iter()
            .filter_map(|(tp, a)| {
                a.position.map(|p| {
                    (
                        tp.clone(),
                        a.state.log_end_offset().saturating_sub(p).max(0),
                    )
                })
            })
            .collect()
    }

    /// Commits (with auto-commit), runs the revoke callback, and leaves the group.
    /// Also done on drop, with errors logged.
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
        if let Err(e) = self.close() {
            log::warn!("closing consumer on drop: {e}");
        }
    }
}

/// Reads one chunk of `tp` from `position` into the partition's buffer; returns the
/// batch bytes read.
fn read_partition(
    a: &mut Assigned,
    tp: &TopicPartition,
    mut position: i64,
    max_bytes: usize,
    _isolation: IsolationLevel,
) -> Result<usize> {
    let state = a.state.clone();
    let log = state;
    let options = log.decode_options();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    if position < start || position > end {
        return Err(Error::OffsetOutOfRange {
            requested: position,
            log_start: start,
            log_end: end,
        });
    }
    let mut bytes = 0;
    // Loop only while a chunk held nothing to return (control batches, records below the
    // position) and more data follows.
    while a.buffer.is_empty() && position < log.log_end_offset() {
        let batches = log.read(position, max_bytes)?;
        let mut next = position;
        for b in &batches {
            bytes += b.size();
            next = next.max(b.last_offset() + 1);
            if b.header().is_control() || b.last_offset() < position {
                continue;
            }
            a.buffer.push_back(Pending::new(tp, b, &options));
        }
        if next <= position {
            break;
        }
        if a.buffer.is_empty() {
            a.position = Some(next);
        }
        position = next;
    }
    Ok(bytes)
}
