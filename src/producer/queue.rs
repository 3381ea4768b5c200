//! Appending closed batches: each partition's ordered queue, so batches are appended
//! in the order they closed although they are compressed in parallel, then the fsync
//! for `Acks::All` and resolving the deliveries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

use super::accumulator::Closed;
use super::delivery::BatchSlot;
use super::{Acks, DRAIN_CHUNK, Shared};
use crate::catalog::{AppendInfo, Counter, PartitionState};
use crate::error::Result;
use crate::format::batch::{EncodedBatch, add_sequence, set_base_sequence};

/// Closed batches of one partition are appended in the order they were closed (which
/// keeps per-key order) even though they are encoded and compressed in parallel. A
/// closed batch is handed to the queue; whichever shipper finds the queue idle appends
/// every batch that is ready, in ticket order, for everyone (the others return at once
/// and their futures resolve when it is done), so senders never wait for each other's
/// turn.
#[derive(Default)]
pub(super) struct PartQueue {
    /// Assigned under the partition's lock, so in closing order.
    pub(super) next_ticket: AtomicU64,
    /// Idempotence: the epoch the partition's sequences count under, and the sequence
    /// of the next batch closed. Taken under the partition's lock, as tickets are.
    pub(super) sequence: Mutex<(i16, i32)>,
    pub(super) state: Mutex<QueueState>,
}

#[derive(Default)]
pub(super) struct QueueState {
    pub(super) ready: BTreeMap<u64, (Sealed, Result<EncodedBatch>)>,
    pub(super) next_append: u64,
    pub(super) draining: bool,
    /// Idempotence: records of batches that failed (never appended) under an epoch.
    /// The log expects each batch to follow the last one it appended, so the
    /// sequences of later batches are moved back by this many.
    pub(super) skipped: (i16, i64),
}

/// What is left of a batch once encoded: what its completion needs.
pub(super) struct Sealed {
    pub(super) id: u64,
    pub(super) slot: Arc<BatchSlot>,
    pub(super) part: Arc<PartitionState>,
    pub(super) reserved: usize,
    /// Idempotence: the epoch, first sequence and record count of the batch.
    pub(super) sequence: Option<(i16, i32, i64)>,
    /// Its records, and its bytes as written (0 if it failed to encode): metrics.
    pub(super) records: u64,
    pub(super) encoded_len: u64,
    /// It holds a record without a key.
    pub(super) keyless: bool,
}

impl fmt::Debug for PartQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartQueue")
            .field("next_ticket", &self.next_ticket)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Ships `batches` (see [`ship`](Self::ship)); the wakers of their deliveries (and
    /// of readers woken by their appends) run once every one of them is appended and
    /// no queue is claimed by this thread any more: a task they poll inline may flush
    /// or close this producer, or send to a queue this thread drains.
    pub(super) fn ship_all(&self, batches: Vec<Closed>) {
        crate::catalog::deferring_wakes(|| {
            for c in batches {
                self.ship(c);
            }
        });
    }

    /// Encodes (compresses) a closed batch and hands it to its partition's queue; if no
    /// one is appending there, appends every ready batch in ticket order, fsyncs for
    /// `Acks::All`, resolves their futures and frees their memory.
    pub(super) fn ship(&self, c: Closed) {
        let Closed { batch: b, ticket } = c;
        let sequence = b
            .producer
            .map(|(_, epoch)| (epoch, b.builder.base_sequence(), b.builder.len() as i64));
        let records = b.builder.len() as u64;
        let encoded = b.builder.build();
        let encoded_len = encoded.as_ref().map_or(0, |e| e.len() as u64);
        let sealed = Sealed {
            id: b.id,
            slot: b.slot,
            part: b.part,
            reserved: b.reserved,
            sequence,
            records,
            encoded_len,
            keyless: b.keyless,
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
            let skipped = Self::skipped_before(&mut claim.0.skipped, b.sequence);
            let appended = parking_lot::MutexGuard::unlocked(&mut claim.0, || {
                let r = encoded.and_then(|mut e| {
                    // Checked at `send` too; the topic may have become compacted
                    // since, and compaction would remove the record once appended
                    // (Kafka's broker refuses the batch at its append).
                    if b.keyless && b.part.is_compacted() {
                        return Err(crate::catalog::keyless_on_compacted(&b.part.topic));
                    }
                    if let (Some((_, base, _)), true) = (b.sequence, skipped != 0) {
                        set_base_sequence(e.bytes_mut(), add_sequence(base, -skipped));
                    }
                    b.part.append_encoded(&mut e)
                });
                if r.is_ok() {
                    b.part.wake();
                }
                r
            });
            if let (Err(_), Some((_, _, count))) = (&appended, b.sequence) {
                // Never appended: the batches after it take its sequences.
                claim.0.skipped.1 += count;
            }
            done.push((b, appended));
            if done.len() == DRAIN_CHUNK {
                // Resolve what is appended before going on, so a long drain does not
                // hold back blocking waits and memory (async wakers still wait for the
                // end of the shipment: see `ship_all`).
                let chunk = std::mem::take(&mut done);
                parking_lot::MutexGuard::unlocked(&mut claim.0, || self.finish(chunk));
            }
        }
        drop(claim); // no longer draining
        self.finish(done);
    }

    /// Adds the batches of one `finish` to the store's producer totals.
    fn count_sent(&self, done: &[(Sealed, Result<AppendInfo>)], results: &[Result<(i64, i64)>]) {
        let (mut records, mut bytes, mut batches, mut errors) = (0u64, 0u64, 0u64, 0u64);
        for ((b, _), result) in done.iter().zip(results) {
            if result.is_ok() {
                records += b.records;
                bytes += b.encoded_len;
                batches += 1;
            } else {
                errors += b.records;
            }
        }
        let stats = self.catalog.stats();
        stats.add(Counter::RecordsSent, records);
        stats.add(Counter::BytesSent, bytes);
        stats.add(Counter::BatchesSent, batches);
        stats.add(Counter::RecordErrors, errors);
    }

    /// How far back to move the sequences of a batch sent under `sequence`'s epoch,
    /// given the records `skipped` under the queue's current one (reset by a new epoch).
    fn skipped_before(skipped: &mut (i16, i64), sequence: Option<(i16, i32, i64)>) -> i64 {
        match sequence {
            Some((epoch, _, _)) if epoch != skipped.0 => {
                *skipped = (epoch, 0);
                0
            }
            Some(_) => skipped.1,
            None => 0,
        }
    }

    /// Completes appended batches of one partition queue: one fsync covering all of
    /// them for `Acks::All`, then their futures and their memory.
    pub(super) fn finish(&self, done: Vec<(Sealed, Result<crate::catalog::AppendInfo>)>) {
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
        self.count_sent(&done, &results);
        let mut freed = 0;
        let mut ids = Vec::with_capacity(done.len());
        let mut wakers = Vec::new();
        for ((b, _), mut result) in done.into_iter().zip(results) {
            if let (Err(e), Some(txn)) = (&result, &self.txn) {
                // A partition refusing the epoch: the producer is fenced (Kafka's
                // ProducerFencedException), by what `send_failed` learnt.
                if let Some(fenced) = txn.send_failed(e) {
                    result = Err(fenced);
                }
            }
            if let Err(e) = &result {
                tracing::warn!(
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
        wakers.append(&mut st.memory_wakers);
        drop(st);
        self.cond.notify_all();
        // Last (the application's code), not unwinding through the appends of other
        // batches and senders this thread is completing.
        crate::catalog::wake_all(wakers, "the producer completed its send");
    }
}
