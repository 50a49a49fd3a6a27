//! etcd as the source of truth (feature `etcd`).
//!
//! - [`mirror`]: list the prefix, then watch it (the informer pattern);
//! - [`txn`]: each command as one etcd txn, etcd's limits checked first;
//! - [`run`]: the writer loop: txns in flight, revisions committed through
//!   the commit core, callers answered once their revision is published;
//! - this file: [`EtcdBuilder`] and [`EtcdError`].

pub(crate) mod lease;
pub(crate) mod link;
pub(crate) mod marker;
pub(crate) mod mirror;
pub(crate) mod mvcc;
pub(crate) mod run;
pub(crate) mod ttl;
pub(crate) mod txn;

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::builder::Builder;
use crate::error::{BuildError, Cause};
use crate::map::Map;
use crate::snapshot::{Entry, Snapshot};
use crate::state::ThreadSafeState;
use crate::sync::Arc;
use crate::writer::target::Target;
use mirror::Mirror;
use txn::Settings;

pub(crate) use run::{run, EtcdTarget};
pub use txn::{DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS};

/// Default for [`EtcdBuilder::request_timeout`]: 5 seconds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(thread_safe_state::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(5));
/// ```
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many mirrored revisions may wait for the writer.
const MIRROR_CAPACITY: usize = 1024;

/// Configures a [`ThreadSafeState`] whose source of truth is etcd; made by
/// [`Builder::etcd`].
///
/// The state is the set of etcd keys under a prefix: key `k` of the state
/// is etcd key `prefix + k`, its value is the JSON of `V`. Several
/// processes (or several handles of one process, each from its own
/// [`connect`](Self::connect)) on the same prefix share it.
///
/// # How it works
///
/// - **Reads stay local and lock-free.** A mirror task lists the prefix
///   (a linearizable read) at revision R, publishes that snapshot as
///   version R, then watches from R + 1 (without previous values, which
///   the writer already holds: they would cost etcd a read per event; and
///   without progress notifications, which etcd before 3.4.25 and 3.5.8
///   can send ahead of the events they cover) and commits each revision's
///   events as one version,
///   through the same commit core as an in-memory state: `history`,
///   `changes_since`, `snapshot_at`, waiters and metrics work unchanged.
/// - **Versions are etcd revisions**: they only go up, but they are not
///   dense. Other writers, and keys outside the prefix, take the numbers
///   in between. A key's created and modified versions are its etcd
///   `create_revision` and `mod_revision`, so a version read from a
///   snapshot is a valid compare-and-set token in every process.
///   `snapshot_at(v)` for a `v` between two commits is the state at the
///   newer commit at or before `v`. The history window (`history`,
///   `snapshot_at`, `changes_since`) is the last `max_history` commits
///   this handle has mirrored; behind it,
///   [`fetch_snapshot_at`](crate::ThreadSafeState::fetch_snapshot_at),
///   [`fetch_changes_since`](crate::ThreadSafeState::fetch_changes_since)
///   and `rollback` read etcd's own MVCC history (a range of the prefix at
///   the revision), back to etcd's last compaction, which is
///   [`StateError::VersionCompacted`](crate::StateError::VersionCompacted)
///   with the oldest revision etcd still holds.
/// - **Each write is one etcd request**, so each command has its own
///   revision, and a write **resolves only after the mirror has published
///   its revision**: read-your-writes, as in memory. A write that changes
///   nothing or fails its compare resolves once the mirror has passed the
///   revision etcd decided it at, so a read after the answer shows what
///   the answer was based on (the key already gone, the write that won).
///   For that such a request puts the progress marker, the etcd key
///   `prefix + 0xff + "tss-progress"`: it is not a key of the state (no
///   UTF-8 key contains the byte 0xff), and `clear`, `retain` and
///   transactions leave it alone, but it costs a revision.
/// - On a compacted or cancelled watch the mirror lists the prefix again
///   and commits the differences as one version (no gap, no duplicate);
///   on connection errors it retries with backoff while reads keep
///   serving the last snapshot.
///
/// # Writes on etcd
///
/// - `set`, `update`, `delete`, `clear` (a delete of the prefix range)
///   and `retain` (deletes of the ranges between the kept keys, so keys
///   created meanwhile go too) are unconditional txns.
/// - `set_if` and `delete_if` compare the key's `mod_revision`
///   ([`Precondition::ModifiedAt`](crate::Precondition::ModifiedAt)) or
///   `create_revision` (`Absent`: 0, `Exists`: above 0).
/// - `modify` runs its closure **once**, in the writer, on the mirror's
///   newest snapshot, and commits with a compare on the key's
///   `mod_revision` (or its absence). `modify`, `transaction` and
///   `rollback` wait until this handle's earlier writes are mirrored, and
///   nothing else is sent while their txn is in flight, so a handle's own
///   writes never make them conflict (as in memory); only another
///   process's write can. `transaction` runs its closure once
///   on that snapshot and commits with a compare on every key it writes
///   (each as the snapshot shows it) **and** a compare that no key under
///   the prefix was put after the snapshot's revision. That guarantees the
///   transaction's writes are applied to exactly the state its closure
///   saw, except for one case the compares cannot see: a key the closure
///   only *read* that another writer *deleted* meanwhile. A transaction
///   that must notice that should also write (or `Write::set` to its own
///   value) the keys whose existence it depends on.
/// - A failed compare is [`StateError::Conflict`](crate::StateError::Conflict).
///   `modify` and `transaction` take `FnOnce` closures, which the crate
///   cannot run twice: they return the conflict. Their twins
///   [`modify_retrying`](crate::ThreadSafeState::modify_retrying) and
///   [`transaction_retrying`](crate::ThreadSafeState::transaction_retrying)
///   take `FnMut` closures and retry, as etcd's own STM does: each new
///   attempt waits until this handle has mirrored the write that won, so
///   the closure sees it.
/// - `rollback(v)` within the local history window computes the
///   differences locally and writes them in one txn, comparing each key's
///   `mod_revision`; a concurrent write to one of them is a conflict. A
///   key counts as unchanged when it holds the very value it held at `v`
///   (as in memory: the same write, not an equal value; a value another
///   process wrote again counts as changed and is written back). A
///   rollback that changes nothing writes nothing and returns the current
///   version. Behind the window the differences come from etcd's history
///   at `v`: a key is unchanged when its modified revision, or its JSON,
///   is the same.
/// - etcd's limits are checked before sending:
///   [`StateError::TooManyOperations`](crate::StateError::TooManyOperations)
///   (128 operations or compares per txn by default) and
///   [`StateError::RequestTooLarge`](crate::StateError::RequestTooLarge)
///   (1.5 MiB by default); set [`max_txn_ops`](Self::max_txn_ops) and
///   [`max_request_bytes`](Self::max_request_bytes) to a cluster's own.
/// - A write without an answer (a timeout, a dropped connection) has an
///   unknown outcome: it fails with
///   [`StateError::OutcomeUnknown`](crate::StateError::OutcomeUnknown),
///   and may or may not appear later (the mirror shows it if it did). To
///   retry safely, make the retry conditional: read the key's
///   `modified_version` before the first attempt and retry with
///   `set_if(key, value, Precondition::ModifiedAt(that))`; a `Conflict`
///   then means the first attempt (or someone else) won. A request etcd
///   refused is [`StateError::EtcdRejected`](crate::StateError::EtcdRejected):
///   not applied.
///
/// # Leases and TTLs
///
/// - [`for_agent_with_lease`](crate::ThreadSafeState::for_agent_with_lease)
///   gives a handle whose puts carry an etcd lease, renewed while the
///   handle lives and revoked when it is dropped: an agent's keys vanish
///   when it stops, or one TTL after its process dies.
/// - [`set_with_ttl`](crate::ThreadSafeState::set_with_ttl) grants the key
///   a lease of its own; etcd deletes it after the TTL (whole seconds).
///
/// [`close`](crate::ThreadSafeState::close) answers once every txn sent has
/// answered and every acknowledged one is mirrored: while etcd is
/// unreachable it waits for the mirror to reconnect.
///
/// `changed_by` and the operation of a commit are recorded by the handle
/// that wrote it (the mirror holds a revision until the txns sent before it
/// arrived have answered); for every write of another process, and for a
/// relist's differences, the record says [`Operation::External`](crate::Operation::External)
/// with no `changed_by`: etcd stores values, not who wrote them.
///
/// # Examples
///
/// ```no_run
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let state = ThreadSafeState::<u32>::builder()
///     .etcd(["http://127.0.0.1:2379"], "agents/")
///     .connect()
///     .await?;
/// let version = state.set("done", 3).await?; // an etcd revision
/// assert!(state.version() >= version);       // already mirrored
/// assert_eq!(state.get("done").as_deref(), Some(&3));
/// # Ok(())
/// # }
/// ```
pub struct EtcdBuilder<V> {
    builder: Builder<V>,
    endpoints: Vec<String>,
    prefix: String,
    request_timeout: Duration,
    max_request_bytes: usize,
    max_txn_ops: usize,
}

impl<V> Builder<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Make etcd the source of truth: the keys under `prefix` on the
    /// cluster at `endpoints` (`http://host:port`). The other settings of
    /// this builder apply, except `initial_state` and `import`, which
    /// [`connect`](EtcdBuilder::connect) refuses: the state is what etcd
    /// holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder()
    ///     .max_history(100)
    ///     .etcd(["http://127.0.0.1:2379"], "workflow-7/");
    /// ```
    pub fn etcd<E: AsRef<str>>(
        self,
        endpoints: impl IntoIterator<Item = E>,
        prefix: impl Into<String>,
    ) -> EtcdBuilder<V> {
        EtcdBuilder {
            builder: self,
            endpoints: endpoints
                .into_iter()
                .map(|endpoint| endpoint.as_ref().to_owned())
                .collect(),
            prefix: prefix.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
        }
    }
}

impl<V> EtcdBuilder<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// How long a txn or a listing may take before it fails (a write then
    /// fails with [`StateError::OutcomeUnknown`](crate::StateError::OutcomeUnknown)).
    /// Default [`DEFAULT_REQUEST_TIMEOUT`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder()
    ///     .etcd(["http://127.0.0.1:2379"], "p/")
    ///     .request_timeout(Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The cluster's `--max-request-bytes` (default
    /// [`DEFAULT_MAX_REQUEST_BYTES`], etcd's own default of 1.5 MiB): a
    /// write whose txn would be larger fails with
    /// [`StateError::RequestTooLarge`](crate::StateError::RequestTooLarge)
    /// before it is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder()
    ///     .etcd(["http://127.0.0.1:2379"], "p/")
    ///     .max_request_bytes(10 << 20);
    /// ```
    #[must_use]
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The cluster's `--max-txn-ops` (default [`DEFAULT_MAX_TXN_OPS`],
    /// etcd's own default of 128): a write needing more operations or
    /// compares in its txn fails with
    /// [`StateError::TooManyOperations`](crate::StateError::TooManyOperations)
    /// before it is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder()
    ///     .etcd(["http://127.0.0.1:2379"], "p/")
    ///     .max_txn_ops(1024);
    /// ```
    #[must_use]
    pub fn max_txn_ops(mut self, operations: usize) -> Self {
        self.max_txn_ops = operations;
        self
    }

    /// Connect, list the prefix (a linearizable read), publish it as the
    /// first version (its etcd revision), and spawn the writer and the
    /// mirror on the current runtime.
    ///
    /// # Errors
    ///
    /// [`EtcdError::EmptyPrefix`] for an empty prefix;
    /// [`EtcdError::Unsupported`] with `initial_state` or `import`;
    /// [`EtcdError::Connect`] if no endpoint answers the listing within the
    /// request timeout; [`EtcdError::Build`] for a bad builder setting or no
    /// runtime. Values under the prefix that do not decode as `V` are
    /// skipped with a warning (the key is absent for this state).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use thread_safe_state::{EtcdError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Nothing listens on port 9 (discard): a typed error, not a hang.
    /// let error = ThreadSafeState::<u32>::builder()
    ///     .etcd(["http://127.0.0.1:9"], "p/")
    ///     .request_timeout(Duration::from_millis(500))
    ///     .connect()
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(error, EtcdError::Connect { .. }), "{error}");
    /// # }
    /// ```
    pub async fn connect(self) -> Result<ThreadSafeState<V>, EtcdError> {
        if self.prefix.is_empty() {
            return Err(EtcdError::EmptyPrefix);
        }
        self.builder.check()?;
        if let Some(setting) = self.builder.etcd_unsupported() {
            return Err(EtcdError::Unsupported { setting });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let endpoints = self.endpoints.join(",");
        let connect_error = |cause: Cause| EtcdError::Connect {
            endpoints: endpoints.clone(),
            cause,
        };
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.request_timeout)
            .with_keep_alive(Duration::from_secs(10), self.request_timeout)
            .with_keep_alive_while_idle(true);
        let client = tokio::time::timeout(
            self.request_timeout,
            etcd_client::Client::connect(&self.endpoints, Some(options)),
        )
        .await
        .map_err(|_| connect_error(Cause::new(mirror::ListError::TimedOut)))?
        .map_err(|error| connect_error(Cause::new(error)))?;
        let mirror = Mirror {
            client: client.clone(),
            marker: marker::key(&self.prefix),
            prefix: self.prefix.clone(),
            request_timeout: self.request_timeout,
        };
        let (revision, entries) = mirror
            .list::<V>()
            .await
            .map_err(|error| connect_error(Cause::new(error)))?;
        let mut map = Map::new();
        for entry in entries {
            if let Some(value) = entry.value {
                map.insert(
                    Arc::from(&*entry.key),
                    Entry::new(value, entry.modified, entry.created),
                );
            }
        }
        let base = Snapshot::new(revision, map);
        let (state, writer) = self
            .builder
            .assemble_from(base, Vec::new(), Target::memory());
        let link = link::Link {
            client: client.clone(),
            prefix: self.prefix.clone(),
            request_timeout: self.request_timeout,
            runtime: runtime.clone(),
        };
        if state.shared().etcd.set(link).is_err() {
            unreachable!("a new state's lease settings are unset");
        }
        let (to_writer, from_mirror) = mpsc::channel(MIRROR_CAPACITY);
        let mirror_task = runtime.spawn(mirror.run::<V>(revision.next(), to_writer));
        let target = EtcdTarget {
            kv: client
                .kv_client()
                .max_decoding_message_size(mirror::MAX_MESSAGE),
            leases: client.lease_client(),
            settings: Arc::new(Settings {
                prefix: self.prefix,
                max_request_bytes: self.max_request_bytes,
                max_txn_ops: self.max_txn_ops,
            }),
            client: client.clone(),
            request_timeout: self.request_timeout,
            mirror: from_mirror,
            mirror_task: mirror_task.abort_handle(),
        };
        runtime.spawn(run(writer, target));
        Ok(state)
    }
}

impl<V> fmt::Debug for EtcdBuilder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBuilder")
            .field("builder", &self.builder)
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("request_timeout", &self.request_timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_txn_ops", &self.max_txn_ops)
            .finish()
    }
}

/// Why an etcd state could not be connected.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{EtcdError, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let error = ThreadSafeState::<u32>::builder()
///     .etcd(["http://127.0.0.1:2379"], "")
///     .connect()
///     .await
///     .unwrap_err();
/// assert_eq!(error, EtcdError::EmptyPrefix);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The prefix is empty: the state would be every key of the cluster,
    /// and `clear` would delete them all.
    #[error("the etcd prefix must not be empty (use e.g. \"myapp/state/\")")]
    EmptyPrefix,
    /// A builder setting that an etcd state cannot honour: its contents
    /// are what etcd holds.
    #[error("{setting} cannot be used with an etcd state: its contents are what etcd holds under the prefix")]
    Unsupported {
        /// The setting (`initial_state` or `import`).
        setting: &'static str,
    },
    /// No endpoint answered the first listing.
    #[error("cannot list the prefix on etcd at {endpoints}: {cause}")]
    Connect {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// The client's error.
        #[source]
        cause: Cause,
    },
    /// A builder setting is invalid, or there is no runtime.
    #[error(transparent)]
    Build(#[from] BuildError),
}
