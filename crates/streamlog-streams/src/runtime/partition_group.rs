//! Records polled and not yet processed, per input partition, and the choice of the next
//! one to process (Kafka Streams' `PartitionGroup`): a task takes the record with the
//! smallest timestamp among the heads of its partitions, so the records of several
//! topics (a merge, a stream-table join) are processed in time order whatever order the
//! consumer returned them in. An input with nothing buffered but more in its log holds
//! its task back until that is fetched (Kafka's `max.task.idle.ms` 0); an input that is
//! caught up does not.
//!
//! Positions to commit come from here too: a partition's first unprocessed record, not
//! the consumer's position, which is past everything buffered.

use std::collections::{BTreeMap, VecDeque};

use streamlog::{ConsumerRecord, ConsumerRecords, TopicPartition};

/// Buffered records of one partition past which it is paused until its task catches up
/// (Kafka's `buffered.records.per.partition`).
pub(crate) const MAX_BUFFERED: usize = 1000;

#[derive(Default)]
pub(crate) struct PartitionGroup {
    queues: BTreeMap<TopicPartition, VecDeque<ConsumerRecord>>,
}

impl PartitionGroup {
    /// Buffers what a poll returned.
    pub(crate) fn add(&mut self, records: &ConsumerRecords) {
        for tp in records.partitions() {
            let queue = self.queues.entry(tp.clone()).or_default();
            queue.extend(records.records(&tp).map(|r| r.to_owned()));
        }
    }

    /// Whether nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty)
    }

    /// The offset of the first unprocessed record of `tp`, if one is buffered.
    pub(crate) fn first_unprocessed(&self, tp: &TopicPartition) -> Option<i64> {
        self.queues
            .get(tp)
            .and_then(VecDeque::front)
            .map(ConsumerRecord::offset)
    }

    /// Forgets the records of partitions no longer owned.
    pub(crate) fn remove(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.queues.remove(tp);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queues.clear();
    }

    /// Partitions holding more than [`MAX_BUFFERED`] records (to pause), and those of
    /// `paused` that hold fewer (to resume).
    pub(crate) fn flow(
        &self,
        paused: &[TopicPartition],
    ) -> (Vec<TopicPartition>, Vec<TopicPartition>) {
        let len = |tp: &TopicPartition| self.queues.get(tp).map_or(0, VecDeque::len);
        let pause = self
            .queues
            .iter()
            .filter(|(tp, q)| q.len() > MAX_BUFFERED && !paused.contains(tp))
            .map(|(tp, _)| tp.clone())
            .collect();
        let resume = paused
            .iter()
            .filter(|tp| len(tp) <= MAX_BUFFERED)
            .cloned()
            .collect();
        (pause, resume)
    }

    /// The next record of the task reading `inputs`: the earliest head among them (the
    /// first input on a tie), or `None` when nothing is buffered or an input with
    /// nothing buffered is `lagging` (has more in its log than was fetched).
    pub(crate) fn next(
        &mut self,
        inputs: &[TopicPartition],
        lagging: &mut dyn FnMut(&TopicPartition) -> bool,
    ) -> Option<ConsumerRecord> {
        let mut earliest: Option<(i64, &TopicPartition)> = None;
        for tp in inputs {
            match self.queues.get(tp).and_then(VecDeque::front) {
                Some(r) if earliest.is_none_or(|(t, _)| r.timestamp() < t) => {
                    earliest = Some((r.timestamp(), tp));
                }
                Some(_) => {}
                None if lagging(tp) => return None,
                None => {}
            }
        }
        let (_, tp) = earliest?;
        self.queues.get_mut(tp).and_then(VecDeque::pop_front)
    }
}
