//! [`KvStore`]: the latest value per key.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Change, Shared, StoreHandle};
use crate::serdes::Serde;

/// A value and whether the changelog has it yet.
#[derive(Debug)]
struct Slot<V> {
    value: V,
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
    /// Keys changed since the last drain (a key may appear more than once).
    changed: Vec<Vec<u8>>,
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

    /// Sets a serialized key's value.
    pub(crate) fn put_bytes(&mut self, key: &[u8], value: V) {
        match self.data.get_mut(key) {
            Some(slot) => {
                slot.value = value;
                if !slot.dirty {
                    slot.dirty = true;
                    self.changed.push(key.to_vec());
                }
            }
            None => {
                self.data.insert(key.to_vec(), Slot { value, dirty: true });
                self.changed.push(key.to_vec());
            }
        }
    }

    /// Removes a serialized key.
    pub(crate) fn delete_bytes(&mut self, key: &[u8]) {
        if self.data.remove(key).is_some() {
            self.changed.push(key.to_vec());
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
        for key in std::mem::take(&mut self.changed) {
            match self.data.get_mut(&key) {
                Some(slot) if slot.dirty => {
                    slot.dirty = false;
                    let bytes = self.value_serde.serialize(&slot.value)?;
                    out.push((key, Some(bytes)));
                }
                // Already sent by an earlier entry for the same key.
                Some(_) => {}
                None => out.push((key, None)),
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
    fn restore(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let mut s = self.write();
        match value {
            Some(b) => {
                let value = s.value_serde.deserialize(b)?;
                s.data.insert(
                    key.to_vec(),
                    Slot {
                        value,
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
            w.put_bytes(b"a", 1);
            w.put_bytes(b"a", 2);
            w.put_bytes(b"b", 1);
            w.delete_bytes(b"b");
            w.put_bytes(b"c", 1);
            w.delete_bytes(b"c");
            w.put_bytes(b"c", 3);
        }
        let changes = s.take_changes().unwrap();
        let v = |n: i64| Some(n.to_be_bytes().to_vec());
        assert_eq!(
            changes,
            vec![
                (b"a".to_vec(), v(2)),
                (b"b".to_vec(), None),
                (b"b".to_vec(), None),
                (b"c".to_vec(), v(3)),
            ]
        );
        assert!(s.take_changes().unwrap().is_empty());
    }
}
