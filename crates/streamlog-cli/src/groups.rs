//! `streamlog groups`: list, describe, reset the offsets of, and delete consumer groups
//! (Kafka's `kafka-consumer-groups`).

use std::io::Write;

use clap::{ArgGroup, Args, Subcommand};
use streamlog::{OffsetSpec, TopicDescription, TopicPartition};

use crate::store_arg::StoreDir;
use crate::topics::close;

/// A `groups` command.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Groups {
    /// Lists the groups with members or committed offsets (kafka-consumer-groups --list)
    List(StoreDir),
    /// A group's committed offsets, log end offsets and lag per partition, and its
    /// members (kafka-consumer-groups --describe)
    Describe {
        #[command(flatten)]
        store: StoreDir,
        /// The group
        group: String,
    },
    /// Moves a group's committed offsets; prints the plan and changes nothing unless
    /// --execute is given (kafka-consumer-groups --reset-offsets)
    ResetOffsets(Reset),
    /// Deletes a group's committed offsets (kafka-consumer-groups --delete)
    Delete {
        #[command(flatten)]
        store: StoreDir,
        /// The group
        group: String,
    },
}

/// `groups reset-offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])))]
pub struct Reset {
    #[command(flatten)]
    store: StoreDir,
    /// The group
    group: String,
    /// TOPIC for all its partitions, or TOPIC:P,Q for some (repeat for several)
    #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]", required = true)]
    topics: Vec<String>,
    /// To each partition's log start offset
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's log end offset
    #[arg(long)]
    to_latest: bool,
    /// To the first offset at or after this time (milliseconds since the Unix epoch)
    #[arg(long, value_name = "MS")]
    to_datetime: Option<i64>,
    /// To this offset (kept within each partition's records)
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// By this many records (negative: back)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Commit the new offsets (without it: a dry run)
    #[arg(long)]
    execute: bool,
}

impl Reset {
    fn spec(&self) -> OffsetSpec {
        match (self.to_datetime, self.to_offset, self.shift_by) {
            (Some(ms), _, _) => OffsetSpec::Timestamp(ms),
            (_, Some(o), _) => OffsetSpec::Offset(o),
            (_, _, Some(n)) => OffsetSpec::ShiftBy(n),
            _ if self.to_latest => OffsetSpec::Latest,
            _ => OffsetSpec::Earliest,
        }
    }

    /// The partitions of `--topic`; `describe` gives a topic's (the writer's or a
    /// read-only store's).
    fn partitions(
        &self,
        describe: impl Fn(&str) -> streamlog::Result<TopicDescription>,
    ) -> Result<Vec<TopicPartition>, String> {
        let mut out = Vec::new();
        for t in &self.topics {
            match t.split_once(':') {
                Some((topic, list)) => {
                    for p in list.split(',') {
                        let p: i32 = p
                            .parse()
                            .map_err(|_| format!("--topic {t}: `{p}` is not a partition number"))?;
                        out.push(TopicPartition::new(topic, p));
                    }
                }
                None => {
                    let d = describe(t).map_err(|e| e.to_string())?;
                    out.extend(
                        d.partitions
                            .iter()
                            .map(|p| TopicPartition::new(t.as_str(), p.partition)),
                    );
                }
            }
        }
        Ok(out)
    }
}

/// Runs a `groups` command; `Err` is the message for stderr.
pub fn run(command: &Groups, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match command {
        // Reads open the store read-only: they work while its writer runs. The group's
        // members live in the writer's process: the owner column shows `-`.
        Groups::List(dir) => {
            let store = dir.open_read_only()?;
            for g in store.list_groups().map_err(|e| e.to_string())? {
                writeln!(out, "{g}").map_err(io)?;
            }
            Ok(())
        }
        Groups::Describe { store: dir, group } => {
            let store = dir.open_read_only()?;
            let offsets = store
                .describe_group_offsets(group)
                .map_err(|e| e.to_string())?;
            writeln!(
                out,
                "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tOWNER"
            )
            .map_err(io)?;
            for o in &offsets {
                writeln!(
                    out,
                    "{group}\t{}\t{}\t{}\t{}\t{}\t-",
                    o.partition.topic(),
                    o.partition.partition(),
                    o.offset,
                    o.log_end_offset,
                    o.lag
                )
                .map_err(io)?;
            }
            Ok(())
        }
        Groups::ResetOffsets(r) => {
            // A dry run only reads (as `describe`): it works while the group's
            // application runs, and recovers or changes nothing.
            let mut writer = None;
            let plan = if r.execute {
                let store = writer.insert(r.store.open()?);
                let partitions = r.partitions(|t| store.describe_topic(t))?;
                store.alter_group_offsets(&r.group, &partitions, r.spec())
            } else {
                let store = r.store.open_read_only()?;
                let partitions = r.partitions(|t| store.describe_topic(t))?;
                store.plan_group_offsets(&r.group, &partitions, r.spec())
            }
            .map_err(|e| e.to_string())?;
            writeln!(out, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET").map_err(io)?;
            for c in &plan {
                let current = c.current.map_or("-".to_string(), |o| o.to_string());
                writeln!(
                    out,
                    "{}\t{}\t{}\t{current}\t{}",
                    r.group,
                    c.partition.topic(),
                    c.partition.partition(),
                    c.new
                )
                .map_err(io)?;
            }
            if !r.execute {
                writeln!(
                    out,
                    "Dry run: nothing changed (add --execute to commit these offsets)."
                )
                .map_err(io)?;
            }
            writer.map_or(Ok(()), close)
        }
        Groups::Delete { store: dir, group } => {
            let store = dir.open()?;
            store.delete_group(group).map_err(|e| e.to_string())?;
            writeln!(out, "Deleted group {group}.").map_err(io)?;
            close(store)
        }
    }
}
