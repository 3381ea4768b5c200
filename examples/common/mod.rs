//! What the examples `quickstart`, `clickstream`, `groups` and `profiles` share: their
//! argument parsing helpers, the fresh temp dir a run uses by default, and the way `main`
//! turns parsed arguments and a run's outcome into output and an exit status.
//!
//! Each example includes it with `#[path = "common/mod.rs"] mod common;` (cargo does not
//! build `examples/common/mod.rs` as an example of its own).

// Every example includes this module and uses only part of it.
#![allow(dead_code)]

use std::fmt::Display;
use std::iter::Skip;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the command line asks for: a run with arguments `A`, or the usage text.
pub enum Parsed<A> {
    Run(A),
    Help,
}

/// The value after the flag `name`.
pub fn next_value(args: &mut impl Iterator<Item = String>, name: &str) -> Result<String, String> {
    args.next().ok_or(format!("{name} needs a value"))
}

/// `value` of the flag `name` as a whole number of at least 1.
pub fn parse_positive<T>(name: &str, value: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
{
    let n: T = value
        .parse()
        .map_err(|_| format!("{name}: `{value}` is not a whole number"))?;
    if n < T::from(1) {
        return Err(format!("{name} must be at least 1"));
    }
    Ok(n)
}

/// `value` of the flag `name` as a whole number in `range`.
pub fn parse_in_range<T>(name: &str, value: &str, range: RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display,
{
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or(format!(
            "{name}: `{value}` is not a whole number from {} to {}",
            range.start(),
            range.end()
        ))
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

/// The `main` of an example: parses the command line with `parse_args` and runs `run`
/// with the arguments, whose exit status it returns. `--help` prints `usage` (exit 0); a
/// usage error prints the error and `usage` (exit 2).
pub fn main<A>(
    usage: &str,
    parse_args: impl FnOnce(Skip<std::env::Args>) -> Result<Parsed<A>, String>,
    run: impl FnOnce(A) -> ExitCode,
) -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => run(args),
        Ok(Parsed::Help) => {
            println!("{usage}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\n{usage}");
            ExitCode::from(2)
        }
    }
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
