//! The CSS side of the HTTP node-to-node protocol (/spi/v1), driven by a scripted edge node:
//! registration, polls and long polls, data downloads, status progression, deletion,
//! unregistering, removal of silent nodes, and the identity rules.

mod common;

use common::fake_ess::{object_path, FakeEss};
use common::sync::css_with;
use common::{TestNode, ADMIN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn delivery_status(css: &TestNode, object: &str) -> String {
    let response = css
        .api()
        .get(&format!("{}/destinations", css.obj("model", object)))
        .await;
    if response.status != 200 {
        return format!("http {}", response.status);
    }
    response.json()[0]["status"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn unknown_nodes_register_as_new_and_appear_in_the_destinations_list() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(false).await, 404, "an unknown node must register as new");
    assert_eq!(ess.register(true).await, 204);
    assert_eq!(ess.register(false).await, 204, "now it is known");
    let list = css.api().get("/api/v1/destinations/org").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()[0]["destinationID"], "n1");
    assert_eq!(list.json()[0]["communication"], "http");
    assert_eq!(ess.put("/spi/v1/ping/org/edge/n1").await, 204);
    assert_eq!(ess.poll(None).await.0, 204, "nothing pending");
    assert_eq!(ess.put("/spi/v1/unregister/org/edge/n1").await, 204);
    assert_eq!(css.api().get("/api/v1/destinations/org").await.status, 404);
    assert_eq!(ess.poll(None).await.0, 424, "an unregistered node may not poll");
    assert_eq!(ess.put("/spi/v1/ping/org/edge/n1").await, 404);
}

#[tokio::test]
async fn an_object_travels_through_poll_download_and_the_status_progression() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    let other = FakeEss::new(&css, "org", "gpu", "g1");
    assert_eq!(ess.register(true).await, 204);
    assert_eq!(other.register(true).await, 204);
    let api = css.api();
    let path = css.obj("model", "m1");
    let data = common::pattern(200_000, 7);
    api.create(&path, json!({"destinationType": "edge"}), None).await;
    assert_eq!(delivery_status(&css, "m1").await, "pending", "not ready yet");
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);
    assert_eq!(delivery_status(&css, "m1").await, "delivering");
    assert_eq!(other.poll(None).await.0, 204, "a gpu node is not addressed");

    let (status, items) = ess.poll(None).await;
    assert_eq!(status, 200);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["Type"], "update");
    let meta = &items[0]["MetaData"];
    assert_eq!(
        (meta["destinationType"].as_str(), meta["destinationID"].as_str()),
        (Some("edge"), Some("n1"))
    );
    assert_eq!(ess.action(meta, "updated").await, 204);

    let download = ess
        .request(reqwest::Method::GET, &object_path(meta, "data"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().to_vec(), data);
    let chunk = ess
        .request(reqwest::Method::GET, &object_path(meta, "data"))
        .header("Range", "bytes=65536-131071")
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.status(), 206);
    assert_eq!(chunk.headers()["content-range"], "bytes 65536-131071/200000");
    assert_eq!(chunk.bytes().await.unwrap().to_vec(), data[65536..131072].to_vec());

    assert_eq!(ess.action(meta, "received").await, 204);
    assert_eq!(delivery_status(&css, "m1").await, "delivered");
    assert_eq!(ess.action(meta, "received").await, 409, "a duplicate is ignored");
    assert_eq!(ess.action(meta, "consumed").await, 204);
    assert_eq!(delivery_status(&css, "m1").await, "consumed");
    assert_eq!(ess.poll(None).await.0, 204, "nothing pending any more");
    let per_node = api.get("/api/v1/destinations/org/edge/n1/objects").await;
    assert_eq!(per_node.json()[0]["status"], "consumed");
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_object_is_ready() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let answer = ess.poll(Some(20)).await;
        (answer, started.elapsed())
    });
    // Whether the poll is parked before the object is stored or finds it pending, it must
    // answer long before its 20 s are up.
    let api = css.api();
    let path = css.obj("model", "fast");
    api.create(&path, json!({"destinationType": "edge", "noData": true}), None)
        .await;
    let ((status, items), elapsed) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(items[0]["MetaData"]["objectID"], "fast");
    assert!(elapsed < Duration::from_secs(15), "the long poll waited {elapsed:?}");
}

#[tokio::test]
async fn an_original_ess_polling_without_wait_is_answered_at_once() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let started = Instant::now();
    assert_eq!(ess.poll(None).await.0, 204);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Nodes registering together each get every published object: queueing an object for one
/// node must not make another node's registration fail (it used to, with 409, once many
/// nodes registered at once while many objects were published).
#[tokio::test]
async fn nodes_registering_together_all_get_every_published_object() {
    let css = css_with(&[]);
    let api = css.api();
    const OBJECTS: usize = 100;
    for i in 0..OBJECTS {
        api.create(&css.obj("model", &format!("b{i}")), json!({"noData": true}), None)
            .await;
    }
    let nodes: Vec<FakeEss> = (0..24)
        .map(|i| FakeEss::new(&css, "org", "edge", &format!("n{i}")))
        .collect();
    let statuses = futures_util::future::join_all(nodes.iter().map(|node| node.register(true))).await;
    assert!(statuses.iter().all(|&status| status == 204), "{statuses:?}");
    for node in &nodes {
        let (status, items) = node.poll(None).await;
        assert_eq!(status, 200);
        assert_eq!(items.len(), OBJECTS, "{}", node.dest);
    }
}

#[tokio::test]
async fn a_new_node_gets_the_objects_published_before_it_registered() {
    let css = css_with(&[]);
    let api = css.api();
    api.create(
        &css.obj("model", "early"),
        json!({"destinationType": "edge", "noData": true}),
        None,
    )
    .await;
    api.create(&css.obj("model", "broadcast"), json!({"noData": true}), None)
        .await;
    api.create(
        &css.obj("model", "elsewhere"),
        json!({"destinationType": "gpu", "noData": true}),
        None,
    )
    .await;
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let (_, items) = ess.poll(None).await;
    let mut ids: Vec<&str> = items
        .iter()
        .map(|i| i["MetaData"]["objectID"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["broadcast", "early"]);
}

#[tokio::test]
async fn deleting_a_delivered_object_waits_for_the_nodes_acknowledgement() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let api = css.api();
    let path = css.obj("model", "gone");
    api.create(&path, json!({"destinationType": "edge", "noData": true}), None)
        .await;
    let (_, items) = ess.poll(None).await;
    assert_eq!(ess.action(&items[0]["MetaData"], "received").await, 204);

    assert_eq!(api.delete_as(ADMIN, &path).await.status, 204);
    assert_eq!(
        api.meta(&path).await["deleted"],
        true,
        "kept until the node acknowledges"
    );
    let (_, items) = ess.poll(None).await;
    assert_eq!(items[0]["Type"], "delete");
    assert_eq!(ess.action(&items[0]["MetaData"], "ackDelete").await, 204);
    assert_eq!(
        api.get(&path).await.status,
        404,
        "every node acknowledged: the object is gone"
    );
}

/// A node that reports its copy deleted got the `delete`, even when its `ackDelete` has not
/// arrived (or never will): the deletion completes all the same.
#[tokio::test]
async fn a_deleted_report_before_the_ack_delete_completes_the_deletion() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let api = css.api();
    let path = css.obj("model", "quick");
    api.create(&path, json!({"destinationType": "edge", "noData": true}), None)
        .await;
    let (_, items) = ess.poll(None).await;
    assert_eq!(ess.action(&items[0]["MetaData"], "received").await, 204);
    assert_eq!(api.delete_as(ADMIN, &path).await.status, 204);
    let (_, items) = ess.poll(None).await;
    assert_eq!(items[0]["Type"], "delete");
    assert_eq!(ess.action(&items[0]["MetaData"], "deleted").await, 204);
    assert_eq!(api.get(&path).await.status, 404, "the only node deleted its copy");
}

/// Several nodes acknowledging a deletion at the same moment: the last one to commit removes
/// the object (each deciding inside its own batch saw the others pending, and none did).
#[tokio::test]
async fn nodes_acknowledging_a_deletion_together_remove_the_object() {
    let css = css_with(&[]);
    let nodes: Vec<FakeEss> = (0..8)
        .map(|i| FakeEss::new(&css, "org", "edge", &format!("n{i}")))
        .collect();
    for node in &nodes {
        assert_eq!(node.register(true).await, 204);
    }
    let api = css.api();
    let path = css.obj("model", "shared");
    api.create(&path, json!({"destinationType": "edge", "noData": true}), None)
        .await;
    for node in &nodes {
        let (_, items) = node.poll(None).await;
        assert_eq!(node.action(&items[0]["MetaData"], "received").await, 204);
    }
    assert_eq!(api.delete_as(ADMIN, &path).await.status, 204);
    let mut deletes = Vec::new();
    for node in &nodes {
        let (_, items) = node.poll(None).await;
        assert_eq!(items[0]["Type"], "delete");
        deletes.push(items[0]["MetaData"].clone());
    }
    let acks = nodes
        .iter()
        .zip(&deletes)
        .map(|(node, meta)| node.action(meta, "ackDelete"));
    for status in futures_util::future::join_all(acks).await {
        assert_eq!(status, 204);
    }
    assert_eq!(api.get(&path).await.status, 404, "every node acknowledged");
}

#[tokio::test]
async fn a_node_may_not_act_for_another_node_or_org() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let api = css.api();
    api.create(
        &css.obj("model", "m"),
        json!({"destinationType": "edge", "noData": true}),
        None,
    )
    .await;
    let (_, items) = ess.poll(None).await;
    let meta = &items[0]["MetaData"];

    let mut impostor = FakeEss::new(&css, "org", "edge", "n1");
    impostor.dest = "org/edge/n2".into();
    assert_eq!(
        impostor.poll(None).await.0,
        403,
        "credentials and header must name the same node"
    );
    let cross = object_path(meta, "received").replace("/spi/v1/objects/org/", "/spi/v1/objects/other/");
    assert_eq!(ess.put(&cross).await, 403, "the path org must be the node's org");
    let no_credentials = reqwest::Client::new()
        .get(format!("{}/spi/v1/objects/", css.base()))
        .header("X-Sync-Service-Dest", "org/edge/n1")
        .send()
        .await
        .unwrap();
    assert_eq!(no_credentials.status().as_u16(), 403);
}

#[tokio::test]
async fn silent_nodes_are_removed_after_the_configured_time() {
    let css = css_with(&[("REMOVE_ESS_REGISTRATION_SECONDS", "1")]);
    let ess = FakeEss::new(&css, "org", "edge", "quiet");
    assert_eq!(ess.register(true).await, 204);
    let api = css.api();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if api.get("/api/v1/destinations/org").await.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the silent node was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ess.put("/spi/v1/ping/org/edge/quiet").await,
        404,
        "it must register as new"
    );
}

/// Metadata of an object the scripted node created, as an ESS sends it.
fn edge_object(id: &str, size: usize, chunk: usize, instance: i64) -> Value {
    json!({
        "objectID": id, "objectType": "sensor", "destinationOrgID": "org",
        "originType": "edge", "originID": "n1", "instanceID": instance, "dataID": instance,
        "objectSize": size, "chunkSize": chunk, "consumers": 1
    })
}

async fn send_update(ess: &FakeEss, meta: &Value) -> u16 {
    ess.request(reqwest::Method::PUT, &object_path(meta, "update"))
        .body(meta.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn upload_chunk(ess: &FakeEss, meta: &Value, data: &[u8], start: usize, end: usize, padding: usize) -> u16 {
    let mut body = data[start..=end].to_vec();
    body.extend(std::iter::repeat_n(0u8, padding));
    ess.request(reqwest::Method::PUT, &object_path(meta, "data"))
        .header("Content-Range", format!("bytes {start}-{end}/{}", data.len()))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_object_created_on_a_node_is_received_in_chunks_and_consumed_on_the_css() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let data = common::pattern(150_000, 3);
    let meta = edge_object("s1", data.len(), 65_536, 1000);
    assert_eq!(send_update(&ess, &meta).await, 204, "the CSS wants the data");
    assert_eq!(send_update(&ess, &meta).await, 204, "still missing: asked again");
    // Chunks out of order; the last one padded as the original ESS may send it.
    assert_eq!(upload_chunk(&ess, &meta, &data, 65_536, 131_071, 0).await, 204);
    assert_eq!(upload_chunk(&ess, &meta, &data, 131_072, 149_999, 46_000).await, 204);
    let api = css.api();
    let path = "/api/v1/objects/org/sensor/s1";
    assert_eq!(api.get(&format!("{path}/status")).await.text(), "partiallyreceived");
    assert_eq!(upload_chunk(&ess, &meta, &data, 0, 65_535, 0).await, 204);
    assert_eq!(api.get(&format!("{path}/status")).await.text(), "completelyReceived");
    assert_eq!(api.data(path).await, data);
    let stored = api.meta(path).await;
    assert_eq!(stored["ownerID"], "org/n1");
    assert_eq!(
        api.get("/api/v1/objects/org/sensor").await.json()[0]["objectID"],
        "s1",
        "listed for apps"
    );

    let (_, items) = ess.poll(None).await;
    assert_eq!(items[0]["Type"], "received");
    assert_eq!(ess.action(&items[0]["MetaData"], "ackreceived").await, 204);
    assert_eq!(send_update(&ess, &meta).await, 409, "a complete duplicate is ignored");

    assert_eq!(api.put_empty_as(ADMIN, &format!("{path}/consumed")).await.status, 204);
    let (_, items) = ess.poll(None).await;
    assert_eq!(items[0]["Type"], "consumed");
    assert_eq!(ess.action(&items[0]["MetaData"], "ackconsumed").await, 204);
    assert_eq!(api.get(path).await.status, 404, "removed once the node knows");
    assert!(css.files_in("data").is_empty(), "its data file is gone too");
}

#[tokio::test]
async fn a_node_deleting_its_object_marks_the_css_copy_deleted_until_apps_acknowledge() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let mut meta = edge_object("s2", 0, 65_536, 2000);
    meta["noData"] = json!(true);
    assert_eq!(send_update(&ess, &meta).await, 204);
    let api = css.api();
    let path = "/api/v1/objects/org/sensor/s2";
    assert_eq!(api.get(&format!("{path}/status")).await.text(), "completelyReceived");
    let delete = ess
        .request(reqwest::Method::PUT, &object_path(&meta, "delete"))
        .body(meta.to_string());
    assert_eq!(delete.send().await.unwrap().status().as_u16(), 204);
    assert_eq!(api.meta(path).await["deleted"], true);
    assert_eq!(api.put_empty_as(ADMIN, &format!("{path}/deleted")).await.status, 204);
    assert_eq!(
        api.get("/api/v1/objects/org/sensor").await.status,
        404,
        "not listed again once the application acknowledged, though the node has yet to"
    );
    let (_, items) = ess.poll(None).await;
    let deleted = items
        .iter()
        .find(|i| i["Type"] == "deleted")
        .expect("a deleted element");
    assert_eq!(ess.action(&deleted["MetaData"], "ackDeleted").await, 204);
    assert_eq!(api.get(path).await.status, 404);
}

/// The applications consumed a node's object and the node acknowledged, so the CSS no
/// longer holds it; when the node deletes it, they still learn of it, as the original's do.
#[tokio::test]
async fn a_node_deleting_an_object_the_css_consumed_gives_apps_a_deleted_copy() {
    let css = css_with(&[]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let mut meta = edge_object("s3", 0, 65_536, 2000);
    meta["noData"] = json!(true);
    assert_eq!(send_update(&ess, &meta).await, 204);
    let api = css.api();
    let path = "/api/v1/objects/org/sensor/s3";
    assert_eq!(api.put_empty_as(ADMIN, &format!("{path}/consumed")).await.status, 204);
    let (_, items) = ess.poll(None).await;
    let consumed = items.iter().find(|i| i["Type"] == "consumed").expect("consumed");
    assert_eq!(ess.action(&consumed["MetaData"], "ackconsumed").await, 204);
    assert_eq!(api.get(path).await.status, 404, "the consumed copy is gone");

    let delete = ess
        .request(reqwest::Method::PUT, &object_path(&meta, "delete"))
        .body(meta.to_string());
    assert_eq!(delete.send().await.unwrap().status().as_u16(), 204);
    let listing = api.get("/api/v1/objects/org/sensor").await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    let copy = &listing.json()[0];
    assert_eq!(
        (copy["objectID"].as_str(), copy["deleted"].as_bool()),
        (Some("s3"), Some(true))
    );
    assert_eq!(copy["instanceID"], meta["instanceID"]);
    assert_eq!(api.put_empty_as(ADMIN, &format!("{path}/deleted")).await.status, 204);
    let (_, items) = ess.poll(None).await;
    let deleted = items
        .iter()
        .find(|i| i["Type"] == "deleted")
        .expect("a deleted element");
    assert_eq!(ess.action(&deleted["MetaData"], "ackDeleted").await, 204);
    assert_eq!(api.get(path).await.status, 404);
}

#[tokio::test]
async fn a_destinations_list_reaches_exactly_the_listed_nodes_and_names_unknown_ones() {
    let css = css_with(&[]);
    let (a, b, c) = (
        FakeEss::new(&css, "org", "edge", "a"),
        FakeEss::new(&css, "org", "edge", "b"),
        FakeEss::new(&css, "org", "gpu", "c"),
    );
    for node in [&a, &b, &c] {
        assert_eq!(node.register(true).await, 204);
    }
    // A list naming nodes never registered is refused with their names, and nothing stored.
    let unknown = json!({"destinationsList": ["edge:a", "edge:zz", "gpu:yy"], "noData": true});
    let refused = css
        .api()
        .put_json(&css.obj("model", "listed"), &json!({"meta": unknown}))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().starts_with("Invalid destination edge:zz, gpu:yy"),
        "{}",
        refused.text()
    );
    assert_eq!(css.api().get(&css.obj("model", "listed")).await.status, 404);
    let meta = json!({"destinationsList": ["edge:a", "gpu:c"], "noData": true});
    css.api().create(&css.obj("model", "listed"), meta, None).await;
    for (node, addressed) in [(&a, true), (&b, false), (&c, true)] {
        let (status, items) = node.poll(None).await;
        assert_eq!(status == 200 && items.len() == 1, addressed, "node {}", node.dest);
    }
    let statuses = css
        .api()
        .get(&format!("{}/destinations", css.obj("model", "listed")))
        .await
        .json();
    let mut listed: Vec<String> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d["destinationType"].as_str().unwrap(),
                d["destinationID"].as_str().unwrap()
            )
        })
        .collect();
    listed.sort();
    assert_eq!(listed, vec!["edge:a", "gpu:c"]);
}

/// A node that can never verify an instance reports it a few times; then the CSS stops
/// re-sending it (the original re-sent it every minute forever) and the destination shows
/// the reason. A node's resend request still brings it again.
#[tokio::test]
async fn an_instance_a_node_cannot_verify_is_not_resent_forever() {
    let css = css_with(&[("RESEND_INTERVAL", "1")]);
    let ess = FakeEss::new(&css, "org", "edge", "n1");
    assert_eq!(ess.register(true).await, 204);
    let path = css.obj("model", "unverifiable");
    css.api()
        .create(&path, json!({"destinationType": "edge"}), Some(b"weights"))
        .await;
    let feedback = json!({"Code": 3, "RetryInterval": 0, "Reason": "signature check failed"}).to_string();
    let mut reports = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Each report is answered by a resend after 6 x ResendInterval, until the limit.
    while reports < 3 {
        assert!(Instant::now() < deadline, "only {reports} resends came");
        let (status, items) = ess.poll(Some(2)).await;
        let Some(update) = items.iter().find(|i| i["Type"] == "update").filter(|_| status == 200) else {
            continue;
        };
        let status = ess
            .request(reqwest::Method::PUT, &object_path(&update["MetaData"], "feedback"))
            .body(feedback.clone())
            .send()
            .await
            .expect("feedback")
            .status()
            .as_u16();
        assert_eq!(status, 204);
        reports += 1;
        assert_eq!(delivery_status(&css, "unverifiable").await, "error");
    }
    let destinations = css.api().get(&format!("{path}/destinations")).await.json();
    let message = destinations[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("given up after 3 failed verifications"),
        "{destinations}"
    );
    // Two more resend periods bring nothing; a resend request does.
    let quiet_until = Instant::now() + Duration::from_secs(13);
    while Instant::now() < quiet_until {
        let (_, items) = ess.poll(Some(2)).await;
        assert!(
            items.iter().all(|i| i["Type"] != "update"),
            "re-sent after giving up: {items:?}"
        );
    }
    assert_eq!(ess.put("/spi/v1/objects/org/resend").await, 204);
    let (_, items) = ess.poll(Some(5)).await;
    assert!(items.iter().any(|i| i["Type"] == "update"), "{items:?}");
}
