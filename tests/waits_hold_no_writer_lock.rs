//! Regression (review finding 1): no user code runs under a lock the writer
//! needs. A slow `wait_for` predicate, one that reads the state again, and a
//! snapshot held from `subscribe().wait_for` across a write all leave the
//! writer free.
use std::sync::mpsc;
use std::time::{Duration, Instant};
use thread_safe_state::ThreadSafeState;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_slow_wait_for_predicate_does_not_delay_an_unrelated_write() {
    let rt = rt();
    let state = rt.block_on(async { ThreadSafeState::<u64>::new() });
    let (entered_tx, entered_rx) = mpsc::channel();
    let (s, mut first) = (state.clone(), true);
    rt.spawn(async move {
        s.wait_for(move |snap| {
            if std::mem::take(&mut first) {
                entered_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(1500));
            }
            snap.contains_key("never")
        })
        .await
    });
    entered_rx.recv().unwrap();
    let start = Instant::now();
    state.blocking().set("unrelated", 1).unwrap();
    let took = start.elapsed();
    rt.shutdown_background();
    assert!(
        took < Duration::from_millis(500),
        "set() blocked for {took:?} behind a predicate"
    );
}

#[test]
fn a_predicate_that_reads_the_state_does_not_block_the_writer() {
    let rt = rt();
    let state = rt.block_on(async { ThreadSafeState::<u64>::new() });
    let watch = rt.block_on(async { state.watch_key("k") });
    let (entered_tx, entered_rx) = mpsc::channel();
    let (s, mut first) = (state.clone(), true);
    rt.spawn(async move {
        s.wait_for(move |snap| {
            if std::mem::take(&mut first) {
                entered_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300)); // writer queues for the write lock
                let _ = watch.current(); // second read lock on the same channel
            }
            snap.contains_key("k")
        })
        .await
    });
    entered_rx.recv().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let s = state.clone();
    std::thread::spawn(move || done_tx.send(s.blocking().set("k", 1)).unwrap());
    let outcome = done_rx.recv_timeout(Duration::from_secs(5));
    rt.shutdown_background();
    assert!(
        outcome.is_ok(),
        "set() never returned: writer and waiter deadlocked"
    );
}

#[test]
fn a_snapshot_from_subscribe_wait_for_held_across_a_write_blocks_nothing() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let state = ThreadSafeState::<u64>::new();
            let mut updates = state.subscribe();
            state.set("a", 1).await.unwrap();
            let snapshot = updates.wait_for(|s| s.contains_key("a")).await.unwrap(); // as in the subscribe() doc
            state.set("b", 2).await.unwrap();
            drop(snapshot);
        });
        done_tx.send(()).unwrap();
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "runtime deadlocked"
    );
}
