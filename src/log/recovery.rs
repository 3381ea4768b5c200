//! Recovery at open: reading and checking the segments against the durable position
//! (index loads, header walks, scans), deciding the torn-tail cut, and then carrying
//! out what it decided.

use std::sync::atomic::Ordering;

use super::checkpoint::DurablePoint;
use super::index::{OffsetEntry, TimeEntry};
use super::segment::{self, Scan, Segment};
use super::{LogConfig, RecoveryReport, Truncation};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::RECORD_BATCH_OVERHEAD;
use crate::fs::FileSystem;

pub(super) struct Outcome {
    pub(super) next_offset: Option<i64>,
    pub(super) bytes_since_index: u64,
    pub(super) first_batch_timestamp: Option<i64>,
    pub(super) scan_from: i64,
    /// The scanned segments hold batches with a producer id (or held them before a cut).
    pub(super) producer_batches: bool,
}

pub(super) struct Recovery<'a> {
    pub(super) fs: &'a dyn FileSystem,
    pub(super) config: &'a LogConfig,
    pub(super) rules: segment::Rules,
    pub(super) names: std::collections::HashSet<&'a str>,
    pub(super) report: RecoveryReport,
    pub(super) plan: Plan,
}

/// What recovery decided to change on disk. [`Recovery::run`] only reads (the segments'
/// state in memory already is the recovered one); [`Recovery::apply`] writes this once
/// every check passed.
#[derive(Default)]
pub(super) struct Plan {
    /// Segments (indexes into the recovered list) whose index files are rewritten from
    /// the entries in memory, and whether they are then synced (rebuilt below the
    /// recovery point, they must be as durable as the log).
    index_writes: std::collections::BTreeMap<usize, bool>,
    /// Empty stray segments to remove (no longer in the list).
    strays: Vec<Segment>,
    /// A torn tail: the segment (index into the list) and the length it is cut to.
    cut: Option<(usize, u64)>,
    /// The segments after the torn tail, to remove (no longer in the list).
    after_cut: Vec<Segment>,
}

impl Plan {
    /// Whether recovery decided to write nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.index_writes.is_empty()
            && self.strays.is_empty()
            && self.cut.is_none()
            && self.after_cut.is_empty()
    }
}

impl Recovery<'_> {
    fn params(&self, seg: &Segment) -> segment::ScanParams {
        seg.scan_params(
            self.config.index_interval_bytes,
            self.rules.clone(),
            self.config.segment_index_bytes,
        )
    }

    fn scan(&mut self, seg: &Segment) -> Result<Scan> {
        let len = seg.size();
        self.report.segments_scanned += 1;
        self.report.bytes_scanned += len;
        segment::scan(seg.log.as_ref(), len, self.params(seg))
            .map_err(io_ctx(format!("scan {}", seg.log_path.display())))
    }

    fn has_file(&self, seg: &Segment, suffix: &str) -> bool {
        self.names
            .contains(segment::file_name(seg.base, suffix).as_str())
    }

    /// Loads the indexes of trusted segment `idx`; rebuilds them (in memory; written by
    /// `apply`) from the log if missing or insane (the log must then be entirely valid:
    /// it is below the durable point). Returns the offset after the segment's last batch
    /// if `need_end` (from the headers after the last index entry, or from the
    /// rebuild's full scan).
    ///
    /// A sealed segment's (`deferred`) indexes are read only up to their last entries
    /// (Kafka's sanity check); the rest is read on first use: opening a log reads no
    /// index file whole.
    fn load_indexes(
        &mut self,
        seg: &Segment,
        idx: usize,
        need_end: bool,
        deferred: bool,
    ) -> Result<Option<i64>> {
        let size = seg.size();
        let offset_valid = |e: &OffsetEntry| u64::from(e.position) < size;
        let time_valid = |e: &TimeEntry| e.timestamp >= 0;
        let sane = self.has_file(seg, "index")
            && self.has_file(seg, "timeindex")
            && if deferred {
                seg.offset_index.load_tail(offset_valid)
            } else {
                seg.offset_index.load(offset_valid)
            }
            .map_err(io_ctx(format!(
                "read {}",
                seg.offset_index.path().display()
            )))?
            && if deferred {
                seg.time_index.load_tail(time_valid)
            } else {
                seg.time_index.load(time_valid)
            }
            .map_err(io_ctx(format!("read {}", seg.time_index.path().display())))?;
        if sane && self.time_tail_matches(seg)? {
            // An index that names no batch boundary, or headers that do not chain up to
            // the end of the file, discredit the index: the full scan below decides
            // whether the log itself is damaged. So does a batch after the last offset
            // entry newer than the last time entry, which is the segment's largest
            // timestamp: the time index lost entries (cut short with the offset index),
            // and lookups would skip the segment.
            let walked = if need_end {
                self.header_end(seg, false)?
            } else {
                None
            };
            let last_ts = seg.time_index.last().map_or(-1, |e| e.timestamp);
            let stale = walked.is_some_and(|(_, newest)| newest > last_ts);
            let end = walked.map(|(end, _)| end);
            if (end.is_some() || !need_end) && !stale {
                seg.max_timestamp.store(last_ts, Ordering::Release);
                if let Some(e) = seg.time_index.last() {
                    seg.offset_of_max_timestamp.store(
                        seg.base.saturating_add(i64::from(e.relative_offset)),
                        Ordering::Release,
                    );
                }
                return Ok(end);
            }
        }
        self.report.indexes_rebuilt += 1;
        tracing::warn!(
            "{}: index missing or damaged; rebuilding from the log",
            seg.log_path.display()
        );
        let scan = self.scan(seg)?;
        if let Some((pos, reason)) = scan.stopped {
            return Err(Error::corruption(&seg.log_path, pos, reason));
        }
        // The segment lies below the recovery point, so its rebuilt indexes must be
        // durable like the rest of it.
        seg.adopt_scan(&scan);
        self.plan.index_writes.insert(idx, true);
        Ok(Some(scan.next_offset.unwrap_or(seg.base)))
    }

    /// The offset after a trusted segment's last batch, read from the batch headers
    /// between the offset index's last entry (which must name the batch there, as Kafka
    /// writes it) and the end of the file: a few small reads, not a scan (CRCs are
    /// checked when the batches are read); with the largest max timestamp of those
    /// batches. `None` if the index or the headers do not add up. `whole`: every header
    /// from the start of the file instead.
    fn header_end(&self, seg: &Segment, whole: bool) -> Result<Option<(i64, i64)>> {
        let size = seg.size();
        let last_entry = seg.offset_index.last().filter(|_| !whole);
        let (mut pos, mut claimed, mut expected) = match last_entry {
            Some(e) => (
                u64::from(e.position),
                Some(seg.base.saturating_add(i64::from(e.relative_offset))),
                None,
            ),
            None => (0, None, Some(seg.base)),
        };
        let mut end = seg.base;
        let mut newest = -1;
        while pos < size {
            if size - pos < RECORD_BATCH_OVERHEAD as u64 {
                return Ok(None);
            }
            let bytes = seg.read_unmapped(pos, RECORD_BATCH_OVERHEAD)?;
            let Ok(h) = crate::format::BatchHeader::parse(&bytes) else {
                return Ok(None);
            };
            let Some(n) = h
                .size()
                .filter(|&n| n >= RECORD_BATCH_OVERHEAD && n as u64 <= size - pos)
            else {
                return Ok(None);
            };
            if segment::check_header(&h, seg.base, expected, &self.rules).is_some()
                || claimed.take().is_some_and(|c| c != h.last_offset())
            {
                return Ok(None);
            }
            // check_header keeps the last offset below i64::MAX.
            end = h.last_offset() + 1;
            newest = newest.max(h.max_timestamp);
            expected = Some(end);
            pos += n as u64;
        }
        Ok(Some((end, newest)))
    }

    /// The last time-index entry sets the segment's max timestamp, so it is checked
    /// against the batch it names (found through the offset index). Reads a few headers.
    fn time_tail_matches(&self, seg: &Segment) -> Result<bool> {
        // A segment with data always gets a final time entry unless every timestamp is
        // negative (no record has one, as Kafka's time index then stays empty too): an
        // empty time index is trusted only once every header shows that.
        let Some(e) = seg.time_index.last() else {
            if seg.size() == 0 {
                return Ok(true);
            }
            let walked = self.header_end(seg, true)?;
            return Ok(walked.is_some_and(|(_, newest)| newest < 0));
        };
        let claimed = seg.base.saturating_add(i64::from(e.relative_offset));
        let size = seg.size();
        // With only its last entry read, the offset index may not reach below it.
        if seg
            .offset_index
            .last()
            .is_some_and(|o| seg.base.saturating_add(i64::from(o.relative_offset)) > claimed)
        {
            let loaded = seg
                .offset_index
                .load_deferred(
                    |_| Err(std::io::Error::other("the index file is held at open")),
                    |o: &OffsetEntry| u64::from(o.position) < size,
                )
                .map_err(io_ctx(format!(
                    "read {}",
                    seg.offset_index.path().display()
                )))?;
            if !loaded {
                return Ok(false);
            }
        }
        let mut pos = seg
            .offset_index
            .floor(|o| seg.base.saturating_add(i64::from(o.relative_offset)) <= claimed)
            .map_or(0, |o| u64::from(o.position));
        while pos + RECORD_BATCH_OVERHEAD as u64 <= size {
            let bytes = seg.read_unmapped(pos, RECORD_BATCH_OVERHEAD)?;
            let Ok(h) = crate::format::BatchHeader::parse(&bytes) else {
                return Ok(false);
            };
            match h.size() {
                Some(n) if n >= RECORD_BATCH_OVERHEAD && h.last_offset() < claimed => {
                    pos += n as u64
                }
                Some(_) => return Ok(h.last_offset() == claimed && h.max_timestamp == e.timestamp),
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    pub(super) fn run(
        &mut self,
        segs: &mut Vec<Segment>,
        clean_marker: bool,
        recovery_point: Option<i64>,
        durable: Option<DurablePoint>,
    ) -> Result<Outcome> {
        let mut outcome = Outcome {
            next_offset: None,
            bytes_since_index: 0,
            first_batch_timestamp: None,
            scan_from: 0,
            producer_batches: false,
        };
        // The durable point: everything before (segment base, position) was synced.
        let views: Vec<_> = segs
            .iter()
            .map(|s| (s.base, s.size(), s.log_path.as_path()))
            .collect();
        DurablePoint::check_segments(durable, recovery_point, &views)?;
        let durable_pos = DurablePoint::synced_position(durable, recovery_point, &views);
        if segs.is_empty() {
            return Ok(outcome);
        }
        let last = segs.len() - 1;
        // An empty segment between two others may be a stray left by a failed roll; the
        // scan below removes it if its offsets overlap the previous segment's.
        let empty_middle = (1..last).find(|&k| segs[k].size() == 0);
        let clean = empty_middle.is_none()
            && clean_marker
            && durable.is_some_and(|d| {
                d.segment_base == segs[last].base && d.position == segs[last].size()
            });
        self.report.clean_shutdown = clean;
        let scan_from = if clean {
            segs.len()
        } else {
            let from_rp =
                recovery_point.map_or(0, |r| segs.iter().rposition(|s| s.base <= r).unwrap_or(0));
            empty_middle.map_or(from_rp, |k| from_rp.min(k - 1))
        };
        outcome.scan_from = segs.get(scan_from).map_or(i64::MAX, |s| s.base);
        // Each segment must begin where the previous one ends (or later, in a compacted
        // log): overlapping segments would serve their common offsets twice (I2, I3),
        // so this is checked between every two segments, trusted or scanned.
        //
        // Segments before `scan_from` are trusted without a scan; their ends come from
        // their batch headers. An overlap or gap among them is never a torn tail that
        // recovery may cut: without a clean shutdown each of them lies wholly below the
        // recovery point (the segment holding it begins after them), and with one the
        // durable position is the end of the last segment. Either way every byte of
        // them was synced, so the damage is reported, never cut away or served.
        //
        // From `scan_from` on the scan loop checks it and applies the torn-tail rule: a
        // segment that does not follow the previous one is cut away (with all later
        // ones) only if the cut, at the end of the previous segment, lies at or past
        // the durable position, i.e. the segment was created after the last completed
        // flush. For the first scanned segment the previous one is the last trusted
        // one, which lies below the durable position, so that too is Corruption.
        //
        // A gap wholly below the log start the durable position records is none of
        // these: retention records the new start before it unlinks the segments below
        // it and fsyncs the directory once after them all, and a crash may keep any of
        // those unlinks without the others (a directory's changes reach the disk in no
        // promised order). The offsets missing there are gone as they should be; the
        // segments left below them go at the next retention pass.
        let gone_below = durable.map_or(i64::MIN, |d| d.log_start);
        let mut expected_base = None;
        for (i, seg) in segs.iter().enumerate().take(scan_from) {
            if let Some(reason) =
                expected_base.and_then(|e| self.discontinuity(seg.base, e, None, gone_below))
            {
                return Err(Error::corruption(&seg.log_path, 0, reason));
            }
            // The clean path below reads the active segment's end itself.
            let need_end = !(clean && i == last);
            expected_base = self.load_indexes(seg, i, need_end, i != last)?;
        }
        if clean {
            // Find the log end offset from the last index entry of the active segment.
            let seg = &segs[last];
            let start = seg.offset_index.last().map_or(0, |e| u64::from(e.position));
            let mut bytes_since_index = seg.size() - start;
            let mut tail =
                segment::scan_from(seg.log.as_ref(), seg.size(), self.params(seg), start).map_err(
                    io_ctx(format!("read the tail of {}", seg.log_path.display())),
                )?;
            if tail.stopped.is_some() && start > 0 {
                // The last index entry may name no batch (the index damaged since it was
                // synced at close): the whole segment decides. A log that reads well
                // from its start gets its indexes rebuilt, as a sealed segment would.
                // A log damaged too is reported where its first bad batch is.
                let whole = self.scan(seg)?;
                if whole.stopped.is_none() {
                    self.report.indexes_rebuilt += 1;
                    tracing::warn!(
                        "{}: index damaged; rebuilding from the log",
                        seg.log_path.display()
                    );
                    seg.adopt_scan(&whole);
                    self.plan.index_writes.insert(last, true);
                    bytes_since_index = whole.bytes_since_index;
                }
                tail = whole;
            }
            if let Some((pos, reason)) = tail.stopped {
                return Err(Error::corruption(&seg.log_path, pos, reason));
            }
            let next = tail.next_offset.unwrap_or(seg.base);
            if let Some(d) = durable
                && d.next_offset != next
            {
                return Err(Error::corruption(
                    &seg.log_path,
                    seg.size(),
                    format!(
                        "the log ends at offset {next} but {} was flushed at shutdown",
                        d.next_offset
                    ),
                ));
            }
            if tail.max_timestamp > seg.max_timestamp.load(Ordering::Acquire) {
                seg.max_timestamp
                    .store(tail.max_timestamp, Ordering::Release);
                seg.offset_of_max_timestamp
                    .store(tail.offset_of_max_timestamp, Ordering::Release);
            }
            outcome.next_offset = Some(next);
            outcome.bytes_since_index = bytes_since_index;
            outcome.first_batch_timestamp = first_batch_timestamp(seg)?;
            return Ok(outcome);
        }
        if scan_from == 0 {
            expected_base = Some(segs[0].base);
        }
        let mut i = scan_from;
        while i < segs.len() {
            // A stray: empty, not last, and starting inside the previous segment's offsets
            // (no roll makes that). It holds nothing; drop it.
            if segs[i].size() == 0
                && i > 0
                && i + 1 < segs.len()
                && expected_base.is_some_and(|e| segs[i].base < e)
            {
                self.plan.strays.push(segs.remove(i));
                continue;
            }
            let seg = &segs[i];
            let mut scan = self.scan(seg)?;
            outcome.producer_batches |= scan.producer_batches > 0;
            // A segment must begin where the previous one ended.
            let flushed = durable.map(|d| d.next_offset);
            let discontinuity =
                expected_base.and_then(|e| self.discontinuity(seg.base, e, flushed, gone_below));
            let gap = discontinuity.is_some();
            if let Some(reason) = discontinuity {
                scan.stopped = Some((0, reason));
                scan.valid_bytes = 0;
                scan.next_offset = None;
            }
            if let Some((pos, reason)) = scan.stopped.clone() {
                let (cut_seg, cut_pos) = if gap && i > 0 {
                    (i - 1, segs[i - 1].size())
                } else {
                    (i, pos)
                };
                let Some(durable_pos) = durable_pos else {
                    // Without a record of what was flushed (a directory another program
                    // wrote, or a lost streamlog.durable), a torn tail cannot be told from
                    // damage: refuse rather than delete data that may have been acknowledged.
                    return Err(Error::corruption(
                        &segs[i].log_path,
                        pos,
                        format!(
                            "{reason}; no durable-position record says whether this data was flushed, so nothing was truncated"
                        ),
                    ));
                };
                if (segs[cut_seg].base, cut_pos) < durable_pos {
                    return Err(Error::corruption(&segs[i].log_path, pos, reason));
                }
                // Check what the cut would leave before cutting: a failed open changes nothing.
                let end_after_cut = if gap {
                    outcome.next_offset.unwrap_or(segs[cut_seg].base)
                } else {
                    scan.next_offset.unwrap_or(segs[cut_seg].base)
                };
                if let Some(d) = durable
                    && end_after_cut < d.next_offset
                {
                    return Err(Error::corruption(
                        &segs[i].log_path,
                        pos,
                        format!(
                            "{reason}; cutting here would end the log at offset {end_after_cut}, below the flushed offset {}",
                            d.next_offset
                        ),
                    ));
                }
                self.truncate_tail(
                    segs,
                    cut_seg,
                    cut_pos,
                    &reason,
                    if gap { None } else { Some(&scan) },
                    &mut outcome,
                )?;
                return check_durable_end(outcome, durable, &segs[cut_seg]);
            }
            seg.adopt_scan(&scan);
            self.plan.index_writes.entry(i).or_insert(false);
            expected_base = Some(scan.next_offset.unwrap_or(seg.base));
            outcome.next_offset = Some(scan.next_offset.unwrap_or(seg.base));
            outcome.bytes_since_index = scan.bytes_since_index;
            outcome.first_batch_timestamp = scan.first_batch_max_timestamp;
            i += 1;
        }
        check_durable_end(outcome, durable, &segs[segs.len() - 1])
    }

    /// Carries out the plan `run` made: index files, stray segments, the cut and the
    /// segments after it. Only I/O can fail here. The clean-shutdown marker is gone by
    /// now, so after a crash part-way the next open scans from the recovery point again
    /// and reaches the same log.
    pub(super) fn apply(&mut self, segs: &[Segment]) -> Result<()> {
        let plan = std::mem::take(&mut self.plan);
        let fs = self.fs;
        for seg in segs {
            seg.create_index_files(fs).map_err(io_ctx(format!(
                "create the indexes of {}",
                seg.log_path.display()
            )))?;
        }
        let last = segs.len().saturating_sub(1);
        for (&idx, &sync) in &plan.index_writes {
            let seg = &segs[idx];
            seg.write_indexes(idx == last)
                .and_then(|()| {
                    if sync {
                        seg.offset_index.sync()?;
                        seg.time_index.sync()?;
                    }
                    Ok(())
                })
                .map_err(io_ctx(format!(
                    "rewrite the indexes of {}",
                    seg.log_path.display()
                )))?;
        }
        for s in &plan.strays {
            tracing::warn!(
                "{}: removing an empty segment that overlaps the previous one",
                s.log_path.display()
            );
            s.remove_files(fs, false)?;
        }
        if let Some((idx, pos)) = plan.cut {
            let seg = &segs[idx];
            seg.log
                .set_len(pos)
                .map_err(io_ctx(format!("truncate {}", seg.log_path.display())))?;
        }
        for s in &plan.after_cut {
            s.remove_files(fs, false)?;
        }
        Ok(())
    }

    /// Why a segment at `base` cannot follow one that ends before offset `expected`, if
    /// it cannot: it starts inside it (never allowed), or after it while offsets must be
    /// contiguous. In a log that allows gaps, a gap from at or past `flushed` (the
    /// durable record's next offset, for a scanned segment) is not allowed either:
    /// compaction flushes before it cleans, so its gaps all lie below the flushed
    /// offset, and one past it is data a crash lost before a later segment; serving
    /// that later segment would make the log no prefix of what was appended (I2).
    fn discontinuity(
        &self,
        base: i64,
        expected: i64,
        flushed: Option<i64>,
        gone_below: i64,
    ) -> Option<String> {
        if base > expected && base <= gone_below {
            // Every offset missing lies below the log start (see `run`).
            None
        } else if base < expected {
            Some(format!(
                "segment {base} overlaps the previous segment, which holds offsets up to {}",
                expected - 1
            ))
        } else if base > expected && !self.rules.allow_gaps {
            Some(format!(
                "segment {base} does not follow offset {}",
                expected - 1
            ))
        } else if base > expected && flushed.is_some_and(|f| expected >= f) {
            Some(format!(
                "segment {base} does not follow offset {}, and offsets from {} on were \
                 never flushed: not a gap compaction left",
                expected - 1,
                flushed.unwrap_or_default()
            ))
        } else {
            None
        }
    }

    /// Cuts segment `idx` at `pos` and drops every later segment (in memory; `apply`
    /// truncates and removes the files).
    fn truncate_tail(
        &mut self,
        segs: &mut Vec<Segment>,
        idx: usize,
        pos: u64,
        reason: &str,
        scan: Option<&Scan>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let seg = &segs[idx];
        let mut bytes_removed = seg.size() - pos;
        let mut highest = scan.and_then(|s| s.next_offset).unwrap_or(seg.base);
        // What the segment holds once cut: its first `pos` bytes.
        let kept = segment::scan(seg.log.as_ref(), pos, self.params(seg))
            .map_err(io_ctx(format!("scan {}", seg.log_path.display())))?;
        seg.size.store(pos, Ordering::Release);
        seg.adopt_scan(&kept);
        self.plan.cut = Some((idx, pos));
        self.plan.index_writes.entry(idx).or_insert(false);
        let new_end = kept.next_offset.unwrap_or(seg.base);
        let path = seg.log_path.clone();
        let later: Vec<Segment> = segs.drain(idx + 1..).collect();
        let segments_deleted = later.len();
        for s in later {
            bytes_removed += s.size();
            highest = highest.max(s.base);
            if let Ok(sc) = segment::scan(s.log.as_ref(), s.size(), self.params(&s))
                && let Some(n) = sc.next_offset
            {
                highest = highest.max(n);
            }
            self.plan.after_cut.push(s);
        }
        self.report.truncation = Some(Truncation {
            path,
            position: pos,
            reason: reason.to_string(),
            lost_offsets: new_end..highest.max(new_end),
            bytes_removed,
            segments_deleted,
        });
        outcome.next_offset = Some(new_end);
        outcome.bytes_since_index = kept.bytes_since_index;
        outcome.first_batch_timestamp = kept.first_batch_max_timestamp;
        Ok(())
    }
}

/// After an unclean shutdown, writes again (the same bytes in the same place) what of
/// `segs` no completed flush covered (past the durable position, or from the first
/// scanned segment, `scan_from`, without one) and the disk lacks. An fsync that failed
/// in an earlier process may have left it in the page cache only, marked clean (Linux
/// does after a failed writeback): read back here, never written to the disk, and
/// skipped by every later fsync. Written again, it is dirty, and the open's flush makes
/// it durable. After a poisoned log (`poisoned`: its `UNSYNCED_FILE`) all of it is
/// written again; otherwise, where the file system shows what the disk holds
/// ([`File::read_durable_at`](crate::fs::File::read_durable_at)), the 4 KiB pages of
/// the file that differ. Costs a read of the unflushed tail from the disk. Returns the
/// bytes compared and the bytes written.
pub(super) fn rewrite_unflushed(
    segs: &[Segment],
    durable: Option<DurablePoint>,
    scan_from: i64,
    poisoned: bool,
) -> Result<(u64, u64)> {
    const CHUNK: u64 = 1 << 20;
    const PAGE: u64 = 4096;
    // Each segment's unflushed bytes start at `from`; they are read in whole pages of
    // the file (aligned, as `O_DIRECT` reads best), from the one holding `from`, but
    // compared and written only from `from` on. The bytes before it were synced:
    // writing them again would expose them to a write torn by a power cut.
    let tails: Vec<(&Segment, u64)> = segs
        .iter()
        .filter_map(|seg| {
            let from = match durable {
                Some(d) if seg.base < d.segment_base => return None,
                Some(d) if seg.base == d.segment_base => d.position,
                Some(_) => 0,
                None if seg.base < scan_from => return None,
                None => 0,
            };
            (from < seg.size()).then_some((seg, from))
        })
        .collect();
    // One buffer for each side, reused for every chunk and no larger than the longest
    // tail needs (an open with nothing unflushed allocates nothing); the disk's is
    // 4 KiB-aligned, as `O_DIRECT` wants it, so that it is read into directly.
    let Some(chunk) = tails
        .iter()
        .map(|(seg, from)| (seg.size() - from / PAGE * PAGE).div_ceil(PAGE) * PAGE)
        .max()
        .map(|longest| longest.min(CHUNK) as usize)
    else {
        return Ok((0, 0));
    };
    let (mut compared, mut rewritten) = (0u64, 0u64);
    let mut live = vec![0u8; chunk];
    let mut disk_raw = vec![0u8; if poisoned { 0 } else { chunk + PAGE as usize }];
    let skip = if poisoned {
        0
    } else {
        disk_raw.as_ptr().align_offset(PAGE as usize)
    };
    for (seg, from) in tails {
        let ctx = || {
            format!(
                "write again the unflushed bytes of {}",
                seg.log_path.display()
            )
        };
        let (mut pos, size) = (from / PAGE * PAGE, seg.size());
        while pos < size {
            let n = usize::try_from(size - pos).map_or(chunk, |left| left.min(chunk));
            let live = &mut live[..n];
            seg.log.read_exact_into(live, pos).map_err(io_ctx(ctx()))?;
            let disk = if poisoned {
                None
            } else {
                let disk = &mut disk_raw[skip..skip + chunk];
                match seg.log.read_durable_at(disk, pos).map_err(io_ctx(ctx()))? {
                    Some(got) => Some(&disk[..got.min(n)]),
                    // Nothing to compare with, no reason to write.
                    None => return Ok((compared, rewritten)),
                }
            };
            for (i, page) in live.chunks(PAGE as usize).enumerate() {
                // Where in the chunk this page's unflushed part starts, and ends.
                let at = i * PAGE as usize + from.saturating_sub(pos + (i as u64) * PAGE) as usize;
                let end = i * PAGE as usize + page.len();
                if at >= end {
                    continue;
                }
                let unflushed = &live[at..end];
                if disk.is_some() {
                    compared += unflushed.len() as u64;
                }
                if disk.is_none_or(|d| d.get(at..end) != Some(unflushed)) {
                    seg.log
                        .write_all_at(unflushed, pos + at as u64)
                        .map_err(io_ctx(ctx()))?;
                    rewritten += unflushed.len() as u64;
                }
            }
            pos += n as u64;
        }
    }
    Ok((compared, rewritten))
}

/// Recovery must end at or past the last flushed offset.
fn check_durable_end(
    outcome: Outcome,
    durable: Option<DurablePoint>,
    last: &Segment,
) -> Result<Outcome> {
    let end = outcome.next_offset.unwrap_or(last.base);
    DurablePoint::check_end(durable, end, (&last.log_path, last.size()))?;
    Ok(outcome)
}

fn first_batch_timestamp(seg: &Segment) -> Result<Option<i64>> {
    if seg.size() < RECORD_BATCH_OVERHEAD as u64 {
        return Ok(None);
    }
    let h = seg.read_unmapped(0, RECORD_BATCH_OVERHEAD)?;
    Ok(crate::format::BatchHeader::parse(&h)
        .ok()
        .map(|h| h.max_timestamp))
}
