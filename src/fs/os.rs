//! [`OsFs`]: the real file system.
#![allow(unsafe_code)] // the one module that memory-maps files; see the SAFETY comment

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{DirLock, File, FileSystem};

/// The file a directory is locked through on Windows (see `OsFs::lock`).
#[cfg(not(unix))]
pub(crate) const WINDOWS_DIR_LOCK: &str = ".lock";

/// Real files through `std::fs`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(fs::File);

#[cfg(unix)]
fn pread(f: &fs::File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, pos)
}
#[cfg(unix)]
fn pwrite_all(f: &fs::File, buf: &[u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, pos)
}
#[cfg(windows)]
fn pread(f: &fs::File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, pos)
}
#[cfg(windows)]
fn pwrite_all(f: &fs::File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        buf = &buf[n..];
        pos += n as u64;
    }
    Ok(())
}

/// `O_DIRECT` wants the buffer, position and length aligned to the device's logical
/// block size; 4 KiB covers every device.
#[cfg(target_os = "linux")]
const DIRECT_ALIGN: usize = 4096;

/// Fills the aligned `buf` from the `O_DIRECT` descriptor `direct` at the aligned `pos`;
/// how many bytes it read (fewer at the end of the file), or `None` if the file system
/// refused the read (EINVAL: no O_DIRECT after all).
#[cfg(target_os = "linux")]
fn direct_read(direct: &fs::File, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
    let mut done = 0;
    while done < buf.len() {
        match pread(direct, &mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            // A short read is the end of the file (the rest would be unaligned).
            Ok(n) if n % DIRECT_ALIGN != 0 => {
                done += n;
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(done))
}

impl File for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        loop {
            match pread(&self.0, buf, pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        pwrite_all(&self.0, buf, pos)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        let modified = self.0.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
    fn set_modified_ms(&self, ms: i64) -> io::Result<()> {
        let Ok(ms) = u64::try_from(ms) else {
            return Ok(()); // before the epoch: not a time this file ever had
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        self.0.set_modified(at)
    }
    #[cfg(target_os = "linux")]
    fn read_durable_at(&self, buf: &mut [u8], pos: u64) -> io::Result<Option<usize>> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = format!("/proc/self/fd/{}", self.0.as_raw_fd());
        let direct = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => f,
            // No O_DIRECT on this file system (tmpfs, ..), or no /proc.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                tracing::debug!("no O_DIRECT read: {e}");
                return Ok(None);
            }
            // Anything else (EMFILE, ..) is no answer either way: the caller fails.
            Err(e) => return Err(e),
        };
        let aligned = |at: usize| at.is_multiple_of(DIRECT_ALIGN);
        if aligned(buf.as_ptr() as usize) && aligned(buf.len()) && aligned(pos as usize) {
            return direct_read(&direct, buf, pos);
        }
        // Through an aligned bounce buffer covering the pages around the range.
        let align = DIRECT_ALIGN as u64;
        let start = pos / align * align;
        let end = pos
            .checked_add(buf.len() as u64)
            .and_then(|e| e.div_ceil(align).checked_mul(align))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a read past the largest offset",
                )
            })?;
        let span = usize::try_from(end - start).map_err(io::Error::other)?;
        let mut raw = vec![0u8; span + DIRECT_ALIGN];
        let skip = raw.as_ptr().align_offset(DIRECT_ALIGN);
        let bounce = &mut raw[skip..skip + span];
        let Some(done) = direct_read(&direct, bounce, start)? else {
            return Ok(None);
        };
        let from = ((pos - start) as usize).min(done);
        let to = (from + buf.len()).min(done);
        buf[..to - from].copy_from_slice(&bounce[from..to]);
        Ok(Some(to - from))
    }
    #[cfg(unix)]
    fn identity(&self) -> io::Result<Option<(u64, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let m = self.0.metadata()?;
        Ok(Some((m.dev(), m.ino())))
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    unsafe fn map(&self, len: u64) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        // A view past the end would raise SIGBUS where it is read.
        let size = self.0.metadata()?.len();
        if len > size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a view of {len} bytes of a file of {size}"),
            ));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        // SAFETY: the mapping is read-only and covers [0, len), which the caller (the log)
        // guarantees lies inside the file and is never shrunk or rewritten while any view
        // of it is alive (this function's contract): sealed segments are immutable;
        // truncation and compaction write new files and rename them into place; retention
        // unlinks files, which keeps live mappings valid. Another process shortening the
        // files of an open store is outside it (the README says so).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.0)? };
        Ok(Bytes::from_owner(map))
    }
    #[cfg(unix)]
    unsafe fn map_live(&self, len: u64) -> io::Result<Option<Bytes>> {
        if len == 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        // SAFETY: a shared read-only mapping, so it shows later `pwrite`s (one page cache;
        // unix only: elsewhere a mapping may not extend past the end of the file). It may
        // extend past the end; the log only reads below the size it has published, and
        // the file never shrinks below a published size: the active segment only grows
        // (a failed write is undone down to the published size, never below; recovery
        // cuts a torn tail past what it publishes), truncation writes a new file and
        // renames it into place, and retention unlinks. Touching a page wholly past the
        // end would raise SIGBUS; no read goes there.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.0)? };
        Ok(Some(Bytes::from_owner(map)))
    }
}

#[derive(Debug)]
struct OsLock {
    _file: fs::File,
    /// Device and inode of the locked file, while this process holds it.
    id: Option<(u64, u64)>,
}
impl DirLock for OsLock {}

impl Drop for OsLock {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut held = HELD.lock();
            if let Some(at) = held.iter().position(|h| *h == id) {
                held.swap_remove(at);
            }
        }
    }
}

/// The files this process holds locked, by device and inode: a second open within
/// the process is refused naming this process without asking the system, whose list
/// of locks is not read atomically (see `lock_holder`).
static HELD: parking_lot::Mutex<Vec<(u64, u64)>> = parking_lot::Mutex::new(Vec::new());

fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl FileSystem for OsFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn File>> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(OsFile(f)))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn File>> {
        Ok(Arc::new(OsFile(fs::File::open(path)?)))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            // A name that is not UTF-8 is never one of the store's, but it must be
            // seen: a directory holding it is not the store's alone (and is not
            // removed as if it were). Its lossy form names no file of the store.
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn is_symlink(&self, path: &Path) -> io::Result<bool> {
        Ok(fs::symlink_metadata(path)?.file_type().is_symlink())
    }
    fn canonicalize(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        fs::canonicalize(path).map(Some)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            let path = if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                path
            };
            fs::File::open(path)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(())
        }
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        // A directory is locked through a read-only descriptor of itself (`flock` works
        // on any descriptor); a file is created if missing.
        let lock_file = |path: &Path| {
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        };
        #[cfg(unix)]
        let f = if path.is_dir() {
            fs::File::open(path)?
        } else {
            lock_file(path)?
        };
        // Windows opens no directory as a file (nor locks one): a directory's lock is
        // the file `.lock` in it, a name the store and a partition directory keep for
        // a lock (see `take_dir_lock`).
        #[cfg(not(unix))]
        let f = if path.is_dir() {
            lock_file(&path.join(WINDOWS_DIR_LOCK))?
        } else {
            lock_file(path)?
        };
        // A lock released just now may still be held a moment: a process that forked
        // while the holder had it open keeps a copy of the descriptor until it execs
        // (descriptors close on exec), so a store closed by one process and opened by
        // another right after could be refused. Held for 100 ms, it is someone's.
        let started = std::time::Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => {
                    let id = f.metadata().ok().as_ref().and_then(file_id);
                    if let Some(id) = id {
                        HELD.lock().push(id);
                    }
                    return Ok(Box::new(OsLock { _file: f, id }));
                }
                Err(fs::TryLockError::WouldBlock)
                    if started.elapsed() < std::time::Duration::from_millis(100) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(io::ErrorKind::WouldBlock, "lock is held"));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
    fn lock_holder(&self, path: &Path) -> Option<u32> {
        let meta = fs::metadata(path).ok()?;
        if file_id(&meta).is_some_and(|id| HELD.lock().contains(&id)) {
            return Some(std::process::id());
        }
        other_lock_holder(&meta)
    }
}

/// The process holding a lock on the file `meta` describes, from `/proc/locks`.
#[cfg(target_os = "linux")]
fn other_lock_holder(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let dev = meta.dev();
    // glibc's gnu_dev_major/minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    // Lines read `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`: the pid, then
    // major:minor:inode (hex, hex, decimal) of the locked file.
    let find = |locks: &str| {
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "FLOCK")?;
            let pid = fields.get(at + 3)?.parse().ok()?;
            (*fields.get(at + 4)? == id).then_some(pid)
        })
    };
    // The kernel lists the locks a page at a time, each page from the list as it is
    // then: a lock taken or released by someone else between two pages shifts the
    // list, and one line can be missed. Read it again before naming no one.
    (0..3).find_map(|_| find(&fs::read_to_string("/proc/locks").ok()?))
}

#[cfg(not(target_os = "linux"))]
fn other_lock_holder(_: &fs::Metadata) -> Option<u32> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The empty path is the working directory (the parent of a relative path's first
    /// directory), synced as any other.
    #[test]
    fn the_empty_path_syncs_the_working_directory() {
        OsFs.sync_dir(Path::new("")).unwrap();
    }

    /// The system's list of locks names the process holding one (here this one,
    /// which `lock_holder` answers without asking the system).
    #[test]
    fn the_system_names_a_lock_holder() {
        let dir = tempfile::tempdir().unwrap();
        let meta = fs::metadata(dir.path()).unwrap();
        assert_eq!(other_lock_holder(&meta), None);
        let lock = OsFs.lock(dir.path()).unwrap();
        assert_eq!(other_lock_holder(&meta), Some(std::process::id()));
        assert_eq!(OsFs.lock_holder(dir.path()), Some(std::process::id()));
        drop(lock);
        assert_eq!(OsFs.lock_holder(dir.path()), None);
    }

    /// What O_DIRECT reads of a synced file is what was written, at any position and
    /// length (aligned or not, past the end cut short); `None` only where the file
    /// system has no O_DIRECT.
    #[test]
    fn read_durable_at_reads_what_the_disk_holds() {
        let dir = tempfile::tempdir().unwrap();
        let f = OsFs.open(&dir.path().join("a"), true).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        f.sync_data().unwrap();
        // An aligned buffer, for the reads that need no bounce buffer.
        let mut raw = vec![0u8; 20_480];
        let skip = raw.as_ptr().align_offset(4096);
        let aligned = &mut raw[skip..skip + 16_384];
        for (pos, len) in [(0, 10_000), (1, 3), (4095, 2), (4096, 4096), (9_000, 5_000)] {
            let mut buf = vec![0u8; len];
            let Some(n) = f.read_durable_at(&mut buf, pos as u64).unwrap() else {
                return; // no O_DIRECT here
            };
            let end = (pos + len).min(data.len());
            assert_eq!(&buf[..n], &data[pos..end], "at {pos}, {len} bytes");
            if pos % 4096 == 0 && len % 4096 == 0 {
                let got = &mut aligned[..len];
                let n = f.read_durable_at(got, pos as u64).unwrap().unwrap();
                assert_eq!(&got[..n], &data[pos..end], "aligned, at {pos}, {len} bytes");
            }
        }
        let n = f
            .read_durable_at(&mut aligned[..8192], 8192)
            .unwrap()
            .unwrap();
        assert_eq!(
            &aligned[..n],
            &data[8192..],
            "aligned, to the end of the file"
        );
        assert_eq!(f.read_durable_at(&mut [0; 10], 20_000).unwrap().unwrap(), 0);
    }
}
