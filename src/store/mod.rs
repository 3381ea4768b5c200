//! The public [`Store`]: a directory of topics, and the top of the library's layers.
//!
//! A store composes what the layers below provide and hands out clients: the
//! [catalog](crate::catalog) (topics and partitions on disk), the group coordinator
//! (committed offsets in `__consumer_offsets`), the maintenance thread (retention,
//! compaction, background flush), and the producers and consumers it creates. None of
//! those knows the `Store`: each is given the catalog (and, for consumers, the
//! coordinator) when it is made, plus an opaque handle that keeps the store open while
//! a client lives.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::catalog::{
    Catalog, ImportReport, Partition, StoreConfig, StoreRecoveryReport, Topic, TopicDescription,
};
use crate::consumer::{Consumer, ConsumerConfig, GroupDescription, OffsetChange, OffsetSpec};
use crate::error::{Error, Result, io_ctx};
use crate::groups::{Coordinator, OFFSETS_TOPIC};
use crate::maintenance::{Maintenance, MaintenanceReport};
use crate::producer::{Producer, ProducerConfig};
use crate::topic::TopicPartition;
use crate::topic::{TopicConfig, refuse_internal};
use crate::txn::TxnCoordinator;

mod metrics;
// Following another process's files (unix: pread, inodes).
#[cfg(unix)]
mod read_only;

pub use metrics::{
    ConsumerMetrics, FlushMetrics, GroupLag, MaintenanceMetrics, MetricEntry, PartitionMetrics,
    ProducerMetrics, StoreMetrics,
};
#[cfg(unix)]
pub use read_only::{ReadOnlyPartition, ReadOnlyStore, WaitMechanism};

/// What every handle of one store shares.
#[derive(Debug)]
struct StoreInner {
    catalog: Arc<Catalog>,
    /// Consumer groups and committed offsets.
    groups: Arc<Coordinator>,
    /// Transactional ids and their transactions.
    txn: Arc<TxnCoordinator>,
    /// Live producers, flushed and stopped at close; `None` once the close took them
    /// (a producer made after that is stopped at once).
    producers: Mutex<Option<Vec<Weak<crate::producer::Shared>>>>,
    /// Held through a close: a close racing another (a clone's) waits until the first
    /// finished, its producers' flush included.
    closing: Mutex<()>,
    /// The thread running a close, while it does: a close called on it from inside that
    /// close (a waker the producers' close wakes, which polls its task inline, and the
    /// task closes the store) returns at once, leaving the close to the one under way
    /// (waiting would wait on itself; closing the partitions would close them under
    /// the producers' flush).
    closer: Mutex<Option<std::thread::ThreadId>>,
    /// The maintenance thread.
    maintenance: Arc<Maintenance>,
    /// What open found and did.
    recovery: Mutex<StoreRecoveryReport>,
    /// Samples of the totals, for the rates of `metrics`.
    rates: Arc<metrics::RateWindow>,
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
    inner: Arc<StoreInner>,
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
        let mut report = StoreRecoveryReport::default();
        let (catalog, adopted) = Catalog::open(dir.as_ref(), config, &mut report)?;
        let catalog = Arc::new(catalog);
        if !catalog.topic_names().iter().any(|n| n == OFFSETS_TOPIC) {
            catalog.create_topic(OFFSETS_TOPIC, Coordinator::offsets_topic_config())?;
        }
        let groups = Arc::new(Coordinator::default());
        // Transactions a crash left open are closed before the offsets are loaded: a
        // transaction's offsets count once its COMMIT marker is written.
        let (txn, resolved) = TxnCoordinator::recover(&catalog, groups.clone())?;
        report.transactions = resolved;
        groups.load_checked(&catalog, &adopted, &mut report)?;
        if report.is_eventful() {
            tracing::warn!("{}: recovery: {report:?}", catalog.dir().display());
        }
        let rates = Arc::new(metrics::RateWindow::opened_on(&catalog));
        let store = Store {
            inner: Arc::new(StoreInner {
                catalog,
                groups,
                txn: Arc::new(txn),
                producers: Mutex::new(Some(Vec::new())),
                closing: Mutex::new(()),
                closer: Mutex::new(None),
                maintenance: Arc::default(),
                recovery: Mutex::new(report),
                rates,
            }),
        };
        let config = store.inner.catalog.config();
        if config.background_maintenance {
            let interval = Duration::from_millis(config.maintenance_interval_ms);
            store
                .inner
                .maintenance
                .start(
                    &store.inner.catalog,
                    &store.inner.groups,
                    &store.inner.txn,
                    interval,
                    store.metrics_publisher(),
                )
                .map_err(io_ctx("start the maintenance thread"))?;
            // A consumer waiting in `recv`: its group's stale members are expired on
            // the thread's timer.
            let m = Arc::downgrade(&store.inner.maintenance);
            store.inner.groups.set_on_wait(move || {
                if let Some(m) = m.upgrade() {
                    m.nudge();
                }
            });
        }
        Ok(store)
    }

    /// What [`open`](Self::open) found and did: per partition its recovery (truncated
    /// ranges and bytes, rebuilt indexes, finished compaction swaps), topic changes a
    /// crash interrupted, directories left alone, and committed offsets lowered because
    /// the records they pointed past were lost.
    pub fn recovery_report(&self) -> StoreRecoveryReport {
        self.inner.recovery.lock().clone()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        self.inner.catalog.dir()
    }

    fn check_open(&self) -> Result<()> {
        self.inner.catalog.check_open()
    }

    /// With the `metrics` feature, what the maintenance thread runs after each pass:
    /// publish the metrics. It holds the parts it reads, never the store (whose last
    /// handle must not be dropped on the maintenance thread, which its drop joins).
    fn metrics_publisher(&self) -> Option<crate::maintenance::AfterPass> {
        #[cfg(feature = "metrics")]
        {
            let groups = self.inner.groups.clone();
            let rates = self.inner.rates.clone();
            Some(Box::new(move |catalog: &Catalog| {
                metrics::publish(catalog.dir(), &rates, || {
                    metrics::snapshot(catalog, &groups, &rates)
                });
            }))
        }
        #[cfg(not(feature = "metrics"))]
        None
    }

    /// What keeps this store open while a client it made lives.
    fn owner(&self) -> Arc<dyn Any + Send + Sync> {
        self.inner.clone()
    }

    /// Creates a topic with `config.partition_count()` empty partitions. Durable on return.
    ///
    /// # Errors
    /// `InvalidArgument` for a name breaking Kafka's rules, starting with `__`
    /// (reserved for internal topics), or differing from a topic's name only in `.`
    /// and `_` (as Kafka: `a.b` and `a_b` collide); `InvalidConfig`; `AlreadyExists`;
    /// `Io`.
    /// `Poisoned` once a topic change failed where the disk may not match the store (a
    /// directory fsync after its metadata was replaced; a roll-back cut short): topic
    /// changes wait for the next open, which settles it.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        crate::topic::validate_new_topic_name(name)?;
        self.inner.catalog.create_topic(name, config)?;
        // Its `flush_ms` may be due before the thread's next pass.
        self.inner.maintenance.reschedule();
        Ok(())
    }

    /// Deletes a topic and all its data. Handles to it stop accepting appends
    /// (`Closed`), and its committed offsets are forgotten: a topic created later under
    /// the same name is a new topic (a new [`TopicId`](crate::TopicId)) that no old
    /// offset applies to. Durable on return: after a crash, the deletion is completed at
    /// open. A topic with a poisoned partition (a failed fsync, never retried) is
    /// deleted and its files removed, but that partition's directory (with its
    /// `partition.metadata`) is left to the next open, which removes it; the name
    /// refuses changes (`Poisoned`) until then.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for an internal topic; `Io`. An `Io` error that
    /// says the committed offsets could not be forgotten comes after the topic was
    /// deleted: those offsets are never applied to another topic (they name this
    /// topic's id) and are dropped at the next open. An `Io` error after the deletion
    /// may have reached the disk stops the topic all the same (`Closed`): the next open
    /// finishes the deletion or brings the topic back, as the disk says.
    /// `Poisoned` once a topic change failed where the disk may not match the store (a
    /// directory fsync after its metadata was replaced; a roll-back cut short): topic
    /// changes wait for the next open, which settles it.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let inner = &self.inner;
        inner.catalog.delete_topic(name, &|topic| {
            inner.groups.forget_topic(&inner.catalog, topic)
        })
    }

    /// Names of all topics, sorted, without internal ones (`__consumer_offsets`). After
    /// [`close`](Self::close), the topics the store had.
    pub fn list_topics(&self) -> Vec<String> {
        let mut names = self.inner.catalog.topic_names();
        names.retain(|n| !n.starts_with("__"));
        names
    }

    /// A topic's configuration and per-partition offsets and sizes.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.inner.catalog.describe_topic(name)
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks a topic). Durable on
    /// return; a crash part-way is rolled back at open. The new partitions are built
    /// without holding the topic's config lock: sends and polls of this topic (and of
    /// every other) go on meanwhile.
    ///
    /// As in Kafka, keys hash to partitions by the partition count, so many keys move
    /// to another partition from now on. On a compacted topic, a key's later values
    /// (and its tombstone) then land in a partition other than its earlier ones, which
    /// compaction never removes: grow a keyed topic before its keys matter, or copy it.
    ///
    /// # Errors
    /// `NotFound`; `InvalidArgument` for an internal topic, or if `total` is not more
    /// than the current count or over 100,000; `AlreadyExists` if a directory of one
    /// of the new partitions exists already; `Io`; `Closed`.
    /// `Poisoned` once a topic change failed where the disk may not match the store (a
    /// directory fsync after its metadata was replaced; a roll-back cut short): topic
    /// changes wait for the next open, which settles it.
    pub fn add_partitions(&self, name: &str, total: i32) -> Result<()> {
        self.inner.catalog.add_partitions(name, total)
    }

    /// A handle to a topic.
    ///
    /// # Errors
    /// `NotFound`; `Closed`.
    pub fn topic(&self, name: &str) -> Result<Topic> {
        Ok(Topic {
            state: self.inner.catalog.open_topic(name)?,
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
    /// `InvalidArgument` for an internal topic, a topic whose cleanup policy is
    /// compaction alone (Kafka's POLICY_VIOLATION), or an offset below -1; `NotFound`;
    /// `OffsetOutOfRange` past the log end; `Io`; `Poisoned` once the partition's
    /// fsync failed; `Closed`.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) -> Result<i64> {
        self.check_open()?;
        refuse_internal(topic, "its records are not deleted by hand")?;
        Partition {
            state: self.inner.catalog.partition(topic, partition)?,
        }
        .delete_records(offset)
    }

    /// Adopts the partition directories `<name>-0`, `<name>-1`, ... that sit in the store
    /// directory (copied there from a stopped Kafka broker's log directory, say) as topic
    /// `name` with `config` (its partition count is the number of directories found).
    /// Every batch and index entry is checked first
    /// ([`verify_partition_dir`](crate::log::verify_partition_dir)); damage
    /// is refused, never truncated, and nothing is changed then. Kafka's topic id is
    /// kept when every directory names the same one. The directories' producers (their
    /// writers' ids, epochs and sequences) are forgotten, but for open transactions:
    /// none of them can send here, and this store's producers must not be taken for
    /// them. (Each partition holding records then rolls to a new segment, and the state
    /// left is its producer snapshot; a crash before the import returns leaves the
    /// directories to import again.)
    ///
    /// `config` applies from the next maintenance pass, judged by Kafka's own
    /// timestamps: with a time retention (`TopicConfig::default()` keeps 7 days, as
    /// Kafka's default does), every segment older than it is deleted then. Pass the
    /// topic's Kafka settings, or `retention_ms(-1)` to keep everything (as the CLI's
    /// `import-kafka` does unless told otherwise). The directories become the store's:
    /// it appends, compacts and deletes in them from then on, so import a copy, never a
    /// running broker's directory or a link to one.
    ///
    /// Kafka keeps each partition's log start offset in its log directory's
    /// `log-start-offset-checkpoint`, not in the partition directory: records below it
    /// that are still in the first segment (deleted by `DeleteRecords`, say) are
    /// imported as live. To keep them deleted, write the partition's start into the
    /// partition directory first, as the CLI's `import-kafka --from` (or
    /// `--log-start-offsets`) does: a `log-start-offset-checkpoint` file in Kafka's
    /// checkpoint format, lines `0`, `1` and `<topic> <partition> <offset>`.
    ///
    /// ```
    /// # use streamlog::{Record, Store, TopicConfig};
    /// # let kafka = tempfile::tempdir()?;
    /// # { // a directory as Kafka leaves it (here written by streamlog's own `Log`)
    /// #   let log = streamlog::log::Log::open(kafka.path().join("clicks-0"), Default::default())?;
    /// #   let mut b = streamlog::BatchBuilder::new();
    /// #   b.push(1_700_000_000_000, Some(b"k"), Some(b"v"), &[])?;
    /// #   log.append(&mut b.finish()?)?;
    /// #   log.close()?;
    /// # }
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// std::fs::rename(kafka.path().join("clicks-0"), dir.path().join("clicks-0"))?;
    /// // Kept for ever: this record, dated 2023, would go at the next pass with 7 days.
    /// let report = store.import_kafka_topic("clicks", TopicConfig::default().retention_ms(-1))?;
    /// assert_eq!(report.partitions[0].1.log_end_offset, 1);
    /// assert_eq!(store.topic("clicks")?.partition(0)?.read(0, 1 << 20)?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidArgument` for a bad or internal name, or no `<name>-0` directory;
    /// `AlreadyExists` if the topic exists; `InvalidConfig`; `Corruption` for a damaged
    /// batch, segments that overlap, or directories naming different topic ids;
    /// `Io`; `Closed`.
    /// `Poisoned` once a topic change failed where the disk may not match the store (a
    /// directory fsync after its metadata was replaced, or this import's fsync of the
    /// store directory; a roll-back cut short): topic changes wait for the next open,
    /// which settles it.
    pub fn import_kafka_topic(&self, name: &str, config: TopicConfig) -> Result<ImportReport> {
        let report = self.inner.catalog.import_kafka_topic(name, config)?;
        self.inner.maintenance.reschedule();
        Ok(report)
    }

    /// A new producer on this store.
    ///
    /// # Errors
    /// `InvalidConfig`; `Closed`; `Io` if its linger thread cannot start.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        self.check_open()?;
        let (producer, shared) = Producer::new(
            self.inner.catalog.clone(),
            self.owner(),
            config,
            self.inner.txn.clone(),
        )?;
        let mut list = self.inner.producers.lock();
        let Some(list) = list.as_mut() else {
            // The store closed after the check: the close did not see this producer.
            drop(list);
            let _ = producer.close();
            return Err(Error::Closed { what: "store" });
        };
        list.retain(|w| w.strong_count() > 0);
        list.push(shared);
        Ok(producer)
    }

    /// A new consumer on this store.
    ///
    /// # Errors
    /// `InvalidConfig`; `Closed`.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        self.check_open()?;
        Consumer::new(
            self.inner.catalog.clone(),
            self.inner.groups.clone(),
            self.owner(),
            config,
        )
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
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.check_open()?;
        self.inner
            .groups
            .describe_with_lag(&self.inner.catalog, group)
            .ok_or_else(|| Error::NotFound {
                kind: "consumer group",
                name: group.to_string(),
            })
    }

    /// Changes a topic's config, as Kafka's `kafka-configs --alter` (or the admin
    /// API's `incrementalAlterConfigs`): `change` gets the current config and returns
    /// the new one. Alterable: retention (`retention_ms`, `retention_bytes`, the
    /// retention gate), `cleanup_policy`, the compaction knobs (`delete_retention_ms`,
    /// `min_cleanable_dirty_ratio`, `min_compaction_lag_ms`, `max_compaction_lag_ms`),
    /// `segment_bytes` and `segment_ms` (from the next roll), `max_message_bytes`,
    /// `message_timestamp_before_max_ms` and `message_timestamp_after_max_ms` (from the
    /// next append), `flush_messages` and `flush_ms`. The new config is validated,
    /// then written atomically (temporary file, fsync, rename, directory fsync) before it
    /// applies; retention and compaction use it from their next pass. A topic altered
    /// from a compacted policy to `delete` keeps accepting the offset gaps compaction
    /// left. A topic altered to a compacted policy loses its records without a key to
    /// compaction once their segments are cleanable (sealed, past
    /// `min_compaction_lag_ms`), as Kafka's cleaner removes them (a compacted topic
    /// refuses new ones). Returns the new config. `change` runs while topic changes are
    /// serialized: it must not create, delete, grow or alter topics of this store
    /// itself (that waits for it: a deadlock).
    ///
    /// ```
    /// use streamlog::{CleanupPolicy, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// let config = store.alter_topic_config("clicks", |c| {
    ///     c.retention_ms(3_600_000).cleanup_policy(CleanupPolicy::CompactDelete)
    /// })?;
    /// assert_eq!(config.settings().retention_ms, 3_600_000);
    /// assert_eq!(store.describe_topic("clicks")?.config, config);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidConfig` naming a knob that cannot change (`partitions`: see
    /// [`add_partitions`](Self::add_partitions); `message_timestamp_type`,
    /// `index_interval_bytes`) or is out of range (nothing changes then); `NotFound`;
    /// `InvalidArgument` for an internal topic; `Io`; `Closed`.
    /// `Poisoned` once a topic change failed where the disk may not match the store (a
    /// directory fsync after its metadata was replaced; a roll-back cut short): topic
    /// changes wait for the next open, which settles it.
    pub fn alter_topic_config(
        &self,
        name: &str,
        change: impl FnOnce(TopicConfig) -> TopicConfig,
    ) -> Result<TopicConfig> {
        self.check_open()?;
        let config = self.inner.catalog.alter_topic_config(name, change)?;
        self.inner.maintenance.reschedule();
        Ok(config)
    }

    /// What [`alter_group_offsets`](Self::alter_group_offsets) would commit, without
    /// committing it (the dry run of `kafka-consumer-groups --reset-offsets`).
    ///
    /// # Errors
    /// `NotFound` for an unknown topic or partition; `InvalidArgument` for
    /// [`OffsetSpec::ShiftBy`] of a partition the group has no offset for, or a negative
    /// [`OffsetSpec::Timestamp`]; `Closed`.
    pub fn plan_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<OffsetChange>> {
        self.check_open()?;
        self.inner
            .groups
            .plan_offsets(&self.inner.catalog, group, partitions, to)
    }

    /// Resets `group`'s committed offsets of `partitions` (Kafka's `kafka-consumer-groups
    /// --reset-offsets --execute`), refused while the group has live members. Durable
    /// on return (fsync'd into the committed-offsets topic); returns what changed. Each
    /// offset is kept within its partition's records. The group need not exist yet.
    ///
    /// ```
    /// use streamlog::{OffsetSpec, Store, TopicConfig, TopicPartition};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// let p = store.topic("clicks")?.partition(0)?;
    /// for i in 0..10 {
    ///     p.append(&[streamlog::Record::new(i, Some("k"), Some("v"))])?;
    /// }
    /// let tp = TopicPartition::new("clicks", 0);
    /// let changed = store.alter_group_offsets("analytics", &[tp.clone()], OffsetSpec::Offset(7))?;
    /// assert_eq!(changed[0].new, 7);
    /// let changed = store.alter_group_offsets("analytics", &[tp], OffsetSpec::ShiftBy(-2))?;
    /// assert_eq!((changed[0].current, changed[0].new), (Some(7), 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `GroupNotEmpty` while the group has members (checked before the offsets are
    /// planned); otherwise as [`plan_group_offsets`](Self::plan_group_offsets);
    /// `NotFound` if a topic was deleted (and maybe created again) while the offsets
    /// were planned (nothing is committed); and `Io` (a reset of more partitions than
    /// one batch of the offsets topic holds is
    /// written in several: those written before the failure stay reset, as a reopen
    /// finds them; `describe_group` says which).
    pub fn alter_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<OffsetChange>> {
        self.check_open()?;
        self.inner
            .groups
            .alter_offsets(&self.inner.catalog, group, partitions, to)
    }

    /// Deletes a consumer group: forgets every offset it committed, and cancels those
    /// open transactions sent for it (durable on return), refused while it has live
    /// members (Kafka's `kafka-consumer-groups --delete`). A consumer of the group
    /// started later begins from `auto_offset_reset`.
    ///
    /// Committed offsets never expire (they go with this, and with their topic's
    /// deletion): unlike Kafka, which expires the offsets of a group left empty for
    /// `offsets.retention.minutes` (7 days), the store keeps them, so that a consumer
    /// run once a month resumes where it stopped rather than from `auto_offset_reset`
    /// (with `Latest`, past every record appended meanwhile). Delete the groups a tool
    /// made up for one run.
    ///
    /// # Errors
    /// `GroupNotEmpty` while the group has members; `NotFound` for a group with no
    /// committed offset and none in an open transaction; `Io`; `Closed`.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.check_open()?;
        self.inner.groups.delete(&self.inner.catalog, group)
    }

    /// Runs one maintenance pass now over every partition (including the internal
    /// committed-offsets topic): retention for `delete` and `compact,delete` topics
    /// (segments below the log start offset go for every topic), compaction for
    /// `compact` topics when dirty enough, and a flush of partitions whose `flush_ms`
    /// passed. Returns what it did; a failure in one partition is reported in
    /// [`MaintenanceReport::errors`] and the others are still done.
    ///
    /// ```
    /// use streamlog::{Store, StoreConfig, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open_with(dir.path(), StoreConfig::default().background_maintenance(false))?;
    /// store.create_topic("events", TopicConfig::default().retention_bytes(0).segment_bytes(1024))?;
    /// let p = store.topic("events")?.partition(0)?;
    /// for i in 0..100 {
    ///     p.append(&[streamlog::Record::new(i, Some("k"), Some(vec![0u8; 100]))])?;
    /// }
    /// let report = store.run_maintenance()?;
    /// assert!(report.segments_deleted > 0);
    /// store.close()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `Closed` if the store is closed.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.inner.maintenance.run_pass(
            &self.inner.catalog,
            &self.inner.groups,
            &self.inner.txn,
            true,
        )
    }

    /// Flushes every partition and closes the store: the next open scans nothing. Later
    /// calls on any clone that return a `Result` return `Closed` (`list_topics` and
    /// `list_groups` list what the store had; a second `close` does nothing but return
    /// the first one's error, if it failed: the store did not close cleanly). A close
    /// called on the closing thread from inside the close (a waker it wakes that polls
    /// its task inline) returns `Ok` at once: the close under way reports the outcome.
    ///
    /// # Errors
    /// The first error from closing a partition (the others are still closed).
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// How many threads sleep on the store's notifier (a test hook, exposed by
    /// `internals`).
    #[cfg(feature = "internals")]
    pub(crate) fn sleeping_readers(&self) -> usize {
        self.inner.catalog.notifier().sleepers()
    }
}

impl StoreInner {
    /// Stops the services first (maintenance, then producers flush what they hold),
    /// then closes the partitions.
    fn close(&self) -> Result<()> {
        let me = std::thread::current().id();
        if *self.closer.lock() == Some(me) {
            return Ok(());
        }
        self.maintenance.stop();
        // A close racing this one (another clone's) waits for the producers' flush
        // before it closes the partitions under their appends. The producers' list is
        // not locked while they close: their wakers and delivery callbacks may call
        // into the store (make a producer, close it), which takes that lock.
        let _closing = self.closing.lock();
        *self.closer.lock() = Some(me);
        // Cleared however the close ends (a panic in a producer's flush included).
        let _closer = ClearOnDrop(&self.closer);
        let list = self.producers.lock().take();
        if let Some(list) = list {
            crate::producer::shutdown_all(&list);
        }
        self.catalog.close()
    }
}

/// Clears the closing thread's id when the close ends.
struct ClearOnDrop<'a>(&'a Mutex<Option<std::thread::ThreadId>>);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        *self.0.lock() = None;
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        if self.catalog.is_closed() {
            return; // a failed close was reported to its caller
        }
        if let Err(e) = self.close() {
            tracing::warn!(
                "closing store {} on drop failed: {e}",
                self.catalog.dir().display()
            );
        }
    }
}
