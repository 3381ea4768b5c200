//! The stores of the tasks this application runs now, by name and partition, for
//! interactive queries.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// A partition's store, with the group generation its task was assigned in.
type ByPartition = BTreeMap<i32, (i32, Arc<dyn Any + Send + Sync>)>;

/// Local stores by name and partition; tasks add theirs when they start and remove them
/// when their partitions move away.
#[derive(Default)]
pub(crate) struct Registry {
    stores: RwLock<BTreeMap<String, ByPartition>>,
    /// Partitions of each store being restored (a task starting here), with how many
    /// restores of each are under way: a thread expired from the group that has not
    /// learnt it yet may restore a partition another thread is restoring too, and the
    /// end of its restore must not end the other's.
    restoring: RwLock<BTreeMap<String, BTreeMap<i32, usize>>>,
}

impl Registry {
    /// `name`'s partition `partition` is being restored: queries of the store are
    /// refused until it is inserted (or the restore given up).
    pub(crate) fn begin_restore(&self, name: &str, partition: i32) {
        *self
            .restoring
            .write()
            .entry(name.to_string())
            .or_default()
            .entry(partition)
            .or_default() += 1;
    }

    /// The restore of `name`'s partition `partition` ended (restored or failed).
    pub(crate) fn end_restore(&self, name: &str, partition: i32) {
        if let Some(s) = self.restoring.write().get_mut(name)
            && let Some(n) = s.get_mut(&partition)
        {
            *n -= 1;
            if *n == 0 {
                s.remove(&partition);
            }
        }
    }

    /// A partition of `name` being restored, if any.
    pub(crate) fn restoring(&self, name: &str) -> Option<i32> {
        self.restoring
            .read()
            .get(name)
            .and_then(|s| s.keys().next().copied())
    }

    /// Makes `store` `name`'s partition `partition`, from a task assigned in group
    /// generation `generation`, unless the store there is of a later generation: a
    /// thread expired from the group (stalled) that has not learnt it yet may start a
    /// task of a partition another thread took over since, whose store stays.
    pub(crate) fn insert(
        &self,
        name: &str,
        partition: i32,
        store: Arc<dyn Any + Send + Sync>,
        generation: i32,
    ) {
        {
            let mut stores = self.stores.write();
            let by_partition = stores.entry(name.to_string()).or_default();
            if by_partition
                .get(&partition)
                .is_none_or(|(held, _)| *held <= generation)
            {
                by_partition.insert(partition, (generation, store));
            }
        }
        self.end_restore(name, partition);
    }

    /// Removes `store` as `name`'s partition `partition`, if it still is: another
    /// thread that took the partition over (after this one was expired from the group)
    /// has put its own there, which stays.
    pub(crate) fn remove(&self, name: &str, partition: i32, store: &Arc<dyn Any + Send + Sync>) {
        if let Some(m) = self.stores.write().get_mut(name)
            && m.get(&partition)
                .is_some_and(|(_, s)| Arc::ptr_eq(s, store))
        {
            m.remove(&partition);
        }
    }

    /// The local partitions of store `name`.
    pub(crate) fn get(&self, name: &str) -> Vec<Arc<dyn Any + Send + Sync>> {
        self.stores
            .read()
            .get(name)
            .map(|m| m.values().map(|(_, s)| s.clone()).collect())
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
        registry.insert("counts", 0, old.clone(), 1);
        registry.insert("counts", 0, new.clone(), 2);
        registry.remove("counts", 0, &old);
        let left = registry.get("counts");
        assert_eq!(left.len(), 1);
        assert!(Arc::ptr_eq(&left[0], &new));
        registry.remove("counts", 0, &new);
        assert!(registry.get("counts").is_empty());
    }

    /// From a review: a thread expired from the group (its processor stalled) started
    /// its tasks again after its transaction timed out, from an assignment it had not
    /// learnt it lost: its store replaced that of the thread that had taken the
    /// partition over, and its clean-up then removed it, leaving the partition with no
    /// store to query. A store of an earlier generation does not replace a later one.
    #[test]
    fn a_store_of_an_earlier_generation_does_not_replace_a_later_one() {
        let registry = Registry::default();
        let taken_over: Arc<dyn Any + Send + Sync> = Arc::new(1u32);
        let stale: Arc<dyn Any + Send + Sync> = Arc::new(2u32);
        registry.insert("counts", 0, taken_over.clone(), 5);
        registry.begin_restore("counts", 0);
        registry.insert("counts", 0, stale.clone(), 4);
        assert_eq!(registry.restoring("counts"), None, "its restore ended");
        // Restoring at once (the stale thread's restore ends first): the other's is
        // still under way (from the review of this fix).
        registry.begin_restore("counts", 1);
        registry.begin_restore("counts", 1);
        registry.insert("counts", 1, stale.clone(), 4);
        assert_eq!(registry.restoring("counts"), Some(1));
        registry.insert("counts", 1, taken_over.clone(), 5);
        assert_eq!(registry.restoring("counts"), None);
        registry.remove("counts", 1, &taken_over);
        registry.remove("counts", 0, &stale);
        let left = registry.get("counts");
        assert_eq!(left.len(), 1);
        assert!(Arc::ptr_eq(&left[0], &taken_over));
        // The same generation (a thread starting its own task again) replaces.
        let again: Arc<dyn Any + Send + Sync> = Arc::new(3u32);
        registry.insert("counts", 0, again.clone(), 5);
        assert!(Arc::ptr_eq(&registry.get("counts")[0], &again));
    }
}
