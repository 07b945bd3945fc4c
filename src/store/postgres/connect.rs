//! The connection pool: deadpool over tokio-postgres, with TLS through rustls (ring) when the
//! URL allows it, and the start-up wait for a database that is not reachable yet.

use super::super::{StoreError, StoreResult};
use crate::clock::Instant;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls};

/// Most connections one instance holds.
pub(super) const MAX_CONNECTIONS: usize = 16;
/// Longest a call waits for a free connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one connection attempt may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between start-up attempts while the server is unreachable.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// How to open a connection: the parsed URL and the TLS to use, if any.
#[derive(Clone)]
pub(super) struct Connector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Connector {
    /// For `url`; `tls` is used unless the URL says `sslmode=disable`; without it, TLS is
    /// never attempted (`prefer` falls back to plain).
    pub(super) fn new(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> StoreResult<Self> {
        // The error names the problem, never the value: the URL holds the password.
        let mut config: tokio_postgres::Config = url.parse().map_err(StoreError::from)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("edge-sync-service");
        }
        let tls = match tls {
            Some(tls) if config.get_ssl_mode() != SslMode::Disable => {
                Some(tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone()))
            }
            _ if config.get_ssl_mode() == SslMode::Require => {
                return Err(StoreError::Corrupt(
                    "PostgresURL requires TLS (sslmode=require) but no TLS configuration was prepared".into(),
                ));
            }
            _ => None,
        };
        Ok(Self { config, tls })
    }

    /// A connection of its own, outside the pool (for `LISTEN`), whose asynchronous
    /// notifications' payloads arrive on the returned channel. The channel closes when the
    /// connection ends.
    pub(super) async fn dedicated(&self) -> StoreResult<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>)> {
        let (sender, payloads) = mpsc::unbounded_channel();
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(forward_notifications(connection, sender));
                client
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(forward_notifications(connection, sender));
                client
            }
        };
        Ok((client, payloads))
    }
}

/// Drives a dedicated connection, passing on the payload of every notification it receives.
async fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    payloads: mpsc::UnboundedSender<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                if payloads.send(notification.payload().to_string()).is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(error = %super::PostgresError(error), "the PostgreSQL notification connection ended");
                return;
            }
            None => return,
        }
    }
}

/// A pool of at most `size` connections over `connector`. Nothing is connected yet.
pub(super) fn pool(connector: &Connector, size: usize) -> StoreResult<Pool> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let config = connector.config.clone();
    let manager = match &connector.tls {
        Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT * 2))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The first connection, retried while the server cannot be reached (or is still starting)
/// until `budget` has passed. An answer of the server that retrying cannot change (bad
/// credentials, no such database) fails at once.
pub(super) async fn first_connection(pool: &Pool, budget: Duration) -> StoreResult<Object> {
    let deadline = Instant::now() + budget;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match pool.get().await {
            Ok(client) => return Ok(client),
            Err(error) => error,
        };
        let retry = worth_retrying(&error);
        let error = StoreError::from(error);
        if !retry || Instant::now() + RETRY_PAUSE > deadline {
            tracing::error!(%error, attempts, "cannot connect to the PostgreSQL database");
            return Err(error);
        }
        tracing::warn!(%error, attempts, "the PostgreSQL database is not reachable yet; retrying");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Network failures, timeouts and a server that is starting up or full; not a refused
/// certificate or a refusal by the server.
fn worth_retrying(error: &PoolError) -> bool {
    match error {
        PoolError::Timeout(_) => true,
        PoolError::Backend(e) => match e.code() {
            None => !is_tls_failure(e),
            Some(code) => *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::TOO_MANY_CONNECTIONS,
        },
        _ => false,
    }
}

/// A handshake that failed on what the server sent (rustls reports it as invalid data).
fn is_tls_failure(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        if cause.is::<rustls::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
