//! Coordination: compare-and-set, transactions, waiting, per-key watches,
//! change streams and time travel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thread_safe_state::{
    Operation, Precondition, StateError, ThreadSafeState, TransactionError, Version, Write,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_racing_a_compare_and_set_exactly_one_wins() {
    for _ in 0..50 {
        let state = ThreadSafeState::new();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let racers: Vec<_> = ["agent-1", "agent-2"]
            .into_iter()
            .map(|agent| {
                let (state, barrier) = (state.for_agent(agent), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    state.set_if("leader", agent, Precondition::Absent).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for racer in racers {
            outcomes.push(racer.await.unwrap());
        }
        let winners: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let won_at = *winners[0].as_ref().unwrap();
        let loser = outcomes.iter().find(|o| o.is_err()).unwrap();
        assert_eq!(
            loser.as_ref().unwrap_err(),
            &StateError::Conflict {
                key: "leader".into(),
                expected: Precondition::Absent,
                found: Some(won_at),
            }
        );
        assert_eq!(
            state.version(),
            Version::new(1),
            "the loser used no version"
        );
    }
}

#[tokio::test]
async fn compare_and_set_on_modified_version() {
    let state = ThreadSafeState::new();
    let v1 = state.set("plan", 1).await.unwrap();
    let v2 = state
        .set_if("plan", 2, Precondition::ModifiedAt(v1))
        .await
        .unwrap();
    let stale = state.set_if("plan", 3, Precondition::ModifiedAt(v1)).await;
    assert_eq!(
        stale,
        Err(StateError::Conflict {
            key: "plan".into(),
            expected: Precondition::ModifiedAt(v1),
            found: Some(v2),
        })
    );
    assert!(stale
        .unwrap_err()
        .to_string()
        .contains("modified at version 1"));
    assert_eq!(state.get("plan").as_deref(), Some(&2));
    assert_eq!(
        state.set_if("other", 1, Precondition::Exists).await,
        Err(StateError::Conflict {
            key: "other".into(),
            expected: Precondition::Exists,
            found: None,
        })
    );
    let record = &state.history(None, Some(1))[0];
    assert_eq!(record.operation, Operation::Conditional);
    assert_eq!(state.metrics().failed_commands, 2);
}

#[tokio::test]
async fn delete_if_removes_only_when_the_precondition_holds() {
    let state = ThreadSafeState::new();
    let v1 = state.set("lock", "agent-1").await.unwrap();
    state.set("lock", "agent-2").await.unwrap();
    assert!(matches!(
        state.delete_if("lock", Precondition::ModifiedAt(v1)).await,
        Err(StateError::Conflict { .. })
    ));
    assert!(state.delete_if("lock", Precondition::Exists).await.unwrap());
    assert!(!state.delete_if("lock", Precondition::Absent).await.unwrap());
    assert!(state.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_under_contention_conserve_the_sum() {
    let state = ThreadSafeState::<i64>::new();
    state.update([("a", 500), ("b", 500)]).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let auditor = {
        let (state, stop) = (state.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            // Audit at least once, however fast the movers finish.
            let mut audits = 0;
            loop {
                let s = state.snapshot();
                assert_eq!(*s.get("a").unwrap() + *s.get("b").unwrap(), 1000);
                audits += 1;
                if stop.load(Ordering::Acquire) {
                    return audits;
                }
            }
        })
    };
    let movers: Vec<_> = (0..8i64)
        .map(|t| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut aborted = 0;
                for i in 0..50i64 {
                    let amount = (t * 7 + i) % 40 - 20;
                    let result = state
                        .transaction(move |s| {
                            let a = *s.get("a").unwrap();
                            let b = *s.get("b").unwrap();
                            if a - amount < 0 || b + amount < 0 {
                                return Err("insufficient");
                            }
                            Ok(vec![
                                Write::set("a", a - amount),
                                Write::set("b", b + amount),
                            ])
                        })
                        .await;
                    match result {
                        Ok(_) => {}
                        Err(TransactionError::Aborted("insufficient")) => aborted += 1,
                        Err(other) => panic!("{other:?}"),
                    }
                }
                aborted
            })
        })
        .collect();
    for mover in movers {
        mover.await.unwrap();
    }
    stop.store(true, Ordering::Release);
    assert!(auditor.join().unwrap() > 0);
    assert_eq!(*state.get("a").unwrap() + *state.get("b").unwrap(), 1000);
    let history = state.history(None, Some(2));
    assert!(history
        .iter()
        .all(|r| r.operation == Operation::Transaction));
}

#[tokio::test]
async fn an_aborted_or_panicking_transaction_writes_nothing() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let aborted = state
        .transaction(|_| Err::<Vec<Write<i32>>, _>(String::from("no thanks")))
        .await;
    assert_eq!(
        aborted,
        Err(TransactionError::Aborted("no thanks".to_string()))
    );
    assert_eq!(
        aborted.unwrap_err().to_string(),
        "transaction aborted: no thanks"
    );

    let panicked = state
        .transaction(|_| -> Result<Vec<Write<i32>>, ()> { panic!("bug in agent") })
        .await;
    assert_eq!(
        panicked,
        Err(TransactionError::State(StateError::TransactionPanicked {
            message: "bug in agent".into()
        }))
    );

    let empty_key = state
        .transaction(|_| Ok::<_, ()>(vec![Write::set("ok", 1), Write::set("", 2)]))
        .await;
    assert_eq!(
        empty_key,
        Err(TransactionError::State(StateError::EmptyKey))
    );

    assert_eq!(state.version(), Version::new(1));
    assert_eq!(state.keys(), ["a"]);
    // The writer still serves.
    let v = state
        .transaction(|s| Ok::<_, ()>(vec![Write::set("b", *s.get("a").unwrap() + 1)]))
        .await
        .unwrap();
    assert_eq!(v, Version::new(2));
    assert_eq!(state.get("b").as_deref(), Some(&2));
}

#[tokio::test]
async fn a_transaction_that_changes_nothing_commits_nothing() {
    let state = ThreadSafeState::<u8>::new();
    let v = state
        .transaction(|_| Ok::<_, ()>(vec![Write::delete("absent")]))
        .await
        .unwrap();
    assert_eq!(v, Version::INITIAL);
    assert!(state.history(None, None).is_empty());
}

#[tokio::test]
async fn wait_for_resolves_on_the_right_version() {
    let state = ThreadSafeState::new();
    state.set("done", 0).await.unwrap();
    // Already true: resolves with the current snapshot.
    let now = state.wait_for(|s| s.contains_key("done")).await.unwrap();
    assert_eq!(now.version(), Version::new(1));

    let writer = state.clone();
    let waiting = tokio::spawn({
        let state = state.clone();
        async move {
            state
                .wait_for(|s| s.get("done").is_some_and(|n| *n >= 3))
                .await
        }
    });
    for i in 1..=5 {
        writer.set("done", i).await.unwrap();
    }
    let seen = waiting.await.unwrap().unwrap();
    assert!(*seen.get("done").unwrap() >= 3);
    assert_eq!(seen.version().get(), 1 + *seen.get("done").unwrap() as u64);
}

#[tokio::test(start_paused = true)]
async fn wait_for_timeout_reports_the_last_version_seen() {
    let state = ThreadSafeState::new();
    state.set("phase", "parse").await.unwrap();
    let error = state
        .wait_for_timeout(|s| s.contains_key("never"), Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StateError::Timeout {
            waited: Duration::from_secs(30),
            last_seen: Version::new(1),
        }
    );
    let ok = state
        .wait_for_timeout(|s| s.contains_key("phase"), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(ok.version(), Version::new(1));
}

#[tokio::test(start_paused = true)]
async fn a_key_watch_does_not_wake_for_other_keys() {
    let state = ThreadSafeState::new();
    let mut completed = state.watch_key("completed_agents");
    state.set("unrelated", 1).await.unwrap();
    state
        .update([("also_unrelated", 2), ("more", 3)])
        .await
        .unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(60), completed.changed()).await;
    assert!(woke.is_err(), "woke for another key: {woke:?}");

    state.set("completed_agents", 1).await.unwrap();
    assert_eq!(completed.changed().await.unwrap().as_deref(), Some(&1));
    state.delete("completed_agents").await.unwrap();
    assert_eq!(completed.changed().await.unwrap(), None);
    drop(state);
    assert_eq!(completed.changed().await, Err(StateError::Closed));
}

/// Collect `count` change sets from a stream.
async fn take(
    stream: &mut thread_safe_state::ChangeStream<u64>,
    count: usize,
) -> Vec<thread_safe_state::ChangeSet<u64>> {
    let mut sets = Vec::new();
    for _ in 0..count {
        sets.push(stream.next().await.expect("stream open").expect("no error"));
    }
    sets
}

fn versions(sets: &[thread_safe_state::ChangeSet<u64>]) -> Vec<u64> {
    sets.iter().map(|s| s.version.get()).collect()
}

#[tokio::test]
async fn change_streams_start_at_each_edge_of_the_retention_window() {
    let state = ThreadSafeState::builder().max_history(3).build();
    for i in 1..=10u64 {
        state.set(format!("k{i}"), i).await.unwrap();
    }
    // Oldest retained is 7: commits 8, 9, 10 are in the history.
    let mut from_oldest = state.changes_since(Version::new(7)).unwrap();
    let mut from_current = state.changes_since(Version::new(10)).unwrap();
    assert_eq!(
        state.changes_since(Version::new(6)).unwrap_err(),
        StateError::VersionCompacted {
            target: Version::new(6),
            oldest_retained: Version::new(7),
        }
    );
    assert_eq!(
        state.changes_since(Version::new(11)).unwrap_err(),
        StateError::FutureVersion {
            target: Version::new(11),
            current: Version::new(10),
        }
    );
    state.set("k11", 11).await.unwrap();
    let sets = take(&mut from_oldest, 4).await;
    assert_eq!(versions(&sets), [8, 9, 10, 11]);
    assert_eq!(sets[0].records[0].key, "k8");
    assert_eq!(versions(&take(&mut from_current, 1).await), [11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_during_writes_delivers_every_version_once_in_order() {
    const WRITES: u64 = 2000;
    // Room for every write, so a consumer starved by the scheduler cannot
    // lag: this test is about order and repeats, not back-pressure.
    let state = ThreadSafeState::<u64>::builder()
        .change_stream_capacity(WRITES as usize)
        .build();
    let writer = tokio::spawn({
        let state = state.clone();
        async move {
            for i in 0..WRITES {
                let batch = [(format!("a{}", i % 10), i), ("b".to_string(), i)];
                state.update(batch).await.unwrap();
            }
        }
    });
    tokio::task::yield_now().await;
    // Opened while the writer runs, read while it runs.
    let start = state.version();
    let mut stream = state.changes_since(start).unwrap();
    let mut sets = Vec::new();
    while sets
        .last()
        .is_none_or(|s: &thread_safe_state::ChangeSet<u64>| s.version.get() < WRITES)
    {
        sets.push(stream.next().await.unwrap().unwrap());
    }
    writer.await.unwrap();
    let want: Vec<u64> = (start.get() + 1..=WRITES).collect();
    assert_eq!(
        versions(&sets),
        want,
        "versions out of order, repeated or missing"
    );
    assert!(
        sets.iter().all(|s| s.records.len() == 2),
        "a version was split"
    );
}

#[tokio::test]
async fn a_consumer_that_falls_behind_gets_lagged_with_the_resume_point() {
    let state = ThreadSafeState::builder().change_stream_capacity(2).build();
    let mut slow = state.changes_since(Version::INITIAL).unwrap();
    for i in 1..=10u64 {
        state.set("k", i).await.unwrap(); // each its own group commit
    }
    let mut delivered = Vec::new();
    let resume_from = loop {
        match slow.next().await.unwrap() {
            Ok(set) => delivered.push(set.version.get()),
            Err(StateError::Lagged { resume_from }) => break resume_from,
            Err(other) => panic!("{other:?}"),
        }
    };
    assert!(slow.next().await.is_none(), "a lagged stream ends");
    assert_eq!(resume_from.get(), delivered.len() as u64 + 1);
    // Nothing was skipped: resuming from the history fills the gap.
    let mut resumed = state.changes_from(resume_from).unwrap();
    let rest = take(&mut resumed, (11 - resume_from.get()) as usize).await;
    delivered.extend(versions(&rest));
    assert_eq!(delivered, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn streams_and_subscribers_dropped_mid_stream_do_not_disturb_the_writer() {
    let state = ThreadSafeState::<u64>::new();
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    let subscriber = state.subscribe();
    state.set("a", 1).await.unwrap();
    assert_eq!(versions(&take(&mut stream, 1).await), [1]);
    drop(stream);
    drop(subscriber);
    assert_eq!(state.set("a", 2).await.unwrap(), Version::new(2));
}

#[tokio::test]
async fn a_stream_ends_when_the_state_is_dropped() {
    let state = ThreadSafeState::<u64>::new();
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    state.set("a", 1).await.unwrap();
    drop(state);
    assert_eq!(versions(&take(&mut stream, 1).await), [1]);
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn streams_carry_rollbacks_as_one_change_set() {
    let state = ThreadSafeState::<u64>::new();
    let v1 = state.update([("a", 1), ("b", 1)]).await.unwrap();
    let mut stream = state.changes_since(v1).unwrap();
    state.update([("a", 2), ("b", 2), ("c", 2)]).await.unwrap();
    state.rollback(v1).await.unwrap();
    let sets = take(&mut stream, 2).await;
    assert_eq!(sets[1].operation, Operation::Rollback);
    let keys: Vec<&str> = sets[1].records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
}

#[tokio::test]
async fn snapshot_at_reads_every_retained_version_including_grouped_ones() {
    let state = ThreadSafeState::<u64>::builder().max_history(50).build();
    // Queue ten writes before the writer runs: one group commit.
    let writes: Vec<_> = (1..=10u64)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { state.set("k", i).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    for v in 1..=10u64 {
        let then = state.snapshot_at(Version::new(v)).unwrap();
        assert_eq!(then.version(), Version::new(v));
        assert_eq!(then.get("k").as_deref(), Some(&v));
        assert_eq!(then.modified_version("k"), Some(Version::new(v)));
    }
    assert!(state.snapshot_at(Version::INITIAL).unwrap().is_empty());
    assert!(matches!(
        state.snapshot_at(Version::new(11)),
        Err(StateError::FutureVersion { .. })
    ));
}

#[tokio::test]
async fn snapshot_at_names_the_oldest_version_past_the_window() {
    let state = ThreadSafeState::builder().max_history(2).build();
    for i in 0..5 {
        state.set("k", i).await.unwrap();
    }
    assert_eq!(
        state.snapshot_at(Version::new(2)).unwrap_err(),
        StateError::VersionCompacted {
            target: Version::new(2),
            oldest_retained: Version::new(3),
        }
    );
    assert_eq!(
        state
            .snapshot_at(Version::new(3))
            .unwrap()
            .get("k")
            .as_deref(),
        Some(&2)
    );
}
