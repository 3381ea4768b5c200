//! Transactions at the log layer (Kafka's, one partition): markers that end a
//! producer's transaction, the last stable offset, and the aborted transactions a
//! read_committed reader skips.
//!
//! - A transactional batch of producer P opens P's transaction at its base offset if P
//!   has none open; while it is open, P's batches without the transactional attribute
//!   are refused (`InvalidTxnState`).
//! - [`Log::append_marker`] writes P's COMMIT or ABORT marker (a control batch), which
//!   closes P's transaction. An ABORT that closes one appends an entry to the
//!   `.txnindex` of the segment holding the marker.
//! - [`Log::last_stable_offset`]: the first offset of the earliest open transaction,
//!   else the log end offset. Readers get it, and
//!   [`Log::aborted_transactions`], without the append lock.
//!
//! Durability: a marker is durable as any batch is (a flush covers it). The `.txnindex`
//! is derived from the markers: a flush syncs a sealed segment's with its other files
//! before the recovery point passes the segment, a close syncs the active segment's,
//! and an open after a crash rewrites those of the segments it replays (from the
//! producer snapshot it starts from) from the markers they hold. So after any crash the
//! entries match the markers the recovered log holds.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::producer_state::CompletedTxn;
use super::segment::Segment;
use super::txn_index::AbortedTxn;
use super::{AppendInfo, Log, Writer};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::BatchHeader;
use crate::format::{ControlRecordType, control_batch};

/// How a transaction ended: the type of its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionResult {
    /// A COMMIT marker: the transaction's records are read by read_committed readers.
    Commit,
    /// An ABORT marker: read_committed readers skip the transaction's records.
    Abort,
}

/// The aborted transactions of a range, by producer: (first offset, marker offset).
#[derive(Debug, Default)]
pub(super) struct AbortedBatches(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedBatches {
    /// The batches of the aborted transactions `txns` (for the cleaner, which drops them
    /// and keeps them out of its key map, as Kafka's does).
    pub(super) fn new(txns: &[AbortedTxn]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedBatches(by_producer)
    }

    /// Whether `h` is a data batch of an aborted transaction.
    pub(super) fn contains(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id).is_some_and(|txns| {
                txns.iter()
                    .any(|&(first, last)| first <= h.base_offset && h.base_offset < last)
            })
    }
}

/// A marker about to be appended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marker {
    pub(super) producer_id: i64,
    pub(super) producer_epoch: i16,
    pub(super) coordinator_epoch: i32,
    pub(super) result: TransactionResult,
}

impl Log {
    /// Appends the end-transaction marker of `producer_id`: a control batch of one
    /// record (Kafka's layout: control and transactional attributes, the producer id
    /// and epoch, base sequence -1; key version 0 and type ABORT 0 or COMMIT 1; value
    /// version 0 and `coordinator_epoch`), timestamped by the log's clock. It closes the
    /// producer's open transaction, if any (a marker without one is written all the
    /// same, as Kafka does). An epoch above the producer's becomes its epoch: batches
    /// of older epochs are refused from then on (a new producer with the same
    /// transactional id fences the old one this way).
    ///
    /// Durability: as [`append`](Self::append); the `.txnindex` entry of an ABORT
    /// follows the marker (see the module docs).
    ///
    /// # Errors
    /// `InvalidArgument` for a negative producer id or epoch; `InvalidProducerEpoch`
    /// for an epoch below the producer's; `InvalidTxnState` for a coordinator epoch
    /// below the one of the producer's last marker; `Io` (a failed `.txnindex` write
    /// after the marker was written poisons the log: reopening rewrites the index from
    /// the markers); `Poisoned`; `Closed`.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        result: TransactionResult,
    ) -> Result<AppendInfo> {
        self.check_writable()?;
        if producer_id < 0 || producer_epoch < 0 {
            return Err(Error::InvalidArgument {
                name: "producer_id",
                reason: format!(
                    "a marker needs a producer id and epoch >= 0 (got {producer_id}, \
                     {producer_epoch})"
                ),
            });
        }
        let kind = match result {
            TransactionResult::Commit => ControlRecordType::Commit,
            TransactionResult::Abort => ControlRecordType::Abort,
        };
        let mut batch = control_batch(
            kind,
            producer_id,
            producer_epoch,
            coordinator_epoch,
            self.config.clock.now_ms(),
        )?;
        let marker = Marker {
            producer_id,
            producer_epoch,
            coordinator_epoch,
            result,
        };
        self.append_inner(&mut batch, true, Some(marker))
    }

    /// Records a marker written at `offset` to `seg` (under the append lock, before the
    /// end offset is published): the producer state, and for an ABORT that closed a
    /// transaction its `.txnindex` entry (in memory even if the write fails, which
    /// poisons the log).
    pub(super) fn record_marker(
        &self,
        w: &mut Writer,
        seg: &Segment,
        m: Marker,
        offset: i64,
        timestamp: i64,
    ) {
        let done = w.producers.record_marker(
            m.producer_id,
            m.producer_epoch,
            m.coordinator_epoch,
            offset,
            timestamp,
        );
        let Some(CompletedTxn {
            producer_id,
            first_offset,
            last_offset,
        }) = done.filter(|_| m.result == TransactionResult::Abort)
        else {
            return;
        };
        let entry = AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: w.producers.first_open_offset().unwrap_or(last_offset + 1),
        };
        match seg.txn_index.append(self.fs.as_ref(), entry) {
            Ok(created) => w.dir_dirty |= created,
            Err(e) => self.poison_with(format!(
                "the transaction index entry of the marker at offset {offset} was not \
                 written: {e}"
            )),
        }
    }

    /// The last stable offset: the first offset of the earliest open transaction, else
    /// the log end offset. Records below it belong to no open transaction (a
    /// read_committed reader reads up to it). Never below the log start offset: when
    /// retention or `delete_records` moved the start past an open transaction's first
    /// offset, the stable part begins at the start (Kafka's
    /// `updateFirstUnstableOffset`). Takes no lock.
    pub fn last_stable_offset(&self) -> i64 {
        // The end offset first: the writer stores the first unstable offset before it
        // publishes an end offset past it.
        let end = self.next_offset.load(Ordering::Acquire);
        let start = self.log_start.load(Ordering::Acquire);
        self.first_unstable
            .load(Ordering::Acquire)
            .max(start)
            .min(end)
    }

    /// The open transactions, by first offset: (producer id, first offset). Takes the
    /// append lock (for tests and tools; readers use
    /// [`last_stable_offset`](Self::last_stable_offset)).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        let w = self.writer.lock();
        w.producers
            .open_transactions()
            .into_iter()
            .map(|(first, pid)| (pid, first))
            .collect()
    }

    /// The open transactions, by first offset: (producer id, the producer's epoch, which
    /// its transaction's batches carry). Takes the append lock (for the transaction
    /// coordinator's recovery).
    pub fn open_transaction_epochs(&self) -> Vec<(i64, i16)> {
        let w = self.writer.lock();
        w.producers
            .open_transactions()
            .into_iter()
            .filter_map(|(_, pid)| Some((pid, w.producers.epoch_of(pid)?)))
            .collect()
    }

    /// Every aborted transaction that overlaps `[from, to)`: those whose ABORT marker
    /// lies at or after `from` and whose first offset lies below `to` (Kafka's
    /// `collectAbortedTxns`), in marker order. Read from the `.txnindex` files of the
    /// segments from the one holding `from` on (each read once, then kept in memory),
    /// stopping at an entry whose last stable offset reaches `to`. Takes no append lock.
    ///
    /// # Errors
    /// `Corruption` for a `.txnindex` entry that fails its checks; `Io`; `Closed`.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        let found = self.aborted_between(from, to);
        self.closed_under(found)
    }

    fn aborted_between(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>> {
        let segs = self.snapshot();
        let first = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        let mut out = Vec::new();
        for seg in &segs[first..] {
            for e in seg.txn_index.entries(self.fs.as_ref())?.iter() {
                if e.last_offset >= from && e.first_offset < to {
                    out.push(*e);
                }
                if e.last_stable_offset >= to {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Publishes the first unstable offset of the producer state (under the append
    /// lock, before the end offset moves).
    pub(super) fn publish_first_unstable(&self, w: &Writer) {
        let first = w.producers.first_open_offset().unwrap_or(i64::MAX);
        self.first_unstable.store(first, Ordering::Release);
    }

    /// Rewrites the `.txnindex` of every segment from `from` (a segment base) on from
    /// `aborted` (the entries of the markers a replay from `from` met). Each rewritten
    /// file is synced, and the directory when files were created or removed.
    pub(super) fn rewrite_txn_indexes(&self, from: i64, aborted: &[AbortedTxn]) -> Result<()> {
        let fs = self.fs.as_ref();
        let segs = self.snapshot();
        let first = segs.partition_point(|s| s.base < from);
        let mut dir_changed = false;
        for (i, seg) in segs.iter().enumerate().skip(first) {
            let upper = segs.get(i + 1).map_or(i64::MAX, |s| s.base);
            let entries = aborted
                .iter()
                .filter(|e| e.last_offset >= seg.base && e.last_offset < upper)
                .copied()
                .collect();
            dir_changed |= seg.txn_index.rewrite(fs, entries, self.opened_unsynced)?;
        }
        if dir_changed {
            fs.sync_dir(&self.dir)
                .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        }
        Ok(())
    }
}
