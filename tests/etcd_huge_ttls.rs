//! (Found by review.) huge TTLs on etcd.
//!
//! `set_with_ttl` documents that "a TTL too long for the clock to represent
//! (hundreds of years) never expires", and `Duration::MAX` is the usual way
//! to say "forever". On etcd:
//!
//! - `ttl_seconds` computes `ttl.as_secs() + 1` for `Duration::MAX`, which
//!   overflows: in a debug build it panics *in the writer task* (planning
//!   `SetWithTtl` is outside `catch_unwind`), which kills the state — the
//!   caller and every later write get `Closed`; in a release build it wraps
//!   to 0 and the "forever" key gets a 1-second lease.
//!   Expected: the write succeeds (a key that never expires, or at least a
//!   typed error) and the state keeps working.
//! - `for_agent_with_lease(agent, Duration::MAX)` panics in the caller the
//!   same way. Expected: a handle or a typed error, not a panic.
//! - a TTL of 1000 years (beyond etcd's MaxLeaseTTL, 9e9 s) is refused by
//!   etcd with `EtcdRejected`, where the doc says it never expires.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_with_ttl_duration_max_does_not_kill_the_writer() {
    let Some(endpoint) = endpoint("review_ttl_max") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-ttl-max")).await;
    let forever = state.set_with_ttl("forever", 1, Duration::MAX).await;
    let after = state.set("after", 2).await;
    assert!(
        after.is_ok(),
        "the state died on a Duration::MAX TTL: set_with_ttl -> {forever:?}, next set -> {after:?}"
    );
    assert!(forever.is_ok(), "{forever:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        state.get("forever").as_deref(),
        Some(&1),
        "a Duration::MAX TTL expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_with_ttl_of_a_thousand_years_never_expires() {
    let Some(endpoint) = endpoint("review_ttl_1000y") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-ttl-1000y")).await;
    let thousand_years = Duration::from_secs(1000 * 365 * 24 * 3600);
    let written = state.set_with_ttl("forever", 1, thousand_years).await;
    assert!(
        written.is_ok(),
        "a TTL of hundreds of years should never expire, not fail: {written:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_agent_with_lease_duration_max_does_not_panic() {
    let Some(endpoint) = endpoint("review_lease_max") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-lease-max")).await;
    let attempt = tokio::spawn({
        let state = state.clone();
        async move {
            state
                .for_agent_with_lease("a", Duration::MAX)
                .await
                .map(|handle| handle.lease_id())
        }
    })
    .await;
    assert!(
        attempt.is_ok(),
        "for_agent_with_lease(Duration::MAX) panicked: {attempt:?}"
    );
}
