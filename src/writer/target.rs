//! The commit target: where a group of commits becomes final before it is
//! published (step 2 of the commit order in `DESIGN.md`).
//!
//! In memory there is nothing to wait for, and the writer loop takes the
//! one-step path ([`Committer::commit_batch`](super::commit::Committer::commit_batch)).
//! A journal makes the group durable first: the writer applies and records
//! the group, hands its commits to the journal, and publishes only once the
//! journal says they are on disk, or undoes the group if it cannot.

use std::marker::PhantomData;

use crate::writer::command::Command;
use crate::writer::commit::Committer;

/// Where the writer's groups become final.
pub(crate) enum Target<V> {
    /// Final once applied: the in-memory state. (The marker only names
    /// `V` for builds without any other target.)
    Memory(PhantomData<fn() -> V>),
    /// Final once the journal has synced them (feature `durable`).
    #[cfg(feature = "durable")]
    Journal(crate::journal::Appender<V>),
}

impl<V> Target<V> {
    /// The in-memory target.
    pub(crate) fn memory() -> Self {
        Target::Memory(PhantomData)
    }

    /// Commit one group through this target: apply, make final, publish and
    /// reply; or, if the target fails, answer every command of the group
    /// with the failure and leave the state as published before it.
    pub(crate) async fn commit(
        &mut self,
        committer: &mut Committer<V>,
        commands: impl IntoIterator<Item = Command<V>>,
    ) {
        match self {
            Target::Memory(_) => committer.commit_batch(commands),
            #[cfg(feature = "durable")]
            Target::Journal(journal) => {
                if let Some(error) = journal.refusal() {
                    committer.refuse_batch(commands, &error);
                    return;
                }
                let started = committer.apply_batch(commands);
                let staged = committer.staged();
                match journal.append(staged).await {
                    Ok(()) => committer.finish_batch(started),
                    Err(error) => committer.abort_batch(&error, started),
                }
            }
        }
    }

    /// Release the target's resources once the writer has answered its
    /// last command (the journal closes its file).
    pub(crate) async fn close(&mut self) {
        #[cfg(feature = "durable")]
        if let Target::Journal(journal) = self {
            journal.close().await;
        }
    }
}
