//! [`WindowStore`]: a value per key and window start, and the stream time its
//! aggregation has observed.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Change, Shared, StoreHandle};
use crate::serdes::{Serde, split_windowed};

/// A window store: values by (serialized key, window start). Its changelog keys are the
/// key bytes followed by the window start (8 bytes big-endian); one record with an
/// empty key holds the stream time the aggregation has observed, so that windows that
/// were closed before a restart stay closed after it. Windows that ended more than the
/// retention period before the stream time are removed (with a tombstone for the
/// changelog).
#[derive(Debug)]
pub struct WindowStore<K, V> {
    pub(crate) key_serde: Serde<K>,
    value_serde: Serde<V>,
    pub(crate) size_ms: i64,
    retention_ms: i64,
    data: BTreeMap<(Vec<u8>, i64), V>,
    /// The same entries by window start, to expire the oldest first.
    by_start: BTreeSet<(i64, Vec<u8>)>,
    stream_time: i64,
    stream_time_changed: bool,
    changes: Vec<Change>,
}

impl<K, V> WindowStore<K, V> {
    pub(crate) fn new(
        key_serde: Serde<K>,
        value_serde: Serde<V>,
        size_ms: i64,
        retention_ms: i64,
    ) -> Self {
        WindowStore {
            key_serde,
            value_serde,
            size_ms,
            retention_ms,
            data: BTreeMap::new(),
            by_start: BTreeSet::new(),
            stream_time: i64::MIN,
            stream_time_changed: false,
            changes: Vec::new(),
        }
    }

    /// Advances the observed stream time to `timestamp` if later; returns it.
    pub(crate) fn observe(&mut self, timestamp: i64) -> i64 {
        if timestamp > self.stream_time {
            self.stream_time = timestamp;
            self.stream_time_changed = true;
        }
        self.stream_time
    }

    /// The value of a serialized key in the window starting at `start`.
    pub(crate) fn get_bytes(&self, key: &[u8], start: i64) -> Option<&V> {
        self.data.get(&(key.to_vec(), start))
    }

    /// Sets a serialized key's value in the window starting at `start`.
    pub(crate) fn put_bytes(&mut self, key: Vec<u8>, start: i64, value: V) -> Result<(), String> {
        let bytes = self.value_serde.serialize(&value)?;
        let mut changelog_key = key.clone();
        changelog_key.extend_from_slice(&start.to_be_bytes());
        self.changes.push((changelog_key, Some(bytes)));
        self.by_start.insert((start, key.clone()));
        self.data.insert((key, start), value);
        Ok(())
    }

    /// Removes the windows that ended at least `retention_ms` before the stream time,
    /// recording a tombstone for each.
    pub(crate) fn expire(&mut self) {
        let cutoff = self.stream_time.saturating_sub(self.retention_ms);
        while let Some((start, _)) = self.by_start.first() {
            if start.saturating_add(self.size_ms) > cutoff {
                break;
            }
            let Some((start, key)) = self.by_start.pop_first() else {
                break;
            };
            let mut changelog_key = key.clone();
            changelog_key.extend_from_slice(&start.to_be_bytes());
            self.changes.push((changelog_key, None));
            self.data.remove(&(key, start));
        }
    }

    /// The windows of a serialized key starting in `from..=to`.
    pub(crate) fn range(&self, key: &[u8], from: i64, to: i64) -> impl Iterator<Item = (i64, &V)> {
        self.data
            .range((key.to_vec(), from)..=(key.to_vec(), to))
            .map(|((_, s), v)| (*s, v))
    }

    /// Every entry: key bytes, window start, value.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], i64, &V)> {
        self.data.iter().map(|((k, s), v)| (k.as_slice(), *s, v))
    }
}

impl<K, V> StoreHandle for Shared<WindowStore<K, V>>
where
    K: 'static,
    V: Send + Sync + 'static,
{
    fn restore(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let mut s = self.write();
        if key.is_empty() {
            let Some(b) = value else { return Ok(()) };
            let t: [u8; 8] = b
                .try_into()
                .map_err(|_| format!("a stream time needs 8 bytes, found {}", b.len()))?;
            s.stream_time = s.stream_time.max(i64::from_be_bytes(t));
            return Ok(());
        }
        let (k, start) = split_windowed(key)?;
        match value {
            Some(b) => {
                let v = s.value_serde.deserialize(b)?;
                s.by_start.insert((start, k.to_vec()));
                s.data.insert((k.to_vec(), start), v);
            }
            None => {
                s.by_start.remove(&(start, k.to_vec()));
                s.data.remove(&(k.to_vec(), start));
            }
        }
        Ok(())
    }

    fn restored(&self) {
        self.write().expire();
    }

    fn take_changes(&self) -> Vec<Change> {
        let mut s = self.write();
        let mut changes = std::mem::take(&mut s.changes);
        if std::mem::take(&mut s.stream_time_changed) {
            changes.push((Vec::new(), Some(s.stream_time.to_be_bytes().to_vec())));
        }
        changes
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
    fn windows_past_retention_expire_with_tombstones() {
        let s: Shared<WindowStore<String, i64>> = Arc::new(parking_lot::RwLock::new(
            WindowStore::new(serdes::string(), serdes::i64(), 10, 20),
        ));
        {
            let mut w = s.write();
            for start in [0, 10, 20, 30] {
                w.put_bytes(b"k".to_vec(), start, start).unwrap();
            }
            w.observe(45);
            w.expire(); // cutoff 25: [0, 10) and [10, 20) end by then
            assert_eq!(w.entries().map(|e| e.1).collect::<Vec<_>>(), [20, 30]);
        }
        let changes = s.take_changes();
        let tombstones: Vec<_> = changes.iter().filter(|c| c.1.is_none()).collect();
        assert_eq!(tombstones.len(), 2);
        // A restore replays the puts, the tombstones and the stream time.
        let r: Shared<WindowStore<String, i64>> = Arc::new(parking_lot::RwLock::new(
            WindowStore::new(serdes::string(), serdes::i64(), 10, 20),
        ));
        for (k, v) in &changes {
            r.restore(k, v.as_deref()).unwrap();
        }
        r.restored();
        assert_eq!(
            r.read().entries().map(|e| e.1).collect::<Vec<_>>(),
            [20, 30]
        );
    }
}
