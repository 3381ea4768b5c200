//! The transaction coordinator inside the store (Kafka's `TransactionCoordinator`):
//! transactional ids mapped to producer ids and epochs, the partitions each open
//! transaction wrote to, the commit and abort protocol with its markers, fencing, and
//! the transaction log `__transaction_state`.
//!
//! # Protocol
//!
//! Every transaction of a producer id runs under its own epoch (as Kafka's transaction
//! version 2, KIP-890): ending one bumps the epoch the producer uses next. A
//! transaction that wrote to one partition commits with its COMMIT marker fsync'd
//! together with its records: one fsync. Otherwise, commit:
//! 1. the data of every partition written is fsync'd;
//! 2. `PrepareCommit` (with the partitions) is appended to `__transaction_state` and
//!    fsync'd: the decision;
//! 3. a COMMIT marker (a control batch) is appended to every partition and fsync'd
//!    (so the next transaction of the id never starts while one could be lost: recovery
//!    decides by the id's latest record), then `CompleteCommit`, not fsync'd (recovery
//!    decides the same without it).
//!
//! Abort writes `PrepareAbort`, ABORT markers and `CompleteAbort` without fsyncs: with
//! no durable commit decision, recovery aborts anyway.
//!
//! # Recovery
//!
//! At open, after every partition is recovered, each transaction still open in a
//! partition (a producer id with transactional data and no marker after it) is closed:
//! committed if `__transaction_state` holds a commit decision for that producer id and
//! the epoch the data was written under, aborted otherwise. A transaction therefore ends
//! committed everywhere or aborted everywhere, whatever the crash kept.
//!
//! # Fencing
//!
//! `init` for a transactional id bumps its epoch: calls of an older producer with that
//! id fail with `Fenced`. A transaction it left open is aborted with markers under the
//! new epoch, so the log refuses its later batches too. A transaction open longer than
//! its timeout is aborted by maintenance the same way.

mod record;
mod recovery;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use record::{Status, TxnRecord};

use crate::catalog::{Catalog, PartitionState};
use crate::error::{Error, Result};
use crate::format::{BatchBuilder, EncodedBatch};
use crate::groups::{Commit, Coordinator as Groups};
use crate::topic::{CleanupPolicy, TopicConfig, TopicPartition};

/// The internal topic holding the transaction log.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";
/// Epochs at or past this start a new producer id instead (the epoch is an i16, and a
/// fencing abort needs one more).
const MAX_EPOCH: i16 = i16::MAX - 2;

/// Whether `p` stopped because its topic's deletion is decided: a commit has nothing
/// left to decide there. Not for a partition stopped by the store's close, nor by a
/// deletion whose outcome is unknown (the next open may bring the topic back, and
/// recovery would abort a part of the transaction whose marker was skipped).
fn topic_deleted(p: &PartitionState) -> bool {
    p.is_deleted()
}

/// Whether an ABORT marker may skip `p`: stopped while the store is open (a deletion,
/// decided or not). Were the topic back at the next open, recovery aborts what of the
/// transaction has no marker there, as this marker would.
fn abort_may_skip(p: &PartitionState, catalog: &Catalog) -> bool {
    p.is_closed() && !catalog.is_closed()
}

/// A producer's identity in a transaction: its id and the epoch of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
}

/// One transactional id's state.
#[derive(Debug)]
struct Txn {
    session: Session,
    timeout_ms: i32,
    status: Status,
    /// Partitions the open transaction wrote to (or will: added before the first send).
    partitions: BTreeMap<TopicPartition, Arc<PartitionState>>,
    /// Offsets sent to the open transaction, per group, with where their records stand
    /// in `__consumer_offsets` (applied when it commits, ranked there as Kafka does).
    offsets: Vec<(String, BTreeMap<TopicPartition, Commit>, i64)>,
    /// The next sequence of this transaction's batches of offsets.
    offsets_sequence: i32,
    start_ms: i64,
    /// Why the session ended if the coordinator ended it (fenced or timed out).
    fenced: Option<&'static str>,
    /// A marker of a decided transaction could not be written or synced: the decision
    /// is durable, and the next open of the store writes the marker; until then this
    /// transactional id can start nothing.
    broken: Option<String>,
    /// Partitions its markers were appended to, whose readers are woken once this
    /// transaction's lock is let go (see [`unlock_and_wake`]).
    to_wake: Vec<Arc<PartitionState>>,
    /// Its offsets were settled: the store's waiters are woken then too.
    notify: bool,
}

/// Lets go of a transaction's lock, then wakes the readers its markers concern: a
/// waker may poll its task inline, and that task may need this transaction (a
/// maintenance pass looking for timeouts, a producer fencing this one's session).
fn unlock_and_wake(catalog: &Catalog, mut t: MutexGuard<'_, Txn>) {
    let woken = std::mem::take(&mut t.to_wake);
    let notify = std::mem::take(&mut t.notify);
    drop(t);
    for p in woken {
        p.wake();
    }
    if notify {
        catalog.notifier().notify();
    }
}

/// The coordinator of one store.
#[derive(Debug)]
pub(crate) struct TxnCoordinator {
    /// Where committed offsets of transactions go.
    groups: Arc<Groups>,
    txns: Mutex<HashMap<String, Arc<Mutex<Txn>>>>,
    /// The `__transaction_state` partition, once the store has one.
    log: Mutex<Option<Arc<PartitionState>>>,
}

impl TxnCoordinator {
    /// The transaction log's config: compacted, one partition.
    fn topic_config() -> TopicConfig {
        TopicConfig::default()
            .partitions(1)
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(8 * 1024 * 1024)
            .retention_ms(-1)
    }

    /// The transaction log partition, created the first time a transactional producer
    /// starts.
    fn log(&self, catalog: &Catalog) -> Result<Arc<PartitionState>> {
        if let Some(p) = self.log.lock().as_ref().filter(|p| !p.is_closed()) {
            return Ok(p.clone());
        }
        // Created without the lock: the creation wakes waiting consumers, whose wakers
        // may poll their tasks inline, and a task may start a transactional producer
        // too (this lock). Two callers may race here; one creates it.
        if !catalog.topic_names().iter().any(|n| n == TXN_TOPIC) {
            match catalog.create_topic(TXN_TOPIC, Self::topic_config()) {
                Ok(()) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut log = self.log.lock();
        if let Some(p) = log.as_ref().filter(|p| !p.is_closed()) {
            return Ok(p.clone());
        }
        let p = catalog.partition(TXN_TOPIC, 0)?;
        *log = Some(p.clone());
        Ok(p)
    }

    fn txn(&self, transactional_id: &str) -> Option<Arc<Mutex<Txn>>> {
        self.txns.lock().get(transactional_id).cloned()
    }

    /// Starts a session for `transactional_id` (Kafka's `InitProducerId`): a new
    /// producer id the first time, else the id's producer id with its epoch bumped, after
    /// aborting a transaction the previous session left open. Durable on return.
    ///
    /// # Errors
    /// `Io` (the transaction log could not be written or fsync'd); `Closed`.
    pub(crate) fn init(
        &self,
        catalog: &Catalog,
        transactional_id: &str,
        timeout_ms: i32,
    ) -> Result<Session> {
        let log = self.log(catalog)?;
        let entry = self
            .txns
            .lock()
            .entry(transactional_id.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Txn {
                    session: Session {
                        producer_id: -1,
                        epoch: -1,
                    },
                    timeout_ms,
                    status: Status::Empty,
                    partitions: BTreeMap::new(),
                    offsets: Vec::new(),
                    offsets_sequence: 0,
                    start_ms: -1,
                    fenced: None,
                    broken: None,
                    to_wake: Vec::new(),
                    notify: false,
                }))
            })
            .clone();
        let mut t = entry.lock();
        let r = self.init_locked(catalog, &log, transactional_id, timeout_ms, &mut t);
        unlock_and_wake(catalog, t);
        r
    }

    /// [`init`](Self::init) of a transaction whose lock the caller holds.
    fn init_locked(
        &self,
        catalog: &Catalog,
        log: &PartitionState,
        transactional_id: &str,
        timeout_ms: i32,
        t: &mut Txn,
    ) -> Result<Session> {
        Self::check_not_broken(transactional_id, t)?;
        if t.session.producer_id < 0 {
            t.session = Session {
                producer_id: catalog.allocate_producer_id()?,
                epoch: 0,
            };
        } else {
            if t.status == Status::Ongoing {
                // Fence the previous session: abort under a newer epoch.
                self.abort_fencing(
                    catalog,
                    log,
                    transactional_id,
                    t,
                    "fenced by a newer producer",
                )?;
                // Decided, but markers failed: the old session's partitions do not know
                // it is fenced until a reopen writes them, so no new session starts.
                Self::check_not_broken(transactional_id, t)?;
            }
            self.next_session(catalog, t)?;
        }
        t.fenced = None;
        t.timeout_ms = timeout_ms;
        t.status = Status::Empty;
        let at = Self::write(log, transactional_id, t, catalog.now_ms())?;
        log.flush_to(at + 1)?;
        Ok(t.session)
    }

    fn check_not_broken(transactional_id: &str, t: &Txn) -> Result<()> {
        match &t.broken {
            None => Ok(()),
            Some(reason) => Err(Error::Poisoned {
                path: std::path::PathBuf::from(TXN_TOPIC),
                reason: format!(
                    "transaction `{transactional_id}`: {reason}; reopen the store to finish it"
                ),
            }),
        }
    }

    /// The session after `t`'s: the next epoch, or a new producer id once epochs run out.
    fn next_session(&self, catalog: &Catalog, t: &mut Txn) -> Result<()> {
        t.session = if t.session.epoch >= MAX_EPOCH {
            Session {
                producer_id: catalog.allocate_producer_id()?,
                epoch: 0,
            }
        } else {
            Session {
                producer_id: t.session.producer_id,
                epoch: t.session.epoch + 1,
            }
        };
        Ok(())
    }

    /// Checks that `session` is the current one of `transactional_id`, and that the
    /// id is not waiting for a reopen. A session that is not current is told it is
    /// fenced first: a reopen would not let it on (a fencing whose markers failed).
    fn check(transactional_id: &str, t: &Txn, session: Session) -> Result<()> {
        if t.session == session {
            return Self::check_not_broken(transactional_id, t);
        }
        Err(Error::Fenced {
            transactional_id: transactional_id.to_string(),
            reason: t
                .fenced
                .unwrap_or("a newer producer with this transactional id started")
                .to_string(),
        })
    }

    fn entry(&self, transactional_id: &str, session: Session) -> Result<Arc<Mutex<Txn>>> {
        self.txn(transactional_id)
            .ok_or_else(|| Error::Fenced {
                transactional_id: transactional_id.to_string(),
                reason: "the transactional id is unknown to this store".into(),
            })
            .and_then(|t| {
                Self::check(transactional_id, &t.lock(), session)?;
                Ok(t)
            })
    }

    /// Whether `session` is still the transactional id's (not fenced by a newer one,
    /// nor broken). Each send asks: a partition that forgot the producer id (expired)
    /// no longer knows the fenced epoch, and would append a zombie's record, opening a
    /// transaction no coordinator knows of (Kafka's hanging transaction, KIP-890).
    ///
    /// # Errors
    /// `Fenced`; `Poisoned` if the transaction is broken (a reopen finishes it).
    pub(crate) fn check_session(&self, transactional_id: &str, session: Session) -> Result<()> {
        self.entry(transactional_id, session).map(drop)
    }

    /// Adds `part` to the open transaction of `session` (opening one if needed), before
    /// the producer's first batch to it.
    ///
    /// # Errors
    /// `Fenced`; `Io` writing the transaction log; `Closed`.
    pub(crate) fn add_partition(
        &self,
        catalog: &Catalog,
        transactional_id: &str,
        session: Session,
        part: &Arc<PartitionState>,
    ) -> Result<()> {
        let entry = self.entry(transactional_id, session)?;
        let mut t = entry.lock();
        Self::check(transactional_id, &t, session)?;
        let tp = part.topic_partition();
        // A partition of a topic deleted and created again under its name is replaced:
        // the old one is gone, and the new one needs the marker.
        if t.partitions
            .get(&tp)
            .is_some_and(|p| p.topic_id == part.topic_id)
        {
            return Ok(());
        }
        self.begin(catalog, &mut t);
        t.partitions.insert(tp, part.clone());
        // Not fsync'd: recovery finds open transactions in the partitions themselves,
        // and starts the next session past every epoch a partition holds for the
        // producer id, whatever of this log a crash lost.
        let log = self.log(catalog)?;
        Self::write(&log, transactional_id, &t, catalog.now_ms())?;
        Ok(())
    }

    fn begin(&self, catalog: &Catalog, t: &mut Txn) {
        if t.status != Status::Ongoing {
            t.status = Status::Ongoing;
            t.start_ms = catalog.now_ms();
            t.partitions.clear();
            t.offsets.clear();
            t.offsets_sequence = 0;
        }
    }

    /// Writes `offsets` of `group` into the open transaction of `session` (Kafka's
    /// `AddOffsetsToTxn` + `TxnOffsetCommit`): appended to `__consumer_offsets` as
    /// transactional records, applied to the group when the transaction commits.
    ///
    /// # Errors
    /// `Fenced`; `NotFound` for a deleted topic; `Io`; `Closed`.
    pub(crate) fn add_offsets(
        &self,
        catalog: &Catalog,
        transactional_id: &str,
        session: Session,
        (group, member): (&str, Option<(&str, i32)>),
        offsets: BTreeMap<TopicPartition, Commit>,
    ) -> Result<()> {
        let offsets_log = self.groups.offsets_partition(catalog)?;
        self.add_partition(catalog, transactional_id, session, &offsets_log)?;
        let entry = self.entry(transactional_id, session)?;
        let mut t = entry.lock();
        Self::check(transactional_id, &t, session)?;
        let sequence = t.offsets_sequence;
        let appended = self.groups.append_txn_commits(
            &offsets_log,
            group,
            member,
            &offsets,
            (session.producer_id, session.epoch, sequence),
            catalog.now_ms(),
        );
        // Appended or not (then no longer pending), its waiters look again.
        t.to_wake.push(offsets_log.clone());
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                unlock_and_wake(catalog, t);
                return Err(e);
            }
        };
        t.offsets_sequence =
            crate::format::batch::add_sequence(sequence, info.last_offset - info.base_offset + 1);
        t.offsets
            .push((group.to_string(), offsets, info.last_offset));
        unlock_and_wake(catalog, t);
        Ok(())
    }

    /// Ends the open transaction of `session` (Kafka's `EndTxn`): commits or aborts it
    /// on every partition it wrote to, and returns the session for the next transaction.
    /// A commit returns once its decision is durable (see the module docs).
    ///
    /// # Errors
    /// `Fenced`; `Io` or `Poisoned` before the commit decision is durable (the
    /// transaction is then still open: abort it, or reopen the store, which aborts it).
    pub(crate) fn end(
        &self,
        catalog: &Catalog,
        transactional_id: &str,
        session: Session,
        commit: bool,
    ) -> Result<Session> {
        let entry = self.entry(transactional_id, session)?;
        let mut t = entry.lock();
        let r = self.end_locked(catalog, transactional_id, session, commit, &mut t);
        unlock_and_wake(catalog, t);
        r
    }

    /// [`end`](Self::end) of a transaction whose lock the caller holds.
    fn end_locked(
        &self,
        catalog: &Catalog,
        transactional_id: &str,
        session: Session,
        commit: bool,
        t: &mut Txn,
    ) -> Result<Session> {
        Self::check(transactional_id, t, session)?;
        if t.status != Status::Ongoing {
            return Ok(t.session);
        }
        let log = self.log(catalog)?;
        if commit && t.partitions.len() == 1 {
            return self.commit_one_partition(catalog, &log, transactional_id, t, session);
        }
        if commit {
            for p in t.partitions.values() {
                if topic_deleted(p) {
                    continue; // nothing of it to commit
                }
                p.flush_to(p.log_end_offset())?;
            }
            t.status = Status::PrepareCommit;
            let at = Self::write(&log, transactional_id, t, catalog.now_ms())
                .and_then(|at| log.flush_to(at + 1));
            if let Err(e) = at {
                // The decision may have reached the disk or not: the next open decides.
                t.status = Status::Ongoing;
                t.broken = Some(format!("its commit decision may not be on disk ({e})"));
                return Err(e);
            }
        } else {
            t.status = Status::PrepareAbort;
            if let Err(e) = Self::write(&log, transactional_id, t, catalog.now_ms()) {
                // Nothing decided or written: still open, to abort again (or at the next
                // open). Left `PrepareAbort`, a retry would have been answered as done
                // without a marker, and the next transaction, under the same epoch,
                // would have committed these records with its own.
                t.status = Status::Ongoing;
                return Err(e);
            }
        }
        // Decided: from here on nothing is the caller's error.
        self.complete(catalog, t, session.epoch, transactional_id);
        self.finish(catalog, &log, transactional_id, t, true);
        Ok(t.session)
    }

    /// Commits a transaction that wrote to one partition: its COMMIT marker, fsync'd
    /// together with the records before it, is the decision (one fsync instead of
    /// three: with a single partition there is nothing to keep in step, and recovery
    /// cannot find the marker without the records, which precede it in the same log).
    /// Readers see the transaction once the marker is appended, as they see any record
    /// once it is appended (before it is fsync'd); it is durable when this returns. If
    /// the fsync fails, whether it committed is decided at the next open.
    fn commit_one_partition(
        &self,
        catalog: &Catalog,
        log: &PartitionState,
        transactional_id: &str,
        t: &mut Txn,
        session: Session,
    ) -> Result<Session> {
        let p = t.partitions.values().next().expect("one partition").clone();
        // A topic deleted meanwhile has nothing left to commit.
        if !topic_deleted(&p) {
            // Fails before the marker is written: the transaction stays open.
            let info = p.append_marker(session.producer_id, session.epoch, true)?;
            t.to_wake.push(p.clone());
            if let Err(e) = p.flush_to(info.last_offset + 1) {
                // The partition is poisoned; whether the marker reached the disk decides
                // at the next open.
                t.broken = Some(format!(
                    "the COMMIT marker of {}-{} was not fsync'd: {e}",
                    p.topic, p.partition
                ));
                return Err(e);
            }
            if p.topic == crate::groups::OFFSETS_TOPIC {
                self.apply_offsets(t);
                self.settle_offsets(t);
            }
        }
        t.status = Status::CompleteCommit;
        // Committed: whatever fails from here is not the caller's error.
        self.finish(catalog, log, transactional_id, t, true);
        Ok(t.session)
    }

    /// Applies a committed transaction's offsets to their groups (its COMMIT marker on
    /// the offsets topic is written).
    fn apply_offsets(&self, t: &Txn) {
        for (group, offsets, at) in &t.offsets {
            self.groups.apply_txn_commits(group, offsets, *at);
        }
    }

    /// The transaction's offsets are decided (their marker is written): no longer
    /// pending, and read_committed consumers waiting on them go on.
    fn settle_offsets(&self, t: &mut Txn) {
        if t.offsets.is_empty() {
            return; // no waiter to wake (each transaction ends here)
        }
        for (group, offsets, _) in t.offsets.drain(..) {
            self.groups.settle_txn_commits(&group, &offsets);
        }
        t.notify = true;
    }

    /// After a decided transaction: records it complete (best effort: recovery decides
    /// the same from the partitions without it) and moves to the next session. Nothing
    /// here is reported to the caller, whose transaction is decided: a failure makes the
    /// transactional id refuse work until the store is reopened.
    fn finish(
        &self,
        catalog: &Catalog,
        log: &PartitionState,
        transactional_id: &str,
        t: &mut Txn,
        next_session: bool,
    ) {
        if let Err(e) = Self::write(log, transactional_id, t, catalog.now_ms()) {
            tracing::warn!(
                "transaction `{transactional_id}`: its completion was not recorded: {e}"
            );
        }
        t.partitions.clear();
        t.offsets.clear();
        if !next_session {
            return;
        }
        if let Err(e) = self.next_session(catalog, t) {
            let reason = format!("no producer id for its next session: {e}");
            tracing::error!("transaction `{transactional_id}`: {reason}");
            t.broken = Some(reason);
        }
    }

    /// Writes the markers of a decided transaction (under `marker_epoch`) and applies its
    /// offsets if it committed; [`finish`](Self::finish) then records it complete. A
    /// commit's markers are fsync'd
    /// before `CompleteCommit` is written, so the next transaction of this id never
    /// starts while a marker of this one could still be lost (recovery decides an open
    /// transaction by the latest record of its id only).
    fn complete(&self, catalog: &Catalog, t: &mut Txn, marker_epoch: i16, transactional_id: &str) {
        let commit = t.status == Status::PrepareCommit;
        let kind = if commit { "COMMIT" } else { "ABORT" };
        let mut failed = Vec::new();
        let mut written = Vec::new();
        for p in t.partitions.values() {
            match p.append_marker(t.session.producer_id, marker_epoch, commit) {
                Ok(info) => written.push((p.clone(), info.last_offset)),
                // Its topic was deleted meanwhile: no record of it is left to decide
                // (for an abort, also a deletion not decided yet: see `abort_may_skip`).
                Err(_) if topic_deleted(p) || (!commit && abort_may_skip(p, catalog)) => {}
                Err(e) => failed.push(format!("{}-{}: {e}", p.topic, p.partition)),
            }
        }
        if commit {
            for (p, last) in &written {
                if let Err(e) = p.flush_to(last + 1) {
                    failed.push(format!("{}-{}: {e}", p.topic, p.partition));
                }
            }
        }
        let offsets_marker = written
            .iter()
            .any(|(p, _)| p.topic == crate::groups::OFFSETS_TOPIC);
        if commit && offsets_marker {
            self.apply_offsets(t);
        }
        // An abort's offsets are never applied, marker or not. A commit's without their
        // marker stay pending until the next open applies them.
        if offsets_marker || !commit {
            self.settle_offsets(t);
        }
        t.to_wake.extend(written.into_iter().map(|(p, _)| p));
        t.offsets.clear();
        if !failed.is_empty() {
            // The decision stands (recovery writes the markers at the next open);
            // nothing more starts under this transactional id until then.
            let reason = format!("{kind} markers not written: {}", failed.join("; "));
            tracing::error!("transaction `{transactional_id}`: {reason}");
            t.broken = Some(reason);
            return;
        }
        t.status = if commit {
            Status::CompleteCommit
        } else {
            Status::CompleteAbort
        };
        // Recorded complete by the caller (`finish`).
    }

    /// Aborts `t`'s open transaction under the next epoch, which fences the session
    /// that opened it: its batches to those partitions are refused from now on.
    fn abort_fencing(
        &self,
        catalog: &Catalog,
        log: &PartitionState,
        transactional_id: &str,
        t: &mut Txn,
        why: &'static str,
    ) -> Result<()> {
        let epoch = t.session.epoch + 1;
        let (session, fenced) = (t.session, t.fenced);
        t.status = Status::PrepareAbort;
        t.session.epoch = epoch;
        t.fenced = Some(why);
        if let Err(e) = Self::write(log, transactional_id, t, catalog.now_ms()) {
            // Not fenced after all: the transaction stays open under its session, for
            // the next try (`init` again, the next maintenance pass, or the next open)
            // to abort. Left half-fenced, the next `init` would skip the abort and let
            // the new session's first batch join the old one's open transaction.
            t.status = Status::Ongoing;
            t.session = session;
            t.fenced = fenced;
            return Err(e);
        }
        self.complete(catalog, t, epoch, transactional_id);
        // The session after it is the caller's (`init`), or none (a timeout).
        self.finish(catalog, log, transactional_id, t, false);
        Ok(())
    }

    /// Aborts every transaction open for longer than its timeout (maintenance), fencing
    /// its producer. Returns how many.
    pub(crate) fn abort_expired(&self, catalog: &Catalog) -> usize {
        let Some(log) = self.log.lock().clone() else {
            return 0;
        };
        let now = catalog.now_ms();
        let all: Vec<(String, Arc<Mutex<Txn>>)> = self
            .txns
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut aborted = 0;
        for (id, entry) in all {
            let mut t = entry.lock();
            // A broken transaction's outcome is the next open's to decide (its commit
            // decision or marker may be on disk): aborting it here would write an abort
            // for what may have committed, and report it aborted.
            if t.status == Status::Ongoing
                && t.broken.is_none()
                && now.saturating_sub(t.start_ms) > i64::from(t.timeout_ms)
            {
                match self.abort_fencing(
                    catalog,
                    &log,
                    &id,
                    &mut t,
                    crate::error::TRANSACTION_TIMED_OUT,
                ) {
                    Ok(()) => aborted += 1,
                    Err(e) => {
                        tracing::error!("transaction `{id}`: aborting after its timeout: {e}")
                    }
                }
            }
            unlock_and_wake(catalog, t);
        }
        aborted
    }

    /// Appends `t`'s state to the transaction log (not synced); returns its offset.
    fn write(log: &PartitionState, transactional_id: &str, t: &Txn, now: i64) -> Result<i64> {
        let value = record::encode_value(&TxnRecord {
            producer_id: t.session.producer_id,
            producer_epoch: t.session.epoch,
            timeout_ms: t.timeout_ms,
            status: t.status,
            partitions: t.partitions.keys().cloned().collect(),
            last_update_ms: now,
            start_ms: t.start_ms,
        });
        let key = record::encode_key(transactional_id);
        let mut b = BatchBuilder::new();
        b.push(now, Some(&key), Some(&value), &[])?;
        let mut batch: EncodedBatch = b.build()?;
        let info = log.append_encoded(&mut batch)?;
        Ok(info.last_offset)
    }
}
