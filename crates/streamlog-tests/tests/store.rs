//! Store and topic administration, persistence, and the Topic/Partition handles.
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::intercept::{Hooks, InterceptFs, Op};
use common::{
    crash_modes, recv, sim_store, sim_store_maintained, sim_store_with, sim_topic_t, with_topic_t,
};

use streamlog::format::DecodeOptions;
use streamlog::fs::{CrashImage, Fault, FileSystem, SimFs};
use streamlog::{CleanupPolicy, Compression, Error, Record, Store, StoreConfig, TopicConfig};

/// A store at `/store` on `fs` through [`InterceptFs`] with `hooks`, maintenance off.
fn intercepted_store(fs: &SimFs, hooks: Hooks) -> Store {
    Store::open_with(
        "/store",
        StoreConfig::default()
            .file_system(Arc::new(InterceptFs::new(fs.clone(), hooks)) as Arc<dyn FileSystem>)
            .background_maintenance(false),
    )
    .unwrap()
}

fn rec(v: &str) -> Record {
    Record::new(1_700_000_000_000, Some("k"), Some(v.to_string()))
}

#[test]
fn topics_are_created_described_persisted_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let config = TopicConfig::default()
        .partitions(3)
        .retention_ms(60_000)
        .cleanup_policy(CleanupPolicy::Compact);
    store.create_topic("clicks", config.clone()).unwrap();
    store.create_topic("views", TopicConfig::default()).unwrap();
    assert_eq!(store.list_topics(), vec!["clicks", "views"]);
    let p1 = store.topic("clicks").unwrap().partition(1).unwrap();
    p1.append(&[rec("a"), rec("b")]).unwrap();
    p1.flush().unwrap();
    let d = store.describe_topic("clicks").unwrap();
    assert_eq!(d.config, config);
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(
        (
            d.partitions[1].log_end_offset,
            d.partitions[1].durable_offset
        ),
        (2, 2)
    );
    assert_eq!(d.partitions[0].log_end_offset, 0);
    assert!(d.partitions[1].size_bytes > 0 && d.partitions[1].segment_count == 1);
    assert!(
        tmp.path().join("clicks-2").is_dir(),
        "Kafka's partition directory layout"
    );
    store.close().unwrap();
    assert!(matches!(store.topic("clicks"), Err(Error::Closed { .. })));
    drop(store);

    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(
        store.describe_topic("clicks").unwrap().config,
        config,
        "config restored"
    );
    let p1 = store.topic("clicks").unwrap().partition(1).unwrap();
    let values: Vec<_> = p1
        .read(0, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, vec![&b"a"[..], &b"b"[..]]);
    store.delete_topic("clicks").unwrap();
    assert!(!tmp.path().join("clicks-0").exists());
    assert!(
        matches!(p1.append(&[rec("c")]), Err(Error::Closed { .. })),
        "handles to a deleted topic stop"
    );
    assert!(matches!(
        store.topic("clicks"),
        Err(Error::NotFound { kind: "topic", .. })
    ));
    store
        .create_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(
        store
            .topic("clicks")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset(),
        0,
        "recreated empty"
    );
}

#[test]
fn bad_names_duplicates_and_unknowns_are_typed_errors() {
    let (_fs, store) = sim_topic_t(1);
    let cases: Vec<(&str, streamlog::Result<()>)> = vec![
        ("empty name", store.create_topic("", TopicConfig::default())),
        (
            "bad char",
            store.create_topic("a b", TopicConfig::default()),
        ),
        (
            "too long",
            store.create_topic(&"x".repeat(250), TopicConfig::default()),
        ),
        (
            "reserved",
            store.create_topic("__consumer_offsets", TopicConfig::default()),
        ),
        (
            "zero partitions",
            store.create_topic("u", TopicConfig::default().partitions(0)),
        ),
        ("duplicate", store.create_topic("t", TopicConfig::default())),
        ("delete unknown", store.delete_topic("nope")),
        ("shrink", store.add_partitions("t", 1)),
        ("grow unknown", store.add_partitions("nope", 3)),
    ];
    for (name, r) in cases {
        let e = r.expect_err(name);
        assert!(
            matches!(
                e,
                Error::InvalidArgument { .. }
                    | Error::InvalidConfig { .. }
                    | Error::AlreadyExists { .. }
                    | Error::NotFound { .. }
            ),
            "{name}: {e}"
        );
    }
    assert!(matches!(
        store.topic("t").unwrap().partition(1),
        Err(Error::NotFound {
            kind: "partition",
            ..
        })
    ));
    assert!(matches!(
        store.topic("t").unwrap().partition(-1),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.list_topics(), vec!["t"], "nothing half-created");
    // Names differing only in '.' and '_' collide, as in Kafka, either way round.
    store.create_topic("a.b", TopicConfig::default()).unwrap();
    for (name, config) in [
        ("a_b", TopicConfig::default()),
        ("a.b", TopicConfig::default()),
    ] {
        let e = store.create_topic(name, config).expect_err(name);
        assert!(
            matches!(
                e,
                Error::InvalidArgument { .. } | Error::AlreadyExists { .. }
            ),
            "{name}: {e}"
        );
    }
    store.create_topic("x_y", TopicConfig::default()).unwrap();
    let e = store
        .create_topic("x.y", TopicConfig::default())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("collides with topic `x_y`"), "{e}");
    assert_eq!(store.list_topics(), vec!["a.b", "t", "x_y"]);
    // Still usable.
    store
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .append(&[rec("x")])
        .unwrap();
}

#[test]
fn a_descriptor_limit_of_zero_is_a_config_error() {
    let fs = SimFs::new();
    let err = sim_store_with(&fs, StoreConfig::default().max_open_files(0)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "max_open_files",
                ..
            }
        ),
        "{err}"
    );
    // Nothing was created, and a valid limit opens.
    assert!(fs.files(Path::new("/store")).is_empty());
    sim_store_with(&fs, StoreConfig::default().max_open_files(1)).unwrap();
}

#[test]
fn a_second_open_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert!(matches!(Store::open(tmp.path()), Err(Error::Locked { .. })));
    drop(store);
    Store::open(tmp.path()).unwrap();
}

#[test]
fn add_partitions_grows_and_persists() {
    let (fs, store) = sim_topic_t(2);
    store.add_partitions("t", 5).unwrap();
    assert_eq!(store.topic("t").unwrap().partition_count(), 5);
    store
        .topic("t")
        .unwrap()
        .partition(4)
        .unwrap()
        .append(&[rec("x")])
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = sim_store_maintained(&fs).unwrap();
    assert_eq!(store.describe_topic("t").unwrap().partitions.len(), 5);
    assert_eq!(
        store
            .topic("t")
            .unwrap()
            .partition(4)
            .unwrap()
            .log_end_offset(),
        1
    );
}

/// `wait_for` returns false when nothing arrives within its timeout; one that sleeps
/// with no deadline is woken by an append. The append is made once the waiter is seen
/// asleep on the store's wake-ups (`internals::sleeping_readers`), not after a sleep of
/// the appending thread; and with no deadline only that wake-up can return it (within
/// the failure guard).
#[cfg(feature = "internals")]
#[test]
fn wait_for_wakes_on_append_and_times_out_otherwise() {
    let (_fs, store) = sim_topic_t(1);
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert!(
        !part.wait_for(0, Duration::from_millis(20)),
        "nothing there yet"
    );
    let (woken_tx, woken) = channel();
    let waiter = {
        let part = part.clone();
        std::thread::spawn(move || woken_tx.send(part.wait_for(0, Duration::MAX)).unwrap())
    };
    common::wait_until("wait_for goes to sleep", || {
        streamlog::internals::sleeping_readers(&store) > 0 || waiter.is_finished()
    });
    assert!(
        !waiter.is_finished(),
        "wait_for returned with nothing there"
    );
    part.append(&[rec("x")]).unwrap();
    assert!(recv(&woken, "wait_for woken by the append"));
    waiter.join().unwrap();
    assert!(part.wait_for(0, Duration::ZERO));
}

#[test]
fn crash_during_topic_changes_leaves_whole_topics_only() {
    let clean = SimFs::new();
    let workload = |fs: &SimFs| -> streamlog::Result<()> {
        let store = sim_store_maintained(fs)?;
        store.create_topic("a", TopicConfig::default().partitions(2))?;
        store.create_topic("b", TopicConfig::default().partitions(3))?;
        store.topic("b")?.partition(2)?.append(&[rec("x")])?;
        store.add_partitions("a", 4)?;
        store.delete_topic("b")?;
        store.close()
    };
    workload(&clean).unwrap();
    let ops = clean.mutating_op_count();
    for k in 0..=ops {
        let fs = SimFs::new();
        fs.crash_after(k);
        let _ = workload(&fs);
        for mode in crash_modes(k) {
            let img = fs.crash_image(mode);
            let store = sim_store_maintained(&img)
                .unwrap_or_else(|e| panic!("crash after {k}, {mode:?}: {e}"));
            for t in store.list_topics() {
                let d = store.describe_topic(&t).unwrap();
                for p in 0..d.config.partition_count() {
                    assert!(
                        store.topic(&t).unwrap().partition(p).is_ok(),
                        "crash after {k}: {t}-{p} missing"
                    );
                }
            }
            // No partition directory without its topic.
            for (path, _) in img.files(&PathBuf::from("/store")) {
                let dir = path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if let Some((t, _)) = dir.rsplit_once('-') {
                    assert!(
                        store.topic(t).is_ok(),
                        "crash after {k}, {mode:?}: orphan {dir}"
                    );
                }
            }
        }
    }
}

/// Topics of many partitions are created, opened and closed on several threads (the
/// store fsyncs its directory once for all the new partitions): a crash at any point
/// still leaves whole topics only, whatever order the threads' file operations took.
#[test]
fn crash_while_creating_a_topic_of_many_partitions_leaves_it_whole_or_absent() {
    const PARTITIONS: i32 = 70;
    let workload = |fs: &SimFs| -> streamlog::Result<()> {
        let store = sim_store(fs)?;
        store.create_topic("many", TopicConfig::default().partitions(PARTITIONS))?;
        store
            .topic("many")?
            .partition(PARTITIONS - 1)?
            .append(&[rec("x")])?;
        store.close()
    };
    let clean = SimFs::new();
    workload(&clean).unwrap();
    let ops = clean.mutating_op_count();
    // About 10 crash points spread over the workload and the last ones (the shared
    // directory fsync, the close), one crash image each (rotating the kinds): each
    // point reopens 70 partitions, so every point would take minutes.
    let stride = (ops / 10).max(1);
    let points: Vec<u64> = (0..=ops)
        .filter(|k| k % stride == 0 || ops - k < 3)
        .collect();
    for k in points {
        let fs = SimFs::new();
        fs.crash_after(k);
        let _ = workload(&fs);
        for mode in [crash_modes(k)[(k % 3) as usize]] {
            let img = fs.crash_image(mode);
            let store =
                sim_store(&img).unwrap_or_else(|e| panic!("crash after {k}, {mode:?}: {e}"));
            match store.topic("many") {
                Ok(t) => {
                    assert_eq!(t.partition_count(), PARTITIONS);
                    for p in 0..PARTITIONS {
                        t.partition(p)
                            .unwrap_or_else(|e| panic!("crash after {k}: many-{p}: {e}"));
                    }
                }
                Err(_) => {
                    let orphans: Vec<_> = img
                        .files(&PathBuf::from("/store"))
                        .into_iter()
                        .filter(|(p, _)| p.to_string_lossy().contains("/many-"))
                        .collect();
                    assert!(orphans.is_empty(), "crash after {k}, {mode:?}: {orphans:?}");
                }
            }
        }
    }
}

// Review findings (each failed before its fix).

/// topic.rs:270 `&name[..20]` slices inside a multi-byte char: create_topic panics.
#[test]
fn long_non_ascii_topic_name_is_an_error_not_a_panic() {
    let fs = SimFs::new();
    let store = sim_store_maintained(&fs).unwrap();
    let name = "€".repeat(100); // 300 bytes; byte 20 is inside the 7th '€'
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.create_topic(&name, TopicConfig::default())
    }));
    assert!(
        matches!(r, Ok(Err(_))),
        "create_topic panicked on a bad name"
    );
}

/// store.rs:662 `Instant::now() + timeout` overflows for a large timeout.
#[test]
fn wait_for_with_huge_timeout_does_not_panic() {
    let (_fs, store) = sim_topic_t(1);
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[rec("a")]).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        part.wait_for(0, Duration::MAX)
    }));
    assert!(
        matches!(r, Ok(true)),
        "wait_for(.., Duration::MAX) panicked"
    );
}

/// Writes a user's file (not the store's) at `path` on `fs`, creating its directory.
fn put_user_file(fs: &SimFs, path: &str, data: &[u8]) {
    let path = Path::new(path);
    fs.create_dir_all(path.parent().unwrap()).unwrap();
    fs.write_file(path, data.to_vec());
}

/// Asserts that the user's file at `path` still holds `data`; `deleted` says what failed.
fn assert_user_file_kept(fs: &SimFs, path: &str, data: &[u8], deleted: &str) {
    assert_eq!(
        fs.read_file(Path::new(path)).as_deref(),
        Some(data),
        "{deleted}"
    );
}

/// store.rs:470-498: any `<valid-name>-<n>` directory in the store dir that no topic
/// owns is deleted with its files at open, including a user's unrelated directory.
#[test]
fn open_does_not_delete_unrelated_user_directories() {
    let fs = SimFs::new();
    put_user_file(&fs, "/store/backup-2024/notes.txt", b"precious");
    let store = sim_store_maintained(&fs).unwrap();
    store.close().unwrap();
    assert_user_file_kept(
        &fs,
        "/store/backup-2024/notes.txt",
        b"precious",
        "Store::open deleted a user's directory",
    );
}

/// A user's directory named like a partition (`<name>-<n>`) whose files merely end in a
/// segment or index suffix (`server.log`, `notes.index`) is not a partition directory:
/// neither open (orphan removal) nor `create_topic` deletes it.
#[test]
fn user_files_with_log_like_suffixes_are_not_partition_files() {
    let fs = SimFs::new();
    put_user_file(&fs, "/store/myapp-1/server.log", b"user data");
    let store = sim_store_maintained(&fs).unwrap();
    assert_user_file_kept(
        &fs,
        "/store/myapp-1/server.log",
        b"user data",
        "Store::open deleted a user's server.log",
    );
    put_user_file(&fs, "/store/other-0/notes.index", b"user data");
    let r = store.create_topic("other", TopicConfig::default());
    assert!(
        matches!(r, Err(Error::AlreadyExists { .. })),
        "create_topic over a user's directory: {r:?}"
    );
    assert_user_file_kept(
        &fs,
        "/store/other-0/notes.index",
        b"user data",
        "create_topic deleted a user's notes.index",
    );
    // The store is still usable.
    store.create_topic("fine", TopicConfig::default()).unwrap();
}

/// The leftovers of an interrupted delete of a compacted topic (its cleaner
/// checkpoint and tombstone horizon files, files mid-swap, included) are recognized as
/// the store's by the recorded intent and the directory's `partition.metadata`: open
/// removes them, and the name can be created again. The same leftovers with a file of
/// the user's in the directory are left alone.
#[test]
fn interrupted_deletes_of_compacted_topics_are_completed() {
    for with_user_file in [false, true] {
        let fs = SimFs::new();
        {
            let store = sim_store_maintained(&fs).unwrap();
            let compact = TopicConfig::default().cleanup_policy(CleanupPolicy::Compact);
            store.create_topic("gone", compact).unwrap();
            store.close().unwrap();
        }
        let dir = Path::new("/store/gone-0");
        let mut names = vec![
            "00000000000000000040.log.cleaned",
            "00000000000000000040.index.swap",
            "00000000000000000000.log.deleted",
            "log-start-offset-checkpoint.tmp",
            "cleaner-offset-checkpoint",
            "streamlog.tombstone-horizon",
            "streamlog.unsynced",
            ".lock",
        ];
        if with_user_file {
            names.push("notes.txt");
        }
        for f in &names {
            fs.write_file(&dir.join(f), b"x".to_vec());
        }
        let meta = Path::new("/store/.topics/gone");
        let mut text = fs.read_file(meta).unwrap();
        text.extend_from_slice(b"intent=delete\n");
        fs.write_file(meta, text);
        let store = sim_store_maintained(&fs).unwrap();
        assert!(store.topic("gone").is_err(), "the deletion was completed");
        let left = fs.files(dir);
        if with_user_file {
            assert!(
                left.iter().any(|(p, _)| p.ends_with("notes.txt")),
                "a directory holding a user's file is never emptied: {left:?}"
            );
            assert_eq!(
                store.recovery_report().directories_left_alone,
                vec![dir.to_path_buf()]
            );
        } else {
            assert!(left.is_empty(), "partition files left: {left:?}");
            store.create_topic("gone", TopicConfig::default()).unwrap();
        }
    }
}

/// A compressed append whose records would decompress past the store's
/// `max_decompressed_bytes` is refused: written, it could never be read back (every
/// read and poll of the partition would fail on it). The partition stays usable.
#[test]
fn compressed_append_past_the_decode_limit_is_refused() {
    let fs = SimFs::new();
    let decode = DecodeOptions {
        max_decompressed_bytes: 64 << 10,
    };
    let config = StoreConfig::default().decode_options(decode);
    let store = with_topic_t(sim_store_with(&fs, config).unwrap(), 1);
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let big = Record::new(0, Some("k"), Some(vec![0u8; 100 << 10]));
    for codec in Compression::ALL
        .into_iter()
        .filter(|c| *c != Compression::None)
    {
        let r = p.append_with(std::slice::from_ref(&big), codec);
        assert!(
            matches!(
                r,
                Err(Error::RecordTooLarge {
                    limit_name: "max_decompressed_bytes",
                    ..
                })
            ),
            "{codec:?}: {r:?}"
        );
    }
    let fits = Record::new(0, Some("k"), Some(vec![7u8; 60 << 10]));
    p.append_with(&[fits], Compression::Gzip).unwrap();
    let got = p.read(0, 1 << 20).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, 0);
    assert_eq!(got[0].value.as_deref(), Some(&[7u8; 60 << 10][..]));
}

/// store.rs:379-386: a failure after some new partitions were opened leaves them in the
/// live partition list while the metadata still has the old count. Appends to them
/// succeed and are even flushed, and the next open deletes them as orphans.
#[test]
fn failed_add_partitions_does_not_expose_partitions_that_are_deleted_at_reopen() {
    for k in 1..200u64 {
        let fs = SimFs::new();
        let store = sim_store_maintained(&fs).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        fs.inject(Fault::Eio, fs.op_count() + k, false);
        let r = store.add_partitions("t", 3);
        fs.clear_faults();
        if r.is_ok() {
            break;
        }
        let topic = store.topic("t").unwrap();
        if topic.partition_count() == topic.config().partition_count() {
            continue;
        }
        // The inconsistent state: partition 1 is usable but not in the metadata.
        let p1 = topic.partition(1).unwrap();
        p1.append(&[rec("acknowledged")]).unwrap();
        p1.flush().unwrap();
        store.close().unwrap();
        drop((p1, topic, store));
        let store = sim_store_maintained(&fs).unwrap();
        let topic = store.topic("t").unwrap();
        let survived = topic
            .partition(1)
            .ok()
            .and_then(|p| p.read(0, 1 << 20).ok())
            .is_some_and(|r| r.len() == 1);
        assert!(
            survived,
            "fault at op +{k}: add_partitions failed, but exposed partition 1; its flushed \
             record was deleted at reopen (partition_count now {})",
            topic.partition_count()
        );
        return;
    }
}

const DELETER: &str = "delete-t";
const CREATOR: &str = "create-t";
const RACE_PARTITIONS: i32 = 3;

enum Deleter {
    /// Parked before this operation (the disk as it was then: `intent=delete` in the
    /// topic's metadata file, and how many of its partition directories were left).
    Parked(Op, PathBuf, bool, i32),
    Done(streamlog::Result<()>),
}

/// The hook of one race: counts the deleting thread's file operations and parks it
/// before number `park_at`; records every operation of both threads in order.
struct Race {
    fs: SimFs,
    park_at: usize,
    deleter_ops: AtomicUsize,
    parked: AtomicBool,
    /// `(thread, op, path)` of the deleting and the creating thread, in order.
    ops: Mutex<Vec<(&'static str, Op, PathBuf)>>,
    /// Operations of the creating thread while the delete was parked.
    while_parked: Mutex<Vec<(Op, PathBuf)>>,
    events: Mutex<Sender<Deleter>>,
    release: Mutex<Receiver<()>>,
}

impl Race {
    fn on_op(&self, op: Op, path: &Path) {
        match std::thread::current().name() {
            Some(DELETER) => {
                self.ops.lock().unwrap().push((DELETER, op, path.into()));
                if self.deleter_ops.fetch_add(1, Ordering::AcqRel) != self.park_at {
                    return;
                }
                let meta = self.fs.read_file(Path::new("/store/.topics/t"));
                let intent_delete = meta.is_some_and(|m| {
                    String::from_utf8_lossy(&m)
                        .lines()
                        .any(|l| l == "intent=delete")
                });
                let dirs_left = (0..RACE_PARTITIONS)
                    .filter(|p| self.fs.exists(Path::new(&format!("/store/t-{p}"))).unwrap())
                    .count() as i32;
                self.parked.store(true, Ordering::Release);
                let parked = Deleter::Parked(op, path.into(), intent_delete, dirs_left);
                self.events.lock().unwrap().send(parked).unwrap();
                recv(
                    &self.release.lock().unwrap(),
                    "release of the parked delete",
                );
                self.parked.store(false, Ordering::Release);
            }
            Some(CREATOR) => {
                if self.parked.load(Ordering::Acquire) {
                    self.while_parked.lock().unwrap().push((op, path.into()));
                }
                self.ops.lock().unwrap().push((CREATOR, op, path.into()));
            }
            _ => {}
        }
    }
}

/// Checks the topic `t` after the race, in a store reopened on `fs`: every partition
/// holds exactly the one record written to the new topic.
fn check_new_topic_survives(fs: &SimFs, what: &str) {
    let store = sim_store_maintained(fs).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let report = store.recovery_report();
    assert!(
        report.interrupted_changes.is_empty() && report.directories_left_alone.is_empty(),
        "{what}: {report:?}"
    );
    assert_eq!(store.list_topics(), ["t"], "{what}");
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_count(), RACE_PARTITIONS, "{what}");
    for p in 0..RACE_PARTITIONS {
        let got: Vec<_> = t
            .partition(p)
            .unwrap()
            .read(0, 1 << 20)
            .unwrap_or_else(|e| panic!("{what}: t-{p}: {e}"))
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect();
        assert_eq!(
            got,
            [(0, Some(bytes::Bytes::from_static(b"new")))],
            "{what}: t-{p} lost its flushed record or got the deleted topic's back"
        );
    }
    store.close().unwrap();
}

/// Runs one race: `delete_topic("t")` parked before its file operation number
/// `park_at`, `create_topic("t")` started meanwhile, then the delete released. Returns
/// where the delete was parked, or `None` if it finished with fewer operations.
fn race_at(park_at: usize) -> Option<(Op, PathBuf, bool, i32)> {
    let fs = SimFs::new();
    let (events_tx, events) = channel();
    let (release, release_rx) = channel();
    let race = Arc::new(Race {
        fs: fs.clone(),
        park_at,
        deleter_ops: AtomicUsize::new(0),
        parked: AtomicBool::new(false),
        ops: Mutex::default(),
        while_parked: Mutex::default(),
        events: Mutex::new(events_tx.clone()),
        release: Mutex::new(release_rx),
    });
    let hook = race.clone();
    let hooks = Hooks {
        before_op: Box::new(move |op, path| hook.on_op(op, path)),
        ..Hooks::default()
    };
    let store = intercepted_store(&fs, hooks);
    let config = TopicConfig::default().partitions(RACE_PARTITIONS);
    store.create_topic("t", config.clone()).unwrap();
    let old: Vec<_> = (0..RACE_PARTITIONS)
        .map(|p| store.topic("t").unwrap().partition(p).unwrap())
        .collect();
    for p in &old {
        p.append(&[rec("old")]).unwrap();
        p.flush().unwrap();
    }
    let deleter = {
        let store = store.clone();
        std::thread::Builder::new()
            .name(DELETER.into())
            .spawn(move || {
                events_tx
                    .send(Deleter::Done(store.delete_topic("t")))
                    .unwrap()
            })
            .unwrap()
    };
    let at = match recv(&events, "the delete") {
        Deleter::Parked(op, path, intent_delete, dirs_left) => (op, path, intent_delete, dirs_left),
        Deleter::Done(r) => {
            r.unwrap();
            deleter.join().unwrap();
            return None;
        }
    };
    let here = format!("delete parked before {:?} {}", at.0, at.1.display());
    // The create starts while the delete is parked; it must wait for the whole delete.
    let (created_tx, created) = channel();
    let creator = {
        let store = store.clone();
        std::thread::Builder::new()
            .name(CREATOR.into())
            .spawn(move || {
                created_tx.send(None).unwrap();
                created_tx
                    .send(Some(store.create_topic("t", config)))
                    .unwrap();
            })
            .unwrap()
    };
    assert!(recv(&created, "the create's start").is_none());
    release.send(()).unwrap();
    match recv(&events, "the released delete") {
        Deleter::Done(r) => r.unwrap_or_else(|e| panic!("{here}: delete_topic: {e}")),
        Deleter::Parked(..) => unreachable!("parked once"),
    }
    recv(&created, "the create")
        .unwrap()
        .unwrap_or_else(|e| panic!("{here}: create_topic: {e}"));
    deleter.join().unwrap();
    creator.join().unwrap();

    let while_parked = race.while_parked.lock().unwrap().clone();
    assert!(
        while_parked.is_empty(),
        "{here}: the create ran during the delete: {while_parked:?}"
    );
    let ops = race.ops.lock().unwrap().clone();
    let last_delete = ops.iter().rposition(|(t, ..)| *t == DELETER).unwrap();
    let first_create = ops.iter().position(|(t, ..)| *t == CREATOR);
    assert!(
        first_create.is_some_and(|c| c > last_delete),
        "{here}: the create's file operations must all follow the delete's: {ops:?}"
    );
    // Handles to the deleted topic stay closed; the new topic is empty and writable.
    assert!(
        matches!(old[0].append(&[rec("late")]), Err(Error::Closed { .. })),
        "{here}"
    );
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_count(), RACE_PARTITIONS, "{here}");
    for p in 0..RACE_PARTITIONS {
        let part = t.partition(p).unwrap();
        assert_eq!(
            (part.log_start_offset(), part.log_end_offset()),
            (0, 0),
            "{here}: new topic t-{p} is not empty"
        );
        assert_eq!(part.append(&[rec("new")]).unwrap().base_offset, 0);
        assert_eq!(part.flush().unwrap(), 1);
    }
    let crashed = fs.crash_image(CrashImage::DropAll);
    store.close().unwrap();
    drop((t, old, store));
    check_new_topic_survives(&fs, &format!("{here}, closed and reopened"));
    check_new_topic_survives(&crashed, &format!("{here}, crashed after the flush"));
    Some(at)
}

/// A `create_topic` that starts while `delete_topic` of the same name runs waits for the
/// whole delete (topic changes are serialized), and the new topic is whole: every
/// partition empty and writable, its flushed records survive a reopen and a crash, and
/// no file of it is touched by the delete. (delete_topic once dropped the name from the
/// map before removing the directories and the metadata file, so such a create could
/// succeed and then lose its metadata or directories to the running delete.)
///
/// The delete is parked before each of its file operations in turn (with a hook, not a
/// race of two loops), the create started meanwhile, then the delete released.
#[test]
fn delete_racing_create_of_the_same_name_keeps_the_new_topic_whole() {
    let mut points = Vec::new();
    while let Some(at) = race_at(points.len()) {
        points.push(at);
    }
    // Among them the points that matter: the deletion decided (its intent durable in
    // the metadata file) and no directory removed yet; some directories removed and
    // some not; every directory removed but the metadata file not yet.
    let seen = |dirs: &dyn Fn(i32) -> bool| {
        points
            .iter()
            .any(|(_, _, intent_delete, left)| *intent_delete && dirs(*left))
    };
    assert!(seen(&|left| left == RACE_PARTITIONS), "{points:?}");
    assert!(
        seen(&|left| left > 0 && left < RACE_PARTITIONS),
        "{points:?}"
    );
    assert!(seen(&|left| left == 0), "{points:?}");
}

/// A 249-character name is legal (topic.rs:267), but `<name>.properties.tmp` is 264
/// bytes: create_topic fails on a real file system (ENAMETOOLONG) after creating the
/// partition directories.
#[test]
fn longest_legal_topic_name_can_be_created_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let name = "x".repeat(249);
    store
        .create_topic(&name, TopicConfig::default())
        .expect("a 249-character topic name is valid but cannot be created");
}

/// close() marks the store closed but keeps the directory lock until the last clone is
/// dropped, unlike Log::close (which releases it "so it can be opened again").
#[test]
fn close_releases_the_directory_lock() {
    let fs = SimFs::new();
    let store = sim_store_maintained(&fs).unwrap();
    let _clone = store.clone();
    store.close().unwrap();
    sim_store_maintained(&fs).expect("reopen after close() while a clone is alive");
}

/// A topic handle taken before the store closed, or before its topic was deleted,
/// hands out no partition: `Closed` (it returned a handle that then failed every call).
#[test]
fn a_topic_handle_of_a_closed_store_or_deleted_topic_answers_closed() {
    let (_fs, store) = sim_topic_t(2);
    store.create_topic("gone", TopicConfig::default()).unwrap();
    let (t, gone) = (store.topic("t").unwrap(), store.topic("gone").unwrap());
    t.partition(1).unwrap();
    store.delete_topic("gone").unwrap();
    assert!(matches!(gone.partition(0), Err(Error::Closed { .. })));
    t.partition(1).unwrap();
    store.close().unwrap();
    for p in [0, 1] {
        let r = t.partition(p);
        assert!(matches!(r, Err(Error::Closed { .. })), "{p}: {r:?}");
    }
    assert!(matches!(t.partition(2), Err(Error::NotFound { .. })));
}

/// A partition of an open store cannot be opened as a standalone `Log` (the store's
/// partitions take no lock of their own; the store's lock covers them), and a store
/// cannot open while one of its partitions is open as a `Log`.
#[test]
fn a_partition_is_never_open_as_a_log_and_in_a_store_at_once() {
    use streamlog::log::{Log, LogConfig};
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let err = Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    store.close().unwrap();
    drop(store);
    let log = Log::open(tmp.path().join("t-0"), LogConfig::default()).unwrap();
    assert!(matches!(Store::open(tmp.path()), Err(Error::Locked { .. })));
    log.close().unwrap();
    Store::open(tmp.path()).unwrap();
}

/// Everything a store does with its files (appends, rolls, Acks::All fsyncs, compaction's
/// rename swaps, retention's removals, recovery) under a descriptor limit of 3, so files
/// are closed and reopened all the time: nothing acknowledged is lost at a power cut,
/// compaction keeps each key's latest value, and maintenance reports no error.
#[test]
fn a_store_under_a_tiny_descriptor_limit_loses_nothing() {
    use std::collections::BTreeMap;
    use streamlog::{Acks, ProducerConfig, ProducerRecord};
    let open = |fs: &SimFs| {
        sim_store_with(
            fs,
            StoreConfig::default()
                .max_open_files(3)
                .background_maintenance(false),
        )
        .unwrap()
    };
    let fs = SimFs::new();
    let store = open(&fs);
    store
        .create_topic(
            "events",
            TopicConfig::default()
                .partitions(3)
                .segment_bytes(1024)
                .retention_bytes(4096),
        )
        .unwrap();
    store
        .create_topic(
            "profiles",
            TopicConfig::default()
                .partitions(2)
                .segment_bytes(1024)
                .cleanup_policy(CleanupPolicy::Compact)
                .min_cleanable_dirty_ratio(0.01),
        )
        .unwrap();
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .unwrap();
    let mut acked = Vec::new();
    let mut latest = BTreeMap::new();
    for i in 0..400 {
        let event = format!("event-{i}");
        let m = producer
            .send(
                ProducerRecord::new("events")
                    .key(format!("e{}", i % 7))
                    .value(event.clone()),
            )
            .unwrap()
            .wait()
            .unwrap();
        acked.push((m.partition, m.offset, event));
        let key = format!("user-{}", i % 10);
        let profile = format!("profile-{i}");
        let m = producer
            .send(
                ProducerRecord::new("profiles")
                    .key(key.clone())
                    .value(profile.clone()),
            )
            .unwrap()
            .wait()
            .unwrap();
        latest.insert(key, (m.partition, profile));
    }
    let report = store.run_maintenance().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.segments_deleted > 0, "retention ran: {report:?}");
    assert!(
        report.partitions_compacted > 0,
        "compaction ran: {report:?}"
    );

    let check = |store: &Store| {
        let events = store.topic("events").unwrap();
        for (p, offset, value) in &acked {
            let part = events.partition(*p).unwrap();
            if *offset < part.log_start_offset() {
                continue; // deleted by retention
            }
            let recs = part.read(*offset, 1).unwrap();
            let r = recs.iter().find(|r| r.offset == *offset).unwrap();
            assert_eq!(r.value.as_deref(), Some(value.as_bytes()));
        }
        let profiles = store.topic("profiles").unwrap();
        let mut seen = BTreeMap::new();
        for p in 0..2 {
            let part = profiles.partition(p).unwrap();
            let mut at = part.log_start_offset();
            while at < part.log_end_offset() {
                let recs = part.read(at, 1 << 20).unwrap();
                for r in &recs {
                    let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
                    let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
                    seen.insert(key, (p, value));
                }
                at = recs.last().unwrap().offset + 1;
            }
        }
        assert_eq!(seen, latest, "each key's latest value");
    };
    check(&store);
    let image = fs.crash_image(CrashImage::DropAll);
    drop(producer);
    store.close().unwrap();
    check(&open(&fs));
    check(&open(&image));
}

/// A read that finds a sealed segment's deferred index damaged rebuilds it, in memory
/// and in its files. A read that outlasts `close` must not write them after it: the
/// store's files are then another opener's. The read is parked just before it reads the
/// index while the store closes.
#[test]
fn a_read_outlasting_close_does_not_rewrite_an_index_after_it() {
    const READER: &str = "reader";
    let fs = SimFs::new();
    let config = TopicConfig::default()
        .segment_bytes(1024)
        .index_interval_bytes(64);
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", config).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    // Rising timestamps: the time index's last entry names the segment's last batch, so
    // the open reads no offset-index entry below it.
    for i in 0..40 {
        let r = Record::new(1_700_000_000_000 + i, Some("k"), Some(format!("v{i}")));
        p.append(&[r]).unwrap();
    }
    store.close().unwrap();
    // Two entries of the first index swapped: its last entry (checked at open) holds,
    // the whole file (checked at the first read below it) does not.
    let (path, mut index) = fs
        .files(Path::new("/"))
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| {
            p.to_string_lossy()
                .ends_with("t-0/00000000000000000000.index")
        })
        .map(|p| (p.clone(), fs.read_file(&p).unwrap()))
        .unwrap();
    assert!(index.len() >= 24, "three entries at least");
    index[..16].rotate_left(8);
    fs.write_file(&path, index);

    let closed = Arc::new(AtomicBool::new(false));
    let after_close = Arc::new(Mutex::new(Vec::<(Op, PathBuf)>::new()));
    let (parked_tx, parked) = channel();
    let (release, release_rx) = channel::<()>();
    let (parked_tx, release_rx) = (Mutex::new(parked_tx), Mutex::new(release_rx));
    let hooks = {
        let (closed, after_close, index_path) = (closed.clone(), after_close.clone(), path.clone());
        Hooks {
            before_op: Box::new(move |op, path| {
                if closed.load(Ordering::Acquire) {
                    after_close.lock().unwrap().push((op, path.to_path_buf()));
                }
                if op == Op::Read
                    && path == index_path
                    && std::thread::current().name() == Some(READER)
                {
                    parked_tx.lock().unwrap().send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                }
            }),
            ..Hooks::default()
        }
    };
    let store = intercepted_store(&fs, hooks);
    let p = store.topic("t").unwrap().partition(0).unwrap();
    // A write after the clean open: the log is no longer untouched.
    p.append(&[rec("after")]).unwrap();
    let reader = std::thread::Builder::new()
        .name(READER.into())
        .spawn(move || p.read(3, 1 << 10).map(|r| r.len()))
        .unwrap();
    recv(&parked, "the reader parked");
    let closing = store.close();
    closed.store(true, Ordering::Release);
    release.send(()).unwrap();
    let read = reader.join().unwrap();
    closing.unwrap();
    assert!(
        matches!(read, Ok(_) | Err(Error::Closed { .. })),
        "the read: {read:?}"
    );
    let after = after_close.lock().unwrap().clone();
    assert!(
        after
            .iter()
            .all(|(op, _)| !matches!(op, Op::Write | Op::Sync | Op::SetLen | Op::RemoveFile)),
        "file operations after close: {after:?}"
    );
}

/// From the DDL review: an interrupted `add_partitions` is rolled back at the next open,
/// but a new partition directory holding a file not the store's (a `.DS_Store`, a
/// user's copy) is left alone, still naming the topic in its `partition.metadata`: that
/// open succeeded, and every later one refused the store (a partition beyond the
/// topic's count). The directory left alone no longer names the topic.
#[test]
fn a_rolled_back_grow_leaves_no_claim_behind() {
    let fs = SimFs::new();
    {
        let store = sim_store(&fs).unwrap();
        store.create_topic("t", TopicConfig::default()).unwrap();
        store.close().unwrap();
    }
    // A crash while adding partition 1: the intent and the new directory are there.
    let meta = Path::new("/store/.topics/t");
    let mut text = fs.read_file(meta).unwrap();
    text.extend_from_slice(b"intent=grow:2\n");
    fs.write_file(meta, text);
    let claim = fs
        .read_file(Path::new("/store/t-0/partition.metadata"))
        .unwrap();
    fs.write_file(Path::new("/store/t-1/partition.metadata"), claim);
    put_user_file(&fs, "/store/t-1/.DS_Store", b"finder");
    for round in 0..2 {
        let store = sim_store(&fs).unwrap();
        let t = store.topic("t").unwrap();
        assert_eq!(t.partition_count(), 1, "round {round}");
        assert!(
            store
                .recovery_report()
                .directories_left_alone
                .contains(&Path::new("/store/t-1").to_path_buf()),
            "round {round}"
        );
        store.close().unwrap();
    }
    assert_eq!(
        fs.read_file(Path::new("/store/t-1/.DS_Store")).unwrap(),
        b"finder"
    );
}

/// From a review: each open synced the directories it made and, for one already there,
/// only inside the store (`.topics`'s parent). A store whose directory a process had
/// created, dying before it synced the entry in `/`, never got that entry synced by a
/// later open: a power cut could lose the whole store, acknowledged records included.
/// Every open now syncs the store directory's own entry.
#[test]
fn an_open_makes_the_store_directory_itself_durable() {
    let fs = SimFs::new_strict_dirs();
    // What a process that died right after creating them left: nothing synced.
    fs.create_dir_all(Path::new("/store/.topics")).unwrap();
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1, Some("k"), Some("v"))])
        .unwrap();
    part.flush().unwrap();
    let image = fs.crash_image(CrashImage::DropAll);
    let store = sim_store(&image).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(part.log_end_offset(), 1, "the flushed record");
}

/// From a review: `wait_for` looked at the log end before whether the partition was
/// closed, so a handle to a deleted topic said its old records existed; and an offset
/// below the log start (records deleted) counted as existing too, though a read of it
/// is `OffsetOutOfRange`. Both say no at once now.
#[test]
fn wait_for_says_no_for_a_deleted_topic_and_below_the_log_start() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    p.append(&[rec("a"), rec("b"), rec("c")]).unwrap();
    assert!(p.wait_for(1, Duration::ZERO));
    store.delete_records("t", 0, 2).unwrap();
    assert!(!p.wait_for(1, Duration::ZERO), "deleted by delete_records");
    assert!(!p.wait_for(-1, Duration::ZERO));
    assert!(p.wait_for(2, Duration::ZERO));
    store.delete_topic("t").unwrap();
    assert!(!p.wait_for(2, Duration::ZERO), "its topic is gone");
}

/// From a review: a close racing (or following) one that failed returned Ok, as if the
/// store had closed cleanly; it returns the first close's error now.
#[test]
fn a_close_after_a_failed_close_returns_its_error() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1, None::<&[u8]>, Some("v"))])
        .unwrap();
    // Every file operation fails from now on: the close cannot sync the record.
    fs.inject(Fault::Eio, fs.op_count() + 1, true);
    let first = store.close().expect_err("the close could not sync");
    let again = store.clone().close().expect_err("a second close");
    assert_eq!(again.to_string(), first.to_string());
}

/// From a review: deleting a topic removes each partition's files and then fsyncs its
/// directory before `partition.metadata` goes; a partition whose log was poisoned (a
/// failed fsync, maybe of that very directory) had it fsync'd again, a retried fsync
/// whose success says nothing. Its deletion is decided as before and its files go, but
/// its directory and `partition.metadata` wait for the next open, and so does the
/// name.
#[test]
fn deleting_a_poisoned_topic_leaves_its_directory_to_the_next_open() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    let two = TopicConfig::default().partitions(2);
    store.create_topic("t", two.clone()).unwrap();
    let part = store.topic("t").unwrap().partition(1).unwrap();
    part.append(&[Record::new(1, None::<&[u8]>, Some("v"))])
        .unwrap();
    fs.inject(Fault::Eio, fs.op_count() + 1, false);
    assert!(part.flush().is_err(), "the fsync failed");
    store.delete_topic("t").unwrap();
    assert!(matches!(store.topic("t"), Err(Error::NotFound { .. })));
    let exists = |p: &str| FileSystem::exists(&fs, Path::new(p)).unwrap();
    assert!(
        !exists("/store/t-0"),
        "a partition not poisoned goes at once"
    );
    // The poisoned one's files go (their space is free); its partition.metadata, whose
    // removal needs its directory fsync'd first, is left to the next open.
    let left = FileSystem::list_dir(&fs, Path::new("/store/t-1")).unwrap();
    assert_eq!(left, ["partition.metadata"]);
    assert!(matches!(
        store.create_topic("t", two.clone()),
        Err(Error::Poisoned { .. })
    ));
    store.close().unwrap();
    let store = sim_store(&fs).unwrap();
    assert!(!exists("/store/t-0") && !exists("/store/t-1"));
    assert!(matches!(store.topic("t"), Err(Error::NotFound { .. })));
    store.create_topic("t", two).unwrap();
}
