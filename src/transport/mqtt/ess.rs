//! The ESS's MQTT transport to its CSS (spec: css-ess-protocol.md §4). Requests of the sync
//! tasks become messages on the ESS's `evt` topic; where the protocol has an answer message
//! (`regack`, `ackreceived`, `ackconsumed`, `ackDelete`, `ackDeleted`, `updated`, a data
//! message) the request waits for it, bounded, and ends in the [`Reply`] it stands for.
//! Notifications the CSS pushes (`update`, `delete`, reports on own objects) are queued for
//! the poll task, which handles them exactly as polled ones. `getdata` for the ESS's own
//! objects is answered here with data messages read from the object's data.

use super::codec::{self, Control, DataChunk as ChunkMessage, Message};
use super::connection::{Connection, Incoming};
use crate::engine::Node;
use crate::model::sync::{Action, Feedback, PollItem};
use crate::model::{Destination, MetaData, ObjectKey};
use crate::sync::link::{DataChunk, DataPush, EssLink, NotificationDelivery, PollAnswer, Reply, Unregistration};
use crate::transport::compression;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// Feedback code "invalid object" (spec §5.5): the origin cannot serve the data.
const FEEDBACK_INVALID_OBJECT: i32 = 5;

/// What an awaited answer carried.
enum Answer {
    Ack,
    /// `registerAsNew`, or feedback code 5 for a data request.
    NotFound,
    /// Bytes of the data, or of its manifest (`true`).
    Data(Bytes, bool),
}

/// An awaited answer: the command expected, the object (empty for node-level answers), the
/// instance and, for data, the offset.
type WaitKey = (&'static str, ObjectKey, i64, i64);

/// The MQTT link of one ESS.
pub struct MqttLink {
    connection: Connection,
    node: Node,
    me: Destination,
    persistent: bool,
    /// Largest chunk this node serves per `getdata` (`MaxDataChunkSize`).
    max_chunk: u64,
    /// How long a request waits for its answer before it counts as a transport failure.
    answer_timeout: Duration,
    waiters: Mutex<HashMap<WaitKey, oneshot::Sender<Answer>>>,
    pushed: tokio::sync::Mutex<mpsc::Receiver<PollItem>>,
    push: mpsc::Sender<PollItem>,
    lost: Notify,
}

fn node_key() -> ObjectKey {
    ObjectKey::new("", "", "")
}

impl MqttLink {
    /// A link over `connection`; [`MqttLink::run`] must be spawned with the connection's
    /// incoming messages.
    /// `answer_timeout` is how long a request waits for its answer (`ResendInterval`: the
    /// original repeats an unanswered message at that cadence); a data chunk gets six times
    /// as long.
    pub fn new(
        connection: Connection,
        node: Node,
        me: Destination,
        persistent: bool,
        max_chunk: u64,
        answer_timeout: Duration,
    ) -> Arc<Self> {
        let (push, pushed) = mpsc::channel(1024);
        Arc::new(Self {
            connection,
            node,
            me,
            persistent,
            max_chunk,
            answer_timeout,
            waiters: Mutex::new(HashMap::new()),
            pushed: tokio::sync::Mutex::new(pushed),
            push,
            lost: Notify::new(),
        })
    }

    /// Handles incoming messages until the connection ends; tells the sync tasks to register
    /// again whenever the broker session is renewed.
    pub async fn run(self: Arc<Self>, mut incoming: mpsc::Receiver<Incoming>) {
        let watcher = self.clone();
        tokio::spawn(async move {
            loop {
                watcher.connection.session_renewed().await;
                if watcher.connection.sessions() > 1 {
                    watcher.lost.notify_one();
                }
            }
        });
        while let Some(message) = incoming.recv().await {
            match codec::decode(&message.payload, self.connection.largest_incoming_chunk()) {
                Ok(Message::Control(control)) => self.on_control(*control).await,
                Ok(Message::Data(chunk)) => self.on_data(chunk),
                Err(e) => tracing::warn!(topic = %message.topic, error = %e, "MQTT: dropping a message"),
            }
        }
    }

    fn key_of(&self, meta: &MetaData) -> ObjectKey {
        ObjectKey::new(&self.me.org, &meta.object_type, &meta.object_id)
    }

    /// Completes the request waiting for `key`; false when none waits.
    fn answer(&self, key: WaitKey, reply: Answer) -> bool {
        let waiter = self.waiters.lock().remove(&key);
        waiter.is_some_and(|w| w.send(reply).is_ok())
    }

    async fn on_control(self: &Arc<Self>, control: Control) {
        let key = self.key_of(&control.meta);
        let instance = control.meta.instance_id;
        match control.command.as_str() {
            "regack" => {
                self.answer(("register", node_key(), 0, 0), Answer::Ack);
            }
            "registerAsNew" => {
                if !self.answer(("register", node_key(), 0, 0), Answer::NotFound) {
                    // Unasked (after a ping): the CSS forgot this node; register again.
                    self.lost.notify_one();
                }
            }
            "ackresend" => {
                self.answer(("ackresend", node_key(), 0, 0), Answer::Ack);
            }
            "updated" => {
                self.answer(("updated", key, instance, 0), Answer::Ack);
            }
            "received" => {
                // For an own object without data the CSS answers `update` with `received`.
                self.answer(("updated", key, instance, 0), Answer::Ack);
                self.queue("received", control.meta).await;
            }
            "update" | "delete" | "consumed" | "deleted" => {
                let kind = control.command.clone();
                self.queue(&kind, control.meta).await;
            }
            "ackreceived" | "ackconsumed" | "ackDelete" | "ackDeleted" => {
                let expected = match control.command.as_str() {
                    "ackreceived" => "ackreceived",
                    "ackconsumed" => "ackconsumed",
                    "ackDelete" => "ackDelete",
                    _ => "ackDeleted",
                };
                self.answer((expected, key, instance, 0), Answer::Ack);
            }
            "getdata" => {
                let link = self.clone();
                let compress = self.compresses_for(&control);
                tokio::spawn(async move { link.serve_chunk(&control, compress).await });
            }
            "feedback" if control.feedback_from_origin && control.feedback_code == FEEDBACK_INVALID_OBJECT => {
                self.answer(("data", key, instance, control.offset), Answer::NotFound);
            }
            "feedback" => {
                tracing::warn!(%key, code = control.feedback_code, reason = %control.reason, "MQTT: the CSS reported an error");
            }
            other => tracing::debug!(command = other, "MQTT: message not handled by the ESS"),
        }
    }

    async fn queue(&self, kind: &str, meta: MetaData) {
        let item = PollItem {
            kind: kind.to_string(),
            meta,
        };
        if self.push.send(item).await.is_err() {
            tracing::debug!("MQTT: the poll task is gone");
        }
    }

    fn on_data(&self, chunk: ChunkMessage) {
        let key = ObjectKey::new(&self.me.org, &chunk.object_type, &chunk.object_id);
        let wait = ("data", key, chunk.instance_id, chunk.offset);
        // A chunk nobody waits for (a duplicate, or one for an abandoned instance) is dropped.
        self.answer(wait, Answer::Data(chunk.data, chunk.manifest));
    }

    /// Whether the answer to a `getdata` may be compressed: the CSS asked for it and this
    /// node takes part.
    fn compresses_for(&self, request: &Control) -> bool {
        self.node.settings().data_compression && compression::lists_zstd(&request.data_encoding)
    }

    /// Answers a `getdata` for an own object with the chunk at `offset`, or feedback code 5
    /// when that instance's data is not here.
    async fn serve_chunk(&self, request: &Control, compress: bool) {
        let (meta, offset) = (&request.meta, request.offset);
        let key = self.key_of(meta);
        let source = match self.node.origin_upload_source(&key, meta.instance_id).await {
            Ok(Some(source)) => source,
            Ok(None) | Err(_) => {
                let mut reply = Control::about("feedback", self.meta_for(&key, meta.instance_id, meta.data_id, true));
                reply.feedback_code = FEEDBACK_INVALID_OBJECT;
                reply.feedback_from_origin = true;
                reply.offset = offset;
                reply.reason = format!("{key} instance {} is not available", meta.instance_id);
                self.publish_control(&reply, false).await;
                return;
            }
        };
        let start = u64::try_from(offset).unwrap_or(0);
        let mut most = self.max_chunk;
        // A CSS that holds the bytes around a hole asks for the hole only.
        if let Ok(wanted @ 1..) = u64::try_from(request.data_length) {
            most = most.min(wanted);
        }
        let manifest = self.node.settings().delta_transfer && request.delta_manifest == crate::delta::FORMAT;
        let data = if manifest {
            self.node
                .own_manifest(&key, meta.instance_id)
                .await
                .map(|m| {
                    let from = usize::try_from(start).unwrap_or(usize::MAX).min(m.len());
                    let to = from
                        .saturating_add(usize::try_from(most).unwrap_or(usize::MAX))
                        .min(m.len());
                    m.slice(from..to)
                })
                .map_err(|e| e.to_string())
        } else {
            // A `sourceDataUri` file is confined and compared with what the PUT measured on
            // every read, as for HTTP uploads.
            let len = most.min(source.total.saturating_sub(start));
            self.read_chunk(&source.file, start, len).await
        };
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(%key, error = %e, "MQTT: reading a chunk failed");
                return;
            }
        };
        let multi_chunk = start > 0 || (data.len() as u64) < source.total;
        let chunk = ChunkMessage {
            org: key.org.clone(),
            object_type: key.object_type.clone(),
            object_id: key.object_id.clone(),
            offset,
            instance_id: meta.instance_id,
            data,
            manifest,
        };
        let topic = codec::from_ess_topic(&self.me.dest_type, &self.me.dest_id, multi_chunk);
        self.connection
            .publish(topic, codec::encode_data(&chunk, compress && !manifest))
            .await;
    }

    /// Metadata naming an object in a message of this node (see [`codec::node_meta`]).
    fn meta_for(&self, key: &ObjectKey, instance_id: i64, data_id: i64, own: bool) -> MetaData {
        codec::node_meta(&self.me, key, instance_id, data_id, own)
    }

    async fn publish_control(&self, message: &Control, leader: bool) {
        let topic = codec::from_ess_topic(&self.me.dest_type, &self.me.dest_id, leader);
        self.connection.publish(topic, codec::encode_control(message)).await;
    }

    /// Publishes `message` and waits for the answer named by `wait`. Nothing is sent before
    /// the broker connection (and with it the subscription for the answer) is up. A new
    /// broker session ends the wait at once: with QoS 0 and clean sessions, whatever was
    /// in flight when the connection dropped is lost, and the caller's retry should not
    /// have to wait for the timeout.
    async fn request(&self, message: &Control, leader: bool, wait: WaitKey, timeout: Duration) -> Option<Answer> {
        if tokio::time::timeout(timeout, self.connection.connected())
            .await
            .is_err()
        {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters.lock().insert(wait.clone(), sender);
        let renewed = self.connection.next_session();
        self.publish_control(message, leader).await;
        let reply = tokio::select! {
            reply = tokio::time::timeout(timeout, receiver) => reply.ok().and_then(Result::ok),
            _ = renewed => None,
        };
        if reply.is_none() {
            self.waiters.lock().remove(&wait);
        }
        reply
    }

    /// Publishes and waits for an acknowledgement; without one in time the request is worth
    /// another attempt (the original repeats unanswered messages).
    async fn acknowledged(&self, message: &Control, wait: WaitKey) -> Reply {
        match self.request(message, false, wait, self.answer_timeout).await {
            // Only a registration is answered so (`registerAsNew`).
            Some(Answer::NotFound) => Reply::UnknownNode,
            Some(_) => Reply::Accepted,
            None => self.unanswered(message),
        }
    }

    fn unanswered(&self, message: &Control) -> Reply {
        if self.connection.is_connected() {
            Reply::RetryLater(format!("no answer to {} from the CSS", message.command))
        } else {
            Reply::RetryLater("the MQTT broker is not connected".into())
        }
    }

    /// Reads `len` bytes at `start` of an own object's data.
    async fn read_chunk(&self, file: &crate::engine::DataFile, start: u64, len: u64) -> Result<Bytes, String> {
        let (source, on_disk) = self.node.open_data_file(file).await.map_err(|e| e.to_string())?;
        if on_disk < start + len {
            return Err(format!("the data file has {on_disk} bytes, fewer than the object"));
        }
        source.read_range(start, len).await.map_err(|e| e.to_string())
    }

    fn node_message(&self, command: &str) -> Control {
        Control::from_node(command, self.me.clone(), self.persistent)
    }
}

#[async_trait]
impl EssLink for MqttLink {
    fn persistent(&self) -> bool {
        self.persistent
    }

    fn notification_delivery(&self) -> NotificationDelivery {
        NotificationDelivery::Once
    }

    /// The CSS pulls an ESS's data with `getdata` (spec §4.4); the protocol has no push.
    fn data_push(&self) -> Option<&dyn DataPush> {
        None
    }

    /// The protocol has no unregistration message: the CSS forgets a silent node by itself.
    fn unregistration(&self) -> Option<&dyn Unregistration> {
        None
    }

    async fn session_lost(&self) {
        self.lost.notified().await
    }

    async fn register(&self, as_new: bool) -> Reply {
        let command = if as_new { "registerNew" } else { "register" };
        self.acknowledged(&self.node_message(command), ("register", node_key(), 0, 0))
            .await
    }

    async fn resend(&self) -> Reply {
        let mut message = self.node_message("resend");
        message.destination.code_version.clear();
        message.persistent = false;
        self.acknowledged(&message, ("ackresend", node_key(), 0, 0)).await
    }

    async fn ping(&self) -> Reply {
        // A known node gets no answer; an unknown one gets `registerAsNew`, handled when it
        // arrives.
        self.publish_control(&self.node_message("ping"), false).await;
        Reply::Accepted
    }

    async fn poll(&self, wait_secs: u16) -> Result<PollAnswer, Reply> {
        let mut pushed = self.pushed.lock().await;
        let wait = Duration::from_secs(u64::from(wait_secs.max(1)));
        let mut items = Vec::new();
        if let Ok(Some(first)) = tokio::time::timeout(wait, pushed.recv()).await {
            items.push(first);
            while let Ok(more) = pushed.try_recv() {
                items.push(more);
            }
        }
        Ok(PollAnswer { items, long_poll: true })
    }

    async fn action(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        action: Action,
        body: Option<Vec<u8>>,
    ) -> Reply {
        // Acknowledgements of the CSS's reports on own objects name this node as origin;
        // everything else concerns a copy received from the CSS.
        let own = matches!(action, Action::AckReceived | Action::AckConsumed | Action::AckDeleted);
        let mut message = Control::about(action.as_str(), self.meta_for(key, instance_id, data_id, own));
        if action == Action::Feedback {
            let feedback: Feedback = body
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            message.feedback_code = feedback.code;
            message.retry = feedback.retry_interval;
            message.reason = feedback.reason;
        }
        let answer = match action {
            Action::Received => "ackreceived",
            Action::Consumed => "ackconsumed",
            _ => {
                self.publish_control(&message, false).await;
                return Reply::Accepted;
            }
        };
        self.acknowledged(&message, (answer, key.clone(), instance_id, 0)).await
    }

    async fn deleted(&self, meta: &MetaData) -> Reply {
        let key = self.key_of(meta);
        let message = Control::about("deleted", self.meta_for(&key, meta.instance_id, meta.data_id, false));
        self.acknowledged(&message, ("ackDeleted", key.clone(), meta.instance_id, 0))
            .await
    }

    async fn feedback(&self, key: &ObjectKey, instance_id: i64, data_id: i64, feedback: &Feedback) -> Reply {
        let mut message = Control::about("feedback", self.meta_for(key, instance_id, data_id, false));
        message.feedback_code = feedback.code;
        message.retry = feedback.retry_interval;
        message.reason = feedback.reason.clone();
        self.publish_control(&message, false).await;
        Reply::Accepted
    }

    async fn action_with_meta(&self, key: &ObjectKey, meta: &MetaData, action: Action) -> Reply {
        let mut meta = meta.clone();
        meta.origin_type = self.me.dest_type.clone();
        meta.origin_id = self.me.dest_id.clone();
        let instance = meta.instance_id;
        // Multi-chunk objects go to the CSS instance that leads (spec §4.2).
        let leader = action == Action::Update && meta.object_size > i64::from(meta.chunk_size);
        let (message, answer) = match action {
            Action::Update => (Control::about("update", meta), "updated"),
            _ => (Control::about(action.as_str(), meta), "ackDelete"),
        };
        match self
            .request(
                &message,
                leader,
                (answer, key.clone(), instance, 0),
                self.answer_timeout,
            )
            .await
        {
            Some(_) => Reply::Accepted,
            None => self.unanswered(&message),
        }
    }

    async fn data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64)>,
        manifest: bool,
    ) -> Result<DataChunk, Reply> {
        let offset = range.map_or(0, |(start, _)| start);
        let mut message = Control::about("getdata", self.meta_for(key, instance_id, data_id, false));
        message.offset = i64::try_from(offset).unwrap_or(0);
        if self.node.settings().data_compression {
            message.data_encoding = compression::ZSTD.to_string();
        }
        if manifest {
            message.delta_manifest = crate::delta::FORMAT.to_string();
        } else if let Some((start, end)) = range.filter(|_| self.node.settings().delta_transfer) {
            // A hole between parts already here may be shorter than a chunk.
            message.data_length = i64::try_from(end - start + 1).unwrap_or(0);
        }
        let wait = ("data", key.clone(), instance_id, message.offset);
        // A chunk may be megabytes: twice the answer time; a lost one is asked for again.
        match self.request(&message, false, wait, self.answer_timeout * 2).await {
            Some(Answer::Data(bytes, manifest)) => Ok(DataChunk {
                start: offset,
                body: futures_util::stream::iter([Ok(bytes)]).boxed(),
                manifest,
            }),
            Some(Answer::NotFound) => Err(Reply::UnknownObject),
            Some(Answer::Ack) | None => Err(Reply::RetryLater(format!("no data for {key} at offset {offset}"))),
        }
    }
}
