//! `streamlog import-kafka` as a user runs it: a topic's partition directories copied
//! from a Kafka log directory (only read) and adopted; damage refused with the copies
//! removed again.

mod common;

use common::{ok, streamlog};

use std::collections::BTreeMap;
use std::path::Path;

use streamlog::BatchBuilder;
use streamlog::log::{Log, LogConfig};

/// A Kafka log directory's `<topic>-<n>` directories, written by streamlog's `Log`
/// (the same files a broker writes): `records` records per partition.
fn kafka_topic(log_dir: &Path, topic: &str, partitions: usize, records: usize) {
    for p in 0..partitions {
        let log = Log::open(log_dir.join(format!("{topic}-{p}")), LogConfig::default()).unwrap();
        for i in 0..records {
            let mut b = BatchBuilder::new();
            let value = format!("{topic}-{p}-{i}");
            b.push(1_700_000_000_000, Some(b"k"), Some(value.as_bytes()), &[])
                .unwrap();
            log.append(&mut b.finish().unwrap()).unwrap();
        }
        log.close().unwrap();
    }
}

/// A temporary directory holding an empty Kafka log directory and an empty store
/// directory.
fn kafka_and_store_dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (kafka, store) = (tmp.path().join("kafka"), tmp.path().join("store"));
    std::fs::create_dir(&kafka).unwrap();
    std::fs::create_dir(&store).unwrap();
    (tmp, kafka, store)
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for (k, v) in contents(&path) {
                out.insert(
                    format!("{}/{k}", path.file_name().unwrap().to_string_lossy()),
                    v,
                );
            }
        } else {
            out.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    out
}

#[test]
fn imports_a_topic_from_a_kafka_log_dir_and_leaves_the_kafka_dir_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka = tmp.path().join("kafka");
    std::fs::create_dir(&kafka).unwrap();
    kafka_topic(&kafka, "clicks", 2, 3);
    let before = contents(&kafka);
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());

    let out = streamlog(&[
        "import-kafka",
        "--dir",
        s,
        "--from",
        k,
        "clicks",
        "--partitions",
        "2",
        "--config",
        "retention.ms=60000",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("clicks-0: offsets 0..3"), "{stdout}");
    assert!(
        stdout.contains("Imported topic clicks (2 partitions, 6 offsets"),
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar in a pipe: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(contents(&kafka), before, "the Kafka directory is only read");

    let consumed = streamlog(&[
        "consume",
        "--dir",
        s,
        "clicks",
        "--from-beginning",
        "--max-messages",
        "6",
    ]);
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let mut values: Vec<String> = String::from_utf8(consumed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..2)
        .flat_map(|p| (0..3).map(move |i| format!("clicks-{p}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
    let described = streamlog(&["topics", "describe", "--dir", s, "clicks"]);
    assert!(
        String::from_utf8_lossy(&described.stdout).contains("retention.ms=60000"),
        "{}",
        String::from_utf8_lossy(&described.stdout)
    );

    // Importing it again is refused, and the store is left as it was. (From a review:
    // the message told the user to remove `clicks-0`, the store's own partition: its
    // records lost, the store refusing to open. It says the store has the topic.)
    let store_before = contents(&store);
    let again = streamlog(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("the store has a topic `clicks` already"),
        "{err}"
    );
    assert!(!err.contains("remove"), "{err}");
    assert_eq!(contents(&store), store_before);
}

/// A directory of the topic already in the store (even one the copy would not make,
/// which the store would adopt with the copies), a staging directory an interrupted
/// copy left, and a partition directory holding something other than files: each is
/// refused before anything is copied, and nothing is removed.
/// From a review: a broker with two log.dirs holds `clicks-0` in one and `clicks-1` in
/// the other; importing from one adopted half the topic as the whole of it, and said
/// nothing. `--partitions` refuses a count that differs (writing nothing), and without
/// it the command says how many it found.
#[test]
fn an_import_of_part_of_a_topic_is_refused_or_told() {
    let (_tmp, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "clicks", 1, 2);
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    let import = |extra: &[&str]| {
        let args = ["import-kafka", "--dir", s, "--from", k, "clicks"];
        streamlog(&[&args[..], extra].concat())
    };
    let out = import(&["--partitions", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 partition directories of `clicks`, not 2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        0,
        "nothing written"
    );
    let out = import(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("importing the 1 partition(s) of `clicks`"),
        "{err}"
    );
}

#[test]
fn what_the_command_did_not_make_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka = tmp.path().join("kafka");
    std::fs::create_dir(&kafka).unwrap();
    kafka_topic(&kafka, "clicks", 2, 1);
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    assert!(
        streamlog(&["topics", "create", "--dir", s, "seed"])
            .status
            .success()
    );

    let stray = store.join("clicks-2");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), b"mine").unwrap();
    let before = contents(&store);
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clicks-2 exists already"));
    assert_eq!(contents(&store), before);
    std::fs::remove_dir_all(&stray).unwrap();

    let staged = store.join(".import+clicks-1");
    std::fs::create_dir(&staged).unwrap();
    let before = contents(&store);
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut short"));
    assert_eq!(contents(&store), before);
    assert!(!store.join("clicks-0").exists() && !store.join(".import+clicks-0").exists());
    std::fs::remove_dir_all(&staged).unwrap();

    std::fs::create_dir(kafka.join("clicks-1").join("subdir")).unwrap();
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    assert!(!store.join("clicks-0").exists() && !store.join(".import+clicks-0").exists());
    std::fs::remove_dir(kafka.join("clicks-1").join("subdir")).unwrap();

    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("clicks"))
        .collect();
    assert_eq!(names.len(), 2, "no staging directory left: {names:?}");
}

/// From an API attack: the copies were renamed to their staging name with every
/// leading `.import-` cut, so a topic named `.import-x` went to `x-0`, and the rename
/// replaced a user's empty `x-0` directory, which the failed import then removed. The
/// copies keep their own names, and nothing is renamed onto anything that exists.
#[test]
fn a_topic_named_like_a_staging_directory_never_replaces_a_users_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka = tmp.path().join("kafka");
    std::fs::create_dir(&kafka).unwrap();
    kafka_topic(&kafka, ".import-x", 1, 2);
    let store = tmp.path().join("store");
    streamlog::Store::open(&store).unwrap().close().unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    let mine = store.join("x-0");
    std::fs::create_dir(&mine).unwrap();
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, ".import-x"]);
    assert!(mine.is_dir(), "the user's directory is gone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = streamlog(&["consume", "--dir", s, ".import-x", "--from-beginning"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// From a CLI hunt: copies were staged as `.import-<topic>-<n>`, which is also the
/// directory of a store topic named `.import-<topic>`: importing `x` into a store with
/// a topic `.import-x` was refused as "left from an import that was cut short",
/// telling the user to remove that topic's directory. Copies are staged under a name
/// no topic has.
#[test]
fn a_store_topic_named_like_a_staging_directory_is_not_taken_for_one() {
    let (_t, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "x", 1, 2);
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    ok(&["topics", "create", "--dir", s, ".import-x"]);
    let theirs = contents(&store.join(".import-x-0"));
    ok(&["import-kafka", "--dir", s, "--from", k, "x"]);
    assert_eq!(contents(&store.join(".import-x-0")), theirs);
    let out = ok(&["consume", "--dir", s, "x", "--from-beginning"]);
    assert_eq!(out.lines().count(), 2, "{out}");
}

/// From a CLI hunt: the imported topic took the default 7 days of retention, and the
/// next maintenance pass deleted every copied record older than that (Kafka kept them:
/// its topic had a longer retention, or compaction). An imported topic keeps every
/// record unless `--config` says otherwise, as the mirror's topics do.
#[test]
fn an_imported_topic_keeps_records_older_than_the_default_retention() {
    let (_t, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "old", 1, 3); // dated November 2023
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    ok(&["import-kafka", "--dir", s, "--from", k, "old"]);
    let st = streamlog::Store::open(&store).unwrap();
    st.run_maintenance().unwrap();
    st.close().unwrap();
    let out = ok(&["consume", "--dir", s, "old", "--from-beginning"]);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn damage_is_refused_and_the_copies_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let kafka = tmp.path().join("kafka");
    std::fs::create_dir(&kafka).unwrap();
    kafka_topic(&kafka, "bad", 1, 3);
    let segment = kafka.join("bad-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // the last record's value: its batch's CRC no longer matches
    std::fs::write(&segment, &bytes).unwrap();
    let before = contents(&kafka);
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());

    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "bad"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("import `bad`"), "{stderr}");
    assert!(
        !store.join("bad-0").exists(),
        "the command's copy was removed"
    );
    assert_eq!(contents(&kafka), before);
    let listed = streamlog(&["topics", "list", "--dir", s]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("bad"));

    // A topic the Kafka directory does not hold.
    let missing = streamlog(&["import-kafka", "--dir", s, "--from", k, "nothing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no `nothing-0` directory"));
}

/// An import with `--from` cut short while it renamed its copies into place leaves
/// `clicks-0`, `clicks-1` and the staging `.import+clicks-2`. Importing what is in the
/// store (as the `--from` retry's message advises) adopted a two-partition topic and
/// ignored the third; both are now refused, naming the leftover, and change nothing.
#[test]
fn an_import_cut_short_while_renaming_is_not_adopted_in_part() {
    let (_tmp, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "clicks", 3, 2);
    // What the cut-short import left: two partitions moved in, one still staged.
    for p in 0..3 {
        let name = if p < 2 {
            format!("clicks-{p}")
        } else {
            format!(".import+clicks-{p}")
        };
        let to = store.join(name);
        std::fs::create_dir(&to).unwrap();
        for f in std::fs::read_dir(kafka.join(format!("clicks-{p}"))).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let before = contents(&store);
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    for args in [
        &["import-kafka", "--dir", s, "clicks"][..],
        &["import-kafka", "--dir", s, "--from", k, "clicks"][..],
    ] {
        let out = streamlog(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains(".import+clicks-2"), "{args:?}: {stderr}");
        assert!(stderr.contains("rename"), "{args:?}: {stderr}");
        assert!(contents(&store) == before, "{args:?}: the store changed");
    }
    // Cut short while copying: nothing moved yet, and the copies may be incomplete.
    for p in 0..2 {
        std::fs::remove_dir_all(store.join(format!("clicks-{p}"))).unwrap();
    }
    let out = streamlog(&["import-kafka", "--dir", s, "clicks"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("while copying") && stderr.contains("remove it"),
        "{stderr}"
    );
}

/// Kafka keeps each partition's log start offset (moved by DeleteRecords, or a Streams
/// purge) in the log directory's `log-start-offset-checkpoint`, not in the partition
/// directory: an import from the log directory carries it over, so records Kafka had
/// deleted are not readable again.
#[test]
fn an_import_keeps_kafkas_log_start_offsets() {
    let (_tmp, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "clicks", 2, 5);
    kafka_topic(&kafka, "other", 1, 5);
    std::fs::write(
        kafka.join("log-start-offset-checkpoint"),
        "0\n2\nclicks 0 3\nother 1 4\n",
    )
    .unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    let stdout = ok(&["import-kafka", "--dir", s, "--from", k, "clicks"]);
    assert!(stdout.contains("clicks-0: offsets 3..5"), "{stdout}");
    assert!(stdout.contains("clicks-1: offsets 0..5"), "{stdout}");
    assert!(stdout.contains("7 offsets"), "{stdout}");
    let consumed = streamlog(&[
        "consume",
        "--dir",
        s,
        "clicks",
        "--from-beginning",
        "--max-messages",
        "7",
    ]);
    let mut values: Vec<String> = String::from_utf8(consumed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    values.sort();
    let mut expected: Vec<String> = (3..5)
        .map(|i| format!("clicks-0-{i}"))
        .chain((0..5).map(|i| format!("clicks-1-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values, expected);

    // A damaged checkpoint is refused before anything is copied.
    std::fs::write(
        kafka.join("log-start-offset-checkpoint"),
        "0\n2\nother 0 1\n",
    )
    .unwrap();
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "other"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log-start-offset-checkpoint"), "{stderr}");
    assert!(!store.join("other-0").exists() && !store.join(".import-other-0").exists());
}

/// Without --from, the partition directories are put into the store directory first:
/// a new store's directory holding only them is adopted (a directory that was not a
/// store was refused unless empty), one holding anything else is still refused.
#[test]
fn an_import_without_from_makes_a_store_around_the_topics_directories() {
    let (tmp, kafka, store) = kafka_and_store_dirs();
    // A gap in the numbers is refused before anything is written.
    let gap = tmp.path().join("gap");
    kafka_topic(&gap, "clicks", 3, 1);
    std::fs::remove_dir_all(gap.join("clicks-1")).unwrap();
    let out = streamlog(&["import-kafka", "--dir", gap.to_str().unwrap(), "clicks"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !gap.join(".topics").exists(),
        "a store was made around a refused import"
    );
    kafka_topic(&store, "clicks", 2, 3);
    std::fs::write(kafka.join("notes.txt"), "mine").unwrap();
    kafka_topic(&kafka, "clicks", 1, 1);
    let k = kafka.to_str().unwrap();
    let out = streamlog(&["import-kafka", "--dir", k, "clicks"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !kafka.join(".topics").exists(),
        "a store was made beside notes.txt"
    );
    let s = store.to_str().unwrap();
    let out = streamlog(&["import-kafka", "--dir", s, "clicks"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = streamlog(&["consume", "--dir", s, "clicks", "--from-beginning"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
}

/// From a review: without --from, Kafka's log start offsets (in the broker's log
/// directory, which the command was not given) were never applied: records Kafka's
/// DeleteRecords removed were imported again. `--log-start-offsets FILE` names the
/// checkpoint; a partition directory holding another start is refused, and the
/// checkpoints written are removed with the refusal.
#[test]
fn an_import_without_from_takes_a_named_log_start_checkpoint() {
    let (tmp, _kafka, store) = kafka_and_store_dirs();
    kafka_topic(&store, "clicks", 2, 5);
    let checkpoint = tmp.path().join("log-start-offset-checkpoint");
    std::fs::write(&checkpoint, "0\n2\nclicks 0 3\nclicks 1 1\n").unwrap();
    // Partition 1 says otherwise already: refused, and partition 0 is as it was.
    std::fs::write(
        store.join("clicks-1/log-start-offset-checkpoint"),
        "0\n1\nclicks 1 2\n",
    )
    .unwrap();
    let before = contents(&store.join("clicks-0"));
    let (s, c) = (store.to_str().unwrap(), checkpoint.to_str().unwrap());
    let args = [
        "import-kafka",
        "--dir",
        s,
        "--log-start-offsets",
        c,
        "clicks",
    ];
    let out = streamlog(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another log start offset"), "{stderr}");
    assert_eq!(contents(&store.join("clicks-0")), before);
    std::fs::remove_file(store.join("clicks-1/log-start-offset-checkpoint")).unwrap();
    let stdout = ok(&args);
    assert!(stdout.contains("clicks-0: offsets 3..5"), "{stdout}");
    assert!(stdout.contains("clicks-1: offsets 1..5"), "{stdout}");
}

/// Index entries that disagree with their segment are derived data, adopted with the
/// topic; the import said nothing of them (only a later `verify` did), while its help
/// said damage is refused. It now reports each.
#[test]
fn an_import_reports_the_index_problems_it_adopts() {
    let (_tmp, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "idx", 1, 300);
    let index = kafka.join("idx-0").join("00000000000000000000.index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 8, "an index entry");
    let last = bytes.len() - 8;
    bytes[last..last + 4].copy_from_slice(&1_000_000u32.to_be_bytes()); // past the segment
    std::fs::write(&index, &bytes).unwrap();
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "idx"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("index: 00000000000000000000.index"),
        "{stdout}"
    );
}

/// A broker stopped within a minute of a retention pass leaves the segments it dropped
/// as `.deleted` files (its next start deletes them), and one stopped mid-compaction a
/// `.cleaned` file it never swapped in. The import refused such a directory as an
/// unfinished operation; it now leaves those files out.
#[test]
fn an_import_leaves_out_what_kafka_had_already_dropped() {
    let (_tmp, kafka, store) = kafka_and_store_dirs();
    kafka_topic(&kafka, "old", 1, 3);
    let part = kafka.join("old-0");
    let segment = std::fs::read(part.join("00000000000000000000.log")).unwrap();
    std::fs::write(part.join("00000000000000000000.log.deleted"), &segment).unwrap();
    std::fs::write(part.join("00000000000000000000.log.cleaned"), &segment).unwrap();
    let before = contents(&kafka);
    let (s, k) = (store.to_str().unwrap(), kafka.to_str().unwrap());
    let out = streamlog(&["import-kafka", "--dir", s, "--from", k, "old"]);
    assert!(out.status.success(), "{out:?}");
    let copied = contents(&store.join("old-0"));
    assert!(
        copied
            .keys()
            .all(|n| !n.ends_with(".deleted") && !n.ends_with(".cleaned")),
        "{:?}",
        copied.keys()
    );
    assert_eq!(contents(&kafka), before, "the Kafka directory is only read");
}
