//! SimFs: what survives a crash image, torn writes, failed fsyncs, faults and crashes.

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[test]
fn unsynced_file_and_entry_are_lost_synced_ones_kept() {
    let fs = SimFs::new();
    fs.create_dir_all(&p("/d")).unwrap();
    let f = fs.open(&p("/d/a"), true).unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    let lost = fs.crash_image(CrashImage::DropAll);
    assert!(
        !lost.exists(&p("/d/a")).unwrap(),
        "entry survived without a dir sync"
    );
    f.sync_data().unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    f.write_all_at(b"HELLO world", 0).unwrap();
    let img = fs.crash_image(CrashImage::DropAll);
    assert_eq!(img.read_file(&p("/d/a")).unwrap(), b"hello");
    let img = fs.crash_image(CrashImage::KeepAll);
    assert_eq!(img.read_file(&p("/d/a")).unwrap(), b"HELLO world");
}

/// A new directory is durable once its parent is synced: before, a crash loses it
/// with everything in it, synced or not (as on a real file system, where its entry
/// is metadata of its parent).
#[test]
fn a_new_directory_needs_its_parent_synced() {
    let fs = SimFs::new();
    fs.create_dir_all(&p("/d/topic-0")).unwrap();
    let f = fs.open(&p("/d/topic-0/a"), true).unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(&p("/d/topic-0")).unwrap();
    let lost = fs.crash_image(CrashImage::DropAll);
    assert!(
        !lost.exists(&p("/d/topic-0")).unwrap(),
        "its parent was never synced"
    );
    assert!(
        !lost.exists(&p("/d/topic-0/a")).unwrap(),
        "a file without its directory"
    );
    assert!(
        lost.exists(&p("/d")).unwrap(),
        "directly under `/`: durable when created"
    );
    fs.sync_dir(&p("/d")).unwrap();
    let kept = fs.crash_image(CrashImage::DropAll);
    assert_eq!(kept.read_file(&p("/d/topic-0/a")).unwrap(), b"hello");
    assert_eq!(kept.list_dir(&p("/d")).unwrap(), ["topic-0"]);
    // Removed again before any sync: no creation is left pending.
    fs.create_dir_all(&p("/d/gone")).unwrap();
    fs.remove_dir(&p("/d/gone")).unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    assert!(
        !fs.crash_image(CrashImage::KeepAll)
            .exists(&p("/d/gone"))
            .unwrap()
    );

    // Strict: a directory directly under `/` needs `/` synced as well.
    let strict = SimFs::new_strict_dirs();
    strict.create_dir_all(&p("/d")).unwrap();
    assert!(
        !strict
            .crash_image(CrashImage::DropAll)
            .exists(&p("/d"))
            .unwrap()
    );
    strict.sync_dir(&p("/")).unwrap();
    let kept = strict.crash_image(CrashImage::DropAll);
    assert!(kept.exists(&p("/d")).unwrap());
    kept.create_dir_all(&p("/e")).unwrap();
    assert!(
        !kept
            .crash_image(CrashImage::DropAll)
            .exists(&p("/e"))
            .unwrap(),
        "an image is strict too"
    );
}

#[test]
fn rename_is_atomic_in_images() {
    let fs = SimFs::new();
    fs.create_dir_all(&p("/d")).unwrap();
    let f = fs.open(&p("/d/x.tmp"), true).unwrap();
    f.write_all_at(b"new", 0).unwrap();
    f.sync_data().unwrap();
    fs.rename(&p("/d/x.tmp"), &p("/d/x")).unwrap();
    for seed in 0..50 {
        let img = fs.crash_image(CrashImage::Random(seed));
        let tmp = img.exists(&p("/d/x.tmp")).unwrap();
        let fin = img.exists(&p("/d/x")).unwrap();
        assert!(!(tmp && fin), "both names after a rename, seed {seed}");
        if fin {
            assert_eq!(img.read_file(&p("/d/x")).unwrap(), b"new");
        }
    }
}

#[test]
fn torn_writes_differ_from_both_sides_sometimes() {
    let fs = SimFs::new();
    fs.create_dir_all(&p("/d")).unwrap();
    let f = fs.open(&p("/d/a"), true).unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(&p("/d")).unwrap();
    f.write_all_at(&[7u8; 4096], 0).unwrap();
    let mut kinds = HashSet::new();
    for seed in 0..200 {
        let data = fs
            .crash_image(CrashImage::Random(seed))
            .read_file(&p("/d/a"))
            .unwrap();
        kinds.insert(if data.is_empty() {
            0
        } else if data == [7u8; 4096] {
            1
        } else {
            2
        });
    }
    assert_eq!(kinds.len(), 3, "expected dropped, kept and torn images");
}

/// Linux after a failed writeback: the pages are marked clean, so a retried fsync
/// succeeds, and what the failed one was to write is on the disk as far as the
/// device got before the error (all, nothing or torn), never more later.
#[test]
fn a_failed_fsync_fixes_its_writes_fate_and_a_retry_does_not_change_it() {
    let mut fates = HashSet::new();
    for extra_ops in 0..40 {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        let f = fs.open(&p("/d/a"), true).unwrap();
        for _ in 0..extra_ops {
            f.len().unwrap(); // moves the operation count, which seeds the fate
        }
        f.write_all_at(b"old!", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b"lost", 0).unwrap();
        fs.inject(Fault::Eio, fs.op_count() + 1, false);
        assert!(f.sync_data().is_err());
        assert_eq!(fs.failed_sync_count(), 1);
        f.write_all_at(b"new", 4).unwrap();
        f.sync_data().unwrap();
        assert_eq!(
            fs.read_file(&p("/d/a")).unwrap(),
            b"lostnew",
            "the live bytes"
        );
        let images: Vec<Vec<u8>> = [CrashImage::KeepAll, CrashImage::DropAll]
            .map(|mode| fs.crash_image(mode).read_file(&p("/d/a")).unwrap())
            .into();
        assert_eq!(images[0], images[1], "nothing of it is pending any more");
        assert_eq!(&images[0][4..], b"new");
        fates.insert(match &images[0][..4] {
            b"old!" => "not written",
            b"lost" => "written",
            _ => "torn",
        });
        // A size change is metadata: a later fsync commits it.
        f.set_len(2).unwrap();
        fs.inject(Fault::Eio, fs.op_count() + 1, false);
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
        let img = fs.crash_image(CrashImage::DropAll);
        assert_eq!(img.read_file(&p("/d/a")).unwrap().len(), 2, "cut");
    }
    assert_eq!(fates.len(), 3, "every fate seen: {fates:?}");
}

#[test]
fn faults_fire_once_or_persistently_and_crash_freezes() {
    let fs = SimFs::new();
    fs.create_dir_all(&p("/d")).unwrap();
    let f = fs.open(&p("/d/a"), true).unwrap();
    let next = fs.op_count() + 1;
    fs.inject(Fault::Enospc, next, false);
    assert_eq!(
        f.write_all_at(b"abcd", 0).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    f.write_all_at(b"abcd", 0).unwrap();
    fs.inject(Fault::Eio, fs.op_count() + 1, true);
    assert!(f.sync_data().is_err());
    assert!(f.len().is_err());
    fs.clear_faults();
    assert_eq!(f.len().unwrap(), 4);
    fs.crash_after(fs.mutating_op_count());
    assert!(f.write_all_at(b"x", 0).is_err());
    assert!(fs.has_crashed());
    assert!(f.len().is_err(), "everything fails after the crash");
}

#[test]
fn lock_is_exclusive_until_dropped() {
    let fs = SimFs::new();
    let l = fs.lock(&p("/d/.lock")).unwrap();
    assert_eq!(
        fs.lock(&p("/d/.lock")).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    drop(l);
    fs.lock(&p("/d/.lock")).unwrap();
}
