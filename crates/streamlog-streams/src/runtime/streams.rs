//! [`Streams`]: a running application (Kafka's `KafkaStreams`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use streamlog::{
    CleanupPolicy, ConsumerConfig, IsolationLevel, Store, TopicConfig, TopicPartition,
};

use super::config::StreamsConfig;
use super::thread::{Coord, CoordState, Env, run_thread};
use crate::error::{Result, StreamsError, client};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore, local_parts};
use crate::store::{KvStore, Registry, WindowStore, changelog_topic};
use crate::topology::Topology;

/// The kinds of topics the runtime makes for itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Internal {
    /// `<application_id>-<name>-repartition`.
    Repartition,
    /// `<application_id>-<store>-changelog`.
    Changelog,
}

/// Where an application is in its life ([`Streams::state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// Its threads run.
    Running,
    /// A thread stopped on an error (the others keep running until `close`).
    Failed {
        /// What stopped it.
        reason: String,
    },
    /// Closed.
    Closed,
}

/// A stream-processing application over a [`Store`]: `config.threads` stream threads in
/// the consumer group `application_id`, each running the tasks (one per sub-topology
/// and input partition) of the partitions the group gives it. Instances with the same
/// `application_id` (and their own `client_id`s) share the work; when partitions move,
/// their tasks' state moves with them (restored from the changelogs).
///
/// ```
/// use std::time::Duration;
/// use streamlog::{Record, Store, TopicConfig};
/// use streamlog_streams::{serdes, Consumed, Materialized, Streams, StreamsBuilder, StreamsConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("words", TopicConfig::default())?;
/// store.topic("words")?.partition(0)?.append(&[
///     Record::new(1, Some("a"), Some("x")),
///     Record::new(2, Some("a"), Some("y")),
/// ])?;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("words", Consumed::with(serdes::string(), serdes::string()))
///     .group_by_key()
///     .count(Materialized::named("counts"));
/// let streams = Streams::new(builder.build()?, StreamsConfig::new("word-count"), &store)?;
/// streams.start()?;
/// streams.wait_until_caught_up(Duration::from_secs(60))?;
/// let counts = streams.key_value_store::<String, i64>("counts")?;
/// assert_eq!(counts.get(&"a".to_string())?, Some(2));
/// streams.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Streams {
    env: Arc<Env>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    started: Mutex<bool>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("application_id", &self.env.app_id)
            .field("config", &self.env.config)
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// An application running `topology` on `store` (not started).
    ///
    /// # Errors
    /// `InvalidConfig`.
    pub fn new(topology: Topology, config: StreamsConfig, store: &Store) -> Result<Streams> {
        config.validate()?;
        let app_id: Arc<str> = Arc::from(config.application_id.as_str());
        let sources: HashMap<String, usize> = topology
            .sources
            .iter()
            .map(|s| (topology.source_topic_name(&app_id, s), s.sub))
            .collect();
        let repartitions = (topology.sources.iter())
            .filter(|s| s.internal)
            .map(|s| topology.source_topic_name(&app_id, s))
            .collect();
        let coord = Coord {
            state: Mutex::new(CoordState {
                idle: vec![false; config.threads],
                finished: vec![false; config.threads],
                error: None,
                epoch: 0,
            }),
            changed: Default::default(),
        };
        Ok(Streams {
            env: Arc::new(Env {
                store: store.clone(),
                topology: Arc::new(topology),
                config,
                app_id,
                metrics: Arc::new(Metrics::default()),
                registry: Arc::new(Registry::default()),
                sources,
                repartitions,
                stop: Default::default(),
                coord,
            }),
            threads: Mutex::new(Vec::new()),
            started: Mutex::new(false),
        })
    }

    /// Creates the internal topics that are missing (repartition topics, compacted
    /// changelogs, with the partition counts of their sub-topologies) and starts the
    /// threads.
    ///
    /// # Errors
    /// `MissingTopic` for a source or output topic that does not exist; `CoPartitioning` when one
    /// task's topics differ in partition count; `Client` creating a topic; `State` if
    /// already started, or closed (as Kafka's `start` outside `CREATED`).
    pub fn start(&self) -> Result<()> {
        let mut started = self.started.lock();
        if *started || self.env.stop.load(Ordering::Acquire) {
            return Err(StreamsError::State {
                what: "this application was already started or closed (a Streams runs once)".into(),
            });
        }
        self.create_internal_topics()?;
        *started = true;
        let mut threads = self.threads.lock();
        for i in 0..self.env.config.threads {
            let env = Arc::clone(&self.env);
            let h = std::thread::Builder::new()
                .name(format!(
                    "{}-{}-{i}",
                    self.env.app_id, self.env.config.client_id
                ))
                .spawn(move || run_thread(env, i))
                .map_err(|e| StreamsError::Thread {
                    thread: i,
                    reason: format!("cannot spawn: {e}"),
                })?;
            threads.push(h);
        }
        Ok(())
    }

    fn partitions_of(&self, topic: &str) -> Result<Option<i32>> {
        match self.env.store.topic(topic) {
            Ok(t) => Ok(Some(t.partition_count())),
            Err(streamlog::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(client("describe", topic)(e)),
        }
    }

    fn create_internal_topics(&self) -> Result<()> {
        let t = &self.env.topology;
        let app = &*self.env.app_id;
        // Every internal topic's name, with the application id, is checked before any
        // topic is created (`build` checked the names alone).
        let internal = (t.repartitions.iter())
            .map(|(suffix, _, _)| format!("{app}-{suffix}"))
            .chain(
                t.stores
                    .iter()
                    .map(|(name, _, _)| changelog_topic(app, name)),
            );
        for topic in internal {
            if let Err(e) = streamlog::validate_topic_name(&topic) {
                return Err(StreamsError::Topology {
                    reason: format!(
                        "internal topic `{topic}`: {e} (a shorter application id or name \
                         fixes it)"
                    ),
                });
            }
        }
        // Each sub-topology's partition count, and the topic that set it.
        let mut subs: Vec<Option<(i32, String)>> = vec![None; t.subtopologies];
        let set =
            |subs: &mut Vec<Option<(i32, String)>>, sub: usize, n: i32, topic: &str| match subs
                .get(sub)
                .cloned()
                .flatten()
            {
                Some((m, first)) if m != n => Err(StreamsError::CoPartitioning {
                    first,
                    first_partitions: m,
                    second: topic.to_string(),
                    second_partitions: n,
                }),
                Some(_) => Ok(()),
                None => {
                    if let Some(s) = subs.get_mut(sub) {
                        *s = Some((n, topic.to_string()));
                    }
                    Ok(())
                }
            };
        for s in t.sources.iter().filter(|s| !s.internal) {
            let n = self
                .partitions_of(&s.topic)?
                .ok_or_else(|| StreamsError::MissingTopic {
                    topic: s.topic.clone(),
                })?;
            set(&mut subs, s.sub, n, &s.topic)?;
        }
        for topic in &t.outputs {
            if self.partitions_of(topic)?.is_none() {
                return Err(StreamsError::MissingTopic {
                    topic: topic.clone(),
                });
            }
        }
        // A repartition topic takes the partition count of the sub-topology reading it
        // when that one has it already (from its other inputs: a join with the
        // aggregation of a re-keyed stream), as Kafka Streams sizes a co-partitioned
        // group's repartition topics; else that of the sub-topology writing it (in
        // order, since one may feed the next).
        let mut done = vec![false; t.repartitions.len()];
        while done.iter().any(|d| !d) {
            let mut progressed = false;
            for (i, (suffix, from, to)) in t.repartitions.iter().enumerate() {
                let Some(Some((written, _))) = subs.get(*from).cloned() else {
                    continue;
                };
                if done[i] {
                    continue;
                }
                let n = subs.get(*to).cloned().flatten().map_or(written, |(n, _)| n);
                let topic = format!("{app}-{suffix}");
                let n = self.ensure_topic(&topic, n, CleanupPolicy::Delete)?;
                self.settle_internal(&topic, Internal::Repartition)?;
                set(&mut subs, *to, n, &topic)?;
                done[i] = true;
                progressed = true;
            }
            if !progressed {
                return Err(StreamsError::Topology {
                    reason: "a repartition topic is fed by a sub-topology with no input".into(),
                });
            }
        }
        for (name, sub, _) in &t.stores {
            let Some(Some((n, _))) = subs.get(*sub).cloned() else {
                return Err(StreamsError::Topology {
                    reason: format!("store `{name}` belongs to a sub-topology with no input"),
                });
            };
            let changelog = changelog_topic(app, name);
            let m = self.ensure_topic(&changelog, n, CleanupPolicy::Compact)?;
            // Task p restores partition p of its stores from changelog partition p.
            if m != n {
                return Err(StreamsError::Topology {
                    reason: format!(
                        "changelog topic `{changelog}` has {m} partitions, but store \
                         `{name}` has {n} (its input's partition count changed since the \
                         changelog was created): delete the changelog to rebuild the \
                         store from its input, or give the input its old count"
                    ),
                });
            }
            self.settle_internal(&changelog, Internal::Changelog)?;
        }
        Ok(())
    }

    /// Gives internal topic `topic`, also one made before (by an older version, or by
    /// the application), the settings the runtime relies on:
    /// - any record time (no bound on future or past times): internal topics carry the
    ///   times of records the application's inputs took already, and a refusal would
    ///   stop the thread with no way for the application to change it;
    /// - a repartition topic keeps its records until the threads purge them
    ///   (`repartition_purge_interval_ms`), as Kafka Streams' repartition topics have
    ///   `retention.ms` -1: the records carry their inputs' times, and time retention
    ///   would delete those of replayed or backfilled inputs (older than
    ///   `retention_ms`) before the sub-topology reading them got to them, which would
    ///   then skip them;
    /// - a changelog is compacted, else it is refused (as Kafka Streams refuses one):
    ///   retention would delete the latest value of every key not updated within
    ///   `retention_ms`, and a store restored from it would lose those keys while the
    ///   input offsets that made them stay committed. Its policy is not changed here:
    ///   the application may have made the topic so for a reason of its own.
    fn settle_internal(&self, topic: &str, kind: Internal) -> Result<()> {
        let store = &self.env.store;
        let now = store
            .topic(topic)
            .map_err(client("describe", topic))?
            .config()
            .settings();
        if kind == Internal::Changelog && now.cleanup_policy != CleanupPolicy::Compact {
            return Err(StreamsError::Topology {
                reason: format!(
                    "changelog topic `{topic}` has cleanup policy `{}`, but a store's \
                     changelog must be `compact` (retention would delete the values of \
                     keys not updated within its retention, and a restored store would \
                     lose them): alter its cleanup policy to compact, or delete it to \
                     rebuild the store from its input",
                    now.cleanup_policy.name()
                ),
            });
        }
        let keeps =
            kind == Internal::Changelog || (now.retention_ms == -1 && now.retention_bytes == -1);
        let any_time = now.message_timestamp_after_max_ms == i64::MAX
            && now.message_timestamp_before_max_ms == i64::MAX;
        if keeps && any_time {
            return Ok(());
        }
        store
            .alter_topic_config(topic, |c| {
                let c = c
                    .message_timestamp_after_max_ms(i64::MAX)
                    .message_timestamp_before_max_ms(i64::MAX);
                match kind {
                    Internal::Repartition => c.retention_ms(-1).retention_bytes(-1),
                    Internal::Changelog => c,
                }
            })
            .map(drop)
            .map_err(client("alter_topic_config", topic))
    }

    /// Creates `topic` with `partitions` unless it exists; returns its partition count.
    fn ensure_topic(&self, topic: &str, partitions: i32, policy: CleanupPolicy) -> Result<i32> {
        if let Some(n) = self.partitions_of(topic)? {
            return Ok(n);
        }
        // Internal topics (changelogs, repartitions) carry the times of records the
        // application's inputs took already: the store's bound on future times would
        // refuse them here, and the thread would stop with no way for the application
        // to change it.
        let config = TopicConfig::default()
            .partitions(partitions)
            .cleanup_policy(policy)
            .message_timestamp_after_max_ms(i64::MAX);
        match self.env.store.create_topic(topic, config) {
            Ok(()) => Ok(partitions),
            // Another instance created it first.
            Err(e) => match self.partitions_of(topic)? {
                Some(n) => Ok(n),
                None => Err(client("create_topic", topic)(e)),
            },
        }
    }

    /// Blocks until every input record has been processed and committed: every thread
    /// of this instance is idle (polled nothing, nothing uncommitted), the group is
    /// stable (no rebalance under way) and the group's
    /// committed offsets of every source topic (repartition topics included) reach their
    /// end (the last stable offset). The way tests and batch jobs wait for results.
    ///
    /// # Errors
    /// `Thread` if a thread failed; `Timeout` after `timeout`; `State` if not started,
    /// or closed (before or while waiting).
    pub fn wait_until_caught_up(&self, timeout: Duration) -> Result<()> {
        if !*self.started.lock() {
            return Err(StreamsError::State {
                what: "start the application before waiting for it".into(),
            });
        }
        // `None`: a timeout past what an `Instant` can hold waits without end.
        let deadline = Instant::now().checked_add(timeout);
        let coord = &self.env.coord;
        let mut s = coord.state.lock();
        loop {
            if let Some(e) = &s.error {
                return Err(StreamsError::Thread {
                    thread: s.finished.iter().position(|&f| f).unwrap_or(0),
                    reason: e.clone(),
                });
            }
            // Checked under the lock that `close` takes to wake waiters after setting it.
            if self.env.stop.load(Ordering::Acquire) {
                return Err(StreamsError::State {
                    what: "the application was closed: it will not catch up".into(),
                });
            }
            if s.idle.iter().all(|&i| i) {
                let epoch = s.epoch;
                drop(s);
                let done = self.all_committed()?;
                s = coord.state.lock();
                if done && s.epoch == epoch && s.idle.iter().all(|&i| i) {
                    return Ok(());
                }
            }
            // Threads report after every poll (at most `poll_ms` apart), so this wakes
            // often; the deadline only bounds a run that never catches up.
            let timed_out = match deadline {
                Some(d) => coord.changed.wait_until(&mut s, d).timed_out(),
                None => {
                    coord.changed.wait(&mut s);
                    false
                }
            };
            if timed_out {
                return Err(StreamsError::Timeout {
                    what: "the application to catch up",
                    ms: timeout.as_millis(),
                });
            }
        }
    }

    fn all_committed(&self) -> Result<bool> {
        let app = &*self.env.app_id;
        // A rebalance under way may still move partitions (and their uncommitted work).
        match self.env.store.describe_group(app) {
            Ok(g) if g.state == "Stable" => {}
            Ok(_) | Err(streamlog::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(client("describe_group", app)(e)),
        }
        let reader = self
            .env
            .store
            .consumer(ConsumerConfig::new(app).isolation_level(IsolationLevel::ReadCommitted))
            .map_err(client("consumer", app))?;
        let mut tps = Vec::new();
        for topic in self.env.sources.keys() {
            let n = self.partitions_of(topic)?.unwrap_or(0);
            tps.extend((0..n).map(|p| TopicPartition::new(topic.as_str(), p)));
        }
        let ends = reader
            .end_offsets(&tps)
            .map_err(client("end_offsets", app))?;
        let committed = match reader.committed(&tps) {
            Ok(committed) => committed,
            // A transaction not yet decided holds offsets of some partition.
            Err(streamlog::Error::Timeout { .. }) => return Ok(false),
            Err(e) => return Err(client("committed", app)(e)),
        };
        Ok(tps.iter().all(|tp| {
            let end = ends.get(tp).copied().unwrap_or(0);
            let start = self
                .env
                .store
                .topic(tp.topic())
                .and_then(|t| t.partition(tp.partition()))
                .map(|p| p.log_start_offset())
                .unwrap_or(0);
            committed.get(tp).copied().flatten().unwrap_or(start) >= end
        }))
    }

    /// Where the application is now: created, running, failed (a thread stopped on an
    /// error: see the reason; `close` returns it too) or closed.
    pub fn state(&self) -> StreamsState {
        if let Some(e) = &self.env.coord.state.lock().error {
            return StreamsState::Failed { reason: e.clone() };
        }
        if self.env.stop.load(Ordering::Acquire) {
            StreamsState::Closed
        } else if *self.started.lock() {
            StreamsState::Running
        } else {
            StreamsState::Created
        }
    }

    /// The application's counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.env.metrics.snapshot()
    }

    /// The local partitions of key-value store `name` (an aggregation's or a table's),
    /// for interactive queries: only partitions whose tasks run in this instance. The
    /// view looks them up again at each call, so it follows rebalances, and it never
    /// answers from a task's store dropped since (a thread that died or abandoned its
    /// tasks after an abort leaves updates no commit covers).
    ///
    /// # Errors
    /// `StoreNotFound` if the topology has no such store; `StoreType` if it is a window
    /// store or holds other types; `StoreUnavailable` while a local partition of it is
    /// being restored.
    pub fn key_value_store<K, V>(&self, name: &str) -> Result<ReadOnlyKeyValueStore<K, V>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.check_store::<KvStore<K, V>>(name, "key-value store")?;
        local_parts::<KvStore<K, V>>(&self.env.registry, name, "key-value store")?;
        Ok(ReadOnlyKeyValueStore {
            name: name.into(),
            registry: self.env.registry.clone(),
            types: PhantomData,
        })
    }

    /// The local partitions of window store `name` (a windowed aggregation's).
    ///
    /// # Errors
    /// As [`key_value_store`](Self::key_value_store).
    pub fn window_store<K, V>(&self, name: &str) -> Result<ReadOnlyWindowStore<K, V>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        self.check_store::<WindowStore<K, V>>(name, "window store")?;
        local_parts::<WindowStore<K, V>>(&self.env.registry, name, "window store")?;
        Ok(ReadOnlyWindowStore {
            name: name.into(),
            registry: self.env.registry.clone(),
            types: PhantomData,
        })
    }

    /// `StoreNotFound` unless the topology has store `name`; `StoreType` unless it
    /// holds `S` (checked against the topology, so also with no partition local).
    fn check_store<S: 'static>(&self, name: &str, expected: &'static str) -> Result<()> {
        match self.env.topology.stores.iter().find(|(n, _, _)| n == name) {
            None => Err(StreamsError::StoreNotFound { name: name.into() }),
            Some((_, _, contents)) if *contents != std::any::TypeId::of::<S>() => {
                Err(StreamsError::StoreType {
                    name: name.into(),
                    expected,
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Stops the threads gracefully: each commits its work (its open transaction under
    /// exactly-once), leaves the group and closes its clients. Returns the first error a
    /// thread stopped with. Idempotent; also done (ignoring errors) on drop.
    ///
    /// # Errors
    /// `Thread`: a thread failed (before or while closing).
    pub fn close(&self) -> Result<()> {
        self.env.stop.store(true, Ordering::Release);
        // Wakes `wait_until_caught_up` callers (they see `stop` under this lock).
        drop(self.env.coord.state.lock());
        self.env.coord.changed.notify_all();
        // Held through the joins: a second `close` (or the drop after one on another
        // thread) returns once the threads have stopped, not while they still commit.
        let mut threads = self.threads.lock();
        let mut panicked = None;
        for (i, h) in threads.drain(..).enumerate() {
            if h.join().is_err() {
                panicked.get_or_insert(i);
            }
        }
        drop(threads);
        let s = self.env.coord.state.lock();
        if let Some(e) = &s.error {
            return Err(StreamsError::Thread {
                thread: panicked.unwrap_or(0),
                reason: e.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("{}: closing: {e}", self.env.app_id);
        }
    }
}
