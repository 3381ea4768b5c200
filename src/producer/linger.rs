//! The linger thread: appends batches whose `linger_ms` passed, and full batches the
//! sending threads handed over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use super::accumulator::Closed;
use crate::error::Result;

/// Full batches waiting for the linger thread beyond which a sender appends its own:
/// one thread appending for every sender would otherwise cap the throughput of many
/// senders at what it alone can write. Batches of a partition are still appended in
/// the order they closed (its queue's tickets), whoever appends them.
const BACKLOG: usize = 8;

/// Ready batches at which a sender wakes the linger thread while it naps.
const WAKE_AT: usize = 4;

/// How long the linger thread naps after appending batches before it looks again
/// (unless `WAKE_AT` batches wake it first): while senders stream, a full batch then
/// costs no futex wake-up. A batch handed over during a nap waits at most this long for
/// the thread to look (plus the appends it may be doing by then).
const NAP: Duration = Duration::from_micros(200);

/// What the senders and the linger thread share under the producer's lock: the full
/// batches handed over, and how the linger thread waits.
#[derive(Default)]
pub(super) struct Handoff {
    /// Full batches for the linger thread to append, so the sending thread goes on
    /// encoding while it does.
    pub(super) ready: Vec<Closed>,
    /// It is waiting (a ready batch may have to wake it).
    pub(super) waiting: bool,
    /// It waits with no deadline (no open batch): a new batch must wake it. While it
    /// waits until an earlier batch's deadline, a new batch need not.
    pub(super) idle: bool,
    /// It is napping after appending batches: it looks again within [`NAP`].
    pub(super) napping: bool,
}

impl Handoff {
    /// Takes a full batch for the linger thread, or puts it in `to_ship` for the
    /// sender to append when [`BACKLOG`] batches already wait. `true`: the caller must
    /// wake the linger thread (`notify_all`; it no longer counts as waiting).
    pub(super) fn offer(&mut self, c: Closed, to_ship: &mut Vec<Closed>) -> bool {
        if self.ready.len() >= BACKLOG {
            to_ship.push(c);
            return false;
        }
        self.ready.push(c);
        let wake = self.waiting && (!self.napping || self.ready.len() >= WAKE_AT);
        if wake {
            self.waiting = false;
        }
        wake
    }
}

impl Shared {
    /// Starts the linger thread.
    pub(super) fn spawn_linger(self: Arc<Self>) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("streamlog-linger".into())
            .spawn(move || self.linger_loop())
            .map_err(crate::error::io_ctx("start the producer's linger thread"))
    }

    /// Appends full batches handed over by senders, and batches whose `linger_ms` has
    /// passed.
    pub(super) fn linger_loop(&self) {
        let linger = Duration::from_millis(self.config.linger_ms);
        let mut st = self.state.lock();
        // Appended something since it last waited: it naps rather than sleeps.
        let mut busy = false;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            // The batches handed over and those whose linger passed, in every pass (the
            // expired ones taken only in a pass with nothing handed over waited for as
            // long as senders kept handing full batches over: a quiet partition's record
            // past its linger_ms, its sender waiting). The queue appends by ticket.
            let mut batches = std::mem::take(&mut st.linger.ready);
            let now = Instant::now();
            let expired: Vec<u64> = st
                .open
                .iter()
                .take_while(|(_, (_, _, created))| now.duration_since(*created) >= linger)
                .map(|(&id, _)| id)
                .collect();
            batches.extend(expired.into_iter().filter_map(|id| st.take_open(id)));
            if !batches.is_empty() {
                parking_lot::MutexGuard::unlocked(&mut st, || self.ship_all(batches));
                busy = true;
                continue;
            }
            st.linger.waiting = true;
            let deadline = st
                .open
                .values()
                .next()
                .and_then(|(_, _, c)| c.checked_add(linger));
            // Not with linger_ms 0 (async sends): a batch opening during a nap would
            // wait for it instead of being appended at once.
            let nap = (std::mem::take(&mut busy) && !linger.is_zero()).then(|| now + NAP);
            match (deadline, nap) {
                (d, Some(n)) => {
                    st.linger.napping = true;
                    self.cond.wait_until(&mut st, d.map_or(n, |d| d.min(n)));
                    st.linger.napping = false;
                }
                (Some(d), None) => {
                    self.cond.wait_until(&mut st, d);
                }
                (None, None) => {
                    st.linger.idle = true;
                    self.cond.wait(&mut st);
                    st.linger.idle = false;
                }
            }
            st.linger.waiting = false;
        }
    }
}
