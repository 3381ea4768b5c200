//! Restoring a task's stores from their changelog topics before it processes anything.

use std::time::Duration;

use streamlog::{ConsumerConfig, IsolationLevel, OffsetReset, Store, TopicPartition};

use super::config::{RestoreListener, RestoreProgress};
use super::task::Task;
use crate::error::{Result, StreamsError};
use crate::metrics::Metrics;

/// Reads every store's changelog partition from its start to its end (its last stable
/// offset under read_committed, so aborted changes are never restored) into the store.
pub(crate) fn restore_task(
    store: &Store,
    task: &Task,
    isolation: IsolationLevel,
    metrics: &Metrics,
    listener: Option<&RestoreListener>,
) -> Result<()> {
    for (name, (changelog, handle)) in &task.stores {
        let partition = task.id.partition;
        let fail = |reason: String| StreamsError::Restore {
            store: name.clone(),
            topic: changelog.to_string(),
            partition,
            reason,
        };
        let tp = TopicPartition::new(&**changelog, partition);
        let mut consumer = store
            .consumer(
                ConsumerConfig::default()
                    .enable_auto_commit(false)
                    .auto_offset_reset(OffsetReset::Earliest)
                    .isolation_level(isolation),
            )
            .map_err(|e| fail(e.to_string()))?;
        consumer
            .assign(std::slice::from_ref(&tp))
            .map_err(|e| fail(e.to_string()))?;
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
        loop {
            let position = consumer.position(&tp).map_err(|e| fail(e.to_string()))?;
            if position >= end {
                break;
            }
            let records = consumer
                .poll(Duration::ZERO)
                .map_err(|e| fail(e.to_string()))?;
            if records.is_empty() {
                let after = consumer.position(&tp).map_err(|e| fail(e.to_string()))?;
                if after == position {
                    // Nothing more can be read (the end moved back under compaction or
                    // a crash): what was read is the store.
                    break;
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
            Metrics::add(&metrics.restored, records.len() as u64);
            if let Some(l) = listener {
                l(&progress);
            }
        }
        handle.restored();
        progress.done = true;
        if let Some(l) = listener {
            l(&progress);
        }
        consumer.close().map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}
