//! Opening a store directory: finishing or rolling back topic changes a crash
//! interrupted, checking that the metadata and the partition directories agree, and
//! the report of what was found and done ([`StoreRecoveryReport`]).
//!
//! The store removes only directories it can prove are its own: those whose
//! `partition.metadata` names the topic id of an interrupted change (or that are still
//! empty, as a crash right after `mkdir` leaves them). Every other directory is left
//! alone and listed. A topic whose directory is missing, or whose directory names
//! another topic id, or a directory of a topic beyond its partition count, is an error
//! at open: never a deletion, and never a silently empty partition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::meta::{
    Intent, PARTITION_METADATA, TopicId, TopicMeta, read_partition_topic_id,
    write_partition_metadata,
};
use super::{
    LOCK_FILE, METADATA_TMP, PRODUCER_IDS_FILE, PRODUCER_IDS_TMP, TOPICS_DIR, partition_dir_name,
};
use crate::error::{Error, Result, io_ctx};
use crate::fs::FileSystem;
use crate::log::{DURABLE_FILE, RecoveryReport, WriteStep};
use crate::topic::TopicPartition;
use crate::topic::validate_topic_name;

/// What [`Store::open`](crate::Store::open) found and did; see
/// [`Store::recovery_report`](crate::Store::recovery_report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreRecoveryReport {
    /// Each partition's recovery (internal topics included), in topic and partition
    /// order: truncated ranges and bytes, rebuilt indexes, finished compaction swaps.
    pub partitions: Vec<PartitionRecovery>,
    /// Topic changes a crash interrupted, and what open did about them.
    pub interrupted_changes: Vec<String>,
    /// Entries of the store directory that are not the store's, left untouched.
    pub directories_left_alone: Vec<PathBuf>,
    /// Committed offsets lowered because the records they pointed past were lost (a
    /// crash dropped unsynced records): the group resumes at `to`, never past its data.
    pub offsets_reset: Vec<CommittedOffsetReset>,
    /// Committed offsets dropped because their topic was deleted (and perhaps created
    /// again: no old offset applies to a new topic of the same name).
    pub offsets_dropped: usize,
    /// Transactions a crash left open in a partition, and how open closed them.
    pub transactions: Vec<RecoveredTransaction>,
}

/// A transaction a crash left open in a partition, closed at open: committed if the
/// store had recorded its commit decision, aborted otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTransaction {
    /// The partition holding its records.
    pub partition: TopicPartition,
    /// Its producer id.
    pub producer_id: i64,
    /// The producer epoch its records carry.
    pub producer_epoch: i16,
    /// Whether it was committed (else aborted).
    pub committed: bool,
}

impl StoreRecoveryReport {
    /// Whether a crash cost anything or anything needed attention: a truncated
    /// partition, bytes a failed fsync had kept from the disk written again, an
    /// interrupted change, a foreign directory, a lowered commit.
    pub fn is_eventful(&self) -> bool {
        self.partitions
            .iter()
            .any(|p| p.report.truncation.is_some() || p.report.bytes_rewritten > 0)
            || !self.interrupted_changes.is_empty()
            || !self.directories_left_alone.is_empty()
            || !self.offsets_reset.is_empty()
            || self.offsets_dropped > 0
            || !self.transactions.is_empty()
    }
}

/// One partition's part of a [`StoreRecoveryReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecovery {
    /// The partition.
    pub partition: TopicPartition,
    /// What its log's recovery found and did.
    pub report: RecoveryReport,
}

/// A committed offset that pointed past records a crash removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffsetReset {
    /// The consumer group.
    pub group: String,
    /// The partition.
    pub partition: TopicPartition,
    /// The offset that was committed.
    pub from: i64,
    /// Where the group resumes: where the records of the commit's epoch end now.
    pub to: i64,
}

/// The topics the metadata describes, after interrupted changes were settled, with the
/// ids they carry; and the names of topics written before ids existed (given one now).
pub(super) struct Settled {
    pub(super) topics: BTreeMap<String, (TopicMeta, TopicId)>,
    pub(super) adopted: Vec<String>,
}

/// Reads `.topics/`, settles interrupted changes, gives legacy topics an id, and checks
/// every partition directory against the metadata.
pub(super) fn settle(
    fs: &dyn FileSystem,
    dir: &Path,
    report: &mut StoreRecoveryReport,
) -> Result<Settled> {
    let meta_dir = dir.join(TOPICS_DIR);
    let mut settled = Settled {
        topics: BTreeMap::new(),
        adopted: Vec::new(),
    };
    let mut names = fs
        .list_dir(&meta_dir)
        .map_err(io_ctx(format!("list {}", meta_dir.display())))?;
    // A metadata write a crash interrupted (settling below writes through the same
    // temporary name).
    if let Some(at) = names.iter().position(|n| n == METADATA_TMP) {
        let path = meta_dir.join(names.remove(at));
        fs.remove_file(&path)
            .map_err(io_ctx(format!("remove {}", path.display())))?;
    }
    for name in names {
        let path = meta_dir.join(&name);
        // Not a name the store writes (an editor's backup `t~` or `#t#`, a file manager's
        // note), so no topic's metadata: left alone, as the read-only opener leaves it.
        // (The store's errors ask the user to edit files here.)
        if let Err(e) = validate_topic_name(&name) {
            tracing::warn!(
                "{}: not a topic's metadata file ({e}); ignored",
                path.display()
            );
            continue;
        }
        let bytes = crate::log::read_small_file(fs, &path)
            .map_err(io_ctx(format!("read {}", path.display())))?
            .unwrap_or_default();
        let text =
            String::from_utf8(bytes).map_err(|_| Error::corruption(&path, 0, "not UTF-8"))?;
        let mut meta =
            TopicMeta::parse(&text).map_err(|reason| Error::corruption(&path, 0, reason))?;
        let partitions = meta.config.partitions;
        match (meta.intent, meta.id) {
            (Some(Intent::Create | Intent::Delete), id) => {
                let what = if meta.intent == Some(Intent::Create) {
                    "creation"
                } else {
                    "deletion"
                };
                let why = if what == "creation" {
                    Removal::UndoCreate
                } else {
                    Removal::Delete
                };
                for p in 0..partitions {
                    let pdir = partition_dir_name(&name, p);
                    remove_owned_dir(fs, dir, &pdir, id, why, report)?;
                }
                fs.sync_dir(dir)
                    .map_err(io_ctx(format!("fsync {}", dir.display())))?;
                fs.remove_file(&path)
                    .map_err(io_ctx(format!("remove {}", path.display())))?;
                fs.sync_dir(&meta_dir)
                    .map_err(io_ctx(format!("fsync {}", meta_dir.display())))?;
                let done = if what == "creation" {
                    "rolled back"
                } else {
                    "completed"
                };
                report.interrupted_changes.push(format!(
                    "the {what} of topic `{name}` was interrupted; {done}"
                ));
                continue;
            }
            (Some(Intent::Grow(total)), id) => {
                for p in partitions..total {
                    let pdir = partition_dir_name(&name, p);
                    remove_owned_dir(fs, dir, &pdir, id, Removal::UndoGrow, report)?;
                }
                fs.sync_dir(dir)
                    .map_err(io_ctx(format!("fsync {}", dir.display())))?;
                meta.intent = None;
                write_meta(fs, dir, &name, &meta)?;
                report.interrupted_changes.push(format!(
                    "adding partitions {partitions}..{total} to topic `{name}` was \
                     interrupted; rolled back"
                ));
            }
            (None, _) => {}
        }
        let id = match meta.id {
            Some(id) => {
                if meta.adopting {
                    settled.adopted.push(name.clone());
                }
                id
            }
            None => {
                // Written before topic ids existed: its directories are the ones its
                // metadata names; give it an id and write that into each of them. An
                // open that crashed part-way may have written some: that id is kept.
                let mut found = Vec::new();
                for p in 0..partitions {
                    let pdir = dir.join(partition_dir_name(&name, p));
                    if fs
                        .exists(&pdir)
                        .map_err(io_ctx(format!("stat {}", pdir.display())))?
                    {
                        found.push((pdir.clone(), read_partition_topic_id(fs, &pdir)?));
                    }
                }
                let id = found
                    .iter()
                    .find_map(|(_, id)| *id)
                    .unwrap_or_else(TopicId::random);
                for (pdir, existing) in &found {
                    if existing.is_none() {
                        write_partition_metadata(fs, pdir, id)?;
                    }
                }
                meta.id = Some(id);
                // Until its old commits are written again with the id (`adopting`
                // cleared after that), they are matched to it by name.
                meta.adopting = true;
                write_meta(fs, dir, &name, &meta)?;
                settled.adopted.push(name.clone());
                id
            }
        };
        settled.topics.insert(name, (meta, id));
    }
    check_directories(fs, dir, &settled, report)?;
    Ok(settled)
}

/// Writes a topic's metadata file atomically (a temporary file, fsync, rename,
/// directory fsync).
pub(super) fn write_meta(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    meta: &TopicMeta,
) -> Result<()> {
    write_meta_steps(fs, dir, name, meta).map_err(|(_, e)| e)
}

/// [`write_meta`], telling which step failed (after the rename, the new metadata is in
/// place but may not survive a crash).
pub(super) fn write_meta_steps(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    meta: &TopicMeta,
) -> std::result::Result<(), (WriteStep, Error)> {
    crate::log::write_file_atomically_steps(
        fs,
        &dir.join(TOPICS_DIR),
        name,
        METADATA_TMP,
        meta.render().as_bytes(),
    )
    .map_err(|(step, e)| {
        let context = format!("write the metadata of topic `{name}`");
        (step, io_ctx(context)(e))
    })
}

/// Every partition the metadata names has its directory, naming the topic's id; every
/// other entry is left alone (and listed), except a directory of a known topic beyond
/// its partition count that names the topic's id: the metadata lost partitions, an
/// error.
fn check_directories(
    fs: &dyn FileSystem,
    dir: &Path,
    settled: &Settled,
    report: &mut StoreRecoveryReport,
) -> Result<()> {
    let mut expected = std::collections::BTreeSet::new();
    for (name, (meta, id)) in &settled.topics {
        for p in 0..meta.config.partitions {
            let pdir_name = partition_dir_name(name, p);
            let pdir = dir.join(&pdir_name);
            if !fs
                .exists(&pdir)
                .map_err(io_ctx(format!("stat {}", pdir.display())))?
            {
                return Err(Error::corruption(
                    &pdir,
                    0,
                    format!(
                        "topic `{name}` has {} partitions but this directory is missing; \
                         its committed offsets would point at reused offsets, so the store \
                         will not create it empty (restore it, or delete the topic's \
                         metadata file {}/{TOPICS_DIR}/{name} to drop the topic)",
                        meta.config.partitions,
                        dir.display()
                    ),
                ));
            }
            match read_partition_topic_id(fs, &pdir)? {
                Some(found) if found != *id => {
                    return Err(Error::corruption(
                        pdir.join(PARTITION_METADATA),
                        0,
                        format!("names topic id {found}, but topic `{name}` has id {id}"),
                    ));
                }
                _ => {}
            }
            expected.insert(pdir_name);
        }
    }
    for entry in fs
        .list_dir(dir)
        .map_err(io_ctx(format!("list {}", dir.display())))?
    {
        let path = dir.join(&entry);
        if entry == TOPICS_DIR
            || entry == LOCK_FILE
            || entry == PRODUCER_IDS_FILE
            || entry == PRODUCER_IDS_TMP
            || expected.contains(&entry)
            || report.directories_left_alone.contains(&path)
        {
            continue;
        }
        if let Some((topic, p)) = entry.rsplit_once('-')
            && let Some((meta, id)) = settled.topics.get(topic)
            && p.parse::<i32>().is_ok_and(|p| p >= meta.config.partitions)
            && fs.list_dir(&path).is_ok()
            && read_partition_topic_id(fs, &path).ok().flatten() == Some(*id)
        {
            return Err(Error::corruption(
                &path,
                0,
                format!(
                    "this partition of topic `{topic}` is beyond the {} partitions its \
                     metadata lists; the store will neither delete it nor ignore it \
                     (restore `partitions=` in {}/{TOPICS_DIR}/{topic})",
                    meta.config.partitions,
                    dir.display()
                ),
            ));
        }
        tracing::warn!(
            "{}: leaving {entry} alone: it is not a partition directory of this store",
            dir.display()
        );
        report.directories_left_alone.push(path);
    }
    Ok(())
}

/// Why a partition directory is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// Its topic was deleted.
    Delete,
    /// Its topic was deleted, and its log poisoned: its files go, but its
    /// `partition.metadata` and the directory stay for the next open (removing the
    /// metadata last needs the directory fsync'd, and a failed fsync, maybe that one,
    /// is never retried).
    DeletePoisoned,
    /// A topic creation was rolled back: the partition never held records.
    UndoCreate,
    /// A grow was rolled back: a partition it was adding, beyond the count the topic
    /// keeps, which never held records.
    UndoGrow,
}

/// Removes the partition directory `name` if it is provably the store's: its
/// `partition.metadata` names `id` (and, for a rolled-back change, its logs hold
/// nothing; for a deletion, it holds the store's durable position file or nothing
/// else: an imported topic keeps Kafka's id, which Kafka's own directories of it
/// name too), or it is empty (as a crash right after creating it leaves it). Only the
/// store's own files are removed. Anything else is left alone and listed in the
/// report.
///
/// [`Removal::UndoGrow`]: a directory of ours left alone loses its
/// `partition.metadata`, so it no longer names the topic; else every later open would
/// find a partition of the topic beyond its count and refuse the store.
pub(super) fn remove_owned_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    id: Option<TopicId>,
    why: Removal,
    report: &mut StoreRecoveryReport,
) -> Result<()> {
    let path = dir.join(name);
    if !fs
        .exists(&path)
        .map_err(io_ctx(format!("stat {}", path.display())))?
    {
        return Ok(());
    }
    // A link is the user's arrangement (partitions spread over disks): neither it nor
    // what it points to is emptied by the store (`remove_dir` would refuse the link
    // after its files were gone, and every later open would fail the same way).
    if fs
        .is_symlink(&path)
        .map_err(io_ctx(format!("stat {}", path.display())))?
    {
        tracing::warn!(
            "{}: leaving {name} alone, the store's files in it too: it is a symbolic link \
             (remove the link and what it points to, to free the name)",
            dir.display()
        );
        report.directories_left_alone.push(path);
        return Ok(());
    }
    let files = fs
        .list_dir(&path)
        .map_err(io_ctx(format!("list {}", path.display())))?;
    let ours = |f: &String| {
        crate::log::is_partition_file(f)
            || f == PARTITION_METADATA
            || *f == format!("{PARTITION_METADATA}.tmp")
    };
    let owned = match read_partition_topic_id(fs, &path) {
        Ok(Some(found)) if !matches!(why, Removal::Delete | Removal::DeletePoisoned) => {
            Some(found) == id && holds_no_records(fs, &path, &files)?
        }
        // A deletion: the store opened it, so it holds the store's durable position
        // file, unless a removal cut short took everything but the metadata (which
        // goes last). Kafka's own directory of an imported topic names the same id and
        // only file names the store knows, but never that file: a copy of it put back
        // while the deletion waited for this open is not the deletion's.
        Ok(Some(found)) => {
            Some(found) == id
                && (files.iter().any(|f| f == DURABLE_FILE)
                    || files.iter().all(|f| f.starts_with(PARTITION_METADATA)))
        }
        Ok(None) => files
            .iter()
            .all(|f| *f == format!("{PARTITION_METADATA}.tmp")),
        // Not Kafka's partition metadata: not provably ours.
        Err(Error::Corruption { .. }) => false,
        Err(e) => return Err(e),
    };
    if !owned || !files.iter().all(ours) {
        tracing::warn!(
            "{}: leaving {name} alone, the store's files in it too: it holds entries \
             that are not the store's (remove them, then the directory, to free the name)",
            dir.display()
        );
        if why == Removal::UndoGrow && owned && files.iter().any(|f| f == PARTITION_METADATA) {
            fs.remove_file(&path.join(PARTITION_METADATA))
                .map_err(io_ctx(format!(
                    "remove {}/{PARTITION_METADATA}",
                    path.display()
                )))?;
            fs.sync_dir(&path)
                .map_err(io_ctx(format!("fsync {}", path.display())))?;
        }
        report.directories_left_alone.push(path);
        return Ok(());
    }
    // partition.metadata goes last, the durable position file just before it: until
    // then the directory is still recognisably ours (see `owned` above). The other
    // removals are synced first, so a crash cannot keep the durable file's removal
    // and lose one of theirs (which would leave the directory alone for good).
    let (durable, rest): (Vec<&String>, Vec<&String>) = files
        .iter()
        .filter(|f| f.as_str() != PARTITION_METADATA)
        .partition(|f| f.as_str() == DURABLE_FILE);
    for f in rest {
        fs.remove_file(&path.join(f))
            .map_err(io_ctx(format!("remove {}/{f}", path.display())))?;
    }
    for f in durable {
        fs.sync_dir(&path)
            .map_err(io_ctx(format!("fsync {}", path.display())))?;
        fs.remove_file(&path.join(f))
            .map_err(io_ctx(format!("remove {}/{f}", path.display())))?;
    }
    if why == Removal::DeletePoisoned && files.iter().any(|f| f == PARTITION_METADATA) {
        return Ok(());
    }
    if files.iter().any(|f| f == PARTITION_METADATA) {
        fs.sync_dir(&path)
            .map_err(io_ctx(format!("fsync {}", path.display())))?;
        fs.remove_file(&path.join(PARTITION_METADATA))
            .map_err(io_ctx(format!(
                "remove {}/{PARTITION_METADATA}",
                path.display()
            )))?;
    }
    fs.remove_dir(&path)
        .map_err(io_ctx(format!("remove {}", path.display())))
}

/// Whether partition directory `path` (holding `files`) is as a new partition leaves
/// it: no segment but an empty one at offset 0 (Kafka's directory of a topic whose
/// records all expired has an empty segment at a later offset).
fn holds_no_records(fs: &dyn FileSystem, path: &Path, files: &[String]) -> Result<bool> {
    let first = crate::log::segment_file_name(0, "log");
    for f in files.iter().filter(|f| f.ends_with(".log")) {
        if *f != first {
            return Ok(false);
        }
        let file = path.join(f);
        let len = fs
            .open_read(&file)
            .and_then(|h| h.len())
            .map_err(io_ctx(format!("stat {}", file.display())))?;
        if len > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_makes_a_recovery_eventful() {
        let mut report = StoreRecoveryReport::default();
        let partition = |r: RecoveryReport| PartitionRecovery {
            partition: TopicPartition::new("t", 0),
            report: r,
        };
        report.partitions.push(partition(RecoveryReport {
            bytes_compared: 4096,
            ..RecoveryReport::default()
        }));
        assert!(!report.is_eventful(), "a compare that found the disk whole");
        report.partitions.push(partition(RecoveryReport {
            bytes_compared: 4096,
            bytes_rewritten: 4096,
            ..RecoveryReport::default()
        }));
        assert!(report.is_eventful(), "pages the disk lacked");
        let report = StoreRecoveryReport {
            offsets_dropped: 1,
            ..StoreRecoveryReport::default()
        };
        assert!(report.is_eventful());
    }
}
