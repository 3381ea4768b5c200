//! Compaction swaps a crash interrupted, finished at open: checked first without
//! changing anything ([`plan_swaps`]), applied once the whole directory passed its
//! checks ([`finish_swaps`]). The swap protocol itself is described in `clean.rs`.

use std::path::Path;

use super::segment::{self, file_name, parse_file_name};
use crate::error::{Error, Result, io_ctx};
use crate::fs::FileSystem;

/// The index files a swap replaces along with its `.log`.
const INDEXES: [&str; 3] = ["index", "timeindex", "txnindex"];

/// A compaction swap a crash interrupted: `<base>.log.swap` (fsync'd before it got that
/// name) holds offsets `base..end` and replaces the segment files in `covered`; its
/// index files, written before it, wait in `indexes` (`<base>.index.swap`,
/// `<base>.timeindex.swap` and, when the cleaner wrote one, `<base>.txnindex.swap`;
/// absent once renamed into place).
#[derive(Debug)]
pub(crate) struct PendingSwap {
    /// The swap file's name.
    pub name: String,
    pub base: i64,
    pub end: i64,
    /// Names of the `.log`, `.index`, `.timeindex` and `.txnindex` files it replaces.
    pub covered: Vec<String>,
    /// Names of its index swaps still to rename.
    pub indexes: Vec<String>,
}

/// What opening a directory must do to finish interrupted compaction swaps.
#[derive(Debug, Default)]
pub(crate) struct SwapPlan {
    pub swaps: Vec<PendingSwap>,
    /// Index swaps of a swap that never committed (no `.log.swap`): removed.
    pub strays: Vec<String>,
}

/// Checks the compaction swaps a crash interrupted, without changing anything: each
/// `<base>.log.swap` in `names` must scan clean; it will replace the segment files whose
/// base offsets it covers and become `<base>.log`, with the index files written before
/// it (an index at `base` whose `.swap` is gone was already renamed into place: it is
/// the new one and stays; the cleaner writes a `.txnindex` swap whenever a `.txnindex`
/// is at `base`, so this holds for it too). Returns the plan, in the order [`finish_swaps`] applies it,
/// and the names the directory holds once it is applied.
pub(crate) fn plan_swaps(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
    params: impl Fn(i64) -> segment::ScanParams,
) -> Result<(SwapPlan, Vec<String>)> {
    let mut after: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    let mut plan = SwapPlan::default();
    let index_swap_base = |n: &str| {
        let stem = n.strip_suffix(".swap")?;
        INDEXES.iter().find_map(|suf| parse_file_name(stem, suf))
    };
    let log_swaps: std::collections::HashSet<i64> = names
        .iter()
        .filter_map(|n| {
            n.strip_suffix(".swap")
                .and_then(|n| parse_file_name(n, "log"))
        })
        .collect();
    for name in names {
        if index_swap_base(name).is_some_and(|b| !log_swaps.contains(&b)) {
            after.remove(name);
            plan.strays.push(name.clone());
        }
    }
    for name in names {
        let Some(base) = name
            .strip_suffix(".swap")
            .and_then(|n| parse_file_name(n, "log"))
        else {
            continue;
        };
        let swap = dir.join(name);
        let (file, len) = segment::open_sized(fs, &swap)?;
        let scan = segment::scan(file.as_ref(), len, params(base))
            .map_err(io_ctx(format!("scan {}", swap.display())))?;
        if let Some((pos, reason)) = scan.stopped {
            return Err(Error::corruption(&swap, pos, reason));
        }
        let end = scan.next_offset.unwrap_or(base);
        let indexes: Vec<String> = INDEXES
            .iter()
            .map(|suf| format!("{}.swap", file_name(base, suf)))
            .filter(|n| after.contains(n))
            .collect();
        let covered: Vec<String> = after
            .iter()
            .filter(|n| {
                let renamed_index = INDEXES.iter().any(|suf| {
                    parse_file_name(n, suf) == Some(base) && !indexes.contains(&format!("{n}.swap"))
                });
                !renamed_index
                    && ["log"].iter().chain(&INDEXES).any(|suf| {
                        parse_file_name(n, suf)
                            .is_some_and(|b| b >= base && b < end.max(base.saturating_add(1)))
                    })
            })
            .cloned()
            .collect();
        for n in covered.iter().chain(&indexes) {
            after.remove(n);
        }
        after.remove(name);
        after.insert(file_name(base, "log"));
        for n in &indexes {
            after.insert(n.trim_end_matches(".swap").to_string());
        }
        plan.swaps.push(PendingSwap {
            name: name.clone(),
            base,
            end,
            covered,
            indexes,
        });
    }
    Ok((plan, after.into_iter().collect()))
}

/// Applies a [`plan_swaps`] plan: removes stray index swaps, then for each swap the
/// files it replaces, renames its index swaps and then itself into place, syncing the
/// directory after each step.
pub(crate) fn finish_swaps(fs: &dyn FileSystem, dir: &Path, plan: &SwapPlan) -> Result<()> {
    let sync_dir = || {
        fs.sync_dir(dir)
            .map_err(io_ctx(format!("fsync directory {}", dir.display())))
    };
    for n in &plan.strays {
        fs.remove_file(&dir.join(n))
            .map_err(io_ctx(format!("remove {}/{n}", dir.display())))?;
    }
    for s in &plan.swaps {
        for n in &s.covered {
            fs.remove_file(&dir.join(n))
                .map_err(io_ctx(format!("remove {}/{n}", dir.display())))?;
        }
        sync_dir()?;
        for n in &s.indexes {
            let to = n.trim_end_matches(".swap");
            fs.rename(&dir.join(n), &dir.join(to))
                .map_err(io_ctx(format!("rename {}/{n}", dir.display())))?;
        }
        let swap = dir.join(&s.name);
        fs.rename(&swap, &dir.join(file_name(s.base, "log")))
            .map_err(io_ctx(format!("rename {}", swap.display())))?;
        sync_dir()?;
        log::warn!(
            "{}: finished a compaction swap interrupted by a crash (offsets {}..{})",
            dir.display(),
            s.base,
            s.end
        );
    }
    if !plan.strays.is_empty() && plan.swaps.is_empty() {
        sync_dir()?;
    }
    Ok(())
}
