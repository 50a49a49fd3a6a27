//! Regression (found by review; failed before the fix): a second `close()` returns while the first is still
//! draining the queue, before the journal file is released, so reopening
//! right after it fails with `AlreadyOpen`.
//!
//! `close()` maps `StateError::Closed` (the mailbox is already closed) to
//! `Ok(())` at once. But the mailbox is closed as soon as the group holding
//! the first `Close` commits; the writer then still applies and syncs
//! every command queued behind it, and only then closes the journal. A
//! second closer (another agent, a shutdown hook) returns immediately.
//!
//! Expected behaviour (`close` docs: "every write already queued is
//! applied and answered, and then this returns"; `DurableBuilder` docs:
//! `state.close().await?; // releases the file`): once any `close()`
//! returns, the queued writes are answered and the file can be opened
//! again.

mod common;

use common::TempPath;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use thread_safe_state::{StateError, ThreadSafeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_close_waits_for_the_first() {
    let file = TempPath::new("second-close");
    let state = ThreadSafeState::<u64>::builder()
        .mailbox_capacity(4096)
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    // Keep the writer busy syncing, then close with many writes queued
    // behind the close.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut writes = Vec::new();
    let spawn_write = |i: u64| {
        let state = state.clone();
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let result = state.set(format!("k{i}"), i).await;
            answered.fetch_add(1, Ordering::SeqCst);
            result
        })
    };
    for i in 0..50 {
        writes.push(spawn_write(i));
    }
    tokio::task::yield_now().await;
    let first = tokio::spawn({
        let state = state.clone();
        async move { state.close().await }
    });
    for i in 50..3000 {
        writes.push(spawn_write(i));
    }
    // Wait until the first close has shut the mailbox.
    loop {
        match state.set("probe", 0).await {
            Err(StateError::Closed) => break,
            Ok(_) => tokio::task::yield_now().await,
            Err(other) => panic!("{other}"),
        }
    }
    state.close().await.unwrap();
    let answered_at_second_close = answered.load(Ordering::SeqCst);
    let reopened = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .open()
        .await;

    first.await.unwrap().unwrap();
    let mut accepted = 0;
    for write in writes {
        if write.await.unwrap().is_ok() {
            accepted += 1;
        }
    }
    eprintln!("{answered_at_second_close} writes answered when the second close returned; {accepted} accepted in all");
    let state = reopened
        .unwrap_or_else(|error| panic!("close() returned but the file is still held: {error}"));
    state.close().await.unwrap();
}
