//! (Review 2.) The request-size check before sending does not count the
//! lease a put carries, so a leased write the crate accepts is one etcd
//! refuses.
//!
//! The docs promise etcd's limits are checked before sending
//! (`RequestTooLarge`), and `txn.rs` says the per-item overhead is "a
//! generous bound, so a request this crate accepts is one etcd accepts".
//! A plain put is counted as key + value + 32 bytes; etcd measures the
//! marshalled raft request: the put (key and value with their tags and
//! lengths: 6 bytes for a value over 16 KiB) plus the request header
//! (about 14 bytes) plus the put's own wrapper (4 bytes). That fits in 32
//! bytes only without a lease: a lease id adds 10 more. So a put from a
//! `for_agent_with_lease` handle, or a `set_with_ttl`, sized right at the
//! limit passes the crate's check and comes back `EtcdRejected`
//! ("request is too large").
//!
//! Expected: `Ok`, or `RequestTooLarge` before anything is sent; never
//! `EtcdRejected`. (The same value without a lease is accepted by both.)

mod common;

use std::time::Duration;

use common::etcd::{endpoint, prefix};
use thread_safe_state::{StateError, ThreadSafeState, DEFAULT_MAX_REQUEST_BYTES};

/// A value whose put is counted by the crate as exactly the limit.
fn value_at_the_limit(prefix: &str, key: &str) -> String {
    let full_key = prefix.len() + key.len();
    // JSON adds the two quotes; the crate adds 32 per item.
    "x".repeat(DEFAULT_MAX_REQUEST_BYTES - 32 - 2 - full_key)
}

fn accepted(outcome: &Result<thread_safe_state::Version, StateError>) -> bool {
    matches!(outcome, Ok(_) | Err(StateError::RequestTooLarge { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_put_at_the_limit_is_checked_before_sending() {
    let Some(endpoint) = endpoint("review_leased_put_size") else {
        return;
    };
    let prefix = prefix("review-leased-put-size");
    let state = ThreadSafeState::<String>::builder()
        .etcd([&endpoint], &prefix)
        .request_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();

    // Without a lease, the bound holds: etcd takes it.
    let plain = state
        .set("plain", value_at_the_limit(&prefix, "plain"))
        .await;
    assert!(accepted(&plain), "plain put: {plain:?}");

    let agent = state
        .for_agent_with_lease("agent", Duration::from_secs(30))
        .await
        .unwrap();
    let leased = agent
        .set("leased", value_at_the_limit(&prefix, "leased"))
        .await;
    let ttl = state
        .set_with_ttl(
            "ttl",
            value_at_the_limit(&prefix, "ttl"),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        accepted(&leased) && accepted(&ttl),
        "passed the crate's size check, refused by etcd:\n  leased set: {leased:?}\n  set_with_ttl: {ttl:?}"
    );
}
