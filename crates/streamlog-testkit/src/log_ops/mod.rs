//! The op-sequence fuzz entry point: a log on `SimFs` driven by operations decoded from
//! the input (append, idempotent append and re-send, read, timestamp lookup, roll,
//! flush, truncate, delete records, retention, compaction, close and reopen, power cut,
//! injected faults, a crash in the middle of the next operation), checked against a
//! model after every step (invariants I1-I5 and I7 of ARCHITECTURE.md and TESTING.md),
//! and once an injected fault failed an fsync, the log must be poisoned. Half the
//! recoveries after a power cut are first interrupted by another power cut or an EIO.
//!
//! # Input encoding
//!
//! A first byte, then a sequence of operations until the input ends (missing bytes read
//! as zero), at most [`MAX_OPS`]. Bit 0 of the first byte makes the log a compacted
//! topic's (offset gaps allowed; compaction steps are skipped otherwise); bits 1 and 5
//! together make the run transactional (producer 1 writes transactions, markers are a
//! sixteenth kind of step, and in a plain log the last stable offset is checked after
//! each step). Each operation starts with a kind byte taken modulo the number of
//! kinds; the bytes each kind reads next are listed in [`Run::step`].

mod model;

use std::sync::Arc;

use streamlog::Error;
use streamlog::format::{BatchBuilder, Compression};
use streamlog::fs::{CrashImage, Fault, SimFs};
use streamlog::log::{CleanPolicy, Log, RetentionPolicy, TransactionResult};

use self::model::{Expect, InDoubt, Kind, Model, Rec, SentBatch, read_all};
use crate::{FUZZ_CLOCK_MS, FUZZ_DIR, fuzz_config};

/// Operations per input at most.
pub const MAX_OPS: usize = 256;

/// Idempotent producers the target sends from.
const PRODUCERS: usize = 2;

/// Bytes per read when the target reads a whole log: small, so reads cross segments.
const STEP: usize = 300;

/// The input, a byte at a time; zero once it ends.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn crash_mode(&mut self) -> CrashImage {
        let b = self.byte();
        self.crash_mode_from(b)
    }

    fn crash_mode_from(&mut self, b: u8) -> CrashImage {
        match b % 4 {
            0 => CrashImage::KeepAll,
            1 => CrashImage::DropAll,
            _ => CrashImage::Random(u64::from(self.byte()) * 0x9E37_79B9 + 1),
        }
    }
}

/// `lo..=hi` scaled by a byte.
fn scale(b: u8, lo: i64, hi: i64) -> i64 {
    lo + i64::from(b) * (hi - lo + 1) / 256
}

fn encode(recs: &[Rec], codec: Compression, producer: Option<(i64, i32)>) -> Vec<u8> {
    let mut b = BatchBuilder::new().compression(codec);
    if let Some((id, seq)) = producer {
        b = b
            .producer(id, 0, seq)
            .transactional(recs.iter().any(|r| matches!(r.kind, Kind::Txn(_))));
    }
    for r in recs {
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &[])
            .expect("a small record fits a batch");
    }
    b.finish()
        .unwrap_or_else(|e| panic!("encoding with {codec}: {e}"))
}

/// Opens the log; `gaps`: a compacted topic's log (offset gaps allowed).
fn open(fs: &SimFs, gaps: bool) -> streamlog::Result<Log> {
    let config = fuzz_config().allow_offset_gaps(gaps);
    Log::open_with_fs(Arc::new(fs.clone()), FUZZ_DIR, config)
}

struct Run {
    fs: SimFs,
    log: Option<Log>,
    model: Model,
    /// A fault or a crash is set: operations may fail.
    armed: bool,
    /// The log allows offset gaps and is compacted (else the compaction step is skipped).
    gaps: bool,
    /// Producer 1 writes transactions, and markers are a step kind.
    txns: bool,
    /// The logs of processes that died (kill -9): kept, not closed, until the run ends.
    zombies: Vec<Log>,
    /// Print each step (`LOG_OPS_TRACE` set): to follow a failing input.
    trace: bool,
    /// Distinguishes the values of each batch.
    tag: u64,
    /// Producer ids handed out so far (a producer the log refused starts afresh).
    ids: i64,
    producer_ids: Vec<i64>,
    /// The file system's failed fsyncs when the step began (see `check_sync_poisons`).
    failed_syncs: u64,
    /// Recoveries after a crash so far (which ones are interrupted depends on it).
    recoveries: u64,
}

impl Run {
    fn log(&self) -> &Log {
        self.log.as_ref().expect("the run holds an open log")
    }

    /// Runs one operation; the bytes it reads are listed with each kind.
    fn step(&mut self, input: &mut Input) {
        let kind = input.byte() % if self.txns { 16 } else { 15 };
        self.failed_syncs = self.fs.failed_sync_count();
        if self.trace {
            eprintln!(
                "log_ops: step {kind} at byte {}; model {}..{} durable {} lso {}/{:?}",
                input.pos,
                self.model.start,
                self.model.end,
                self.model.durable,
                self.model.last_stable_offset(),
                self.log.as_ref().map(Log::last_stable_offset)
            );
        }
        match kind {
            // count, codec, then a byte per record: bits 0-2 key (0 = none), bit 3
            // tombstone, bits 4-7 timestamp seconds.
            0 | 1 => self.append(input),
            // producer, count.
            2 => self.idempotent_append(input),
            // producer.
            3 => self.resend(input),
            // offset, bytes.
            4 => self.read(input),
            // timestamp.
            5 => {
                let ts = FUZZ_CLOCK_MS - 2_000 + i64::from(input.byte()) * 100;
                self.lookup(ts);
            }
            6 => self.roll(),
            7 => self.flush(),
            // offset.
            8 => self.truncate(input),
            // offset.
            9 => self.advance_start(input),
            // limit of bytes (0 = only below the log start), age.
            10 => self.retention(input),
            // delete retention, key-map budget, dirty ratio / force.
            11 => self.clean(input),
            12 => self.reopen(input),
            // crash mode.
            // crash mode; with bits 0, 1 and 7 all set, the process dies (kill -9) and
            // the machine does not.
            13 => {
                let b = input.byte();
                if b & 0x83 == 0x83 && !self.armed {
                    self.process_crash();
                } else {
                    let mode = input.crash_mode_from(b);
                    self.crash(Some(mode), InDoubt::default(), "a power cut");
                }
            }
            // what: bits 0-1 (0 = crash in the middle, 1 = EIO, 2 = ENOSPC, 3 = ENOSPC
            // persistent), then after how many operations.
            14 => self.arm(input),
            // (transactional runs) commit (bit 0) or abort.
            _ => self.marker(input),
        }
        self.check_sync_poisons();
        if self.log.is_some() && self.txns && !self.gaps {
            // (Compaction removes markers and aborted data: not checked there.)
            assert_eq!(
                self.log().last_stable_offset(),
                self.model.last_stable_offset(),
                "the last stable offset; the log's open transactions: {:?}",
                self.log().open_transactions()
            );
            // What read_committed readers skip, from the `.txnindex` files (a fault
            // armed may fail the reads: checked once it is gone).
            if !self.armed {
                let log = self.log();
                let got: Vec<(i64, i64, i64)> = log
                    .aborted_transactions(log.log_start_offset(), i64::MAX)
                    .unwrap_or_else(|e| panic!("the aborted transactions cannot be read: {e}"))
                    .iter()
                    .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                    .collect();
                assert_eq!(
                    got,
                    self.model.aborted_transactions(),
                    "aborted transactions"
                );
            }
        }
        if self.log.is_some() {
            let log = self.log();
            assert_eq!(log.log_end_offset(), self.model.end, "log end");
            assert_eq!(log.log_start_offset(), self.model.start, "log start");
            assert!(
                log.durable_offset() >= self.model.durable,
                "I1: durable point {} below {}",
                log.durable_offset(),
                self.model.durable
            );
        }
    }

    fn append(&mut self, input: &mut Input) {
        let n = 1 + usize::from(input.byte() % 8);
        let codec = Compression::ALL[usize::from(input.byte()) % Compression::ALL.len()];
        self.tag += 1;
        let recs: Vec<Rec> = (0..n)
            .map(|i| {
                let b = input.byte();
                let key = (b & 7 != 0).then(|| format!("k{}", b & 7).into_bytes());
                let tombstone = key.is_some() && b & 8 != 0;
                Rec {
                    key,
                    value: (!tombstone).then(|| format!("v{}-{i}", self.tag).into_bytes()),
                    timestamp: FUZZ_CLOCK_MS + i64::from(b >> 4) * 1000,
                    kind: Kind::Plain,
                }
            })
            .collect();
        let mut bytes = encode(&recs, codec, None);
        match self.log().append(&mut bytes) {
            Ok(info) => {
                assert_eq!(info.last_offset, info.base_offset + n as i64 - 1);
                self.model.push(info.base_offset, &recs);
            }
            Err(e) => self.failed(
                e,
                InDoubt {
                    appended: recs,
                    ..InDoubt::default()
                },
            ),
        }
    }

    fn idempotent_append(&mut self, input: &mut Input) {
        let p = usize::from(input.byte()) % PRODUCERS;
        let n = 1 + i32::from(input.byte() % 4);
        let seq = self.model.producers[p].next_seq();
        self.tag += 1;
        // In a transactional run producer 1 writes transactions.
        let id = self.producer_ids[p];
        let kind = if self.txns && p == 1 {
            Kind::Txn(id)
        } else {
            Kind::Plain
        };
        let records: Vec<Rec> = (seq..seq + n)
            .map(|s| Rec {
                key: Some(format!("p{id}-{s}").into_bytes()),
                value: Some(format!("i{}-{s}", self.tag).into_bytes()),
                timestamp: FUZZ_CLOCK_MS,
                kind,
            })
            .collect();
        let bytes = encode(
            &records,
            Compression::None,
            Some((self.producer_ids[p], seq)),
        );
        let batch = SentBatch {
            first_seq: seq,
            records,
            bytes,
            base_offset: None,
        };
        self.send(p, batch);
    }

    fn resend(&mut self, input: &mut Input) {
        let p = usize::from(input.byte()) % PRODUCERS;
        if let Some(mut b) = self.model.producers[p].last_sent.clone() {
            b.base_offset = None;
            self.send(p, b);
        }
    }

    /// Sends a batch of idempotent producer `p` and checks the log's answer.
    fn send(&mut self, p: usize, mut batch: SentBatch) {
        let expect = self.model.producers[p].expect(&batch);
        let end = self.model.end;
        let mut bytes = batch.bytes.clone();
        let got = self.log().append(&mut bytes);
        if self.trace {
            eprintln!(
                "log_ops: producer {p} (id {}) seq {}..={}: expected {expect:?}, got {got:?}",
                self.producer_ids[p],
                batch.first_seq,
                batch.last_seq()
            );
        }
        match (expect, got) {
            (Expect::Append | Expect::Any, Ok(info)) if info.base_offset == end => {
                batch.base_offset = Some(end);
                self.model.push(end, &batch.records);
                let producer = &mut self.model.producers[p];
                if expect == Expect::Any {
                    producer.in_log.clear();
                    producer.uncertain = false;
                    producer.older_unknown = true;
                }
                producer.in_log.push(batch.clone());
                producer.last_sent = Some(batch);
            }
            (Expect::Duplicate(orig), Ok(info)) => {
                assert_eq!(info.base_offset, orig, "a re-sent batch answered elsewhere");
            }
            (Expect::Any, Ok(info)) => {
                // A duplicate: the answer must name this batch where it was appended.
                assert!(
                    info.base_offset < end,
                    "answered past the log end: {info:?}"
                );
                assert_eq!(
                    info.last_offset - info.base_offset + 1,
                    batch.records.len() as i64
                );
                if let Some(r) = self.model.recs.get(&info.base_offset) {
                    assert_eq!(
                        r.key, batch.records[0].key,
                        "a duplicate answered at {}, which holds another record",
                        info.base_offset
                    );
                }
            }
            (Expect::OutOfOrder | Expect::Any, Err(Error::OutOfOrderSequence { .. })) => {
                // The log wants other sequences: the producer starts afresh.
                self.model.producers[p] = model::Producer::default();
                self.ids += 1;
                self.producer_ids[p] = self.ids;
            }
            (_, Err(e)) if self.armed => {
                let appended = match expect {
                    Expect::Append | Expect::Any => batch.records.clone(),
                    _ => Vec::new(),
                };
                let doubt = InDoubt {
                    appended,
                    batch: Some((p, batch)),
                    ..InDoubt::default()
                };
                self.failed(e, doubt);
                return;
            }
            (expect, got) => panic!("idempotent batch {batch:?}: expected {expect:?}, got {got:?}"),
        }
        assert_eq!(self.log().log_end_offset(), self.model.end);
    }

    /// A marker of producer 1 (written also with no transaction open, as Kafka does).
    fn marker(&mut self, input: &mut Input) {
        let commit = input.byte() & 1 == 1;
        let id = self.producer_ids[1];
        let (result, kind) = if commit {
            (TransactionResult::Commit, 1)
        } else {
            (TransactionResult::Abort, 0)
        };
        let rec = Rec {
            key: Some(vec![0, 0, 0, kind]),
            value: Some(vec![0; 6]),
            timestamp: FUZZ_CLOCK_MS,
            kind: Kind::Marker(id, commit),
        };
        match self.log().append_marker(id, 0, 0, result) {
            Ok(info) => self.model.push(info.base_offset, &[rec]),
            Err(e) => self.failed(
                e,
                InDoubt {
                    appended: vec![rec],
                    ..InDoubt::default()
                },
            ),
        }
    }

    fn read(&mut self, input: &mut Input) {
        let at = scale(input.byte(), self.model.start, self.model.end);
        let max_bytes = 1 + usize::from(input.byte()) * 8;
        match self.log().read_records(at, max_bytes) {
            Ok(got) => {
                let want: Vec<i64> = self.model.recs.range(at..).map(|(&o, _)| o).collect();
                assert!(
                    got.len() <= want.len() && (got.is_empty() == want.is_empty()),
                    "read({at}) returned {} records, the model has {} from there",
                    got.len(),
                    want.len()
                );
                self.model.check_returned(&got, &[]);
                let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
                assert_eq!(offsets, want[..got.len()], "read({at}) skipped records");
            }
            Err(e) => self.failed(e, InDoubt::default()),
        }
    }

    /// I4: a timestamp lookup agrees with a scan of the model (a negative target is
    /// refused: it is not a time).
    fn lookup(&mut self, ts: i64) {
        if ts < 0 {
            let refused = self.log().offset_for_timestamp(ts);
            assert!(
                matches!(refused, Err(Error::InvalidArgument { .. })),
                "offset_for_timestamp({ts}) = {refused:?}"
            );
            return;
        }
        match self.log().offset_for_timestamp(ts) {
            Ok(got) => assert_eq!(
                got,
                self.model.first_at_or_after(ts),
                "I4: offset_for_timestamp({ts})"
            ),
            Err(e) => self.failed(e, InDoubt::default()),
        }
    }

    fn roll(&mut self) {
        if let Err(e) = self.log().roll() {
            self.failed(e, InDoubt::default());
        }
    }

    fn flush(&mut self) {
        match self.log().flush() {
            Ok(durable) => {
                assert_eq!(durable, self.model.end, "a flush did not cover the log");
                self.model.durable = durable;
            }
            Err(e) => self.failed(e, InDoubt::default()),
        }
    }

    fn truncate(&mut self, input: &mut Input) {
        let at = scale(input.byte(), self.model.start, self.model.end);
        // The cut is at the base of the batch holding `at`. In a compacted log: right
        // after the last batch below `at` (in the same segment), which can lie below the
        // base of the batch holding it, or where that batch would be.
        let segment = self
            .log()
            .segments()
            .iter()
            .rev()
            .find(|s| s.base_offset <= at)
            .map_or(at, |s| s.base_offset);
        let (cut, exact) = match self.log().read(at, 1) {
            Ok(batches) => match batches.first() {
                Some(b) if b.base_offset() <= at => (b.base_offset(), !self.gaps),
                None if at == self.model.end => (at, true),
                _ => (at, false),
            },
            Err(e) => return self.failed(e, InDoubt::default()),
        };
        self.trace_files("before the truncation");
        let truncated = self.log().truncate_to(at);
        if self.trace {
            eprintln!("log_ops: truncate_to({at}) = {truncated:?}");
        }
        match truncated {
            Ok(end) => {
                // The cut can lie below the log start: the start comes down to the new
                // end then (nothing below it becomes readable: the log is empty there).
                assert!(
                    if exact {
                        end == cut
                    } else {
                        end <= cut && end >= segment
                    },
                    "truncate_to({at}) ended the log at {end}, not at {cut}"
                );
                self.model.recs.retain(|&o, _| o < end);
                self.model.end = end;
                self.model.start = self.model.start.min(end);
                self.model.compacted_below = self.model.compacted_below.min(end);
                // The cut is durable on return; what stays is as durable as before.
                self.model.durable = self.model.durable.min(end);
                self.model.forget_producer_batches(self.model.start, end);
                if self.gaps {
                    self.forget_compacted_producers();
                }
            }
            Err(e) => {
                let cut = if exact { cut } else { segment };
                self.model.durable = self.model.durable.min(cut);
                let doubt = InDoubt {
                    truncation: true,
                    ..InDoubt::default()
                };
                self.failed(e, doubt);
            }
        }
    }

    fn advance_start(&mut self, input: &mut Input) {
        let at = scale(input.byte(), self.model.start, self.model.end);
        match self.log().advance_log_start(at) {
            Ok(start) => {
                assert_eq!(start, at.max(self.model.start));
                self.set_start(start);
            }
            Err(e) => {
                let doubt = InDoubt {
                    max_start: Some(at),
                    ..InDoubt::default()
                };
                self.failed(e, doubt);
            }
        }
    }

    fn set_start(&mut self, start: i64) {
        self.model.start = start;
        self.model.forget_producer_batches(start, self.model.end);
    }

    fn retention(&mut self, input: &mut Input) {
        let bytes = input.byte();
        let age = input.byte();
        let mut policy = RetentionPolicy::log_start_only(FUZZ_CLOCK_MS + 10_000);
        if bytes != 0 {
            policy.retention_bytes = i64::from(bytes) * 16;
        }
        if age != 0 {
            policy.retention_ms = i64::from(age) * 100;
        }
        match self.log().enforce_retention(&policy) {
            Ok(outcome) => {
                let start = outcome.log_start_offset;
                assert!(
                    start >= self.model.start && start <= self.model.end,
                    "retention set the log start to {start}"
                );
                self.set_start(start);
            }
            Err(e) => {
                let doubt = InDoubt {
                    max_start: Some(self.model.end),
                    ..InDoubt::default()
                };
                self.failed(e, doubt);
            }
        }
    }

    fn clean(&mut self, input: &mut Input) {
        let b = input.byte();
        let policy = CleanPolicy {
            now_ms: FUZZ_CLOCK_MS + 20_000,
            delete_retention_ms: if b & 1 == 0 { 0 } else { i64::MAX / 2 },
            key_map_bytes: 64 + usize::from(input.byte()) * 16,
            min_cleanable_dirty_ratio: f64::from(b >> 2) / 64.0,
            force: b & 2 != 0,
            ..CleanPolicy::default()
        };
        if !self.gaps {
            return;
        }
        // Compaction never touches the active segment.
        let active = self.log().segments().last().map_or(0, |s| s.base_offset);
        match self.log().clean(&policy) {
            Ok(_) => {
                // Not the checkpoint: a pass recopies whole segments (a keyless record
                // past the checkpoint goes too), and after a truncation into a cleaned
                // segment the checkpoint can lie past the active segment's base. The
                // active segment is never touched.
                self.model.compacted_below = self.model.compacted_below.max(active);
                let got = match read_all(self.log(), STEP) {
                    Ok(got) => got,
                    Err(e) => return self.failed(e, InDoubt::default()),
                };
                let (start, end) = (self.model.start, self.model.end);
                self.model.check_records(&got, &[], start, end);
                self.model.adopt(&got, &[], start, end);
            }
            Err(e) => {
                self.model.compacted_below = self.model.compacted_below.max(active);
                self.failed(e, InDoubt::default());
            }
        }
    }

    fn reopen(&mut self, input: &mut Input) {
        let log = self.log.take().expect("an open log");
        if let Err(e) = log.close() {
            return self.failed_closed(e, input);
        }
        match open(&self.fs, self.gaps) {
            Ok(log) => {
                assert!(
                    self.armed || log.recovery_report().clean_shutdown,
                    "a clean close did not give a clean reopen: {:?}",
                    log.recovery_report()
                );
                self.log = Some(log);
                self.model.durable = self.model.end;
                self.check_exact();
            }
            Err(e) => self.failed_closed(e, input),
        }
    }

    fn arm(&mut self, input: &mut Input) {
        let what = input.byte();
        let after = u64::from(input.byte() % 32);
        match what % 4 {
            0 => self
                .fs
                .crash_after(self.fs.mutating_op_count() + 1 + after / 2),
            w => {
                let kind = if w == 1 { Fault::Eio } else { Fault::Enospc };
                self.fs.inject(kind, self.fs.op_count() + 1 + after, w == 3);
            }
        }
        self.armed = true;
    }

    /// An operation failed: a fault was injected (anything else is a bug). The log, as
    /// it is, must return no wrong data; then the machine loses power, or (one time in
    /// two) only the process dies, and the log recovered must hold what was durable.
    /// (After a failed fsync the process that survives the machine sees data the disk
    /// may lack: what its open recovers must become durable.)
    fn failed(&mut self, e: Error, doubt: InDoubt) {
        assert!(
            self.armed,
            "an operation failed with no fault injected: {e:?}"
        );
        self.check_sync_poisons();
        self.fs.clear_faults();
        if let Ok(got) = read_all(self.log(), STEP) {
            self.model.check_returned(&got, &doubt.appended);
        }
        // (A machine that crashed cannot go on.)
        // (Not the tag's lowest bit, which would leave the power cuts' seeds all odd.)
        let live = (self.tag >> 3) & 1 == 0 && !self.fs.has_crashed();
        let mode = (!live).then_some(CrashImage::Random(self.tag));
        self.crash(mode, doubt, "a failed operation");
    }

    /// As [`failed`](Self::failed) for a close or open that failed (no log is open).
    fn failed_closed(&mut self, e: Error, input: &mut Input) {
        assert!(
            self.armed,
            "close or open failed with no fault injected: {e:?}"
        );
        let mode = input.crash_mode();
        self.crash(Some(mode), InDoubt::default(), "a failed close or open");
    }

    /// kill -9: the log is opened again on the same disk, whose unsynced changes are
    /// all still there (a later power cut can lose what the open did not sync). Nothing
    /// is lost; the open's recovery makes everything durable.
    fn process_crash(&mut self) {
        if self.trace {
            eprintln!("log_ops: process crash");
        }
        // Nothing of the dead process runs any more: not even its close.
        self.zombies.extend(self.log.take());
        self.fs.process_crash();
        let log = open(&self.fs, self.gaps)
            .unwrap_or_else(|e| panic!("I5: the log does not open after a process crash: {e}"));
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (self.model.start, self.model.end),
            "a process crash lost or invented offsets"
        );
        self.log = Some(log);
        self.model.durable = self.model.end;
        if self.gaps {
            self.forget_compacted_producers();
        }
        self.check_exact();
    }

    /// A power cut (`mode`; `None`: only the process dies, the file system stays as
    /// it is): the log is opened on what the disk holds, and must hold every record
    /// durable before it (I1), a prefix of what was appended (I2, I3), and the same after
    /// a clean reopen (I5).
    fn crash(&mut self, mode: Option<CrashImage>, doubt: InDoubt, after: &str) {
        if self.trace {
            eprintln!("log_ops: crash {mode:?} after {after}");
        }
        match mode {
            Some(mode) => {
                let image = self.fs.crash_image(mode);
                drop(self.log.take());
                self.fs = image;
            }
            None => {
                // Nothing of the dead process runs any more: not even its close. (Nor
                // does a power cut that was to come.)
                self.zombies.extend(self.log.take());
                self.fs.process_crash();
                self.fs.cancel_crash();
            }
        }
        self.failed_syncs = self.fs.failed_sync_count();
        self.armed = false;
        self.trace_files("the disk after the crash");
        self.interrupt_recovery();
        let log = open(&self.fs, self.gaps)
            .unwrap_or_else(|e| panic!("I5: the log does not open after {after}: {e}"));
        if self.trace {
            eprintln!("log_ops: recovered {:?}", log.recovery_report());
        }
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let max_start = doubt.max_start.unwrap_or(0).max(self.model.start);
        let min_start = if doubt.truncation {
            self.model.start.min(end)
        } else {
            self.model.start
        };
        assert!(
            start >= min_start && start <= max_start,
            "after {after} the log starts at {start}, not in {min_start}..={max_start}"
        );
        assert!(
            end >= self.model.durable,
            "I1: after {after} the log ends at {end}, below the durable {}",
            self.model.durable
        );
        let full = self.model.end + doubt.appended.len() as i64;
        assert!(
            end <= self.model.end || end == full,
            "I2: after {after} the log ends at {end}: neither at most {} nor {full}",
            self.model.end
        );
        let got = read_all(&log, STEP)
            .unwrap_or_else(|e| panic!("I5: the log recovered after {after} cannot be read: {e}"));
        self.model.check_records(&got, &doubt.appended, start, end);
        if let Some((p, mut batch)) = doubt.batch {
            let producer = &mut self.model.producers[p];
            if end > self.model.end {
                batch.base_offset = Some(self.model.end);
                producer.in_log.push(batch.clone());
            }
            producer.last_sent = Some(batch);
        }
        self.model.adopt(&got, &doubt.appended, start, end);
        self.model.durable = end;
        self.model.forget_producer_batches(start, end);
        if self.gaps {
            self.forget_compacted_producers();
        }
        self.log = Some(log);
        for ts in [i64::MIN, 0, FUZZ_CLOCK_MS, FUZZ_CLOCK_MS + 7_000] {
            self.lookup(ts);
        }
    }

    /// Never retry an fsync: once one failed in this step, the open log must take no
    /// more writes (its unsynced data may be gone from the page cache while a retried
    /// fsync would report success).
    fn check_sync_poisons(&self) {
        if let Some(log) = &self.log
            && self.fs.failed_sync_count() > self.failed_syncs
        {
            assert!(
                log.poison_reason().is_some(),
                "an fsync failed and the log still takes writes"
            );
        }
    }

    /// One recovery in two is interrupted first (I5: recovering twice is recovering
    /// once, also after a crash or an I/O error during recovery itself): a power cut
    /// after a few of its file operations, or an EIO in it, after which the process
    /// dies and the next open runs on what the disk holds.
    fn interrupt_recovery(&mut self) {
        self.recoveries += 1;
        // splitmix64 of the run's state: the same input interrupts the same recoveries.
        let mut r = self.tag ^ (self.recoveries << 32) ^ 0x9E37_79B9_7F4A_7C15;
        r = (r ^ (r >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        r = (r ^ (r >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        r ^= r >> 31;
        let at = (r >> 8) % 48;
        let power_cut = match r % 4 {
            0 => {
                self.fs.crash_after(self.fs.mutating_op_count() + at);
                true
            }
            1 => {
                self.fs
                    .inject(Fault::Eio, self.fs.op_count() + 1 + at, false);
                false
            }
            _ => return,
        };
        if self.trace {
            eprintln!("log_ops: the recovery is interrupted (power cut {power_cut}) at {at}");
        }
        // An open that got through (the fault struck past it, or nothing failed) is left
        // as a dead process leaves it; if an fsync of it failed, it must be poisoned.
        let failed_syncs = self.fs.failed_sync_count();
        if let Ok(log) = open(&self.fs, self.gaps) {
            assert!(
                self.fs.failed_sync_count() == failed_syncs || log.poison_reason().is_some(),
                "an fsync failed in an open that returned a log taking writes"
            );
            self.zombies.push(log);
        }
        self.fs.clear_faults();
        self.fs.process_crash();
        if power_cut {
            self.fs = self.fs.crash_image(CrashImage::Random(r >> 16));
        }
        self.failed_syncs = self.fs.failed_sync_count();
        self.trace_files("the disk after the interrupted recovery");
    }

    /// With tracing on, prints the partition directory's files and their sizes.
    fn trace_files(&self, when: &str) {
        if !self.trace {
            return;
        }
        let files: Vec<String> = self
            .fs
            .files(std::path::Path::new(FUZZ_DIR))
            .into_iter()
            .map(|(p, n)| format!("{}:{n}", p.file_name().unwrap_or_default().display()))
            .collect();
        eprintln!("log_ops: {when}: {files:?}");
    }

    /// A compacted log's producer state rebuilt (after a crash or a truncation) keeps
    /// epochs, not batches: any sequence is accepted (`rebuild_producer_state`).
    fn forget_compacted_producers(&mut self) {
        for p in &mut self.model.producers {
            p.uncertain = true;
        }
    }

    /// The log holds exactly the model's records.
    fn check_exact(&mut self) {
        let got = match read_all(self.log(), STEP) {
            Ok(got) => got,
            Err(e) => return self.failed(e, InDoubt::default()),
        };
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        let want: Vec<i64> = self
            .model
            .recs
            .range(self.model.start..)
            .map(|(&o, _)| o)
            .collect();
        assert_eq!(offsets, want, "the log holds other offsets than the model");
        self.model
            .check_records(&got, &[], self.model.start, self.model.end);
    }

    /// The last checks: the log holds the model, and a clean close and reopen keeps it.
    fn finish(mut self) {
        if self.armed {
            self.fs.clear_faults();
            self.crash(
                Some(CrashImage::DropAll),
                InDoubt::default(),
                "the last operation",
            );
        }
        self.check_exact();
        let log = self.log.take().expect("an open log");
        log.close()
            .unwrap_or_else(|e| panic!("close on a fault-free SimFs failed: {e}"));
        let log =
            open(&self.fs, self.gaps).unwrap_or_else(|e| panic!("I5: reopen after a close: {e}"));
        assert!(log.recovery_report().clean_shutdown);
        self.log = Some(log);
        self.check_exact();
        for ts in [
            FUZZ_CLOCK_MS - 1,
            FUZZ_CLOCK_MS + 3_000,
            FUZZ_CLOCK_MS + 15_001,
        ] {
            self.lookup(ts);
        }
    }
}

/// Fuzz entry point: runs the operations `data` encodes (see the module docs) on a log
/// on `SimFs` against a model.
///
/// # Panics
/// Only if an invariant is violated.
pub fn fuzz_log_ops(data: &[u8]) {
    let mut input = Input { data, pos: 0 };
    let first = input.byte();
    let gaps = first & 1 == 1;
    let txns = first & 0x22 == 0x22;
    let fs = SimFs::new();
    let log = open(&fs, gaps).expect("a log opens on an empty SimFs");
    let mut run = Run {
        gaps,
        txns,
        zombies: Vec::new(),
        trace: std::env::var_os("LOG_OPS_TRACE").is_some(),
        fs,
        log: Some(log),
        model: Model::new(PRODUCERS),
        armed: false,
        tag: 0,
        ids: PRODUCERS as i64,
        producer_ids: (1..=PRODUCERS as i64).collect(),
        failed_syncs: 0,
        recoveries: 0,
    };
    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        run.step(&mut input);
    }
    run.finish();
}
