//! Topic configuration, Kafka's topic-name rules, and the persisted form of a topic.

use crate::error::{Error, Result};
use crate::format::TimestampType;
use crate::log::LogConfig;

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

    fn parse(s: &str) -> Option<Self> {
        match s {
            "delete" => Some(CleanupPolicy::Delete),
            "compact" => Some(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }
}

/// Settings of a topic. Defaults are Kafka's.
///
/// ```
/// use streamlog::{CleanupPolicy, TopicConfig};
/// let config = TopicConfig::default().partitions(4).retention_ms(3_600_000).cleanup_policy(CleanupPolicy::Compact);
/// assert_eq!(config.partition_count(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}

impl TopicConfig {
    setter!(
        /// Number of partitions. Default = 1; 1 to 100,000.
        partitions: i32
    );
    setter!(
        /// Segment size before rolling. Default = 1 GiB; 1024 to 2 GiB − 1.
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
        /// Delete segments whose newest record is older than this; −1 = keep forever.
        /// Default = 7 days. (Applied by maintenance, which arrives with retention.)
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
        /// fsync after this many records; `u64::MAX` = never by count (default).
        flush_messages: u64
    );
    setter!(
        /// fsync data older than this many ms in the background; `u64::MAX` = never
        /// (default). (Applied by maintenance, which arrives with background flushing.)
        flush_ms: u64
    );
    setter!(
        /// CreateTime (default) or LogAppendTime.
        message_timestamp_type: TimestampType
    );

    /// The number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions
    }

    /// The cleanup policy.
    pub fn policy(&self) -> CleanupPolicy {
        self.cleanup_policy
    }

    /// Checks every knob.
    ///
    /// # Errors
    /// `InvalidConfig` naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=100_000).contains(&self.partitions) {
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
        self.log_config(LogConfig::default()).validate()
    }

    /// The partition-log settings this topic implies, on top of `base` (which supplies
    /// the clock and decode limits).
    pub(crate) fn log_config(&self, base: LogConfig) -> LogConfig {
        base.segment_bytes(self.segment_bytes)
            .segment_ms(self.segment_ms)
            .index_interval_bytes(self.index_interval_bytes)
            .max_message_bytes(self.max_message_bytes)
            .flush_messages(self.flush_messages)
            .timestamp_type(self.message_timestamp_type)
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
        )
    }

    /// Parses [`to_properties`](Self::to_properties) output; `Err(reason)` if malformed.
    pub(crate) fn from_properties(text: &str) -> std::result::Result<Self, String> {
        let mut c = TopicConfig::default();
        let mut seen_version = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line `{line}` has no `=`"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{k}: {e}");
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
                _ => return Err(format!("unknown key `{k}` (or unsupported version `{v}`)")),
            }
        }
        if !seen_version {
            return Err("no `version=1` line".into());
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// Checks Kafka's topic-name rules: 1 to 249 characters from ASCII letters, digits, `.`,
/// `_` and `-`; not `.` or `..`. Names starting with `__` are reserved for internal topics.
///
/// # Errors
/// `InvalidArgument` saying which rule failed.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidArgument {
        name: "topic",
        reason,
    };
    if name.is_empty() {
        return Err(bad("a topic name cannot be empty".into()));
    }
    if name.len() > 249 {
        return Err(bad(format!(
            "`{}…` is {} bytes; the limit is 249",
            name.chars().take(20).collect::<String>(),
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(bad(format!("`{name}` is not a legal topic name")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(format!(
            "`{name}` contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rules() {
        for ok in ["clicks", "a", "A.b_c-9", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/",
            "ünï",
            "tab\t",
            &"x".repeat(250),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn properties_round_trip_and_reject_garbage() {
        let c = TopicConfig::default()
            .partitions(7)
            .retention_ms(-1)
            .cleanup_policy(CleanupPolicy::CompactDelete)
            .message_timestamp_type(TimestampType::LogAppendTime)
            .flush_messages(10);
        assert_eq!(TopicConfig::from_properties(&c.to_properties()).unwrap(), c);
        assert!(
            TopicConfig::from_properties("partitions=2\n").is_err(),
            "no version"
        );
        assert!(TopicConfig::from_properties("version=1\npartitions=x\n").is_err());
        assert!(
            TopicConfig::from_properties("version=1\npartitions=0\n").is_err(),
            "validated"
        );
        assert!(TopicConfig::from_properties("version=1\nbogus=1\n").is_err());
    }

    #[test]
    fn knobs_are_validated() {
        let cases = [
            ("partitions", TopicConfig::default().partitions(0)),
            ("retention_ms", TopicConfig::default().retention_ms(-2)),
            (
                "retention_bytes",
                TopicConfig::default().retention_bytes(-5),
            ),
            ("flush_ms", TopicConfig::default().flush_ms(0)),
            ("segment_bytes", TopicConfig::default().segment_bytes(1)),
            (
                "max_message_bytes",
                TopicConfig::default().max_message_bytes(0),
            ),
        ];
        for (knob, c) in cases {
            match c.validate() {
                Err(Error::InvalidConfig { name, .. }) => assert_eq!(name, knob),
                other => panic!("{knob}: {other:?}"),
            }
        }
    }
}
