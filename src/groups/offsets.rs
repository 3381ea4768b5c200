//! Committed offsets: Kafka's `__consumer_offsets` records (OffsetCommitKey v1,
//! OffsetCommitValue v3, with the topic id in a header), the coordinator's commit,
//! load and forget paths, and how a commit applies to a partition as it is now (topic
//! incarnation and epoch, KIP-320).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Coordinator, OFFSETS_TOPIC, State};
use crate::catalog::{Catalog, CommittedOffsetReset, PartitionState, StoreRecoveryReport, TopicId};
use crate::error::{Error, Result};
use crate::format::schema::{get_string, put_string};
use crate::format::{Batch, BatchBuilder, ControlRecordType, DecodeOptions, Header, Record};
use crate::topic::{CleanupPolicy, TopicConfig, TopicPartition};

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
pub(super) const TOPIC_ID_HEADER: &str = "topic_id";

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

impl Coordinator {
    pub(crate) fn offsets_topic_config() -> TopicConfig {
        TopicConfig::default()
            .partitions(1)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(8 * 1024 * 1024)
            .retention_ms(-1)
    }

    /// Loads committed offsets by replaying the offsets topic (after the transaction
    /// coordinator closed every open transaction). Offsets a transaction wrote apply
    /// once its COMMIT marker is read, ranked by where their own records stand (as
    /// Kafka's `completePendingTxnOffsetCommit`, and as compaction, which keeps the
    /// latest record per key, preserves): a commit written after them still wins. Those
    /// of aborted transactions are dropped.
    pub(crate) fn load(&self, part: &PartitionState) -> Result<()> {
        let mut replay = OffsetsReplay::default();
        let mut offset = part.log_start_offset();
        let end = part.log_end_offset();
        let options = part.decode_options();
        while offset < end {
            let batches = part.read(offset, 1 << 20)?;
            let Some(last) = batches.last() else { break };
            offset = last.last_offset() + 1;
            for b in &batches {
                replay.apply_batch(b, &options)?;
            }
        }
        self.state.lock().committed = replay.into_committed();
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
                    tracing::warn!(
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

    /// Commits offsets durably: one batch appended to the offsets topic and fsync'd
    /// (shared with concurrent commits), then visible to `committed`. With a `member`,
    /// every partition must be owned by it; without one (a consumer that assigns its
    /// partitions), the group must have no live members, whose offsets it would move
    /// (Kafka answers such a commit `UNKNOWN_MEMBER_ID`).
    ///
    /// The caller wakes `offsets_log`'s waiters once it returns, Ok or not (a poll
    /// waiting for the commit in flight goes on), with no lock held: a waker may poll
    /// its task inline, and the task commit.
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
        // In flight from the check on (see `check_owned`); those who list commits in
        // flight to tombstone them take the commit lock, held here until the append.
        match member {
            Some(member) => {
                let mut st = self.state.lock();
                Self::check_owned(&st, group, member, None, offsets.keys())?;
                st.keys_appended(group, offsets.keys());
            }
            None => {
                let mut st = self.state.lock();
                Self::check_empty_in(&mut st, group).map_err(|e| match e {
                    Error::GroupNotEmpty { group, members } => Error::CommitFailed {
                        group,
                        reason: format!(
                            "the group has {members} live member(s) and this consumer, \
                             which assigns its own partitions, is not one of them: its \
                             commit would move their offsets (use another group id, or \
                             stop them first)"
                        ),
                    },
                    e => e,
                })?;
                st.keys_appended(group, offsets.keys());
            }
        }
        // Nothing appended: no longer in flight (a poll waiting for it goes on once
        // woken).
        let not_appended = |result: Result<()>| {
            self.state.lock().keys_settled(group, offsets.keys());
            result
        };
        // Under the commit lock, which `forget_topic` takes after a topic is deleted: a
        // commit either finds the topic gone here or is written before its tombstone.
        if let Some((tp, _)) = offsets.iter().find(|(tp, c)| !live(tp, c.topic_id)) {
            return not_appended(Err(Error::NotFound {
                kind: "topic",
                name: format!("{} (committing for {tp}: it was deleted)", tp.topic()),
            }));
        }
        let (batches, appended) = Self::append_commit_batches(
            offsets_log,
            offsets.iter().map(|(tp, c)| (group, tp, *c)),
            now_ms,
        );
        let Some(&(_, at, _)) = batches.last() else {
            return not_appended(appended);
        };
        // A commit split in batches (more than one holds) that failed part-way: the
        // batches appended are in the log (the next open applies them), so they are
        // made durable and applied here too, and memory agrees; the commit then fails.
        let written: usize = batches.iter().map(|&(_, _, n)| n).sum();
        let written = || offsets.iter().take(written);
        // Noted before the lock goes: a tombstone written after it is remembered until
        // this commit applies, and the group's deletion tombstones its partitions too
        // (they are in flight since the check).
        self.state.lock().commit_appended(at);
        drop(order);
        let flushed = offsets_log.flush_to(at + 1);
        let mut st = self.state.lock();
        if flushed.is_ok() {
            for (tp, c) in written() {
                st.apply_commit(group, tp, Commit { at, ..*c });
            }
        }
        st.keys_settled(group, offsets.keys());
        st.commit_settled(at);
        // Applied or failed: a poll that waits for it (`has_commit_in_flight`) goes on
        // once woken.
        flushed.and(appended)
    }

    /// `CommitFailed` unless `member` of `group` owns every partition of `tps` (a
    /// member a rebalance took them from, or that was removed, is a zombie). With the
    /// `generation` of the metadata the offsets came with, the member must also have
    /// owned each since then: one it lost and got back after that generation was
    /// meanwhile another member's, whose commits these would move back (Kafka refuses
    /// a stale generation, KIP-447).
    ///
    /// Checked under the state lock the caller holds, so that it can note the commit
    /// in flight (or pending) in the same hold: a rebalance that gives one of `tps` to
    /// another member after the check then finds it, and the new owner's first poll
    /// waits for it instead of starting from the offset before it.
    pub(super) fn check_owned<'a>(
        st: &State,
        group: &str,
        member: &str,
        generation: Option<i32>,
        tps: impl Iterator<Item = &'a TopicPartition>,
    ) -> Result<()> {
        for tp in tps {
            let reason = match Self::owned_since(st, group, member, tp) {
                None => format!(
                    "member `{member}` does not own {tp} (it was reassigned in a rebalance, \
                     or the member was removed for exceeding max_poll_interval_ms)"
                ),
                Some(since) if generation.is_some_and(|g| g < since) => format!(
                    "member `{member}` got {tp} back in generation {since}, after generation \
                     {} of these offsets' metadata: they are from before it lost the \
                     partition",
                    generation.unwrap_or_default()
                ),
                Some(_) => continue,
            };
            return Err(Error::CommitFailed {
                group: group.to_string(),
                reason,
            });
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
        let (batches, appended) = Self::append_commit_batches(offsets_log, commits, now_ms);
        appended?;
        batches
            .last()
            .map(|&(_, last, _)| last)
            .ok_or_else(|| Error::InvalidArgument {
                name: "offsets",
                reason: "no offsets to commit".into(),
            })
    }

    /// [`append_split`](Self::append_split) of commit records.
    fn append_commit_batches<'a>(
        offsets_log: &PartitionState,
        commits: impl Iterator<Item = (&'a str, &'a TopicPartition, Commit)>,
        now_ms: i64,
    ) -> (Vec<(i64, i64, usize)>, Result<()>) {
        let records = commits.map(|(group, tp, c)| {
            let headers: Vec<Header> = c
                .topic_id
                .map(|id| Header::new(TOPIC_ID_HEADER, id.as_bytes().to_vec()))
                .into_iter()
                .collect();
            let value = encode_value(c.offset, c.epoch, now_ms);
            (encode_key(group, tp), Some(value), headers)
        });
        Self::append_split(offsets_log, records, now_ms)
    }

    /// Appends `(key, value, headers)` records (not synced) in as many batches as the
    /// offsets topic's `max_message_bytes` needs: a commit of many partitions, or the
    /// tombstones of a topic many groups committed, is split rather than refused. (Each
    /// record is far below the limit: group ids are at most 32767 bytes, topic names
    /// 249.) Returns each appended batch's base and last offset and how many records it
    /// holds, in order, and whether every batch was appended (if not, the records
    /// after those batches were not).
    fn append_split(
        offsets_log: &PartitionState,
        records: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>, Vec<Header>)>,
        now_ms: i64,
    ) -> (Vec<(i64, i64, usize)>, Result<()>) {
        let limit = usize::try_from(offsets_log.max_message_bytes())
            .unwrap_or(usize::MAX)
            .saturating_sub(1024);
        let mut appended = Vec::new();
        let mut append = |b: BatchBuilder| -> Result<()> {
            let n = b.len();
            let info = offsets_log.append_encoded(&mut b.build()?)?;
            appended.push((info.base_offset, info.last_offset, n));
            Ok(())
        };
        let mut b = BatchBuilder::new();
        let all = (|| {
            for (key, value, headers) in records {
                let size = key.len() + value.as_ref().map_or(0, Vec::len);
                if !b.is_empty() && b.uncompressed_size() + size + 64 > limit {
                    append(std::mem::take(&mut b))?;
                }
                b.push(now_ms, Some(&key), value.as_deref(), &headers)?;
            }
            if !b.is_empty() {
                append(std::mem::take(&mut b))?;
            }
            Ok(())
        })();
        (appended, all)
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
            st.apply_commit(g, tp, Commit { at, ..*c });
        }
        Ok(())
    }

    /// Writes tombstones for every committed offset of `topic` (the topic was deleted),
    /// also for commits appended and not applied yet (their fsync runs) and offsets
    /// open transactions sent: a tombstone written after them cancels them, where they
    /// would otherwise apply after the deletion (as a group's deletion does).
    fn forget_topic_in(&self, offsets_log: &PartitionState, topic: &str) -> Result<()> {
        // Held from listing to writing: no commit is appended in between.
        let order = self.commit_lock.lock();
        let doomed: Vec<(String, TopicPartition)> = {
            let st = self.state.lock();
            let mut all = std::collections::BTreeSet::new();
            keys_of_topic(&st.committed, topic, &mut all);
            keys_of_topic(&st.inflight_keys, topic, &mut all);
            keys_of_topic(&st.pending_txn, topic, &mut all);
            all.into_iter().collect()
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

    pub(super) fn forget_locked(
        &self,
        offsets_log: &PartitionState,
        doomed: &[(String, TopicPartition)],
        _order: parking_lot::MutexGuard<'_, ()>,
    ) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        let records = doomed
            .iter()
            .map(|(g, tp)| (encode_key(g, tp), None, Vec::new()));
        // Batches appended before one failed are in the topic (the next open applies
        // them): they are made durable and applied here too, so memory agrees.
        let (batches, appended) = Self::append_split(offsets_log, records, 0);
        if let Some(&(_, last, _)) = batches.last() {
            offsets_log.flush_to(last + 1)?;
        }
        let mut st = self.state.lock();
        let mut rest = doomed;
        for (base, _, n) in batches {
            let (these, later) = rest.split_at(n.min(rest.len()));
            st.apply_tombstones(these, base);
            rest = later;
        }
        appended
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

    /// The partition of the internal committed-offsets topic.
    pub(crate) fn offsets_partition(&self, catalog: &Catalog) -> Result<Arc<PartitionState>> {
        catalog.partition(OFFSETS_TOPIC, 0)
    }

    /// Whether a plain commit of `group` for `tp` is appended and not applied yet (its
    /// fsync runs): the committed offset is about to move.
    pub(crate) fn has_commit_in_flight(&self, group: &str, tp: &TopicPartition) -> bool {
        self.state
            .lock()
            .inflight_keys
            .get(group)
            .is_some_and(|g| g.contains_key(tp))
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

// Kafka's OffsetCommitKey v1 and OffsetCommitValue v3 schemas, so the records in the
// offsets topic read the same as Kafka's.

/// The committed offsets of `__consumer_offsets` as its batches are read in order:
/// plain commits apply at once, a transaction's at its COMMIT marker (dropped at ABORT).
/// Used at open, and by read-only stores following a live one.
#[derive(Debug, Default)]
pub(crate) struct OffsetsReplay {
    committed: HashMap<String, BTreeMap<TopicPartition, Commit>>,
    /// Per producer id, the offsets of its open transaction.
    pending: HashMap<i64, Vec<(String, TopicPartition, Option<Commit>)>>,
}

impl OffsetsReplay {
    /// Applies the next batch of the offsets topic.
    pub(crate) fn apply_batch(&mut self, b: &Batch, options: &DecodeOptions) -> Result<()> {
        let h = b.header();
        if h.is_control() {
            let decided = self.pending.remove(&h.producer_id).unwrap_or_default();
            if let Ok(Some(marker)) = b.control_record()
                && marker.kind == ControlRecordType::Commit
            {
                for (group, tp, c) in decided {
                    apply(&mut self.committed, group, tp, c);
                }
            }
            return Ok(());
        }
        // Decoded whole before anything applies: a batch failing part-way changes
        // nothing, and a follower that reads it again does not apply its first
        // records twice.
        let records: Vec<Record> = b.records_with(options)?.collect::<Result<_>>()?;
        for r in records {
            let Some((group, tp, c)) = decode_commit(&r) else {
                continue;
            };
            if h.is_transactional() {
                self.pending
                    .entry(h.producer_id)
                    .or_default()
                    .push((group, tp, c));
            } else {
                if c.is_none() {
                    // A tombstone cancels the partition's offsets of every open
                    // transaction (Kafka's coordinator drops them; compaction, which
                    // keeps the key's newest record, drops their records).
                    for offsets in self.pending.values_mut() {
                        offsets.retain(|(g, t, _)| (g, t) != (&group, &tp));
                    }
                }
                apply(&mut self.committed, group, tp, c);
            }
        }
        Ok(())
    }

    /// The committed offsets so far, by group (groups left with none are dropped).
    pub(crate) fn committed(
        &self,
    ) -> impl Iterator<Item = (&String, &BTreeMap<TopicPartition, Commit>)> {
        self.committed.iter().filter(|(_, g)| !g.is_empty())
    }

    pub(crate) fn into_committed(mut self) -> HashMap<String, BTreeMap<TopicPartition, Commit>> {
        self.committed.retain(|_, g| !g.is_empty());
        self.committed
    }
}

/// Adds to `out` the (group, partition) keys of `by_group` whose topic is `topic`.
fn keys_of_topic<V>(
    by_group: &HashMap<String, BTreeMap<TopicPartition, V>>,
    topic: &str,
    out: &mut std::collections::BTreeSet<(String, TopicPartition)>,
) {
    for (g, m) in by_group {
        out.extend(
            m.keys()
                .filter(|tp| tp.topic() == topic)
                .map(|tp| (g.clone(), tp.clone())),
        );
    }
}

/// Applies one loaded record: a commit, or a tombstone (`None`).
fn apply(
    committed: &mut HashMap<String, BTreeMap<TopicPartition, Commit>>,
    group: String,
    tp: TopicPartition,
    c: Option<Commit>,
) {
    match c {
        Some(c) => {
            let g = committed.entry(group).or_default();
            // A transaction's offsets arrive at its marker, after commits written later.
            if g.get(&tp).is_none_or(|old| old.at < c.at) {
                g.insert(tp, c);
            }
        }
        None => {
            if let Some(g) = committed.get_mut(&group) {
                g.remove(&tp);
            }
        }
    }
}

/// A record of the offsets topic: its group, partition and commit (`None`: a
/// tombstone); `None` (logged) for a record this store cannot read.
fn decode_commit(r: &Record) -> Option<(String, TopicPartition, Option<Commit>)> {
    let Some((group, tp)) = r.key.as_ref().and_then(|k| decode_key(k.clone())) else {
        tracing::warn!(
            "{OFFSETS_TOPIC}: skipping a record at offset {} with an unknown key",
            r.offset
        );
        return None;
    };
    let topic_id = r
        .headers
        .iter()
        .find(|h| h.key == TOPIC_ID_HEADER)
        .and_then(|h| TopicId::from_bytes(h.value.as_deref()?));
    match r.value.as_ref().map(|v| decode_value(v.clone())) {
        None => Some((group, tp, None)),
        Some(Some((offset, epoch))) => Some((
            group,
            tp,
            Some(Commit {
                offset,
                epoch,
                topic_id,
                at: r.offset,
            }),
        )),
        Some(None) => {
            tracing::warn!(
                "{OFFSETS_TOPIC}: skipping a record at offset {} with an unknown value",
                r.offset
            );
            None
        }
    }
}

pub(super) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
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

pub(super) fn encode_value(offset: i64, epoch: i32, now_ms: i64) -> Vec<u8> {
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
}
