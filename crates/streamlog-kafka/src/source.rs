//! Kafka -> store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use streamlog::{Compression, Header, Partition, Record, Store, TopicPartition};

use crate::config::{KafkaSourceConfig, StartFrom, check_common};
use crate::error::{Error, Result, kafka};
use crate::headers::{KAFKA_OFFSET_HEADER, encode_offset, find_offset};
use crate::kafka::{check_fixed_settings, client_config, is_fatal, partition_count};
use crate::mirror::{MirrorStats, Shared};

/// The consumer's context: notes the partitions a rebalance takes away, and starts
/// those it assigns at Kafka's end where [`StartFrom::Latest`] applies.
#[derive(Default)]
struct SourceContext {
    revoked: parking_lot::Mutex<Vec<TopicPartition>>,
    /// `StartFrom::Latest`: partitions with no mirrored record in the store and no
    /// offset committed for the group start at Kafka's end. (The consumer's
    /// `auto.offset.reset` is `earliest` whatever `start` says: librdkafka also applies
    /// it to a position Kafka's retention or DeleteRecords passed, and `latest` there
    /// would skip every record Kafka still holds.)
    latest: bool,
    /// Where each partition the store holds mirrored records of resumes (the Kafka
    /// offset after the last one): a partition assigned starts there, not at the
    /// group's offset (another member, writing to another store, may have moved it;
    /// the store is the truth).
    resume: parking_lot::Mutex<BTreeMap<TopicPartition, i64>>,
    /// Partitions started at Kafka's end (`StartFrom::Latest`) and where that was, to
    /// commit for the group: a partition no record reached in this run has no other
    /// position to commit, and the next run would start at the end again, past every
    /// record Kafka received in between.
    starts: parking_lot::Mutex<BTreeMap<TopicPartition, i64>>,
    /// The group's last word was an assignment (not a revocation): an empty assignment
    /// then means the group gave this member nothing, not that none came yet.
    assigned: AtomicBool,
    timeout: Duration,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let resume = self.resume.lock().clone();
                for (tp, next) in &resume {
                    if tpl.find_partition(tp.topic(), tp.partition()).is_some()
                        && let Err(e) = tpl.set_partition_offset(
                            tp.topic(),
                            tp.partition(),
                            Offset::Offset(*next),
                        )
                    {
                        log::warn!("positioning {tp} at {next}: {e}");
                    }
                }
                if self.latest {
                    let copied = resume.into_keys().collect();
                    match start_at_end_if_uncommitted(consumer, tpl, &copied, self.timeout) {
                        Ok(ends) => self.starts.lock().extend(ends),
                        // Starts at the group's offset, or Kafka's earliest: more is
                        // copied than asked, nothing skipped.
                        Err(e) => log::warn!("reading the group's committed offsets: {e}"),
                    }
                }
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                // Failed, the assignment is not the group's word: not caught up on it.
                self.assigned.store(result.is_ok(), Ordering::Release);
                result
            }
            _ => {
                self.assigned.store(false, Ordering::Release);
                if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    let gone = tpl
                        .elements()
                        .into_iter()
                        .map(|e| TopicPartition::new(e.topic(), e.partition()))
                        .collect::<Vec<_>>();
                    // Its next owner commits its own start.
                    let mut starts = self.starts.lock();
                    for tp in &gone {
                        starts.remove(tp);
                    }
                    drop(starts);
                    self.revoked.lock().extend(gone);
                } else {
                    log::error!("rebalancing: {}", RDKafkaErrorCode::from(err));
                }
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = result {
            log::error!("applying a rebalance: {e}");
        }
    }
}

/// Sets the partitions of `tpl` that are not `copied` and have no offset committed for
/// the group to start at Kafka's end (`StartFrom::Latest`), and returns where that is.
/// The end is read here rather than left to the consumer (`Offset::End`), which reports
/// no position until a record arrives: it is committed for the group, so that the next
/// run resumes there. (The consumer reads `read_committed`, for which Kafka's end, as
/// its `ListOffsets` requests and its own reset give it, is the last stable offset.)
fn start_at_end_if_uncommitted<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &mut TopicPartitionList,
    copied: &BTreeSet<TopicPartition>,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<Vec<(TopicPartition, i64)>> {
    let mut ask = TopicPartitionList::new();
    for e in tpl.elements() {
        let tp = TopicPartition::new(e.topic(), e.partition());
        if !copied.contains(&tp) && matches!(e.offset(), Offset::Invalid | Offset::Stored) {
            ask.add_partition(e.topic(), e.partition());
        }
    }
    let mut ends = Vec::new();
    if ask.count() == 0 {
        return Ok(ends);
    }
    let committed = consumer.committed_offsets(ask, timeout)?;
    let mut uncommitted = TopicPartitionList::new();
    for e in committed.elements() {
        if let Err(err) = e.error() {
            // Not known to be uncommitted (an offset of a transaction not yet decided,
            // say): left to the group's offset, or Kafka's earliest.
            log::warn!(
                "reading the group's offset of {}-{}: {err}",
                e.topic(),
                e.partition()
            );
            continue;
        }
        if e.offset().to_raw().is_none_or(|o| o < 0) {
            uncommitted.add_partition_offset(e.topic(), e.partition(), Offset::End)?;
        }
    }
    if uncommitted.count() == 0 {
        return Ok(ends);
    }
    // Kafka's end of each, in one request per broker (a time of "latest"); before it
    // answers, nothing is set: a failure leaves them all to Kafka's earliest in a
    // rebalance (more copied, nothing skipped), and fails the start in `start`.
    let found = consumer.offsets_for_times(uncommitted, timeout)?;
    for e in found.elements() {
        match (e.error(), e.offset()) {
            (Ok(()), Offset::Offset(end)) if end >= 0 => {
                tpl.set_partition_offset(e.topic(), e.partition(), Offset::Offset(end))?;
                ends.push((TopicPartition::new(e.topic(), e.partition()), end));
            }
            (result, offset) => log::warn!(
                "reading Kafka's end of {}-{} ({result:?}, {offset:?}): starting at the \
                 earliest offset",
                e.topic(),
                e.partition()
            ),
        }
    }
    Ok(ends)
}

/// A source ready to run: store topics checked, start positions found.
pub(crate) struct Source {
    config: KafkaSourceConfig,
    shared: Arc<Shared>,
    consumer: BaseConsumer<SourceContext>,
    /// The store partitions written, by Kafka partition (same names and numbers).
    parts: BTreeMap<TopicPartition, Partition>,
    /// The Kafka offset after the last record each store partition holds.
    next: BTreeMap<TopicPartition, i64>,
    /// Group mode: partitions whose first record since their assignment was checked
    /// (a partition a rebalance took away is checked again when it comes back: another
    /// member, writing to another store, may have moved the group's offset meanwhile).
    positioned: std::cell::RefCell<BTreeSet<TopicPartition>>,
    /// A commit of where `Latest` starts put partitions failed: left to the periodic
    /// commit (not tried again after every poll) until one succeeds.
    starts_failed: std::cell::Cell<bool>,
}

impl Source {
    pub(crate) fn start(
        store: &Store,
        config: KafkaSourceConfig,
        shared: Arc<Shared>,
    ) -> Result<Source> {
        check_common(&config.bootstrap, config.poll_ms, config.timeout_ms)?;
        if config.max_batch_records == 0 {
            return Err(Error::InvalidConfig {
                name: "max_batch_records",
                reason: "must be at least 1".into(),
            });
        }
        let topics: Vec<String> = match &config.partitions {
            Some(ps) => ps
                .iter()
                .map(|tp| tp.topic().to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            None => config.topics.clone(),
        };
        if topics.is_empty() {
            return Err(Error::InvalidConfig {
                name: "topics",
                reason: "no topic or partition to mirror".into(),
            });
        }
        // Before any client sees the name: librdkafka refuses one past 512 bytes with
        // a null handle, which rdkafka's metadata request unwraps (a panic).
        for topic in &topics {
            if let Err(e) = streamlog::validate_topic_name(topic) {
                return Err(Error::InvalidConfig {
                    name: if config.partitions.is_some() {
                        "partitions"
                    } else {
                        "topics"
                    },
                    reason: e.to_string(),
                });
            }
        }
        check_fixed_settings(&config.kafka, CONSUMER_SETTINGS, CONSUMER_ALIASES)?;
        let mut ours = vec![("group.id", config.group_id.as_str())];
        ours.extend_from_slice(CONSUMER_SETTINGS);
        let timeout = Duration::from_millis(config.timeout_ms);
        let context = SourceContext {
            latest: config.start == StartFrom::Latest,
            timeout,
            ..SourceContext::default()
        };
        let consumer: BaseConsumer<SourceContext> =
            client_config(&config.bootstrap, &ours, &config.kafka)
                .create_with_context(context)
                .map_err(|e| kafka("creating the consumer", e))?;
        let mut parts = BTreeMap::new();
        let mut next = BTreeMap::new();
        for topic in &topics {
            let Some(count) = partition_count(consumer.client(), topic, timeout)? else {
                return Err(Error::UnknownTopic {
                    side: "Kafka",
                    topic: topic.clone(),
                });
            };
            let t = match store.topic(topic) {
                Ok(t) => t,
                Err(_) => {
                    store.create_topic(topic, config.topic_config.clone().partitions(count))?;
                    store.topic(topic)?
                }
            };
            if t.partition_count() != count {
                return Err(Error::PartitionMismatch {
                    topic: topic.clone(),
                    store: t.partition_count(),
                    kafka: count,
                });
            }
            for p in 0..count {
                let tp = TopicPartition::new(topic.clone(), p);
                let part = t.partition(p)?;
                if let Some(o) = last_kafka_offset(&part)? {
                    let watermarks = consumer
                        .fetch_watermarks(topic, p, timeout)
                        .map_err(|e| kafka(format!("reading the watermarks of {tp}"), e))?;
                    next.insert(tp.clone(), resume_offset(&tp, o, watermarks)?);
                }
                parts.insert(tp, part);
            }
        }
        consumer.context().resume.lock().clone_from(&next);
        match &config.partitions {
            Some(ps) => {
                let mut tpl = TopicPartitionList::new();
                for tp in ps {
                    if !parts.contains_key(tp) {
                        return Err(Error::UnknownTopic {
                            side: "Kafka",
                            topic: tp.to_string(),
                        });
                    }
                    // Without a mirrored record, Kafka's committed offset, else the reset.
                    let at = next.get(tp).map_or(Offset::Stored, |o| Offset::Offset(*o));
                    tpl.add_partition_offset(tp.topic(), tp.partition(), at)
                        .map_err(|e| kafka(format!("assigning {tp}"), e))?;
                }
                if config.start == StartFrom::Latest {
                    let ends =
                        start_at_end_if_uncommitted(&consumer, &mut tpl, &BTreeSet::new(), timeout)
                            .map_err(|e| kafka("reading the group's committed offsets", e))?;
                    consumer.context().starts.lock().extend(ends);
                }
                consumer
                    .assign(&tpl)
                    .map_err(|e| kafka("assigning the partitions", e))?;
            }
            None => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&names)
                    .map_err(|e| kafka(format!("subscribing to {}", topics.join(",")), e))?;
            }
        }
        shared.state.lock().positions = next.clone();
        let source = Source {
            config,
            shared,
            consumer,
            parts,
            next,
            positioned: std::cell::RefCell::new(BTreeSet::new()),
            starts_failed: std::cell::Cell::new(false),
        };
        // Explicit partitions: their `Latest` starts are known now.
        source.commit_starts(&BTreeSet::new(), false)?;
        Ok(source)
    }

    /// Copies until stopped, `stop_at_end` or an error.
    pub(crate) fn run(mut self) -> Result<MirrorStats> {
        let poll = Duration::from_millis(self.config.poll_ms);
        let commit_every = Duration::from_millis(self.config.commit_interval_ms);
        let mut last_commit = Instant::now();
        let mut dirty = BTreeSet::new();
        loop {
            if self.shared.stopping() {
                break;
            }
            let mut batch: BTreeMap<TopicPartition, Vec<Record>> = BTreeMap::new();
            let mut n = 0;
            let mut wait = poll;
            while n < self.config.max_batch_records {
                let Some(msg) = self.consumer.poll(wait) else {
                    break;
                };
                wait = Duration::ZERO;
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) if is_fatal(&e) => return Err(kafka("consuming", e)),
                    Err(e) => {
                        // The client retries on its own (a broker error, a moved leader).
                        log::warn!("consuming: {e} (retrying)");
                        continue;
                    }
                };
                if let Some((tp, rec)) = self.accept(&msg, &batch)? {
                    batch.entry(tp).or_default().push(rec);
                    n += 1;
                }
            }
            if batch.is_empty() && self.config.stop_at_end && self.caught_up()? {
                break;
            }
            // After every poll: a rebalance in it may have started partitions.
            self.commit_starts(&dirty, false)?;
            for (tp, recs) in batch {
                let Some(part) = self.parts.get(&tp) else {
                    continue;
                };
                #[cfg(feature = "internals")]
                if let Some(k) = self.config.kill
                    && let appended = self.shared.state.lock().acknowledged
                    && appended + recs.len() as u64 >= k.after_records
                {
                    let keep = usize::try_from(k.after_records - appended).unwrap_or(0);
                    if keep > 0 {
                        part.append_copied(&recs[..keep], self.config.compression)?;
                    }
                    if k.action == crate::config::KillAction::Abort {
                        std::process::abort();
                    }
                    return Err(Error::Killed {
                        records: k.after_records,
                    });
                }
                append_fitting(part, &recs, self.config.compression)?;
                let Some(last) = recs
                    .last()
                    .and_then(|r| find_offset(header_pairs(&r.headers), KAFKA_OFFSET_HEADER))
                else {
                    continue;
                };
                self.next.insert(tp.clone(), last + 1);
                self.consumer
                    .context()
                    .resume
                    .lock()
                    .insert(tp.clone(), last + 1);
                self.shared.advance(&tp, last + 1, recs.len() as u64);
                dirty.insert(tp);
            }
            if last_commit.elapsed() >= commit_every {
                self.commit(&mut dirty)?;
                last_commit = Instant::now();
            }
        }
        self.commit(&mut dirty)?;
        Ok(MirrorStats {
            records: self.shared.state.lock().acknowledged,
        })
    }

    /// The store record for a Kafka message, or `None` if it is already in the store
    /// (or, in group mode, the partition was just repositioned).
    fn accept(
        &self,
        msg: &BorrowedMessage<'_>,
        batch: &BTreeMap<TopicPartition, Vec<Record>>,
    ) -> Result<Option<(TopicPartition, Record)>> {
        let tp = TopicPartition::new(msg.topic(), msg.partition());
        if !self.parts.contains_key(&tp) {
            return Ok(None);
        }
        // After what the store holds, and what this batch holds already (a partition
        // revoked and given back while the batch fills is checked against both).
        let next = batch
            .get(&tp)
            .and_then(|recs| recs.last())
            .and_then(|r| find_offset(header_pairs(&r.headers), KAFKA_OFFSET_HEADER))
            .map(|last| last + 1)
            .or_else(|| self.next.get(&tp).copied());
        let revoked = std::mem::take(&mut *self.consumer.context().revoked.lock());
        for gone in &revoked {
            self.positioned.borrow_mut().remove(gone);
        }
        if self.config.partitions.is_none() && self.positioned.borrow_mut().insert(tp.clone()) {
            // A group member starts at the group's committed offset; the store is the
            // truth, so the first record of each partition is checked against it.
            if let Some(n) = next
                && msg.offset() != n
            {
                // librdkafka drops what it fetched before the seek (its op version
                // barrier), so the next record of `tp` is the first at or after `n`.
                self.consumer
                    .seek(
                        tp.topic(),
                        tp.partition(),
                        Offset::Offset(n),
                        Duration::from_millis(self.config.timeout_ms),
                    )
                    .map_err(|e| kafka(format!("seeking {tp} to offset {n}"), e))?;
                return Ok(None);
            }
        }
        if next.is_some_and(|n| msg.offset() < n) {
            return Ok(None);
        }
        let timestamp = match msg.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t.max(-1),
            Timestamp::NotAvailable => -1,
        };
        let mut headers: Vec<Header> = crate::raw_headers::headers_of(msg)
            .into_iter()
            .map(|(key, value)| match value {
                Some(v) => Header::new(key, Bytes::copy_from_slice(v)),
                None => Header::null(key),
            })
            .collect();
        headers.push(Header::new(
            KAFKA_OFFSET_HEADER,
            encode_offset(msg.offset()),
        ));
        let record = Record {
            offset: 0,
            timestamp,
            key: msg.key().map(Bytes::copy_from_slice),
            value: msg.payload().map(Bytes::copy_from_slice),
            headers,
        };
        Ok(Some((tp, record)))
    }

    /// Every assigned partition copied up to Kafka's high watermark.
    fn caught_up(&self) -> Result<bool> {
        let assigned = self
            .consumer
            .assignment()
            .map_err(|e| kafka("reading the assignment", e))?;
        if assigned.count() == 0 {
            // Before the first assignment, or while a rebalance moves partitions:
            // not yet. A group member the group gave nothing has nothing to copy (it
            // would wait for ever otherwise).
            let given_nothing = self.config.partitions.is_none()
                && self.consumer.context().assigned.load(Ordering::Acquire);
            return Ok(given_nothing);
        }
        let positions = self
            .consumer
            .position()
            .map_err(|e| kafka("reading the positions", e))?;
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let mut committed = None;
        for el in assigned.elements() {
            let tp = TopicPartition::new(el.topic(), el.partition());
            let (low, high) = self
                .consumer
                .fetch_watermarks(el.topic(), el.partition(), timeout)
                .map_err(|e| kafka(format!("reading the watermarks of {tp}"), e))?;
            let position = positions
                .find_partition(el.topic(), el.partition())
                .and_then(|p| p.offset().to_raw())
                .filter(|o| *o >= 0);
            let mut done = high <= low
                || self.next.get(&tp).is_some_and(|n| *n >= high)
                || position.is_some_and(|p| p >= high);
            if !done && position.is_none() && !self.next.contains_key(&tp) {
                // Nothing received since it started: the consumer reports no position
                // until a record arrives, and none does if it started at the end (the
                // group's committed offset, or `latest` without one).
                let c = match &committed {
                    Some(c) => c,
                    None => committed.insert(
                        self.consumer
                            .committed_offsets(assigned.clone(), timeout)
                            .map_err(|e| kafka("reading the group's committed offsets", e))?,
                    ),
                };
                let start = c
                    .find_partition(el.topic(), el.partition())
                    .and_then(|p| p.offset().to_raw())
                    .filter(|o| *o >= 0);
                done = match start {
                    Some(o) => o >= high,
                    None => self.config.start == StartFrom::Latest,
                };
            }
            if !done {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Commits the store's progress to the Kafka group (informational where the store
    /// holds records: a restart resumes from the store), and where a `Latest` start
    /// put partitions the store holds none of (the next run's start). fsyncs the store
    /// partitions first if `flush` is set.
    fn commit(&mut self, dirty: &mut BTreeSet<TopicPartition>) -> Result<()> {
        self.commit_starts(dirty, true)?;
        if dirty.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in std::mem::take(dirty) {
            if self.config.flush
                && let Some(part) = self.parts.get(&tp)
            {
                part.flush()?;
            }
            if let Some(n) = self.next.get(&tp) {
                tpl.add_partition_offset(tp.topic(), tp.partition(), Offset::Offset(*n))
                    .map_err(|e| kafka(format!("committing {tp}"), e))?;
            }
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            // Not needed to resume; the next commit carries the same offsets.
            log::warn!("committing the mirror's progress to Kafka: {e}");
        }
        Ok(())
    }

    /// Commits where a `Latest` start put partitions the store holds no record of (the
    /// next run's start, nothing in the store says it): as soon as they are started
    /// (at the start, after each poll), so that a run dying before its first periodic
    /// commit (an error, a crash) does not leave them to start at Kafka's end again. A
    /// failed commit is tried again by the next periodic one (`periodic`) for the
    /// partitions still assigned; not after every poll (each a blocking request).
    fn commit_starts(&self, dirty: &BTreeSet<TopicPartition>, periodic: bool) -> Result<()> {
        if self.starts_failed.get() && !periodic {
            return Ok(());
        }
        let starts = std::mem::take(&mut *self.consumer.context().starts.lock());
        let mut tpl = TopicPartitionList::new();
        for (tp, end) in &starts {
            if !self.next.contains_key(tp) && !dirty.contains(tp) {
                tpl.add_partition_offset(tp.topic(), tp.partition(), Offset::Offset(*end))
                    .map_err(|e| kafka(format!("committing {tp}"), e))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        // Needed to resume, so not left in flight when the run ends.
        let result = self.consumer.commit(&tpl, CommitMode::Sync);
        self.starts_failed.set(result.is_err());
        if let Err(e) = result {
            log::warn!("committing where the mirror started: {e}");
            let assigned = self.consumer.assignment().unwrap_or_default();
            let mut again = self.consumer.context().starts.lock();
            for (tp, end) in starts {
                if assigned
                    .find_partition(tp.topic(), tp.partition())
                    .is_some()
                {
                    again.entry(tp).or_insert(end);
                }
            }
        }
        Ok(())
    }
}

/// The consumer settings the source's guarantee rests on; a user setting may not change
/// them. Progress is committed to Kafka only for records the store holds (and, with
/// `flush`, has fsync'd), and records of aborted transactions are not copied.
const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("isolation.level", "read_committed"),
    // librdkafka also resets a position Kafka's retention or DeleteRecords passed:
    // `latest` would skip every record Kafka still holds. `StartFrom::Latest` is
    // applied by the source itself, to partitions with no position at all.
    ("auto.offset.reset", "earliest"),
];

/// librdkafka's other names for settings in `CONSUMER_SETTINGS`.
const CONSUMER_ALIASES: &[(&str, &str)] = &[("auto.commit.enable", "enable.auto.commit")];

/// Where a partition whose records up to Kafka offset `copied` the store holds resumes:
/// right after it, or at Kafka's earliest offset `low` if Kafka deleted records after it
/// (retention, DeleteRecords) before they were copied. Those are gone (and said so); the
/// consumer's reset of a position below `low` goes there too, silently.
fn resume_offset(tp: &TopicPartition, copied: i64, (low, high): (i64, i64)) -> Result<i64> {
    // A header offset of i64::MAX (foreign, or damaged) is past any high watermark.
    let next = copied.saturating_add(1);
    if next > high {
        return Err(Error::DestinationAhead {
            side: "the store",
            topic: tp.topic().to_string(),
            partition: tp.partition(),
            resume: next,
            source_end: high,
        });
    }
    if next < low {
        log::warn!(
            "{tp}: Kafka removed offsets {next}..{low} (retention) before the mirror copied \
             them; resuming at {low}"
        );
    }
    Ok(next.max(low))
}

fn header_pairs(headers: &[Header]) -> impl DoubleEndedIterator<Item = (&str, Option<&[u8]>)> {
    headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()))
}

/// The Kafka offset in the header of the last record of a store partition; `None` if the
/// partition holds no record.
fn last_kafka_offset(part: &Partition) -> Result<Option<i64>> {
    let (start, end) = (part.log_start_offset(), part.log_end_offset());
    if end <= start {
        return Ok(None);
    }
    for from in crate::kafka::tail_windows(start, end) {
        let records = part.read(from, 1 << 20)?;
        if let Some(r) = records.iter().rev().find(|r| r.offset < end) {
            return match find_offset(header_pairs(&r.headers), KAFKA_OFFSET_HEADER) {
                Some(o) => Ok(Some(o)),
                None => Err(Error::ForeignRecord {
                    side: "the store",
                    topic: part.topic().to_string(),
                    partition: part.partition(),
                    offset: r.offset,
                    header: KAFKA_OFFSET_HEADER,
                }),
            };
        }
    }
    Ok(None)
}

/// Appends `recs` in order, in as few batches as the partition takes, as copies: Kafka
/// accepted their timestamps already (before 4.0 it bounds none), so the topic's bounds
/// do not refuse them (`append_copied`), else one record dated ahead of the store's
/// clock would stop the mirror at every restart. A batch over its
/// `max_message_bytes` (records of a few KiB fill one long before `max_batch_records`,
/// and a compressed Kafka batch may hold more) is halved until each part fits, so only
/// a single record too large for the topic is refused. A refused batch writes nothing.
fn append_fitting(part: &Partition, recs: &[Record], codec: Compression) -> Result<()> {
    match part.append_copied(recs, codec) {
        Err(streamlog::Error::RecordTooLarge { .. }) if recs.len() > 1 => {
            let (first, rest) = recs.split_at(recs.len() / 2);
            append_fitting(part, first, codec)?;
            append_fitting(part, rest, codec)
        }
        r => r.map(|_| ()).map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_is_never_below_kafkas_earliest_offset() {
        let tp = TopicPartition::new("t", 0);
        assert_eq!(resume_offset(&tp, 4, (0, 20)).unwrap(), 5);
        assert_eq!(resume_offset(&tp, 19, (0, 20)).unwrap(), 20, "caught up");
        // Kafka deleted 5..10 meanwhile: the mirror goes on at 10, not at the reset.
        assert_eq!(resume_offset(&tp, 4, (10, 20)).unwrap(), 10);
        assert!(matches!(
            resume_offset(&tp, 20, (0, 20)),
            Err(Error::DestinationAhead { resume: 21, .. })
        ));
        // From the bridge review: a header naming i64::MAX overflowed (a panic in debug
        // builds; in release, a resume at i64::MIN).
        assert!(matches!(
            resume_offset(&tp, i64::MAX, (0, 20)),
            Err(Error::DestinationAhead { .. })
        ));
    }

    /// From the bridge review: the source took any user setting, while the sink refuses
    /// those that weaken it. Auto-commit committed offsets of records the store had
    /// not fsync'd, and `read_uncommitted` copied records of aborted transactions.
    #[test]
    fn consumer_settings_that_would_weaken_the_mirror_are_refused() {
        let check = |k: &str, v: &str| {
            check_fixed_settings(
                &[(k.to_string(), v.to_string())],
                CONSUMER_SETTINGS,
                CONSUMER_ALIASES,
            )
        };
        for (k, v) in [
            ("enable.auto.commit", "true"),
            ("auto.commit.enable", "true"),
            ("enable.auto.offset.store", "true"),
            ("isolation.level", "read_uncommitted"),
        ] {
            assert!(
                matches!(check(k, v), Err(Error::InvalidConfig { name: "kafka", .. })),
                "{k}={v}"
            );
        }
        for (k, v) in [
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "6000"),
        ] {
            check(k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
    }

    /// From the bridge review: the windows stopped once the next one would pass the
    /// low watermark, so for low 0 and high 10 they started at 9, 8, 6 and 2 and
    /// offsets 0..1 were never read: a partition whose only records were there (its
    /// tail transaction markers) looked empty, and the mirror copied everything again.
    #[test]
    fn the_tail_windows_reach_the_low_watermark() {
        let windows = |low, high| crate::kafka::tail_windows(low, high).collect::<Vec<_>>();
        assert_eq!(windows(0, 10), [9, 8, 6, 2, 0]);
        assert_eq!(windows(3, 4), [3]);
        assert_eq!(windows(5, 7), [6, 5]);
        assert_eq!(windows(5, 5), Vec::<i64>::new());
        assert_eq!(windows(0, i64::MAX).last(), Some(&0));
    }
}
