//! [`KvStore`]: the latest value per key.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Change, Shared, StoreHandle};
use crate::serdes::Serde;

/// A key-value store: values by serialized key (so any key type with a serde works),
/// ordered by those bytes. Every `put` and `delete` is also a changelog record.
#[derive(Debug)]
pub struct KvStore<K, V> {
    pub(crate) key_serde: Serde<K>,
    value_serde: Serde<V>,
    data: BTreeMap<Vec<u8>, V>,
    changes: Vec<Change>,
}

impl<K, V> KvStore<K, V> {
    pub(crate) fn new(key_serde: Serde<K>, value_serde: Serde<V>) -> Self {
        KvStore {
            key_serde,
            value_serde,
            data: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// The value of a serialized key.
    pub(crate) fn get_bytes(&self, key: &[u8]) -> Option<&V> {
        self.data.get(key)
    }

    /// Sets a serialized key's value.
    pub(crate) fn put_bytes(&mut self, key: Vec<u8>, value: V) -> Result<(), String> {
        let bytes = self.value_serde.serialize(&value)?;
        self.changes.push((key.clone(), Some(bytes)));
        self.data.insert(key, value);
        Ok(())
    }

    /// Removes a serialized key.
    pub(crate) fn delete_bytes(&mut self, key: &[u8]) {
        self.data.remove(key);
        self.changes.push((key.to_vec(), None));
    }

    /// Every entry, in key-byte order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &V)> {
        self.data.iter()
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
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
                let v = s.value_serde.deserialize(b)?;
                s.data.insert(key.to_vec(), v);
            }
            None => {
                s.data.remove(key);
            }
        }
        Ok(())
    }

    fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut self.write().changes)
    }

    fn shared(&self) -> Arc<dyn Any + Send + Sync> {
        Arc::clone(self) as Arc<dyn Any + Send + Sync>
    }
}
