//! The 61-byte batch header: its parsed fields and attribute flags, the checks every
//! whole batch must pass, and the CRC.

use super::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, BASE_SEQUENCE_OFFSET, BASE_TIMESTAMP_OFFSET,
    BATCH_LENGTH_OFFSET, COMPRESSION_MASK, CONTROL_BIT, CRC_OFFSET, DELETE_HORIZON_BIT,
    LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET,
    RECORD_BATCH_OVERHEAD, RECORDS_COUNT_OFFSET, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT, be_i16,
    be_i32, be_i64,
};
use crate::error::{Error, Result};
use crate::format::compression::Compression;

/// How a batch's timestamps are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Each record carries the producer's timestamp.
    #[default]
    CreateTime,
    /// Every record reads as the batch's `maxTimestamp`, set by the log at append.
    LogAppendTime,
}

/// The 61-byte header of a v2 batch, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are Kafka's, documented in the module table
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header fields from the first 61 bytes of `buf`; checks nothing else.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        if buf.len() < RECORD_BATCH_OVERHEAD {
            return Err(Error::invalid_batch(
                "batchLength",
                format!("{} bytes is less than the 61-byte batch header", buf.len()),
            ));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Bytes the whole batch occupies (`batchLength + 12`), if the length is sane.
    pub fn size(&self) -> Option<usize> {
        usize::try_from(self.batch_length)
            .ok()?
            .checked_add(LOG_OVERHEAD)
    }

    /// `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The codec, or `UnsupportedCodec` for ids 5-7.
    pub fn compression(&self) -> Result<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Attributes bit 5: the batch holds one control record (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Attributes bit 6: `baseTimestamp` is the cleaner's delete horizon.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
}

/// Reads `baseOffset` and the total batch size from the first 12 bytes of `buf`, without
/// validating anything else. `None` if fewer than 12 bytes are given.
pub fn peek_size(buf: &[u8]) -> Option<(i64, i64)> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some((
        be_i64(buf, BASE_OFFSET_OFFSET),
        i64::from(be_i32(buf, BATCH_LENGTH_OFFSET)) + LOG_OVERHEAD as i64,
    ))
}

/// CRC-32C of the bytes the batch CRC covers (`[21, end)`; empty if `batch` is shorter).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
}

/// Checks a whole batch (exactly one, `buf.len()` bytes): size, batchLength, magic and
/// CRC, in that order, then the header fields every batch must satisfy. Returns the
/// parsed header.
pub fn validate(buf: &[u8]) -> Result<BatchHeader> {
    let header = BatchHeader::parse(buf)?;
    header.check_frame(buf.len())?;
    header.check_crc(compute_crc(buf))?;
    header.check_fields()?;
    Ok(header)
}

/// The checks of [`validate`], one step each, for a reader that does not hold the
/// whole batch (such as a dump streaming a batch too large to buffer): first
/// [`check_frame`](Self::check_frame), then [`check_crc`](Self::check_crc) with the
/// CRC-32C of the bytes from `attributes` on, then [`check_fields`](Self::check_fields).
impl BatchHeader {
    /// Checks that the batch is `len` bytes, as `batchLength` declares, and is magic 2.
    ///
    /// # Errors
    /// `InvalidBatch` naming `batchLength` or `magic`.
    pub fn check_frame(&self, len: usize) -> Result<()> {
        if self.size() != Some(len) {
            return Err(Error::invalid_batch(
                "batchLength",
                format!(
                    "declares {} bytes after the length field, but {} are present",
                    self.batch_length,
                    len.saturating_sub(LOG_OVERHEAD)
                ),
            ));
        }
        if self.magic != MAGIC_V2 {
            return Err(Error::invalid_batch(
                "magic",
                format!("{} is not supported; only magic 2 is", self.magic),
            ));
        }
        Ok(())
    }

    /// Checks the stored CRC against `computed`, the CRC-32C of the batch's bytes from
    /// `attributes` to its end (what [`compute_crc`] returns for the whole batch).
    ///
    /// # Errors
    /// `InvalidBatch` naming `crc`.
    pub fn check_crc(&self, computed: u32) -> Result<()> {
        if computed != self.crc {
            return Err(Error::invalid_batch(
                "crc",
                format!("stored {:#010x}, computed {computed:#010x}", self.crc),
            ));
        }
        Ok(())
    }

    /// Checks the header fields every batch must satisfy: counts not negative, no
    /// reserved attribute bits.
    ///
    /// # Errors
    /// `InvalidBatch` naming `recordsCount`, `lastOffsetDelta` or `attributes`.
    pub fn check_fields(&self) -> Result<()> {
        if self.records_count < 0 {
            return Err(Error::invalid_batch(
                "recordsCount",
                format!("{} is negative", self.records_count),
            ));
        }
        if self.last_offset_delta < 0 {
            return Err(Error::invalid_batch(
                "lastOffsetDelta",
                format!("{} is negative", self.last_offset_delta),
            ));
        }
        if self.attributes as u16 & 0xff80 != 0 {
            return Err(Error::invalid_batch(
                "attributes",
                format!("reserved bits set in {:#06x}", self.attributes),
            ));
        }
        Ok(())
    }
}

/// Recomputes and stores the CRC of a whole batch (after patching covered fields).
///
/// # Panics
/// Never for a `batch` of at least 61 bytes; callers check that first.
pub(crate) fn write_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the base sequence of a whole batch and its CRC (a producer renumbering a
/// batch after an earlier batch of its partition failed). Does nothing to a slice
/// shorter than a batch header.
pub(crate) fn set_base_sequence(batch: &mut [u8], base_sequence: i32) {
    if batch.len() < RECORD_BATCH_OVERHEAD {
        return;
    }
    batch[BASE_SEQUENCE_OFFSET..RECORDS_COUNT_OFFSET].copy_from_slice(&base_sequence.to_be_bytes());
    write_crc(batch);
}

/// `seq + n` in Kafka's sequence space, which wraps from `i32::MAX` to 0 (`n` may be
/// negative, to step back).
pub(crate) fn add_sequence(seq: i32, n: i64) -> i32 {
    let space = i64::from(i32::MAX) + 1;
    (i64::from(seq) + n).rem_euclid(space) as i32
}
