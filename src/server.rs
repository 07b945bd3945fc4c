//! Listeners and serving: TCP (plain HTTP) and Unix domain sockets, one loop for all of
//! them, graceful shutdown on the node's cancellation token.

use crate::config::{Config, ListeningType};
use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A bound listener, ready to serve.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// Where it listens, for the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| format!("tcp (unknown: {e})"), |a| format!("http://{a}")),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

/// Why listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("ListeningType {0} needs TLS, which this build does not serve yet; use ListeningType unsecure or unix")]
    TlsUnavailable(&'static str),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
}

/// Binds the listeners the configuration asks for.
pub async fn bind(config: &Config) -> Result<Vec<Listener>, ListenError> {
    let listening = config.listening_type;
    if matches!(
        listening,
        ListeningType::Secure | ListeningType::Both | ListeningType::SecureUnix
    ) {
        return Err(ListenError::TlsUnavailable(listening.as_str()));
    }
    if listening.is_unix() {
        let path = config.resolve_path(&config.listening_address);
        return Ok(vec![bind_unix(path, config.unix_socket_file_permissions)?]);
    }
    let host = if config.listening_address.is_empty() {
        "0.0.0.0"
    } else {
        config.listening_address.as_str()
    };
    let address = format!("{host}:{}", config.unsecure_listening_port);
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", config.unsecure_listening_port)
    } else {
        address
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| ListenError::Bind {
            address: address.clone(),
            source,
        })?;
    Ok(vec![Listener::Tcp(listener)])
}

fn bind_unix(path: PathBuf, mode: u32) -> Result<Listener, ListenError> {
    use std::os::unix::fs::PermissionsExt;
    let error = |source| ListenError::Bind {
        address: path.display().to_string(),
        source,
    };
    // The original deletes and recreates the socket file at start.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let listener = tokio::net::UnixListener::bind(&path).map_err(error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(error)?;
    Ok(Listener::Unix(listener, path))
}

/// Serves `router` on every listener until `shutdown` is cancelled and in-flight requests end.
pub fn serve(listeners: Vec<Listener>, router: Router, shutdown: &CancellationToken, tracker: &TaskTracker) {
    for listener in listeners {
        let router = router.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let result = match listener {
                Listener::Tcp(l) => {
                    let service = router.into_make_service_with_connect_info::<SocketAddr>();
                    axum::serve(l, service)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                }
                Listener::Unix(l, _) => {
                    axum::serve(l, router.into_make_service())
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "listener stopped");
            }
        });
    }
}
