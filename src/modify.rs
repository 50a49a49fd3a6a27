//! [`Modification`]: what a [`modify`](crate::ThreadSafeState::modify)
//! closure decides; [`Modified`]: what the caller learns; and the slot in
//! which the writer hands the resulting value back.

use std::fmt;

use crate::sync::{lock, Arc, Mutex};
use crate::Version;

/// What a [`modify`](crate::ThreadSafeState::modify) closure does with its
/// key: write a new value, delete it, or leave it as it is.
///
/// Each outcome is named, so no value can mean two things: a closure that
/// meets a value it did not expect says [`Keep`](Self::Keep) (or
/// [`Delete`](Self::Delete)) on purpose, and `?` on an `Option` inside the
/// closure does not compile (the closure returns a `Modification`, not an
/// `Option`).
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// state.set("budget", 10).await?;
/// let spend = |cost: u32| {
///     move |budget: Option<&u32>| match budget {
///         Some(&left) if left >= cost => Modification::Set(left - cost),
///         Some(_) => Modification::Keep, // too little left: change nothing
///         None => Modification::Delete,
///     }
/// };
/// let spent = state.modify("budget", spend(7)).await?;
/// assert!(spent.committed);
/// assert_eq!(spent.value.as_deref(), Some(&3));
/// let refused = state.modify("budget", spend(7)).await?;
/// assert!(!refused.committed); // no new version
/// assert_eq!(refused.version, spent.version);
/// assert_eq!(refused.value.as_deref(), Some(&3));
/// # Ok(())
/// # }
/// ```
///
/// A `?` on an `Option` inside the closure is a compile error:
///
/// ```compile_fail
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// # async fn bump(state: ThreadSafeState<serde_json::Value>) {
/// state
///     .modify("count", |n| {
///         let n = n?.as_u64()?; // error: the closure returns a `Modification`
///         Modification::Set(serde_json::json!(n + 1))
///     })
///     .await;
/// # }
/// ```
///
/// Say what a value of the wrong shape means instead:
///
/// ```
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// # async fn bump(state: ThreadSafeState<serde_json::Value>) {
/// state
///     .modify("count", |n| {
///         let Some(n) = n.and_then(|n| n.as_u64()) else {
///             return Modification::Keep;
///         };
///         Modification::Set(serde_json::json!(n + 1))
///     })
///     .await;
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Modification<V> {
    /// Write this value to the key (creating it if absent). Commits a new
    /// version, even if the value equals the current one.
    Set(V),
    /// Remove the key. Commits a new version if the key was present;
    /// deleting an absent key commits nothing.
    Delete,
    /// Leave the key as it is. Commits nothing: the state's version and the
    /// key's modified version stay the same, so compare-and-set tokens
    /// taken before stay valid.
    Keep,
}

/// What a [`modify`](crate::ThreadSafeState::modify) did.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let first = state
///     .modify("n", |n| Modification::Set(n.copied().unwrap_or(0) + 1))
///     .await?;
/// assert!(first.committed);
/// assert_eq!(first.value.as_deref(), Some(&1));
/// assert_eq!(first.version, state.version());
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
pub struct Modified<V> {
    /// The version the command committed, or the current version when it
    /// committed nothing ([`Modification::Keep`], or
    /// [`Modification::Delete`] of an absent key).
    pub version: Version,
    /// The key's value after the command: the value written by
    /// [`Modification::Set`] (the very `Arc` that readers get), `None`
    /// after [`Modification::Delete`], the unchanged current value after
    /// [`Modification::Keep`].
    pub value: Option<Arc<V>>,
    /// Whether the command committed a new version.
    pub committed: bool,
}

impl<V> Clone for Modified<V> {
    fn clone(&self) -> Self {
        Self {
            version: self.version,
            value: self.value.clone(),
            committed: self.committed,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Modified<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Modified")
            .field("version", &self.version)
            .field("value", &self.value)
            .field("committed", &self.committed)
            .finish()
    }
}

/// Where the writer leaves a `modify`'s resulting value for its caller.
///
/// Only `modify` commands carry one, so no other command's reply grows or
/// allocates. The writer fills it before it replies, and the reply orders
/// the hand-over (as for a transaction's abort slot).
pub(crate) struct ValueSlot<V>(Arc<Mutex<Option<Arc<V>>>>);

impl<V> ValueSlot<V> {
    /// An empty slot and the writer's end of it.
    pub(crate) fn new() -> (Self, Self) {
        let slot = Arc::new(Mutex::new(None));
        (ValueSlot(Arc::clone(&slot)), ValueSlot(slot))
    }

    /// The writer's side: the key's value after the command.
    pub(crate) fn fill(&self, value: Option<Arc<V>>) {
        *lock(&self.0) = value;
    }

    /// The caller's side, once the writer has answered.
    pub(crate) fn into_modified(self, version: Version, committed: bool) -> Modified<V> {
        Modified {
            version,
            value: lock(&self.0).take(),
            committed,
        }
    }
}
