//! The files transactions add to a partition directory, decoded from their layouts
//! (KAFKA-FORMAT.md section 7) and printed as kafka-dump-log prints them:
//! `<offset>.snapshot`, the producer state below an offset (ProducerSnapshot v1), and
//! `<base offset>.txnindex`, the aborted transactions whose markers are in a segment.

use std::io::{self, Write};
use std::path::Path;

use super::{Dumper, base_offset_of, json};

/// The snapshot format's version.
const SNAPSHOT_VERSION: i16 = 1;
/// `version` (i16), then the CRC-32C (u32) of everything after it.
const SNAPSHOT_CRC_AT: usize = 2;
/// Where the CRC-32C coverage starts: the entry count (i32).
const SNAPSHOT_COUNT_AT: usize = SNAPSHOT_CRC_AT + 4;
/// Where the 46-byte entries start.
const SNAPSHOT_ENTRIES_AT: usize = SNAPSHOT_COUNT_AT + 4;
/// producerId i64, producerEpoch i16, lastSequence i32, lastOffset i64, offsetDelta i32,
/// timestamp i64, coordinatorEpoch i32, currentTxnFirstOffset i64.
const SNAPSHOT_ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// The `.txnindex` entry version.
const TXN_INDEX_VERSION: i16 = 0;
/// version i16, producerId i64, firstOffset i64, lastOffset i64, lastStableOffset i64.
const TXN_INDEX_ENTRY: usize = 2 + 8 + 8 + 8 + 8;

/// One producer of a `.snapshot` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_first_offset: i64,
}

impl SnapshotEntry {
    /// The first sequence of the producer's last batch, as Kafka derives it: the last
    /// one minus the offset delta, wrapping below 0 to `i32::MAX`; -1 without a batch.
    fn first_sequence(&self) -> i32 {
        if self.last_sequence < 0 {
            return -1;
        }
        let space = i64::from(i32::MAX) + 1;
        let first =
            (i64::from(self.last_sequence) - i64::from(self.offset_delta)).rem_euclid(space);
        i32::try_from(first).expect("below 2^31 by the remainder")
    }
}

/// One aborted transaction of a `.txnindex` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Big-endian fields read one after another from a slice known to hold them.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("split at N")
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

impl<O: Write, E: Write> Dumper<'_, O, E> {
    /// Reads a whole file, reporting a failure as a problem.
    fn read_whole(&mut self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(data) => Ok(Some(data)),
            Err(source) => {
                self.problem(streamlog::Error::Io {
                    context: format!("read {}", path.display()),
                    source,
                })?;
                Ok(None)
            }
        }
    }

    /// Dumps a `.snapshot` file: a line per producer. A wrong version, length or CRC is
    /// a problem; the entries that are whole are printed all the same.
    pub(super) fn snapshot(&mut self, path: &Path) -> io::Result<()> {
        self.summary.files += 1;
        self.summary.snapshot_files += 1;
        let Some(data) = self.read_whole(path)? else {
            return Ok(());
        };
        if !self.options.json {
            let at = base_offset_of(path).map_or_else(|| "unknown".to_owned(), |b| b.to_string());
            writeln!(
                self.out,
                "Dumping {} (producer snapshot at offset {at}, {} bytes)",
                path.display(),
                data.len()
            )?;
        }
        let Some(header) = data.get(..SNAPSHOT_ENTRIES_AT) else {
            let reason = format!(
                "truncated snapshot: {} bytes, fewer than its {SNAPSHOT_ENTRIES_AT}-byte header",
                data.len()
            );
            return self.corruption(path, 0, reason);
        };
        let mut h = Fields(header);
        let version = h.i16();
        let crc = u32::from_be_bytes(h.take());
        let count = h.i32();
        if version != SNAPSHOT_VERSION {
            let reason = format!("snapshot version {version}, expected {SNAPSHOT_VERSION}");
            return self.corruption(path, 0, reason);
        }
        let whole = (data.len() - SNAPSHOT_ENTRIES_AT) / SNAPSHOT_ENTRY;
        let declared = usize::try_from(count).ok();
        if declared.is_none_or(|n| SNAPSHOT_ENTRIES_AT + n * SNAPSHOT_ENTRY != data.len()) {
            let reason = format!(
                "the snapshot declares {count} entries of {SNAPSHOT_ENTRY} bytes, the file \
                 holds {} bytes after its header",
                data.len() - SNAPSHOT_ENTRIES_AT
            );
            self.corruption(path, SNAPSHOT_COUNT_AT as u64, reason)?;
        }
        let computed = crc32c::crc32c(&data[SNAPSHOT_COUNT_AT..]);
        if computed != crc {
            let reason = format!(
                "snapshot CRC-32C mismatch (stored {crc:#010x}, computed {computed:#010x})"
            );
            self.corruption(path, SNAPSHOT_CRC_AT as u64, reason)?;
        }
        let shown = declared.map_or(0, |n| n.min(whole));
        for chunk in data[SNAPSHOT_ENTRIES_AT..]
            .chunks_exact(SNAPSHOT_ENTRY)
            .take(shown)
        {
            let mut f = Fields(chunk);
            let e = SnapshotEntry {
                producer_id: f.i64(),
                producer_epoch: f.i16(),
                last_sequence: f.i32(),
                last_offset: f.i64(),
                offset_delta: f.i32(),
                timestamp: f.i64(),
                coordinator_epoch: f.i32(),
                current_txn_first_offset: f.i64(),
            };
            self.summary.snapshot_entries += 1;
            if self.options.json {
                json::write_snapshot_entry(self.out, &e)?;
            } else {
                writeln!(
                    self.out,
                    "producerId: {} producerEpoch: {} coordinatorEpoch: {} \
                     currentTxnFirstOffset: {} lastTimestamp: {} firstSequence: {} \
                     lastSequence: {} lastOffset: {} offsetDelta: {}",
                    e.producer_id,
                    e.producer_epoch,
                    e.coordinator_epoch,
                    e.current_txn_first_offset,
                    e.timestamp,
                    e.first_sequence(),
                    e.last_sequence,
                    e.last_offset,
                    e.offset_delta
                )?;
            }
        }
        Ok(())
    }

    /// Dumps a `.txnindex` file: a line per aborted transaction. An entry with another
    /// version, a last offset not above the one before, or a partial entry at the end is
    /// a problem.
    pub(super) fn txn_index(&mut self, path: &Path) -> io::Result<()> {
        self.summary.files += 1;
        self.summary.txn_index_files += 1;
        let Some(data) = self.read_whole(path)? else {
            return Ok(());
        };
        if !self.options.json {
            let base = base_offset_of(path).map_or_else(|| "unknown".to_owned(), |b| b.to_string());
            writeln!(
                self.out,
                "Dumping {} (transaction index, base offset {base}, {} bytes)",
                path.display(),
                data.len()
            )?;
        }
        let mut previous: Option<i64> = None;
        let entries = data.chunks_exact(TXN_INDEX_ENTRY);
        let rest = entries.remainder().len();
        for (i, chunk) in entries.enumerate() {
            let position = (i * TXN_INDEX_ENTRY) as u64;
            let mut f = Fields(chunk);
            let version = f.i16();
            if version != TXN_INDEX_VERSION {
                let reason = format!(
                    "transaction index entry version {version}, expected {TXN_INDEX_VERSION}"
                );
                self.corruption(path, position, reason)?;
                continue;
            }
            let e = AbortedTxn {
                producer_id: f.i64(),
                first_offset: f.i64(),
                last_offset: f.i64(),
                last_stable_offset: f.i64(),
            };
            self.summary.aborted_txns += 1;
            if self.options.json {
                json::write_aborted_txn(self.out, &e)?;
            } else {
                writeln!(
                    self.out,
                    "version: {version} producerId: {} firstOffset: {} lastOffset: {} \
                     lastStableOffset: {}",
                    e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
                )?;
            }
            if let Some(p) = previous
                && e.last_offset <= p
            {
                let reason = format!(
                    "lastOffset {} does not follow the previous entry's {p}",
                    e.last_offset
                );
                self.corruption(path, position, reason)?;
            }
            if e.first_offset > e.last_offset {
                let reason = format!(
                    "firstOffset {} is past lastOffset {}",
                    e.first_offset, e.last_offset
                );
                self.corruption(path, position, reason)?;
            }
            previous = Some(e.last_offset);
        }
        if rest > 0 {
            let position = (data.len() - rest) as u64;
            let reason = format!("truncated entry: {rest} bytes of {TXN_INDEX_ENTRY}");
            self.corruption(path, position, reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SnapshotEntry;

    #[test]
    fn the_first_sequence_is_the_last_minus_the_delta_wrapping_below_0() {
        let entry = |last_sequence, offset_delta| SnapshotEntry {
            producer_id: 1,
            producer_epoch: 0,
            last_sequence,
            last_offset: 10,
            offset_delta,
            timestamp: 0,
            coordinator_epoch: -1,
            current_txn_first_offset: -1,
        };
        assert_eq!(entry(7, 3).first_sequence(), 4);
        assert_eq!(entry(1, 3).first_sequence(), i32::MAX - 1);
        assert_eq!(entry(-1, 0).first_sequence(), -1, "no batch known");
    }
}
