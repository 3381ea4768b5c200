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
    let check = streamlog::verify_store(&v.dir).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    let (mut batches, mut bytes) = (0u64, 0u64);
    for (tp, c) in &check.partitions {
        batches += c.batches;
        bytes += c.bytes;
        if v.verbose {
            writeln!(
                out,
                "{tp}: {} segments, {} batches, {} bytes, offsets {}..{}, {} index entries",
                c.segments,
                c.batches,
                c.bytes,
                c.log_start_offset,
                c.log_end_offset,
                c.index_entries_checked
            )
            .map_err(io)?;
        }
        for p in &c.index_problems {
            writeln!(out, "problem: {tp}: {p}").map_err(io)?;
        }
    }
    for p in &check.problems {
        writeln!(out, "problem: {p}").map_err(io)?;
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
    )
    .map_err(io)?;
    Ok(check.is_ok())
}
