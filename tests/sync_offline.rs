//! Synchronization across outages and at size: an ESS that was down gets everything
//! addressed to it on return, once; a 200 MB object arrives byte-identical while both
//! processes keep flat memory.

mod common;

use common::sync::{css_with, http_ess, wait_for, wait_registered};
use common::{pattern, TestNode, ORG};
use serde_json::json;
use std::time::Duration;

fn css() -> TestNode {
    css_with(&[("MAX_DATA_CHUNK_SIZE", "4194304")])
}

fn ess(css: &TestNode) -> TestNode {
    http_ess(css.port(), &[])
}

#[tokio::test]
async fn an_ess_that_was_down_gets_everything_on_return_once() {
    let css = css();
    let mut ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    ess.kill9();
    let api = css.api();
    for i in 0..5 {
        let data = format!("object {i}");
        api.create(
            &css.obj("model", &format!("o{i}")),
            json!({"destinationType": "edge"}),
            Some(data.as_bytes()),
        )
        .await;
    }
    ess.restart();
    let ess_api = ess.api();
    wait_for(
        "all five objects on the ESS",
        &[&css, &ess],
        Duration::from_secs(30),
        async || {
            let listing = ess_api.get("/api/v1/objects/model").await;
            listing.status == 200 && listing.json().as_array().is_some_and(|a| a.len() == 5)
        },
    )
    .await;
    for i in 0..5 {
        let data = ess_api.data(&format!("/api/v1/objects/model/o{i}")).await;
        assert_eq!(data, format!("object {i}").into_bytes());
    }
    let listing = ess_api.get("/api/v1/objects/model").await.json();
    let mut ids: Vec<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["objectID"].to_string())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each object once");
}

#[tokio::test]
async fn a_200_mb_object_arrives_byte_identical_with_flat_memory() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let size = 200 * 1024 * 1024;
    let data = pattern(size, 5);
    let path = css.obj("model", "large");
    let api = css.api();
    api.create(&path, json!({"destinationType": "edge"}), None).await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);
    let ess_api = ess.api();
    wait_for(
        "the large object on the ESS",
        &[&css, &ess],
        Duration::from_secs(120),
        async || ess_api.get("/api/v1/objects/model/large/status").await.text() == "completelyReceived",
    )
    .await;
    assert!(
        ess_api.data("/api/v1/objects/model/large").await == data,
        "byte-identical"
    );
    for (name, node) in [("CSS", &css), ("ESS", &ess)] {
        let peak = node.peak_rss();
        assert!(peak > 0, "the {name}'s memory could not be read");
        println!("{name} peak RSS while moving {} MB: {} MB", size >> 20, peak >> 20);
        assert!(
            peak < 64 * 1024 * 1024,
            "the {name} peaked at {} MB moving {} MB",
            peak >> 20,
            size >> 20
        );
    }
}

#[tokio::test]
async fn an_ess_restarted_with_an_empty_disk_gets_everything_again() {
    let css = css();
    let mut ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let api = css.api();
    api.create(
        &css.obj("model", "kept"),
        json!({"destinationType": "edge"}),
        Some(b"precious"),
    )
    .await;
    let ess_api = ess.api();
    wait_for(
        "the object on the ESS",
        &[&css, &ess],
        Duration::from_secs(30),
        async || ess_api.get("/api/v1/objects/model/kept/status").await.text() == "completelyReceived",
    )
    .await;
    let css_api = css.api();
    wait_for(
        "the CSS to see it delivered",
        &[&css, &ess],
        Duration::from_secs(30),
        async || {
            css_api
                .get(&format!("{}/destinations", css.obj("model", "kept")))
                .await
                .json()[0]["status"]
                == "delivered"
        },
    )
    .await;

    ess.kill9();
    for folder in ["sync/db", "sync/objects"] {
        std::fs::remove_dir_all(ess.root().join(folder)).expect("wipe the ESS's store");
    }
    ess.restart();
    let ess_api = ess.api();
    wait_for(
        "the object on the ESS again",
        &[&css, &ess],
        Duration::from_secs(30),
        async || ess_api.get("/api/v1/objects/model/kept/status").await.text() == "completelyReceived",
    )
    .await;
    assert_eq!(ess_api.data("/api/v1/objects/model/kept").await, b"precious".to_vec());
}

#[tokio::test]
async fn a_resend_request_on_the_ess_brings_back_consumed_objects() {
    let css = css();
    let ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    css.api()
        .create(
            &css.obj("model", "again"),
            json!({"destinationType": "edge"}),
            Some(b"once more"),
        )
        .await;
    let ess_api = ess.api();
    let path = "/api/v1/objects/model/again";
    wait_for(
        "the object on the ESS",
        &[&css, &ess],
        Duration::from_secs(30),
        async || ess_api.get(&format!("{path}/status")).await.text() == "completelyReceived",
    )
    .await;
    assert_eq!(
        ess_api
            .put_empty_as(common::ADMIN, &format!("{path}/consumed"))
            .await
            .status,
        204
    );
    wait_for(
        "the consumed copy to go",
        &[&css, &ess],
        Duration::from_secs(30),
        async || ess_api.get(path).await.status == 404,
    )
    .await;
    assert_eq!(ess_api.post_as(common::ORG_ADMIN, "/api/v1/resend").await.status, 204);
    wait_for(
        "the object to come back",
        &[&css, &ess],
        Duration::from_secs(30),
        async || ess_api.get(&format!("{path}/status")).await.text() == "completelyReceived",
    )
    .await;
    assert_eq!(ess_api.data(path).await, b"once more".to_vec());
}

#[tokio::test]
async fn shutting_down_with_essunregister_removes_the_node_and_its_local_state() {
    let css = css();
    let mut ess = ess(&css);
    wait_registered(&css, &ess, "node1").await;
    let shutdown = ess
        .api()
        .post_as(common::SYNC_ADMIN, "/api/v1/shutdown?essunregister=true")
        .await;
    assert_eq!(shutdown.status, 204);
    let exit = ess.wait_exit(Duration::from_secs(30)).expect("the ESS stops");
    assert!(exit.success(), "clean stop: {exit:?}");
    assert_eq!(
        css.api().get(&format!("/api/v1/destinations/{ORG}")).await.status,
        404,
        "unregistered"
    );
    assert!(!ess.root().join("sync/db").exists(), "the local store is wiped");
}
