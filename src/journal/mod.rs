//! Durable states: a redb journal under the writer (feature `durable`).
//!
//! - [`format`]: records in bytes, with checksums;
//! - [`json`]: values as JSON, refusing what JSON would silently change;
//! - [`store`]: the redb file: recovery, group appends, checkpoints;
//! - [`appender`]: the journal thread and the writer's handle to it;
//! - this file: [`DurableBuilder`] and [`OpenError`].

pub(crate) mod appender;
pub(crate) mod format;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::builder::Builder;
use crate::error::{BuildError, Cause};
use crate::state::ThreadSafeState;
use crate::writer::target::Target;
use crate::writer::Writer;
use store::{Checkpoints, OpenFailure, Store};

pub(crate) use appender::Appender;

/// Default for [`DurableBuilder::checkpoint_every`]: fold the log into the
/// stored snapshot once it holds this many commits beyond the history
/// window.
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::DEFAULT_CHECKPOINT_COMMITS, 4096);
/// ```
pub const DEFAULT_CHECKPOINT_COMMITS: u64 = 4096;

/// Default for [`DurableBuilder::checkpoint_bytes`]: 64 MiB of log records
/// since the last checkpoint.
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::DEFAULT_CHECKPOINT_BYTES, 64 << 20);
/// ```
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

/// Configures a durable [`ThreadSafeState`]; made by
/// [`Builder::durable`].
///
/// A durable state keeps a journal file (redb). Every acknowledged write is
/// on disk: the writer appends each group of commits in one transaction,
/// synced on a thread of its own, and publishes and replies only after the
/// sync. Opening the file again recovers the state exactly as it was after
/// its last acknowledged write: the keys and values, the version counter,
/// each key's created and modified versions, and the retained history
/// window (its records, timestamps and `changed_by`), so `history`,
/// `snapshot_at`, `rollback` and `changes_since` work across a restart.
///
/// The file stays bounded: the log keeps the history window plus at most
/// one checkpoint interval of commits; older commits are folded into a
/// stored snapshot, key by key. Values are stored as JSON through `V`'s
/// serde impls.
///
/// Reads are exactly as fast as in memory; a write costs one `fsync` per
/// group, shared by every write in the group.
///
/// # Examples
///
/// ```
/// use thread_safe_state::ThreadSafeState;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("doc-durable-{}.redb", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let state = ThreadSafeState::<u32>::builder().durable(&path).open().await?;
/// let v1 = state.set("done", 3).await?; // on disk when this returns
/// state.close().await?;                 // releases the file
///
/// let state = ThreadSafeState::<u32>::builder().durable(&path).open().await?;
/// assert_eq!(state.get("done").as_deref(), Some(&3));
/// assert_eq!(state.version(), v1);
/// assert_eq!(state.history(None, None).len(), 1);
/// # state.close().await?;
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
pub struct DurableBuilder<V> {
    builder: Builder<V>,
    path: PathBuf,
    value_type: Cow<'static, str>,
    checkpoint_commits: u64,
    checkpoint_bytes: u64,
    /// Tests put a fault-injecting storage under the journal.
    #[cfg(test)]
    backend: Option<Box<dyn FnOnce() -> Box<dyn redb::StorageBackend> + Send>>,
}

impl<V> Builder<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Make the state durable, with its journal at `path` (created if
    /// missing). The other settings of this builder apply as usual;
    /// [`initial_state`](Builder::initial_state) is the content of a *new*
    /// journal and is ignored when the file already exists.
    ///
    /// The history window (`max_history`) is also what the journal keeps
    /// for recovery; reopening with a larger window cannot bring back
    /// commits a smaller one already folded away.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::OpenError> {
    /// let path = std::env::temp_dir().join(format!("doc-durable-new-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let state = ThreadSafeState::builder()
    ///     .initial_state([("phase", "plan".to_string())])
    ///     .max_history(100)
    ///     .durable(&path)
    ///     .open()
    ///     .await?;
    /// assert_eq!(state.get("phase").as_deref().map(String::as_str), Some("plan"));
    /// # state.close().await.unwrap();
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok(())
    /// # }
    /// ```
    pub fn durable(self, path: impl AsRef<Path>) -> DurableBuilder<V> {
        DurableBuilder {
            builder: self,
            path: path.as_ref().to_owned(),
            value_type: Cow::Borrowed(std::any::type_name::<V>()),
            checkpoint_commits: DEFAULT_CHECKPOINT_COMMITS,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
            #[cfg(test)]
            backend: None,
        }
    }
}

impl<V> DurableBuilder<V>
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Fold the log into the stored snapshot once it holds `commits`
    /// commits beyond the history window (default
    /// [`DEFAULT_CHECKPOINT_COMMITS`]; at least 1). Smaller means a smaller
    /// file and more frequent, smaller checkpoints.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder().durable("state.redb").checkpoint_every(1000);
    /// ```
    #[must_use]
    pub fn checkpoint_every(mut self, commits: u64) -> Self {
        self.checkpoint_commits = commits.max(1);
        self
    }

    /// Also fold once the log records written since the last checkpoint
    /// reach `bytes` (default [`DEFAULT_CHECKPOINT_BYTES`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder().durable("state.redb").checkpoint_bytes(8 << 20);
    /// ```
    #[must_use]
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes.max(1);
        self
    }

    /// The name the journal records for its value type, checked when the
    /// file is opened again. Defaults to [`std::any::type_name`] of `V`,
    /// which can change when the type is renamed or moved (or, rarely,
    /// across compiler versions); set a stable name of your own to keep
    /// such files opening.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    /// let builder = ThreadSafeState::<u32>::builder().durable("state.redb").value_type("task-count/v1");
    /// ```
    #[must_use]
    pub fn value_type(mut self, name: impl Into<String>) -> Self {
        self.value_type = Cow::Owned(name.into());
        self
    }

    /// Open (or create) the journal, recover the state it holds, and spawn
    /// the writer on the current runtime. Recovery reads the whole file;
    /// it runs on tokio's blocking pool, not on a runtime worker.
    ///
    /// # Errors
    ///
    /// [`OpenError`]: the file is in use, unreadable, corrupt, of a newer
    /// format or of another value type, or a stored value does not
    /// deserialize as `V`; or [`OpenError::Build`] for a bad builder
    /// setting or no runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{OpenError, ThreadSafeState};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("doc-durable-open-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let state = ThreadSafeState::<u32>::builder().durable(&path).open().await?;
    /// // The file is locked while the state is open.
    /// let again = ThreadSafeState::<u32>::builder().durable(&path).open().await;
    /// assert!(matches!(again, Err(OpenError::AlreadyOpen { .. })));
    /// // And it remembers what it holds.
    /// state.close().await?;
    /// let other = ThreadSafeState::<String>::builder().durable(&path).open().await;
    /// assert!(matches!(other, Err(OpenError::ValueTypeMismatch { .. })));
    /// # std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(self) -> Result<ThreadSafeState<V>, OpenError> {
        self.builder.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let path = self.path.clone();
        let recovered = tokio::task::spawn_blocking(move || self.recover())
            .await
            .map_err(|error| OpenError::Storage {
                path,
                cause: Cause::new(std::io::Error::other(error.to_string())),
            })??;
        Ok(recovered.spawn(&runtime))
    }

    /// [`open`](Self::open) from any thread, recovering on this one and
    /// spawning the writer on `runtime`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except [`BuildError::NoRuntime`].
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::ThreadSafeState;
    ///
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let path = std::env::temp_dir().join(format!("doc-durable-on-{}.redb", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let state = ThreadSafeState::<u32>::builder()
    ///     .durable(&path)
    ///     .open_on(runtime.handle())
    ///     .unwrap();
    /// state.blocking().set("k", 1).unwrap();
    /// state.blocking().close().unwrap();
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn open_on(
        self,
        runtime: &tokio::runtime::Handle,
    ) -> Result<ThreadSafeState<V>, OpenError> {
        self.builder.check()?;
        Ok(self.recover()?.spawn(runtime))
    }

    /// Open the file and recover: blocking work.
    fn recover(mut self) -> Result<Opened<V>, OpenError> {
        let (keep, initial) = self.builder.take_initial()?;
        let checkpoints = Checkpoints {
            keep: keep as u64,
            every_commits: self.checkpoint_commits,
            every_bytes: self.checkpoint_bytes,
        };
        let path = self.path.clone();
        let value_type = self.value_type.clone();
        let fail = |failure: OpenFailure| OpenError::from_failure(&path, failure, &value_type);
        let database = self.database().map_err(fail)?;
        // redb reports damage as errors; a panic from deep inside it on a
        // file damaged in a way it did not foresee must still reach the
        // caller as a typed error, not take the process down.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Store::open::<V>(database, &self.value_type, initial, checkpoints)
        }))
        .unwrap_or_else(|payload| {
            Err(OpenFailure::Corrupt(format!(
                "reading the file panicked: {}",
                crate::writer::commit::panic_message(payload.as_ref())
            )))
        });
        let (store, recovered) = opened.map_err(fail)?;
        let appender = Appender::spawn(store).map_err(|error| OpenError::Storage {
            path: path.clone(),
            cause: Cause::new(error),
        })?;
        tracing::debug!(
            path = %path.display(),
            version = recovered.commits.last().map_or(recovered.base.version(), |c| c.view.version).get(),
            "journal recovered"
        );
        let (state, writer) = self.builder.assemble_from(
            recovered.base,
            recovered.commits,
            Target::Journal(appender),
        );
        Ok(Opened { state, writer })
    }

    fn database(&mut self) -> Result<redb::Database, OpenFailure> {
        let builder = redb::Builder::new();
        #[cfg(test)]
        if let Some(backend) = self.backend.take() {
            return Ok(builder.create_with_backend(BoxedBackend(backend()))?);
        }
        // Only a missing file is created. An existing one must already be
        // a database: a journal truncated to nothing must not come back as
        // a new, empty state.
        let exists = self.path.try_exists().map_err(redb::Error::from)?;
        let database = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if exists {
                builder.open(&self.path)
            } else {
                builder.create(&self.path)
            }
        }))
        .unwrap_or_else(|_| {
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
                "opening the file panicked".into(),
            )))
        })?;
        Ok(database)
    }

    /// Put `backend` under the journal instead of the file (fault injection).
    #[cfg(test)]
    pub(crate) fn backend(
        mut self,
        backend: impl FnOnce() -> Box<dyn redb::StorageBackend> + Send + 'static,
    ) -> Self {
        self.backend = Some(Box::new(backend));
        self
    }
}

/// A recovered state whose writer is not spawned yet.
struct Opened<V> {
    state: ThreadSafeState<V>,
    writer: Writer<V>,
}

impl<V: Send + Sync + 'static> Opened<V> {
    fn spawn(self, runtime: &tokio::runtime::Handle) -> ThreadSafeState<V> {
        runtime.spawn(self.writer.run());
        self.state
    }
}

#[cfg(test)]
#[derive(Debug)]
struct BoxedBackend(Box<dyn redb::StorageBackend>);

#[cfg(test)]
impl redb::StorageBackend for BoxedBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
}

impl<V> fmt::Debug for DurableBuilder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBuilder")
            .field("builder", &self.builder)
            .field("path", &self.path)
            .field("value_type", &self.value_type)
            .field("checkpoint_commits", &self.checkpoint_commits)
            .field("checkpoint_bytes", &self.checkpoint_bytes)
            .finish_non_exhaustive()
    }
}

/// Why a durable state could not be opened. Nothing was changed on disk,
/// except that a missing file is created.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{OpenError, ThreadSafeState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let path = std::env::temp_dir().join(format!("doc-open-error-{}.redb", std::process::id()));
/// std::fs::write(&path, b"not a journal, just some bytes that are long enough to look").unwrap();
/// let error = ThreadSafeState::<u32>::builder().durable(&path).open().await.unwrap_err();
/// assert!(matches!(error, OpenError::Corrupt { .. } | OpenError::Storage { .. }), "{error}");
/// std::fs::remove_file(&path).unwrap();
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another state, in this process or another, has the file open.
    #[error("the journal {} is already open (close the other state first)", path.display())]
    AlreadyOpen {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or created.
    #[error("cannot open the journal {}: {cause}", path.display())]
    Storage {
        /// The file.
        path: PathBuf,
        /// The I/O or storage error.
        #[source]
        cause: Cause,
    },
    /// The file is damaged: a checksum does not match, a record is cut
    /// short, the log has a gap, or it is not a journal at all.
    #[error("the journal {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The file was written by a newer version of this crate.
    #[error("the journal {} has format {found}; this version reads formats up to {supported}", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The file's format.
        found: u32,
        /// The newest format this version reads.
        supported: u32,
    },
    /// The file holds values of another type (see
    /// [`DurableBuilder::value_type`]).
    #[error("the journal {} holds values of type `{stored}`, not `{expected}`", path.display())]
    ValueTypeMismatch {
        /// The file.
        path: PathBuf,
        /// The type name the file records.
        stored: String,
        /// The type name this builder expects.
        expected: String,
    },
    /// A stored value does not deserialize as the value type.
    #[error("the journal {}: a stored value does not deserialize: {cause}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        cause: Cause,
    },
    /// A builder setting is invalid, or there is no runtime.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl OpenError {
    fn from_failure(path: &Path, failure: OpenFailure, value_type: &str) -> Self {
        let path = path.to_owned();
        match failure {
            OpenFailure::Storage(redb::Error::DatabaseAlreadyOpen) => {
                OpenError::AlreadyOpen { path }
            }
            OpenFailure::Storage(redb::Error::Corrupted(detail)) => {
                OpenError::Corrupt { path, detail }
            }
            OpenFailure::Storage(redb::Error::UpgradeRequired(format)) => OpenError::Corrupt {
                path,
                detail: format!("redb file format {format} needs an upgrade"),
            },
            OpenFailure::Storage(error) => OpenError::Storage {
                path,
                cause: Cause::new(error),
            },
            OpenFailure::Corrupt(detail) => OpenError::Corrupt { path, detail },
            OpenFailure::NewerFormat(found) => OpenError::NewerFormat {
                path,
                found,
                supported: format::FORMAT,
            },
            OpenFailure::ValueType(stored) => OpenError::ValueTypeMismatch {
                path,
                stored,
                expected: value_type.to_owned(),
            },
            OpenFailure::Decode(error) => OpenError::Decode {
                path,
                cause: Cause::new(error),
            },
        }
    }
}
