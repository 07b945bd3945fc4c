//! Data signature verification on both roles: objects with hashAlgorithm, publicKey and
//! signature become ready only when their data matches the RSA-PSS signature; otherwise
//! the data is discarded and the object is verificationFailed. An ESS verifies the data it
//! receives again, over either transport, before the copy is complete.

mod common;

use common::signing::Signer;
use common::sync::{wait_for, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{pattern, Role, TestNode};
use serde_json::json;

async fn uploaded_data_matching_its_signature_becomes_ready(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let data = pattern(300_000, 3);
    let path = node.obj("model", "signed");
    api.create(&path, signer.meta(&data), None).await;
    let response = api.put_bytes(&format!("{path}/data"), data.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.data(&path).await, data);
}

async fn uploaded_data_not_matching_is_rejected_and_discarded(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let path = node.obj("model", "tampered");
    api.create(&path, signer.meta(b"the real model"), None).await;
    let response = api
        .put_bytes(&format!("{path}/data"), b"a tampered model".to_vec())
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("Failed to verify and store data"),
        "{}",
        response.text()
    );
    assert_eq!(api.status_of(&path).await, "verificationFailed");
    assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
    assert!(node.files_in("data").is_empty(), "the rejected data must not be kept");
    node.assert_healthy().await;
}

async fn inline_data_is_verified_too(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let good = node.obj("model", "inline-good");
    api.create(&good, signer.meta(b"inline bytes"), Some(b"inline bytes"))
        .await;
    assert_eq!(api.status_of(&good).await, "ready");

    let bad = node.obj("model", "inline-bad");
    let body = common::object_body(&bad, signer.meta(b"inline bytes"), Some(b"other bytes"));
    let response = api.put_json(&bad, &body).await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(api.status_of(&bad).await, "verificationFailed");
}

async fn a_key_that_is_not_rsa_is_a_clear_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "badkey");
    let meta = json!({"hashAlgorithm": "SHA256", "publicKey": "AAAA", "signature": "AAAA"});
    api.create(&path, meta, None).await;
    let response = api.put_bytes(&format!("{path}/data"), b"data".to_vec()).await;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("RSA public key"), "{}", response.text());
    node.assert_healthy().await;
}

on_both_roles!(
    uploaded_data_matching_its_signature_becomes_ready,
    uploaded_data_not_matching_is_rejected_and_discarded,
    inline_data_is_verified_too,
    a_key_that_is_not_rsa_is_a_clear_400,
);

/// Chunk size of the CSS and ESS of the delivery tests: a download takes several chunks.
const CHUNK: &str = "65536";
/// Size of the delivered objects: sixteen chunks and a partial one.
const DELIVERED: usize = 16 * 65536 + 1000;

/// A CSS holding a signed object with `data` addressed to `edge` nodes.
async fn css_with_signed_object(net: &Net, data: &[u8]) -> TestNode {
    let css = net.css(&[("MAX_DATA_CHUNK_SIZE", CHUNK)]);
    let api = css.api();
    let path = css.obj("model", "signed");
    let mut meta = Signer::new().meta(data);
    meta["destinationType"] = json!("edge");
    api.create(&path, meta, None).await;
    let response = api.put_bytes(&format!("{path}/data"), data.to_vec()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    css
}

/// The status of the ESS's copy once it is `want`.
async fn wait_copy_status(css: &TestNode, ess: &TestNode, want: &str) {
    let api = ess.api();
    let path = ess.obj("model", "signed");
    wait_for(
        &format!("the copy to become {want}"),
        &[css, ess],
        SYNC_DEADLINE,
        async || api.get(&format!("{path}/status")).await.text() == want,
    )
    .await;
}

async fn a_signed_object_arrives_on_an_ess_verified_chunk_by_chunk(transport: Transport) {
    let net = Net::new(transport);
    let data = pattern(DELIVERED, 5);
    let css = css_with_signed_object(&net, &data).await;
    let ess = net.ess(&css, &[("MAX_DATA_CHUNK_SIZE", CHUNK)]);
    wait_registered(&css, &ess, "node1").await;
    wait_copy_status(&css, &ess, "completelyReceived").await;
    assert_eq!(ess.api().data(&ess.obj("model", "signed")).await, data);
}

async fn an_ess_refuses_data_that_no_longer_matches_its_signature(transport: Transport) {
    let net = Net::new(transport);
    let data = pattern(DELIVERED, 6);
    let css = css_with_signed_object(&net, &data).await;
    // The CSS verified the data at upload; what it serves afterwards is changed on its disk,
    // as a corruption or a tampering after the upload would change it.
    let files = css.files_in("data");
    assert_eq!(files.len(), 1, "{files:?}");
    let mut stored = std::fs::read(&files[0]).unwrap();
    stored[DELIVERED / 2] ^= 1;
    std::fs::write(&files[0], stored).unwrap();

    let ess = net.ess(&css, &[("MAX_DATA_CHUNK_SIZE", CHUNK)]);
    wait_registered(&css, &ess, "node1").await;
    wait_copy_status(&css, &ess, "receiverVerificationFailed").await;
    let served = ess.api().get(&format!("{}/data", ess.obj("model", "signed"))).await;
    assert_eq!(served.status, 404, "a copy that failed verification has no data");
    ess.assert_healthy().await;
}

on_both_transports!(
    a_signed_object_arrives_on_an_ess_verified_chunk_by_chunk,
    an_ess_refuses_data_that_no_longer_matches_its_signature,
);
