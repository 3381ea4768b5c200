//! streamlog-kafka: mirrors topics between a [`streamlog`] store and a Kafka cluster, for
//! when an application outgrows one machine.
//!
//! - [`Mirror::to_kafka`] (the sink) copies store topics to Kafka topics with the same
//!   partition counts (created through Kafka's admin API when missing), partition to
//!   partition, keeping key, value, headers and timestamp, and adds the record's store
//!   offset as the header [`SOURCE_OFFSET_HEADER`] (and the store topic's id as
//!   [`SOURCE_TOPIC_ID_HEADER`]). It follows new appends until stopped
//!   and commits its progress to a streamlog consumer group, so
//!   [`Store::describe_group`](streamlog::Store::describe_group) shows its lag.
//! - [`Mirror::from_kafka`] (the source) copies Kafka topics (as a consumer group member
//!   or from explicit partitions) into store topics the same way, adding the Kafka offset
//!   as the header [`KAFKA_OFFSET_HEADER`].
//!
//! # Exactly once, without transactions
//!
//! The destination is each direction's progress. At start, each partition resumes
//! right after the offset carried by the last record of the destination partition.
//! The group's committed offset is only the fallback below. Records of a partition are written in order (the sink through
//! an idempotent producer that retries without a time limit, the source by appending in
//! Kafka's offset order), so after any crash the destination holds a prefix of what was
//! sent, and resuming after its last record neither loses nor repeats one (one
//! exception: a sink restarted while Kafka held a record of the old run that it had not
//! yet replicated, which lies above the high watermark its end is read below, sends that
//! record again; see the README's limits). The sink
//! fsyncs the store partitions up to the records it sends (one fsync per poll that
//! has records, for each partition not yet durable that far): a power cut of the store
//! never takes back a record Kafka holds, which would otherwise give its offset to a
//! new record that the next run skipped.
//!
//! A sink refuses to resume from a Kafka record copied from another store topic of the
//! same name ([`Error::SourceReplaced`]: the topic was deleted and created again, or the
//! store replaced, since), whose offset would skip this topic's records below it, and
//! stops ([`Error::SourceRecreated`]) when a store topic it copies is deleted and
//! created again while it runs.
//!
//! Where the destination partition holds no record of the mirror (new, or emptied by
//! retention), the mirror starts from its group's committed offset, else from
//! [`StartFrom`] (the earliest record by default). The sink commits that offset about
//! every second: if Kafka's retention empties a partition after a sink crash, the
//! restart resumes from that commit and may send again what it sent after it.
//!
//! ```no_run
//! use streamlog::{Store, TopicConfig};
//! use streamlog_kafka::{KafkaSinkConfig, KafkaSourceConfig, Mirror};
//!
//! let store = Store::open("data")?;
//! store.create_topic("clicks", TopicConfig::default().partitions(4))?;
//! // Store -> Kafka, following new appends until stopped.
//! let sink = Mirror::to_kafka(&store, KafkaSinkConfig {
//!     bootstrap: "kafka-1:9092".into(),
//!     topics: vec!["clicks".into()],
//!     ..KafkaSinkConfig::default()
//! })?;
//! // Kafka -> store, once, up to what Kafka holds now.
//! let source = Mirror::from_kafka(&store, KafkaSourceConfig {
//!     bootstrap: "kafka-1:9092".into(),
//!     topics: vec!["orders".into()],
//!     stop_at_end: true,
//!     ..KafkaSourceConfig::default()
//! })?;
//! source.join()?;
//! sink.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate builds librdkafka from source (through `rdkafka-sys`; needs a C compiler,
//! make and perl; zlib and zstd are built in, snappy and lz4 are librdkafka's own). Tests run against librdkafka's mock cluster; see
//! the README section "Outgrowing one machine" for running them against a real broker.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod config;
mod error;
mod headers;
mod kafka;
mod mirror;
mod raw_headers;
mod sink;
mod source;

pub use config::{KafkaSinkConfig, KafkaSourceConfig, StartFrom, parse_setting};
#[cfg(feature = "internals")]
pub use config::{KillAction, KillSwitch};
pub use error::{Error, Result};
pub use headers::{
    KAFKA_OFFSET_HEADER, SOURCE_OFFSET_HEADER, SOURCE_TOPIC_ID_HEADER, decode_offset, encode_offset,
};
pub use mirror::{Mirror, MirrorStats};
/// The Kafka client crate the bridge is built on, for its mock cluster and types.
pub use rdkafka;
