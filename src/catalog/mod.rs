//! The catalog: one store directory's topics and their partitions, each partition a
//! Kafka partition directory (`<topic>-<n>`) opened as a [`Log`], with topic metadata in
//! `.topics/<topic>` (Java properties text; the file name is the topic name, which keeps
//! a 249-character name under the 255-byte limit of file names).
//!
//! This is the layer every service and client of a store stands on: the group
//! coordinator, maintenance, the producer and the consumer reach partitions only
//! through it ([`Catalog::topic`], [`Catalog::partition`] and the narrow
//! [`PartitionState`] interface), and the public [`Store`](crate::Store) composes it with
//! them. It knows nothing of groups, producers or consumers; what it must do for them
//! (forget a deleted topic's committed offsets) is handed in as a callback.
//!
//! Crash safety of topic changes: each change first records its intent in the topic's
//! metadata file, durably, then creates or removes partition directories (each names
//! the topic's id in Kafka's `partition.metadata`), then records the outcome. An open
//! that finds an intent completes a deletion or rolls back a creation, removing only
//! directories that name the topic's id (see [`recovery`]); it deletes nothing else.
//! Topic changes are serialized by one lock. One writer per directory: the store holds
//! an OS lock (`flock`) on the store directory itself, which cannot be deleted while the
//! store is open.

mod config;
mod ddl;
mod handles;
mod import;
mod meta;
mod parallel;
mod partition;
mod producer_ids;
mod read_only;
mod recovery;
mod stats;
mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result, io_ctx};
use crate::fs::{CachingFs, DirLock, FileSystem};
use crate::log::Log;
use crate::notify::Notifier;
/// Wakes the application's wakers, a panicking one contained (for the clients, which
/// reach the store's wake-ups through the catalog).
pub(crate) use crate::notify::{deferring_wakes, wake_all};
use crate::topic::{TopicConfig, TopicPartition};

pub(crate) use crate::log::AppendInfo;
pub use config::StoreConfig;
pub(crate) use handles::keyless_on_compacted;
pub use handles::{Partition, Topic};
pub use import::ImportReport;
pub use meta::TopicId;
pub(crate) use partition::{PartitionState, TopicState, is_aborted};
pub(crate) use read_only::{is_store, partition_dir, read_topics};
pub use recovery::{
    CommittedOffsetReset, PartitionRecovery, RecoveredTransaction, StoreRecoveryReport,
};
pub(crate) use stats::{ClientStats, Counter};
pub use verify::{StoreCheck, verify_store, verify_store_with_progress};

use meta::TopicMeta;
use producer_ids::ProducerIds;
pub(crate) use producer_ids::{PRODUCER_IDS_FILE, PRODUCER_IDS_TMP};

/// The directory of topic metadata; its presence marks a store (the log takes the
/// store's lock when a partition is opened on its own).
pub(crate) const TOPICS_DIR: &str = crate::log::CONTAINER_MARKER;
/// The lock file of stores written before the store directory itself was locked
/// (recognised, never created).
pub(crate) const LOCK_FILE: &str = ".lock";
/// Temporary metadata file; `~` cannot appear in a topic name.
const METADATA_TMP: &str = "~metadata.tmp";
/// File systems limit a file name to 255 bytes.
const MAX_FILE_NAME: usize = 255;

/// The topics and partitions of one open store directory.
#[derive(Debug)]
pub(crate) struct Catalog {
    dir: PathBuf,
    config: StoreConfig,
    /// The store's file system (`config.fs`), for closing its descriptors at close.
    files: CachingFs,
    topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    /// Serializes topic changes (create, delete, add partitions, alter, import) and
    /// close; holds the topics a failed change left unsettled on disk.
    ddl: Mutex<ddl::Unsettled>,
    /// Bumped after every topic change (create, delete, add partitions), so caches of
    /// topic metadata (the producers') know when to look again.
    metadata_epoch: AtomicU64,
    closed: AtomicBool,
    /// The close's first error, if it failed: a later close returns it too (an Ok there
    /// would say the store was closed cleanly).
    close_failure: Mutex<Option<Error>>,
    /// The directory lock, released by `close` even while handles of the store live.
    lock: Mutex<Vec<Box<dyn DirLock>>>,
    /// Woken by every append and group change.
    notifier: Arc<Notifier>,
    /// Hands out producer ids (idempotence and transactions).
    producer_ids: ProducerIds,
    /// What clients and maintenance did, for metrics.
    stats: ClientStats,
}

/// What [`Store::describe_topic`](crate::Store::describe_topic) reports for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: i32,
    /// First offset.
    pub log_start_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
    /// Offsets below this survive power loss.
    pub durable_offset: i64,
    /// Bytes in segment files.
    pub size_bytes: u64,
    /// Number of segments.
    pub segment_count: usize,
    /// Why writes to the partition fail until the store is reopened, if they do: a
    /// failed fsync or write poisoned it (see [`Error::Poisoned`]). `None` in a
    /// read-only store's description.
    pub poisoned: Option<String>,
}

/// What [`Store::describe_topic`](crate::Store::describe_topic) reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// Its configuration.
    pub config: TopicConfig,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionDescription>,
}

pub(super) fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Refuses to open a store inside another one, at any depth: in its `.topics`
/// directory, a partition directory, or any other directory of it or below.
fn refuse_nested(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let nested = |why: String| Error::InvalidArgument {
        name: "dir",
        reason: format!("{} is inside another store ({why})", dir.display()),
    };
    if dir.file_name().is_some_and(|n| n == TOPICS_DIR) {
        return Err(nested(format!(
            "`{TOPICS_DIR}` holds a store's topic metadata"
        )));
    }
    // A directory that cannot be stat'ed is no store (a sandbox may hide an ancestor).
    let holds_store = |p: &Path| fs.exists(&p.join(TOPICS_DIR)).unwrap_or(false);
    let named = |p: &Path| match p.as_os_str().is_empty() {
        true => PathBuf::from("."),
        false => p.to_path_buf(),
    };
    // The lexical ancestors, and the real ones (past symbolic links, and past the
    // working directory of a relative path) of the deepest of `dir` and its ancestors
    // that exists, where the file system resolves paths.
    let lexical: Vec<PathBuf> = dir.ancestors().skip(1).map(named).collect();
    let mut existing = named(dir);
    for ancestor in &lexical {
        if fs.exists(&existing).unwrap_or(false) {
            break;
        }
        existing.clone_from(ancestor);
    }
    let real: Vec<PathBuf> = match fs.canonicalize(&existing) {
        Ok(Some(path)) => {
            let skip = usize::from(existing == named(dir));
            path.ancestors().skip(skip).map(Path::to_path_buf).collect()
        }
        _ => Vec::new(),
    };
    // Each ancestor once (the real and lexical ones mostly agree).
    let mut seen = std::collections::BTreeSet::new();
    let mut ancestors = lexical.iter().chain(&real).filter(|p| seen.insert(*p));
    if let Some(parent) = ancestors.find(|p| holds_store(p)) {
        return Err(nested(format!("{} holds a store", parent.display())));
    }
    Ok(())
}

/// The partition directory `<topic>-<partitions - 1>` must fit a file name.
pub(super) fn check_dir_name_length(topic: &str, partitions: i32) -> Result<()> {
    let longest = partition_dir_name(topic, partitions.saturating_sub(1).max(0));
    if longest.len() > MAX_FILE_NAME {
        return Err(Error::InvalidArgument {
            name: "partitions",
            reason: format!(
                "the directory name `{longest}` would be longer than {MAX_FILE_NAME} bytes"
            ),
        });
    }
    Ok(())
}

impl Catalog {
    /// Opens (creating if needed) the store directory `dir`: takes its lock, settles
    /// topic changes a crash interrupted, and opens (recovering) every partition. What
    /// it found goes to `report`. Returns the catalog and the topics given an id at this
    /// open, whose commits written before ids existed are theirs.
    ///
    /// # Errors
    /// As [`Store::open_with`](crate::Store::open_with).
    pub(crate) fn open(
        dir: &Path,
        config: StoreConfig,
        report: &mut StoreRecoveryReport,
    ) -> Result<(Catalog, Vec<String>)> {
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidArgument {
                name: "dir",
                reason: "the store directory path is empty".into(),
            });
        }
        config.validate()?;
        let mut config = config;
        // Every file of the store is opened through the cache: bounded descriptors.
        let files = CachingFs::new(config.fs.clone(), config.max_open_files);
        #[cfg(feature = "metrics")]
        files.label_metrics(dir.display().to_string());
        config.fs = Arc::new(files.clone());
        let fs = config.fs.clone();
        refuse_nested(fs.as_ref(), dir)?;
        // The store's own directory first: its entry in its parent is synced at every
        // open, also after a process that created it died before its fsync (a later
        // open finds it there, and would otherwise sync only inside it). A parent this
        // process may not open (mode 0711) cannot be synced by it: an existing store
        // opens all the same, as its creator synced it.
        let existed = fs
            .exists(dir)
            .map_err(io_ctx(format!("stat {}", dir.display())))?;
        match crate::fs::create_dir_durable(fs.as_ref(), dir) {
            Err(e) if existed && e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(
                    "{}: its parent directory could not be opened to sync it ({e}); \
                     its entry there is as durable as its creator left it",
                    dir.display()
                );
            }
            r => r.map_err(io_ctx(format!("create {}", dir.display())))?,
        }
        let meta_dir = dir.join(TOPICS_DIR);
        crate::fs::create_dir_durable(fs.as_ref(), &meta_dir)
            .map_err(io_ctx(format!("create {}", meta_dir.display())))?;
        let lock = crate::fs::take_dir_lock(fs.as_ref(), dir, LOCK_FILE)?;
        let settled = recovery::settle(fs.as_ref(), dir, report)?;
        let producer_ids = ProducerIds::open(fs.clone(), dir)?;
        let notifier = Arc::new(Notifier::default());
        let mut topics = BTreeMap::new();
        for (name, (meta, id)) in &settled.topics {
            let mut parts = Vec::new();
            let numbers: Vec<i32> = (0..meta.config.partitions).collect();
            let logs = parallel::try_map(&numbers, |&p| {
                Log::open_with_fs(
                    fs.clone(),
                    dir.join(partition_dir_name(name, p)),
                    config.log_config(&meta.config),
                )
            })?;
            for (p, log) in numbers.into_iter().zip(logs) {
                report.partitions.push(PartitionRecovery {
                    partition: TopicPartition::new(name.as_str(), p),
                    report: log.recovery_report().clone(),
                });
                parts.push(Arc::new(PartitionState::new(
                    (name, *id, p),
                    log,
                    notifier.clone(),
                    &meta.config,
                )));
            }
            topics.insert(
                name.clone(),
                Arc::new(TopicState::new(name, *id, meta.config.clone(), parts)),
            );
        }
        let catalog = Catalog {
            dir: dir.to_path_buf(),
            config,
            files,
            topics: RwLock::new(topics),
            ddl: Mutex::new(ddl::Unsettled::new()),
            metadata_epoch: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            close_failure: Mutex::new(None),
            lock: Mutex::new(lock),
            notifier,
            producer_ids,
            stats: ClientStats::default(),
        };
        Ok((catalog, settled.adopted))
    }

    /// A producer id no producer of this store had before (recorded durably in
    /// blocks; see `producer_ids`).
    ///
    /// # Errors
    /// `Io` if a new block cannot be recorded, then `Poisoned` until the store is reopened.
    pub(crate) fn allocate_producer_id(&self) -> Result<i64> {
        self.producer_ids.allocate()
    }

    /// The store directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's settings (its file system is the descriptor-bounding cache).
    pub(crate) fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The store clock's time in milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.config.now_ms()
    }

    /// The store clock's time as read at most a millisecond ago on this thread: what a
    /// producer stamps records with.
    pub(crate) fn recent_ms(&self) -> i64 {
        self.config.recent_ms()
    }

    /// Woken by every append, topic change and group change.
    pub(crate) fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The running totals behind the store's metrics.
    pub(crate) fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// How long the store's syncs took.
    pub(crate) fn sync_latency(&self) -> crate::fs::LatencyHistogram {
        self.files.sync_latency()
    }

    /// Moves after every topic change, so caches of topics know when to look again.
    pub(crate) fn metadata_epoch(&self) -> u64 {
        self.metadata_epoch.load(Ordering::Acquire)
    }

    /// Whether [`close`](Self::close) ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// `Closed` once the store is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed { what: "store" });
        }
        Ok(())
    }

    /// Every topic (internal ones too), by name.
    pub(crate) fn topics(&self) -> Vec<Arc<TopicState>> {
        self.topics.read().values().cloned().collect()
    }

    /// Names of every topic (internal ones too), sorted.
    pub(crate) fn topic_names(&self) -> Vec<String> {
        self.topics.read().keys().cloned().collect()
    }

    /// A topic, whether or not the store is open (`NotFound` if it does not exist).
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "topic",
                name: name.to_string(),
            })
    }

    /// A topic of the open store (`Closed`, or `NotFound`).
    pub(crate) fn open_topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.check_open()?;
        self.topic(name)
    }

    /// A partition (`NotFound` for an unknown topic or partition).
    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Result<Arc<PartitionState>> {
        self.topic(topic)?
            .partition(partition)
            .ok_or_else(|| Error::NotFound {
                kind: "partition",
                name: format!("{topic}-{partition}"),
            })
    }

    /// Partition counts of the named topics (missing topics are left out).
    pub(crate) fn partition_counts<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, i32> {
        let topics = self.topics.read();
        names
            .into_iter()
            .filter_map(|n| {
                topics
                    .get(n)
                    .map(|t| (n.clone(), t.partition_count() as i32))
            })
            .collect()
    }

    /// A topic's configuration and per-partition offsets and sizes.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub(crate) fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let t = self.open_topic(name)?;
        let partitions = t
            .partitions()
            .iter()
            .map(|p| {
                // Each read before the one it must not pass (a start never past the end,
                // a durable offset never past it either), and sizes from one segment list:
                // an append and a flush between two reads made the durable offset larger
                // than the log end.
                let log_start_offset = p.log_start_offset();
                let durable_offset = p.durable_offset();
                let log_end_offset = p.log_end_offset();
                let segments = p.log().segments();
                PartitionDescription {
                    partition: p.partition,
                    log_start_offset,
                    log_end_offset,
                    durable_offset,
                    size_bytes: segments.iter().map(|s| s.size).sum(),
                    segment_count: segments.len(),
                    poisoned: p.log().poison_reason(),
                }
            })
            .collect();
        Ok(TopicDescription {
            name: t.name.clone(),
            config: t.config(),
            partitions,
        })
    }

    /// Records that every commit of topic `name` (adopted at open) now names its id.
    pub(crate) fn finish_adoption(&self, name: &str) -> Result<()> {
        let t = self.topic(name)?;
        let meta = TopicMeta {
            config: t.config(),
            id: Some(t.id),
            intent: None,
            adopting: false,
        };
        self.write_metadata(name, &meta)
    }

    /// Closes every partition (flushed: the next open scans nothing) and releases the
    /// directory lock. Later calls return `Closed`; a second close does nothing but
    /// return the first one's error, if it failed.
    ///
    /// # Errors
    /// The first error from closing a partition (the others are still closed).
    pub(crate) fn close(&self) -> Result<()> {
        let ddl = self.ddl.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return self.close_failure.lock().clone().map_or(Ok(()), Err);
        }
        let all: Vec<Arc<PartitionState>> = self
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions())
            .collect();
        let results = parallel::map(&all, |p| p.log().shutdown());
        let first = results.into_iter().find_map(Result::err);
        self.close_failure.lock().clone_from(&first);
        // Handles (topics, partitions, consumers) may outlive the close: their files need
        // no descriptor any more.
        self.files.close_idle();
        self.lock.lock().clear();
        drop(ddl);
        // Waiters find the store closed. Outside the DDL lock: a waker may poll its task
        // inline, and the task may call into the store (create a topic, close it again),
        // which takes that lock first.
        for p in &all {
            p.wake();
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        if self.is_closed() {
            return; // a failed close was reported to its caller
        }
        if let Err(e) = self.close() {
            tracing::warn!("closing store {} on drop failed: {e}", self.dir.display());
        }
    }
}
