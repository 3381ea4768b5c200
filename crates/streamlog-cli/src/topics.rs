//! `streamlog topics`: list, describe, create, delete and alter topics (Kafka's
//! `kafka-topics` and `kafka-configs --entity-type topics`).

use std::io::Write;

use clap::{Args, Subcommand};
use streamlog::{Store, TopicConfig, TopicDescription};

use crate::store_arg::{StoreDir, key_value};

/// A `topics` command.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Topics {
    /// Lists the topics, one per line (kafka-topics --list)
    List(StoreDir),
    /// Partitions (offsets, sizes, segments) and config of one or every topic
    /// (kafka-topics --describe)
    Describe {
        #[command(flatten)]
        store: StoreDir,
        /// The topic [default: every topic]
        topic: Option<String>,
    },
    /// Creates a topic (kafka-topics --create)
    Create(Create),
    /// Deletes a topic and its data (kafka-topics --delete)
    Delete {
        #[command(flatten)]
        store: StoreDir,
        /// The topic
        topic: String,
    },
    /// Changes a topic's config: retention, cleanup policy, compaction and segment
    /// settings, max.message.bytes (kafka-configs --alter); or adds partitions
    /// (kafka-topics --alter --partitions)
    Alter {
        #[command(flatten)]
        store: StoreDir,
        /// The topic
        topic: String,
        /// A config to set, by Kafka's name (repeat for several)
        #[arg(long = "config", value_name = "NAME=VALUE", value_parser = key_value,
              required_unless_present = "partitions")]
        configs: Vec<(String, String)>,
        /// The new partition count: more than it has (keyed records of the existing
        /// partitions do not move, so a key may land elsewhere from now on)
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
    },
}

/// `topics create`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Create {
    #[command(flatten)]
    store: StoreDir,
    /// The topic
    topic: String,
    /// Partitions
    #[arg(long, default_value = "1")]
    partitions: i32,
    /// A config to set, by Kafka's name, e.g. retention.ms=60000 (repeat for several)
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = key_value)]
    configs: Vec<(String, String)>,
}

pub(crate) fn with_configs(
    config: TopicConfig,
    configs: &[(String, String)],
) -> Result<TopicConfig, String> {
    // Together: knobs whose rules tie them may come in any order.
    config
        .set_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| e.to_string())
}

/// Runs a `topics` command; `Err` is the message for stderr.
pub fn run(command: &Topics, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match command {
        // Reads open the store read-only: they work while its writer runs.
        Topics::List(dir) => {
            let store = dir.open_read_only()?;
            for t in store.list_topics().map_err(|e| e.to_string())? {
                writeln!(out, "{t}").map_err(io)?;
            }
            Ok(())
        }
        Topics::Describe { store: dir, topic } => {
            let store = dir.open_read_only()?;
            let topics = match topic {
                Some(t) => vec![t.clone()],
                None => store.list_topics().map_err(|e| e.to_string())?,
            };
            for t in topics {
                let d = store.describe_topic(&t).map_err(|e| e.to_string())?;
                describe(&d, out)?;
            }
            Ok(())
        }
        Topics::Create(c) => {
            let config = with_configs(TopicConfig::default().partitions(c.partitions), &c.configs)?;
            // Checked before the store is opened, which makes one in an empty directory.
            streamlog::validate_new_topic_name(&c.topic)
                .and_then(|()| config.validate())
                .map_err(|e| e.to_string())?;
            let store = c.store.open_or_create()?;
            store
                .create_topic(&c.topic, config)
                .map_err(|e| e.to_string())?;
            writeln!(out, "Created topic {}.", c.topic).map_err(io)?;
            close(store)
        }
        Topics::Delete { store: dir, topic } => {
            let store = dir.open()?;
            store.delete_topic(topic).map_err(|e| e.to_string())?;
            writeln!(out, "Deleted topic {topic}.").map_err(io)?;
            close(store)
        }
        Topics::Alter {
            store: dir,
            topic,
            configs,
            partitions,
        } => {
            let store = dir.open()?;
            // Checked before anything is written: an unknown name changes nothing.
            let current = store
                .describe_topic(topic)
                .map_err(|e| e.to_string())?
                .config;
            if let Some(total) = *partitions
                && total <= current.partition_count()
            {
                return Err(format!(
                    "topic {topic} has {} partitions: --partitions must be more (nothing \
                     was changed)",
                    current.partition_count()
                ));
            }
            let wanted = with_configs(current.clone(), configs)?;
            current
                .check_alterable(&wanted)
                .map_err(|e| e.to_string())?;
            // Partitions first: `add_partitions` refuses for reasons only it checks (a
            // count over its limit, a directory in the way), and a config it would
            // leave changed behind it must not be written yet. After them, the config
            // checked above fails only if the disk does.
            if let Some(total) = *partitions {
                store
                    .add_partitions(topic, total)
                    .map_err(|e| e.to_string())?;
                writeln!(out, "Topic {topic} has {total} partitions.").map_err(io)?;
            }
            if !configs.is_empty() {
                store
                    .alter_topic_config(topic, |now| {
                        wanted.clone().partitions(now.partition_count())
                    })
                    .map_err(|e| e.to_string())?;
                writeln!(out, "Altered the config of topic {topic}.").map_err(io)?;
            }
            close(store)
        }
    }
}

fn describe(d: &TopicDescription, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let configs: Vec<String> = d
        .config
        .entries()
        .into_iter()
        .filter(|(n, v)| {
            *n != "partitions" && !(n.starts_with("retention.gate") && (v.is_empty() || v == "-1"))
        })
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    writeln!(
        out,
        "Topic: {}\tPartitionCount: {}\tConfigs: {}",
        d.name,
        d.partitions.len(),
        configs.join(",")
    )
    .map_err(io)?;
    for p in &d.partitions {
        writeln!(
            out,
            "\tTopic: {}\tPartition: {}\tLogStartOffset: {}\tLogEndOffset: {}\tSize: {}\tSegments: {}",
            d.name, p.partition, p.log_start_offset, p.log_end_offset, p.size_bytes, p.segment_count
        )
        .map_err(io)?;
    }
    Ok(())
}

/// Closes the store, reporting a failure.
pub fn close(store: Store) -> Result<(), String> {
    store.close().map_err(|e| format!("close the store: {e}"))
}
