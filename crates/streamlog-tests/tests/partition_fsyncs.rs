//! Creating and closing many partitions shares fsyncs (issue 15, item 4): the store
//! directory is synced a fixed number of times however many partitions a topic gets,
//! and each partition directory is synced twice at creation (its metadata, then its
//! first files) and once at close (for its clean-shutdown marker). At close each
//! partition fsyncs four files: its segment, the durable position and the two indexes;
//! the marker's bytes are not synced (only its presence is read), and a recovery point
//! that would stay in the same segment is not rewritten. Counted on the simulated file
//! system.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::intercept::{Hooks, InterceptFs, Op};
use parking_lot::Mutex;
use streamlog::fs::{FileSystem, SimFs};
use streamlog::{Record, Store, StoreConfig, TopicConfig};

const PARTITIONS: i32 = 100;

type Counts = Arc<Mutex<HashMap<PathBuf, usize>>>;

fn count_at(counts: &Counts, dir: &Path) -> usize {
    counts.lock().get(dir).copied().unwrap_or(0)
}

/// A store at `/store` on the simulated file system, every operation seen by `hook`.
fn store_with(hook: impl Fn(Op, &Path) + Send + Sync + 'static, config: StoreConfig) -> Store {
    store_at(Path::new("/store"), hook, config)
}

/// A store at `dir` on the simulated file system, every operation seen by `hook`.
fn store_at(
    dir: &Path,
    hook: impl Fn(Op, &Path) + Send + Sync + 'static,
    config: StoreConfig,
) -> Store {
    let hooks = Hooks {
        before_op: Box::new(hook),
        ..Hooks::default()
    };
    let fs: Arc<dyn FileSystem> = Arc::new(InterceptFs::new(SimFs::new(), hooks));
    Store::open_with(dir, config.background_maintenance(false).file_system(fs)).unwrap()
}

#[test]
fn many_partitions_share_directory_fsyncs() {
    let counts: Counts = Arc::default();
    let file_syncs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let set_lens: Counts = Arc::default();
    let seen = counts.clone();
    let seen_files = file_syncs.clone();
    let seen_lens = set_lens.clone();
    let store = store_with(
        move |op, path| match op {
            Op::SyncDir => *seen.lock().entry(path.to_path_buf()).or_default() += 1,
            Op::Sync => seen_files.lock().push(path.to_path_buf()),
            Op::SetLen => *seen_lens.lock().entry(path.to_path_buf()).or_default() += 1,
            _ => {}
        },
        StoreConfig::default(),
    );
    let root = Path::new("/store");

    counts.lock().clear();
    store
        .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let root_syncs = count_at(&counts, root);
    assert!(
        root_syncs <= 3,
        "the store directory was synced {root_syncs} times for {PARTITIONS} partitions"
    );
    for p in 0..PARTITIONS {
        let n = count_at(&counts, &root.join(format!("t-{p}")));
        assert!(n <= 2, "t-{p} was synced {n} times at creation");
    }

    let topic = store.topic("t").unwrap();
    for p in 0..PARTITIONS {
        topic
            .partition(p)
            .unwrap()
            .append(&[Record::new(0, Some("k"), Some("v"))])
            .unwrap();
    }
    drop(topic);
    counts.lock().clear();
    file_syncs.lock().clear();
    set_lens.lock().clear();
    store.close().unwrap();
    for p in 0..PARTITIONS {
        let dir = root.join(format!("t-{p}"));
        let n = count_at(&counts, &dir);
        assert_eq!(n, 1, "t-{p} was synced {n} times at close");
        let mut files: Vec<String> = file_syncs
            .lock()
            .iter()
            .filter(|f| f.parent() == Some(dir.as_path()))
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000000.timeindex",
                "streamlog.durable"
            ],
            "t-{p}: files fsynced at close"
        );
        // The final time-index entry of a never-indexed segment does not extend the
        // file only for the trim to cut it back: one length change, the trim.
        let time_index = dir.join("00000000000000000000.timeindex");
        let lens = count_at(&set_lens, &time_index);
        assert_eq!(
            lens, 1,
            "t-{p}'s time index changed length {lens} times at close"
        );
    }
}

/// More partitions than descriptors: the cache closes files as the topic is created, and
/// a file with unsynced changes is fsync'd before its descriptor goes. A new partition's
/// index files are untouched until their first entry, so none of them is synced.
#[test]
fn partitions_created_past_the_descriptor_limit_sync_no_index_file() {
    let synced: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let seen = synced.clone();
    let store = store_with(
        move |op, path| {
            if op == Op::Sync {
                seen.lock().push(path.to_path_buf());
            }
        },
        StoreConfig::default().max_open_files(64),
    );
    synced.lock().clear();
    store
        .create_topic("t", TopicConfig::default().partitions(PARTITIONS))
        .unwrap();
    let synced = synced.lock();
    let indexes: Vec<&PathBuf> = synced
        .iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    assert!(indexes.is_empty(), "index files synced: {indexes:?}");
    // Each partition syncs its metadata, its segment and its durable position.
    let in_partitions = synced.iter().filter(|p| {
        p.parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d.to_string_lossy().starts_with("t-"))
    });
    assert_eq!(in_partitions.count(), 3 * PARTITIONS as usize, "{synced:?}");
}

/// A flush whose segment rolled records the durable position before it moves the
/// recovery point (see `durable.rs`): once, not a second time for its callers, which
/// recorded the same point again with a write and an fsync of their own.
#[test]
fn a_flush_across_a_roll_records_the_durable_position_once() {
    let durable_syncs = Arc::new(Mutex::new(0usize));
    let seen = durable_syncs.clone();
    let store = store_with(
        move |op, path| {
            if op == Op::Sync && path.ends_with("streamlog.durable") {
                *seen.lock() += 1;
            }
        },
        StoreConfig::default(),
    );
    store
        .create_topic("t", TopicConfig::default().segment_bytes(4096))
        .unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(1, None::<&[u8]>, Some("first"))])
        .unwrap();
    part.flush().unwrap();
    // Past a segment's worth: the active segment rolls before the next flush.
    for _ in 0..4 {
        part.append(&[Record::new(1, None::<&[u8]>, Some("x".repeat(2_000)))])
            .unwrap();
    }
    let before = *durable_syncs.lock();
    part.flush().unwrap();
    assert_eq!(*durable_syncs.lock() - before, 1);
}

/// A new store at a relative path syncs the working directory, which holds its entry:
/// the directory's parent is the empty path there, and no directory was synced for it,
/// so a power cut could lose the whole store after topics were created and records
/// acknowledged as durable.
#[test]
fn a_new_store_at_a_relative_path_syncs_the_working_directory() {
    let synced: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let seen = synced.clone();
    let store = store_at(
        Path::new("relative-store"),
        move |op, path| {
            if op == Op::SyncDir {
                seen.lock().push(path.to_path_buf());
            }
        },
        StoreConfig::default(),
    );
    store.close().unwrap();
    let synced = synced.lock();
    assert!(synced.contains(&PathBuf::new()), "{synced:?}");
}
