//! Primitives of Kafka's non-flexible message schemas, as the coordinators' internal
//! records (`__consumer_offsets`, `__transaction_state`) use them: big-endian integers
//! and strings with an int16 length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest string the schemas hold (an int16 length).
pub(crate) const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// Writes `s` with its int16 length. Callers validate lengths against
/// [`MAX_STRING_BYTES`] first, so nothing is ever cut here.
pub(crate) fn put_string(b: &mut BytesMut, s: &str) {
    let n = s.len().min(MAX_STRING_BYTES);
    b.put_i16(n as i16);
    b.put_slice(&s.as_bytes()[..n]);
}

/// Reads a string with an int16 length; `None` if it is cut short, negative (null) or
/// not UTF-8.
pub(crate) fn get_string(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let n = usize::try_from(b.get_i16()).ok()?;
    if b.remaining() < n {
        return None;
    }
    String::from_utf8(b.split_to(n).to_vec()).ok()
}
