//! [`Producer::send_async`]: a send for async code. Where [`Producer::send`] blocks its
//! thread (waiting for `buffer_memory`, appending a batch, and for `Acks::All` its
//! fsync), this future never blocks the task polling it: it waits for memory by
//! registering its waker, and the batches it closes are appended (and synced) by the
//! producer's linger thread, started at the first async send if `linger_ms` is 0
//! (exceptions: see [`Producer::send_async`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{DeliveryFuture, Handle, Producer, ProducerRecord};
use crate::error::Result;

/// The future of [`Producer::send_async`]: resolves to the record's [`DeliveryFuture`]
/// once it is in a batch.
///
/// Cancellation-safe: the record is added to a batch only in the poll that returns
/// `Ready`, so dropping this future before then sends nothing.
#[must_use = "a send does nothing unless polled"]
pub struct SendFuture<'a> {
    producer: &'a Producer,
    record: ProducerRecord<'a>,
    /// Checked once, at the first poll: its estimated size, a custom partitioner's
    /// choice, and its timestamp.
    prepared: Option<(usize, Option<i32>, i64)>,
    /// It resolved: polling again must not send the record again.
    done: bool,
}

impl std::fmt::Debug for SendFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("topic", &self.record.topic)
            .field("prepared", &self.prepared.is_some())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Sends a record from async code: as [`send`](Self::send), but instead of blocking
    /// the thread while `buffer_memory` is full it waits (the task yields until a batch
    /// is appended and frees memory), and it appends no batch itself: the producer's
    /// linger thread does, so neither an append nor an `Acks::All` fsync runs on the
    /// executor. Resolves to the record's [`DeliveryFuture`], itself a future of its
    /// [`RecordMetadata`](super::RecordMetadata). Works on any executor. Two
    /// exceptions run on the polling thread: a transactional producer's first send to a
    /// partition in a transaction records the partition in `__transaction_state` (an
    /// append, as Kafka's `AddPartitionsToTxn`), and a poll racing
    /// [`close`](Self::close) appends its batches itself (the linger thread is gone).
    /// Polled again after it resolved, it returns `InvalidArgument` and sends nothing.
    ///
    /// `max_block_ms` does not apply: bound the wait with your runtime's timeout (the
    /// future is cancellation-safe: dropped before it resolves, it sent nothing).
    /// Records one task sends to one partition are appended in the order their
    /// futures resolved.
    ///
    /// ```
    /// use streamlog::{ProducerConfig, ProducerRecord, Store, TopicConfig};
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// let delivery = producer.send_async(ProducerRecord::new("clicks").value("home")).await?;
    /// let meta = delivery.await?;
    /// assert_eq!(meta.offset, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send), except `Timeout`.
    pub fn send_async<'a>(&'a self, record: ProducerRecord<'a>) -> SendFuture<'a> {
        SendFuture {
            producer: self,
            record,
            prepared: None,
            done: false,
        }
    }
}

impl Handle {
    /// Starts the linger thread if the producer has none (`linger_ms` 0): async sends
    /// leave their batches to it.
    fn ensure_linger_thread(&self) -> Result<()> {
        let mut thread = self.linger.lock();
        if thread.is_none()
            && !self
                .shared
                .closed
                .load(std::sync::atomic::Ordering::Acquire)
        {
            *thread = Some(self.shared.clone().spawn_linger()?);
        }
        Ok(())
    }
}

impl Future for SendFuture<'_> {
    type Output = Result<DeliveryFuture>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(crate::error::Error::InvalidArgument {
                name: "SendFuture",
                reason: "polled after it resolved (its record was sent once)".into(),
            }));
        }
        let handle = &this.producer.handle;
        let shared = &handle.shared;
        let prepared = match this.prepared {
            Some(p) => p,
            None => {
                let first = shared.check_open().and_then(|()| {
                    handle.ensure_linger_thread()?;
                    let (size, custom) = shared.prepare(&this.record)?;
                    let timestamp = this
                        .record
                        .timestamp
                        .unwrap_or_else(|| shared.catalog.recent_ms());
                    Ok((size, custom, timestamp))
                });
                match first {
                    Ok(p) => *this.prepared.insert(p),
                    Err(e) => {
                        // Resolved: polled again (say, once the topic exists), it must
                        // not send after all.
                        this.done = true;
                        return Poll::Ready(Err(shared.send_error(e)));
                    }
                }
            }
        };
        let (size, custom, timestamp) = prepared;
        let mut to_ship = Vec::new();
        // Batches close on `batch_size` only: with `linger_ms` 0 the linger thread
        // appends each open batch at once anyway.
        let added = shared.add_one(
            (&this.record, size, timestamp, custom),
            false,
            &mut to_ship,
            Some(cx.waker()),
        );
        shared.hand_to_linger(to_ship);
        this.done = !matches!(added, Ok(None));
        match added {
            // A new open batch wakes an idle linger thread (`push`).
            Ok(Some((slot, index))) => Poll::Ready(Ok(shared.delivery(slot, index, timestamp))),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(shared.send_error(e))),
        }
    }
}
