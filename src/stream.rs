//! Change streams: every commit after a version, from the retained history
//! and then live, in version order, each version once.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::StateError;
use crate::history::{ChangeSet, CommitView};
use crate::shared::Shared;
use crate::state::ThreadSafeState;
use crate::sync::{broadcast, Arc, Liveness};
use crate::Version;

/// One group commit's commits, as the writer broadcasts them.
pub(crate) type FeedItem<V> = Arc<[CommitView<V>]>;

/// The pending receive of the live feed; it owns the receiver and hands
/// it back, so the stream needs no self-reference.
type Receiving<V> = Pin<
    Box<
        dyn Future<
                Output = (
                    Result<FeedItem<V>, broadcast::error::RecvError>,
                    broadcast::Receiver<FeedItem<V>>,
                ),
            > + Send,
    >,
>;

fn receive<V: Send + Sync + 'static>(mut feed: broadcast::Receiver<FeedItem<V>>) -> Receiving<V> {
    Box::pin(async move {
        let item = feed.recv().await;
        (item, feed)
    })
}

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Every commit after `version`, as a [`Stream`] of [`ChangeSet`]s:
    /// first the retained history, then live commits as they happen, in
    /// version order, each version exactly once and never split.
    ///
    /// The stream buffers up to the builder's `change_stream_capacity`
    /// group commits for a slow consumer; past that it ends with
    /// [`StateError::Lagged`], naming the first version it did not deliver,
    /// instead of skipping anything. It ends (`None`) when every handle of
    /// the state is dropped, and with [`StateError::Closed`] if the writer
    /// task dies while handles remain (its runtime shut down).
    ///
    /// It never delivers a version before `version()` shows it.
    ///
    /// # Errors
    ///
    /// [`StateError::VersionCompacted`] if commits after `version` are no
    /// longer retained (the error names the oldest version to start from);
    /// [`StateError::FutureVersion`] if `version` is not published yet;
    /// [`StateError::Closed`] if the writer task has stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// state.set("a", 1).await?; // version 1, already in the history
    /// let mut changes = state.changes_since(Version::INITIAL)?;
    /// state.set("b", 2).await?; // version 2, live
    ///
    /// let first = changes.next().await.unwrap()?;
    /// let second = changes.next().await.unwrap()?;
    /// assert_eq!((first.version.get(), second.version.get()), (1, 2));
    /// assert_eq!(second.records[0].key, "b");
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes_since(&self, version: Version) -> Result<ChangeStream<V>, StateError> {
        self.changes_after(version, version, Vec::new())
    }

    /// Every commit after `version`: `older`, the commits after `version`
    /// up to `start` read elsewhere (etcd's history), oldest first, then
    /// the retained history after `start`, then live commits.
    pub(crate) fn changes_after(
        &self,
        version: Version,
        start: Version,
        older: Vec<CommitView<V>>,
    ) -> Result<ChangeStream<V>, StateError> {
        // Subscribe before loading the published version: every group
        // published after that load is sent to this subscription (see
        // `writer::feed::Feed::send`), and every one before it is in the
        // history up to the horizon. Repeats are skipped by version.
        let shared = self.shared();
        let feed = shared.feed.upgrade().ok_or(StateError::Closed)?.subscribe();
        let (history, horizon) = shared.history();
        if version > horizon {
            return Err(StateError::FutureVersion {
                target: version,
                current: horizon,
            });
        }
        let oldest_retained = history.oldest_retained(horizon);
        if start < oldest_retained {
            return Err(StateError::VersionCompacted {
                target: start,
                oldest_retained,
            });
        }
        // Inside a gap (an etcd relist), the commits after `start` would
        // include changes made before it.
        if let Some(upto) = history.gap_containing(start) {
            return Err(StateError::VersionCompacted {
                target: start,
                oldest_retained: upto,
            });
        }
        let mut backlog: VecDeque<CommitView<V>> = older.into();
        backlog.extend(history.views_between(start, horizon));
        Ok(ChangeStream {
            backlog,
            next: version.next(),
            receiving: Some(receive(feed)),
            shared: Arc::clone(shared),
        })
    }
}

impl<V: Send + Sync + 'static> ThreadSafeState<V> {
    /// Every commit from `first` on (`first` included):
    /// [`changes_since`](Self::changes_since) the version before it. The
    /// way to resume after [`StateError::Lagged`]: pass its `resume_from`.
    ///
    /// # Errors
    ///
    /// As [`changes_since`](Self::changes_since).
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
    /// state.set("b", 2).await?;
    /// // Say a consumer was told `Lagged { resume_from: 2 }`:
    /// let mut resumed = state.changes_from(Version::new(2))?;
    /// assert_eq!(resumed.next().await.unwrap()?.version, Version::new(2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn changes_from(&self, first: Version) -> Result<ChangeStream<V>, StateError> {
        self.changes_since(first.prev().unwrap_or(Version::INITIAL))
    }
}

/// The commits of a state after some version; made by
/// [`ThreadSafeState::changes_since`].
///
/// A [`Stream`]; [`next`](Self::next) reads it without a stream library.
/// Like a `watch::Receiver`, it does not keep the state alive.
///
/// # Examples
///
/// ```
/// use thread_safe_state::{ThreadSafeState, Version};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), thread_safe_state::StateError> {
/// let state = ThreadSafeState::new();
/// let mut audit = state.changes_since(Version::INITIAL)?;
/// let logger = tokio::spawn(async move {
///     let mut versions = Vec::new();
///     while let Some(set) = audit.next().await {
///         versions.push(set?.version.get());
///     }
///     Ok::<_, thread_safe_state::StateError>(versions)
/// });
/// state.set("a", 1).await?;
/// state.set("b", 2).await?;
/// drop(state); // ends the stream
/// assert_eq!(logger.await.unwrap()?, [1, 2]);
/// # Ok(())
/// # }
/// ```
pub struct ChangeStream<V> {
    /// Commits not yet delivered, oldest first: the history backlog, then
    /// each live group as it arrives.
    backlog: VecDeque<CommitView<V>>,
    /// The next version to deliver; anything older is a repeat.
    next: Version,
    /// `None` once the stream has ended.
    receiving: Option<Receiving<V>>,
    /// To tell a normal end from a writer that died.
    shared: Arc<Shared<V>>,
}

impl<V: Send + Sync + 'static> ChangeStream<V> {
    /// The next commit, an error that ends the stream, or `None` once the
    /// state is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a commit is taken from the stream only when returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::new();
    /// let mut changes = state.changes_since(state.version())?;
    /// state.set("k", 1).await?;
    /// drop(state);
    /// assert_eq!(changes.next().await.unwrap()?.version, Version::new(1));
    /// assert!(changes.next().await.is_none()); // the state is gone
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<ChangeSet<V>, StateError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The first version this stream has not delivered yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::{ThreadSafeState, Version};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), thread_safe_state::StateError> {
    /// let state = ThreadSafeState::<u8>::new();
    /// let changes = state.changes_since(Version::INITIAL)?;
    /// assert_eq!(changes.next_version(), Version::new(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn next_version(&self) -> Version {
        self.next
    }
}

impl<V: Send + Sync + 'static> Stream for ChangeStream<V> {
    type Item = Result<ChangeSet<V>, StateError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            while let Some(commit) = this.backlog.pop_front() {
                if commit.version >= this.next {
                    this.next = commit.version.next();
                    return Poll::Ready(Some(Ok(commit.change_set())));
                }
            }
            let Some(receiving) = this.receiving.as_mut() else {
                return Poll::Ready(None);
            };
            let (item, feed) = std::task::ready!(receiving.as_mut().poll(cx));
            this.receiving = Some(receive(feed));
            match item {
                Ok(group) => this.backlog.extend(group.iter().cloned()),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    this.receiving = None;
                    return Poll::Ready(Some(Err(StateError::Lagged {
                        resume_from: this.next,
                    })));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    this.receiving = None;
                    // Every group was delivered before the channel closed.
                    // A writer whose runtime dropped it is not a normal
                    // end: say so once, then end.
                    if this.shared.notifier.liveness() == Liveness::Aborted {
                        return Poll::Ready(Some(Err(StateError::Closed)));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl<V> fmt::Debug for ChangeStream<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeStream")
            .field("next", &self.next)
            .field("buffered", &self.backlog.len())
            .field("ended", &self.receiving.is_none())
            .finish()
    }
}
