//! The one error type of the crate.

/// What went wrong in a topology, a stream thread or a query. Client errors keep the
/// library's [`streamlog::Error`] as their source and name the topic or partition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// A client call of the library failed (`op` on `target`, a topic, partition or group).
    #[error("{op} on {target}: {source}")]
    Client {
        /// What was being done ("send", "commit", "poll", ..).
        op: &'static str,
        /// The topic, partition or group it was done to.
        target: String,
        /// The library's error.
        #[source]
        source: streamlog::Error,
    },
    /// A record's key or value could not be decoded by its serde.
    #[error("cannot deserialize the {part} of {topic}-{partition} at offset {offset}: {reason}")]
    Deserialize {
        /// The topic read.
        topic: String,
        /// Its partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// "key" or "value".
        part: &'static str,
        /// What the serde said.
        reason: String,
    },
    /// A key or value could not be encoded for `topic` (an output, repartition or
    /// changelog topic).
    #[error("cannot serialize a record for {topic}: {reason}")]
    Serialize {
        /// The topic it was meant for.
        topic: String,
        /// What the serde said.
        reason: String,
    },
    /// The topology cannot run as built (a missing serde, an invalid name or window).
    #[error("invalid topology: {reason}")]
    Topology {
        /// What is wrong and where.
        reason: String,
    },
    /// A topic the topology reads or writes does not exist.
    #[error("topic `{topic}` does not exist: create it before starting the application")]
    MissingTopic {
        /// The topic.
        topic: String,
    },
    /// Topics read by one task have different partition counts (joins and merges need
    /// co-partitioned inputs).
    #[error(
        "topics `{first}` ({first_partitions} partitions) and `{second}` ({second_partitions} partitions) must have the same partition count"
    )]
    CoPartitioning {
        /// One topic.
        first: String,
        /// Its partitions.
        first_partitions: i32,
        /// The other topic.
        second: String,
        /// Its partitions.
        second_partitions: i32,
    },
    /// A configuration value is out of range.
    #[error("invalid config `{name}`: {reason}")]
    InvalidConfig {
        /// The knob.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// No store of that name in the topology.
    #[error("no state store named `{name}` in this topology")]
    StoreNotFound {
        /// The name asked for.
        name: String,
    },
    /// A local partition of the store is being restored from its changelog (a task
    /// starting, or moving here): its contents are not the application's yet, as Kafka
    /// Streams' `InvalidStateStoreException` says. Ask again once it is done.
    #[error("state store `{name}` is being restored (partition {partition}); not queryable yet")]
    StoreUnavailable {
        /// The store.
        name: String,
        /// A partition being restored.
        partition: i32,
    },
    /// The store exists but holds other key/value types (or is of another kind).
    #[error("state store `{name}` is not a {expected} of the requested types")]
    StoreType {
        /// The name asked for.
        name: String,
        /// "key-value store" or "window store".
        expected: &'static str,
    },
    /// Reading a changelog back failed.
    #[error("restoring store `{store}` from {topic}-{partition}: {reason}")]
    Restore {
        /// The store.
        store: String,
        /// The changelog topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// What failed.
        reason: String,
    },
    /// A stream thread stopped on an error or a panic.
    #[error("stream thread {thread} failed: {reason}")]
    Thread {
        /// Its index.
        thread: usize,
        /// Why.
        reason: String,
    },
    /// The call does not fit the application's state (started twice, not running).
    #[error("{what}")]
    State {
        /// What was refused.
        what: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The time waited.
        ms: u128,
    },
}

/// The crate's result type.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;

/// Wraps a library error with what was done to what.
pub(crate) fn client(
    op: &'static str,
    target: impl ToString,
) -> impl FnOnce(streamlog::Error) -> StreamsError {
    let target = target.to_string();
    move |source| StreamsError::Client { op, target, source }
}
