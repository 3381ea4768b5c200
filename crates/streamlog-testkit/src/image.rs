//! The directory-image encoding of the recovery fuzz target: decoding an input into a
//! partition directory on `SimFs`, and [`ImageWriter`], which builds such inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;

use streamlog::Result;
use streamlog::format::batch::{
    self, ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2,
    PARTITION_LEADER_EPOCH_OFFSET, RECORD_BATCH_OVERHEAD,
};
use streamlog::format::{BatchBuilder, Compression, Header, batches};
use streamlog::fs::{FileSystem, SimFs};

use crate::recover_log::open;
use crate::*;

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
        // An image of a disk: its directory is there for good, as a log's is once
        // it was opened (a clean-shutdown marker in the image tells the log so).
        fs.sync_dir(dir.parent().expect("FUZZ_DIR has a parent"))
            .expect("SimFs syncs without faults");
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
