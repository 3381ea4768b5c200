//! The catalog's view of a topic and of one of its partitions: the narrow interface
//! through which clients (producer, consumer) and services (groups, maintenance) reach
//! a partition. They name it by topic and number, append encoded batches, read batches,
//! ask for offsets and epochs, and wait for data; the `Log` behind it stays the
//! catalog's (services that run retention and compaction borrow it through
//! [`PartitionState::log`]).

use std::sync::Arc;

use parking_lot::RwLock;

use super::TopicId;
use crate::error::Result;
use crate::format::{Batch, DecodeOptions, EncodedBatch, Record};
use crate::log::{AbortedTxn, AppendInfo, Log, TransactionResult};
use crate::notify::Notifier;
use crate::topic::{TopicConfig, TopicPartition};

/// One partition of a topic incarnation, shared by every handle and client that uses it.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) topic: String,
    /// The topic incarnation this partition belongs to.
    pub(crate) topic_id: TopicId,
    pub(crate) partition: i32,
    log: Log,
    pub(super) notifier: Arc<Notifier>,
    /// The topic's cleanup policy includes compaction: records need a key.
    compacted: std::sync::atomic::AtomicBool,
    /// The topic's cleanup policy includes deletion: `delete_records` may raise the log
    /// start (Kafka refuses it for a compact-only topic, POLICY_VIOLATION).
    deletes: std::sync::atomic::AtomicBool,
    /// Its topic's deletion is decided (durable): set before it stops. A partition
    /// stopped by a deletion whose outcome is unknown (the next open decides) has it
    /// unset, as one stopped by the store's close.
    deleted: std::sync::atomic::AtomicBool,
}

impl PartitionState {
    pub(super) fn new(
        (topic, topic_id, partition): (&str, TopicId, i32),
        log: Log,
        notifier: Arc<Notifier>,
        config: &TopicConfig,
    ) -> PartitionState {
        PartitionState {
            topic: topic.to_string(),
            topic_id,
            partition,
            log,
            notifier,
            compacted: (config.cleanup_policy != crate::topic::CleanupPolicy::Delete).into(),
            deletes: (config.cleanup_policy != crate::topic::CleanupPolicy::Compact).into(),
            deleted: false.into(),
        }
    }

    /// Whether its topic's deletion is decided: nothing of it is left for a
    /// transaction to decide.
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks its topic's deletion decided (before the partition stops).
    pub(super) fn mark_deleted(&self) {
        self.deleted
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the topic's cleanup policy includes deletion now.
    pub(crate) fn deletes(&self) -> bool {
        self.deletes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the topic is compacted now (its records need keys).
    pub(crate) fn is_compacted(&self) -> bool {
        self.compacted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Applies an altered topic config (see `Catalog::alter_topic_config`).
    pub(super) fn alter(
        &self,
        config: &TopicConfig,
        log_config: &crate::log::LogConfig,
    ) -> Result<()> {
        self.log.alter_config(log_config)?;
        self.compacted.store(
            config.cleanup_policy != crate::topic::CleanupPolicy::Delete,
            std::sync::atomic::Ordering::Release,
        );
        self.deletes.store(
            config.cleanup_policy != crate::topic::CleanupPolicy::Compact,
            std::sync::atomic::Ordering::Release,
        );
        Ok(())
    }

    /// `topic`-`partition`.
    pub(crate) fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.as_str(), self.partition)
    }

    /// Wakes everyone waiting for data or group changes (after an append, a retention
    /// that moved the log start, a close).
    pub(crate) fn wake(&self) {
        self.notifier.notify();
    }

    /// The partition's log, for the store's services that maintain it (retention,
    /// compaction, background flush, describe) and for closing it. Clients use the
    /// methods of this type instead.
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// `InvalidArgument` if an append now would refuse a record timestamped `ts` (the
    /// topic's `message_timestamp_before_max_ms` / `message_timestamp_after_max_ms` of
    /// the store's clock, on a CreateTime topic): a producer refuses that record at
    /// `send` instead of failing the batch it would share with others.
    pub(crate) fn check_timestamp(&self, ts: i64) -> Result<()> {
        if ts < 0 {
            // No timestamp (-1): nothing to bound, as an append finds.
            return Ok(());
        }
        self.log.check_timestamp_bounds(ts, ts)
    }

    /// First offset.
    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Next offset to be written.
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Offsets below this survive power loss.
    pub(crate) fn durable_offset(&self) -> i64 {
        self.log.durable_offset()
    }

    /// Whether the partition stopped (its topic was deleted or the store closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.log.is_closed()
    }

    /// The current leader epoch (committed offsets carry it).
    pub(crate) fn epoch(&self) -> i32 {
        self.log.epoch()
    }

    /// Where the records of `epoch` end, if the log knows the epoch (KIP-320).
    pub(crate) fn epoch_end_offset(&self, epoch: i32) -> Option<i64> {
        self.log.epoch_end_offset(epoch)
    }

    /// The decode limits of this partition's batches.
    pub(crate) fn decode_options(&self) -> DecodeOptions {
        self.log.config().decode
    }

    /// The largest batch this partition accepts (`max_message_bytes`).
    pub(crate) fn max_message_bytes(&self) -> u64 {
        self.log.max_message_bytes()
    }

    /// The store clock's time in milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.log.config().clock.now_ms()
    }

    /// Appends an encoded batch (see [`Log::append_encoded`]); the caller wakes readers.
    pub(crate) fn append_encoded(&self, batch: &mut EncodedBatch) -> Result<AppendInfo> {
        self.log.append_encoded(batch)
    }

    /// Makes offsets below `offset` durable, sharing fsyncs (see [`Log::flush_to`]).
    pub(crate) fn flush_to(&self, offset: i64) -> Result<i64> {
        self.log.flush_to(offset)
    }

    /// Whole batches from `offset` (see [`Log::read`]).
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Vec<Batch>> {
        self.log.read(offset, max_bytes)
    }

    /// Decoded records from `offset` (see [`Log::read_records`]).
    pub(crate) fn read_records(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        self.log.read_records(offset, max_bytes)
    }

    /// Appends the COMMIT (`commit`) or ABORT marker of `producer_id`'s transaction
    /// under `epoch` (see [`Log::append_marker`]); the caller wakes readers. The store
    /// has one coordinator, of epoch 0; it succeeds Kafka's of an imported topic, whose
    /// markers may carry a higher epoch: a marker takes the producer's last one then
    /// (a lower one is refused as from a fenced coordinator).
    pub(crate) fn append_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<AppendInfo> {
        let result = if commit {
            TransactionResult::Commit
        } else {
            TransactionResult::Abort
        };
        let coordinator_epoch = self.log.marker_coordinator_epoch(producer_id).max(0);
        self.log
            .append_marker(producer_id, epoch, coordinator_epoch, result)
    }

    /// Where read_committed readers see the partition end (see
    /// [`Log::last_stable_offset`]).
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }

    /// The producer id and epoch of every open transaction.
    pub(crate) fn open_transactions(&self) -> Vec<(i64, i16)> {
        self.log.open_transaction_epochs()
    }

    /// The epochs this partition holds for those of `producer_ids` it remembers (of
    /// each one's latest batch or marker).
    pub(crate) fn producer_epochs(&self, producer_ids: &[i64]) -> Vec<(i64, i16)> {
        self.log.producer_epochs(producer_ids)
    }

    /// The aborted transactions overlapping `[from, to)` (see
    /// [`Log::aborted_transactions`]).
    pub(crate) fn aborted_transactions(&self, from: i64, to: i64) -> Result<Vec<AbortedTxn>> {
        self.log.aborted_transactions(from, to)
    }

    /// The first offset whose timestamp is at least `timestamp`, with that timestamp.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        self.log.offset_for_timestamp(timestamp)
    }
}

/// Whether `b` belongs to one of the `aborted` transactions (a read_committed reader
/// skips it): a transactional batch of an aborted transaction's producer between its
/// first offset and its ABORT marker.
pub(crate) fn is_aborted(b: &Batch, aborted: &[AbortedTxn]) -> bool {
    let h = b.header();
    h.is_transactional()
        && !h.is_control()
        && aborted.iter().any(|a| {
            a.producer_id == h.producer_id
                && (a.first_offset..=a.last_offset).contains(&b.base_offset())
        })
}

/// A topic incarnation: its name, id, config and partitions.
#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) name: String,
    /// This incarnation's id (a topic deleted and created again has a new one).
    pub(crate) id: TopicId,
    pub(super) config: RwLock<TopicConfig>,
    pub(super) partitions: RwLock<Vec<Arc<PartitionState>>>,
}

impl TopicState {
    pub(super) fn new(
        name: &str,
        id: TopicId,
        config: TopicConfig,
        partitions: Vec<Arc<PartitionState>>,
    ) -> TopicState {
        TopicState {
            name: name.to_string(),
            id,
            config: RwLock::new(config),
            partitions: RwLock::new(partitions),
        }
    }

    /// The topic's configuration now.
    pub(crate) fn config(&self) -> TopicConfig {
        self.config.read().clone()
    }

    /// The partitions now (a topic only grows).
    pub(crate) fn partitions(&self) -> Vec<Arc<PartitionState>> {
        self.partitions.read().clone()
    }

    /// How many partitions the topic has.
    pub(crate) fn partition_count(&self) -> usize {
        self.partitions.read().len()
    }

    /// Partitions from number `from` on (those a cache of the topic has not seen yet).
    pub(crate) fn partitions_from(&self, from: usize) -> Vec<Arc<PartitionState>> {
        self.partitions.read().iter().skip(from).cloned().collect()
    }

    /// Partition `n`, if the topic has it.
    pub(crate) fn partition(&self, n: i32) -> Option<Arc<PartitionState>> {
        usize::try_from(n)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }
}
