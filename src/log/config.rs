//! Configuration of one partition log, and the clock it reads.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{Error, Result};
use crate::format::{DecodeOptions, TimestampType};

/// A source of wall-clock milliseconds, injectable for tests.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// [`now_ms`](Self::now_ms) as read at most a millisecond ago on this thread: what a
    /// producer stamps each record with (Kafka timestamps are milliseconds). The default
    /// reads [`now_ms`](Self::now_ms).
    fn recent_ms(&self) -> i64 {
        self.now_ms()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    fn recent_ms(&self) -> i64 {
        super::recent_clock::recent_ms(|| self.now_ms())
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: i64) -> Self {
        ManualClock(AtomicI64::new(ms))
    }
    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Kafka 4.0's `message.timestamp.after.max.ms`: one hour.
pub(crate) const DEFAULT_TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;

/// Settings of one partition log. Defaults are Kafka's topic defaults.
///
/// ```
/// use streamlog::log::LogConfig;
/// let config = LogConfig::default().segment_bytes(64 << 20).flush_messages(1000);
/// ```
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: i64,
    pub(crate) index_interval_bytes: u64,
    pub(crate) segment_index_bytes: u64,
    pub(crate) max_message_bytes: u64,
    pub(crate) flush_messages: u64,
    pub(crate) allow_offset_gaps: bool,
    pub(crate) timestamp_type: TimestampType,
    pub(crate) timestamp_before_max_ms: i64,
    pub(crate) timestamp_after_max_ms: i64,
    pub(crate) decode: DecodeOptions,
    pub(crate) clock: Arc<dyn Clock>,
    /// Take the directory's lock file. Off for a store's partitions, which its own lock
    /// covers.
    pub(crate) lock_dir: bool,
    /// The directory's entry in its parent is made durable by the caller: a store
    /// fsyncs its own directory once for all the partitions it creates, so opening one
    /// does not fsync the parent again.
    pub(crate) entry_synced_by_caller: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            max_message_bytes: 1_048_588,
            flush_messages: u64::MAX,
            allow_offset_gaps: false,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            decode: DecodeOptions::default(),
            clock: Arc::new(SystemClock),
            lock_dir: true,
            entry_synced_by_caller: false,
        }
    }
}

impl LogConfig {
    /// Roll to a new segment before the active one would pass this size. Default = 1 GiB;
    /// at least 1024 and at most 2 GiB − 1 (positions are 32-bit in the index). A batch
    /// larger than this (up to `max_message_bytes`) is accepted, alone in its segment,
    /// where Kafka refuses it.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Roll when the active segment's records span more than this many milliseconds (or,
    /// without timestamps, it is this old). Default = 7 days; at least 1.
    #[must_use]
    pub fn segment_ms(mut self, ms: i64) -> Self {
        self.segment_ms = ms;
        self
    }

    /// Add an offset-index entry after this many bytes of batches. Default = 4096.
    #[must_use]
    pub fn index_interval_bytes(mut self, bytes: u64) -> Self {
        self.index_interval_bytes = bytes;
        self
    }

    /// Size each index file is preallocated to; a full index rolls the segment.
    /// Default = 10 MiB; at least 24 bytes.
    #[must_use]
    pub fn segment_index_bytes(mut self, bytes: u64) -> Self {
        self.segment_index_bytes = bytes;
        self
    }

    /// The largest batch `append` accepts. Default = 1,048,588 (Kafka's).
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: u64) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// fsync after this many records were appended since the last flush. Default =
    /// `u64::MAX` (never by count).
    #[must_use]
    pub fn flush_messages(mut self, n: u64) -> Self {
        self.flush_messages = n;
        self
    }

    /// Accept offsets that skip values between batches, as compaction leaves them (and
    /// as Kafka-compacted segments have). Default = false: every batch must start right
    /// after the previous one, which also detects damage to a batch's base offset (a
    /// field Kafka's CRC does not cover). Compacted topics turn this on.
    #[must_use]
    pub fn allow_offset_gaps(mut self, allow: bool) -> Self {
        self.allow_offset_gaps = allow;
        self
    }

    /// CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the
    /// log's clock at append. Default = CreateTime.
    #[must_use]
    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// Under CreateTime, refuse a batch holding a record timestamped more than this many
    /// milliseconds before the log's clock (Kafka's `message.timestamp.before.max.ms`;
    /// records without a timestamp, -1, pass). Default = `i64::MAX` (no limit); at
    /// least 0.
    #[must_use]
    pub fn timestamp_before_max_ms(mut self, ms: i64) -> Self {
        self.timestamp_before_max_ms = ms;
        self
    }

    /// Under CreateTime, refuse a batch holding a record timestamped more than this many
    /// milliseconds after the log's clock (Kafka's `message.timestamp.after.max.ms`).
    /// A record from the far future would otherwise hold time retention back for its
    /// segment and every later one. Default = 1 hour (Kafka 4.0's); at least 0;
    /// `i64::MAX` for no limit.
    #[must_use]
    pub fn timestamp_after_max_ms(mut self, ms: i64) -> Self {
        self.timestamp_after_max_ms = ms;
        self
    }

    /// Limits for decoding records (decompression cap). Default = 64 MiB.
    #[must_use]
    pub fn decode_options(mut self, options: DecodeOptions) -> Self {
        self.decode = options;
        self
    }

    /// The clock used for LogAppendTime and `segment_ms`. Default = the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every knob's range.
    ///
    /// # Errors
    /// `InvalidConfig` naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        if self.decode.max_decompressed_bytes == 0 {
            return Err(Error::config(
                "max_decompressed_bytes",
                "0: no compressed batch could be read",
            ));
        }
        if !(1024..=i32::MAX as u64).contains(&self.segment_bytes) {
            return Err(Error::config(
                "segment_bytes",
                format!("{} is outside 1024..=2147483647", self.segment_bytes),
            ));
        }
        if self.segment_ms < 1 {
            return Err(Error::config(
                "segment_ms",
                format!("{} must be at least 1", self.segment_ms),
            ));
        }
        if self.index_interval_bytes > i32::MAX as u64 {
            return Err(Error::config("index_interval_bytes", "must fit in an i32"));
        }
        if !(24..=i32::MAX as u64).contains(&self.segment_index_bytes) {
            return Err(Error::config(
                "segment_index_bytes",
                format!("{} is outside 24..=2147483647", self.segment_index_bytes),
            ));
        }
        if !(61..=i32::MAX as u64).contains(&self.max_message_bytes) {
            return Err(Error::config(
                "max_message_bytes",
                format!("{} is outside 61..=2147483647", self.max_message_bytes),
            ));
        }
        if self.flush_messages == 0 {
            return Err(Error::config("flush_messages", "must be at least 1"));
        }
        for (name, ms) in [
            ("timestamp_before_max_ms", self.timestamp_before_max_ms),
            ("timestamp_after_max_ms", self.timestamp_after_max_ms),
        ] {
            if ms < 0 {
                return Err(Error::config(name, format!("{ms} must be at least 0")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall_ms() -> i64 {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        i64::try_from(d.as_millis()).expect("fits")
    }

    #[test]
    fn system_clock_reads_wall_milliseconds() {
        let mut checked = 0;
        while checked < 1000 {
            let before = wall_ms();
            let now = SystemClock.now_ms();
            let after = wall_ms();
            if after < before {
                continue; // the wall clock was stepped back meanwhile
            }
            assert!(
                before <= now && now <= after,
                "{before} <= {now} <= {after}"
            );
            checked += 1;
        }
    }
}

/// The knobs of a [`LogConfig`] that may change while the log is open (its topic's
/// config altered), read at each use: they apply to the next append, roll, flush count
/// or compaction pass. Offset gaps, once allowed, stay allowed: a log compaction may
/// have left gaps in keeps them.
#[derive(Debug)]
pub(crate) struct LiveConfig {
    segment_bytes: std::sync::atomic::AtomicU64,
    segment_ms: AtomicI64,
    max_message_bytes: std::sync::atomic::AtomicU64,
    flush_messages: std::sync::atomic::AtomicU64,
    timestamp_before_max_ms: AtomicI64,
    timestamp_after_max_ms: AtomicI64,
    allow_offset_gaps: std::sync::atomic::AtomicBool,
}

impl LiveConfig {
    pub(crate) fn new(c: &LogConfig) -> Self {
        LiveConfig {
            segment_bytes: c.segment_bytes.into(),
            segment_ms: c.segment_ms.into(),
            max_message_bytes: c.max_message_bytes.into(),
            flush_messages: c.flush_messages.into(),
            timestamp_before_max_ms: c.timestamp_before_max_ms.into(),
            timestamp_after_max_ms: c.timestamp_after_max_ms.into(),
            allow_offset_gaps: c.allow_offset_gaps.into(),
        }
    }

    /// Takes the alterable knobs of `c` (validated by the caller).
    pub(crate) fn set(&self, c: &LogConfig) {
        self.segment_bytes.store(c.segment_bytes, Ordering::Release);
        self.segment_ms.store(c.segment_ms, Ordering::Release);
        self.max_message_bytes
            .store(c.max_message_bytes, Ordering::Release);
        self.flush_messages
            .store(c.flush_messages, Ordering::Release);
        self.timestamp_before_max_ms
            .store(c.timestamp_before_max_ms, Ordering::Release);
        self.timestamp_after_max_ms
            .store(c.timestamp_after_max_ms, Ordering::Release);
        if c.allow_offset_gaps {
            self.allow_offset_gaps.store(true, Ordering::Release);
        }
    }

    pub(crate) fn segment_bytes(&self) -> u64 {
        self.segment_bytes.load(Ordering::Acquire)
    }

    pub(crate) fn segment_ms(&self) -> i64 {
        self.segment_ms.load(Ordering::Acquire)
    }

    pub(crate) fn max_message_bytes(&self) -> u64 {
        self.max_message_bytes.load(Ordering::Acquire)
    }

    pub(crate) fn flush_messages(&self) -> u64 {
        self.flush_messages.load(Ordering::Acquire)
    }

    /// Whether CreateTime records from `oldest` to `newest` (the batch's lowest
    /// timestamp other than -1, `i64::MAX` if none, and its highest) are within the
    /// bounds around `now`, as Kafka's `LogValidator` checks each record.
    ///
    /// # Errors
    /// `InvalidArgument` naming the bound and the timestamp.
    pub(crate) fn check_timestamps(&self, oldest: i64, newest: i64, now: i64) -> Result<()> {
        let before = self.timestamp_before_max_ms.load(Ordering::Acquire);
        let after = self.timestamp_after_max_ms.load(Ordering::Acquire);
        let refuse = |ts: i64, how: &str, bound: &str, ms: i64| {
            Err(Error::InvalidArgument {
                name: "timestamp",
                reason: format!(
                    "{ts} is more than {ms} ms {how} the log's clock ({now}); the topic's \
                     {bound} bounds it"
                ),
            })
        };
        if oldest != i64::MAX && oldest < now.saturating_sub(before) {
            return refuse(oldest, "before", "message.timestamp.before.max.ms", before);
        }
        if newest >= 0 && newest > now.saturating_add(after) {
            return refuse(newest, "after", "message.timestamp.after.max.ms", after);
        }
        Ok(())
    }

    pub(crate) fn allow_offset_gaps(&self) -> bool {
        self.allow_offset_gaps.load(Ordering::Acquire)
    }
}
