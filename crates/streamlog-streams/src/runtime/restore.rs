//! Restoring a task's stores from their changelog topics before it processes anything,
//! and catching them up once its inputs' positions are decided.

use std::time::Duration;

use streamlog::{ConsumerConfig, IsolationLevel, OffsetReset, Store, TopicPartition};

use super::config::{RestoreListener, RestoreProgress};
use super::task::Task;
use crate::error::{Result, StreamsError};
use crate::metrics::Metrics;
use crate::store::StoreHandle;

/// What a restore reads with and reports to.
pub(crate) struct Restorer<'a> {
    pub(crate) store: &'a Store,
    pub(crate) isolation: IsolationLevel,
    pub(crate) metrics: &'a Metrics,
}

impl Restorer<'_> {
    /// Reads every store's changelog partition from its start to its end (its last
    /// stable offset under read_committed, so aborted changes are never restored) into
    /// the store, reporting to `listener`; notes where each stopped in the task.
    pub(crate) fn restore_task(
        &self,
        task: &mut Task,
        listener: Option<&RestoreListener>,
    ) -> Result<()> {
        let mut reached = Vec::with_capacity(task.stores.len());
        for (name, (changelog, handle)) in &task.stores {
            let at = self.restore_store(
                (name, changelog, task.id.partition),
                &**handle,
                None,
                listener,
            )?;
            reached.push((name.clone(), at));
        }
        task.restored_to.extend(reached);
        Ok(())
    }

    /// Reads what each store's changelog gained past where the task's restore stopped.
    ///
    /// A task is restored when its partition is assigned, while the previous owner's
    /// last transaction may still be undecided: its changelog records lie past the last
    /// stable offset the restore stopped at, and its input offsets are pending (the
    /// inputs' positions wait for them, KIP-447). Once they are decided, so is the
    /// transaction (every marker is appended before its offsets settle): the task reads
    /// the rest before its first record, or its stores would lack that transaction's
    /// changes for good while its input offsets stay committed. (If the changelog's
    /// marker failed and the offsets' did not, the transaction waits for the store's
    /// reopen, which this does not wait for.)
    pub(crate) fn catch_up_task(&self, task: &mut Task) -> Result<()> {
        let mut reached = Vec::with_capacity(task.stores.len());
        for (name, (changelog, handle)) in &task.stores {
            let from = task.restored_to.get(name).copied();
            let at =
                self.restore_store((name, changelog, task.id.partition), &**handle, from, None)?;
            reached.push((name.clone(), at));
        }
        task.restored_to.extend(reached);
        task.caught_up = true;
        Ok(())
    }

    /// Reads `changelog`'s partition from `from` (its start if `None`) to its end into
    /// `handle`; returns the position reached.
    fn restore_store(
        &self,
        (name, changelog, partition): (&String, &str, i32),
        handle: &dyn StoreHandle,
        from: Option<i64>,
        listener: Option<&RestoreListener>,
    ) -> Result<i64> {
        let fail = |reason: String| StreamsError::Restore {
            store: name.clone(),
            topic: changelog.to_string(),
            partition,
            reason,
        };
        let tp = TopicPartition::new(changelog, partition);
        let mut consumer = self
            .store
            .consumer(
                ConsumerConfig::default()
                    .enable_auto_commit(false)
                    .auto_offset_reset(OffsetReset::Earliest)
                    .isolation_level(self.isolation),
            )
            .map_err(|e| fail(e.to_string()))?;
        consumer
            .assign(std::slice::from_ref(&tp))
            .map_err(|e| fail(e.to_string()))?;
        if let Some(from) = from {
            consumer.seek(&tp, from).map_err(|e| fail(e.to_string()))?;
        }
        let end = consumer
            .end_offsets(std::slice::from_ref(&tp))
            .map_err(|e| fail(e.to_string()))?
            .get(&tp)
            .copied()
            .unwrap_or(0);
        let mut progress = RestoreProgress {
            store: name.clone(),
            partition,
            restored: 0,
            end_offset: end,
            done: false,
        };
        if let Some(l) = listener {
            l(&progress);
        }
        let reached = loop {
            let position = consumer.position(&tp).map_err(|e| fail(e.to_string()))?;
            if position >= end {
                break position;
            }
            let records = consumer
                .poll(Duration::ZERO)
                .map_err(|e| fail(e.to_string()))?;
            if records.is_empty() {
                let after = consumer.position(&tp).map_err(|e| fail(e.to_string()))?;
                if after == position {
                    // Nothing more can be read (the end moved back under compaction or
                    // a crash): what was read is the store.
                    break position;
                }
                continue;
            }
            for r in records.iter() {
                let Some(key) = r.key() else { continue };
                handle
                    .restore(key, r.value(), r.timestamp())
                    .map_err(|e| fail(format!("offset {}: {e}", r.offset())))?;
            }
            progress.restored += records.len() as u64;
            Metrics::add(&self.metrics.restored, records.len() as u64);
            if let Some(l) = listener {
                l(&progress);
            }
        };
        handle.restored();
        progress.done = true;
        if let Some(l) = listener {
            l(&progress);
        }
        consumer.close().map_err(|e| fail(e.to_string()))?;
        Ok(reached)
    }
}
