//! [`WindowStore`]: a value per key and window start, and the stream time its
//! aggregation has observed.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Change, Shared, StoreHandle};
use crate::serdes::{Serde, split_windowed};

/// A value, its timestamp and whether the changelog has it yet.
#[derive(Debug)]
struct Slot<V> {
    value: V,
    timestamp: i64,
    dirty: bool,
}

/// A window store: values by serialized key and window start. Its changelog keys are
/// the key bytes followed by the window start (8 bytes big-endian); one record with an
/// empty key holds the stream time the aggregation has observed, so that windows that
/// were closed before a restart stay closed after it. Windows that started at least the
/// retention period before the stream time (the latest record time seen) are removed
/// (with a tombstone for the changelog). Kafka's window stores measure from the latest
/// window start written instead, so they keep a closed window queryable up to a window
/// size longer; what is aggregated is the same (retention is at least size plus grace).
/// Changes are sent at the next commit, the latest value per window only.
#[derive(Debug)]
pub struct WindowStore<K, V> {
    pub(crate) key_serde: Serde<K>,
    value_serde: Serde<V>,
    pub(crate) size_ms: i64,
    retention_ms: i64,
    data: BTreeMap<Vec<u8>, BTreeMap<i64, Slot<V>>>,
    /// The windows by start, to expire the oldest first.
    by_start: BTreeSet<(i64, Vec<u8>)>,
    stream_time: i64,
    stream_time_changed: bool,
    /// Windows updated since the last drain.
    changed: Vec<(Vec<u8>, i64)>,
    /// Windows expired since the last drain.
    expired: Vec<(Vec<u8>, i64)>,
}

fn changelog_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 8);
    k.extend_from_slice(key);
    k.extend_from_slice(&start.to_be_bytes());
    k
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
            changed: Vec::new(),
            expired: Vec::new(),
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

    /// The value of a serialized key in the window starting at `start`, and its
    /// timestamp.
    pub(crate) fn get_timestamped(&self, key: &[u8], start: i64) -> Option<(&V, i64)> {
        let slot = self.data.get(key)?.get(&start)?;
        Some((&slot.value, slot.timestamp))
    }

    /// Sets a serialized key's value and its timestamp in the window starting at
    /// `start`.
    pub(crate) fn put_bytes(&mut self, key: &[u8], start: i64, value: V, timestamp: i64) {
        let windows = match self.data.get_mut(key) {
            Some(w) => w,
            None => self.data.entry(key.to_vec()).or_default(),
        };
        match windows.get_mut(&start) {
            Some(slot) => {
                slot.value = value;
                slot.timestamp = timestamp;
                if !slot.dirty {
                    slot.dirty = true;
                    self.changed.push((key.to_vec(), start));
                }
            }
            None => {
                let slot = Slot {
                    value,
                    timestamp,
                    dirty: true,
                };
                windows.insert(start, slot);
                self.changed.push((key.to_vec(), start));
                self.by_start.insert((start, key.to_vec()));
            }
        }
    }

    fn remove(&mut self, key: &[u8], start: i64) -> bool {
        let Some(windows) = self.data.get_mut(key) else {
            return false;
        };
        let removed = windows.remove(&start).is_some();
        if windows.is_empty() {
            self.data.remove(key);
        }
        removed
    }

    /// Removes the windows that started at least `retention_ms` before the stream time
    /// (closed: the retention is at least size plus grace), recording a tombstone for
    /// each.
    pub(crate) fn expire(&mut self) {
        let cutoff = self.stream_time.saturating_sub(self.retention_ms);
        while let Some((start, _)) = self.by_start.first() {
            if *start > cutoff {
                break;
            }
            let Some((start, key)) = self.by_start.pop_first() else {
                break;
            };
            if self.remove(&key, start) {
                self.expired.push((key, start));
            }
        }
    }

    /// The windows of a serialized key starting in `from..=to`.
    pub(crate) fn range(&self, key: &[u8], from: i64, to: i64) -> Vec<(i64, &V)> {
        match self.data.get(key) {
            Some(w) if from <= to => w.range(from..=to).map(|(s, v)| (*s, &v.value)).collect(),
            _ => Vec::new(),
        }
    }

    /// Every entry: key bytes, window start, value.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], i64, &V)> {
        self.data
            .iter()
            .flat_map(|(k, w)| w.iter().map(move |(s, v)| (k.as_slice(), *s, &v.value)))
    }

    /// The changelog records since the last call: tombstones of expired windows, the
    /// latest value of each updated window, then the stream time.
    fn drain(&mut self) -> Result<Vec<Change>, String> {
        let mut out = Vec::with_capacity(self.changed.len() + self.expired.len() + 1);
        for (key, start) in std::mem::take(&mut self.expired) {
            out.push((changelog_key(&key, start), None, self.stream_time));
        }
        for (key, start) in std::mem::take(&mut self.changed) {
            // An expired window has its tombstone already.
            let Some(slot) = self.data.get_mut(&key).and_then(|w| w.get_mut(&start)) else {
                continue;
            };
            if slot.dirty {
                slot.dirty = false;
                let bytes = self.value_serde.serialize(&slot.value)?;
                out.push((changelog_key(&key, start), Some(bytes), slot.timestamp));
            }
        }
        if std::mem::take(&mut self.stream_time_changed) {
            let time = self.stream_time.to_be_bytes().to_vec();
            out.push((Vec::new(), Some(time), self.stream_time));
        }
        Ok(out)
    }
}

impl<K, V> StoreHandle for Shared<WindowStore<K, V>>
where
    K: 'static,
    V: Send + Sync + 'static,
{
    fn restore(&self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> Result<(), String> {
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
                let value = s.value_serde.deserialize(b)?;
                s.by_start.insert((start, k.to_vec()));
                s.data.entry(k.to_vec()).or_default().insert(
                    start,
                    Slot {
                        value,
                        timestamp,
                        dirty: false,
                    },
                );
            }
            None => {
                s.by_start.remove(&(start, k.to_vec()));
                s.remove(k, start);
            }
        }
        Ok(())
    }

    fn restored(&self) {
        self.write().expire();
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
    fn windows_past_retention_expire_with_tombstones() {
        let s: Shared<WindowStore<String, i64>> = Arc::new(parking_lot::RwLock::new(
            WindowStore::new(serdes::string(), serdes::i64(), 10, 20),
        ));
        {
            let mut w = s.write();
            for start in [0, 10, 20, 30] {
                w.put_bytes(b"k", start, start, start);
            }
            w.observe(45);
            w.expire(); // cutoff 25: [0, 10), [10, 20) and [20, 30) start by then
            assert_eq!(w.entries().map(|e| e.1).collect::<Vec<_>>(), [30]);
        }
        let changes = s.take_changes().unwrap();
        // The expired windows' puts were never sent: their tombstones are, then the
        // live windows and the stream time.
        let tombstones: Vec<_> = changes.iter().filter(|c| c.1.is_none()).collect();
        assert_eq!(tombstones.len(), 3);
        assert_eq!(changes.len(), 5);
        // A restore replays the puts, the tombstones and the stream time.
        let r: Shared<WindowStore<String, i64>> = Arc::new(parking_lot::RwLock::new(
            WindowStore::new(serdes::string(), serdes::i64(), 10, 20),
        ));
        for (k, v, ts) in &changes {
            r.restore(k, v.as_deref(), *ts).unwrap();
        }
        r.restored();
        assert_eq!(r.read().entries().map(|e| e.1).collect::<Vec<_>>(), [30]);
    }
}
