//! Allocations per awaited `set` that overwrites an existing key, in the
//! steady state (history full and evicting, no subscriber, no stream).
//!
//! What one awaited overwrite allocates, measured (release and debug agree):
//! 6.5 at 1k keys, 8.4 at 1M keys, each:
//!
//! | allocation | count |
//! | --- | --- |
//! | the caller's oneshot reply channel | 1 |
//! | the value's `Arc` | 1 |
//! | the map entry (key, versions, value pointer behind one `Arc`, so that a path copy bumps one count per entry, not two) | 1 |
//! | the persistent map's path copy: the nodes from the root to the key, which the published versions share | ~2.5 at 1k, ~4.4 at 1M |
//! | the group's snapshot, published and kept in the history (one per group; every set here is its own group) | 1 |
//! | the history vector's chunks, amortized | < 0.05 |
//!
//! Not allocated: the key (a short key travels inline in the command and an
//! existing key reuses the map's `Arc<str>`), the command (moved into the
//! mailbox's preallocated blocks), spans, timestamps, the retired bin and
//! the reply buffers (reused group after group).
//!
//! Counted with a counting global allocator. The runtime is current-thread,
//! so the caller and the writer task both run on the test's thread, and
//! this file holds one test, so nothing else allocates meanwhile.

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use thread_safe_state::ThreadSafeState;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Average allocations of one awaited overwrite at `keys` keys.
fn per_set(keys: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let names: Vec<String> = (0..keys).map(|i| format!("key-{i}")).collect();
        let state = ThreadSafeState::builder()
            .initial_state(names.iter().map(|k| (k.as_str(), 0u64)))
            .build();
        // Fill the history so every commit also evicts one.
        for i in 0..3_000 {
            state
                .set(&names[(i * 7919) % keys], i as u64)
                .await
                .unwrap();
        }
        const ROUNDS: usize = 10_000;
        let region = Region::new(GLOBAL);
        for i in 0..ROUNDS {
            state
                .set(&names[(i * 7919) % keys], i as u64)
                .await
                .unwrap();
        }
        let change = region.change();
        (change.allocations + change.reallocations) as f64 / ROUNDS as f64
    })
}

/// A budget per size: today's count plus a margin well under one
/// allocation, so any new allocation per write fails the test.
#[test]
fn an_awaited_overwrite_allocates_only_its_budget() {
    let small = per_set(1_000);
    let large = per_set(1_000_000);
    println!("1000 keys: {small:.2} allocations per awaited set");
    println!("1000000 keys: {large:.2} allocations per awaited set");
    assert!(small <= 6.75, "{small:.2} allocations per set at 1k keys");
    assert!(large <= 8.75, "{large:.2} allocations per set at 1M keys");
    // What grows with the state is the path copy alone: log32(n) nodes.
    assert!(large - small < 2.5, "{small:.2} at 1k vs {large:.2} at 1M");
}
