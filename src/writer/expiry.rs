//! TTL keys: which keys expire when, and the writer's timer.
//!
//! The writer owns expiry. [`Expiry`] is its bookkeeping: each key with a
//! TTL and its deadline, ordered by deadline. The commit core consults it
//! at three points:
//! - a [`set_with_ttl`](crate::ThreadSafeState::set_with_ttl) stages its
//!   key's deadline, armed when the write commits;
//! - every commit forgets the TTL of each key it writes or removes, so a
//!   later `set`, `update`, `delete`, `modify`, `clear`, transaction or
//!   rollback of the key cancels its TTL (and a later `set_with_ttl`
//!   replaces it);
//! - every group first removes the keys whose deadline has passed, as one
//!   commit of its own ([`Operation::Expire`](crate::Operation::Expire)).
//!
//! The writer loop ([`Writer::receive`]) races the mailbox against a sleep
//! until the next deadline, and when the sleep wins it runs a group with no
//! commands, which is just that expiry commit. No TTL, no timer: a state
//! that never uses TTLs awaits its mailbox exactly as before, and each
//! commit pays one emptiness check.
//!
//! Expiry runs no user code: removing a key drops only the writer's
//! `Arc<str>`s here; the removed values go to the group's retired list and
//! are dropped after the publish like any other replaced value.

use std::collections::{BTreeSet, HashMap};
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::error::StateError;
use crate::history::Change;
use crate::sync::{sleep_until, Arc, TimerInstant};
use crate::writer::command::Command;
use crate::writer::{Writer, MAX_BATCH};

/// How far past a deadline the clock must still reach for the deadline to
/// be armed at all.
const CLOCK_HEADROOM: Duration = Duration::from_secs(1);

/// The deadlines of the keys that have a TTL.
pub(crate) struct Expiry {
    /// Deadline and key, soonest first (ties broken by key).
    queue: BTreeSet<(TimerInstant, Arc<str>)>,
    /// Each key's deadline, to cancel or replace it by key.
    deadlines: HashMap<Arc<str>, TimerInstant>,
    /// The deadline of the `set_with_ttl` being applied, armed when it
    /// commits.
    staged: Option<(Arc<str>, TimerInstant)>,
    /// Whether the writer's runtime has timers, once a TTL asked.
    timers: Option<bool>,
    /// The state is durable: deadlines are not journalled, so a TTL would
    /// silently stop expiring after a restart. Refused instead.
    durable: bool,
}

impl Expiry {
    pub(crate) fn new() -> Self {
        Self {
            queue: BTreeSet::new(),
            deadlines: HashMap::new(),
            staged: None,
            timers: None,
            durable: false,
        }
    }

    /// Refuse TTLs: the state's commits go to a journal, which does not
    /// record deadlines.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn refuse(&mut self) {
        self.durable = true;
    }

    /// The deadline `ttl` from now, or `None` for a TTL too long for the
    /// clock to represent (such a key never expires).
    ///
    /// # Errors
    ///
    /// [`StateError::TimersDisabled`] if the writer's runtime cannot run
    /// timers: a sleep there would panic and stop the writer.
    pub(crate) fn deadline(&mut self, ttl: Duration) -> Result<Option<TimerInstant>, StateError> {
        if self.durable {
            return Err(StateError::TtlUnsupported);
        }
        if !*self.timers.get_or_insert_with(timers_enabled) {
            return Err(StateError::TimersDisabled);
        }
        // Headroom past the deadline: tokio rounds a sleep's deadline up
        // to its next millisecond tick, which must not overflow the clock.
        // A deadline that close to the clock's end is "never".
        let now = TimerInstant::now();
        Ok(now
            .checked_add(ttl.saturating_add(CLOCK_HEADROOM))
            .and_then(|_| now.checked_add(ttl)))
    }

    /// Arm `key`'s deadline when the write being applied commits.
    pub(crate) fn stage(&mut self, key: Arc<str>, deadline: TimerInstant) {
        self.staged = Some((key, deadline));
    }

    /// A commit wrote or removed `changes`: their keys lose any TTL, then
    /// the staged deadline (of a `set_with_ttl` in this commit) is armed.
    /// O(1) while no key has a TTL.
    pub(crate) fn committed<V>(&mut self, changes: &[Change<V>]) {
        if !self.deadlines.is_empty() {
            for change in changes {
                self.forget(&change.key);
            }
        }
        if let Some((key, deadline)) = self.staged.take() {
            self.deadlines.insert(Arc::clone(&key), deadline);
            self.queue.insert((deadline, key));
        }
    }

    fn forget(&mut self, key: &str) {
        if let Some((key, deadline)) = self.deadlines.remove_entry(key) {
            self.queue.remove(&(deadline, key));
        }
    }

    /// The soonest deadline, if any key has a TTL.
    pub(crate) fn next(&self) -> Option<TimerInstant> {
        self.queue.first().map(|(deadline, _)| *deadline)
    }

    /// Take the keys whose deadline has passed, in key order. Reads the
    /// clock only if some key has a TTL.
    pub(crate) fn take_due(&mut self) -> Vec<Arc<str>> {
        let Some(first) = self.next() else {
            return Vec::new();
        };
        let now = TimerInstant::now();
        if first > now {
            return Vec::new();
        }
        let mut due = Vec::new();
        while let Some(entry) = self.queue.first() {
            if entry.0 > now {
                break;
            }
            let (_, key) = self.queue.pop_first().expect("a first entry");
            self.deadlines.remove(&key);
            due.push(key);
        }
        due.sort_unstable();
        due
    }
}

/// Whether the current runtime can run timers: creating a tokio sleep
/// panics otherwise (no runtime, or one built without `enable_time`).
/// Asked once per state, by the writer, when the first TTL arrives.
fn timers_enabled() -> bool {
    catch_unwind(AssertUnwindSafe(|| drop(sleep_until(TimerInstant::now())))).is_ok()
}

impl<V> Writer<V> {
    /// The next burst of commands from the mailbox, at most [`MAX_BATCH`];
    /// 0 once every sender is gone and the mailbox is empty.
    ///
    /// While a key has a TTL, this also sleeps until the soonest deadline;
    /// when that comes first it commits the expiry (a group with no
    /// commands) and goes back to waiting. `recv_many` is cancel safe, so
    /// losing the race loses no command.
    pub(super) async fn receive(&mut self, batch: &mut Vec<Command<V>>) -> usize {
        loop {
            let Some(deadline) = self.committer.next_expiry() else {
                return self.inbox.recv_many(batch, MAX_BATCH).await;
            };
            match first_or_none(self.inbox.recv_many(batch, MAX_BATCH), deadline).await {
                Some(received) => return received,
                None => self.committer.commit_batch(std::iter::empty()),
            }
        }
    }
}

/// `future`'s output, or `None` if `deadline` passes first.
async fn first_or_none<F: Future>(future: F, deadline: TimerInstant) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut sleep = pin!(sleep_until(deadline));
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str) -> Change<u8> {
        Change {
            key: Arc::from(key),
            old: None,
            new: Some(Arc::new(0)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_armed_on_commit_replaced_cancelled_and_taken_in_order() {
        let mut expiry = Expiry::new();
        let t = |secs| expiry_deadline(secs);
        expiry.stage(Arc::from("b"), t(2));
        expiry.committed(&[change("b")]);
        expiry.stage(Arc::from("a"), t(2));
        expiry.committed(&[change("a")]);
        expiry.stage(Arc::from("c"), t(1));
        expiry.committed(&[change("c")]);
        assert_eq!(expiry.next(), Some(t(1)));
        // A plain write of "c" cancels its TTL; re-arming "a" replaces its.
        expiry.committed(&[change("c")]);
        expiry.stage(Arc::from("a"), t(3));
        expiry.committed(&[change("a")]);
        assert_eq!(expiry.next(), Some(t(2)));
        assert!(expiry.take_due().is_empty());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(expiry.take_due(), [Arc::from("a"), Arc::from("b")]);
        assert_eq!(expiry.next(), None);
        assert!(expiry.deadlines.is_empty());
    }

    fn expiry_deadline(secs: u64) -> TimerInstant {
        // The paused clock does not move unless advanced.
        TimerInstant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn without_a_runtime_there_are_no_timers() {
        assert_eq!(
            Expiry::new().deadline(Duration::from_secs(1)),
            Err(StateError::TimersDisabled)
        );
    }
}
