//! Routes beside the objects on both roles: health, resend, shutdown, destinations and
//! organizations, plus what the router itself answers (unknown paths, redirects, the
//! common headers).

mod common;

use common::{Role, TestNode, ADMIN, EDGE_NODE, ORG_ADMIN, SYNC_ADMIN};
use serde_json::json;
use std::time::Duration;

async fn health_reports_node_type_and_db(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let response = api.get("/api/v1/health").await;
    assert_eq!(response.status, 200);
    let report = response.json();
    let node_type = if role == Role::Css { "CSS" } else { "ESS" };
    assert_eq!(report["general"]["nodeType"], node_type);
    assert_eq!(report["general"]["healthStatus"], "green");
    assert!(report["general"]["upTime"].is_u64());
    assert_eq!(report["dbHealth"]["dbStatus"], "green");
    assert!(report.get("usage").is_none(), "usage only with details=true");
}

async fn health_details_count_stored_objects(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    api.create(&node.obj("model", "a"), json!({}), None).await;
    api.create(&node.obj("model", "b"), json!({}), Some(b"x")).await;
    let report = api.get("/api/v1/health?details=true").await.json();
    assert_eq!(report["usage"]["storedObjects"], 2);
    assert_eq!(report["usage"]["registeredESS"], 0);
    assert!(report["usage"]["clientRequests"].as_u64().unwrap() >= 2);
    assert_eq!(api.get("/api/v1/health?details=maybe").await.status, 400);
}

async fn health_refuses_missing_credentials_and_edge_nodes(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let anonymous = api
        .send(api.request(reqwest::Method::GET, "/api/v1/health", None))
        .await;
    assert_eq!((anonymous.status, anonymous.text()), (403, "Unauthorized".to_string()));
    assert!(anonymous.header("www-authenticate").is_none(), "never a 401 challenge");
    assert_eq!(api.get_as(EDGE_NODE, "/api/v1/health").await.status, 403);
}

async fn resend_is_204_on_ess_and_400_on_css(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let response = api.post_as(ORG_ADMIN, "/api/v1/resend").await;
    match role {
        Role::Ess => assert_eq!(response.status, 204),
        Role::Css => {
            assert_eq!(response.status, 400);
            assert!(
                response.text().contains("CSS can't request to resend"),
                "{}",
                response.text()
            );
        }
    }
    assert_eq!(api.post_as(ADMIN, "/api/v1/resend").await.status, 403, "object admin");
    assert_eq!(api.get_as(ORG_ADMIN, "/api/v1/resend").await.status, 405);
}

async fn shutdown_needs_a_sync_admin(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    for user in [ADMIN, ORG_ADMIN, EDGE_NODE] {
        let response = api.post_as(user, "/api/v1/shutdown").await;
        assert_eq!(
            (response.status, response.text()),
            (403, "Unauthorized".into()),
            "{user}"
        );
    }
    assert_eq!(api.get_as(SYNC_ADMIN, "/api/v1/shutdown").await.status, 405);
    node.assert_healthy().await;
}

async fn shutdown_by_sync_admin_exits_zero(role: Role) {
    let mut node = TestNode::of(role);
    let api = node.api();
    let response = api.post_as(SYNC_ADMIN, "/api/v1/shutdown").await;
    assert_eq!(response.status, 204);
    let status = node
        .wait_exit(Duration::from_secs(20))
        .expect("the service exits after a shutdown request");
    assert_eq!(status.code(), Some(0), "{}", node.log());
}

async fn unknown_path_is_plain_404(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    for path in ["/api/v1/nothing", "/", "/api/v2/objects/x"] {
        let response = api.get(path).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.text(), "404 page not found\n");
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert!(response.header("cache-control").is_none(), "no API headers on {path}");
    }
}

async fn api_responses_carry_common_headers(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    api.create(&node.obj("model", "h"), json!({}), None).await;
    let responses = [
        api.get("/api/v1/health").await,
        api.get(&node.obj("model", "h")).await,
        api.get(&node.obj("model", "absent")).await,
        api.get_as(EDGE_NODE, &node.obj("model", "h")).await,
    ];
    for response in responses {
        assert_eq!(
            response.header("cache-control").as_deref(),
            Some("no-store, no-cache, must-revalidate"),
            "status {}",
            response.status
        );
        assert_eq!(response.header("pragma").as_deref(), Some("no-cache"));
        assert_eq!(
            response.header("strict-transport-security").as_deref(),
            Some("max-age=63072000; includeSubDomains; preload")
        );
    }
}

async fn bare_prefix_and_unclean_paths_redirect(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let bare = api.get("/api/v1/objects?x=1").await;
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location").as_deref(), Some("/api/v1/objects/?x=1"));
    let object = node.obj("model", "m");
    let doubled = object.replacen("/model", "//model", 1);
    let response = api.get(&doubled).await;
    assert_eq!(response.status, 301);
    assert_eq!(response.header("location").as_deref(), Some(object.as_str()));
    // reqwest would resolve `..` itself, so this one goes out raw.
    let dotted = node.raw_get(&format!("{}/x/../m", node.type_path("model")), ADMIN);
    assert_eq!(dotted.status, 301);
    assert_eq!(dotted.header("location"), Some(object.as_str()));
}

async fn destinations_listing_differs_by_role(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    match role {
        Role::Css => {
            let none = api.get("/api/v1/destinations/org").await;
            assert_eq!((none.status, none.text()), (404, String::new()));
            let objects = api.get("/api/v1/destinations/org/edge/node1/objects").await;
            assert_eq!(objects.status, 404);
            assert_eq!(api.get("/api/v1/destinations/org/edge/node1/other").await.status, 400);
            assert_eq!(api.get_as(EDGE_NODE, "/api/v1/destinations/org").await.status, 403);
            assert_eq!(api.get_as("other/admin", "/api/v1/destinations/org").await.status, 403);
            assert_eq!(api.get("/api/v1/destinations").await.status, 301);
        }
        Role::Ess => {
            assert_eq!(api.get("/api/v1/destinations").await.status, 400);
            assert_eq!(api.put_empty_as(ADMIN, "/api/v1/destinations").await.status, 405);
            let nested = api.get("/api/v1/destinations/org").await;
            assert_eq!(nested.text(), "404 page not found\n");
            // The original's management tool lists destinations with a trailing slash and
            // shows the 404 as an empty list.
            let slash = api.get("/api/v1/destinations/").await;
            assert_eq!((slash.status, slash.text()), (404, "404 page not found\n".to_string()));
        }
    }
}

async fn organizations_are_css_only(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let body = json!({"orgID": "org", "address": "tcp://broker:1883"});
    let put = api.put_json_as(ORG_ADMIN, "/api/v1/organizations/org", &body).await;
    let list = api.get_as(ORG_ADMIN, "/api/v1/organizations").await;
    match role {
        Role::Ess => {
            assert_eq!(put.status, 400);
            assert_eq!(list.status, 400);
            assert!(
                list.text().contains("ESS doesn't have organizations"),
                "{}",
                list.text()
            );
        }
        Role::Css => {
            assert_eq!(put.status, 204, "{}", put.text());
            assert_eq!(list.status, 200);
            assert_eq!(list.json(), json!([{"org-id": "org", "address": "tcp://broker:1883"}]));
            let slash = api.get_as(ORG_ADMIN, "/api/v1/organizations/").await;
            assert_eq!(slash.status, 200);
            let deleted = api.delete_as(ORG_ADMIN, "/api/v1/organizations/org").await;
            assert_eq!(deleted.status, 204);
            let empty = api.get_as(ORG_ADMIN, "/api/v1/organizations").await;
            assert_eq!((empty.status, empty.text()), (404, String::new()));
        }
    }
}

#[tokio::test]
async fn css_organizations_need_an_org_admin_and_matching_body() {
    let node = TestNode::css();
    let api = node.api();
    let body = json!({"orgID": "org", "address": "tcp://broker:1883"});
    let object_admin = api.put_json_as(ADMIN, "/api/v1/organizations/org", &body).await;
    assert_eq!(object_admin.status, 403);
    let foreign = api.put_json_as("bob@other", "/api/v1/organizations/org", &body).await;
    assert_eq!(foreign.status, 403);
    let mismatch = api
        .put_json_as(ORG_ADMIN, "/api/v1/organizations/org", &json!({"orgID": "zzz"}))
        .await;
    assert_eq!(mismatch.status, 400);
    assert!(!mismatch.body.is_empty());
    assert_eq!(api.get_as(ADMIN, "/api/v1/organizations").await.status, 403);
    assert_eq!(api.post_as(ORG_ADMIN, "/api/v1/organizations/org").await.status, 405);
    assert_eq!(api.get_as(ORG_ADMIN, "/api/v1/organizations/a/b").await.status, 400);
    let sync_admin = api.put_json_as(SYNC_ADMIN, "/api/v1/organizations/org", &body).await;
    assert_eq!(sync_admin.status, 204);
}

#[tokio::test]
async fn ess_objects_root_is_400() {
    let node = TestNode::ess();
    let api = node.api();
    let response = api.get("/api/v1/objects/?list_object_type=true").await;
    assert_eq!(response.status, 400);
}

on_both_roles!(
    health_reports_node_type_and_db,
    health_details_count_stored_objects,
    health_refuses_missing_credentials_and_edge_nodes,
    resend_is_204_on_ess_and_400_on_css,
    shutdown_needs_a_sync_admin,
    shutdown_by_sync_admin_exits_zero,
    unknown_path_is_plain_404,
    api_responses_carry_common_headers,
    bare_prefix_and_unclean_paths_redirect,
    destinations_listing_differs_by_role,
    organizations_are_css_only,
);
