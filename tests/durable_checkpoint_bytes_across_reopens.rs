//! Regression (found by review; failed before the fix): with a byte-based checkpoint interval, the log grows
//! without bound across reopens (or crash-restarts).
//!
//! `Store::open` starts `log_bytes` at 0 whatever the log already holds,
//! and `checkpoint_if_due` only folds on bytes once `log_bytes` (bytes
//! written *by this process*) reaches `checkpoint_bytes`. A process that
//! writes less than `checkpoint_bytes` per run (a short-lived worker, a
//! crash loop) never folds: every run's records stay in the log, up to
//! `checkpoint_every` (default 4096) commits of them.
//!
//! Expected behaviour (README "Durability"; `DurableBuilder` docs): "The
//! file holds the live data, the history window and at most one checkpoint
//! interval of log: it does not grow with the number of writes", and
//! `checkpoint_bytes`: "fold once the log records written since the last
//! checkpoint reach `bytes`".

mod common;

use common::TempPath;
use std::path::Path;

use thread_safe_state::ThreadSafeState;

/// One short run: open, overwrite the one key with 10 kB, close.
async fn run(path: &Path, round: usize) {
    let state = ThreadSafeState::<String>::builder()
        .max_history(1)
        .durable(path)
        .checkpoint_bytes(32 << 10)
        .open()
        .await
        .unwrap();
    state
        .set("report", format!("{round:05}").repeat(2_000))
        .await
        .unwrap();
    state.close().await.unwrap();
}

#[tokio::test]
async fn the_log_is_folded_on_bytes_across_reopens() {
    let file = TempPath::new("bytes-reopen");
    let size = || std::fs::metadata(&file.0).unwrap().len();
    for round in 0..10 {
        run(&file.0, round).await;
    }
    let after_10 = size();
    for round in 10..150 {
        run(&file.0, round).await;
    }
    let after_150 = size();
    eprintln!("after 10 runs: {after_10} B, after 150 runs: {after_150} B");
    // Live data: one 10 kB value; window: 1 commit; interval: 32 kB.
    assert!(
        after_150 <= 2 * after_10,
        "the file grew with the number of runs: {after_10} B -> {after_150} B"
    );
}
