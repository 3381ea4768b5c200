//! [`KvStore`]: the latest value per key.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Change, Shared, StoreHandle};
use crate::serdes::Serde;

/// A value, its timestamp and whether the changelog has it yet.
#[derive(Debug)]
struct Slot<V> {
    value: V,
    timestamp: i64,
    dirty: bool,
}

/// A key-value store: values by serialized key (so any key type with a serde works),
/// ordered by those bytes. Changes are collected for the changelog and sent at the next
/// commit, the latest value per key only (as Kafka's record cache does for changelogs).
#[derive(Debug)]
pub struct KvStore<K, V> {
    pub(crate) key_serde: Serde<K>,
    value_serde: Serde<V>,
    data: BTreeMap<Vec<u8>, Slot<V>>,
    /// Keys changed since the last drain (a key may appear more than once), with the
    /// timestamp of a deletion.
    changed: Vec<(Vec<u8>, i64)>,
}

impl<K, V> KvStore<K, V> {
    pub(crate) fn new(key_serde: Serde<K>, value_serde: Serde<V>) -> Self {
        KvStore {
            key_serde,
            value_serde,
            data: BTreeMap::new(),
            changed: Vec::new(),
        }
    }

    /// The value of a serialized key.
    pub(crate) fn get_bytes(&self, key: &[u8]) -> Option<&V> {
        self.data.get(key).map(|s| &s.value)
    }

    /// The value of a serialized key and its timestamp.
    pub(crate) fn get_timestamped(&self, key: &[u8]) -> Option<(&V, i64)> {
        self.data.get(key).map(|s| (&s.value, s.timestamp))
    }

    /// Sets a serialized key's value and its timestamp.
    pub(crate) fn put_bytes(&mut self, key: &[u8], value: V, timestamp: i64) {
        match self.data.get_mut(key) {
            Some(slot) => {
                slot.value = value;
                slot.timestamp = timestamp;
                if !slot.dirty {
                    slot.dirty = true;
                    self.changed.push((key.to_vec(), timestamp));
                }
            }
            None => {
                let slot = Slot {
                    value,
                    timestamp,
                    dirty: true,
                };
                self.data.insert(key.to_vec(), slot);
                self.changed.push((key.to_vec(), timestamp));
            }
        }
    }

    /// Removes a serialized key (by a record of `timestamp`).
    pub(crate) fn delete_bytes(&mut self, key: &[u8], timestamp: i64) {
        if self.data.remove(key).is_some() {
            self.changed.push((key.to_vec(), timestamp));
        }
    }

    /// Every entry, in key-byte order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &V)> {
        self.data.iter().map(|(k, s)| (k, &s.value))
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// The changelog records for the keys changed since the last call.
    fn drain(&mut self) -> Result<Vec<Change>, String> {
        let mut out = Vec::with_capacity(self.changed.len());
        for (key, deleted_at) in std::mem::take(&mut self.changed) {
            match self.data.get_mut(&key) {
                Some(slot) if slot.dirty => {
                    slot.dirty = false;
                    let bytes = self.value_serde.serialize(&slot.value)?;
                    out.push((key, Some(bytes), slot.timestamp));
                }
                // Already sent by an earlier entry for the same key.
                Some(_) => {}
                None => out.push((key, None, deleted_at)),
            }
        }
        Ok(out)
    }
}

impl<K, V> StoreHandle for Shared<KvStore<K, V>>
where
    K: 'static,
    V: Send + Sync + 'static,
{
    fn restore(&self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), String> {
        let mut s = self.write();
        match value {
            Some(b) => {
                let value = s.value_serde.deserialize(b)?;
                s.data.insert(
                    key.to_vec(),
                    Slot {
                        value,
                        timestamp,
                        dirty: false,
                    },
                );
            }
            None => {
                s.data.remove(key);
            }
        }
        Ok(())
    }

    fn take_changes(&self) -> Result<Vec<Change>, String> {
        self.write().drain()
    }

    fn shared(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::clone(self) as Arc<dyn Any + Send + Sync>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes;

    #[test]
    fn changes_coalesce_to_the_latest_value_per_key() {
        let s: Shared<KvStore<String, i64>> = Arc::new(parking_lot::RwLock::new(KvStore::new(
            serdes::string(),
            serdes::i64(),
        )));
        {
            let mut w = s.write();
            w.put_bytes(b"a", 1, 10);
            w.put_bytes(b"a", 2, 20);
            w.put_bytes(b"b", 1, 10);
            w.delete_bytes(b"b", 30);
            w.put_bytes(b"c", 1, 10);
            w.delete_bytes(b"c", 40);
            w.put_bytes(b"c", 3, 50);
        }
        let changes = s.take_changes().unwrap();
        let v = |n: i64| Some(n.to_be_bytes().to_vec());
        assert_eq!(
            changes,
            vec![
                (b"a".to_vec(), v(2), 20),
                (b"b".to_vec(), None, 10),
                (b"b".to_vec(), None, 30),
                (b"c".to_vec(), v(3), 50),
            ]
        );
        assert!(s.take_changes().unwrap().is_empty());
    }
}
