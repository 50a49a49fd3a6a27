//! Regression (review finding 6): a history query never holds the writer's
//! lock for work proportional to the window.
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_safe_state::ThreadSafeState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_filtered_history_query_does_not_stall_the_writer() {
    const N: usize = 200_000;
    let state = ThreadSafeState::<u64>::builder().max_history(N).build();
    for i in 0..N as u64 {
        state.set("k", i).await.unwrap();
    }
    let mut baseline = Duration::ZERO;
    for i in 0..200u64 {
        let t = Instant::now();
        state.set("w", i).await.unwrap();
        baseline = baseline.max(t.elapsed());
    }
    let (stop, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let auditor = std::thread::spawn({
        let (state, stop, started) = (state.clone(), stop.clone(), started.clone());
        move || {
            let mut longest = Duration::ZERO;
            started.store(true, Relaxed);
            while !stop.load(Relaxed) {
                let t = Instant::now();
                let _ = state.history(Some("w"), Some(1)); // the newest commit matches
                longest = longest.max(t.elapsed());
            }
            longest
        }
    });
    while !started.load(Relaxed) {
        tokio::task::yield_now().await
    }
    let (mut worst, until) = (Duration::ZERO, Instant::now() + Duration::from_secs(1));
    for i in 0.. {
        if Instant::now() > until {
            break;
        }
        let t = Instant::now();
        state.set("w", i).await.unwrap();
        worst = worst.max(t.elapsed());
    }
    stop.store(true, Relaxed);
    let query = auditor.join().unwrap();
    println!("max set latency: {baseline:?} alone, {worst:?} beside history(Some(key), Some(1)) taking up to {query:?}");
    // Before the fix the query cloned the whole window under the lock: the
    // write waited 32 ms in release, far more in debug. Now the lock is held
    // for an O(1) copy; the margin absorbs a descheduled thread on a busy
    // 2-core machine (three busy threads share two cores here).
    assert!(
        worst < baseline * 10 + Duration::from_millis(20),
        "writer stalled behind the history lock"
    );
}
