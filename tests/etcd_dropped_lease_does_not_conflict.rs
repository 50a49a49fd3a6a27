//! (Found by review.) dropping a leased handle makes the state's own `modify` conflict.
//!
//! `EtcdBuilder`'s doc: `modify`, `transaction` and `rollback` wait until
//! this handle's earlier writes are mirrored, "so a handle's own writes
//! never make them conflict (as in memory); only another process's write
//! can". But the revoke that dropping a leased handle issues is a write of
//! this state that bypasses the writer: it is spawned on its own, so a
//! `modify` queued right after `drop(agent)` is planned on a snapshot that
//! still shows the agent's key, and the revoke deletes it under the
//! modify's compare. Nobody outside the process wrote anything, yet
//! `modify` (whose FnOnce closure cannot be retried) returns `Conflict`.
//!
//! Expected: no `Conflict` — the modify sees either the key or its absence.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, prefix};
use thread_safe_state::{Modification, StateError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modify_after_dropping_a_leased_handle_does_not_conflict() {
    let Some(endpoint) = endpoint("review_drop_revoke_conflict") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-drop-revoke")).await;
    let mut conflicts = Vec::new();
    for round in 0..20 {
        let agent = state
            .for_agent_with_lease("worker", Duration::from_secs(10))
            .await
            .unwrap();
        agent.set("claim", round).await.unwrap();
        drop(agent); // revokes the lease: the claim goes
        let modified = state
            .modify("claim", |claim| match claim {
                Some(n) => Modification::Set(n + 100),
                None => Modification::Keep,
            })
            .await;
        if let Err(error @ StateError::Conflict { .. }) = modified {
            conflicts.push((round, error));
        }
        // Let the revoke land before the next round.
        state
            .wait_for_timeout(|s| !s.contains_key("claim"), Duration::from_secs(1))
            .await
            .ok();
        state.delete("claim").await.unwrap();
    }
    assert!(
        conflicts.is_empty(),
        "{} of 20 modifies conflicted with this process's own revoke: {:?}",
        conflicts.len(),
        conflicts.first()
    );
}
