//! What the loom models need and users never do: a state whose writer is
//! not spawned on a tokio runtime but driven by a loom thread, a subscriber
//! loom can replay, and the deliberately broken orderings that prove the
//! models can fail.
//!
//! Compiled only under `--cfg thread_safe_state_loom`.

use std::fmt;

use crate::builder::Builder;
use crate::commit::BrokenOrder;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::state::ThreadSafeState;
use crate::sync::Arc;
use crate::writer::Writer;

/// A state and its not-yet-running writer.
///
/// The writer is the real one: `run` is the same async loop a runtime
/// would spawn; drive it with `loom::future::block_on` on a loom thread.
///
/// # Panics
///
/// If `builder`'s configuration is invalid.
pub fn state_and_writer<V: Send + Sync + 'static>(
    builder: Builder<V>,
) -> (ThreadSafeState<V>, LoomWriter<V>) {
    builder.check().expect("valid configuration");
    let (state, writer) = builder.assemble();
    (state, LoomWriter(writer))
}

/// The writer task of a state, for a loom thread to run.
pub struct LoomWriter<V>(Writer<V>);

impl<V> LoomWriter<V> {
    /// Answer callers before publishing the snapshot: the ordering bug that
    /// the read-your-writes model must catch.
    #[must_use]
    pub fn reply_before_publish(mut self) -> Self {
        self.0.committer_mut().broken_order = BrokenOrder::ReplyBeforePublish;
        self
    }

    /// Wake subscribers before publishing the snapshot: the ordering bug
    /// that the lost-wake-up model must catch.
    #[must_use]
    pub fn notify_before_publish(mut self) -> Self {
        self.0.committer_mut().broken_order = BrokenOrder::NotifyBeforePublish;
        self
    }

    /// The writer loop: returns once every handle is dropped and every
    /// queued command is answered.
    pub async fn run(self) {
        self.0.run().await;
    }
}

impl<V> fmt::Debug for LoomWriter<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomWriter").finish_non_exhaustive()
    }
}

/// A subscriber with `watch`'s `borrow` / `changed` protocol over the
/// loom-visible notifier. Like a `watch::Receiver`, it does not keep the
/// writer alive.
pub struct LoomSubscriber<V> {
    shared: Arc<Shared<V>>,
    seen: u64,
}

impl<V> LoomSubscriber<V> {
    /// Subscribe to `state`, with everything notified so far marked seen.
    pub fn new(state: &ThreadSafeState<V>) -> Self {
        let shared = Arc::clone(state.shared());
        let seen = shared.notifier.notifications();
        Self { shared, seen }
    }

    /// The published snapshot.
    pub fn borrow(&self) -> Snapshot<V> {
        Snapshot::from_inner(self.shared.current.load_full())
    }

    /// Block until a notification this subscriber has not seen.
    pub fn changed(&mut self) {
        self.seen = self.shared.notifier.wait_past(self.seen);
    }
}

impl<V> fmt::Debug for LoomSubscriber<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoomSubscriber")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}
