//! Receiving without blocking a thread: [`Consumer::recv`], a future of the next
//! records, and [`Consumer::stream`], a [`futures_core::Stream`] of records. Both work
//! on any executor: a task waiting for records registers its waker with the store's
//! notifier, which every append (and every group change) wakes; no thread per consumer,
//! no timer, no busy polling.
//!
//! Cancellation-safe: records are taken from the partitions (positions moved) only in
//! the same poll that returns them, so dropping a pending future or stream loses no
//! record and moves no position.
//!
//! Wakers are called on the thread that caused the wake-up (an append, a flush, a
//! group or topic change, the maintenance thread), at times while that thread holds
//! one of the store's internal locks. Executors schedule the woken task, as every
//! common one does. A waker that instead polls its task inline, on the calling thread,
//! must not call back into the store from there: the call may wait for a lock its own
//! thread holds.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Consumer, ConsumerRecord, ConsumerRecords};
use crate::error::Result;

impl Consumer {
    /// The next records, as a future: what [`poll`](Self::poll) returns, but waiting for
    /// them without blocking the thread (and without a timeout: wrap it in your
    /// runtime's timeout if you need one). Runs the group protocol and auto-commit as
    /// `poll` does; while it waits, its group membership stays alive (as a Kafka
    /// consumer blocked in `poll`), and a member of its group that stops polling is
    /// expired on time by the store's maintenance thread, which wakes it to take over
    /// the partitions (with `background_maintenance(false)`, at the next append or
    /// group change instead).
    ///
    /// ```
    /// use streamlog::{ConsumerConfig, OffsetReset, Record, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// store.topic("clicks")?.partition(0)?.append(&[Record::new(0, Some("k"), Some("v"))])?;
    /// let mut consumer = store.consumer(
    ///     ConsumerConfig::new("analytics").auto_offset_reset(OffsetReset::Earliest),
    /// )?;
    /// consumer.subscribe(["clicks"])?;
    /// // Any executor; here the smallest one.
    /// let records = block_on(consumer.recv())?;
    /// assert_eq!(records.len(), 1);
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #     }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    pub fn recv(&mut self) -> Recv<'_> {
        Recv {
            consumer: self,
            waiting: false,
        }
    }

    /// The records of the assigned partitions one by one, as a
    /// [`futures_core::Stream`] that never ends (until an error: it then yields the
    /// error, and goes on if polled again). Records of one [`recv`](Self::recv) are
    /// yielded before the next is awaited; dropping the stream gives back those not
    /// yet yielded: each of their partitions' position returns to the first of them, so
    /// a later poll (or the next owner, after a commit) reads them.
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream {
            consumer: self,
            buffered: None,
            yielded: 0,
            waiting: false,
        }
    }

    /// One attempt of [`recv`](Self::recv): records, or the waker registered (or, if
    /// the store changed during the attempt, woken at once: the task is polled again
    /// instead of this poll checking again, so a busy store, whose appends to other
    /// partitions move the store-wide signal during every attempt, cannot hold the
    /// executor's thread in one poll).
    fn poll_records(
        &mut self,
        cx: &mut Context<'_>,
        waiting: &mut bool,
    ) -> Poll<Result<ConsumerRecords>> {
        let attempt = (|| {
            self.check_open()?;
            self.check_not_in_callback("recv")?;
            self.check_reading("recv")?;
            let seen = self.sync_and_commit()?;
            // Checked again after the sequence was read: a close that came between the
            // check above and that read woke no one later (its wake-ups were counted
            // in `seen`), and this task would wait for ever.
            self.check_open()?;
            let records = self.fetch()?;
            Ok((seen, records))
        })();
        let (seen, records) = match attempt {
            Ok(r) => r,
            Err(e) => {
                self.set_waiting(waiting, false);
                return Poll::Ready(Err(e));
            }
        };
        if !records.is_empty() {
            self.set_waiting(waiting, false);
            return Poll::Ready(Ok(records));
        }
        if !self.catalog.notifier().register(cx.waker(), seen) {
            cx.waker().wake_by_ref();
        }
        self.set_waiting(waiting, true);
        Poll::Pending
    }

    /// Tells the group coordinator whether this member waits in `recv` (or `poll`).
    pub(super) fn set_waiting(&self, waiting: &mut bool, now: bool) {
        // Waiting is told every time (cheap): the member may have rejoined under a new
        // id since this was last set, and its flag starts clear.
        if *waiting == now && !now {
            return;
        }
        *waiting = now;
        if let Some(m) = &self.membership {
            self.groups.set_waiting(&m.group, &m.member_id, now);
        }
    }
}

/// The future of [`Consumer::recv`].
#[must_use = "a future does nothing unless polled"]
#[derive(Debug)]
pub struct Recv<'a> {
    consumer: &'a mut Consumer,
    waiting: bool,
}

impl Future for Recv<'_> {
    type Output = Result<ConsumerRecords>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = this.consumer.poll_records(cx, &mut this.waiting);
        if let Poll::Ready(Ok(records)) = &polled {
            this.consumer.count_consumed(records.len());
        }
        polled
    }
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiting;
        self.consumer.set_waiting(&mut waiting, false);
    }
}

/// The stream of [`Consumer::stream`].
#[must_use = "a stream does nothing unless polled"]
pub struct RecordStream<'a> {
    consumer: &'a mut Consumer,
    buffered: Option<super::IntoIter>,
    /// Records of `buffered` yielded: counted as consumed when it is refilled or the
    /// stream dropped (those not yielded go back then, uncounted).
    yielded: usize,
    waiting: bool,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("consumer", &self.consumer)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.buffered.as_mut().and_then(Iterator::next) {
                this.yielded += 1;
                return Poll::Ready(Some(Ok(r)));
            }
            match this.consumer.poll_records(cx, &mut this.waiting) {
                Poll::Ready(Ok(records)) => {
                    this.consumer
                        .count_consumed(std::mem::take(&mut this.yielded));
                    this.buffered = Some(records.into_iter());
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for RecordStream<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiting;
        self.consumer.set_waiting(&mut waiting, false);
        self.consumer.count_consumed(self.yielded);
        // Records fetched and not yielded: positions go back to the first of each
        // partition's, or an auto-commit (at close, say) would skip them.
        let mut first: Vec<(crate::topic::TopicPartition, i64)> = Vec::new();
        for r in self.buffered.take().into_iter().flatten() {
            if !first
                .iter()
                .any(|(tp, _)| tp.topic() == r.topic() && tp.partition() == r.partition())
            {
                first.push((
                    crate::topic::TopicPartition::new(r.topic(), r.partition()),
                    r.offset(),
                ));
            }
        }
        for (tp, offset) in first {
            self.consumer.give_back(&tp, offset);
        }
    }
}
