//! The writer task of an etcd state: commands become txns, the mirror's
//! revisions become commits, and each caller is answered once the mirror
//! has published its revision.
//!
//! One task, three inputs:
//! - the mailbox: each command is planned against the newest snapshot
//!   (closures run here, under `catch_unwind`) and its txn sent on a task
//!   of its own, so many txns are in flight at once (each command keeps
//!   its own revision, as the server assigns it);
//! - finished txns: a revision already published is answered at once,
//!   a newer one waits for the mirror;
//! - the mirror: each revision is one commit through the commit core
//!   (history, change streams, waiters and metrics as in memory); after
//!   the group is published, the callers whose revisions it covers are
//!   answered.
//!
//! A command whose txn depends on what the mirror shows (`modify`,
//! `transaction`, `rollback`: their compares are the snapshot they were
//! planned on) waits in the queue until every txn this handle sent before
//! it is mirrored, and nothing is sent while its txn is in flight: so the
//! writes of one handle never make its closures conflict, as in memory;
//! only another process's write can.
//!
//! The watch often delivers a revision before the txn that made it has
//! answered. So that a commit of this handle is recorded with its
//! operation and `changed_by`, a mirrored message waits until every txn
//! sent *before it arrived* has answered: only those can have made its
//! revisions (a txn sent later gets a later revision). Txns sent later do
//! not hold it, so a steady stream of writes never starves the mirror.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use etcd_client::{KvClient, LeaseClient, PutOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::{Cause, StateError};
use crate::history::Operation;
use crate::snapshot::Entry;
use crate::sync::{oneshot, Arc};
use crate::writer::command::{Applied, Command, Op, Reply};
use crate::writer::commit::{Committer, RemoteChange};
use crate::writer::Writer;
use crate::Version;

use super::mirror::revision_version;
use super::mirror::{Decoded, Mirrored};
use super::mvcc;
use super::ttl::TtlLeases;
use super::txn::{self, Expect, Plan, Planned, Request, Settings};

/// The most commands taken from the mailbox at once.
const MAX_BATCH: usize = 128;

/// The etcd commit target, as the writer holds it.
pub(crate) struct EtcdTarget<V> {
    /// Cloned for each request: far cheaper than the whole `Client`.
    pub(crate) kv: KvClient,
    pub(crate) leases: LeaseClient,
    /// For reads of etcd's MVCC history (rare: clone on use).
    pub(crate) client: etcd_client::Client,
    pub(crate) settings: Arc<Settings>,
    pub(crate) request_timeout: Duration,
    pub(crate) mirror: mpsc::Receiver<Mirrored<V>>,
    /// The mirror task, stopped with the writer.
    pub(crate) mirror_task: tokio::task::AbortHandle,
}

impl<V> Drop for EtcdTarget<V> {
    fn drop(&mut self) {
        self.mirror_task.abort();
    }
}

/// A caller waiting for the mirror to pass the revision its request was
/// decided at.
struct Waiting {
    caller: oneshot::Sender<Reply>,
    sent_at: Instant,
    answer: Answer,
}

/// What a waiting caller is answered.
enum Answer {
    /// Its write, committed at the revision it waits for.
    Wrote,
    /// Nothing changed: the state's version once the mirror has passed.
    Unchanged,
    /// A conflict, answered once the write that won is visible.
    Failed(StateError),
}

/// A finished txn.
struct Finished {
    /// Its place in the order txns were sent.
    sequence: u64,
    caller: oneshot::Sender<Reply>,
    sent_at: Instant,
    operation: Operation,
    changed_by: Option<Arc<str>>,
    sent: Sent,
}

/// Run the writer of an etcd state until every handle is gone (or it is
/// closed) and every caller answered.
pub(crate) async fn run<V>(writer: Writer<V>, mut target: EtcdTarget<V>)
where
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let mut writer = writer;
    let mut in_flight: JoinSet<Finished> = JoinSet::new();
    // Callers by the revision they wait for, and the newest revision the
    // mirror has passed (committed, or seen as the progress marker's).
    let mut waiting: BTreeMap<Version, Vec<Waiting>> = BTreeMap::new();
    let mut passed = writer.committer.newest();
    let mut own = Own::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Commands taken from the mailbox and not started yet, in order.
    let mut queue: VecDeque<Command<V>> = VecDeque::with_capacity(MAX_BATCH);
    // The txn of a command that reads the mirror, while nothing else may
    // be sent (by sequence number).
    let mut exclusive: Option<u64> = None;
    let mut taking = true;
    let mut mirror_open = true;
    // Txns sent and not answered, by sequence number; mirrored messages
    // with the last sequence sent when each arrived.
    let mut sent: u64 = 0;
    let mut outstanding: BTreeSet<u64> = BTreeSet::new();
    let mut held: VecDeque<(u64, Mirrored<V>)> = VecDeque::new();
    let mut tasks: HashMap<tokio::task::Id, u64> = HashMap::new();
    loop {
        if !taking && queue.is_empty() && in_flight.is_empty() && waiting.is_empty() {
            break;
        }
        // Apply every held message no unanswered txn can belong to, as one
        // group.
        let mut applied = false;
        while let Some((last_sent, _)) = held.front() {
            if outstanding
                .first()
                .is_some_and(|oldest| oldest <= last_sent)
            {
                break;
            }
            let (_, message) = held.pop_front().expect("just seen");
            passed = passed.max(mirror(&mut writer.committer, message, &mut own));
            applied = true;
        }
        own.revoke_orphans(&target.leases, target.request_timeout);
        if applied {
            release(&mut writer.committer, &mut waiting, passed);
            writer.committer.finish_batch(Instant::now());
        }
        // Start the queued commands, in order, up to the first that reads
        // the mirror while this handle still has writes it has not mirrored.
        while let Some(command) = queue.front() {
            if exclusive.is_some_and(|sequence| outstanding.contains(&sequence)) {
                break;
            }
            let reads = reads_mirror(&command.op);
            if reads && !(outstanding.is_empty() && waiting.is_empty() && held.is_empty()) {
                break;
            }
            let command = queue.pop_front().expect("just seen");
            if let Some(id) = start(
                &mut writer.committer,
                &target,
                command,
                (sent + 1, passed),
                &mut in_flight,
            ) {
                sent += 1;
                outstanding.insert(sent);
                tasks.insert(id, sent);
                if reads {
                    exclusive = Some(sent);
                }
            }
        }
        tokio::select! {
            biased;
            message = target.mirror.recv(), if mirror_open => {
                let Some(message) = message else {
                    mirror_open = false;
                    continue;
                };
                held.push_back((sent, message));
            }
            Some(joined) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                match joined {
                    Ok((id, finished)) => {
                        outstanding.remove(&tasks.remove(&id).unwrap_or(finished.sequence));
                        finish(&mut writer.committer, finished, passed, &mut waiting, &mut own);
                    }
                    // A txn task that panicked (a bug): its caller hears
                    // `Closed` from the dropped reply; the mirror must not
                    // wait for it.
                    Err(error) => {
                        tracing::error!(%error, "an etcd txn task failed");
                        if let Some(sequence) = tasks.remove(&error.id()) {
                            outstanding.remove(&sequence);
                        }
                    }
                }
            }
            received = writer.inbox.recv_many(&mut batch, MAX_BATCH), if taking && queue.len() < MAX_BATCH => {
                if received == 0 {
                    taking = false;
                    continue;
                }
                let closing = batch.iter().any(|command| matches!(command.op, Op::Close));
                queue.extend(batch.drain(..));
                if closing {
                    writer.inbox.close();
                }
            }
            // Nothing left to wait on (the mirror gone, nothing in flight,
            // no commands): callers still waiting can never be answered
            // with a published revision; their replies drop (`Closed`).
            else => break,
        }
    }
    writer.finished = true;
    writer.committer.answer_close_requests();
    tracing::debug!("etcd writer task stopped");
}

/// Whether `op`'s txn is planned on what the mirror shows (its compares
/// are that snapshot's revisions).
fn reads_mirror<V>(op: &Op<V>) -> bool {
    matches!(
        op,
        Op::Modify { .. } | Op::Transaction(_) | Op::Rollback(_) | Op::RollbackIf { .. }
    )
}

/// Plan `command` (the mirror has passed revision `passed`) and send its
/// txn as number `sequence` (then its task's id), or answer it at once.
fn start<V: Serialize + DeserializeOwned + Send + Sync + 'static>(
    committer: &mut Committer<V>,
    target: &EtcdTarget<V>,
    command: Command<V>,
    (sequence, passed): (u64, Version),
    in_flight: &mut JoinSet<Finished>,
) -> Option<tokio::task::Id> {
    let Command {
        op,
        changed_by,
        lease,
        reply,
        sent_at,
        span,
    } = command;
    if matches!(op, Op::Close) {
        committer.request_close(reply);
        return None;
    }
    if let Some(kind) = op.kind() {
        committer.count(kind);
    }
    let current = committer.current();
    let planned = span.in_scope(|| {
        txn::plan(
            op,
            lease,
            &current,
            passed,
            committer.history(),
            &target.settings,
        )
    });
    let request = Dispatch {
        kv: target.kv.clone(),
        leases: target.leases.clone(),
        lease,
        timeout: target.request_timeout,
        settings: Arc::clone(&target.settings),
    };
    let task = match planned {
        Planned::Done(reply_now) => {
            committer.answer_after_publish(reply, reply_now, sent_at);
            committer.finish_batch(Instant::now());
            return None;
        }
        Planned::Send(plan) => in_flight.spawn(async move {
            let operation = plan.operation;
            let sent = request.execute(plan).await;
            Finished {
                sequence,
                caller: reply,
                sent_at,
                operation,
                changed_by,
                sent,
            }
        }),
        // Older than the local window: read the target from etcd's MVCC
        // history, then plan against the snapshot the command saw.
        Planned::FromHistory(version) => {
            let client = target.client.clone();
            in_flight.spawn(async move {
                let settings = &request.settings;
                let planned =
                    match mvcc::range_at(&client, &settings.prefix, version, request.timeout).await
                    {
                        Ok(then) => txn::rollback_from_history(&then, &current, settings),
                        Err(error) => Err(error),
                    };
                let unsent = |outcome| Sent {
                    decided: None,
                    outcome,
                    granted: None,
                };
                let sent = match planned {
                    Ok(Some(plan)) => request.execute(plan).await,
                    // Nothing differs: nothing to write.
                    Ok(None) => unsent(Ok(None)),
                    Err(error) => unsent(Err(error)),
                };
                Finished {
                    sequence,
                    caller: reply,
                    sent_at,
                    operation: Operation::Rollback,
                    changed_by,
                    sent,
                }
            })
        }
    };
    Some(task.id())
}

/// What sending a planned request needs, taken from the target.
struct Dispatch {
    kv: KvClient,
    leases: LeaseClient,
    /// The handle's lease, carried by its puts.
    lease: Option<i64>,
    timeout: Duration,
    settings: Arc<Settings>,
}

/// What the writer remembers of its own requests, for the commits the
/// mirror brings back.
#[derive(Default)]
struct Own {
    /// What this handle wrote at a revision, for the commit's record.
    writes: HashMap<Version, (Operation, Option<Arc<str>>)>,
    /// The leases of its `set_with_ttl` keys.
    ttl_leases: TtlLeases,
    /// Leases left without a key, to revoke.
    orphans: Vec<i64>,
}

impl Own {
    /// The mirror commits a change of `key` at `revision`.
    fn changed(&mut self, key: &str, revision: Version) {
        if !self.ttl_leases.is_empty() {
            self.orphans.extend(self.ttl_leases.changed(key, revision));
        }
    }

    /// Revoke the leases left without a key, on a task of their own.
    fn revoke_orphans(&mut self, leases: &LeaseClient, timeout: Duration) {
        if self.orphans.is_empty() {
            return;
        }
        let orphans = std::mem::take(&mut self.orphans);
        let mut leases = leases.clone();
        tokio::spawn(async move {
            for lease in orphans {
                // Best effort: an orphan expires on its own anyway.
                let _ = within(timeout, leases.revoke(lease)).await;
            }
        });
    }
}

/// What a request came to.
struct Sent {
    /// The revision etcd decided it at; none if it did not answer.
    decided: Option<Version>,
    /// The revision it wrote, `None` if it changed nothing; or the error.
    outcome: Result<Option<Version>, StateError>,
    /// A `set_with_ttl`'s key and the lease granted for it.
    granted: Option<(Box<str>, i64)>,
}

impl Dispatch {
    /// Send `plan` and read the answer.
    async fn execute(self, plan: Plan) -> Sent {
        let keys = matches!(plan.expect, Expect::Keys { .. });
        let marker = super::marker::key(&self.settings.prefix);
        let mut granted = None;
        let sent = send(
            (self.kv, self.leases),
            plan,
            self.lease,
            self.timeout,
            marker,
            &mut granted,
        )
        .await;
        let (decided, outcome) = match sent {
            Ok((decided, outcome)) => (Some(decided), outcome),
            Err(error) => (None, Err(error)),
        };
        let outcome = match outcome {
            // The conflict of a transaction may name a full etcd key.
            Err(StateError::Conflict {
                key,
                expected,
                found,
            }) if keys => Err(StateError::Conflict {
                key: key
                    .strip_prefix(self.settings.prefix.as_str())
                    .map_or(key.clone(), str::to_owned),
                expected,
                found,
            }),
            outcome => outcome,
        };
        Sent {
            decided,
            outcome,
            granted,
        }
    }
}

/// Send one planned request (its puts carry `lease`, the handle's) and
/// read the answer: the revision etcd decided it at (every request makes
/// one, see [`super::marker`]) and the revision it wrote, `None` if it
/// changed nothing; or why it failed. A `set_with_ttl`'s new lease goes
/// to `granted` as soon as it is granted.
async fn send(
    (mut kv, mut leases): (KvClient, LeaseClient),
    plan: Plan,
    lease: Option<i64>,
    timeout: Duration,
    marker: Vec<u8>,
    granted: &mut Option<(Box<str>, i64)>,
) -> Result<(Version, Result<Option<Version>, StateError>), StateError> {
    match plan.request {
        Request::Revoke { lease } => {
            match within(timeout, leases.revoke(lease)).await? {
                Ok(_) => {}
                // Already gone (expired): nothing to revoke.
                Err(etcd_client::Error::GRpcStatus(status))
                    if status.code() == tonic::Code::NotFound => {}
                Err(error) => return Err(failed(error, None)),
            }
            let response = within(timeout, kv.put(marker, Vec::new(), None))
                .await?
                .map_err(|error| failed(error, None))?;
            let decided = revision_version(response.header().map_or(0, |h| h.revision()));
            Ok((decided, Ok(None)))
        }
        Request::Txn(txn) => {
            let response = within(timeout, kv.txn(txn))
                .await?
                .map_err(|error| failed(error, lease))?;
            let decided = revision_version(response.header().map_or(0, |h| h.revision()));
            Ok((decided, txn::outcome(&plan.expect, plan.marked, &response)))
        }
        Request::Put {
            key,
            value,
            lease,
            ttl,
        } => {
            let lease = match ttl {
                Some(ttl) => {
                    let id = within(timeout, leases.grant(ttl.seconds, None))
                        .await?
                        .map_err(|error| failed(error, None))?
                        .id();
                    *granted = Some((ttl.key, id));
                    Some(id)
                }
                None => lease,
            };
            let options = lease.map(|lease| PutOptions::new().with_lease(lease));
            let response = within(timeout, kv.put(key, value, options))
                .await?
                .map_err(|error| failed(error, lease))?;
            let wrote = revision_version(response.header().map_or(0, |h| h.revision()));
            Ok((wrote, Ok(Some(wrote))))
        }
    }
}

/// `request`'s answer, or [`timed_out`] after `timeout`.
pub(crate) async fn within<T>(
    timeout: Duration,
    request: impl std::future::Future<Output = T>,
) -> Result<T, StateError> {
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| timed_out(timeout))
}

/// No answer within `timeout`: the outcome is unknown.
pub(crate) fn timed_out(timeout: Duration) -> StateError {
    StateError::OutcomeUnknown {
        cause: Cause::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from etcd within {timeout:?}"),
        )),
    }
}

/// The error of a request that etcd answered with a failure, or that
/// never got an answer: a server rejection is known not applied, as is a
/// put whose `lease` etcd no longer has; anything else may or may not
/// have been.
pub(crate) fn failed(error: etcd_client::Error, lease: Option<i64>) -> StateError {
    if let etcd_client::Error::GRpcStatus(status) = &error {
        use tonic::Code;
        if let Some(lease) = lease {
            if status.code() == Code::NotFound && status.message().contains("lease not found") {
                return StateError::LeaseExpired { lease };
            }
        }
        if matches!(
            status.code(),
            Code::InvalidArgument
                | Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::OutOfRange
                | Code::ResourceExhausted
        ) {
            return StateError::EtcdRejected {
                cause: Cause::new(error),
            };
        }
    }
    StateError::OutcomeUnknown {
        cause: Cause::new(error),
    }
}

/// A request came back: answer now, or wait until the mirror has passed
/// the revision it was decided at (`passed` is how far it has got). A
/// write waits for its own revision; a request that changed nothing or
/// conflicted waits too, so that a read after its answer shows the state
/// etcd decided it on (the key already gone, the write that won).
fn finish<V>(
    committer: &mut Committer<V>,
    finished: Finished,
    passed: Version,
    waiting: &mut BTreeMap<Version, Vec<Waiting>>,
    own: &mut Own,
) {
    if let Some((key, lease)) = finished.sent.granted {
        match &finished.sent.outcome {
            Ok(Some(revision)) => own
                .orphans
                .extend(own.ttl_leases.granted(key, lease, *revision)),
            // Granted, but the put did not happen (or may not have: then
            // revoking deletes the key, as if it expired at once).
            _ => own.orphans.push(lease),
        }
    }
    let (revision, answer) = match (finished.sent.outcome, finished.sent.decided) {
        (Ok(Some(revision)), _) => {
            if revision > passed {
                own.writes
                    .insert(revision, (finished.operation, finished.changed_by));
            }
            (revision, Answer::Wrote)
        }
        (Ok(None), Some(decided)) => (decided, Answer::Unchanged),
        (Err(conflict @ StateError::Conflict { .. }), Some(decided)) => {
            (decided, Answer::Failed(conflict))
        }
        // Not decided by etcd (a timeout, a rejection): nothing to see.
        (Ok(None), None) => (Version::INITIAL, Answer::Unchanged),
        (Err(error), _) => (Version::INITIAL, Answer::Failed(error)),
    };
    let waiter = Waiting {
        caller: finished.caller,
        sent_at: finished.sent_at,
        answer,
    };
    if revision > passed {
        waiting.entry(revision).or_default().push(waiter);
    } else {
        reply(committer, waiter, revision);
        committer.finish_batch(Instant::now());
    }
}

/// Queue `waiter`'s reply (its request decided at `revision`); the next
/// `finish_batch` sends it.
fn reply<V>(committer: &mut Committer<V>, waiter: Waiting, revision: Version) {
    let reply = match waiter.answer {
        Answer::Wrote => Ok(Applied {
            version: revision,
            committed: true,
        }),
        Answer::Unchanged => Ok(Applied {
            version: committer.newest(),
            committed: false,
        }),
        Answer::Failed(error) => Err(error),
    };
    committer.answer_after_publish(waiter.caller, reply, waiter.sent_at);
}

/// Commit what the mirror sent (not yet published); how far it has
/// passed.
fn mirror<V>(committer: &mut Committer<V>, message: Mirrored<V>, own: &mut Own) -> Version {
    let through = match message {
        Mirrored::Revisions { revisions, through } => {
            for (revision, changes) in revisions {
                if revision <= committer.newest() {
                    // Already covered by a relist.
                    continue;
                }
                let (operation, changed_by) = own
                    .writes
                    .remove(&revision)
                    .unwrap_or((Operation::External, None));
                for change in &changes {
                    own.changed(&change.key, revision);
                }
                committer.apply_remote(
                    revision,
                    operation,
                    changed_by,
                    changes.into_iter().map(remote),
                    false,
                );
            }
            through
        }
        Mirrored::Resync { revision, entries } => {
            if revision <= committer.newest() {
                return revision;
            }
            let current = committer.current();
            let mut changes: Vec<RemoteChange<V>> = Vec::new();
            let mut listed = std::collections::HashSet::new();
            for entry in entries {
                listed.insert(entry.key.clone());
                let same = current
                    .entry(&entry.key)
                    .is_some_and(|now: &Entry<V>| now.modified() == entry.modified);
                if !same {
                    changes.push(remote(entry));
                }
            }
            let mut gone: Vec<Box<str>> = current
                .keys()
                .filter(|key| !listed.contains(*key))
                .map(Box::from)
                .collect();
            gone.sort_unstable();
            changes.extend(gone.into_iter().map(|key| RemoteChange {
                key,
                value: None,
                created: Version::INITIAL,
                modified: revision,
            }));
            drop(current);
            for change in &changes {
                own.changed(&change.key, revision);
            }
            // Committed even when nothing differs, so the version moves to
            // the listing's revision: a caller waiting for a revision the
            // relist covers is answered with the state at or after it.
            committer.apply_remote(revision, Operation::External, None, changes, true);
            revision
        }
    };
    // Revisions this handle wrote that the mirror has passed are recorded
    // (or were folded into a relist): forget them.
    let newest = committer.newest();
    own.writes.retain(|revision, _| *revision > newest);
    through.max(newest)
}

fn remote<V>(decoded: Decoded<V>) -> RemoteChange<V> {
    RemoteChange {
        key: decoded.key,
        value: decoded.value,
        created: decoded.created,
        modified: decoded.modified,
    }
}

/// Queue the replies of every caller whose revision the mirror has now
/// passed; the group's `finish_batch` publishes, then sends them.
fn release<V>(
    committer: &mut Committer<V>,
    waiting: &mut BTreeMap<Version, Vec<Waiting>>,
    passed: Version,
) {
    let newer = waiting.split_off(&passed.next());
    let covered = std::mem::replace(waiting, newer);
    for (revision, callers) in covered {
        for waiter in callers {
            reply(committer, waiter, revision);
        }
    }
}
