//! Maintenance costs (compaction and retention) against file-system baselines measured in
//! the same run (ARCHITECTURE.md, "Benchmarks").
//!
//! - `compaction`: one `Log::clean` pass (`force`, so the dirty ratio does not matter) over
//!   a partition log of about 64 MiB in 1 MiB segments, opened directly with
//!   `allow_offset_gaps` as compacted topics are. Records: 16-byte keys and 100-byte values
//!   (half random, half text, uncompressed) in ~16 KiB batches; 90% of the records update
//!   one of 1,000 hot keys and 10% have a key seen once, so the pass keeps about a tenth of
//!   the data. Every sealed segment is dirty and rewritten (the active segment is empty).
//!   Each iteration cleans a fresh copy of the input directory (the copy, a `sync` and the
//!   open are outside the timed part). Baseline `raw_read`: `std::fs::read` of every
//!   `.log` file of the same input. Throughput is in input bytes (the `.log` bytes the
//!   pass reads). The compacted output is checked once before timing: exactly the last
//!   record of each key survives, at its original offset.
//! - `retention`: one `Log::enforce_retention` pass with `retention_ms = 0` over a log of
//!   10,000 sealed segments of one small batch each (built with `append` + `roll`, 1 KiB
//!   index preallocation, flushed), which deletes all of them: raise and checkpoint the
//!   log start, flush, drop the segments from the snapshot, unlink 30,000 files, sync the
//!   directory, close their file handles. Each iteration builds a fresh log outside the
//!   timed part. Baseline `unlink_files`: the
//!   same build, closed, then unlinking the same 30,000 files (3 per segment) and one
//!   fsync of the directory.
//!
//! After criterion's own output, a table gives the time per pass, the throughput (input
//! MB/s for compaction, segments/s for retention) and the ratio to the baseline (baseline
//! time / our time: 1.0 = as fast as the baseline), plus the space compaction reclaimed.
//!
//! The retention part keeps every segment open; a flushed sealed segment holds one file
//! descriptor (its `.log`; index entries live in memory), so 10,000 segments need an
//! open-file limit above about 13,000. With a lower limit (read from
//! `/proc/self/limits`) it uses the largest multiple of 1,000 segments that fits, and
//! says so in the table.
//!
//! Run with `cargo bench -p streamlog-bench --bench maintenance` (about two minutes on
//! 2 cores, plus the build).

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Rng, bench_criterion, flat_group, mean_ns, tmp};
use criterion::{BatchSize, Throughput};
use streamlog::format::BatchBuilder;
use streamlog::log::{CleanOutcome, CleanPolicy, Log, LogConfig, RetentionPolicy};

const T0: i64 = 1_700_000_000_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
const BATCH_BYTES: usize = 16 * 1024;
/// Compaction input: about this many bytes of `.log` files.
const INPUT_BYTES: u64 = 64 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;
const HOT_KEYS: u64 = 1_000;
/// One record in this many has a key of its own.
const UNIQUE_EVERY: i64 = 10;
/// Segments of the retention log, when the open-file limit allows.
const RETENTION_SEGMENTS: usize = 10_000;
/// File descriptors left for everything else (criterion, temp dirs, the baseline).
const FD_HEADROOM: u64 = 1_000;
const LOG_DIR: &str = "bench-0";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Copies the files of `from` (not the lock file) into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == ".lock" || !entry.file_type().expect("type").is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).expect("copy");
    }
}

/// Writes back the copies' dirty pages before timing, so background writeback does not
/// land in a measurement (best effort: `sync` may not exist).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Names of the files of `dir` ending in one of `suffixes`, sorted.
fn files_with(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)))
        })
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------
// Compaction

fn compaction_config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .allow_offset_gaps(true)
}

fn clean_policy() -> CleanPolicy {
    CleanPolicy {
        now_ms: now_ms(),
        force: true,
        ..CleanPolicy::default()
    }
}

/// The compaction input, built once.
struct Keyed {
    _dir: tempfile::TempDir,
    log_dir: PathBuf,
    /// Bytes of `.log` files (what a pass reads).
    input_bytes: u64,
    records: i64,
    /// Offsets that must survive compaction (the last of each key), ascending.
    survivors: Vec<i64>,
}

fn build_keyed() -> Keyed {
    let dir = tmp();
    let log_dir = dir.path().join(LOG_DIR);
    let log = Log::open(&log_dir, compaction_config()).expect("open");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut last_of_hot = vec![-1i64; HOT_KEYS as usize];
    let mut survivors = Vec::new();
    let new_batch = || BatchBuilder::with_capacity(BATCH_BYTES + 1024);
    let mut batch = new_batch();
    let mut next = 0i64;
    let append = |b: BatchBuilder, first: i64| {
        let info = log
            .append_encoded(&mut b.build().expect("build"))
            .expect("append");
        assert_eq!(info.base_offset, first, "offsets are assigned from 0");
    };
    let mut batch_first = 0i64;
    while log.size_bytes() < INPUT_BYTES {
        let key = if next % UNIQUE_EVERY == UNIQUE_EVERY - 1 {
            survivors.push(next);
            format!("uniq-{next:011}")
        } else {
            let h = rng.next() % HOT_KEYS;
            last_of_hot[h as usize] = next;
            format!("hot-{h:012}")
        };
        debug_assert_eq!(key.len(), KEY_LEN);
        let value = rng.value(VALUE_LEN);
        batch
            .push(T0 + next, Some(key.as_bytes()), Some(&value), &[])
            .expect("push");
        next += 1;
        if batch.uncompressed_size() >= BATCH_BYTES {
            append(std::mem::replace(&mut batch, new_batch()), batch_first);
            batch_first = next;
        }
    }
    if !batch.is_empty() {
        append(batch, batch_first);
    }
    // Every segment sealed (the active one is empty), so the whole input is cleanable.
    log.roll().expect("roll");
    let input_bytes = log.size_bytes();
    log.close().expect("close");
    survivors.extend(last_of_hot.iter().copied().filter(|&o| o >= 0));
    survivors.sort_unstable();
    Keyed {
        _dir: dir,
        log_dir,
        input_bytes,
        records: next,
        survivors,
    }
}

/// A fresh uncompacted copy of the input, opened.
fn keyed_copy(input: &Keyed) -> (tempfile::TempDir, Log) {
    let d = tmp();
    let p = d.path().join(LOG_DIR);
    copy_dir(&input.log_dir, &p);
    settle();
    let log = Log::open(&p, compaction_config()).expect("open copy");
    (d, log)
}

/// One pass outside criterion, checking the output: exactly the survivors, each once.
fn check_compaction(input: &Keyed) -> (CleanOutcome, u64) {
    let (_d, log) = keyed_copy(input);
    let out = log.clean(&clean_policy()).expect("clean");
    assert!(out.cleaned, "the forced pass ran");
    let mut offsets = Vec::with_capacity(input.survivors.len());
    let mut offset = 0i64;
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 1 << 20).expect("read");
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(
        offsets, input.survivors,
        "compaction kept exactly the last record of each key"
    );
    assert_eq!(
        out.records_removed,
        (input.records - input.survivors.len() as i64) as u64
    );
    let after = log.size_bytes();
    log.close().expect("close");
    (out, after)
}

fn read_all_logs(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::read(f).expect("read").len() as u64)
        .sum()
}

// ---------------------------------------------------------------------------------------
// Retention

fn retention_config() -> LogConfig {
    LogConfig::default().segment_index_bytes(1024)
}

/// The soft open-file limit, where the platform says (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many segments the retention log can have open: `RETENTION_SEGMENTS`, or the
/// largest multiple of 1,000 below the open-file limit (one per flushed sealed segment,
/// up to 3,000 more for the segments sealed since the last flush of the build).
fn retention_segments() -> usize {
    let Some(limit) = open_file_limit() else {
        return RETENTION_SEGMENTS;
    };
    let fit = limit.saturating_sub(FD_HEADROOM + 3_000) as usize;
    RETENTION_SEGMENTS.min(fit / 1_000 * 1_000).max(1_000)
}

/// A log in `dir` of `segments` sealed one-batch segments and an empty active one,
/// flushed.
fn build_segments(dir: &Path, segments: usize) -> Result<Log, String> {
    let log = Log::open(dir, retention_config()).map_err(|e| e.to_string())?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..segments {
        let mut b = BatchBuilder::new();
        let key = format!("user-{i:011}");
        b.push(
            T0 + i as i64,
            Some(key.as_bytes()),
            Some(&rng.value(VALUE_LEN)),
            &[],
        )
        .expect("push");
        log.append_encoded(&mut b.build().expect("build"))
            .and_then(|_| log.roll())
            .map_err(|e| format!("segment {i}: {e}"))?;
        // A flush syncs the sealed segments' indexes and closes their descriptors: a
        // sealed, synced segment holds one (its .log), an unflushed one three.
        if i % 1000 == 999 {
            log.flush().map_err(|e| e.to_string())?;
        }
    }
    log.flush().map_err(|e| e.to_string())?;
    Ok(log)
}

/// A fresh log of `segments` segments for one timed pass (built, not copied and reopened:
/// see the module docs).
fn retention_input(segments: usize) -> (tempfile::TempDir, Log) {
    let d = tmp();
    let log = build_segments(&d.path().join(LOG_DIR), segments).expect("build");
    settle();
    (d, log)
}

/// The files retention deletes: every segment's but the empty active one's.
fn doomed_files(log_dir: &Path, segments: usize) -> Vec<PathBuf> {
    let active = format!("{segments:020}.");
    let files: Vec<PathBuf> = files_with(log_dir, &[".log", ".index", ".timeindex"])
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&active))
        })
        .collect();
    assert_eq!(files.len(), 3 * segments, "3 files per segment");
    files
}

fn retention_policy() -> RetentionPolicy {
    RetentionPolicy {
        retention_ms: 0,
        ..RetentionPolicy::log_start_only(now_ms())
    }
}

fn unlink_all(dir: &Path, files: &[PathBuf]) {
    for f in files {
        std::fs::remove_file(f).expect("unlink");
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync directory");
}

// ---------------------------------------------------------------------------------------

fn main() {
    let mut c = bench_criterion(Duration::from_secs(3));

    // Compaction against a raw read of the same .log bytes.
    let keyed = build_keyed();
    let (outcome, size_after) = check_compaction(&keyed);
    let input_logs = files_with(&keyed.log_dir, &[".log"]);
    assert_eq!(read_all_logs(&input_logs), keyed.input_bytes);
    let mut g = flat_group(&mut c, "compaction", Throughput::Bytes(keyed.input_bytes));
    g.bench_function("raw_read", |b| {
        b.iter(|| black_box(read_all_logs(&input_logs)))
    });
    g.bench_function("clean", |b| {
        b.iter_batched(
            || keyed_copy(&keyed),
            |(d, log)| {
                let out = log.clean(&clean_policy()).expect("clean");
                assert!(out.cleaned);
                (out, log, d)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // Retention over 10,000 segments (or what the open-file limit allows) against
    // unlinking their files.
    let segments = retention_segments();
    // Checked once: the log can be built, and the pass deletes every sealed segment.
    let checked = {
        let d = tmp();
        build_segments(&d.path().join(LOG_DIR), segments).map(|log| {
            let out = log
                .enforce_retention(&retention_policy())
                .expect("retention");
            assert_eq!(out.segments_deleted, segments);
            assert_eq!(out.log_start_offset, segments as i64);
            assert_eq!(
                log.segments().len(),
                1,
                "only the empty active segment is left"
            );
            log.close().expect("close");
        })
    };
    if let Err(e) = &checked {
        println!(
            "retention: skipped: could not build a log of {segments} segments ({e}); each \
             open segment holds 3 file descriptors: raise the open-file limit \
             (ulimit -n 65536)"
        );
    } else {
        let mut g = flat_group(&mut c, "retention", Throughput::Elements(segments as u64));
        g.bench_function("unlink_files", |b| {
            b.iter_batched(
                || {
                    let (d, log) = retention_input(segments);
                    log.close().expect("close");
                    let p = d.path().join(LOG_DIR);
                    let files = doomed_files(&p, segments);
                    (d, p, files)
                },
                |(d, p, files)| {
                    unlink_all(&p, &files);
                    d
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("enforce_retention", |b| {
            b.iter_batched(
                || retention_input(segments),
                |(d, log)| {
                    let out = log
                        .enforce_retention(&retention_policy())
                        .expect("retention");
                    assert_eq!(out.segments_deleted, segments);
                    (out, log, d)
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }

    c.final_summary();
    print_table(
        &keyed,
        &outcome,
        size_after,
        checked.is_ok().then_some(segments),
    );
}

/// `retention`: the segment count of the retention log, `None` if that part was skipped.
fn print_table(keyed: &Keyed, outcome: &CleanOutcome, size_after: u64, retention: Option<usize>) {
    let ms = |ns: f64| ns / 1e6;
    println!(
        "\n{:<46} {:>10} {:>16}  {:<28} {:>10} {:>7}",
        "benchmark", "ms/pass", "throughput", "baseline", "ms", "ratio"
    );
    match (
        mean_ns("compaction", "clean"),
        mean_ns("compaction", "raw_read"),
    ) {
        (Some(ours), Some(base)) => {
            let mbs = |ns: f64| keyed.input_bytes as f64 / (ns / 1e9) / 1e6;
            println!(
                "{:<46} {:>10.1} {:>10.1} MB/s  {:<28} {:>10.1} {:>6.2}x",
                format!(
                    "compaction: clean {:.1} MB, 10% unique keys",
                    keyed.input_bytes as f64 / 1e6
                ),
                ms(ours),
                mbs(ours),
                format!("raw read ({:.0} MB/s)", mbs(base)),
                ms(base),
                base / ours
            );
        }
        _ => println!("compaction: (no criterion estimates found)"),
    }
    let before = keyed.input_bytes;
    println!(
        "  space: {:.1} MB before, {:.1} MB after: {:.1} MB reclaimed ({:.1}%); \
         {} of {} records removed; {} -> {} segments",
        before as f64 / 1e6,
        size_after as f64 / 1e6,
        before.saturating_sub(size_after) as f64 / 1e6,
        100.0 * before.saturating_sub(size_after) as f64 / before.max(1) as f64,
        outcome.records_removed,
        keyed.records,
        outcome.segments_before,
        outcome.segments_after
    );
    let Some(segments) = retention else {
        println!("retention: skipped (see above)");
        return;
    };
    match (
        mean_ns("retention", "enforce_retention"),
        mean_ns("retention", "unlink_files"),
    ) {
        (Some(ours), Some(base)) => {
            let per_s = |n: usize, ns: f64| n as f64 / (ns / 1e9);
            println!(
                "{:<46} {:>10.1} {:>9.0} seg/s  {:<28} {:>10.1} {:>6.2}x",
                format!("retention: delete {segments} segments"),
                ms(ours),
                per_s(segments, ours),
                format!(
                    "unlink {} files ({:.0}/s)",
                    3 * segments,
                    per_s(3 * segments, base)
                ),
                ms(base),
                base / ours
            );
        }
        _ => println!("retention: (no criterion estimates found)"),
    }
    if segments < RETENTION_SEGMENTS {
        println!(
            "  ({RETENTION_SEGMENTS} segments need about {} open files, one per flushed \
             segment; the limit here is {}, so this ran with {segments})",
            RETENTION_SEGMENTS as u64 + FD_HEADROOM + 3_000,
            open_file_limit().map_or("unknown".into(), |l| l.to_string())
        );
    }
}
