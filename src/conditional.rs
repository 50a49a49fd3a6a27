//! Optimistic concurrency: conditional writes and transactions, run in
//! the writer so that the check and the write are one atomic step.

use crate::error::{Precondition, StateError, TransactionError};
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::transaction::{AbortSlot, Write};
use crate::writer::command::Op;
use crate::Version;

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Set `key` to `value` only if `expected` holds for the key when the
    /// writer applies it (compare-and-set on per-key versions).
    ///
    /// Read a key's version with
    /// [`Snapshot::modified_version`], decide, then write with
    /// `Precondition::ModifiedAt(that version)`: if anyone wrote the key in
    /// between, the write fails instead of overwriting their update.
    ///
    /// # Errors
    ///
    /// [`StateError::Conflict`] if the precondition does not hold (nothing
    /// is written, no version is used); [`StateError::EmptyKey`] for an
    /// empty key; [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the write: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Precondition, StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("plan", "draft".to_string()).await?;
    ///
    /// let seen = state.snapshot();
    /// let version = seen.modified_version("plan").unwrap();
    /// state.set("plan", "someone else's".to_string()).await?;
    ///
    /// let mine = state
    ///     .set_if("plan", "mine".to_string(), Precondition::ModifiedAt(version))
    ///     .await;
    /// assert!(matches!(mine, Err(StateError::Conflict { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_if(
        &self,
        key: impl AsRef<str>,
        value: V,
        expected: Precondition,
    ) -> Result<Version, StateError> {
        self.submit(Op::set_if(key, value, expected)?)
            .await
            .map(|a| a.version)
    }

    /// Remove `key` only if `expected` holds for it when the writer applies
    /// it. Returns whether a key was removed.
    ///
    /// # Errors
    ///
    /// [`StateError::Conflict`] if the precondition does not hold (nothing
    /// is written); [`StateError::EmptyKey`] for an empty key;
    /// [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the write: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Precondition, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let v = state.set("lock", "agent-1").await?;
    /// assert!(state.delete_if("lock", Precondition::ModifiedAt(v)).await?);
    /// assert!(!state.contains_key("lock"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_if(
        &self,
        key: impl AsRef<str>,
        expected: Precondition,
    ) -> Result<bool, StateError> {
        self.submit(Op::delete_if(key, expected)?)
            .await
            .map(|a| a.committed)
    }

    /// Run `f` in the writer against the current state and commit the
    /// writes it returns as one version, atomically: no other write comes
    /// between what `f` read and what it wrote.
    ///
    /// `f` returning `Err` aborts: nothing is written, and the error comes
    /// back as [`TransactionError::Aborted`]. Writes that change nothing
    /// (no writes, or deleting absent keys) commit nothing and return the
    /// current version. Keep `f` short: the writer runs nothing else while
    /// it runs. `f`'s captures are part of it: they are dropped in the
    /// writer when `f` returns, so a panic in their `Drop` fails this
    /// command like a panic in `f` (nothing is written).
    ///
    /// # Errors
    ///
    /// [`TransactionError::Aborted`] with `f`'s error;
    /// [`TransactionError::State`] with [`StateError::TransactionPanicked`]
    /// if `f` panics (state, version and writer untouched),
    /// [`StateError::EmptyKey`] if a write names an empty key (nothing is
    /// written), or [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the transaction: once the
    /// command is in the mailbox it is applied in full, before that it is
    /// not applied.
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
    ///
    /// state
    ///     .transaction(|s| {
    ///         let alice = *s.get("alice").unwrap();
    ///         let bob = *s.get("bob").unwrap();
    ///         if alice < 20 {
    ///             return Err(format!("alice has only {alice}"));
    ///         }
    ///         Ok(vec![Write::set("alice", alice - 20), Write::set("bob", bob + 20)])
    ///     })
    ///     .await?;
    /// assert_eq!(state.get("bob").as_deref(), Some(&20));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction<E, F>(&self, f: F) -> Result<Version, TransactionError<E>>
    where
        F: FnOnce(&Snapshot<V>) -> Result<Vec<Write<V>>, E> + Send + 'static,
        E: Send + 'static,
    {
        let (slot, f) = AbortSlot::wrap(f);
        let applied = self.submit(Op::Transaction(f)).await?;
        slot.into_result(applied.version)
    }
}
