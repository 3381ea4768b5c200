//! The runtime: [`Streams`] and its threads, tasks, commits and restores.

mod config;
mod partition_group;
mod restore;
mod streams;
mod task;
mod thread;

pub use config::{
    DeserializationPolicy, ProcessingGuarantee, RestoreListener, RestoreProgress, StreamsConfig,
};
pub use streams::{Streams, StreamsState};
