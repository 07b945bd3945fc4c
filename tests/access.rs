//! Who may do what (rest-api.md §2): other organizations, public objects, edge nodes,
//! the agent-upgrade manifest type, and services on the ESS narrowed by destination policy.

mod common;

use common::{Role, TestNode, ADMIN, EDGE_NODE, ORG_ADMIN, OTHER_ADMIN};
use serde_json::json;

async fn other_org_admin_is_refused_a_private_object(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "private");
    api.create(&path, json!({}), Some(b"secret")).await;
    for suffix in ["", "/status"] {
        let response = api.get_as(OTHER_ADMIN, &format!("{path}{suffix}")).await;
        assert_eq!(
            (response.status, response.text()),
            (403, "Unauthorized".into()),
            "{suffix}"
        );
    }
    let data = api.get_as(OTHER_ADMIN, &format!("{path}/data")).await;
    assert_eq!(data.status, 403);
    assert_eq!(data.text(), "Unauthorized. The object may not exist or be public.\n");
    let missing = api.get_as(OTHER_ADMIN, &node.obj("model", "absent")).await;
    assert_eq!(missing.status, 403, "no probing for names");
    let body = common::object_body(&path, json!({"description": "hijack"}), None);
    assert_eq!(api.put_json_as(OTHER_ADMIN, &path, &body).await.status, 403);
    assert_eq!(api.delete_as(OTHER_ADMIN, &path).await.status, 403);
    assert_eq!(api.meta(&path).await["description"], "", "unchanged");
}

/// Public objects are readable across orgs on the CSS; an ESS serves only its own org, so
/// there identities of another org are refused even public objects (security.md §4.2).
async fn other_org_admin_reads_a_public_object_only_on_the_css(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "shared");
    api.create(&path, json!({"public": true}), Some(b"for everyone")).await;
    let meta = api.get_as(OTHER_ADMIN, &path).await;
    let data = api.get_as(OTHER_ADMIN, &format!("{path}/data")).await;
    match role {
        Role::Css => {
            assert_eq!(meta.status, 200);
            assert_eq!(meta.json()["public"], true);
            assert_eq!(api.get_as(OTHER_ADMIN, &format!("{path}/status")).await.text(), "ready");
            assert_eq!((data.status, data.body), (200, b"for everyone".to_vec()));
        }
        Role::Ess => {
            assert_eq!(meta.status, 403);
            assert_eq!(api.get_as(OTHER_ADMIN, &format!("{path}/status")).await.status, 403);
            assert_eq!(data.status, 403);
        }
    }
    let upload = api
        .send(
            api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(OTHER_ADMIN))
                .body("overwrite"),
        )
        .await;
    assert_eq!(upload.status, 403, "public is read-only for other orgs");
}

async fn edge_node_key_is_refused_everywhere(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "m");
    api.create(&path, json!({"public": true}), Some(b"x")).await;
    let body = common::object_body(&path, json!({}), None);
    let responses = [
        api.get_as(EDGE_NODE, &path).await,
        api.get_as(EDGE_NODE, &format!("{path}/data")).await,
        api.get_as(EDGE_NODE, &format!("{path}/status")).await,
        api.put_json_as(EDGE_NODE, &path, &body).await,
        api.delete_as(EDGE_NODE, &path).await,
        api.get_as(EDGE_NODE, &format!("{}?all_objects=true", node.type_path("model")))
            .await,
    ];
    for response in responses {
        assert_eq!(response.status, 403);
    }
    assert_eq!(api.get(&path).await.status, 200, "the object is still there");
}

async fn missing_credentials_are_403_unauthorized(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "m");
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = api.send(api.request(method.clone(), &path, None)).await;
        assert_eq!(
            (response.status, response.text()),
            (403, "Unauthorized".into()),
            "{method}"
        );
    }
}

#[tokio::test]
async fn css_object_admin_cannot_write_agent_upgrade_manifests() {
    let node = TestNode::css();
    let api = node.api();
    let path = node.obj("agent_upgrade_manifests", "m1");
    let body = common::object_body(&path, json!({}), None);
    let refused = api.put_json_as(ADMIN, &path, &body).await;
    assert_eq!((refused.status, refused.text()), (403, "Unauthorized".into()));
    let org_admin = api.put_json_as(ORG_ADMIN, &path, &body).await;
    assert_eq!(org_admin.status, 204, "an org admin may");
    let exchange_admin = api.put_json_as("org/boss", &path, &body).await;
    assert_eq!(exchange_admin.status, 204, "an exchange admin is an org admin");
    assert_eq!(api.delete_as(ADMIN, &path).await.status, 403);
}

#[tokio::test]
async fn css_node_user_without_acl_is_refused() {
    let node = TestNode::css();
    let api = node.api();
    let path = node.obj("model", "acl");
    api.create(&path, json!({}), None).await;
    assert_eq!(api.get_as("node1%org", &path).await.status, 403);
}

const SERVICE: &str = "org$svcorg$1.0.0$svc";

fn policy_for(service: &str, versions: &str) -> serde_json::Value {
    json!({"destinationPolicy": {
        "properties": [{"name": "p", "value": 1}],
        "constraints": ["a == b"],
        "services": [{"orgID": "svcorg", "arch": "amd64", "serviceName": service, "version": versions}]
    }})
}

#[tokio::test]
async fn ess_service_sees_objects_per_destination_policy() {
    let node = TestNode::ess();
    let api = node.api();
    let mine = node.obj("model", "mine");
    let theirs = node.obj("model", "theirs");
    let open = node.obj("model", "open");
    api.create(&mine, policy_for("svc", "[1.0.0,2.0.0)"), Some(b"m")).await;
    api.create(&theirs, policy_for("othersvc", "1.0.0"), Some(b"t")).await;
    api.create(&open, json!({}), Some(b"o")).await;
    assert_eq!(api.get_as(SERVICE, &mine).await.status, 200);
    assert_eq!(api.get_as(SERVICE, &format!("{mine}/data")).await.body, b"m");
    assert_eq!(api.get_as(SERVICE, &open).await.status, 200, "no policy: every service");
    assert_eq!(api.get_as(SERVICE, &theirs).await.status, 403);
    assert_eq!(api.get_as(SERVICE, &format!("{theirs}/data")).await.status, 403);
    let absent = api.get_as(SERVICE, &node.obj("model", "absent")).await;
    assert_eq!(absent.status, 403, "a service gets 403, not 404, for a missing object");
    let newer = "org$svcorg$2.0.0$svc";
    assert_eq!(api.get_as(newer, &mine).await.status, 403, "version outside the range");
    let listing = api
        .get_as(SERVICE, &format!("{}?all_objects=true", node.type_path("model")))
        .await;
    assert_eq!(listing.status, 200);
    let mut ids: Vec<String> = listing
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["objectID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["mine", "open"]);
    let body = common::object_body(&theirs, json!({}), Some(b"x"));
    assert_eq!(api.put_json_as(SERVICE, &theirs, &body).await.status, 403);
    assert_eq!(api.delete_as(SERVICE, &theirs).await.status, 403);
    assert_eq!(
        api.delete_as(SERVICE, &mine).await.status,
        204,
        "policy access allows delete"
    );
}

on_both_roles!(
    other_org_admin_is_refused_a_private_object,
    other_org_admin_reads_a_public_object_only_on_the_css,
    edge_node_key_is_refused_everywhere,
    missing_credentials_are_403_unauthorized,
);
