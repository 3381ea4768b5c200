//! `streamlog dump`: streamlog's `kafka-dump-log`. Prints the batches or the records of
//! Kafka segment files, the producer state of `.snapshot` files and the aborted
//! transactions of `.txnindex` files, and checks segment indexes. It only reads: it does not
//! go through `Log::open`, takes no lock and repairs nothing, so it is safe to point at a
//! directory that a `Log` (or a broker) has open; it then sees a snapshot, and the active
//! segment's preallocated indexes show up as "untrimmed".
//!
//! ```text
//! cargo run -p streamlog-cli -- dump [--json] [--verify-index] PATH...
//! ```
//!
//! PATH is a `.log` segment file, a `.snapshot` or `.txnindex` file, or a partition
//! directory, meaning every `*.log`, `*.snapshot` and `*.txnindex` file in it (with
//! `--json`, its `*.log` files only), in name order (for Kafka's 20-digit offset names,
//! offset order).
//!
//! # Output
//!
//! - Default: a `Dumping <file> (...)` line per file, one line per batch, then a
//!   `Summary: files: .. batches: .. records: .. problems: ..` line (with
//!   `snapshotEntries: ..` and `abortedTxns: ..` before `problems` when such files were
//!   read). A batch line is, on one line, `position: 0 baseOffset: 0 lastOffset: 4
//!   count: 5 baseSequence: 0 lastSequence: 4 producerId: 7 producerEpoch: 2
//!   isTransactional: true isControl: false codec: lz4 crcValid: true size: 345
//!   maxTimestamp: 1700000000000` (-1 for the producer fields of a batch without a
//!   producer, as Kafka writes them). A transaction marker adds
//!   ` endTxnMarker: COMMIT coordinatorEpoch: 7` (or `ABORT`), as kafka-dump-log prints
//!   it; the KRaft control types add ` control: LEADER_CHANGE` (`SNAPSHOT_HEADER`, ...).
//! - A `.snapshot` file: a line per producer, `producerId: 7 producerEpoch: 2
//!   coordinatorEpoch: 0 currentTxnFirstOffset: -1 lastTimestamp: 1700000000000
//!   firstSequence: 0 lastSequence: 4 lastOffset: 12 offsetDelta: 4` (Kafka's fields;
//!   the first sequence is derived from the last one and the offset delta). A
//!   `.txnindex` file: a line per aborted transaction, `version: 0 producerId: 7
//!   firstOffset: 3 lastOffset: 9 lastStableOffset: 10`.
//! - `--json`: one JSON object per record per line and nothing else on stdout:
//!   `{"offset":0,"timestamp":1700000000000,"key":"k","value":"v","headers":{"h":"1"}}`.
//!   Keys, values and header values are strings (bytes that are not UTF-8 become U+FFFD)
//!   or `null`; headers keep their order, and a repeated header key is repeated in the
//!   object. Control records are **marked, not skipped**: they come out as
//!   `{"offset":7,"timestamp":1700000000000,"control":"COMMIT","coordinatorEpoch":3}`,
//!   with no `key`, `value` or `headers`, so `jq 'select(.control == null)'` drops them.
//!   A `.snapshot` or `.txnindex` file named as a PATH prints one object per entry, with
//!   the fields of the default mode in camelCase.
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
//! disagrees with the log; a `.snapshot` with another version, a CRC-32C mismatch or a
//! length that does not match its entry count (the entries that are whole still print);
//! a `.txnindex` entry with another version, a last offset not above the previous
//! entry's, a first offset past its last, or a partial entry at the end; a file that
//! cannot be read. Exit status: 0 if there was no problem, 1 if there was one or more, 2
//! for a usage error.
//!
//! The files: this one walks the paths and reports; `txn_files` reads `.snapshot` and
//! `.txnindex` files; `segment_file` reads a segment one batch at a time (memory holds
//! a batch, not the file); `batches` walks its batches and records and prints the
//! default output, `json` the `--json` output; `index_check` compares the indexes with
//! the batches.

use std::fmt::Display;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use streamlog::Error;
use streamlog::format::ControlRecordType;

use segment_file::SegmentFile;

mod batches;
mod index_check;
mod json;
mod segment_file;
#[cfg(test)]
mod testing;
mod txn_files;

/// The end of `streamlog dump --help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status: 0 if everything checked out, 1 if a problem was found (reported on stderr
with the file and byte position), 2 for a usage error. A dump whose reader goes away
(`| head`) stops there, with the status of what it read; with --verify-index the check
goes on to the end without output.";

/// Exit status when every file checked out.
pub const EXIT_OK: u8 = 0;
/// Exit status when at least one problem was reported.
pub const EXIT_PROBLEMS: u8 = 1;

/// Options of a dump: the arguments of `streamlog dump`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Options {
    /// One JSON object per record per line (offset, timestamp, key, value, headers);
    /// control records are marked with "control"
    #[arg(long)]
    pub json: bool,
    /// Check each segment's .index and .timeindex against its .log
    #[arg(long)]
    pub verify_index: bool,
    /// A .log segment, .snapshot or .txnindex file, or a partition directory (all its
    /// *.log, *.snapshot and *.txnindex files, in offset order; with --json its *.log
    /// files only)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// Counts of what a run read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files read, of every kind.
    pub files: usize,
    pub batches: u64,
    pub records: u64,
    /// `.index` entries compared with the log (not counting untrimmed zero entries).
    pub index_entries: u64,
    /// `.timeindex` entries compared with the log.
    pub time_index_entries: u64,
    /// `.snapshot` files read, and the producer entries printed from them.
    pub snapshot_files: usize,
    pub snapshot_entries: u64,
    /// `.txnindex` files read, and the aborted transactions printed from them.
    pub txn_index_files: usize,
    pub aborted_txns: u64,
    /// Problems reported on the error stream.
    pub problems: u64,
}

impl Summary {
    pub fn exit_status(&self) -> u8 {
        if self.problems == 0 {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        }
    }
}

/// Dumps (and with `--verify-index` checks) every path, writing the dump to `out` and
/// problems to `err`. Problems in the data are counted in the summary, not returned.
///
/// # Errors
/// Only a failure to write to `out` or `err`; once a problem was found, a reader gone
/// (`BrokenPipe`) ends the dump with the summary so far instead, whose exit status
/// still says so.
pub fn run(options: &Options, out: &mut impl Write, err: &mut impl Write) -> io::Result<Summary> {
    let mut dumper = Dumper {
        options,
        out,
        err,
        summary: Summary::default(),
    };
    match dumper.dump_all() {
        Ok(()) => Ok(dumper.summary),
        // The reader went away (`streamlog dump DIR | head`): the problems seen so far
        // are still the verdict (the exit status), reported on the error stream.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && dumper.summary.problems > 0 => {
            Ok(dumper.summary)
        }
        Err(e) => Err(e),
    }
}

/// What a file to dump holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// A segment: RecordBatch v2 batches.
    Log,
    /// Producer state (`<offset>.snapshot`).
    Snapshot,
    /// Aborted transactions (`<base offset>.txnindex`).
    TxnIndex,
}

impl FileKind {
    fn of(path: &Path) -> Option<FileKind> {
        match path.extension()?.to_str()? {
            "log" => Some(FileKind::Log),
            "snapshot" => Some(FileKind::Snapshot),
            "txnindex" => Some(FileKind::TxnIndex),
            _ => None,
        }
    }
}

/// The files `path` stands for: itself, or a directory's `*.log`, `*.snapshot` and
/// `*.txnindex` files sorted by name (so by offset); with `json_only_records`, a
/// directory's `*.log` files only (the `--json` stream holds records).
fn dump_files(path: &Path, json_only_records: bool) -> Result<Vec<(PathBuf, FileKind)>, Error> {
    let io_error = |what: &str, source| Error::Io {
        context: format!("{what} {}", path.display()),
        source,
    };
    let meta = fs::metadata(path).map_err(|e| io_error("read", e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| io_error("list", e))? {
            let file = entry.map_err(|e| io_error("list", e))?.path();
            let Some(kind) = FileKind::of(&file) else {
                continue;
            };
            if (kind == FileKind::Log || !json_only_records) && file.is_file() {
                files.push((file, kind));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    } else if !meta.is_file() {
        // A FIFO, a socket or a device: reading it could wait forever.
        Err(Error::InvalidArgument {
            name: "PATH",
            reason: format!("{} is not a regular file", path.display()),
        })
    } else if let Some(kind) = FileKind::of(path) {
        Ok(vec![(path.to_path_buf(), kind)])
    } else {
        Err(Error::InvalidArgument {
            name: "PATH",
            reason: format!(
                "{} is neither a .log, .snapshot or .txnindex file nor a partition directory",
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

/// Kafka's name for a control record type (in batch lines and JSON markers alike).
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

/// A batch that passed its checks, as the index checks need it.
#[derive(Debug, Clone, Copy)]
struct BatchInfo {
    position: u64,
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
}

/// One run's output streams, options and counts. Its methods are spread over this module
/// (files and problems), `batches` and `index_check`.
struct Dumper<'a, O, E> {
    options: &'a Options,
    out: &'a mut O,
    err: &'a mut E,
    summary: Summary,
}

impl<O: Write, E: Write> Dumper<'_, O, E> {
    /// Dumps every path of the options, then the summary line.
    fn dump_all(&mut self) -> io::Result<()> {
        for path in &self.options.paths {
            match dump_files(path, self.options.json) {
                Ok(files) => {
                    if path.is_dir() && !files.iter().any(|(_, kind)| *kind == FileKind::Log) {
                        self.out.flush()?;
                        writeln!(
                            self.err,
                            "warning: {}: no .log files (a partition directory, such as clicks-0, \
                             holds <20-digit base offset>.log files)",
                            path.display()
                        )?;
                    }
                    for (file, kind) in files {
                        self.file(&file, kind)?;
                    }
                }
                Err(e) => self.problem(e)?,
            }
        }
        if !self.options.json {
            let s = &self.summary;
            write!(
                self.out,
                "Summary: files: {} batches: {} records: {}",
                s.files, s.batches, s.records
            )?;
            if self.options.verify_index {
                write!(
                    self.out,
                    " indexEntries: {} timeIndexEntries: {}",
                    s.index_entries, s.time_index_entries
                )?;
            }
            if s.snapshot_files > 0 {
                write!(self.out, " snapshotEntries: {}", s.snapshot_entries)?;
            }
            if s.txn_index_files > 0 {
                write!(self.out, " abortedTxns: {}", s.aborted_txns)?;
            }
            writeln!(self.out, " problems: {}", s.problems)?;
        }
        Ok(())
    }

    /// Reports a problem on the error stream (after what was dumped before it).
    fn problem(&mut self, message: impl Display) -> io::Result<()> {
        self.summary.problems += 1;
        // Reported also when the dump's reader is gone (its flush failing).
        let flushed = self.out.flush();
        writeln!(self.err, "error: {message}")?;
        flushed
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

    /// Dumps one file of any kind.
    fn file(&mut self, path: &Path, kind: FileKind) -> io::Result<()> {
        match kind {
            FileKind::Log => self.segment(path),
            FileKind::Snapshot => self.snapshot(path),
            FileKind::TxnIndex => self.txn_index(path),
        }
    }

    /// Dumps one `.log` file, then checks its indexes if asked to.
    fn segment(&mut self, path: &Path) -> io::Result<()> {
        self.summary.files += 1;
        let mut file = match fs::File::open(path).and_then(SegmentFile::open) {
            Ok(file) => file,
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
                file.len()
            )?;
        }
        let batches = self.batches(path, base, &mut file)?;
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
}

#[cfg(test)]
mod tests {
    use std::fs;

    use streamlog::format::{BatchBuilder, batch};

    use super::EXIT_PROBLEMS;
    use super::testing::{T, dump, segment_path, write_log};

    #[test]
    fn paths_are_checked() {
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
                .contains("neither a .log, .snapshot or .txnindex file nor a partition directory")
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
}
