//! Timed lifecycle of objects on the running binaries: expiration (alone and across CSS ->
//! ESS), activation by time on both roles and by the activate route, and autodelete. The
//! timers run every second here; every wait has a deadline, nothing sleeps blindly.

mod common;

use common::sync::{css_with, eventually, http_ess, wait_registered, SYNC_DEADLINE};
use common::{TestNode, ADMIN};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Timers at their shortest, so that tests wait seconds, not minutes.
const FAST_TIMERS: [(&str, &str); 2] = [
    ("STORAGE_MAINTENANCE_INTERVAL", "1"),
    ("OBJECT_ACTIVATION_INTERVAL", "1"),
];

fn css() -> TestNode {
    css_with(&FAST_TIMERS)
}

fn ess(css: &TestNode) -> TestNode {
    http_ess(css.port(), &FAST_TIMERS)
}

/// RFC 3339 time `secs` seconds from now, optionally written with a +02:00 offset.
fn in_secs(secs: i64, with_offset: bool) -> String {
    let mut at = OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    if with_offset {
        at = at.to_offset(time::UtcOffset::from_hms(2, 0, 0).expect("offset"));
    }
    at.format(&Rfc3339).expect("format")
}

fn parse(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time string"), &Rfc3339).expect("RFC 3339")
}

/// Waits until the copy at `path` on `receiver` is completely received.
async fn wait_received(nodes: &[&TestNode], receiver: &TestNode, path: &str) {
    let api = receiver.api();
    eventually(
        &format!("{path} completely received"),
        nodes,
        SYNC_DEADLINE,
        async || {
            let response = api.get(&format!("{path}/status")).await;
            (response.status == 200 && response.text() == "completelyReceived").then_some(())
        },
    )
    .await;
}

async fn gone(node: &TestNode, path: &str) -> Option<()> {
    (node.api().get(path).await.status == 404).then_some(())
}

#[tokio::test]
async fn an_expired_object_is_removed_by_the_maintenance_pass() {
    let css = css();
    let api = css.api();
    let path = css.obj("config", "short-lived");
    // Written with a numeric offset: compared as an instant, not as a string.
    api.create(&path, json!({"expiration": in_secs(2, true)}), Some(b"soon gone"))
        .await;
    let kept = css.obj("config", "kept");
    api.create(&kept, json!({"expiration": in_secs(3600, false)}), Some(b"stays"))
        .await;
    assert_eq!(api.status_of(&path).await, "ready");
    eventually("the expired object to go", &[&css], SYNC_DEADLINE, async || {
        gone(&css, &path).await
    })
    .await;
    assert_eq!(api.status_of(&kept).await, "ready");
    assert!(css.files_in("data").len() == 1, "only the kept object's data remains");
}

/// The original's CSS never tells its nodes that an object expired, so their applications
/// never see an expiration: the edge copy goes quietly, never listed as deleted.
#[tokio::test]
async fn an_expired_object_leaves_the_edge_copies_quietly() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());

    let path = css.obj("model", "expiring");
    css_api
        .create(&path, json!({"expiration": in_secs(3, false)}), Some(b"weights"))
        .await;
    let ess_path = ess.obj("model", "expiring");
    eventually("the copy on the ESS", &[&css, &ess], SYNC_DEADLINE, async || {
        (ess_api.get(&ess_path).await.status == 200).then_some(())
    })
    .await;
    // What an application polling for updates is shown until the copy is gone.
    let mut listed_deleted = false;
    eventually("the copy to go", &[&css, &ess], SYNC_DEADLINE, async || {
        let listing = ess_api.get(&ess.type_path("model")).await;
        if listing.status == 200 {
            listed_deleted |= listing
                .json()
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["objectID"] == "expiring" && m["deleted"] == true);
        }
        (ess_api.get(&ess_path).await.status == 404).then_some(())
    })
    .await;
    assert!(
        !listed_deleted,
        "the expiration was shown to applications as a deletion"
    );
    eventually("the CSS object to go", &[&css, &ess], SYNC_DEADLINE, async || {
        gone(&css, &path).await
    })
    .await;
}

#[tokio::test]
async fn an_object_that_expired_is_never_delivered() {
    let css = css();
    let css_api = css.api();
    let expired = css.obj("model", "too-late");
    css_api
        .create(
            &expired,
            json!({"destinationType": "edge", "expiration": in_secs(2, false)}),
            Some(b"stale"),
        )
        .await;
    eventually("the object to expire", &[&css], SYNC_DEADLINE, async || {
        gone(&css, &expired).await
    })
    .await;

    // A node registering afterwards gets the live object but never the expired one.
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let live = css.obj("model", "live");
    css_api
        .create(&live, json!({"destinationType": "edge"}), Some(b"fresh"))
        .await;
    let ess_api = ess.api();
    eventually("the live object on the ESS", &[&css, &ess], SYNC_DEADLINE, async || {
        (ess_api.get(&ess.obj("model", "live")).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(ess_api.get(&ess.obj("model", "too-late")).await.status, 404);
}

#[tokio::test]
async fn an_inactive_object_is_delivered_when_its_activation_time_comes() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let activation = in_secs(3, false);
    let path = css.obj("model", "scheduled");
    css_api
        .create(
            &path,
            json!({"inactive": true, "activationTime": activation, "destinationType": "edge"}),
            Some(b"later"),
        )
        .await;
    let destinations = css_api.get(&format!("{path}/destinations")).await.json();
    assert_eq!(destinations[0]["status"], "pending", "{destinations}");

    let ess_path = ess.obj("model", "scheduled");
    wait_received(&[&css, &ess], &ess, &ess_path).await;
    let arrived = OffsetDateTime::now_utc();
    assert!(
        arrived >= parse(&json!(activation)),
        "delivered at {arrived}, before its activation time {activation}"
    );
    assert_eq!(ess_api.data(&ess_path).await, b"later");
    assert_eq!(css_api.meta(&path).await["inactive"], false);
}

#[tokio::test]
async fn the_activate_route_delivers_an_inactive_object() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let held = css.obj("model", "held");
    css_api
        .create(&held, json!({"inactive": true}), Some(b"on demand"))
        .await;
    let marker = css.obj("model", "marker");
    css_api.create(&marker, json!({}), Some(b"active")).await;
    // The active object overtakes the inactive one, which stays on the CSS.
    eventually(
        "the active object on the ESS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (ess_api.get(&ess.obj("model", "marker")).await.status == 200).then_some(()),
    )
    .await;
    assert_eq!(ess_api.get(&ess.obj("model", "held")).await.status, 404);

    let response = css_api.put_empty_as(ADMIN, &format!("{held}/activate")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    eventually(
        "the activated object on the ESS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (ess_api.get(&ess.obj("model", "held")).await.status == 200).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn an_ess_activates_its_own_objects_on_time() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let activation = in_secs(3, true);
    let path = ess.obj("report", "scheduled");
    ess.api()
        .create(
            &path,
            json!({"inactive": true, "activationTime": activation}),
            Some(b"edge data"),
        )
        .await;
    let css_copy = css.obj("report", "scheduled");
    let css_api = css.api();
    eventually("the ESS object on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        (css_api.get(&css_copy).await.status == 200).then_some(())
    })
    .await;
    assert!(OffsetDateTime::now_utc() >= parse(&json!(activation)));
    wait_received(&[&css, &ess], &css, &css_copy).await;
    assert_eq!(css_api.data(&css_copy).await, b"edge data");
}

#[tokio::test]
async fn autodelete_sets_an_expiration_once_every_destination_consumed() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let path = css.obj("model", "once");
    css_api
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1", "autodelete": true}),
            Some(b"use once"),
        )
        .await;
    let ess_path = ess.obj("model", "once");
    wait_received(&[&css, &ess], &ess, &ess_path).await;
    assert_eq!(css_api.meta(&path).await["expiration"], "");
    let response = ess_api.put_empty_as(ADMIN, &format!("{ess_path}/consumed")).await;
    assert_eq!(response.status, 204, "{}", response.text());

    let consumed_at = OffsetDateTime::now_utc();
    let meta = eventually("the expiration to be set", &[&css, &ess], SYNC_DEADLINE, async || {
        let meta = css_api.meta(&path).await;
        (meta["expiration"] != "").then_some(meta)
    })
    .await;
    let expires = parse(&meta["expiration"]);
    let hour = time::Duration::hours(1);
    assert!(
        expires >= consumed_at + hour - time::Duration::seconds(5) && expires <= OffsetDateTime::now_utc() + hour,
        "expiration {expires} is not an hour after the consumption at {consumed_at}"
    );
}

#[tokio::test]
async fn bad_times_are_refused_with_the_reason() {
    let css = css();
    let api = css.api();
    let cases = [
        (json!({"expiration": in_secs(-60, false)}), "Invalid expiration time"),
        (json!({"expiration": "next tuesday"}), "Failed to parse expiration"),
        (
            json!({"inactive": true, "activationTime": "2030-13-01T00:00:00Z"}),
            "Failed to parse activation time",
        ),
        (
            json!({"inactive": true, "activationTime": in_secs(-60, false)}),
            "Invalid activation time",
        ),
        (json!({"autodelete": true}), "AutoDelete can be used only"),
    ];
    for (index, (meta, reason)) in cases.into_iter().enumerate() {
        let path = css.obj("config", &format!("bad{index}"));
        let response = api.put_json(&path, &common::object_body(&path, meta, None)).await;
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert!(response.text().contains(reason), "{path}: {}", response.text());
    }
    let ess = http_ess(css.port(), &[]);
    let path = ess.obj("config", "expiring");
    let body = common::object_body(&path, json!({"expiration": in_secs(60, false)}), None);
    let response = ess.api().put_json(&path, &body).await;
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("expiration is disabled on ESS"),
        "{}",
        response.text()
    );
}
