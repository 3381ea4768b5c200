//! `Producer::send_async` (issue 18, item 3): it never blocks the task polling it. A
//! full `buffer_memory` makes it wait on its waker (woken when a batch frees memory),
//! its batches are appended and synced by the producer's linger thread, and a future
//! dropped before it resolved sent nothing. Driven by hand-polled futures and a file
//! system whose writes wait at a gate, so no step depends on timing.

mod common;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use common::intercept::{Hooks, InterceptFs, Op};
use streamlog::fs::{FileSystem, SimFs};
use streamlog::{
    Acks, DeliveryFuture, Error, ProducerConfig, ProducerRecord, SendFuture, Store, StoreConfig,
    TopicConfig,
};

/// A waker that reports each wake on a channel.
struct Signal(Mutex<mpsc::Sender<()>>);

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

fn signal() -> (Waker, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (Waker::from(Arc::new(Signal(Mutex::new(tx)))), rx)
}

fn poll_once(fut: &mut SendFuture<'_>, waker: &Waker) -> Poll<streamlog::Result<DeliveryFuture>> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// Writes to the partition's files wait while the gate is closed; who wrote and synced
/// them is recorded.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
    writers: Mutex<Vec<String>>,
    /// Notified when a writer is recorded.
    arrived: std::sync::Condvar,
}

fn gated_store(gate: &Arc<Gate>) -> Store {
    let g = gate.clone();
    let hooks = Hooks {
        before_op: Box::new(move |op, path: &Path| {
            if !path.to_string_lossy().contains("clicks-0") || !matches!(op, Op::Write | Op::Sync) {
                return;
            }
            let name = std::thread::current().name().unwrap_or("?").to_string();
            g.writers.lock().unwrap().push(name);
            g.arrived.notify_all();
            let mut closed = g.closed.lock().unwrap();
            while *closed {
                closed = g.opened.wait(closed).unwrap();
            }
        }),
        ..Hooks::default()
    };
    let fs = InterceptFs::new(SimFs::new(), hooks);
    let store = Store::open_with(
        "/store",
        StoreConfig::default()
            .background_maintenance(false)
            .file_system(Arc::new(fs) as Arc<dyn FileSystem>),
    )
    .unwrap();
    store
        .create_topic("clicks", TopicConfig::default())
        .unwrap();
    store
}

fn set_gate(gate: &Gate, closed: bool) {
    *gate.closed.lock().unwrap() = closed;
    gate.opened.notify_all();
}

/// Opens the gate when dropped, so a failing assertion does not leave the producer's
/// thread waiting at it (and the test hanging instead of failing).
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        set_gate(&self.0, false);
    }
}

/// A store whose writes to `clicks-0` wait at `gate`, closed now (opened again when the
/// third value is dropped), and a producer whose 2 KiB of `buffer_memory` a few sends
/// fill: nothing is appended, so no memory frees.
fn producer_to_park(gate: &Arc<Gate>) -> (Store, streamlog::Producer, OpenOnDrop) {
    let store = gated_store(gate);
    let producer = store
        .producer(
            ProducerConfig::default()
                .linger_ms(0)
                .batch_size(1024)
                .buffer_memory(2048),
        )
        .unwrap();
    let open = OpenOnDrop(gate.clone());
    set_gate(gate, true);
    (store, producer, open)
}

fn record(i: usize) -> ProducerRecord<'static> {
    ProducerRecord::new("clicks")
        .partition(0)
        .value(format!("{i:0200}"))
}

/// Appends and syncs of async sends run on the linger thread, never on the task's
/// thread; a blocking `send` of the same producer writes on its caller's thread.
#[test]
fn async_sends_leave_appends_and_fsyncs_to_the_linger_thread() {
    let gate = Arc::new(Gate::default());
    let store = gated_store(&gate);
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(0))
        .unwrap();
    gate.writers.lock().unwrap().clear(); // the topic's creation
    let (waker, _woken) = signal();
    std::thread::Builder::new()
        .name("the-task".into())
        .spawn({
            let producer = producer.clone();
            move || {
                for i in 0..20 {
                    let mut fut = producer.send_async(record(i));
                    let Poll::Ready(delivery) = poll_once(&mut fut, &waker) else {
                        panic!("memory is plentiful: the send resolves at once");
                    };
                    let meta = delivery.unwrap().wait().unwrap();
                    assert_eq!(meta.offset, i as i64);
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let writers = std::mem::take(&mut *gate.writers.lock().unwrap());
    assert!(!writers.is_empty());
    assert!(
        writers.iter().all(|w| w == "streamlog-linger"),
        "async sends wrote on: {writers:?}"
    );
    std::thread::Builder::new()
        .name("a-blocking-sender".into())
        .spawn(move || producer.send(record(20)).unwrap().wait().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert!(
        gate.writers
            .lock()
            .unwrap()
            .iter()
            .any(|w| w == "a-blocking-sender"),
        "the control: a blocking send appends on its own thread"
    );
}

/// With `buffer_memory` full, the future is pending (where `send` would block), its
/// waker is woken once an append frees memory, and it then resolves; a future dropped
/// while pending sends nothing; every resolved record is appended, in order.
#[test]
fn a_full_buffer_parks_the_future_until_an_append_frees_memory() {
    let gate = Arc::new(Gate::default());
    let store = gated_store(&gate);
    let producer = store
        .producer(
            ProducerConfig::default()
                .linger_ms(0)
                .batch_size(1024)
                .buffer_memory(4096),
        )
        .unwrap();
    let _open = OpenOnDrop(gate.clone());
    set_gate(&gate, true); // nothing is appended, so no memory frees
    let (waker, woken) = signal();
    let mut deliveries = Vec::new();
    let mut i = 0;
    let mut parked = loop {
        assert!(i < 1000, "4 KiB of buffer_memory never filled");
        let mut fut = producer.send_async(record(i));
        match poll_once(&mut fut, &waker) {
            Poll::Ready(d) => deliveries.push(d.unwrap()),
            Poll::Pending => break fut,
        }
        i += 1;
    };
    assert!(!deliveries.is_empty());
    // Still full (nothing can be appended): polling again parks again.
    assert!(poll_once(&mut parked, &waker).is_pending());
    assert!(
        woken.try_recv().is_err(),
        "woken while memory is still full"
    );

    // A second future that will be dropped while parked.
    let mut dropped = producer.send_async(record(usize::MAX));
    assert!(poll_once(&mut dropped, &waker).is_pending());
    drop(dropped);

    set_gate(&gate, false);
    common::recv(&woken, "the wake after an append freed memory");
    let resolved = loop {
        match poll_once(&mut parked, &waker) {
            Poll::Ready(d) => break d.unwrap(),
            Poll::Pending => common::recv(&woken, "another wake"),
        }
    };
    deliveries.push(resolved);
    producer.flush().unwrap();
    let offsets: Vec<i64> = deliveries
        .into_iter()
        .map(|d| d.wait().unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..=i as i64).collect::<Vec<_>>());
    let part = store.topic("clicks").unwrap().partition(0).unwrap();
    assert_eq!(
        part.log_end_offset(),
        i as i64 + 1,
        "the dropped future's record was never sent"
    );
}

/// Closing the producer wakes a parked future, which then fails with `Closed`. One
/// parked before it with a waker that panics (the application's) does not keep it from
/// waking (from a review: the panic unwound through `close`, past the other parked
/// sends, the linger thread's notification and the flush of the open batches).
#[test]
fn close_wakes_a_parked_send_with_closed() {
    struct Panicking;
    impl std::task::Wake for Panicking {
        fn wake(self: Arc<Self>) {
            panic!("the application's waker panicked");
        }
    }
    let gate = Arc::new(Gate::default());
    let (_store, producer, _open) = producer_to_park(&gate);
    let (waker, woken) = signal();
    // The first send to park does so with the panicking waker: it is woken first.
    let panicking = Waker::from(Arc::new(Panicking));
    let mut i = 0;
    let _first = loop {
        assert!(i < 1000);
        let mut fut = producer.send_async(record(i));
        if poll_once(&mut fut, &panicking).is_pending() {
            break fut;
        }
        i += 1;
    };
    let mut parked = producer.send_async(record(usize::MAX));
    assert!(poll_once(&mut parked, &waker).is_pending());
    std::thread::scope(|s| {
        let closer = s.spawn(|| producer.close());
        common::recv(&woken, "the wake from close");
        set_gate(&gate, false); // let close's flush finish
        closer.join().unwrap().unwrap();
    });
    match poll_once(&mut parked, &waker) {
        Poll::Ready(Err(Error::Closed { .. })) => {}
        other => panic!("after close: {other:?}"),
    }
}

/// A waker that, as some executors do, runs its task's next step inline: here, the
/// task closes the store (it found its producer closing); says it was woken, then what
/// its close answered.
struct ClosesTheStore {
    store: Store,
    said: Mutex<mpsc::Sender<String>>,
}

impl Wake for ClosesTheStore {
    fn wake(self: Arc<Self>) {
        let said = self.said.lock().unwrap().clone();
        let _ = said.send("woken".to_string());
        let _ = said.send(format!("{:?}", self.store.close()));
    }
}

/// From a review: the store's close held its list of producers locked while it closed
/// them, which wakes their parked sends; a waker that polls its task inline, whose task
/// then closes the store too, waited for that lock on the closing thread itself, and the
/// close never returned. A close on the closing thread returns at once now.
#[test]
fn a_parked_sends_waker_that_closes_the_store_does_not_hang_the_close() {
    let gate = Arc::new(Gate::default());
    let (store, producer, _open) = producer_to_park(&gate);
    let (said, says) = mpsc::channel();
    let waker = Waker::from(Arc::new(ClosesTheStore {
        store: store.clone(),
        said: Mutex::new(said),
    }));
    let mut deliveries = Vec::new();
    let _parked = loop {
        assert!(
            deliveries.len() < 1000,
            "2 KiB of buffer_memory never filled"
        );
        let mut fut = producer.send_async(record(deliveries.len()));
        match poll_once(&mut fut, &waker) {
            Poll::Ready(d) => deliveries.push(d.unwrap()),
            Poll::Pending => break fut,
        }
    };
    assert!(!deliveries.is_empty());
    let (done, closed) = mpsc::channel();
    let closer = store.clone();
    std::thread::spawn(move || done.send(format!("{:?}", closer.close())).unwrap());
    let next = |what| {
        says.recv_timeout(std::time::Duration::from_secs(60))
            .expect(what)
    };
    assert_eq!(next("the wake from the store's close"), "woken");
    set_gate(&gate, false); // the closes' flushes may write now
    assert_eq!(next("the inner close returned"), "Ok(())");
    let closed = closed
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the store's close returned");
    assert_eq!(closed, "Ok(())");
    assert!(matches!(store.topic("clicks"), Err(Error::Closed { .. })));
    // The close inside the close left the closing to it: the records sent before it
    // were appended before the partitions closed (review: closing them from inside
    // failed every batch the producers still held).
    let offsets: Vec<i64> = deliveries
        .into_iter()
        .map(|d| d.wait().unwrap().offset)
        .collect();
    assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
}

/// Under tokio: tasks sending concurrently with `send_async` and awaiting their
/// deliveries get every record appended, each task's in its order.
#[test]
fn tokio_tasks_send_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .create_topic("orders", TopicConfig::default().partitions(4))
        .unwrap();
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let per_partition = rt.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..4 {
            let producer = producer.clone();
            tasks.push(tokio::spawn(async move {
                let mut offsets = Vec::new();
                for i in 0..250 {
                    let rec = ProducerRecord::new("orders")
                        .partition(p)
                        .value(format!("{p}-{i}"));
                    let delivery = producer.send_async(rec).await.unwrap();
                    offsets.push(delivery.await.unwrap().offset);
                }
                offsets
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for offsets in per_partition {
        assert_eq!(offsets, (0..250).collect::<Vec<i64>>());
    }
    producer.close().unwrap();
}

/// A future polled again after it resolved sends nothing more: it reports the misuse.
#[test]
fn a_resolved_send_polled_again_sends_nothing() {
    let gate = Arc::new(Gate::default());
    let store = gated_store(&gate);
    let producer = store.producer(ProducerConfig::default()).unwrap();
    let (waker, _woken) = signal();
    let mut fut = producer.send_async(record(0));
    let Poll::Ready(delivery) = poll_once(&mut fut, &waker) else {
        panic!("memory is plentiful");
    };
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Err(Error::InvalidArgument { .. })) => {}
        other => panic!("polled after Ready: {other:?}"),
    }
    assert_eq!(delivery.unwrap().wait().unwrap().offset, 0);
    producer.flush().unwrap();
    let part = store.topic("clicks").unwrap().partition(0).unwrap();
    assert_eq!(part.log_end_offset(), 1, "the record was sent once");
}

/// From a review: a send whose first poll failed (here its topic did not exist yet,
/// which a custom partitioner needs before the lock) was not marked resolved. Polled
/// again once the topic existed, it sent its record, where the docs promise that a
/// future polled after it resolved sends nothing.
#[test]
fn a_send_that_failed_polled_again_sends_nothing() {
    #[derive(Debug)]
    struct First;
    impl streamlog::producer::Partitioner for First {
        fn partition(&self, _: &str, _: Option<&[u8]>, _: usize, _: i32) -> i32 {
            0
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let producer = store
        .producer(ProducerConfig::default().partitioner(Arc::new(First)))
        .unwrap();
    let (waker, _woken) = signal();
    let mut fut = producer.send_async(ProducerRecord::new("later").value("v"));
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Err(Error::NotFound { .. })) => {}
        other => panic!("a send to a missing topic: {other:?}"),
    }
    store.create_topic("later", TopicConfig::default()).unwrap();
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Err(Error::InvalidArgument { .. })) => {}
        other => panic!("polled after Ready: {other:?}"),
    }
    producer.flush().unwrap();
    let part = store.topic("later").unwrap().partition(0).unwrap();
    assert_eq!(part.log_end_offset(), 0, "the failed send sent nothing");
}

/// Two threads close clones of one producer: the second returned Ok at once while the
/// first was still appending the records sent before (a process exiting on that Ok
/// lost them), and a store's close racing a producer's went on to close the logs under
/// it. Every close now returns once those records are done.
#[test]
fn every_close_waits_for_the_records_sent_before_it() {
    let gate = Arc::new(Gate::default());
    let store = gated_store(&gate);
    let producer = store
        .producer(ProducerConfig::default().acks(Acks::All).linger_ms(60_000))
        .unwrap();
    let delivery = producer.send(record(0)).unwrap();
    gate.writers.lock().unwrap().clear(); // the topic's creation
    set_gate(&gate, true);
    let _open = OpenOnDrop(gate.clone());
    let first = std::thread::spawn({
        let p = producer.clone();
        move || p.close()
    });
    // The first close is at the gate, appending the record.
    let mut writers = gate.writers.lock().unwrap();
    while writers.is_empty() {
        writers = gate.arrived.wait(writers).unwrap();
    }
    drop(writers);
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = std::thread::spawn({
        let p = producer.clone();
        let released = released.clone();
        move || {
            let r = p.close();
            (r, released.load(std::sync::atomic::Ordering::SeqCst))
        }
    });
    // A lower bound only: the second close returning before the gate opens is the
    // failure; a slow thread that gets there later passes either way.
    std::thread::sleep(std::time::Duration::from_millis(100));
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    set_gate(&gate, false);
    let (result, after_release) = second.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        after_release,
        "the second close returned before the record was appended"
    );
    first.join().unwrap().unwrap();
    assert!(delivery.wait().is_ok());
    // Closing again later (the store closed too) is still Ok.
    store.close().unwrap();
    assert!(producer.close().is_ok());
}

/// A store in a temporary directory with topic `clicks` of `partitions`.
fn store_with_clicks(partitions: i32) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        StoreConfig::default().background_maintenance(false),
    )
    .unwrap();
    store
        .create_topic("clicks", TopicConfig::default().partitions(partitions))
        .unwrap();
    (dir, store)
}

/// The next message on `rx`, or the test process exits failed: a hang (a waker's task
/// waiting on work its own thread holds), which unwinding would not end.
fn next_or_exit(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            eprintln!("{what} never came (a hang)");
            std::process::exit(101)
        })
}

/// From a shutdown hunt: a flush appends the batches it ships one after another, and
/// woke each one's delivery as it went: a waker polling its task inline, whose task
/// closes the store, waited in the producer's close for the next batch, which the same
/// thread had yet to append, for ever. The wakers of a shipment run once all of it is
/// appended now.
#[test]
fn a_delivery_waker_that_closes_the_store_does_not_hang_the_flush_that_woke_it() {
    let (_dir, store) = store_with_clicks(2);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(3_600_000))
        .unwrap();
    let send = |p: i32| {
        producer
            .send(ProducerRecord::new("clicks").partition(p).value("v"))
            .unwrap()
    };
    let (mut first, second) = (send(0), send(1));
    let (said, says) = mpsc::channel();
    let waker = Waker::from(Arc::new(ClosesTheStore {
        store: store.clone(),
        said: Mutex::new(said),
    }));
    assert!(
        Pin::new(&mut first)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let (done, flushed) = mpsc::channel();
    let flusher = producer.clone();
    std::thread::spawn(move || done.send(format!("{:?}", flusher.flush())).unwrap());
    assert_eq!(next_or_exit(&says, "the wake"), "woken");
    assert_eq!(next_or_exit(&says, "the close in the waker"), "Ok(())");
    next_or_exit(&flushed, "the flush");
    assert_eq!(first.wait().unwrap().offset, 0);
    assert_eq!(second.wait().unwrap().offset, 0);
}

/// A waker that drops the last clone of a producer, then says so.
struct DropsTheProducer {
    producer: Mutex<Option<streamlog::Producer>>,
    said: Mutex<mpsc::Sender<String>>,
}

impl Wake for DropsTheProducer {
    fn wake(self: Arc<Self>) {
        drop(self.producer.lock().unwrap().take());
        let _ = self.said.lock().unwrap().send("dropped".to_string());
    }
}

/// From a shutdown hunt: a delivery's waker that dropped the producer's last clone ran
/// on the linger thread, whose close then joined that thread from itself (a panic in
/// std). It is not joined from itself now.
#[test]
fn a_delivery_waker_that_drops_the_last_producer_on_its_linger_thread_closes_it() {
    // The append waits at the gate until the waker is registered.
    let gate = Arc::new(Gate::default());
    let store = gated_store(&gate);
    let open = OpenOnDrop(gate.clone());
    set_gate(&gate, true);
    let producer = store
        .producer(ProducerConfig::default().linger_ms(1))
        .unwrap();
    let mut delivery = producer.send(record(0)).unwrap();
    let (said, says) = mpsc::channel();
    let waker = Waker::from(Arc::new(DropsTheProducer {
        producer: Mutex::new(Some(producer)),
        said: Mutex::new(said),
    }));
    assert!(
        Pin::new(&mut delivery)
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(open);
    assert_eq!(next_or_exit(&says, "the drop in the waker"), "dropped");
    assert_eq!(delivery.wait().unwrap().offset, 0);
}

thread_local! {
    static KEPT: std::cell::RefCell<Option<streamlog::Producer>> =
        const { std::cell::RefCell::new(None) };
}

/// From a review: the wakers a shipment holds back live in a thread-local; a producer
/// kept in a thread-local of the application was closed at the thread's exit after that
/// one was gone, and its close's wake-ups panicked in a thread-local destructor, which
/// aborts the process. They are woken at once there now.
#[test]
fn a_producer_in_a_thread_local_is_closed_at_the_threads_exit() {
    let (_dir, store) = store_with_clicks(1);
    let producer = store.producer(ProducerConfig::default()).unwrap();
    let sent = std::thread::spawn(move || {
        // Kept first, so it is dropped after the producer's own thread-locals.
        KEPT.with(|k| *k.borrow_mut() = Some(producer.clone()));
        let delivery = producer.send(record(0)).unwrap();
        producer.flush().unwrap();
        delivery.wait().unwrap().offset
    });
    assert_eq!(sent.join().unwrap(), 0);
    let p = store.topic("clicks").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), 1);
}
