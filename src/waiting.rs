//! Waiting instead of polling: for a condition on the whole state, or for
//! one key to change.

use std::fmt;
use std::time::Duration;

use crate::error::StateError;
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::subscriber::Subscriber;
use crate::sync::Arc;
use crate::Version;

impl<V> ThreadSafeState<V> {
    /// Wait until `predicate` holds, and return the snapshot it held for.
    ///
    /// The current snapshot is checked first, then each published one.
    /// Versions committed in quick succession may be seen only as the
    /// latest of them (like `watch`, it coalesces), so the predicate should
    /// describe a state, not an event.
    ///
    /// The predicate runs in the waiting task, on an owned snapshot, with no
    /// lock held: it may be slow or read the state, and it never delays a
    /// write.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] if the writer stops (every handle dropped, or
    /// its runtime shut down) before the predicate holds.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let agent = state.clone();
    /// tokio::spawn(async move { agent.set("models_done", true).await });
    ///
    /// let ready = state.wait_for(|s| s.contains_key("models_done")).await?;
    /// assert_eq!(ready.get("models_done").as_deref(), Some(&true));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(
        &self,
        predicate: impl FnMut(&Snapshot<V>) -> bool,
    ) -> Result<Snapshot<V>, StateError> {
        self.subscribe().wait_for(predicate).await
    }

    /// [`wait_for`](Self::wait_for), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`StateError::Timeout`] if the predicate did not hold in time,
    /// with the last version it was checked against;
    /// [`StateError::Closed`] if the writer stopped first.
    ///
    /// # Panics
    ///
    /// If the tokio runtime was built without timers (`enable_time`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u32>::new();
    /// let waited = state
    ///     .wait_for_timeout(|s| s.contains_key("never"), Duration::from_secs(5))
    ///     .await;
    /// assert!(matches!(waited, Err(StateError::Timeout { .. })));
    /// # }
    /// ```
    pub async fn wait_for_timeout(
        &self,
        mut predicate: impl FnMut(&Snapshot<V>) -> bool,
        timeout: Duration,
    ) -> Result<Snapshot<V>, StateError> {
        let mut last_seen = Version::INITIAL;
        let waiting = self.wait_for(|snapshot| {
            last_seen = snapshot.version();
            predicate(snapshot)
        });
        let outcome = tokio::time::timeout(timeout, waiting).await;
        outcome.unwrap_or(Err(StateError::Timeout {
            waited: timeout,
            last_seen,
        }))
    }

    /// A watch on one key that wakes only when that key is written
    /// (its modified version changes), not for writes to other keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let mut completed = state.watch_key("completed_agents");
    /// let agent = state.clone();
    /// tokio::spawn(async move {
    ///     agent.set("unrelated", 0).await?;
    ///     agent.set("completed_agents", 1).await
    /// });
    /// // Resolves for the write to "completed_agents" only.
    /// assert_eq!(completed.changed().await?.as_deref(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_key(&self, key: impl AsRef<str>) -> KeyWatch<V> {
        let key: Arc<str> = Arc::from(key.as_ref());
        let mut updates = self.subscribe();
        let seen = updates.borrow_and_update().modified_version(&key);
        KeyWatch { updates, key, seen }
    }
}

/// Waits for writes to one key; made by [`ThreadSafeState::watch_key`].
///
/// Like a `watch::Receiver`, it does not keep the state alive.
///
/// # Examples
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = thread_safe_state::ThreadSafeState::new();
/// let mut phase = state.watch_key("phase");
/// state.set("other", 0).await?; // not the watched key: no wake-up
/// state.set("phase", 1).await?;
/// assert_eq!(phase.changed().await?.as_deref(), Some(&1));
/// state.delete("phase").await?;
/// assert_eq!(phase.changed().await?, None);
/// # Ok(())
/// # }
/// ```
pub struct KeyWatch<V> {
    updates: Subscriber<V>,
    key: Arc<str>,
    /// The key's modified version when last reported (`None`: absent).
    seen: Option<Version>,
}

impl<V> KeyWatch<V> {
    /// The watched key.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = thread_safe_state::ThreadSafeState::<u8>::new();
    /// assert_eq!(state.watch_key("phase").key(), "phase");
    /// # }
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key's value in the latest published snapshot. Lock-free.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// state.set("phase", 1).await?;
    /// assert_eq!(state.watch_key("phase").current().as_deref(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn current(&self) -> Option<Arc<V>> {
        self.updates.borrow().get(&self.key)
    }

    /// Wait until the key is written (set, modified, deleted or restored by
    /// a rollback) after the last change this watch reported, and return
    /// its new value (`None` if it was removed). Several writes in quick
    /// succession may be reported once, with the latest value.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] once the writer has stopped (every handle
    /// dropped, or its runtime shut down) and the key's last change has
    /// been reported.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a change is marked seen only when it is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let mut phase = state.watch_key("phase");
    /// state.set("phase", "generate").await?;
    /// assert_eq!(phase.changed().await?.as_deref(), Some(&"generate"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn changed(&mut self) -> Result<Option<Arc<V>>, StateError> {
        loop {
            {
                let snapshot = self.updates.borrow_and_update();
                let modified = snapshot.modified_version(&self.key);
                if modified != self.seen {
                    self.seen = modified;
                    return Ok(snapshot.get(&self.key));
                }
            }
            self.updates.changed().await?;
        }
    }
}

impl<V> fmt::Debug for KeyWatch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWatch")
            .field("key", &self.key)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
