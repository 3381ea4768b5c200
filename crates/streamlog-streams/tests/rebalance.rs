//! Two instances of one application share its partitions (issue 17, item 3 and 5): the
//! second joins while the first runs, then the first leaves; each time the tasks move
//! with their state (restored from the changelogs), and the results stay exact.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use streamlog::{IsolationLevel, Store};
use streamlog_streams::{
    ProcessingGuarantee, RestoreProgress, Streams, StreamsConfig, TimeWindows,
};

const PARTITIONS: i32 = 4;

fn windows() -> TimeWindows {
    TimeWindows::of_size_and_grace(
        Duration::from_millis(WINDOW_MS as u64),
        Duration::from_secs(60),
    )
}

fn third(n: usize) -> Vec<Event> {
    (0..40)
        .map(|i| {
            let ts = (n * 40 + i) as i64 * 20_000;
            ev(
                &format!("user-{}", i % 7),
                ts,
                if i % 4 == 0 { "view" } else { "purchase" },
            )
        })
        .collect()
}

fn run(guarantee: ProcessingGuarantee) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    create_topics(
        &store,
        &[("raw-events", PARTITIONS), ("purchase-counts", PARTITIONS)],
    );
    let config = |client: &str| {
        StreamsConfig::new("shared")
            .client_id(client)
            .processing_guarantee(guarantee)
            .max_poll_records(9)
            .poll_ms(5)
    };
    let progress: Arc<Mutex<Vec<RestoreProgress>>> = Arc::default();
    let seen = Arc::clone(&progress);
    let start = |c: StreamsConfig| {
        let s = Streams::new(seeds_topology(windows(), |_, _| {}), c, &store).unwrap();
        s.start().unwrap();
        s
    };
    let mut input = third(0);
    produce(&store, "raw-events", &input);
    let a = start(config("a"));
    a.wait_until_caught_up(CATCH_UP).unwrap();

    let b = start(config("b").restore_listener(move |p| seen.lock().unwrap().push(p.clone())));
    b.wait_until_caught_up(CATCH_UP).unwrap();
    a.wait_until_caught_up(CATCH_UP).unwrap();
    let restored_by_b = b.metrics().restored;
    assert!(
        restored_by_b > 0,
        "b restored the state of the partitions it took"
    );
    assert!(
        progress
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.done && p.restored > 0),
        "restore progress was reported"
    );

    let more = third(1);
    produce(&store, "raw-events", &more);
    input.extend(more);
    a.wait_until_caught_up(CATCH_UP).unwrap();
    b.wait_until_caught_up(CATCH_UP).unwrap();
    assert!(
        b.metrics().processed > 0,
        "b processed records of its partitions"
    );
    let a_processed = a.metrics().processed;

    // a leaves; b takes everything back, with a's state.
    a.close().unwrap();
    let last = third(2);
    produce(&store, "raw-events", &last);
    input.extend(last);
    b.wait_until_caught_up(CATCH_UP).unwrap();
    assert!(b.metrics().restored > restored_by_b);

    let (model, _) = window_model(&input, PARTITIONS, windows(), |e| e.value == "purchase");
    let local: std::collections::BTreeMap<(String, i64), i64> = b
        .window_store::<String, i64>("purchase-counts-store")
        .unwrap()
        .all()
        .unwrap()
        .into_iter()
        .map(|(wk, n)| ((wk.key, wk.window.start), n))
        .collect();
    assert_eq!(local, model, "b's stores after the rebalances");
    b.close().unwrap();
    assert!(a_processed > 0);
    let isolation = match guarantee {
        ProcessingGuarantee::ExactlyOnce => IsolationLevel::ReadCommitted,
        ProcessingGuarantee::AtLeastOnce => IsolationLevel::ReadUncommitted,
    };
    let updates = count_updates(&read_all(&store, "purchase-counts", isolation));
    assert_exact_updates(&updates, &model);
}

#[test]
fn rebalancing_keeps_exactly_once_results_exact() {
    run(ProcessingGuarantee::ExactlyOnce);
}

#[test]
fn rebalancing_keeps_at_least_once_results_exact_without_failures() {
    run(ProcessingGuarantee::AtLeastOnce);
}
