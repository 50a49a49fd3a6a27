//! [`ThreadSafeState`]: the handle. Reads load the published snapshot; writes
//! are messages to the writer task.

use std::fmt;

use crate::blocking::Blocking;
use crate::builder::Builder;
use crate::error::StateError;
use crate::history::ChangeRecord;
use crate::metrics::{Counters, Metrics, ReadKind};
use crate::modify::{Modification, Modified};
use crate::shared::Shared;
use crate::snapshot::{missing_key, Snapshot, SnapshotInner};
use crate::subscriber::Subscriber;
use crate::sync::{mpsc, oneshot, Arc, Liveness};
use crate::writer::command::{Command, Op, Reply};
use crate::Version;

/// Shared, versioned, string-keyed state for many tasks and threads.
///
/// A cheap handle: clone it into every task. Reads (`get`, `snapshot`, ...)
/// are synchronous and lock-free and never wait for the writer. Writes
/// (`set`, `update`, `delete`, `clear`, `modify`, `retain`, `rollback`) are
/// sent to the state's single writer task and resolve once their new version
/// is visible to every reader on every thread. [`blocking`](Self::blocking)
/// gives the same writes to plain `std::thread`s.
///
/// A `get` followed by a `set` is **not** atomic: another writer can commit
/// in between, and its update is lost. Use [`modify`](Self::modify), which
/// runs the read and the write together in the writer.
///
/// The writer task stops when the last handle is dropped, after answering
/// every command already queued.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{Modification, ThreadSafeState};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let tasks: Vec<_> = (0..5)
///     .map(|i| {
///         let agent = state.for_agent(format!("agent-{i}"));
///         tokio::spawn(async move { agent.modify("done", |n| Modification::Set(n.copied().unwrap_or(0) + 1)).await })
///     })
///     .collect();
/// for task in tasks {
///     task.await.unwrap()?;
/// }
/// assert_eq!(state.get("done").as_deref(), Some(&5));
/// assert_eq!(state.version().get(), 5);
/// # Ok(())
/// # }
/// ```
pub struct ThreadSafeState<V> {
    shared: Arc<Shared<V>>,
    mailbox: mpsc::Sender<Command<V>>,
    changed_by: Option<Arc<str>>,
    /// The etcd lease this handle's puts carry, kept alive while a clone
    /// of the handle lives.
    #[cfg(feature = "etcd")]
    pub(crate) lease: Option<Arc<crate::etcd::lease::Lease>>,
}

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// An empty state with default settings, its writer spawned on the
    /// current tokio runtime. Same as `ThreadSafeState::builder().build()`.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime (there is nowhere to spawn the writer
    /// task). Use [`Builder::try_build`] to get a [`BuildError`](crate::BuildError) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<serde_json::Value>::new();
    /// assert!(state.is_empty());
    /// assert_eq!(state.version(), Version::INITIAL);
    /// # }
    /// ```
    #[track_caller]
    pub fn new() -> Self {
        Builder::new().build()
    }

    /// A [`Builder`] for initial contents, history size and mailbox size.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::builder().initial_state([("phase", 0)]).build();
    /// assert_eq!(state.get("phase").as_deref(), Some(&0));
    /// # }
    /// ```
    pub fn builder() -> Builder<V> {
        Builder::new()
    }
}

impl<V> ThreadSafeState<V> {
    pub(crate) fn from_parts(shared: Arc<Shared<V>>, mailbox: mpsc::Sender<Command<V>>) -> Self {
        Self {
            shared,
            mailbox,
            changed_by: None,
            #[cfg(feature = "etcd")]
            lease: None,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<V>> {
        &self.shared
    }

    /// Count one read and run it against the published snapshot.
    fn read<R>(&self, kind: ReadKind, read: impl FnOnce(&SnapshotInner<V>) -> R) -> R {
        self.shared.counters.reads.increment(kind);
        self.shared.current.read(read)
    }

    /// The value of `key`, if present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("phase", "generate").await?;
    /// assert_eq!(state.get("phase").as_deref(), Some(&"generate"));
    /// assert_eq!(state.get("missing"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.read(ReadKind::Get, |current| {
            current.map.get(key).map(|entry| Arc::clone(entry.value()))
        })
    }

    /// The value of `key`, or an error that names the keys that do exist.
    ///
    /// # Errors
    ///
    /// [`StateError::KeyNotFound`] when `key` is absent, carrying the key and
    /// at most the 10 smallest available keys, sorted, and how many there are
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("session_id", "s-1").await?;
    /// assert_eq!(*state.get_required("session_id")?, "s-1");
    /// let error = state.get_required("sesion_id").unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"key "sesion_id" not found; available keys: "session_id""#
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_required(&self, key: &str) -> Result<Arc<V>, StateError> {
        self.read(ReadKind::Get, |current| match current.map.get(key) {
            Some(entry) => Ok(Arc::clone(entry.value())),
            None => Err(missing_key(&current.map, key)),
        })
    }

    /// The value of the first of `key`, then `fallbacks`, that is present,
    /// all looked up in one snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("default_model", "small").await?;
    /// let model = state.get_with_fallback("model", &["default_model"]);
    /// assert_eq!(model.as_deref(), Some(&"small"));
    /// assert_eq!(state.get_with_fallback("a", &["b", "c"]), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_with_fallback(&self, key: &str, fallbacks: &[&str]) -> Option<Arc<V>> {
        self.read(ReadKind::Get, |current| {
            std::iter::once(key)
                .chain(fallbacks.iter().copied())
                .find_map(|key| current.map.get(key))
                .map(|entry| Arc::clone(entry.value()))
        })
    }

    /// Whether `key` is present.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("k", 1).await?;
    /// assert!(state.contains_key("k"));
    /// assert!(!state.contains_key("other"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        self.read(ReadKind::Other, |current| current.map.contains_key(key))
    }

    /// The number of keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("a", 1), ("b", 2)]).await?;
    /// assert_eq!(state.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.read(ReadKind::Other, |current| current.map.len())
    }

    /// Whether there are no keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u8>::new();
    /// assert!(state.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.read(ReadKind::Other, |current| current.map.is_empty())
    }

    /// The keys, sorted: O(n), read from the state's ordered key index (no
    /// sorting). To look at many keys consistently, take a
    /// [`snapshot`](Self::snapshot) and iterate it instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("b", 2), ("a", 1)]).await?;
    /// assert_eq!(state.keys(), ["a", "b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.read(ReadKind::Other, |current| {
            current
                .map
                .sorted_keys()
                .map(|key| key.to_string())
                .collect()
        })
    }

    /// The keys that start with `prefix`, sorted: O(log n + matches), from
    /// the ordered key index, lock-free. Agents namespace their keys
    /// (`task/…`, `agent/…`); this finds one namespace without scanning the
    /// others.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("task/2", 0), ("agent/a", 1), ("task/1", 0), ("tasks", 9)]).await?;
    /// assert_eq!(state.keys_with_prefix("task/"), ["task/1", "task/2"]);
    /// assert!(state.keys_with_prefix("none/").is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.read(ReadKind::Other, |current| {
            current
                .map
                .keys_with_prefix(prefix)
                .map(|key| key.to_string())
                .collect()
        })
    }

    /// The current version.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// assert_eq!(state.version(), Version::INITIAL);
    /// state.update([("a", 1), ("b", 2)]).await?; // a batch is one version
    /// assert_eq!(state.version(), Version::new(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self) -> Version {
        self.read(ReadKind::Other, |current| current.version)
    }

    /// The whole state at the current version: owned, immutable, O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("a", 1).await?;
    /// let snapshot = state.snapshot();
    /// state.set("a", 2).await?;
    /// assert_eq!(snapshot.get("a").as_deref(), Some(&1));
    /// assert_eq!(snapshot.version().get(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot(&self) -> Snapshot<V> {
        self.shared.counters.reads.increment(ReadKind::Snapshot);
        Snapshot::from_inner(self.shared.current.load_full())
    }

    /// The whole state as it was at a retained `version` (time travel).
    ///
    /// O(1) for a version that was published (the last write of each group
    /// commit, and every version when writes are not concurrent); any other
    /// retained version is rebuilt by replaying at most one group's writes.
    ///
    /// # Errors
    ///
    /// [`StateError::VersionCompacted`] for a version older than the history
    /// retains (naming the oldest one it does);
    /// [`StateError::FutureVersion`] for a version not published yet (one
    /// that [`version`](Self::version) does not show).
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::new();
    /// let v1 = state.set("phase", "parse").await?;
    /// state.set("phase", "generate").await?;
    ///
    /// let then = state.snapshot_at(v1)?;
    /// assert_eq!(then.get("phase").as_deref(), Some(&"parse"));
    /// assert!(state.snapshot_at(Version::INITIAL)?.is_empty());
    /// assert!(matches!(
    ///     state.snapshot_at(Version::new(9)),
    ///     Err(StateError::FutureVersion { .. })
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot_at(&self, version: Version) -> Result<Snapshot<V>, StateError> {
        let (history, horizon) = self.shared.history();
        history
            .snapshot_at(version, horizon)
            .map_err(|unreachable| unreachable.into_error(version, horizon))
    }

    /// Change records, most recent first: all of them, or those of `key`,
    /// at most `limit`.
    ///
    /// Records are retained for the last `max_history` commits (see
    /// [`Builder::max_history`]). Records of one batch share a version.
    /// Only published versions appear: never one that
    /// [`version`](Self::version) does not show yet. The writer is never
    /// held up by a query: the history is copied in O(1) and searched
    /// outside any lock it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Operation, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("a", 1).await?;
    /// state.set("b", 2).await?;
    /// state.delete("a").await?;
    ///
    /// let all = state.history(None, None);
    /// assert_eq!(all.len(), 3);
    /// assert_eq!(all[0].operation, Operation::Delete);
    /// let of_a = state.history(Some("a"), Some(1));
    /// assert_eq!(of_a.len(), 1);
    /// assert_eq!(of_a[0].old_value.as_deref(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(&self, key: Option<&str>, limit: Option<usize>) -> Vec<ChangeRecord<V>> {
        // An O(1) copy under the lock; the search happens outside it.
        let (history, horizon) = self.shared.history();
        history.records(key, limit, horizon)
    }

    /// A [`Subscriber`] that is woken after every published version.
    ///
    /// It starts at the current snapshot (already marked seen). Wake-ups
    /// coalesce: a slow subscriber may skip intermediate versions, but never
    /// misses the latest one. Everything it hands out is an owned
    /// [`Snapshot`], so nothing a subscriber does can hold up the writer.
    /// Use [`wait_for`](Self::wait_for) to wait for a condition.
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
    /// let snapshot = updates.wait_for(|snapshot| snapshot.contains_key("done")).await?;
    /// state.set("next", false).await?; // holding `snapshot` blocks nothing
    /// assert_eq!(snapshot.get("done").as_deref(), Some(&true));
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> Subscriber<V> {
        Subscriber::new(Arc::clone(&self.shared))
    }

    /// Counters and gauges for this state.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("a", 1).await?;
    /// let metrics = state.metrics();
    /// assert_eq!(metrics.commits, 1);
    /// assert_eq!(metrics.retained_versions, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn metrics(&self) -> Metrics {
        let counters = &self.shared.counters;
        // Counters first: the writer adds a group's counts after publishing
        // it, so counts seen here are of published versions, and the
        // version loaded next is at least theirs.
        let writes = Counters::load(&counters.writes);
        let commits = Counters::load(&counters.commits);
        let rollbacks = Counters::load(&counters.rollbacks);
        let failed_commands = Counters::load(&counters.failed);
        let (history, horizon) = self.shared.history();
        let history_len = history.retained_commits(horizon);
        Metrics {
            version: horizon,
            reads: counters.reads.total(),
            gets: counters.reads.sum(ReadKind::Get),
            snapshots: counters.reads.sum(ReadKind::Snapshot),
            writes,
            commits,
            rollbacks,
            failed_commands,
            history_len,
            retained_versions: history_len + 1,
            mailbox_depth: self.mailbox.max_capacity() - self.mailbox.capacity(),
            writes_by_operation: counters.by_operation(),
            write_latency_ns: counters.write_latency_ns.summary(),
            commit_time_ns: counters.commit_time_ns.summary(),
            group_size: counters.group_size.summary(),
        }
    }

    /// A handle to the same state whose writes are recorded with
    /// `changed_by = agent`.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let validator = state.for_agent("validator");
    /// validator.set("validated", true).await?;
    /// assert_eq!(state.get("validated").as_deref(), Some(&true));
    /// assert_eq!(state.history(None, None)[0].changed_by.as_deref(), Some("validator"));
    /// assert_eq!(validator.agent_id(), Some("validator"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_agent(&self, agent: impl AsRef<str>) -> Self {
        Self {
            changed_by: Some(Arc::from(agent.as_ref())),
            ..self.clone()
        }
    }

    /// The agent id this handle records its writes with, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = ThreadSafeState::<u8>::new();
    /// assert_eq!(state.agent_id(), None);
    /// # }
    /// ```
    pub fn agent_id(&self) -> Option<&str> {
        self.changed_by.as_deref()
    }

    /// The same writes, for code running on plain threads outside async code.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let state = runtime.block_on(async { ThreadSafeState::new() });
    /// let worker = state.clone();
    /// std::thread::spawn(move || worker.blocking().set("from_thread", 1))
    ///     .join()
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(state.get("from_thread").as_deref(), Some(&1));
    /// ```
    pub fn blocking(&self) -> Blocking<'_, V> {
        Blocking::new(self)
    }

    /// Send one command and wait for its answer.
    pub(crate) async fn submit(&self, op: Op<V>) -> Reply {
        #[cfg(feature = "etcd")]
        self.lease_alive(&op)?;
        let (reply, answer) = oneshot::channel();
        let command = self.command(op, reply);
        self.mailbox
            .send(command)
            .await
            .map_err(|_| StateError::Closed)?;
        let reply = answer.await.map_err(|_| StateError::Closed)?;
        #[cfg(feature = "etcd")]
        self.lease_answered(&reply);
        reply
    }

    /// Send one command and wait for its answer, blocking this thread.
    pub(crate) fn submit_blocking(&self, op: Op<V>) -> Reply {
        #[cfg(feature = "etcd")]
        self.lease_alive(&op)?;
        let (reply, answer) = oneshot::channel();
        let command = self.command(op, reply);
        self.mailbox
            .blocking_send(command)
            .map_err(|_| StateError::Closed)?;
        let reply = answer.blocking_recv().map_err(|_| StateError::Closed)?;
        #[cfg(feature = "etcd")]
        self.lease_answered(&reply);
        reply
    }

    /// Hand `op` to the writer without waiting, nobody to answer: `false`
    /// if the mailbox is full or the writer gone.
    #[cfg(feature = "etcd")]
    pub(crate) fn try_send_unanswered(mailbox: &mpsc::Sender<Command<V>>, op: Op<V>) -> bool {
        let (reply, _) = oneshot::channel();
        let command = Command {
            op,
            changed_by: None,
            lease: None,
            reply,
            sent_at: std::time::Instant::now(),
            span: tracing::Span::none(),
        };
        mailbox.try_send(command).is_ok()
    }

    /// A clone of the mailbox's sender (it keeps the writer running).
    #[cfg(feature = "etcd")]
    pub(crate) fn mailbox(&self) -> mpsc::Sender<Command<V>> {
        self.mailbox.clone()
    }

    fn command(&self, op: Op<V>, reply: oneshot::Sender<Reply>) -> Command<V> {
        Command {
            op,
            changed_by: self.changed_by.clone(),
            #[cfg(feature = "etcd")]
            lease: self.lease.as_ref().map(|lease| lease.id()),
            reply,
            sent_at: std::time::Instant::now(),
            span: tracing::Span::current(),
        }
    }
}

// The writes. Each validates its input on the caller's side, so bad input
// never reaches the writer, then sends one command and awaits its answer.
impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Set `key` to `value`, committing one version.
    ///
    /// # Errors
    ///
    /// [`StateError::EmptyKey`] for an empty key; [`StateError::Closed`] if
    /// the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the write: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let version = state.set("phase", "parse").await?;
    /// assert_eq!(version.get(), 1);
    /// assert_eq!(state.get("phase").as_deref(), Some(&"parse"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(&self, key: impl AsRef<str>, value: V) -> Result<Version, StateError> {
        self.submit(Op::set(key, value)?).await.map(|a| a.version)
    }

    /// Set several keys as one version: readers see all of them or none.
    ///
    /// An empty batch commits nothing and returns the current version.
    ///
    /// # Errors
    ///
    /// [`StateError::EmptyKey`] if any key is empty (nothing is written);
    /// [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the batch: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let version = state.update([("models", 3), ("validators", 2)]).await?;
    /// assert_eq!(version.get(), 1);
    /// assert_eq!(state.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<K: AsRef<str>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Version, StateError> {
        self.submit(Op::update(entries)?).await.map(|a| a.version)
    }

    /// Remove `key`. Returns whether it was present; removing an absent key
    /// commits nothing.
    ///
    /// # Errors
    ///
    /// [`StateError::EmptyKey`] for an empty key; [`StateError::Closed`] if
    /// the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the write: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("tmp", 1).await?;
    /// assert!(state.delete("tmp").await?);
    /// assert!(!state.delete("tmp").await?);
    /// assert_eq!(state.version().get(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, key: impl AsRef<str>) -> Result<bool, StateError> {
        self.submit(Op::delete(key)?).await.map(|a| a.committed)
    }

    /// [`delete`](Self::delete), returning the version the removal
    /// committed instead of a `bool`: `Some(version)` if the key was
    /// present, `None` (nothing committed) if it was not. Use it to chain a
    /// compare-and-set or a wait on that version.
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete).
    ///
    /// # Cancel safety
    ///
    /// As [`delete`](Self::delete).
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("lock", 1).await?;
    /// assert_eq!(state.remove("lock").await?, Some(Version::new(2)));
    /// assert_eq!(state.remove("lock").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove(&self, key: impl AsRef<str>) -> Result<Option<Version>, StateError> {
        self.submit(Op::delete(key)?)
            .await
            .map(|a| a.committed.then_some(a.version))
    }

    /// Remove every key, as one version. Clearing an empty state commits
    /// nothing.
    ///
    /// # Errors
    ///
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
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("a", 1), ("b", 2)]).await?;
    /// state.clear().await?;
    /// assert!(state.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn clear(&self) -> Result<Version, StateError> {
        self.submit(Op::Clear).await.map(|a| a.version)
    }

    /// Atomically read-modify-write `key`: `f` gets the current value
    /// (`None` if absent) and decides, run in the writer task so no other
    /// write can come between the read and the write:
    ///
    /// - [`Modification::Set`] writes its value and commits a new version;
    /// - [`Modification::Delete`] removes the key (a new version if it was
    ///   present; nothing is committed if it was absent);
    /// - [`Modification::Keep`] commits nothing: the version, and every
    ///   compare-and-set token taken before, stay valid.
    ///
    /// The answer, [`Modified`], says whether a version was committed, the
    /// version (the new one, else the current one) and the key's value
    /// after the command (for `Set`, the very `Arc` that readers get).
    ///
    /// This is the fix for the lost update of `get` then `set`. Keep `f`
    /// short: the writer runs nothing else while it runs. `f`'s captures
    /// are part of it: they are dropped in the writer when `f` returns, so
    /// a panic in their `Drop` fails this command like a panic in `f`
    /// (nothing is written; the writer keeps serving).
    ///
    /// # Errors
    ///
    /// [`StateError::ModifyPanicked`] if `f` panics (the state, its version
    /// and the writer are untouched and keep serving; other commands are
    /// unaffected);
    /// [`StateError::EmptyKey`] for an empty key; [`StateError::Closed`] if
    /// the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the write: once the command is
    /// in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{Modification, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let increment = |n: Option<&u32>| Modification::Set(n.copied().unwrap_or(0) + 1);
    /// state.modify("completed", increment).await?;
    /// let done = state.modify("completed", increment).await?;
    /// assert_eq!(done.value.as_deref(), Some(&2));
    /// assert_eq!(done.version, state.version());
    ///
    /// // Keep commits nothing.
    /// let kept = state.modify("completed", |_| Modification::Keep).await?;
    /// assert!(!kept.committed);
    /// assert_eq!(kept.version, done.version);
    /// assert_eq!(state.get("completed").as_deref(), Some(&2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn modify<F>(&self, key: impl AsRef<str>, f: F) -> Result<Modified<V>, StateError>
    where
        F: FnOnce(Option<&V>) -> Modification<V> + Send + 'static,
    {
        let (op, value) = Op::modify(key, f)?;
        let applied = self.submit(op).await?;
        Ok(value.into_modified(applied.version, applied.committed))
    }

    /// Keep only `keys` and remove every other key, as one version (the
    /// recovery from a polluted state). Keys in `keys` that are absent are
    /// ignored; when nothing is removed no version is committed. This is
    /// the Python seed's "recover to known good keys" recovery helper (see
    /// also [`rollback_to_last_good`](Self::rollback_to_last_good)).
    ///
    /// # Errors
    ///
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
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.update([("session_id", 1), ("scratch", 2), ("junk", 3)]).await?;
    /// state.retain(["session_id"]).await?;
    /// assert_eq!(state.keys(), ["session_id"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn retain<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Version, StateError> {
        self.submit(Op::retain(keys)).await.map(|a| a.version)
    }

    /// Commit a new version whose contents equal those of `target`.
    ///
    /// History is never rewritten: the rollback is itself a new version,
    /// recorded with [`Operation::Rollback`](crate::Operation::Rollback)
    /// records for the keys it changed, sorted by key. Every value is
    /// restored as it was at `target` (the very same `Arc`s). A key the
    /// rollback changes is modified at the rollback's version, and created
    /// there if the rollback re-creates it, so per-key versions never go
    /// backwards and a compare-and-set token from before the rollback
    /// fails. Keys it leaves alone keep their versions. A rollback always
    /// commits, even when the contents already equal `target`'s (its
    /// history then holds no records).
    ///
    /// Its cost is proportional to the changes committed since `target`
    /// (the history names the keys that can differ), not to the state's
    /// size.
    ///
    /// # Errors
    ///
    /// [`StateError::InvalidVersion`] if `target` is not older than the
    /// current version; [`StateError::VersionCompacted`] if it is older than
    /// the history retains (the error names the oldest reachable version);
    /// [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never half-applies the rollback: once the command
    /// is in the mailbox it is applied in full, before that it is not applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let good = state.set("plan", "v1").await?;
    /// state.set("plan", "broken").await?;
    ///
    /// let version = state.rollback(good).await?;
    /// assert_eq!(version.get(), 3); // a new version, not a rewind
    /// assert_eq!(state.get("plan").as_deref(), Some(&"v1"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback(&self, target: Version) -> Result<Version, StateError> {
        self.submit(Op::Rollback(target)).await.map(|a| a.version)
    }
}

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Stop the state's writer: no new write is taken (it gets
    /// [`StateError::Closed`], on every handle), every write already queued
    /// is applied and answered, and then this returns. Waits on the state
    /// ([`wait_for`](Self::wait_for), key watches, subscribers, change
    /// streams) then end as they do when the last handle is dropped. Reads
    /// keep working on the final snapshot.
    ///
    /// For an orderly shutdown: close the state before the runtime that
    /// runs its writer ends, so no caller is left with an unanswered write.
    /// Closing a closed state returns at once.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for targets whose close can
    /// fail (a journal's last sync).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once sent, the close happens whether or not this is
    /// awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::new();
    /// let queued = tokio::spawn({
    ///     let state = state.clone();
    ///     async move { state.set("last", 1).await }
    /// });
    /// tokio::task::yield_now().await; // the write is queued
    /// state.close().await?;
    /// assert!(queued.await.unwrap().is_ok()); // answered before close returned
    /// assert_eq!(state.set("late", 2).await, Err(StateError::Closed));
    /// assert_eq!(state.get("last").as_deref(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) -> Result<(), StateError> {
        match self.submit(Op::Close).await {
            Ok(_) => Ok(()),
            // The mailbox is already closed: another close is under way
            // (or the writer is gone). Return only once the writer has
            // answered everything and let go of what it holds.
            Err(StateError::Closed) => {
                self.writer_stopped().await;
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Resolves once the writer task has ended: after its last reply and
    /// after its commit target let go of its resources. (The mailbox's own
    /// `closed()` resolves as soon as the writer stops taking commands,
    /// which is too early.)
    pub(crate) async fn writer_stopped(&self) {
        let notifier = &self.shared.notifier;
        notifier
            .until(|| (notifier.liveness() != Liveness::Open).then_some(()))
            .await;
    }
}

impl<V> Clone for ThreadSafeState<V> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            mailbox: self.mailbox.clone(),
            changed_by: self.changed_by.clone(),
            #[cfg(feature = "etcd")]
            lease: self.lease.clone(),
        }
    }
}

impl<V: Send + Sync + 'static> Default for ThreadSafeState<V> {
    /// Same as [`ThreadSafeState::new`].
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    #[track_caller]
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for ThreadSafeState<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (version, len) = self
            .shared
            .current
            .read(|current| (current.version, current.map.len()));
        f.debug_struct("ThreadSafeState")
            .field("name", &self.shared.name)
            .field("version", &version)
            .field("len", &len)
            .field("agent", &self.changed_by)
            .finish_non_exhaustive()
    }
}
