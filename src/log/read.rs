//! Reading: whole batches from an offset (index-guided, checked), decoded records, and
//! the timestamp lookup (`offsetsForTimes`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::segment::{self, Segment};
use super::{Log, OffsetEntry, TimeEntry};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::{self, BatchHeader, RECORD_BATCH_OVERHEAD};
use crate::format::{Batch, Compression, DecodeOptions, Record};

/// How a read of one segment ended.
pub(super) enum SegmentRead {
    /// The byte budget ran out inside the segment.
    BudgetUsed,
    /// The segment was read to its end; the next segment must start at this offset.
    Exhausted(i64),
}

impl Log {
    /// `r` of a read that may have raced the log's close: `Closed` for an I/O error once
    /// the log is closed (a closed log lets go of its files, and a deleted topic's are
    /// removed, so the error says nothing about them; damage found is still reported).
    /// A closed log's files are let go of again: the read may have mapped or reopened
    /// one after the close did.
    pub(super) fn closed_under<T>(&self, r: Result<T>) -> Result<T> {
        if !self.closed.load(Ordering::Acquire) {
            return r;
        }
        self.release_files();
        match r {
            Err(Error::Io { .. }) => Err(Error::Closed { what: "log" }),
            r => r,
        }
    }

    pub(super) fn out_of_range(&self, requested: i64) -> Error {
        Error::OffsetOutOfRange {
            requested,
            log_start: self.log_start_offset(),
            log_end: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one that contains `offset`, up to
    /// `max_bytes` in total (at least one batch, even a larger one). Every returned
    /// batch has passed its CRC and offset checks; the first may start before `offset`.
    /// Sealed segments are served as zero-copy slices of a memory map.
    ///
    /// # Errors
    /// `OffsetOutOfRange` if `offset` is below the log start or above the log end;
    /// `Corruption` (path, position) if stored bytes fail a check; `Io`; `Closed` once the
    /// log was shut down (its directory may then belong to another process), also when
    /// it is shut down during the read.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        let mut tries = 0;
        loop {
            // A truncation (`truncate_to`) begins a new epoch before anything is appended
            // after it: a read that saw the end those appends published, and so may hold
            // batches the cut removed from its old view of a file, sees the epoch moved.
            let epoch = self.epoch.load(Ordering::Acquire);
            // The end before the segment list: a roll adds its segment to the list
            // before it publishes the end past it. Taken the other way round, a read
            // racing a roll could find an end in a segment its list lacked, and return
            // no batch below the end.
            let end = self.log_end_offset();
            let segs = self.snapshot();
            match self.read_snapshot(&segs, end, offset, max_bytes) {
                // Overlapped a truncation: read again against the log as it is now.
                Ok(_) if self.epoch.load(Ordering::Acquire) != epoch => {}
                // A segment of this snapshot was removed meanwhile (retention, compaction)
                // and its file could not be read, or the log was cut (`truncate_to`) and
                // batches past the new end, still in this snapshot's view of the old
                // file, fail the epoch the cut began there: ask again, against the log
                // as it is now. Damage is found again there.
                Err(Error::Io { .. } | Error::Corruption { .. })
                    if tries < 3 && !Arc::ptr_eq(&segs, &self.segments.read()) =>
                {
                    tries += 1;
                    if offset < self.log_start_offset() {
                        return Err(self.out_of_range(offset));
                    }
                }
                r => return self.closed_under(r),
            }
        }
    }

    /// [`read`](Self::read) against one snapshot of the segment list, taken after the
    /// log end `end` was.
    fn read_snapshot(
        &self,
        segs: &[Arc<Segment>],
        end: i64,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Vec<Batch>> {
        if offset < self.log_start_offset() || offset > end {
            return Err(self.out_of_range(offset));
        }
        let mut out = Vec::new();
        if offset == end {
            return Ok(out);
        }
        // Retention raises the log start before it drops segments from the snapshot: a
        // snapshot without the segment holding `offset` comes with a raised start.
        if offset < self.log_start_offset() {
            return Err(self.out_of_range(offset));
        }
        let first = segs.partition_point(|s| s.base <= offset).saturating_sub(1);
        let mut budget = max_bytes;
        // The offset the next segment must start at, once a segment was read to its end.
        let mut next_base: Option<i64> = None;
        for seg in &segs[first..] {
            if let Some(n) = next_base
                && (seg.base < n || (!self.live.allow_offset_gaps() && seg.base != n))
            {
                return Err(Error::corruption(
                    &seg.log_path,
                    0,
                    format!(
                        "segment starts at offset {} but the previous one ends at {}",
                        seg.base,
                        n - 1
                    ),
                ));
            }
            // The last segment may be growing: read only what is published.
            let limit = seg.size();
            match self.read_segment(seg, limit, offset, &mut budget, &mut out)? {
                SegmentRead::BudgetUsed => break,
                SegmentRead::Exhausted(next) => next_base = Some(next),
            }
        }
        // A batch published to its segment just after `end` was read is left for the next
        // read. So is one appended after a truncation (`truncate_to`) that replaced the
        // list after `end` was read and lowered the end after that: the end is read again.
        // (Read past the end the appends after a truncation published, the batches of
        // an old view of a file past the cut would pass: `read` sees the new epoch.)
        let end = end.min(self.log_end_offset());
        out.retain(|b| b.base_offset() < end);
        Ok(out)
    }

    /// Reads from one segment into `out`.
    pub(super) fn read_segment(
        &self,
        seg: &Segment,
        limit: u64,
        offset: i64,
        budget: &mut usize,
        out: &mut Vec<Batch>,
    ) -> Result<SegmentRead> {
        let corrupt = |pos: u64, reason: String| Error::corruption(&seg.log_path, pos, reason);
        let rules = self.rules();
        // Start from the index entry at or below `offset` (verified against the batch it
        // names), or from the segment start.
        let (mut pos, mut index_claim) = match self.index_floor(seg, offset) {
            Some(e) if out.is_empty() => (
                u64::from(e.position),
                Some(seg.base + i64::from(e.relative_offset)),
            ),
            _ => (0, None),
        };
        let mut expected = (pos == 0).then_some(seg.base);
        // Skip batches that end before `offset`, reading headers only.
        let header = loop {
            if pos >= limit {
                if index_claim.is_some() {
                    self.distrust_index(
                        seg,
                        &format!("entry points at position {pos}, past the end"),
                    );
                    (pos, index_claim, expected) = (0, None, Some(seg.base));
                    continue;
                }
                let Some(next) = expected else {
                    return Err(corrupt(
                        pos,
                        "no batch found to establish the segment's end offset".into(),
                    ));
                };
                return Ok(SegmentRead::Exhausted(next));
            }
            let h = match self.header_at(seg, pos, limit) {
                Ok(h) => h,
                // Only bytes that fail a check discredit the index; an I/O error is not
                // the index's fault.
                Err(e @ Error::Corruption { .. }) if index_claim.is_some() => {
                    self.distrust_index(seg, &e.to_string());
                    (pos, index_claim, expected) = (0, None, Some(seg.base));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(claim) = index_claim.take()
                && h.last_offset() != claim
            {
                let why = format!(
                    "entry names offset {claim} at position {pos}, the batch there ends at {}",
                    h.last_offset()
                );
                self.distrust_index(seg, &why);
                (pos, expected) = (0, Some(seg.base));
                continue;
            }
            if let Some(reason) = segment::check_header(&h, seg.base, expected, &rules) {
                return Err(corrupt(pos, reason));
            }
            if h.last_offset() >= offset || !out.is_empty() {
                break h;
            }
            expected = Some(h.last_offset() + 1);
            pos += h.size().expect("checked by header_at") as u64;
        };
        let first_size = header.size().expect("checked by header_at") as u64;
        let available = limit - pos;
        let want = if out.is_empty() {
            (*budget as u64).max(first_size)
        } else {
            *budget as u64
        };
        let chunk_len = want.min(available);
        if chunk_len < first_size {
            return Ok(SegmentRead::BudgetUsed);
        }
        let chunk = seg.read(pos, chunk_len as usize)?;
        let ends_segment = chunk_len == available;
        let mut at = 0usize;
        let mut expected = Some(header.base_offset);
        while at < chunk.len() {
            let here = pos + at as u64;
            let Some((_, size)) = batch::peek_size(&chunk[at..]) else {
                if ends_segment {
                    return Err(corrupt(
                        here,
                        "a partial batch header ends the segment".into(),
                    ));
                }
                return Ok(SegmentRead::BudgetUsed);
            };
            if size < RECORD_BATCH_OVERHEAD as i64 {
                return Err(corrupt(
                    here,
                    format!("batch length {size} is below the 61-byte minimum"),
                ));
            }
            let size = size as usize;
            if at + size > chunk.len() {
                if ends_segment || here + size as u64 > limit {
                    return Err(corrupt(
                        here,
                        "the batch runs past the end of the segment".into(),
                    ));
                }
                return Ok(SegmentRead::BudgetUsed);
            }
            let b = Batch::parse(chunk.slice(at..at + size))
                .map_err(|e| corrupt(here, e.to_string()))?;
            if let Some(reason) = segment::check_header(b.header(), seg.base, expected, &rules) {
                return Err(corrupt(here, reason));
            }
            expected = Some(b.last_offset() + 1);
            *budget = budget.saturating_sub(size);
            out.push(b);
            at += size;
        }
        match (ends_segment, expected) {
            (true, Some(next)) => Ok(SegmentRead::Exhausted(next)),
            _ => Ok(SegmentRead::BudgetUsed),
        }
    }

    /// The segment base and byte position of the batch whose base offset is `base`
    /// (for answering a re-sent batch remembered by a producer snapshot), if the log
    /// still holds it.
    pub(super) fn locate_batch(&self, base: i64) -> Option<(i64, u64)> {
        let segs = self.snapshot();
        let seg = segs.get(segs.partition_point(|s| s.base <= base).checked_sub(1)?)?;
        let size = seg.size();
        let mut pos = self
            .index_floor(seg, base)
            .map_or(0, |e| u64::from(e.position));
        while pos < size {
            let h = self.header_at(seg, pos, size).ok()?;
            if h.base_offset == base {
                return Some((seg.base, pos));
            }
            if h.base_offset > base {
                return None;
            }
            pos += h.size()? as u64;
        }
        None
    }

    /// The index entry with the largest offset at or below `offset`: the batch it names
    /// ends at or before `offset`, so reading may start there.
    fn index_floor(&self, seg: &Segment, offset: i64) -> Option<OffsetEntry> {
        if seg.index_suspect.load(Ordering::Acquire) {
            return None;
        }
        if seg.offset_index.is_deferred() {
            let size = seg.size();
            match seg.offset_index.load_deferred(
                |p| self.fs.open(p, false),
                |e: &OffsetEntry| u64::from(e.position) < size,
            ) {
                Ok(true) => {}
                Ok(false) => self.rebuild_sealed_index(seg),
                // Read this time from the segment start; the load is tried again.
                Err(e) => {
                    tracing::warn!("{}: {e}", seg.offset_index.path().display());
                    return None;
                }
            }
        }
        let rel = offset - seg.base;
        seg.offset_index
            .floor(|e| i64::from(e.relative_offset) <= rel)
    }

    /// A sealed segment's index whose deferred entries failed their checks: rebuilt
    /// from the segment (scanned once) in memory and on disk, as recovery rebuilds a
    /// damaged index at open. If the segment itself fails the scan, or the files cannot
    /// be written, reads go on by scan (and report damage where they meet it). A failed
    /// fsync of them poisons the log.
    fn rebuild_sealed_index(&self, seg: &Segment) {
        let params = seg.scan_params(
            self.config.index_interval_bytes,
            self.rules(),
            self.config.segment_index_bytes,
        );
        let scan = segment::scan(seg.log.as_ref(), seg.size(), params)
            .ok()
            .filter(|scan| scan.stopped.is_none());
        let Some(scan) = scan else {
            self.distrust_index(seg, "its entries fail the sanity check");
            return;
        };
        seg.adopt_scan(&scan);
        let path = seg.offset_index.path().display();
        match self.write_rebuilt_index(seg) {
            Ok(None) => {
                tracing::warn!("{path}: index entries failed their checks; rebuilt from the log")
            }
            Ok(Some(why)) => tracing::warn!("{path}: index rebuilt in memory only ({why})"),
            Err(e) => tracing::warn!("{path}: index rebuilt in memory only ({e})"),
        }
    }

    /// Writes a rebuilt index to its files, unless a truncation, retention, compaction
    /// or close runs (each holds the maintenance lock and may replace or remove the
    /// files at these paths, or be done with them) or `seg` is no longer the log's: a
    /// read holding a segment list from before a swap must not write its segment's
    /// entries into the files of the one replacing it, nor a read outlasting `close`
    /// write after it. `Ok(Some(why))` when it did not write; the next open checks the
    /// files again.
    fn write_rebuilt_index(&self, seg: &Segment) -> Result<Option<&'static str>> {
        let Some(_m) = self.maintenance.try_lock() else {
            return Ok(Some("the log is being maintained or closed"));
        };
        self.check_writable()?;
        if !self.snapshot().iter().any(|s| std::ptr::eq(&**s, seg)) {
            return Ok(Some("the segment was replaced or removed"));
        }
        // Index files are rewritten: a log opened clean stops being so first.
        self.touch()?;
        let reopen = |path: &Path| {
            self.fs
                .open(path, false)
                .map_err(io_ctx(format!("open {}", path.display())))
        };
        let offsets = reopen(seg.offset_index.path())?;
        let times = reopen(seg.time_index.path())?;
        seg.offset_index
            .write_to(offsets.as_ref())
            .and_then(|()| seg.time_index.write_to(times.as_ref()))
            .map_err(io_ctx(format!(
                "write {}",
                seg.offset_index.path().display()
            )))?;
        for (f, path) in [
            (&offsets, seg.offset_index.path()),
            (&times, seg.time_index.path()),
        ] {
            self.fsync_or_poison(format!("fsync {}", path.display()), || f.sync_data())?;
        }
        Ok(None)
    }

    fn distrust_index(&self, seg: &Segment, why: &str) {
        if !seg.index_suspect.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "{}: index does not match the log ({why}); reading by scan until it is rebuilt",
                seg.offset_index.path().display()
            );
        }
    }

    /// Reads and checks the 61-byte header at `pos`.
    pub(super) fn header_at(&self, seg: &Segment, pos: u64, limit: u64) -> Result<BatchHeader> {
        let corrupt = |reason: String| Error::corruption(&seg.log_path, pos, reason);
        if limit - pos < RECORD_BATCH_OVERHEAD as u64 {
            return Err(corrupt(format!(
                "{} bytes left, fewer than a batch header",
                limit - pos
            )));
        }
        let bytes = seg.read(pos, RECORD_BATCH_OVERHEAD)?;
        let h = BatchHeader::parse(&bytes)?;
        match h.size() {
            Some(size) if size >= RECORD_BATCH_OVERHEAD && pos + size as u64 <= limit => Ok(h),
            _ => Err(corrupt(format!(
                "batch length {} does not fit the segment",
                h.batch_length
            ))),
        }
    }

    /// Reads and decodes records from `offset` (records before it in the first batch are
    /// skipped), up to about `max_bytes` of batches, and of decompressed data beyond the
    /// first batch. Returns at least one record unless no record follows `offset`
    /// (offsets removed by compaction are skipped). This is the log's content:
    /// transaction markers (control records) are returned too, as stored.
    ///
    /// # Errors
    /// As [`read`](Self::read), plus `InvalidBatch`/`UnsupportedCodec` from decoding.
    pub fn read_records(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        self.read_decoded(offset, max_bytes, true)
    }

    /// [`read_records`](Self::read_records), control records left out unless
    /// `controls` (an application never sees transaction markers).
    pub(crate) fn read_decoded(
        &self,
        offset: i64,
        max_bytes: usize,
        controls: bool,
    ) -> Result<Vec<Record>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        let mut out = Vec::new();
        let mut from = offset;
        // Batches may hold no record at or after `from` (compaction leaves empty batches
        // and gaps): read on until a record turns up or the log ends.
        while out.is_empty() && from < self.log_end_offset() {
            let batches = self.read(from, max_bytes)?;
            if batches.is_empty() {
                break;
            }
            let decode = &self.config.decode;
            from = decode_records(&batches, from, decode, controls, max_bytes, &mut out)?;
        }
        Ok(out)
    }

    /// The first record with a timestamp at or after `timestamp` (Kafka's
    /// `offsetsForTimes`): its offset and timestamp, or `None` if every record is older.
    ///
    /// # Errors
    /// `InvalidArgument` for a negative `timestamp`; `Corruption`/`Io` from reading;
    /// `Closed` once the log was shut down (also during the lookup).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        crate::error::check_target_time(timestamp)?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "log" });
        }
        let found = self.find_timestamp(timestamp);
        self.closed_under(found)
    }

    fn find_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        let segs = self.snapshot();
        for (i, seg) in segs.iter().enumerate() {
            if seg.max_timestamp.load(Ordering::Acquire) < timestamp {
                continue;
            }
            let seg_end = segs.get(i + 1).map_or(end, |s| s.base);
            // Batches up to a time entry's offset carry timestamps <= the entry's. The
            // entry is verified: the batch it names must carry exactly its timestamp.
            if seg.time_index.is_deferred() {
                let loaded = seg
                    .time_index
                    .load_deferred(|p| self.fs.open(p, false), |e: &TimeEntry| e.timestamp >= 0);
                if !matches!(loaded, Ok(true)) {
                    // Only the last entry is known: the search starts lower (correct,
                    // slower).
                    tracing::warn!(
                        "{}: time index unreadable past its last entry ({loaded:?})",
                        seg.time_index.path().display()
                    );
                }
            }
            let entry = seg.time_index.floor(|e| e.timestamp < timestamp);
            let verified = match entry {
                Some(e) => self.time_entry_matches(seg, e),
                None => true,
            };
            if !verified {
                tracing::warn!(
                    "{}: time index entry does not match the log; searching the segment from its start",
                    seg.time_index.path().display()
                );
            }
            let mut offset = entry
                .filter(|_| verified)
                .map_or(seg.base, |e| seg.base + i64::from(e.relative_offset) + 1)
                .max(start);
            while offset < seg_end {
                let batches = match self.read(offset, 1 << 20) {
                    Ok(b) => b,
                    // Retention raised the log start meanwhile: go on from there.
                    Err(Error::OffsetOutOfRange { .. }) if offset < self.log_start_offset() => {
                        offset = self.log_start_offset();
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let Some(last) = batches.last().map(Batch::last_offset) else {
                    break;
                };
                // The log start as of after the read: a `delete_records` meanwhile may
                // have moved it into these batches.
                let floor = self.log_start_offset().max(start);
                for b in batches
                    .iter()
                    .filter(|b| b.header().max_timestamp >= timestamp)
                {
                    for r in b.records_with(&self.config.decode)? {
                        let r = r?;
                        if r.timestamp >= timestamp && r.offset >= floor {
                            return Ok(Some((r.offset, r.timestamp)));
                        }
                    }
                }
                offset = last + 1;
            }
        }
        Ok(None)
    }

    fn time_entry_matches(&self, seg: &Segment, e: TimeEntry) -> bool {
        let claimed = seg.base + i64::from(e.relative_offset);
        match self.read(claimed, 1) {
            Ok(batches) => batches.first().is_some_and(|b| {
                b.last_offset() == claimed && b.header().max_timestamp == e.timestamp
            }),
            Err(_) => false,
        }
    }
}

/// Decodes the records of `batches` (in offset order) at or after `from` into `out`,
/// control batches left out unless `controls`. Stops before a batch once `out` holds
/// a record and the compressed batches decoded so far inflated to `budget` bytes or
/// more: the records returned hold their decompressed batches, which `max_bytes` of a
/// read (compressed bytes) does not bound. Returns the offset after the last batch
/// decoded (or skipped).
///
/// # Errors
/// `InvalidBatch`/`UnsupportedCodec` from decoding.
pub(crate) fn decode_records(
    batches: &[Batch],
    from: i64,
    decode: &DecodeOptions,
    controls: bool,
    budget: usize,
    out: &mut Vec<Record>,
) -> Result<i64> {
    let mut next = from;
    let mut inflated = 0usize;
    for b in batches {
        if !out.is_empty() && inflated >= budget {
            break;
        }
        next = b.last_offset() + 1;
        if b.header().is_control() && !controls {
            continue;
        }
        let records = b.records_with(decode)?;
        if b.header().compression()? != Compression::None {
            inflated = inflated.saturating_add(records.data_len());
        }
        for r in records {
            let r = r?;
            if r.offset >= from {
                out.push(r);
            }
        }
    }
    Ok(next)
}
