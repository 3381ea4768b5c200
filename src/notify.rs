//! One store-wide wake-up signal: appends, topic changes and group changes bump it;
//! blocked readers (`poll`, `wait_for`) park on it instead of polling, and async readers
//! (`Consumer::recv`) register their task's waker.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

thread_local! {
    /// Wakers this thread holds back until its [`deferring_wakes`] call returns.
    static DEFERRED: RefCell<Option<Vec<(Waker, &'static str)>>> = const { RefCell::new(None) };
}

/// Wakes every one of `wakers` (taken off their list), or holds them back inside
/// [`deferring_wakes`]. A waker is the application's code: one that panics (the panic
/// hook has reported it) must not keep the others from waking, nor unwind through the
/// append, flush, close or maintenance pass that woke it; it is logged (`when`: what
/// woke it) and not passed on.
pub(crate) fn wake_all(wakers: Vec<Waker>, when: &'static str) {
    if wakers.is_empty() {
        return;
    }
    // `try_with`: in a thread's exit, after its thread-locals went (a producer in a
    // thread-local dropped then), wakers are woken at once.
    let mut wakers = Some(wakers);
    let _ = DEFERRED.try_with(|d| {
        if let Some(held) = d.borrow_mut().as_mut() {
            let w = wakers.take().unwrap_or_default();
            held.extend(w.into_iter().map(|w| (w, when)));
        }
    });
    for w in wakers.unwrap_or_default() {
        wake_one(w, when);
    }
}

fn wake_one(w: Waker, when: &str) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake())).is_err() {
        tracing::error!("a task's waker panicked when {when}");
    }
}

/// Runs `f`, holding back the wakers it wakes (through [`wake_all`]) until it returns,
/// then wakes them on this thread, also if `f` unwinds. A waker may poll its task
/// inline, and that task must not find this thread in the middle of work it waits for:
/// a producer's batches are appended one after another, and a task woken by the first
/// one's delivery that flushes or closes would wait for a batch this very thread has
/// yet to append. Nested calls hold back into the outermost one.
pub(crate) fn deferring_wakes<R>(f: impl FnOnce() -> R) -> R {
    let outermost = DEFERRED
        .try_with(|d| {
            let mut d = d.borrow_mut();
            d.is_none() && {
                *d = Some(Vec::new());
                true
            }
        })
        .unwrap_or(false);
    if !outermost {
        return f();
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            let held = DEFERRED
                .try_with(|d| d.borrow_mut().take())
                .ok()
                .flatten()
                .unwrap_or_default();
            for (w, when) in held {
                wake_one(w, when);
            }
        }
    }
    let _release = Release;
    f()
}

#[derive(Debug, Default)]
pub(crate) struct Notifier {
    seq: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
    /// Tasks to wake at the next notification (each once), and how many.
    wakers: Mutex<Vec<Waker>>,
    registered: AtomicUsize,
}

impl Notifier {
    /// The current sequence number; pass it to [`wait`](Self::wait) after checking state.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Wakes every waiter. Cheap when nobody waits (no lock taken).
    pub(crate) fn notify(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        // SeqCst on both sides: either we see the waiter, or it sees the new seq.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock();
            self.cond.notify_all();
        }
        if self.registered.load(Ordering::SeqCst) > 0 {
            let wakers = {
                let mut w = self.wakers.lock();
                self.registered.store(0, Ordering::SeqCst);
                std::mem::take(&mut *w)
            };
            // Outside the lock: a waker may poll its task inline.
            wake_all(wakers, "the store woke it");
        }
    }

    /// Registers `waker` to be woken by the next [`notify`](Self::notify), unless the
    /// sequence already moved past `seen` (returns false: check the state again).
    pub(crate) fn register(&self, waker: &Waker, seen: u64) -> bool {
        let mut w = self.wakers.lock();
        // Counted before the sequence is checked (SeqCst, as `notify` does the reverse):
        // either this sees the new sequence, or that `notify` sees the waker.
        self.registered.fetch_add(1, Ordering::SeqCst);
        if self.seq.load(Ordering::SeqCst) != seen {
            self.registered.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        if w.iter().any(|old| old.will_wake(waker)) {
            self.registered.fetch_sub(1, Ordering::SeqCst);
        } else {
            w.push(waker.clone());
        }
        true
    }

    /// Threads in [`wait`](Self::wait), each counted from before it checks the sequence
    /// (so a `notify` from then on wakes it).
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn sleepers(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    /// Blocks until the sequence moves past `seen` or `deadline` (None = no deadline)
    /// passes. Returns false on timeout.
    ///
    /// Spins on the sequence for up to [`SPIN`] first (as an adaptive mutex does), on a
    /// machine with more than one CPU: a hand-off within that window then costs no
    /// wake-up of a parked thread, which is most of the latency of a hand-off on a
    /// virtual machine. A wait with nothing coming burns at most that much CPU before it
    /// parks, never more. Callers that wait again after a wake-up that was not theirs
    /// (the signal is store-wide) use [`wait_parked`](Self::wait_parked), so that idle
    /// waiters do not spin at every append elsewhere.
    pub(crate) fn wait(&self, seen: u64, deadline: Option<Instant>) -> bool {
        self.spin(seen, deadline) || self.wait_parked(seen, deadline)
    }

    /// [`wait`](Self::wait) without the spin: parks at once.
    pub(crate) fn wait_parked(&self, seen: u64, deadline: Option<Instant>) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock.lock();
        let woke = loop {
            if self.seq.load(Ordering::SeqCst) != seen {
                break true;
            }
            match deadline {
                Some(d) => {
                    if self.cond.wait_until(&mut g, d).timed_out() {
                        break self.seq.load(Ordering::SeqCst) != seen;
                    }
                }
                None => self.cond.wait(&mut g),
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        woke
    }

    /// Whether the sequence moved past `seen` within [`SPIN`] (or before `deadline`).
    ///
    /// Bounded three ways: at most one spinner per CPU but one (the writer it waits for
    /// keeps a CPU), none on a single CPU, and a thread whose last [`MAX_MISSES`] spins
    /// all ran out spins again only every [`RETRY_EVERY`]th wait (an idle reader stops
    /// spinning; a reader of a busy hand-off keeps it).
    fn spin(&self, seen: u64, deadline: Option<Instant>) -> bool {
        static CPUS: OnceLock<usize> = OnceLock::new();
        static SPINNERS: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static MISSES: Cell<u32> = const { Cell::new(0) };
        }
        let cpus =
            *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let misses = MISSES.get();
        if cpus < 2 || (misses >= MAX_MISSES && !misses.is_multiple_of(RETRY_EVERY)) {
            // Wrapping: past u32::MAX the count starts again below MAX_MISSES.
            MISSES.set(misses.wrapping_add(1));
            return false;
        }
        let start = Instant::now();
        if deadline.is_some_and(|d| d <= start) {
            return false;
        }
        if SPINNERS.fetch_add(1, Ordering::AcqRel) >= cpus - 1 {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let until = deadline.map_or(start + SPIN, |d| d.min(start + SPIN));
        let hit = 'spin: loop {
            for _ in 0..SPIN_CHECKS {
                if self.seq.load(Ordering::Acquire) != seen {
                    break 'spin true;
                }
                std::hint::spin_loop();
            }
            if Instant::now() >= until {
                break false;
            }
        };
        SPINNERS.fetch_sub(1, Ordering::AcqRel);
        MISSES.set(if hit { 0 } else { misses.wrapping_add(1) });
        hit
    }
}

/// How long a waiter spins before it parks (see [`Notifier::wait`]).
const SPIN: Duration = Duration::from_micros(40);
/// Checks of the sequence between two readings of the clock while spinning.
const SPIN_CHECKS: u32 = 32;
/// Spins in a row that ran out after which a thread stops spinning...
const MAX_MISSES: u32 = 8;
/// ...except on every this-many-th wait, to notice that hand-offs came back.
const RETRY_EVERY: u32 = 64;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::Notifier;

    /// The spin before parking is bounded: a waiter with nothing coming ends up parked
    /// (counted as a sleeper), and a notification then wakes it.
    #[test]
    fn a_waiter_parks_after_its_spin_and_a_notify_wakes_it() {
        let n = Arc::new(Notifier::default());
        let seen = n.seq();
        let waiter = {
            let n = n.clone();
            std::thread::spawn(move || n.wait(seen, None))
        };
        // Only a failure depends on this bound (a waiter that never parks).
        let give_up = Instant::now() + Duration::from_secs(30);
        while n.sleepers() == 0 {
            assert!(Instant::now() < give_up, "the waiter never parked");
            std::thread::yield_now();
        }
        n.notify();
        assert!(waiter.join().unwrap());
        assert_eq!(n.sleepers(), 0);
    }

    /// A deadline already past ends the wait with a timeout.
    #[test]
    fn a_past_deadline_times_out() {
        let n = Notifier::default();
        let seen = n.seq();
        assert!(!n.wait(seen, Some(Instant::now())));
        assert_eq!(n.sleepers(), 0);
        n.notify();
        assert!(n.wait(seen, None), "a moved sequence returns at once");
    }
}
