//! Listeners and serving (spec security.md §8.1, §8.4): plain HTTP or HTTPS on TCP ports
//! and on a Unix domain socket. One list of listeners, one accept loop for all of them,
//! one task per connection, graceful shutdown on the node's cancellation token (stop
//! accepting, let in-flight requests finish).

use crate::config::{Config, ListeningType, SendfileDownloads};
use crate::tls;
use crate::zero_copy::SendfileStream;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take for the TLS handshake when `HTTPServerReadHeaderTimeout` is 0.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most a request line plus headers may take, as the original's HTTP server allows
/// (Go's default of 1 MiB, plus the 4 KiB it tolerates beyond it). Larger heads get 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = (1 << 20) + 4096;

/// The most header fields a request may carry. The original counts none, only bytes; a
/// count is needed here because the parser prepares a slot per allowed field on every
/// request (over 100, on the heap): 256 cost about 5,000 instructions per request, 512
/// twice that. A request with more fields gets 431.
pub const MAX_HEADER_FIELDS: usize = 256;

/// A bound listener, ready to serve.
pub struct Listener {
    socket: Socket,
    /// `Some` when connections are TLS.
    tls: Option<TlsAcceptor>,
    /// `HTTPServerReadHeaderTimeout`; also bounds the TLS handshake.
    header_read_timeout: Option<Duration>,
    /// `SendfileDownloads`: which plain TCP clients get downloads sent from the page cache.
    sendfile: SendfileDownloads,
}

enum Socket {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

/// Where a listener is to be bound.
enum Endpoint {
    Tcp(u16),
    Unix(PathBuf),
}

/// Any accepted stream, plain or TLS, over TCP or a Unix socket: one type, so the HTTP
/// connection code exists once.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

impl Listener {
    /// Where it listens, for the start-up log line (`https://127.0.0.1:8443`,
    /// `unix:/path (http)`).
    pub fn describe(&self) -> String {
        let scheme = self.scheme();
        match &self.socket {
            Socket::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| format!("tcp (unknown: {e})"), |a| format!("{scheme}://{a}")),
            Socket::Unix(_, path) => format!("unix:{} ({scheme})", path.display()),
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The bound TCP address (useful with port 0); `None` for a Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Unix(..) => None,
        }
    }
}

/// Why listeners could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
}

/// Binds the listeners the configuration asks for (spec security.md §8.1): `unsecure` →
/// HTTP on `UnsecureListeningPort`, `secure` → HTTPS on `SecureListeningPort`, `both` →
/// both, `unix`/`secure-unix` → HTTP/HTTPS on the socket file `ListeningAddress`. The TLS
/// identity is prepared (loaded or generated, see [`tls`]) only when a listener needs it.
pub async fn bind(config: &Config) -> Result<Vec<Listener>, ListenError> {
    let listening = config.listening_type;
    let mut plan = Vec::new();
    if listening.is_unix() {
        let path = config.resolve_path(&config.listening_address);
        plan.push((Endpoint::Unix(path), listening == ListeningType::SecureUnix));
    }
    if listening.serves_tcp_plain() {
        plan.push((Endpoint::Tcp(config.unsecure_listening_port), false));
    }
    if listening.serves_tcp_tls() {
        plan.push((Endpoint::Tcp(config.secure_listening_port), true));
    }
    let acceptor = if plan.iter().any(|(_, secure)| *secure) {
        Some(TlsAcceptor::from(tls::server_config(config)?))
    } else {
        None
    };
    let header_read_timeout = u64::try_from(config.http_server_read_header_timeout)
        .ok()
        .filter(|&seconds| seconds > 0)
        .map(Duration::from_secs);
    let mut listeners = Vec::with_capacity(plan.len());
    for (endpoint, secure) in plan {
        let socket = match endpoint {
            Endpoint::Tcp(port) => bind_tcp(&config.listening_address, port).await?,
            Endpoint::Unix(path) => bind_unix(path, config.unix_socket_file_permissions)?,
        };
        listeners.push(Listener {
            socket,
            tls: if secure { acceptor.clone() } else { None },
            header_read_timeout,
            sendfile: config.sendfile_downloads,
        });
    }
    Ok(listeners)
}

async fn bind_tcp(host: &str, port: u16) -> Result<Socket, ListenError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| ListenError::Bind { address, source })?;
    Ok(Socket::Tcp(listener))
}

/// Binds the socket file with its final mode already set: the socket is created in a
/// private (0700) directory next to `path`, given `mode`, then renamed into place, so it is
/// never reachable with umask-derived permissions. An existing socket at `path` is
/// replaced; anything else there is left alone and is an error (spec §8.4 flaw).
fn bind_unix(path: PathBuf, mode: u32) -> Result<Socket, ListenError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
    let error = |source| ListenError::Bind {
        address: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(&path).map_err(error)?,
        Ok(_) => {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way; not removing it",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(error)?;
    let file_name = path
        .file_name()
        .map_or_else(|| "socket".into(), |n| n.to_string_lossy());
    let private = parent.join(format!(".{file_name}.{}.binding", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(error)?;
    let staged = private.join("socket");
    let bound = (|| {
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&staged, &path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    Ok(Socket::Unix(bound.map_err(error)?, path))
}

/// Serves `router` on every listener until `shutdown` is cancelled and in-flight requests
/// end. Listener and connection tasks run on `tracker`.
pub fn serve(listeners: Vec<Listener>, router: Router, shutdown: &CancellationToken, tracker: &TaskTracker) {
    for listener in listeners {
        tracker.spawn(accept_loop(listener, router.clone(), shutdown.clone(), tracker.clone()));
    }
}

/// What every connection of one listener shares.
struct Connections {
    router: Router,
    tls: Option<TlsAcceptor>,
    http: http1::Builder,
    handshake_timeout: Duration,
    sendfile: SendfileDownloads,
}

async fn accept_loop(listener: Listener, router: Router, stop: CancellationToken, tracker: TaskTracker) {
    let mut http = http1::Builder::new();
    // Half-closed connections are served: a client that closes its sending side after its
    // request still gets the answer. It also means no read is attempted while a request is
    // handled, which would otherwise allocate a new read buffer per request (the current
    // one is still referenced by the request's head) and, with musl's allocator, map and
    // unmap memory every other request. A client gone during a long poll is noticed when
    // the answer is written, at most `MAX_LONG_POLL` later; the poll only reads.
    http.half_close(true)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .max_header_size(MAX_REQUEST_HEAD_BYTES)
        .max_headers(MAX_HEADER_FIELDS)
        .timer(TokioTimer::new())
        .header_read_timeout(listener.header_read_timeout);
    if listener.tls.is_none() {
        // Response bodies are queued as they are, never copied into the connection's own
        // buffer: downloads on plain TCP rely on it to send files by their placeholder
        // chunks (see `zero_copy`).
        http.writev(true);
    }
    let connections = Arc::new(Connections {
        router,
        tls: listener.tls.clone(),
        http,
        handshake_timeout: listener.header_read_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
        sendfile: listener.sendfile,
    });
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = accept(&listener.socket) => accepted,
        };
        match accepted {
            Ok(accepted) => {
                let watcher = graceful.watcher();
                tracker.spawn(connections.clone().serve(accepted, watcher, stop.clone()));
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "accept failed");
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::error!(listener = %listener.describe(), error = %e, "accept failed");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An accepted connection, before TLS.
enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(socket: &Socket) -> std::io::Result<Accepted> {
    match socket {
        Socket::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok(Accepted::Tcp(stream, peer))
        }
        Socket::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            Ok(Accepted::Unix(stream))
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

impl Connections {
    /// One connection: the TLS handshake if any (a failure is only logged at debug level),
    /// then HTTP/1.1 until the client or a graceful shutdown closes it. TCP requests carry
    /// `ConnectInfo<SocketAddr>`, and plain TCP ones the connection's [`crate::zero_copy::FileSends`].
    async fn serve(self: Arc<Self>, accepted: Accepted, watcher: Watcher, stop: CancellationToken) {
        let (stream, peer, sends): (Box<dyn Stream>, _, _) = match (accepted, &self.tls) {
            (Accepted::Tcp(tcp, peer), None) if self.sendfile.for_peer(peer.ip()) => {
                let (stream, sends) = SendfileStream::new(tcp);
                (Box::new(stream), Some(peer), Some(sends))
            }
            (Accepted::Tcp(tcp, peer), _) => (Box::new(tcp), Some(peer), None),
            (Accepted::Unix(unix), _) => (Box::new(unix), None, None),
        };
        let stream: Box<dyn Stream> = match &self.tls {
            None => stream,
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream));
                let result = tokio::select! {
                    () = stop.cancelled() => return,
                    result = handshake => result,
                };
                match result {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(e)) => {
                        tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = ?peer, "TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        let service = self.router.clone().map_request(move |mut request: Request<Incoming>| {
            if let Some(peer) = peer {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            if let Some(sends) = &sends {
                request.extensions_mut().insert(sends.clone());
            }
            request
        });
        let connection = self
            .http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(peer = ?peer, error = %e, "connection ended with an error");
        }
    }
}
