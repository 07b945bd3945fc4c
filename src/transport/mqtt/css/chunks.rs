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
    /// When the CSS holds the previous version, the first request asks for the manifest of
    /// the new data instead (see [`crate::delta`]); a node that takes part answers with it,
    /// the parts found in the previous version are copied, and only the holes are asked for.
    #[tracing::instrument(name = "pull", skip_all, fields(%key, instance = meta.instance_id))]
    async fn pull(&self, node: &NodeAddress, key: &ObjectKey, meta: &MetaData) {
        let total = u64::try_from(meta.object_size).unwrap_or(0);
        let mut received = self.node.received_ranges(key, total).await.unwrap_or_default();
        let from_previous = self.node.settings().delta_transfer && received.is_empty() && self.node.has_delta_base(key);
        let mut manifest: Option<Vec<u8>> = from_previous.then(Vec::new);
        let mut failures = 0;
        loop {
            let (offset, length) = match &manifest {
                Some(bytes) => (bytes.len() as u64, 0),
                None => next_hole(&received, total),
            };
            let requested = i64::try_from(offset).unwrap_or(0);
            let asking = manifest.is_some();
            let Some((data, is_manifest)) = self.request_chunk(node, key, meta, requested, length, asking).await else {
                failures += 1;
                if failures >= CHUNK_ATTEMPTS {
                    tracing::warn!(%key, offset, "MQTT: no data from the edge node; waiting for its next update");
                    return;
                }
                continue;
            };
            failures = 0;
            if let Some(bytes) = manifest.as_mut() {
                if is_manifest {
                    bytes.extend_from_slice(&data);
                    let Some(whole) = crate::delta::manifest_len(bytes) else {
                        continue;
                    };
                    if (bytes.len() as u64) < whole && bytes.len() as u64 <= crate::delta::largest_manifest(total) {
                        continue;
                    }
                    match self.node.spi_receive_manifest(node, key, meta.instance_id, bytes).await {
                        Ok(holes) if holes.is_empty() => return,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "MQTT: pulling the whole data instead of its changes");
                            self.node.release_delta_base(key).await;
                        }
                    }
                    manifest = None;
                    received = self.node.received_ranges(key, total).await.unwrap_or_default();
                    continue;
                }
                // A node that does not take part sent the data asked for at offset 0.
                manifest = None;
                self.node.release_delta_base(key).await;
            } else if is_manifest {
                continue;
            }
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
            // Complete (the copy is verified and done) or gone: the pull ends.
            match self.node.awaits_data(key, meta.instance_id).await {
                Ok(true) => received = self.node.received_ranges(key, total).await.unwrap_or_default(),
                _ => return,
            }
        }
    }

    /// Asks a node for the chunk at `offset` (at most `length` bytes, 0 for a whole chunk),
    /// or for its manifest's bytes from `offset`; the bytes, and whether they are the
    /// manifest's.
    async fn request_chunk(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        meta: &MetaData,
        offset: i64,
        length: u64,
        manifest: bool,
    ) -> Option<(Bytes, bool)> {
        let (sender, receiver) = oneshot::channel();
        let wait = (key.clone(), meta.instance_id, offset);
        self.chunks.lock().insert(wait.clone(), sender);
        let mut getdata = Control::about("getdata", meta.clone());
        getdata.offset = offset;
        getdata.data_length = i64::try_from(length).unwrap_or(0);
        if manifest {
            getdata.delta_manifest = crate::delta::FORMAT.to_string();
        }
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
            let _ = waiter.send((chunk.data, chunk.manifest));
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
        let mut chunk = u64::try_from(self.node.settings().chunk_size)
            .ok()
            .filter(|c| *c > 0)
            .unwrap_or(u64::MAX);
        // A receiver that holds the bytes around a hole asks for the hole only.
        if let Ok(wanted @ 1..) = u64::try_from(control.data_length) {
            chunk = chunk.min(wanted);
        }
        let manifest = self.node.settings().delta_transfer && control.delta_manifest == crate::delta::FORMAT;
        let served = if manifest {
            self.node
                .spi_manifest(node, &key, meta.instance_id, RangedRead::Queued)
                .await
                .map(|manifest| page_of(&manifest, start, chunk))
        } else {
            let range = RangeRequest::FromTo(start, start.saturating_add(chunk - 1));
            match self
                .node
                .spi_data(node, &key, meta.instance_id, Some(range), RangedRead::Queued)
                .await
            {
                Ok(stream) => stream.read_all().await.map_err(EngineError::from),
                Err(e) => Err(e),
            }
        };
        let data = match served {
            Ok(data) => data,
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
                manifest,
            },
            // A manifest is hashes: it does not compress.
            compress && !manifest,
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

/// The part of a manifest a `getdata` asks for: at most `chunk` bytes from `start`.
fn page_of(manifest: &Bytes, start: u64, chunk: u64) -> Bytes {
    let len = manifest.len() as u64;
    let start = start.min(len);
    manifest.slice(start as usize..start.saturating_add(chunk).min(len) as usize)
}

/// The first byte not covered by the received ranges (sorted, merged), and the length of
/// the hole it starts when bytes after it are in (copied from a previous version); 0 when
/// everything after it is missing, which asks for a whole chunk as the original does.
fn next_hole(ranges: &[(u64, u64)], total: u64) -> (u64, u64) {
    let first = match ranges.first() {
        Some((0, end)) => *end,
        _ => 0,
    };
    let hole = ranges
        .iter()
        .map(|r| r.0)
        .find(|start| *start > first)
        .map_or(0, |next| next - first);
    (first.min(total), hole)
}

#[cfg(test)]
mod tests {
    #[test]
    fn holes_are_asked_for_exactly_and_the_rest_by_whole_chunks() {
        assert_eq!(super::next_hole(&[], 100), (0, 0));
        assert_eq!(super::next_hole(&[(0, 40)], 100), (40, 0));
        assert_eq!(super::next_hole(&[(0, 40), (60, 100)], 100), (40, 20));
        assert_eq!(super::next_hole(&[(30, 100)], 100), (0, 30));
    }
}
