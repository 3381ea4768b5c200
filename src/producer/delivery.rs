//! Delivery: what a send returns ([`DeliveryFuture`], [`BatchDelivery`]) and the
//! per-batch slot they wait on, resolved with [`RecordMetadata`] once the batch meets
//! the producer's acks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

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
pub(super) enum SlotState {
    Pending(Vec<Waker>),
    Done(Result<(i64, i64)>),
}

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug)]
pub(super) struct BatchSlot {
    pub(super) state: Mutex<SlotState>,
    pub(super) cond: Condvar,
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) log_append_time: bool,
}

impl BatchSlot {
    pub(super) fn new(topic: Arc<str>, partition: i32, log_append_time: bool) -> Arc<Self> {
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
    pub(super) fn resolve(&self, result: Result<(i64, i64)>) -> Vec<Waker> {
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
pub(super) struct PendingDelivery {
    pub(super) slot: Arc<BatchSlot>,
    pub(super) index: i64,
    pub(super) timestamp: i64,
}

impl PendingDelivery {
    pub(super) fn metadata(&self, done: &Result<(i64, i64)>) -> Result<RecordMetadata> {
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

/// The result of a [`Producer::send`](super::Producer::send): a `std::future::Future` (for async code) with a
/// blocking [`wait`](Self::wait). Resolves when the record meets the producer's [`Acks`](super::Acks).
#[derive(Debug)]
#[must_use = "a send is confirmed only by waiting for (or awaiting) its future"]
pub struct DeliveryFuture {
    pub(super) inner: Result<PendingDelivery, Option<RecordMetadata>>,
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

/// The result of a [`Producer::send_batch`](super::Producer::send_batch): one future for all of its records (a
/// `std::future::Future` with a blocking [`wait`](Self::wait)). Resolves when every
/// record meets the producer's [`Acks`](super::Acks), to their metadata in the order they were given,
/// or to the first error of their batches.
#[derive(Debug)]
#[must_use = "a send is confirmed only by waiting for (or awaiting) its future"]
pub struct BatchDelivery {
    /// The batches the records went into.
    pub(super) slots: Vec<Arc<BatchSlot>>,
    /// Per record: its batch (an index into `slots`), its index there, its timestamp.
    pub(super) records: Vec<(u32, u32, i64)>,
    /// `Acks::None`: resolved at once, offsets -1.
    pub(super) unacknowledged: bool,
    /// Slots before this one are known to be done (`poll`).
    pub(super) done: usize,
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
    pub(super) fn metadata(&self) -> Result<Vec<RecordMetadata>> {
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
