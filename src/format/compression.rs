//! The four Kafka codecs, each behind a default-on cargo feature.
//!
//! - gzip: RFC 1952 (what Java's `GZIPOutputStream` writes), default level 6.
//! - snappy: written with xerial framing (`82 'SNAPPY' 00`, version 1, compatible 1, then
//!   blocks of i32 length + raw snappy of at most 32 KiB input), as the Java client does;
//!   read in xerial or raw form (librdkafka writes raw).
//! - lz4: an LZ4 frame with independent 64 KiB blocks and no checksums (header
//!   `04 22 4d 18 60 40 82`), which Kafka's `Lz4BlockInputStream` accepts.
//! - zstd: a standard frame, default level 3, window log at most 27.
//!
//! Every decompressor is capped: output beyond `limit` bytes is an error, never an
//! allocation.

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
use std::io::Read;

use crate::error::{Error, Result};

/// A record batch's compression codec (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (codec id 1).
    Gzip,
    /// snappy (codec id 2).
    Snappy,
    /// lz4 (codec id 3).
    Lz4,
    /// zstd (codec id 4).
    Zstd,
}

impl Compression {
    /// Every codec, `None` first.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id stored in the attributes.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id, or `UnsupportedCodec` for 5..=7.
    pub fn from_id(id: u8) -> Result<Self> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => {
                return Err(Error::UnsupportedCodec {
                    codec: id,
                    reason: "Kafka defines codec ids 0 to 4 only".into(),
                });
            }
        })
    }

    /// Kafka's name: `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether this build can encode and decode the codec (its cargo feature is on).
    pub const fn is_available(self) -> bool {
        match self {
            Compression::None => true,
            Compression::Gzip => cfg!(feature = "gzip"),
            Compression::Snappy => cfg!(feature = "snappy"),
            Compression::Lz4 => cfg!(feature = "lz4"),
            Compression::Zstd => cfg!(feature = "zstd"),
        }
    }

    fn unavailable(self) -> Error {
        Error::UnsupportedCodec {
            codec: self.id(),
            reason: format!(
                "this build of streamlog was compiled without the `{}` feature",
                self.name()
            ),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument {
                name: "compression",
                reason: format!("`{s}` is not one of none, gzip, snappy, lz4, zstd"),
            })
    }
}

/// xerial snappy-java stream header: magic, then version 1 and min-compatible 1.
#[cfg(feature = "snappy")]
const XERIAL_HEADER: [u8; 16] = [
    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
];
#[cfg(feature = "snappy")]
const XERIAL_MAGIC_LEN: usize = 8;
#[cfg(feature = "snappy")]
const XERIAL_BLOCK_INPUT: usize = 32 * 1024;

/// Compresses `input` with `codec`, appending to `out`. `level` is the codec's own scale
/// (gzip 0-9, zstd 1-22; ignored for snappy and lz4); `None` picks Kafka's default.
pub fn compress(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    if !codec.is_available() {
        return Err(codec.unavailable());
    }
    // Only gzip and zstd have levels (unused when neither is built in).
    let _ = level;
    match codec {
        Compression::None => out.extend_from_slice(input),
        #[cfg(feature = "gzip")]
        Compression::Gzip => {
            use std::io::Write;
            let level = level.unwrap_or(6).clamp(0, 9) as u32;
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            enc.write_all(input)
                .map_err(|e| Error::io("gzip-compress a batch", e))?;
            enc.finish()
                .map_err(|e| Error::io("gzip-compress a batch", e))?;
        }
        #[cfg(feature = "snappy")]
        Compression::Snappy => {
            out.extend_from_slice(&XERIAL_HEADER);
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_BLOCK_INPUT) {
                let start = out.len();
                out.extend_from_slice(&[0; 4]);
                let max = snap::raw::max_compress_len(chunk.len());
                out.resize(start + 4 + max, 0);
                let n = enc
                    .compress(chunk, &mut out[start + 4..])
                    .map_err(|e| Error::invalid_batch("records", format!("snappy: {e}")))?;
                out.truncate(start + 4 + n);
                out[start..start + 4].copy_from_slice(&(n as u32).to_be_bytes());
            }
        }
        #[cfg(feature = "lz4")]
        Compression::Lz4 => {
            use std::io::Write;
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            enc.write_all(input)
                .map_err(|e| Error::io("lz4-compress a batch", e))?;
            enc.finish()
                .map_err(|e| Error::invalid_batch("records", format!("lz4: {e}")))?;
        }
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let level = level.unwrap_or(3);
            let mut enc = zstd::stream::Encoder::new(out, level)
                .map_err(|e| Error::io("zstd-compress a batch", e))?;
            enc.include_checksum(false)
                .map_err(|e| Error::io("configure zstd", e))?;
            std::io::Write::write_all(&mut enc, input)
                .map_err(|e| Error::io("zstd-compress a batch", e))?;
            enc.finish()
                .map_err(|e| Error::io("zstd-compress a batch", e))?;
        }
        #[allow(unreachable_patterns)]
        _ => return Err(codec.unavailable()),
    }
    Ok(())
}

fn too_large(limit: usize) -> Error {
    Error::invalid_batch(
        "records",
        format!("decompressed data exceeds the limit of {limit} bytes (max_decompressed_bytes)"),
    )
}

#[cfg(any(
    feature = "gzip",
    feature = "snappy",
    feature = "lz4",
    feature = "zstd"
))]
fn corrupt(codec: Compression, e: impl std::fmt::Display) -> Error {
    Error::invalid_batch("records", format!("{codec} data does not decompress: {e}"))
}

#[cfg(any(feature = "gzip", feature = "lz4", feature = "zstd"))]
fn read_capped(codec: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        // One byte past the limit shows that the data exceeds it; `usize::MAX` is no
        // limit at all (the sum must not wrap to `take(0)`).
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// Decompresses `input`, refusing to produce more than `limit` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    if !codec.is_available() {
        return Err(codec.unavailable());
    }
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(too_large(limit));
            }
            Ok(input.to_vec())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gunzip(input, limit),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy_decompress(input, limit),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => read_capped(codec, lz4_flex::frame::FrameDecoder::new(input), limit),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| corrupt(codec, e))?;
            dec.window_log_max(27).map_err(|e| corrupt(codec, e))?;
            read_capped(codec, dec, limit)
        }
        #[allow(unreachable_patterns)]
        _ => Err(codec.unavailable()),
    }
}

/// gzip as Java's `GZIPInputStream` reads it: every member of a concatenation, while
/// the bytes after a member start with the gzip magic (others are ignored).
#[cfg(feature = "gzip")]
fn gunzip(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    const MAGIC: [u8; 2] = [0x1f, 0x8b];
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let room = limit - out.len();
        (&mut member)
            // One byte past the limit shows that the data exceeds it (see `read_capped`).
            .take((room as u64).saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| corrupt(Compression::Gzip, e))?;
        if out.len() > limit {
            return Err(too_large(limit));
        }
        rest = member.into_inner();
        if !rest.starts_with(&MAGIC) || !gzip_header_whole(rest) {
            return Ok(out);
        }
    }
}

/// Whether `bytes` (after a member, starting with the gzip magic) begin with a header
/// Java's `GZIPInputStream` reads, which otherwise takes them for trailing bytes and
/// ignores them: deflate (8) as the method, every field its flags name present, and the
/// header's CRC, if it has one, right.
#[cfg(feature = "gzip")]
fn gzip_header_whole(bytes: &[u8]) -> bool {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let (Some(&method), Some(&flags)) = (bytes.get(2), bytes.get(3)) else {
        return false;
    };
    // Magic, method, flags, time (4), extra flags, system.
    let mut at = 10;
    if method != 8 || bytes.len() < at {
        return false;
    }
    if flags & FEXTRA != 0 {
        let Some(len) = bytes.get(at..at + 2) else {
            return false;
        };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let Some(end) = bytes.get(at..).and_then(|b| b.iter().position(|&c| c == 0)) else {
                return false;
            };
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        let (Some(head), Some(crc)) = (bytes.get(..at), bytes.get(at..at + 2)) else {
            return false;
        };
        let mut sum = flate2::Crc::new();
        sum.update(head);
        return (sum.sum() & 0xffff) as u16 == u16::from_le_bytes([crc[0], crc[1]]);
    }
    bytes.len() >= at
}

/// Refuses compressed data that [`decompress`] reads but Kafka's readers refuse, for a
/// batch about to be appended: stored, no Kafka reader could read it. What is on disk
/// already is read as it is (an earlier version may have stored such a batch).
///
/// # Errors
/// `InvalidBatch`: for lz4, the frames Kafka's `Lz4BlockInputStream` refuses.
pub fn check_kafka_readable(codec: Compression, input: &[u8]) -> Result<()> {
    match codec {
        #[cfg(feature = "lz4")]
        Compression::Lz4 => check_lz4_header(input).and_then(|()| check_lz4_blocks(input)),
        // Every other codec's data a decoder reads, Kafka's reads too.
        _ => {
            let _ = input;
            Ok(())
        }
    }
}

/// Refuses the LZ4 frames Kafka's `Lz4BlockInputStream` refuses, which lz4_flex would
/// decode: another magic (the legacy format), a version other than 1, dependent
/// (linked) blocks, the reserved or dictionary-id flag bits, a block size outside 4-7.
#[cfg(feature = "lz4")]
fn check_lz4_header(input: &[u8]) -> Result<()> {
    const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    let refuse = |why: String| Err(corrupt(Compression::Lz4, why));
    let (Some(magic), Some(&flg), Some(&bd)) = (input.get(..4), input.get(4), input.get(5)) else {
        return refuse(format!("a frame header of {} bytes", input.len()));
    };
    if magic != MAGIC {
        return refuse(format!("frame magic {magic:02x?} is not 04 22 4d 18"));
    }
    if flg >> 6 != 1 {
        return refuse(format!("frame version {} is not 1", flg >> 6));
    }
    if flg & 0x20 == 0 {
        return refuse("dependent (linked) blocks are unsupported".into());
    }
    if flg & 0x03 != 0 || bd & 0x8f != 0 {
        return refuse(format!(
            "reserved or dictionary-id bits are set (FLG {flg:#04x}, BD {bd:#04x})"
        ));
    }
    if !(4..=7).contains(&(bd >> 4)) {
        return refuse(format!("block size code {} is outside 4-7", bd >> 4));
    }
    Ok(())
}

/// Refuses LZ4 data (whose frame header [`check_lz4_header`] passed) whose first frame
/// is not whole: Kafka's `Lz4BlockInputStream` reads a frame to its end mark and fails
/// at a block size it cannot read, where lz4_flex takes the end of the input for the
/// end of the frame. So a frame without its end mark decoded here and failed in every
/// Kafka reader.
#[cfg(feature = "lz4")]
fn check_lz4_blocks(input: &[u8]) -> Result<()> {
    const CONTENT_SIZE: u8 = 0x08;
    const BLOCK_CHECKSUM: u8 = 0x10;
    const CONTENT_CHECKSUM: u8 = 0x04;
    let refuse = |why: String| Err(corrupt(Compression::Lz4, why));
    let (flg, bd) = (input[4], input[5]);
    let max_block = 1usize << (8 + 2 * usize::from(bd >> 4));
    // Magic, FLG, BD, the content size if flagged, the header checksum.
    let mut at = 7 + if flg & CONTENT_SIZE != 0 { 8 } else { 0 };
    loop {
        let Some(word) = input.get(at..at + 4) else {
            return refuse(format!("the frame ends at byte {at} without its end mark"));
        };
        let word = u32::from_le_bytes(word.try_into().expect("4 bytes"));
        at += 4;
        // (Kafka's reader masks the uncompressed bit before it looks for the end mark.)
        if word & 0x7fff_ffff == 0 {
            break;
        }
        let size = (word & 0x7fff_ffff) as usize;
        if size > max_block {
            return refuse(format!("a block of {size} bytes exceeds {max_block}"));
        }
        at = at.saturating_add(size);
        if flg & BLOCK_CHECKSUM != 0 {
            at = at.saturating_add(4);
        }
    }
    if flg & CONTENT_CHECKSUM != 0 && input.len() < at + 4 {
        return refuse("the frame ends without its content checksum".into());
    }
    // What follows the frame, Kafka's reader (and so the decoder here) leaves unread.
    Ok(())
}

#[cfg(feature = "snappy")]
fn snappy_raw_into(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(Compression::Snappy, e))?;
    if n > limit.saturating_sub(out.len()) {
        return Err(too_large(limit));
    }
    // No snappy element writes more than 64 bytes per 3 it takes: a block claiming more
    // is damaged, and is refused before its claim is allocated (with no limit set,
    // up to 4 GiB).
    if n as u64 * 3 > block.len() as u64 * 64 {
        return Err(corrupt(
            Compression::Snappy,
            format!("a block of {} bytes claims {n} bytes", block.len()),
        ));
    }
    let start = out.len();
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(Compression::Snappy, e))?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(feature = "snappy")]
fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if input.len() < XERIAL_MAGIC_LEN
        || input[..XERIAL_MAGIC_LEN] != XERIAL_HEADER[..XERIAL_MAGIC_LEN]
    {
        snappy_raw_into(input, &mut out, limit)?;
        return Ok(out);
    }
    let mut pos = XERIAL_HEADER.len();
    if input.len() < pos {
        return Err(corrupt(Compression::Snappy, "xerial header is cut short"));
    }
    while pos < input.len() {
        let Some(len_bytes) = input.get(pos..pos + 4) else {
            return Err(corrupt(
                Compression::Snappy,
                "xerial block length is cut short",
            ));
        };
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        pos += 4;
        let Some(block) = input.get(pos..).and_then(|rest| rest.get(..len)) else {
            return Err(corrupt(
                Compression::Snappy,
                format!("xerial block of {len} bytes runs past the end"),
            ));
        };
        snappy_raw_into(block, &mut out, limit)?;
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    /// `data` compressed with `codec` at its default level.
    fn compressed(codec: Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(codec, None, data, &mut out).unwrap();
        out
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for codec in Compression::ALL {
            let out = compressed(codec, &data);
            assert_eq!(
                decompress(codec, &out, data.len()).unwrap(),
                data,
                "{codec}"
            );
            if codec != Compression::None {
                assert!(out.len() < data.len(), "{codec} did not compress");
            }
        }
    }

    /// `usize::MAX` (a valid `max_decompressed_bytes`) means no limit: it overflowed
    /// (a panic in debug builds, an empty result in release builds).
    #[test]
    fn the_largest_limit_is_no_limit() {
        let data = sample();
        for codec in Compression::ALL {
            let out = compressed(codec, &data);
            assert_eq!(
                decompress(codec, &out, usize::MAX).unwrap(),
                data,
                "{codec}"
            );
        }
    }

    #[test]
    fn decompression_is_capped() {
        let data = sample();
        for codec in Compression::ALL {
            let out = compressed(codec, &data);
            let err = decompress(codec, &out, data.len() - 1).unwrap_err();
            assert!(
                err.to_string().contains("exceeds the limit"),
                "{codec}: {err}"
            );
        }
    }

    #[test]
    fn lz4_frame_header_is_what_kafka_writes() {
        let mut out = Vec::new();
        compress(Compression::Lz4, None, b"hello hello hello", &mut out).unwrap();
        assert_eq!(&out[..7], &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
        assert_eq!(
            &out[out.len() - 4..],
            &[0, 0, 0, 0],
            "end mark, no content checksum"
        );
    }

    /// From a review: lz4_flex decodes frames Kafka's reader refuses (linked blocks,
    /// as liblz4 and the `lz4` crate write by default; the legacy magic); accepted,
    /// they were stored where no Kafka reader could read them.
    #[test]
    fn lz4_frames_kafka_refuses_are_refused() {
        use lz4_flex::frame::{BlockMode, FrameEncoder, FrameInfo};
        use std::io::Write;
        let data = sample();
        let mut enc = FrameEncoder::with_frame_info(
            FrameInfo::new().block_mode(BlockMode::Linked),
            Vec::new(),
        );
        enc.write_all(&data).unwrap();
        let linked = enc.finish().unwrap();
        assert_eq!(linked[4] & 0x20, 0, "a linked frame");
        let err = check_kafka_readable(Compression::Lz4, &linked).unwrap_err();
        assert!(err.to_string().contains("dependent"), "{err}");
        // Read as it is if stored already (an earlier version accepted it).
        assert_eq!(
            decompress(Compression::Lz4, &linked, usize::MAX).unwrap(),
            data
        );
        let ours = compressed(Compression::Lz4, &data);
        for (at, byte, why) in [
            (0, 0x02, "magic"),
            (4, 0xa0, "version"),
            (4, 0x61, "reserved or dictionary-id"),
            (5, 0x48, "reserved or dictionary-id"),
            (5, 0x30, "block size"),
        ] {
            let mut bad = ours.clone();
            bad[at] = byte;
            let err = check_kafka_readable(Compression::Lz4, &bad).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
        for short in [&ours[..0], &ours[..5]] {
            assert!(check_kafka_readable(Compression::Lz4, short).is_err());
        }
        check_kafka_readable(Compression::Lz4, &ours).unwrap();
        // Content size, block and content checksums: Kafka's reader takes them.
        let mut enc = FrameEncoder::with_frame_info(
            FrameInfo::new()
                .block_mode(BlockMode::Independent)
                .block_checksums(true)
                .content_checksum(true)
                .content_size(Some(data.len() as u64)),
            Vec::new(),
        );
        enc.write_all(&data).unwrap();
        check_kafka_readable(Compression::Lz4, &enc.finish().unwrap()).unwrap();
    }

    /// From a review: only the frame header was checked, while lz4_flex takes the end
    /// of the input for the end of a frame. A frame without its end mark decoded here
    /// and failed in every Kafka reader (`Lz4BlockInputStream` reads to the end mark).
    #[test]
    fn lz4_data_that_is_not_one_whole_frame_is_refused() {
        let data = sample();
        let ours = compressed(Compression::Lz4, &data);
        assert_eq!(
            ours[ours.len() - 4..],
            [0, 0, 0, 0],
            "ends with its end mark"
        );
        let unfinished = &ours[..ours.len() - 4];
        let read = decompress(Compression::Lz4, unfinished, usize::MAX).unwrap();
        assert!(read == data, "lz4_flex reads it");
        let err = check_kafka_readable(Compression::Lz4, unfinished).unwrap_err();
        assert!(err.to_string().contains("end mark"), "{err}");
        let mut huge = ours.clone();
        huge[7..11].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        assert!(check_kafka_readable(Compression::Lz4, &huge).is_err());
    }

    /// From a review: only the first gzip member was read, where Java's
    /// `GZIPInputStream` reads every member of a concatenation.
    #[test]
    fn gzip_reads_every_member() {
        let data = sample();
        let (a, b) = data.split_at(1000);
        let mut two = compressed(Compression::Gzip, a);
        two.extend(compressed(Compression::Gzip, b));
        assert_eq!(
            decompress(Compression::Gzip, &two, usize::MAX).unwrap(),
            data
        );
        let err = decompress(Compression::Gzip, &two, data.len() - 1).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // Bytes after a member that are not another one are ignored, as Java does.
        let mut padded = compressed(Compression::Gzip, &data);
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(
            decompress(Compression::Gzip, &padded, usize::MAX).unwrap(),
            data
        );
        // So are bytes that start with the gzip magic but not a header Java reads (it
        // takes those for trailing bytes too): another method, a header cut short, a
        // wrong header CRC.
        for tail in [
            &[0x1f, 0x8b, 0x00][..],
            &[0x1f, 0x8b, 8, 0, 0, 0][..],
            &[
                0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 0xff, b'n', b'o', b' ', b'e', b'n', b'd',
            ][..],
            &[0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 0xff, 0x12, 0x34][..],
        ] {
            let mut padded = compressed(Compression::Gzip, &data);
            padded.extend_from_slice(tail);
            assert_eq!(
                decompress(Compression::Gzip, &padded, usize::MAX).unwrap(),
                data,
                "{tail:?}"
            );
        }
        // A damaged second member is an error.
        let mut damaged = two.clone();
        let at = damaged.len() - 10;
        damaged[at] ^= 0xff;
        assert!(decompress(Compression::Gzip, &damaged, usize::MAX).is_err());
    }

    #[test]
    fn snappy_writes_xerial_and_reads_raw() {
        let data = sample();
        let mut out = Vec::new();
        compress(Compression::Snappy, None, &data, &mut out).unwrap();
        assert_eq!(&out[..16], &XERIAL_HEADER);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, data.len()).unwrap(),
            data
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in Compression::ALL.into_iter().skip(1) {
            for garbage in [
                &b""[..],
                b"\x00",
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff",
                &[0xff; 64],
            ] {
                let _ = decompress(codec, garbage, 1 << 20);
            }
        }
        assert!(decompress(Compression::Gzip, b"not gzip", 100).is_err());
        // A raw snappy block claiming 4 GiB - 1, with no limit: refused, not allocated.
        let claim = b"\xff\xff\xff\xff\x0f\x00";
        let err = decompress(Compression::Snappy, claim, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("claims 4294967295 bytes"), "{err}");
    }

    /// The densest snappy data (long runs of one byte) still decompresses: the bound
    /// on what a block may claim leaves room for it.
    #[test]
    fn the_densest_snappy_blocks_decompress() {
        let zeros = vec![0u8; 1 << 20];
        let out = compressed(Compression::Snappy, &zeros);
        assert!(out.len() * 20 < zeros.len(), "{} bytes", out.len());
        assert_eq!(
            decompress(Compression::Snappy, &out, usize::MAX).unwrap(),
            zeros
        );
        let mut raw = vec![0u8; snap::raw::max_compress_len(zeros.len())];
        let n = snap::raw::Encoder::new()
            .compress(&zeros, &mut raw)
            .unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw[..n], usize::MAX).unwrap(),
            zeros
        );
    }

    #[test]
    fn names_parse() {
        for codec in Compression::ALL {
            assert_eq!(codec.name().parse::<Compression>().unwrap(), codec);
            assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
        }
        assert!("brotli".parse::<Compression>().is_err());
        assert!(matches!(
            Compression::from_id(5),
            Err(Error::UnsupportedCodec { codec: 5, .. })
        ));
    }
}
