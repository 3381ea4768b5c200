//! Checking a partition directory without changing it: every batch (size, CRC, offsets,
//! epoch) and every index entry. Used before a directory written elsewhere (by Kafka)
//! is adopted, where damage must be refused rather than truncated as a torn tail.

use std::path::Path;
use std::sync::Arc;

use super::checkpoint::{self, DurablePoint, LEADER_EPOCH_FILE};
use super::epoch::EpochHistory;
use super::index::{OFFSET_ENTRY, TIME_ENTRY};
use super::segment::{self, file_name, parse_file_name};
use super::{SEGMENT_SUFFIXES, TRANSIENT_SUFFIXES};
use crate::error::{Error, Result, io_ctx};
use crate::format::batch;
use crate::fs::FileSystem;

/// What [`verify_partition_dir`] found in one partition directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionCheck {
    /// Segments (`.log` files).
    pub segments: usize,
    /// Batches checked (size, CRC-32C, offsets, leader epoch).
    pub batches: u64,
    /// Bytes of batches checked.
    pub bytes: u64,
    /// The first segment's base offset.
    pub log_start_offset: i64,
    /// The offset after the last record.
    pub log_end_offset: i64,
    /// Offset-index entries checked against the batches they name.
    pub index_entries_checked: u64,
    /// Index files that disagree with their segment (they are derived data: opening
    /// the directory rebuilds them). Damage to batches is an error instead.
    pub index_problems: Vec<String>,
    /// The largest producer id of any batch or producer snapshot (`None`: no producer
    /// wrote here). A store importing the directory hands out only larger ids, so its
    /// producers are never taken for the ones that wrote it.
    pub max_producer_id: Option<i64>,
    /// Whether the segments were checked against the position the store recorded as
    /// synced (`streamlog.durable`, as an open checks them): false when a running store
    /// moved that position during the check (a flush, a retention pass), which would
    /// have made live changes look like damage. Check again, or on a closed store.
    pub durable_position_checked: bool,
}

/// Reads and checks a whole partition directory, changing nothing: each segment's
/// batches must be whole, pass their CRC, carry the epoch of their offset (Kafka's
/// `leader-epoch-checkpoint`, if any) and follow each other's offsets (contiguously
/// unless `allow_gaps`, as in a compacted topic); each `.index` entry must be at a
/// batch boundary whose batch ends at or before the entry's offset, within the segment;
/// each `.timeindex` must pass Kafka's sanity checks.
///
/// # Errors
/// `Corruption` with the file and position of the first bad batch (or of segments that
/// overlap), or naming data the store recorded as synced (`streamlog.durable`) that
/// the segments no longer hold, which an open refuses too; `InvalidArgument` if the directory holds an unfinished operation
/// (`.cleaned`, `.swap`, `.deleted` files: let the program that wrote them finish it);
/// `Io`.
pub fn verify_partition_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    allow_gaps: bool,
) -> Result<PartitionCheck> {
    let d = dir.display().to_string();
    // What the store recorded as synced (absent in a directory Kafka wrote). Read
    // before the segments and again after them: if a store writing the directory
    // moved it meanwhile (a flush, a retention pass about to delete segments), the two
    // cannot be judged against each other, and the check is left out.
    let read_durable = || {
        checkpoint::DurableFile::read(fs, dir)
            .map_err(io_ctx(format!("read the durable position in {d}")))
    };
    let (seq, durable) = read_durable()?;
    let recovery_point = checkpoint::read_small(fs, &dir.join(checkpoint::RECOVERY_POINT_FILE))
        .map_err(io_ctx(format!("read the recovery point in {d}")))?
        .and_then(|b| {
            let partition = super::open::topic_partition(dir).1;
            checkpoint::parse_recovery_point(&String::from_utf8_lossy(&b), partition)
        })
        .filter(|&r| durable.is_some_and(|d| r <= d.next_offset));
    let names = fs.list_dir(dir).map_err(io_ctx(format!("list {d}")))?;
    if let Some(n) = names.iter().find(|n| {
        TRANSIENT_SUFFIXES[..3].iter().any(|s| {
            n.strip_suffix(s).is_some_and(|stem| {
                SEGMENT_SUFFIXES
                    .iter()
                    .any(|suf| parse_file_name(stem, suf).is_some())
            })
        })
    }) {
        return Err(Error::InvalidArgument {
            name: "dir",
            reason: format!("{d}/{n} is part of an unfinished cleaning or deletion"),
        });
    }
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_file_name(n, "log"))
        .collect();
    bases.sort_unstable();
    let epochs = checkpoint::read_small(fs, &dir.join(LEADER_EPOCH_FILE))
        .map_err(io_ctx(format!("read {d}/{LEADER_EPOCH_FILE}")))?
        .map(|b| {
            EpochHistory::parse(&String::from_utf8_lossy(&b)).ok_or_else(|| {
                Error::corruption(
                    dir.join(LEADER_EPOCH_FILE),
                    0,
                    "not Kafka's epoch checkpoint",
                )
            })
        })
        .transpose()?
        .unwrap_or_default();
    // Refused by an open too (damage that would bring deleted records back).
    checkpoint::read_log_start(fs, dir)?;
    let rules = segment::Rules {
        epochs: Some(Arc::new(epochs)),
        allow_gaps,
    };
    let mut check = PartitionCheck {
        log_start_offset: bases.first().copied().unwrap_or(0),
        ..PartitionCheck::default()
    };
    let closed_cleanly = names.iter().any(|n| n == checkpoint::CLEAN_SHUTDOWN_FILE);
    let mut end: Option<i64> = None;
    let mut sizes = Vec::with_capacity(bases.len());
    // A gap wholly below the log start the store recorded is retention's, cut short by
    // a crash (as an open lets it pass).
    let gone_below = durable.map_or(i64::MIN, |d| d.log_start);
    for &base in &bases {
        let path = dir.join(file_name(base, "log"));
        if let Some(prev_end) = end
            && (base < prev_end || (!allow_gaps && base != prev_end && base > gone_below))
        {
            return Err(Error::corruption(
                &path,
                0,
                format!("the segment starts at offset {base}, the one before ends at {prev_end}"),
            ));
        }
        let (file, len) = segment::open_sized(fs, &path)?;
        let params = segment::ScanParams {
            base,
            index_interval_bytes: 4096,
            max_offset_entries: usize::MAX,
            max_time_entries: usize::MAX,
            rules: rules.clone(),
        };
        let scan = segment::scan(file.as_ref(), len, params)
            .map_err(io_ctx(format!("read {}", path.display())))?;
        if let Some((pos, reason)) = scan.stopped {
            return Err(Error::corruption(&path, pos, reason));
        }
        check.segments += 1;
        check.batches += scan.batches;
        if scan.max_producer_id >= 0 {
            check.max_producer_id = check.max_producer_id.max(Some(scan.max_producer_id));
        }
        check.bytes += len;
        sizes.push((base, len, path.clone()));
        end = Some(scan.next_offset.unwrap_or(base));
        let end = end.unwrap_or(base);
        // The segment a store (or broker) running, or stopped by a crash, appends to:
        // after a clean close its index files are trimmed.
        let active = bases.last() == Some(&base) && !closed_cleanly;
        check_offset_index(fs, dir, (base, end, active), file.as_ref(), len, &mut check)?;
        check_time_index(fs, dir, (base, end, active), &mut check)?;
    }
    check.log_end_offset = end.unwrap_or(check.log_start_offset);
    // What an open would refuse: data the store synced gone from the segments.
    check.durable_position_checked = read_durable()?.0 == seq;
    if check.durable_position_checked {
        let views: Vec<_> = sizes
            .iter()
            .map(|(b, l, p)| (*b, *l, p.as_path()))
            .collect();
        DurablePoint::check_segments(durable, recovery_point, &views)?;
        if let Some(&(_, len, path)) = views.last() {
            DurablePoint::check_end(durable, check.log_end_offset, (path, len))?;
        }
    }
    check.max_producer_id = check
        .max_producer_id
        .max(super::snapshots::max_snapshot_producer_id(fs, dir)?);
    Ok(check)
}

/// Whether `bytes` of index `name` hold whole entries of `size` bytes (a problem noted
/// in `check` if not).
fn whole_entries(name: &str, bytes: &[u8], size: u64, check: &mut PartitionCheck) -> bool {
    let whole = (bytes.len() as u64).is_multiple_of(size);
    if !whole {
        check.index_problems.push(format!(
            "{name}: {} bytes is not a whole number of entries",
            bytes.len()
        ));
    }
    whole
}

/// The entries of the index `bytes` (of `size`-byte entries) that were written: for
/// the active segment of a directory not closed cleanly, without the all-zero ones at
/// the end (its index files are preallocated with zeros while the store runs, and
/// trimmed at a roll or a close).
/// Only a first offset entry can be all zero (a single first batch past the index
/// interval: offset +0 at position 0); alone, it then goes unchecked.
fn written_entries(bytes: &[u8], size: u64, active: bool) -> &[u8] {
    if !active {
        return bytes;
    }
    let size = size as usize;
    let n = bytes
        .chunks_exact(size)
        .rposition(|e| e.iter().any(|&b| b != 0))
        .map_or(0, |last| last + 1);
    &bytes[..n * size]
}

/// Kafka's rule for `<base>.index` (the segment's offsets `base..end`): whole entries,
/// offsets and positions increasing, and each entry's position the start of a batch
/// ending at or before the entry's offset, which is in the segment. Kafka before 3.8
/// wrote one entry per append (the append's last offset at its first batch's position),
/// so an entry need not be its batch's last offset, as this store writes it; one
/// inside its batch no Kafka wrote.
fn check_offset_index(
    fs: &dyn FileSystem,
    dir: &Path,
    (base, end, active): (i64, i64, bool),
    log: &dyn crate::fs::File,
    log_len: u64,
    check: &mut PartitionCheck,
) -> Result<()> {
    let name = file_name(base, "index");
    let Some(bytes) = read_whole(fs, dir, &name)? else {
        check.index_problems.push(format!("{name} is missing"));
        return Ok(());
    };
    if !whole_entries(&name, &bytes, OFFSET_ENTRY, check) {
        return Ok(());
    }
    let bytes = written_entries(&bytes, OFFSET_ENTRY, active);
    let mut prev: Option<(u32, u32)> = None;
    for (i, e) in bytes.chunks_exact(OFFSET_ENTRY as usize).enumerate() {
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        let bad = |why: String| format!("{name}: entry {i} (offset +{rel} at {pos}): {why}");
        if prev.is_some_and(|(r, p)| rel <= r || pos <= p) {
            // Zeros past the last entry: a file never trimmed (a crash); rebuilt at open.
            check
                .index_problems
                .push(bad("out of order (an untrimmed file?)".into()));
            return Ok(());
        }
        prev = Some((rel, pos));
        let claimed = base.saturating_add(i64::from(rel));
        let header = (u64::from(pos) + batch::RECORD_BATCH_OVERHEAD as u64 <= log_len)
            .then(|| log.read_exact_at(u64::from(pos), batch::RECORD_BATCH_OVERHEAD))
            .transpose()
            .map_err(io_ctx(format!(
                "read {}/{}",
                dir.display(),
                file_name(base, "log")
            )))?
            .and_then(|h| batch::BatchHeader::parse(&h).ok())
            // Bytes inside a batch parse as a header too (a negative "base offset"
            // would pass the check below): a batch of this segment has magic 2 and
            // starts at or past the segment's base.
            .filter(|h| h.magic == batch::MAGIC_V2 && h.base_offset >= base);
        match header {
            Some(h) if h.last_offset() <= claimed && claimed < end => {
                check.index_entries_checked += 1;
            }
            Some(h) => {
                check.index_problems.push(bad(format!(
                    "the batch there ends at offset {}, and the segment at {end}",
                    h.last_offset()
                )));
                return Ok(());
            }
            None => {
                check
                    .index_problems
                    .push(bad("no batch starts there".into()));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Kafka's sanity checks of `<base>.timeindex`: whole entries, timestamps and offsets
/// not decreasing, offsets within the segment.
fn check_time_index(
    fs: &dyn FileSystem,
    dir: &Path,
    (base, end, active): (i64, i64, bool),
    check: &mut PartitionCheck,
) -> Result<()> {
    let name = file_name(base, "timeindex");
    let Some(bytes) = read_whole(fs, dir, &name)? else {
        return Ok(()); // Kafka recreates a missing time index empty.
    };
    if !whole_entries(&name, &bytes, TIME_ENTRY, check) {
        return Ok(());
    }
    let bytes = written_entries(&bytes, TIME_ENTRY, active);
    let mut prev: Option<(i64, u32)> = None;
    for (i, e) in bytes.chunks_exact(TIME_ENTRY as usize).enumerate() {
        let ts = i64::from_be_bytes(e[..8].try_into().expect("8 bytes"));
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        let offset = base.saturating_add(i64::from(rel));
        let sane = prev.is_none_or(|(t, r)| ts >= t && rel >= r) && (offset < end || end == base);
        if !sane {
            check.index_problems.push(format!(
                "{name}: entry {i} ({ts} at offset {offset}) is out of order or past the segment"
            ));
            return Ok(());
        }
        prev = Some((ts, rel));
    }
    Ok(())
}

fn read_whole(fs: &dyn FileSystem, dir: &Path, name: &str) -> Result<Option<bytes::Bytes>> {
    let path = dir.join(name);
    if !fs
        .exists(&path)
        .map_err(io_ctx(format!("stat {}", path.display())))?
    {
        return Ok(None);
    }
    let f = fs
        .open_read(&path)
        .map_err(io_ctx(format!("open {}", path.display())))?;
    let len = f
        .len()
        .map_err(io_ctx(format!("stat {}", path.display())))?;
    let len = usize::try_from(len).map_err(|_| Error::corruption(&path, 0, "too large"))?;
    f.read_exact_at(0, len)
        .map(Some)
        .map_err(io_ctx(format!("read {}", path.display())))
}
