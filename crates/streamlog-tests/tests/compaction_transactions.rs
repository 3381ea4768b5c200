//! Compaction of a transactional log (issue 14; KAFKA-FORMAT.md sections 5 and 7): aborted
//! records go, markers go only once their transaction has no batch left and their delete
//! horizon passed, a committed transaction still holding the latest value of a key keeps
//! its marker, producers' last batches stay, a read_committed reader sees the same
//! latest values before and after, and a crash at any file operation of a pass leaves
//! the old or the new log.
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{crash_modes, dir, open_sim};
use proptest::prelude::*;
use streamlog::format::{Batch, BatchBuilder};
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::log::{
    AbortedTxn, CleanPolicy, Clock, Log, LogConfig, ManualClock, TransactionResult,
};

use TransactionResult::{Abort, Commit};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3600 * 1000;
const DAY: i64 = 24 * HOUR;

/// Segments large enough that every pass is one group (one swap).
fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::default()
        .segment_bytes(64 << 10)
        .segment_index_bytes(240)
        .index_interval_bytes(128)
        .allow_offset_gaps(true)
        .clock(clock.clone())
}

/// A pass at `now` (forced: the dirty ratio does not matter), tombstones and markers
/// kept for a day.
fn policy(now: i64) -> CleanPolicy {
    CleanPolicy {
        now_ms: now,
        delete_retention_ms: DAY,
        force: true,
        ..CleanPolicy::default()
    }
}

/// Appends batches with each producer's sequences in order.
#[derive(Default)]
struct Writer {
    next_seq: HashMap<i64, i32>,
}

impl Writer {
    /// One record `key` = `value` from `pid` (-1: no producer), in its transaction if
    /// `transactional`. Returns the offset.
    fn put(&mut self, log: &Log, pid: i64, transactional: bool, key: &str, value: &str) -> i64 {
        let seq = if pid < 0 {
            -1
        } else {
            let s = self.next_seq.entry(pid).or_default();
            *s += 1;
            *s - 1
        };
        let epoch = if pid < 0 { -1 } else { 0 };
        let mut b = BatchBuilder::new()
            .producer(pid, epoch, seq)
            .transactional(transactional);
        b.push(T0, Some(key.as_bytes()), Some(value.as_bytes()), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap().base_offset
    }
}

fn end(log: &Log, pid: i64, result: TransactionResult) -> i64 {
    log.append_marker(pid, 0, 0, result).unwrap().base_offset
}

/// Every batch of the log, data and markers, from the log start.
fn batches(log: &Log) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20).unwrap();
        assert!(!read.is_empty(), "nothing read at {offset}");
        for b in read {
            if b.last_offset() >= offset {
                offset = b.last_offset() + 1;
                out.push(b);
            }
        }
    }
    out
}

/// A batch as the tests compare it: base and last offset, producer, control, delete
/// horizon, and its records (offset, key, value).
type BatchView = (i64, i64, i64, bool, Option<i64>, Vec<(i64, String, String)>);

fn view(log: &Log) -> Vec<BatchView> {
    batches(log)
        .iter()
        .map(|b| {
            let h = b.header();
            let horizon = h.has_delete_horizon().then_some(h.base_timestamp);
            let records = b
                .records()
                .unwrap()
                .map(|r| {
                    let r = r.unwrap();
                    let text = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or(b"")).into();
                    (r.offset, text(r.key.as_deref()), text(r.value.as_deref()))
                })
                .collect();
            (
                b.base_offset(),
                b.last_offset(),
                h.producer_id,
                h.is_control(),
                horizon,
                records,
            )
        })
        .collect()
}

/// The markers' offsets, and those with a delete horizon.
fn markers(log: &Log) -> (Vec<i64>, Vec<i64>) {
    let v = view(log);
    let all = v.iter().filter(|b| b.3).map(|b| b.0).collect();
    let stamped = v
        .iter()
        .filter(|b| b.3 && b.4.is_some())
        .map(|b| b.0)
        .collect();
    (all, stamped)
}

fn aborted(log: &Log) -> Vec<(i64, i64, i64)> {
    log.aborted_transactions(0, i64::MAX)
        .unwrap()
        .iter()
        .map(|a: &AbortedTxn| (a.producer_id, a.first_offset, a.last_offset))
        .collect()
}

/// What a read_committed reader gets (as `consumer/fetch.rs` reads): batches below the
/// last stable offset, without markers and without the transactional batches of the
/// aborted transactions `Log::aborted_transactions` lists. (offset, key, value).
fn read_committed(log: &Log) -> Vec<(i64, String, String)> {
    let lso = log.last_stable_offset();
    let listed = log
        .aborted_transactions(log.log_start_offset(), lso)
        .unwrap();
    let mut out = Vec::new();
    for b in batches(log) {
        let h = b.header();
        if b.base_offset() >= lso {
            break;
        }
        let aborted = h.is_transactional()
            && listed.iter().any(|a| {
                a.producer_id == h.producer_id
                    && (a.first_offset..=a.last_offset).contains(&b.base_offset())
            });
        if h.is_control() || aborted {
            continue;
        }
        for r in b.records().unwrap() {
            let r = r.unwrap();
            let text = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or(b"")).into();
            out.push((r.offset, text(r.key.as_deref()), text(r.value.as_deref())));
        }
    }
    out
}

/// `before` as compaction up to `clean` leaves it: below `clean`, only the last record
/// of each key (among those below `clean`).
fn latest_below(before: &[(i64, String, String)], clean: i64) -> Vec<(i64, String, String)> {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (o, k, _) in before.iter().filter(|r| r.0 < clean) {
        last.insert(k, *o);
    }
    before
        .iter()
        .filter(|(o, k, _)| *o >= clean || last.get(k.as_str()) == Some(o))
        .cloned()
        .collect()
}

/// Producers 10 and 12 commit, producer 11 aborts twice; producer 12's value of `b`
/// is never superseded:
///
/// ```text
///  0 P10 a=a1   1 COMMIT   2 P11 a=x    3 ABORT   4 P12 b=b1   5 COMMIT
///  6 P10 a=a2   7 COMMIT   8 P11 c=y    9 ABORT  10 -   d=d1
///  (roll) 11 - z=z1 (active)
/// ```
fn scenario(log: &Log, w: &mut Writer) {
    w.put(log, 10, true, "a", "a1");
    end(log, 10, Commit);
    w.put(log, 11, true, "a", "x");
    end(log, 11, Abort);
    w.put(log, 12, true, "b", "b1");
    end(log, 12, Commit);
    w.put(log, 10, true, "a", "a2");
    end(log, 10, Commit);
    w.put(log, 11, true, "c", "y");
    end(log, 11, Abort);
    w.put(log, -1, false, "d", "d1");
    log.roll().unwrap();
    w.put(log, -1, false, "z", "z1");
}

/// New dirty data, so that a pass runs: a record in the active segment, rolled.
fn more(log: &Log, w: &mut Writer, value: &str) {
    w.put(log, -1, false, "z", value);
    log.roll().unwrap();
    w.put(log, -1, false, "y", value);
}

#[test]
fn markers_go_only_once_their_data_is_gone_and_their_horizon_passed() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let mut w = Writer::default();
    scenario(&log, &mut w);
    let before = read_committed(&log);
    assert_eq!(aborted(&log), [(11, 2, 3), (11, 8, 9)]);

    // Pass 1: the superseded (0) and aborted (2) data go; their markers get a horizon a
    // day away; the abort's entry stays for now. Producer 11's last batch (8) stays,
    // empty, and so its marker and entry.
    let out = log.clean(&policy(T0)).unwrap();
    assert!(out.cleaned);
    assert_eq!((out.records_removed, out.markers_removed), (3, 0));
    assert_eq!(markers(&log), (vec![1, 3, 5, 7, 9], vec![1, 3]));
    let v = view(&log);
    assert!(v.iter().all(|b| b.4.is_none_or(|h| h == T0 + DAY)));
    let empty_8 = v
        .iter()
        .find(|b| b.0 == 8)
        .expect("producer 11's last batch stays");
    assert!(empty_8.5.is_empty() && empty_8.2 == 11);
    assert!(v.iter().all(|b| b.0 != 0 && b.0 != 2), "{v:?}");
    assert_eq!(aborted(&log), [(11, 2, 3), (11, 8, 9)]);
    assert_eq!(
        read_committed(&log),
        latest_below(&before, out.clean_offset)
    );

    // Pass 2, an hour later: the horizon has not passed; the entry of the abort whose
    // data was gone when the pass began goes.
    clock.set(T0 + HOUR);
    more(&log, &mut w, "z2");
    let out = log.clean(&policy(T0 + HOUR)).unwrap();
    assert!(out.cleaned);
    assert_eq!(out.markers_removed, 0);
    assert_eq!(markers(&log), (vec![1, 3, 5, 7, 9], vec![1, 3]));
    assert_eq!(aborted(&log), [(11, 8, 9)]);

    // A day later nothing is dirty, but the horizon is due: the pass runs and removes
    // the two markers, and only those.
    clock.set(T0 + DAY);
    let out = log.clean(&policy(T0 + DAY)).unwrap();
    assert!(out.cleaned, "a due horizon runs a pass");
    assert_eq!(out.markers_removed, 2);
    assert_eq!(markers(&log), (vec![5, 7, 9], vec![]));
    assert_eq!(aborted(&log), [(11, 8, 9)]);

    // Committed data still the latest for its key keeps its marker, whatever the time;
    // so do producers' last transactions.
    clock.set(T0 + 30 * DAY);
    more(&log, &mut w, "z3");
    log.clean(&policy(T0 + 30 * DAY)).unwrap();
    assert_eq!(markers(&log).0, [5, 7, 9]);
    let committed = read_committed(&log);
    let values: Vec<(&str, &str)> = committed
        .iter()
        .filter(|r| r.0 <= 10)
        .map(|r| (r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(values, [("b", "b1"), ("a", "a2"), ("d", "d1")]);

    // The same after a clean reopen and after a crash.
    let expected = view(&log);
    log.close().unwrap();
    let log = open_sim(&fs, config(&clock)).unwrap();
    assert_eq!(view(&log), expected);
    assert_eq!(aborted(&log), [(11, 8, 9)]);
    drop(log);
    let log = open_sim(&fs.crash_image(CrashImage::DropAll), config(&clock)).unwrap();
    assert_eq!(view(&log), expected);
    assert_eq!(aborted(&log), [(11, 8, 9)]);
    assert!(log.open_transactions().is_empty());
}

/// A committed transaction whose record stays the latest for its key keeps its marker
/// through any number of passes, even when its producer writes again.
#[test]
fn a_committed_transaction_still_holding_the_latest_value_keeps_its_marker() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let mut w = Writer::default();
    w.put(&log, 5, true, "kept", "v"); // 0
    let marker = end(&log, 5, Commit); // 1
    // The producer goes on in other transactions whose keys are superseded.
    for i in 0..3 {
        w.put(&log, 5, true, "churn", &format!("c{i}"));
        end(&log, 5, Commit);
    }
    w.put(&log, 5, false, "last", "plain");
    log.roll().unwrap();
    w.put(&log, -1, false, "churn", "final");
    for day in 0..5 {
        clock.set(T0 + day * 2 * DAY);
        more(&log, &mut w, &format!("m{day}"));
        log.clean(&policy(clock.now_ms())).unwrap();
        let v = view(&log);
        let m = v.iter().find(|b| b.0 == marker).expect("the marker stays");
        assert!(m.3 && m.4.is_none(), "never even stamped: {m:?}");
        assert!(v.iter().any(|b| b.0 == 0 && b.5.len() == 1));
    }
    // The churn transactions' markers went (their data was superseded): only the first
    // marker is left.
    assert_eq!(markers(&log).0, [marker]);
}

/// Each producer's last data batch stays, with no records if none survives, so the
/// producer's epoch, last sequence and offset can be rebuilt from the log; earlier
/// superseded batches of the same producer go.
#[test]
fn producers_last_batches_stay() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let mut w = Writer::default();
    w.put(&log, 20, false, "k", "p20-a"); // 0
    w.put(&log, 20, false, "k", "p20-b"); // 1: producer 20's last
    w.put(&log, 21, false, "k", "p21"); // 2: producer 21's last
    w.put(&log, 22, true, "k", "p22"); // 3: producer 22's last, aborted
    end(&log, 22, Abort); // 4
    w.put(&log, -1, false, "k", "plain"); // 5: supersedes them all
    w.put(&log, -1, false, "other", "o"); // 6
    log.roll().unwrap();
    w.put(&log, -1, false, "z", "z");
    // Per producer: (epoch, base sequence, last offset) of its last data batch.
    let last_batches = |log: &Log| -> BTreeMap<i64, (i16, i32, i64)> {
        let mut out = BTreeMap::new();
        for b in batches(log) {
            let h = b.header();
            if h.producer_id >= 0 && !h.is_control() {
                out.insert(
                    h.producer_id,
                    (h.producer_epoch, h.base_sequence, b.last_offset()),
                );
            }
        }
        out
    };
    let before = last_batches(&log);
    let out = log.clean(&policy(T0)).unwrap();
    assert_eq!(out.records_removed, 4);
    assert_eq!(last_batches(&log), before);
    let v = view(&log);
    let offsets: Vec<i64> = v.iter().map(|b| b.0).collect();
    assert_eq!(
        offsets,
        [1, 2, 3, 4, 5, 6, 7],
        "only producer 20's first batch went"
    );
    for b in v.iter().filter(|b| [1, 2, 3].contains(&b.0)) {
        assert!(b.5.is_empty(), "kept without its superseded record: {b:?}");
    }
    // The aborted transaction's batch stays (empty), so its marker and entry stay too.
    assert_eq!(aborted(&log), [(22, 3, 4)]);
    // After a reopen the producers' state is there: a re-sent batch is answered with
    // its original offsets, a sequence gap is refused.
    log.close().unwrap();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let end_offset = log.log_end_offset();
    let mut resent = BatchBuilder::new().producer(21, 0, 0);
    resent.push(T0, Some(b"k"), Some(b"p21"), &[]).unwrap();
    let again = log.append(&mut resent.finish().unwrap()).unwrap();
    assert_eq!((again.base_offset, log.log_end_offset()), (2, end_offset));
    let mut gap = BatchBuilder::new().producer(20, 0, 5);
    gap.push(T0, Some(b"k"), Some(b"gap"), &[]).unwrap();
    let err = log.append(&mut gap.finish().unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            streamlog::Error::OutOfOrderSequence { expected: 2, .. }
        ),
        "{err}"
    );
}

/// SimFs crash images at every file operation of a pass over a transactional log that
/// removes two markers, drops an aborted transaction's `.txnindex` entry, and merges a
/// segment holding a `.txnindex` into the one before it: the reopened log is the old or
/// the new one (batches, markers, `.txnindex` entries, read_committed view), and a pass
/// on it reaches the new one.
#[test]
fn crash_at_every_step_of_a_pass_over_a_transactional_log() {
    let clock = Arc::new(ManualClock::new(T0));
    let open = |fs: &SimFs| open_sim(fs, config(&clock)).unwrap();
    let setup = |fs: &SimFs| {
        let log = open(fs);
        let mut w = Writer::default();
        scenario(&log, &mut w);
        log.clean(&policy(T0)).unwrap();
        // A new segment with its own `.txnindex`: producer 13 aborts, then writes on.
        w.put(&log, 13, true, "e", "aborted");
        end(&log, 13, Abort);
        w.put(&log, 13, false, "e", "e1");
        log.roll().unwrap();
        w.put(&log, -1, false, "z", "z2");
        log.close().unwrap();
    };
    let pass = |log: &Log| log.clean(&policy(T0 + DAY));
    type State = (
        Vec<BatchView>,
        Vec<(i64, i64, i64)>,
        Vec<(i64, String, String)>,
    );
    let state = |log: &Log| (view(log), aborted(log), read_committed(log));

    let fs = SimFs::new();
    setup(&fs);
    let log = open(&fs);
    let old: State = state(&log);
    assert_eq!(old.1, [(11, 2, 3), (11, 8, 9), (13, 12, 13)]);
    assert_eq!(log.segments().len(), 3);
    let start_ops = fs.mutating_op_count();
    let out = pass(&log).unwrap();
    let ops = fs.mutating_op_count() - start_ops;
    assert_eq!(out.markers_removed, 2);
    let new: State = state(&log);
    assert_eq!(new.1, [(11, 8, 9), (13, 12, 13)]);
    assert_eq!(log.segments().len(), 2, "the segments merged");
    log.close().unwrap();
    let files: Vec<String> = fs
        .list_dir(&dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.contains(".txnindex") || n.contains(".swap") || n.contains(".cleaned"))
        .collect();
    assert_eq!(
        files,
        ["00000000000000000000.txnindex"],
        "the merged segment's index replaced both"
    );
    assert_eq!(old.2, new.2, "nothing a reader sees changed");

    let (mut seen_old, mut seen_new, mut finished) = (0, 0, 0);
    eprintln!("ops {ops}");
    for k in 0..=ops {
        for mode in crash_modes(k) {
            let fs = SimFs::new();
            setup(&fs);
            let log = open(&fs);
            fs.crash_after(fs.mutating_op_count() + k);
            let _ = pass(&log);
            drop(log);
            let image = fs.crash_image(mode);
            let log = open(&image);
            let report = log.recovery_report().clone();
            if report.swaps_completed > 0 {
                finished += 1;
                assert_eq!(report.indexes_rebuilt, 0, "crash after op {k} ({mode:?})");
            }
            let got = state(&log);
            if got == old {
                seen_old += 1;
            } else if got == new {
                seen_new += 1;
            } else {
                panic!("crash after op {k} ({mode:?}): neither old nor new: {got:?}");
            }
            // A pass on the recovered log reaches the new one. (From the new log whose
            // clean offset was not yet written, the pass runs again and may already drop
            // producer 13's entry: its data is gone since the crashed pass.)
            pass(&log).unwrap();
            let after = state(&log);
            assert_eq!(
                (&after.0, &after.2),
                (&new.0, &new.2),
                "crash after op {k} ({mode:?})"
            );
            assert!(
                after.1 == new.1 || (got == new && after.1 == [(11, 8, 9)]),
                "crash after op {k} ({mode:?}): {:?}",
                after.1
            );
            log.close().unwrap();
            let log = open(&image);
            assert_eq!(
                state(&log),
                after,
                "crash after op {k} ({mode:?}): reopened"
            );
        }
    }
    assert!(
        seen_old > 0 && seen_new > 0 && finished > 0,
        "old {seen_old}, new {seen_new}, swaps finished at open {finished}"
    );
    eprintln!("old {seen_old}, new {seen_new}, swaps finished at open {finished}");
}

#[derive(Debug, Clone)]
enum Op {
    /// A record of `key` from producer `pid` (0..4; 4 = no producer), in a transaction
    /// if `txn` or if the producer has one open.
    Write {
        pid: usize,
        key: u8,
        txn: bool,
    },
    /// The producer's marker (with or without an open transaction).
    End {
        pid: usize,
        commit: bool,
    },
    Roll,
    Clean {
        budget: usize,
        advance: i64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0usize..5, 0u8..6, prop::bool::weighted(0.7))
            .prop_map(|(pid, key, txn)| Op::Write { pid, key, txn }),
        4 => (0usize..4, prop::bool::ANY).prop_map(|(pid, commit)| Op::End { pid, commit }),
        2 => Just(Op::Roll),
        3 => (prop_oneof![Just(1usize << 20), 150usize..400], 0i64..DAY)
            .prop_map(|(budget, advance)| Op::Clean { budget, advance }),
        1 => Just(Op::Reopen),
    ]
}

/// A transaction of the model.
#[derive(Debug, Default)]
struct Txn {
    batches: Vec<i64>,
    /// `Some(committed)` once its marker is written.
    committed: Option<bool>,
}

/// What the log must hold, written alongside it.
#[derive(Debug, Default)]
struct Model {
    /// offset -> (key, value, transaction)
    records: BTreeMap<i64, (String, String, Option<usize>)>,
    txns: Vec<Txn>,
    open: HashMap<i64, usize>,
    /// Every marker written, by offset: its producer and the transaction it ended.
    markers: BTreeMap<i64, Option<usize>>,
    /// Markers seen with a delete horizon: the horizon.
    stamped: HashMap<i64, i64>,
    /// Per producer, the base offset of its last data batch.
    last_data: HashMap<i64, i64>,
}

impl Model {
    fn committed(&self, lso: i64) -> Vec<(i64, String, String)> {
        self.records
            .range(..lso)
            .filter(|(_, (_, _, t))| t.is_none_or(|t| self.txns[t].committed == Some(true)))
            .map(|(o, (k, v, _))| (*o, k.clone(), v.clone()))
            .collect()
    }

    fn check(&mut self, log: &Log, now: i64) -> Result<(), TestCaseError> {
        let lso = self.open.values().map(|&t| self.txns[t].batches[0]).min();
        let lso = lso
            .map_or(log.log_end_offset(), |first| {
                first.max(log.log_start_offset())
            })
            .min(log.log_end_offset());
        prop_assert_eq!(log.last_stable_offset(), lso);
        let committed = self.committed(lso);
        prop_assert_eq!(
            read_committed(log),
            latest_below(&committed, log.clean_offset()),
            "the read_committed view"
        );
        let v = view(log);
        let at: HashMap<i64, &BatchView> = v.iter().map(|b| (b.0, b)).collect();
        for (&offset, &txn) in &self.markers {
            match at.get(&offset) {
                Some(b) if !b.5.is_empty() => {
                    if let Some(h) = b.4 {
                        self.stamped.insert(offset, h);
                    }
                }
                // Removed (or left empty to end a group): only past a horizon seen
                // before, and with no batch of its transaction left.
                _ => {
                    let h = self.stamped.get(&offset);
                    prop_assert!(
                        h.is_some_and(|&h| now >= h),
                        "marker {} removed at {} (horizon {:?})",
                        offset,
                        now,
                        h
                    );
                    if let Some(t) = txn {
                        for b in &self.txns[t].batches {
                            prop_assert!(
                                !at.contains_key(b),
                                "marker {} removed while batch {} of its transaction stays",
                                offset,
                                b
                            );
                        }
                    }
                }
            }
        }
        // Every batch of a decided transaction still in the log has its marker after it.
        for (t, txn) in self.txns.iter().enumerate() {
            if txn.committed.is_some() && txn.batches.iter().any(|b| at.contains_key(b)) {
                let marker = self.markers.iter().find(|(_, m)| **m == Some(t));
                prop_assert!(
                    marker.is_some_and(|(m, _)| at.get(m).is_some_and(|b| !b.5.is_empty())),
                    "transaction {:?} has data but no marker",
                    txn
                );
            }
        }
        for (pid, base) in &self.last_data {
            prop_assert!(
                at.get(base).is_some_and(|b| b.2 == *pid),
                "producer {}'s last batch {} is gone",
                pid,
                base
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Model test: any sequence of transactional and plain writes, commits, aborts,
    /// markers without a transaction, rolls, passes (some partial) at advancing times
    /// and reopens: a read_committed reader sees the latest committed value per key
    /// below the clean offset and everything above it; a marker goes only after a
    /// horizon it carried and once no batch of its transaction is left; a transaction's
    /// remaining batches keep their marker; every producer's last batch stays.
    #[test]
    fn transactional_compaction_matches_the_model(ops in prop::collection::vec(op(), 1..50)) {
        let clock = Arc::new(ManualClock::new(T0));
        let fs = SimFs::new();
        let small = |c: &Arc<ManualClock>| config(c).segment_bytes(1024);
        let mut log = open_sim(&fs, small(&clock)).unwrap();
        let mut w = Writer::default();
        let mut m = Model::default();
        let mut n = 0;
        for op in ops {
            match op {
                Op::Write { pid, key, txn } => {
                    let pid = if pid == 4 { -1 } else { 100 + pid as i64 };
                    let open = m.open.get(&pid).copied();
                    let transactional = pid >= 0 && (txn || open.is_some());
                    n += 1;
                    let (key, value) = (format!("k{key}"), format!("v{n}"));
                    let offset = w.put(&log, pid, transactional, &key, &value);
                    let t = transactional.then(|| {
                        *m.open.entry(pid).or_insert_with(|| {
                            m.txns.push(Txn::default());
                            m.txns.len() - 1
                        })
                    });
                    if let Some(t) = t {
                        m.txns[t].batches.push(offset);
                    }
                    if pid >= 0 {
                        m.last_data.insert(pid, offset);
                    }
                    m.records.insert(offset, (key, value, t));
                }
                Op::End { pid, commit } => {
                    let pid = 100 + pid as i64;
                    let offset = end(&log, pid, if commit { Commit } else { Abort });
                    let t = m.open.remove(&pid);
                    if let Some(t) = t {
                        m.txns[t].committed = Some(commit);
                    }
                    m.markers.insert(offset, t);
                }
                Op::Roll => log.roll().unwrap(),
                Op::Clean { budget, advance } => {
                    clock.advance(advance);
                    let policy = CleanPolicy { key_map_bytes: budget, ..policy(clock.now_ms()) };
                    log.clean(&policy).unwrap();
                    m.check(&log, clock.now_ms())?;
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = open_sim(&fs, small(&clock)).unwrap();
                    m.check(&log, clock.now_ms())?;
                }
            }
        }
        // Passes far apart: what can go goes, and the model still holds.
        for _ in 0..3 {
            let offset = w.put(&log, -1, false, "tail", "t");
            m.records.insert(offset, ("tail".into(), "t".into(), None));
            log.roll().unwrap();
            clock.advance(2 * DAY);
            log.clean(&policy(clock.now_ms())).unwrap();
            m.check(&log, clock.now_ms())?;
        }
        log.close().unwrap();
        let log = open_sim(&fs.crash_image(CrashImage::DropAll), small(&clock)).unwrap();
        m.check(&log, clock.now_ms())?;
    }
}

/// A snapshot written at a roll while a transaction was open describes a log that
/// compaction later rewrote: once the transaction's COMMIT marker was removed (its data
/// gone, its horizon passed), a replay from that snapshot (a truncation, or an open)
/// never met the marker and reopened the transaction for good: the last stable offset
/// stuck below it, read_committed readers saw nothing past it.
#[test]
fn a_transaction_whose_marker_compaction_removed_stays_closed_after_a_truncation() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let mut w = Writer::default();
    w.put(&log, 10, true, "k1", "v0"); // 0
    w.put(&log, 20, false, "k9", "q"); // 1
    log.roll().unwrap(); // a snapshot at 2: producer 10's transaction open
    end(&log, 10, Commit); // 2
    w.put(&log, 20, false, "k2", "q"); // 3
    w.put(&log, 10, false, "k1", "v1"); // 4: supersedes 0
    log.roll().unwrap();
    w.put(&log, -1, false, "z", "z"); // 5
    log.clean(&policy(T0)).unwrap();
    clock.set(T0 + DAY);
    let out = log.clean(&policy(T0 + DAY)).unwrap();
    assert_eq!(out.markers_removed, 1, "{out:?}");
    assert_eq!(markers(&log), (vec![], vec![]));
    assert!(log.open_transactions().is_empty());

    log.truncate_to(4).unwrap();
    assert!(
        log.open_transactions().is_empty(),
        "{:?} reopened",
        log.open_transactions()
    );
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    let expected = view(&log);
    drop(log);
    let log = open_sim(&fs.crash_image(CrashImage::DropAll), config(&clock)).unwrap();
    assert_eq!(view(&log), expected);
    assert!(log.open_transactions().is_empty());
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

/// A removed marker was applied to every snapshot below it, closing whatever
/// transaction its producer had open there, also one that a kept marker between them
/// closed: that transaction (open again after a truncation below its marker) was taken
/// for closed, and its record for stable.
#[test]
fn a_removed_marker_leaves_alone_a_snapshot_whose_transaction_a_kept_marker_ends() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open_sim(&fs, config(&clock)).unwrap();
    let mut w = Writer::default();
    w.put(&log, 10, true, "k1", "a"); // 0
    log.roll().unwrap(); // a snapshot at 1: producer 10's transaction open since 0
    w.put(&log, 10, true, "k2", "b"); // 1
    end(&log, 10, Commit); // 2: kept (k1 and k2 stay)
    w.put(&log, 10, true, "k3", "x"); // 3
    end(&log, 10, Commit); // 4: removed (k3 is replaced at 5)
    w.put(&log, 10, false, "k3", "y"); // 5
    log.roll().unwrap();
    w.put(&log, -1, false, "z", "z"); // 6
    log.clean(&policy(T0)).unwrap();
    clock.set(T0 + DAY);
    let out = log.clean(&policy(T0 + DAY)).unwrap();
    assert_eq!(out.markers_removed, 1, "{out:?}");

    // Below the kept marker, the first transaction is open again.
    log.truncate_to(1).unwrap();
    assert_eq!(log.open_transactions(), [(10, 0)], "the first transaction");
    assert_eq!(log.last_stable_offset(), 0);
    drop(log);
    let log = open_sim(&fs.crash_image(CrashImage::DropAll), config(&clock)).unwrap();
    assert_eq!(log.open_transactions(), [(10, 0)]);
}

/// From a review: a pass that removes a marker rewrites the producer snapshots below it
/// that hold its transaction open, and it overwrote each in place. A crash during the
/// overwrite could tear it on a device that does not write a sector atomically, and a
/// torn snapshot is never read again: it may be the only one left that knows producers
/// whose batches retention deleted. Each is now replaced whole: no write touches a
/// snapshot file, and a crash at any point leaves the old snapshot or the new one.
/// (SimFs writes a sector atomically, so the crash images alone pass with the old
/// overwrite too; the write check does not.)
#[test]
fn a_crash_while_a_pass_rewrites_a_snapshot_leaves_the_old_or_the_new_one() {
    let clock = Arc::new(ManualClock::new(T0));
    // Segments too small to merge: the snapshot at the second one's base stays.
    let small = |clock: &Arc<ManualClock>| config(clock);
    let fs = SimFs::new();
    let base = {
        let log = open_sim(&fs, small(&clock)).unwrap();
        let mut w = Writer::default();
        w.put(&log, 10, true, "k", "x"); // 0
        log.roll().unwrap(); // a snapshot at 1: producer 10's transaction open since 0
        end(&log, 10, Commit); // 1: removed (k is replaced at 2)
        w.put(&log, 10, false, "k", "y"); // 2
        log.roll().unwrap();
        w.put(&log, -1, false, "z", "z"); // 3
        log.clean(&policy(T0)).unwrap();
        log.flush().unwrap();
        // As a crash leaves it (a close would drop the snapshot inside a segment).
        fs.crash_image(CrashImage::KeepAll)
    };
    let snapshot = dir().join(format!("{:020}.snapshot", 1));
    let old = base.read_file(&snapshot).unwrap();
    clock.set(T0 + DAY);
    let pass = |fs: &SimFs| {
        let log = open_sim(fs, small(&clock)).unwrap();
        let start = fs.mutating_op_count();
        let r = log.clean(&policy(T0 + DAY));
        (log, start, r)
    };
    let copy = base.crash_image(CrashImage::KeepAll);
    let (log, start, r) = pass(&copy);
    assert_eq!(r.unwrap().markers_removed, 1);
    let ops = copy.mutating_op_count() - start;
    let new = copy.read_file(&snapshot).unwrap();
    drop(log);
    assert_ne!(old, new, "the pass rewrites the snapshot");
    let mut torn = Vec::new();
    // Records from offset 2 on, which the pass leaves as they are (it removes the
    // transaction's record at 0 and its marker at 1).
    let records = |log: &Log| -> Vec<(i64, Option<bytes::Bytes>)> {
        batches(log)
            .iter()
            .flat_map(|b| b.records().unwrap().map(Result::unwrap).collect::<Vec<_>>())
            .filter(|r| r.offset >= 2)
            .map(|r| (r.offset, r.value))
            .collect()
    };
    let expected =
        records(&open_sim(&base.crash_image(CrashImage::KeepAll), small(&clock)).unwrap());
    for k in 1..=ops {
        let fs = base.crash_image(CrashImage::KeepAll);
        let log = open_sim(&fs, small(&clock)).unwrap();
        fs.crash_after(fs.mutating_op_count() + k);
        let _ = log.clean(&policy(T0 + DAY));
        drop(log);
        for seed in 0..16 {
            let image = fs.crash_image(CrashImage::Random(seed));
            let left = image.read_file(&snapshot).unwrap();
            if left != old && left != new {
                torn.push((k, seed));
            }
            // And the log reopens with the records the pass kept, as before it.
            let reopened = open_sim(&image, small(&clock))
                .unwrap_or_else(|e| panic!("crash after op {k}, seed {seed}: {e}"));
            assert_eq!(
                records(&reopened),
                expected,
                "crash after op {k}, seed {seed}"
            );
            // Whichever snapshot it holds, no transaction is open: the marker (kept or
            // removed) closed it, and nothing holds the last stable offset back.
            assert!(
                reopened.open_transactions().is_empty(),
                "crash after op {k}, seed {seed}"
            );
            assert_eq!(reopened.last_stable_offset(), reopened.log_end_offset());
        }
    }
    assert!(
        torn.is_empty(),
        "torn snapshots (crash after op, seed): {torn:?}"
    );

    // No write or truncation of the snapshot file itself: the new one is renamed in.
    use common::intercept::{Hooks, InterceptFs, Op};
    let touched = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooks = {
        let (touched, snapshot) = (touched.clone(), snapshot.clone());
        Hooks {
            before_op: Box::new(move |op, path| {
                if matches!(op, Op::Write | Op::SetLen) && path == snapshot {
                    touched.lock().unwrap().push(op);
                }
            }),
            ..Hooks::default()
        }
    };
    let watched = InterceptFs::new(base.crash_image(CrashImage::KeepAll), hooks);
    let log = Log::open_with_fs(
        Arc::new(watched) as Arc<dyn FileSystem>,
        dir(),
        small(&clock),
    )
    .unwrap();
    assert_eq!(log.clean(&policy(T0 + DAY)).unwrap().markers_removed, 1);
    assert_eq!(*touched.lock().unwrap(), []);
}
