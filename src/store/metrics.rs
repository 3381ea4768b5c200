//! [`Store::metrics`]: a snapshot of what the store's clients, its syncs and its
//! maintenance did, under Kafka's metric names where Kafka has one; with the `metrics`
//! feature, `Store::publish_metrics` hands it to the `metrics` crate's facade.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Store;
use crate::catalog::{Catalog, ClientStats, Counter};
use crate::consumer::CommittedOffset;
use crate::error::Result;
use crate::fs::LatencyHistogram;
use crate::groups::Coordinator;
use crate::topic::TopicPartition;

/// Rates cover about the last minute, as Kafka's (two samples of 30 s).
const WINDOW: Duration = Duration::from_secs(60);
/// Snapshots closer together than this share one sample.
const MIN_SAMPLE_GAP: Duration = Duration::from_secs(1);

/// The counters a rate is kept of, in this order.
const RATED: [Counter; 6] = [
    Counter::RecordsSent,
    Counter::BytesSent,
    Counter::RecordErrors,
    Counter::RecordsConsumed,
    Counter::BytesConsumed,
    Counter::Commits,
];
/// Plus the sync count, last.
type Totals = [u64; RATED.len() + 1];

/// Totals sampled at earlier snapshots (and at open): a rate is the change since the
/// oldest sample inside the window.
#[derive(Debug)]
pub(super) struct RateWindow {
    opened: Instant,
    samples: Mutex<VecDeque<(Instant, Totals)>>,
    /// What the last publish of this store open gave the `metrics` facade.
    #[cfg(feature = "metrics")]
    published: Mutex<Published>,
}

/// A published series: its name and labels.
#[cfg(feature = "metrics")]
type SeriesKey = (&'static str, Vec<(&'static str, String)>);

/// The counters' totals and the gauges' series the last publish gave the facade.
#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
struct Published {
    counters: std::collections::HashMap<SeriesKey, u64>,
    gauges: std::collections::HashSet<SeriesKey>,
}

impl RateWindow {
    /// A window opening now on `catalog`'s totals so far: the syncs its open made (a
    /// directory fsync per partition after a crash) are not counted in the first rates.
    pub(super) fn opened_on(catalog: &Catalog) -> Self {
        let now = totals(catalog.stats(), catalog.sync_latency().count);
        Self::opened_at(Instant::now(), now)
    }

    fn opened_at(opened: Instant, totals: Totals) -> Self {
        RateWindow {
            opened,
            samples: Mutex::new(VecDeque::from([(opened, totals)])),
            #[cfg(feature = "metrics")]
            published: Mutex::new(Published::default()),
        }
    }
}

impl RateWindow {
    /// Per-second rates of `now_totals` over the window, and the span they cover.
    fn rates(
        &self,
        now: Instant,
        now_totals: &Totals,
    ) -> (Totals, Duration, [f64; RATED.len() + 1]) {
        let mut samples = self.samples.lock();
        // The base: the newest sample at least a window old (or the oldest there is).
        while samples.len() > 1 && now.saturating_duration_since(samples[1].0) >= WINDOW {
            samples.pop_front();
        }
        let (since, base) = samples[0];
        if samples
            .back()
            .is_none_or(|(t, _)| now.saturating_duration_since(*t) >= MIN_SAMPLE_GAP)
        {
            samples.push_back((now, *now_totals));
        }
        drop(samples);
        let span = now.saturating_duration_since(since);
        let secs = span.as_secs_f64();
        let rates = std::array::from_fn(|i| {
            if secs > 0.0 {
                now_totals[i].saturating_sub(base[i]) as f64 / secs
            } else {
                0.0
            }
        });
        (base, span, rates)
    }
}

/// What the store's producers did ([`StoreMetrics::producer`]), all producers together.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ProducerMetrics {
    /// Records appended (`record-send-total`).
    pub record_send_total: u64,
    /// Records appended per second over the window (`record-send-rate`).
    pub record_send_rate: f64,
    /// Bytes of the batches appended, as written, after compression (`byte-total`).
    pub byte_total: u64,
    /// Bytes per second over the window (`byte-rate`).
    pub byte_rate: f64,
    /// Mean bytes per appended batch since open (`batch-size-avg`).
    pub batch_size_avg: f64,
    /// Records whose batch failed to append or to sync (`record-error-total`).
    pub record_error_total: u64,
    /// Per second over the window (`record-error-rate`).
    pub record_error_rate: f64,
}

/// What the store's consumers did ([`StoreMetrics::consumer`]), all consumers together.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ConsumerMetrics {
    /// Records returned by polls (`records-consumed-total`).
    pub records_consumed_total: u64,
    /// Per second over the window (`records-consumed-rate`).
    pub records_consumed_rate: f64,
    /// Bytes of the batches polls read (`bytes-consumed-total`).
    pub bytes_consumed_total: u64,
    /// Per second over the window (`bytes-consumed-rate`).
    pub bytes_consumed_rate: f64,
    /// Offset commits (`commit-total`).
    pub commit_total: u64,
    /// Per second over the window (`commit-rate`).
    pub commit_rate: f64,
    /// The largest lag of any group on any partition (`records-lag-max`), from the
    /// groups' committed offsets: see [`StoreMetrics::lag`].
    pub records_lag_max: i64,
}

/// The store's syncs ([`StoreMetrics::log_flush`]): every `fdatasync` of a file and every
/// directory fsync (Kafka's `LogFlushRateAndTimeMs`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FlushMetrics {
    /// Syncs since open.
    pub total: u64,
    /// Per second over the window.
    pub rate: f64,
    /// How long they took.
    pub latency: LatencyHistogram,
}

/// Compaction and retention since open ([`StoreMetrics::maintenance`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceMetrics {
    /// Full maintenance passes (the thread's and `run_maintenance`'s).
    pub passes: u64,
    /// Partition compactions (the log cleaner's runs).
    pub cleaner_runs: u64,
    /// Bytes compaction read.
    pub cleaner_bytes_read: u64,
    /// Bytes compaction saved (read minus written).
    pub cleaner_bytes_saved: u64,
    /// Records compaction removed.
    pub cleaner_records_removed: u64,
    /// Segments retention deleted.
    pub retention_segments_deleted: u64,
    /// Bytes of those segments.
    pub retention_bytes_deleted: u64,
}

/// One partition's log ([`StoreMetrics::partitions`]): Kafka's `kafka.log:type=Log`
/// gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionMetrics {
    /// The partition.
    pub partition: TopicPartition,
    /// Bytes in its segment files (`Size`).
    pub size_bytes: u64,
    /// Its segments (`NumLogSegments`).
    pub segment_count: usize,
    /// `LogStartOffset`.
    pub log_start_offset: i64,
    /// `LogEndOffset`.
    pub log_end_offset: i64,
    /// Whether a failed fsync or write poisoned it: appends fail until the store is
    /// reopened. Counted in the store's `OfflinePartitionsCount` entry.
    pub poisoned: bool,
}

/// One group's lag ([`StoreMetrics::lag`]): as `kafka-consumer-groups --describe`,
/// from its committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupLag {
    /// The group.
    pub group_id: String,
    /// Each partition it committed an offset for, with its log end offset and lag.
    pub partitions: Vec<CommittedOffset>,
}

/// A snapshot of the store's metrics ([`Store::metrics`]).
///
/// Totals count from the store's open. Rates are per second over about the last
/// minute: the change since the oldest snapshot taken within the last 60 s (the
/// store's open for the first snapshot), so take snapshots at least once a minute for
/// rates over one minute. [`entries`](Self::entries) lists every figure under its Kafka
/// name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// Since the store was opened.
    pub uptime: Duration,
    /// What the rates were measured over.
    pub rate_window: Duration,
    /// All producers of the store.
    pub producer: ProducerMetrics,
    /// All consumers of the store.
    pub consumer: ConsumerMetrics,
    /// The store's syncs.
    pub log_flush: FlushMetrics,
    /// Compaction and retention.
    pub maintenance: MaintenanceMetrics,
    /// Every partition of every topic (internal ones included), by topic and number.
    pub partitions: Vec<PartitionMetrics>,
    /// Every group with committed offsets, by name.
    pub lag: Vec<GroupLag>,
}

/// One figure of [`StoreMetrics::entries`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricEntry {
    /// Kafka's name where it has one (`record-send-rate`, `records-lag`, `Size`), else
    /// a name in the same style.
    pub name: &'static str,
    /// What the figure is of: `topic`, `partition`, `group`, `quantile`.
    pub labels: Vec<(&'static str, String)>,
    /// A total (only ever grows while the store is open) rather than a gauge.
    pub counter: bool,
    /// The value (durations in seconds).
    pub value: f64,
}

fn entry(name: &'static str, counter: bool, value: f64) -> MetricEntry {
    MetricEntry {
        name,
        labels: Vec::new(),
        counter,
        value,
    }
}

fn partition_labels(tp: &TopicPartition) -> Vec<(&'static str, String)> {
    vec![
        ("topic", tp.topic().to_string()),
        ("partition", tp.partition().to_string()),
    ]
}

impl StoreMetrics {
    /// Every figure as a flat list of named, labelled values (what
    /// `Store::publish_metrics` publishes with the `metrics` feature).
    pub fn entries(&self) -> Vec<MetricEntry> {
        let p = &self.producer;
        let c = &self.consumer;
        let f = &self.log_flush;
        let m = &self.maintenance;
        let mut out = vec![
            entry("record-send-total", true, p.record_send_total as f64),
            entry("record-send-rate", false, p.record_send_rate),
            entry("byte-total", true, p.byte_total as f64),
            entry("byte-rate", false, p.byte_rate),
            entry("batch-size-avg", false, p.batch_size_avg),
            entry("record-error-total", true, p.record_error_total as f64),
            entry("record-error-rate", false, p.record_error_rate),
            entry(
                "records-consumed-total",
                true,
                c.records_consumed_total as f64,
            ),
            entry("records-consumed-rate", false, c.records_consumed_rate),
            entry("bytes-consumed-total", true, c.bytes_consumed_total as f64),
            entry("bytes-consumed-rate", false, c.bytes_consumed_rate),
            entry("commit-total", true, c.commit_total as f64),
            entry("commit-rate", false, c.commit_rate),
            entry("records-lag-max", false, c.records_lag_max as f64),
            entry("log-flush-total", true, f.total as f64),
            entry("log-flush-rate", false, f.rate),
            entry("log-flush-time-avg", false, f.latency.mean().as_secs_f64()),
            entry("log-flush-time-max", false, f.latency.max.as_secs_f64()),
            entry("maintenance-passes-total", true, m.passes as f64),
            entry("cleaner-runs-total", true, m.cleaner_runs as f64),
            entry(
                "cleaner-bytes-read-total",
                true,
                m.cleaner_bytes_read as f64,
            ),
            entry(
                "cleaner-bytes-saved-total",
                true,
                m.cleaner_bytes_saved as f64,
            ),
            entry(
                "cleaner-records-removed-total",
                true,
                m.cleaner_records_removed as f64,
            ),
            entry(
                "retention-segments-deleted-total",
                true,
                m.retention_segments_deleted as f64,
            ),
            entry(
                "retention-bytes-deleted-total",
                true,
                m.retention_bytes_deleted as f64,
            ),
        ];
        for q in [0.5, 0.99, 0.999] {
            let mut e = entry("log-flush-time", false, f.latency.quantile(q).as_secs_f64());
            e.labels.push(("quantile", q.to_string()));
            out.push(e);
        }
        let offline = self.partitions.iter().filter(|p| p.poisoned).count();
        out.push(entry("OfflinePartitionsCount", false, offline as f64));
        for part in &self.partitions {
            let labels = partition_labels(&part.partition);
            for (name, value) in [
                ("Size", part.size_bytes as f64),
                ("NumLogSegments", part.segment_count as f64),
                ("LogStartOffset", part.log_start_offset as f64),
                ("LogEndOffset", part.log_end_offset as f64),
            ] {
                let mut e = entry(name, false, value);
                e.labels.clone_from(&labels);
                out.push(e);
            }
        }
        for group in &self.lag {
            for o in &group.partitions {
                let mut e = entry("records-lag", false, o.lag as f64);
                e.labels = partition_labels(&o.partition);
                e.labels.push(("group", group.group_id.clone()));
                out.push(e);
            }
        }
        out
    }
}

fn totals(stats: &ClientStats, syncs: u64) -> Totals {
    let mut t = [0; RATED.len() + 1];
    for (slot, counter) in t.iter_mut().zip(RATED) {
        *slot = stats.get(counter);
    }
    t[RATED.len()] = syncs;
    t
}

impl Store {
    /// A snapshot of the store's metrics: what its producers and consumers did (records,
    /// bytes, errors, commits: totals and rates), each group's lag, every partition's
    /// size and segment count, its syncs (count, rate, latency histogram), and what
    /// compaction and retention did. Cheap enough to call every second; it reads no
    /// file.
    ///
    /// ```
    /// use streamlog::{ProducerConfig, ProducerRecord, Store, TopicConfig};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path())?;
    /// store.create_topic("clicks", TopicConfig::default())?;
    /// let producer = store.producer(ProducerConfig::default())?;
    /// producer.send(ProducerRecord::new("clicks").value("home"))?.wait()?;
    /// let m = store.metrics()?;
    /// assert_eq!(m.producer.record_send_total, 1);
    /// let e = m.entries().into_iter().find(|e| e.name == "record-send-total").unwrap();
    /// assert_eq!(e.value, 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `Closed`.
    pub fn metrics(&self) -> Result<StoreMetrics> {
        self.check_open()?;
        Ok(snapshot(
            &self.inner.catalog,
            &self.inner.groups,
            &self.inner.rates,
        ))
    }

    /// Publishes [`metrics`](Self::metrics) through the `metrics` crate's facade, to
    /// whatever recorder the application installed (Prometheus, StatsD, ..): totals as
    /// counters (each publish adds what was counted since the last one, so a counter
    /// counts on when the store is reopened in the same process), the rest as gauges,
    /// each named `streamlog.<entry name>` with its labels and a `store` label (the
    /// directory), so two stores of one process stay apart. A gauge of a topic or group
    /// deleted since the last publish of this open is set to 0 (one deleted while the
    /// store was closed keeps its last value in the recorder). The maintenance thread
    /// publishes after each full pass (every `maintenance_interval_ms`); call this for
    /// fresher figures. Sync latencies go to the histogram `streamlog.log-flush-time-seconds`
    /// (with the `store` label) as they happen. Needs the `metrics` feature.
    ///
    /// # Errors
    /// `Closed`.
    #[cfg(feature = "metrics")]
    pub fn publish_metrics(&self) -> Result<()> {
        self.check_open()?;
        publish(self.inner.catalog.dir(), &self.inner.rates, || {
            snapshot(&self.inner.catalog, &self.inner.groups, &self.inner.rates)
        });
        Ok(())
    }
}

/// The metrics of the store made of these parts.
pub(super) fn snapshot(
    catalog: &Catalog,
    groups: &Coordinator,
    window: &RateWindow,
) -> StoreMetrics {
    let stats = catalog.stats();
    let latency = catalog.sync_latency();
    let now = Instant::now();
    let now_totals = totals(stats, latency.count);
    let (_, span, rates) = window.rates(now, &now_totals);
    let rate = |c: Counter| RATED.iter().position(|r| *r == c).map_or(0.0, |i| rates[i]);
    let batches = stats.get(Counter::BatchesSent);
    let bytes_sent = stats.get(Counter::BytesSent);
    let mut partitions = Vec::new();
    for name in catalog.topic_names() {
        let Ok(topic) = catalog.describe_topic(&name) else {
            continue; // deleted meanwhile
        };
        partitions.extend(topic.partitions.into_iter().map(|p| PartitionMetrics {
            partition: TopicPartition::new(name.as_str(), p.partition),
            size_bytes: p.size_bytes,
            segment_count: p.segment_count,
            log_start_offset: p.log_start_offset,
            log_end_offset: p.log_end_offset,
            poisoned: p.poisoned.is_some(),
        }));
    }
    let lag: Vec<GroupLag> = groups
        .list()
        .into_iter()
        .filter_map(|group| {
            let d = groups.describe_with_lag(catalog, &group)?;
            Some(GroupLag {
                group_id: group,
                partitions: d.offsets,
            })
        })
        .filter(|g| !g.partitions.is_empty())
        .collect();
    let records_lag_max = lag
        .iter()
        .flat_map(|g| g.partitions.iter().map(|o| o.lag))
        .max()
        .unwrap_or(0);
    StoreMetrics {
        uptime: now.duration_since(window.opened),
        rate_window: span,
        producer: ProducerMetrics {
            record_send_total: stats.get(Counter::RecordsSent),
            record_send_rate: rate(Counter::RecordsSent),
            byte_total: bytes_sent,
            byte_rate: rate(Counter::BytesSent),
            batch_size_avg: if batches == 0 {
                0.0
            } else {
                bytes_sent as f64 / batches as f64
            },
            record_error_total: stats.get(Counter::RecordErrors),
            record_error_rate: rate(Counter::RecordErrors),
        },
        consumer: ConsumerMetrics {
            records_consumed_total: stats.get(Counter::RecordsConsumed),
            records_consumed_rate: rate(Counter::RecordsConsumed),
            bytes_consumed_total: stats.get(Counter::BytesConsumed),
            bytes_consumed_rate: rate(Counter::BytesConsumed),
            commit_total: stats.get(Counter::Commits),
            commit_rate: rate(Counter::Commits),
            records_lag_max,
        },
        log_flush: FlushMetrics {
            total: latency.count,
            rate: rates[RATED.len()],
            latency,
        },
        maintenance: MaintenanceMetrics {
            passes: stats.get(Counter::MaintenancePasses),
            cleaner_runs: stats.get(Counter::CleanerRuns),
            cleaner_bytes_read: stats.get(Counter::CleanerBytesRead),
            cleaner_bytes_saved: stats.get(Counter::CleanerBytesSaved),
            cleaner_records_removed: stats.get(Counter::CleanerRecordsRemoved),
            retention_segments_deleted: stats.get(Counter::RetentionSegmentsDeleted),
            retention_bytes_deleted: stats.get(Counter::RetentionBytesDeleted),
        },
        partitions,
        lag,
    }
}

/// Hands a snapshot to the `metrics` facade. Counters get what they counted since the
/// last publish of this store open (`window` remembers): a counter counts on across
/// reopens of a store in one process, and two publishers (the maintenance thread and
/// `publish_metrics`) never move it backwards. A gauge series published last time and
/// absent now (its topic or group deleted) is set to 0.
#[cfg(feature = "metrics")]
pub(super) fn publish(
    store: &std::path::Path,
    window: &RateWindow,
    snapshot: impl FnOnce() -> StoreMetrics,
) {
    let store = store.display().to_string();
    let series = |name: &str, labels: &[(&'static str, String)]| {
        let labels: Vec<metrics::Label> = std::iter::once(("store", store.clone()))
            .chain(labels.iter().cloned())
            .map(|(k, v)| metrics::Label::new(k, v))
            .collect();
        (format!("streamlog.{name}"), labels)
    };
    // The snapshot is taken under the lock: publishes follow one another, each with
    // figures newer than the last one's (a gauge never goes back to a stale value).
    let mut published = window.published.lock();
    let snapshot = snapshot();
    let mut gauges = std::collections::HashSet::new();
    for e in snapshot.entries() {
        let (name, labels) = series(e.name, &e.labels);
        let key = (e.name, e.labels);
        if e.counter {
            let total = e.value as u64;
            let last = published.counters.entry(key).or_insert(0);
            let added = total.saturating_sub(*last);
            // Also 0: the series exists from the first publish on. Counted as
            // published once the recorder took it (a recorder that panicked is given
            // it again at the next publish).
            metrics::counter!(name, labels).increment(added);
            *last = (*last).max(total);
        } else {
            metrics::gauge!(name, labels).set(e.value);
            gauges.insert(key);
        }
    }
    for (gone, labels) in published.gauges.difference(&gauges) {
        let (name, labels) = series(gone, labels);
        metrics::gauge!(name, labels).set(0.0);
    }
    published.gauges = gauges;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals_of(records: u64) -> Totals {
        let mut t = [0; RATED.len() + 1];
        t[0] = records;
        t
    }

    /// Snapshots every 30 s (the maintenance thread's default): each rate covers at
    /// least the last minute, from the newest sample at least 60 s old.
    #[test]
    fn rates_cover_at_least_a_minute_once_the_store_is_that_old() {
        let t0 = Instant::now();
        let w = RateWindow::opened_at(t0, [0; RATED.len() + 1]);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // 100 records/s for the first minute, then 10/s.
        let (_, span, r) = w.rates(at(30), &totals_of(3000));
        assert_eq!((span, r[0]), (Duration::from_secs(30), 100.0));
        let (_, span, r) = w.rates(at(60), &totals_of(6000));
        assert_eq!((span, r[0]), (Duration::from_secs(60), 100.0));
        let (_, span, r) = w.rates(at(90), &totals_of(6300));
        assert_eq!(span, Duration::from_secs(60), "from the sample at 30 s");
        assert_eq!(r[0], 55.0);
        let (_, span, r) = w.rates(at(120), &totals_of(6600));
        assert_eq!((span, r[0]), (Duration::from_secs(60), 10.0));
        // Snapshots closer than a second share a sample; a long gap keeps the last one.
        let (_, span, _) = w.rates(at(120) + Duration::from_millis(10), &totals_of(6600));
        assert_eq!(span, Duration::from_millis(60_010));
        let (_, span, r) = w.rates(at(600), &totals_of(6600));
        assert_eq!((span, r[0]), (Duration::from_secs(480), 0.0));
    }
}
