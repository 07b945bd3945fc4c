//! Leader election over a lease in the shared store. The leader renews the lease every
//! `timeout`/6; an instance takes it over when its holder has not renewed it for `timeout`
//! (measured by the database's clock). The leader stops acting as leader one renewal period
//! before its lease can be taken over, counted from when it sent its last successful renewal,
//! so two instances never both believe they lead while their clocks run at the same rate.

use crate::clock::Instant;
use crate::store::postgres::PostgresStore;
use crate::store::StoreResult;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whether this instance leads now; shared by everything that does leader-only work.
pub struct Leadership {
    /// Until when the last renewal makes this instance the leader.
    until: Mutex<Option<Instant>>,
    changes: watch::Sender<bool>,
}

impl Leadership {
    /// An instance that leads only while it holds the lease.
    pub fn elected() -> Arc<Self> {
        Arc::new(Self {
            until: Mutex::new(None),
            changes: watch::channel(false).0,
        })
    }

    /// True while this instance leads.
    pub fn is_leader(&self) -> bool {
        let until = *self.until.lock();
        until.is_some_and(|until| Instant::now() < until)
    }

    /// Follows the changes of [`Leadership::is_leader`] (seen at each renewal period).
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn set_until(&self, until: Option<Instant>) {
        *self.until.lock() = until;
        self.publish();
    }

    /// Tells the watchers when leading started or ended.
    fn publish(&self) {
        let leads = self.is_leader();
        self.changes.send_if_modified(|current| {
            let changed = *current != leads;
            *current = leads;
            changed
        });
    }
}

/// What the leader lease is kept in.
#[async_trait::async_trait]
pub trait Lease: Send + Sync {
    /// Takes or renews the lease for `holder`; true when `holder` holds it now.
    async fn hold(&self, holder: &str, timeout: Duration) -> StoreResult<bool>;
    /// Gives the lease up if `holder` holds it.
    async fn release(&self, holder: &str) -> StoreResult<()>;
}

#[async_trait::async_trait]
impl Lease for PostgresStore {
    async fn hold(&self, holder: &str, timeout: Duration) -> StoreResult<bool> {
        self.hold_lease(holder, timeout).await
    }

    async fn release(&self, holder: &str) -> StoreResult<()> {
        self.release_lease(holder).await
    }
}

/// Holds or waits for the lease until `shutdown`; a leader then gives it up so that another
/// instance takes over at its next attempt.
pub async fn campaign<L: Lease + ?Sized>(
    leadership: Arc<Leadership>,
    lease: Arc<L>,
    holder: String,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let period = (timeout / 6).max(Duration::from_millis(100));
    let mut failures = 0u32;
    loop {
        let sent = Instant::now();
        match tokio::time::timeout(period, lease.hold(&holder, timeout)).await {
            Ok(Ok(true)) => {
                failures = 0;
                if !leadership.is_leader() {
                    tracing::info!(instance = %holder, "this instance is now the leader");
                }
                leadership.set_until(Some(sent + timeout.saturating_sub(period)));
            }
            Ok(Ok(false)) => {
                failures = 0;
                if leadership.is_leader() {
                    tracing::warn!(instance = %holder, "another instance took the leadership over");
                }
                leadership.set_until(None);
            }
            Ok(Err(error)) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "cannot renew or take the leader lease; retrying");
                }
                leadership.publish();
            }
            Err(_) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(after = ?period, "the leader lease did not answer in time; retrying");
                }
                leadership.publish();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
    if leadership.is_leader() {
        leadership.set_until(None);
        match tokio::time::timeout(period, lease.release(&holder)).await {
            Ok(Ok(())) => tracing::info!(instance = %holder, "leadership given up at shutdown"),
            Ok(Err(error)) => tracing::warn!(%error, "could not give the leadership up"),
            Err(_) => tracing::warn!("giving the leadership up did not answer in time"),
        }
    }
}

impl crate::engine::LeaderRole for Leadership {
    fn is_leader(&self) -> bool {
        Leadership::is_leader(self)
    }

    fn changes(&self) -> watch::Receiver<bool> {
        Leadership::changes(self)
    }
}
