//! [`CachingFs`]: a [`FileSystem`] that keeps at most a set number of files open.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use super::stats::{LatencyHistogram, SyncStats};
use super::{DirLock, File, FileSystem};

/// The default limit of [`CachingFs`] (and of
/// [`StoreConfig::max_open_files`](crate::StoreConfig::max_open_files)): half of the
/// process's soft descriptor limit (the application keeps the other half), between 64
/// and 65 536. Where the limit cannot be read (it is read from `/proc/self/limits` on
/// Linux), 512.
pub fn default_max_open_files() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3).map(str::to_owned)
        });
    match soft.as_deref() {
        Some("unlimited") => 1 << 16,
        Some(n) => n
            .parse::<usize>()
            .map_or(512, |n| (n / 2).clamp(64, 1 << 16)),
        None => 512,
    }
}

/// A [`FileSystem`] that keeps at most `max_open` of the files it opened open at once
/// (open file handles are bounded, so that 10k+ partitions work
/// under an ordinary descriptor limit). Lock files are not counted: they are held open
/// for as long as the lock.
///
/// A file it opens keeps its descriptor while it is used; when more than the limit are
/// open, the least recently used are closed (a clock sweep) and reopened by path at their
/// next use. What keeps this invisible to the log:
///
/// - **Unsynced writes are synced first.** A descriptor with writes not yet synced is
///   `fdatasync`'d before it is closed: a descriptor opened later might not see a
///   writeback error of the closed one. If that sync fails, the file is failed: every later
///   operation on it returns the error, so the log owning it poisons itself at its next
///   write or sync instead of acknowledging what the device lost. A file whose own sync
///   failed is never closed or synced by the cache (no fsync is ever retried).
/// - **The same file or an error.** A reopened file must have the identity (device and
///   inode) it had when first opened; otherwise the operation fails rather than reading
///   another file's bytes. A file system that cannot tell identities (`OsFs` off unix)
///   gets no descriptor closed. Not covered: a file removed or replaced behind this file
///   system's back (another process ignoring the store's lock) whose inode number is
///   reused for the new file.
/// - **Replaced files stay readable.** Before a path is replaced by a rename through this
///   file system, the files under that path are opened and pinned: they keep their
///   descriptor until dropped, as plain descriptors would (readers of a segment snapshot
///   taken before a compaction swap keep reading it). A file renamed through this file
///   system follows its new name. A removed file stays readable if it was open when
///   removed (it is pinned); one the cache had closed then fails at its next use with
///   `NotFound` (reopening every file of a deleted topic could exhaust descriptors).
/// - **Nothing is closed under an operation.** An operation holds its file's descriptor;
///   the sweep skips files in use and pinned ones, and prefers files with nothing to sync
///   (closing one with unsynced writes costs an `fdatasync` on the thread that opened).
///   When every open file is in use or pinned, the limit is exceeded rather than failing.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::fs::{CachingFs, FileSystem, SimFs};
/// let fs = CachingFs::new(Arc::new(SimFs::new()), 2);
/// fs.create_dir_all("d".as_ref())?;
/// let files: Vec<_> = (0..5)
///     .map(|i| fs.open(format!("d/{i}").as_ref(), true))
///     .collect::<Result<_, _>>()?;
/// for (i, f) in files.iter().enumerate() {
///     f.write_all_at(&[i as u8], 0)?;
/// }
/// assert!(fs.open_files() <= 2);
/// // Closed ones reopen at their next use.
/// assert_eq!(files[0].read_exact_at(0, 1)?[0], 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CachingFs {
    inner: Arc<dyn FileSystem>,
    cache: Arc<Cache>,
}

#[derive(Debug)]
struct Cache {
    max_open: usize,
    state: Mutex<CacheState>,
    /// Held (shared) while a path is resolved and opened, and exclusively while names
    /// change (rename, remove), so a reopen never sees a name half-moved.
    names: RwLock<()>,
    /// How long each sync took.
    syncs: SyncStats,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Every live file by its current path, with its id.
    by_path: HashMap<PathBuf, Vec<(u64, Weak<CachedFile>)>>,
    /// Open files in sweep order; entries of files closed, pinned or dropped since are
    /// skipped (and dropped) as the sweep passes.
    clock: VecDeque<Weak<CachedFile>>,
    /// Files holding a descriptor.
    open: usize,
    next_id: u64,
}

impl CacheState {
    /// Adds an open file to the sweep. Files whose last reference is taken here are put
    /// in `dead`, for the caller to drop once the cache's lock is released (their `Drop`
    /// takes it).
    fn push_clock(&mut self, f: Weak<CachedFile>, dead: &mut Vec<Arc<CachedFile>>) {
        self.clock.push_back(f);
        // Entries of closed or dropped files are otherwise only removed by the sweep,
        // which runs only above the limit.
        if self.clock.len() > 2 * self.open + 64 {
            self.clock.retain(|w| match w.upgrade() {
                Some(f) => {
                    let keep = f.is_open.load(Ordering::Acquire);
                    dead.push(f);
                    keep
                }
                None => false,
            });
        }
    }
}

impl CachingFs {
    /// Wraps `inner`, keeping at most `max_open` files open (at least 1).
    pub fn new(inner: Arc<dyn FileSystem>, max_open: usize) -> Self {
        CachingFs {
            inner,
            cache: Arc::new(Cache {
                max_open: max_open.max(1),
                state: Mutex::new(CacheState::default()),
                names: RwLock::new(()),
                syncs: SyncStats::default(),
            }),
        }
    }

    /// How long the syncs through it took: every `fdatasync` of one of its files and
    /// every directory fsync.
    pub fn sync_latency(&self) -> LatencyHistogram {
        self.cache.syncs.snapshot()
    }

    /// Labels the sync-latency histogram it publishes with `store`.
    #[cfg(feature = "metrics")]
    pub(crate) fn label_metrics(&self, store: String) {
        self.cache.syncs.label_store(store);
    }

    /// The limit.
    pub fn max_open_files(&self) -> usize {
        self.cache.max_open
    }

    /// How many of its files hold a descriptor now.
    pub fn open_files(&self) -> usize {
        self.cache.state.lock().open
    }

    /// Closes the descriptor of every file that has nothing to sync and is neither in
    /// use nor pinned (a store does this at close, as handles may outlive it). They
    /// reopen if used again. Returns how many were closed.
    pub fn close_idle(&self) -> usize {
        let files: Vec<Arc<CachedFile>> = {
            let st = self.cache.state.lock();
            st.by_path
                .values()
                .flatten()
                .filter_map(|(_, w)| w.upgrade())
                .collect::<Vec<_>>()
        };
        files
            .iter()
            .filter(|f| !f.is_dirty() && f.identity.is_some())
            .filter(|f| f.close_for_limit())
            .count()
    }

    /// The live files under `path`.
    fn files_at(&self, path: &Path) -> Vec<Arc<CachedFile>> {
        let st = self.cache.state.lock();
        let files = st
            .by_path
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        drop(st);
        files
    }

    /// Pins the files under `path` before its name goes (`reopen`: also those the cache
    /// closed, which are reopened now while the name still refers to them). Returns the
    /// files this pinned, to unpin if the operation fails.
    fn pin_path(&self, path: &Path, reopen: bool) -> Vec<Arc<CachedFile>> {
        let mut pinned = Vec::new();
        for f in self.files_at(path) {
            // Under the slot's lock: the sweep cannot be closing it meanwhile.
            let slot = f.slot.write();
            if f.pinned.swap(true, Ordering::AcqRel) {
                continue;
            }
            let open = slot.file.is_some();
            drop(slot);
            if !open && reopen {
                // If that fails, later operations fail (ENOENT or a changed identity);
                // they never read another file.
                if let Err(e) = f.reopen() {
                    tracing::warn!(
                        "{}: could not keep the file open before it is replaced: {e}",
                        path.display()
                    );
                }
            }
            pinned.push(f);
        }
        pinned
    }

    /// Removes the file at `path`; `reopen`: its closed handles are reopened first
    /// (see [`pin_path`](Self::pin_path)), else they fail from now on.
    fn remove(&self, path: &Path, reopen: bool) -> io::Result<()> {
        let pinned = self.pin_path(path, reopen);
        let names = self.cache.names.write();
        // Under the names lock: no file under `path` opens or reopens meanwhile, and a
        // file created there after the removal is not among them.
        let files = self.files_at(path);
        if let Err(e) = self.inner.remove_file(path) {
            drop(names);
            self.unpin(&pinned);
            return Err(e);
        }
        for f in &files {
            if !f.is_open.load(Ordering::Acquire) {
                f.gone.store(true, Ordering::Release);
            }
        }
        if reopen {
            for f in &pinned {
                f.removed_in_use.store(true, Ordering::Release);
            }
        }
        drop(names);
        Ok(())
    }

    /// Undoes [`pin_path`](Self::pin_path): the files go back into the sweep.
    fn unpin(&self, files: &[Arc<CachedFile>]) {
        let mut dead = Vec::new();
        let mut st = self.cache.state.lock();
        for f in files {
            // A file whose sync failed meanwhile stays pinned for good.
            if f.sync_failed.load(Ordering::Acquire) {
                continue;
            }
            f.pinned.store(false, Ordering::Release);
            if f.is_open.load(Ordering::Acquire) {
                st.push_clock(Arc::downgrade(f), &mut dead);
            }
        }
        drop(st);
        drop(dead);
    }
}

/// How many files past the first one with unsynced writes the sweep looks at for one
/// with nothing to sync, before it closes (and syncs) that one.
const CLEAN_LOOKAHEAD: usize = 64;

impl Cache {
    /// Closes the least recently used files while more than the limit are open, except
    /// `keep`.
    fn enforce_limit(&self, keep: u64) {
        let mut busy = 0;
        // Files whose last reference the sweep took: dropped after the lock (their
        // `Drop` takes it).
        let mut dead = Vec::new();
        loop {
            let victim = {
                let mut st = self.state.lock();
                if st.open <= self.max_open {
                    return;
                }
                let mut found = None;
                let mut dirty = None;
                let mut since_dirty = 0;
                // Two rounds at most: the first may only clear `used` bits. A file with
                // unsynced writes is taken only if no clean one turns up within
                // `CLEAN_LOOKAHEAD` files after it; it is the least recently used dirty
                // one (the first met), not the last.
                for _ in 0..2 * st.clock.len() {
                    if dirty.is_some() {
                        since_dirty += 1;
                        if since_dirty > CLEAN_LOOKAHEAD {
                            break;
                        }
                    }
                    let Some(w) = st.clock.pop_front() else {
                        break;
                    };
                    let Some(f) = w.upgrade() else {
                        continue;
                    };
                    if !f.is_open.load(Ordering::Acquire)
                        || f.pinned.load(Ordering::Acquire)
                        || f.identity.is_none()
                    {
                        dead.push(f);
                        continue;
                    }
                    if f.id == keep || f.used.swap(false, Ordering::Relaxed) {
                        st.clock.push_back(w);
                        dead.push(f);
                        continue;
                    }
                    if f.is_dirty() {
                        if dirty.is_none() {
                            dirty = Some(f);
                        } else {
                            st.clock.push_back(w);
                            dead.push(f);
                        }
                        continue;
                    }
                    found = Some(f);
                    break;
                }
                match (found, dirty) {
                    (Some(f), Some(d)) => {
                        st.clock.push_back(Arc::downgrade(&d));
                        dead.push(d);
                        Some(f)
                    }
                    (f, d) => f.or(d),
                }
            };
            dead.clear();
            let Some(f) = victim else {
                return; // everything open is in use or pinned: over the limit for now
            };
            if !f.close_for_limit() {
                if f.is_open.load(Ordering::Acquire) && !f.pinned.load(Ordering::Acquire) {
                    self.state.lock().clock.push_back(Arc::downgrade(&f));
                }
                busy += 1;
                if busy > 8 {
                    return;
                }
            }
        }
    }
}

/// A file of a [`CachingFs`].
pub struct CachedFile {
    id: u64,
    me: Weak<CachedFile>,
    fs: Arc<dyn FileSystem>,
    cache: Arc<Cache>,
    path: Mutex<PathBuf>,
    identity: Option<(u64, u64)>,
    slot: RwLock<Slot>,
    /// Mirrors `slot.file.is_some()`, readable under the cache's lock.
    is_open: AtomicBool,
    /// Used since the sweep last passed it.
    used: AtomicBool,
    /// Never closed by the cache again.
    pinned: AtomicBool,
    /// Its sync failed: pinned for good (no unpin undoes it).
    sync_failed: AtomicBool,
    /// Writes started; writes finished; and how many of them the last successful sync
    /// covered (those finished before it began). Unsynced writes: `started > synced`.
    started: AtomicU64,
    finished: AtomicU64,
    synced: AtomicU64,
    /// The cache closed it and its name was then removed: reopening would fail or find
    /// another file.
    gone: AtomicBool,
    /// Its name was removed (or replaced by a rename) while readers could still read it
    /// (pinned open for them, see [`FileSystem::remove_file_in_use`]) until
    /// `forget_descriptor` says none can.
    removed_in_use: AtomicBool,
}

struct Slot {
    file: Option<Arc<dyn File>>,
    /// Set when a sync before closing failed: every later operation returns this.
    failed: Option<(io::ErrorKind, String)>,
}

impl fmt::Debug for CachedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedFile")
            .field("path", &*self.path.lock())
            .field("open", &self.is_open.load(Ordering::Relaxed))
            .field("pinned", &self.pinned.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CachedFile {
    fn is_dirty(&self) -> bool {
        self.started.load(Ordering::Acquire) > self.synced.load(Ordering::Acquire)
    }

    /// The open descriptor, reopened if the cache closed it; held until the guard drops.
    fn guard(&self) -> io::Result<RwLockReadGuard<'_, Slot>> {
        loop {
            {
                let slot = self.slot.read();
                if let Some((kind, msg)) = &slot.failed {
                    return Err(io::Error::new(*kind, msg.clone()));
                }
                if slot.file.is_some() {
                    self.used.store(true, Ordering::Relaxed);
                    return Ok(slot);
                }
            }
            self.reopen()?;
        }
    }

    fn reopen(&self) -> io::Result<()> {
        {
            let mut slot = self.slot.write();
            if slot.file.is_some() || slot.failed.is_some() {
                return Ok(());
            }
            if self.gone.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} was removed", self.path.lock().display()),
                ));
            }
            let file = {
                let _names = self.cache.names.read();
                let path = self.path.lock().clone();
                let file = self.fs.open(&path, false)?;
                if let Some(want) = self.identity
                    && file.identity()?.is_some_and(|got| got != want)
                {
                    return Err(io::Error::other(format!(
                        "{} is no longer the file opened under that name \
                         (it was replaced without this file system knowing)",
                        path.display()
                    )));
                }
                file
            };
            slot.file = Some(file);
            self.is_open.store(true, Ordering::Release);
            let mut dead = Vec::new();
            let mut st = self.cache.state.lock();
            st.open += 1;
            st.push_clock(self.me.clone(), &mut dead);
            drop(st);
            drop(dead);
        }
        self.cache.enforce_limit(self.id);
        Ok(())
    }

    /// Closes the descriptor of a file with nothing to sync, unless it is in use, pinned
    /// or cannot be reopened safely (no identity).
    fn release_if_clean(&self) {
        if self.identity.is_some() && !self.is_dirty() {
            // A write racing this makes it dirty: `close_for_limit` syncs it then.
            self.close_for_limit();
        }
    }

    /// Closes the descriptor for the limit, unless the file is in use, pinned or closed.
    fn close_for_limit(&self) -> bool {
        let Some(mut slot) = self.slot.try_write() else {
            return false;
        };
        // A failed sync is final (and set before a sync gives up the slot lock held
        // here), even if a failed rename's unpin, racing that sync, unpinned the file.
        if self.pinned.load(Ordering::Acquire) || self.sync_failed.load(Ordering::Acquire) {
            return false;
        }
        let Some(file) = slot.file.take() else {
            return false;
        };
        // No operation is in flight (the slot's write lock): every started write finished.
        if self.is_dirty() {
            let started = self.started.load(Ordering::Acquire);
            match self.cache.syncs.time(|| file.sync_data()) {
                Ok(()) => {
                    self.synced.fetch_max(started, Ordering::AcqRel);
                }
                Err(e) => {
                    let path = self.path.lock().clone();
                    tracing::error!(
                        "{}: fdatasync before closing its descriptor failed: {e}",
                        path.display()
                    );
                    slot.failed = Some((
                        e.kind(),
                        format!(
                            "{}: fdatasync before closing its descriptor failed: {e}",
                            path.display()
                        ),
                    ));
                }
            }
        }
        self.is_open.store(false, Ordering::Release);
        self.cache.state.lock().open -= 1;
        drop(slot);
        drop(file);
        true
    }

    /// Runs a write through the descriptor; counted before it starts, so a failed or
    /// partial write still counts as unsynced.
    fn write_op(&self, op: impl FnOnce(&dyn File) -> io::Result<()>) -> io::Result<()> {
        let slot = self.guard()?;
        self.started.fetch_add(1, Ordering::AcqRel);
        let result = op(slot.file.as_deref().expect("guarded"));
        self.finished.fetch_add(1, Ordering::AcqRel);
        result
    }

    fn read_op<R>(&self, op: impl FnOnce(&dyn File) -> io::Result<R>) -> io::Result<R> {
        let slot = self.guard()?;
        op(slot.file.as_deref().expect("guarded"))
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let open = self.slot.get_mut().file.take().is_some();
        let mut st = self.cache.state.lock();
        if open {
            st.open -= 1;
        }
        let path = self.path.get_mut().clone();
        if let Some(v) = st.by_path.get_mut(&path) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                st.by_path.remove(&path);
            }
        }
    }
}

impl File for CachedFile {
    fn len(&self) -> io::Result<u64> {
        self.read_op(|f| f.len())
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.read_op(|f| f.read_at(buf, pos))
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.write_op(|f| f.write_all_at(buf, pos))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.write_op(|f| f.set_len(len))
    }
    fn sync_data(&self) -> io::Result<()> {
        let slot = self.guard()?;
        // Covers the writes finished before it starts; one still running may land after.
        let finished = self.finished.load(Ordering::Acquire);
        let file = slot.file.as_deref().expect("guarded");
        match self.cache.syncs.time(|| file.sync_data()) {
            Ok(()) => {
                self.synced.fetch_max(finished, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                // The owner decides what a failed sync means; the cache never syncs or
                // closes this file again (that would retry the fsync).
                self.sync_failed.store(true, Ordering::Release);
                self.pinned.store(true, Ordering::Release);
                Err(e)
            }
        }
    }
    #[allow(unsafe_code)]
    unsafe fn map(&self, len: u64) -> io::Result<Bytes> {
        // SAFETY: this function's contract, passed on (the same file).
        self.read_op(|f| unsafe { f.map(len) })
    }
    #[allow(unsafe_code)]
    unsafe fn map_live(&self, len: u64) -> io::Result<Option<Bytes>> {
        // SAFETY: as `map`.
        self.read_op(|f| unsafe { f.map_live(len) })
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.read_op(|f| f.modified_ms())
    }
    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        // Not data: nothing for the sync bookkeeping of `write_op`.
        self.read_op(|f| f.set_modified_ms(ms))
    }
    fn read_durable_at(&self, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
        self.read_op(|f| f.read_durable_at(buf, pos))
    }
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(self.identity)
    }

    fn release_descriptor(&self) {
        self.release_if_clean();
    }

    fn forget_descriptor(&self) {
        if self.removed_in_use.swap(false, Ordering::AcqRel) {
            // Its name went while readers could still read it, and they are done: it
            // leaves the pins, and once closed (now, or by the sweep) it is gone.
            self.gone.store(true, Ordering::Release);
            if !self.sync_failed.load(Ordering::Acquire) {
                self.pinned.store(false, Ordering::Release);
            }
            if !self.close_for_limit() && self.is_open.load(Ordering::Acquire) {
                let mut dead = Vec::new();
                self.cache
                    .state
                    .lock()
                    .push_clock(self.me.clone(), &mut dead);
                drop(dead);
            }
        }
    }
}

impl FileSystem for CachingFs {
    /// Not cached: a read-only file is read once and dropped (a check, a checkpoint),
    /// and has nothing to write back.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        let _names = self.cache.names.read();
        self.inner.open_read(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        // Held until the file is listed under `path`: a removal or rename of `path`
        // (which takes it to write) either comes before the open, or finds the file.
        let names = self.cache.names.read();
        let file = self.inner.open(path, create)?;
        let identity = file.identity()?;
        let mut dead = Vec::new();
        let f = {
            let mut st = self.cache.state.lock();
            st.next_id += 1;
            let id = st.next_id;
            let f = Arc::new_cyclic(|me| CachedFile {
                id,
                me: me.clone(),
                fs: self.inner.clone(),
                cache: self.cache.clone(),
                path: Mutex::new(path.to_path_buf()),
                identity,
                slot: RwLock::new(Slot {
                    file: Some(file),
                    failed: None,
                }),
                is_open: AtomicBool::new(true),
                used: AtomicBool::new(true),
                pinned: AtomicBool::new(false),
                sync_failed: AtomicBool::new(false),
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                gone: AtomicBool::new(false),
                removed_in_use: AtomicBool::new(false),
            });
            st.open += 1;
            st.push_clock(Arc::downgrade(&f), &mut dead);
            st.by_path
                .entry(path.to_path_buf())
                .or_default()
                .push((id, Arc::downgrade(&f)));
            f
        };
        drop(names);
        drop(dead);
        self.cache.enforce_limit(f.id);
        Ok(f)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_symlink(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.remove(path, false)
    }
    fn remove_file_in_use(&self, path: &Path) -> io::Result<()> {
        self.remove(path, true)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let pinned = self.pin_path(to, true);
        let names = self.cache.names.write();
        if let Err(e) = self.inner.rename(from, to) {
            drop(names);
            self.unpin(&pinned);
            return Err(e);
        }
        let mut st = self.cache.state.lock();
        let mut moved_files = Vec::new();
        if let Some(moved) = st.by_path.remove(from) {
            for (_, w) in &moved {
                if let Some(f) = w.upgrade() {
                    *f.path.lock() = to.to_path_buf();
                    moved_files.push(f);
                }
            }
            st.by_path
                .entry(to.to_path_buf())
                .or_default()
                .extend(moved);
        }
        drop(st);
        // The replaced files lost their name as removed ones do (see
        // `forget_descriptor`).
        for f in &pinned {
            f.removed_in_use.store(true, Ordering::Release);
        }
        drop(names);
        // Dropped after the cache's lock: a last reference's `Drop` takes it.
        drop(moved_files);
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.cache.syncs.time(|| self.inner.sync_dir(path))
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock(path)
    }
    fn lock_holder(&self, path: &Path) -> Option<u32> {
        self.inner.lock_holder(path)
    }
    fn canonicalize(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        self.inner.canonicalize(path)
    }
}

#[cfg(test)]
mod tests;
