//! `.index` and `.timeindex`: Kafka's sparse indexes, kept in memory and mirrored to
//! files preallocated (from the first entry) while their segment is active.
//!
//! - `.index`: 8-byte entries (u32 offset relative to the segment base = the last offset
//!   of a batch, u32 file position of that batch), strictly increasing.
//! - `.timeindex`: 12-byte entries (i64 max timestamp so far, u32 relative offset of the
//!   batch carrying it), timestamps strictly increasing.
//!
//! An index is a hint: every lookup is verified against the log before it is trusted,
//! and a damaged index is rebuilt from the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::fs::{File, FileSystem};

/// Bytes per `.index` entry.
pub const OFFSET_ENTRY: u64 = 8;
/// Bytes per `.timeindex` entry.
pub const TIME_ENTRY: u64 = 12;

/// An `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment base.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// A `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp up to and including the batch.
    pub timestamp: i64,
    /// The last offset (relative to the segment base) of the batch that first carried
    /// that timestamp.
    pub relative_offset: u32,
}

/// Encoding of one kind of entry.
pub trait Entry: Copy + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// Bytes per entry.
    const SIZE: u64;
    /// Writes the entry's bytes.
    fn encode(&self) -> Vec<u8>;
    /// Reads an entry from exactly `SIZE` bytes.
    fn decode(b: &[u8]) -> Self;
    /// Whether `self` may follow `prev` in a valid index.
    fn follows(&self, prev: &Self) -> bool;
}

impl Entry for OffsetEntry {
    const SIZE: u64 = OFFSET_ENTRY;
    fn encode(&self) -> Vec<u8> {
        let mut v = self.relative_offset.to_be_bytes().to_vec();
        v.extend_from_slice(&self.position.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
}

impl Entry for TimeEntry {
    const SIZE: u64 = TIME_ENTRY;
    fn encode(&self) -> Vec<u8> {
        let mut v = self.timestamp.to_be_bytes().to_vec();
        v.extend_from_slice(&self.relative_offset.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.relative_offset >= prev.relative_offset
    }
}

/// One index file and its entries in memory.
#[derive(Debug)]
pub struct Index<E: Entry> {
    path: PathBuf,
    /// `None` once released: a sealed, synced segment's entries live in memory, so its
    /// index files need no descriptor (a log of 10,000 segments holds 10,000, not 30,000).
    file: parking_lot::RwLock<Option<Arc<dyn File>>>,
    entries: RwLock<Vec<E>>,
    max_entries: usize,
    /// Only the file's last entry is in `entries` (a sealed segment opened after a
    /// clean shutdown): the rest is read on first use ([`load_deferred`]).
    ///
    /// [`load_deferred`]: Self::load_deferred
    deferred: std::sync::atomic::AtomicBool,
    /// Serializes deferred loads.
    loading: parking_lot::Mutex<()>,
    /// [`preallocate`](Self::preallocate) was asked for while there were no entries: the
    /// file is extended at the first one.
    extend_at_first: std::sync::atomic::AtomicBool,
}

impl<E: Entry> Index<E> {
    /// Opens (creating if missing) the index file at `path` without reading it.
    pub fn create(fs: &dyn FileSystem, path: &Path, index_bytes: u64) -> std::io::Result<Self> {
        let file = fs.open(path, true)?;
        Ok(Index {
            path: path.to_path_buf(),
            file: parking_lot::RwLock::new(Some(file)),
            entries: RwLock::new(Vec::new()),
            max_entries: (index_bytes / E::SIZE) as usize,
            deferred: std::sync::atomic::AtomicBool::new(false),
            loading: parking_lot::Mutex::new(()),
            extend_at_first: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens the index file at `path` if `exists`, without reading it; otherwise the
    /// file is left uncreated until [`create_if_missing`](Self::create_if_missing)
    /// (recovery opens a directory without changing it until every check passed).
    pub fn open_existing(
        fs: &dyn FileSystem,
        path: &Path,
        index_bytes: u64,
        read_from: Option<&Path>,
    ) -> std::io::Result<Self> {
        // Read from another name (a swap file about to be renamed to `path`): the
        // handle stays the file's after the rename.
        let file = read_from.map(|from| fs.open(from, false)).transpose()?;
        Ok(Index {
            path: path.to_path_buf(),
            file: parking_lot::RwLock::new(file),
            entries: RwLock::new(Vec::new()),
            max_entries: (index_bytes / E::SIZE) as usize,
            deferred: std::sync::atomic::AtomicBool::new(false),
            loading: parking_lot::Mutex::new(()),
            extend_at_first: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Creates the file of an index opened by [`open_existing`](Self::open_existing)
    /// without one (empty; the entries in memory are written by [`rewrite`](Self::rewrite)).
    /// Not for a released index.
    pub fn create_if_missing(&self, fs: &dyn FileSystem) -> std::io::Result<()> {
        let mut file = self.file.write();
        if file.is_none() {
            *file = Some(fs.open(&self.path, true)?);
        }
        Ok(())
    }

    /// Reads the entries from the file. `Ok(false)` if the file fails the sanity check
    /// (length not a multiple of the entry size, entries out of order, or `valid` rejects
    /// one), in which case the index must be rebuilt.
    pub fn load(&self, valid: impl Fn(&E) -> bool) -> std::io::Result<bool> {
        self.load_from(self.file()?.as_ref(), valid)
    }

    /// [`load`](Self::load) from `file` (this index's file, opened again).
    fn load_from(&self, file: &dyn File, valid: impl Fn(&E) -> bool) -> std::io::Result<bool> {
        let len = file.len()?;
        if len % E::SIZE != 0 || len / E::SIZE > self.max_entries as u64 {
            return Ok(false);
        }
        let data = file.read_exact_at(0, len as usize)?;
        let mut entries: Vec<E> = Vec::with_capacity((len / E::SIZE) as usize);
        for chunk in data.chunks_exact(E::SIZE as usize) {
            let e = E::decode(chunk);
            if !valid(&e) || entries.last().is_some_and(|p| !e.follows(p)) {
                return Ok(false);
            }
            entries.push(e);
        }
        *self.entries.write() = entries;
        Ok(true)
    }

    /// Reads only the last entry (Kafka's sanity check: whole entries, the last one
    /// valid) and defers the rest to [`load_deferred`](Self::load_deferred): opening a
    /// log reads no index file whole. `Ok(false)` if the check fails (rebuild it).
    pub fn load_tail(&self, valid: impl Fn(&E) -> bool) -> std::io::Result<bool> {
        let file = self.file()?;
        let len = file.len()?;
        if len % E::SIZE != 0 || len / E::SIZE > self.max_entries as u64 {
            return Ok(false);
        }
        let last = if len == 0 {
            None
        } else {
            let e = E::decode(&file.read_exact_at(len - E::SIZE, E::SIZE as usize)?);
            if !valid(&e) {
                return Ok(false);
            }
            Some(e)
        };
        *self.entries.write() = last.into_iter().collect();
        self.deferred
            .store(len > E::SIZE, std::sync::atomic::Ordering::Release);
        Ok(true)
    }

    /// Whether entries before the last are still on disk only.
    pub fn is_deferred(&self) -> bool {
        self.deferred.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Reads the entries [`load_tail`](Self::load_tail) deferred, through the held
    /// handle or, once it was released, one `reopen` gives for the path. `Ok(false)` if
    /// they fail the checks (the index then keeps only its last entry: lookups below it
    /// scan). Either way it is no longer deferred.
    pub fn load_deferred(
        &self,
        reopen: impl FnOnce(&Path) -> std::io::Result<Arc<dyn File>>,
        valid: impl Fn(&E) -> bool,
    ) -> std::io::Result<bool> {
        let _one = self.loading.lock();
        if !self.is_deferred() {
            return Ok(true);
        }
        let held = self.file.read().clone();
        let file = match held {
            Some(f) => f,
            None => reopen(&self.path)?,
        };
        let last = self.last();
        let ok = self.load_from(file.as_ref(), valid)? && self.last() == last;
        if !ok {
            *self.entries.write() = last.into_iter().collect();
        }
        self.deferred
            .store(false, std::sync::atomic::Ordering::Release);
        Ok(ok)
    }

    /// Replaces all entries and rewrites the file (`preallocate`: extend it, from the
    /// first entry, to the full size for an active segment; otherwise trimmed). Not
    /// synced.
    pub fn replace(&self, entries: Vec<E>, preallocate: bool) -> std::io::Result<()> {
        self.set_entries(entries);
        self.rewrite(preallocate)
    }

    /// Replaces all entries in memory only; [`rewrite`](Self::rewrite) writes them.
    pub fn set_entries(&self, entries: Vec<E>) {
        *self.entries.write() = entries;
        self.deferred
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Writes the entries in memory, trimmed, through `file` (this index's file opened
    /// again, its handle having been released), not synced: a sealed segment's index
    /// rebuilt after open.
    pub fn write_to(&self, file: &dyn File) -> std::io::Result<()> {
        let bytes: Vec<u8> = self.entries.read().iter().flat_map(Entry::encode).collect();
        file.set_len(0)?;
        file.write_all_at(&bytes, 0)
    }

    /// Rewrites the file with the entries in memory (`preallocate`: extended, from the
    /// first entry, to the full size for an active segment; otherwise trimmed). Not
    /// synced.
    pub fn rewrite(&self, preallocate: bool) -> std::io::Result<()> {
        if self.is_deferred() {
            // Only the last entry is in memory: writing would lose the rest.
            return Err(std::io::Error::other("index not loaded; not rewritten"));
        }
        let bytes: Vec<u8> = self.entries.read().iter().flat_map(Entry::encode).collect();
        let file = self.file()?;
        file.set_len(0)?;
        file.write_all_at(&bytes, 0)?;
        if preallocate {
            self.preallocate()?;
        }
        Ok(())
    }

    /// Appends an entry (the caller checked order and capacity).
    pub fn append(&self, e: E) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let mut entries = self.entries.write();
        let file = self.file()?;
        if self.extend_at_first.load(Ordering::Acquire) {
            file.set_len(self.full_len())?;
            self.extend_at_first.store(false, Ordering::Release);
        }
        file.write_all_at(&e.encode(), entries.len() as u64 * E::SIZE)?;
        entries.push(e);
        Ok(())
    }

    /// Whether no more entries fit.
    pub fn is_full(&self) -> bool {
        self.entries.read().len() >= self.max_entries
    }

    /// The last entry.
    pub fn last(&self) -> Option<E> {
        self.entries.read().last().copied()
    }

    /// The last entry for which `le(entry)` holds, entries being sorted so that `le` is
    /// true for a prefix.
    pub fn floor(&self, le: impl Fn(&E) -> bool) -> Option<E> {
        let entries = self.entries.read();
        let n = entries.partition_point(|e| le(e));
        n.checked_sub(1).map(|i| entries[i])
    }

    /// The segment is being sealed: an entry from now on (its final time-index entry)
    /// does not extend the file, which is trimmed right after.
    pub fn cancel_preallocation(&self) {
        self.extend_at_first
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Truncates the file to its entries (at roll and close).
    pub fn trim(&self) -> std::io::Result<()> {
        self.cancel_preallocation();
        if self.is_deferred() {
            return Ok(()); // a sealed segment's file, trimmed when it was sealed
        }
        self.file()?
            .set_len(self.entries.read().len() as u64 * E::SIZE)
    }

    /// Extends the file to its preallocated size (for the active segment). Without
    /// entries, the file is extended at the first one instead: a segment that is never
    /// indexed (a partition that gets a few records) leaves its file untouched, and a
    /// file without unsynced changes can lose its descriptor to the limit without an
    /// fsync (see [`CachingFs`](crate::fs::CachingFs)).
    pub fn preallocate(&self) -> std::io::Result<()> {
        if self.entries.read().is_empty() {
            self.extend_at_first
                .store(true, std::sync::atomic::Ordering::Release);
            return Ok(());
        }
        self.file()?.set_len(self.full_len())?;
        self.cancel_preallocation();
        Ok(())
    }

    fn full_len(&self) -> u64 {
        self.max_entries as u64 * E::SIZE
    }

    /// fdatasync of the index file.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file()?.sync_data()
    }

    /// The file will not be used for a while (see [`File::release_descriptor`]); later
    /// use reopens it.
    pub fn release_descriptor(&self) {
        if let Some(f) = &*self.file.read() {
            f.release_descriptor();
        }
    }

    /// Closes the file handle; the entries stay readable. Later writes fail.
    pub fn release(&self) {
        self.file.write().take();
    }

    fn file(&self) -> std::io::Result<Arc<dyn File>> {
        self.file.read().clone().ok_or_else(|| {
            std::io::Error::other(format!(
                "{}: index file already released",
                self.path.display()
            ))
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
