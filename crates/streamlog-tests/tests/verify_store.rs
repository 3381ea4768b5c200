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
