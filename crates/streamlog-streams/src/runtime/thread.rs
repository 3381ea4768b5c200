//! A stream thread: one consumer in the application's group and one producer (a
//! transactional one under exactly-once); it runs the tasks of the partitions the group
//! gives it, and commits outputs, changelogs and input positions together.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use streamlog::producer::partition_for_key;
use streamlog::{
    Consumer, ConsumerConfig, ConsumerRecords, DeliveryFuture, IsolationLevel, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, RebalanceListener, Store, TopicPartition,
};

use super::config::{DeserializationPolicy, ProcessingGuarantee, StreamsConfig};
use super::partition_group::PartitionGroup;
use super::restore::Restorer;
use super::task::{Task, TaskId};
use crate::context::Ctx;
use crate::error::{Result, StreamsError, client};
use crate::metrics::Metrics;
use crate::store::Registry;
use crate::topology::Topology;

/// What every thread of one application shares.
pub(crate) struct Env {
    pub(crate) store: Store,
    pub(crate) topology: Arc<Topology>,
    pub(crate) config: StreamsConfig,
    pub(crate) app_id: Arc<str>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registry: Arc<Registry>,
    /// Every source topic (full names) and its sub-topology.
    pub(crate) sources: HashMap<String, usize>,
    /// The repartition topics (full names): the threads delete their records below
    /// the positions they committed (`repartition_purge_interval_ms`).
    pub(crate) repartitions: HashSet<String>,
    pub(crate) stop: AtomicBool,
    pub(crate) coord: Coord,
}

impl Env {
    pub(crate) fn isolation(&self) -> IsolationLevel {
        match self.config.processing_guarantee {
            ProcessingGuarantee::ExactlyOnce => IsolationLevel::ReadCommitted,
            ProcessingGuarantee::AtLeastOnce => IsolationLevel::ReadUncommitted,
        }
    }

    fn restorer(&self) -> Restorer<'_> {
        Restorer {
            store: &self.store,
            isolation: self.isolation(),
            metrics: &self.metrics,
        }
    }

    fn exactly_once(&self) -> bool {
        self.config.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }
}

/// What the threads report to waiters: idle (no uncommitted work, nothing polled),
/// finished, failed; `epoch` counts the moments a thread got work.
#[derive(Default)]
pub(crate) struct CoordState {
    pub(crate) idle: Vec<bool>,
    pub(crate) finished: Vec<bool>,
    pub(crate) error: Option<String>,
    pub(crate) epoch: u64,
}

#[derive(Default)]
pub(crate) struct Coord {
    pub(crate) state: Mutex<CoordState>,
    pub(crate) changed: Condvar,
}

impl Coord {
    fn set_idle(&self, thread: usize, idle: bool) {
        let mut s = self.state.lock();
        if !idle {
            s.epoch += 1;
        }
        if let Some(x) = s.idle.get_mut(thread) {
            *x = idle;
        }
        drop(s);
        self.changed.notify_all();
    }

    fn finish(&self, thread: usize, error: Option<String>) {
        let mut s = self.state.lock();
        if let Some(x) = s.finished.get_mut(thread) {
            *x = true;
        }
        if let Some(x) = s.idle.get_mut(thread) {
            *x = false;
        }
        if s.error.is_none() {
            s.error = error;
        }
        drop(s);
        self.changed.notify_all();
    }
}

/// The most threads an at-least-once commit fsyncs its partitions with (its own
/// included).
const FLUSH_THREADS: usize = 4;

/// The thread's state, shared with its rebalance listener (which runs inside `poll`, on
/// the same thread, while the loop does not hold the lock).
struct Worker {
    env: Arc<Env>,
    producer: Producer,
    tasks: BTreeMap<TaskId, Task>,
    /// Records polled and not yet processed.
    buffered: PartitionGroup,
    in_transaction: bool,
    /// Positions last committed, by partition.
    committed: BTreeMap<TopicPartition, i64>,
    /// When the repartition topics were last purged.
    last_purge: Instant,
    /// Sends not yet known to be in the log (at-least-once).
    pending: Vec<DeliveryFuture>,
    ctx: Ctx,
    /// An error from the listener, reported by the loop.
    error: Option<StreamsError>,
    /// Processing failed part-way through a poll: nothing may be committed any more.
    failed: bool,
    /// The producer's config (with its transactional id under exactly-once), for a new
    /// producer once the store aborted a transaction after its timeout.
    producer_config: ProducerConfig,
    /// The group generation of the thread's last assignment: its tasks' stores are
    /// registered with it (see [`Registry::insert`]).
    generation: i32,
}

impl Worker {
    fn group(&self) -> String {
        format!("group {}", self.env.app_id)
    }

    fn begin(&mut self) -> Result<()> {
        if self.env.exactly_once() && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(client("begin_transaction", self.group()))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn task_for(&mut self, topic: &str, partition: i32) -> Result<&mut Task> {
        let Some(&sub) = self.env.sources.get(topic) else {
            return Err(StreamsError::Topology {
                reason: format!("records of `{topic}`, which the topology does not read"),
            });
        };
        let id = TaskId { sub, partition };
        if !self.tasks.contains_key(&id) {
            self.create_task(id)?;
        }
        self.tasks.get_mut(&id).ok_or_else(|| StreamsError::State {
            what: format!("task {id:?} vanished"),
        })
    }

    /// Builds a task, restores its stores and makes them queryable.
    fn create_task(&mut self, id: TaskId) -> Result<()> {
        let env = &self.env;
        let skip = env.config.deserialization_policy == DeserializationPolicy::SkipAndCount;
        let mut task = Task::new(&env.topology, &env.app_id, id, skip)?;
        // Under at-least-once the restore read every record appended: nothing to catch
        // up with.
        task.caught_up = !env.exactly_once();
        // Queries are refused while the stores restore; the restore ends with them
        // queryable, or, failed or unwinding from a panic (a serde's, the restore
        // listener's), with them refused no longer.
        let mut restoring = Restoring {
            registry: &env.registry,
            names: task.stores.keys().cloned().collect(),
            partition: id.partition,
        };
        for name in &restoring.names {
            env.registry.begin_restore(name, id.partition);
        }
        env.restorer()
            .restore_task(&mut task, env.config.restore_listener.as_ref())?;
        restoring.names.clear();
        for (name, (_, h)) in &task.stores {
            env.registry
                .insert(name, id.partition, h.shared(), self.generation);
        }
        log::debug!("{}: task {id:?} started", env.app_id);
        self.tasks.insert(id, task);
        Ok(())
    }

    /// Reads what task `id`'s changelogs gained since its restore, once (before its
    /// first record: its inputs' positions are decided by then). Exactly-once only.
    fn catch_up(&mut self, id: TaskId) -> Result<()> {
        match self.tasks.get_mut(&id) {
            Some(task) if !task.caught_up => self.env.restorer().catch_up_task(task),
            _ => Ok(()),
        }
    }

    fn drop_tasks(&mut self, partitions: &[TopicPartition]) {
        self.buffered.remove(partitions);
        for tp in partitions {
            self.committed.remove(tp);
            let Some(&sub) = self.env.sources.get(tp.topic()) else {
                continue;
            };
            let id = TaskId {
                sub,
                partition: tp.partition(),
            };
            if let Some(task) = self.tasks.remove(&id) {
                for (name, (_, h)) in &task.stores {
                    self.env.registry.remove(name, id.partition, &h.shared());
                }
            }
        }
    }

    /// Buffers what a poll returned, then processes every task's records in timestamp
    /// order for as long as none of its inputs waits to be fetched (see
    /// [`PartitionGroup`]); pauses partitions whose records pile up meanwhile.
    fn process(&mut self, consumer: &mut Consumer, records: &ConsumerRecords) -> Result<()> {
        for tp in records.partitions() {
            self.task_for(tp.topic(), tp.partition())?;
        }
        self.buffered.add(records);
        self.buffered
            .drop_stale(&mut |tp| consumer.position(tp).ok());
        let mut ctx = std::mem::replace(&mut self.ctx, Ctx::new(Arc::clone(&self.env.metrics)));
        let mut processed = 0u64;
        // Whether an input with nothing buffered has more in its log (asked once per
        // call: nothing is fetched meanwhile).
        let mut lag: HashMap<TopicPartition, bool> = HashMap::new();
        let mut lagging = |tp: &TopicPartition| {
            *lag.entry(tp.clone()).or_insert_with(|| {
                let end = consumer.end_offsets(std::slice::from_ref(tp));
                match consumer.position(tp) {
                    // Its start waits for a transaction's offsets (KIP-447): so do we.
                    Err(streamlog::Error::Timeout { .. }) => true,
                    // Not assigned here (or gone): nothing to wait for.
                    position => matches!(
                        (position, end),
                        (Ok(p), Ok(end)) if end.get(tp).is_some_and(|&e| p < e)
                    ),
                }
            })
        };
        let result = (|| {
            let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
            for id in ids {
                let Some((inputs, mut caught_up)) =
                    self.tasks.get(&id).map(|t| (t.inputs(), t.caught_up))
                else {
                    continue;
                };
                while let Some(r) = self.buffered.next(&inputs, &mut lagging) {
                    if !caught_up {
                        self.catch_up(id)?;
                        caught_up = true;
                    }
                    ctx.partition = r.partition();
                    ctx.offset = r.offset();
                    ctx.headers.clear();
                    ctx.headers.extend_from_slice(r.headers());
                    let task = self.task_for(r.topic(), r.partition())?;
                    task.process(&mut ctx, r.topic(), r.key(), r.value(), r.timestamp())?;
                    processed += 1;
                }
            }
            Ok(())
        })();
        self.ctx = ctx;
        Metrics::add(&self.env.metrics.processed, processed);
        result?;
        let (pause, resume) = self.buffered.flow(&consumer.paused());
        consumer
            .pause(&pause)
            .and_then(|()| consumer.resume(&resume))
            .map_err(client("pause", self.group()))
    }

    /// Sends what the processors produced.
    fn send(&mut self) -> Result<()> {
        if self.ctx.out.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let exactly_once = self.env.exactly_once();
        let mut counts: HashMap<Arc<str>, i32> = HashMap::new();
        for out in self.ctx.out.drain(..) {
            let mut rec = ProducerRecord::new(&*out.topic).timestamp(out.timestamp);
            let partition = match (out.partition, out.partition_prefix, &out.key) {
                (Some(p), _, _) => Some(p),
                (None, Some(n), Some(k)) => {
                    let count = match counts.get(&out.topic) {
                        Some(c) => *c,
                        None => {
                            let t = self.env.store.topic(&out.topic);
                            let c = t.map_err(client("send", &*out.topic))?.partition_count();
                            counts.insert(Arc::clone(&out.topic), c);
                            c
                        }
                    };
                    Some(partition_for_key(&k[..n.min(k.len())], count))
                }
                _ => None,
            };
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            if let Some(k) = out.key {
                rec = rec.key(k);
            }
            if let Some(v) = out.value {
                rec = rec.value(v);
            }
            for h in out.headers {
                rec = rec.with_header(h);
            }
            let f = self
                .producer
                .send(rec)
                .map_err(client("send", &*out.topic))?;
            if !exactly_once {
                self.pending.push(f);
            }
        }
        Ok(())
    }

    /// Commits: outputs, changelogs and positions of every assigned partition, in one
    /// transaction under exactly-once; under at-least-once, positions only once every
    /// send is in the log.
    fn commit(&mut self, consumer: &mut Consumer) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        // The stores' changes since the last commit, the latest per key.
        for task in self.tasks.values() {
            task.drain_changelogs(&mut self.ctx.out)?;
        }
        self.send()?;
        let mut changed = BTreeMap::new();
        for tp in consumer.assignment() {
            // Past what was processed, not past what was polled.
            let p = match self.buffered.first_unprocessed(&tp) {
                Some(offset) => offset,
                None => match consumer.position(&tp) {
                    Ok(p) => p,
                    // Not started yet: another transaction's offsets for it are
                    // pending (KIP-447), so nothing of it was processed here.
                    Err(streamlog::Error::Timeout { .. }) => continue,
                    Err(e) => return Err(client("position", &tp)(e)),
                },
            };
            if self.committed.get(&tp) != Some(&p) {
                changed.insert(tp, p);
            }
        }
        if changed.is_empty() && !self.in_transaction && self.pending.is_empty() {
            // Idle: what the last commits passed may still be due for its purge.
            self.purge_repartitions(consumer);
            return Ok(());
        }
        if self.env.exactly_once() {
            self.begin()?;
            if !changed.is_empty() {
                let meta = consumer
                    .group_metadata()
                    .map_err(client("group_metadata", self.group()))?;
                self.producer
                    .send_offsets_to_transaction(&changed, &meta)
                    .map_err(client("send_offsets_to_transaction", self.group()))?;
            }
            self.producer
                .commit_transaction()
                .map_err(client("commit_transaction", self.group()))?;
            self.in_transaction = false;
        } else {
            self.producer
                .flush()
                .map_err(client("flush", self.group()))?;
            let mut written = BTreeSet::new();
            for f in self.pending.drain(..) {
                let sent = f
                    .wait()
                    .map_err(client("send", "an output or changelog topic"))?;
                written.insert(TopicPartition::new(&*sent.topic, sent.partition));
            }
            // The positions' commit is fsync'd: the outputs and changelog records it
            // covers must be on disk first (sent under `Acks::Leader`, they may be in
            // the page cache only), or a power cut keeps the positions and loses what
            // processing them wrote, and those input records are never processed again.
            self.flush_partitions(&written)?;
            if !changed.is_empty() {
                consumer
                    .commit_sync_offsets(&changed)
                    .map_err(client("commit", self.group()))?;
            }
        }
        self.committed.extend(changed);
        Metrics::add(&self.env.metrics.commits, 1);
        self.purge_repartitions(consumer);
        Ok(())
    }

    /// fsyncs the partitions `written`, side by side on up to `FLUSH_THREADS` threads: a
    /// file system commits concurrent fsyncs together, and the thread waits for about
    /// the slowest share, not for their sum.
    fn flush_partitions(&self, written: &BTreeSet<TopicPartition>) -> Result<()> {
        let store = &self.env.store;
        let flush = |tp: &TopicPartition| {
            store
                .topic(tp.topic())
                .and_then(|t| t.partition(tp.partition()))
                .and_then(|p| p.flush())
                .map(drop)
                .map_err(client("flush", tp))
        };
        let written: Vec<&TopicPartition> = written.iter().collect();
        if written.len() < 2 {
            return written.into_iter().try_for_each(flush);
        }
        // A few helpers, each taking every n-th partition; one the system will not
        // start leaves its share to this thread.
        let helpers = written.len().min(FLUSH_THREADS);
        let share = |i: usize| written.iter().skip(i).step_by(helpers).copied();
        std::thread::scope(|s| {
            let started: Vec<_> = (1..helpers)
                .map(|i| {
                    let run = move || share(i).try_for_each(flush);
                    std::thread::Builder::new()
                        .name("streams-flush".into())
                        .spawn_scoped(s, run)
                        .map_err(|_| i)
                })
                .collect();
            let mut result = share(0).try_for_each(flush);
            for h in started {
                let r = match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(i) => share(i).try_for_each(flush),
                };
                result = result.and(r);
            }
            result
        })
    }

    /// Deletes the records of the assigned repartition partitions below the positions
    /// committed (every `repartition_purge_interval_ms`), as Kafka Streams does: those
    /// topics have no retention, and every record below a commit was processed. A
    /// failure is logged: the records stay until the next purge.
    fn purge_repartitions(&mut self, consumer: &Consumer) {
        let every = Duration::from_millis(self.env.config.repartition_purge_interval_ms);
        if self.env.repartitions.is_empty() || self.last_purge.elapsed() < every {
            return;
        }
        self.last_purge = Instant::now();
        for tp in consumer.assignment() {
            if !self.env.repartitions.contains(tp.topic()) {
                continue;
            }
            let Some(&offset) = self.committed.get(&tp) else {
                continue;
            };
            if let Err(e) = self
                .env
                .store
                .delete_records(tp.topic(), tp.partition(), offset)
            {
                log::warn!("{}: purging {tp} below {offset}: {e}", self.env.app_id);
            }
        }
    }

    /// Passes `r` on, unless it failed because the store aborted the open transaction
    /// after its `transaction_timeout_ms` (a processor stalled): Kafka Streams' task
    /// migration after a fence. The transaction's work is gone: every task restarts
    /// from its changelog, the positions go back to the last commit, and a new
    /// producer takes the transactional id.
    fn recover_from_timeout(&mut self, consumer: &mut Consumer, r: Result<()>) -> Result<()> {
        match r {
            Err(StreamsError::Client { source, .. })
                if self.env.exactly_once() && source.is_transaction_timeout() =>
            {
                log::warn!(
                    "{}: its transaction timed out and was aborted ({source}); processing again \
                     from the last commit",
                    self.env.app_id
                );
                // Aborted already: nothing to abort.
                self.in_transaction = false;
                let assigned = consumer.assignment();
                self.abandon(&assigned);
                // Back to the committed offsets, resolved by the next poll: another
                // transaction may hold offsets of these partitions for the group (a
                // member that owned one before), and the poll waits for its decision
                // where `committed` would fail at once.
                consumer
                    .seek_to_committed(&assigned)
                    .map_err(client("seek_to_committed", self.group()))?;
                let producer = self
                    .env
                    .store
                    .producer(self.producer_config.clone())
                    .map_err(client("producer", self.group()))?;
                producer
                    .init_transactions()
                    .map_err(client("init_transactions", self.group()))?;
                let fenced = std::mem::replace(&mut self.producer, producer);
                if let Err(e) = fenced.close() {
                    log::debug!("{}: closing the fenced producer: {e}", self.env.app_id);
                }
                // Every task of the partitions still owned restarts now, as at an
                // assignment: one whose input stays quiet would otherwise come back
                // only with its next record, and its stores not be queryable till then.
                for tp in &assigned {
                    self.task_for(tp.topic(), tp.partition())?;
                }
                Ok(())
            }
            r => r,
        }
    }

    /// [`commit`](Self::commit); a commit refused because this thread no longer owns
    /// its partitions (the group removed it: it polled later than
    /// `max_poll_interval_ms`, and other threads took its tasks over) is Kafka Streams'
    /// task migration, not a failure. The work since the last commit is dropped (its
    /// transaction aborted), as for lost partitions, and the next poll rejoins.
    fn commit_or_migrate(&mut self, consumer: &mut Consumer) -> Result<()> {
        let committed = self.commit(consumer);
        match self.recover_from_timeout(consumer, committed) {
            Err(StreamsError::Client {
                source: streamlog::Error::CommitFailed { reason, .. },
                ..
            }) => {
                log::warn!(
                    "{}: its tasks moved to another thread ({reason}); rejoining the group",
                    self.env.app_id
                );
                self.abandon(&consumer.assignment());
                Ok(())
            }
            r => r,
        }
    }

    /// Partitions lost without a chance to commit: their uncommitted work is dropped.
    fn abandon(&mut self, partitions: &[TopicPartition]) {
        if self.in_transaction {
            if let Err(e) = self.producer.abort_transaction() {
                log::warn!("{}: aborting after losing partitions: {e}", self.env.app_id);
            }
            self.in_transaction = false;
        }
        self.pending.clear();
        self.ctx.out.clear();
        self.buffered.remove(partitions);
        // Under exactly-once every task's uncommitted state went with the transaction:
        // all of them restart from their changelogs.
        if self.env.exactly_once() {
            self.buffered.clear();
            self.unregister_all();
            self.tasks.clear();
            self.committed.clear();
        } else {
            self.drop_tasks(partitions);
        }
    }
}

/// Ends the restore of a task's stores still named (none once they are queryable).
struct Restoring<'a> {
    registry: &'a Registry,
    names: Vec<String>,
    partition: i32,
}

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            self.registry.end_restore(name, self.partition);
        }
    }
}

impl Worker {
    /// Takes every task's stores out of the queries (their tasks stop running here).
    fn unregister_all(&mut self) {
        for (id, task) in &self.tasks {
            for (name, (_, h)) in &task.stores {
                self.env.registry.remove(name, id.partition, &h.shared());
            }
        }
    }

    /// Stops all commits and aborts the open transaction: part of a poll may have been
    /// processed, and committing its positions would skip the rest.
    fn fail(&mut self) {
        self.failed = true;
        if self.in_transaction {
            if let Err(e) = self.producer.abort_transaction() {
                log::warn!("{}: aborting after an error: {e}", self.env.app_id);
            }
            self.in_transaction = false;
        }
    }
}

/// Marks the worker failed if the thread unwinds from a panic (a processor's closure),
/// before the consumer's drop leaves the group (whose revoke would commit).
struct FailOnUnwind(Arc<Mutex<Worker>>);

impl Drop for FailOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut w = self.0.lock();
            w.fail();
            // The consumer's drop, unwinding, calls no listener: the tasks' stores, with
            // updates of the poll the panic cut short (under exactly-once, of the
            // transaction just aborted), would otherwise stay queryable.
            w.unregister_all();
        }
    }
}

struct Listener(Arc<Mutex<Worker>>);

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let mut w = self.0.lock();
        if let Err(e) = w.commit(consumer) {
            w.error.get_or_insert(e);
        }
        w.drop_tasks(partitions);
    }

    fn on_partitions_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let mut w = self.0.lock();
        if let Ok(m) = consumer.group_metadata() {
            w.generation = m.generation_id();
        }
        for tp in partitions {
            if let Err(e) = w.task_for(tp.topic(), tp.partition()) {
                w.error.get_or_insert(e);
                return;
            }
        }
    }

    fn on_partitions_lost(&mut self, _consumer: &mut Consumer, partitions: &[TopicPartition]) {
        self.0.lock().abandon(partitions);
    }
}

/// Runs thread `index` until `env.stop`, reporting its end to the coordinator.
pub(crate) fn run_thread(env: Arc<Env>, index: usize) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&env, index)));
    let error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a processor panicked".into()),
        ),
    };
    if let Some(e) = &error {
        log::error!("{} stream thread {index} stopped: {e}", env.app_id);
    }
    env.coord.finish(index, error);
}

fn run(env: &Arc<Env>, index: usize) -> Result<()> {
    let c = &env.config;
    let group = format!("group {}", env.app_id);
    let mut consumer = env
        .store
        .consumer(
            ConsumerConfig::new(&*env.app_id)
                .client_id(format!("{}-{index}", c.client_id))
                .auto_offset_reset(OffsetReset::Earliest)
                .enable_auto_commit(false)
                .isolation_level(env.isolation())
                .max_poll_records(c.max_poll_records)
                .max_poll_interval_ms(c.max_poll_interval_ms),
        )
        .map_err(client("consumer", &group))?;
    let mut pc = c.producer.clone();
    if env.exactly_once() {
        pc = pc.transactional_id(format!("{}-{}-{index}", env.app_id, c.client_id));
    }
    let producer = env
        .store
        .producer(pc.clone())
        .map_err(client("producer", &group))?;
    if env.exactly_once() {
        producer
            .init_transactions()
            .map_err(client("init_transactions", &group))?;
    }
    let worker = Arc::new(Mutex::new(Worker {
        env: Arc::clone(env),
        producer,
        tasks: BTreeMap::new(),
        buffered: PartitionGroup::default(),
        in_transaction: false,
        committed: BTreeMap::new(),
        last_purge: Instant::now(),
        pending: Vec::new(),
        ctx: Ctx::new(Arc::clone(&env.metrics)),
        error: None,
        failed: false,
        producer_config: pc,
        generation: -1,
    }));
    let _fail_on_unwind = FailOnUnwind(Arc::clone(&worker));
    consumer.set_rebalance_listener(Listener(Arc::clone(&worker)));
    let mut topics: Vec<&String> = env.sources.keys().collect();
    topics.sort();
    consumer
        .subscribe(topics)
        .map_err(client("subscribe", &group))?;
    let interval = Duration::from_millis(c.commit_interval_ms);
    let poll = Duration::from_millis(c.poll_ms);
    let mut last_commit = Instant::now();
    let result = (|| {
        while !env.stop.load(Ordering::Acquire) {
            let records = consumer.poll(poll);
            let mut w = worker.lock();
            if let Some(e) = w.error.take() {
                // A commit in the revoke listener may have found the transaction aborted.
                w.recover_from_timeout(&mut consumer, Err(e))?;
                continue;
            }
            let records = records.map_err(client("poll", &group))?;
            if !records.is_empty() {
                env.coord.set_idle(index, false);
            }
            w.process(&mut consumer, &records)?;
            let sent = w.send();
            w.recover_from_timeout(&mut consumer, sent)?;
            if records.is_empty() && w.buffered.is_empty() {
                w.commit_or_migrate(&mut consumer)?;
                last_commit = Instant::now();
                env.coord.set_idle(index, true);
                continue;
            }
            if last_commit.elapsed() >= interval {
                w.commit_or_migrate(&mut consumer)?;
                last_commit = Instant::now();
            }
        }
        worker.lock().commit_or_migrate(&mut consumer)
    })();
    if result.is_err() {
        // Whatever part of a poll was processed must not be committed by the revoke.
        worker.lock().fail();
    }
    // Leaving the group revokes the partitions (the listener commits again, a no-op).
    let closed = consumer.close().map_err(client("close", &group));
    let w = worker.lock();
    if let Some(e) = &w.error {
        log::warn!("{}: while closing: {e}", env.app_id);
    }
    let producer_closed = w.producer.close().map_err(client("producer close", &group));
    result.and(closed).and(producer_closed)
}
