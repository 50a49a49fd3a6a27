//! Linearizability of every read API, checked with a real checker
//! (`stateright`'s [`LinearizabilityTester`]) against a sequential model.
//!
//! # The model
//!
//! [`Model`] is the crate's documented semantics written as plain sequential
//! code: the list of every commit so far (version `i` is `commits[i]`, with
//! its contents, its operation and its change records), so the current
//! version is `commits.len() - 1`. A write command that changes something
//! appends exactly one commit; `delete` of an absent key and `update` of an
//! empty batch append none; `rollback(target)` appends a commit whose
//! contents equal `target`'s (always, even when nothing changes), or is
//! refused with `InvalidVersion` when `target` is not older than the current
//! version. Every read returns what the model holds at the point where it
//! takes effect: `get`, `snapshot` (version and contents), `version`,
//! `history(None, Some(1))` (the version of the newest record),
//! `snapshot_at(v)` (the contents, or `FutureVersion`/`VersionCompacted`), and
//! a change-stream delivery, `changes_since(v)?.next()`, modelled as one read
//! "commit `v + 1` exists, with these records", which can only take effect at
//! a point where the version is at least `v + 1`. So the check is
//! exactly the guarantee in `DESIGN.md`: no read API may show a version that
//! `version()` does not show yet, and reads agree with the version order of
//! the writes.
//!
//! Every value written is unique in a history (modify's values too, which
//! also encode the value they replaced), so "the value changed" is the same
//! whether the crate compares values or shares them, and change records can
//! be compared exactly.
//!
//! # The histories
//!
//! Each history runs on a fresh state (built by the backend's constructor),
//! on one multi-thread runtime with 2 workers shared by all histories:
//! - two setup writes (versions 1 and 2), so rollbacks to 0 and 1 are valid;
//! - three writer tasks, each doing 2-3 random writes (`set`, `update`,
//!   including the empty batch, `delete`, `modify` with a closure that may
//!   spin 20-200 us in the writer, `rollback` to valid and invalid targets)
//!   and now and then a read;
//! - one plain `std::thread` doing writes through `blocking()` and sync reads;
//! - one reader task that follows the history as a consumer would: it waits
//!   (spinning, bounded) for the version after the newest it has seen to
//!   appear through `snapshot_at`, `history` or a change stream, then reads
//!   `version()`, `get` or `snapshot()`.
//!
//! Bursts of concurrent writes, slow closures and rollbacks make the writer
//! commit groups with a rollback in the middle, which is where commits used
//! to become visible in the history before they were published.
//!
//! Every operation's invocation and return take a ticket from one shared
//! atomic counter, before the call and after it returns, so the ticket order
//! is consistent with real time (a return ticket taken before an invocation
//! ticket means the operation really returned first; overlapping ones may
//! look more concurrent than they were, which only weakens the check). The
//! events are fed to the tester in ticket order after the history ends. All
//! writes are kept; a reader keeps only the last attempt of a polled read
//! and drops a change-stream wait that timed out: dropping a read from a
//! history never turns a linearizable history into one that is not, so this
//! cannot cause a false alarm.
//!
//! On a violation the test panics with the history, one operation a line in
//! invocation order, with its tickets, actor, operation and result.
//!
//! # Running it
//!
//! ```sh
//! cargo test --test linearizability
//! LINEARIZABILITY_HISTORIES=20000 LINEARIZABILITY_SEED=7 cargo test --test linearizability -- --nocapture
//! ```
//!
//! `LINEARIZABILITY_HISTORIES` (default 4000, about 20 s in a debug build on
//! 2 idle cores, each history a few milliseconds) sets how many histories to
//! record and check;
//! `LINEARIZABILITY_SEED` fixes the random plans (timing still varies).
//!
//! The harness is backend-agnostic: [`check_backend`] takes a constructor
//! that returns a fresh `ThreadSafeState<u64>` for each history.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use thread_safe_state::{ChangeSet, Modification, Snapshot, StateError, ThreadSafeState, Version};

/// The keys every history writes and reads.
const KEYS: [&str; 3] = ["a", "b", "c"];

/// History retained by the states under test: far more than a history
/// commits, so nothing is compacted (the model knows the bound anyway).
const MAX_HISTORY: usize = 1024;

/// How long a reader waits for the next version to show up before it moves
/// on (it then keeps its last attempt, or drops a change-stream wait).
const PROBE_PATIENCE: Duration = Duration::from_millis(2);

/// Histories per run unless `LINEARIZABILITY_HISTORIES` says otherwise.
const DEFAULT_HISTORIES: usize = 4000;

// ---------------------------------------------------------------------------
// The sequential specification.
// ---------------------------------------------------------------------------

/// A state's contents: key to value.
type Contents = BTreeMap<String, u64>;

/// One key's change in one commit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    key: String,
    old: Option<u64>,
    new: Option<u64>,
}

/// A commit as a change stream delivers it (records sorted by key: the
/// order within one commit is not what this test checks).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    version: u64,
    operation: String,
    records: Vec<Record>,
}

#[derive(Debug)]
struct Commit {
    contents: Contents,
    operation: &'static str,
    /// Sorted by key.
    records: Vec<Record>,
}

/// The sequential model: every commit so far; version `i` is `commits[i]`.
#[derive(Clone, Debug)]
struct Model {
    commits: Vec<Arc<Commit>>,
    max_history: u64,
}

impl Model {
    fn new(max_history: usize) -> Self {
        let initial = Commit {
            contents: Contents::new(),
            operation: "Initial",
            records: Vec::new(),
        };
        Self {
            commits: vec![Arc::new(initial)],
            max_history: max_history as u64,
        }
    }

    fn current(&self) -> u64 {
        self.commits.len() as u64 - 1
    }

    fn contents(&self) -> &Contents {
        &self.commits.last().expect("version 0 exists").contents
    }

    fn oldest_retained(&self) -> u64 {
        self.current().saturating_sub(self.max_history)
    }

    /// Whether `target` can be read with `snapshot_at` or streamed from.
    fn reachable(&self, target: u64) -> Result<(), Refusal> {
        let current = self.current();
        if target > current {
            return Err(Refusal::FutureVersion { target, current });
        }
        let oldest_retained = self.oldest_retained();
        if target < oldest_retained {
            return Err(Refusal::VersionCompacted {
                target,
                oldest_retained,
            });
        }
        Ok(())
    }

    /// Append a commit with `contents`; its records are the keys whose
    /// value differs (values are unique, so this is what was written).
    fn commit(&mut self, operation: &'static str, contents: Contents) -> u64 {
        let before = self.contents();
        let mut records: Vec<Record> = before
            .keys()
            .chain(contents.keys().filter(|k| !before.contains_key(*k)))
            .filter_map(|key| {
                let (old, new) = (before.get(key).copied(), contents.get(key).copied());
                (old != new).then(|| Record {
                    key: key.clone(),
                    old,
                    new,
                })
            })
            .collect();
        records.sort();
        self.commits.push(Arc::new(Commit {
            contents,
            operation,
            records,
        }));
        self.current()
    }

    fn with(&self, edit: impl FnOnce(&mut Contents)) -> Contents {
        let mut contents = self.contents().clone();
        edit(&mut contents);
        contents
    }
}

/// The value a `modify` with `tag` writes over `old`: unique (the tag is),
/// and it shows which value the closure saw.
fn modified(tag: u64, old: Option<u64>) -> u64 {
    (tag << 32) | (old.unwrap_or(0) & 0xffff_ffff)
}

/// One operation of a history.
#[derive(Clone, Debug)]
enum Op {
    Set(&'static str, u64),
    Update(Vec<(&'static str, u64)>),
    Delete(&'static str),
    /// `modify(key, |old| Some(modified(tag, old)))`.
    Modify(&'static str, u64),
    Rollback(u64),
    Get(&'static str),
    Snapshot,
    Version,
    /// `history(None, Some(1))`.
    NewestRecord,
    SnapshotAt(u64),
    /// `changes_since(v)?.next()`.
    NextChange(u64),
}

/// A refusal the API documents.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Refusal {
    InvalidVersion { target: u64, current: u64 },
    VersionCompacted { target: u64, oldest_retained: u64 },
    FutureVersion { target: u64, current: u64 },
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq)]
enum Ret {
    /// `set`, `update`, `modify`, `version()`.
    Version(u64),
    Deleted(bool),
    RolledBack(Result<u64, Refusal>),
    Value(Option<u64>),
    Snapshot(u64, Contents),
    NewestRecord(Option<u64>),
    SnapshotAt(Result<(u64, Contents), Refusal>),
    Change(Result<Change, Refusal>),
    /// The operation cannot take effect in this state: a change stream
    /// waiting for a commit that does not exist yet. Never recorded, so a
    /// delivery must be placed where its commit exists.
    Blocked,
    /// Anything the specification never returns (`Closed`, a panic, a
    /// stream that ended, a snapshot of the wrong version...).
    Unexpected(String),
}

impl SequentialSpec for Model {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::Set(key, value) => {
                let contents = self.with(|c| {
                    c.insert((*key).to_owned(), *value);
                });
                Ret::Version(self.commit("Set", contents))
            }
            Op::Update(items) if items.is_empty() => Ret::Version(self.current()),
            Op::Update(items) => {
                let contents = self.with(|c| {
                    for (key, value) in items {
                        c.insert((*key).to_owned(), *value);
                    }
                });
                Ret::Version(self.commit("Update", contents))
            }
            Op::Delete(key) => {
                if !self.contents().contains_key(*key) {
                    return Ret::Deleted(false);
                }
                let contents = self.with(|c| {
                    c.remove(*key);
                });
                self.commit("Delete", contents);
                Ret::Deleted(true)
            }
            Op::Modify(key, tag) => {
                let old = self.contents().get(*key).copied();
                let contents = self.with(|c| {
                    c.insert((*key).to_owned(), modified(*tag, old));
                });
                Ret::Version(self.commit("Modify", contents))
            }
            Op::Rollback(target) => {
                let (target, current) = (*target, self.current());
                if target >= current {
                    return Ret::RolledBack(Err(Refusal::InvalidVersion { target, current }));
                }
                if let Err(refusal) = self.reachable(target) {
                    return Ret::RolledBack(Err(refusal));
                }
                let contents = self.commits[target as usize].contents.clone();
                Ret::RolledBack(Ok(self.commit("Rollback", contents)))
            }
            Op::Get(key) => Ret::Value(self.contents().get(*key).copied()),
            Op::Snapshot => Ret::Snapshot(self.current(), self.contents().clone()),
            Op::Version => Ret::Version(self.current()),
            Op::NewestRecord => Ret::NewestRecord(
                (self.oldest_retained() + 1..=self.current())
                    .rev()
                    .find(|v| !self.commits[*v as usize].records.is_empty()),
            ),
            Op::SnapshotAt(v) => Ret::SnapshotAt(
                self.reachable(*v)
                    .map(|()| (*v, self.commits[*v as usize].contents.clone())),
            ),
            Op::NextChange(after) => {
                if let Err(refusal) = self.reachable(*after) {
                    return Ret::Change(Err(refusal));
                }
                if *after == self.current() {
                    return Ret::Blocked;
                }
                let commit = &self.commits[*after as usize + 1];
                Ret::Change(Ok(Change {
                    version: after + 1,
                    operation: commit.operation.to_owned(),
                    records: commit.records.clone(),
                }))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Turning the crate's answers into `Ret`s.
// ---------------------------------------------------------------------------

fn refusal(error: &StateError) -> Option<Refusal> {
    Some(match *error {
        StateError::InvalidVersion { target, current } => Refusal::InvalidVersion {
            target: target.get(),
            current: current.get(),
        },
        StateError::VersionCompacted {
            target,
            oldest_retained,
        } => Refusal::VersionCompacted {
            target: target.get(),
            oldest_retained: oldest_retained.get(),
        },
        StateError::FutureVersion { target, current } => Refusal::FutureVersion {
            target: target.get(),
            current: current.get(),
        },
        _ => return None,
    })
}

fn unexpected(error: &StateError) -> Ret {
    Ret::Unexpected(format!("{error:?}"))
}

fn version_ret(result: Result<Version, StateError>) -> Ret {
    result.map_or_else(|e| unexpected(&e), |v| Ret::Version(v.get()))
}

fn deleted_ret(result: Result<bool, StateError>) -> Ret {
    result.map_or_else(|e| unexpected(&e), Ret::Deleted)
}

fn rollback_ret(result: Result<Version, StateError>) -> Ret {
    match result {
        Ok(v) => Ret::RolledBack(Ok(v.get())),
        Err(e) => refusal(&e).map_or_else(|| unexpected(&e), |r| Ret::RolledBack(Err(r))),
    }
}

fn contents_of(snapshot: &Snapshot<u64>) -> Contents {
    snapshot.iter().map(|(k, v)| (k.to_owned(), **v)).collect()
}

fn snapshot_at_ret(result: Result<Snapshot<u64>, StateError>) -> Ret {
    match result {
        Ok(s) => Ret::SnapshotAt(Ok((s.version().get(), contents_of(&s)))),
        Err(e) => refusal(&e).map_or_else(|| unexpected(&e), |r| Ret::SnapshotAt(Err(r))),
    }
}

fn change_ret(set: &ChangeSet<u64>) -> Ret {
    if let Some(r) = set.records.iter().find(|r| r.version != set.version) {
        return Ret::Unexpected(format!(
            "record of v{} in change set v{}",
            r.version, set.version
        ));
    }
    let mut records: Vec<Record> = set
        .records
        .iter()
        .map(|r| Record {
            key: r.key.clone(),
            old: r.old_value.as_deref().copied(),
            new: r.new_value.as_deref().copied(),
        })
        .collect();
    records.sort();
    Ret::Change(Ok(Change {
        version: set.version.get(),
        operation: format!("{:?}", set.operation),
        records,
    }))
}

// ---------------------------------------------------------------------------
// Plans: what each actor of a history does.
// ---------------------------------------------------------------------------

/// One step of an actor's plan.
#[derive(Clone, Debug)]
enum Step {
    /// A write; a `Modify` spins this long inside the writer.
    Write(Op, Duration),
    /// A plain read, done once.
    Read(Op),
    /// Poll `snapshot_at(newest seen + 1)` until it answers.
    AwaitSnapshotAt,
    /// Poll `history(None, Some(1))` until it shows a version newer than
    /// the newest seen.
    AwaitNewestRecord,
    /// `changes_since(newest seen)?.next()`, waiting a little.
    AwaitChange,
}

/// A tiny deterministic generator (SplitMix64): plans are reproducible from
/// `LINEARIZABILITY_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> &'static str {
        KEYS[self.below(KEYS.len() as u64) as usize]
    }
}

/// Every actor's steps for one history.
#[derive(Debug)]
struct Plan {
    setup: Vec<Step>,
    /// Tokio tasks.
    tasks: Vec<Vec<Step>>,
    /// The plain thread (no change streams: those need a runtime).
    thread: Vec<Step>,
}

/// Hands out the unique values of one plan.
struct Values(u64);

impl Values {
    fn fresh(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn random_write(rng: &mut Rng, values: &mut Values) -> Step {
    let none = Duration::ZERO;
    match rng.below(100) {
        0..=19 => Step::Write(Op::Set(rng.key(), values.fresh()), none),
        20..=29 => {
            let batch = match rng.below(10) {
                0 => Vec::new(),
                1..=5 => vec![(rng.key(), values.fresh())],
                _ => vec![("a", values.fresh()), ("c", values.fresh())],
            };
            Step::Write(Op::Update(batch), none)
        }
        30..=39 => Step::Write(Op::Delete(rng.key()), none),
        40..=49 => Step::Write(Op::Modify(rng.key(), values.fresh()), none),
        50..=71 => {
            let spin = Duration::from_micros(20 + rng.below(181));
            Step::Write(Op::Modify(rng.key(), values.fresh()), spin)
        }
        _ => {
            let target = match rng.below(10) {
                0..=4 => 1,
                5..=7 => 0,
                8 => 2 + rng.below(3),
                _ => 1000,
            };
            Step::Write(Op::Rollback(target), none)
        }
    }
}

fn random_read(rng: &mut Rng) -> Step {
    Step::Read(match rng.below(5) {
        0 => Op::Get(rng.key()),
        1 => Op::Snapshot,
        2 => Op::Version,
        3 => Op::NewestRecord,
        _ => Op::SnapshotAt(1 + rng.below(4)),
    })
}

/// Steps for a reader: wait for the next version through one API, then
/// read through others.
fn follow(rng: &mut Rng, probes: &[Step], steps: &mut Vec<Step>) {
    steps.push(probes[rng.below(probes.len() as u64) as usize].clone());
    steps.push(Step::Read(Op::Version));
    if rng.below(2) == 0 {
        steps.push(Step::Read(match rng.below(2) {
            0 => Op::Get(rng.key()),
            _ => Op::Snapshot,
        }));
    }
}

impl Plan {
    fn random(rng: &mut Rng) -> Self {
        let mut values = Values(0);
        let setup = vec![
            Step::Write(Op::Set("a", values.fresh()), Duration::ZERO),
            Step::Write(Op::Set("b", values.fresh()), Duration::ZERO),
        ];
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let mut steps: Vec<Step> = (0..2 + rng.below(2))
                .map(|_| random_write(rng, &mut values))
                .collect();
            if rng.below(4) == 0 {
                steps.push(random_read(rng));
            }
            tasks.push(steps);
        }
        let mut reader = Vec::new();
        let probes = [
            Step::AwaitSnapshotAt,
            Step::AwaitNewestRecord,
            Step::AwaitChange,
        ];
        follow(rng, &probes, &mut reader);
        follow(rng, &probes, &mut reader);
        tasks.push(reader);
        let mut thread = Vec::new();
        for _ in 0..2 + rng.below(2) {
            match rng.below(3) {
                0 => thread.push(random_read(rng)),
                _ => thread.push(random_write(rng, &mut values)),
            }
        }
        if rng.below(2) == 0 {
            follow(
                rng,
                &[Step::AwaitSnapshotAt, Step::AwaitNewestRecord],
                &mut thread,
            );
        }
        Self {
            setup,
            tasks,
            thread,
        }
    }
}

// ---------------------------------------------------------------------------
// Recording histories.
// ---------------------------------------------------------------------------

/// One operation as its actor saw it, with its real-time tickets.
#[derive(Clone, Debug)]
struct Completed {
    actor: usize,
    invoked: u64,
    returned: u64,
    op: Op,
    ret: Ret,
}

/// An actor: runs its steps and records what it did.
struct Actor {
    id: usize,
    clock: Arc<AtomicU64>,
    done: Vec<Completed>,
    /// The newest version this actor has seen through any read.
    newest_seen: u64,
}

fn spin(duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

impl Actor {
    fn new(id: usize, clock: Arc<AtomicU64>) -> Self {
        Self {
            id,
            clock,
            done: Vec::new(),
            newest_seen: 0,
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Record an operation invoked at ticket `invoked` that just returned.
    fn record(&mut self, op: Op, invoked: u64, ret: Ret) {
        let returned = self.tick();
        let seen = match &ret {
            Ret::Version(v) | Ret::Snapshot(v, _) | Ret::NewestRecord(Some(v)) => Some(*v),
            Ret::RolledBack(Ok(v)) | Ret::SnapshotAt(Ok((v, _))) => Some(*v),
            Ret::Change(Ok(change)) => Some(change.version),
            _ => None,
        };
        self.newest_seen = self.newest_seen.max(seen.unwrap_or(0));
        self.done.push(Completed {
            actor: self.id,
            invoked,
            returned,
            op,
            ret,
        });
    }

    /// A read that needs no runtime, or a polled read; both are recorded.
    fn read(&mut self, state: &ThreadSafeState<u64>, step: &Step) {
        match step {
            Step::Read(op) => {
                let invoked = self.tick();
                let ret = read_once(state, op);
                self.record(op.clone(), invoked, ret);
            }
            Step::AwaitSnapshotAt => {
                let op = Op::SnapshotAt(self.newest_seen + 1);
                let (invoked, ret) = self.poll(
                    || read_once(state, &op),
                    |ret| matches!(ret, Ret::SnapshotAt(Ok(_))),
                );
                self.record(op, invoked, ret);
            }
            Step::AwaitNewestRecord => {
                let newest_seen = self.newest_seen;
                let (invoked, ret) = self.poll(
                    || read_once(state, &Op::NewestRecord),
                    |ret| matches!(ret, Ret::NewestRecord(Some(v)) if *v > newest_seen),
                );
                self.record(Op::NewestRecord, invoked, ret);
            }
            Step::Write(..) | Step::AwaitChange => unreachable!("not a sync read: {step:?}"),
        }
    }

    /// Repeat `read` until `done` accepts its answer or patience runs out;
    /// the last attempt, with its invocation ticket, is the one recorded
    /// (the earlier ones are dropped, which is sound for reads).
    fn poll(&self, mut read: impl FnMut() -> Ret, done: impl Fn(&Ret) -> bool) -> (u64, Ret) {
        let deadline = Instant::now() + PROBE_PATIENCE;
        loop {
            let invoked = self.tick();
            let ret = read();
            if done(&ret) || Instant::now() >= deadline {
                return (invoked, ret);
            }
            std::hint::spin_loop();
        }
    }

    async fn run_async(&mut self, state: &ThreadSafeState<u64>, step: &Step) {
        match step {
            Step::Write(op, spin_for) => {
                let invoked = self.tick();
                let ret = write_async(state, op, *spin_for).await;
                self.record(op.clone(), invoked, ret);
            }
            Step::AwaitChange => {
                let after = self.newest_seen;
                let op = Op::NextChange(after);
                let invoked = self.tick();
                let ret = match state.changes_since(Version::new(after)) {
                    Err(e) => refusal(&e).map_or_else(|| unexpected(&e), |r| Ret::Change(Err(r))),
                    Ok(mut stream) => {
                        match tokio::time::timeout(PROBE_PATIENCE, stream.next()).await {
                            // Nothing committed in time: drop the read.
                            Err(_elapsed) => return,
                            Ok(None) => Ret::Unexpected("the change stream ended".into()),
                            Ok(Some(Err(e))) => unexpected(&e),
                            Ok(Some(Ok(set))) => change_ret(&set),
                        }
                    }
                };
                self.record(op, invoked, ret);
            }
            _ => self.read(state, step),
        }
    }

    fn run_blocking(&mut self, state: &ThreadSafeState<u64>, step: &Step) {
        match step {
            Step::Write(op, spin_for) => {
                let invoked = self.tick();
                let ret = write_blocking(state, op, *spin_for);
                self.record(op.clone(), invoked, ret);
            }
            _ => self.read(state, step),
        }
    }
}

fn read_once(state: &ThreadSafeState<u64>, op: &Op) -> Ret {
    match op {
        Op::Get(key) => Ret::Value(state.get(key).as_deref().copied()),
        Op::Snapshot => {
            let snapshot = state.snapshot();
            Ret::Snapshot(snapshot.version().get(), contents_of(&snapshot))
        }
        Op::Version => Ret::Version(state.version().get()),
        Op::NewestRecord => Ret::NewestRecord(
            state
                .history(None, Some(1))
                .first()
                .map(|r| r.version.get()),
        ),
        Op::SnapshotAt(v) => snapshot_at_ret(state.snapshot_at(Version::new(*v))),
        _ => unreachable!("not a read: {op:?}"),
    }
}

fn modify_fn(
    tag: u64,
    spin_for: Duration,
) -> impl FnOnce(Option<&u64>) -> Modification<u64> + Send {
    move |old| {
        spin(spin_for);
        Modification::Set(modified(tag, old.copied()))
    }
}

async fn write_async(state: &ThreadSafeState<u64>, op: &Op, spin_for: Duration) -> Ret {
    match op {
        Op::Set(key, value) => version_ret(state.set(key, *value).await),
        Op::Update(items) => version_ret(state.update(items.iter().copied()).await),
        Op::Delete(key) => deleted_ret(state.delete(key).await),
        Op::Modify(key, tag) => version_ret(
            state
                .modify(key, modify_fn(*tag, spin_for))
                .await
                .map(|m| m.version),
        ),
        Op::Rollback(target) => rollback_ret(state.rollback(Version::new(*target)).await),
        _ => unreachable!("not a write: {op:?}"),
    }
}

fn write_blocking(state: &ThreadSafeState<u64>, op: &Op, spin_for: Duration) -> Ret {
    let writes = state.blocking();
    match op {
        Op::Set(key, value) => version_ret(writes.set(key, *value)),
        Op::Update(items) => version_ret(writes.update(items.iter().copied())),
        Op::Delete(key) => deleted_ret(writes.delete(key)),
        Op::Modify(key, tag) => version_ret(
            writes
                .modify(key, modify_fn(*tag, spin_for))
                .map(|m| m.version),
        ),
        Op::Rollback(target) => rollback_ret(writes.rollback(Version::new(*target))),
        _ => unreachable!("not a write: {op:?}"),
    }
}

/// Run `plan` against `state` and return every recorded operation.
fn record(
    runtime: &tokio::runtime::Runtime,
    state: ThreadSafeState<u64>,
    plan: &Plan,
) -> Vec<Completed> {
    let clock = Arc::new(AtomicU64::new(0));
    let mut setup = Actor::new(0, Arc::clone(&clock));
    runtime.block_on(async {
        for step in &plan.setup {
            setup.run_async(&state, step).await;
        }
    });
    let newest_seen = setup.newest_seen;
    let start = Arc::new(tokio::sync::Barrier::new(plan.tasks.len() + 1));
    let tasks: Vec<_> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, steps)| {
            let (state, start, steps) = (state.clone(), Arc::clone(&start), steps.clone());
            let mut actor = Actor::new(i + 1, Arc::clone(&clock));
            actor.newest_seen = newest_seen;
            runtime.spawn(async move {
                start.wait().await;
                for step in &steps {
                    actor.run_async(&state, step).await;
                }
                actor.done
            })
        })
        .collect();
    let thread = {
        let (state, start, steps) = (state.clone(), Arc::clone(&start), plan.thread.clone());
        let mut actor = Actor::new(plan.tasks.len() + 1, Arc::clone(&clock));
        actor.newest_seen = newest_seen;
        let runtime = runtime.handle().clone();
        std::thread::spawn(move || {
            runtime.block_on(start.wait());
            for step in &steps {
                actor.run_blocking(&state, step);
            }
            actor.done
        })
    };
    let mut history = setup.done;
    for task in tasks {
        history.extend(runtime.block_on(task).expect("an actor task panicked"));
    }
    history.extend(thread.join().expect("the actor thread panicked"));
    history
}

// ---------------------------------------------------------------------------
// Checking.
// ---------------------------------------------------------------------------

/// A history, printed one operation a line in invocation order.
struct Printed<'a>(&'a [Completed]);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ops: Vec<&Completed> = self.0.iter().collect();
        ops.sort_by_key(|c| c.invoked);
        for c in ops {
            writeln!(
                f,
                "  [{:>3} .. {:>3}] actor {}: {:?} -> {:?}",
                c.invoked, c.returned, c.actor, c.op, c.ret
            )?;
        }
        Ok(())
    }
}

/// Feed `history` to the linearizability tester in real-time order.
///
/// On a violation, also names the return after which no order can work any
/// more: linearizability is prefix-closed, so the shortest failing prefix
/// of the event sequence points at the operation to look at first.
fn check(history: &[Completed], max_history: usize) -> Result<(), String> {
    let mut events: Vec<(u64, bool, &Completed)> = history
        .iter()
        .flat_map(|c| [(c.invoked, false, c), (c.returned, true, c)])
        .collect();
    events.sort_by_key(|(ticket, ..)| *ticket);
    let consistent = |events: &[(u64, bool, &Completed)]| -> Result<bool, String> {
        let mut tester = LinearizabilityTester::new(Model::new(max_history));
        for (_, is_return, c) in events {
            if *is_return {
                tester.on_return(c.actor, c.ret.clone())
            } else {
                tester.on_invoke(c.actor, c.op.clone())
            }
            .map_err(|e| format!("malformed history: {e}"))?;
        }
        Ok(tester.is_consistent())
    };
    if consistent(&events)? {
        return Ok(());
    }
    let first_bad = (0..events.len())
        .filter(|&end| events[end].1)
        .find(|&end| !consistent(&events[..=end]).unwrap_or(false))
        .map_or_else(String::new, |end| {
            let (ticket, _, c) = events[end];
            format!(
                "; it stops being linearizable when actor {} returns at ticket {ticket}: \
                 {:?} -> {:?}",
                c.actor, c.op, c.ret
            )
        });
    Err(format!(
        "no sequential order of these operations, respecting real time, matches the \
         specification{first_bad}"
    ))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid number")),
        Err(_) => default,
    }
}

/// Record and check `histories` random histories, each on a fresh state
/// from `build` (called inside the runtime, whose 2 workers every history
/// shares). Panics with the first history that is not linearizable.
fn check_backend(
    name: &str,
    max_history: usize,
    histories: usize,
    seed: u64,
    build: impl Fn() -> ThreadSafeState<u64>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut operations = 0;
    for index in 0..histories {
        let plan = Plan::random(&mut rng);
        let state = {
            let _entered = runtime.enter();
            build()
        };
        let history = record(&runtime, state, &plan);
        operations += history.len();
        if let Err(why) = check(&history, max_history) {
            panic!(
                "{name}: history {index} of {histories} (LINEARIZABILITY_SEED={seed}) is not \
                 linearizable: {why}.\nActor 0 is the setup, actors 1-{} writer tasks, actor {} \
                 the reader task, actor {} the plain thread; tickets are in real-time order.\n{}",
                plan.tasks.len() - 1,
                plan.tasks.len(),
                plan.tasks.len() + 1,
                Printed(&history)
            );
        }
    }
    println!(
        "{name}: {histories} histories, {operations} operations, all linearizable, in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn every_read_api_is_linearizable() {
    let histories = env_or("LINEARIZABILITY_HISTORIES", DEFAULT_HISTORIES);
    let clock_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = env_or("LINEARIZABILITY_SEED", clock_seed);
    check_backend("in-memory", MAX_HISTORY, histories, seed, || {
        ThreadSafeState::builder().max_history(MAX_HISTORY).build()
    });
}

/// The checker itself: a history that shows a commit in `snapshot_at`
/// before `version()` does is rejected; the same history in the other
/// order is accepted.
#[test]
fn the_checker_rejects_a_read_from_the_future() {
    let op = |actor, ticket, op, ret| Completed {
        actor,
        invoked: ticket,
        returned: ticket + 1,
        op,
        ret,
    };
    let set = op(1, 0, Op::Set("a", 1), Ret::Version(1));
    let contents: Contents = [("a".to_owned(), 1)].into();
    let seen = op(2, 2, Op::SnapshotAt(1), Ret::SnapshotAt(Ok((1, contents))));
    let stale = op(2, 4, Op::Version, Ret::Version(0));
    assert!(check(&[set.clone(), seen.clone()], 8).is_ok());
    assert!(check(&[set.clone(), stale.clone(), seen.clone()], 8).is_err());
    let mut overlapping = [set, seen, stale];
    overlapping[0].returned = 10; // the set is still running: still too late
    assert!(check(&overlapping, 8).is_err());
}
