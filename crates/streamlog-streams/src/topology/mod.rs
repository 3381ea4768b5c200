//! The DSL: [`StreamsBuilder`] builds typed streams and tables into a [`Topology`] of
//! processor factories, instantiated per task by the runtime.

mod builder;
mod grouped;
mod kstream;
mod ktable;
pub(crate) mod node;
mod options;

pub use builder::{StreamsBuilder, Topology};
pub use grouped::{KGroupedStream, TimeWindowedKStream};
pub use kstream::{KStream, Predicate};
pub use ktable::KTable;
pub use options::{Consumed, Grouped, Materialized, Produced};
