//! The accumulator: each partition's open batch, records encoded straight into it,
//! the topic metadata cache, `buffer_memory` accounting, and closing batches on
//! `batch_size`.
//!
//! Two levels of locks, as Kafka's RecordAccumulator keeps a lock per partition deque:
//! the producer's lock (`Shared::state`: topics, the registry of open batches, memory,
//! the linger thread's hand-off) and each partition's lock (`PartAcc::open`: its open
//! batch). A record that fits the open batch of its partition and the memory that batch
//! holds is encoded under the partition's lock alone ([`Shared::push_fast`]), so threads
//! sending to different partitions encode in parallel. Order: the producer's lock is
//! taken before a partition's, never while one is held; a partition's lock before the
//! transaction state's. A batch is closed (its ticket and sequences taken) under its
//! partition's lock, so a partition's batches are numbered in append order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::delivery::BatchSlot;
use super::hash::FastHash;
use super::linger::Handoff;
use super::queue::PartQueue;
use super::{Acks, BATCH_OVERHEAD, ProducerRecord, Shared};
use crate::catalog::{PartitionState, TopicState};
use crate::error::{Error, Result};
use crate::format::batch::add_sequence;
use crate::format::{BatchBuilder, TimestampType};

/// Bytes a batch's buffer holds beyond its records' estimated sizes (the batch header).
const BUILDER_SLACK: usize = 128;

pub(super) struct OpenBatch {
    pub(super) id: u64,
    pub(super) builder: BatchBuilder,
    pub(super) slot: Arc<BatchSlot>,
    pub(super) part: Arc<PartitionState>,
    pub(super) queue: Arc<PartQueue>,
    /// `buffer_memory` the batch holds (freed once it is appended): at least `used`;
    /// the rest lets records join it without the producer's lock.
    pub(super) reserved: usize,
    /// Estimated bytes of the records in it.
    pub(super) used: usize,
    pub(super) limit: usize,
    /// The producer id and epoch the batch is sent under (idempotence).
    pub(super) producer: Option<(i64, i16)>,
    /// It holds a record without a key: refused at the append if its topic became
    /// compacted since the record was sent.
    pub(super) keyless: bool,
}

pub(super) struct Closed {
    pub(super) batch: OpenBatch,
    pub(super) ticket: u64,
}

/// What [`Shared::push_fast`] did with a record.
pub(super) enum Pushed {
    /// The open batch could not take it (or there is none): the locked path adds it.
    Refused,
    /// Added; with the batch if the record closed it.
    Added(Option<Closed>),
}

#[derive(Default)]
pub(super) struct AccState {
    /// Per topic (an index into `accs`, so one lookup per send): its metadata (cached)
    /// and each partition's open batch.
    pub(super) topics: HashMap<Arc<str>, usize, FastHash>,
    pub(super) accs: Vec<TopicAcc>,
    /// The topic of the last send (checked first).
    pub(super) last_topic: Option<usize>,
    /// How many times a topic's cached metadata was refreshed.
    pub(super) refreshes: u64,
    /// The metadata epoch at which accumulators of deleted topics were last let go.
    pub(super) swept_epoch: u64,
    /// Open batches by id (ids grow with creation time, so the first is the oldest):
    /// where they are (topic index, partition) and when they opened.
    pub(super) open: BTreeMap<u64, (usize, i32, Instant)>,
    pub(super) used_memory: usize,
    /// Full batches for the linger thread to append, and how it waits.
    pub(super) linger: Handoff,
    /// Async sends waiting for `buffer_memory`: woken when memory is freed or the
    /// producer closes.
    pub(super) memory_wakers: Vec<std::task::Waker>,
    pub(super) inflight: BTreeSet<u64>,
    pub(super) next_batch_id: u64,
    /// The producer id and epoch of an idempotent producer.
    pub(super) producer: Option<(i64, i16)>,
}

/// A topic as the producer last saw it (refreshed when the store's metadata epoch
/// moves), with the partitions' accumulators.
pub(super) struct TopicAcc {
    /// Weak: a deleted topic's partitions must not stay alive through it.
    pub(super) state: Weak<TopicState>,
    pub(super) epoch: u64,
    pub(super) name: Arc<str>,
    pub(super) max_message_bytes: usize,
    pub(super) log_append_time: bool,
    pub(super) compacted: bool,
    pub(super) parts: Vec<Arc<PartAcc>>,
    /// `parts`, weakly, rebuilt whenever `parts` changes: what a sending thread's
    /// cache takes (`fast_path`) for the cost of one reference count.
    pub(super) weak_parts: Arc<[Weak<PartAcc>]>,
}

impl TopicAcc {
    /// Adds partitions the topic (`state`, what `self.state` names) has gained since they
    /// were cached.
    pub(super) fn add_new_partitions(&mut self, state: &TopicState) {
        let before = self.parts.len();
        for part in state.partitions_from(self.parts.len()) {
            self.parts.push(Arc::new(PartAcc {
                part,
                queue: Arc::default(),
                open: parking_lot::Mutex::new(None),
            }));
        }
        // `parts` only grows here; emptied (a replaced topic), it grows back here too,
        // possibly to the same length with new accumulators.
        if self.parts.len() != before || self.weak_parts.len() != self.parts.len() {
            self.weak_parts = self.parts.iter().map(Arc::downgrade).collect();
        }
    }
}

pub(super) struct PartAcc {
    pub(super) part: Arc<PartitionState>,
    pub(super) queue: Arc<PartQueue>,
    /// The partition's open batch, under the partition's lock.
    pub(super) open: parking_lot::Mutex<Option<OpenBatch>>,
}

impl PartAcc {
    /// Takes the open batch (only if it is batch `id`, when given) and closes it, under
    /// the partition's lock.
    pub(super) fn take_closed(&self, id: Option<u64>) -> Option<Closed> {
        let mut open = self.open.lock();
        if id.is_some_and(|id| open.as_ref().is_none_or(|b| b.id != id)) {
            return None;
        }
        open.take().map(Shared::close_batch)
    }
}

impl AccState {
    /// Drops topic `i`'s partition accumulators (it was deleted or replaced); their
    /// open batches go to `to_ship`, where their appends fail: the partitions they were
    /// opened for are closed (deleted, or replaced by a new topic's).
    fn let_go_of(&mut self, i: usize, to_ship: &mut Vec<Closed>) {
        let acc = &mut self.accs[i];
        let closed: Vec<Closed> = std::mem::take(&mut acc.parts)
            .iter()
            .filter_map(|pa| pa.take_closed(None))
            .collect();
        acc.weak_parts = Arc::from([]);
        for c in closed {
            self.open.remove(&c.batch.id);
            to_ship.push(c);
        }
    }

    /// Takes the open batch `id` (at `topic`-`partition`) out of its partition, closed.
    pub(super) fn take_open(&mut self, id: u64) -> Option<Closed> {
        let (topic, partition, _) = self.open.remove(&id)?;
        self.accs
            .get(topic)?
            .parts
            .get(partition as usize)?
            .take_closed(Some(id))
    }

    /// Takes back the memory open batches hold beyond their records; returns how much.
    pub(super) fn reclaim_credit(&mut self) -> usize {
        let mut reclaimed = 0;
        for (&id, &(topic, partition, _)) in &self.open {
            let Some(pa) = self
                .accs
                .get(topic)
                .and_then(|acc| acc.parts.get(partition as usize))
            else {
                continue;
            };
            if let Some(b) = pa.open.lock().as_mut().filter(|b| b.id == id) {
                reclaimed += b.reserved - b.used;
                b.reserved = b.used;
                // The allocation follows the accounting down (a copy of the records
                // so far, only while memory is short), when it holds more than twice
                // the records: a batch's buffer grows by doubling, and shrunk at every
                // reclaim it would be copied at about every record.
                let keep = b.used.saturating_add(BUILDER_SLACK);
                if b.builder.capacity() / 2 > keep {
                    b.builder.shrink_to(keep);
                }
            }
        }
        reclaimed
    }

    /// Closes every open batch (for `flush`, `buffer_memory` and close).
    pub(super) fn close_all(&mut self) -> Vec<Closed> {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.take_open(id))
            .collect()
    }
}

impl Shared {
    /// Adds a record (with its estimated size, timestamp and a custom partitioner's
    /// choice) to its partition's open batch, under the producer's lock (released
    /// only while `buffer_memory` is full); `added` gets the batch's id and slot and the
    /// record's index in it. Batches to append go to `to_ship`; with `close_now` the
    /// batch is closed after the record (`linger_ms` 0). `located`: the record's
    /// [`locate`](Self::locate) under this same hold of the lock, if known. Returns
    /// whether the lock was released (to wait for memory).
    pub(super) fn add(
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
            if !self.memory_for(st, size) {
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
    pub(super) fn locate(
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
                let acc = &mut st.accs[topic];
                if let Some(state) = acc.state.upgrade() {
                    acc.add_new_partitions(&state);
                }
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
            if let Some(pa) = st.accs[topic].parts.get(partition as usize) {
                Self::check_bounds(&pa.part, record)?;
            }
            Ok((topic, partition))
        }
    }

    /// `add` once the partition is known and memory is available (under the producer's
    /// lock, then the partition's).
    pub(super) fn push(
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
            linger,
            inflight,
            next_batch_id,
            producer,
            ..
        } = st;
        let background = self.hands_over_full_batches();
        let linger_idle = linger.idle;
        let mut full = |c: Closed, to_ship: &mut Vec<Closed>| {
            if !background {
                to_ship.push(c);
            } else if linger.offer(c, to_ship) {
                self.cond.notify_all();
            }
        };
        let acc = &accs[topic];
        let limit = self
            .config
            .max_request_size
            .min(acc.max_message_bytes)
            .min(self.max_uncompressed);
        // `located` may be stale in `send_batch` (another record's check refreshed the
        // topic): refuse rather than index out of bounds.
        let Some(pa) = acc.parts.get(partition as usize) else {
            return Err(Error::NotFound {
                kind: "partition",
                name: format!("{}-{partition}", record.topic),
            });
        };
        let mut slot = pa.open.lock();
        if let Some(txn) = &self.txn {
            txn.before_send(self, &pa.part)?;
        }
        // A full batch is closed first.
        if let Some(b) = &*slot
            && !self.fits(b, size)
        {
            let c = slot.take().map(Self::close_batch).expect("present");
            open.remove(&c.batch.id);
            full(c, to_ship);
        }
        let opened = slot.is_none();
        // Memory for the record; a lingering batch takes up to a batch's worth at once
        // (never more than the largest batch it may become: `batch_size` may be
        // `usize::MAX`), so the records after it need not take the producer's lock.
        let (reserved, used) = slot.as_ref().map_or((0, 0), |b| (b.reserved, b.used));
        let needed = (used + size).saturating_sub(reserved);
        let taken = if needed == 0 || close_now {
            needed
        } else {
            let available = self.config.buffer_memory.saturating_sub(*used_memory);
            self.config.batch_size.min(limit).min(available).max(needed)
        };
        // A new batch allocates what it takes of `buffer_memory` (not `batch_size`: with
        // the memory short, thousands of partitions' batches would allocate many times
        // the budget); it grows past it as records join.
        let b = slot.get_or_insert_with(|| OpenBatch {
            id: *next_batch_id,
            builder: BatchBuilder::with_capacity(taken.saturating_add(BUILDER_SLACK))
                .compression(self.config.compression)
                .compression_level(self.config.compression_level)
                .compress_only_if_smaller(true)
                .transactional(self.txn.is_some()),
            slot: BatchSlot::new(acc.name.clone(), partition, acc.log_append_time),
            part: pa.part.clone(),
            queue: pa.queue.clone(),
            reserved: 0,
            used: 0,
            limit: limit.saturating_sub(BATCH_OVERHEAD),
            producer: *producer,
            keyless: false,
        });
        if let Err(e) = b.builder.push(
            timestamp,
            record.key_bytes(),
            record.value_bytes(),
            &record.headers,
        ) {
            if opened {
                *slot = None;
            }
            return Err(e);
        }
        *used_memory += taken;
        b.reserved += taken;
        b.used += size;
        b.keyless |= record.key.is_none();
        added(b.id, &b.slot, i64::from(b.builder.len() as i32 - 1));
        if opened {
            *next_batch_id += 1;
            inflight.insert(b.id);
            open.insert(b.id, (topic, partition, Instant::now()));
            if linger_idle {
                self.cond.notify_all();
            }
        }
        if close_now || b.builder.uncompressed_size() >= self.config.batch_size {
            let c = slot.take().map(Self::close_batch).expect("present");
            open.remove(&c.batch.id);
            full(c, to_ship);
        }
        Ok(())
    }

    /// Whether `size` more bytes of records fit batch `b` (an empty batch takes any).
    fn fits(&self, b: &OpenBatch, size: usize) -> bool {
        b.builder.is_empty()
            || b.builder.uncompressed_size() + size
                <= b.limit
                    .min(self.config.batch_size.max(size + BATCH_OVERHEAD))
    }

    /// Whether full batches go to the linger thread, so the sender goes on encoding
    /// (while the linger thread keeps up: see [`Handoff::offer`]).
    /// Not for Acks::All: one thread would then fsync every partition in turn, where
    /// each sender appending its own batch fsyncs partitions in parallel.
    fn hands_over_full_batches(&self) -> bool {
        self.config.linger_ms > 0 && self.config.acks != Acks::All
    }

    /// Adds a record to its partition's open batch under the partition's lock alone:
    /// possible when the batch takes the record and already holds the memory for it.
    /// Tells `added` where the record went (its batch's id and slot, its index; the
    /// caller takes a reference to the slot only if it needs one) and returns the batch
    /// if the record closed it (see [`hand_over`](Self::hand_over)), or `Refused` for
    /// [`add`](Self::add) to do it under the producer's lock.
    pub(super) fn push_fast(
        &self,
        pa: &PartAcc,
        record: (&ProducerRecord<'_>, usize, i64),
        close_now: bool,
        added: impl FnOnce(u64, &Arc<BatchSlot>, i64),
    ) -> Result<Pushed> {
        let mut slot = pa.open.lock();
        let Some(b) = slot.as_mut() else {
            return Ok(Pushed::Refused);
        };
        if !self.push_into(b, &pa.part, record)? {
            return Ok(Pushed::Refused);
        }
        added(b.id, &b.slot, i64::from(b.builder.len() as i32 - 1));
        let closed = self
            .closes(b, close_now)
            .then(|| slot.take().map(Self::close_batch))
            .flatten();
        Ok(Pushed::Added(closed))
    }

    /// [`push_fast`](Self::push_fast) for consecutive records to one partition, under
    /// one acquisition of its lock: adds `records` in order until the batch refuses one
    /// or one closes it (then the batch is returned). `added` is told each record's
    /// place and its timestamp. Returns how many records were added; an error stops it
    /// at the record that failed (those before it are added). The lock is held for at
    /// most a batch's worth of encoding (`batch_size`).
    pub(super) fn push_run<'a, 'b: 'a>(
        &self,
        pa: &PartAcc,
        records: impl Iterator<Item = (&'a ProducerRecord<'b>, usize, i64)>,
        close_now: bool,
        mut added: impl FnMut(u64, &Arc<BatchSlot>, i64, i64),
    ) -> Result<(usize, Option<Closed>)> {
        let mut slot = pa.open.lock();
        let mut n = 0;
        for record in records {
            let Some(b) = slot.as_mut() else {
                break;
            };
            if !self.push_into(b, &pa.part, record)? {
                break;
            }
            n += 1;
            added(
                b.id,
                &b.slot,
                i64::from(b.builder.len() as i32 - 1),
                record.2,
            );
            if self.closes(b, close_now) {
                return Ok((n, slot.take().map(Self::close_batch)));
            }
        }
        Ok((n, None))
    }

    /// Adds a record to open batch `b` of partition `part` if the batch takes it (it
    /// fits, and the batch holds the memory for it); `false` if not.
    #[inline]
    fn push_into(
        &self,
        b: &mut OpenBatch,
        part: &Arc<PartitionState>,
        (record, size, timestamp): (&ProducerRecord<'_>, usize, i64),
    ) -> Result<bool> {
        if b.used + size > b.reserved || !self.fits(b, size) {
            return Ok(false);
        }
        if let Some(txn) = &self.txn {
            txn.before_send(self, part)?;
        }
        b.builder.push(
            timestamp,
            record.key_bytes(),
            record.value_bytes(),
            &record.headers,
        )?;
        b.used += size;
        b.keyless |= record.key.is_none();
        Ok(true)
    }

    /// Refuses a record whose own timestamp partition `part`'s log would refuse now:
    /// the log refuses a batch whole, with every other record in it. (A record the
    /// producer timestamps takes the clock's time.) Checked with the other checks of a
    /// record, before anything of it is added (`send_batch` adds none of its records
    /// when one fails them). A timestamp within `message_timestamp_before_max_ms` of
    /// the clock at the send may fall out of it by the append, which then fails the
    /// batch.
    #[inline]
    pub(super) fn check_bounds(part: &PartitionState, record: &ProducerRecord<'_>) -> Result<()> {
        match record.timestamp {
            Some(ts) => part.check_timestamp(ts),
            None => Ok(()),
        }
    }

    /// Whether batch `b` closes now (`close_now`, or it reached `batch_size`).
    fn closes(&self, b: &OpenBatch, close_now: bool) -> bool {
        close_now || b.builder.uncompressed_size() >= self.config.batch_size
    }

    /// A batch a record closed outside the producer's lock: out of the registry of open
    /// batches, and to the linger thread or `to_ship`. Once the producer is closed the
    /// linger thread may be gone: the sender appends it then.
    pub(super) fn hand_over(&self, c: Closed, to_ship: &mut Vec<Closed>) {
        let mut st = self.state.lock();
        st.open.remove(&c.batch.id);
        if !self.hands_over_full_batches() || self.closed.load(Ordering::Acquire) {
            to_ship.push(c);
            return;
        }
        if st.linger.offer(c, to_ship) {
            self.cond.notify_all();
        }
    }

    /// Once per metadata epoch, lets go of the accumulators of every topic deleted or
    /// replaced since they were cached, not only of the topic sent to: a producer that
    /// once sent to a topic must not keep its partitions (their logs' state) alive after
    /// its deletion.
    /// Returns whether it let go of any.
    fn let_go_of_deleted_topics(
        &self,
        st: &mut AccState,
        epoch: u64,
        to_ship: &mut Vec<Closed>,
    ) -> bool {
        if st.swept_epoch == epoch {
            return false;
        }
        st.swept_epoch = epoch;
        let mut any = false;
        for i in 0..st.accs.len() {
            let acc = &st.accs[i];
            if acc.parts.is_empty() {
                continue;
            }
            let current = self.catalog.open_topic(&acc.name);
            if !current.is_ok_and(|s| std::ptr::eq(Arc::as_ptr(&s), acc.state.as_ptr())) {
                st.let_go_of(i, to_ship);
                any = true;
            }
        }
        any
    }

    /// The index of `name`'s accumulator, its metadata refreshed if the store's topics
    /// changed since it was cached. Batches of a deleted (or deleted and recreated)
    /// topic are closed into `to_ship` (their appends fail with `Closed`).
    pub(super) fn topic_acc(
        &self,
        st: &mut AccState,
        name: &str,
        to_ship: &mut Vec<Closed>,
    ) -> Result<usize> {
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
        let let_go = self.let_go_of_deleted_topics(st, epoch, to_ship);
        let found = self.catalog.open_topic(name);
        if let Some(i) = index {
            let same = found
                .as_ref()
                .is_ok_and(|s| std::ptr::eq(Arc::as_ptr(s), st.accs[i].state.as_ptr()));
            if !same {
                st.let_go_of(i, to_ship);
            }
        }
        // Only a topic cached before can send records checked earlier elsewhere now (a
        // first use cannot: none went to it), or another topic let go of above;
        // `send_batch` checks its records again after a refresh, which asks a
        // partitioner twice for each.
        if index.is_some() || let_go {
            st.refreshes += 1;
        }
        let state = found?;
        let config = state.config();
        let i = match index {
            Some(i) => i,
            None => {
                let name: Arc<str> = Arc::from(name);
                st.accs.push(TopicAcc {
                    state: Arc::downgrade(&state),
                    epoch,
                    name: name.clone(),
                    max_message_bytes: 0,
                    log_append_time: false,
                    compacted: false,
                    parts: Vec::new(),
                    weak_parts: Arc::from([]),
                });
                st.topics.insert(name, st.accs.len() - 1);
                st.accs.len() - 1
            }
        };
        let acc = &mut st.accs[i];
        acc.state = Arc::downgrade(&state);
        acc.epoch = epoch;
        acc.max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX);
        // A lowered max_message_bytes (the topic's config altered) also stops open
        // batches from growing past it.
        let limit = self
            .config
            .max_request_size
            .min(acc.max_message_bytes)
            .min(self.max_uncompressed)
            .saturating_sub(BATCH_OVERHEAD);
        for pa in &acc.parts {
            if let Some(b) = pa.open.lock().as_mut() {
                b.limit = b.limit.min(limit);
            }
        }
        acc.log_append_time = config.message_timestamp_type == TimestampType::LogAppendTime;
        acc.compacted = config.cleanup_policy != crate::topic::CleanupPolicy::Delete;
        acc.add_new_partitions(&state);
        Ok(i)
    }

    /// Whether `buffer_memory` takes `size` more bytes, once open batches gave back the
    /// memory they hold beyond their records.
    pub(super) fn memory_for(&self, st: &mut AccState, size: usize) -> bool {
        // (Saturating: `buffer_memory` and `batch_size` may both be near `usize::MAX`.)
        if st.used_memory.saturating_add(size) > self.config.buffer_memory {
            let reclaimed = st.reclaim_credit();
            st.used_memory -= reclaimed;
        }
        st.used_memory.saturating_add(size) <= self.config.buffer_memory
    }

    /// Hands closed batches to the linger thread to append (an async send's, which
    /// must not block); once the producer is closed, appends them here, as the thread
    /// is gone.
    pub(super) fn hand_to_linger(&self, mut batches: Vec<Closed>) {
        if batches.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            drop(st);
            self.ship_all(batches);
            return;
        }
        st.linger.ready.append(&mut batches);
        drop(st);
        self.cond.notify_all();
    }

    /// Waits while `buffer_memory` cannot take `size` more bytes, appending open
    /// batches to free it, up to `max_block_ms` from `started`.
    pub(super) fn wait_for_memory(
        &self,
        st: &mut parking_lot::MutexGuard<'_, AccState>,
        size: usize,
        started: Instant,
        to_ship: &mut Vec<Closed>,
    ) -> Result<()> {
        let deadline = started.checked_add(Duration::from_millis(self.config.max_block_ms));
        if !to_ship.is_empty() || !st.open.is_empty() || !st.linger.ready.is_empty() {
            // Free memory by appending what is open or ready (outside the lock).
            let mut batches = std::mem::take(to_ship);
            batches.append(&mut st.linger.ready);
            batches.extend(st.close_all());
            parking_lot::MutexGuard::unlocked(st, || self.ship_all(batches));
            // Other senders may take what this freed, each time: the wait is bounded
            // here too, not only while nothing is open.
            if deadline.is_some_and(|d| Instant::now() >= d)
                && st.used_memory + size > self.config.buffer_memory
            {
                return Err(Error::Timeout {
                    what: "buffer_memory to free up (max_block_ms)",
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            return Ok(());
        }
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

    /// Closes a batch: its ticket in its partition's queue and, for an idempotent
    /// producer, its sequence numbers. Both are taken under the partition's lock, so a
    /// partition's batches are numbered in the order they are appended.
    pub(super) fn close_batch(mut b: OpenBatch) -> Closed {
        let ticket = b.queue.next_ticket.fetch_add(1, Ordering::AcqRel);
        if let Some((id, epoch)) = b.producer {
            let mut seq = b.queue.sequence.lock();
            if seq.0 != epoch {
                // A new epoch numbers from 0.
                *seq = (epoch, 0);
            }
            let base = seq.1;
            seq.1 = add_sequence(base, b.builder.len() as i64);
            b.builder.set_producer(id, epoch, base);
        }
        Closed { batch: b, ticket }
    }
}
