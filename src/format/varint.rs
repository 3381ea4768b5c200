//! Kafka's zigzag varints: `(n << 1) ^ (n >> 31)` then unsigned LEB128, at most 5 bytes
//! for a varint (i32) and 10 bytes for a varlong (i64).

/// Zigzag-encodes an i32.
pub const fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

/// Zigzag-encodes an i64.
pub const fn zigzag64(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Bytes needed by `put_varint(n)`.
pub const fn varint_len(n: i32) -> usize {
    uvarint_len(zigzag32(n) as u64)
}

/// Bytes needed by `put_varlong(n)`.
pub const fn varlong_len(n: i64) -> usize {
    uvarint_len(zigzag64(n))
}

const fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Writes the LEB128 encoding of `v` at `out[at..]` and returns the position after it;
/// `None` (nothing written) if it does not fit.
fn write_uvarint(out: &mut [u8], at: usize, mut v: u64) -> Option<usize> {
    let end = at.checked_add(uvarint_len(v))?;
    let dst = out.get_mut(at..end)?;
    for b in dst {
        *b = if v >= 0x80 { (v as u8) | 0x80 } else { v as u8 };
        v >>= 7;
    }
    Some(end)
}

/// Writes the zigzag varint of `n` at `out[at..]` (at most 5 bytes, [`varint_len`]);
/// returns the end, or `None` (nothing written) if `out` has no room for it.
#[must_use]
pub fn write_varint(out: &mut [u8], at: usize, n: i32) -> Option<usize> {
    write_uvarint(out, at, zigzag32(n) as u64)
}

/// Writes the zigzag varlong of `n` at `out[at..]` (at most 10 bytes, [`varlong_len`]);
/// returns the end, or `None` (nothing written) if `out` has no room for it.
#[must_use]
pub fn write_varlong(out: &mut [u8], at: usize, n: i64) -> Option<usize> {
    write_uvarint(out, at, zigzag64(n))
}

#[inline]
fn put_uvarint(buf: &mut Vec<u8>, v: u64) {
    // The one- and two-byte cases (lengths and deltas in a batch mostly are) inline.
    if v < 0x80 {
        buf.push(v as u8);
    } else if v < 0x4000 {
        buf.extend_from_slice(&[(v as u8) | 0x80, (v >> 7) as u8]);
    } else {
        put_long_uvarint(buf, v);
    }
}

#[inline(never)]
fn put_long_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    if v < 1 << 56 {
        // At most 8 bytes: built in a register and stored as one word (then cut to
        // length). Bytes written one by one into a scratch array and read back as a
        // word would stall the store-to-load forwarding.
        let (mut word, mut n) = (0u64, 0);
        while v >= 0x80 {
            word |= ((v & 0x7f) | 0x80) << (8 * n);
            v >>= 7;
            n += 1;
        }
        word |= v << (8 * n);
        let end = buf.len() + n + 1;
        buf.extend_from_slice(&word.to_le_bytes());
        buf.truncate(end);
        return;
    }
    let mut tmp = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        tmp[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[n] = v as u8;
    buf.extend_from_slice(&tmp[..=n]);
}

/// Appends the zigzag varint encoding of `n`.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, n: i32) {
    put_uvarint(buf, zigzag32(n) as u64);
}

/// Appends the zigzag varlong encoding of `n`.
#[inline]
pub fn put_varlong(buf: &mut Vec<u8>, n: i64) {
    put_uvarint(buf, zigzag64(n));
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than 5 (varint) or 10 (varlong) bytes, or bits beyond the type's width.
    TooLong,
}

#[inline]
fn read_uvarint(
    buf: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    bits: u32,
) -> Result<u64, VarintError> {
    // Fast paths: record fields are mostly one or two bytes.
    if let Some(&b0) = buf.get(*pos) {
        if b0 < 0x80 {
            *pos += 1;
            return Ok(u64::from(b0));
        }
        if let Some(&b1) = buf.get(*pos + 1)
            && b1 < 0x80
        {
            *pos += 2;
            return Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7));
        }
    }
    read_uvarint_slow(buf, pos, max_bytes, bits)
}

#[cold]
fn read_uvarint_slow(
    buf: &[u8],
    pos: &mut usize,
    max_bytes: usize,
    bits: u32,
) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated);
        };
        let shift = 7 * i as u32;
        let part = u64::from(b & 0x7f);
        // The last permitted byte may only carry the bits that still fit the type.
        if i == max_bytes - 1
            && (b & 0x80 != 0 || (shift + 7 > bits && part >> (bits - shift) != 0))
        {
            return Err(VarintError::TooLong);
        }
        value |= part << shift;
        if b & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
    }
    Err(VarintError::TooLong)
}

/// Reads a zigzag varint at `*pos`, advancing `pos`.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, VarintError> {
    let v = read_uvarint(buf, pos, 5, 32)? as u32;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Reads a zigzag varlong at `*pos`, advancing `pos`.
#[inline]
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, VarintError> {
    let v = read_uvarint(buf, pos, 10, 64)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (12, &[0x18]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(n, bytes) in cases {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            assert_eq!(buf, bytes, "encoding of {n}");
            assert_eq!(varint_len(n), bytes.len());
            let mut pos = 0;
            assert_eq!(read_varint(bytes, &mut pos), Ok(n));
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(
            read_varint(&[0x80, 0x80], &mut pos),
            Err(VarintError::Truncated)
        );
        assert_eq!(
            read_varlong(&[0xff; 10], &mut pos),
            Err(VarintError::TooLong)
        );
        assert_eq!(read_varlong(&[], &mut pos), Err(VarintError::Truncated));
        assert_eq!(pos, 0, "failed reads do not advance");
    }

    /// Values on each side of every length boundary (2^(7k) - 1 and 2^(7k) after
    /// zigzag), and the extremes: each path of `put_uvarint` and each length.
    #[test]
    fn length_boundaries_round_trip() {
        let mut unsigned = vec![0u64, u64::MAX];
        for k in 1..=9 {
            unsigned.push((1u64 << (7 * k)) - 1);
            unsigned.push(1u64 << (7 * k));
        }
        let mut signed: Vec<i64> = vec![i64::MIN, i64::MAX, -1, 1];
        for u in &unsigned {
            // The i64 whose zigzag encoding is `u`.
            signed.push(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
        for n in signed {
            let mut buf = vec![0xaa];
            put_varlong(&mut buf, n);
            let mut scratch = [0u8; 10];
            let end = write_varlong(&mut scratch, 0, n).unwrap();
            assert_eq!(&buf[1..], &scratch[..end], "encoding of {n}");
            assert_eq!(buf.len() - 1, varlong_len(n), "length of {n}");
            let mut pos = 1;
            assert_eq!(read_varlong(&buf, &mut pos), Ok(n));
            assert_eq!(pos, buf.len());
        }
    }

    /// From an API attack: a buffer without room panicked (index out of bounds).
    #[test]
    fn write_without_room_is_none_and_writes_nothing() {
        let mut one = [7u8; 1];
        assert_eq!(write_varint(&mut one, 0, 1_000_000), None);
        assert_eq!(write_varlong(&mut one, 0, i64::MIN), None);
        assert_eq!(write_varint(&mut one, 1, 0), None);
        assert_eq!(write_varint(&mut one, usize::MAX, 0), None);
        assert_eq!(one, [7]);
        assert_eq!(write_varint(&mut one, 0, -1), Some(1));
        assert_eq!(one, [1]);
        let mut three = [0u8; 3];
        assert_eq!(write_varint(&mut three, 0, 1_000_000), Some(3));
    }

    proptest! {
        #[test]
        fn varint_round_trip(n: i32) {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            prop_assert_eq!(buf.len(), varint_len(n));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&buf, &mut pos), Ok(n));
            prop_assert_eq!(pos, buf.len());
        }

        /// Appending to a buffer that already holds bytes (as a batch's records do)
        /// leaves them alone and adds exactly the reference encoding, for every length.
        #[test]
        fn put_appends_the_reference_encoding(
            prefix in proptest::collection::vec(any::<u8>(), 0..20),
            // Shifted by a random width, so every encoded length is as likely.
            values in proptest::collection::vec(
                (any::<i64>(), 0..64u32).prop_map(|(n, shift)| n >> shift),
                1..8,
            ),
        ) {
            let mut buf = prefix.clone();
            let mut expected = prefix;
            for &n in &values {
                put_varlong(&mut buf, n);
                let mut scratch = [0u8; 10];
                let end = write_varlong(&mut scratch, 0, n).unwrap();
                expected.extend_from_slice(&scratch[..end]);
                // Small values too, which take the one- and two-byte paths.
                let small = (n % 20_000) as i32;
                put_varint(&mut buf, small);
                let end = write_varint(&mut scratch, 0, small).unwrap();
                expected.extend_from_slice(&scratch[..end]);
            }
            prop_assert_eq!(buf, expected);
        }

        #[test]
        fn varlong_round_trip(n: i64) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, n);
            prop_assert_eq!(buf.len(), varlong_len(n));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&buf, &mut pos), Ok(n));
            prop_assert_eq!(pos, buf.len());
        }
    }
}
