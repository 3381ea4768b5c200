//! Group administration, as Kafka's `kafka-consumer-groups` does it: resetting a
//! group's committed offsets and deleting a group, both refused while the group has
//! live members (Kafka's `GroupNotEmptyException`): a running member would go on from
//! its own position and overwrite the change with its next commit.

use std::collections::BTreeMap;

use super::offsets::Commit;
use super::{Coordinator, State, check_group};
use crate::catalog::{Catalog, PartitionState};
use crate::error::{Error, Result};
use crate::topic::TopicPartition;

/// Where [`Store::alter_group_offsets`](crate::Store::alter_group_offsets) moves a
/// group's committed offsets (the options of `kafka-consumer-groups --reset-offsets`).
/// A target outside the partition's records is moved to its nearest end, as Kafka does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The partition's log start offset (`--to-earliest`).
    Earliest,
    /// The partition's log end offset (`--to-latest`).
    Latest,
    /// The first offset whose timestamp is at least this many milliseconds since the
    /// Unix epoch, or the log end if none is (`--to-datetime`). Not negative (Kafka's
    /// negative times are special offsets): refused with `InvalidArgument`.
    Timestamp(i64),
    /// This offset (`--to-offset`).
    Offset(i64),
    /// The committed offset moved by this many records, backwards if negative
    /// (`--shift-by`); a partition without a committed offset is an error.
    ShiftBy(i64),
}

/// One partition of a reset: the offset the group had committed and the one it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetChange {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset before (as it applies to the partition now), if any.
    pub current: Option<i64>,
    /// The offset committed by the reset.
    pub new: i64,
}

/// Where `to` moves `group`'s offset of `tp`, whose records are `log` now (its current
/// committed offset `current`; `at_time` finds the first record at or after a
/// timestamp): kept within `log.start..=log.end`.
pub(crate) fn planned_change(
    group: &str,
    tp: &TopicPartition,
    to: OffsetSpec,
    current: Option<i64>,
    log: std::ops::Range<i64>,
    at_time: impl FnOnce(i64) -> Result<Option<i64>>,
) -> Result<OffsetChange> {
    let target = match to {
        OffsetSpec::Earliest => log.start,
        OffsetSpec::Latest => log.end,
        OffsetSpec::Timestamp(ts) => {
            crate::error::check_target_time(ts)?;
            at_time(ts)?.unwrap_or(log.end)
        }
        OffsetSpec::Offset(o) => o,
        OffsetSpec::ShiftBy(n) => current
            .ok_or_else(|| Error::InvalidArgument {
                name: "shift_by",
                reason: format!("group `{group}` has no committed offset for {tp} to shift"),
            })?
            .saturating_add(n),
    };
    Ok(OffsetChange {
        partition: tp.clone(),
        current,
        // (A read-only view of a partition whose segments are gone can find its start
        // past its end: the plan stays at the start.)
        new: target.clamp(log.start, log.end.max(log.start)),
    })
}

impl Coordinator {
    /// `GroupNotEmpty` if `group` has live members: those that polled within their
    /// `max_poll_interval_ms` or wait in `recv`. Otherwise the stale members left (the
    /// next poll of any member would have removed them) are removed here.
    pub(super) fn check_empty(&self, group: &str) -> Result<()> {
        Self::check_empty_in(&mut self.state.lock(), group)
    }

    /// [`check_empty`](Self::check_empty) under the state lock the caller holds (to note
    /// what it does next in the same hold: see `check_owned`).
    pub(super) fn check_empty_in(st: &mut State, group: &str) -> Result<()> {
        let now = std::time::Instant::now();
        let Some(g) = st.groups.get_mut(group) else {
            return Ok(());
        };
        let members = g
            .members
            .values()
            .filter(|m| super::expiry::is_live(m, now))
            .count();
        if members > 0 {
            return Err(Error::GroupNotEmpty {
                group: group.to_string(),
                members,
            });
        }
        // Every member is stale: removed now, so that what the caller is about to do
        // (reset or delete the offsets, a commit from outside the group) is not undone
        // by one of them. Its commits are refused from here on, and its next poll
        // rejoins with its partitions lost, reading from the new offsets; nobody is
        // left to rebalance.
        if !g.members.is_empty() {
            g.members.clear();
            g.generation += 1;
        }
        Ok(())
    }

    /// The offsets `to` gives each of `partitions` for `group`, without changing
    /// anything.
    pub(crate) fn plan_offsets(
        &self,
        catalog: &Catalog,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<OffsetChange>> {
        let plan = self.plan_on(catalog, group, partitions, to)?;
        Ok(plan.into_iter().map(|(change, _)| change).collect())
    }

    /// [`plan_offsets`](Self::plan_offsets), with the partition each change was planned
    /// on.
    fn plan_on(
        &self,
        catalog: &Catalog,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<(OffsetChange, std::sync::Arc<PartitionState>)>> {
        check_group(group)?;
        let mut plan = Vec::with_capacity(partitions.len());
        let mut planned = std::collections::BTreeSet::new();
        for tp in partitions {
            // A partition named twice is planned once.
            if !planned.insert(tp) {
                continue;
            }
            let part = catalog.partition(tp.topic(), tp.partition())?;
            let current = self.resume_offset(catalog, group, tp);
            let (start, end) = (part.log_start_offset(), part.log_end_offset());
            let at_time = |ts| Ok(part.offset_for_timestamp(ts)?.map(|(o, _)| o));
            let change = planned_change(group, tp, to, current, start..end, at_time)?;
            plan.push((change, part));
        }
        Ok(plan)
    }

    /// Commits the offsets `to` gives each of `partitions` for `group` (durable on
    /// return), unless the group has live members; returns the changes.
    pub(crate) fn alter_offsets(
        &self,
        catalog: &Catalog,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<OffsetChange>> {
        check_group(group)?;
        // No member joins from the check to the durable commit. Planned once the group
        // is found empty, under this lock: a plan made before could start from an
        // offset a member committed after it (a shift from a stale offset), or from a
        // topic deleted and created again since.
        let admin = self.admin.lock();
        self.check_empty(group)?;
        let plan = self.plan_on(catalog, group, partitions, to)?;
        let mut commits = BTreeMap::new();
        // Committed for the topic each offset was planned on: one deleted and created
        // again during the plan (DDL does not wait for this lock) is refused below,
        // never given offsets the old one's records decided.
        for (change, part) in &plan {
            let tp = &change.partition;
            let commit = Commit {
                offset: change.new,
                epoch: part.epoch(),
                topic_id: Some(part.topic_id),
                at: -1,
            };
            commits.insert(tp.clone(), commit);
        }
        let offsets = self.offsets_partition(catalog)?;
        let live = |tp: &TopicPartition, id| {
            catalog
                .partition(tp.topic(), tp.partition())
                .is_ok_and(|p| Some(p.topic_id) == id)
        };
        let committed = self.commit(&offsets, group, None, &commits, offsets.now_ms(), &live);
        // Woken once the lock is let go (a waker may poll its task inline).
        drop(admin);
        offsets.wake();
        committed.map(|()| plan.into_iter().map(|(change, _)| change).collect())
    }

    /// Forgets every committed offset of `group`, and those open transactions wrote
    /// for it (tombstones in the offsets topic, durable on return; a tombstone cancels
    /// a transaction's offsets written before it, as Kafka's group deletion does),
    /// unless the group has live members. `NotFound` for a group with neither.
    pub(crate) fn delete(&self, catalog: &Catalog, group: &str) -> Result<()> {
        check_group(group)?;
        let admin = self.admin.lock();
        self.check_empty(group)?;
        let offsets = self.offsets_partition(catalog)?;
        // Held from listing the partitions to writing their tombstones: no commit is
        // appended in between, and those appended before (not applied yet: their fsync
        // runs) are listed too, so that they stay forgotten when they apply.
        let order = self.commit_lock.lock();
        let doomed: Vec<(String, TopicPartition)> = {
            let st = self.state.lock();
            let committed = st.committed.get(group).into_iter().flat_map(|m| m.keys());
            let pending = st.pending_txn.get(group).into_iter().flat_map(|m| m.keys());
            let inflight = st
                .inflight_keys
                .get(group)
                .into_iter()
                .flat_map(|m| m.keys());
            let partitions: std::collections::BTreeSet<_> =
                committed.chain(pending).chain(inflight).collect();
            if partitions.is_empty() {
                return Err(Error::NotFound {
                    kind: "consumer group",
                    name: group.to_string(),
                });
            }
            partitions
                .into_iter()
                .map(|tp| (group.to_string(), tp.clone()))
                .collect()
        };
        self.forget_locked(&offsets, &doomed, order)?;
        drop(admin);
        offsets.wake();
        Ok(())
    }
}
