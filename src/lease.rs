//! Handles whose keys live as long as their agent: etcd leases.

use std::time::Duration;

use crate::error::StateError;
use crate::state::ThreadSafeState;

impl<V> ThreadSafeState<V>
where
    V: Send + Sync + 'static,
{
    /// A handle for `agent` (as [`for_agent`](Self::for_agent)) whose keys
    /// live only as long as the agent: on an etcd state it grants an etcd
    /// lease of `ttl`, and every key the handle puts (`set`, `update`,
    /// `set_if`, `modify`, `transaction`) is attached to it.
    ///
    /// - While any clone of the returned handle lives, a task renews the
    ///   lease every third of its TTL.
    /// - When the last clone is dropped, the lease is revoked: the agent's
    ///   keys are deleted at once.
    /// - When the agent's process dies (or cannot reach etcd for `ttl`),
    ///   nobody renews the lease and etcd deletes the keys `ttl` later.
    ///
    /// Either way the deletions are ordinary revisions: every handle on
    /// the prefix sees the keys go, and its waiters wake. This is etcd's
    /// building block for membership and leader election: an agent that
    /// dies leaves no stale "I am working on it" behind.
    ///
    /// A key written later by another handle (without this lease) is no
    /// longer the agent's: it stays. A rollback's writes carry no lease.
    /// A view of the returned handle ([`for_agent`](Self::for_agent),
    /// a clone) shares its lease. `ttl` is rounded up to whole seconds;
    /// etcd raises it to its minimum (a few seconds with default election
    /// settings) and caps it at its maximum (about 285 years). The lease is
    /// renewed on the state's runtime, and revoked through the state's
    /// writer, like any of its writes.
    ///
    /// # Errors
    ///
    /// [`StateError::LeasesUnsupported`] on a state that is not on etcd;
    /// [`StateError::ZeroTtl`] for a zero `ttl`;
    /// [`StateError::OutcomeUnknown`] or [`StateError::EtcdRejected`] if
    /// the lease could not be granted. Once the lease is lost (etcd says
    /// so, or it could not be renewed within its TTL), every write through
    /// the handle fails with [`StateError::LeaseExpired`] and is not
    /// applied.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # #[cfg(feature = "etcd")]
    /// # {
    /// let state = ThreadSafeState::<String>::builder()
    ///     .etcd(["http://127.0.0.1:2379"], "workers/")
    ///     .connect()
    ///     .await?;
    /// let worker = state.for_agent_with_lease("worker-7", Duration::from_secs(5)).await?;
    /// worker.set("claimed/job-42", "worker-7".to_string()).await?;
    /// // ... if this process dies, `claimed/job-42` is gone 5 s later;
    /// drop(worker); // done: the claim goes now
    /// state.wait_for(|s| !s.contains_key("claimed/job-42")).await?;
    /// # }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// An in-memory state has no leases:
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u32>::new();
    /// let refused = state.for_agent_with_lease("a", Duration::from_secs(5)).await;
    /// assert_eq!(refused.unwrap_err(), StateError::LeasesUnsupported);
    /// # }
    /// ```
    pub async fn for_agent_with_lease(
        &self,
        agent: impl AsRef<str>,
        ttl: Duration,
    ) -> Result<Self, StateError> {
        #[cfg(feature = "etcd")]
        if let Some(link) = self.shared().etcd.get() {
            let mailbox = self.mailbox();
            let revoke = Box::new(move |lease| {
                Self::try_send_unanswered(&mailbox, crate::writer::command::Op::RevokeLease(lease))
            });
            let lease = link.grant(ttl, revoke).await?;
            let mut handle = self.for_agent(agent);
            handle.lease = Some(crate::sync::Arc::new(lease));
            return Ok(handle);
        }
        let _ = (agent, ttl);
        Err(StateError::LeasesUnsupported)
    }

    /// The id of the etcd lease this handle's keys are attached to (see
    /// [`for_agent_with_lease`](Self::for_agent_with_lease)), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u32>::new();
    /// assert_eq!(state.lease_id(), None);
    /// # }
    /// ```
    pub fn lease_id(&self) -> Option<i64> {
        #[cfg(feature = "etcd")]
        if let Some(lease) = &self.lease {
            return Some(lease.id());
        }
        None
    }
}

#[cfg(feature = "etcd")]
impl<V> ThreadSafeState<V> {
    /// `Ok` unless `op` is a write and this handle's lease is known to be
    /// lost (`close` always goes through).
    pub(crate) fn lease_alive(&self, op: &crate::writer::command::Op<V>) -> Result<(), StateError> {
        match &self.lease {
            Some(lease) if !matches!(op, crate::writer::command::Op::Close) => lease.alive(),
            _ => Ok(()),
        }
    }

    /// etcd said the lease is gone: every later write through this handle
    /// (a delete carries no lease, so etcd would apply it) fails at once.
    pub(crate) fn lease_answered(&self, reply: &crate::writer::command::Reply) {
        if let (Some(lease), Err(StateError::LeaseExpired { .. })) = (&self.lease, reply) {
            lease.mark_expired();
        }
    }
}
