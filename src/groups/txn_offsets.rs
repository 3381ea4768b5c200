//! Offsets committed by a transaction (Kafka's `TxnOffsetCommit`): written to
//! `__consumer_offsets` as transactional records of the producer, and applied to the
//! group only when the transaction's COMMIT marker is written.
//!
//! Until the transaction is decided its offsets are pending (KIP-447's unstable
//! offsets): a read_committed consumer that gets such a partition does not start it
//! from the committed offset, which the transaction is about to move, but waits. Else
//! a partition that moved from one exactly-once worker to another while the first
//! one's transaction was open was processed again from the older offset, and both
//! outputs committed.

use std::collections::BTreeMap;

use super::Coordinator;
use super::offsets::{TOPIC_ID_HEADER, encode_key, encode_value};
use crate::catalog::{AppendInfo, PartitionState, TopicId};
use crate::error::Result;
use crate::format::{BatchBuilder, Header};
use crate::groups::Commit;
use crate::topic::TopicPartition;

impl Coordinator {
    /// Appends `offsets` of `group` as one transactional batch of the producer
    /// `(id, epoch, first sequence)` (not synced: the transaction's commit syncs it);
    /// the caller wakes `offsets_log`'s readers, appended or not. Nothing is visible through `committed` until
    /// [`apply_txn_commits`](Self::apply_txn_commits).
    ///
    /// With a `member` (its id and the generation of the metadata the offsets came
    /// with; -1 for none), it must own every partition of `offsets` now, and have owned
    /// each since that generation.
    ///
    /// # Errors
    /// `CommitFailed` for a member that does not own them; `RecordTooLarge` past the
    /// offsets topic's `max_message_bytes`; `Io`; `Closed`.
    pub(crate) fn append_txn_commits(
        &self,
        offsets_log: &PartitionState,
        group: &str,
        member: Option<(&str, i32)>,
        offsets: &BTreeMap<TopicPartition, Commit>,
        (producer_id, epoch, sequence): (i64, i16, i32),
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let mut b = BatchBuilder::new()
            .producer(producer_id, epoch, sequence)
            .transactional(true);
        for (tp, c) in offsets {
            let headers: Vec<Header> = c
                .topic_id
                .map(|id| Header::new(TOPIC_ID_HEADER, id.as_bytes().to_vec()))
                .into_iter()
                .collect();
            b.push(
                now_ms,
                Some(&encode_key(group, tp)),
                Some(&encode_value(c.offset, c.epoch, now_ms)),
                &headers,
            )?;
        }
        // In the order of other commits (see `commit`), and checked as they are: a
        // member that lost its partitions cannot commit for them (KIP-447's fencing
        // of zombie consumers).
        let order = self.commit_lock.lock();
        // Pending from the check on, in the same hold of the state lock (see
        // `check_owned`): a member given one of these partitions after the check waits
        // for the transaction's decision, as Kafka's pending offsets make it.
        {
            let mut st = self.state.lock();
            if let Some((member, generation)) = member {
                let generation = Some(generation).filter(|&g| g >= 0);
                Self::check_owned(&st, group, member, generation, offsets.keys())?;
            }
            let pending = st.pending_txn.entry(group.to_string()).or_default();
            for (tp, c) in offsets {
                pending.entry(tp.clone()).or_default().push(c.topic_id);
            }
        }
        let appended = b
            .build()
            .and_then(|mut bytes| offsets_log.append_encoded(&mut bytes));
        if appended.is_err() {
            // Not written: not pending either.
            self.settle_txn_commits(group, offsets);
        }
        // The caller wakes readers once it lets go of its own locks too (a waker may
        // poll its task inline).
        drop(order);
        appended
    }

    /// The transaction that appended `offsets` of `group` is decided (and, committed,
    /// applied): they are no longer pending.
    pub(crate) fn settle_txn_commits(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, Commit>,
    ) {
        let mut st = self.state.lock();
        let Some(pending) = st.pending_txn.get_mut(group) else {
            return;
        };
        for (tp, c) in offsets {
            if let Some(ids) = pending.get_mut(tp) {
                if let Some(i) = ids.iter().position(|id| *id == c.topic_id) {
                    ids.swap_remove(i);
                }
                if ids.is_empty() {
                    pending.remove(tp);
                }
            }
        }
        if pending.is_empty() {
            st.pending_txn.remove(group);
        }
    }

    /// Whether a transaction not yet decided wrote offsets of `tp` (the topic
    /// incarnation `topic_id`) for `group`: offsets of a topic deleted since, which its
    /// commit never applies to the new one, do not count.
    pub(crate) fn has_pending_txn_commit(
        &self,
        group: &str,
        tp: &TopicPartition,
        topic_id: TopicId,
    ) -> bool {
        self.state
            .lock()
            .pending_txn
            .get(group)
            .and_then(|p| p.get(tp))
            .is_some_and(|ids| ids.iter().any(|id| id.is_none_or(|id| id == topic_id)))
    }

    /// Makes a committed transaction's offsets of `group` visible; `at` is where their
    /// records stand in `__consumer_offsets`: a commit or a tombstone written after
    /// them still wins (a tombstone cancels a transaction's pending offsets, as in
    /// Kafka), as it does when the topic is loaded or compacted.
    pub(crate) fn apply_txn_commits(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, Commit>,
        at: i64,
    ) {
        let mut st = self.state.lock();
        for (tp, c) in offsets {
            st.apply_commit(group, tp, Commit { at, ..*c });
        }
    }
}
