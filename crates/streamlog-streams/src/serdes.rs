//! Serdes: how keys and values become bytes and back. [`Serde<T>`] is a pair of
//! functions; the constructors here give Kafka's common ones (byte arrays, UTF-8
//! strings, big-endian integers as Kafka's `LongSerde`, JSON behind the `json` feature,
//! and windowed keys).

use std::fmt;
use std::sync::Arc;

use crate::windows::{Window, Windowed};

type SerFn<T> = dyn Fn(&T) -> Result<Vec<u8>, String> + Send + Sync;
type DeFn<T> = dyn Fn(&[u8]) -> Result<T, String> + Send + Sync;

/// Encodes `T` into bytes and decodes it back. Cheap to clone.
///
/// ```
/// use streamlog_streams::serdes::{self, Serde};
/// let s: Serde<String> = serdes::string();
/// assert_eq!(s.deserialize(&s.serialize(&"hi".to_string())?)?, "hi");
/// let upper = Serde::new(|v: &u8| Ok(vec![*v]), |b: &[u8]| b.first().copied().ok_or("empty".into()));
/// assert_eq!(upper.serialize(&7)?, vec![7]);
/// # Ok::<(), String>(())
/// ```
pub struct Serde<T> {
    ser: Arc<SerFn<T>>,
    de: Arc<DeFn<T>>,
    /// For keys written to an output topic: how many leading bytes of an encoded key
    /// choose its partition (`None`: all). A windowed key is partitioned by its inner
    /// key alone, as Kafka Streams' `WindowedStreamPartitioner` does.
    partition_prefix: Option<fn(&[u8]) -> usize>,
}

impl<T> Clone for Serde<T> {
    fn clone(&self) -> Self {
        Serde {
            ser: Arc::clone(&self.ser),
            de: Arc::clone(&self.de),
            partition_prefix: self.partition_prefix,
        }
    }
}

impl<T> fmt::Debug for Serde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serde<{}>", std::any::type_name::<T>())
    }
}

impl<T> Serde<T> {
    /// A serde from a serializer and a deserializer (each returns an error message on
    /// bad input).
    pub fn new(
        ser: impl Fn(&T) -> Result<Vec<u8>, String> + Send + Sync + 'static,
        de: impl Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Serde {
            ser: Arc::new(ser),
            de: Arc::new(de),
            partition_prefix: None,
        }
    }

    /// How many leading bytes of `encoded` (a key this serde wrote) choose its
    /// partition in an output topic; `None`: the whole key, by the producer.
    pub(crate) fn partition_prefix(&self, encoded: &[u8]) -> Option<usize> {
        self.partition_prefix.map(|f| f(encoded))
    }

    /// Encodes `value`.
    ///
    /// # Errors
    /// The serializer's message.
    pub fn serialize(&self, value: &T) -> Result<Vec<u8>, String> {
        (self.ser)(value)
    }

    /// Decodes `bytes`.
    ///
    /// # Errors
    /// The deserializer's message (never a panic on bad bytes for the built-in serdes).
    pub fn deserialize(&self, bytes: &[u8]) -> Result<T, String> {
        (self.de)(bytes)
    }
}

/// Raw bytes, as they are.
pub fn bytes() -> Serde<Vec<u8>> {
    Serde::new(|v: &Vec<u8>| Ok(v.clone()), |b| Ok(b.to_vec()))
}

/// UTF-8 strings (invalid UTF-8 is a deserialization error).
pub fn string() -> Serde<String> {
    Serde::new(
        |v: &String| Ok(v.as_bytes().to_vec()),
        |b| String::from_utf8(b.to_vec()).map_err(|e| format!("not UTF-8: {e}")),
    )
}

fn fixed<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], String> {
    b.try_into()
        .map_err(|_| format!("{what} needs exactly {N} bytes, found {}", b.len()))
}

/// 64-bit signed integers, 8 bytes big-endian (Kafka's `LongSerde`).
pub fn i64() -> Serde<i64> {
    Serde::new(
        |v: &i64| Ok(v.to_be_bytes().to_vec()),
        |b| fixed::<8>(b, "an i64").map(i64::from_be_bytes),
    )
}

/// 64-bit unsigned integers, 8 bytes big-endian.
pub fn u64() -> Serde<u64> {
    Serde::new(
        |v: &u64| Ok(v.to_be_bytes().to_vec()),
        |b| fixed::<8>(b, "a u64").map(u64::from_be_bytes),
    )
}

/// 32-bit signed integers, 4 bytes big-endian (Kafka's `IntegerSerde`).
pub fn i32() -> Serde<i32> {
    Serde::new(
        |v: &i32| Ok(v.to_be_bytes().to_vec()),
        |b| fixed::<4>(b, "an i32").map(i32::from_be_bytes),
    )
}

/// JSON through serde (feature `json`).
///
/// A float that is not finite (NaN, an infinity) is written as `null`, as serde_json
/// writes it, and `null` does not read back as a float: a store whose values hold one
/// fails its restore from the changelog at that record (an `Option<f64>` reads it back
/// as `None` instead). Keep such values out, or use a serde of your own for them.
///
/// ```
/// # #[cfg(feature = "json")] {
/// let s = streamlog_streams::serdes::json::<Vec<u32>>();
/// assert_eq!(s.serialize(&vec![1, 2]).unwrap(), b"[1,2]");
/// assert!(s.deserialize(b"{").is_err());
/// # }
/// ```
#[cfg(feature = "json")]
pub fn json<T>() -> Serde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Serde::new(
        |v: &T| serde_json::to_vec(v).map_err(|e| e.to_string()),
        |b| serde_json::from_slice(b).map_err(|e| e.to_string()),
    )
}

/// Windowed keys of windows of `size_ms`: the inner key's bytes then the window start
/// as 8 bytes big-endian (Kafka's `TimeWindowedSerializer`); the end is start + size.
///
/// In an output topic a windowed key goes to the partition of its inner key (Kafka
/// Streams' `WindowedStreamPartitioner`): every window of a key in one partition.
pub fn windowed<K: 'static>(inner: Serde<K>, size_ms: i64) -> Serde<Windowed<K>> {
    let de_inner = inner.clone();
    let mut serde = Serde::new(
        move |w: &Windowed<K>| {
            let mut b = inner.serialize(&w.key)?;
            b.extend_from_slice(&w.window.start.to_be_bytes());
            Ok(b)
        },
        move |b| {
            let (key, start) = split_windowed(b)?;
            Ok(Windowed {
                key: de_inner.deserialize(key)?,
                window: Window {
                    start,
                    end: start.saturating_add(size_ms),
                },
            })
        },
    );
    serde.partition_prefix = Some(|b| b.len().saturating_sub(8));
    serde
}

/// Splits a windowed key into the inner key's bytes and the window start.
pub(crate) fn split_windowed(b: &[u8]) -> Result<(&[u8], i64), String> {
    let Some(at) = b.len().checked_sub(8) else {
        return Err(format!(
            "a windowed key needs at least 8 bytes, found {}",
            b.len()
        ));
    };
    let (key, start) = b.split_at(at);
    Ok((
        key,
        i64::from_be_bytes(fixed::<8>(start, "a window start")?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_refuse_wrong_lengths() {
        assert_eq!(i64().deserialize(&(-5i64).to_be_bytes()), Ok(-5));
        assert!(i64().deserialize(b"abc").is_err());
        assert!(u64().deserialize(b"").is_err());
        assert!(i32().deserialize(&[0; 5]).is_err());
        assert!(string().deserialize(&[0xff]).is_err());
    }

    #[test]
    fn windowed_keys_round_trip() {
        let s = windowed(string(), 300);
        let w = Windowed {
            key: "k".to_string(),
            window: Window {
                start: 600,
                end: 900,
            },
        };
        assert_eq!(s.deserialize(&s.serialize(&w).unwrap()).unwrap(), w);
        assert!(s.deserialize(b"short").is_err());
    }
}
