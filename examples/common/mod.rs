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

/// Parses `args` as [`try_parse`] does, panicking if they are rejected.
#[cfg(test)]
pub fn parse_ok<A: clap::Parser>(args: &[&str]) -> A {
    try_parse(args).unwrap_or_else(|e| panic!("{args:?} was rejected: {e}"))
}

/// Asserts that each of `bad` is a usage error (exit status 2), and that the clap
/// definition of `A` is consistent.
#[cfg(test)]
pub fn assert_usage_errors<A: clap::Parser + std::fmt::Debug>(bad: &[&[&str]]) {
    for bad in bad {
        let e = try_parse::<A>(bad).expect_err(&format!("{bad:?} was accepted"));
        assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
    }
    A::command().debug_assert();
}

/// Runs `run` with `args` on a store in a fresh temp dir (removed afterwards) and asserts
/// that it passed every check: the example itself, as `cargo run --example` runs it.
#[cfg(test)]
pub fn assert_run_passes<A, E: std::fmt::Debug>(
    args: &A,
    run: impl FnOnce(&A, &Path) -> Result<Vec<String>, E>,
) {
    let dir = tempfile::tempdir().unwrap();
    let failed = run(args, &dir.path().join("store")).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
}

/// Runs `run` on the store in `dir`, or in a fresh temp dir for `example` when `dir` is
/// `None`, and returns [`finish`]'s exit status for the failed checks it returns (with
/// `dump_topic` as there).
pub fn run_in_dir<E: Display>(
    dir: Option<PathBuf>,
    example: &str,
    dump_topic: Option<&str>,
    run: impl FnOnce(&Path) -> Result<Vec<String>, E>,
) -> ExitCode {
    let fresh = dir.is_none();
    let dir = dir.unwrap_or_else(|| fresh_temp_dir(example));
    finish(run(&dir).map(|failed| (dir, failed)), fresh, dump_topic)
}

/// An error if the store already holds `topic` (left by an earlier run in `dir`): the
/// examples check what they write themselves, so they want a fresh topic.
pub fn check_no_topic(store: &streamlog::Store, dir: &Path, topic: &str) -> Result<(), String> {
    if store.list_topics().iter().any(|t| t == topic) {
        return Err(format!(
            "{} already holds the topic `{topic}` from an earlier run; pass a fresh --dir",
            dir.display()
        ));
    }
    Ok(())
}

/// The offset `group` committed for `topic`'s partition `partition`, if any.
pub fn committed_offset(
    group: &streamlog::consumer::GroupDescription,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    group
        .offsets
        .iter()
        .find(|c| c.partition.topic() == topic && c.partition.partition() == partition)
        .map(|c| c.offset)
}

/// The partition numbers of `partitions`, comma-separated.
pub fn partition_numbers(partitions: &[streamlog::TopicPartition]) -> String {
    let p: Vec<String> = partitions
        .iter()
        .map(|tp| tp.partition().to_string())
        .collect();
    p.join(",")
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
