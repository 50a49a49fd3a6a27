//! The synchronous commit core: apply, record, publish, notify, reply,
//! release.
//!
//! The async writer loop only moves commands from the mailbox into
//! [`Committer::commit_batch`]; everything that decides what readers see
//! happens here, in plain synchronous code, so the loom models drive it.
//!
//! Order for one group of commands (see `DESIGN.md`):
//! 1. apply each command to the writer's private map, in place where no
//!    published version shares the nodes;
//! 2. push the group's commits to the bounded history, the last one with
//!    its snapshot (readers do not show them yet: every history query is
//!    bounded by the published version);
//! 3. publish that snapshot to the snapshot cell, which moves the
//!    published watermark for every read API at once;
//! 4. notify waiters, and send the group to change streams;
//! 5. reply to every caller of the group;
//! 6. drop what the group retired (replaced values, evicted history), each
//!    under `catch_unwind`, so a panicking `Drop` loses no reply.
//!
//! Replying after publishing is what makes `set(..).await` read-your-writes:
//! by the time a caller learns its version, every reader on every thread can
//! see it. Each command still gets its own version; the group shares one
//! publish.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Instant, SystemTime};

use crate::error::{Precondition, StateError};
use crate::history::{Change, Changes, Commit, CommitView, Operation, Unreachable};
use crate::map::Map;
use crate::metrics::GroupCounts;
use crate::modify::{Modification, ValueSlot};
use crate::shared::Shared;
use crate::snapshot::{Entry, Snapshot};
use crate::sync::{lock, oneshot, Arc};
use crate::transaction::{TransactionFn, Write};
use crate::writer::command::{Applied, Command, ModifyFn, Op, Reply};
use crate::writer::expiry::Expiry;
use crate::writer::feed::Feed;
use crate::writer::key::KeyArg;
use crate::writer::retired::{Item, Retired};
use crate::Version;

/// What a write command did: its operation and records, or why it failed.
type Written<V> = Result<(Operation, Changes<V>), StateError>;

/// A caller waiting for its reply, the reply, and when it was sent.
type Answer = (oneshot::Sender<Reply>, Reply, Instant);

/// Owns the writer's private copy of the map and the version counter.
pub(crate) struct Committer<V> {
    /// The latest state. Nodes no published snapshot shares are mutated in
    /// place, so a group of writes copies each shared node at most once.
    map: Map<V>,
    version: Version,
    /// The newest published version.
    published: Version,
    /// Commits applied but not yet pushed to the history.
    pending: Vec<Commit<V>>,
    /// Replies of the current group, sent after it is published.
    answers: Vec<Answer>,
    /// The group's latest recorded snapshot, until it is published.
    unpublished: Option<Snapshot<V>>,
    /// What the group replaced or evicted, dropped after the replies.
    retired: Retired<V>,
    feed: Feed<V>,
    /// The keys with a TTL and their deadlines.
    expiry: Expiry,
    /// Callers of `close`, answered when the writer stops.
    close_requests: Vec<oneshot::Sender<Reply>>,
    /// The group's statistics, added to the shared counters once the group
    /// is published, so `metrics()` never counts what `version()` does not
    /// show.
    counts: GroupCounts,
    shared: Arc<Shared<V>>,
    /// Loom models only: an ordering bug on purpose, to prove the models
    /// catch it.
    #[cfg(thread_safe_state_loom)]
    pub(crate) broken_order: BrokenOrder,
}

impl<V> Committer<V> {
    /// A committer continuing from `shared`'s current snapshot.
    pub(crate) fn new(shared: Arc<Shared<V>>, feed: Feed<V>) -> Self {
        let current = Snapshot::from_inner(shared.current.load_full());
        Self {
            map: current.map().clone(),
            version: current.version(),
            published: current.version(),
            pending: Vec::new(),
            answers: Vec::new(),
            unpublished: None,
            retired: Retired::new(),
            feed,
            expiry: Expiry::new(),
            counts: GroupCounts::default(),
            close_requests: Vec::new(),
            shared,
            #[cfg(thread_safe_state_loom)]
            broken_order: BrokenOrder::None,
        }
    }

    /// Apply `commands` in order, publish once, answer every caller, then
    /// release what the group retired.
    pub(crate) fn commit_batch(&mut self, commands: impl IntoIterator<Item = Command<V>>) {
        let started = self.apply_batch(commands);
        self.finish_batch(started);
    }

    /// Steps 1 and 2 for a group: apply `commands` in order and record their
    /// commits, invisible to readers until [`Self::finish_batch`]. Returns
    /// when the group started, for its metrics.
    pub(crate) fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = Command<V>>,
    ) -> Instant {
        let started = Instant::now();
        let mut answers = std::mem::take(&mut self.answers);
        // Keys whose TTL ran out go first, as one commit of their own.
        self.expire_due();
        for command in commands {
            if matches!(command.op, Op::Close) {
                // Answered by the writer loop once the mailbox is drained.
                self.close_requests.push(command.reply);
                continue;
            }
            if let Some(kind) = command.op.kind() {
                self.counts.wrote(kind);
            }
            // The caller's span: what the writer does for this command shows
            // in the trace under whoever caused it.
            let (op, changed_by) = (command.op, command.changed_by);
            let reply = command.span.in_scope(|| self.apply(op, changed_by));
            answers.push((command.reply, reply, command.sent_at));
        }
        self.answers = answers;
        self.record_pending();
        started
    }

    /// Steps 3 to 6 for the group [`Self::apply_batch`] recorded: publish,
    /// notify, reply, release.
    pub(crate) fn finish_batch(&mut self, started: Instant) {
        let mut answers = std::mem::take(&mut self.answers);
        #[cfg(thread_safe_state_loom)]
        if self.broken_order == BrokenOrder::ReplyBeforePublish {
            self.reply(&mut answers, started);
            self.publish();
            self.counts.flush(&self.shared.counters);
            self.answers = answers;
            self.retired.drop_all();
            return;
        }
        self.publish();
        self.counts.flush(&self.shared.counters);
        self.reply(&mut answers, started);
        // Keep the buffer's allocation for the next group.
        self.answers = answers;
        self.retired.drop_all();
    }

    /// The commits [`Self::apply_batch`] recorded and nobody can see yet,
    /// oldest first: what a commit target must make final before
    /// [`Self::finish_batch`] publishes them.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn staged(&self) -> Vec<CommitView<V>> {
        if self.version == self.published {
            return Vec::new();
        }
        lock(&self.shared.history).views_between(self.published, self.version)
    }

    /// Undo the group [`Self::apply_batch`] recorded, because its commit
    /// target could not make it final: the map, the version and the
    /// history go back to the published version, and every caller of the
    /// group gets `error`. Readers saw none of it, so nothing else changes.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn abort_batch(&mut self, error: &StateError, started: Instant) {
        let published = Snapshot::from_inner(self.shared.current.load_full());
        debug_assert_eq!(published.version(), self.published);
        let applied = std::mem::replace(&mut self.map, published.map().clone());
        self.retired.push(Item::Map(applied));
        self.retired.push(Item::Snapshot(published));
        if let Some(unpublished) = self.unpublished.take() {
            self.retired.push(Item::Snapshot(unpublished));
        }
        self.version = self.published;
        lock(&self.shared.history).truncate_after(self.published, &mut self.retired);
        let mut answers = std::mem::take(&mut self.answers);
        // The group's operations were attempted and all of them failed.
        let attempted = std::mem::take(&mut self.counts);
        self.counts.by_operation = attempted.by_operation;
        self.counts.failed = answers.len() as u64;
        self.counts.flush(&self.shared.counters);
        for answer in &mut answers {
            answer.1 = Err(error.clone());
        }
        self.reply(&mut answers, started);
        self.answers = answers;
        self.retired.drop_all();
    }

    /// Answer `commands` with `error` without applying any of them: the
    /// commit target can no longer make writes final. What they carry is
    /// released like anything else the writer retires.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn refuse_batch(
        &mut self,
        commands: impl IntoIterator<Item = Command<V>>,
        error: &StateError,
    ) {
        let started = Instant::now();
        let mut answers = std::mem::take(&mut self.answers);
        for command in commands {
            if matches!(command.op, Op::Close) {
                self.close_requests.push(command.reply);
                continue;
            }
            if let Some(kind) = command.op.kind() {
                self.counts.wrote(kind);
            }
            self.counts.failed += 1;
            answers.push((command.reply, Err(error.clone()), command.sent_at));
            self.retired.push(Item::Op(command.op));
        }
        self.counts.flush(&self.shared.counters);
        self.reply(&mut answers, started);
        self.answers = answers;
        self.retired.drop_all();
    }

    /// Refuse `set_with_ttl`: the state's commits go to a journal, which
    /// does not record deadlines (etcd states refuse it when planning).
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn refuse_ttls(&mut self) {
        self.expiry.refuse();
    }

    /// Commit a change made elsewhere (the etcd mirror): `version` is its
    /// etcd revision, newer than every commit so far, and each change sets
    /// a key's value (with its created version, etcd's `create_revision`)
    /// or removes it. Recorded like a local commit, invisible to readers
    /// until [`Self::finish_batch`], which publishes it with the rest of
    /// the group. Changes that change nothing (a value identical in
    /// versions, a removal of an absent key) are skipped; returns whether
    /// anything was committed. A `relist` (the differences of revisions
    /// the mirror missed) is committed even when empty, and the versions
    /// it skipped become a gap of the history.
    #[cfg(feature = "etcd")]
    pub(crate) fn apply_remote(
        &mut self,
        version: Version,
        operation: Operation,
        changed_by: Option<Arc<str>>,
        changes: impl IntoIterator<Item = RemoteChange<V>>,
        relist: bool,
    ) -> bool {
        debug_assert!(version > self.version, "remote versions only go up");
        let mut applied = Vec::new();
        for change in changes {
            match change.value {
                Some(value) => {
                    let key = self
                        .map
                        .get_key(&change.key)
                        .unwrap_or_else(|| Arc::from(&*change.key));
                    let old = self.map.get(&key).map(|entry| Arc::clone(entry.value()));
                    self.map.insert(
                        Arc::clone(&key),
                        Entry::new(Arc::clone(&value), change.modified, change.created),
                    );
                    applied.push(Change {
                        key,
                        old,
                        new: Some(value),
                    });
                }
                None => applied.extend(self.remove(&change.key)),
            }
        }
        if applied.is_empty() && !relist {
            return false;
        }
        // A relist: the revisions between the last commit and this one
        // were never seen; their states are not this history's to tell.
        if relist && version > self.version.next() {
            lock(&self.shared.history).mark_gap(self.version, version);
        }
        self.commit(
            version,
            operation,
            changed_by,
            Changes::written(applied),
            None,
        );
        true
    }

    /// The newest applied state (published, outside a group): what the
    /// etcd target runs `modify` and `transaction` closures against.
    #[cfg(feature = "etcd")]
    pub(crate) fn current(&self) -> Snapshot<V> {
        Snapshot::new(self.version, self.map.clone())
    }

    /// Count a write command the etcd target takes (its figures are added
    /// to the shared metrics with the next group).
    #[cfg(feature = "etcd")]
    pub(crate) fn count(&mut self, kind: crate::metrics::OpKind) {
        self.counts.wrote(kind);
    }

    /// The newest applied version (the published one between groups).
    #[cfg(feature = "etcd")]
    pub(crate) fn newest(&self) -> Version {
        self.version
    }

    /// The shared history, for planning a rollback.
    #[cfg(feature = "etcd")]
    pub(crate) fn history(&self) -> &crate::sync::Mutex<crate::history::History<V>> {
        &self.shared.history
    }

    /// Queue `reply` for a caller; it is sent by the next
    /// [`Self::finish_batch`], after that group is published.
    #[cfg(feature = "etcd")]
    pub(crate) fn answer_after_publish(
        &mut self,
        caller: oneshot::Sender<Reply>,
        reply: Reply,
        sent_at: Instant,
    ) {
        if reply.is_err() {
            self.counts.failed += 1;
        }
        self.answers.push((caller, reply, sent_at));
    }

    /// Register a caller of `close`.
    #[cfg(feature = "etcd")]
    pub(crate) fn request_close(&mut self, caller: oneshot::Sender<Reply>) {
        self.close_requests.push(caller);
    }

    /// Whether a caller asked the writer to close.
    pub(crate) fn close_requested(&self) -> bool {
        !self.close_requests.is_empty()
    }

    /// Tell every caller of `close` that the writer has answered everything
    /// and stopped.
    pub(crate) fn answer_close_requests(&mut self) {
        let done = Applied {
            version: self.version,
            committed: false,
        };
        for caller in self.close_requests.drain(..) {
            let _ = caller.send(Ok(done));
        }
    }

    /// Answer the group's callers, and record the group's figures: its
    /// size, the time since it was taken, each write's latency since its
    /// submission (one clock read for the whole group).
    fn reply(&self, answers: &mut Vec<Answer>, started: Instant) {
        let now = Instant::now();
        let counters = &self.shared.counters;
        counters.record_group(answers.len(), now - started, self.published);
        for (caller, reply, sent_at) in answers.drain(..) {
            counters.record_write(now.saturating_duration_since(sent_at));
            // A caller that stopped waiting (dropped its future) is fine:
            // the command was applied all the same.
            let _ = caller.send(reply);
        }
    }

    /// Push pending commits to the history, the last with a snapshot of the
    /// current map, which becomes the one to publish. Readers cannot see
    /// them until [`Self::publish`] stores that snapshot.
    fn record_pending(&mut self) {
        let Some(last) = self.pending.last_mut() else {
            return;
        };
        let snapshot = Snapshot::new(self.version, self.map.clone());
        last.snapshot = Some(snapshot.clone());
        lock(&self.shared.history).push(self.pending.drain(..), self.published, &mut self.retired);
        self.unpublished = Some(snapshot);
    }

    /// Record, publish to readers, then wake waiters and streams.
    fn publish(&mut self) {
        self.record_pending();
        let Some(snapshot) = self.unpublished.take() else {
            return;
        };
        let version = snapshot.version();
        #[cfg(thread_safe_state_loom)]
        let notify_first = self.broken_order == BrokenOrder::NotifyBeforePublish;
        #[cfg(not(thread_safe_state_loom))]
        let notify_first = false;
        if notify_first {
            // The deliberate bug of a loom model: wake before publishing.
            self.shared.notifier.notify();
        }
        let replaced = self.shared.current.swap(Arc::clone(snapshot.inner()));
        self.retired.push(Item::Published(replaced));
        if !notify_first {
            self.shared.notifier.notify();
        }
        let after = std::mem::replace(&mut self.published, version);
        self.feed
            .send(&self.shared.history, after, version, &mut self.retired);
    }

    /// Apply one command to the private map; nothing is visible to readers
    /// until [`Self::publish`].
    fn apply(&mut self, op: Op<V>, changed_by: Option<Arc<str>>) -> Reply {
        let next = self.version.next();
        let restored_from = match op {
            Op::Rollback(target) | Op::RollbackIf { target, .. } => Some(target),
            _ => None,
        };
        let written: Written<V> = match op {
            // Taken out in `commit_batch`; harmless if it ever got here.
            Op::Close => return Ok(self.unchanged()),
            // Leases are etcd's: only an etcd writer gets this.
            #[cfg(feature = "etcd")]
            Op::RevokeLease(_) => return Ok(self.unchanged()),
            Op::Rollback(target) => self
                .rollback(target, next)
                .map(|changes| (Operation::Rollback, changes)),
            Op::RollbackIf {
                expected_current, ..
            } if self.version != expected_current => Err(StateError::VersionMoved {
                expected: expected_current,
                current: self.version,
            }),
            Op::RollbackIf { target, .. } => self
                .rollback(target, next)
                .map(|changes| (Operation::Rollback, changes)),
            Op::Set { key, value } => {
                Ok((Operation::Set, Changes::One(self.write(key, value, next))))
            }
            Op::SetWithTtl { key, value, ttl } => match self.expiry.deadline(ttl) {
                Ok(deadline) => {
                    let change = self.write(key, value, next);
                    if let Some(deadline) = deadline {
                        self.expiry.stage(Arc::clone(&change.key), deadline);
                    }
                    Ok((Operation::Set, Changes::One(change)))
                }
                Err(error) => {
                    self.retired.push(Item::Value(value));
                    Err(error)
                }
            },
            Op::Update(items) => Ok((
                Operation::Update,
                Changes::written(
                    items
                        .into_iter()
                        .map(|(key, value)| self.write(key, value, next))
                        .collect(),
                ),
            )),
            Op::Delete(key) => Ok((Operation::Delete, self.removal(&key))),
            Op::Clear => Ok((Operation::Clear, Changes::written(self.clear()))),
            Op::Retain(keys) => Ok((Operation::Retain, Changes::written(self.retain(&keys)))),
            Op::Modify { key, f, value } => self
                .modify(key, f, &value, next)
                .map(|changes| (Operation::Modify, changes)),
            Op::SetIf {
                key,
                value,
                expected,
            } => match self.check(&key, expected) {
                Ok(()) => Ok((
                    Operation::Conditional,
                    Changes::One(self.write(key, value, next)),
                )),
                Err(conflict) => {
                    self.retired.push(Item::Value(value));
                    Err(conflict)
                }
            },
            Op::DeleteIf { key, expected } => self
                .check(&key, expected)
                .map(|()| (Operation::Conditional, self.removal(&key))),
            Op::Transaction(f) => self
                .transaction(f, next)
                .map(|changes| (Operation::Transaction, Changes::written(changes))),
        };
        match written {
            Err(error) => self.fail(error),
            // A rollback commits even when it changes nothing: the caller
            // asked for a new version equal to the target.
            Ok((operation, changes)) if changes.is_empty() && operation != Operation::Rollback => {
                Ok(self.unchanged())
            }
            Ok((operation, changes)) => {
                Ok(self.commit(next, operation, changed_by, changes, restored_from))
            }
        }
    }

    fn unchanged(&self) -> Applied {
        Applied {
            version: self.version,
            committed: false,
        }
    }

    fn fail(&mut self, error: StateError) -> Reply {
        // The caller gets the error as its reply; logging it as well would
        // report one failure on two channels. Debug level, for tracing.
        tracing::debug!(%error, "write command failed; state unchanged");
        self.counts.failed += 1;
        Err(error)
    }

    /// Add a commit to the pending group and advance the version.
    fn commit(
        &mut self,
        version: Version,
        operation: Operation,
        changed_by: Option<Arc<str>>,
        changes: Changes<V>,
        restored_from: Option<Version>,
    ) -> Applied {
        let span = tracing::debug_span!(
            "commit",
            version = version.get(),
            ?operation,
            keys = ?KeyNames(&changes),
            changed_by = changed_by.as_deref(),
        );
        let _entered = span.enter();
        tracing::debug!("committed");
        self.expiry.committed(changes.as_slice());
        self.pending.push(Commit {
            view: CommitView {
                version,
                timestamp: SystemTime::now(),
                operation,
                changed_by,
                changes,
                restored_from,
            },
            snapshot: None,
        });
        self.version = version;
        self.counts.commits += 1;
        Applied {
            version,
            committed: true,
        }
    }

    fn write(&mut self, key: KeyArg, value: V, version: Version) -> Change<V> {
        let value = Arc::new(value);
        let (key, old) = self.map.write_str(
            key.as_str(),
            || key.clone().into_shared(None),
            Arc::clone(&value),
            version,
        );
        Change {
            key,
            old,
            new: Some(value),
        }
    }

    /// Write an existing shared value (a rollback restores the very values
    /// of its target).
    fn restore(&mut self, key: Arc<str>, value: Arc<V>, version: Version) -> Change<V> {
        let old = self
            .map
            .write(Arc::clone(&key), Arc::clone(&value), version);
        Change {
            key,
            old,
            new: Some(value),
        }
    }

    fn remove(&mut self, key: &str) -> Option<Change<V>> {
        let (key, old) = self.map.remove_entry(key)?;
        Some(Change {
            key,
            old: Some(old),
            new: None,
        })
    }

    /// A removal's records: one change, or none if `key` was absent.
    fn removal(&mut self, key: &KeyArg) -> Changes<V> {
        self.remove(key.as_str())
            .map_or(Changes::None, Changes::One)
    }

    /// Remove every key; the records are sorted by key, so a clear's
    /// history does not depend on the map's internal order.
    fn clear(&mut self) -> Vec<Change<V>> {
        let mut changes: Vec<Change<V>> = self
            .map
            .iter()
            .map(|(key, entry)| Change {
                key: Arc::clone(key),
                old: Some(Arc::clone(entry.value())),
                new: None,
            })
            .collect();
        changes.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        if !changes.is_empty() {
            let cleared = std::mem::replace(&mut self.map, Map::new());
            self.retired.push(Item::Map(cleared));
        }
        changes
    }

    fn retain(&mut self, keep: &[Arc<str>]) -> Vec<Change<V>> {
        let keep: std::collections::HashSet<&str> = keep.iter().map(|key| &**key).collect();
        let mut dropped: Vec<Arc<str>> = self
            .map
            .keys()
            .filter(|key| !keep.contains(&***key))
            .cloned()
            .collect();
        dropped.sort_unstable();
        dropped
            .into_iter()
            .filter_map(|key| self.remove(&key))
            .collect()
    }

    /// Run `f` on `key`'s current value and apply its decision, leaving
    /// the key's resulting value in `slot` for the caller.
    fn modify(
        &mut self,
        key: KeyArg,
        f: ModifyFn<V>,
        slot: &ValueSlot<V>,
        version: Version,
    ) -> Result<Changes<V>, StateError> {
        // The closure reads its own reference-counted copy, so it borrows
        // nothing of the map, and a panic leaves the map untouched. Its
        // captures are dropped inside `catch_unwind` when it returns: a
        // panicking `Drop` there fails this command like a panicking `f`.
        let current = self
            .map
            .get(key.as_str())
            .map(|entry| Arc::clone(entry.value()));
        let outcome = catch_unwind(AssertUnwindSafe(|| f(current.as_deref())));
        match outcome {
            Ok(Modification::Set(value)) => {
                let change = self.write(key, value, version);
                slot.fill(change.new.clone());
                Ok(Changes::One(change))
            }
            Ok(Modification::Delete) => Ok(self.removal(&key)),
            Ok(Modification::Keep) => {
                slot.fill(current);
                Ok(Changes::None)
            }
            Err(payload) => Err(StateError::ModifyPanicked {
                key: key.as_str().to_owned(),
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    /// Whether `key` satisfies `expected`, else the conflict.
    fn check(&self, key: &KeyArg, expected: Precondition) -> Result<(), StateError> {
        let found = self.map.get(key.as_str()).map(Entry::modified);
        if expected.holds(found) {
            Ok(())
        } else {
            Err(StateError::Conflict {
                key: key.as_str().to_owned(),
                expected,
                found,
            })
        }
    }

    /// Run a transaction's closure against the current state, then apply
    /// its writes in order. An abort or a panic changes nothing.
    fn transaction(
        &mut self,
        f: TransactionFn<V>,
        version: Version,
    ) -> Result<Vec<Change<V>>, StateError> {
        let snapshot = Snapshot::new(self.version, self.map.clone());
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&snapshot)));
        // Release the snapshot's share of the map so writes stay in place.
        drop(snapshot);
        let writes = match outcome {
            Ok(Some(writes)) => writes,
            // Aborted: the caller finds its error in its abort slot. It is
            // a failed command all the same (`Metrics::failed_commands`).
            Ok(None) => {
                self.counts.failed += 1;
                return Ok(Vec::new());
            }
            Err(payload) => {
                return Err(StateError::TransactionPanicked {
                    message: panic_message(payload.as_ref()),
                })
            }
        };
        if writes.iter().any(|write| write.key().is_empty()) {
            self.retired
                .extend(writes.into_iter().filter_map(|write| match write {
                    Write::Set { value, .. } => Some(Item::Value(value)),
                    Write::Delete { .. } => None,
                }));
            return Err(StateError::EmptyKey);
        }
        Ok(writes
            .into_iter()
            .filter_map(|write| match write {
                Write::Set { key, value } => Some(self.write(KeyArg::Shared(key), value, version)),
                Write::Delete { key } => self.remove(&key),
            })
            .collect())
    }

    /// A new version whose contents equal `target`'s.
    ///
    /// Only the keys written since `target` can differ, and the history
    /// names them, so the cost is that of the changes since `target`, not
    /// of the state's size. Each key whose value differs is written at the
    /// rollback's version (or removed): a key's modified version never
    /// goes backwards and always equals its newest history record, so a
    /// compare-and-set token taken before the rollback cannot succeed
    /// again (no ABA). A key that is re-created keeps no trace of its
    /// earlier life: it is created at the rollback's version.
    fn rollback(&mut self, target: Version, next: Version) -> Result<Changes<V>, StateError> {
        let current = self.version;
        if target >= current {
            return Err(StateError::InvalidVersion { target, current });
        }
        // The target may be one of this group's pending commits.
        self.record_pending();
        let history = lock(&self.shared.history).clone();
        let restored = match history.snapshot_at(target, current) {
            Ok(snapshot) => snapshot,
            Err(Unreachable::Compacted { oldest_retained }) => {
                return Err(StateError::VersionCompacted {
                    target,
                    oldest_retained,
                })
            }
            Err(Unreachable::Future) => return Err(StateError::InvalidVersion { target, current }),
        };
        let mut keys: Vec<Arc<str>> = history
            .keys_changed_between(target, current)
            .into_iter()
            .collect();
        // Drop our copy of the history before the next push, so the push
        // mutates the vector in place instead of copying a chunk.
        drop(history);
        keys.sort_unstable();
        let mut changes = Vec::new();
        for key in keys {
            let now = self.map.get(&key).map(|entry| Arc::clone(entry.value()));
            let then = restored.get(&key);
            match (now, then) {
                (Some(now), Some(then)) if Arc::ptr_eq(&now, &then) => {}
                (_, Some(then)) => changes.push(self.restore(key, then, next)),
                (Some(_), None) => changes.extend(self.remove(&key)),
                (None, None) => {}
            }
        }
        self.retired.push(Item::Snapshot(restored));
        tracing::info!(target = target.get(), version = next.get(), "rolled back");
        self.counts.rollbacks += 1;
        Ok(Changes::written(changes))
    }
}

// TTL expiry (see `writer::expiry`).
impl<V> Committer<V> {
    /// The soonest TTL deadline, for the writer loop's timer.
    pub(crate) fn next_expiry(&self) -> Option<crate::sync::TimerInstant> {
        self.expiry.next()
    }

    /// Remove the keys whose TTL ran out, as one pending commit.
    fn expire_due(&mut self) {
        let due = self.expiry.take_due();
        if due.is_empty() {
            return;
        }
        let changes: Vec<Change<V>> = due.iter().filter_map(|key| self.remove(key)).collect();
        if !changes.is_empty() {
            let next = self.version.next();
            self.commit(
                next,
                Operation::Expire,
                None,
                Changes::written(changes),
                None,
            );
        }
    }
}

/// One key's change made elsewhere, for [`Committer::apply_remote`].
#[cfg(feature = "etcd")]
pub(crate) struct RemoteChange<V> {
    pub(crate) key: Box<str>,
    /// The new value, `None` for a removal.
    pub(crate) value: Option<Arc<V>>,
    /// The key's created version (etcd's `create_revision`).
    pub(crate) created: Version,
    /// The key's modified version (etcd's `mod_revision`).
    pub(crate) modified: Version,
}

/// Deliberate ordering bugs that the loom models must catch.
#[cfg(thread_safe_state_loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokenOrder {
    /// The correct order.
    None,
    /// Answer callers before publishing the snapshot.
    ReplyBeforePublish,
    /// Wake subscribers before publishing the snapshot.
    NotifyBeforePublish,
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Formats at most a few of a commit's keys, lazily, for the commit span.
struct KeyNames<'a, V>(&'a Changes<V>);

impl<V> fmt::Debug for KeyNames<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        let changes = self.0.as_slice();
        let mut list = f.debug_list();
        list.entries(changes.iter().take(SHOWN).map(|change| &change.key));
        if changes.len() > SHOWN {
            list.entry(&format_args!("... {} more", changes.len() - SHOWN));
        }
        list.finish()
    }
}
