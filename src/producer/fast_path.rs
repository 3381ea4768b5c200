//! Finding a record's partition without the producer's lock.
//!
//! Every send used to take the producer-wide lock to look up its topic's cached
//! metadata and partition, even when the record then went into an open batch under the
//! partition's own lock: threads sending to their own partitions took turns on one lock
//! (its cache line moving between cores at every record). Each thread now remembers the
//! last topic it sent to (of which producer, under which metadata epoch, with each
//! partition's accumulator), so a send whose partition is known at once (given, or
//! computed by the partitioner, which is `Sync`) finds it without the lock. Anything
//! else (another topic, metadata that changed, a partition past the cached ones, a
//! record that breaks a limit) takes the locked path, which also reports the errors.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::accumulator::{AccState, PartAcc};
use super::{BATCH_OVERHEAD, ProducerRecord, Shared};

/// Gives each producer an id its threads' caches name it by (an address could be
/// reused by a later producer).
static NEXT_PRODUCER: AtomicU64 = AtomicU64::new(1);

pub(super) fn producer_id() -> u64 {
    NEXT_PRODUCER.fetch_add(1, Ordering::Relaxed)
}

/// The topic this thread last sent to.
struct Remembered {
    producer: u64,
    topic: Arc<str>,
    /// The store's metadata epoch the accumulators were cached under.
    epoch: u64,
    compacted: bool,
    /// The largest record (its size plus a batch's overhead) every limit takes.
    max_size: usize,
    /// Weak: a thread's cache must not keep a closed producer's partitions (their logs,
    /// mappings, a deleted topic's files) alive until that thread sends again. Shared
    /// with the topic's accumulator, so remembering costs one reference count.
    parts: Arc<[Weak<PartAcc>]>,
}

thread_local! {
    static LAST: RefCell<Option<Remembered>> = const { RefCell::new(None) };
}

impl Shared {
    /// The partition of `record` and its accumulator if this thread's cache knows them
    /// and the record needs none of the locked path's checks; `None` otherwise. With
    /// the accumulator comes the partition a keyless record was given by the
    /// partitioner (sticky: it must be asked once per record), for the locked path to
    /// use if the batch cannot take the record; a keyed record is hashed again there,
    /// with the topic's current partition count.
    pub(super) fn cached_partition(
        &self,
        record: &ProducerRecord<'_>,
        size: usize,
        custom: Option<i32>,
    ) -> Option<(Arc<PartAcc>, Option<i32>)> {
        if record
            .timestamp
            .is_some_and(|t| crate::format::batch::check_timestamp(t).is_err())
        {
            return None;
        }
        let epoch = self.catalog.metadata_epoch();
        LAST.with(|last| {
            let last = last.borrow();
            let r = last.as_ref()?;
            if r.producer != self.id
                || r.epoch != epoch
                || *r.topic != *record.topic
                || (r.compacted && record.key.is_none())
                || size + BATCH_OVERHEAD > r.max_size
            {
                return None;
            }
            let n = i32::try_from(r.parts.len()).ok()?;
            let (p, sticky) = match record.partition.or(custom) {
                Some(p) => (p, None),
                None => {
                    let p = self
                        .partitioner
                        .partition(&record.topic, record.key_bytes(), size, n);
                    (p, record.key.is_none().then_some(p))
                }
            };
            Some((r.parts.get(usize::try_from(p).ok()?)?.upgrade()?, sticky))
        })
    }

    /// Remembers topic `topic` of `st` (just located under the lock) for this thread.
    pub(super) fn remember(&self, st: &AccState, topic: usize) {
        let acc = &st.accs[topic];
        let epoch = self.catalog.metadata_epoch();
        if acc.epoch != epoch {
            return;
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some(r) = last.as_ref()
                && r.producer == self.id
                && r.epoch == epoch
                && Arc::ptr_eq(&r.topic, &acc.name)
                && Arc::ptr_eq(&r.parts, &acc.weak_parts)
            {
                return;
            }
            let max_size = [
                self.config.max_request_size,
                acc.max_message_bytes,
                self.config.buffer_memory,
                self.max_uncompressed,
            ]
            .into_iter()
            .min()
            .unwrap_or(0);
            *last = Some(Remembered {
                producer: self.id,
                topic: acc.name.clone(),
                epoch,
                compacted: acc.compacted,
                max_size,
                parts: acc.weak_parts.clone(),
            });
        });
    }
}
