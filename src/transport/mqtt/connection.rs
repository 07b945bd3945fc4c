//! One connection to the MQTT broker (spec: css-ess-protocol.md §4.1, §4.3): clean session,
//! QoS 0, the node's subscriptions made again on every connect. A lost broker is routine:
//! the connection retries with exponential backoff and jitter, never spins, never exits;
//! [`Connection::is_connected`] tells health and metrics how things stand.

use crate::backoff::Backoff;
use crate::clock::now_millis;
use crate::engine::{BrokerHealth, BrokerStatus, LinkReason, Node};
use crate::transport::link_reason::reason_in_chain;
use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::futures::Notified;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Waits between connection attempts: from 200 ms up to 30 s (the original's longest wait),
/// jittered so that many nodes losing one broker do not come back in lockstep.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30)).jittered();
/// Largest chunk accepted from the other node even when this node's own chunks are
/// smaller: the original's default chunk (5 MiB) with room to spare.
const MIN_INCOMING_CHUNK: usize = 64 * 1024 * 1024;
/// Framing beyond a chunk's bytes in a data message (header, names, MQTT packet).
const PACKET_OVERHEAD: usize = 64 * 1024;

/// How to reach the broker.
#[derive(Clone)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub user: String,
    pub password: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Largest chunk that travels in one message (`MaxDataChunkSize`).
    pub max_chunk: usize,
}

/// A received publish.
#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
}

/// Publishing side of the connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    client: AsyncClient,
    state: Arc<State>,
    /// The largest chunk of data a message from the other node may carry, once decoded.
    largest_incoming_chunk: usize,
}

/// What the connection has been through, for the health report and metrics.
#[derive(Default)]
pub struct State {
    connected: AtomicBool,
    /// Completed connects; a change tells the node its broker session was renewed.
    sessions: AtomicU64,
    sent_bytes: AtomicU64,
    received_bytes: AtomicU64,
    /// Milliseconds since the epoch when the connection was lost (0 while connected).
    disconnected_at: AtomicI64,
    subscribe_failures: AtomicU64,
    publish_failures: AtomicU64,
    /// Seconds since the epoch of the last failure of each kind (0 = none).
    last_subscribe_failure: AtomicI64,
    last_publish_failure: AtomicI64,
    session_renewed: tokio::sync::Notify,
}

impl BrokerStatus for State {
    /// Reads the counters at once (each is atomic; together they are a snapshot, not a
    /// torn read of a shared struct as in the original).
    fn health(&self) -> BrokerHealth {
        let now_ms = now_millis();
        let since = |at: &AtomicI64| {
            let at = at.load(Ordering::SeqCst);
            (at > 0).then(|| u64::try_from(now_ms / 1000 - at).unwrap_or(0))
        };
        let disconnected_at = self.disconnected_at.load(Ordering::SeqCst);
        let connected = self.connected.load(Ordering::SeqCst);
        BrokerHealth {
            connected,
            subscribe_failures: self.subscribe_failures.load(Ordering::SeqCst),
            publish_failures: self.publish_failures.load(Ordering::SeqCst),
            disconnected_for_ms: if connected || disconnected_at == 0 {
                0
            } else {
                u64::try_from(now_ms - disconnected_at).unwrap_or(0)
            },
            since_subscribe_failure: since(&self.last_subscribe_failure),
            since_publish_failure: since(&self.last_publish_failure),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Connection {
    /// Starts the connection task: subscribes `topics` at every connect and forwards every
    /// publish to `incoming`; an ESS's `link` learns of each connect, message and failure.
    /// Ends when `shutdown` is cancelled.
    pub fn start(
        settings: &BrokerSettings,
        topics: Vec<String>,
        incoming: mpsc::Sender<Incoming>,
        link: Option<Node>,
        tracker: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let mut options = MqttOptions::new(settings.client_id.clone(), settings.host.clone(), settings.port);
        options.set_keep_alive(Duration::from_secs(120));
        options.set_clean_session(true);
        // Chunks this node sends are at most its MaxDataChunkSize; the other node's may be
        // larger (its own setting), up to what a broker commonly accepts.
        let outgoing = settings.max_chunk.saturating_add(PACKET_OVERHEAD);
        let largest_incoming_chunk = settings.max_chunk.max(MIN_INCOMING_CHUNK);
        options.set_max_packet_size(largest_incoming_chunk.saturating_add(PACKET_OVERHEAD), outgoing);
        if !settings.user.is_empty() {
            options.set_credentials(settings.user.clone(), settings.password.clone());
        }
        if let Some(tls) = &settings.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        }
        // Few queued requests: a data chunk may be megabytes, and the senders wait for room
        // rather than pile chunks up in memory.
        let (client, mut events) = AsyncClient::new(options, 8);
        // Control messages are small and each waits for an answer: without TCP_NODELAY,
        // Nagle's algorithm and delayed acknowledgements add tens of milliseconds to each.
        let mut network = events.network_options();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let state = Arc::new(State::default());
        let connection = Self {
            client,
            state,
            largest_incoming_chunk,
        };
        let runner = connection.clone();
        let address = format!("{}:{}", settings.host, settings.port);
        tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = runner.client.try_disconnect();
                }
                _ = runner.run(events, topics, incoming, address, link) => {}
            }
        });
        connection
    }

    async fn run(
        &self,
        mut events: EventLoop,
        topics: Vec<String>,
        incoming: mpsc::Sender<Incoming>,
        address: String,
        link: Option<Node>,
    ) {
        let link = link.as_ref().and_then(Node::css_link);
        let mut failures = 0u32;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    if let Some(link) = link {
                        link.succeeded();
                    }
                    tracing::info!(broker = %address, "MQTT: connected to the broker");
                    for topic in &topics {
                        if let Err(e) = self.client.subscribe(topic.clone(), QoS::AtMostOnce).await {
                            tracing::warn!(topic, error = %e, "MQTT: subscribing failed");
                            self.state.subscribe_failures.fetch_add(1, Ordering::SeqCst);
                            self.state
                                .last_subscribe_failure
                                .store(now_millis() / 1000, Ordering::SeqCst);
                        }
                    }
                    self.state.connected.store(true, Ordering::SeqCst);
                    self.state.disconnected_at.store(0, Ordering::SeqCst);
                    self.state.sessions.fetch_add(1, Ordering::SeqCst);
                    self.state.session_renewed.notify_waiters();
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if let Some(link) = link {
                        link.succeeded();
                    }
                    self.state
                        .received_bytes
                        .fetch_add(publish.payload.len() as u64, Ordering::Relaxed);
                    let message = Incoming {
                        topic: publish.topic,
                        payload: publish.payload,
                    };
                    if incoming.send(message).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(link) = link {
                        link.failed(reason_of_connection(&e), &e.to_string());
                    }
                    if self.state.disconnected_at.load(Ordering::SeqCst) == 0 {
                        self.state.disconnected_at.store(now_millis(), Ordering::SeqCst);
                    }
                    if self.state.connected.swap(false, Ordering::SeqCst) {
                        tracing::warn!(broker = %address, error = %e, "MQTT: connection to the broker lost; reconnecting");
                    } else if failures % 20 == 0 {
                        tracing::warn!(broker = %address, error = %e, "MQTT: cannot reach the broker; retrying");
                    }
                    failures = failures.saturating_add(1);
                    let delay = RECONNECT.delay(failures);
                    tracing::debug!(broker = %address, failures, retry_in = ?delay, error = %e, "MQTT: no broker connection");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Publishes a payload with QoS 0; waits while the outgoing queue is full. Messages
    /// published while the broker is away are dropped by it, as QoS 0 allows: the resend
    /// timers repeat what matters.
    pub async fn publish(&self, topic: String, payload: Bytes) {
        let len = payload.len() as u64;
        match self.client.publish_bytes(topic, QoS::AtMostOnce, false, payload).await {
            Ok(()) => {
                self.state.sent_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(error = %e, "MQTT: publish failed");
                self.state.publish_failures.fetch_add(1, Ordering::SeqCst);
                self.state
                    .last_publish_failure
                    .store(now_millis() / 1000, Ordering::SeqCst);
            }
        }
    }

    /// True while the broker connection is up.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::SeqCst)
    }

    /// The largest chunk of data a message from the other node may carry: the bound of a
    /// compressed chunk once decompressed, as of an uncompressed one.
    pub fn largest_incoming_chunk(&self) -> usize {
        self.largest_incoming_chunk
    }

    /// Number of completed connects so far.
    pub fn sessions(&self) -> u64 {
        self.state.sessions.load(Ordering::SeqCst)
    }

    /// Resolves at the next completed connect.
    pub async fn session_renewed(&self) {
        self.state.session_renewed.notified().await;
    }

    /// The connection's state, for health and metrics.
    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    /// Resolves at the next completed connect after this call, even when first polled later.
    pub fn next_session(&self) -> Pin<Box<Notified<'_>>> {
        let mut renewed = Box::pin(self.state.session_renewed.notified());
        renewed.as_mut().enable();
        renewed
    }

    /// Resolves when the broker connection is up: at once if it is, else at the next
    /// completed connect.
    pub async fn connected(&self) {
        let renewed = self.next_session();
        if self.is_connected() {
            return;
        }
        renewed.await;
    }
}

/// Why the broker connection failed, in the link status's terms: the network's reasons
/// where the error shows one, credentials the broker refused, else the broker.
fn reason_of_connection(error: &ConnectionError) -> LinkReason {
    match error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => LinkReason::Unauthorized,
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => LinkReason::Timeout,
        ConnectionError::Tls(_) => LinkReason::Tls,
        ConnectionError::Io(e) => reason_in_chain(e).unwrap_or(LinkReason::Broker),
        _ => LinkReason::Broker,
    }
}
