//! `rollback_to_last_good`: the search, its outcomes, and what it does when
//! other writes commit while its predicate runs. Deterministic: writes that
//! must land "during" the search are made by the predicate itself, or
//! while the predicate is provably blocked; no sleeps.
mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use common::{queued, Gate};
use thread_safe_state::{Modification, Operation, Snapshot, StateError, ThreadSafeState, Version};

type State = ThreadSafeState<&'static str>;

fn phase_ok(snapshot: &Snapshot<&'static str>) -> bool {
    snapshot.get("phase").as_deref() == Some(&"ok")
}

fn contents(snapshot: &Snapshot<&'static str>) -> BTreeMap<String, &'static str> {
    snapshot.iter().map(|(k, v)| (k.to_owned(), **v)).collect()
}

/// v1 `phase = ok`, v2 `phase = failed`.
async fn ok_then_failed() -> State {
    let state = ThreadSafeState::new();
    state.set("phase", "ok").await.unwrap();
    state.set("phase", "failed").await.unwrap();
    state
}

/// A write to `key` from another thread, joined: when it returns, the write
/// is committed and published.
fn write_from_another_thread(state: &State, key: &'static str) -> Version {
    let state = state.clone();
    std::thread::spawn(move || state.blocking().set(key, "written during the search"))
        .join()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn rolls_back_to_the_newest_good_version() {
    let state = ThreadSafeState::new();
    state
        .update([("phase", "ok"), ("files", "one")])
        .await
        .unwrap();
    let good = state
        .update([("phase", "ok"), ("files", "two")])
        .await
        .unwrap();
    state.set("phase", "failed").await.unwrap();
    state.set("junk", "partial output").await.unwrap();

    let mut seen = Vec::new();
    let recovered = state
        .rollback_to_last_good(|s| {
            seen.push(s.version().get());
            phase_ok(s)
        })
        .await
        .unwrap();

    // Newest first, stopping at the first good one (v2, not v1).
    assert_eq!(seen, [4, 3, 2]);
    assert_eq!(recovered, Version::new(5));
    assert_eq!(state.version(), recovered);
    assert_eq!(
        contents(&state.snapshot()),
        contents(&state.snapshot_at(good).unwrap())
    );
    let records = state.history(None, Some(2));
    assert!(records.iter().all(|r| r.operation == Operation::Rollback));
    assert!(records.iter().all(|r| r.version == recovered));
    assert_eq!(state.metrics().rollbacks, 1);
}

#[tokio::test]
async fn a_good_current_version_commits_nothing() {
    let state = ThreadSafeState::new();
    state.set("phase", "failed").await.unwrap();
    let current = state.set("phase", "ok").await.unwrap();
    let commits = state.metrics().commits;

    let mut calls = 0;
    let recovered = state
        .rollback_to_last_good(|s| {
            calls += 1;
            phase_ok(s)
        })
        .await
        .unwrap();

    assert_eq!(recovered, current);
    assert_eq!(calls, 1, "only the current version is looked at");
    assert_eq!(state.version(), current);
    assert_eq!(state.metrics().commits, commits);
    assert_eq!(state.metrics().rollbacks, 0);
    assert_eq!(state.history(None, None).len(), 2);
}

#[tokio::test]
async fn no_good_version_names_the_oldest_retained_one() {
    let state = ThreadSafeState::builder().max_history(3).build();
    for _ in 0..6 {
        state
            .modify("phase", |_| Modification::Set("failed"))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let error = state
        .rollback_to_last_good(|s| {
            seen.push(s.version().get());
            phase_ok(s)
        })
        .await
        .unwrap_err();

    assert_eq!(
        error,
        StateError::NoGoodVersion {
            oldest_retained: Version::new(3),
            current: Version::new(6),
        }
    );
    assert_eq!(seen, [6, 5, 4, 3], "every retained version, and no other");
    assert!(error.to_string().contains("raise max_history"), "{error}");
    assert_eq!(state.version(), Version::new(6), "nothing committed");

    // The blocking form agrees.
    let blocking = state.clone();
    let error =
        tokio::task::spawn_blocking(move || blocking.blocking().rollback_to_last_good(phase_ok))
            .await
            .unwrap()
            .unwrap_err();
    assert!(matches!(error, StateError::NoGoodVersion { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_predicate_runs_outside_the_writer() {
    let state = ok_then_failed().await;
    let (entered_tx, entered) = tokio::sync::oneshot::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();

    // While the predicate is blocked, another task writes. If the predicate
    // ran in the writer, this set could not complete: the timeout turns
    // that into a failure instead of a hang.
    let writer = state.clone();
    let concurrent = tokio::spawn(async move {
        entered.await.unwrap();
        let set = tokio::time::timeout(Duration::from_secs(30), writer.set("heartbeat", "beat"));
        let outcome = set.await;
        release.send(()).unwrap();
        outcome
    });

    let mut entered_tx = Some(entered_tx);
    let mut seen = Vec::new();
    let recovered = state
        .rollback_to_last_good(|s| {
            if let Some(entered) = entered_tx.take() {
                entered.send(()).unwrap();
                release_rx.recv().unwrap();
            }
            seen.push(s.version().get());
            phase_ok(s)
        })
        .await
        .unwrap();

    let set = concurrent.await.unwrap();
    assert_eq!(
        set.expect("a set completes while the predicate blocks"),
        Ok(Version::new(3))
    );
    // The heartbeat committed after the first search began, so that
    // search's rollback was refused and the search ran again from v3.
    assert_eq!(seen, [2, 1, 3, 2, 1]);
    assert_eq!(recovered, Version::new(4));
    assert_eq!(state.get("phase").as_deref(), Some(&"ok"));
}

/// The concurrency test. The predicate, on its first call (on v2), makes a
/// write to another key (v3) and waits for it, so the rollback decided by
/// that first search (to v1, on the belief that v2 is current) reaches the
/// writer after v3 committed.
///
/// What the design guarantees: the rollback is conditional on the current
/// version being the one the search started from, so the writer refuses
/// it, and the search runs again from v3. The predicate is shown v3 (with
/// the write) and rejects it (the phase is still "failed"); the rollback it
/// then decides removes the write, but only after the predicate saw it, and
/// the removal is a recorded change of the rollback, not a silent loss.
/// (The other outcome, the write kept, is what happens when the new
/// version passes: see the next test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_the_search_is_seen_before_it_is_rolled_back() {
    let state = ok_then_failed().await;
    let mut written = None;
    let mut seen = Vec::new();
    let recovered = state
        .rollback_to_last_good(|s| {
            if written.is_none() {
                written = Some(write_from_another_thread(&state, "other"));
            }
            seen.push((s.version().get(), s.contains_key("other")));
            phase_ok(s)
        })
        .await
        .unwrap();

    assert_eq!(written, Some(Version::new(3)));
    // First search from v2 (refused), second from v3, which holds the write.
    assert_eq!(
        seen,
        [(2, false), (1, false), (3, true), (2, false), (1, false)]
    );
    // One rollback, to v1, decided on v3.
    assert_eq!(recovered, Version::new(4));
    assert_eq!(state.metrics().rollbacks, 1);
    assert_eq!(state.get("phase").as_deref(), Some(&"ok"));
    assert!(!state.contains_key("other"));
    let removal = &state.history(Some("other"), Some(1))[0];
    assert_eq!(
        (removal.version, removal.operation),
        (recovered, Operation::Rollback)
    );
    assert_eq!(
        removal.old_value.as_deref(),
        Some(&"written during the search")
    );
    // The refused attempt is a failed command, not a commit.
    assert_eq!(state.metrics().failed_commands, 1);
}

/// The same race, where the concurrent write repairs the state: the search
/// that runs again finds the new current version good, so nothing is rolled
/// back and the write is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repairing_write_during_the_search_is_kept() {
    let state = ok_then_failed().await;
    let mut repaired = false;
    let recovered = state
        .rollback_to_last_good(|s| {
            if !repaired {
                repaired = true;
                let writer = state.clone();
                std::thread::spawn(move || writer.blocking().set("phase", "ok"))
                    .join()
                    .unwrap()
                    .unwrap();
            }
            phase_ok(s)
        })
        .await
        .unwrap();

    assert_eq!(recovered, Version::new(3));
    assert_eq!(state.version(), Version::new(3));
    assert_eq!(state.get("phase").as_deref(), Some(&"ok"));
    assert_eq!(state.metrics().rollbacks, 0);
    assert_eq!(state.history(None, Some(1))[0].operation, Operation::Set);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_keeps_moving_ends_in_version_moved() {
    let state = ok_then_failed().await;
    let mut searches = 0;
    let mut newest_seen = Version::INITIAL;
    let error = state
        .rollback_to_last_good(|s| {
            // Each search starts at a version newer than any seen before.
            if s.version() > newest_seen {
                newest_seen = s.version();
                searches += 1;
            }
            write_from_another_thread(&state, "noise");
            phase_ok(s)
        })
        .await
        .unwrap_err();

    assert_eq!(
        searches, 8,
        "it gives up after a bounded number of searches"
    );
    let StateError::VersionMoved { expected, current } = error else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(expected, newest_seen, "the last search's start");
    assert_eq!(
        current,
        state.version(),
        "nothing committed after the noise"
    );
    assert!(current > expected);
    assert_eq!(state.get("phase").as_deref(), Some(&"failed"));
    assert_eq!(state.metrics().rollbacks, 0);
    assert!(error.to_string().contains("nothing was rolled back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_form_retries_like_the_async_one() {
    let state = ok_then_failed().await;
    let worker = state.clone();
    let (recovered, seen) = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let recovered = worker.blocking().rollback_to_last_good(|s| {
            if seen.is_empty() {
                // On a plain thread the predicate can write directly.
                worker
                    .blocking()
                    .set("other", "written during the search")
                    .unwrap();
            }
            seen.push(s.version().get());
            phase_ok(s)
        });
        (recovered, seen)
    })
    .await
    .unwrap();

    assert_eq!(seen, [2, 1, 3, 2, 1]);
    assert_eq!(recovered, Ok(Version::new(4)));
    assert_eq!(state.get("phase").as_deref(), Some(&"ok"));
    assert!(!state.contains_key("other"));
}

/// Versions inside a group commit were never published on their own; the
/// search still shows each of them (rebuilt from the group's changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_inside_a_group_commit_are_searched() {
    let state = ThreadSafeState::<u64>::new();
    let gate = Gate::park(&state, "gate").await;
    let mut sets = Vec::new();
    for step in 1..=3u64 {
        let s = state.clone();
        sets.push(tokio::spawn(async move { s.set("step", step).await }));
        queued(&state, step as usize).await;
    }
    gate.open();
    gate.finish().await.unwrap();
    for set in sets {
        set.await.unwrap().unwrap();
    }
    // v1 the gate; v2, v3, v4 one group, of which only v4 was published.
    assert_eq!(state.version(), Version::new(4));

    let mut seen = Vec::new();
    let recovered = state
        .rollback_to_last_good(|s| {
            seen.push((s.version().get(), s.get("step").map(|n| *n)));
            s.get("step").as_deref() == Some(&1)
        })
        .await
        .unwrap();

    assert_eq!(seen, [(4, Some(3)), (3, Some(2)), (2, Some(1))]);
    assert_eq!(recovered, Version::new(5));
    assert_eq!(state.get("step").as_deref(), Some(&1));
}
