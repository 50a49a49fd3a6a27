//! Commands as etcd transactions: one txn per command, so each command
//! keeps its own revision.
//!
//! Planning runs in the writer task against the mirror's newest snapshot
//! (what `modify` and `transaction` closures read), checks etcd's limits
//! before anything is sent, and describes how to read the answer.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Cause, Precondition, StateError};
use crate::history::{History, Operation};
use crate::modify::Modification;
use crate::snapshot::{Entry, Snapshot};
use crate::sync::{lock, Arc, Mutex};
use crate::transaction::Write;
use crate::writer::command::{Applied, Op, Reply};
use crate::writer::commit::panic_message;
use crate::Version;

use super::marker;
use super::mirror::{revision_number, revision_version};
use super::mvcc::Held;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::DEFAULT_MAX_REQUEST_BYTES, 1_572_864);
/// ```
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 << 19;
/// etcd's default `--max-txn-ops`: 128.
///
/// # Examples
///
/// ```
/// assert_eq!(thread_safe_state::DEFAULT_MAX_TXN_OPS, 128);
/// ```
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Bytes a txn's protobuf adds per operation or compare beyond its key and
/// value (field tags, lengths, a revision or a lease: etcd counts about 24
/// for a put, 34 with a lease): a generous bound, so a request this crate
/// accepts is one etcd accepts.
const OVERHEAD_PER_ITEM: usize = 64;

/// What the target needs to plan a command.
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
}

/// How to read a txn's answer.
pub(crate) enum Expect {
    /// Committed if any operation wrote something.
    Writes,
    /// A compare on one key: a failed compare is a conflict on it, and the
    /// failure branch reads the key (the `found` of the conflict).
    Key { key: String, expected: Precondition },
    /// Compares on several keys: the failure branch reads them (in
    /// order), then, for a transaction, the first key modified after the
    /// snapshot it saw.
    Keys {
        /// Each compared key and what its compare required.
        keys: Vec<(String, Precondition)>,
        /// A transaction's "nothing changed since" compare; none for a
        /// rollback.
        snapshot: Option<Version>,
    },
}

/// What to send for a command.
pub(crate) enum Request {
    Txn(Txn),
    /// One unconditional put, with the handle's lease or, for
    /// `set_with_ttl`, a lease of `ttl` seconds granted first. A plain put
    /// costs etcd less than a txn of one put (about 30% less on etcd 3.4).
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: Option<i64>,
        ttl: Option<Ttl>,
    },
    /// Revoke a dropped handle's lease (its keys go), then put the
    /// progress marker, so the request has a revision the mirror sees.
    Revoke {
        lease: i64,
    },
}

/// A `set_with_ttl`'s lease to grant: its TTL, for the state's `key`.
pub(crate) struct Ttl {
    pub(crate) seconds: i64,
    pub(crate) key: Box<str>,
}

/// A command turned into a request.
pub(crate) struct Plan {
    pub(crate) request: Request,
    pub(crate) operation: Operation,
    pub(crate) expect: Expect,
    /// The txn's success branch ends with a put of the progress marker
    /// (see [`super::marker`]), which is not a write of the state.
    pub(crate) marked: bool,
}

/// What a command comes to before anything is sent.
pub(crate) enum Planned {
    Send(Plan),
    /// Answered without a txn: nothing to write, or an error.
    Done(Reply),
    /// A rollback to this version, older than the local history window:
    /// to plan from etcd's MVCC history ([`rollback_from_history`]).
    FromHistory(Version),
}

/// A txn under construction, with its size accounted.
struct Builder<'a> {
    settings: &'a Settings,
    /// The lease every put carries: the handle's, if it has one.
    lease: Option<i64>,
    compares: Vec<Compare>,
    /// Whether `ops` has a put.
    puts: bool,
    ops: Vec<TxnOp>,
    failure: Vec<TxnOp>,
    bytes: usize,
}

impl<'a> Builder<'a> {
    fn new(settings: &'a Settings, lease: Option<i64>) -> Self {
        Self {
            settings,
            lease,
            compares: Vec::new(),
            puts: false,
            ops: Vec::new(),
            failure: Vec::new(),
            bytes: 0,
        }
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.settings.prefix.len() + key.len());
        full.extend_from_slice(self.settings.prefix.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }

    fn put<V: Serialize>(&mut self, key: &str, value: &V) -> Result<(), StateError> {
        let bytes = encode(value)?;
        let full = self.full_key(key);
        self.bytes += full.len() + bytes.len() + OVERHEAD_PER_ITEM;
        let options = self.lease.map(|lease| PutOptions::new().with_lease(lease));
        self.ops.push(TxnOp::put(full, bytes, options));
        self.puts = true;
        Ok(())
    }

    /// Put bytes as they are (a value read back from etcd).
    fn put_raw(&mut self, key: &str, bytes: Vec<u8>) {
        let full = self.full_key(key);
        self.bytes += full.len() + bytes.len() + OVERHEAD_PER_ITEM;
        self.ops.push(TxnOp::put(full, bytes, None));
        self.puts = true;
    }

    fn delete(&mut self, key: &str) {
        let full = self.full_key(key);
        self.bytes += full.len() + OVERHEAD_PER_ITEM;
        self.ops.push(TxnOp::delete(full, None));
    }

    /// Delete the keys from `start` (a full key) up to `end` (excluded).
    fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.bytes += start.len() + end.len() + OVERHEAD_PER_ITEM;
        self.ops.push(TxnOp::delete(
            start,
            Some(DeleteOptions::new().with_range(end)),
        ));
    }

    /// Require `key` to satisfy `expected`, and read it on failure.
    fn compare(&mut self, key: &str, expected: Precondition) {
        let full = self.full_key(key);
        self.bytes += 2 * (full.len() + OVERHEAD_PER_ITEM);
        // A missing key compares as revision 0 in etcd.
        self.compares.push(match expected {
            Precondition::Absent => Compare::create_revision(full.clone(), CompareOp::Equal, 0),
            Precondition::Exists => Compare::create_revision(full.clone(), CompareOp::Greater, 0),
            Precondition::ModifiedAt(version) => {
                Compare::mod_revision(full.clone(), CompareOp::Equal, revision_number(version))
            }
        });
        self.failure
            .push(TxnOp::get(full, Some(GetOptions::new().with_keys_only())));
    }

    /// Require that no key under the prefix was put after `snapshot`, and
    /// on failure read the first one that was.
    fn unchanged_since(&mut self, snapshot: Version) {
        let prefix = marker::keys_start(&self.settings.prefix);
        let end = marker::keys_end(&self.settings.prefix);
        let after = revision_number(snapshot).saturating_add(1);
        self.bytes += 2 * (prefix.len() + end.len() + OVERHEAD_PER_ITEM);
        self.compares.push(
            Compare::mod_revision(prefix.clone(), CompareOp::Less, after).with_range(end.clone()),
        );
        self.failure.push(TxnOp::get(
            prefix,
            Some(
                GetOptions::new()
                    .with_range(end)
                    .with_keys_only()
                    .with_min_mod_revision(after)
                    .with_limit(1),
            ),
        ));
    }

    /// The txn, or the limit it breaks; and whether its success branch
    /// ends with the progress marker. Every txn makes a revision: one
    /// whose compares may fail puts the marker when they do, and one that
    /// only deletes (and may find nothing) puts it as well.
    fn finish(mut self) -> Result<(Txn, bool), StateError> {
        let marker = marker::key(&self.settings.prefix);
        let put_marker = || TxnOp::put(marker.clone(), Vec::new(), None);
        if !self.compares.is_empty() {
            self.failure.push(put_marker());
            self.bytes += marker.len() + OVERHEAD_PER_ITEM;
        }
        let marked = !self.puts;
        if marked {
            self.ops.push(put_marker());
            self.bytes += marker.len() + OVERHEAD_PER_ITEM;
        }
        let most = self
            .ops
            .len()
            .max(self.compares.len())
            .max(self.failure.len());
        if most > self.settings.max_txn_ops {
            return Err(StateError::TooManyOperations {
                operations: most,
                limit: self.settings.max_txn_ops,
            });
        }
        if self.bytes > self.settings.max_request_bytes {
            return Err(StateError::RequestTooLarge {
                bytes: self.bytes,
                limit: self.settings.max_request_bytes,
            });
        }
        let txn = Txn::new()
            .when(self.compares)
            .and_then(self.ops)
            .or_else(self.failure);
        Ok((txn, marked))
    }
}

/// `value`'s JSON; a non-finite float is refused, not written as `null`
/// (see [`crate::json`]).
fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, StateError> {
    let mut bytes = Vec::new();
    crate::json::write(&mut bytes, value).map_err(|error| StateError::NotSerializable {
        cause: Cause::new(error),
    })?;
    Ok(bytes)
}

/// Nothing written: the version stays the published one.
fn unchanged(current: &Snapshot<impl Sized>) -> Planned {
    Planned::Done(Ok(Applied {
        version: current.version(),
        committed: false,
    }))
}

fn send(builder: Builder<'_>, operation: Operation, expect: Expect) -> Planned {
    match builder.finish() {
        Ok((txn, marked)) => Planned::Send(Plan {
            request: Request::Txn(txn),
            operation,
            expect,
            marked,
        }),
        Err(error) => Planned::Done(Err(error)),
    }
}

/// A `set` as one plain put (with a lease of `ttl` seconds, if given),
/// its size checked first.
fn single_put<V: Serialize>(txn: &Builder<'_>, key: &str, value: &V, ttl: Option<Ttl>) -> Planned {
    let value = match encode(value) {
        Ok(value) => value,
        Err(error) => return Planned::Done(Err(error)),
    };
    let key = txn.full_key(key);
    let bytes = key.len() + value.len() + OVERHEAD_PER_ITEM;
    let limit = txn.settings.max_request_bytes;
    if bytes > limit {
        return Planned::Done(Err(StateError::RequestTooLarge { bytes, limit }));
    }
    Planned::Send(Plan {
        request: Request::Put {
            key,
            value,
            lease: txn.lease,
            ttl,
        },
        operation: Operation::Set,
        expect: Expect::Writes,
        marked: false,
    })
}

/// What `key` holds in `current`, as a precondition a txn can check.
fn as_found(entry: Option<&Entry<impl Sized>>) -> Precondition {
    entry.map_or(Precondition::Absent, |entry| {
        Precondition::ModifiedAt(entry.modified())
    })
}

/// Turn `op` into a txn against `current`, the mirror's newest snapshot,
/// which shows every revision up to `passed` (the mirror has seen them;
/// the last ones may have changed nothing it shows); its puts carry
/// `lease`, the handle's.
pub(crate) fn plan<V: Serialize>(
    op: Op<V>,
    lease: Option<i64>,
    current: &Snapshot<V>,
    passed: Version,
    history: &Mutex<History<V>>,
    settings: &Settings,
) -> Planned {
    let mut txn = Builder::new(settings, lease);
    let attempt = match op {
        Op::Close => return unchanged(current),
        Op::RevokeLease(lease) => {
            return Planned::Send(Plan {
                request: Request::Revoke { lease },
                operation: Operation::External,
                expect: Expect::Writes,
                marked: false,
            })
        }
        // A lease of its own, granted when the request is sent: the key
        // goes with it, unless a later write replaces it (a put without
        // this lease detaches it), as in memory.
        Op::SetWithTtl { key, value, ttl } => {
            // Beyond etcd's longest lease: never expires, as in memory.
            let ttl = Some(super::lease::ttl_seconds(ttl))
                .filter(|&seconds| seconds <= super::lease::MAX_TTL_SECONDS)
                .map(|seconds| Ttl {
                    seconds,
                    key: key.as_str().into(),
                });
            return single_put(&txn, key.as_str(), &value, ttl);
        }
        Op::Set { key, value } => return single_put(&txn, key.as_str(), &value, None),
        Op::Update(items) => {
            // etcd refuses a key twice in one txn; the last value wins, as
            // in memory.
            let mut seen = std::collections::HashSet::new();
            let mut last: Vec<&(crate::writer::key::KeyArg, V)> = items
                .iter()
                .rev()
                .filter(|(key, _)| seen.insert(key.as_str()))
                .collect();
            last.reverse();
            last.into_iter()
                .try_for_each(|(key, value)| txn.put(key.as_str(), value))
                .map(|()| (Operation::Update, Expect::Writes))
        }
        Op::Delete(key) => {
            // Sent even when the mirror shows no such key: another
            // process may have created it since.
            txn.delete(key.as_str());
            Ok((Operation::Delete, Expect::Writes))
        }
        Op::Clear => {
            txn.delete_range(
                marker::keys_start(&settings.prefix),
                marker::keys_end(&settings.prefix),
            );
            Ok((Operation::Clear, Expect::Writes))
        }
        Op::Retain(keys) => {
            // Delete the gaps between the kept keys, sorted as etcd sorts
            // them (bytes): atomic, and keys created meanwhile go too.
            let mut kept: Vec<Vec<u8>> = keys.iter().map(|key| txn.full_key(key)).collect();
            kept.sort_unstable();
            kept.dedup();
            let mut start = marker::keys_start(&settings.prefix);
            for key in kept {
                let mut after = key.clone();
                after.push(0);
                if start < key {
                    txn.delete_range(start, key);
                }
                start = after;
            }
            txn.delete_range(start, marker::keys_end(&settings.prefix));
            Ok((Operation::Retain, Expect::Writes))
        }
        Op::SetIf {
            key,
            value,
            expected,
        } => {
            txn.compare(key.as_str(), expected);
            txn.put(key.as_str(), &value).map(|()| {
                (
                    Operation::Conditional,
                    Expect::Key {
                        key: key.as_str().to_owned(),
                        expected,
                    },
                )
            })
        }
        Op::DeleteIf { key, expected } => {
            txn.compare(key.as_str(), expected);
            txn.delete(key.as_str());
            Ok((
                Operation::Conditional,
                Expect::Key {
                    key: key.as_str().to_owned(),
                    expected,
                },
            ))
        }
        Op::Modify {
            key,
            f,
            value: slot,
        } => {
            let entry = current.entry(key.as_str());
            let expected = as_found(entry);
            let now = entry.map(|entry| Arc::clone(entry.value()));
            let outcome = catch_unwind(AssertUnwindSafe(|| f(now.as_deref())));
            let decided = match outcome {
                Ok(decided) => decided,
                Err(payload) => {
                    return Planned::Done(Err(StateError::ModifyPanicked {
                        key: key.as_str().to_owned(),
                        message: panic_message(payload.as_ref()),
                    }))
                }
            };
            match decided {
                Modification::Keep => {
                    slot.fill(now);
                    return unchanged(current);
                }
                Modification::Delete if now.is_none() => return unchanged(current),
                Modification::Delete => txn.delete(key.as_str()),
                Modification::Set(value) => {
                    if let Err(error) = txn.put(key.as_str(), &value) {
                        return Planned::Done(Err(error));
                    }
                    slot.fill(Some(Arc::new(value)));
                }
            }
            txn.compare(key.as_str(), expected);
            Ok((
                Operation::Modify,
                Expect::Key {
                    key: key.as_str().to_owned(),
                    expected,
                },
            ))
        }
        Op::Transaction(f) => {
            let outcome = catch_unwind(AssertUnwindSafe(|| f(current)));
            let writes = match outcome {
                Ok(Some(writes)) => writes,
                Ok(None) => return unchanged(current),
                Err(payload) => {
                    return Planned::Done(Err(StateError::TransactionPanicked {
                        message: panic_message(payload.as_ref()),
                    }))
                }
            };
            if writes.is_empty() {
                return unchanged(current);
            }
            if writes.iter().any(|write| write.key().is_empty()) {
                return Planned::Done(Err(StateError::EmptyKey));
            }
            let mut keys: Vec<(String, Precondition)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            // The last write of a key wins, as in memory.
            let mut last: Vec<&Write<V>> = writes
                .iter()
                .rev()
                .filter(|write| seen.insert(&**write.key()))
                .collect();
            last.reverse();
            let mut failed = None;
            for write in last {
                let key = write.key();
                let expected = as_found(current.entry(key));
                txn.compare(key, expected);
                keys.push((key.to_string(), expected));
                let done = match write {
                    Write::Set { value, .. } => txn.put(key, value),
                    Write::Delete { .. } => {
                        txn.delete(key);
                        Ok(())
                    }
                };
                if let Err(error) = done {
                    failed = Some(error);
                    break;
                }
            }
            let seen = passed.max(current.version());
            txn.unchanged_since(seen);
            match failed {
                Some(error) => Err(error),
                None => Ok((
                    Operation::Transaction,
                    Expect::Keys {
                        keys,
                        snapshot: Some(seen),
                    },
                )),
            }
        }
        // A rollback restores values, not who owns them: its puts carry
        // no lease, as it restores no TTL in memory.
        Op::Rollback(target) => {
            txn.lease = None;
            match rollback(&mut txn, target, None, current, history) {
                Err(StateError::VersionCompacted { .. }) => return Planned::FromHistory(target),
                planned => planned,
            }
        }
        Op::RollbackIf {
            target,
            expected_current,
        } => {
            txn.lease = None;
            match rollback(&mut txn, target, Some(expected_current), current, history) {
                Err(StateError::VersionCompacted { .. }) => return Planned::FromHistory(target),
                planned => planned,
            }
        }
    };
    match attempt {
        Ok((_, Expect::Writes)) if txn.ops.is_empty() => unchanged(current),
        Ok((operation, expect)) => send(txn, operation, expect),
        Err(error) => Planned::Done(Err(error)),
    }
}

/// A rollback as one txn: the keys written since `target` go back to
/// their values there, each compared on the modified version the mirror
/// shows now, so a concurrent write makes it a conflict instead of being
/// overwritten.
fn rollback<V: Serialize>(
    txn: &mut Builder<'_>,
    target: Version,
    expected_current: Option<Version>,
    current: &Snapshot<V>,
    history: &Mutex<History<V>>,
) -> Result<(Operation, Expect), StateError> {
    let now = current.version();
    if let Some(expected) = expected_current {
        if expected != now {
            return Err(StateError::VersionMoved {
                expected,
                current: now,
            });
        }
    }
    if target >= now {
        return Err(StateError::InvalidVersion {
            target,
            current: now,
        });
    }
    let history = lock(history).clone();
    let restored = history
        .snapshot_at(target, now)
        .map_err(|unreachable| unreachable.into_error(target, now))?;
    let mut keys: Vec<_> = history
        .keys_changed_between(target, now)
        .into_iter()
        .collect();
    drop(history);
    keys.sort_unstable();
    let mut compared = Vec::new();
    for key in keys {
        let entry = current.entry(&key);
        let then = restored.get(&key);
        let differs = match (entry, &then) {
            (Some(entry), Some(then)) => !Arc::ptr_eq(entry.value(), then),
            (None, None) => false,
            _ => true,
        };
        if !differs {
            continue;
        }
        let expected = as_found(entry);
        txn.compare(&key, expected);
        compared.push((key.to_string(), expected));
        match then {
            Some(value) => txn.put(&key, &*value)?,
            None => txn.delete(&key),
        }
    }
    Ok(if compared.is_empty() {
        // A rollback to identical contents: nothing to send.
        (Operation::Rollback, Expect::Writes)
    } else {
        let expect = Expect::Keys {
            keys: compared,
            snapshot: None,
        };
        (Operation::Rollback, expect)
    })
}

/// A rollback to a version older than the local window, as one txn: the
/// state's keys as etcd held them then (`then`, read from its MVCC
/// history) against `current`, the snapshot the command saw. A key whose
/// modified revision or JSON is the same in both is untouched; every other one is
/// put back (its bytes as they were) or deleted, compared on the modified
/// version `current` shows, so a concurrent write makes it a conflict.
pub(crate) fn rollback_from_history<V: Serialize + DeserializeOwned>(
    then: &BTreeMap<Box<str>, Held>,
    current: &Snapshot<V>,
    settings: &Settings,
) -> Result<Option<Plan>, StateError> {
    let mut txn = Builder::new(settings, None);
    // A value that does not decode as `V` was not part of the state then,
    // as the mirror does not show one now.
    let then: BTreeMap<&str, &Held> = then
        .iter()
        .filter(|(_, held)| serde_json::from_slice::<V>(&held.value).is_ok())
        .map(|(key, held)| (&**key, held))
        .collect();
    let keys: BTreeSet<&str> = then.keys().copied().chain(current.keys()).collect();
    let mut compared = Vec::new();
    for key in keys {
        let now = current.entry(key);
        let was = then.get(key).copied();
        // The same write, or one of the same bytes (a rollback repeated).
        let same = match (now, was) {
            (Some(now), Some(was)) => {
                now.modified() == was.modified
                    || encode(&**now.value()).is_ok_and(|bytes| bytes == was.value)
            }
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        let expected = as_found(now);
        txn.compare(key, expected);
        compared.push((key.to_owned(), expected));
        match was {
            Some(was) => txn.put_raw(key, was.value.clone()),
            None => txn.delete(key),
        }
    }
    if compared.is_empty() {
        return Ok(None);
    }
    let expect = Expect::Keys {
        keys: compared,
        snapshot: None,
    };
    let (txn, marked) = txn.finish()?;
    Ok(Some(Plan {
        request: Request::Txn(txn),
        operation: Operation::Rollback,
        expect,
        marked,
    }))
}

/// Read a txn's answer: its revision if it wrote to the state, `None` if
/// it changed nothing, or the conflict. `marked`: the success branch ends
/// with the progress marker's put, which is not a write of the state.
pub(crate) fn outcome(
    expect: &Expect,
    marked: bool,
    response: &TxnResponse,
) -> Result<Option<Version>, StateError> {
    let revision = revision_version(response.header().map_or(0, |header| header.revision()));
    let responses = response.op_responses();
    if response.succeeded() {
        let writes = &responses[..responses.len() - usize::from(marked && !responses.is_empty())];
        let wrote = writes.iter().any(|response| match response {
            TxnOpResponse::Put(_) => true,
            TxnOpResponse::Delete(delete) => delete.deleted() > 0,
            _ => false,
        });
        return Ok(wrote.then_some(revision));
    }
    let found = |index: usize| -> Option<Version> {
        match responses.get(index) {
            Some(TxnOpResponse::Get(get)) => get
                .kvs()
                .first()
                .map(|kv| revision_version(kv.mod_revision())),
            _ => None,
        }
    };
    match expect {
        Expect::Writes => Ok(None),
        Expect::Key { key, expected } => Err(StateError::Conflict {
            key: key.clone(),
            expected: *expected,
            found: found(0),
        }),
        Expect::Keys { keys, snapshot } => {
            for (index, (key, expected)) in keys.iter().enumerate() {
                let now = found(index);
                if !expected.holds(now) {
                    return Err(StateError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        found: now,
                    });
                }
            }
            // Not a compared key: one read (or any key) put after the
            // transaction's snapshot. (A rollback's compares are all on
            // keys: one of them failed, but its key moved on again
            // meanwhile: report the first.)
            let Some(snapshot) = snapshot else {
                let (key, expected) = keys
                    .first()
                    .cloned()
                    .unwrap_or((String::new(), Precondition::Absent));
                return Err(StateError::Conflict {
                    key,
                    expected,
                    found: found(0),
                });
            };
            let (key, modified) = match responses.get(keys.len()) {
                Some(TxnOpResponse::Get(get)) => get
                    .kvs()
                    .first()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(kv.key()).into_owned(),
                            Some(revision_version(kv.mod_revision())),
                        )
                    })
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            Err(StateError::Conflict {
                key,
                expected: Precondition::ModifiedAt(*snapshot),
                found: modified,
            })
        }
    }
}
