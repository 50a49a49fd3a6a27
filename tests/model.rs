//! Model-based property test: random sequences of writes (alone and in
//! bursts that the writer commits as one group), rollbacks to valid and
//! invalid targets, history queries and snapshot reads, with a random
//! `max_history`, checked after every step against a plain reference model.
//!
//! Values carry an identity as well as a number, because the state shares
//! values rather than copying them: a rollback restores the very values of
//! its target, and its records list exactly the keys whose value changed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use thread_safe_state::{ChangeRecord, Operation, StateError, ThreadSafeState, Version};

/// A value: a unique id per write, and the number written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Value {
    id: u64,
    number: i64,
}

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Clone, Debug)]
enum Write {
    Set(usize, i64),
    Update(Vec<(usize, i64)>),
    Delete(usize),
    Clear,
    Add(usize, i64),
    ModifyDelete(usize),
    ModifyPanic(usize),
    Retain(Vec<usize>),
    /// Roll back this many versions from the version before the step
    /// (0 is the current version, which is invalid).
    RollbackBack(u64),
    /// Roll back to a version this far in the future.
    RollbackAhead(u64),
}

#[derive(Clone, Debug)]
enum Step {
    One(Write),
    /// Writes queued together, committed by the writer as one group.
    Burst(Vec<Write>),
    History(Option<usize>, Option<usize>),
}

fn write() -> impl Strategy<Value = Write> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (key.clone(), -50i64..50).prop_map(|(k, v)| Write::Set(k, v)),
        2 => prop::collection::vec((key.clone(), -50i64..50), 0..4).prop_map(Write::Update),
        2 => key.clone().prop_map(Write::Delete),
        1 => Just(Write::Clear),
        2 => (key.clone(), 1i64..5).prop_map(|(k, d)| Write::Add(k, d)),
        1 => key.clone().prop_map(Write::ModifyDelete),
        1 => key.clone().prop_map(Write::ModifyPanic),
        1 => prop::collection::vec(key.clone(), 0..3).prop_map(Write::Retain),
        3 => (0u64..12).prop_map(Write::RollbackBack),
        1 => (1u64..3).prop_map(Write::RollbackAhead),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => write().prop_map(Step::One),
        2 => prop::collection::vec(write(), 2..6).prop_map(Step::Burst),
        1 => (prop::option::of(0..KEYS.len()), prop::option::of(0usize..6))
            .prop_map(|(k, l)| Step::History(k, l)),
    ]
}

/// One key's entry in the model.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ModelEntry {
    value: Value,
    created: u64,
    modified: u64,
}

type Contents = BTreeMap<&'static str, ModelEntry>;

#[derive(Clone, Debug, PartialEq)]
struct ModelRecord {
    version: u64,
    key: String,
    operation: Operation,
    old: Option<Value>,
    new: Option<Value>,
}

/// What a write returns, as the model predicts it.
#[derive(Debug, PartialEq)]
enum Outcome {
    Version(u64),
    Deleted(bool),
    Failed(StateError),
}

struct Model {
    max_history: usize,
    /// Contents of every version so far, index = version.
    versions: Vec<Contents>,
    /// Records of every commit so far, in commit order.
    records: Vec<ModelRecord>,
    next_id: u64,
}

impl Model {
    fn new(max_history: usize) -> Self {
        Self {
            max_history,
            versions: vec![Contents::new()],
            records: Vec::new(),
            next_id: 0,
        }
    }

    fn version(&self) -> u64 {
        self.versions.len() as u64 - 1
    }

    fn current(&self) -> &Contents {
        self.versions.last().unwrap()
    }

    fn oldest_retained(&self) -> u64 {
        self.version().saturating_sub(self.max_history as u64)
    }

    fn fresh(&mut self, number: i64) -> Value {
        self.next_id += 1;
        Value {
            id: self.next_id,
            number,
        }
    }

    /// Commit `next` as a new version with `records` (key, old, new).
    fn commit(
        &mut self,
        next: Contents,
        operation: Operation,
        changes: Vec<(&'static str, Option<Value>, Option<Value>)>,
    ) -> u64 {
        self.versions.push(next);
        let version = self.version();
        for (key, old, new) in changes {
            self.records.push(ModelRecord {
                version,
                key: key.to_owned(),
                operation,
                old,
                new,
            });
        }
        version
    }

    fn write_entries(
        &mut self,
        operation: Operation,
        items: Vec<(&'static str, Option<i64>)>,
    ) -> Option<u64> {
        let version = self.version() + 1;
        let mut next = self.current().clone();
        let mut changes = Vec::new();
        for (key, number) in items {
            let old = next.get(key).copied();
            match number {
                Some(number) => {
                    let value = self.fresh(number);
                    let created = old.map_or(version, |e| e.created);
                    next.insert(
                        key,
                        ModelEntry {
                            value,
                            created,
                            modified: version,
                        },
                    );
                    changes.push((key, old.map(|e| e.value), Some(value)));
                }
                None => {
                    if let Some(old) = next.remove(key) {
                        changes.push((key, Some(old.value), None));
                    }
                }
            }
        }
        if changes.is_empty() {
            return None;
        }
        Some(self.commit(next, operation, changes))
    }

    fn apply(&mut self, write: &Write, rollback_base: u64) -> Outcome {
        let current = self.version();
        let unchanged = |model: &Model| Outcome::Version(model.version());
        match write {
            Write::Set(k, v) => Outcome::Version(
                self.write_entries(Operation::Set, vec![(KEYS[*k], Some(*v))])
                    .unwrap(),
            ),
            Write::Update(items) => {
                let items = items.iter().map(|(k, v)| (KEYS[*k], Some(*v))).collect();
                match self.write_entries(Operation::Update, items) {
                    Some(v) => Outcome::Version(v),
                    None => unchanged(self),
                }
            }
            Write::Delete(k) => Outcome::Deleted(
                self.write_entries(Operation::Delete, vec![(KEYS[*k], None)])
                    .is_some(),
            ),
            Write::Clear => {
                let keys = self.current().keys().map(|k| (*k, None)).collect();
                match self.write_entries(Operation::Clear, keys) {
                    Some(v) => Outcome::Version(v),
                    None => unchanged(self),
                }
            }
            Write::Add(k, d) => {
                let old = self.current().get(KEYS[*k]).map_or(0, |e| e.value.number);
                let v = self.write_entries(Operation::Modify, vec![(KEYS[*k], Some(old + d))]);
                Outcome::Version(v.unwrap())
            }
            Write::ModifyDelete(k) => {
                match self.write_entries(Operation::Modify, vec![(KEYS[*k], None)]) {
                    Some(v) => Outcome::Version(v),
                    None => unchanged(self),
                }
            }
            Write::ModifyPanic(k) => Outcome::Failed(StateError::ModifyPanicked {
                key: KEYS[*k].to_owned(),
                message: "injected".to_owned(),
            }),
            Write::Retain(keep) => {
                let keep: Vec<&str> = keep.iter().map(|k| KEYS[*k]).collect();
                let dropped = self
                    .current()
                    .keys()
                    .filter(|k| !keep.contains(k))
                    .map(|k| (*k, None))
                    .collect();
                match self.write_entries(Operation::Retain, dropped) {
                    Some(v) => Outcome::Version(v),
                    None => unchanged(self),
                }
            }
            Write::RollbackBack(_) | Write::RollbackAhead(_) => {
                let target = rollback_target(write, rollback_base);
                if target >= current {
                    return Outcome::Failed(StateError::InvalidVersion {
                        target: Version::new(target),
                        current: Version::new(current),
                    });
                }
                if target < self.oldest_retained() {
                    return Outcome::Failed(StateError::VersionCompacted {
                        target: Version::new(target),
                        oldest_retained: Version::new(self.oldest_retained()),
                    });
                }
                let before = self.current().clone();
                let after = self.versions[target as usize].clone();
                let mut keys: Vec<&'static str> =
                    before.keys().chain(after.keys()).copied().collect();
                keys.sort_unstable();
                keys.dedup();
                let changes = keys
                    .into_iter()
                    .map(|k| {
                        (
                            k,
                            before.get(k).map(|e| e.value),
                            after.get(k).map(|e| e.value),
                        )
                    })
                    .filter(|(_, old, new)| old.map(|v| v.id) != new.map(|v| v.id))
                    .collect();
                Outcome::Version(self.commit(after, Operation::Rollback, changes))
            }
        }
    }

    /// Records in the retained window, most recent first, as the state
    /// reports them (within a commit, the last record first).
    fn history(&self, key: Option<&str>, limit: Option<usize>) -> Vec<ModelRecord> {
        let oldest = self.oldest_retained();
        self.records
            .iter()
            .rev()
            .filter(|r| r.version > oldest)
            .filter(|r| key.is_none_or(|k| r.key == k))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }
}

fn rollback_target(write: &Write, base: u64) -> u64 {
    match write {
        Write::RollbackBack(back) => base.saturating_sub(*back),
        Write::RollbackAhead(ahead) => base + ahead,
        _ => unreachable!(),
    }
}

/// Runs one write against the state; the value ids are assigned by the
/// model, so the state stores (id, number) pairs too.
async fn run(
    state: ThreadSafeState<Value>,
    write: Write,
    rollback_base: u64,
    ids: Vec<Value>,
) -> Outcome {
    let mut ids = ids.into_iter();
    let mut next = || ids.next().expect("model assigned an id");
    let to_outcome = |r: Result<Version, StateError>| match r {
        Ok(v) => Outcome::Version(v.get()),
        Err(e) => Outcome::Failed(e),
    };
    match write {
        Write::Set(k, _) => to_outcome(state.set(KEYS[k], next()).await),
        Write::Update(items) => {
            let items: Vec<_> = items.iter().map(|(k, _)| (KEYS[*k], next())).collect();
            to_outcome(state.update(items).await)
        }
        Write::Delete(k) => match state.delete(KEYS[k]).await {
            Ok(deleted) => Outcome::Deleted(deleted),
            Err(e) => Outcome::Failed(e),
        },
        Write::Clear => to_outcome(state.clear().await),
        Write::Add(k, d) => {
            let id = next();
            to_outcome(
                state
                    .modify(KEYS[k], move |old| {
                        let number = old.map_or(0, |v| v.number) + d;
                        Some(Value { id: id.id, number })
                    })
                    .await,
            )
        }
        Write::ModifyDelete(k) => to_outcome(state.modify(KEYS[k], |_| None).await),
        Write::ModifyPanic(k) => to_outcome(state.modify(KEYS[k], |_| panic!("injected")).await),
        Write::Retain(keep) => to_outcome(state.retain(keep.iter().map(|k| KEYS[*k])).await),
        Write::RollbackBack(_) | Write::RollbackAhead(_) => to_outcome(
            state
                .rollback(Version::new(rollback_target(&write, rollback_base)))
                .await,
        ),
    }
}

/// Apply `write` to the model and return the value ids it assigned, so the
/// state can be sent the same values.
fn apply_to_model(model: &mut Model, write: &Write, base: u64) -> (Outcome, Vec<Value>) {
    let first_id = model.next_id;
    let outcome = model.apply(write, base);
    // Replay the ids the model handed out, in order, with their numbers.
    let mut ids: Vec<Value> = Vec::new();
    let numbers: Vec<i64> = match write {
        Write::Set(_, v) => vec![*v],
        Write::Update(items) => items.iter().map(|(_, v)| *v).collect(),
        Write::Add(..) => vec![0], // the number is computed by the closure
        _ => vec![],
    };
    for (i, number) in numbers.into_iter().enumerate() {
        ids.push(Value {
            id: first_id + 1 + i as u64,
            number,
        });
    }
    (outcome, ids)
}

fn record_of(record: &ChangeRecord<Value>) -> ModelRecord {
    ModelRecord {
        version: record.version.get(),
        key: record.key.clone(),
        operation: record.operation,
        old: record.old_value.as_deref().copied(),
        new: record.new_value.as_deref().copied(),
    }
}

fn check_state(state: &ThreadSafeState<Value>, model: &Model) -> Result<(), TestCaseError> {
    let snapshot = state.snapshot();
    prop_assert_eq!(snapshot.version().get(), model.version());
    prop_assert_eq!(state.version().get(), model.version());
    let actual: BTreeMap<String, ModelEntry> = snapshot
        .keys()
        .map(|k| {
            let entry = snapshot.entry(k).unwrap();
            (
                k.to_owned(),
                ModelEntry {
                    value: **entry.value(),
                    created: entry.created().get(),
                    modified: entry.modified().get(),
                },
            )
        })
        .collect();
    let expected: BTreeMap<String, ModelEntry> = model
        .current()
        .iter()
        .map(|(k, e)| (k.to_string(), *e))
        .collect();
    prop_assert_eq!(actual, expected);
    let history: Vec<ModelRecord> = state.history(None, None).iter().map(record_of).collect();
    prop_assert_eq!(history, model.history(None, None));
    let metrics = state.metrics();
    prop_assert_eq!(
        metrics.history_len as u64,
        model.version() - model.oldest_retained()
    );
    Ok(())
}

/// The panics injected into `modify` are expected: keep them off stderr,
/// and leave every other panic to the default hook.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"injected") {
                default(info);
            }
        }));
    });
}

fn check_sequence(max_history: usize, steps: Vec<Step>) -> Result<(), TestCaseError> {
    quiet_injected_panics();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = ThreadSafeState::<Value>::builder()
            .max_history(max_history)
            .build();
        let mut model = Model::new(max_history);
        for step in steps {
            let base = model.version();
            match step {
                Step::One(write) => {
                    let (expected, ids) = apply_to_model(&mut model, &write, base);
                    let actual = run(state.clone(), write, base, ids).await;
                    prop_assert_eq!(&actual, &expected);
                }
                Step::Burst(writes) => {
                    // Spawned in order on a current_thread runtime, the
                    // writes reach the mailbox in order before the writer
                    // runs, and are committed as one group.
                    let mut expected = Vec::new();
                    let mut tasks = Vec::new();
                    for write in writes {
                        let (outcome, ids) = apply_to_model(&mut model, &write, base);
                        expected.push(outcome);
                        tasks.push(tokio::spawn(run(state.clone(), write, base, ids)));
                    }
                    for (task, expected) in tasks.into_iter().zip(expected) {
                        prop_assert_eq!(task.await.unwrap(), expected);
                    }
                }
                Step::History(key, limit) => {
                    let key = key.map(|k| KEYS[k]);
                    let actual: Vec<ModelRecord> =
                        state.history(key, limit).iter().map(record_of).collect();
                    prop_assert_eq!(actual, model.history(key, limit));
                }
            }
            check_state(&state, &model)?;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_state_behaves_like_the_model(
        max_history in prop_oneof![Just(0usize), Just(1), 2usize..6, Just(1000)],
        steps in prop::collection::vec(step(), 1..40),
    ) {
        check_sequence(max_history, steps)?;
    }
}
