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
//! The etcd check runs against the server at `TSS_ETCD_ENDPOINT` (as
//! `tests/etcd.rs`: unset, it fails under `CI=true` and is skipped with a
//! note otherwise); `LINEARIZABILITY_ETCD_HISTORIES` (default 400, about
//! 40 s: two connects, ~25 etcd round trips and the log per history):
//!
//! ```sh
//! TSS_ETCD_ENDPOINT=http://127.0.0.1:2379 cargo test --features etcd --test linearizability -- --nocapture
//! ```
//!
//! The harness is backend-agnostic: [`check_backend`] takes a constructor
//! that returns a fresh `ThreadSafeState<u64>` for each history.
//!
//! # etcd, with clients on two handles (feature `etcd`)
//!
//! Each history connects two handles (two `connect()`s: two clients, two
//! mirrors, as two processes) to a fresh prefix, and runs the plan above
//! with the actors split between them (the first writer and a reader on
//! handle 0, the second writer, a second reader and the thread on handle
//! 1, the third writer on either). Afterwards the test reads, with its own
//! etcd client and a watch (not the crate's mirror), every revision etcd
//! applied under the prefix: the *log*.
//!
//! The model is the same, with [`Numbering::Log`]: commit `n` is the
//! `n`th revision of the log, with exactly the keys etcd wrote there. So
//! versions are sparse but no commit can be skipped, reordered or given
//! another number; a write that returns a version must have made that very
//! revision, with the effect its operation has on the state the model
//! holds there; `snapshot_at(v)` between two commits is the newer commit at
//! or before `v`; each handle's initial version is its own first listing.
//! Where etcd differs from memory by design, the model follows the
//! `EtcdBuilder` docs: `modify` and `rollback` may fail with
//! `Conflict { key, expected, found }`, which commits nothing and is
//! accepted where `key`'s modified version in the model is `found` (the
//! txn read it in its failure branch, atomically); a rollback writes the
//! keys that differed in its handle's snapshot (values compared by
//! identity, so a value equal to the target's but mirrored from elsewhere
//! is written again), so a key another write changed meanwhile keeps its
//! newer value; a rollback to the contents already there commits nothing
//! and returns the handle's version; the other handle's commits are
//! `External` in a handle's change stream.
//!
//! Three properties are checked for every history:
//!
//! - **Each handle's view is linearizable** (twice, once per handle): the
//!   handle's own operations, reads and writes, with their real-time
//!   intervals, plus every write of the other handle that can have made a
//!   commit or read etcd (a `delete` that found nothing, a lost compare),
//!   each with its invocation as the lower bound and **no upper bound**:
//!   it takes effect, for this handle, when the mirror publishes it, which
//!   may be long after it returned on its own handle. That is the
//!   guarantee: etcd orders all txns (the log), each mirror applies the
//!   log in order and publishes a prefix of it, and a write answers only
//!   once its own handle has published it (read-your-writes). An answer
//!   that reports etcd's state (a conflict's `found`, a delete's `false`)
//!   is an operation of its handle too, so a later read on that handle must
//!   not show an older state. Across the two checks, every pair of writes
//!   ordered in real time is ordered so in the log.
//! - **The whole history is sequentially consistent**: one order of every
//!   operation of both handles, respecting each actor's own order and the
//!   model. Reads on different handles are not ordered by real time (a
//!   handle may lag), but they must fit one log.
//!
//! The search is the one stateright's testers do, memoized on what has been
//! placed (see [`Search`]), since without real time to prune it theirs is
//! exponential in the number of actors. The in-memory check still uses
//! stateright's [`LinearizabilityTester`], with dense versions.

#[cfg(feature = "etcd")]
mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use thread_safe_state::{
    ChangeSet, Modification, Precondition, Snapshot, StateError, ThreadSafeState, Version,
};

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
    /// Its version (commit 0's is each handle's base: see [`Model::version_at`]).
    version: u64,
    /// The handle whose writer made it: the others record it as `External`.
    handle: usize,
    contents: Contents,
    operation: &'static str,
    /// Sorted by key.
    records: Vec<Record>,
}

/// The keys one etcd revision put (`Some`) or deleted (`None`), without
/// the prefix.
type Revision = (u64, Vec<(String, Option<u64>)>);

/// What etcd holds under one history's prefix: every revision that touched
/// it, oldest first, with the keys it put (`Some`) or deleted (`None`).
#[derive(Debug, Default)]
struct Log {
    /// Each handle's first version: the revision of its first listing.
    bases: Vec<u64>,
    revisions: Vec<Revision>,
}

/// How a backend numbers commits.
#[derive(Clone, Debug)]
enum Numbering {
    /// In memory: commit `n` is version `n`, and a rollback always commits.
    Dense,
    /// etcd: commit `n` is the `n`th revision of the log, with exactly the
    /// changes etcd applied there (so a commit's version and effect are
    /// pinned, and no commit can be skipped or reordered); a rollback to
    /// the contents it already has commits nothing.
    Log(Arc<Log>),
}

/// The sequential model: every commit so far, oldest first.
#[derive(Clone, Debug)]
struct Model {
    commits: Vec<Arc<Commit>>,
    max_history: usize,
    numbering: Numbering,
}

/// An operation as the checker sees it: on which handle, and whether it
/// is a write of the other handle in a per-handle check (see
/// [`per_handle`]).
#[derive(Clone, Debug)]
struct Call {
    handle: usize,
    foreign: bool,
    op: Op,
}

impl Model {
    fn new(max_history: usize, numbering: Numbering) -> Self {
        let initial = Commit {
            version: 0,
            handle: 0,
            contents: Contents::new(),
            operation: "Initial",
            records: Vec::new(),
        };
        Self {
            commits: vec![Arc::new(initial)],
            max_history,
            numbering,
        }
    }

    /// Commit `index`'s version as `handle` numbers it: the initial state
    /// is each etcd handle's own first listing.
    fn version_at(&self, index: usize, handle: usize) -> u64 {
        match (&self.numbering, index) {
            (Numbering::Log(log), 0) => log.bases[handle],
            _ => self.commits[index].version,
        }
    }

    fn newest(&self) -> usize {
        self.commits.len() - 1
    }

    fn current(&self, handle: usize) -> u64 {
        self.version_at(self.newest(), handle)
    }

    fn contents(&self) -> &Contents {
        &self
            .commits
            .last()
            .expect("the initial commit exists")
            .contents
    }

    /// The index of the oldest commit still reachable: the one before the
    /// last `max_history` commits.
    fn oldest_index(&self) -> usize {
        self.newest().saturating_sub(self.max_history)
    }

    /// The newest commit at or before version `v` (`v` is reachable).
    fn index_at(&self, v: u64, handle: usize) -> usize {
        (0..=self.newest())
            .rev()
            .find(|&i| self.version_at(i, handle) <= v)
            .expect("a reachable version has a commit at or before it")
    }

    /// The commit `snapshot_at(target)` shows, or why it cannot.
    fn reachable(&self, target: u64, handle: usize) -> Result<usize, Refusal> {
        let current = self.current(handle);
        if target > current {
            return Err(Refusal::FutureVersion { target, current });
        }
        let oldest_retained = self.version_at(self.oldest_index(), handle);
        if target < oldest_retained {
            return Err(Refusal::VersionCompacted {
                target,
                oldest_retained,
            });
        }
        Ok(self.index_at(target, handle))
    }

    /// Why `rollback(target)` is refused before it writes anything.
    fn rollback_refusal(&self, target: u64, handle: usize) -> Option<Refusal> {
        let current = self.current(handle);
        if target >= current {
            return Some(Refusal::InvalidVersion { target, current });
        }
        self.reachable(target, handle).err()
    }

    /// The version a key was last written at, `None` if absent.
    fn modified(&self, key: &str, handle: usize) -> Option<u64> {
        self.contents().get(key)?;
        (1..=self.newest())
            .rev()
            .find(|&i| self.commits[i].records.iter().any(|r| r.key == key))
            .map(|i| self.version_at(i, handle))
    }

    /// Append a commit with `contents` at `version`; its records are the
    /// keys whose value differs (values are unique, so this is what was
    /// written).
    fn push(
        &mut self,
        version: u64,
        handle: usize,
        operation: &'static str,
        contents: Contents,
    ) -> u64 {
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
            version,
            handle,
            contents,
            operation,
            records,
        }));
        version
    }

    /// Append the next dense commit.
    fn commit(&mut self, handle: usize, operation: &'static str, contents: Contents) -> u64 {
        let version = self.newest() as u64 + 1;
        self.push(version, handle, operation, contents)
    }

    /// Append the log's next revision if the operation claims its number
    /// (`claimed`, when it returned one) and `accept`s what etcd applied
    /// there.
    fn commit_logged(
        &mut self,
        handle: usize,
        operation: &'static str,
        claimed: Option<u64>,
        accept: impl FnOnce(&[(String, Option<u64>)], &Contents) -> bool,
    ) -> bool {
        let Numbering::Log(log) = &self.numbering else {
            unreachable!("only etcd histories have a log");
        };
        let log = Arc::clone(log);
        let Some((revision, changes)) = log.revisions.get(self.newest()) else {
            return false;
        };
        if claimed.is_some_and(|v| v != *revision) {
            return false;
        }
        let mut logged = self.contents().clone();
        for (key, value) in changes {
            match value {
                Some(value) => logged.insert(key.clone(), *value),
                None => logged.remove(key),
            };
        }
        if !accept(changes, &logged) {
            return false;
        }
        // A record for every key etcd wrote, even with the value it had
        // (a rollback compares values by identity, not by `==`).
        let before = self.contents();
        let mut records: Vec<Record> = changes
            .iter()
            .map(|(key, new)| Record {
                key: key.clone(),
                old: before.get(key).copied(),
                new: *new,
            })
            .collect();
        records.sort();
        self.commits.push(Arc::new(Commit {
            version: *revision,
            handle,
            contents: logged,
            operation,
            records,
        }));
        true
    }

    fn with(&self, edit: impl FnOnce(&mut Contents)) -> Contents {
        let mut contents = self.contents().clone();
        edit(&mut contents);
        contents
    }

    /// The contents a write that commits for sure leaves, and its
    /// operation (`None` for the other operations).
    fn written(&self, op: &Op) -> Option<(&'static str, Contents)> {
        Some(match op {
            Op::Set(key, value) => (
                "Set",
                self.with(|c| {
                    c.insert((*key).to_owned(), *value);
                }),
            ),
            Op::Update(items) if !items.is_empty() => (
                "Update",
                self.with(|c| {
                    for (key, value) in items {
                        c.insert((*key).to_owned(), *value);
                    }
                }),
            ),
            Op::Modify(key, tag) => {
                let old = self.contents().get(*key).copied();
                (
                    "Modify",
                    self.with(|c| {
                        c.insert((*key).to_owned(), modified(*tag, old));
                    }),
                )
            }
            _ => return None,
        })
    }

    /// One step of an etcd history (see [`Numbering::Log`]).
    fn logged_step(&mut self, call: &Call, ret: &Ret) -> bool {
        let handle = call.handle;
        match (&call.op, ret) {
            (op, Ret::Version(v)) if self.written(op).is_some() => {
                let (operation, contents) = self.written(op).expect("just seen");
                self.commit_logged(handle, operation, Some(*v), |_, logged| *logged == contents)
            }
            (Op::Delete(key), Ret::Deleted(true)) => {
                let contents = self.with(|c| {
                    c.remove(*key);
                });
                self.contents().contains_key(*key)
                    && self.commit_logged(handle, "Delete", None, |_, logged| *logged == contents)
            }
            // A failed compare: the txn's failure branch read the key's
            // modified version, in the same txn.
            (
                Op::Modify(key, _),
                Ret::Conflicted {
                    key: conflicted,
                    expected,
                    found,
                },
            ) => conflicted == key && expected != found && *found == self.modified(key, handle),
            (Op::Rollback(_), Ret::Conflicted { key, found, .. }) => {
                *found == self.modified(key, handle)
            }
            (Op::Rollback(target), Ret::RolledBack(Ok(v))) => {
                if self.rollback_refusal(*target, handle).is_some() {
                    return false;
                }
                let index = self.index_at(*target, handle);
                let then = self.commits[index].contents.clone();
                let now = self.contents().clone();
                let next = match &self.numbering {
                    Numbering::Log(log) => log.revisions.get(self.newest()).map(|r| r.0),
                    Numbering::Dense => unreachable!("only etcd histories have a log"),
                };
                if next == Some(*v) {
                    // The keys that differed in the handle's snapshot go
                    // back, compared on their modified versions; a key
                    // another write changed after that snapshot keeps
                    // its newer value. A value equal to the target's but
                    // not the same `Arc` (mirrored from the other handle)
                    // counts as different, and is written again.
                    return self.commit_logged(handle, "Rollback", Some(*v), |changes, _| {
                        changes
                            .iter()
                            .all(|(k, value)| then.get(k) == value.as_ref())
                    });
                }
                // Nothing to write: the handle's snapshot already had the
                // target's contents, and the version is that snapshot's.
                if call.foreign {
                    *v > *target && {
                        let at = self.index_at(*v, handle);
                        self.version_at(at, handle) == *v && self.commits[at].contents == then
                    }
                } else {
                    *v == self.current(handle) && now == then
                }
            }
            (Op::Update(items), Ret::Version(v)) if items.is_empty() => *v == self.current(handle),
            (Op::Delete(key), Ret::Deleted(false)) => !self.contents().contains_key(*key),
            (Op::Rollback(target), Ret::RolledBack(Err(refusal))) => {
                self.rollback_refusal(*target, handle).as_ref() == Some(refusal)
            }
            (op, _) if !op.is_write() => self.invoke(call) == *ret,
            _ => false,
        }
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

impl Op {
    /// Whether this operation is a write command (one that may commit).
    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Set(..) | Op::Update(..) | Op::Delete(..) | Op::Modify(..) | Op::Rollback(..)
        )
    }
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
    /// `modify` or `rollback` lost a compare on etcd: `key`'s modified
    /// version (`None`: absent) was `found`, not `expected`.
    Conflicted {
        key: String,
        expected: Option<u64>,
        found: Option<u64>,
    },
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
    type Op = Call;
    type Ret = Ret;

    fn invoke(&mut self, call: &Call) -> Ret {
        let handle = call.handle;
        if let Numbering::Log(log) = &self.numbering {
            if call.op.is_write() && !matches!(&call.op, Op::Update(items) if items.is_empty()) {
                // Only for an operation still running at the end of a
                // prefix of the history (the diagnosis of a failure):
                // take the log's next revision if the write can have made
                // it.
                let claimed = log.revisions.get(self.newest()).map(|r| r.0);
                let guess = match &call.op {
                    Op::Delete(key) => Ret::Deleted(self.contents().contains_key(*key)),
                    Op::Rollback(_) => Ret::RolledBack(Ok(claimed.unwrap_or(0))),
                    _ => Ret::Version(claimed.unwrap_or(0)),
                };
                let before = self.clone();
                if !self.logged_step(call, &guess) {
                    *self = before;
                }
                return Ret::Blocked;
            }
        }
        match &call.op {
            op @ (Op::Set(..) | Op::Modify(..) | Op::Update(..)) if self.written(op).is_some() => {
                let (operation, contents) = self.written(op).expect("just seen");
                Ret::Version(self.commit(handle, operation, contents))
            }
            Op::Set(..) | Op::Modify(..) | Op::Update(..) => Ret::Version(self.current(handle)),
            Op::Delete(key) => {
                if !self.contents().contains_key(*key) {
                    return Ret::Deleted(false);
                }
                let contents = self.with(|c| {
                    c.remove(*key);
                });
                self.commit(handle, "Delete", contents);
                Ret::Deleted(true)
            }
            Op::Rollback(target) => {
                if let Some(refusal) = self.rollback_refusal(*target, handle) {
                    return Ret::RolledBack(Err(refusal));
                }
                let index = self.index_at(*target, handle);
                let contents = self.commits[index].contents.clone();
                Ret::RolledBack(Ok(self.commit(handle, "Rollback", contents)))
            }
            Op::Get(key) => Ret::Value(self.contents().get(*key).copied()),
            Op::Snapshot => Ret::Snapshot(self.current(handle), self.contents().clone()),
            Op::Version => Ret::Version(self.current(handle)),
            Op::NewestRecord => Ret::NewestRecord(
                (self.oldest_index() + 1..=self.newest())
                    .rev()
                    .find(|&i| !self.commits[i].records.is_empty())
                    .map(|i| self.version_at(i, handle)),
            ),
            Op::SnapshotAt(v) => Ret::SnapshotAt(self.reachable(*v, handle).map(|index| {
                (
                    self.version_at(index, handle),
                    self.commits[index].contents.clone(),
                )
            })),
            Op::NextChange(after) => {
                let index = match self.reachable(*after, handle) {
                    Ok(index) => index,
                    Err(refusal) => return Ret::Change(Err(refusal)),
                };
                if index == self.newest() {
                    return Ret::Blocked;
                }
                let commit = &self.commits[index + 1];
                // A handle records the commits of the other as `External`.
                let operation = if commit.handle == handle {
                    commit.operation
                } else {
                    "External"
                };
                Ret::Change(Ok(Change {
                    version: self.version_at(index + 1, handle),
                    operation: operation.to_owned(),
                    records: commit.records.clone(),
                }))
            }
        }
    }

    fn is_valid_step(&mut self, call: &Call, ret: &Ret) -> bool {
        match self.numbering {
            Numbering::Dense => self.invoke(call) == *ret,
            Numbering::Log(_) => self.logged_step(call, ret),
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

/// A write's error: a lost compare (only etcd has them) or unexpected.
fn failed(error: &StateError) -> Ret {
    let since = |precondition: &Precondition| match precondition {
        Precondition::Absent => Some(None),
        Precondition::ModifiedAt(v) => Some(Some(v.get())),
        _ => None,
    };
    match error {
        StateError::Conflict {
            key,
            expected,
            found,
        } => since(expected).map_or_else(
            || unexpected(error),
            |expected| Ret::Conflicted {
                key: key.clone(),
                expected,
                found: found.map(Version::get),
            },
        ),
        _ => unexpected(error),
    }
}

fn version_ret(result: Result<Version, StateError>) -> Ret {
    result.map_or_else(|e| failed(&e), |v| Ret::Version(v.get()))
}

fn deleted_ret(result: Result<bool, StateError>) -> Ret {
    result.map_or_else(|e| unexpected(&e), Ret::Deleted)
}

fn rollback_ret(result: Result<Version, StateError>) -> Ret {
    match result {
        Ok(v) => Ret::RolledBack(Ok(v.get())),
        Err(e) => refusal(&e).map_or_else(|| failed(&e), |r| Ret::RolledBack(Err(r))),
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

/// Every actor's steps for one history, and the handle each uses (the
/// setup uses handle 0).
#[derive(Debug)]
struct Plan {
    setup: Vec<Step>,
    /// Tokio tasks.
    tasks: Vec<(usize, Vec<Step>)>,
    /// The plain thread (no change streams: those need a runtime).
    thread: (usize, Vec<Step>),
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
        let tasks = tasks.into_iter().map(|steps| (0, steps)).collect();
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
            thread: (0, thread),
        }
    }

    /// [`Plan::random`] over two handles: the first writer and the
    /// reader on handle 0, the second writer and the thread on handle 1,
    /// the third writer on either; a second reader on handle 1; and more
    /// reads right after writes, where a write that answered before its
    /// handle caught up would show.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    fn two_handles(rng: &mut Rng) -> Self {
        let mut plan = Self::random(rng);
        let third = rng.below(2) as usize;
        for ((handle, steps), on) in plan.tasks.iter_mut().zip([0, 1, third, 0]) {
            *handle = on;
            if !matches!(steps.last(), Some(Step::Read(_))) && rng.below(2) == 0 {
                steps.push(random_read(rng));
            }
        }
        let probes = [
            Step::AwaitSnapshotAt,
            Step::AwaitNewestRecord,
            Step::AwaitChange,
        ];
        let mut reader = Vec::new();
        follow(rng, &probes, &mut reader);
        follow(rng, &probes, &mut reader);
        plan.tasks.push((1, reader));
        plan.thread.0 = 1;
        plan
    }
}

// ---------------------------------------------------------------------------
// Recording histories.
// ---------------------------------------------------------------------------

/// One operation as its actor saw it, with its real-time tickets.
#[derive(Clone, Debug)]
struct Completed {
    actor: usize,
    handle: usize,
    invoked: u64,
    returned: u64,
    op: Op,
    ret: Ret,
}

/// Turns the versions a plan names (written for dense versions) into
/// versions of the history being recorded.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
enum Targets {
    /// In memory: as written.
    Dense,
    /// etcd: 0 is the newer of the two handles' first versions, 1 and 2
    /// the setup's versions, `2 + n` the second one plus `n` (a revision
    /// some commit may or may not have taken), and 1000 or more a version
    /// far in the future.
    Sparse([u64; 3]),
}

impl Targets {
    fn version(self, planned: u64) -> u64 {
        match self {
            Targets::Dense => planned,
            Targets::Sparse(_) if planned >= 1000 => 1 << 40,
            Targets::Sparse(setup) => match usize::try_from(planned) {
                Ok(i @ 0..=2) => setup[i],
                _ => setup[2] + planned - 2,
            },
        }
    }

    fn op(self, op: &Op) -> Op {
        match op {
            Op::Rollback(v) => Op::Rollback(self.version(*v)),
            Op::SnapshotAt(v) => Op::SnapshotAt(self.version(*v)),
            op => op.clone(),
        }
    }
}

/// An actor: runs its steps on one handle and records what it did.
struct Actor {
    id: usize,
    handle: usize,
    targets: Targets,
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
    fn new(id: usize, handle: usize, clock: Arc<AtomicU64>) -> Self {
        Self {
            id,
            handle,
            targets: Targets::Dense,
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
            handle: self.handle,
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
                let op = self.targets.op(op);
                let invoked = self.tick();
                let ret = read_once(state, &op);
                self.record(op, invoked, ret);
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
                let op = self.targets.op(op);
                let invoked = self.tick();
                let ret = write_async(state, &op, *spin_for).await;
                self.record(op, invoked, ret);
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
                let op = self.targets.op(op);
                let invoked = self.tick();
                let ret = write_blocking(state, &op, *spin_for);
                self.record(op, invoked, ret);
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

/// Run `plan` against `states` (the handles the plan's actors use) and
/// return every recorded operation. `targets` turns the setup's operations
/// into the versions the plan's rollbacks and `snapshot_at`s name.
fn record(
    runtime: &tokio::runtime::Runtime,
    states: &[ThreadSafeState<u64>],
    plan: &Plan,
    targets: impl FnOnce(&[Completed]) -> Targets,
) -> Vec<Completed> {
    let clock = Arc::new(AtomicU64::new(0));
    let mut setup = Actor::new(0, 0, Arc::clone(&clock));
    runtime.block_on(async {
        for step in &plan.setup {
            setup.run_async(&states[0], step).await;
        }
    });
    let newest_seen = setup.newest_seen;
    let targets = targets(&setup.done);
    let actor = |id: usize, handle: usize| {
        let mut actor = Actor::new(id, handle, Arc::clone(&clock));
        actor.newest_seen = newest_seen;
        actor.targets = targets;
        actor
    };
    let start = Arc::new(tokio::sync::Barrier::new(plan.tasks.len() + 1));
    let tasks: Vec<_> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, (handle, steps))| {
            let (state, start) = (states[*handle].clone(), Arc::clone(&start));
            let (mut actor, steps) = (actor(i + 1, *handle), steps.clone());
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
        let (handle, steps) = plan.thread.clone();
        let (state, start) = (states[handle].clone(), Arc::clone(&start));
        let mut actor = actor(plan.tasks.len() + 1, handle);
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
                "  [{:>3} .. {:>3}] actor {} on handle {}: {:?} -> {:?}",
                c.invoked, c.returned, c.actor, c.handle, c.op, c.ret
            )?;
        }
        Ok(())
    }
}

/// One invocation or return, as a tester is fed it.
struct Event<'a> {
    ticket: u64,
    is_return: bool,
    thread: usize,
    call: Call,
    completed: &'a Completed,
}

/// Every operation of `history` on its actor's thread, with its tickets.
fn whole(history: &[Completed]) -> Vec<Event<'_>> {
    let mut events: Vec<Event<'_>> = history
        .iter()
        .flat_map(|c| {
            let call = Call {
                handle: c.handle,
                foreign: false,
                op: c.op.clone(),
            };
            [(c.invoked, false), (c.returned, true)].map(|(ticket, is_return)| Event {
                ticket,
                is_return,
                thread: c.actor,
                call: call.clone(),
                completed: c,
            })
        })
        .collect();
    events.sort_by_key(|e| e.ticket);
    events
}

/// What `handle` must agree with: its own operations with their tickets,
/// and every write of the other handle that can have committed (or read
/// etcd: a `delete` that found nothing, a lost compare) from its
/// invocation on, each on a thread of its own, returning after everything
/// else. The other handle's reads and answers from its own snapshot (the
/// empty `update`, a refused rollback) are left out: they say nothing
/// about this handle.
fn per_handle(history: &[Completed], handle: usize) -> Vec<Event<'_>> {
    let mut events = whole(history);
    events.retain(|e| e.call.handle == handle);
    let foreign = history.iter().enumerate().filter(|(_, c)| {
        c.handle != handle
            && c.op.is_write()
            && !matches!(&c.op, Op::Update(items) if items.is_empty())
            && !matches!(c.ret, Ret::RolledBack(Err(_)))
    });
    for (i, c) in foreign {
        let call = Call {
            handle: c.handle,
            foreign: true,
            op: c.op.clone(),
        };
        let thread = history.len() + i + 1000;
        events.push(Event {
            ticket: c.invoked,
            is_return: false,
            thread,
            call: call.clone(),
            completed: c,
        });
        events.push(Event {
            ticket: u64::MAX,
            is_return: true,
            thread,
            call,
            completed: c,
        });
    }
    events.sort_by_key(|e| e.ticket);
    events
}

/// Feed `events` to the tester `new` makes.
fn consistent<T: ConsistencyTester<usize, Model>>(
    new: &impl Fn() -> T,
    events: &[Event<'_>],
) -> Result<bool, String> {
    let mut tester = new();
    for e in events {
        if e.is_return {
            tester.on_return(e.thread, e.completed.ret.clone())
        } else {
            tester.on_invoke(e.thread, e.call.clone())
        }
        .map_err(|e| format!("malformed history: {e}"))?;
    }
    Ok(tester.is_consistent())
}

/// Check `events` with the tester `new` makes (`property` names it).
///
/// On a violation, also names the return after which no order can work any
/// more: both properties are prefix-closed, so the shortest failing prefix
/// of the event sequence points at the operation to look at first.
fn check_with<T: ConsistencyTester<usize, Model>>(
    property: &str,
    events: &[Event<'_>],
    new: impl Fn() -> T,
) -> Result<(), String> {
    if consistent(&new, events)? {
        return Ok(());
    }
    let first_bad = (0..events.len())
        .filter(|&end| events[end].is_return)
        .find(|&end| !consistent(&new, &events[..=end]).unwrap_or(false))
        .map_or_else(String::new, |end| {
            let e = &events[end];
            let c = e.completed;
            format!(
                "; it stops being {property} when actor {} (handle {}) returns at ticket {}: \
                 {:?} -> {:?}",
                c.actor, c.handle, c.returned, c.op, c.ret
            )
        });
    Err(format!(
        "no sequential order of these operations matches the specification and the \
         order {property} requires{first_bad}"
    ))
}

/// Whether `history` (one handle, in memory) is linearizable.
fn check(history: &[Completed], max_history: usize) -> Result<(), String> {
    check_with("linearizable", &whole(history), || {
        LinearizabilityTester::new(Model::new(max_history, Numbering::Dense))
    })
}

/// How far a search got: the operations placed of each thread, and the
/// handle and operation of each commit.
type Placed = (Vec<usize>, Vec<(usize, &'static str)>);

/// The search for an order of an etcd history's operations: the one
/// stateright's testers do (try each actor's next operation, depth first),
/// with real-time order optional, memoized on what was placed so far.
/// Their search revisits the same placements along every interleaving that
/// reaches them, which is exponential in the number of actors once there is
/// no real time to prune it (the whole history, or the other handle's writes,
/// which may take effect any time after their invocation); with the log
/// pinning every commit, the model's state is the log position plus which
/// operation made each commit, so a failed placement need only be tried once.
struct Search<'a> {
    /// Each thread's operations, in its order.
    threads: Vec<Vec<&'a Event<'a>>>,
    /// For each operation (by thread and index): how many operations of
    /// each thread returned before it was invoked.
    after: Vec<Vec<Vec<usize>>>,
    /// Placements known to lead nowhere: how many operations of each
    /// thread were placed, and which handle and operation made each commit.
    failed: std::collections::HashSet<Placed>,
    /// The most operations placed in one order, and that order.
    best: Vec<&'a Event<'a>>,
}

impl<'a> Search<'a> {
    /// `invocations` are the events of the operations to place (each with
    /// its `returned` ticket, `u64::MAX` for none).
    fn new(invocations: Vec<(&'a Event<'a>, u64)>, real_time: bool) -> Self {
        let mut by_thread: BTreeMap<usize, Vec<(&'a Event<'a>, u64)>> = BTreeMap::new();
        for (event, returned) in invocations {
            by_thread
                .entry(event.thread)
                .or_default()
                .push((event, returned));
        }
        let threads: Vec<Vec<(&Event<'_>, u64)>> = by_thread.into_values().collect();
        let after = threads
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|(op, _)| {
                        threads
                            .iter()
                            .map(|other| match real_time {
                                true => other.iter().filter(|(_, r)| *r < op.ticket).count(),
                                false => 0,
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self {
            threads: threads
                .into_iter()
                .map(|ops| ops.into_iter().map(|(op, _)| op).collect())
                .collect(),
            after,
            failed: Default::default(),
            best: Vec::new(),
        }
    }

    fn run(&mut self, model: &Model) -> bool {
        let mut placed = vec![0; self.threads.len()];
        let mut order = Vec::new();
        self.place(model, &mut placed, &mut order)
    }

    fn place(
        &mut self,
        model: &Model,
        placed: &mut Vec<usize>,
        order: &mut Vec<&'a Event<'a>>,
    ) -> bool {
        if order.len() > self.best.len() {
            self.best = order.clone();
        }
        if placed
            .iter()
            .zip(&self.threads)
            .all(|(n, ops)| *n == ops.len())
        {
            return true;
        }
        let commits = model
            .commits
            .iter()
            .map(|c| (c.handle, c.operation))
            .collect();
        let key = (placed.clone(), commits);
        if self.failed.contains(&key) {
            return false;
        }
        for thread in 0..self.threads.len() {
            let Some(&event) = self.threads[thread].get(placed[thread]) else {
                continue;
            };
            let ready = self.after[thread][placed[thread]]
                .iter()
                .zip(placed.iter())
                .all(|(needed, done)| done >= needed);
            let mut next = model.clone();
            if !ready || !next.is_valid_step(&event.call, &event.completed.ret) {
                continue;
            }
            placed[thread] += 1;
            order.push(event);
            if self.place(&next, placed, order) {
                return true;
            }
            order.pop();
            placed[thread] -= 1;
        }
        self.failed.insert(key);
        false
    }
}

/// Whether `events` (of an etcd history) have an order the model accepts,
/// respecting real time if `real_time` (linearizability) or only each
/// actor's order (sequential consistency). On failure, says how far the
/// longest order got.
fn search(events: &[Event<'_>], model: &Model, real_time: bool) -> Result<(), String> {
    let returned: BTreeMap<usize, Vec<u64>> =
        events
            .iter()
            .filter(|e| e.is_return)
            .fold(BTreeMap::new(), |mut by_thread, e| {
                by_thread.entry(e.thread).or_default().push(e.ticket);
                by_thread
            });
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let invocations = events
        .iter()
        .filter(|e| !e.is_return)
        .map(|e| {
            let n = seen.entry(e.thread).or_default();
            *n += 1;
            (e, returned[&e.thread][*n - 1])
        })
        .collect();
    let mut search = Search::new(invocations, real_time);
    if search.run(model) {
        return Ok(());
    }
    // Where the longest order got stuck: each actor's next operation.
    let mut at = model.clone();
    let mut placed = vec![0; search.threads.len()];
    for e in &search.best {
        let thread = search
            .threads
            .iter()
            .position(|ops| ops.first().is_some_and(|op| op.thread == e.thread))
            .expect("placed from some thread");
        placed[thread] += 1;
        assert!(
            at.is_valid_step(&e.call, &e.completed.ret),
            "replaying the order"
        );
    }
    let stuck: Vec<String> = (0..search.threads.len())
        .filter_map(|thread| {
            let e = search.threads[thread].get(placed[thread])?;
            let ready = search.after[thread][placed[thread]]
                .iter()
                .zip(&placed)
                .all(|(needed, done)| done >= needed);
            let why = match ready {
                false => "waits for an operation that returned before it began",
                true if at.clone().is_valid_step(&e.call, &e.completed.ret) => "fits",
                true => "does not fit the model",
            };
            let c = e.completed;
            Some(format!("actor {} {:?} -> {:?} {why}", c.actor, c.op, c.ret))
        })
        .collect();
    let longest: Vec<String> = search
        .best
        .iter()
        .map(|e| {
            let c = e.completed;
            format!("actor {} {:?} -> {:?}", c.actor, c.op, c.ret)
        })
        .collect();
    Err(format!(
        "no order of these operations matches the specification and the order {} requires; \
         the longest order that does places {} of {} operations: {}; then {}",
        if real_time {
            "linearizability"
        } else {
            "sequential consistency"
        },
        longest.len(),
        search.threads.iter().map(Vec::len).sum::<usize>(),
        longest.join(", "),
        stuck.join("; ")
    ))
}

/// Check one history: each handle's view is linearizable, and the
/// whole history is sequentially consistent.
fn check_two_handles(history: &[Completed], log: &Arc<Log>) -> Result<(), String> {
    let model = Model::new(MAX_HISTORY, Numbering::Log(Arc::clone(log)));
    for handle in 0..2 {
        search(&per_handle(history, handle), &model, true)
            .map_err(|why| format!("handle {handle}'s view: {why}"))?;
    }
    search(&whole(history), &model, false).map_err(|why| format!("the whole history: {why}"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid number")),
        Err(_) => default,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
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
    let runtime = runtime();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut operations = 0;
    for index in 0..histories {
        let plan = Plan::random(&mut rng);
        let state = {
            let _entered = runtime.enter();
            build()
        };
        let history = record(&runtime, &[state], &plan, |_| Targets::Dense);
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
    let seed = env_or("LINEARIZABILITY_SEED", clock_seed());
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
        handle: 0,
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

/// The etcd backend, with the actors split across two handles (see the
/// module docs).
#[cfg(feature = "etcd")]
mod on_etcd {
    use super::*;

    use crate::common::etcd::endpoint;

    use etcd_client::{Client, EventType, WatchOptions};

    /// Histories per run unless `LINEARIZABILITY_ETCD_HISTORIES` says
    /// otherwise.
    const DEFAULT_ETCD_HISTORIES: usize = 400;

    async fn connect(endpoint: &str, prefix: &str) -> ThreadSafeState<u64> {
        ThreadSafeState::builder()
            .max_history(MAX_HISTORY)
            .etcd([endpoint], prefix)
            .connect()
            .await
            .expect("connect to etcd")
    }

    /// Every revision under `root` from `from` on, read with a watch of
    /// this test's own client (not the crate's mirror): put a marker under
    /// `root`, then take events until it shows. Keys are returned without
    /// `prefix`.
    async fn log_of(client: &mut Client, root: &str, prefix: &str, from: u64) -> Vec<Revision> {
        let end = format!("{root}end");
        client
            .put(end.as_bytes(), "", None)
            .await
            .expect("put the end marker");
        let start = i64::try_from(from).expect("a revision");
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = client
            .watch(root.as_bytes(), Some(options))
            .await
            .expect("watch the history's prefix");
        let mut revisions: Vec<Revision> = Vec::new();
        loop {
            let response = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("etcd sends the history's events")
                .expect("a watch response")
                .expect("the watch stays open");
            for event in response.events() {
                let kv = event.kv().expect("an event names its key");
                if kv.key() == end.as_bytes() {
                    return revisions;
                }
                // The crate's progress marker (prefix + 0xff + ...): a
                // revision of a request that changed nothing, not a commit.
                if kv
                    .key()
                    .strip_prefix(prefix.as_bytes())
                    .and_then(|rest| rest.first())
                    == Some(&0xff)
                {
                    continue;
                }
                let key = std::str::from_utf8(kv.key())
                    .ok()
                    .and_then(|key| key.strip_prefix(prefix))
                    .expect("only the state's keys are under the root")
                    .to_owned();
                let value = match event.event_type() {
                    EventType::Put => Some(serde_json::from_slice(kv.value()).expect("a u64")),
                    EventType::Delete => None,
                };
                let at = u64::try_from(kv.mod_revision()).expect("a revision");
                match revisions.last_mut() {
                    Some((revision, changes)) if *revision == at => changes.push((key, value)),
                    _ => revisions.push((at, vec![(key, value)])),
                }
            }
        }
    }

    /// The versions the plan's targets name: the newer first version of
    /// the two handles, then the setup's two writes.
    fn targets(bases: [u64; 2], setup: &[Completed]) -> Targets {
        let version = |i: usize| match setup[i].ret {
            Ret::Version(v) => v,
            ref other => panic!("the setup write {i} failed: {other:?}"),
        };
        Targets::Sparse([bases[0].max(bases[1]), version(0), version(1)])
    }

    #[test]
    fn every_read_api_on_two_etcd_handles() {
        let test = "every_read_api_on_two_etcd_handles";
        let Some(endpoint) = endpoint(test) else {
            return;
        };
        let histories = env_or("LINEARIZABILITY_ETCD_HISTORIES", DEFAULT_ETCD_HISTORIES);
        let seed = env_or("LINEARIZABILITY_SEED", clock_seed());
        let runtime = runtime();
        let mut client = runtime
            .block_on(Client::connect([&endpoint], None))
            .expect("connect this test's own etcd client");
        let run = format!(
            "tss-test/linearizability/{}-{}/",
            std::process::id(),
            clock_seed()
        );
        let mut rng = Rng(seed);
        let started = Instant::now();
        let mut operations = 0;
        for index in 0..histories {
            let plan = Plan::two_handles(&mut rng);
            let root = format!("{run}{index}/");
            let prefix = format!("{root}s/");
            let states = runtime.block_on(async {
                [
                    connect(&endpoint, &prefix).await,
                    connect(&endpoint, &prefix).await,
                ]
            });
            let bases = [states[0].version().get(), states[1].version().get()];
            let history = record(&runtime, &states, &plan, |setup| targets(bases, setup));
            drop(states);
            operations += history.len();
            let from = bases[0].min(bases[1]) + 1;
            let revisions = runtime.block_on(log_of(&mut client, &root, &prefix, from));
            let log = Arc::new(Log {
                bases: bases.to_vec(),
                revisions,
            });
            if let Err(why) = check_two_handles(&history, &log) {
                panic!(
                    "etcd: history {index} of {histories} (LINEARIZABILITY_SEED={seed}, prefix \
                     {prefix:?}) fails: {why}.\nHandles' first versions {bases:?}; etcd's \
                     revisions under the prefix: {:?}.\nActor 0 is the setup, actors 1-3 writer \
                     tasks, 4 and 5 the readers, 6 the plain thread; tickets are in real-time \
                     order.\n{}",
                    log.revisions,
                    Printed(&history)
                );
            }
        }
        println!(
            "etcd, two handles: {histories} histories, {operations} operations, every handle's \
             view linearizable and the whole sequentially consistent, in {:.1?}",
            started.elapsed()
        );
    }
}

/// The etcd checks themselves, on a log written by hand (no server
/// needed): a handle may lag behind the other's acknowledged write, but
/// not behind its own, and not behind what a lost compare reported.
#[test]
fn the_etcd_checks_allow_lag_but_not_stale_own_reads() {
    let op = |actor, handle, ticket, op, ret| Completed {
        actor,
        handle,
        invoked: ticket,
        returned: ticket + 1,
        op,
        ret,
    };
    let log = Arc::new(Log {
        bases: vec![10, 11],
        revisions: vec![
            (12, vec![("a".to_owned(), Some(1))]),
            (14, vec![("a".to_owned(), Some(2))]),
        ],
    });
    let ours = op(1, 0, 0, Op::Set("a", 1), Ret::Version(12));
    let theirs = op(2, 1, 2, Op::Set("a", 2), Ret::Version(14));
    // Handle 0 has not caught up with handle 1's acknowledged write: fine.
    let lagging = op(3, 0, 4, Op::Get("a"), Ret::Value(Some(1)));
    assert_eq!(
        check_two_handles(&[ours.clone(), theirs.clone(), lagging.clone()], &log),
        Ok(())
    );
    // Handle 1 behind its own write: not linearizable for handle 1.
    let stale = op(2, 1, 6, Op::Get("a"), Ret::Value(Some(1)));
    let error = check_two_handles(&[ours.clone(), theirs.clone(), stale], &log).unwrap_err();
    assert!(error.starts_with("handle 1's view"), "{error}");
    // A lost compare on handle 0 saw revision 14; the same actor's read
    // after it must too.
    let lost = op(
        3,
        0,
        4,
        Op::Modify("a", 9),
        Ret::Conflicted {
            key: "a".to_owned(),
            expected: Some(12),
            found: Some(14),
        },
    );
    let after = op(3, 0, 6, Op::Version, Ret::Version(14));
    assert_eq!(
        check_two_handles(&[ours.clone(), theirs.clone(), lost.clone(), after], &log),
        Ok(())
    );
    let behind = op(3, 0, 6, Op::Version, Ret::Version(12));
    let error = check_two_handles(&[ours, theirs, lost, behind], &log).unwrap_err();
    assert!(error.starts_with("handle 0's view"), "{error}");
}
