//! The bridge's one error type.

use rdkafka::error::KafkaError;

/// What can go wrong while mirroring. Messages name the topic and partition concerned.
///
/// ```
/// let e = streamlog_kafka::Error::PartitionMismatch {
///     topic: "clicks".into(),
///     store: 4,
///     kafka: 3,
/// };
/// assert_eq!(
///     e.to_string(),
///     "topic clicks has 4 partitions in the store but 3 in Kafka; the mirror keeps \
///      partitions one to one, so the counts must match"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The local store refused an operation.
    #[error("store: {0}")]
    Store(#[from] streamlog::Error),
    /// A Kafka client call failed; `context` says what the bridge was doing.
    #[error("Kafka: {context}: {source}")]
    Kafka {
        /// What the bridge was doing, with the topic and partition.
        context: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// Kafka gave up on a record (a fatal producer error, or a delivery that cannot be
    /// retried). The mirror stops; a restart resumes after the last record Kafka holds.
    #[error("Kafka did not take record {offset} of {topic}-{partition}: {source}")]
    Delivery {
        /// The source topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset in the store.
        offset: i64,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The topic exists on both sides with different partition counts.
    #[error(
        "topic {topic} has {store} partitions in the store but {kafka} in Kafka; the mirror \
         keeps partitions one to one, so the counts must match"
    )]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Partitions in the store.
        store: i32,
        /// Partitions in Kafka.
        kafka: i32,
    },
    /// The last record of a partition on the destination side lacks the offset header
    /// the mirror writes (or holds an unreadable one), so the mirror cannot tell where to
    /// resume: something other than this mirror writes to that partition.
    #[error(
        "the last record of {topic}-{partition} in {side} (offset {offset}) has no valid \
         `{header}` header; the mirror resumes from that header, so the partition must be \
         written by the mirror alone"
    )]
    ForeignRecord {
        /// "Kafka" or "the store".
        side: &'static str,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset of the record without a header.
        offset: i64,
        /// The header that was expected.
        header: &'static str,
    },
    /// The destination says the mirror copied records the source does not have: the
    /// source partition was replaced or truncated since (a new store, a recreated
    /// topic). Resuming would skip the source's records up to that offset, so the mirror
    /// refuses; mirror into a fresh destination topic instead.
    #[error(
        "the last record of {topic}-{partition} in {side} says the mirror copied the source \
         up to offset {resume}, but the source partition ends at {source_end}: the source \
         was replaced or truncated; mirror into a fresh destination topic"
    )]
    DestinationAhead {
        /// Where the destination is: "Kafka" or "the store".
        side: &'static str,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The source offset the mirror would resume from.
        resume: i64,
        /// The source partition's end offset.
        source_end: i64,
    },
    /// The last record of a Kafka partition came from another store topic of the same
    /// name than the store has now (its [`SOURCE_TOPIC_ID_HEADER`](crate::SOURCE_TOPIC_ID_HEADER)
    /// differs): the store topic was deleted and created again, or the store replaced,
    /// since the mirror copied it. Its offset says nothing of what was copied of this
    /// one, so the mirror does not resume from it.
    #[error(
        "the last record of {topic}-{partition} in Kafka was copied from store topic id \
         {copied}, but the store's topic {topic} has id {store}: it was deleted and created \
         again (or the store replaced) since; mirror into a fresh Kafka topic"
    )]
    SourceReplaced {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The id the last Kafka record names.
        copied: String,
        /// The store topic's id now.
        store: String,
    },
    /// A store topic the sink copies was deleted and created again while it ran (its
    /// id changed): the new topic's records would follow the old one's in Kafka,
    /// offsets starting over. The sink stops (what it sent before reaches Kafka)
    /// without sending any of them.
    #[error(
        "store topic {topic} was deleted and created again while the mirror copied it (id \
         {was}, now {now}); none of the new topic's records were sent: mirror it into a \
         fresh Kafka topic"
    )]
    SourceRecreated {
        /// The topic.
        topic: String,
        /// Its id when the sink started.
        was: String,
        /// Its id now.
        now: String,
    },
    /// A topic named in the configuration exists on neither side, or not on the side it
    /// is copied from.
    #[error("topic {topic} does not exist in {side}")]
    UnknownTopic {
        /// "Kafka" or "the store".
        side: &'static str,
        /// The topic.
        topic: String,
    },
    /// A configuration value is invalid.
    #[error("invalid setting {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The mirror's thread could not be started.
    #[error("cannot start the mirror thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The mirror's thread panicked (a bug; the mirror resumes correctly on restart).
    #[error("the mirror thread panicked: {0}")]
    Panicked(String),
    /// The kill switch of a test stopped the mirror abruptly (`internals` only).
    #[error("killed by the test kill switch after {records} records")]
    Killed {
        /// Records the destination had received in this run at the kill.
        records: u64,
    },
}

/// `Result` with the bridge's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kafka client error with what the bridge was doing.
pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Error {
    Error::Kafka {
        context: context.into(),
        source,
    }
}
