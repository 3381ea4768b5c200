//! `Topic` and `Partition`: handles to a topic and to one partition's log, for direct
//! access without groups or a producer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{PartitionState, TopicState};
use crate::error::{Error, Result};
use crate::format::{Batch, BatchBuilder, Compression, Record};
use crate::log::AppendInfo;
use crate::topic::{TopicConfig, refuse_internal};

/// A handle to a topic. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Topic {
    pub(crate) state: Arc<TopicState>,
}

impl Topic {
    /// The topic name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Its id (Kafka's topic id, also in each partition's `partition.metadata`): a topic
    /// deleted and created again under the same name has a new one. A mirror or an
    /// application that remembers positions can tell the two apart by it.
    ///
    /// ```
    /// use streamlog::{Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("t", TopicConfig::default())?;
    /// let first = store.topic("t")?.id();
    /// store.delete_topic("t")?;
    /// store.create_topic("t", TopicConfig::default())?;
    /// assert_ne!(store.topic("t")?.id(), first);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> crate::TopicId {
        self.state.id
    }

    /// Its configuration.
    pub fn config(&self) -> TopicConfig {
        self.state.config()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.state.partition_count() as i32
    }

    /// A handle to partition `n`.
    ///
    /// # Errors
    /// `NotFound` if the topic has no partition `n`; `Closed` after the store closed or
    /// the topic was deleted.
    pub fn partition(&self, n: i32) -> Result<Partition> {
        let state = self.state.partition(n).ok_or_else(|| Error::NotFound {
            kind: "partition",
            name: format!("{}-{n}", self.state.name),
        })?;
        if state.is_closed() {
            return Err(Error::Closed { what: "topic" });
        }
        Ok(Partition { state })
    }
}

/// Direct access to one partition's log: no groups, no producer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Partition {
    pub(crate) state: Arc<PartitionState>,
}

impl Partition {
    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.state.topic
    }

    /// The partition number.
    pub fn partition(&self) -> i32 {
        self.state.partition
    }

    /// First offset in the partition.
    pub fn log_start_offset(&self) -> i64 {
        self.state.log().log_start_offset()
    }

    /// Next offset to be written.
    pub fn log_end_offset(&self) -> i64 {
        self.state.log().log_end_offset()
    }

    /// Offsets below this survive power loss.
    pub fn durable_offset(&self) -> i64 {
        self.state.log().durable_offset()
    }

    /// Why appends to this partition fail until the store is reopened, if they do: a
    /// failed fsync or write poisoned it ([`Error::Poisoned`]). Reads go on.
    pub fn poison_reason(&self) -> Option<String> {
        self.state.log().poison_reason()
    }

    /// Appends records as one uncompressed batch. In the page cache on return (survives
    /// a process crash); see [`flush`](Self::flush). Wakes [`wait_for`](Self::wait_for).
    ///
    /// # Errors
    /// As [`append_with`](Self::append_with).
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        self.append_with(records, Compression::None)
    }

    /// Appends records as one batch compressed with `codec`.
    ///
    /// # Errors
    /// `InvalidArgument` for no records, a timestamp below -1 (as Kafka) or, under
    /// CreateTime, outside the topic's `message_timestamp_before_max_ms` /
    /// `message_timestamp_after_max_ms` of the store's clock, a record without a key on a compacted topic
    /// (as Kafka: compaction keeps records by key), or an internal topic (read-only
    /// here: only the store writes to it); `RecordTooLarge` past the topic's
    /// `max_message_bytes`, or for compressed records that decompress past the store's
    /// `max_decompressed_bytes` (no reader could decompress them); `Closed` after the
    /// topic was deleted or the store closed; `Io`; `Poisoned`.
    pub fn append_with(&self, records: &[Record], codec: Compression) -> Result<AppendInfo> {
        self.append_records(records, codec, true)
    }

    /// As [`append_with`](Self::append_with), for records copied from a log that
    /// accepted them already (a mirror of a Kafka topic): the topic's timestamp bounds
    /// are not applied again, as Kafka's replicas do not apply them, so a record the
    /// source took is never refused for its time.
    ///
    /// # Errors
    /// As [`append_with`](Self::append_with), but for the timestamp bounds.
    pub fn append_copied(&self, records: &[Record], codec: Compression) -> Result<AppendInfo> {
        self.append_records(records, codec, false)
    }

    fn append_records(
        &self,
        records: &[Record],
        codec: Compression,
        bounded: bool,
    ) -> Result<AppendInfo> {
        refuse_internal(&self.state.topic, "only the store writes to it")?;
        if self.state.is_compacted() && records.iter().any(|r| r.key.is_none()) {
            return Err(keyless_on_compacted(&self.state.topic));
        }
        let mut b = BatchBuilder::new().compression(codec);
        for r in records {
            crate::format::batch::check_timestamp(r.timestamp)?;
            b.push_record(r)?;
        }
        let log = self.state.log();
        let info = if bounded {
            log.append_encoded(&mut b.build()?)?
        } else {
            log.append_encoded_copied(&mut b.build()?)?
        };
        self.state.wake();
        Ok(info)
    }

    /// Records from `offset` (inclusive) up to about `max_bytes` of batches, and of
    /// decompressed data beyond the first batch (at least one record unless none
    /// follows). CRC-checked; zero-copy for uncompressed data. Transaction markers are
    /// left out (as a consumer never sees them); records of transactions are returned
    /// as written, committed or not (read_uncommitted).
    ///
    /// # Errors
    /// `OffsetOutOfRange`; `Corruption`; `Io`; `Closed` after the store closed or the
    /// topic was deleted.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        self.state.log().read_decoded(offset, max_bytes, false)
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` (at least one).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub fn read_batches(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        self.state.log().read(offset, max_bytes)
    }

    /// The first record at or after `timestamp`: `(offset, timestamp)`.
    ///
    /// # Errors
    /// `InvalidArgument` for a negative `timestamp` (not a time); `Corruption`; `Io`;
    /// `Closed` after the store closed or the topic was deleted.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.state.log().offset_for_timestamp(timestamp)
    }

    /// fsyncs everything appended so far; returns the durable offset.
    ///
    /// # Errors
    /// `Io` (the partition is then poisoned); `Poisoned`; `Closed`.
    pub fn flush(&self) -> Result<i64> {
        self.state.log().flush()
    }

    /// Blocks until a record at `offset` exists (the log end passes it) or `timeout`
    /// passes, without polling: it spins for at most 40 µs (on a machine with more than
    /// one CPU, so that a hand-off that soon wakes no parked thread), then parks until
    /// an append. Returns whether the record exists.
    ///
    /// Returns `false` at once if the partition was closed (topic deleted, store closed)
    /// or `offset` is below the log start (its record was deleted, or never was).
    pub fn wait_for(&self, offset: i64, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let notifier = &self.state.notifier;
        let mut first = true;
        loop {
            let seen = notifier.seq();
            // Closed first: a deleted topic's log still has its old end.
            if self.state.log().is_closed() || offset < self.log_start_offset() {
                return false;
            }
            if self.log_end_offset() > offset {
                return true;
            }
            // Spins briefly the first time only: later wake-ups were for other appends.
            let woke = if std::mem::take(&mut first) {
                notifier.wait(seen, deadline)
            } else {
                notifier.wait_parked(seen, deadline)
            };
            if !woke {
                return self.log_end_offset() > offset;
            }
        }
    }

    /// Raises the log start offset to `offset` (Kafka's `DeleteRecords`; see
    /// [`Store::delete_records`](crate::Store::delete_records)). Returns the new log start offset.
    ///
    /// # Errors
    /// `InvalidArgument` for an internal topic or one whose cleanup policy is compaction
    /// alone (Kafka's POLICY_VIOLATION: its records go only by compaction);
    /// `OffsetOutOfRange` past the log end; `Io`; `Poisoned`; `Closed`.
    pub fn delete_records(&self, offset: i64) -> Result<i64> {
        refuse_internal(&self.state.topic, "its records are not deleted by hand")?;
        if !self.state.deletes() {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!(
                    "`{}` has cleanup.policy=compact: its records go only by compaction, \
                     not by delete_records (Kafka's POLICY_VIOLATION)",
                    self.state.topic
                ),
            });
        }
        // Kafka's DeleteRecords: -1 means up to the high watermark (here the log end).
        let offset = match offset {
            -1 => self.log_end_offset(),
            o if o < -1 => {
                return Err(Error::InvalidArgument {
                    name: "offset",
                    reason: format!("{o}: delete_records takes an offset, or -1 for the log end"),
                });
            }
            o => o,
        };
        let start = self.state.log().advance_log_start(offset)?;
        self.state.wake();
        Ok(start)
    }
}

/// The error for a record without a key sent to a compacted topic (Kafka rejects these
/// too: compaction keeps the latest record per key and would drop them).
pub(crate) fn keyless_on_compacted(topic: &str) -> Error {
    Error::InvalidArgument {
        name: "key",
        reason: format!("topic `{topic}` is compacted; its records need a key"),
    }
}
