//! The store deletes only what it created, refuses metadata that disagrees with its
//! directories, and lets one writer in per directory, enforced by the OS.
mod common;

use std::fs;
use std::path::Path;

use streamlog::{Error, Record, Store, TopicConfig};

fn rec(v: &str) -> Record {
    Record::new(1_700_000_000_000, Some("k"), Some(v.to_string()))
}

/// Every file below `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// A Kafka partition directory (as Kafka's broker leaves it) and a user's
/// `clicks-backup-0` in the store directory: open leaves both byte-for-byte alone and
/// lists them; creating `clicks` refuses rather than reusing the Kafka directory.
#[test]
fn kafka_and_user_directories_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka = tmp.path().join("clicks-0");
    let backup = tmp.path().join("clicks-backup-0");
    for d in [&kafka, &backup] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("00000000000000000000.log"), b"kafka bytes").unwrap();
        fs::write(d.join("00000000000000000000.index"), b"").unwrap();
        fs::write(d.join("00000000000000000000.timeindex"), b"").unwrap();
    }
    fs::write(kafka.join("leader-epoch-checkpoint"), b"0\n1\n0 0\n").unwrap();
    let before = (snapshot(&kafka), snapshot(&backup));
    let store = Store::open(tmp.path()).unwrap();
    let mut left = store.recovery_report().directories_left_alone;
    left.sort();
    assert_eq!(left, vec![kafka.clone(), backup.clone()]);
    let err = store
        .create_topic("clicks", TopicConfig::default())
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    store
        .create_topic("clicks-backup", TopicConfig::default())
        .unwrap_err();
    store.close().unwrap();
    drop(store);
    let store = Store::open(tmp.path()).unwrap();
    store.close().unwrap();
    assert_eq!((snapshot(&kafka), snapshot(&backup)), before);
}

fn store_with_four_partitions(dir: &Path) {
    let store = Store::open(dir).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(4))
        .unwrap();
    for p in 0..4 {
        let part = store.topic("t").unwrap().partition(p).unwrap();
        for i in 0..10 {
            part.append(&[rec(&format!("{p}-{i}"))]).unwrap();
        }
    }
    store.close().unwrap();
}

/// A hand-edited `partitions=` line that hides partitions is an error at open that
/// names the directory; nothing is deleted.
#[test]
fn partitions_beyond_the_metadata_count_are_an_error_not_a_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_four_partitions(tmp.path());
    let meta = tmp.path().join(".topics").join("t");
    let text = fs::read_to_string(&meta).unwrap();
    fs::write(&meta, text.replace("partitions=4", "partitions=2")).unwrap();
    let before = snapshot(&tmp.path().join("t-3"));
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert!(err.to_string().contains("t-"), "{err}");
    assert_eq!(snapshot(&tmp.path().join("t-3")), before);
    fs::write(&meta, text).unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let p3 = store.topic("t").unwrap().partition(3).unwrap();
    assert_eq!(p3.log_end_offset(), 10, "every record is still there");
}

/// A partition directory missing at open is an error, not a silently empty partition
/// (whose offsets the group's commits would then point into).
#[test]
fn a_missing_partition_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    store_with_four_partitions(tmp.path());
    fs::rename(tmp.path().join("t-1"), tmp.path().join("elsewhere")).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert!(!tmp.path().join("t-1").exists(), "nothing was created");
    fs::rename(tmp.path().join("elsewhere"), tmp.path().join("t-1")).unwrap();
    Store::open(tmp.path()).unwrap().close().unwrap();
}

/// A partition directory that names another topic id is an error.
#[test]
fn a_partition_directory_of_another_topic_is_an_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    store_with_four_partitions(a.path());
    store_with_four_partitions(b.path());
    fs::remove_dir_all(a.path().join("t-2")).unwrap();
    fs::rename(b.path().join("t-2"), a.path().join("t-2")).unwrap();
    let err = Store::open(a.path()).unwrap_err();
    assert!(err.to_string().contains("topic id"), "{err}");
}

/// The lock is on the store directory itself, held by the OS: a user deleting every
/// file they can see does not let a second writer in, and the refusal names the
/// process holding it.
#[test]
fn a_second_writer_is_refused_whatever_files_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let _ = fs::remove_file(tmp.path().join(".lock"));
    let err = Store::open(tmp.path()).unwrap_err();
    match &err {
        Error::Locked { path, holder } => {
            assert_eq!(path, tmp.path());
            if cfg!(unix) {
                assert_eq!(*holder, Some(std::process::id()), "{err}");
            }
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(!err.to_string().contains("remove"), "{err}");
    // A `Log` of one of its partitions is refused too.
    let log = streamlog::log::Log::open(tmp.path().join("t-0"), Default::default());
    assert!(log.is_err());
    store.close().unwrap();
    Store::open(tmp.path()).unwrap().close().unwrap();
}

/// A store is never opened inside another one (its `.topics`, a partition directory,
/// or deeper, also through a symbolic link), and an empty path is refused without
/// creating anything.
#[test]
fn nested_and_empty_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    store.close().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(tmp.path().join("t-0"), &link).unwrap();
    let mut nested = vec![
        tmp.path().join(".topics"),
        tmp.path().join("t-0"),
        tmp.path().join("t-0").join("x"),
        tmp.path().join("t-0").join("x").join("y"),
        tmp.path().join("user-dir").join("x"),
    ];
    if cfg!(unix) {
        nested.push(link.join("x"));
    }
    for inner in nested {
        let before = snapshot(tmp.path());
        let err = Store::open(&inner).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert_eq!(snapshot(tmp.path()), before, "{}", inner.display());
    }
    let cwd = std::env::current_dir().unwrap();
    let listed = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listed(&cwd);
    let err = Store::open("").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(listed(&cwd), before);
}

/// Two partition directories as Kafka leaves them (`partition.metadata` naming Kafka's
/// topic id; no streamlog files), copied into `dir`. Returns Kafka's topic id text.
fn kafka_topic_dirs(dir: &Path, records: usize) -> String {
    kafka_topic_dirs_of(dir, records, None)
}

/// [`kafka_topic_dirs`], each batch from Kafka producer `producer` (epoch 0, its
/// sequences from 0 in each partition) if given.
fn kafka_topic_dirs_of(dir: &Path, records: usize, producer: Option<i64>) -> String {
    let kafka_id = "AAAAAAAAAAAAAAAAAAAAAQ";
    for p in 0..2 {
        let pdir = dir.join(format!("clicks-{p}"));
        let log = streamlog::log::Log::open(&pdir, Default::default()).unwrap();
        for i in 0..records {
            let mut b = streamlog::BatchBuilder::new();
            if let Some(id) = producer {
                b = b.producer(id, 0, i as i32);
            }
            b.push(
                1_700_000_000_000,
                Some(b"k"),
                Some(format!("{p}-{i}").as_bytes()),
                &[],
            )
            .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.close().unwrap();
        for f in fs::read_dir(&pdir).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().into_string().unwrap();
            let kafkas = name.ends_with(".log")
                || name.ends_with(".index")
                || name.ends_with(".timeindex")
                || name == "leader-epoch-checkpoint";
            if !kafkas {
                fs::remove_file(f.path()).unwrap();
            }
        }
        fs::write(
            pdir.join("partition.metadata"),
            format!("version: 0\ntopic_id: {kafka_id}\n"),
        )
        .unwrap();
    }
    kafka_id.to_string()
}

/// Kafka partition directories are adopted only by an explicit import, which checks
/// every batch and index entry, keeps Kafka's topic id, and reports what it found; the
/// imported topic is a topic like any other from then on.
#[test]
fn kafka_directories_are_imported_explicitly_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka_id = kafka_topic_dirs(tmp.path(), 300);
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(store.recovery_report().directories_left_alone.len(), 2);
    assert!(store.topic("clicks").is_err(), "never adopted by open");
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.topic_id.to_string(), kafka_id);
    assert_eq!(report.partitions.len(), 2);
    for (_, check) in &report.partitions {
        assert_eq!((check.log_start_offset, check.log_end_offset), (0, 300));
        assert_eq!(check.batches, 300);
        assert!(check.index_entries_checked > 0, "{check:?}");
        assert!(check.index_problems.is_empty(), "{check:?}");
    }
    let part = store.topic("clicks").unwrap().partition(1).unwrap();
    assert_eq!(
        part.read(299, 1 << 10).unwrap()[0].value.as_deref(),
        Some(&b"1-299"[..])
    );
    part.append(&[rec("after")]).unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open(tmp.path()).unwrap();
    assert!(store.recovery_report().directories_left_alone.is_empty());
    let part = store.topic("clicks").unwrap().partition(1).unwrap();
    assert_eq!(part.log_end_offset(), 301);
}

/// Kafka hands out producer ids from 0 (this store did too, once): imported partitions
/// remember Kafka's producer 0, and the store's first producer must not be taken for
/// it (its record answered as a duplicate of Kafka's and dropped, or refused as out of
/// order). The store's ids stay past every imported one, durably.
#[test]
fn imported_producer_ids_are_never_handed_out_again() {
    use streamlog::{ProducerConfig, ProducerRecord};
    let tmp = tempfile::tempdir().unwrap();
    kafka_topic_dirs_of(tmp.path(), 1, Some(0));
    let mut store = Store::open(tmp.path()).unwrap();
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.partitions[0].1.max_producer_id, Some(0));
    for round in 0..2 {
        let producer = store
            .producer(ProducerConfig::default().linger_ms(0))
            .unwrap();
        let value = format!("store-{round}");
        let meta = producer
            .send(
                ProducerRecord::new("clicks")
                    .partition(0)
                    .value(value.clone()),
            )
            .unwrap()
            .wait()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(meta.offset, 1 + round, "appended after Kafka's record");
        let part = store.topic("clicks").unwrap().partition(0).unwrap();
        let got = part.read(meta.offset, 1 << 10).unwrap();
        assert_eq!(got[0].value.as_deref(), Some(value.as_bytes()));
        drop(producer);
        store.close().unwrap();
        drop(store);
        store = Store::open(tmp.path()).unwrap();
    }
}

/// From a review: the import moved the ids handed out from then on past Kafka's, but
/// a producer made before the import kept the id it had, numbered from 0 as Kafka's
/// are. Its first record to the imported topic had the shape of Kafka's producer 0's
/// (epoch 0, sequence 0): it was answered as a duplicate with Kafka's offset, and not
/// written. The store's ids start at 2^48, where Kafka's never reach.
#[test]
fn a_producer_made_before_an_import_is_not_taken_for_kafkas() {
    use streamlog::{ProducerConfig, ProducerRecord};
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("other", TopicConfig::default()).unwrap();
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    producer
        .send(ProducerRecord::new("other").value("first"))
        .unwrap()
        .wait()
        .unwrap();
    // Kafka's directories, made elsewhere (a Log cannot open inside a running store)
    // and moved in.
    let kafka = tempfile::tempdir().unwrap();
    kafka_topic_dirs_of(kafka.path(), 1, Some(0));
    for p in 0..2 {
        let name = format!("clicks-{p}");
        fs::rename(kafka.path().join(&name), tmp.path().join(&name)).unwrap();
    }
    store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    let meta = producer
        .send(ProducerRecord::new("clicks").partition(0).value("mine"))
        .unwrap()
        .wait()
        .unwrap();
    let part = store.topic("clicks").unwrap().partition(0).unwrap();
    let got = part.read(meta.offset, 1 << 10).unwrap();
    assert_eq!(meta.offset, 1, "after Kafka's record");
    assert_eq!(got[0].value.as_deref(), Some(&b"mine"[..]));
    drop(producer);
    store.close().unwrap();
}

/// A producer whose batches retention already removed is still remembered by the
/// producer snapshot Kafka keeps: its id is reported, and skipped, too.
#[test]
fn a_producer_only_a_snapshot_remembers_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    kafka_topic_dirs(tmp.path(), 2);
    let pdir = tmp.path().join("clicks-0");
    let log = streamlog::log::Log::open(&pdir, Default::default()).unwrap();
    let mut b = streamlog::BatchBuilder::new().producer(7_000, 0, 0);
    b.push(1_700_000_000_000, None, Some(b"gone"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.roll().unwrap();
    let mut b = streamlog::BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"kept"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.advance_log_start(3).unwrap();
    let policy = streamlog::log::RetentionPolicy::log_start_only(1_700_000_000_000);
    assert_eq!(log.enforce_retention(&policy).unwrap().segments_deleted, 1);
    log.close().unwrap();
    for f in fs::read_dir(&pdir).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".log") || name == "00000000000000000003.log",
            "{name}: the segment with producer 7000 is gone"
        );
    }
    let store = Store::open(tmp.path()).unwrap();
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.partitions[0].1.max_producer_id, Some(7_000));
    assert_eq!(report.partitions[1].1.max_producer_id, None);
}

/// Opening a partition removes what a crash left of the log's own work (temporary,
/// cleaned and deleted segment files, orphan indexes), and nothing else: a user's
/// `notes.tmp` or `old.deleted` in the directory (or in a Kafka directory being
/// imported) stays, byte for byte.
#[test]
fn open_removes_only_its_own_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    let log = streamlog::log::Log::open(&dir, Default::default()).unwrap();
    let mut b = streamlog::BatchBuilder::new();
    b.push(1, None, Some(b"v"), &[]).unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.close().unwrap();
    let users = ["notes.tmp", "old.deleted", "draft.cleaned"];
    for name in users {
        fs::write(dir.join(name), name).unwrap();
    }
    let ours = [
        "00000000000000000000.log.cleaned",
        "00000000000000000007.index",
        "recovery-point-offset-checkpoint.tmp",
        "partition.metadata.tmp",
    ];
    for name in ours {
        fs::write(dir.join(name), b"left by a crash").unwrap();
    }
    let log = streamlog::log::Log::open(&dir, Default::default()).unwrap();
    log.close().unwrap();
    for name in users {
        assert_eq!(fs::read(dir.join(name)).unwrap(), name.as_bytes(), "{name}");
    }
    for name in ours {
        assert!(
            !dir.join(name).exists(),
            "{name} is a leftover of the log's"
        );
    }
}

/// A damaged batch in a directory to import is refused with its file and position;
/// nothing is adopted or changed.
#[test]
fn a_damaged_kafka_directory_is_refused_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    kafka_topic_dirs(tmp.path(), 50);
    let seg = tmp.path().join("clicks-1").join("00000000000000000000.log");
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    fs::write(&seg, bytes).unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let before = snapshot(tmp.path());
    let err = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap_err();
    match &err {
        Error::Corruption { path, .. } => assert_eq!(path, &seg),
        other => panic!("expected Corruption, got {other}"),
    }
    assert!(store.topic("clicks").is_err());
    assert_eq!(snapshot(tmp.path()), before);
}

/// An import takes all of a topic's partitions or none: `clicks-0` and `clicks-2`
/// (a broker holding some partitions) are refused, changing nothing. A directory that
/// names no topic id (an import that failed part-way, say) takes the id the others name.
#[test]
fn imports_need_every_partition_and_fill_in_missing_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka_id = kafka_topic_dirs(tmp.path(), 5);
    fs::rename(tmp.path().join("clicks-1"), tmp.path().join("clicks-2")).unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let before = snapshot(tmp.path());
    let err = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(snapshot(tmp.path()), before);
    fs::rename(tmp.path().join("clicks-2"), tmp.path().join("clicks-1")).unwrap();
    fs::remove_file(tmp.path().join("clicks-1").join("partition.metadata")).unwrap();
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.topic_id.to_string(), kafka_id);
    store.close().unwrap();
    drop(store);
    Store::open(tmp.path()).unwrap().close().unwrap();
}

/// A writer of an earlier version locked `.lock` in the store directory; while one
/// holds it, this version is refused too (and holds it itself while open, so such a
/// writer is refused in turn).
#[test]
fn a_writer_holding_the_old_lock_file_is_respected() {
    let tmp = tempfile::tempdir().unwrap();
    Store::open(tmp.path()).unwrap().close().unwrap();
    let lock_path = tmp.path().join(".lock");
    let old_writer = fs::File::create(&lock_path).unwrap();
    old_writer.try_lock().unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    old_writer.unlock().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let another = fs::File::open(&lock_path).unwrap();
    assert!(
        another.try_lock().is_err(),
        "the store holds the old lock file too"
    );
    store.close().unwrap();
}

/// An I/O error at any operation of `create_topic` or `add_partitions` (once, or from
/// then on): the call fails or succeeds, and the store always reopens whole: no
/// metadata naming a removed directory, no leftover directory blocking the name.
#[test]
fn a_failed_create_or_grow_never_breaks_the_store() {
    use std::sync::Arc;
    use streamlog::fs::{Fault, FileSystem, SimFs};
    let open = |fs: &SimFs| {
        Store::open_with(
            "/store",
            streamlog::StoreConfig::default()
                .file_system(Arc::new(fs.clone()) as Arc<dyn FileSystem>)
                .background_maintenance(false),
        )
    };
    type Change = fn(&Store) -> streamlog::Result<()>;
    let changes: [(&str, Change); 2] = [
        ("create", |s| {
            s.create_topic("t", TopicConfig::default().partitions(3))
        }),
        ("grow", |s| s.add_partitions("g", 3)),
    ];
    for (what, change) in changes {
        let probe = SimFs::new();
        let store = open(&probe).unwrap();
        store.create_topic("g", TopicConfig::default()).unwrap();
        let before = probe.op_count();
        change(&store).unwrap();
        let ops = probe.op_count() - before;
        drop(store);
        for k in 1..=ops {
            for persistent in [false, true] {
                let fs = SimFs::new();
                let store = open(&fs).unwrap();
                store.create_topic("g", TopicConfig::default()).unwrap();
                fs.inject(Fault::Eio, fs.op_count() + k, persistent);
                let _ = change(&store);
                drop(store);
                fs.clear_faults();
                let store = open(&fs)
                    .unwrap_or_else(|e| panic!("{what}, EIO at op {k} ({persistent}): {e}"));
                for topic in store.list_topics() {
                    let t = store.topic(&topic).unwrap();
                    for p in 0..t.partition_count() {
                        t.partition(p).unwrap().append(&[rec("x")]).unwrap();
                    }
                }
                if store.topic("t").is_err() {
                    store
                        .create_topic("t", TopicConfig::default())
                        .unwrap_or_else(|e| panic!("{what}, EIO at op {k}: name blocked: {e}"));
                }
                let g = store.topic("g").unwrap().partition_count();
                if g < 3 {
                    store.add_partitions("g", 3).unwrap_or_else(|e| {
                        panic!("{what}, EIO at op {k} ({persistent}): grow blocked: {e}")
                    });
                }
            }
        }
    }
}

/// A simulated disk holding `/store/clicks-0` and `/store/clicks-1`, one record each,
/// written by standalone logs: directories an import can adopt.
fn sim_with_two_clicks_partitions() -> streamlog::fs::SimFs {
    use std::sync::Arc;

    use streamlog::fs::SimFs;
    use streamlog::log::{Log, LogConfig};

    let sim = SimFs::new();
    for p in 0..2 {
        let log = Log::open_with_fs(
            Arc::new(sim.clone()),
            format!("/store/clicks-{p}"),
            LogConfig::default(),
        )
        .unwrap();
        let mut b = streamlog::BatchBuilder::new();
        b.push(1_700_000_000_000, Some(b"k"), Some(b"v"), &[])
            .unwrap();
        log.append(&mut b.finish().unwrap()).unwrap();
        log.close().unwrap();
    }
    sim
}

/// An import whose partitions fail to open (an I/O error, once the directories were
/// checked and made durable) leaves no metadata: the store reopens without the topic
/// and with the directories left alone, and a later import adopts them. (The partitions
/// open before the metadata is written; they opened after it once, and a failure
/// removed it again.)
#[test]
fn an_import_that_fails_to_open_its_partitions_leaves_no_metadata_behind() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use common::intercept::{Hooks, InterceptFs, Op};
    use streamlog::StoreConfig;
    use streamlog::fs::FileSystem;

    let sim = sim_with_two_clicks_partitions();
    let adopted = Arc::new(AtomicBool::new(false));
    let fail_opens = Arc::new(AtomicBool::new(true));
    let hooks = {
        let (adopted, seen) = (adopted.clone(), adopted.clone());
        let fail_opens = fail_opens.clone();
        Hooks {
            before_op: Box::new(move |op, path| {
                // The store directory's fsync, which makes the moved-in directories
                // durable: the partitions open next.
                if op == Op::SyncDir && path == Path::new("/store") {
                    seen.store(true, Ordering::SeqCst);
                }
            }),
            before_open: Box::new(move |path| {
                let in_topic = path.to_string_lossy().contains("/clicks-");
                if in_topic && adopted.load(Ordering::SeqCst) && fail_opens.load(Ordering::SeqCst) {
                    return Err(std::io::Error::other("injected: open after adoption"));
                }
                Ok(())
            }),
            ..Hooks::default()
        }
    };
    let fs: Arc<dyn FileSystem> = Arc::new(InterceptFs::new(sim.clone(), hooks));
    let config = || {
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(fs.clone())
    };
    let store = Store::open_with("/store", config()).unwrap();
    adopted.store(false, Ordering::SeqCst); // armed by the import's fsync only
    let err = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap_err();
    assert!(
        adopted.load(Ordering::SeqCst),
        "the failure came after the directories were checked and synced"
    );
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(store.topic("clicks").is_err());
    store.close().unwrap();
    drop(store);
    fail_opens.store(false, Ordering::SeqCst);

    let store = Store::open_with("/store", config()).unwrap();
    assert!(store.topic("clicks").is_err(), "not adopted");
    assert_eq!(store.recovery_report().directories_left_alone.len(), 2);
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.partitions.len(), 2);
    assert_eq!(clicks_end(&store), 1);
}

/// Directories moved into the store by the user (a rename or copy, which need not sync
/// the store directory) are made durable by the import before the metadata that adopts
/// them: otherwise a power loss right after the import could keep the metadata and lose
/// the directories, and the store would refuse to open (a partition of a store never
/// syncs the store directory itself). Checked as the order of the import's operations.
#[test]
fn an_import_syncs_the_store_directory_before_adopting_the_directories() {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use common::intercept::{Hooks, InterceptFs, Op};
    use parking_lot::Mutex;
    use streamlog::StoreConfig;
    use streamlog::fs::FileSystem;

    let sim = sim_with_two_clicks_partitions();
    let recording = Arc::new(AtomicBool::new(false));
    let ops: Arc<Mutex<Vec<(Op, PathBuf)>>> = Arc::default();
    let hooks = {
        let (recording, ops) = (recording.clone(), ops.clone());
        Hooks {
            before_op: Box::new(move |op, path| {
                if recording.load(Ordering::SeqCst) {
                    ops.lock().push((op, path.to_path_buf()));
                }
            }),
            ..Hooks::default()
        }
    };
    let fs: Arc<dyn FileSystem> = Arc::new(InterceptFs::new(sim, hooks));
    let store = Store::open_with(
        "/store",
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(fs),
    )
    .unwrap();
    recording.store(true, Ordering::SeqCst);
    store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    recording.store(false, Ordering::SeqCst);
    let ops = ops.lock();
    let at = |wanted: &dyn Fn(&(Op, PathBuf)) -> bool| ops.iter().position(wanted);
    let adopted = at(&|(op, p)| *op == Op::Rename && p.ends_with(".topics/clicks"))
        .expect("the metadata was written");
    let synced = at(&|(op, p)| *op == Op::SyncDir && p == Path::new("/store"))
        .expect("the store directory was synced");
    assert!(
        synced < adopted,
        "the store directory is synced (op {synced}) before the metadata adopts (op {adopted})"
    );
    assert_eq!(clicks_end(&store), 1);
}

/// The end offset of partition 1 of the imported topic `clicks`.
fn clicks_end(store: &Store) -> i64 {
    store
        .topic("clicks")
        .unwrap()
        .partition(1)
        .unwrap()
        .log_end_offset()
}

/// From the DDL review: a partition directory holding a file whose name is not UTF-8
/// (the listing dropped it) looked like the store's alone, so `delete_topic` removed
/// the segments and then failed to remove the directory, and every later open failed
/// the same way; a partition directory that is a symbolic link (partitions spread
/// over disks) was emptied through the link and then the link could not be removed
/// as a directory. Both are left alone now, with everything in them, and the store
/// opens.
#[cfg(unix)]
#[test]
fn delete_topic_leaves_foreign_names_and_linked_directories_alone() {
    use std::os::unix::ffi::OsStrExt;
    for linked in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let partition = dir.join("t-0");
        {
            let store = Store::open(&dir).unwrap();
            store.create_topic("t", TopicConfig::default()).unwrap();
            let p = store.topic("t").unwrap().partition(0).unwrap();
            p.append(&[rec("a"), rec("b")]).unwrap();
            store.close().unwrap();
        }
        let holder = if linked {
            let elsewhere = tmp.path().join("other-disk-t-0");
            fs::rename(&partition, &elsewhere).unwrap();
            std::os::unix::fs::symlink(&elsewhere, &partition).unwrap();
            elsewhere
        } else {
            let name = std::ffi::OsStr::from_bytes(b"notes-\xff.txt");
            fs::write(partition.join(name), b"mine").unwrap();
            partition.clone()
        };
        let before = snapshot(&holder);
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store
                .topic("t")
                .unwrap()
                .partition(0)
                .unwrap()
                .log_end_offset(),
            2
        );
        store.delete_topic("t").unwrap();
        assert!(store.topic("t").is_err());
        store.close().unwrap();
        assert_eq!(snapshot(&holder), before, "linked: {linked}");
        let store = Store::open(&dir).unwrap();
        assert!(store.topic("t").is_err(), "linked: {linked}");
        assert_eq!(
            store.recovery_report().directories_left_alone,
            vec![partition.clone()],
            "linked: {linked}"
        );
    }
}

/// From a review: the store's errors ask the user to edit files in `.topics`, but any
/// file there whose name no topic can have (an editor's backup `t~` or `#t#`) made
/// the open fail as damage, while the editor ran or after it crashed. The open and
/// `verify_store` leave such files alone and ignore them, as the read-only opener
/// does; a file named like a topic is still the topic's metadata.
#[test]
fn a_file_in_topics_no_topic_can_be_named_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    store
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[rec("a")])
        .unwrap();
    store.close().unwrap();
    drop(store);
    let meta = tmp.path().join(".topics");
    fs::copy(meta.join("t"), meta.join("t~")).unwrap();
    fs::write(meta.join("#t#"), b"\xff\xfe not a topic").unwrap();
    let before = snapshot(tmp.path());
    let check = streamlog::verify_store(tmp.path()).unwrap();
    assert!(check.is_ok(), "{:?}", check.problems);
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(store.list_topics(), ["t"]);
    store.close().unwrap();
    drop(store);
    let after = snapshot(tmp.path());
    for name in ["t~", "#t#"] {
        let path = meta.join(name).display().to_string();
        let kept = |s: &[(String, Vec<u8>)]| s.iter().find(|(p, _)| *p == path).cloned();
        assert_eq!(kept(&after), kept(&before), "{name} left as it was");
    }
}

/// A topic of another store, moved in and imported, remembers that store's producers,
/// numbered from 2^48 as this store's are: this store's first producer (made before
/// the import) had the id of the other's first, and its first batch to the topic, with
/// the same epoch and sequences as one of the other's, was answered as a duplicate with
/// the other's offsets, its records dropped. The import forgets the adopted producers
/// (durably: a standalone open of the partition after the store closes knows none).
#[test]
fn a_topic_of_another_store_does_not_take_this_stores_producer_for_its_own() {
    use streamlog::{ProducerConfig, ProducerRecord};
    let batch_of_three = |producer: &streamlog::Producer, topic: &str, tag: &str| {
        let futures: Vec<_> = (0..3)
            .map(|i| {
                producer
                    .send(
                        ProducerRecord::new(topic.to_string())
                            .partition(0)
                            .value(format!("{tag}-{i}")),
                    )
                    .unwrap()
            })
            .collect();
        producer.flush().unwrap();
        futures
            .into_iter()
            .map(|f| f.wait().unwrap().offset)
            .collect::<Vec<i64>>()
    };
    let lingering = || ProducerConfig::default().linger_ms(3_600_000);
    // The other store: its first producer writes one batch of three records.
    let other = tempfile::tempdir().unwrap();
    let a = Store::open(other.path()).unwrap();
    a.create_topic("clicks", TopicConfig::default()).unwrap();
    let theirs = a.producer(lingering()).unwrap();
    assert_eq!(batch_of_three(&theirs, "clicks", "theirs"), [0, 1, 2]);
    drop(theirs);
    a.close().unwrap();
    drop(a);
    for adopted_then_closed in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&other.path().join("clicks-0"), &tmp.path().join("clicks-0"));
        let store = Store::open(tmp.path()).unwrap();
        store.create_topic("other", TopicConfig::default()).unwrap();
        let mine = store.producer(lingering()).unwrap();
        batch_of_three(&mine, "other", "first");
        store
            .import_kafka_topic("clicks", TopicConfig::default())
            .unwrap();
        if adopted_then_closed {
            drop(mine);
            store.close().unwrap();
            drop(store);
            let log =
                streamlog::log::Log::open(tmp.path().join("clicks-0"), Default::default()).unwrap();
            assert_eq!(
                log.producer_epoch(1 << 48),
                None,
                "remembered after a reopen"
            );
            log.close().unwrap();
            continue;
        }
        assert_eq!(batch_of_three(&mine, "clicks", "mine"), [3, 4, 5]);
        let part = store.topic("clicks").unwrap().partition(0).unwrap();
        let values: Vec<_> = part
            .read(0, 1 << 20)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(
            values,
            [
                "theirs-0", "theirs-1", "theirs-2", "mine-0", "mine-1", "mine-2"
            ]
        );
        drop(mine);
        store.close().unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for f in fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

/// From a review: the import's forgetting held only through a clean close: after a
/// crash, the rebuild starts from a snapshot at a segment base at or below the
/// recovery point, and replayed the other store's batches from the segment's start,
/// bringing its producers back. The forgotten state is the snapshot at the base of a
/// new segment, the log flushed past it: whatever a crash keeps, the partition opened
/// on its own knows none of the other store's producers.
#[test]
fn the_imports_forgetting_survives_a_crash() {
    use std::sync::Arc;
    use streamlog::fs::{CrashImage, FileSystem, SimFs};
    use streamlog::{ProducerConfig, ProducerRecord, StoreConfig};
    let fs = SimFs::new();
    let config = || StoreConfig::default().background_maintenance(false);
    let a = common::sim_store_at(&fs, "/a", config()).unwrap();
    a.create_topic("clicks", TopicConfig::default()).unwrap();
    let theirs = a.producer(ProducerConfig::default().linger_ms(0)).unwrap();
    for i in 0..3 {
        let record = ProducerRecord::new("clicks").value(format!("theirs-{i}"));
        theirs.send(record).unwrap().wait().unwrap();
    }
    drop(theirs);
    a.close().unwrap();
    drop(a);
    for (path, _) in fs.files(Path::new("/a/clicks-0")) {
        let bytes = fs.read_file(&path).unwrap();
        let to = Path::new("/b/clicks-0").join(path.file_name().unwrap());
        fs.write_file(&to, bytes);
    }
    let b = common::sim_store_at(&fs, "/b", config()).unwrap();
    b.import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    // An append: the partition is no longer clean for the crash.
    let part = b.topic("clicks").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1, Some("k"), Some("mine"))])
        .unwrap();
    for mode in [CrashImage::KeepAll, CrashImage::DropAll] {
        let image = fs.crash_image(mode);
        let log = streamlog::log::Log::open_with_fs(
            Arc::new(image) as Arc<dyn FileSystem>,
            "/b/clicks-0",
            Default::default(),
        )
        .unwrap();
        assert_eq!(log.producer_epoch(1 << 48), None, "{mode:?}");
        assert!(log.log_end_offset() >= 3, "{mode:?}");
    }
}

/// From a review: the import forgot durably only when it had producers to forget. A
/// directory closed after its producers expired opens clean with none, though the
/// snapshot at its last segment's base remembers one: after an import, an append and
/// a crash, the rebuild started there and the other store's producer was back. The
/// import makes the empty state durable too.
#[test]
fn the_imports_forgetting_covers_producers_only_a_snapshot_remembers() {
    use std::sync::Arc;
    use streamlog::StoreConfig;
    use streamlog::fs::{CrashImage, FileSystem, SimFs};
    const THEIRS: i64 = 1 << 48;
    let fs = SimFs::new();
    let sim = || Arc::new(fs.clone()) as Arc<dyn FileSystem>;
    let log = streamlog::log::Log::open_with_fs(sim(), "/a/clicks-0", Default::default()).unwrap();
    let mut b = streamlog::BatchBuilder::new().producer(THEIRS, 0, 0);
    b.push(1_700_000_000_000, Some(b"k"), Some(b"theirs"), &[])
        .unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.roll().unwrap();
    let mut b = streamlog::BatchBuilder::new();
    b.push(1_700_000_000_000, Some(b"k"), Some(b"plain"), &[])
        .unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.flush().unwrap();
    assert_eq!(log.expire_producers(0), 1);
    log.close().unwrap();
    for (path, _) in fs.files(Path::new("/a/clicks-0")) {
        let bytes = fs.read_file(&path).unwrap();
        let to = Path::new("/b/clicks-0").join(path.file_name().unwrap());
        fs.write_file(&to, bytes);
    }
    let store = common::sim_store_at(
        &fs,
        "/b",
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    let part = store.topic("clicks").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1, Some("k"), Some("mine"))])
        .unwrap();
    for mode in [CrashImage::KeepAll, CrashImage::DropAll] {
        let image = Arc::new(fs.crash_image(mode)) as Arc<dyn FileSystem>;
        let log =
            streamlog::log::Log::open_with_fs(image, "/b/clicks-0", Default::default()).unwrap();
        assert_eq!(log.producer_epoch(THEIRS), None, "{mode:?}");
    }
}
