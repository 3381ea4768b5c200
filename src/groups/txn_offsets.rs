//! Offsets committed by a transaction (Kafka's `TxnOffsetCommit`): written to
//! `__consumer_offsets` as transactional records of the producer, and applied to the
//! group only when the transaction's COMMIT marker is written.

use std::collections::BTreeMap;

use super::Coordinator;
use super::offsets::{TOPIC_ID_HEADER, encode_key, encode_value};
use crate::catalog::{AppendInfo, PartitionState};
use crate::error::Result;
use crate::format::{BatchBuilder, Header};
use crate::groups::Commit;
use crate::topic::TopicPartition;

impl Coordinator {
    /// Appends `offsets` of `group` as one transactional batch of the producer
    /// `(id, epoch, first sequence)` (not synced: the transaction's commit syncs it).
    /// Nothing is visible through `committed` until
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
        let _order = self.commit_lock.lock();
        if let Some((member, generation)) = member {
            let generation = Some(generation).filter(|&g| g >= 0);
            self.check_owned(group, member, generation, offsets.keys())?;
        }
        let info = offsets_log.append_encoded(&mut b.build()?)?;
        offsets_log.wake();
        Ok(info)
    }

    /// Makes a committed transaction's offsets of `group` visible; `at` is where their
    /// records stand in `__consumer_offsets` (a commit written after them still wins,
    /// as it does when the topic is loaded or compacted).
    pub(crate) fn apply_txn_commits(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, Commit>,
        at: i64,
    ) {
        let mut st = self.state.lock();
        let g = st.committed.entry(group.to_string()).or_default();
        for (tp, c) in offsets {
            match g.get(tp) {
                Some(old) if old.at > at => {}
                _ => {
                    g.insert(tp.clone(), Commit { at, ..*c });
                }
            }
        }
    }
}
