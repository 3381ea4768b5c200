//! `streamlog produce`: records from lines of standard input (Kafka's
//! `kafka-console-producer`).

use std::io::BufRead;

use clap::Args;
use streamlog::{Acks, ProducerConfig, ProducerRecord};

use crate::store_arg::StoreDir;
use crate::topics::close;

/// `produce`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Produce {
    #[command(flatten)]
    store: StoreDir,
    /// The topic
    topic: String,
    /// Each line is KEY<SEPARATOR>VALUE, split at the first separator (without it, a
    /// line is a value with a null key)
    #[arg(long, value_name = "SEPARATOR")]
    key_separator: Option<String>,
    /// Send every record to this partition [default: by key, as Kafka's partitioner]
    #[arg(long)]
    partition: Option<i32>,
    /// Wait until the records are fsync'd (Acks::All) instead of written (Acks::Leader)
    #[arg(long)]
    sync: bool,
}

/// Sends every line of `input` (bytes, as Kafka's console producer: not necessarily
/// UTF-8); returns how many records were sent. A failure names the line, and how many
/// records before it were sent (each line is sent as it is read).
pub fn run(p: &Produce, input: &mut dyn BufRead) -> Result<usize, String> {
    // Runs as long as its input does: the topic's flush.ms and retention apply meanwhile
    // (the store's maintenance thread), as they would in an application.
    let store = p.store.open_maintained()?;
    let acks = if p.sync { Acks::All } else { Acks::Leader };
    // The topic's max.message.bytes bounds a record, not the client's 1 MiB request
    // (there is no request) nor its 32 MiB of buffer: a topic altered for larger records
    // takes them from here (up to the store's decompression limit).
    let largest = store
        .describe_topic(&p.topic)
        .map_or(0, |d| d.config.settings().max_message_bytes);
    let largest = usize::try_from(largest)
        .unwrap_or(usize::MAX)
        .min(streamlog::format::batch::DEFAULT_MAX_DECOMPRESSED_BYTES);
    let buffer = largest.saturating_mul(2).max(32 << 20);
    let config = ProducerConfig::default()
        .acks(acks)
        .max_request_size(usize::MAX)
        .buffer_memory(buffer);
    let producer = store.producer(config).map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    let mut sent = 0;
    let mut line = Vec::new();
    let separator = p.key_separator.as_deref().map(str::as_bytes);
    loop {
        line.clear();
        let at = |e: &dyn std::fmt::Display| {
            format!(
                "line {}: {e} (the {sent} records before it were sent)",
                sent + 1
            )
        };
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| at(&format!("read standard input: {e}")))?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut record = match separator.and_then(|s| split_once(text, s)) {
            Some((key, value)) => ProducerRecord::new(p.topic.as_str())
                .key(key.to_vec())
                .value(value.to_vec()),
            None => ProducerRecord::new(p.topic.as_str()).value(text.to_vec()),
        };
        if let Some(partition) = p.partition {
            record = record.partition(partition);
        }
        pending.push(producer.send(record).map_err(|e| at(&e))?);
        sent += 1;
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.wait().map_err(|e| e.to_string())?;
            }
        }
    }
    producer.flush().map_err(|e| e.to_string())?;
    for f in pending {
        f.wait().map_err(|e| e.to_string())?;
    }
    producer.close().map_err(|e| e.to_string())?;
    close(store)?;
    Ok(sent)
}

/// `text` split at the first `separator` (an empty one is found at the start, as
/// Kafka's console producer finds it: an empty key).
fn split_once<'a>(text: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() {
        return Some((&[], text));
    }
    let at = text.windows(separator.len()).position(|w| w == separator)?;
    Some((&text[..at], &text[at + separator.len()..]))
}
