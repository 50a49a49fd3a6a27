//! (Found by review.) `set_with_ttl` on etcd leaks one lease per call.
//!
//! Each `set_with_ttl` grants a fresh etcd lease for the key and nothing
//! ever revokes it: not when a later `set_with_ttl` of the same key
//! replaces the TTL, not when a plain write cancels it, not when the key is
//! deleted. The superseded leases stay granted (holding nothing) for their
//! full TTL. The usual heartbeat — `set_with_ttl("alive", .., 1 h)` every
//! second — keeps 3600 orphan leases in the cluster, each persisted and
//! expired by the leader. Expected: replacing or cancelling a key's TTL
//! releases its old lease, so one key with a TTL costs at most one lease.

mod common;

use std::time::Duration;

use common::etcd::{connect, endpoint, gateway_post, prefix};

/// The ids of the leases etcd holds now.
async fn leases(endpoint: &str) -> Vec<String> {
    let response = gateway_post(endpoint, "/v3/lease/leases", "{}").await;
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    // Chunked or not, the JSON object is between the first '{' and last '}'.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["leases"]
        .as_array()
        .map(|leases| {
            leases
                .iter()
                .map(|lease| lease["ID"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_keys_ttl_does_not_leave_its_old_lease_behind() {
    let Some(endpoint) = endpoint("review_ttl_lease_leak") else {
        return;
    };
    let state = connect(&endpoint, &prefix("review-ttl-leak")).await;
    let before = leases(&endpoint).await;
    for beat in 0..20 {
        state
            .set_with_ttl("alive", beat, Duration::from_secs(3600))
            .await
            .unwrap();
    }
    state.delete("alive").await.unwrap();
    let after = leases(&endpoint).await;
    let new: Vec<_> = after.iter().filter(|id| !before.contains(id)).collect();
    assert!(
        new.len() <= 1,
        "20 heartbeats of one key, then a delete, left {} leases granted in etcd",
        new.len()
    );
}
