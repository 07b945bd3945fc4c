//! Objects beyond plain delivery, across a real CSS and ESS: policy objects whose
//! destinations an agent sets, metadata-only updates that keep the data, link objects, and
//! the pruning of consumed ESS objects (ESSConsumedObjectsKept). Every wait has a deadline.

mod common;

use common::sync::{css_with, eventually, http_ess, wait_registered, SYNC_DEADLINE};
use common::{object_body, TestNode, ADMIN};
use serde_json::{json, Value};

async fn status_is(node: &TestNode, path: &str, want: &str) -> Option<()> {
    let response = node.api().get(&format!("{path}/status")).await;
    (response.status == 200 && response.text() == want).then_some(())
}

async fn wait_status(nodes: &[&TestNode], node: &TestNode, path: &str, want: &str) {
    eventually(&format!("{path} to be {want}"), nodes, SYNC_DEADLINE, async || {
        status_is(node, path, want).await
    })
    .await;
}

#[tokio::test]
async fn a_policy_object_goes_where_its_agent_sends_it() {
    let css = css_with(&[]);
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let policy = json!({"properties": [{"name": "gpu", "value": true}], "constraints": ["arch == arm64"]});
    let path = css.obj("model", "by-policy");
    css_api
        .create(&path, json!({"destinationPolicy": policy}), Some(b"policy data"))
        .await;
    // A marker sent to every node proves the ESS polled without getting the policy object.
    let marker = css.obj("model", "marker");
    css_api.create(&marker, json!({}), Some(b"marker")).await;
    wait_status(&[&css, &ess], &ess, &ess.obj("model", "marker"), "completelyReceived").await;
    assert_eq!(ess_api.get(&ess.obj("model", "by-policy")).await.status, 404);

    // The agent lists policy objects, sets the destinations, and marks the policy seen.
    let listing = css_api.get("/api/v1/objects/org?destination_policy=true").await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    let listed: Vec<Value> = listing.json().as_array().cloned().unwrap_or_default();
    let entry = listed
        .iter()
        .find(|e| e["objectID"] == "by-policy")
        .unwrap_or_else(|| panic!("policy object not listed: {listed:?}"));
    assert_eq!(entry["destinationPolicy"]["properties"][0]["name"], "gpu");
    let response = css_api
        .put_json(&format!("{path}/destinations"), &json!(["edge:node1"]))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    let response = css_api.put_empty_as(ADMIN, &format!("{path}/policyreceived")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    let after = css_api.get("/api/v1/objects/org?destination_policy=true").await;
    let still_listed = after.status == 200
        && after
            .json()
            .as_array()
            .is_some_and(|list| list.iter().any(|e| e["objectID"] == "by-policy"));
    assert!(!still_listed, "a received policy is no longer listed: {}", after.text());

    let ess_path = ess.obj("model", "by-policy");
    wait_status(&[&css, &ess], &ess, &ess_path, "completelyReceived").await;
    assert_eq!(ess_api.data(&ess_path).await, b"policy data");
    let destinations = css_api.get(&format!("{path}/destinations")).await.json();
    assert_eq!(destinations[0]["destinationID"], "node1", "{destinations}");

    // A new instance goes to the destinations the agent set.
    css_api
        .create(&path, json!({"destinationPolicy": policy}), Some(b"policy data v2"))
        .await;
    eventually(
        "the new instance on the ESS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || {
            let response = ess_api.get(&format!("{ess_path}/data")).await;
            (response.status == 200 && response.body == b"policy data v2").then_some(())
        },
    )
    .await;

    // Dropping the node from the destinations deletes its copy.
    let response = css_api.put_json(&format!("{path}/destinations"), &json!([])).await;
    assert_eq!(response.status, 204, "{}", response.text());
    eventually(
        "the copy to be marked deleted",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (ess_api.meta(&ess_path).await["deleted"] == true).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn a_metadata_only_update_keeps_the_data_on_both_sides() {
    let css = css_with(&[]);
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let data = common::pattern(200 * 1024, 11);
    let path = css.obj("model", "described");
    css_api
        .create(&path, json!({"description": "first"}), Some(&data))
        .await;
    let ess_path = ess.obj("model", "described");
    wait_status(&[&css, &ess], &ess, &ess_path, "completelyReceived").await;
    let first = ess_api.meta(&ess_path).await;

    css_api
        .create(&path, json!({"description": "second", "metaOnly": true}), None)
        .await;
    let on_css = css_api.meta(&path).await;
    assert_eq!(on_css["dataID"], first["dataID"], "the data is kept: {on_css}");
    assert_ne!(on_css["instanceID"], first["instanceID"]);
    assert_eq!(on_css["objectSize"], data.len());
    let second = eventually(
        "the new metadata on the ESS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || {
            let meta = ess_api.meta(&ess_path).await;
            let done = status_is(&ess, &ess_path, "completelyReceived").await.is_some();
            (meta["description"] == "second" && done).then_some(meta)
        },
    )
    .await;
    assert_eq!(second["dataID"], first["dataID"]);
    assert_eq!(ess_api.data(&ess_path).await, data);

    // Inline data contradicts metaOnly.
    let body = object_body(&path, json!({"metaOnly": true}), Some(b"new bytes"));
    let response = css_api.put_json(&path, &body).await;
    assert_eq!(response.status, 400, "{}", response.text());
}

#[tokio::test]
async fn a_link_object_is_complete_without_data() {
    let css = css_with(&[]);
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let path = css.obj("model", "elsewhere");
    css.api()
        .create(&path, json!({"link": "https://models.example/weights.bin"}), None)
        .await;
    assert_eq!(css.api().status_of(&path).await, "ready");
    let ess_path = ess.obj("model", "elsewhere");
    wait_status(&[&css, &ess], &ess, &ess_path, "completelyReceived").await;
    let meta = ess.api().meta(&ess_path).await;
    assert_eq!(meta["link"], "https://models.example/weights.bin");
    assert_eq!(ess.api().get(&format!("{ess_path}/data")).await.status, 404);
}

#[tokio::test]
async fn consumed_ess_objects_are_pruned_to_the_configured_number() {
    let css = css_with(&[]);
    let ess = http_ess(css.port(), &[("ESS_CONSUMED_OBJECTS_KEPT", "2")]);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());
    let ids = ["r1", "r2", "r3", "r4"];
    for id in ids {
        let ess_path = ess.obj("report", id);
        ess_api.create(&ess_path, json!({}), Some(id.as_bytes())).await;
        let css_path = css.obj("report", id);
        wait_status(&[&css, &ess], &css, &css_path, "completelyReceived").await;
        let response = css_api.put_empty_as(ADMIN, &format!("{css_path}/consumed")).await;
        assert_eq!(response.status, 204, "{}", response.text());
        wait_status(&[&css, &ess], &ess, &ess_path, "consumedByDest").await;
        // Wait for the pruning that each consumption may cause before the next object.
        if id == "r3" {
            eventually("the oldest to be pruned", &[&css, &ess], SYNC_DEADLINE, async || {
                (ess_api.get(&ess.obj("report", "r1")).await.status == 404).then_some(())
            })
            .await;
        }
    }
    eventually("two consumed objects kept", &[&css, &ess], SYNC_DEADLINE, async || {
        let mut kept = Vec::new();
        for id in ids {
            if ess_api.get(&ess.obj("report", id)).await.status == 200 {
                kept.push(id);
            }
        }
        (kept == ["r3", "r4"]).then_some(())
    })
    .await;
}
