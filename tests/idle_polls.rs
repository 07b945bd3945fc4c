//! Polls of nodes whose registration or messages change between and during their polls. A
//! CSS on SQLite keeps what an idle poll asks about its node (is it registered, does anything
//! await it) in memory; every change must reach the node's next poll at once, whatever made
//! it: an application's publication, the node's own registration or removal, the removal of
//! silent nodes, or the deletion of the node's organization.

mod common;

use common::fake_ess::FakeEss;
use common::sync::{css_with, wait_for, SYNC_DEADLINE};
use common::{TestNode, ORG_ADMIN};
use serde_json::{json, Value};

/// A node answered 424 is not registered (it then registers as new).
const NOT_REGISTERED: u16 = 424;

fn ids(items: &[Value]) -> Vec<&str> {
    let mut ids: Vec<&str> = items
        .iter()
        .map(|item| item["MetaData"]["objectID"].as_str().unwrap_or(""))
        .collect();
    ids.sort_unstable();
    ids
}

/// Publishes a metadata-only object addressed to edge node `to`, or to every edge node.
async fn publish(css: &TestNode, id: &str, to: Option<&str>) {
    let mut meta = json!({"destinationType": "edge", "noData": true});
    if let Some(node) = to {
        meta["destinationID"] = json!(node);
    }
    css.api().create(&css.obj("model", id), meta, None).await;
}

/// A registered node that found nothing, twice (the second answer may come from memory).
async fn idle_node(css: &TestNode, id: &str) -> FakeEss {
    let ess = FakeEss::new(css, "org", "edge", id);
    assert_eq!(ess.register(true).await, 204);
    for _ in 0..2 {
        assert_eq!(ess.poll(None).await.0, 204, "nothing pending");
    }
    ess
}

#[tokio::test]
async fn a_message_queued_after_empty_polls_is_in_the_next_poll() {
    let css = css_with(&[]);
    let ess = idle_node(&css, "n1").await;
    let other = idle_node(&css, "n2").await;
    publish(&css, "first", Some("n1")).await;
    let (status, items) = ess.poll(None).await;
    assert_eq!((status, ids(&items)), (200, vec!["first"]));
    // A held poll is answered by a publication, whether it was waiting already or not yet.
    let held = tokio::spawn(async move { other.poll(Some(20)).await });
    publish(&css, "second", Some("n2")).await;
    let (status, items) = held.await.unwrap();
    assert_eq!((status, ids(&items)), (200, vec!["second"]));
}

#[tokio::test]
async fn an_unknown_node_is_refused_until_it_registers() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "late");
    for _ in 0..2 {
        assert_eq!(ess.poll(None).await.0, NOT_REGISTERED);
    }
    assert_eq!(ess.register(true).await, 204);
    assert_eq!(ess.poll(None).await.0, 204, "registered now");
}

/// An unregistered node's held poll ends as it would have without any change (204 at its
/// time), and its next poll is refused.
#[tokio::test]
async fn a_node_unregistered_while_its_poll_waits_gets_what_it_got_before() {
    let css = css_with(&[("LOG_LEVEL", "TRACE")]);
    let ess = idle_node(&css, "n1").await;
    let poller = FakeEss::new(&css, "org", "edge", "n1");
    let held = tokio::spawn(async move { poller.poll(Some(3)).await });
    wait_for("the poll to wait", &[&css], SYNC_DEADLINE, async || {
        css.log().contains("long poll waiting for news")
    })
    .await;
    assert_eq!(ess.put("/spi/v1/unregister/org/edge/n1").await, 204);
    let (status, items) = held.await.unwrap();
    assert_eq!((status, items.len()), (204, 0));
    assert_eq!(ess.poll(None).await.0, NOT_REGISTERED);
}

/// A node that registers again from scratch is sent every object addressed to it, those
/// published while it was away included.
#[tokio::test]
async fn a_node_registered_again_sees_its_objects() {
    let css = css_with(&[]);
    let ess = idle_node(&css, "n1").await;
    publish(&css, "before", None).await;
    assert_eq!(ids(&ess.poll(None).await.1), vec!["before"]);
    assert_eq!(ess.put("/spi/v1/unregister/org/edge/n1").await, 204);
    assert_eq!(ess.poll(None).await.0, NOT_REGISTERED);
    publish(&css, "away", None).await;
    assert_eq!(ess.register(true).await, 204);
    let (status, items) = ess.poll(None).await;
    assert_eq!((status, ids(&items)), (200, vec!["away", "before"]));
}

#[tokio::test]
async fn a_node_removed_for_its_silence_may_not_poll() {
    let css = css_with(&[("REMOVE_ESS_REGISTRATION_SECONDS", "1")]);
    let ess = idle_node(&css, "quiet").await;
    let api = css.api();
    wait_for("the silent node's removal", &[&css], SYNC_DEADLINE, async || {
        api.get("/api/v1/destinations/org").await.status == 404
    })
    .await;
    assert_eq!(ess.poll(None).await.0, NOT_REGISTERED);
}

#[tokio::test]
async fn a_node_of_a_deleted_organization_may_not_poll() {
    let css = css_with(&[]);
    let ess = idle_node(&css, "n1").await;
    let deleted = css.api().delete_as(ORG_ADMIN, "/api/v1/organizations/org").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_eq!(ess.poll(None).await.0, NOT_REGISTERED);
    // Registered again, it polls as a new node.
    assert_eq!(ess.register(true).await, 204);
    assert_eq!(ess.poll(None).await.0, 204);
}
