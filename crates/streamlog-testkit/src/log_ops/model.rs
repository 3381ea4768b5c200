//! What the `log_ops` target expects a log to hold: the records at their offsets, the
//! log start, the durable point, and the batches of its idempotent producers.

use std::collections::{BTreeMap, HashMap};

use streamlog::format::Record;
use streamlog::log::Log;

/// What a record belongs to, for the transactions the log must see open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Plain,
    /// Data of a transaction of this producer id.
    Txn(i64),
    /// A COMMIT (true) or ABORT marker of this producer id.
    Marker(i64, bool),
}

/// One record as it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub kind: Kind,
}

impl Rec {
    fn matches(&self, r: &Record) -> bool {
        r.key.as_deref() == self.key.as_deref()
            && r.value.as_deref() == self.value.as_deref()
            && r.timestamp == self.timestamp
    }
}

/// A batch an idempotent producer sent, kept to send it again byte for byte.
#[derive(Debug, Clone)]
pub(super) struct SentBatch {
    pub first_seq: i32,
    pub records: Vec<Rec>,
    /// The batch as encoded (before the log assigned offsets).
    pub bytes: Vec<u8>,
    /// Where it went, once appended.
    pub base_offset: Option<i64>,
}

impl SentBatch {
    pub fn last_seq(&self) -> i32 {
        self.first_seq + self.records.len() as i32 - 1
    }
}

/// What the log must answer to a batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Appended at the log end.
    Append,
    /// Not appended: the original went to this base offset.
    Duplicate(i64),
    /// Refused with `OutOfOrderSequence`.
    OutOfOrder,
    /// The model cannot tell (the producer's batches left the log by retention): any of
    /// the three, checked against the log afterwards.
    Any,
}

/// An idempotent producer: its batches that the log holds, oldest first.
#[derive(Debug, Default)]
pub(super) struct Producer {
    pub in_log: Vec<SentBatch>,
    /// The last batch sent (appended or not), for re-sending.
    pub last_sent: Option<SentBatch>,
    /// Set when batches of it went below the log start: the log may have forgotten it.
    pub uncertain: bool,
    /// The log may remember batches of it older than `in_log` (it was uncertain once):
    /// once `in_log` is cut away, it is uncertain again.
    pub older_unknown: bool,
}

impl Producer {
    /// The next sequence the producer sends.
    pub fn next_seq(&self) -> i32 {
        self.last_sent.as_ref().map_or(0, |b| b.last_seq() + 1)
    }

    /// What the log must do with `b`, a batch of this producer.
    pub fn expect(&self, b: &SentBatch) -> Expect {
        if self.uncertain {
            return Expect::Any;
        }
        // The log remembers a producer's last five batches.
        let recent = &self.in_log[self.in_log.len().saturating_sub(5)..];
        if let Some(orig) = recent
            .iter()
            .find(|o| o.first_seq == b.first_seq && o.last_seq() == b.last_seq())
        {
            return Expect::Duplicate(orig.base_offset.expect("a batch in the log has offsets"));
        }
        match self.in_log.last() {
            None => Expect::Append,
            Some(last) if b.first_seq == last.last_seq() + 1 => Expect::Append,
            Some(_) => Expect::OutOfOrder,
        }
    }
}

/// What an operation that failed may have left behind.
#[derive(Debug, Default)]
pub(super) struct InDoubt {
    /// Records the failed operation may have appended at the model's end.
    pub appended: Vec<Rec>,
    /// The producer and batch of those records, if idempotent.
    pub batch: Option<(usize, SentBatch)>,
    /// The highest log start the failed operation may have set.
    pub max_start: Option<i64>,
    /// A truncation: it may have brought the log start down to the new end.
    pub truncation: bool,
}

#[derive(Debug)]
pub(super) struct Model {
    /// The records the log holds from its start; below the start, those it held (their
    /// transactions can still be open).
    pub recs: BTreeMap<i64, Rec>,
    pub start: i64,
    pub end: i64,
    /// Offsets below this were covered by a completed flush.
    pub durable: i64,
    /// Compaction may have removed records below this offset.
    pub compacted_below: i64,
    pub producers: Vec<Producer>,
}

impl Model {
    pub fn new(producers: usize) -> Self {
        Model {
            recs: BTreeMap::new(),
            start: 0,
            end: 0,
            durable: 0,
            compacted_below: 0,
            producers: (0..producers).map(|_| Producer::default()).collect(),
        }
    }

    pub fn push(&mut self, base: i64, recs: &[Rec]) {
        assert_eq!(
            base, self.end,
            "I2: a batch was not appended at the log end"
        );
        for (o, r) in (base..).zip(recs) {
            self.recs.insert(o, r.clone());
        }
        self.end += recs.len() as i64;
    }

    /// The records of `[from, to)` the log must still hold: all of them, except below
    /// `compacted_below`, where a keyless record, a tombstone, a record whose key has a
    /// later one (below `to`), a transaction's record (aborted data goes) or a marker
    /// may be gone.
    fn must_hold(&self, from: i64, to: i64) -> Vec<i64> {
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for (&o, r) in self.recs.range(from..to) {
            if let Some(k) = &r.key {
                latest.insert(k, o);
            }
        }
        self.recs
            .range(from..to)
            .filter(|&(&o, r)| {
                o >= self.compacted_below
                    || (r.kind == Kind::Plain
                        && r.value.is_some()
                        && r.key.as_deref().is_some_and(|k| latest[k] == o))
            })
            .map(|(&o, _)| o)
            .collect()
    }

    /// Checks `got`, every record the log holds from its start, against the model (with
    /// `extra` records possibly appended at the model's end) and returns the offsets the
    /// log holds. I2, I3: no record differs, none is invented, none the model says must
    /// be there is missing.
    pub fn check_records(&self, got: &[Record], extra: &[Rec], start: i64, end: i64) {
        if let (Some(first), Some(last)) = (got.first(), got.last()) {
            assert!(
                first.offset >= start && last.offset < end,
                "I2: records {}..={} outside [{start}, {end})",
                first.offset,
                last.offset
            );
        }
        self.check_returned(got, extra);
        let held: std::collections::HashSet<i64> = got.iter().map(|r| r.offset).collect();
        for o in self.must_hold(start, end.min(self.end)) {
            assert!(
                held.contains(&o),
                "I1/I2: the record at {o} is missing: {:?}",
                self.recs[&o]
            );
        }
        // Past the model's end the log holds a prefix of `extra`, gap-free.
        for o in self.end..end {
            assert!(
                held.contains(&o),
                "I2: offset {o} missing after the model's end"
            );
        }
    }

    /// I3: each record of `got` is the model's at its offset (or, past the model's end,
    /// the one of `extra` there), in increasing offsets.
    pub fn check_returned(&self, got: &[Record], extra: &[Rec]) {
        for (i, r) in got.iter().enumerate() {
            assert!(
                i == 0 || r.offset > got[i - 1].offset,
                "I2: record at {} out of order",
                r.offset
            );
            let want = if r.offset < self.end {
                self.recs.get(&r.offset)
            } else {
                extra.get((r.offset - self.end) as usize)
            };
            assert!(
                want.is_some_and(|w| w.matches(r)),
                "I3: the log returned {r:?} at {}, the model has {want:?}",
                r.offset
            );
        }
    }

    /// The model becomes what the log holds: `got` from `start` to `end`.
    pub fn adopt(&mut self, got: &[Record], extra: &[Rec], start: i64, end: i64) {
        let mut recs: BTreeMap<i64, Rec> = self
            .recs
            .range(..start.min(end))
            .map(|(&o, r)| (o, r.clone()))
            .collect();
        for r in got {
            let rec = if r.offset < self.end {
                self.recs[&r.offset].clone()
            } else {
                extra[(r.offset - self.end) as usize].clone()
            };
            recs.insert(r.offset, rec);
        }
        self.recs = recs;
        self.start = start;
        self.end = end;
        self.compacted_below = self.compacted_below.min(end);
    }

    /// The last stable offset: the first offset of the earliest transaction left open
    /// (its data with no marker of its producer after it), else the end; never below
    /// the log start (Kafka's rule).
    pub fn last_stable_offset(&self) -> i64 {
        let mut open: HashMap<i64, i64> = HashMap::new();
        for (&o, r) in &self.recs {
            match r.kind {
                Kind::Txn(pid) => {
                    open.entry(pid).or_insert(o);
                }
                Kind::Marker(pid, _) => {
                    open.remove(&pid);
                }
                Kind::Plain => {}
            }
        }
        open.into_values()
            .min()
            .unwrap_or(self.end)
            .max(self.start)
            .min(self.end)
    }

    /// The aborted transactions whose ABORT marker lies at or after the log start, in
    /// marker order: (producer id, first offset, marker offset).
    pub fn aborted_transactions(&self) -> Vec<(i64, i64, i64)> {
        let mut open: HashMap<i64, i64> = HashMap::new();
        let mut aborted = Vec::new();
        for (&o, r) in &self.recs {
            match r.kind {
                Kind::Txn(pid) => {
                    open.entry(pid).or_insert(o);
                }
                Kind::Marker(pid, commit) => {
                    if let Some(first) = open.remove(&pid)
                        && !commit
                        && o >= self.start
                    {
                        aborted.push((pid, first, o));
                    }
                }
                Kind::Plain => {}
            }
        }
        aborted
    }

    /// Kafka's `offsetsForTimes` by a scan: the first record at or after `ts`.
    pub fn first_at_or_after(&self, ts: i64) -> Option<(i64, i64)> {
        self.recs
            .range(self.start..)
            .find(|(_, r)| r.timestamp >= ts)
            .map(|(&o, r)| (o, r.timestamp))
    }

    /// The producers after the log lost everything from `end` on and moved its start to
    /// `start`.
    pub fn forget_producer_batches(&mut self, start: i64, end: i64) {
        for p in &mut self.producers {
            p.in_log.retain(|b| b.base_offset.is_some_and(|o| o < end));
            if p.in_log
                .iter()
                .any(|b| b.base_offset.is_some_and(|o| o < start))
                || (p.in_log.is_empty() && p.older_unknown)
            {
                p.uncertain = true;
            }
        }
    }
}

/// Every record of `log` from its start to its end, read in small steps (records may be
/// missing where compaction removed them).
pub(super) fn read_all(log: &Log, step: usize) -> streamlog::Result<Vec<Record>> {
    let end = log.log_end_offset();
    let mut next = log.log_start_offset();
    let mut out: Vec<Record> = Vec::new();
    while next < end {
        let got = log.read_records(next, step)?;
        let Some(last) = got.last() else { break };
        next = last.offset + 1;
        out.extend(got);
    }
    Ok(out)
}
