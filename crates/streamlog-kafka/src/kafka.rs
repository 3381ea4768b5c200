//! Kafka-side helpers: client configs, topic metadata and creation, and the offset header
//! of the last record of a partition (where the sink resumes).

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result, kafka};
use crate::headers::{SOURCE_TOPIC_ID_HEADER, find_offset};

/// A client config: the mirror's settings, then the user's (`-X`), which win.
pub(crate) fn client_config(
    bootstrap: &str,
    ours: &[(&str, &str)],
    user: &[(String, String)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in ours {
        c.set(*k, *v);
    }
    for (k, v) in user {
        c.set(k, v);
    }
    c
}

/// `InvalidConfig` for a user setting that would change one of `fixed`, the settings a
/// side of the mirror rests its guarantee on, under its own name or one of librdkafka's
/// `aliases` for it (both names set one property, and which of two conflicting values
/// wins is not defined). `acks` may also be given as `-1`, librdkafka's other name for
/// `all`.
pub(crate) fn check_fixed_settings(
    user: &[(String, String)],
    fixed: &[(&str, &str)],
    aliases: &[(&str, &str)],
) -> Result<()> {
    for (k, v) in user {
        // librdkafka sets a topic property under its name with `topic.` before it too.
        let bare = k.strip_prefix("topic.").unwrap_or(k);
        let name = aliases
            .iter()
            .find(|(alias, _)| *alias == bare)
            .map_or(bare, |(_, name)| *name);
        // librdkafka compares these values without case.
        let v = v.to_ascii_lowercase();
        let same = |ours: &str| {
            v == ours
                || (name == "acks" && v == "-1")
                || (name == "auto.offset.reset" && ["smallest", "beginning"].contains(&v.as_str()))
        };
        if let Some((_, ours)) = fixed.iter().find(|(n, _)| *n == name)
            && !same(ours)
        {
            return Err(Error::InvalidConfig {
                name: "kafka",
                reason: format!("{k}={v}: the mirror needs {k}={ours} (no loss, no gap)"),
            });
        }
    }
    Ok(())
}

/// The partition count of `topic` in Kafka, `None` if Kafka does not know the topic.
pub(crate) fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kafka(format!("reading the metadata of topic {topic}"), e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None => {}
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            return Ok(None);
        }
        Some(e) => {
            return Err(kafka(
                format!("reading the metadata of topic {topic}"),
                KafkaError::MetadataFetch(e.into()),
            ));
        }
    }
    let n = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
    Ok((n > 0).then_some(n))
}

/// Creates `topic` in Kafka with `partitions` partitions.
pub(crate) fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    timeout: Duration,
) -> Result<()> {
    let new = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let context = || format!("creating topic {topic} with {partitions} partitions");
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .map_err(|e| kafka(context(), e))?;
    for r in results {
        match r {
            Ok(_) => {}
            // Created by someone else meanwhile: the caller checks the count again.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(kafka(context(), KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// The value of `header` in the last record of a Kafka partition, with that record's
/// value of [`SOURCE_TOPIC_ID_HEADER`] if it has one; `None` if the partition holds no
/// record.
///
/// Reads from the high watermark - 1; if nothing is there (the tail holds only
/// transaction markers), reads from twice as far back, down to the low watermark.
pub(crate) fn last_header_offset(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    header: &'static str,
    timeout: Duration,
) -> Result<Option<(i64, Option<Vec<u8>>)>> {
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .map_err(|e| kafka(format!("reading the watermarks of {topic}-{partition}"), e))?;
    for from in tail_windows(low, high) {
        if let Some(LastRecord {
            offset,
            value,
            topic_id,
        }) = read_last(consumer, (topic, partition), header, from, high, timeout)?
        {
            return match value {
                Some(v) => Ok(Some((v, topic_id))),
                None => Err(Error::ForeignRecord {
                    side: "Kafka",
                    topic: topic.to_string(),
                    partition,
                    offset,
                    header,
                }),
            };
        }
    }
    Ok(None)
}

/// Where the reads for the last record of `[low, high)` start, each twice as far back
/// as the one before: `high - 1`, `high - 2`, `high - 4`, ..., and `low` last (none for
/// an empty range), so every offset is read by some window.
pub(crate) fn tail_windows(low: i64, high: i64) -> impl Iterator<Item = i64> {
    let mut back: i64 = 1;
    let mut done = high <= low;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let from = high.saturating_sub(back).max(low);
        done = from <= low;
        back = back.saturating_mul(2);
        Some(from)
    })
}

/// A partition's last record, as [`read_last`] finds it.
struct LastRecord {
    offset: i64,
    /// The offset its header holds, if it holds one.
    value: Option<i64>,
    /// Its [`SOURCE_TOPIC_ID_HEADER`], if it has one.
    topic_id: Option<Vec<u8>>,
}

/// The last record in `[from, high)`.
fn read_last(
    consumer: &BaseConsumer,
    (topic, partition): (&str, i32),
    header: &str,
    from: i64,
    high: i64,
    timeout: Duration,
) -> Result<Option<LastRecord>> {
    let ctx = || format!("reading the last record of {topic}-{partition}");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .map_err(|e| kafka(ctx(), e))?;
    consumer.assign(&tpl).map_err(|e| kafka(ctx(), e))?;
    let deadline = crate::mirror::deadline_after(timeout);
    let mut last = None;
    // The Kafka client delivers fetched records only through poll: we poll until the
    // partition's end (a PartitionEOF event, `enable.partition.eof` is set) or the
    // request timeout.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(kafka(
                ctx(),
                KafkaError::MessageConsumption(RDKafkaErrorCode::RequestTimedOut),
            ));
        }
        match consumer.poll(left.min(Duration::from_millis(100))) {
            None => {}
            // Only this partition's end: an event left from an earlier read of another
            // partition with this consumer must not end this one early. (The event
            // names no topic: one of the same partition number of another topic still
            // would; the widening loop's smaller windows then retry.)
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) if is_fatal(&e) => return Err(kafka(ctx(), e)),
            // The client retries on its own (a broker error, a moved leader).
            Some(Err(e)) => log::warn!("{}: {e} (retrying)", ctx()),
            Some(Ok(m)) => {
                if m.topic() != topic || m.partition() != partition {
                    continue;
                }
                let all = crate::raw_headers::headers_of(&m);
                let value = find_offset(all.iter().map(|(k, v)| (k.as_str(), *v)), header);
                let topic_id = all
                    .iter()
                    .rev()
                    .find(|(k, _)| k == SOURCE_TOPIC_ID_HEADER)
                    .and_then(|(_, v)| v.map(<[u8]>::to_vec));
                last = Some(LastRecord {
                    offset: m.offset(),
                    value,
                    topic_id,
                });
                if m.offset() + 1 >= high {
                    break;
                }
            }
        }
    }
    consumer
        .assign(&TopicPartitionList::new())
        .map_err(|e| kafka(ctx(), e))?;
    Ok(last)
}

/// Whether a consumer error ends the consumer. Others (a broker error on a fetch, a
/// moved leader) are reported by librdkafka while it retries on its own.
pub(crate) fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::MessageConsumptionFatal(_))
}
