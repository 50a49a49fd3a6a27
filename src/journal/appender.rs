//! The journal thread, and the writer's handle to it.
//!
//! redb's commit blocks on `fsync`, so the journal owns a thread of its
//! own: a runtime worker never blocks on the disk. The writer task sends a
//! group's commits and awaits the answer; commands arriving meanwhile queue
//! in the mailbox and form the next, larger group (group commit). The
//! writer publishes and replies only after the answer, so publication
//! follows the disk strictly in order.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::{Cause, StateError};
use crate::history::CommitView;
use crate::journal::store::{Failure, Store};

enum Request<V> {
    Append {
        commits: Vec<CommitView<V>>,
        done: oneshot::Sender<Result<(), Failure>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// The writer's handle to the journal thread.
pub(crate) struct Appender<V> {
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Request<V>>>,
    /// Set once the storage failed: every later write is refused.
    broken: Option<Cause>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<V> Drop for Appender<V> {
    /// Stop the journal thread and wait for it, so that the file is free
    /// once the writer is gone, however it went (its runtime may have been
    /// dropped mid-sync). The wait is at most the sync in progress.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<V> Appender<V> {
    /// Start the journal thread over an open store.
    pub(crate) fn spawn(store: Store) -> std::io::Result<Self>
    where
        V: Serialize + Send + Sync + 'static,
    {
        let (requests, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("thread-safe-state-journal".into())
            .spawn(move || serve(store, &inbox))?;
        Ok(Self {
            requests: Some(requests),
            broken: None,
            thread: Some(thread),
        })
    }

    fn send(&self, request: Request<V>) -> Result<(), mpsc::SendError<Request<V>>> {
        match &self.requests {
            Some(requests) => requests.send(request),
            None => Err(mpsc::SendError(request)),
        }
    }

    /// The error every write gets once the journal is unusable.
    pub(crate) fn refusal(&self) -> Option<StateError> {
        self.broken
            .clone()
            .map(|cause| StateError::JournalFailed { cause })
    }

    /// Make `commits` durable: `Ok` once they are synced to disk.
    ///
    /// # Errors
    ///
    /// [`StateError::NotSerializable`] if a value did not serialize
    /// (nothing was written); [`StateError::JournalFailed`] if the storage
    /// failed, after which every call fails the same way.
    pub(crate) async fn append(&mut self, commits: Vec<CommitView<V>>) -> Result<(), StateError> {
        if commits.is_empty() {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        let sent = self.send(Request::Append { commits, done });
        let outcome = match sent {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(thread_stopped())),
            Err(_) => Err(thread_stopped()),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(Failure::Rejected(cause)) => Err(StateError::NotSerializable { cause }),
            Err(Failure::Broken(cause)) => {
                tracing::error!(%cause, "the journal failed; the state refuses writes until reopened");
                self.broken = Some(cause.clone());
                Err(StateError::JournalFailed { cause })
            }
        }
    }

    /// Close the file and stop the thread; returns once the file can be
    /// opened again.
    pub(crate) async fn close(&mut self) {
        let (done, closed) = oneshot::channel();
        if self.send(Request::Close { done }).is_ok() {
            let _ = closed.await;
        }
    }
}

fn thread_stopped() -> Failure {
    Failure::Broken(Cause::new(std::io::Error::other(
        "the journal thread stopped unexpectedly",
    )))
}

/// The journal thread: append each group, answer, then checkpoint if due
/// (after the answer: a checkpoint delays the next group, never this one).
fn serve<V: Serialize>(mut store: Store, inbox: &mpsc::Receiver<Request<V>>) {
    let mut broken: Option<Cause> = None;
    while let Ok(request) = inbox.recv() {
        match request {
            Request::Append { commits, done } => {
                let outcome = match &broken {
                    Some(cause) => Err(Failure::Broken(cause.clone())),
                    None => store.append(&commits),
                };
                if let Err(Failure::Broken(cause)) = &outcome {
                    broken = Some(cause.clone());
                }
                let _ = done.send(outcome);
                // The values are shared with the writer's history, so this
                // is rarely their last reference; if it is, their `Drop` is
                // user code and must not take the journal down.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(commits)));
                if broken.is_none() {
                    if let Err(cause) = store.checkpoint_if_due() {
                        tracing::error!(%cause, "a journal checkpoint failed; the state refuses writes until reopened");
                        broken = Some(cause);
                    }
                }
            }
            Request::Close { done } => {
                drop(store);
                let _ = done.send(());
                return;
            }
        }
    }
}
