//! What the loom models need and users never do: a state whose writer is
//! not spawned on a tokio runtime but driven by a loom thread, and the
//! deliberately broken orderings that prove the models can fail.
//!
//! Compiled only under `--cfg thread_safe_state_loom`.

use std::fmt;

use crate::builder::Builder;
use crate::state::ThreadSafeState;
use crate::writer::commit::BrokenOrder;
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
    let (state, writer) = builder.assemble().expect("a valid builder");
    (state, LoomWriter(writer))
}

/// Make every waiter of `state` check its condition *before* it listens
/// for the next publish: the ordering bug the lost-wake-up model must catch.
pub fn check_before_listen<V>(state: &ThreadSafeState<V>) {
    state
        .shared()
        .notifier
        .check_before_listen
        .store(true, std::sync::atomic::Ordering::Relaxed);
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

    /// The writer loop for exactly `commands` commands; the writer stays
    /// alive (and silent) until this `LoomWriter` is dropped.
    pub async fn serve(&mut self, commands: usize) {
        self.0.serve(commands).await;
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
