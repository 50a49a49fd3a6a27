//! What a handle sends to the writer, and what the writer answers.

use crate::error::{Precondition, StateError};
use crate::metrics::OpKind;
use crate::modify::{Modification, ValueSlot};
use crate::sync::{oneshot, Arc};
use crate::transaction::TransactionFn;
use crate::writer::key::KeyArg;
use crate::Version;

/// The closure of a [`modify`](crate::ThreadSafeState::modify).
pub(crate) type ModifyFn<V> = Box<dyn FnOnce(Option<&V>) -> Modification<V> + Send>;

/// One write, as the writer applies it. Keys are already validated.
pub(crate) enum Op<V> {
    Set {
        key: KeyArg,
        value: V,
    },
    /// A set whose key expires `ttl` after the writer applies it.
    SetWithTtl {
        key: KeyArg,
        value: V,
        ttl: std::time::Duration,
    },
    Update(Vec<(KeyArg, V)>),
    Delete(KeyArg),
    Clear,
    Modify {
        key: KeyArg,
        f: ModifyFn<V>,
        /// Where the writer leaves the key's value after the command.
        value: ValueSlot<V>,
    },
    Retain(Vec<Arc<str>>),
    Rollback(Version),
    /// A rollback to `target` that applies only while the current version
    /// is still `expected_current` (the version a recovery search saw).
    RollbackIf {
        target: Version,
        expected_current: Version,
    },
    SetIf {
        key: KeyArg,
        value: V,
        expected: Precondition,
    },
    /// Revoke an etcd lease (a leased handle was dropped): sent by the
    /// crate, never by a caller, and answered to nobody.
    #[cfg(feature = "etcd")]
    RevokeLease(i64),
    DeleteIf {
        key: KeyArg,
        expected: Precondition,
    },
    Transaction(TransactionFn<V>),
    /// Stop taking commands, answer every queued one, then answer this.
    Close,
}

impl<V> Op<V> {
    /// The operation, for the per-operation write counts (`Close` is not a
    /// write).
    pub(crate) fn kind(&self) -> Option<OpKind> {
        Some(match self {
            Op::Close => return None,
            #[cfg(feature = "etcd")]
            Op::RevokeLease(_) => return None,
            // Counted as a set: `OperationCounts` has no TTL field.
            Op::Set { .. } | Op::SetWithTtl { .. } => OpKind::Set,
            Op::Update(_) => OpKind::Update,
            Op::Delete(_) => OpKind::Delete,
            Op::Clear => OpKind::Clear,
            Op::Modify { .. } => OpKind::Modify,
            Op::Retain(_) => OpKind::Retain,
            Op::Rollback(_) | Op::RollbackIf { .. } => OpKind::Rollback,
            Op::SetIf { .. } => OpKind::SetIf,
            Op::DeleteIf { .. } => OpKind::DeleteIf,
            Op::Transaction(_) => OpKind::Transaction,
        })
    }

    pub(crate) fn set(key: impl AsRef<str>, value: V) -> Result<Self, StateError> {
        Ok(Op::Set {
            key: KeyArg::new(key.as_ref())?,
            value,
        })
    }

    /// A set with a TTL; a zero TTL is rejected here, before the writer.
    pub(crate) fn set_with_ttl(
        key: impl AsRef<str>,
        value: V,
        ttl: std::time::Duration,
    ) -> Result<Self, StateError> {
        let key = KeyArg::new(key.as_ref())?;
        if ttl.is_zero() {
            return Err(StateError::ZeroTtl);
        }
        Ok(Op::SetWithTtl { key, value, ttl })
    }

    pub(crate) fn update<K: AsRef<str>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, StateError> {
        entries
            .into_iter()
            .map(|(key, value)| Ok((KeyArg::new(key.as_ref())?, value)))
            .collect::<Result<_, _>>()
            .map(Op::Update)
    }

    pub(crate) fn delete(key: impl AsRef<str>) -> Result<Self, StateError> {
        Ok(Op::Delete(KeyArg::new(key.as_ref())?))
    }

    /// A modify command, and the caller's end of the slot in which the
    /// writer leaves the key's resulting value.
    pub(crate) fn modify<F>(key: impl AsRef<str>, f: F) -> Result<(Self, ValueSlot<V>), StateError>
    where
        F: FnOnce(Option<&V>) -> Modification<V> + Send + 'static,
    {
        let key = KeyArg::new(key.as_ref())?;
        let (caller, writer) = ValueSlot::new();
        let op = Op::Modify {
            key,
            f: Box::new(f),
            value: writer,
        };
        Ok((op, caller))
    }

    pub(crate) fn set_if(
        key: impl AsRef<str>,
        value: V,
        expected: Precondition,
    ) -> Result<Self, StateError> {
        Ok(Op::SetIf {
            key: KeyArg::new(key.as_ref())?,
            value,
            expected,
        })
    }

    pub(crate) fn delete_if(
        key: impl AsRef<str>,
        expected: Precondition,
    ) -> Result<Self, StateError> {
        Ok(Op::DeleteIf {
            key: KeyArg::new(key.as_ref())?,
            expected,
        })
    }

    pub(crate) fn retain<K: AsRef<str>>(keys: impl IntoIterator<Item = K>) -> Self {
        Op::Retain(
            keys.into_iter()
                .map(|key| Arc::from(key.as_ref()))
                .collect(),
        )
    }
}

/// The outcome of an applied command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The version after the command: new if it committed, else the current one.
    pub(crate) version: Version,
    /// Whether it committed a new version (it changed at least one key).
    pub(crate) committed: bool,
}

pub(crate) type Reply = Result<Applied, StateError>;

/// A write on its way to the writer, with where to send the answer.
pub(crate) struct Command<V> {
    pub(crate) op: Op<V>,
    pub(crate) changed_by: Option<Arc<str>>,
    /// The etcd lease the command's puts carry: its handle's.
    #[cfg(feature = "etcd")]
    pub(crate) lease: Option<i64>,
    pub(crate) reply: oneshot::Sender<Reply>,
    /// When the caller handed it over, for the write-latency histogram.
    pub(crate) sent_at: std::time::Instant,
    /// The caller's span, entered while the writer applies the command.
    pub(crate) span: tracing::Span,
}

/// Checks a key before it is sent, so a bad key never reaches the writer.
pub(crate) fn checked_key(key: impl AsRef<str>) -> Result<Arc<str>, StateError> {
    let key: Arc<str> = Arc::from(key.as_ref());
    if key.is_empty() {
        Err(StateError::EmptyKey)
    } else {
        Ok(key)
    }
}

/// Checks every key of a batch; one bad key rejects the whole batch.
pub(crate) fn checked_keys<K: AsRef<str>, T>(
    items: impl IntoIterator<Item = (K, T)>,
) -> Result<Vec<(Arc<str>, T)>, StateError> {
    items
        .into_iter()
        .map(|(key, item)| Ok((checked_key(key)?, item)))
        .collect()
}
