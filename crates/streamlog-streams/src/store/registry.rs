//! The stores of the tasks this application runs now, by name and partition, for
//! interactive queries.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::RwLock;

type ByPartition = BTreeMap<i32, Arc<dyn Any + Send + Sync>>;

/// Local stores by name and partition; tasks add theirs when they start and remove them
/// when their partitions move away.
#[derive(Default)]
pub(crate) struct Registry {
    stores: RwLock<BTreeMap<String, ByPartition>>,
    /// Partitions of each store being restored (a task starting here).
    restoring: RwLock<BTreeMap<String, BTreeSet<i32>>>,
}

impl Registry {
    /// `name`'s partition `partition` is being restored: queries of the store are
    /// refused until it is inserted (or the restore given up).
    pub(crate) fn begin_restore(&self, name: &str, partition: i32) {
        self.restoring
            .write()
            .entry(name.to_string())
            .or_default()
            .insert(partition);
    }

    /// The restore of `name`'s partition `partition` ended (restored or failed).
    pub(crate) fn end_restore(&self, name: &str, partition: i32) {
        if let Some(s) = self.restoring.write().get_mut(name) {
            s.remove(&partition);
        }
    }

    /// A partition of `name` being restored, if any.
    pub(crate) fn restoring(&self, name: &str) -> Option<i32> {
        self.restoring
            .read()
            .get(name)
            .and_then(|s| s.first().copied())
    }

    pub(crate) fn insert(&self, name: &str, partition: i32, store: Arc<dyn Any + Send + Sync>) {
        self.stores
            .write()
            .entry(name.to_string())
            .or_default()
            .insert(partition, store);
        self.end_restore(name, partition);
    }

    /// Removes `store` as `name`'s partition `partition`, if it still is: another
    /// thread that took the partition over (after this one was expired from the group)
    /// has put its own there, which stays.
    pub(crate) fn remove(&self, name: &str, partition: i32, store: &Arc<dyn Any + Send + Sync>) {
        if let Some(m) = self.stores.write().get_mut(name)
            && m.get(&partition).is_some_and(|s| Arc::ptr_eq(s, store))
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread expired from the group (it stalled past `max_poll_interval_ms`) while
    /// another took its partition over and registered its store: the first thread's
    /// clean-up removed the other's store, and queries found no key of the partition.
    #[test]
    fn removing_a_store_leaves_the_one_that_replaced_it() {
        let registry = Registry::default();
        let old: Arc<dyn Any + Send + Sync> = Arc::new(1u32);
        let new: Arc<dyn Any + Send + Sync> = Arc::new(2u32);
        registry.insert("counts", 0, old.clone());
        registry.insert("counts", 0, new.clone());
        registry.remove("counts", 0, &old);
        let left = registry.get("counts");
        assert_eq!(left.len(), 1);
        assert!(Arc::ptr_eq(&left[0], &new));
        registry.remove("counts", 0, &new);
        assert!(registry.get("counts").is_empty());
    }
}
