//! Transactions at the log layer (KAFKA-FORMAT.md section 7): transactional batches open
//! a producer's transaction, markers close it, ABORTs are listed in the segment's
//! `.txnindex`, and the last stable offset and the aborted transactions are right after
//! a clean reopen, a crash at any file operation, a truncation and retention.

mod common;

use std::sync::Arc;

use common::dir;
use streamlog::Error;
use streamlog::format::BatchBuilder;
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::log::{AbortedTxn, Log, LogConfig, ManualClock, RetentionPolicy, TransactionResult};

use TransactionResult::{Abort, Commit};

/// A batch of producer `pid` (epoch `epoch`, first sequence `seq`) of `n` records.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Vec<u8> {
    let mut b = BatchBuilder::new()
        .producer(pid, epoch, seq)
        .transactional(transactional);
    for i in 0..n {
        b.push(
            1_700_000_000_000,
            Some(b"k"),
            Some(format!("{pid}-{seq}-{i}").as_bytes()),
            &[],
        )
        .unwrap();
    }
    b.finish().unwrap()
}

/// Markers carry the log clock's time: the same era as the batches', so that
/// `segment_ms` rolls nothing.
fn config() -> LogConfig {
    common::small_config().clock(Arc::new(ManualClock::new(1_700_000_000_000)))
}

fn open_sim(fs: &SimFs, config: LogConfig) -> streamlog::Result<Log> {
    common::open_sim(fs, config)
}

fn small_sim_log() -> (SimFs, Log) {
    let fs = SimFs::new();
    let log = open_sim(&fs, config()).unwrap();
    (fs, log)
}

fn aborted(log: &Log) -> Vec<AbortedTxn> {
    log.aborted_transactions(0, i64::MAX).unwrap()
}

#[test]
fn a_transaction_holds_the_last_stable_offset_until_its_marker() {
    let (_fs, log) = small_sim_log();
    log.append(&mut batch(-1, -1, -1, 2, false)).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
    let first = log.append(&mut batch(7, 0, 0, 2, true)).unwrap();
    log.append(&mut batch(8, 0, 0, 1, true)).unwrap();
    log.append(&mut batch(7, 0, 2, 1, true)).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.last_stable_offset(), first.base_offset);
    assert_eq!(log.open_transactions(), [(7, 2), (8, 4)]);
    // A batch outside the transaction is refused while it is open.
    let e = log.append(&mut batch(7, 0, 3, 1, false)).unwrap_err();
    assert!(
        matches!(e, Error::InvalidTxnState { producer_id: 7, .. }),
        "{e}"
    );
    let marker = log.append_marker(7, 0, 0, Commit).unwrap();
    assert_eq!((marker.base_offset, marker.last_offset), (6, 6));
    assert_eq!(
        log.last_stable_offset(),
        4,
        "producer 8's transaction is open"
    );
    log.append_marker(8, 0, 0, Commit).unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    assert!(log.open_transactions().is_empty());
    // Now producer 7 may write outside a transaction; a marker without a transaction
    // is written all the same.
    log.append(&mut batch(7, 0, 3, 1, false)).unwrap();
    log.append_marker(9, 0, 0, Abort).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert!(aborted(&log).is_empty(), "nothing was aborted");
    // The markers read back as Kafka's control batches.
    let batches = log.read(6, 1 << 20).unwrap();
    let c = batches[0].control_record().unwrap().unwrap();
    assert_eq!(c.kind, streamlog::format::ControlRecordType::Commit);
    assert!(batches[0].header().is_transactional());
    assert_eq!(batches[0].header().producer_id, 7);
}

#[test]
fn markers_fence_older_producer_epochs() {
    let (_fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 1, true)).unwrap();
    // A new producer with the same transactional id: the coordinator aborts the old
    // transaction with the new epoch.
    log.append_marker(7, 1, 3, Abort).unwrap();
    let e = log.append(&mut batch(7, 0, 1, 1, true)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProducerEpoch {
                epoch: 0,
                current: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        log.append_marker(7, 0, 3, Commit).unwrap_err(),
        Error::InvalidProducerEpoch { current: 1, .. }
    ));
    assert!(matches!(
        log.append_marker(7, 1, 2, Commit).unwrap_err(),
        Error::InvalidTxnState { .. }
    ));
    assert!(matches!(
        log.append_marker(-1, 0, 0, Commit).unwrap_err(),
        Error::InvalidArgument { .. }
    ));
    log.append(&mut batch(7, 1, 0, 1, true)).unwrap();
    assert_eq!(log.log_end_offset(), 3, "nothing refused was written");
}

#[test]
fn an_abort_is_indexed_in_kafkas_34_byte_entry() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 2, true)).unwrap(); // 0..=1
    log.append(&mut batch(8, 0, 0, 1, true)).unwrap(); // 2
    log.append_marker(7, 0, 5, Abort).unwrap(); // 3
    let expected = AbortedTxn {
        producer_id: 7,
        first_offset: 0,
        last_offset: 3,
        last_stable_offset: 2, // producer 8's transaction is still open
    };
    assert_eq!(aborted(&log), [expected]);
    let path = dir().join("00000000000000000000.txnindex");
    let f = fs.open(&path, false).unwrap();
    let bytes = f.read_exact_at(0, f.len().unwrap() as usize).unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(&0i16.to_be_bytes());
    for v in [7i64, 0, 3, 2] {
        want.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(&bytes[..], &want[..]);
    // Overlap rule: the marker at or after `from`, the first offset before `to`.
    assert_eq!(log.aborted_transactions(3, 4).unwrap(), [expected]);
    assert!(log.aborted_transactions(4, 10).unwrap().is_empty());
    assert!(log.aborted_transactions(0, 0).unwrap().is_empty());
    // A commit adds nothing.
    log.append_marker(8, 0, 5, Commit).unwrap();
    assert_eq!(aborted(&log), [expected]);
}

/// Transactions aborted in different segments, a query from the middle, and the
/// state after a clean reopen and after a crash.
#[test]
fn aborted_transactions_and_open_ones_survive_reopens() {
    let (fs, log) = small_sim_log();
    let mut want = Vec::new();
    for round in 0..12i64 {
        let pid = round % 3;
        let seq = (round / 3) as i32 * 4;
        let first = log.append(&mut batch(pid, 0, seq, 4, true)).unwrap();
        let result = if round % 2 == 0 { Abort } else { Commit };
        let m = log.append_marker(pid, 0, 0, result).unwrap();
        if round % 3 == 2 {
            log.roll().unwrap();
        }
        if result == Abort {
            want.push(AbortedTxn {
                producer_id: pid,
                first_offset: first.base_offset,
                last_offset: m.base_offset,
                last_stable_offset: m.base_offset + 1,
            });
        }
    }
    let open = log
        .append(&mut batch(5, 0, 0, 1, true))
        .unwrap()
        .base_offset;
    assert!(log.segments().len() > 3, "the test needs several segments");
    assert_eq!(aborted(&log), want);
    let mid = want[3].first_offset;
    let from_mid = log.aborted_transactions(mid, i64::MAX).unwrap();
    assert_eq!(from_mid, want[3..]);
    log.close().unwrap();

    let log = open_sim(&fs, config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(aborted(&log), want);
    assert_eq!(log.last_stable_offset(), open);
    assert_eq!(log.open_transactions(), [(5, open)]);
    // One more abort after the reopen, then a crash that keeps only what was synced.
    log.flush().unwrap();
    let m = log.append_marker(5, 0, 0, Abort).unwrap();
    let image = fs.crash_image(CrashImage::DropAll);
    assert_eq!(aborted(&log).len(), want.len() + 1);
    drop(log);
    let log = open_sim(&image, config()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(
        log.log_end_offset(),
        m.base_offset,
        "the marker was not synced"
    );
    assert_eq!(aborted(&log), want, "its entry is gone with it");
    assert_eq!(log.last_stable_offset(), open);
    assert_eq!(log.open_transactions(), [(5, open)]);
}

#[test]
fn truncation_reopens_transactions_and_drops_their_entries() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 2, true)).unwrap(); // 0..=1
    log.append_marker(7, 0, 0, Abort).unwrap(); // 2
    log.append(&mut batch(8, 0, 0, 1, true)).unwrap(); // 3
    log.append_marker(8, 0, 0, Abort).unwrap(); // 4
    log.append(&mut batch(9, 0, 0, 1, true)).unwrap(); // 5
    assert_eq!(aborted(&log).len(), 2);
    assert_eq!(log.last_stable_offset(), 5);
    // Cut the second marker: producer 8's transaction is open again; producer 9's is gone.
    assert_eq!(log.truncate_to(4).unwrap(), 4);
    assert_eq!(log.open_transactions(), [(8, 3)]);
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(
        aborted(&log),
        [AbortedTxn {
            producer_id: 7,
            first_offset: 0,
            last_offset: 2,
            last_stable_offset: 3,
        }]
    );
    let f = fs
        .open(&dir().join("00000000000000000000.txnindex"), false)
        .unwrap();
    assert_eq!(f.len().unwrap(), 34);
    // The reopened transaction ends again; a reopen agrees.
    log.append_marker(8, 0, 0, Commit).unwrap();
    assert_eq!(log.last_stable_offset(), 5);
    log.close().unwrap();
    let log = open_sim(&fs, config()).unwrap();
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(aborted(&log).len(), 1);
}

#[test]
fn retention_deletes_the_txnindex_and_keeps_open_transactions() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 1, true)).unwrap();
    log.append_marker(7, 0, 0, Abort).unwrap();
    let open = log
        .append(&mut batch(8, 0, 0, 1, true))
        .unwrap()
        .base_offset;
    log.roll().unwrap();
    for i in 1..20 {
        log.append(&mut batch(8, 0, i, 1, true)).unwrap();
    }
    let names = fs.list_dir(&dir()).unwrap();
    assert!(names.contains(&"00000000000000000000.txnindex".to_string()));
    let start = log.log_end_offset() - 1;
    log.advance_log_start(start).unwrap();
    let out = log
        .enforce_retention(&RetentionPolicy::log_start_only(0))
        .unwrap();
    assert!(out.segments_deleted > 0);
    let names = fs.list_dir(&dir()).unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".txnindex")), "{names:?}");
    assert!(aborted(&log).is_empty());
    // Producer 8's transaction began in a deleted segment and is still open; the last
    // stable offset does not go below the log start (Kafka's rule).
    assert_eq!(log.open_transactions(), [(8, open)]);
    assert_eq!(log.last_stable_offset(), start);
    log.close().unwrap();
    let log = open_sim(&fs, config()).unwrap();
    assert_eq!(log.open_transactions(), [(8, open)]);
}

/// What the workload appended, in offset order.
#[derive(Debug, Clone)]
enum Op {
    Data { pid: i64, offset: i64, txn: bool },
    Marker { pid: i64, offset: i64, abort: bool },
}

/// Open transactions (pid, first offset), the LSO and the aborted transactions of the
/// log that holds exactly the offsets below `end` of what `ops` appended.
fn model(ops: &[Op], end: i64) -> (Vec<(i64, i64)>, i64, Vec<AbortedTxn>) {
    let mut open: Vec<(i64, i64)> = Vec::new();
    let mut aborted = Vec::new();
    for op in ops {
        match *op {
            Op::Data { pid, offset, txn }
                if offset < end && txn && !open.iter().any(|&(p, _)| p == pid) =>
            {
                open.push((pid, offset));
            }
            Op::Marker { pid, offset, abort } if offset < end => {
                let Some(i) = open.iter().position(|&(p, _)| p == pid) else {
                    continue;
                };
                let (_, first) = open.remove(i);
                if abort {
                    let lso = open.iter().map(|&(_, f)| f).min().unwrap_or(offset + 1);
                    aborted.push(AbortedTxn {
                        producer_id: pid,
                        first_offset: first,
                        last_offset: offset,
                        last_stable_offset: lso,
                    });
                }
            }
            _ => {}
        }
    }
    let lso = open.iter().map(|&(_, f)| f).min().unwrap_or(end);
    (open, lso, aborted)
}

/// Interleaved transactions of three producers (one fenced by a marker with a new
/// epoch), plain batches, flushes, rolls and a reopen in the middle. Stops at the
/// first error, as a crashed process would; returns what it appended and the highest
/// flushed offset.
fn workload(fs: &SimFs) -> (Vec<Op>, i64) {
    let mut ops = Vec::new();
    let mut acked = 0;
    let _ = (|| -> streamlog::Result<()> {
        let mut log = open_sim(fs, config())?;
        let mut seq = [0i32; 3];
        let mut epoch = [0i16; 3];
        for step in 0..40usize {
            let pid = (step % 3) as i64;
            let p = pid as usize;
            match step % 7 {
                0 | 2 | 4 => {
                    let info = log.append(&mut batch(pid, epoch[p], seq[p], 2, true))?;
                    seq[p] += 2;
                    ops.push(Op::Data {
                        pid,
                        offset: info.base_offset,
                        txn: true,
                    });
                }
                1 => {
                    let info = log.append(&mut batch(-1, -1, -1, 1, false))?;
                    ops.push(Op::Data {
                        pid: -1,
                        offset: info.base_offset,
                        txn: false,
                    });
                }
                _ => {
                    let abort = step % 2 == 0;
                    // Producer 2 is fenced once by its coordinator (a new epoch).
                    if pid == 2 && step == 20 {
                        epoch[p] += 1;
                        seq[p] = 0;
                    }
                    let result = if abort { Abort } else { Commit };
                    let info = log.append_marker(pid, epoch[p], 0, result)?;
                    ops.push(Op::Marker {
                        pid,
                        offset: info.base_offset,
                        abort,
                    });
                }
            }
            if step % 5 == 4 {
                acked = log.flush()?;
            }
            if step == 17 {
                log.close()?;
                log = open_sim(fs, config())?;
            }
        }
        log.close()?;
        acked = log_end(&ops);
        Ok(())
    })();
    (ops, acked)
}

fn log_end(ops: &[Op]) -> i64 {
    match ops.last() {
        Some(Op::Data { offset, pid, .. }) => offset + if *pid < 0 { 1 } else { 2 },
        Some(Op::Marker { offset, .. }) => offset + 1,
        None => 0,
    }
}

fn check(log: &Log, ops: &[Op], acked: i64, what: &str) {
    let end = log.log_end_offset();
    assert!(end >= acked, "{what}: end {end} below the flushed {acked}");
    let (open, lso, aborted_model) = model(ops, end);
    let mut open_model: Vec<(i64, i64)> = open;
    open_model.sort_by_key(|&(_, f)| f);
    assert_eq!(
        log.open_transactions(),
        open_model,
        "{what}: open transactions"
    );
    assert_eq!(log.last_stable_offset(), lso, "{what}: last stable offset");
    assert_eq!(aborted(log), aborted_model, "{what}: aborted transactions");
}

#[test]
fn after_a_crash_at_every_file_operation_transactions_match_the_recovered_log() {
    let clean = SimFs::new();
    let (all, acked) = workload(&clean);
    assert_eq!(
        acked,
        log_end(&all),
        "the workload must succeed without faults"
    );
    let opened = open_sim(&clean, config()).unwrap();
    check(&opened, &all, acked, "clean run");
    assert!(!aborted(&opened).is_empty() && !opened.open_transactions().is_empty());
    drop(opened);
    let ops = clean.mutating_op_count();
    assert!(ops > 100, "workload too small: {ops} operations");
    let mut recoveries = 0;
    for k in 0..=ops {
        let fs = SimFs::new();
        fs.crash_after(k);
        let (seen, acked) = workload(&fs);
        for mode in common::crash_modes(k) {
            let img = fs.crash_image(mode);
            let log = open_sim(&img, config())
                .unwrap_or_else(|e| panic!("crash after op {k}, {mode:?}: reopen: {e}"));
            check(&log, &seen, acked, &format!("crash after op {k}, {mode:?}"));
            // I5: a crash right after recovery recovers the same.
            std::mem::forget(log);
            let again = open_sim(&img.crash_image(CrashImage::DropAll), config())
                .unwrap_or_else(|e| panic!("op {k}, {mode:?}: second reopen: {e}"));
            check(&again, &seen, acked, &format!("op {k}, {mode:?}, again"));
            recoveries += 1;
        }
    }
    println!("{} crash points, {recoveries} recoveries checked", ops + 1);
    assert!(recoveries > 300);
}

/// A record of `pid`'s transaction (or of no producer, `pid` -1) with key `key`.
fn keyed(pid: i64, seq: i32, key: &str, value: &str) -> Vec<u8> {
    let mut b = BatchBuilder::new()
        .producer(pid, 0, seq)
        .transactional(pid >= 0);
    b.push(
        1_700_000_000_000,
        Some(key.as_bytes()),
        Some(value.as_bytes()),
        &[],
    )
    .unwrap();
    b.finish().unwrap()
}

/// Compaction drops aborted transactions' records (which never shadow a committed
/// value of their key), keeps markers, and leaves everything from the last stable
/// offset on as it is.
#[test]
fn compaction_drops_aborted_records_and_stops_at_the_last_stable_offset() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config().allow_offset_gaps(true)).unwrap();
    log.append(&mut keyed(7, 0, "a", "committed")).unwrap(); // 0
    log.append_marker(7, 0, 0, Commit).unwrap(); // 1
    log.append(&mut keyed(8, 0, "a", "aborted")).unwrap(); // 2
    log.append_marker(8, 0, 0, Abort).unwrap(); // 3
    log.append(&mut keyed(-1, -1, "b", "plain-1")).unwrap(); // 4
    log.roll().unwrap();
    let open = log
        .append(&mut keyed(9, 0, "b", "open"))
        .unwrap()
        .base_offset; // 5
    log.append(&mut keyed(-1, -1, "b", "plain-2")).unwrap(); // 6
    log.roll().unwrap();
    log.append(&mut keyed(-1, -1, "c", "active")).unwrap(); // 7
    let out = log
        .clean(&streamlog::log::CleanPolicy {
            force: true,
            ..Default::default()
        })
        .unwrap();
    assert!(out.cleaned);
    assert_eq!(
        out.clean_offset, 5,
        "cleaning stops at the last stable offset"
    );
    let records = data_records(&log);
    let values: Vec<(i64, String)> = records
        .iter()
        .filter(|r| r.offset < open)
        .map(|r| {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned();
            (r.offset, v)
        })
        .collect();
    assert_eq!(
        values,
        [(0, "committed".to_string()), (4, "plain-1".to_string())]
    );
    // The markers stay, and so does the abort's entry.
    let markers: Vec<i64> = log
        .read(0, 1 << 20)
        .unwrap()
        .iter()
        .filter(|b| b.header().is_control())
        .map(|b| b.base_offset())
        .collect();
    assert_eq!(markers, [1, 3]);
    assert_eq!(aborted(&log).len(), 1);
    // Past the last stable offset nothing changed.
    assert_eq!(log.last_stable_offset(), open);
    assert_eq!(
        records.iter().filter(|r| r.offset >= open).count(),
        3,
        "the open transaction and what follows it are kept"
    );
}

/// The records of the log's data batches (not markers), offsets with gaps.
fn data_records(log: &Log) -> Vec<streamlog::format::Record> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batches = log.read(offset, 1 << 20).unwrap();
        for b in &batches {
            if !b.header().is_control() {
                out.extend(b.records().unwrap().map(Result::unwrap));
            }
            offset = b.last_offset() + 1;
        }
    }
    out
}

/// Regression (found by the log_ops fuzz target): an I/O error reading a producer
/// snapshot was taken for "no usable snapshot". A truncation whose replay then started
/// at the first segment with no state moved the start of a transaction open since
/// before it (its first batch gone with retention) to a later batch: the last stable
/// offset jumped past records of an open transaction. The error is now returned.
#[test]
fn a_snapshot_that_cannot_be_read_fails_the_rebuild_instead_of_being_passed_over() {
    let mut faults_hit = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        log.append(&mut batch(7, 0, 0, 1, true)).unwrap(); // opens at 0
        log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
        log.roll().unwrap(); // snapshot at 4: the transaction open since 0
        log.append(&mut batch(7, 0, 1, 1, true)).unwrap();
        log.append(&mut batch(-1, -1, -1, 2, false)).unwrap();
        log.flush().unwrap();
        log.advance_log_start(4).unwrap();
        log.enforce_retention(&RetentionPolicy::log_start_only(1_700_000_000_000))
            .unwrap();
        assert_eq!(log.segments()[0].base_offset, 4, "segment 0 is gone");
        assert_eq!(log.open_transactions(), [(7, 0)]);
        assert_eq!(log.last_stable_offset(), 4, "the log start");
        fs.inject(streamlog::fs::Fault::Eio, fs.op_count() + k, false);
        let result = log.truncate_to(6);
        fs.clear_faults();
        match result {
            Ok(end) => {
                assert_eq!(end, 5, "cut at the batch holding offset 6");
                assert_eq!(log.open_transactions(), [(7, 0)], "fault at operation {k}");
                if fs.op_count() < k {
                    break;
                }
            }
            Err(e) => {
                faults_hit += 1;
                assert!(
                    matches!(e, Error::Io { .. } | Error::Poisoned { .. }),
                    "{e:?}"
                );
            }
        }
        assert!(k < 200, "the truncation never ran without a fault");
    }
    assert!(faults_hit > 0);
}

/// Regression (found by the log_ops fuzz target): with the recovery point below the
/// first segment (here: its file lost), the rebuild after a crash ignored the snapshot
/// at the first segment's base and replayed from there with no state, forgetting a
/// transaction open since a segment retention had removed.
#[test]
fn a_transaction_open_since_a_removed_segment_survives_a_crash_without_recovery_point() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 1, true)).unwrap(); // opens at 0
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.roll().unwrap(); // the snapshot at 4: the transaction open since 0
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.flush().unwrap();
    log.advance_log_start(4).unwrap();
    log.enforce_retention(&RetentionPolicy::log_start_only(1_700_000_000_000))
        .unwrap();
    assert_eq!(log.segments()[0].base_offset, 4);
    assert_eq!(log.open_transactions(), [(7, 0)]);
    let image = fs.crash_image(CrashImage::KeepAll);
    drop(log);
    image.delete_file(&dir().join("recovery-point-offset-checkpoint"));
    let log = open_sim(&image, config()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(log.last_stable_offset(), 4, "the log start");
    assert_eq!(log.open_transactions(), [(7, 0)]);
}

/// Regression (found by the log_ops fuzz target): a truncation synced the sealed
/// segments waiting for a flush (and took them off the list) but not their
/// `.txnindex`; once a later flush moved the recovery point past them, a power cut
/// lost the ABORT entry of a segment recovery trusts.
#[test]
fn a_truncation_syncs_the_transaction_index_of_the_segments_it_flushes() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 2, true)).unwrap();
    let marker = log.append_marker(7, 0, 0, Abort).unwrap();
    log.roll().unwrap();
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    assert_eq!(log.truncate_to(6).unwrap(), 6);
    log.roll().unwrap();
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.flush().unwrap(); // the recovery point passes segment 0
    let want = aborted(&log);
    assert_eq!(want.len(), 1);
    assert_eq!(want[0].last_offset, marker.base_offset);
    let image = fs.crash_image(CrashImage::DropAll);
    drop(log);
    let log = open_sim(&image, config()).unwrap();
    assert_eq!(aborted(&log), want);
}

/// Regression (found by the log_ops fuzz target): the ABORT entry appended to the
/// active segment's `.txnindex` was left unsynced by a truncation that cut that
/// segment after it: the kept entries matched the file, so it was not rewritten, and
/// the segment object that replaced the cut one did not know the file was dirty. A
/// clean close did not sync it either, and a power cut lost it.
#[test]
fn a_truncation_of_the_active_segment_keeps_its_abort_entries_durable() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 1, true)).unwrap();
    log.append_marker(7, 0, 0, Abort).unwrap();
    log.append(&mut batch(7, 0, 1, 3, true)).unwrap();
    assert_eq!(log.truncate_to(3).unwrap(), 2);
    let want = aborted(&log);
    assert_eq!(want.len(), 1);
    log.close().unwrap();
    let image = fs.crash_image(CrashImage::DropAll);
    let log = open_sim(&image, config()).unwrap();
    assert_eq!(aborted(&log), want);
}

/// Regression (found by the log_ops fuzz target): a roll's snapshot a crash tore stayed
/// torn; the open rewrote only the active segment's. Once retention removed the
/// segments before it, no rebuild could recover a transaction open since then. The
/// open now writes the state at every segment base its replay passes.
#[test]
fn an_open_after_a_crash_rewrites_the_snapshots_the_crash_tore() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 1, true)).unwrap(); // opens at 0
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.roll().unwrap(); // the snapshot at 4, not synced yet
    log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
    log.roll().unwrap();
    let image = fs.crash_image(CrashImage::KeepAll);
    std::mem::forget(log);
    let snapshot = dir().join("00000000000000000004.snapshot");
    assert!(image.read_file(&snapshot).is_some());
    image.write_file(&snapshot, b"torn".to_vec());
    let log = open_sim(&image, config()).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.advance_log_start(4).unwrap();
    log.enforce_retention(&RetentionPolicy::log_start_only(1_700_000_000_000))
        .unwrap();
    assert_eq!(log.segments()[0].base_offset, 4);
    // Removes the segment at 7 and its snapshot: the one at 4 is all that is left.
    assert_eq!(log.truncate_to(6).unwrap(), 4);
    assert_eq!(log.open_transactions(), [(7, 0)]);
    let image = image.crash_image(CrashImage::DropAll);
    std::mem::forget(log);
    let log = open_sim(&image, config()).unwrap();
    assert_eq!(log.open_transactions(), [(7, 0)]);
}

/// From a review: after a process crash the `.txnindex` reads back whole from the page
/// cache, so the open's rewrite found nothing to change and did not sync it; nothing
/// marked it dirty, not even the clean close, and a later power cut lost the ABORT
/// entry of a segment a clean open trusts.
#[test]
fn a_txnindex_left_unsynced_by_a_process_crash_is_synced_by_the_next_open() {
    let (fs, log) = small_sim_log();
    log.append(&mut batch(7, 0, 0, 2, true)).unwrap();
    log.append_marker(7, 0, 0, Abort).unwrap();
    log.append(&mut batch(-1, -1, -1, 1, false)).unwrap();
    log.flush().unwrap();
    let want = aborted(&log);
    assert_eq!(want.len(), 1);
    std::mem::forget(log); // kill -9: the page cache survives
    fs.process_crash();
    let log = open_sim(&fs, config()).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    log.close().unwrap();
    let image = fs.crash_image(CrashImage::DropAll);
    let log = open_sim(&image, config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(aborted(&log), want);
}

/// Regression (found by the log_ops fuzz target): a roll whose snapshot write failed
/// (it is retried by the next flush) left no snapshot file, and a truncation before
/// that flush replayed from the new segment with no state: the transaction open since
/// before the roll was forgotten. The truncation now writes the pending snapshots
/// before its replay.
#[test]
fn a_truncation_sees_the_snapshot_a_roll_failed_to_write() {
    let mut checked = 0;
    for k in 1.. {
        let (fs, log) = small_sim_log();
        log.append(&mut batch(7, 0, 0, 3, true)).unwrap(); // opens at 0
        fs.inject(streamlog::fs::Fault::Eio, fs.op_count() + k, false);
        let rolled = log.roll();
        fs.clear_faults();
        let beyond = fs.op_count() < k;
        if rolled.is_ok() {
            log.append(&mut batch(-1, -1, -1, 8, false)).unwrap();
            if log.truncate_to(4).is_ok() {
                checked += 1;
                assert_eq!(log.last_stable_offset(), 0, "fault at operation {k}");
            }
        }
        if beyond {
            break;
        }
        assert!(k < 100);
    }
    assert!(checked > 1);
}

/// Found by log_ops (a process dying after a failed flush): the `.txnindex` whose
/// fsync failed read back whole from the page cache, so the next open kept it and
/// only fsynced it, which (its pages marked clean) wrote nothing: after a power cut
/// the file on disk was garbage or short. The open now compares it with what the disk
/// holds and writes it again where they differ. Swept over every operation of the
/// flush; the cases where the `.txnindex`'s fsync failed are checked.
#[test]
fn a_txnindex_whose_fsync_failed_is_written_again_by_the_next_open() {
    let mut struck = 0;
    // The operation count seeds what the failed fsync left on the disk (all, nothing
    // or torn): a few counts see each. With O_DIRECT (the open compares with the disk)
    // and without (the poisoned log's marker decides).
    for (extra, direct) in (0..12).flat_map(|e| [(e, true), (e, false)]) {
        for k in 1.. {
            let (fs, log) = small_sim_log();
            fs.set_direct_reads(direct);
            for _ in 0..extra {
                fs.exists(&dir()).unwrap();
            }
            log.append(&mut batch(7, 0, 0, 2, true)).unwrap();
            log.append_marker(7, 0, 5, Abort).unwrap();
            // Sealed: the flush fsyncs its .txnindex.
            log.roll().unwrap();
            let want = aborted(&log);
            assert_eq!(want.len(), 1);
            let at = fs.op_count() + k;
            fs.inject(streamlog::fs::Fault::Eio, at, false);
            let flushed = log.flush();
            fs.clear_faults();
            if fs.op_count() < at {
                assert!(flushed.is_ok());
                break;
            }
            let hit_txnindex = flushed
                .as_ref()
                .is_err_and(|e| e.to_string().contains(".txnindex"));
            drop(log);
            if !hit_txnindex || fs.failed_sync_count() == 0 {
                continue;
            }
            struck += 1;
            // kill -9: the machine and its page cache stay.
            fs.process_crash();
            let log = open_sim(&fs, config()).unwrap();
            assert_eq!(
                aborted(&log),
                want,
                "extra {extra}, fault at {k}: the live index"
            );
            std::mem::forget(log);
            for mode in [CrashImage::KeepAll, CrashImage::DropAll] {
                let img = fs.crash_image(mode);
                let log = open_sim(&img, config()).unwrap();
                assert_eq!(
                    log.aborted_transactions(0, i64::MAX)
                        .unwrap_or_else(|e| panic!("extra {extra}, fault at {k}, {mode:?}: {e}")),
                    want,
                    "extra {extra}, fault at {k}, {mode:?}"
                );
            }
            assert!(k < 500);
        }
    }
    assert!(
        struck > 5,
        "faults struck the .txnindex's fsync {struck} times"
    );
}

/// From a review: a truncation that failed before it cut anything still dropped the
/// producer state past the new end, so the poisoned log (still readable) forgot a
/// transaction open there and its last stable offset passed that transaction's
/// records. A failed cut now leaves the state as it was, with the lower bound.
#[test]
fn a_truncation_that_fails_before_the_cut_keeps_the_open_transactions() {
    let mut struck = 0;
    for k in 1..40 {
        let (fs, log) = small_sim_log();
        log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
        let open = log
            .append(&mut batch(7, 0, 0, 2, true))
            .unwrap()
            .base_offset;
        log.append(&mut batch(-1, -1, -1, 3, false)).unwrap();
        assert_eq!(log.last_stable_offset(), open);
        let at = fs.op_count() + k;
        fs.inject(streamlog::fs::Fault::Eio, at, false);
        let result = log.truncate_to(open);
        fs.clear_faults();
        if fs.op_count() < at {
            break;
        }
        if result.is_ok() {
            continue;
        }
        struck += 1;
        // Whatever step failed, the transaction at `open` is not taken as decided.
        assert!(
            log.last_stable_offset() <= open,
            "EIO at {k}: last stable offset {} past the open transaction at {open}",
            log.last_stable_offset()
        );
    }
    assert!(struck > 0);
}

/// From a review: a marker (78 bytes) was refused where `max_message_bytes` is below
/// it, though the transaction's own batches (68 bytes and up) fit: the transaction
/// could never end, and held the last stable offset for good. The limit is for
/// producers' batches, not markers.
#[test]
fn a_marker_is_written_whatever_max_message_bytes_is() {
    let fs = SimFs::new();
    let log = open_sim(&fs, config().max_message_bytes(70)).unwrap();
    let mut b = BatchBuilder::new().producer(7, 0, 0).transactional(true);
    b.push(1_700_000_000_000, None, None, &[]).unwrap();
    let mut small = b.finish().unwrap();
    assert!(small.len() <= 70, "{} bytes", small.len());
    log.append(&mut small).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.append_marker(7, 0, 0, Commit).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
    assert!(matches!(
        log.append(&mut batch(-1, -1, -1, 1, false)),
        Err(Error::RecordTooLarge { .. })
    ));
}
