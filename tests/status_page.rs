//! The fleet status page, `/ui`, in a real headless browser (Debian's chromium through
//! chromedriver): what it shows matches the API, a delivery made while it is open appears
//! without a reload, and an identity of another organization sees nothing of this one. Long
//! listings are split into pages and searched.

mod common;

use common::browser::Browser;
use common::fake_ess::FakeEss;
use common::sync::{http_ess, wait_for, wait_registered, SYNC_DEADLINE};
use common::{TestNode, ADMIN, ORG, OTHER_ADMIN};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Counts per delivery state of one object, from the API's destinations listing.
async fn api_counts(css: &TestNode, object_id: &str) -> BTreeMap<String, u64> {
    let response = css
        .api()
        .get(&format!("{}/destinations", css.obj("model", object_id)))
        .await;
    let mut counts = BTreeMap::new();
    if response.status == 200 {
        for destination in response.json().as_array().unwrap() {
            *counts
                .entry(destination["status"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    counts
}

/// The counts the page shows in the row of `model/{object_id}`, states with none left out.
const PAGE_COUNTS: &str = r#"
    const row = document.querySelector('tr[data-object="model/OBJECT"]');
    if (!row) { return null; }
    const counts = {};
    for (const cell of row.querySelectorAll('td[data-state]')) {
        const n = Number(cell.textContent);
        if (cell.dataset.state !== 'total' && n > 0) { counts[cell.dataset.state] = n; }
    }
    return counts;"#;

fn page_counts(object_id: &str) -> String {
    PAGE_COUNTS.replace("OBJECT", object_id)
}

fn as_json(counts: &BTreeMap<String, u64>) -> Value {
    json!(counts)
}

async fn publish(css: &TestNode, object_id: &str) {
    let meta = json!({"meta": {"objectType": "model", "objectID": object_id, "version": "1.0",
        "destinationType": "edge", "noData": true}});
    let response = css.api().put_json(&css.obj("model", object_id), &meta).await;
    assert_eq!(response.status, 204, "{}", response.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_matches_the_api_and_follows_a_delivery_without_reloading() {
    let css = TestNode::css();
    let first = http_ess(css.port(), &[("DESTINATION_ID", "node1")]);
    wait_registered(&css, &first, "node1").await;
    publish(&css, "m1").await;
    wait_for("node1 to have m1", &[&css, &first], SYNC_DEADLINE, async || {
        api_counts(&css, "m1").await.get("delivered") == Some(&1)
    })
    .await;

    let browser = Browser::start(ADMIN).await;
    browser.open(&format!("{}/ui?org={ORG}", css.base())).await;
    assert_eq!(
        browser.eval("return document.title").await,
        json!("Objects · edge-sync-service")
    );
    assert_eq!(
        browser.eval(&page_counts("m1")).await,
        as_json(&api_counts(&css, "m1").await)
    );
    // The ESS's simpler page: its objects with their state, no nodes.
    let edge_page = first.api().get("/ui").await;
    assert_eq!(edge_page.status, 200);
    let edge_html = edge_page.text();
    assert!(edge_html.contains("data-object=\"model/m1\""), "{edge_html}");
    assert!(!edge_html.contains("/ui/nodes"), "{edge_html}");
    assert!(edge_html.contains(">connected</strong> since"), "{edge_html}");
    assert_eq!(first.api().get("/ui/nodes").await.status, 404);

    // Marks this page: a reload would lose the mark.
    browser.eval("window.sameDocument = 'kept'; return true").await;

    // A second node joins and receives m1 while the page is open.
    let second = http_ess(css.port(), &[("DESTINATION_ID", "node2")]);
    wait_registered(&css, &second, "node2").await;
    wait_for("node2 to have m1", &[&css, &second], SYNC_DEADLINE, async || {
        api_counts(&css, "m1").await.get("delivered") == Some(&2)
    })
    .await;
    browser
        .wait_for(
            "the page to show both deliveries",
            &page_counts("m1"),
            json!({"delivered": 2}),
            SYNC_DEADLINE,
        )
        .await;
    assert_eq!(browser.eval("return window.sameDocument").await, json!("kept"));
    assert!(browser
        .eval("return document.getElementById('live').textContent")
        .await
        .as_str()
        .unwrap()
        .starts_with("Updated"));

    // One object: every destination with its state, as the API lists them; then searched.
    browser
        .open(&format!("{}/ui/object?org={ORG}&type=model&id=m1", css.base()))
        .await;
    let rows = r#"return [...document.querySelectorAll('tr[data-destination]')]
        .map(r => [r.dataset.destination, r.querySelector('[data-field=state]').textContent]);"#;
    let api = css
        .api()
        .get(&format!("{}/destinations", css.obj("model", "m1")))
        .await
        .json();
    let from_api: Vec<Value> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            json!([
                format!(
                    "{}/{}",
                    d["destinationType"].as_str().unwrap(),
                    d["destinationID"].as_str().unwrap()
                ),
                d["status"]
            ])
        })
        .collect();
    assert_eq!(browser.eval(rows).await, json!(from_api));
    browser
        .open(&format!("{}/ui/object?org={ORG}&type=model&id=m1&q=NODE2", css.base()))
        .await;
    assert_eq!(browser.eval(rows).await, json!([["edge/node2", "delivered"]]));

    // Nodes: the API's destinations, each heard from just now, nothing pending.
    browser.open(&format!("{}/ui/nodes?org={ORG}", css.base())).await;
    let nodes = r#"return [...document.querySelectorAll('tr[data-node]')].map(r => [r.dataset.node,
        r.querySelector('[data-field=link]').textContent, r.querySelector('[data-field=pending]').textContent]);"#;
    assert_eq!(
        browser.eval(nodes).await,
        json!([["edge/node1", "online", "0"], ["edge/node2", "online", "0"]])
    );

    // Another organization's identity sees nothing of this one, in the browser as over HTTP.
    let stranger = Browser::start(OTHER_ADMIN).await;
    stranger.open(&format!("{}/ui?org={ORG}", css.base())).await;
    let text = stranger.eval("return document.body.innerText").await;
    assert!(!text.as_str().unwrap().contains("m1"), "{text}");
    for path in [
        "/ui?org=org",
        "/ui/nodes?org=org",
        "/ui/object?org=org&type=model&id=m1",
    ] {
        let response = css.api().get_as(OTHER_ADMIN, path).await;
        assert_eq!(response.status, 403, "{path}: {}", response.text());
    }
    stranger.open(&format!("{}/ui", css.base())).await;
    let own = stranger
        .eval("return document.querySelectorAll('tr[data-object]').length")
        .await;
    assert_eq!(own, json!(0));
}

#[tokio::test]
async fn a_browser_is_asked_for_credentials_and_the_page_loads_nothing_from_elsewhere() {
    let css = TestNode::css();
    let anonymous = css
        .api()
        .send(css.api().request(reqwest::Method::GET, "/ui", None))
        .await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    publish(&css, "m1").await;
    let page = css.api().get(&format!("/ui?org={ORG}&q=%22%3E%3Cb%3Em")).await;
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.starts_with("default-src 'none'; script-src 'self'"), "{policy}");
    let html = page.text();
    // What the caller typed is shown as text, never as markup.
    assert!(
        html.contains("value=\"&quot;&gt;&lt;b&gt;m\"") && !html.contains("<b>"),
        "{html}"
    );
    for reference in ["http://", "https://", "//"] {
        let outside = html.match_indices(&format!("=\"{reference}")).count();
        assert_eq!(outside, 0, "a reference to elsewhere ({reference}) in {html}");
    }
    let script = css
        .api()
        .send(css.api().request(reqwest::Method::GET, "/ui/app.js", None))
        .await;
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").unwrap().starts_with("text/javascript"));
    for bad in ["/ui?page=0", "/ui?page=x", "/ui/object?org=org&type=model"] {
        let response = css.api().get(bad).await;
        assert_eq!(response.status, 400, "{bad}");
        assert!(!response.text().is_empty());
    }
    let long = format!("/ui?q={}", "a".repeat(201));
    assert_eq!(css.api().get(&long).await.status, 400);
    assert_eq!(
        css.api().get("/ui/object?org=org&type=model&id=absent").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_listings_are_split_into_pages_and_searched() {
    let css = TestNode::css();
    let mut nodes = Vec::new();
    for i in 0..120 {
        let node = FakeEss::new(&css, ORG, "edge", &format!("n{i:03}"));
        assert_eq!(node.register(true).await, 204);
        nodes.push(node);
    }
    publish(&css, "wide").await;
    let marked = |html: &str, attribute: &str| html.matches(&format!("<tr {attribute}=")).count();
    let get = async |path: &str| {
        let response = css.api().get(path).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        response.text()
    };

    let first = get("/ui/nodes?org=org").await;
    assert_eq!(marked(&first, "data-node"), 50);
    assert!(first.contains("Showing 1–50 of 120"), "{first}");
    assert!(
        first.contains("rel=\"next\" href=\"/ui/nodes?org=org&amp;page=2\""),
        "{first}"
    );
    let last = get("/ui/nodes?org=org&page=3").await;
    assert_eq!(marked(&last, "data-node"), 20);
    assert!(last.contains("data-node=\"edge/n119\"") && !last.contains("rel=\"next\""));
    let searched = get("/ui/nodes?org=org&q=n11").await;
    assert_eq!(marked(&searched, "data-node"), 10);

    // Every node has the object on its way; one acknowledges it.
    let wide = get("/ui/object?org=org&type=model&id=wide&page=2").await;
    assert_eq!(marked(&wide, "data-destination"), 50);
    assert!(wide.contains("Showing 51–100 of 120"), "{wide}");
    let (_, items) = nodes[7].poll(None).await;
    let meta = &items
        .iter()
        .find(|i| i["MetaData"]["objectID"] == "wide")
        .expect("the object is offered")["MetaData"];
    assert_eq!(nodes[7].action(meta, "received").await, 204);
    let one = get("/ui/object?org=org&type=model&id=wide&q=n007").await;
    assert_eq!(marked(&one, "data-destination"), 1);
    assert!(one.contains("data-field=\"state\">delivered<"), "{one}");
    let objects = get("/ui?org=org").await;
    assert!(
        objects.contains("data-state=\"delivered\">1<") && objects.contains("data-state=\"total\">120<"),
        "{objects}"
    );
}
