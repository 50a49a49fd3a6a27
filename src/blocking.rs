//! [`Blocking`]: the write API for plain threads.

use std::fmt;

use crate::error::{Precondition, StateError, TransactionError};
use crate::modify::{Modification, Modified};
use crate::recovery;
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::transaction::{AbortSlot, Write};
use crate::writer::command::{Op, Reply};
use crate::Version;

/// The writes of a [`ThreadSafeState`], blocking the calling thread until the
/// writer answers; made by [`ThreadSafeState::blocking`].
///
/// For code on `std::thread`s (the threads of the Python design this crate
/// replaces). Each method behaves exactly like its async namesake and
/// returns once the new version is visible to every reader. The writer task
/// still runs on its tokio runtime, which must keep running.
///
/// # Panics
///
/// Every method panics if called from inside an async execution context
/// (a tokio runtime worker), where blocking would stall the runtime: use the
/// async methods there.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let state = runtime.block_on(async { ThreadSafeState::<u64>::new() });
///
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let state = state.clone();
///         std::thread::spawn(move || {
///             for _ in 0..10 {
///                 state.blocking().modify("count", |n| Modification::Set(n.copied().unwrap_or(0) + 1)).unwrap();
///             }
///         })
///     })
///     .collect();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// assert_eq!(state.get("count").as_deref(), Some(&40));
/// ```
pub struct Blocking<'a, V> {
    state: &'a ThreadSafeState<V>,
}

impl<'a, V> Blocking<'a, V> {
    pub(crate) fn new(state: &'a ThreadSafeState<V>) -> Self {
        Self { state }
    }
}

impl<V: Send + Sync + 'static> Blocking<'_, V> {
    /// Blocking [`ThreadSafeState::set`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::set`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let version = state.blocking().set("k", 1)?;
    /// assert_eq!(state.version(), version);
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn set(&self, key: impl AsRef<str>, value: V) -> Result<Version, StateError> {
        self.submit(Op::set(key, value)?).map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::set_with_ttl`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::set_with_ttl`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let version = state.blocking().set_with_ttl("heartbeat", 1, Duration::from_millis(20))?;
    /// assert_eq!(state.get("heartbeat").as_deref(), Some(&1));
    /// // The writer, on its runtime, removes the key once the TTL has passed.
    /// let gone = runtime.block_on(state.wait_for(|s| !s.contains_key("heartbeat")))?;
    /// assert_eq!(gone.version(), version.next());
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn set_with_ttl(
        &self,
        key: impl AsRef<str>,
        value: V,
        ttl: std::time::Duration,
    ) -> Result<Version, StateError> {
        self.submit(Op::set_with_ttl(key, value, ttl)?)
            .map(|applied| applied.version)
    }

    /// Blocking [`ThreadSafeState::update`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::update`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().update([("a", 1), ("b", 2)])?;
    /// assert_eq!(state.len(), 2);
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn update<K: AsRef<str>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Version, StateError> {
        self.submit(Op::update(entries)?).map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::delete`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::delete`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().set("k", 1)?;
    /// assert!(state.blocking().delete("k")?);
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn delete(&self, key: impl AsRef<str>) -> Result<bool, StateError> {
        self.submit(Op::delete(key)?).map(|a| a.committed)
    }

    /// Blocking [`ThreadSafeState::close`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::close`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().set("k", 1)?;
    /// state.blocking().close()?;
    /// assert!(state.blocking().set("k", 2).is_err());
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn close(&self) -> Result<(), StateError> {
        match self.submit(Op::Close) {
            Ok(_) => Ok(()),
            Err(StateError::Closed) => {
                crate::sync::block_on(self.state.writer_stopped());
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Blocking [`ThreadSafeState::remove`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::remove`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let set = state.blocking().set("k", 1)?;
    /// assert_eq!(state.blocking().remove("k")?, Some(set.next()));
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn remove(&self, key: impl AsRef<str>) -> Result<Option<Version>, StateError> {
        self.submit(Op::delete(key)?)
            .map(|a| a.committed.then_some(a.version))
    }

    /// Blocking [`ThreadSafeState::clear`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::clear`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().set("k", 1)?;
    /// state.blocking().clear()?;
    /// assert!(state.is_empty());
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn clear(&self) -> Result<Version, StateError> {
        self.submit(Op::Clear).map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::modify`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::modify`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context. A panic inside `f` does not
    /// propagate: it becomes [`StateError::ModifyPanicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Modification;
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    ///
    /// let modified = state.blocking().modify("n", |n| Modification::Set(n.copied().unwrap_or(0) + 1))?;
    /// assert_eq!(modified.value.as_deref(), Some(&1));
    /// assert_eq!(state.get("n").as_deref(), Some(&1));
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn modify<F>(&self, key: impl AsRef<str>, f: F) -> Result<Modified<V>, StateError>
    where
        F: FnOnce(Option<&V>) -> Modification<V> + Send + 'static,
    {
        let (op, value) = Op::modify(key, f)?;
        let applied = self.submit(op)?;
        Ok(value.into_modified(applied.version, applied.committed))
    }

    /// Blocking [`ThreadSafeState::retain`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::retain`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().update([("keep", 1), ("drop", 2)])?;
    /// state.blocking().retain(["keep"])?;
    /// assert_eq!(state.keys(), ["keep"]);
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn retain<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Version, StateError> {
        self.submit(Op::retain(keys)).map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::rollback`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::rollback`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let v1 = state.blocking().set("k", 1)?;
    /// state.blocking().set("k", 2)?;
    /// state.blocking().rollback(v1)?;
    /// assert_eq!(state.get("k").as_deref(), Some(&1));
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn rollback(&self, target: Version) -> Result<Version, StateError> {
        self.submit(Op::Rollback(target)).map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::rollback_to_last_good`]: the search runs
    /// on the calling thread, and the thread blocks while the rollback is
    /// committed.
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::rollback_to_last_good`].
    ///
    /// # Panics
    ///
    /// If `predicate` panics; when it has a rollback to commit, inside an
    /// async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let good = state.blocking().set("tests", "pass")?;
    /// state.blocking().set("tests", "fail")?;
    /// let recovered = state
    ///     .blocking()
    ///     .rollback_to_last_good(|s| s.get("tests").as_deref() == Some(&"pass"))?;
    /// assert!(recovered > good);
    /// assert_eq!(state.get("tests").as_deref(), Some(&"pass"));
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn rollback_to_last_good(
        &self,
        mut predicate: impl FnMut(&Snapshot<V>) -> bool,
    ) -> Result<Version, StateError> {
        let state = self.state;
        let mut moved = None;
        for _ in 0..recovery::ATTEMPTS {
            let (target, current) = match recovery::search(state, &mut predicate)? {
                recovery::Found::Current(version) => return Ok(version),
                recovery::Found::Older { target, current } => (target, current),
            };
            let op = Op::RollbackIf {
                target,
                expected_current: current,
            };
            match state.submit_blocking(op) {
                Err(error @ StateError::VersionMoved { .. }) => moved = Some(error),
                reply => return reply.map(|a| a.version),
            }
        }
        Err(moved.expect("ATTEMPTS > 0"))
    }

    /// Blocking [`ThreadSafeState::set_if`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::set_if`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Precondition;
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().set_if("leader", "me", Precondition::Absent)?;
    /// assert!(state.blocking().set_if("leader", "you", Precondition::Absent).is_err());
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn set_if(
        &self,
        key: impl AsRef<str>,
        value: V,
        expected: Precondition,
    ) -> Result<Version, StateError> {
        self.submit(Op::set_if(key, value, expected)?)
            .map(|a| a.version)
    }

    /// Blocking [`ThreadSafeState::delete_if`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::delete_if`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Precondition;
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// let v = state.blocking().set("lock", 1)?;
    /// assert!(state.blocking().delete_if("lock", Precondition::ModifiedAt(v))?);
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn delete_if(
        &self,
        key: impl AsRef<str>,
        expected: Precondition,
    ) -> Result<bool, StateError> {
        self.submit(Op::delete_if(key, expected)?)
            .map(|a| a.committed)
    }

    /// Blocking [`ThreadSafeState::transaction`].
    ///
    /// # Errors
    ///
    /// As [`ThreadSafeState::transaction`].
    ///
    /// # Panics
    ///
    /// Inside an async execution context. A panic inside `f` does not
    /// propagate: it becomes [`StateError::TransactionPanicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Write;
    /// # let runtime = tokio::runtime::Runtime::new().unwrap();
    /// # let state = runtime.block_on(async { thread_safe_state::ThreadSafeState::new() });
    /// state.blocking().set("a", 5)?;
    /// state.blocking().transaction(|s| {
    ///     let a = *s.get("a").unwrap();
    ///     Ok::<_, std::convert::Infallible>(vec![Write::delete("a"), Write::set("b", a)])
    /// })?;
    /// assert_eq!(state.get("b").as_deref(), Some(&5));
    /// # Ok::<(), thread_safe_state::StateError>(())
    /// ```
    pub fn transaction<E, F>(&self, f: F) -> Result<Version, TransactionError<E>>
    where
        F: FnOnce(&Snapshot<V>) -> Result<Vec<Write<V>>, E> + Send + 'static,
        E: Send + 'static,
    {
        let (slot, f) = AbortSlot::wrap(f);
        let applied = self.submit(Op::Transaction(f))?;
        slot.into_result(applied.version)
    }

    fn submit(&self, op: Op<V>) -> Reply {
        self.state.submit_blocking(op)
    }
}

impl<V> fmt::Debug for Blocking<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Blocking").field(self.state).finish()
    }
}
