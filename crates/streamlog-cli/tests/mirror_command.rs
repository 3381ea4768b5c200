//! `streamlog mirror` against librdkafka's mock cluster (in this process, on 127.0.0.1):
//! a store topic goes to Kafka with `to-kafka` and comes back into another store with
//! `from-kafka`, with a Kafka client setting passed through `-X`.
#![cfg(feature = "kafka")]

use std::process::Command;

use streamlog::{Record, Store, TopicConfig};
use streamlog_kafka::rdkafka::mocking::MockCluster;

fn streamlog(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A store at `dir` with `topic` of 2 partitions holding `n` records in turn: key
/// `k<i>`, value `v<i>`, header `h` = `<i>`.
fn fill_store(dir: &std::path::Path, topic: &str, n: i64) {
    let store = Store::open(dir).unwrap();
    store
        .create_topic(topic, TopicConfig::default().partitions(2))
        .unwrap();
    let t = store.topic(topic).unwrap();
    for i in 0..n {
        let r = Record::new(
            1_700_000_000_000 + i,
            Some(format!("k{i}")),
            Some(format!("v{i}")),
        )
        .header("h", format!("{i}"));
        t.partition((i % 2) as i32).unwrap().append(&[r]).unwrap();
    }
    store.close().unwrap();
}

/// A child process killed however the test ends (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn to_kafka_and_back_copies_every_record_with_its_offset_header() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    // The mock does not implement CreateTopics; a real cluster gets it from the mirror.
    mock.create_topic("clicks", 2, 1).unwrap();
    let from = tempfile::tempdir().unwrap();
    let to = tempfile::tempdir().unwrap();
    fill_store(from.path(), "clicks", 50);
    let store_arg = from.path().to_str().unwrap();
    let (ok, err) = streamlog(&[
        "mirror",
        "to-kafka",
        "--store",
        store_arg,
        "-b",
        &bootstrap,
        "-t",
        "clicks",
        "--exit-at-end",
        "-X",
        "compression.type=lz4",
        "--group",
        "cli-sink",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("50 records copied"), "{err}");

    let (ok, err) = streamlog(&[
        "mirror",
        "from-kafka",
        "--store",
        to.path().to_str().unwrap(),
        "-b",
        &bootstrap,
        "-p",
        "clicks:0",
        "-p",
        "clicks:1",
        "--exit-at-end",
        "--config",
        "retention.bytes=1073741824",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("50 records copied"), "{err}");

    let source = Store::open(from.path()).unwrap();
    // The sink's progress is a streamlog consumer group with no lag left.
    let group = source.describe_group("cli-sink").unwrap();
    assert!(
        group.offsets.iter().all(|o| o.lag == 0 && o.offset == 25),
        "{group:?}"
    );
    let copy = Store::open(to.path()).unwrap();
    let created = copy.describe_topic("clicks").unwrap().config.settings();
    assert_eq!(
        (
            created.partitions,
            created.retention_bytes,
            created.retention_ms
        ),
        (2, 1 << 30, -1),
        "the flag's, over the source's default of no time retention"
    );
    for p in 0..2 {
        let a = source
            .topic("clicks")
            .unwrap()
            .partition(p)
            .unwrap()
            .read(0, 1 << 20)
            .unwrap();
        let b = copy
            .topic("clicks")
            .unwrap()
            .partition(p)
            .unwrap()
            .read(0, 1 << 20)
            .unwrap();
        assert_eq!(a.len(), 25);
        assert_eq!(b.len(), 25);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.offset, x.timestamp, &x.key, &x.value),
                (y.offset, y.timestamp, &y.key, &y.value)
            );
            let keys: Vec<&str> = y.headers.iter().map(|h| h.key.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "h",
                    "streamlog.source.offset",
                    "streamlog.source.topic.id",
                    "streamlog.kafka.offset"
                ]
            );
            assert_eq!(
                y.headers[1].value.as_deref(),
                Some(x.offset.to_string().as_bytes())
            );
        }
    }
}

#[test]
fn bad_mirror_arguments_fail_with_a_message_naming_them() {
    let (ok, err) = streamlog(&["mirror", "to-kafka", "--store", "x", "-b", "h:1"]);
    assert!(!ok);
    assert!(err.contains("--topic"), "{err}");
    let (ok, err) = streamlog(&[
        "mirror", "to-kafka", "--store", "x", "-b", "h:1", "-t", "t", "-X", "novalue",
    ]);
    assert!(!ok);
    assert!(err.contains("key=value"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let to_kafka = || {
        streamlog(&[
            "mirror",
            "to-kafka",
            "--store",
            dir.path().to_str().unwrap(),
            "-b",
            "127.0.0.1:1",
            "-t",
            "missing",
        ])
    };
    // A directory without a store is refused for a mirror to Kafka (nothing to send),
    // and left empty.
    let (ok, err) = to_kafka();
    assert!(!ok);
    assert!(err.contains("no store in this directory"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    Store::open(dir.path()).unwrap().close().unwrap();
    let (ok, err) = to_kafka();
    assert!(!ok);
    assert!(err.contains("missing"), "{err}");
    // A bad topic config is refused before the store is opened: an empty directory
    // stays empty.
    let empty = tempfile::tempdir().unwrap();
    let (ok, err) = streamlog(&[
        "mirror",
        "from-kafka",
        "--store",
        empty.path().to_str().unwrap(),
        "-b",
        "127.0.0.1:1",
        "-t",
        "t",
        "--config",
        "retention.ms=soon",
    ]);
    assert!(!ok);
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    assert!(
        err.contains("--config") && err.contains("retention.ms"),
        "{err}"
    );
    // A directory that does not exist is refused, not created as a store.
    let typo = dir.path().join("typo").join("nested");
    for direction in ["to-kafka", "from-kafka"] {
        let (ok, err) = streamlog(&[
            "mirror",
            direction,
            "--store",
            typo.to_str().unwrap(),
            "-b",
            "127.0.0.1:1",
            "-t",
            "t",
        ]);
        assert!(!ok);
        assert!(err.contains("no such store directory"), "{err}");
        assert!(!dir.path().join("typo").exists(), "{direction} created it");
    }
}

#[test]
fn following_prints_each_partitions_position_and_group_lag() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    mock.create_topic("views", 2, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fill_store(dir.path(), "views", 20);
    // No --exit-at-end: the mirror follows the store and reports every second.
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlog"))
        .args([
            "mirror",
            "to-kafka",
            "--store",
            dir.path().to_str().unwrap(),
            "-b",
            &bootstrap,
            "-t",
            "views",
            "--group",
            "follow-sink",
            "--progress-secs",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Reports go on until both partitions are copied and committed: each line names a
    // partition, the next offset copied and the group's lag ("-" before its first
    // commit).
    let mut caught_up = std::collections::BTreeSet::new();
    let mut seen = Vec::new();
    while caught_up.len() < 2 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) else {
            panic!("no progress report in 60 s; so far: {seen:#?}");
        };
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            matches!(words.as_slice(), [tp, "position", pos, "lag", lag]
                if tp.starts_with("views-") && pos.parse::<i64>().is_ok()
                    && (*lag == "-" || lag.parse::<i64>().is_ok())),
            "unexpected progress line {line:?}"
        );
        if words[2] == "10" && words[4] == "0" {
            caught_up.insert(words[0].to_string());
        }
        seen.push(line);
    }
    drop(child);
    assert_eq!(
        caught_up.into_iter().collect::<Vec<_>>(),
        ["views-0", "views-1"]
    );
}
