//! The mirror task: list the prefix, then watch it from the next revision
//! (the informer pattern), and hand each revision to the writer.
//!
//! It owns no state beyond the newest revision it has seen: it decodes
//! what etcd sends and passes it on over a channel; the writer commits it
//! through the commit core. On a compacted or cancelled watch it lists the
//! prefix again (a *resync*, which the writer turns into one commit of the
//! differences); on a connection error it waits with backoff and watches
//! again from the next revision it has not seen, or lists again if that
//! revision is compacted meanwhile. Reads never wait for it: they keep
//! serving the last published snapshot.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::Version;

/// Backoff after a failed list or watch: from `MIN_BACKOFF`, doubled up to
/// `MAX_BACKOFF`, reset once a watch is established.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The largest reply the client decodes: none. A listing holds the whole
/// state, and a watch that catches up after an outage gets up to 1,000
/// revisions in one reply; a limit below that would fail the same read
/// forever (tonic's default is 4 MiB).
pub(crate) const MAX_MESSAGE: usize = usize::MAX;

/// One key as the mirror decoded it.
pub(crate) struct Decoded<V> {
    /// The key without the prefix.
    pub(crate) key: Box<str>,
    /// The value; `None` for a deletion (or, in a listing, never).
    pub(crate) value: Option<Arc<V>>,
    pub(crate) created: Version,
    pub(crate) modified: Version,
}

/// What the mirror tells the writer.
pub(crate) enum Mirrored<V> {
    /// The changes of consecutive revisions, oldest first, each revision
    /// once (etcd never splits a revision across watch responses unless
    /// asked to fragment, which the mirror does not); and the newest
    /// revision seen, which may be the progress marker's alone.
    Revisions {
        revisions: Vec<(Version, Vec<Decoded<V>>)>,
        through: Version,
    },
    /// The whole prefix at `revision`: after a compaction or a cancelled
    /// watch, the writer commits the differences from its state.
    Resync {
        revision: Version,
        entries: Vec<Decoded<V>>,
    },
}

/// The list-then-watch loop's settings.
pub(crate) struct Mirror {
    pub(crate) client: Client,
    pub(crate) prefix: String,
    /// The progress marker's key (see [`super::marker`]).
    pub(crate) marker: Vec<u8>,
    pub(crate) request_timeout: Duration,
}

/// Why a listing failed.
#[derive(Debug)]
pub(crate) enum ListError {
    Etcd(etcd_client::Error),
    TimedOut,
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListError::Etcd(error) => write!(f, "{error}"),
            ListError::TimedOut => f.write_str("the range request timed out"),
        }
    }
}

impl std::error::Error for ListError {}

impl Mirror {
    /// List the prefix with a linearizable read: its revision and entries.
    /// Values that do not decode as `V` are skipped (and logged).
    pub(crate) async fn list<V: DeserializeOwned>(
        &self,
    ) -> Result<(Version, Vec<Decoded<V>>), ListError> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let request = kv.get(
            self.prefix.as_bytes(),
            Some(GetOptions::new().with_prefix()),
        );
        let mut response = tokio::time::timeout(self.request_timeout, request)
            .await
            .map_err(|_| ListError::TimedOut)?
            .map_err(ListError::Etcd)?;
        let revision = response.header().map_or(0, |header| header.revision());
        let entries = response
            .take_kvs()
            .iter()
            .filter(|kv| kv.key() != self.marker.as_slice())
            .filter_map(|kv| self.decode_put(kv))
            .collect();
        Ok((revision_version(revision), entries))
    }

    /// The key without the prefix and the value of a put.
    fn decode_put<V: DeserializeOwned>(&self, kv: &KeyValue) -> Option<Decoded<V>> {
        let key = self.strip(kv.key())?;
        match serde_json::from_slice::<V>(kv.value()) {
            Ok(value) => Some(Decoded {
                key,
                value: Some(Arc::new(value)),
                created: revision_version(kv.create_revision()),
                modified: revision_version(kv.mod_revision()),
            }),
            Err(error) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(kv.key()),
                    %error,
                    "an etcd value under the prefix does not decode; the mirror treats the key as absent"
                );
                None
            }
        }
    }

    fn strip(&self, key: &[u8]) -> Option<Box<str>> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        match std::str::from_utf8(rest) {
            Ok(key) if !key.is_empty() => Some(key.into()),
            _ => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    "an etcd key under the prefix is empty or not UTF-8; the mirror ignores it"
                );
                None
            }
        }
    }

    /// Watch from `next` on, then list and watch again whenever the watch
    /// is compacted or cancelled, until the writer goes away.
    pub(crate) async fn run<V: DeserializeOwned + Send + Sync + 'static>(
        self,
        mut next: Version,
        to_writer: mpsc::Sender<Mirrored<V>>,
    ) {
        let mut backoff = MIN_BACKOFF;
        let mut must_list = false;
        loop {
            if to_writer.is_closed() {
                return;
            }
            if must_list {
                match self.list::<V>().await {
                    Ok((revision, entries)) => {
                        tracing::info!(
                            revision = revision.get(),
                            "etcd mirror relisted the prefix"
                        );
                        if to_writer
                            .send(Mirrored::Resync { revision, entries })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        next = revision.next();
                        must_list = false;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "etcd mirror: listing failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            match self.watch(&mut next, &to_writer, &mut backoff).await {
                Ended::WriterGone => return,
                Ended::Compacted => must_list = true,
                Ended::Failed(error) => {
                    tracing::warn!(%error, next = next.get(), "etcd mirror: watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One watch from `next`, forwarding revisions until it ends.
    async fn watch<V: DeserializeOwned>(
        &self,
        next: &mut Version,
        to_writer: &mpsc::Sender<Mirrored<V>>,
        backoff: &mut Duration,
    ) -> Ended {
        // No previous values: the writer holds every key's value already,
        // and asking for them costs etcd a read per event. No progress
        // notifications: before etcd 3.4.25 and 3.5.8 one can overtake the
        // events it covers, and a watch restarted past them would skip
        // those for good. A restart from an old revision that etcd has
        // compacted meanwhile relists instead: slower, never wrong.
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision_number(*next));
        let mut watch_client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let mut stream = match watch_client
            .watch(self.prefix.as_bytes(), Some(options))
            .await
        {
            Ok(stream) => stream,
            Err(error) => return Ended::Failed(error.to_string()),
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ended::Failed("the watch stream ended".into()),
                Err(error) => return Ended::Failed(error.to_string()),
            };
            if response.created() {
                *backoff = MIN_BACKOFF;
            }
            if response.canceled() {
                // A compacted start revision, or the server gave up on a
                // watcher too slow to catch up: list again either way.
                tracing::info!(
                    compact_revision = response.compact_revision(),
                    reason = response.cancel_reason(),
                    "etcd mirror: watch cancelled; relisting"
                );
                return Ended::Compacted;
            }
            let mut revisions: Vec<(Version, Vec<Decoded<V>>)> = Vec::new();
            let mut through = None;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let at = revision_version(kv.mod_revision());
                through = Some(at);
                if kv.key() == self.marker.as_slice() {
                    continue;
                }
                let decoded = match event.event_type() {
                    EventType::Put => match self.decode_put(kv) {
                        Some(decoded) => decoded,
                        // Undecodable: the key is absent for the mirror.
                        None => match self.strip(kv.key()) {
                            Some(key) => Decoded {
                                key,
                                value: None,
                                created: Version::INITIAL,
                                modified: at,
                            },
                            None => continue,
                        },
                    },
                    EventType::Delete => match self.strip(kv.key()) {
                        Some(key) => Decoded {
                            key,
                            value: None,
                            created: Version::INITIAL,
                            modified: at,
                        },
                        None => continue,
                    },
                };
                match revisions.last_mut() {
                    Some((last, changes)) if *last == at => changes.push(decoded),
                    _ => revisions.push((at, vec![decoded])),
                }
            }
            if let Some(through) = through {
                *next = (*next).max(through.next());
                if to_writer
                    .send(Mirrored::Revisions { revisions, through })
                    .await
                    .is_err()
                {
                    return Ended::WriterGone;
                }
            }
        }
    }
}

/// How one watch ended.
enum Ended {
    WriterGone,
    /// Relist: the start revision was compacted, or the watch cancelled.
    Compacted,
    /// A connection or server error: watch again after a backoff.
    Failed(String),
}

/// etcd revisions are positive `i64`s.
pub(crate) fn revision_version(revision: i64) -> Version {
    Version::new(u64::try_from(revision).unwrap_or(0))
}

pub(crate) fn revision_number(version: Version) -> i64 {
    i64::try_from(version.get()).unwrap_or(i64::MAX)
}
