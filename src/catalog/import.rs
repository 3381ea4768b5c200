//! Adopting Kafka partition directories as a topic: the explicit way in for data the
//! store did not write (open never takes or removes such directories by itself).

use std::path::PathBuf;
use std::sync::Arc;

use super::meta::{TopicId, TopicMeta, read_partition_topic_id, write_partition_metadata};
use super::{Catalog, PartitionState, TopicState, partition_dir_name};
use crate::error::{Error, Result, io_ctx};
use crate::log::{PartitionCheck, verify_partition_dir};
use crate::topic::{CleanupPolicy, TopicConfig, validate_topic_name};

/// What [`Store::import_kafka_topic`](crate::Store::import_kafka_topic) found and adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// The topic.
    pub topic: String,
    /// Its id: Kafka's, from the directories' `partition.metadata`, or a new one.
    pub topic_id: TopicId,
    /// Each partition's directory and what checking it found, in partition order.
    pub partitions: Vec<(PathBuf, PartitionCheck)>,
}

impl Catalog {
    /// Adopts the Kafka partition directories `<name>-<n>` in the store directory as
    /// topic `name` (see [`Store::import_kafka_topic`](crate::Store::import_kafka_topic)).
    pub(crate) fn import_kafka_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<ImportReport> {
        validate_topic_name(name)?;
        crate::topic::refuse_internal(name, "it cannot be imported")?;
        crate::topic::refuse_reserved_name(name)?;
        let mut ddl = self.ddl_for_new_topic(name)?;
        let inner = self;
        let fs = inner.config.fs.as_ref();
        // Every `<name>-<n>` directory: they must be exactly 0..count (a broker's log
        // directory may hold only some partitions of a topic; those cannot be adopted
        // as the whole topic).
        let mut numbers: Vec<i32> = fs
            .list_dir(&inner.dir)
            .map_err(io_ctx(format!("list {}", inner.dir.display())))?
            .iter()
            .filter_map(|entry| {
                let n: i32 = entry.strip_prefix(name)?.strip_prefix('-')?.parse().ok()?;
                (n >= 0 && *entry == partition_dir_name(name, n)).then_some(n)
            })
            .collect();
        numbers.sort_unstable();
        if numbers.is_empty() || numbers.iter().enumerate().any(|(i, &n)| n != i as i32) {
            return Err(Error::InvalidArgument {
                name: "topic",
                reason: format!(
                    "{} holds partitions {numbers:?} of `{name}`; an import needs all of \
                     0..n",
                    inner.dir.display()
                ),
            });
        }
        let dirs: Vec<PathBuf> = numbers
            .iter()
            .map(|&n| inner.dir.join(partition_dir_name(name, n)))
            .collect();
        let mut config = config.partitions(dirs.len() as i32);
        config.validate()?;
        let allow_gaps = config.cleanup_policy != CleanupPolicy::Delete;
        let mut partitions = Vec::with_capacity(dirs.len());
        let mut ids = Vec::new();
        for dir in &dirs {
            partitions.push((dir.clone(), verify_partition_dir(fs, dir, allow_gaps)?));
            ids.push(read_partition_topic_id(fs, dir)?);
        }
        // Kafka's id when the directories name one; those that name none get it (an
        // import that failed part-way leaves some with it: the retry keeps it).
        let mut named = ids.iter().flatten();
        let topic_id = match named.next() {
            Some(&id) if named.all(|&other| other == id) => id,
            Some(_) => {
                return Err(Error::corruption(
                    &dirs[0],
                    0,
                    "the directories' partition.metadata name different topic ids",
                ));
            }
            None => TopicId::random(),
        };
        // The store's producer ids start far above Kafka's (which start at 0), and go on
        // past every one the directories remember before they are adopted (directories
        // of another store): else a producer of the store would be taken for one of
        // them (its batches answered as duplicates of that one's).
        if let Some(max) = partitions
            .iter()
            .filter_map(|(_, c)| c.max_producer_id)
            .max()
        {
            inner.producer_ids.reserve_past(max)?;
        }
        // Each directory names the id before the metadata adopts them: from then on,
        // open checks them as the topic's own.
        for (dir, id) in dirs.iter().zip(&ids) {
            if id.is_none() {
                write_partition_metadata(fs, dir, topic_id)?;
            }
        }
        // The directories were put into the store by the user (a rename, a copy): their
        // entries are made durable before the metadata that adopts them, since a
        // partition of the store never syncs the store directory itself.
        // An fsync that failed is never retried while the store stays open: a retried
        // import would sync again and take its success for these entries' (the store
        // might then name directories a power cut took). The name waits until the
        // store is reopened (an import then runs again from the start).
        if let Err(e) = fs.sync_dir(&inner.dir) {
            let e = Error::io(format!("fsync {}", inner.dir.display()), e);
            let reason = format!("the import of `{name}` failed at a directory fsync ({e})");
            super::ddl::unsettle(&mut ddl, name, reason);
            return Err(e);
        }
        // The partitions open, and forget the directories' producers (their writers':
        // another store's, Kafka's clients), before the metadata adopts them: none of
        // them sends here, and the store's producers must not be taken for them (see
        // `reserve_past` above for those made from now on). A crash before the
        // metadata leaves the directories importable again; after it, forgotten.
        let mut parts: Vec<Arc<PartitionState>> = Vec::with_capacity(dirs.len());
        for p in 0..dirs.len() as i32 {
            let part = inner.open_partition(name, topic_id, p, &config)?;
            if let Err(e) = part.log().forget_adopted_producers() {
                if part.log().poison_reason().is_some() {
                    // The log was poisoned (a failed fsync, say): retried by an import
                    // in this process, a later fsync would be taken for covering what
                    // the failed one left. The name waits for the next open, as for the
                    // directory fsync above.
                    let reason = format!("the import of `{name}` poisoned a partition ({e})");
                    super::ddl::unsettle(&mut ddl, name, reason);
                }
                return Err(e);
            }
            parts.push(part);
        }
        let meta = TopicMeta {
            config: config.clone(),
            id: Some(topic_id),
            intent: None,
            adopting: false,
        };
        inner.write_metadata_in(&mut ddl, name, &meta)?;
        config = meta.config;
        inner.topics.write().insert(
            name.to_string(),
            Arc::new(TopicState::new(name, topic_id, config, parts)),
        );
        inner.bump_metadata_epoch();
        // Outside the topic-change lock: a waker may poll its task inline, and that task
        // may change topics too.
        drop(ddl);
        inner.notifier.notify();
        Ok(ImportReport {
            topic: name.to_string(),
            topic_id,
            partitions,
        })
    }
}
