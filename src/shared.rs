//! What the handles and the writer task share.

use crate::history::{Commit, History};
use crate::metrics::Counters;
use crate::snapshot::{Snapshot, SnapshotInner};
use crate::stream::FeedItem;
use crate::sync::{broadcast, lock, Arc, Mutex, Notifier, SnapshotCell};
use crate::writer::retired::Retired;
use crate::Version;

/// The state every handle and the writer point at.
///
/// The writer is the only one that stores into `current`, pushes into
/// `history` and notifies; handles only read.
pub(crate) struct Shared<V> {
    /// The published snapshot; reads load it lock-free. Its version is the
    /// published watermark: no read API shows anything newer.
    pub(crate) current: SnapshotCell<SnapshotInner<V>>,
    /// Wakes waiters after each publish, and when the writer stops.
    pub(crate) notifier: Notifier,
    /// Bounded history. Readers hold the lock only to copy it, O(1)
    /// (see [`Self::history`]); the writer holds it to push one group.
    pub(crate) history: Mutex<History<V>>,
    pub(crate) counters: Counters,
    /// Where change streams subscribe. Weak: the writer owns the only
    /// strong sender, so the channel closes when the writer stops.
    pub(crate) feed: broadcast::WeakSender<FeedItem<V>>,
    /// The builder's name for the state (Debug output, metrics labels).
    pub(crate) name: String,
    /// How an etcd state's handles reach etcd (leases, MVCC history);
    /// unset on other states.
    #[cfg(feature = "etcd")]
    pub(crate) etcd: std::sync::OnceLock<crate::etcd::link::Link>,
}

impl<V> Shared<V> {
    /// The shared state continuing from `base` and the `commits` after it
    /// (none for a new state), the last of which holds the current
    /// snapshot; and the feed's strong sender for the writer.
    ///
    /// Built straight into its `Arc`: the struct is large (the sharded read
    /// counter), and loom runs threads on small stacks.
    pub(crate) fn restored(
        base: Snapshot<V>,
        commits: Vec<Commit<V>>,
        max_history: usize,
        stream_capacity: usize,
        name: &str,
    ) -> (Arc<Self>, broadcast::Sender<FeedItem<V>>) {
        let current = match commits.last() {
            Some(last) => last
                .snapshot
                .clone()
                .expect("the last commit holds its snapshot"),
            None => base.clone(),
        };
        let mut history = History::new(max_history, base);
        if !commits.is_empty() {
            // Evicts what falls outside the window; nothing is shared with
            // a writer yet, so dropping it here is dropping it on the
            // opening thread.
            let mut retired = Retired::new();
            history.push(commits, current.version(), &mut retired);
            retired.drop_all();
        }
        let feed = broadcast::Sender::new(stream_capacity);
        let shared = Arc::new(Self {
            current: SnapshotCell::new(Arc::clone(current.inner())),
            notifier: Notifier::new(),
            history: Mutex::new(history),
            counters: Counters::new(name),
            feed: feed.downgrade(),
            name: name.to_owned(),
            #[cfg(feature = "etcd")]
            etcd: std::sync::OnceLock::new(),
        });
        (shared, feed)
    }

    /// The published version.
    pub(crate) fn published(&self) -> Version {
        self.current.read(|current| current.version)
    }

    /// A copy of the history, O(1), and the horizon this reader may see.
    ///
    /// The published version is loaded *before* the history is copied:
    /// the writer pushes a group to the history before it publishes it, so
    /// every version up to the horizon is in the copy, and nothing past
    /// the horizon is shown even though the copy may already hold it.
    pub(crate) fn history(&self) -> (History<V>, Version) {
        let published = self.published();
        let history = lock(&self.history).clone();
        let horizon = history.horizon(published);
        (history, horizon)
    }
}
