//! Leases: keys that live as long as an agent does (etcd's sessions).
//!
//! A leased handle owns one etcd lease and a task that renews it every
//! third of its TTL. While any clone of the handle lives the lease lives,
//! and every put the handle makes carries it; when the last clone drops,
//! the renewal stops and the lease is revoked, so the agent's keys go at
//! once. When the process dies, nobody renews it, and etcd deletes the
//! keys one TTL later. Either way the deletions are ordinary revisions:
//! every handle's mirror commits them and wakes its waiters.
//!
//! The renewal runs on the state's runtime (not the caller's, which may
//! end first), and the revoke goes through the state's writer, like any
//! write of the process: so the writer's closures never conflict with it
//! (see `run`). Only when the writer cannot take it (its mailbox full or
//! gone) is it sent straight to etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use tokio::time::Instant;

use crate::error::StateError;

use super::link::Link;
use super::run::{failed, within};

/// Renewals come every third of the TTL, at least this far apart...
const MIN_RENEWAL_PERIOD: Duration = Duration::from_millis(300);
/// ...and at most this far apart (a long TTL still notices a lost lease).
const MAX_RENEWAL_PERIOD: Duration = Duration::from_secs(3600);

/// etcd's longest lease TTL (`MaxLeaseTTL`), in seconds: about 285 years.
pub(crate) const MAX_TTL_SECONDS: i64 = 9_000_000_000;

/// Hands a lease's revoke to the state's writer; `false` if it cannot
/// take it now.
pub(crate) type RevokeThroughWriter = Box<dyn Fn(i64) -> bool + Send + Sync>;

/// A granted lease, renewed until dropped.
pub(crate) struct Lease {
    id: i64,
    /// Set once the lease is known (or must be assumed) gone.
    expired: Arc<AtomicBool>,
    renewal: tokio::task::AbortHandle,
    revoke: RevokeThroughWriter,
    client: Client,
    request_timeout: Duration,
    runtime: tokio::runtime::Handle,
}

impl Lease {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Known gone: etcd refused a put with it.
    pub(crate) fn mark_expired(&self) {
        self.expired.store(true, Ordering::Release);
    }

    /// `Ok` while the lease may still be alive.
    pub(crate) fn alive(&self) -> Result<(), StateError> {
        if self.expired.load(Ordering::Acquire) {
            Err(StateError::LeaseExpired { lease: self.id })
        } else {
            Ok(())
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.expired.load(Ordering::Acquire) {
            return;
        }
        // Revoke now, so the agent's keys go at once instead of one TTL
        // later. Best effort: if etcd cannot be reached, the lease expires
        // on its own. Spawning on a runtime that shut down does nothing.
        if (self.revoke)(self.id) {
            return;
        }
        let mut client = self.client.clone();
        let (id, timeout) = (self.id, self.request_timeout);
        self.runtime.spawn(async move {
            if let Err(error) = tokio::time::timeout(timeout, client.lease_revoke(id)).await {
                tracing::debug!(%error, lease = id, "revoking a dropped handle's lease timed out; it expires on its own");
            }
        });
    }
}

/// A TTL as etcd takes it: whole seconds, rounded up (saturating: a TTL
/// beyond etcd's longest comes out above [`MAX_TTL_SECONDS`]).
pub(crate) fn ttl_seconds(ttl: Duration) -> i64 {
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

impl Link {
    /// Grant a lease of `ttl` (whole seconds, rounded up; etcd may raise
    /// it to its minimum, and a TTL beyond its longest is its longest)
    /// and start renewing it on the state's runtime; `revoke` hands the
    /// revoke to the writer when the lease is dropped.
    pub(crate) async fn grant(
        &self,
        ttl: Duration,
        revoke: RevokeThroughWriter,
    ) -> Result<Lease, StateError> {
        if ttl.is_zero() {
            return Err(StateError::ZeroTtl);
        }
        let runtime = self.runtime.clone();
        let mut client = self.client.clone();
        let seconds = ttl_seconds(ttl).min(MAX_TTL_SECONDS);
        let granted = within(self.request_timeout, client.lease_grant(seconds, None))
            .await?
            .map_err(|error| failed(error, None))?;
        let (id, ttl) = (granted.id(), granted.ttl());
        let expired = Arc::new(AtomicBool::new(false));
        let renewal = runtime.spawn(renew(
            client.clone(),
            id,
            ttl,
            Arc::clone(&expired),
            self.request_timeout,
        ));
        Ok(Lease {
            id,
            expired,
            renewal: renewal.abort_handle(),
            revoke,
            client,
            request_timeout: self.request_timeout,
            runtime,
        })
    }
}

/// Renew lease `id` every third of its TTL until aborted. When etcd says
/// it is gone, or it could not be renewed before its TTL ran out (so
/// etcd may have deleted its keys), mark it expired and stop: a handle
/// that lost its lease must not go on writing as if its keys were there.
async fn renew(mut client: Client, id: i64, ttl: i64, expired: Arc<AtomicBool>, timeout: Duration) {
    let ttl = Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1));
    let period = (ttl / 3).clamp(MIN_RENEWAL_PERIOD, MAX_RENEWAL_PERIOD);
    let after = |left: Duration| {
        let now = Instant::now();
        now.checked_add(left).unwrap_or(now + MAX_RENEWAL_PERIOD)
    };
    let mut deadline = after(ttl);
    loop {
        match tokio::time::timeout(timeout, client.lease_keep_alive(id)).await {
            Ok(Ok((mut keeper, mut responses))) => loop {
                let answered = tokio::time::timeout(timeout, async {
                    keeper.keep_alive().await?;
                    responses.message().await
                })
                .await;
                match answered {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => {
                        let left = u64::try_from(response.ttl()).unwrap_or(0);
                        deadline = after(Duration::from_secs(left));
                    }
                    Ok(Ok(Some(_))) => {
                        tracing::warn!(
                            lease = id,
                            "etcd lease expired; the handle's keys are gone"
                        );
                        expired.store(true, Ordering::Release);
                        return;
                    }
                    _ => break,
                }
                tokio::time::sleep(period).await;
            },
            Ok(Err(error)) => {
                tracing::debug!(%error, lease = id, "renewing an etcd lease failed; retrying")
            }
            Err(_) => tracing::debug!(lease = id, "renewing an etcd lease timed out; retrying"),
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                lease = id,
                "etcd lease not renewed within its TTL; the handle's keys may be gone"
            );
            expired.store(true, Ordering::Release);
            return;
        }
        tokio::time::sleep(MIN_RENEWAL_PERIOD.min(deadline - Instant::now())).await;
    }
}
