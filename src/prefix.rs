//! [`PrefixWatch`]: the commits that touch keys under one prefix.

use std::fmt;

use crate::error::StateError;
use crate::history::ChangeSet;
use crate::state::ThreadSafeState;
use crate::stream::ChangeStream;

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// A watch on every key that starts with `prefix`: it yields each later
    /// commit that writes or removes such a key, with only those keys'
    /// records, in version order, each commit once. Commits that touch
    /// other keys only are skipped without waking the caller.
    ///
    /// It is a filtered [`changes_since`](Self::changes_since) from the
    /// current version, so it buffers and lags like a change stream.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let mut tasks = state.watch_prefix("task/")?;
    /// state.set("agent/a", 1).await?; // another namespace: skipped
    /// state.update([("task/7", 7), ("agent/b", 2)]).await?;
    /// let change = tasks.changed().await?;
    /// assert_eq!(change.version.get(), 2);
    /// assert_eq!(change.records.len(), 1);
    /// assert_eq!(change.records[0].key, "task/7");
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_prefix(&self, prefix: impl Into<String>) -> Result<PrefixWatch<V>, StateError> {
        Ok(PrefixWatch {
            changes: self.changes_since(self.shared().published())?,
            prefix: prefix.into(),
            lagged: None,
        })
    }
}

/// Waits for commits under one key prefix; made by
/// [`ThreadSafeState::watch_prefix`].
///
/// Like a change stream, it does not keep the state alive.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = thread_safe_state::ThreadSafeState::<u8>::new();
/// let tasks = state.watch_prefix("task/")?;
/// assert_eq!(tasks.prefix(), "task/");
/// # Ok(())
/// # }
/// ```
pub struct PrefixWatch<V> {
    changes: ChangeStream<V>,
    prefix: String,
    /// Once the watch fell behind, the `Lagged` error it keeps returning:
    /// its stream has ended, but the state has not closed.
    lagged: Option<StateError>,
}

impl<V: Send + Sync + 'static> PrefixWatch<V> {
    /// The watched prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::<u8>::new();
    /// assert_eq!(state.watch_prefix("agent/")?.prefix(), "agent/");
    /// # Ok(())
    /// # }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The next commit that writes or removes a key under the prefix, with
    /// only those keys' records.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] once the writer has stopped and every commit
    /// before has been returned; [`StateError::Lagged`] if this watch fell
    /// behind by more than the builder's `change_stream_capacity`, and on
    /// every call after that (resume with
    /// [`changes_from`](ThreadSafeState::changes_from) and filter, or open
    /// a new watch).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a commit is taken only when returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::StateError;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let mut tasks = state.watch_prefix("task/")?;
    /// state.set("task/1", "claimed").await?;
    /// state.delete("task/1").await?;
    /// assert_eq!(tasks.changed().await?.records[0].new_value.as_deref(), Some(&"claimed"));
    /// assert_eq!(tasks.changed().await?.records[0].new_value, None);
    /// state.close().await?;
    /// assert_eq!(tasks.changed().await.unwrap_err(), StateError::Closed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn changed(&mut self) -> Result<ChangeSet<V>, StateError> {
        if let Some(lagged) = &self.lagged {
            return Err(lagged.clone());
        }
        loop {
            let Some(change) = self.changes.next().await else {
                return Err(StateError::Closed);
            };
            let mut change = match change {
                Ok(change) => change,
                Err(error @ StateError::Lagged { .. }) => {
                    self.lagged = Some(error.clone());
                    return Err(error);
                }
                Err(error) => return Err(error),
            };
            change
                .records
                .retain(|record| record.key.starts_with(&self.prefix));
            if !change.records.is_empty() {
                return Ok(change);
            }
        }
    }
}

impl<V> fmt::Debug for PrefixWatch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch")
            .field("prefix", &self.prefix)
            .field("changes", &self.changes)
            .finish()
    }
}
