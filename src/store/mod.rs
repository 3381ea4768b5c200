//! The store: one directory holding topics, each partition a Kafka partition directory
//! (`<topic>-<n>`), with topic metadata in `.topics/<topic>` (Java properties text; the
//! file name is the topic name, which keeps a 249-character name under the 255-byte
//! limit of file names).
//!
//! Crash safety of topic changes: each change first records its intent in the topic's
//! metadata file, durably, then creates or removes partition directories (each names
//! the topic's id in Kafka's `partition.metadata`), then records the outcome. An open
//! that finds an intent completes a deletion or rolls back a creation, removing only
//! directories that name the topic's id (see [`recovery`]); it deletes nothing else.
//! Topic changes are serialized by one lock. One writer per directory: the store holds
//! an OS lock (`flock`) on the store directory itself, which cannot be deleted while the
//! store is open.

mod handles;
mod import;
mod meta;
mod recovery;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::consumer::group::{self, Coordinator, OFFSETS_TOPIC};
use crate::notify::Notifier;

use crate::error::{Error, Result, io_ctx};
use crate::format::DecodeOptions;
use crate::fs::{DirLock, FileSystem, OsFs};
use crate::log::{Clock, Log, LogConfig, SystemClock};
use crate::topic::{TopicConfig, refuse_internal, validate_topic_name};

pub(crate) use handles::keyless_on_compacted;
pub use handles::{Partition, Topic};
pub use import::ImportReport;
pub use meta::TopicId;
pub use recovery::{CommittedOffsetReset, PartitionRecovery, StoreRecoveryReport};

use meta::{Intent, TopicMeta};

/// The directory of topic metadata; its presence marks a store (the log takes the
/// store's lock when a partition is opened on its own).
pub(crate) const TOPICS_DIR: &str = crate::log::CONTAINER_MARKER;
/// The lock file of stores written before the store directory itself was locked
/// (recognised, never created).
pub(crate) const LOCK_FILE: &str = ".lock";
/// Temporary metadata file; `~` cannot appear in a topic name.
const METADATA_TMP: &str = "~metadata.tmp";
/// The smallest compaction key map a store accepts.
const MIN_KEY_MAP_BYTES: usize = 4096;
/// File systems limit a file name to 255 bytes.
const MAX_FILE_NAME: usize = 255;

/// Settings of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    fs: Arc<dyn FileSystem>,
    clock: Arc<dyn Clock>,
    decode: DecodeOptions,
    background_maintenance: bool,
    maintenance_interval_ms: u64,
    cleaner_key_map_bytes: usize,
    max_open_files: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fs: Arc::new(OsFs),
            clock: Arc::new(SystemClock),
            decode: DecodeOptions::default(),
            background_maintenance: true,
            maintenance_interval_ms: 30_000,
            cleaner_key_map_bytes: 32 << 20,
            max_open_files: crate::fs::default_max_open_files(),
        }
    }
}

impl StoreConfig {
    /// The decode limit of compressed batches (see [`DecodeOptions`]).
    pub(crate) fn max_decompressed_bytes(&self) -> usize {
        self.decode.max_decompressed_bytes
    }

    /// The file system to store on. Default = the real one ([`OsFs`]); tests use
    /// [`SimFs`](crate::fs::SimFs).
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The clock for LogAppendTime, `segment_ms` and (later) retention. Default = system.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Limits applied when decoding records (decompression cap). Default = 64 MiB.
    #[must_use]
    pub fn decode_options(mut self, options: DecodeOptions) -> Self {
        self.decode = options;
        self
    }

    setter!(
        /// Run retention, compaction and background flush (`flush_ms`) on a store thread.
        /// Default = true. Turn off for deterministic tests and call
        /// [`Store::run_maintenance`] instead.
        background_maintenance: bool
    );
    setter!(
        /// How often the maintenance thread runs retention and compaction. Default =
        /// 30 000 ms (Kafka checks retention every 300 s and compaction every 15 s). Flushes
        /// for `flush_ms` run as often as the shortest `flush_ms` needs. At least 1
        /// (0 is `InvalidConfig` at open).
        maintenance_interval_ms: u64
    );
    setter!(
        /// Memory budget of the compaction key map (key bytes plus about 64 bytes per
        /// key). When a pass fills it, it cleans what the map covers and the next pass
        /// continues. Default = 32 MiB; at least 4096 (less is `InvalidConfig` at open:
        /// a pass would cover a batch or two and compaction would crawl).
        cleaner_key_map_bytes: usize
    );
    setter!(
        /// How many segment, index and checkpoint files this store keeps open. Past it,
        /// the least recently used are closed and reopened by path when next used,
        /// preferring files with nothing to sync; one with unsynced writes is fdatasync'd
        /// before it is closed (see [`CachingFs`](crate::fs::CachingFs)). Outside the
        /// limit: the store's lock file and directories opened for a moment to sync
        /// them. Files that cannot be closed yet (in use, or removed or replaced while
        /// open and still read) count, and can take the store past it for a while. Off
        /// unix, where files have no identity to check on reopening, none is closed. A
        /// partition being written wants four (its active segment, two indexes and its
        /// durable-position file): raise this, and the process's descriptor limit, for
        /// many partitions written at once. Default =
        /// [`default_max_open_files`](crate::fs::default_max_open_files): half the
        /// process's soft limit, for each store opened. At least 1 (0 is `InvalidConfig` at
        /// open).
        max_open_files: usize
    );

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Checks every knob (done by [`Store::open_with`]).
    ///
    /// # Errors
    /// `InvalidConfig` naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        if self.max_open_files == 0 {
            return Err(Error::config(
                "max_open_files",
                "0: at least 1 file must stay open",
            ));
        }
        if self.maintenance_interval_ms == 0 {
            return Err(Error::config(
                "maintenance_interval_ms",
                "must be at least 1",
            ));
        }
        if self.cleaner_key_map_bytes < MIN_KEY_MAP_BYTES {
            return Err(Error::config(
                "cleaner_key_map_bytes",
                format!(
                    "{} is below {MIN_KEY_MAP_BYTES}: a compaction pass would cover a batch \
                     or two",
                    self.cleaner_key_map_bytes
                ),
            ));
        }
        if self.decode.max_decompressed_bytes == 0 {
            return Err(Error::config(
                "max_decompressed_bytes",
                "0: no compressed batch could be read",
            ));
        }
        Ok(())
    }

    pub(crate) fn key_map_bytes(&self) -> usize {
        self.cleaner_key_map_bytes
    }

    fn log_config(&self, topic: &TopicConfig) -> LogConfig {
        let mut config = topic.log_config(
            LogConfig::default()
                .clock(self.clock.clone())
                .decode_options(self.decode),
        );
        // The store's directory lock covers its partitions: one descriptor less each.
        config.lock_dir = false;
        config
    }
}

#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) topic: String,
    /// The topic incarnation this partition belongs to.
    pub(crate) topic_id: TopicId,
    pub(crate) partition: i32,
    pub(crate) log: Log,
    notifier: Arc<Notifier>,
}

impl PartitionState {
    pub(crate) fn wake(&self) {
        self.notifier.notify();
    }

    /// Where a commit applies to this partition: `None` if it belongs to another topic
    /// incarnation (the topic was deleted and created again); otherwise its offset,
    /// lowered to where the records of its epoch end if records it pointed past were
    /// removed (KIP-320).
    pub(crate) fn apply_commit(&self, c: &group::Commit) -> Option<i64> {
        (c.topic_id == Some(self.topic_id)).then(|| match self.log.epoch_end_offset(c.epoch) {
            Some(end) => c.offset.min(end),
            None => c.offset,
        })
    }
}

#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) name: String,
    /// This incarnation's id (a topic deleted and created again has a new one).
    pub(crate) id: TopicId,
    pub(crate) config: RwLock<TopicConfig>,
    pub(crate) partitions: RwLock<Vec<Arc<PartitionState>>>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    dir: PathBuf,
    pub(crate) config: StoreConfig,
    /// The store's file system (`config.fs`), for closing its descriptors at close.
    files: crate::fs::CachingFs,
    topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    /// Serializes topic changes (create, delete, add partitions) and close.
    ddl: Mutex<()>,
    /// Bumped after every topic change (create, delete, add partitions), so caches of
    /// topic metadata (the producers') know when to look again.
    pub(crate) metadata_epoch: std::sync::atomic::AtomicU64,
    pub(crate) closed: AtomicBool,
    /// The directory lock, released by `close` even while clones of the store live.
    lock: Mutex<Vec<Box<dyn DirLock>>>,
    /// Woken by every append and group change.
    pub(crate) notifier: Arc<Notifier>,
    /// Consumer groups and committed offsets.
    pub(crate) groups: Coordinator,
    /// Live producers, flushed and stopped at close.
    pub(crate) producers: Mutex<Vec<std::sync::Weak<crate::producer::Shared>>>,
    /// The maintenance thread.
    pub(crate) maintenance: Arc<crate::maintenance::Maintenance>,
    /// What open found and did.
    recovery: Mutex<StoreRecoveryReport>,
}

/// A streamlog store: a directory of topics. Cheap to clone; `Send + Sync`.
///
/// ```
/// use streamlog::{Record, Store, TopicConfig};
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("clicks", TopicConfig::default().partitions(4))?;
/// let part = store.topic("clicks")?.partition(0)?;
/// part.append(&[Record::new(1_700_000_000_000, Some("user-7"), Some("home"))])?;
/// let records = part.read(part.log_start_offset(), 1 << 20)?;
/// assert_eq!(records[0].value.as_deref(), Some(&b"home"[..]));
/// store.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// What [`Store::describe_topic`] reports for one partition.
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
}

/// What [`Store::describe_topic`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// Its configuration.
    pub config: TopicConfig,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionDescription>,
}

fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Refuses to open a store inside another one: its `.topics` directory, a partition
/// directory, or any other directory of it.
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
    // `dir/..` is the real parent even through a symbolic link; the lexical parent for
    // file systems that do not resolve `..` (SimFs).
    for parent in [Some(dir.join("..")), dir.parent().map(Path::to_path_buf)]
        .into_iter()
        .flatten()
        .filter(|p| !p.as_os_str().is_empty())
    {
        let topics = parent.join(TOPICS_DIR);
        if fs
            .exists(&topics)
            .map_err(io_ctx(format!("stat {}", topics.display())))?
        {
            return Err(nested(format!("{} holds a store", parent.display())));
        }
    }
    Ok(())
}

/// The partition directory `<topic>-<partitions - 1>` must fit a file name.
fn check_dir_name_length(topic: &str, partitions: i32) -> Result<()> {
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

impl Store {
    /// Opens (creating if needed) the store in `dir` with [`StoreConfig::default`].
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(dir, StoreConfig::default())
    }

    /// Opens (creating if needed) the store in `dir`, recovering every partition that
    /// was not closed cleanly. What recovery found and did is in
    /// [`recovery_report`](Self::recovery_report) (and logged).
    ///
    /// The store holds an OS lock on `dir` itself while it is open: a second writer, in
    /// this process or another, gets `Locked` naming the holder. Topic changes a crash
    /// interrupted are completed or rolled back; directories that are not the store's
    /// are left alone and listed in the report.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty path, or a directory inside another store (the
    /// `.topics` directory or a partition directory); `Locked` if another `Store` has
    /// `dir` open; `InvalidConfig` for `max_open_files(0)`; `Corruption` for unreadable
    /// topic metadata, damaged flushed data, or metadata that disagrees with the
    /// partition directories (a missing partition, or one beyond the partition count);
    /// `Io`.
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidArgument {
                name: "dir",
                reason: "the store directory path is empty".into(),
            });
        }
        config.validate()?;
        let mut config = config;
        // Every file of the store is opened through the cache: bounded descriptors.
        let files = crate::fs::CachingFs::new(config.fs.clone(), config.max_open_files);
        config.fs = Arc::new(files.clone());
        let fs = config.fs.clone();
        refuse_nested(fs.as_ref(), &dir)?;
        let meta_dir = dir.join(TOPICS_DIR);
        crate::fs::create_dir_durable(fs.as_ref(), &meta_dir)
            .map_err(io_ctx(format!("create {}", meta_dir.display())))?;
        let lock = crate::fs::take_dir_lock(fs.as_ref(), &dir, LOCK_FILE)?;
        let mut report = StoreRecoveryReport::default();
        let catalog = recovery::settle(fs.as_ref(), &dir, &mut report)?;
        let notifier = Arc::new(Notifier::default());
        let mut topics = BTreeMap::new();
        for (name, (meta, id)) in &catalog.topics {
            let mut parts = Vec::new();
            for p in 0..meta.config.partitions {
                let log = Log::open_with_fs(
                    fs.clone(),
                    dir.join(partition_dir_name(name, p)),
                    config.log_config(&meta.config),
                )?;
                report.partitions.push(PartitionRecovery {
                    partition: crate::consumer::TopicPartition::new(name.as_str(), p),
                    report: log.recovery_report().clone(),
                });
                parts.push(Arc::new(PartitionState {
                    topic: name.clone(),
                    topic_id: *id,
                    partition: p,
                    log,
                    notifier: notifier.clone(),
                }));
            }
            topics.insert(
                name.clone(),
                Arc::new(TopicState {
                    name: name.clone(),
                    id: *id,
                    config: RwLock::new(meta.config.clone()),
                    partitions: RwLock::new(parts),
                }),
            );
        }
        let inner = Inner {
            dir,
            config,
            files,
            topics: RwLock::new(topics),
            ddl: Mutex::new(()),
            metadata_epoch: std::sync::atomic::AtomicU64::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(lock),
            notifier,
            groups: Coordinator::default(),
            producers: Mutex::new(Vec::new()),
            maintenance: Arc::default(),
            recovery: Mutex::new(StoreRecoveryReport::default()),
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        if !store.inner.topics.read().contains_key(OFFSETS_TOPIC) {
            store.create_topic_inner(OFFSETS_TOPIC, Coordinator::offsets_topic_config())?;
        }
        store.load_offsets(&catalog.adopted, &mut report)?;
        if report.is_eventful() {
            log::warn!("{}: recovery: {report:?}", store.dir().display());
        }
        *store.inner.recovery.lock() = report;
        let config = &store.inner.config;
        if config.background_maintenance {
            let interval = Duration::from_millis(config.maintenance_interval_ms);
            store
                .inner
                .maintenance
                .start(&store.inner, interval)
                .map_err(io_ctx("start the maintenance thread"))?;
        }
        Ok(store)
    }

    /// Loads committed offsets and checks each against its partition: offsets of
    /// another topic incarnation are dropped, offsets past the records of their epoch
    /// (lost in a crash) are lowered to where those records end. Commits written before
    /// topic ids existed belong to the topics given an id at this open (`adopted`), and
    /// are written again with it.
    fn load_offsets(&self, adopted: &[String], report: &mut StoreRecoveryReport) -> Result<()> {
        let offsets = self.offsets_partition()?;
        let groups = &self.inner.groups;
        groups.load(&offsets)?;
        let dropped = std::cell::Cell::new(0usize);
        let checked = groups.check_loaded(&|tp, c| {
            let adopt = c.topic_id.is_none() && adopted.iter().any(|t| t == tp.topic());
            let mut c = *c;
            if adopt {
                c.topic_id = self.inner.topic(tp.topic()).ok().map(|t| t.id);
            }
            match self.check_commit(tp, &c) {
                Some(offset) => group::Verdict::Keep(offset),
                None => {
                    dropped.set(dropped.get() + 1);
                    group::Verdict::Drop
                }
            }
        });
        report.offsets_dropped = dropped.get();
        for (group, partition, from, to) in checked.lowered {
            report.offsets_reset.push(CommittedOffsetReset {
                group,
                partition,
                from,
                to,
            });
        }
        let stale: Vec<_> = checked
            .stale
            .into_iter()
            .filter_map(|(g, tp, mut c)| {
                c.topic_id = Some(self.inner.topic(tp.topic()).ok()?.id);
                Some((g, tp, c))
            })
            .collect();
        groups.rewrite(&offsets, &stale, self.inner.config.now_ms())?;
        groups.forget(&offsets, &checked.dropped)?;
        // Every commit of the adopted topics now names their id.
        for name in adopted {
            let t = self.inner.topic(name)?;
            let meta = TopicMeta {
                config: t.config.read().clone(),
                id: Some(t.id),
                intent: None,
                adopting: false,
            };
            self.inner.write_metadata(name, &meta)?;
        }
        Ok(())
    }

    /// Where a commit applies now: `None` if its topic incarnation is gone (deleted, or
    /// deleted and created again); otherwise its offset, lowered to where the records of
    /// its epoch end if a crash removed records it pointed past (KIP-320).
    pub(crate) fn check_commit(
        &self,
        tp: &crate::consumer::TopicPartition,
        c: &group::Commit,
    ) -> Option<i64> {
        self.partition_state(tp.topic(), tp.partition())
            .ok()?
            .apply_commit(c)
    }

    /// The offset `group` resumes `tp` from, if it committed one for the topic as it is
    /// now (see [`check_commit`](Self::check_commit)).
    pub(crate) fn committed_offset(
        &self,
        group: &str,
        tp: &crate::consumer::TopicPartition,
    ) -> Option<i64> {
        let c = self.inner.groups.committed(group, tp)?;
        self.check_commit(tp, &c)
    }

    /// What [`open`](Self::open) found and did: per partition its recovery (truncated
    /// ranges and bytes, rebuilt indexes, finished compaction swaps), topic changes a
    /// crash interrupted, directories left alone, and committed offsets lowered because
    /// the records they pointed past were lost.
    pub fn recovery_report(&self) -> StoreRecoveryReport {
        self.inner.recovery.lock().clone()
    }

    /// The partition of the internal committed-offsets topic.
    pub(crate) fn offsets_partition(&self) -> Result<Arc<PartitionState>> {
        self.partition_state(OFFSETS_TOPIC, 0)
    }

    /// A partition's shared state.
    pub(crate) fn partition_state(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionState>> {
        let t = self.inner.topic(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.read().get(i).cloned())
            .ok_or_else(|| Error::NotFound {
                kind: "partition",
                name: format!("{topic}-{partition}"),
            })
    }

    /// A topic's shared state.
    pub(crate) fn topic_state(&self, name: &str) -> Result<Arc<TopicState>> {
        self.check_open()?;
        self.inner.topic(name)
    }

    /// Partition counts of the named topics (missing topics are left out).
    pub(crate) fn partition_counts<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, i32> {
        let topics = self.inner.topics.read();
        names
            .into_iter()
            .filter_map(|n| {
                topics
                    .get(n)
                    .map(|t| (n.clone(), t.partitions.read().len() as i32))
            })
            .collect()
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "store" });
        }
        Ok(())
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Creates a topic with `config.partition_count()` empty partitions. Durable on return.
    ///
    /// # Errors
    /// `InvalidArgument` for a name breaking Kafka's rules or starting with `__`
    /// (reserved for internal topics); `InvalidConfig`; `AlreadyExists`; `Io`.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        validate_topic_name(name)?;
        if name.starts_with("__") {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!(
                    "`{name}`: names starting with `__` are reserved for internal topics"
                ),
            });
        }
        self.create_topic_inner(name, config)
    }

    /// The topic-change lock, for creating topic `name`: `Closed`, or `AlreadyExists`
    /// if it exists.
    fn ddl_for_new_topic(&self, name: &str) -> Result<parking_lot::MutexGuard<'_, ()>> {
        let ddl = self.inner.ddl.lock();
        self.check_open()?;
        if self.inner.topics.read().contains_key(name) {
            return Err(Error::AlreadyExists {
                kind: "topic",
                name: name.to_string(),
            });
        }
        Ok(ddl)
    }

    fn create_topic_inner(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate()?;
        check_dir_name_length(name, config.partitions)?;
        let _ddl = self.ddl_for_new_topic(name)?;
        let inner = &self.inner;
        inner.check_dirs_free(name, 0..config.partitions)?;
        let id = TopicId::random();
        let mut meta = TopicMeta {
            config,
            id: Some(id),
            intent: Some(Intent::Create),
            adopting: false,
        };
        // The intent is durable before any directory exists: a crash from here on is
        // rolled back at open, removing only directories that name this id.
        inner.write_metadata(name, &meta)?;
        let intent = meta.clone();
        meta.intent = None;
        let range = 0..meta.config.partitions;
        let parts = match inner.build_partitions(name, id, range.clone(), &meta) {
            Ok(parts) => parts,
            Err(e) => {
                inner.roll_back(name, &intent, range, None);
                return Err(e);
            }
        };
        inner.topics.write().insert(
            name.to_string(),
            Arc::new(TopicState {
                name: name.to_string(),
                id,
                config: RwLock::new(meta.config),
                partitions: RwLock::new(parts),
            }),
        );
        inner.bump_metadata_epoch();
        Ok(())
    }

    /// Deletes a topic and all its data. Handles to it stop accepting appends
    /// (`Closed`), and its committed offsets are forgotten: a topic created later under
    /// the same name is a new topic (a new [`TopicId`]) that no old offset applies to. Durable on
    /// return: after a crash, the deletion is completed at open.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for an internal topic; `Io`. An `Io` error that
    /// says the committed offsets could not be forgotten comes after the topic was
    /// deleted: those offsets are never applied to another topic (they name this
    /// topic's id) and are dropped at the next open.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _ddl = self.inner.ddl.lock();
        self.check_open()?;
        if name.starts_with("__") {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!("`{name}` is an internal topic and cannot be deleted"),
            });
        }
        let inner = &self.inner;
        let state = inner.topic(name)?;
        let meta = TopicMeta {
            config: state.config.read().clone(),
            id: Some(state.id),
            intent: Some(Intent::Delete),
            adopting: false,
        };
        // The decision: once this is durable, the topic is gone at any later open.
        inner.write_metadata(name, &meta)?;
        inner.topics.write().remove(name);
        inner.bump_metadata_epoch();
        let forgotten = inner.groups.forget_topic(&*self.offsets_partition()?, name);
        inner.notifier.notify();
        let parts = state.partitions.read().clone();
        // Every partition stops taking appends before any directory goes.
        for p in &parts {
            let _ = p.log.shutdown();
            p.wake();
        }
        let mut report = StoreRecoveryReport::default();
        for p in &parts {
            recovery::remove_owned_dir(
                inner.config.fs.as_ref(),
                &inner.dir,
                &partition_dir_name(name, p.partition),
                Some(state.id),
                &mut report,
            )?;
        }
        inner
            .config
            .fs
            .sync_dir(&inner.dir)
            .map_err(io_ctx(format!("fsync {}", inner.dir.display())))?;
        inner.remove_metadata(name)?;
        forgotten.map_err(|e| Error::Io {
            context: format!(
                "forget the committed offsets of deleted topic `{name}` (the topic is \
                 deleted; its offsets name its topic id, are never applied to another \
                 topic, and are dropped at the next open)"
            ),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Names of all topics, sorted, without internal ones (`__consumer_offsets`). After
    /// [`close`](Self::close), the topics the store had.
    pub fn list_topics(&self) -> Vec<String> {
        self.inner
            .topics
            .read()
            .keys()
            .filter(|n| !n.starts_with("__"))
            .cloned()
            .collect()
    }

    /// A topic's configuration and per-partition offsets and sizes.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.check_open()?;
        let t = self.inner.topic(name)?;
        let partitions = t
            .partitions
            .read()
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition,
                log_start_offset: p.log.log_start_offset(),
                log_end_offset: p.log.log_end_offset(),
                durable_offset: p.log.durable_offset(),
                size_bytes: p.log.size_bytes(),
                segment_count: p.log.segments().len(),
            })
            .collect();
        Ok(TopicDescription {
            name: t.name.clone(),
            config: t.config.read().clone(),
            partitions,
        })
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks a topic). Durable on
    /// return; a crash part-way is rolled back at open. The new partitions are built
    /// without holding the topic's config lock: sends and polls of this topic (and of
    /// every other) go on meanwhile.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for an internal topic, or if `total` is not more
    /// than the current count or over 100,000; `AlreadyExists` if a directory of one
    /// of the new partitions exists already; `Io`; `Closed`.
    pub fn add_partitions(&self, name: &str, total: i32) -> Result<()> {
        let _ddl = self.inner.ddl.lock();
        self.check_open()?;
        refuse_internal(name, "its partitions are the store's")?;
        let inner = &self.inner;
        let t = inner.topic(name)?;
        // Topic changes are serialized by `ddl`: the config cannot change under us.
        let config = t.config.read().clone();
        if total <= config.partitions || total > 100_000 {
            return Err(Error::InvalidArgument {
                name: "total",
                reason: format!(
                    "topic `{name}` has {} partitions; the new total must be more (and at most 100000)",
                    config.partitions
                ),
            });
        }
        check_dir_name_length(name, total)?;
        inner.check_dirs_free(name, config.partitions..total)?;
        let mut meta = TopicMeta {
            config: config.clone(),
            id: Some(t.id),
            intent: Some(Intent::Grow(total)),
            adopting: false,
        };
        inner.write_metadata(name, &meta)?;
        let intent = meta.clone();
        meta.config.partitions = total;
        meta.intent = None;
        let range = config.partitions..total;
        let new = match inner.build_partitions(name, t.id, range.clone(), &meta) {
            Ok(new) => new,
            Err(e) => {
                let old = TopicMeta {
                    intent: None,
                    ..intent.clone()
                };
                inner.roll_back(name, &intent, range, Some(&old));
                return Err(e);
            }
        };
        t.partitions.write().extend(new);
        *t.config.write() = meta.config;
        inner.bump_metadata_epoch();
        inner.notifier.notify();
        Ok(())
    }

    /// A handle to a topic.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.check_open()?;
        Ok(Topic {
            state: self.inner.topic(name)?,
        })
    }

    /// Raises the log start offset of `topic`-`partition` to `offset` (Kafka's
    /// `deleteRecords`): records below it are no longer readable (their segments are
    /// reclaimed by retention), and consumers positioned below it follow their
    /// `auto_offset_reset`. Durable on return. Returns the new log start offset.
    ///
    /// `offset` -1 deletes up to the log end (Kafka's meaning: the high watermark).
    ///
    /// # Errors
    /// `InvalidArgument` for an internal topic or an offset below -1; `NotFound`;
    /// `OffsetOutOfRange` past the log end; `Io`; `Closed`.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        self.check_open()?;
        refuse_internal(topic, "its records are not deleted by hand")?;
        Partition {
            state: self.partition_state(topic, partition)?,
        }
        .delete_records(offset)
    }

    /// Consumer groups with live members or committed offsets, sorted. After
    /// [`close`](Self::close), the groups the store had.
    pub fn list_groups(&self) -> Vec<String> {
        self.inner.groups.list()
    }

    /// A group's members, their assignments, and its committed offsets with lag.
    ///
    /// # Errors
    /// `NotFound` for a group with no members and no committed offsets; `Closed`.
    pub fn describe_group(&self, group: &str) -> Result<crate::consumer::GroupDescription> {
        self.check_open()?;
        let check = |tp: &crate::consumer::TopicPartition, c: &group::Commit| {
            let p = self.partition_state(tp.topic(), tp.partition()).ok()?;
            Some((p.apply_commit(c)?, p.log.log_end_offset()))
        };
        self.inner
            .groups
            .describe(group, &check)
            .ok_or_else(|| Error::NotFound {
                kind: "consumer group",
                name: group.to_string(),
            })
    }

    /// Flushes every partition and closes the store: the next open scans nothing. Later
    /// calls on any clone that return a `Result` return `Closed` (`list_topics` and
    /// `list_groups` list what the store had; a second `close` does nothing).
    ///
    /// # Errors
    /// The first error from closing a partition (the others are still closed).
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Inner {
    /// Every topic (internal ones too), by name.
    fn bump_metadata_epoch(&self) {
        self.metadata_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(crate) fn topic_states(&self) -> Vec<Arc<TopicState>> {
        self.topics.read().values().cloned().collect()
    }

    fn topic(&self, name: &str) -> Result<Arc<TopicState>> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind: "topic",
                name: name.to_string(),
            })
    }

    fn open_partition(
        &self,
        topic: &str,
        topic_id: TopicId,
        partition: i32,
        config: &TopicConfig,
    ) -> Result<Arc<PartitionState>> {
        let log = Log::open_with_fs(
            self.config.fs.clone(),
            self.dir.join(partition_dir_name(topic, partition)),
            self.config.log_config(config),
        )?;
        Ok(Arc::new(PartitionState {
            topic: topic.to_string(),
            topic_id,
            partition,
            log,
            notifier: self.notifier.clone(),
        }))
    }

    fn write_metadata(&self, name: &str, meta: &TopicMeta) -> Result<()> {
        recovery::write_meta(self.config.fs.as_ref(), &self.dir, name, meta)
    }

    fn remove_metadata(&self, name: &str) -> Result<()> {
        let fs = self.config.fs.as_ref();
        let dir = self.dir.join(TOPICS_DIR);
        fs.remove_file(&dir.join(name))
            .and_then(|()| fs.sync_dir(&dir))
            .map_err(io_ctx(format!("remove the metadata of topic `{name}`")))
    }

    /// `AlreadyExists` if a directory of one of these partitions exists: whatever it
    /// is, it is not this topic's (an interrupted change of ours was settled at open).
    fn check_dirs_free(&self, topic: &str, range: std::ops::Range<i32>) -> Result<()> {
        let fs = self.config.fs.as_ref();
        for p in range {
            let path = self.dir.join(partition_dir_name(topic, p));
            if fs
                .exists(&path)
                .map_err(io_ctx(format!("stat {}", path.display())))?
            {
                return Err(Error::AlreadyExists {
                    kind: "directory (not this topic's; the store leaves it alone)",
                    name: path.display().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Creates and opens partitions `range` of a topic whose intent is recorded: each
    /// directory first gets `partition.metadata` naming the topic id, so that it is
    /// recognisably the store's before it holds anything else. On failure nothing
    /// stays open (the directories stay, for [`roll_back`](Self::roll_back)).
    fn open_new_partitions(
        &self,
        topic: &str,
        id: TopicId,
        range: std::ops::Range<i32>,
        config: &TopicConfig,
    ) -> Result<Vec<Arc<PartitionState>>> {
        let fs = self.config.fs.as_ref();
        let mut parts = Vec::new();
        let result = (|| {
            for p in range {
                let path = self.dir.join(partition_dir_name(topic, p));
                crate::fs::create_dir_durable(fs, &path)
                    .map_err(io_ctx(format!("create {}", path.display())))?;
                meta::write_partition_metadata(fs, &path, id)?;
                parts.push(self.open_partition(topic, id, p, config)?);
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(parts),
            Err(e) => {
                self.discard_partitions(&parts);
                Err(e)
            }
        }
    }

    /// Creates partitions `range` of a topic whose intent is recorded, then writes
    /// `done`, the metadata that records the outcome. On failure nothing stays open
    /// (the directories stay, for [`roll_back`](Self::roll_back)).
    fn build_partitions(
        &self,
        topic: &str,
        id: TopicId,
        range: std::ops::Range<i32>,
        done: &TopicMeta,
    ) -> Result<Vec<Arc<PartitionState>>> {
        let parts = self.open_new_partitions(topic, id, range, &done.config)?;
        match self.write_metadata(topic, done) {
            Ok(()) => Ok(parts),
            Err(e) => {
                self.discard_partitions(&parts);
                Err(e)
            }
        }
    }

    /// Closes partitions `build_partitions` opened before a later step failed.
    fn discard_partitions(&self, parts: &[Arc<PartitionState>]) {
        for p in parts {
            let _ = p.log.shutdown();
        }
    }

    /// Best-effort roll-back of a topic change that failed after its `intent` was
    /// recorded, done as an open would do it: the intent is written again first (the
    /// outcome may have reached the file before the failure), and only then are the
    /// directories of `range` that name the topic's id removed, and the metadata
    /// removed (a create) or set to `after` (a grow). Whatever fails stops it there:
    /// the intent on disk tells the next open to finish, so the metadata never names
    /// a partition whose directory is gone.
    fn roll_back(
        &self,
        name: &str,
        intent: &TopicMeta,
        range: std::ops::Range<i32>,
        after: Option<&TopicMeta>,
    ) {
        if self.write_metadata(name, intent).is_err() {
            return;
        }
        let fs = self.config.fs.as_ref();
        let mut report = StoreRecoveryReport::default();
        for p in range {
            let dir = partition_dir_name(name, p);
            if recovery::remove_owned_dir(fs, &self.dir, &dir, intent.id, &mut report).is_err() {
                return;
            }
        }
        if fs.sync_dir(&self.dir).is_err() {
            return;
        }
        let _ = match after {
            None => self.remove_metadata(name),
            Some(meta) => self.write_metadata(name, meta),
        };
    }

    fn close(&self) -> Result<()> {
        self.maintenance.stop();
        if !self.closed.load(Ordering::Acquire) {
            let producers = std::mem::take(&mut *self.producers.lock());
            crate::producer::shutdown_all(&producers);
        }
        let _ddl = self.ddl.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut first = None;
        for t in self.topics.read().values() {
            for p in t.partitions.read().iter() {
                if let Err(e) = p.log.shutdown() {
                    first.get_or_insert(e);
                }
                p.wake();
            }
        }
        // Handles (topics, partitions, consumers) may outlive the close: their files need
        // no descriptor any more.
        self.files.close_idle();
        self.lock.lock().clear();
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing store {} on drop failed: {e}", self.dir.display());
        }
    }
}
