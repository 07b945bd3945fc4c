//! The data of objects over MQTT on the CSS: pulling an edge node's object chunk by chunk
//! with `getdata`, and answering the nodes' `getdata` for the CSS's own objects, serving
//! again what a broker reconnection may have lost.

use super::{CssMqtt, ServedChunk, FEEDBACK_INVALID_OBJECT};
use crate::auth::edge::NodeAddress;
use crate::engine::{ContentRange, EngineError, RangeRequest, RangedRead, ReceptionScope};
use crate::model::{MetaData, ObjectKey};
use crate::transport::compression;
use crate::transport::mqtt::codec::{self, Control, DataChunk};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// Attempts to get one chunk before the pull is left to the node's next `update`.
const CHUNK_ATTEMPTS: u32 = 5;

/// Chunks served lately that are sent again after a reconnection, at most.
const SERVED_KEPT: usize = 16;

impl CssMqtt {
    /// Serves again the chunks sent on an earlier session within the time a node waits for
    /// one: a chunk published just before the connection dropped may never have reached the
    /// broker (QoS 0), and its node, whose own session went on, would wait for it until its
    /// timeout. A chunk the node already has is dropped by it.
    pub(super) fn serve_again_what_the_last_session_lost(&self) {
        let session = self.connection.sessions();
        let window = self.node_chunk_wait;
        let lost: Vec<ServedChunk> = {
            let mut served = self.served_lately.lock();
            let (earlier, current): (Vec<_>, Vec<_>) = served.drain(..).partition(|s| s.session < session);
            served.extend(current);
            earlier.into_iter().filter(|s| s.at.elapsed() < window).collect()
        };
        if lost.is_empty() {
            return;
        }
        tracing::debug!(
            chunks = lost.len(),
            "MQTT: serving again chunks sent before the reconnection"
        );
        for chunk in lost {
            self.chunk_requests.push(chunk.node, chunk.request);
        }
    }

    /// Serves the nodes' queued `getdata`, one after the other.
    pub(super) async fn serve_queued_chunks(self: Arc<Self>) {
        loop {
            let (node, request) = self.chunk_requests.pop().await;
            if let Err(e) = self.serve_chunk(&node, &request).await {
                tracing::warn!(org = %node.org, dest_type = %node.dest_type, dest_id = %node.dest_id, error = %e, "MQTT: serving a chunk failed");
            }
        }
    }

    /// Every `ResendInterval`: pulls that stopped (lost chunks, a CSS restart, a broker
    /// outage) start again from the first missing byte.
    pub(super) async fn resume_stalled_pulls(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = self.resume_pulls(ReceptionScope::Stalled).await {
                tracing::warn!(error = %e, "MQTT: looking for stalled transfers failed");
            }
        }
    }

    /// Pulls the data of an edge node's object unless a pull of that instance runs already.
    pub(super) fn start_pull(self: &Arc<Self>, node: &NodeAddress, key: &ObjectKey, meta: &MetaData) {
        let pull = (key.clone(), meta.instance_id);
        if !self.pulling.lock().insert(pull.clone()) {
            return;
        }
        let (css, node, key, meta) = (self.clone(), node.clone(), key.clone(), meta.clone());
        tokio::spawn(async move {
            css.pull(&node, &key, &meta).await;
            css.pulling.lock().remove(&pull);
        });
    }

    /// Starts the pulls that are owed and not running (spec §6, §7.2): copies of MQTT nodes'
    /// objects still waiting for their data, of one node (it registered: a pull that gave
    /// up while it was away goes on), of every node (at start-up: the pulls of a previous
    /// run), or those that stalled.
    pub(super) async fn resume_pulls(self: &Arc<Self>, scope: ReceptionScope<'_>) -> Result<(), EngineError> {
        for (node, meta) in self.node.unfinished_receptions("mqtt", scope).await? {
            let key = ObjectKey::new(&node.org, &meta.object_type, &meta.object_id);
            if !self.is_pulling(&key, meta.instance_id) {
                tracing::info!(%key, instance = meta.instance_id, "MQTT: resuming the pull of an edge node's object");
            }
            self.start_pull(&node, &key, &meta);
        }
        Ok(())
    }

    fn is_pulling(&self, key: &ObjectKey, instance: i64) -> bool {
        self.pulling.lock().contains(&(key.clone(), instance))
    }

    /// Pulls an edge node's object data chunk by chunk with `getdata` (spec §4.6), from the
    /// first byte the CSS does not have yet; a chunk that does not come is asked for again.
    #[tracing::instrument(name = "pull", skip_all, fields(%key, instance = meta.instance_id))]
    async fn pull(&self, node: &NodeAddress, key: &ObjectKey, meta: &MetaData) {
        let total = u64::try_from(meta.object_size).unwrap_or(0);
        let mut offset = match self.node.received_ranges(key, total).await {
            Ok(ranges) => first_missing(&ranges),
            Err(_) => 0,
        };
        let mut failures = 0;
        loop {
            let requested = i64::try_from(offset).unwrap_or(0);
            let Some(data) = self.request_chunk(node, key, meta, requested).await else {
                failures += 1;
                if failures >= CHUNK_ATTEMPTS {
                    tracing::warn!(%key, offset, "MQTT: no data from the edge node; waiting for its next update");
                    return;
                }
                continue;
            };
            failures = 0;
            let len = data.len() as u64;
            if len == 0 && total > 0 {
                return;
            }
            let range = (total > 0).then(|| ContentRange {
                start: offset,
                end: offset + len - 1,
                total,
            });
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(data)]);
            match self
                .node
                .spi_receive_data(node, key, meta.instance_id, range, body)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%key, offset, error = %e, "MQTT: storing a chunk failed");
                    let mut feedback = Control::about("feedback", meta.clone());
                    feedback.feedback_code = 1;
                    feedback.reason = e.to_string();
                    self.send(node, &feedback).await;
                    return;
                }
            }
            offset += len;
            if offset >= total {
                return;
            }
        }
    }

    async fn request_chunk(&self, node: &NodeAddress, key: &ObjectKey, meta: &MetaData, offset: i64) -> Option<Bytes> {
        let (sender, receiver) = oneshot::channel();
        let wait = (key.clone(), meta.instance_id, offset);
        self.chunks.lock().insert(wait.clone(), sender);
        let mut getdata = Control::about("getdata", meta.clone());
        getdata.offset = offset;
        if self.node.settings().data_compression {
            getdata.data_encoding = compression::ZSTD.to_string();
        }
        // The request or its answer is lost when either side's broker session ends (QoS 0,
        // clean sessions): ask again as soon as the CSS reconnected or the node registered
        // again, rather than after the timeout.
        let renewed = self.connection.next_session();
        let mut registrations = self.registrations.subscribe();
        let registered = async {
            loop {
                match registrations.recv().await {
                    Ok(registered) if registered == *node => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        };
        self.send(node, &getdata).await;
        let data = tokio::select! {
            data = tokio::time::timeout(self.chunk_timeout, receiver) => data.ok().and_then(Result::ok),
            _ = renewed => None,
            _ = registered => None,
        };
        if data.is_none() {
            self.chunks.lock().remove(&wait);
        }
        data
    }

    pub(super) fn on_data(&self, chunk: DataChunk) {
        let key = ObjectKey::new(&chunk.org, &chunk.object_type, &chunk.object_id);
        let waiter = self.chunks.lock().remove(&(key, chunk.instance_id, chunk.offset));
        // A chunk nobody waits for (a duplicate, an abandoned instance) is dropped.
        if let Some(waiter) = waiter {
            let _ = waiter.send(chunk.data);
        }
    }

    /// Answers a node's `getdata` for one of the CSS's objects with the chunk at the offset,
    /// or with feedback code 5 when that instance cannot be served. The chunk is read once
    /// a ranged-download slot is free, and the slot is held until the chunk is queued on the
    /// broker connection: the chunks in memory are bounded by the slots.
    async fn serve_chunk(&self, node: &NodeAddress, control: &Control) -> Result<(), EngineError> {
        self.require_registered(node).await?;
        let meta = &control.meta;
        let key = ObjectKey::new(&node.org, &meta.object_type, &meta.object_id);
        let start = u64::try_from(control.offset).unwrap_or(0);
        // The receiver asks for an offset; a chunk is at most what this node sends per
        // message (`MaxDataChunkSize`, recorded as the object's chunk size).
        let chunk = u64::try_from(self.node.settings().chunk_size)
            .ok()
            .filter(|c| *c > 0)
            .unwrap_or(u64::MAX);
        let range = RangeRequest::FromTo(start, start.saturating_add(chunk - 1));
        let served = self
            .node
            .spi_data(node, &key, meta.instance_id, Some(range), RangedRead::Queued)
            .await;
        let stream = match served {
            Ok(stream) => stream,
            // Code 5 tells the node the object is gone: only for what is gone (or replaced
            // by another instance). After a passing failure the node asks again.
            Err(e) if !matches!(e, EngineError::NotFound | EngineError::Conflict(_)) => return Err(e),
            Err(e) => {
                tracing::debug!(%key, error = %e, "MQTT: a chunk cannot be served");
                let mut feedback = Control::about("feedback", meta.clone());
                feedback.feedback_code = FEEDBACK_INVALID_OBJECT;
                feedback.feedback_from_origin = true;
                feedback.offset = control.offset;
                feedback.reason = e.to_string();
                self.send(node, &feedback).await;
                return Ok(());
            }
        };
        let data = stream.read_all().await?;
        // The chunk as read is dropped once encoded: while the publish waits for room in
        // the connection's queue, only the encoded copy is held.
        let compress = self.node.settings().data_compression && compression::lists_zstd(&control.data_encoding);
        let payload = codec::encode_data(
            &DataChunk {
                org: key.org.clone(),
                object_type: key.object_type.clone(),
                object_id: key.object_id.clone(),
                offset: control.offset,
                instance_id: meta.instance_id,
                data,
            },
            compress,
        );
        let topic = codec::to_ess_topic(&node.dest_type, &node.dest_id);
        let session = self.connection.sessions();
        self.connection.publish(topic, payload).await;
        let mut served = self.served_lately.lock();
        if served.len() == SERVED_KEPT {
            served.pop_front();
        }
        served.push_back(ServedChunk {
            session,
            at: crate::clock::Instant::now(),
            node: node.clone(),
            request: control.clone(),
        });
        Ok(())
    }
}

/// The first byte not covered by the received ranges (sorted, merged).
fn first_missing(ranges: &[(u64, u64)]) -> u64 {
    match ranges.first() {
        Some((0, end)) => *end,
        _ => 0,
    }
}
