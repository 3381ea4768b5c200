//! `dump_log`: streamlog's `kafka-dump-log`. Prints the batches or the records of Kafka
//! segment files and checks their indexes against them. It only reads: it does not go
//! through `Log::open`, takes no lock and repairs nothing, so it is safe to point at a
//! directory that a `Log` (or a broker) has open; it then sees a snapshot, and the active
//! segment's preallocated indexes show up as "untrimmed".
//!
//! ```text
//! cargo run --example dump_log -- [--json] [--verify-index] PATH...
//! ```
//!
//! PATH is a `.log` segment file or a partition directory, meaning every `*.log` file in
//! it, in name order (for Kafka's `<20-digit base offset>.log` names, offset order).
//!
//! # Output
//!
//! - Default: a `Dumping <file> (...)` line per file, one line per batch, then a
//!   `Summary: files: .. batches: .. records: .. problems: ..` line. A batch line is
//!   `position: 0 baseOffset: 0 lastOffset: 4 count: 5 codec: lz4 crcValid: true size: 345
//!   maxTimestamp: 1700000000000` (on one line). A control batch adds
//!   ` control: COMMIT coordinatorEpoch: 7` (`ABORT`; the KRaft types `LEADER_CHANGE`,
//!   `SNAPSHOT_HEADER`, ... carry no coordinator epoch).
//! - `--json`: one JSON object per record per line and nothing else on stdout:
//!   `{"offset":0,"timestamp":1700000000000,"key":"k","value":"v","headers":{"h":"1"}}`.
//!   Keys, values and header values are strings (bytes that are not UTF-8 become U+FFFD)
//!   or `null`; headers keep their order, and a repeated header key is repeated in the
//!   object. Control records are **marked, not skipped**: they come out as
//!   `{"offset":7,"timestamp":1700000000000,"control":"COMMIT","coordinatorEpoch":3}`,
//!   with no `key`, `value` or `headers`, so `jq 'select(.control == null)'` drops them.
//! - `--verify-index` (with either mode): checks each segment's `.index` (every entry's
//!   base + relative offset is the last offset of the batch starting at its position;
//!   entries strictly increasing) and `.timeindex` (timestamps strictly increasing, offsets
//!   never decreasing; every entry names the last offset of a batch whose maxTimestamp is
//!   the entry's timestamp). All-zero entries after the last real one are preallocated
//!   space, reported as "untrimmed" but not as an error; a missing index file is noted
//!   (Kafka rebuilds a missing `.index` and recreates a missing `.timeindex` empty). The
//!   verdict per index file goes to stdout (stderr with `--json`).
//!
//! # Errors and exit status
//!
//! Every problem is one `error: ...` line on stderr naming the file and the byte position
//! in it, e.g. `error: .../00000000000000000000.log: corruption at position 345: malformed
//! record batch: field `crc`: ...`. Problems are: a batch failing its size, magic or CRC
//! check (its line is still printed, with `crcValid`, and the dump goes on with the next
//! batch, as Kafka's tool does); a truncated batch or an impossible batch length (the
//! rest of that file cannot be located, so its dump stops there); batch offsets below the
//! segment's base or going backwards; records that do not decode; an index entry that
//! disagrees with the log; a file that cannot be read. Exit status: 0 if there was no
//! problem, 1 if there was one or more, 2 for a usage error.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use streamlog::Error;
use streamlog::format::batch::{self, MAGIC_V2, RECORD_BATCH_OVERHEAD};
use streamlog::format::{Batch, BatchHeader, ControlRecord, ControlRecordType, Record};
use streamlog::log::{OffsetEntry, TimeEntry};

const USAGE: &str = "\
Usage: dump_log [--json] [--verify-index] PATH...

Prints Kafka segment files (RecordBatch v2) without modifying them.
PATH is a .log segment file or a partition directory (all its *.log files, in order).

Options:
  --json          one JSON object per record per line (offset, timestamp, key, value,
                  headers); control records are marked with \"control\"
  --verify-index  check each segment's .index and .timeindex against its .log
  -h, --help      print this help

Exit status: 0 if everything checked out, 1 if a problem was found (reported on stderr
with the file and byte position), 2 for a usage error.
";

/// Exit status when every file checked out.
const EXIT_OK: u8 = 0;
/// Exit status when at least one problem was reported.
const EXIT_PROBLEMS: u8 = 1;
/// Exit status for a command-line error.
const EXIT_USAGE: u8 = 2;

/// Bytes per `.index` entry: u32 relative offset, u32 position.
const OFFSET_ENTRY_BYTES: usize = 2 * size_of::<u32>();
/// Bytes per `.timeindex` entry: i64 timestamp, u32 relative offset.
const TIME_ENTRY_BYTES: usize = size_of::<i64>() + size_of::<u32>();

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Help,
    Dump(Options),
}

/// Options of a dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Options {
    json: bool,
    verify_index: bool,
    paths: Vec<PathBuf>,
}

/// Counts of what a run read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Summary {
    files: usize,
    batches: u64,
    records: u64,
    /// `.index` entries compared with the log (not counting untrimmed zero entries).
    index_entries: u64,
    /// `.timeindex` entries compared with the log.
    time_index_entries: u64,
    /// Problems reported on the error stream.
    problems: u64,
}

impl Summary {
    fn exit_status(&self) -> u8 {
        if self.problems == 0 {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Dump(options)) => options,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("dump_log: {message}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = run(&options, &mut out, &mut io::stderr()).and_then(|summary| {
        out.flush()?;
        Ok(summary)
    });
    match result {
        Ok(summary) => ExitCode::from(summary.exit_status()),
        // The reader went away (`dump_log DIR | head`): nothing left to tell it.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dump_log: cannot write the output: {e}");
            ExitCode::from(EXIT_PROBLEMS)
        }
    }
}

/// Parses the arguments after the program name.
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut options = Options::default();
    let mut only_paths = false;
    for arg in args {
        if only_paths {
            options.paths.push(arg.into());
            continue;
        }
        match arg.to_str() {
            Some("--json") => options.json = true,
            Some("--verify-index") => options.verify_index = true,
            Some("-h" | "--help") => return Ok(Command::Help),
            Some("--") => only_paths = true,
            Some(s) if s.starts_with('-') && s != "-" => {
                return Err(format!("unknown option `{s}`"));
            }
            _ => options.paths.push(arg.into()),
        }
    }
    if options.paths.is_empty() {
        return Err("no PATH given".into());
    }
    Ok(Command::Dump(options))
}

/// Dumps (and with `--verify-index` checks) every path, writing the dump to `out` and
/// problems to `err`. Problems in the data are counted in the summary, not returned.
///
/// # Errors
/// Only a failure to write to `out` or `err`.
fn run(options: &Options, out: &mut impl Write, err: &mut impl Write) -> io::Result<Summary> {
    let mut dumper = Dumper {
        options,
        out,
        err,
        summary: Summary::default(),
    };
    for path in &options.paths {
        match segment_files(path) {
            Ok(files) if files.is_empty() => {
                dumper.out.flush()?;
                writeln!(
                    dumper.err,
                    "warning: {}: no .log files (a partition directory, such as clicks-0, \
                     holds <20-digit base offset>.log files)",
                    path.display()
                )?;
            }
            Ok(files) => {
                for file in files {
                    dumper.segment(&file)?;
                }
            }
            Err(e) => dumper.problem(e)?,
        }
    }
    if !options.json {
        let s = &dumper.summary;
        write!(
            dumper.out,
            "Summary: files: {} batches: {} records: {}",
            s.files, s.batches, s.records
        )?;
        if options.verify_index {
            write!(
                dumper.out,
                " indexEntries: {} timeIndexEntries: {}",
                s.index_entries, s.time_index_entries
            )?;
        }
        writeln!(dumper.out, " problems: {}", s.problems)?;
    }
    Ok(dumper.summary)
}

/// The `.log` files `path` stands for: itself, or a directory's `*.log` files sorted.
fn segment_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let io_error = |what: &str, source| Error::Io {
        context: format!("{what} {}", path.display()),
        source,
    };
    let meta = fs::metadata(path).map_err(|e| io_error("read", e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| io_error("list", e))? {
            let file = entry.map_err(|e| io_error("list", e))?.path();
            if file.extension() == Some(OsStr::new("log")) && file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        Ok(files)
    } else if path.extension() == Some(OsStr::new("log")) {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(Error::InvalidArgument {
            name: "PATH",
            reason: format!(
                "{} is neither a .log segment file nor a partition directory",
                path.display()
            ),
        })
    }
}

/// The base offset in a segment file name `<20 digits>.log`, if it has that form.
fn base_offset_of(path: &Path) -> Option<i64> {
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A batch that passed its checks, as the index checks need it.
#[derive(Debug, Clone, Copy)]
struct BatchInfo {
    position: u64,
    last_offset: i64,
    max_timestamp: i64,
}

/// One run's output streams, options and counts.
struct Dumper<'a, O, E> {
    options: &'a Options,
    out: &'a mut O,
    err: &'a mut E,
    summary: Summary,
}

impl<O: Write, E: Write> Dumper<'_, O, E> {
    /// Reports a problem on the error stream (after what was dumped before it).
    fn problem(&mut self, message: impl Display) -> io::Result<()> {
        self.summary.problems += 1;
        self.out.flush()?;
        writeln!(self.err, "error: {message}")
    }

    /// Reports damage at byte `position` of `path`.
    fn corruption(
        &mut self,
        path: &Path,
        position: u64,
        reason: impl Into<String>,
    ) -> io::Result<()> {
        self.problem(Error::Corruption {
            path: path.to_path_buf(),
            position,
            reason: reason.into(),
        })
    }

    /// A verdict line: on stdout in the default mode, on stderr with `--json` so that
    /// stdout stays one record per line.
    fn note(&mut self, message: impl Display) -> io::Result<()> {
        if self.options.json {
            self.out.flush()?;
            writeln!(self.err, "{message}")
        } else {
            writeln!(self.out, "{message}")
        }
    }

    /// Dumps one `.log` file, then checks its indexes if asked to.
    fn segment(&mut self, path: &Path) -> io::Result<()> {
        self.summary.files += 1;
        let data = match fs::read(path) {
            Ok(data) => Bytes::from(data),
            Err(source) => {
                return self.problem(Error::Io {
                    context: format!("read {}", path.display()),
                    source,
                });
            }
        };
        let base = base_offset_of(path);
        if !self.options.json {
            let base_text = base.map_or_else(|| "unknown".to_owned(), |b| b.to_string());
            writeln!(
                self.out,
                "Dumping {} (base offset {base_text}, {} bytes)",
                path.display(),
                data.len()
            )?;
        }
        let batches = self.batches(path, base, &data)?;
        if self.options.verify_index {
            match base {
                Some(base) => {
                    self.verify_offset_index(&path.with_extension("index"), base, &batches)?;
                    self.verify_time_index(&path.with_extension("timeindex"), base, &batches)?;
                }
                None => {
                    self.problem(format_args!(
                        "{}: indexes not verified: the name is not <20-digit base offset>.log",
                        path.display()
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// Walks the batches of `data` (the contents of `path`), printing each, and returns
    /// those that passed their checks.
    fn batches(
        &mut self,
        path: &Path,
        base: Option<i64>,
        data: &Bytes,
    ) -> io::Result<Vec<BatchInfo>> {
        let mut valid = Vec::new();
        let mut previous_last_offset: Option<i64> = None;
        let mut pos = 0usize;
        while let Some(rest) = data.get(pos..).filter(|rest| !rest.is_empty()) {
            let position = pos as u64;
            let size = match batch::peek_size(rest) {
                None => {
                    let reason = format!(
                        "truncated batch: the last {} bytes are too few for a batch header",
                        rest.len()
                    );
                    return self.corruption(path, position, reason).map(|()| valid);
                }
                Some((_, size)) if size < RECORD_BATCH_OVERHEAD as i64 => {
                    let reason =
                        format!("batchLength declares {size} bytes, below the 61-byte minimum");
                    return self.corruption(path, position, reason).map(|()| valid);
                }
                Some((_, size)) => match usize::try_from(size) {
                    Ok(size) if size <= rest.len() => size,
                    _ => {
                        let reason = format!(
                            "truncated batch: it declares {size} bytes, {} are left in the file",
                            rest.len()
                        );
                        return self.corruption(path, position, reason).map(|()| valid);
                    }
                },
            };
            let bytes = data.slice(pos..pos + size);
            pos += size;
            let batch = match Batch::parse(bytes.clone()) {
                Ok(batch) => batch,
                Err(e) => {
                    // Print what the header claims when it is a v2 header at all.
                    if let Ok(h) = BatchHeader::parse(&bytes)
                        && h.magic == MAGIC_V2
                        && !self.options.json
                    {
                        let crc_valid = batch::compute_crc(&bytes) == h.crc;
                        self.batch_line(position, &h, size, crc_valid, "")?;
                    }
                    self.corruption(path, position, e.to_string())?;
                    continue;
                }
            };
            let h = *batch.header();
            self.summary.batches += 1;
            let control = if h.is_control() {
                match batch.control_record() {
                    Ok(control) => control,
                    Err(e) => {
                        self.corruption(path, position, format!("control batch: {e}"))?;
                        None
                    }
                }
            } else {
                None
            };
            if !self.options.json {
                let suffix = match control {
                    Some(c) => control_suffix(c),
                    None if h.is_control() => " control: INVALID".to_owned(),
                    None => String::new(),
                };
                self.batch_line(position, &h, size, true, &suffix)?;
            }
            if let Some(base) = base
                && h.base_offset < base
            {
                let reason = format!(
                    "baseOffset {} is below the segment's base offset {base}",
                    h.base_offset
                );
                self.corruption(path, position, reason)?;
            }
            if let Some(previous) = previous_last_offset
                && h.base_offset <= previous
            {
                let reason = format!(
                    "baseOffset {} does not follow the previous batch's last offset {previous}",
                    h.base_offset
                );
                self.corruption(path, position, reason)?;
            }
            previous_last_offset = Some(h.last_offset());
            valid.push(BatchInfo {
                position,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
            });
            self.records(path, position, &batch, h.is_control(), control)?;
        }
        Ok(valid)
    }

    /// One batch line of the default mode.
    fn batch_line(
        &mut self,
        position: u64,
        h: &BatchHeader,
        size: usize,
        crc_valid: bool,
        suffix: &str,
    ) -> io::Result<()> {
        let codec = match h.compression() {
            Ok(codec) => codec.name().to_owned(),
            Err(_) => format!("unknown({})", h.attributes & 0x07),
        };
        writeln!(
            self.out,
            "position: {position} baseOffset: {} lastOffset: {} count: {} codec: {codec} \
             crcValid: {crc_valid} size: {size} maxTimestamp: {}{suffix}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.max_timestamp,
        )
    }

    /// Decodes the records of a valid batch, counting them and, with `--json`, printing
    /// them. A control batch's records are printed as markers, if its marker decoded.
    fn records(
        &mut self,
        path: &Path,
        position: u64,
        batch: &Batch,
        is_control: bool,
        control: Option<ControlRecord>,
    ) -> io::Result<()> {
        let records = match batch.records() {
            Ok(records) => records,
            Err(e) => return self.record_error(path, position, e),
        };
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => return self.record_error(path, position, e),
            };
            self.summary.records += 1;
            if !self.options.json {
                continue;
            }
            match (is_control, control) {
                (false, _) => write_record_json(self.out, &record)?,
                (true, Some(c)) => write_control_json(self.out, &record, c)?,
                (true, None) => {} // reported as corrupt already
            }
        }
        Ok(())
    }

    fn record_error(&mut self, path: &Path, position: u64, e: Error) -> io::Result<()> {
        match e {
            // Not damage: this build cannot decompress the batch.
            Error::UnsupportedCodec { .. } => self.problem(format_args!(
                "{}: records of the batch at position {position} not decoded: {e}",
                path.display()
            )),
            e => self.corruption(path, position, e.to_string()),
        }
    }

    /// Reads an index file; `None` (after a note) if it does not exist.
    fn read_index(&mut self, path: &Path, missing: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.note(format_args!("{}: missing ({missing})", path.display()))?;
                Ok(None)
            }
            Err(source) => {
                self.problem(Error::Io {
                    context: format!("read {}", path.display()),
                    source,
                })?;
                Ok(None)
            }
        }
    }

    /// Reports a partial entry at the end, and returns how many entries are real
    /// (up to and including the last one that is not all zero).
    fn real_entries<const N: usize>(&mut self, path: &Path, data: &[u8]) -> io::Result<usize> {
        let (entries, partial) = data.as_chunks::<N>();
        if !partial.is_empty() {
            let reason = format!(
                "the file is {} bytes, not a multiple of the {N}-byte entry size",
                data.len()
            );
            self.corruption(path, (data.len() - partial.len()) as u64, reason)?;
        }
        Ok(entries
            .iter()
            .rposition(|e| e.iter().any(|&b| b != 0))
            .map_or(0, |last| last + 1))
    }

    /// The verdict line for one index file.
    fn index_verdict(
        &mut self,
        path: &Path,
        checked: usize,
        mismatches: u64,
        untrimmed: usize,
    ) -> io::Result<()> {
        let verdict = if mismatches == 0 {
            format!("{checked} entries match the log")
        } else {
            format!("{checked} entries, {mismatches} do not match the log")
        };
        let trailer = if untrimmed > 0 {
            format!("; untrimmed: {untrimmed} all-zero preallocated entries after the last one")
        } else {
            String::new()
        };
        self.note(format_args!("{}: {verdict}{trailer}", path.display()))
    }

    /// Checks `.index` entries against the batches of the segment at `base`.
    fn verify_offset_index(
        &mut self,
        path: &Path,
        base: i64,
        batches: &[BatchInfo],
    ) -> io::Result<()> {
        let Some(data) = self.read_index(path, "Kafka rebuilds a missing .index")? else {
            return Ok(());
        };
        let real = self.real_entries::<OFFSET_ENTRY_BYTES>(path, &data)?;
        let (entries, _) = data.as_chunks::<OFFSET_ENTRY_BYTES>();
        let entries = entries.get(..real).unwrap_or_default();
        let last_offset_at: HashMap<u64, i64> = batches
            .iter()
            .map(|b| (b.position, b.last_offset))
            .collect();
        let mut mismatches = 0;
        let mut previous: Option<OffsetEntry> = None;
        for (i, &[o0, o1, o2, o3, p0, p1, p2, p3]) in entries.iter().enumerate() {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes([o0, o1, o2, o3]),
                position: u32::from_be_bytes([p0, p1, p2, p3]),
            };
            let offset = base.saturating_add(i64::from(e.relative_offset));
            let describe = format!("entry {i} (offset {offset}, position {})", e.position);
            let mut reasons = Vec::new();
            if let Some(p) = previous
                && (e.relative_offset <= p.relative_offset || e.position <= p.position)
            {
                reasons.push(format!(
                    "{describe} does not follow entry {} (offset {}, position {}): entries \
                     must be strictly increasing",
                    i - 1,
                    base.saturating_add(i64::from(p.relative_offset)),
                    p.position
                ));
            }
            match last_offset_at.get(&u64::from(e.position)) {
                Some(&last) if last == offset => {}
                Some(&last) => reasons.push(format!(
                    "{describe}: the batch at that position ends at offset {last}"
                )),
                None => reasons.push(format!(
                    "{describe}: no valid batch starts at that position"
                )),
            }
            for reason in reasons {
                mismatches += 1;
                self.corruption(path, (i * OFFSET_ENTRY_BYTES) as u64, reason)?;
            }
            previous = Some(e);
        }
        self.summary.index_entries += entries.len() as u64;
        let untrimmed = data.len() / OFFSET_ENTRY_BYTES - real;
        self.index_verdict(path, real, mismatches, untrimmed)
    }

    /// Checks `.timeindex` entries against the batches of the segment at `base`.
    fn verify_time_index(
        &mut self,
        path: &Path,
        base: i64,
        batches: &[BatchInfo],
    ) -> io::Result<()> {
        let Some(data) = self.read_index(path, "Kafka recreates a missing .timeindex empty")?
        else {
            return Ok(());
        };
        let real = self.real_entries::<TIME_ENTRY_BYTES>(path, &data)?;
        let (entries, _) = data.as_chunks::<TIME_ENTRY_BYTES>();
        let entries = entries.get(..real).unwrap_or_default();
        let max_timestamp_of: HashMap<i64, i64> = batches
            .iter()
            .map(|b| (b.last_offset, b.max_timestamp))
            .collect();
        let mut mismatches = 0;
        let mut previous: Option<TimeEntry> = None;
        for (i, &[t0, t1, t2, t3, t4, t5, t6, t7, o0, o1, o2, o3]) in entries.iter().enumerate() {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
                relative_offset: u32::from_be_bytes([o0, o1, o2, o3]),
            };
            let offset = base.saturating_add(i64::from(e.relative_offset));
            let describe = format!("entry {i} (timestamp {}, offset {offset})", e.timestamp);
            let mut reasons = Vec::new();
            if let Some(p) = previous {
                if e.timestamp <= p.timestamp {
                    reasons.push(format!(
                        "{describe}: timestamps must be strictly increasing, entry {} has {}",
                        i - 1,
                        p.timestamp
                    ));
                }
                if e.relative_offset < p.relative_offset {
                    reasons.push(format!(
                        "{describe}: offsets must not decrease, entry {} has {}",
                        i - 1,
                        base.saturating_add(i64::from(p.relative_offset))
                    ));
                }
            }
            match max_timestamp_of.get(&offset) {
                Some(&ts) if ts == e.timestamp => {}
                Some(&ts) => reasons.push(format!(
                    "{describe}: the batch ending at that offset has maxTimestamp {ts}"
                )),
                None => reasons.push(format!("{describe}: no valid batch ends at that offset")),
            }
            for reason in reasons {
                mismatches += 1;
                self.corruption(path, (i * TIME_ENTRY_BYTES) as u64, reason)?;
            }
            previous = Some(e);
        }
        self.summary.time_index_entries += entries.len() as u64;
        let untrimmed = data.len() / TIME_ENTRY_BYTES - real;
        self.index_verdict(path, real, mismatches, untrimmed)
    }
}

/// Kafka's name for a control record type.
fn control_type_name(kind: ControlRecordType) -> String {
    match kind {
        ControlRecordType::Abort => "ABORT".into(),
        ControlRecordType::Commit => "COMMIT".into(),
        ControlRecordType::Other(2) => "LEADER_CHANGE".into(),
        ControlRecordType::Other(3) => "SNAPSHOT_HEADER".into(),
        ControlRecordType::Other(4) => "SNAPSHOT_FOOTER".into(),
        ControlRecordType::Other(5) => "KRAFT_VERSION".into(),
        ControlRecordType::Other(6) => "KRAFT_VOTERS".into(),
        ControlRecordType::Other(n) => format!("UNKNOWN({n})"),
    }
}

/// ` control: COMMIT coordinatorEpoch: 7`, appended to a control batch's line.
fn control_suffix(c: ControlRecord) -> String {
    let mut s = format!(" control: {}", control_type_name(c.kind));
    if let Some(epoch) = c.coordinator_epoch {
        s.push_str(&format!(" coordinatorEpoch: {epoch}"));
    }
    s
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters escaped, the
/// latter as `\u00XX`.
fn write_json_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut plain_from = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        // Every byte escaped here is ASCII, so the slices end on char boundaries.
        out.write_all(s.as_bytes().get(plain_from..i).unwrap_or_default())?;
        match b {
            b'"' => out.write_all(b"\\\"")?,
            b'\\' => out.write_all(b"\\\\")?,
            _ => write!(out, "\\u{b:04x}")?,
        }
        plain_from = i + 1;
    }
    out.write_all(s.as_bytes().get(plain_from..).unwrap_or_default())?;
    out.write_all(b"\"")
}

/// Writes bytes as a JSON string (lossy UTF-8), or `null`.
fn write_json_bytes(out: &mut impl Write, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        Some(b) => write_json_string(out, &String::from_utf8_lossy(b)),
        None => out.write_all(b"null"),
    }
}

/// One record as a JSON line.
fn write_record_json(out: &mut impl Write, r: &Record) -> io::Result<()> {
    write!(
        out,
        "{{\"offset\":{},\"timestamp\":{},\"key\":",
        r.offset, r.timestamp
    )?;
    write_json_bytes(out, r.key.as_deref())?;
    out.write_all(b",\"value\":")?;
    write_json_bytes(out, r.value.as_deref())?;
    out.write_all(b",\"headers\":{")?;
    for (i, h) in r.headers.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_json_string(out, &h.key)?;
        out.write_all(b":")?;
        write_json_bytes(out, h.value.as_deref())?;
    }
    out.write_all(b"}}\n")
}

/// A control record as a JSON line: a marker, not a record with a key and value.
fn write_control_json(out: &mut impl Write, r: &Record, c: ControlRecord) -> io::Result<()> {
    write!(
        out,
        "{{\"offset\":{},\"timestamp\":{},\"control\":",
        r.offset, r.timestamp
    )?;
    write_json_string(out, &control_type_name(c.kind))?;
    match c.coordinator_epoch {
        Some(epoch) => writeln!(out, ",\"coordinatorEpoch\":{epoch}}}"),
        None => writeln!(out, ",\"coordinatorEpoch\":null}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;

    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        self as kp, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use streamlog::format::{BatchBuilder, Compression, Header, control_batch};
    use streamlog::log::{AppendInfo, Log, LogConfig};

    const T: i64 = 1_700_000_000_000;

    /// What one run printed and counted.
    struct Output {
        summary: Summary,
        out: String,
        err: String,
    }

    fn dump(flags: &[&str], paths: &[&Path]) -> Output {
        let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        let Ok(Command::Dump(options)) = parse_args(args) else {
            panic!("not a dump command line: {flags:?}");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = run(&options, &mut out, &mut err).unwrap();
        Output {
            summary,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    /// One appended batch and what we know about it.
    struct Appended {
        info: AppendInfo,
        size: usize,
        codec: Compression,
    }

    fn available_codecs() -> Vec<Compression> {
        Compression::ALL
            .into_iter()
            .filter(|c| c.is_available())
            .collect()
    }

    /// Writes `batches` batches with `Log` into `dir` (small segments and a small index
    /// interval, so there are several segments with several index entries each), cycling
    /// through the codecs. Batch 7's timestamps go backwards, so the time index has to
    /// carry an earlier batch's maximum past it.
    fn write_log(dir: &Path, batches: usize) -> Vec<Appended> {
        let config = LogConfig::default()
            .segment_bytes(1024)
            .index_interval_bytes(100);
        let log = Log::open(dir, config).unwrap();
        let codecs = available_codecs();
        let mut appended = Vec::new();
        for i in 0..batches {
            let codec = codecs[i % codecs.len()];
            let mut b = BatchBuilder::new().compression(codec);
            for j in 0..1 + i % 4 {
                let ts = if i == 7 { T } else { T + (i * 10 + j) as i64 };
                let key = format!("key-{i}");
                let value = format!("value {i}.{j}: some text that compresses");
                let headers = [Header::new("j", j.to_string())];
                b.push(ts, Some(key.as_bytes()), Some(value.as_bytes()), &headers)
                    .unwrap();
            }
            let mut bytes = b.finish().unwrap();
            let size = bytes.len();
            let info = log.append(&mut bytes).unwrap();
            appended.push(Appended { info, size, codec });
        }
        log.close().unwrap();
        appended
    }

    /// Writes a segment file `<base>.log` in `dir` from encoded batches, giving them
    /// contiguous offsets from `base` (the base offset is outside the CRC).
    fn write_segment(dir: &Path, base: i64, batches: Vec<Vec<u8>>) -> PathBuf {
        let mut file = Vec::new();
        let mut next = base;
        for mut b in batches {
            let h = BatchHeader::parse(&b).unwrap();
            b[..8].copy_from_slice(&next.to_be_bytes());
            next += i64::from(h.last_offset_delta) + 1;
            file.extend_from_slice(&b);
        }
        let path = dir.join(format!("{base:020}.log"));
        fs::write(&path, file).unwrap();
        path
    }

    fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
        dir.join(format!("{base:020}.{suffix}"))
    }

    fn expected_line(a: &Appended) -> String {
        format!(
            "position: {} baseOffset: {} lastOffset: {} count: {} codec: {} crcValid: true \
             size: {} maxTimestamp: {}",
            a.info.position,
            a.info.base_offset,
            a.info.last_offset,
            a.info.record_count,
            a.codec.name(),
            a.size,
            a.info.max_timestamp
        )
    }

    #[test]
    fn default_output_has_a_header_per_segment_and_a_line_per_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("events-0");
        let appended = write_log(&dir, 30);
        let bases: BTreeSet<i64> = appended.iter().map(|a| a.info.segment_base).collect();
        assert!(bases.len() >= 3, "only {} segments", bases.len());

        let o = dump(&[], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.files, bases.len());
        assert_eq!(o.summary.batches, 30);
        let records: i32 = appended.iter().map(|a| a.info.record_count).sum();
        assert_eq!(o.summary.records, records as u64);

        // Exactly: per segment a header line, then its batches; then the summary.
        let mut expected = Vec::new();
        for &base in &bases {
            let path = segment_path(&dir, base, "log");
            let len = fs::metadata(&path).unwrap().len();
            expected.push(format!(
                "Dumping {} (base offset {base}, {len} bytes)",
                path.display()
            ));
            expected.extend(
                appended
                    .iter()
                    .filter(|a| a.info.segment_base == base)
                    .map(expected_line),
            );
        }
        expected.push(format!(
            "Summary: files: {} batches: 30 records: {records} problems: 0",
            bases.len()
        ));
        assert_eq!(o.out.lines().collect::<Vec<_>>(), expected);
        assert!(o.out.contains(" codec: lz4 ") && o.out.contains(" codec: snappy "));

        // A single file dumps only that file.
        let first = segment_path(&dir, 0, "log");
        let o = dump(&[], &[&first]);
        assert_eq!(o.summary.files, 1);
        assert_eq!(
            o.out.lines().nth(1).unwrap(),
            expected_line(&appended[0]),
            "{}",
            o.out
        );
    }

    #[test]
    fn control_batches_are_labelled_and_marked_in_json() {
        let tmp = tempfile::tempdir().unwrap();
        let mut data = BatchBuilder::new();
        data.push(T, Some(b"k"), Some(b"v"), &[]).unwrap();
        data.push(T + 1, Some(b"k"), Some(b"w"), &[]).unwrap();
        let abort = control_batch(ControlRecordType::Abort, 1000, 3, 7, T + 10).unwrap();
        let commit = control_batch(ControlRecordType::Commit, 1000, 4, 8, T + 20).unwrap();
        let path = write_segment(tmp.path(), 40, vec![data.finish().unwrap(), abort, commit]);

        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        let lines: Vec<&str> = o.out.lines().collect();
        assert!(lines[1].starts_with("position: 0 baseOffset: 40 lastOffset: 41 count: 2 "));
        assert!(!lines[1].contains("control"));
        assert!(lines[2].contains(" baseOffset: 42 lastOffset: 42 count: 1 codec: none "));
        assert!(
            lines[2].ends_with(" maxTimestamp: 1700000000010 control: ABORT coordinatorEpoch: 7")
        );
        assert!(
            lines[3].ends_with(" control: COMMIT coordinatorEpoch: 8"),
            "{}",
            lines[3]
        );

        let o = dump(&["--json"], &[&path]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        let lines: Vec<&str> = o.out.lines().collect();
        assert_eq!(lines.len(), 4, "{}", o.out);
        assert_eq!(
            lines[0],
            r#"{"offset":40,"timestamp":1700000000000,"key":"k","value":"v","headers":{}}"#
        );
        assert_eq!(
            lines[2],
            r#"{"offset":42,"timestamp":1700000000010,"control":"ABORT","coordinatorEpoch":7}"#
        );
        assert_eq!(
            lines[3],
            r#"{"offset":43,"timestamp":1700000000020,"control":"COMMIT","coordinatorEpoch":8}"#
        );
    }

    /// A small JSON value, enough to read our lines back.
    #[derive(Debug, Clone, PartialEq)]
    enum Json {
        Null,
        Number(i64),
        Str(String),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        fn get(&self, key: &str) -> &Json {
            let Json::Object(fields) = self else {
                panic!("{self:?} is not an object");
            };
            let found = fields.iter().find(|(k, _)| k == key);
            &found.unwrap_or_else(|| panic!("no {key} in {self:?}")).1
        }

        fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                other => panic!("{other:?} is not a string"),
            }
        }
    }

    /// Parses one JSON value (objects, strings, integers, null; what we emit), panicking
    /// on anything malformed, and checks nothing follows it.
    fn parse_json(text: &str) -> Json {
        fn value(s: &[char], i: &mut usize) -> Json {
            match s[*i] {
                '{' => {
                    *i += 1;
                    let mut fields = Vec::new();
                    if s[*i] == '}' {
                        *i += 1;
                        return Json::Object(fields);
                    }
                    loop {
                        let Json::Str(key) = value(s, i) else {
                            panic!("object key at {i} is not a string");
                        };
                        assert_eq!(s[*i], ':', "at {i}");
                        *i += 1;
                        fields.push((key, value(s, i)));
                        *i += 1;
                        match s[*i - 1] {
                            ',' => {}
                            '}' => return Json::Object(fields),
                            c => panic!("unexpected {c:?} at {}", *i - 1),
                        }
                    }
                }
                '"' => {
                    *i += 1;
                    let mut out = String::new();
                    loop {
                        let c = s[*i];
                        *i += 1;
                        match c {
                            '"' => return Json::Str(out),
                            '\\' => {
                                let e = s[*i];
                                *i += 1;
                                match e {
                                    '"' | '\\' | '/' => out.push(e),
                                    'n' => out.push('\n'),
                                    't' => out.push('\t'),
                                    'r' => out.push('\r'),
                                    'u' => {
                                        let hex: String = s[*i..*i + 4].iter().collect();
                                        *i += 4;
                                        let code = u32::from_str_radix(&hex, 16).unwrap();
                                        out.push(char::from_u32(code).unwrap());
                                    }
                                    e => panic!("bad escape \\{e}"),
                                }
                            }
                            c if (c as u32) < 0x20 => panic!("raw control char {c:?} in string"),
                            c => out.push(c),
                        }
                    }
                }
                'n' => {
                    let word: String = s[*i..*i + 4].iter().collect();
                    assert_eq!(word, "null");
                    *i += 4;
                    Json::Null
                }
                _ => {
                    let start = *i;
                    while *i < s.len() && (s[*i] == '-' || s[*i].is_ascii_digit()) {
                        *i += 1;
                    }
                    let n: String = s[start..*i].iter().collect();
                    Json::Number(n.parse().unwrap_or_else(|_| panic!("bad number {n:?}")))
                }
            }
        }
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let v = value(&chars, &mut i);
        assert_eq!(i, chars.len(), "trailing text in {text:?}");
        v
    }

    #[test]
    fn json_output_escapes_strings_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("json-0");
        let value = "line1\nline2 \"quoted\" back\\slash\ttab \u{1}\u{1f} é ✓";
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let mut b = BatchBuilder::new().compression(Compression::Lz4);
        let headers = [
            Header::new("trace", "abc"),
            Header {
                key: "null-valued".into(),
                value: None,
            },
            Header::new("quote\"key", "x\ny"),
        ];
        b.push(T, Some(b"k\"1"), Some(value.as_bytes()), &headers)
            .unwrap();
        b.push(T + 1, None, None, &[]).unwrap();
        b.push(T + 2, Some(&[0xff, b'a']), Some(b""), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.close().unwrap();

        let o = dump(&["--json"], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.records, 3);
        let lines: Vec<&str> = o.out.lines().collect();
        assert_eq!(lines.len(), 3, "{}", o.out);
        assert_eq!(
            lines[0],
            r#"{"offset":0,"timestamp":1700000000000,"key":"k\"1","value":"line1\u000aline2 \"quoted\" back\\slash\u0009tab \u0001\u001f é ✓","headers":{"trace":"abc","null-valued":null,"quote\"key":"x\u000ay"}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"offset":1,"timestamp":1700000000001,"key":null,"value":null,"headers":{}}"#
        );

        let first = parse_json(lines[0]);
        assert_eq!(first.get("offset"), &Json::Number(0));
        assert_eq!(first.get("timestamp"), &Json::Number(T));
        assert_eq!(first.get("key").str(), "k\"1");
        assert_eq!(first.get("value").str(), value);
        assert_eq!(
            first.get("headers"),
            &Json::Object(vec![
                ("trace".into(), Json::Str("abc".into())),
                ("null-valued".into(), Json::Null),
                ("quote\"key".into(), Json::Str("x\ny".into())),
            ])
        );
        let second = parse_json(lines[1]);
        assert_eq!(second.get("key"), &Json::Null);
        assert_eq!(second.get("value"), &Json::Null);
        let third = parse_json(lines[2]);
        assert_eq!(
            third.get("key").str(),
            "\u{fffd}a",
            "invalid UTF-8 is replaced"
        );
        assert_eq!(third.get("value").str(), "");
    }

    #[test]
    fn json_strings_escape_every_control_character() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut out = Vec::new();
        write_json_string(&mut out, &all).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(r#""\u0000\u0001"#), "{text}");
        assert!(text.contains(r##"\u001f !\"#$"##), "{text}");
        assert!(text.contains(r#"Z[\\]^"#), "{text}");
        assert!(
            text.chars().all(|c| c >= ' '),
            "a raw control character in {text:?}"
        );
        assert_eq!(parse_json(&text), Json::Str(all));
    }

    #[test]
    fn verify_index_passes_on_a_good_log_and_reports_damaged_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idx-0");
        let appended = write_log(&dir, 30);
        let bases: BTreeSet<i64> = appended.iter().map(|a| a.info.segment_base).collect();

        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        assert_eq!(o.summary.exit_status(), EXIT_OK);
        assert!(o.summary.index_entries >= 10, "{:?}", o.summary);
        assert!(
            o.summary.time_index_entries >= 2 * bases.len() as u64,
            "{:?}",
            o.summary
        );
        assert_eq!(
            o.out.matches("entries match the log").count(),
            2 * bases.len()
        );
        assert!(!o.out.contains("untrimmed"));

        // Preallocated zero entries after the real ones are reported, not an error.
        let last = *bases.last().unwrap();
        let index = segment_path(&dir, last, "index");
        let mut bytes = fs::read(&index).unwrap();
        bytes.extend_from_slice(&[0; 3 * OFFSET_ENTRY_BYTES]);
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert!(
            o.out.contains("untrimmed: 3 all-zero preallocated entries"),
            "{}",
            o.out
        );

        // The last entry of the first segment's index with a relative offset one too high
        // (the last, so that it still precedes the next entry).
        let first = *bases.first().unwrap();
        let index = segment_path(&dir, first, "index");
        let mut bytes = fs::read(&index).unwrap();
        assert!(
            bytes.len() >= 2 * OFFSET_ENTRY_BYTES,
            "too few index entries"
        );
        let at = bytes.len() - OFFSET_ENTRY_BYTES;
        let entry = at / OFFSET_ENTRY_BYTES;
        let rel = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(rel + 1).to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert_eq!(o.summary.exit_status(), EXIT_PROBLEMS);
        let want = format!(
            "error: {}: corruption at position {at}: entry {entry} (offset {}",
            index.display(),
            first + i64::from(rel) + 1
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert!(
            o.err.contains("the batch at that position ends at offset"),
            "{}",
            o.err
        );
        assert!(o.out.contains("1 do not match the log"), "{}", o.out);

        // An entry pointing into the middle of a batch.
        bytes[at..at + 4].copy_from_slice(&rel.to_be_bytes());
        let pos = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        bytes[at + 4..at + 8].copy_from_slice(&(pos + 1).to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err.contains("no valid batch starts at that position"),
            "{}",
            o.err
        );

        // Restore it, then damage a time index entry's timestamp.
        bytes[at + 4..at + 8].copy_from_slice(&pos.to_be_bytes());
        fs::write(&index, &bytes).unwrap();
        let timeindex = segment_path(&dir, first, "timeindex");
        let mut bytes = fs::read(&timeindex).unwrap();
        let ts = i64::from_be_bytes(bytes[..8].try_into().unwrap());
        bytes[..8].copy_from_slice(&(ts - 1).to_be_bytes());
        fs::write(&timeindex, &bytes).unwrap();
        let o = dump(&["--verify-index", "--json"], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        let want = format!(
            "error: {}: corruption at position 0: entry 0 (timestamp {}",
            timeindex.display(),
            ts - 1
        );
        // With --json the verdicts go to stderr too, so the error is not the first line.
        assert!(o.err.contains(&want), "{}", o.err);
        assert!(
            o.err.contains(&format!("has maxTimestamp {ts}")),
            "{}",
            o.err
        );
        // With --json the verdicts go to stderr; stdout holds only records.
        assert!(
            o.out.lines().all(|l| l.starts_with("{\"offset\":")),
            "{}",
            o.out
        );
        assert_eq!(o.out.lines().count() as u64, o.summary.records);
    }

    /// The tool only reads: it works on a directory a `Log` has open (and locked), where
    /// the active segment's indexes are still preallocated, and changes no file.
    #[test]
    fn a_live_log_dumps_read_only_with_untrimmed_indexes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("live-0");
        let config = LogConfig::default().index_interval_bytes(100);
        let log = Log::open(&dir, config).unwrap();
        for i in 0..10 {
            let mut b = BatchBuilder::new();
            let value = format!("value {i} with enough bytes to pass the index interval");
            b.push(T + i, Some(b"k"), Some(value.as_bytes()), &[])
                .unwrap();
            b.push(T + i, Some(b"k"), Some(value.as_bytes()), &[])
                .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.flush().unwrap();
        let listing = || {
            let mut files: Vec<(PathBuf, u64, std::time::SystemTime)> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| {
                    let meta = e.as_ref().unwrap().metadata().unwrap();
                    (e.unwrap().path(), meta.len(), meta.modified().unwrap())
                })
                .collect();
            files.sort();
            files
        };
        let before = listing();

        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert_eq!(o.summary.batches, 10);
        assert!(o.summary.index_entries >= 5, "{:?}", o.summary);
        let index = segment_path(&dir, 0, "index");
        let real = o.summary.index_entries as usize;
        let untrimmed = fs::metadata(&index).unwrap().len() as usize / OFFSET_ENTRY_BYTES - real;
        let want = format!(
            "{}: {real} entries match the log; untrimmed: {untrimmed} all-zero",
            index.display()
        );
        assert!(o.out.contains(&want), "{}", o.out);
        assert_eq!(listing(), before, "the dump changed the directory");

        // The lock was not taken: the log keeps working and closes cleanly.
        let mut b = BatchBuilder::new();
        b.push(T, None, Some(b"after"), &[]).unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.close().unwrap();
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
        assert_eq!(o.summary.batches, 11);
        assert!(!o.out.contains("untrimmed"), "{}", o.out);
    }

    #[test]
    fn corrupt_and_truncated_batches_report_path_and_position() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bad-0");
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let mut infos = Vec::new();
        for i in 0..5 {
            let mut b = BatchBuilder::new();
            b.push(T + i, Some(b"key"), Some(b"some value"), &[])
                .unwrap();
            infos.push(log.append(&mut b.finish().unwrap()).unwrap());
        }
        log.close().unwrap();
        let path = segment_path(&dir, 0, "log");
        let good = fs::read(&path).unwrap();

        // A flipped byte inside batch 2 (in its maxTimestamp, covered by the CRC).
        let pos2 = infos[2].position as usize;
        let mut bad = good.clone();
        bad[pos2 + batch::MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert_eq!(o.summary.exit_status(), EXIT_PROBLEMS);
        let want = format!("error: {}: corruption at position {pos2}: ", path.display());
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert!(o.err.contains("`crc`"), "{}", o.err);
        let lines: Vec<&str> = o
            .out
            .lines()
            .filter(|l| l.starts_with("position:"))
            .collect();
        assert_eq!(
            lines.len(),
            5,
            "the dump goes on after a CRC failure: {}",
            o.out
        );
        assert!(lines[2].starts_with(&format!("position: {pos2} ")));
        assert!(lines[2].contains("crcValid: false"), "{}", lines[2]);
        assert!(lines[3].contains("crcValid: true"));
        assert_eq!(o.summary.batches, 4);
        // --json reports the same and prints the other records.
        let o = dump(&["--json"], &[&path]);
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert_eq!(o.out.lines().count(), 4);

        // A wrong magic byte.
        let mut bad = good.clone();
        bad[pos2 + batch::MAGIC_OFFSET] = 1;
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert!(
            o.err.starts_with(&want) && o.err.contains("`magic`"),
            "{}",
            o.err
        );

        // A file cut in the middle of batch 4.
        let pos4 = infos[4].position as usize;
        fs::write(&path, &good[..pos4 + 30]).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        let want = format!(
            "error: {}: corruption at position {pos4}: truncated batch",
            path.display()
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
        assert_eq!(o.summary.batches, 4);

        // Fewer bytes than a batch prefix at the end.
        fs::write(&path, &good[..pos4 + 5]).unwrap();
        let o = dump(&[], &[&dir]);
        assert!(o.err.starts_with(&want), "{}", o.err);

        // An impossible batch length: the rest of the file cannot be located.
        let mut bad = good.clone();
        bad[pos2 + batch::BATCH_LENGTH_OFFSET..pos2 + batch::PARTITION_LEADER_EPOCH_OFFSET]
            .copy_from_slice(&(-5i32).to_be_bytes());
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err
                .contains(&format!("position {pos2}: batchLength declares 7 bytes"))
        );
        assert_eq!(o.summary.batches, 2);

        // Offsets going backwards (the base offset is outside the CRC).
        let mut bad = good.clone();
        bad[pos2..pos2 + 8].copy_from_slice(&0i64.to_be_bytes());
        fs::write(&path, &bad).unwrap();
        let o = dump(&[], &[&dir]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.err
                .contains("does not follow the previous batch's last offset 1")
        );
    }

    /// No input makes the tool panic: every single-byte change and every truncation of a
    /// small segment and its indexes, in every mode. Changes the CRC covers are reported.
    #[test]
    fn garbage_never_panics_and_covered_damage_is_always_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep-0");
        let appended = write_log(&dir, 4);
        assert!(appended.iter().all(|a| a.info.segment_base == 0));
        let files = ["log", "index", "timeindex"].map(|s| segment_path(&dir, 0, s));
        let originals = files.clone().map(|f| fs::read(f).unwrap());
        let starts: Vec<usize> = appended.iter().map(|a| a.info.position as usize).collect();
        let covered = |i: usize| {
            starts
                .iter()
                .zip(&appended)
                .any(|(&s, a)| i >= s + batch::ATTRIBUTES_OFFSET && i < s + a.size)
        };
        let modes: [&[&str]; 3] = [&["--verify-index"], &["--json", "--verify-index"], &[]];
        for (file, original) in files.iter().zip(&originals) {
            for i in 0..original.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = original.clone();
                    bad[i] ^= flip;
                    fs::write(file, &bad).unwrap();
                    for mode in modes {
                        let o = dump(mode, &[&dir]);
                        if file == &files[0] && covered(i) {
                            assert!(o.summary.problems > 0, "flip {flip:#x} at {i} missed");
                        }
                    }
                }
                fs::write(file, &original[..i]).unwrap();
                let o = dump(&["--verify-index"], &[&dir]);
                if file == &files[0] && !starts.contains(&i) {
                    assert!(o.summary.problems > 0, "truncation at {i} missed");
                }
            }
            fs::write(file, original).unwrap();
        }
        let o = dump(&["--verify-index"], &[&dir]);
        assert_eq!(o.summary.problems, 0, "{}", o.err);
    }

    /// A record at `offset`, the `delta`-th of its batch. Its encoder starts a new batch
    /// whenever offset - sequence changes, so the sequence follows the offset delta (from
    /// -1, which is what it writes as the base sequence of a batch without a producer).
    fn kp_record(offset: i64, delta: i32, key: Option<Bytes>, value: Option<Bytes>) -> kp::Record {
        kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: delta - 1,
            timestamp: T + offset,
            key,
            value,
            headers: IndexMap::new(),
        }
    }

    fn kp_encode(records: &[kp::Record], codec: kp::Compression) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    /// Raw snappy (no xerial framing), as librdkafka writes it.
    #[cfg(feature = "snappy")]
    fn kp_encode_raw_snappy(records: &[kp::Record]) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: kp::Compression::Snappy,
        };
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            records,
            &options,
            Some(
                |input: &mut bytes::BytesMut, out: &mut bytes::BytesMut, _| {
                    out.extend_from_slice(&snap::raw::Encoder::new().compress_vec(input).unwrap());
                    Ok(())
                },
            ),
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_segment_written_by_kafka_protocol_dumps_correctly() {
        // (our codec name, kafka-protocol's codec or None for raw snappy)
        let mut codecs = vec![("none", Some(kp::Compression::None))];
        for (codec, theirs) in [
            (Compression::Gzip, Some(kp::Compression::Gzip)),
            (Compression::Snappy, Some(kp::Compression::Snappy)),
            (Compression::Snappy, None),
            (Compression::Lz4, Some(kp::Compression::Lz4)),
            (Compression::Zstd, Some(kp::Compression::Zstd)),
        ] {
            if codec.is_available() {
                codecs.push((codec.name(), theirs));
            }
        }
        let mut file = Vec::new();
        let mut expected_records = Vec::new();
        let mut next = 0i64;
        for (i, &(_, codec)) in codecs.iter().enumerate() {
            let records: Vec<kp::Record> = (0..3)
                .map(|j| {
                    let offset = next + j;
                    let key = (j != 1).then(|| Bytes::from(format!("key-{offset}")));
                    let value = Bytes::from(format!("batch {i} \"record\" {j}\n").repeat(20));
                    let mut r = kp_record(offset, j as i32, key, Some(value));
                    r.headers
                        .insert(StrBytes::from_static_str("h"), Some(Bytes::from("1")));
                    r.headers.insert(StrBytes::from_static_str("nothing"), None);
                    r
                })
                .collect();
            let batch = match codec {
                Some(codec) => kp_encode(&records, codec),
                #[cfg(feature = "snappy")]
                None => kp_encode_raw_snappy(&records),
                #[cfg(not(feature = "snappy"))]
                None => unreachable!("snappy is not available"),
            };
            if codec.is_none() {
                let data = &batch[batch::RECORDS_OFFSET..];
                assert_ne!(data.get(..2), Some(&b"\x82S"[..]), "not raw snappy");
            }
            file.extend_from_slice(&batch);
            expected_records.extend(records);
            next += 3;
        }
        let mut commit = kp_record(next, 0, None, None);
        commit.transactional = true;
        commit.control = true;
        commit.producer_id = 77;
        commit.producer_epoch = 2;
        commit.key = Some(Bytes::from_static(&[0, 0, 0, 1])); // version 0, COMMIT
        commit.value = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 19])); // coordinator epoch 19
        file.extend_from_slice(&kp_encode(&[commit], kp::Compression::None));

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kp-0");
        fs::create_dir(&dir).unwrap();
        fs::write(segment_path(&dir, 0, "log"), &file).unwrap();

        let o = dump(&[], &[&dir]);
        assert_eq!(o.err, "");
        assert_eq!(o.summary.problems, 0);
        let lines: Vec<&str> = o
            .out
            .lines()
            .filter(|l| l.starts_with("position:"))
            .collect();
        assert_eq!(lines.len(), codecs.len() + 1, "{}", o.out);
        for (i, (line, (name, _))) in lines.iter().zip(&codecs).enumerate() {
            let offsets = format!("baseOffset: {} lastOffset: {} count: 3 ", 3 * i, 3 * i + 2);
            assert!(line.contains(&offsets), "{line}");
            assert!(
                line.contains(&format!(" codec: {name} crcValid: true ")),
                "{line}"
            );
            let max_ts = T + 3 * i as i64 + 2;
            assert!(line.contains(&format!(" maxTimestamp: {max_ts}")), "{line}");
        }
        let marker = lines.last().unwrap();
        assert!(marker.contains(&format!("baseOffset: {next} lastOffset: {next} count: 1")));
        assert!(
            marker.ends_with(" control: COMMIT coordinatorEpoch: 19"),
            "{marker}"
        );

        let o = dump(&["--json"], &[&dir]);
        assert_eq!(o.err, "");
        let lines: Vec<Json> = o.out.lines().map(parse_json).collect();
        assert_eq!(lines.len(), expected_records.len() + 1);
        for (got, want) in lines.iter().zip(&expected_records) {
            assert_eq!(got.get("offset"), &Json::Number(want.offset));
            assert_eq!(got.get("timestamp"), &Json::Number(want.timestamp));
            let key = want
                .key
                .as_ref()
                .map(|k| String::from_utf8(k.to_vec()).unwrap());
            assert_eq!(got.get("key"), &key.map_or(Json::Null, Json::Str));
            let value = String::from_utf8(want.value.clone().unwrap().to_vec()).unwrap();
            assert_eq!(got.get("value").str(), value);
            assert_eq!(
                got.get("headers"),
                &Json::Object(vec![
                    ("h".into(), Json::Str("1".into())),
                    ("nothing".into(), Json::Null),
                ])
            );
        }
        let last = lines.last().unwrap();
        assert_eq!(last.get("offset"), &Json::Number(next));
        assert_eq!(last.get("control").str(), "COMMIT");
        assert_eq!(last.get("coordinatorEpoch"), &Json::Number(19));
    }

    /// A batch with a codec id Kafka does not define (and a valid CRC) is listed, and its
    /// records are reported as not decoded rather than as damage.
    #[test]
    fn unknown_codecs_are_listed_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = BatchBuilder::new();
        b.push(T, None, Some(b"v"), &[]).unwrap();
        let mut bytes = b.finish().unwrap();
        bytes[batch::ATTRIBUTES_OFFSET + 1] = 5;
        let crc = batch::compute_crc(&bytes);
        bytes[batch::CRC_OFFSET..batch::ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        let path = write_segment(tmp.path(), 0, vec![bytes]);
        let o = dump(&[], &[&path]);
        assert_eq!(o.summary.problems, 1, "{}", o.err);
        assert!(
            o.out.contains(" codec: unknown(5) crcValid: true "),
            "{}",
            o.out
        );
        let want = format!(
            "error: {}: records of the batch at position 0 not decoded: unsupported \
             compression codec 5",
            path.display()
        );
        assert!(o.err.starts_with(&want), "{}", o.err);
    }

    #[test]
    fn paths_and_arguments_are_checked() {
        assert_eq!(parse_args(["--help".into()]), Ok(Command::Help));
        assert_eq!(parse_args(["x.log".into(), "-h".into()]), Ok(Command::Help));
        assert!(parse_args(Vec::new()).unwrap_err().contains("no PATH"));
        assert!(
            parse_args(["--jsn".into(), "x".into()])
                .unwrap_err()
                .contains("--jsn")
        );
        assert_eq!(
            parse_args(["--json".into(), "--".into(), "--verify-index".into()]),
            Ok(Command::Dump(Options {
                json: true,
                verify_index: false,
                paths: vec!["--verify-index".into()],
            }))
        );

        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.log");
        let other = tmp.path().join("notes.txt");
        fs::write(&other, "hello").unwrap();
        let empty = tmp.path().join("empty-0");
        fs::create_dir(&empty).unwrap();
        let o = dump(&[], &[&missing, &other, &empty]);
        assert_eq!(o.summary.problems, 2, "{}", o.err);
        assert_eq!(o.summary.exit_status(), EXIT_PROBLEMS);
        assert!(
            o.err.contains(&format!("read {}", missing.display())),
            "{}",
            o.err
        );
        assert!(
            o.err
                .contains("neither a .log segment file nor a partition directory")
        );
        assert!(
            o.err
                .contains(&format!("warning: {}: no .log files", empty.display()))
        );

        // A segment whose name is not a base offset dumps, but its indexes are not checked.
        let odd = tmp.path().join("odd.log");
        let mut b = BatchBuilder::new();
        b.push(T, None, Some(b"v"), &[]).unwrap();
        let bytes = b.finish().unwrap();
        fs::write(&odd, &bytes).unwrap();
        let o = dump(&["--verify-index"], &[&odd]);
        assert_eq!(o.summary.batches, 1);
        assert_eq!(o.summary.problems, 1);
        let header = format!("(base offset unknown, {} bytes)", bytes.len());
        assert!(o.out.contains(&header), "{}", o.out);
        assert!(o.err.contains("indexes not verified"), "{}", o.err);
    }
}
