//! The naive actor: what a user writes by hand in twenty lines instead of
//! depending on this crate.
//!
//! A spawned task owns a `HashMap<String, u64>`, receives
//! `(key, value, reply)` over a bounded mpsc and answers each write with a
//! commit counter. One message, one insert, one reply: no group commit, no
//! snapshot, no history, and nothing readers can see without asking the
//! task.

use std::collections::HashMap;
use std::future::Future;

use tokio::sync::{mpsc, oneshot};

type Request = (String, u64, oneshot::Sender<u64>);

/// Mailbox depth, the same as the bare channel floor's in `writes.rs`.
const MAILBOX: usize = 1024;

#[derive(Clone)]
pub struct NaiveActor {
    mailbox: mpsc::Sender<Request>,
}

impl NaiveActor {
    /// Spawns the actor on the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(initial: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut map: HashMap<String, u64> = initial.into_iter().collect();
        let (mailbox, mut inbox) = mpsc::channel::<Request>(MAILBOX);
        tokio::spawn(async move {
            let mut commits = 0u64;
            while let Some((key, value, reply)) = inbox.recv().await {
                map.insert(key, value);
                commits += 1;
                let _ = reply.send(commits);
            }
        });
        Self { mailbox }
    }

    /// Writes `key`, resolving to the commit counter once the actor has
    /// applied it. The key is copied into an owned `String` up front, as a
    /// user's message type needs.
    pub fn set(&self, key: &str, value: u64) -> impl Future<Output = u64> + Send + '_ {
        let key = key.to_owned();
        async move {
            let (reply, answer) = oneshot::channel();
            self.mailbox
                .send((key, value, reply))
                .await
                .expect("actor running");
            answer.await.expect("actor answers")
        }
    }
}
