//! Regression (review finding 7): the writer yields between group commits.
//! Without that, the last caller it answers is woken into the writer
//! worker's (unstealable) LIFO slot and waits for the *next* group to finish
//! even though another worker is idle.
mod common;

use common::{queued, Gate};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thread_safe_state::{Modification, ThreadSafeState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_caller_of_a_group_resumes_before_the_next_group_ends() {
    let state = ThreadSafeState::<u64>::new();
    let gate = Gate::park(&state, "gate").await;
    // Group 1: one fast write whose caller records when it hears back.
    let (next_queued_tx, next_queued_rx) = mpsc::channel::<()>();
    let s = state.clone();
    let fast = tokio::spawn(async move {
        s.modify("fast", move |_| {
            next_queued_rx.recv().unwrap();
            Modification::Set(1)
        })
        .await
        .unwrap();
        Instant::now()
    });
    queued(&state, 1).await;
    gate.open();
    while state.metrics().mailbox_depth > 0 {
        std::hint::spin_loop()
    } // group 1 taken
      // Group 2: a slow command, queued while group 1 is being applied.
    let s = state.clone();
    let slow = tokio::spawn(async move {
        s.modify("slow", |_| {
            std::thread::sleep(Duration::from_millis(1000));
            Modification::Set(2)
        })
        .await
    });
    queued(&state, 1).await;
    next_queued_tx.send(()).unwrap();
    while state.get("fast").is_none() {
        std::hint::spin_loop()
    }
    let published = Instant::now();
    let heard = fast.await.unwrap();
    let delay = heard.saturating_duration_since(published);
    gate.finish().await.unwrap();
    slow.await.unwrap().unwrap();
    println!("group 1 published; its caller resumed {delay:?} later");
    assert!(
        delay < Duration::from_millis(200),
        "caller stuck behind the next group for {delay:?}"
    );
}
