//! Log compaction and retention at the log layer (issue 4): a proptest model of
//! compaction, tombstone horizons, retention by time / bytes / log start, and crash
//! images at every step of a compaction swap and of a retention delete.
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{crash_modes, dir, open_sim};
use proptest::prelude::*;
use streamlog::format::{BatchBuilder, Compression, Record};
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::log::{CleanPolicy, Log, LogConfig, ManualClock, RetentionPolicy};

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 24 * 3600 * 1000;

fn config(clock: &Arc<ManualClock>) -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .segment_index_bytes(240)
        .index_interval_bytes(128)
        .allow_offset_gaps(true)
        .clock(clock.clone())
}

/// One record of the model: its key and value (`None` = tombstone).
type Entry = (u8, Option<String>);

/// Records `v0`..`v39` under keys 0..3 in turn at `T0`, rolled every 4 records: 10
/// segments of 4 records, 4 keys.
fn write_ten_segments_of_four_keys(log: &Log) {
    for i in 0..40u32 {
        put(log, (i % 4) as u8, format!("v{i}"), T0);
        if i % 4 == 3 {
            log.roll().unwrap();
        }
    }
}

/// Appends `records` (key, value) as one batch; returns the base offset.
fn write(log: &Log, records: &[Entry], ts: i64, codec: Compression) -> i64 {
    let mut b = BatchBuilder::new().compression(codec);
    for (k, v) in records {
        let key = format!("key-{k}");
        b.push(
            ts,
            Some(key.as_bytes()),
            v.as_deref().map(str::as_bytes),
            &[],
        )
        .unwrap();
    }
    log.append(&mut b.finish().unwrap()).unwrap().base_offset
}

/// Appends one uncompressed record of `key` with `value` at `ts`; returns its offset.
fn put(log: &Log, key: u8, value: impl Into<String>, ts: i64) -> i64 {
    write(log, &[(key, Some(value.into()))], ts, Compression::None)
}

/// Every record from the log start, in order (offsets may skip: compaction).
fn read_everything(log: &Log) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let batches = log.read(offset, 900).unwrap();
        assert!(!batches.is_empty(), "nothing read at {offset}");
        for b in &batches {
            for r in b.records().unwrap() {
                let r = r.unwrap();
                if r.offset >= offset {
                    out.push(r);
                }
            }
            offset = offset.max(b.last_offset() + 1);
        }
    }
    out
}

/// The offset and value (UTF-8) of every record from the log start.
fn offsets_and_values(log: &Log) -> Vec<(i64, String)> {
    read_everything(log)
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn key_of(r: &Record) -> u8 {
    let k = std::str::from_utf8(r.key.as_deref().unwrap()).unwrap();
    k.strip_prefix("key-").unwrap().parse().unwrap()
}

fn policy(now: i64, budget: usize) -> CleanPolicy {
    CleanPolicy {
        now_ms: now,
        delete_retention_ms: DAY,
        key_map_bytes: budget,
        force: true,
        ..CleanPolicy::default()
    }
}

/// Checks the log against the model: every record returned is the model's record at that
/// offset (offsets preserved, bytes exact); below the cleaner checkpoint, only the latest
/// record per key (among records below it) survives; the latest value of every key is
/// always readable.
fn check(log: &Log, model: &BTreeMap<i64, Entry>) -> Result<(), TestCaseError> {
    let got = read_everything(log);
    let start = log.log_start_offset();
    let clean = log.clean_offset();
    let mut prev = -1;
    for r in &got {
        prop_assert!(r.offset > prev, "offsets must increase");
        prev = r.offset;
        let (k, v) = model
            .get(&r.offset)
            .expect("a record the model never wrote");
        prop_assert_eq!(key_of(r), *k, "key at offset {}", r.offset);
        prop_assert_eq!(
            r.value.as_deref(),
            v.as_deref().map(str::as_bytes),
            "value at offset {}",
            r.offset
        );
    }
    // Latest offset per key: overall, and among records below the checkpoint.
    let mut latest: HashMap<u8, i64> = HashMap::new();
    let mut latest_clean: HashMap<u8, i64> = HashMap::new();
    for (&o, (k, _)) in model.range(start..) {
        latest.insert(*k, o);
        if o < clean {
            latest_clean.insert(*k, o);
        }
    }
    let present: HashMap<i64, &Record> = got.iter().map(|r| (r.offset, r)).collect();
    for (&k, &o) in &latest {
        if model[&o].1.is_some() {
            prop_assert!(
                present.contains_key(&o),
                "latest value of key {} at {} is gone",
                k,
                o
            );
        }
    }
    for r in got.iter().filter(|r| r.offset < clean) {
        prop_assert_eq!(
            latest_clean.get(&key_of(r)).copied(),
            Some(r.offset),
            "offset {} was superseded below the checkpoint {} but survived",
            r.offset,
            clean
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<(u8, bool)>, usize),
    Roll,
    Clean { budget: usize, advance: i64 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec((0u8..12, prop::bool::weighted(0.15)), 1..6), 0usize..5)
            .prop_map(|(r, c)| Op::Write(r, c)),
        1 => Just(Op::Roll),
        3 => (prop_oneof![Just(1usize << 20), 150usize..600], 0i64..2 * DAY)
            .prop_map(|(budget, advance)| Op::Clean { budget, advance }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Model test for compaction: after any sequence of writes (with
    /// tombstones), rolls, passes (partial when the key map budget is small) and reopens,
    /// reading the log agrees with the latest-per-key model and offsets are preserved.
    #[test]
    fn compaction_matches_latest_per_key_model(ops in prop::collection::vec(op(), 1..60)) {
        let clock = Arc::new(ManualClock::new(T0));
        let fs = SimFs::new();
        let mut log = open_sim(&fs, config(&clock)).unwrap();
        let mut model: BTreeMap<i64, Entry> = BTreeMap::new();
        let mut n = 0u64;
        for op in ops {
            match op {
                Op::Write(recs, codec) => {
                    let entries: Vec<Entry> = recs
                        .iter()
                        .map(|&(k, tomb)| {
                            n += 1;
                            (k, (!tomb).then(|| format!("v{n}-{}", "x".repeat((n % 30) as usize))))
                        })
                        .collect();
                    let base = write(&log, &entries, clock.now(), Compression::ALL[codec]);
                    for (i, e) in entries.into_iter().enumerate() {
                        model.insert(base + i as i64, e);
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::Clean { budget, advance } => {
                    clock.advance(advance);
                    log.clean(&policy(clock.now(), budget)).unwrap();
                    check(&log, &model)?;
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = open_sim(&fs, config(&clock)).unwrap();
                }
            }
        }
        check(&log, &model)?;
        // Passes until clean: every key below the active segment appears once.
        log.roll().unwrap();
        log.clean(&policy(clock.now(), 1 << 20)).unwrap();
        check(&log, &model)?;
        let got = read_everything(&log);
        let mut seen = std::collections::HashSet::new();
        for r in got.iter().filter(|r| r.offset < log.clean_offset()) {
            prop_assert!(seen.insert(key_of(r)), "key {} twice after a full pass", key_of(r));
        }
        log.close().unwrap();
    }
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for ManualClock {
    fn now(&self) -> i64 {
        streamlog::log::Clock::now_ms(self)
    }
}

/// Tombstones stay for delete_retention_ms after the pass that first keeps them (the
/// delete-horizon bit), then go; the records they deleted go at once.
#[test]
fn tombstones_expire_after_delete_retention() {
    let (clock, fs, log) = at_t0(sim_log);
    write(
        &log,
        &[(1, Some("a".into())), (2, Some("b".into()))],
        T0,
        Compression::None,
    );
    write(&log, &[(1, None)], T0, Compression::Lz4);
    log.roll().unwrap();
    put(&log, 3, "active", T0);
    let out = log.clean(&policy(T0, 1 << 20)).unwrap();
    assert!(out.cleaned);
    let keys = |log: &Log| {
        read_everything(log)
            .iter()
            .map(|r| (r.offset, key_of(r), r.value.is_some()))
            .collect::<Vec<_>>()
    };
    // Offset 0 (key 1 = "a") is superseded by the tombstone at 2, which stays.
    assert_eq!(keys(&log), vec![(1, 2, true), (2, 1, false), (3, 3, true)]);
    let b = log.read(2, 100).unwrap();
    let tomb = b.iter().find(|b| b.last_offset() == 2).unwrap();
    assert!(tomb.header().has_delete_horizon());
    assert_eq!(tomb.header().base_timestamp, T0 + DAY);
    // The tombstone's record timestamp is unchanged by the rebase.
    assert_eq!(
        tomb.records().unwrap().next().unwrap().unwrap().timestamp,
        T0
    );
    // Before the horizon it survives further passes.
    clock.set(T0 + DAY - 1);
    log.clean(&policy(T0 + DAY - 1, 1 << 20)).unwrap();
    assert_eq!(keys(&log), vec![(1, 2, true), (2, 1, false), (3, 3, true)]);
    // The horizon survives a reopen: before it, a pass has nothing to do.
    log.close().unwrap();
    let log = open_sim(&fs, config(&clock)).unwrap();
    assert!(!log.clean(&policy(T0 + DAY - 1, 1 << 20)).unwrap().cleaned);
    // At the horizon it goes; offsets of the survivors are unchanged.
    assert!(log.clean(&policy(T0 + DAY, 1 << 20)).unwrap().cleaned);
    assert_eq!(keys(&log), vec![(1, 2, true), (3, 3, true)]);
    log.close().unwrap();
    let log = open_sim(&fs, config(&clock)).unwrap();
    assert_eq!(keys(&log), vec![(1, 2, true), (3, 3, true)]);
    assert_eq!(log.log_end_offset(), 4);
}

/// A client batch that says its `baseTimestamp` is a delete horizon (bit 6: copied
/// from a cleaned Kafka segment, or forged) had its tombstone dropped by the first pass,
/// before delete_retention_ms: a consumer that had not read it yet kept the deleted
/// value. The append clears the bit; the store's own horizon applies.
#[test]
fn a_delete_horizon_sent_by_a_client_is_not_trusted() {
    let (_clock, _fs, log) = at_t0(sim_log);
    put(&log, 1, "a", T0);
    let mut b = BatchBuilder::new();
    b.push(T0, Some(b"key-1"), None, &[]).unwrap();
    let mut bytes = b.finish().unwrap();
    let attributes = streamlog::format::batch::ATTRIBUTES_OFFSET;
    bytes[attributes + 1] |= 0x40;
    common::reseal_crc(&mut bytes);
    log.append(&mut bytes).unwrap();
    log.roll().unwrap();
    put(&log, 3, "active", T0);
    let read = log.read(1, 1000).unwrap();
    assert!(!read[0].header().has_delete_horizon(), "kept as sent");
    assert_eq!(
        read[0]
            .records()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .timestamp,
        T0
    );
    log.clean(&policy(T0, 1 << 20)).unwrap();
    let tombstones: Vec<i64> = read_everything(&log)
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.offset)
        .collect();
    assert_eq!(tombstones, [1], "the tombstone went before its horizon");
}

/// The dirty ratio gates a pass; small segments are merged up to segment_bytes; the
/// active segment is never cleaned; the cleaner checkpoint survives a reopen.
#[test]
fn dirty_ratio_merging_and_checkpoint() {
    let (clock, fs, log) =
        at_t0(|fs, clock| open_sim(fs, config(clock).segment_bytes(4096)).unwrap());
    write_ten_segments_of_four_keys(&log);
    put(&log, 9, "in the active segment", T0);
    let before = log.segments().len();
    assert_eq!(before, 11);
    let out = log
        .clean(&CleanPolicy {
            now_ms: T0,
            ..CleanPolicy::default()
        })
        .unwrap();
    assert!(out.cleaned);
    assert_eq!(out.segments_before, 11);
    assert_eq!(log.segments().len(), 2, "ten small segments merge into one");
    assert_eq!(out.records_removed, 36);
    assert_eq!(log.clean_offset(), 40);
    assert_eq!(
        offsets_and_values(&log),
        vec![
            (36, "v36".into()),
            (37, "v37".into()),
            (38, "v38".into()),
            (39, "v39".into()),
            (40, "in the active segment".into())
        ]
    );
    // Nothing dirty now: a pass does nothing, and only a little dirt is below the ratio.
    assert!(
        !log.clean(&CleanPolicy {
            now_ms: T0,
            ..CleanPolicy::default()
        })
        .unwrap()
        .cleaned
    );
    log.roll().unwrap();
    put(&log, 1, "x", T0);
    let lazy = CleanPolicy {
        now_ms: T0,
        min_cleanable_dirty_ratio: 0.9,
        ..CleanPolicy::default()
    };
    assert!(!log.clean(&lazy).unwrap().cleaned);
    // max_compaction_lag_ms forces it.
    let overdue = CleanPolicy {
        now_ms: T0 + 10,
        max_compaction_lag_ms: 5,
        ..lazy
    };
    assert!(log.clean(&overdue).unwrap().cleaned);
    assert_eq!(log.clean_offset(), 41);
    log.close().unwrap();
    let log = open_sim(&fs, config(&clock).segment_bytes(4096)).unwrap();
    assert_eq!(log.clean_offset(), 41);
    log.close().unwrap();
}

/// Segments as large as `segment_bytes` whose records mostly go merge into one
/// rewritten segment (issue 15, item 6): groups are sized by what the key map says will
/// be left of each segment, not by its input size (Kafka's rule, which here would
/// rewrite ten segments into ten small files, each created, synced and swapped).
#[test]
fn full_segments_that_mostly_compact_away_merge_into_one() {
    let (_clock, _fs, log) = at_t0(|fs, clock| open_sim(fs, config(clock)).unwrap());
    // segment_bytes 1024: each segment holds about 14 records of 4 keys.
    let mut i = 0;
    while log.segments().len() < 11 {
        put(&log, (i % 4) as u8, format!("v{i:03}"), T0);
        i += 1;
    }
    let sealed = log.segments().len() - 1;
    assert!(
        log.segments()[..sealed].iter().all(|s| s.size > 900),
        "the input segments are full: {:?}",
        log.segments()
    );
    let out = log.clean(&policy(T0, 1 << 20)).unwrap();
    assert!(out.cleaned);
    assert_eq!(
        log.segments().len(),
        2,
        "the last record of each of 4 keys fits one segment: {:?}",
        log.segments()
    );
    let kept: Vec<String> = offsets_and_values(&log)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let written = i as usize;
    let last_of_each: Vec<String> = (written - 5..written - 1)
        .map(|n| format!("v{n:03}"))
        .collect();
    assert_eq!(
        &kept[..4],
        &last_of_each[..],
        "the last record of each key survives"
    );
}

/// min_compaction_lag_ms keeps young segments out of a pass.
#[test]
fn min_compaction_lag_holds_young_segments() {
    let (_clock, _fs, log) = at_t0(sim_log);
    put(&log, 1, "old", T0);
    log.roll().unwrap();
    put(&log, 1, "young", T0 + 1000);
    log.roll().unwrap();
    let p = CleanPolicy {
        now_ms: T0 + 1500,
        min_compaction_lag_ms: 1000,
        force: true,
        ..CleanPolicy::default()
    };
    log.clean(&p).unwrap();
    assert_eq!(log.clean_offset(), 1, "only the old segment is cleanable");
    assert_eq!(read_everything(&log).len(), 2);
    log.clean(&CleanPolicy {
        now_ms: T0 + 2001,
        ..p
    })
    .unwrap();
    assert_eq!(read_everything(&log).len(), 1);
    log.close().unwrap();
}

/// A log on disk whose records carry no timestamp (-1): key 1's "old" and "new" in two
/// sealed segments, key 2's "active" in the active one.
fn untimed_log_of_three_segments() -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default().allow_offset_gaps(true);
    let log = Log::open(dir.path().join("t-0"), config).unwrap();
    for (key, value) in [(1u8, "old"), (1, "new"), (2, "active")] {
        let mut b = BatchBuilder::new();
        b.push(-1, Some(&[key]), Some(value.as_bytes()), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        if value != "active" {
            log.roll().unwrap();
        }
    }
    log.flush().unwrap();
    (dir, log)
}

/// The wall clock now, and in ms since the epoch.
fn wall_now() -> (std::time::SystemTime, i64) {
    let now = std::time::SystemTime::now();
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now, ms)
}

/// min_compaction_lag_ms for segments whose records carry no timestamp (-1): their age
/// is the `.log` file's modification time (Kafka's `largestTimestamp` falls back to
/// `lastModified`), as for time retention. They were compacted at once before.
#[test]
fn min_compaction_lag_holds_young_segments_without_timestamps() {
    let (_dir, log) = untimed_log_of_three_segments();
    let (now, now_ms) = wall_now();
    let p = CleanPolicy {
        now_ms,
        min_compaction_lag_ms: DAY,
        force: true,
        ..CleanPolicy::default()
    };
    log.clean(&p).unwrap();
    assert_eq!(
        read_everything(&log).len(),
        3,
        "written just now: too young"
    );
    // A segment's file last written two days ago.
    let age = |path: &std::path::Path| set_mtime(path, now - 2 * DAY_DURATION);
    let segments = log.segments();
    for s in &segments[..2] {
        age(&s.path);
    }
    log.clean(&p).unwrap();
    assert_eq!(
        read_everything(&log).len(),
        2,
        "old enough: key 1's first value goes"
    );
    // The pass rewrote the clean segment (a new file, with the age of the newest it
    // replaced): it must not hold back dirty segments that are old enough in the next
    // pass.
    let mut b = BatchBuilder::new();
    b.push(-1, Some(&[2]), Some(b"newer"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.roll().unwrap();
    log.flush().unwrap();
    let segments = log.segments();
    for s in &segments[1..segments.len() - 1] {
        age(&s.path);
    }
    log.clean(&p).unwrap();
    assert_eq!(
        read_everything(&log).len(),
        2,
        "key 2's first value goes too"
    );
    log.close().unwrap();
}

const DAY_DURATION: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Sets a file's modification time, as if it was last written `at`.
fn set_mtime(path: &std::path::Path, at: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// From the retention review: the segment compaction wrote was a new file, so segments
/// whose records carry no timestamps (aged by their file's modification time, Kafka's
/// `lastModified`) were young again after every pass, and time retention kept them a
/// whole `retention_ms` longer each time. The rewrite keeps the newest replaced
/// segment's time, as Kafka's cleaner does.
#[test]
fn a_compacted_segment_keeps_the_age_of_what_it_replaced() {
    let (_dir, log) = untimed_log_of_three_segments();
    let (now, now_ms) = wall_now();
    let segments = log.segments();
    set_mtime(&segments[0].path, now - 3 * DAY_DURATION);
    let newest = now - 2 * DAY_DURATION;
    set_mtime(&segments[1].path, newest);
    let p = CleanPolicy {
        now_ms,
        min_compaction_lag_ms: DAY,
        force: true,
        ..CleanPolicy::default()
    };
    assert!(log.clean(&p).unwrap().cleaned);
    let segments = log.segments();
    assert_eq!(segments.len(), 2, "the two sealed segments are one now");
    let kept = std::fs::metadata(&segments[0].path)
        .unwrap()
        .modified()
        .unwrap();
    let off = kept.duration_since(newest).unwrap_or_else(|e| e.duration());
    assert!(
        off < std::time::Duration::from_millis(1),
        "the rewrite keeps the newest replaced segment's time (off by {off:?})"
    );
    // So retention of a day deletes it now, not a day after the pass.
    let policy = RetentionPolicy {
        retention_ms: DAY,
        ..RetentionPolicy::log_start_only(now_ms)
    };
    assert_eq!(log.enforce_retention(&policy).unwrap().segments_deleted, 1);
    assert_eq!(read_everything(&log).len(), 1, "the active segment stays");
    log.close().unwrap();
}

/// A clock at `T0`, a fresh SimFs, and the log `open` opens on them.
fn at_t0(open: impl Fn(&SimFs, &Arc<ManualClock>) -> Log) -> (Arc<ManualClock>, SimFs, Log) {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = open(&fs, &clock);
    (clock, fs, log)
}

fn sim_log(fs: &SimFs, clock: &Arc<ManualClock>) -> Log {
    open_sim(fs, config(clock)).unwrap()
}

/// Segments large enough that a whole pass is one group (one swap).
fn sim_log_one_group(fs: &SimFs, clock: &Arc<ManualClock>) -> Log {
    open_sim(fs, config(clock).segment_bytes(64 << 10)).unwrap()
}

/// For each `k` in `0..=ops` and each of [`crash_modes`]: writes a fresh SimFs with
/// `setup`, runs `pass` on the log `open` opens there with a crash after `k` more
/// mutating operations, and calls `check(k, mode, log)` with the log `open` reopens from
/// the crash image.
fn crash_sweep(
    ops: u64,
    setup: impl Fn(&SimFs),
    open: impl Fn(&SimFs) -> Log,
    pass: impl Fn(&Log),
    mut check: impl FnMut(u64, CrashImage, Log),
) {
    for k in 0..=ops {
        for mode in crash_modes(k) {
            let fs = SimFs::new();
            setup(&fs);
            let log = open(&fs);
            fs.crash_after(fs.mutating_op_count() + k);
            pass(&log);
            drop(log);
            check(k, mode, open(&fs.crash_image(mode)));
        }
    }
}

/// Six small segments whose compaction is one group (one swap); the model of what
/// each offset holds.
fn six_segments_of_one_group(fs: &SimFs, clock: &Arc<ManualClock>) -> BTreeMap<i64, Entry> {
    let log = sim_log_one_group(fs, clock);
    let mut model = BTreeMap::new();
    for i in 0..24u32 {
        let e: Entry = ((i % 5) as u8, (i % 7 != 6).then(|| format!("value-{i}")));
        let base = write(
            &log,
            std::slice::from_ref(&e),
            T0,
            Compression::ALL[(i % 5) as usize],
        );
        model.insert(base, e);
        if i % 4 == 3 {
            log.roll().unwrap();
        }
    }
    log.close().unwrap();
    model
}

/// From the read-only review: finishing at open a swap a crash interrupted removed
/// the segment at the swap's base before renaming the swap over it, so a read-only
/// reader following the directory found its offsets missing and skipped them. The
/// rename replaces it, as in the live swap: for every crash image holding a pending
/// swap, the open never removes that segment.
#[test]
fn finishing_a_swap_at_open_never_removes_its_base_segment() {
    use common::intercept::{Hooks, InterceptFs, Op};
    use std::sync::Mutex;
    let clock = Arc::new(ManualClock::new(T0));
    let base_log = dir().join("00000000000000000000.log");
    let mut pending = 0;
    for k in 0..60 {
        let fs = SimFs::new();
        six_segments_of_one_group(&fs, &clock);
        let log = sim_log_one_group(&fs, &clock);
        fs.crash_after(fs.mutating_op_count() + k);
        let _ = log.clean(&policy(T0, 1 << 20));
        drop(log);
        let image = fs.crash_image(CrashImage::KeepAll);
        let swap = dir().join("00000000000000000000.log.swap");
        if image.read_file(&swap).is_none() {
            continue;
        }
        pending += 1;
        let removed = Arc::new(Mutex::new(Vec::new()));
        let seen = removed.clone();
        let watched = InterceptFs::new(
            image,
            Hooks {
                before_op: Box::new(move |op, path| {
                    if op == Op::RemoveFile {
                        seen.lock().unwrap().push(path.to_path_buf());
                    }
                }),
                ..Hooks::default()
            },
        );
        let log = Log::open_with_fs(
            Arc::new(watched) as Arc<dyn FileSystem>,
            dir(),
            config(&clock).segment_bytes(64 << 10),
        )
        .unwrap();
        assert_eq!(
            log.recovery_report().swaps_completed,
            1,
            "crash after op {k}"
        );
        let removed = removed.lock().unwrap();
        assert!(
            !removed.contains(&base_log),
            "crash after op {k}: {removed:?}"
        );
        log.close().unwrap();
    }
    assert!(pending > 0, "no crash image held a pending swap");
}

/// SimFs crash images at every operation of a compaction pass (one group, so one swap:
/// six small segments merged into one): the reopened log reads either the old or the
/// new contents (never a mix), and never loses what the model keeps.
#[test]
fn crash_at_every_step_of_a_compaction_swap() {
    let setup = six_segments_of_one_group;
    let clock = Arc::new(ManualClock::new(T0));
    // Old and new contents, from a run without a crash.
    let fs = SimFs::new();
    let model = setup(&fs, &clock);
    let log = sim_log_one_group(&fs, &clock);
    let old = read_everything(&log);
    let start_ops = fs.mutating_op_count();
    log.clean(&policy(T0, 1 << 20)).unwrap();
    let ops = fs.mutating_op_count() - start_ops;
    let new = read_everything(&log);
    assert!(new.len() < old.len());
    assert_eq!(
        log.segments().len(),
        2,
        "one group: the sealed segments merge into one"
    );
    log.close().unwrap();
    let mut seen_old = 0;
    let mut seen_new = 0;
    let mut finished_swaps = 0;
    crash_sweep(
        ops,
        |fs| assert_eq!(setup(fs, &clock), model),
        |fs| sim_log_one_group(fs, &clock),
        |log| {
            let _ = log.clean(&policy(T0, 1 << 20));
        },
        |k, mode, log| {
            let report = log.recovery_report().clone();
            if report.swaps_completed > 0 {
                finished_swaps += 1;
                // The swap's indexes were written before it: finishing it rebuilds none.
                assert_eq!(report.indexes_rebuilt, 0, "crash after op {k} ({mode:?})");
            }
            let got = read_everything(&log);
            if got == old {
                seen_old += 1;
            } else if got == new {
                seen_new += 1;
            } else {
                panic!("crash after op {k} ({mode:?}): neither old nor new contents: {got:?}");
            }
            // A later pass on the recovered log reaches the same result.
            log.clean(&policy(T0, 1 << 20)).unwrap();
            assert_eq!(read_everything(&log), new, "crash after op {k} ({mode:?})");
            log.close().unwrap();
        },
    );
    assert!(
        seen_old > 0 && seen_new > 0 && finished_swaps > 0,
        "old {seen_old}, new {seen_new}, swaps finished at open {finished_swaps}"
    );
}

/// Retention by time: judged by each segment's largest timestamp; when everything has
/// expired the active segment is rolled and goes too; the log start offset follows and
/// survives a reopen.
#[test]
fn retention_by_time_rolls_and_deletes_everything_expired() {
    let (clock, fs, log) = at_t0(sim_log);
    for i in 0..6i64 {
        put(&log, 1, format!("r{i}"), T0 + i * 1000);
        log.roll().unwrap();
    }
    put(&log, 1, "active", T0 + 10_000);
    let by_time = |now: i64| RetentionPolicy {
        retention_ms: 5000,
        now_ms: now,
        ..RetentionPolicy::log_start_only(now)
    };
    // At T0+7500, segments with max ts < T0+2500 are expired: offsets 0,1,2.
    let out = log.enforce_retention(&by_time(T0 + 7500)).unwrap();
    assert_eq!(out.segments_deleted, 3);
    assert_eq!(log.log_start_offset(), 3);
    assert!(matches!(
        log.read(0, 100),
        Err(streamlog::Error::OffsetOutOfRange { .. })
    ));
    // Everything expired: the active segment is rolled and deleted too.
    let out = log.enforce_retention(&by_time(T0 + 100_000)).unwrap();
    assert_eq!(out.segments_deleted, 4);
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.segments().len(), 1);
    put(&log, 1, "after", T0 + 100_000);
    log.close().unwrap();
    let log = sim_log(&fs, &clock);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 8));
    assert_eq!(read_everything(&log).len(), 1);
    log.close().unwrap();
}

/// Retention by bytes, by the log start offset (delete_records) and the hard cap that a
/// consumer gate cannot hold back.
#[test]
fn retention_by_bytes_log_start_and_gate() {
    let (_clock, _fs, log) = at_t0(sim_log);
    for i in 0..10i64 {
        put(&log, 1, format!("{i:0>50}"), T0);
        log.roll().unwrap();
    }
    let seg = log.segments()[0].size as i64;
    let total = log.size_bytes() as i64;
    assert_eq!(total, seg * 10);
    let now = T0;
    // Keep at least 6 segments' worth: 4 go.
    let bytes = RetentionPolicy {
        retention_bytes: seg * 6,
        ..RetentionPolicy::log_start_only(now)
    };
    // A gate at offset 2 holds back everything from offset 2 on.
    let gated = RetentionPolicy {
        gate: Some(2),
        ..bytes.clone()
    };
    assert_eq!(log.enforce_retention(&gated).unwrap().segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.enforce_retention(&bytes).unwrap().segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 4);
    // The hard cap deletes whatever the gate says.
    let capped = RetentionPolicy {
        gate: Some(0),
        max_bytes: seg * 3,
        ..RetentionPolicy::log_start_only(now)
    };
    assert_eq!(log.enforce_retention(&capped).unwrap().segments_deleted, 3);
    assert_eq!(log.log_start_offset(), 7);
    // delete_records: segments wholly below the new start go, even with no retention.
    log.advance_log_start(9).unwrap();
    let out = log
        .enforce_retention(&RetentionPolicy::log_start_only(now))
        .unwrap();
    assert_eq!(out.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(read_everything(&log).len(), 1);
    log.close().unwrap();
}

/// SimFs crash images at every operation of a retention pass (roll, checkpoint, flush,
/// unlinks): the reopened log holds either the old or the new range, records intact.
#[test]
fn crash_at_every_step_of_a_retention_delete() {
    let clock = Arc::new(ManualClock::new(T0));
    let setup = |fs: &SimFs| {
        let log = sim_log(fs, &clock);
        for i in 0..5i64 {
            put(&log, 1, format!("r{i}"), T0 + i);
            if i < 4 {
                log.roll().unwrap();
            }
        }
        log.close().unwrap();
    };
    let everything = RetentionPolicy {
        retention_ms: 0,
        ..RetentionPolicy::log_start_only(T0 + 1000)
    };
    let fs = SimFs::new();
    setup(&fs);
    let log = sim_log(&fs, &clock);
    let from = fs.mutating_op_count();
    assert_eq!(
        log.enforce_retention(&everything).unwrap().segments_deleted,
        5
    );
    let ops = fs.mutating_op_count() - from;
    log.close().unwrap();
    let old: Vec<(i64, String)> = (0..5).map(|i| (i, format!("r{i}"))).collect();
    crash_sweep(
        ops,
        setup,
        |fs| sim_log(fs, &clock),
        |log| {
            let _ = log.enforce_retention(&everything);
        },
        |k, mode, log| {
            let got = offsets_and_values(&log);
            assert!(
                got.is_empty() || got == old,
                "crash after op {k} ({mode:?}): {got:?}"
            );
            assert_eq!(log.log_end_offset(), 5);
            // Finishing the pass after recovery empties the log.
            log.enforce_retention(&everything).unwrap();
            assert!(offsets_and_values(&log).is_empty());
            assert_eq!(log.log_start_offset(), 5);
            log.close().unwrap();
        },
    );
}

/// Review regression: a pass that rewrites the segment the durable point names (data
/// appended and rolled but not flushed since) must leave a log that reopens after a
/// crash: the rewritten file is smaller than the position the durable point recorded.
#[test]
fn crash_after_compacting_unflushed_segments_reopens() {
    let clock = Arc::new(ManualClock::new(T0));
    for mode in crash_modes(7) {
        let fs = SimFs::new();
        let log = sim_log_one_group(&fs, &clock);
        for i in 0..10 {
            put(&log, 1, format!("{i}{}", "x".repeat(500)), T0);
        }
        log.flush().unwrap();
        for i in 0..10 {
            put(&log, 1, format!("small {i}"), T0);
        }
        log.roll().unwrap();
        put(&log, 2, "active", T0);
        assert!(log.clean(&policy(T0, 1 << 20)).unwrap().cleaned);
        let expected = read_everything(&log);
        assert_eq!(expected.len(), 2);
        let img = fs.crash_image(mode);
        drop(log);
        let log = sim_log_one_group(&img, &clock);
        let got = read_everything(&log);
        // The pass flushed before swapping: the compacted segment is on disk.
        assert_eq!(got[0], expected[0], "{mode:?}");
        log.close().unwrap();
    }
}

/// Review regressions: delete_records inside the active segment keeps the durable point
/// readable (a torn tail is still truncated, not refused); compaction needs a log that
/// allows offset gaps; truncation below the cleaner checkpoint lowers it; reads past
/// the end are out of range; the default policy uses the log's clock.
#[test]
fn review_regressions_log_start_checkpoints_and_policy() {
    let clock = Arc::new(ManualClock::new(T0));
    for seed in 0..40u64 {
        let fs = SimFs::new();
        let log = sim_log_one_group(&fs, &clock);
        for i in 0..10 {
            put(&log, 1, format!("r{i}"), T0);
        }
        log.advance_log_start(5).unwrap();
        // Two flushes of new data: both durable slots carry log start 5.
        for i in 10..12 {
            put(&log, 1, format!("r{i}"), T0);
            log.flush().unwrap();
        }
        put(&log, 1, "x".repeat(8000), T0);
        let img = fs.crash_image(CrashImage::Random(seed));
        drop(log);
        let log = sim_log_one_group(&img, &clock);
        assert_eq!(log.log_start_offset(), 5, "seed {seed}");
        assert!(log.log_end_offset() >= 12);
        assert_eq!(read_everything(&log)[0].offset, 5);
        log.close().unwrap();
    }
    // clean() on a log without offset gaps is refused, not half-done.
    let fs = SimFs::new();
    let strict = open_sim(&fs, LogConfig::default().clock(clock.clone())).unwrap();
    assert!(matches!(
        strict.clean(&policy(T0, 1 << 20)),
        Err(streamlog::Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        strict.read_records(5, 100),
        Err(streamlog::Error::OffsetOutOfRange { .. })
    ));
    strict.close().unwrap();
    // Truncating below the cleaner checkpoint lowers it, durably.
    let fs = SimFs::new();
    let log = sim_log(&fs, &clock);
    for i in 0..20 {
        put(&log, (i % 2) as u8, format!("v{i}"), T0);
        if i % 4 == 3 {
            log.roll().unwrap();
        }
    }
    log.clean(&policy(T0, 1 << 20)).unwrap();
    assert_eq!(log.clean_offset(), 20);
    log.truncate_to(19).unwrap();
    log.truncate_to(10).unwrap_or(10);
    assert!(log.clean_offset() <= log.log_end_offset());
    let end = log.log_end_offset();
    log.close().unwrap();
    let log = sim_log(&fs, &clock);
    assert!(log.clean_offset() <= end);
    // The default policy takes the log's clock for the tombstone horizon.
    write(&log, &[(1, None)], T0, Compression::None);
    log.roll().unwrap();
    put(&log, 2, "active", T0);
    clock.set(T0 + 5);
    log.clean(&CleanPolicy {
        force: true,
        ..CleanPolicy::default()
    })
    .unwrap();
    let batches = log.read(log.log_start_offset(), 1 << 20).unwrap();
    let tomb = batches
        .iter()
        .find(|b| b.header().has_delete_horizon())
        .expect("the kept tombstone's batch has a horizon");
    assert_eq!(tomb.header().base_timestamp, T0 + 5 + DAY);
    log.close().unwrap();
}

/// Review regression: retention racing appends never deletes the active segment of a
/// partition far below retention_bytes.
#[test]
fn retention_racing_appends_keeps_everything_under_the_limit() {
    let clock = Arc::new(ManualClock::new(T0));
    let fs = SimFs::new();
    let log = Arc::new(sim_log(&fs, &clock));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..3000 {
                put(&log, 1, format!("{i:020}"), T0);
            }
        })
    };
    let limit = RetentionPolicy {
        retention_bytes: 64 << 20,
        ..RetentionPolicy::log_start_only(T0)
    };
    while !writer.is_finished() {
        log.enforce_retention(&limit).unwrap();
        assert_eq!(log.log_start_offset(), 0);
    }
    writer.join().unwrap();
    assert_eq!(read_everything(&log).len(), 3000);
}

/// Review regression: truncating below a log start raised inside a batch lowers the log
/// start to the new end (durably), so the log reopens and new appends are readable.
#[test]
fn truncate_below_a_raised_log_start() {
    let (clock, fs, log) = at_t0(sim_log);
    let recs: Vec<Entry> = (0..10).map(|i| (1u8, Some(format!("r{i}")))).collect();
    write(&log, &recs, T0, Compression::None);
    log.flush().unwrap();
    log.advance_log_start(5).unwrap();
    assert_eq!(
        log.truncate_to(5).unwrap(),
        0,
        "the batch 0..=9 holds offset 5"
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let img = fs.crash_image(CrashImage::DropAll);
    put(&log, 2, "new", T0);
    assert_eq!(read_everything(&log).len(), 1, "the new record is readable");
    log.flush().unwrap();
    log.flush().unwrap();
    log.close().unwrap();
    let log = sim_log(&fs, &clock);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 1));
    assert_eq!(read_everything(&log).len(), 1);
    log.close().unwrap();
    // A crash right after the truncation reopens too.
    let log = sim_log(&img, &clock);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    log.close().unwrap();
}

/// A key map budget smaller than the dirty keys: each pass cleans what its map covers
/// (the checkpoint stops there) and the next pass continues, until all is clean.
#[test]
fn small_key_map_cleans_in_several_passes() {
    let (_clock, _fs, log) = at_t0(sim_log_one_group);
    for round in 0..3 {
        for k in 0..40u8 {
            put(&log, k, format!("v{round}-{k}"), T0);
        }
        log.roll().unwrap();
    }
    let end = log.log_end_offset();
    // About 64 bytes per distinct key: room for 10 keys.
    let mut passes = 0;
    let mut last = log.clean_offset();
    while log.clean_offset() < end {
        log.clean(&policy(T0, 10 * 70)).unwrap();
        passes += 1;
        assert!(log.clean_offset() > last, "each pass makes progress");
        last = log.clean_offset();
        assert!(passes < 50);
    }
    assert!(passes > 3, "the budget forced several passes ({passes})");
    // Only the latest value of each key is left.
    let got = read_everything(&log);
    assert_eq!(got.len(), 40);
    assert!(
        got.iter()
            .all(|r| r.value.as_deref().unwrap().starts_with(b"v2-"))
    );
    log.close().unwrap();
}

/// A compaction swap removes the group's old files before the new segment replaces the
/// group in the readers' list, and with descriptors bounded a removed file the cache had
/// closed cannot be reopened: a read in that window must still get the old segment's
/// bytes, not fail.
#[test]
fn a_read_during_a_compaction_swap_gets_the_old_segments_bytes() {
    compaction_swap_read(true);
}

/// The same without mappings (refused, as past the map limit or where the system has
/// none): the pass read the group's files by `pread`, and the cache had closed the
/// handle of one it read early when the swap removed it; a read then failed with an
/// I/O error (`NotFound`) until the list changed.
#[test]
fn a_read_during_a_compaction_swap_gets_the_old_segments_bytes_unmapped() {
    compaction_swap_read(false);
}

/// A truncation removes the later segments before the cut segment replaces them in the
/// list: a read below the cut whose bytes run into them must not fail meanwhile.
#[test]
fn a_read_during_a_truncation_gets_the_old_segments_bytes_unmapped() {
    let got = read_while_files_go(false, 8, 6, |log| {
        log.truncate_to(6).unwrap();
    });
    assert_eq!(got.unwrap(), 6, "read below the cut mid-truncation");
}

fn compaction_swap_read(mapped: bool) {
    let got = read_while_files_go(mapped, 4, 4, |log| {
        let out = log
            .clean(&CleanPolicy {
                now_ms: T0,
                force: true,
                ..CleanPolicy::default()
            })
            .unwrap();
        assert!(out.cleaned);
        assert!(log.segments().len() < 10, "segments merged");
    });
    assert_eq!(got.unwrap(), 4, "read of the second segment mid-swap");
}

/// Ten segments of four records, on a file system that keeps two descriptors open (and
/// maps nothing unless `mapped`), all read once; then `action`, during which, at the
/// first directory fsync after the segment at `removed` lost its file, the log is read
/// at `at`. Returns what that read's first batch starts at.
fn read_while_files_go(
    mapped: bool,
    removed: i64,
    at: i64,
    action: impl FnOnce(&Log),
) -> streamlog::Result<i64> {
    use common::intercept::{Hooks, InterceptFs, Op};
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use streamlog::fs::CachingFs;

    let clock = Arc::new(ManualClock::new(T0));
    type Hook = Box<dyn Fn() + Send + Sync>;
    let armed = Arc::new(AtomicBool::new(false));
    let during: Arc<Mutex<Option<Hook>>> = Arc::default();
    let sim = SimFs::new();
    let removed_log = dir().join(format!("{removed:020}.log"));
    let hooks = {
        let (armed, during, sim) = (armed.clone(), during.clone(), sim.clone());
        Hooks {
            before_op: Box::new(move |op, _| {
                if op == Op::SyncDir
                    && armed.load(Ordering::Acquire)
                    && !sim.exists(&removed_log).unwrap()
                    && armed.swap(false, Ordering::AcqRel)
                    && let Some(run) = during.lock().as_ref()
                {
                    run();
                }
            }),
            before_map: Box::new(move |_| {
                if mapped {
                    Ok(())
                } else {
                    Err(std::io::Error::other("no mapping"))
                }
            }),
            ..Hooks::default()
        }
    };
    let fs = CachingFs::new(Arc::new(InterceptFs::new(sim, hooks)), 2);
    let log = Arc::new(
        Log::open_with_fs(
            Arc::new(fs) as Arc<dyn FileSystem>,
            dir(),
            config(&clock).segment_bytes(4096),
        )
        .unwrap(),
    );
    write_ten_segments_of_four_keys(&log);
    assert_eq!(log.segments()[2].base_offset, 8);
    read_everything(&log);
    let seen = Arc::new(Mutex::new(None));
    {
        let (log, seen) = (Arc::downgrade(&log), seen.clone());
        *during.lock() = Some(Box::new(move || {
            let log = log.upgrade().unwrap();
            *seen.lock() = Some(log.read(at, 1 << 10).map(|b| b[0].base_offset()));
        }));
    }
    armed.store(true, Ordering::Release);
    action(&log);
    seen.lock()
        .take()
        .expect("the hook ran while the files went")
}

/// From a review: a log was overdue for compaction (`max_compaction_lag_ms`) by the
/// newest record of its first dirty segment, so a segment spanning the lag (its first
/// batch old, its last one recent) waited up to a segment's span longer, and a first
/// dirty segment without timestamps held every later one back for ever. Kafka's rule:
/// the first batch of any dirty segment older than the lag.
#[test]
fn a_log_is_overdue_by_the_first_batch_of_any_dirty_segment() {
    const LAG: i64 = 3_600_000;
    let overdue_at = |now: i64| CleanPolicy {
        now_ms: now,
        delete_retention_ms: DAY,
        max_compaction_lag_ms: LAG,
        min_cleanable_dirty_ratio: 1.0,
        key_map_bytes: 1 << 20,
        force: false,
        ..CleanPolicy::default()
    };
    // A log past its first pass (the first one runs anyway: no horizon yet).
    let cleaned_once = || {
        let (clock, fs, log) = at_t0(sim_log);
        put(&log, 9, "seed", T0);
        log.roll().unwrap();
        assert!(log.clean(&policy(T0, 1 << 20)).unwrap().cleaned);
        (clock, fs, log)
    };
    // A segment whose first batch is at T0 and last at T0 + LAG.
    let (_clock, _fs, log) = cleaned_once();
    put(&log, 1, "old", T0);
    put(&log, 1, "new", T0 + LAG);
    log.roll().unwrap();
    put(&log, 2, "active", T0 + LAG);
    assert!(
        !log.clean(&overdue_at(T0 + LAG)).unwrap().cleaned,
        "not yet"
    );
    assert!(log.clean(&overdue_at(T0 + LAG + 1)).unwrap().cleaned);
    // A first dirty segment without timestamps, then an old one.
    let (_clock, _fs, log) = cleaned_once();
    put(&log, 1, "untimed", -1);
    log.roll().unwrap();
    put(&log, 1, "old", T0);
    log.roll().unwrap();
    put(&log, 2, "active", T0);
    assert!(
        !log.clean(&overdue_at(T0 + LAG)).unwrap().cleaned,
        "not yet"
    );
    assert!(log.clean(&overdue_at(T0 + LAG + 1)).unwrap().cleaned);
}

/// A pass merged segments by their estimated output alone (`segment_bytes`), not by
/// what their index files hold (`segment_index_bytes`), as Kafka's grouping also does:
/// the merged segment needed more time-index entries than fit, its scan dropped the
/// last ones, and every clean open after took the index for stale and scanned and
/// rewrote the segment again. Groups stay within what an index holds.
#[test]
fn merged_segments_fit_their_index_files() {
    let (clock, fs, log) = at_t0(sim_log_one_group);
    // Rising times: a time-index entry per index interval; the 20 a 240-byte time
    // index holds fill long before 64 KiB of records do.
    let mut i = 0;
    while log.segments().len() < 10 {
        put(&log, (i % 200) as u8, format!("v{i:04}"), T0 + i64::from(i));
        i += 1;
    }
    let out = log.clean(&policy(T0 + DAY, 1 << 20)).unwrap();
    assert!(out.cleaned);
    let before = offsets_and_values(&log);
    log.close().unwrap();
    let log = sim_log_one_group(&fs, &clock);
    let report = log.recovery_report();
    assert!(report.clean_shutdown, "{report:?}");
    assert_eq!(
        (report.segments_scanned, report.indexes_rebuilt),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(offsets_and_values(&log), before);
    // Each record's time is found through the index again.
    for (offset, _) in before.iter().step_by(7) {
        let ts = T0 + offset;
        let found = log.offset_for_timestamp(ts).unwrap().unwrap();
        assert_eq!(found.0, *offset, "at {ts}");
    }
}

/// With `index_interval_bytes` 0 (an index entry per batch) the bound on a group's
/// index entries counts batches, at least a batch header's bytes each: review of the
/// bound, which took 0 bytes per entry and merged no two segments ever again.
#[test]
fn segments_merge_with_an_entry_per_batch() {
    let (_clock, _fs, log) =
        at_t0(|fs, clock| open_sim(fs, config(clock).index_interval_bytes(0)).unwrap());
    write_ten_segments_of_four_keys(&log);
    assert!(log.clean(&policy(T0, 1 << 20)).unwrap().cleaned);
    assert_eq!(log.segments().len(), 2, "{:?}", log.segments());
}
