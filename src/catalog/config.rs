//! [`StoreConfig`]: the settings of a store (its file system, clock, decode limits,
//! descriptor budget and the maintenance knobs its services read).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::DecodeOptions;
use crate::fs::{FileSystem, OsFs};
use crate::log::{Clock, LogConfig, SystemClock};
use crate::topic::TopicConfig;

/// The smallest compaction key map a store accepts.
const MIN_KEY_MAP_BYTES: usize = 4096;

/// Settings of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) decode: DecodeOptions,
    pub(crate) background_maintenance: bool,
    pub(crate) maintenance_interval_ms: u64,
    pub(crate) cleaner_key_map_bytes: usize,
    pub(crate) max_open_files: usize,
    pub(crate) producer_id_expiration_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fs: Arc::new(OsFs),
            clock: Arc::new(SystemClock),
            decode: DecodeOptions::default(),
            background_maintenance: true,
            maintenance_interval_ms: 30_000,
            cleaner_key_map_bytes: 32 << 20,
            max_open_files: crate::fs::default_max_open_files(),
            producer_id_expiration_ms: 86_400_000,
        }
    }
}

impl StoreConfig {
    /// The decode limit of compressed batches (see [`DecodeOptions`]).
    pub(crate) fn max_decompressed_bytes(&self) -> usize {
        self.decode.max_decompressed_bytes
    }

    /// The file system to store on. Default = the real one ([`OsFs`]); tests use
    /// [`SimFs`](crate::fs::SimFs).
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The clock for LogAppendTime, `segment_ms` and (later) retention. Default = system.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Limits applied when decoding records (decompression cap). Default = 64 MiB.
    #[must_use]
    pub fn decode_options(mut self, options: DecodeOptions) -> Self {
        self.decode = options;
        self
    }

    setter!(
        /// Run retention, compaction and background flush (`flush_ms`) on a store thread.
        /// Default = true. Turn off for deterministic tests and call
        /// [`Store::run_maintenance`](crate::Store::run_maintenance) instead.
        background_maintenance: bool
    );
    setter!(
        /// How often the maintenance thread runs retention and compaction. Default =
        /// 30 000 ms (Kafka checks retention every 300 s and compaction every 15 s). Flushes
        /// for `flush_ms` run as often as the shortest `flush_ms` needs. At least 1
        /// (0 is `InvalidConfig` at open).
        maintenance_interval_ms: u64
    );
    setter!(
        /// Memory budget of the compaction key map (key bytes plus about 64 bytes per
        /// key). When a pass fills it, it cleans what the map covers and the next pass
        /// continues. Default = 32 MiB; at least 4096 (less is `InvalidConfig` at open:
        /// a pass would cover a batch or two and compaction would crawl).
        cleaner_key_map_bytes: usize
    );
    setter!(
        /// How many segment, index and checkpoint files this store keeps open. Past it,
        /// the least recently used are closed and reopened by path when next used,
        /// preferring files with nothing to sync; one with unsynced writes is fdatasync'd
        /// before it is closed (see [`CachingFs`](crate::fs::CachingFs)). Outside the
        /// limit: the store's lock file and directories opened for a moment to sync
        /// them. Files that cannot be closed yet (in use, or removed or replaced while
        /// open and still read) count, and can take the store past it for a while. Off
        /// unix, where files have no identity to check on reopening, none is closed. A
        /// partition being written wants four (its active segment, two indexes and its
        /// durable-position file): raise this, and the process's descriptor limit, for
        /// many partitions written at once. Default =
        /// [`default_max_open_files`](crate::fs::default_max_open_files): half the
        /// process's soft limit, between 64 and 65,536 (512 where the limit cannot be
        /// read: outside Linux), for each store opened. At least 1 (0 is `InvalidConfig` at
        /// open).
        max_open_files: usize
    );

    setter!(
        /// How long a partition remembers an idle producer (Kafka's
        /// `producer.id.expiration.ms`): maintenance forgets a producer id whose last
        /// batch is older than this and that has no open transaction (after that, a retry
        /// of one of its batches is no longer recognised as a duplicate). Default =
        /// 86400000 (one day). At least 1.
        producer_id_expiration_ms: u64
    );

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The clock's [`recent_ms`](crate::log::Clock::recent_ms): record timestamps.
    pub(crate) fn recent_ms(&self) -> i64 {
        self.clock.recent_ms()
    }

    /// Checks every knob (done by [`Store::open_with`](crate::Store::open_with)).
    ///
    /// # Errors
    /// `InvalidConfig` naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        if self.max_open_files == 0 {
            return Err(Error::config(
                "max_open_files",
                "0: at least 1 file must stay open",
            ));
        }
        if self.producer_id_expiration_ms == 0 {
            return Err(Error::config(
                "producer_id_expiration_ms",
                "must be at least 1",
            ));
        }
        if self.maintenance_interval_ms == 0 {
            return Err(Error::config(
                "maintenance_interval_ms",
                "must be at least 1",
            ));
        }
        if self.cleaner_key_map_bytes < MIN_KEY_MAP_BYTES {
            return Err(Error::config(
                "cleaner_key_map_bytes",
                format!(
                    "{} is below {MIN_KEY_MAP_BYTES}: a compaction pass would cover a batch \
                     or two",
                    self.cleaner_key_map_bytes
                ),
            ));
        }
        if self.decode.max_decompressed_bytes == 0 {
            return Err(Error::config(
                "max_decompressed_bytes",
                "0: no compressed batch could be read",
            ));
        }
        Ok(())
    }

    pub(crate) fn key_map_bytes(&self) -> usize {
        self.cleaner_key_map_bytes
    }

    pub(crate) fn log_config(&self, topic: &TopicConfig) -> LogConfig {
        let mut config = topic.log_config(
            LogConfig::default()
                .clock(self.clock.clone())
                .decode_options(self.decode),
        );
        // The store's directory lock covers its partitions: one descriptor less each.
        config.lock_dir = false;
        // The store makes each partition directory's entry durable when it creates it
        // (one fsync of the store directory for all of them).
        config.entry_synced_by_caller = true;
        config
    }
}
