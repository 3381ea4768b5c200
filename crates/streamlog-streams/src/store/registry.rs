//! The stores of the tasks this application runs now, by name and partition, for
//! interactive queries.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

type ByPartition = BTreeMap<i32, Arc<dyn Any + Send + Sync>>;

/// Local stores by name and partition; tasks add theirs when they start and remove them
/// when their partitions move away.
#[derive(Default)]
pub(crate) struct Registry {
    stores: RwLock<BTreeMap<String, ByPartition>>,
}

impl Registry {
    pub(crate) fn insert(&self, name: &str, partition: i32, store: Arc<dyn Any + Send + Sync>) {
        self.stores
            .write()
            .entry(name.to_string())
            .or_default()
            .insert(partition, store);
    }

    pub(crate) fn remove(&self, name: &str, partition: i32) {
        if let Some(m) = self.stores.write().get_mut(name) {
            m.remove(&partition);
        }
    }

    /// The local partitions of store `name`.
    pub(crate) fn get(&self, name: &str) -> Vec<Arc<dyn Any + Send + Sync>> {
        self.stores
            .read()
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
