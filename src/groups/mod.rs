//! The group coordinator inside the store: members, assignments, rebalances and
//! committed offsets.
//!
//! Rebalance protocol (in-process, the same guarantees as Kafka's): when membership,
//! subscriptions or partition counts change, the coordinator computes a *target*
//! assignment and bumps the generation. A member learns of it at its next `poll`, where
//! it first *revokes* what it must give up (all it owns for the eager assignors range and
//! round-robin, only the partitions that move for cooperative-sticky), running the
//! listener's `on_partitions_revoked` while it still owns them (so it can commit), then
//! releases them and *acquires* the target partitions that no other member owns. A
//! partition is therefore owned by at most one member at any instant, and once every
//! member has polled, by exactly one. Commits from a member for partitions it does not
//! own are refused (`CommitFailed`), so a stale member cannot move offsets backwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;

use crate::catalog::{Catalog, CommittedOffsetReset, PartitionState, StoreRecoveryReport, TopicId};
use crate::error::{Error, Result};
use crate::format::{BatchBuilder, Header};
use crate::topic::{CleanupPolicy, TopicConfig, TopicPartition};

/// The internal topic holding committed offsets.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How a group spreads partitions over its members (Kafka's
/// `partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to members in member-id order
    /// (Kafka's `RangeAssignor`, the default). Eager: a rebalance revokes everything.
    #[default]
    Range,
    /// All partitions of all subscribed topics dealt out one by one (Kafka's
    /// `RoundRobinAssignor`). Eager.
    RoundRobin,
    /// Balanced, keeping each member's partitions where possible; a rebalance revokes
    /// only the partitions that move (Kafka's `CooperativeStickyAssignor`).
    CooperativeSticky,
}

impl Assignor {
    fn is_eager(self) -> bool {
        !matches!(self, Assignor::CooperativeSticky)
    }

    /// Kafka's protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }
}

#[derive(Debug)]
struct Member {
    client_id: String,
    subscription: BTreeSet<String>,
    owned: BTreeSet<TopicPartition>,
    target: BTreeSet<TopicPartition>,
    last_poll: Instant,
    max_poll_interval: Duration,
}

#[derive(Debug, Default)]
struct Group {
    generation: i32,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    /// Partition counts the current targets were computed from.
    topology: BTreeMap<String, i32>,
}

#[derive(Debug, Default)]
struct State {
    groups: HashMap<String, Group>,
    committed: HashMap<String, BTreeMap<TopicPartition, Commit>>,
    next_member: u64,
}

/// A committed offset and what it was taken from: the topic incarnation and the
/// partition epoch (Kafka's leader epoch in `OffsetCommitValue`, KIP-320). Offsets are
/// only ever applied to that incarnation, and checked against the epoch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Commit {
    /// The next offset the group reads.
    pub(crate) offset: i64,
    /// The partition epoch when it was committed (-1: unknown, written before epochs).
    pub(crate) epoch: i32,
    /// The topic incarnation (`None`: written before topic ids existed).
    pub(crate) topic_id: Option<TopicId>,
    /// Where it stands in `__consumer_offsets` (-1 until written): of two commits of
    /// one partition, the later written wins, whichever fsync returned first.
    pub(crate) at: i64,
}

/// The record header carrying a commit's topic id (Kafka's schema has no field for it;
/// Kafka's readers ignore headers).
const TOPIC_ID_HEADER: &str = "topic_id";

/// What checking the loaded commits found (see `Coordinator::check_loaded`).
pub(crate) struct Checked {
    /// Commits lowered to where their epoch's records end.
    pub(crate) lowered: Vec<Lowered>,
    /// Commits to write again as they are now.
    pub(crate) stale: Vec<GroupCommit>,
    /// Commits of topics that no longer exist (to tombstone).
    pub(crate) dropped: Vec<(String, TopicPartition)>,
}

/// A commit lowered at open: `(group, partition, from, to)`.
pub(crate) type Lowered = (String, TopicPartition, i64, i64);
/// A group's commit of one partition.
pub(crate) type GroupCommit = (String, TopicPartition, Commit);
/// Where a commit applies now and the partition's log end, `None` for a commit of a
/// deleted topic.
pub(crate) type CommitCheck<'a> = dyn Fn(&TopicPartition, &Commit) -> Option<(i64, i64)> + 'a;

/// What the store says of a commit at load: keep it (with this offset), or drop it.
pub(crate) enum Verdict {
    /// Keep it; the offset may be lowered to where its epoch's records end.
    Keep(i64),
    /// It belongs to a topic incarnation that no longer exists.
    Drop,
}

/// Members, assignments and committed offsets of every group in a store.
#[derive(Debug, Default)]
pub(crate) struct Coordinator {
    state: Mutex<State>,
    /// Serializes commits so the in-memory map follows the log's order.
    commit_lock: Mutex<()>,
}

/// What a member must do at this poll.
#[derive(Debug)]
pub(crate) enum Sync {
    /// The member was removed (it did not poll within `max_poll_interval_ms`, or its
    /// group was reset); it lost what it owned and must rejoin.
    Expired,
    /// Revoke these (call the listener, then [`Coordinator::release`]).
    Revoke {
        generation: i32,
        partitions: Vec<TopicPartition>,
    },
}

/// One member of a group, as [`Store::describe_group`](crate::Store::describe_group) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// The consumer's `client_id`.
    pub client_id: String,
    /// Subscribed topics.
    pub subscription: Vec<String>,
    /// Partitions it owns now.
    pub assignment: Vec<TopicPartition>,
}

/// What [`Store::describe_group`](crate::Store::describe_group) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// "Stable" when every member owns its target partitions, "PreparingRebalance"
    /// while a rebalance is under way, "Empty" with no members.
    pub state: &'static str,
    /// Bumped by every rebalance.
    pub generation: i32,
    /// The assignor in use.
    pub assignor: Assignor,
    /// Live members, by member id.
    pub members: Vec<MemberDescription>,
    /// Committed offsets with the partition's log end offset and the lag between them.
    pub offsets: Vec<CommittedOffset>,
}

/// A committed offset as [`GroupDescription`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset (the next record the group will read).
    pub offset: i64,
    /// The partition's log end offset (`-1` if the topic no longer exists).
    pub log_end_offset: i64,
    /// `log_end_offset - offset`, at least 0.
    pub lag: i64,
}

impl Coordinator {
    pub(crate) fn offsets_topic_config() -> TopicConfig {
        TopicConfig::default()
            .partitions(1)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(8 * 1024 * 1024)
            .retention_ms(-1)
    }

    /// Loads committed offsets by replaying the offsets topic.
    pub(crate) fn load(&self, part: &PartitionState) -> Result<()> {
        let mut committed: HashMap<String, BTreeMap<TopicPartition, Commit>> = HashMap::new();
        let mut offset = part.log_start_offset();
        let end = part.log_end_offset();
        while offset < end {
            let records = part.read_records(offset, 1 << 20)?;
            let Some(last) = records.last() else { break };
            offset = last.offset + 1;
            for r in records {
                let Some(key) = r.key.as_ref().and_then(|k| decode_key(k.clone())) else {
                    log::warn!(
                        "{OFFSETS_TOPIC}: skipping a record at offset {} with an unknown key",
                        r.offset
                    );
                    continue;
                };
                let (group, tp) = key;
                let topic_id = r
                    .headers
                    .iter()
                    .find(|h| h.key == TOPIC_ID_HEADER)
                    .and_then(|h| TopicId::from_bytes(h.value.as_deref()?));
                match r.value.as_ref().map(|v| decode_value(v.clone())) {
                    None => {
                        if let Some(g) = committed.get_mut(&group) {
                            g.remove(&tp);
                        }
                    }
                    Some(Some((offset, epoch))) => {
                        let c = Commit {
                            offset,
                            epoch,
                            topic_id,
                            at: r.offset,
                        };
                        committed.entry(group).or_default().insert(tp, c);
                    }
                    Some(None) => log::warn!(
                        "{OFFSETS_TOPIC}: skipping a record at offset {} with an unknown value",
                        r.offset
                    ),
                }
            }
        }
        committed.retain(|_, g| !g.is_empty());
        self.state.lock().committed = committed;
        Ok(())
    }

    /// Checks every loaded commit with `verdict` (at open, after the partitions were
    /// recovered): drops those of other topic incarnations and lowers those that point
    /// past their epoch's records. Returns `(group, partition, from, to)` per lowered
    /// commit, and the commits to write again as they are now (lowered, or lacking a
    /// topic id: the caller gives them one), so the next open finds them settled.
    pub(crate) fn check_loaded(
        &self,
        verdict: &dyn Fn(&TopicPartition, &Commit) -> Verdict,
    ) -> Checked {
        let mut st = self.state.lock();
        let mut lowered = Vec::new();
        let mut stale = Vec::new();
        let mut dropped = Vec::new();
        for (group, commits) in st.committed.iter_mut() {
            commits.retain(|tp, c| match verdict(tp, c) {
                Verdict::Drop => {
                    log::warn!(
                        "group `{group}`: dropping the committed offset {} of {tp}, which \
                         belongs to an earlier topic of that name",
                        c.offset
                    );
                    dropped.push((group.clone(), tp.clone()));
                    false
                }
                Verdict::Keep(offset) => {
                    let low = offset < c.offset;
                    if low {
                        lowered.push((group.clone(), tp.clone(), c.offset, offset));
                        c.offset = offset;
                    }
                    if low || c.topic_id.is_none() {
                        stale.push((group.clone(), tp.clone(), *c));
                    }
                    true
                }
            });
        }
        st.committed.retain(|_, g| !g.is_empty());
        Checked {
            lowered,
            stale,
            dropped,
        }
    }

    /// Adds a member; returns its id.
    pub(crate) fn join(
        &self,
        group: &str,
        client_id: &str,
        subscription: BTreeSet<String>,
        assignor: Assignor,
        max_poll_interval: Duration,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) -> String {
        let mut st = self.state.lock();
        st.next_member += 1;
        let id = format!("{client_id}-{}", st.next_member);
        let g = st.groups.entry(group.to_string()).or_default();
        if g.members.is_empty() {
            g.assignor = assignor;
        }
        g.members.insert(
            id.clone(),
            Member {
                client_id: client_id.to_string(),
                subscription,
                owned: BTreeSet::new(),
                target: BTreeSet::new(),
                last_poll: Instant::now(),
                max_poll_interval,
            },
        );
        rebalance(g, counts);
        id
    }

    /// Changes a member's subscription.
    pub(crate) fn resubscribe(
        &self,
        group: &str,
        member: &str,
        subscription: BTreeSet<String>,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) {
        let mut st = self.state.lock();
        if let Some(g) = st.groups.get_mut(group)
            && let Some(m) = g.members.get_mut(member)
            && m.subscription != subscription
        {
            m.subscription = subscription;
            rebalance(g, counts);
        }
    }

    /// Removes a member (close, drop, unsubscribe); its partitions go to the others.
    pub(crate) fn leave(
        &self,
        group: &str,
        member: &str,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) {
        let mut st = self.state.lock();
        if let Some(g) = st.groups.get_mut(group)
            && g.members.remove(member).is_some()
        {
            rebalance(g, counts);
        }
    }

    /// A member's poll: records it as alive, expires members that stopped polling,
    /// rebalances if partition counts changed, and says what the member must revoke.
    pub(crate) fn sync(
        &self,
        group: &str,
        member: &str,
        known_generation: i32,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) -> Sync {
        let now = Instant::now();
        let mut st = self.state.lock();
        let Some(g) = st.groups.get_mut(group) else {
            return Sync::Expired;
        };
        let Some(m) = g.members.get_mut(member) else {
            return Sync::Expired;
        };
        m.last_poll = now;
        let before = g.members.len();
        g.members
            .retain(|_, m| now.duration_since(m.last_poll) <= m.max_poll_interval);
        let subscribed: BTreeSet<String> = g
            .members
            .values()
            .flat_map(|m| m.subscription.iter().cloned())
            .collect();
        if g.members.len() != before || counts(&subscribed) != g.topology {
            rebalance(g, counts);
        }
        let generation = g.generation;
        let m = &g.members[member];
        let partitions: Vec<TopicPartition> = if g.assignor.is_eager() {
            if known_generation == generation {
                Vec::new()
            } else {
                m.owned.iter().cloned().collect()
            }
        } else {
            m.owned.difference(&m.target).cloned().collect()
        };
        Sync::Revoke {
            generation,
            partitions,
        }
    }

    /// Gives up partitions after the listener ran.
    pub(crate) fn release(&self, group: &str, member: &str, partitions: &[TopicPartition]) {
        let mut st = self.state.lock();
        if let Some(m) = st
            .groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        {
            for tp in partitions {
                m.owned.remove(tp);
            }
        }
    }

    /// Takes the member's target partitions that nobody else owns; returns them.
    pub(crate) fn acquire(&self, group: &str, member: &str) -> Vec<TopicPartition> {
        let mut st = self.state.lock();
        let Some(g) = st.groups.get_mut(group) else {
            return Vec::new();
        };
        let Some(m) = g.members.get(member) else {
            return Vec::new();
        };
        let wanted: Vec<TopicPartition> = m.target.difference(&m.owned).cloned().collect();
        if wanted.is_empty() {
            return wanted;
        }
        let taken: BTreeSet<&TopicPartition> = g
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member)
            .flat_map(|(_, m)| m.owned.iter())
            .collect();
        let got: Vec<TopicPartition> = wanted
            .into_iter()
            .filter(|tp| !taken.contains(tp))
            .collect();
        let m = g.members.get_mut(member).expect("checked above");
        m.owned.extend(got.iter().cloned());
        got
    }

    /// Whether `member` owns `tp` now (commits of other partitions are refused).
    fn owns(st: &State, group: &str, member: &str, tp: &TopicPartition) -> bool {
        st.groups
            .get(group)
            .and_then(|g| g.members.get(member))
            .is_some_and(|m| m.owned.contains(tp))
    }

    /// Commits offsets durably: one batch appended to the offsets topic and fsync'd
    /// (shared with concurrent commits), then visible to `committed`. With a `member`,
    /// every partition must be owned by it.
    pub(crate) fn commit(
        &self,
        offsets_log: &PartitionState,
        group: &str,
        member: Option<&str>,
        offsets: &BTreeMap<TopicPartition, Commit>,
        now_ms: i64,
        live: &dyn Fn(&TopicPartition, Option<TopicId>) -> bool,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        // Held from the ownership check to the append, so a member removed in between
        // cannot commit after the partition's new owner did. Not across the fsync:
        // concurrent commits share one (the log's group commit).
        let order = self.commit_lock.lock();
        if let Some(member) = member {
            let st = self.state.lock();
            if let Some(tp) = offsets
                .keys()
                .find(|tp| !Self::owns(&st, group, member, tp))
            {
                return Err(Error::CommitFailed {
                    group: group.to_string(),
                    reason: format!(
                        "member `{member}` does not own {tp} (it was reassigned in a rebalance, \
                         or the member was removed for exceeding max_poll_interval_ms)"
                    ),
                });
            }
        }
        // Under the commit lock, which `forget_topic` takes after a topic is deleted: a
        // commit either finds the topic gone here or is written before its tombstone.
        if let Some((tp, _)) = offsets.iter().find(|(tp, c)| !live(tp, c.topic_id)) {
            return Err(Error::NotFound {
                kind: "topic",
                name: format!("{} (committing for {tp}: it was deleted)", tp.topic()),
            });
        }
        let at = Self::append_commits(
            offsets_log,
            offsets.iter().map(|(tp, c)| (group, tp, *c)),
            now_ms,
        )?;
        drop(order);
        offsets_log.flush_to(at + 1)?;
        let mut st = self.state.lock();
        let g = st.committed.entry(group.to_string()).or_default();
        for (tp, c) in offsets {
            let c = Commit { at, ..*c };
            match g.get(tp) {
                Some(old) if old.at > at => {}
                _ => {
                    g.insert(tp.clone(), c);
                }
            }
        }
        Ok(())
    }

    /// Appends commit records (not synced); returns the offset of the last one. The
    /// caller holds `commit_lock`, so appends follow the order of the checks.
    fn append_commits<'a>(
        offsets_log: &PartitionState,
        commits: impl Iterator<Item = (&'a str, &'a TopicPartition, Commit)>,
        now_ms: i64,
    ) -> Result<i64> {
        // One batch per `max_message_bytes` of the offsets topic: a commit of many
        // partitions is split rather than refused. (Each record is far below the limit:
        // group ids are at most 32767 bytes, topic names 249.)
        let limit = usize::try_from(offsets_log.max_message_bytes())
            .unwrap_or(usize::MAX)
            .saturating_sub(1024);
        let mut last = None;
        let mut b = BatchBuilder::new();
        for (group, tp, c) in commits {
            let headers: Vec<Header> = c
                .topic_id
                .map(|id| Header::new(TOPIC_ID_HEADER, id.as_bytes().to_vec()))
                .into_iter()
                .collect();
            let key = encode_key(group, tp);
            let value = encode_value(c.offset, c.epoch, now_ms);
            if !b.is_empty() && b.uncompressed_size() + key.len() + value.len() + 64 > limit {
                let full = std::mem::take(&mut b);
                last = Some(offsets_log.append_encoded(&mut full.build()?)?);
            }
            b.push(now_ms, Some(&key), Some(&value), &headers)?;
        }
        if !b.is_empty() {
            last = Some(offsets_log.append_encoded(&mut b.build()?)?);
        }
        last.map(|info| info.last_offset)
            .ok_or_else(|| Error::InvalidArgument {
                name: "offsets",
                reason: "no offsets to commit".into(),
            })
    }

    /// Writes loaded commits again as they are now: at open, for commits that were
    /// lowered or written before topic ids existed.
    pub(crate) fn rewrite(
        &self,
        offsets_log: &PartitionState,
        commits: &[GroupCommit],
        now_ms: i64,
    ) -> Result<()> {
        if commits.is_empty() {
            return Ok(());
        }
        let _order = self.commit_lock.lock();
        let at = Self::append_commits(
            offsets_log,
            commits.iter().map(|(g, tp, c)| (g.as_str(), tp, *c)),
            now_ms,
        )?;
        offsets_log.flush_to(at + 1)?;
        let mut st = self.state.lock();
        for (g, tp, c) in commits {
            let c = Commit { at, ..*c };
            st.committed
                .entry(g.clone())
                .or_default()
                .insert(tp.clone(), c);
        }
        Ok(())
    }

    /// Writes tombstones for every committed offset of `topic` (the topic was deleted).
    fn forget_topic_in(&self, offsets_log: &PartitionState, topic: &str) -> Result<()> {
        let order = self.commit_lock.lock();
        let doomed: Vec<(String, TopicPartition)> = {
            let st = self.state.lock();
            st.committed
                .iter()
                .flat_map(|(g, m)| {
                    m.keys()
                        .filter(|tp| tp.topic() == topic)
                        .map(|tp| (g.clone(), tp.clone()))
                })
                .collect()
        };
        self.forget_locked(offsets_log, &doomed, order)
    }

    /// Writes tombstones for `doomed` commits (at open: those of deleted topics, so the
    /// next open need not drop them again).
    pub(crate) fn forget(
        &self,
        offsets_log: &PartitionState,
        doomed: &[(String, TopicPartition)],
    ) -> Result<()> {
        self.forget_locked(offsets_log, doomed, self.commit_lock.lock())
    }

    fn forget_locked(
        &self,
        offsets_log: &PartitionState,
        doomed: &[(String, TopicPartition)],
        _order: parking_lot::MutexGuard<'_, ()>,
    ) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        let mut b = BatchBuilder::new();
        for (g, tp) in doomed {
            b.push(0, Some(&encode_key(g, tp)), None, &[])?;
        }
        let info = offsets_log.append_encoded(&mut b.build()?)?;
        offsets_log.flush_to(info.last_offset + 1)?;
        let mut st = self.state.lock();
        for (g, tp) in doomed {
            if let Some(m) = st.committed.get_mut(g) {
                m.remove(tp);
                if m.is_empty() {
                    st.committed.remove(g);
                }
            }
        }
        Ok(())
    }

    /// The commit of `tp` for `group`, as written (the store checks it against the
    /// topic and its epochs).
    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Option<Commit> {
        self.state
            .lock()
            .committed
            .get(group)
            .and_then(|g| g.get(tp).copied())
    }

    /// Groups with live members or committed offsets, sorted.
    pub(crate) fn list(&self) -> Vec<String> {
        let st = self.state.lock();
        let mut names: BTreeSet<String> = st.committed.keys().cloned().collect();
        names.extend(
            st.groups
                .iter()
                .filter(|(_, g)| !g.members.is_empty())
                .map(|(n, _)| n.clone()),
        );
        names.into_iter().collect()
    }

    /// Members, their assignments and the group's committed offsets (`None` for an
    /// unknown group). `check` gives a commit's offset as the store applies it and the
    /// partition's log end offset, or `None` for a commit of a deleted topic (left out).
    pub(crate) fn describe(
        &self,
        group: &str,
        check: &CommitCheck<'_>,
    ) -> Option<GroupDescription> {
        let st = self.state.lock();
        let g = st.groups.get(group);
        let committed = st.committed.get(group);
        if g.is_none_or(|g| g.members.is_empty()) && committed.is_none() {
            return None;
        }
        let members: Vec<MemberDescription> = g
            .map(|g| {
                g.members
                    .iter()
                    .map(|(id, m)| MemberDescription {
                        member_id: id.clone(),
                        client_id: m.client_id.clone(),
                        subscription: m.subscription.iter().cloned().collect(),
                        assignment: m.owned.iter().cloned().collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stable = g.is_none_or(|g| g.members.values().all(|m| m.owned == m.target));
        let offsets = committed
            .map(|c| {
                c.iter()
                    .filter_map(|(tp, c)| {
                        let (offset, log_end_offset) = check(tp, c)?;
                        Some(CommittedOffset {
                            partition: tp.clone(),
                            offset,
                            log_end_offset,
                            lag: log_end_offset.saturating_sub(offset).max(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupDescription {
            group_id: group.to_string(),
            state: if members.is_empty() {
                "Empty"
            } else if stable {
                "Stable"
            } else {
                "PreparingRebalance"
            },
            generation: g.map_or(0, |g| g.generation),
            assignor: g.map_or(Assignor::default(), |g| g.assignor),
            members,
            offsets,
        })
    }

    /// The partition of the internal committed-offsets topic.
    pub(crate) fn offsets_partition(&self, catalog: &Catalog) -> Result<Arc<PartitionState>> {
        catalog.partition(OFFSETS_TOPIC, 0)
    }

    /// The offset `group` resumes `tp` from, if it committed one for the topic as it is
    /// now (see [`Commit::applied_to`]).
    pub(crate) fn resume_offset(
        &self,
        catalog: &Catalog,
        group: &str,
        tp: &TopicPartition,
    ) -> Option<i64> {
        let c = self.committed(group, tp)?;
        c.applied_to(&*catalog.partition(tp.topic(), tp.partition()).ok()?)
    }

    /// Forgets the committed offsets of deleted topic `topic` (tombstones in the offsets
    /// topic), under the commit lock.
    pub(crate) fn forget_topic(&self, catalog: &Catalog, topic: &str) -> Result<()> {
        self.forget_topic_in(&*self.offsets_partition(catalog)?, topic)
    }

    /// [`describe`](Self::describe) with each commit applied to its partition as it is
    /// now, and the lag to its log end.
    pub(crate) fn describe_with_lag(
        &self,
        catalog: &Catalog,
        group: &str,
    ) -> Option<GroupDescription> {
        let check = |tp: &TopicPartition, c: &Commit| {
            let p = catalog.partition(tp.topic(), tp.partition()).ok()?;
            Some((c.applied_to(&p)?, p.log_end_offset()))
        };
        self.describe(group, &check)
    }

    /// Loads committed offsets at open and checks each against its partition: offsets
    /// of another topic incarnation are dropped, offsets past the records of their epoch
    /// (lost in a crash) are lowered to where those records end. Commits written before
    /// topic ids existed belong to the topics given an id at this open (`adopted`), and
    /// are written again with it. What it did goes to `report`.
    pub(crate) fn load_checked(
        &self,
        catalog: &Catalog,
        adopted: &[String],
        report: &mut StoreRecoveryReport,
    ) -> Result<()> {
        let offsets = self.offsets_partition(catalog)?;
        self.load(&offsets)?;
        let dropped = std::cell::Cell::new(0usize);
        let checked = self.check_loaded(&|tp, c| {
            let adopt = c.topic_id.is_none() && adopted.iter().any(|t| t == tp.topic());
            let mut c = *c;
            if adopt {
                c.topic_id = catalog.topic(tp.topic()).ok().map(|t| t.id);
            }
            let applied = catalog
                .partition(tp.topic(), tp.partition())
                .ok()
                .and_then(|p| c.applied_to(&p));
            match applied {
                Some(offset) => Verdict::Keep(offset),
                None => {
                    dropped.set(dropped.get() + 1);
                    Verdict::Drop
                }
            }
        });
        report.offsets_dropped = dropped.get();
        for (group, partition, from, to) in checked.lowered {
            report.offsets_reset.push(CommittedOffsetReset {
                group,
                partition,
                from,
                to,
            });
        }
        let stale: Vec<_> = checked
            .stale
            .into_iter()
            .filter_map(|(g, tp, mut c)| {
                c.topic_id = Some(catalog.topic(tp.topic()).ok()?.id);
                Some((g, tp, c))
            })
            .collect();
        self.rewrite(&offsets, &stale, catalog.now_ms())?;
        self.forget(&offsets, &checked.dropped)?;
        // Every commit of the adopted topics now names their id.
        for name in adopted {
            catalog.finish_adoption(name)?;
        }
        Ok(())
    }
}

impl Commit {
    /// Where this commit applies to partition `p`: `None` if it belongs to another topic
    /// incarnation (the topic was deleted and created again); otherwise its offset,
    /// lowered to where the records of its epoch end if records it pointed past were
    /// removed (KIP-320).
    pub(crate) fn applied_to(&self, p: &PartitionState) -> Option<i64> {
        (self.topic_id == Some(p.topic_id)).then(|| match p.epoch_end_offset(self.epoch) {
            Some(end) => self.offset.min(end),
            None => self.offset,
        })
    }
}

/// Recomputes every member's target and bumps the generation.
fn rebalance(g: &mut Group, counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>) {
    let subscribed: BTreeSet<String> = g
        .members
        .values()
        .flat_map(|m| m.subscription.iter().cloned())
        .collect();
    g.topology = counts(&subscribed);
    let input: BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)> = g
        .members
        .iter()
        .map(|(id, m)| (id.clone(), (m.subscription.clone(), m.target.clone())))
        .collect();
    let mut targets = assign(g.assignor, &input, &g.topology);
    for (id, m) in g.members.iter_mut() {
        m.target = targets.remove(id).unwrap_or_default();
    }
    g.generation = g.generation.wrapping_add(1);
}

/// Assigns every partition of `counts` to exactly one member subscribed to its topic
/// (partitions of topics nobody subscribes to are left out). `members` maps a member id
/// to (subscription, current assignment); the current assignment matters only to the
/// sticky assignor.
pub fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>,
    counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let eligible = |topic: &str| -> Vec<&String> {
        members
            .iter()
            .filter(|(_, (subs, _))| subs.contains(topic))
            .map(|(id, _)| id)
            .collect()
    };
    match assignor {
        Assignor::Range => {
            for (topic, &n) in counts {
                let ms = eligible(topic);
                if ms.is_empty() {
                    continue;
                }
                let (per, extra) = (n as usize / ms.len(), n as usize % ms.len());
                let mut p = 0;
                for (i, id) in ms.iter().enumerate() {
                    let len = per + usize::from(i < extra);
                    for q in p..p + len {
                        out.get_mut(*id)
                            .expect("member")
                            .insert(TopicPartition::new(topic.clone(), q as i32));
                    }
                    p += len;
                }
            }
        }
        Assignor::RoundRobin => {
            let ids: Vec<&String> = members.keys().collect();
            let mut next = 0usize;
            for (topic, &n) in counts {
                if eligible(topic).is_empty() {
                    continue;
                }
                for p in 0..n {
                    while !members[ids[next % ids.len()]].0.contains(topic) {
                        next += 1;
                    }
                    out.get_mut(ids[next % ids.len()])
                        .expect("member")
                        .insert(TopicPartition::new(topic.clone(), p));
                    next += 1;
                }
            }
        }
        Assignor::CooperativeSticky => {
            let all: Vec<TopicPartition> = counts
                .iter()
                .filter(|(t, _)| !eligible(t).is_empty())
                .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
                .collect();
            let m = members.len().max(1);
            let base = all.len() / m;
            let mut extra_slots = all.len() % m;
            let valid = |id: &String, tp: &TopicPartition| {
                members[id].0.contains(tp.topic())
                    && counts.get(tp.topic()).is_some_and(|&n| tp.partition() < n)
            };
            let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
            // Keep up to `base` current partitions each, then one more while slots last.
            for (id, (_, current)) in members {
                let mine = out.get_mut(id).expect("member");
                for tp in current.iter().filter(|tp| valid(id, tp)) {
                    if mine.len() == base {
                        break;
                    }
                    // (Current assignments never overlap; should they, one owner keeps it.)
                    if taken.insert(tp.clone()) {
                        mine.insert(tp.clone());
                    }
                }
            }
            for (id, (_, current)) in members {
                if extra_slots == 0 {
                    break;
                }
                if let Some(tp) = current
                    .iter()
                    .find(|tp| valid(id, tp) && !taken.contains(*tp))
                    && out[id].len() == base
                {
                    taken.insert(tp.clone());
                    out.get_mut(id).expect("member").insert(tp.clone());
                    extra_slots -= 1;
                }
            }
            // The rest to the least-loaded eligible member.
            for tp in all {
                if taken.contains(&tp) {
                    continue;
                }
                let best = eligible(tp.topic())
                    .into_iter()
                    .min_by_key(|id| out[*id].len())
                    .expect("eligible checked above")
                    .clone();
                out.get_mut(&best).expect("member").insert(tp);
            }
            balance(members, counts, &mut out);
        }
    }
    out
}

/// Evens out a sticky assignment that mixed subscriptions left uneven (a member of
/// topics only some members read may keep partitions that the others could take). Per
/// topic, while the most loaded member holding one of its partitions has at least two
/// more partitions than the least loaded member subscribed to it, one of those
/// partitions moves over, preferring partitions the holder did not own before (so fewer
/// owners change). When no topic moves anything, no member holds a partition that a
/// member with two fewer could take. Every move lowers the sum of squared loads, so this
/// ends; a move costs one scan of the topic's subscribers.
fn balance(
    members: &BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>,
    counts: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
) {
    let subscribers: Vec<(std::ops::RangeInclusive<TopicPartition>, Vec<&String>)> = counts
        .keys()
        .map(|t| {
            let of_topic = TopicPartition::new(t.as_str(), i32::MIN)
                ..=TopicPartition::new(t.as_str(), i32::MAX);
            let ids = members
                .iter()
                .filter(|(_, (subs, _))| subs.contains(t))
                .map(|(id, _)| id)
                .collect();
            (of_topic, ids)
        })
        .filter(|(_, ids): &(_, Vec<&String>)| ids.len() > 1)
        .collect();
    let load = |out: &BTreeMap<String, BTreeSet<TopicPartition>>, id: &String| out[id].len();
    loop {
        let mut moved = false;
        for (of_topic, ids) in &subscribers {
            loop {
                let light = *ids
                    .iter()
                    .min_by_key(|id| load(out, id))
                    .expect("two or more subscribers");
                let Some(heavy) = ids
                    .iter()
                    .filter(|id| out[**id].range(of_topic.clone()).next().is_some())
                    .max_by_key(|id| load(out, id))
                    .copied()
                else {
                    break;
                };
                if load(out, heavy) < load(out, light) + 2 {
                    break;
                }
                let held = &out[heavy];
                let tp = held
                    .range(of_topic.clone())
                    .find(|tp| !members[heavy].1.contains(*tp))
                    .or_else(|| held.range(of_topic.clone()).next())
                    .expect("holds one")
                    .clone();
                out.get_mut(heavy).expect("member").remove(&tp);
                out.get_mut(light).expect("member").insert(tp);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

// Kafka's OffsetCommitKey v1 and OffsetCommitValue v3 schemas, so the records in the
// offsets topic read the same as Kafka's.

/// The longest string the schemas hold (an int16 length): the limit of a group id.
pub(crate) const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// Callers pass group ids (validated against [`MAX_STRING_BYTES`]) and topic names
/// (at most 249 bytes), so nothing is ever cut here.
fn put_string(b: &mut BytesMut, s: &str) {
    let n = s.len().min(MAX_STRING_BYTES);
    b.put_i16(n as i16);
    b.put_slice(&s.as_bytes()[..n]);
}

fn get_string(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let n = usize::try_from(b.get_i16()).ok()?;
    if b.remaining() < n {
        return None;
    }
    String::from_utf8(b.split_to(n).to_vec()).ok()
}

fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(8 + group.len() + tp.topic().len());
    b.put_i16(1);
    put_string(&mut b, group);
    put_string(&mut b, tp.topic());
    b.put_i32(tp.partition());
    b.to_vec()
}

fn decode_key(mut b: Bytes) -> Option<(String, TopicPartition)> {
    if b.remaining() < 2 || !matches!(b.get_i16(), 0 | 1) {
        return None;
    }
    let group = get_string(&mut b)?;
    let topic = get_string(&mut b)?;
    if b.remaining() != 4 {
        return None;
    }
    Some((group, TopicPartition::new(topic, b.get_i32())))
}

fn encode_value(offset: i64, epoch: i32, now_ms: i64) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(26);
    b.put_i16(3);
    b.put_i64(offset);
    b.put_i32(epoch); // leader epoch
    put_string(&mut b, ""); // metadata
    b.put_i64(now_ms);
    b.to_vec()
}

/// The committed offset and leader epoch of an OffsetCommitValue (-1 where the version
/// has no epoch); `None` if it is not one (too short, or an offset no commit makes:
/// commits are at least 0).
fn decode_value(mut b: Bytes) -> Option<(i64, i32)> {
    if b.remaining() < 10 {
        return None;
    }
    let version = b.get_i16();
    let offset = Some(b.get_i64()).filter(|&o| o >= 0)?;
    let epoch = if version >= 3 && b.remaining() >= 4 {
        b.get_i32()
    } else {
        -1
    };
    Some((offset, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let tp = TopicPartition::new("clicks", 3);
        let (g, t) = decode_key(Bytes::from(encode_key("analytics", &tp))).unwrap();
        assert_eq!((g.as_str(), t), ("analytics", tp));
        assert_eq!(
            decode_value(Bytes::from(encode_value(42, 3, 7))),
            Some((42, 3))
        );
        assert_eq!(decode_key(Bytes::from_static(b"\x00\x01\x00")), None);
    }

    type Members = BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)>;

    /// Every subscribed partition has exactly one owner, who subscribes to its topic,
    /// and no member holds two more partitions than a member that could take one.
    fn check_complete_and_balanced(
        members: &Members,
        counts: &BTreeMap<String, i32>,
        out: &BTreeMap<String, BTreeSet<TopicPartition>>,
    ) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (id, tps) in out {
            for tp in tps {
                if !members[id].0.contains(tp.topic()) {
                    return Err(format!("{id} got {tp}"));
                }
                if !seen.insert(tp.clone()) {
                    return Err(format!("{tp} twice"));
                }
            }
        }
        for (t, &n) in counts {
            if members.values().any(|(s, _)| s.contains(t)) {
                for p in 0..n {
                    if !seen.contains(&TopicPartition::new(t.as_str(), p)) {
                        return Err(format!("{t}-{p} unassigned"));
                    }
                }
            }
        }
        for (heavy, h) in out {
            for (light, l) in out {
                if h.len() >= l.len() + 2
                    && h.iter().any(|tp| members[light].0.contains(tp.topic()))
                {
                    return Err(format!(
                        "{heavy} has {} and {light} {}, which could take one",
                        h.len(),
                        l.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// A large group with mixed subscriptions, one member the only reader of a big
    /// topic (it can give nothing away): complete and balanced.
    #[test]
    fn a_large_mixed_group_is_balanced() {
        let counts: BTreeMap<String, i32> = [("z", 1000), ("a", 500), ("b", 500)]
            .map(|(t, n)| (t.to_string(), n))
            .into();
        let subs = |ts: &[&str]| ts.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>();
        let mut members: Members = BTreeMap::new();
        members.insert("m000".into(), (subs(&["z"]), BTreeSet::new()));
        for i in 1..100 {
            let s = if i <= 50 {
                subs(&["a", "b"])
            } else {
                subs(&["a"])
            };
            members.insert(format!("m{i:03}"), (s, BTreeSet::new()));
        }
        let first = assign(Assignor::CooperativeSticky, &members, &counts);
        check_complete_and_balanced(&members, &counts, &first).unwrap();
        // A member leaves; the others keep what they had.
        members.remove("m050");
        for (id, (_, current)) in members.iter_mut() {
            *current = first[id].clone();
        }
        let second = assign(Assignor::CooperativeSticky, &members, &counts);
        check_complete_and_balanced(&members, &counts, &second).unwrap();
    }

    proptest::proptest! {
        /// Cooperative-sticky with any subscriptions (mixed ones included) and any
        /// current assignments: every subscribed partition has exactly one owner, who
        /// subscribes to its topic, and no member holds two more partitions than another
        /// member that could take one of them.
        #[test]
        fn sticky_assignments_are_complete_and_balanced(
            subs in proptest::collection::vec(1u8..8, 1..7),
            counts in proptest::collection::vec(0i32..9, 3),
            owned in proptest::collection::vec(proptest::collection::vec((0usize..3, 0i32..9), 0..10), 7),
        ) {
            let topics = ["a", "b", "c"];
            let counts: BTreeMap<String, i32> =
                topics.iter().map(|t| t.to_string()).zip(counts).collect();
            let members: BTreeMap<String, (BTreeSet<String>, BTreeSet<TopicPartition>)> = subs
                .iter()
                .enumerate()
                .map(|(i, mask)| {
                    let sub: BTreeSet<String> = (0..3)
                        .filter(|b| mask & (1 << b) != 0)
                        .map(|b| topics[b].to_string())
                        .collect();
                    let current = owned[i]
                        .iter()
                        .map(|&(t, p)| TopicPartition::new(topics[t], p))
                        .collect();
                    (format!("m{i}"), (sub, current))
                })
                .collect();
            let out = assign(Assignor::CooperativeSticky, &members, &counts);
            let checked = check_complete_and_balanced(&members, &counts, &out);
            proptest::prop_assert!(checked.is_ok(), "{}: {out:?}", checked.unwrap_err());
        }
    }
}
