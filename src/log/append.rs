//! Appending batches: validation, offset assignment, and rolling to a new segment.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::producer_state::Verdict;
use super::segment::{Segment, file_name};
use super::transactions::Marker;
use super::{Log, OffsetEntry, Writer};
use crate::error::{Error, Result};
use crate::format::batch::{self, BatchHeader};
use crate::format::{EncodedBatch, TimestampType};

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The batch's max timestamp (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Number of records.
    pub record_count: i32,
    /// Base offset of the segment it was written to.
    pub segment_base: i64,
    /// Byte position in that segment.
    pub position: u64,
}

impl Log {
    /// Appends one client batch: validates it, assigns offsets from the log end offset
    /// (patching baseOffset and the partition leader epoch, and under LogAppendTime the
    /// timestamp and CRC), writes it to the active segment (rolling first if needed) and
    /// publishes the new end offset. The batch buffer is modified in place. On a
    /// CreateTime log, as Kafka's broker does, a header maxTimestamp other than the
    /// records' highest timestamp is set to it (and the CRC written again): time lookups
    /// and retention trust it.
    ///
    /// Durability: in the OS page cache on return; call [`flush`](Self::flush) to make it
    /// survive power loss.
    ///
    /// A batch of an idempotent producer (a producer id and a base sequence) that the log
    /// remembers appending (one of that producer's last five batches, same epoch and
    /// sequences) is not appended again: the call returns where the original went.
    /// The log remembers producers in memory, and writes them as Kafka's `.snapshot`
    /// files at each roll and at close. An open loads the newest usable snapshot (which,
    /// as Kafka's, holds each producer's last batch only) and scans the batches after it;
    /// a producer it does not know is accepted at any sequence. A duplicate's
    /// `segment_base` and `position` are where it was appended (compaction may have moved
    /// it since; -1 if it is no longer found).
    ///
    /// A transactional batch opens its producer's transaction (see
    /// [`append_marker`](Self::append_marker)).
    ///
    /// # Errors
    /// `InvalidBatch` if the batch is malformed (bad CRC, a control batch,
    /// `lastOffsetDelta + 1 != recordsCount`, offset deltas not 0..n, a producer id
    /// without a sequence, a transactional batch without a producer id, undecodable
    /// records); `InvalidArgument` for a record timestamp below -1, or on a CreateTime
    /// log one outside `timestamp_before_max_ms` / `timestamp_after_max_ms` of its clock;
    /// `OutOfOrderSequence` if its base
    /// sequence does not follow the producer's last batch (or is not 0 for a new epoch);
    /// `InvalidProducerEpoch` for an epoch older than the producer's; `InvalidTxnState`
    /// for a batch without the transactional attribute from a producer whose
    /// transaction is open; `RecordTooLarge` past `max_message_bytes`; `Io` if the write
    /// failed (the log stays usable); `Poisoned` after an earlier fsync failure;
    /// `Closed`.
    pub fn append(&self, batch: &mut [u8]) -> Result<AppendInfo> {
        self.append_inner(batch, false, None)
    }

    /// Appends a batch made by [`BatchBuilder::build`](crate::format::BatchBuilder::build),
    /// which is well formed by construction: as [`append`](Self::append), without decoding
    /// its records again.
    ///
    /// # Errors
    /// As [`append`](Self::append); also `RecordTooLarge` for a compressed batch whose
    /// records decompress to more than this log's
    /// [`max_decompressed_bytes`](crate::format::DecodeOptions::max_decompressed_bytes)
    /// (no reader of this log could decompress it).
    pub fn append_encoded(&self, batch: &mut EncodedBatch) -> Result<AppendInfo> {
        self.append_built(batch, true)
    }

    /// [`append_encoded`](Self::append_encoded) of records copied from a log that
    /// accepted them already (a mirror of a Kafka topic): the timestamp bounds are not
    /// applied again, as Kafka's replicas do not apply them.
    pub(crate) fn append_encoded_copied(&self, batch: &mut EncodedBatch) -> Result<AppendInfo> {
        self.append_built(batch, false)
    }

    fn append_built(&self, batch: &mut EncodedBatch, bounded: bool) -> Result<AppendInfo> {
        self.check_writable()?;
        batch::check_timestamp(batch.min_timestamp())?;
        if bounded {
            self.check_timestamp_bounds(batch.oldest_timestamp(), batch.max_timestamp())?;
        }
        let limit = self.config.decode.max_decompressed_bytes;
        if let Some(size) = batch.decompressed_len().filter(|&n| n > limit) {
            return Err(Error::RecordTooLarge {
                size: size as u64,
                limit: limit as u64,
                limit_name: "max_decompressed_bytes",
            });
        }
        self.append_inner(batch.bytes_mut(), true, None)
    }

    /// Appends a client batch, or with `marker` the control batch of that marker.
    pub(super) fn append_inner(
        &self,
        batch: &mut [u8],
        built: bool,
        marker: Option<Marker>,
    ) -> Result<AppendInfo> {
        self.check_writable()?;
        let max_message_bytes = self.live.max_message_bytes();
        // Not a marker (78 bytes): a limit below it would leave every transaction that
        // wrote here unable to end.
        if marker.is_none() && batch.len() as u64 > max_message_bytes {
            return Err(Error::RecordTooLarge {
                size: batch.len() as u64,
                limit: max_message_bytes,
                limit_name: "max_message_bytes",
            });
        }
        let header = if built {
            BatchHeader::parse(batch)?
        } else {
            self.validate_client_batch(batch)?
        };
        if marker.is_none() {
            check_producer_fields(&header)?;
        }
        self.touch()?;
        let mut w = self.writer.lock();
        self.check_writable()?;
        if let Some(m) = &marker {
            w.producers
                .check_marker(m.producer_id, m.producer_epoch, m.coordinator_epoch)?;
        }
        if let Verdict::Duplicate(original) = w.producers.check(&header)? {
            // Sent before (a retry): appended once, answered with where it went.
            let mut appended = original.appended;
            if !original.located
                && let Some((segment_base, position)) = self.locate_batch(appended.base_offset)
            {
                appended.segment_base = segment_base;
                appended.position = position;
            }
            return Ok(appended);
        }
        let base_offset = self.next_offset.load(Ordering::Acquire);
        let delta = i64::from(header.last_offset_delta);
        let last_offset = base_offset
            .checked_add(delta)
            .filter(|&last| last < i64::MAX)
            .ok_or_else(|| Error::InvalidArgument {
                name: "batch",
                reason: "the partition's offsets would pass i64::MAX".into(),
            })?;
        let now = self.config.clock.now_ms();
        let mut max_timestamp = header.max_timestamp;
        batch[batch::BASE_OFFSET_OFFSET..batch::BATCH_LENGTH_OFFSET]
            .copy_from_slice(&base_offset.to_be_bytes());
        batch[batch::PARTITION_LEADER_EPOCH_OFFSET..batch::MAGIC_OFFSET]
            .copy_from_slice(&self.epoch.load(Ordering::Acquire).to_be_bytes());
        if self.config.timestamp_type == TimestampType::LogAppendTime {
            max_timestamp = now;
            let attrs = header.attributes | 0x08;
            batch[batch::ATTRIBUTES_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET]
                .copy_from_slice(&attrs.to_be_bytes());
            batch[batch::MAX_TIMESTAMP_OFFSET..batch::PRODUCER_ID_OFFSET]
                .copy_from_slice(&now.to_be_bytes());
            batch::write_crc(batch);
        }
        if self.should_roll(&w, batch.len() as u64, max_timestamp, last_offset, now) {
            self.roll_locked(&mut w, base_offset)?;
        }
        let seg = w.active.clone();
        let position = seg.size();
        if let Err(e) = seg.log.write_all_at(batch, position) {
            // Drop whatever part was written so the file ends at the published size.
            if let Err(e2) = seg.log.set_len(position) {
                self.poison_with(format!(
                    "could not undo a failed write to {}: {e2}",
                    seg.log_path.display()
                ));
            }
            return Err(Error::io(
                format!("write {} at position {position}", seg.log_path.display()),
                e,
            ));
        }
        if max_timestamp > seg.max_timestamp.load(Ordering::Acquire) {
            seg.max_timestamp.store(max_timestamp, Ordering::Release);
            seg.offset_of_max_timestamp
                .store(last_offset, Ordering::Release);
        }
        if w.bytes_since_index > self.config.index_interval_bytes {
            let rel = (last_offset - seg.base) as u32;
            // Index writes failing is not fatal: the index is a verified hint that
            // recovery rebuilds. The entry is only kept if it reached the file.
            if !seg.offset_index.is_full()
                && let Err(e) = seg.offset_index.append(OffsetEntry {
                    relative_offset: rel,
                    position: position as u32,
                })
            {
                tracing::warn!(
                    "{}: index entry not written: {e}",
                    seg.offset_index.path().display()
                );
            }
            seg.maybe_append_time_entry();
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += batch.len() as u64;
        if w.first_batch_timestamp.is_none() {
            w.first_batch_timestamp = Some(max_timestamp);
        }
        seg.size
            .store(position + batch.len() as u64, Ordering::Release);
        let appended = AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            record_count: header.records_count,
            segment_base: seg.base,
            position,
        };
        match marker {
            Some(m) => self.record_marker(&mut w, &seg, m, base_offset, max_timestamp),
            None => w.producers.record(&header, appended),
        }
        // A transaction this batch opened bounds the last stable offset before the end
        // offset passes it (readers load the end offset first).
        self.publish_first_unstable(&w);
        self.next_offset.store(last_offset + 1, Ordering::Release);
        w.messages_since_flush += u64::from(header.records_count as u32);
        let flush_now = w.messages_since_flush >= self.live.flush_messages();
        drop(w);
        if flush_now && let Err(e) = self.flush() {
            // The batch is appended and visible, so this call reports success; the failed
            // fsync has poisoned the log and every later write reports it.
            tracing::error!(
                "{}: flush after flush_messages records failed: {e}",
                self.dir.display()
            );
        }
        Ok(appended)
    }

    /// Checks a client's batch, records included. On a CreateTime log its header then
    /// says CreateTime with the records' highest timestamp (rewriting the CRC if that
    /// changes anything), as Kafka's `LogValidator` sets them: time lookups and
    /// retention trust the header. (Under LogAppendTime the append sets both.)
    fn validate_client_batch(&self, batch: &mut [u8]) -> Result<BatchHeader> {
        let mut h = batch::validate(batch)?;
        if h.is_control() {
            return Err(Error::invalid_batch(
                "attributes",
                "control batches cannot be appended by clients",
            ));
        }
        if h.records_count == 0 || i64::from(h.last_offset_delta) + 1 != i64::from(h.records_count)
        {
            return Err(Error::invalid_batch(
                "lastOffsetDelta",
                format!(
                    "lastOffsetDelta {} + 1 must equal recordsCount {} (> 0)",
                    h.last_offset_delta, h.records_count
                ),
            ));
        }
        // Only the cleaner sets a delete horizon: one a client sent (a batch copied from
        // a cleaned Kafka segment, or forged) would let the first pass drop its
        // tombstones at once. Cleared; the records' timestamps do not change (they are
        // deltas from `baseTimestamp` either way).
        if h.has_delete_horizon() {
            h.attributes &= !batch::DELETE_HORIZON_BIT;
            batch[batch::ATTRIBUTES_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET]
                .copy_from_slice(&h.attributes.to_be_bytes());
            batch::write_crc(batch);
        }
        // Stored, it must be readable by Kafka too (lz4 frames Kafka refuses).
        crate::format::compression::check_kafka_readable(
            h.compression()?,
            &batch[batch::RECORDS_OFFSET..],
        )?;
        // Every record must be well formed, with offset deltas 0..n.
        let scan = batch::scan_records(batch, &h, &self.config.decode)?;
        batch::check_timestamp(scan.min_timestamp)?;
        self.check_timestamp_bounds(scan.oldest_timestamp, scan.max_timestamp)?;
        // (A buffer appended before to a LogAppendTime log, and retried, says
        // LogAppendTime.)
        let create_time = h.attributes & !0x08;
        if self.config.timestamp_type == TimestampType::CreateTime
            && (h.max_timestamp != scan.max_timestamp || h.attributes != create_time)
        {
            batch[batch::ATTRIBUTES_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET]
                .copy_from_slice(&create_time.to_be_bytes());
            batch[batch::MAX_TIMESTAMP_OFFSET..batch::PRODUCER_ID_OFFSET]
                .copy_from_slice(&scan.max_timestamp.to_be_bytes());
            batch::write_crc(batch);
            h.attributes = create_time;
            h.max_timestamp = scan.max_timestamp;
        }
        Ok(h)
    }

    /// On a CreateTime log, refuses records timestamped further from the log's clock
    /// than `message.timestamp.before/after.max.ms` allow (see
    /// [`LogConfig::timestamp_after_max_ms`](super::LogConfig::timestamp_after_max_ms)).
    pub(crate) fn check_timestamp_bounds(&self, oldest: i64, newest: i64) -> Result<()> {
        if self.config.timestamp_type != TimestampType::CreateTime {
            return Ok(());
        }
        self.live
            .check_timestamps(oldest, newest, self.config.clock.now_ms())
    }

    fn should_roll(&self, w: &Writer, len: u64, max_ts: i64, last_offset: i64, now: i64) -> bool {
        let seg = &w.active;
        let size = seg.size();
        if size == 0 {
            return false;
        }
        let waited = match w.first_batch_timestamp {
            Some(first) if first >= 0 && max_ts >= 0 => max_ts.saturating_sub(first),
            _ => now.saturating_sub(w.created_ms),
        };
        size + len > self.live.segment_bytes()
            || waited > self.live.segment_ms()
            || seg.offset_index.is_full()
            || seg.time_index.is_full()
            || last_offset - seg.base > i64::from(i32::MAX)
    }

    /// Closes the active segment (final time-index entry, indexes trimmed) and starts a
    /// new one at `new_base`. The sealed segment is synced by the next flush.
    pub(super) fn roll_locked(&self, w: &mut Writer, new_base: i64) -> Result<()> {
        let created = Segment::open(
            self.fs.as_ref(),
            &self.dir,
            new_base,
            self.config.segment_index_bytes,
            true,
        )
        .and_then(|s| {
            s.offset_index.preallocate()?;
            s.time_index.preallocate()?;
            Ok(s)
        });
        let new = match created {
            Ok(s) => s,
            Err(e) => {
                // Leave no stray files behind: a later roll at a higher offset would
                // otherwise find an empty segment in the middle of the log.
                for suffix in ["log", "index", "timeindex"] {
                    let p = self.dir.join(file_name(new_base, suffix));
                    if self.fs.exists(&p).unwrap_or(true) && self.fs.remove_file(&p).is_err() {
                        tracing::warn!("{}: could not remove after a failed roll", p.display());
                    }
                }
                return Err(Error::io(
                    format!(
                        "create segment {} in {}",
                        file_name(new_base, "log"),
                        self.dir.display()
                    ),
                    e,
                ));
            }
        };
        let old = w.active.clone();
        self.seal(&old);
        let new = Arc::new(new);
        {
            let mut segs = self.segments.write();
            let mut list: Vec<Arc<Segment>> = segs.as_ref().clone();
            list.push(new.clone());
            *segs = Arc::new(list);
        }
        w.unflushed.push(old);
        w.dir_dirty = true;
        w.active = new;
        // What the producers had appended before `new_base`, for rebuilding their state
        // after a crash from here rather than from the start. Written again and synced by
        // the next flush, before the recovery point passes it: a rebuild that finds no
        // snapshot at the base of a segment concludes no producer had written then.
        if !w.producers.is_empty() {
            let bytes = w.producers.encode_snapshot();
            if let Err(e) = self.write_snapshot_bytes(new_base, &bytes, false) {
                tracing::warn!(
                    "{}: {e}; written again by the next flush",
                    self.dir.display()
                );
            }
            w.pending_snapshots.push((new_base, bytes));
        }
        w.bytes_since_index = 0;
        w.first_batch_timestamp = None;
        w.created_ms = self.config.clock.now_ms();
        Ok(())
    }

    /// Final time-index entry and trimmed index files. Failures only cost a rebuild at
    /// the next recovery, so they are logged, not returned.
    pub(super) fn seal(&self, seg: &Segment) {
        seg.time_index.cancel_preallocation();
        seg.maybe_append_time_entry();
        let max_ts = seg.max_timestamp.load(Ordering::Acquire);
        if max_ts >= 0 && seg.time_index.last().is_none_or(|e| e.timestamp != max_ts) {
            // The final entry did not reach the file: empty the time index so the next
            // open rebuilds it instead of trusting a stale maximum.
            if let Err(e) = seg.time_index.replace(Vec::new(), false) {
                tracing::warn!(
                    "{}: could not reset after a failed write: {e}",
                    seg.time_index.path().display()
                );
            }
        }
        for r in [seg.offset_index.trim(), seg.time_index.trim()] {
            if let Err(e) = r {
                tracing::warn!("segment {}: index not trimmed: {e}", seg.log_path.display());
            }
        }
        seg.sealed.store(true, Ordering::Release);
    }

    /// Rolls to a new segment now, if the active one holds data.
    ///
    /// # Errors
    /// `Io` if the new segment's files cannot be created; `Poisoned`; `Closed`.
    pub fn roll(&self) -> Result<()> {
        self.check_writable()?;
        let mut w = self.writer.lock();
        if w.active.size() == 0 {
            return Ok(());
        }
        self.touch()?;
        let base = self.next_offset.load(Ordering::Acquire);
        self.roll_locked(&mut w, base)
    }
}

/// The producer fields of a data batch: a producer id needs a sequence (as Kafka's
/// broker checks), and a transactional batch a producer id (no marker could end its
/// transaction otherwise).
fn check_producer_fields(h: &BatchHeader) -> Result<()> {
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(Error::invalid_batch(
            "baseSequence",
            "a producer id needs a base sequence >= 0",
        ));
    }
    if h.is_transactional() && h.producer_id < 0 {
        return Err(Error::invalid_batch(
            "producerId",
            "a transactional batch needs a producer id >= 0",
        ));
    }
    Ok(())
}
