//! The writer: one task per state that owns every mutation.
//!
//! - [`command`]: what handles send and what the writer answers;
//! - [`commit`]: the synchronous commit protocol (apply, record, publish,
//!   notify, reply, release);
//! - [`expiry`]: TTL deadlines, and the timer the loop races its mailbox
//!   against;
//! - [`feed`]: the writer's end of change streams;
//! - [`key`]: keys on their way to the writer, inline when short;
//! - [`retired`]: where replaced values wait to be dropped safely;
//! - [`target`]: where a group becomes final before it is published
//!   (memory, or a journal); an etcd state's writer is driven by a loop of
//!   its own (`etcd::run`: txns in flight, a mirror to follow) around the
//!   same commit core;
//! - this file: the async loop around them.

pub(crate) mod command;
pub(crate) mod commit;
pub(crate) mod expiry;
pub(crate) mod feed;
pub(crate) mod key;
pub(crate) mod retired;
pub(crate) mod target;

use crate::shared::Shared;
use crate::sync::{mpsc, Arc, Liveness};
use command::Command;
use commit::Committer;
use target::Target;

/// The most commands one group commit takes from the mailbox.
///
/// Large enough to amortize one publish over a burst of writers, small
/// enough that the first caller of a batch is not kept waiting long.
const MAX_BATCH: usize = 128;

/// The writer task's state: its end of the mailbox and the commit core.
///
/// Dropping it, whether its loop ended or its runtime dropped the task,
/// tells every waiter that no version will be published any more.
pub(crate) struct Writer<V> {
    pub(crate) inbox: mpsc::Receiver<Command<V>>,
    pub(crate) committer: Committer<V>,
    target: Target<V>,
    shared: Arc<Shared<V>>,
    pub(crate) finished: bool,
}

impl<V> Writer<V> {
    pub(crate) fn new(
        inbox: mpsc::Receiver<Command<V>>,
        committer: Committer<V>,
        target: Target<V>,
        shared: Arc<Shared<V>>,
    ) -> Self {
        Self {
            inbox,
            committer,
            target,
            shared,
            finished: false,
        }
    }

    /// Receive commands until every handle is gone, committing each burst
    /// of queued commands as one group.
    ///
    /// `receive` (in [`expiry`], which also commits TTL expiries while it
    /// waits) returns 0 only once every sender is dropped *and* the mailbox
    /// is empty, so every command queued before the last handle
    /// dropped is still applied and answered.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while self.receive(&mut batch).await > 0 {
            self.target
                .commit(&mut self.committer, batch.drain(..))
                .await;
            if self.committer.close_requested() {
                // No new command gets in; the queued ones are still
                // received, applied and answered before the loop ends.
                self.inbox.close();
            }
            // The callers just answered were woken onto this worker, the
            // last one into its LIFO slot, which no other worker can steal.
            // If more commands are already queued we would keep the worker
            // for another group and keep that caller waiting behind it:
            // yield first, so it runs now (here, or our task is stolen).
            if !self.inbox.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        self.finished = true;
        // Callers of `close` hear back only once the target let go of its
        // resources (a journal's file can then be opened again).
        self.target.close().await;
        self.committer.answer_close_requests();
        tracing::debug!("writer task stopped: closed, or every handle dropped");
    }

    /// The same loop, stopping after `commands` commands and keeping the
    /// writer alive (so it does not announce its end): loom models of lost
    /// wake-ups need a writer that is neither blocked nor closed.
    #[cfg(thread_safe_state_loom)]
    pub(crate) async fn serve(&mut self, mut commands: usize) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while commands > 0
            && self
                .inbox
                .recv_many(&mut batch, commands.min(MAX_BATCH))
                .await
                > 0
        {
            commands -= batch.len();
            self.committer.commit_batch(batch.drain(..));
        }
    }

    #[cfg(thread_safe_state_loom)]
    pub(crate) fn committer_mut(&mut self) -> &mut Committer<V> {
        &mut self.committer
    }
}

impl<V> Drop for Writer<V> {
    fn drop(&mut self) {
        // A loom model that failed (a deadlock it detected) unwinds through
        // here with no active loom thread; touching loom types then aborts
        // the whole test binary instead of reporting the failure.
        #[cfg(thread_safe_state_loom)]
        if std::thread::panicking() {
            return;
        }
        // Before any field is dropped (a queued value's `Drop` may panic):
        // waiters must hear that the writer is gone in every case.
        let how = if self.finished {
            Liveness::Finished
        } else {
            Liveness::Aborted
        };
        self.shared.notifier.close(how);
    }
}
