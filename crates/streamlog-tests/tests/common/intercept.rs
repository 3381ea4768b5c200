//! [`InterceptFs`]: SimFs with hooks before its operations, for tests that need an
//! operation to wait or fail at an exact point, or to see which thread did what.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use streamlog::fs::{DirLock, File, FileSystem, SimFs};

/// A file-system operation, as [`Hooks::before_op`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    // On a file (the path it was opened at).
    Open,
    Len,
    Read,
    Write,
    SetLen,
    Sync,
    Map,
    Identity,
    // On a path.
    CreateDirAll,
    CreateDir,
    ListDir,
    Exists,
    RemoveFile,
    RemoveDir,
    /// Given the destination (the name the rename replaces or creates).
    Rename,
    SyncDir,
    Lock,
}

type OpHook = Box<dyn Fn(Op, &Path) + Send + Sync>;
type OpenHook = Box<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;
type FileHook = Box<dyn Fn() + Send + Sync>;
type SyncHook = Box<dyn Fn(&Path) + Send + Sync>;
type MapHook = Box<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;
type ReadHook = Box<dyn Fn(&Path, usize) + Send + Sync>;

/// What runs before an operation: `before_op` before every operation (on the thread
/// doing it); then `before_open` (its error fails the open), and, in every file,
/// `before_write`, `before_sync` and `before_map` (given the path the file was opened
/// at; its error fails the mapping).
pub struct Hooks {
    pub before_op: OpHook,
    pub before_open: OpenHook,
    pub before_write: FileHook,
    pub before_sync: SyncHook,
    pub before_map: MapHook,
    /// Before a read of up to `len` bytes of the file at `path`.
    pub before_read: ReadHook,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            before_op: Box::new(|_, _| {}),
            before_open: Box::new(|_| Ok(())),
            before_write: Box::new(|| {}),
            before_sync: Box::new(|_| {}),
            before_map: Box::new(|_| Ok(())),
            before_read: Box::new(|_, _| {}),
        }
    }
}

/// SimFs with [`Hooks`].
#[derive(Clone)]
pub struct InterceptFs {
    pub inner: SimFs,
    hooks: Arc<Hooks>,
}

impl InterceptFs {
    pub fn new(inner: SimFs, hooks: Hooks) -> Self {
        InterceptFs {
            inner,
            hooks: Arc::new(hooks),
        }
    }

    fn op(&self, op: Op, path: &Path) {
        (self.hooks.before_op)(op, path);
    }
}

impl std::fmt::Debug for InterceptFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterceptFs")
    }
}

#[derive(Debug)]
struct InterceptFile {
    inner: Arc<dyn File>,
    fs: InterceptFs,
    path: std::path::PathBuf,
}

impl File for InterceptFile {
    fn len(&self) -> io::Result<u64> {
        self.fs.op(Op::Len, &self.path);
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.fs.op(Op::Read, &self.path);
        (self.fs.hooks.before_read)(&self.path, buf.len());
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.fs.op(Op::Write, &self.path);
        (self.fs.hooks.before_write)();
        self.inner.write_all_at(buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.op(Op::SetLen, &self.path);
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.fs.op(Op::Sync, &self.path);
        (self.fs.hooks.before_sync)(&self.path);
        self.inner.sync_data()
    }
    unsafe fn map(&self, len: u64) -> io::Result<Bytes> {
        self.fs.op(Op::Map, &self.path);
        (self.fs.hooks.before_map)(&self.path)?;
        // SAFETY: this function's contract, passed on.
        unsafe { self.inner.map(len) }
    }
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        self.fs.op(Op::Identity, &self.path);
        self.inner.identity()
    }
    fn read_durable_at(&self, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
        self.fs.op(Op::Read, &self.path);
        self.inner.read_durable_at(buf, pos)
    }
}

impl FileSystem for InterceptFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        self.op(Op::Open, path);
        (self.hooks.before_open)(path)?;
        Ok(Arc::new(InterceptFile {
            inner: self.inner.open(path, create)?,
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.op(Op::CreateDirAll, path);
        self.inner.create_dir_all(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.op(Op::CreateDir, path);
        self.inner.create_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.op(Op::ListDir, path);
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.op(Op::Exists, path);
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.op(Op::RemoveFile, path);
        self.inner.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.op(Op::RemoveDir, path);
        self.inner.remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op(Op::Rename, to);
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.op(Op::SyncDir, path);
        self.inner.sync_dir(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        self.op(Op::Lock, path);
        self.inner.lock(path)
    }
}
