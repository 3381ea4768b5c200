//! Store -> Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
#[cfg(feature = "internals")]
use rdkafka::producer::PurgeConfig;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use streamlog::{
    Consumer, ConsumerConfig, IsolationLevel, OffsetReset, Store, TopicId, TopicPartition,
};

use crate::config::{KafkaSinkConfig, StartFrom, check_common};
use crate::error::{Error, Result, kafka};
use crate::headers::{SOURCE_OFFSET_HEADER, SOURCE_TOPIC_ID_HEADER, encode_offset};
use crate::kafka::{
    check_fixed_settings, client_config, create_topic, last_header_offset, partition_count,
};
use crate::mirror::{MirrorStats, Shared};

/// What a delivery report refers to: the index of the partition in `Sink::partitions`
/// and the record's source offset.
struct Sent {
    partition: usize,
    offset: i64,
}

/// Receives Kafka's delivery reports (on the producer's polling thread).
struct DeliveryContext {
    shared: Arc<Shared>,
    partitions: Arc<Vec<TopicPartition>>,
    /// The kill switch's abort: at the report that brings the records Kafka
    /// acknowledged to this many (exactly there, whatever the sink's loop is doing).
    #[cfg(feature = "internals")]
    abort_after: Option<u64>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let Some(tp) = self.partitions.get(sent.partition) else {
            return;
        };
        match result {
            // The idempotent producer keeps each partition's order, so the reports of a
            // partition come in offset order and the position only moves forward.
            Ok(_) => {
                self.shared.advance(tp, sent.offset + 1, 1);
                let mut s = self.shared.state.lock();
                s.in_flight = s.in_flight.saturating_sub(1);
                #[cfg(feature = "internals")]
                if self.abort_after.is_some_and(|n| s.acknowledged >= n) {
                    std::process::abort();
                }
            }
            Err((e, _)) => {
                let mut s = self.shared.state.lock();
                s.in_flight = s.in_flight.saturating_sub(1);
                if s.failure.is_none() {
                    s.failure = Some(Error::Delivery {
                        topic: tp.topic().to_string(),
                        partition: tp.partition(),
                        offset: sent.offset,
                        source: e.clone(),
                    });
                }
            }
        }
        self.shared.changed.notify_all();
    }
}

/// A sink ready to run: Kafka topics checked, start positions found.
pub(crate) struct Sink {
    store: Store,
    config: KafkaSinkConfig,
    shared: Arc<Shared>,
    partitions: Arc<Vec<TopicPartition>>,
    producer: ThreadedProducer<DeliveryContext>,
    consumer: Consumer,
    /// Each store topic's id at the start, and the value of the header naming it.
    topic_ids: BTreeMap<String, (TopicId, Vec<u8>)>,
    /// A stop gave up records the consumer had returned (see `send`).
    unsent: bool,
}

/// The producer settings the mirror's guarantee rests on; a user setting may not
/// change them.
const PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Never give up on a record: a broker error is retried until it succeeds or the
    // producer fails fatally (then the mirror stops and a restart resumes). A record
    // that timed out is not covered by the gapless guarantee: the records after it could
    // still reach Kafka, and a restart resumes after the last of them.
    ("message.timeout.ms", "0"),
    // A batch that fails in a way that could leave a gap stops the producer.
    ("enable.gapless.guarantee", "true"),
];

/// librdkafka's other names for settings in `PRODUCER_SETTINGS`.
const SETTING_ALIASES: &[(&str, &str)] = &[
    ("request.required.acks", "acks"),
    ("delivery.timeout.ms", "message.timeout.ms"),
];

/// `InvalidConfig` for a user setting that would change one of `PRODUCER_SETTINGS`.
fn check_producer_settings(kafka: &[(String, String)]) -> Result<()> {
    check_fixed_settings(kafka, PRODUCER_SETTINGS, SETTING_ALIASES)
}

impl Sink {
    pub(crate) fn start(
        store: &Store,
        config: KafkaSinkConfig,
        shared: Arc<Shared>,
    ) -> Result<Sink> {
        check_common(&config.bootstrap, config.poll_ms, config.timeout_ms)?;
        if config.topics.is_empty() {
            return Err(Error::InvalidConfig {
                name: "topics",
                reason: "no topic to mirror".into(),
            });
        }
        check_producer_settings(&config.kafka)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let admin: AdminClient<DefaultClientContext> =
            admin_config(&config.bootstrap, &config.kafka)
                .create()
                .map_err(|e| kafka("creating the admin client", e))?;
        let mut partitions = Vec::new();
        let mut topic_ids = BTreeMap::new();
        for topic in &config.topics {
            // Named twice (`-t a -t a`): copied once.
            if topic_ids.contains_key(topic) {
                continue;
            }
            let Ok(t) = store.topic(topic) else {
                return Err(Error::UnknownTopic {
                    side: "the store",
                    topic: topic.clone(),
                });
            };
            topic_ids.insert(topic.clone(), (t.id(), t.id().to_string().into_bytes()));
            let count = t.partition_count();
            match partition_count(admin.inner(), topic, timeout)? {
                Some(n) if n == count => {}
                Some(n) => {
                    return Err(Error::PartitionMismatch {
                        topic: topic.clone(),
                        store: count,
                        kafka: n,
                    });
                }
                None if config.create_topics => {
                    create_topic(&admin, topic, count, config.replication_factor, timeout)?;
                    let n = wait_for_topic(&admin, topic, timeout)?;
                    if n != count {
                        return Err(Error::PartitionMismatch {
                            topic: topic.clone(),
                            store: count,
                            kafka: n,
                        });
                    }
                }
                None => {
                    return Err(Error::UnknownTopic {
                        side: "Kafka",
                        topic: topic.clone(),
                    });
                }
            }
            partitions.extend((0..count).map(|p| TopicPartition::new(topic.clone(), p)));
        }
        drop(admin);

        let mut consumer = store.consumer(
            ConsumerConfig::new(config.group_id.clone())
                .enable_auto_commit(false)
                .isolation_level(IsolationLevel::ReadCommitted)
                .auto_offset_reset(OffsetReset::Earliest),
        )?;
        consumer.assign(&partitions)?;
        let committed = consumer.committed(&partitions)?;
        // Where a `Latest` start put partitions with nothing in Kafka and no committed
        // offset: nothing else says where the next run starts.
        let mut latest_starts = BTreeMap::new();
        let probe: BaseConsumer = probe_config(&config.bootstrap, &config.kafka)
            .create()
            .map_err(|e| kafka("creating the consumer that reads the last records", e))?;
        for tp in &partitions {
            let last = last_header_offset(
                &probe,
                tp.topic(),
                tp.partition(),
                SOURCE_OFFSET_HEADER,
                timeout,
            )?;
            // The offset in the header is one of the store topic the record came from:
            // of another one (the topic deleted and created again since, the store
            // replaced), it says nothing of what was copied of this one, and resuming
            // from it would skip this one's records below it.
            let (_, id) = &topic_ids[tp.topic()];
            if let Some((_, Some(copied))) = &last
                && copied != id
            {
                return Err(Error::SourceReplaced {
                    topic: tp.topic().to_string(),
                    partition: tp.partition(),
                    copied: String::from_utf8_lossy(copied).into_owned(),
                    store: String::from_utf8_lossy(id).into_owned(),
                });
            }
            let last = last.map(|(offset, _)| offset);
            let part = store.topic(tp.topic())?.partition(tp.partition())?;
            let start = match (last, committed.get(tp).copied().flatten()) {
                // Saturating: a header naming i64::MAX is past the store's end.
                (Some(o), _) => o.saturating_add(1),
                (None, Some(c)) => c,
                (None, None) => match config.start {
                    StartFrom::Earliest => part.log_start_offset(),
                    StartFrom::Latest => {
                        let end = part.log_end_offset();
                        latest_starts.insert(tp.clone(), end);
                        end
                    }
                },
            };
            if last.is_some() && start > part.log_end_offset() {
                return Err(Error::DestinationAhead {
                    side: "Kafka",
                    topic: tp.topic().to_string(),
                    partition: tp.partition(),
                    resume: start,
                    source_end: part.log_end_offset(),
                });
            }
            if start < part.log_start_offset() {
                log::warn!(
                    "{tp}: records {start}..{} were removed from the store (retention) \
                     before the mirror copied them",
                    part.log_start_offset()
                );
            }
            consumer.seek(tp, start.max(part.log_start_offset()))?;
            shared.state.lock().positions.insert(tp.clone(), start);
        }
        drop(probe);
        // Committed now, not at the first periodic commit: a run that dies before it
        // would leave the next one to start at the store's end again, past what was
        // appended in between.
        if !latest_starts.is_empty() {
            consumer.commit_sync_offsets(&latest_starts)?;
        }

        let partitions = Arc::new(partitions);
        let context = DeliveryContext {
            shared: shared.clone(),
            partitions: partitions.clone(),
            #[cfg(feature = "internals")]
            abort_after: config
                .kill
                .filter(|k| k.action == crate::config::KillAction::Abort)
                .map(|k| k.after_records),
        };
        let producer: ThreadedProducer<DeliveryContext> =
            client_config(&config.bootstrap, PRODUCER_SETTINGS, &config.kafka)
                .create_with_context(context)
                .map_err(|e| kafka("creating the idempotent producer", e))?;
        Ok(Sink {
            store: store.clone(),
            config,
            shared,
            partitions,
            producer,
            consumer,
            topic_ids,
            unsent: false,
        })
    }

    /// Copies until stopped, `stop_at_end` or an error.
    pub(crate) fn run(mut self) -> Result<MirrorStats> {
        let poll = Duration::from_millis(self.config.poll_ms);
        let commit_every = Duration::from_millis(self.config.commit_interval_ms);
        let mut last_commit = Instant::now();
        let index: BTreeMap<TopicPartition, usize> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, tp)| (tp.clone(), i))
            .collect();
        loop {
            if let Some(e) = self.shared.state.lock().failure.take() {
                return Err(e);
            }
            if self.shared.stopping() {
                break;
            }
            #[cfg(feature = "internals")]
            if let Some(stats) = self.kill_now() {
                return stats;
            }
            // While Kafka has records to acknowledge, look for new records without
            // blocking and wait on the delivery reports instead.
            let in_flight = self.shared.state.lock().in_flight;
            let records = self
                .consumer
                .poll(if in_flight > 0 { Duration::ZERO } else { poll })?;
            if let Some(e) = self.changed_topic() {
                // What was sent before goes to Kafka; nothing of the new topic is sent,
                // and no progress is committed (it would be the old topic's offsets,
                // applied to the new one).
                let _ = self
                    .producer
                    .flush(Duration::from_millis(self.config.timeout_ms));
                return Err(e);
            }
            if records.is_empty() {
                if in_flight > 0 {
                    self.wait_for_delivery();
                } else {
                    // Caught up: past the transaction markers and aborted records that
                    // end a partition too (delivery reports only tell of records), so
                    // that a wait for the store's log end offset returns.
                    self.step_positions_over_the_rest();
                    if self.config.stop_at_end {
                        // Nothing in flight and nothing new: everything is in Kafka.
                        break;
                    }
                }
            }
            self.make_durable(&records)?;
            for rec in &records {
                let tp = TopicPartition::new(rec.topic(), rec.partition());
                let Some(&i) = index.get(&tp) else {
                    continue;
                };
                let mut headers = OwnedHeaders::new_with_capacity(rec.headers().len() + 2);
                for h in rec.headers() {
                    headers = headers.insert(KafkaHeader {
                        key: &h.key,
                        value: h.value.as_deref(),
                    });
                }
                let offset_text = encode_offset(rec.offset());
                headers = headers.insert(KafkaHeader {
                    key: SOURCE_OFFSET_HEADER,
                    value: Some(&offset_text),
                });
                headers = headers.insert(KafkaHeader {
                    key: SOURCE_TOPIC_ID_HEADER,
                    value: self.topic_ids.get(tp.topic()).map(|(_, v)| v.as_slice()),
                });
                let mut record: BaseRecord<'_, [u8], [u8], Box<Sent>> = BaseRecord::with_opaque_to(
                    tp.topic(),
                    Box::new(Sent {
                        partition: i,
                        offset: rec.offset(),
                    }),
                )
                .partition(tp.partition())
                .headers(headers);
                // librdkafka takes 0 for "none" as it takes -1: both get its clock
                // (documented on `Mirror::to_kafka`; no other value means the epoch).
                if rec.timestamp() >= 0 {
                    record = record.timestamp(rec.timestamp());
                }
                record.key = rec.key();
                record.payload = rec.value();
                self.shared.state.lock().in_flight += 1;
                if !self.send(record)? {
                    // The consumer's position is past records never handed over.
                    self.unsent = true;
                    break;
                }
                #[cfg(feature = "internals")]
                if let Some(stats) = self.kill_now() {
                    return stats;
                }
            }
            if last_commit.elapsed() >= commit_every {
                self.commit()?;
                last_commit = Instant::now();
            }
        }
        let flushed = self
            .producer
            .flush(Duration::from_millis(self.config.timeout_ms));
        if let Some(e) = self.shared.state.lock().failure.take() {
            return Err(e);
        }
        flushed.map_err(|e| kafka("flushing the records in flight at stop", e))?;
        self.commit()?;
        Ok(MirrorStats {
            records: self.shared.state.lock().acknowledged,
        })
    }

    /// A store topic deleted and created again since the start (a new id), if one was:
    /// its records would reach Kafka after the old one's, under the old one's id. Or
    /// one given partitions since (`add_partitions`): the sink reads the partitions it
    /// started with, and the new ones' records would wait unseen (their retention
    /// running) while a `stop_at_end` sink reported everything copied.
    fn changed_topic(&self) -> Option<Error> {
        self.topic_ids.iter().find_map(|(topic, (was, _))| {
            let t = self.store.topic(topic).ok()?;
            let now = t.id();
            if now != *was {
                return Some(Error::SourceRecreated {
                    topic: topic.clone(),
                    was: was.to_string(),
                    now: now.to_string(),
                });
            }
            let started = self
                .partitions
                .iter()
                .filter(|tp| tp.topic() == topic)
                .count();
            let count = t.partition_count();
            (usize::try_from(count).ok() != Some(started)).then(|| Error::PartitionMismatch {
                topic: topic.clone(),
                store: count,
                // As many as the store had when the sink started (checked then).
                kafka: i32::try_from(started).unwrap_or(i32::MAX),
            })
        })
    }

    /// Hands one record to the producer, waiting for room in its queue; `false` if the
    /// mirror was stopped while it waited (the record is not sent: the next run copies
    /// it). Kafka may be unreachable for good, and the queue then never drains.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8], Box<Sent>>) -> Result<bool> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(true),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // The queue drains as Kafka acknowledges; reports wake us.
                    let mut s = self.shared.state.lock();
                    if let Some(e) = s.failure.take() {
                        return Err(e);
                    }
                    if self.shared.stopping() {
                        s.in_flight -= 1;
                        return Ok(false);
                    }
                    self.shared
                        .changed
                        .wait_for(&mut s, Duration::from_millis(self.config.poll_ms));
                }
                Err((e, back)) => {
                    self.shared.state.lock().in_flight -= 1;
                    return Err(Error::Delivery {
                        topic: back.topic.to_string(),
                        partition: back.partition.unwrap_or(-1),
                        offset: back.delivery_opaque.offset,
                        source: e,
                    });
                }
            }
        }
    }

    /// fsyncs the store partitions up to the records about to go to Kafka. A record
    /// Kafka holds must survive a power cut of the store: else the store, recovered
    /// shorter, would give its offsets to new records, and the next run would resume
    /// past them (Kafka's copy says they were sent) and never copy them. A record of a
    /// transaction needs its COMMIT marker as well, which lies past it (a transaction is
    /// visible once its marker is appended, before the marker's fsync; recovered
    /// without it, the transaction is aborted): where the records came from
    /// transactions, the fsync covers the log end. (Not only the last stable offset:
    /// another transaction open since before the marker holds that below the marker.)
    fn make_durable(&self, records: &streamlog::ConsumerRecords) -> Result<()> {
        // Each partition's first record and the offset after its last. (A poll's
        // records come from a few partitions.)
        let mut ranges: Vec<(TopicPartition, i64, i64)> = Vec::new();
        for rec in records {
            let same = |(tp, _, _): &&mut (TopicPartition, i64, i64)| {
                tp.partition() == rec.partition() && tp.topic() == rec.topic()
            };
            match ranges.iter_mut().find(same) {
                Some((_, first, end)) => {
                    *first = (*first).min(rec.offset());
                    *end = (*end).max(rec.offset() + 1);
                }
                None => ranges.push((
                    TopicPartition::new(rec.topic(), rec.partition()),
                    rec.offset(),
                    rec.offset() + 1,
                )),
            }
        }
        for (tp, first, end) in ranges {
            // A topic deleted since the poll has nothing left to make durable (its
            // records go on as a deleted topic's always did); `Closed`: deleted during
            // the flush.
            let part = match self
                .store
                .topic(tp.topic())
                .and_then(|t| t.partition(tp.partition()))
            {
                Ok(part) => part,
                Err(streamlog::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let durable = part.durable_offset();
            // Read only when the records themselves are durable: a flush covers all.
            // The marker was appended before the poll saw the records, so the log end
            // read now lies past it.
            let undecided_marker =
                || durable < part.log_end_offset() && from_a_transaction(&part, first, end);
            if durable < end || undecided_marker() {
                match part.flush() {
                    Ok(_) | Err(streamlog::Error::Closed { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Waits for the next delivery report, at most `poll_ms`.
    fn wait_for_delivery(&self) {
        let mut s = self.shared.state.lock();
        if s.in_flight > 0 && s.failure.is_none() {
            self.shared
                .changed
                .wait_for(&mut s, Duration::from_millis(self.config.poll_ms));
        }
    }

    /// With nothing in flight and nothing failed, moves [`Mirror::positions`] to the
    /// consumer's: everything before it that is not in Kafka is no record to copy.
    fn step_positions_over_the_rest(&mut self) {
        if self.unsent || self.shared.state.lock().failure.is_some() {
            return;
        }
        for tp in self.partitions.iter() {
            if let Ok(at) = self.consumer.position(tp) {
                self.shared.advance(tp, at, 0);
            }
        }
    }

    /// Commits what Kafka acknowledged to the streamlog group (progress and lag for
    /// `describe_group`; the restart position comes from Kafka itself).
    fn commit(&mut self) -> Result<()> {
        let (positions, exact) = {
            let s = self.shared.state.lock();
            // After a failed delivery nothing is in flight either, but the consumer's
            // position is past the record Kafka refused: only acknowledged positions.
            // So after a stop gave up records polled but not handed over.
            let exact = s.in_flight == 0 && s.failure.is_none() && !self.unsent;
            (s.positions.clone(), exact)
        };
        let mut offsets = BTreeMap::new();
        for (tp, acked) in positions {
            // With nothing in flight, the consumer's position is exact and also steps
            // over transaction markers and aborted records at the end.
            let at = if exact {
                self.consumer.position(&tp).unwrap_or(acked).max(acked)
            } else {
                acked
            };
            offsets.insert(tp, at);
        }
        self.consumer.commit_sync_offsets(&offsets)?;
        Ok(())
    }

    /// The kill switch: once Kafka acknowledged `after_records` records in this run,
    /// die with whatever follows them still queued or in flight.
    #[cfg(feature = "internals")]
    fn kill_now(&self) -> Option<Result<MirrorStats>> {
        let k = self.config.kill?;
        let acknowledged = self.shared.state.lock().acknowledged;
        if acknowledged < k.after_records {
            return None;
        }
        if k.action == crate::config::KillAction::Abort {
            std::process::abort();
        }
        // A crash: whatever Kafka has not acknowledged is gone from this process.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        Some(Err(Error::Killed {
            records: acknowledged,
        }))
    }
}

/// Whether a batch holding offsets `first..end` of `part` is transactional (a batch
/// that cannot be read counts as one: the caller then fsyncs, which is never wrong).
/// The batches were just read by the sink's consumer: this reads them from the page
/// cache, as a rule.
fn from_a_transaction(part: &streamlog::Partition, first: i64, end: i64) -> bool {
    let mut at = first;
    while at < end {
        let Ok(batches) = part.read_batches(at, 1 << 20) else {
            return true;
        };
        let Some(last) = batches.last() else {
            return true;
        };
        if batches.iter().any(|b| {
            let h = b.header();
            h.last_offset() >= first && h.base_offset < end && h.is_transactional()
        }) {
            return true;
        }
        at = last.header().last_offset() + 1;
    }
    false
}

/// The client that reads metadata and creates topics: the user's settings (security,
/// addresses), then the mirror's own. A metadata request must not create the topic
/// (with the broker's default partition count) before the mirror creates it with the
/// right one.
fn admin_config(bootstrap: &str, user: &[(String, String)]) -> ClientConfig {
    let mut c = client_config(bootstrap, &[], user);
    c.set("allow.auto.create.topics", "false");
    c
}

/// A consumer that reads single records by offset: no group commits. The user's
/// settings go along (connection and security); producer-only ones are ignored by
/// librdkafka with a warning.
pub(crate) fn probe_config(bootstrap: &str, user: &[(String, String)]) -> ClientConfig {
    client_config(
        bootstrap,
        &[
            ("group.id", "streamlog-kafka-probe"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_uncommitted"),
        ],
        user,
    )
}

/// After a CreateTopics, waits until the topic's metadata shows its partitions (Kafka
/// creates topics asynchronously; only polling its metadata tells when it is done).
fn wait_for_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<i32> {
    let deadline = crate::mirror::deadline_after(timeout);
    loop {
        if let Some(n) = partition_count(admin.inner(), topic, timeout)? {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(Error::UnknownTopic {
                side: "Kafka",
                topic: topic.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the bridge review: the admin client was built without the user's settings,
    /// so against a cluster that needs `security.protocol` or SASL it could not read
    /// the metadata the sink starts with, while the producer and the probe could.
    #[test]
    fn the_admin_client_gets_the_users_settings_but_never_creates_topics() {
        let user = [
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("allow.auto.create.topics".to_string(), "true".to_string()),
        ];
        let c = admin_config("kafka:9092", &user);
        assert_eq!(c.get("bootstrap.servers"), Some("kafka:9092"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn settings_that_would_weaken_the_mirror_are_refused_and_synonyms_taken() {
        let set = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        for (k, v) in [
            ("acks", "all"),
            ("acks", "-1"),
            ("request.required.acks", "all"),
            ("message.timeout.ms", "0"),
            ("delivery.timeout.ms", "0"),
        ] {
            check_producer_settings(&set(k, v)).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
        for (k, v) in [
            ("acks", "1"),
            ("acks", "0"),
            ("enable.idempotence", "false"),
            ("enable.gapless.guarantee", "false"),
            // A record that times out leaves a gap the records after it pass over.
            ("message.timeout.ms", "5000"),
            ("delivery.timeout.ms", "5000"),
            ("request.required.acks", "1"),
        ] {
            let refused = check_producer_settings(&set(k, v));
            assert!(
                matches!(refused, Err(Error::InvalidConfig { name: "kafka", .. })),
                "{k}={v}: {refused:?}"
            );
        }
    }
}
