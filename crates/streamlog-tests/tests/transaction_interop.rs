//! What transactions leave on disk, read by decoders that share no code with streamlog
//! (issue 14, item 7): the segments of a store written by transactional producers (two
//! transactional ids, one fenced by a second producer, offsets in a transaction, a plain
//! idempotent producer in between, a transaction left open at close) decode with the
//! `kafka-protocol` crate to the same batches our decoder reads, and match what the test
//! did: producer ids, epochs (one per transaction), sequences, the transactional flag,
//! and COMMIT/ABORT control batches with their coordinator epoch. The `.snapshot` and
//! `.txnindex` files are decoded by a decoder written here from KAFKA-FORMAT.md
//! section 7 (with its own CRC-32C) and compared with Kafka's producer-state rules
//! applied to the batches kafka-protocol decoded.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{self as kp, RecordBatchDecoder};
use streamlog::format::{Compression, batches};
use streamlog::{
    ConsumerGroupMetadata, Error, Producer, ProducerConfig, ProducerRecord, Store, StoreConfig,
    TopicConfig, TopicPartition,
};

/// Kafka's control record types (KAFKA-FORMAT.md section 1).
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

/// One batch of a segment as kafka-protocol decodes it.
#[derive(Debug, Clone)]
struct KpBatch {
    base_offset: i64,
    last_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    compression: kp::Compression,
    max_timestamp: i64,
    /// The data records' values.
    values: Vec<String>,
    /// A control batch's marker: (type, coordinator epoch).
    marker: Option<(i16, i32)>,
}

/// Every batch of a segment file, decoded by kafka-protocol, cross-checked field by field
/// with our own decoder.
fn kp_batches(segment: &[u8]) -> Vec<KpBatch> {
    let bytes = Bytes::copy_from_slice(segment);
    let infos = RecordBatchDecoder::decode_batch_info(&mut bytes.clone())
        .unwrap_or_else(|e| panic!("kafka-protocol rejected a batch header: {e:#}"));
    let sets = RecordBatchDecoder::decode_all(&mut bytes.clone())
        .unwrap_or_else(|e| panic!("kafka-protocol rejected a batch: {e:#}"));
    assert_eq!(infos.len(), sets.len());
    let ours: Vec<_> = batches(bytes)
        .map(|b| b.expect("our decoder reads the segment").1)
        .collect();
    assert_eq!(
        ours.len(),
        sets.len(),
        "both decoders find the same batches"
    );
    let mut out = Vec::new();
    for ((info, set), our) in infos.iter().zip(&sets).zip(&ours) {
        assert_eq!(set.version, 2);
        let records = &set.records;
        assert_eq!(records.len(), info.record_count as usize);
        let last = records.last().expect("no empty batches before compaction");
        let marker = info.control.then(|| {
            let [r] = &records[..] else {
                panic!("a control batch holds one record: {records:?}")
            };
            let key = r.key.as_deref().expect("a control record has a key");
            let value = r.value.as_deref().expect("a marker has a value");
            assert_eq!(key.len(), 4, "key: version, type");
            assert_eq!(i16::from_be_bytes([key[0], key[1]]), 0, "key version");
            assert_eq!(value.len(), 6, "value: version, coordinator epoch");
            assert_eq!(i16::from_be_bytes([value[0], value[1]]), 0, "value version");
            (
                i16::from_be_bytes([key[2], key[3]]),
                i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
            )
        });
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.offset,
                info.min_offset + i as i64,
                "offsets are contiguous"
            );
            assert_eq!(r.producer_id, info.producer_id);
            assert_eq!(r.producer_epoch, info.producer_epoch);
            assert_eq!(
                (r.transactional, r.control),
                (info.transactional, info.control)
            );
            if info.base_sequence >= 0 {
                assert_eq!(r.sequence, info.base_sequence + i as i32);
            }
        }
        let b = KpBatch {
            base_offset: info.min_offset,
            last_offset: last.offset,
            producer_id: info.producer_id,
            producer_epoch: info.producer_epoch,
            base_sequence: info.base_sequence,
            transactional: info.transactional,
            control: info.control,
            compression: info.compression,
            max_timestamp: records.iter().map(|r| r.timestamp).max().unwrap(),
            values: if info.control {
                Vec::new()
            } else {
                records
                    .iter()
                    .map(|r| {
                        String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                    })
                    .collect()
            },
            marker,
        };
        // Our decoder reads the same header.
        let h = our.header();
        assert_eq!(h.base_offset, b.base_offset);
        assert_eq!(h.last_offset(), b.last_offset);
        assert_eq!(
            (h.producer_id, h.producer_epoch),
            (b.producer_id, b.producer_epoch)
        );
        assert_eq!(h.base_sequence, b.base_sequence);
        assert_eq!(h.is_transactional(), b.transactional);
        assert_eq!(h.is_control(), b.control);
        assert_eq!(h.max_timestamp, b.max_timestamp);
        if let Some((kind, epoch)) = b.marker {
            let c = our.control_record().unwrap().unwrap();
            assert_eq!(c.coordinator_epoch, Some(epoch));
            let want = if kind == COMMIT {
                streamlog::format::ControlRecordType::Commit
            } else {
                streamlog::format::ControlRecordType::Abort
            };
            assert_eq!(c.kind, want);
        }
        out.push(b);
    }
    out
}

/// Every batch of a partition directory, in offset order (its `.log` files by name).
fn partition_batches(dir: &Path) -> Vec<KpBatch> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(!logs.is_empty(), "no segment in {}", dir.display());
    logs.iter()
        .flat_map(|p| kp_batches(&std::fs::read(p).unwrap()))
        .collect()
}

// ---- An independent decoder of `.snapshot` and `.txnindex` (KAFKA-FORMAT.md 7) ----

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Big-endian fields read one after another.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let out = self.data[self.at..self.at + N].try_into().unwrap();
        self.at += N;
        out
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

/// One 46-byte producer entry of a `.snapshot` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SnapshotEntry {
    producer_id: i64,
    epoch: i16,
    last_sequence: i32,
    last_offset: i64,
    offset_delta: i32,
    timestamp: i64,
    coordinator_epoch: i32,
    current_txn_first_offset: i64,
}

/// A `.snapshot` file: i16 version 1, u32 CRC-32C of [6, end), i32 count, entries.
fn decode_snapshot(data: &[u8]) -> Vec<SnapshotEntry> {
    let mut r = Reader { data, at: 0 };
    assert_eq!(r.i16(), 1, "snapshot version");
    let crc = r.u32();
    assert_eq!(crc, crc32c(&data[6..]), "snapshot CRC-32C over [6, end)");
    let count = r.i32();
    assert_eq!(data.len(), 10 + 46 * count as usize, "46-byte entries");
    (0..count)
        .map(|_| SnapshotEntry {
            producer_id: r.i64(),
            epoch: r.i16(),
            last_sequence: r.i32(),
            last_offset: r.i64(),
            offset_delta: r.i32(),
            timestamp: r.i64(),
            coordinator_epoch: r.i32(),
            current_txn_first_offset: r.i64(),
        })
        .collect()
}

/// One 34-byte `.txnindex` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TxnIndexEntry {
    producer_id: i64,
    first_offset: i64,
    last_offset: i64,
    last_stable_offset: i64,
}

fn decode_txn_index(data: &[u8]) -> Vec<TxnIndexEntry> {
    assert_eq!(data.len() % 34, 0, "34-byte entries, no preallocation");
    let mut r = Reader { data, at: 0 };
    (0..data.len() / 34)
        .map(|_| {
            assert_eq!(r.i16(), 0, "txnindex entry version");
            TxnIndexEntry {
                producer_id: r.i64(),
                first_offset: r.i64(),
                last_offset: r.i64(),
                last_stable_offset: r.i64(),
            }
        })
        .collect()
}

/// Kafka's producer-state rules (KAFKA-FORMAT.md section 7) applied to a partition's
/// batches from the start: the producer entries a snapshot at its end holds, and the
/// aborted transactions its `.txnindex` files list.
fn kafka_producer_state(batches: &[KpBatch]) -> (Vec<SnapshotEntry>, Vec<TxnIndexEntry>) {
    let mut producers: BTreeMap<i64, SnapshotEntry> = BTreeMap::new();
    let mut aborted = Vec::new();
    for b in batches.iter().filter(|b| b.producer_id >= 0) {
        let e = producers
            .entry(b.producer_id)
            .or_insert_with(|| SnapshotEntry {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                last_sequence: -1,
                last_offset: -1,
                offset_delta: 0,
                timestamp: -1,
                coordinator_epoch: -1,
                current_txn_first_offset: -1,
            });
        if b.producer_epoch != e.epoch {
            // A new epoch forgets the old one's batches.
            e.epoch = b.producer_epoch;
            (e.last_sequence, e.last_offset, e.offset_delta, e.timestamp) = (-1, -1, 0, -1);
        }
        match b.marker {
            None => {
                let delta = (b.last_offset - b.base_offset) as i32;
                e.last_sequence = b.base_sequence + delta;
                e.last_offset = b.last_offset;
                e.offset_delta = delta;
                e.timestamp = b.max_timestamp;
                if b.transactional && e.current_txn_first_offset < 0 {
                    e.current_txn_first_offset = b.base_offset;
                }
            }
            Some((kind, coordinator_epoch)) => {
                e.coordinator_epoch = coordinator_epoch;
                // A marker refreshes its producer's time (Kafka's `appendEndTxnMarker`
                // sets `lastTimestamp`; streamlog never lowers it), which the snapshot
                // stores.
                e.timestamp = e.timestamp.max(b.max_timestamp);
                let first = std::mem::replace(&mut e.current_txn_first_offset, -1);
                if kind == ABORT && first >= 0 {
                    let lso = producers
                        .values()
                        .filter(|o| o.producer_id != b.producer_id)
                        .map(|o| o.current_txn_first_offset)
                        .filter(|&f| f >= 0)
                        .min()
                        .unwrap_or(b.base_offset + 1);
                    aborted.push(TxnIndexEntry {
                        producer_id: b.producer_id,
                        first_offset: first,
                        last_offset: b.base_offset,
                        last_stable_offset: lso,
                    });
                }
            }
        }
    }
    (producers.into_values().collect(), aborted)
}

// ---- The workload and what the test knows about it ----

/// Who wrote a batch, as the test knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Transaction number `n` (in the order they began) of a transactional id.
    Txn(&'static str, usize),
    Plain,
}

/// What the test expects in a partition, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Data(Writer, Vec<String>),
    /// The marker that ended transaction `n` of an id, COMMIT or ABORT.
    Marker(&'static str, usize, i16),
}

struct Ledger {
    parts: BTreeMap<i32, Vec<Expected>>,
    /// Partitions each transaction wrote to.
    txn_partitions: BTreeMap<(&'static str, usize), Vec<i32>>,
}

impl Ledger {
    fn data(&mut self, partition: i32, writer: Writer, values: &[&str]) {
        self.parts
            .entry(partition)
            .or_default()
            .push(Expected::Data(
                writer,
                values.iter().map(|v| v.to_string()).collect(),
            ));
        if let Writer::Txn(id, n) = writer {
            let ps = self.txn_partitions.entry((id, n)).or_default();
            if !ps.contains(&partition) {
                ps.push(partition);
            }
        }
    }

    fn end(&mut self, id: &'static str, n: usize, kind: i16) {
        for p in self.txn_partitions[&(id, n)].clone() {
            self.parts
                .entry(p)
                .or_default()
                .push(Expected::Marker(id, n, kind));
        }
    }
}

fn txn_producer(store: &Store, id: &str, codec: Compression) -> Producer {
    let p = store
        .producer(
            ProducerConfig::default()
                .transactional_id(id)
                .linger_ms(0)
                .compression(codec),
        )
        .unwrap();
    p.init_transactions().unwrap();
    p
}

/// Sends `values` to `partition` as one batch (appended when the call returns).
fn send(p: &Producer, partition: i32, values: &[&str]) {
    let records: Vec<ProducerRecord<'_>> = values
        .iter()
        .map(|v| ProducerRecord::new("t").partition(partition).value(*v))
        .collect();
    p.send_batch(&records).unwrap().wait().unwrap();
}

/// A value that compresses, so compressed batches are written compressed.
fn text(name: &str) -> String {
    format!("{name}: {}", "the same words again ".repeat(8))
}

/// Runs the workload in `dir` and closes the store; returns what the test expects.
fn workload(dir: &Path, codec: Compression) -> Ledger {
    let mut ledger = Ledger {
        parts: BTreeMap::new(),
        txn_partitions: BTreeMap::new(),
    };
    let store =
        Store::open_with(dir, StoreConfig::default().background_maintenance(false)).unwrap();
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let a = txn_producer(&store, "app", codec);
    let other = txn_producer(&store, "other", Compression::None);
    let plain = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    let [
        a1,
        a2,
        a3,
        a4,
        b1,
        b2,
        c1,
        c2,
        o1,
        d1,
        d2,
        e1,
        f1,
        h1,
        h2,
        i1,
    ] = [
        "a1", "a2", "a3", "a4", "b1", "b2", "c1", "c2", "o1", "d1", "d2", "e1", "f1", "h1", "h2",
        "i1",
    ]
    .map(text);

    // app 0: two batches to partition 0 (sequences go on), one to partition 1; commit.
    a.begin_transaction().unwrap();
    send(&a, 0, &[&a1, &a2, &a3]);
    send(&a, 0, &[&a4]);
    send(&a, 1, &[&b1, &b2]);
    ledger.data(0, Writer::Txn("app", 0), &[&a1, &a2, &a3]);
    ledger.data(0, Writer::Txn("app", 0), &[&a4]);
    ledger.data(1, Writer::Txn("app", 0), &[&b1, &b2]);
    a.commit_transaction().unwrap();
    ledger.end("app", 0, COMMIT);

    // other 0 opens in partition 0; app 1 aborts while it is open (the .txnindex entry's
    // last stable offset is other's first offset); then other commits.
    other.begin_transaction().unwrap();
    send(&other, 0, &[&o1]);
    ledger.data(0, Writer::Txn("other", 0), &[&o1]);
    a.begin_transaction().unwrap();
    send(&a, 0, &[&c1, &c2]);
    ledger.data(0, Writer::Txn("app", 1), &[&c1, &c2]);
    a.abort_transaction().unwrap();
    ledger.end("app", 1, ABORT);
    other.commit_transaction().unwrap();
    ledger.end("other", 0, COMMIT);

    // A plain idempotent producer: not transactional, its own producer id.
    for v in [&d1, &d2] {
        plain
            .send(ProducerRecord::new("t").partition(1).value(v.as_str()))
            .unwrap()
            .wait()
            .unwrap();
        ledger.data(1, Writer::Plain, &[v]);
    }

    // app 2: a record and the offsets of a group; commit.
    a.begin_transaction().unwrap();
    send(&a, 1, &[&e1]);
    ledger.data(1, Writer::Txn("app", 2), &[&e1]);
    a.send_offsets_to_transaction(
        &BTreeMap::from([(TopicPartition::new("t", 0), 3)]),
        &ConsumerGroupMetadata::new("g"),
    )
    .unwrap();
    a.commit_transaction().unwrap();
    ledger.end("app", 2, COMMIT);

    // app 3 is open when a second producer with the same id starts: it is aborted (under
    // a newer epoch) and the first producer is fenced.
    a.begin_transaction().unwrap();
    send(&a, 0, &[&f1]);
    ledger.data(0, Writer::Txn("app", 3), &[&f1]);
    let b = txn_producer(&store, "app", codec);
    ledger.end("app", 3, ABORT);
    assert!(matches!(a.commit_transaction(), Err(Error::Fenced { .. })));

    // app 4 (the new producer) commits; app 5 is open at close, which aborts it.
    b.begin_transaction().unwrap();
    send(&b, 0, &[&h1, &h2]);
    ledger.data(0, Writer::Txn("app", 4), &[&h1, &h2]);
    b.commit_transaction().unwrap();
    ledger.end("app", 4, COMMIT);
    b.begin_transaction().unwrap();
    send(&b, 1, &[&i1]);
    ledger.data(1, Writer::Txn("app", 5), &[&i1]);
    store.close().unwrap();
    ledger.end("app", 5, ABORT);
    ledger
}

/// Producer ids and epochs as they were found, checked for consistency as they are.
#[derive(Default)]
struct Identities {
    producer_ids: BTreeMap<&'static str, i64>,
    plain_id: Option<i64>,
    /// The epoch of each transaction's data.
    data_epochs: BTreeMap<(&'static str, usize), i16>,
    /// The epoch of each transaction's markers.
    marker_epochs: BTreeMap<(&'static str, usize), i16>,
}

impl Identities {
    fn producer_id(&mut self, id: &'static str, found: i64) {
        let known = *self.producer_ids.entry(id).or_insert(found);
        assert_eq!(
            found, known,
            "every batch of `{id}` carries its producer id"
        );
    }

    fn epoch(map: &mut BTreeMap<(&'static str, usize), i16>, key: (&'static str, usize), e: i16) {
        let known = *map.entry(key).or_insert(e);
        assert_eq!(e, known, "{key:?}: one epoch in every partition");
    }
}

#[test]
fn transactional_batches_markers_snapshots_and_txnindex_read_as_kafka_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let codec = if Compression::Lz4.is_available() {
        Compression::Lz4
    } else {
        Compression::None
    };
    let ledger = workload(tmp.path(), codec);
    let mut ids = Identities::default();

    for (&partition, expected) in &ledger.parts {
        let dir = tmp.path().join(format!("t-{partition}"));
        let found = partition_batches(&dir);
        assert_eq!(
            found.len(),
            expected.len(),
            "t-{partition}: {found:#?}\nexpected {expected:#?}"
        );
        // Sequences per (producer id, epoch): from 0, each batch after the one before.
        let mut next_sequence: BTreeMap<(i64, i16), i32> = BTreeMap::new();
        for (b, want) in found.iter().zip(expected) {
            let at = format!("t-{partition} offset {}", b.base_offset);
            match want {
                Expected::Data(writer, values) => {
                    assert!(!b.control, "{at}");
                    assert_eq!(&b.values, values, "{at}");
                    let seq = next_sequence
                        .entry((b.producer_id, b.producer_epoch))
                        .or_insert(0);
                    assert_eq!(b.base_sequence, *seq, "{at}: base sequence");
                    *seq += values.len() as i32;
                    match *writer {
                        Writer::Txn(id, n) => {
                            assert!(b.transactional, "{at}");
                            ids.producer_id(id, b.producer_id);
                            Identities::epoch(&mut ids.data_epochs, (id, n), b.producer_epoch);
                            let kp_codec = if id == "app" {
                                codec
                            } else {
                                Compression::None
                            };
                            assert_eq!(
                                b.compression,
                                match kp_codec {
                                    Compression::Lz4 => kp::Compression::Lz4,
                                    _ => kp::Compression::None,
                                },
                                "{at}"
                            );
                        }
                        Writer::Plain => {
                            assert!(!b.transactional, "{at}");
                            let known = *ids.plain_id.get_or_insert(b.producer_id);
                            assert_eq!(b.producer_id, known, "{at}");
                            assert!(b.producer_id >= 0 && b.producer_epoch >= 0, "{at}");
                        }
                    }
                }
                Expected::Marker(id, n, kind) => {
                    assert!(b.control && b.transactional, "{at}: a control batch");
                    assert_eq!(b.compression, kp::Compression::None, "{at}");
                    assert_eq!(b.base_sequence, -1, "{at}");
                    assert_eq!(b.last_offset, b.base_offset, "{at}");
                    // One coordinator: its epoch is 0.
                    assert_eq!(b.marker, Some((*kind, 0)), "{at}");
                    ids.producer_id(id, b.producer_id);
                    Identities::epoch(&mut ids.marker_epochs, (id, *n), b.producer_epoch);
                }
            }
        }
    }

    // Producer ids: one per transactional id, another for the plain producer.
    let (app, other) = (ids.producer_ids["app"], ids.producer_ids["other"]);
    let plain = ids.plain_id.unwrap();
    assert!(app != other && app != plain && other != plain);
    // Epochs: each transaction of an id under its own, rising; markers under the
    // epoch of the data they close, but the fencing abort (app 3), which is under a
    // newer epoch than its data and an older one than the next producer's.
    let app_epochs: Vec<i16> = (0..6).map(|n| ids.data_epochs[&("app", n)]).collect();
    assert!(app_epochs.windows(2).all(|w| w[0] < w[1]), "{app_epochs:?}");
    for n in [0, 1, 2, 4, 5] {
        assert_eq!(ids.marker_epochs[&("app", n)], app_epochs[n], "app {n}");
    }
    let fence = ids.marker_epochs[&("app", 3)];
    assert!(
        app_epochs[3] < fence && fence < app_epochs[4],
        "{fence}, {app_epochs:?}"
    );
    assert_eq!(
        ids.marker_epochs[&("other", 0)],
        ids.data_epochs[&("other", 0)]
    );

    // The offsets of app 2 went to __consumer_offsets as a transaction of app's producer
    // id, closed by a COMMIT under the same epoch.
    let offsets = partition_batches(&tmp.path().join("__consumer_offsets-0"));
    let txn_data: Vec<&KpBatch> = offsets
        .iter()
        .filter(|b| b.producer_id == app && !b.control)
        .collect();
    assert_eq!(txn_data.len(), 1, "{offsets:#?}");
    assert!(txn_data[0].transactional);
    assert_eq!(txn_data[0].producer_epoch, app_epochs[2]);
    let marker = offsets
        .iter()
        .find(|b| b.producer_id == app && b.control)
        .unwrap();
    assert!(marker.base_offset > txn_data[0].last_offset);
    assert_eq!(
        (marker.producer_epoch, marker.marker),
        (app_epochs[2], Some((COMMIT, 0)))
    );

    // Snapshots and transaction indexes of every partition written to.
    let mut aborted_total = 0;
    for name in ["t-0", "t-1", "__consumer_offsets-0"] {
        let dir = tmp.path().join(name);
        let found = partition_batches(&dir);
        let (entries, aborted) = kafka_producer_state(&found);
        let end = found.last().unwrap().last_offset + 1;
        // The clean close wrote the state at the log end offset, and nothing is open.
        let snapshot = std::fs::read(dir.join(format!("{end:020}.snapshot")))
            .unwrap_or_else(|e| panic!("{name}: no snapshot at the log end {end}: {e}"));
        let decoded = decode_snapshot(&snapshot);
        let mut sorted = decoded.clone();
        sorted.sort_by_key(|e| e.producer_id);
        assert_eq!(sorted, entries, "{name}: .snapshot");
        assert!(
            decoded.iter().all(|e| e.current_txn_first_offset == -1),
            "{name}: a transaction is open in the snapshot taken at close"
        );
        let txn_index = dir.join(format!("{:020}.txnindex", 0));
        let listed = match std::fs::read(&txn_index) {
            Ok(bytes) => decode_txn_index(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{}: {e}", txn_index.display()),
        };
        assert_eq!(listed, aborted, "{name}: .txnindex");
        aborted_total += listed.len();
    }
    // app 1 and app 3 in t-0, app 5 in t-1: their first offsets are their first records.
    assert_eq!(aborted_total, 3);
    let t0 = partition_batches(&tmp.path().join("t-0"));
    let first_of = |value: &str| {
        t0.iter()
            .find(|b| b.values.first().is_some_and(|v| v == &text(value)))
            .unwrap()
            .base_offset
    };
    let listed = decode_txn_index(
        &std::fs::read(tmp.path().join("t-0/00000000000000000000.txnindex")).unwrap(),
    );
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.producer_id, e.first_offset))
            .collect::<Vec<_>>(),
        [(app, first_of("c1")), (app, first_of("f1"))]
    );
    assert_eq!(
        listed[0].last_stable_offset,
        first_of("o1"),
        "other's transaction was open when app 1 aborted"
    );
}

#[test]
fn the_independent_crc32c_is_right() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}
