//! A task: one sub-topology's processors and stores for one partition of its inputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamlog::TopicPartition;

use crate::context::{Ctx, OutRecord};
use crate::error::{Result, StreamsError};
use crate::store::StoreHandle;
use crate::topology::Topology;
use crate::topology::node::{Instantiate, SourceNode};

/// Which task: sub-topology and partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TaskId {
    pub(crate) sub: usize,
    pub(crate) partition: i32,
}

pub(crate) struct Task {
    pub(crate) id: TaskId,
    sources: Vec<(Arc<str>, Box<dyn SourceNode>)>,
    /// Stores by name, with their changelog topics.
    pub(crate) stores: BTreeMap<String, (Arc<str>, Box<dyn StoreHandle>)>,
    /// Where each store's restore stopped in its changelog.
    pub(crate) restored_to: BTreeMap<String, i64>,
    /// The stores read their changelogs again once the inputs' positions were decided
    /// (before the task's first record; see `Restorer::catch_up_task`).
    pub(crate) caught_up: bool,
}

impl Task {
    /// The task's processors and (empty) stores.
    pub(crate) fn new(
        topology: &Topology,
        app_id: &Arc<str>,
        id: TaskId,
        skip_bad_records: bool,
    ) -> Result<Task> {
        let mut inst = Instantiate {
            app_id: Arc::clone(app_id),
            skip_bad_records,
            stores: BTreeMap::new(),
        };
        let mut sources = Vec::new();
        for spec in topology.sources.iter().filter(|s| s.sub == id.sub) {
            let node = (spec.factory)(&mut inst)?;
            let topic: Arc<str> = Arc::from(topology.source_topic_name(app_id, spec));
            sources.push((topic, node));
        }
        let stores = std::mem::take(&mut inst.stores)
            .into_iter()
            .map(|(name, h)| {
                let changelog = inst.changelog(&name);
                (name, (changelog, h))
            })
            .collect();
        Ok(Task {
            id,
            sources,
            stores,
            restored_to: BTreeMap::new(),
            caught_up: false,
        })
    }

    /// The partitions the task reads: its partition of each of its source topics.
    pub(crate) fn inputs(&self) -> Vec<TopicPartition> {
        self.sources
            .iter()
            .map(|(topic, _)| TopicPartition::new(&**topic, self.id.partition))
            .collect()
    }

    /// Pushes one record of `topic` through the task's processors.
    pub(crate) fn process(
        &mut self,
        ctx: &mut Ctx,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        let Some((name, node)) = self.sources.iter_mut().find(|(t, _)| &**t == topic) else {
            return Err(StreamsError::Topology {
                reason: format!("task {:?} has no source for topic `{topic}`", self.id),
            });
        };
        ctx.topic = Arc::clone(name);
        node.process(ctx, key, value, timestamp)
    }

    /// Moves the stores' changes since the last call into `out` as changelog records.
    pub(crate) fn drain_changelogs(&self, out: &mut Vec<OutRecord>) -> Result<()> {
        for (changelog, h) in self.stores.values() {
            let changes = h.take_changes().map_err(|reason| StreamsError::Serialize {
                topic: changelog.to_string(),
                reason,
            })?;
            for (key, value, timestamp) in changes {
                out.push(OutRecord {
                    topic: Arc::clone(changelog),
                    partition: Some(self.id.partition),
                    partition_prefix: None,
                    key: Some(key),
                    value,
                    // As the store holds it: a value made from records without a time
                    // (-1) restores without one, as it was before the restart.
                    timestamp,
                    headers: Vec::new(),
                });
            }
        }
        Ok(())
    }
}
