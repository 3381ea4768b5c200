//! Kafka's record format, pure (no I/O): varints, records and headers, RecordBatch v2
//! encoding and decoding, control records and the compression codecs.
//!
//! The byte layout is documented once, in [`batch`], and is Kafka's RecordBatch v2
//! (`DefaultRecordBatch` in Kafka's clients).

pub mod batch;
pub mod compression;
mod record;
pub(crate) mod schema;
pub mod varint;

pub use batch::{
    Batch, BatchBuilder, BatchHeader, BatchIter, ControlRecord, ControlRecordType, DecodeOptions,
    EncodedBatch, RecordIter, TimestampType, batches, control_batch,
};
pub use compression::Compression;
pub use record::{Header, Record};
