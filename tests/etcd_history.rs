//! etcd's MVCC history behind the local window (feature `etcd`), against
//! a real etcd at `TSS_ETCD_ENDPOINT` (see `tests/etcd.rs`):
//! `fetch_snapshot_at` and `rollback` reach versions the handle's window
//! no longer holds (or never held: from before it connected), back to
//! etcd's last compaction, which is the crate's typed error.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::etcd::{caught_up, connect_retrying, endpoint, gateway_post, prefix, OwnEtcd};
use thread_safe_state::{Operation, StateError, ThreadSafeState, Version};

/// A handle that keeps only the last two commits.
async fn connect(endpoint: &str, prefix: &str) -> ThreadSafeState<i64> {
    ThreadSafeState::<i64>::builder()
        .max_history(2)
        .etcd([endpoint], prefix)
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to etcd")
}

fn contents(snapshot: &thread_safe_state::Snapshot<i64>) -> BTreeMap<String, i64> {
    snapshot
        .keys()
        .map(|key| (key.to_owned(), *snapshot.get(key).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_snapshot_at_reads_behind_the_window_from_etcd() {
    let Some(endpoint) = endpoint("fetch_snapshot_at") else {
        return;
    };
    let prefix = prefix("mvcc-fetch");
    let state = connect(&endpoint, &prefix).await;
    let v1 = state.update([("a", 1), ("b", 2)]).await.unwrap();
    let v2 = state.set("a", 10).await.unwrap();
    let v3 = state.delete("b").await.map(|_| state.version()).unwrap();
    state.set("c", 3).await.unwrap();
    state.set("c", 4).await.unwrap();
    assert!(matches!(
        state.snapshot_at(v1),
        Err(StateError::VersionCompacted { .. })
    ));

    let at_v1 = state.fetch_snapshot_at(v1).await.unwrap();
    assert_eq!(at_v1.version(), v1);
    assert_eq!(
        contents(&at_v1),
        BTreeMap::from([("a".into(), 1), ("b".into(), 2)])
    );
    assert_eq!(at_v1.modified_version("a"), Some(v1));
    let at_v3 = state.fetch_snapshot_at(v3).await.unwrap();
    assert_eq!(contents(&at_v3), BTreeMap::from([("a".into(), 10)]));
    assert_eq!(at_v3.modified_version("a"), Some(v2));
    // Inside the window it is `snapshot_at`.
    let now = state.version();
    assert_eq!(
        contents(&state.fetch_snapshot_at(now).await.unwrap()),
        contents(&state.snapshot())
    );
    assert!(matches!(
        state.fetch_snapshot_at(now.next()).await,
        Err(StateError::FutureVersion { .. })
    ));

    // A handle that connects later reaches back before it existed.
    let late = connect(&endpoint, &prefix).await;
    let seen = late.fetch_snapshot_at(v1).await.unwrap();
    assert_eq!(contents(&seen), contents(&at_v1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_behind_the_window_restores_from_etcd() {
    let Some(endpoint) = endpoint("rollback_mvcc") else {
        return;
    };
    let prefix = prefix("mvcc-rollback");
    let state = connect(&endpoint, &prefix).await;
    let observer = connect(&endpoint, &prefix).await;
    let good = state.update([("plan", 1), ("owner", 7)]).await.unwrap();
    state.set("plan", 2).await.unwrap();
    state.delete("owner").await.unwrap();
    state.set("junk", 9).await.unwrap();
    state.set("plan", 3).await.unwrap();
    assert!(state.snapshot_at(good).is_err(), "behind the local window");

    let restored = state.rollback(good).await.unwrap();
    assert!(restored > good);
    let expected = BTreeMap::from([("owner".into(), 7), ("plan".into(), 1)]);
    assert_eq!(contents(&state.snapshot()), expected);
    let record = &state.history(None, Some(1))[0];
    assert_eq!(record.operation, Operation::Rollback);
    caught_up(&observer, restored).await;
    assert_eq!(contents(&observer.snapshot()), expected);

    // Rolling back again to the same contents writes nothing.
    let again = state.rollback(good).await.unwrap();
    assert_eq!(again, state.version());
    assert_eq!(again, restored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_version_is_the_typed_error() {
    // A server of its own: compacting the shared one would cut the other
    // tests' history.
    let Some(etcd) = OwnEtcd::start("mvcc_compacted") else {
        return;
    };
    let endpoint = etcd.endpoint();
    let prefix = prefix("mvcc-compacted");
    drop(connect_retrying(&endpoint, &prefix).await);
    let state = connect(&endpoint, &prefix).await;
    let old = state.set("k", 1).await.unwrap();
    state.set("k", 2).await.unwrap();
    state.set("k", 3).await.unwrap();
    let kept = state.set("k", 4).await.unwrap();
    // Compacting etcd to `kept` drops every revision before it.
    let body = format!(r#"{{"revision":"{}","physical":true}}"#, kept.get());
    gateway_post(&endpoint, "/v3/kv/compaction", &body).await;

    for outcome in [
        state.fetch_snapshot_at(old).await.map(|_| Version::INITIAL),
        state
            .fetch_changes_since(old)
            .await
            .map(|_| Version::INITIAL),
        state.rollback(old).await,
    ] {
        match outcome {
            Err(StateError::VersionCompacted {
                target,
                oldest_retained,
            }) => {
                assert_eq!(target, old);
                assert!(oldest_retained >= kept, "{oldest_retained:?} < {kept:?}");
            }
            other => panic!("expected VersionCompacted, got {other:?}"),
        }
    }
    assert_eq!(state.get("k").as_deref(), Some(&4));
}

/// The records of one commit, comparable: key, old and new value.
type Records = Vec<(String, Option<i64>, Option<i64>)>;

fn records(set: &thread_safe_state::ChangeSet<i64>) -> Records {
    let mut records: Records = set
        .records
        .iter()
        .map(|record| {
            (
                record.key.clone(),
                record.old_value.as_deref().copied(),
                record.new_value.as_deref().copied(),
            )
        })
        .collect();
    records.sort();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_changes_since_rebuilds_the_commits_behind_the_window() {
    let Some(endpoint) = endpoint("fetch_changes_since") else {
        return;
    };
    let prefix = prefix("mvcc-changes");
    let state = connect(&endpoint, &prefix).await;
    // A handle with a window wide enough to see every commit itself.
    let witness = ThreadSafeState::<i64>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    let start = state.version();
    let mut seen = witness.changes_since(witness.version()).unwrap();
    let mut written = vec![state.update([("a", 1), ("b", 2)]).await.unwrap()];
    written.push(state.set("a", 3).await.unwrap());
    state.delete("b").await.unwrap();
    written.push(state.version());
    written.push(state.set("c", 4).await.unwrap());
    written.push(state.update([("a", 5), ("c", 6)]).await.unwrap());
    written.push(state.clear().await.unwrap());
    assert!(
        state.changes_since(start).is_err(),
        "behind the local window"
    );

    let mut changes = state.fetch_changes_since(start).await.unwrap();
    let live = state.set("d", 7).await.unwrap();
    written.push(live);
    for version in &written {
        let fetched = changes.next().await.unwrap().unwrap();
        let expected = seen.next().await.unwrap().unwrap();
        assert_eq!(fetched.version, *version);
        assert_eq!(expected.version, *version);
        assert_eq!(records(&fetched), records(&expected), "at {version:?}");
    }
    assert_eq!(changes.next_version(), live.next());
}
