//! Durable states: reopening recovers exactly what was acknowledged, and a
//! damaged or foreign file is a typed error, never a panic or a silently
//! different state.

mod common;

use common::TempPath;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thread_safe_state::{
    ChangeRecord, Modification, OpenError, Precondition, StateError, ThreadSafeState, Version,
    Write,
};

async fn open(path: &Path, max_history: usize, every: u64) -> ThreadSafeState<u64> {
    ThreadSafeState::builder()
        .max_history(max_history)
        .durable(path)
        .checkpoint_every(every)
        .open()
        .await
        .expect("open")
}

/// Everything a reopen must restore: keys with values and versions, the
/// version, the history window and every retained snapshot.
#[derive(Debug, PartialEq)]
struct Observed {
    version: Version,
    entries: Vec<(String, u64, Version, Version)>,
    history: Vec<ChangeRecord<u64>>,
    snapshots: Vec<Vec<(String, u64, Version, Version)>>,
}

fn entries(snapshot: &thread_safe_state::Snapshot<u64>) -> Vec<(String, u64, Version, Version)> {
    let mut entries: Vec<_> = snapshot
        .keys()
        .map(|key| {
            let entry = snapshot.entry(key).unwrap();
            (
                key.to_owned(),
                **entry.value(),
                entry.created(),
                entry.modified(),
            )
        })
        .collect();
    entries.sort();
    entries
}

fn observe(state: &ThreadSafeState<u64>) -> Observed {
    let version = state.version();
    let history = state.history(None, None);
    let oldest = history.last().map_or(version, |record| record.version);
    let snapshots = (oldest.get().saturating_sub(1)..=version.get())
        .filter_map(|v| state.snapshot_at(Version::new(v)).ok())
        .map(|snapshot| entries(&snapshot))
        .collect();
    Observed {
        version,
        entries: entries(&state.snapshot()),
        history,
        snapshots,
    }
}

/// Every kind of write, from two agents.
async fn workload(state: &ThreadSafeState<u64>, rounds: u64) {
    let planner = state.for_agent("planner");
    for round in 0..rounds {
        planner
            .set(format!("task/{}", round % 7), round)
            .await
            .unwrap();
        state
            .update([("a", round), ("b", round + 1)])
            .await
            .unwrap();
        state
            .modify("counter", |n: Option<&u64>| {
                Modification::Set(n.copied().unwrap_or(0) + 1)
            })
            .await
            .unwrap();
        let token = state.snapshot().modified_version("a").unwrap();
        state
            .set_if("a", 1000 + round, Precondition::ModifiedAt(token))
            .await
            .unwrap();
        state
            .transaction(|s| {
                let a = s.get("a").map_or(0, |v| *v);
                Ok::<_, String>(vec![Write::set("sum", a + 1), Write::delete("b")])
            })
            .await
            .unwrap();
        if round % 5 == 4 {
            let back = Version::new(state.version().get() - 3);
            match state.rollback(back).await {
                // A window of one or two commits does not reach back 3.
                Ok(_) | Err(StateError::VersionCompacted { .. }) => {}
                Err(error) => panic!("{error}"),
            }
        }
        if round % 11 == 10 {
            state.retain(["counter", "sum"]).await.unwrap();
        }
        if round % 17 == 16 {
            state.clear().await.unwrap();
        }
        state
            .delete(format!("task/{}", (round + 3) % 7))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_state_versions_and_history_exactly() {
    let file = TempPath::new("exact");
    for (max_history, every) in [(1000, 4096), (8, 3), (1, 1)] {
        let _ = std::fs::remove_file(&file.0);
        let state = open(&file.0, max_history, every).await;
        workload(&state, 40).await;
        let before = observe(&state);
        assert!(before.version.get() > 200);
        state.close().await.unwrap();

        let state = open(&file.0, max_history, every).await;
        assert_eq!(observe(&state), before, "max_history {max_history}");
        // It goes on from there, and the reopened history reaches back
        // as far as a rollback needs.
        let target = before.history.last().unwrap().version;
        let target = Version::new(target.get() - 1);
        state.rollback(target).await.unwrap();
        let values = |entries: &[(String, u64, Version, Version)]| {
            entries
                .iter()
                .map(|(key, value, ..)| (key.clone(), *value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            values(&entries(&state.snapshot())),
            values(before.snapshots.first().unwrap())
        );
        let after = observe(&state);
        state.close().await.unwrap();
        let state = open(&file.0, max_history, every).await;
        assert_eq!(observe(&state), after);
        state.close().await.unwrap();
    }
}

#[tokio::test]
async fn initial_state_seeds_only_a_new_journal() {
    let file = TempPath::new("initial");
    let build = || {
        ThreadSafeState::builder()
            .initial_state([("seed", 1u64)])
            .durable(&file.0)
    };
    let state = build().open().await.unwrap();
    assert_eq!(state.get("seed").as_deref(), Some(&1));
    state.set("seed", 2).await.unwrap();
    state.close().await.unwrap();
    let state = build().open().await.unwrap();
    assert_eq!(state.get("seed").as_deref(), Some(&2));
    state.close().await.unwrap();
}

#[tokio::test]
async fn an_open_journal_is_locked_and_close_releases_it() {
    let file = TempPath::new("lock");
    let state = open(&file.0, 10, 10).await;
    let again = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .open()
        .await;
    assert!(
        matches!(again, Err(OpenError::AlreadyOpen { .. })),
        "{again:?}"
    );
    state.close().await.unwrap();
    // Closed: writes are refused, the file opens elsewhere.
    assert_eq!(state.set("k", 1).await, Err(StateError::Closed));
    let state = open(&file.0, 10, 10).await;
    state.close().await.unwrap();
}

#[tokio::test]
async fn a_file_of_another_value_type_is_refused() {
    let file = TempPath::new("type");
    let state = open(&file.0, 10, 10).await;
    state.set("k", 7).await.unwrap();
    state.close().await.unwrap();
    let other = ThreadSafeState::<String>::builder()
        .durable(&file.0)
        .open()
        .await;
    match other {
        Err(OpenError::ValueTypeMismatch {
            stored, expected, ..
        }) => {
            assert_eq!(stored, "u64");
            assert_eq!(expected, "alloc::string::String");
        }
        other => panic!("{other:?}"),
    }
    // Told it is the same type, the values themselves do not decode.
    let decoded = ThreadSafeState::<String>::builder()
        .durable(&file.0)
        .value_type("u64")
        .open()
        .await;
    assert!(
        matches!(decoded, Err(OpenError::Decode { .. })),
        "{decoded:?}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_journal_is_an_error() {
    let file = TempPath::new("garbage");
    std::fs::write(&file.0, vec![0x5a; 10_000]).unwrap();
    let error = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(error, OpenError::Corrupt { .. } | OpenError::Storage { .. }),
        "{error}"
    );
    // Nothing was changed.
    assert_eq!(std::fs::read(&file.0).unwrap(), vec![0x5a; 10_000]);
}

/// Damage a real journal at many places: each open either fails with a
/// typed error or recovers exactly the original state. It never panics
/// and never loads something else.
#[test]
fn flipped_bits_and_truncation_are_errors_or_harmless() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let file = TempPath::new("damage");
    let original = runtime.block_on(async {
        let state = open(&file.0, 16, 4).await;
        workload(&state, 6).await;
        let observed = observe(&state);
        state.close().await.unwrap();
        observed
    });
    let pristine = std::fs::read(&file.0).unwrap();
    let damaged = TempPath::new("damaged");
    let mut outcomes = [0usize; 2];
    let mut check = |bytes: &[u8], what: &str| {
        std::fs::write(&damaged.0, bytes).unwrap();
        let opened = ThreadSafeState::<u64>::builder()
            .max_history(16)
            .durable(&damaged.0)
            .checkpoint_every(4)
            .open_on(runtime.handle());
        match opened {
            Ok(state) => {
                assert_eq!(observe(&state), original, "{what} loaded a different state");
                state.blocking().close().unwrap();
                outcomes[0] += 1;
            }
            Err(
                OpenError::Corrupt { .. } | OpenError::Storage { .. } | OpenError::Decode { .. },
            ) => outcomes[1] += 1,
            Err(other) => panic!("{what}: unexpected {other:?}"),
        }
    };
    let step = (pristine.len() / 400).max(1);
    for at in (0..pristine.len()).step_by(step) {
        let mut bytes = pristine.clone();
        bytes[at] ^= 1 << (at % 8);
        check(&bytes, &format!("bit flip at byte {at}"));
    }
    for len in [0, 1, 512, 4096, pristine.len() / 2, pristine.len() - 1] {
        check(
            &pristine[..len.min(pristine.len())],
            &format!("truncation to {len}"),
        );
    }
    eprintln!(
        "{} damaged files: {} opened with the original state, {} refused",
        outcomes[0] + outcomes[1],
        outcomes[0],
        outcomes[1]
    );
    assert!(outcomes[1] > 0, "no damage was ever detected");
}

/// A value whose serialization fails, to prove a rejected group loses
/// nothing and leaves the journal usable.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("13 does not serialize"));
        }
        serializer.serialize_u32(self.0)
    }
}

#[tokio::test]
async fn a_value_that_does_not_serialize_fails_its_write_and_nothing_else() {
    let file = TempPath::new("picky");
    let state = ThreadSafeState::<Picky>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    let v1 = state.set("k", Picky(1)).await.unwrap();
    let error = state.set("k", Picky(13)).await.unwrap_err();
    assert!(
        matches!(error, StateError::NotSerializable { .. }),
        "{error}"
    );
    assert!(std::error::Error::source(&error)
        .unwrap()
        .to_string()
        .contains("13"));
    assert_eq!(state.version(), v1);
    assert_eq!(state.get("k").as_deref(), Some(&Picky(1)));
    assert_eq!(state.history(None, None).len(), 1);
    let v2 = state.set("k", Picky(2)).await.unwrap();
    assert_eq!(v2, v1.next());
    state.close().await.unwrap();
    let state = ThreadSafeState::<Picky>::builder()
        .durable(&file.0)
        .open()
        .await
        .unwrap();
    assert_eq!(state.get("k").as_deref(), Some(&Picky(2)));
    assert_eq!(state.version(), v2);
    state.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_durable() {
    let file = TempPath::new("concurrent");
    let state = open(&file.0, 100, 50).await;
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..20u64 {
                acknowledged.push(state.set(format!("t{task}"), n).await.unwrap());
            }
            acknowledged
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.unwrap());
    }
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 32 * 20, "each write has its own version");
    let groups = state.metrics().group_size;
    state.close().await.unwrap();
    let state = open(&file.0, 100, 50).await;
    assert_eq!(state.version(), *versions.last().unwrap());
    for task in 0..32 {
        assert_eq!(state.get(&format!("t{task}")).as_deref(), Some(&19));
    }
    assert!(
        groups.max > 1,
        "writes queued behind a sync form one group: {groups:?}"
    );
    state.close().await.unwrap();
}

/// The file does not grow with the number of writes: a million key
/// overwrites (10k commits of 100 keys) leave it within twice its size
/// after the first ten thousand, with the same retained window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_stays_bounded_under_overwrites() {
    let file = TempPath::new("size");
    let state = open(&file.0, 50, 50).await;
    let batch =
        |round: u64| (0..100).map(move |i| (format!("key/{}", (round * 100 + i) % 1000), round));
    let size = || std::fs::metadata(&file.0).unwrap().len();
    for round in 0..100 {
        state.update(batch(round)).await.unwrap();
    }
    let after_10k = size();
    for round in 100..10_000 {
        state.update(batch(round)).await.unwrap();
    }
    let after_1m = size();
    eprintln!("journal size after 10k overwrites: {after_10k} B, after 1M: {after_1m} B");
    assert!(after_1m <= 2 * after_10k, "{after_10k} -> {after_1m}");
    assert_eq!(state.len(), 1000);
    state.close().await.unwrap();
}

/// The journal does not record deadlines, so a TTL on a durable state is
/// refused rather than silently lost at the next restart.
#[tokio::test]
async fn ttls_are_refused_on_a_durable_state() {
    let file = TempPath::new("ttl");
    let state = open(&file.0, 10, 10).await;
    let refused = state
        .set_with_ttl("lease", 1, std::time::Duration::from_secs(5))
        .await;
    assert_eq!(refused, Err(StateError::TtlUnsupported));
    assert_eq!(state.version(), Version::INITIAL);
    assert_eq!(state.set("lease", 1).await, Ok(Version::new(1)));
    state.close().await.unwrap();
}

/// The builder's settings, its `Debug`, and each opening error's message.
#[test]
fn the_durable_builder_reports_its_settings_and_errors() {
    let file = TempPath::new("builder");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let builder = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .checkpoint_every(0)
        .checkpoint_bytes(1 << 20)
        .value_type("counter/v1");
    let shown = format!("{builder:?}");
    assert!(
        shown.contains("counter/v1") && shown.contains("1048576"),
        "{shown}"
    );
    let state = builder.open_on(runtime.handle()).unwrap();
    state.blocking().set("k", 1).unwrap();
    let locked = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .value_type("counter/v1")
        .open_on(runtime.handle())
        .unwrap_err();
    assert!(locked.to_string().contains("already open"), "{locked}");
    state.blocking().close().unwrap();
    let mismatch = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .open_on(runtime.handle())
        .unwrap_err();
    assert!(mismatch.to_string().contains("counter/v1"), "{mismatch}");
    let bad = ThreadSafeState::<u64>::builder()
        .mailbox_capacity(0)
        .durable(&file.0)
        .open_on(runtime.handle())
        .unwrap_err();
    assert_eq!(
        bad,
        OpenError::Build(thread_safe_state::BuildError::ZeroMailboxCapacity)
    );
    let import = ThreadSafeState::<u64>::builder()
        .import(runtime.block_on(async { ThreadSafeState::<u64>::new().export() }))
        .durable(&file.0)
        .open_on(runtime.handle())
        .unwrap_err();
    assert!(
        matches!(
            import,
            OpenError::Build(thread_safe_state::BuildError::InvalidImport { .. })
        ),
        "{import}"
    );
    // Reopened with its name, it holds what was written.
    let state = ThreadSafeState::<u64>::builder()
        .durable(&file.0)
        .value_type("counter/v1")
        .open_on(runtime.handle())
        .unwrap();
    assert_eq!(state.get("k").as_deref(), Some(&1));
    state.blocking().close().unwrap();
}
