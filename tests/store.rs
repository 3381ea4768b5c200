//! Store and topic administration, persistence, and the Topic/Partition handles.
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::{CleanupPolicy, Error, Record, Store, StoreConfig, TopicConfig};

fn sim_store(fs: &SimFs) -> streamlog::Result<Store> {
    Store::open_with(
        "/store",
        StoreConfig::default().file_system(Arc::new(fs.clone()) as Arc<dyn FileSystem>),
    )
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
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
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
fn a_second_open_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert!(matches!(Store::open(tmp.path()), Err(Error::Locked { .. })));
    drop(store);
    Store::open(tmp.path()).unwrap();
}

#[test]
fn add_partitions_grows_and_persists() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
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
    let store = sim_store(&fs).unwrap();
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

#[test]
fn wait_for_wakes_on_append_and_times_out_otherwise() {
    let fs = SimFs::new();
    let store = sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let part = store.topic("t").unwrap().partition(0).unwrap();
    assert!(
        !part.wait_for(0, Duration::from_millis(20)),
        "nothing there yet"
    );
    let writer = part.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        writer.append(&[rec("x")]).unwrap();
    });
    assert!(
        part.wait_for(0, Duration::from_secs(30)),
        "woken by the append"
    );
    t.join().unwrap();
    assert!(part.wait_for(0, Duration::ZERO));
}

#[test]
fn crash_during_topic_changes_leaves_whole_topics_only() {
    let clean = SimFs::new();
    let workload = |fs: &SimFs| -> streamlog::Result<()> {
        let store = sim_store(fs)?;
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
        for mode in [
            CrashImage::KeepAll,
            CrashImage::DropAll,
            CrashImage::Random(k),
        ] {
            let img = fs.crash_image(mode);
            let store =
                sim_store(&img).unwrap_or_else(|e| panic!("crash after {k}, {mode:?}: {e}"));
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
                        store.list_topics().iter().any(|x| x == t),
                        "crash after {k}, {mode:?}: orphan {dir}"
                    );
                }
            }
        }
    }
}
