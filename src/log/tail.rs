//! [`TailReader`]: reads one partition directory that another process may be writing,
//! without its lock and without writing a byte: files are opened read-only and read
//! with `pread` (never mapped: a writer recovering could shrink them under a mapping).
//!
//! What it sees: whole batches whose CRC checks, in offset order. A batch still being
//! written (its bytes not all in the file yet, or failing its CRC at the end of the
//! last segment, past what the writer recorded as synced) is not visible yet; one
//! failing before that is `Corruption`. It follows the writer: a new segment is read once
//! the one before is done; segments deleted by retention are skipped (reading goes on
//! at the new log start); a segment replaced by compaction is read on from the open
//! file (the records it already had) and then from the current files by offset, so
//! each offset is returned at most once, in order; a segment a truncation
//! (`truncate_to`) cut or removed is not read on from the open file (its batches past
//! the cut are gone): the reader's offset is looked up again in the current files.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::segment::{file_name, parse_file_name};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch::BATCH_LENGTH_OFFSET;
use crate::format::{Batch, DecodeOptions, Record};

/// Bytes before a batch's own length field counts: base offset and length.
const LOG_OVERHEAD: u64 = (BATCH_LENGTH_OFFSET + 4) as u64;
/// The smallest batch length (the v2 header after the length field).
const MIN_BATCH_LENGTH: u64 = 49;

/// Where reading stands in one segment file.
#[derive(Debug)]
struct Cursor {
    base: i64,
    file: File,
    pos: u64,
    /// The next offset to return.
    next: i64,
    /// The offset after the last batch read in this file: the next one starts at or
    /// after it (and at or after `base`).
    after: i64,
}

/// What [`TailReader::next_batch`] found at a position.
enum Found {
    Batch(Batch),
    /// Nothing (yet) at this position: the end of what is written.
    End,
    /// A batch of a file the writer replaced or removed that a truncation may have
    /// removed: its offset is looked up again in the current files (as at the end of
    /// a replaced file).
    Replaced,
}

/// Asked, where gaps are not allowed, whether they are now (the topic was altered to
/// compaction since the reader started); `None` if that cannot be told now.
type GapsNow = Arc<dyn Fn() -> Option<bool> + Send + Sync>;

/// How often [`GapsNow`] is asked at most: a damaged base offset in the last segment
/// reads as the end of what is visible, read after read.
const GAPS_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A follower of one partition directory written by someone else.
pub struct TailReader {
    dir: PathBuf,
    decode: DecodeOptions,
    /// Whether a batch may start past the end of the one before it (compaction's
    /// gaps); if not, such a base offset (outside the CRC) is damage. Once allowed,
    /// for good.
    gaps: AtomicBool,
    gaps_now: Option<GapsNow>,
    /// When `gaps_now` last said no.
    gaps_refused_at: parking_lot::Mutex<Option<std::time::Instant>>,
    /// Where the last [`read`](Self::read) stopped.
    read: Option<Cursor>,
    /// How far whole batches were seen ([`log_end_offset`](Self::log_end_offset)).
    end: Option<Cursor>,
    /// What the directory followed is, once listed: a directory of that name made
    /// since (the topic deleted and created again) is another partition.
    dir_id: parking_lot::Mutex<Option<DirId>>,
    /// What tells a truncation's removed batches, read once per read (at the first
    /// batch of a replaced file), not at every batch.
    cut_rules: parking_lot::Mutex<Option<Arc<CutRules>>>,
}

/// What [`TailReader::maybe_cut`] judges by: the segment the durable position names,
/// and the epochs.
struct CutRules {
    durable_segment: Option<i64>,
    epochs: Option<super::epoch::EpochHistory>,
}

impl std::fmt::Debug for TailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailReader")
            .field("dir", &self.dir)
            .field("gaps", &self.gaps)
            .field("read", &self.read)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl TailReader {
    /// A reader of the partition directory `dir`; nothing is opened until it reads.
    /// A batch may be of any size the format allows: the topic's `max.message.bytes`
    /// bounded it when it was written, and may have been lowered since.
    pub fn new(dir: impl AsRef<Path>, decode: DecodeOptions) -> Self {
        TailReader {
            dir: dir.as_ref().to_path_buf(),
            decode,
            gaps: AtomicBool::new(true),
            gaps_now: None,
            gaps_refused_at: parking_lot::Mutex::new(None),
            read: None,
            end: None,
            dir_id: parking_lot::Mutex::new(None),
            cut_rules: parking_lot::Mutex::new(None),
        }
    }

    /// Whether the log may have offset gaps (a compacted topic's, or one compacted
    /// before). Default = `true`, as for any directory. With `false`, a batch that
    /// does not start where the one before it ended is `Corruption` (in a segment the
    /// writer moved past; in the last one, the end of what is visible): its base
    /// offset is outside the CRC, and a damaged one would be served as other offsets.
    #[must_use]
    pub fn offset_gaps(self, allowed: bool) -> Self {
        self.gaps.store(allowed, Ordering::Relaxed);
        self
    }

    /// Where gaps are not allowed, `now` is asked at a batch that starts past the end
    /// of the one before (at most every [`GAPS_RECHECK`]): whether they are now (the
    /// topic's config read again), `None` if that cannot be told (the gap is let pass).
    #[must_use]
    pub(crate) fn offset_gaps_when(
        mut self,
        now: impl Fn() -> Option<bool> + Send + Sync + 'static,
    ) -> Self {
        self.gaps_now = Some(Arc::new(now));
        self
    }

    /// Whether a batch may start past the end of the one before it.
    fn gaps_allowed(&self) -> bool {
        if self.gaps.load(Ordering::Relaxed) {
            return true;
        }
        let Some(ask) = &self.gaps_now else {
            return false;
        };
        let mut refused = self.gaps_refused_at.lock();
        if refused.is_some_and(|at| at.elapsed() < GAPS_RECHECK) {
            return false;
        }
        match ask() {
            Some(true) => {
                self.gaps.store(true, Ordering::Relaxed);
                true
            }
            Some(false) => {
                *refused = Some(std::time::Instant::now());
                false
            }
            None => true,
        }
    }

    /// The segments' base offsets now, sorted.
    fn bases(&self) -> Result<Vec<i64>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(io_ctx(format!("list {}", self.dir.display())))?;
        let mut bases = Vec::new();
        for e in entries {
            let e = e.map_err(io_ctx(format!("list {}", self.dir.display())))?;
            if let Some(base) = e
                .file_name()
                .to_str()
                .and_then(|n| parse_file_name(n, "log"))
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        Ok(bases)
    }

    /// Remembers the directory's identity at the first call; `NotFound` at a later one
    /// if the directory is gone or another one has its name.
    fn check_same_dir(&self) -> Result<()> {
        let mut seen = self.dir_id.lock();
        let now = DirId::of(&self.dir)?;
        match (&*seen, now) {
            (None, Some(id)) => *seen = Some(id),
            (Some(was), now) if !now.as_ref().is_some_and(|now| was.same(now)) => {
                return Err(Error::NotFound {
                    kind: "partition",
                    name: self
                        .dir
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                });
            }
            // Not there yet (listing it fails as before), or the same.
            _ => {}
        }
        Ok(())
    }

    /// The segments now: how many, and their bytes.
    ///
    /// # Errors
    /// `Io` if the directory cannot be listed.
    pub fn segment_files(&self) -> Result<(usize, u64)> {
        let mut bytes = 0;
        let bases = self.bases()?;
        for &base in &bases {
            // Deleted since it was listed: not counted.
            if let Ok(m) = std::fs::metadata(self.dir.join(file_name(base, "log"))) {
                bytes += m.len();
            }
        }
        Ok((bases.len(), bytes))
    }

    /// The first offset there is: the first segment's base (0 before any segment), or
    /// where the writer moved the log start past it (`delete_records`), as its
    /// `log-start-offset-checkpoint` says.
    ///
    /// # Errors
    /// `Io` if the directory or the checkpoint cannot be read.
    pub fn log_start_offset(&self) -> Result<i64> {
        let first = self.bases()?.first().copied().unwrap_or(0);
        Ok(first.max(self.recorded_start()?))
    }

    /// The log start the writer recorded (`i64::MIN` without one).
    fn recorded_start(&self) -> Result<i64> {
        let path = self.dir.join(super::checkpoint::LOG_START_FILE);
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(i64::MIN),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        let (_, partition) = super::open::topic_partition(&self.dir);
        Ok(
            super::checkpoint::parse_recovery_point(&String::from_utf8_lossy(&text), partition)
                .unwrap_or(i64::MIN),
        )
    }

    /// A cursor at `offset` (or the first offset after it there is): in the last
    /// segment starting at or before it. `None` without segments.
    fn seek(&self, offset: i64) -> Result<Option<Cursor>> {
        // Here, where the reader moves to another file (its first, a later one, or one
        // looked up again), not at each listing: a reader at the end lists the
        // directory at each look for more.
        self.check_same_dir()?;
        // A segment listed and deleted before it is opened: list again.
        for _ in 0..16 {
            let bases = self.bases()?;
            let Some(&first) = bases.first() else {
                return Ok(None);
            };
            // Nothing below the log start, also inside its segment (`delete_records`).
            let offset = offset.max(first).max(self.recorded_start()?);
            let base = bases
                .iter()
                .rev()
                .find(|&&b| b <= offset)
                .copied()
                .unwrap_or(first);
            let path = self.dir.join(file_name(base, "log"));
            match File::open(&path) {
                Ok(file) => {
                    return Ok(Some(Cursor {
                        base,
                        file,
                        pos: 0,
                        next: offset,
                        after: base,
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_ctx(format!("open {}", path.display()))(e)),
            }
        }
        Err(io_ctx(format!("{}: open a segment", self.dir.display()))(
            io::Error::other("its segments kept changing while being opened"),
        ))
    }

    /// The batch at the cursor's position, if it is whole and sound. In the last
    /// segment, a short, unfinished or failing batch is a write in progress (or a torn
    /// tail the writer's recovery will cut): not visible yet, unless the writer
    /// recorded bytes past it as synced (`streamlog.durable`, as the writer's own open
    /// tells a torn tail from damage). In a segment the writer has moved past, it is
    /// corruption.
    fn next_batch(&self, c: &Cursor) -> Result<Found> {
        if let Ok(found) = self.read_batch(c)? {
            return Ok(found);
        }
        if !self.bases()?.iter().any(|&b| b > c.base) && !self.synced_past(c)? {
            return Ok(Found::End);
        }
        // The writer rolls only once its last batch in this segment is whole, and
        // records a position as synced only once the bytes before it are: one seen cut
        // short (the file's length is followed page by page while it is written)
        // before the later segment was listed, or the position read, may be whole now.
        // Read again: failing now, it is damage.
        match self.read_batch(c)? {
            Ok(found) => Ok(found),
            Err(reason) => Err(Error::corruption(
                self.dir.join(file_name(c.base, "log")),
                c.pos,
                reason,
            )),
        }
    }

    /// Whether the writer recorded bytes of `c`'s segment past `c`'s position as synced
    /// (none recorded in a directory Kafka wrote). Not for a file removed or replaced
    /// since `c` opened it.
    fn synced_past(&self, c: &Cursor) -> Result<bool> {
        let (_, point) =
            super::checkpoint::DurableFile::read(&crate::fs::OsFs, &self.dir).map_err(io_ctx(
                format!("read the durable position in {}", self.dir.display()),
            ))?;
        match point {
            Some(p) if p.segment_base == c.base && p.position > c.pos => Ok(!is_unlinked(&c.file)?),
            _ => Ok(false),
        }
    }

    /// The batch at the cursor's position, or why it is not whole and sound.
    fn read_batch(&self, c: &Cursor) -> Result<std::result::Result<Found, String>> {
        use std::os::unix::fs::MetadataExt;
        let path = || self.dir.join(file_name(c.base, "log"));
        let bad = |reason: String| Ok(Err(reason));
        let meta = c
            .file
            .metadata()
            .map_err(io_ctx(format!("stat {}", path().display())))?;
        let (len, unlinked) = (meta.len(), meta.nlink() == 0);
        if len == c.pos {
            return Ok(Ok(Found::End));
        }
        if len < c.pos + LOG_OVERHEAD {
            return bad("a batch cut short in its header".into());
        }
        let mut prefix = [0u8; LOG_OVERHEAD as usize];
        read_exact_at(&c.file, &mut prefix, c.pos)
            .map_err(io_ctx(format!("read {}", path().display())))?;
        let length = i32::from_be_bytes(prefix[8..12].try_into().expect("4 bytes"));
        let size = LOG_OVERHEAD + u64::try_from(length).unwrap_or(0);
        // Read (and allocated) only once the file holds all of it, below.
        if size < LOG_OVERHEAD + MIN_BATCH_LENGTH {
            return bad(format!("a batch length of {length} bytes"));
        }
        if len < c.pos + size {
            return bad(format!("a batch of {size} bytes cut short"));
        }
        let mut bytes = vec![0u8; size as usize];
        read_exact_at(&c.file, &mut bytes, c.pos)
            .map_err(io_ctx(format!("read {}", path().display())))?;
        let b = match Batch::parse(Bytes::from(bytes)) {
            Ok(b) => b,
            Err(e) => return bad(e.to_string()),
        };
        // Outside the CRC: the base offset. It must follow the batch before it (gaps
        // are compaction's, and only where the log may have them) and leave room for
        // its last offset.
        if b.base_offset() < c.after
            || (b.base_offset() > c.after && !self.gaps_allowed())
            || b.last_offset() < b.base_offset()
            || b.last_offset() == i64::MAX
        {
            return bad(format!(
                "a batch at offset {} where offsets from {} were expected",
                b.base_offset(),
                c.after
            ));
        }
        if unlinked && self.maybe_cut(c, &b)? {
            return Ok(Ok(Found::Replaced));
        }
        Ok(Ok(Found::Batch(b)))
    }

    /// Whether `b`, read from `c`'s file after the writer unlinked it, may be one a
    /// truncation (`truncate_to`) removed. A compaction's replaced file holds the
    /// records of the same offsets (read on from it, never a removed one); a
    /// truncation's does not. Told apart: a compaction fsyncs first, so the durable
    /// position then names the active segment, never rewritten, and moves on from
    /// there; a truncation records it in the segment it cuts before the rename, then
    /// begins an epoch at the cut before anything is appended after it, which a
    /// removed batch's `partitionLeaderEpoch` fails.
    fn maybe_cut(&self, c: &Cursor, b: &Batch) -> Result<bool> {
        let rules = {
            let mut cached = self.cut_rules.lock();
            match &*cached {
                Some(rules) => rules.clone(),
                None => cached.insert(Arc::new(self.read_cut_rules()?)).clone(),
            }
        };
        if rules.durable_segment.is_some_and(|base| c.base >= base) {
            return Ok(true);
        }
        Ok(rules
            .epochs
            .as_ref()
            .is_some_and(|h| !h.allows(b.header().partition_leader_epoch, b.base_offset())))
    }

    fn read_cut_rules(&self) -> Result<CutRules> {
        let (_, point) =
            super::checkpoint::DurableFile::read(&crate::fs::OsFs, &self.dir).map_err(io_ctx(
                format!("read the durable position in {}", self.dir.display()),
            ))?;
        let path = self.dir.join(super::checkpoint::LEADER_EPOCH_FILE);
        let epochs = match std::fs::read(&path) {
            Ok(text) => super::epoch::EpochHistory::parse(&String::from_utf8_lossy(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        Ok(CutRules {
            durable_segment: point.map(|p| p.segment_base),
            epochs,
        })
    }

    /// Moves `c` on once it has read all of its segment and the writer has started a
    /// later one: to the current file holding its next offset (a segment compaction
    /// rewrote under the same name is read again from there), or past its segment when
    /// that is still the file it read. A file the writer replaced or removed with no
    /// later segment (a truncation) is looked up again by offset. Offsets after the
    /// cursor that are in a compaction's swap file not renamed into place yet (the
    /// segments it merged already unlinked) are read from the swap file itself: it is
    /// whole and fsync'd before it gets that name. Says whether to read on. `end`: the
    /// cursor finds the log end, which a truncation (its file replaced or removed) moves
    /// back: it is found again from the last segment's start.
    fn roll(&self, c: &mut Option<Cursor>, end: bool) -> Result<Rolled> {
        let Some(cur) = c.as_ref() else {
            return Ok(Rolled::End);
        };
        let bases = self.bases()?;
        if end && is_unlinked(&cur.file)? {
            // Replaced or removed (a truncation, also one the writer rolled past since):
            // the end may be lower now.
            *c = match bases.last() {
                Some(&last) => self.seek(last)?,
                None => None,
            };
            return Ok(if c.is_some() { Rolled::On } else { Rolled::End });
        }
        let Some(later) = bases.iter().copied().find(|&b| b > cur.base) else {
            // (An end cursor's file was looked at above.)
            if !end && is_unlinked(&cur.file)? {
                // Read on in the file that holds the offset now.
                *c = self.seek(cur.next)?;
                return Ok(if c.is_some() { Rolled::On } else { Rolled::End });
            }
            return Ok(Rolled::End);
        };
        // Listed after the segment was done: read it to its end once more first.
        if matches!(self.next_batch(cur)?, Found::Batch(_)) {
            return Ok(Rolled::On);
        }
        let next = cur.next;
        let mut moved = self.seek(next)?;
        if let Some(m) = &moved
            && m.base == cur.base
            && same_file(&m.file, &cur.file)?
            && next < later
        {
            // Its offsets from `next` may be in a compaction's swap file about to be
            // renamed over this one (after the merged segments were unlinked): read
            // there. Skipped only once the name still holds the file read.
            let swap = self
                .dir
                .join(format!("{}.swap", file_name(cur.base, "log")));
            match File::open(&swap) {
                Ok(file) => {
                    *c = Some(Cursor {
                        base: cur.base,
                        file,
                        pos: 0,
                        next,
                        after: cur.base,
                    });
                    return Ok(Rolled::On);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_ctx("open a compaction's swap file")(e)),
            }
            match File::open(self.dir.join(file_name(cur.base, "log"))) {
                Ok(again) if same_file(&again, &cur.file)? => moved = self.seek(later)?,
                // Replaced meanwhile: read the new file from `next`.
                Ok(_) => moved = self.seek(next)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => moved = self.seek(next)?,
                Err(e) => return Err(io_ctx("reopen a segment being followed")(e)),
            }
        } else if let Some(m) = &moved
            && m.base == cur.base
            && same_file(&m.file, &cur.file)?
        {
            moved = self.seek(later.max(next))?;
        }
        *c = moved;
        Ok(Rolled::On)
    }

    /// Whole batches from the one holding `from` (or from the log start, if retention
    /// deleted `from`), up to about `max_bytes` (at least one, if there is one ending at
    /// or after `from`), control batches included. Empty when nothing at or after
    /// `from` is written yet.
    ///
    /// # Errors
    /// `Corruption` for a bad batch followed by a later segment; `NotFound` once the
    /// directory first read is gone, or another is in its place (its topic deleted,
    /// and maybe created again: its offsets are another log's); `Io`.
    pub fn read_batches(&mut self, from: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        // Also on a sequential read: `delete_records` may have raised the start past
        // where the last read ended.
        let from = from.max(self.recorded_start()?);
        self.read_batches_at(from, max_bytes)
    }

    /// [`read_batches`](Self::read_batches) from `from`, checked against the recorded
    /// log start by the caller.
    fn read_batches_at(&mut self, from: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        // Read again by this read, if it needs them.
        *self.cut_rules.get_mut() = None;
        if self.read.as_ref().is_none_or(|c| c.next != from) {
            self.read = self.seek(from)?;
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut c = self.read.take();
        let result = (|| {
            while let Some(cur) = c.as_mut() {
                match self.next_batch(cur)? {
                    Found::Batch(b) => {
                        cur.pos += b.size() as u64;
                        cur.after = b.last_offset() + 1;
                        if b.last_offset() < cur.next {
                            continue;
                        }
                        cur.next = b.last_offset() + 1;
                        bytes += b.size();
                        out.push(b);
                        if bytes >= max_bytes {
                            break;
                        }
                    }
                    Found::End | Found::Replaced => {
                        if self.roll(&mut c, false)? == Rolled::End {
                            break;
                        }
                    }
                }
            }
            Ok(())
        })();
        self.read = c;
        result.map(|()| out)
    }

    /// The records of [`read_batches`](Self::read_batches) at or after `from` (or the
    /// log start), control records (transaction markers) left out; records of
    /// transactions are returned as written (read_uncommitted). Reads on past batches
    /// holding no such record (compaction leaves empty ones) until one turns up or the
    /// written end.
    ///
    /// # Errors
    /// As [`read_batches`](Self::read_batches), and decoding errors.
    pub fn read(&mut self, from: i64, max_bytes: usize) -> Result<Vec<Record>> {
        self.read_on(from, max_bytes).map(|(records, _)| records)
    }

    /// [`read`](Self::read), with the offset to read on from: after the last batch
    /// decoded (past the records returned when batches after them held none: markers,
    /// compaction's empty batches; batches read but left for the decompression budget
    /// are read again from there), or when nothing was read `from`, or the log start
    /// if retention deleted `from` (waiting for `from` would end at once).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_on(&mut self, from: i64, max_bytes: usize) -> Result<(Vec<Record>, i64)> {
        let mut out = Vec::new();
        // No lower than the log start the writer recorded, also inside the batch that
        // holds it; also for a sequential read (`delete_records` may have raised it past
        // where the last read ended: the read then seeks).
        let mut at = from.max(self.recorded_start()?);
        let start = at;
        loop {
            let batches = self.read_batches_at(at, max_bytes)?;
            if batches.is_empty() {
                if at == start {
                    at = at.max(self.log_start_offset()?);
                }
                return Ok((out, at));
            }
            // Stops early (a later read seeks back) once the decompressed batches are
            // past `max_bytes`.
            at = super::read::decode_records(
                &batches,
                at,
                &self.decode,
                false,
                max_bytes,
                &mut out,
            )?;
            if !out.is_empty() {
                return Ok((out, at));
            }
        }
    }

    /// The offset after the last whole, sound batch now (the first segment's base
    /// without any).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn log_end_offset(&mut self) -> Result<i64> {
        *self.cut_rules.get_mut() = None;
        if self.end.is_none() {
            let bases = self.bases()?;
            self.end = match bases.last() {
                Some(&last) => self.seek(last)?,
                None => return Ok(0),
            };
        }
        let mut c = self.end.take();
        let result = (|| {
            while let Some(cur) = c.as_mut() {
                match self.next_batch(cur)? {
                    Found::Batch(b) => {
                        cur.pos += b.size() as u64;
                        cur.after = b.last_offset() + 1;
                        cur.next = cur.next.max(b.last_offset() + 1);
                    }
                    Found::End | Found::Replaced => {
                        if self.roll(&mut c, true)? == Rolled::End {
                            break;
                        }
                    }
                }
            }
            Ok(())
        })();
        let end = c.as_ref().map(|c| c.next);
        self.end = c;
        result?;
        match end {
            Some(end) => Ok(end),
            None => self.log_start_offset(),
        }
    }
}

/// What [`TailReader::roll`] found at the end of a cursor's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rolled {
    /// Read on (the cursor moved, to another file or a swap file, or its segment grew).
    On,
    /// Nothing follows yet.
    End,
}

fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    file.read_exact_at(buf, pos)
}

/// Whether the file no longer has a name (the writer removed or replaced it).
fn is_unlinked(file: &File) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let m = file
        .metadata()
        .map_err(io_ctx("stat a segment being followed"))?;
    Ok(m.nlink() == 0)
}

/// What a partition directory is: the topic id its `partition.metadata` names (a topic
/// created again gets a new one), else its device and inode (which a file system may
/// give a new directory once the old one is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirId {
    topic_id: Option<String>,
    inode: (u64, u64),
}

impl DirId {
    /// `None` if there is no such directory.
    fn of(dir: &Path) -> Result<Option<DirId>> {
        use std::os::unix::fs::MetadataExt;
        let m = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_ctx(format!("stat {}", dir.display()))(e)),
        };
        let path = dir.join(super::checkpoint::PARTITION_METADATA_FILE);
        let topic_id = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "topic_id")
                .map(|(_, v)| v.trim().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_ctx(format!("read {}", path.display()))(e)),
        };
        Ok(Some(DirId {
            topic_id,
            inode: (m.dev(), m.ino()),
        }))
    }

    fn same(&self, other: &DirId) -> bool {
        match (&self.topic_id, &other.topic_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.inode == other.inode,
        }
    }
}

/// Whether two handles are of one file (device and inode).
fn same_file(a: &File, b: &File) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (a.metadata(), b.metadata());
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(a.dev() == b.dev() && a.ino() == b.ino()),
        (Err(e), _) | (_, Err(e)) => Err(io_ctx("stat a segment being followed")(e)),
    }
}
