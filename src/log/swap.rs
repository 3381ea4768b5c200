//! The compaction swap: how the cleaner's rewrite of a group of segments replaces them,
//! crash-safe, as Kafka's does (writing it: [`Log::swap_group`]), and how opening a
//! directory finishes a swap a crash interrupted (checked first without changing
//! anything: [`plan_swaps`]; applied once the whole directory passed its checks:
//! [`finish_swaps`]).
//!
//! The protocol: (1) the cleaner writes `<base>.log.cleaned`, and here its indexes
//! `<base>.index.cleaned`, `<base>.timeindex.cleaned` and, if the group's first segment
//! has a `.txnindex` or the new one lists anything, `<base>.txnindex.cleaned` (possibly
//! empty), all fsync'd; (2) rename the indexes to `.swap`, sync the directory, then
//! rename the log to `<base>.log.swap`, and sync it again: from here the new data is
//! committed; (3) unlink the group's old files (a later segment's `.txnindex` too) and
//! sync the directory; (4) rename the index swaps (removing an empty `.txnindex`),
//! sync, and then the log swap to its final name, sync. (No file system promises that
//! renames reach the disk in order: each index is in place before its log.) Opening a directory finishes a swap it finds,
//! with the indexes written before it (no rebuild), and deletes `.cleaned` files and
//! index swaps without a log swap (rolling back an unfinished write). Readers holding
//! the old snapshot keep reading the old files through their open handles, and the
//! `.txnindex` entries the pass read into memory.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Log;
use super::segment::{self, Segment, file_name, parse_file_name};
use super::txn_index::AbortedTxn;
use crate::error::{Error, Result, io_ctx};
use crate::fs::{File, FileSystem};

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

impl Log {
    /// Steps 1-4 of the swap for a group whose rewrite `file` (`<base>.log.cleaned`)
    /// `written` says how far was written and synced, and which `.txnindex` entries it
    /// gets (`None`: it gets no `.txnindex`). Returns the bytes written. A failure
    /// before the commit point removes what was written (a failed fsync also poisons the
    /// log); after it, any failure poisons the log (reopening finishes the swap).
    ///
    /// # Errors
    /// `written`'s error; `Io`; `Corruption` if the rewrite does not scan clean.
    pub(super) fn swap_group(
        &self,
        group: &[Arc<Segment>],
        file: &dyn File,
        written: Result<(u64, Option<Vec<AbortedTxn>>)>,
    ) -> Result<u64> {
        let base = group[0].base;
        let cleaned_path = self.dir.join(format!("{}.cleaned", file_name(base, "log")));
        let swap_path = self.dir.join(format!("{}.swap", file_name(base, "log")));
        let index_names = |stage: &str| {
            INDEXES.map(|suffix| {
                self.dir
                    .join(format!("{}.{stage}", file_name(base, suffix)))
            })
        };
        let [index_cleaned, time_cleaned, txn_cleaned] = index_names("cleaned");
        let [index_swap, time_swap, txn_swap] = index_names("swap");
        let scan = written.and_then(|(n, txn_entries)| {
            let scan = self.write_cleaned_indexes(file, n, base, &index_cleaned, &time_cleaned)?;
            let mut renames = vec![(&index_cleaned, &index_swap), (&time_cleaned, &time_swap)];
            if let Some(entries) = &txn_entries {
                self.write_cleaned_txn_index(&txn_cleaned, entries)?;
                renames.push((&txn_cleaned, &txn_swap));
            }
            for (from, to) in renames {
                self.fs
                    .rename(from, to)
                    .map_err(io_ctx(format!("rename {}", from.display())))?;
            }
            // The index swaps' names are down before the log's: a power cut that kept
            // the log swap but not one of them would leave the old index taken for the
            // new one at the next open (no file system promises the order of renames).
            self.fsync_or_poison(format!("fsync directory {}", self.dir.display()), || {
                self.fs.sync_dir(&self.dir)
            })?;
            Ok((n, scan, txn_entries))
        });
        let discard = || {
            for p in [
                &cleaned_path,
                &index_cleaned,
                &time_cleaned,
                &txn_cleaned,
                &index_swap,
                &time_swap,
                &txn_swap,
            ] {
                if self.fs.exists(p).unwrap_or(false) && self.fs.remove_file(p).is_err() {
                    tracing::warn!("{}: could not remove", p.display());
                }
            }
        };
        let (written, scan, txn_entries) = match scan {
            Ok(done) => done,
            Err(e) => {
                discard();
                return Err(e);
            }
        };
        if let Err(e) = self.fs.rename(&cleaned_path, &swap_path) {
            discard();
            return Err(Error::io(format!("rename {}", cleaned_path.display()), e));
        }
        // From here the swap is committed (once the directory sync lands): any failure
        // leaves it for the next open to finish, and the log stops taking writes.
        self.swap_in(group, &swap_path, &scan, txn_entries.as_deref())
            .inspect_err(|e| {
                self.poison_with(format!(
                    "compaction swap of {} failed part-way: {e}",
                    swap_path.display()
                ));
            })?;
        Ok(written)
    }

    /// The cleaned segment's index files, written and fsync'd before the swap: finishing
    /// the swap (here or at open) then needs no index rebuild. Returns the scan, which
    /// also checks the batches just written.
    fn write_cleaned_indexes(
        &self,
        file: &dyn crate::fs::File,
        len: u64,
        base: i64,
        index: &Path,
        time: &Path,
    ) -> Result<segment::Scan> {
        let params = segment::ScanParams {
            base,
            index_interval_bytes: self.config.index_interval_bytes,
            max_offset_entries: (self.config.segment_index_bytes / super::index::OFFSET_ENTRY)
                as usize,
            max_time_entries: (self.config.segment_index_bytes / super::index::TIME_ENTRY) as usize,
            rules: self.rules(),
        };
        let scan = segment::scan(file, len, params)
            .map_err(io_ctx(format!("scan the cleaned segment {base}")))?;
        if let Some((pos, reason)) = &scan.stopped {
            return Err(Error::corruption(
                index.with_extension(""),
                *pos,
                reason.clone(),
            ));
        }
        let fs = self.fs.as_ref();
        let bytes = self.config.segment_index_bytes;
        let what = || format!("write the indexes of the cleaned segment {base}");
        let offsets = super::index::Index::<super::index::OffsetEntry>::create(fs, index, bytes)
            .and_then(|i| i.replace(scan.offset_entries.clone(), false).map(|()| i))
            .map_err(io_ctx(what()))?;
        self.fsync_or_poison(format!("fsync {}", index.display()), || offsets.sync())?;
        let times = super::index::Index::<super::index::TimeEntry>::create(fs, time, bytes)
            .and_then(|i| i.replace(scan.time_entries.clone(), false).map(|()| i))
            .map_err(io_ctx(what()))?;
        self.fsync_or_poison(format!("fsync {}", time.display()), || times.sync())?;
        Ok(scan)
    }

    /// Steps 2-4 of the swap (see the module docs), then the new segment replaces the
    /// group in the readers' snapshot. `txn_entries`: the `.txnindex` swap's entries, if
    /// one was written.
    fn swap_in(
        &self,
        group: &[Arc<Segment>],
        swap_path: &Path,
        scan: &segment::Scan,
        txn_entries: Option<&[AbortedTxn]>,
    ) -> Result<()> {
        let base = group[0].base;
        let fs = self.fs.as_ref();
        let sync_dir = || {
            fs.sync_dir(&self.dir)
                .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))
        };
        sync_dir()?;
        // Readers of the current list keep reading the group until the new segment
        // replaces it below, although its files go first: a log file is removed as
        // one in use (its handle stays readable: the pass may have read it with pread,
        // unmapped, and a cache of descriptors closed it since), its indexes are in
        // memory, and the pass read their `.txnindex` entries into memory.
        // (The first segment's files are replaced by the renames below.)
        for seg in &group[1..] {
            let txn = seg.txn_index.path();
            let txn_exists = fs
                .exists(txn)
                .map_err(io_ctx(format!("stat {}", txn.display())))?;
            let paths = [
                Some(seg.log_path.as_path()),
                Some(seg.offset_index.path()),
                Some(seg.time_index.path()),
                txn_exists.then_some(txn),
            ];
            for p in paths.into_iter().flatten() {
                if p == seg.log_path.as_path() {
                    fs.remove_file_in_use(p)
                } else {
                    fs.remove_file(p)
                }
                .map_err(io_ctx(format!("remove {}", p.display())))?;
            }
        }
        sync_dir()?;
        let new = self.install_swap(swap_path, base, scan, txn_entries)?;
        let mut segs = self.segments.write();
        let mut list: Vec<Arc<Segment>> = Vec::with_capacity(segs.len());
        for s in segs.iter() {
            if Arc::ptr_eq(s, &group[0]) {
                list.push(new.clone());
            } else if !group.iter().any(|g| Arc::ptr_eq(g, s)) {
                list.push(s.clone());
            }
        }
        *segs = Arc::new(list);
        drop(segs);
        // Readers of the old list that still reach a removed file now fail, find the
        // list changed, and read again.
        for seg in group {
            seg.forget_log_descriptor();
        }
        // The replaced files are gone: the next flush must not fsync them.
        self.writer
            .lock()
            .unflushed
            .retain(|s| !group.iter().any(|g| Arc::ptr_eq(g, s)));
        Ok(())
    }

    /// Renames the swap files to their final names and opens the new segment, sealed,
    /// with the indexes written before the swap (`scan` holds their entries). An empty
    /// `.txnindex` swap is removed once in place (a crash may leave it: an empty index
    /// lists nothing).
    fn install_swap(
        &self,
        swap_path: &Path,
        base: i64,
        scan: &segment::Scan,
        txn_entries: Option<&[AbortedTxn]>,
    ) -> Result<Arc<Segment>> {
        let fs = self.fs.as_ref();
        let log_path = self.dir.join(file_name(base, "log"));
        let txn_swapped = txn_entries.is_some().then_some("txnindex");
        for suffix in ["index", "timeindex"].into_iter().chain(txn_swapped) {
            let name = file_name(base, suffix);
            let from = self.dir.join(format!("{name}.swap"));
            fs.rename(&from, &self.dir.join(&name))
                .map_err(io_ctx(format!("rename {}", from.display())))?;
        }
        let txn_path = self.dir.join(file_name(base, "txnindex"));
        if txn_entries.is_some_and(<[AbortedTxn]>::is_empty) {
            fs.remove_file(&txn_path)
                .map_err(io_ctx(format!("remove {}", txn_path.display())))?;
        }
        // The indexes in place before the log: a power cut that kept the log's rename
        // but not an index's would leave the index swap without its log swap, removed
        // as a stray at the next open, and the old index with the new log.
        fs.sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        fs.rename(swap_path, &log_path)
            .map_err(io_ctx(format!("rename {}", swap_path.display())))?;
        let seg = Segment::open(fs, &self.dir, base, self.config.segment_index_bytes, false)
            .map_err(io_ctx(format!("open {}", log_path.display())))?;
        seg.adopt_scan(scan);
        if txn_entries.is_none_or(<[AbortedTxn]>::is_empty) {
            seg.txn_index.set_absent();
        }
        fs.sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync directory {}", self.dir.display())))?;
        seg.sealed.store(true, Ordering::Release);
        seg.release_index_files();
        Ok(Arc::new(seg))
    }

    /// Writes the cleaned `.txnindex` of a group (`entries`, possibly none) at `path`,
    /// synced.
    fn write_cleaned_txn_index(&self, path: &Path, entries: &[AbortedTxn]) -> Result<()> {
        let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
        let p = path.display();
        let f = self
            .fs
            .open(path, true)
            .map_err(io_ctx(format!("create {p}")))?;
        f.set_len(0)
            .and_then(|()| f.write_all_at(&bytes, 0))
            .map_err(io_ctx(format!("write {p}")))?;
        self.fsync_or_poison(format!("fsync {p}"), || f.sync_data())
    }
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
/// directory after each step. The segment at the swap's own base is not removed but
/// replaced by the rename, as the live swap does: a read-only reader following the
/// directory never finds the offsets it held missing (it would skip them).
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
        let own = file_name(s.base, "log");
        for n in s.covered.iter().filter(|n| **n != own) {
            fs.remove_file(&dir.join(n))
                .map_err(io_ctx(format!("remove {}/{n}", dir.display())))?;
        }
        sync_dir()?;
        for n in &s.indexes {
            let to = n.trim_end_matches(".swap");
            fs.rename(&dir.join(n), &dir.join(to))
                .map_err(io_ctx(format!("rename {}/{n}", dir.display())))?;
        }
        // The indexes in place before the log (see `install_swap`).
        if !s.indexes.is_empty() {
            sync_dir()?;
        }
        let swap = dir.join(&s.name);
        fs.rename(&swap, &dir.join(file_name(s.base, "log")))
            .map_err(io_ctx(format!("rename {}", swap.display())))?;
        sync_dir()?;
        tracing::warn!(
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
