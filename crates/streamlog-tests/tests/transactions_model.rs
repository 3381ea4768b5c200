//! Transactions against a model (issue 14, item 5): random sequences of a transactional
//! producer's calls (begin, sends to three partitions, offsets of two groups, commit,
//! abort, flush), a second producer with the same transactional id fencing the first,
//! plain sends (acknowledged by the log, or fsync'd), partition flushes, clean reopens
//! and crashes (every unsynced write kept, dropped, or a random mix) on `SimFs`.
//!
//! After every reopen and at the end a read_committed consumer reading from the start
//! must see exactly the records the model says are committed, per partition and in
//! order: committed transactions' records and plain sends, never an aborted or undecided
//! record, never a control record, and nothing past the first open transaction (the last
//! stable offset). A read_uncommitted consumer sees every data record that was appended,
//! in order. The groups' committed offsets are those of committed transactions only.
//!
//! Durability, as the model has it: a record is guaranteed to survive a crash if its
//! partition was fsync'd after it was appended: by a plain `Acks::All` send to that
//! partition, a partition flush, a clean close, or the commit of a transaction that wrote
//! to that partition. Past that point a crash keeps any prefix of what was appended
//! (the recovered log is a prefix of the appended one), and every transaction that was
//! open at the crash ends aborted.
//!
//! With faults (the second property): an EIO or ENOSPC at a random file-system
//! operation. The operation that fails, or the one it strikes if that returns Ok, is
//! followed by a power cut, and the checks above apply, with what the failed operation
//! wrote in doubt (each partition's last records). A commit that failed ends whole,
//! either way: committed with all its records and offsets, or aborted. A commit that
//! returned Ok is committed, whatever the fault struck.
//!
//! Half the opens after a crash are first interrupted by another power cut or an EIO
//! (the process then dies): recovery, which completes or aborts the transactions it
//! finds, must reach the same state when it runs again.
//!
//! The transactional producers either append at every send (`linger_ms` 0) or hold their
//! records until a flush, commit or abort (a linger far longer than any test); plain
//! producers wait for each send. So the order of appends, and with it the model, never
//! depends on timing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::sim_store;
use proptest::prelude::*;
use streamlog::fs::{CrashImage, Fault, SimFs};
use streamlog::{
    Acks, Consumer, ConsumerConfig, ConsumerGroupMetadata, DeliveryFuture, Error, IsolationLevel,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, Record, Store, TopicConfig,
    TopicPartition,
};

/// The topic the producers write to.
const TOPIC: &str = "t";
const PARTITIONS: i32 = 3;
/// The topic whose offsets the transactions commit for the groups.
const INPUT: &str = "in";
const INPUT_PARTITIONS: i32 = 2;
/// Records in each input partition (durable from the start): offsets go up to this.
const INPUT_RECORDS: i64 = 20;
const GROUPS: [&str; 2] = ["g0", "g1"];
const TXN_ID: &str = "app";
/// A linger no test run reaches: batches are appended only by flush, commit or abort.
const LINGER_FOREVER_MS: u64 = 3_600_000;

#[derive(Debug, Clone)]
enum Op {
    Begin,
    /// A record of the current transactional producer to this partition.
    Send(i32),
    SendOffsets {
        group: usize,
        partition: i32,
        offset: i64,
    },
    Commit,
    Abort,
    /// `Producer::flush` of the transactional producer: appends what it holds.
    FlushTxnProducer,
    /// A new producer with the same transactional id calls `init_transactions`.
    Fence,
    /// A fenced producer tries a transaction (begin, one send, commit or abort).
    Zombie {
        which: usize,
        partition: i32,
        commit: bool,
    },
    /// A non-transactional send, waited for; with `acks_all` fsync'd.
    PlainSend {
        partition: i32,
        acks_all: bool,
    },
    /// `Partition::flush` of one partition of the topic.
    FlushPartition(i32),
    /// Reads and checks everything on the live store.
    Check,
    /// Closes the store cleanly and reopens it.
    Reopen,
    /// Power cut: reopens the store from a crash image of its file system.
    Crash(CrashImage),
    /// An EIO (or ENOSPC) at the `after`-th file-system operation from here, once. The
    /// operation that fails is followed by a power cut.
    Fault {
        after: u64,
        enospc: bool,
    },
}

fn op(faults: bool) -> BoxedStrategy<Op> {
    let fault = (0..40u64, any::<bool>()).prop_map(|(after, enospc)| Op::Fault { after, enospc });
    let base = base_op();
    if faults {
        prop_oneof![1 => fault, 10 => base].boxed()
    } else {
        base.boxed()
    }
}

fn base_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Begin),
        8 => (0..PARTITIONS).prop_map(Op::Send),
        2 => (0..GROUPS.len(), 0..INPUT_PARTITIONS, 0..=INPUT_RECORDS).prop_map(
            |(group, partition, offset)| Op::SendOffsets { group, partition, offset }
        ),
        3 => Just(Op::Commit),
        2 => Just(Op::Abort),
        1 => Just(Op::FlushTxnProducer),
        1 => Just(Op::Fence),
        1 => (any::<usize>(), 0..PARTITIONS, any::<bool>()).prop_map(
            |(which, partition, commit)| Op::Zombie { which, partition, commit }
        ),
        4 => (0..PARTITIONS, any::<bool>())
            .prop_map(|(partition, acks_all)| Op::PlainSend { partition, acks_all }),
        2 => (0..PARTITIONS).prop_map(Op::FlushPartition),
        1 => Just(Op::Check),
        1 => Just(Op::Reopen),
        2 => prop_oneof![
            Just(CrashImage::KeepAll),
            Just(CrashImage::DropAll),
            any::<u64>().prop_map(CrashImage::Random),
        ]
        .prop_map(Op::Crash),
    ]
}

/// A whole transaction of the current producer: begin, sends, maybe offsets, then a
/// commit, an abort, or nothing (left open). Generated as a unit so that sequences hold
/// many complete transactions, not only scattered calls.
fn transaction() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(0..PARTITIONS, 1..4),
        proptest::option::of((0..GROUPS.len(), 0..INPUT_PARTITIONS, 0..=INPUT_RECORDS)),
        0..4u8,
    )
        .prop_map(|(sends, offsets, end)| {
            let mut ops = vec![Op::Begin];
            ops.extend(sends.into_iter().map(Op::Send));
            if let Some((group, partition, offset)) = offsets {
                ops.push(Op::SendOffsets {
                    group,
                    partition,
                    offset,
                });
            }
            match end {
                0 | 1 => ops.push(Op::Commit),
                2 => ops.push(Op::Abort),
                _ => {}
            }
            ops
        })
}

/// Single calls (including ones out of order) and whole transactions; with `faults`,
/// injected faults among them.
fn ops(faults: bool) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            3 => op(faults).prop_map(|op| vec![op]),
            1 => transaction(),
        ],
        1..30,
    )
    .prop_map(|segments| segments.concat())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Open,
    Committed,
    Aborted,
    /// Its commit failed and a crash followed: the open decides (`Model::in_doubt`).
    InDoubt,
}

/// One data record appended to a partition, in append order.
#[derive(Debug, Clone)]
struct Entry {
    value: String,
    /// The transaction it belongs to (an index into `Model::txns`), `None` for a plain
    /// send.
    txn: Option<usize>,
}

#[derive(Debug, Default)]
struct PartModel {
    /// Every data record appended, in order (what read_uncommitted returns).
    entries: Vec<Entry>,
    /// `entries[..durable]` survive any crash.
    durable: usize,
}

/// The current transactional producer's open transaction.
#[derive(Debug)]
struct OpenTxn {
    id: usize,
    /// Records sent but still held by the producer (linger), per partition in order.
    held: Vec<(i32, String)>,
    /// Partitions the transaction sent to: a commit fsyncs them.
    partitions: BTreeSet<i32>,
    /// Offsets sent to it, in order: (group, input partition, offset).
    offsets: Vec<(usize, i32, i64)>,
}

#[derive(Debug, Default)]
struct Model {
    parts: Vec<PartModel>,
    txns: Vec<Fate>,
    open: Option<OpenTxn>,
    /// Committed offsets: (group, input partition) -> offset.
    offsets: BTreeMap<(usize, i32), i64>,
    /// The transaction whose commit failed, until the crash after it is checked.
    in_doubt: Option<OpenTxn>,
}

impl Model {
    fn new() -> Model {
        Model {
            parts: (0..PARTITIONS).map(|_| PartModel::default()).collect(),
            ..Model::default()
        }
    }

    fn append(&mut self, partition: i32, value: String, txn: Option<usize>) {
        self.parts[partition as usize]
            .entries
            .push(Entry { value, txn });
    }

    fn sync(&mut self, partition: i32) {
        let p = &mut self.parts[partition as usize];
        p.durable = p.entries.len();
    }

    /// Appends what the open transaction holds (a flush, commit or abort does).
    fn append_held(&mut self) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let id = open.id;
        for (p, v) in std::mem::take(&mut open.held) {
            self.append(p, v, Some(id));
        }
    }

    /// Ends the open transaction; its held records are appended first.
    fn end(&mut self, commit: bool) {
        self.append_held();
        let open = self.open.take().expect("an open transaction");
        if commit {
            self.txns[open.id] = Fate::Committed;
            for p in &open.partitions {
                self.sync(*p);
            }
            for (g, p, o) in open.offsets {
                self.offsets.insert((g, p), o);
            }
        } else {
            self.txns[open.id] = Fate::Aborted;
        }
    }

    /// The open transaction dropped without appending what it held (its producer was
    /// fenced, or the process died): aborted.
    fn drop_open(&mut self) {
        if let Some(open) = self.open.take() {
            self.txns[open.id] = Fate::Aborted;
        }
    }

    /// What read_committed returns from `entries`: committed and plain records up to
    /// the first record of an open transaction (the last stable offset).
    fn committed_view(&self, entries: &[Entry]) -> Vec<String> {
        let mut out = Vec::new();
        for e in entries {
            match e.txn.map(|t| self.txns[t]) {
                Some(Fate::Open | Fate::InDoubt) => break,
                Some(Fate::Aborted) => {}
                None | Some(Fate::Committed) => out.push(e.value.clone()),
            }
        }
        out
    }
}

/// The live store and its clients.
struct World {
    fs: SimFs,
    store: Store,
    /// Whether transactional producers hold records until flush/commit/abort.
    linger: bool,
    txn: Option<Producer>,
    zombies: Vec<Producer>,
    plain_leader: Producer,
    plain_all: Producer,
    next_value: u64,
    /// A fault is injected: the next operations may fail.
    armed: bool,
    /// The file-system operation the fault fails.
    fault_at: u64,
    /// The deliveries of the records the transactional producer holds (linger).
    held: Vec<DeliveryFuture>,
    /// Opens after a crash so far (which ones are interrupted depends on it).
    recoveries: u64,
}

/// An operation failed with a fault armed.
#[derive(Debug)]
struct Failure {
    error: Error,
    /// A commit failed: it is decided at the next open, either way.
    commit_in_doubt: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            commit_in_doubt: false,
        }
    }
}

type Step = Result<(), Failure>;

fn plain_producer(store: &Store, acks: Acks) -> streamlog::Result<Producer> {
    store.producer(ProducerConfig::default().linger_ms(0).acks(acks))
}

fn txn_producer(store: &Store, linger: bool) -> streamlog::Result<Producer> {
    let config = ProducerConfig::default()
        .transactional_id(TXN_ID)
        .batch_size(1 << 20)
        .linger_ms(if linger { LINGER_FOREVER_MS } else { 0 });
    let p = store.producer(config)?;
    p.init_transactions()?;
    Ok(p)
}

/// `r` must be a `TransactionState` error (with a fault armed, any error will do).
fn expect_state_error<T: std::fmt::Debug>(
    r: streamlog::Result<T>,
    armed: bool,
    what: &str,
) -> Step {
    match r {
        Err(Error::TransactionState { .. }) => Ok(()),
        Err(e) if armed => Err(e.into()),
        r => panic!("{what}: expected a TransactionState error, got {r:?}"),
    }
}

/// `r` must be `Fenced` (with a fault armed, any error will do).
fn expect_fenced<T: std::fmt::Debug>(r: streamlog::Result<T>, armed: bool, what: &str) -> Step {
    match r {
        Err(Error::Fenced { .. }) => Ok(()),
        Err(e) if armed => Err(e.into()),
        r => panic!("{what}: expected Fenced, got {r:?}"),
    }
}

impl World {
    fn new(linger: bool) -> World {
        let fs = SimFs::new();
        let store = sim_store(&fs).unwrap();
        store
            .create_topic(TOPIC, TopicConfig::default().partitions(PARTITIONS))
            .unwrap();
        store
            .create_topic(INPUT, TopicConfig::default().partitions(INPUT_PARTITIONS))
            .unwrap();
        for p in 0..INPUT_PARTITIONS {
            let part = store.topic(INPUT).unwrap().partition(p).unwrap();
            let records: Vec<Record> = (0..INPUT_RECORDS)
                .map(|i| Record::new(1_700_000_000_000, None::<&[u8]>, Some(format!("in{i}"))))
                .collect();
            part.append(&records).unwrap();
            part.flush().unwrap();
        }
        World {
            plain_leader: plain_producer(&store, Acks::Leader).unwrap(),
            plain_all: plain_producer(&store, Acks::All).unwrap(),
            fs,
            store,
            linger,
            txn: None,
            zombies: Vec::new(),
            next_value: 0,
            armed: false,
            fault_at: 0,
            held: Vec::new(),
            recoveries: 0,
        }
    }

    fn value(&mut self) -> String {
        self.next_value += 1;
        format!("v{}", self.next_value)
    }

    /// The current transactional producer, started (and initialized) if there is none.
    fn txn_producer(&mut self) -> streamlog::Result<&Producer> {
        if self.txn.is_none() {
            self.txn = Some(txn_producer(&self.store, self.linger)?);
        }
        Ok(self.txn.as_ref().unwrap())
    }

    /// Drops every client (the current producer first, so that a clean close aborts its
    /// transaction through it) and opens the store again on `fs`.
    fn reopen_on(&mut self, fs: SimFs, clean: bool) -> Step {
        if let Some(p) = self.txn.take()
            && clean
        {
            p.close()?;
            self.wait_held(false)?;
        }
        self.zombies.clear();
        self.held.clear();
        if clean {
            self.store.close()?;
        }
        self.fs = fs;
        self.store = sim_store(&self.fs)?;
        self.plain_leader = plain_producer(&self.store, Acks::Leader)?;
        self.plain_all = plain_producer(&self.store, Acks::All)?;
        Ok(())
    }

    /// Runs `op`. An error is a failure only with a fault armed (`Err`); otherwise the
    /// model says which calls must fail, and how.
    fn apply(&mut self, model: &mut Model, op: &Op) -> Step {
        let armed = self.armed;
        match *op {
            Op::Begin => {
                let in_txn = model.open.is_some();
                let r = self.txn_producer()?.begin_transaction();
                if in_txn {
                    expect_state_error(r, armed, "begin inside a transaction")?;
                } else {
                    r?;
                    model.txns.push(Fate::Open);
                    model.open = Some(OpenTxn {
                        id: model.txns.len() - 1,
                        held: Vec::new(),
                        partitions: BTreeSet::new(),
                        offsets: Vec::new(),
                    });
                }
            }
            Op::Send(partition) => {
                let value = self.value();
                let linger = self.linger;
                let r = self.txn_producer()?.send(
                    ProducerRecord::new(TOPIC)
                        .partition(partition)
                        .value(&value),
                );
                let Some(open) = model.open.as_mut() else {
                    return expect_state_error(r.map(|_| ()), armed, "send outside a transaction");
                };
                open.partitions.insert(partition);
                if linger {
                    self.held.push(r?);
                    open.held.push((partition, value));
                } else {
                    // Appended or not, it is the partition's last record in the model:
                    // a failure is followed by a crash, which keeps a prefix.
                    let id = open.id;
                    model.append(partition, value, Some(id));
                    let meta = r?.wait()?;
                    assert_eq!(meta.partition, partition);
                }
            }
            Op::SendOffsets {
                group,
                partition,
                offset,
            } => {
                let offsets = BTreeMap::from([(TopicPartition::new(INPUT, partition), offset)]);
                let r = self.txn_producer()?.send_offsets_to_transaction(
                    &offsets,
                    &ConsumerGroupMetadata::new(GROUPS[group]),
                );
                match model.open.as_mut() {
                    None => expect_state_error(r, armed, "send_offsets outside a transaction")?,
                    Some(open) => {
                        r?;
                        open.offsets.push((group, partition, offset));
                    }
                }
            }
            Op::Commit | Op::Abort => {
                let commit = matches!(op, Op::Commit);
                let p = self.txn_producer()?;
                let r = if commit {
                    p.commit_transaction()
                } else {
                    p.abort_transaction()
                };
                if model.open.is_none() {
                    expect_state_error(r, armed, "commit or abort outside a transaction")?;
                } else if let Err(error) = r {
                    // What the producer held may have been appended (in part).
                    model.append_held();
                    self.held.clear();
                    return Err(Failure {
                        error,
                        commit_in_doubt: commit,
                    });
                } else {
                    model.end(commit);
                    // A commit returns Ok only once every record is appended; an abort
                    // also after a failed append (the records are aborted anyway): the
                    // record may then be missing, a crash follows.
                    self.wait_held(commit)?;
                }
            }
            Op::FlushTxnProducer => {
                if let Some(p) = &self.txn {
                    // Appended or not, in part, held records are each partition's last.
                    let r = p.flush();
                    model.append_held();
                    r?;
                    self.wait_held(false)?;
                }
            }
            Op::Fence => {
                // What the old producer held is never appended: its epoch is fenced (or
                // the fault made the fencing fail and a crash follows, which aborts it).
                model.drop_open();
                self.held.clear();
                let new = txn_producer(&self.store, self.linger)?;
                if let Some(old) = self.txn.replace(new) {
                    self.zombies.push(old);
                }
            }
            Op::Zombie {
                which,
                partition,
                commit,
            } => {
                if self.zombies.is_empty() {
                    return Ok(());
                }
                let value = format!("zombie-{}", self.value());
                let z = &self.zombies[which % self.zombies.len()];
                // Local (no coordinator): Ok, or refused for what the zombie knows.
                match z.begin_transaction() {
                    Ok(()) | Err(Error::Fenced { .. } | Error::TransactionState { .. }) => {}
                    Err(e) if armed => return Err(e.into()),
                    Err(e) => panic!("a fenced producer's begin: {e:?}"),
                }
                match z.send(ProducerRecord::new(TOPIC).partition(partition).value(value)) {
                    Err(Error::Fenced { .. }) => {}
                    Err(e) if armed => return Err(e.into()),
                    Err(e) => panic!("a fenced producer's send: {e:?}"),
                    Ok(delivery) => {
                        let flushed = z.flush();
                        let r = delivery.wait();
                        assert!(r.is_err(), "a fenced producer's record was appended: {r:?}");
                        if armed {
                            flushed?;
                        } else {
                            flushed.unwrap();
                        }
                    }
                }
                let r = if commit {
                    z.commit_transaction()
                } else {
                    z.abort_transaction()
                };
                expect_fenced(r, armed, "a fenced producer ending its transaction")?;
            }
            Op::PlainSend {
                partition,
                acks_all,
            } => {
                let value = self.value();
                let p = if acks_all {
                    &self.plain_all
                } else {
                    &self.plain_leader
                };
                let sent = p.send(
                    ProducerRecord::new(TOPIC)
                        .partition(partition)
                        .value(&value),
                );
                // Appended or not, it is the partition's last record in the model.
                model.append(partition, value, None);
                let meta = sent?.wait()?;
                assert_eq!(meta.partition, partition);
                if acks_all {
                    model.sync(partition);
                }
            }
            Op::FlushPartition(partition) => {
                let part = self
                    .store
                    .topic(TOPIC)
                    .and_then(|t| t.partition(partition))?;
                part.flush()?;
                model.sync(partition);
            }
            Op::Check => check_live(&self.store, model, "check")?,
            Op::Reopen => {
                // The producer's close appends what it held and aborts its transaction.
                if model.open.is_some() {
                    model.end(false);
                }
                let fs = self.fs.clone();
                self.reopen_on(fs, true)?;
                for p in 0..PARTITIONS {
                    model.sync(p);
                }
                check_live(&self.store, model, "after a clean reopen")?;
            }
            Op::Crash(mode) => self.crash(model, mode, false),
            // One fault at a time: a second would lose track of where the first strikes.
            Op::Fault { .. } if self.armed => {}
            Op::Fault { after, enospc } => {
                let kind = if enospc { Fault::Enospc } else { Fault::Eio };
                self.fault_at = self.fs.op_count() + 1 + after;
                self.fs.inject(kind, self.fault_at, false);
                self.armed = true;
            }
        }
        Ok(())
    }

    /// Waits for the held records' deliveries once the producer appended them: each must
    /// succeed (`must`), or with a fault armed may fail.
    fn wait_held(&mut self, must: bool) -> Step {
        let mut first_error = None;
        for d in self.held.drain(..) {
            match d.wait() {
                Ok(_) => {}
                Err(e) if self.armed && !must => {
                    first_error.get_or_insert(e);
                }
                Err(e) => panic!("the delivery of a record the producer held: {e:?}"),
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Power cut: the store reopens from a crash image of its file system. The open
    /// transaction ends aborted, or either way if its commit failed (`commit_in_doubt`).
    fn crash(&mut self, model: &mut Model, mode: CrashImage, commit_in_doubt: bool) {
        let image = self.fs.crash_image(mode);
        self.armed = false;
        let image = self.interrupt_recovery(image);
        self.reopen_on(image, false)
            .unwrap_or_else(|e| panic!("the store does not open after a crash ({mode:?}): {e:?}"));
        if commit_in_doubt {
            let open = model.open.take().expect("a transaction was committing");
            model.txns[open.id] = Fate::InDoubt;
            model.in_doubt = Some(open);
        } else {
            model.drop_open();
        }
        check_after_crash(&self.store, model, &format!("after a crash ({mode:?})"));
    }

    /// One recovery in two is interrupted first (I5: recovering twice is recovering
    /// once): a power cut after some of its file operations, or an EIO in it, after
    /// which the process dies. Returns what the next open runs on.
    fn interrupt_recovery(&mut self, fs: SimFs) -> SimFs {
        self.recoveries += 1;
        // splitmix64 of the run's state: the same sequence interrupts the same opens.
        let mut r = self.next_value ^ (self.recoveries << 32) ^ 0x9E37_79B9_7F4A_7C15;
        r = (r ^ (r >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        r = (r ^ (r >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        r ^= r >> 31;
        let at = (r >> 8) % 160;
        let power_cut = match r % 4 {
            0 => {
                fs.crash_after(fs.mutating_op_count() + at);
                true
            }
            1 => {
                fs.inject(Fault::Eio, fs.op_count() + 1 + at, false);
                false
            }
            _ => return fs,
        };
        let failed_syncs = fs.failed_sync_count();
        if let Ok(store) = sim_store(&fs) {
            if fs.failed_sync_count() > failed_syncs {
                assert!(
                    any_poisoned(&store),
                    "an open returned a store although one of its fsyncs failed, and no \
                     partition is poisoned"
                );
            }
            // A dead process runs nothing more, not even its close.
            std::mem::forget(store);
        }
        fs.clear_faults();
        fs.process_crash();
        if power_cut {
            fs.crash_image(CrashImage::Random(r >> 16))
        } else {
            fs
        }
    }

    /// An operation failed: a fault must be armed. Then the machine loses power.
    fn failed(&mut self, model: &mut Model, op: &Op, failure: Failure) {
        assert!(
            self.armed,
            "{op:?} failed with no fault injected: {:?}",
            failure.error
        );
        self.power_cut_after_fault(model, failure.commit_in_doubt);
    }

    /// An operation returned Ok although the fault struck during it: the model is
    /// exact, but the live store may lag it (a COMMIT marker that failed after the
    /// decision was durable is written by the next open; the partition stopped taking
    /// writes). A power cut then checks that what was acknowledged is durable.
    fn after_ok(&mut self, model: &mut Model) {
        if self.armed && self.fs.op_count() >= self.fault_at {
            self.power_cut_after_fault(model, false);
        }
    }

    fn power_cut_after_fault(&mut self, model: &mut Model, commit_in_doubt: bool) {
        self.fs.clear_faults();
        let seed = self.next_value.wrapping_mul(0x9E37_79B9) + 1;
        self.crash(model, CrashImage::Random(seed), commit_in_doubt);
    }
}

/// Whether a failed fsync poisoned any partition of the store, internal topics included.
fn any_poisoned(store: &Store) -> bool {
    let mut topics = store.list_topics();
    topics.extend(["__consumer_offsets", "__transaction_state"].map(String::from));
    topics.iter().any(|name| {
        let Ok(topic) = store.topic(name) else {
            return false;
        };
        (0..topic.partition_count()).any(|p| {
            topic
                .partition(p)
                .is_ok_and(|part| part.poison_reason().is_some())
        })
    })
}

/// Every data record of each partition of the topic as a consumer with `isolation` reads
/// it from the start, up to its end offset (the last stable offset for read_committed).
fn read(store: &Store, isolation: IsolationLevel) -> streamlog::Result<Vec<Vec<String>>> {
    let mut c: Consumer = store.consumer(
        ConsumerConfig::new("model-reader")
            .isolation_level(isolation)
            .auto_offset_reset(OffsetReset::Earliest)
            .enable_auto_commit(false),
    )?;
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    c.assign(&tps)?;
    let ends = c.end_offsets(&tps)?;
    let mut out = vec![Vec::new(); PARTITIONS as usize];
    let mut idle = 0;
    loop {
        let mut done = true;
        for tp in &tps {
            done &= c.position(tp)? >= ends[tp];
        }
        if done {
            break;
        }
        let recs = c.poll(Duration::ZERO)?;
        idle = if recs.is_empty() { idle + 1 } else { 0 };
        assert!(
            idle < 100,
            "{isolation:?}: polls return nothing before the end offsets"
        );
        for r in recs.iter() {
            assert_eq!(r.topic(), TOPIC);
            let value = r.value().expect("every data record has a value");
            out[r.partition() as usize].push(String::from_utf8(value.to_vec()).unwrap());
        }
    }
    Ok(out)
}

/// The groups' committed offsets of the input partitions.
fn committed_offsets(store: &Store) -> streamlog::Result<BTreeMap<(usize, i32), i64>> {
    let tps: Vec<TopicPartition> = (0..INPUT_PARTITIONS)
        .map(|p| TopicPartition::new(INPUT, p))
        .collect();
    let mut out = BTreeMap::new();
    for (g, group) in GROUPS.iter().enumerate() {
        let c = store.consumer(ConsumerConfig::new(*group))?;
        for (tp, offset) in c.committed(&tps)? {
            if let Some(offset) = offset {
                out.insert((g, tp.partition()), offset);
            }
        }
    }
    Ok(out)
}

/// On a store that has not crashed since the model was exact: everything is as the
/// model says. `Err` only if a read fails.
fn check_live(store: &Store, model: &Model, when: &str) -> streamlog::Result<()> {
    let committed = read(store, IsolationLevel::ReadCommitted)?;
    let uncommitted = read(store, IsolationLevel::ReadUncommitted)?;
    for (p, part) in model.parts.iter().enumerate() {
        let values: Vec<String> = part.entries.iter().map(|e| e.value.clone()).collect();
        assert_eq!(
            uncommitted[p], values,
            "{when}: read_uncommitted of {TOPIC}-{p}"
        );
    }
    let offsets = committed_offsets(store)?;
    check_committed(model, &committed, &offsets, when);
    Ok(())
}

/// read_committed (`committed`, per partition) and the groups' offsets are the model's.
fn check_committed(
    model: &Model,
    committed: &[Vec<String>],
    offsets: &BTreeMap<(usize, i32), i64>,
    when: &str,
) {
    for (p, part) in model.parts.iter().enumerate() {
        assert_eq!(
            committed[p],
            model.committed_view(&part.entries),
            "{when}: read_committed of {TOPIC}-{p}"
        );
    }
    assert_eq!(*offsets, model.offsets, "{when}: committed offsets");
}

/// After a crash: each partition holds a prefix of what was appended, at least its
/// durable part, and read_committed sees exactly the committed records of that prefix
/// (the transactions open at the crash were aborted). A transaction whose commit failed
/// before the crash ended committed, all its records there and its offsets committed,
/// or aborted. The model then becomes what survived.
fn check_after_crash(store: &Store, model: &mut Model, when: &str) {
    let readable = |e: Error| format!("{when}: the recovered store cannot be read: {e}");
    let committed =
        read(store, IsolationLevel::ReadCommitted).unwrap_or_else(|e| panic!("{}", readable(e)));
    let uncommitted =
        read(store, IsolationLevel::ReadUncommitted).unwrap_or_else(|e| panic!("{}", readable(e)));
    let offsets = committed_offsets(store).unwrap_or_else(|e| panic!("{}", readable(e)));
    let in_doubt = model.in_doubt.take();
    let mut in_doubt_lost = false;
    for (p, part) in model.parts.iter_mut().enumerate() {
        let kept = uncommitted[p].len();
        assert!(
            kept >= part.durable && kept <= part.entries.len(),
            "{when}: {TOPIC}-{p} holds {kept} records; {} were durable, {} appended",
            part.durable,
            part.entries.len()
        );
        let values: Vec<&str> = part.entries[..kept]
            .iter()
            .map(|e| e.value.as_str())
            .collect();
        assert_eq!(
            uncommitted[p], values,
            "{when}: {TOPIC}-{p} is not a prefix"
        );
        in_doubt_lost |= in_doubt
            .as_ref()
            .is_some_and(|t| part.entries[kept..].iter().any(|e| e.txn == Some(t.id)));
        part.entries.truncate(kept);
        part.durable = kept;
    }
    if let Some(t) = in_doubt {
        // Committed if that is what the store shows and none of its records is missing
        // (they are fsync'd before the decision); else it must show aborted (checked
        // below).
        let mut as_committed = model.offsets.clone();
        as_committed.extend(t.offsets.iter().map(|&(g, p, o)| ((g, p), o)));
        model.txns[t.id] = Fate::Committed;
        let shows_committed = !in_doubt_lost
            && offsets == as_committed
            && model
                .parts
                .iter()
                .enumerate()
                .all(|(p, part)| committed[p] == model.committed_view(&part.entries));
        if shows_committed {
            model.offsets = as_committed;
        } else {
            model.txns[t.id] = Fate::Aborted;
        }
    }
    check_committed(model, &committed, &offsets, when);
}

fn run(linger: bool, ops: &[Op]) {
    let mut world = World::new(linger);
    let mut model = Model::new();
    for op in ops {
        match world.apply(&mut model, op) {
            Ok(()) => world.after_ok(&mut model),
            Err(failure) => world.failed(&mut model, op, failure),
        }
    }
    if world.armed {
        world.fs.clear_faults();
        world.crash(&mut model, CrashImage::DropAll, false);
    }
    check_live(&world.store, &model, "at the end").unwrap();
    world.apply(&mut model, &Op::Reopen).unwrap();
}

proptest! {
    // 48 cases take a few seconds; PROPTEST_CASES=5000 searches further.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn read_committed_matches_the_model(
        linger in any::<bool>(),
        ops in ops(false),
    ) {
        run(linger, &ops);
    }

    /// The same with faults: an operation that fails is followed by a power cut, after
    /// which the store must hold what was durable, and a commit that failed must have
    /// ended whole, committed or aborted.
    #[test]
    fn read_committed_matches_the_model_with_faults(
        linger in any::<bool>(),
        ops in ops(true),
    ) {
        run(linger, &ops);
    }
}

/// Found by this model: transactions whose state records in `__transaction_state` were
/// never fsync'd (an abort, and the open transaction after it), with their data made
/// durable by a flush of the partition. After a crash that dropped those records, the
/// coordinator handed the next producer an epoch the partition already held data of,
/// with the same sequences: its first batch was taken for a duplicate and never
/// appended, although its send and the commit returned Ok.
#[test]
fn after_a_crash_the_next_epoch_is_past_every_epoch_a_partition_holds() {
    use Op::*;
    // The third transaction is open at the crash.
    run(
        false,
        &[
            Begin,
            Send(0),
            Commit,
            Begin,
            Send(0),
            Abort,
            Begin,
            Send(0),
            FlushPartition(0),
            Crash(CrashImage::DropAll),
            Begin,
            Send(0),
            Commit,
            Check,
        ],
    );
    // Found by the generator (shrunk): no flush, a crash image that kept the partitions'
    // unsynced data and lost the transaction log's unsynced records.
    run(
        false,
        &[
            Begin,
            Send(0),
            Send(1),
            Commit,
            Begin,
            Send(0),
            Abort,
            Begin,
            Send(1),
            SendOffsets {
                group: 0,
                partition: 0,
                offset: 0,
            },
            Abort,
            Crash(CrashImage::Random(667085908542432513)),
            Begin,
            Send(1),
            Commit,
            Check,
        ],
    );
    // The third transaction aborted, its marker durable with the data.
    run(
        false,
        &[
            Begin,
            Send(1),
            Commit,
            Begin,
            Send(1),
            Abort,
            Begin,
            Send(1),
            Abort,
            FlushPartition(1),
            Crash(CrashImage::DropAll),
            Begin,
            Send(1),
            Commit,
            Check,
        ],
    );
}
