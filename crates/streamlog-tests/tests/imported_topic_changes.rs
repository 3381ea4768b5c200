//! An imported topic keeps Kafka's topic id, which every one of Kafka's directories of
//! that topic names too: naming the id does not make a directory the store's. A change
//! rolled back (at once, or by the next open after a crash) removes only directories
//! that never held records, and a new partition's directory is created exclusively, so
//! a Kafka directory put in its place meanwhile is never adopted, rewritten or removed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::intercept::{Hooks, InterceptFs, Op};
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::log::{Log, LogConfig};
use streamlog::{Error, Store, StoreConfig, TopicConfig};

const KAFKA_ID: &str = "AAAAAAAAAAAAAAAAAAAAAQ";

/// The files of Kafka's partition `p` of `clicks` in `/store`: one record, and
/// `partition.metadata` naming Kafka's topic id (written by a `Log`, whose own files
/// are left out).
fn kafka_partition_files(p: i32) -> Vec<(PathBuf, Vec<u8>)> {
    partition_files(p, false)
}

/// As [`kafka_partition_files`], with the store's own files too (`with_store_files`:
/// a directory of another store that imported the same topic, which looks made by
/// this one).
fn partition_files(p: i32, with_store_files: bool) -> Vec<(PathBuf, Vec<u8>)> {
    let sim = SimFs::new();
    let dir = format!("/store/clicks-{p}");
    let log = Log::open_with_fs(Arc::new(sim.clone()), &dir, LogConfig::default()).unwrap();
    let mut b = streamlog::BatchBuilder::new();
    b.push(
        1_700_000_000_000,
        Some(b"k"),
        Some(format!("kafka {p}").as_bytes()),
        &[],
    )
    .unwrap();
    log.append(&mut b.finish().unwrap()).unwrap();
    log.close().unwrap();
    let meta = format!("version: 0\ntopic_id: {KAFKA_ID}\n");
    sim.write_file(
        &Path::new(&dir).join("partition.metadata"),
        meta.into_bytes(),
    );
    // Without the store's own files, as Kafka leaves a directory.
    let mut files = files_below(&sim, &dir);
    files.retain(|(path, _)| {
        let name = path.file_name().unwrap().to_str().unwrap();
        with_store_files || !name.starts_with("streamlog.") && name != ".lock"
    });
    files
}

/// Copies Kafka's partition `p` of `clicks` into `/store` of `sim`.
fn kafka_partition(sim: &SimFs, p: i32) {
    for (path, bytes) in kafka_partition_files(p) {
        sim.write_file(&path, bytes);
    }
}

/// Every file below `dir` with its bytes.
fn files_below(sim: &SimFs, dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    sim.files(Path::new(dir))
        .into_iter()
        .map(|(path, _)| {
            let bytes = sim.read_file(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn open(fs: Arc<dyn FileSystem>) -> streamlog::Result<Store> {
    Store::open_with(
        "/store",
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(fs),
    )
}

/// A store that imported Kafka's `clicks-0` and `clicks-1`, on a file system that runs
/// `at_third` (once) just before the store creates `clicks-2`.
fn imported(sim: &SimFs, at_third: impl Fn() + Send + Sync + 'static) -> Store {
    kafka_partition(sim, 0);
    kafka_partition(sim, 1);
    let armed = AtomicBool::new(true);
    let hooks = Hooks {
        before_op: Box::new(move |op, path| {
            let mkdir = matches!(op, Op::CreateDir | Op::CreateDirAll);
            if mkdir && path.ends_with("clicks-2") && armed.swap(false, Ordering::SeqCst) {
                at_third();
            }
        }),
        ..Hooks::default()
    };
    let store = open(Arc::new(InterceptFs::new(sim.clone(), hooks))).unwrap();
    let report = store
        .import_kafka_topic("clicks", TopicConfig::default())
        .unwrap();
    assert_eq!(report.topic_id.to_string(), KAFKA_ID);
    store
}

/// From a review: Kafka's `clicks-2` (naming the same id) put into the store while
/// `add_partitions` ran, after its names were checked: the grow's `create_dir_all`
/// took it for the new partition's. It is now refused as taken, and the roll-back
/// leaves it byte for byte (it holds records: not a directory the grow made).
#[test]
fn a_kafka_directory_that_appears_during_a_grow_is_neither_adopted_nor_removed() {
    let sim = SimFs::new();
    let planter = sim.clone();
    let store = imported(&sim, move || kafka_partition(&planter, 2));
    let err = store.add_partitions("clicks", 3).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(store.topic("clicks").unwrap().partition_count(), 2);
    let planted = kafka_partition_files(2);
    assert!(!planted.is_empty());
    assert_eq!(
        files_below(&sim, "/store/clicks-2"),
        planted,
        "Kafka's files, unchanged"
    );
}

/// From a review: a crash during `add_partitions` on an imported topic, then Kafka's
/// `clicks-2` copied in before the reopen. The open's roll-back of the grow took it
/// for the grow's own (it names the topic's id) and deleted Kafka's records. It is
/// left alone now, and listed.
#[test]
fn the_roll_back_of_a_grow_at_open_leaves_a_kafka_directory_with_records_alone() {
    // Kafka's directory, and one with the store's files too (which looks the store's:
    // only its records tell it is not the grow's).
    for with_store_files in [false, true] {
        roll_back_of_a_grow_at_open_leaves_a_directory_with_records_alone(with_store_files);
    }
}

fn roll_back_of_a_grow_at_open_leaves_a_directory_with_records_alone(with_store_files: bool) {
    let sim = SimFs::new();
    let crasher = sim.clone();
    let store = imported(&sim, move || {
        crasher.crash_after(crasher.mutating_op_count());
    });
    assert!(store.add_partitions("clicks", 3).is_err());
    assert!(sim.has_crashed());
    std::mem::forget(store);
    let image = sim.crash_image(CrashImage::KeepAll);
    for (path, bytes) in partition_files(2, with_store_files) {
        image.write_file(&path, bytes);
    }
    let planted = files_below(&image, "/store/clicks-2");
    assert!(!planted.is_empty());
    match open(Arc::new(image.clone())) {
        Ok(store) => {
            let report = store.recovery_report();
            assert!(
                report
                    .directories_left_alone
                    .iter()
                    .any(|d| d.ends_with("clicks-2")),
                "{report:?}"
            );
            assert_eq!(store.topic("clicks").unwrap().partition_count(), 2);
        }
        // A directory naming the topic beyond its count: refused, nothing removed.
        Err(e) => assert!(e.to_string().contains("clicks-2"), "{e}"),
    }
    assert_eq!(
        files_below(&image, "/store/clicks-2"),
        planted,
        "Kafka's files, unchanged"
    );
}

/// From a review: the roll-back of a grow took a Kafka directory of the topic whose
/// records had all expired (an empty segment at a later offset) for one the grow made,
/// and removed it. A new partition has no segment but an empty one at offset 0.
#[test]
fn the_roll_back_leaves_a_kafka_directory_whose_records_expired() {
    let sim = SimFs::new();
    let crasher = sim.clone();
    let store = imported(&sim, move || {
        crasher.crash_after(crasher.mutating_op_count());
    });
    assert!(store.add_partitions("clicks", 3).is_err());
    std::mem::forget(store);
    let image = sim.crash_image(CrashImage::KeepAll);
    let expired = [
        (
            "partition.metadata",
            format!("version: 0\ntopic_id: {KAFKA_ID}\n").into_bytes(),
        ),
        ("00000000000000000042.log", Vec::new()),
        ("leader-epoch-checkpoint", b"0\n1\n0 0\n".to_vec()),
    ];
    for (name, bytes) in &expired {
        image.write_file(&Path::new("/store/clicks-2").join(name), bytes.clone());
    }
    let planted = files_below(&image, "/store/clicks-2");
    assert_eq!(planted.len(), 3);
    if let Ok(store) = open(Arc::new(image.clone())) {
        assert_eq!(store.topic("clicks").unwrap().partition_count(), 2);
    }
    assert_eq!(files_below(&image, "/store/clicks-2"), planted);
}

/// From a review: an empty directory put where `create_topic` was about to make a
/// partition's was refused (`AlreadyExists`), and then removed by the create's
/// roll-back (an empty directory is taken for one a crash left right after its
/// creation). A directory found taken is not the change's to roll back.
#[test]
fn a_directory_found_taken_is_not_rolled_back() {
    let sim = SimFs::new();
    let planter = sim.clone();
    let armed = AtomicBool::new(true);
    let hooks = Hooks {
        before_op: Box::new(move |op, path| {
            if op == Op::CreateDir && path.ends_with("n-1") && armed.swap(false, Ordering::SeqCst) {
                planter.create_dir_all(path).unwrap();
            }
        }),
        ..Hooks::default()
    };
    let store = open(Arc::new(InterceptFs::new(sim.clone(), hooks))).unwrap();
    let err = store
        .create_topic("n", TopicConfig::default().partitions(2))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(store.topic("n").is_err());
    assert!(
        sim.exists(Path::new("/store/n-1")).unwrap(),
        "someone else's"
    );
    assert!(
        !sim.exists(Path::new("/store/n-0")).unwrap(),
        "the create's own"
    );
}

/// From an ownership hunt: an imported topic's deletion cut short after its directories
/// were gone (its intent still on disk), then Kafka's directory of the same topic
/// copied in before the reopen (to import it again). It names the topic's id and holds
/// only file names the store knows, so the open, finishing the deletion, removed
/// Kafka's records. A deletion removes only a directory holding the store's durable
/// position file (or nothing but its metadata) now; Kafka's is left alone and listed.
#[test]
fn finishing_a_deletion_at_open_leaves_a_kafka_directory_copied_in_alone() {
    let sim = SimFs::new();
    kafka_partition(&sim, 0);
    let crasher = sim.clone();
    let armed = AtomicBool::new(true);
    let hooks = Hooks {
        before_op: Box::new(move |op, path| {
            if matches!(op, Op::RemoveFile)
                && path.ends_with(".topics/clicks")
                && armed.swap(false, Ordering::SeqCst)
            {
                crasher.crash_after(crasher.mutating_op_count());
            }
        }),
        ..Hooks::default()
    };
    let store = open(Arc::new(InterceptFs::new(sim.clone(), hooks))).unwrap();
    store
        .import_kafka_topic("clicks", TopicConfig::default().retention_ms(-1))
        .unwrap();
    assert!(store.delete_topic("clicks").is_err());
    assert!(sim.has_crashed());
    std::mem::forget(store);
    let image = sim.crash_image(CrashImage::KeepAll);
    assert!(files_below(&image, "/store/clicks-0").is_empty(), "deleted");
    kafka_partition(&image, 0);
    let planted = files_below(&image, "/store/clicks-0");
    assert!(!planted.is_empty());
    let store = open(Arc::new(image.clone())).unwrap();
    let report = store.recovery_report();
    assert!(
        report
            .directories_left_alone
            .iter()
            .any(|d| d.ends_with("clicks-0")),
        "{report:?}"
    );
    assert!(store.topic("clicks").is_err(), "the deletion is finished");
    assert_eq!(
        files_below(&image, "/store/clicks-0"),
        planted,
        "Kafka's files, unchanged"
    );
}
