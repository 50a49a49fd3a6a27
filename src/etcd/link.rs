//! What a handle of an etcd state needs to reach etcd itself, beside the
//! writer: to grant leases ([`super::lease`]) and to read the MVCC history
//! ([`super::mvcc`]).

use std::time::Duration;

use etcd_client::Client;

/// The client, the prefix and the request timeout, set once on an etcd
/// state's shared part.
pub(crate) struct Link {
    pub(crate) client: Client,
    pub(crate) prefix: String,
    pub(crate) request_timeout: Duration,
    /// The state's runtime: lease renewals run there, not on a caller's
    /// runtime that may end first.
    pub(crate) runtime: tokio::runtime::Handle,
}
