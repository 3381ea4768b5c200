//! Small files in the partition directory that make recovery bounded and precise.
//!
//! - `recovery-point-offset-checkpoint` (Kafka's text format `0\n1\n<topic> <partition>
//!   <offset>\n`): every segment below the recovery point, with its indexes, is synced.
//!   Written via `.tmp` + fsync + rename + directory fsync.
//! - `.kafka_cleanshutdown` (Kafka's JSON): present only after a clean close. Created
//!   after everything it vouches for is synced, then the directory is fsync'd; its bytes
//!   are not (only its presence is read). Deleted (and the directory synced) before the
//!   first write after open.
//! - `streamlog.durable`: where the last completed flush ended (segment base, byte
//!   position, next offset). Two 64-byte slots, each with its own CRC-32C, written
//!   alternately and fdatasync'd, so a torn write leaves the other slot valid. Recovery
//!   uses it to tell a torn tail (after it) from damage to synced data (before it).
//! - `leader-epoch-checkpoint` (Kafka's text): the partition epochs (see `epoch`).

use std::path::Path;
use std::sync::Arc;

use crate::fs::{File, FileSystem};

/// File name of the recovery point checkpoint.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// File name of the clean shutdown marker.
/// The log start offset raised by `delete_records` (Kafka's offset checkpoint text).
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// Kafka's clean shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// File name of the durable position slots.
pub const DURABLE_FILE: &str = "streamlog.durable";
/// Kafka's leader epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Left (empty) by a log that stopped taking writes after a failed write or fsync: its
/// unflushed data may be readable from the page cache yet never reach the disk (Linux
/// marks pages clean after a failed writeback), so the next open writes it again where
/// the file system cannot show what the disk holds (no `O_DIRECT`). Not left when only
/// the durable position's record failed, after its data was synced: writing synced
/// bytes again would expose them to a write torn by a power cut. Never synced: it
/// only has to outlive the process, as that cache does, not the machine.
pub const UNSYNCED_FILE: &str = "streamlog.unsynced";
/// The lock file.
pub const LOCK_FILE: &str = ".lock";
/// Kafka's per-partition file naming the topic id (the store's catalog writes it).
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// The entry that marks a directory as a container of partition directories (a
/// store's topic metadata): a `Log` opened on its own inside such a directory also
/// takes the container's lock, so that it never shares a partition with the container.
pub const CONTAINER_MARKER: &str = ".topics";

/// Writes `contents` to `dir/name` atomically: `name.tmp`, fsync, rename, fsync dir.
pub fn write_atomic(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> std::io::Result<()> {
    write_atomic_via(fs, dir, name, &format!("{name}.tmp"), contents)
}

/// [`write_atomic`] with a chosen temporary file name (in `dir`).
pub fn write_atomic_via(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    tmp_name: &str,
    contents: &[u8],
) -> std::io::Result<()> {
    write_atomic_steps(fs, dir, name, tmp_name, contents).map_err(|(_, e)| e)
}

/// The step of [`write_atomic_steps`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating or writing the temporary file (ENOSPC, say): nothing changed.
    Write,
    /// Its fsync: nothing changed, but the failed fsync poisons a log.
    Sync,
    /// The rename: nothing changed.
    Rename,
    /// The directory's fsync, after the rename: the new file is in place, and whether
    /// it survives a crash is unknown.
    SyncDir,
}

impl WriteStep {
    /// Whether it was an fsync (which poisons a log; a write, create or rename need
    /// not).
    pub fn is_fsync(self) -> bool {
        matches!(self, WriteStep::Sync | WriteStep::SyncDir)
    }
}

/// [`write_atomic_via`], telling which step failed.
pub fn write_atomic_steps(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    tmp_name: &str,
    contents: &[u8],
) -> Result<(), (WriteStep, std::io::Error)> {
    let tmp = dir.join(tmp_name);
    write_synced_steps(fs, &tmp, contents).map_err(|(fsync, e)| match fsync {
        true => (WriteStep::Sync, e),
        false => (WriteStep::Write, e),
    })?;
    fs.rename(&tmp, &dir.join(name))
        .map_err(|e| (WriteStep::Rename, e))?;
    fs.sync_dir(dir).map_err(|e| (WriteStep::SyncDir, e))
}

/// Replaces the contents of `path` (created if needed) and fdatasyncs it.
fn write_synced(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_synced_steps(fs, path, contents).map_err(|(_, e)| e)
}

/// [`write_synced`], telling whether a failure was the fsync (`true`).
fn write_synced_steps(
    fs: &dyn FileSystem,
    path: &Path,
    contents: &[u8],
) -> Result<(), (bool, std::io::Error)> {
    let f = fs.open(path, true).map_err(|e| (false, e))?;
    f.set_len(0)
        .and_then(|()| f.write_all_at(contents, 0))
        .map_err(|e| (false, e))?;
    f.sync_data().map_err(|e| (true, e))
}

/// Kafka's clean-shutdown marker contents.
pub const CLEAN_SHUTDOWN_CONTENTS: &[u8] = br#"{"version":0,"brokerEpoch":0}"#;

/// Writes what a close leaves in `dir`, sharing one directory fsync: the recovery point
/// `point` (if given) as [`write_atomic`] does, then the clean-shutdown marker.
///
/// The marker's bytes are written but not fsync'd: an open reads only whether the marker
/// exists, never what it holds, and it is created only after everything it vouches for
/// is synced. A crash that keeps its name but loses its bytes still leaves a log closed
/// cleanly, and a crash that loses its name leaves one that an open recovers. The two
/// names need not survive together: a marker without the new recovery point only makes
/// a later crash recovery scan from the older point.
pub fn write_close_files(
    fs: &dyn FileSystem,
    dir: &Path,
    point: Option<&[u8]>,
) -> std::io::Result<()> {
    if let Some(text) = point {
        let tmp = dir.join(format!("{RECOVERY_POINT_FILE}.tmp"));
        write_synced(fs, &tmp, text)?;
        fs.rename(&tmp, &dir.join(RECOVERY_POINT_FILE))?;
    }
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let marker = fs.open(&path, true)?;
    // Its bytes are Kafka's, for Kafka's tools; the close does not depend on them.
    if let Err(e) = marker
        .set_len(0)
        .and_then(|()| marker.write_all_at(CLEAN_SHUTDOWN_CONTENTS, 0))
    {
        tracing::warn!("{}: contents not written: {e}", path.display());
    }
    drop(marker);
    fs.sync_dir(dir)
}

/// Kafka's offset checkpoint text for one partition.
pub fn recovery_point_text(topic: &str, partition: i32, offset: i64) -> String {
    format!("0\n1\n{topic} {partition} {offset}\n")
}

/// Parses a Kafka offset checkpoint, returning the offset recorded for `partition`
/// (any topic name, since a partition directory holds one partition). `None` if the
/// text is malformed.
pub fn parse_recovery_point(text: &str, partition: i32) -> Option<i64> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    let mut found = None;
    for _ in 0..n {
        let line = lines.next()?;
        let mut parts = line.rsplitn(3, ' ');
        let offset: i64 = parts.next()?.parse().ok()?;
        let p: i32 = parts.next()?.parse().ok()?;
        parts.next()?;
        if p == partition && offset >= 0 {
            found = Some(offset);
        }
    }
    found
}

/// The log start offset checkpoint of partition directory `dir` (raised by
/// `delete_records` or retention), `None` if there is none.
///
/// # Errors
/// `Corruption` for a file that does not parse (taken as none, records it deleted would
/// be readable again); `Io`.
pub(crate) fn read_log_start(fs: &dyn FileSystem, dir: &Path) -> crate::Result<Option<i64>> {
    let path = dir.join(LOG_START_FILE);
    let Some(text) =
        read_small(fs, &path).map_err(crate::error::io_ctx(format!("read {}", path.display())))?
    else {
        return Ok(None);
    };
    let partition = super::open::topic_partition(dir).1;
    parse_recovery_point(&String::from_utf8_lossy(&text), partition)
        .map(Some)
        .ok_or_else(|| {
            crate::Error::corruption(
                &path,
                0,
                "not a log start offset checkpoint of this partition",
            )
        })
}

/// Reads a whole small file, `None` if it does not exist.
pub fn read_small(fs: &dyn FileSystem, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    if !fs.exists(path)? {
        return Ok(None);
    }
    let f = fs.open_read(path)?;
    let len = f.len()?.min(1 << 20) as usize;
    Ok(Some(f.read_exact_at(0, len)?.to_vec()))
}

/// Where the last completed flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurablePoint {
    /// Base offset of the segment that was active.
    pub segment_base: i64,
    /// Bytes of that segment that were synced.
    pub position: u64,
    /// The log end offset that was synced.
    pub next_offset: i64,
    /// The log start offset at that time: segments below it may be gone, none above.
    pub log_start: i64,
}

impl DurablePoint {
    /// What contradicts this point in a directory whose segments are `segs` (base
    /// offset, size in bytes, path; in offset order): the segment it names missing or
    /// shorter than its synced position, segments from its log start gone, or every
    /// segment gone while data was flushed. Each is `Corruption`: the bytes were
    /// acknowledged as synced. A `recovery_point` (Kafka's checkpoint, trusted only up
    /// to the point's next offset) naming a later segment moves the synced position to
    /// that segment's start. Used by recovery and by the read-only verify, so a
    /// directory the one passes the other opens.
    pub(super) fn check_segments(
        d: Option<Self>,
        recovery_point: Option<i64>,
        segs: &[(i64, u64, &Path)],
    ) -> crate::Result<()> {
        use crate::Error;
        let (base, pos) = Self::synced_position(d, recovery_point, segs).unwrap_or((0, 0));
        if pos > 0 {
            match segs.iter().find(|s| s.0 == base) {
                None => {
                    return Err(Error::corruption(
                        super::segment::file_name(base, "log"),
                        0,
                        format!("the segment holding flushed data up to position {pos} is missing"),
                    ));
                }
                Some(&(_, size, path)) if size < pos => {
                    return Err(Error::corruption(
                        path,
                        size,
                        format!("the file has {size} bytes but {pos} were flushed"),
                    ));
                }
                _ => {}
            }
        }
        match (d, segs.first()) {
            (Some(d), Some(&(first, _, path))) if first > d.log_start => Err(Error::corruption(
                path,
                0,
                format!(
                    "the log starts at offset {first} but segments from offset {} were flushed",
                    d.log_start
                ),
            )),
            (Some(d), None) if d.next_offset > 0 => Err(Error::corruption(
                "segments",
                0,
                "every segment is missing but data was flushed",
            )),
            _ => Ok(()),
        }
    }

    /// Everything before (segment base, position) was synced: the point's, or the start
    /// of a later segment `recovery_point` names (see [`check_segments`](Self::check_segments)).
    pub(super) fn synced_position(
        d: Option<Self>,
        recovery_point: Option<i64>,
        segs: &[(i64, u64, &Path)],
    ) -> Option<(i64, u64)> {
        let from_checkpoint = recovery_point
            .and_then(|r| segs.iter().rev().find(|s| s.0 <= r))
            .map(|s| (s.0, 0u64));
        d.map(|d| (d.segment_base, d.position)).max(from_checkpoint)
    }

    /// `Corruption` if a log ending at `end` (its last segment at `path`, `size` bytes)
    /// lacks offsets this point says were flushed.
    pub(super) fn check_end(
        d: Option<Self>,
        end: i64,
        (path, size): (&Path, u64),
    ) -> crate::Result<()> {
        match d {
            Some(d) if end < d.next_offset => Err(crate::Error::corruption(
                path,
                size,
                format!(
                    "the log ends at offset {end} but offsets up to {} were flushed",
                    d.next_offset
                ),
            )),
            _ => Ok(()),
        }
    }
}

const SLOT: u64 = 64;
/// The two slots live in different 4 KiB blocks, so one torn sector or page write cannot
/// damage both.
const SLOT_STRIDE: u64 = 4096;
const MAGIC: &[u8; 4] = b"SLDP";
const SLOT_CRC_AT: usize = 4 + 8 + 8 + 8 + 8 + 8;

fn encode_slot(seq: u64, p: DurablePoint) -> Vec<u8> {
    let mut v = Vec::with_capacity(SLOT as usize);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&p.segment_base.to_be_bytes());
    v.extend_from_slice(&p.position.to_be_bytes());
    v.extend_from_slice(&p.next_offset.to_be_bytes());
    v.extend_from_slice(&p.log_start.to_be_bytes());
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_be_bytes());
    v.resize(SLOT as usize, 0);
    v
}

fn decode_slot(b: &[u8]) -> Option<(u64, DurablePoint)> {
    if b.len() < SLOT_CRC_AT + 4 || &b[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(b[SLOT_CRC_AT..SLOT_CRC_AT + 4].try_into().ok()?);
    if crc32c::crc32c(&b[..SLOT_CRC_AT]) != crc {
        return None;
    }
    let i = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let p = DurablePoint {
        segment_base: i(12),
        position: i(20) as u64,
        next_offset: i(28),
        log_start: i(36),
    };
    // A sequence number counts fsyncs of the file from 0: one past 2^62 (146,000 years
    // of a million fsyncs a second) is damage. Taken as the newest slot, the next
    // writes' `+ 1` would overflow, or go past what this check accepts and lose to it.
    let seq = u64::try_from(i(4)).ok().filter(|&s| s < MAX_SLOT_SEQ)?;
    let sane = p.segment_base >= 0
        && p.next_offset >= p.segment_base
        && (0..=p.next_offset).contains(&p.log_start);
    sane.then_some((seq, p))
}

/// Slot sequence numbers at or past this are damage (see `decode_slot`).
const MAX_SLOT_SEQ: u64 = 1 << 62;

/// The durable position file, open for writing.
#[derive(Debug)]
pub struct DurableFile {
    file: Arc<dyn File>,
    seq: u64,
    /// A write or fsync of it failed: it is never tried again (the log is poisoned).
    failed: bool,
    /// The point written (and synced) last by this handle.
    last: Option<DurablePoint>,
}

impl DurableFile {
    /// Reads the newest valid slot without creating or changing anything: its sequence
    /// number (0 if none) and the point (`None` if the file is missing or has no valid
    /// slot).
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> std::io::Result<(u64, Option<DurablePoint>)> {
        let path = dir.join(DURABLE_FILE);
        if !fs.exists(&path)? {
            return Ok((0, None));
        }
        let file = fs.open_read(&path)?;
        let len = file.len()?;
        let mut slots = Vec::new();
        for at in [0, SLOT_STRIDE] {
            if len >= at + SLOT {
                slots.push(file.read_exact_at(at, SLOT as usize)?);
            }
        }
        let best = slots
            .iter()
            .filter_map(|b| decode_slot(b))
            .max_by_key(|(seq, _)| *seq);
        Ok((best.map_or(0, |(s, _)| s), best.map(|(_, p)| p)))
    }

    /// Opens (creating if missing) the file to write the slots after sequence `seq`, as
    /// [`read`](Self::read) returned it.
    pub fn create(fs: &dyn FileSystem, dir: &Path, seq: u64) -> std::io::Result<Self> {
        let file = fs.open(&dir.join(DURABLE_FILE), true)?;
        Ok(DurableFile {
            file,
            seq,
            failed: false,
            last: None,
        })
    }

    /// The file will not be used for a while (see
    /// [`File::release_descriptor`](crate::fs::File::release_descriptor)).
    pub fn release_descriptor(&self) {
        self.file.release_descriptor();
    }

    /// Writes `p` into both slots, one after the other, each fdatasynced: no slot keeps
    /// an older point. A truncation records its cut so: the other slot's point lies past
    /// the cut, and should a later write tear the newest slot (a crash, a full disk),
    /// that older point would claim bytes the cut removed, and the log would not open.
    pub fn write_both(&mut self, p: DurablePoint) -> std::io::Result<()> {
        self.last = None;
        self.write(p)?;
        self.last = None;
        self.write(p)
    }

    /// The point written last into both slots ([`write_both`](Self::write_both)), if
    /// one was written by this file.
    pub fn rewrite_last_in_both(&mut self) -> std::io::Result<()> {
        match self.last {
            Some(p) => self.write_both(p),
            None => Ok(()),
        }
    }

    /// Writes the next slot and fdatasyncs it; nothing if `p` is the point it wrote
    /// last (a flush across a roll records its point before its callers do).
    pub fn write(&mut self, p: DurablePoint) -> std::io::Result<()> {
        if self.failed {
            // Never retry an fsync: a waiter that synced its data before the failure
            // must not record through this file again.
            return Err(std::io::Error::other(
                "an earlier write or fsync of the durable position failed",
            ));
        }
        if self.last == Some(p) {
            return Ok(());
        }
        // Past the bound `decode_slot` accepts only from a damaged (CRC-valid) slot:
        // written, the next open would refuse it and take the stale one. Loud instead.
        let Some(seq) = self.seq.checked_add(1).filter(|&s| s < MAX_SLOT_SEQ) else {
            self.failed = true;
            return Err(std::io::Error::other(
                "the durable position's slot sequence is exhausted (a damaged slot)",
            ));
        };
        self.file
            .write_all_at(&encode_slot(seq, p), (seq % 2) * SLOT_STRIDE)
            .and_then(|()| self.file.sync_data())
            .inspect_err(|_| self.failed = true)?;
        self.seq = seq;
        self.last = Some(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CRC-valid slot whose sequence number no log reaches (damage, or a crafted
    /// file) is not a slot: taken as the newest, the next write's sequence overflowed.
    #[test]
    fn a_slot_with_an_impossible_sequence_is_refused() {
        let p = DurablePoint {
            segment_base: 0,
            position: 100,
            next_offset: 5,
            log_start: 0,
        };
        assert_eq!(decode_slot(&encode_slot(7, p)), Some((7, p)));
        let last = MAX_SLOT_SEQ - 1;
        assert_eq!(decode_slot(&encode_slot(last, p)), Some((last, p)));
        assert_eq!(decode_slot(&encode_slot(MAX_SLOT_SEQ, p)), None);
        assert_eq!(decode_slot(&encode_slot(i64::MAX as u64, p)), None);
        assert_eq!(decode_slot(&encode_slot(u64::MAX, p)), None);
    }

    /// The last sequence a slot may hold is written no further: the write fails (and
    /// the file refuses more) rather than write a slot the next open would refuse.
    #[test]
    fn a_write_past_the_last_sequence_fails() {
        let fs = crate::fs::SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let p = DurablePoint {
            segment_base: 0,
            position: 100,
            next_offset: 5,
            log_start: 0,
        };
        let mut file = DurableFile::create(&fs, dir, MAX_SLOT_SEQ - 2).unwrap();
        file.write(p).unwrap();
        assert_eq!(
            DurableFile::read(&fs, dir).unwrap(),
            (MAX_SLOT_SEQ - 1, Some(p))
        );
        let later = DurablePoint {
            next_offset: 6,
            ..p
        };
        assert!(file.write(later).is_err());
        assert!(file.write(later).is_err(), "never tried again");
        assert_eq!(
            DurableFile::read(&fs, dir).unwrap(),
            (MAX_SLOT_SEQ - 1, Some(p))
        );
    }

    #[test]
    fn recovery_point_text_round_trips() {
        let t = recovery_point_text("my-topic", 3, 1234);
        assert_eq!(t, "0\n1\nmy-topic 3 1234\n");
        assert_eq!(parse_recovery_point(&t, 3), Some(1234));
        assert_eq!(parse_recovery_point("0\n1\na b c d\n", 3), None);
        assert_eq!(parse_recovery_point("1\n1\nt 3 5\n", 3), None);
        assert_eq!(parse_recovery_point("0\n2\nt 3 5\n", 3), None, "short file");
    }

    /// From a review: after its fsync failed, a second flush (one that had synced its
    /// data before the failure) wrote and fsynced the file again.
    #[test]
    fn a_durable_file_whose_fsync_failed_is_never_written_again() {
        let fs = crate::fs::SimFs::new();
        let dir = Path::new("/p");
        fs.create_dir_all(dir).unwrap();
        let mut f = DurableFile::create(&fs, dir, 0).unwrap();
        let p = DurablePoint {
            segment_base: 0,
            position: 10,
            next_offset: 1,
            log_start: 0,
        };
        // The slot's write, then its fsync.
        fs.inject(crate::fs::Fault::Eio, fs.op_count() + 2, false);
        assert!(f.write(p).is_err());
        assert_eq!(fs.failed_sync_count(), 1);
        let ops = fs.op_count();
        assert!(f.write(p).is_err(), "written again");
        assert_eq!(fs.op_count(), ops, "the file was touched again");
    }

    #[test]
    fn durable_slots_survive_a_torn_slot() {
        let fs = crate::fs::SimFs::new();
        let dir = Path::new("/p");
        fs.create_dir_all(dir).unwrap();
        let (seq, none) = DurableFile::read(&fs, dir).unwrap();
        assert_eq!((seq, none), (0, None));
        assert!(
            !fs.exists(&dir.join(DURABLE_FILE)).unwrap(),
            "read creates nothing"
        );
        let mut f = DurableFile::create(&fs, dir, seq).unwrap();
        let a = DurablePoint {
            segment_base: 0,
            position: 100,
            next_offset: 7,
            log_start: 0,
        };
        let b = DurablePoint {
            segment_base: 0,
            position: 200,
            next_offset: 9,
            log_start: 0,
        };
        f.write(a).unwrap();
        f.write(b).unwrap();
        assert_eq!(DurableFile::read(&fs, dir).unwrap().1, Some(b));
        // Damage the newer slot: the older one is used.
        let path = dir.join(DURABLE_FILE);
        let mut data = fs.read_file(&path).unwrap();
        data[16] ^= 0xff; // slot 0 (bytes 0..64) holds seq 2
        fs.write_file(&path, data);
        assert_eq!(DurableFile::read(&fs, dir).unwrap().1, Some(a));
    }
}
