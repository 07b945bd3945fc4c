//! A fleet of simulated edge nodes speaking MQTT (spec: css-ess-protocol.md §4) as our ESS
//! does, tasks of this process, each with its own broker connection and the service's own
//! codec: a node registers (`register`, then `registerNew` when the CSS does not know it);
//! for every `update` of the fleet's type it sends `updated`, asks for the data chunk by
//! chunk with `getdata` comparing every byte with what was published, and sends `received`
//! until `ackreceived` comes. A request whose answer does not come within the ESS's wait is
//! sent again, as the ESS's retries do; an `update` sent again for a copy already complete
//! is answered with `received`. What had to be repeated, and what came unasked, is counted.

use super::sim::{Arrival, Deliveries, Reporter, FLEET_TYPE};
use bytes::Bytes;
use edge_sync_service::model::{Destination, MetaData, ObjectKey};
use edge_sync_service::transport::mqtt::codec::{self, Control, Message};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// How long a node waits for an answer before it sends its request again: the ESS's wait
/// with the default `ResendInterval` (10 s).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a node waits for a chunk: the ESS's, twice its answer time.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(20);
/// A request repeated for this long without an answer ends the node with an error.
const GIVE_UP: Duration = Duration::from_secs(120);
/// Nodes connecting and registering at once: a burst of connects beyond the broker's listen
/// backlog would cost SYN retransmissions of a second.
const CONNECT_CONCURRENCY: usize = 64;
/// Largest packet a node accepts, as the service's connection does: any chunk the CSS may
/// send with room to spare.
const MAX_PACKET: usize = 64 << 20;
/// Wait before a node reconnects to the broker after losing it.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What the nodes observed, summed over the fleet.
#[derive(Default)]
pub struct Counters {
    /// Requests sent again because their answer did not come in time (lost, or late).
    pub repeated: AtomicU64,
    /// Messages that came unasked: a notification or a chunk again, an answer nobody waited
    /// for (a resend of the CSS, or the answer to a request repeated too early).
    pub unasked: AtomicU64,
    /// Broker connections the nodes lost.
    pub disconnects: AtomicU64,
    /// Payloads the service's codec could not decode: the CSS broke the wire format.
    pub undecodable: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now: repeated, unasked, disconnects, undecodable.
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.repeated, &self.unasked, &self.disconnects, &self.undecodable].map(|c| c.load(Ordering::Relaxed))
    }
}

/// The running fleet; dropping it stops every node (its tasks are aborted).
pub struct MqttFleet {
    pub deliveries: Deliveries,
    pub counters: Arc<Counters>,
    tasks: tokio::task::JoinSet<()>,
}

impl MqttFleet {
    /// Connects `nodes` simulated nodes `edge/n{i}` of organization `org` to the broker on
    /// `port` and registers them with the CSS behind it. Returns when every node is
    /// registered, with the time that took.
    pub async fn start(port: u16, org: &str, nodes: usize) -> Result<(MqttFleet, Duration), String> {
        let (deliveries, reporter) = Deliveries::new(nodes);
        let counters = Arc::new(Counters::default());
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let (registered_tx, mut registered_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..nodes {
            let me = Destination {
                org: org.to_string(),
                dest_type: "edge".into(),
                dest_id: format!("n{i}"),
                communication: "mqtt".into(),
                code_version: "1.0".into(),
            };
            let (gate, registered, reporter, counters) =
                (gate.clone(), registered_tx.clone(), reporter.clone(), counters.clone());
            tasks.spawn(async move {
                let Ok(permit) = gate.acquire_owned().await else {
                    return;
                };
                let (client, events) = connect(port, &me);
                let (inbox_tx, inbox) = mpsc::unbounded_channel();
                let topic = codec::to_ess_topic(&me.dest_type, &me.dest_id);
                let name = me.dest_id.clone();
                let driver = drive(events, client.clone(), topic, inbox_tx, counters.clone());
                let node = SimMqttNode {
                    client,
                    inbox,
                    me,
                    counters,
                    set_aside: VecDeque::new(),
                    completed: HashMap::new(),
                    renewed: false,
                };
                tokio::select! {
                    _ = driver => {
                        reporter.report(Err(format!("node {name}: its broker connection stopped")));
                    }
                    ended = node.live(permit, &registered, &reporter) => {
                        reporter.report(Err(ended));
                    }
                }
            });
        }
        for _ in 0..nodes {
            match tokio::time::timeout(GIVE_UP, registered_rx.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(e))) => return Err(format!("registration: {e}")),
                Ok(None) => return Err("the simulated nodes stopped".into()),
                Err(_) => return Err(format!("registrations stalled for {GIVE_UP:?}")),
            }
        }
        let fleet = MqttFleet {
            deliveries,
            counters,
            tasks,
        };
        Ok((fleet, started.elapsed()))
    }

    /// Stops every node.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A client set up as the service's own connection is: clean session, keep-alive 120 s,
/// TCP_NODELAY, few queued requests.
fn connect(port: u16, me: &Destination) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(format!("sim-{}-{}", me.dest_type, me.dest_id), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(120));
    options.set_clean_session(true);
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    let (client, mut events) = AsyncClient::new(options, 8);
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    (client, events)
}

/// What the connection hands the node.
enum Inbound {
    /// A broker session began: the node's subscription is requested, it may publish.
    Session,
    Message(Message),
}

/// Runs the connection: subscribes at every connect, decodes every payload for the node.
/// Ends when the node is gone.
async fn drive(
    mut events: EventLoop,
    client: AsyncClient,
    topic: String,
    inbox: mpsc::UnboundedSender<Inbound>,
    counters: Arc<Counters>,
) {
    loop {
        let inbound = match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // Queued before anything the node publishes afterwards, so the broker
                // subscribes it before the CSS can answer.
                if client.try_subscribe(topic.clone(), QoS::AtMostOnce).is_err() {
                    return;
                }
                Inbound::Session
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => match codec::decode(&publish.payload, MAX_PACKET) {
                Ok(message) => Inbound::Message(message),
                Err(_) => {
                    Counters::add(&counters.undecodable);
                    continue;
                }
            },
            Ok(_) => continue,
            Err(_) => {
                Counters::add(&counters.disconnects);
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if inbox.send(inbound).is_err() {
            return;
        }
    }
}

/// One simulated node's protocol side.
struct SimMqttNode {
    client: AsyncClient,
    /// Unbounded: the connection must never wait for the node, which may be waiting for
    /// room to publish; a node gets a few messages per object.
    inbox: mpsc::UnboundedReceiver<Inbound>,
    me: Destination,
    counters: Arc<Counters>,
    /// Notifications that came while the node waited for an answer, handled next.
    set_aside: VecDeque<MetaData>,
    /// The instance each object was completed in, by object ID.
    completed: HashMap<String, i64>,
    /// A new broker session began since the last registration.
    renewed: bool,
}

impl SimMqttNode {
    /// Connects and registers (then lets the next node connect), then handles the updates
    /// that come until an error, which it returns.
    async fn live(
        mut self,
        permit: OwnedSemaphorePermit,
        registered: &mpsc::UnboundedSender<Result<(), String>>,
        reporter: &Reporter,
    ) -> String {
        let outcome = self.first_registration().await;
        drop(permit);
        let failed = outcome.as_ref().err().cloned();
        let _ = registered.send(outcome);
        if let Some(e) = failed {
            return e;
        }
        loop {
            if std::mem::take(&mut self.renewed) {
                // As the ESS does on a new session: the CSS then sends again what is owed.
                if let Err(e) = self.register().await {
                    return self.failure(e);
                }
            }
            let meta = match self.set_aside.pop_front() {
                Some(meta) => meta,
                None => match self.inbox.recv().await {
                    None => return self.failure("the broker connection ended".into()),
                    Some(Inbound::Session) => {
                        self.renewed = true;
                        continue;
                    }
                    Some(Inbound::Message(Message::Control(control))) if control.command == "update" => control.meta,
                    Some(Inbound::Message(_)) => {
                        Counters::add(&self.counters.unasked);
                        continue;
                    }
                },
            };
            match self.receive(meta, reporter).await {
                Ok(Some(arrival)) => {
                    if !reporter.report(Ok(arrival)) {
                        return "stopped".into();
                    }
                }
                Ok(None) => {}
                Err(e) => return self.failure(e),
            }
        }
    }

    fn failure(&self, error: String) -> String {
        format!("node {}: {error}", self.me.dest_id)
    }

    async fn first_registration(&mut self) -> Result<(), String> {
        match tokio::time::timeout(GIVE_UP, self.inbox.recv()).await {
            Ok(Some(Inbound::Session)) => {}
            _ => return Err(self.failure("no connection to the broker".into())),
        }
        self.register().await.map_err(|e| self.failure(e))
    }

    /// `register`, and `registerNew` when the CSS does not know the node, until `regack`.
    async fn register(&mut self) -> Result<(), String> {
        let mut command = "register";
        loop {
            let message = Control::from_node(command, self.me.clone(), false);
            let known = self
                .request(&message, ANSWER_TIMEOUT, |answer| match answer {
                    Message::Control(c) if c.command == "regack" => Some(true),
                    Message::Control(c) if c.command == "registerAsNew" => Some(false),
                    _ => None,
                })
                .await?;
            if known {
                return Ok(());
            }
            command = "registerNew";
        }
    }

    /// Handles one `update`: the arrival of a new instance of a fleet object, nothing for
    /// anything else.
    async fn receive(&mut self, meta: MetaData, reporter: &Reporter) -> Result<Option<Arrival>, String> {
        let notified = Instant::now();
        if meta.object_type != FLEET_TYPE {
            Counters::add(&self.counters.unasked);
            return Ok(None);
        }
        let id = meta.object_id.clone();
        let key = ObjectKey::new(&self.me.org, &meta.object_type, &id);
        let ours = codec::node_meta(&self.me, &key, meta.instance_id, meta.data_id, false);
        if self.completed.get(&id) == Some(&meta.instance_id) {
            // The CSS sent the update again: a complete copy is reported `received`.
            Counters::add(&self.counters.unasked);
            self.send_received(&ours).await?;
            return Ok(None);
        }
        let data = reporter
            .expected(&id)
            .ok_or_else(|| format!("object {id} arrived but was never published"))?;
        if !meta.no_data {
            if u64::try_from(meta.object_size).ok() != Some(data.len() as u64) {
                return Err(format!(
                    "{id}: objectSize {} of {} published bytes",
                    meta.object_size,
                    data.len()
                ));
            }
            self.publish(&Control::about("updated", ours.clone())).await?;
            self.fetch(&ours, &data).await?;
        }
        self.send_received(&ours).await?;
        self.completed.insert(id.clone(), meta.instance_id);
        Ok(Some(Arrival {
            object_id: id,
            polled: notified,
            done: Instant::now(),
        }))
    }

    /// Asks for the data chunk by chunk from offset 0, each chunk where the previous ended
    /// (the CSS sends up to its `MaxDataChunkSize` per `getdata`), comparing every byte.
    async fn fetch(&mut self, ours: &MetaData, data: &Bytes) -> Result<(), String> {
        let mut offset = 0usize;
        while offset < data.len() {
            let mut getdata = Control::about("getdata", ours.clone());
            getdata.offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let (id, instance, at) = (ours.object_id.clone(), ours.instance_id, getdata.offset);
            let chunk = self
                .request(&getdata, CHUNK_TIMEOUT, |answer| match answer {
                    Message::Data(chunk)
                        if chunk.object_id == id && chunk.instance_id == instance && chunk.offset == at =>
                    {
                        Some(Ok(chunk.data.clone()))
                    }
                    Message::Control(c) if c.command == "feedback" && c.meta.object_id == id => Some(Err(format!(
                        "feedback code {} at offset {at}: {}",
                        c.feedback_code, c.reason
                    ))),
                    _ => None,
                })
                .await??;
            match data.get(offset..offset.saturating_add(chunk.len())) {
                _ if chunk.is_empty() => return Err(format!("{id}: an empty chunk at offset {offset}")),
                Some(want) if *want == chunk[..] => offset += chunk.len(),
                Some(_) => return Err(format!("{id}: bytes at {offset} differ from the published ones")),
                None => return Err(format!("{id}: bytes beyond the published {} at {offset}", data.len())),
            }
        }
        Ok(())
    }

    /// `received` until `ackreceived`.
    async fn send_received(&mut self, ours: &MetaData) -> Result<(), String> {
        let (id, instance) = (ours.object_id.clone(), ours.instance_id);
        self.request(
            &Control::about("received", ours.clone()),
            ANSWER_TIMEOUT,
            |answer| match answer {
                Message::Control(c)
                    if c.command == "ackreceived" && c.meta.object_id == id && c.meta.instance_id == instance =>
                {
                    Some(())
                }
                _ => None,
            },
        )
        .await
    }

    /// Publishes on the node's normal `evt` topic (a receiver never uses the leader topic).
    async fn publish(&self, message: &Control) -> Result<(), String> {
        let topic = codec::from_ess_topic(&self.me.dest_type, &self.me.dest_id, false);
        self.client
            .publish_bytes(topic, QoS::AtMostOnce, false, codec::encode_control(message))
            .await
            .map_err(|e| format!("publishing {}: {e}", message.command))
    }

    /// Publishes `message` until `answer` picks its answer out of what comes, each attempt
    /// waiting `timeout`; a new broker session sends it again at once (what was in flight
    /// is lost with the old one). Updates that come meanwhile are set aside.
    async fn request<T>(
        &mut self,
        message: &Control,
        timeout: Duration,
        mut answer: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T, String> {
        let started = Instant::now();
        loop {
            self.publish(message).await?;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                    Err(_) => break,
                    Ok(None) => return Err("the broker connection ended".into()),
                    Ok(Some(Inbound::Session)) => {
                        self.renewed = true;
                        break;
                    }
                    Ok(Some(Inbound::Message(message))) => {
                        if let Some(found) = answer(&message) {
                            return Ok(found);
                        }
                        self.set_aside(message);
                    }
                }
            }
            if started.elapsed() > GIVE_UP {
                return Err(format!("no answer to {} for {GIVE_UP:?}", message.command));
            }
            Counters::add(&self.counters.repeated);
        }
    }

    fn set_aside(&mut self, message: Message) {
        match message {
            Message::Control(control) if control.command == "update" => self.set_aside.push_back(control.meta),
            _ => Counters::add(&self.counters.unasked),
        }
    }
}
