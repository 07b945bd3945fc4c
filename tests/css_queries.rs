//! Organization-level object queries on the CSS (rest-api.md §4.15-4.17):
//! `list_object_type`, `filters` and `destination_policy`.

mod common;

use common::{TestNode, ADMIN, OTHER_ADMIN};
use serde_json::json;

fn ids(list: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|r| r["objectID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn node_with_objects() -> TestNode {
    let node = TestNode::css();
    let api = node.api();
    api.create(&node.obj("model", "a"), json!({}), None).await;
    api.create(&node.obj("model", "b"), json!({"noData": true}), None).await;
    api.create(&node.obj("config", "c"), json!({"destinationType": "edge"}), None)
        .await;
    api.create(
        &node.obj("policy", "p"),
        json!({"destinationPolicy": {
            "properties": [{"name": "zone", "value": "east"}],
            "services": [{"orgID": "svcorg", "arch": "amd64", "serviceName": "svc", "version": "1.0.0"}]
        }}),
        None,
    )
    .await;
    node
}

#[tokio::test]
async fn css_list_object_type_returns_distinct_types() {
    let node = node_with_objects().await;
    let api = node.api();
    let response = api.get("/api/v1/objects/org?list_object_type=true").await;
    assert_eq!(response.status, 200);
    let mut types: Vec<String> = serde_json::from_value(response.json()).unwrap();
    types.sort();
    assert_eq!(types, ["config", "model", "policy"]);
    let empty = api.get("/api/v1/objects/nobody?list_object_type=true").await;
    assert_eq!((empty.status, empty.text()), (404, String::new()));
}

#[tokio::test]
async fn css_other_org_sees_no_private_types() {
    let node = node_with_objects().await;
    let api = node.api();
    let response = api
        .get_as(OTHER_ADMIN, "/api/v1/objects/org?list_object_type=true")
        .await;
    assert_eq!((response.status, response.json()), (200, json!([])));
}

#[tokio::test]
async fn css_filters_select_by_type_and_flags() {
    let node = node_with_objects().await;
    let api = node.api();
    let by_type = api.get("/api/v1/objects/org?filters=true&objectType=model").await;
    assert_eq!(by_type.status, 200);
    let list = by_type.json();
    assert_eq!(ids(&list), ["a", "b"]);
    assert_eq!(list[0]["objectType"], "model", "full MetaData records");
    let one = api
        .get("/api/v1/objects/org?filters=true&objectType=model&objectID=b")
        .await;
    assert_eq!(ids(&one.json()), ["b"]);
    let no_data = api.get("/api/v1/objects/org?filters=true&noData=true").await;
    assert_eq!(ids(&no_data.json()), ["b"]);
    let by_destination = api.get("/api/v1/objects/org?filters=true&destinationType=edge").await;
    assert_eq!(ids(&by_destination.json()), ["c"]);
    let with_policy = api
        .get("/api/v1/objects/org?filters=true&destinationPolicy=true&dpPropertyName=zone")
        .await;
    assert_eq!(ids(&with_policy.json()), ["p"]);
    let nothing = api.get("/api/v1/objects/org?filters=true&objectType=none").await;
    assert_eq!((nothing.status, nothing.text()), (404, String::new()));
    assert_eq!(
        api.get("/api/v1/objects/org?filters=true&noData=maybe").await.status,
        400
    );
}

#[tokio::test]
async fn css_destination_policy_lists_policy_objects_until_received() {
    let node = node_with_objects().await;
    let api = node.api();
    let response = api.get("/api/v1/objects/org?destination_policy=true").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let list = response.json();
    assert_eq!(ids(&list), ["p"]);
    let record = &list[0];
    assert_eq!(record["orgID"], "org");
    assert_eq!(record["objectType"], "policy");
    let policy = &record["destinationPolicy"];
    assert!(
        policy["timestamp"].as_i64().unwrap() > 0,
        "the service stamps the policy"
    );
    assert_eq!(policy["properties"][0]["name"], "zone");
    assert_eq!(policy["services"][0]["serviceName"], "svc");
    let by_service = api
        .get("/api/v1/objects/org?destination_policy=true&service=svcorg/svc")
        .await;
    assert_eq!(ids(&by_service.json()), ["p"]);
    let path = node.obj("policy", "p");
    assert_eq!(
        api.put_empty_as(ADMIN, &format!("{path}/policyreceived")).await.status,
        204
    );
    let after = api.get("/api/v1/objects/org?destination_policy=true").await;
    assert_eq!((after.status, after.text()), (404, String::new()));
    let all = api
        .get("/api/v1/objects/org?destination_policy=true&received=true")
        .await;
    assert_eq!(ids(&all.json()), ["p"]);
}

#[tokio::test]
async fn css_org_query_needs_a_true_switch_and_get() {
    let node = node_with_objects().await;
    let api = node.api();
    for query in [
        "",
        "?list_object_type=false",
        "?list_object_type=maybe",
        "?destination_policy=true&since=0",
        "?destination_policy=true&service=nosep",
    ] {
        let response = api.get(&format!("/api/v1/objects/org{query}")).await;
        assert_eq!(response.status, 400, "{query}");
    }
    assert_eq!(api.delete_as(ADMIN, "/api/v1/objects/org").await.status, 405);
}
