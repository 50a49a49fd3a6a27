//! Reads that reach past the local history window where the backend keeps
//! more: on etcd, its MVCC store.

use serde::de::DeserializeOwned;

use crate::error::StateError;
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::Version;

impl<V> ThreadSafeState<V>
where
    V: DeserializeOwned + Send + Sync + 'static,
{
    /// [`snapshot_at`](Self::snapshot_at), reaching further back where the
    /// backend keeps history: on an etcd state, a version older than the
    /// local window is read from etcd's MVCC store (a range of the prefix
    /// at that revision), back to etcd's last compaction. The snapshot's
    /// version is `version`; values that do not decode as `V` are left
    /// out, as the mirror does. In memory and on a journal this is
    /// `snapshot_at`.
    ///
    /// # Errors
    ///
    /// As [`snapshot_at`](Self::snapshot_at):
    /// [`StateError::FutureVersion`], and
    /// [`StateError::VersionCompacted`] when etcd has compacted `version`
    /// too (with the oldest revision it still holds). On etcd also
    /// [`StateError::OutcomeUnknown`] or [`StateError::EtcdRejected`] if
    /// the read failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::builder().max_history(1).build();
    /// let first = state.set("step", 1).await?;
    /// state.set("step", 2).await?;
    /// state.set("step", 3).await?;
    /// // In memory there is nothing beyond the window.
    /// assert!(matches!(
    ///     state.fetch_snapshot_at(first).await,
    ///     Err(StateError::VersionCompacted { .. })
    /// ));
    /// let previous = state.fetch_snapshot_at(Version::new(first.get() + 1)).await?;
    /// assert_eq!(previous.get("step").as_deref(), Some(&2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_snapshot_at(&self, version: Version) -> Result<Snapshot<V>, StateError> {
        match self.snapshot_at(version) {
            #[cfg(feature = "etcd")]
            Err(StateError::VersionCompacted { .. }) if self.shared().etcd.get().is_some() => {
                let link = self.shared().etcd.get().expect("just seen");
                link.snapshot_at(version).await
            }
            read => read,
        }
    }

    /// [`changes_since`](Self::changes_since), reaching further back
    /// where the backend keeps history: on an etcd state, the commits
    /// between `version` and the local window are rebuilt from etcd's MVCC
    /// store (the state at `version`, then a watch of the revisions since),
    /// back to etcd's last compaction; the stream then goes on with the
    /// local window and live commits, each version once, in order. Those
    /// older commits are recorded as
    /// [`Operation::External`](crate::Operation::External), one per etcd
    /// revision that changed what the state shows, with the time they were
    /// read (etcd keeps no times). In memory and on a journal this is
    /// `changes_since`.
    ///
    /// # Errors
    ///
    /// As [`changes_since`](Self::changes_since), with
    /// [`StateError::VersionCompacted`] when etcd has compacted `version`
    /// too; on etcd also [`StateError::OutcomeUnknown`] or
    /// [`StateError::EtcdRejected`] if reading its history failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{StateError, ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("a", 1).await?;
    /// let mut changes = state.fetch_changes_since(Version::INITIAL).await?;
    /// assert_eq!(changes.next().await.unwrap()?.version, Version::new(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_changes_since(
        &self,
        version: Version,
    ) -> Result<crate::ChangeStream<V>, StateError> {
        #[cfg(feature = "etcd")]
        if let Some(link) = self.shared().etcd.get() {
            // The window may move on while etcd is read: then read again.
            for _ in 0..3 {
                match self.changes_since(version) {
                    Err(StateError::VersionCompacted {
                        oldest_retained, ..
                    }) => {
                        let older = link.commits_between(version, oldest_retained).await?;
                        match self.changes_after(version, oldest_retained, older) {
                            Err(StateError::VersionCompacted { .. }) => continue,
                            read => return read,
                        }
                    }
                    read => return read,
                }
            }
        }
        self.changes_since(version)
    }
}
