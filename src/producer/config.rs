//! [`ProducerConfig`] and [`Acks`]: how a producer batches, compresses, waits and
//! acknowledges.

use std::fmt;
use std::sync::Arc;

use super::Partitioner;
use crate::error::{Error, Result};
use crate::format::Compression;

/// When `send(..).wait()` returns: the durability contract (README, "Guarantees").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Queued in memory; lost if the process dies before its batch is appended. The
    /// metadata's offset is -1 (as Kafka's `acks=0`).
    None,
    /// Written to the log file (OS page cache): survives a process crash, not power loss.
    #[default]
    Leader,
    /// Covered by an fdatasync of its segment (and directory, for a new segment):
    /// survives power loss. Concurrent sends share fsyncs (group commit).
    All,
}

/// Producer settings; knob names follow Kafka's producer configs.
#[derive(Clone)]
pub struct ProducerConfig {
    pub(super) acks: Acks,
    pub(super) batch_size: usize,
    pub(super) linger_ms: u64,
    pub(super) buffer_memory: usize,
    pub(super) max_block_ms: u64,
    pub(super) max_request_size: usize,
    pub(super) compression: Compression,
    pub(super) compression_level: Option<i32>,
    pub(super) partitioner: Option<Arc<dyn Partitioner>>,
    pub(super) enable_idempotence: bool,
    pub(super) transactional_id: Option<String>,
    pub(super) transaction_timeout_ms: u64,
}

impl fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("acks", &self.acks)
            .field("batch_size", &self.batch_size)
            .field("linger_ms", &self.linger_ms)
            .field("buffer_memory", &self.buffer_memory)
            .field("max_block_ms", &self.max_block_ms)
            .field("max_request_size", &self.max_request_size)
            .field("compression", &self.compression)
            .field("compression_level", &self.compression_level)
            .field("partitioner", &self.partitioner)
            .field("enable_idempotence", &self.enable_idempotence)
            .field("transactional_id", &self.transactional_id)
            .field("transaction_timeout_ms", &self.transaction_timeout_ms)
            .finish()
    }
}

impl Default for ProducerConfig {
    /// Kafka's defaults (Kafka 4.0's, for linger_ms 5): batch_size 16384, linger_ms 5,
    /// buffer_memory 32 MiB, max_block_ms 60000, max_request_size 1 MiB, no compression,
    /// idempotence on; except acks: `Leader` (appended, not fsync'd: see [`Acks`]), where
    /// Kafka's default `all` waits for replicas, which here would be an fsync
    /// (`Acks::All`) per send.
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::Leader,
            batch_size: 16384,
            linger_ms: 5,
            buffer_memory: 32 << 20,
            max_block_ms: 60_000,
            max_request_size: 1 << 20,
            compression: Compression::None,
            compression_level: None,
            partitioner: None,
            enable_idempotence: true,
            transactional_id: None,
            transaction_timeout_ms: 60_000,
        }
    }
}

impl ProducerConfig {
    setter!(
        /// Durability of a resolved send. Default = `Leader`.
        acks: Acks
    );
    setter!(
        /// A partition's open batch is appended once it holds this many (uncompressed)
        /// bytes, whatever `linger_ms` says. With `linger_ms` > 0 (and acks other than
        /// `All`) the linger thread appends full batches: while senders keep filling
        /// them it takes several at a time, so a full batch may wait for it up to about
        /// 0.2 ms. Under `Acks::All` the sender that filled a batch appends and syncs
        /// it. Default = 16384.
        batch_size: usize
    );
    setter!(
        /// How long an open batch waits for more records before it is appended; 0 =
        /// append at every send. Default = 5.
        linger_ms: u64
    );
    setter!(
        /// Bytes of records sent but not yet appended; `send` blocks past it. Default = 32 MiB.
        /// The open batches' buffers allocate at most about twice that (they grow by
        /// doubling; memory taken back from a batch shrinks its buffer).
        buffer_memory: usize
    );
    setter!(
        /// How long `send` blocks for `buffer_memory` before `Error::Timeout`. Default = 60000.
        max_block_ms: u64
    );
    setter!(
        /// Largest record (and batch) accepted. Default = 1 MiB.
        max_request_size: usize
    );
    setter!(
        /// Codec for every batch. Default = none. A batch that the codec would not make
        /// smaller (incompressible data) is written uncompressed instead; each batch
        /// names its codec, so every reader (Kafka's too) reads it either way. With a
        /// codec, a batch also holds at most the store's `max_decompressed_bytes`
        /// uncompressed, so that it can be read back.
        compression: Compression
    );
    setter!(
        /// Codec level (gzip 0-9, zstd -7 to 22, lz4 ignored); `None` = the codec's
        /// default.
        compression_level: Option<i32>
    );

    setter!(
        /// Idempotence (Kafka's `enable.idempotence`): the store gives the producer a
        /// producer id, and each batch carries it with the sequence number of its first
        /// record in its partition. A partition appends a batch it already holds (the
        /// same producer, epoch and sequences, one of that producer's last five batches)
        /// only once and answers with the original offsets, and refuses a batch whose
        /// sequence skips or goes back (`OutOfOrderSequence`). Costs one durable write
        /// per 1000 producers created, and nothing per send. Default = true (as Kafka 3.x).
        enable_idempotence: bool
    );

    /// Makes the producer transactional (Kafka's `transactional.id`): call
    /// [`init_transactions`](super::Producer::init_transactions) once, then send inside
    /// `begin_transaction` .. `commit_transaction`/`abort_transaction`. The id keeps
    /// the producer id across restarts: a producer started with it fences every older
    /// one, and a transaction an older one left open is aborted. Needs idempotence.
    /// Default = none.
    #[must_use]
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    setter!(
        /// How long a transaction may stay open before the store aborts it (and fences
        /// the producer): at most 900000 (Kafka's `transaction.max.timeout.ms`). Checked
        /// by the store's maintenance passes (every `maintenance_interval_ms` with
        /// background maintenance on, else at `Store::run_maintenance`), so an abandoned
        /// transaction is aborted up to one interval later. Default = 60000.
        transaction_timeout_ms: u64
    );

    /// The `transaction_timeout_ms` this config holds (for code that layers its own
    /// timing on a caller's config, as a streams runtime checks its commit interval
    /// against it).
    pub fn get_transaction_timeout_ms(&self) -> u64 {
        self.transaction_timeout_ms
    }

    /// The `transactional_id` this config holds, if any (for code that builds on a
    /// caller's config, as a streams runtime refuses one it would not use).
    pub fn get_transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// A custom partitioner for records without an explicit partition. Default =
    /// [`DefaultPartitioner`](super::DefaultPartitioner) (murmur2 for keys, sticky for null keys).
    #[must_use]
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = Some(partitioner);
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if self.max_request_size < 128 {
            return Err(Error::config(
                "max_request_size",
                "must be at least 128 bytes",
            ));
        }
        if self.buffer_memory < self.max_request_size.min(self.batch_size) {
            return Err(Error::config(
                "buffer_memory",
                "must be at least min(batch_size, max_request_size)",
            ));
        }
        if let Some(id) = &self.transactional_id {
            if id.is_empty() || id.len() > crate::groups::MAX_STRING_BYTES {
                return Err(Error::config(
                    "transactional_id",
                    "must be 1 to 32767 bytes long",
                ));
            }
            if !self.enable_idempotence {
                return Err(Error::config(
                    "enable_idempotence",
                    "a transactional producer needs idempotence",
                ));
            }
        }
        if !(1..=900_000).contains(&self.transaction_timeout_ms) {
            return Err(Error::config(
                "transaction_timeout_ms",
                "must be 1 to 900000 (15 minutes)",
            ));
        }
        // Else every batch would fail at encoding, after `send` returned.
        if !self.compression.is_available() {
            return Err(Error::config(
                "compression",
                format!(
                    "{:?} is not compiled in (enable streamlog's cargo feature for it)",
                    self.compression
                ),
            ));
        }
        if let Some(level) = self.compression_level {
            let ok = match self.compression {
                Compression::Gzip => (0..=9).contains(&level),
                Compression::Zstd => (-7..=22).contains(&level),
                _ => true,
            };
            if !ok {
                return Err(Error::config(
                    "compression_level",
                    format!("{level} is out of range for {:?}", self.compression),
                ));
            }
        }
        Ok(())
    }
}
