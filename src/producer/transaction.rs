//! The client side of transactions: [`Producer::init_transactions`],
//! [`begin_transaction`](Producer::begin_transaction),
//! [`send_offsets_to_transaction`](Producer::send_offsets_to_transaction),
//! [`commit_transaction`](Producer::commit_transaction) and
//! [`abort_transaction`](Producer::abort_transaction), over the store's transaction
//! coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Producer, Shared};
use crate::catalog::{PartitionState, TopicId};
use crate::error::{Error, Result};
use crate::groups::{Commit, ConsumerGroupMetadata};
use crate::topic::TopicPartition;
use crate::txn::{Session, TxnCoordinator};

/// A transactional producer's link to the coordinator and where it stands.
pub(super) struct TxnClient {
    pub(super) coordinator: Arc<TxnCoordinator>,
    pub(super) id: String,
    pub(super) timeout_ms: i32,
    state: Mutex<ClientState>,
}

#[derive(Default)]
struct ClientState {
    session: Option<Session>,
    phase: Phase,
    /// Partitions the open transaction has written to (known to the coordinator), with
    /// the incarnation of their topic: a topic deleted and created again under the same
    /// name is a partition the transaction has not written to yet.
    added: HashMap<TopicPartition, TopicId>,
    /// The first send of the open transaction that failed: it must be aborted.
    failed: Option<Error>,
    /// What fenced the producer (`Phase::Fenced`): every later call returns it, so its
    /// reason (a newer producer, or the transaction's timeout) is not lost.
    fence: Option<Error>,
}

impl ClientState {
    /// Fenced by `e` (an `Error::Fenced`, or another error that fences).
    fn fence(&mut self, e: &Error) {
        self.phase = Phase::Fenced;
        if self.fence.is_none() && matches!(e, Error::Fenced { .. }) {
            self.fence = Some(e.clone());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// `init_transactions` not called yet.
    #[default]
    Uninitialized,
    Ready,
    InTransaction,
    /// Committing or aborting: sends are refused meanwhile.
    Ending,
    Fenced,
}

fn state_error(reason: impl Into<String>) -> Error {
    Error::TransactionState {
        reason: reason.into(),
    }
}

impl TxnClient {
    pub(super) fn new(coordinator: Arc<TxnCoordinator>, id: String, timeout_ms: i32) -> TxnClient {
        TxnClient {
            coordinator,
            id,
            timeout_ms,
            state: Mutex::default(),
        }
    }

    /// Before a record is added for `part` (under its partition's lock): the producer
    /// must be in a transaction, and the partition is added to it at its first record.
    pub(super) fn before_send(&self, shared: &Shared, part: &Arc<PartitionState>) -> Result<()> {
        let mut st = self.state.lock();
        match st.phase {
            Phase::InTransaction => {}
            Phase::Fenced => return Err(self.fenced_again(&st)),
            Phase::Uninitialized => {
                return Err(state_error("call init_transactions before sending"));
            }
            Phase::Ready | Phase::Ending => {
                return Err(state_error(
                    "a transactional producer sends only inside a transaction \
                     (call begin_transaction)",
                ));
            }
        }
        if let Some(e) = &st.failed {
            // Kafka's abortable-error state: after a failed send, commit or abort nothing more
            // joins the transaction (a commit decision may be on disk already, and the
            // next open would commit what came after it).
            return Err(state_error(format!(
                "an earlier send, commit or abort of this transaction failed ({e}); abort it"
            )));
        }
        let tp = part.topic_partition();
        let session = st.session.expect("a session in a transaction");
        if st.added.get(&tp) == Some(&part.topic_id) {
            // Added already, but the session may have been fenced since.
            return self
                .coordinator
                .check_session(&self.id, session)
                .inspect_err(|e| {
                    if matches!(e, Error::Fenced { .. }) {
                        st.fence(e);
                    }
                });
        }
        let added = self
            .coordinator
            .add_partition(&shared.catalog, &self.id, session, part);
        if let Err(e) = added {
            if matches!(e, Error::Fenced { .. }) {
                st.fence(&e);
            }
            return Err(e);
        }
        st.added.insert(tp, part.topic_id);
        Ok(())
    }

    /// A batch of the open transaction failed: the transaction can only be aborted. A
    /// partition refusing the epoch fences the producer: returns the `Fenced` error
    /// its batches and every later call report.
    pub(super) fn send_failed(&self, e: &Error) -> Option<Error> {
        let session = {
            let mut st = self.state.lock();
            if st.failed.is_none() {
                st.failed = Some(e.clone());
            }
            if !matches!(e, Error::InvalidProducerEpoch { .. }) {
                return None;
            }
            st.session
        };
        // The coordinator knows why (a newer producer, or the transaction aborted after
        // its timeout). Asked without the state's lock: a coordinator path holding a
        // transaction's entry may wait for it.
        let why = session.and_then(|s| self.coordinator.check_session(&self.id, s).err());
        let fenced = match why {
            Some(f @ Error::Fenced { .. }) => f,
            _ => self.fenced("a newer producer with this transactional id fenced it"),
        };
        let mut st = self.state.lock();
        st.fence(&fenced);
        st.fence.clone()
    }

    /// A send call returned `e` inside the transaction (Kafka's abortable error: any
    /// failure of `send`): records of the call may have been added before it failed,
    /// so the transaction can only be aborted. Errors of the producer's state (outside
    /// a transaction, fenced, closed) leave it as it is.
    pub(super) fn call_failed(&self, e: &Error) {
        if matches!(
            e,
            Error::TransactionState { .. } | Error::Fenced { .. } | Error::Closed { .. }
        ) {
            return;
        }
        let mut st = self.state.lock();
        // Not while a clone commits (`Ending`): a send failing then never joined the
        // transaction being committed.
        if st.phase == Phase::InTransaction && st.failed.is_none() {
            st.failed = Some(e.clone());
        }
    }

    /// The error of a call on a fenced producer: what fenced it.
    fn fenced_again(&self, st: &ClientState) -> Error {
        st.fence
            .clone()
            .unwrap_or_else(|| self.fenced("an earlier call found it fenced"))
    }

    pub(super) fn fenced(&self, reason: &str) -> Error {
        Error::Fenced {
            transactional_id: self.id.clone(),
            reason: reason.to_string(),
        }
    }
}

impl Producer {
    fn txn(&self) -> Result<&TxnClient> {
        self.handle
            .shared
            .txn
            .as_ref()
            .ok_or_else(no_transactional_id)
    }

    /// Starts this producer's session for its `transactional_id` (Kafka's
    /// `initTransactions`): fences every older producer with the same id (their next
    /// call returns [`Error::Fenced`]) and aborts a transaction one of them left open.
    /// Call once, before the first transaction.
    ///
    /// # Errors
    /// `TransactionState` without a `transactional_id` or if called twice; `Io` (the
    /// older producer's transaction is then still open: call again); `Poisoned` if
    /// the abort fencing it was decided but its markers could not be written (until the
    /// store is reopened); `Closed`.
    pub fn init_transactions(&self) -> Result<()> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let txn = self.txn()?;
        {
            let mut st = txn.state.lock();
            if st.phase != Phase::Uninitialized {
                return Err(state_error("init_transactions was already called"));
            }
            // Busy meanwhile: sends and other calls are refused.
            st.phase = Phase::Ending;
        }
        // Lock order: the producer's and partitions' locks are taken before `txn.state` (a send checks
        // its transaction under it), never while holding `txn.state`.
        let result = txn
            .coordinator
            .init(&shared.catalog, &txn.id, txn.timeout_ms);
        if let Ok(session) = &result {
            shared.state.lock().producer = Some((session.producer_id, session.epoch));
        }
        let mut st = txn.state.lock();
        match result {
            Ok(session) => {
                st.session = Some(session);
                st.phase = Phase::Ready;
                Ok(())
            }
            Err(e) => {
                st.phase = Phase::Uninitialized;
                Err(e)
            }
        }
    }

    /// Starts a transaction: every record sent until
    /// [`commit_transaction`](Self::commit_transaction) or
    /// [`abort_transaction`](Self::abort_transaction) is part of it.
    ///
    /// # Errors
    /// `TransactionState` before `init_transactions` or inside a transaction; `Fenced`.
    pub fn begin_transaction(&self) -> Result<()> {
        self.handle.shared.check_open()?;
        let txn = self.txn()?;
        let mut st = txn.state.lock();
        match st.phase {
            Phase::Ready => {
                st.phase = Phase::InTransaction;
                st.added.clear();
                st.failed = None;
                Ok(())
            }
            Phase::Fenced => Err(txn.fenced_again(&st)),
            Phase::Uninitialized => Err(state_error("call init_transactions first")),
            Phase::InTransaction | Phase::Ending => {
                Err(state_error("a transaction is already open"))
            }
        }
    }

    /// Adds a consumer group's offsets to the open transaction (Kafka's
    /// `sendOffsetsToTransaction`): they are committed for the group if and only if the
    /// transaction commits. `offsets` are the next offsets to read, as in
    /// [`Consumer::commit_sync_offsets`](crate::Consumer::commit_sync_offsets).
    ///
    /// With the metadata of a consumer in the group's membership
    /// ([`Consumer::group_metadata`](crate::Consumer::group_metadata)), that consumer
    /// must still own every partition, and have owned it since the metadata's
    /// generation: one a rebalance took them from (a zombie), or metadata from before
    /// a partition was lost and given back, gets `CommitFailed`, as Kafka fences it
    /// (KIP-447).
    ///
    /// # Errors
    /// `TransactionState` outside a transaction; `InvalidArgument` for a negative
    /// offset or a group id that is empty or longer than 32767 bytes; `NotFound` for an
    /// unknown partition, or one of a topic deleted (and perhaps created again) since
    /// the consumer whose metadata this is was assigned it; `CommitFailed` for a consumer that
    /// no longer owns a partition; `Fenced`; `Io`. `CommitFailed` and `Io` make the
    /// transaction abort-only, as in Kafka: its output must not commit without these
    /// offsets.
    pub fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let txn = self.txn()?;
        // Held to the end: a commit or abort on a clone of this producer waits, instead
        // of ending the transaction (and replacing the session) under the offsets,
        // which the coordinator would then refuse as from a fenced producer.
        let mut st = txn.state.lock();
        match st.phase {
            Phase::InTransaction => {}
            Phase::Fenced => return Err(txn.fenced_again(&st)),
            _ => {
                return Err(state_error(
                    "send_offsets_to_transaction needs an open transaction",
                ));
            }
        }
        if let Some(e) = &st.failed {
            return Err(state_error(format!(
                "an earlier send, commit or abort of this transaction failed ({e}); abort it"
            )));
        }
        // A longer id would be stored cut short, as another group's.
        crate::groups::check_group(group.group_id())?;
        let session = st.session.expect("a session in a transaction");
        let mut commits = BTreeMap::new();
        for (tp, &offset) in offsets {
            if offset < 0 {
                return Err(Error::InvalidArgument {
                    name: "offset",
                    reason: format!("{offset} for {tp} is negative"),
                });
            }
            let p = shared.catalog.partition(tp.topic(), tp.partition())?;
            // Metadata from a consumer names the topic it read: a topic of that name
            // created since (deleted and created again, no rebalance between) is
            // another one, whose records these offsets never counted.
            if group.read_another_incarnation(tp, p.topic_id) {
                return Err(Error::NotFound {
                    kind: "topic",
                    name: format!(
                        "{} (committing for {tp}: the consumer read a topic of that name \
                         deleted since)",
                        tp.topic()
                    ),
                });
            }
            commits.insert(
                tp.clone(),
                Commit {
                    offset,
                    epoch: p.epoch(),
                    topic_id: Some(p.topic_id),
                    at: -1,
                },
            );
        }
        if commits.is_empty() {
            return Ok(());
        }
        // A consumer in the group's membership must still own the partitions (a
        // `ConsumerGroupMetadata::new` outside the membership is not checked, as Kafka).
        let member = Some(group.member_id())
            .filter(|m| !m.is_empty())
            .map(|m| (m, group.generation_id()));
        let r = txn.coordinator.add_offsets(
            &shared.catalog,
            &txn.id,
            session,
            (group.group_id(), member),
            commits,
        );
        match &r {
            Err(e @ Error::Fenced { .. }) => st.fence(e),
            // Committing the output without these offsets would process the input
            // again after a restart: only an abort may follow (Kafka's abortable error).
            Err(e) if st.failed.is_none() => st.failed = Some(e.clone()),
            _ => {}
        }
        r
    }

    /// Commits the open transaction: appends every record sent in it, makes them
    /// durable, records the decision durably, and writes COMMIT markers to every
    /// partition it wrote to (and to `__consumer_offsets` for offsets sent to it).
    /// When it returns Ok the commit is decided durably: after a crash or power loss,
    /// `read_committed` consumers see all of the transaction. A COMMIT marker that could
    /// not be appended (its partition poisoned) is written by the next open of the
    /// store, and until then that partition's `read_committed` consumers wait at the
    /// transaction; one appended whose fsync failed is read already, and the next open
    /// makes it durable from the decision.
    ///
    /// After any error but `Fenced` the transaction can only be aborted, as after a
    /// failed send (Kafka's abortable-error state): sends and commits are refused
    /// until [`abort_transaction`](Self::abort_transaction).
    ///
    /// # Errors
    /// `TransactionState` outside a transaction, or if a send of it failed (a call of
    /// `send`, `send_batch` or `send_async` that returned an error, or a delivery that
    /// resolved to one), or an earlier commit or abort of it did; `Fenced`; `Io` appending or fsyncing its records before the
    /// decision (it is still open: abort it); `Io` or `Poisoned` from the fsync of the
    /// decision itself: whether it committed is then decided at the next open of the
    /// store (the transactional id refuses work until then), as a Kafka client learns
    /// the outcome of a commit that timed out only later; `Closed` if the store closed,
    /// or if a topic it wrote to was stopped by a deletion whose outcome is unknown
    /// (the deletion failed; the next open finishes it or brings the topic back):
    /// abort it. A topic whose deletion is decided has nothing left to commit.
    pub fn commit_transaction(&self) -> Result<()> {
        end_transaction(&self.handle.shared, true)
    }

    /// Aborts the open transaction: its records are appended, then ABORT markers make
    /// `read_committed` consumers skip them; offsets sent to it are dropped.
    ///
    /// # Errors
    /// `TransactionState` outside a transaction; `Fenced`; `Io`. After an error the
    /// transaction is still open, and only an abort may follow: sends and commits are
    /// refused until one succeeds.
    pub fn abort_transaction(&self) -> Result<()> {
        end_transaction(&self.handle.shared, false)
    }
}

fn no_transactional_id() -> Error {
    state_error("this producer has no transactional_id (ProducerConfig::transactional_id)")
}

fn end_transaction(shared: &Shared, commit: bool) -> Result<()> {
    shared.check_open()?;
    let txn = shared.txn.as_ref().ok_or_else(no_transactional_id)?;
    {
        let mut st = txn.state.lock();
        match st.phase {
            Phase::InTransaction => st.phase = Phase::Ending,
            Phase::Fenced => return Err(txn.fenced_again(&st)),
            _ => return Err(state_error("no transaction is open")),
        }
    }
    let result = finish_transaction(shared, txn, commit);
    if let Ok(session) = &result {
        // Not under `txn.state` (see `init_transactions`): no send runs meanwhile, the
        // phase is `Ending`.
        shared.state.lock().producer = Some((session.producer_id, session.epoch));
    }
    let mut st = txn.state.lock();
    match &result {
        Ok(session) => {
            st.session = Some(*session);
            st.phase = Phase::Ready;
            st.added.clear();
            st.failed = None;
        }
        Err(e @ Error::Fenced { .. }) => st.fence(e),
        Err(e) => {
            st.phase = Phase::InTransaction;
            if st.failed.is_none() {
                // Whatever failed, only an abort may follow: a commit's decision may be
                // on disk (an abort is then refused until a reopen), and after an abort
                // the application decided against this transaction's records (Kafka
                // refuses all but a retried abort).
                st.failed = Some(e.clone());
            }
        }
    }
    result.map(|_| ())
}

fn finish_transaction(shared: &Shared, txn: &TxnClient, commit: bool) -> Result<Session> {
    // Every batch of the transaction appended (or failed) first.
    shared.flush()?;
    let (session, failed) = {
        let st = txn.state.lock();
        (
            st.session.expect("a session in a transaction"),
            st.failed.clone(),
        )
    };
    if let Some(e) = failed {
        if matches!(e, Error::InvalidProducerEpoch { .. }) {
            let st = txn.state.lock();
            return Err(st
                .fence
                .clone()
                .unwrap_or_else(|| txn.fenced("a partition refused its epoch")));
        }
        if commit {
            return Err(state_error(format!(
                "an earlier call of this transaction failed ({e}); abort it"
            )));
        }
    }
    txn.coordinator
        .end(&shared.catalog, &txn.id, session, commit)
}

/// At close: a transaction left open is aborted.
pub(super) fn abort_open_transaction(shared: &Shared) {
    let Some(txn) = shared.txn.as_ref() else {
        return;
    };
    if txn.state.lock().phase != Phase::InTransaction {
        return;
    }
    if let Err(e) = end_transaction(shared, false) {
        tracing::warn!("transaction `{}`: aborting at close: {e}", txn.id);
    }
}
