//! `verify_store` (issue 18, item 2's `verify`): a whole store checked without being
//! opened or changed; damage and missing partitions are named, not errors.

use streamlog::{Record, Store, TopicConfig};

fn store_with_data(dir: &std::path::Path) {
    let store = Store::open(dir).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let topic = store.topic("t").unwrap();
    for p in 0..2 {
        for i in 0..5 {
            topic
                .partition(p)
                .unwrap()
                .append(&[Record::new(i, Some("k"), Some(format!("v{i}")))])
                .unwrap();
        }
    }
    drop(topic);
    store.close().unwrap();
}

fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push((e.clone(), std::fs::read(&e).unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_sound_store_passes_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path());
    let before = files(dir.path());
    let check = streamlog::verify_store(dir.path()).unwrap();
    assert!(check.is_ok(), "{:?}", check.problems);
    let batches: u64 = check.partitions.iter().map(|(_, c)| c.batches).sum();
    assert_eq!(batches, 10);
    assert_eq!(files(dir.path()), before, "verify changed the store");
}

/// A store in use: the active segment's index files are preallocated with zeros past
/// their entries until the segment rolls or the store closes. Verify took those zeros
/// for entries out of order ("an untrimmed file?") and called every written partition
/// of a running store damaged.
#[test]
fn a_running_store_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..100 {
        let value = format!("{i:0>100}");
        part.append(&[Record::new(1_700_000_000_000 + i, Some("k"), Some(value))])
            .unwrap();
    }
    part.flush().unwrap();
    let check = streamlog::verify_store(dir.path()).unwrap();
    assert!(check.is_ok(), "{:?} {:?}", check.problems, check.partitions);
    let entries: u64 = check
        .partitions
        .iter()
        .map(|(_, c)| c.index_entries_checked)
        .sum();
    assert!(
        entries > 0,
        "the index holds entries: {:?}",
        check.partitions
    );
    drop(part);
    store.close().unwrap();
    // Closed, the index files are trimmed: zeros past the entries are damage again.
    let index = dir.path().join("t-0").join("00000000000000000000.index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&index, bytes).unwrap();
    let check = streamlog::verify_store(dir.path()).unwrap();
    assert!(!check.is_ok(), "{:?}", check.partitions);
}

#[test]
fn damage_and_missing_partitions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path());
    let segment = dir.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[70] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    std::fs::rename(dir.path().join("t-1"), dir.path().join("elsewhere")).unwrap();
    let check = streamlog::verify_store(dir.path()).unwrap();
    assert!(!check.is_ok());
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("t-0") && p.contains(".log")),
        "{:?}",
        check.problems
    );
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("t-1") && p.contains("missing")),
        "{:?}",
        check.problems
    );
    assert!(matches!(
        streamlog::verify_store(dir.path().join("elsewhere")),
        Err(streamlog::Error::NotFound { .. })
    ));
}

/// `verify_store_with_progress` reports each partition as it is checked, with what its
/// check found: the same as the final report.
#[test]
fn progress_reports_each_partition_once() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_data(tmp.path());
    let mut seen = Vec::new();
    let check = streamlog::verify_store_with_progress(tmp.path(), &mut |tp, c| {
        seen.push((tp.clone(), c.bytes));
    })
    .unwrap();
    assert!(check.is_ok(), "{:?}", check.problems);
    let expected: Vec<_> = check
        .partitions
        .iter()
        .map(|(tp, c)| (tp.clone(), c.bytes))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(seen, expected);
}

/// Segments of `t-0` (sorted `.log` paths) of a store with three segments in `t-0` and
/// one partition `t-1`, closed.
fn store_with_segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let store = Store::open(dir).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::default().partitions(2).segment_bytes(1024),
        )
        .unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..30 {
        p.append(&[Record::new(i, Some("k"), Some(format!("v{i:02}")))])
            .unwrap();
    }
    drop(p);
    store.close().unwrap();
    let mut logs: Vec<_> = walk(&dir.join("t-0"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 3, "{logs:?}");
    logs
}

/// The segment files of the `.log` at `log`.
fn remove_segment(log: &std::path::Path) {
    for ext in ["log", "index", "timeindex"] {
        std::fs::remove_file(log.with_extension(ext)).unwrap();
    }
}

/// From a review: `verify` read every batch but not what the store recorded as synced,
/// so a store whose open refuses it (segments holding flushed data gone, or a
/// partition directory past the topic's count) passed. Each damage: the open refuses the
/// store and `verify` names the problem.
#[test]
fn what_the_open_refuses_verify_reports() {
    type Damage = fn(&std::path::Path, &[std::path::PathBuf]);
    let damages: [(&str, Damage); 4] = [
        ("the oldest segment removed", |_, logs| {
            remove_segment(&logs[0])
        }),
        ("the newest segment removed", |_, logs| {
            remove_segment(logs.last().unwrap())
        }),
        ("the last batch cut off at a batch boundary", |_, logs| {
            let last = logs.last().unwrap();
            let bytes = std::fs::read(last).unwrap();
            let (mut pos, mut boundary) = (0, 0);
            while pos + 12 <= bytes.len() {
                boundary = pos;
                let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
                pos += 12 + len as usize;
            }
            assert!(boundary > 0);
            std::fs::write(last, &bytes[..boundary]).unwrap();
        }),
        ("a copy of partition 0 as partition 5", |dir, _| {
            let to = dir.join("t-5");
            std::fs::create_dir(&to).unwrap();
            for f in walk(&dir.join("t-0")) {
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let logs = store_with_segments(dir.path());
        let check = streamlog::verify_store(dir.path()).unwrap();
        assert!(check.is_ok(), "{what}: before: {:?}", check.problems);
        damage(dir.path(), &logs);
        let check = streamlog::verify_store(dir.path()).unwrap();
        assert!(
            !check.problems.is_empty(),
            "{what}: verify found nothing wrong"
        );
        let refused = Store::open(dir.path()).err();
        assert!(
            refused.is_some(),
            "{what}: the open took the store (verify: {:?})",
            check.problems
        );
    }
}

/// A damaged record of the producer ids the store handed out makes the open fail
/// (`Corruption`), but `verify_store` passed the store. It names the file now.
#[test]
fn a_damaged_producer_id_record_is_named() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path());
    std::fs::write(dir.path().join(".producer-ids"), b"not a block end\n").unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(streamlog::Error::Corruption { .. })
    ));
    let check = streamlog::verify_store(dir.path()).unwrap();
    assert!(
        check.problems.iter().any(|p| p.contains(".producer-ids")),
        "{:?}",
        check.problems
    );
}
