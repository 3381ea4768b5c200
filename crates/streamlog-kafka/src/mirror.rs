//! The running mirror: a thread per mirror, its progress, and how it stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use streamlog::{Store, TopicPartition};

use crate::config::{KafkaSinkConfig, KafkaSourceConfig};
use crate::error::{Error, Result};

/// What one run of a mirror did.
///
/// ```no_run
/// # let store = streamlog::Store::open("data")?;
/// # let config = streamlog_kafka::KafkaSinkConfig::default();
/// let stats = streamlog_kafka::Mirror::to_kafka(&store, config)?.stop()?;
/// println!("{} records copied", stats.records);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MirrorStats {
    /// Records the destination acknowledged in this run (Kafka's acks for the sink,
    /// appends to the store for the source).
    pub records: u64,
}

/// State shared by a mirror's thread, its Kafka callbacks and its handle.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    /// Per source partition, the offset after the last record the destination holds.
    pub(crate) positions: BTreeMap<TopicPartition, i64>,
    /// Records handed to the destination and not acknowledged yet (sink).
    pub(crate) in_flight: u64,
    /// Records acknowledged in this run.
    pub(crate) acknowledged: u64,
    /// The first delivery failure (sink); the mirror stops on it.
    pub(crate) failure: Option<Error>,
    /// The mirror's thread has ended.
    pub(crate) finished: bool,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records that the destination holds everything of `tp` before `next`.
    pub(crate) fn advance(&self, tp: &TopicPartition, next: i64, records: u64) {
        let mut s = self.state.lock();
        let p = s.positions.entry(tp.clone()).or_insert(next);
        *p = (*p).max(next);
        s.acknowledged += records;
        drop(s);
        self.changed.notify_all();
    }
}

/// Marks the mirror finished when its thread ends, however it ends.
struct FinishGuard(Arc<Shared>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.state.lock().finished = true;
        self.0.changed.notify_all();
    }
}

/// A running mirror between a [`Store`] and a Kafka cluster, copying in one direction on
/// its own thread.
///
/// Start one with [`to_kafka`](Self::to_kafka) or [`from_kafka`](Self::from_kafka); end
/// it with [`stop`](Self::stop) (flushes what is in flight, then commits progress) or
/// wait for a `stop_at_end` mirror with [`join`](Self::join). Dropping it stops it.
///
/// Every record copied carries its offset on the other side in a header
/// ([`SOURCE_OFFSET_HEADER`](crate::SOURCE_OFFSET_HEADER) in Kafka,
/// [`KAFKA_OFFSET_HEADER`](crate::KAFKA_OFFSET_HEADER) in the store), and a mirror starts
/// each partition right after the last record its destination holds. Because each
/// partition is copied in order and the destination holds a prefix of what was sent
/// after any crash, a restart neither loses nor repeats a record (but see the crate
/// docs for a sink restarted while Kafka still replicates the old run's last records).
///
/// ```no_run
/// use streamlog::Store;
/// use streamlog_kafka::{KafkaSinkConfig, Mirror};
/// let store = Store::open("data")?;
/// let mirror = Mirror::to_kafka(&store, KafkaSinkConfig {
///     bootstrap: "kafka-1:9092,kafka-2:9092".into(),
///     topics: vec!["clicks".into()],
///     ..KafkaSinkConfig::default()
/// })?;
/// // ... the application keeps producing to the store ...
/// let stats = mirror.stop()?;
/// println!("{} records copied", stats.records);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mirror {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<MirrorStats>>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("positions", &self.positions())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Mirror {
    /// Starts copying `config.topics` of `store` to Kafka (the sink).
    ///
    /// Before it returns: each Kafka topic is checked (created with the store topic's
    /// partition count when missing and `create_topics` is set), and each partition's
    /// start is found: right after the source offset in the header of the last record of
    /// the Kafka partition; for a Kafka partition without records, the offset committed
    /// to `group_id`, else `config.start`. Then a thread copies the records, partition to
    /// the same partition, with their key, value, headers and timestamp (a record without
    /// one, timestamp -1, gets the Kafka producer's clock; so does a timestamp of 0, the
    /// epoch, which librdkafka takes for "none"), through an idempotent producer that
    /// retries without a time limit.
    ///
    /// # Errors
    /// `InvalidConfig`; `UnknownTopic` for a topic the store lacks (or Kafka lacks when
    /// `create_topics` is off); `PartitionMismatch`; `ForeignRecord` if a Kafka partition
    /// ends with a record that has no source-offset header; `DestinationAhead` if that
    /// header names an offset past the store partition's end; `SourceReplaced` if the
    /// record came from another store topic of the name (its topic id header); `Kafka`
    /// when Kafka cannot be reached within `timeout_ms`; `Store`. The running mirror
    /// ends with `SourceRecreated` if a store topic is deleted and created again, and
    /// with `PartitionMismatch` if partitions are added to one (add them to the Kafka
    /// topic too, then start again).
    pub fn to_kafka(store: &Store, config: KafkaSinkConfig) -> Result<Mirror> {
        let shared = Arc::new(Shared::default());
        let run = crate::sink::Sink::start(store, config, shared.clone())?;
        Self::spawn("streamlog-kafka-sink", shared, move || run.run())
    }

    /// Starts copying Kafka topics into `store` (the source).
    ///
    /// Before it returns: each store topic is checked (created with the Kafka topic's
    /// partition count when missing), and each partition's start is found: right after
    /// the Kafka offset in the header of the last record of the store partition; for a
    /// store partition without records, the offset committed to the Kafka group, else
    /// `config.start`. Then a thread appends the records in Kafka's order, partition to
    /// the same partition, with their key, value, headers and timestamp.
    ///
    /// # Errors
    /// `InvalidConfig`; `UnknownTopic` for a topic Kafka lacks; `PartitionMismatch`;
    /// `ForeignRecord` if a store partition ends with a record that has no Kafka-offset
    /// header; `Kafka`; `Store`.
    pub fn from_kafka(store: &Store, config: KafkaSourceConfig) -> Result<Mirror> {
        let shared = Arc::new(Shared::default());
        let run = crate::source::Source::start(store, config, shared.clone())?;
        Self::spawn("streamlog-kafka-source", shared, move || run.run())
    }

    fn spawn(
        name: &str,
        shared: Arc<Shared>,
        body: impl FnOnce() -> Result<MirrorStats> + Send + 'static,
    ) -> Result<Mirror> {
        let guard = FinishGuard(shared.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _guard = guard;
                body()
            })
            .map_err(Error::Thread)?;
        Ok(Mirror {
            shared,
            thread: Some(thread),
        })
    }

    /// Per source partition, the offset after the last record the destination has
    /// acknowledged (the next offset to copy).
    ///
    /// ```no_run
    /// # let store = streamlog::Store::open("data")?;
    /// # let mirror = streamlog_kafka::Mirror::to_kafka(&store, Default::default())?;
    /// for (tp, next) in mirror.positions() {
    ///     println!("{tp}: copied up to {next}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared.state.lock().positions.clone()
    }

    /// Records the sink handed to Kafka that Kafka has not acknowledged yet (0 for a
    /// source, which appends to the store synchronously). A number that stays high
    /// while [`positions`](Self::positions) stand still means Kafka is not taking
    /// records (the sink retries them without limit).
    pub fn in_flight(&self) -> u64 {
        self.shared.state.lock().in_flight
    }

    /// Blocks until every partition in `targets` reached at least its offset in
    /// [`positions`](Self::positions), the mirror ended, or `timeout` passed. Returns
    /// whether the targets were reached.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use streamlog::TopicPartition;
    /// # let store = streamlog::Store::open("data")?;
    /// # let mirror = streamlog_kafka::Mirror::to_kafka(&store, Default::default())?;
    /// // Wait until Kafka holds everything partition 0 holds now.
    /// let end = store.topic("clicks")?.partition(0)?.log_end_offset();
    /// let target = [(TopicPartition::new("clicks", 0), end)].into_iter().collect();
    /// assert!(mirror.wait_for_positions(&target, Duration::from_secs(60)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_positions(
        &self,
        targets: &BTreeMap<TopicPartition, i64>,
        timeout: Duration,
    ) -> bool {
        let deadline = deadline_after(timeout);
        let mut s = self.shared.state.lock();
        loop {
            let reached = targets
                .iter()
                .all(|(tp, o)| s.positions.get(tp).is_some_and(|p| p >= o));
            if reached {
                return true;
            }
            if s.finished || self.shared.changed.wait_until(&mut s, deadline).timed_out() {
                return targets
                    .iter()
                    .all(|(tp, o)| s.positions.get(tp).is_some_and(|p| p >= o));
            }
        }
    }

    /// Whether the mirror's thread has ended (an error, or `stop_at_end`); then
    /// [`join`](Self::join) returns at once.
    ///
    /// ```no_run
    /// # let store = streamlog::Store::open("data")?;
    /// # let mirror = streamlog_kafka::Mirror::to_kafka(&store, Default::default())?;
    /// if mirror.is_finished() {
    ///     mirror.join()?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        self.shared.state.lock().finished
    }

    /// Stops the mirror: records already handed to the destination are flushed (the
    /// sink waits up to `timeout_ms` for Kafka's acknowledgements) and progress is
    /// committed. Records not copied yet are copied by the next run.
    ///
    /// # Errors
    /// The error that ended the mirror, if one did.
    pub fn stop(mut self) -> Result<MirrorStats> {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.changed.notify_all();
        self.wait()
    }

    /// Waits for the mirror to end on its own (`stop_at_end`, or an error).
    ///
    /// ```no_run
    /// use streamlog_kafka::{KafkaSourceConfig, Mirror};
    /// # let store = streamlog::Store::open("data")?;
    /// let config = KafkaSourceConfig {
    ///     bootstrap: "kafka-1:9092".into(),
    ///     topics: vec!["orders".into()],
    ///     stop_at_end: true,
    ///     ..KafkaSourceConfig::default()
    /// };
    /// Mirror::from_kafka(&store, config)?.join()?; // everything Kafka held at the end
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The error that ended the mirror, if one did.
    pub fn join(mut self) -> Result<MirrorStats> {
        self.wait()
    }

    fn wait(&mut self) -> Result<MirrorStats> {
        match self.thread.take() {
            None => Ok(MirrorStats::default()),
            Some(t) => t.join().unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Error::Panicked(msg))
            }),
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared
                .stop
                .store(true, std::sync::atomic::Ordering::Release);
            self.shared.changed.notify_all();
            if let Err(e) = self.wait() {
                log::warn!("mirror stopped with an error: {e}");
            }
        }
    }
}

/// `timeout` from now, or a year from now if that cannot be represented.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}
