//! `streamlog import-kafka`: adopts a Kafka topic's partition directories as a store
//! topic (`Store::import_kafka_topic`), copying them first from a Kafka log directory
//! when `--from` names one. The Kafka directory is only read; the copies are the
//! command's own, removed again if the import refuses them.

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
    /// A config for the new topic, by Kafka's name, e.g. retention.ms=60000 (repeat for
    /// several)
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = key_value)]
    configs: Vec<(String, String)>,
}

/// The topic's partition directories in `dir`, by partition number: `<topic>-<n>` for
/// n = 0, 1, ... without a gap (Kafka numbers them so).
fn partition_dirs(dir: &Path, topic: &str) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(topic))
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((n, entry.path()));
        }
    }
    found.sort();
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

/// Copies the regular files of each directory in `from` into a new directory of the
/// same name in `into`, synced. Returns the directories it created (all of them, also
/// on error, so they can be removed).
fn copy_dirs(from: &[PathBuf], into: &Path, created: &mut Vec<PathBuf>) -> Result<(), String> {
    let err = |what: &str, p: &Path, e: io::Error| format!("{what} {}: {e}", p.display());
    let mut files = Vec::new();
    for dir in from {
        let name = dir.file_name().expect("a partition directory has a name");
        let target = into.join(name);
        if target.exists() {
            return Err(format!(
                "{} exists already: the store holds a directory of that name",
                target.display()
            ));
        }
        for entry in fs::read_dir(dir).map_err(|e| err("read", dir, e))? {
            let entry = entry.map_err(|e| err("read", dir, e))?;
            if entry
                .file_type()
                .map_err(|e| err("stat", &entry.path(), e))?
                .is_file()
            {
                let len = entry
                    .metadata()
                    .map_err(|e| err("stat", &entry.path(), e))?
                    .len();
                files.push((entry.path(), target.join(entry.file_name()), len));
            }
        }
    }
    let bar = progress(files.iter().map(|f| f.2).sum(), "copying");
    for dir in from {
        let target = into.join(dir.file_name().expect("named"));
        fs::create_dir(&target).map_err(|e| err("create", &target, e))?;
        created.push(target);
    }
    for (src, dst, _) in &files {
        let mut input = fs::File::open(src).map_err(|e| err("open", src, e))?;
        let mut output = fs::File::create_new(dst).map_err(|e| err("create", dst, e))?;
        io::copy(&mut input, &mut bar.wrap_write(&mut output)).map_err(|e| err("copy", src, e))?;
        output.sync_all().map_err(|e| err("sync", dst, e))?;
    }
    bar.finish_and_clear();
    for dir in created.iter().chain(std::iter::once(&into.to_path_buf())) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err("sync", dir, e))?;
    }
    Ok(())
}

/// Imports; prints one line per partition and a summary.
pub fn run(i: &ImportKafka, out: &mut dyn Write) -> Result<(), String> {
    let config = with_configs(streamlog::TopicConfig::default(), &i.configs)?;
    let store = i.store.open()?;
    let mut created = Vec::new();
    let result = (|| {
        if let Some(from) = &i.from {
            let dirs = partition_dirs(from, &i.topic)?;
            copy_dirs(&dirs, &i.store.dir, &mut created)?;
        }
        store
            .import_kafka_topic(&i.topic, config)
            .map_err(|e| format!("import `{}`: {e}", i.topic))
    })();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            // Only the copies this command made: the store refused them, so it never
            // adopted them.
            for dir in &created {
                let _ = fs::remove_dir_all(dir);
            }
            return Err(e);
        }
    };
    let io = |e: io::Error| e.to_string();
    let mut records = 0;
    for (n, (dir, check)) in report.partitions.iter().enumerate() {
        records += check.log_end_offset - check.log_start_offset;
        writeln!(
            out,
            "{}-{n}: offsets {}..{}, {} segments, {} batches, {} bytes (from {})",
            report.topic,
            check.log_start_offset,
            check.log_end_offset,
            check.segments,
            check.batches,
            check.bytes,
            dir.display()
        )
        .map_err(io)?;
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
