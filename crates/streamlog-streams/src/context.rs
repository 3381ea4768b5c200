//! What processors hand back to the runtime while they process one record: records to
//! send, and where the record came from (for error messages).

use std::sync::Arc;

use streamlog::Header;

use crate::metrics::Metrics;

/// A record a processor wants sent (to an output or repartition topic).
#[derive(Debug)]
pub(crate) struct OutRecord {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: Option<i32>,
    /// Without `partition`: the leading bytes of `key` that choose it (murmur2, as
    /// Kafka's partitioner), `None` for the producer's partitioner (the application's
    /// if it set one; by the whole key's hash if not).
    pub(crate) partition_prefix: Option<usize>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    /// The headers of the input record it came from (none for a changelog record).
    pub(crate) headers: Vec<Header>,
}

/// The context processors run in: outputs are collected here and sent by the runtime
/// after the poll's records are processed.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) out: Vec<OutRecord>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// The headers of the record being processed: every record sent while it is
    /// carries them, as Kafka Streams forwards a record's headers.
    pub(crate) headers: Vec<Header>,
}

impl Ctx {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Ctx {
            out: Vec::new(),
            metrics,
            topic: Arc::from(""),
            partition: 0,
            offset: 0,
            headers: Vec::new(),
        }
    }

    pub(crate) fn skip(&self) {
        Metrics::add(&self.metrics.skipped, 1);
    }
}
