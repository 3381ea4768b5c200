//! Interactive queries: read-only views of the local partitions of a state store, as
//! the application's running tasks hold them at the time of each call.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::store::{KvStore, Registry, Shared, WindowStore};
use crate::windows::{Window, Windowed};

fn key_error(store: &str, reason: String) -> StreamsError {
    StreamsError::Serialize {
        topic: format!("query of store `{store}`"),
        reason,
    }
}

/// Store `name`'s partitions local now, as `S`: `StoreUnavailable` while one is being
/// restored, `StoreType` if they hold another type. Looked up at each call, as Kafka
/// Streams' queryable stores look up theirs: a view taken earlier must not answer from
/// a task's store that was dropped since (its partition moved away, or its thread died
/// or abandoned its tasks after an abort, with updates no commit covers). Unlike Kafka
/// Streams, which throws while it rebalances, a partition that is between two owners
/// (revoked here and its restore not begun, or its thread gone) is simply not local:
/// its keys are not found.
pub(crate) fn local_parts<S: Send + Sync + 'static>(
    registry: &Registry,
    name: &str,
    expected: &'static str,
) -> Result<Vec<Shared<S>>> {
    if let Some(partition) = registry.restoring(name) {
        return Err(StreamsError::StoreUnavailable {
            name: name.into(),
            partition,
        });
    }
    registry
        .get(name)
        .into_iter()
        .map(|a: Arc<dyn Any + Send + Sync>| {
            a.downcast::<parking_lot::RwLock<S>>()
                .map_err(|_| StreamsError::StoreType {
                    name: name.into(),
                    expected,
                })
        })
        .collect()
}

/// The local partitions of a key-value store
/// ([`Streams::key_value_store`](crate::Streams::key_value_store)). A live view: each
/// call reads the partitions whose tasks run in this instance at that moment, so after
/// a rebalance it answers from the partitions local then. A partition between two
/// owners (revoked, its restore here not begun) is not local: its keys are not found.
pub struct ReadOnlyKeyValueStore<K, V> {
    pub(crate) name: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> ReadOnlyKeyValueStore<K, V>
where
    K: Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn parts(&self) -> Result<Vec<Shared<KvStore<K, V>>>> {
        local_parts(&self.registry, &self.name, "key-value store")
    }

    /// The value of `key`, if a local partition has it.
    ///
    /// # Errors
    /// `Serialize` if the key serde refuses `key`; `StoreUnavailable` while a local
    /// partition of the store is being restored.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        for p in &self.parts()? {
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
    /// `Serialize` if a stored key does not decode; `StoreUnavailable` while a local
    /// partition of the store is being restored.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for p in &self.parts()? {
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
    ///
    /// # Errors
    /// `StoreUnavailable` while a local partition of the store is being restored.
    pub fn approximate_num_entries(&self) -> Result<usize> {
        Ok(self.parts()?.iter().map(|p| p.read().len()).sum())
    }
}

/// The local partitions of a window store
/// ([`Streams::window_store`](crate::Streams::window_store)). A live view, as
/// [`ReadOnlyKeyValueStore`] is.
pub struct ReadOnlyWindowStore<K, V> {
    pub(crate) name: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> ReadOnlyWindowStore<K, V>
where
    K: Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn parts(&self) -> Result<Vec<Shared<WindowStore<K, V>>>> {
        local_parts(&self.registry, &self.name, "window store")
    }

    /// The windows of `key` starting in `from..=to` (ms), oldest first.
    ///
    /// # Errors
    /// `Serialize` if the key serde refuses `key`; `StoreUnavailable` while a local
    /// partition of the store is being restored.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>> {
        let mut out = Vec::new();
        for p in &self.parts()? {
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
    /// `Serialize` if a stored key does not decode; `StoreUnavailable` while a local
    /// partition of the store is being restored.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for p in &self.parts()? {
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
