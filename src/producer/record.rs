//! What a producer sends: [`ProducerRecord`] and the bytes of its key and value
//! ([`Payload`]).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::format::Header;

/// The bytes of a record's key or value, borrowed or owned.
///
/// `send` copies them into the partition's open batch before it returns, so a borrowed
/// slice (`&[u8]`, `&str`, `&Vec<u8>`, `&String`, `&[u8; N]`) costs no allocation and
/// no reference count; owned bytes (`Vec<u8>`, `String`, [`Bytes`], `&'static str`
/// through its borrow) are accepted as well. Build one with `.into()`, or let
/// [`ProducerRecord::key`] and [`ProducerRecord::value`] convert.
///
/// ```
/// use streamlog::producer::Payload;
/// let owned: Payload<'static> = String::from("home").into();
/// let line = b"user-7".to_vec();
/// let borrowed: Payload<'_> = (&line).into();
/// assert_eq!(owned.as_bytes(), b"home");
/// assert_eq!(borrowed.as_bytes(), b"user-7");
/// ```
#[derive(Clone)]
pub struct Payload<'a>(Repr<'a>);

#[derive(Clone)]
enum Repr<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl Payload<'_> {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Borrowed(b) => b,
            Repr::Owned(b) => b,
        }
    }

    /// The bytes, owned (copies borrowed ones).
    pub fn into_owned(self) -> Payload<'static> {
        Payload(Repr::Owned(match self.0 {
            Repr::Borrowed(b) => Bytes::copy_from_slice(b),
            Repr::Owned(b) => b,
        }))
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_bytes().escape_ascii())
    }
}

impl PartialEq for Payload<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Payload<'_> {}

impl AsRef<[u8]> for Payload<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(b: &'a [u8]) -> Self {
        Payload(Repr::Borrowed(b))
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Payload<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Payload(Repr::Borrowed(b))
    }
}

impl<'a> From<&'a str> for Payload<'a> {
    fn from(s: &'a str) -> Self {
        Payload(Repr::Borrowed(s.as_bytes()))
    }
}

impl<'a> From<&'a Vec<u8>> for Payload<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Payload(Repr::Borrowed(b))
    }
}

impl<'a> From<&'a String> for Payload<'a> {
    fn from(s: &'a String) -> Self {
        Payload(Repr::Borrowed(s.as_bytes()))
    }
}

impl<'a> From<&'a Bytes> for Payload<'a> {
    fn from(b: &'a Bytes) -> Self {
        Payload(Repr::Borrowed(b))
    }
}

impl From<Bytes> for Payload<'_> {
    fn from(b: Bytes) -> Self {
        Payload(Repr::Owned(b))
    }
}

impl From<Vec<u8>> for Payload<'_> {
    fn from(b: Vec<u8>) -> Self {
        Payload(Repr::Owned(b.into()))
    }
}

impl From<String> for Payload<'_> {
    fn from(s: String) -> Self {
        Payload(Repr::Owned(s.into()))
    }
}

impl From<Box<[u8]>> for Payload<'_> {
    fn from(b: Box<[u8]>) -> Self {
        Payload(Repr::Owned(b.into()))
    }
}

impl<'a> From<Cow<'a, [u8]>> for Payload<'a> {
    fn from(b: Cow<'a, [u8]>) -> Self {
        match b {
            Cow::Borrowed(b) => b.into(),
            Cow::Owned(b) => b.into(),
        }
    }
}

impl<'a> From<Cow<'a, str>> for Payload<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        match s {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

/// A record to send.
///
/// The key and value may borrow the application's buffers (`'a`): `send` copies them
/// into the batch before it returns, so borrowing is the cheapest way to send bytes
/// already in hand. Owned bytes (`Vec<u8>`, `String`, [`Bytes`]) work too, and give a
/// `ProducerRecord<'static>` to keep or pass on.
///
/// ```
/// use streamlog::ProducerRecord;
/// let user = String::from("user-7");
/// let page = br#"{"page":"home"}"#.to_vec();
/// let borrowed = ProducerRecord::new("clicks").key(&user).value(&page);
/// let owned: ProducerRecord<'static> = ProducerRecord::new("clicks").key(user.clone()).value(page.clone());
/// assert_eq!(borrowed, owned);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord<'a> {
    pub(super) topic: Cow<'a, str>,
    pub(super) partition: Option<i32>,
    pub(super) key: Option<Payload<'a>>,
    pub(super) value: Option<Payload<'a>>,
    pub(super) headers: Vec<Header>,
    pub(super) timestamp: Option<i64>,
}

impl<'a> ProducerRecord<'a> {
    /// A record for `topic` with null key and value (set them with the builders). A
    /// borrowed topic name (`&str`) is not copied.
    pub fn new(topic: impl Into<Cow<'a, str>>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }
    /// Sends to this partition, bypassing the partitioner.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    /// The key (chooses the partition by murmur2 with the default partitioner).
    #[must_use]
    pub fn key(mut self, key: impl Into<Payload<'a>>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// The value (none = a tombstone).
    #[must_use]
    pub fn value(mut self, value: impl Into<Payload<'a>>) -> Self {
        self.value = Some(value.into());
        self
    }
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
    /// The CreateTime timestamp (ms since the epoch). Default = now.
    #[must_use]
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The record with its topic, key and value owned (copied if borrowed), to keep
    /// beyond the buffers it borrowed.
    pub fn into_owned(self) -> ProducerRecord<'static> {
        ProducerRecord {
            topic: Cow::Owned(self.topic.into_owned()),
            partition: self.partition,
            key: self.key.map(Payload::into_owned),
            value: self.value.map(Payload::into_owned),
            headers: self.headers,
            timestamp: self.timestamp,
        }
    }

    pub(super) fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_ref().map(Payload::as_bytes)
    }

    pub(super) fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_ref().map(Payload::as_bytes)
    }
}
