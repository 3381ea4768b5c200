//! The committed offsets in memory, changed in the order the offsets topic would be
//! read again: a commit applies after its fsync, outside the commit lock, so a
//! tombstone written after its record may apply before it; and a transaction's
//! offsets take effect at its COMMIT marker, not at their records.

use super::offsets::Commit;
use crate::topic::TopicPartition;

impl super::State {
    /// Applies a commit of `group`'s `tp` that took effect at position `seen` of the
    /// offsets topic (its record's; a transaction's: its COMMIT marker's), as reading
    /// the topic in order would: not over a commit written after it (by `at`), nor
    /// when this session wrote a tombstone for the partition after `seen`.
    pub(super) fn apply_commit(&mut self, group: &str, tp: &TopicPartition, c: Commit, seen: i64) {
        // (The key is built only when a tombstone or a transaction's commit is about:
        // this runs for every partition of every commit.)
        let key = || (group.to_string(), tp.clone());
        if !self.forgotten.is_empty()
            && let Some(&tombstone) = self.forgotten.get(&key())
        {
            if tombstone > seen {
                return;
            }
            // Its record follows the tombstone: every commit before it is older.
            if c.at > tombstone {
                self.forgotten.remove(&key());
            }
        }
        let g = match self.committed.get_mut(group) {
            Some(g) => g,
            None => self.committed.entry(group.to_string()).or_default(),
        };
        match g.get_mut(tp) {
            Some(old) if old.at > c.at => return,
            Some(old) => *old = c,
            None => {
                g.insert(tp.clone(), c);
            }
        }
        if seen > c.at {
            self.effective.insert(key(), seen);
        } else if !self.effective.is_empty() {
            self.effective.remove(&key());
        }
    }

    /// Applies the tombstones of `doomed` written at `first_at`, `first_at + 1`, ...:
    /// each removes the commit that took effect before it, and is remembered for a
    /// commit written before it that applies later (see
    /// [`apply_commit`](Self::apply_commit)).
    pub(super) fn apply_tombstones(&mut self, doomed: &[(String, TopicPartition)], first_at: i64) {
        for (at, (g, tp)) in (first_at..).zip(doomed) {
            let key = (g.clone(), tp.clone());
            if let Some(m) = self.committed.get_mut(g) {
                let effect = m
                    .get(tp)
                    .map(|c| self.effective.get(&key).copied().unwrap_or(c.at));
                if effect.is_some_and(|e| e < at) {
                    m.remove(tp);
                    self.effective.remove(&key);
                }
                if m.is_empty() {
                    self.committed.remove(g);
                }
            }
            self.forgotten.insert(key, at);
        }
        self.prune_forgotten();
    }

    /// Notes a plain commit appended at `at`, not applied yet.
    pub(super) fn commit_appended(&mut self, at: i64) {
        *self.inflight.entry(at).or_default() += 1;
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
    /// COMMIT marker) included.
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
        st.apply_commit("g", &tp, commit(1, 5), 5);
        st.commit_appended(7);
        st.commit_appended(8);
        st.apply_tombstones(&doomed, 10);
        assert_eq!(key(&st), None);
        st.apply_commit("g", &tp, commit(2, 7), 7);
        st.commit_settled(7);
        assert_eq!(key(&st), None, "written before the tombstone");
        st.apply_commit("g", &tp, commit(3, 12), 12);
        assert_eq!(key(&st), Some(3), "written after it");
        st.apply_commit("g", &tp, commit(4, 8), 8);
        st.commit_settled(8);
        assert_eq!(key(&st), Some(3), "an older commit applied late");
        assert!(
            st.forgotten.is_empty(),
            "nothing in flight: the tombstone is dropped"
        );

        // A transaction's records (at 3) before a tombstone (10), its COMMIT marker (12)
        // after it: read in order, the marker applies them. A plain commit written
        // before the tombstone (5) and applied after both stays forgotten.
        let mut st = super::super::State::default();
        st.commit_appended(5);
        st.apply_tombstones(&doomed, 10);
        st.apply_commit("g", &tp, commit(5, 3), 12);
        assert_eq!(key(&st), Some(5));
        st.apply_commit("g", &tp, commit(6, 5), 5);
        st.commit_settled(5);
        assert_eq!(key(&st), Some(5));

        // The same transaction applied in memory before the tombstone: it took effect
        // after it, so the tombstone leaves it.
        let mut st = super::super::State::default();
        st.apply_commit("g", &tp, commit(7, 3), 12);
        st.apply_tombstones(&doomed, 10);
        assert_eq!(key(&st), Some(7));
        // One that took effect before the tombstone goes.
        let mut st = super::super::State::default();
        st.apply_commit("g", &tp, commit(8, 3), 9);
        st.apply_tombstones(&doomed, 10);
        assert_eq!(key(&st), None);
    }
}
