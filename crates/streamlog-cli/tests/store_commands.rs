//! The store commands as a user runs them (the built binary): `topics`, `produce`,
//! `consume` and `groups` against a store, their output and exit statuses.

mod common;

use common::{ok, streamlog};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn produce(dir: &str, topic: &str, extra: &[&str], input: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(["produce", "--dir", dir, topic])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn store_dir(tmp: &Path) -> String {
    let dir = tmp.join("store");
    std::fs::create_dir(&dir).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn produce_then_consume_as_text_and_json_with_and_without_a_group() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    assert_eq!(
        ok(&["topics", "create", "--dir", d, "orders"]),
        "Created topic orders.\n"
    );
    assert_eq!(ok(&["topics", "list", "--dir", d]), "orders\n");
    produce(
        d,
        "orders",
        &["--key-separator", ":"],
        "alice:book\nbob:pen\nno key here\n",
    );
    // Without --from-beginning a consumer starts at the end: nothing to print.
    assert_eq!(ok(&["consume", "--dir", d, "orders"]), "");
    let all = ["consume", "--dir", d, "orders", "--from-beginning"];
    assert_eq!(ok(&all), "book\npen\nno key here\n");
    let keyed = ok(&[&all[..], &["--print-key"]].concat());
    assert_eq!(keyed, "alice\tbook\nbob\tpen\nnull\tno key here\n");
    let json = ok(&[&all[..], &["--format", "json", "--max-messages", "2"]].concat());
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["key"], "alice");
    assert_eq!(lines[1]["value"], "pen");
    assert_eq!(lines[1]["offset"], 1);
    // A group commits what it read: the next run of the group prints only new records.
    let group = [&all[..], &["--group", "billing"]].concat();
    assert_eq!(ok(&group).lines().count(), 3);
    produce(d, "orders", &[], "later\n");
    assert_eq!(ok(&group), "later\n");
    let described = ok(&["groups", "describe", "--dir", d, "billing"]);
    assert!(
        described.contains("billing\torders\t0\t4\t4\t0\t-"),
        "{described}"
    );
}

#[test]
fn topics_describe_alter_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&[
        "topics",
        "create",
        "--dir",
        d,
        "t",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
    ]);
    let described = ok(&["topics", "describe", "--dir", d, "t"]);
    assert!(described.contains("PartitionCount: 3"), "{described}");
    assert!(described.contains("retention.ms=60000"), "{described}");
    assert_eq!(described.lines().count(), 4, "{described}");
    ok(&[
        "topics",
        "alter",
        "--dir",
        d,
        "t",
        "--config",
        "retention.ms=1000",
        "--config",
        "cleanup.policy=compact",
    ]);
    let described = ok(&["topics", "describe", "--dir", d, "t"]);
    assert!(
        described.contains("retention.ms=1000") && described.contains("cleanup.policy=compact")
    );
    // Refused, naming what is wrong, and nothing changes.
    for bad in [
        ["--config", "partitions=5"],
        ["--config", "retention.mss=1"],
        ["--config", "segment.bytes=1"],
    ] {
        let out = streamlog(&[&["topics", "alter", "--dir", d, "t"][..], &bad[..]].concat());
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
    assert!(ok(&["topics", "describe", "--dir", d, "t"]).contains("retention.ms=1000"));
    // Partitions are added as kafka-topics --alter --partitions adds them (review:
    // the CLI had no way to); fewer are refused.
    ok(&["topics", "alter", "--dir", d, "t", "--partitions", "5"]);
    let described = ok(&["topics", "describe", "--dir", d, "t"]);
    assert!(described.contains("PartitionCount: 5"), "{described}");
    let fewer = streamlog(&[
        "topics",
        "alter",
        "--dir",
        d,
        "t",
        "--config",
        "retention.ms=5",
        "--partitions",
        "2",
    ]);
    assert_eq!(fewer.status.code(), Some(1));
    assert!(
        ok(&["topics", "describe", "--dir", d, "t"]).contains("retention.ms=1000"),
        "a refused alter changes nothing (review)"
    );
    // From a review: the config was written before `add_partitions` refused the count
    // (over its limit), and the command failed with the config changed.
    let over = streamlog(&[
        "topics",
        "alter",
        "--dir",
        d,
        "t",
        "--config",
        "retention.ms=5",
        "--partitions",
        "100001",
    ]);
    assert_eq!(over.status.code(), Some(1));
    let described = ok(&["topics", "describe", "--dir", d, "t"]);
    assert!(
        described.contains("retention.ms=1000") && described.contains("PartitionCount: 5"),
        "a refused partition count changes nothing: {described}"
    );
    // Both at once, when both are fine.
    ok(&[
        "topics",
        "alter",
        "--dir",
        d,
        "t",
        "--config",
        "retention.ms=2000",
        "--partitions",
        "6",
    ]);
    let described = ok(&["topics", "describe", "--dir", d, "t"]);
    assert!(
        described.contains("retention.ms=2000") && described.contains("PartitionCount: 6"),
        "{described}"
    );
    let nothing = streamlog(&["topics", "alter", "--dir", d, "t"]);
    assert_eq!(
        nothing.status.code(),
        Some(2),
        "a config or partitions is needed"
    );
    ok(&["topics", "delete", "--dir", d, "t"]);
    assert_eq!(ok(&["topics", "list", "--dir", d]), "");
    let out = streamlog(&["topics", "describe", "--dir", d, "t"]);
    assert_eq!(out.status.code(), Some(1));
    // A missing store is an error, not a new store.
    let out = streamlog(&["topics", "list", "--dir", "/nonexistent/streamlog-store"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn groups_reset_offsets_dry_run_execute_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t", "--partitions", "2"]);
    produce(d, "t", &["--partition", "0"], "a\nb\nc\nd\n");
    ok(&[
        "consume",
        "--dir",
        d,
        "t",
        "--from-beginning",
        "--group",
        "g",
    ]);
    let plan = ok(&[
        "groups",
        "reset-offsets",
        "--dir",
        d,
        "g",
        "--topic",
        "t:0",
        "--shift-by",
        "-3",
    ]);
    assert!(plan.contains("g\tt\t0\t4\t1"), "{plan}");
    assert!(plan.contains("Dry run"), "{plan}");
    assert!(
        ok(&["groups", "describe", "--dir", d, "g"]).contains("g\tt\t0\t4\t"),
        "dry run changed nothing"
    );
    ok(&[
        "groups",
        "reset-offsets",
        "--dir",
        d,
        "g",
        "--topic",
        "t",
        "--to-offset",
        "2",
        "--execute",
    ]);
    assert!(ok(&["groups", "describe", "--dir", d, "g"]).contains("g\tt\t0\t2\t4\t2"));
    assert_eq!(ok(&["consume", "--dir", d, "t", "--group", "g"]), "c\nd\n");
    // A target is required, and only one.
    let out = streamlog(&["groups", "reset-offsets", "--dir", d, "g", "--topic", "t"]);
    assert_eq!(out.status.code(), Some(2));
    let out = streamlog(&[
        "groups",
        "reset-offsets",
        "--dir",
        d,
        "g",
        "--topic",
        "t",
        "--to-earliest",
        "--to-latest",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(ok(&["groups", "list", "--dir", d]), "g\n");
    ok(&["groups", "delete", "--dir", d, "g"]);
    assert_eq!(ok(&["groups", "list", "--dir", d]), "");
}

#[test]
fn verify_passes_a_sound_store_and_names_the_damage_in_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t", "--partitions", "2"]);
    produce(d, "t", &["--partition", "1"], "one\ntwo\nthree\n");
    let verified = streamlog(&["verify", d, "-v"]);
    assert!(verified.stderr.is_empty(), "no progress bar in a pipe");
    let report = ok(&["verify", d, "-v"]);
    assert!(report.contains("ok: 3 partitions"), "{report}"); // with __consumer_offsets
    assert!(report.contains("t-1: 1 segments, 1 batches"), "{report}");
    // Enough partitions for `verify -v` to print more than an output buffer holds.
    ok(&[
        "topics",
        "create",
        "--dir",
        d,
        "many",
        "--partitions",
        "200",
    ]);
    // A flipped byte inside the batch: its CRC fails.
    let segment = Path::new(d).join("t-1").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let out = streamlog(&["verify", d]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("problem:") && report.contains("00000000000000000000.log"),
        "{report}"
    );
    assert!(report.contains("PROBLEMS FOUND"), "{report}");
    // With its reader gone (`verify DIR | head`) the verdict is still the exit status,
    // also when the report outgrows the output buffer (a line per partition); and
    // so is a dump's, once it found a problem.
    for args in [
        &["verify", d, "-v"][..],
        &["dump", segment.to_str().unwrap()],
    ] {
        assert_eq!(
            status_with_stdout_closed(args),
            Some(1),
            "{args:?} with its reader gone"
        );
    }
    // A directory that is not a store is an error too.
    let out = streamlog(&["verify", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// The exit status of `streamlog ARGS...` whose stdout is a pipe with no reader: every
/// write to it fails (EPIPE).
fn status_with_stdout_closed(args: &[&str]) -> Option<i32> {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .code()
}

/// The read commands open the store read-only: they work while another process (here
/// a `produce` still reading its input) holds it open as its writer, whose lock
/// refuses a second writer.
#[test]
fn read_commands_work_while_a_writer_holds_the_store() {
    use std::io::{BufRead, BufReader};

    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&[
        "topics",
        "create",
        "--dir",
        d,
        "orders",
        "--partitions",
        "2",
    ]);
    produce(d, "orders", &["--key-separator", ":"], "a:1\nb:2\nc:3\n");
    ok(&[
        "consume",
        "--dir",
        d,
        "orders",
        "--from-beginning",
        "--group",
        "billing",
    ]);

    /// Stops the writer however the test ends.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut writer = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_streamlog"))
            .args(["produce", "--dir", d, "orders", "--key-separator", ":"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Its first line sent (a read-only follower prints it): it has the store open.
    let mut input = writer.0.stdin.take().unwrap();
    input.write_all(b"d:4\n").unwrap();
    input.flush().unwrap();
    let mut follower = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_streamlog"))
            .args([
                "consume",
                "--dir",
                d,
                "orders",
                "--follow",
                "--from-beginning",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = BufReader::new(follower.0.stdout.take().unwrap()).lines();
    let (arrived, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if lines.map_while(Result::ok).any(|v| v == "4") {
            let _ = arrived.send(());
        }
    });
    // (A failure guard: the line comes within milliseconds.)
    seen.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the writer's line arrives");
    drop(follower);

    let refused = streamlog(&["produce", "--dir", d, "orders"]);
    assert!(
        !refused.status.success(),
        "the writer's lock refuses a second writer"
    );
    assert_eq!(ok(&["topics", "list", "--dir", d]), "orders\n");
    let described = ok(&["topics", "describe", "--dir", d, "orders"]);
    assert!(described.contains("PartitionCount: 2"), "{described}");
    let mut values: Vec<String> = ok(&["consume", "--dir", d, "orders", "--from-beginning"])
        .lines()
        .map(str::to_string)
        .collect();
    values.sort();
    assert_eq!(values, ["1", "2", "3", "4"]);
    assert!(ok(&["groups", "list", "--dir", d]).contains("billing"));
    let lag = ok(&["groups", "describe", "--dir", d, "billing"]);
    assert!(lag.contains("billing\torders\t"), "{lag}");
    // A reset's dry run only reads too (it opened the store as its writer: refused
    // while the application ran, and it recovered the store); --execute needs the lock.
    let reset = [
        "groups",
        "reset-offsets",
        "--dir",
        d,
        "billing",
        "--topic",
        "orders",
    ];
    let plan = ok(&[&reset[..], &["--to-earliest"]].concat());
    assert!(plan.contains("Dry run"), "{plan}");
    assert_eq!(
        plan.lines()
            .filter(|l| l.starts_with("billing\torders\t"))
            .count(),
        2
    );
    assert!(
        plan.lines()
            .filter(|l| l.starts_with("billing"))
            .all(|l| l.ends_with("\t0")),
        "{plan}"
    );
    let late = ok(&[&reset[..], &["--to-datetime", "9000000000000"]].concat());
    assert!(late.contains("Dry run"), "{late}");
    let refused = streamlog(&[&reset[..], &["--to-earliest", "--execute"]].concat());
    assert!(!refused.status.success());

    drop(writer);
}

/// A topic whose last batch holds no record (a transaction's COMMIT marker): `consume`
/// without `--follow` reads past it and ends, rather than waiting for a record that
/// never comes.
#[test]
fn consume_ends_at_a_transaction_marker() {
    use streamlog::{ProducerConfig, ProducerRecord, Store, StoreConfig, TopicConfig};

    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    {
        let store =
            Store::open_with(d, StoreConfig::default().background_maintenance(false)).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let producer = store
            .producer(ProducerConfig::default().transactional_id("tx"))
            .unwrap();
        producer.init_transactions().unwrap();
        producer.begin_transaction().unwrap();
        let sent: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|v| producer.send(ProducerRecord::new("t").value(v)).unwrap())
            .collect();
        producer.commit_transaction().unwrap();
        for delivery in sent {
            delivery.wait().unwrap();
        }
        producer.close().unwrap();
        store.close().unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(["consume", "--dir", d, "t", "--from-beginning"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "x\ny\n");
}

/// From an API attack: `consume --group G --max-messages 2` committed the positions of
/// the whole poll, not the records it printed, so the group skipped the other three
/// for good. It commits after the last record printed.
#[test]
fn a_group_with_max_messages_commits_only_what_it_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t"]);
    produce(d, "t", &[], "r0\nr1\nr2\nr3\nr4\n");
    let group = [
        "consume",
        "--dir",
        d,
        "t",
        "--group",
        "g",
        "--from-beginning",
    ];
    let first = ok(&[&group[..], &["--max-messages", "2"]].concat());
    assert_eq!(first, "r0\nr1\n");
    let described = ok(&["groups", "describe", "--dir", d, "g"]);
    assert!(described.contains("g\tt\t0\t2\t5\t3\t-"), "{described}");
    assert_eq!(ok(&group), "r2\nr3\nr4\n");
}

/// A read-only `consume --follow --from-beginning` of `topic` in `dir`, and its lines
/// as they come (the child is the caller's to kill).
fn follow_from_beginning(
    dir: &str,
    topic: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args([
            "consume",
            "--dir",
            dir,
            topic,
            "--follow",
            "--from-beginning",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// From an API attack: `consume --follow` without a group (the read-only path) wrote
/// through a buffer it flushed only at exit, so nothing appeared until 8 KiB piled up,
/// and stopping it (the way to end --follow) lost what it had read.
#[test]
fn a_read_only_follow_prints_records_as_it_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t"]);
    produce(d, "t", &[], "x\ny\n");
    let (mut child, rx) = follow_from_beginning(d, "t");
    // With the output held to the exit, nothing comes: a bound, not a timing.
    let hang = std::time::Duration::from_secs(60);
    let got: Vec<Result<String, _>> = (0..2).map(|_| rx.recv_timeout(hang)).collect();
    let _ = child.kill();
    let _ = child.wait();
    let got: Vec<String> = got
        .into_iter()
        .map(|r| r.expect("a record printed while following"))
        .collect();
    assert_eq!(got, ["x", "y"]);
}

/// A read-only `consume --follow` of a topic follows partitions added while it runs,
/// from their start (it read only the partitions there when it began).
#[test]
fn a_read_only_follow_reads_partitions_added_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t"]);
    produce(d, "t", &[], "x\n");
    let (mut child, rx) = follow_from_beginning(d, "t");
    // A failure guard, not a timing: each line comes within about a second.
    let hang = std::time::Duration::from_secs(60);
    let first = rx.recv_timeout(hang);
    ok(&["topics", "alter", "--dir", d, "t", "--partitions", "2"]);
    produce(d, "t", &["--partition", "1"], "y\n");
    let second = rx.recv_timeout(hang);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first.as_deref(), Ok("x"));
    assert_eq!(second.as_deref(), Ok("y"), "the added partition's record");
}

/// `produce` takes lines of bytes, as Kafka's console producer does: a line that is
/// not UTF-8 is sent as it is (it failed the command after the lines before it were
/// sent), and its key is split at the separator's bytes.
#[test]
fn produce_sends_lines_that_are_not_utf8_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let d = store_dir(tmp.path());
    ok(&["topics", "create", "--dir", &d, "t"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(["produce", "--dir", &d, "t", "--key-separator", ":"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = b"ok1\nk\xff:v\xfe\r\n\xff\xfe\nok3\n";
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = streamlog::Store::open(&d).unwrap();
    let records = store
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .read(0, 1 << 20)
        .unwrap();
    type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);
    let got: Vec<KeyValue> = records
        .into_iter()
        .map(|r| (r.key.map(|k| k.to_vec()), r.value.map(|v| v.to_vec())))
        .collect();
    let want: Vec<KeyValue> = vec![
        (None, Some(b"ok1".to_vec())),
        (Some(b"k\xff".to_vec()), Some(b"v\xfe".to_vec())),
        (None, Some(b"\xff\xfe".to_vec())),
        (None, Some(b"ok3".to_vec())),
    ];
    assert_eq!(got, want);
    drop(store);
    // And `consume` prints them as they are (it printed U+FFFD for each bad byte).
    let out = streamlog(&[
        "consume",
        "--dir",
        &d,
        "t",
        "--from-beginning",
        "--print-key",
    ]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        b"null\tok1\nk\xff\tv\xfe\nnull\t\xff\xfe\nnull\tok3\n".to_vec()
    );
}

/// `consume --group` auto-committed: when stdout failed (full, or closed), the
/// consumer's close committed every record the last poll returned, none of which had
/// left the output buffer, so the group skipped them. It now commits only what it
/// printed and flushed.
#[test]
fn consume_with_a_group_commits_nothing_it_could_not_print() {
    let tmp = tempfile::tempdir().unwrap();
    let d = store_dir(tmp.path());
    ok(&["topics", "create", "--dir", &d, "t"]);
    produce(&d, "t", &[], "a\nb\nc\n");
    let consume = [
        "consume",
        "--dir",
        &d,
        "t",
        "--group",
        "g",
        "--from-beginning",
    ];
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(consume)
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
    assert_eq!(ok(&consume), "a\nb\nc\n", "the group reads them again");
    assert_eq!(ok(&consume), "", "once printed, they are committed");
}

/// The library's warnings reach the user on stderr: deleting a topic whose partition
/// directory holds a file that is not the store's says that the directory (data
/// included) was left alone. It said only "Deleted topic t.".
#[test]
fn a_topic_deletion_that_leaves_a_directory_alone_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = store_dir(tmp.path());
    ok(&["topics", "create", "--dir", &d, "t"]);
    produce(&d, "t", &[], "a\n");
    std::fs::write(Path::new(&d).join("t-0").join("notes.txt"), "mine").unwrap();
    let out = streamlog(&["topics", "delete", "--dir", &d, "t"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("leaving t-0 alone"),
        "{err}"
    );
    assert!(Path::new(&d).join("t-0").join("notes.txt").exists());
}

/// Every name in `dir`, sorted (subdirectories as `name/`).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// The commands that change a store opened any existing directory as one, and
/// `Store::open` made a store there (`.topics/`, `__consumer_offsets-0/`) before the
/// command failed: a mistyped `--dir`, or a Kafka log directory, got the store's files.
/// They now refuse a directory without a store and write nothing; `topics create` (and
/// `import-kafka`) make a new store only in an empty directory.
#[test]
fn commands_that_change_a_store_write_nothing_where_no_store_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("notes");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let d = dir.to_str().unwrap();
    for args in [
        &["topics", "create", "--dir", d, "t"][..],
        &["topics", "delete", "--dir", d, "t"],
        &[
            "topics",
            "alter",
            "--dir",
            d,
            "t",
            "--config",
            "retention.ms=1",
        ],
        &["produce", "--dir", d, "t"],
        &["consume", "--dir", d, "t", "--group", "g"],
        &["groups", "delete", "--dir", d, "g"],
        &[
            "groups",
            "reset-offsets",
            "--dir",
            d,
            "g",
            "--topic",
            "t",
            "--to-earliest",
        ],
        &["import-kafka", "--dir", d, "t"],
    ] {
        let out = streamlog(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // (import-kafka finds no `t-0` to import before it looks for a store.)
        assert!(
            err.contains("no store in this directory") || err.contains("no `t-0` directory"),
            "{args:?}: {err}"
        );
        assert_eq!(entries(&dir), ["notes.txt"], "{args:?} wrote into it");
    }
    // An empty directory takes a new store from `topics create`, and then is one.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let out = streamlog(&["groups", "delete", "--dir", e, "g"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(entries(&empty), Vec::<String>::new());
    ok(&["topics", "create", "--dir", e, "t"]);
    produce(e, "t", &[], "a\n");
    assert_eq!(ok(&["consume", "--dir", e, "t", "--from-beginning"]), "a\n");
}

/// From the CLI review: `consume --group --follow` opened the store as its writer for
/// the commits and then waited for records no one could write (every writer was
/// refused meanwhile, the application's own open too). The combination is refused.
#[test]
fn a_group_consumer_cannot_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t"]);
    let out = streamlog(&["consume", "--dir", d, "t", "--group", "g", "--follow"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--follow"), "{stderr}");
}

/// From the CLI review: `produce` kept the producer's 1 MiB `max_request_size`, so a
/// line larger than that was refused even on a topic whose `max.message.bytes` takes
/// it. The topic's limit decides. (A later review: and its 32 MiB `buffer_memory`,
/// which a line larger than that still hit.)
#[test]
fn produce_sends_records_as_large_as_the_topic_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "big"]);
    ok(&[
        "topics",
        "alter",
        "--dir",
        d,
        "big",
        "--config",
        "max.message.bytes=40000000",
    ]);
    let line = "x".repeat(34_000_000);
    produce(d, "big", &[], &format!("{line}\n"));
    let printed = ok(&["consume", "--dir", d, "big", "--from-beginning"]);
    assert_eq!(printed, format!("{line}\n"));
}

/// From a review: `--config` pairs were applied one by one, each checked alone, so
/// knobs whose rules tie them failed in one order and worked in the other.
#[test]
fn tied_configs_can_be_given_in_any_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&[
        "topics",
        "create",
        "--dir",
        d,
        "gated",
        "--config",
        "retention.gate.groups=billing",
        "--config",
        "retention.gate.max.bytes=1000000",
        "--config",
        "min.compaction.lag.ms=5000",
        "--config",
        "max.compaction.lag.ms=10000",
    ]);
    // Both raised past the old maximum: the new minimum alone would exceed it.
    ok(&[
        "topics",
        "alter",
        "--dir",
        d,
        "gated",
        "--config",
        "min.compaction.lag.ms=20000",
        "--config",
        "max.compaction.lag.ms=30000",
    ]);
}

/// From the CLI review: a `topics create` refused for its name or config had made a
/// store in the empty directory first. Both are checked before now.
#[test]
fn a_refused_topics_create_leaves_an_empty_directory_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    for args in [
        &["topics", "create", "--dir", d, "bad/name"][..],
        &["topics", "create", "--dir", d, "__mine"][..],
        &["topics", "create", "--dir", d, "t", "--partitions", "0"][..],
    ] {
        let out = streamlog(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
}

/// `consume --partition` past the topic's partitions named it as Rust's debug output
/// (`Some(5)`).
#[test]
fn consume_names_a_missing_partition_plainly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = &store_dir(tmp.path());
    ok(&["topics", "create", "--dir", d, "t"]);
    let out = streamlog(&["consume", "--dir", d, "t", "--partition", "5"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("topic t has no partition 5"), "{stderr}");
}
