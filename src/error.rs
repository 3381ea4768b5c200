//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Shorthand for `Result<T, streamlog::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in streamlog.
///
/// Messages are sentences that name what was wrong and where (file, position, offset,
/// config knob), so they can be logged as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error; `context` says what was being done to which file.
    #[error("I/O error while trying to {context}: {source}")]
    Io {
        /// What was being done, e.g. "write 00000000000000000000.log at position 4096".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Stored data failed a check (CRC, size, offsets) inside the region that was
    /// durable, or an index or checkpoint is inconsistent with the log.
    #[error("{}: corruption at position {position}: {reason}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte position in that file where the damage was found.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// A record batch handed to the decoder (or to `append`) is malformed.
    #[error("malformed record batch: field `{field}`: {reason}")]
    InvalidBatch {
        /// The Kafka field name that was wrong (e.g. `batchLength`, `crc`, `keyLength`).
        field: &'static str,
        /// Why it is wrong.
        reason: String,
    },

    /// A batch uses a compression codec that this build does not include (its cargo
    /// feature is off) or that Kafka does not define.
    #[error("unsupported compression codec {codec}: {reason}")]
    UnsupportedCodec {
        /// The codec id from the batch attributes (0..=7).
        codec: u8,
        /// Why it cannot be handled.
        reason: String,
    },

    /// A configuration value is out of range.
    #[error("invalid config `{name}`: {reason}")]
    InvalidConfig {
        /// The knob, e.g. `segment_bytes`.
        name: &'static str,
        /// The allowed range or rule.
        reason: String,
    },

    /// An argument to a call is invalid.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// The requested offset is outside the log.
    #[error("offset {requested} is out of range: the log holds offsets {log_start}..{log_end}")]
    OffsetOutOfRange {
        /// The offset that was asked for.
        requested: i64,
        /// The first offset in the log.
        log_start: i64,
        /// The next offset to be written (one past the last).
        log_end: i64,
    },

    /// A batch or record is larger than the configured limit.
    #[error("record batch of {size} bytes exceeds the limit `{limit_name}` of {limit} bytes")]
    RecordTooLarge {
        /// The size that was offered.
        size: u64,
        /// The configured limit.
        limit: u64,
        /// The name of the knob that sets the limit.
        limit_name: &'static str,
    },

    /// An earlier fsync (or an unrecoverable write) failed, so the durable state of this
    /// log is unknown. Every later write fails until the log is reopened, which runs
    /// recovery. fsyncs are never retried. Also what a store refuses after a failure left
    /// something else unknown on disk: a topic's metadata (`.topics/<name>`: changes of
    /// that topic), a transactional id's outcome (`__transaction_state`).
    #[error("{} is poisoned by an earlier failure ({reason}); reopen it to recover", path.display())]
    Poisoned {
        /// The partition directory, or the topic metadata file or internal topic the
        /// failure concerns.
        path: PathBuf,
        /// The failure that poisoned it.
        reason: String,
    },

    /// Another writer has the directory open: the operating system holds its lock for
    /// as long as that writer runs (nothing to delete by hand).
    #[error("{} is open by another writer ({})", path.display(), holder_text(*holder))]
    Locked {
        /// The locked directory.
        path: PathBuf,
        /// The process holding the lock, where the operating system tells
        /// (`/proc/locks` on Linux).
        holder: Option<u32>,
    },

    /// A topic, partition or other named thing does not exist.
    #[error("{kind} `{name}` does not exist")]
    NotFound {
        /// What was looked up: "topic", "partition", ...
        kind: &'static str,
        /// Its name (for a partition, `topic-n`).
        name: String,
    },

    /// A topic (or other named thing) already exists.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// What was created: "topic", ...
        kind: &'static str,
        /// Its name.
        name: String,
    },

    /// A batch of an idempotent producer whose sequence does not follow the last one
    /// the partition has from that producer (a batch was lost in between, or one is
    /// re-sent that the partition no longer remembers). Kafka's
    /// `OutOfOrderSequenceException`.
    #[error(
        "producer {producer_id} (epoch {epoch}): batch sequence {found} is out of order \
         (expected {expected})"
    )]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        epoch: i16,
        /// The sequence the partition expected.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },

    /// A batch of an idempotent producer with an older epoch than the partition has seen
    /// from that producer id: a newer producer with the same id fenced it. Kafka's
    /// `InvalidProducerEpochException`.
    #[error(
        "producer {producer_id}: epoch {epoch} is older than the current epoch {current} \
         (a newer producer with this id fenced it)"
    )]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The batch's producer epoch.
        epoch: i16,
        /// The epoch the partition has.
        current: i16,
    },

    /// A write that does not fit the producer's transaction state: a batch without the
    /// transactional attribute from a producer whose transaction is open, or a
    /// transaction marker from a coordinator whose epoch is older than the last marker's
    /// (Kafka's `InvalidTxnStateException` and `TransactionCoordinatorFencedException`).
    #[error("producer {producer_id}: {reason}")]
    InvalidTxnState {
        /// The producer id.
        producer_id: i64,
        /// What did not fit.
        reason: String,
    },

    /// The object was closed.
    #[error("{what} is closed")]
    Closed {
        /// What was closed.
        what: &'static str,
    },

    /// A blocking call gave up after its configured time (e.g. `send` waiting for
    /// `buffer_memory` longer than `max_block_ms`).
    #[error("timed out after {waited_ms} ms ({what})")]
    Timeout {
        /// What was being waited for, naming the knob that bounds it.
        what: &'static str,
        /// How long the call waited.
        waited_ms: u64,
    },

    /// An offset commit was rejected because the consumer no longer owns the partition
    /// (a rebalance gave it to another member, or this member was removed from its group
    /// for not polling within `max_poll_interval_ms`; poll again to rejoin), or because
    /// a consumer that assigns its own partitions committed for a group that has live
    /// members.
    #[error("commit failed for group `{group}`: {reason}")]
    CommitFailed {
        /// The consumer group.
        group: String,
        /// Why.
        reason: String,
    },

    /// A group administration call (resetting offsets, deleting the group) was refused
    /// because the group has live members: stop its consumers first (Kafka's
    /// `GroupNotEmptyException`).
    #[error(
        "consumer group `{group}` has {members} live member(s): stop its consumers before \
         changing its offsets or deleting it"
    )]
    GroupNotEmpty {
        /// The consumer group.
        group: String,
        /// How many members it has.
        members: usize,
    },

    /// A transactional producer was fenced: a newer producer with the same
    /// `transactional_id` called `init_transactions`, or the store aborted its
    /// transaction after `transaction_timeout_ms`. The producer can do nothing more;
    /// drop it (Kafka's `ProducerFencedException`).
    #[error("transactional producer `{transactional_id}` is fenced: {reason}")]
    Fenced {
        /// The transactional id.
        transactional_id: String,
        /// Why.
        reason: String,
    },

    /// A transactional call out of order (`send` outside a transaction, `commit` without
    /// `begin`, a transaction that must be aborted because a send failed), or a
    /// transactional call on a producer without a `transactional_id` (Kafka's
    /// `IllegalStateException` and `TransactionAbortedException`).
    #[error("transaction: {reason}")]
    TransactionState {
        /// What was wrong.
        reason: String,
    },
}

impl Clone for Error {
    /// A copy for delivering one failure to many waiters (every record of a failed batch).
    /// An [`Error::Io`] copy keeps the kind and message of its source.
    fn clone(&self) -> Self {
        match self {
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption {
                path,
                position,
                reason,
            } => Error::corruption(path.clone(), *position, reason.clone()),
            Error::InvalidBatch { field, reason } => Error::invalid_batch(field, reason.clone()),
            Error::UnsupportedCodec { codec, reason } => Error::UnsupportedCodec {
                codec: *codec,
                reason: reason.clone(),
            },
            Error::InvalidConfig { name, reason } => Error::config(name, reason.clone()),
            Error::InvalidArgument { name, reason } => Error::InvalidArgument {
                name,
                reason: reason.clone(),
            },
            Error::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => Error::OffsetOutOfRange {
                requested: *requested,
                log_start: *log_start,
                log_end: *log_end,
            },
            Error::RecordTooLarge {
                size,
                limit,
                limit_name,
            } => Error::RecordTooLarge {
                size: *size,
                limit: *limit,
                limit_name,
            },
            Error::Poisoned { path, reason } => Error::Poisoned {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Locked { path, holder } => Error::Locked {
                path: path.clone(),
                holder: *holder,
            },
            Error::NotFound { kind, name } => Error::NotFound {
                kind,
                name: name.clone(),
            },
            Error::AlreadyExists { kind, name } => Error::AlreadyExists {
                kind,
                name: name.clone(),
            },
            Error::Closed { what } => Error::Closed { what },
            Error::OutOfOrderSequence {
                producer_id,
                epoch,
                expected,
                found,
            } => Error::OutOfOrderSequence {
                producer_id: *producer_id,
                epoch: *epoch,
                expected: *expected,
                found: *found,
            },
            Error::InvalidProducerEpoch {
                producer_id,
                epoch,
                current,
            } => Error::InvalidProducerEpoch {
                producer_id: *producer_id,
                epoch: *epoch,
                current: *current,
            },
            Error::InvalidTxnState {
                producer_id,
                reason,
            } => Error::InvalidTxnState {
                producer_id: *producer_id,
                reason: reason.clone(),
            },
            Error::Timeout { what, waited_ms } => Error::Timeout {
                what,
                waited_ms: *waited_ms,
            },
            Error::CommitFailed { group, reason } => Error::CommitFailed {
                group: group.clone(),
                reason: reason.clone(),
            },
            Error::GroupNotEmpty { group, members } => Error::GroupNotEmpty {
                group: group.clone(),
                members: *members,
            },
            Error::Fenced {
                transactional_id,
                reason,
            } => Error::Fenced {
                transactional_id: transactional_id.clone(),
                reason: reason.clone(),
            },
            Error::TransactionState { reason } => Error::TransactionState {
                reason: reason.clone(),
            },
        }
    }
}

/// Maps an `io::Error` to [`Error::Io`] saying what was being done.
pub(crate) fn io_ctx(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |e| Error::io(what, e)
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    #[cold]
    pub(crate) fn invalid_batch(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidBatch {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True for [`Error::Fenced`] because the store aborted the producer's transaction
    /// after its `transaction_timeout_ms`, not because a newer producer took its
    /// `transactional_id`: nobody else uses the id, so a new producer with it may
    /// start over (`init_transactions`), as Kafka Streams does on such a fence. Its
    /// work since the last commit was aborted.
    pub fn is_transaction_timeout(&self) -> bool {
        matches!(self, Error::Fenced { reason, .. } if reason == TRANSACTION_TIMED_OUT)
    }
}

/// [`Error::Fenced`]'s reason when the store aborted a transaction after its timeout.
pub(crate) const TRANSACTION_TIMED_OUT: &str = "its transaction timed out and was aborted";

/// Who holds a lock, for [`Error::Locked`]'s message.
fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) if pid == std::process::id() => {
            format!("another handle in this process, {pid}")
        }
        Some(pid) => format!("process {pid}"),
        None => "a process the operating system does not name".into(),
    }
}

/// A lookup by time needs a time: Kafka's negative targets are special offsets (-1
/// latest, -2 earliest, -3 the largest timestamp), and every record is at or after a
/// negative one, so a lookup would quietly answer with the log start.
pub(crate) fn check_target_time(timestamp: i64) -> Result<()> {
    if timestamp < 0 {
        return Err(Error::InvalidArgument {
            name: "timestamp",
            reason: format!("{timestamp} is negative: a target time cannot be"),
        });
    }
    Ok(())
}
