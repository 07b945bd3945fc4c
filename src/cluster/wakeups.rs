//! Wake-ups between instances. A long poll waits in the instance the edge node reached, but
//! the commit that ends it may happen in another one: every node with news is announced to
//! the peers through PostgreSQL `NOTIFY`, and each instance wakes its own polls waiting for
//! it. A lost notification connection is opened again, and then every waiting poll is woken
//! once, since announcements may have been missed meanwhile.

use crate::engine::Node;
use crate::model::sync::Remote;
use crate::store::postgres::PostgresStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// PostgreSQL refuses payloads of 8000 bytes and more.
const PAYLOAD_LIMIT: usize = 7000;
/// Pause before opening the notification connection again.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// One announcement: the nodes that have news, and who sent it (an instance ignores its own).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Announcement {
    from: String,
    /// (org, destination type, destination ID) of each node.
    nodes: Vec<(String, String, String)>,
}

/// Starts announcing this instance's wake-ups to its peers and listening for theirs.
pub fn spawn(
    node: &Node,
    store: Arc<PostgresStore>,
    holder: String,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let (announce, announcements) = mpsc::unbounded_channel();
    node.announce_wakeups_to(announce);
    let stop = shutdown.clone();
    let (sender, from) = (store.clone(), holder.clone());
    tracker.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = send(sender, from, announcements) => {}
        }
    });
    let (node, stop) = (node.clone(), shutdown.clone());
    tracker.spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = listen(node, store, holder) => {}
        }
    });
}

/// Sends what accumulated while the previous announcement was on its way in one go.
async fn send(store: Arc<PostgresStore>, from: String, mut announcements: mpsc::UnboundedReceiver<(String, Remote)>) {
    let mut failures = 0u32;
    while let Some(first) = announcements.recv().await {
        let mut nodes = BTreeSet::new();
        nodes.insert(first);
        while let Ok(next) = announcements.try_recv() {
            nodes.insert(next);
        }
        for payload in payloads(&from, nodes) {
            match store.send_wakeup(&payload).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    // The peers' polls end at their deadline and the nodes poll again: late,
                    // never lost.
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%error, "cannot announce news to the other instances");
                    }
                }
            }
        }
    }
}

/// The announcements for `nodes`, each below PostgreSQL's payload limit.
fn payloads(from: &str, nodes: BTreeSet<(String, Remote)>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = Announcement {
        from: from.to_string(),
        nodes: Vec::new(),
    };
    let mut size = from.len() + 32;
    for (org, remote) in nodes {
        let entry_size = serde_json::to_string(&(&org, &remote.dest_type, &remote.dest_id)).map_or(0, |e| e.len()) + 1;
        if !current.nodes.is_empty() && size + entry_size > PAYLOAD_LIMIT {
            payloads.extend(serde_json::to_string(&current).ok());
            current.nodes.clear();
            size = from.len() + 32;
        }
        size += entry_size;
        current.nodes.push((org, remote.dest_type, remote.dest_id));
    }
    if !current.nodes.is_empty() {
        payloads.extend(serde_json::to_string(&current).ok());
    }
    payloads
}

/// Wakes this instance's polls for the nodes its peers announce, reconnecting as needed.
async fn listen(node: Node, store: Arc<PostgresStore>, holder: String) {
    let mut failures = 0u32;
    loop {
        match store.listen_for_wakeups().await {
            Ok(mut payloads) => {
                if failures > 0 {
                    tracing::info!("listening for the other instances' news again");
                }
                failures = 0;
                node.wake_all_polls();
                while let Some(payload) = payloads.recv().await {
                    match serde_json::from_str::<Announcement>(&payload) {
                        Ok(announcement) if announcement.from != holder => {
                            for (org, dest_type, dest_id) in announcement.nodes {
                                node.wake_polls_of(&org, &Remote { dest_type, dest_id });
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::debug!(%error, "ignoring a malformed wake-up announcement"),
                    }
                }
                tracing::warn!("the connection for the other instances' news was lost; reconnecting");
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(%error, "cannot listen for the other instances' news; retrying");
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_nodes_are_split_into_payloads_under_the_limit_and_none_is_lost() {
        let nodes: BTreeSet<(String, Remote)> = (0..2000)
            .map(|i| {
                let remote = Remote {
                    dest_type: "gateway".into(),
                    dest_id: format!("node-{i:05}"),
                };
                ("org1".to_string(), remote)
            })
            .collect();
        let payloads = payloads("css-a", nodes.clone());
        assert!(payloads.len() > 1);
        let mut seen = BTreeSet::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{} bytes", payload.len());
            let announcement: Announcement = serde_json::from_str(payload).unwrap();
            assert_eq!(announcement.from, "css-a");
            for (org, dest_type, dest_id) in announcement.nodes {
                seen.insert((org, Remote { dest_type, dest_id }));
            }
        }
        assert_eq!(seen, nodes);
    }
}
