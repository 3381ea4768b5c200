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
    /// To the first offset at or after this time: milliseconds since the Unix epoch,
    /// or Kafka's YYYY-MM-DDTHH:mm:SS[.sss] with its zone (Z or +HH:MM; Kafka takes
    /// the tool's local zone where none is given, so one is required here)
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
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

/// `--to-datetime`: milliseconds since the Unix epoch, or
/// `YYYY-MM-DDTHH:mm:SS[.sss]` followed by `Z` or `+HH:MM` / `-HH:MM` (or `+HHMM`).
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "`{s}`: expected milliseconds since the Unix epoch or \
             YYYY-MM-DDTHH:mm:SS[.sss] with a zone (Z or +HH:MM)"
        )
    };
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let (zone_at, offset_minutes) = if let Some(p) = rest.strip_suffix('Z') {
        (p.len(), 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let zone = rest[i + 1..].replace(':', "");
        let (h, m) = (zone.get(..2), zone.get(2..));
        let (Some(h), Some(m)) = (h, m) else {
            return Err(bad());
        };
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if zone.len() != 4 || h > 23 || m > 59 {
            return Err(bad());
        }
        let sign = if rest.as_bytes()[i] == b'-' { -1 } else { 1 };
        (i, sign * (h * 60 + m))
    } else {
        return Err(format!(
            "{}: give its zone (Z or +HH:MM): Kafka would take the tool's local one",
            bad()
        ));
    };
    let number = |t: &str, range: std::ops::RangeInclusive<i64>| {
        t.parse::<i64>()
            .ok()
            .filter(|n| range.contains(n) && t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d[..] else {
        return Err(bad());
    };
    let (y, mo, da) = (
        number(y, 1970..=9999)?,
        number(mo, 1..=12)?,
        number(da, 1..=31)?,
    );
    let time = &rest[..zone_at];
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<&str> = hms.split(':').collect();
    let [h, mi, se] = t[..] else {
        return Err(bad());
    };
    let (h, mi, se) = (number(h, 0..=23)?, number(mi, 0..=59)?, number(se, 0..=59)?);
    if frac.is_empty() || frac.len() > 3 {
        return Err(bad());
    }
    let ms = number(frac, 0..=999)? * 10_i64.pow(3 - frac.len() as u32);
    // Days from 1970-01-01 to the civil date (proleptic Gregorian calendar).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let month_days = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if da > month_days[(mo - 1) as usize] {
        return Err(bad());
    }
    let local = ((days * 24 + h) * 60 + mi) * 60 + se;
    Ok((local - offset_minutes * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    /// From the CLI review: `--to-datetime` took milliseconds only, so Kafka's
    /// `YYYY-MM-DDTHH:mm:SS.sss` (with a zone) failed as a usage error.
    #[test]
    fn kafkas_date_time_form_is_read_with_its_zone() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.000Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-15T00:13:20.5+02:00"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("2023-11-14T17:13:20.000-0500"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        for bad in [
            "2023-11-14T22:13:20.000",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20.1234Z",
            "2023-11-14T22:13:20+2:00",
            "yesterday",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
