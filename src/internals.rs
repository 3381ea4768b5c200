//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`). Enabled by the `internals` feature; not a stable API.
//!
//! - [`fuzz_decode_batch`]: arbitrary bytes through [`Batch::parse`], the record iterator,
//!   [`validate_records`](crate::format::batch::validate_records), the control-record
//!   decoder and [`batches`].
//! - [`fuzz_recover_log`]: arbitrary bytes decoded into a partition directory on a fresh
//!   [`SimFs`], opened with [`Log::open_with_fs`], read, appended to, crashed, closed and
//!   reopened, checking invariants I1-I5 of `TESTING.md` along the way.
//!
//! Both panic only when an invariant is violated; every other outcome is an `Ok` or a
//! typed [`Error`].
//!
//! # Directory image encoding
//!
//! [`fuzz_recover_log`] reads its input as a sequence of entries until the input ends
//! (a truncated entry uses zeros / what is left). Each entry starts with a kind byte
//! (taken modulo [`KIND_COUNT`]); a *base* is one byte (`0..=0xFC` literal,
//! [`BASE_LAST`], [`BASE_NEXT`] or [`BASE_WIDE`] followed by a `u32` LE) and a *chunk* is
//! a `u16` LE length followed by that many bytes (fewer if the input ends). Segment file
//! names are `<base:020>.<suffix>`.
//!
//! | kind | parameters | effect |
//! |---|---|---|
//! | [`KIND_LOG`] | base, chunk | appends the chunk to `<base>.log` |
//! | [`KIND_INDEX`] | base, chunk | replaces `<base>.index` |
//! | [`KIND_TIME_INDEX`] | base, chunk | replaces `<base>.timeindex` |
//! | [`KIND_RECOVERY_POINT`] | chunk | replaces `recovery-point-offset-checkpoint` |
//! | [`KIND_DURABLE`] | chunk | replaces `streamlog.durable` |
//! | [`KIND_CLEAN_MARKER`] | chunk | replaces `.kafka_cleanshutdown` |
//! | [`KIND_LEADER_EPOCH`] | chunk | replaces `leader-epoch-checkpoint` |
//! | [`KIND_STRAY`] | selector, base, chunk | a leftover file: `.deleted`, `.cleaned`, `.tmp`, `.swap`, ... |
//! | [`KIND_BATCH`] | base, flags, timestamp, chunk | appends a valid batch built by [`BatchBuilder`] to `<base>.log`, at the offset where that file's valid batches end; flags: bits 0-2 codec, bits 3-5 records - 1, bit 6 decreasing timestamps, bit 7 idempotent producer; timestamp 0 = none (-1), else `1.7e12 + 1000 * t`; the chunk is split into the values |
//! | [`KIND_FORGED_BATCH`] | base, chunk | appends the chunk (zero-padded to 61 bytes) as a batch with baseOffset, batchLength, magic, leader epoch 0 and CRC made valid |
//! | [`KIND_DURABLE_AT`] | base, adjust, skew | writes a valid `streamlog.durable` slot (the next of two, with a CRC) naming `<base>.log` at its size minus `adjust` (`adjust` < 128) or plus `adjust - 128`, the offset where its valid batches before that position end plus `skew` (an `i8`), and the first segment as the log start |
//! | [`KIND_RECOVERY_POINT_AT`] | base | writes a well-formed recovery point checkpoint at offset `base` |
//! | [`KIND_TRUNCATE_LOG`] | base, u16 LE | cuts that many bytes off the end of `<base>.log` |
//!
//! [`ImageWriter`] builds such inputs (the seed corpus generator uses it).
//!
//! # Test hooks
//!
//! States of the library's own threads that a test must see before it acts, so that it
//! orders two events without sleeping: [`sleeping_readers`] (a blocked `poll` or
//! `wait_for`), [`linger_thread_waits_for_a_deadline`] (a producer's linger thread).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::batch::{
    self, ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2,
    PARTITION_LEADER_EPOCH_OFFSET, RECORD_BATCH_OVERHEAD,
};
use crate::format::{
    Batch, BatchBuilder, Compression, DecodeOptions, Header, Record, TimestampType, batches,
};
use crate::fs::{CrashImage, FileSystem, SimFs};
use crate::log::{Log, LogConfig, ManualClock};
use crate::{Producer, Store};

/// The decompression cap the fuzz targets decode with: 1 MiB.
pub const FUZZ_MAX_DECOMPRESSED_BYTES: usize = 1 << 20;

/// The partition directory [`fuzz_recover_log`] builds and opens.
pub const FUZZ_DIR: &str = "/fuzz/t-0";

/// The time [`fuzz_config`]'s clock reads (and the base of generated timestamps).
pub const FUZZ_CLOCK_MS: i64 = 1_700_000_000_000;

/// Bytes per `Log::read` while reading a whole log: small, so reads cross segments often.
const READ_BUDGET: usize = 700;

fn fuzz_options() -> DecodeOptions {
    DecodeOptions {
        max_decompressed_bytes: FUZZ_MAX_DECOMPRESSED_BYTES,
    }
}

/// The log configuration of [`fuzz_recover_log`]: 1 KiB segments, an index entry every
/// 64 bytes, 240-byte indexes (20 offset entries, 20 time entries), and a clock that
/// never moves, so a run depends on its input only.
pub fn fuzz_config() -> LogConfig {
    LogConfig::default()
        .segment_bytes(1024)
        .index_interval_bytes(64)
        .segment_index_bytes(240)
        .clock(Arc::new(ManualClock::new(FUZZ_CLOCK_MS)))
}

// ------------------------------------------------------------------------------------
// decode_batch
// ------------------------------------------------------------------------------------

/// Fuzz entry point for the batch decoder. Feeds `data` to [`Batch::parse`] and, if it
/// parses, checks that the stored CRC-32C really covers bytes 21.. and the length is the
/// input's, decodes every record (1 MiB decompression cap), compares the record iterator
/// with `validate_records` and calls `control_record`; then iterates [`batches`] over
/// the whole input.
///
/// # Panics
/// Only if an invariant of the decoder is violated.
pub fn fuzz_decode_batch(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    match Batch::parse(bytes.clone()) {
        Ok(batch) => check_batch(&batch, data),
        Err(e) => assert!(
            matches!(e, Error::InvalidBatch { .. }),
            "Batch::parse failed with {e:?}, not InvalidBatch"
        ),
    }
    let mut expected_pos = 0;
    let mut failed = false;
    for item in batches(bytes) {
        assert!(!failed, "batches() yielded an item after an error");
        match item {
            Ok((pos, batch)) => {
                assert_eq!(pos, expected_pos, "batches() skipped or re-read bytes");
                let raw = data
                    .get(pos..pos + batch.size())
                    .expect("batches() yielded a batch past the end of its input");
                assert_eq!(&batch.bytes()[..], raw, "batch bytes differ from the input");
                check_batch(&batch, raw);
                expected_pos += batch.size();
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::InvalidBatch { .. }),
                    "batches() failed with {e:?}, not InvalidBatch"
                );
                failed = true;
            }
        }
    }
    if !failed {
        assert_eq!(
            expected_pos,
            data.len(),
            "batches() ended early without an error"
        );
    }
}

/// What decoding the records of one batch gave.
struct Decoded {
    /// The records yielded before the iterator stopped.
    records: Vec<Record>,
    /// The error that stopped it, or that `records_with` returned.
    error: Option<Error>,
}

/// Decodes every record of `batch`, checking the iterator's contract: it stops after its
/// first error and never yields more than `recordsCount` records.
fn decode(batch: &Batch, options: &DecodeOptions) -> Decoded {
    let declared = batch.header().records_count;
    let mut iter = match batch.records_with(options) {
        Ok(iter) => iter,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::InvalidBatch { .. } | Error::UnsupportedCodec { .. }
                ),
                "records_with failed with {e:?}"
            );
            return Decoded {
                records: Vec::new(),
                error: Some(e),
            };
        }
    };
    let mut records = Vec::new();
    let mut error = None;
    for item in iter.by_ref() {
        match item {
            Ok(r) => {
                records.push(r);
                assert!(
                    records.len() as u64 <= declared as u64,
                    "the iterator yielded more than the {declared} declared records"
                );
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    match &error {
        Some(e) => {
            assert!(
                matches!(e, Error::InvalidBatch { .. }),
                "a record failed with {e:?}, not InvalidBatch"
            );
            assert!(
                iter.next().is_none(),
                "the record iterator went on after an error"
            );
        }
        None => assert_eq!(
            records.len() as u64,
            declared as u64,
            "the iterator ended cleanly after fewer records than declared"
        ),
    }
    Decoded { records, error }
}

fn check_batch(batch: &Batch, raw: &[u8]) {
    let h = batch.header();
    assert_eq!(
        h.size(),
        Some(raw.len()),
        "accepted a batch whose length field does not match its size"
    );
    assert_eq!(h.magic, MAGIC_V2, "accepted magic {}", h.magic);
    let crc = crc32c::crc32c(&raw[ATTRIBUTES_OFFSET..]);
    assert_eq!(
        crc, h.crc,
        "accepted a batch whose stored CRC {:#010x} is not the CRC-32C {crc:#010x} of its bytes",
        h.crc
    );
    assert!(
        h.records_count >= 0 && h.last_offset_delta >= 0,
        "accepted negative counts"
    );

    let options = fuzz_options();
    let decoded = decode(batch, &options);
    if h.timestamp_type() == TimestampType::LogAppendTime {
        for r in &decoded.records {
            assert_eq!(
                r.timestamp, h.max_timestamp,
                "LogAppendTime record not stamped"
            );
        }
    }
    // The validator and the iterator share one record parser; they must agree. The
    // validator also requires offset deltas 0, 1, 2, ...
    let sequential = decoded.error.is_none()
        && decoded
            .records
            .iter()
            .zip(0i64..)
            .all(|(r, i)| r.offset == h.base_offset.wrapping_add(i));
    match batch::validate_records(raw, h, &options) {
        Ok(n) => {
            assert!(
                decoded.error.is_none(),
                "validate_records accepted a batch whose records fail to decode: {:?}",
                decoded.error
            );
            assert_eq!(n, decoded.records.len(), "validate_records miscounted");
            assert!(
                sequential,
                "validate_records accepted non-sequential offsets"
            );
        }
        Err(e) => assert!(
            !sequential,
            "validate_records rejected records the iterator decodes in sequence: {e}"
        ),
    }

    match batch.control_record() {
        Ok(Some(_)) => assert!(h.is_control(), "a control record in an ordinary batch"),
        Ok(None) => assert!(!h.is_control(), "a control batch without its record"),
        Err(e) => assert!(
            h.is_control(),
            "control_record failed on an ordinary batch: {e}"
        ),
    }
}

// ------------------------------------------------------------------------------------
// recover_log: the image encoding
// ------------------------------------------------------------------------------------

/// Entry kind: append a chunk to `<base>.log`.
pub const KIND_LOG: u8 = 0;
/// Entry kind: replace `<base>.index`.
pub const KIND_INDEX: u8 = 1;
/// Entry kind: replace `<base>.timeindex`.
pub const KIND_TIME_INDEX: u8 = 2;
/// Entry kind: replace `recovery-point-offset-checkpoint`.
pub const KIND_RECOVERY_POINT: u8 = 3;
/// Entry kind: replace `streamlog.durable`.
pub const KIND_DURABLE: u8 = 4;
/// Entry kind: replace `.kafka_cleanshutdown`.
pub const KIND_CLEAN_MARKER: u8 = 5;
/// Entry kind: replace `leader-epoch-checkpoint`.
pub const KIND_LEADER_EPOCH: u8 = 6;
/// Entry kind: a leftover file (selector picks the name, see [`STRAY_NAMES`]).
pub const KIND_STRAY: u8 = 7;
/// Entry kind: append a valid batch built by [`BatchBuilder`].
pub const KIND_BATCH: u8 = 8;
/// Entry kind: append arbitrary bytes made into a CRC-valid batch.
pub const KIND_FORGED_BATCH: u8 = 9;
/// Entry kind: write a valid durable-position slot.
pub const KIND_DURABLE_AT: u8 = 10;
/// Entry kind: write a well-formed recovery point checkpoint.
pub const KIND_RECOVERY_POINT_AT: u8 = 11;
/// Entry kind: cut bytes off the end of a `.log` file.
pub const KIND_TRUNCATE_LOG: u8 = 12;
/// Number of entry kinds; kind bytes are taken modulo this.
pub const KIND_COUNT: u8 = 13;

/// Base byte: the base offset of the highest segment so far (0 if none).
pub const BASE_LAST: u8 = 0xFF;
/// Base byte: where the valid batches of the highest segment end (a new segment there).
pub const BASE_NEXT: u8 = 0xFE;
/// Base byte: a `u32` LE base offset follows.
pub const BASE_WIDE: u8 = 0xFD;

/// Names of [`KIND_STRAY`] files, `{}` standing for the 20-digit base; the selector byte
/// is taken modulo the length.
pub const STRAY_NAMES: [&str; 8] = [
    "{}.log.deleted",
    "{}.index.deleted",
    "{}.log.cleaned",
    "{}.log.tmp",
    "{}.log.swap",
    "{}.snapshot",
    "recovery-point-offset-checkpoint.tmp",
    ".kafka_cleanshutdown.tmp",
];

const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const DURABLE_FILE: &str = "streamlog.durable";
const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// The durable-position slot, as `log/checkpoint.rs` writes it: magic, seq, segment base,
/// position, next offset, log start (big-endian), CRC-32C of those 44 bytes, zero padding.
/// That module is private, so [`durable_slot_offsets`] checks this encoding against a
/// file the log wrote.
const DURABLE_SLOT: usize = 64;
const DURABLE_MAGIC: &[u8; 4] = b"SLDP";

fn encode_durable_slot(seq: u64, base: i64, position: u64, next: i64, start: i64) -> Vec<u8> {
    let mut slot = Vec::with_capacity(DURABLE_SLOT);
    slot.extend_from_slice(DURABLE_MAGIC);
    slot.extend_from_slice(&seq.to_be_bytes());
    slot.extend_from_slice(&base.to_be_bytes());
    slot.extend_from_slice(&position.to_be_bytes());
    slot.extend_from_slice(&next.to_be_bytes());
    slot.extend_from_slice(&start.to_be_bytes());
    let crc = crc32c::crc32c(&slot);
    slot.extend_from_slice(&crc.to_be_bytes());
    slot.resize(DURABLE_SLOT, 0);
    slot
}

/// Where the log writes the slots of even and odd sequence numbers, learned once from a
/// scratch log (open, append, flush: the flush writes sequence 2), which also checks
/// [`encode_durable_slot`] against the log's own encoding.
///
/// # Panics
/// If the log's durable file no longer matches this module's idea of it.
fn durable_slot_offsets() -> [usize; 2] {
    static OFFSETS: OnceLock<[usize; 2]> = OnceLock::new();
    *OFFSETS.get_or_init(|| {
        let fs = SimFs::new();
        let log = open(&fs).expect("a scratch log opens on SimFs");
        let mut b = BatchBuilder::new();
        b.push(FUZZ_CLOCK_MS, None, Some(b"x"), &[])
            .expect("a one-record batch");
        let mut batch = b.finish().expect("an uncompressed batch");
        log.append(&mut batch).expect("append to a scratch log");
        log.flush().expect("flush a scratch log");
        let data = fs
            .read_file(&Path::new(FUZZ_DIR).join(DURABLE_FILE))
            .expect("the log writes streamlog.durable");
        let want = encode_durable_slot(2, 0, batch.len() as u64, 1, 0);
        let even = data
            .chunks(DURABLE_SLOT)
            .position(|c| c == want.as_slice())
            .map(|i| i * DURABLE_SLOT)
            .expect("internals' durable slot encoding no longer matches log/checkpoint.rs");
        let odd = if even == 0 {
            data.len() - DURABLE_SLOT
        } else {
            0
        };
        [even, odd]
    })
}

fn segment_file(base: i64, suffix: &str) -> String {
    format!("{base:020}.{suffix}")
}

/// Reads the fuzz input front to back; missing bytes read as zeros / empty.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let head = self.take(2);
        b[..head.len()].copy_from_slice(head);
        u16::from_le_bytes(b)
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let head = self.take(4);
        b[..head.len()].copy_from_slice(head);
        u32::from_le_bytes(b)
    }

    fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16();
        self.take(usize::from(n))
    }
}

/// Builds the directory image on a fresh `SimFs`.
struct ImageBuilder {
    fs: SimFs,
    dir: PathBuf,
    /// Base offsets of the `.log` files created so far.
    segments: BTreeSet<i64>,
    durable_seq: u64,
}

impl ImageBuilder {
    fn new() -> Self {
        let fs = SimFs::new();
        let dir = PathBuf::from(FUZZ_DIR);
        fs.create_dir_all(&dir)
            .expect("SimFs creates directories without faults");
        ImageBuilder {
            fs,
            dir,
            segments: BTreeSet::new(),
            durable_seq: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn log_path(&self, base: i64) -> PathBuf {
        self.path(&segment_file(base, "log"))
    }

    fn log_bytes(&self, base: i64) -> Vec<u8> {
        self.fs.read_file(&self.log_path(base)).unwrap_or_default()
    }

    /// One past the last offset of the valid batches at the start of `<base>.log`.
    fn valid_end(&self, base: i64, len: Option<usize>) -> i64 {
        let mut data = self.log_bytes(base);
        if let Some(len) = len {
            data.truncate(len);
        }
        batches(Bytes::from(data))
            .map_while(Result::ok)
            .last()
            .map_or(base, |(_, b)| b.last_offset().saturating_add(1))
    }

    fn base(&self, input: &mut Input<'_>) -> i64 {
        match input.byte().unwrap_or(0) {
            BASE_LAST => self.segments.last().copied().unwrap_or(0),
            BASE_NEXT => self.segments.last().map_or(0, |&b| self.valid_end(b, None)),
            BASE_WIDE => i64::from(input.u32()),
            b => i64::from(b),
        }
    }

    fn append_log(&mut self, base: i64, bytes: &[u8]) {
        let mut data = self.log_bytes(base);
        data.extend_from_slice(bytes);
        self.fs.write_file(&self.log_path(base), data);
        self.segments.insert(base);
    }

    fn replace(&self, name: &str, bytes: &[u8]) {
        self.fs.write_file(&self.path(name), bytes.to_vec());
    }

    fn entry(&mut self, kind: u8, input: &mut Input<'_>) {
        match kind % KIND_COUNT {
            KIND_LOG => {
                let base = self.base(input);
                let chunk = input.chunk();
                self.append_log(base, chunk);
            }
            KIND_INDEX | KIND_TIME_INDEX => {
                let base = self.base(input);
                let suffix = if kind % KIND_COUNT == KIND_INDEX {
                    "index"
                } else {
                    "timeindex"
                };
                self.replace(&segment_file(base, suffix), input.chunk());
            }
            KIND_RECOVERY_POINT => self.replace(RECOVERY_POINT_FILE, input.chunk()),
            KIND_DURABLE => self.replace(DURABLE_FILE, input.chunk()),
            KIND_CLEAN_MARKER => self.replace(CLEAN_SHUTDOWN_FILE, input.chunk()),
            KIND_LEADER_EPOCH => self.replace(LEADER_EPOCH_FILE, input.chunk()),
            KIND_STRAY => {
                let selector = usize::from(input.byte().unwrap_or(0));
                let base = self.base(input);
                let name =
                    STRAY_NAMES[selector % STRAY_NAMES.len()].replace("{}", &format!("{base:020}"));
                self.replace(&name, input.chunk());
            }
            KIND_BATCH => {
                let base = self.base(input);
                let flags = input.byte().unwrap_or(0);
                let t = input.byte().unwrap_or(0);
                let chunk = input.chunk();
                self.valid_batch(base, flags, t, chunk);
            }
            KIND_FORGED_BATCH => {
                let base = self.base(input);
                let chunk = input.chunk();
                self.forged_batch(base, chunk);
            }
            KIND_DURABLE_AT => {
                let base = self.base(input);
                let adjust = input.byte().unwrap_or(0);
                let skew = input.byte().unwrap_or(0) as i8;
                self.durable_at(base, adjust, skew);
            }
            KIND_RECOVERY_POINT_AT => {
                let offset = self.base(input);
                let text = format!("0\n1\nt 0 {offset}\n");
                self.replace(RECOVERY_POINT_FILE, text.as_bytes());
            }
            _ => {
                // KIND_TRUNCATE_LOG
                let base = self.base(input);
                let cut = usize::from(input.u16());
                let mut data = self.log_bytes(base);
                data.truncate(data.len().saturating_sub(cut));
                self.fs.write_file(&self.log_path(base), data);
                self.segments.insert(base);
            }
        }
    }

    fn valid_batch(&mut self, base: i64, flags: u8, t: u8, chunk: &[u8]) {
        let codec = Compression::ALL[usize::from(flags & 7) % Compression::ALL.len()];
        let n = 1 + usize::from((flags >> 3) & 7);
        let decreasing = flags & 0x40 != 0;
        let offset = self.valid_end(base, None);
        let mut b = BatchBuilder::new().compression(codec);
        if flags & 0x80 != 0 {
            b = b.producer(1000, 0, (offset & 0x3fff_ffff) as i32);
        }
        for i in 0..n {
            let ts = if t == 0 {
                -1
            } else {
                let step = 7 * i as i64;
                FUZZ_CLOCK_MS + 1000 * i64::from(t) + if decreasing { -step } else { step }
            };
            let value = &chunk[i * chunk.len() / n..(i + 1) * chunk.len() / n];
            let key = [i as u8];
            let headers = if i == 0 {
                vec![Header::new("fz", vec![flags])]
            } else {
                Vec::new()
            };
            let key = (i % 2 == 0).then_some(&key[..]);
            if b.push(ts, key, Some(value), &headers).is_err() {
                return;
            }
        }
        let Ok(mut bytes) = b.finish() else {
            return; // the codec is compiled out
        };
        bytes[..BATCH_LENGTH_OFFSET].copy_from_slice(&offset.to_be_bytes());
        self.append_log(base, &bytes);
    }

    fn forged_batch(&mut self, base: i64, chunk: &[u8]) {
        let mut bytes = chunk.to_vec();
        if bytes.len() < RECORD_BATCH_OVERHEAD {
            bytes.resize(RECORD_BATCH_OVERHEAD, 0);
        }
        let offset = self.valid_end(base, None);
        let length = (bytes.len() - LOG_OVERHEAD) as i32;
        bytes[..BATCH_LENGTH_OFFSET].copy_from_slice(&offset.to_be_bytes());
        bytes[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET]
            .copy_from_slice(&length.to_be_bytes());
        bytes[PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET].copy_from_slice(&0i32.to_be_bytes());
        bytes[MAGIC_OFFSET] = MAGIC_V2 as u8;
        let crc = batch::compute_crc(&bytes);
        bytes[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        self.append_log(base, &bytes);
    }

    fn durable_at(&mut self, base: i64, adjust: u8, skew: i8) {
        let log_start = self.segments.first().copied().unwrap_or(0);
        let size = self.log_bytes(base).len() as u64;
        let position = if adjust < 0x80 {
            size.saturating_sub(u64::from(adjust))
        } else {
            size + u64::from(adjust - 0x80)
        };
        let next_offset = self
            .valid_end(base, usize::try_from(position).ok())
            .saturating_add(i64::from(skew));
        self.durable_seq += 1;
        let seq = self.durable_seq;
        let slot = encode_durable_slot(seq, base, position, next_offset, log_start);
        let path = self.path(DURABLE_FILE);
        let mut data = self.fs.read_file(&path).unwrap_or_default();
        let at = durable_slot_offsets()[(seq % 2) as usize];
        if data.len() < at + DURABLE_SLOT {
            data.resize(at + DURABLE_SLOT, 0);
        }
        data[at..at + DURABLE_SLOT].copy_from_slice(&slot);
        self.fs.write_file(&path, data);
    }
}

/// Decodes a fuzz input into a partition directory ([`FUZZ_DIR`]) on a fresh `SimFs`.
/// Every file it writes is durable.
pub fn decode_image(data: &[u8]) -> SimFs {
    let mut builder = ImageBuilder::new();
    let mut input = Input { data };
    while let Some(kind) = input.byte() {
        builder.entry(kind, &mut input);
    }
    builder.fs
}

/// Builds inputs for [`fuzz_recover_log`] (see the module docs for the encoding).
#[derive(Debug, Clone, Default)]
pub struct ImageWriter {
    bytes: Vec<u8>,
}

impl ImageWriter {
    /// An empty image (an empty directory).
    pub fn new() -> Self {
        Self::default()
    }

    /// The base parameter for a literal base offset (wide above `0xFC`).
    ///
    /// # Panics
    /// If `base` does not fit in a `u32`.
    pub fn base(base: i64) -> Vec<u8> {
        match u8::try_from(base) {
            Ok(b) if b < BASE_WIDE => vec![b],
            _ => {
                let wide = u32::try_from(base).expect("image base offsets fit in a u32");
                let mut v = vec![BASE_WIDE];
                v.extend_from_slice(&wide.to_le_bytes());
                v
            }
        }
    }

    /// Appends one entry: `kind`, its parameter bytes, then (if given) the chunk's `u16` LE
    /// length and bytes.
    ///
    /// # Panics
    /// If the chunk is longer than 65,535 bytes.
    pub fn entry(&mut self, kind: u8, params: &[u8], chunk: Option<&[u8]>) -> &mut Self {
        self.bytes.push(kind);
        self.bytes.extend_from_slice(params);
        if let Some(chunk) = chunk {
            let len = u16::try_from(chunk.len()).expect("an image chunk is at most 65,535 bytes");
            self.bytes.extend_from_slice(&len.to_le_bytes());
            self.bytes.extend_from_slice(chunk);
        }
        self
    }

    /// Appends entries that recreate every file of `dir` on `fs` that the encoding can
    /// express (segments, indexes, checkpoints); other files are skipped.
    pub fn directory(&mut self, fs: &SimFs, dir: &Path) -> &mut Self {
        for (path, _) in fs.files(dir) {
            let (Some(name), Some(data)) = (
                path.file_name().and_then(|n| n.to_str()),
                fs.read_file(&path),
            ) else {
                continue;
            };
            let seg = |suffix: &str| {
                name.strip_suffix(suffix)
                    .and_then(|s| s.strip_suffix('.'))
                    .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<i64>().ok())
            };
            if let Some(base) = seg("log") {
                for piece in data.chunks(usize::from(u16::MAX)) {
                    self.entry(KIND_LOG, &Self::base(base), Some(piece));
                }
                if data.is_empty() {
                    self.entry(KIND_LOG, &Self::base(base), Some(&[]));
                }
            } else if let Some(base) = seg("index") {
                self.entry(KIND_INDEX, &Self::base(base), Some(&data));
            } else if let Some(base) = seg("timeindex") {
                self.entry(KIND_TIME_INDEX, &Self::base(base), Some(&data));
            } else {
                let kind = match name {
                    RECOVERY_POINT_FILE => KIND_RECOVERY_POINT,
                    DURABLE_FILE => KIND_DURABLE,
                    CLEAN_SHUTDOWN_FILE => KIND_CLEAN_MARKER,
                    LEADER_EPOCH_FILE => KIND_LEADER_EPOCH,
                    _ => continue,
                };
                self.entry(kind, &[], Some(&data));
            }
        }
        self
    }

    /// The encoded image.
    pub fn finish(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

// ------------------------------------------------------------------------------------
// recover_log: the checks
// ------------------------------------------------------------------------------------

/// Everything a log holds, read batch by batch from its start to its end.
#[derive(Debug, PartialEq)]
struct Contents {
    start: i64,
    end: i64,
    batches: Vec<Batch>,
    /// The records of each batch.
    records: Vec<Vec<Record>>,
}

impl Contents {
    /// Kafka's `offsetsForTimes` by a full scan: the first record at or after `ts` in a
    /// batch whose maxTimestamp is at least `ts`.
    fn first_at_or_after(&self, ts: i64) -> Option<(i64, i64)> {
        self.batches
            .iter()
            .zip(&self.records)
            .filter(|(b, _)| b.header().max_timestamp >= ts)
            .flat_map(|(_, rs)| rs)
            .find(|r| r.timestamp >= ts && r.offset >= self.start)
            .map(|r| (r.offset, r.timestamp))
    }

    fn timestamp_targets(&self) -> Vec<i64> {
        let mut ts: Vec<i64> = self.records.iter().flatten().map(|r| r.timestamp).collect();
        ts.sort_unstable();
        let mut targets = vec![i64::MIN, -1, 0, FUZZ_CLOCK_MS];
        if let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) {
            targets.extend([lo, ts[ts.len() / 2], hi, hi.saturating_add(1)]);
        }
        targets
    }
}

/// Reads the whole log. Batches must be contiguous from the log start to the log end
/// (asserted); a read or decode error is returned (it must be a typed error).
fn read_contents(log: &Log) -> Result<Contents> {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(start <= end, "log start {start} is past the log end {end}");
    let options = fuzz_options();
    let mut contents = Contents {
        start,
        end,
        batches: Vec::new(),
        records: Vec::new(),
    };
    let mut next = start;
    while next < end {
        let batches = log.read(next, READ_BUDGET)?;
        assert!(
            !batches.is_empty(),
            "read({next}) returned nothing below the log end {end}"
        );
        for b in batches {
            assert_eq!(
                b.base_offset(),
                next,
                "batches are not contiguous: {}..={} where offset {next} was due",
                b.base_offset(),
                b.last_offset()
            );
            assert!(
                b.last_offset() < end,
                "batch {next}..={} passes the log end {end}",
                b.last_offset()
            );
            let decoded = decode(&b, &options);
            if let Some(e) = decoded.error {
                return Err(e);
            }
            next = b.last_offset() + 1;
            contents.batches.push(b);
            contents.records.push(decoded.records);
        }
    }
    Ok(contents)
}

/// Offset-for-timestamp lookups agree with a full scan (I4); returns the answers.
fn check_timestamps(log: &Log, contents: &Contents) -> Vec<Option<(i64, i64)>> {
    contents
        .timestamp_targets()
        .into_iter()
        .map(|ts| {
            let got = log.offset_for_timestamp(ts).unwrap_or_else(|e| {
                panic!("offset_for_timestamp({ts}) failed on a readable log: {e}")
            });
            let want = contents.first_at_or_after(ts);
            assert_eq!(
                got, want,
                "I4: offset_for_timestamp({ts}) = {got:?}, a scan says {want:?}"
            );
            got
        })
        .collect()
}

fn open(fs: &SimFs) -> Result<Log> {
    Log::open_with_fs(Arc::new(fs.clone()), FUZZ_DIR, fuzz_config())
}

/// Every file of the partition directory, with its contents.
fn dir_files(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
    fs.files(Path::new(FUZZ_DIR))
        .into_iter()
        .filter_map(|(p, _)| fs.read_file(&p).map(|data| (p, data)))
        .collect()
}

/// Fuzz entry point for opening and recovering a partition directory: decodes `data`
/// into a directory image (see the module docs) and opens it on `SimFs`.
///
/// If opening fails, the error must be `Corruption` (on a fault-free `SimFs` nothing
/// else can go wrong), the directory must be byte-for-byte unchanged (no file changed,
/// created or removed), and opening again must fail the same way (I5). If it succeeds:
/// every batch from the log start to the log end is read (contiguous offsets),
/// timestamp lookups must agree with a scan, one batch is appended and flushed and must
/// read back; a power cut right then must recover the same log; after a clean close the
/// log must reopen cleanly with the same end offset and contents. Only if that first
/// read found damage (flushed data an open need not check, DESIGN.md 5) may the later
/// opens fail instead, with `Corruption` in the bytes of the image.
///
/// # Panics
/// Only if one of those invariants is violated.
pub fn fuzz_recover_log(data: &[u8]) {
    let fs = decode_image(data);
    let before = dir_files(&fs);
    let log = match open(&fs) {
        Ok(log) => log,
        Err(e) => {
            assert!(
                e.is_corruption(),
                "open of a directory image failed with {e:?}, not Corruption"
            );
            assert!(
                dir_files(&fs) == before,
                "I5: open failed with `{e}` but changed, created or removed files"
            );
            match open(&fs) {
                Ok(_) => panic!("I5: open failed with `{e}`, then succeeded on the same image"),
                Err(e2) => assert!(
                    e2.is_corruption(),
                    "I5: open failed with `{e}`, then with {e2:?}"
                ),
            }
            return;
        }
    };
    exercise(&fs, log, data.len(), &before);
}

/// Whether `e` reports damage to bytes the image held before the log was opened: a
/// `Corruption` naming a file of `image` at a position inside its original contents.
fn is_damage_in(e: &Error, image: &[(PathBuf, Vec<u8>)]) -> bool {
    match e {
        Error::Corruption { path, position, .. } => image
            .iter()
            .any(|(p, data)| p == path && *position < data.len() as u64),
        _ => false,
    }
}

/// The log recovered from a power cut right after a flush holds what the flushed log
/// held (I1, I5).
fn check_power_cut(crashed: Log, bounds: (i64, i64), flushed: &Result<Contents>) {
    assert_eq!(
        (crashed.log_start_offset(), crashed.log_end_offset()),
        bounds,
        "I1: a power cut after a flush lost or invented offsets"
    );
    if let Ok(c1) = flushed {
        let c2 = read_contents(&crashed).unwrap_or_else(|e| {
            panic!("I1: after a power cut the flushed log cannot be read: {e}")
        });
        assert_eq!(&c2, c1, "I1/I5: a power cut after a flush changed the log");
    }
    crashed
        .close()
        .unwrap_or_else(|e| panic!("close of the recovered image failed: {e}"));
}

fn exercise(fs: &SimFs, log: Log, salt: usize, image: &[(PathBuf, Vec<u8>)]) {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let initial = read_contents(&log);
    // Flushed data the open did not have to check can be damaged: a clean open scans
    // nothing and trusts the segments below the recovery point (DESIGN.md 5), so the
    // damage shows at the first read. Once a power cut makes recovery scan such a
    // segment, or an index found damaged at a reopen makes it rebuild one, that open
    // reports the same damage. That is loud corruption (I6), not a recovery that
    // differs (I5): such an open may fail, with `Corruption` in the image's own bytes.
    // A log whose every batch read back fine gets no such allowance.
    let damaged = matches!(&initial, Err(e) if e.is_corruption());
    let names_old_damage = |e: &Error| damaged && is_damage_in(e, image);
    if let Ok(c) = &initial {
        check_timestamps(&log, c);
    }

    // Append one batch and flush it: the log must accept it and read it back.
    let codec = Compression::ALL[salt % Compression::ALL.len()];
    let mut b = BatchBuilder::new().compression(codec);
    let values: Vec<String> = (0..3).map(|i| format!("appended-{salt}-{i}")).collect();
    for (i, v) in values.iter().enumerate() {
        b.push(
            FUZZ_CLOCK_MS + i as i64,
            Some(b"fuzz"),
            Some(v.as_bytes()),
            &[],
        )
        .expect("a small record fits a batch");
    }
    let mut batch = b
        .finish()
        .unwrap_or_else(|e| panic!("encoding with {codec}: {e}"));
    let info = log
        .append(&mut batch)
        .unwrap_or_else(|e| panic!("append to a freshly opened log at {end} failed: {e}"));
    assert_eq!(
        info.base_offset, end,
        "append did not continue at the log end"
    );
    assert_eq!(log.log_end_offset(), end + 3);
    let durable = log
        .flush()
        .unwrap_or_else(|e| panic!("flush on a fault-free SimFs failed: {e}"));
    assert_eq!(durable, end + 3, "flush did not cover the append");
    let appended = log
        .read_records(end, 1 << 20)
        .unwrap_or_else(|e| panic!("I1: the batch just appended at {end} cannot be read: {e}"));
    let got: Vec<(i64, Option<&[u8]>)> = appended
        .iter()
        .map(|r| (r.offset, r.value.as_deref()))
        .collect();
    let want: Vec<(i64, Option<&[u8]>)> = values
        .iter()
        .zip(end..)
        .map(|(v, o)| (o, Some(v.as_bytes())))
        .collect();
    assert_eq!(got, want, "I1/I3: the appended batch reads back wrong");

    let after = read_contents(&log);
    match (&initial, &after) {
        (Ok(c0), Ok(c1)) => {
            assert_eq!(
                c1.batches[..c1.batches.len() - 1],
                c0.batches[..],
                "I2: the append changed earlier batches"
            );
            assert_eq!(c1.start, start);
        }
        (Ok(_), Err(e)) => panic!("the log was readable before the append, not after: {e}"),
        _ => {}
    }
    let answers = after.as_ref().ok().map(|c| check_timestamps(&log, c));

    // I1/I5: a power cut now (everything flushed) recovers the same log.
    match open(&fs.crash_image(CrashImage::DropAll)) {
        Err(e) if names_old_damage(&e) => {}
        Err(e) => panic!("I5: the image of a power cut after a flush does not open: {e}"),
        Ok(crashed) => check_power_cut(crashed, (start, end + 3), &after),
    }

    // I5: a clean close reopens cleanly to the same log.
    log.close()
        .unwrap_or_else(|e| panic!("close on a fault-free SimFs failed: {e}"));
    let reopened = match open(fs) {
        Err(e) if names_old_damage(&e) => return,
        Err(e) => panic!("I5: reopen after a clean close failed: {e}"),
        Ok(log) => log,
    };
    assert!(
        reopened.recovery_report().clean_shutdown,
        "a clean close did not give a clean reopen: {:?}",
        reopened.recovery_report()
    );
    assert_eq!(
        (reopened.log_start_offset(), reopened.log_end_offset()),
        (start, end + 3),
        "I5: the reopened log has other bounds"
    );
    let again = read_contents(&reopened);
    match (&after, &again) {
        (Ok(c1), Ok(c2)) => assert_eq!(c2, c1, "I5: the reopened log holds other batches"),
        (Ok(_), Err(e)) => panic!("I5: readable before the close, not after the reopen: {e}"),
        _ => {}
    }
    if let (Some(a1), Ok(c2)) = (answers, &again) {
        assert_eq!(
            check_timestamps(&reopened, c2),
            a1,
            "I5: timestamp lookups changed"
        );
    }
    reopened
        .close()
        .unwrap_or_else(|e| panic!("close of the reopened log failed: {e}"));
}

// ------------------------------------------------------------------------------------
// Test hooks
// ------------------------------------------------------------------------------------

/// How many readers of `store` ([`Consumer::poll`](crate::Consumer::poll),
/// [`Partition::wait_for`](crate::Partition::wait_for)) found nothing to return and
/// sleep until an append (or a group change) wakes them. Each is counted from just after
/// its last look at the log: an append from then on must wake it.
pub fn sleeping_readers(store: &Store) -> usize {
    store.sleeping_readers()
}

/// Whether `producer`'s linger thread sleeps until the `linger_ms` deadline of an open
/// batch (rather than idle with no open batch, or appending).
pub fn linger_thread_waits_for_a_deadline(producer: &Producer) -> bool {
    producer.linger_waits_for_a_deadline()
}
