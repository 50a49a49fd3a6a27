//! Model-based property test: random sequences of writes (alone and in
//! bursts that the writer commits as one group), rollbacks to valid and
//! invalid targets, history queries and snapshot reads, with a random
//! `max_history`, checked after every step against a plain reference model.
//!
//! Values carry an identity as well as a number, because the state shares
//! values rather than copying them: a rollback restores the very values of
//! its target, and its records list exactly the keys whose value changed.
//!
//! Per-key versions follow etcd's `mod_revision`: a key a rollback changes
//! is modified at the rollback's version (and created there if it was
//! absent), a key it leaves alone keeps its versions, so a key's modified
//! version never decreases and always equals the version of its newest
//! history record. A compare-and-set token taken before a rollback must not
//! succeed again after it (`Step::RollbackThenStaleCas`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use thread_safe_state::{
    ChangeRecord, Modification, Operation, Precondition, StateError, ThreadSafeState,
    TransactionError, Version, Write as TsWrite,
};

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
    SetIf(usize, i64, PreKind),
    DeleteIf(usize, PreKind),
    /// A transaction's writes, and whether its closure aborts instead.
    Transaction(Vec<TxWrite>, bool),
}

/// A precondition, resolved against the model when the command is built.
#[derive(Clone, Debug)]
enum PreKind {
    Absent,
    Exists,
    /// The key's current modified version (version 0 if absent).
    Current,
    /// An arbitrary version, most likely wrong.
    At(u64),
}

#[derive(Clone, Debug)]
enum TxWrite {
    Set(usize, i64),
    /// Set the key to its value in the transaction's snapshot plus this.
    Add(usize, i64),
    Delete(usize),
}

#[derive(Clone, Debug)]
enum Step {
    One(Write),
    /// Writes queued together, committed by the writer as one group.
    Burst(Vec<Write>),
    History(Option<usize>, Option<usize>),
    /// Optionally rewrite `key` first, then roll back `back` versions, then
    /// a conditional write on `key` with `PreKind::At` the modified version
    /// `key` had at the rollback's target: a compare-and-set token older
    /// than the rollback, which must fail whenever the rollback changed the
    /// key (the ABA case: set A, set B, rollback to A, CAS at A's version).
    RollbackThenStaleCas {
        rewrite: Option<i64>,
        back: u64,
        key: usize,
        number: i64,
        delete: bool,
    },
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
        2 => (key.clone(), -50i64..50, pre_kind()).prop_map(|(k, v, p)| Write::SetIf(k, v, p)),
        1 => (key.clone(), pre_kind()).prop_map(|(k, p)| Write::DeleteIf(k, p)),
        2 => (prop::collection::vec(tx_write(), 0..4), prop::bool::weighted(0.2))
            .prop_map(|(w, abort)| Write::Transaction(w, abort)),
    ]
}

fn pre_kind() -> impl Strategy<Value = PreKind> {
    prop_oneof![
        1 => Just(PreKind::Absent),
        1 => Just(PreKind::Exists),
        3 => Just(PreKind::Current),
        1 => (0u64..20).prop_map(PreKind::At),
    ]
}

fn tx_write() -> impl Strategy<Value = TxWrite> {
    let key = 0..KEYS.len();
    prop_oneof![
        (key.clone(), -50i64..50).prop_map(|(k, v)| TxWrite::Set(k, v)),
        (key.clone(), 1i64..5).prop_map(|(k, d)| TxWrite::Add(k, d)),
        key.prop_map(TxWrite::Delete),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => write().prop_map(Step::One),
        2 => prop::collection::vec(write(), 2..6).prop_map(Step::Burst),
        1 => (prop::option::of(0..KEYS.len()), prop::option::of(0usize..6))
            .prop_map(|(k, l)| Step::History(k, l)),
        2 => (
            prop::option::weighted(0.7, -50i64..50),
            0u64..5,
            0..KEYS.len(),
            -50i64..50,
            prop::bool::weighted(0.3),
        )
            .prop_map(|(rewrite, back, key, number, delete)| {
                Step::RollbackThenStaleCas { rewrite, back, key, number, delete }
            }),
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
    Aborted,
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

    fn apply(
        &mut self,
        write: &Write,
        rollback_base: u64,
        precondition: Option<Precondition>,
    ) -> Outcome {
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
            Write::SetIf(k, _, _) | Write::DeleteIf(k, _) => {
                let key = KEYS[*k];
                let expected = precondition.expect("resolved");
                let found = self.current().get(key).map(|e| Version::new(e.modified));
                let holds = match expected {
                    Precondition::Absent => found.is_none(),
                    Precondition::Exists => found.is_some(),
                    Precondition::ModifiedAt(v) => found == Some(v),
                    _ => unreachable!(),
                };
                if !holds {
                    return Outcome::Failed(StateError::Conflict {
                        key: key.to_owned(),
                        expected,
                        found,
                    });
                }
                if let Write::SetIf(_, v, _) = write {
                    let v = self.write_entries(Operation::Conditional, vec![(key, Some(*v))]);
                    Outcome::Version(v.unwrap())
                } else {
                    Outcome::Deleted(
                        self.write_entries(Operation::Conditional, vec![(key, None)])
                            .is_some(),
                    )
                }
            }
            Write::Transaction(writes, abort) => {
                if *abort {
                    return Outcome::Aborted;
                }
                let snapshot = self.current().clone();
                let items = writes
                    .iter()
                    .map(|w| match w {
                        TxWrite::Set(k, v) => (KEYS[*k], Some(*v)),
                        TxWrite::Add(k, d) => {
                            let old = snapshot.get(KEYS[*k]).map_or(0, |e| e.value.number);
                            (KEYS[*k], Some(old + d))
                        }
                        TxWrite::Delete(k) => (KEYS[*k], None),
                    })
                    .collect();
                match self.write_entries(Operation::Transaction, items) {
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
                // The rollback is a new version R whose values are the
                // target's. A key whose value it changes is written at R
                // (created at R if it was absent); a key whose value is the
                // very same keeps its current versions.
                let rollback = current + 1;
                let before = self.current().clone();
                let then = &self.versions[target as usize];
                let mut after = Contents::new();
                let mut changes = Vec::new();
                let mut keys: Vec<&'static str> =
                    before.keys().chain(then.keys()).copied().collect();
                keys.sort_unstable();
                keys.dedup();
                for k in keys {
                    let (now, old) = (before.get(k), then.get(k));
                    if now.map(|e| e.value.id) == old.map(|e| e.value.id) {
                        if let Some(now) = now {
                            after.insert(k, *now);
                        }
                        continue;
                    }
                    if let Some(old) = old {
                        after.insert(
                            k,
                            ModelEntry {
                                value: old.value,
                                created: now.map_or(rollback, |e| e.created),
                                modified: rollback,
                            },
                        );
                    }
                    changes.push((k, now.map(|e| e.value), old.map(|e| e.value)));
                }
                let version = self.commit(after, Operation::Rollback, changes);
                assert_eq!(version, rollback);
                Outcome::Version(version)
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

/// What the model decided when it built a command: the first value id it
/// handed out (the state is sent the same ids, in the same order) and the
/// precondition it resolved.
struct Resolved {
    first_id: u64,
    precondition: Option<Precondition>,
}

/// Runs one write against the state.
async fn run(
    state: ThreadSafeState<Value>,
    write: Write,
    rollback_base: u64,
    resolved: Resolved,
) -> Outcome {
    let mut ids = resolved.first_id..;
    let mut value = move |number: i64| Value {
        id: ids.next().unwrap(),
        number,
    };
    let to_outcome = |r: Result<Version, StateError>| match r {
        Ok(v) => Outcome::Version(v.get()),
        Err(e) => Outcome::Failed(e),
    };
    let deleted = |r: Result<bool, StateError>| match r {
        Ok(deleted) => Outcome::Deleted(deleted),
        Err(e) => Outcome::Failed(e),
    };
    match write {
        Write::Set(k, v) => to_outcome(state.set(KEYS[k], value(v)).await),
        Write::Update(items) => {
            let items: Vec<_> = items.iter().map(|(k, v)| (KEYS[*k], value(*v))).collect();
            to_outcome(state.update(items).await)
        }
        Write::Delete(k) => deleted(state.delete(KEYS[k]).await),
        Write::Clear => to_outcome(state.clear().await),
        Write::Add(k, d) => {
            let id = value(0).id;
            to_outcome(
                state
                    .modify(KEYS[k], move |old| {
                        let number = old.map_or(0, |v| v.number) + d;
                        Modification::Set(Value { id, number })
                    })
                    .await
                    .map(|modified| modified.version),
            )
        }
        Write::ModifyDelete(k) => to_outcome(
            state
                .modify(KEYS[k], |_| Modification::Delete)
                .await
                .map(|m| m.version),
        ),
        Write::ModifyPanic(k) => to_outcome(
            state
                .modify(KEYS[k], |_| panic!("injected"))
                .await
                .map(|m| m.version),
        ),
        Write::Retain(keep) => to_outcome(state.retain(keep.iter().map(|k| KEYS[*k])).await),
        Write::RollbackBack(_) | Write::RollbackAhead(_) => to_outcome(
            state
                .rollback(Version::new(rollback_target(&write, rollback_base)))
                .await,
        ),
        Write::SetIf(k, v, _) => {
            let expected = resolved.precondition.unwrap();
            to_outcome(state.set_if(KEYS[k], value(v), expected).await)
        }
        Write::DeleteIf(k, _) => deleted(
            state
                .delete_if(KEYS[k], resolved.precondition.unwrap())
                .await,
        ),
        Write::Transaction(writes, abort) => {
            let result = state
                .transaction(move |snapshot| {
                    if abort {
                        return Err("aborted");
                    }
                    Ok(writes
                        .iter()
                        .map(|w| match *w {
                            TxWrite::Set(k, v) => TsWrite::set(KEYS[k], value(v)),
                            TxWrite::Add(k, d) => {
                                let old = snapshot.get(KEYS[k]).map_or(0, |v| v.number);
                                TsWrite::set(KEYS[k], value(old + d))
                            }
                            TxWrite::Delete(k) => TsWrite::delete(KEYS[k]),
                        })
                        .collect())
                })
                .await;
            match result {
                Ok(v) => Outcome::Version(v.get()),
                Err(TransactionError::Aborted("aborted")) => Outcome::Aborted,
                Err(TransactionError::State(e)) => Outcome::Failed(e),
                Err(other) => panic!("{other:?}"),
            }
        }
    }
}

/// Apply `write` to the model, first resolving what the command carries.
fn apply_to_model(model: &mut Model, write: &Write, base: u64) -> (Outcome, Resolved) {
    let precondition = match write {
        Write::SetIf(k, _, kind) | Write::DeleteIf(k, kind) => Some(match kind {
            PreKind::Absent => Precondition::Absent,
            PreKind::Exists => Precondition::Exists,
            PreKind::Current => Precondition::ModifiedAt(Version::new(
                model.current().get(KEYS[*k]).map_or(0, |e| e.modified),
            )),
            PreKind::At(v) => Precondition::ModifiedAt(Version::new(*v)),
        }),
        _ => None,
    };
    let resolved = Resolved {
        first_id: model.next_id + 1,
        precondition,
    };
    (model.apply(write, base, precondition), resolved)
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
    prop_assert_eq!(&actual, &expected);
    // A key's modified version is the version of its newest history record
    // (none retained if that record was evicted).
    for (key, entry) in &actual {
        let newest = state
            .history(Some(key.as_str()), Some(1))
            .first()
            .map(|r| r.version.get());
        let retained = entry.modified > model.oldest_retained();
        prop_assert_eq!(
            newest,
            retained.then_some(entry.modified),
            "newest record of {:?} vs its modified version",
            key
        );
    }
    let history: Vec<ModelRecord> = state.history(None, None).iter().map(record_of).collect();
    prop_assert_eq!(history, model.history(None, None));
    // Time travel: the edges and the middle of the retained window.
    let (oldest, current) = (model.oldest_retained(), model.version());
    for v in [oldest, (oldest + current) / 2, current] {
        let then = state.snapshot_at(Version::new(v)).unwrap();
        let actual: BTreeMap<String, ModelEntry> = then
            .keys()
            .map(|k| {
                let e = then.entry(k).unwrap();
                let entry = ModelEntry {
                    value: **e.value(),
                    created: e.created().get(),
                    modified: e.modified().get(),
                };
                (k.to_owned(), entry)
            })
            .collect();
        let expected: BTreeMap<String, ModelEntry> = model.versions[v as usize]
            .iter()
            .map(|(k, e)| (k.to_string(), *e))
            .collect();
        prop_assert_eq!(actual, expected, "snapshot_at({})", v);
    }
    if oldest > 0 {
        prop_assert_eq!(
            state.snapshot_at(Version::new(oldest - 1)).unwrap_err(),
            StateError::VersionCompacted {
                target: Version::new(oldest - 1),
                oldest_retained: Version::new(oldest),
            }
        );
    }
    let future = state
        .snapshot_at(Version::new(current + 1))
        .map(|s| s.version());
    prop_assert_eq!(
        future,
        Err(StateError::FutureVersion {
            target: Version::new(current + 1),
            current: Version::new(current),
        })
    );
    let metrics = state.metrics();
    prop_assert_eq!(
        metrics.history_len as u64,
        model.version() - model.oldest_retained()
    );
    Ok(())
}

/// A key's modified version never decreases while it exists, and a key that
/// was deleted and recreated gets a newer one still: `last` holds the
/// newest modified version seen for each key, present or not.
fn check_monotonic(
    state: &ThreadSafeState<Value>,
    last: &mut BTreeMap<String, u64>,
) -> Result<(), TestCaseError> {
    let snapshot = state.snapshot();
    for key in snapshot.keys() {
        let modified = snapshot.modified_version(key).unwrap().get();
        let previous = last.insert(key.to_owned(), modified).unwrap_or(0);
        prop_assert!(
            modified >= previous,
            "modified version of {:?} went back from {} to {}",
            key,
            previous,
            modified
        );
    }
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
        // A change stream from the start sees every commit, once, in order.
        let mut stream = state.changes_since(Version::INITIAL).unwrap();
        let mut model = Model::new(max_history);
        let mut modified = BTreeMap::new();
        for step in steps {
            let base = model.version();
            match step {
                Step::One(write) => {
                    let (expected, resolved) = apply_to_model(&mut model, &write, base);
                    let actual = run(state.clone(), write, base, resolved).await;
                    prop_assert_eq!(&actual, &expected);
                }
                Step::RollbackThenStaleCas {
                    rewrite,
                    back,
                    key,
                    number,
                    delete,
                } => {
                    let mut writes = Vec::new();
                    if let Some(rewrite) = rewrite {
                        writes.push(Write::Set(key, rewrite));
                    }
                    writes.push(Write::RollbackBack(back));
                    let mut target = 0;
                    for (i, write) in writes.into_iter().enumerate() {
                        let base = model.version();
                        target = base.saturating_sub(back) as usize;
                        let (expected, resolved) = apply_to_model(&mut model, &write, base);
                        let actual = run(state.clone(), write, base, resolved).await;
                        prop_assert_eq!(&actual, &expected, "sub-step {}", i);
                        check_state(&state, &model)?;
                        check_monotonic(&state, &mut modified)?;
                    }
                    // The token: the key's modified version at the rollback's
                    // target, i.e. what it was before the write the rollback
                    // undid. After the rollback it is stale unless the
                    // rollback left the key alone.
                    let token = model.versions[target]
                        .get(KEYS[key])
                        .map_or(0, |e| e.modified);
                    let cas = if delete {
                        Write::DeleteIf(key, PreKind::At(token))
                    } else {
                        Write::SetIf(key, number, PreKind::At(token))
                    };
                    let base = model.version();
                    let (expected, resolved) = apply_to_model(&mut model, &cas, base);
                    let actual = run(state.clone(), cas, base, resolved).await;
                    prop_assert_eq!(&actual, &expected, "stale compare-and-set at {}", token);
                }
                Step::Burst(writes) => {
                    // Spawned in order on a current_thread runtime, the
                    // writes reach the mailbox in order before the writer
                    // runs, and are committed as one group.
                    let mut expected = Vec::new();
                    let mut tasks = Vec::new();
                    for write in writes {
                        let (outcome, resolved) = apply_to_model(&mut model, &write, base);
                        expected.push(outcome);
                        tasks.push(tokio::spawn(run(state.clone(), write, base, resolved)));
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
            check_monotonic(&state, &mut modified)?;
        }
        drop(state);
        let (mut streamed, mut versions) = (Vec::new(), Vec::new());
        while let Some(set) = stream.next().await {
            let set = set.expect("the stream keeps up");
            versions.push(set.version.get());
            for record in &set.records {
                prop_assert_eq!(record.version, set.version);
                streamed.push(record_of(record));
            }
        }
        prop_assert_eq!(streamed, model.records.clone());
        prop_assert_eq!(versions, (1..=model.version()).collect::<Vec<_>>());
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
