//! [`KTable`]: a changelog stream, the latest value per key, kept in a store.

use std::cell::RefCell;
use std::rc::Rc;

use super::builder::Inner;
use super::kstream::KStream;
use super::node::Children;
use crate::serdes::Serde;

/// A table: the latest value per key (Kafka Streams' `KTable`), from a topic
/// ([`StreamsBuilder::table`](crate::StreamsBuilder::table)) or an aggregation. Its
/// store is queryable by [`store_name`](Self::store_name) while the application runs.
pub struct KTable<K, V> {
    pub(crate) b: Rc<RefCell<Inner>>,
    /// Processors receiving each update.
    pub(crate) children: Children<K, V>,
    pub(crate) sub: usize,
    pub(crate) key_serde: Option<Serde<K>>,
    pub(crate) value_serde: Option<Serde<V>>,
    /// The key-value store holding it (none for windowed tables, whose store is a
    /// window store of the same name as [`store_name`](Self::store_name) returns).
    pub(crate) store: Option<String>,
}

impl<K: 'static, V: 'static> KTable<K, V> {
    /// The updates of the table as a stream: one record per new value (no caching, so
    /// each input record that sets a value emits it).
    ///
    /// A delete (a table topic's record with a null value) removes the key from the
    /// store, and joins see it gone, but it emits no record here: a stream's values are
    /// `V`, which cannot carry Kafka's null, so downstream of `to_stream` (where Kafka
    /// Streams forwards a tombstone) the key simply gets no update.
    pub fn to_stream(&self) -> KStream<K, V> {
        KStream {
            b: Rc::clone(&self.b),
            children: self.children.clone(),
            sub: self.sub,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            key_changed: false,
        }
    }

    /// The name of the key-value store holding the table, for
    /// [`Streams::key_value_store`](crate::Streams::key_value_store) (`None` for a
    /// windowed table: see [`TimeWindowedKStream`](crate::TimeWindowedKStream)).
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }
}
