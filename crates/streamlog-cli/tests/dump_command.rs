//! `streamlog dump` as a user runs it: the built binary, what it prints on stdout and
//! stderr, and its exit statuses (0 ok, 1 problems, 2 usage error).

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use streamlog::format::BatchBuilder;
use streamlog::format::batch::MAX_TIMESTAMP_OFFSET;
use streamlog::log::{Log, LogConfig};

const T: i64 = 1_700_000_000_000;

fn streamlog<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .output()
        .expect("run the streamlog binary")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A partition directory with `batches` batches of two records each, closed cleanly.
fn write_log(dir: &Path, batches: i64) {
    let log = Log::open(dir, LogConfig::default().index_interval_bytes(100)).unwrap();
    for i in 0..batches {
        let mut b = BatchBuilder::new();
        for j in 0..2 {
            let value = format!("value {i}.{j} with a few bytes more");
            b.push(T + i, Some(b"key"), Some(value.as_bytes()), &[])
                .unwrap();
        }
        log.append(&mut b.finish().unwrap()).unwrap();
    }
    log.close().unwrap();
}

#[test]
fn a_good_log_exits_0_and_a_damaged_one_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-0");
    write_log(&dir, 3);

    let o = streamlog(&[
        OsStr::new("dump"),
        OsStr::new("--verify-index"),
        dir.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    let stdout = text(&o.stdout);
    assert!(stdout.starts_with("Dumping "), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("position: "))
            .count(),
        3
    );
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("Summary: files: 1 batches: 3 records: 6 indexEntries: "),
        "{summary}"
    );
    assert!(summary.ends_with(" problems: 0"), "{summary}");

    let o = streamlog(&[OsStr::new("dump"), OsStr::new("--json"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let offsets: Vec<i64> = text(&o.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["offset"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);

    // A flipped bit in the first batch's maxTimestamp, which its CRC covers.
    let segment = dir.join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&segment).unwrap();
    bytes[MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let o = streamlog(&[OsStr::new("dump"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let want = format!("error: {}: corruption at position 0: ", segment.display());
    assert!(text(&o.stderr).starts_with(&want), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(" problems: 1"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    for bad in [
        &["dump"][..],
        &["dump", "--jsn", "x.log"],
        &["dump", "--verify-index"],
        &["frobnicate"],
        &[],
    ] {
        let o = streamlog(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("Usage: streamlog"), "{bad:?}");
        assert_eq!(text(&o.stdout), "", "{bad:?}");
    }

    let o = streamlog(&["dump", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = text(&o.stdout);
    for part in ["--json", "--verify-index", "<PATH>...", "Exit status: 0"] {
        assert!(help.contains(part), "no {part} in {help}");
    }
    assert_eq!(streamlog(&["--version"]).status.code(), Some(0));
}

/// Runs the binary with `args`, its standard output closed before it writes (as by a
/// `| head` that has exited).
fn with_stdout_closed(args: &[&OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// `streamlog dump DIR | head`: the reader going away ends the dump quietly, status 0.
#[test]
fn a_closed_stdout_ends_the_dump_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many-0");
    // Far more output than a pipe holds.
    write_log(&dir, 2000);
    let o = with_stdout_closed(&[OsStr::new("dump"), OsStr::new("--json"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
}

/// From a CLI hunt: `dump --json --verify-index good bad 2>&1 | head` with the reader
/// gone: with `--json` the verdicts go to stderr, whose first failed write ended the
/// check with status 0 (the reader had gone before any problem), `bad` never read.
/// Stderr's writes are dropped like stdout's once the reader is gone; the check goes
/// on, and its status is the verdict.
#[test]
fn a_verify_goes_on_when_the_reader_of_stderr_is_gone_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, bad) = (tmp.path().join("good-0"), tmp.path().join("bad-0"));
    write_log(&good, 2);
    write_log(&bad, 2);
    let segment = bad.join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&segment).unwrap();
    bytes[MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args([
            OsStr::new("dump"),
            OsStr::new("--json"),
            OsStr::new("--verify-index"),
            good.as_os_str(),
            bad.as_os_str(),
        ])
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

/// The value after `name: ` in a dump line.
fn field_of<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!(" {name}: "))
        .map(|i| i + name.len() + 3)
        .or_else(|| {
            line.starts_with(&format!("{name}: "))
                .then_some(name.len() + 2)
        })
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at..].split(' ').next().unwrap()
}

/// A store written with transactions: `t-0` holds a committed transaction (offsets 0-1,
/// COMMIT at 2), an aborted one (3, ABORT at 4) and a plain idempotent record (5).
fn write_transactional_store(dir: &Path) {
    use streamlog::{ProducerConfig, ProducerRecord, Store, TopicConfig};
    let store = Store::open(dir).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let txn = store
        .producer(
            ProducerConfig::default()
                .transactional_id("app")
                .linger_ms(0),
        )
        .unwrap();
    txn.init_transactions().unwrap();
    txn.begin_transaction().unwrap();
    let records = [
        ProducerRecord::new("t").value("committed-1"),
        ProducerRecord::new("t").value("committed-2"),
    ];
    txn.send_batch(&records).unwrap().wait().unwrap();
    txn.commit_transaction().unwrap();
    txn.begin_transaction().unwrap();
    txn.send(ProducerRecord::new("t").value("aborted"))
        .unwrap()
        .wait()
        .unwrap();
    txn.abort_transaction().unwrap();
    let plain = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    plain
        .send(ProducerRecord::new("t").value("plain"))
        .unwrap()
        .wait()
        .unwrap();
    store.close().unwrap();
}

#[test]
fn a_store_written_with_transactions_dumps_producers_markers_snapshots_and_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    write_transactional_store(tmp.path());
    let dir = tmp.path().join("t-0");
    let o = streamlog(&[OsStr::new("dump"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "");
    let stdout = text(&o.stdout);
    let batches: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("position: "))
        .collect();
    assert_eq!(batches.len(), 5, "{stdout}");
    let [committed, commit, aborted, abort, plain] = batches[..] else {
        unreachable!()
    };
    let pid = field_of(committed, "producerId");
    let epoch = |l: &str| field_of(l, "producerEpoch").parse::<i16>().unwrap();
    // The transactional data batches.
    for (line, base, last_sequence) in [(committed, "0", "1"), (aborted, "3", "0")] {
        assert_eq!(field_of(line, "baseOffset"), base, "{line}");
        assert_eq!(field_of(line, "producerId"), pid, "{line}");
        assert_eq!(field_of(line, "baseSequence"), "0", "{line}");
        assert_eq!(field_of(line, "lastSequence"), last_sequence, "{line}");
        assert_eq!(field_of(line, "isTransactional"), "true", "{line}");
        assert_eq!(field_of(line, "isControl"), "false", "{line}");
        assert!(!line.contains("endTxnMarker"), "{line}");
    }
    assert_eq!(field_of(committed, "lastOffset"), "1");
    assert!(
        epoch(aborted) > epoch(committed),
        "one epoch per transaction"
    );
    // The markers, under the epoch of the data they close.
    for (line, data, offset, kind) in [
        (commit, committed, "2", "COMMIT"),
        (abort, aborted, "4", "ABORT"),
    ] {
        assert_eq!(field_of(line, "baseOffset"), offset, "{line}");
        assert_eq!(field_of(line, "producerId"), pid, "{line}");
        assert_eq!(epoch(line), epoch(data), "{line}");
        assert_eq!(field_of(line, "baseSequence"), "-1", "{line}");
        assert_eq!(field_of(line, "isTransactional"), "true", "{line}");
        assert_eq!(field_of(line, "isControl"), "true", "{line}");
        assert!(
            line.ends_with(&format!(" endTxnMarker: {kind} coordinatorEpoch: 0")),
            "{line}"
        );
    }
    // The plain idempotent producer: its own producer id, not transactional.
    let plain_pid = field_of(plain, "producerId");
    assert_ne!(plain_pid, pid);
    assert!(plain_pid.parse::<i64>().unwrap() >= 0);
    assert_eq!(field_of(plain, "isTransactional"), "false");
    assert_eq!(field_of(plain, "baseSequence"), "0");

    // The snapshot taken at close (offset 6), one line per producer, nothing open.
    let snapshot = dir.join(format!("{:020}.snapshot", 6));
    let header = format!(
        "Dumping {} (producer snapshot at offset 6, {} bytes)",
        snapshot.display(),
        10 + 2 * 46
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines.iter().position(|l| *l == header).expect(stdout);
    let mut producers: Vec<&str> = lines[at + 1..at + 3].to_vec();
    producers.sort_by_key(|l| field_of(l, "producerId").parse::<i64>().unwrap());
    for line in &producers {
        assert_eq!(field_of(line, "currentTxnFirstOffset"), "-1", "{line}");
    }
    let txn_entry = producers
        .iter()
        .find(|l| field_of(l, "producerId") == pid)
        .unwrap();
    assert_eq!(epoch(txn_entry), epoch(abort));
    assert_eq!(field_of(txn_entry, "coordinatorEpoch"), "0");
    assert_eq!(field_of(txn_entry, "lastOffset"), "3");
    assert_eq!(field_of(txn_entry, "lastSequence"), "0");
    let plain_entry = producers
        .iter()
        .find(|l| field_of(l, "producerId") == plain_pid)
        .unwrap();
    assert_eq!(field_of(plain_entry, "coordinatorEpoch"), "-1");
    assert_eq!(field_of(plain_entry, "lastOffset"), "5");

    // The aborted transaction in the segment's .txnindex.
    let txn_index = dir.join(format!("{:020}.txnindex", 0));
    let header = format!(
        "Dumping {} (transaction index, base offset 0, 34 bytes)",
        txn_index.display()
    );
    let at = lines.iter().position(|l| *l == header).expect(stdout);
    assert_eq!(
        lines[at + 1],
        format!("version: 0 producerId: {pid} firstOffset: 3 lastOffset: 4 lastStableOffset: 5")
    );
    assert_eq!(
        *lines.last().unwrap(),
        "Summary: files: 3 batches: 5 records: 6 snapshotEntries: 2 abortedTxns: 1 problems: 0"
    );

    // Named on the command line with --json: one object per entry.
    let o = streamlog(&[
        OsStr::new("dump"),
        OsStr::new("--json"),
        txn_index.as_os_str(),
        snapshot.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let objects: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{}", text(&o.stdout));
    assert_eq!(
        objects[0],
        serde_json::json!({
            "producerId": pid.parse::<i64>().unwrap(),
            "firstOffset": 3, "lastOffset": 4, "lastStableOffset": 5
        })
    );
    assert!(
        objects[1..]
            .iter()
            .all(|o| o["currentTxnFirstOffset"] == -1 && o["lastOffset"].is_i64())
    );
    // A directory with --json stays records only: 6 records (markers marked).
    let o = streamlog(&[OsStr::new("dump"), OsStr::new("--json"), dir.as_os_str()]);
    assert_eq!(text(&o.stdout).lines().count(), 6);
}

#[test]
fn damaged_snapshots_and_txnindexes_exit_1_with_the_position() {
    let tmp = tempfile::tempdir().unwrap();
    write_transactional_store(tmp.path());
    let dir = tmp.path().join("t-0");
    let snapshot = dir.join(format!("{:020}.snapshot", 6));
    let good = fs::read(&snapshot).unwrap();
    // A flipped bit in an entry, which the CRC covers.
    let mut bad = good.clone();
    bad[20] ^= 0x01;
    fs::write(&snapshot, &bad).unwrap();
    let o = streamlog(&[OsStr::new("dump"), snapshot.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let want = format!(
        "error: {}: corruption at position 2: snapshot CRC-32C mismatch",
        snapshot.display()
    );
    assert!(text(&o.stderr).starts_with(&want), "{}", text(&o.stderr));
    // Cut inside the second entry: the count no longer matches, the first entry prints.
    fs::write(&snapshot, &good[..10 + 46 + 20]).unwrap();
    let o = streamlog(&[OsStr::new("dump"), snapshot.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("corruption at position 6: the snapshot declares 2 entries"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        text(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("producerId: "))
            .count(),
        1
    );
    // Another version.
    let mut bad = good.clone();
    bad[1] = 2;
    fs::write(&snapshot, &bad).unwrap();
    let o = streamlog(&[OsStr::new("dump"), snapshot.as_os_str()]);
    assert!(text(&o.stderr).contains("corruption at position 0: snapshot version 2, expected 1"));
    fs::write(&snapshot, &good).unwrap();

    let txn_index = dir.join(format!("{:020}.txnindex", 0));
    let good = fs::read(&txn_index).unwrap();
    fs::write(&txn_index, &good[..20]).unwrap();
    let o = streamlog(&[OsStr::new("dump"), dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "error: {}: corruption at position 0: truncated entry: 20 bytes of 34",
        txn_index.display()
    );
    assert!(text(&o.stderr).starts_with(&want), "{}", text(&o.stderr));
    // Entries out of order: the same entry twice.
    fs::write(&txn_index, [&good[..], &good[..]].concat()).unwrap();
    let o = streamlog(&[OsStr::new("dump"), txn_index.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(
            "corruption at position 34: lastOffset 4 does not follow the previous entry's 4"
        ),
        "{}",
        text(&o.stderr)
    );
}

/// Compaction keeps a control batch whose marker it removed (empty, to hold its offset):
/// the dump shows it, and it is not damage.
#[test]
fn an_empty_control_batch_left_by_compaction_is_not_damage() {
    use streamlog::format::batch::{
        ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD,
        PARTITION_LEADER_EPOCH_OFFSET, RECORDS_COUNT_OFFSET, RECORDS_OFFSET, compute_crc,
    };
    use streamlog::format::{ControlRecordType, control_batch};
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("00000000000000000000.log");
    // A COMMIT marker batch, its one record cut: recordsCount 0, the length and CRC fixed.
    let mut b = control_batch(ControlRecordType::Commit, 7, 0, 0, T).unwrap();
    b.truncate(RECORDS_OFFSET);
    b[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&0i32.to_be_bytes());
    b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&0i32.to_be_bytes());
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET].copy_from_slice(&len.to_be_bytes());
    let crc = compute_crc(&b);
    b[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    fs::write(&file, &b).unwrap();
    let out = streamlog(&[OsStr::new("dump"), file.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("endTxnMarker: none (removed by compaction)"),
        "{}",
        text(&out.stdout)
    );
}

/// Makes a FIFO at `fifo`; false where `mkfifo` is missing.
#[cfg(unix)]
fn mkfifo(fifo: &Path) -> bool {
    let made = std::process::Command::new("mkfifo").arg(fifo).status();
    made.is_ok_and(|s| s.success())
}

/// Runs `dump` with `args`, which read the FIFO `fifo` unless refused; a run still
/// reading it after a minute fails the test (the FIFO opened for writing first, so
/// the run ends).
#[cfg(unix)]
fn dump_beside_fifo(args: Vec<std::ffi::OsString>, fifo: &Path) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = vec![std::ffi::OsString::from("dump")];
        all.extend(args);
        let all: Vec<&OsStr> = all.iter().map(|a| a.as_os_str()).collect();
        let _ = tx.send(streamlog(&all));
    });
    let Ok(out) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
        let _ = std::fs::OpenOptions::new().write(true).open(fifo);
        panic!("dump reading the FIFO {} hung", fifo.display());
    };
    assert_eq!(out.status.code(), Some(1));
    out
}

/// `dump` of a FIFO (or another file that is not a regular file) refuses it: reading
/// it waited for a writer forever.
#[cfg(unix)]
#[test]
fn a_path_that_is_not_a_regular_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("00000000000000000000.log");
    if !mkfifo(&fifo) {
        return; // no mkfifo here
    }
    let out = dump_beside_fifo(vec![fifo.clone().into()], &fifo);
    assert!(
        text(&out.stderr).contains("not a regular file"),
        "{}",
        text(&out.stderr)
    );
}

/// `dump --verify-index` of a segment whose `.index` is a FIFO reports it: reading it
/// waited for a writer forever (the PATH was checked, the index files beside it not).
#[cfg(unix)]
#[test]
fn an_index_that_is_not_a_regular_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fifo-0");
    write_log(&dir, 2);
    let index = dir.join("00000000000000000000.index");
    fs::remove_file(&index).unwrap();
    if !mkfifo(&index) {
        return; // no mkfifo here
    }
    let out = dump_beside_fifo(vec!["--verify-index".into(), dir.clone().into()], &index);
    assert!(
        text(&out.stderr).contains("is not a regular file"),
        "{}",
        text(&out.stderr)
    );
}

/// `dump` holds one batch in memory, not the file. A segment of 272 MiB (sparse on
/// disk) whose fourth batch claims 256 MiB of damaged bytes dumps, reports the damage
/// and steps over it, under a 128 MiB address-space limit (the tool starts in under
/// 32). It used to read each file whole first, so this run died failing to allocate.
#[cfg(target_os = "linux")]
#[test]
fn a_segment_larger_than_the_memory_limit_dumps_one_batch_at_a_time() {
    use std::io::Write as _;

    use streamlog::format::batch::{BATCH_LENGTH_OFFSET, CRC_OFFSET, MAGIC_OFFSET};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big-0");
    write_log(&dir, 3);
    let path = dir.join("00000000000000000000.log");
    let damaged_at = fs::metadata(&path).unwrap().len();
    let claimed: i32 = 1 << 28;
    let mut header = [0u8; 61];
    header[..8].copy_from_slice(&6i64.to_be_bytes());
    header[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
        .copy_from_slice(&(claimed - 12).to_be_bytes());
    header[MAGIC_OFFSET] = 2;
    header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&header).unwrap();
    // The claimed bytes and 16 MiB past them: zeros, unallocated on disk.
    file.set_len(damaged_at + u64::try_from(claimed).unwrap() + (16 << 20))
        .unwrap();
    drop(file);

    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 131072 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_streamlog"))
        .arg("dump")
        .arg(&path)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(lines[3].contains(" crcValid: true "), "{}", lines[3]);
    assert!(
        lines[4].starts_with(&format!("position: {damaged_at} baseOffset: 6 ")),
        "{}",
        lines[4]
    );
    assert!(lines[4].contains(" crcValid: false "), "{}", lines[4]);
    assert!(
        lines[5].contains("batches: 3 records: 6 problems: 2"),
        "{}",
        lines[5]
    );
    assert!(
        stderr.contains(&format!("position {damaged_at}: malformed record batch"))
            && stderr.contains("stored 0xdeadbeef"),
        "{stderr}"
    );
    let after = damaged_at + u64::try_from(claimed).unwrap();
    assert!(
        stderr.contains(&format!(
            "position {after}: batchLength declares 12 bytes, below the 61-byte minimum"
        )),
        "{stderr}"
    );
}

/// From a review: `dump --verify-index DIR | head` exited 0 once the reader went away,
/// although the files after that point were never checked (a health check piping it
/// through `head` was told all was well). The check goes on without output; damage in
/// the last batch is still the exit status, and reported.
#[test]
fn a_closed_stdout_does_not_cut_a_verify_short() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("many-0");
    write_log(&dir, 2000);
    let segment = dir.join(format!("{:020}.log", 0));
    let mut bytes = fs::read(&segment).unwrap();
    let mut last = 0;
    while let Some(len) = bytes.get(last + 8..last + 12) {
        let next = last + 12 + i32::from_be_bytes(len.try_into().unwrap()) as usize;
        if next >= bytes.len() {
            break;
        }
        last = next;
    }
    // A flipped bit in the last batch's maxTimestamp, which its CRC covers.
    bytes[last + MAX_TIMESTAMP_OFFSET + 7] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let o = with_stdout_closed(&[
        OsStr::new("dump"),
        OsStr::new("--verify-index"),
        dir.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let want = format!(
        "error: {}: corruption at position {last}: ",
        segment.display()
    );
    assert!(text(&o.stderr).starts_with(&want), "{}", text(&o.stderr));
}
