//! Downloads sent from the page cache (`SendfileDownloads always`, so that loopback clients
//! get them too): applications' whole and ranged downloads, many on one connection between
//! other answers, several at once, and an ESS pulling an object from the CSS over HTTP.
//! Every byte is compared with the published data.

mod common;

use common::sync::{css_with, http_ess, listed, wait_for, wait_registered, SYNC_DEADLINE};
use common::{NodeOptions, Role, TestNode, ADMIN};
use serde_json::json;

const ALWAYS: (&str, &str) = ("SENDFILE_DOWNLOADS", "always");

/// Larger than two of the connection's file chunks (4 MiB), and not a multiple of a page.
const SIZE: usize = 9 * 1024 * 1024 + 4099;

fn node(role: Role) -> TestNode {
    let mut options = NodeOptions::new(role);
    options.env.push((ALWAYS.0.to_string(), ALWAYS.1.to_string()));
    TestNode::start(options)
}

/// Creates `model/{id}` with `meta` and uploads `data` through the data route.
async fn published(node: &TestNode, id: &str, meta: serde_json::Value, data: &[u8]) -> String {
    let api = node.api();
    let path = node.obj("model", id);
    api.create(&path, meta, None).await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.to_vec()).await.status, 204);
    path
}

async fn ranged(node: &TestNode, path: &str, range: &str) -> common::Resp {
    let api = node.api();
    api.send(
        api.request(reqwest::Method::GET, &format!("{path}/data"), Some(ADMIN))
            .header("Range", range),
    )
    .await
}

async fn whole_and_ranged_downloads_on_one_connection_are_the_published_bytes(role: Role) {
    let node = node(role);
    let api = node.api();
    let data = common::pattern(SIZE, 21);
    let path = published(&node, "model", json!({}), &data).await;
    // One client: its requests share a kept-alive connection, so downloads follow each
    // other and other answers on it.
    for round in 0..3 {
        let whole = api.get(&format!("{path}/data")).await;
        assert_eq!(whole.status, 200);
        assert!(whole.body == data, "round {round}: the whole download differs");
        let meta = api.meta(&path).await;
        assert_eq!(meta["objectSize"], SIZE);
    }
    let four_mib = 4 * 1024 * 1024;
    for (start, end) in [
        (0, 9),
        (four_mib - 10, four_mib + 10),
        (1, SIZE - 2),
        (SIZE - 1, SIZE - 1),
    ] {
        let response = ranged(&node, &path, &format!("bytes={start}-{end}")).await;
        assert_eq!(response.status, 206, "{start}-{end}");
        assert!(response.body == data[start..=end], "range {start}-{end} differs");
    }
    let empty = published(&node, "empty", json!({}), b"").await;
    let response = api.get(&format!("{empty}/data")).await;
    assert_eq!((response.status, response.body.len()), (200, 0));
    node.assert_healthy().await;
}

async fn downloads_at_once_each_get_their_own_bytes(role: Role) {
    let node = node(role);
    let first = common::pattern(SIZE, 22);
    let second = common::pattern(SIZE / 3, 23);
    let paths = [
        published(&node, "first", json!({}), &first).await,
        published(&node, "second", json!({}), &second).await,
    ];
    let downloads = (0..6).map(|n| {
        let api = node.api();
        let path = paths[n % 2].clone();
        async move { (n % 2, api.get(&format!("{path}/data")).await) }
    });
    for (which, response) in futures_util::future::join_all(downloads).await {
        assert_eq!(response.status, 200);
        let expected = if which == 0 { &first } else { &second };
        assert!(response.body == *expected, "download of object {which} differs");
    }
}

#[tokio::test]
async fn an_ess_pulls_an_object_sent_from_the_page_cache() {
    let css = css_with(&[ALWAYS]);
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let data = common::pattern(SIZE, 24);
    let to_the_ess = json!({"destinationType": "edge", "destinationID": "node1"});
    published(&css, "pulled", to_the_ess, &data).await;
    wait_for("the ESS to hold the object", &[&css, &ess], SYNC_DEADLINE, async || {
        listed(&ess, "model", "pulled").await.is_some()
    })
    .await;
    let copy = ess.api().data(&ess.obj("model", "pulled")).await;
    assert!(copy == data, "the ESS's copy differs");
}

on_both_roles!(
    whole_and_ranged_downloads_on_one_connection_are_the_published_bytes,
    downloads_at_once_each_get_their_own_bytes,
);
