//! [`Version`]: the commit counter.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The number of a committed state.
///
/// Version 0 is the initial state; every successful write command commits
/// exactly one new version, so versions only ever go up. A rollback commits a
/// new version too, whose contents equal the target's.
///
/// It is a newtype rather than a bare `u64` so that it cannot be confused with
/// a count or a length.
///
/// # Examples
///
/// ```
/// use thread_safe_state::Version;
///
/// let v = Version::new(3);
/// assert_eq!(v.get(), 3);
/// assert!(Version::INITIAL < v);
/// assert_eq!(v.to_string(), "3");
/// assert_eq!(u64::from(v), 3);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Version(u64);

impl Version {
    /// The version of a state before any write: 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let state = thread_safe_state::ThreadSafeState::<u8>::new();
    /// assert_eq!(state.version(), thread_safe_state::Version::INITIAL);
    /// # }
    /// ```
    pub const INITIAL: Version = Version(0);

    /// Wraps a raw version number.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Version;
    /// assert_eq!(Version::new(0), Version::INITIAL);
    /// ```
    pub const fn new(number: u64) -> Self {
        Version(number)
    }

    /// The raw version number.
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Version;
    /// assert_eq!(Version::new(7).get(), 7);
    /// ```
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version after this one.
    ///
    /// # Panics
    ///
    /// At `u64::MAX` (at one commit per nanosecond, after 584 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Version;
    /// assert_eq!(Version::INITIAL.next(), Version::new(1));
    /// ```
    pub const fn next(self) -> Self {
        Version(self.0 + 1)
    }

    /// The version before this one; `None` for [`Version::INITIAL`].
    ///
    /// # Examples
    ///
    /// ```
    /// use thread_safe_state::Version;
    /// assert_eq!(Version::new(8).prev(), Some(Version::new(7)));
    /// assert_eq!(Version::INITIAL.prev(), None);
    /// ```
    pub const fn prev(self) -> Option<Self> {
        match self.0.checked_sub(1) {
            Some(number) => Some(Version(number)),
            None => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u64> for Version {
    fn from(number: u64) -> Self {
        Version(number)
    }
}

impl From<Version> for u64 {
    fn from(version: Version) -> Self {
        version.0
    }
}
