//! TTL keys: `set_with_ttl`, expiry as its own commit, what cancels a TTL,
//! and rollback's rule (values come back, TTLs do not).
//!
//! Every test runs on tokio's paused clock: time moves only when a test
//! advances it, or when every task is idle (then it jumps to the next
//! timer, the writer's deadline). A write round trip goes through the
//! writer, which expires whatever is due before it applies the write, so
//! "still there at 29 s" is checked deterministically.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use thread_safe_state::{Modification, Operation, StateError, ThreadSafeState, Version};

const SECOND: Duration = Duration::from_secs(1);

/// Let the writer run, then make sure it has: a write round trip (the
/// writer expires what is due before it applies the write).
async fn advance(state: &ThreadSafeState<u32>, by: Duration) {
    tokio::time::advance(by).await;
    state.set("tick", 0).await.unwrap();
}

fn operations(state: &ThreadSafeState<u32>, key: &str) -> Vec<(u64, Operation)> {
    let mut records: Vec<_> = state
        .history(Some(key), None)
        .into_iter()
        .map(|record| (record.version.get(), record.operation))
        .collect();
    records.reverse();
    records
}

#[tokio::test(start_paused = true)]
async fn a_key_expires_at_its_deadline_in_a_commit_of_its_own() {
    let state = ThreadSafeState::new();
    let writer = state.for_agent("agent-1");
    let set = writer
        .set_with_ttl("lease", 7, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(set, Version::new(1));

    advance(&state, Duration::from_secs(29)).await; // tick: v2
    assert_eq!(state.get("lease").as_deref(), Some(&7));

    advance(&state, 2 * SECOND).await; // expiry v3, then tick v4
    assert_eq!(state.get("lease"), None);
    assert_eq!(
        operations(&state, "lease"),
        [(1, Operation::Set), (3, Operation::Expire)]
    );
    let expiry = &state.history(Some("lease"), Some(1))[0];
    assert_eq!(expiry.old_value.as_deref(), Some(&7));
    assert_eq!(expiry.new_value, None);
    assert_eq!(expiry.changed_by, None);
    // The write is counted as a set; the expiry is a commit, not a write.
    let metrics = state.metrics();
    assert_eq!(metrics.writes_by_operation.set, 3);
    assert_eq!(metrics.commits, 4);
}

#[tokio::test(start_paused = true)]
async fn an_idle_writer_expires_on_its_own_timer() {
    let state = ThreadSafeState::<u32>::new();
    state.set_with_ttl("a", 1, SECOND).await.unwrap();
    // No other write: only the writer's timer can commit the expiry. The
    // paused clock jumps to it once every task is idle.
    let gone = state.wait_for(|s| !s.contains_key("a")).await.unwrap();
    assert_eq!(gone.version(), Version::new(2));
    assert_eq!(tokio::time::Instant::now().elapsed(), Duration::ZERO);
    assert_eq!(state.version(), Version::new(2));
}

#[tokio::test(start_paused = true)]
async fn keys_whose_deadlines_pass_together_expire_in_one_commit() {
    let state = ThreadSafeState::new();
    // Applied at the same paused instant: the same deadline.
    state.set_with_ttl("task/b", 2, 10 * SECOND).await.unwrap();
    state.set_with_ttl("task/a", 1, 10 * SECOND).await.unwrap();
    state.set_with_ttl("task/c", 3, 10 * SECOND).await.unwrap();
    state.set_with_ttl("task/d", 4, 20 * SECOND).await.unwrap();
    let mut changes = state.changes_since(state.version()).unwrap();

    let expiry = changes.next().await.unwrap().unwrap();
    assert_eq!(expiry.version, Version::new(5));
    assert_eq!(expiry.operation, Operation::Expire);
    let keys: Vec<&str> = expiry.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["task/a", "task/b", "task/c"]);
    assert_eq!(state.keys_with_prefix("task/"), ["task/d"]);

    let later = changes.next().await.unwrap().unwrap();
    assert_eq!(
        (later.version, later.operation),
        (Version::new(6), Operation::Expire)
    );
    assert!(state.is_empty());
}

#[tokio::test(start_paused = true)]
async fn expiry_wakes_waiters_subscribers_key_watches_streams_and_prefix_watches() {
    let state = ThreadSafeState::new();
    let mut subscriber = state.subscribe();
    let mut key_watch = state.watch_key("lease/1");
    let mut stream = state.changes_since(Version::INITIAL).unwrap();
    let mut prefix = state.watch_prefix("lease/").unwrap();
    let waiter = {
        let state = state.clone();
        tokio::spawn(async move { state.wait_for(|s| s.version() == Version::new(2)).await })
    };

    state.set_with_ttl("lease/1", 1, 5 * SECOND).await.unwrap();
    subscriber.borrow_and_update();
    assert_eq!(key_watch.changed().await.unwrap().as_deref(), Some(&1));
    assert_eq!(
        stream.next().await.unwrap().unwrap().version,
        Version::new(1)
    );
    assert_eq!(prefix.changed().await.unwrap().version, Version::new(1));

    // Each of these now waits for the expiry, the only commit to come.
    subscriber.changed().await.unwrap();
    assert!(!subscriber.borrow_and_update().contains_key("lease/1"));
    assert_eq!(key_watch.changed().await.unwrap(), None);
    let set = stream.next().await.unwrap().unwrap();
    assert_eq!(
        (set.version, set.operation),
        (Version::new(2), Operation::Expire)
    );
    let set = prefix.changed().await.unwrap();
    assert_eq!(
        (set.version, set.operation),
        (Version::new(2), Operation::Expire)
    );
    let snapshot = waiter.await.unwrap().unwrap();
    assert!(snapshot.is_empty());
}

#[tokio::test(start_paused = true)]
async fn every_later_write_or_removal_of_the_key_cancels_its_ttl() {
    let state = ThreadSafeState::new();
    let ttl = 10 * SECOND;
    for key in [
        "set",
        "update",
        "modify",
        "set_if",
        "transaction",
        "deleted",
    ] {
        state.set_with_ttl(key, 1, ttl).await.unwrap();
    }
    state.set("set", 2).await.unwrap();
    state.update([("update", 2)]).await.unwrap();
    state
        .modify("modify", |_| Modification::Set(2))
        .await
        .unwrap();
    let token = state.snapshot().modified_version("set_if").unwrap();
    state
        .set_if(
            "set_if",
            2,
            thread_safe_state::Precondition::ModifiedAt(token),
        )
        .await
        .unwrap();
    state
        .transaction(|_| {
            Ok::<_, std::convert::Infallible>(vec![thread_safe_state::Write::set("transaction", 2)])
        })
        .await
        .unwrap();
    // Deleted, then written again without a TTL: the old deadline is gone.
    state.delete("deleted").await.unwrap();
    state.set("deleted", 2).await.unwrap();

    advance(&state, 60 * SECOND).await;
    for key in [
        "set",
        "update",
        "modify",
        "set_if",
        "transaction",
        "deleted",
    ] {
        assert_eq!(state.get(key).as_deref(), Some(&2), "{key}");
        assert!(
            !operations(&state, key)
                .iter()
                .any(|(_, op)| *op == Operation::Expire),
            "{key}"
        );
    }

    // clear and retain remove keys: a key written again later has no TTL.
    state.set_with_ttl("cleared", 1, ttl).await.unwrap();
    state.set_with_ttl("retained-out", 1, ttl).await.unwrap();
    state.retain(["cleared", "tick"]).await.unwrap();
    state.clear().await.unwrap();
    state
        .update([("cleared", 3), ("retained-out", 3)])
        .await
        .unwrap();
    advance(&state, 60 * SECOND).await;
    assert_eq!(state.get("cleared").as_deref(), Some(&3));
    assert_eq!(state.get("retained-out").as_deref(), Some(&3));
}

#[tokio::test(start_paused = true)]
async fn a_later_ttl_replaces_the_earlier_one() {
    let state = ThreadSafeState::new();
    state.set_with_ttl("k", 1, 10 * SECOND).await.unwrap();
    state.set_with_ttl("k", 2, 60 * SECOND).await.unwrap();
    advance(&state, 30 * SECOND).await;
    assert_eq!(state.get("k").as_deref(), Some(&2));
    // A shorter one replaces a longer one too.
    state.set_with_ttl("k", 3, SECOND).await.unwrap();
    advance(&state, 2 * SECOND).await;
    assert_eq!(state.get("k"), None);
    let expiries = operations(&state, "k")
        .iter()
        .filter(|(_, op)| *op == Operation::Expire)
        .count();
    assert_eq!(expiries, 1);
}

#[tokio::test(start_paused = true)]
async fn writes_that_leave_the_key_alone_leave_its_ttl_running() {
    let state = ThreadSafeState::new();
    state.set_with_ttl("k", 1, 10 * SECOND).await.unwrap();
    // Keep commits nothing; a failed conditional write changes nothing.
    state.modify("k", |_| Modification::Keep).await.unwrap();
    let failed = state
        .set_if("k", 9, thread_safe_state::Precondition::Absent)
        .await;
    assert!(matches!(failed, Err(StateError::Conflict { .. })));
    state.set("other", 1).await.unwrap();
    advance(&state, 11 * SECOND).await;
    assert_eq!(state.get("k"), None);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_restores_values_but_not_ttls() {
    let state = ThreadSafeState::new();
    let ttl = 10 * SECOND;
    state.set_with_ttl("untouched", 1, ttl).await.unwrap(); // v1
    let plain = state.set("restored", 1).await.unwrap(); // v2
    let with_ttls = state.set_with_ttl("restored", 2, ttl).await.unwrap(); // v3

    // v4: "restored" goes back to its plain value, and has no TTL; the
    // rollback leaves "untouched" as it is, so its TTL keeps running.
    state.rollback(plain).await.unwrap();
    assert_eq!(operations(&state, "untouched"), [(1, Operation::Set)]);
    advance(&state, 11 * SECOND).await; // expiry v5, tick v6
    assert_eq!(state.get("untouched"), None, "kept its TTL");
    assert_eq!(state.get("restored").as_deref(), Some(&1), "lost its TTL");
    assert_eq!(
        operations(&state, "untouched"),
        [(1, Operation::Set), (5, Operation::Expire)]
    );

    // v7: back to v3, when both keys had TTLs: the values return, an
    // expired key included, and neither expires any more.
    state.rollback(with_ttls).await.unwrap();
    assert_eq!(state.get("untouched").as_deref(), Some(&1));
    assert_eq!(state.get("restored").as_deref(), Some(&2));
    advance(&state, 60 * SECOND).await;
    assert_eq!(state.get("untouched").as_deref(), Some(&1));
    assert_eq!(state.get("restored").as_deref(), Some(&2));
    assert_eq!(state.version(), Version::new(8));
}

#[tokio::test(start_paused = true)]
async fn a_zero_ttl_is_a_typed_error_and_writes_nothing() {
    let state = ThreadSafeState::new();
    assert_eq!(
        state.set_with_ttl("k", 1, Duration::ZERO).await,
        Err(StateError::ZeroTtl)
    );
    assert_eq!(
        state.set_with_ttl("", 1, SECOND).await,
        Err(StateError::EmptyKey)
    );
    assert_eq!(state.version(), Version::INITIAL);
    // The smallest TTL there is works, and expires on the next tick.
    state
        .set_with_ttl("k", 1, Duration::from_nanos(1))
        .await
        .unwrap();
    let gone = state.wait_for(|s| !s.contains_key("k")).await.unwrap();
    assert_eq!(gone.version(), Version::new(2));
}

#[tokio::test(start_paused = true)]
async fn a_ttl_beyond_the_clock_never_expires() {
    let state = ThreadSafeState::new();
    state.set_with_ttl("k", 1, Duration::MAX).await.unwrap();
    advance(&state, Duration::from_secs(100 * 365 * 24 * 3600)).await;
    assert_eq!(state.get("k").as_deref(), Some(&1));
}

#[test]
fn without_timers_set_with_ttl_is_a_typed_error_and_the_writer_lives_on() {
    // A runtime built without `enable_time`: a sleep there would panic in
    // the writer. (Creating one is how the writer finds out, so the panic
    // message is printed once; it is caught.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = ThreadSafeState::new();
        assert_eq!(
            state.set_with_ttl("k", 1, SECOND).await,
            Err(StateError::TimersDisabled)
        );
        assert_eq!(state.set("k", 2).await, Ok(Version::new(1)));
        assert_eq!(
            state.set_with_ttl("k", 1, SECOND).await,
            Err(StateError::TimersDisabled)
        );
        assert_eq!(state.get("k").as_deref(), Some(&2));
        assert_eq!(state.metrics().failed_commands, 2);
    });
}

#[test]
fn the_blocking_twin_sets_a_ttl_from_a_plain_thread() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let state = runtime.block_on(async { ThreadSafeState::<u32>::new() });
    let worker = state.clone();
    let version = std::thread::spawn(move || {
        let blocking = worker.blocking();
        assert_eq!(
            blocking.set_with_ttl("k", 1, Duration::ZERO),
            Err(StateError::ZeroTtl)
        );
        blocking
            .set_with_ttl("k", 1, Duration::from_millis(10))
            .unwrap()
    })
    .join()
    .unwrap();
    let gone = runtime
        .block_on(state.wait_for(|s| !s.contains_key("k")))
        .unwrap();
    assert_eq!(gone.version(), version.next());
    assert_eq!(operations(&state, "k")[1].1, Operation::Expire);
}

#[derive(Clone, Debug)]
enum Step {
    SetWithTtl(usize, u64),
    Set(usize),
    Delete(usize),
    Clear,
    Rollback(u64),
    Advance(u64),
}

const KEYS: [&str; 3] = ["a", "b", "c"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..KEYS.len(), 1u64..5).prop_map(|(k, s)| Step::SetWithTtl(k, s)),
        2 => (0..KEYS.len()).prop_map(Step::Set),
        1 => (0..KEYS.len()).prop_map(Step::Delete),
        1 => Just(Step::Clear),
        1 => (1u64..4).prop_map(Step::Rollback),
        3 => (1u64..4).prop_map(Step::Advance),
    ]
}

/// The reference model: each key's value and, if it has one, its deadline
/// (in whole seconds of the paused clock), and the contents at each version.
#[derive(Default)]
struct Model {
    now: u64,
    keys: BTreeMap<&'static str, (u32, Option<u64>)>,
    versions: Vec<BTreeMap<&'static str, u32>>,
}

impl Model {
    fn contents(&self) -> BTreeMap<&'static str, u32> {
        self.keys.iter().map(|(k, (v, _))| (*k, *v)).collect()
    }

    fn commit(&mut self) {
        self.versions.push(self.contents());
    }

    /// The writer expires what is due before each group: one commit.
    fn expire_due(&mut self) {
        let now = self.now;
        let before = self.keys.len();
        self.keys
            .retain(|_, (_, deadline)| deadline.is_none_or(|d| d > now));
        if self.keys.len() != before {
            self.commit();
        }
    }
}

proptest! {
    /// Random TTL sets, plain writes, deletes, clears, rollbacks and clock
    /// advances agree with a model in which a TTL belongs to the value that
    /// set it and a rollback restores values without TTLs.
    #[test]
    fn ttls_agree_with_a_model(steps in prop::collection::vec(step(), 0..25)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let state = ThreadSafeState::builder().max_history(100).build();
            let mut model = Model::default();
            model.commit(); // version 0
            let mut value = 0;
            for step in steps {
                value += 1;
                match step {
                    Step::Advance(seconds) => {
                        tokio::time::advance(Duration::from_secs(seconds)).await;
                        model.now += seconds;
                        // A no-op round trip (deleting an absent key) lets
                        // the writer expire what is due without a commit.
                        state.delete("absent").await.unwrap();
                        model.expire_due();
                    }
                    Step::SetWithTtl(key, seconds) => {
                        model.expire_due();
                        state.set_with_ttl(KEYS[key], value, Duration::from_secs(seconds)).await.unwrap();
                        model.keys.insert(KEYS[key], (value, Some(model.now + seconds)));
                        model.commit();
                    }
                    Step::Set(key) => {
                        model.expire_due();
                        state.set(KEYS[key], value).await.unwrap();
                        model.keys.insert(KEYS[key], (value, None));
                        model.commit();
                    }
                    Step::Delete(key) => {
                        model.expire_due();
                        if state.delete(KEYS[key]).await.unwrap() {
                            model.keys.remove(KEYS[key]);
                            model.commit();
                        }
                    }
                    Step::Clear => {
                        model.expire_due();
                        state.clear().await.unwrap();
                        if !model.keys.is_empty() {
                            model.keys.clear();
                            model.commit();
                        }
                    }
                    Step::Rollback(back) => {
                        model.expire_due();
                        let current = state.version().get();
                        let Some(target) = current.checked_sub(back) else { continue };
                        state.rollback(Version::new(target)).await.unwrap();
                        let then = model.versions[target as usize].clone();
                        // Keys the rollback changes lose their TTL; keys it
                        // leaves alone keep theirs.
                        let mut keys = BTreeMap::new();
                        for (key, value) in then {
                            let kept = model.keys.get(key).filter(|(now, _)| *now == value);
                            keys.insert(key, kept.copied().unwrap_or((value, None)));
                        }
                        model.keys = keys;
                        model.commit();
                    }
                }
                let snapshot = state.snapshot();
                assert_eq!(snapshot.version().get() as usize + 1, model.versions.len());
                let contents: BTreeMap<&str, u32> =
                    snapshot.iter().map(|(k, v)| (k, **v)).collect();
                assert_eq!(contents, model.contents());
            }
        });
    }
}
