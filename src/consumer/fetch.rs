//! Fetching: a consumer's positions resolved from commits or `auto_offset_reset`, and
//! `poll`, which reads whole batches from the assigned partitions in turn and parks on
//! the store's notifier when there is nothing to return.

use std::time::{Duration, Instant};

use super::records::Pending;
use super::{Assigned, Consumer, ConsumerRecords, IsolationLevel, OffsetReset, TopicPartition};
use crate::catalog::Counter;
use crate::error::{Error, Result};

/// Reads one chunk of `tp` from `position` into the partition's buffer; returns the
/// batch bytes read.
fn read_partition(
    a: &mut Assigned,
    tp: &TopicPartition,
    mut position: i64,
    max_bytes: usize,
    isolation: IsolationLevel,
) -> Result<usize> {
    let state = a.state.clone();
    let log = state;
    let options = log.decode_options();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    if position < start || position > end {
        return Err(Error::OffsetOutOfRange {
            requested: position,
            log_start: start,
            log_end: end,
        });
    }
    let mut bytes = 0;
    // Read committed: nothing at or past the last stable offset (a transaction not yet
    // decided), and no batch of an aborted transaction.
    let upper = isolation.end_offset(&log);
    let committed_only = isolation == IsolationLevel::ReadCommitted;
    // Loop only while a chunk held nothing to return (control batches, records below the
    // position, aborted records) and more data follows.
    while a.buffer.is_empty() && position < upper {
        let batches = log.read(position, max_bytes)?;
        let aborted = if committed_only && batches.iter().any(|b| b.header().is_transactional()) {
            // Only the transactions these batches can belong to (Kafka bounds its
            // lookup by the fetched data too): up to the LSO, a poll far behind would
            // collect every aborted transaction of its backlog, for each chunk.
            let read_end = batches
                .last()
                .map_or(position, |b| b.last_offset().saturating_add(1))
                .min(upper);
            let aborted = log.aborted_transactions(position, read_end)?;
            // Retention that dropped the segments just read before the lookup listed
            // their `.txnindex` took their aborted transactions with it: their
            // records would pass as committed. It raised the log start first, so a
            // start now past the position says so: those records are gone anyway.
            let start = log.log_start_offset();
            if start > position {
                return Err(Error::OffsetOutOfRange {
                    requested: position,
                    log_start: start,
                    log_end: log.log_end_offset(),
                });
            }
            aborted
        } else {
            Vec::new()
        };
        let mut next = position;
        for b in &batches {
            if b.base_offset() >= upper {
                break;
            }
            bytes += b.size();
            next = next.max(b.last_offset() + 1);
            // A batch left without records (compaction keeps some to hold their
            // offsets) returns nothing either: buffered, it would end this read with
            // nothing to return, and a `recv` would wait for the next append.
            if b.header().is_control()
                || b.header().records_count == 0
                || b.last_offset() < position
                || (committed_only && crate::catalog::is_aborted(b, &aborted))
            {
                if let Some(last) = a.buffer.back_mut() {
                    last.skip_through(b.last_offset());
                }
                continue;
            }
            a.buffer.push_back(Pending::new(tp, b, &options));
        }
        if next <= position {
            break;
        }
        if a.buffer.is_empty() {
            a.position = Some(next);
        }
        position = next;
    }
    Ok(bytes)
}

impl Consumer {
    /// Moves `tp` (assigned) to its new partition if its topic was deleted and created
    /// again: from a fresh position (the old topic's offsets, positions and committed
    /// offsets alike, say nothing of the new one), its buffer dropped. Returns whether
    /// `tp` reads a live partition now.
    pub(super) fn follow_recreated(&mut self, tp: &TopicPartition) -> bool {
        let Some(a) = self.assigned.get_mut(tp) else {
            return false;
        };
        if !a.state.is_closed() {
            return true;
        }
        match self.catalog.partition(tp.topic(), tp.partition()) {
            Ok(fresh) if !fresh.is_closed() => {
                tracing::info!("{tp}: its topic was created again; reading the new one");
                a.state = fresh;
                a.position = None;
                a.sought = None;
                a.buffer.clear();
                true
            }
            _ => false,
        }
    }

    /// Whether a read_committed consumer must not resolve `tp`'s position yet: an open
    /// transaction wrote offsets of it for this group (KIP-447's `requireStable`), and
    /// the committed offset is about to move.
    pub(super) fn offsets_unstable(&self, tp: &TopicPartition) -> bool {
        if self.config.isolation_level != IsolationLevel::ReadCommitted {
            return false;
        }
        let Some(group) = self.config.group_id.as_deref() else {
            return false;
        };
        // Offsets of the topic as it is now (not of one deleted since).
        let Ok(part) = self.catalog.partition(tp.topic(), tp.partition()) else {
            return false;
        };
        self.groups.has_pending_txn_commit(group, tp, part.topic_id)
    }

    /// Whether `tp`'s position must not be resolved from the committed offset yet, which
    /// is about to move: [`offsets_unstable`](Self::offsets_unstable), or another
    /// consumer's commit of the group for it is in its fsync (the partition's previous
    /// owner's, say): started from the offset before it, this consumer would read again
    /// what that one did, and its own commits would move the group's offset back.
    pub(super) fn position_must_wait(&self, tp: &TopicPartition) -> bool {
        self.offsets_unstable(tp)
            || self
                .config
                .group_id
                .as_deref()
                .is_some_and(|group| self.groups.has_commit_in_flight(group, tp))
    }

    /// Resolves a partition's position: committed offset, else `auto_offset_reset`.
    pub(super) fn resolve_position(&self, tp: &TopicPartition, a: &Assigned) -> Result<i64> {
        if let Some(sought) = a.sought {
            return self.reset_position(tp, a, -1, sought);
        }
        let log = &a.state;
        let committed = self
            .config
            .group_id
            .as_deref()
            .and_then(|g| self.groups.committed(g, tp))
            .and_then(|c| c.applied_to(&a.state));
        match committed {
            Some(o) if o >= log.log_start_offset() && o <= log.log_end_offset() => Ok(o),
            _ => self.reset_position(
                tp,
                a,
                committed.unwrap_or(-1),
                self.config.auto_offset_reset,
            ),
        }
    }

    /// Where `how` puts `tp` (`requested` being out of range, or unknown).
    pub(super) fn reset_position(
        &self,
        _tp: &TopicPartition,
        a: &Assigned,
        requested: i64,
        how: OffsetReset,
    ) -> Result<i64> {
        let log = &a.state;
        match how {
            OffsetReset::Earliest => Ok(log.log_start_offset()),
            OffsetReset::Latest => Ok(self.config.isolation_level.end_offset(log)),
            OffsetReset::None => Err(Error::OffsetOutOfRange {
                requested,
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
            }),
        }
    }

    /// Returns records from the assigned, unpaused partitions: in offset order within a
    /// partition, at most `max_poll_records`. With nothing available it blocks until an
    /// append (or a group change) wakes it or `timeout` passes, without busy-waiting
    /// (it spins for at most 40 µs before it parks, as
    /// [`Partition::wait_for`](crate::Partition::wait_for) does).
    /// Also runs the group protocol (rebalance callbacks) and auto-commit. A partition
    /// whose position is not known yet (just assigned) starts at the group's committed
    /// offset once that is settled: a read_committed consumer waits for a transaction
    /// that wrote offsets of it (KIP-447), any consumer for another consumer's commit
    /// of it still in its fsync (the partition's previous owner's).
    ///
    /// # Errors
    /// `OffsetOutOfRange` with `auto_offset_reset = None`; `Corruption`; `Io`;
    /// `CommitFailed` from an auto-commit of a group member (a consumer that assigns
    /// its own partitions only logs one); `InvalidArgument` inside a
    /// [`RebalanceListener`](super::RebalanceListener), or with neither a subscription
    /// nor assigned partitions; `Closed`.
    pub fn poll(&mut self, timeout: Duration) -> Result<ConsumerRecords> {
        self.check_open()?;
        self.check_not_in_callback("poll")?;
        self.check_reading("poll")?;
        let deadline = Instant::now().checked_add(timeout);
        let mut first = true;
        loop {
            let seen = self.sync_and_commit()?;
            let records = self.fetch()?;
            if !records.is_empty() {
                self.count_consumed(records.len());
                return Ok(records);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(records);
            }
            // Wake for appends and group changes; re-check membership liveness at least
            // every second so a stalled member is noticed by the others.
            let nap = Instant::now() + Duration::from_secs(1);
            let until = deadline.map_or(nap, |d| d.min(nap));
            // Spins briefly the first time only: later wake-ups were for other appends.
            // Blocked here, the member is alive (as a Kafka consumer blocked in `poll`),
            // however long `max_poll_interval_ms` is against the wait.
            let mut waiting = false;
            self.set_waiting(&mut waiting, true);
            if std::mem::take(&mut first) {
                self.catalog.notifier().wait(seen, Some(until));
            } else {
                self.catalog.notifier().wait_parked(seen, Some(until));
            }
            self.set_waiting(&mut waiting, false);
            self.check_open()?;
        }
    }

    /// What a poll (or `recv`) does before it fetches: syncs with the group and
    /// auto-commits if due. Returns the notifier's sequence to wait from: read before
    /// the sync (a group change during it is not missed), and again after an
    /// auto-commit, whose own wake-up is no news (taken for one, a caught-up poll
    /// committed, woke, and committed again until its deadline).
    pub(super) fn sync_and_commit(&mut self) -> Result<u64> {
        let mut seen = self.catalog.notifier().seq();
        self.sync_group()?;
        if self.maybe_auto_commit()? {
            seen = self.catalog.notifier().seq();
            self.sync_group()?;
        }
        Ok(seen)
    }

    /// Commits the positions if auto-commit is due; returns whether it wrote one.
    fn maybe_auto_commit(&mut self) -> Result<bool> {
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && self.last_auto_commit.elapsed()
                >= Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            self.last_auto_commit = Instant::now();
            let all: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
            return self.auto_commit(&all);
        }
        Ok(false)
    }

    /// Commits the positions of `partitions` (auto-commit); returns whether it wrote
    /// one.
    pub(super) fn auto_commit(&mut self, partitions: &[TopicPartition]) -> Result<bool> {
        let offsets = self.positions_of(partitions);
        // Nothing moved since the group's last commit: writing it again would only
        // wake every other waiting consumer of the store, and with a short interval
        // idle consumers would wake each other into committing without end.
        let group = self.config.group_id.as_deref().unwrap_or_default();
        if offsets
            .iter()
            .all(|(tp, &o)| self.groups.resume_offset(&self.catalog, group, tp) == Some(o))
        {
            return Ok(false);
        }
        match self.commit_offsets(&offsets) {
            // A consumer that assigns its own partitions, in a group whose members
            // are live: its commits are refused, and its polls go on (Kafka logs a
            // failed auto-commit and does not raise it from poll).
            Err(e @ Error::CommitFailed { .. }) if self.membership.is_none() => {
                tracing::warn!("auto-commit refused: {e}");
            }
            r => r?,
        }
        Ok(true)
    }

    /// Counts `n` records handed to the application (`records-consumed-total`): when
    /// returned, not when fetched, as a stream gives back what it fetched and did not
    /// yield (read again later).
    pub(super) fn count_consumed(&self, n: usize) {
        self.catalog.stats().add(Counter::RecordsConsumed, n as u64);
    }

    /// Records from the assigned partitions (not counted as consumed yet: see
    /// [`count_consumed`](Self::count_consumed)). An error in one partition after others
    /// returned records is reported at the next poll instead, so records whose positions
    /// already moved are never dropped.
    pub(super) fn fetch(&mut self) -> Result<ConsumerRecords> {
        let mut out = ConsumerRecords::with_capacity(self.config.max_poll_records.min(4096));
        let fetched = self.fetch_into(&mut out);
        match fetched {
            Err(e) if !out.is_empty() => {
                tracing::warn!(
                    "poll: returning {} records; deferring an error: {e}",
                    out.len()
                );
                Ok(out)
            }
            r => r.map(|()| out),
        }
    }

    pub(super) fn fetch_into(&mut self, out: &mut ConsumerRecords) -> Result<()> {
        let mut budget = self.config.fetch_max_bytes;
        let keys: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let n = keys.len();
        let start = self.next_partition % n;
        self.next_partition = self.next_partition.wrapping_add(1);
        'partitions: for i in 0..n {
            if out.len() >= self.config.max_poll_records {
                break;
            }
            let tp = &keys[(start + i) % n];
            let a = &self.assigned[tp];
            // Checked before pausing: a deleted topic's partition lets go of its
            // fetched batches even while paused.
            // Its topic was deleted: nothing to read, unless it was created again.
            if a.state.is_closed() && !self.follow_recreated(tp) {
                // Its fetched batches are never returned: let go of them (and of the
                // deleted files' mapping they hold).
                let a = self.assigned.get_mut(tp).expect("present");
                a.buffer.clear();
                continue;
            }
            if self.assigned[tp].paused {
                continue;
            }
            let a = &self.assigned[tp];
            // Out of range at the read below: to the beginning if a seek there was not
            // read from yet, else auto_offset_reset. (A seek to the end is not gone to
            // again: resolved, it has done its work, and going to the end once more
            // would skip what was appended since, which `Earliest` would return.)
            let reset_to = match a.sought {
                Some(OffsetReset::Earliest) => OffsetReset::Earliest,
                _ => self.config.auto_offset_reset,
            };
            let position = match a.position {
                Some(p) => p,
                None => {
                    if a.sought.is_none() && self.position_must_wait(tp) {
                        continue; // until it is decided, or applied (which wakes the poll)
                    }
                    // An error (no committed offset with reset `None`) is reported
                    // first at the next poll if deferred now, as below.
                    let p = self
                        .resolve_position(tp, a)
                        .inspect_err(|_| self.next_partition = (start + i) % n)?;
                    self.assigned.get_mut(tp).expect("present").position = Some(p);
                    p
                }
            };
            let limit = self.config.max_poll_records - out.len();
            let isolation = self.config.isolation_level;
            let max_bytes = self.config.max_partition_fetch_bytes.min(budget.max(1));
            let mut position = position;
            // A position out of range is reset once and read from there in this poll:
            // left for the next poll, a `recv` would wait for an append that may never
            // come (nothing notifies for the reset).
            let mut reset = false;
            // Read again while what was read returned nothing and moved the position on
            // (a batch compaction left holding only records below the position: it
            // keeps the batch's offsets): left for the next poll, a `recv` would wait
            // for an append that may never come. Each round moves the position on.
            loop {
                let returned = out.len();
                // Once the poll's byte budget is spent (by an earlier partition: the first
                // read takes at least one batch) and records are there to return, later
                // partitions return only what they hold buffered, as Kafka's fetch stops
                // adding partitions when it is full. (Spent on batches with nothing to
                // return, the reads go on: an empty poll would leave a `recv` waiting.)
                while self.assigned[tp].buffer.is_empty() && (budget > 0 || out.is_empty()) {
                    let a = self.assigned.get_mut(tp).expect("present");
                    let log = &a.state;
                    // Caught up. (Past the end or below the start: the read reports
                    // OffsetOutOfRange and auto_offset_reset applies.)
                    let end = isolation.end_offset(log);
                    if position >= end
                        && position <= log.log_end_offset()
                        && position >= log.log_start_offset()
                    {
                        break;
                    }
                    match read_partition(a, tp, position, max_bytes, isolation) {
                        Ok(bytes) => {
                            // Read from where a seek put it: done with the seek.
                            a.sought = None;
                            budget = budget.saturating_sub(bytes);
                            self.catalog
                                .stats()
                                .add(Counter::BytesConsumed, bytes as u64);
                            break;
                        }
                        Err(Error::OffsetOutOfRange { requested, .. }) if !reset => {
                            let p = self
                                .reset_position(tp, &self.assigned[tp], requested, reset_to)
                                .inspect_err(|_| self.next_partition = (start + i) % n)?;
                            tracing::info!(
                                "{tp}: offset {requested} is out of range; reset to {p}"
                            );
                            let a = self.assigned.get_mut(tp).expect("present");
                            a.position = Some(p);
                            (position, reset) = (p, true);
                        }
                        // Out of range again (the log moved meanwhile): the next poll resets.
                        Err(Error::OffsetOutOfRange { .. }) => break,
                        // Its topic was deleted during this read: skipped like a deleted
                        // topic's partition above (the next poll looks for a new topic).
                        Err(Error::Closed { .. }) if self.assigned[tp].state.is_closed() => {
                            continue 'partitions;
                        }
                        Err(e) => {
                            // Reported first at the next poll if deferred now (see below).
                            self.next_partition = (start + i) % n;
                            return Err(e);
                        }
                    }
                }
                let a = self.assigned.get_mut(tp).expect("present");
                let limit = out.len() + limit;
                while out.len() < limit
                    && let Some(p) = a.buffer.front_mut()
                {
                    let from = a.position.unwrap_or(i64::MIN);
                    let (next, result) = p.take(from, limit, out);
                    if let Some(next) = next {
                        a.position = Some(next.max(from));
                    }
                    // A malformed record: the records before it are returned, the position
                    // stays at it, and the batch stays first so every poll reports it again
                    // (until a seek); the next poll starts with this partition, so the error
                    // is not deferred behind other partitions' records again.
                    if let Err(e) = result {
                        self.next_partition = (start + i) % n;
                        return Err(e);
                    }
                    if p.is_done() {
                        a.buffer.pop_front();
                    }
                }
                let a = &self.assigned[tp];
                match a.position {
                    Some(moved)
                        if moved > position
                            && out.len() == returned
                            && a.buffer.is_empty()
                            && (budget > 0 || out.is_empty()) =>
                    {
                        position = moved;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }
}
