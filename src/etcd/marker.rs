//! The progress marker: one etcd key per prefix that is not a key of the
//! state, so that every request a handle sends makes a revision its
//! mirror will see.
//!
//! A handle answers a write only once its mirror has caught up with the
//! write's revision, so that a read after the answer shows the write
//! (read-your-writes) and everything before it. A write that changes
//! nothing (a `delete` of a key already gone, a `clear` of an empty
//! prefix) or fails its compare (a `Conflict`) must wait too: etcd decided
//! it at some revision, and until the mirror has passed it, a read on the
//! handle can show a state older than the one the answer reflects (the
//! key still there, or the write that won not yet visible). But such a
//! request makes no revision of its own, and the revisions after it may
//! belong to other prefixes, which the mirror never sees; etcd's progress
//! notifications could say how far the watch has got, but before etcd
//! 3.4.25 and 3.5.8 they can overtake the events they cover.
//!
//! So such requests also put the marker: the failure branch of every txn
//! with compares, and the success branch of every txn that only deletes.
//! Every request is then exactly one revision, and the mirror, which
//! ignores the marker's value, reports each revision it passes.
//!
//! The marker is `prefix + 0xff + "tss-progress"`. No UTF-8 string contains
//! the byte 0xff, so it sorts after every key of the state; the state's
//! range is `prefix + 0x00 .. prefix + 0xff`: `clear`, `retain` and a
//! transaction's "nothing changed since" compare stay inside it.

/// The byte after every UTF-8 key under the prefix.
const KEYS_END: u8 = 0xff;

/// The marker's etcd key.
pub(crate) fn key(prefix: &str) -> Vec<u8> {
    let mut key = keys_end(prefix);
    key.extend_from_slice(b"tss-progress");
    key
}

/// The first possible key of the state under `prefix` (keys are not
/// empty, so the bare prefix, which another state's key may be, is not
/// one).
pub(crate) fn keys_start(prefix: &str) -> Vec<u8> {
    let mut start = Vec::with_capacity(prefix.len() + 1);
    start.extend_from_slice(prefix.as_bytes());
    start.push(0);
    start
}

/// The exclusive end of the state's keys under `prefix`.
pub(crate) fn keys_end(prefix: &str) -> Vec<u8> {
    let mut end = Vec::with_capacity(prefix.len() + 16);
    end.extend_from_slice(prefix.as_bytes());
    end.push(KEYS_END);
    end
}
