//! Kafka's `.txnindex`: one per segment, listing the transactions whose ABORT marker
//! the segment holds, so that a read_committed reader can skip their records without
//! reading the whole log (Kafka's `TransactionIndex`).
//!
//! An entry is 34 bytes, big-endian (KAFKA-FORMAT.md section 7):
//!
//! | off | field | type |
//! |---|---|---|
//! | 0 | version = 0 | i16 |
//! | 2 | producerId | i64 |
//! | 10 | firstOffset: the transaction's first batch | i64 |
//! | 18 | lastOffset: the ABORT marker's offset | i64 |
//! | 26 | lastStableOffset: the LSO once the marker was written | i64 |
//!
//! Entries follow each other with strictly increasing `lastOffset`; the file is created
//! on the first entry and never preallocated. It is derived data: recovery rewrites the
//! files of the segments it rescans from the markers they hold, so a torn entry at the
//! end (a crash during an append) is dropped when the file is read and replaced then.
//!
//! Entries are read from the file on first use and kept in memory (the active
//! segment's also as they are appended), so readers never touch the append lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result, io_ctx};
use crate::fs::{File, FileSystem};

/// A transaction that was aborted: a read_committed reader skips the records of
/// `producer_id` from `first_offset` up to its ABORT marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction it was.
    pub producer_id: i64,
    /// The offset of the transaction's first batch.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the marker was written: the first offset of the
    /// earliest transaction of another producer still open then, else `last_offset + 1`.
    pub last_stable_offset: i64,
}

/// The only entry version Kafka writes.
const VERSION: i16 = 0;
// An entry's fields, each after the one before.
const VERSION_AT: usize = 0;
const PID_AT: usize = VERSION_AT + 2;
const FIRST_AT: usize = PID_AT + 8;
const LAST_AT: usize = FIRST_AT + 8;
const LSO_AT: usize = LAST_AT + 8;
/// One entry: 34 bytes.
pub(crate) const TXN_ENTRY: usize = LSO_AT + 8;

/// A `.txnindex` up to this size is read as it is (about two million aborted
/// transactions); a larger one only up to what its segment can back.
const MAX_TXN_INDEX_BYTES: u64 = 64 << 20;

/// The most bytes a `.txnindex` of a segment of `log_len` bytes holds: every entry
/// stands for a batch of its segment (its ABORT marker or, once cleaned, a batch the
/// cleaner kept), and batches are at least `RECORD_BATCH_OVERHEAD` bytes.
fn txn_index_bound(log_len: u64) -> u64 {
    let entries = log_len / crate::format::batch::RECORD_BATCH_OVERHEAD as u64 + 1;
    (entries * TXN_ENTRY as u64).max(MAX_TXN_INDEX_BYTES)
}

impl AbortedTxn {
    /// The entry's 34 bytes.
    pub(crate) fn encode(&self) -> [u8; TXN_ENTRY] {
        let mut out = [0u8; TXN_ENTRY];
        out[VERSION_AT..PID_AT].copy_from_slice(&VERSION.to_be_bytes());
        out[PID_AT..FIRST_AT].copy_from_slice(&self.producer_id.to_be_bytes());
        out[FIRST_AT..LAST_AT].copy_from_slice(&self.first_offset.to_be_bytes());
        out[LAST_AT..LSO_AT].copy_from_slice(&self.last_offset.to_be_bytes());
        out[LSO_AT..TXN_ENTRY].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }
}

/// Decodes a `.txnindex` of the segment at `base`. A partial entry at the end (a torn
/// append) is dropped. Err: the position and reason of the first entry that fails
/// Kafka's checks (version 0, `lastOffset >= base`, `firstOffset <= lastOffset`,
/// `lastOffset` strictly increasing).
pub(crate) fn decode_entries(
    bytes: &[u8],
    base: i64,
) -> std::result::Result<Vec<AbortedTxn>, (u64, String)> {
    let mut out: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / TXN_ENTRY);
    for (i, e) in bytes.chunks_exact(TXN_ENTRY).enumerate() {
        let i64_at = |at: usize| i64::from_be_bytes(e[at..at + 8].try_into().expect("8 bytes"));
        let version = i16::from_be_bytes(e[VERSION_AT..PID_AT].try_into().expect("2 bytes"));
        let entry = AbortedTxn {
            producer_id: i64_at(PID_AT),
            first_offset: i64_at(FIRST_AT),
            last_offset: i64_at(LAST_AT),
            last_stable_offset: i64_at(LSO_AT),
        };
        let reason = if version != VERSION {
            Some(format!("entry version {version} is not 0"))
        } else if entry.last_offset < base {
            Some(format!(
                "lastOffset {} is below the segment's base offset {base}",
                entry.last_offset
            ))
        } else if entry.first_offset > entry.last_offset || entry.first_offset < 0 {
            Some(format!(
                "firstOffset {} does not lie in 0..={}",
                entry.first_offset, entry.last_offset
            ))
        } else if out
            .last()
            .is_some_and(|prev| prev.last_offset >= entry.last_offset)
        {
            Some(format!(
                "lastOffset {} does not follow the previous entry's",
                entry.last_offset
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(((i * TXN_ENTRY) as u64, reason));
        }
        out.push(entry);
    }
    Ok(out)
}

/// One segment's `.txnindex`.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    base: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` until read from the file.
    entries: Option<Arc<Vec<AbortedTxn>>>,
    /// Open while entries are being appended; released once synced.
    file: Option<Arc<dyn File>>,
    /// Entries were written since the last sync.
    dirty: bool,
}

impl TxnIndex {
    /// The `.txnindex` at `path` of the segment at `base`; `absent`: the caller knows
    /// there is no such file (a new segment), so it is never looked for.
    pub(crate) fn new(path: PathBuf, base: i64, absent: bool) -> Self {
        TxnIndex {
            path,
            base,
            state: Mutex::new(State {
                entries: absent.then(Arc::default),
                ..State::default()
            }),
        }
    }

    /// The file is known not to exist (its segment has no aborted transactions).
    pub(crate) fn set_absent(&self) {
        self.state.lock().entries.get_or_insert_with(Arc::default);
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries, read from the file on first use.
    ///
    /// # Errors
    /// `Corruption` for an entry that fails its checks; `Io`.
    pub(crate) fn entries(&self, fs: &dyn FileSystem) -> Result<Arc<Vec<AbortedTxn>>> {
        let mut st = self.state.lock();
        self.load(fs, &mut st)
    }

    fn load(&self, fs: &dyn FileSystem, st: &mut State) -> Result<Arc<Vec<AbortedTxn>>> {
        if let Some(e) = &st.entries {
            return Ok(e.clone());
        }
        let p = self.path.display();
        let exists = fs.exists(&self.path).map_err(io_ctx(format!("stat {p}")))?;
        let entries = if exists {
            let f = fs
                .open(&self.path, false)
                .map_err(io_ctx(format!("open {p}")))?;
            let len = f.len().map_err(io_ctx(format!("stat {p}")))?;
            if len > MAX_TXN_INDEX_BYTES {
                // Bounded by the segment, not a fixed size, so that no index written
                // for a segment of many aborted transactions is refused.
                let log = self.path.with_extension("log");
                let log_len = match fs.open(&log, false) {
                    Ok(f) => f.len().map_err(io_ctx(format!("stat {}", log.display())))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(Error::io(format!("open {}", log.display()), e)),
                };
                if len > txn_index_bound(log_len) {
                    return Err(Error::corruption(
                        &self.path,
                        0,
                        format!(
                            "{len} bytes is more than the transaction index of a \
                             {log_len}-byte segment holds"
                        ),
                    ));
                }
            }
            let bytes = f
                .read_exact_at(0, len as usize)
                .map_err(io_ctx(format!("read {p}")))?;
            decode_entries(&bytes, self.base)
                .map_err(|(pos, reason)| Error::corruption(&self.path, pos, reason))?
        } else {
            Vec::new()
        };
        let entries = Arc::new(entries);
        st.entries = Some(entries.clone());
        Ok(entries)
    }

    /// Appends `entry` (its `last_offset` past every entry's), in memory and to the file
    /// (created if needed; not synced). Returns whether the file was created. The entry
    /// is kept in memory even if the write fails: the caller then poisons the log, and
    /// recovery rewrites the file from the markers.
    ///
    /// # Errors
    /// As [`entries`](Self::entries); `InvalidArgument` for an entry out of order; `Io`.
    pub(crate) fn append(&self, fs: &dyn FileSystem, entry: AbortedTxn) -> Result<bool> {
        let mut st = self.state.lock();
        let mut entries = self.load(fs, &mut st)?;
        if entries
            .last()
            .is_some_and(|e| e.last_offset >= entry.last_offset)
        {
            return Err(Error::InvalidArgument {
                name: "entry",
                reason: format!(
                    "lastOffset {} does not follow the transaction index's last entry",
                    entry.last_offset
                ),
            });
        }
        let position = (entries.len() * TXN_ENTRY) as u64;
        Arc::make_mut(&mut entries).push(entry);
        st.entries = Some(entries);
        let p = self.path.display();
        let created = st.file.is_none() && position == 0;
        let file = match &st.file {
            Some(f) => f.clone(),
            None => {
                let f = fs
                    .open(&self.path, true)
                    .map_err(io_ctx(format!("open {p}")))?;
                st.file = Some(f.clone());
                f
            }
        };
        st.dirty = true;
        // At the end of the whole entries: a torn entry left by a crash is overwritten.
        file.write_all_at(&entry.encode(), position)
            .map_err(io_ctx(format!("write {p} at position {position}")))?;
        Ok(created)
    }

    /// Replaces the entries with `entries` unless they are the same (then only syncs
    /// the file, after writing again what the disk lacks of it, or all of it with
    /// `poisoned` where the disk cannot be read past the cache): rewrites the file (or
    /// removes it when `entries` is empty) and syncs it. Returns whether the file was
    /// created or removed (the directory then needs a sync).
    ///
    /// # Errors
    /// `Io`.
    pub(crate) fn rewrite(
        &self,
        fs: &dyn FileSystem,
        entries: Vec<AbortedTxn>,
        poisoned: bool,
    ) -> Result<bool> {
        let mut st = self.state.lock();
        // A file that does not read back (torn, damaged) is rewritten too.
        if let Ok(current) = self.load(fs, &mut st)
            && *current == entries
            && !st.dirty
        {
            // Same entries; still rewritten if a torn tail follows them, or an empty
            // file lingers.
            let exists = fs
                .exists(&self.path)
                .map_err(io_ctx(format!("stat {}", self.path.display())))?;
            let whole = if entries.is_empty() {
                !exists
            } else {
                exists && self.file_len(fs)? == (entries.len() * TXN_ENTRY) as u64
            };
            if whole {
                // Still synced: after a process crash the file reads back whole from
                // the page cache though its bytes may never have reached the disk, and
                // nothing marks it dirty any more. After a failed fsync the cache's
                // pages are even marked clean: what the disk lacks is written again.
                if !entries.is_empty() {
                    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
                    fs.open(&self.path, false)
                        .and_then(|f| {
                            let mut disk = vec![0; bytes.len()];
                            let differs = match f.read_durable_at(&mut disk, 0)? {
                                Some(n) => disk[..n] != bytes[..],
                                None => poisoned,
                            };
                            if differs {
                                f.write_all_at(&bytes, 0)?;
                            }
                            f.sync_data()
                        })
                        .map_err(io_ctx(format!("fsync {}", self.path.display())))?;
                }
                return Ok(false);
            }
        }
        let p = self.path.display();
        st.file = None;
        st.dirty = false;
        let existed = fs.exists(&self.path).map_err(io_ctx(format!("stat {p}")))?;
        if entries.is_empty() {
            st.entries = Some(Arc::default());
            if existed {
                fs.remove_file(&self.path)
                    .map_err(io_ctx(format!("remove {p}")))?;
            }
            return Ok(existed);
        }
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        st.entries = Some(Arc::new(entries));
        let f = fs
            .open(&self.path, true)
            .map_err(io_ctx(format!("open {p}")))?;
        f.write_all_at(&bytes, 0)
            .and_then(|()| f.set_len(bytes.len() as u64))
            .and_then(|()| f.sync_data())
            .map_err(io_ctx(format!("rewrite {p}")))?;
        Ok(!existed)
    }

    fn file_len(&self, fs: &dyn FileSystem) -> Result<u64> {
        let p = self.path.display();
        fs.open(&self.path, false)
            .and_then(|f| f.len())
            .map_err(io_ctx(format!("stat {p}")))
    }

    /// fdatasync of the entries appended since the last sync, if any.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let mut st = self.state.lock();
        if let (true, Some(f)) = (st.dirty, &st.file) {
            f.sync_data()?;
        }
        st.dirty = false;
        Ok(())
    }

    /// Closes the file handle of a sealed segment's synced index.
    pub(crate) fn release(&self) {
        let mut st = self.state.lock();
        if !st.dirty {
            st.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    /// KAFKA-FORMAT.md section 7: i16 version 0, i64 pid, i64 firstOffset, i64
    /// lastOffset, i64 lastStableOffset.
    #[test]
    fn an_entry_is_kafkas_34_bytes() {
        assert_eq!(TXN_ENTRY, 34);
        let e = AbortedTxn {
            producer_id: 1000,
            first_offset: 5,
            last_offset: 9,
            last_stable_offset: 7,
        };
        let bytes = e.encode();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "0000",
                "00000000000003e8",
                "0000000000000005",
                "0000000000000009",
                "0000000000000007"
            )
        );
        assert_eq!(decode_entries(&bytes, 0).unwrap(), [e]);
    }

    #[test]
    fn a_torn_last_entry_is_dropped_and_bad_entries_are_refused() {
        let mut bytes: Vec<u8> = [entry(1, 10, 12), entry(2, 11, 14)]
            .iter()
            .flat_map(|e| e.encode())
            .collect();
        let whole = bytes.len();
        bytes.extend_from_slice(&entry(3, 15, 16).encode()[..20]);
        assert_eq!(decode_entries(&bytes, 10).unwrap().len(), 2);
        // lastOffset below the segment base.
        assert_eq!(decode_entries(&bytes, 13).unwrap_err().0, 0);
        // Not increasing.
        let mut swapped = entry(2, 11, 14).encode().to_vec();
        swapped.extend_from_slice(&entry(1, 10, 12).encode());
        assert_eq!(decode_entries(&swapped, 0).unwrap_err().0, 34);
        // Another version.
        let mut v1 = bytes[..whole].to_vec();
        v1[1] = 1;
        assert!(decode_entries(&v1, 0).unwrap_err().1.contains("version"));
    }

    /// An index past the fixed size is read if its segment is large enough to hold
    /// that many aborted transactions, and refused otherwise.
    #[test]
    fn a_large_index_is_bounded_by_its_segment() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let path = PathBuf::from("/d/00000000000000000000.txnindex");
        let n = MAX_TXN_INDEX_BYTES as usize / TXN_ENTRY + 1;
        let mut bytes = Vec::with_capacity(n * TXN_ENTRY);
        for i in 0..n as i64 {
            bytes.extend_from_slice(&entry(1, 2 * i, 2 * i + 1).encode());
        }
        fs.open(&path, true)
            .unwrap()
            .write_all_at(&bytes, 0)
            .unwrap();
        let small = TxnIndex::new(path.clone(), 0, false).entries(&fs);
        assert!(matches!(small, Err(Error::Corruption { .. })), "no segment");
        // A segment of `n` marker-sized batches backs every entry.
        let log = fs.open(&path.with_extension("log"), true).unwrap();
        let marker = crate::format::batch::RECORD_BATCH_OVERHEAD as u64;
        log.set_len(n as u64 * marker).unwrap();
        let read = TxnIndex::new(path.clone(), 0, false).entries(&fs).unwrap();
        assert_eq!(read.len(), n);
        assert_eq!(read[n - 1], entry(1, 2 * n as i64 - 2, 2 * n as i64 - 1));
    }

    #[test]
    fn appends_go_after_the_whole_entries_and_rewrites_replace_the_file() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let path = PathBuf::from("/d/00000000000000000010.txnindex");
        let idx = TxnIndex::new(path.clone(), 10, true);
        assert!(idx.append(&fs, entry(1, 10, 12)).unwrap(), "created");
        assert!(!idx.append(&fs, entry(2, 11, 14)).unwrap());
        assert!(idx.append(&fs, entry(3, 10, 13)).is_err(), "out of order");
        // A torn third entry on disk; read back in a fresh handle, two entries, and the
        // next append overwrites the torn bytes.
        let f = fs.open(&path, false).unwrap();
        f.write_all_at(&[0xff; 20], 68).unwrap();
        let again = TxnIndex::new(path.clone(), 10, false);
        assert_eq!(again.entries(&fs).unwrap().len(), 2);
        again.append(&fs, entry(3, 15, 16)).unwrap();
        assert_eq!(f.len().unwrap(), 3 * 34);
        let third = TxnIndex::new(path.clone(), 10, false);
        assert_eq!(third.entries(&fs).unwrap()[2], entry(3, 15, 16));
        // Rewrites: the same entries change nothing; fewer shorten the file; none
        // remove it.
        assert!(
            !third
                .rewrite(&fs, third.entries(&fs).unwrap().to_vec(), false)
                .unwrap()
        );
        assert!(!third.rewrite(&fs, vec![entry(1, 10, 12)], false).unwrap());
        assert_eq!(f.len().unwrap(), 34);
        assert!(third.rewrite(&fs, Vec::new(), false).unwrap(), "removed");
        assert!(!fs.exists(&path).unwrap());
        assert!(third.entries(&fs).unwrap().is_empty());
    }
}
