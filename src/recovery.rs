//! Recovery helpers: roll back to the newest retained version that passes
//! a check.
//!
//! The Python seed (section 7.3) has three recovery helpers. Here they are:
//!
//! - *roll back to the last known good version*:
//!   [`rollback_to_last_good`](ThreadSafeState::rollback_to_last_good), in
//!   this file (and its blocking form,
//!   [`Blocking::rollback_to_last_good`](crate::Blocking::rollback_to_last_good));
//! - *recover to known good keys*: [`retain`](ThreadSafeState::retain),
//!   which keeps the named keys and removes every other one;
//! - *marks* (`mark("before-codegen")`, then `rollback_to_mark`): not
//!   provided, on purpose. A [`Version`] already is that label: keep the
//!   one a write returned in a variable, or store it under a key of the
//!   state, and pass it to [`rollback`](ThreadSafeState::rollback) later.
//!   Named marks would be a second, mutable name space over the versions,
//!   needing their own retention rule against the bounded history (a mark
//!   older than `max_history` would name a version that cannot be reached
//!   any more, or would have to pin it), and `rollback_to_mark` would only
//!   repeat `rollback(version)`.
//!
//! # Why the rollback is conditional
//!
//! The search runs in the caller's task, never in the writer, so a slow
//! predicate cannot hold up any write; the price is that other writes may
//! commit while it runs. A plain rollback decided on version `N` would then
//! silently discard whatever committed after `N`, though the predicate
//! never looked at it. So the rollback is sent as a command that applies
//! only while the current version is still `N`; if the state moved on, it
//! fails with [`StateError::VersionMoved`] and the search runs again over
//! the new versions (which may be good, or bad). Whatever a recovery rolls
//! back over, its predicate has seen and rejected.

use crate::error::StateError;
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::writer::command::Op;
use crate::Version;

/// How many times a recovery searches before it gives up on a state that
/// keeps moving.
pub(crate) const ATTEMPTS: usize = 8;

/// What a search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// The current version passes: nothing to do.
    Current(Version),
    /// Roll back to `target`, if the current version is still `current`.
    Older { target: Version, current: Version },
}

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Roll back to the newest retained version whose snapshot satisfies
    /// `predicate`: the Python seed's "roll back to the last known good
    /// version".
    ///
    /// The search starts at the current version and goes back, one version
    /// at a time, to the oldest one the history retains (see
    /// [`Builder::max_history`](crate::Builder::max_history)), showing
    /// `predicate` each version's whole [`Snapshot`] as
    /// [`snapshot_at`](Self::snapshot_at) would: O(1) for a published
    /// version, a short replay for one inside a group commit. It stops at
    /// the first snapshot that passes.
    ///
    /// - If the **current version passes**, nothing is committed and the
    ///   current version is returned.
    /// - Otherwise it commits one [`rollback`](Self::rollback) to the version
    ///   found (a new version, with the found version's contents) and
    ///   returns the new version. That rollback applies only if nothing
    ///   committed since the search started; if something did, the search
    ///   runs again on the new state, up to 8 times in all. So every version
    ///   a recovery rolls back over was shown to `predicate` and rejected:
    ///   a concurrent write is never discarded unseen.
    ///
    /// `predicate` runs in the calling task, never in the writer: a slow or
    /// blocking predicate delays no write (it does delay this task; run a
    /// heavy one through [`blocking`](Self::blocking) on a blocking thread).
    /// Describe a state, not an event: it may see the same snapshot again
    /// when the search is repeated.
    ///
    /// # Errors
    ///
    /// - [`StateError::NoGoodVersion`] if no retained version passes (naming
    ///   the oldest version searched; raise `max_history` to search further);
    /// - [`StateError::VersionMoved`] if other writes committed during each
    ///   of the 8 searches; nothing was rolled back;
    /// - [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Panics
    ///
    /// If `predicate` panics; nothing has been committed then.
    ///
    /// # Cancel safety
    ///
    /// The searches never await, so the future can only be dropped while a
    /// rollback command is on its way. Dropping it then never half-applies
    /// the rollback: once the command is in the mailbox it is applied in
    /// full (if the state has not moved), before that it is not applied.
    /// Check [`version`](Self::version) or [`history`](Self::history) to
    /// learn which.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("phase", "parse").await?;
    /// let good = state.set("phase", "generate").await?;
    /// state.update([("phase", "failed"), ("error", "codegen crashed")]).await?;
    ///
    /// let not_failed = |s: &thread_safe_state::Snapshot<&str>| {
    ///     s.get("phase").as_deref() != Some(&"failed")
    /// };
    /// let recovered = state.rollback_to_last_good(not_failed).await?;
    /// assert_eq!(recovered.get(), 4); // a new version with `good`'s contents
    /// assert_eq!(state.snapshot_at(good)?.get("phase"), state.get("phase"));
    /// assert!(!state.contains_key("error"));
    ///
    /// // Already good: nothing is committed.
    /// assert_eq!(state.rollback_to_last_good(not_failed).await?, recovered);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback_to_last_good(
        &self,
        mut predicate: impl FnMut(&Snapshot<V>) -> bool,
    ) -> Result<Version, StateError> {
        let mut moved = None;
        for _ in 0..ATTEMPTS {
            let (target, current) = match search(self, &mut predicate)? {
                Found::Current(version) => return Ok(version),
                Found::Older { target, current } => (target, current),
            };
            let op = Op::RollbackIf {
                target,
                expected_current: current,
            };
            match self.submit(op).await {
                Err(error @ StateError::VersionMoved { .. }) => moved = Some(error),
                reply => return reply.map(|a| a.version),
            }
        }
        Err(moved.expect("ATTEMPTS > 0"))
    }
}

/// The newest retained version, from the current one back, whose snapshot
/// passes `predicate`.
///
/// It searches one O(1) copy of the history, taken once: every version it
/// looks at belongs to the same window, and no lock the writer takes is
/// held while `predicate` runs.
pub(crate) fn search<V>(
    state: &ThreadSafeState<V>,
    predicate: &mut impl FnMut(&Snapshot<V>) -> bool,
) -> Result<Found, StateError> {
    let (history, current) = state.shared().history();
    let oldest_retained = history.oldest_retained(current);
    let mut version = current;
    loop {
        let snapshot = history
            .snapshot_at(version, current)
            .map_err(|unreachable| unreachable.into_error(version, current))?;
        if predicate(&snapshot) {
            return Ok(if version == current {
                Found::Current(current)
            } else {
                Found::Older {
                    target: version,
                    current,
                }
            });
        }
        if version == oldest_retained {
            return Err(StateError::NoGoodVersion {
                oldest_retained,
                current,
            });
        }
        // The previous commit: `version - 1` in memory, the previous
        // revision that touched the state on etcd.
        version = history.version_before(version);
    }
}
