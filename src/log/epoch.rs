//! Partition epochs: Kafka's leader epochs (KIP-320), kept in Kafka's
//! `leader-epoch-checkpoint` file.
//!
//! A partition's epoch changes whenever records may have been removed from its end: at
//! every open after a crash (a power cut can drop unsynced records without leaving a
//! trace to truncate) and at every [`Log::truncate_to`](super::Log::truncate_to). The new
//! epoch starts at the log end offset of that moment, and every batch appended
//! afterwards carries it in its `partitionLeaderEpoch` field. So for any epoch `e`, the
//! records appended under `e` end where the next epoch starts (or at the log end for
//! the current epoch): a position `(offset, e)` taken earlier, such as a committed
//! offset, is still valid iff `offset <= end_offset(e)`; if not, the records between
//! were removed, and `end_offset(e)` is the truncation point to resume from.
//!
//! The file is written via `.tmp` + fsync + rename + directory fsync *before* any batch
//! of the new epoch is appended, so a batch's epoch is always in the file.

/// The epochs of a partition and where each started: Kafka's leader epoch cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochHistory {
    /// `(epoch, start offset)`, epochs strictly increasing. Empty: epoch 0 from the start.
    entries: Vec<(i32, i64)>,
}

impl EpochHistory {
    /// Parses Kafka's `leader-epoch-checkpoint` text (`0\n<n>\n<epoch> <start>\n…`).
    /// `None` if it is malformed, its epochs do not increase or its start offsets
    /// decrease.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let n: usize = lines.next()?.trim().parse().ok()?;
        let mut entries: Vec<(i32, i64)> = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start: i64 = parts.next()?.parse().ok()?;
            if epoch < 0
                || start < 0
                || entries
                    .last()
                    .is_some_and(|&(e, s)| e >= epoch || s > start)
            {
                return None;
            }
            entries.push((epoch, start));
        }
        Some(EpochHistory { entries })
    }

    /// Kafka's checkpoint text.
    pub(crate) fn render(&self) -> String {
        let mut s = format!("0\n{}\n", self.entries.len());
        for (e, start) in &self.entries {
            s.push_str(&format!("{e} {start}\n"));
        }
        s
    }

    /// The current (highest) epoch; 0 when none was ever started.
    pub(crate) fn current(&self) -> i32 {
        self.entries.last().map_or(0, |&(e, _)| e)
    }

    /// Where the records appended under `epoch` end (exclusive): the start of the first
    /// later epoch. `None` if no later epoch started (the current epoch, whose records
    /// go on), or for a negative epoch (unknown: written before epochs existed).
    pub(crate) fn end_offset(&self, epoch: i32) -> Option<i64> {
        if epoch < 0 {
            return None;
        }
        self.entries
            .iter()
            .filter(|&&(e, _)| e > epoch)
            .map(|&(_, start)| start)
            .min()
    }

    /// Whether a batch starting at `base_offset` may carry `epoch` in its
    /// `partitionLeaderEpoch`: exactly the epoch the history says was current at that
    /// offset (the field is outside the CRC, so this is what catches damage to it), or
    /// -1 (no epoch). Below the first recorded start (Kafka trims the history to the log
    /// start), any epoch up to the first one.
    pub(crate) fn allows(&self, epoch: i32, base_offset: i64) -> bool {
        if epoch == -1 {
            return true;
        }
        let at = self
            .entries
            .partition_point(|&(_, start)| start <= base_offset);
        match at.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(e, _)) => epoch == e,
            None => (0..=self.entries.first().map_or(0, |&(e, _)| e)).contains(&epoch),
        }
    }

    /// Starts the next epoch at `start` (the log end after records may have been
    /// removed): epochs that started past `start` are dropped, as Kafka's
    /// `truncateFromEnd`, since their records are gone. Returns the new epoch.
    pub(crate) fn begin(&mut self, start: i64) -> i32 {
        let next = self.current().saturating_add(1);
        if self.entries.is_empty() {
            // Epoch 0 covered everything before: keep that in the file.
            self.entries.push((0, 0));
        }
        self.entries.retain(|&(_, s)| s <= start);
        self.entries.push((next, start));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_text_round_trips_and_bad_text_is_refused() {
        let h = EpochHistory::parse("0\n2\n0 0\n5 100\n").unwrap();
        assert_eq!(h.current(), 5);
        assert_eq!(EpochHistory::parse(&h.render()), Some(h));
        assert_eq!(EpochHistory::parse("0\n1\nx 0\n"), None);
        assert_eq!(EpochHistory::parse("0\n2\n3 0\n3 5\n"), None);
        assert_eq!(
            EpochHistory::parse("0\n2\n1 9\n2 5\n"),
            None,
            "starts decrease"
        );
        assert_eq!(EpochHistory::parse("1\n0\n"), None);
        assert_eq!(EpochHistory::parse("0\n0\n").unwrap().current(), 0);
    }

    #[test]
    fn an_epoch_ends_where_a_later_one_starts() {
        let mut h = EpochHistory::default();
        assert_eq!(h.end_offset(0), None);
        assert_eq!(h.begin(10), 1); // records 10.. of epoch 0 were lost
        assert_eq!(h.end_offset(0), Some(10));
        assert_eq!(h.end_offset(1), None);
        assert_eq!(h.begin(20), 2);
        // Truncation to 5 drops epochs that started later; epoch 1's records are gone.
        assert_eq!(h.begin(5), 3);
        assert_eq!(h.end_offset(0), Some(5));
        assert_eq!(h.end_offset(1), Some(5));
        assert_eq!(h.end_offset(2), Some(5));
        assert_eq!(h.end_offset(3), None);
        assert_eq!(h.end_offset(-1), None);
        assert_eq!(h.render(), "0\n2\n0 0\n3 5\n");
    }

    #[test]
    fn a_batch_must_carry_the_epoch_of_its_offset() {
        let none = EpochHistory::default();
        assert!(none.allows(0, 7) && none.allows(-1, 7) && !none.allows(1, 7));
        let h = EpochHistory::parse("0\n3\n0 0\n1 10\n2 10\n").unwrap();
        assert!(h.allows(0, 9) && !h.allows(1, 9) && !h.allows(2, 9));
        assert!(h.allows(2, 10) && !h.allows(1, 10) && !h.allows(0, 10));
        assert!(!h.allows(-2, 10) && h.allows(-1, 10));
        let trimmed = EpochHistory::parse("0\n1\n4 100\n").unwrap();
        assert!(trimmed.allows(3, 50) && trimmed.allows(4, 50) && !trimmed.allows(5, 50));
        assert!(trimmed.allows(4, 100) && !trimmed.allows(3, 100));
    }
}
