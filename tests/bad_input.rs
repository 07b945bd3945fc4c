//! Bad input gets a clear 4xx, never a 5xx, and the node keeps serving (the health route
//! is checked after every case).

mod common;

use base64::Engine as _;
use common::{basic, Role, TestNode, ADMIN};
use serde_json::json;

/// Asserts a client error with a non-empty explanation.
fn assert_explained_4xx(status: u16, body: &str, what: &str) {
    assert!((400..500).contains(&status), "{what}: status {status}, body {body}");
    assert!(!body.trim().is_empty(), "{what}: empty body");
}

async fn invalid_characters_in_names_are_400(role: Role) {
    let node = TestNode::of(role);
    let base = node.type_path("model");
    for (target, shown) in [
        (format!("{base}/x%3Cy"), "x&lt;y"),
        (format!("{base}/a%00b"), "a"),
        (format!("{base}/a%20b"), "a b"),
        (format!("{base}/a:b"), "a:b"),
        (
            format!("{}/ba%3Ed/id", node.type_path("model").replace("/model", "")),
            "ba&gt;d",
        ),
    ] {
        // Unauthenticated on purpose: names are checked before credentials.
        let response = node
            .raw(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
            .expect("raw request");
        assert_eq!(response.status, 400, "{target}: {}", response.text());
        assert!(response.text().contains("contains invalid characters"), "{target}");
        assert!(response.text().contains(shown), "{target}: {}", response.text());
        node.assert_healthy().await;
    }
}

async fn dot_segments_never_reach_a_handler(role: Role) {
    let node = TestNode::of(role);
    let base = node.type_path("model");
    // Literal dot segments are cleaned by a redirect built from the raw path, as the
    // original's router does.
    for (target, cleaned) in [
        (format!("{base}/a/../b"), format!("{base}/b")),
        (format!("{base}/a/./b%20c"), format!("{base}/a/b%20c")),
    ] {
        let response = node.raw_get(&target, ADMIN);
        assert_eq!(response.status, 301, "{target}: {}", response.text());
        assert_eq!(response.header("location"), Some(cleaned.as_str()), "{target}");
    }
    // Encoded ones would name another resource once decoded: refused, on every method.
    for target in [
        format!("{base}/t/..%2F..%2Fetc%2Fpasswd"),
        format!("{base}/a%2F.."),
        format!("{base}/%2E%2E/x"),
        format!("{base}/a%2fb/c"),
        format!("{base}/a/%2e"),
        format!("{base}/a/../b%2Fc"),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let response = node
                .raw(&format!(
                    "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 2\r\n\r\n{{}}",
                    basic(ADMIN)
                ))
                .expect("raw request");
            assert_eq!(response.status, 400, "{method} {target}: {}", response.text());
            assert!(response.header("location").is_none(), "{method} {target}");
            assert!(
                response.text().contains("decodes to a '/'"),
                "{method} {target}: {}",
                response.text()
            );
        }
        node.assert_healthy().await;
    }
}

async fn very_long_names_are_accepted(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let long_id = "i".repeat(4000);
    let long_type = "t".repeat(2000);
    let path = node.obj(&long_type, &long_id);
    api.create(&path, json!({}), Some(b"long")).await;
    assert_eq!(api.meta(&path).await["objectID"], long_id.as_str());
    assert_eq!(api.data(&path).await, b"long");
    node.assert_healthy().await;
}

async fn malformed_object_bodies_are_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "m1");
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{\"meta\": {".into(), "Invalid JSON for update"),
        ("empty body", String::new(), "Invalid JSON"),
        // Decoded leniently as an empty meta, then refused for the missing ID.
        ("meta is an array", json!({"meta": []}).to_string(), ""),
        (
            "objectID is a number",
            json!({"meta": {"objectID": 5, "objectType": "model"}}).to_string(),
            "Invalid JSON",
        ),
        (
            "consumers is text",
            json!({"meta": {"objectID": "m1", "objectType": "model", "consumers": "many"}}).to_string(),
            "Invalid JSON",
        ),
        (
            "objectID mismatch",
            json!({"meta": {"objectID": "m2", "objectType": "model"}}).to_string(),
            "doesn't match",
        ),
        (
            "objectType mismatch",
            json!({"meta": {"objectID": "m1", "objectType": "other"}}).to_string(),
            "",
        ),
        (
            "deleted true",
            json!({"meta": {"objectID": "m1", "objectType": "model", "deleted": true}}).to_string(),
            "Object marked as deleted",
        ),
        (
            "metaOnly with data",
            json!({"meta": {"objectID": "m1", "objectType": "model", "metaOnly": true}, "data": "aGk="}).to_string(),
            "Can't update data if MetaOnly is true",
        ),
        (
            "bad base64",
            json!({"meta": {"objectID": "m1", "objectType": "model"}, "data": "%%%not base64"}).to_string(),
            "base64",
        ),
        (
            "bad hash algorithm",
            json!({"meta": {"objectID": "m1", "objectType": "model", "hashAlgorithm": "MD5"}}).to_string(),
            "MD5",
        ),
    ];
    for (what, body, needle) in cases {
        let response = api
            .send(api.request(reqwest::Method::PUT, &path, Some(ADMIN)).body(body))
            .await;
        assert_explained_4xx(response.status, &response.text(), what);
        assert_eq!(response.status, 400, "{what}");
        assert!(response.text().contains(needle), "{what}: {}", response.text());
        node.assert_healthy().await;
    }
    assert_eq!(api.get(&path).await.status, 404, "nothing was stored");
}

async fn metadata_body_over_64_mib_is_413(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "huge");
    let mut body = b"{\"meta\":{\"objectID\":\"huge\",\"objectType\":\"model\"},\"data\":\"".to_vec();
    body.resize(64 * 1024 * 1024 + 1, b'A');
    let response = api
        .send(api.request(reqwest::Method::PUT, &path, Some(ADMIN)).body(body))
        .await;
    assert_explained_4xx(response.status, &response.text(), "huge body");
    assert_eq!(response.status, 413);
    assert_eq!(api.get(&path).await.status, 404);
    node.assert_healthy().await;
}

async fn malformed_content_range_is_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "chunky");
    api.create(&path, json!({}), None).await;
    for header in [
        "bytes x-y/10",
        "bytes 5-1/10",
        "bytes 0-9/*",
        "items 0-9/10",
        "bytes 0-9",
        "bytes 20-29/10",
        "",
    ] {
        let response = api
            .send(
                api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
                    .header("Content-Range", header)
                    .body("0123456789"),
            )
            .await;
        assert_eq!(response.status, 400, "{header:?}: {}", response.text());
        assert!(
            response.text().starts_with("Failed to parse Content-Range header"),
            "{header:?}: {}",
            response.text()
        );
        node.assert_healthy().await;
    }
    let overflowing = api
        .send(
            api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
                .header("Content-Range", "bytes 0-3/4")
                .body("more than four bytes"),
        )
        .await;
    assert_explained_4xx(overflowing.status, &overflowing.text(), "chunk past the total");
    assert_eq!(api.status_of(&path).await, "notReady");
}

async fn malformed_range_is_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "ranged");
    api.create(&path, json!({}), Some(b"0123456789")).await;
    for header in [
        "bytes=abc",
        "bytes=9-1",
        "junk",
        "byt",
        "bytes=",
        "bytes=0-1,3-4",
        "bytes=-",
    ] {
        let response = api
            .send(
                api.request(reqwest::Method::GET, &format!("{path}/data"), Some(ADMIN))
                    .header("Range", header),
            )
            .await;
        assert_eq!(response.status, 400, "{header:?}");
        assert!(!response.body.is_empty(), "{header:?}: an explanation, not the data");
        assert!(
            !response.text().contains("0123456789"),
            "{header:?}: never error and data"
        );
        node.assert_healthy().await;
    }
}

async fn unknown_query_boolean_is_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    api.create(&node.obj("model", "q"), json!({}), None).await;
    for target in [
        format!("{}?all_objects=yes", node.type_path("model")),
        format!("{}?received=maybe", node.type_path("model")),
        "/api/v1/health?details=2".to_string(),
    ] {
        let response = api.get(&target).await;
        assert_eq!(response.status, 400, "{target}");
        node.assert_healthy().await;
    }
    let first_wins = api
        .get(&format!(
            "{}?all_objects=true&all_objects=bogus",
            node.type_path("model")
        ))
        .await;
    assert_eq!(
        first_wins.status, 200,
        "repeated parameters after the first are ignored"
    );
}

async fn malformed_authorization_is_403(role: Role) {
    let node = TestNode::of(role);
    let path = node.obj("model", "m");
    let engine = base64::engine::general_purpose::STANDARD;
    let long = format!(
        "Basic {}",
        engine.encode(format!("org/admin:{}", "s".repeat(10 * 1024)))
    );
    for header in [
        format!("Bearer {}", engine.encode("org/admin:secret")),
        "Basic !!!not-base64!!!".to_string(),
        format!("Basic {}", engine.encode("org/admin-without-colon")),
        "Basic".to_string(),
        long,
    ] {
        let response = node
            .raw(&format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\n\r\n"
            ))
            .expect("raw request");
        assert_eq!(response.status, 403, "{}", &header[..header.len().min(40)]);
        assert_eq!(response.text(), "Unauthorized");
        node.assert_healthy().await;
    }
}

/// Headers up to the original's limit of 1 MiB are read, in up to 256 fields of any size;
/// beyond either the request is refused with 431 and the node goes on.
async fn large_request_heads_are_served_up_to_1_mib(role: Role) {
    let node = TestNode::of(role);
    let path = node.obj("model", "m1");
    node.api().create(&path, json!({}), Some(b"x")).await;
    let fields = |count: usize, size: usize| -> String {
        (0..count)
            .map(|i| format!("X-Field-{i}: {}\r\n", "v".repeat(size)))
            .collect()
    };
    let get = |headers: &str| {
        node.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{headers}\r\n",
            basic(ADMIN)
        ))
    };
    // 200 ordinary fields (about 20 KB), then 250 fields of 4 KB (about 1 MB).
    for (count, size) in [(200, 80), (250, 4000)] {
        let response = get(&fields(count, size)).expect("raw request");
        assert_eq!(
            response.status,
            200,
            "{count} fields of {size} bytes: {}",
            response.text()
        );
        let meta: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        assert_eq!(meta["objectID"], "m1");
    }
    // Over 1 MiB in all, or over 256 fields: 431, or the connection reset while the rest
    // was still being sent.
    for (count, size) in [(2, 600_000), (300, 10)] {
        match get(&fields(count, size)) {
            Ok(response) => assert_eq!(response.status, 431, "{count} fields of {size} bytes"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    node.assert_healthy().await;
}

on_both_roles!(
    large_request_heads_are_served_up_to_1_mib,
    invalid_characters_in_names_are_400,
    dot_segments_never_reach_a_handler,
    very_long_names_are_accepted,
    malformed_object_bodies_are_400,
    metadata_body_over_64_mib_is_413,
    malformed_content_range_is_400,
    malformed_range_is_400,
    unknown_query_boolean_is_400,
    malformed_authorization_is_403,
);
