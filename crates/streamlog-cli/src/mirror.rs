//! `streamlog mirror to-kafka|from-kafka`: the Kafka bridge (`streamlog-kafka`) on the
//! command line, with Kafka client settings passed through as kcat's `-X key=value`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use streamlog::{Store, TopicPartition};
use streamlog_kafka::{KafkaSinkConfig, KafkaSourceConfig, Mirror, StartFrom};

/// Exit status when the mirror stopped on an error.
const EXIT_FAILED: u8 = 1;

/// The two directions.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Direction {
    /// Copies store topics to Kafka topics of the same name and partition count (created
    /// through Kafka's admin API when missing)
    ///
    /// Each record keeps its partition, key, value, headers and timestamp and gets a
    /// `streamlog.source.offset` header (and `streamlog.source.topic.id`, the store
    /// topic's id). Progress is committed to a streamlog consumer group (--group), whose
    /// lag is printed every --progress-secs.
    ToKafka(ToKafka),
    /// Copies Kafka topics into store topics of the same name and partition count
    /// (created when missing)
    ///
    /// Each record keeps its partition, key, value, headers and timestamp and gets a
    /// `streamlog.kafka.offset` header.
    FromKafka(FromKafka),
}

/// Where to start a partition the destination has no record of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The first record the source holds
    Earliest,
    /// Only records that arrive from now on
    Latest,
}

impl From {
    fn start(self) -> StartFrom {
        match self {
            From::Earliest => StartFrom::Earliest,
            From::Latest => StartFrom::Latest,
        }
    }
}

/// Arguments both directions take.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Common {
    /// The store directory
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Kafka's bootstrap servers (host:port,host:port)
    #[arg(short, long, value_name = "SERVERS")]
    pub bootstrap: String,
    /// A Kafka client setting passed to librdkafka as it is (repeatable), e.g.
    /// -X compression.type=zstd -X security.protocol=plaintext
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,
    /// Where to start a partition the destination holds no mirrored record of
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: From,
    /// Exit once everything the source holds now is copied, instead of following new
    /// records until killed (Ctrl-C is safe: the next run resumes exactly)
    #[arg(long)]
    pub exit_at_end: bool,
    /// Print progress to stderr every this many seconds (0 = never)
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub progress_secs: u64,
}

/// `streamlog mirror to-kafka`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ToKafka {
    #[command(flatten)]
    pub common: Common,
    /// A store topic to copy (repeatable)
    #[arg(short, long = "topic", value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,
    /// The streamlog consumer group the mirror commits its progress to
    #[arg(long, default_value = "streamlog-kafka-sink")]
    pub group: String,
    /// Do not create missing Kafka topics (a missing topic is then an error)
    #[arg(long)]
    pub no_create_topics: bool,
    /// Replication factor of created topics (-1 = the broker's default)
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,
}

/// `streamlog mirror from-kafka`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FromKafka {
    #[command(flatten)]
    pub common: Common,
    /// A Kafka topic to copy as a member of --group (repeatable)
    #[arg(
        short,
        long = "topic",
        value_name = "TOPIC",
        required_unless_present = "partitions"
    )]
    pub topics: Vec<String>,
    /// An explicit Kafka partition to copy, TOPIC:PARTITION (repeatable; no group
    /// assignment)
    #[arg(short, long = "partition", value_name = "TOPIC:N", value_parser = parse_partition,
          conflicts_with = "topics")]
    pub partitions: Vec<TopicPartition>,
    /// The Kafka consumer group
    #[arg(long, default_value = "streamlog-kafka-source")]
    pub group: String,
    /// A config of the store topics the mirror creates, by Kafka's name, e.g.
    /// retention.ms=604800000 (repeatable). Default: no time retention, as copies keep
    /// their Kafka timestamps (the Kafka topic's own config is not read)
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = crate::store_arg::key_value)]
    pub configs: Vec<(String, String)>,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    streamlog_kafka::parse_setting(s).map_err(|e| e.to_string())
}

fn parse_partition(s: &str) -> Result<TopicPartition, String> {
    let (topic, n) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not TOPIC:PARTITION"))?;
    let n: i32 = n
        .parse()
        .map_err(|_| format!("`{n}` in `{s}` is not a partition number"))?;
    Ok(TopicPartition::new(topic, n))
}

/// Runs a mirror until it ends (--exit-at-end) or the process is killed.
pub fn run(direction: &Direction) -> ExitCode {
    let (common, name) = match direction {
        Direction::ToKafka(a) => (&a.common, "to-kafka"),
        Direction::FromKafka(a) => (&a.common, "from-kafka"),
    };
    // Checked before the store is opened (which may create one).
    let defaults = KafkaSourceConfig::default();
    let topic_config = match direction {
        Direction::FromKafka(a) => {
            match crate::topics::with_configs(defaults.topic_config.clone(), &a.configs) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("streamlog mirror {name}: --config: {e}");
                    return ExitCode::from(EXIT_FAILED);
                }
            }
        }
        Direction::ToKafka(_) => None,
    };
    // As every store command: the directory must hold a store (a mistyped path, or
    // any other directory, is refused, not made a store), or be empty for a mirror
    // from Kafka, which may start a new one.
    let nothing: &dyn Fn(&str) -> bool = &|_| false;
    let create = matches!(direction, Direction::FromKafka(_)).then_some(nothing);
    let opened = crate::store_arg::check_store_dir(&common.store, create)
        .and_then(|()| Store::open(&common.store).map_err(|e| e.to_string()));
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("streamlog mirror {name}: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let (mirror, group) = match direction {
        Direction::ToKafka(a) => (
            Mirror::to_kafka(
                &store,
                KafkaSinkConfig {
                    bootstrap: common.bootstrap.clone(),
                    topics: a.topics.clone(),
                    group_id: a.group.clone(),
                    kafka: common.settings.clone(),
                    create_topics: !a.no_create_topics,
                    replication_factor: a.replication_factor,
                    start: common.from.start(),
                    stop_at_end: common.exit_at_end,
                    ..KafkaSinkConfig::default()
                },
            ),
            Some(a.group.clone()),
        ),
        Direction::FromKafka(a) => (
            Mirror::from_kafka(
                &store,
                KafkaSourceConfig {
                    bootstrap: common.bootstrap.clone(),
                    topics: a.topics.clone(),
                    partitions: (!a.partitions.is_empty()).then(|| a.partitions.clone()),
                    group_id: a.group.clone(),
                    kafka: common.settings.clone(),
                    start: common.from.start(),
                    stop_at_end: common.exit_at_end,
                    topic_config: topic_config.unwrap_or(defaults.topic_config),
                    ..defaults
                },
            ),
            None,
        ),
    };
    let mirror = match mirror {
        Ok(m) => m,
        Err(e) => {
            eprintln!("streamlog mirror {name}: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if common.progress_secs > 0 {
        let every = Duration::from_secs(common.progress_secs);
        // Wakes for each report or as soon as the mirror ends.
        while !mirror.wait_for_positions(&unreachable_targets(&mirror), every) {
            if mirror.is_finished() {
                break;
            }
            print_progress(&store, &mirror, group.as_deref());
        }
    }
    let result = mirror.join();
    let closed = store.close();
    match result.map_err(|e| e.to_string()).and_then(|stats| {
        closed.map_err(|e| e.to_string())?;
        Ok(stats)
    }) {
        Ok(stats) => {
            eprintln!("streamlog mirror {name}: {} records copied", stats.records);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("streamlog mirror {name}: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Targets never reached, so that `wait_for_positions` serves as "sleep unless the
/// mirror ends".
fn unreachable_targets(mirror: &Mirror) -> std::collections::BTreeMap<TopicPartition, i64> {
    let mut t: std::collections::BTreeMap<_, _> = mirror
        .positions()
        .into_keys()
        .map(|tp| (tp, i64::MAX))
        .collect();
    if t.is_empty() {
        t.insert(TopicPartition::new("", -1), i64::MAX);
    }
    t
}

/// One line per partition: the position copied up to, and for the sink the lag of its
/// streamlog group as `describe_group` reports it, `-` before its first commit (as
/// Kafka's kafka-consumer-groups shows a partition with no committed offset).
fn print_progress(store: &Store, mirror: &Mirror, group: Option<&str>) {
    let described = group.map(|g| store.describe_group(g).ok());
    for (tp, position) in mirror.positions() {
        let lag = match &described {
            None => String::new(),
            Some(d) => match d
                .as_ref()
                .and_then(|d| d.offsets.iter().find(|o| o.partition == tp))
            {
                Some(o) => format!(" lag {}", o.lag),
                None => " lag -".to_string(),
            },
        };
        eprintln!("{tp} position {position}{lag}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_settings_parse() {
        assert_eq!(
            parse_partition("a:b:3").unwrap(),
            TopicPartition::new("a:b", 3)
        );
        assert!(parse_partition("orders").is_err());
        assert!(parse_partition("orders:x").is_err());
        assert_eq!(
            parse_setting("acks=all").unwrap(),
            ("acks".to_string(), "all".to_string())
        );
        assert!(parse_setting("acks").is_err());
    }
}
