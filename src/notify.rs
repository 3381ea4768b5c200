//! One store-wide wake-up signal: appends, topic changes and group changes bump it;
//! blocked readers (`poll`, `wait_for`) park on it instead of polling, and async readers
//! (`Consumer::recv`) register their task's waker.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

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
            for w in wakers {
                w.wake();
            }
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
    #[cfg(feature = "internals")]
    pub(crate) fn sleepers(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    /// Blocks until the sequence moves past `seen` or `deadline` (None = no deadline)
    /// passes. Returns false on timeout.
    pub(crate) fn wait(&self, seen: u64, deadline: Option<Instant>) -> bool {
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
}
