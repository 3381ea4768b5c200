//! [`Store::open_read_only`]: a store another process has open, read without its lock
//! and without writing a byte, following its appends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Store;
use crate::catalog::{
    PartitionDescription, TopicDescription, is_store, partition_dir, read_topics,
};
use crate::consumer::CommittedOffset;
use crate::error::{Error, Result};
use crate::format::{DecodeOptions, Record};
use crate::groups::{
    OFFSETS_TOPIC, OffsetChange, OffsetSpec, OffsetsReplay, check_group, planned_change,
};
use crate::log::TailReader;
use crate::topic::{TopicConfig, TopicPartition};

/// The first and the longest pause of a wait for new data (it doubles in between).
const FIRST_PAUSE: Duration = Duration::from_micros(100);
const LONGEST_PAUSE: Duration = Duration::from_millis(2);

/// A store opened read-only ([`Store::open_read_only`]): topics, partitions and committed
/// offsets as the writer leaves them, read with no lock and no write. `Send + Sync`.
#[derive(Debug)]
pub struct ReadOnlyStore {
    dir: PathBuf,
    /// The offsets topic's partitions as read so far, and what they say.
    offsets: Mutex<OffsetsFollower>,
}

#[derive(Debug, Default)]
struct OffsetsFollower {
    readers: Vec<(TailReader, i64)>,
    replay: OffsetsReplay,
}

/// One partition of a [`ReadOnlyStore`]: reads and waits on what the writer appended.
#[derive(Debug)]
pub struct ReadOnlyPartition {
    partition: TopicPartition,
    dir: PathBuf,
    reader: Mutex<TailReader>,
    /// Set up at the first wait.
    watch: Mutex<Watch>,
}

/// The watch of a partition's directory.
#[derive(Debug)]
enum Watch {
    NotYet,
    On(std::sync::Arc<DirWatch>),
    /// It could not be set up: waits poll.
    Failed,
}

/// How [`ReadOnlyPartition::wait_for`] learns of new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitMechanism {
    /// File-system events on the partition's directory (the `notify` feature: inotify
    /// on Linux, FSEvents on macOS, ..), with a check every 100 ms besides.
    Events,
    /// Polling the files with a backoff from 0.1 ms to 2 ms (without the `notify`
    /// feature, or where watching the directory failed).
    Polling,
}

/// A watch on a partition directory: every event moves a counter and wakes waiters.
struct DirWatch {
    #[cfg(feature = "notify")]
    _watcher: notify::RecommendedWatcher,
    #[cfg(feature = "notify")]
    changes: std::sync::Arc<(Mutex<u64>, parking_lot::Condvar)>,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch").finish_non_exhaustive()
    }
}

/// The longest wait between checks while watching (events may be dropped: an inotify
/// queue overflow, say).
#[cfg(feature = "notify")]
const WATCHED_PAUSE: Duration = Duration::from_millis(100);

impl DirWatch {
    /// Watches `dir`, or `None` where that cannot be done.
    #[cfg(feature = "notify")]
    fn start(dir: &Path) -> Option<DirWatch> {
        use notify::Watcher;
        let changes = std::sync::Arc::new((Mutex::new(0u64), parking_lot::Condvar::new()));
        let seen = changes.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Opening or reading a file (this reader's own listing and reads among
                // them) changes nothing; anything else, an error included: look again.
                if let Ok(e) = &event
                    && matches!(e.kind, notify::EventKind::Access(_))
                {
                    return;
                }
                *seen.0.lock() += 1;
                seen.1.notify_all();
            })
            .map_err(|e| tracing::debug!("{}: no file-system events ({e}); polling", dir.display()))
            .ok()?;
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| tracing::debug!("{}: cannot watch ({e}); polling", dir.display()))
            .ok()?;
        Some(DirWatch {
            _watcher: watcher,
            changes,
        })
    }

    #[cfg(not(feature = "notify"))]
    fn start(_dir: &Path) -> Option<DirWatch> {
        None
    }

    #[cfg(feature = "notify")]
    fn seq(&self) -> u64 {
        *self.changes.0.lock()
    }

    /// Waits until an event after `seen`, or until `until`.
    #[cfg(feature = "notify")]
    fn wait(&self, seen: u64, until: Instant) {
        let mut seq = self.changes.0.lock();
        while *seq == seen {
            if self.changes.1.wait_until(&mut seq, until).timed_out() {
                return;
            }
        }
    }
}

impl Store {
    /// Opens the store in `dir` read-only, while its writer (another process, or this
    /// one) may have it open: no lock is taken and no byte is written, so any number of
    /// readers can follow one writer. Reads see whole batches whose CRC checks; a batch
    /// being written is not visible until it is whole. Segments the writer rolls,
    /// deletes (retention) or rewrites (compaction) are followed, not errors.
    ///
    /// Waiting ([`ReadOnlyPartition::wait_for`], [`ReadOnlyPartition::poll`]) wakes on
    /// file-system events on the partition's directory with the `notify` feature
    /// (inotify on Linux; [`ReadOnlyPartition::wait_mechanism`] says which is in use);
    /// without it, or where the directory cannot be watched, it polls the files with a
    /// backoff from 0.1 ms to 2 ms, so new data is seen within about 2 ms.
    ///
    /// A log start raised by `delete_records` is followed (as the writer records it).
    /// Not (yet) followed: transaction filtering (records are read as read_uncommitted;
    /// transaction markers are left out), and a topic deleted (and maybe created again
    /// under the same name) while a partition handle is held: the handle's reads fail
    /// with `NotFound` once they find its directory gone or replaced (a new handle
    /// reads the new topic).
    /// Committed offsets are read as written, without the checks the writer applies at
    /// its open (an earlier topic of the same name, records a crash removed). After a
    /// writer crash, whole batches it had not synced may be read before its recovery
    /// cuts them; a reader whose file the writer replaced or removed looks its offset
    /// up again. Damage at the end of the segment being written reads as data not
    /// written yet, unless the writer recorded it as synced (`streamlog.durable`): then
    /// it is `Corruption`, as the writer's own open reports it. Unix only (pread,
    /// inodes).
    ///
    /// ```
    /// use streamlog::{Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let writer = Store::open(dir.path())?;
    /// writer.create_topic("clicks", TopicConfig::default())?;
    /// let part = writer.topic("clicks")?.partition(0)?;
    /// part.append(&[Record::new(1_700_000_000_000, Some("user-7"), Some("home"))])?;
    ///
    /// let reader = Store::open_read_only(dir.path())?; // the writer is still open
    /// assert_eq!(reader.list_topics()?, ["clicks"]);
    /// let clicks = reader.partition("clicks", 0)?;
    /// assert_eq!(clicks.read(0, 1 << 20)?[0].value.as_deref(), Some(&b"home"[..]));
    /// part.append(&[Record::new(1_700_000_000_001, Some("user-7"), Some("cart"))])?;
    /// assert!(clicks.wait_for(1, std::time::Duration::from_secs(5))?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `NotFound` if `dir` holds no store; `Io`.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<ReadOnlyStore> {
        let dir = dir.as_ref();
        if !is_store(dir) {
            return Err(Error::NotFound {
                kind: "store",
                name: dir.display().to_string(),
            });
        }
        Ok(ReadOnlyStore {
            dir: dir.to_path_buf(),
            offsets: Mutex::new(OffsetsFollower::default()),
        })
    }
}

impl ReadOnlyStore {
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topics now (internal ones left out), sorted.
    ///
    /// # Errors
    /// `Io`; `Corruption` for unreadable topic metadata.
    pub fn list_topics(&self) -> Result<Vec<String>> {
        Ok(read_topics(&self.dir)?
            .into_keys()
            .filter(|n| !n.starts_with("__"))
            .collect())
    }

    /// A topic's configuration now (its partition count included).
    ///
    /// # Errors
    /// `NotFound`; as [`list_topics`](Self::list_topics).
    pub fn topic_config(&self, topic: &str) -> Result<TopicConfig> {
        read_topics(&self.dir)?
            .remove(topic)
            .ok_or_else(|| Error::NotFound {
                kind: "topic",
                name: topic.to_string(),
            })
    }

    /// A topic's config and each partition's offsets, size and segment count now, as
    /// [`Store::describe_topic`]; `durable_offset` is -1 (what the writer has synced
    /// is not visible from outside it).
    ///
    /// # Errors
    /// `NotFound`; as [`list_topics`](Self::list_topics).
    pub fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        let config = self.topic_config(topic)?;
        let mut partitions = Vec::new();
        for p in 0..config.partition_count() {
            let part = self.partition(topic, p)?;
            let mut reader = part.reader.lock();
            let (segment_count, size_bytes) = reader.segment_files()?;
            partitions.push(PartitionDescription {
                partition: p,
                log_start_offset: reader.log_start_offset()?,
                log_end_offset: reader.log_end_offset()?,
                durable_offset: -1,
                size_bytes,
                segment_count,
                poisoned: None,
            });
        }
        Ok(TopicDescription {
            name: topic.to_string(),
            config,
            partitions,
        })
    }

    /// A group's committed offsets with each partition's log end offset and the lag
    /// between them, as in [`Store::describe_group`] (whose live members only the
    /// writer's process knows).
    ///
    /// # Errors
    /// `NotFound` for a group without committed offsets; `Io`; `Corruption`.
    pub fn describe_group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let committed = self.committed(group)?;
        if committed.is_empty() {
            return Err(Error::NotFound {
                kind: "consumer group",
                name: group.to_string(),
            });
        }
        let mut out = Vec::with_capacity(committed.len());
        for (tp, offset) in committed {
            let end = match self.partition(tp.topic(), tp.partition()) {
                Ok(p) => p.log_end_offset()?,
                Err(Error::NotFound { .. }) => -1,
                Err(e) => return Err(e),
            };
            out.push(CommittedOffset {
                lag: if end < 0 { 0 } else { (end - offset).max(0) },
                partition: tp,
                offset,
                log_end_offset: end,
            });
        }
        Ok(out)
    }

    /// A handle to read `topic`-`partition`.
    ///
    /// # Errors
    /// `NotFound` for an unknown topic or partition; as [`list_topics`](Self::list_topics).
    pub fn partition(&self, topic: &str, partition: i32) -> Result<ReadOnlyPartition> {
        let config = self.topic_config(topic)?;
        let count = config.partition_count();
        if !(0..count).contains(&partition) {
            return Err(Error::NotFound {
                kind: "partition",
                name: format!("{topic}-{partition}"),
            });
        }
        let dir = partition_dir(&self.dir, topic, partition);
        Ok(ReadOnlyPartition {
            partition: TopicPartition::new(topic, partition),
            reader: Mutex::new(
                TailReader::new(&dir, DecodeOptions::default())
                    .offset_gaps(config.allows_offset_gaps())
                    .offset_gaps_when({
                        // Compaction may have been turned on since.
                        let (store, topic) = (self.dir.clone(), topic.to_string());
                        move || {
                            let mut topics = read_topics(&store).ok()?;
                            Some(topics.remove(&topic)?.allows_offset_gaps())
                        }
                    }),
            ),
            dir,
            watch: Mutex::new(Watch::NotYet),
        })
    }

    /// Reads what the writer appended to the offsets topic since the last call.
    fn follow_offsets(&self) -> Result<parking_lot::MutexGuard<'_, OffsetsFollower>> {
        let mut f = self.offsets.lock();
        let partitions = read_topics(&self.dir)?
            .get(OFFSETS_TOPIC)
            .map_or(0, |config| config.partition_count());
        while (f.readers.len() as i32) < partitions {
            let p = f.readers.len() as i32;
            let reader = TailReader::new(
                partition_dir(&self.dir, OFFSETS_TOPIC, p),
                DecodeOptions::default(),
            );
            f.readers.push((reader, 0));
        }
        let OffsetsFollower { readers, replay } = &mut *f;
        for (reader, next) in readers.iter_mut() {
            loop {
                let batches = reader.read_batches(*next, 1 << 20)?;
                if batches.is_empty() {
                    break;
                }
                // On past each batch once applied: one that fails stays next, for
                // the next call to fail on again, not skipped with those after it.
                for b in &batches {
                    replay.apply_batch(b, &DecodeOptions::default())?;
                    *next = b.last_offset() + 1;
                }
            }
        }
        Ok(f)
    }

    /// The consumer groups with committed offsets now, sorted.
    ///
    /// # Errors
    /// `Io`; `Corruption`.
    pub fn list_groups(&self) -> Result<Vec<String>> {
        let f = self.follow_offsets()?;
        let mut groups: Vec<String> = f.replay.committed().map(|(g, _)| g.clone()).collect();
        groups.sort();
        Ok(groups)
    }

    /// What [`Store::alter_group_offsets`] would commit, computed from what the writer
    /// has written (Kafka's `--reset-offsets` dry run, which works while the group
    /// runs): as [`Store::plan_group_offsets`], except that `Timestamp` scans the
    /// partition's batches from its start (no time index is read).
    ///
    /// # Errors
    /// As [`Store::plan_group_offsets`] (`NotFound` for an unknown partition,
    /// `InvalidArgument` for `ShiftBy` without a committed offset or a bad group id);
    /// `Io`; `Corruption`.
    pub fn plan_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
        to: OffsetSpec,
    ) -> Result<Vec<OffsetChange>> {
        check_group(group)?;
        let committed = self.committed(group)?;
        let mut plan = Vec::with_capacity(partitions.len());
        let mut planned = std::collections::BTreeSet::new();
        for tp in partitions.iter().filter(|tp| planned.insert(*tp)) {
            let part = self.partition(tp.topic(), tp.partition())?;
            let log = part.log_start_offset()?..part.log_end_offset()?;
            let at_time = |ts| Ok(part.offset_for_timestamp(ts)?.map(|(o, _)| o));
            let current = committed.get(tp).copied();
            plan.push(planned_change(group, tp, to, current, log, at_time)?);
        }
        Ok(plan)
    }

    /// A group's committed offsets now (the next offset it reads, per partition).
    ///
    /// # Errors
    /// `Io`; `Corruption`.
    pub fn committed(&self, group: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        let f = self.follow_offsets()?;
        Ok(f.replay
            .committed()
            .find(|(g, _)| g.as_str() == group)
            .map(|(_, offsets)| {
                offsets
                    .iter()
                    .map(|(tp, c)| (tp.clone(), c.offset))
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl ReadOnlyPartition {
    /// Which partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// The first offset there is (the first segment's base).
    ///
    /// # Errors
    /// `Io`.
    pub fn log_start_offset(&self) -> Result<i64> {
        self.reader.lock().log_start_offset()
    }

    /// The offset after the last whole batch written.
    ///
    /// # Errors
    /// `Io`; `Corruption`.
    pub fn log_end_offset(&self) -> Result<i64> {
        self.reader.lock().log_end_offset()
    }

    /// The first record with a timestamp at or after `timestamp` (Kafka's
    /// `offsetsForTimes`): its offset and timestamp, or `None` if every record is older.
    /// Scans the batches from the log start, skipping those whose largest timestamp is
    /// older, without the writer's time index.
    ///
    /// # Errors
    /// `InvalidArgument` for a negative `timestamp`; else as [`read`](Self::read).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        crate::error::check_target_time(timestamp)?;
        let mut reader = self.reader.lock();
        let mut at = reader.log_start_offset()?;
        loop {
            let batches = reader.read_batches(at, 1 << 20)?;
            let Some(last) = batches.last() else {
                return Ok(None);
            };
            let next = last.last_offset() + 1;
            for b in &batches {
                // Transaction markers count, as in the writer's lookup (and Kafka's).
                if b.header().max_timestamp < timestamp {
                    continue;
                }
                for r in b.records()? {
                    let r = r?;
                    if r.offset >= at && r.timestamp >= timestamp {
                        return Ok(Some((r.offset, r.timestamp)));
                    }
                }
            }
            at = next;
        }
    }

    /// Records from `offset` on (from the log start if retention deleted `offset`), whole
    /// batches up to about `max_bytes`; empty when nothing at or after `offset` is
    /// written yet. Reading on from the offset after the last record returned is
    /// sequential (no search).
    ///
    /// # Errors
    /// `Corruption` for a damaged batch the writer has written past; `NotFound` once the
    /// partition's directory is gone or replaced (its topic deleted); `Io`; decoding
    /// errors.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        self.reader.lock().read(offset, max_bytes)
    }

    /// [`read`](Self::read), with the offset to read on from: after the last batch
    /// decoded, which is past the last record returned when the batches after it held
    /// none (transaction markers, batches compaction emptied); when nothing was read,
    /// `offset`, or the log start if retention deleted `offset`. Reading on from it
    /// never returns a record twice or skips one (batches a read left undecoded, past
    /// `max_bytes` of decompressed data, are read again).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_on(&self, offset: i64, max_bytes: usize) -> Result<(Vec<Record>, i64)> {
        self.reader.lock().read_on(offset, max_bytes)
    }

    /// Waits until a record at `offset` or later may be read (the log end is past it),
    /// up to `timeout`; returns whether it is.
    ///
    /// # Errors
    /// As [`log_end_offset`](Self::log_end_offset).
    pub fn wait_for(&self, offset: i64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        let watch = {
            let mut watch = self.watch.lock();
            if matches!(*watch, Watch::NotYet) && !timeout.is_zero() {
                *watch = match DirWatch::start(&self.dir) {
                    Some(w) => Watch::On(std::sync::Arc::new(w)),
                    None => Watch::Failed,
                };
            }
            match &*watch {
                Watch::On(w) => Some(w.clone()),
                _ => None,
            }
        };
        #[cfg(feature = "notify")]
        if let Some(w) = watch.as_ref() {
            loop {
                // The counter before the check: an event after it ends the wait.
                let seen = w.seq();
                if self.log_end_offset()? > offset {
                    return Ok(true);
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Ok(false);
                }
                let until = now + WATCHED_PAUSE;
                w.wait(seen, deadline.map_or(until, |d| d.min(until)));
            }
        }
        #[cfg(not(feature = "notify"))]
        drop(watch);
        let mut pause = FIRST_PAUSE;
        loop {
            if self.log_end_offset()? > offset {
                return Ok(true);
            }
            let now = Instant::now();
            let Some(left) = deadline.map_or(Some(pause), |d| d.checked_duration_since(now)) else {
                return Ok(false);
            };
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// How waits learn of new data: [`WaitMechanism::Events`] once a wait has set up a
    /// watch on the partition's directory, else [`WaitMechanism::Polling`].
    pub fn wait_mechanism(&self) -> WaitMechanism {
        if matches!(*self.watch.lock(), Watch::On(_)) {
            WaitMechanism::Events
        } else {
            WaitMechanism::Polling
        }
    }

    /// [`read`](Self::read), waiting up to `timeout` for a record at or after `offset`
    /// when there is none yet.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn poll(&self, offset: i64, max_bytes: usize, timeout: Duration) -> Result<Vec<Record>> {
        self.poll_on(offset, max_bytes, timeout)
            .map(|(records, _)| records)
    }

    /// [`poll`](Self::poll), with the offset to read on from, as
    /// [`read_on`](Self::read_on).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn poll_on(
        &self,
        offset: i64,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<(Vec<Record>, i64)> {
        let (records, next) = self.read_on(offset, max_bytes)?;
        // Waits past what was read: batches without records (markers) end no wait.
        if !records.is_empty() || !self.wait_for(next, timeout)? {
            return Ok((records, next));
        }
        self.read_on(next, max_bytes)
    }
}
