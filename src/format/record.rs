//! Records and headers, as a caller builds them and as the decoder returns them.

use bytes::Bytes;

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header key. Kafka's protocol says UTF-8, but only Java's client keeps to it:
    /// a key of other bytes (librdkafka and other clients write keys as bytes) is read
    /// as Kafka's Java client reads it, each invalid sequence replaced by U+FFFD.
    pub key: String,
    /// The header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header with Kafka's null value (not the same as an empty value).
    pub fn null(key: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: None,
        }
    }
}

/// One record: what a producer sends and what a reader gets back.
///
/// When decoded from a batch, `key`, `value` and header values are zero-copy slices of the
/// batch bytes (of the decompressed buffer for compressed batches).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The record's offset in its partition (ignored when building a batch: offsets are
    /// assigned by the log).
    pub offset: i64,
    /// Milliseconds since the Unix epoch (CreateTime), or the log's append time when the
    /// batch uses LogAppendTime.
    pub timestamp: i64,
    /// The key; `None` is Kafka's null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with the given timestamp, key and value and no headers.
    pub fn new(
        timestamp: i64,
        key: Option<impl Into<Bytes>>,
        value: Option<impl Into<Bytes>>,
    ) -> Self {
        Record {
            offset: 0,
            timestamp,
            key: key.map(Into::into),
            value: value.map(Into::into),
            headers: Vec::new(),
        }
    }

    /// A tombstone: a record with a key and a null value, which tells a compacted topic
    /// to delete the key (see `TopicConfig::delete_retention_ms`).
    ///
    /// ```
    /// let t = streamlog::Record::tombstone(1_700_000_000_000, "user-7");
    /// assert!(t.value.is_none());
    /// ```
    pub fn tombstone(timestamp: i64, key: impl Into<Bytes>) -> Self {
        Record {
            offset: 0,
            timestamp,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header with Kafka's null value.
    #[must_use]
    pub fn null_header(mut self, key: impl Into<String>) -> Self {
        self.headers.push(Header::null(key));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}
