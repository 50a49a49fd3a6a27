//! (Found by review.) after etcd said a handle's lease is gone, the handle still
//! applies writes.
//!
//! `for_agent_with_lease` documents: "Once the lease is lost (etcd says so,
//! or it could not be renewed within its TTL), every write through the
//! handle fails with `StateError::LeaseExpired` and is not applied." But a
//! put refused by etcd with "lease not found" is mapped to `LeaseExpired`
//! for that one call only: the handle's `expired` flag is set by the
//! renewal task alone (every third of the TTL, here 10 s). Until then
//! every write that carries no lease — `delete`, `clear`, `retain`,
//! `delete_if`, `rollback`, `set_with_ttl` — goes through and is applied,
//! right after the handle itself answered `LeaseExpired`.
//!
//! Expected: once a write answered `LeaseExpired`, the next writes through
//! that handle fail with `LeaseExpired` too, and the state is unchanged.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix, revoke_lease};
use thread_safe_state::StateError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_etcd_said_the_lease_is_gone_are_not_applied() {
    let Some(endpoint) = endpoint("review_lost_lease_still_writes") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-lost-lease-writes")).await;
    state.set("shared", 1).await.unwrap();
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(30))
        .await
        .unwrap();
    agent.set("claim", 1).await.unwrap();
    let id = agent.lease_id().unwrap();
    revoke_lease(&endpoint, id).await;
    state
        .wait_for_timeout(|s| !s.contains_key("claim"), Duration::from_secs(10))
        .await
        .unwrap();

    // etcd says so: the handle answers LeaseExpired.
    assert_eq!(
        agent.set("claim", 2).await,
        Err(StateError::LeaseExpired { lease: id })
    );
    // ... and then deletes another agent's key anyway.
    let deleted = agent.delete("shared").await;
    assert_eq!(
        deleted,
        Err(StateError::LeaseExpired { lease: id }),
        "a write through a handle that just answered LeaseExpired was applied"
    );
    assert_eq!(state.get("shared").as_deref(), Some(&1));
}
