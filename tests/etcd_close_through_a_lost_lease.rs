//! (Found by review.) `close()` through a handle whose lease was lost.
//!
//! `close` documents "# Errors: None today", and closing is not a write.
//! But `close` goes through `submit`, which first checks the handle's lease:
//! on a leased handle whose lease is gone it returns
//! `Err(StateError::LeaseExpired)` and the state is *not* closed (writes
//! through the other handles still succeed). Expected: `close()` returns
//! `Ok(())` and the state is closed, as through any other handle.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix, revoke_lease};
use thread_safe_state::StateError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_through_a_lost_lease_closes_the_state() {
    let Some(endpoint) = endpoint("review_close_lost_lease") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-close-lease")).await;
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(3))
        .await
        .unwrap();
    agent.set("claim", 1).await.unwrap();
    let id = agent.lease_id().unwrap();
    revoke_lease(&endpoint, id).await;
    state
        .wait_for_timeout(|s| !s.contains_key("claim"), Duration::from_secs(10))
        .await
        .unwrap();
    // Wait until the renewal task has noticed (every third of the TTL): a
    // delete carries no lease, so etcd would take it; only the handle's own
    // flag refuses it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while agent.delete("probe").await != Err(StateError::LeaseExpired { lease: id }) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let closed = agent.close().await;
    assert_eq!(closed, Ok(()), "close() through a lost lease");
    assert_eq!(
        state.set("after-close", 1).await,
        Err(StateError::Closed),
        "the state was not closed"
    );
}
