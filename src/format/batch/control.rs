//! Control records: the transaction markers (COMMIT, ABORT) a control batch holds,
//! decoded and encoded.

use super::{BatchBuilder, be_i16, be_i32};
use crate::error::{Error, Result};
use crate::format::record::Record;

/// Kafka's control record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Type 0: a transaction was aborted.
    Abort,
    /// Type 1: a transaction was committed.
    Commit,
    /// Any other type (2-6 are KRaft's); carried as read.
    Other(i16),
}

impl ControlRecordType {
    fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(n) => n,
        }
    }
}

/// A decoded control record (transaction marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// COMMIT, ABORT or another type.
    pub kind: ControlRecordType,
    /// For COMMIT/ABORT: the transaction coordinator's epoch; `None` for other types.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    pub(super) fn parse(record: &Record) -> Result<ControlRecord> {
        let key = record
            .key
            .as_deref()
            .filter(|k| k.len() >= 4)
            .ok_or_else(|| {
                Error::invalid_batch(
                    "key",
                    "a control record key needs version and type (4 bytes)",
                )
            })?;
        // A later version is read as version 0, as Kafka's `ControlRecordType.parse`
        // reads it (the fields of version 0 come first); a negative one is damage.
        let version = be_i16(key, 0);
        if version < 0 {
            return Err(Error::invalid_batch(
                "key",
                format!("control key version {version} is negative"),
            ));
        }
        let kind = match be_i16(key, 2) {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            n => ControlRecordType::Other(n),
        };
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let v = record.value.as_deref().filter(|v| v.len() >= 6).ok_or_else(|| {
                    Error::invalid_batch(
                        "value",
                        "an end-transaction marker needs version and coordinator epoch (6 bytes)",
                    )
                })?;
                let version = be_i16(v, 0);
                if version < 0 {
                    return Err(Error::invalid_batch(
                        "value",
                        format!("end-transaction marker version {version} is negative"),
                    ));
                }
                Some(be_i32(v, 2))
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(ControlRecord {
            kind,
            coordinator_epoch,
        })
    }
}

/// Encodes an end-transaction marker batch (COMMIT or ABORT) as Kafka's
/// `MemoryRecords.writeEndTransactionalMarker` does: one record, no compression,
/// CreateTime, base sequence -1, attributes 0x30.
///
/// # Errors
/// `InvalidArgument` if `kind` is not COMMIT or ABORT.
pub fn control_batch(
    kind: ControlRecordType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Vec<u8>> {
    if !matches!(kind, ControlRecordType::Abort | ControlRecordType::Commit) {
        return Err(Error::InvalidArgument {
            name: "kind",
            reason: "only COMMIT and ABORT markers are written".into(),
        });
    }
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = BatchBuilder::new()
        .producer(producer_id, producer_epoch, -1)
        .transactional(true);
    b.control = true;
    b.push(timestamp, Some(&key), Some(&value), &[])?;
    b.finish()
}
