//! Members that stop polling for longer than their `max_poll_interval_ms` are removed,
//! and their partitions go to the others. A group's members find them at their own
//! polls; but a member waiting in [`Consumer::recv`](crate::Consumer::recv) does not
//! poll until the store's notifier wakes it, and nothing woke it for a member that went
//! stale: it waited for ever on partitions no one read. So the store's maintenance
//! thread also expires members on a timer, in the groups where a member waits (Kafka's
//! coordinator expires members by itself): at their deadlines, and at least every
//! second while a member waits. A member blocked in `poll` counts as waiting too, as a
//! Kafka consumer blocked in `poll` is alive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{Coordinator, Group, Member, rebalance};

/// Whether `m` is alive: it polled within its `max_poll_interval_ms`, or waits in
/// `recv` or a blocking `poll`. One that is not is removed by the next expiry (another
/// member's poll, the waiter timer) or admin operation on its group.
pub(super) fn is_live(m: &Member, now: Instant) -> bool {
    m.waiting || now.duration_since(m.last_poll) <= m.max_poll_interval
}

/// Removes the group's members that stopped polling (a member waiting in `recv` is
/// alive); whether any was.
pub(super) fn expire(g: &mut Group, now: Instant) -> bool {
    let before = g.members.len();
    g.members.retain(|_, m| is_live(m, now));
    g.members.len() != before
}

impl Coordinator {
    /// Calls `f` whenever a member starts waiting in `recv` (to wake the timer).
    pub(crate) fn set_on_wait(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.on_wait.lock() = Some(Box::new(f));
    }

    /// Expires the stale members of every group where a member waits in `recv` (the
    /// others are expired at their members' next poll), rebalancing those groups;
    /// whether any member was removed (the waiters must then be woken).
    pub(crate) fn expire_for_waiters(
        &self,
        counts: &dyn Fn(&BTreeSet<String>) -> BTreeMap<String, i32>,
    ) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock();
        let mut any = false;
        for g in st.groups.values_mut() {
            if g.members.values().any(|m| m.waiting) && expire(g, now) {
                rebalance(g, counts);
                any = true;
            }
        }
        any
    }

    /// Whether a member of some group waits in `recv`.
    pub(crate) fn has_waiters(&self) -> bool {
        let st = self.state.lock();
        st.groups
            .values()
            .any(|g| g.members.values().any(|m| m.waiting))
    }

    /// When the next member of a group where a member waits in `recv` goes stale.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        let st = self.state.lock();
        st.groups
            .values()
            .filter(|g| g.members.values().any(|m| m.waiting))
            .flat_map(|g| g.members.values().filter(|m| !m.waiting))
            .filter_map(|m| m.last_poll.checked_add(m.max_poll_interval))
            .min()
    }
}
