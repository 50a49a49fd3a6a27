//! What the handles and the writer task share.

use crate::history::History;
use crate::metrics::Counters;
use crate::snapshot::{Snapshot, SnapshotInner};
use crate::stream::FeedItem;
use crate::sync::{broadcast, Mutex, Notifier, SnapshotCell};

/// The state every handle and the writer point at.
///
/// The writer is the only one that stores into `current`, pushes into
/// `history` and notifies; handles only read.
pub(crate) struct Shared<V> {
    /// The published snapshot; reads load it lock-free.
    pub(crate) current: SnapshotCell<SnapshotInner<V>>,
    /// Wakes subscribers after each publish.
    pub(crate) notifier: Notifier<Snapshot<V>>,
    /// Bounded history. A lock, not a lock-free structure: history queries
    /// are audit reads, not the hot path, and the writer holds it only for a
    /// push or a lookup, never while user code runs.
    pub(crate) history: Mutex<History<V>>,
    pub(crate) counters: Counters,
    /// Each group commit's commits, for change streams.
    pub(crate) feed: broadcast::Sender<FeedItem<V>>,
}

impl<V> Shared<V> {
    pub(crate) fn new(initial: Snapshot<V>, max_history: usize, stream_capacity: usize) -> Self {
        Self {
            current: SnapshotCell::new(crate::sync::Arc::clone(initial.inner())),
            notifier: Notifier::new(initial.clone()),
            history: Mutex::new(History::new(max_history, initial)),
            counters: Counters::default(),
            feed: broadcast::Sender::new(stream_capacity),
        }
    }
}
