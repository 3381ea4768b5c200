//! Zero-copy decoding: a validated batch held as [`Bytes`], its records section
//! (decompressed once if needed), and iteration over back-to-back batches.

use bytes::Bytes;

use super::{
    BatchHeader, ControlRecord, RECORD_BATCH_OVERHEAD, RECORDS_OFFSET, RecordIter, TimestampType,
    peek_size, validate,
};
use crate::error::{Error, Result};
use crate::format::compression::{self, Compression};

/// Largest decompressed records section [`DecodeOptions::default`] accepts: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Limits applied while decoding records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The largest decompressed records section accepted; a batch that would inflate past
    /// it is rejected before the memory is allocated. Default = 64 MiB.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// A validated record batch (size, magic and CRC checked) held as zero-copy [`Bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    bytes: Bytes,
    header: BatchHeader,
}

impl Batch {
    /// Validates `bytes` as exactly one batch (see [`validate`]).
    ///
    /// # Errors
    /// `InvalidBatch` naming the first field that is wrong.
    pub fn parse(bytes: Bytes) -> Result<Batch> {
        let header = validate(&bytes)?;
        Ok(Batch { bytes, header })
    }

    /// The parsed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes as stored.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// First offset of the batch.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Last offset of the batch.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Decodes the records with [`DecodeOptions::default`].
    ///
    /// # Errors
    /// `UnsupportedCodec` if the codec is compiled out; `InvalidBatch` if the compressed
    /// data does not inflate within the limit. Record-level errors come from the iterator.
    pub fn records(&self) -> Result<RecordIter> {
        self.records_with(&DecodeOptions::default())
    }

    /// Decodes the records, decompressing once if the batch is compressed. For an
    /// uncompressed batch keys and values are slices of [`Batch::bytes`].
    ///
    /// # Errors
    /// As [`Batch::records`].
    pub fn records_with(&self, options: &DecodeOptions) -> Result<RecordIter> {
        let data = self.records_data(options)?;
        let log_append_time = match self.header.timestamp_type() {
            TimestampType::LogAppendTime => Some(self.header.max_timestamp),
            TimestampType::CreateTime => None,
        };
        Ok(RecordIter {
            data,
            pos: 0,
            remaining: self.header.records_count,
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time,
            failed: false,
            last_offset_delta: self.header.last_offset_delta,
            prev_delta: -1,
        })
    }

    /// The records section: a slice of the batch, or its decompressed copy.
    pub(crate) fn records_data(&self, options: &DecodeOptions) -> Result<Bytes> {
        Ok(match self.header.compression()? {
            Compression::None => self.bytes.slice(RECORDS_OFFSET..),
            codec => Bytes::from(compression::decompress(
                codec,
                &self.bytes[RECORDS_OFFSET..],
                options.max_decompressed_bytes,
            )?),
        })
    }

    /// For a control batch, its marker; `None` for an ordinary batch.
    ///
    /// # Errors
    /// `InvalidBatch` if the control record is malformed.
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.header.is_control() {
            return Ok(None);
        }
        let mut records = self.records()?;
        let record = records.next().ok_or_else(|| {
            Error::invalid_batch("recordsCount", "a control batch holds no record")
        })??;
        ControlRecord::parse(&record).map(Some)
    }
}

/// Iterates back-to-back batches in `buf` (a `.log` file or a slice of one), validating
/// each. Stops after the first error.
pub fn batches(buf: Bytes) -> BatchIter {
    BatchIter {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`batches`]; yields `(position, batch)`.
#[derive(Debug)]
pub struct BatchIter {
    buf: Bytes,
    pos: usize,
    failed: bool,
}

impl Iterator for BatchIter {
    type Item = Result<(usize, Batch)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let size = match peek_size(rest) {
            Some((_, size))
                if size >= RECORD_BATCH_OVERHEAD as i64 && size as u64 <= rest.len() as u64 =>
            {
                size as usize
            }
            Some((_, size)) if size < RECORD_BATCH_OVERHEAD as i64 => {
                self.failed = true;
                return Some(Err(Error::invalid_batch(
                    "batchLength",
                    format!(
                        "batch at position {} declares {size} bytes, below the 61-byte minimum",
                        self.pos
                    ),
                )));
            }
            _ => {
                self.failed = true;
                return Some(Err(Error::invalid_batch(
                    "batchLength",
                    format!(
                        "batch at position {} runs past the end of the data ({} bytes left)",
                        self.pos,
                        rest.len()
                    ),
                )));
            }
        };
        let pos = self.pos;
        match Batch::parse(self.buf.slice(pos..pos + size)) {
            Ok(b) => {
                self.pos += size;
                Some(Ok((pos, b)))
            }
            Err(Error::InvalidBatch { field, reason }) => {
                self.failed = true;
                Some(Err(Error::invalid_batch(
                    field,
                    format!("batch at position {pos}: {reason}"),
                )))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
