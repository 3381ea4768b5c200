//! No client waits behind unrelated I/O: `add_partitions` builds its partitions outside
//! the topic's locks, and offset commits do not hold the commit lock across their fsync
//! (concurrent commits share fsyncs). Each test parks one operation inside an fsync
//! with a hook and checks that another makes progress meanwhile; the 60-second waits
//! only turn a deadlock (the behaviour before) into a failure, they never time anything.
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::intercept::{Hooks, InterceptFs};
use streamlog::fs::{FileSystem, SimFs};
use streamlog::{
    ConsumerConfig, ProducerConfig, ProducerRecord, Store, StoreConfig, TopicConfig, TopicPartition,
};

const DEADLOCK: Duration = Duration::from_secs(60);

/// A hook that parks the first fsync of a file whose path contains `needle` once armed:
/// it reports `entered`, then waits for `release`.
struct Park {
    armed: AtomicBool,
    needle: &'static str,
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Park {
    fn new(needle: &'static str) -> (Arc<Park>, Receiver<()>, Sender<()>) {
        let (entered_tx, entered_rx) = channel();
        let (release_tx, release_rx) = channel();
        let park = Arc::new(Park {
            armed: AtomicBool::new(false),
            needle,
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        });
        (park, entered_rx, release_tx)
    }

    fn on_sync(&self, path: &std::path::Path) {
        if path.to_string_lossy().contains(self.needle) && self.armed.swap(false, Ordering::AcqRel)
        {
            self.entered.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
    }
}

fn store_on(fs: InterceptFs) -> Store {
    Store::open_with(
        "/store",
        StoreConfig::default()
            .file_system(Arc::new(fs) as Arc<dyn FileSystem>)
            .background_maintenance(false),
    )
    .unwrap()
}

/// While `add_partitions` of one topic sits in an fsync, sends to that topic's existing
/// partitions and to another topic complete (the config lock was held across the
/// fsyncs, and the producer read it under its one accumulator lock: a send to any topic
/// stalled behind the slow disk).
#[test]
fn sends_go_on_while_add_partitions_waits_on_its_fsyncs() {
    let (park, entered, release) = Park::new("/grow-1/");
    let hook = park.clone();
    let hooks = Hooks {
        before_sync: Box::new(move |p| hook.on_sync(p)),
        ..Hooks::default()
    };
    let store = store_on(InterceptFs::new(SimFs::new(), hooks));
    store.create_topic("grow", TopicConfig::default()).unwrap();
    store.create_topic("other", TopicConfig::default()).unwrap();
    let producer = store
        .producer(ProducerConfig::default().linger_ms(0))
        .unwrap();
    park.armed.store(true, Ordering::Release);
    let grower = {
        let store = store.clone();
        std::thread::spawn(move || store.add_partitions("grow", 4))
    };
    entered
        .recv_timeout(DEADLOCK)
        .expect("add_partitions reached its fsync");
    let (done_tx, done_rx) = channel();
    let sender = {
        let producer = producer.clone();
        std::thread::spawn(move || {
            for topic in ["grow", "other"] {
                let meta = producer
                    .send(ProducerRecord::new(topic).partition(0).value("v"))
                    .and_then(|f| f.wait());
                done_tx.send((topic, meta.map(|m| m.offset))).unwrap();
            }
        })
    };
    for topic in ["grow", "other"] {
        let (t, offset) = done_rx
            .recv_timeout(DEADLOCK)
            .unwrap_or_else(|_| panic!("a send to `{topic}` stalled behind add_partitions"));
        assert_eq!((t, offset.unwrap()), (topic, 0));
    }
    release.send(()).unwrap();
    grower.join().unwrap().unwrap();
    sender.join().unwrap();
    assert_eq!(store.topic("grow").unwrap().partition_count(), 4);
}

/// While one group's commit sits in its fsync, another group's commit is appended (it
/// no longer waits for the whole of the first commit), and both complete once the
/// fsync does.
#[test]
fn a_commit_is_appended_while_another_waits_on_its_fsync() {
    let (park, entered, release) = Park::new("__consumer_offsets");
    let hook = park.clone();
    let (wrote_tx, wrote_rx) = channel::<()>();
    let wrote_tx = Mutex::new(wrote_tx);
    let watching = Arc::new(AtomicBool::new(false));
    let watch = watching.clone();
    let hooks = Hooks {
        before_sync: Box::new(move |p| hook.on_sync(p)),
        before_write: Box::new(move || {
            if watch.load(Ordering::Acquire) {
                let _ = wrote_tx.lock().unwrap().send(());
            }
        }),
        ..Hooks::default()
    };
    let store = store_on(InterceptFs::new(SimFs::new(), hooks));
    store
        .create_topic("t", TopicConfig::default().partitions(2))
        .unwrap();
    let commit = |group: &str, p: i32| {
        let store = store.clone();
        let group = group.to_string();
        std::thread::spawn(move || {
            let mut c = store
                .consumer(ConsumerConfig::new(group).enable_auto_commit(false))
                .unwrap();
            c.commit_sync_offsets(&BTreeMap::from([(TopicPartition::new("t", p), 7)]))
        })
    };
    park.armed.store(true, Ordering::Release);
    let first = commit("a", 0);
    entered
        .recv_timeout(DEADLOCK)
        .expect("the first commit reached its fsync");
    watching.store(true, Ordering::Release);
    let second = commit("b", 1);
    wrote_rx
        .recv_timeout(DEADLOCK)
        .expect("the second commit was appended while the first was in its fsync");
    release.send(()).unwrap();
    first.join().unwrap().unwrap();
    second.join().unwrap().unwrap();
    for (group, p) in [("a", 0), ("b", 1)] {
        let tp = TopicPartition::new("t", p);
        let c = store.consumer(ConsumerConfig::new(group)).unwrap();
        assert_eq!(
            c.committed(std::slice::from_ref(&tp)).unwrap()[&tp],
            Some(7)
        );
    }
}
