//! Interactive queries: read-only views of the local partitions of a state store, as
//! the application's running tasks hold them now.

use crate::error::{Result, StreamsError};
use crate::store::{KvStore, Shared, WindowStore};
use crate::windows::{Window, Windowed};

fn key_error(store: &str, reason: String) -> StreamsError {
    StreamsError::Serialize {
        topic: format!("query of store `{store}`"),
        reason,
    }
}

/// The local partitions of a key-value store
/// ([`Streams::key_value_store`](crate::Streams::key_value_store)). A snapshot of which
/// partitions are local: ask again after a rebalance.
pub struct ReadOnlyKeyValueStore<K, V> {
    pub(crate) name: String,
    pub(crate) parts: Vec<Shared<KvStore<K, V>>>,
}

impl<K, V: Clone> ReadOnlyKeyValueStore<K, V> {
    /// The value of `key`, if a local partition has it.
    ///
    /// # Errors
    /// `Serialize` if the key serde refuses `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        for p in &self.parts {
            let s = p.read();
            let kb = s
                .key_serde
                .serialize(key)
                .map_err(|e| key_error(&self.name, e))?;
            if let Some(v) = s.get_bytes(&kb) {
                return Ok(Some(v.clone()));
            }
        }
        Ok(None)
    }

    /// Every local entry (partition by partition, each in key-byte order).
    ///
    /// # Errors
    /// `Deserialize` if a stored key does not decode.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            let s = p.read();
            for (kb, v) in s.entries() {
                let k = s
                    .key_serde
                    .deserialize(kb)
                    .map_err(|e| key_error(&self.name, e))?;
                out.push((k, v.clone()));
            }
        }
        Ok(out)
    }

    /// Number of local keys.
    pub fn approximate_num_entries(&self) -> usize {
        self.parts.iter().map(|p| p.read().len()).sum()
    }
}

/// The local partitions of a window store
/// ([`Streams::window_store`](crate::Streams::window_store)).
pub struct ReadOnlyWindowStore<K, V> {
    pub(crate) name: String,
    pub(crate) parts: Vec<Shared<WindowStore<K, V>>>,
}

impl<K, V: Clone> ReadOnlyWindowStore<K, V> {
    /// The windows of `key` starting in `from..=to` (ms), oldest first.
    ///
    /// # Errors
    /// `Serialize` if the key serde refuses `key`.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            let s = p.read();
            let kb = s
                .key_serde
                .serialize(key)
                .map_err(|e| key_error(&self.name, e))?;
            for (start, v) in s.range(&kb, from, to) {
                out.push((window(start, s.size_ms), v.clone()));
            }
        }
        out.sort_by_key(|(w, _)| w.start);
        Ok(out)
    }

    /// Every local window of every key.
    ///
    /// # Errors
    /// `Deserialize` if a stored key does not decode.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for p in &self.parts {
            let s = p.read();
            for (kb, start, v) in s.entries() {
                let key = s
                    .key_serde
                    .deserialize(kb)
                    .map_err(|e| key_error(&self.name, e))?;
                out.push((
                    Windowed {
                        key,
                        window: window(start, s.size_ms),
                    },
                    v.clone(),
                ));
            }
        }
        Ok(out)
    }
}

fn window(start: i64, size_ms: i64) -> Window {
    Window {
        start,
        end: start.saturating_add(size_ms),
    }
}
