//! `/api/v1/security/...`: ACL management on the CSS (rest-api.md §7, security.md §6.2),
//! driven through the real binary.

mod common;

use common::{Resp, TestNode, ADMIN, EDGE_NODE, ORG, ORG_ADMIN, SYNC_ADMIN};
use serde_json::{json, Value};

const OBJECTS: &str = "/api/v1/security/objects/org";
const DESTINATIONS: &str = "/api/v1/security/destinations/org";
/// A regular user of `org` (listed in `regularUsers`).
const USER: &str = "bob@org";
/// Org admin of another org.
const OTHER_ORG_ADMIN: &str = "carol@other";
/// A node user of `org`.
const NODE_USER: &str = "n1%org";

fn entry(name: &str, user_type: &str, role: &str) -> Value {
    json!({"Username": name, "ACLUserType": user_type, "ACLRole": role})
}

fn add(entries: &[Value]) -> Value {
    json!({"action": "add", "users": entries})
}

fn remove(entries: &[Value]) -> Value {
    json!({"action": "remove", "users": entries})
}

/// `(name, user type, role)` of every entry in a listing.
fn triples(response: &Resp) -> Vec<(String, String, String)> {
    assert_eq!(response.status, 200, "{}", response.text());
    response
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["Username"].as_str().unwrap().to_string(),
                e["ACLUserType"].as_str().unwrap().to_string(),
                e["ACLRole"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn t(name: &str, user_type: &str, role: &str) -> (String, String, String) {
    (name.into(), user_type.into(), role.into())
}

async fn put_ok(api: &common::Api, path: &str, body: &Value) {
    let response = api.put_json_as(ORG_ADMIN, path, body).await;
    assert_eq!(response.status, 204, "PUT {path} {body}: {}", response.text());
    assert!(response.body.is_empty());
}

async fn keys(api: &common::Api, base: &str) -> Resp {
    api.get_as(ORG_ADMIN, &format!("{base}?all_keys=true")).await
}

#[tokio::test]
async fn objects_acl_round_trip() {
    let node = TestNode::css();
    let api = node.api();
    let model = format!("{OBJECTS}/model");
    assert_eq!(api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await.status, 404);
    put_ok(
        &api,
        &model,
        &add(&[entry("bob", "user", "aclWriter"), entry("n1", "node", "aclReader")]),
    )
    .await;
    let listed = api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await;
    assert_eq!(listed.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        triples(&listed),
        vec![t("bob", "user", "aclWriter"), t("n1", "node", "aclReader")]
    );
    // The wire keys are the original's capitalised names.
    assert_eq!(
        listed.json()[0],
        json!({"Username": "bob", "ACLUserType": "user", "ACLRole": "aclWriter"})
    );
    assert_eq!(keys(&api, OBJECTS).await.json(), json!(["model"]));
    // Keys of the other kind are separate.
    assert_eq!(keys(&api, DESTINATIONS).await.status, 404);

    put_ok(&api, &model, &remove(&[entry("bob", "user", "whatever")])).await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![t("n1", "node", "aclReader")]
    );
    put_ok(&api, &model, &remove(&[entry("n1", "node", "")])).await;
    let gone = api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await;
    assert_eq!(gone.status, 404, "removing the last entry deletes the ACL");
    assert!(gone.body.is_empty(), "404 has an empty body");
    let no_keys = keys(&api, OBJECTS).await;
    assert_eq!(no_keys.status, 404);
    assert!(no_keys.body.is_empty());
}

#[tokio::test]
async fn destinations_acl_round_trip_forces_role_na() {
    let node = TestNode::css();
    let api = node.api();
    let edge = format!("{DESTINATIONS}/edge");
    put_ok(
        &api,
        &edge,
        &add(&[
            entry("bob", "user", "aclWriter"),
            entry("n1", "node", "nonsense"),
            json!({"Username": "carl", "ACLUserType": "user"}),
        ]),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{DESTINATIONS}?key=edge")).await),
        vec![t("bob", "user", "na"), t("n1", "node", "na"), t("carl", "user", "na")]
    );
    assert_eq!(keys(&api, DESTINATIONS).await.json(), json!(["edge"]));
    assert_eq!(keys(&api, OBJECTS).await.status, 404);
    let response = api.delete_as(ORG_ADMIN, &format!("{edge}/user/bob")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    put_ok(
        &api,
        &edge,
        &remove(&[entry("n1", "node", "na"), entry("carl", "user", "na")]),
    )
    .await;
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{DESTINATIONS}?key=edge")).await.status,
        404
    );
    assert_eq!(keys(&api, DESTINATIONS).await.status, 404);
}

#[tokio::test]
async fn org_wide_acl_via_no_key_and_star() {
    let node = TestNode::css();
    let api = node.api();
    put_ok(&api, OBJECTS, &add(&[entry("bob", "user", "aclReader")])).await;
    put_ok(&api, &format!("{OBJECTS}/*"), &add(&[entry("*", "node", "aclWriter")])).await;
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &add(&[entry("x", "user", "aclWriter")]),
    )
    .await;
    let expected = vec![t("*", "node", "aclWriter"), t("bob", "user", "aclReader")];
    assert_eq!(triples(&api.get_as(ORG_ADMIN, OBJECTS).await), expected);
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=*")).await),
        expected
    );
    assert_eq!(triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}/*")).await), expected);
    // Trailing slash tolerated.
    assert_eq!(triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}/")).await), expected);
    let mut listed: Vec<String> = serde_json::from_value(keys(&api, OBJECTS).await.json()).unwrap();
    listed.sort();
    assert_eq!(listed, vec!["*".to_string(), "model".to_string()]);
    // The star entry can be removed by path.
    let response = api.delete_as(ORG_ADMIN, &format!("{OBJECTS}/*/node/*")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, OBJECTS).await),
        vec![t("bob", "user", "aclReader")]
    );
}

#[tokio::test]
async fn usertype_filter_and_key_in_path() {
    let node = TestNode::css();
    let api = node.api();
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &add(&[
            entry("bob", "user", "aclWriter"),
            entry("n1", "node", "aclReader"),
            entry("bob", "node", "aclWriter"),
        ]),
    )
    .await;
    assert_eq!(
        triples(
            &api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model&acl_usertype=node"))
                .await
        ),
        vec![t("n1", "node", "aclReader"), t("bob", "node", "aclWriter")]
    );
    assert_eq!(
        triples(
            &api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model?acl_usertype=user"))
                .await
        ),
        vec![t("bob", "user", "aclWriter")]
    );
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model&acl_usertype=admin"))
            .await
            .status,
        400
    );
    // A filter that matches nothing is an empty list: 404.
    put_ok(
        &api,
        &format!("{OBJECTS}/users-only"),
        &add(&[entry("bob", "user", "aclWriter")]),
    )
    .await;
    let none = api
        .get_as(ORG_ADMIN, &format!("{OBJECTS}?key=users-only&acl_usertype=node"))
        .await;
    assert_eq!(none.status, 404);
    assert!(none.body.is_empty());
    // The key in the path (extension) reads that key's ACL, not the org-wide one.
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model"))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(api.get_as(ORG_ADMIN, OBJECTS).await.status, 404);
    // Bad booleans are 400.
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{OBJECTS}?all_keys=maybe")).await.status,
        400
    );
    // More than one segment after the org on GET is 400.
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model/user")).await.status,
        400
    );
}

#[tokio::test]
async fn add_replaces_same_entry_and_puts_new_entries_first() {
    let node = TestNode::css();
    let api = node.api();
    let model = format!("{OBJECTS}/model");
    put_ok(
        &api,
        &model,
        &add(&[entry("a", "user", "aclWriter"), entry("b", "user", "aclWriter")]),
    )
    .await;
    put_ok(
        &api,
        &model,
        &add(&[entry("c", "user", "aclReader"), entry("a", "user", "aclReader")]),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![
            t("c", "user", "aclReader"),
            t("a", "user", "aclReader"),
            t("b", "user", "aclWriter")
        ],
        "replaced and new entries come before the surviving old ones"
    );
    // Same name with the other user type is a different entry.
    put_ok(&api, &model, &add(&[entry("a", "node", "aclWriter")])).await;
    assert_eq!(
        api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model"))
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
    // Keys and the action are matched case-insensitively.
    put_ok(
        &api,
        &model,
        &json!({"ACTION": "Remove", "Users": [{"username": "a", "aclusertype": "node"}]}),
    )
    .await;
    put_ok(
        &api,
        &model,
        &json!({"action": "ADD", "users": [{"username": "b", "aclUserType": "user", "aclRole": "aclReader"}]}),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![
            t("b", "user", "aclReader"),
            t("c", "user", "aclReader"),
            t("a", "user", "aclReader")
        ]
    );
}

#[tokio::test]
async fn empty_add_and_missing_acl_removals_are_no_ops() {
    let node = TestNode::css();
    let api = node.api();
    put_ok(&api, &format!("{OBJECTS}/model"), &add(&[])).await;
    put_ok(&api, &format!("{OBJECTS}/model"), &json!({"action": "add"})).await;
    assert_eq!(keys(&api, OBJECTS).await.status, 404, "an empty add creates nothing");
    put_ok(
        &api,
        &format!("{OBJECTS}/missing"),
        &remove(&[entry("bob", "user", "aclWriter")]),
    )
    .await;
    let response = api.delete_as(ORG_ADMIN, &format!("{OBJECTS}/missing/user/bob")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(keys(&api, OBJECTS).await.status, 404);
    // Removing an unknown entry from an existing ACL leaves it alone.
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &add(&[entry("bob", "user", "aclWriter")]),
    )
    .await;
    let response = api.delete_as(ORG_ADMIN, &format!("{OBJECTS}/model/node/bob")).await;
    assert_eq!(response.status, 204);
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![t("bob", "user", "aclWriter")]
    );
}

#[tokio::test]
async fn invalid_payloads_are_400_and_store_nothing() {
    let node = TestNode::css();
    let api = node.api();
    let model = format!("{OBJECTS}/model");
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &model,
            &json!({"action": "x", "users": [entry("a", "user", "aclWriter")]}),
        )
        .await;
    assert_eq!(
        (response.status, response.text()),
        (400, "Invalid action (x) in payload.\n".to_string())
    );
    let good = entry("good", "user", "aclWriter");
    for (kind_path, bad) in [
        (&model, entry("a", "admin", "aclWriter")),
        (&model, entry("", "user", "aclWriter")),
        (&model, entry("   ", "user", "aclWriter")),
        (&model, entry("a", "user", "na")),
        (&model, entry("a", "user", "")),
        (&model, json!({"Username": "a"})),
        (&model, entry("a<script>", "user", "aclWriter")),
        (&model, entry("a\u{1}b", "user", "aclWriter")),
    ] {
        let response = api
            .put_json_as(ORG_ADMIN, kind_path, &add(&[good.clone(), bad.clone()]))
            .await;
        assert_eq!(response.status, 400, "{bad}: {}", response.text());
        assert!(
            response.text().starts_with("Invalid ACL entry for update. Error: "),
            "{bad}: {}",
            response.text()
        );
    }
    // Destinations ACLs need a valid user type and name too; remove needs them as well.
    let edge = format!("{DESTINATIONS}/edge");
    for (path, body) in [
        (&edge, add(&[good.clone(), entry("a", "nobody", "na")])),
        (&edge, add(&[good.clone(), entry("", "user", "na")])),
        (&model, remove(&[entry("a", "admin", "")])),
        (&model, remove(&[entry("", "user", "")])),
    ] {
        let response = api.put_json_as(ORG_ADMIN, path, &body).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
    }
    // Wrong JSON shapes.
    for body in [
        "not json",
        "[]",
        r#"{"action":"add","users":"bob"}"#,
        r#"{"action":"add","users":[{"Username":5,"ACLUserType":"user","ACLRole":"aclWriter"}]}"#,
        r#"{"action":["add"]}"#,
        r#"{"action":"add","usernames":"bob"}"#,
    ] {
        let response = api
            .send(api.request(reqwest::Method::PUT, &model, Some(ORG_ADMIN)).body(body))
            .await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        assert!(
            response.text().starts_with("Invalid JSON for update. Error: "),
            "{body}: {}",
            response.text()
        );
    }
    assert_eq!(keys(&api, OBJECTS).await.status, 404, "nothing stored");
    assert_eq!(keys(&api, DESTINATIONS).await.status, 404, "nothing stored");
    node.assert_healthy().await;
}

#[tokio::test]
async fn route_shapes_and_path_names() {
    let node = TestNode::css();
    let api = node.api();
    // Bare prefix redirects to the slash form; the empty remainder is 400.
    let bare = api.get_as(ORG_ADMIN, "/api/v1/security?all_keys=true").await;
    assert_eq!(bare.status, 301);
    assert_eq!(
        bare.header("location").as_deref(),
        Some("/api/v1/security/?all_keys=true")
    );
    assert_eq!(api.get_as(ORG_ADMIN, "/api/v1/security/").await.status, 400);
    assert_eq!(api.get_as(ORG_ADMIN, "/api/v1/security/objects").await.status, 400);
    // Unknown ACL type: 400 after authentication.
    let response = api.get_as(ORG_ADMIN, "/api/v1/security/widgets/org").await;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("widgets"), "{}", response.text());
    let response = api
        .put_json_as(
            ORG_ADMIN,
            "/api/v1/security/widgets/org/k",
            &add(&[entry("a", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 400);
    let anonymous = api
        .send(api.request(reqwest::Method::GET, "/api/v1/security/widgets/org", None))
        .await;
    assert_eq!(anonymous.status, 403, "the ACL type is checked after the caller");
    // PUT with more than one segment after {org}/{key} is 400 and changes nothing.
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("{OBJECTS}/model/user"),
            &add(&[entry("a", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 400);
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("{OBJECTS}/model/user/a"),
            &add(&[entry("a", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(keys(&api, OBJECTS).await.status, 404);
    // DELETE needs exactly key, user type and name; the user type is user or node.
    for path in [
        OBJECTS.to_string(),
        format!("{OBJECTS}/model"),
        format!("{OBJECTS}/model/user"),
        format!("{OBJECTS}/model/admin/bob"),
        format!("{OBJECTS}/model/user/bob/extra"),
    ] {
        assert_eq!(api.delete_as(ORG_ADMIN, &path).await.status, 400, "DELETE {path}");
    }
    // Other methods: 405 for an allowed caller, 403 otherwise.
    assert_eq!(api.post_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await.status, 405);
    assert_eq!(api.post_as(ADMIN, &format!("{OBJECTS}/model")).await.status, 403);
    // Names in the path: invalid characters are 400 with the value escaped, never 5xx.
    let response = api.get_as(ORG_ADMIN, "/api/v1/security/objects/org/a%3Cb").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.text(), "ACL key (a&lt;b) contains invalid characters\n");
    let response = api.get_as(ORG_ADMIN, "/api/v1/security/objects/o%3Ex").await;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("organization ID"), "{}", response.text());
    let response = api.delete_as(ORG_ADMIN, &format!("{OBJECTS}/model/user/a%20b")).await;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("username"), "{}", response.text());
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("{OBJECTS}/a%3Ab"),
            &add(&[entry("a", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 400, "':' is not a name character");
    // A percent-encoded slash is never a separator.
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("{OBJECTS}/a%2Fb"),
            &add(&[entry("a", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 400);
    // Literal traversal is cleaned by redirect; encoded traversal is refused.
    for target in ["/api/v1/security/objects/org/..", "/api/v1/security/objects//org"] {
        let response = node.raw_get(target, ORG_ADMIN);
        assert_eq!(response.status, 301, "{target}");
    }
    for target in [
        "/api/v1/security/objects/org/%2E%2E/x",
        "/api/v1/security/objects/org/a%2F..%2F..%2Fother",
        "/api/v1/security/objects/org/%00",
        "/api/v1/security/objects/org/%FF",
        "/api/v1/security/objects/org/a%2F%3C",
    ] {
        let response = node.raw_get(target, ORG_ADMIN);
        assert_eq!(response.status, 400, "{target}");
    }
    assert_eq!(keys(&api, OBJECTS).await.status, 404);
    node.assert_healthy().await;
}

#[tokio::test]
async fn only_org_admins_of_the_org_and_sync_admins() {
    let node = TestNode::css();
    let api = node.api();
    let model = format!("{OBJECTS}/model");
    put_ok(&api, &model, &add(&[entry("bob", "user", "aclWriter")])).await;
    for user in [ADMIN, USER, OTHER_ORG_ADMIN, EDGE_NODE, NODE_USER] {
        let listed = api.get_as(user, &format!("{OBJECTS}?key=model")).await;
        assert_eq!(
            (listed.status, listed.text()),
            (403, "Unauthorized".to_string()),
            "GET as {user}"
        );
        let keys = api.get_as(user, &format!("{OBJECTS}?all_keys=true")).await;
        assert_eq!(keys.status, 403, "all_keys as {user}");
        let put = api
            .put_json_as(user, &model, &add(&[entry("x", "user", "aclWriter")]))
            .await;
        assert_eq!(put.status, 403, "PUT as {user}");
        let delete = api.delete_as(user, &format!("{model}/user/bob")).await;
        assert_eq!(delete.status, 403, "DELETE as {user}");
    }
    let anonymous = api
        .send(api.request(reqwest::Method::GET, &format!("{OBJECTS}?key=model"), None))
        .await;
    assert_eq!((anonymous.status, anonymous.text()), (403, "Unauthorized".to_string()));
    let anonymous = api
        .send(
            api.request(reqwest::Method::PUT, &model, None)
                .body(add(&[entry("x", "user", "aclWriter")]).to_string()),
        )
        .await;
    assert_eq!(anonymous.status, 403);
    // The other org's admin may manage its own org's ACLs.
    let response = api
        .put_json_as(
            OTHER_ORG_ADMIN,
            "/api/v1/security/objects/other/model",
            &add(&[entry("z", "user", "aclWriter")]),
        )
        .await;
    assert_eq!(response.status, 204);
    // Nothing changed in org.
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![t("bob", "user", "aclWriter")]
    );
    // A sync admin may manage any org.
    let response = api
        .put_json_as(SYNC_ADMIN, &model, &add(&[entry("ops", "user", "aclReader")]))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(
        triples(&api.get_as(SYNC_ADMIN, &format!("{OBJECTS}?key=model")).await),
        vec![t("ops", "user", "aclReader"), t("bob", "user", "aclWriter")]
    );
    assert_eq!(
        api.delete_as(SYNC_ADMIN, &format!("{model}/user/ops")).await.status,
        204
    );
    assert_eq!(
        api.get_as(SYNC_ADMIN, "/api/v1/security/objects/other?all_keys=1")
            .await
            .json(),
        json!(["model"])
    );
}

#[tokio::test]
async fn usernames_extension() {
    let node = TestNode::css();
    let api = node.api();
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &json!({"action": "add", "usernames": ["a", "b"]}),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await),
        vec![t("a", "user", "aclWriter"), t("b", "user", "aclWriter")]
    );
    put_ok(&api, DESTINATIONS, &json!({"action": "add", "usernames": ["a"]})).await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, DESTINATIONS).await),
        vec![t("a", "user", "na")]
    );
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &json!({"action": "remove", "usernames": ["a"]}),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await),
        vec![t("b", "user", "aclWriter")]
    );
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("{OBJECTS}/model"),
            &json!({"action": "add", "usernames": ["c", ""]}),
        )
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await),
        vec![t("b", "user", "aclWriter")],
        "nothing stored"
    );
}

/// The original's SDKs and management tool send ACL entries under `usernames`: they must
/// change the ACL as entries under `users` do.
#[tokio::test]
async fn entries_under_usernames_as_the_original_tools_send_them() {
    let node = TestNode::css();
    let api = node.api();
    let path = format!("{OBJECTS}/model");
    put_ok(
        &api,
        &path,
        &json!({"action": "add", "usernames": [entry("bob", "user", "aclReader"), entry("n1", "node", "aclWriter")]}),
    )
    .await;
    let mut listed = triples(&api.get_as(ORG_ADMIN, &path).await);
    listed.sort();
    assert_eq!(
        listed,
        vec![t("bob", "user", "aclReader"), t("n1", "node", "aclWriter")]
    );
    put_ok(
        &api,
        &path,
        &json!({"action": "remove", "usernames": [entry("n1", "node", "")]}),
    )
    .await;
    assert_eq!(
        triples(&api.get_as(ORG_ADMIN, &path).await),
        vec![t("bob", "user", "aclReader")]
    );
}

#[tokio::test]
async fn go_style_json_escapes_markup_characters() {
    let node = TestNode::css();
    let api = node.api();
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &add(&[entry("a&b", "user", "aclWriter")]),
    )
    .await;
    let response = api.get_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await;
    assert!(response.text().contains(r#""a\u0026b""#), "{}", response.text());
}

#[tokio::test]
async fn deleting_the_organization_removes_its_acls() {
    let node = TestNode::css();
    let api = node.api();
    let response = api
        .put_json_as(
            ORG_ADMIN,
            &format!("/api/v1/organizations/{ORG}"),
            &json!({"orgID": ORG}),
        )
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    put_ok(
        &api,
        &format!("{OBJECTS}/model"),
        &add(&[entry("bob", "user", "aclWriter")]),
    )
    .await;
    put_ok(&api, DESTINATIONS, &add(&[entry("bob", "user", "na")])).await;
    let response = api.delete_as(ORG_ADMIN, &format!("/api/v1/organizations/{ORG}")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(keys(&api, OBJECTS).await.status, 404);
    assert_eq!(keys(&api, DESTINATIONS).await.status, 404);
}

#[tokio::test]
async fn acls_survive_a_restart() {
    let mut node = TestNode::css();
    put_ok(
        &node.api(),
        &format!("{OBJECTS}/model"),
        &add(&[entry("bob", "user", "aclWriter")]),
    )
    .await;
    node.restart();
    assert_eq!(
        triples(&node.api().get_as(ORG_ADMIN, &format!("{OBJECTS}/model")).await),
        vec![t("bob", "user", "aclWriter")]
    );
}

#[tokio::test]
async fn the_ess_has_no_security_routes() {
    let node = TestNode::ess();
    let api = node.api();
    for path in [
        "/api/v1/security",
        "/api/v1/security/",
        "/api/v1/security/objects/org",
        "/api/v1/security/objects/model",
        "/api/v1/security/destinations/org/edge/user/bob",
    ] {
        for user in [ORG_ADMIN, SYNC_ADMIN] {
            let response = api.get_as(user, path).await;
            assert_eq!(response.status, 404, "GET {path}");
            assert_eq!(response.text(), "404 page not found\n");
            assert_eq!(
                response.header("content-type").as_deref(),
                Some("text/plain; charset=utf-8")
            );
        }
        let response = api
            .put_json_as(ORG_ADMIN, path, &add(&[entry("bob", "user", "aclWriter")]))
            .await;
        assert_eq!(response.status, 404, "PUT {path}");
        assert_eq!(api.delete_as(ORG_ADMIN, path).await.status, 404, "DELETE {path}");
    }
}
