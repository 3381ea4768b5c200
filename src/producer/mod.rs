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

mod accumulator;
mod config;
mod delivery;
mod fast_path;
mod hash;
mod linger;
mod partitioner;
mod queue;
mod record;
mod send_async;
mod transaction;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

pub use config::{Acks, ProducerConfig};
pub use delivery::{BatchDelivery, DeliveryFuture, RecordMetadata};
pub use partitioner::{DefaultPartitioner, Partitioner, murmur2, partition_for_key};
pub use record::{Payload, ProducerRecord};
pub use send_async::SendFuture;

use accumulator::{AccState, Closed, Pushed};
use delivery::PendingDelivery;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::Compression;
use crate::txn::TxnCoordinator;

pub(crate) struct Shared {
    /// Names this producer in its threads' partition caches (`fast_path`).
    id: u64,
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
    /// A transactional producer's link to the transaction coordinator.
    txn: Option<transaction::TxnClient>,
}

struct Handle {
    shared: Arc<Shared>,
    linger: Mutex<Option<JoinHandle<()>>>,
}

/// Sends records to topics. `Send + Sync + Clone`: share one across threads (clones
/// share the accumulator). Closed by [`close`](Self::close) or when the last clone drops.
///
/// Order: the records one thread sends to one partition are appended in the order it
/// sent them. Records that different threads send at the same time to one partition
/// are appended in some order of their sends. Threads sending to different partitions
/// encode their records in parallel: each partition's open batch has its own lock.
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

impl Producer {
    /// Whether the linger thread sleeps until an open batch's deadline (a test hook,
    /// exposed by `internals`). It sets `linger.waiting` under the state lock and waits
    /// releasing it, so seen under the lock the flag means it is in the wait.
    #[cfg(feature = "internals")]
    pub(crate) fn linger_waits_for_a_deadline(&self) -> bool {
        let st = self.handle.shared.state.lock();
        st.linger.waiting && !st.linger.idle && !st.linger.napping
    }

    /// How many partitions' accumulators the producer holds (a test hook, exposed by
    /// `internals`).
    #[cfg(feature = "internals")]
    pub(crate) fn partitions_held(&self) -> usize {
        let st = self.handle.shared.state.lock();
        st.accs.iter().map(|a| a.parts.len()).sum()
    }

    /// Bytes the buffers of the open batches have allocated (a test hook, exposed by
    /// `internals`).
    #[cfg(feature = "internals")]
    pub(crate) fn open_batch_allocations(&self) -> usize {
        let st = self.handle.shared.state.lock();
        st.open
            .iter()
            .filter_map(|(&id, &(topic, partition, _))| {
                let pa = st.accs.get(topic)?.parts.get(partition as usize)?;
                let open = pa.open.lock();
                open.as_ref()
                    .filter(|b| b.id == id)
                    .map(|b| b.builder.capacity())
            })
            .sum()
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
        coordinator: Arc<TxnCoordinator>,
    ) -> Result<(Producer, Weak<Shared>)> {
        config.validate()?;
        // The first reading of the record clock calibrates it (once per process,
        // spinning for half a millisecond or more): here rather than in a send, which
        // may run inside an async task.
        let _ = catalog.recent_ms();
        let partitioner = config
            .partitioner
            .clone()
            .unwrap_or_else(|| Arc::new(DefaultPartitioner::new(config.batch_size)));
        let max_uncompressed = if config.compression == Compression::None {
            usize::MAX
        } else {
            catalog.config().max_decompressed_bytes()
        };
        let mut state = AccState::default();
        let txn = config.transactional_id.as_ref().map(|id| {
            // Validated: at most 900000.
            let timeout = i32::try_from(config.transaction_timeout_ms).unwrap_or(i32::MAX);
            transaction::TxnClient::new(coordinator, id.clone(), timeout)
        });
        if config.enable_idempotence && txn.is_none() {
            // A transactional producer gets its id from `init_transactions`.
            state.producer = Some((catalog.allocate_producer_id()?, 0));
        }
        let shared = Arc::new(Shared {
            id: fast_path::producer_id(),
            catalog,
            _owner: owner,
            max_uncompressed,
            config,
            partitioner,
            state: Mutex::new(state),
            cond: Condvar::new(),
            closed: AtomicBool::new(false),
            txn,
        });
        let linger = if shared.config.linger_ms > 0 {
            Some(shared.clone().spawn_linger()?)
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
    /// after `max_block_ms`; `Closed` after `close`; `InvalidArgument` for an internal
    /// topic, a partition a custom partitioner picked outside the topic, or a timestamp
    /// below -1 or (on a CreateTime topic) outside the topic's
    /// `message_timestamp_before_max_ms` / `message_timestamp_after_max_ms` of the
    /// store's clock (refused here, not with the batch at its append). Inside a
    /// transaction, any of these makes it abort-only (its commit is refused), as in
    /// Kafka. A transactional producer also gets `TransactionState` before
    /// `init_transactions`, outside `begin_transaction`, or once its transaction is
    /// abort-only, and `Fenced` once another producer initialized its id.
    pub fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        self.handle.shared.send(record)
    }

    /// Sends several records in one call: as [`send`](Self::send) would, one after
    /// another, but checking them all under one hold of the producer's lock and taking
    /// the clock once (records without a timestamp get the call's time), with one future
    /// for all of them. Every record is checked before any is added, so an error in
    /// those checks means none was sent. An error while adding them (the producer
    /// closed, a topic deleted, a transaction ending, `buffer_memory` timing out) comes
    /// after the records before it were added: those are sent without being reported.
    /// Inside a transaction such an error makes it abort-only, except when a clone's
    /// `commit_transaction` started meanwhile: the records added before it are part of
    /// the commit, as each `send` before a commit is in Kafka. With `linger_ms` 0 the call's
    /// batches are appended when it returns, unless a [`send_async`](Self::send_async)
    /// started the linger thread, which then appends them right away.
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
    /// is resolved: acknowledged per `acks` (with `Acks::All`, fsync'd) or failed. As
    /// Kafka's `flush`, it does not report a failed send: each send's
    /// [`DeliveryFuture`] says whether it was written (and fsync'd), so keep the
    /// futures of records that must not be lost and check them.
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
        let linger = self.linger.lock().take();
        // Not joined from itself (a delivery's waker polled a task there that closed
        // this producer, or dropped its last clone): it ends once this call returns.
        if let Some(t) = linger.filter(|t| t.thread().id() != std::thread::current().id())
            && t.join().is_err()
        {
            tracing::error!("the producer's linger thread panicked");
        }
        result
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("closing producer on drop: {e}");
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

    /// `e`, which a send call returns, after it made an open transaction abort-only.
    fn send_error(&self, e: Error) -> Error {
        if let Some(txn) = &self.txn {
            txn.call_failed(&e);
        }
        e
    }

    fn send(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        self.send_one(record).map_err(|e| self.send_error(e))
    }

    fn send_one(&self, record: ProducerRecord<'_>) -> Result<DeliveryFuture> {
        self.check_open()?;
        let (size, custom) = self.prepare(&record)?;
        let timestamp = record.timestamp.unwrap_or_else(|| self.catalog.recent_ms());

        let mut to_ship = Vec::new();
        let result = self.add_one(
            (&record, size, timestamp, custom),
            self.config.linger_ms == 0,
            &mut to_ship,
            None,
        );
        self.ship_all(to_ship);
        let (slot, index) = result?.expect("a blocking add always adds");
        Ok(self.delivery(slot, index, timestamp))
    }

    /// The future of a record added to `slot` at `index`.
    fn delivery(
        &self,
        slot: Arc<delivery::BatchSlot>,
        index: i64,
        timestamp: i64,
    ) -> DeliveryFuture {
        if self.config.acks == Acks::None {
            return DeliveryFuture {
                inner: Err(Some(RecordMetadata {
                    topic: slot.topic.clone(),
                    partition: slot.partition,
                    offset: -1,
                    timestamp,
                })),
            };
        }
        DeliveryFuture {
            inner: Ok(PendingDelivery {
                slot,
                index,
                timestamp,
            }),
        }
    }

    /// Adds one record: under its partition's lock alone when its open batch takes it
    /// ([`push_fast`](Self::push_fast)), otherwise under the producer's lock too. With
    /// `park` (an async send), a full `buffer_memory` registers the waker and returns
    /// `None` (nothing added; what is open or ready goes to the linger thread to free
    /// memory) instead of waiting.
    fn add_one(
        &self,
        (record, size, timestamp, custom): (&ProducerRecord<'_>, usize, i64, Option<i32>),
        close_now: bool,
        to_ship: &mut Vec<Closed>,
        park: Option<&std::task::Waker>,
    ) -> Result<Option<(Arc<delivery::BatchSlot>, i64)>> {
        let mut custom = custom;
        let mut placed = None;
        let mut place = |_, slot: &Arc<delivery::BatchSlot>, index| {
            placed = Some((slot.clone(), index));
        };
        if let Some((pa, sticky)) = self.cached_partition(record, size, custom) {
            // The checks `locate` makes of a record, this one on the way past it.
            Self::check_bounds(&pa.part, record)?;
            let pushed = self.push_fast(&pa, (record, size, timestamp), close_now, &mut place)?;
            if let Pushed::Added(closed) = pushed {
                if let Some(c) = closed {
                    self.hand_over(c, to_ship);
                }
                return Ok(placed);
            }
            // The sticky partitioner is asked once per record.
            custom = custom.or(sticky);
        }
        let mut st = self.state.lock();
        let located = self.locate(&mut st, record, size, custom, to_ship)?;
        self.remember(&st, located.0);
        let pa = st.accs[located.0].parts.get(located.1 as usize).cloned();
        drop(st);
        if let Some(pa) = pa
            && let Pushed::Added(closed) =
                self.push_fast(&pa, (record, size, timestamp), close_now, &mut place)?
        {
            if let Some(c) = closed {
                self.hand_over(c, to_ship);
            }
            return Ok(placed);
        }
        let mut st = self.state.lock();
        // To the partition chosen above (a partitioner is asked once per record), but
        // checked again under the lock `shutdown` sets it under: no batch opens after
        // the final flush.
        self.check_open()?;
        if let Some(waker) = park
            && !self.memory_for(&mut st, size)
        {
            if !st.memory_wakers.iter().any(|w| w.will_wake(waker)) {
                st.memory_wakers.push(waker.clone());
            }
            to_ship.extend(st.close_all());
            return Ok(None);
        }
        let mut added = None;
        self.add(
            &mut st,
            (record, size, timestamp, custom),
            to_ship,
            close_now,
            Some(located),
            |_, slot, index| added = Some((slot.clone(), index)),
        )?;
        Ok(Some(added.expect("added")))
    }

    fn send_batch(&self, records: &[ProducerRecord<'_>]) -> Result<BatchDelivery> {
        self.send_many(records).map_err(|e| self.send_error(e))
    }

    fn send_many(&self, records: &[ProducerRecord<'_>]) -> Result<BatchDelivery> {
        self.check_open()?;
        let now = self.catalog.recent_ms();
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
        // The partitions the records go to, each once per run of records to it (a
        // reference count per record was a few percent of a batch's cost).
        let mut parts: Vec<Arc<accumulator::PartAcc>> = Vec::new();
        let mut st = self.state.lock();
        let mut result = Ok(());
        // Until no topic was refreshed during a pass: a refresh (the topic changed in the
        // store) may have changed what records checked earlier in the pass go to.
        for _ in 0..4 {
            let refreshes = st.refreshes;
            parts.clear();
            for (r, (size, custom, at)) in records.iter().zip(&mut plan) {
                match self.locate(&mut st, r, *size, *custom, &mut to_ship) {
                    Ok((topic, partition)) => {
                        *at = st.accs[topic].parts.get(partition as usize).map(|pa| {
                            if !parts.last().is_some_and(|last| Arc::ptr_eq(last, pa)) {
                                parts.push(pa.clone());
                            }
                            ((topic, partition), parts.len() - 1)
                        });
                    }
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
        drop(st);
        if result.is_ok() {
            // Each record to the partition its checks above chose: runs of records to
            // one partition under that partition's lock alone while its open batch
            // takes them, any other record under the producer's lock.
            let mut record = |id, slot: &Arc<delivery::BatchSlot>, index: i64, timestamp| {
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
            };
            result = (|| {
                let mut i = 0;
                // The end of the run of records to one partition that `i` is in (found
                // once per run: a run spans many batches).
                let mut run_end = 0;
                while i < records.len() {
                    if let Some((_, pa)) = &plan[i].2 {
                        if i >= run_end {
                            run_end = i + plan[i..]
                                .iter()
                                .take_while(|(_, _, a)| a.as_ref().is_some_and(|(_, q)| q == pa))
                                .count();
                        }
                        let run = records[i..run_end]
                            .iter()
                            .zip(&plan[i..run_end])
                            .map(|(r, (size, _, _))| (r, *size, r.timestamp.unwrap_or(now)));
                        let (n, closed) = self.push_run(&parts[*pa], run, false, &mut record)?;
                        if let Some(c) = closed {
                            self.hand_over(c, &mut to_ship);
                        }
                        i += n;
                        if i >= run_end {
                            continue;
                        }
                        // Record `i` was refused, or the batch closed just before it: it
                        // goes to the locked path, which opens the next batch.
                    }
                    let (size, custom, at) = &plan[i];
                    let r = &records[i];
                    let timestamp = r.timestamp.unwrap_or(now);
                    let mut st = self.state.lock();
                    // As `add_one`: to the partition its checks chose, the producer
                    // checked again under this lock.
                    self.check_open()?;
                    self.add(
                        &mut st,
                        (r, *size, timestamp, *custom),
                        &mut to_ship,
                        false,
                        at.as_ref().map(|(located, _)| *located),
                        |id, slot, index| record(id, slot, index, timestamp),
                    )?;
                    i += 1;
                }
                Ok(())
            })();
        }
        if self.config.linger_ms == 0 {
            let mut st = self.state.lock();
            to_ship.extend(batch_ids.iter().filter_map(|&id| st.take_open(id)));
        }
        self.ship_all(to_ship);
        result.map(|()| out)
    }

    /// The checks a record passes before the producer's lock, its estimated size,
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

    fn flush(&self) -> Result<()> {
        let mut st = self.state.lock();
        let target = st.next_batch_id;
        let mut batches = std::mem::take(&mut st.linger.ready);
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
        transaction::abort_open_transaction(self);
        let parked;
        {
            // Under the state lock: the linger thread checks `closed` under it before it
            // waits, so this notification cannot fall between its check and its wait.
            let mut st = self.state.lock();
            if self.closed.swap(true, Ordering::AcqRel) {
                drop(st);
                return self.wait_closed();
            }
            // Parked async sends see `Closed` when they poll again (woken below,
            // outside the lock).
            parked = std::mem::take(&mut st.memory_wakers);
        }
        // Not unwinding past the linger thread's notification and the flush: a panic
        // there stranded the other parked sends and every open batch.
        crate::catalog::wake_all(parked, "the producer closed");
        self.cond.notify_all();
        self.flush()
    }
}

impl Shared {
    /// A close after the first (another clone's, the store's, a drop's): returns once
    /// the records sent before it are done, as the first close does, which may still
    /// be shipping them (an early Ok let a process exit before they were appended, and
    /// the store's close close the logs under them). `Closed` is no error here: the
    /// store closed after the first close finished.
    fn wait_closed(&self) -> Result<()> {
        match self.flush() {
            Err(Error::Closed { .. }) => Ok(()),
            r => r,
        }
    }
}

/// Flushes and stops every live producer of a store (at store close, before the logs).
pub(crate) fn shutdown_all(list: &[Weak<Shared>]) {
    for p in list.iter().filter_map(Weak::upgrade) {
        if let Err(e) = p.shutdown() {
            tracing::warn!("closing a producer with the store: {e}");
        }
    }
}
