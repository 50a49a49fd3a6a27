//! [`KeyArg`]: a key on its way to the writer, without an allocation for
//! the common short key.
//!
//! Keys arrive as `impl AsRef<str>` borrowed from the caller and must cross
//! to the writer task, so they are copied. Copying into a fresh `Arc<str>`
//! would cost an allocation per write even when the key already exists in
//! the map, which already holds an `Arc<str>` for it. So a short key
//! travels inline in the command, and the writer takes the map's own
//! `Arc<str>` for a key it already has; only a new key (or a long one) is
//! allocated.

use std::fmt;

use crate::error::StateError;
use crate::sync::Arc;

/// Longest key carried inline: with the length byte, a command's key is as
/// large as a `String`.
const INLINE: usize = 23;

/// A checked, non-empty key.
#[derive(Clone)]
pub(crate) enum KeyArg {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl KeyArg {
    /// The key, or [`StateError::EmptyKey`].
    pub(crate) fn new(key: &str) -> Result<Self, StateError> {
        if key.is_empty() {
            return Err(StateError::EmptyKey);
        }
        Ok(if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            KeyArg::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            KeyArg::Shared(Arc::from(key))
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so the bytes are valid UTF-8.
            KeyArg::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("copied from a str")
            }
            KeyArg::Shared(key) => key,
        }
    }

    /// The key as an `Arc<str>`: `existing` (the map's own, when the map
    /// has this key) or a new one.
    pub(crate) fn into_shared(self, existing: Option<&Arc<str>>) -> Arc<str> {
        match (self, existing) {
            (_, Some(existing)) => Arc::clone(existing),
            (KeyArg::Shared(key), None) => key,
            (key @ KeyArg::Inline { .. }, None) => Arc::from(key.as_str()),
        }
    }
}

impl fmt::Debug for KeyArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_travel_inline_and_long_ones_shared() {
        let short = KeyArg::new("agent/7").unwrap();
        assert!(matches!(short, KeyArg::Inline { .. }));
        assert_eq!(short.as_str(), "agent/7");
        let edge = "k".repeat(INLINE);
        assert!(matches!(KeyArg::new(&edge).unwrap(), KeyArg::Inline { .. }));
        let long = "k".repeat(INLINE + 1);
        let arg = KeyArg::new(&long).unwrap();
        assert!(matches!(arg, KeyArg::Shared(_)));
        assert_eq!(arg.as_str(), long);
        assert_eq!(KeyArg::new("").unwrap_err(), StateError::EmptyKey);
        assert_eq!(format!("{short:?}"), "\"agent/7\"");
    }

    #[test]
    fn multibyte_keys_round_trip() {
        let key = "état/ключ/键";
        assert_eq!(KeyArg::new(key).unwrap().as_str(), key);
    }

    #[test]
    fn an_existing_key_reuses_the_maps_arc() {
        let existing: Arc<str> = Arc::from("phase");
        let shared = KeyArg::new("phase").unwrap().into_shared(Some(&existing));
        assert!(Arc::ptr_eq(&shared, &existing));
        let fresh = KeyArg::new("phase").unwrap().into_shared(None);
        assert_eq!(&*fresh, "phase");
    }
}
