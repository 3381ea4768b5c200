//! Topic changes: create, delete and grow a topic, each crash-safe (intent first, then
//! directories, then the outcome; see the [catalog](super) docs), and the roll-back of a
//! change that failed part-way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;

use super::meta::{self, Intent, TopicId, TopicMeta};
use super::recovery::{self, StoreRecoveryReport};
use super::{
    Catalog, PartitionState, TOPICS_DIR, TopicState, check_dir_name_length, parallel,
    partition_dir_name,
};
use crate::error::{Error, Result, io_ctx};
use crate::log::{Log, WriteStep};
use crate::topic::{CleanupPolicy, MAX_PARTITIONS, TopicConfig, refuse_internal};

/// What the topic-change lock guards: the topics whose metadata on disk may not be
/// what the catalog holds, with why. A change that failed once its intent or outcome
/// may have reached the disk (a directory fsync after the rename failed; a roll-back
/// that could not finish) leaves the disk's word to the next open, which settles it;
/// until then, later changes of that topic are refused: one could overwrite a pending
/// intent (the next open would then find directories no metadata explains, or keep a
/// deleted topic's).
pub(super) type Unsettled = BTreeMap<String, String>;

/// Marks topic `name` unsettled (its first reason stays).
pub(super) fn unsettle(ddl: &mut Unsettled, name: &str, reason: String) {
    tracing::error!("{reason}: changes of topic `{name}` are refused until the store is reopened");
    ddl.entry(name.to_string()).or_insert(reason);
}

impl Catalog {
    /// The topic-change lock, for a change of topic `name`: `Closed`; `Poisoned` once a
    /// failed change left that topic unsettled (see [`Unsettled`]).
    pub(super) fn ddl(&self, name: &str) -> Result<MutexGuard<'_, Unsettled>> {
        let ddl = self.ddl.lock();
        self.check_open()?;
        if let Some(reason) = ddl.get(name) {
            return Err(Error::Poisoned {
                path: self.dir.join(TOPICS_DIR).join(name),
                reason: format!("{reason}; the next open settles it from the disk"),
            });
        }
        Ok(ddl)
    }

    /// Writes topic `name`'s metadata under the topic-change lock `ddl`: a failure once
    /// the new file is in place (its directory's fsync) marks the disk unsettled.
    pub(super) fn write_metadata_in(
        &self,
        ddl: &mut Unsettled,
        name: &str,
        meta: &TopicMeta,
    ) -> Result<()> {
        recovery::write_meta_steps(self.config.fs.as_ref(), &self.dir, name, meta).map_err(
            |(step, e)| {
                if step == WriteStep::SyncDir {
                    let reason = format!("the metadata of topic `{name}` may not be durable ({e})");
                    unsettle(ddl, name, reason);
                }
                e
            },
        )
    }

    /// [`roll_back`](Self::roll_back) of a change whose `build_partitions` failed with
    /// `failed`, marking the topic unsettled if it could not finish.
    fn roll_back_in(
        &self,
        ddl: &mut Unsettled,
        name: &str,
        intent: &TopicMeta,
        range: std::ops::Range<i32>,
        after: Option<&TopicMeta>,
        failed: &BuildFailed,
    ) {
        if failed.dir_sync_failed {
            // A roll-back syncs that directory again, and an fsync that failed is never
            // retried (one that then succeeds says nothing of what the failed one was
            // to make durable): the next open settles the change from its intent.
            let reason = format!(
                "a change of topic `{name}` failed at a directory fsync ({})",
                failed.error
            );
            unsettle(ddl, name, reason);
            return;
        }
        // Not a directory that was there when it was to be created: not ours.
        let range: Vec<i32> = range.filter(|p| !failed.taken.contains(p)).collect();
        if let Err(e) = self.roll_back(name, intent, range, after) {
            let reason = format!("a failed change of topic `{name}` was not rolled back ({e})");
            unsettle(ddl, name, reason);
        }
    }

    /// The topic-change lock, for creating topic `name`: as [`ddl`](Self::ddl);
    /// `AlreadyExists` if it exists; `InvalidArgument` if it differs from a topic's name
    /// only in `.` and `_` (Kafka refuses those: they are one name in its metrics).
    pub(super) fn ddl_for_new_topic(&self, name: &str) -> Result<MutexGuard<'_, Unsettled>> {
        let ddl = self.ddl(name)?;
        let topics = self.topics.read();
        if topics.contains_key(name) {
            return Err(Error::AlreadyExists {
                kind: "topic",
                name: name.to_string(),
            });
        }
        let folded = |n: &str| n.replace('.', "_");
        // Also a topic whose change is unsettled (gone from memory, and maybe back at
        // the next open).
        let names = topics.keys().chain(ddl.keys());
        if let Some(other) = names.into_iter().find(|t| folded(t) == folded(name)) {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!(
                    "`{name}` collides with topic `{other}`: names that differ only in '.' \
                     and '_' are one name in Kafka's metrics"
                ),
            });
        }
        drop(topics);
        Ok(ddl)
    }

    pub(crate) fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        config.validate()?;
        check_dir_name_length(name, config.partitions)?;
        let mut ddl = self.ddl_for_new_topic(name)?;
        self.check_dirs_free(name, 0..config.partitions)?;
        let id = TopicId::random();
        let mut meta = TopicMeta {
            config,
            id: Some(id),
            intent: Some(Intent::Create),
            adopting: false,
        };
        // The intent is durable before any directory exists: a crash from here on is
        // rolled back at open, removing only directories that name this id.
        self.write_metadata_in(&mut ddl, name, &meta)?;
        let intent = meta.clone();
        meta.intent = None;
        let range = 0..meta.config.partitions;
        let parts = match self.build_partitions(name, id, range.clone(), &meta) {
            Ok(parts) => parts,
            Err(failed) => {
                self.roll_back_in(&mut ddl, name, &intent, range, None, &failed);
                return Err(failed.error);
            }
        };
        self.topics.write().insert(
            name.to_string(),
            Arc::new(TopicState::new(name, id, meta.config, parts)),
        );
        self.bump_metadata_epoch();
        // Consumers waiting for a topic by this name (subscribed, or following one
        // deleted) find it now, not at the first append: one that then resolved its
        // position to the end would skip the records up to it. Outside `ddl`: a waker
        // may poll its task inline, and that task may change topics too.
        drop(ddl);
        self.notifier.notify();
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
    /// topic's id) and are dropped at the next open. An `Io` error whose deletion may
    /// have reached the disk stops the topic as a deletion does; the next open
    /// finishes the deletion or brings the topic back, as the disk says.
    pub(crate) fn delete_topic(
        &self,
        name: &str,
        forget_offsets: &dyn Fn(&str) -> Result<()>,
    ) -> Result<()> {
        let mut stopped = false;
        let result = self.delete_topic_locked(name, forget_offsets, &mut stopped);
        // Waiters are woken once the topic-change lock is released (as `create_topic`
        // and `close` wake them): a waker may poll its task inline, and that task may
        // change topics or close the store, which take that lock. (The partitions share
        // the store's notifier: one notification wakes their waiters too.)
        if stopped {
            self.notifier.notify();
        }
        result
    }

    /// [`delete_topic`](Self::delete_topic) under the topic-change lock; sets `stopped`
    /// once it stopped the topic, whose waiters are to be woken after.
    fn delete_topic_locked(
        &self,
        name: &str,
        forget_offsets: &dyn Fn(&str) -> Result<()>,
        stopped: &mut bool,
    ) -> Result<()> {
        let mut ddl = self.ddl(name)?;
        if name.starts_with("__") {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!("`{name}` is an internal topic and cannot be deleted"),
            });
        }
        let state = self.topic(name)?;
        let meta = TopicMeta {
            config: state.config(),
            id: Some(state.id),
            intent: Some(Intent::Delete),
            adopting: false,
        };
        // The decision: once this is durable, the topic is gone at any later open. In
        // place but maybe not durable, it is the next open's: the topic stops all the
        // same (nothing is acknowledged that the deletion may take), its files stay.
        if let Err(e) = self.write_metadata_in(&mut ddl, name, &meta) {
            if ddl.contains_key(name) {
                self.stop_topic(name, &state, false);
                *stopped = true;
            }
            return Err(e);
        }
        let parts = self.stop_topic(name, &state, true);
        *stopped = true;
        let forgotten = forget_offsets(name);
        // A partition whose log was poisoned (a failed fsync, perhaps of its directory):
        // its files go (freeing their space), but removing its `partition.metadata`
        // needs that directory fsync'd first, and a failed fsync is never retried. The
        // deletion is decided (its intent is durable and stays): the next open removes
        // what is left, and the name waits for it.
        let poisoned = parts
            .iter()
            .find_map(|p| p.log().poison_reason().map(|r| (p.partition, r)));
        let removed = (|| {
            let mut report = StoreRecoveryReport::default();
            for p in &parts {
                let why = match p.log().poison_reason() {
                    Some(_) => recovery::Removal::DeletePoisoned,
                    None => recovery::Removal::Delete,
                };
                recovery::remove_owned_dir(
                    self.config.fs.as_ref(),
                    &self.dir,
                    &partition_dir_name(name, p.partition),
                    Some(state.id),
                    why,
                    &mut report,
                )?;
            }
            self.config
                .fs
                .sync_dir(&self.dir)
                .map_err(io_ctx(format!("fsync {}", self.dir.display())))?;
            match poisoned {
                Some(_) => Ok(()),
                None => self.remove_metadata(name),
            }
        })();
        if let Err(e) = removed {
            // Its intent stays on disk for the next open to finish.
            let reason = format!("the deletion of topic `{name}` was cut short ({e})");
            unsettle(&mut ddl, name, reason);
            return Err(e);
        }
        if let Some((p, why)) = poisoned {
            let reason = format!(
                "topic `{name}` is deleted, the rest of its directories go at the next open \
                 (partition {p} was poisoned: {why})"
            );
            unsettle(&mut ddl, name, reason);
        }
        forgotten.map_err(|e| forget_failed(name, &e))
    }

    /// Takes topic `name` (`state`) out of the catalog and stops its partitions (their
    /// appends and reads return `Closed`), marked deleted if the deletion is `decided`
    /// (durable); returns them. The caller wakes their waiters once it has let go of the
    /// topic-change lock.
    fn stop_topic(
        &self,
        name: &str,
        state: &TopicState,
        decided: bool,
    ) -> Vec<Arc<PartitionState>> {
        self.topics.write().remove(name);
        self.bump_metadata_epoch();
        let parts = state.partitions();
        // Every partition stops taking appends before any directory goes.
        for p in &parts {
            if decided {
                p.mark_deleted();
            }
            let _ = p.log().shutdown();
        }
        parts
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
    pub(crate) fn add_partitions(&self, name: &str, total: i32) -> Result<()> {
        let mut ddl = self.ddl(name)?;
        refuse_internal(name, "its partitions are the store's")?;
        let t = self.topic(name)?;
        // Topic changes are serialized by `ddl`: the config cannot change under us.
        let config = t.config();
        if total <= config.partitions || total > MAX_PARTITIONS {
            return Err(Error::InvalidArgument {
                name: "total",
                reason: format!(
                    "topic `{name}` has {} partitions; the new total must be more (and at most 100000)",
                    config.partitions
                ),
            });
        }
        check_dir_name_length(name, total)?;
        self.check_dirs_free(name, config.partitions..total)?;
        let mut meta = TopicMeta {
            config: config.clone(),
            id: Some(t.id),
            intent: Some(Intent::Grow(total)),
            adopting: false,
        };
        self.write_metadata_in(&mut ddl, name, &meta)?;
        let intent = meta.clone();
        meta.config.partitions = total;
        meta.intent = None;
        let range = config.partitions..total;
        let new = match self.build_partitions(name, t.id, range.clone(), &meta) {
            Ok(new) => new,
            Err(failed) => {
                let old = TopicMeta {
                    intent: None,
                    ..intent.clone()
                };
                self.roll_back_in(&mut ddl, name, &intent, range, Some(&old), &failed);
                return Err(failed.error);
            }
        };
        t.partitions.write().extend(new);
        *t.config.write() = meta.config;
        self.bump_metadata_epoch();
        drop(ddl);
        self.notifier.notify();
        Ok(())
    }

    /// Changes a topic's alterable knobs (see [`TopicConfig::check_alterable`]):
    /// persisted atomically with the topic's metadata, then applied to its partitions
    /// (maintenance reads the rest at each pass). Returns the new config.
    pub(crate) fn alter_topic_config(
        &self,
        name: &str,
        change: impl FnOnce(TopicConfig) -> TopicConfig,
    ) -> Result<TopicConfig> {
        let mut ddl = self.ddl(name)?;
        refuse_internal(name, "its config is the store's")?;
        let t = self.topic(name)?;
        let old = t.config();
        let mut new = change(old.clone());
        old.check_alterable(&new)?;
        // Offset gaps compaction may have left stay allowed under any later policy.
        new.offset_gaps = old.offset_gaps || old.cleanup_policy != CleanupPolicy::Delete;
        let log_config = self.config.log_config(&new);
        log_config.validate()?;
        // In place but maybe not durable: the next open takes the config the disk
        // holds, old or new; this one keeps the old until then.
        self.write_metadata_in(
            &mut ddl,
            name,
            &TopicMeta {
                config: new.clone(),
                id: Some(t.id),
                intent: None,
                adopting: false,
            },
        )?;
        *t.config.write() = new.clone();
        for p in t.partitions() {
            p.alter(&new, &log_config)?;
        }
        // Producers re-read the topic (max_message_bytes, keys required).
        self.bump_metadata_epoch();
        Ok(new)
    }

    pub(super) fn bump_metadata_epoch(&self) {
        self.metadata_epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn open_partition(
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
        Ok(Arc::new(PartitionState::new(
            (topic, topic_id, partition),
            log,
            self.notifier.clone(),
            config,
        )))
    }

    pub(super) fn write_metadata(&self, name: &str, meta: &TopicMeta) -> Result<()> {
        recovery::write_meta(self.config.fs.as_ref(), &self.dir, name, meta)
    }

    pub(super) fn remove_metadata(&self, name: &str) -> Result<()> {
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
                return Err(dir_taken(&path));
            }
        }
        Ok(())
    }

    /// Creates and opens partitions `range` of a topic whose intent is recorded: each
    /// directory first gets `partition.metadata` naming the topic id, so that it is
    /// recognisably the store's before it holds anything else. On failure nothing
    /// stays open (the directories stay, for [`roll_back`](Self::roll_back)); the error
    /// comes with whether it was the store directory's fsync.
    fn open_new_partitions(
        &self,
        topic: &str,
        id: TopicId,
        range: std::ops::Range<i32>,
        config: &TopicConfig,
        taken: &parking_lot::Mutex<Vec<i32>>,
    ) -> std::result::Result<Vec<Arc<PartitionState>>, (Error, bool)> {
        let fs = self.config.fs.as_ref();
        let numbers: Vec<i32> = range.collect();
        // Each directory is created, given its metadata and opened (many at once on a
        // few threads), then the store directory is fsync'd once for all of them.
        let parts = parallel::try_map(&numbers, |&p| {
            let path = self.dir.join(partition_dir_name(topic, p));
            // Exclusively: a directory that appeared since the names were checked (put
            // there by someone else) is not taken for this partition's.
            fs.create_dir(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    taken.lock().push(p);
                    dir_taken(&path)
                }
                _ => Error::io(format!("create {}", path.display()), e),
            })?;
            meta::write_partition_metadata(fs, &path, id)?;
            self.open_partition(topic, id, p, config)
        })
        .map_err(|e| (e, false))?;
        let synced = fs
            .sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync {}", self.dir.display())));
        let sync_failed = synced.is_err();
        self.keep_or_discard(parts, synced)
            .map_err(|e| (e, sync_failed))
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
    ) -> std::result::Result<Vec<Arc<PartitionState>>, BuildFailed> {
        let taken = parking_lot::Mutex::new(Vec::new());
        let failed = |error, dir_sync_failed| BuildFailed {
            error,
            dir_sync_failed,
            taken: std::mem::take(&mut *taken.lock()),
        };
        let parts = self
            .open_new_partitions(topic, id, range, &done.config, &taken)
            .map_err(|(e, sync_failed)| failed(e, sync_failed))?;
        let fs = self.config.fs.as_ref();
        let written = recovery::write_meta_steps(fs, &self.dir, topic, done);
        let sync_failed = matches!(written, Err((WriteStep::SyncDir, _)));
        self.keep_or_discard(parts, written.map_err(|(_, e)| e))
            .map_err(|e| failed(e, sync_failed))
    }

    /// `parts` if the step that followed their opening succeeded; else they are closed
    /// and the step's error returned.
    fn keep_or_discard(
        &self,
        parts: Vec<Arc<PartitionState>>,
        step: Result<()>,
    ) -> Result<Vec<Arc<PartitionState>>> {
        if let Err(e) = step {
            self.discard_partitions(&parts);
            return Err(e);
        }
        Ok(parts)
    }

    /// Closes partitions `build_partitions` opened before a later step failed.
    fn discard_partitions(&self, parts: &[Arc<PartitionState>]) {
        for p in parts {
            let _ = p.log().shutdown();
        }
    }

    /// Best-effort roll-back of a topic change that failed after its `intent` was
    /// recorded (not at a directory fsync: see `roll_back_in`), done as an open would do
    /// it: the directories of the partitions `numbers` that name the topic's id are
    /// removed (which frees the space a full disk needs for the rest), and the metadata
    /// removed (a create) or set to `after` (a grow). Whatever fails stops it there: the
    /// intent on disk tells the next open to finish, so the metadata never names a
    /// partition whose directory is gone. Returns that first error.
    fn roll_back(
        &self,
        name: &str,
        intent: &TopicMeta,
        numbers: Vec<i32>,
        after: Option<&TopicMeta>,
    ) -> Result<()> {
        let fs = self.config.fs.as_ref();
        let mut report = StoreRecoveryReport::default();
        for p in numbers {
            let dir = partition_dir_name(name, p);
            // A grow's new partitions, beyond the count the topic keeps.
            let why = match after {
                Some(_) => recovery::Removal::UndoGrow,
                None => recovery::Removal::UndoCreate,
            };
            recovery::remove_owned_dir(fs, &self.dir, &dir, intent.id, why, &mut report)?;
        }
        fs.sync_dir(&self.dir)
            .map_err(io_ctx(format!("fsync {}", self.dir.display())))?;
        match after {
            None => self.remove_metadata(name),
            Some(meta) => self.write_metadata(name, meta),
        }
    }
}

/// Forgetting the committed offsets of deleted topic `name` failed with `e`.
fn forget_failed(name: &str, e: &Error) -> Error {
    Error::Io {
        context: format!(
            "forget the committed offsets of deleted topic `{name}` (the topic is deleted; \
             its offsets name its topic id, are never applied to another topic, and are \
             dropped at the next open)"
        ),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A new partition's directory name is taken by something not the store's.
fn dir_taken(path: &std::path::Path) -> Error {
    Error::AlreadyExists {
        kind: "directory (not this topic's; the store leaves it alone)",
        name: path.display().to_string(),
    }
}

/// How [`Catalog::build_partitions`] failed: the error, and whether it was a directory
/// fsync (the store directory's after the partitions' were made, or the metadata
/// directory's after the outcome was renamed into place), which no roll-back may
/// repeat.
struct BuildFailed {
    error: Error,
    dir_sync_failed: bool,
    /// Partitions whose directory existed when it was to be created (someone else's).
    taken: Vec<i32>,
}
