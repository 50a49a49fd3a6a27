//! Error types: [`StateError`] for reads and writes, [`BuildError`] for construction.

use std::fmt;

use crate::Version;

/// How many keys [`StateError::KeyNotFound`]'s message lists before `...`.
const LISTED_KEYS: usize = 10;

/// Why a read or write on a [`ThreadSafeState`](crate::ThreadSafeState) failed.
///
/// A failed write changes nothing: no key, no version, no history record.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{StateError, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = ThreadSafeState::<u32>::new();
/// state.set("phase", 1).await.unwrap();
/// match state.get_required("agents") {
///     Err(StateError::KeyNotFound { key, available }) => {
///         assert_eq!(key, "agents");
///         assert_eq!(available, vec!["phase".to_string()]);
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A required key is absent.
    #[error("key {key:?} not found; available keys: {}", KeyList(available))]
    KeyNotFound {
        /// The key that was asked for.
        key: String,
        /// Every key the state held at that moment, sorted.
        available: Vec<String>,
    },

    /// A write named the empty string as a key.
    #[error("keys must not be empty: give the value a name")]
    EmptyKey,

    /// A rollback target that is not older than the current version.
    #[error(
        "cannot roll back to version {target}: the current version is {current}; \
         roll back only to an earlier version"
    )]
    InvalidVersion {
        /// The version asked for.
        target: Version,
        /// The current version when the rollback was applied.
        current: Version,
    },

    /// A rollback target older than the history still retains.
    #[error(
        "cannot roll back to version {target}: the oldest version still retained is \
         {oldest_retained}; raise max_history to keep more"
    )]
    VersionCompacted {
        /// The version asked for.
        target: Version,
        /// The oldest version a rollback can still reach.
        oldest_retained: Version,
    },

    /// The closure given to [`modify`](crate::ThreadSafeState::modify) panicked.
    #[error("the closure passed to modify({key:?}) panicked: {message}; the state is unchanged")]
    ModifyPanicked {
        /// The key being modified.
        key: String,
        /// The panic payload, when it was a string.
        message: String,
    },

    /// The state's writer task has stopped, so the write was not applied.
    ///
    /// This happens when the tokio runtime that owns the writer shut down.
    #[error(
        "the state's writer task has stopped (its tokio runtime shut down); the write was not applied"
    )]
    Closed,
}

/// Why a [`Builder`](crate::Builder) could not build a state.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{BuildError, ThreadSafeState};
///
/// // No tokio runtime on this thread, so no writer task can be spawned.
/// let err = ThreadSafeState::<u32>::builder().try_build().unwrap_err();
/// assert_eq!(err, BuildError::NoRuntime);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Built outside a tokio runtime.
    #[error(
        "ThreadSafeState must be built inside a tokio runtime (it spawns its writer task there); \
         call it from async code or inside Runtime::enter()"
    )]
    NoRuntime,

    /// `mailbox_capacity(0)`.
    #[error("mailbox_capacity must be at least 1")]
    ZeroMailboxCapacity,

    /// The initial state had an empty key.
    #[error("initial_state has an empty key: keys must not be empty")]
    EmptyKey,
}

/// Displays up to [`LISTED_KEYS`] keys, then `...`.
struct KeyList<'a>(&'a [String]);

impl fmt::Display for KeyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        for (i, key) in self.0.iter().take(LISTED_KEYS).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key:?}")?;
        }
        if self.0.len() > LISTED_KEYS {
            f.write_str(", ...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_not_found_lists_at_most_ten_keys() {
        let available: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
        let message = StateError::KeyNotFound {
            key: "x".into(),
            available,
        }
        .to_string();
        assert!(message.contains("\"k09\""), "{message}");
        assert!(!message.contains("\"k10\""), "{message}");
        assert!(message.ends_with(", ..."), "{message}");
    }

    #[test]
    fn key_not_found_on_empty_state_says_none() {
        let message = StateError::KeyNotFound {
            key: "x".into(),
            available: vec![],
        }
        .to_string();
        assert!(message.ends_with("(none)"), "{message}");
    }
}
