//! The etcd backend against a real etcd (feature `etcd`).
//!
//! Most tests use the server at `TSS_ETCD_ENDPOINT` (`.ci/run` starts one);
//! each works under a prefix of its own. Unset, they fail under CI
//! (`CI=true`) and print a note and pass locally. The restart test starts
//! and stops an etcd of its own (the `etcd` binary, or `TSS_ETCD_BIN`).
//! Several handles on one prefix come from separate `connect()`s, with
//! separate clients and mirrors, as two processes would have.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::etcd::{caught_up, connect, connect_retrying, endpoint, gateway_post, prefix, OwnEtcd};
use thread_safe_state::{
    Operation, Precondition, StateError, ThreadSafeState, TransactionError, Version, Write,
};

fn contents(state: &ThreadSafeState<i64>) -> BTreeMap<String, (i64, Version, Version)> {
    let snapshot = state.snapshot();
    snapshot
        .keys()
        .map(|key| {
            let entry = snapshot.entry(key).unwrap();
            (
                key.to_owned(),
                (**entry.value(), entry.created(), entry.modified()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_see_each_others_writes() {
    let Some(endpoint) = endpoint("two_handles_see_each_others_writes") else {
        return;
    };
    let prefix = prefix("two-handles");
    let a = connect(&endpoint, &prefix).await.for_agent("a");
    let b = connect(&endpoint, &prefix).await.for_agent("b");

    let v1 = a.set("x", 1).await.unwrap();
    // Read-your-writes on the writer's handle: published before the reply.
    assert!(a.version() >= v1);
    assert_eq!(a.get("x").as_deref(), Some(&1));
    caught_up(&b, v1).await;
    assert_eq!(b.get("x").as_deref(), Some(&1));
    // The same per-key versions (etcd's revisions) on both.
    assert_eq!(b.snapshot().modified_version("x"), Some(v1));
    assert_eq!(b.snapshot().created_version("x"), Some(v1));

    let v2 = b.update([("y", 2), ("z", 3)]).await.unwrap();
    assert!(v2 > v1);
    caught_up(&a, v2).await;
    assert_eq!(contents(&a), contents(&b));

    // The writer's own history names the operation and agent; the other
    // handle sees a commit it did not make.
    let ours = &b.history(Some("y"), Some(1))[0];
    assert_eq!((ours.version, ours.operation), (v2, Operation::Update));
    let theirs = &a.history(Some("y"), Some(1))[0];
    assert_eq!(
        (theirs.version, theirs.operation),
        (v2, Operation::External)
    );

    assert!(a.delete("x").await.unwrap());
    assert!(
        !a.delete("x").await.unwrap(),
        "deleting an absent key commits nothing"
    );
    let v3 = a.clear().await.unwrap();
    caught_up(&b, v3).await;
    assert!(b.is_empty());
    // snapshot_at between revisions: the state at the older commit.
    let at = b.snapshot_at(Version::new(v2.get())).unwrap();
    assert_eq!(at.get("z").as_deref(), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_race_across_handles_has_exactly_one_winner() {
    let Some(endpoint) = endpoint("a_cas_race_across_handles_has_exactly_one_winner") else {
        return;
    };
    let prefix = prefix("cas");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    for round in 0..20 {
        let key = format!("leader-{round}");
        let (x, y) = tokio::join!(
            a.set_if(&key, 1, Precondition::Absent),
            b.set_if(&key, 2, Precondition::Absent)
        );
        let winners = [&x, &y].iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {x:?} {y:?}");
        let won = x.as_ref().or(y.as_ref()).copied().unwrap();
        for lost in [x, y].into_iter().filter_map(Result::err) {
            assert!(
                matches!(lost, StateError::Conflict { found: Some(v), expected: Precondition::Absent, .. } if v == won),
                "{lost:?}"
            );
        }
        // A stale token fails too, a fresh one wins.
        caught_up(&a, won).await;
        let token = a.snapshot().modified_version(&key).unwrap();
        let next = a
            .set_if(&key, 3, Precondition::ModifiedAt(token))
            .await
            .unwrap();
        let stale = b.set_if(&key, 4, Precondition::ModifiedAt(token)).await;
        assert!(
            matches!(stale, Err(StateError::Conflict { .. })),
            "{stale:?}"
        );
        caught_up(&b, next).await;
        b.delete_if(&key, Precondition::ModifiedAt(next))
            .await
            .unwrap();
    }
}

/// Move `amount` from one account to another, retrying on conflict: the
/// closure runs once per attempt, on the mirror's newest snapshot.
async fn transfer(state: &ThreadSafeState<i64>, from: String, to: String, amount: i64) -> u32 {
    let mut conflicts = 0;
    loop {
        let (f, t) = (from.clone(), to.clone());
        let result = state
            .transaction(move |snapshot| {
                let a = snapshot.get(&f).map_or(0, |v| *v);
                let b = snapshot.get(&t).map_or(0, |v| *v);
                if a < amount {
                    return Err("insufficient");
                }
                Ok(vec![Write::set(f, a - amount), Write::set(t, b + amount)])
            })
            .await;
        match result {
            Ok(_) | Err(TransactionError::Aborted(_)) => return conflicts,
            Err(TransactionError::State(StateError::Conflict { .. })) => conflicts += 1,
            Err(error) => panic!("{error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_workload_across_handles_conserves_the_sum() {
    let Some(endpoint) = endpoint("a_transfer_workload_across_handles_conserves_the_sum") else {
        return;
    };
    let prefix = prefix("transfer");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    const ACCOUNTS: usize = 4;
    let v = a
        .update((0..ACCOUNTS).map(|i| (format!("acct{i}"), 100)))
        .await
        .unwrap();
    caught_up(&b, v).await;
    let mut tasks = Vec::new();
    for (worker, state) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..25 {
                let from = format!("acct{}", (worker + i) % ACCOUNTS);
                let to = format!("acct{}", (worker + 2 * i + 1) % ACCOUNTS);
                if from != to {
                    conflicts += transfer(&state, from, to, 7).await;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    eprintln!("transfers retried {conflicts} conflicts");
    let newest = a.version().max(b.version());
    caught_up(&a, newest).await;
    caught_up(&b, newest).await;
    for state in [&a, &b] {
        let sum: i64 = (0..ACCOUNTS)
            .map(|i| *state.get(&format!("acct{i}")).unwrap())
            .sum();
        assert_eq!(sum, 100 * ACCOUNTS as i64);
    }
    assert_eq!(contents(&a), contents(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_stream_sees_every_revision_in_order() {
    let Some(endpoint) = endpoint("a_change_stream_sees_every_revision_in_order") else {
        return;
    };
    let prefix = prefix("stream");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    let mut stream = b.changes_since(b.version()).unwrap();
    let mut written = Vec::new();
    for i in 0..50 {
        let version = if i % 2 == 0 { &a } else { &b }
            .set(format!("k{}", i % 7), i)
            .await
            .unwrap();
        written.push(version);
    }
    written.sort();
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let set = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream delivers")
            .unwrap()
            .unwrap();
        assert_eq!(set.records.len(), 1);
        seen.push(set.version);
    }
    assert_eq!(seen, written, "every revision, once, in order");
    // The history window has them too, and snapshot_at each one works.
    let history: Vec<Version> = b
        .history(None, None)
        .iter()
        .rev()
        .map(|r| r.version)
        .collect();
    assert_eq!(history, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_limits_are_typed_errors_before_sending() {
    let Some(endpoint) = endpoint("etcd_limits_are_typed_errors_before_sending") else {
        return;
    };
    let prefix = prefix("limits");
    let state = ThreadSafeState::<String>::builder()
        .etcd([endpoint.as_str()], prefix.as_str())
        .connect()
        .await
        .unwrap();
    let many = state
        .update((0..129).map(|i| (format!("k{i}"), String::new())))
        .await;
    assert!(
        matches!(
            many,
            Err(StateError::TooManyOperations {
                operations: 129,
                limit: 128
            })
        ),
        "{many:?}"
    );
    let big = state.set("big", "x".repeat(2 << 20)).await;
    assert!(
        matches!(big, Err(StateError::RequestTooLarge { .. })),
        "{big:?}"
    );
    assert!(state.is_empty());
    // At the limit it goes through.
    state
        .update((0..128).map(|i| (format!("k{i}"), String::new())))
        .await
        .unwrap();
    assert_eq!(state.len(), 128);
    // retain deletes the ranges between kept keys, atomically.
    state.retain(["k5", "k77"]).await.unwrap();
    let mut keys = state.keys();
    keys.sort();
    assert_eq!(keys, ["k5", "k77"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn modify_and_rollback_compare_on_revisions() {
    let Some(endpoint) = endpoint("modify_and_rollback_compare_on_revisions") else {
        return;
    };
    let prefix = prefix("modify");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    let incremented = a
        .modify("n", |n| {
            thread_safe_state::Modification::Set(n.copied().unwrap_or(0) + 1)
        })
        .await
        .unwrap();
    assert_eq!(incremented.value.as_deref(), Some(&1));
    let v1 = incremented.version;
    let v2 = a.set("n", 10).await.unwrap();
    a.set("m", 5).await.unwrap();
    let back = a.rollback(v1).await.unwrap();
    assert_eq!(a.get("n").as_deref(), Some(&1));
    assert!(!a.contains_key("m"));
    assert!(back > v2);
    caught_up(&b, back).await;
    assert_eq!(contents(&a), contents(&b));
    // A modify whose snapshot went stale before its txn conflicts: b
    // writes between the closure's read and a's commit. (The closure runs
    // once; the caller retries with a new one.)
    let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let modifying = tokio::spawn({
        let a = a.clone();
        async move {
            a.modify("n", move |n| {
                read_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                thread_safe_state::Modification::Set(n.copied().unwrap_or(0) + 1)
            })
            .await
        }
    });
    tokio::task::spawn_blocking(move || read_rx.recv().unwrap())
        .await
        .unwrap();
    let theirs = b.set("n", 100).await.unwrap();
    go_tx.send(()).unwrap();
    let lost = modifying.await.unwrap();
    assert!(
        matches!(&lost, Err(StateError::Conflict { key, found: Some(found), .. }) if key == "n" && *found == theirs),
        "{lost:?}"
    );
    caught_up(&a, theirs).await;
    let retried = a
        .modify("n", |n| {
            thread_safe_state::Modification::Set(n.copied().unwrap_or(0) + 1)
        })
        .await
        .unwrap();
    assert_eq!(retried.value.as_deref(), Some(&101));
    let stale = b.set_if("n", 1, Precondition::ModifiedAt(v1)).await;
    assert!(matches!(stale, Err(StateError::Conflict { .. })));
}

/// Compact the server's history up to `revision`.
async fn compact(endpoint: &str, revision: Version) {
    let body = format!(r#"{{"revision":"{}","physical":true}}"#, revision.get());
    gateway_post(endpoint, "/v3/kv/compaction", &body).await;
}

/// A TCP proxy in front of etcd that the test can cut: the mirror behind
/// it loses its watch, and comes back to a compacted revision.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, c) = (Arc::clone(&open), Arc::clone(&connections));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_behind_relists_without_gap_or_duplicate() {
    let Some(endpoint) = endpoint("compaction_while_behind_relists_without_gap_or_duplicate")
    else {
        return;
    };
    let prefix = prefix("compaction");
    let writer = connect(&endpoint, &prefix).await;
    writer
        .update([("keep", 1), ("change", 1), ("remove", 1)])
        .await
        .unwrap();
    let proxy = Proxy::start(endpoint.clone()).await;
    let behind = connect(&format!("http://127.0.0.1:{}", proxy.port), &prefix).await;
    let start = behind.version();
    let before = behind.snapshot();
    let mut stream = behind.changes_since(start).unwrap();

    proxy.cut();
    writer.set("change", 2).await.unwrap();
    writer.delete("remove").await.unwrap();
    writer.set("new", 3).await.unwrap();
    writer.set("change", 4).await.unwrap();
    writer.set("gone", 5).await.unwrap();
    let last = writer
        .delete("gone")
        .await
        .map(|_| writer.version())
        .unwrap();
    // Compact everything the behind mirror has not seen.
    compact(&endpoint, last).await;
    proxy.restore();

    caught_up(&behind, last).await;
    assert_eq!(contents(&behind), contents(&writer));
    // The relist is one commit of the differences: no gap (replaying the
    // stream over the old snapshot gives the new state), no duplicate.
    let mut replayed: BTreeMap<String, i64> =
        before.iter().map(|(k, v)| (k.to_owned(), **v)).collect();
    let mut versions = Vec::new();
    while behind.version() > versions.last().copied().unwrap_or(start) {
        let set = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        versions.push(set.version);
        for record in set.records {
            match record.new_value {
                Some(value) => replayed.insert(record.key, *value),
                None => replayed.remove(&record.key),
            };
        }
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let now: BTreeMap<String, i64> = contents(&behind)
        .into_iter()
        .map(|(k, (v, ..))| (k, v))
        .collect();
    assert_eq!(replayed, now);
    assert!(
        versions.len() < 6,
        "the missed revisions were folded into a relist: {versions:?}"
    );
    let relist = behind.history(None, Some(1));
    assert!(relist.iter().all(|r| r.operation == Operation::External));
    // Writes through the resynced handle work as before.
    let v = behind.set("after", 6).await.unwrap();
    caught_up(&writer, v).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restarted_mid_load_loses_no_acknowledged_write() {
    let Some(mut etcd) = OwnEtcd::start("etcd_restarted_mid_load_loses_no_acknowledged_write")
    else {
        return;
    };
    let prefix = prefix("restart");
    let state = connect_retrying(&etcd.endpoint(), &prefix).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (state, stop) = (state.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut done = Vec::new();
            let mut failed = Vec::new();
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                match state.set(format!("w{i}"), i).await {
                    Ok(version) => done.push((i, version)),
                    Err(error) => {
                        failed.push(error);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
            (done, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Reads keep serving the last snapshot during the outage.
    let during = state.version();
    assert!(!state.is_empty());
    etcd.spawn();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let (done, failed) = load.await.unwrap();
    eprintln!(
        "{} writes acknowledged, {} failed during the outage",
        done.len(),
        failed.len()
    );
    assert!(!failed.is_empty(), "the outage was seen");
    for error in &failed {
        assert!(
            matches!(
                error,
                StateError::OutcomeUnknown { .. } | StateError::EtcdRejected { .. }
            ),
            "{error:?}"
        );
    }
    assert!(
        done.iter().any(|(_, version)| *version > during),
        "writes resumed after the restart"
    );
    // The mirror resynced: a fresh handle lists exactly what it shows, and
    // every acknowledged write is there with its revision.
    let fresh = connect_retrying(&etcd.endpoint(), &prefix).await;
    caught_up(&state, fresh.version()).await;
    assert_eq!(contents(&state), contents(&fresh));
    for (i, version) in done {
        let snapshot = fresh.snapshot();
        assert_eq!(
            snapshot.get(&format!("w{i}")).as_deref(),
            Some(&i),
            "acknowledged write w{i} is missing"
        );
        assert_eq!(snapshot.modified_version(&format!("w{i}")), Some(version));
    }
}

/// Closures that panic, keep, delete or abort, and rollbacks that cannot
/// happen: each has the same outcome as in memory, and nothing reaches etcd
/// that should not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_and_rollbacks_fail_and_keep_as_in_memory() {
    let Some(endpoint) = endpoint("closures_and_rollbacks") else {
        return;
    };
    let prefix = prefix("closures");
    let state = connect(&endpoint, &prefix).await;
    let v1 = state.set("k", 1).await.unwrap();

    let panicked = state
        .modify(
            "k",
            |_: Option<&i64>| -> thread_safe_state::Modification<i64> { panic!("no") },
        )
        .await;
    assert!(
        matches!(panicked, Err(StateError::ModifyPanicked { .. })),
        "{panicked:?}"
    );
    let kept = state
        .modify("k", |_: Option<&i64>| thread_safe_state::Modification::Keep)
        .await
        .unwrap();
    assert_eq!((kept.version, kept.value.as_deref()), (v1, Some(&1)));
    let absent = state
        .modify("missing", |_: Option<&i64>| {
            thread_safe_state::Modification::Delete
        })
        .await
        .unwrap();
    assert_eq!(absent.version, v1);
    let deleted = state
        .modify("k", |_: Option<&i64>| {
            thread_safe_state::Modification::Delete
        })
        .await
        .unwrap();
    assert!(deleted.version > v1);
    assert_eq!(state.get("k"), None);

    let v = state.set("t", 5).await.unwrap();
    let panicked = state
        .transaction(|_| -> Result<Vec<thread_safe_state::Write<i64>>, String> { panic!("boom") })
        .await;
    assert!(panicked.is_err(), "{panicked:?}");
    let aborted = state
        .transaction(|_| Err::<Vec<thread_safe_state::Write<i64>>, _>("no".to_string()))
        .await;
    assert!(
        matches!(
            aborted,
            Err(thread_safe_state::TransactionError::Aborted(_))
        ),
        "{aborted:?}"
    );
    let nothing = state
        .transaction(|_| Ok::<_, String>(Vec::new()))
        .await
        .unwrap();
    assert_eq!(nothing, v);
    let empty = state
        .transaction(|_| Ok::<_, String>(vec![thread_safe_state::Write::set("", 1)]))
        .await;
    assert!(empty.is_err(), "{empty:?}");
    assert_eq!(state.version(), v);

    let now = state.version();
    assert!(matches!(
        state.rollback(now).await,
        Err(StateError::InvalidVersion { .. })
    ));
    // Back to the version where t was 5, through the recovery helper's
    // compare on the current version.
    state.set("t", 6).await.unwrap();
    let restored = state
        .rollback_to_last_good(|snapshot| snapshot.get("t").as_deref() == Some(&5))
        .await
        .unwrap();
    caught_up(&state, restored).await;
    assert_eq!(state.get("t").as_deref(), Some(&5));
    state.close().await.unwrap();
}

/// Closures of one handle never conflict with each other, as in memory:
/// a `modify` or `transaction` waits until the handle's earlier writes are
/// mirrored, so each is planned on a snapshot that includes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_handles_closures_do_not_conflict_with_each_other() {
    let Some(endpoint) = endpoint("one_handles_closures") else {
        return;
    };
    let prefix = prefix("closures-one-handle");
    let state = connect(&endpoint, &prefix).await;
    let mut tasks = Vec::new();
    for i in 0..48 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // Plain sets in between keep txns in flight.
                0 => state.set(format!("s{i}"), i).await.map(|_| ()),
                1 => state
                    .modify("counter", |now: Option<&i64>| {
                        thread_safe_state::Modification::Set(now.copied().unwrap_or(0) + 1)
                    })
                    .await
                    .map(|_| ()),
                _ => state
                    .transaction(|snapshot| {
                        let now = snapshot.get("total").as_deref().copied().unwrap_or(0);
                        Ok::<_, String>(vec![Write::set("total", now + 10)])
                    })
                    .await
                    .map(|_| ())
                    .map_err(|error| match error {
                        TransactionError::State(error) => error,
                        other => panic!("{other}"),
                    }),
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("no conflict within one handle");
    }
    assert_eq!(state.get("counter").as_deref(), Some(&16));
    assert_eq!(state.get("total").as_deref(), Some(&160));
    state.close().await.unwrap();
}

/// `modify_retrying` and `transaction_retrying` on two handles racing on
/// one key: every call commits, none is lost, and each retry ran on a
/// state that included the write that beat it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_closures_on_two_handles_all_commit() {
    let Some(endpoint) = endpoint("retrying_closures") else {
        return;
    };
    let prefix = prefix("retrying");
    let a = connect(&endpoint, &prefix).await;
    let b = connect(&endpoint, &prefix).await;
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let state = if i % 2 == 0 { a.clone() } else { b.clone() };
        let runs = Arc::clone(&runs);
        tasks.push(tokio::spawn(async move {
            if i % 4 < 2 {
                state
                    .modify_retrying("counter", move |now: Option<&i64>| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        thread_safe_state::Modification::Set(now.copied().unwrap_or(0) + 1)
                    })
                    .await
                    .map(|modified| modified.version)
            } else {
                state
                    .transaction_retrying(move |snapshot| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        let counter = snapshot.get("counter").as_deref().copied().unwrap_or(0);
                        let moved = snapshot.get("moved").as_deref().copied().unwrap_or(0);
                        Ok::<_, String>(vec![
                            Write::set("counter", counter + 1),
                            Write::set("moved", moved + 1),
                        ])
                    })
                    .await
                    .map_err(|error| match error {
                        TransactionError::State(error) => error,
                        other => panic!("{other}"),
                    })
            }
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().expect("a retrying closure commits"));
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 32, "each call has its own revision");
    let last = *versions.last().unwrap();
    caught_up(&a, last).await;
    caught_up(&b, last).await;
    for state in [&a, &b] {
        assert_eq!(state.get("counter").as_deref(), Some(&32));
        assert_eq!(state.get("moved").as_deref(), Some(&16));
    }
    eprintln!(
        "32 calls on two handles ran their closures {} times",
        runs.load(Ordering::Relaxed)
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}
