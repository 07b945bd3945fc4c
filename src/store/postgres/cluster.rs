//! What CSS instances sharing the database coordinate through. Times of the lease are the
//! database server's, so the instances' own clocks never decide who leads.

use super::{execute, query, PostgresStore};
use crate::store::StoreResult;
use std::time::Duration;
use tokio::sync::mpsc;

/// The notification channel of wake-up messages between instances.
const WAKE_CHANNEL: &str = "edge_sync_wake";

impl PostgresStore {
    /// Takes or renews the leader lease for `holder`: renewed when `holder` holds it, taken
    /// when it is free or its holder's last heartbeat is older than `timeout`. One statement,
    /// so two instances can never both take it. True when `holder` holds it now.
    pub async fn hold_lease(&self, holder: &str, timeout: Duration) -> StoreResult<bool> {
        let rows = query(
            &self.client().await?,
            "INSERT INTO leader_lease (id, holder, heartbeat, version) VALUES (1, $1, clock_timestamp(), 1)
             ON CONFLICT (id) DO UPDATE SET
                holder = excluded.holder, heartbeat = excluded.heartbeat, version = leader_lease.version + 1
             WHERE leader_lease.holder = excluded.holder
                OR leader_lease.heartbeat < clock_timestamp() - make_interval(secs => $2)
             RETURNING version",
            &[&holder, &timeout.as_secs_f64()],
        )
        .await?;
        Ok(!rows.is_empty())
    }

    /// Gives the lease up, if `holder` holds it, so that another instance takes it at its
    /// next attempt instead of after the timeout.
    pub async fn release_lease(&self, holder: &str) -> StoreResult<()> {
        execute(
            &self.client().await?,
            "UPDATE leader_lease SET heartbeat = 'epoch' WHERE holder = $1",
            &[&holder],
        )
        .await?;
        Ok(())
    }

    /// The instance currently holding the lease with a heartbeat younger than `timeout`.
    pub async fn lease_holder(&self, timeout: Duration) -> StoreResult<Option<String>> {
        let rows = query(
            &self.client().await?,
            "SELECT holder FROM leader_lease
             WHERE heartbeat >= clock_timestamp() - make_interval(secs => $1)",
            &[&timeout.as_secs_f64()],
        )
        .await?;
        Ok(rows.first().map(|row| row.try_get(0)).transpose()?)
    }

    /// A number no other starting instance gets (until the sequence wraps around).
    pub async fn next_instance_slot(&self) -> StoreResult<i64> {
        let rows = query(&self.client().await?, "SELECT nextval('instance_slots')", &[]).await?;
        Ok(super::column::<i64>(&rows)?.first().copied().unwrap_or(0))
    }

    /// Sends `payload` to every instance listening (see [`PostgresStore::listen_for_wakeups`]),
    /// this one included.
    pub async fn send_wakeup(&self, payload: &str) -> StoreResult<()> {
        query(
            &self.client().await?,
            "SELECT pg_notify($1, $2)",
            &[&WAKE_CHANNEL, &payload],
        )
        .await?;
        Ok(())
    }

    /// Opens a connection of its own that listens for wake-up messages.
    pub async fn listen_for_wakeups(&self) -> StoreResult<WakeupListener> {
        let (client, payloads) = self.connector.dedicated().await?;
        client.batch_execute(&format!("LISTEN {WAKE_CHANNEL}")).await?;
        Ok(WakeupListener {
            _client: client,
            payloads,
        })
    }
}

/// The wake-up messages of the other instances, while its connection lasts.
pub struct WakeupListener {
    /// Dropping the client would close the connection.
    _client: tokio_postgres::Client,
    payloads: mpsc::UnboundedReceiver<String>,
}

impl WakeupListener {
    /// The next message's payload; `None` once the connection is lost (open another).
    pub async fn recv(&mut self) -> Option<String> {
        self.payloads.recv().await
    }
}
