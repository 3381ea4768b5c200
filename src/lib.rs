//! streamlog: Kafka's log model inside your process.
//!
//! Partitions of offset-addressed records in Kafka's exact on-disk format (RecordBatch
//! v2 with gzip, snappy, lz4 and zstd; `.log`/`.index`/`.timeindex` segments), over a
//! durable, crash-safe segmented log on local disk. No broker, no network.
//!
//! ```
//! use streamlog::format::{BatchBuilder, Compression};
//! use streamlog::log::{Log, LogConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path().join("clicks-0"), LogConfig::default())?;
//! let mut batch = BatchBuilder::new().compression(Compression::Lz4);
//! batch.push(1_700_000_000_000, Some(b"user-7"), Some(br#"{"page":"home"}"#), &[])?;
//! let info = log.append(&mut batch.finish()?)?;  // in the page cache: survives a process crash
//! log.flush()?;                                   // fdatasync'd: survives power loss
//! for record in log.read_records(info.base_offset, 1 << 20)? {
//!     println!("{} {:?}", record.offset, record.value);
//! }
//! log.close()?;                                   // clean shutdown: the next open scans nothing
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//! - [`format`](mod@format): pure encoding and decoding of Kafka batches (no I/O).
//! - [`fs`]: the storage seam ([`fs::OsFs`], and [`fs::SimFs`] for crash and fault tests).
//! - [`log`]: one partition directory: append, read, flush, roll, truncate, recovery.
//!
//! Durability, in fsync terms, is documented on [`log`].
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

pub use catalog::{
    CommittedOffsetReset, ImportReport, Partition, PartitionDescription, PartitionRecovery,
    StoreConfig, StoreRecoveryReport, Topic, TopicDescription, TopicId,
};
pub use consumer::{
    Assignor, Consumer, ConsumerConfig, ConsumerRecord, ConsumerRecords, IsolationLevel,
    OffsetReset, RebalanceListener, RecordRef,
};
pub use error::{Error, Result};
pub use format::{Batch, BatchBuilder, Compression, Header, Record};
pub use maintenance::MaintenanceReport;
pub use producer::{
    Acks, BatchDelivery, DeliveryFuture, Payload, Producer, ProducerConfig, ProducerRecord,
    RecordMetadata,
};
pub use store::Store;
pub use topic::{CleanupPolicy, TopicConfig, TopicPartition, validate_topic_name};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
