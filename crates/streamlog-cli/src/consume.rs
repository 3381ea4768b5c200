//! `streamlog consume`: prints a topic's records (Kafka's `kafka-console-consumer`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use streamlog::{ConsumerConfig, OffsetReset, TopicPartition};

use crate::store_arg::StoreDir;
use crate::topics::close;

/// How often a `consume --group` commits what it printed (Kafka's default
/// `auto.commit.interval.ms`).
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value per line (with --print-key: key, a tab, the value), its bytes as
    /// stored; `null` for a null key or value
    Text,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value,
    /// headers (bytes as UTF-8, invalid sequences replaced)
    Json,
}

/// `consume`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Consume {
    #[command(flatten)]
    store: StoreDir,
    /// The topic
    topic: String,
    /// Start at the earliest record (without a committed offset) instead of the end
    #[arg(long)]
    from_beginning: bool,
    /// Read as this consumer group: resume from its committed offsets; commit what was
    /// printed (and flushed), every 5 s and at the end (a process killed before the end
    /// prints again, next time, what it printed since the last commit). The store is
    /// opened as its writer for the commits, so nothing else writes to it meanwhile
    #[arg(long)]
    group: Option<String>,
    /// Only this partition
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Keep waiting for new records (until --max-messages or the process is stopped)
    /// instead of stopping at the end of the topic as it was at the start; partitions
    /// added meanwhile are read from their start. Not with --group, which holds the
    /// store as its writer: no record could arrive
    #[arg(long, conflicts_with = "group")]
    follow: bool,
    /// Stop after this many records
    #[arg(long, value_name = "N")]
    max_messages: Option<usize>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// In text format, print the key before the value
    #[arg(long)]
    print_key: bool,
}

/// Prints records to `out`; returns how many.
pub fn run(c: &Consume, out: &mut dyn Write) -> Result<usize, String> {
    let Some(group) = c.group.as_deref() else {
        return run_read_only(c, out);
    };
    let store = c.store.open()?;
    let err = |e: streamlog::Error| e.to_string();
    let partitions: Vec<TopicPartition> = {
        let d = store.describe_topic(&c.topic).map_err(err)?;
        d.partitions
            .iter()
            .map(|p| TopicPartition::new(c.topic.as_str(), p.partition))
            .filter(|tp| c.partition.is_none_or(|p| p == tp.partition()))
            .collect()
    };
    if partitions.is_empty() {
        return Err(no_partition(c));
    }
    let reset = if c.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    // No auto-commit: it commits all a poll returned (at the next poll, or at the
    // close, also after a failed write), which may not be printed yet (still in the
    // output buffer, or after --max-messages) or never (stdout full or closed). The run
    // commits what it printed and flushed: every COMMIT_EVERY, and at the end.
    let config = ConsumerConfig::new(group)
        .auto_offset_reset(reset)
        .enable_auto_commit(false)
        .client_id("streamlog-consume");
    let mut consumer = store.consumer(config).map_err(err)?;
    consumer.subscribe([c.topic.as_str()]).map_err(err)?;
    // Where the topic ends now: without --follow, the run stops there.
    let ends: BTreeMap<TopicPartition, i64> = consumer.end_offsets(&partitions).map_err(err)?;
    let limit = c.max_messages.unwrap_or(usize::MAX);
    let mut printed = 0;
    let mut last_progress = Instant::now();
    // The offset after the last record printed, per partition: with --max-messages a
    // poll may return more than is printed, and the group must read those again.
    let mut done: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut cut_short = false;
    let mut last_commit = Instant::now();
    while printed < limit {
        let records = consumer.poll(Duration::from_millis(100)).map_err(err)?;
        for r in records.iter() {
            if printed == limit {
                cut_short = true;
                break;
            }
            let printed_record = Printed {
                topic: r.topic(),
                partition: r.partition(),
                offset: r.offset(),
                timestamp: r.timestamp(),
                key: r.key(),
                value: r.value(),
                headers: r.headers(),
            };
            print(c, &printed_record, out).map_err(|e| e.to_string())?;
            printed += 1;
            done.insert(
                TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            );
            last_progress = Instant::now();
        }
        if c.follow && !records.is_empty() {
            // Following: what was printed reaches a pipe now, not at exit.
            out.flush().map_err(|e| e.to_string())?;
        }
        if last_commit.elapsed() >= COMMIT_EVERY && !done.is_empty() {
            // What was printed, once it left this process.
            out.flush().map_err(|e| e.to_string())?;
            consumer.commit_sync_offsets(&done).map_err(err)?;
            last_commit = Instant::now();
        }
        if !c.follow {
            let mut caught_up = true;
            for tp in consumer.assignment() {
                if consumer.position(&tp).map_err(err)? < ends.get(&tp).copied().unwrap_or(0) {
                    caught_up = false;
                }
            }
            // A group member that got no partition yet is not caught up: it waits for
            // its assignment (a group of one gets every partition at its first poll).
            let assigned = !consumer.assignment().is_empty();
            if caught_up && assigned {
                break;
            }
            if !assigned && last_progress.elapsed() > Duration::from_secs(10) {
                return Err("no partition was assigned to this group member".into());
            }
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    if cut_short {
        consumer.commit_sync_offsets(&done).map_err(err)?;
    } else {
        // Everything returned was printed: the positions, past markers too.
        consumer.commit_sync().map_err(err)?;
    }
    consumer.close().map_err(err)?;
    close(store)?;
    Ok(printed)
}

/// Without a group: the store opened read-only (no lock, no write), so this works while
/// its writer runs; each partition read from its start (`--from-beginning`) or its end.
fn run_read_only(c: &Consume, out: &mut dyn Write) -> Result<usize, String> {
    let store = c.store.open_read_only()?;
    let err = |e: streamlog::Error| e.to_string();
    let count = store.topic_config(&c.topic).map_err(err)?.partition_count();
    let mut parts = Vec::new();
    for p in (0..count).filter(|p| c.partition.is_none_or(|want| want == *p)) {
        let part = store.partition(&c.topic, p).map_err(err)?;
        let end = part.log_end_offset().map_err(err)?;
        let position = if c.from_beginning { 0 } else { end };
        parts.push((part, position, end));
    }
    if parts.is_empty() {
        return Err(no_partition(c));
    }
    let limit = c.max_messages.unwrap_or(usize::MAX);
    let mut printed = 0;
    // Following the whole topic, partitions added meanwhile are followed too, each
    // from its start: every record in them came after this run began.
    let mut known = count;
    let mut looked = Instant::now();
    'reading: while printed < limit {
        if c.follow && c.partition.is_none() && looked.elapsed() >= ADDED_PARTITIONS_EVERY {
            looked = Instant::now();
            follow_added(&store, &c.topic, &mut known, &mut parts);
        }
        // With several partitions, each waits briefly in turn.
        let wait = Duration::from_millis(100) / parts.len().min(100) as u32;
        let mut caught_up = true;
        for (part, position, end) in &mut parts {
            let (records, next) = if c.follow {
                part.poll_on(*position, 1 << 20, wait).map_err(err)?
            } else if *position < *end {
                part.read_on(*position, 1 << 20).map_err(err)?
            } else {
                (Vec::new(), *position)
            };
            let printed_before = printed;
            for r in records {
                if printed == limit {
                    break 'reading;
                }
                if !c.follow && r.offset >= *end {
                    break;
                }
                let printed_record = Printed {
                    topic: &c.topic,
                    partition: part.topic_partition().partition(),
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: &r.headers,
                };
                print(c, &printed_record, out).map_err(|e| e.to_string())?;
                printed += 1;
            }
            if c.follow && printed > printed_before {
                // Following: what was printed reaches a pipe now, not at exit.
                out.flush().map_err(|e| e.to_string())?;
            }
            // On past what was read, records or not (markers, emptied batches); when
            // nothing was read below the end, there is nothing more below it.
            if next > *position {
                *position = next;
            } else if !c.follow {
                *position = *end;
            }
            if *position < *end {
                caught_up = false;
            }
        }
        if !c.follow && caught_up {
            break;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(printed)
}

/// The error for a `--partition` (or a topic) with nothing to read.
fn no_partition(c: &Consume) -> String {
    match c.partition {
        Some(p) => format!("topic {} has no partition {p}", c.topic),
        None => format!("topic {} has no partitions", c.topic),
    }
}

/// How often a read-only `--follow` looks for partitions added to its topic.
const ADDED_PARTITIONS_EVERY: Duration = Duration::from_secs(1);

/// Adds to `parts` the partitions of `topic` past the `known` count, each from its log
/// start. One not readable yet (its directory still being made) is looked for again
/// next time; a topic no longer there adds nothing (the partitions read report that).
fn follow_added(
    store: &streamlog::ReadOnlyStore,
    topic: &str,
    known: &mut i32,
    parts: &mut Vec<(streamlog::ReadOnlyPartition, i64, i64)>,
) {
    let Ok(count) = store.topic_config(topic).map(|t| t.partition_count()) else {
        return;
    };
    while *known < count {
        let Ok(part) = store.partition(topic, *known) else {
            return;
        };
        let Ok(start) = part.log_start_offset() else {
            return;
        };
        parts.push((part, start, start));
        *known += 1;
    }
}

/// One record to print, from a consumer or a read-only partition.
struct Printed<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [streamlog::Header],
}

fn print(c: &Consume, r: &Printed<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    match c.format {
        // The bytes as stored, as Kafka's console consumer prints them (not made UTF-8:
        // `produce` sends lines that are not UTF-8 as they are).
        Format::Text => {
            let mut line = Vec::new();
            if c.print_key {
                line.extend_from_slice(r.key.unwrap_or(b"null"));
                line.push(b'\t');
            }
            line.extend_from_slice(r.value.unwrap_or(b"null"));
            line.push(b'\n');
            out.write_all(&line)
        }
        Format::Json => {
            let headers: Vec<serde_json::Value> = r
                .headers
                .iter()
                .map(|h| serde_json::json!({"key": h.key, "value": text(h.value.as_deref())}))
                .collect();
            let line = serde_json::json!({
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": text(r.key),
                "value": text(r.value),
                "headers": headers,
            });
            writeln!(out, "{line}")
        }
    }
}
