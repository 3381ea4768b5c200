//! `Store::open_read_only` (issue 18, item 1): a reader process follows a writer
//! process that holds the store open: every record in order, across segment rolls,
//! retention and a compaction swap, committed offsets included, and no byte written.
//! The two processes step each other through phases over the child's stdin and
//! stdout, so nothing depends on timing.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use streamlog::{
    CleanupPolicy, ConsumerConfig, Error, Record, Store, StoreConfig, TopicConfig, TopicPartition,
};

const WRITER_DIR: &str = "STREAMLOG_READ_ONLY_WRITER_DIR";
const HANG: Duration = Duration::from_secs(60);
const T0: i64 = 1_700_000_000_000;

fn event(i: usize) -> String {
    format!("event-{i:05}-{}", "x".repeat(60))
}

/// The writer of `a_reader_process_follows_a_writer_process`, run by it as a child
/// process (it does nothing when run as a test of its own).
#[test]
fn writer_process() {
    let Ok(dir) = std::env::var(WRITER_DIR) else {
        return;
    };
    let mut go = std::io::stdin().lock().lines();
    let mut wait_for_go = || assert_eq!(go.next().unwrap().unwrap(), "go");
    let store =
        Store::open_with(&dir, StoreConfig::default().background_maintenance(false)).unwrap();
    store
        .create_topic(
            "events",
            TopicConfig::default()
                .segment_bytes(1024)
                .retention_bytes(2048),
        )
        .unwrap();
    store
        .create_topic(
            "profiles",
            TopicConfig::default()
                .segment_bytes(1024)
                .cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let events = store.topic("events").unwrap().partition(0).unwrap();
    let profiles = store.topic("profiles").unwrap().partition(0).unwrap();
    let append = |from: usize, to: usize, profiles_from: usize, profiles_to: usize| {
        for i in from..to {
            events
                .append(&[Record::new(T0, Some("k"), Some(event(i)))])
                .unwrap();
        }
        for i in profiles_from..profiles_to {
            profiles
                .append(&[Record::new(
                    T0,
                    Some(format!("user-{}", i % 10)),
                    Some(format!("profile-{i:05}")),
                )])
                .unwrap();
        }
    };
    let mut consumer = store.consumer(ConsumerConfig::new("g")).unwrap();
    let tp = TopicPartition::new("events", 0);
    consumer.assign(std::slice::from_ref(&tp)).unwrap();
    let commit = |consumer: &mut streamlog::Consumer, offset| {
        consumer
            .commit_sync_offsets(&BTreeMap::from([(tp.clone(), offset)]))
            .unwrap();
    };

    append(0, 300, 0, 200);
    commit(&mut consumer, 123);
    println!("phase 1");
    wait_for_go();

    let report = store.run_maintenance().unwrap();
    assert!(report.segments_deleted > 0, "{report:?}");
    assert!(report.records_removed > 0, "{report:?}");
    append(300, 400, 200, 210);
    commit(&mut consumer, 456);
    println!("phase 2");
    wait_for_go();
    drop(consumer);
    store.close().unwrap();
    println!("closed");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Reads `part` from `from` until `to` (exclusive), waiting for the writer as needed;
/// checks every offset comes once, in order. Returns the values.
fn read_range(part: &streamlog::ReadOnlyPartition, from: i64, to: i64) -> Vec<String> {
    let mut values = Vec::new();
    let mut next = from;
    while next < to {
        let records = part.poll(next, 4096, HANG).unwrap();
        assert!(!records.is_empty(), "nothing at {next} after {HANG:?}");
        for r in records {
            assert_eq!(r.offset, next, "in order, each once");
            next += 1;
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[test]
fn a_reader_process_follows_a_writer_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "writer_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DIR, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_writer = writer.stdin.take().unwrap();
    let mut from_writer = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut wait_for = |phase: &str| loop {
        let line = from_writer
            .next()
            .unwrap_or_else(|| panic!("the writer ended before `{phase}`"))
            .unwrap();
        // The test harness may print `test writer_process ... ` before it on the line.
        if line.ends_with(phase) {
            return;
        }
    };

    wait_for("phase 1");
    assert!(
        matches!(Store::open(&dir), Err(Error::Locked { .. })),
        "the writer holds the store"
    );
    let reader = Store::open_read_only(&dir).unwrap();
    assert_eq!(reader.list_topics().unwrap(), ["events", "profiles"]);
    let events = reader.partition("events", 0).unwrap();
    let profiles = reader.partition("profiles", 0).unwrap();
    assert!(matches!(
        reader.partition("events", 1),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        read_range(&events, 0, 300),
        (0..300).map(event).collect::<Vec<_>>(),
        "across the segment rolls"
    );
    assert_eq!(events.log_end_offset().unwrap(), 300);
    assert_eq!(read_range(&profiles, 0, 200).len(), 200);
    let tp = TopicPartition::new("events", 0);
    assert_eq!(reader.list_groups().unwrap(), ["g"]);
    assert_eq!(
        reader.committed("g").unwrap(),
        BTreeMap::from([(tp.clone(), 123)])
    );
    assert!(
        !events.wait_for(300, Duration::ZERO).unwrap(),
        "nothing new yet"
    );
    // A second reader of profiles stopped inside a segment the compaction will rewrite:
    // it reads on across the swap.
    let midway = reader.partition("profiles", 0).unwrap();
    let mut midway_next = 0;
    while midway_next < 50 {
        let records = midway.read(midway_next, 1).unwrap();
        midway_next = records.last().unwrap().offset + 1;
    }

    // Phase 2: retention and a compaction, then more records.
    writeln!(to_writer, "go").unwrap();
    let more = read_range(&events, 300, 400);
    assert_eq!(more, (300..400).map(event).collect::<Vec<_>>());
    wait_for("phase 2");
    let start = events.log_start_offset().unwrap();
    assert!(start > 0, "retention deleted the first segments");
    let from_start = events.read(0, 1 << 20).unwrap();
    assert_eq!(
        from_start[0].offset, start,
        "a deleted offset reads on from the start"
    );
    assert_eq!(read_range(&profiles, 200, 210).len(), 10);
    // Read from the beginning again: the compacted files, each offset once, in order,
    // the latest value of every key there.
    let mut latest = BTreeMap::new();
    let mut next = 0;
    let mut count = 0;
    loop {
        let records = profiles.read(next, 4096).unwrap();
        let Some(last) = records.last() else { break };
        next = last.offset + 1;
        for r in records {
            count += 1;
            latest.insert(r.key.unwrap(), r.value.unwrap());
        }
    }
    assert_eq!(next, 210);
    assert!(count < 210, "compaction removed records: {count}");
    for k in 0..10 {
        let key = bytes::Bytes::from(format!("user-{k}"));
        assert_eq!(
            latest[&key],
            bytes::Bytes::from(format!("profile-{:05}", 200 + k))
        );
    }
    assert_eq!(reader.committed("g").unwrap(), BTreeMap::from([(tp, 456)]));
    let mut latest_midway = BTreeMap::new();
    loop {
        let records = midway.read(midway_next, 4096).unwrap();
        let Some(last) = records.last().map(|r| r.offset) else {
            break;
        };
        for r in records {
            assert!(r.offset >= midway_next, "each offset once, in order");
            midway_next = r.offset + 1;
            latest_midway.insert(r.key.unwrap(), r.value.unwrap());
        }
        assert_eq!(last + 1, midway_next);
    }
    assert_eq!(midway_next, 210, "read on to the end across the swap");
    assert_eq!(latest_midway.len(), 10);
    for (k, v) in &latest_midway {
        assert_eq!(latest[k], *v, "the latest value of every key");
    }

    writeln!(to_writer, "go").unwrap();
    wait_for("closed");
    assert!(writer.wait().unwrap().success());

    // Reading changes nothing.
    let before = snapshot(&dir);
    let reader = Store::open_read_only(&dir).unwrap();
    let events = reader.partition("events", 0).unwrap();
    assert_eq!(events.read(0, 1 << 20).unwrap()[0].offset, start);
    assert_eq!(events.log_end_offset().unwrap(), 400);
    reader.committed("g").unwrap();
    assert_eq!(snapshot(&dir), before, "a read-only store writes nothing");
}

/// A batch being written (its bytes not all in the file yet) is not visible; once
/// whole it is, and a directory that is no store is refused.
#[test]
fn a_batch_is_visible_only_once_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for v in ["a", "b"] {
        part.append(&[Record::new(T0, Some("k"), Some(v))]).unwrap();
    }
    store.close().unwrap();
    drop(store);
    // The third batch as the writer would append it, base offset 2.
    let mut b = streamlog::BatchBuilder::new();
    b.push(T0, Some(b"k"), Some(b"c"), &[]).unwrap();
    let mut bytes = b.finish().unwrap();
    bytes[..8].copy_from_slice(&2i64.to_be_bytes());
    let segment = tmp.path().join("t-0").join("00000000000000000000.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half]).unwrap();

    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    assert_eq!(t.log_end_offset().unwrap(), 2);
    let values: Vec<_> = t
        .read(0, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, ["a", "b"]);
    assert!(t.read(2, 1 << 20).unwrap().is_empty());
    file.write_all(&bytes[half..]).unwrap();
    assert!(t.wait_for(2, HANG).unwrap());
    assert_eq!(
        t.read(2, 1 << 20).unwrap()[0].value.as_deref(),
        Some(&b"c"[..])
    );

    let elsewhere = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open_read_only(elsewhere.path()),
        Err(Error::NotFound { .. })
    ));
}

/// A closed store whose topic `t` holds 30 records over several segments, and the
/// path of its first segment.
fn closed_store_of_several_segments() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..30 {
        part.append(&[Record::new(T0, Some("k"), Some(event(i)))])
            .unwrap();
    }
    assert!(store.describe_topic("t").unwrap().partitions[0].segment_count > 1);
    store.close().unwrap();
    let first = tmp.path().join("t-0").join("00000000000000000000.log");
    (tmp, first)
}

/// Damage in a segment the writer has moved past is `Corruption` naming the file, not
/// a silent end of the log.
#[test]
fn damage_before_the_last_segment_is_corruption() {
    let (tmp, first) = closed_store_of_several_segments();
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&first, bytes).unwrap();
    let reader = Store::open_read_only(tmp.path()).unwrap();
    match reader.partition("t", 0).unwrap().read(0, 1 << 20) {
        Err(Error::Corruption { path, .. }) => assert_eq!(path, first),
        other => panic!("expected Corruption, got {other:?}"),
    }
}

/// Damage in the last segment, inside what the writer recorded as synced
/// (`streamlog.durable`), is `Corruption` too: it was taken for a write in progress,
/// and the records from it on were left out without a word (the CLI's `consume`
/// printed the first record of three and exited 0). A batch cut short past it is still
/// a write in progress (`a_batch_is_visible_only_once_whole`).
#[test]
fn damage_to_synced_bytes_of_the_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for v in ["a", "b", "c"] {
        part.append(&[Record::new(T0, Some("k"), Some(v))]).unwrap();
    }
    store.close().unwrap();
    let segment = tmp.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let second = 12 + i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    // Its value, under the CRC.
    let second_len = 12 + i32::from_be_bytes(bytes[second + 8..second + 12].try_into().unwrap());
    bytes[second + second_len as usize - 1] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    assert_corruption_at(t.read(1, 1 << 20), &segment, second as u64);
    assert!(matches!(t.log_end_offset(), Err(Error::Corruption { .. })));
}

/// A wait on a read-only partition ends once the writer appends past it; with the
/// `notify` feature it waits on file-system events on the partition's directory.
#[test]
fn a_wait_ends_when_the_writer_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(T0, Some("k"), Some("first"))])
        .unwrap();
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    assert_eq!(t.wait_mechanism(), streamlog::WaitMechanism::Polling);
    assert!(!t.wait_for(1, Duration::from_millis(1)).unwrap());
    let expected = if cfg!(feature = "notify") {
        streamlog::WaitMechanism::Events
    } else {
        streamlog::WaitMechanism::Polling
    };
    assert_eq!(t.wait_mechanism(), expected);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| t.poll(1, 1 << 20, HANG).unwrap());
        part.append(&[Record::new(T0, Some("k"), Some("second"))])
            .unwrap();
        let got = waiter.join().unwrap();
        assert_eq!(got[0].value.as_deref(), Some(&b"second"[..]));
    });
}

/// From an API attack: with every record deleted by retention (log start = end = 10),
/// `read_on(0)` answered "read on from 0", so `poll_on(0)`'s wait for offset 0 ended
/// at once (the end is past it) and a follower spun on the CPU. The offset to read on
/// from is now the log start, and a wait from there waits for a new record.
#[test]
fn reading_on_below_the_log_start_goes_on_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let config = TopicConfig::default()
        .retention_ms(60_000)
        .segment_bytes(1024);
    store.create_topic("t", config).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        part.append(&[Record::new(1_000, Some("k"), Some(event(i)))])
            .unwrap();
    }
    part.flush().unwrap();
    store.run_maintenance().unwrap();
    assert_eq!(
        (part.log_start_offset(), part.log_end_offset()),
        (10, 10),
        "retention deleted every record"
    );
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    assert_eq!(t.read_on(0, 1 << 20).unwrap(), (Vec::new(), 10));
    assert!(
        !t.wait_for(10, Duration::ZERO).unwrap(),
        "nothing at 10 yet"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| t.poll_on(0, 1 << 20, HANG).unwrap());
        part.append(&[Record::new(T0, Some("k"), Some("new"))])
            .unwrap();
        let (got, next) = waiter.join().unwrap();
        assert_eq!(next, 11);
        assert_eq!(got[0].value.as_deref(), Some(&b"new"[..]));
    });
}

/// Records below a log start `delete_records` moved inside a segment (which stays until
/// retention removes it whole) are gone for a reader too, as for the writer's
/// consumers: its log start is the writer's, and reads from below it begin there, also
/// inside the batch that holds it. They were read before (`streamlog consume
/// --from-beginning` printed deleted records).
#[test]
fn records_below_a_deleted_log_start_are_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    // One batch of 0..3, then one record per batch.
    let first: Vec<Record> = (0..3)
        .map(|i| Record::new(T0, Some("k"), Some(event(i))))
        .collect();
    part.append(&first).unwrap();
    for i in 3..6 {
        part.append(&[Record::new(T0, Some("k"), Some(event(i)))])
            .unwrap();
    }
    for (deleted_to, next) in [(2, 2), (4, 4)] {
        store.delete_records("t", 0, deleted_to).unwrap();
        let reader = Store::open_read_only(tmp.path()).unwrap();
        let t = reader.partition("t", 0).unwrap();
        assert_eq!(t.log_start_offset().unwrap(), deleted_to);
        let (got, _) = t.read_on(0, 1 << 20).unwrap();
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets.first(), Some(&next), "{offsets:?}");
        assert_eq!(t.poll(1, 1 << 20, HANG).unwrap()[0].offset, next);
        assert_eq!(read_range(&t, next, 6).len(), 6 - deleted_to as usize);
    }
}

/// From a review: a handle that had read a partition to its end read on, after the
/// topic was deleted and created again, in the new topic's directory: the new topic's
/// records from its old position on came as if they continued the old log (those below
/// it never). Its reads now fail with `NotFound`; a new handle reads the new topic.
#[test]
fn a_handle_does_not_read_on_into_a_topic_created_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let append = |from: usize, to: usize| {
        let part = store.topic("t").unwrap().partition(0).unwrap();
        for i in from..to {
            part.append(&[Record::new(T0, Some("k"), Some(event(i)))])
                .unwrap();
        }
    };
    store.create_topic("t", TopicConfig::default()).unwrap();
    append(0, 6);
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let old = reader.partition("t", 0).unwrap();
    let (got, next) = old.read_on(0, 1 << 20).unwrap();
    assert_eq!((got.len(), next), (6, 6));
    store.delete_topic("t").unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    append(100, 110);
    let err = old.read_on(next, 1 << 20).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: "partition", name } if name == "t-0"),
        "{err}"
    );
    let new = reader.partition("t", 0).unwrap();
    assert_eq!(read_range(&new, 0, 10)[0], event(100));
}

/// From a review: a reader reading on from where its last read ended (`read_on`'s next
/// offset) did not look at the log start again, so records `delete_records` removed
/// since were returned; a fresh read there starts at the new log start.
#[test]
fn a_sequential_read_skips_what_delete_records_removed_since() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..10 {
        part.append(&[Record::new(T0, Some("k"), Some(event(i)))])
            .unwrap();
    }
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    // A small budget: one batch per read.
    let (got, next) = t.read_on(0, 1).unwrap();
    assert_eq!((got.len(), next), (1, 1));
    // The same through the public TailReader's batches.
    let mut tail = streamlog::log::TailReader::new(
        tmp.path().join("t-0"),
        streamlog::format::DecodeOptions::default(),
    );
    let first = tail.read_batches(0, 1).unwrap();
    assert_eq!(first[0].last_offset(), 0);
    store.delete_records("t", 0, 6).unwrap();
    let (got, _) = t.read_on(next, 1).unwrap();
    assert_eq!(
        got.first().map(|r| r.offset),
        Some(6),
        "read on from {next}"
    );
    let batches = tail.read_batches(1, 1).unwrap();
    assert_eq!(batches[0].base_offset(), 6, "batches read on from 1");
}

/// Sets the base offset (outside the CRC) of the second batch of segment file `first`
/// to `base`; returns that batch's position.
fn set_second_base_offset(first: &Path, base: i64) -> u64 {
    let mut bytes = std::fs::read(first).unwrap();
    // After the first batch: 12 + its length bytes.
    let first_len = i32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let second = 12 + first_len;
    bytes[second..second + 8].copy_from_slice(&base.to_be_bytes());
    std::fs::write(first, bytes).unwrap();
    second as u64
}

fn assert_corruption_at(read: streamlog::Result<Vec<Record>>, file: &Path, at: u64) {
    match read {
        Err(Error::Corruption { path, position, .. }) => {
            assert_eq!((path.as_path(), position), (file, at));
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
}

/// A batch whose base offset (outside the CRC) goes back below the batch before it, in
/// a segment the writer has moved past, is `Corruption`, not records skipped in
/// silence.
#[test]
fn a_base_offset_going_back_is_corruption() {
    let (tmp, first) = closed_store_of_several_segments();
    let second = set_second_base_offset(&first, 0);
    let reader = Store::open_read_only(tmp.path()).unwrap();
    assert_corruption_at(
        reader.partition("t", 0).unwrap().read(0, 1 << 20),
        &first,
        second,
    );
}

/// A base offset (outside the CRC) jumping forward, in a topic that was never
/// compacted, is `Corruption` too: the reader took any forward jump for compaction's
/// gap and served the batch's records under offsets they never had.
#[test]
fn a_base_offset_jumping_forward_is_corruption_where_there_are_no_gaps() {
    let (tmp, first) = closed_store_of_several_segments();
    let second = set_second_base_offset(&first, 5);
    let reader = Store::open_read_only(tmp.path()).unwrap();
    // One batch at a time: the damaged batch alone (the one after it, going back
    // below 6, would give the damage away later).
    assert_corruption_at(reader.partition("t", 0).unwrap().read(1, 1), &first, second);
    // A directory read on its own may be a compacted log's: gaps are allowed there.
    let mut tail = streamlog::log::TailReader::new(
        tmp.path().join("t-0"),
        streamlog::format::DecodeOptions::default(),
    );
    let batches = tail.read_batches(1, 1).unwrap();
    assert_eq!(batches[0].base_offset(), 5);
}

/// A follower taken while its topic was not compacted reads on after the topic is
/// altered to compaction and a pass leaves gaps: the first gap has it read the topic's
/// config again, instead of calling the gap damage.
#[test]
fn a_follower_reads_across_gaps_of_a_topic_compacted_since_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().segment_bytes(1024))
        .unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..60 {
        let key = if i % 10 == 0 {
            format!("u{i}")
        } else {
            format!("k{}", i % 3)
        };
        part.append(&[Record::new(T0, Some(key), Some(event(i)))])
            .unwrap();
    }
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let follower = reader.partition("t", 0).unwrap();
    store
        .alter_topic_config("t", |c| {
            c.cleanup_policy(CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.0)
        })
        .unwrap();
    assert!(store.run_maintenance().unwrap().records_removed > 0);
    let offsets = |read: &dyn Fn(i64) -> (Vec<Record>, i64)| {
        let (mut at, mut all) = (0, Vec::new());
        while at < part.log_end_offset() {
            let (records, next) = read(at);
            all.extend(records.iter().map(|r| r.offset));
            at = next;
        }
        all
    };
    let kept = offsets(&|at| {
        let records = part.read(at, 1 << 20).unwrap();
        let next = records.last().unwrap().offset + 1;
        (records, next)
    });
    assert!(kept.windows(2).any(|w| w[1] > w[0] + 1), "gaps: {kept:?}");
    assert_eq!(offsets(&|at| follower.read_on(at, 1 << 20).unwrap()), kept);
}

/// Batches written under a larger `max.message.bytes` than the topic has now are
/// read: the reader took the current limit as a bound on a sound batch, so it saw the
/// log end at the first larger batch and hid every record from there on (or called
/// later segments corrupt).
#[test]
fn batches_larger_than_a_lowered_max_message_bytes_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().segment_bytes(4096))
        .unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    let value = "v".repeat(300);
    for _ in 0..30 {
        part.append(&[Record::new(T0, Some("k"), Some(value.clone()))])
            .unwrap();
    }
    assert!(store.describe_topic("t").unwrap().partitions[0].segment_count > 1);
    store
        .alter_topic_config("t", |c| c.max_message_bytes(100))
        .unwrap();
    store.close().unwrap();
    drop(store);
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let t = reader.partition("t", 0).unwrap();
    assert_eq!(t.log_end_offset().unwrap(), 30);
    let mut read = Vec::new();
    while (read.len() as i64) < 30 {
        let got = t.read(read.len() as i64, 1 << 20).unwrap();
        assert!(!got.is_empty(), "stopped at {}", read.len());
        read.extend(got);
    }
    assert!(
        read.iter()
            .all(|r| r.value.as_deref() == Some(value.as_bytes()))
    );
}

/// A reset's dry run from a read-only store (the CLI's, which opened the store as its
/// writer before) plans what the writer plans, for every kind of target: timestamps
/// out of order across batches, a log start moved by `delete_records`, a partition
/// without a committed offset, one named twice.
#[test]
fn a_read_only_reset_plan_matches_the_writers() {
    use streamlog::OffsetSpec;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for ts in [100, 300, 200, 500, 400, 600] {
        part.append(&[streamlog::Record::new(ts, Some("k"), Some("v"))])
            .unwrap();
    }
    store.delete_records("t", 0, 1).unwrap();
    // A committed transaction: its marker carries the store clock's time (now).
    let p = store
        .producer(streamlog::ProducerConfig::default().transactional_id("tx"))
        .unwrap();
    p.init_transactions().unwrap();
    p.begin_transaction().unwrap();
    p.send(
        streamlog::ProducerRecord::new("t")
            .partition(0)
            .timestamp(700)
            .value("x"),
    )
    .unwrap()
    .wait()
    .unwrap();
    p.commit_transaction().unwrap();
    let mut c = store
        .consumer(ConsumerConfig::new("g").enable_auto_commit(false))
        .unwrap();
    let tp0 = TopicPartition::new("t", 0);
    let tp1 = TopicPartition::new("t", 1);
    c.assign(std::slice::from_ref(&tp0)).unwrap();
    c.commit_sync_offsets(&BTreeMap::from([(tp0.clone(), 3)]))
        .unwrap();
    let reader = Store::open_read_only(dir.path()).unwrap();
    let partitions = [tp0.clone(), tp1, tp0];
    for to in [
        OffsetSpec::Earliest,
        OffsetSpec::Latest,
        OffsetSpec::Offset(-5),
        OffsetSpec::Offset(4),
        OffsetSpec::Timestamp(0),
        OffsetSpec::Timestamp(250),
        OffsetSpec::Timestamp(450),
        OffsetSpec::Timestamp(601),
        OffsetSpec::Timestamp(701),
        OffsetSpec::Timestamp(i64::MAX),
        OffsetSpec::ShiftBy(-10),
    ] {
        let want = store.plan_group_offsets("g", &partitions, to);
        let got = reader.plan_group_offsets("g", &partitions, to);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{to:?}");
    }
    assert!(matches!(
        reader.plan_group_offsets("g", &[TopicPartition::new("t", 1)], OffsetSpec::ShiftBy(1)),
        Err(streamlog::Error::InvalidArgument { .. })
    ));
}

/// From the read-only review: while a compaction's swap file waited to be renamed over
/// the segment a reader had read to its end (the merged segments after it already
/// gone), a read from the offsets in it came back empty, as at the log end, and
/// `consume` took that for the end and moved past records that were there. The swap
/// file is whole and fsync'd before it gets its name: the read goes on in it, with no
/// wait for the rename (which a writer stopped mid-swap never does).
#[test]
fn a_read_into_a_pending_swap_never_ends_empty() {
    use streamlog::format::BatchBuilder;
    use streamlog::log::{Log, LogConfig};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    {
        let log = Log::open(&dir, LogConfig::default().allow_offset_gaps(true)).unwrap();
        for i in 0..15u8 {
            let mut b = BatchBuilder::new();
            b.push(T0, Some(&[i]), Some(b"v"), &[]).unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
            if i == 4 || i == 9 {
                log.roll().unwrap();
            }
        }
        log.close().unwrap();
    }
    // Mid-swap: the merged 0..9 in the swap file, the old segment 0 still in place,
    // segment 5 gone.
    let seg = |base: u64, ext: &str| dir.join(format!("{base:020}.{ext}"));
    let mut merged = std::fs::read(seg(0, "log")).unwrap();
    merged.extend(std::fs::read(seg(5, "log")).unwrap());
    std::fs::write(dir.join("00000000000000000000.log.swap"), merged).unwrap();
    for ext in ["log", "index", "timeindex"] {
        std::fs::remove_file(seg(5, ext)).unwrap();
    }
    let offsets = |batches: Vec<streamlog::format::Batch>| -> Vec<i64> {
        batches.iter().map(|b| b.base_offset()).collect()
    };
    let reader =
        || streamlog::log::TailReader::new(&dir, streamlog::format::DecodeOptions::default());
    let all: Vec<i64> = (0..15).collect();
    assert_eq!(offsets(reader().read_batches(0, 1 << 20).unwrap()), all);
    // One batch per read: a read stops at the old segment's end, the next goes on.
    let mut tail = reader();
    let mut read = Vec::new();
    while read.len() < all.len() {
        let next = read.last().map_or(0, |o| o + 1);
        let got = offsets(tail.read_batches(next, 1).unwrap());
        assert!(!got.is_empty(), "empty at {next} with records after it");
        read.extend(got);
    }
    assert_eq!(read, all);
    assert_eq!(reader().log_end_offset().unwrap(), 15);
    // Renamed into place: the same.
    std::fs::rename(dir.join("00000000000000000000.log.swap"), seg(0, "log")).unwrap();
    assert_eq!(offsets(reader().read_batches(0, 1 << 20).unwrap()), all);
}

/// A tail reader's log end after a truncation it followed: the end cursor's file was
/// replaced (the cut segment renamed over it) with no later segment, and the end was
/// carried over from before the cut, so it stayed at the old end (waits for offsets in
/// between returned at once) until the writer appended past it.
#[test]
fn a_tail_readers_log_end_follows_a_truncation_back() {
    use streamlog::format::BatchBuilder;
    use streamlog::log::{Log, LogConfig, TailReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    let append = |n: usize| {
        for _ in 0..n {
            let mut b = BatchBuilder::new();
            b.push(1, Some(b"k"), Some(b"v"), &[]).unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
    };
    append(10);
    let mut tail = TailReader::new(&dir, streamlog::format::DecodeOptions::default());
    assert_eq!(tail.log_end_offset().unwrap(), 10);
    log.truncate_to(5).unwrap();
    assert_eq!(tail.log_end_offset().unwrap(), 5);
    append(2);
    assert_eq!(tail.log_end_offset().unwrap(), 7);
    // A truncation the writer rolled past before the reader looked again.
    log.truncate_to(6).unwrap();
    log.roll().unwrap();
    assert_eq!(tail.log_end_offset().unwrap(), 6);
    log.close().unwrap();
}

/// A partition directory whose segments are gone while its log start checkpoint is
/// still there (a writer's deletion of the topic part-way, segments removed by hand):
/// its log start is past its end (0), and a reset plan of it panicked in `clamp`. The
/// plan stays at the log start now.
#[test]
fn a_reset_plan_of_a_partition_without_segments_does_not_panic() {
    use streamlog::OffsetSpec;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..6 {
        part.append(&[Record::new(T0, Some("k"), Some(event(i)))])
            .unwrap();
    }
    store.delete_records("t", 0, 4).unwrap();
    drop(part);
    store.close().unwrap();
    let dir = tmp.path().join("t-0");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let reader = Store::open_read_only(tmp.path()).unwrap();
    let tp = TopicPartition::new("t", 0);
    for to in [
        OffsetSpec::Earliest,
        OffsetSpec::Latest,
        OffsetSpec::Offset(2),
        OffsetSpec::Offset(9),
    ] {
        match reader.plan_group_offsets("g", std::slice::from_ref(&tp), to) {
            Ok(plan) => assert_eq!(plan[0].new, 4, "{to:?}"),
            Err(e) => panic!("{to:?}: {e}"),
        }
    }
}
