//! Memory: what 1000 retained versions of a 100k-key state cost beyond the
//! live state, when each version changed one key.
//!
//! Measured as the growth of the process's resident set while the versions
//! are written, against the same writes with `max_history(0)` (nothing
//! retained) in the same process. Prints one line per case.
//!
//! Run: `cargo bench --bench memory`

mod common;

use common::*;
use thread_safe_state::ThreadSafeState;

const KEYS: usize = 100_000;
const VERSIONS: usize = 1000;

/// Resident set size in bytes, from /proc (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn growth(max_history: usize) -> Option<i64> {
    let rt = current_thread();
    let _guard = rt.enter();
    let state = ThreadSafeState::builder()
        .initial_state((0..KEYS).map(|i| (key(i), i as u64)))
        .max_history(max_history)
        .build();
    let probes = probe_keys(KEYS);
    // Warm up allocator pools with a few writes before measuring.
    rt.block_on(async {
        for key in &probes[..10] {
            state.set(key.as_str(), 0).await.unwrap();
        }
    });
    let before = rss()?;
    rt.block_on(async {
        for i in 0..VERSIONS {
            state
                .set(probes[i % probes.len()].as_str(), i as u64)
                .await
                .unwrap();
        }
    });
    let after = rss()?;
    assert_eq!(
        state.metrics().retained_versions,
        max_history.min(VERSIONS + 10) + 1
    );
    Some(after as i64 - before as i64)
}

fn main() {
    // `cargo bench` passes flags such as --bench; this binary takes none.
    let Some(retained) = growth(VERSIONS) else {
        println!("memory: /proc/self/statm unavailable; skipped");
        return;
    };
    let baseline = growth(0).expect("statm was readable a moment ago");
    let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "memory/{VERSIONS}_versions_of_{KEYS}_keys: {:.2} MiB RSS growth retained, {:.2} MiB with max_history(0), {:.2} MiB attributable to retention",
        mib(retained),
        mib(baseline),
        mib(retained - baseline)
    );
}
