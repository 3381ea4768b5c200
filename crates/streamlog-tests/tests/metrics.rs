//! `Store::metrics` (issue 18, item 4): every figure checked against what the test did
//! and against the store's own descriptions (topic sizes, group lag, maintenance
//! reports); with the `metrics` feature, the same figures reach a `metrics` recorder.

mod common;

use std::sync::Arc;
use std::time::Duration;

use streamlog::fs::{Fault, SimFs};
use streamlog::log::ManualClock;
use streamlog::{
    Acks, CleanupPolicy, ConsumerConfig, Error, OffsetReset, ProducerConfig, ProducerRecord,
    Record, Store, StoreConfig, StoreMetrics, TopicConfig, TopicPartition,
};

const T0: i64 = 1_700_000_000_000;

fn store_in(dir: &std::path::Path) -> Store {
    Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap()
}

fn entry(m: &StoreMetrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = m
        .entries()
        .into_iter()
        .filter(|e| {
            e.name == name
                && labels
                    .iter()
                    .all(|(k, v)| e.labels.iter().any(|(ek, ev)| ek == k && ev == v))
        })
        .collect();
    assert_eq!(found.len(), 1, "one entry {name} {labels:?}: {found:?}");
    found[0].value
}

/// Sends, polls and a commit: the producer and consumer totals are the records and
/// batch bytes the test moved, the bytes match the partition's size on disk, and the
/// lag is the group's.
#[test]
fn client_totals_match_what_was_sent_read_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    store
        .create_topic("clicks", TopicConfig::default().partitions(1))
        .unwrap();
    let before = store.metrics().unwrap();
    assert_eq!(before.producer.record_send_total, 0);
    assert_eq!(before.consumer.records_consumed_total, 0);

    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .unwrap();
    for i in 0..50 {
        producer
            .send(
                ProducerRecord::new("clicks")
                    .key(format!("k{i}"))
                    .value("v"),
            )
            .unwrap()
            .wait()
            .unwrap();
    }
    let sent = store.metrics().unwrap();
    let size = store.describe_topic("clicks").unwrap().partitions[0].size_bytes;
    assert_eq!(sent.producer.record_send_total, 50);
    assert_eq!(
        sent.producer.byte_total, size,
        "every appended byte is a sent byte"
    );
    assert!(sent.producer.batch_size_avg > 0.0 && sent.producer.batch_size_avg <= size as f64);
    assert_eq!(sent.producer.record_error_total, 0);
    assert!(sent.producer.record_send_rate > 0.0, "{sent:?}");
    assert!(
        sent.log_flush.total > before.log_flush.total,
        "Acks::All syncs: {sent:?}"
    );
    assert!(sent.log_flush.latency.max > std::time::Duration::ZERO);
    assert!(sent.log_flush.latency.quantile(0.99) >= sent.log_flush.latency.quantile(0.5));
    let tp = TopicPartition::new("clicks", 0);
    let part = sent.partitions.iter().find(|p| p.partition == tp).unwrap();
    assert_eq!((part.log_end_offset, part.size_bytes), (50, size));
    assert_eq!(
        entry(&sent, "Size", &[("topic", "clicks"), ("partition", "0")]),
        size as f64
    );
    assert!(
        sent.partitions
            .iter()
            .any(|p| p.partition.topic() == "__consumer_offsets"),
        "internal topics are listed"
    );

    let mut consumer = store
        .consumer(
            ConsumerConfig::new("analytics")
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false),
        )
        .unwrap();
    consumer.subscribe(["clicks"]).unwrap();
    let mut got = 0;
    while got < 50 {
        got += consumer.poll(Duration::from_secs(5)).unwrap().len();
    }
    consumer.commit_sync().unwrap();
    let read = store.metrics().unwrap();
    assert_eq!(read.consumer.records_consumed_total, 50);
    assert_eq!(read.consumer.bytes_consumed_total, size);
    assert_eq!(read.consumer.commit_total, 1);
    assert_eq!(read.consumer.records_lag_max, 0);

    for _ in 0..7 {
        producer
            .send(ProducerRecord::new("clicks").value("late"))
            .unwrap()
            .wait()
            .unwrap();
    }
    let behind = store.metrics().unwrap();
    assert_eq!(behind.consumer.records_lag_max, 7);
    let lag = behind
        .lag
        .iter()
        .find(|g| g.group_id == "analytics")
        .unwrap();
    assert_eq!(lag.partitions.len(), 1);
    assert_eq!((lag.partitions[0].offset, lag.partitions[0].lag), (50, 7));
    assert_eq!(
        entry(
            &behind,
            "records-lag",
            &[
                ("group", "analytics"),
                ("topic", "clicks"),
                ("partition", "0")
            ]
        ),
        7.0
    );
    assert_eq!(entry(&behind, "record-send-total", &[]), 57.0);
    assert_eq!(entry(&behind, "commit-total", &[]), 1.0);
    store.close().unwrap();
    assert!(matches!(store.metrics(), Err(Error::Closed { .. })));
}

/// A batch whose append fails counts its records as errors, not as sent.
#[test]
fn failed_appends_count_as_record_errors() {
    let fs = SimFs::new();
    let store = common::sim_store(&fs).unwrap();
    store.create_topic("t", TopicConfig::default()).unwrap();
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    producer
        .send(ProducerRecord::new("t").value("ok"))
        .unwrap()
        .wait()
        .unwrap();
    fs.inject(Fault::Eio, fs.op_count() + 1, true);
    let failed = producer
        .send(ProducerRecord::new("t").value("lost"))
        .unwrap()
        .wait();
    assert!(failed.is_err(), "{failed:?}");
    fs.clear_faults();
    let m = store.metrics().unwrap();
    assert_eq!(m.producer.record_send_total, 1);
    assert_eq!(m.producer.record_error_total, 1);
}

/// A partition a failed fsync poisoned says so: through its handle, the topic's
/// description and the metrics (`OfflinePartitionsCount`); its neighbour does not, and
/// a reopen clears it.
#[test]
fn a_poisoned_partition_shows_in_describe_and_metrics() {
    let fs = SimFs::new();
    let store = common::sim_store(&fs).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let topic = store.topic("t").unwrap();
    let (p0, p1) = (topic.partition(0).unwrap(), topic.partition(1).unwrap());
    p0.append(&[Record::new(T0, Some("k"), Some("v"))]).unwrap();
    p1.append(&[Record::new(T0, Some("k"), Some("v"))]).unwrap();
    assert_eq!(
        entry(&store.metrics().unwrap(), "OfflinePartitionsCount", &[]),
        0.0
    );
    fs.inject(Fault::Eio, fs.op_count() + 1, false);
    assert!(p0.flush().is_err());
    fs.clear_faults();
    assert!(
        fs.failed_sync_count() > 0,
        "the fault struck the flush's fsync"
    );
    let reason = p0.poison_reason().expect("poisoned");
    assert!(p1.poison_reason().is_none());
    let err = p0
        .append(&[Record::new(T0, Some("k"), Some("v"))])
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned { .. }), "{err}");
    let d = store.describe_topic("t").unwrap();
    assert_eq!(d.partitions[0].poisoned.as_deref(), Some(reason.as_str()));
    assert_eq!(d.partitions[1].poisoned, None);
    let m = store.metrics().unwrap();
    let poisoned: Vec<bool> = m
        .partitions
        .iter()
        .filter(|p| p.partition.topic() == "t")
        .map(|p| p.poisoned)
        .collect();
    assert_eq!(poisoned, [true, false]);
    assert_eq!(entry(&m, "OfflinePartitionsCount", &[]), 1.0);
    drop((p0, p1, topic));
    drop(store);
    let store = common::sim_store(&fs).unwrap();
    let d = store.describe_topic("t").unwrap();
    assert!(d.partitions.iter().all(|p| p.poisoned.is_none()), "{d:?}");
    assert_eq!(
        entry(&store.metrics().unwrap(), "OfflinePartitionsCount", &[]),
        0.0
    );
}

/// Retention and compaction totals are the sums of the passes' reports.
#[test]
fn maintenance_totals_add_up_the_passes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default()
            .background_maintenance(false)
            .clock(clock.clone()),
    )
    .unwrap();
    store
        .create_topic(
            "events",
            TopicConfig::default()
                .segment_bytes(1024)
                .retention_ms(60_000),
        )
        .unwrap();
    store
        .create_topic(
            "profiles",
            TopicConfig::default()
                .segment_bytes(1024)
                .cleanup_policy(CleanupPolicy::Compact),
        )
        .unwrap();
    let events = store.topic("events").unwrap().partition(0).unwrap();
    let profiles = store.topic("profiles").unwrap().partition(0).unwrap();
    for i in 0..100i64 {
        let value = format!("v{i:030}");
        events
            .append(&[Record::new(T0, Some("k".to_string()), Some(value.clone()))])
            .unwrap();
        profiles
            .append(&[Record::new(
                T0,
                Some(format!("user-{}", i % 10)),
                Some(value),
            )])
            .unwrap();
    }
    let first = store.run_maintenance().unwrap();
    clock.advance(120_000);
    let second = store.run_maintenance().unwrap();
    let m = store.metrics().unwrap().maintenance;
    assert_eq!(m.passes, 2);
    let reports = [&first, &second];
    let sum =
        |f: fn(&streamlog::MaintenanceReport) -> u64| reports.iter().map(|r| f(r)).sum::<u64>();
    assert!(second.segments_deleted > 0, "{second:?}");
    assert!(first.partitions_compacted > 0, "{first:?}");
    assert_eq!(
        m.retention_segments_deleted,
        sum(|r| r.segments_deleted as u64)
    );
    assert_eq!(m.retention_bytes_deleted, sum(|r| r.bytes_reclaimed));
    assert_eq!(m.cleaner_runs, sum(|r| r.partitions_compacted as u64));
    assert_eq!(m.cleaner_bytes_read, sum(|r| r.bytes_compacted));
    assert_eq!(m.cleaner_bytes_saved, sum(|r| r.bytes_saved_by_compaction));
    assert_eq!(m.cleaner_records_removed, sum(|r| r.records_removed));
}

/// With the `metrics` feature: `publish_metrics` hands every entry to the installed
/// recorder (totals as counters, the rest as gauges), and syncs land in the latency
/// histogram as they happen.
#[cfg(feature = "metrics")]
#[test]
fn publish_reaches_the_metrics_recorder() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    store
        .create_topic("clicks", TopicConfig::default())
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        let part = store.topic("clicks").unwrap().partition(0).unwrap();
        part.append(&[Record::new(
            T0,
            Some("k".to_string()),
            Some("v".to_string()),
        )])
        .unwrap();
        part.flush().unwrap();
        let producer = store.producer(ProducerConfig::default()).unwrap();
        for _ in 0..3 {
            producer
                .send(ProducerRecord::new("clicks").value("v"))
                .unwrap()
                .wait()
                .unwrap();
        }
        store.publish_metrics().unwrap();
    });
    let published = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        published
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && label.is_none_or(|(k, v)| {
                        key.key().labels().any(|l| l.key() == k && l.value() == v)
                    })
            })
            .map(|(.., value)| value)
    };
    assert_eq!(
        find(
            "streamlog.record-send-total",
            Some(("store", dir.path().to_str().unwrap()))
        ),
        Some(&DebugValue::Counter(3))
    );
    let size = store.describe_topic("clicks").unwrap().partitions[0].size_bytes;
    match find("streamlog.Size", Some(("topic", "clicks"))) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), size as f64),
        other => panic!("Size gauge: {other:?}"),
    }
    match find("streamlog.log-flush-time-seconds", None) {
        Some(DebugValue::Histogram(samples)) => assert!(!samples.is_empty()),
        other => panic!("flush histogram: {other:?}"),
    }
}

/// From a review: counters were published as the totals of the store's open
/// (`absolute`), which start at 0 again when the store is reopened in the same process:
/// the recorder's counter stayed at the old total (or went back); gauges of a deleted
/// topic kept their last values for good; and the sync-latency histogram had no
/// `store` label, so two stores' latencies were one series.
#[cfg(feature = "metrics")]
#[test]
fn published_counters_count_on_across_a_reopen_and_deleted_series_go_to_zero() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let send = |store: &Store, n: usize| {
        let producer = store.producer(ProducerConfig::default()).unwrap();
        for _ in 0..n {
            producer
                .send(ProducerRecord::new("clicks").value("v"))
                .unwrap()
                .wait()
                .unwrap();
        }
    };
    metrics::with_local_recorder(&recorder, || {
        let store = store_in(dir.path());
        for t in ["clicks", "gone"] {
            store.create_topic(t, TopicConfig::default()).unwrap();
        }
        let gone = store.topic("gone").unwrap().partition(0).unwrap();
        gone.append(&[Record::new(T0, Some("k"), Some("v"))])
            .unwrap();
        send(&store, 5);
        store.publish_metrics().unwrap();
        store.publish_metrics().unwrap();
        store.delete_topic("gone").unwrap();
        store.publish_metrics().unwrap();
        store.close().unwrap();
        drop(store);
        let store = store_in(dir.path());
        send(&store, 1);
        store
            .topic("clicks")
            .unwrap()
            .partition(0)
            .unwrap()
            .flush()
            .unwrap();
        store.publish_metrics().unwrap();
    });
    let published = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: (&str, &str)| {
        published
            .iter()
            .find(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1)
            })
            .map(|(.., value)| value)
    };
    let store_label = ("store", dir.path().to_str().unwrap());
    assert_eq!(
        find("streamlog.record-send-total", store_label),
        Some(&DebugValue::Counter(6))
    );
    match find("streamlog.Size", ("topic", "gone")) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 0.0),
        other => panic!("the deleted topic's Size: {other:?}"),
    }
    assert!(
        find("streamlog.log-flush-time-seconds", store_label).is_some(),
        "the sync histogram names its store"
    );
}

/// A recorder that keeps what it is given, except that the first increment above 0 of
/// `streamlog.record-send-total` the maintenance thread hands it panics (an
/// application's recorder with a bug).
#[cfg(feature = "metrics")]
struct PanicsOnce {
    inner: metrics_util::debugging::DebuggingRecorder,
    panicked: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(feature = "metrics")]
struct PanickingCounter {
    inner: metrics::Counter,
    panicked: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(feature = "metrics")]
impl metrics::CounterFn for PanickingCounter {
    fn increment(&self, value: u64) {
        if value > 0
            && !self
                .panicked
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("the application's metrics recorder panicked");
        }
        self.inner.increment(value);
    }
    fn absolute(&self, value: u64) {
        self.inner.absolute(value);
    }
}

#[cfg(feature = "metrics")]
impl metrics::Recorder for PanicsOnce {
    fn describe_counter(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_counter(k, u, d);
    }
    fn describe_gauge(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_gauge(k, u, d);
    }
    fn describe_histogram(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_histogram(k, u, d);
    }
    fn register_counter(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Counter {
        let inner = self.inner.register_counter(k, m);
        let on_maintenance = std::thread::current().name() == Some("streamlog-maintenance");
        if !on_maintenance || k.name() != "streamlog.record-send-total" {
            return inner;
        }
        metrics::Counter::from_arc(Arc::new(PanickingCounter {
            inner,
            panicked: self.panicked.clone(),
        }))
    }
    fn register_gauge(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.inner.register_gauge(k, m)
    }
    fn register_histogram(
        &self,
        k: &metrics::Key,
        m: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.inner.register_histogram(k, m)
    }
}

/// With the `metrics` feature, the maintenance thread publishes after each full pass:
/// an application that installed a recorder sees the store's figures without calling
/// anything. A recorder that panicked once does not end it (from a review: the panic
/// ended the maintenance thread, and with it retention, background flushes and the
/// expiry of members, until the store was reopened), nor lose what it was handed.
#[cfg(feature = "metrics")]
#[test]
fn the_maintenance_thread_publishes() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The only global recorder of this test binary.
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    metrics::set_global_recorder(PanicsOnce {
        inner: recorder,
        panicked: panicked.clone(),
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().maintenance_interval_ms(1),
    )
    .unwrap();
    store
        .create_topic("published", TopicConfig::default())
        .unwrap();
    let producer = store.producer(ProducerConfig::default()).unwrap();
    for _ in 0..3 {
        let r = ProducerRecord::new("published").value("v");
        producer.send(r).unwrap().wait().unwrap();
    }
    // The publish that hands the recorder the three sends panics; a later one hands
    // them again (review: counted as published before the recorder took them, they
    // were lost for good).
    // (A snapshot takes the counts the recorder got since the one before.)
    let mut sent = 0;
    common::wait_until("the three sends, published", || {
        for (key, .., value) in snapshotter.snapshot().into_vec() {
            if let ("streamlog.record-send-total", DebugValue::Counter(n)) =
                (key.key().name(), value)
            {
                sent += n;
            }
        }
        assert!(sent <= 3, "{sent} sends published");
        sent == 3
    });
    common::wait_until("a maintenance pass that published the new topic", || {
        snapshotter
            .snapshot()
            .into_vec()
            .iter()
            .any(|(key, .., value)| {
                key.key().name() == "streamlog.LogEndOffset"
                    && key.key().labels().any(|l| l.value() == "published")
                    && matches!(value, DebugValue::Gauge(_))
            })
    });
    assert!(
        panicked.load(std::sync::atomic::Ordering::SeqCst),
        "the recorder panicked in an earlier publish"
    );
    store.close().unwrap();
}

/// The syncs a store's open made (two directory fsyncs at least; one per partition
/// after a crash) were counted in the first minute's flush rate, as if made since the
/// open: an idle store reported syncs per second it never made. The window starts on
/// the totals at the open's end now.
#[test]
fn the_opens_own_syncs_are_not_in_the_first_rates() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    store
        .create_topic("t", TopicConfig::default().partitions(8))
        .unwrap();
    store.close().unwrap();
    drop(store);
    let store = store_in(dir.path());
    let m = store.metrics().unwrap();
    assert!(m.log_flush.total > 0, "the open made syncs");
    assert_eq!(m.log_flush.rate, 0.0, "{:?}", m.log_flush);
    // A sync since the open counts.
    let part = store.topic("t").unwrap().partition(0).unwrap();
    part.append(&[Record::new(T0, Some("k"), Some("v"))])
        .unwrap();
    part.flush().unwrap();
    assert!(store.metrics().unwrap().log_flush.rate > 0.0);
}
