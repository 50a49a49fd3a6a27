//! Export and import: a state with its versions and history window moves
//! to a new state (through any serde format) and behaves the same there.

use serde_json::{json, Value};
use thread_safe_state::{
    BuildError, Export, Modification, Precondition, StateError, ThreadSafeState, Version, Write,
};

/// What an import must give back: values with their versions, the version,
/// the history and every retained snapshot.
fn observe(state: &ThreadSafeState<u32>) -> String {
    observe_with(state, true)
}

/// The same, without commit times (for commits made after the import).
fn observe_with(state: &ThreadSafeState<u32>, timestamps: bool) -> String {
    let snapshot = state.snapshot();
    let mut keys: Vec<_> = snapshot.keys().map(str::to_owned).collect();
    keys.sort();
    let entries: Vec<_> = keys
        .iter()
        .map(|key| {
            let entry = snapshot.entry(key).unwrap();
            (
                key.clone(),
                **entry.value(),
                entry.created(),
                entry.modified(),
            )
        })
        .collect();
    let snapshots: Vec<_> = (0..=state.version().get())
        .filter_map(|v| state.snapshot_at(Version::new(v)).ok())
        .map(|s| {
            let mut pairs: Vec<_> = s.iter().map(|(k, v)| (k.to_owned(), **v)).collect();
            pairs.sort();
            pairs
        })
        .collect();
    let history: Vec<String> = state
        .history(None, None)
        .into_iter()
        .map(|record| {
            let when = if timestamps {
                record.timestamp.to_string()
            } else {
                String::new()
            };
            format!(
                "{} {when} {} {:?} {:?} {:?} {:?}",
                record.version,
                record.key,
                record.operation,
                record.old_value,
                record.new_value,
                record.changed_by
            )
        })
        .collect();
    format!(
        "{:?}\n{entries:?}\n{history:?}\n{snapshots:?}",
        state.version()
    )
}

async fn workload(state: &ThreadSafeState<u32>) {
    state.set("plan", 1).await.unwrap();
    state.for_agent("planner").set("plan", 2).await.unwrap();
    state.update([("a", 1), ("b", 2)]).await.unwrap();
    state.rollback(Version::new(1)).await.unwrap();
    state
        .modify("counter", |n: Option<&u32>| {
            Modification::Set(n.map_or(0, |n| n + 1))
        })
        .await
        .unwrap();
    state.delete("plan").await.unwrap();
    state
        .transaction(|s| {
            Ok::<_, String>(vec![
                Write::set("t", s.len() as u32),
                Write::delete("counter"),
            ])
        })
        .await
        .unwrap();
    state.set("plan", 9).await.unwrap();
}

fn through_json(export: &Export<u32>) -> Export<u32> {
    serde_json::from_str(&serde_json::to_string(export).unwrap()).unwrap()
}

#[tokio::test]
async fn an_import_is_the_same_state_with_the_same_history() {
    for max_history in [1000, 4, 2] {
        let state = ThreadSafeState::builder().max_history(max_history).build();
        workload(&state).await;
        let copy = ThreadSafeState::builder()
            .max_history(max_history)
            .import(through_json(&state.export()))
            .try_build()
            .unwrap();
        assert_eq!(observe(&copy), observe(&state), "max_history {max_history}");

        // And it behaves the same from there: a rollback to a retained
        // version (which shares values with an earlier rollback) and a
        // stale compare-and-set.
        let target = state
            .history(None, None)
            .last()
            .unwrap()
            .version
            .prev()
            .unwrap();
        for s in [&state, &copy] {
            s.rollback(target).await.unwrap();
            let stale = s
                .set_if("plan", 0, Precondition::ModifiedAt(Version::new(1)))
                .await;
            assert!(matches!(stale, Err(StateError::Conflict { .. })));
            s.set("after", 1).await.unwrap();
        }
        assert_eq!(
            observe_with(&copy, false),
            observe_with(&state, false),
            "max_history {max_history}"
        );
    }
}

#[tokio::test]
async fn a_smaller_window_keeps_the_newest_commits() {
    let state = ThreadSafeState::builder().max_history(100).build();
    for n in 0..20 {
        state.set("k", n).await.unwrap();
    }
    let copy = ThreadSafeState::builder()
        .max_history(5)
        .import(state.export())
        .try_build()
        .unwrap();
    assert_eq!(copy.version(), Version::new(20));
    assert_eq!(copy.history(None, None).len(), 5);
    assert!(matches!(
        copy.snapshot_at(Version::new(14)),
        Err(StateError::VersionCompacted { .. })
    ));
    assert_eq!(
        copy.snapshot_at(Version::new(15))
            .unwrap()
            .get("k")
            .as_deref(),
        Some(&14)
    );
}

/// Edit an export's JSON, then import it.
async fn import_edited(edit: impl FnOnce(&mut Value)) -> Result<ThreadSafeState<u32>, BuildError> {
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    state.set("b", 2).await.unwrap();
    state.delete("a").await.unwrap();
    let mut json = serde_json::to_value(state.export()).unwrap();
    edit(&mut json);
    let export: Export<u32> = serde_json::from_value(json).unwrap();
    ThreadSafeState::builder().import(export).try_build()
}

#[tokio::test]
async fn a_bad_export_is_a_typed_error() {
    let invalid = |result: Result<ThreadSafeState<u32>, BuildError>| match result {
        Err(BuildError::InvalidImport { detail }) => detail,
        other => panic!("{other:?}"),
    };
    // Untouched, it imports.
    assert_eq!(
        import_edited(|_| {}).await.unwrap().version(),
        Version::new(3)
    );
    let gap = invalid(import_edited(|json| json["commits"][1]["version"] = json!(7)).await);
    assert!(gap.contains("follows"), "{gap}");
    let missing =
        invalid(import_edited(|json| json["commits"][2]["changes"][0]["key"] = json!("zzz")).await);
    assert!(missing.contains("does not exist"), "{missing}");
    let short = invalid(import_edited(|json| json["version"] = json!(9)).await);
    assert!(short.contains("not at the exported version"), "{short}");
    let newer = invalid(import_edited(|json| json["format"] = json!(99)).await);
    assert!(newer.contains("newer"), "{newer}");
    let empty = import_edited(|json| json["commits"][0]["changes"][0]["key"] = json!("")).await;
    assert!(matches!(empty, Err(BuildError::EmptyKey)), "{empty:?}");

    let state = ThreadSafeState::<u32>::new();
    let both = ThreadSafeState::builder()
        .initial_state([("x", 1)])
        .import(state.export())
        .try_build();
    assert!(invalid(both).contains("initial_state"));
}

/// A rollback restores its target's very values; an import keeps them
/// shared, so rolling back to that target again changes nothing, as it
/// would have in the original.
#[tokio::test]
async fn values_a_rollback_restored_stay_shared_through_an_import() {
    let state = ThreadSafeState::new();
    let v1 = state.set("plan", 1).await.unwrap();
    state.set("plan", 2).await.unwrap();
    let v3 = state.rollback(v1).await.unwrap();
    let copy = ThreadSafeState::builder()
        .import(through_json(&state.export()))
        .try_build()
        .unwrap();
    for s in [&state, &copy] {
        let v4 = s.rollback(v1).await.unwrap();
        let records: Vec<_> = s
            .history(None, None)
            .into_iter()
            .filter(|r| r.version == v4)
            .collect();
        assert!(records.is_empty(), "{records:?}");
        assert_eq!(s.snapshot().modified_version("plan"), Some(v3));
    }
}

#[tokio::test]
async fn every_malformed_part_of_an_export_is_named() {
    let invalid = |result: Result<ThreadSafeState<u32>, BuildError>| match result {
        Err(BuildError::InvalidImport { detail }) => detail,
        other => panic!("{other:?}"),
    };
    let state = ThreadSafeState::new();
    state.set("a", 1).await.unwrap();
    let export = state.export();
    assert!(format!("{export:?}").contains("Export"), "{export:?}");
    assert_eq!(export.version(), Version::new(1));

    // A state whose window starts after some keys exist, so the base has
    // entries to spoil.
    let state = ThreadSafeState::builder().max_history(1).build();
    state.set("a", 1).await.unwrap();
    state.set("b", 2).await.unwrap();
    state.rollback(Version::new(1)).await.unwrap();
    let json = serde_json::to_value(state.export()).unwrap();
    let import = |edit: &dyn Fn(&mut Value)| {
        let mut json = json.clone();
        edit(&mut json);
        let export: Export<u32> = serde_json::from_value(json).unwrap();
        ThreadSafeState::builder().import(export).try_build()
    };
    assert!(import(&|_| {}).is_ok());
    let detail = invalid(import(&|j| j["base"]["entries"][0]["created"] = json!(99)));
    assert!(detail.contains("do not fit"), "{detail}");
    let detail = invalid(import(&|j| {
        let first = j["base"]["entries"][0].clone();
        j["base"]["entries"].as_array_mut().unwrap().push(first);
    }));
    assert!(detail.contains("twice"), "{detail}");
    let detail = invalid(import(&|j| j["base"]["version"] = json!(50)));
    assert!(detail.contains("out of range"), "{detail}");
    let empty = import(&|j| j["base"]["entries"][0]["key"] = json!(""));
    assert!(matches!(empty, Err(BuildError::EmptyKey)), "{empty:?}");
    let detail = invalid(import(&|j| {
        j["commits"][0]["changes"][0]["same_as"] = json!(0);
        j["commits"][0]["changes"][0]["key"] = json!("zz");
    }));
    assert!(detail.contains("does not hold"), "{detail}");
}
