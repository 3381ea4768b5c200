//! [`ConsumerConfig`] and the knobs it takes: where a consumer starts without a valid
//! position ([`OffsetReset`]) and what it reads of transactions ([`IsolationLevel`]).

use crate::catalog::PartitionState;
use crate::error::{Error, Result};
use crate::groups::{self, Assignor};

/// Where a consumer starts when it has no valid position (no committed offset, or one
/// outside the log): Kafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records appended from now on (Kafka's default).
    #[default]
    Latest,
    /// No reset: `poll` returns `OffsetOutOfRange` (Kafka's `none`).
    None,
}

/// Which records `poll` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Every record (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Only committed records: records of transactions not yet decided are not returned
    /// (a poll stops at the partition's last stable offset, the first offset of its
    /// oldest open transaction, and waits there), records of aborted transactions are
    /// skipped, and `end_offsets`, `seek_to_end` and lag use the last stable offset,
    /// as Kafka's `read_committed`.
    ReadCommitted,
}

impl IsolationLevel {
    /// Where a reader at this level sees a partition end: its log end offset, or under
    /// `ReadCommitted` its last stable offset.
    pub(super) fn end_offset(self, p: &PartitionState) -> i64 {
        match self {
            IsolationLevel::ReadUncommitted => p.log_end_offset(),
            IsolationLevel::ReadCommitted => p.last_stable_offset(),
        }
    }
}

/// Consumer settings; knob names follow Kafka's consumer configs.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub(super) group_id: Option<String>,
    pub(super) client_id: String,
    pub(super) auto_offset_reset: OffsetReset,
    pub(super) enable_auto_commit: bool,
    pub(super) auto_commit_interval_ms: u64,
    pub(super) max_poll_records: usize,
    pub(super) fetch_max_bytes: usize,
    pub(super) max_partition_fetch_bytes: usize,
    pub(super) max_poll_interval_ms: u64,
    pub(super) isolation_level: IsolationLevel,
    pub(super) assignor: Assignor,
}

impl Default for ConsumerConfig {
    /// No group; Kafka's defaults otherwise.
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5000,
            max_poll_records: 500,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            max_poll_interval_ms: 300_000,
            isolation_level: IsolationLevel::ReadUncommitted,
            assignor: Assignor::Range,
        }
    }
}

impl ConsumerConfig {
    /// A consumer in group `group_id`, Kafka's defaults otherwise.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerConfig {
            group_id: Some(group_id.into()),
            ..Default::default()
        }
    }

    /// The group (needed for `subscribe` and for committing). Default = none. Not empty
    /// and at most 32767 bytes (stored as a Kafka string).
    #[must_use]
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// A name for this consumer in `describe_group`. Default = "consumer".
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    setter!(
        /// Where to start without a valid committed offset. Default = `Latest`.
        auto_offset_reset: OffsetReset
    );
    setter!(
        /// Commit positions every `auto_commit_interval_ms` from `poll`, before a
        /// rebalance revokes partitions, before `assign` drops partitions, and on
        /// close. Default = true (needs a group).
        /// A consumer that assigns its own partitions commits only while its group has
        /// no live members: otherwise each auto-commit is refused, and `poll` logs it.
        enable_auto_commit: bool
    );
    setter!(
        /// Default = 5000.
        auto_commit_interval_ms: u64
    );
    setter!(
        /// Most records one `poll` returns. Default = 500; at least 1.
        max_poll_records: usize
    );
    setter!(
        /// Most batch bytes one `poll` reads (at least one batch). Default = 50 MiB.
        fetch_max_bytes: usize
    );
    setter!(
        /// Most batch bytes read from one partition per `poll`. Default = 1 MiB.
        max_partition_fetch_bytes: usize
    );
    setter!(
        /// A group member that does not poll for this long is removed and its partitions
        /// reassigned. Default = 300000 (5 minutes).
        max_poll_interval_ms: u64
    );
    setter!(
        /// Default = `ReadUncommitted`.
        isolation_level: IsolationLevel
    );
    setter!(
        /// The group's partition assignment strategy. Default = `Range`.
        assignor: Assignor
    );

    pub(super) fn validate(&self) -> Result<()> {
        if self.max_poll_records == 0 {
            return Err(Error::config("max_poll_records", "must be at least 1"));
        }
        if self.fetch_max_bytes == 0 || self.max_partition_fetch_bytes == 0 {
            return Err(Error::config(
                "fetch_max_bytes",
                "fetch_max_bytes and max_partition_fetch_bytes must be at least 1",
            ));
        }
        if self.max_poll_interval_ms == 0 {
            return Err(Error::config("max_poll_interval_ms", "must be at least 1"));
        }
        if let Some(reason) = self.group_id.as_deref().and_then(groups::invalid_group_id) {
            return Err(Error::config("group_id", reason));
        }
        Ok(())
    }
}
