//! The committed offsets in memory, changed in the order the offsets topic would be
//! read again (and as its compaction, which keeps each key's newest record, leaves
//! it): a commit applies after its fsync, outside the commit lock, so a tombstone
//! written after its record may apply before it; and a transaction's offsets take
//! effect at its COMMIT marker, unless a tombstone written after their records
//! cancelled them meanwhile (as Kafka's coordinator drops a group's pending
//! transactional offsets at a tombstone).

use super::offsets::Commit;
use crate::topic::TopicPartition;

impl super::State {
    /// Applies a commit of `group`'s `tp` whose record stands at `c.at` in the offsets
    /// topic (a transaction's: once its COMMIT marker is written), as reading the topic
    /// in order would: not over a commit written after it, nor when this session wrote
    /// a tombstone for the partition after it.
    pub(super) fn apply_commit(&mut self, group: &str, tp: &TopicPartition, c: Commit) {
        // (The key is built only when a tombstone is about: this runs for every
        // partition of every commit.)
        let key = || (group.to_string(), tp.clone());
        if !self.forgotten.is_empty()
            && let Some(&tombstone) = self.forgotten.get(&key())
        {
            if tombstone > c.at {
                return;
            }
            // Its record follows the tombstone: every commit before it is older.
            self.forgotten.remove(&key());
        }
        let g = match self.committed.get_mut(group) {
            Some(g) => g,
            None => self.committed.entry(group.to_string()).or_default(),
        };
        match g.get_mut(tp) {
            Some(old) if old.at > c.at => {}
            Some(old) => *old = c,
            None => {
                g.insert(tp.clone(), c);
            }
        }
    }

    /// Applies the tombstones of `doomed` written at `first_at`, `first_at + 1`, ...:
    /// each removes the commit written before it, and is remembered for a commit
    /// written before it that applies later (see [`apply_commit`](Self::apply_commit)).
    pub(super) fn apply_tombstones(&mut self, doomed: &[(String, TopicPartition)], first_at: i64) {
        for (at, (g, tp)) in (first_at..).zip(doomed) {
            if let Some(m) = self.committed.get_mut(g) {
                if m.get(tp).is_some_and(|c| c.at < at) {
                    m.remove(tp);
                }
                if m.is_empty() {
                    self.committed.remove(g);
                }
            }
            self.forgotten.insert((g.clone(), tp.clone()), at);
        }
        self.prune_forgotten();
    }

    /// Notes a plain commit appended at `at`, not applied yet.
    pub(super) fn commit_appended(&mut self, at: i64) {
        *self.inflight.entry(at).or_default() += 1;
    }

    /// Notes the partitions of `group` a plain commit appended (see
    /// [`commit_appended`](Self::commit_appended)).
    pub(super) fn keys_appended<'a>(
        &mut self,
        group: &str,
        tps: impl Iterator<Item = &'a TopicPartition>,
    ) {
        let g = self.inflight_keys.entry(group.to_string()).or_default();
        for tp in tps {
            *g.entry(tp.clone()).or_default() += 1;
        }
    }

    /// The commit whose partitions [`keys_appended`](Self::keys_appended) noted applied
    /// (or failed).
    pub(super) fn keys_settled<'a>(
        &mut self,
        group: &str,
        tps: impl Iterator<Item = &'a TopicPartition>,
    ) {
        let Some(g) = self.inflight_keys.get_mut(group) else {
            return;
        };
        for tp in tps {
            if let Some(n) = g.get_mut(tp) {
                *n -= 1;
                if *n == 0 {
                    g.remove(tp);
                }
            }
        }
        if g.is_empty() {
            self.inflight_keys.remove(group);
        }
    }

    /// The plain commit appended at `at` applied (or failed).
    pub(super) fn commit_settled(&mut self, at: i64) {
        if let Some(n) = self.inflight.get_mut(&at) {
            *n -= 1;
            if *n == 0 {
                self.inflight.remove(&at);
            }
        }
        self.prune_forgotten();
    }

    /// Drops the tombstones no commit written before them can still apply after: no
    /// plain commit below them is in flight, and no transaction holds offsets of their
    /// partition.
    fn prune_forgotten(&mut self) {
        let oldest = self.inflight.keys().next().copied();
        let pending = &self.pending_txn;
        self.forgotten.retain(|(g, tp), at| {
            oldest.is_some_and(|o| o < *at) || pending.get(g).is_some_and(|m| m.contains_key(tp))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(offset: i64, at: i64) -> Commit {
        Commit {
            offset,
            epoch: 0,
            topic_id: None,
            at,
        }
    }

    /// A commit and a group deletion race: the commit's record is written first (at 7),
    /// the deletion's tombstone after it (at 10), but the commit applies in memory last
    /// (after its fsync, outside the commit lock). Memory kept the commit, while reading
    /// the offsets topic again (the next open) found it deleted: a consumer started
    /// from it in this session and from `auto_offset_reset` after a reopen. Memory now
    /// agrees with the topic read in order, transactions (which take effect at their
    /// COMMIT marker unless a tombstone cancelled them) included.
    #[test]
    fn memory_applies_commits_and_tombstones_in_the_topics_order() {
        let tp = TopicPartition::new("t", 0);
        let doomed = [("g".to_string(), tp.clone())];
        let key = |st: &super::super::State| {
            st.committed
                .get("g")
                .and_then(|m| m.get(&tp))
                .map(|c| c.offset)
        };
        let mut st = super::super::State::default();
        st.apply_commit("g", &tp, commit(1, 5));
        st.commit_appended(7);
        st.commit_appended(8);
        st.apply_tombstones(&doomed, 10);
        assert_eq!(key(&st), None);
        st.apply_commit("g", &tp, commit(2, 7));
        st.commit_settled(7);
        assert_eq!(key(&st), None, "written before the tombstone");
        st.apply_commit("g", &tp, commit(3, 12));
        assert_eq!(key(&st), Some(3), "written after it");
        st.apply_commit("g", &tp, commit(4, 8));
        st.commit_settled(8);
        assert_eq!(key(&st), Some(3), "an older commit applied late");
        assert!(
            st.forgotten.is_empty(),
            "nothing in flight: the tombstone is dropped"
        );

        // A transaction's records (at 3) before a tombstone (10), its COMMIT marker (12)
        // after it: the tombstone cancelled them (Kafka drops pending transactional
        // offsets at a tombstone; compaction, keeping the key's newest record, drops
        // the record at 3), so the marker applies nothing. A plain commit written
        // after the tombstone (11) stays.
        let pending = |st: &mut super::super::State| {
            st.pending_txn
                .entry("g".into())
                .or_default()
                .insert(tp.clone(), vec![None]);
        };
        let mut st = super::super::State::default();
        pending(&mut st);
        st.apply_tombstones(&doomed, 10);
        st.apply_commit("g", &tp, commit(6, 11));
        st.apply_commit("g", &tp, commit(5, 3));
        assert_eq!(key(&st), Some(6));

        // A transaction whose marker (9) came before the tombstone, applied in memory
        // before or after it: the tombstone removes it either way.
        let mut st = super::super::State::default();
        st.apply_commit("g", &tp, commit(7, 3));
        st.apply_tombstones(&doomed, 10);
        assert_eq!(key(&st), None);
        let mut st = super::super::State::default();
        pending(&mut st);
        st.apply_tombstones(&doomed, 10);
        st.apply_commit("g", &tp, commit(8, 3));
        assert_eq!(key(&st), None);
    }
}
