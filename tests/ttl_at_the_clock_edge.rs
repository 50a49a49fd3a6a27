//! Regression (found by review; failed before the fix). Expected: `set_with_ttl` promises "A TTL too long for the clock to
//! represent (hundreds of years) never expires", and DESIGN.md says no input
//! may stall or kill the writer. A TTL whose deadline fits in an `Instant`
//! but lies within a millisecond of the clock's end must therefore either
//! never expire or be refused with a typed error; the writer must live on.
//!
//! Actual: the writer computes `now + ttl` with `checked_add` (it fits), arms
//! a tokio sleep for it, and tokio rounds the deadline up by 999_999 ns
//! (`deadline_to_tick`), which overflows `Instant` and panics inside the
//! writer task. Every later write gets `Closed`.

use std::time::Duration;

use thread_safe_state::{ThreadSafeState, Version};

/// The largest TTL for which `now + ttl` is still representable.
fn largest_representable_ttl(now: tokio::time::Instant) -> Duration {
    let (mut lo, mut hi) = (0u128, u64::MAX as u128 * 1_000_000_000);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let d = Duration::new((mid / 1_000_000_000) as u64, (mid % 1_000_000_000) as u32);
        if now.checked_add(d).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Duration::new((lo / 1_000_000_000) as u64, (lo % 1_000_000_000) as u32)
}

#[tokio::test(start_paused = true)]
async fn a_ttl_at_the_edge_of_the_clock_does_not_kill_the_writer() {
    let state = ThreadSafeState::<u32>::new();
    // The paused clock does not move, so the writer's `now` is this `now`.
    let ttl = largest_representable_ttl(tokio::time::Instant::now());
    let set = state.set_with_ttl("k", 1, ttl).await;
    // Either accepted (and never expires) or a typed refusal...
    assert!(
        set.is_ok() || !matches!(set, Err(thread_safe_state::StateError::Closed)),
        "{set:?}"
    );
    // ...but the writer must live on.
    let next = state.set("other", 2).await;
    assert!(next.is_ok(), "writer died after a huge TTL: {next:?}");
    assert!(state.version() >= Version::new(1));
}
