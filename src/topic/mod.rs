//! What a topic is, for every layer above the log: its configuration, Kafka's
//! topic-name rules, and [`TopicPartition`], the name of one of its partitions.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::TimestampType;
use crate::log::LogConfig;

mod name;
pub(crate) use name::{refuse_internal, refuse_reserved_name};
pub use name::{validate_new_topic_name, validate_topic_name};

/// A topic name and partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: Arc::from(topic.into()),
            partition,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition number.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// How old data is cleaned up (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete whole segments past `retention_ms` / `retention_bytes`.
    #[default]
    Delete,
    /// Keep the latest record per key.
    Compact,
    /// Both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Kafka's spelling: `delete`, `compact`, `compact,delete`.
    pub const fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// A Kafka list of `delete` and `compact`, in either order, white space around
    /// each ignored (Kafka splits lists on `\s*,\s*`).
    fn parse(s: &str) -> Option<Self> {
        let (mut delete, mut compact) = (false, false);
        for item in s.split(',').map(str::trim) {
            match item {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return None,
            }
        }
        match (delete, compact) {
            (true, false) => Some(CleanupPolicy::Delete),
            (false, true) => Some(CleanupPolicy::Compact),
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (false, false) => None,
        }
    }
}

/// The most partitions a topic may have.
pub(crate) const MAX_PARTITIONS: i32 = 100_000;

/// Settings of a topic. Defaults are Kafka's.
///
/// ```
/// use streamlog::{CleanupPolicy, TopicConfig};
/// let config = TopicConfig::default().partitions(4).retention_ms(3_600_000).cleanup_policy(CleanupPolicy::Compact);
/// assert_eq!(config.partition_count(), 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub(crate) partitions: i32,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: i64,
    pub(crate) index_interval_bytes: u64,
    pub(crate) retention_ms: i64,
    pub(crate) retention_bytes: i64,
    pub(crate) cleanup_policy: CleanupPolicy,
    pub(crate) max_message_bytes: u64,
    pub(crate) flush_messages: u64,
    pub(crate) flush_ms: u64,
    pub(crate) message_timestamp_type: TimestampType,
    pub(crate) message_timestamp_before_max_ms: i64,
    pub(crate) message_timestamp_after_max_ms: i64,
    pub(crate) delete_retention_ms: i64,
    pub(crate) min_cleanable_dirty_ratio: f64,
    pub(crate) min_compaction_lag_ms: i64,
    pub(crate) max_compaction_lag_ms: i64,
    pub(crate) retention_gate_groups: Vec<String>,
    pub(crate) retention_gate_max_bytes: i64,
    /// The topic was compacted at some point: its partitions may have offset gaps,
    /// which stay allowed whatever its policy becomes.
    pub(crate) offset_gaps: bool,
}

/// Every knob of a [`TopicConfig`], to read (see [`TopicConfig::settings`]); the
/// setters of the same names document each.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // each field is documented by its setter on TopicConfig
pub struct TopicSettings {
    pub partitions: i32,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub cleanup_policy: CleanupPolicy,
    pub max_message_bytes: u64,
    pub flush_messages: u64,
    pub flush_ms: u64,
    pub message_timestamp_type: TimestampType,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub retention_gate_groups: Vec<String>,
    pub retention_gate_max_bytes: i64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        TopicConfig {
            partitions: 1,
            segment_bytes: log.segment_bytes,
            segment_ms: log.segment_ms,
            index_interval_bytes: log.index_interval_bytes,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            max_message_bytes: log.max_message_bytes,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: log.timestamp_before_max_ms,
            message_timestamp_after_max_ms: log.timestamp_after_max_ms,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            retention_gate_groups: Vec::new(),
            retention_gate_max_bytes: -1,
            offset_gaps: false,
        }
    }
}

impl TopicConfig {
    setter!(
        /// Number of partitions. Default = 1; 1 to 100,000.
        partitions: i32
    );
    setter!(
        /// Segment size before rolling. Default = 1 GiB; 1024 to 2 GiB − 1. A batch larger
        /// than this (up to `max_message_bytes`) is accepted, alone in its segment, where
        /// Kafka refuses it.
        segment_bytes: u64
    );
    setter!(
        /// Segment age (by record time) before rolling. Default = 7 days.
        segment_ms: i64
    );
    setter!(
        /// Bytes between offset-index entries. Default = 4096.
        index_interval_bytes: u64
    );
    setter!(
        /// Delete segments whose newest record is older than this (by the file's
        /// modification time if no record carries a timestamp); −1 = keep forever.
        /// Default = 7 days. Applied by maintenance ([`Store::run_maintenance`](crate::Store::run_maintenance)
        /// or the background thread).
        retention_ms: i64
    );
    setter!(
        /// Per-partition size cap; −1 = none. Default = −1.
        retention_bytes: i64
    );
    setter!(
        /// delete, compact or both. Default = delete.
        cleanup_policy: CleanupPolicy
    );
    setter!(
        /// Largest batch accepted. Default = 1,048,588.
        max_message_bytes: u64
    );
    setter!(
        /// fsync after this many records; `u64::MAX` = never by count (default). The
        /// append that triggers it returns once the fsync is done; a failed fsync is
        /// logged and poisons the partition (that append still returns `Ok`: its batch
        /// is written and visible), so later writes fail with `Poisoned`.
        flush_messages: u64
    );
    setter!(
        /// fsync a partition's unflushed data in the background once its last flush is
        /// this many ms old; `u64::MAX` = never (default). Applied at the store's
        /// maintenance passes, which run every shortest `flush_ms` of any topic: unflushed
        /// data can wait up to about twice this (longer if a pass is slow), and is never
        /// flushed this way without background maintenance (or `run_maintenance`).
        flush_ms: u64
    );
    setter!(
        /// CreateTime (default) or LogAppendTime.
        message_timestamp_type: TimestampType
    );
    setter!(
        /// Under CreateTime, a batch holding a record timestamped more than this many ms
        /// before the store's clock is refused (`InvalidArgument`; records without a
        /// timestamp pass). Default = `i64::MAX` (no limit); at least 0.
        message_timestamp_before_max_ms: i64
    );
    setter!(
        /// Under CreateTime, a batch holding a record timestamped more than this many ms
        /// after the store's clock is refused (`InvalidArgument`): a record from the far
        /// future would hold time retention back for its segment and every later one.
        /// Default = 1 hour (Kafka 4.0's); at least 0; `i64::MAX` for no limit.
        message_timestamp_after_max_ms: i64
    );

    setter!(
        /// How long a tombstone (a record with a null value) stays in a compacted topic
        /// after the compaction pass that first kept it, so consumers reading from the
        /// start see the deletion. Default = 1 day.
        delete_retention_ms: i64
    );
    setter!(
        /// Compact a partition only when its dirty bytes (written since the last pass)
        /// are at least this share of its cleanable bytes. Default = 0.5; 0.0 to 1.0.
        min_cleanable_dirty_ratio: f64
    );
    setter!(
        /// Records younger than this are not compacted yet (a segment is held back while
        /// its newest record is). Default = 0.
        min_compaction_lag_ms: i64
    );
    setter!(
        /// A partition with an uncompacted segment whose first batch is older than this
        /// is compacted whatever its dirty ratio, and the segment being written (never
        /// compacted) rolls at the first append once its first batch is this old, as
        /// with `segment_ms` (`describe` shows `segment.ms` as set). The last records of
        /// a partition that takes no more appends are not compacted. Default = no limit
        /// (`i64::MAX`).
        max_compaction_lag_ms: i64
    );
    setter!(
        /// Byte cap per partition for consumer-gated retention (see
        /// [`retention_gate_groups`](Self::retention_gate_groups)): its oldest segments
        /// are deleted whatever the groups have consumed while the partition would still
        /// hold at least this many bytes without them (`retention.bytes`' rule: it may
        /// exceed the cap by up to a segment). Required
        /// (>= 0) when gate groups are set. Default = -1 (none).
        retention_gate_max_bytes: i64
    );

    /// Consumer-gated retention (not in Kafka): time and size retention delete a segment
    /// only once every named consumer group has committed an offset past its end (a
    /// group with no commit holds everything). A group that stops consuming would then
    /// keep data forever, so [`retention_gate_max_bytes`](Self::retention_gate_max_bytes)
    /// must be set too: a hard per-partition cap the gate cannot hold back.
    ///
    /// Trade-off: the gate protects slow consumers from losing data to retention, at the
    /// cost of disk up to the cap; past the cap, retention deletes unconsumed records
    /// and those groups' consumers follow `auto_offset_reset`. The cap holds whatever
    /// the groups consumed (it deletes the oldest segments past it, expired or not, by
    /// `retention.bytes`' rule) on topics whose policy
    /// deletes by time or size; a compact-only topic, or one whose `retention_ms` and
    /// `retention_bytes` are both -1, loses nothing to it.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let c = TopicConfig::default()
    ///     .retention_ms(3_600_000)
    ///     .retention_gate_groups(["billing", "audit"])
    ///     .retention_gate_max_bytes(10 << 30);
    /// c.validate()?;
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    #[must_use]
    pub fn retention_gate_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.retention_gate_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The groups gating retention.
    pub fn gate_groups(&self) -> &[String] {
        &self.retention_gate_groups
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions
    }

    /// The cleanup policy.
    pub fn policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }

    /// Every knob's value.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let config = TopicConfig::default().retention_ms(3_600_000);
    /// assert_eq!(config.settings().retention_ms, 3_600_000);
    /// assert_eq!(config.settings().segment_bytes, 1 << 30);
    /// ```
    pub fn settings(&self) -> TopicSettings {
        TopicSettings {
            partitions: self.partitions,
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            index_interval_bytes: self.index_interval_bytes,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            cleanup_policy: self.cleanup_policy,
            max_message_bytes: self.max_message_bytes,
            flush_messages: self.flush_messages,
            flush_ms: self.flush_ms,
            message_timestamp_type: self.message_timestamp_type,
            message_timestamp_before_max_ms: self.message_timestamp_before_max_ms,
            message_timestamp_after_max_ms: self.message_timestamp_after_max_ms,
            delete_retention_ms: self.delete_retention_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            retention_gate_groups: self.retention_gate_groups.clone(),
            retention_gate_max_bytes: self.retention_gate_max_bytes,
        }
    }

    /// Every knob as Kafka's property name and value (`kafka-configs --describe`), in
    /// a fixed order; the gate groups (not Kafka's) as one comma-separated entry.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let entries = TopicConfig::default().retention_ms(60_000).entries();
    /// assert!(entries.contains(&("retention.ms", "60000".to_string())));
    /// ```
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let s = self.settings();
        let ts = match s.message_timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        vec![
            ("partitions", s.partitions.to_string()),
            ("cleanup.policy", s.cleanup_policy.name().to_string()),
            ("retention.ms", s.retention_ms.to_string()),
            ("retention.bytes", s.retention_bytes.to_string()),
            ("segment.bytes", s.segment_bytes.to_string()),
            ("segment.ms", s.segment_ms.to_string()),
            ("index.interval.bytes", s.index_interval_bytes.to_string()),
            ("max.message.bytes", s.max_message_bytes.to_string()),
            ("flush.messages", s.flush_messages.to_string()),
            ("flush.ms", s.flush_ms.to_string()),
            ("message.timestamp.type", ts.to_string()),
            (
                "message.timestamp.before.max.ms",
                s.message_timestamp_before_max_ms.to_string(),
            ),
            (
                "message.timestamp.after.max.ms",
                s.message_timestamp_after_max_ms.to_string(),
            ),
            ("delete.retention.ms", s.delete_retention_ms.to_string()),
            (
                "min.cleanable.dirty.ratio",
                s.min_cleanable_dirty_ratio.to_string(),
            ),
            ("min.compaction.lag.ms", s.min_compaction_lag_ms.to_string()),
            ("max.compaction.lag.ms", s.max_compaction_lag_ms.to_string()),
            ("retention.gate.groups", s.retention_gate_groups.join(",")),
            (
                "retention.gate.max.bytes",
                s.retention_gate_max_bytes.to_string(),
            ),
        ]
    }

    /// Sets one knob by Kafka's property name (as [`entries`](Self::entries) names them;
    /// `retention.gate.groups` takes a comma-separated list): what
    /// `kafka-topics --config retention.ms=60000` does.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let config = TopicConfig::default().set("retention.ms", "60000")?;
    /// assert_eq!(config.settings().retention_ms, 60_000);
    /// assert!(TopicConfig::default().set("retention.mss", "1").is_err());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    ///
    /// Leading and trailing white space around the value (and each group) is ignored,
    /// as Kafka ignores it.
    ///
    /// # Errors
    /// `InvalidArgument` for an unknown name, or a value that does not parse or is out
    /// of range (the message names the knob and the rule).
    pub fn set(self, name: &str, value: &str) -> Result<Self> {
        self.set_all([(name, value)])
    }

    /// Sets several knobs by name at once, checked together as `kafka-configs` checks
    /// one change: knobs whose rules tie them (`retention.gate.groups` needs
    /// `retention.gate.max.bytes`; `min.compaction.lag.ms` at most
    /// `max.compaction.lag.ms`) can come in any order, where [`set`](Self::set) one
    /// by one refuses the first of a pair.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let config = TopicConfig::default()
    ///     .set_all([("retention.gate.groups", "billing"), ("retention.gate.max.bytes", "1000000")])?;
    /// assert_eq!(config.settings().retention_gate_groups, ["billing"]);
    /// assert!(TopicConfig::default().set("retention.gate.groups", "billing").is_err());
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`set`](Self::set), for the first setting that is refused, or for the whole.
    pub fn set_all<'a>(
        self,
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidArgument {
            name: "config",
            reason,
        };
        let mut text = self.to_properties();
        for (name, value) in settings {
            text = self.with_setting(text, name, value).map_err(invalid)?;
        }
        let mut parsed = TopicConfig::from_properties(&text).map_err(invalid)?;
        // Also the rules a stored config is not held to (a new setting must keep them).
        parsed.validate().map_err(|e| invalid(e.to_string()))?;
        parsed.offset_gaps = self.offset_gaps;
        Ok(parsed)
    }

    /// `text` (properties) with knob `name` set to `value`, unchecked.
    fn with_setting(
        &self,
        mut text: String,
        name: &str,
        value: &str,
    ) -> std::result::Result<String, String> {
        let value = value.trim();
        if name == "partitions" || name.contains(['\n', '=']) || value.contains('\n') {
            return Err(format!("`{name}` cannot be set by name"));
        }
        if name == "retention.gate.groups" {
            text = text
                .lines()
                .filter(|l| !l.starts_with("retention.gate.group="))
                .map(|l| format!("{l}\n"))
                .collect();
            for g in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                text.push_str(&format!("retention.gate.group={g}\n"));
            }
        } else if self.entries().iter().any(|(n, _)| *n == name) {
            text.push_str(&format!("{name}={value}\n"));
        } else {
            return Err(format!("unknown topic config `{name}`"));
        }
        Ok(text)
    }

    /// Refuses a change from `self` (the topic's config) to `new` that Kafka does not
    /// allow on a live topic, or that streamlog cannot apply to it: the partition count
    /// (see `Store::add_partitions`), the timestamp type and the index interval; and a
    /// `new` out of range. What [`Store::alter_topic_config`](crate::Store::alter_topic_config)
    /// checks, for a caller that must know before it changes anything else.
    ///
    /// ```
    /// use streamlog::TopicConfig;
    /// let now = TopicConfig::default();
    /// assert!(now.check_alterable(&now.clone().retention_ms(60_000)).is_ok());
    /// assert!(now.check_alterable(&now.clone().partitions(2)).is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidConfig` naming the knob.
    pub fn check_alterable(&self, new: &TopicConfig) -> Result<()> {
        let fixed: [(&'static str, bool); 3] = [
            ("partitions", self.partitions != new.partitions),
            (
                "message_timestamp_type",
                self.message_timestamp_type != new.message_timestamp_type,
            ),
            (
                "index_interval_bytes",
                self.index_interval_bytes != new.index_interval_bytes,
            ),
        ];
        match fixed.iter().find(|(_, changed)| *changed) {
            Some((name, _)) => Err(Error::InvalidConfig {
                name,
                reason: if *name == "partitions" {
                    "cannot be altered; use Store::add_partitions to add partitions".into()
                } else {
                    "cannot be altered on an existing topic".into()
                },
            }),
            None => new.validate(),
        }
    }

    /// Checks every knob, as a create or an alter does.
    ///
    /// # Errors
    /// `InvalidConfig` naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        self.validate_new()
    }

    /// The rules a stored config was written under (see
    /// [`validate_new`](Self::validate_new) for those added since).
    fn validate_stored(&self) -> Result<()> {
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(Error::config(
                "partitions",
                format!("{} is outside 1..=100000", self.partitions),
            ));
        }
        if self.retention_ms < -1 {
            return Err(Error::config(
                "retention_ms",
                "must be -1 (forever) or at least 0",
            ));
        }
        if self.retention_bytes < -1 {
            return Err(Error::config(
                "retention_bytes",
                "must be -1 (no cap) or at least 0",
            ));
        }
        if self.flush_ms == 0 {
            return Err(Error::config("flush_ms", "must be at least 1"));
        }
        if self.delete_retention_ms < 0 {
            return Err(Error::config("delete_retention_ms", "must be at least 0"));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(Error::config(
                "min_cleanable_dirty_ratio",
                format!("{} is outside 0.0..=1.0", self.min_cleanable_dirty_ratio),
            ));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err(Error::config("min_compaction_lag_ms", "must be at least 0"));
        }
        if self.max_compaction_lag_ms < 1 || self.max_compaction_lag_ms < self.min_compaction_lag_ms
        {
            return Err(Error::config(
                "max_compaction_lag_ms",
                "must be at least 1 and at least min_compaction_lag_ms",
            ));
        }
        if self.retention_gate_max_bytes < -1 {
            return Err(Error::config(
                "retention_gate_max_bytes",
                "must be -1 (none) or at least 0",
            ));
        }
        if !self.retention_gate_groups.is_empty() && self.retention_gate_max_bytes < 0 {
            return Err(Error::config(
                "retention_gate_max_bytes",
                "consumer-gated retention needs a hard byte cap (>= 0) so a stalled group cannot fill the disk",
            ));
        }
        if let Some(g) = self
            .retention_gate_groups
            .iter()
            .find(|g| g.is_empty() || g.contains(['\n', '\r']))
        {
            return Err(Error::config(
                "retention_gate_groups",
                format!("{g:?}: a group id must be non-empty and hold no line breaks"),
            ));
        }
        self.log_config(LogConfig::default()).validate()
    }

    /// [`validate_stored`](Self::validate_stored), and the rules added since configs
    /// were first stored, which a new config (create, alter, import) must also keep.
    fn validate_new(&self) -> Result<()> {
        self.validate_stored()?;
        // Longer, no group could commit an offset (the consumer refuses such an id), and
        // the gate would hold time and size retention back for good.
        if let Some(g) = (self.retention_gate_groups.iter())
            .find(|g| g.len() > crate::format::schema::MAX_STRING_BYTES)
        {
            return Err(Error::config(
                "retention_gate_groups",
                format!(
                    "a group id of {} bytes: at most {} (a consumer's group_id cannot be longer)",
                    g.len(),
                    crate::format::schema::MAX_STRING_BYTES
                ),
            ));
        }
        Ok(())
    }

    /// The partition-log settings this topic implies, on top of `base` (which supplies
    /// the clock and decode limits).
    pub(crate) fn log_config(&self, base: LogConfig) -> LogConfig {
        // A compacted topic's active segment (never cleaned) rolls by
        // `max_compaction_lag_ms` too, as Kafka's does (KIP-354): otherwise a record in it
        // waits up to `segment_ms` (7 days by default) whatever the lag says.
        let segment_ms = match self.cleanup_policy {
            CleanupPolicy::Delete => self.segment_ms,
            _ => self.segment_ms.min(self.max_compaction_lag_ms),
        };
        base.segment_bytes(self.segment_bytes)
            .segment_ms(segment_ms)
            .index_interval_bytes(self.index_interval_bytes)
            .max_message_bytes(self.max_message_bytes)
            .flush_messages(self.flush_messages)
            .timestamp_type(self.message_timestamp_type)
            .timestamp_before_max_ms(self.message_timestamp_before_max_ms)
            .timestamp_after_max_ms(self.message_timestamp_after_max_ms)
            .allow_offset_gaps(self.allows_offset_gaps())
    }

    /// Whether the topic's logs may have offset gaps: compacted, or compacted before.
    pub(crate) fn allows_offset_gaps(&self) -> bool {
        self.cleanup_policy != CleanupPolicy::Delete || self.offset_gaps
    }

    /// `key=value` lines, Kafka's property names.
    pub(crate) fn to_properties(&self) -> String {
        let ts = match self.message_timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        };
        format!(
            "version=1\npartitions={}\nsegment.bytes={}\nsegment.ms={}\nindex.interval.bytes={}\nretention.ms={}\nretention.bytes={}\ncleanup.policy={}\nmax.message.bytes={}\nflush.messages={}\nflush.ms={}\nmessage.timestamp.type={ts}\n",
            self.partitions,
            self.segment_bytes,
            self.segment_ms,
            self.index_interval_bytes,
            self.retention_ms,
            self.retention_bytes,
            self.cleanup_policy.name(),
            self.max_message_bytes,
            self.flush_messages,
            self.flush_ms,
        ) + &format!(
            "delete.retention.ms={}\nmin.cleanable.dirty.ratio={}\nmin.compaction.lag.ms={}\nmax.compaction.lag.ms={}\nretention.gate.max.bytes={}\n",
            self.delete_retention_ms,
            self.min_cleanable_dirty_ratio,
            self.min_compaction_lag_ms,
            self.max_compaction_lag_ms,
            self.retention_gate_max_bytes,
        ) + &self
            .retention_gate_groups
            .iter()
            .map(|g| format!("retention.gate.group={g}\n"))
            .collect::<String>()
            + &self.timestamp_bounds_properties()
            // Only where the policy no longer implies it (a compacted topic altered
            // to `delete`).
            + if self.offset_gaps && self.cleanup_policy == CleanupPolicy::Delete {
                "offset.gaps=true\n"
            } else {
                ""
            }
    }

    /// The timestamp bounds' lines, only where they are not the defaults: a store a
    /// version without them wrote reads the same, and one with the defaults opens in
    /// such a version.
    fn timestamp_bounds_properties(&self) -> String {
        let d = TopicConfig::default();
        let mut out = String::new();
        if self.message_timestamp_before_max_ms != d.message_timestamp_before_max_ms {
            let ms = self.message_timestamp_before_max_ms;
            out.push_str(&format!("message.timestamp.before.max.ms={ms}\n"));
        }
        if self.message_timestamp_after_max_ms != d.message_timestamp_after_max_ms {
            let ms = self.message_timestamp_after_max_ms;
            out.push_str(&format!("message.timestamp.after.max.ms={ms}\n"));
        }
        out
    }

    /// Parses [`to_properties`](Self::to_properties) output; `Err(reason)` if malformed.
    pub(crate) fn from_properties(text: &str) -> std::result::Result<Self, String> {
        let mut c = TopicConfig::default();
        let mut seen_version = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line `{line}` has no `=`"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{k}: `{v}`: {e}");
            match k {
                "version" if v == "1" => seen_version = true,
                "partitions" => c.partitions = v.parse().map_err(|e| bad(&e))?,
                "segment.bytes" => c.segment_bytes = v.parse().map_err(|e| bad(&e))?,
                "segment.ms" => c.segment_ms = v.parse().map_err(|e| bad(&e))?,
                "index.interval.bytes" => {
                    c.index_interval_bytes = v.parse().map_err(|e| bad(&e))?
                }
                "retention.ms" => c.retention_ms = v.parse().map_err(|e| bad(&e))?,
                "retention.bytes" => c.retention_bytes = v.parse().map_err(|e| bad(&e))?,
                "cleanup.policy" => {
                    c.cleanup_policy =
                        CleanupPolicy::parse(v).ok_or_else(|| bad(&"unknown policy"))?
                }
                "max.message.bytes" => c.max_message_bytes = v.parse().map_err(|e| bad(&e))?,
                "flush.messages" => c.flush_messages = v.parse().map_err(|e| bad(&e))?,
                "flush.ms" => c.flush_ms = v.parse().map_err(|e| bad(&e))?,
                "message.timestamp.type" => {
                    c.message_timestamp_type = match v {
                        "CreateTime" => TimestampType::CreateTime,
                        "LogAppendTime" => TimestampType::LogAppendTime,
                        _ => return Err(bad(&"unknown timestamp type")),
                    }
                }
                "delete.retention.ms" => c.delete_retention_ms = v.parse().map_err(|e| bad(&e))?,
                "min.cleanable.dirty.ratio" => {
                    c.min_cleanable_dirty_ratio = v.parse().map_err(|e| bad(&e))?
                }
                "min.compaction.lag.ms" => {
                    c.min_compaction_lag_ms = v.parse().map_err(|e| bad(&e))?
                }
                "max.compaction.lag.ms" => {
                    c.max_compaction_lag_ms = v.parse().map_err(|e| bad(&e))?
                }
                "retention.gate.max.bytes" => {
                    c.retention_gate_max_bytes = v.parse().map_err(|e| bad(&e))?
                }
                "message.timestamp.before.max.ms" => {
                    c.message_timestamp_before_max_ms = v.parse().map_err(|e| bad(&e))?
                }
                "message.timestamp.after.max.ms" => {
                    c.message_timestamp_after_max_ms = v.parse().map_err(|e| bad(&e))?
                }
                "retention.gate.group" => c.retention_gate_groups.push(v.to_string()),
                "offset.gaps" if v == "true" => c.offset_gaps = true,
                _ => return Err(format!("unknown key `{k}` (or unsupported version `{v}`)")),
            }
        }
        if !seen_version {
            return Err("no `version=1` line".into());
        }
        // The rules it was stored under: a check added since applies to new configs
        // (create, alter, import), and never keeps a store written before from opening.
        c.validate_stored().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
