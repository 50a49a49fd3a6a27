//! The etcd backend's edges (feature `etcd`): builder settings and
//! refusals, transactions that delete or cannot serialize, a retry whose
//! winner never shows, a lease dropped after `close`. The server is
//! `TSS_ETCD_ENDPOINT` (see `tests/etcd.rs`); the first test needs none.

mod common;

use std::time::{Duration, Instant};

use common::etcd::{connect, endpoint, prefix, revoke_lease};
use thread_safe_state::{
    EtcdError, Modification, StateError, ThreadSafeState, TransactionError, Write,
};

#[tokio::test]
async fn the_builder_shows_its_settings_and_refuses_what_etcd_cannot_honour() {
    let builder = ThreadSafeState::<i64>::builder()
        .etcd(["http://127.0.0.1:9"], "p/")
        .request_timeout(Duration::from_millis(300))
        .max_request_bytes(1 << 20)
        .max_txn_ops(64);
    let shown = format!("{builder:?}");
    for part in ["EtcdBuilder", "p/", "300ms", "1048576", "64"] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    let empty = ThreadSafeState::<i64>::builder()
        .etcd(["http://127.0.0.1:9"], "")
        .connect()
        .await;
    assert_eq!(empty.unwrap_err(), EtcdError::EmptyPrefix);
    let seeded = ThreadSafeState::<i64>::builder()
        .initial_state([("k", 1)])
        .etcd(["http://127.0.0.1:9"], "p/")
        .connect()
        .await;
    assert!(
        matches!(seeded, Err(EtcdError::Unsupported { .. })),
        "{seeded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_delete_and_refuse_what_does_not_serialize() {
    let Some(endpoint) = endpoint("transactions_delete") else {
        return;
    };
    let prefix = prefix("edges-txn");
    let state = ThreadSafeState::<f64>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    state.update([("a", 1.0), ("b", 2.0)]).await.unwrap();
    let version = state
        .transaction(|s| {
            let a = *s.get("a").unwrap();
            Ok::<_, String>(vec![Write::delete("a"), Write::set("b", a + 1.0)])
        })
        .await
        .unwrap();
    assert_eq!(state.version(), version);
    assert!(!state.contains_key("a"));
    assert_eq!(state.get("b").as_deref(), Some(&2.0));
    let refused = state
        .transaction(|_| Ok::<_, String>(vec![Write::set("c", f64::NAN)]))
        .await;
    assert!(
        matches!(
            refused,
            Err(TransactionError::State(StateError::NotSerializable { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(state.version(), version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_whose_winner_never_shows_returns_the_conflict() {
    let Some(endpoint) = endpoint("retry_never_shows") else {
        return;
    };
    let prefix = prefix("edges-retry");
    let state = connect(&endpoint, &prefix).await;
    // Another program writes a value this state cannot decode: the mirror
    // shows the key absent, etcd has it, so every attempt conflicts.
    let other = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    other.set("k", "not a number".into()).await.unwrap();
    let started = Instant::now();
    let mut runs = 0;
    let outcome = state
        .modify_retrying("k", move |now: Option<&i64>| {
            runs += 1;
            Modification::Set(now.copied().unwrap_or(0) + runs)
        })
        .await;
    assert!(
        matches!(outcome, Err(StateError::Conflict { .. })),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "it waited for the winner"
    );
    assert!(!state.contains_key("k"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_dropped_after_close_is_still_revoked() {
    let Some(endpoint) = endpoint("lease_after_close") else {
        return;
    };
    let prefix = prefix("edges-lease-close");
    let state = connect(&endpoint, &prefix).await;
    let observer = connect(&endpoint, &prefix).await;
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(30))
        .await
        .unwrap();
    agent.set("claim", 1).await.unwrap();
    state.close().await.unwrap();
    // The writer is gone: the revoke goes to etcd directly.
    drop(agent);
    observer
        .wait_for_timeout(|s| !s.contains_key("claim"), Duration::from_secs(10))
        .await
        .expect("revoked at once, not after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_refusals_on_every_path() {
    let Some(endpoint) = endpoint("limits_every_path") else {
        return;
    };
    let prefix = prefix("edges-limits");
    // A limit above the server's own (1.5 MiB): etcd refuses, typed.
    let state = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .max_request_bytes(8 << 20)
        .connect()
        .await
        .unwrap();
    let big = "x".repeat(2 << 20);
    let refused = state.set("big", big.clone()).await;
    assert!(
        matches!(refused, Err(StateError::EtcdRejected { .. })),
        "{refused:?}"
    );
    // Under this crate's limit, a txn is refused before it is sent.
    let strict = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .max_request_bytes(1024)
        .connect()
        .await
        .unwrap();
    let refused = strict
        .update([("a", "y".repeat(600)), ("b", "z".repeat(600))])
        .await;
    assert!(
        matches!(refused, Err(StateError::RequestTooLarge { .. })),
        "{refused:?}"
    );
    // A modify whose value does not serialize writes nothing.
    let floats = ThreadSafeState::<f64>::builder()
        .etcd([endpoint.as_str()], format!("{prefix}floats/"))
        .connect()
        .await
        .unwrap();
    let refused = floats
        .modify("x", |_: Option<&f64>| Modification::Set(f64::INFINITY))
        .await;
    assert!(
        matches!(refused, Err(StateError::NotSerializable { .. })),
        "{refused:?}"
    );
    assert!(!floats.contains_key("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_not_renewed_within_its_ttl_is_lost() {
    let Some(mut etcd) = common::etcd::OwnEtcd::start("lease_not_renewed") else {
        return;
    };
    let endpoint = etcd.endpoint();
    let prefix = prefix("edges-lease-lost");
    let state = common::etcd::connect_retrying(&endpoint, &prefix).await;
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(2))
        .await
        .unwrap();
    agent.set("claim", 1).await.unwrap();
    // etcd goes away: the renewal fails until the TTL has run out.
    etcd.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let refused = agent.set("claim", 2).await;
    assert_eq!(
        refused,
        Err(StateError::LeaseExpired {
            lease: agent.lease_id().unwrap()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_paths_behind_the_window() {
    let Some(endpoint) = endpoint("history_paths") else {
        return;
    };
    let prefix = prefix("edges-history");
    let state = ThreadSafeState::<i64>::builder()
        .max_history(1)
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    let good = state.set("k", 1).await.unwrap();
    // Another program's value that does not decode: left out of a
    // snapshot read from etcd, as the mirror leaves it out.
    let other = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    let odd = other.set("odd", "text".into()).await.unwrap();
    state.set("k", 2).await.unwrap();
    state.set("k", 3).await.unwrap();
    let fetched = state.fetch_snapshot_at(odd).await.unwrap();
    assert_eq!(fetched.get("k").as_deref(), Some(&1));
    assert!(!fetched.contains_key("odd"));

    // `set_if` on a key that must exist compares its create revision.
    state
        .set_if("k", 4, thread_safe_state::Precondition::Exists)
        .await
        .unwrap();
    let refused = state
        .set_if("missing", 1, thread_safe_state::Precondition::Exists)
        .await;
    assert!(
        matches!(refused, Err(StateError::Conflict { .. })),
        "{refused:?}"
    );

    // A plain rollback to a version behind the window goes through etcd.
    state.rollback(good).await.unwrap();
    assert_eq!(state.get("k").as_deref(), Some(&1));
    // The recovery helper searches the local window only.
    let searched = state
        .rollback_to_last_good(|s| s.get("k").as_deref() == Some(&3))
        .await;
    assert!(
        matches!(searched, Err(StateError::NoGoodVersion { .. })),
        "{searched:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_that_etcd_no_longer_has() {
    let Some(endpoint) = endpoint("leases_etcd_lost") else {
        return;
    };
    let prefix = prefix("edges-lease-gone");
    // A TTL put the server refuses after its lease was granted: the lease
    // is revoked again, the key is not written.
    let state = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .max_request_bytes(8 << 20)
        .connect()
        .await
        .unwrap();
    let refused = state
        .set_with_ttl("big", "x".repeat(2 << 20), Duration::from_secs(60))
        .await;
    assert!(
        matches!(refused, Err(StateError::EtcdRejected { .. })),
        "{refused:?}"
    );
    assert!(!state.contains_key("big"));
    // A handle dropped after its lease was revoked elsewhere: the revoke
    // finds nothing, and the state goes on.
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(30))
        .await
        .unwrap();
    agent.set("claim", "mine".into()).await.unwrap();
    let id = agent.lease_id().unwrap();
    revoke_lease(&endpoint, id).await;
    drop(agent);
    state.set("after", "ok".into()).await.unwrap();
    state
        .wait_for_timeout(|s| !s.contains_key("claim"), Duration::from_secs(10))
        .await
        .unwrap();
}
