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
    /// Buffers what a poll returned. A partition whose new records do not follow its
    /// buffered ones was read again from an earlier offset (its topic was deleted and
    /// created again, or its position was reset): what was buffered goes.
    pub(crate) fn add(&mut self, records: &ConsumerRecords) {
        for tp in records.partitions() {
            let queue = self.queues.entry(tp.clone()).or_default();
            let first = records.records(&tp).next().map(|r| r.offset());
            if first.is_some_and(|f| queue.back().is_some_and(|last| f <= last.offset())) {
                queue.clear();
            }
            queue.extend(records.records(&tp).map(|r| r.to_owned()));
        }
    }

    /// Drops what is buffered for partitions whose next offset to fetch (`position`)
    /// is not past it: the consumer went back (as above) with nothing fetched yet.
    pub(crate) fn drop_stale(&mut self, position: &mut dyn FnMut(&TopicPartition) -> Option<i64>) {
        for (tp, queue) in &mut self.queues {
            let Some(last) = queue.back().map(ConsumerRecord::offset) else {
                continue;
            };
            if position(tp).is_some_and(|p| p <= last) {
                queue.clear();
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use streamlog::{Consumer, ConsumerConfig, OffsetReset, Record, Store, TopicConfig};

    use super::*;

    /// A store with topics `a` and `b` (one partition each) holding records at the
    /// given timestamps, and a consumer assigned both, reading `max` records per poll.
    fn setup(a: &[i64], b: &[i64], max: usize) -> (tempfile::TempDir, Store, Consumer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (topic, stamps) in [("a", a), ("b", b)] {
            store.create_topic(topic, TopicConfig::default()).unwrap();
            let p = store.topic(topic).unwrap().partition(0).unwrap();
            for &ts in stamps {
                p.append(&[Record::new(ts, Some("k"), Some("v"))]).unwrap();
            }
        }
        let mut c = store
            .consumer(
                ConsumerConfig::new("g")
                    .auto_offset_reset(OffsetReset::Earliest)
                    .max_poll_records(max),
            )
            .unwrap();
        c.assign(&[TopicPartition::new("a", 0), TopicPartition::new("b", 0)])
            .unwrap();
        (dir, store, c)
    }

    fn inputs() -> Vec<TopicPartition> {
        vec![TopicPartition::new("a", 0), TopicPartition::new("b", 0)]
    }

    #[test]
    fn the_earliest_head_goes_first_and_a_lagging_input_holds_the_task() {
        let (_dir, _store, mut c) = setup(&[1, 4, 5], &[2, 3, 6], 100);
        let mut g = PartitionGroup::default();
        while g.queues.values().map(VecDeque::len).sum::<usize>() < 6 {
            g.add(&c.poll(Duration::ZERO).unwrap());
        }
        let mut order = Vec::new();
        while let Some(r) = g.next(&inputs(), &mut |_| false) {
            order.push(r.timestamp());
        }
        assert_eq!(order, [1, 2, 3, 4, 5, 6]);
        // `b` has nothing buffered but more in its log: the task waits.
        let (_dir, _store, mut c) = setup(&[1], &[2], 100);
        let mut g = PartitionGroup::default();
        g.add(&c.poll(Duration::ZERO).unwrap());
        g.remove(&[TopicPartition::new("b", 0)]);
        assert!(g.next(&inputs(), &mut |tp| tp.topic() == "b").is_none());
        assert_eq!(g.first_unprocessed(&TopicPartition::new("a", 0)), Some(0));
    }

    /// From a review: records buffered before the consumer went back (a topic deleted
    /// and created again, a position reset) were kept and processed as the new ones'
    /// predecessors, and their offset committed.
    #[test]
    fn records_from_before_the_consumer_went_back_are_dropped() {
        let (_dir, _store, mut c) = setup(&[1, 2, 3], &[], 100);
        let a = TopicPartition::new("a", 0);
        let mut g = PartitionGroup::default();
        g.add(&c.poll(Duration::ZERO).unwrap());
        assert_eq!(g.first_unprocessed(&a), Some(0));
        g.next(&inputs(), &mut |_| false).unwrap();
        assert_eq!(g.first_unprocessed(&a), Some(1));
        // Read again from 0: the new records replace the buffered ones.
        c.seek(&a, 0).unwrap();
        g.add(&c.poll(Duration::ZERO).unwrap());
        assert_eq!(g.queues[&a].len(), 3);
        assert_eq!(g.first_unprocessed(&a), Some(0));
        // Sent back with nothing fetched yet: what is buffered goes.
        g.next(&inputs(), &mut |_| false).unwrap();
        c.seek(&a, 1).unwrap();
        g.drop_stale(&mut |tp| c.position(tp).ok());
        assert_eq!(g.first_unprocessed(&a), None);
    }

    #[test]
    fn partitions_holding_too_many_records_are_paused_until_drained() {
        let stamps: Vec<i64> = (0..=MAX_BUFFERED as i64).collect();
        let (_dir, _store, mut c) = setup(&stamps, &[], 2000);
        let a = TopicPartition::new("a", 0);
        let mut g = PartitionGroup::default();
        while g.queues.get(&a).map_or(0, VecDeque::len) <= MAX_BUFFERED {
            g.add(&c.poll(Duration::ZERO).unwrap());
        }
        assert_eq!(g.flow(&[]), (vec![a.clone()], vec![]));
        g.next(&inputs(), &mut |_| false).unwrap();
        assert_eq!(g.flow(std::slice::from_ref(&a)), (vec![], vec![a.clone()]));
    }
}
