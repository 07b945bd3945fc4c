//! Where a `kill -9` trial kills a node: at a point of the request bodies an application
//! streams to it, or once a proxy relayed so many bytes of a transfer between nodes.

use super::trials::SplitMix64;
use super::TestNode;
use bytes::Bytes;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

/// Bytes fed to a streamed upload at a time.
pub const PIECE: usize = 16 * 1024;
/// How long a proxy may take to relay the bytes a kill waits for.
const RELAY_DEADLINE: Duration = Duration::from_secs(30);

/// Whether a finished request was acknowledged with a 2xx.
pub async fn acknowledged(task: JoinHandle<Result<reqwest::Response, reqwest::Error>>) -> bool {
    matches!(task.await.expect("request task"), Ok(r) if r.status().is_success())
}

/// Where in a run of uploads the node is killed.
#[derive(Debug, Clone, Copy)]
pub enum KillPoint {
    /// Once this many bytes of the bodies were handed to the client.
    Fed(u64),
    /// This long after the last body ended: around the answers, or during the transfers to
    /// other nodes that follow.
    AfterBodies(Duration),
}

impl KillPoint {
    /// A point within `total` bytes of bodies, or (a quarter of the time) after them.
    pub fn draw(rng: &mut SplitMix64, total: u64) -> Self {
        let at = rng.below(total + total / 3 + 1);
        if at < total {
            Self::Fed(at)
        } else {
            Self::AfterBodies(Duration::from_micros(rng.below(100_000)))
        }
    }
}

/// One body being streamed to a node.
pub struct Feed {
    sender: Option<Sender<Bytes>>,
    data: Vec<u8>,
    sent: usize,
}

impl Feed {
    pub fn new(sender: Sender<Bytes>, data: Vec<u8>) -> Self {
        Self {
            sender: Some(sender),
            data,
            sent: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Feeds `feeds` piece by piece, in turns, and kills `node` at `point`. Senders are dropped as
/// their bodies end, so the requests complete unless the kill comes first.
pub async fn feed_and_kill(node: &mut TestNode, feeds: &mut [Feed], point: KillPoint) {
    let mut fed: u64 = 0;
    loop {
        let mut progressed = false;
        for feed in feeds.iter_mut() {
            if matches!(point, KillPoint::Fed(at) if fed >= at) {
                node.kill9();
                return;
            }
            let Some(sender) = &feed.sender else { continue };
            let end = (feed.sent + PIECE).min(feed.data.len());
            // A request that failed already no longer takes its body.
            let _ = sender.send(Bytes::copy_from_slice(&feed.data[feed.sent..end])).await;
            fed += (end - feed.sent) as u64;
            feed.sent = end;
            if feed.sent == feed.data.len() {
                feed.sender = None;
            }
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    if let KillPoint::AfterBodies(delay) = point {
        tokio::time::sleep(delay).await;
    }
    node.kill9();
}

/// Waits (within [`RELAY_DEADLINE`]) until `count` went `bytes` past `from`.
pub async fn wait_relayed(count: impl Fn() -> u64, from: u64, bytes: u64) {
    let deadline = Instant::now() + RELAY_DEADLINE;
    while count().saturating_sub(from) < bytes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Feeds the bodies whole (without killing), then kills `node` once `count` went `bytes`
/// past `from`.
pub async fn feed_and_kill_when(
    node: &mut TestNode,
    feeds: &mut [Feed],
    count: impl Fn() -> u64,
    from: u64,
    bytes: u64,
) {
    for feed in feeds.iter_mut() {
        if let Some(sender) = feed.sender.take() {
            for piece in feed.data.chunks(PIECE) {
                let _ = sender.send(Bytes::copy_from_slice(piece)).await;
            }
        }
    }
    wait_relayed(count, from, bytes).await;
    node.kill9();
}
