//! (Found by review.) a lease granted from another runtime dies with that runtime.
//!
//! `Leases::grant` spawns the renewal task (and later the revoke) on the
//! runtime of the *caller* (`Handle::current()`), not on the state's
//! runtime where its writer and mirror run. A handle made on a short-lived
//! runtime (a helper thread's `block_on`, a test harness, a plugin host)
//! keeps working for writes, but once that runtime is gone nobody renews
//! its lease: etcd deletes the agent's keys one TTL later while the handle
//! is alive, and the handle never learns it (the renewal task that would
//! set its flag is gone too) — a live agent silently loses its claims.
//!
//! Expected: while a clone of the handle lives, its lease is renewed (on
//! the state's runtime), and the claim stays.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_on_a_helper_runtime_is_still_renewed() {
    let Some(endpoint) = endpoint("review_lease_other_runtime") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-lease-other-rt")).await;
    let ttl = Duration::from_secs(2);
    let agent = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let helper = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            helper.block_on(state.for_agent_with_lease("worker", ttl))
            // `helper` ends here
        })
        .await
        .unwrap()
        .unwrap()
    };
    agent.set("claim", 1).await.unwrap();
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(
        state.get("claim").as_deref(),
        Some(&1),
        "the live agent's claim expired: its lease is no longer renewed"
    );
}
