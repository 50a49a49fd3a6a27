//! Faults: panicking closures, writes after shutdown, queued writes when the
//! last handle drops.

use std::time::Duration;

use thread_safe_state::{Modification, StateError, ThreadSafeState, Version};

#[tokio::test]
async fn a_panicking_modify_fails_only_its_own_command() {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let before = state.snapshot();

    let error = state
        .modify("a", |_| panic!("agent bug: {}", 42))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StateError::ModifyPanicked {
            key: "a".into(),
            message: "agent bug: 42".into(),
        }
    );
    assert_eq!(state.version(), before.version());
    assert_eq!(state.get("a").as_deref(), Some(&1));
    assert_eq!(state.history(None, None).len(), 1);

    // The writer keeps serving.
    assert_eq!(state.set("a", 2).await.unwrap(), Version::new(2));
    state
        .modify("a", |v| {
            v.map_or(Modification::Keep, |v| Modification::Set(v * 10))
        })
        .await
        .unwrap();
    assert_eq!(state.get("a").as_deref(), Some(&20));
}

#[tokio::test]
async fn a_panic_in_one_command_of_a_group_commit_spares_the_others() {
    let state = ThreadSafeState::<u32>::new();
    // Queue several commands before the writer runs (current_thread runtime),
    // so they are committed as one group.
    let writes: Vec<_> = (0..6u32)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move {
                if i == 3 {
                    state
                        .modify("k", |_| panic!("boom"))
                        .await
                        .map(|modified| modified.version)
                } else {
                    state.set(format!("k{i}"), i).await
                }
            })
        })
        .collect();
    let mut failures = 0;
    for write in writes {
        if write.await.unwrap().is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 1);
    assert_eq!(state.len(), 5);
    assert_eq!(state.version(), Version::new(5));
}

#[test]
fn a_write_after_the_runtime_shut_down_is_closed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async {
        let state = ThreadSafeState::new();
        state.set("a", 1).await.unwrap();
        state
    });
    drop(runtime); // stops the writer task

    assert_eq!(state.blocking().set("b", 2), Err(StateError::Closed));
    // Reads still serve the last published snapshot.
    assert_eq!(state.get("a").as_deref(), Some(&1));

    let other = tokio::runtime::Runtime::new().unwrap();
    let result = other
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), state.set("c", 3)).await });
    assert_eq!(result.expect("must not hang"), Err(StateError::Closed));
    assert!(StateError::Closed.to_string().contains("not applied"));
}

#[tokio::test]
async fn commands_queued_when_the_last_handle_drops_are_all_answered() {
    // On a current_thread runtime nothing runs until we await, so every
    // spawned write is queued (or about to be) when the handles go away.
    let state = ThreadSafeState::<u32>::new();
    let mut updates = state.subscribe();
    let writes: Vec<_> = (0..50u32)
        .map(|i| {
            let handle = state.clone();
            tokio::spawn(async move { handle.set(format!("k{i}"), i).await })
        })
        .collect();
    drop(state);
    for write in writes {
        write
            .await
            .unwrap()
            .expect("a queued write is applied and answered");
    }
    let last = updates.wait_for(|s| s.len() == 50).await.unwrap().clone();
    assert_eq!(last.version(), Version::new(50));
    // Every handle is gone: the writer stops and the channel closes.
    while updates.changed().await.is_ok() {}
}

#[test]
fn blocking_writes_from_inside_a_runtime_panic_rather_than_deadlock() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let state = ThreadSafeState::<u8>::new();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = state.blocking().set("k", 1);
        }))
    });
    assert!(result.is_err());
}

#[tokio::test]
async fn a_write_whose_future_was_dropped_after_sending_is_still_applied_in_full() {
    let state = ThreadSafeState::<u32>::new();
    let mut updates = state.subscribe();
    for i in 0..10u32 {
        // Poll each batch write once (it enters the mailbox), then drop it.
        tokio::select! {
            biased;
            _ = state.update([(format!("a{i}"), i), (format!("b{i}"), i)]) => {
                unreachable!("the writer cannot answer before it runs")
            }
            () = std::future::ready(()) => {}
        }
    }
    // The last handle goes away with all ten commands still queued.
    drop(state);
    let last = updates.wait_for(|s| s.len() == 20).await.unwrap().clone();
    assert_eq!(last.version(), Version::new(10));
    for i in 0..10u32 {
        assert_eq!(last.get(&format!("a{i}")), last.get(&format!("b{i}")));
    }
}

#[test]
fn writes_in_flight_when_the_runtime_shuts_down_get_closed_and_nobody_hangs() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u64>::new() });
    let (done, finished) = std::sync::mpsc::channel();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (state, done) = (state.clone(), done.clone());
            std::thread::spawn(move || {
                let mut applied = 0u64;
                let outcome = loop {
                    match state.blocking().set(format!("t{t}"), applied) {
                        Ok(_) => applied += 1,
                        Err(error) => break error,
                    }
                };
                done.send(()).unwrap();
                (applied, outcome)
            })
        })
        .collect();
    // Let the writers get going, then shut the runtime down under them.
    while state.version().get() < 100 {
        std::thread::yield_now();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    for _ in 0..4 {
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("a writer hung after the runtime shut down");
    }
    let mut total = 0;
    for writer in writers {
        let (applied, outcome) = writer.join().unwrap();
        assert_eq!(outcome, StateError::Closed);
        total += applied;
    }
    // Every acknowledged write is in the last published state.
    assert_eq!(state.version().get(), total);
}

#[tokio::test]
async fn a_full_mailbox_makes_writers_wait_and_drops_nothing() {
    let state = ThreadSafeState::<u32>::builder()
        .mailbox_capacity(1)
        .build();
    let writes: Vec<_> = (0..200u32)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move { state.set(format!("k{i}"), i).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(state.len(), 200);
    assert_eq!(state.version(), Version::new(200));
}

#[tokio::test]
async fn a_write_dropped_while_waiting_for_mailbox_room_is_not_applied() {
    let state = ThreadSafeState::<u32>::builder()
        .mailbox_capacity(1)
        .build();
    // On a current_thread runtime the writer cannot run until we await:
    // polling "first" once puts it in the one-slot mailbox, so "second"
    // finds no room. Both futures are then dropped.
    for (key, value) in [("first", 1), ("second", 2)] {
        tokio::select! {
            biased;
            _ = state.set(key, value) => unreachable!("the writer has not run"),
            () = std::future::ready(()) => {}
        }
    }
    assert_eq!(state.set("third", 3).await, Ok(Version::new(2)));
    assert_eq!(
        state.get("first").as_deref(),
        Some(&1),
        "a sent write is applied"
    );
    assert!(!state.contains_key("second"), "an unsent write was applied");
    assert_eq!(state.metrics().writes, 2);
}
