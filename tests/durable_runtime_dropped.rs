//! Regression (found by review; failed before the fix): the runtime running the writer is dropped while a group is
//! syncing; the journal thread (a std thread) outlives it. Reopening right
//! away must recover every acknowledged write, and must not be refused
//! because the orphaned journal thread still holds the file.
//!
//! Expected behaviour: no handle is left to `close()` once the runtime is
//! gone, so the file must be free when the runtime's drop returns (or the
//! open must wait for it), and the recovered version is at least the
//! newest acknowledged one.

mod common;

use common::TempPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thread_safe_state::ThreadSafeState;

#[test]
fn reopening_after_the_runtime_died_mid_sync() {
    let file = TempPath::new("runtime-dropped");
    for round in 0..20 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = ThreadSafeState::<String>::builder()
            .mailbox_capacity(4096)
            .durable(&file.0)
            .open_on(runtime.handle())
            .unwrap();
        let acknowledged = Arc::new(AtomicU64::new(state.version().get()));
        for i in 0..2000 {
            let state = state.clone();
            let acknowledged = Arc::clone(&acknowledged);
            runtime.spawn(async move {
                if let Ok(version) = state.set(format!("k{}", i % 50), "x".repeat(2000)).await {
                    acknowledged.fetch_max(version.get(), Ordering::SeqCst);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(5));
        drop(runtime);
        let acknowledged = acknowledged.load(Ordering::SeqCst);

        let runtime = tokio::runtime::Runtime::new().unwrap();
        let state = ThreadSafeState::<String>::builder()
            .durable(&file.0)
            .open_on(runtime.handle())
            .unwrap_or_else(|error| {
                panic!("round {round}: reopen after the runtime died: {error}")
            });
        assert!(
            state.version().get() >= acknowledged,
            "round {round}: acknowledged {acknowledged}, recovered {}",
            state.version()
        );
        state.blocking().close().unwrap();
    }
}
