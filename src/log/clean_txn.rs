//! The transaction rules of compaction (Kafka's `CleanedTransactionMetadata` and the
//! producer rules of `Cleaner.cleanInto`), applied batch by batch while a pass walks the
//! log from its first segment (see `clean.rs` for the pass itself).
//!
//! - **Aborted data**: a transactional batch that an aborted transaction (a `.txnindex`
//!   entry: producer, first offset, ABORT marker offset) covers is dropped whatever its
//!   keys.
//! - **A producer's last batch** (its highest data batch in the whole log, found by a
//!   scan of batch headers at the start of the pass) is kept, with no records if none
//!   survives, so the producer's sequence and epoch stay in the log (Kafka does the same
//!   for its active producers). A marker that is a producer's last batch of all is
//!   kept as it is: it holds the producer's latest epoch.
//! - **Markers** (COMMIT and ABORT control batches) are never deduplicated by key. The
//!   walk notes, per producer, which batches of the transaction a marker ends it met
//!   (the transaction still had data when the pass began) and which of those it kept.
//!   A marker whose transaction kept no batch in this pass gets a delete horizon (bit 6
//!   of the attributes and the base timestamp, as tombstones do) unless it has one; a
//!   marker past its horizon is removed by a pass that met no batch of its transaction
//!   at all, so a marker never goes while a batch of its transaction is in the log.
//!   That keeps `__consumer_offsets` right (a transaction's offsets apply at its COMMIT
//!   marker) and every replay of the log consistent (each transactional batch is
//!   followed by its marker). A committed transaction whose records are still the
//!   latest of their keys keeps its marker for as long as they are.
//! - **`.txnindex`**: the rewritten segment lists only the aborted transactions whose
//!   ABORT marker it holds and of which the walk met a batch (Kafka's rule: an entry
//!   goes one pass after its data, so a reader that read the data from the segments
//!   before that pass still finds it).
//!
//! Where this differs from Kafka: Kafka stamps a marker in the pass after the one that
//! dropped its last batch (when it meets none); we stamp it in that pass already, and
//! removal still waits for a pass that meets none. Kafka keeps the last batch only of
//! producers not yet expired (`producer.id.expiration.ms`); the cleaner here keeps every
//! producer's last batch in the log, expired or not (with it the marker of its last
//! transaction), which costs at most one batch per producer id. A marker removed at the end of a group leaves an empty control batch,
//! as Kafka's cleaner does (`RETAIN_EMPTY`). The header scan costs one 61-byte read per
//! batch of the log and a map entry per producer id.

use std::collections::HashMap;

use super::Log;
use super::clean::Cleaning;
use super::txn_index::AbortedTxn;
use crate::error::Result;
use crate::format::batch::{BatchHeader, rebuild_batch};
use crate::format::{Batch, ControlRecordType, Record};

/// Where a producer's batches end in the log.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProducerEnd {
    /// The last offset of its last data batch.
    last_data: Option<i64>,
    /// The base offset of its last batch, data or marker.
    last_batch: i64,
}

/// An aborted transaction the pass may meet.
#[derive(Debug)]
struct Aborted {
    txn: AbortedTxn,
    /// The walk met one of its batches (it still had data when the pass began).
    seen: bool,
    /// The pass kept one of its batches.
    retained: bool,
}

/// What the walk knows of a producer's transaction before its marker.
#[derive(Debug, Default, Clone, Copy)]
struct Met {
    seen: bool,
    retained: bool,
}

/// The transaction state of one compaction pass.
#[derive(Debug, Default)]
pub(super) struct TxnCleaning {
    /// Per producer, its aborted transactions by marker offset.
    aborted: HashMap<i64, Vec<Aborted>>,
    /// Per producer, its transactional batches since its last marker that no aborted
    /// transaction covers (committed ones: the walk is below the last stable offset).
    committed: HashMap<i64, Met>,
    ends: HashMap<i64, ProducerEnd>,
    /// The entries of the ABORT markers of the group being written that keep theirs.
    entries: Vec<AbortedTxn>,
    /// Per producer, the offsets of the COMMIT and ABORT markers the pass kept, in
    /// order (see [`kept_marker_between`](Self::kept_marker_between)).
    kept_markers: HashMap<i64, Vec<i64>>,
}

/// Which transaction a data batch belongs to, for [`TxnCleaning::retained`].
#[derive(Debug, Clone, Copy)]
enum Slot {
    None,
    Aborted(i64, usize),
    Committed(i64),
}

/// What the transaction rules say of a data batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct DataBatch {
    /// It belongs to an aborted transaction: its records go.
    pub(super) aborted: bool,
    /// It is its producer's last data batch: it stays, if need be with no records.
    pub(super) producer_last: bool,
    slot: Slot,
}

/// What becomes of a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerFate {
    /// Copied as it is.
    Keep,
    /// Its transaction kept no batch: copied with a delete horizon from now.
    Stamp,
    /// Copied with its horizon, which the next pass must look at (`i64`).
    Wait(i64),
    /// Removed (an empty batch stays when it ends the group).
    Remove,
}

impl TxnCleaning {
    /// The state for a pass over a log whose aborted transactions (overlapping the
    /// walk) are `aborted` and whose producers end as `ends` says.
    pub(super) fn new(aborted: &[AbortedTxn], ends: HashMap<i64, ProducerEnd>) -> Self {
        let mut by_producer: HashMap<i64, Vec<Aborted>> = HashMap::new();
        for t in aborted {
            by_producer.entry(t.producer_id).or_default().push(Aborted {
                txn: *t,
                seen: false,
                retained: false,
            });
        }
        for txns in by_producer.values_mut() {
            txns.sort_by_key(|a| a.txn.last_offset);
            txns.dedup_by_key(|a| a.txn.last_offset);
        }
        TxnCleaning {
            aborted: by_producer,
            ends,
            ..TxnCleaning::default()
        }
    }

    /// Notes a data batch the walk met and says what the transaction rules want of it.
    pub(super) fn data_batch(&mut self, h: &BatchHeader) -> DataBatch {
        let producer_last = h.producer_id >= 0
            && self
                .ends
                .get(&h.producer_id)
                .is_some_and(|e| e.last_data == Some(h.last_offset()));
        let mut slot = Slot::None;
        if h.is_transactional() && h.producer_id >= 0 {
            // The aborted transaction covering the batch: the first one whose marker
            // follows it, if it began at or before it.
            let covering = self.aborted.get_mut(&h.producer_id).and_then(|txns| {
                let i = txns.partition_point(|a| a.txn.last_offset <= h.base_offset);
                txns.get_mut(i)
                    .filter(|a| a.txn.first_offset <= h.base_offset)
                    .map(|a| (i, a))
            });
            slot = match covering {
                Some((i, a)) => {
                    a.seen = true;
                    Slot::Aborted(h.producer_id, i)
                }
                None => {
                    self.committed.entry(h.producer_id).or_default().seen = true;
                    Slot::Committed(h.producer_id)
                }
            };
        }
        DataBatch {
            aborted: matches!(slot, Slot::Aborted(..)),
            producer_last,
            slot,
        }
    }

    /// Notes that the pass kept the data batch `d` (with or without records).
    pub(super) fn retained(&mut self, d: &DataBatch) {
        match d.slot {
            Slot::None => {}
            Slot::Aborted(pid, i) => {
                if let Some(a) = self.aborted.get_mut(&pid).and_then(|t| t.get_mut(i)) {
                    a.retained = true;
                }
            }
            Slot::Committed(pid) => self.committed.entry(pid).or_default().retained = true,
        }
    }

    /// Decides the fate of the marker `b` at `now` (and closes its producer's
    /// transaction in the walk's state).
    pub(super) fn marker(&mut self, b: &Batch, now: i64) -> MarkerFate {
        let h = b.header();
        let pid = h.producer_id;
        let producer_last = pid >= 0
            && self
                .ends
                .get(&pid)
                .is_some_and(|e| e.last_batch == h.base_offset);
        let kind = match b.control_record() {
            Ok(Some(c)) => c.kind,
            // An empty control batch: a marker removed before, kept then to end a group.
            Err(_) if h.records_count == 0 && !producer_last => return MarkerFate::Remove,
            // Not a marker we understand: left alone.
            _ => return MarkerFate::Keep,
        };
        // Batches of the transaction the marker ends: those met since the producer's
        // last marker, and for an ABORT the aborted transaction it ends.
        let mut met = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                self.committed.remove(&pid).unwrap_or_default()
            }
            ControlRecordType::Other(_) => return MarkerFate::Keep,
        };
        if kind == ControlRecordType::Abort {
            let ended = self.aborted.get(&pid).and_then(|txns| {
                let i = txns.partition_point(|a| a.txn.last_offset < h.base_offset);
                txns.get(i).filter(|a| a.txn.last_offset == h.base_offset)
            });
            if let Some(a) = ended {
                met.seen |= a.seen;
                met.retained |= a.retained;
                if a.seen {
                    self.entries.push(a.txn);
                }
            }
        }
        let fate = if met.retained || producer_last {
            MarkerFate::Keep
        } else if !h.has_delete_horizon() {
            MarkerFate::Stamp
        } else if !met.seen && now >= h.base_timestamp {
            MarkerFate::Remove
        } else {
            MarkerFate::Wait(h.base_timestamp)
        };
        if fate != MarkerFate::Remove {
            self.kept_markers
                .entry(pid)
                .or_default()
                .push(h.base_offset);
        }
        fate
    }

    /// Whether the pass kept a COMMIT or ABORT marker of `pid` at an offset in
    /// `from..to`. A removed marker at `to` closes the transaction a snapshot at
    /// `from` holds open only if none did: a replay from that snapshot meets such a
    /// marker, which closes the snapshot's transaction, and the removed marker's
    /// transaction began after it (it has no batch left, so a replay never opens it).
    pub(super) fn kept_marker_between(&self, pid: i64, from: i64, to: i64) -> bool {
        self.kept_markers.get(&pid).is_some_and(|kept| {
            let i = kept.partition_point(|&o| o < from);
            kept.get(i).is_some_and(|&o| o < to)
        })
    }

    /// The `.txnindex` entries of the group just written (its ABORT markers that keep
    /// their entry), in marker order.
    pub(super) fn take_entries(&mut self) -> Vec<AbortedTxn> {
        std::mem::take(&mut self.entries)
    }
}

impl Log {
    /// Where each producer's batches end in the log (its last data batch and its last
    /// batch of all), from the batch headers of every segment. Batches appended while
    /// the pass runs may be missed: that only keeps a batch that need not be kept.
    ///
    /// # Errors
    /// `Corruption` for a header that does not fit its segment; `Io`.
    pub(super) fn producer_ends(&self) -> Result<HashMap<i64, ProducerEnd>> {
        let mut ends: HashMap<i64, ProducerEnd> = HashMap::new();
        for seg in self.snapshot().iter() {
            let limit = seg.size();
            let mut pos = 0u64;
            while pos < limit {
                let h = self.header_at(seg, pos, limit)?;
                if h.producer_id >= 0 {
                    let e = ends.entry(h.producer_id).or_default();
                    e.last_batch = e.last_batch.max(h.base_offset);
                    if !h.is_control() {
                        e.last_data = e.last_data.max(Some(h.last_offset()));
                    }
                }
                pos += h.size().expect("checked by header_at") as u64;
            }
        }
        Ok(ends)
    }

    /// Appends what the cleaner keeps of the marker `b` to `out`.
    pub(super) fn emit_marker(
        &self,
        b: &Batch,
        last_in_group: bool,
        ctx: &mut Cleaning,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let h = b.header();
        match ctx.txn.marker(b, ctx.now_ms) {
            MarkerFate::Keep => out.extend_from_slice(b.bytes()),
            MarkerFate::Wait(horizon) => {
                ctx.next_horizon = ctx.next_horizon.min(horizon);
                out.extend_from_slice(b.bytes());
            }
            MarkerFate::Stamp => {
                let records: Vec<Record> = b
                    .records_with(&self.config.decode)?
                    .collect::<Result<_>>()?;
                ctx.next_horizon = ctx.next_horizon.min(ctx.horizon);
                out.extend_from_slice(&rebuild_batch(h, &records, Some(ctx.horizon))?);
            }
            MarkerFate::Remove => {
                if h.records_count > 0 {
                    ctx.markers_removed += 1;
                    ctx.removed_markers.push(b.clone());
                }
                if last_in_group {
                    out.extend_from_slice(&rebuild_batch(h, &[], None)?);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::batch::BatchHeader;
    use crate::format::{BatchBuilder, control_batch};

    const NOW: i64 = 1_000;

    fn data(pid: i64, base: i64, transactional: bool) -> BatchHeader {
        let mut b = BatchBuilder::new()
            .producer(pid, 0, 0)
            .transactional(transactional);
        b.push(0, Some(b"k"), Some(b"v"), &[]).unwrap();
        let mut bytes = b.finish().unwrap();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        BatchHeader::parse(&bytes).unwrap()
    }

    fn marker(pid: i64, base: i64, kind: ControlRecordType, horizon: Option<i64>) -> Batch {
        let mut bytes = control_batch(kind, pid, 0, 0, 0).unwrap();
        bytes[..8].copy_from_slice(&base.to_be_bytes());
        let b = Batch::parse(bytes::Bytes::from(bytes)).unwrap();
        let records: Vec<Record> = b.records().unwrap().map(Result::unwrap).collect();
        let rebuilt = rebuild_batch(b.header(), &records, horizon).unwrap();
        Batch::parse(bytes::Bytes::from(rebuilt)).unwrap()
    }

    fn end(last_data: i64, last_batch: i64) -> ProducerEnd {
        ProducerEnd {
            last_data: Some(last_data),
            last_batch,
        }
    }

    /// Producer 1: an aborted transaction (0, marker 1), then its last batch (2) and
    /// marker (3). Producer 2: a committed transaction (4, marker 5), then a plain last
    /// batch (6).
    fn walk() -> TxnCleaning {
        let aborted = [AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 1,
            last_stable_offset: 2,
        }];
        TxnCleaning::new(&aborted, HashMap::from([(1, end(2, 3)), (2, end(6, 6))]))
    }

    #[test]
    fn a_marker_is_stamped_once_its_data_is_dropped_and_removed_once_none_is_met() {
        use ControlRecordType::{Abort, Commit};
        // Pass 1: the data is met and dropped: both markers get a horizon; the abort's
        // entry stays (the data was there when the pass began).
        let mut t = walk();
        let d = t.data_batch(&data(1, 0, true));
        assert!(d.aborted && !d.producer_last);
        assert_eq!(t.marker(&marker(1, 1, Abort, None), NOW), MarkerFate::Stamp);
        assert_eq!(t.take_entries().len(), 1);
        let d = t.data_batch(&data(2, 4, true));
        assert!(!d.aborted);
        assert_eq!(
            t.marker(&marker(2, 5, Commit, None), NOW),
            MarkerFate::Stamp
        );
        // The same pass keeping the committed batch keeps its marker as it is.
        let mut t = walk();
        let d = t.data_batch(&data(2, 4, true));
        t.retained(&d);
        assert_eq!(t.marker(&marker(2, 5, Commit, None), NOW), MarkerFate::Keep);
        // Pass 2, before the horizon: waiting; the entry goes.
        let mut t = walk();
        let stamped = marker(1, 1, Abort, Some(NOW + 10));
        assert_eq!(t.marker(&stamped, NOW), MarkerFate::Wait(NOW + 10));
        assert!(t.take_entries().is_empty());
        // Pass 3, past it: removed.
        let mut t = walk();
        assert_eq!(t.marker(&stamped, NOW + 10), MarkerFate::Remove);
        // Past the horizon, but a batch of the transaction was met: not yet.
        let mut t = walk();
        t.data_batch(&data(1, 0, true));
        assert_eq!(t.marker(&stamped, NOW + 10), MarkerFate::Wait(NOW + 10));
    }

    #[test]
    fn producers_last_batches_and_markers_stay() {
        use ControlRecordType::Abort;
        let mut t = walk();
        assert!(t.data_batch(&data(1, 2, true)).producer_last);
        assert!(t.data_batch(&data(2, 6, false)).producer_last);
        assert!(!t.data_batch(&data(2, 4, true)).producer_last);
        // Producer 1's marker at 3 is its last batch: kept whatever its horizon.
        let mut t = walk();
        assert_eq!(
            t.marker(&marker(1, 3, Abort, Some(0)), NOW),
            MarkerFate::Keep
        );
    }
}
