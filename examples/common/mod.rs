//! What the examples `quickstart`, `clickstream`, `groups` and `profiles` share: the fresh
//! temp dir a run uses by default, the way a run's outcome becomes output and an exit
//! status, and (for their tests) parsing a command line with their clap `Args`.
//!
//! Each example includes it with `#[path = "common/mod.rs"] mod common;` (cargo does not
//! build `examples/common/mod.rs` as an example of its own). Their arguments are clap
//! derives: `--help` prints the usage (exit 0), a usage error prints the error and the
//! usage (exit 2).

// Every example includes this module and uses only part of it.
#![allow(dead_code)]

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// Parses `args` (without the program name) as the example's command line, as
/// `A::parse()` would, but returning the usage error instead of exiting.
#[cfg(test)]
pub fn try_parse<A: clap::Parser>(args: &[&str]) -> Result<A, clap::Error> {
    A::try_parse_from(std::iter::once("example").chain(args.iter().copied()))
}

/// A whole number of at least 1: the `value_parser` of the examples' counts.
pub fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("`{value}` is not a whole number")),
    }
}

/// A directory under the system temp dir that no other run uses:
/// `streamlog-{example}-{pid}-{nanos}`.
pub fn fresh_temp_dir(example: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "streamlog-{example}-{}-{nanos}",
        std::process::id()
    ))
}

/// Runs `run` on the store in `dir`, or in a fresh temp dir for `example` when `dir` is
/// `None`, and returns [`finish`]'s exit status for the failed checks it returns.
pub fn run_in_dir<E: Display>(
    dir: Option<PathBuf>,
    example: &str,
    run: impl FnOnce(&Path) -> Result<Vec<String>, E>,
) -> ExitCode {
    let fresh = dir.is_none();
    let dir = dir.unwrap_or_else(|| fresh_temp_dir(example));
    finish(run(&dir).map(|failed| (dir, failed)), fresh, None)
}

/// The exit status of a run that used the store in `dir` and ended with the failed
/// checks `failed` (none: success) or an error. On success `dir` is removed when it is a
/// fresh temp dir (`fresh`), and otherwise, with a `dump_topic`, the command that dumps
/// that topic's partition 0 is printed; failed checks are printed and `dir` is kept; an
/// error is printed. 0 on success, 1 otherwise.
pub fn finish<E: Display>(
    result: Result<(PathBuf, Vec<String>), E>,
    fresh: bool,
    dump_topic: Option<&str>,
) -> ExitCode {
    match result {
        Ok((dir, failed)) if failed.is_empty() => {
            if fresh {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    eprintln!("warning: could not remove {}: {e}", dir.display());
                }
            } else if let Some(topic) = dump_topic {
                println!(
                    "inspect the files with: cargo run -p streamlog-cli -- dump {}",
                    dir.join(format!("{topic}-0")).display()
                );
            }
            ExitCode::SUCCESS
        }
        Ok((dir, failed)) => {
            for f in &failed {
                eprintln!("FAILED: {f}");
            }
            eprintln!("the store is kept in {}", dir.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
