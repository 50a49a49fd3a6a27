//! [`Write`]: what a transaction returns; and how its closure travels to
//! the writer.

use std::fmt;

use crate::error::TransactionError;
use crate::snapshot::Snapshot;
use crate::sync::{lock, Arc, Mutex};
use crate::Version;

/// One write of a [`transaction`](crate::ThreadSafeState::transaction).
///
/// # Examples
///
/// ```
/// use thread_safe_state::{ThreadSafeState, Write};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::TransactionError<()>> {
/// let state = ThreadSafeState::new();
/// state.set("queue", 3).await?;
/// // Move the queue's count to "done" atomically.
/// state
///     .transaction(|snapshot| {
///         let queued = snapshot.get("queue").map_or(0, |n| *n);
///         Ok::<_, ()>(vec![Write::delete("queue"), Write::set("done", queued)])
///     })
///     .await?;
/// assert_eq!(state.get("done").as_deref(), Some(&3));
/// assert!(!state.contains_key("queue"));
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
pub enum Write<V> {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: Arc<str>,
        /// The value.
        value: V,
    },
    /// Remove `key` if present.
    Delete {
        /// The key.
        key: Arc<str>,
    },
}

impl<V> Write<V> {
    /// A write that sets `key` to `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Write;
    /// let write = Write::set("phase", "done");
    /// assert!(matches!(write, Write::Set { .. }));
    /// ```
    pub fn set(key: impl AsRef<str>, value: V) -> Self {
        Write::Set {
            key: Arc::from(key.as_ref()),
            value,
        }
    }

    /// A write that removes `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Write;
    /// let write = Write::<u8>::delete("scratch");
    /// assert!(matches!(write, Write::Delete { .. }));
    /// ```
    pub fn delete(key: impl AsRef<str>) -> Self {
        Write::Delete {
            key: Arc::from(key.as_ref()),
        }
    }

    pub(crate) fn key(&self) -> &Arc<str> {
        match self {
            Write::Set { key, .. } | Write::Delete { key } => key,
        }
    }
}

impl<V: fmt::Debug> fmt::Debug for Write<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Write::Set { key, value } => f
                .debug_struct("Set")
                .field("key", key)
                .field("value", value)
                .finish(),
            Write::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

/// A transaction's closure with its error type erased: `None` means the
/// closure aborted, and its error waits in the caller's [`AbortSlot`].
pub(crate) type TransactionFn<V> = Box<dyn FnOnce(&Snapshot<V>) -> Option<Vec<Write<V>>> + Send>;

/// Where the writer leaves a transaction's abort error for its caller.
/// The reply that follows orders the hand-over.
pub(crate) struct AbortSlot<E>(Arc<Mutex<Option<E>>>);

impl<E: Send + 'static> AbortSlot<E> {
    /// Wrap the caller's closure so that an abort parks its error here.
    pub(crate) fn wrap<V, F>(f: F) -> (Self, TransactionFn<V>)
    where
        F: FnOnce(&Snapshot<V>) -> Result<Vec<Write<V>>, E> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let writer_side = Arc::clone(&slot);
        let erased: TransactionFn<V> = Box::new(move |snapshot| match f(snapshot) {
            Ok(writes) => Some(writes),
            Err(error) => {
                *lock(&writer_side) = Some(error);
                None
            }
        });
        (AbortSlot(slot), erased)
    }

    /// Once the writer has answered: the abort error if the closure
    /// aborted, else the transaction's version.
    pub(crate) fn into_result(self, version: Version) -> Result<Version, TransactionError<E>> {
        match lock(&self.0).take() {
            Some(error) => Err(TransactionError::Aborted(error)),
            None => Ok(version),
        }
    }
}
