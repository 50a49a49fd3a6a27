//! [`Subscriber`]: wakes after every published version and hands out owned
//! snapshots.

use std::fmt;

use crate::error::StateError;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::sync::{Arc, Liveness};
use crate::Version;

/// Woken after every published version; made by
/// [`ThreadSafeState::subscribe`](crate::ThreadSafeState::subscribe).
///
/// It speaks `tokio::sync::watch::Receiver`'s vocabulary (`borrow`,
/// `borrow_and_update`, `has_changed`, `changed`, `wait_for`) with one
/// difference, on purpose: everything it hands out is an owned
/// [`Snapshot`], never a guard. A `watch::Ref` holds the channel's read
/// lock, and the writer takes the write lock to publish, so a `Ref` kept
/// across an `.await` (or a `wait_for` predicate that is slow, or that reads
/// the channel again) would stall or deadlock the writer of every handle.
/// Here the published snapshot lives in an `arc-swap` cell, so reading it
/// takes no lock at all, and the writer never waits for a subscriber: user
/// code (a predicate, a held snapshot) cannot block a publish.
///
/// Wake-ups coalesce like `watch`'s: a slow subscriber may skip
/// intermediate versions, but never misses the latest one. Like a
/// `watch::Receiver`, it does not keep the writer alive.
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let mut updates = state.subscribe();
/// let writer = state.clone();
/// tokio::spawn(async move { writer.set("done", true).await });
///
/// // An owned snapshot: holding it across later writes blocks nothing.
/// let snapshot = updates.wait_for(|s| s.contains_key("done")).await?;
/// state.set("more", false).await?;
/// assert_eq!(snapshot.get("done").as_deref(), Some(&true));
/// # Ok(())
/// # }
/// ```
pub struct Subscriber<V> {
    shared: Arc<Shared<V>>,
    /// The newest version marked seen.
    seen: Version,
}

impl<V> Subscriber<V> {
    /// A subscriber with the current snapshot marked seen.
    pub(crate) fn new(shared: Arc<Shared<V>>) -> Self {
        let seen = shared.published();
        Self { shared, seen }
    }

    /// The latest published snapshot, without marking it seen. Owned and
    /// O(1); reading it takes no lock.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let updates = state.subscribe();
    /// state.set("k", 1).await?;
    /// assert_eq!(updates.borrow().get("k").as_deref(), Some(&1));
    /// assert!(updates.has_changed()?); // borrow did not mark it seen
    /// # Ok(())
    /// # }
    /// ```
    pub fn borrow(&self) -> Snapshot<V> {
        Snapshot::from_inner(self.shared.current.load_full())
    }

    /// The latest published snapshot, marked seen.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let mut updates = state.subscribe();
    /// state.set("k", 1).await?;
    /// assert_eq!(updates.borrow_and_update().version().get(), 1);
    /// assert!(!updates.has_changed()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn borrow_and_update(&mut self) -> Snapshot<V> {
        let snapshot = self.borrow();
        self.seen = self.seen.max(snapshot.version());
        snapshot
    }

    /// Whether a version newer than the last one marked seen is published.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] if there is nothing new and the writer has
    /// stopped, so nothing new ever will be.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let updates = state.subscribe();
    /// assert!(!updates.has_changed()?);
    /// state.set("k", 1).await?;
    /// assert!(updates.has_changed()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn has_changed(&self) -> Result<bool, StateError> {
        match self.unseen() {
            Some(Ok(_)) => Ok(true),
            Some(Err(closed)) => Err(closed),
            None => Ok(false),
        }
    }

    /// Wait for a version newer than the last one marked seen, and mark it
    /// seen. Returns at once if one is already published.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] once the writer has stopped (every handle was
    /// dropped, or its runtime shut down) and every published version has
    /// been seen.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a version is marked seen only when this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::StateError;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let mut updates = state.subscribe();
    /// state.set("k", 1).await?;
    /// updates.changed().await?;
    /// assert_eq!(updates.borrow().version().get(), 1);
    ///
    /// drop(state); // the writer stops: waiting ends instead of hanging
    /// assert_eq!(updates.changed().await, Err(StateError::Closed));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn changed(&mut self) -> Result<(), StateError> {
        let newest = self.shared.notifier.until(|| self.unseen()).await?;
        self.seen = newest;
        Ok(())
    }

    /// Wait until `predicate` holds for the latest published snapshot, and
    /// return that snapshot (marked seen). The current snapshot is checked
    /// first. `predicate` runs on an owned snapshot with no lock held, so it
    /// may be slow or read the state freely.
    ///
    /// # Errors
    ///
    /// [`StateError::Closed`] if the writer stops before the predicate holds.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = thread_safe_state::ThreadSafeState::new();
    /// let mut updates = state.subscribe();
    /// let agent = state.clone();
    /// tokio::spawn(async move { agent.set("n", 3).await });
    /// let three = updates.wait_for(|s| s.get("n").is_some_and(|n| *n == 3)).await?;
    /// assert_eq!(three.get("n").as_deref(), Some(&3));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(
        &mut self,
        mut predicate: impl FnMut(&Snapshot<V>) -> bool,
    ) -> Result<Snapshot<V>, StateError> {
        loop {
            let snapshot = self.borrow_and_update();
            if predicate(&snapshot) {
                return Ok(snapshot);
            }
            self.changed().await?;
        }
    }

    /// `Some(Ok(newest))` if a version past `seen` is published,
    /// `Some(Err(Closed))` if none is and none will be, else `None`.
    fn unseen(&self) -> Option<Result<Version, StateError>> {
        let newest = self.shared.published();
        if newest > self.seen {
            return Some(Ok(newest));
        }
        if self.shared.notifier.liveness() == Liveness::Open {
            return None;
        }
        // The writer publishes its last version before it closes, so now
        // that the close is seen, a fresh load sees that version.
        let newest = self.shared.published();
        Some(if newest > self.seen {
            Ok(newest)
        } else {
            Err(StateError::Closed)
        })
    }
}

impl<V> Clone for Subscriber<V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            seen: self.seen,
        }
    }
}

impl<V> fmt::Debug for Subscriber<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
