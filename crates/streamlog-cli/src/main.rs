//! `streamlog`: the command-line tool of the streamlog library, its `kafka-topics`,
//! `kafka-configs`, `kafka-console-producer`, `kafka-console-consumer`,
//! `kafka-consumer-groups` and `kafka-dump-log`; `streamlog mirror` copies topics to and
//! from a Kafka cluster (the `mirror` module, behind the default `kafka` feature).
//!
//! ```text
//! cargo install --path crates/streamlog-cli      # or: cargo run -p streamlog-cli -- ...
//! streamlog topics list|describe|create|delete|alter --dir DIR ...
//! streamlog produce --dir DIR TOPIC [--key-separator SEP] < lines
//! streamlog consume --dir DIR TOPIC [--from-beginning] [--group G] [--follow] ...
//! streamlog groups list|describe|reset-offsets|delete --dir DIR ...
//! streamlog verify DIR
//! streamlog dump [--json] [--verify-index] PATH...
//! streamlog mirror to-kafka --store DIR -b HOST:PORT -t TOPIC [-X key=value]...
//! streamlog mirror from-kafka --store DIR -b HOST:PORT -t TOPIC [-X key=value]...
//! ```
//!
//! The commands that change a store open it as its writer: the store must not be open
//! in another process (its lock refuses); the read commands open it read-only, and
//! `dump` takes no lock. Exit status: 0 if
//! everything worked (for `dump`: checked out), 1 on an error (a problem found), 2 for a
//! usage error (clap's usage errors exit with 2; `--help` and `--version` with 0).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod consume;
mod dump;
mod groups;
mod import;
mod logger;
#[cfg(feature = "kafka")]
mod mirror;
mod produce;
mod store_arg;
mod topics;
mod verify;

/// Tools for streamlog's data directories, which hold Kafka's on-disk format.
#[derive(Debug, Parser)]
#[command(name = "streamlog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints Kafka segment files (RecordBatch v2), .snapshot and .txnindex files without
    /// modifying them
    ///
    /// One line per batch (with its producer id, epoch, sequences, transactional flag and
    /// transaction marker), producer snapshot entry or aborted transaction, or with
    /// --json one JSON object per record; with --verify-index it also checks the
    /// indexes. It takes no lock and repairs nothing, so it can look at a directory a
    /// streamlog Log (or a Kafka broker) has open.
    #[command(after_help = dump::EXIT_STATUS_HELP)]
    Dump(dump::Options),
    /// Lists, describes, creates, deletes and alters topics (kafka-topics, kafka-configs)
    #[command(subcommand)]
    Topics(topics::Topics),
    /// Sends each line of standard input as a record (kafka-console-producer)
    Produce(produce::Produce),
    /// Prints a topic's records (kafka-console-consumer)
    Consume(consume::Consume),
    /// Lists, describes, resets and deletes consumer groups (kafka-consumer-groups)
    #[command(subcommand)]
    Groups(groups::Groups),
    /// Checks a whole store without changing it: metadata, partition directories,
    /// every batch's CRC and offsets, every index entry (SQLite's integrity_check).
    /// Exit status 1 if anything is wrong
    Verify(verify::Verify),
    /// Adopts a Kafka topic's partition directories as a store topic, every batch and
    /// index entry checked first (damaged batches are refused, never truncated; index
    /// entries that disagree with their segment are reported)
    ///
    /// With --from, the topic's `<TOPIC>-<n>` directories are copied in from a stopped
    /// Kafka broker's log directory, which is only read (a progress bar on a terminal);
    /// without it they must already be in the store directory.
    ImportKafka(import::ImportKafka),
    /// Mirrors topics between a store and a Kafka cluster, resuming exactly where it
    /// stopped
    ///
    /// Built with the CLI's default `kafka` feature (it compiles librdkafka);
    /// `cargo install streamlog-cli --no-default-features --features gzip,snappy,lz4,zstd`
    /// leaves it out. Kafka client settings pass through as -X key=value, as with kcat.
    /// Exit status: 0 when the mirror ended without error (--exit-at-end), 1 otherwise.
    #[cfg(feature = "kafka")]
    #[command(subcommand)]
    Mirror(mirror::Direction),
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    logger::install();
    let mut out = Stdout::new(false);
    let result = match &command {
        Command::Dump(options) => return dump_to_stdout(options),
        Command::Topics(t) => topics::run(t, &mut out),
        Command::Groups(g) => groups::run(g, &mut out),
        Command::Produce(p) => produce::run(p, &mut io::stdin().lock()).map(|_| ()),
        Command::Consume(c) => consume::run(c, &mut out).map(|_| ()),
        Command::ImportKafka(i) => import::run(i, &mut out),
        #[cfg(feature = "kafka")]
        Command::Mirror(direction) => return mirror::run(direction),
        Command::Verify(v) => match verify::run(v, &mut out) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = out.flush();
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
    }
    .and_then(|()| out.flush().map_err(|e| e.to_string()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`streamlog consume ... | head`): nothing left to tell
        // it. Known from the write that failed, not from an error's text (a command's
        // own EPIPE, from a file it wrote, is a failure).
        Err(_) if out.reader_gone => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamlog: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An output stream remembering whether a write found its reader gone; from then on its
/// writes are dropped (reported as done) if `drop_when_gone`.
struct Output<W> {
    inner: W,
    reader_gone: bool,
    drop_when_gone: bool,
}

/// Standard output, buffered.
type Stdout = Output<BufWriter<io::StdoutLock<'static>>>;

impl Stdout {
    fn new(drop_when_gone: bool) -> Stdout {
        Output::over(BufWriter::new(io::stdout().lock()), drop_when_gone)
    }
}

impl<W: Write> Output<W> {
    fn over(inner: W, drop_when_gone: bool) -> Output<W> {
        Output {
            inner,
            reader_gone: false,
            drop_when_gone,
        }
    }

    fn note<T>(&mut self, r: io::Result<T>, done: T) -> io::Result<T> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                if self.drop_when_gone {
                    Ok(done)
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reader_gone && self.drop_when_gone {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.note(r, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.reader_gone && self.drop_when_gone {
            return Ok(());
        }
        let r = self.inner.flush();
        self.note(r, ())
    }
}

/// Runs a dump on the process's stdout and stderr and returns its exit status. With
/// `--verify-index` the check goes on to the end when the reader goes away (`| head`),
/// its output dropped: the exit status is the verdict on every file, not only on those
/// dumped before (as Kafka's tool, whose `System.out` drops what it cannot write).
fn dump_to_stdout(options: &dump::Options) -> ExitCode {
    let mut out = Stdout::new(options.verify_index);
    // Verdicts go to stderr with --json: dropped there too once its reader is gone.
    let mut err = Output::over(io::stderr(), options.verify_index);
    let cannot_write = |e: io::Error| {
        eprintln!("streamlog dump: cannot write the output: {e}");
        ExitCode::from(dump::EXIT_PROBLEMS)
    };
    match dump::run(options, &mut out, &mut err) {
        // The reader went away (`streamlog dump DIR | head`): the problems found are
        // still the exit status.
        Ok(summary) => match out.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => cannot_write(e),
            _ => ExitCode::from(summary.exit_status()),
        },
        // The reader went away before any problem: nothing left to tell it.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => cannot_write(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["streamlog"].iter().chain(args))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dump_arguments_are_checked() {
        let kind = |args: &[&str]| parse(args).map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(&["dump", "--help"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["dump", "x.log", "-h"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["dump"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        let e = parse(&["dump", "--jsn", "x"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("--jsn"), "{e}");
        assert_eq!(e.exit_code(), 2);

        #[allow(irrefutable_let_patterns, reason = "one variant without `kafka`")]
        let Command::Dump(options) = parse(&["dump", "--json", "--", "--verify-index"])
            .unwrap()
            .command
        else {
            panic!("not a dump");
        };
        assert_eq!(
            options,
            dump::Options {
                json: true,
                verify_index: false,
                paths: vec!["--verify-index".into()],
            }
        );
    }
}
