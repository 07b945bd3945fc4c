//! What the fleet status page shows: objects with their destinations counted per delivery
//! state, one object's destinations, and the nodes with how recently they were heard from.
//! Every view is one page, read with the same access rules as the API's listings.

use super::spi::remote_of;
use super::{EngineError, EngineResult, Node};
use crate::auth::edge::NodeAddress;
use crate::auth::Identity;
use crate::clock::now_secs;
use crate::model::sync::Remote;
use crate::model::{DeliveryStatus, Destination, ObjectKey, ObjectRecord, ObjectStatus, Role};
use crate::store::fleet::{DeliveryRow, PageRequest, Paged};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// How long a node may stay silent and still count as online, then as late; beyond both it
/// is offline. Set from the polling and ping intervals the nodes are configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkWindows {
    pub online_secs: i64,
    pub late_secs: i64,
}

impl LinkWindows {
    /// A node polling over HTTP is heard at least once per long poll plus polling interval;
    /// every node pings once per `ping_interval_hours`. Twice each leaves room for one miss.
    pub fn from_intervals(polling_interval_secs: u16, ping_interval_hours: i16, longest_poll_secs: u64) -> Self {
        let poll_cycle = i64::from(polling_interval_secs) + i64::try_from(longest_poll_secs).unwrap_or(i64::MAX / 4);
        let online_secs = 2 * poll_cycle;
        Self {
            online_secs,
            late_secs: (2 * 3600 * i64::from(ping_interval_hours.max(1))).max(online_secs),
        }
    }

    /// The state of a node last heard from at `last_heard` (seconds since the epoch).
    pub fn state(&self, last_heard: i64, now: i64) -> LinkState {
        let silence = now.saturating_sub(last_heard);
        if silence <= self.online_secs {
            LinkState::Online
        } else if silence <= self.late_secs {
            LinkState::Late
        } else {
            LinkState::Offline
        }
    }
}

/// A node's link as the CSS sees it, from the time it was last heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Online,
    Late,
    Offline,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Late => "late",
            Self::Offline => "offline",
        }
    }
}

/// When each node was last heard from by this process: every request of a node over HTTP and
/// every message over MQTT. Kept in memory because a poll arrives every few seconds per
/// node and writing each one would cost a store write; the stored time of registration or
/// ping covers what this process did not hear (after a restart, or another instance's polls).
#[derive(Default)]
pub(super) struct LastHeard(Mutex<HashMap<(String, Remote), i64>>);

impl LastHeard {
    fn note(&self, org: &str, remote: Remote, at: i64) {
        self.0.lock().insert((org.to_string(), remote), at);
    }

    fn get(&self, org: &str, remote: &Remote) -> Option<i64> {
        self.0.lock().get(&(org.to_string(), remote.clone())).copied()
    }

    pub(super) fn forget(&self, org: &str, remote: &Remote) {
        self.0.lock().remove(&(org.to_string(), remote.clone()));
    }
}

/// Destinations of one object per delivery state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts([u64; DeliveryStatus::ALL.len()]);

impl DeliveryCounts {
    fn slot(status: DeliveryStatus) -> usize {
        DeliveryStatus::ALL.iter().position(|s| *s == status).unwrap_or(0)
    }

    pub fn get(&self, status: DeliveryStatus) -> u64 {
        self.0[Self::slot(status)]
    }

    fn add(&mut self, status: DeliveryStatus, count: u64) {
        self.0[Self::slot(status)] += count;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// One object as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub object_type: String,
    pub object_id: String,
    pub version: String,
    pub status: ObjectStatus,
    /// True for an object an application created on this node (sent from here).
    pub sent_from_here: bool,
    pub counts: DeliveryCounts,
}

impl ObjectSummary {
    fn of(record: &ObjectRecord) -> Self {
        Self {
            object_type: record.meta.object_type.clone(),
            object_id: record.meta.object_id.clone(),
            version: record.meta.version.clone(),
            status: record.status,
            sent_from_here: record.sender,
            counts: DeliveryCounts::default(),
        }
    }
}

/// One registered node as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub destination: Destination,
    /// Seconds since the epoch.
    pub last_heard: i64,
    pub link: LinkState,
    pub pending: u64,
}

impl Node {
    /// Records that `node` was just heard from.
    pub fn note_heard(&self, node: &NodeAddress) {
        self.0.last_heard.note(&node.org, remote_of(node), now_secs());
    }

    /// The objects of `org` matching the page's search (in type or id), with their
    /// destinations counted per delivery state, ordered by type and id.
    pub async fn fleet_objects(
        &self,
        identity: &Identity,
        org: &str,
        page: &PageRequest,
    ) -> EngineResult<Paged<ObjectSummary>> {
        self.require_destination_reader(identity, org)?;
        let needle = page.needle();
        let mut by_type: BTreeMap<String, Vec<ObjectRecord>> = BTreeMap::new();
        for record in self.0.store.objects_of_org(org).await? {
            let name = format!("{}/{}", record.meta.object_type, record.meta.object_id).to_lowercase();
            if name.contains(&needle) {
                by_type.entry(record.meta.object_type.clone()).or_default().push(record);
            }
        }
        let mut visible = Vec::new();
        for (object_type, records) in by_type {
            visible.extend(self.visible_to(identity, org, &object_type, records).await?);
        }
        visible.sort_by(|a, b| (&a.meta.object_type, &a.meta.object_id).cmp(&(&b.meta.object_type, &b.meta.object_id)));
        let total = visible.len() as u64;
        let mut rows: Vec<ObjectSummary> = visible
            .iter()
            .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
            .map(ObjectSummary::of)
            .collect();
        if self.role() == Role::Css && !rows.is_empty() {
            let ids = rows
                .iter()
                .map(|r| (r.object_type.clone(), r.object_id.clone()))
                .collect();
            for count in self.0.store.delivery_counts(org, ids).await? {
                if let Some(row) = rows
                    .iter_mut()
                    .find(|r| r.object_type == count.object_type && r.object_id == count.object_id)
                {
                    row.counts.add(count.status, count.count);
                }
            }
        }
        Ok(Paged { total, rows })
    }

    /// One object with a page of its destinations (those matching the search in their name,
    /// state or message).
    pub async fn fleet_deliveries(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        page: &PageRequest,
    ) -> EngineResult<(ObjectSummary, Paged<DeliveryRow>)> {
        self.require_destination_reader(identity, &key.org)?;
        let record = self
            .readable_object(identity, key)
            .await?
            .ok_or(EngineError::NotFound)?;
        let mut summary = ObjectSummary::of(&record);
        if self.role() == Role::Ess {
            return Ok((
                summary,
                Paged {
                    total: 0,
                    rows: Vec::new(),
                },
            ));
        }
        let ids = vec![(key.object_type.clone(), key.object_id.clone())];
        for count in self.0.store.delivery_counts(&key.org, ids).await? {
            summary.counts.add(count.status, count.count);
        }
        let deliveries = self.0.store.delivery_page(key, page).await?;
        Ok((summary, deliveries))
    }

    /// Every registered node with when it was last heard from and its link, for `/metrics`.
    pub async fn node_links(&self) -> EngineResult<Vec<NodeView>> {
        let now = now_secs();
        let windows = self.0.settings.link_windows;
        Ok(self
            .0
            .store
            .nodes_last_seen()
            .await?
            .into_iter()
            .map(|(destination, last_seen)| self.node_view(destination, last_seen, 0, windows, now))
            .collect())
    }

    fn node_view(
        &self,
        destination: Destination,
        last_seen: i64,
        pending: u64,
        windows: LinkWindows,
        now: i64,
    ) -> NodeView {
        let remote = Remote {
            dest_type: destination.dest_type.clone(),
            dest_id: destination.dest_id.clone(),
        };
        let heard_here = self.0.last_heard.get(&destination.org, &remote).unwrap_or(0);
        let last_heard = heard_here.max(last_seen);
        NodeView {
            destination,
            last_heard,
            link: windows.state(last_heard, now),
            pending,
        }
    }

    /// A page of the registered nodes of `org` (matching the search in their name, protocol
    /// or version), with when each was last heard from and its link state.
    pub async fn fleet_nodes(
        &self,
        identity: &Identity,
        org: &str,
        page: &PageRequest,
    ) -> EngineResult<Paged<NodeView>> {
        self.require_destination_reader(identity, org)?;
        self.require_css()?;
        let nodes = self.0.store.node_page(org, page).await?;
        let now = now_secs();
        let windows = self.0.settings.link_windows;
        let rows = nodes
            .rows
            .into_iter()
            .map(|row| self.node_view(row.destination, row.last_seen, row.pending, windows, now))
            .collect();
        Ok(Paged {
            total: nodes.total,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_online_within_two_poll_cycles_then_late_until_two_pings_are_missed() {
        let windows = LinkWindows::from_intervals(10, 1, 60);
        assert_eq!(windows.online_secs, 140);
        assert_eq!(windows.late_secs, 7200);
        assert_eq!(windows.state(1000, 1140), LinkState::Online);
        assert_eq!(windows.state(1000, 1141), LinkState::Late);
        assert_eq!(windows.state(1000, 8200), LinkState::Late);
        assert_eq!(windows.state(1000, 8201), LinkState::Offline);
        // A clock that went back counts as just heard.
        assert_eq!(windows.state(1000, 900), LinkState::Online);
    }

    #[test]
    fn counts_add_up_per_state() {
        let mut counts = DeliveryCounts::default();
        counts.add(DeliveryStatus::Delivered, 3);
        counts.add(DeliveryStatus::Error, 1);
        counts.add(DeliveryStatus::Delivered, 2);
        assert_eq!(counts.get(DeliveryStatus::Delivered), 5);
        assert_eq!(counts.get(DeliveryStatus::Pending), 0);
        assert_eq!(counts.total(), 6);
    }
}
