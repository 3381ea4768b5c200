//! Checking a whole store without opening it (SQLite's `integrity_check`): every
//! topic's metadata, every partition directory named by it, and in each every batch
//! (size, CRC-32C, offsets, epoch) and index entry, through the log's own
//! [`verify_partition_dir`]. Nothing is written and no lock is taken, so a store that
//! another process has open can be checked too (what it writes meanwhile may show as a
//! problem at the tail).

use std::path::Path;

use super::meta::{TopicMeta, read_partition_topic_id};
use super::{METADATA_TMP, TOPICS_DIR, partition_dir_name};
use crate::error::{Error, Result, io_ctx};
use crate::fs::{FileSystem, OsFs};
use crate::log::{PartitionCheck, verify_partition_dir};
use crate::topic::{CleanupPolicy, TopicPartition};

/// What [`verify_store`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCheck {
    /// Each partition checked, in topic and partition order, with what its check
    /// counted (its index problems included).
    pub partitions: Vec<(TopicPartition, PartitionCheck)>,
    /// Everything wrong, one sentence each naming the file or directory: damaged
    /// batches, missing or foreign partition directories, unreadable metadata,
    /// interrupted changes. Empty for a sound store.
    pub problems: Vec<String>,
}

impl StoreCheck {
    /// Whether nothing is wrong (index problems included: indexes are rebuilt at
    /// open, but they disagree with their segments now).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
            && self
                .partitions
                .iter()
                .all(|(_, c)| c.index_problems.is_empty())
    }
}

/// Checks the store in `dir` without changing it: see the module docs.
///
/// ```
/// use streamlog::{Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("clicks", TopicConfig::default())?;
/// store.topic("clicks")?.partition(0)?.append(&[Record::new(0, Some("k"), Some("v"))])?;
/// store.close()?;
/// let check = streamlog::verify_store(dir.path())?;
/// assert!(check.is_ok(), "{:?}", check.problems);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// `NotFound` if `dir` is not a store; `Io` if it cannot be read. Damage is reported
/// in [`StoreCheck::problems`], not as an error.
pub fn verify_store(dir: impl AsRef<Path>) -> Result<StoreCheck> {
    verify_store_on(&OsFs, dir.as_ref(), &mut |_, _| {})
}

/// [`verify_store`], calling `progress` after each partition it checked with what it
/// found (a long check on a terminal shows progress with it: `streamlog verify`).
///
/// # Errors
/// As [`verify_store`].
pub fn verify_store_with_progress(
    dir: impl AsRef<Path>,
    progress: &mut dyn FnMut(&TopicPartition, &PartitionCheck),
) -> Result<StoreCheck> {
    verify_store_on(&OsFs, dir.as_ref(), progress)
}

pub(crate) fn verify_store_on(
    fs: &dyn FileSystem,
    dir: &Path,
    progress: &mut dyn FnMut(&TopicPartition, &PartitionCheck),
) -> Result<StoreCheck> {
    let meta_dir = dir.join(TOPICS_DIR);
    if !fs
        .exists(&meta_dir)
        .map_err(io_ctx(format!("stat {}", meta_dir.display())))?
    {
        return Err(Error::NotFound {
            kind: "store",
            name: dir.display().to_string(),
        });
    }
    let mut names = fs
        .list_dir(&meta_dir)
        .map_err(io_ctx(format!("list {}", meta_dir.display())))?;
    names.sort();
    let mut check = StoreCheck::default();
    // A metadata write a crash interrupted: the next open removes it. A name the store
    // never writes (an editor's backup) is no topic's, and the open ignores it too.
    names.retain(|n| n != METADATA_TMP && crate::topic::validate_topic_name(n).is_ok());
    let mut counts = Vec::new();
    for name in names {
        let path = meta_dir.join(&name);
        let meta = crate::log::read_small_file(fs, &path)
            .map_err(io_ctx(format!("read {}", path.display())))?
            .ok_or_else(|| format!("{}: vanished while being checked", path.display()))
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| format!("{}: not UTF-8", path.display()))
            })
            .and_then(|t| TopicMeta::parse(&t).map_err(|r| format!("{}: {r}", path.display())));
        let meta = match meta {
            Ok(m) => m,
            Err(problem) => {
                check.problems.push(problem);
                continue;
            }
        };
        if meta.intent.is_some() {
            check.problems.push(format!(
                "topic `{name}`: a change to it was interrupted (opening the store finishes or rolls it back)"
            ));
            continue;
        }
        counts.push((name.clone(), meta.config.partitions, meta.id));
        let allow_gaps =
            meta.config.cleanup_policy != CleanupPolicy::Delete || meta.config.offset_gaps;
        for p in 0..meta.config.partitions {
            let pdir = dir.join(partition_dir_name(&name, p));
            let tp = TopicPartition::new(name.as_str(), p);
            match check_partition(fs, &pdir, meta.id, allow_gaps) {
                Ok(c) => {
                    progress(&tp, &c);
                    check.partitions.push((tp, c));
                }
                Err(problem) => check.problems.push(problem),
            }
        }
    }
    check
        .problems
        .extend(beyond_partition_count(fs, dir, &counts)?);
    // The open refuses a damaged record of the producer ids handed out.
    if let Err(e) = super::producer_ids::read_block_end(fs, dir) {
        check.problems.push(e.to_string());
    }
    Ok(check)
}

/// Directories of a topic's partitions past the count its metadata lists (their
/// `partition.metadata` names the topic's id): an open refuses the store, as it will
/// neither delete nor ignore them.
fn beyond_partition_count(
    fs: &dyn FileSystem,
    dir: &Path,
    topics: &[(String, i32, Option<super::TopicId>)],
) -> Result<Vec<String>> {
    let mut entries = fs
        .list_dir(dir)
        .map_err(io_ctx(format!("list {}", dir.display())))?;
    entries.sort();
    Ok(entries
        .into_iter()
        .filter_map(|entry| {
            let (topic, p) = entry.rsplit_once('-')?;
            let &(_, count, id) = topics.iter().find(|t| t.0 == topic)?;
            let path = dir.join(&entry);
            let beyond = p.parse::<i32>().is_ok_and(|p| p >= count)
                && id.is_some()
                && read_partition_topic_id(fs, &path).ok().flatten() == id;
            beyond.then(|| {
                format!(
                    "{}: a partition of topic `{topic}` beyond the {count} partitions its \
                     metadata lists (opening the store refuses it)",
                    path.display()
                )
            })
        })
        .collect())
}

/// One partition directory: it exists, names the topic's id, and its segments pass.
fn check_partition(
    fs: &dyn FileSystem,
    pdir: &Path,
    id: Option<super::TopicId>,
    allow_gaps: bool,
) -> std::result::Result<PartitionCheck, String> {
    let d = pdir.display();
    if !fs.exists(pdir).map_err(|e| format!("{d}: {e}"))? {
        return Err(format!("{d}: the partition directory is missing"));
    }
    let found = read_partition_topic_id(fs, pdir).map_err(|e| e.to_string())?;
    if let (Some(want), Some(got)) = (id, found)
        && want != got
    {
        return Err(format!(
            "{d}: its partition.metadata names topic id {got}, not {want}"
        ));
    }
    verify_partition_dir(fs, pdir, allow_gaps).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::fs::{FileSystem, SimFs};
    use crate::{Record, Store, StoreConfig, TopicConfig};

    /// A check needs only read access: it works on a read-only mount (a backup, a
    /// snapshot, another user's store), where opening a file for writing fails. A
    /// leftover temporary metadata file is no problem.
    #[test]
    fn a_store_on_a_read_only_mount_is_checked() {
        let sim = SimFs::new();
        let config = StoreConfig::default()
            .background_maintenance(false)
            .file_system(Arc::new(sim.clone()) as Arc<dyn FileSystem>);
        let store = Store::open_with("/store", config).unwrap();
        store
            .create_topic("t", TopicConfig::default().partitions(2))
            .unwrap();
        let part = store.topic("t").unwrap().partition(1).unwrap();
        part.append(&[Record::new(1, Some("k"), Some("v"))])
            .unwrap();
        store.close().unwrap();
        drop((part, store));
        // A metadata write a crash interrupted is the next open's to remove.
        let tmp = sim
            .open("/store/.topics/~metadata.tmp".as_ref(), true)
            .unwrap();
        tmp.write_all_at(b"half a topic", 0).unwrap();
        sim.set_read_only(true);
        let check = super::verify_store_on(&sim, "/store".as_ref(), &mut |_, _| {}).unwrap();
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        let of_t = check.partitions.iter().filter(|(tp, _)| tp.topic() == "t");
        assert_eq!(of_t.count(), 2);
    }
}
