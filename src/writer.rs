//! The async writer loop: one task per state that owns every mutation.

use crate::command::Command;
use crate::commit::Committer;
use crate::sync::mpsc;

/// The most commands one group commit takes from the mailbox.
///
/// Large enough to amortize one publish over a burst of writers, small
/// enough that the first caller of a batch is not kept waiting long.
const MAX_BATCH: usize = 128;

/// Receive commands until every handle is gone, committing each burst of
/// queued commands as one batch.
///
/// `recv_many` returns 0 only once every sender is dropped *and* the mailbox
/// is empty, so every command queued before the last handle dropped is still
/// applied and answered.
pub(crate) async fn run<V>(mut mailbox: mpsc::Receiver<Command<V>>, mut committer: Committer<V>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while mailbox.recv_many(&mut batch, MAX_BATCH).await > 0 {
        committer.commit_batch(batch.drain(..));
    }
    tracing::debug!("every handle dropped; writer task stopped");
}
