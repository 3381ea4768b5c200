//! Test kind 4 (ARCHITECTURE.md): crash after every file operation of a workload, with several crash
//! images per point, then reopen and check I1-I5.
mod common;

use common::*;
use streamlog::fs::{CrashImage, SimFs};

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
