//! streamlog-streams: Kafka Streams' DSL over [streamlog], inside your process.
//!
//! Build a topology of typed streams and tables ([`StreamsBuilder`], [`KStream`],
//! [`KTable`]): stateless operators, groupings (through a repartition topic when the key
//! changed), counts, reductions and aggregations, tumbling and hopping time windows
//! with a grace period, stream-table joins. Run it with [`Streams`]: stream threads in
//! a consumer group, one task per input partition, state in stores backed by compacted
//! changelog topics (restored when a task starts, queryable while it runs), and either
//! at-least-once or exactly-once processing (one transaction per commit interval
//! covering outputs, changelogs and input offsets). A record's headers go with every
//! record sent while it is processed (outputs, repartition records, an aggregation's
//! updates), as in Kafka Streams; changelog records carry none.
//!
//! The seeds' topology, purchases counted per user in 5-minute windows:
//!
//! ```
//! use std::time::Duration;
//! use streamlog::{Record, Store, TopicConfig};
//! use streamlog_streams::{
//!     serdes, Consumed, Materialized, ProcessingGuarantee, Produced, Streams, StreamsBuilder,
//!     StreamsConfig, TimeWindows,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.create_topic("raw-events", TopicConfig::default().partitions(2))?;
//! store.create_topic("purchase-counts", TopicConfig::default().partitions(2))?;
//! store.topic("raw-events")?.partition(0)?.append(&[
//!     Record::new(1_000, Some("user-1"), Some("purchase:book")),
//!     Record::new(2_000, Some("user-1"), Some("view:home")),
//!     Record::new(3_000, Some("user-1"), Some("purchase:pen")),
//! ])?;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("raw-events", Consumed::with(serdes::string(), serdes::string()))
//!     .filter(|_, event| event.starts_with("purchase"))
//!     .map_values(|event| event.to_uppercase())
//!     .group_by_key()
//!     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(300)))
//!     .count(Materialized::named("purchase-counts-store"))
//!     .to_stream()
//!     .to("purchase-counts", Produced::with(serdes::windowed(serdes::string(), 300_000), serdes::i64()));
//!
//! let config = StreamsConfig::new("purchases").processing_guarantee(ProcessingGuarantee::ExactlyOnce);
//! let streams = Streams::new(builder.build()?, config, &store)?;
//! streams.start()?;
//! streams.wait_until_caught_up(Duration::from_secs(60))?;
//! let counts = streams.window_store::<String, i64>("purchase-counts-store")?;
//! assert_eq!(counts.fetch(&"user-1".to_string(), 0, 0)?[0].1, 2);
//! streams.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, each using only those below it: `runtime` ([`Streams`], threads, tasks,
//! commits, restores) -> `topology` (the DSL and the processors it instantiates per
//! task) and `query` (interactive queries) -> `store` (key-value and window stores with
//! changelogs) -> `context`, `metrics`, `serdes`, `windows`, `error`.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod context;
mod error;
mod metrics;
pub mod query;
mod runtime;
pub mod serdes;
mod store;
mod topology;
mod windows;

pub use error::{Result, StreamsError};
pub use metrics::MetricsSnapshot;
pub use runtime::{
    DeserializationPolicy, ProcessingGuarantee, RestoreListener, RestoreProgress, Streams,
    StreamsConfig, StreamsState,
};
pub use serdes::Serde;
pub use topology::{
    Consumed, Grouped, KGroupedStream, KStream, KTable, Materialized, Predicate, Produced,
    StreamsBuilder, TimeWindowedKStream, Topology,
};
pub use windows::{TimeWindows, Window, Windowed};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<crate::Streams>();
        send_sync::<crate::Topology>();
        send_sync::<crate::query::ReadOnlyKeyValueStore<String, i64>>();
    }
}
