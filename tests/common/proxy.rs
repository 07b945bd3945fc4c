//! TCP front doors for nodes: a round-robin balancer over several CSS instances, a gate that
//! keeps a node unreachable until a test opens it, and a proxy that counts (and may throttle)
//! the bytes flowing each way. All run on a free loopback port until they are dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A listener task that stops when its owner is dropped.
struct Front {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    async fn start<F, Fut>(mut serve: F) -> Self
    where
        F: FnMut(TcpStream, u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            for turn in 0.. {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(client, turn));
            }
        });
        Self { port, task }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays `client` to the node on `port` until either side closes.
async fn relay(mut client: TcpStream, port: u16) {
    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// Hands each new connection to the next of several ports in turn, as a load balancer
/// without session affinity does.
pub struct RoundRobin(Front);

impl RoundRobin {
    pub async fn start(ports: Vec<u16>) -> Self {
        Self(Front::start(move |client, turn| relay(client, ports[turn as usize % ports.len()])).await)
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }
}

/// What a closed [`Gate`] does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Answers `502 Bad Gateway`, as a reverse proxy whose backend is unreachable does.
    BadGateway,
    /// Closes it at once, as a broker that cannot be reached.
    Dropped,
    /// Takes the request and never answers, as a peer that hangs.
    Silent,
}

/// A front door to one node, closed until [`Gate::open`]; connections made while it is
/// closed are refused as `closed` says, later ones are relayed.
pub struct Gate {
    front: Front,
    open: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl Gate {
    pub async fn start(port: u16, closed: Closed) -> Self {
        let open = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let (is_open, refusals) = (open.clone(), refused.clone());
        let front = Front::start(move |mut client, _| {
            let is_open = is_open.load(Ordering::SeqCst);
            if !is_open {
                refusals.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                if is_open {
                    return relay(client, port).await;
                }
                if closed == Closed::Silent {
                    let mut sink = [0u8; 4096];
                    while matches!(client.read(&mut sink).await, Ok(read) if read > 0) {}
                    return;
                }
                if closed == Closed::BadGateway && read_request_head(&mut client).await {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                }
                let _ = client.shutdown().await;
            }
        })
        .await;
        Self { front, open, refused }
    }

    pub fn port(&self) -> u16 {
        self.front.port
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Lets the next connections through.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Reads a request's head (up to its blank line), so that the answer comes after the request
/// as clients expect; false when the client went away first.
async fn read_request_head(client: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    true
}

/// A TCP proxy to one node that counts the bytes flowing each way, relaying each direction
/// at no more than `bytes_per_second` when given (slow enough to interrupt a transfer).
pub struct CountingProxy {
    front: Front,
    downstream: Arc<AtomicU64>,
    upstream: Arc<AtomicU64>,
}

impl CountingProxy {
    pub async fn start(target: u16, bytes_per_second: Option<u64>) -> Self {
        let (downstream, upstream) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (down, up) = (Arc::clone(&downstream), Arc::clone(&upstream));
        let front = Front::start(move |client, _| {
            let (down, up) = (Arc::clone(&down), Arc::clone(&up));
            async move {
                if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let sending = tokio::spawn(pump(client_read, server_write, up, bytes_per_second));
                    pump(server_read, client_write, down, bytes_per_second).await;
                    sending.abort();
                }
            }
        })
        .await;
        Self {
            front,
            downstream,
            upstream,
        }
    }

    pub fn port(&self) -> u16 {
        self.front.port
    }

    /// Bytes the node sent back to its clients.
    pub fn bytes_sent_back(&self) -> u64 {
        self.downstream.load(Ordering::SeqCst)
    }

    /// Bytes the clients sent to the node.
    pub fn bytes_sent_up(&self) -> u64 {
        self.upstream.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` (at no more than `bytes_per_second` when given), counting what went
/// through.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
    bytes_per_second: Option<u64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut relayed: u64 = 0;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        counter.fetch_add(read as u64, Ordering::SeqCst);
        relayed += read as u64;
        let Some(rate) = bytes_per_second else {
            continue;
        };
        let due = Duration::from_secs_f64(relayed as f64 / rate as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
    let _ = to.shutdown().await;
}
