//! [`SimFs`]: an in-memory file system that remembers what was synced.
//!
//! Model:
//! - Each file has its live bytes, its durable bytes (as of its last `sync_data`) and
//!   the list of writes and truncations since then.
//! - Each directory has its live entries and the ordered list of entry changes (create,
//!   remove, rename, and the directories created in it) since its last `sync_dir`. A new
//!   directory is durable once its parent is synced, except one directly under the root
//!   or the working directory, which is durable when created unless the file system
//!   was made with [`SimFs::new_strict_dirs`]; a removed one is gone at once.
//! - A crash image starts from the durable state, keeps an ordered prefix of each
//!   directory's unsynced entry changes (ordered metadata journaling) and applies each
//!   unsynced write to a file in order, kept, dropped, or torn at 512-byte sector
//!   granularity (each sector new, old or garbage).
//! - Faults: the k-th operation (1-based, every call counts) can fail with EIO or
//!   ENOSPC, once or from then on. A failing write may first write part of its data.
//!   A failing fsync of a file leaves its unsynced writes where the device left them
//!   (each written, not written or torn, chosen then) and never writes them later, as
//!   Linux marks the pages clean: a later fsync succeeds without them. Its size changes
//!   (`set_len`) and directories' entry changes are metadata, which a journaling file
//!   system commits with a later fsync: they stay pending.
//!   `crash_after(k)` stops the machine after the k-th mutating operation: every later
//!   call fails and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{DirLock, File, FileSystem};

mod image;
use image::{Rng, apply_torn};

/// An injected error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: fails any operation.
    Eio,
    /// `ENOSPC`: fails writes, syncs and growing a file; reads and shrinking pass.
    Enospc,
}

/// What a crash image does with the writes and directory changes that were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashImage {
    /// Every unsynced change reached the disk.
    KeepAll,
    /// No unsynced change reached the disk.
    DropAll,
    /// Each unsynced change is kept, dropped or torn, chosen by a generator seeded with
    /// this value.
    Random(u64),
}

#[derive(Debug, Clone)]
enum Pending {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// An fsync of it failed: writes it did not make durable never will be (`live` may
    /// hold data the disk never gets), so a later fsync applies only the pending changes
    /// to `durable`.
    diverged: bool,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, u64),
    /// A directory created in this one: durable once this one is synced.
    MkDir(PathBuf),
}

#[derive(Debug, Clone, Copy)]
struct FaultRule {
    at: u64,
    kind: Fault,
    persistent: bool,
}

#[derive(Debug, Default)]
struct State {
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    dirs: BTreeSet<PathBuf>,
    /// Directories whose own entry (in their parent) is durable: a crash loses the
    /// others, with everything in them.
    durable_dirs: BTreeSet<PathBuf>,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    locks: HashSet<PathBuf>,
    ops: u64,
    mutating_ops: u64,
    faults: Vec<FaultRule>,
    crash_after: Option<u64>,
    crashed: bool,
    /// fsyncs (of files and directories) an injected fault failed.
    failed_syncs: u64,
    /// `read_durable_at` answers `None`, as a file system without `O_DIRECT` does.
    no_direct_reads: bool,
    /// A read-only mount: opening for writing and every change fail.
    read_only: bool,
    /// A directory directly under the root (or the working directory) is durable only
    /// once that is synced too.
    strict_dirs: bool,
}

fn read_only_fs() -> io::Error {
    io::Error::new(io::ErrorKind::ReadOnlyFilesystem, "simulated EROFS")
}
fn eio(msg: &str) -> io::Error {
    io::Error::other(format!("simulated EIO: {msg}"))
}
fn enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "simulated ENOSPC: no space left on device",
    )
}
fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The top of a tree (`/`, or the working directory, the empty parent of a relative
/// path's first part): it always exists.
fn is_root(dir: &Path) -> bool {
    dir.as_os_str().is_empty() || dir.parent().is_none()
}

impl State {
    /// Adds directory `p` if missing: durable at once if it is the root, or directly
    /// under it (see `new_strict_dirs`); else once its parent is synced.
    fn make_dir(&mut self, p: &Path) {
        if !self.dirs.insert(p.to_path_buf()) {
            return;
        }
        let up = parent(p);
        if p.parent().is_none() || (!self.strict_dirs && is_root(&up)) {
            // The root (there is nothing to sync it in), or a directory directly under
            // it.
            self.durable_dirs.insert(p.to_path_buf());
        } else {
            // With strict dirs, also a relative path's first part: its entry is the
            // working directory's (the empty path), synced as any other.
            self.dir_ops
                .entry(up)
                .or_default()
                .push(DirOp::MkDir(p.to_path_buf()));
        }
    }

    /// Counts an operation and decides whether it fails. `mutating` operations also
    /// count towards `crash_after`.
    fn begin(&mut self, mutating: bool) -> io::Result<()> {
        self.begin_op(mutating, mutating)
    }

    /// As `begin`; `may_need_space` says whether ENOSPC can apply (shrinking a file
    /// never needs space).
    fn begin_op(&mut self, mutating: bool, may_need_space: bool) -> io::Result<()> {
        if self.crashed {
            return Err(eio("the simulated machine has crashed"));
        }
        self.ops += 1;
        if mutating && self.read_only {
            return Err(read_only_fs());
        }
        if mutating {
            self.mutating_ops += 1;
            if self.crash_after.is_some_and(|c| self.mutating_ops > c) {
                self.crashed = true;
                return Err(eio("the simulated machine has crashed"));
            }
        }
        let k = self.ops;
        let hit = self
            .faults
            .iter()
            .find(|f| f.at == k || (f.persistent && k >= f.at))
            .copied();
        match hit {
            Some(FaultRule {
                kind: Fault::Eio, ..
            }) => Err(eio("injected fault")),
            Some(FaultRule {
                kind: Fault::Enospc,
                ..
            }) if may_need_space => Err(enospc()),
            _ => Ok(()),
        }
    }

    /// `begin` for an fsync: counts the ones an injected fault fails.
    fn begin_sync(&mut self) -> io::Result<()> {
        let crashed = self.crashed;
        self.begin(true).inspect_err(|_| {
            if !crashed && !self.crashed {
                self.failed_syncs += 1;
            }
        })
    }

    fn inode(&mut self, ino: u64) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }

    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.as_os_str().is_empty() || self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }
}

fn apply_write(buf: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let pos = pos as usize;
    if buf.len() < pos + data.len() {
        buf.resize(pos + data.len(), 0);
    }
    buf[pos..pos + data.len()].copy_from_slice(data);
}

/// The in-memory file system. Cloning shares the same state.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file system where even a directory directly under the root (`/store`) or the
    /// working directory is durable only once that is synced, as on a real disk. By
    /// default such a directory is durable when created: most tests keep their store
    /// one level down and never sync `/`.
    pub fn new_strict_dirs() -> Self {
        let fs = Self::default();
        fs.state.lock().strict_dirs = true;
        fs
    }

    /// Operations so far (every call counts).
    pub fn op_count(&self) -> u64 {
        self.state.lock().ops
    }

    /// Mutating operations so far (creates, writes, truncations, syncs, renames, removes):
    /// the crash points.
    pub fn mutating_op_count(&self) -> u64 {
        self.state.lock().mutating_ops
    }

    /// Fails operation number `at` (1-based, counted by [`op_count`](Self::op_count))
    /// with `kind`; with `persistent`, every later operation fails too.
    pub fn inject(&self, kind: Fault, at: u64, persistent: bool) {
        self.state.lock().faults.push(FaultRule {
            at,
            kind,
            persistent,
        });
    }

    /// fsyncs (of files and directories) that an injected fault failed so far. A caller
    /// must never trust a file's unsynced writes after one of its fsyncs failed, so a
    /// log whose fsync failed must be poisoned: tests check that with this count.
    pub fn failed_sync_count(&self) -> u64 {
        self.state.lock().failed_syncs
    }

    /// Removes all injected faults (space "returns").
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Stops the machine after `k` more mutating operations in total (counted from the
    /// start): the (k+1)-th and every later call fails with EIO and changes nothing.
    pub fn crash_after(&self, k: u64) {
        self.state.lock().crash_after = Some(k);
    }

    /// Whether [`File::read_durable_at`] shows what the disk holds (the default) or
    /// answers `None`, as a file system without `O_DIRECT` does.
    pub fn set_direct_reads(&self, on: bool) {
        self.state.lock().no_direct_reads = !on;
    }

    /// Makes the file system a read-only mount (or writable again): opening a file for
    /// writing, and every change, fail with `EROFS`; [`FileSystem::open_read`] works.
    pub fn set_read_only(&self, on: bool) {
        self.state.lock().read_only = on;
    }

    /// Forgets a [`crash_after`](Self::crash_after) that has not struck yet (a machine
    /// that crashed stays crashed).
    pub fn cancel_crash(&self) {
        self.state.lock().crash_after = None;
    }

    /// The process died (kill -9) but the machine did not: its directory locks go,
    /// and what it wrote stays as it is (unsynced changes still read back, and a later
    /// [`crash_image`](Self::crash_image) can still lose them). Forget the process's
    /// handles (`std::mem::forget`) before reopening, as nothing of it runs any more.
    pub fn process_crash(&self) {
        self.state.lock().locks.clear();
    }

    /// Whether `crash_after` has taken effect.
    pub fn has_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// The live contents of a file, if it exists (no operation is counted).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.live.get(path)?;
        st.inodes.get(ino).map(|n| n.live.clone())
    }

    /// Replaces a file's contents, live and durable, creating it (and its directory) if
    /// needed: for building disk images and simulating media damage. No operation is
    /// counted. A directory it creates is durable; one that exists stays as it is (a
    /// creation still waiting for its parent's sync keeps waiting).
    pub fn write_file(&self, path: &Path, data: Vec<u8>) {
        let mut st = self.state.lock();
        let mut dir = parent(path);
        loop {
            if st.dirs.insert(dir.clone()) {
                st.durable_dirs.insert(dir.clone());
            }
            match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir = p.to_path_buf(),
                _ => break,
            }
        }
        let ino = match st.live.get(path) {
            Some(&ino) => ino,
            None => {
                st.next_ino += 1;
                let ino = st.next_ino;
                st.live.insert(path.to_path_buf(), ino);
                st.durable.insert(path.to_path_buf(), ino);
                ino
            }
        };
        *st.inode(ino) = Inode {
            live: data.clone(),
            durable: data,
            pending: Vec::new(),
            diverged: false,
        };
    }

    /// Removes a file from the live and durable state (media damage). No operation is
    /// counted.
    pub fn delete_file(&self, path: &Path) {
        let mut st = self.state.lock();
        st.live.remove(path);
        st.durable.remove(path);
    }

    /// Live files below `dir`, with their sizes.
    pub fn files(&self, dir: &Path) -> Vec<(PathBuf, usize)> {
        let st = self.state.lock();
        st.live
            .iter()
            .filter(|(p, _)| p.starts_with(dir))
            .map(|(p, ino)| (p.clone(), st.inodes.get(ino).map_or(0, |n| n.live.len())))
            .collect()
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: u64,
}

impl File for SimFile {
    fn len(&self) -> io::Result<u64> {
        let mut st = self.fs.state.lock();
        st.begin(false)?;
        Ok(st.inode(self.ino).live.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut st = self.fs.state.lock();
        st.begin(false)?;
        let data = &st.inode(self.ino).live;
        let pos = usize::try_from(pos).unwrap_or(usize::MAX);
        if pos >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - pos);
        buf[..n].copy_from_slice(&data[pos..pos + n]);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.fs.state.lock();
        if let Err(e) = st.begin(true) {
            if e.kind() == io::ErrorKind::StorageFull && buf.len() > 1 && !st.crashed {
                // A short write before the device filled up.
                let part = buf[..buf.len() / 2].to_vec();
                let node = st.inode(self.ino);
                apply_write(&mut node.live, pos, &part);
                node.pending.push(Pending::Write { pos, data: part });
            }
            return Err(e);
        }
        let node = st.inode(self.ino);
        apply_write(&mut node.live, pos, buf);
        node.pending.push(Pending::Write {
            pos,
            data: buf.to_vec(),
        });
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.fs.state.lock();
        let grows = len > st.inode(self.ino).live.len() as u64;
        st.begin_op(true, grows)?;
        let node = st.inode(self.ino);
        node.live.resize(len as usize, 0);
        node.pending.push(Pending::SetLen(len));
        Ok(())
    }
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(Some((0, self.ino)))
    }
    fn read_durable_at(&self, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
        let mut st = self.fs.state.lock();
        st.begin(false)?;
        if st.no_direct_reads {
            return Ok(None);
        }
        // What an fsync now would leave on the disk: dirty writes go, lost ones don't.
        let node = st.inode(self.ino);
        let mut disk = node.durable.clone();
        for p in &node.pending {
            match p {
                Pending::SetLen(n) => disk.resize(*n as usize, 0),
                Pending::Write { pos, data } => apply_write(&mut disk, *pos, data),
            }
        }
        let from = usize::try_from(pos).unwrap_or(usize::MAX).min(disk.len());
        let to = from.saturating_add(buf.len()).min(disk.len());
        buf[..to - from].copy_from_slice(&disk[from..to]);
        Ok(Some(to - from))
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.fs.state.lock();
        if let Err(e) = st.begin_sync() {
            if !st.crashed {
                // As Linux does after a failed writeback: the pages are marked clean, so
                // a retried fsync succeeds without them. Each write reached the disk
                // before the error, or did not, or in part (chosen now, from a
                // generator seeded by the operation count); none will later. Size
                // changes are metadata: they stay pending.
                let mut rng = Rng(st.ops.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ self.ino);
                let node = st.inode(self.ino);
                for p in std::mem::take(&mut node.pending) {
                    match p {
                        Pending::SetLen(_) => node.pending.push(p),
                        Pending::Write { pos, data } => match rng.below(3) {
                            0 => apply_write(&mut node.durable, pos, &data),
                            1 => {}
                            _ => apply_torn(&mut node.durable, pos, &data, &mut rng),
                        },
                    }
                }
                node.diverged = true;
            }
            return Err(e);
        }
        let node = st.inode(self.ino);
        if node.diverged {
            for p in std::mem::take(&mut node.pending) {
                match p {
                    Pending::SetLen(len) => node.durable.resize(len as usize, 0),
                    Pending::Write { pos, data } => apply_write(&mut node.durable, pos, &data),
                }
            }
        } else {
            node.durable = node.live.clone();
            node.pending.clear();
        }
        Ok(())
    }
    // A copy: safe whatever the caller does.
    #[allow(unsafe_code)]
    unsafe fn map(&self, len: u64) -> io::Result<Bytes> {
        let mut st = self.fs.state.lock();
        st.begin(false)?;
        let data = &st.inode(self.ino).live;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "map past the end of the file",
            ));
        }
        Ok(Bytes::copy_from_slice(&data[..len]))
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
}
impl DirLock for SimLock {}
impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.state.lock().locks.remove(&self.path);
    }
}

impl SimFs {
    /// [`FileSystem::open`] without the read-only mount's refusal.
    fn open_read_or_create(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        let mut st = self.state.lock();
        let exists = st.live.contains_key(path);
        st.begin(create && !exists)?;
        let ino = match st.live.get(path) {
            Some(&ino) => ino,
            None if create => {
                let dir = parent(path);
                st.check_dir(&dir)?;
                st.next_ino += 1;
                let ino = st.next_ino;
                st.inodes.insert(ino, Inode::default());
                st.live.insert(path.to_path_buf(), ino);
                st.dir_ops
                    .entry(dir)
                    .or_default()
                    .push(DirOp::Link(path.to_path_buf(), ino));
                ino
            }
            None => return Err(not_found(path)),
        };
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
        }))
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        if self.state.lock().read_only {
            return Err(read_only_fs());
        }
        self.open_read_or_create(path, create)
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        self.open_read_or_create(path, false)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(true)?;
        let mut p = path.to_path_buf();
        loop {
            st.make_dir(&p);
            match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => p = q.to_path_buf(),
                _ => break,
            }
        }
        Ok(())
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(true)?;
        if st.live.contains_key(path) || st.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("simulated EEXIST: {}", path.display()),
            ));
        }
        let up = parent(path);
        if !is_root(&up) && !st.dirs.contains(&up) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("simulated ENOENT: {}", up.display()),
            ));
        }
        st.make_dir(path);
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut st = self.state.lock();
        st.begin(false)?;
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = st
            .live
            .keys()
            .filter(|p| p.parent() == Some(path))
            .chain(st.dirs.iter().filter(|p| p.parent() == Some(path)))
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut st = self.state.lock();
        st.begin(false)?;
        Ok(st.live.contains_key(path) || st.dirs.contains(path))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(true)?;
        if st.live.remove(path).is_none() {
            return Err(not_found(path));
        }
        st.dir_ops
            .entry(parent(path))
            .or_default()
            .push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }
    /// Directory removal is durable at once in this model, and so are the removals of
    /// the entries it held. (Creation is not: a new directory is durable once its
    /// parent is synced.)
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(true)?;
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let busy = st.live.keys().any(|p| p.starts_with(path))
            || st.dirs.iter().any(|d| d != path && d.starts_with(path));
        if busy {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.display()),
            ));
        }
        let ops = st.dir_ops.remove(path).unwrap_or_default();
        for op in ops {
            match op {
                DirOp::Link(p, _) | DirOp::Unlink(p) => {
                    st.durable.remove(&p);
                }
                DirOp::Rename(from, to, _) => {
                    st.durable.remove(&from);
                    st.durable.remove(&to);
                }
                DirOp::MkDir(d) => {
                    st.durable_dirs.remove(&d);
                }
            }
        }
        st.durable.retain(|p, _| !p.starts_with(path));
        st.dirs.remove(path);
        st.durable_dirs.remove(path);
        // Not a pending creation in its parent any more.
        let up = parent(path);
        if let Some(ops) = st.dir_ops.get_mut(&up) {
            ops.retain(|op| !matches!(op, DirOp::MkDir(d) if d == path));
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.begin(true)?;
        if parent(from) != parent(to) {
            return Err(io::Error::other("SimFs renames only within one directory"));
        }
        let ino = st.live.remove(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_path_buf(), ino);
        st.dir_ops
            .entry(parent(to))
            .or_default()
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf(), ino));
        Ok(())
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        // Entry changes are metadata: a failed fsync leaves them pending.
        st.begin_sync()?;
        st.check_dir(path)?;
        let ops = st.dir_ops.remove(path).unwrap_or_default();
        for op in ops {
            match op {
                DirOp::Link(p, ino) => {
                    st.durable.insert(p, ino);
                }
                DirOp::Unlink(p) => {
                    st.durable.remove(&p);
                }
                DirOp::Rename(from, to, ino) => {
                    st.durable.remove(&from);
                    st.durable.insert(to, ino);
                }
                DirOp::MkDir(d) => {
                    st.durable_dirs.insert(d);
                }
            }
        }
        Ok(())
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut st = self.state.lock();
        st.begin(false)?;
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "lock is held"));
        }
        Ok(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
mod tests;
