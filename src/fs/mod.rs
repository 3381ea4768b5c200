//! The storage seam: every disk access of the log goes through [`FileSystem`] and
//! [`File`].
//!
//! - [`OsFs`]: real files (`pread`/`pwrite`, `fdatasync`, directory fsync, `flock`-style
//!   lock files, read-only mmap of segments).
//! - [`SimFs`]: an in-memory file system for tests that tracks what was synced. It can
//!   produce crash images (each unsynced write kept, dropped or torn; directory changes
//!   lost unless the directory was synced) and inject EIO/ENOSPC at the k-th operation.

mod cached;
mod os;
mod sim;
mod stats;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use cached::{CachingFs, default_max_open_files};
pub use os::OsFs;
pub use sim::{CrashImage, Fault, SimFs};
pub use stats::LatencyHistogram;

/// An open file. Positions are absolute; there is no cursor, so a handle is shared
/// between threads.
#[allow(clippy::len_without_is_empty)] // a file length is an I/O result, not a collection size
pub trait File: Send + Sync + Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at EOF).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it back) durable:
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of `[0, len)`: memory-mapped where the file system supports it,
    /// otherwise a copy. `UnexpectedEof` if the file is shorter than `len`.
    ///
    /// # Safety
    /// While the view (or any slice of it) lives, nothing may shrink the file below
    /// `len` or overwrite that range, in this process or another: a mapped page past
    /// the end of a file raises SIGBUS when read, and rewritten bytes would change
    /// under a `&[u8]`. Safe code cannot call it:
    ///
    /// ```compile_fail,E0133
    /// use streamlog::fs::{File, FileSystem, OsFs};
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = OsFs.open(&dir.path().join("f"), true).unwrap();
    /// let _view = file.map(0);
    /// ```
    #[allow(unsafe_code)]
    unsafe fn map(&self, len: u64) -> io::Result<Bytes>;
    /// A read-only view of `[0, len)` of a file that is still being appended to: it
    /// shows bytes written after it was made, and `len` may exceed the current length.
    /// `None` where the file system cannot (the caller then reads with
    /// [`read_at`](Self::read_at)).
    ///
    /// # Safety
    /// While the view (or any slice of it) lives, only bytes below the file's length
    /// may be read through it (bytes past it change as the file grows), nothing may
    /// shrink the file below what was read, and nothing may overwrite what may have
    /// been read (see [`map`](Self::map)).
    #[allow(unsafe_code)]
    unsafe fn map_live(&self, len: u64) -> io::Result<Option<Bytes>> {
        let _ = len;
        Ok(None)
    }

    /// When the file's data last changed (ms since the Unix epoch), where the file system
    /// keeps it: retention's age of a segment whose records carry no timestamps, as
    /// Kafka's `lastModified`.
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        Ok(None)
    }

    /// Sets the modification time [`modified_ms`](Self::modified_ms) reads: a segment
    /// rewritten by compaction keeps the age of the segments it replaces (Kafka's
    /// cleaner does the same), else retention would count it as written now. A no-op
    /// where the file system keeps no times. Not made durable by itself.
    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        let _ = ms;
        Ok(())
    }

    /// What identifies the file itself (device and inode on unix), not its name: a file
    /// reopened by path is checked against it, so a name that now refers to another file
    /// is never read as this one. `None` where the file system cannot tell.
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(None)
    }

    /// Reads into `buf` what the disk itself holds at `pos` (the file's dirty pages
    /// written back first), past the page cache (`O_DIRECT` on Linux), and returns how
    /// many bytes it read: all of `buf` but at the end of the file. After a failed fsync,
    /// Linux marks the pages it could not write clean, so reads return data the disk
    /// lacks and no later fsync writes it; recovery compares the two to find it. `None`
    /// where the file system cannot tell. Fastest with `buf` and `pos` aligned to 4 KiB
    /// (no bounce buffer).
    fn read_durable_at(&self, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
        let _ = (buf, pos);
        Ok(None)
    }

    /// A hint that the file will not be used for a while: a file system that reopens
    /// files by path at their next use (a [`CachingFs`]) closes the descriptor now, if
    /// nothing written through it is unsynced and it can tell the file's identity. The
    /// default does nothing.
    fn release_descriptor(&self) {}

    /// The file's name was removed ([`FileSystem::remove_file_in_use`]) or replaced by a
    /// rename, and no reader will use this handle again: a file system that keeps such
    /// a file open for its readers ([`CachingFs`]) closes it for good. The default does
    /// nothing.
    fn forget_descriptor(&self) {}

    /// Reads exactly `len` bytes at `pos` into a new buffer.
    fn read_exact_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.read_exact_into(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    }

    /// Fills `buf` with the bytes at `pos`.
    fn read_exact_into(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], pos + done as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ended early",
                ));
            }
            done += n;
        }
        Ok(())
    }
}

/// Creates `path` and any missing ancestors, then fsyncs the parent of every directory
/// that was created and the parent of `path` itself, so the directory survives power
/// loss even if an earlier process created it and crashed before syncing.
pub(crate) fn create_dir_durable(fs: &dyn FileSystem, path: &Path) -> io::Result<()> {
    let mut created = Vec::new();
    let mut p = path;
    while !fs.exists(p)? {
        created.push(p.to_path_buf());
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q,
            _ => break,
        }
    }
    fs.create_dir_all(path)?;
    if created.is_empty() {
        created.push(path.to_path_buf());
    }
    // A relative path's first directory has the empty path as its parent: the working
    // directory, which holds its entry and is synced as any other parent.
    for dir in created.iter().rev() {
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Takes the exclusive lock on `path` (a directory: the lock is on the directory
/// itself, which cannot be deleted while it is held open): `Error::Locked` naming the
/// holder if another writer has it.
pub(crate) fn take_lock(fs: &dyn FileSystem, path: &Path) -> crate::Result<Box<dyn DirLock>> {
    fs.lock(path).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            crate::Error::Locked {
                path: path.to_path_buf(),
                holder: fs.lock_holder(path),
            }
        } else {
            crate::Error::io(format!("lock {}", path.display()), e)
        }
    })
}

/// Takes the lock on directory `dir`, and also on `dir/<legacy_file>` if that exists:
/// the lock file earlier versions took, so that one of them writing the same directory
/// is refused too (and refuses us).
pub(crate) fn take_dir_lock(
    fs: &dyn FileSystem,
    dir: &Path,
    legacy_file: &str,
) -> crate::Result<Vec<Box<dyn DirLock>>> {
    let mut locks = vec![take_lock(fs, dir)?];
    let legacy = dir.join(legacy_file);
    // On Windows `OsFs` locks a directory through that very file (`.lock`): a second
    // handle's lock of it would conflict with the first.
    if cfg!(unix)
        && fs
            .exists(&legacy)
            .map_err(|e| crate::Error::io(format!("stat {}", legacy.display()), e))?
    {
        locks.push(take_lock(fs, &legacy)?);
    }
    Ok(locks)
}

/// A held lock on a lock file; released on drop.
pub trait DirLock: Send + Sync + Debug {}

/// A file system: the operations the log needs, and nothing more.
pub trait FileSystem: Send + Sync + Debug {
    /// Opens a file for reading and writing, creating it (empty) if `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>>;
    /// Opens an existing file for reading only: what a check of files it must not
    /// change uses, so that it works on a read-only mount or another user's files.
    /// Callers must not write through it (on [`OsFs`] writes fail). By default
    /// [`open`](Self::open) without creating.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        self.open(path, false)
    }
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates one directory, whose parent exists; fails with
    /// `ErrorKind::AlreadyExists` if `path` exists (as `mkdir(2)`): what the store
    /// creates as its own must not be something that appeared there meanwhile. By
    /// default a check, then [`create_dir_all`](Self::create_dir_all) (not atomic:
    /// file systems with other writers override it).
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        if self.exists(path)? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        self.create_dir_all(path)
    }
    /// Names of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` itself is a symbolic link (not followed). False where the file
    /// system has none.
    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        let _ = path;
        Ok(false)
    }
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a file that handles open on it may still read, as POSIX keeps an
    /// unlinked file's data for its open descriptors: a file system that closes idle
    /// descriptors ([`CachingFs`]) reopens it first and keeps it open, so those reads
    /// go on, until [`File::forget_descriptor`] says they are done.
    fn remove_file_in_use(&self, path: &Path) -> io::Result<()> {
        self.remove_file(path)
    }
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, removals, renames) durable; the empty
    /// path is the working directory.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path`: a directory, or a file (created if missing);
    /// fails with `ErrorKind::WouldBlock` if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
    /// The process holding the lock on `path`, where the system tells.
    fn lock_holder(&self, path: &Path) -> Option<u32> {
        let _ = path;
        None
    }
    /// The absolute path of an existing `path`, every symbolic link and `..` resolved,
    /// where the file system tells (`None` otherwise).
    fn canonicalize(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        let _ = path;
        Ok(None)
    }
}
