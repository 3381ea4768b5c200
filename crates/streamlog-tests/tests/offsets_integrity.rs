//! Committed offsets are exact: they belong to one topic incarnation (a recreated topic
//! is read from its start by every group) and never point past the records they
//! describe (a commit past records a crash removed is lowered to where they end).
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{crash_modes, log_end, sim_store};
use streamlog::consumer::TopicPartition;
use streamlog::fs::{CrashImage, Fault, SimFs};
use streamlog::{ConsumerConfig, Error, OffsetReset, Record, Store, TopicConfig};

fn rec(v: String) -> Record {
    Record::new(1_700_000_000_000, Some("k"), Some(v))
}

fn t0() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn commit(store: &Store, group: &str, offset: i64) -> streamlog::Result<()> {
    let mut c = store.consumer(ConsumerConfig::new(group).enable_auto_commit(false))?;
    c.commit_sync_offsets(&BTreeMap::from([(t0(), offset)]))
}

/// Every value of `t-0` from its start.
fn values(store: &Store) -> Vec<String> {
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let mut out = Vec::new();
    let mut at = p.log_start_offset();
    while at < p.log_end_offset() {
        let recs = p.read(at, 1 << 16).unwrap();
        at = recs.last().unwrap().offset + 1;
        out.extend(
            recs.into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    out
}

/// What group `g` reads of `t-0`, from where it resumes to the log end.
fn resume(store: &Store, group: &str) -> Vec<String> {
    let mut c = store
        .consumer(
            ConsumerConfig::new(group)
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    c.assign(&[t0()]).unwrap();
    let end = log_end(store, "t", 0);
    let mut out = Vec::new();
    while c.position(&t0()).unwrap() < end {
        for r in &c.poll(Duration::from_millis(10)).unwrap() {
            out.push(String::from_utf8(r.value().unwrap().to_vec()).unwrap());
        }
    }
    out
}

fn setup(fs: &SimFs) {
    let store = sim_store(fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    for i in 0..20 {
        p.append(&[rec(format!("old-{i}"))]).unwrap();
    }
    p.flush().unwrap();
    commit(&store, "g", 10).unwrap();
    store.close().unwrap();
}

fn delete_and_create(fs: &SimFs) -> streamlog::Result<()> {
    let store = sim_store(fs)?;
    store.delete_topic("t")?;
    store.create_topic("t", TopicConfig::default())?;
    let p = store.topic("t")?.partition(0)?;
    for i in 0..20 {
        p.append(&[rec(format!("new-{i}"))])?;
    }
    p.flush()?;
    store.close()
}

/// A power cut at every step of `delete_topic` + `create_topic` (each unsynced change
/// kept, dropped or chosen at random): after reopening, the topic is either the old one,
/// where group `g` resumes at its commit, or a new one, which `g` reads from its start.
/// (Before topic ids, a cut right after the metadata went left `g`'s offset 10 in place,
/// and `g` never saw new-0..new-9.)
#[test]
fn a_recreated_topic_is_read_from_its_start_after_a_crash_anywhere_in_delete_and_create() {
    let clean = SimFs::new();
    setup(&clean);
    let first = clean.mutating_op_count();
    delete_and_create(&clean).unwrap();
    let last = clean.mutating_op_count();
    let mut checked = 0;
    let mut dropped = 0;
    for k in first..=last {
        let fs = SimFs::new();
        setup(&fs);
        fs.crash_after(k);
        let _ = delete_and_create(&fs);
        for mode in crash_modes(k) {
            let img = fs.crash_image(mode);
            let mut store = sim_store(&img).unwrap_or_else(|e| panic!("crash after {k}: {e}"));
            if store.recovery_report().offsets_dropped > 0 {
                // Dropped once, with tombstones: the next open finds nothing to drop.
                dropped += 1;
                store.close().unwrap();
                store = sim_store(&img).unwrap();
                assert_eq!(
                    store.recovery_report().offsets_dropped,
                    0,
                    "crash after {k}"
                );
            }
            if store.topic("t").is_err() {
                store.create_topic("t", TopicConfig::default()).unwrap();
            }
            let p = store.topic("t").unwrap().partition(0).unwrap();
            p.append(&[rec("after".into())]).unwrap();
            let all = values(&store);
            let got = resume(&store, "g");
            if all[0] == "old-0" {
                assert_eq!(
                    got,
                    all[10..].to_vec(),
                    "crash after {k}, {mode:?}: old topic"
                );
            } else {
                assert_eq!(
                    got, all,
                    "crash after {k}, {mode:?}: a new topic from its start"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 * 20, "{checked} images");
    assert!(
        dropped > 0,
        "some crash left offsets of the deleted topic to drop"
    );
    println!(
        "{} crash points x 3 images: every group exact",
        last - first + 1
    );
}

/// A failure to forget the deleted topic's offsets is reported, never swallowed: at
/// every operation of `delete_topic` an I/O error is injected once; whenever the call
/// returns Ok, the group's offsets are gone. Whatever it returned, a topic created
/// again (after a reopen) is read by the group from its start.
#[test]
fn delete_topic_reports_a_failure_to_forget_offsets() {
    let probe = SimFs::new();
    setup(&probe);
    let store = sim_store(&probe).unwrap();
    let before = probe.op_count();
    store.delete_topic("t").unwrap();
    let ops = probe.op_count() - before;
    drop(store);
    let mut failures = 0;
    for k in 1..=ops {
        let fs = SimFs::new();
        setup(&fs);
        let store = sim_store(&fs).unwrap();
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let result = store.delete_topic("t");
        let listed = store.list_groups().contains(&"g".to_string());
        match &result {
            Ok(()) => assert!(
                !listed,
                "op {k}: Ok, but the offsets of `t` were not forgotten"
            ),
            Err(_) => failures += 1,
        }
        // Created again at once, in the same store: a new topic, read from its start
        // even where the old offsets could not be forgotten.
        fs.clear_faults();
        if store.topic("t").is_err() && store.create_topic("t", TopicConfig::default()).is_ok() {
            let p = store.topic("t").unwrap().partition(0).unwrap();
            let new: Vec<String> = (0..20).map(|i| format!("new-{i}")).collect();
            for v in &new {
                p.append(&[rec(v.clone())]).unwrap();
            }
            assert_eq!(resume(&store, "g"), new, "op {k}, same store");
            // (Fails to forget the offsets where the offsets log is poisoned.)
            let _ = store.delete_topic("t");
        }
        drop(store);
        let store = sim_store(&fs).unwrap();
        if store.topic("t").is_err() {
            store.create_topic("t", TopicConfig::default()).unwrap();
            let p = store.topic("t").unwrap().partition(0).unwrap();
            p.append(&[rec("new-0".into())]).unwrap();
            assert_eq!(resume(&store, "g"), vec!["new-0".to_string()], "op {k}");
        }
    }
    assert!(failures > 0, "some injected error must surface");
}

/// A commit for a topic that was deleted (and perhaps created again) since the
/// consumer read it is refused with `NotFound`; it never lands on the new topic.
#[test]
fn commits_to_a_deleted_topic_are_refused() {
    let fs = SimFs::new();
    setup(&fs);
    let store = sim_store(&fs).unwrap();
    let mut c = store
        .consumer(ConsumerConfig::new("g").enable_auto_commit(false))
        .unwrap();
    c.assign(&[t0()]).unwrap();
    assert_eq!(c.position(&t0()).unwrap(), 10);
    store.delete_topic("t").unwrap();
    let err = c
        .commit_sync_offsets(&BTreeMap::from([(t0(), 15)]))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    store.create_topic("t", TopicConfig::default()).unwrap();
    let err = c
        .commit_sync_offsets(&BTreeMap::from([(t0(), 15)]))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "new topic: {err}");
    assert_eq!(c.committed(&[t0()]).unwrap()[&t0()], None);
    let p = store.topic("t").unwrap().partition(0).unwrap();
    p.append(&[rec("new-0".into())]).unwrap();
    assert_eq!(resume(&store, "g"), vec!["new-0".to_string()]);
}

/// `Acks::Leader`-style data (appended, not synced) and a synced commit past it: a
/// power cut loses the records, and the commit is lowered to where they end, so the
/// group reads every new record; the recovery report says so.
#[test]
fn a_commit_past_records_lost_in_a_power_cut_is_lowered_to_where_they_end() {
    let fs = SimFs::new();
    let img = {
        let store = sim_store(&fs).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        let p = store.topic("t").unwrap().partition(0).unwrap();
        for i in 0..20 {
            p.append(&[rec(format!("old-{i}"))]).unwrap();
        }
        commit(&store, "g", 10).unwrap();
        commit(&store, "early", 0).unwrap();
        fs.crash_image(CrashImage::DropAll)
    };
    let store = sim_store(&img).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let end = p.log_end_offset();
    assert!(end < 10, "the unsynced records are gone (end {end})");
    let report = store.recovery_report();
    assert_eq!(report.offsets_reset.len(), 1, "{report:?}");
    let reset = &report.offsets_reset[0];
    assert_eq!(
        (reset.group.as_str(), &reset.partition, reset.from, reset.to),
        ("g", &t0(), 10, end)
    );
    for i in 0..20 {
        p.append(&[rec(format!("new-{i}"))]).unwrap();
    }
    let all = values(&store);
    assert_eq!(resume(&store, "g"), all[end as usize..].to_vec());
    assert_eq!(resume(&store, "early"), all);
    // Checked again at the next open, the lowered commit stays where it was put.
    store.close().unwrap();
    let store = sim_store(&img).unwrap();
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    assert_eq!(c.committed(&[t0()]).unwrap()[&t0()], Some(end));
    assert!(store.recovery_report().offsets_reset.is_empty());
}

/// With the records synced, the same power cut changes nothing: no reset.
#[test]
fn a_commit_within_synced_records_survives_a_power_cut_unchanged() {
    let fs = SimFs::new();
    setup(&fs);
    let img = {
        let store = sim_store(&fs).unwrap();
        let p = store.topic("t").unwrap().partition(0).unwrap();
        p.append(&[rec("unsynced".into())]).unwrap();
        fs.crash_image(CrashImage::DropAll)
    };
    let store = sim_store(&img).unwrap();
    assert!(store.recovery_report().offsets_reset.is_empty());
    let c = store.consumer(ConsumerConfig::new("g")).unwrap();
    assert_eq!(c.committed(&[t0()]).unwrap()[&t0()], Some(10));
}

/// A store written before topic ids: its topic metadata has no `topic.id`, its
/// partition directories no `partition.metadata`, its commits no id header.
fn legacy_store(fs: &SimFs) {
    setup(fs);
    let store_dir = std::path::Path::new("/store");
    let meta = store_dir.join(".topics/t");
    let text = String::from_utf8(fs.read_file(&meta).unwrap()).unwrap();
    let legacy: String = text
        .lines()
        .filter(|l| !l.starts_with("topic.id="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs.write_file(&meta, legacy.into_bytes());
    streamlog::fs::FileSystem::remove_file(fs, &store_dir.join("t-0/partition.metadata")).unwrap();
    // Kafka's OffsetCommitKey v1 / OffsetCommitValue v3, no headers: group `old`, 7.
    let log = streamlog::log::Log::open_with_fs(
        std::sync::Arc::new(fs.clone()) as std::sync::Arc<dyn streamlog::fs::FileSystem>,
        store_dir.join("__consumer_offsets-0"),
        Default::default(),
    )
    .unwrap();
    let string = |s: &str| [&(s.len() as i16).to_be_bytes()[..], s.as_bytes()].concat();
    let key = [
        &1i16.to_be_bytes()[..],
        &string("old"),
        &string("t"),
        &0i32.to_be_bytes(),
    ]
    .concat();
    let value = [
        &3i16.to_be_bytes()[..],
        &7i64.to_be_bytes(),
        &(-1i32).to_be_bytes(),
        &string(""),
        &0i64.to_be_bytes(),
    ]
    .concat();
    let mut b = streamlog::BatchBuilder::new();
    b.push(0, Some(&key), Some(&value), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.close().unwrap();
}

/// The first open of a store written before topic ids gives its topics ids and writes
/// their old commits again with them; a crash at any point of that open loses no
/// commit (the topic stays marked as adopting until its commits carry the id).
#[test]
fn commits_from_before_topic_ids_survive_a_crash_during_the_upgrade() {
    let clean = SimFs::new();
    legacy_store(&clean);
    let first = clean.mutating_op_count();
    sim_store(&clean).unwrap().close().unwrap();
    let last = clean.mutating_op_count();
    for k in first..=last {
        let fs = SimFs::new();
        legacy_store(&fs);
        fs.crash_after(k);
        let _ = sim_store(&fs).map(|s| s.close());
        for mode in crash_modes(k) {
            let img = fs.crash_image(mode);
            let store = sim_store(&img).unwrap_or_else(|e| panic!("crash after {k}: {e}"));
            let c = store.consumer(ConsumerConfig::new("old")).unwrap();
            assert_eq!(
                c.committed(&[t0()]).unwrap()[&t0()],
                Some(7),
                "crash after {k}, {mode:?}"
            );
        }
    }
}

/// From a consumer hunt: as Kafka's `assign` commits the old assignment first, a
/// consumer with auto-commit commits the positions of the partitions a new `assign`
/// drops (their next reader went back to the last commit, re-reading what this one
/// had consumed). A partition kept keeps its position, for a later commit.
#[test]
fn assign_commits_the_positions_of_the_partitions_it_drops() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let t1 = TopicPartition::new("t", 1);
    for tp in [t0(), t1.clone()] {
        let p = store.topic("t").unwrap().partition(tp.partition()).unwrap();
        for i in 0..3 {
            p.append(&[rec(format!("v{i}"))]).unwrap();
        }
    }
    let mut c = store
        .consumer(
            ConsumerConfig::new("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .auto_commit_interval_ms(3_600_000),
        )
        .unwrap();
    c.assign(&[t0(), t1.clone()]).unwrap();
    while c.position(&t0()).unwrap() < 3 || c.position(&t1).unwrap() < 3 {
        c.poll(Duration::from_millis(10)).unwrap();
    }
    let committed = |c: &streamlog::Consumer| c.committed(&[t0(), t1.clone()]).unwrap();
    assert_eq!(committed(&c)[&t0()], None, "no commit due by poll");
    c.assign(std::slice::from_ref(&t1)).unwrap();
    assert_eq!(committed(&c)[&t0()], Some(3), "dropped: committed");
    assert_eq!(committed(&c)[&t1], None, "kept: not yet");
    assert_eq!(c.position(&t1).unwrap(), 3);
    // A commit that fails (ENOSPC) is logged: the assignment changes all the same.
    c.assign(&[t0(), t1.clone()]).unwrap();
    fs.inject(Fault::Enospc, fs.op_count() + 1, true);
    c.assign(&[t0()]).unwrap();
    fs.clear_faults();
    assert_eq!(c.assignment(), vec![t0()]);
    assert_eq!(committed(&c)[&t1], None, "the commit failed");
}
