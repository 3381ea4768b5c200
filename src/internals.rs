//! Thin entry points for streamlog's own tests, benches and fuzz harness (the
//! `streamlog-testkit` crate). Enabled by the `internals` feature; not a stable API.
//!
//! # Test hooks
//!
//! States of the library's own threads that a test must see before it acts, so that it
//! orders two events without sleeping: [`sleeping_readers`] (a blocked `poll` or
//! `wait_for`), [`linger_thread_waits_for_a_deadline`] (a producer's linger thread).

use crate::{Producer, Store};

/// How many readers of `store` ([`Consumer::poll`](crate::Consumer::poll),
/// [`Partition::wait_for`](crate::Partition::wait_for)) found nothing to return and
/// sleep until an append (or a group change) wakes them. Each is counted from just after
/// its last look at the log: an append from then on must wake it.
pub fn sleeping_readers(store: &Store) -> usize {
    store.sleeping_readers()
}

/// Whether `producer`'s linger thread sleeps until the `linger_ms` deadline of an open
/// batch (rather than idle with no open batch, or appending).
pub fn linger_thread_waits_for_a_deadline(producer: &Producer) -> bool {
    producer.linger_waits_for_a_deadline()
}

/// How many partitions `producer` holds accumulators (and so the partitions' state)
/// for: those of the topics it has sent to that still exist.
pub fn producer_partitions_held(producer: &Producer) -> usize {
    producer.partitions_held()
}

/// Bytes the buffers of `producer`'s open batches have allocated (what `buffer_memory`
/// bounds, besides the batches being appended).
pub fn producer_open_batch_allocations(producer: &Producer) -> usize {
    producer.open_batch_allocations()
}
