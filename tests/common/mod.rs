//! Helpers shared by the integration tests that need the writer parked at
//! a known point, so that the commands queued behind it form one group.
//! Deterministic: no sleeps, only channels and the mailbox depth.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::mpsc;

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
mod temp_path;
#[allow(unused_imports)] // only the durable tests use it
pub(crate) use temp_path::TempPath;

use thread_safe_state::{Modification, StateError, ThreadSafeState, Version};
use tokio::task::JoinHandle;

/// A `modify` whose closure, running in the writer, signals that it is in
/// and then blocks the writer until the gate is opened.
pub(crate) struct Gate {
    entered: Option<mpsc::Receiver<()>>,
    release: mpsc::Sender<()>,
    command: JoinHandle<Result<Version, StateError>>,
}

impl Gate {
    /// Queue the gate command (it writes `key`).
    pub(crate) fn queue(state: &ThreadSafeState<u64>, key: &'static str) -> Self {
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let state = state.clone();
        let command = tokio::spawn(async move {
            state
                .modify(key, move |_| {
                    entered_tx.send(()).unwrap();
                    // A dropped sender opens the gate too.
                    let _ = release_rx.recv();
                    Modification::Set(1)
                })
                .await
                .map(|modified| modified.version)
        });
        Self {
            entered: Some(entered),
            release,
            command,
        }
    }

    /// Queue a gate and wait until the writer is parked inside it.
    pub(crate) async fn park(state: &ThreadSafeState<u64>, key: &'static str) -> Self {
        let mut gate = Self::queue(state, key);
        gate.entered().await;
        gate
    }

    /// Wait until the writer is inside this gate.
    pub(crate) async fn entered(&mut self) {
        let entered = self.entered.take().expect("waited for once");
        tokio::task::spawn_blocking(move || entered.recv().unwrap())
            .await
            .unwrap();
    }

    /// Let the writer go on.
    pub(crate) fn open(&self) {
        self.release.send(()).unwrap();
    }

    /// The gate command's reply (open it first).
    pub(crate) async fn finish(self) -> Result<Version, StateError> {
        self.command.await.unwrap()
    }
}

/// Wait until at least `depth` commands wait in the mailbox.
pub(crate) async fn queued(state: &ThreadSafeState<u64>, depth: usize) {
    while state.metrics().mailbox_depth < depth {
        tokio::task::yield_now().await
    }
}
