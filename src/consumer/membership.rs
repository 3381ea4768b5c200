//! A consumer's part in its group's protocol: subscribing and leaving, and at each
//! poll revoking what the group took away and acquiring what it gave, around the
//! [`RebalanceListener`] callbacks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::{Assigned, Consumer, Membership, TopicPartition};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::groups;

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

fn counts_fn(catalog: &Catalog) -> impl Fn(&BTreeSet<String>) -> BTreeMap<String, i32> + '_ {
    move |names| catalog.partition_counts(names)
}

impl Consumer {
    /// Joins the group (needs `group_id`) for these topics; the group assigns
    /// partitions at the next `poll`. Replaces an earlier subscription or assignment.
    /// No topics at all is [`unsubscribe`](Self::unsubscribe), as in Kafka: the
    /// consumer leaves its group.
    ///
    /// # Errors
    /// `InvalidArgument` without a group, for an invalid topic name, or inside a
    /// [`RebalanceListener`]; `InvalidConfig` if the group's members use another
    /// [`Assignor`](crate::Assignor) (Kafka's `INCONSISTENT_GROUP_PROTOCOL`); `Closed`.
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
        if topics.is_empty() {
            return self.unsubscribe();
        }
        let counts = counts_fn(&self.catalog);
        match &self.membership {
            Some(m) => self
                .groups
                .resubscribe(&m.group, &m.member_id, topics.clone(), &counts),
            None => {
                let joined = self.groups.join(
                    &group,
                    &self.config.client_id,
                    topics.clone(),
                    self.config.assignor,
                    Duration::from_millis(self.config.max_poll_interval_ms),
                    &counts,
                );
                // Also refused: the join may have removed stale members and handed
                // their partitions to the others, who may be waiting.
                self.catalog.notifier().notify();
                let member_id = joined?;
                self.membership = Some(Membership {
                    group,
                    member_id,
                    generation: -1,
                });
            }
        }
        // A manual assignment is replaced only once the join succeeded: a refused one
        // leaves the consumer reading what it read.
        if self.subscription.is_none() {
            self.assigned.clear();
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
    /// manual assignment. A member already removed from the group for not polling
    /// within `max_poll_interval_ms` has lost its partitions instead: the listener's
    /// `on_partitions_lost` runs, and nothing is committed.
    ///
    /// # Errors
    /// A failed auto-commit; `InvalidArgument` inside a [`RebalanceListener`].
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.check_not_in_callback("unsubscribe")?;
        let mut result = Ok(());
        if let Some(m) = &self.membership {
            let owned: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            if self.groups.is_member(&m.group, &m.member_id) {
                result = self.revoke(&owned);
            } else if !owned.is_empty() {
                // Removed from the group already (it stopped polling for too long, and
                // another member may own its partitions now): lost, not revoked, and
                // nothing committed (Kafka's `onPartitionsLost` at leave).
                self.with_listener(|l, c| l.on_partitions_lost(c, &owned));
            }
            let m = self.membership.take().expect("checked");
            let counts = counts_fn(&self.catalog);
            self.groups.leave(&m.group, &m.member_id, &counts);
            self.catalog.notifier().notify();
        }
        self.subscription = None;
        self.assigned.clear();
        result
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

    pub(super) fn with_listener(
        &mut self,
        f: impl FnOnce(&mut dyn RebalanceListener, &mut Consumer),
    ) {
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
    pub(super) fn revoke(&mut self, partitions: &[TopicPartition]) -> Result<()> {
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

    /// The group removed this member: its partitions are lost (they may be another
    /// member's already), then it joins again and syncs.
    fn rejoin_expired(&mut self) -> Result<()> {
        let lost: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        if !lost.is_empty() {
            self.with_listener(|l, c| l.on_partitions_lost(c, &lost));
        }
        self.assigned.clear();
        self.membership = None;
        // The subscription stays if the join is refused (the group took another
        // assignor meanwhile): each poll tries again, and reports the refusal.
        let topics = self.subscription.clone().unwrap_or_default();
        self.subscribe(topics)?;
        self.sync_group()
    }

    /// Brings the group assignment up to date (revoke, acquire, rejoin if expired).
    pub(super) fn sync_group(&mut self) -> Result<()> {
        let Some(m) = &self.membership else {
            if self.subscription.is_some() {
                // Subscribed, out of the group: an earlier rejoin was refused.
                return self.rejoin_expired();
            }
            return Ok(());
        };
        let (group, member_id, known) = (m.group.clone(), m.member_id.clone(), m.generation);
        let counts = counts_fn(&self.catalog);
        let sync = self.groups.sync(&group, &member_id, known, &counts);
        drop(counts);
        let result;
        match sync {
            groups::Sync::Expired => return self.rejoin_expired(),
            groups::Sync::Revoke {
                generation,
                partitions,
                rebalanced,
            } => {
                if rebalanced {
                    // Members asleep in `recv` (which only the timer re-syncs) may
                    // have got partitions: wake them to take them.
                    self.catalog.notifier().notify();
                }
                result = self.revoke(&partitions);
                if let Some(m) = &mut self.membership {
                    m.generation = generation;
                }
            }
        }
        let generation = self.membership.as_ref().map_or(-1, |m| m.generation);
        let Some(got) = self.groups.acquire(&group, &member_id, generation) else {
            // Expired while its revoke callback ran: the partitions it kept may have
            // gone to another member already.
            let rejoined = self.rejoin_expired();
            return result.and(rejoined);
        };
        let mut gone = Vec::new();
        for tp in &got {
            match self.catalog.partition(tp.topic(), tp.partition()) {
                Ok(state) => {
                    self.assigned.insert(
                        tp.clone(),
                        Assigned {
                            state,
                            position: None,
                            sought: None,
                            paused: false,
                            buffer: VecDeque::new(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("assigned {tp}, which no longer exists: {e}");
                    gone.push(tp.clone());
                }
            }
        }
        if !gone.is_empty() {
            // Owned by nobody again: a topic created again under the name (with the
            // same count, so no rebalance) is taken at the next sync.
            self.groups.release(&group, &member_id, &gone);
        }
        let got: Vec<TopicPartition> = got.into_iter().filter(|tp| !gone.contains(tp)).collect();
        if !got.is_empty() {
            self.with_listener(|l, c| l.on_partitions_assigned(c, &got));
        }
        result
    }
}
