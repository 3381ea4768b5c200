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

mod admin;
mod assign;
mod expiry;
mod memory;
mod offsets;
mod txn_offsets;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub(crate) use crate::format::schema::MAX_STRING_BYTES;
pub(crate) use admin::planned_change;
pub use admin::{OffsetChange, OffsetSpec};
pub use assign::assign;
use expiry::expire;
use offsets::CommitCheck;
pub(crate) use offsets::{Commit, OffsetsReplay};

use crate::catalog::{Catalog, TopicId};
use crate::error::{Error, Result};
use crate::topic::TopicPartition;

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
    /// What it owns, each with the generation in which it acquired it.
    owned: BTreeMap<TopicPartition, i32>,
    target: BTreeSet<TopicPartition>,
    last_poll: Instant,
    max_poll_interval: Duration,
    /// Waiting in `Consumer::recv` for records: alive however long that takes (as a
    /// Kafka consumer blocked in `poll` keeps its membership).
    waiting: bool,
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
    /// Where this session wrote a tombstone for a group's partition (`delete_group`, a
    /// deleted topic): a commit written before it but applied after it (a commit
    /// applies once its fsync returns, outside the commit lock) must stay forgotten,
    /// as it is when the offsets topic is read again. Kept while such a commit may
    /// still apply (see `memory.rs`).
    forgotten: HashMap<(String, TopicPartition), i64>,
    /// Positions of plain commits appended and not applied yet (their fsync runs).
    inflight: BTreeMap<i64, u32>,
    /// The partitions of those commits, by group (how many commits of each): a group's
    /// deletion tombstones them too, or they would apply after it.
    inflight_keys: HashMap<String, BTreeMap<TopicPartition, u32>>,
    /// Offsets written by transactions not yet decided, by group and partition: the
    /// topic incarnation of each (see `txn_offsets`).
    pending_txn: HashMap<String, BTreeMap<TopicPartition, Vec<Option<TopicId>>>>,
    next_member: u64,
}

/// Members, assignments and committed offsets of every group in a store.
#[derive(Default)]
pub(crate) struct Coordinator {
    state: Mutex<State>,
    /// Called when a member starts waiting in `recv`: the store's timer (see
    /// `expiry.rs`) must then watch its group's other members.
    on_wait: Mutex<Option<Box<dyn Fn() + Send + std::marker::Sync>>>,
    /// Serializes commits so the in-memory map follows the log's order.
    commit_lock: Mutex<()>,
    /// Held by a group administration call from its check that the group has no member
    /// to its durable change, and by every join: no member joins in between.
    admin: Mutex<()>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Why `group` cannot be a group id, if it cannot: empty, or longer than a Kafka
/// string (it is stored as one in `__consumer_offsets`).
pub(crate) fn invalid_group_id(group: &str) -> Option<String> {
    if group.is_empty() {
        return Some("must not be empty".into());
    }
    (group.len() > MAX_STRING_BYTES).then(|| {
        format!(
            "is {} bytes; at most {MAX_STRING_BYTES} (a Kafka string's int16 length)",
            group.len()
        )
    })
}

/// `InvalidArgument` for a name that cannot be a group's (it would be stored cut
/// short, as another group's).
pub(crate) fn check_group(group: &str) -> crate::Result<()> {
    match invalid_group_id(group) {
        Some(reason) => Err(crate::Error::InvalidArgument {
            name: "group",
            reason: format!("group id {reason}"),
        }),
        None => Ok(()),
    }
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
        /// This poll rebalanced the group (it expired members, or partition counts
        /// changed): the other members, maybe asleep in `recv`, must be woken.
        rebalanced: bool,
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

/// A consumer's place in its group, for
/// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
/// (Kafka's `ConsumerGroupMetadata`); from
/// [`Consumer::group_metadata`](crate::Consumer::group_metadata).
///
/// Equal when the group, generation and member id are (as Kafka's).
#[derive(Debug, Clone)]
pub struct ConsumerGroupMetadata {
    group_id: String,
    generation_id: i32,
    member_id: String,
    /// The topic incarnation of each partition the consumer was assigned when the
    /// metadata was taken (none from [`new`](Self::new)): offsets sent with it are for
    /// the records that consumer read, never for a topic of the same name created
    /// since. By partition: a consumer moves each of a recreated topic's partitions to
    /// the new topic when it next reads it, so they may differ.
    topic_ids: BTreeMap<TopicPartition, TopicId>,
}

impl PartialEq for ConsumerGroupMetadata {
    fn eq(&self, other: &Self) -> bool {
        (&self.group_id, self.generation_id, &self.member_id)
            == (&other.group_id, other.generation_id, &other.member_id)
    }
}

impl Eq for ConsumerGroupMetadata {}

impl ConsumerGroupMetadata {
    /// The metadata of `group_id` for a consumer outside the group's membership
    /// (generation -1, no member id), as Kafka's `new ConsumerGroupMetadata(groupId)`.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self::of_member(group_id.into(), -1, String::new(), BTreeMap::new())
    }

    pub(crate) fn of_member(
        group_id: String,
        generation_id: i32,
        member_id: String,
        topic_ids: BTreeMap<TopicPartition, TopicId>,
    ) -> Self {
        ConsumerGroupMetadata {
            group_id,
            generation_id,
            member_id,
            topic_ids,
        }
    }

    /// Whether offsets of `tp` sent with this metadata are for another incarnation of
    /// its topic than `current`: the consumer was assigned `tp` in another one, or (not
    /// assigned `tp`) any partition of the topic in another one.
    pub(crate) fn read_another_incarnation(&self, tp: &TopicPartition, current: TopicId) -> bool {
        match self.topic_ids.get(tp) {
            Some(id) => *id != current,
            None => self
                .topic_ids
                .iter()
                .any(|(other, id)| other.topic() == tp.topic() && *id != current),
        }
    }

    /// The group id.
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The generation the consumer last joined (-1 outside the membership).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The member id (empty outside the membership).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
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
    /// Adds a member; returns its id.
    ///
    /// # Errors
    /// `InvalidConfig` if the group's members use another assignor (Kafka's
    /// `INCONSISTENT_GROUP_PROTOCOL`: the group's protocol must suit every member).
    pub(crate) fn join(
        &self,
        group: &str,
        client_id: &str,
        subscription: BTreeSet<String>,
        assignor: Assignor,
        max_poll_interval: Duration,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) -> Result<String> {
        let _admin = self.admin.lock();
        let mut st = self.state.lock();
        // Members that stopped polling are gone first: one would otherwise keep a
        // member with another assignor out (the rebalance below follows anyway).
        if let Some(g) = st.groups.get_mut(group)
            && expire(g, Instant::now())
            && !g.members.is_empty()
            && g.assignor != assignor
        {
            // Refused below: the partitions of the members just removed go to the
            // others now, not at some later change of the group.
            rebalance(g, counts);
        }
        if let Some(g) = st.groups.get(group)
            && !g.members.is_empty()
            && g.assignor != assignor
        {
            return Err(Error::config(
                "assignor",
                format!(
                    "group {group}'s members use {:?}, this consumer {assignor:?}: a group's \
                     members must share one (Kafka's INCONSISTENT_GROUP_PROTOCOL)",
                    g.assignor
                ),
            ));
        }
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
                owned: BTreeMap::new(),
                target: BTreeSet::new(),
                last_poll: Instant::now(),
                max_poll_interval,
                waiting: false,
            },
        );
        rebalance(g, counts);
        Ok(id)
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
        let expired = expire(g, now);
        let subscribed: BTreeSet<String> = g
            .members
            .values()
            .flat_map(|m| m.subscription.iter().cloned())
            .collect();
        let rebalanced = expired || counts(&subscribed) != g.topology;
        if rebalanced {
            rebalance(g, counts);
        }
        let generation = g.generation;
        let m = &g.members[member];
        let partitions: Vec<TopicPartition> = if g.assignor.is_eager() {
            if known_generation == generation {
                Vec::new()
            } else {
                m.owned.keys().cloned().collect()
            }
        } else {
            m.owned
                .keys()
                .filter(|tp| !m.target.contains(*tp))
                .cloned()
                .collect()
        };
        Sync::Revoke {
            generation,
            partitions,
            rebalanced,
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

    /// Takes the member's target partitions that nobody else owns, in `generation` (the
    /// one the member just synced to); returns them. Nothing if the group has moved on
    /// since (a rebalance during the member's revoke callback): its target is the new
    /// generation's, which the member takes at its next sync, as Kafka's member
    /// consumes only its own generation's assignment. (Taken now, they would be the
    /// member's since a generation its offsets' metadata does not name yet.) `None` if
    /// the member is no longer in the group (it was expired since its `sync`, during its
    /// revoke callback): what it still holds may be another member's now.
    pub(crate) fn acquire(
        &self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Option<Vec<TopicPartition>> {
        let mut st = self.state.lock();
        let g = st.groups.get_mut(group)?;
        if g.generation != generation {
            g.members.get(member)?;
            return Some(Vec::new());
        }
        let m = g.members.get(member)?;
        let wanted: Vec<TopicPartition> = m
            .target
            .iter()
            .filter(|tp| !m.owned.contains_key(*tp))
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Some(wanted);
        }
        let taken: BTreeSet<&TopicPartition> = g
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member)
            .flat_map(|(_, m)| m.owned.keys())
            .collect();
        let got: Vec<TopicPartition> = wanted
            .into_iter()
            .filter(|tp| !taken.contains(tp))
            .collect();
        let m = g.members.get_mut(member).expect("checked above");
        m.owned
            .extend(got.iter().map(|tp| (tp.clone(), generation)));
        Some(got)
    }

    /// The generation in which `member` acquired `tp`, if it owns it now (commits of
    /// other partitions are refused).
    fn owned_since(st: &State, group: &str, member: &str, tp: &TopicPartition) -> Option<i32> {
        st.groups
            .get(group)
            .and_then(|g| g.members.get(member))
            .and_then(|m| m.owned.get(tp).copied())
    }

    /// Whether `member` is (still) a member of `group`: not removed for exceeding its
    /// `max_poll_interval_ms`, nor by an admin operation that found it stale.
    pub(crate) fn is_member(&self, group: &str, member: &str) -> bool {
        self.state
            .lock()
            .groups
            .get(group)
            .is_some_and(|g| g.members.contains_key(member))
    }

    /// Marks `member` of `group` as waiting for records in an async receive (or no
    /// longer); either way it counts as a poll now.
    pub(crate) fn set_waiting(&self, group: &str, member: &str, waiting: bool) {
        {
            let mut st = self.state.lock();
            if let Some(m) = st
                .groups
                .get_mut(group)
                .and_then(|g| g.members.get_mut(member))
            {
                m.waiting = waiting;
                m.last_poll = Instant::now();
            }
        }
        if waiting && let Some(on_wait) = &*self.on_wait.lock() {
            on_wait();
        }
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
                        assignment: m.owned.keys().cloned().collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stable = g.is_none_or(|g| g.members.values().all(|m| m.owned.keys().eq(&m.target)));
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
}

/// Recomputes every member's target and bumps the generation.
fn rebalance(g: &mut Group, counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>) {
    let _span = tracing::debug_span!(
        "rebalance",
        generation = g.generation.wrapping_add(1),
        members = g.members.len()
    )
    .entered();
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
    tracing::debug!(generation = g.generation, "consumer group rebalanced");
}
