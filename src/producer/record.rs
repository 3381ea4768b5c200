//! What a producer sends: [`ProducerRecord`] and the bytes of its key and value
//! ([`Payload`]).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::format::Header;

/// The bytes of a record's key or value, borrowed or owned.
///
/// `send` copies them into the partition's open batch before it returns, so borrowed
/// bytes (a reference to anything that is `AsRef<[u8]>`: `&[u8]`, `&str` and string
/// literals, `&Vec<u8>`, `&String`, `&[u8; N]`, `&Bytes`) cost no allocation and no
/// reference count; owned bytes (`Vec<u8>`, `String`, [`Bytes`], `BytesMut`,
/// `Box<[u8]>`) are accepted as well. Equality and hashing are by content. Build one
/// with `.into()`, or let [`ProducerRecord::key`] and [`ProducerRecord::value`] convert.
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

impl std::hash::Hash for Payload<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl AsRef<[u8]> for Payload<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Any borrowed bytes: `&[u8]`, `&str`, `&[u8; N]`, `&Vec<u8>`, `&String`, `&Bytes`,
/// `&&str`...
impl<'a, T: AsRef<[u8]> + ?Sized> From<&'a T> for Payload<'a> {
    fn from(b: &'a T) -> Self {
        Payload(Repr::Borrowed(b.as_ref()))
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

impl From<bytes::BytesMut> for Payload<'_> {
    fn from(b: bytes::BytesMut) -> Self {
        Payload(Repr::Owned(b.freeze()))
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
/// The topic, key and value may borrow the application's buffers (`'a`): `send` copies
/// them into the batch before it returns, so borrowing is the cheapest way to send bytes
/// already in hand. With owned (or `'static`) topic, key and value (`Vec<u8>`, `String`,
/// [`Bytes`], literals) the record is a `ProducerRecord<'static>`, to keep or pass on;
/// [`into_owned`](Self::into_owned) makes one from any record.
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
    /// Adds a header as it is, also one with a null value (a copy of a consumed
    /// record's header).
    ///
    /// ```
    /// use streamlog::{Header, ProducerRecord};
    /// let r = ProducerRecord::new("t").with_header(Header::null("trace"));
    /// # let _ = r;
    /// ```
    #[must_use]
    pub fn with_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }
    /// The CreateTime timestamp (ms since the epoch). Default = the store clock's time
    /// at the send, as its thread read it at most a millisecond earlier
    /// ([`Clock::recent_ms`](crate::log::Clock::recent_ms)).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn borrowed(p: &Payload<'_>) -> bool {
        matches!(p.0, Repr::Borrowed(_))
    }

    #[test]
    fn every_source_gives_its_bytes_borrowed_or_owned() {
        let vec = b"abc".to_vec();
        let string = String::from("abc");
        let bytes = Bytes::from_static(b"abc");
        let boxed: Box<[u8]> = Box::from(&b"abc"[..]);
        let literal = "abc";
        let names = ["abc"];
        let borrowed_ones: Vec<Payload<'_>> = vec![
            (&b"abc"[..]).into(),
            b"abc".into(),
            "abc".into(),
            (&vec).into(),
            (&string).into(),
            (&bytes).into(),
            (&boxed).into(),
            (&literal).into(),
            names.first().expect("one").into(), // a `&&str`
            Cow::Borrowed(&b"abc"[..]).into(),
            Cow::Borrowed("abc").into(),
        ];
        for p in &borrowed_ones {
            assert!(borrowed(p), "{p:?} should borrow");
            assert_eq!(p.as_bytes(), b"abc");
        }
        let owned_ones: Vec<Payload<'static>> = vec![
            vec.clone().into(),
            string.clone().into(),
            bytes.clone().into(),
            bytes::BytesMut::from(&b"abc"[..]).into(),
            boxed.clone().into(),
            Cow::<[u8]>::Owned(vec.clone()).into(),
            Cow::<str>::Owned(string.clone()).into(),
            Payload::from("abc").into_owned(),
        ];
        for p in &owned_ones {
            assert!(!borrowed(p), "{p:?} should own");
            assert_eq!(p, &borrowed_ones[0], "equal by content");
        }
        let state = std::hash::RandomState::new();
        let h = |p: &Payload<'_>| std::hash::BuildHasher::hash_one(&state, p);
        assert_eq!(h(&borrowed_ones[0]), h(&owned_ones[0]), "hashed by content");
        assert_eq!(format!("{:?}", Payload::from("a\"\n")), r#"b"a\"\n""#);
    }

    #[test]
    fn into_owned_copies_what_was_borrowed() {
        let key = String::from("k");
        let topic = String::from("t");
        let record = ProducerRecord::new(topic.as_str())
            .key(&key)
            .value("v")
            .partition(2)
            .timestamp(7)
            .header("h", "x");
        let owned: ProducerRecord<'static> = record.into_owned();
        drop((key, topic));
        assert_eq!(owned.topic, "t");
        assert_eq!(owned.key_bytes(), Some(&b"k"[..]));
        assert_eq!(owned.value_bytes(), Some(&b"v"[..]));
        assert_eq!((owned.partition, owned.timestamp), (Some(2), Some(7)));
        assert_eq!(owned.headers.len(), 1);
        assert!(owned.key.as_ref().is_some_and(|k| !borrowed(k)));
    }
}
