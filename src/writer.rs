//! The async writer loop: one task per state that owns every mutation.

use crate::command::Command;
use crate::commit::Committer;
use crate::sync::mpsc;

/// The most commands one group commit takes from the mailbox.
///
/// Large enough to amortize one publish over a burst of writers, small
/// enough that the first caller of a batch is not kept waiting long.
const MAX_BATCH: usize = 128;

/// The writer task's state: its end of the mailbox and the commit core.
pub(crate) struct Writer<V> {
    inbox: mpsc::Receiver<Command<V>>,
    committer: Committer<V>,
}

impl<V> Writer<V> {
    pub(crate) fn new(inbox: mpsc::Receiver<Command<V>>, committer: Committer<V>) -> Self {
        Self { inbox, committer }
    }

    /// Receive commands until every handle is gone, committing each burst
    /// of queued commands as one group.
    ///
    /// `recv_many` returns 0 only once every sender is dropped *and* the
    /// mailbox is empty, so every command queued before the last handle
    /// dropped is still applied and answered.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while self.inbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.committer.commit_batch(batch.drain(..));
        }
        tracing::debug!("every handle dropped; writer task stopped");
    }

    #[cfg(thread_safe_state_loom)]
    pub(crate) fn committer_mut(&mut self) -> &mut Committer<V> {
        &mut self.committer
    }
}
