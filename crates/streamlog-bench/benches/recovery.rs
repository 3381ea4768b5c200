//! The open after a crash: a child process (this binary again) appends `TAIL_MIB` MiB
//! of the standard workload (16-byte keys, 100-byte values) to a `Log` in 16 KiB batches
//! without flushing, and dies with `std::process::abort` (no destructor, no flush: like
//! `kill -9`). The parent then times `Log::open` of that directory, which scans the
//! unflushed tail and compares it with what the disk holds (`O_DIRECT`), writing again
//! the pages that differ.
//!
//! Each open is printed beside a raw baseline on the same files in the same round:
//! `read` of every `.log` file plus a CRC over it. Rows: warm (the page cache as the
//! crash left it, dirty pages included, as after a process crash) and, where the cache
//! can be dropped (root on Linux), cold (synced and dropped, as after a reboot that
//! kept the data); the baseline runs under the same condition.
//!
//! Run with `cargo bench -p streamlog-bench --bench recovery` (`TAIL_MIB` and `ROUNDS` can
//! be set in the environment; defaults 256 and 3).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use streamlog::format::BatchBuilder;
use streamlog::log::{Log, LogConfig};

const CHILD_VAR: &str = "STREAMLOG_RECOVERY_BENCH_DIR";
const BATCH_BYTES: usize = 16 * 1024;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config() -> LogConfig {
    LogConfig::default()
}

/// The child: appends `mib` MiB without a flush, then dies.
fn child(dir: &Path, mib: usize) -> ! {
    let log = Log::open(dir, config()).expect("open");
    let mut rng = common::Rng(0x2545_f491_4f6c_dd1d);
    let mut written = 0usize;
    let mut i = 0i64;
    while written < mib << 20 {
        let mut b = BatchBuilder::with_capacity(BATCH_BYTES + 1024);
        while b.uncompressed_size() < BATCH_BYTES {
            let key = format!("user-{:011}", i % 10_000);
            let value = rng.value(100);
            b.push(
                1_700_000_000_000 + i,
                Some(key.as_bytes()),
                Some(&value),
                &[],
            )
            .expect("push");
            i += 1;
        }
        let mut batch = b.build().expect("build");
        written += batch.len();
        log.append_encoded(&mut batch).expect("append");
    }
    std::process::abort()
}

fn crash_with_tail(dir: &Path, mib: usize) {
    let status = Command::new(std::env::current_exe().expect("exe"))
        .env(CHILD_VAR, dir)
        .env("TAIL_MIB", mib.to_string())
        .status()
        .expect("spawn the child");
    assert!(!status.success(), "the child was to abort");
}

/// Drops the page cache (root on Linux only); whether it could.
fn drop_caches() -> bool {
    nix_sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn nix_sync() {
    let _ = Command::new("sync").status();
}

/// The baseline: reads every `.log` file of `dir` with `read` into one buffer and runs
/// a CRC over it.
fn raw_scan(dir: &Path) -> Duration {
    let t = Instant::now();
    let mut crc = 0u32;
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "log") {
            let mut f = std::fs::File::open(&path).expect("open");
            loop {
                let n = f.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &buf[..n]);
            }
        }
    }
    std::hint::black_box(crc);
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_VAR) {
        child(Path::new(&dir), env_or("TAIL_MIB", 256));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib = env_or("TAIL_MIB", 256);
    let rounds = env_or("ROUNDS", 3);
    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> = vec![
        ("warm cache (process crash)", vec![], vec![]),
        ("cold cache", vec![], vec![]),
    ];
    let mut cold_ok = true;
    for _ in 0..rounds {
        for (row, (_, opens, raws)) in rows.iter_mut().enumerate() {
            if row == 1 && !cold_ok {
                continue;
            }
            let d = tempfile::tempdir().expect("tempdir");
            crash_with_tail(d.path(), mib);
            if row == 1 {
                cold_ok = drop_caches();
                if !cold_ok {
                    continue;
                }
            }
            let t = Instant::now();
            let log = Log::open(d.path(), config()).expect("reopen");
            opens.push(t.elapsed());
            let report = log.recovery_report().clone();
            assert!(!report.clean_shutdown, "the child crashed");
            drop(log);
            if row == 1 {
                drop_caches();
            }
            raws.push(raw_scan(d.path()));
        }
    }
    println!("open after a crash, {mib} MiB unflushed, median of {rounds} rounds");
    println!(
        "{:<30} {:>12} {:>14} {:>8}",
        "row", "open", "read+CRC", "ratio"
    );
    for (name, opens, raws) in rows {
        if opens.is_empty() {
            println!("{name:<30} (skipped: the page cache cannot be dropped here)");
            continue;
        }
        let (o, r) = (median(opens), median(raws));
        println!(
            "{name:<30} {:>10.1}ms {:>12.1}ms {:>7.2}x",
            o.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            o.as_secs_f64() / r.as_secs_f64()
        );
    }
}
