//! TTL keys: [`ThreadSafeState::set_with_ttl`]. The deadlines and the timer
//! live in the writer (`writer::expiry`).

use std::time::Duration;

use crate::error::StateError;
use crate::state::ThreadSafeState;
use crate::writer::command::Op;
use crate::Version;

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Set `key` to `value` for `ttl`: once `ttl` has passed, the writer
    /// removes the key in a commit of its own.
    ///
    /// The write itself is a `set` (recorded as
    /// [`Operation::Set`](crate::Operation::Set), counted in
    /// `writes_by_operation.set`). The TTL counts from when the writer
    /// applies it. At the deadline the writer commits the removal as a new
    /// version, recorded as [`Operation::Expire`](crate::Operation::Expire)
    /// with no `changed_by`; keys whose deadlines pass together expire in
    /// one commit. Being a commit, an expiry wakes
    /// [`wait_for`](Self::wait_for), [`watch_key`](Self::watch_key),
    /// subscribers ([`subscribe`](Self::subscribe)), change streams and
    /// prefix watches like any write. Until that commit, reads still see the key: the
    /// writer's timer has tokio's granularity (about a millisecond), and
    /// versions, not clocks, say what a reader sees.
    ///
    /// The TTL belongs to this value:
    /// - any later commit that writes or removes the key (`set`, `update`,
    ///   `delete`, `modify` with `Set` or `Delete`, `clear`, `retain`,
    ///   `set_if`, `delete_if`, a transaction) cancels it, and a later
    ///   `set_with_ttl` replaces it; a `modify` that keeps the value, or a
    ///   conditional write that fails, leaves it running;
    /// - a **rollback restores values, not TTLs**: a key the rollback
    ///   writes or removes has no TTL afterwards (an expired key that a
    ///   rollback brings back stays until it is written again), and a key
    ///   whose value the rollback leaves as it is keeps its TTL.
    ///
    /// TTLs live in the writer's memory: once the state is closed or its
    /// last handle dropped, nothing expires any more. A TTL too long for the
    /// clock to represent (hundreds of years) never expires.
    ///
    /// **On etcd** the key gets an etcd lease of its own, `ttl` rounded up
    /// to whole seconds (etcd raises it to its minimum, a few seconds with
    /// default election settings; a TTL beyond etcd's longest lease, about
    /// 285 years, never expires), and etcd deletes it: it expires even
    /// when no handle is running. A later put of the key without that
    /// lease (any write, from any process) cancels the TTL, as above, and
    /// the handle that granted the lease revokes it; the expiry is
    /// mirrored as a deletion recorded as
    /// [`Operation::External`](crate::Operation::External).
    /// A [durable](crate::Builder::durable) state refuses TTLs: its journal
    /// does not record deadlines yet.
    ///
    /// # Errors
    ///
    /// [`StateError::EmptyKey`] for an empty key; [`StateError::ZeroTtl`]
    /// for a zero `ttl` (nothing is written: to remove a key now, delete
    /// it); [`StateError::TimersDisabled`] if the writer's tokio runtime was
    /// built without timers (`enable_time`); [`StateError::TtlUnsupported`]
    /// on a durable state; [`StateError::Closed`] if the writer task has
    /// stopped.
    ///
    /// # Cancel safety
    ///
    /// As [`set`](Self::set): once the command is in the mailbox it is
    /// applied in full, TTL included; before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::{Operation, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let set = state
    ///     .set_with_ttl("lease/agent-1", "alive", Duration::from_secs(30))
    ///     .await?;
    /// assert!(state.contains_key("lease/agent-1"));
    ///
    /// // Waits are woken by the expiry like by any commit.
    /// let gone = state.wait_for(|s| !s.contains_key("lease/agent-1")).await?;
    /// assert_eq!(gone.version(), set.next());
    /// let expiry = &state.history(Some("lease/agent-1"), None)[0]; // newest first
    /// assert_eq!(expiry.operation, Operation::Expire);
    /// assert_eq!(expiry.old_value.as_deref(), Some(&"alive"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_with_ttl(
        &self,
        key: impl AsRef<str>,
        value: V,
        ttl: Duration,
    ) -> Result<Version, StateError> {
        self.submit(Op::set_with_ttl(key, value, ttl)?)
            .await
            .map(|applied| applied.version)
    }
}
