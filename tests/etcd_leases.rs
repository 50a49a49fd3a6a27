//! Leases and TTLs on etcd (feature `etcd`), against a real etcd at
//! `TSS_ETCD_ENDPOINT` (see `tests/etcd.rs`): an agent's keys live while
//! its handle does, go at once when it is dropped, and go one TTL after
//! its process is killed; every handle's waiters see them go.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::{connect, endpoint, prefix, revoke_lease};
use thread_safe_state::{Operation, StateError, ThreadSafeState};

/// etcd's smallest TTL with default election settings (1.5 s, rounded up).
const TTL: Duration = Duration::from_secs(2);

/// Wait (bounded) until `key` is absent on `state`; how long it took.
async fn gone(state: &ThreadSafeState<i64>, key: &str, within: Duration) -> Duration {
    let started = Instant::now();
    state
        .wait_for_timeout(|snapshot| !snapshot.contains_key(key), within)
        .await
        .unwrap_or_else(|error| panic!("{key} is still there: {error}"));
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_with_ttl_expires_on_etcd_and_wakes_every_handle() {
    let Some(endpoint) = endpoint("set_with_ttl") else {
        return;
    };
    let prefix = prefix("ttl");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    let started = Instant::now();
    let version = a.set_with_ttl("session", 1, TTL).await.unwrap();
    a.set("plain", 2).await.unwrap();
    // A later plain write cancels a TTL, as in memory.
    a.set_with_ttl("renewed", 3, TTL).await.unwrap();
    a.set("renewed", 4).await.unwrap();
    assert_eq!(a.snapshot().modified_version("session"), Some(version));

    let waited = gone(&b, "session", Duration::from_secs(15)).await;
    assert!(
        started.elapsed() >= TTL - Duration::from_millis(100),
        "expired after {:?}, before its TTL",
        started.elapsed()
    );
    eprintln!("a {TTL:?} TTL key went after {waited:?} on the other handle");
    gone(&a, "session", Duration::from_secs(5)).await;
    let expiry = &a.history(Some("session"), Some(1))[0];
    assert_eq!(expiry.operation, Operation::External);
    assert_eq!(expiry.new_value, None);
    // Long enough for `renewed`'s first lease to have expired too.
    tokio::time::sleep(TTL).await;
    for state in [&a, &b] {
        assert_eq!(state.get("plain").as_deref(), Some(&2));
        assert_eq!(state.get("renewed").as_deref(), Some(&4));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_handle_keeps_its_keys_until_dropped() {
    let Some(endpoint) = endpoint("leased_handle") else {
        return;
    };
    let prefix = prefix("lease-drop");
    let state = connect(&endpoint, &prefix).await;
    let observer = connect(&endpoint, &prefix).await;
    let agent = state.for_agent_with_lease("worker", TTL).await.unwrap();
    assert!(agent.lease_id().is_some());
    assert_eq!(agent.agent_id(), Some("worker"));
    assert_eq!(state.lease_id(), None);

    agent.set("claim", 1).await.unwrap();
    agent
        .update([("progress", 10), ("taken", 1)])
        .await
        .unwrap();
    // Another handle's write takes `taken` from the agent: it stays.
    state.set("taken", 2).await.unwrap();
    state.set("unrelated", 3).await.unwrap();
    // A clone keeps the lease alive after the first handle goes.
    let clone = agent.clone();
    drop(agent);

    // Renewed: alive well past its TTL.
    tokio::time::sleep(TTL * 3).await;
    assert_eq!(observer.get("claim").as_deref(), Some(&1));
    assert_eq!(observer.get("progress").as_deref(), Some(&10));
    let records = observer.history(Some("claim"), None);
    assert_eq!(
        records.last().unwrap().changed_by,
        None,
        "another process's write"
    );
    assert_eq!(
        state.history(Some("claim"), None)[0].changed_by.as_deref(),
        Some("worker")
    );

    // The last clone goes: the lease is revoked, faster than it expires.
    drop(clone);
    let waited = gone(&observer, "claim", Duration::from_secs(15)).await;
    gone(&observer, "progress", Duration::from_secs(1)).await;
    assert!(waited < TTL, "revoked at once, not expired: {waited:?}");
    assert_eq!(observer.get("taken").as_deref(), Some(&2));
    assert_eq!(observer.get("unrelated").as_deref(), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_lost_lease_fail_and_are_not_applied() {
    let Some(endpoint) = endpoint("lost_lease") else {
        return;
    };
    let prefix = prefix("lease-lost");
    let state = connect(&endpoint, &prefix).await;
    let agent = state
        .for_agent_with_lease("worker", Duration::from_secs(30))
        .await
        .unwrap();
    agent.set("claim", 1).await.unwrap();
    let id = agent.lease_id().unwrap();
    revoke_lease(&endpoint, id).await;
    gone(&state, "claim", Duration::from_secs(10)).await;

    let version = state.version();
    let refused = agent.set("claim", 2).await;
    assert_eq!(refused, Err(StateError::LeaseExpired { lease: id }));
    let refused = blocking_set(&agent, "other", 3).await;
    assert_eq!(refused, Err(StateError::LeaseExpired { lease: id }));
    assert_eq!(state.version(), version);
    assert!(!state.contains_key("claim"));
    // The state's own handles are not affected.
    state.set("claim", 4).await.unwrap();
}

/// A blocking write from a plain thread.
async fn blocking_set(
    state: &ThreadSafeState<i64>,
    key: &str,
    value: i64,
) -> Result<(), StateError> {
    let (state, key) = (state.clone(), key.to_owned());
    tokio::task::spawn_blocking(move || state.blocking().set(key, value).map(|_| ()))
        .await
        .unwrap()
}

/// Carries the endpoint and prefix to the child (and makes it a child).
const CHILD_VAR: &str = "TSS_LEASE_CHILD";

/// The child process: take a lease, claim a key, say so, and wait to be
/// killed. A no-op without the variable.
#[test]
fn lease_child() {
    let Ok(target) = std::env::var(CHILD_VAR) else {
        return;
    };
    let (endpoint, prefix) = target.split_once(' ').unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let state = connect(endpoint, prefix).await;
        let agent = state.for_agent_with_lease("child", TTL).await.unwrap();
        agent.set("claimed-by-child", 1).await.unwrap();
        state.set("written-by-child", 2).await.unwrap();
        println!("\nready");
        // The parent kills this process; end anyway if it never does.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_keys_go_one_ttl_later_and_wake_waiters() {
    let Some(endpoint) = endpoint("killed_agent") else {
        return;
    };
    let prefix = prefix("lease-kill");
    let state = connect(&endpoint, &prefix).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lease_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, format!("{endpoint} {prefix}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "ready")
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .unwrap()
            .unwrap(),
        "the child never got ready"
    );
    state
        .wait_for_timeout(
            |snapshot| snapshot.contains_key("claimed-by-child"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let waiter = {
        let state = state.clone();
        tokio::spawn(async move { gone(&state, "claimed-by-child", Duration::from_secs(20)).await })
    };
    // Still there after a TTL while the child lives and renews.
    tokio::time::sleep(TTL + Duration::from_millis(500)).await;
    assert!(state.contains_key("claimed-by-child"));
    assert!(!waiter.is_finished());

    let killed = Instant::now();
    child.kill().unwrap(); // SIGKILL: no revoke, no goodbye
    child.wait().unwrap();
    waiter.await.unwrap();
    let after = killed.elapsed();
    eprintln!("a killed agent's key went {after:?} after the kill (TTL {TTL:?})");
    assert!(after <= TTL + Duration::from_secs(3), "{after:?}");
    assert_eq!(state.get("written-by-child").as_deref(), Some(&2));
}

#[tokio::test]
async fn leases_need_etcd_and_a_ttl() {
    let state = ThreadSafeState::<i64>::new();
    assert_eq!(
        state
            .for_agent_with_lease("a", Duration::from_secs(1))
            .await
            .unwrap_err(),
        StateError::LeasesUnsupported
    );
    let Some(endpoint) = endpoint("lease_zero_ttl") else {
        return;
    };
    let state = connect(&endpoint, &prefix("lease-zero")).await;
    assert_eq!(
        state
            .for_agent_with_lease("a", Duration::ZERO)
            .await
            .unwrap_err(),
        StateError::ZeroTtl
    );
}
