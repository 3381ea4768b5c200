//! The options operators take, named as in Kafka Streams: [`Consumed`], [`Produced`],
//! [`Grouped`], [`Materialized`].

use std::time::Duration;

use crate::serdes::Serde;

/// How a source topic's records decode.
#[derive(Debug, Clone)]
pub struct Consumed<K, V> {
    pub(crate) key_serde: Serde<K>,
    pub(crate) value_serde: Serde<V>,
}

impl<K, V> Consumed<K, V> {
    /// Keys and values decoded by these serdes.
    pub fn with(key_serde: Serde<K>, value_serde: Serde<V>) -> Self {
        Consumed {
            key_serde,
            value_serde,
        }
    }
}

/// How records are encoded for an output topic. [`Produced::default`] uses the serdes
/// the stream carries (those of its source, kept through `filter`, and through
/// `map_values` for the key).
#[derive(Debug, Clone)]
pub struct Produced<K, V> {
    pub(crate) key_serde: Option<Serde<K>>,
    pub(crate) value_serde: Option<Serde<V>>,
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced {
            key_serde: None,
            value_serde: None,
        }
    }
}

impl<K, V> Produced<K, V> {
    /// Keys and values encoded by these serdes.
    pub fn with(key_serde: Serde<K>, value_serde: Serde<V>) -> Self {
        Produced {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
        }
    }
}

/// How a grouping encodes keys (for its stores) and values (for its repartition topic,
/// when the key changed upstream), and the name of that topic. Default: the stream's
/// serdes and a generated name.
#[derive(Debug, Clone)]
pub struct Grouped<K, V> {
    pub(crate) key_serde: Option<Serde<K>>,
    pub(crate) value_serde: Option<Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped {
            key_serde: None,
            value_serde: None,
            name: None,
        }
    }
}

impl<K, V> Grouped<K, V> {
    /// Keys and values encoded by these serdes.
    pub fn with(key_serde: Serde<K>, value_serde: Serde<V>) -> Self {
        Grouped {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            name: None,
        }
    }

    /// Names the repartition topic `<application_id>-<name>-repartition`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The store an aggregation or table keeps its state in: its name (also naming the
/// changelog topic `<application_id>-<name>-changelog` and the store for queries) and
/// the value serde for that changelog. Default: a generated name and the serde implied
/// by the operator (`count` uses i64).
#[derive(Debug, Clone)]
pub struct Materialized<V> {
    pub(crate) name: Option<String>,
    pub(crate) value_serde: Option<Serde<V>>,
    pub(crate) retention: Option<Duration>,
}

impl<V> Default for Materialized<V> {
    fn default() -> Self {
        Materialized {
            name: None,
            value_serde: None,
            retention: None,
        }
    }
}

impl<V> Materialized<V> {
    /// A store named `name` (Kafka's `Materialized.as`).
    pub fn named(name: impl Into<String>) -> Self {
        Materialized {
            name: Some(name.into()),
            value_serde: None,
            retention: None,
        }
    }

    /// For a window store: how long a window is kept after it starts (by stream time,
    /// as Kafka's window stores); older windows are removed from the store and its
    /// changelog. At least the window
    /// size plus grace (checked when the topology is built). Default = the window size
    /// plus grace, as in Kafka Streams since 3.0: a window leaves the store once it is
    /// closed, so set a longer retention to query windows after they close. Ignored by
    /// key-value stores.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// The serde of the stored values.
    #[must_use]
    pub fn with_value_serde(mut self, serde: Serde<V>) -> Self {
        self.value_serde = Some(serde);
        self
    }
}
