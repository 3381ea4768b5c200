//! `streamlog import-kafka`: adopts a Kafka topic's partition directories as a store
//! topic (`Store::import_kafka_topic`), copying them first from a Kafka log directory
//! when `--from` names one. The Kafka directory is only read; the copies are the
//! command's own, removed again if the import refuses them. Kafka's log start offsets
//! (its log directory's `log-start-offset-checkpoint`) go into the copies, so records
//! Kafka deleted stay deleted; without `--from`, `--log-start-offsets` names that file
//! and they go into the partition directories already in place. A copy cut short while moving the directories into place
//! leaves a `.import+<topic>-<n>` that stops every later import of the topic until the
//! user renames or removes it. (`+` is no topic name's: no store topic's directory has
//! such a name.)

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::store_arg::{StoreDir, key_value};
use crate::topics::with_configs;

/// `import-kafka`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ImportKafka {
    #[command(flatten)]
    store: StoreDir,
    /// The topic: its partition directories are `<TOPIC>-0`, `<TOPIC>-1`, ...
    topic: String,
    /// A Kafka log directory (a stopped broker's `log.dirs`) to copy the topic's
    /// partition directories from; without it they must already be in the store
    /// directory
    #[arg(long, value_name = "KAFKA_LOG_DIR")]
    from: Option<PathBuf>,
    /// Without --from: Kafka's `log-start-offset-checkpoint` (in the broker's log
    /// directory, not a partition's) whose log start offsets the imported partitions
    /// take, so records Kafka's DeleteRecords removed stay removed (with --from it is
    /// read from KAFKA_LOG_DIR)
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    log_start_offsets: Option<PathBuf>,
    /// The topic's partition count in Kafka: the import is refused unless exactly that
    /// many partition directories are found (a topic spread over several log
    /// directories, or brokers, must be gathered in one first). Without it, the
    /// directories found are taken for the whole topic
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    partitions: Option<u32>,
    /// A config for the new topic, by Kafka's name, e.g. retention.ms=60000 (repeat for
    /// several). Default: the store's defaults, but no time retention (retention.ms=-1):
    /// the copies keep Kafka's timestamps, and 7 days would delete every older record at
    /// the next maintenance pass (the Kafka topic kept them)
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = key_value)]
    configs: Vec<(String, String)>,
}

/// The topic's partition directories in `dir`, by partition number: `<topic>-<n>` for
/// n = 0, 1, ... without a gap (Kafka numbers them so).
fn partition_dirs(dir: &Path, topic: &str) -> Result<Vec<PathBuf>, String> {
    let found = numbered_dirs(dir, topic)?;
    for (expected, (n, path)) in found.iter().enumerate() {
        if *n as usize != expected {
            return Err(format!(
                "{}: partition {expected} of `{topic}` is missing",
                path.display()
            ));
        }
    }
    if found.is_empty() {
        return Err(format!("{}: no `{topic}-0` directory", dir.display()));
    }
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// `n` of a name that is exactly `<topic>-<n>`, as the store reads them (no `-01`, no
/// `-+1`).
fn partition_number(name: &str, topic: &str) -> Option<u32> {
    name.strip_prefix(topic)
        .and_then(|n| n.strip_prefix('-'))
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| name == format!("{topic}-{n}"))
}

/// Every `<topic>-<n>` directory in `dir`, sorted by `n`.
fn numbered_dirs(dir: &Path, topic: &str) -> Result<Vec<(u32, PathBuf)>, String> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|name| partition_number(name, topic))
        else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What a partition directory's name starts with while it is copied: `+` is in no
/// topic name, so no store topic's directory is taken for a copy (a topic `.import-x`'s
/// `.import-x-0` was taken for a copy of `x` cut short, and the user told to remove it).
const STAGING_PREFIX: &str = ".import+";

/// A `.import+<topic>-<n>` directory in `dir`, if any.
fn leftover_staging_dir(dir: &Path, topic: &str) -> Result<Option<PathBuf>, String> {
    let staged = format!("{STAGING_PREFIX}{topic}");
    Ok(numbered_dirs(dir, &staged)?
        .into_iter()
        .next()
        .map(|(_, p)| p))
}

/// A progress bar on a terminal (indicatif draws nothing when stderr is not one).
fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// The name a partition directory is copied under before it is complete: the store
/// ignores it, so a copy cut short is never imported.
fn staging_name(name: &std::ffi::OsStr) -> PathBuf {
    let mut staged = std::ffi::OsString::from(STAGING_PREFIX);
    staged.push(name);
    PathBuf::from(staged)
}

/// Kafka's `log-start-offset-checkpoint` of a log directory: each partition's log start
/// offset where DeleteRecords (or a Streams purge of a repartition topic) moved it past
/// the first segment's base. Lines `<topic> <partition> <offset>` after a version (0)
/// and a count.
const LOG_START_FILE: &str = "log-start-offset-checkpoint";

/// The log start offsets the checkpoint file `path` (Kafka's
/// `<log_dir>/log-start-offset-checkpoint`) gives `topic`'s partitions (none without
/// the file).
fn log_start_offsets(path: &Path, topic: &str) -> Result<BTreeMap<u32, i64>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    let bad = |why: &str| format!("{}: not Kafka's checkpoint file ({why})", path.display());
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad("its first line is not version 0"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("its second line is not a count"))?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| bad("fewer entries than its count"))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [t, p, o] = fields[..] else {
            return Err(bad(&format!("line `{line}`")));
        };
        let (Ok(p), Ok(o)) = (p.parse::<u32>(), o.parse::<i64>()) else {
            return Err(bad(&format!("line `{line}`")));
        };
        if t == topic && o >= 0 {
            out.insert(p, o);
        }
    }
    Ok(out)
}

/// Writes each partition's log start offset from Kafka's checkpoint into its directory
/// (the partition's own `log-start-offset-checkpoint`, what the store reads), for the
/// partitions it names. A directory holding such a file already keeps it, if it says
/// the same; otherwise the import is refused. `written` gets each file made.
fn write_log_starts(
    dirs: &[PathBuf],
    log_starts: &BTreeMap<u32, i64>,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let err = |what: &str, p: &Path, e: io::Error| format!("{what} {}: {e}", p.display());
    for (p, dir) in dirs.iter().enumerate() {
        let Some(&offset) = log_starts.get(&(p as u32)) else {
            continue;
        };
        let name = dir.file_name().expect("named").to_string_lossy();
        let (topic, partition) = name.rsplit_once('-').expect("`<topic>-<n>`");
        let text = format!("0\n1\n{topic} {partition} {offset}\n");
        let path = dir.join(LOG_START_FILE);
        match fs::read_to_string(&path) {
            Ok(held) if held == text => continue,
            Ok(_) => {
                return Err(format!(
                    "{} holds another log start offset than the checkpoint's ({offset}): \
                     remove one of them",
                    path.display()
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("read", &path, e)),
        }
        let mut file = fs::File::create_new(&path).map_err(|e| err("create", &path, e))?;
        written.push(path.clone());
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| err("write", &path, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err("sync", dir, e))?;
    }
    Ok(())
}

/// Copies the files of each directory in `from` into a new directory of the same name
/// in `into`: first under a staging name, synced, then renamed into place (and the
/// store directory synced). `created` gets every directory it made (also on error, so
/// they can be removed). Only regular files are copied; anything else is refused.
fn copy_dirs(
    from: &[PathBuf],
    into: &Path,
    log_starts: &BTreeMap<u32, i64>,
    created: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let err = |what: &str, p: &Path, e: io::Error| format!("{what} {}: {e}", p.display());
    let mut files = Vec::new();
    // Never onto anything of the user's: a rename replaces an empty directory.
    let taken = |p: &Path| fs::symlink_metadata(p).is_ok();
    for dir in from {
        let name = dir.file_name().expect("a partition directory has a name");
        let target = into.join(name);
        if taken(&target) {
            return Err(format!("{} exists already", target.display()));
        }
        let staged = into.join(staging_name(name));
        if staged.exists() {
            return Err(format!(
                "{} exists: an earlier import was cut short; remove it and retry",
                staged.display()
            ));
        }
        for entry in fs::read_dir(dir).map_err(|e| err("read", dir, e))? {
            let entry = entry.map_err(|e| err("read", dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| err("stat", &path, e))?;
            if !kind.is_file() {
                return Err(format!(
                    "{}: not a regular file (a Kafka partition directory holds only files)",
                    path.display()
                ));
            }
            // Segments Kafka had already dropped (`.deleted`, removed a minute later) or
            // a compaction output it never swapped in (`.cleaned`): its next start
            // deletes them, so they are not part of the topic.
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".deleted") || name.ends_with(".cleaned") {
                continue;
            }
            let len = entry.metadata().map_err(|e| err("stat", &path, e))?.len();
            files.push((path, staged.join(entry.file_name()), len));
        }
    }
    let bar = progress(files.iter().map(|f| f.2).sum(), "copying");
    let mut targets = Vec::new();
    for dir in from {
        let name = dir.file_name().expect("named");
        let staged = into.join(staging_name(name));
        fs::create_dir(&staged).map_err(|e| err("create", &staged, e))?;
        created.push(staged);
        targets.push(into.join(name));
    }
    for (src, dst, _) in &files {
        let mut input = fs::File::open(src).map_err(|e| err("open", src, e))?;
        let mut output = fs::File::create_new(dst).map_err(|e| err("create", dst, e))?;
        io::copy(&mut input, &mut bar.wrap_write(&mut output)).map_err(|e| err("copy", src, e))?;
        output.sync_all().map_err(|e| err("sync", dst, e))?;
    }
    bar.finish_and_clear();
    // Each copy's log start offset, in the partition's own checkpoint (what the store
    // reads): without it, records Kafka had deleted would be readable again.
    for (p, staged) in created.iter().enumerate() {
        let Some(&offset) = log_starts.get(&(p as u32)) else {
            continue;
        };
        let name = from[p].file_name().expect("named").to_string_lossy();
        let (topic, partition) = name.rsplit_once('-').expect("`<topic>-<n>`");
        let path = staged.join(LOG_START_FILE);
        let mut file = fs::File::create_new(&path).map_err(|e| err("create", &path, e))?;
        file.write_all(format!("0\n1\n{topic} {partition} {offset}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| err("write", &path, e))?;
    }
    let sync_dir = |dir: &Path| {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err("sync", dir, e))
    };
    for (staged, target) in created.iter_mut().zip(targets) {
        sync_dir(staged)?;
        if taken(&target) {
            return Err(format!("{} appeared meanwhile", target.display()));
        }
        fs::rename(&*staged, &target).map_err(|e| err("rename", staged, e))?;
        *staged = target;
    }
    sync_dir(into)
}

/// Imports; prints one line per partition and a summary.
pub fn run(i: &ImportKafka, out: &mut dyn Write) -> Result<(), String> {
    // No time retention unless asked: the log directories carry no topic config, and the
    // default 7 days would delete what Kafka was keeping (longer retention, compaction).
    let config = with_configs(
        streamlog::TopicConfig::default().retention_ms(-1),
        &i.configs,
    )?;
    // An earlier `--from` cut short: while copying (only staging directories, some
    // incomplete), or while moving the copies into place (the store would adopt those
    // already moved as the whole topic).
    if let Some(staged) = leftover_staging_dir(&i.store.dir, &i.topic)? {
        let moved = numbered_dirs(&i.store.dir, &i.topic)?;
        return Err(match moved.first() {
            None => format!(
                "{} is left from an import that was cut short while copying (its files \
                 may be incomplete): remove it and import again",
                staged.display()
            ),
            Some((_, first)) => format!(
                "{} is left from an import that was cut short while moving its complete \
                 copies into place ({} is moved already): rename each `{STAGING_PREFIX}{}-<n>` \
                 to `{}-<n>` to import what was copied, or remove them all to start again",
                staged.display(),
                first.display(),
                i.topic,
                i.topic
            ),
        });
    }
    // The partition directories are checked before a store is opened or made: an
    // import refused for them writes nothing.
    let source = i.from.as_deref().unwrap_or(&i.store.dir);
    let found = partition_dirs(source, &i.topic)?.len();
    match i.partitions {
        Some(n) if n as usize != found => {
            return Err(format!(
                "{} holds {found} partition directories of `{}`, not {n}: gather every \
                 partition of the topic there first (a broker with several log.dirs \
                 spreads them)",
                source.display(),
                i.topic
            ));
        }
        Some(_) => {}
        None => eprintln!(
            "streamlog: note: importing the {found} partition(s) of `{}` found in {}; a \
             topic with more (spread over several log.dirs or brokers) needs them all \
             there, and --partitions N checks the count",
            i.topic,
            source.display()
        ),
    }
    // A new store: in an empty directory, or (without --from) one that holds only the
    // topic's partition directories, put there to be adopted.
    let store = match &i.from {
        Some(_) => i.store.open_or_create()?,
        None => i
            .store
            .open_or_create_beside(&|name| partition_number(name, &i.topic).is_some())?,
    };
    let mut created = Vec::new();
    // The log start checkpoints written into the user's partition directories.
    let mut written = Vec::new();
    // Whether what was copied may be removed on failure: not after an I/O error of the
    // import itself, which may have come after the store adopted the copies.
    let mut refused = true;
    let result = (|| {
        // Not the store's own partitions: the advice below (remove them) would be
        // about the store's data.
        if store.topic(&i.topic).is_ok() {
            return Err(format!(
                "the store has a topic `{}` already (delete it first to import Kafka's)",
                i.topic
            ));
        }
        if let Some(from) = &i.from {
            let dirs = partition_dirs(from, &i.topic)?;
            let log_starts = log_start_offsets(&from.join(LOG_START_FILE), &i.topic)?;
            // The store adopts every `<topic>-<n>` it holds: with some there already,
            // it would adopt a mix of those and the copies.
            if let Some((_, present)) = numbered_dirs(&i.store.dir, &i.topic)?.first() {
                return Err(format!(
                    "{} exists already: import the directories there without --from, or \
                     remove them",
                    present.display()
                ));
            }
            copy_dirs(&dirs, &i.store.dir, &log_starts, &mut created)?;
        } else if let Some(file) = &i.log_start_offsets {
            if !file.is_file() {
                return Err(format!("{}: no such file", file.display()));
            }
            let log_starts = log_start_offsets(file, &i.topic)?;
            let dirs = partition_dirs(&i.store.dir, &i.topic)?;
            write_log_starts(&dirs, &log_starts, &mut written)?;
        } else {
            eprintln!(
                "streamlog: note: without --from or --log-start-offsets, Kafka's log start \
                 offsets are not read: records its DeleteRecords removed are imported unless \
                 a partition directory holds its own log-start-offset-checkpoint"
            );
        }
        store.import_kafka_topic(&i.topic, config).map_err(|e| {
            refused = !matches!(
                e,
                streamlog::Error::Io { .. } | streamlog::Error::Poisoned { .. }
            );
            format!("import `{}`: {e}", i.topic)
        })
    })();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            // Only the copies this command made, and only when the store refused them
            // before adopting anything (damage, a bad name or config).
            if refused {
                for dir in &created {
                    let _ = fs::remove_dir_all(dir);
                }
                for file in &written {
                    let _ = fs::remove_file(file);
                }
            } else if !created.is_empty() {
                eprintln!(
                    "streamlog: the copies are left in {} (the store may have adopted them)",
                    i.store.dir.display()
                );
            }
            return Err(e);
        }
    };
    let io = |e: io::Error| e.to_string();
    let mut records = 0;
    let topic = store.topic(&report.topic).map_err(|e| e.to_string())?;
    for (n, (dir, check)) in report.partitions.iter().enumerate() {
        // Past the first segment where Kafka's checkpoint said so.
        let start = topic
            .partition(n as i32)
            .map_err(|e| e.to_string())?
            .log_start_offset();
        records += check.log_end_offset - start;
        writeln!(
            out,
            "{}-{n}: offsets {start}..{}, {} segments, {} batches, {} bytes (from {})",
            report.topic,
            check.log_end_offset,
            check.segments,
            check.batches,
            check.bytes,
            dir.display()
        )
        .map_err(io)?;
        for problem in &check.index_problems {
            writeln!(out, "  index: {problem}").map_err(io)?;
        }
    }
    writeln!(
        out,
        "Imported topic {} ({} partitions, {records} offsets, topic id {}).",
        report.topic,
        report.partitions.len(),
        report.topic_id
    )
    .map_err(io)?;
    store.close().map_err(|e| e.to_string())
}
