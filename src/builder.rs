//! [`Builder`]: configures and spawns a [`ThreadSafeState`].

use std::fmt;

use crate::error::BuildError;
use crate::export::Export;
use crate::map::Map;
use crate::shared::Shared;
use crate::snapshot::{Entry, Snapshot};
use crate::state::ThreadSafeState;
use crate::sync::{mpsc, Arc};
use crate::writer::command::checked_keys;
use crate::writer::commit::Committer;
use crate::writer::feed::Feed;
use crate::writer::target::Target;
use crate::writer::Writer;
use crate::Version;

/// The entries of [`Builder::initial_state`].
#[cfg(feature = "durable")]
pub(crate) type InitialEntries<V> = Vec<(Arc<str>, V)>;

/// Default for [`Builder::max_history`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = thread_safe_state::ThreadSafeState::new();
/// for i in 0..thread_safe_state::DEFAULT_MAX_HISTORY + 5 {
///     state.set("k", i).await?;
/// }
/// assert_eq!(state.metrics().history_len, thread_safe_state::DEFAULT_MAX_HISTORY);
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_MAX_HISTORY: usize = 1000;

/// Default for [`Builder::change_stream_capacity`].
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::DEFAULT_CHANGE_STREAM_CAPACITY, 1024);
/// ```
pub const DEFAULT_CHANGE_STREAM_CAPACITY: usize = 1024;

/// Default for [`Builder::mailbox_capacity`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = thread_safe_state::ThreadSafeState::<u8>::new();
/// assert_eq!(state.metrics().mailbox_depth, 0); // of DEFAULT_MAILBOX_CAPACITY slots
/// assert_eq!(thread_safe_state::DEFAULT_MAILBOX_CAPACITY, 1024);
/// # }
/// ```
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// The largest [`Builder::mailbox_capacity`]: tokio's
/// [`Semaphore::MAX_PERMITS`](tokio::sync::Semaphore::MAX_PERMITS)
/// (`usize::MAX >> 3`), the most slots a tokio bounded channel can count.
/// The mailbox allocates as commands arrive, not up front, so any capacity up
/// to this costs nothing until it is used.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{BuildError, ThreadSafeState, MAX_MAILBOX_CAPACITY};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(MAX_MAILBOX_CAPACITY, usize::MAX >> 3);
/// let error = ThreadSafeState::<u8>::builder()
///     .mailbox_capacity(MAX_MAILBOX_CAPACITY + 1)
///     .try_build()
///     .unwrap_err();
/// assert!(matches!(error, BuildError::MailboxCapacityTooLarge { max, .. } if max == MAX_MAILBOX_CAPACITY));
/// # }
/// ```
pub const MAX_MAILBOX_CAPACITY: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// The largest [`Builder::change_stream_capacity`]: 65,536 group commits.
///
/// The change-stream buffer is a ring (tokio's `broadcast`) allocated in
/// full when the state is built, whether or not a stream is ever opened,
/// with the capacity rounded up to a power of two; each slot is about 40
/// bytes on a 64-bit target. At this bound the ring is about 2.5 MiB per
/// state, 64 times the default. A consumer that falls further behind than
/// that gets [`StateError::Lagged`](crate::StateError::Lagged) and resumes
/// from the retained history with
/// [`changes_since`](ThreadSafeState::changes_since) instead.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{ThreadSafeState, MAX_CHANGE_STREAM_CAPACITY};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = ThreadSafeState::<u8>::builder()
///     .change_stream_capacity(MAX_CHANGE_STREAM_CAPACITY)
///     .try_build();
/// assert!(state.is_ok());
/// # }
/// ```
pub const MAX_CHANGE_STREAM_CAPACITY: usize = 1 << 16;

/// Configures a [`ThreadSafeState`]; made by [`ThreadSafeState::builder`].
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let state = ThreadSafeState::builder()
///     .initial_state([("phase", "init"), ("session", "s-1")])
///     .max_history(100)
///     .mailbox_capacity(256)
///     .build();
/// assert_eq!(state.len(), 2);
/// # }
/// ```
pub struct Builder<V> {
    initial: Vec<(Arc<str>, V)>,
    max_history: usize,
    mailbox_capacity: usize,
    stream_capacity: usize,
    name: String,
    empty_initial_key: bool,
    import: Option<Export<V>>,
}

impl<V: Send + Sync + 'static> Builder<V> {
    pub(crate) fn new() -> Self {
        Self {
            initial: Vec::new(),
            max_history: DEFAULT_MAX_HISTORY,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            stream_capacity: DEFAULT_CHANGE_STREAM_CAPACITY,
            name: String::new(),
            empty_initial_key: false,
            import: None,
        }
    }

    /// The contents of version 0. Later pairs win over earlier ones with the
    /// same key. Empty keys make [`try_build`](Self::try_build) fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::builder()
    ///     .initial_state([("agents".to_string(), 5)])
    ///     .build();
    /// assert_eq!(state.get("agents").as_deref(), Some(&5));
    /// assert_eq!(state.version(), Version::INITIAL);
    /// # }
    /// ```
    #[must_use]
    pub fn initial_state<K: AsRef<str>>(
        mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        match checked_keys(entries) {
            Ok(entries) => self.initial.extend(entries),
            Err(_) => self.empty_initial_key = true,
        }
        self
    }

    /// Start from an [`Export`] of another state (from
    /// [`ThreadSafeState::export`], possibly serialized and read back in
    /// another process) instead of an empty one: its keys, versions and
    /// history window, replayed through the writer's own map path. It
    /// takes the place of [`initial_state`](Self::initial_state); giving
    /// both is an error. This builder's `max_history` applies: a smaller
    /// window keeps only the newest commits of the export.
    ///
    /// The export is checked when the state is built: a bad one (versions
    /// that do not follow each other, a removal of a missing key, an empty
    /// key) is [`BuildError::InvalidImport`] or [`BuildError::EmptyKey`],
    /// never a panic in the writer.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fixture = ThreadSafeState::new();
    /// fixture.update([("task/1", "done"), ("task/2", "pending")]).await?;
    ///
    /// let state = ThreadSafeState::builder().import(fixture.export()).try_build()?;
    /// assert_eq!(state.version(), Version::new(1));
    /// assert_eq!(state.set("task/2", "done").await?, Version::new(2));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn import(mut self, export: Export<V>) -> Self {
        self.import = Some(export);
        self
    }

    /// A name for this state: the `state` label of its exported metrics
    /// (cargo feature `metrics`), so that several states in one process
    /// are told apart. Default: empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u8>::builder().name("workflow-7").build();
    /// assert!(format!("{state:?}").contains("workflow-7"));
    /// # }
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many commits the history retains (change records and the
    /// snapshots a rollback needs). Default 1000. A rollback can reach the
    /// last `max_history` versions before the current one; 0 keeps no history.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::builder().max_history(2).build();
    /// for i in 0..5 {
    ///     state.set("k", i).await?;
    /// }
    /// assert_eq!(state.history(None, None).len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn max_history(mut self, commits: usize) -> Self {
        self.max_history = commits;
        self
    }

    /// How many write commands may wait for the writer before writers wait
    /// for room (back-pressure). Default 1024; must be at least 1 and at most
    /// [`MAX_MAILBOX_CAPACITY`] (`usize::MAX >> 3`, tokio's limit), or
    /// [`try_build`](Self::try_build) fails. Slots are allocated as commands
    /// arrive, not up front.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::builder().mailbox_capacity(1).build();
    /// state.set("k", 1).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn mailbox_capacity(mut self, commands: usize) -> Self {
        self.mailbox_capacity = commands;
        self
    }

    /// How many group commits a [change stream](ThreadSafeState::changes_since)
    /// buffers for a slow consumer before it ends with
    /// [`StateError::Lagged`](crate::StateError::Lagged). Default 1024; must
    /// be at least 1 and at most [`MAX_CHANGE_STREAM_CAPACITY`] (65,536), or
    /// [`try_build`](Self::try_build) fails. The buffer is allocated in full
    /// when the state is built (rounded up to a power of two, about 40 bytes
    /// a slot), so keep it near what a consumer may really fall behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u8>::builder().change_stream_capacity(64).build();
    /// # }
    /// ```
    #[must_use]
    pub fn change_stream_capacity(mut self, groups: usize) -> Self {
        self.stream_capacity = groups;
        self
    }

    /// Builds the state and spawns its writer task on the current tokio
    /// runtime.
    ///
    /// # Panics
    ///
    /// Panics with the [`BuildError`] message when [`try_build`](Self::try_build)
    /// would fail: outside a tokio runtime, with a `mailbox_capacity` of 0 or
    /// above [`MAX_MAILBOX_CAPACITY`], with a `change_stream_capacity` of 0 or
    /// above [`MAX_CHANGE_STREAM_CAPACITY`], or with an empty key in
    /// `initial_state`.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<String>::builder().build();
    /// assert!(state.is_empty());
    /// # }
    /// ```
    ///
    /// Outside a runtime, it panics:
    ///
    /// ```should_panic
    /// use thread_safe_state::ThreadSafeState;
    /// let state = ThreadSafeState::<String>::builder().build();
    /// ```
    #[track_caller]
    pub fn build(self) -> ThreadSafeState<V> {
        self.try_build().unwrap_or_else(|error| panic!("{error}"))
    }

    /// Builds the state and spawns its writer task on the current tokio
    /// runtime, or says why it cannot.
    ///
    /// # Errors
    ///
    /// [`BuildError::NoRuntime`] outside a tokio runtime,
    /// [`BuildError::ZeroMailboxCapacity`] for `mailbox_capacity(0)`,
    /// [`BuildError::ZeroChangeStreamCapacity`] for `change_stream_capacity(0)`,
    /// [`BuildError::MailboxCapacityTooLarge`] for a `mailbox_capacity` above
    /// [`MAX_MAILBOX_CAPACITY`],
    /// [`BuildError::ChangeStreamCapacityTooLarge`] for a
    /// `change_stream_capacity` above [`MAX_CHANGE_STREAM_CAPACITY`],
    /// [`BuildError::EmptyKey`] for an empty key in `initial_state`.
    /// The configuration is checked before anything is allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{BuildError, ThreadSafeState};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let _guard = runtime.enter();
    /// let error = ThreadSafeState::<u8>::builder()
    ///     .mailbox_capacity(0)
    ///     .try_build()
    ///     .unwrap_err();
    /// assert_eq!(error, BuildError::ZeroMailboxCapacity);
    /// assert!(ThreadSafeState::<u8>::builder().try_build().is_ok());
    /// ```
    pub fn try_build(self) -> Result<ThreadSafeState<V>, BuildError> {
        self.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        self.try_build_on(&runtime)
    }

    /// Builds the state with its writer task spawned on `runtime`, from any
    /// thread, inside a runtime or not. The state lives as long as that
    /// runtime does: pick the one that outlives every user of the state
    /// (the application's main runtime, not a test's or a request's).
    ///
    /// # Errors
    ///
    /// As [`try_build`](Self::try_build), except
    /// [`BuildError::NoRuntime`], which cannot happen.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// // Built from plain code, outside any runtime.
    /// let state = ThreadSafeState::builder()
    ///     .initial_state([("phase", 1)])
    ///     .try_build_on(runtime.handle())
    ///     .unwrap();
    /// state.blocking().set("phase", 2).unwrap();
    /// assert_eq!(state.get("phase").as_deref(), Some(&2));
    /// ```
    pub fn try_build_on(
        self,
        runtime: &tokio::runtime::Handle,
    ) -> Result<ThreadSafeState<V>, BuildError> {
        self.check()?;
        let (state, writer) = self.assemble()?;
        runtime.spawn(writer.run());
        Ok(state)
    }

    /// [`try_build_on`](Self::try_build_on), panicking on a bad
    /// configuration.
    ///
    /// # Panics
    ///
    /// With the [`BuildError`] message when `try_build_on` would fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let state = ThreadSafeState::<u8>::builder().build_on(runtime.handle());
    /// assert!(state.is_empty());
    /// ```
    #[track_caller]
    pub fn build_on(self, runtime: &tokio::runtime::Handle) -> ThreadSafeState<V> {
        self.try_build_on(runtime)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub(crate) fn check(&self) -> Result<(), BuildError> {
        if self.empty_initial_key {
            return Err(BuildError::EmptyKey);
        }
        if self.import.is_some() && !self.initial.is_empty() {
            return Err(BuildError::InvalidImport {
                detail: "both initial_state and import were given".into(),
            });
        }
        if self.mailbox_capacity == 0 {
            return Err(BuildError::ZeroMailboxCapacity);
        }
        if self.stream_capacity == 0 {
            return Err(BuildError::ZeroChangeStreamCapacity);
        }
        if self.mailbox_capacity > MAX_MAILBOX_CAPACITY {
            return Err(BuildError::MailboxCapacityTooLarge {
                requested: self.mailbox_capacity,
                max: MAX_MAILBOX_CAPACITY,
            });
        }
        if self.stream_capacity > MAX_CHANGE_STREAM_CAPACITY {
            return Err(BuildError::ChangeStreamCapacityTooLarge {
                requested: self.stream_capacity,
                max: MAX_CHANGE_STREAM_CAPACITY,
            });
        }
        Ok(())
    }

    /// The handle and its writer, not yet running; call [`Self::check`] first.
    ///
    /// # Errors
    ///
    /// When the import does not replay.
    pub(crate) fn assemble(mut self) -> Result<(ThreadSafeState<V>, Writer<V>), BuildError> {
        if let Some(export) = self.import.take() {
            let (base, commits) = export.replay()?;
            return Ok(self.assemble_from(base, commits, Target::memory()));
        }
        let mut map = Map::new();
        for (key, value) in std::mem::take(&mut self.initial) {
            let version = Version::INITIAL;
            map.insert(key, Entry::new(Arc::new(value), version, version));
        }
        Ok(self.assemble_from(
            Snapshot::new(Version::INITIAL, map),
            Vec::new(),
            Target::memory(),
        ))
    }

    /// The handle and its writer continuing from `base` and the `commits`
    /// after it (the last one with its snapshot), as a journal recovered
    /// them; call [`Self::check`] first.
    pub(crate) fn assemble_from(
        self,
        base: Snapshot<V>,
        commits: Vec<crate::history::Commit<V>>,
        target: Target<V>,
    ) -> (ThreadSafeState<V>, Writer<V>) {
        let (shared, feed) = Shared::restored(
            base,
            commits,
            self.max_history,
            self.stream_capacity,
            &self.name,
        );
        let (mailbox, inbox) = mpsc::channel(self.mailbox_capacity);
        #[allow(unused_mut)] // mutated only with a durable target
        let mut committer =
            Committer::new(Arc::clone(&shared), Feed::new(feed, self.stream_capacity));
        #[cfg(feature = "durable")]
        if matches!(target, Target::Journal(_)) {
            committer.refuse_ttls();
        }
        let writer = Writer::new(inbox, committer, target, Arc::clone(&shared));
        (ThreadSafeState::from_parts(shared, mailbox), writer)
    }

    /// The settings a journal needs: the retained window and the initial
    /// entries of a new file.
    ///
    /// # Errors
    ///
    /// A journal cannot start from an import (yet): that is refused rather
    /// than ignored.
    #[cfg(feature = "durable")]
    pub(crate) fn take_initial(&mut self) -> Result<(usize, InitialEntries<V>), BuildError> {
        if self.import.is_some() {
            return Err(BuildError::InvalidImport {
                detail: "a durable state cannot start from an import".into(),
            });
        }
        Ok((self.max_history, std::mem::take(&mut self.initial)))
    }
}

impl<V> Builder<V> {
    /// The setting an etcd state cannot honour, if one was given.
    #[cfg(feature = "etcd")]
    pub(crate) fn etcd_unsupported(&self) -> Option<&'static str> {
        if !self.initial.is_empty() {
            Some("initial_state")
        } else if self.import.is_some() {
            Some("import")
        } else {
            None
        }
    }
}

impl<V> fmt::Debug for Builder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("initial_keys", &self.initial.len())
            .field("max_history", &self.max_history)
            .field("mailbox_capacity", &self.mailbox_capacity)
            .field("change_stream_capacity", &self.stream_capacity)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
