//! Producer snapshot files (Kafka's `<offset>.snapshot`): written at every roll and at
//! close, removed with the segments they no longer describe, and the rebuild of the
//! producer state at open (load the newest usable snapshot, then scan the batches after
//! it).
//!
//! A snapshot at offset `S` describes every batch below `S`. An open after a crash uses
//! only a snapshot at or below the recovery point (everything below it was synced, so
//! the batches it describes are all still there), or the one at the first segment's
//! base (nothing below it can be lost any more), and at or above the first segment
//! (the batches after it can be scanned), and scans from it to the log end: at most
//! the data since the last roll before the recovery point. A roll writes a snapshot
//! whenever producers are known, and the next flush (or truncation) syncs it before the
//! recovery point passes it: so without a snapshot at or below the recovery point no
//! producer had written when the segment holding it was rolled, and the replay starts
//! there with no state; with only unreadable ones, it starts at the first segment. The
//! open then writes, synced, the state at every segment base it replayed past. The
//! same replay rebuilds the open transactions after a truncation, and the `.txnindex`
//! files of the segments it covers at open (Kafka regenerates those of the segments it
//! recovers).

use super::producer_state::ProducerStates;
use super::read::SegmentRead;
use super::segment::{file_name, parse_file_name};
use super::txn_index::AbortedTxn;
use super::{Log, checkpoint};
use crate::error::{Result, io_ctx};
use crate::format::{Batch, ControlRecordType};
use crate::fs::FileSystem;
use std::path::Path;

/// The largest snapshot read: about 23 million producers (each held in memory as well).
/// Nothing limits how many producers a snapshot holds when it is written, and a
/// snapshot passed over loses what only it holds (producers whose batches retention
/// deleted, a transaction open since before the first segment): the bound only keeps a
/// file the store did not write (a huge sparse one) from exhausting memory.
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// Offsets of the producer snapshots in `dir`, ascending.
fn snapshot_offsets(fs: &dyn FileSystem, dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut offsets: Vec<i64> = fs
        .list_dir(dir)?
        .iter()
        .filter_map(|n| parse_file_name(n, "snapshot"))
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// The snapshot at `offset`, if it is there and valid (`None`: missing, too large or
/// not a valid snapshot, which the caller passes over).
///
/// # Errors
/// `Io` if it cannot be read: passed over, a snapshot that is fine would make the
/// rebuild start from an older one or none, and lose what only it holds (a
/// transaction open since before the first segment).
fn read_snapshot(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Result<Option<ProducerStates>> {
    let path = dir.join(file_name(offset, "snapshot"));
    let whole = || -> std::io::Result<Option<bytes::Bytes>> {
        if !fs.exists(&path)? {
            return Ok(None);
        }
        let f = fs.open_read(&path)?;
        let len = usize::try_from(f.len()?).unwrap_or(usize::MAX);
        if len > MAX_SNAPSHOT_BYTES {
            tracing::warn!("{}: {len} bytes is too large; ignored", path.display());
            return Ok(None);
        }
        // (One copy in memory: the file's bytes, decoded in place.)
        Ok(Some(f.read_exact_at(0, len)?))
    };
    let Some(bytes) = whole().map_err(io_ctx(format!("read {}", path.display())))? else {
        return Ok(None);
    };
    let states = ProducerStates::decode_snapshot(&bytes, offset);
    if states.is_none() {
        tracing::warn!("{}: not a valid producer snapshot; ignored", path.display());
    }
    Ok(states)
}

/// The largest producer id any valid snapshot in `dir` names (`None`: none).
///
/// # Errors
/// `Io` if a snapshot or the directory cannot be read.
pub(crate) fn max_snapshot_producer_id(fs: &dyn FileSystem, dir: &Path) -> Result<Option<i64>> {
    let offsets = snapshot_offsets(fs, dir).map_err(io_ctx(format!("list {}", dir.display())))?;
    let mut max = None;
    for offset in offsets {
        if let Some(states) = read_snapshot(fs, dir, offset)? {
            max = max.max(states.max_producer_id());
        }
    }
    Ok(max)
}

impl Log {
    /// Writes `producers` as the snapshot at `offset` (atomically, synced).
    pub(super) fn write_producer_snapshot(
        &self,
        offset: i64,
        producers: &ProducerStates,
    ) -> Result<()> {
        let name = file_name(offset, "snapshot");
        checkpoint::write_atomic(
            self.fs.as_ref(),
            &self.dir,
            &name,
            &producers.encode_snapshot(),
        )
        .map_err(io_ctx(format!("write the producer snapshot {name}")))
    }

    /// Writes snapshot `bytes` as the snapshot at `offset` in place, without renaming:
    /// synced if `sync`. Unsynced (at a roll, under the append lock), a snapshot a crash
    /// lost or tore fails its length or CRC check, and the rebuild then starts from an
    /// earlier one, or with none readable from the first segment; the next flush (or a
    /// truncation) writes it again, synced, before the recovery point passes it or a
    /// directory fsync makes its name durable.
    pub(super) fn write_snapshot_bytes(&self, offset: i64, bytes: &[u8], sync: bool) -> Result<()> {
        let path = self.dir.join(file_name(offset, "snapshot"));
        self.fs
            .open(&path, true)
            .and_then(|f| {
                f.write_all_at(bytes, 0)?;
                f.set_len(bytes.len() as u64)?;
                if sync { f.sync_data() } else { Ok(()) }
            })
            .map_err(io_ctx(format!(
                "write the producer snapshot {}",
                path.display()
            )))
    }

    /// Applies `markers` (ascending), which the cleaner is about to remove, to every
    /// snapshot below them. A snapshot written while a marker's transaction was open
    /// holds it open; a replay from it (a truncation, an open after a crash) over the
    /// cleaned log would never meet the marker and reopen the transaction for good.
    /// The marker's transaction has no batch left in the cleaned log, so applying it
    /// to the snapshot is what a replay meeting it would have done. A marker is not
    /// applied to a snapshot when `kept(producer, snapshot, marker)` says a marker of
    /// its producer that the log keeps lies between them: that one closes what the
    /// snapshot holds open (the removed marker's transaction began after it). Done
    /// before the swap: until the swap the log still holds the markers, and meeting
    /// one whose transaction is closed already changes nothing. A snapshot that cannot
    /// be read is left (a replay does not use it). Each is replaced whole (a temporary
    /// file renamed over it): it may be the only one that still knows producers whose
    /// batches retention deleted, and an overwrite a crash tore would lose it. A failed
    /// fsync poisons the log.
    pub(super) fn apply_removed_markers(
        &self,
        markers: &[Batch],
        kept: impl Fn(i64, i64, i64) -> bool,
    ) -> Result<()> {
        let Some(last) = markers.last().map(Batch::base_offset) else {
            return Ok(());
        };
        let fs = self.fs.as_ref();
        let offsets = snapshot_offsets(fs, &self.dir)
            .map_err(io_ctx(format!("list {}", self.dir.display())))?;
        for offset in offsets.into_iter().filter(|&o| o <= last) {
            let Some(mut states) = read_snapshot(fs, &self.dir, offset)? else {
                continue;
            };
            let before = states.encode_snapshot();
            let mut aborted = Vec::new();
            for m in markers.iter().filter(|m| {
                m.base_offset() >= offset && !kept(m.header().producer_id, offset, m.base_offset())
            }) {
                self.replay_batch(m, &mut states, &mut aborted);
            }
            let bytes = states.encode_snapshot();
            if bytes == before {
                // None of the markers' transactions was open here: nothing to rewrite.
                continue;
            }
            let name = file_name(offset, "snapshot");
            self.write_file_or_poison(&name, &bytes, "rewrite the producer snapshot", false)?;
        }
        Ok(())
    }

    /// Removes the partition's producer snapshots whose offset `doomed` says.
    pub(super) fn remove_producer_snapshots(&self, doomed: impl Fn(i64) -> bool) -> Result<usize> {
        let offsets = snapshot_offsets(self.fs.as_ref(), &self.dir)
            .map_err(io_ctx(format!("list {}", self.dir.display())))?;
        let doomed: Vec<i64> = offsets.into_iter().filter(|&o| doomed(o)).collect();
        for &offset in &doomed {
            let path = self.dir.join(file_name(offset, "snapshot"));
            self.fs.remove_file(&path).map_err(io_ctx(format!(
                "remove the producer snapshot {}",
                path.display()
            )))?;
        }
        Ok(doomed.len())
    }

    /// The producer state an open starts from. Clean: the snapshot the close wrote at
    /// the log end (none: no producers; a damaged one: rebuilt as after a crash). After a
    /// crash: replayed (see [`replay_producers`](Self::replay_producers)) up to the log
    /// end from the newest usable snapshot at a segment base at or below the recovery
    /// point (or the first segment's), or from the segment holding the recovery point
    /// with no state (no snapshot there means no producer had written when that segment
    /// was rolled); the state at each segment base passed is written as its snapshot,
    /// synced; and the `.txnindex` of every segment replayed is rewritten whole from the
    /// markers it holds (so nothing a crash tore in one is kept). `scanned_producers`:
    /// recovery's scan met batches with a producer id (without them and without a
    /// snapshot there is nothing to replay).
    ///
    /// Compacted logs keep epochs and transactions but no batches (the cleaner keeps only
    /// a producer's last batch of the five remembered, and a log compacted before it
    /// did, or by Kafka for an expired producer, may lack even that): any sequence is
    /// accepted from a known epoch.
    ///
    /// # Errors
    /// `Io`/`Corruption` reading a snapshot, the batches or the `.txnindex` files below
    /// the replay start; `Io` writing the `.txnindex` files.
    pub(super) fn rebuild_producer_state(
        &self,
        clean: bool,
        recovery_point: i64,
        scanned_producers: bool,
    ) -> Result<ProducerStates> {
        let end = self.log_end_offset();
        let fs = self.fs.as_ref();
        if clean {
            let path = self.dir.join(file_name(end, "snapshot"));
            if !fs
                .exists(&path)
                .map_err(io_ctx(format!("stat {}", path.display())))?
            {
                return Ok(ProducerStates::default());
            }
            if let Some(states) = read_snapshot(fs, &self.dir, end)? {
                return Ok(states);
            }
        }
        let limit = if clean { end } else { recovery_point.min(end) };
        // The open's flush moves the recovery point to the active segment: the state
        // at every segment base the replay passes is written (synced) for a later
        // rebuild to start from. The rolls' snapshots there may have been torn or lost
        // by the crash, or be whole only in the page cache (a process crash): once
        // retention removes the segments before such a base, nothing else holds the
        // state there (a transaction open since then).
        let bases: Vec<i64> = self.snapshot().iter().map(|s| s.base).collect();
        let replay =
            self.replay_producers(limit, end, !clean && !scanned_producers, true, &bases)?;
        // What follows writes to the directory: a log opened clean stops being so first.
        self.touch()?;
        self.rewrite_txn_indexes(replay.from, &replay.aborted)?;
        for (base, state) in &replay.captured {
            if !state.is_empty() && *base > replay.from {
                self.write_snapshot_bytes(*base, &state.encode_snapshot(), true)?;
            }
        }
        let mut states = replay.states;
        if self.live.allow_offset_gaps() {
            states.forget_batches();
        }
        Ok(states)
    }

    /// The producer state at `to` (a batch boundary): the newest usable snapshot at or
    /// below `limit` (and at or above the first segment), else no state at the base of
    /// the segment holding `limit` (at the first segment if there were snapshots, none
    /// readable), then every batch from there up to `to` replayed.
    /// `skip_without_snapshot`: without a snapshot, replay nothing (no batch there has
    /// a producer id); `at_segment_base`: use only snapshots at segment bases. Also
    /// returns where the replay started and the aborted transactions whose ABORT
    /// markers it met, as their `.txnindex` entries, and for each offset of
    /// `capture_at` (ascending) at or after where the replay starts, the state before
    /// it.
    pub(super) fn replay_producers(
        &self,
        limit: i64,
        to: i64,
        skip_without_snapshot: bool,
        at_segment_base: bool,
        capture_at: &[i64],
    ) -> Result<Replay> {
        let fs = self.fs.as_ref();
        let segs = self.snapshot();
        let first = segs.first().map_or(to, |s| s.base);
        // A recovery point below the first segment (retention removed the segments it
        // named, or it was not trusted) still lets the replay start from the snapshot
        // at the first segment's base: it holds the state of everything before it (a
        // transaction open since a removed segment), which no replay can recover.
        let limit = limit.max(first);
        let offsets = snapshot_offsets(fs, &self.dir)
            .map_err(io_ctx(format!("list {}", self.dir.display())))?;
        let candidates: Vec<i64> = offsets
            .into_iter()
            .rev()
            .filter(|&o| o >= first && o <= limit)
            .filter(|&o| !at_segment_base || segs.binary_search_by_key(&o, |s| s.base).is_ok())
            .collect();
        let mut found = None;
        for &o in &candidates {
            if let Some(states) = read_snapshot(fs, &self.dir, o)? {
                found = Some((o, states));
                break;
            }
        }
        // No snapshot at all: no producer had written at the rolls, and the state starts
        // empty at the segment holding `limit`. Only unreadable ones (damaged, or a
        // crash kept a name whose bytes were never synced): producers had written, and
        // nothing says what, so the replay starts at the first segment.
        let holding = if candidates.is_empty() {
            segs.iter()
                .rev()
                .find(|s| s.base <= limit)
                .map_or(first, |s| s.base)
        } else {
            first
        };
        let skip_without_snapshot = skip_without_snapshot && candidates.is_empty();
        let (from, mut states, replay) = match found {
            Some((o, states)) => (o, states, true),
            None => (holding, ProducerStates::default(), !skip_without_snapshot),
        };
        let mut aborted = Vec::new();
        let mut captured = Vec::new();
        let mut points = capture_at
            .iter()
            .copied()
            .filter(|&at| at >= from)
            .peekable();
        let mut offset = from;
        let start = segs.partition_point(|s| s.base <= from).saturating_sub(1);
        // Segment by segment: the log start offset may lie above `from`.
        for seg in segs[start..].iter().filter(|_| replay) {
            // Nothing below `to` lies here or further (after an offset gap at a segment
            // boundary, `offset` stays below `to` with no batch left to replay).
            if seg.base >= to {
                break;
            }
            while offset < to {
                let before = offset;
                let mut budget = 1 << 20;
                let mut batches = Vec::new();
                let read = self.read_segment(
                    seg,
                    seg.size(),
                    offset.max(seg.base),
                    &mut budget,
                    &mut batches,
                )?;
                for b in batches.iter().filter(|b| b.base_offset() < to) {
                    if b.last_offset() >= offset {
                        while let Some(at) = points.next_if(|&at| at <= b.base_offset()) {
                            captured.push((at, states.clone()));
                        }
                        self.replay_batch(b, &mut states, &mut aborted);
                        offset = b.last_offset() + 1;
                    }
                }
                // No batch of this read below `to` (a gap inside the segment up to it):
                // reading on would read the same batches again.
                let stuck = offset == before;
                if stuck || batches.is_empty() || matches!(read, SegmentRead::Exhausted(_)) {
                    break;
                }
            }
        }
        captured.extend(points.filter(|&at| at <= to).map(|at| (at, states.clone())));
        Ok(Replay {
            from,
            states,
            aborted,
            captured,
        })
    }

    /// Replays one batch read from the log into `states`; an ABORT marker that closes a
    /// transaction adds its `.txnindex` entry to `aborted`.
    fn replay_batch(
        &self,
        b: &crate::format::Batch,
        states: &mut ProducerStates,
        aborted: &mut Vec<AbortedTxn>,
    ) {
        let h = b.header();
        if !h.is_control() {
            states.replay(h);
            return;
        }
        let marker = match b.control_record() {
            Ok(Some(c)) if h.producer_id >= 0 => c,
            Ok(_) => return,
            // A marker the cleaner removed, its batch kept empty to end a group.
            Err(_) if h.records_count == 0 => return,
            Err(e) => {
                tracing::warn!(
                    "{}: control batch at offset {}: {e}; not replayed",
                    self.dir.display(),
                    h.base_offset
                );
                return;
            }
        };
        let (ControlRecordType::Abort | ControlRecordType::Commit) = marker.kind else {
            return;
        };
        let done = states.record_marker(
            h.producer_id,
            h.producer_epoch,
            marker.coordinator_epoch.unwrap_or(-1),
            h.base_offset,
            h.max_timestamp,
        );
        if let Some(t) = done.filter(|_| marker.kind == ControlRecordType::Abort) {
            aborted.push(AbortedTxn {
                producer_id: t.producer_id,
                first_offset: t.first_offset,
                last_offset: t.last_offset,
                last_stable_offset: states.first_open_offset().unwrap_or(t.last_offset + 1),
            });
        }
    }
}

/// What [`Log::replay_producers`] found.
pub(super) struct Replay {
    /// Where the replay started (a snapshot's offset or a segment base).
    pub(super) from: i64,
    pub(super) states: ProducerStates,
    /// `.txnindex` entries of the ABORT markers from `from` on.
    pub(super) aborted: Vec<AbortedTxn>,
    /// The state before each `capture_at` offset asked for, with the offset.
    pub(super) captured: Vec<(i64, ProducerStates)>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::read_snapshot;
    use crate::fs::SimFs;

    /// From a review: snapshots over 64 MiB (1.46 million producers, e.g. one
    /// idempotent producer per request for a day) were written but passed over when
    /// read, and every open rebuilt the state from the first segment without the
    /// producers only the snapshot held.
    #[test]
    fn a_snapshot_of_a_million_and_a_half_producers_is_read() {
        let n: i64 = 1_500_000;
        let mut bytes = Vec::with_capacity(10 + 46 * n as usize);
        bytes.extend_from_slice(&1i16.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&(n as i32).to_be_bytes());
        for pid in 0..n {
            bytes.extend_from_slice(&pid.to_be_bytes()); // producer id
            bytes.extend_from_slice(&0i16.to_be_bytes()); // epoch
            bytes.extend_from_slice(&0i32.to_be_bytes()); // last sequence
            bytes.extend_from_slice(&pid.to_be_bytes()); // last offset
            bytes.extend_from_slice(&0i32.to_be_bytes()); // offset delta
            bytes.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
            bytes.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
            bytes.extend_from_slice(&(-1i64).to_be_bytes()); // no open transaction
        }
        assert!(bytes.len() > 64 << 20);
        let crc = crc32c::crc32c(&bytes[6..]);
        bytes[2..6].copy_from_slice(&crc.to_be_bytes());
        let fs = SimFs::new();
        let dir = Path::new("/p/t-0");
        fs.write_file(&dir.join("00000000000001500000.snapshot"), bytes);
        let states = read_snapshot(&fs, dir, n)
            .expect("read")
            .expect("a valid snapshot");
        assert_eq!(states.producers.len(), n as usize);
    }
}
