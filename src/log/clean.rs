//! Log compaction (Kafka's `LogCleaner`): keep the last record per key, with its
//! original offset, codec and headers; tombstones stay for `delete_retention_ms` (the
//! delete-horizon bit) and are then removed.
//!
//! A pass: the dirty range starts at the cleaner checkpoint and ends before the active
//! segment (and before the first segment younger than `min_compaction_lag_ms`). A key
//! map (key -> last offset) is built over it within a memory budget; when the budget is
//! used up the pass cleans up to where the map ends and the next pass continues. Every
//! sealed segment below that point is then recopied, from the first segment on, in
//! groups whose estimated output fits `segment_bytes` (so small segments, and segments
//! that mostly go, merge; see `group_segments`), keeping a
//! record iff it is the latest for its key (or lies past the map) and is not an expired
//! tombstone. Keyless records are dropped, as Kafka does. A batch left with no record
//! is dropped, unless it ends its group or is its producer's last data batch: it then
//! stays empty (its offsets, producer id, epoch and sequences).
//!
//! Transactions (the rules are in `clean_txn.rs`): nothing at or past the last stable
//! offset is cleaned; the batches of aborted transactions (found through the
//! `.txnindex`) are dropped and kept out of the key map; a marker gets a delete horizon
//! in the first pass that keeps no batch of its transaction, and is removed by a pass
//! past that horizon that finds no batch of its transaction left (never while one is
//! in the log); a marker that is its producer's last batch stays. The rewritten
//! segment's `.txnindex` keeps the aborted transactions that still had a batch when
//! the pass began.
//!
//! The earliest delete horizon of the tombstones and markers a pass kept is remembered
//! (in `streamlog.tombstone-horizon`), so a later pass runs to remove them even when
//! nothing new is dirty. Without that file (a directory from before it existed) the
//! first pass after opening recopies the clean section once to learn it.
//!
//! Each group's rewritten segment replaces the group through a crash-safe swap (the
//! protocol is described in `swap.rs`). The last batch of a group is always kept, if
//! need be with no records, so the swap file alone tells which offsets it replaces.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Log;
use super::checkpoint;
use super::clean_txn::TxnCleaning;
use super::index::TIME_ENTRY;
use super::read::SegmentRead;
use super::segment::{Segment, file_name};
use super::transactions::AbortedBatches;
use crate::error::{Error, Result, io_ctx};
use crate::format::Batch;
use crate::format::Record;
use crate::format::batch::{RECORD_BATCH_OVERHEAD, rebuild_batch};

/// File name of the cleaner checkpoint (Kafka's offset checkpoint text format; Kafka
/// keeps one per data directory, we keep one per partition).
pub(crate) const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

/// Our own file: the earliest delete horizon of the tombstones and markers the last pass
/// kept (offset-checkpoint text format; i64::MAX when none), so a reopened log knows
/// when a pass is due to remove them without rereading its segments.
pub(crate) const HORIZON_FILE: &str = "streamlog.tombstone-horizon";

/// The most input bytes one group of segments is cleaned from (see `group_segments`).
const MAX_GROUP_INPUT: u64 = i32::MAX as u64;

/// What the key map found in one segment: its keyed records, and how many of them a
/// later record of their key replaces (so compaction removes them).
#[derive(Debug, Default, Clone, Copy)]
struct Survival {
    seen: u64,
    replaced: u64,
}

/// Estimated heap cost of one key-map entry beyond the key bytes.
const KEY_ENTRY_OVERHEAD: usize = 64;

/// How a compaction pass runs. Built by the store from the topic config.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanPolicy {
    /// The current time; 0 (the default) = the log's clock.
    pub now_ms: i64,
    /// How long a tombstone, or a marker whose transaction has no data left, stays after
    /// the pass that first kept it.
    pub delete_retention_ms: i64,
    /// Segments whose newest record is younger than this are not cleaned yet.
    pub min_compaction_lag_ms: i64,
    /// A log whose oldest dirty segment is older than this is cleaned whatever its dirty
    /// ratio.
    pub max_compaction_lag_ms: i64,
    /// Clean only when dirty bytes / (clean + dirty bytes) reach this ratio.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory budget of the key map, in bytes (keys plus a fixed overhead per key).
    pub key_map_bytes: usize,
    /// Clean even below the dirty ratio (still never the active segment).
    pub force: bool,
}

impl Default for CleanPolicy {
    fn default() -> Self {
        CleanPolicy {
            now_ms: 0,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            key_map_bytes: 32 << 20,
            force: false,
        }
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Whether the log was cleaned (false: nothing dirty enough).
    pub cleaned: bool,
    /// Bytes of segments read and rewritten.
    pub bytes_read: u64,
    /// Bytes of the segments written in their place.
    pub bytes_written: u64,
    /// Segments before the pass.
    pub segments_before: usize,
    /// Segments after the pass (small ones are merged).
    pub segments_after: usize,
    /// Records removed (superseded, keyless, expired tombstones, or aborted).
    pub records_removed: u64,
    /// Transaction markers removed (their transaction had no data left and their delete
    /// horizon had passed).
    pub markers_removed: u64,
    /// The cleaner checkpoint after the pass: offsets below it are clean.
    pub clean_offset: i64,
}

impl Log {
    /// The cleaner checkpoint: offsets below it have been compacted.
    pub fn clean_offset(&self) -> i64 {
        *self.cleaner_offset.lock()
    }

    /// Runs one compaction pass if the log is dirty enough (see [`CleanPolicy`]).
    ///
    /// # Errors
    /// `Io` or `Corruption` from reading and writing; a failed fsync, or any error after
    /// a swap began, poisons the log (reopening finishes the swap). `Poisoned`;
    /// `Closed`.
    pub fn clean(&self, policy: &CleanPolicy) -> Result<CleanOutcome> {
        if !self.live.allow_offset_gaps() {
            return Err(Error::config(
                "allow_offset_gaps",
                "compaction removes records, so the log must allow offset gaps",
            ));
        }
        let now = if policy.now_ms > 0 {
            policy.now_ms
        } else {
            self.config.clock.now_ms()
        };
        let policy = &CleanPolicy {
            now_ms: now,
            ..policy.clone()
        };
        let _m = self.maintenance.lock();
        let _span =
            tracing::debug_span!("compaction", topic = %self.topic, partition = self.partition)
                .entered();
        self.check_writable()?;
        let segs = self.snapshot();
        let mut outcome = CleanOutcome {
            segments_before: segs.len(),
            segments_after: segs.len(),
            ..CleanOutcome::default()
        };
        let start = self.log_start_offset();
        let first_dirty = self.clean_offset().max(start).max(segs[0].base);
        outcome.clean_offset = first_dirty;
        // Sealed segments old enough to clean; the active one never is.
        let sealed = &segs[..segs.len() - 1];
        let lag_limit = policy.now_ms.saturating_sub(policy.min_compaction_lag_ms);
        // The lag holds back dirty segments only (Kafka looks from the first dirty
        // offset): a clean one was rewritten by an earlier pass, which made its file new.
        let cleanable = (0..sealed.len())
            .position(|i| {
                policy.min_compaction_lag_ms > 0
                    && segs[i + 1].base > first_dirty
                    && sealed[i].largest_timestamp() > lag_limit
            })
            .unwrap_or(sealed.len());
        // Nothing at or past the last stable offset: open transactions are not decided.
        let lso = self.last_stable_offset();
        let cleanable = (0..cleanable)
            .find(|&i| segs[i + 1].base > lso)
            .unwrap_or(cleanable);
        let cleanable_end = segs[cleanable].base;
        // A pass with nothing dirty still runs once a kept tombstone's or marker's horizon
        // has passed (KIP-534), to remove it.
        let horizon_due = policy.now_ms >= self.tombstone_horizon.load(Ordering::Acquire);
        if first_dirty >= cleanable_end && !horizon_due {
            return Ok(outcome);
        }
        let upper = |i: usize| segs[i + 1].base;
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        // Kafka's rule (KIP-354): overdue once the first batch of a dirty segment is
        // older than the lag (its newest record, or only the first dirty segment's, let
        // a record wait up to a segment's span longer, and for ever behind a segment
        // without timestamps).
        let lag = policy.max_compaction_lag_ms;
        let mut overdue = false;
        for (i, s) in sealed[..cleanable].iter().enumerate() {
            if upper(i) <= first_dirty {
                clean_bytes += s.size();
            } else {
                dirty_bytes += s.size();
                overdue = overdue
                    || (lag < i64::MAX
                        && s.first_batch_timestamp()
                            .is_some_and(|ts| ts >= 0 && policy.now_ms.saturating_sub(ts) > lag));
            }
        }
        let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes).max(1) as f64;
        if !policy.force && ratio < policy.min_cleanable_dirty_ratio && !overdue && !horizon_due {
            return Ok(outcome);
        }
        // Aborted transactions' batches are dropped and never shadow a key. (Reading
        // the `.txnindex` files here also keeps their entries in memory for readers of
        // the segments about to be replaced.)
        let aborted_txns = self.aborted_transactions(segs[0].base, cleanable_end)?;
        let aborted = AbortedBatches::new(&aborted_txns);
        let mut survival = vec![Survival::default(); segs.len()];
        let (map, map_end) = if first_dirty < cleanable_end {
            let range = (first_dirty, cleanable_end);
            self.build_key_map(
                range,
                policy.key_map_bytes,
                &aborted,
                (&segs, &mut survival),
            )?
        } else {
            (HashMap::new(), first_dirty)
        };
        // Recopy every sealed segment that starts below the map's end, in groups.
        let last = sealed[..cleanable].partition_point(|s| s.base < map_end);
        let groups = self.group_segments(&segs, last, &survival);
        if groups.is_empty() {
            return Ok(outcome);
        }
        // The durable point names the segment active at the last flush, which may be one
        // about to be rewritten; after this flush it names the current active segment,
        // which is never cleaned, so recovery never looks for a replaced file.
        self.touch()?;
        {
            let mut fl = self.flush_state.lock();
            self.sync_locked(&mut fl)?;
            self.record_in_both_slots()?;
        }
        let txn = TxnCleaning::new(&aborted_txns, self.producer_ends()?);
        let mut ctx = Cleaning {
            map: &map,
            txn,
            map_end,
            now_ms: policy.now_ms,
            horizon: policy
                .now_ms
                .saturating_add(policy.delete_retention_ms.max(0)),
            removed: 0,
            markers_removed: 0,
            removed_markers: Vec::new(),
            next_horizon: i64::MAX,
        };
        let mut replaced = 0usize;
        for (from, to) in groups {
            self.check_writable()?;
            let group = &segs[from..to];
            let group_end = segs[to].base;
            let written = self.clean_group(group, group_end, &mut ctx)?;
            outcome.bytes_read += group.iter().map(|s| s.size()).sum::<u64>();
            outcome.bytes_written += written;
            replaced += group.len() - 1;
        }
        outcome.records_removed = ctx.removed;
        outcome.markers_removed = ctx.markers_removed;
        outcome.segments_after = segs.len() - replaced;
        // The horizon first: a crash before the clean offset is written repeats the pass,
        // which writes it again. It is a hint: stale, it only makes a pass run early or
        // tombstones and markers wait for the next dirty pass. A failed fsync of it
        // poisons; a failed write (ENOSPC) only fails the pass.
        if self.tombstone_horizon.load(Ordering::Acquire) != ctx.next_horizon {
            let text =
                checkpoint::recovery_point_text(&self.topic, self.partition, ctx.next_horizon);
            self.write_file_or_poison(HORIZON_FILE, text.as_bytes(), "write", false)?;
            self.tombstone_horizon
                .store(ctx.next_horizon, Ordering::Release);
        }
        self.write_clean_offset(map_end, true)?;
        outcome.clean_offset = map_end;
        outcome.cleaned = true;
        tracing::info!(
            "{}: compacted {} bytes into {} ({} records removed); clean up to offset {map_end}",
            self.dir.display(),
            outcome.bytes_read,
            outcome.bytes_written,
            outcome.records_removed
        );
        Ok(outcome)
    }

    /// Key -> offset of its last record in `[from, to)`, within `budget` bytes; returns
    /// the map and the offset it covers up to (a batch boundary, or `to`). Counts in
    /// `survival` (one per segment of `segs`) the keyed records seen in each segment
    /// and those a later record of their key replaces.
    fn build_key_map(
        &self,
        (from, to): (i64, i64),
        budget: usize,
        aborted: &AbortedBatches,
        (segs, survival): (&[Arc<Segment>], &mut [Survival]),
    ) -> Result<(HashMap<Bytes, i64>, i64)> {
        let segment_of = |offset: i64| segs.partition_point(|s| s.base <= offset).max(1) - 1;
        let mut map: HashMap<Bytes, i64> = HashMap::new();
        let mut used = 0usize;
        let mut offset = from;
        while offset < to {
            let batches = self.read(offset, 1 << 20)?;
            if batches.is_empty() {
                break;
            }
            for b in &batches {
                if b.last_offset() < offset || b.base_offset() >= to {
                    continue;
                }
                if b.header().is_control() || aborted.contains(b.header()) {
                    continue;
                }
                let records: Vec<Record> = b
                    .records_with(&self.config.decode)?
                    .collect::<Result<_>>()?;
                let cost: usize = records
                    .iter()
                    .filter_map(|r| r.key.as_ref())
                    .filter(|k| !map.contains_key(*k))
                    .map(|k| k.len() + KEY_ENTRY_OVERHEAD)
                    .sum();
                if used > 0 && used + cost > budget {
                    return Ok((map, b.base_offset().max(from)));
                }
                for r in records {
                    if r.offset < from {
                        continue;
                    }
                    if let Some(k) = r.key {
                        // Copied: a slice would keep the whole (decompressed) batch alive.
                        if let Some(old) = map.insert(Bytes::copy_from_slice(&k), r.offset)
                            && let Some(s) = survival.get_mut(segment_of(old))
                        {
                            s.replaced += 1;
                        }
                        if let Some(s) = survival.get_mut(segment_of(r.offset)) {
                            s.seen += 1;
                        }
                    }
                }
                used += cost;
            }
            offset = batches.last().map_or(to, |b| b.last_offset() + 1);
        }
        Ok((map, to))
    }

    /// Consecutive runs of `segs[..last]` whose outputs together should fit
    /// `segment_bytes` and their index files, and whose offsets fit a segment (relative
    /// offsets are 32-bit).
    ///
    /// Kafka groups by input size, so that the output cannot exceed a segment; when a
    /// pass removes most records that makes one small output segment per input segment
    /// (a file created, synced and swapped in for each). The output of a segment is
    /// estimated here from the key map instead: its size times the share of its keyed
    /// records that no later record replaces (`survival`). An estimate can be off (a
    /// recompressed batch, tombstones or markers that go): a rewritten segment may then
    /// exceed `segment_bytes` by that error, which nothing relies on (rolls only look at
    /// the active segment), or its index files, whose last entries its scan then drops
    /// (reads stay right; opens scan it again). A group never reads more than
    /// `MAX_GROUP_INPUT` bytes, so its positions fit the indexes' 32 bits even if
    /// nothing is removed. (A rebuilt batch is never larger than its input but for a
    /// header key that is not UTF-8, rewritten with U+FFFD as Kafka's cleaner rewrites
    /// it: two bytes more per invalid byte, far from doubling a group.)
    fn group_segments(
        &self,
        segs: &[Arc<Segment>],
        last: usize,
        survival: &[Survival],
    ) -> Vec<(usize, usize)> {
        let estimate = |i: usize| {
            let size = segs[i].size();
            match survival.get(i) {
                Some(s) if s.seen > 0 => {
                    let kept = s.seen.saturating_sub(s.replaced);
                    (u128::from(size) * u128::from(kept)).div_ceil(u128::from(s.seen)) as u64
                }
                _ => size,
            }
        };
        // An output must also fit its index files: at most an offset and a time entry
        // per batch and per `index_interval_bytes` of it, and one time entry more when
        // it is sealed, in `segment_index_bytes` each (Kafka's grouping checks index
        // sizes too). The scan of a larger one drops the last entries, and every open
        // after takes its time index for stale and scans and rewrites it again. (As the
        // output's size, this is an estimate: off by its error.)
        let index_entries = self.config.segment_index_bytes / TIME_ENTRY;
        let bytes_per_entry = self
            .config
            .index_interval_bytes
            .max(RECORD_BATCH_OVERHEAD as u64);
        let index_room = (index_entries.saturating_sub(1)).saturating_mul(bytes_per_entry);
        let max_output = self.live.segment_bytes().min(index_room);
        let mut groups = Vec::new();
        let mut i = 0;
        while i < last {
            let mut j = i + 1;
            let mut output = estimate(i);
            let mut input = segs[i].size();
            while j < last
                && output + estimate(j) <= max_output
                && input + segs[j].size() <= MAX_GROUP_INPUT
                && segs[j + 1].base - segs[i].base <= i64::from(i32::MAX)
            {
                output += estimate(j);
                input += segs[j].size();
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        groups
    }

    /// Cleans one group into `<base>.log.cleaned` and swaps it in (`swap.rs`). Returns
    /// bytes written.
    fn clean_group(
        &self,
        group: &[Arc<Segment>],
        group_end: i64,
        ctx: &mut Cleaning,
    ) -> Result<u64> {
        let base = group[0].base;
        let cleaned_path = self.dir.join(format!("{}.cleaned", file_name(base, "log")));
        let file = self
            .fs
            .open(&cleaned_path, true)
            .map_err(io_ctx(format!("create {}", cleaned_path.display())))?;
        let written = (|| -> Result<u64> {
            file.set_len(0)
                .map_err(io_ctx(format!("truncate {}", cleaned_path.display())))?;
            let mut out = Vec::with_capacity(512 << 10);
            let mut pos = 0u64;
            let mut pending: Option<Batch> = None;
            let mut offset = base;
            'read: while offset < group_end {
                let batches = self.read_group(group, offset)?;
                if batches.is_empty() {
                    break;
                }
                for b in batches {
                    if b.base_offset() >= group_end {
                        break 'read;
                    }
                    offset = b.last_offset() + 1;
                    // The previous batch is written once we know it is not the group's last.
                    if let Some(prev) = pending.replace(b) {
                        self.emit(&prev, false, ctx, &mut out)?;
                    }
                    if out.len() >= 512 << 10 {
                        file.write_all_at(&out, pos)
                            .map_err(io_ctx(format!("write {}", cleaned_path.display())))?;
                        pos += out.len() as u64;
                        out.clear();
                    }
                }
            }
            if let Some(last) = pending {
                self.emit(&last, true, ctx, &mut out)?;
            }
            file.write_all_at(&out, pos)
                .map_err(io_ctx(format!("write {}", cleaned_path.display())))?;
            pos += out.len() as u64;
            // The rewrite keeps the age of the newest segment it replaces, as Kafka's
            // cleaner does: retention and the compaction lag age segments whose records
            // carry no timestamps by it, and a new file would restart their clock.
            // Failing to is logged, not fatal: the pass's work stays good.
            if let Some(ms) = group.last().and_then(|s| s.modified_ms())
                && let Err(e) = file.set_modified_ms(ms)
            {
                tracing::warn!("{}: could not keep the age: {e}", cleaned_path.display());
            }
            self.fsync_or_poison(format!("fsync {}", cleaned_path.display()), || {
                file.sync_data()
            })?;
            Ok(pos)
        })();
        // The group's aborted transactions that keep their entry. A `.txnindex` swap is
        // written whenever the first segment has one, even empty, so that finishing the
        // swap at open knows an index at `base` without a swap is the new one.
        let written = written.and_then(|n| {
            let entries = ctx.txn.take_entries();
            let txn_path = group[0].txn_index.path();
            let had_txn_index = self
                .fs
                .exists(txn_path)
                .map_err(io_ctx(format!("stat {}", txn_path.display())))?;
            Ok((n, (had_txn_index || !entries.is_empty()).then_some(entries)))
        });
        // The snapshots must not keep the removed markers' transactions open.
        let removed = std::mem::take(&mut ctx.removed_markers);
        let written = written.and_then(|w| {
            self.apply_removed_markers(&removed, |pid, from, to| {
                ctx.txn.kept_marker_between(pid, from, to)
            })?;
            Ok(w)
        });
        self.swap_group(group, file.as_ref(), written)
    }

    /// Reads whole batches from `offset` within the group's own segments.
    fn read_group(&self, group: &[Arc<Segment>], offset: i64) -> Result<Vec<Batch>> {
        let i = group
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1);
        let mut out = Vec::new();
        for seg in &group[i..] {
            let mut budget = 1usize << 20;
            let from = offset.max(seg.base);
            match self.read_segment(seg, seg.size(), from, &mut budget, &mut out)? {
                SegmentRead::BudgetUsed => break,
                SegmentRead::Exhausted(_) if !out.is_empty() => break,
                SegmentRead::Exhausted(_) => {}
            }
        }
        Ok(out)
    }

    /// Appends what the cleaner keeps of `b` to `out`.
    fn emit(
        &self,
        b: &Batch,
        last_in_group: bool,
        ctx: &mut Cleaning,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let h = b.header();
        if h.is_control() {
            return self.emit_marker(b, last_in_group, ctx, out);
        }
        let txn = ctx.txn.data_batch(h);
        // The last batch of a group (so the swap file tells which offsets it replaces)
        // and a producer's last batch (its sequence and epoch) stay, if need be empty.
        let must_stay = last_in_group || txn.producer_last;
        if txn.aborted {
            ctx.removed += u64::from(h.records_count.max(0) as u32);
            if must_stay {
                out.extend_from_slice(&rebuild_batch(h, &[], None)?);
                ctx.txn.retained(&txn);
            }
            return Ok(());
        }
        let records: Vec<Record> = b
            .records_with(&self.config.decode)?
            .collect::<Result<_>>()?;
        let total = records.len();
        let expired = h.has_delete_horizon() && ctx.now_ms >= h.base_timestamp;
        let mut kept = Vec::with_capacity(total);
        let mut tombstone_kept = false;
        for r in records {
            let keep = match &r.key {
                None => false,
                Some(_) if r.offset >= ctx.map_end => true,
                Some(k) => {
                    let latest = ctx.map.get(k).is_none_or(|&o| r.offset >= o);
                    latest && (r.value.is_some() || !expired)
                }
            };
            if keep {
                if r.value.is_none() && r.offset < ctx.map_end {
                    tombstone_kept = true;
                }
                kept.push(r);
            }
        }
        ctx.removed += (total - kept.len()) as u64;
        if kept.is_empty() && !must_stay {
            return Ok(());
        }
        ctx.txn.retained(&txn);
        // The first pass that keeps a tombstone starts its delete horizon.
        let new_horizon = (tombstone_kept && !h.has_delete_horizon()).then_some(ctx.horizon);
        if tombstone_kept {
            let horizon = new_horizon.unwrap_or(h.base_timestamp);
            ctx.next_horizon = ctx.next_horizon.min(horizon);
        }
        if kept.len() == total && new_horizon.is_none() {
            out.extend_from_slice(b.bytes());
        } else {
            out.extend_from_slice(&rebuild_batch(h, &kept, new_horizon)?);
        }
        Ok(())
    }

    /// Sets the cleaner checkpoint, in memory first (right in either direction), to a
    /// value `raised` above the one on disk, or lowered.
    ///
    /// Lowered (a truncation, an open after a lost tail), a failed write poisons the
    /// log: a checkpoint left above re-appended offsets would let compaction treat new
    /// records as clean. Raised (a pass), only a failed fsync does: a failed write
    /// (ENOSPC) leaves the older, lower value on disk, which only makes the next open's
    /// first pass clean part of it again; poisoned, every append to the partition
    /// failed until a reopen, and retention stopped freeing the space the disk lacked.
    pub(super) fn write_clean_offset(&self, offset: i64, raised: bool) -> Result<()> {
        *self.cleaner_offset.lock() = offset;
        let text = checkpoint::recovery_point_text(&self.topic, self.partition, offset);
        self.write_file_or_poison(CLEANER_OFFSET_FILE, text.as_bytes(), "write", !raised)
    }
}

/// State of one pass.
pub(super) struct Cleaning<'a> {
    map: &'a HashMap<Bytes, i64>,
    /// The transaction rules' state (`clean_txn.rs`).
    pub(super) txn: TxnCleaning,
    map_end: i64,
    pub(super) now_ms: i64,
    /// The delete horizon this pass gives tombstones and markers.
    pub(super) horizon: i64,
    removed: u64,
    pub(super) markers_removed: u64,
    /// The markers the group being cleaned removes, in offset order.
    pub(super) removed_markers: Vec<Batch>,
    /// The earliest delete horizon of the tombstones and markers kept that a later pass
    /// must look at (i64::MAX: none).
    pub(super) next_horizon: i64,
}
