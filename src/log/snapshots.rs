//! Producer snapshot files (Kafka's `<offset>.snapshot`): written at every roll and at
//! close, removed with the segments they no longer describe, and the rebuild of the
//! producer state at open (load the newest usable snapshot, then scan the batches after
//! it).
//!
//! A snapshot at offset `S` describes every batch below `S`. An open after a crash uses
//! only a snapshot at or below the recovery point (everything below it was synced, so
//! the batches it describes are all still there) and at or above the first segment
//! (the batches after it can be scanned), and scans from it to the log end: at most
//! the data since the last roll before the recovery point. Compacted logs are not
//! rebuilt (the cleaner may have removed a producer's last batch): they start from no
//! state, which accepts any sequence and refuses none.

use super::producer_state::ProducerStates;
use super::segment::{file_name, parse_file_name};
use super::{Log, checkpoint};
use crate::error::{Result, io_ctx};
use crate::fs::FileSystem;
use std::path::Path;

/// The largest snapshot read: about 1.4 million producers.
const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

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

/// The snapshot at `offset`, if it is there and valid.
fn read_snapshot(fs: &dyn FileSystem, dir: &Path, offset: i64) -> Option<ProducerStates> {
    let path = dir.join(file_name(offset, "snapshot"));
    let whole = |path: &Path| -> std::io::Result<Option<Vec<u8>>> {
        if !fs.exists(path)? {
            return Ok(None);
        }
        let f = fs.open(path, false)?;
        let len = usize::try_from(f.len()?).unwrap_or(usize::MAX);
        if len > MAX_SNAPSHOT_BYTES {
            return Err(std::io::Error::other(format!("{len} bytes is too large")));
        }
        Ok(Some(f.read_exact_at(0, len)?.to_vec()))
    };
    match whole(&path) {
        Ok(Some(bytes)) => {
            let states = ProducerStates::decode_snapshot(&bytes, offset);
            if states.is_none() {
                log::warn!("{}: not a valid producer snapshot; ignored", path.display());
            }
            states
        }
        Ok(None) => None,
        Err(e) => {
            log::warn!("{}: {e}; the producer snapshot is ignored", path.display());
            None
        }
    }
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

    /// Writes `producers` as the snapshot at `offset` in place, without syncing or
    /// renaming (at a roll, under the append lock): a snapshot a crash lost or tore fails
    /// its length or CRC check, and the rebuild then starts from an earlier one.
    pub(super) fn write_producer_snapshot_unsynced(
        &self,
        offset: i64,
        producers: &ProducerStates,
    ) -> Result<()> {
        let path = self.dir.join(file_name(offset, "snapshot"));
        let bytes = producers.encode_snapshot();
        self.fs
            .open(&path, true)
            .and_then(|f| {
                f.write_all_at(&bytes, 0)?;
                f.set_len(bytes.len() as u64)
            })
            .map_err(io_ctx(format!(
                "write the producer snapshot {}",
                path.display()
            )))
    }

    /// Removes the partition's producer snapshots whose offset `doomed` says.
    pub(super) fn remove_producer_snapshots(&self, doomed: impl Fn(i64) -> bool) -> Result<()> {
        let offsets = snapshot_offsets(self.fs.as_ref(), &self.dir)
            .map_err(io_ctx(format!("list {}", self.dir.display())))?;
        for offset in offsets.into_iter().filter(|&o| doomed(o)) {
            let path = self.dir.join(file_name(offset, "snapshot"));
            self.fs.remove_file(&path).map_err(io_ctx(format!(
                "remove the producer snapshot {}",
                path.display()
            )))?;
        }
        Ok(())
    }

    /// The producer state an open starts from. Clean: the snapshot the close wrote at
    /// the log end. After a crash: the newest usable snapshot (see the module docs) and
    /// the batches after it. `None` of them (or a read error while scanning): no state.
    pub(super) fn rebuild_producer_state(
        &self,
        clean: bool,
        recovery_point: i64,
    ) -> ProducerStates {
        let end = self.log_end_offset();
        let fs = self.fs.as_ref();
        if clean {
            return read_snapshot(fs, &self.dir, end).unwrap_or_default();
        }
        if self.config.allow_offset_gaps {
            return ProducerStates::default();
        }
        let first = self.snapshot().first().map_or(end, |s| s.base);
        let usable = match snapshot_offsets(fs, &self.dir) {
            Ok(offsets) => offsets,
            Err(e) => {
                log::warn!("{}: {e}; producer snapshots ignored", self.dir.display());
                return ProducerStates::default();
            }
        };
        let Some((from, mut states)) = usable
            .into_iter()
            .rev()
            .filter(|&o| o >= first && o <= recovery_point.min(end))
            .find_map(|o| Some((o, read_snapshot(fs, &self.dir, o)?)))
        else {
            return ProducerStates::default();
        };
        let mut offset = from;
        while offset < end {
            match self.read(offset, 1 << 20) {
                Ok(batches) if !batches.is_empty() => {
                    for b in &batches {
                        let h = b.header();
                        if !h.is_control() && h.last_offset() >= offset {
                            states.replay(h);
                        }
                    }
                    let last = batches.last().expect("not empty").header().last_offset();
                    offset = offset.max(last + 1);
                }
                Ok(_) => break,
                Err(e) => {
                    log::warn!(
                        "{}: rebuilding the producer state at offset {offset}: {e}; starting \
                         from no state",
                        self.dir.display()
                    );
                    return ProducerStates::default();
                }
            }
        }
        states
    }
}
