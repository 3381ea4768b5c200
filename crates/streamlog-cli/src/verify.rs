//! `streamlog verify`: checks a whole store, changing nothing (SQLite's
//! `integrity_check`): every topic's metadata, every partition directory, every batch's
//! CRC and offsets and every index entry.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

/// `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Verify {
    /// The store's directory
    dir: PathBuf,
    /// Print each partition's counts too
    #[arg(long, short = 'v')]
    verbose: bool,
}

/// Prints what the check found; `Ok(true)` if the store is sound.
pub fn run(v: &Verify, out: &mut dyn Write) -> Result<bool, String> {
    // A bar of the segment bytes checked, on a terminal (nothing in a pipe).
    let bar = indicatif::ProgressBar::new(segment_bytes(&v.dir));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "verifying [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let check = streamlog::verify_store_with_progress(&v.dir, &mut |tp, c| {
        bar.set_message(tp.to_string());
        bar.inc(c.bytes);
    });
    bar.finish_and_clear();
    let check = check.map_err(|e| e.to_string())?;
    let report = report(&check, v.verbose).map_err(|e| e.to_string())?;
    match out.write_all(report.as_bytes()) {
        // The reader went away (`streamlog verify DIR | head`): the verdict is still
        // the exit status.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(check.is_ok()),
    }
}

/// What `verify` prints: each problem (and with `verbose` each partition's counts),
/// then the verdict.
fn report(check: &streamlog::StoreCheck, verbose: bool) -> Result<String, std::fmt::Error> {
    use std::fmt::Write;
    let mut out = String::new();
    let (mut batches, mut bytes) = (0u64, 0u64);
    for (tp, c) in &check.partitions {
        batches += c.batches;
        bytes += c.bytes;
        if verbose {
            writeln!(
                out,
                "{tp}: {} segments, {} batches, {} bytes, offsets {}..{}, {} index entries",
                c.segments,
                c.batches,
                c.bytes,
                c.log_start_offset,
                c.log_end_offset,
                c.index_entries_checked
            )?;
        }
        for p in &c.index_problems {
            writeln!(out, "problem: {tp}: {p}")?;
        }
        if !c.durable_position_checked {
            writeln!(
                out,
                "note: {tp}: not checked against its synced position: the running store \
                 moved it during the check (run verify again, or on the closed store)"
            )?;
        }
    }
    for p in &check.problems {
        writeln!(out, "problem: {p}")?;
    }
    let verdict = if check.is_ok() {
        "ok"
    } else {
        "PROBLEMS FOUND"
    };
    writeln!(
        out,
        "{verdict}: {} partitions, {batches} batches, {bytes} bytes checked",
        check.partitions.len()
    )?;
    Ok(out)
}

/// The bytes of the store's segment files (`*.log` one level down): the bar's total.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}
