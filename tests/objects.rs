//! Object routes on both roles: create/read/update/delete, normalisation, the operation
//! routes on a sender copy, webhooks and the per-type listings.

mod common;

use common::{Role, TestNode, ADMIN};
use serde_json::json;

/// Every MetaData field, in the order metadata.md §2 lists them; none may be omitted.
const METADATA_FIELDS: &[&str] = &[
    "objectID",
    "objectType",
    "destinationOrgID",
    "destinationID",
    "destinationType",
    "destinationsList",
    "destinationPolicy",
    "expiration",
    "version",
    "description",
    "link",
    "inactive",
    "activationTime",
    "noData",
    "metaOnly",
    "destinationDataUri",
    "sourceDataUri",
    "consumers",
    "autodelete",
    "originID",
    "originType",
    "deleted",
    "instanceID",
    "dataID",
    "objectSize",
    "chunkSize",
    "uploadChunkSize",
    "hashAlgorithm",
    "publicKey",
    "signature",
    "public",
    "ownerID",
];

async fn put_then_get_returns_every_field_normalized(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "m1");
    api.create(
        &path,
        json!({"consumers": 0, "version": "1.0", "description": "first", "originType": "x", "originID": "y"}),
        None,
    )
    .await;
    let meta = api.meta(&path).await;
    let fields: Vec<&str> = meta.as_object().unwrap().keys().map(String::as_str).collect();
    for field in METADATA_FIELDS {
        assert!(fields.contains(field), "{field} missing from {meta}");
    }
    assert_eq!(meta["objectID"], "m1");
    assert_eq!(meta["objectType"], "model");
    assert_eq!(meta["destinationOrgID"], "org");
    assert_eq!(meta["consumers"], 1, "consumers 0 is normalized to 1");
    assert_eq!(meta["version"], "1.0");
    assert_eq!(meta["description"], "first");
    assert_eq!(meta["chunkSize"], 5_242_880);
    assert_eq!(meta["deleted"], false);
    assert_eq!(meta["objectSize"], 0);
    assert!(meta["instanceID"].as_i64().unwrap() > 0);
    let (origin_type, origin_id) = match role {
        Role::Css => ("Cloud", "Cloud"),
        Role::Ess => ("edge", "node1"),
    };
    assert_eq!(meta["originType"], origin_type, "the client's origin is overwritten");
    assert_eq!(meta["originID"], origin_id);
    if role == Role::Css {
        assert_eq!(meta["ownerID"], "org/admin");
    }
    assert_eq!(api.status_of(&path).await, "notReady");
}

async fn consumers_minus_one_means_unlimited(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "unlimited");
    api.create(&path, json!({"consumers": -1}), None).await;
    assert_eq!(api.meta(&path).await["consumers"], 2_147_483_647);
}

async fn update_assigns_a_larger_instance_id(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "versions");
    api.create(&path, json!({}), None).await;
    let first = api.meta(&path).await["instanceID"].as_i64().unwrap();
    api.create(&path, json!({"description": "second"}), None).await;
    let second = api.meta(&path).await;
    assert!(second["instanceID"].as_i64().unwrap() > first);
    assert_eq!(second["description"], "second");
}

async fn inline_data_is_stored_and_ready(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "inline");
    let data = common::pattern(1000, 1);
    api.create(&path, json!({}), Some(&data)).await;
    let meta = api.meta(&path).await;
    assert_eq!(meta["objectSize"], 1000);
    assert_eq!(
        meta["dataID"], meta["instanceID"],
        "inline data gets the new instance as dataID"
    );
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.data(&path).await, data);
}

async fn meta_only_update_keeps_data(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "metaonly");
    let data = b"keep me".to_vec();
    api.create(&path, json!({}), Some(&data)).await;
    let before = api.meta(&path).await;
    api.create(&path, json!({"metaOnly": true, "description": "changed"}), None)
        .await;
    let after = api.meta(&path).await;
    assert!(after["instanceID"].as_i64() > before["instanceID"].as_i64());
    assert_eq!(after["dataID"], before["dataID"]);
    assert_eq!(after["objectSize"], 7);
    assert_eq!(after["description"], "changed");
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.data(&path).await, data);
}

async fn update_without_data_drops_data(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "dropdata");
    api.create(&path, json!({}), Some(b"old data")).await;
    api.create(&path, json!({"description": "no data now"}), None).await;
    assert_eq!(api.status_of(&path).await, "notReady");
    assert_eq!(api.meta(&path).await["objectSize"], 0);
    assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
    assert!(node.files_in("data").is_empty(), "the old data file is removed");
}

async fn no_data_object_is_ready_and_has_no_data(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("notice", "n1");
    api.create(&path, json!({"noData": true, "link": "http://x/y"}), None)
        .await;
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.meta(&path).await["link"], "", "noData clears link");
    let data = api.get(&format!("{path}/data")).await;
    assert_eq!((data.status, data.body.len()), (404, 0));
    let upload = api.put_bytes(&format!("{path}/data"), b"x".to_vec()).await;
    assert_eq!(upload.status, 400);
    assert!(upload.text().contains("NoData"), "{}", upload.text());
}

async fn delete_removes_object_and_data(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "gone");
    api.create(&path, json!({}), Some(b"bytes")).await;
    let deleted = api.delete_as(ADMIN, &path).await;
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
    for suffix in ["", "/status", "/data"] {
        let response = api.get(&format!("{path}{suffix}")).await;
        assert_eq!((response.status, response.text()), (404, String::new()), "GET {suffix}");
    }
    assert!(node.files_in("data").is_empty());
    assert_eq!(api.delete_as(ADMIN, &path).await.status, 404, "second delete");
}

async fn missing_object_reads_are_404_with_empty_body(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "never");
    for suffix in ["", "/status", "/data", "/destinations"] {
        let response = api.get(&format!("{path}{suffix}")).await;
        assert_eq!((response.status, response.text()), (404, String::new()), "GET {suffix}");
    }
}

async fn object_without_destinations_has_404_destinations(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "nodest");
    api.create(&path, json!({}), Some(b"x")).await;
    assert_eq!(api.get(&format!("{path}/destinations")).await.status, 404);
}

async fn consumed_and_received_on_sender_copy_are_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "sender");
    api.create(&path, json!({}), Some(b"x")).await;
    for op in ["consumed", "received"] {
        let response = api.put_empty_as(ADMIN, &format!("{path}/{op}")).await;
        assert_eq!(response.status, 400, "{op}");
        assert!(response.text().contains(&format!("as {op}")), "{}", response.text());
    }
    let consumed = api
        .put_empty_as(ADMIN, &format!("{}/consumed", node.obj("model", "absent")))
        .await;
    assert_eq!(consumed.status, 404);
}

async fn deleted_ack_on_live_object_is_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "alive");
    api.create(&path, json!({}), None).await;
    let response = api.put_empty_as(ADMIN, &format!("{path}/deleted")).await;
    assert_eq!(response.status, 400);
    assert!(!response.body.is_empty());
    let missing = api
        .put_empty_as(ADMIN, &format!("{}/deleted", node.obj("model", "absent")))
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.text().contains("Failed to find object"), "{}", missing.text());
}

async fn activate_clears_inactive(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "sleeper");
    api.create(&path, json!({"inactive": true}), Some(b"x")).await;
    assert_eq!(api.meta(&path).await["inactive"], true);
    assert_eq!(api.put_empty_as(ADMIN, &format!("{path}/activate")).await.status, 204);
    assert_eq!(api.meta(&path).await["inactive"], false);
    let missing = api
        .put_empty_as(ADMIN, &format!("{}/activate", node.obj("model", "absent")))
        .await;
    assert_eq!(missing.status, 400);
    assert!(missing.text().contains("not found"), "{}", missing.text());
}

async fn policy_received_is_css_only(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "pol");
    api.create(&path, json!({}), None).await;
    let response = api.put_empty_as(ADMIN, &format!("{path}/policyreceived")).await;
    match role {
        Role::Css => {
            assert_eq!(response.status, 204);
            let missing = api
                .put_empty_as(ADMIN, &format!("{}/policyreceived", node.obj("model", "absent")))
                .await;
            assert_eq!(missing.status, 404);
        }
        Role::Ess => {
            assert_eq!(response.status, 400);
            assert!(!response.body.is_empty());
        }
    }
}

async fn operation_segment_is_case_insensitive_and_tolerates_a_slash(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "cased");
    api.create(&path, json!({}), Some(b"abc")).await;
    assert_eq!(api.get(&format!("{path}/DATA")).await.body, b"abc");
    assert_eq!(api.get(&format!("{path}/status/")).await.text(), "ready");
    assert_eq!(api.get(&format!("{path}/")).await.status, 200);
}

async fn unknown_operation_is_400_and_wrong_method_405(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "ops");
    api.create(&path, json!({}), None).await;
    assert_eq!(api.get(&format!("{path}/frobnicate")).await.status, 400);
    assert_eq!(api.post_as(ADMIN, &path).await.status, 405);
    assert_eq!(api.delete_as(ADMIN, &format!("{path}/status")).await.status, 405);
    assert_eq!(api.get(&format!("{path}/a/b")).await.status, 400, "too many segments");
}

async fn webhook_register_and_delete_are_204(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.type_path("model");
    for action in ["register", "REGISTER", "delete", "delete"] {
        let response = api
            .put_json(&path, &json!({"action": action, "url": "http://127.0.0.1:9/hook"}))
            .await;
        assert_eq!(response.status, 204, "{action}: {}", response.text());
    }
    let https = api
        .put_json(&path, &json!({"action": "register", "url": "HTTPS://example.com/h"}))
        .await;
    assert_eq!(https.status, 204);
}

async fn webhook_bad_url_or_action_is_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.type_path("model");
    for (body, needle) in [
        (json!({"action": "register", "url": "not a url"}), "Invalid webhook"),
        (json!({"action": "register", "url": "ftp://host/x"}), "Invalid"),
        (json!({"action": "frob", "url": "http://host/x"}), "frob"),
    ] {
        let response = api.put_json(&path, &body).await;
        assert_eq!(response.status, 400, "{body}");
        assert!(response.text().contains(needle), "{body}: {}", response.text());
    }
    let bad_json = api
        .send(api.request(reqwest::Method::PUT, &path, Some(ADMIN)).body("{not json"))
        .await;
    assert_eq!(bad_json.status, 400);
    assert!(
        bad_json.text().starts_with("Invalid JSON for update"),
        "{}",
        bad_json.text()
    );
}

async fn updated_objects_listing_is_404_on_a_single_node(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    api.create(&node.obj("model", "local"), json!({}), Some(b"x")).await;
    let listing = api.get(&node.type_path("model")).await;
    assert_eq!((listing.status, listing.text()), (404, String::new()));
    let received = api.get(&format!("{}?received=true", node.type_path("model"))).await;
    assert_eq!(received.status, 404);
}

async fn all_objects_lists_every_object_of_the_type(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    api.create(&node.obj("model", "a"), json!({}), None).await;
    api.create(&node.obj("model", "b"), json!({}), Some(b"x")).await;
    api.create(&node.obj("other", "c"), json!({}), None).await;
    let response = api.get(&format!("{}?all_objects=true", node.type_path("model"))).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type").as_deref(), Some("application/json"));
    let list = response.json();
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["objectID"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let record = &list[0];
    assert_eq!(record["orgID"], "org");
    assert_eq!(record["objectType"], "model");
    assert!(record.get("destinationPolicy").is_none(), "omitted without a policy");
    if role == Role::Ess {
        assert!(record["destinations"].is_null());
    }
    let empty = api.get(&format!("{}?all_objects=true", node.type_path("none"))).await;
    assert_eq!((empty.status, empty.text()), (404, String::new()));
}

async fn destinations_update_needs_registered_nodes_and_a_css(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "addressed");
    api.create(&path, json!({}), None).await;
    let route = format!("{path}/destinations");
    let put = api.put_json(&route, &json!(["edge:node9"])).await;
    let post = api
        .send(
            api.request(reqwest::Method::POST, &route, Some(ADMIN))
                .body(json!({"action": "add", "destinations": ["edge:node9"]}).to_string()),
        )
        .await;
    for response in [&put, &post] {
        assert_eq!(response.status, 400, "{}", response.text());
        assert!(!response.body.is_empty());
    }
    if role == Role::Css {
        assert!(put.text().contains("Invalid destination"), "{}", put.text());
        let bad_action = api
            .send(
                api.request(reqwest::Method::POST, &route, Some(ADMIN))
                    .body(json!({"action": "frob", "destinations": []}).to_string()),
            )
            .await;
        assert_eq!(bad_action.status, 400);
        assert!(bad_action.text().contains("frob"), "{}", bad_action.text());
        let missing = api
            .put_json(&format!("{}/destinations", node.obj("model", "absent")), &json!([]))
            .await;
        assert_eq!(missing.status, 404);
    }
}

/// A client may close its sending side once its request is out (`shutdown(SHUT_WR)`, as
/// some scripts and proxies do): it still gets the answer.
async fn a_half_closed_request_is_answered(role: Role) {
    let node = TestNode::of(role);
    let path = node.obj("model", "half");
    node.api().create(&path, json!({"version": "2.0"}), None).await;
    let response = node
        .raw_half_closed(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            common::basic(ADMIN)
        ))
        .expect("raw request");
    assert_eq!(response.status, 200, "{}", response.text());
    let meta: serde_json::Value = serde_json::from_slice(&response.body).expect("metadata JSON");
    assert_eq!(meta["version"], "2.0");
}

on_both_roles!(
    a_half_closed_request_is_answered,
    destinations_update_needs_registered_nodes_and_a_css,
    put_then_get_returns_every_field_normalized,
    consumers_minus_one_means_unlimited,
    update_assigns_a_larger_instance_id,
    inline_data_is_stored_and_ready,
    meta_only_update_keeps_data,
    update_without_data_drops_data,
    no_data_object_is_ready_and_has_no_data,
    delete_removes_object_and_data,
    missing_object_reads_are_404_with_empty_body,
    object_without_destinations_has_404_destinations,
    consumed_and_received_on_sender_copy_are_400,
    deleted_ack_on_live_object_is_400,
    activate_clears_inactive,
    policy_received_is_css_only,
    operation_segment_is_case_insensitive_and_tolerates_a_slash,
    unknown_operation_is_400_and_wrong_method_405,
    webhook_register_and_delete_are_204,
    webhook_bad_url_or_action_is_400,
    updated_objects_listing_is_404_on_a_single_node,
    all_objects_lists_every_object_of_the_type,
);
