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
}
