//! Processor nodes: what a topology becomes in each task. A DSL operator registers a
//! factory with its parent; a task instantiates the factories from its sources down,
//! so each task has its own processors, and state shared between them lives in named
//! stores created once per task.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::context::Ctx;
use crate::error::{Result, StreamsError};
use crate::serdes::Serde;
use crate::store::{KvStore, Shared, StoreHandle, WindowStore, changelog_topic};

/// A processor of typed records.
pub(crate) trait Node<K, V>: Send {
    fn process(&mut self, ctx: &mut Ctx, key: &K, value: &V, timestamp: i64) -> Result<()>;
}

/// A processor made of a closure.
pub(crate) struct NodeFn<F>(pub(crate) F);

impl<K, V, F> Node<K, V> for NodeFn<F>
where
    F: FnMut(&mut Ctx, &K, &V, i64) -> Result<()> + Send,
{
    fn process(&mut self, ctx: &mut Ctx, key: &K, value: &V, timestamp: i64) -> Result<()> {
        (self.0)(ctx, key, value, timestamp)
    }
}

/// Builds an operator's processor for one task.
pub(crate) type Factory<K, V> =
    Arc<dyn Fn(&mut Instantiate) -> Result<Box<dyn Node<K, V>>> + Send + Sync>;

/// The operators downstream of a stream (filled while the topology is built, read-only
/// afterwards).
pub(crate) struct Children<K, V>(Arc<Mutex<Vec<Factory<K, V>>>>);

impl<K, V> Clone for Children<K, V> {
    fn clone(&self) -> Self {
        Children(Arc::clone(&self.0))
    }
}

impl<K: 'static, V: 'static> Children<K, V> {
    pub(crate) fn new() -> Self {
        Children(Arc::new(Mutex::new(Vec::new())))
    }

    pub(crate) fn push(&self, f: Factory<K, V>) {
        self.0.lock().push(f);
    }

    pub(crate) fn instantiate(&self, inst: &mut Instantiate) -> Result<Fanout<K, V>> {
        let factories: Vec<Factory<K, V>> = self.0.lock().clone();
        let mut nodes = Vec::with_capacity(factories.len());
        for f in factories {
            nodes.push(f(inst)?);
        }
        Ok(Fanout(nodes))
    }
}

/// The processors a record goes to next, in the order they were added.
pub(crate) struct Fanout<K, V>(Vec<Box<dyn Node<K, V>>>);

impl<K, V> Fanout<K, V> {
    pub(crate) fn process(&mut self, ctx: &mut Ctx, key: &K, value: &V, ts: i64) -> Result<()> {
        for n in &mut self.0 {
            n.process(ctx, key, value, ts)?;
        }
        Ok(())
    }
}

/// A source: decodes a topic's records and pushes them into the topology.
pub(crate) trait SourceNode: Send {
    fn process(
        &mut self,
        ctx: &mut Ctx,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()>;
}

/// Builds a source's processors for one task.
pub(crate) type SourceFactory =
    Arc<dyn Fn(&mut Instantiate) -> Result<Box<dyn SourceNode>> + Send + Sync>;

/// One task being built: the application (for internal topic names) and the stores its
/// processors created.
pub(crate) struct Instantiate {
    pub(crate) app_id: Arc<str>,
    /// Undecodable records are skipped (and counted) instead of failing the thread.
    pub(crate) skip_bad_records: bool,
    pub(crate) stores: BTreeMap<String, Box<dyn StoreHandle>>,
}

impl Instantiate {
    /// The full name of an internal topic.
    pub(crate) fn internal_topic(&self, suffix: &str) -> Arc<str> {
        Arc::from(format!("{}-{suffix}", self.app_id))
    }

    pub(crate) fn changelog(&self, store: &str) -> Arc<str> {
        Arc::from(changelog_topic(&self.app_id, store))
    }

    /// The task's key-value store `name`, created on first use.
    pub(crate) fn kv_store<K, V>(
        &mut self,
        name: &str,
        key_serde: &Serde<K>,
        value_serde: &Serde<V>,
    ) -> Result<Shared<KvStore<K, V>>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        if let Some(h) = self.stores.get(name) {
            return h.shared().downcast::<RwLock<KvStore<K, V>>>().map_err(|_| {
                StreamsError::StoreType {
                    name: name.into(),
                    expected: "key-value store",
                }
            });
        }
        let s: Shared<KvStore<K, V>> = Arc::new(RwLock::new(KvStore::new(
            key_serde.clone(),
            value_serde.clone(),
        )));
        self.stores
            .insert(name.to_string(), Box::new(Arc::clone(&s)));
        Ok(s)
    }

    /// The task's window store `name`, created on first use.
    pub(crate) fn window_store<K, V>(
        &mut self,
        name: &str,
        key_serde: &Serde<K>,
        value_serde: &Serde<V>,
        size_ms: i64,
        retention_ms: i64,
    ) -> Result<Shared<WindowStore<K, V>>>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        if let Some(h) = self.stores.get(name) {
            return h
                .shared()
                .downcast::<RwLock<WindowStore<K, V>>>()
                .map_err(|_| StreamsError::StoreType {
                    name: name.into(),
                    expected: "window store",
                });
        }
        let s: Shared<WindowStore<K, V>> = Arc::new(RwLock::new(WindowStore::new(
            key_serde.clone(),
            value_serde.clone(),
            size_ms,
            retention_ms,
        )));
        self.stores
            .insert(name.to_string(), Box::new(Arc::clone(&s)));
        Ok(s)
    }
}
