//! The journal's file: three redb tables, recovery, group appends and
//! checkpoints.
//!
//! - `header`: format, the version of the stored snapshot, the value type;
//! - `base`: the stored snapshot, every key with its created and modified
//!   versions and its value, as of the header's version;
//! - `log`: one record per commit after that version, keyed by version.
//!
//! A group of commits is one redb write transaction: one commit, one
//! fsync. A *checkpoint* folds the log's oldest records into `base` (in
//! place, key by key: the cost is the folded changes, not the state's
//! size) and deletes them, keeping the last `max_history` commits in the
//! log so that recovery rebuilds the retained history exactly. The file
//! therefore holds the live data, the retained window and at most one
//! checkpoint interval of log, however long the process runs; redb reuses
//! the pages freed by deleted records.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Cause;
use crate::history::{Commit, CommitView};
use crate::journal::format::{self, Header, Malformed, FORMAT};
use crate::json;
use crate::map::Map;
use crate::replay::{Replay, Replayed};
use crate::snapshot::{Entry, Snapshot};
use crate::sync::Arc;
use crate::writer::commit::panic_message;
use crate::Version;

const HEADER: TableDefinition<&str, &[u8]> = TableDefinition::new("header");
const BASE: TableDefinition<&str, &[u8]> = TableDefinition::new("base");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const HEADER_KEY: &str = "header";

/// When the journal folds its log into the stored snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoints {
    /// Commits kept in the log: the retained history window.
    pub(crate) keep: u64,
    /// Fold once the log holds this many commits beyond `keep`...
    pub(crate) every_commits: u64,
    /// ...or this many bytes of records.
    pub(crate) every_bytes: u64,
}

/// Why opening failed, before the caller attaches the path.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    Storage(redb::Error),
    Corrupt(String),
    NewerFormat(u32),
    ValueType(String),
    Decode(serde_json::Error),
}

impl From<Malformed> for OpenFailure {
    fn from(malformed: Malformed) -> Self {
        OpenFailure::Corrupt(malformed.0)
    }
}

impl<E: Into<redb::Error>> From<E> for OpenFailure {
    fn from(error: E) -> Self {
        OpenFailure::Storage(error.into())
    }
}

/// Why a group could not be appended.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A value did not serialize; nothing was written, the journal is fine.
    Rejected(Cause),
    /// The storage failed; the journal must not be used again.
    Broken(Cause),
}

/// The state as recovered: the stored snapshot, the commits after it
/// (with old values, as the history needs them), and the newest version.
pub(crate) struct Recovered<V> {
    pub(crate) base: Snapshot<V>,
    pub(crate) commits: Vec<Commit<V>>,
}

/// The open journal, owned by the journal thread.
pub(crate) struct Store {
    db: Database,
    header: Header,
    newest: u64,
    /// Bytes of log records since the last checkpoint.
    log_bytes: u64,
    checkpoints: Checkpoints,
}

impl Store {
    /// Open `db`, creating the tables (with `initial` as the stored
    /// snapshot) if it is new, and recover what it holds.
    pub(crate) fn open<V: Serialize + DeserializeOwned>(
        db: Database,
        value_type: &str,
        initial: Vec<(Arc<str>, V)>,
        checkpoints: Checkpoints,
    ) -> Result<(Self, Recovered<V>), OpenFailure> {
        let header = match read_header(&db)? {
            Some(header) => header,
            None => create(&db, value_type, &initial)?,
        };
        if header.format > FORMAT {
            return Err(OpenFailure::NewerFormat(header.format));
        }
        if header.value_type != value_type {
            return Err(OpenFailure::ValueType(header.value_type));
        }
        let (recovered, log_bytes) = recover::<V>(&db, header.base)?;
        let newest = header.base + recovered.commits.len() as u64;
        let store = Self {
            db,
            header,
            newest,
            // What the log already holds counts towards the next
            // checkpoint, or short-lived processes would never reach it.
            log_bytes,
            checkpoints,
        };
        Ok((store, recovered))
    }

    /// Write a group's commits in one transaction and sync it.
    pub(crate) fn append<V: Serialize>(
        &mut self,
        commits: &[CommitView<V>],
    ) -> Result<(), Failure> {
        let Some(last) = commits.last().map(|commit| commit.version.get()) else {
            return Ok(());
        };
        let broken = |error: redb::Error| Failure::Broken(Cause::new(error));
        let transaction = self.db.begin_write().map_err(|e| broken(e.into()))?;
        let mut bytes = 0;
        let written = (|| {
            let mut log = transaction.open_table(LOG).map_err(|e| broken(e.into()))?;
            let base = transaction.open_table(BASE).map_err(|e| broken(e.into()))?;
            for commit in commits {
                let version = commit.version.get();
                let origins = match commit.restored_from {
                    Some(target) => {
                        origins(&log, &base, self.header.base, target.get(), &commit.changes)
                            .map_err(broken)?
                    }
                    None => Vec::new(),
                };
                let record = encode(commit, &origins)?;
                bytes += record.len() as u64;
                log.insert(version, record.as_slice())
                    .map_err(|e| broken(e.into()))?;
            }
            Ok(())
        })();
        if let Err(failure) = written {
            // Nothing of the group reaches the file. An abort that fails
            // leaves the database unusable: treat it as broken.
            return match transaction.abort() {
                Ok(()) => Err(failure),
                Err(error) => Err(broken(error.into())),
            };
        }
        transaction.commit().map_err(|e| broken(e.into()))?;
        self.newest = last;
        self.log_bytes += bytes;
        Ok(())
    }

    /// Fold the log's oldest records into the stored snapshot if the log
    /// has outgrown the window by a checkpoint interval.
    pub(crate) fn checkpoint_if_due(&mut self) -> Result<(), Cause> {
        let outside = (self.newest - self.header.base).saturating_sub(self.checkpoints.keep);
        let due = outside >= self.checkpoints.every_commits
            || (outside > 0 && self.log_bytes >= self.checkpoints.every_bytes);
        if !due {
            return Ok(());
        }
        self.checkpoint(self.header.base + outside)
            .map_err(Cause::new)
    }

    /// Fold every record up to `upto` into the stored snapshot.
    fn checkpoint(&mut self, upto: u64) -> Result<(), redb::Error> {
        let transaction = self.db.begin_write()?;
        {
            let mut log = transaction.open_table(LOG)?;
            let mut base = transaction.open_table(BASE)?;
            let mut folded = VecDeque::new();
            for item in log.range(self.header.base + 1..=upto)? {
                let (version, record) = item?;
                folded.push_back((version.value(), record.value().to_vec()));
            }
            for (version, record) in &folded {
                let commit = format::read_commit(*version, record).map_err(corrupt)?;
                for change in &commit.changes {
                    match change.value {
                        Some(value) => {
                            let created = match base.get(change.key)? {
                                Some(entry) => {
                                    format::read_entry(change.key, entry.value())
                                        .map_err(corrupt)?
                                        .created
                                }
                                None => *version,
                            };
                            let entry = format::entry(
                                change.key,
                                format::StoredEntry {
                                    created,
                                    modified: *version,
                                    origin: change.origin.unwrap_or(*version),
                                    value,
                                },
                            );
                            base.insert(change.key, entry.as_slice())?;
                        }
                        None => {
                            base.remove(change.key)?;
                        }
                    }
                }
                log.remove(version)?;
            }
            let mut header_table = transaction.open_table(HEADER)?;
            let header = Header {
                base: upto,
                ..self.header.clone()
            };
            header_table.insert(HEADER_KEY, format::header(&header).as_slice())?;
            self.header = header;
        }
        transaction.commit()?;
        self.log_bytes = 0;
        Ok(())
    }
}

/// One commit as a record; a rollback's values carry their `origins`.
fn encode<V: Serialize>(commit: &CommitView<V>, origins: &[u64]) -> Result<Vec<u8>, Failure> {
    let version = commit.version.get();
    // A value's `Serialize` is user code: a panic in it fails the group
    // like an error, and the journal thread lives on.
    let record = catch_unwind(AssertUnwindSafe(|| {
        format::commit(
            version,
            commit.timestamp,
            commit.operation,
            commit.changed_by.as_deref(),
            commit.restored_from.map(Version::get),
            commit
                .changes
                .as_slice()
                .iter()
                .enumerate()
                .map(|(at, change)| {
                    let origin = origins
                        .get(at)
                        .copied()
                        .filter(|&origin| origin != u64::MAX)
                        .unwrap_or(version);
                    (&*change.key, change.new.as_deref(), origin)
                }),
            |buffer, value| json::write(buffer, value),
        )
    }));
    match record {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(error)) => Err(Failure::Rejected(Cause::new(error))),
        Err(payload) => Err(Failure::Rejected(Cause::new(std::io::Error::other(
            format!(
                "serializing a value panicked: {}",
                panic_message(payload.as_ref())
            ),
        )))),
    }
}

/// For each change of a rollback to `target`, the version that first wrote
/// the value it restores: the writer restores the target's very values
/// (the same `Arc`s), and recovery must share them the same way, because
/// a rollback compares values by identity.
///
/// The key's newest write at or before `target` is in the log (a plain
/// write is its own origin; a rollback's record names its origin), or else
/// the value is the stored snapshot's, whose entry names its origin. The
/// search reads the log back from `target` once for all the keys: the cost
/// is at most the log's length, and only rollbacks pay it.
fn origins<V>(
    log: &redb::Table<'_, u64, &[u8]>,
    base: &redb::Table<'_, &str, &[u8]>,
    base_version: u64,
    target: u64,
    changes: &crate::history::Changes<V>,
) -> Result<Vec<u64>, redb::Error> {
    let changes = changes.as_slice();
    let mut origins: Vec<Option<u64>> = changes
        .iter()
        .map(|change| change.new.as_ref().map_or(Some(0), |_| None))
        .collect();
    let mut unresolved = origins.iter().filter(|origin| origin.is_none()).count();
    let mut version = target;
    while unresolved > 0 && version > base_version {
        if let Some(record) = log.get(version)? {
            let stored = format::read_commit(version, record.value()).map_err(corrupt)?;
            for (at, change) in changes.iter().enumerate() {
                if origins[at].is_some() {
                    continue;
                }
                if let Some(found) = stored.changes.iter().rev().find(|c| c.key == &*change.key) {
                    origins[at] = Some(found.origin.unwrap_or(version));
                    unresolved -= 1;
                }
            }
        }
        version -= 1;
    }
    for (at, change) in changes.iter().enumerate() {
        if origins[at].is_none() {
            if let Some(entry) = base.get(&*change.key)? {
                let stored = format::read_entry(&change.key, entry.value()).map_err(corrupt)?;
                origins[at] = Some(stored.origin);
            }
        }
    }
    // Not found (which the writer's history rules out): the value counts
    // as new at the rollback's own version, in `encode`.
    Ok(origins
        .into_iter()
        .map(|origin| origin.unwrap_or(u64::MAX))
        .collect())
}

fn corrupt(malformed: Malformed) -> redb::Error {
    redb::Error::Corrupted(malformed.0)
}

fn read_header(db: &Database) -> Result<Option<Header>, OpenFailure> {
    let transaction = db.begin_read()?;
    let table = match transaction.open_table(HEADER) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            // No header: a journal whose creation never committed (an
            // empty database), or another application's database, which
            // must not be adopted and written to.
            let tables: Vec<String> = transaction
                .list_tables()?
                .map(|table| redb::TableHandle::name(&table).to_owned())
                .collect();
            if tables.is_empty() {
                return Ok(None);
            }
            return Err(OpenFailure::Corrupt(format!(
                "a redb database that is not a journal (its tables: {})",
                tables.join(", ")
            )));
        }
        Err(error) => return Err(error.into()),
    };
    let Some(record) = table.get(HEADER_KEY)? else {
        return Err(OpenFailure::Corrupt("the header record is missing".into()));
    };
    Ok(Some(format::read_header(record.value())?))
}

/// Lay out a new journal whose stored snapshot is `initial` at version 0.
fn create<V: Serialize>(
    db: &Database,
    value_type: &str,
    initial: &[(Arc<str>, V)],
) -> Result<Header, OpenFailure> {
    let header = Header {
        format: FORMAT,
        base: Version::INITIAL.get(),
        value_type: value_type.to_owned(),
    };
    let transaction = db.begin_write()?;
    {
        let mut base = transaction.open_table(BASE)?;
        for (key, value) in initial {
            let mut json = Vec::new();
            json::write(&mut json, value).map_err(OpenFailure::Decode)?;
            let version = header.base;
            let entry = format::StoredEntry {
                created: version,
                modified: version,
                origin: version,
                value: &json,
            };
            base.insert(&**key, format::entry(key, entry).as_slice())?;
        }
        transaction.open_table(LOG)?;
        let mut table = transaction.open_table(HEADER)?;
        table.insert(HEADER_KEY, format::header(&header).as_slice())?;
    }
    transaction.commit()?;
    Ok(header)
}

/// Load the stored snapshot, then replay the log over it.
fn recover<V: DeserializeOwned>(
    db: &Database,
    base_version: u64,
) -> Result<(Recovered<V>, u64), OpenFailure> {
    let transaction = db.begin_read()?;
    let log = transaction.open_table(LOG)?;
    // The values rollbacks restored, by key and origin: found in the
    // stored snapshot or the log, then shared by every rollback that
    // restores them, as the writer shared them.
    let mut wanted: HashMap<(Box<str>, u64), Option<Arc<V>>> = HashMap::new();
    for item in log.iter()? {
        let (version, record) = item?;
        let stored = format::read_commit(version.value(), record.value())?;
        for change in &stored.changes {
            if let Some(origin) = change.origin {
                wanted.insert((change.key.into(), origin), None);
            }
        }
    }
    let mut map = Map::new();
    for item in transaction.open_table(BASE)?.iter()? {
        let (key, record) = item?;
        let key = key.value();
        let stored = format::read_entry(key, record.value())?;
        if stored.modified > base_version {
            return Err(OpenFailure::Corrupt(format!(
                "key {key:?} modified at {}, after the snapshot's version {base_version}",
                stored.modified
            )));
        }
        let value =
            Arc::new(serde_json::from_slice::<V>(stored.value).map_err(OpenFailure::Decode)?);
        if !wanted.is_empty() {
            if let Some(slot) = wanted.get_mut(&(key.into(), stored.origin)) {
                *slot = Some(Arc::clone(&value));
            }
        }
        map.insert(
            Arc::from(key),
            Entry::new(
                value,
                Version::new(stored.modified),
                Version::new(stored.created),
            ),
        );
    }
    let mut replay = Replay::new(Snapshot::new(Version::new(base_version), map));
    let mut log_bytes = 0;
    for item in log.iter()? {
        let (version, record) = item?;
        let version = version.value();
        log_bytes += record.value().len() as u64;
        let stored = format::read_commit(version, record.value())?;
        let mut changes = Vec::with_capacity(stored.changes.len());
        for change in stored.changes {
            let Some(json) = change.value else {
                changes.push((change.key, None));
                continue;
            };
            // Only a rollback's value may be shared; a plain write made a
            // new value (even a second write of the key in one commit).
            let shared = change
                .origin
                .and_then(|origin| wanted.get(&(change.key.into(), origin)))
                .and_then(Option::clone);
            let value = match shared {
                Some(value) => value,
                None => {
                    let value =
                        Arc::new(serde_json::from_slice::<V>(json).map_err(OpenFailure::Decode)?);
                    let origin = change.origin.unwrap_or(version);
                    if let Some(slot) = wanted.get_mut(&(change.key.into(), origin)) {
                        *slot = Some(Arc::clone(&value));
                    }
                    value
                }
            };
            changes.push((change.key, Some(value)));
        }
        replay
            .commit(Replayed {
                version: Version::new(version),
                timestamp: stored.timestamp,
                operation: stored.operation,
                changed_by: stored.changed_by,
                restored_from: stored.restored_from.map(Version::new),
                changes,
            })
            .map_err(|inconsistent| OpenFailure::Corrupt(inconsistent.0))?;
    }
    let (base, commits) = replay.finish();
    Ok((Recovered { base, commits }, log_bytes))
}
