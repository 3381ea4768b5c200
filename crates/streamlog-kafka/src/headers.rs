//! The headers the mirror adds, and how their values are written.
//!
//! Both carry an offset as decimal ASCII text (`"42"`), readable in `kcat -f '%h'` and in
//! `streamlog dump`. The mirror resumes from these headers, so it never needs a place of
//! its own to remember its progress: the destination partition is the progress.

/// Added by [`Mirror::to_kafka`](crate::Mirror::to_kafka) to every record it writes to
/// Kafka: the record's offset in the store partition it came from.
///
/// ```
/// // A Kafka consumer finds where a record came from:
/// let headers = [("trace", &b"t1"[..]), (streamlog_kafka::SOURCE_OFFSET_HEADER, &b"42"[..])];
/// let (_, v) = headers.iter().find(|(k, _)| *k == "streamlog.source.offset").unwrap();
/// assert_eq!(streamlog_kafka::decode_offset(v), Some(42));
/// ```
pub const SOURCE_OFFSET_HEADER: &str = "streamlog.source.offset";

/// Added by [`Mirror::to_kafka`](crate::Mirror::to_kafka) to every record it writes to
/// Kafka next to [`SOURCE_OFFSET_HEADER`]: the id of the store topic it came from
/// ([`streamlog::Topic::id`], Kafka's text form). A mirror resuming from the last
/// record's offset checks it: a store topic deleted and created again since (or a store
/// replaced) is another topic, whose offsets say nothing of what was copied.
///
/// ```
/// assert_eq!(streamlog_kafka::SOURCE_TOPIC_ID_HEADER, "streamlog.source.topic.id");
/// ```
pub const SOURCE_TOPIC_ID_HEADER: &str = "streamlog.source.topic.id";

/// Added by [`Mirror::from_kafka`](crate::Mirror::from_kafka) to every record it writes to
/// the store: the record's offset in the Kafka partition it came from.
///
/// ```
/// let r = streamlog::Record::new(0, Some("k"), Some("v"))
///     .header(streamlog_kafka::KAFKA_OFFSET_HEADER, "7");
/// assert_eq!(r.headers[0].key, "streamlog.kafka.offset");
/// ```
pub const KAFKA_OFFSET_HEADER: &str = "streamlog.kafka.offset";

/// The header value for `offset`.
///
/// ```
/// assert_eq!(streamlog_kafka::encode_offset(42), b"42".to_vec());
/// ```
pub fn encode_offset(offset: i64) -> Vec<u8> {
    offset.to_string().into_bytes()
}

/// The offset a header value holds, if it is one: decimal ASCII digits of a
/// non-negative `i64`.
///
/// ```
/// assert_eq!(streamlog_kafka::decode_offset(b"42"), Some(42));
/// assert_eq!(streamlog_kafka::decode_offset(b"-1"), None);
/// assert_eq!(streamlog_kafka::decode_offset(b"4x"), None);
/// ```
pub fn decode_offset(value: &[u8]) -> Option<i64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The offset in the last header named `name`, if the headers hold a valid one.
pub(crate) fn find_offset<'a>(
    headers: impl DoubleEndedIterator<Item = (&'a str, Option<&'a [u8]>)>,
    name: &str,
) -> Option<i64> {
    headers
        .rev()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v)
        .and_then(decode_offset)
}
