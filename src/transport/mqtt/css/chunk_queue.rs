//! The nodes' `getdata` requests for the CSS's objects, waiting to be served. A fleet asks
//! for its chunks all at once when an object is published to it; only as many chunks as
//! there are ranged-download slots are read at a time, and the others wait here, each as
//! the request it is (its node and message), not as a task: however many nodes ask at once,
//! what waits costs a request's size each, and nothing of the data. A request that is
//! already waiting is not queued again: a node whose wait for its chunk ran out repeats it,
//! and the chunk served for the first answers both.

use crate::auth::edge::NodeAddress;
use crate::transport::mqtt::codec::Control;
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use tokio::sync::Notify;

/// What makes two requests the same: the node, the object, the instance and the offset.
type RequestKey = (NodeAddress, String, String, i64, i64);

fn key_of(node: &NodeAddress, request: &Control) -> RequestKey {
    (
        node.clone(),
        request.meta.object_type.clone(),
        request.meta.object_id.clone(),
        request.meta.instance_id,
        request.offset,
    )
}

/// Requests waiting, in the order they came.
#[derive(Default)]
pub(super) struct ChunkQueue {
    waiting: Mutex<Waiting>,
    pushed: Notify,
}

#[derive(Default)]
struct Waiting {
    order: VecDeque<(NodeAddress, Control)>,
    keys: HashSet<RequestKey>,
}

impl ChunkQueue {
    /// Queues a node's request unless the same one waits already; false then.
    pub(super) fn push(&self, node: NodeAddress, request: Control) -> bool {
        let mut waiting = self.waiting.lock();
        if !waiting.keys.insert(key_of(&node, &request)) {
            return false;
        }
        waiting.order.push_back((node, request));
        drop(waiting);
        self.pushed.notify_one();
        true
    }

    /// The oldest request, when there is one.
    pub(super) async fn pop(&self) -> (NodeAddress, Control) {
        loop {
            let pushed = self.pushed.notified();
            {
                let mut waiting = self.waiting.lock();
                if let Some((node, request)) = waiting.order.pop_front() {
                    waiting.keys.remove(&key_of(&node, &request));
                    // A push wakes one server; the others may have missed it meanwhile.
                    if !waiting.order.is_empty() {
                        self.pushed.notify_one();
                    }
                    return (node, request);
                }
            }
            pushed.await;
        }
    }

    /// Requests waiting now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetaData;
    use std::sync::Arc;
    use std::time::Duration;

    fn node(id: &str) -> NodeAddress {
        NodeAddress {
            org: "org".into(),
            dest_type: "edge".into(),
            dest_id: id.into(),
        }
    }

    fn getdata(offset: i64) -> Control {
        let meta = MetaData {
            object_type: "model".into(),
            object_id: "m1".into(),
            instance_id: 7,
            ..MetaData::default()
        };
        Control {
            offset,
            ..Control::about("getdata", meta)
        }
    }

    #[tokio::test]
    async fn requests_are_served_in_order_and_a_repeated_one_waits_once() {
        let queue = ChunkQueue::default();
        assert!(queue.push(node("n1"), getdata(0)));
        assert!(queue.push(node("n2"), getdata(0)));
        assert!(!queue.push(node("n1"), getdata(0)), "the same request queued twice");
        assert!(queue.push(node("n1"), getdata(262_144)));
        assert_eq!(queue.len(), 3);
        let served: Vec<(String, i64)> = [queue.pop().await, queue.pop().await, queue.pop().await]
            .into_iter()
            .map(|(node, request)| (node.dest_id, request.offset))
            .collect();
        assert_eq!(served, [("n1".into(), 0), ("n2".into(), 0), ("n1".into(), 262_144)]);
        assert!(queue.push(node("n1"), getdata(0)), "a request served may come again");
    }

    #[tokio::test]
    async fn every_waiting_server_gets_a_request() {
        let queue = Arc::new(ChunkQueue::default());
        let servers: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.pop().await.1.offset })
            })
            .collect();
        tokio::task::yield_now().await;
        for offset in 0..4 {
            queue.push(node("n1"), getdata(offset));
        }
        let mut offsets = Vec::new();
        for server in servers {
            let offset = tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .expect("every server is woken")
                .expect("server");
            offsets.push(offset);
        }
        offsets.sort_unstable();
        assert_eq!(offsets, [0, 1, 2, 3]);
    }
}
