//! At-least-once under a power cut: what a crash image keeps (nothing unsynced, on the
//! simulated file system) never has a committed position ahead of the outputs and
//! changelog records that processing up to it wrote.

mod common;

use std::sync::Arc;

use common::*;
use streamlog::fs::{CrashImage, FileSystem, SimFs};
use streamlog::{IsolationLevel, Store, StoreConfig};
use streamlog_streams::{Consumed, Materialized, Produced, StreamsBuilder, StreamsConfig, serdes};

fn sim_store(fs: &SimFs) -> Store {
    let config = StoreConfig::default()
        .background_maintenance(false)
        .file_system(Arc::new(fs.clone()) as Arc<dyn FileSystem>);
    Store::open_with("/store", config).unwrap()
}

/// The positions' commit is fsync'd; the outputs and changelog records were sent under
/// `Acks::Leader` and were not: after a power cut the group's position said every input
/// record was processed while the output and the store had lost what processing them
/// wrote, and those records were never processed again.
#[test]
fn a_power_cut_keeps_no_position_ahead_of_what_processing_wrote() {
    let fs = SimFs::new();
    let image = {
        let store = sim_store(&fs);
        create_topics(&store, &[("in", 1), ("out", 1)]);
        produce(
            &store,
            "in",
            &[ev("a", 1, "x"), ev("b", 2, "y"), ev("a", 3, "z")],
        );
        store
            .topic("in")
            .unwrap()
            .partition(0)
            .unwrap()
            .flush()
            .unwrap();
        let b = StreamsBuilder::new();
        let s = b.stream("in", Consumed::with(serdes::string(), serdes::string()));
        s.map_values(|v| v.to_uppercase())
            .to("out", Produced::with(serdes::string(), serdes::string()));
        s.group_by_key().count(Materialized::named("counts"));
        let streams = run_caught_up(&store, b.build().unwrap(), StreamsConfig::new("app"));
        // The power goes while it runs, caught up.
        let image = fs.crash_image(CrashImage::DropAll);
        streams.close().unwrap();
        image
    };
    let store = sim_store(&image);
    let position: i64 = store
        .describe_group("app")
        .unwrap()
        .offsets
        .iter()
        .filter(|o| o.partition.topic() == "in")
        .map(|o| o.offset)
        .sum();
    assert_eq!(position, 3, "the commit was fsync'd");
    let out = read_all(&store, "out", IsolationLevel::ReadUncommitted);
    assert_eq!(
        out.len(),
        3,
        "the outputs of the records the position passed"
    );
    let changelog = read_all(
        &store,
        "app-counts-changelog",
        IsolationLevel::ReadUncommitted,
    );
    assert!(!changelog.is_empty(), "the store's changes");
}
