//! `CachingFs` cases that need an operation to wait at an exact point (the other rules
//! are unit tests in `src/fs/cached.rs`).
mod common;

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use common::intercept::{Hooks, InterceptFs};
use streamlog::fs::{CachingFs, CrashImage, FileSystem, SimFs};

/// A sync that starts while a write is still running does not cover it: closing the
/// descriptor later (for the limit) syncs first.
#[test]
fn a_write_still_running_when_a_sync_starts_is_synced_before_closing() {
    let sim = SimFs::new();
    // 0: idle; 1: a write waits at the gate; 2: the gate is open for good.
    let gate = Arc::new((Mutex::new(0u8), Condvar::new()));
    let g = gate.clone();
    let hooks = Hooks {
        before_write: Box::new(move || {
            let (lock, cond) = &*g;
            let mut state = lock.lock().unwrap();
            if *state == 2 {
                return;
            }
            *state = 1;
            cond.notify_all();
            while *state != 2 {
                state = cond.wait(state).unwrap();
            }
        }),
        ..Hooks::default()
    };
    let fs = CachingFs::new(Arc::new(InterceptFs::new(sim.clone(), hooks)), 1);
    fs.create_dir_all(Path::new("d")).unwrap();
    let f = fs.open(Path::new("d/x"), true).unwrap();
    fs.sync_dir(Path::new("d")).unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| f.write_all_at(b"late", 0));
        let (lock, cond) = &*gate;
        let mut state = lock.lock().unwrap();
        while *state != 1 {
            state = cond.wait(state).unwrap();
        }
        drop(state);
        f.sync_data().unwrap(); // runs while the write waits
        *lock.lock().unwrap() = 2;
        cond.notify_all();
        writer.join().unwrap().unwrap();
    });
    // Two more files push `x` out of the cache of one.
    let _others: Vec<_> = ["y", "z"]
        .iter()
        .map(|n| fs.open(&Path::new("d").join(n), true).unwrap())
        .collect();
    assert_eq!(fs.open_files(), 1);
    let image = sim.crash_image(CrashImage::DropAll);
    assert_eq!(
        image.read_file(Path::new("d/x")).as_deref(),
        Some(&b"late"[..])
    );
}

/// `OsFs` views and reads that caller values would take past the file, or past the
/// largest offset, are errors: a view longer than the file was mapped whole and its
/// first read past the end raised SIGBUS; a durable read near `u64::MAX` overflowed.
#[test]
fn os_files_refuse_views_and_reads_past_their_ends() {
    use streamlog::fs::OsFs;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = OsFs.open(&path, true).unwrap();
    file.write_all_at(&[7u8; 100], 0).unwrap();
    // SAFETY (all three): nothing shrinks or rewrites the file while a view lives.
    let err = unsafe { file.map(4096) }.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert_eq!(&unsafe { file.map(100) }.unwrap()[..], &[7u8; 100][..]);
    // Also through the caching layer.
    let cached = CachingFs::new(Arc::new(OsFs), 4);
    let reopened = cached.open(&path, false).unwrap();
    let err = unsafe { reopened.map(101) }.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    let mut buf = [0u8; 3];
    match file.read_durable_at(&mut buf, u64::MAX - 1) {
        // Where the file system reads past the page cache: refused, not wrapped.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}"),
        // Where it cannot (tmpfs): no answer, as for any read.
        Ok(n) => assert_eq!(n, None),
    }
}
