//! Error types: [`StateError`] for reads and writes, [`BuildError`] for construction.

use std::fmt;

use crate::Version;

/// How many keys [`StateError::KeyNotFound`] carries and its message lists
/// before `...`.
pub(crate) const LISTED_KEYS: usize = 10;

/// The underlying error of a [`StateError`] that wraps another library's
/// (serde's, for [`StateError::TypeMismatch`]), shared so that the error
/// stays `Clone`. Two causes are equal when their messages are.
///
/// # Examples
///
/// ```
/// use std::error::Error;
/// use thread_safe_state::{StateError, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StateError> {
/// let state = ThreadSafeState::new();
/// state.set("count", serde_json::json!("three")).await?;
/// let error = state.get_as::<u32>("count").unwrap_err();
/// let cause = error.source().expect("serde's error");
/// assert!(cause.to_string().contains("invalid type"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cause(std::sync::Arc<dyn std::error::Error + Send + Sync>);

#[cfg_attr(
    not(any(feature = "models", feature = "durable", feature = "etcd")),
    allow(dead_code)
)] // only models and the journal make a cause
impl Cause {
    pub(crate) fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(std::sync::Arc::new(error))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

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
///     Err(StateError::KeyNotFound { key, available, total_keys, .. }) => {
///         assert_eq!(key, "agents");
///         assert_eq!(available, vec!["phase".to_string()]);
///         assert_eq!(total_keys, 1);
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A required key is absent.
    ///
    /// It carries only the keys its message lists: the 10 smallest the state
    /// held, sorted, and how many there were in all. Finding them is one pass
    /// over the keys with a 10-entry heap, O(n log 10): the map is hashed, so
    /// no order exists to find the smallest keys without looking at every
    /// key, but nothing is copied or sorted beyond those 10.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::new();
    /// state.update((0..25).map(|i| (format!("key{i:02}"), i))).await.unwrap();
    /// let error = state.get_required("missing").unwrap_err();
    /// let StateError::KeyNotFound { available, total_keys, .. } = &error else {
    ///     panic!("unexpected {error:?}");
    /// };
    /// assert_eq!(available.first().map(String::as_str), Some("key00"));
    /// assert_eq!((available.len(), *total_keys), (10, 25));
    /// assert!(error.to_string().ends_with(r#""key08", "key09", ..."#));
    /// # }
    /// ```
    #[error(
        "key {key:?} not found; available keys: {}",
        KeyList { listed: available, total: *total_keys }
    )]
    #[non_exhaustive]
    KeyNotFound {
        /// The key that was asked for.
        key: String,
        /// The smallest keys the state held at that moment, sorted: at most
        /// 10, the ones the message lists.
        available: Vec<String>,
        /// How many keys the state held at that moment.
        total_keys: usize,
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

    /// A version older than the history still retains: for a rollback,
    /// [`snapshot_at`](crate::ThreadSafeState::snapshot_at) or
    /// [`changes_since`](crate::ThreadSafeState::changes_since).
    #[error(
        "version {target} is no longer retained: the oldest version still retained is \
         {oldest_retained}; raise max_history to keep more"
    )]
    VersionCompacted {
        /// The version asked for.
        target: Version,
        /// The oldest version that can still be reached.
        oldest_retained: Version,
    },

    /// A version newer than the current one, asked of
    /// [`snapshot_at`](crate::ThreadSafeState::snapshot_at) or
    /// [`changes_since`](crate::ThreadSafeState::changes_since).
    #[error("version {target} has not been committed yet: the current version is {current}")]
    FutureVersion {
        /// The version asked for.
        target: Version,
        /// The current version.
        current: Version,
    },

    /// A conditional write's precondition did not hold; nothing was written.
    #[error("conflict on key {key:?}: expected {expected}, found {}", FoundVersion(*found))]
    Conflict {
        /// The key of the conditional write.
        key: String,
        /// What the write required.
        expected: Precondition,
        /// The key's modified version when the write was applied, `None`
        /// if the key was absent.
        found: Option<Version>,
    },

    /// The closure given to [`transaction`](crate::ThreadSafeState::transaction)
    /// panicked.
    #[error("the transaction closure panicked: {message}; the state is unchanged")]
    TransactionPanicked {
        /// The panic payload, when it was a string.
        message: String,
    },

    /// A [`wait_for_timeout`](crate::ThreadSafeState::wait_for_timeout) ran
    /// out of time before the condition held.
    #[error("the condition did not hold within {waited:?}; the last version seen was {last_seen}")]
    Timeout {
        /// How long it waited.
        waited: std::time::Duration,
        /// The newest version it checked.
        last_seen: Version,
    },

    /// A change stream's consumer fell so far behind that changes it had
    /// not read were dropped from its buffer. Nothing was skipped silently:
    /// open a new stream with
    /// [`changes_from(resume_from)`](crate::ThreadSafeState::changes_from).
    #[error(
        "the change stream fell behind and was closed; resume with changes_from({resume_from})"
    )]
    Lagged {
        /// The first version this consumer has not received.
        resume_from: Version,
    },

    /// A value could not be converted to or from the requested type.
    #[error("{}: {message}", match key { Some(key) => format!("key {key:?} has the wrong shape"), None => "the state does not fit the model".to_owned() })]
    TypeMismatch {
        /// The key whose value did not fit, if it was one key.
        key: Option<String>,
        /// What serde reported.
        message: String,
        /// serde's error itself, as the error's
        /// [`source`](std::error::Error::source) (`None` when the mismatch
        /// is the crate's own finding, such as a model that is not an
        /// object).
        #[source]
        cause: Option<Cause>,
    },

    /// The closure given to [`modify`](crate::ThreadSafeState::modify) panicked.
    #[error("the closure passed to modify({key:?}) panicked: {message}; the state is unchanged")]
    ModifyPanicked {
        /// The key being modified.
        key: String,
        /// The panic payload, when it was a string.
        message: String,
    },

    /// [`rollback_to_last_good`](crate::ThreadSafeState::rollback_to_last_good)
    /// found no retained version whose snapshot satisfied its predicate;
    /// nothing was written.
    #[error(
        "no retained version from {oldest_retained} to {current} satisfies the predicate; \
         nothing was rolled back: raise max_history to keep more versions, or repair the \
         state with writes"
    )]
    NoGoodVersion {
        /// The oldest version the search looked at.
        oldest_retained: Version,
        /// The version the search started from.
        current: Version,
    },

    /// A rollback decided on version `expected` found the state at
    /// `current` instead: other writes committed after the decision, so
    /// the rollback was not applied (it would have discarded writes nobody
    /// had looked at).
    ///
    /// [`rollback_to_last_good`](crate::ThreadSafeState::rollback_to_last_good)
    /// searches again after it, and returns it only when the state kept
    /// moving through every attempt.
    #[error(
        "the state moved from version {expected} to {current} after the rollback was decided, \
         so nothing was rolled back; recover again, or pause the writers that keep committing"
    )]
    VersionMoved {
        /// The version the rollback was decided on.
        expected: Version,
        /// The current version when the rollback was applied.
        current: Version,
    },

    /// [`set_with_ttl`](crate::ThreadSafeState::set_with_ttl) with a zero
    /// TTL: nothing was written.
    ///
    /// A value that expires as it is written is almost always a unit or
    /// arithmetic slip; to remove a key, [`delete`](crate::ThreadSafeState::delete) it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::new();
    /// let written = state.set_with_ttl("lease", 1, Duration::ZERO).await;
    /// assert_eq!(written, Err(StateError::ZeroTtl));
    /// assert_eq!(state.version().get(), 0);
    /// # }
    /// ```
    #[error("a TTL must be longer than zero; to remove a key now, delete it")]
    ZeroTtl,

    /// [`set_with_ttl`](crate::ThreadSafeState::set_with_ttl) on a state
    /// whose writer runs on a tokio runtime without timers: nothing was
    /// written (the writer could not have expired the key).
    #[error(
        "the state's tokio runtime has no timers, so keys cannot expire: build the runtime \
         with enable_time() (or enable_all())"
    )]
    TimersDisabled,

    /// [`set_with_ttl`](crate::ThreadSafeState::set_with_ttl) on a
    /// [durable](crate::Builder::durable) state: the journal does not
    /// record deadlines yet, so the key would silently stop expiring after
    /// a restart. Nothing was written.
    #[error("TTL keys are not supported by this state's journal, which does not record deadlines")]
    TtlUnsupported,

    /// [`for_agent_with_lease`](crate::ThreadSafeState::for_agent_with_lease)
    /// on a state that is not on etcd: leases are etcd's.
    #[error("leases need an etcd state: this state's commits stay in this process")]
    LeasesUnsupported,

    /// The write went through a handle whose etcd lease is lost: etcd no
    /// longer has it (it expired or was revoked, and the keys written with
    /// it are gone), or the handle could not renew it within its TTL (etcd
    /// deletes them then, if it has not already). The write was not
    /// applied, and no later write through the handle is. Make a new
    /// handle with [`for_agent_with_lease`](crate::ThreadSafeState::for_agent_with_lease).
    #[error("the etcd lease {lease:x} of this handle is lost (expired, revoked, or not renewed within its TTL): the write was not applied")]
    LeaseExpired {
        /// The lease's id.
        lease: i64,
    },

    /// The state's writer task has stopped: a write was not applied, and a
    /// wait ends because no new version will ever be published.
    ///
    /// A write gets it when the tokio runtime that owns the writer shut
    /// down. A wait ([`wait_for`](crate::ThreadSafeState::wait_for),
    /// [`KeyWatch::changed`](crate::KeyWatch::changed),
    /// [`Subscriber::changed`](crate::Subscriber::changed), a change
    /// stream) gets it then too, and also once every handle was dropped.
    #[error(
        "the state's writer task has stopped (its tokio runtime shut down, or every handle was dropped): writes are not applied and no new version will be published"
    )]
    Closed,

    /// The journal of a [durable](crate::Builder::durable) state could not
    /// make the write durable: a failed write or sync, a full disk. Nothing
    /// of the write, nor of any write committed in the same group, was
    /// published: readers never see it, and the state stays as it was.
    ///
    /// What the file holds depends on where the storage failed. A failed
    /// write leaves the file as it was. After a failed *sync* the outcome
    /// is unknown, as for any failed `fsync`: the group's bytes were
    /// handed to the kernel, which may or may not get them to the disk, so
    /// reopening finds the whole group or none of it (never a part: redb
    /// commits atomically). A caller that must know checks after reopening,
    /// e.g. with a compare-and-set on the key's version.
    ///
    /// The journal is then unusable (a failed sync may have dropped data
    /// the kernel had accepted, so no retry can be trusted): every later
    /// write fails with this error, fast, until the state is closed and
    /// opened again. Reads keep working.
    #[error("the journal could not make the write durable, so it was not applied; reopen the state to write again: {cause}")]
    JournalFailed {
        /// The storage error.
        #[source]
        cause: Cause,
    },

    /// A value of this write, or of another write committed in the same
    /// group, could not be serialized for the journal of a
    /// [durable](crate::Builder::durable) state (a JSON map with non-string
    /// keys, a `Serialize` impl that fails). Nothing of the group was
    /// applied and nothing was written; the journal stays usable, so a
    /// write whose own values serialize can simply be retried.
    #[error("a value of the group could not be serialized for the journal, so nothing was applied: {cause}")]
    NotSerializable {
        /// Serde's error.
        #[source]
        cause: Cause,
    },

    /// The write's etcd txn would have more operations (or compares) than
    /// the cluster allows (`--max-txn-ops`, 128 by default; see
    /// `EtcdBuilder::max_txn_ops`). Nothing was sent: split the write.
    #[error(
        "the write needs {operations} operations in one etcd txn, more than the cluster's \
         limit of {limit} (--max-txn-ops); nothing was sent: split it into smaller writes"
    )]
    TooManyOperations {
        /// Operations (or compares) the txn would need.
        operations: usize,
        /// The limit.
        limit: usize,
    },

    /// The write's etcd txn would be larger than the cluster accepts
    /// (`--max-request-bytes`, 1.5 MiB by default; see
    /// `EtcdBuilder::max_request_bytes`). Nothing was sent.
    #[error(
        "the write's etcd request would be about {bytes} bytes, more than the cluster's limit \
         of {limit} (--max-request-bytes); nothing was sent: store smaller values"
    )]
    RequestTooLarge {
        /// The request's estimated size (an upper bound).
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// etcd refused the write (a bad request, no permission, no space):
    /// it was not applied.
    #[error("etcd refused the write, so it was not applied: {cause}")]
    EtcdRejected {
        /// The client's error.
        #[source]
        cause: Cause,
    },

    /// The write's etcd txn got no answer (a timeout, a lost connection):
    /// it may or may not have been applied. If it was, the state shows it
    /// once the mirror has caught up. Retry safely with a conditional
    /// write: `set_if(key, value, Precondition::ModifiedAt(v))` with the
    /// `modified_version` read *before* the first attempt fails with
    /// [`Conflict`](Self::Conflict) if the first attempt (or anyone)
    /// applied meanwhile.
    #[error(
        "the etcd write got no answer, so it may or may not have been applied \
         (retry with a compare on the key's modified version): {cause}"
    )]
    OutcomeUnknown {
        /// The client's error, or the timeout.
        #[source]
        cause: Cause,
    },
}

/// What a conditional write requires of its key.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Precondition, StateError, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StateError> {
/// let state = ThreadSafeState::new();
/// let v1 = state.set_if("leader", "agent-1", Precondition::Absent).await?;
/// let lost = state.set_if("leader", "agent-2", Precondition::Absent).await;
/// assert!(matches!(lost, Err(StateError::Conflict { found: Some(v), .. }) if v == v1));
/// state.set_if("leader", "agent-3", Precondition::ModifiedAt(v1)).await?;
/// assert_eq!(state.get("leader").as_deref(), Some(&"agent-3"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Precondition {
    /// The key must be absent.
    Absent,
    /// The key must be present.
    Exists,
    /// The key must be present and last written at exactly this version
    /// (see [`Snapshot::modified_version`](crate::Snapshot::modified_version)).
    ModifiedAt(Version),
}

impl Precondition {
    /// Whether a key whose modified version is `found` satisfies it.
    pub(crate) fn holds(self, found: Option<Version>) -> bool {
        match self {
            Precondition::Absent => found.is_none(),
            Precondition::Exists => found.is_some(),
            Precondition::ModifiedAt(version) => found == Some(version),
        }
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::Absent => f.write_str("the key to be absent"),
            Precondition::Exists => f.write_str("the key to exist"),
            Precondition::ModifiedAt(v) => write!(f, "the key to be last modified at version {v}"),
        }
    }
}

/// Displays a key's modified version, or that it was absent.
struct FoundVersion(Option<Version>);

impl fmt::Display for FoundVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(version) => write!(f, "it last modified at version {version}"),
            None => f.write_str("it absent"),
        }
    }
}

/// Why a [`transaction`](crate::ThreadSafeState::transaction) did not commit.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{ThreadSafeState, TransactionError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = ThreadSafeState::<i64>::new();
/// let result = state
///     .transaction(|snapshot| {
///         let balance = snapshot.get("balance").map_or(0, |b| *b);
///         if balance < 10 {
///             return Err("insufficient funds");
///         }
///         Ok(vec![])
///     })
///     .await;
/// assert!(matches!(result, Err(TransactionError::Aborted("insufficient funds"))));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionError<E> {
    /// The closure returned this error; nothing was written.
    Aborted(E),
    /// The state refused the transaction; nothing was written.
    State(StateError),
}

impl<E: fmt::Display> fmt::Display for TransactionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransactionError::Aborted(error) => write!(f, "transaction aborted: {error}"),
            TransactionError::State(error) => fmt::Display::fmt(error, f),
        }
    }
}

/// An error for any abort type that prints, `&str` and `String` included,
/// so `?` into `Box<dyn Error>` or `anyhow::Error` works. The abort error's
/// message is part of this error's own; only a [`StateError`] is exposed as
/// a [`source`](std::error::Error::source).
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// async fn reserve(state: &ThreadSafeState<i64>) -> Result<(), Box<dyn std::error::Error>> {
///     state
///         .transaction(|_| Err::<Vec<_>, _>("insufficient funds"))
///         .await?;
///     Ok(())
/// }
/// let state = ThreadSafeState::new();
/// let error = reserve(&state).await.unwrap_err();
/// assert_eq!(error.to_string(), "transaction aborted: insufficient funds");
/// # }
/// ```
impl<E: fmt::Debug + fmt::Display> std::error::Error for TransactionError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransactionError::Aborted(_) => None,
            TransactionError::State(error) => Some(error),
        }
    }
}

/// A transaction that cannot abort fails only with a [`StateError`], so `?`
/// can turn its error into one.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use thread_safe_state::{StateError, ThreadSafeState, Write};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StateError> {
/// let state = ThreadSafeState::new();
/// state
///     .transaction(|_| Ok::<_, Infallible>(vec![Write::set("k", 1)]))
///     .await?;
/// # Ok(())
/// # }
/// ```
impl From<TransactionError<std::convert::Infallible>> for StateError {
    fn from(error: TransactionError<std::convert::Infallible>) -> Self {
        match error {
            TransactionError::Aborted(never) => match never {},
            TransactionError::State(error) => error,
        }
    }
}

impl<E> From<StateError> for TransactionError<E> {
    fn from(error: StateError) -> Self {
        TransactionError::State(error)
    }
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

    /// `change_stream_capacity(0)`.
    #[error("change_stream_capacity must be at least 1")]
    ZeroChangeStreamCapacity,

    /// The initial state had an empty key.
    #[error("initial_state has an empty key: keys must not be empty")]
    EmptyKey,

    /// A `mailbox_capacity` above
    /// [`MAX_MAILBOX_CAPACITY`](crate::MAX_MAILBOX_CAPACITY), more slots than
    /// tokio's bounded channel can count.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{BuildError, ThreadSafeState, MAX_MAILBOX_CAPACITY};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let error = ThreadSafeState::<u8>::builder()
    ///     .mailbox_capacity(usize::MAX)
    ///     .try_build()
    ///     .unwrap_err();
    /// let BuildError::MailboxCapacityTooLarge { requested, max, .. } = error.clone() else {
    ///     panic!("unexpected {error:?}");
    /// };
    /// assert_eq!((requested, max), (usize::MAX, MAX_MAILBOX_CAPACITY));
    /// assert!(error.to_string().contains(&format!("between 1 and {MAX_MAILBOX_CAPACITY}")));
    /// # }
    /// ```
    #[error(
        "mailbox_capacity({requested}) is too large: it must be between 1 and {max} \
         (tokio's bounded channel limit)"
    )]
    #[non_exhaustive]
    MailboxCapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest capacity allowed.
        max: usize,
    },

    /// A `change_stream_capacity` above
    /// [`MAX_CHANGE_STREAM_CAPACITY`](crate::MAX_CHANGE_STREAM_CAPACITY): the
    /// buffer is allocated in full when the state is built.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{BuildError, ThreadSafeState, MAX_CHANGE_STREAM_CAPACITY};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let error = ThreadSafeState::<u8>::builder()
    ///     .change_stream_capacity(MAX_CHANGE_STREAM_CAPACITY + 1)
    ///     .try_build()
    ///     .unwrap_err();
    /// assert!(matches!(
    ///     error,
    ///     BuildError::ChangeStreamCapacityTooLarge { max: MAX_CHANGE_STREAM_CAPACITY, .. }
    /// ));
    /// assert_eq!(
    ///     error.to_string(),
    ///     "change_stream_capacity(65537) is too large: it must be between 1 and 65536 \
    ///      (the buffer is allocated in full when the state is built)"
    /// );
    /// # }
    /// ```
    #[error(
        "change_stream_capacity({requested}) is too large: it must be between 1 and {max} \
         (the buffer is allocated in full when the state is built)"
    )]
    #[non_exhaustive]
    ChangeStreamCapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest capacity allowed.
        max: usize,
    },

    /// The [`Export`](crate::Export) given to
    /// [`Builder::import`](crate::Builder::import) does not replay: its
    /// versions do not follow each other, it removes a key that does not
    /// exist, its format is newer than this version reads, or
    /// `initial_state` was given as well.
    #[error("the export cannot be imported: {detail}")]
    InvalidImport {
        /// What is wrong with it.
        detail: String,
    },
}

/// Displays up to [`LISTED_KEYS`] keys, then `...` if there were more.
struct KeyList<'a> {
    listed: &'a [String],
    total: usize,
}

impl fmt::Display for KeyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.listed.is_empty() {
            return f.write_str("(none)");
        }
        let shown = self.listed.len().min(LISTED_KEYS);
        for (i, key) in self.listed[..shown].iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key:?}")?;
        }
        if self.total > shown {
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
            total_keys: 12,
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
            total_keys: 0,
        }
        .to_string();
        assert!(message.ends_with("(none)"), "{message}");
    }

    #[test]
    fn key_not_found_says_more_keys_exist_than_it_carries() {
        let available: Vec<String> = (0..10).map(|i| format!("k{i:02}")).collect();
        let error = StateError::KeyNotFound {
            key: "x".into(),
            available: available.clone(),
            total_keys: 11,
        };
        assert!(error.to_string().ends_with(r#""k09", ..."#), "{error}");
        let error = StateError::KeyNotFound {
            key: "x".into(),
            available,
            total_keys: 10,
        };
        assert!(error.to_string().ends_with(r#""k09""#), "{error}");
    }
}
