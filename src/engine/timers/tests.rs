//! The timers on paused time, in two halves. The passes run on a real SQLite store at the
//! virtual instants a test moves the clock to, the wall clock following (see `crate::clock`):
//! hours of a node's life pass in milliseconds. The scheduling of the passes (periods,
//! leadership) is checked with work that counts its runs, since tokio moves paused time on by
//! itself whenever the runtime waits, which includes waits for the store's threads.

use super::*;
use crate::auth::dummy::DummyAuthenticator;
use crate::auth::edge::NodeAddress;
use crate::auth::{Identity, IdentityKind};
use crate::clock::now_secs;
use crate::engine::EngineError;
use crate::model::lifecycle::rfc3339_utc;
use crate::model::ObjectKey;
use crate::store::blobs::BlobStore;
use crate::store::sqlite::SqliteStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const ORG: &str = "org";

struct Fixture {
    node: Node,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A node of `role` on a fresh SQLite file; its timers are not started.
    async fn start(role: Role) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = SqliteStore::open(&dir.path().join("sync.db"), true).expect("the store");
        let blobs = BlobStore::open(&dir.path().join("objects")).expect("the data folder");
        let settings = crate::engine::NodeSettings {
            role,
            org: (role == Role::Ess).then(|| ORG.to_string()),
            dest_type: if role == Role::Css { "Cloud" } else { "edge" }.into(),
            dest_id: if role == Role::Css { "Cloud" } else { "node1" }.into(),
            chunk_size: 1024 * 1024,
            ranged_download_slots: 4,
            data_stream_slots: 4,
            max_metadata_body: 1024 * 1024,
            broker_address: String::new(),
            resend_interval_secs: 5,
            serves_spi: role == Role::Css,
            store_created: true,
            data_uri_roots: Vec::new(),
            data_uri_reserved: Vec::new(),
            allowed_data_file_extensions: Vec::new(),
            max_object_size: None,
            instance_slot: None,
            link_windows: crate::engine::LinkWindows::from_intervals(10, 1, 60),
            link_patience: std::time::Duration::from_secs(30),
            data_compression: true,
            delta_transfer: true,
        };
        let authenticator = Box::new(DummyAuthenticator::default());
        let node = Node::start(settings, Arc::new(store), blobs, authenticator)
            .await
            .expect("the node starts");
        Self { node, _dir: dir }
    }

    async fn create(&self, key: &ObjectKey, extra: serde_json::Value) {
        let mut meta = serde_json::json!({
            "objectID": key.object_id,
            "objectType": key.object_type,
            "destinationOrgID": key.org,
            "noData": true,
        });
        if self.node.role() == Role::Css {
            meta["destinationType"] = "edge".into();
        }
        for (field, value) in extra.as_object().expect("an object of fields") {
            meta[field] = value.clone();
        }
        let body = serde_json::to_vec(&serde_json::json!({ "meta": meta })).expect("JSON");
        self.node
            .put_object(&admin(), key, &body)
            .await
            .expect("the object is created");
    }

    async fn exists(&self, key: &ObjectKey) -> bool {
        match self.node.get_object(&admin(), key).await {
            Ok(_) => true,
            Err(EngineError::NotFound) => false,
            Err(e) => panic!("reading {key}: {e}"),
        }
    }

    async fn is_inactive(&self, key: &ObjectKey) -> bool {
        self.node
            .get_object(&admin(), key)
            .await
            .expect("the object")
            .meta
            .inactive
    }

    async fn registered(&self) -> Vec<String> {
        let nodes = self.node.list_destinations(&admin(), ORG).await.expect("the node list");
        nodes.into_iter().map(|d| d.destination.dest_id).collect()
    }
}

fn admin() -> Identity {
    Identity {
        kind: IdentityKind::OrgAdmin,
        org: ORG.into(),
        user: "admin".into(),
    }
}

fn edge(id: &str) -> NodeAddress {
    NodeAddress {
        org: ORG.into(),
        dest_type: "edge".into(),
        dest_id: id.into(),
    }
}

/// Moves the paused clock on until the wall clock reads `at`.
async fn at(at: i64) {
    let now = now_secs();
    assert!(at >= now, "the clock reads {now}, past {at}");
    tokio::time::advance(Duration::from_secs((at - now).unsigned_abs())).await;
}

#[tokio::test(start_paused = true)]
async fn an_object_expires_at_its_time_and_not_before() {
    let css = Fixture::start(Role::Css).await;
    let (expiring, kept) = (
        ObjectKey::new(ORG, "model", "expiring"),
        ObjectKey::new(ORG, "model", "kept"),
    );
    let expiration = now_secs() + 3600;
    css.create(&expiring, serde_json::json!({ "expiration": rfc3339_utc(expiration) }))
        .await;
    css.create(
        &kept,
        serde_json::json!({ "expiration": rfc3339_utc(expiration + 86_400) }),
    )
    .await;

    at(expiration - 1).await;
    assert_eq!(css.node.expiration_pass().await.expect("the pass"), 0);
    assert!(css.exists(&expiring).await, "gone a second before its expiration");

    at(expiration).await;
    assert_eq!(css.node.expiration_pass().await.expect("the pass"), 1);
    assert!(!css.exists(&expiring).await, "still there at its expiration");
    assert!(css.exists(&kept).await, "an object whose time has not come expired");
}

/// Both roles activate their own inactive objects when the time comes, not before.
#[tokio::test(start_paused = true)]
async fn an_inactive_object_is_activated_at_its_time_and_not_before() {
    for role in [Role::Css, Role::Ess] {
        let node = Fixture::start(role).await;
        let held = ObjectKey::new(ORG, "config", "held");
        let activation = now_secs() + 1800;
        node.create(
            &held,
            serde_json::json!({ "inactive": true, "activationTime": rfc3339_utc(activation) }),
        )
        .await;

        at(activation - 1).await;
        assert_eq!(node.node.activation_pass().await.expect("the pass"), 0);
        assert!(node.is_inactive(&held).await, "{role:?}: active a second early");

        at(activation).await;
        assert_eq!(node.node.activation_pass().await.expect("the pass"), 1);
        assert!(!node.is_inactive(&held).await, "{role:?}: still inactive at its time");
    }
}

/// A node that neither registers nor pings again is forgotten at the second pass after its
/// last sign of life; one that keeps pinging stays.
#[tokio::test(start_paused = true)]
async fn an_edge_node_that_stops_pinging_is_removed_and_a_pinging_one_stays() {
    let period = 600;
    let css = Fixture::start(Role::Css).await;
    let started = now_secs();
    let since = SinceLastPass::starting_now();
    // Times are in seconds and a node seen in the second of the previous pass counts as
    // not seen since: the nodes register a second after the start.
    at(started + 1).await;
    for id in ["silent", "pinging"] {
        css.node
            .spi_register(&edge(id), false, true)
            .await
            .expect("registration");
    }
    let pinging = edge("pinging");

    at(started + period - 60).await;
    css.node.spi_ping(&pinging).await.expect("a ping");
    at(started + period).await;
    assert_eq!(css.node.remove_inactive_nodes(since.next()).await.expect("the pass"), 0);
    assert_eq!(
        css.registered().await.len(),
        2,
        "a node seen since the previous pass went"
    );

    at(started + 2 * period - 60).await;
    css.node.spi_ping(&pinging).await.expect("a ping");
    at(started + 2 * period).await;
    assert_eq!(css.node.remove_inactive_nodes(since.next()).await.expect("the pass"), 1);
    assert_eq!(css.registered().await, ["pinging"]);
}

/// A message sent to a node that is pushed its messages (MQTT) and left unanswered is sent
/// again once six resend intervals passed, not before.
#[tokio::test(start_paused = true)]
async fn an_unanswered_message_is_sent_again_after_the_resend_time() {
    let css = Fixture::start(Role::Css).await;
    let node = edge("node1");
    css.node
        .register_node(&node, false, true, "mqtt")
        .await
        .expect("registration");
    let key = ObjectKey::new(ORG, "model", "pushed");
    css.create(&key, serde_json::json!({})).await;

    let sent_at = now_secs();
    let first = css.node.spi_take_pending(&node).await.expect("the messages");
    assert_eq!(first.len(), 1, "the update is sent");
    assert!(
        css.node.spi_take_pending(&node).await.expect("the messages").is_empty(),
        "sent twice at once"
    );
    let resend_delay = 6 * 5;

    at(sent_at + resend_delay - 1).await;
    assert_eq!(css.node.resend_due().await.expect("the pass"), 0);
    assert!(
        css.node.spi_take_pending(&node).await.expect("the messages").is_empty(),
        "sent again early"
    );

    at(sent_at + resend_delay).await;
    assert_eq!(css.node.resend_due().await.expect("the pass"), 1);
    let again = css.node.spi_take_pending(&node).await.expect("the messages");
    assert_eq!(again.len(), 1, "not sent again");
    assert_eq!(again[0].meta.object_id, "pushed");
}

/// What was sent to an MQTT node and not answered is sent again at once when asked (the
/// node registered again, or the CSS reconnected to the broker), before its resend time,
/// and only to the node named.
#[tokio::test(start_paused = true)]
async fn unanswered_messages_are_sent_again_at_once_on_request() {
    let css = Fixture::start(Role::Css).await;
    let (node, other) = (edge("node1"), edge("node2"));
    for address in [&node, &other] {
        css.node
            .register_node(address, false, true, "mqtt")
            .await
            .expect("registration");
    }
    let key = ObjectKey::new(ORG, "model", "pushed");
    css.create(&key, serde_json::json!({})).await;
    assert_eq!(css.node.spi_take_pending(&node).await.expect("the messages").len(), 1);
    assert_eq!(css.node.spi_take_pending(&other).await.expect("the messages").len(), 1);

    assert_eq!(css.node.resend_unacknowledged(Some(&node)).await.expect("requeue"), 1);
    let again = css.node.spi_take_pending(&node).await.expect("the messages");
    assert_eq!(again.len(), 1, "not sent again");
    assert_eq!(again[0].meta.object_id, "pushed");
    assert!(
        css.node
            .spi_take_pending(&other)
            .await
            .expect("the messages")
            .is_empty(),
        "sent again to a node not named"
    );

    assert_eq!(css.node.resend_unacknowledged(None).await.expect("requeue"), 2);
    for address in [&node, &other] {
        assert_eq!(css.node.spi_take_pending(address).await.expect("the messages").len(), 1);
    }
}

/// Leadership as the cluster hands it to the engine: a flag the test sets.
#[derive(Default)]
struct Leading(tokio::sync::watch::Sender<bool>);

impl crate::engine::LeaderRole for Leading {
    fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Runs of a pass that only counts, so that nothing waits on the store and paused time moves
/// only from timer to timer.
fn counting_pass(node: &Node, period: Duration, tracker: &TaskTracker, stop: &CancellationToken) -> Arc<AtomicUsize> {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    spawn_pass(node, period, tracker, stop, "counting", move |_| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    runs
}

#[tokio::test(start_paused = true)]
async fn a_pass_runs_once_per_period() {
    let css = Fixture::start(Role::Css).await;
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let runs = counting_pass(&css.node, Duration::from_secs(60), &tracker, &stop);

    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a pass ran before its first period");
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 10);

    stop.cancel();
    tracker.close();
    tracker.wait().await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 10, "a pass ran after the stop");
}

/// CSS instances sharing a store leave the passes to their leader: a follower runs none
/// however long it waits, and runs them from its first tick once it leads.
#[tokio::test(start_paused = true)]
async fn only_the_leader_runs_the_passes() {
    let css = Fixture::start(Role::Css).await;
    let leading = Arc::new(Leading::default());
    css.node.set_leadership(leading.clone());
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let runs = counting_pass(&css.node, Duration::from_secs(60), &tracker, &stop);

    tokio::time::sleep(Duration::from_secs(3600 + 30)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a follower ran a pass");

    leading.0.send_replace(true);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the new leader did not run its next pass"
    );
    stop.cancel();
}
