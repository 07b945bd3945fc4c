//! `POST /api/v1/shutdown?restart=true` restarts the service in the same process: a
//! persistent store keeps its objects; an unpersisted one starts empty (no read may come
//! from the store of before the restart).

mod common;

use common::{NodeOptions, Role, TestNode, SYNC_ADMIN};
use serde_json::json;
use std::time::{Duration, Instant};

async fn restart_in_process(node: &TestNode) {
    let api = node.api();
    assert_eq!(
        api.post_as(SYNC_ADMIN, "/api/v1/shutdown?restart=true").await.status,
        204
    );
    // The service stops about a second after answering, then serves again.
    let deadline = Instant::now() + Duration::from_secs(30);
    // Listening is logged once per start.
    while node.log().matches("edge-sync-service listening").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the service never restarted:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.assert_healthy().await;
}

async fn objects_after_an_in_process_restart(storage: &'static str) -> u16 {
    let mut options = NodeOptions::new(Role::Css);
    options.storage = storage;
    let node = TestNode::start(options);
    let api = node.api();
    let path = node.obj("model", "before");
    api.create(&path, json!({}), Some(b"kept?")).await;
    restart_in_process(&node).await;
    api.get(&path).await.status
}

#[tokio::test]
async fn a_persistent_store_keeps_its_objects_across_an_in_process_restart() {
    assert_eq!(objects_after_an_in_process_restart("bolt").await, 200);
}

#[tokio::test]
async fn an_unpersisted_store_starts_empty_after_an_in_process_restart() {
    assert_eq!(objects_after_an_in_process_restart("inmemory").await, 404);
}
