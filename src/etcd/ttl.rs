//! The leases of `set_with_ttl` keys: one per key, granted by this
//! handle's writer, revoked as soon as the key is written again or
//! removed (by anyone), so a key refreshed with a new TTL every second
//! does not leave a live lease behind each time. A lease whose key expired
//! is gone already; one this handle never hears about (its process ended)
//! expires on its own after its TTL.

use std::collections::HashMap;

use crate::Version;

/// Each TTL key's lease, and the revision that attached it.
#[derive(Default)]
pub(crate) struct TtlLeases {
    by_key: HashMap<Box<str>, (i64, Version)>,
}

impl TtlLeases {
    /// `key` was put at `revision` with its own new `lease`: the lease no
    /// longer attached to it, if any, to revoke. Puts answer in any order:
    /// of two, the one with the older revision lost its key to the other.
    pub(crate) fn granted(&mut self, key: Box<str>, lease: i64, revision: Version) -> Option<i64> {
        match self.by_key.get(&key) {
            Some(&(newer, at)) if at > revision => (newer != lease).then_some(lease),
            _ => {
                let replaced = self.by_key.insert(key, (lease, revision))?;
                (replaced.0 != lease).then_some(replaced.0)
            }
        }
    }

    /// The mirror committed a change of `key` at `modified`: if that is
    /// not the put that attached its lease, the lease has no key left and
    /// is returned, to revoke.
    pub(crate) fn changed(&mut self, key: &str, modified: Version) -> Option<i64> {
        match self.by_key.get(key) {
            Some(&(lease, revision)) if modified > revision => {
                self.by_key.remove(key);
                Some(lease)
            }
            _ => None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_revoked_once_its_key_moves_on() {
        let mut leases = TtlLeases::default();
        assert_eq!(leases.granted("k".into(), 1, Version::new(10)), None);
        // Its own put, mirrored: nothing to revoke.
        assert_eq!(leases.changed("k", Version::new(10)), None);
        // A new TTL replaces the lease.
        assert_eq!(leases.granted("k".into(), 2, Version::new(12)), Some(1));
        // A later write (or the expiry) frees it.
        assert_eq!(leases.changed("other", Version::new(13)), None);
        assert_eq!(leases.changed("k", Version::new(14)), Some(2));
        assert!(leases.is_empty());
        assert_eq!(leases.changed("k", Version::new(15)), None);
    }

    #[test]
    fn puts_answered_out_of_order_keep_the_newest_lease() {
        let mut leases = TtlLeases::default();
        assert_eq!(leases.granted("k".into(), 2, Version::new(20)), None);
        // The older put answers last: its lease is the one to revoke.
        assert_eq!(leases.granted("k".into(), 1, Version::new(19)), Some(1));
        assert_eq!(leases.changed("k", Version::new(20)), None);
        assert_eq!(leases.changed("k", Version::new(21)), Some(2));
    }
}
