//! streamlog: Kafka's log model inside your process.
//!
//! Topics split into partitions of offset-addressed records, producers with Kafka's
//! partitioners, batching and compression (gzip, snappy, lz4, zstd), consumers and
//! consumer groups with committed offsets, retention and log compaction, over a
//! durable, crash-safe segmented log on local disk in Kafka's own format. No broker, no
//! network: open a directory, produce and consume.
//!
//! ```
//! use std::time::Duration;
//! use streamlog::{Acks, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, Store, TopicConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("clicks", TopicConfig::default().partitions(4))?;
//!
//! let producer = store.producer(ProducerConfig::default().acks(Acks::All))?;
//! let meta = producer
//!     .send(ProducerRecord::new("clicks").key("user-7").value(r#"{"page":"home"}"#))?
//!     .wait()?;                       // fdatasync'd: survives power loss
//! println!("partition {} offset {}", meta.partition, meta.offset);
//!
//! let mut consumer = store.consumer(
//!     ConsumerConfig::new("analytics").auto_offset_reset(OffsetReset::Earliest),
//! )?;
//! consumer.subscribe(["clicks"])?;
//! let records = consumer.poll(Duration::from_secs(1))?;
//! for rec in &records {               // zero-copy views of the stored batches
//!     println!("{:?} {:?} {}", rec.key(), rec.value(), rec.offset());
//! }
//! consumer.commit_sync()?;            // fsync'd into __consumer_offsets
//!
//! // Direct access to a partition, without groups.
//! let part = store.topic("clicks")?.partition(meta.partition)?;
//! assert_eq!(part.read(meta.offset, 1 << 20)?[0].value.as_deref(), Some(&br#"{"page":"home"}"#[..]));
//! store.close()?;                     // clean shutdown: the next open scans nothing
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Durability is per send ([`Acks`]): `None` (queued in memory), `Leader` (the default:
//! in the file, survives a process crash) or `All` (fdatasync'd, survives power loss;
//! concurrent sends share one fsync). After any crash, opening the store recovers a
//! prefix of what was appended that holds every record acknowledged under `Acks::All`,
//! and [`Store::recovery_report`] says what was truncated.
//!
//! # Layers
//!
//! Each layer uses only the ones below it.
//!
//! - **The store**: [`Store`], which opens a directory and hands out the clients.
//! - **Clients**: [`producer`] ([`Producer`], [`ProducerConfig`], partitioners, delivery
//!   futures) and [`consumer`] ([`Consumer`], [`ConsumerConfig`], records, rebalance
//!   listeners).
//! - **Services inside the store**: the group coordinator (assignors, committed offsets
//!   in `__consumer_offsets`: [`Store::describe_group`]) and maintenance (retention,
//!   compaction, background flush: [`Store::run_maintenance`]).
//! - **The catalog**: topics and their partitions in one directory, [`Topic`] and
//!   [`Partition`] handles, topic changes that survive a crash, [`TopicConfig`].
//! - [`log`]: one partition directory on its own, usable without a store: append, read,
//!   flush, roll, truncate, recovery, retention and compaction ([`log::Log`]).
//! - [`fs`]: the storage seam ([`fs::OsFs`], and [`fs::SimFs`] for crash and fault
//!   tests).
//! - [`format`](mod@format): pure encoding and decoding of Kafka batches (no I/O).
//!
//! The repository's `ARCHITECTURE.md` maps the code and the invariants of each layer.
#![warn(missing_docs)]
#![deny(unsafe_code)]

/// A builder setter `fn name(mut self, value: T) -> Self` for a config field of the same
/// name (one definition for every config type).
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

mod catalog;
pub mod consumer;
mod error;
pub mod format;
pub mod fs;
mod groups;
#[cfg(feature = "internals")]
pub mod internals;
pub mod log;
mod maintenance;
mod notify;
pub mod producer;
mod store;
mod topic;
mod txn;

pub use catalog::{
    CommittedOffsetReset, ImportReport, Partition, PartitionDescription, PartitionRecovery,
    RecoveredTransaction, StoreCheck, StoreConfig, StoreRecoveryReport, Topic, TopicDescription,
    TopicId, verify_store, verify_store_with_progress,
};
pub use consumer::{
    Assignor, Consumer, ConsumerConfig, ConsumerGroupMetadata, ConsumerRecord, ConsumerRecords,
    IsolationLevel, OffsetChange, OffsetReset, OffsetSpec, RebalanceListener, RecordRef,
};
pub use error::{Error, Result};
pub use format::{Batch, BatchBuilder, Compression, Header, Record};
pub use fs::LatencyHistogram;
pub use maintenance::MaintenanceReport;
pub use producer::{
    Acks, BatchDelivery, DeliveryFuture, Payload, Producer, ProducerConfig, ProducerRecord,
    RecordMetadata, SendFuture,
};
pub use store::{
    ConsumerMetrics, FlushMetrics, GroupLag, MaintenanceMetrics, MetricEntry, PartitionMetrics,
    ProducerMetrics, Store, StoreMetrics,
};
#[cfg(unix)]
pub use store::{ReadOnlyPartition, ReadOnlyStore, WaitMechanism};
pub use topic::{
    CleanupPolicy, TopicConfig, TopicPartition, TopicSettings, validate_new_topic_name,
    validate_topic_name,
};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
