//! Test kind 4 (ARCHITECTURE.md): crash after every file operation of a workload, with several crash
//! images per point, then reopen and check I1-I5.
mod common;

use common::*;
use streamlog::fs::{CrashImage, Fault, SimFs};

const RANDOM_IMAGES: u64 = 4;

#[test]
fn recovery_after_a_crash_at_every_operation_keeps_every_flushed_record() {
    sweep(None);
}

/// The same with the log's files behind a cache of two descriptors, so files are closed
/// (synced first when dirty) and reopened throughout, recovery included.
#[test]
fn the_same_with_two_open_files_at_most() {
    sweep(Some(2));
}

fn sweep(max_open: Option<usize>) {
    let clean = SimFs::new();
    let full = workload_limited(&clean, max_open);
    assert!(
        full.closed_cleanly,
        "the workload must succeed without faults"
    );
    let ops = clean.mutating_op_count();
    assert!(ops > 100, "workload too small: {ops} operations");
    let mut images = 0u64;
    let mut truncations = 0u64;
    for k in 0..=ops {
        let fs = SimFs::new();
        fs.crash_after(k);
        let obs = workload_limited(&fs, max_open);
        let modes = [CrashImage::KeepAll, CrashImage::DropAll]
            .into_iter()
            .chain((0..RANDOM_IMAGES).map(|s| CrashImage::Random(k * 1000 + s)));
        for mode in modes {
            images += 1;
            let img = fs.crash_image(mode);
            let log = open_sim_limited(&img, small_config(), max_open).unwrap_or_else(|e| {
                panic!("crash after op {k}, image {mode:?}: reopen failed: {e}")
            });
            if log.recovery_report().truncation.is_some() {
                truncations += 1;
            }
            if let Err(v) = check_invariants(&log, &obs) {
                panic!(
                    "crash after op {k}, image {mode:?}: {v}\nreport: {:?}",
                    log.recovery_report()
                );
            }
            let end = log.log_end_offset();
            let first = read_all(&log).unwrap();
            // I5: crash right after recovery, recover again: the same log.
            std::mem::forget(log); // a crash: no close, no flush
            let again_img = img.crash_image(CrashImage::DropAll);
            let again = open_sim_limited(&again_img, small_config(), max_open)
                .unwrap_or_else(|e| panic!("op {k}, {mode:?}: second recovery failed: {e}"));
            assert_eq!(
                again.log_end_offset(),
                end,
                "op {k}, {mode:?}: I5 end offset"
            );
            assert_eq!(
                read_all(&again).unwrap(),
                first,
                "op {k}, {mode:?}: I5 records"
            );
            assert!(
                again.recovery_report().truncation.is_none(),
                "op {k}, {mode:?}: second recovery truncated again"
            );
        }
    }
    println!(
        "crash test (max open {max_open:?}): {} crash points x {} images = {images} recoveries; {truncations} torn tails truncated; 0 violations",
        ops + 1,
        2 + RANDOM_IMAGES
    );
    assert!(
        truncations > 0,
        "no crash image ever produced a torn tail: the test is not exercising recovery"
    );
}

/// I5, "also after a crash or an I/O error during recovery itself": from crash images of
/// the workload that need a recovery (a torn tail, unsynced segments), the recovery is
/// cut by a power cut after each of its file operations in turn, or failed by an EIO at
/// each; the open after that must reach the log an uninterrupted recovery reaches.
#[test]
fn a_recovery_interrupted_at_every_operation_reaches_the_same_log() {
    let clean = SimFs::new();
    workload(&clean);
    let ops = clean.mutating_op_count();
    let (mut cuts, mut errors, mut images) = (0u64, 0u64, 0u64);
    for k in 0..=ops {
        let fs = SimFs::new();
        fs.crash_after(k);
        let obs = workload(&fs);
        for mode in [CrashImage::DropAll, CrashImage::Random(k)] {
            let img = fs.crash_image(mode);
            // What an uninterrupted recovery reaches (on a copy of the image), and how
            // many file operations it takes.
            let probe = img.crash_image(CrashImage::KeepAll);
            let log = open_sim(&probe, small_config())
                .unwrap_or_else(|e| panic!("crash after op {k}, {mode:?}: reopen failed: {e}"));
            let (writes, all) = (probe.mutating_op_count(), probe.op_count());
            let want = (log.log_end_offset(), read_all(&log).unwrap());
            check_invariants(&log, &obs).unwrap_or_else(|v| panic!("op {k}, {mode:?}: {v}"));
            std::mem::forget(log);
            if writes == 0 {
                continue; // nothing to interrupt
            }
            images += 1;
            let interruptions = (0..writes)
                .map(|j| (j, false))
                .chain((0..all).map(|j| (j, true)));
            for (j, eio) in interruptions {
                let disk = img.crash_image(CrashImage::KeepAll);
                if eio {
                    disk.inject(Fault::Eio, j + 1, false);
                } else {
                    disk.crash_after(j);
                }
                match open_sim(&disk, small_config()) {
                    // Dead processes run nothing more, not even their close.
                    Ok(log) => std::mem::forget(log),
                    Err(_) if eio => errors += 1,
                    Err(_) => cuts += 1,
                }
                disk.clear_faults();
                disk.process_crash();
                let next = if eio {
                    disk
                } else {
                    disk.crash_image(CrashImage::Random(k * 1000 + j))
                };
                let log = open_sim(&next, small_config()).unwrap_or_else(|e| {
                    panic!("op {k}, {mode:?}, recovery interrupted at {j} (EIO {eio}): {e}")
                });
                assert_eq!(
                    (log.log_end_offset(), read_all(&log).unwrap()),
                    want,
                    "op {k}, {mode:?}, recovery interrupted at {j} (EIO {eio}): I5"
                );
                std::mem::forget(log);
            }
        }
    }
    println!(
        "{images} recoveries, each interrupted at every operation: {cuts} power cuts and {errors} I/O errors mid-recovery; 0 violations"
    );
    assert!(cuts > 100 && errors > 100, "cuts {cuts}, errors {errors}");
}

/// A power cut at any operation of the first flush after a roll: the next open trusts
/// its recovery point, so it scans the segments written since the flush before only,
/// never the whole log. The
/// flush moved the recovery point to the new segment before it recorded the durable
/// position; a cut between the two left the recovery point past the recorded position,
/// and the open, distrusting it, scanned every segment (and took acknowledged bytes of
/// two segments for a tail it may cut).
#[test]
fn a_crash_in_the_flush_after_a_roll_leaves_a_trusted_recovery_point() {
    let run = |fs: &SimFs| -> streamlog::Result<()> {
        let log = open_sim(fs, small_config())?;
        for tag in 0..40 {
            log.append(&mut batch(tag, 3, streamlog::Compression::None))?;
        }
        log.flush()?;
        // More in the segment, unflushed, then the roll: the new segment starts past
        // the recorded durable position.
        log.append(&mut batch(40, 3, streamlog::Compression::None))?;
        log.roll()?;
        log.append(&mut batch(41, 3, streamlog::Compression::None))?;
        log.flush()?;
        std::mem::forget(log);
        Ok(())
    };
    let clean = SimFs::new();
    run(&clean).unwrap();
    let segments = open_sim(&clean.crash_image(CrashImage::KeepAll), small_config())
        .unwrap()
        .segments()
        .len();
    assert!(segments > 6, "{segments} segments");
    let total = clean.mutating_op_count();
    // The operations of the last flush: from its start to the end.
    let start = {
        let fs = SimFs::new();
        let log = open_sim(&fs, small_config()).unwrap();
        for tag in 0..40 {
            log.append(&mut batch(tag, 3, streamlog::Compression::None))
                .unwrap();
        }
        log.flush().unwrap();
        log.append(&mut batch(40, 3, streamlog::Compression::None))
            .unwrap();
        log.roll().unwrap();
        log.append(&mut batch(41, 3, streamlog::Compression::None))
            .unwrap();
        fs.mutating_op_count()
    };
    for k in start..=total {
        let fs = SimFs::new();
        fs.crash_after(k);
        let _ = run(&fs);
        for mode in [CrashImage::KeepAll, CrashImage::DropAll] {
            let log = open_sim(&fs.crash_image(mode), small_config()).unwrap();
            let report = log.recovery_report();
            // From the segment before the roll on (it rolled on its own meanwhile).
            assert!(
                report.segments_scanned < segments,
                "crash after op {k}, {mode:?}: scanned {} of {segments} segments",
                report.segments_scanned
            );
        }
    }
}
