//! What a mirror copies and how: [`KafkaSinkConfig`] and [`KafkaSourceConfig`].

use streamlog::{Compression, TopicConfig, TopicPartition};

/// Where a mirror starts in a partition when the destination gives no position: the
/// destination partition holds no record of the mirror, and no offset is committed for
/// the mirror's group.
///
/// ```
/// use streamlog_kafka::{KafkaSinkConfig, StartFrom};
/// // Mirror only what the application appends from now on.
/// let config = KafkaSinkConfig { start: StartFrom::Latest, ..KafkaSinkConfig::default() };
/// assert_ne!(config.start, StartFrom::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The first record the source still holds. Default.
    #[default]
    Earliest,
    /// The end of the source partition: only records appended from now on.
    Latest,
}

/// A test hook that stops a mirror as a crash would (feature `internals`, not a stable
/// API).
///
/// ```
/// use streamlog_kafka::{KafkaSinkConfig, KillAction, KillSwitch};
/// let config = KafkaSinkConfig {
///     kill: Some(KillSwitch { after_records: 100, action: KillAction::Stop }),
///     ..KafkaSinkConfig::default()
/// };
/// assert!(config.kill.is_some());
/// ```
#[cfg(feature = "internals")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillSwitch {
    /// Kill once this many records reached the destination in this run (Kafka
    /// acknowledged them, or the store appended them). The sink dies with the records
    /// after them still queued or in flight; the source appends exactly this many.
    pub after_records: u64,
    /// How to die.
    pub action: KillAction,
}

/// How the [`KillSwitch`] kills (feature `internals`).
#[cfg(feature = "internals")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillAction {
    /// Stop at once without flushing or committing: the sink drops every record Kafka has
    /// not acknowledged yet (queued or in flight); the source stops between two appends,
    /// possibly in the middle of what it polled. The mirror ends with `Error::Killed`.
    Stop,
    /// `std::process::abort()`: the process dies on the spot (for tests that re-run their
    /// own binary as a child); the sink at the very delivery report that brings Kafka's
    /// acknowledgements to `after_records`, whatever its loop is doing then.
    Abort,
}

/// What [`Mirror::to_kafka`](crate::Mirror::to_kafka) copies from the store to Kafka.
///
/// ```
/// use streamlog_kafka::KafkaSinkConfig;
/// let config = KafkaSinkConfig {
///     bootstrap: "127.0.0.1:9092".into(),
///     topics: vec!["clicks".into()],
///     kafka: vec![("compression.type".into(), "zstd".into())],
///     ..KafkaSinkConfig::default()
/// };
/// assert_eq!(config.group_id, "streamlog-kafka-sink");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkConfig {
    /// Kafka's `bootstrap.servers` (`host:port,host:port`). Required.
    pub bootstrap: String,
    /// Store topics to copy, each to the Kafka topic of the same name. Required.
    pub topics: Vec<String>,
    /// The streamlog consumer group the mirror commits its progress to, so that
    /// `Store::describe_group` shows its lag. Default = `streamlog-kafka-sink`.
    pub group_id: String,
    /// Settings passed to the Kafka producer as they are (librdkafka names, as kcat's
    /// `-X key=value`), applied after the mirror's own. The settings the no-loss
    /// guarantee rests on may not change (under any of librdkafka's names):
    /// `enable.idempotence=true`, `acks=all`, `enable.gapless.guarantee=true` and
    /// `message.timeout.ms=0` (a record that timed out would leave a gap that the
    /// records after it pass over). Default = none.
    pub kafka: Vec<(String, String)>,
    /// Create missing Kafka topics (with the store topic's partition count) through
    /// Kafka's admin API. Default = `true`.
    pub create_topics: bool,
    /// Replication factor of the topics it creates; -1 = the broker's
    /// `default.replication.factor`. Default = -1.
    pub replication_factor: i32,
    /// Where to start in a partition without a position (see [`StartFrom`]).
    /// Default = `Earliest`.
    pub start: StartFrom,
    /// End the mirror once everything the store held has been acknowledged by Kafka
    /// (for scripts and tests) instead of following new appends. Default = `false`.
    pub stop_at_end: bool,
    /// How long one poll of the store waits for new records, in ms. Default = 100.
    pub poll_ms: u64,
    /// How often progress is committed to `group_id`, in ms. Default = 1000.
    pub commit_interval_ms: u64,
    /// Timeout of each metadata, admin and watermark request to Kafka, in ms.
    /// Default = 30000.
    pub timeout_ms: u64,
    /// Test hook: stop as a crash would (feature `internals`). Default = none.
    #[cfg(feature = "internals")]
    pub kill: Option<KillSwitch>,
}

impl Default for KafkaSinkConfig {
    fn default() -> Self {
        KafkaSinkConfig {
            bootstrap: String::new(),
            topics: Vec::new(),
            group_id: "streamlog-kafka-sink".into(),
            kafka: Vec::new(),
            create_topics: true,
            replication_factor: -1,
            start: StartFrom::Earliest,
            stop_at_end: false,
            poll_ms: 100,
            commit_interval_ms: 1000,
            timeout_ms: 30_000,
            #[cfg(feature = "internals")]
            kill: None,
        }
    }
}

/// What [`Mirror::from_kafka`](crate::Mirror::from_kafka) copies from Kafka to the store.
///
/// ```
/// use streamlog::TopicPartition;
/// use streamlog_kafka::KafkaSourceConfig;
/// // As a member of a Kafka consumer group:
/// let grouped = KafkaSourceConfig {
///     bootstrap: "127.0.0.1:9092".into(),
///     topics: vec!["orders".into()],
///     ..KafkaSourceConfig::default()
/// };
/// // Or explicit partitions, without a group's assignment:
/// let explicit = KafkaSourceConfig {
///     partitions: Some(vec![TopicPartition::new("orders", 0)]),
///     ..grouped.clone()
/// };
/// assert!(explicit.partitions.is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceConfig {
    /// Kafka's `bootstrap.servers`. Required.
    pub bootstrap: String,
    /// Kafka topics to copy, each to the store topic of the same name (created with the
    /// Kafka topic's partition count when missing). Required unless `partitions` is set.
    pub topics: Vec<String>,
    /// Explicit partitions to copy (Kafka's `assign`), instead of subscribing to
    /// `topics` as a member of `group_id`. Default = none (subscribe).
    pub partitions: Option<Vec<TopicPartition>>,
    /// The Kafka consumer group: its members share the partitions, and the mirror
    /// commits its progress there (the mirror resumes from the store; from the commit
    /// only for a partition whose store partition holds no mirrored record).
    /// Default = `streamlog-kafka-source`.
    pub group_id: String,
    /// Settings passed to the Kafka consumer as they are (librdkafka names, as kcat's
    /// `-X key=value`), applied after the mirror's own. Default = none.
    pub kafka: Vec<(String, String)>,
    /// Where to start in a partition whose store partition holds no mirrored record and
    /// for which the group has no committed offset. Default = `Earliest`.
    pub start: StartFrom,
    /// The codec of the batches written to the store. Default = `None`.
    pub compression: Compression,
    /// The config of each store topic the source creates (one missing from the store),
    /// its partition count set to the Kafka topic's; a topic the store has is left as it
    /// is. The Kafka topic's own settings are not read. Default = `TopicConfig::default()`
    /// with no time retention (`retention_ms(-1)`): the copies keep their Kafka
    /// timestamps, and 7 days of retention would delete, at the next maintenance pass,
    /// every copied record older than that, which a Kafka topic with longer retention (or
    /// compaction) still holds; resuming from the Kafka group's commit, no later run
    /// would copy them again. Set the retention you want here.
    pub topic_config: TopicConfig,
    /// fsync the store partitions before committing progress to Kafka. Default = `true`.
    /// With `false`, a power cut can lose records the group's commit has passed: a store
    /// partition left with no mirrored record resumes from that commit, so those records
    /// are copied again by no run. Turn it off only where the store's own flushes (or a
    /// copy that can be redone) cover it.
    pub flush: bool,
    /// Most records appended to the store in one batch. Default = 500.
    pub max_batch_records: usize,
    /// End the mirror once every assigned partition is copied up to Kafka's high
    /// watermark instead of following new records. Default = `false`.
    pub stop_at_end: bool,
    /// How long one poll of Kafka waits for records, in ms. Default = 100.
    pub poll_ms: u64,
    /// How often progress is committed to the Kafka group, in ms. Default = 1000.
    pub commit_interval_ms: u64,
    /// Timeout of each metadata, seek and watermark request to Kafka, in ms.
    /// Default = 30000.
    pub timeout_ms: u64,
    /// Test hook: stop as a crash would (feature `internals`). Default = none.
    #[cfg(feature = "internals")]
    pub kill: Option<KillSwitch>,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            bootstrap: String::new(),
            topics: Vec::new(),
            partitions: None,
            group_id: "streamlog-kafka-source".into(),
            kafka: Vec::new(),
            start: StartFrom::Earliest,
            compression: Compression::None,
            topic_config: TopicConfig::default().retention_ms(-1),
            flush: true,
            max_batch_records: 500,
            stop_at_end: false,
            poll_ms: 100,
            commit_interval_ms: 1000,
            timeout_ms: 30_000,
            #[cfg(feature = "internals")]
            kill: None,
        }
    }
}

/// Parses one kcat-style `key=value` client setting.
///
/// ```
/// assert_eq!(
///     streamlog_kafka::parse_setting("linger.ms=5").unwrap(),
///     ("linger.ms".to_string(), "5".to_string())
/// );
/// assert!(streamlog_kafka::parse_setting("linger.ms").is_err());
/// ```
///
/// # Errors
/// `InvalidConfig` without a `=` or with an empty key.
pub fn parse_setting(setting: &str) -> crate::Result<(String, String)> {
    match setting.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(crate::Error::InvalidConfig {
            name: "-X",
            reason: format!("`{setting}` is not key=value"),
        }),
    }
}

pub(crate) fn check_common(bootstrap: &str, poll_ms: u64, timeout_ms: u64) -> crate::Result<()> {
    if bootstrap.trim().is_empty() {
        return Err(crate::Error::InvalidConfig {
            name: "bootstrap",
            reason: "no Kafka bootstrap servers given".into(),
        });
    }
    // librdkafka takes timeouts as a C int of milliseconds.
    let most = i32::MAX as u64;
    for (name, ms) in [("poll_ms", poll_ms), ("timeout_ms", timeout_ms)] {
        if ms == 0 || ms > most {
            return Err(crate::Error::InvalidConfig {
                name,
                reason: format!("{ms} is not in 1..={most}"),
            });
        }
    }
    Ok(())
}
