//! The producer: [`Producer`] with Kafka's partitioners, a per-partition accumulator
//! (`batch_size`, `linger_ms`, `buffer_memory`), compression, and per-send durability
//! ([`Acks`]).
//!
//! ```
//! use streamlog::{Acks, ProducerConfig, ProducerRecord, Store, TopicConfig};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("clicks", TopicConfig::default().partitions(4))?;
//! let producer = store.producer(ProducerConfig::default().acks(Acks::All))?;
//! let meta = producer
//!     .send(ProducerRecord::new("clicks").key("user-7").value(r#"{"page":"home"}"#))?
//!     .wait()?; // fdatasync'd: survives power loss
//! assert_eq!(meta.partition, streamlog::producer::partition_for_key(b"user-7", 4));
//! producer.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod partitioner;
mod record;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub use partitioner::{DefaultPartitioner, Partitioner, murmur2, partition_for_key};
pub use record::{Payload, ProducerRecord};

use crate::catalog::{Catalog, PartitionState, TopicState};
use crate::error::{Error, Result};
use crate::format::batch::EncodedBatch;
use crate::format::{BatchBuilder, Compression, TimestampType};

/// When `send(..).wait()` returns: the durability contract of DESIGN.md section 5.
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
    acks: Acks,
    batch_size: usize,
    linger_ms: u64,
    buffer_memory: usize,
    max_block_ms: u64,
    max_request_size: usize,
    compression: Compression,
    compression_level: Option<i32>,
    partitioner: Option<Arc<dyn Partitioner>>,
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
            .finish()
    }
}

impl Default for ProducerConfig {
    /// Kafka's defaults: acks Leader (see [`Acks`]), batch_size 16384, linger_ms 5,
    /// buffer_memory 32 MiB, max_block_ms 60000, max_request_size 1 MiB, no compression.
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
        /// bytes. Default = 16384.
        batch_size: usize
    );
    setter!(
        /// How long an open batch waits for more records before it is appended; 0 =
        /// append at every send. Default = 5.
        linger_ms: u64
    );
    setter!(
        /// Bytes of records sent but not yet appended; `send` blocks past it. Default = 32 MiB.
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
        /// Codec level (gzip 0-9, zstd 1-22, lz4 ignored); `None` = the codec's default.
        compression_level: Option<i32>
    );

    /// A custom partitioner for records without an explicit partition. Default =
    /// [`DefaultPartitioner`] (murmur2 for keys, sticky for null keys).
    #[must_use]
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = Some(partitioner);
        self
    }

    fn validate(&self) -> Result<()> {
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

/// Where a sent record went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset (-1 under `Acks::None`).
    pub offset: i64,
    /// Its timestamp (the append time if the topic uses LogAppendTime).
    pub timestamp: i64,
}

#[derive(Debug)]
enum SlotState {
    Pending(Vec<Waker>),
    Done(Result<(i64, i64)>),
}

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug)]
struct BatchSlot {
    state: Mutex<SlotState>,
    cond: Condvar,
    topic: Arc<str>,
    partition: i32,
    log_append_time: bool,
}

impl BatchSlot {
    fn new(topic: Arc<str>, partition: i32, log_append_time: bool) -> Arc<Self> {
        Arc::new(BatchSlot {
            state: Mutex::new(SlotState::Pending(Vec::new())),
            cond: Condvar::new(),
            topic,
            partition,
            log_append_time,
        })
    }

    /// `Ok((base_offset, max_timestamp))` or the batch's error. Returns the wakers of
    /// the tasks polling it, for the caller to wake once its own state is consistent (a
    /// waker may poll inline, or panic).
    fn resolve(&self, result: Result<(i64, i64)>) -> Vec<Waker> {
        let mut st = self.state.lock();
        let old = std::mem::replace(&mut *st, SlotState::Done(result));
        self.cond.notify_all();
        drop(st);
        match old {
            SlotState::Pending(wakers) => wakers,
            SlotState::Done(_) => Vec::new(),
        }
    }
}

#[derive(Debug)]
struct PendingDelivery {
    slot: Arc<BatchSlot>,
    index: i64,
    timestamp: i64,
}

impl PendingDelivery {
    fn metadata(&self, done: &Result<(i64, i64)>) -> Result<RecordMetadata> {
        let &(base, max_ts) = done.as_ref().map_err(Clone::clone)?;
        Ok(RecordMetadata {
            topic: self.slot.topic.clone(),
            partition: self.slot.partition,
            offset: base + self.index,
            timestamp: if self.slot.log_append_time {
                max_ts
            } else {
                self.timestamp
            },
        })
    }
}

/// The result of a [`Producer::send`]: a `std::future::Future` (for async code) with a
/// blocking [`wait`](Self::wait). Resolves when the record meets the producer's [`Acks`].
#[derive(Debug)]
#[must_use = "a send is confirmed only by waiting for (or awaiting) its future"]
pub struct DeliveryFuture {
    inner: Result<PendingDelivery, Option<RecordMetadata>>,
}

impl DeliveryFuture {
    /// Blocks until the record is delivered per the producer's acks.
    ///
    /// # Errors
    /// The batch's append or fsync error (`Io`, `Poisoned`, `RecordTooLarge`, `Closed`).
    pub fn wait(self) -> Result<RecordMetadata> {
        match self.inner {
            Err(ready) => ready.ok_or(Error::InvalidArgument {
                name: "future",
                reason: "waited on after it completed".into(),
            }),
            Ok(p) => {
                let mut st = p.slot.state.lock();
                loop {
                    if let SlotState::Done(r) = &*st {
                        return p.metadata(r);
                    }
                    p.slot.cond.wait(&mut st);
                }
            }
        }
    }

    /// Whether the result is available without blocking.
    pub fn is_ready(&self) -> bool {
        match &self.inner {
            Err(_) => true,
            Ok(p) => matches!(*p.slot.state.lock(), SlotState::Done(_)),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Err(ready) => Poll::Ready(ready.take().ok_or(Error::InvalidArgument {
                name: "future",
                reason: "polled after it completed".into(),
            })),
            Ok(p) => {
                let mut st = p.slot.state.lock();
                match &mut *st {
                    SlotState::Done(r) => Poll::Ready(p.metadata(r)),
                    SlotState::Pending(wakers) => {
                        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                            wakers.push(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

/// The result of a [`Producer::send_batch`]: one future for all of its records (a
/// `std::future::Future` with a blocking [`wait`](Self::wait)). Resolves when every
/// record meets the producer's [`Acks`], to their metadata in the order they were given,
/// or to the first error of their batches.
#[derive(Debug)]
#[must_use = "a send is confirmed only by waiting for (or awaiting) its future"]
pub struct BatchDelivery {
    /// The batches the records went into.
    slots: Vec<Arc<BatchSlot>>,
    /// Per record: its batch (an index into `slots`), its index there, its timestamp.
    records: Vec<(u32, u32, i64)>,
    /// `Acks::None`: resolved at once, offsets -1.
    unacknowledged: bool,
    /// Slots before this one are known to be done (`poll`).
    done: usize,
}

impl BatchDelivery {
    /// How many records were sent.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was sent.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the result is available without blocking.
    pub fn is_ready(&self) -> bool {
        self.unacknowledged
            || self.slots[self.done..]
                .iter()
                .all(|s| matches!(*s.state.lock(), SlotState::Done(_)))
    }

    /// Blocks until every record is delivered per the producer's acks.
    ///
    /// # Errors
    /// The first failed batch's error (`Io`, `Poisoned`, `Closed`).
    pub fn wait(self) -> Result<Vec<RecordMetadata>> {
        if !self.unacknowledged {
            for slot in &self.slots {
                let mut st = slot.state.lock();
                while !matches!(*st, SlotState::Done(_)) {
                    slot.cond.wait(&mut st);
                }
            }
        }
        self.metadata()
    }

    /// The records' metadata once every slot is done.
    fn metadata(&self) -> Result<Vec<RecordMetadata>> {
        let mut results = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            results.push(match &*slot.state.lock() {
                _ if self.unacknowledged => Ok((-1, -1)),
                SlotState::Done(r) => r.clone(),
                SlotState::Pending(_) => unreachable!("waited for every slot"),
            });
        }
        self.records
            .iter()
            .map(|&(s, index, timestamp)| {
                let slot = &self.slots[s as usize];
                let (base, max_ts) = results[s as usize].clone()?;
                Ok(RecordMetadata {
                    topic: slot.topic.clone(),
                    partition: slot.partition,
                    offset: if self.unacknowledged {
                        -1
                    } else {
                        base + i64::from(index)
                    },
                    timestamp: if slot.log_append_time && !self.unacknowledged {
                        max_ts
                    } else {
                        timestamp
                    },
                })
            })
            .collect()
    }
}

impl Future for BatchDelivery {
    type Output = Result<Vec<RecordMetadata>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.unacknowledged && this.done < this.slots.len() {
            let mut st = this.slots[this.done].state.lock();
            match &mut *st {
                SlotState::Done(_) => {
                    drop(st);
                    this.done += 1;
                }
                SlotState::Pending(wakers) => {
                    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                        wakers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(this.metadata())
    }
}

struct OpenBatch {
    id: u64,
    builder: BatchBuilder,
    slot: Arc<BatchSlot>,
    part: Arc<PartitionState>,
    queue: Arc<PartQueue>,
    reserved: usize,
    limit: usize,
}

/// Closed batches of one partition are appended in the order they were closed (which
/// keeps per-key order) even though they are encoded and compressed in parallel. A
/// closed batch is handed to the queue; whichever shipper finds the queue idle appends
/// every batch that is ready, in ticket order, for everyone (the others return at once
/// and their futures resolve when it is done), so senders never wait for each other's
/// turn.
#[derive(Default)]
struct PartQueue {
    /// Assigned under the accumulator's lock, so in closing order.
    next_ticket: AtomicU64,
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    ready: BTreeMap<u64, (Sealed, Result<EncodedBatch>)>,
    next_append: u64,
    draining: bool,
}

/// What is left of a batch once encoded: what its completion needs.
struct Sealed {
    id: u64,
    slot: Arc<BatchSlot>,
    part: Arc<PartitionState>,
    reserved: usize,
}

impl fmt::Debug for PartQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartQueue")
            .field("next_ticket", &self.next_ticket)
            .finish_non_exhaustive()
    }
}

struct Closed {
    batch: OpenBatch,
    ticket: u64,
}

#[derive(Default)]
struct AccState {
    /// Per topic (an index into `accs`, so one lookup per send): its metadata (cached)
    /// and each partition's open batch.
    topics: HashMap<Arc<str>, usize, FastHash>,
    accs: Vec<TopicAcc>,
    /// The topic of the last send (checked first).
    last_topic: Option<usize>,
    /// How many times a topic's cached metadata was refreshed.
    refreshes: u64,
    /// Open batches by id (ids grow with creation time, so the first is the oldest):
    /// where they are (topic index, partition) and when they opened.
    open: BTreeMap<u64, (usize, i32, Instant)>,
    used_memory: usize,
    /// The linger thread sleeps with no deadline (no open batch): a new batch must wake
    /// it. While it sleeps until an earlier batch's deadline, a new batch need not.
    linger_idle: bool,
    /// Full batches for the linger thread to append (when there is one), so the
    /// sending thread goes on encoding while it does.
    ready: Vec<Closed>,
    /// The linger thread is waiting (a ready batch must wake it).
    linger_waiting: bool,
    inflight: BTreeSet<u64>,
    next_batch_id: u64,
}

/// A topic as the producer last saw it (refreshed when the store's metadata epoch
/// moves), with the partitions' accumulators.
struct TopicAcc {
    state: Arc<TopicState>,
    epoch: u64,
    name: Arc<str>,
    max_message_bytes: usize,
    log_append_time: bool,
    compacted: bool,
    parts: Vec<PartAcc>,
}

impl TopicAcc {
    /// Adds partitions the topic has gained since they were cached.
    fn add_new_partitions(&mut self) {
        for part in self.state.partitions_from(self.parts.len()) {
            self.parts.push(PartAcc {
                part,
                queue: Arc::default(),
                open: None,
            });
        }
    }
}

struct PartAcc {
    part: Arc<PartitionState>,
    queue: Arc<PartQueue>,
    open: Option<OpenBatch>,
}

impl AccState {
    /// Takes the open batch `id` (at `topic`-`partition`) out of its partition.
    fn take_open(&mut self, id: u64) -> Option<OpenBatch> {
        let (topic, partition, _) = self.open.remove(&id)?;
        let slot = &mut self
            .accs
            .get_mut(topic)?
            .parts
            .get_mut(partition as usize)?
            .open;
        if slot.as_ref().is_some_and(|b| b.id == id) {
            slot.take()
        } else {
            None
        }
    }

    /// Closes every open batch (for `flush`, `buffer_memory` and close).
    fn close_all(&mut self) -> Vec<Closed> {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.take_open(id))
            .map(Shared::close_batch)
            .collect()
    }
}

/// A fast hasher for the accumulator's (topic, partition) keys (several lookups per
/// send; SipHash's DoS resistance buys nothing for the application's own topic names).
/// Multiply-rotate over 8-byte words, as FxHash does.
#[derive(Debug, Clone, Copy, Default)]
struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_i32(&mut self, i: i32) {
        self.add(u64::from(i as u32));
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) struct Shared {
    catalog: Arc<Catalog>,
    /// Keeps the store open while the producer lives (the store's own handle, opaque).
    _owner: Arc<dyn std::any::Any + Send + Sync>,
    config: ProducerConfig,
    partitioner: Arc<dyn Partitioner>,
    state: Mutex<AccState>,
    /// Memory freed, a batch finished, a new lingering batch, or close.
    cond: Condvar,
    closed: AtomicBool,
    /// The most a batch may hold uncompressed: for a compressing producer, the store's
    /// `max_decompressed_bytes` (a batch past it could be written but never read back).
    max_uncompressed: usize,
}

struct Handle {
    shared: Arc<Shared>,
    linger: Mutex<Option<JoinHandle<()>>>,
}

/// Sends records to topics. `Send + Sync + Clone`: share one across threads (clones
/// share the accumulator). Closed by [`close`](Self::close) or when the last clone drops.
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

impl Producer {
    /// Whether the linger thread sleeps until an open batch's deadline (a test hook,
    /// exposed by `internals`). It sets `linger_waiting` under the state lock and waits
    /// releasing it, so seen under the lock the flag means it is in the wait.
    #[cfg(feature = "internals")]
    pub(crate) fn linger_waits_for_a_deadline(&self) -> bool {
        let st = self.handle.shared.state.lock();
        st.linger_waiting && !st.linger_idle
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.handle.shared.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A new producer on `catalog`'s topics; `owner` keeps the store open while it
    /// lives. Returns the handle the store flushes and stops at close.
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        owner: Arc<dyn std::any::Any + Send + Sync>,
        config: ProducerConfig,
    ) -> Result<(Producer, Weak<Shared>)> {
        config.validate()?;
        let partitioner = config
            .partitioner
            .clone()
            .unwrap_or_else(|| Arc::new(DefaultPartitioner::new(config.batch_size)));
        let max_uncompressed = if config.compression == Compression::None {
            usize::MAX
        } else {
            catalog.config().max_decompressed_bytes()
        };
        let shared = Arc::new(Shared {
            catalog,
            _owner: owner,
            max_uncompressed,
            config,
            partitioner,
            state: Mutex::new(AccState::default()),
            cond: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let linger = if shared.config.linger_ms > 0 {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("streamlog-linger".into())
                    .spawn(move || s.linger_loop())
                    .map_err(crate::error::io_ctx("start the producer's linger thread"))?,
            )
        } else {
            None
        };
        let weak = Arc::downgrade(&shared);
        let producer = Producer {
            handle: Arc::new(Handle {
                shared,
                linger: Mutex::new(linger),
            }),
        };
        Ok((producer, weak))
    }
}

impl Producer {
    /// Sends a record: picks its partition, adds it to that partition's open batch, and
    /// returns a future resolving when it meets the configured [`Acks`]. Blocks only when
    /// `buffer_memory` is full (up to `max_block_ms`), or to append a batch that filled.
    ///
    /// # Errors
    /// `NotFound` for an unknown topic or partition; `RecordTooLarge` past
    /// `max_request_size`, the topic's `max_message_bytes` or `buffer_memory` (or, with
    /// compression, the store's `max_decompressed_bytes`); `Timeout`
    /// after `max_block_ms`; `Closed` after `close`.
    pub fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        self.handle.shared.send(record)
    }

    /// Sends several records in one call: as [`send`](Self::send) would, one after
    /// another, but taking the producer's lock once and the clock once (records without
    /// a timestamp get the call's time), with one future for all of them. Every record
    /// is checked before any is added, so an error means none was sent (unless a topic
    /// changes or the producer closes while the call waits for `buffer_memory`; records
    /// added by then are sent without being reported). With `linger_ms` 0 the call's
    /// batches are appended when it returns.
    ///
    /// ```
    /// use streamlog::{ProducerConfig, ProducerRecord, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// let records: Vec<ProducerRecord> = (0..3)
    ///     .map(|i| ProducerRecord::new("clicks").key(format!("user-{i}")).value("home"))
    ///     .collect();
    /// let sent = producer.send_batch(&records)?.wait()?;
    /// assert_eq!(sent.iter().map(|m| m.offset).collect::<Vec<_>>(), [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send), for the first record refused.
    pub fn send_batch(&self, records: &[ProducerRecord<'_>]) -> Result<BatchDelivery> {
        self.handle.shared.send_batch(records)
    }

    /// Appends every open batch now and waits until everything sent before this call
    /// is resolved (per `acks`; with `Acks::All`, fsync'd).
    ///
    /// # Errors
    /// `Closed` if the store closed.
    pub fn flush(&self) -> Result<()> {
        self.handle.shared.flush()
    }

    /// Flushes and stops the producer; later sends return `Closed`. Also done when the
    /// last clone is dropped.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }
}

impl Handle {
    fn close(&self) -> Result<()> {
        let result = self.shared.shutdown();
        if let Some(t) = self.linger.lock().take()
            && t.join().is_err()
        {
            log::error!("the producer's linger thread panicked");
        }
        result
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("closing producer on drop: {e}");
        }
    }
}

/// Approximate encoded size of a record in a batch (varint fields at their widest).
fn record_estimate(r: &ProducerRecord<'_>) -> usize {
    let field = |b: Option<&[u8]>| b.map_or(1, |b| b.len() + 5);
    21 + field(r.key_bytes())
        + field(r.value_bytes())
        + r.headers
            .iter()
            .map(|h| h.key.len() + 5 + field(h.value.as_deref()))
            .sum::<usize>()
}

/// Bytes of a batch header.
const BATCH_OVERHEAD: usize = 61;

/// Batches one shipper appends for a partition before it resolves them and goes on.
const DRAIN_CHUNK: usize = 64;

impl Shared {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "producer" });
        }
        Ok(())
    }

    fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        self.check_open()?;
        let (size, custom) = self.prepare(&record)?;
        let timestamp = record.timestamp.unwrap_or_else(|| self.catalog.now_ms());

        let mut to_ship = Vec::new();
        let mut st = self.state.lock();
        let mut added = None;
        let result = self.add(
            &mut st,
            (&record, size, timestamp, custom),
            &mut to_ship,
            self.config.linger_ms == 0,
            None,
            |_, slot, index| added = Some((slot.clone(), index)),
        );
        drop(st);
        self.ship_all(to_ship);
        result?;
        let (slot, index) = added.expect("added");
        if self.config.acks == Acks::None {
            return Ok(DeliveryFuture {
                inner: Err(Some(RecordMetadata {
                    topic: slot.topic.clone(),
                    partition: slot.partition,
                    offset: -1,
                    timestamp,
                })),
            });
        }
        Ok(DeliveryFuture {
            inner: Ok(PendingDelivery {
                slot,
                index,
                timestamp,
            }),
        })
    }

    fn send_batch(&self, records: &[ProducerRecord<'_>]) -> Result<BatchDelivery> {
        self.check_open()?;
        let now = self.catalog.now_ms();
        let mut plan = Vec::with_capacity(records.len());
        for record in records {
            let (size, custom) = self.prepare(record)?;
            plan.push((size, custom, None));
        }
        let mut out = BatchDelivery {
            slots: Vec::new(),
            records: Vec::with_capacity(records.len()),
            unacknowledged: self.config.acks == Acks::None,
            done: 0,
        };
        let mut batch_ids: Vec<u64> = Vec::new();
        let mut to_ship = Vec::new();
        let mut st = self.state.lock();
        let mut result = Ok(());
        // Until no topic was refreshed during a pass: a refresh (the topic changed in the
        // store) may have changed what records checked earlier in the pass go to.
        for _ in 0..4 {
            let refreshes = st.refreshes;
            for (r, (size, custom, at)) in records.iter().zip(&mut plan) {
                match self.locate(&mut st, r, *size, *custom, &mut to_ship) {
                    Ok(l) => *at = Some(l),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            if result.is_err() || st.refreshes == refreshes {
                break;
            }
        }
        if result.is_ok() {
            // Until the lock is released (a full buffer_memory), where each record goes
            // is known from the checks above.
            let mut unlocked = false;
            result = records
                .iter()
                .zip(&plan)
                .try_for_each(|(r, &(size, custom, at))| {
                    let timestamp = r.timestamp.unwrap_or(now);
                    let waited = self.add(
                        &mut st,
                        (r, size, timestamp, custom),
                        &mut to_ship,
                        false,
                        if unlocked { None } else { at },
                        |id, slot, index| {
                            // Consecutive records mostly share a batch; otherwise look back.
                            let s = match batch_ids.iter().rposition(|&b| b == id) {
                                Some(s) => s,
                                None => {
                                    batch_ids.push(id);
                                    out.slots.push(slot.clone());
                                    batch_ids.len() - 1
                                }
                            };
                            out.records.push((s as u32, index as u32, timestamp));
                        },
                    )?;
                    unlocked |= waited;
                    Ok(())
                });
        }
        if self.config.linger_ms == 0 {
            to_ship.extend(
                batch_ids
                    .iter()
                    .filter_map(|&id| st.take_open(id))
                    .map(Self::close_batch),
            );
        }
        drop(st);
        self.ship_all(to_ship);
        result.map(|()| out)
    }

    /// The checks a record passes before the accumulator's lock, its estimated size,
    /// and a custom partitioner's choice: that runs outside the lock (it is the
    /// application's code) and needs the partition count first.
    fn prepare(&self, record: &ProducerRecord<'_>) -> Result<(usize, Option<i32>)> {
        crate::topic::refuse_internal(&record.topic, "producers cannot write to it")?;
        let size = record_estimate(record);
        let custom = match (&self.config.partitioner, record.partition) {
            (Some(p), None) => {
                let n = self.catalog.open_topic(&record.topic)?.partition_count() as i32;
                Some(Self::checked(
                    &record.topic,
                    n,
                    p.partition(&record.topic, record.key_bytes(), size, n),
                )?)
            }
            _ => None,
        };
        Ok((size, custom))
    }

    fn checked(topic: &str, num_partitions: i32, p: i32) -> Result<i32> {
        if (0..num_partitions).contains(&p) {
            return Ok(p);
        }
        Err(Error::InvalidArgument {
            name: "partitioner",
            reason: format!(
                "returned partition {p} for topic `{topic}` with {num_partitions} partitions"
            ),
        })
    }

    /// Adds a record (with its estimated size, timestamp and a custom partitioner's
    /// choice) to its partition's open batch, under the accumulator's lock (released
    /// only while `buffer_memory` is full); `added` gets the batch's id and slot and the
    /// record's index in it. Batches to append go to `to_ship`; with `close_now` the
    /// batch is closed after the record (`linger_ms` 0). `located`: the record's
    /// [`locate`](Self::locate) under this same hold of the lock, if known. Returns
    /// whether the lock was released (to wait for memory).
    fn add(
        &self,
        st: &mut parking_lot::MutexGuard<'_, AccState>,
        (record, size, timestamp, custom): (&ProducerRecord<'_>, usize, i64, Option<i32>),
        to_ship: &mut Vec<Closed>,
        close_now: bool,
        mut located: Option<(usize, i32)>,
        added: impl FnOnce(u64, &Arc<BatchSlot>, i64),
    ) -> Result<bool> {
        let mut started = None;
        loop {
            let (topic, partition) = match located.take() {
                Some(l) => l,
                None => self.locate(st, record, size, custom, to_ship)?,
            };
            if st.used_memory + size > self.config.buffer_memory {
                // Waits (the lock released) until memory may be free, then starts over:
                // the topic may have changed meanwhile.
                let started = *started.get_or_insert_with(Instant::now);
                self.wait_for_memory(st, size, started, to_ship)?;
                continue;
            }
            self.push(
                st,
                (record, size, timestamp),
                (topic, partition),
                to_ship,
                close_now,
                added,
            )?;
            return Ok(started.is_some());
        }
    }

    /// The topic (accumulator index) and partition of a record, after every check
    /// `send` makes.
    fn locate(
        &self,
        st: &mut AccState,
        record: &ProducerRecord<'_>,
        size: usize,
        custom: Option<i32>,
        to_ship: &mut Vec<Closed>,
    ) -> Result<(usize, i32)> {
        {
            // Checked under the lock that `shutdown` sets it under: no batch opens after
            // the final flush.
            self.check_open()?;
            if let Some(t) = record.timestamp {
                crate::format::batch::check_timestamp(t)?;
            }
            let topic = self.topic_acc(st, &record.topic, to_ship)?;
            let acc = &st.accs[topic];
            if acc.compacted && record.key.is_none() {
                return Err(crate::catalog::keyless_on_compacted(&record.topic));
            }
            for (limit, limit_name) in [
                (self.config.max_request_size, "max_request_size"),
                (acc.max_message_bytes, "max_message_bytes"),
                (self.config.buffer_memory, "buffer_memory"),
                (self.max_uncompressed, "max_decompressed_bytes"),
            ] {
                if size + BATCH_OVERHEAD > limit {
                    return Err(Error::RecordTooLarge {
                        size: (size + BATCH_OVERHEAD) as u64,
                        limit: limit as u64,
                        limit_name,
                    });
                }
            }
            let mut num_partitions = acc.parts.len() as i32;
            let asked = record.partition.or(custom);
            if asked.is_some_and(|p| p >= num_partitions) {
                // add_partitions publishes new partitions just before it bumps the
                // metadata epoch: look at the topic's own list before refusing.
                st.accs[topic].add_new_partitions();
                num_partitions = st.accs[topic].parts.len() as i32;
            }
            let partition = match (record.partition, custom) {
                (Some(p), _) if (0..num_partitions).contains(&p) => p,
                (Some(p), _) => {
                    return Err(Error::NotFound {
                        kind: "partition",
                        name: format!("{}-{p}", record.topic),
                    });
                }
                // Chosen outside the lock: the topic may have changed since.
                (None, Some(p)) => Self::checked(&record.topic, num_partitions, p)?,
                (None, None) => Self::checked(
                    &record.topic,
                    num_partitions,
                    self.partitioner.partition(
                        &record.topic,
                        record.key_bytes(),
                        size,
                        num_partitions,
                    ),
                )?,
            };
            Ok((topic, partition))
        }
    }

    /// `add` once the partition is known and memory is available.
    fn push(
        &self,
        st: &mut AccState,
        (record, size, timestamp): (&ProducerRecord<'_>, usize, i64),
        (topic, partition): (usize, i32),
        to_ship: &mut Vec<Closed>,
        close_now: bool,
        added: impl FnOnce(u64, &Arc<BatchSlot>, i64),
    ) -> Result<()> {
        let AccState {
            accs,
            open,
            used_memory,
            linger_idle,
            ready,
            linger_waiting,
            inflight,
            next_batch_id,
            ..
        } = st;
        // Not for Acks::All: one thread would then fsync every partition in turn, where
        // each sender appending its own batch fsyncs partitions in parallel.
        let background = self.config.linger_ms > 0 && self.config.acks != Acks::All;
        let mut full = |b: OpenBatch, to_ship: &mut Vec<Closed>| {
            if background {
                ready.push(Self::close_batch(b));
                if std::mem::take(linger_waiting) {
                    self.cond.notify_all();
                }
            } else {
                to_ship.push(Self::close_batch(b));
            }
        };
        let acc = &mut accs[topic];
        let limit = self
            .config
            .max_request_size
            .min(acc.max_message_bytes)
            .min(self.max_uncompressed);
        // `located` may be stale in `send_batch` (another record's check refreshed the
        // topic): refuse rather than index out of bounds.
        let Some(pa) = acc.parts.get_mut(partition as usize) else {
            return Err(Error::NotFound {
                kind: "partition",
                name: format!("{}-{partition}", record.topic),
            });
        };
        // A full batch is closed first.
        if let Some(b) = &pa.open
            && !b.builder.is_empty()
            && b.builder.uncompressed_size() + size
                > b.limit
                    .min(self.config.batch_size.max(size + BATCH_OVERHEAD))
        {
            let b = pa.open.take().expect("present");
            open.remove(&b.id);
            full(b, to_ship);
        }
        let opened = pa.open.is_none();
        let b = pa.open.get_or_insert_with(|| OpenBatch {
            id: *next_batch_id,
            builder: BatchBuilder::with_capacity(self.config.batch_size.min(limit) + 128)
                .compression(self.config.compression)
                .compression_level(self.config.compression_level)
                .compress_only_if_smaller(true),
            slot: BatchSlot::new(acc.name.clone(), partition, acc.log_append_time),
            part: pa.part.clone(),
            queue: pa.queue.clone(),
            reserved: 0,
            limit: limit.saturating_sub(BATCH_OVERHEAD),
        });
        if let Err(e) = b.builder.push(
            timestamp,
            record.key_bytes(),
            record.value_bytes(),
            &record.headers,
        ) {
            if opened {
                pa.open = None;
            }
            return Err(e);
        }
        *used_memory += size;
        b.reserved += size;
        added(b.id, &b.slot, i64::from(b.builder.len() as i32 - 1));
        if opened {
            *next_batch_id += 1;
            inflight.insert(b.id);
            open.insert(b.id, (topic, partition, Instant::now()));
            if *linger_idle {
                self.cond.notify_all();
            }
        }
        if close_now || b.builder.uncompressed_size() >= self.config.batch_size {
            let b = pa.open.take().expect("present");
            open.remove(&b.id);
            full(b, to_ship);
        }
        Ok(())
    }

    /// The index of `name`'s accumulator, its metadata refreshed if the store's topics
    /// changed since it was cached. Batches of a deleted (or deleted and recreated)
    /// topic are closed into `to_ship` (their appends fail with `Closed`).
    fn topic_acc(&self, st: &mut AccState, name: &str, to_ship: &mut Vec<Closed>) -> Result<usize> {
        let epoch = self.catalog.metadata_epoch();
        // Consecutive sends mostly go to one topic: compare before hashing.
        let index = match st.last_topic {
            Some(i) if *st.accs[i].name == *name => Some(i),
            _ => st.topics.get(name).copied(),
        };
        st.last_topic = index;
        if let Some(i) = index
            && st.accs[i].epoch == epoch
        {
            return Ok(i);
        }
        let found = self.catalog.open_topic(name);
        if let Some(i) = index {
            let same = found
                .as_ref()
                .is_ok_and(|s| Arc::ptr_eq(s, &st.accs[i].state));
            if !same {
                for pa in &mut st.accs[i].parts {
                    if let Some(b) = pa.open.take() {
                        st.open.remove(&b.id);
                        to_ship.push(Self::close_batch(b));
                    }
                }
                st.accs[i].parts.clear();
            }
        }
        st.refreshes += 1;
        let state = found?;
        let config = state.config();
        let i = match index {
            Some(i) => i,
            None => {
                let name: Arc<str> = Arc::from(name);
                st.accs.push(TopicAcc {
                    state: state.clone(),
                    epoch,
                    name: name.clone(),
                    max_message_bytes: 0,
                    log_append_time: false,
                    compacted: false,
                    parts: Vec::new(),
                });
                st.topics.insert(name, st.accs.len() - 1);
                st.accs.len() - 1
            }
        };
        let acc = &mut st.accs[i];
        acc.state = state;
        acc.epoch = epoch;
        acc.max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX);
        acc.log_append_time = config.message_timestamp_type == TimestampType::LogAppendTime;
        acc.compacted = config.cleanup_policy != crate::topic::CleanupPolicy::Delete;
        acc.add_new_partitions();
        Ok(i)
    }

    /// Waits while `buffer_memory` cannot take `size` more bytes, appending open
    /// batches to free it, up to `max_block_ms` from `started`.
    fn wait_for_memory(
        &self,
        st: &mut parking_lot::MutexGuard<'_, AccState>,
        size: usize,
        started: Instant,
        to_ship: &mut Vec<Closed>,
    ) -> Result<()> {
        if !to_ship.is_empty() || !st.open.is_empty() || !st.ready.is_empty() {
            // Free memory by appending what is open or ready (outside the lock).
            let mut batches = std::mem::take(to_ship);
            batches.append(&mut st.ready);
            batches.extend(st.close_all());
            parking_lot::MutexGuard::unlocked(st, || self.ship_all(batches));
            return Ok(());
        }
        let deadline = started.checked_add(Duration::from_millis(self.config.max_block_ms));
        let timed_out = match deadline {
            Some(d) => self.cond.wait_until(st, d).timed_out(),
            None => {
                self.cond.wait(st);
                false
            }
        };
        if timed_out && st.used_memory + size > self.config.buffer_memory {
            return Err(Error::Timeout {
                what: "buffer_memory to free up (max_block_ms)",
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        Ok(())
    }

    fn close_batch(b: OpenBatch) -> Closed {
        let ticket = b.queue.next_ticket.fetch_add(1, Ordering::AcqRel);
        Closed { batch: b, ticket }
    }

    fn ship_all(&self, batches: Vec<Closed>) {
        for c in batches {
            self.ship(c);
        }
    }

    /// Encodes (compresses) a closed batch and hands it to its partition's queue; if no
    /// one is appending there, appends every ready batch in ticket order, fsyncs for
    /// `Acks::All`, resolves their futures and frees their memory.
    fn ship(&self, c: Closed) {
        let Closed { batch: b, ticket } = c;
        let encoded = b.builder.build();
        let sealed = Sealed {
            id: b.id,
            slot: b.slot,
            part: b.part,
            reserved: b.reserved,
        };
        let queue = b.queue;
        let mut q = queue.state.lock();
        q.ready.insert(ticket, (sealed, encoded));
        if q.draining {
            return;
        }
        q.draining = true;
        // Holds the queue's lock (re-taken after each unlocked step, also when one
        // unwinds): should `finish` unwind (a waker panicked), the queue must not stay
        // claimed, or its later batches would never be appended.
        struct Claim<'a>(parking_lot::MutexGuard<'a, QueueState>);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                self.0.draining = false;
            }
        }
        let mut claim = Claim(q);
        let mut done = Vec::new();
        loop {
            let next = claim.0.next_append;
            let Some((b, encoded)) = claim.0.ready.remove(&next) else {
                break;
            };
            claim.0.next_append += 1;
            let appended = parking_lot::MutexGuard::unlocked(&mut claim.0, || {
                let r = encoded.and_then(|mut e| b.part.append_encoded(&mut e));
                if r.is_ok() {
                    b.part.wake();
                }
                r
            });
            done.push((b, appended));
            if done.len() == DRAIN_CHUNK {
                // Resolve what is appended before going on, so a long drain does not
                // hold back futures and memory.
                let chunk = std::mem::take(&mut done);
                parking_lot::MutexGuard::unlocked(&mut claim.0, || self.finish(chunk));
            }
        }
        drop(claim); // no longer draining
        self.finish(done);
    }

    /// Completes appended batches of one partition queue: one fsync covering all of
    /// them for `Acks::All`, then their futures and their memory.
    fn finish(&self, done: Vec<(Sealed, Result<crate::catalog::AppendInfo>)>) {
        // One queue is one partition's, but a batch records its own log: keep them
        // apart should they ever differ.
        let mut synced: Vec<(&Arc<PartitionState>, Result<()>)> = Vec::new();
        if self.config.acks == Acks::All {
            let mut ends: Vec<(&Arc<PartitionState>, i64)> = Vec::new();
            for (b, r) in &done {
                let Ok(info) = r else { continue };
                match ends.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &b.part)) {
                    Some((_, end)) => *end = (*end).max(info.last_offset + 1),
                    None => ends.push((&b.part, info.last_offset + 1)),
                }
            }
            synced = ends
                .into_iter()
                .map(|(p, end)| (p, p.flush_to(end).map(|_| ())))
                .collect();
        }
        let sync_result = |part: &Arc<PartitionState>| {
            synced
                .iter()
                .find(|(p, _)| Arc::ptr_eq(p, part))
                .map_or(Ok(()), |(_, r)| r.clone())
        };
        let mut results = Vec::with_capacity(done.len());
        for (b, appended) in &done {
            results.push(appended.as_ref().map_err(Clone::clone).and_then(|info| {
                sync_result(&b.part)?;
                Ok((info.base_offset, info.max_timestamp))
            }));
        }
        let mut freed = 0;
        let mut ids = Vec::with_capacity(done.len());
        let mut wakers = Vec::new();
        for ((b, _), result) in done.into_iter().zip(results) {
            if let Err(e) = &result {
                log::warn!(
                    "producer: appending a batch to {}-{} failed: {e}",
                    b.part.topic,
                    b.part.partition
                );
            }
            wakers.extend(b.slot.resolve(result));
            freed += b.reserved;
            ids.push(b.id);
        }
        let mut st = self.state.lock();
        st.used_memory -= freed;
        for id in ids {
            st.inflight.remove(&id);
        }
        drop(st);
        self.cond.notify_all();
        // Last: a waker is the application's code. One that panics (the panic hook has
        // reported it) must not keep the others from waking, nor unwind through the
        // appends of other batches and senders this thread is completing: it is logged
        // and not passed on.
        for w in wakers {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake())).is_err() {
                log::error!("producer: a task's waker panicked when its send completed");
            }
        }
    }

    fn flush(&self) -> Result<()> {
        let mut st = self.state.lock();
        let target = st.next_batch_id;
        let mut batches = std::mem::take(&mut st.ready);
        batches.extend(st.close_all());
        drop(st);
        self.ship_all(batches);
        let mut st = self.state.lock();
        while st.inflight.first().is_some_and(|&id| id < target) {
            self.cond.wait(&mut st);
        }
        drop(st);
        self.catalog.check_open()
    }

    fn shutdown(&self) -> Result<()> {
        {
            // Under the state lock: the linger thread checks `closed` under it before it
            // waits, so this notification cannot fall between its check and its wait.
            let _st = self.state.lock();
            if self.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        self.cond.notify_all();
        self.flush()
    }

    /// Appends full batches handed over by senders, and batches whose `linger_ms` has
    /// passed.
    fn linger_loop(&self) {
        let linger = Duration::from_millis(self.config.linger_ms);
        let mut st = self.state.lock();
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if !st.ready.is_empty() {
                let batches = std::mem::take(&mut st.ready);
                parking_lot::MutexGuard::unlocked(&mut st, || self.ship_all(batches));
                continue;
            }
            let now = Instant::now();
            let expired: Vec<u64> = st
                .open
                .iter()
                .take_while(|(_, (_, _, created))| now.duration_since(*created) >= linger)
                .map(|(&id, _)| id)
                .collect();
            if !expired.is_empty() {
                let batches: Vec<Closed> = expired
                    .into_iter()
                    .filter_map(|id| st.take_open(id))
                    .map(Self::close_batch)
                    .collect();
                parking_lot::MutexGuard::unlocked(&mut st, || self.ship_all(batches));
                continue;
            }
            st.linger_waiting = true;
            match st
                .open
                .values()
                .next()
                .and_then(|(_, _, c)| c.checked_add(linger))
            {
                Some(d) => {
                    self.cond.wait_until(&mut st, d);
                }
                None => {
                    st.linger_idle = true;
                    self.cond.wait(&mut st);
                    st.linger_idle = false;
                }
            }
            st.linger_waiting = false;
        }
    }
}

/// Flushes and stops every live producer of a store (at store close, before the logs).
pub(crate) fn shutdown_all(list: &[Weak<Shared>]) {
    for p in list.iter().filter_map(Weak::upgrade) {
        if let Err(e) = p.shutdown() {
            log::warn!("closing a producer with the store: {e}");
        }
    }
}
