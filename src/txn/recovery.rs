//! Opening the coordinator: the transaction log replayed, and every transaction a crash
//! left open in a partition committed or aborted (see the module docs of `txn`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::record::{self, Status, TxnRecord};
use super::{Session, TXN_TOPIC, Txn, TxnCoordinator};
use crate::catalog::{Catalog, PartitionState, RecoveredTransaction};
use crate::error::Result;
use crate::groups::Coordinator as Groups;

impl TxnCoordinator {
    /// Opens the coordinator of `catalog`'s store (after its partitions are recovered,
    /// before committed offsets are loaded): replays `__transaction_state`, and closes
    /// every transaction still open in a partition, committing it if the latest record
    /// of its producer id decided so under the epoch its data carries, else aborting it.
    ///
    /// # Errors
    /// `Io`, `Poisoned` or `Corruption` from reading or writing partitions.
    pub(crate) fn recover(
        catalog: &Catalog,
        groups: Arc<Groups>,
    ) -> Result<(TxnCoordinator, Vec<RecoveredTransaction>)> {
        let coordinator = TxnCoordinator {
            groups,
            txns: Mutex::default(),
            log: Mutex::default(),
        };
        let log = catalog
            .topic_names()
            .iter()
            .any(|n| n == TXN_TOPIC)
            .then(|| catalog.partition(TXN_TOPIC, 0))
            .transpose()?;
        let latest = match &log {
            Some(log) => replay(log)?,
            None => HashMap::new(),
        };
        // The commit decisions: producer id -> the epoch it committed under.
        let decided: HashMap<i64, i16> = latest
            .values()
            .filter(|r| matches!(r.status, Status::PrepareCommit | Status::CompleteCommit))
            .map(|r| (r.producer_id, r.producer_epoch))
            .collect();
        let mut resolved = Vec::new();
        let mut touched: Vec<(Arc<PartitionState>, i64)> = Vec::new();
        for topic in catalog.topics() {
            for p in topic.partitions() {
                for (pid, epoch) in p.open_transactions() {
                    let commit = decided.get(&pid) == Some(&epoch);
                    let info = p.append_marker(pid, epoch, commit)?;
                    tracing::warn!(
                        "{}-{}: recovery {} the transaction of producer {pid} (epoch {epoch}) \
                         a crash left open",
                        p.topic,
                        p.partition,
                        if commit { "committed" } else { "aborted" }
                    );
                    resolved.push(RecoveredTransaction {
                        partition: p.topic_partition(),
                        producer_id: pid,
                        producer_epoch: epoch,
                        committed: commit,
                    });
                    touched.push((p.clone(), info.last_offset + 1));
                }
            }
        }
        for (p, end) in &touched {
            p.flush_to(*end)?;
        }
        // The highest epoch each partition holds for the transactional producer ids.
        let mut epochs: HashMap<i64, i16> = HashMap::new();
        let ids: Vec<i64> = latest.values().map(|r| r.producer_id).collect();
        if !ids.is_empty() {
            for topic in catalog.topics() {
                for p in topic.partitions() {
                    for (id, e) in p.producer_epochs(&ids) {
                        let max = epochs.entry(id).or_insert(e);
                        *max = (*max).max(e);
                    }
                }
            }
        }
        let mut txns = HashMap::new();
        for (id, r) in latest {
            let status = match r.status {
                Status::PrepareCommit => Status::CompleteCommit,
                Status::PrepareAbort | Status::Ongoing => Status::CompleteAbort,
                other => other,
            };
            let mut t = Txn {
                session: Session {
                    producer_id: r.producer_id,
                    epoch: r.producer_epoch,
                },
                timeout_ms: r.timeout_ms,
                status,
                partitions: BTreeMap::new(),
                offsets: Vec::new(),
                offsets_sequence: 0,
                start_ms: r.start_ms,
                fenced: None,
                broken: None,
                to_wake: Vec::new(),
                notify: false,
            };
            if let (Some(log), true) = (&log, status != r.status) {
                // Recorded complete, so the next open need not look at it again.
                TxnCoordinator::write(log, &id, &t, catalog.now_ms())?;
            }
            // The next session must be past every epoch a partition holds data or a
            // marker of: records of this log a crash lost (an `Ongoing`, a `Complete*`)
            // may have been followed by data that survived, and a new session under
            // that epoch would have its first batches (the same sequences) taken for
            // duplicates of it.
            if let Some(seen) = epochs.get(&r.producer_id) {
                t.session.epoch = t.session.epoch.max(*seen);
            }
            coordinator.next_session(catalog, &mut t)?;
            txns.insert(id, Arc::new(Mutex::new(t)));
        }
        if let Some(log) = &log {
            log.flush_to(log.log_end_offset())?;
        }
        *coordinator.txns.lock() = txns;
        *coordinator.log.lock() = log;
        Ok((coordinator, resolved))
    }
}

/// The latest record of each transactional id in the transaction log.
fn replay(log: &PartitionState) -> Result<HashMap<String, TxnRecord>> {
    let mut latest = HashMap::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let records = log.read_records(offset, 1 << 20)?;
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        for r in records {
            let Some(id) = r.key.clone().and_then(record::decode_key) else {
                tracing::warn!(
                    "{TXN_TOPIC}: skipping a record at offset {} with an unknown key",
                    r.offset
                );
                continue;
            };
            match r.value.clone() {
                None => {
                    latest.remove(&id);
                }
                Some(v) => match record::decode_value(v) {
                    Some(rec) => {
                        latest.insert(id, rec);
                    }
                    None => tracing::warn!(
                        "{TXN_TOPIC}: skipping a record at offset {} with an unknown value",
                        r.offset
                    ),
                },
            }
        }
    }
    Ok(latest)
}
