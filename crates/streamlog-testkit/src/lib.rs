//! streamlog's fuzz harness: the entry points the cargo-fuzz targets (`fuzz/`) call, the
//! directory-image encoding of the recovery target, and the corpus replay test
//! (`tests/fuzz_corpus.rs`). Test scaffolding, kept out of the library; not published.
//!
//! - [`fuzz_decode_batch`]: arbitrary bytes through [`Batch::parse`](streamlog::format::Batch::parse), the record iterator,
//!   [`validate_records`](streamlog::format::batch::validate_records), the control-record
//!   decoder and [`batches`](streamlog::format::batch::batches).
//! - [`fuzz_recover_log`]: arbitrary bytes decoded into a partition directory on a fresh
//!   [`SimFs`](streamlog::fs::SimFs), opened with
//!   [`Log::open_with_fs`](streamlog::log::Log::open_with_fs), read, appended to, crashed, closed and
//!   reopened, checking invariants I1-I5 of ARCHITECTURE.md along the way.
//! - [`fuzz_log_ops`]: arbitrary bytes decoded into a sequence of operations on a log on
//!   [`SimFs`](streamlog::fs::SimFs) (appends, idempotent re-sends, reads, lookups, rolls, flushes,
//!   truncations, retention, compaction, reopens, power cuts, injected faults and
//!   crashes in the middle of an operation), checked against a model after each one.
//!
//! All three panic only when an invariant is violated; every other outcome is an `Ok` or a
//! typed [`Error`](streamlog::Error).
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
//! | [`KIND_BATCH`] | base, flags, timestamp, chunk | appends a valid batch built by [`BatchBuilder`](streamlog::BatchBuilder) to `<base>.log`, at the offset where that file's valid batches end; flags: bits 0-2 codec, bits 3-5 records - 1, bit 6 decreasing timestamps, bit 7 idempotent producer; timestamp 0 = none (-1), else `1.7e12 + 1000 * t`; the chunk is split into the values |
//! | [`KIND_FORGED_BATCH`] | base, chunk | appends the chunk (zero-padded to 61 bytes) as a batch with baseOffset, batchLength, magic, leader epoch 0 and CRC made valid |
//! | [`KIND_DURABLE_AT`] | base, adjust, skew | writes a valid `streamlog.durable` slot (the next of two, with a CRC) naming `<base>.log` at its size minus `adjust` (`adjust` < 128) or plus `adjust - 128`, the offset where its valid batches before that position end plus `skew` (an `i8`), and the first segment as the log start |
//! | [`KIND_RECOVERY_POINT_AT`] | base | writes a well-formed recovery point checkpoint at offset `base` |
//! | [`KIND_TRUNCATE_LOG`] | base, u16 LE | cuts that many bytes off the end of `<base>.log` |
//!
//! [`ImageWriter`] builds such inputs (the seed corpus generator uses it).

mod decode_batch;
mod image;
mod log_ops;
mod recover_log;

use std::sync::Arc;

use streamlog::format::DecodeOptions;
use streamlog::log::{LogConfig, ManualClock};

pub use decode_batch::fuzz_decode_batch;
pub use image::*;
pub use log_ops::{MAX_OPS, fuzz_log_ops};
pub use recover_log::fuzz_recover_log;

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
