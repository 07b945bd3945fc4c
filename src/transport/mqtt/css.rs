//! The CSS side of the MQTT transport (spec: css-ess-protocol.md §4, §5, §7): edge nodes'
//! messages become the same engine calls as their `/spi/v1` requests, and the messages the
//! engine queues for MQTT nodes are published to them as soon as they commit (`pushes`).
//! Objects' data, pulled from and served to the nodes with `getdata`, is in `chunks`.

mod chunk_queue;
mod chunks;
mod pushes;

use super::codec::{self, Control, Message};
use super::connection::{Connection, Incoming};
use crate::auth::edge::NodeAddress;
use crate::config::Config;
use crate::engine::spi::ActionOutcome;
use crate::engine::{EngineError, Node, ReceptionScope};
use crate::model::sync::{Action, Feedback};
use crate::model::{MetaData, ObjectKey};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Feedback code "invalid object" (spec §5.5).
const FEEDBACK_INVALID_OBJECT: i32 = 5;
/// A chunk the CSS waits for: object, instance, offset.
type ChunkKey = (ObjectKey, i64, i64);

/// A node's `getdata` answered with a chunk, on the broker session then current.
struct ServedChunk {
    session: u64,
    at: crate::clock::Instant,
    node: NodeAddress,
    request: Control,
}

struct CssMqtt {
    node: Node,
    connection: Connection,
    /// Longest wait for a requested chunk before asking again.
    chunk_timeout: Duration,
    chunks: Mutex<HashMap<ChunkKey, oneshot::Sender<(Bytes, bool)>>>,
    /// Objects being pulled now, so a repeated `update` does not start a second pull.
    pulling: Mutex<std::collections::HashSet<(ObjectKey, i64)>>,
    /// Nodes as they register: a chunk requested from one of them before is lost.
    registrations: broadcast::Sender<NodeAddress>,
    /// The last chunks served, to serve again those that may have been lost with the
    /// session they were sent on.
    served_lately: Mutex<std::collections::VecDeque<ServedChunk>>,
    /// How long a node waits for a chunk it asked for: twice its answer time of
    /// max(5 s, `ResendInterval`), assuming the node's interval is the CSS's.
    node_chunk_wait: Duration,
    /// Nodes' `getdata` waiting to be served.
    chunk_requests: chunk_queue::ChunkQueue,
}

/// Starts the CSS's MQTT transport: the broker connection, the message handler and the
/// publisher of queued messages.
pub fn spawn(
    node: Node,
    config: &Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let settings = super::broker_settings(config, tls);
    let topics = codec::CSS_SUBSCRIPTIONS.iter().map(|t| t.to_string()).collect();
    let (incoming_tx, incoming) = mpsc::channel(256);
    let connection = Connection::start(&settings, topics, incoming_tx, None, tracker, shutdown.clone());
    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), "CSS: serving edge nodes over MQTT");
    node.set_broker(connection.state());
    let (pusher, pushes) = mpsc::unbounded_channel();
    node.push_messages_to(pusher);
    let resend = Duration::from_secs(u64::try_from(config.resend_interval).unwrap_or(10).max(1));
    let css = Arc::new(CssMqtt {
        node,
        connection,
        chunk_timeout: resend * 6,
        chunks: Mutex::new(HashMap::new()),
        pulling: Mutex::new(Default::default()),
        registrations: broadcast::channel(64).0,
        served_lately: Mutex::new(Default::default()),
        node_chunk_wait: 2 * resend.max(Duration::from_secs(5)),
        chunk_requests: Default::default(),
    });
    // One server of `getdata` per ranged-download slot: more would only wait for a slot.
    for _ in 0..css.node.settings().ranged_download_slots.max(1) {
        let (server, stop) = (css.clone(), shutdown.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = server.serve_queued_chunks() => {}
            }
        });
    }
    let (handler, publisher, resumer) = (css.clone(), css.clone(), css);
    let stop = shutdown.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = handler.handle(incoming) => {}
        }
    });
    let sweeper = publisher.clone();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = publisher.publish_queued(pushes) => {}
        }
    });
    let sweep_stop = shutdown.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = sweep_stop.cancelled() => {}
            _ = sweeper.resume_stalled_pulls(resend) => {}
        }
    });
    let resender = resumer.clone();
    let resend_stop = shutdown.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = resend_stop.cancelled() => {}
            _ = resender.resend_after_reconnections() => {}
        }
    });
    // Pulls a previous run of the CSS did not finish resume once the broker is there.
    tracker.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = async {
                resumer.connection.connected().await;
                if let Err(e) = resumer.resume_pulls(ReceptionScope::All).await {
                    tracing::warn!(error = %e, "MQTT: resuming unfinished pulls failed");
                }
            } => {}
        }
    });
}

/// Starts the CSS's MQTT transport whenever this instance becomes the leader of the
/// instances sharing its store, and stops it when it no longer leads: the cluster talks to
/// the broker through one connection, so every message from an edge node is handled once and
/// the pulls of edge nodes' data, whose chunks go to whoever requested them, run in one
/// place. Messages committed by the other instances reach the leader's publisher through
/// the wake-ups between instances.
pub fn spawn_while_leading(
    node: Node,
    config: &Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let config = config.clone();
    let terms = tracker.clone();
    let mut leads = node.leadership_changes();
    tracker.spawn(async move {
        loop {
            if !wait_for(&mut leads, true, &shutdown).await {
                return;
            }
            tracing::info!("MQTT: this instance leads; connecting to the broker");
            let term = shutdown.child_token();
            spawn(node.clone(), &config, tls.clone(), &terms, term.clone());
            let stopping = !wait_for(&mut leads, false, &shutdown).await;
            term.cancel();
            node.forget_broker();
            if stopping {
                return;
            }
            tracing::info!("MQTT: this instance no longer leads; leaving the broker to the new leader");
        }
    });
}

/// Waits until the leadership is `wanted`; false when `shutdown` came first.
async fn wait_for(leads: &mut tokio::sync::watch::Receiver<bool>, wanted: bool, shutdown: &CancellationToken) -> bool {
    while *leads.borrow_and_update() != wanted {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            changed = leads.changed() => if changed.is_err() {
                return false;
            },
        }
    }
    !shutdown.is_cancelled()
}

fn address(org: &str, dest_type: &str, dest_id: &str) -> NodeAddress {
    NodeAddress {
        org: org.to_string(),
        dest_type: dest_type.to_string(),
        dest_id: dest_id.to_string(),
    }
}

impl CssMqtt {
    async fn handle(self: Arc<Self>, mut incoming: mpsc::Receiver<Incoming>) {
        while let Some(message) = incoming.recv().await {
            match codec::decode(&message.payload, self.connection.largest_incoming_chunk()) {
                // A request for a chunk waits for a server in the queue, however many come.
                Ok(Message::Control(control)) if control.command == "getdata" => {
                    self.chunk_requests.push(Self::sender_of(&control), *control);
                }
                // Each other message on its own task: one node's store writes must not hold
                // up other nodes' messages. Handlers check instances and are idempotent.
                Ok(Message::Control(control)) => {
                    let css = self.clone();
                    tokio::spawn(async move { css.on_control(*control).await });
                }
                Ok(Message::Data(chunk)) => self.on_data(chunk),
                Err(e) => tracing::warn!(topic = %message.topic, error = %e, "MQTT: dropping a message"),
            }
        }
    }

    /// After each reconnection to the broker, sends again what nodes have not acknowledged:
    /// what was in flight when the previous session ended is lost (QoS 0, clean sessions),
    /// and waiting for the resend timer (6 x `ResendInterval`) would hold the nodes' objects
    /// back long after the network recovered.
    async fn resend_after_reconnections(self: Arc<Self>) {
        let mut renewed = self.connection.next_session();
        loop {
            renewed.await;
            // Armed before the work below, so that a reconnection meanwhile is not missed.
            renewed = self.connection.next_session();
            if self.connection.sessions() < 2 {
                continue;
            }
            self.serve_again_what_the_last_session_lost();
            match self.node.resend_unacknowledged(None).await {
                Ok(0) => {}
                Ok(resent) => tracing::info!(resent, "MQTT: messages sent before the reconnection queued again"),
                Err(e) => tracing::warn!(error = %e, "MQTT: queueing unacknowledged messages again failed"),
            }
        }
    }

    async fn send(&self, node: &NodeAddress, message: &Control) {
        let topic = codec::to_ess_topic(&node.dest_type, &node.dest_id);
        self.connection.publish(topic, codec::encode_control(message)).await;
    }

    /// The node a message comes from (spec §4.4): the destination fields for a receiver's
    /// messages, the origin fields for an origin's, the `destination` for node messages.
    fn sender_of(control: &Control) -> NodeAddress {
        let meta = &control.meta;
        match control.command.as_str() {
            "register" | "registerNew" | "ping" | "resend" => address(
                &control.destination.org,
                &control.destination.dest_type,
                &control.destination.dest_id,
            ),
            "updated" | "consumed" | "received" | "ackDelete" | "deleted" | "getdata" => {
                address(&meta.destination_org_id, &meta.destination_type, &meta.destination_id)
            }
            "feedback" if !control.feedback_from_origin => {
                address(&meta.destination_org_id, &meta.destination_type, &meta.destination_id)
            }
            _ => address(&meta.destination_org_id, &meta.origin_type, &meta.origin_id),
        }
    }

    async fn on_control(self: Arc<Self>, control: Control) {
        let node = Self::sender_of(&control);
        self.node.note_heard(&node);
        let command = control.command.clone();
        let result = match command.as_str() {
            "register" | "registerNew" => self.on_register(&node, &control).await,
            "ping" => match self.node.spi_ping(&node).await {
                Err(EngineError::NotFound) => {
                    self.send(&node, &Control::new("registerAsNew")).await;
                    Ok(())
                }
                other => other,
            },
            "resend" => self.on_resend(&node, control).await,
            _ => self.on_object_message(&node, control).await,
        };
        if let Err(e) = result {
            tracing::warn!(command, org = %node.org, dest_type = %node.dest_type, dest_id = %node.dest_id, error = %e, "MQTT: handling a message failed");
        }
    }

    async fn on_register(self: &Arc<Self>, node: &NodeAddress, control: &Control) -> Result<(), EngineError> {
        let as_new = control.command == "registerNew";
        match self.node.register_node(node, control.persistent, as_new, "mqtt").await {
            Ok(()) => {
                self.send(node, &Control::new("regack")).await;
                // The node has a new broker session: chunks requested before are lost, and
                // pulls that gave up can go on (spec §7.2: `getdata` records are resent).
                let _ = self.registrations.send(node.clone());
                self.resume_pulls(ReceptionScope::Node(node)).await?;
                let resent = self.node.resend_unacknowledged(Some(node)).await?;
                if resent > 0 {
                    tracing::info!(org = %node.org, dest_type = %node.dest_type, dest_id = %node.dest_id, resent, "MQTT: messages sent before the registration queued again");
                }
            }
            Err(EngineError::NotFound) => self.send(node, &Control::new("registerAsNew")).await,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn on_resend(&self, node: &NodeAddress, control: Control) -> Result<(), EngineError> {
        self.require_registered(node).await?;
        let mut ack = Control::new("ackresend");
        ack.destination = control.destination;
        self.send(node, &ack).await;
        self.node.spi_resend(node, &node.org).await
    }

    async fn require_registered(&self, node: &NodeAddress) -> Result<(), EngineError> {
        match self.node.node_communication(node).await? {
            Some(_) => Ok(()),
            None => Err(EngineError::NotRegistered),
        }
    }

    /// A message about one object: the same engine action as over HTTP, then the answer
    /// the protocol gives to it, if any.
    async fn on_object_message(self: &Arc<Self>, node: &NodeAddress, control: Control) -> Result<(), EngineError> {
        let Some(action) = Action::parse(&control.command) else {
            tracing::debug!(command = %control.command, "MQTT: message not handled by the CSS");
            return Ok(());
        };
        self.require_registered(node).await?;
        let meta = control.meta;
        let key = ObjectKey::new(&node.org, &meta.object_type, &meta.object_id);
        let instance = meta.instance_id;
        let body = match action {
            Action::Feedback => serde_json::to_vec(&Feedback {
                code: control.feedback_code,
                retry_interval: control.retry,
                reason: control.reason,
            })
            .unwrap_or_default(),
            _ => serde_json::to_vec(&meta).unwrap_or_default(),
        };
        let outcome = self.node.spi_action(node, &key, instance, action, &body).await?;
        let answer = match action {
            Action::Received => Some("ackreceived"),
            Action::Consumed => Some("ackconsumed"),
            Action::Deleted => Some("ackDeleted"),
            Action::Delete => Some("ackDelete"),
            Action::Update => {
                self.after_update(node, &key, &meta, outcome).await;
                None
            }
            _ => None,
        };
        if let Some(command) = answer {
            self.send(node, &Control::about(command, meta)).await;
        }
        Ok(())
    }

    /// After an edge node's `update`: a copy complete without data is reported by the
    /// queued `received`; one waiting for data is answered `updated` and pulled.
    async fn after_update(
        self: &Arc<Self>,
        node: &NodeAddress,
        key: &ObjectKey,
        meta: &MetaData,
        outcome: ActionOutcome,
    ) {
        if outcome != ActionOutcome::Done {
            return;
        }
        if !matches!(self.node.awaits_data(key, meta.instance_id).await, Ok(true)) {
            return;
        }
        self.send(node, &Control::about("updated", meta.clone())).await;
        self.start_pull(node, key, meta);
    }
}
