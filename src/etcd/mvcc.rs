//! etcd's MVCC history: the prefix as it was at a revision, and the
//! commits since, for what the local history window no longer holds
//! (`fetch_snapshot_at`, `fetch_changes_since`, and a `rollback` to a
//! version older than the window), back to etcd's last compaction.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, KvClient, WatchOptions};
use serde::de::DeserializeOwned;

use crate::error::{Cause, StateError};
use crate::history::{Change, Changes, CommitView, Operation};
use crate::map::Map;
use crate::snapshot::{Entry, Snapshot};
use crate::sync::Arc;
use crate::Version;

use super::link::Link;
use super::marker;
use super::mirror::{revision_number, revision_version, MAX_MESSAGE};
use super::run::{failed, within};

/// A key of the state as etcd held it at a revision: its value's bytes,
/// and its created and modified revisions.
pub(crate) struct Held {
    pub(crate) value: Vec<u8>,
    pub(crate) created: Version,
    pub(crate) modified: Version,
}

/// The state's keys (without the prefix) at `revision`, from etcd.
///
/// # Errors
///
/// [`StateError::VersionCompacted`] if etcd has compacted `revision`
/// away (with the oldest revision it still holds);
/// [`StateError::OutcomeUnknown`] or [`StateError::EtcdRejected`] if the
/// read failed.
pub(crate) async fn range_at(
    client: &Client,
    prefix: &str,
    revision: Version,
    timeout: Duration,
) -> Result<BTreeMap<Box<str>, Held>, StateError> {
    let mut kv: KvClient = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    // etcd reads revision 0 as "the newest"; the state at version 0 is
    // the one before any write, as at revision 1, a new cluster's.
    let options = GetOptions::new()
        .with_range(marker::keys_end(prefix))
        .with_revision(revision_number(revision).max(1));
    let read = within(timeout, kv.get(marker::keys_start(prefix), Some(options))).await?;
    let mut response = match read {
        Ok(response) => response,
        Err(error) if compacted(&error) => {
            let oldest = oldest_revision(client, prefix, revision, timeout).await;
            return Err(StateError::VersionCompacted {
                target: revision,
                oldest_retained: oldest.unwrap_or(revision.next()),
            });
        }
        Err(error) => return Err(failed(error, None)),
    };
    Ok(response
        .take_kvs()
        .into_iter()
        .filter_map(|kv| held(prefix, kv))
        .collect())
}

fn held(prefix: &str, kv: KeyValue) -> Option<(Box<str>, Held)> {
    let key = std::str::from_utf8(kv.key().strip_prefix(prefix.as_bytes())?).ok()?;
    if key.is_empty() {
        return None;
    }
    let key = Box::from(key);
    let (created, modified) = (
        revision_version(kv.create_revision()),
        revision_version(kv.mod_revision()),
    );
    let (_, value) = kv.into_key_value();
    Some((
        key,
        Held {
            value,
            created,
            modified,
        },
    ))
}

/// etcd's answer to a read of a compacted revision.
fn compacted(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.code() == tonic::Code::OutOfRange && status.message().contains("compacted"))
}

/// The oldest revision etcd still holds: a watch from a compacted
/// revision is cancelled with it.
async fn oldest_revision(
    client: &Client,
    prefix: &str,
    from: Version,
    timeout: Duration,
) -> Option<Version> {
    let options = WatchOptions::new()
        .with_range(marker::keys_end(prefix))
        .with_start_revision(revision_number(from).max(1));
    let asked = async {
        let mut stream = client
            .watch_client()
            .watch(prefix, Some(options))
            .await
            .ok()?;
        loop {
            let response = stream.message().await.ok()??;
            if response.canceled() && response.compact_revision() > 0 {
                return Some(revision_version(response.compact_revision()));
            }
            if !response.created() {
                return None;
            }
        }
    };
    tokio::time::timeout(timeout, asked).await.ok().flatten()
}

/// The state at `revision` as a snapshot of version `revision`, decoding
/// each value as `V`; a value that does not decode is skipped, as the
/// mirror does.
pub(crate) fn snapshot<V: DeserializeOwned>(
    revision: Version,
    keys: BTreeMap<Box<str>, Held>,
) -> Snapshot<V> {
    let mut map = Map::new();
    for (key, held) in keys {
        match serde_json::from_slice::<V>(&held.value) {
            Ok(value) => map.insert(
                Arc::from(&*key),
                Entry::new(Arc::new(value), held.modified, held.created),
            ),
            Err(error) => {
                tracing::warn!(%key, %error, "an etcd value in the MVCC history does not decode; skipped");
            }
        }
    }
    Snapshot::new(revision, map)
}

impl Link {
    /// The state at `revision`, read from etcd.
    pub(crate) async fn snapshot_at<V: DeserializeOwned>(
        &self,
        revision: Version,
    ) -> Result<Snapshot<V>, StateError> {
        let keys = range_at(&self.client, &self.prefix, revision, self.request_timeout).await?;
        Ok(snapshot(revision, keys))
    }
}

impl Link {
    /// The commits after `after` up to `upto` (included), rebuilt from
    /// etcd's history: the state at `after` (a range at that revision),
    /// then the events of a watch from the next revision, one commit per
    /// revision that changes what the state shows, recorded as
    /// [`Operation::External`]. etcd keeps no times: each commit's
    /// timestamp is when it was read.
    ///
    /// The watch ends at the first event after `upto`; so that there is
    /// one, this puts the progress marker first (a revision of its own).
    pub(crate) async fn commits_between<V: DeserializeOwned>(
        &self,
        after: Version,
        upto: Version,
    ) -> Result<Vec<CommitView<V>>, StateError> {
        let timeout = self.request_timeout;
        let then = range_at(&self.client, &self.prefix, after, timeout).await?;
        let mut values: BTreeMap<Box<str>, Arc<V>> = then
            .into_iter()
            .filter_map(|(key, held)| {
                Some((key, Arc::new(serde_json::from_slice(&held.value).ok()?)))
            })
            .collect();
        let mut kv = self.client.kv_client();
        within(timeout, kv.put(marker::key(&self.prefix), Vec::new(), None))
            .await?
            .map_err(|error| failed(error, None))?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision_number(after.next()));
        let read = async {
            let mut stream = self
                .client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE)
                .watch(self.prefix.as_str(), Some(options))
                .await
                .map_err(|error| failed(error, None))?;
            let mut commits = Vec::new();
            loop {
                let Some(response) = stream
                    .message()
                    .await
                    .map_err(|error| failed(error, None))?
                else {
                    return Err(StateError::OutcomeUnknown {
                        cause: Cause::new(std::io::Error::other(
                            "the watch of etcd's history ended",
                        )),
                    });
                };
                if response.canceled() {
                    return Err(StateError::VersionCompacted {
                        target: after,
                        oldest_retained: revision_version(response.compact_revision()),
                    });
                }
                let mut changes: Vec<Change<V>> = Vec::new();
                let mut at = None;
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    let revision = revision_version(kv.mod_revision());
                    if at.is_some_and(|at| at != revision) {
                        commits.extend(commit(at, std::mem::take(&mut changes)));
                    }
                    if revision > upto {
                        return Ok(commits);
                    }
                    at = Some(revision);
                    let Some((key, _)) = held(&self.prefix, kv.clone()) else {
                        continue; // the marker, or a key outside the state
                    };
                    let new = match event.event_type() {
                        EventType::Put => {
                            serde_json::from_slice::<V>(kv.value()).ok().map(Arc::new)
                        }
                        EventType::Delete => None,
                    };
                    let old = match &new {
                        Some(value) => values.insert(key.clone(), Arc::clone(value)),
                        None => values.remove(&key),
                    };
                    if old.is_some() || new.is_some() {
                        changes.push(Change {
                            key: Arc::from(&*key),
                            old,
                            new,
                        });
                    }
                }
                commits.extend(commit(at, changes));
            }
        };
        within(timeout, read).await?
    }
}

/// One revision's changes as a commit, if it changed anything.
fn commit<V>(at: Option<Version>, changes: Vec<Change<V>>) -> Option<CommitView<V>> {
    let version = at?;
    (!changes.is_empty()).then(|| CommitView {
        version,
        timestamp: std::time::SystemTime::now(),
        operation: Operation::External,
        changed_by: None,
        changes: Changes::written(changes),
        restored_from: None,
    })
}
