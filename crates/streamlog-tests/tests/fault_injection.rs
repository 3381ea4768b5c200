//! Test kind 5 (ARCHITECTURE.md): EIO and ENOSPC at every operation, once and persistently. Every
//! call returns Ok or a typed error (never a panic); the log stays readable; after the
//! fault clears, reopening finds every flushed record (I1-I4).
mod common;

use common::*;
use streamlog::Error;
use streamlog::format::Compression;
use streamlog::fs::{CrashImage, Fault, SimFs};

/// Whether a flush failed at a segment's fsync, not at the durable position's record
/// or the recovery point (which are written once the segments are synced: they leave
/// no data at risk, so no poison marker and nothing written again at the next open).
fn data_fsync_failed(e: &Error) -> bool {
    let e = e.to_string();
    !e.contains("streamlog.durable") && !e.contains("recovery-point-offset-checkpoint")
}

fn run(kind: Fault, persistent: bool) -> (u64, u64) {
    run_limited(kind, persistent, None)
}

fn run_limited(kind: Fault, persistent: bool, max_open: Option<usize>) -> (u64, u64) {
    let clean = SimFs::new();
    workload_limited(&clean, max_open);
    let total = clean.op_count();
    let mut failed_runs = 0;
    for k in 1..=total {
        let fs = SimFs::new();
        fs.inject(kind, k, persistent);
        let obs = workload_limited(&fs, max_open);
        if !obs.closed_cleanly {
            failed_runs += 1;
        }
        fs.clear_faults();
        // A power cut right now, keeping every unsynced change or none, reopens.
        for img in [
            fs.crash_image(CrashImage::KeepAll),
            fs.crash_image(CrashImage::DropAll),
        ] {
            let log = open_sim_limited(&img, small_config(), max_open).unwrap_or_else(|e| {
                panic!("{kind:?} at op {k} (persistent {persistent}): reopen failed: {e}")
            });
            if let Err(v) = check_invariants(&log, &obs) {
                panic!("{kind:?} at op {k} (persistent {persistent}): {v}");
            }
        }
        // So does the live state (the machine survived, the process may not have: after
        // a failed fsync, reads may return what the disk lacks), and what that open
        // recovered then survives a power cut.
        fs.process_crash();
        let log = open_sim_limited(&fs, small_config(), max_open).unwrap_or_else(|e| {
            panic!("{kind:?} at op {k} (persistent {persistent}): live reopen failed: {e}")
        });
        if let Err(v) = check_invariants(&log, &obs) {
            panic!("{kind:?} at op {k} (persistent {persistent}): live: {v}");
        }
        let recovered = read_all(&log).unwrap();
        std::mem::forget(log);
        let img = fs.crash_image(CrashImage::DropAll);
        let log = open_sim_limited(&img, small_config(), max_open).unwrap_or_else(|e| {
            panic!("{kind:?} at op {k} (persistent {persistent}): reopen after the live one: {e}")
        });
        assert_eq!(
            read_all(&log).unwrap(),
            recovered,
            "{kind:?} at op {k} (persistent {persistent}): what the live open recovered"
        );
    }
    (total, failed_runs)
}

#[test]
fn eio_once_at_every_operation() {
    let (ops, failed) = run(Fault::Eio, false);
    println!("EIO once: {ops} operations, {failed} runs saw an error, 0 violations");
    assert!(
        failed > ops / 2,
        "most injected faults must surface as errors"
    );
}

/// With the log's files behind a cache of two descriptors: the faults also hit the
/// syncs and reopens the cache makes.
#[test]
fn eio_once_at_every_operation_with_two_open_files_at_most() {
    let (ops, failed) = run_limited(Fault::Eio, false, Some(2));
    println!("EIO once, 2 open files: {ops} operations, {failed} runs saw an error");
    assert!(
        failed > ops / 2,
        "most injected faults must surface as errors"
    );
}

#[test]
fn eio_persistent_from_every_operation() {
    let (ops, failed) = run(Fault::Eio, true);
    println!("EIO persistent: {ops} operations, 0 violations");
    assert_eq!(failed, ops, "a persistent EIO must stop every run");
}

#[test]
fn enospc_once_and_persistent_at_every_operation() {
    let (ops, _) = run(Fault::Enospc, false);
    let (_, failed) = run(Fault::Enospc, true);
    println!("ENOSPC: {ops} operations each way, 0 violations");
    assert!(failed > 0);
}

#[test]
fn fsync_failure_poisons_until_reopen() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(1, 3, Compression::None)).unwrap();
    fs.inject(Fault::Eio, fs.op_count() + 1, false);
    assert!(matches!(log.flush(), Err(Error::Io { .. })));
    // The fault was one-shot, yet the log refuses writes: the fsync is never retried.
    assert!(matches!(
        log.append(&mut batch(2, 1, Compression::None)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(log.flush(), Err(Error::Poisoned { .. })));
    // Reads still work.
    assert_eq!(read_all(&log).unwrap().len(), 3);
    drop(log);
    let log = open_sim(&fs, small_config()).unwrap();
    log.append(&mut batch(2, 1, Compression::None)).unwrap();
    assert_eq!(log.flush().unwrap(), 4);
}

/// From a review ("fsyncgate"): after a failed fsync, Linux marks the pages clean, so
/// the disk may never get them while reads still return them. A reopen on the same
/// machine (the same process, or after kill -9) recovered from those live bytes, and
/// its flushes synced only newer writes: the records were acknowledged by the next
/// flush and then lost with the power, and the log did not even open. A poisoned log
/// now leaves `streamlog.unsynced`, and the next open writes again every byte no
/// completed flush covered, so its own flush makes them durable. Swept over every
/// fsync of a flush spanning rolls.
#[test]
fn a_reopen_after_a_failed_fsync_makes_what_it_recovered_durable() {
    // With O_DIRECT (the open compares with the disk) and without (the marker decides).
    for direct in [true, false] {
        a_reopen_after_a_failed_fsync(direct);
    }
}

fn a_reopen_after_a_failed_fsync(direct: bool) {
    let mut struck = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        fs.set_direct_reads(direct);
        append_batches(&log, 0..2, 2);
        log.flush().unwrap();
        append_batches(&log, 2..12, 2);
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let flushed = log.flush();
        fs.clear_faults();
        if fs.failed_sync_count() == 0 {
            if flushed.is_ok() {
                break; // past the flush's last operation
            }
            continue;
        }
        let err = flushed.expect_err("a failed fsync");
        drop(log);
        let marker = dir().join("streamlog.unsynced");
        if !data_fsync_failed(&err) {
            // The data was synced; only its record failed: nothing to write again.
            assert!(fs.read_file(&marker).is_none(), "fault at {k}: {err}");
            continue;
        }
        struck += 1;
        assert!(
            fs.read_file(&marker).is_some(),
            "fault at {k}: the poison's marker"
        );
        // kill -9 and a new process on the same machine: the page cache stays.
        fs.process_crash();
        let log = open_sim(&fs, small_config()).unwrap();
        assert!(
            fs.read_file(&marker).is_none(),
            "fault at {k}: the marker stays"
        );
        let all = read_all(&log).unwrap();
        assert_eq!(
            all.len(),
            24,
            "fault at {k}: the live bytes hold every record"
        );
        log.append(&mut batch(12, 1, Compression::None)).unwrap();
        assert_eq!(log.flush().unwrap(), 25);
        std::mem::forget(log);
        for mode in crash_modes(k) {
            let img = fs.crash_image(mode);
            let log = open_sim(&img, small_config())
                .unwrap_or_else(|e| panic!("fault at {k}, {mode:?}: reopen failed: {e}"));
            let got = read_all(&log).unwrap();
            assert_eq!(got.len(), 25, "fault at {k}, {mode:?}: I1, records lost");
            assert_eq!(got[..24], all[..], "fault at {k}, {mode:?}: other records");
        }
        assert!(k < 500);
    }
    assert!(struck >= 2, "the sweep struck {struck} fsyncs");
}

#[test]
fn appends_resume_after_enospc_clears() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(1, 3, Compression::None)).unwrap();
    fs.inject(Fault::Enospc, fs.op_count() + 1, true);
    let err = log.append(&mut batch(2, 3, Compression::None)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(log.log_end_offset(), 3, "a failed append publishes nothing");
    assert_eq!(read_all(&log).unwrap().len(), 3);
    fs.clear_faults();
    let info = log.append(&mut batch(3, 2, Compression::None)).unwrap();
    assert_eq!(info.base_offset, 3);
    log.flush().unwrap();
    let values: Vec<_> = read_all(&log)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values.len(), 5);
    assert_eq!(
        &values[3][..],
        value(3, 0).as_bytes(),
        "the half-written batch left no trace"
    );
}

/// A log of 30 two-record batches in small segments whose log start was moved to the
/// fourth segment, and a retention pass (removing the first three) with a one-shot EIO
/// at its `k`-th operation: the file system, the log, the log start and the pass's
/// result; `None` once the pass took fewer operations (the sweep over `k` is done).
fn retention_with_eio_at(
    k: u64,
) -> Option<(SimFs, streamlog::log::Log, i64, streamlog::Result<()>)> {
    let (fs, log) = small_sim_log();
    append_batches(&log, 0..30, 2);
    assert!(log.segments().len() > 4);
    let start = log.segments()[3].base_offset;
    log.advance_log_start(start).unwrap();
    fs.inject(Fault::Eio, fs.op_count() + k, false);
    let policy = streamlog::log::RetentionPolicy::log_start_only(1_700_000_000_000);
    let result = log.enforce_retention(&policy).map(|_| ());
    fs.clear_faults();
    (result.is_err() || fs.op_count() >= k).then_some((fs, log, start, result))
}

/// From a review: a failed directory fsync at the end of a retention pass returned
/// without poisoning the log, so the next pass fsynced again as if the first had
/// counted ("never retry an fsync").
#[test]
fn a_failed_directory_fsync_in_retention_poisons_the_log() {
    let mut poisoned = 0;
    for k in 1.. {
        let Some((_fs, log, _, result)) = retention_with_eio_at(k) else {
            break;
        };
        if let Err(e) = result
            && e.to_string().contains("fsync directory")
        {
            poisoned += 1;
            let again = log.append(&mut batch(99, 1, Compression::None));
            assert!(
                matches!(again, Err(Error::Poisoned { .. })),
                "fault at operation {k}: {again:?}"
            );
        }
        assert!(k < 500);
    }
    assert!(poisoned > 0, "no fault hit the directory fsync");
}

/// A retention pass whose removal of a segment's files failed part-way (an I/O error
/// at each operation in turn) leaves a log that opens again, reading from its log
/// start. (A review proposed going on past the failure, to reclaim the rest at once;
/// that leaves a gap among the segments below the log start, and the open refused the
/// log.)
#[test]
fn a_failed_segment_removal_leaves_a_log_that_opens() {
    let mut struck = 0;
    for k in 1.. {
        let Some((fs, log, start, result)) = retention_with_eio_at(k) else {
            break;
        };
        if result.is_err_and(|e| e.to_string().contains("remove")) {
            struck += 1;
        }
        let end = log.log_end_offset();
        drop(log);
        let log = open_sim(&fs, small_config())
            .unwrap_or_else(|e| panic!("fault at operation {k}: the log does not open: {e}"));
        assert_eq!(log.log_start_offset(), start, "fault at operation {k}");
        assert_eq!(log.log_end_offset(), end, "fault at operation {k}");
        let records = log.read_records(start, 1 << 20).unwrap();
        assert_eq!(records.first().map(|r| r.offset), Some(start));
        assert!(k < 500);
    }
    assert!(struck > 0, "no fault struck a removal");
}

/// "Never retry an fsync": a one-shot EIO at every operation of a workload that
/// appends, flushes, compacts, rolls, applies retention and truncates. Whenever the
/// fault hit an fsync (`SimFs::failed_sync_count`), the log must be poisoned. The
/// log_ops fuzz target found that compaction's fsyncs before its swap (the cleaned
/// segment and its indexes) and of its horizon file did not poison: the next pass
/// wrote and fsynced the same names again.
#[test]
fn every_failed_fsync_poisons_the_log() {
    let config = || small_config().allow_offset_gaps(true);
    let workload = |log: &streamlog::log::Log| -> streamlog::Result<()> {
        for tag in 0..20 {
            log.append(&mut batch(tag, 3, Compression::None))?;
        }
        log.flush()?;
        let policy = streamlog::log::CleanPolicy {
            force: true,
            now_ms: 1_700_000_100_000,
            ..streamlog::log::CleanPolicy::default()
        };
        log.clean(&policy)?;
        log.roll()?;
        let start = log.segments()[1].base_offset;
        log.advance_log_start(start)?;
        log.enforce_retention(&streamlog::log::RetentionPolicy::log_start_only(
            1_700_000_100_000,
        ))?;
        log.truncate_to(log.log_end_offset() - 2)?;
        log.flush()?;
        Ok(())
    };
    let (mut sync_faults, mut compaction_sync_faults) = (0, 0);
    for k in 1.. {
        let fs = SimFs::new();
        let log = open_sim(&fs, config()).unwrap();
        let at = fs.op_count() + k;
        fs.inject(Fault::Eio, at, false);
        let result = workload(&log);
        fs.clear_faults();
        if fs.op_count() < at {
            assert!(result.is_ok(), "no fault was hit, yet: {result:?}");
            break;
        }
        if fs.failed_sync_count() > 0 {
            sync_faults += 1;
            let err = result.expect_err("an fsync failed and the workload went on");
            if err.to_string().contains(".cleaned") || err.to_string().contains("cleaned segment") {
                compaction_sync_faults += 1;
            }
            let again = log.append(&mut batch(99, 1, Compression::None));
            assert!(
                matches!(again, Err(Error::Poisoned { .. })),
                "an fsync failed at operation {k} ({err}), and the log took a write: {again:?}"
            );
        }
        assert!(k < 5_000);
    }
    assert!(sync_faults > 5, "the sweep hit {sync_faults} fsyncs");
    assert!(
        compaction_sync_faults >= 2,
        "the sweep hit {compaction_sync_faults} of compaction's fsyncs"
    );
}

/// From a review: an ENOSPC writing compaction's tombstone-horizon file (a hint)
/// poisoned the log, though "after ENOSPC appends resume when space returns" (only a
/// failed fsync poisons). So did one writing the cleaner checkpoint after a pass that
/// worked (found by a hunt): every append failed until a reopen. ENOSPC at every
/// operation of a pass: a failure that struck no fsync, in writing either file, leaves
/// the log taking writes, and a reopen reads every record kept.
#[test]
fn enospc_writing_the_compaction_checkpoints_does_not_poison() {
    let config = || small_config().allow_offset_gaps(true);
    let policy = streamlog::log::CleanPolicy {
        force: true,
        now_ms: 1_700_000_100_000,
        ..streamlog::log::CleanPolicy::default()
    };
    let (mut horizon_failures, mut checkpoint_failures) = (0, 0);
    for k in 1.. {
        let fs = SimFs::new();
        let log = open_sim(&fs, config()).unwrap();
        append_batches(&log, 0..20, 3);
        let at = fs.op_count() + k;
        fs.inject(Fault::Enospc, at, false);
        let result = log.clean(&policy);
        fs.clear_faults();
        if fs.op_count() < at {
            assert!(result.is_ok(), "{result:?}");
            break;
        }
        let Err(e) = &result else { continue };
        let horizon = e.to_string().contains("tombstone-horizon");
        let checkpoint = e.to_string().contains("cleaner-offset-checkpoint");
        if (horizon || checkpoint) && fs.failed_sync_count() == 0 {
            horizon_failures += usize::from(horizon);
            checkpoint_failures += usize::from(checkpoint);
            assert_eq!(log.poison_reason(), None, "ENOSPC at {k}: {e}");
            log.append(&mut batch(99, 1, Compression::None)).unwrap();
            let kept = |log: &streamlog::log::Log| -> Vec<(i64, Option<Vec<u8>>)> {
                let records = log.read_records(log.log_start_offset(), usize::MAX);
                records
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.offset, r.value.map(|v| v.to_vec())))
                    .collect()
            };
            let before = kept(&log);
            assert!(before.len() > 1, "ENOSPC at {k}: {} records", before.len());
            log.close().unwrap();
            let log = open_sim(&fs, config()).unwrap();
            assert!(kept(&log) == before, "ENOSPC at {k}: reopened");
        }
        assert!(k < 5_000);
    }
    assert!(horizon_failures > 0, "no ENOSPC struck the horizon's write");
    assert!(
        checkpoint_failures > 0,
        "no ENOSPC struck the cleaner checkpoint's write"
    );
}

/// A full disk during retention or `advance_log_start` (delete_records): writing the
/// log start checkpoint's temporary file failed with ENOSPC, which poisoned the log,
/// so appends never resumed when space returned and retention (which frees space)
/// failed at every later pass. ENOSPC at every operation of either: a failure in
/// writing the checkpoint that struck no fsync leaves the log taking writes, and the
/// step done again succeeds. (A failed write of the durable position record still
/// poisons; that is the flush's rule.)
#[test]
fn enospc_moving_the_log_start_does_not_poison() {
    type Step = fn(&streamlog::log::Log) -> streamlog::Result<()>;
    let steps: [(&str, Step); 2] = [
        ("retention", |log| {
            let policy = streamlog::log::RetentionPolicy {
                retention_bytes: 0,
                ..streamlog::log::RetentionPolicy::log_start_only(0)
            };
            log.enforce_retention(&policy).map(|_| ())
        }),
        ("advance_log_start", |log| {
            log.advance_log_start(30).map(|_| ())
        }),
    ];
    for (what, step) in steps {
        let mut struck = 0;
        for k in 1.. {
            let fs = SimFs::new();
            let log = open_sim(&fs, small_config()).unwrap();
            append_batches(&log, 0..20, 3);
            let at = fs.op_count() + k;
            fs.inject(Fault::Enospc, at, false);
            let result = step(&log);
            fs.clear_faults();
            if fs.op_count() < at {
                assert!(result.is_ok(), "{what}: {result:?}");
                break;
            }
            if let Err(e) = &result
                && e.to_string().contains("log-start-offset-checkpoint")
                && fs.failed_sync_count() == 0
            {
                struck += 1;
                assert_eq!(log.poison_reason(), None, "{what}, ENOSPC at {k}: {e}");
                log.append(&mut batch(99, 1, Compression::None)).unwrap();
                step(&log).unwrap_or_else(|e| panic!("{what}, ENOSPC at {k}, again: {e}"));
            }
            assert!(k < 5_000);
        }
        assert!(struck > 0, "{what}: no ENOSPC struck without an fsync");
    }
}

/// From a hunt: `truncate_to` lowers the recovery point (through a temporary file)
/// before it cuts anything; on a full disk, writing it failed with ENOSPC, which
/// poisoned the log although every byte was synced and nothing was cut. ENOSPC at every
/// operation of a truncation below the recovery point: a failure in writing the
/// recovery point that struck no fsync leaves every record and the log taking writes,
/// and the truncation done again succeeds.
#[test]
fn enospc_lowering_the_recovery_point_in_a_truncation_does_not_poison() {
    let mut struck = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let log = open_sim(&fs, small_config()).unwrap();
        append_batches(&log, 0..20, 3);
        log.flush().unwrap();
        assert!(log.segments().len() > 2, "the appends rolled");
        let before = read_values(&log).unwrap();
        let at = fs.op_count() + k;
        fs.inject(Fault::Enospc, at, false);
        let result = log.truncate_to(6);
        fs.clear_faults();
        if fs.op_count() < at {
            assert_eq!(result.unwrap(), 6);
            break;
        }
        if let Err(e) = &result
            && e.to_string().contains("recovery-point-offset-checkpoint")
            && fs.failed_sync_count() == 0
        {
            struck += 1;
            assert_eq!(log.poison_reason(), None, "ENOSPC at {k}: {e}");
            assert!(read_values(&log).unwrap() == before, "ENOSPC at {k}: cut");
            assert_eq!(log.truncate_to(6).unwrap(), 6, "ENOSPC at {k}, again");
            log.append(&mut batch(99, 1, Compression::None)).unwrap();
            assert_eq!(log.log_end_offset(), 7);
        }
        assert!(k < 5_000);
    }
    assert!(struck > 0, "no ENOSPC struck the recovery point's write");
}

/// A flush across a roll moves the recovery point to the new segment through a
/// temporary file. On a full disk, writing it failed with ENOSPC, which poisoned the
/// log although the data and the durable position were synced. ENOSPC at every
/// operation of such a flush: a failure in writing the recovery point that struck no
/// fsync leaves the flush done and the log taking writes; the point moves at the next
/// flush; a reopen finds every flushed record.
#[test]
fn enospc_moving_the_recovery_point_does_not_poison() {
    let mut done_anyway = 0;
    for k in 1.. {
        let fs = SimFs::new();
        let log = open_sim(&fs, small_config()).unwrap();
        append_batches(&log, 0..3, 3);
        log.flush().unwrap();
        let segments = log.segments().len();
        append_batches(&log, 3..20, 3);
        assert!(log.segments().len() > segments, "the appends rolled");
        let at = fs.op_count() + k;
        fs.inject(Fault::Enospc, at, false);
        let result = log.flush();
        fs.clear_faults();
        if fs.op_count() < at {
            assert!(result.is_ok(), "{result:?}");
            break;
        }
        if fs.failed_sync_count() > 0 {
            continue; // a failed fsync poisons, as it must
        }
        if let Some(reason) = log.poison_reason() {
            assert!(
                !reason.contains("recovery-point-offset-checkpoint"),
                "ENOSPC at {k} poisoned: {reason}"
            );
            continue;
        }
        if result.is_ok() {
            done_anyway += 1;
            assert_eq!(log.durable_offset(), log.log_end_offset(), "ENOSPC at {k}");
        }
        log.append(&mut batch(99, 1, Compression::None)).unwrap();
        log.flush()
            .unwrap_or_else(|e| panic!("ENOSPC at {k}, flushing again: {e}"));
        let flushed = log.log_end_offset();
        drop(log);
        let log = open_sim(&fs.crash_image(CrashImage::DropAll), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), flushed, "ENOSPC at {k}");
        assert!(k < 5_000);
    }
    assert!(done_anyway > 0);
}

/// Found by log_ops (a process dying after a failed operation): the open of a poisoned
/// log failed part-way (removing its `streamlog.unsynced` marker), after it had built
/// the log; dropping that log closed it cleanly, so the next open trusted a recovery
/// that had not finished (its new partition epoch was never written) and refused
/// appends as corrupt. An EIO at each operation of such an open in turn: a failed open
/// leaves no clean-shutdown marker, and the open after it recovers every record durably.
#[test]
fn an_open_that_fails_part_way_leaves_no_clean_shutdown_marker() {
    for direct in [true, false] {
        an_open_that_fails_part_way(direct);
    }
}

fn an_open_that_fails_part_way(direct: bool) {
    let marker = dir().join(".kafka_cleanshutdown");
    let mut failed_opens = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        fs.set_direct_reads(direct);
        append_batches(&log, 0..2, 2);
        log.flush().unwrap();
        append_batches(&log, 2..6, 2);
        fs.inject(Fault::Eio, fs.op_count() + 1, false);
        assert!(log.flush().is_err());
        assert!(
            fs.failed_sync_count() > 0,
            "the flush's first operation is an fsync"
        );
        fs.clear_faults();
        drop(log);
        fs.process_crash();
        let at = fs.op_count() + k;
        fs.inject(Fault::Eio, at, false);
        let opened = open_sim(&fs, small_config());
        fs.clear_faults();
        if fs.op_count() < at {
            assert!(opened.is_ok(), "{opened:?}");
            break;
        }
        match opened {
            Ok(log) => std::mem::forget(log),
            Err(e) => {
                failed_opens += 1;
                assert!(
                    fs.read_file(&marker).is_none(),
                    "EIO at {k} ({e}): a failed open left a clean-shutdown marker"
                );
            }
        }
        fs.process_crash();
        let log = open_sim(&fs, small_config()).unwrap();
        assert_eq!(read_all(&log).unwrap().len(), 12, "EIO at {k}");
        log.append(&mut batch(6, 1, Compression::None)).unwrap();
        assert_eq!(log.flush().unwrap(), 13);
        std::mem::forget(log);
        let img = fs.crash_image(CrashImage::DropAll);
        let log = open_sim(&img, small_config())
            .unwrap_or_else(|e| panic!("EIO at {k}: after a power cut: {e}"));
        assert_eq!(read_all(&log).unwrap().len(), 13, "EIO at {k}: I1");
        assert!(k < 500);
    }
    assert!(failed_opens > 10, "{failed_opens} opens failed");
}

/// The open after a crash reports what it compared with the disk and what it wrote
/// again: after a plain kill -9 it compares the unflushed tail and writes nothing; after
/// a failed fsync whose marker is gone, it writes the pages the disk lacks; after a
/// poisoned log (the marker), all of the tail, without comparing; after a clean close,
/// nothing.
#[test]
fn the_open_after_a_crash_reports_what_it_compared_and_rewrote() {
    use streamlog::fs::FileSystem;
    let unflushed_tail = |fs: &SimFs, log: &streamlog::log::Log| {
        append_batches(log, 0..2, 2);
        log.flush().unwrap();
        let before = fs.op_count();
        append_batches(log, 2..8, 2);
        assert!(fs.op_count() > before);
    };
    // kill -9.
    let (fs, log) = small_sim_log();
    unflushed_tail(&fs, &log);
    std::mem::forget(log);
    fs.process_crash();
    let log = open_sim(&fs, small_config()).unwrap();
    let r = log.recovery_report().clone();
    assert!(!r.clean_shutdown);
    assert!(r.bytes_compared > 0, "{r:?}");
    assert_eq!(r.bytes_rewritten, 0, "{r:?}");
    // A clean close and reopen: nothing to compare.
    log.close().unwrap();
    let log = open_sim(&fs, small_config()).unwrap();
    let r = log.recovery_report();
    assert!(r.clean_shutdown);
    assert_eq!((r.bytes_compared, r.bytes_rewritten), (0, 0), "{r:?}");
    drop(log);

    // A failed fsync, then kill -9: with the marker, and with it lost.
    let marker = dir().join("streamlog.unsynced");
    let (mut lost_pages, mut marker_rewrites, mut struck) = (0, 0, 0);
    for k in 1..40 {
        for keep_marker in [true, false] {
            let (fs, log) = small_sim_log();
            unflushed_tail(&fs, &log);
            fs.inject(Fault::Eio, fs.op_count() + k, false);
            let flushed = log.flush();
            fs.clear_faults();
            if fs.failed_sync_count() == 0 {
                continue;
            }
            if !data_fsync_failed(flushed.as_ref().expect_err("a failed fsync")) {
                continue;
            }
            struck += 1;
            drop(log);
            if !keep_marker {
                fs.remove_file(&marker).unwrap();
            }
            fs.process_crash();
            let log = open_sim(&fs, small_config()).unwrap();
            let r = log.recovery_report().clone();
            // (A failure after the data's own fsync leaves nothing past the flush.)
            if keep_marker {
                assert_eq!(r.bytes_compared, 0, "EIO at {k}: {r:?}");
                marker_rewrites += usize::from(r.bytes_rewritten > 0);
            } else {
                assert!(r.bytes_rewritten <= r.bytes_compared, "EIO at {k}: {r:?}");
                lost_pages += usize::from(r.bytes_rewritten > 0);
            }
            let all = read_all(&log).unwrap();
            assert_eq!(all.len(), 16, "EIO at {k}");
            log.flush().unwrap();
            std::mem::forget(log);
            let img = fs.crash_image(CrashImage::DropAll);
            let log = open_sim(&img, small_config()).unwrap();
            assert_eq!(
                read_all(&log).unwrap(),
                all,
                "EIO at {k}: after a power cut"
            );
        }
    }
    assert!(struck >= 4, "{struck} fsyncs struck");
    assert!(lost_pages > 0, "no failed fsync lost a page");
    assert!(
        marker_rewrites > 0,
        "no marker made the open write the tail again"
    );
}

/// The open that writes again what a failed fsync kept from the disk writes only past
/// the last flush, though it reads whole pages: a power cut tearing those writes never
/// reaches the flushed bytes sharing their first page. With the poison's marker (the
/// whole tail is written) and without it (the pages that differ).
#[test]
fn a_power_cut_while_rewriting_the_unflushed_tail_leaves_flushed_bytes_whole() {
    use streamlog::fs::FileSystem;
    let marker = dir().join("streamlog.unsynced");
    let setup = |k: u64, keep_marker: bool| -> Option<SimFs> {
        let (fs, log) = small_sim_log();
        // Flushed: three small batches, ending inside the segment's first page.
        append_batches(&log, 0..3, 1);
        log.flush().unwrap();
        append_batches(&log, 3..9, 1);
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let flushed = log.flush();
        fs.clear_faults();
        if fs.failed_sync_count() == 0
            || !data_fsync_failed(flushed.as_ref().expect_err("a failed fsync"))
        {
            return None;
        }
        drop(log);
        if !keep_marker {
            fs.remove_file(&marker).unwrap();
        }
        fs.process_crash();
        Some(fs)
    };
    let mut cut_rewrites = 0;
    for keep_marker in [true, false] {
        for k in 1..40 {
            let Some(probe) = setup(k, keep_marker) else {
                continue;
            };
            let before = probe.mutating_op_count();
            let log = open_sim(&probe, small_config()).unwrap();
            let (rewritten, writes) = (
                log.recovery_report().bytes_rewritten,
                probe.mutating_op_count() - before,
            );
            let flushed = read_all(&log).unwrap()[..3].to_vec();
            std::mem::forget(log);
            if rewritten == 0 {
                continue;
            }
            for j in 0..writes {
                let fs = setup(k, keep_marker).unwrap();
                fs.crash_after(fs.mutating_op_count() + j);
                if let Ok(log) = open_sim(&fs, small_config()) {
                    std::mem::forget(log);
                }
                for seed in 0..4 {
                    let img = fs.crash_image(CrashImage::Random(seed * 7919 + j * 31 + k));
                    let what = format!("EIO at {k}, marker {keep_marker}, cut after {j}");
                    let log = open_sim(&img, small_config())
                        .unwrap_or_else(|e| panic!("{what}, seed {seed}: reopen failed: {e}"));
                    let got = read_all(&log).unwrap();
                    assert!(got.len() >= 3, "{what}: I1, flushed records lost");
                    assert_eq!(got[..3], flushed[..], "{what}: flushed records");
                    std::mem::forget(log);
                }
                cut_rewrites += 1;
            }
        }
    }
    assert!(cut_rewrites > 20, "{cut_rewrites} rewriting opens cut");
}

/// Regression (found by a log_ops sweep): a truncation syncs everything first, then
/// records its cut as the durable position. When that record's fsync failed, the
/// poison's marker made the next open write the whole tail again from the cut, though
/// every byte of it had been synced, and an older record still vouched for it; a power
/// cut during that open tore those writes, and the open after it refused the segment
/// as damaged flushed data. A failure that leaves no data unsynced poisons without the
/// marker: the open writes nothing, and a power cut during it loses nothing. (The
/// sweep's sequence, which tears the writes, is in the log_ops corpus; here the marker
/// and the open's writes are checked directly.)
#[test]
fn a_truncation_whose_durable_record_fails_leaves_synced_bytes_alone() {
    use streamlog::fs::FileSystem;
    let marker = dir().join("streamlog.unsynced");
    let mut hit = 0;
    for k in 1..200 {
        let (fs, log) = small_sim_log();
        append_batches(&log, 0..6, 1);
        log.roll().unwrap();
        append_batches(&log, 6..9, 1);
        log.flush().unwrap();
        let want = read_all(&log).unwrap();
        let at = fs.op_count() + k;
        fs.inject(Fault::Eio, at, false);
        let result = log.truncate_to(2);
        fs.clear_faults();
        if fs.op_count() < at {
            break;
        }
        let Err(e) = result else { continue };
        if !e.to_string().contains("write the durable position") {
            continue;
        }
        hit += 1;
        assert!(
            !fs.exists(&marker).unwrap(),
            "EIO at {k}: {e}; the unsynced marker was created"
        );
        drop(log);
        fs.process_crash();
        let before = fs.mutating_op_count();
        let reopened = open_sim(&fs, small_config()).unwrap();
        assert_eq!(reopened.recovery_report().bytes_rewritten, 0, "EIO at {k}");
        let writes = fs.mutating_op_count() - before;
        std::mem::forget(reopened);
        // A power cut anywhere in that open: the synced records are all there.
        for j in 0..writes {
            let (fs2, log) = small_sim_log();
            append_batches(&log, 0..6, 1);
            log.roll().unwrap();
            append_batches(&log, 6..9, 1);
            log.flush().unwrap();
            fs2.inject(Fault::Eio, fs2.op_count() + k, false);
            assert!(log.truncate_to(2).is_err());
            fs2.clear_faults();
            drop(log);
            fs2.process_crash();
            fs2.crash_after(fs2.mutating_op_count() + j);
            if let Ok(log) = open_sim(&fs2, small_config()) {
                std::mem::forget(log);
            }
            for seed in 0..4 {
                let img = fs2.crash_image(CrashImage::Random(seed * 7919 + j * 31 + k));
                let log = open_sim(&img, small_config())
                    .unwrap_or_else(|e| panic!("EIO at {k}, cut after {j}: reopen failed: {e}"));
                let got = read_all(&log).unwrap();
                assert!(
                    got.len() >= 2 && got[..2] == want[..2],
                    "EIO at {k}, cut after {j}: records below the cut"
                );
                std::mem::forget(log);
            }
        }
    }
    assert!(hit > 0, "no fault struck the durable position's write");
}

/// The compare at open over an unflushed tail of several 1 MiB chunks, the durable
/// position inside a page (the small config's segments hold less than a page): after
/// a failed fsync whose marker was lost, the pages the disk lacks are written again,
/// and every record survives a power cut.
#[test]
fn a_multi_chunk_unflushed_tail_is_compared_and_rewritten() {
    use streamlog::fs::FileSystem;
    let config = || {
        small_config()
            .segment_bytes(64 << 20)
            .segment_index_bytes(1 << 20)
            .index_interval_bytes(4096)
    };
    let mut struck = 0;
    for k in 1..8 {
        let fs = SimFs::new();
        let log = open_sim(&fs, config()).unwrap();
        append_batches(&log, 0..3, 5);
        log.flush().unwrap();
        append_batches(&log, 3..600, 100);
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let flushed = log.flush();
        fs.clear_faults();
        if fs.failed_sync_count() == 0
            || !data_fsync_failed(flushed.as_ref().expect_err("a failed fsync"))
        {
            continue;
        }
        let expected = read_all(&log).unwrap();
        drop(log);
        fs.remove_file(&dir().join("streamlog.unsynced")).unwrap();
        fs.process_crash();
        let log = open_sim(&fs, config()).unwrap();
        let r = log.recovery_report().clone();
        let all = read_all(&log).unwrap();
        assert_eq!(all, expected, "EIO at {k}");
        std::mem::forget(log);
        let img = fs.crash_image(CrashImage::DropAll);
        let log = open_sim(&img, config()).unwrap();
        assert_eq!(
            read_all(&log).unwrap(),
            all,
            "EIO at {k}: after a power cut"
        );
        if r.bytes_rewritten > 0 {
            assert!(r.bytes_compared > 2 << 20, "EIO at {k}: {r:?}");
            struck += 1;
        }
    }
    assert!(struck > 0, "no failed fsync lost a page");
}

/// From a review: a log opened clean whose first write failed at the directory fsync
/// that makes the removal of its clean-shutdown marker durable was poisoned, but still
/// counted as untouched, and `close` took the untouched shortcut and returned Ok: a
/// `Store::close` reported success after a failed fsync. It returns the poison.
#[test]
fn a_log_poisoned_at_its_first_write_does_not_close_ok() {
    let mut poisoned = 0;
    for k in 1..20 {
        let (fs, log) = small_sim_log();
        append_batches(&log, 0..1, 1);
        log.close().unwrap();
        let log = open_sim(&fs, small_config()).unwrap();
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let appended = log.append(&mut batch(1, 1, Compression::None));
        fs.clear_faults();
        if appended.is_ok() {
            log.close().unwrap();
            break;
        }
        if log.poison_reason().is_some() {
            poisoned += 1;
            assert!(log.close().is_err(), "EIO at {k}: a poisoned log closed Ok");
        }
    }
    assert!(poisoned > 0, "no fault point poisoned the log");
}
