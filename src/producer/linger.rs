//! The linger thread: appends batches whose `linger_ms` passed, and full batches the
//! sending threads handed over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use super::accumulator::Closed;
use crate::error::Result;

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
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if !st.ready.is_empty() {
                let batches = std::mem::take(&mut st.ready);
                parking_lot::MutexGuard::unlocked(&mut st, || self.ship_all(batches));
                continue;
            }
            let now = Instant::now();
            let expired: Vec<u64> = st
                .open
                .iter()
                .take_while(|(_, (_, _, created))| now.duration_since(*created) >= linger)
                .map(|(&id, _)| id)
                .collect();
            if !expired.is_empty() {
                let batches: Vec<Closed> = expired
                    .into_iter()
                    .filter_map(|id| st.take_open(id))
                    .collect();
                parking_lot::MutexGuard::unlocked(&mut st, || self.ship_all(batches));
                continue;
            }
            st.linger_waiting = true;
            match st
                .open
                .values()
                .next()
                .and_then(|(_, _, c)| c.checked_add(linger))
            {
                Some(d) => {
                    self.cond.wait_until(&mut st, d);
                }
                None => {
                    st.linger_idle = true;
                    self.cond.wait(&mut st);
                    st.linger_idle = false;
                }
            }
            st.linger_waiting = false;
        }
    }
}
