//! `modify` and `transaction` retried on conflict: etcd's STM loop, for
//! closures that can run more than once.
//!
//! In memory and on a journal a closure runs against the state it commits
//! to, so it never conflicts. On etcd another process can write between
//! the snapshot a closure saw and its txn, which then fails with
//! [`StateError::Conflict`]. These variants wait until this handle has
//! published the write that won, run the closure again on the newer
//! state, and try again.

use std::time::Duration;

use crate::error::{StateError, TransactionError};
use crate::modify::{Modification, Modified};
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::sync::{lock, Arc, Mutex};
use crate::transaction::Write;
use crate::Version;

/// How many times a closure is run before its conflict is returned.
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::MAX_CONFLICT_RETRIES, 64);
/// ```
pub const MAX_CONFLICT_RETRIES: u32 = 64;

/// How long a retry waits for this handle to publish the write that won
/// before it gives up and returns the conflict.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(10);

impl<V> ThreadSafeState<V>
where
    V: Send + Sync + 'static,
{
    /// [`modify`](Self::modify), run again on [`StateError::Conflict`] until
    /// it commits: for an etcd state, where another process's write to the
    /// key between the snapshot `f` saw and the txn is a conflict.
    ///
    /// Before each new attempt it waits until this handle has published
    /// the conflicting write, so `f` sees it. In memory and on a journal
    /// `modify` never conflicts, and this is `modify`.
    ///
    /// # Errors
    ///
    /// As [`modify`](Self::modify). [`StateError::Conflict`] only after
    /// [`MAX_CONFLICT_RETRIES`] attempts, or when the write that won does
    /// not show up on this handle within 10 seconds (its mirror is cut off,
    /// or the value there does not decode as `V`): the state stays as the
    /// winner left it.
    ///
    /// # Cancel safety
    ///
    /// As [`modify`](Self::modify): each attempt commits in full or not at
    /// all; dropping the future stops further attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Modification, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let increment = |n: Option<&u32>| Modification::Set(n.copied().unwrap_or(0) + 1);
    /// let done = state.modify_retrying("completed", increment).await?;
    /// assert_eq!(done.value.as_deref(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn modify_retrying<F>(
        &self,
        key: impl AsRef<str>,
        f: F,
    ) -> Result<Modified<V>, StateError>
    where
        F: FnMut(Option<&V>) -> Modification<V> + Send + 'static,
    {
        let key = key.as_ref();
        // Shared with each attempt's closure, so `f` itself is dropped
        // here, never in the writer.
        let f = Arc::new(Mutex::new(f));
        let mut retry = Retry::new();
        loop {
            let seen = self.version();
            let attempt = Arc::clone(&f);
            match self.modify(key, move |now| (lock(&attempt))(now)).await {
                Err(conflict @ StateError::Conflict { .. }) => {
                    retry.after(self, conflict, seen).await?;
                }
                done => return done,
            }
        }
    }

    /// [`transaction`](Self::transaction), run again on
    /// [`StateError::Conflict`] until it commits: for an etcd state, where
    /// another process's write under the prefix between the snapshot `f`
    /// saw and the txn is a conflict.
    ///
    /// Before each new attempt it waits until this handle has published
    /// the conflicting write, so `f` sees it. In memory and on a journal
    /// `transaction` never conflicts, and this is `transaction`.
    ///
    /// # Errors
    ///
    /// As [`transaction`](Self::transaction); `f` returning `Err` ends the
    /// loop with [`TransactionError::Aborted`].
    /// [`StateError::Conflict`] only after [`MAX_CONFLICT_RETRIES`]
    /// attempts, or when the write that won does not show up on this
    /// handle within 10 seconds.
    ///
    /// # Cancel safety
    ///
    /// As [`transaction`](Self::transaction): each attempt commits in full
    /// or not at all; dropping the future stops further attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Write};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::TransactionError<String>> {
    /// let state = ThreadSafeState::new();
    /// state.update([("alice", 50), ("bob", 0)]).await?;
    /// state
    ///     .transaction_retrying(|s| {
    ///         let (alice, bob) = (*s.get("alice").unwrap(), *s.get("bob").unwrap());
    ///         Ok::<_, String>(vec![Write::set("alice", alice - 20), Write::set("bob", bob + 20)])
    ///     })
    ///     .await?;
    /// assert_eq!(state.get("bob").as_deref(), Some(&20));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction_retrying<E, F>(&self, f: F) -> Result<Version, TransactionError<E>>
    where
        F: FnMut(&Snapshot<V>) -> Result<Vec<Write<V>>, E> + Send + 'static,
        E: Send + 'static,
    {
        let f = Arc::new(Mutex::new(f));
        let mut retry = Retry::new();
        loop {
            let seen = self.version();
            let attempt = Arc::clone(&f);
            match self
                .transaction(move |snapshot| (lock(&attempt))(snapshot))
                .await
            {
                Err(TransactionError::State(conflict @ StateError::Conflict { .. })) => {
                    retry.after(self, conflict, seen).await?;
                }
                done => return done,
            }
        }
    }
}

/// The retry loop's bookkeeping.
struct Retry {
    attempts: u32,
}

impl Retry {
    fn new() -> Self {
        Self { attempts: 0 }
    }

    /// After `conflict` on an attempt made when the handle showed `seen`:
    /// wait until the handle shows the write that won, or give up with
    /// the conflict.
    async fn after<V>(
        &mut self,
        state: &ThreadSafeState<V>,
        conflict: StateError,
        seen: Version,
    ) -> Result<(), StateError> {
        self.attempts += 1;
        if self.attempts >= MAX_CONFLICT_RETRIES {
            return Err(conflict);
        }
        let StateError::Conflict { found, .. } = &conflict else {
            return Err(conflict);
        };
        // The winner's revision when the key still exists; a deletion's is
        // unknown, but it is newer than anything this handle had seen.
        let winner = found.map_or(seen.next(), |found| found.max(seen.next()));
        match state
            .wait_for_timeout(|snapshot| snapshot.version() >= winner, CATCH_UP_PATIENCE)
            .await
        {
            Ok(_) => Ok(()),
            Err(StateError::Timeout { .. }) => Err(conflict),
            Err(closed) => Err(closed),
        }
    }
}
