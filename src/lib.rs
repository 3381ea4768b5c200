//! streamlog: Kafka's log model inside your process.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod error;
pub mod format;
pub mod fs;
pub mod log;
#[cfg(feature = "internals")]
pub mod internals;

pub use error::{Error, Result};
pub use format::{Batch, BatchBuilder, Compression, Header, Record};
