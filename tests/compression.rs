//! Object data compressed with zstd between two nodes of this implementation over HTTP,
//! negotiated per request: compressible data travels compressed both ways and arrives
//! byte for byte; data that does not compress, and every exchange with a node that does not
//! take part (the original, simulated by `DataCompression false`), travels as it is.

mod common;

use common::metrics::{parse, value};
use common::sync::{eventually, http_ess, listed, wait_registered, SYNC_DEADLINE};
use common::{TestNode, SYNC_ADMIN};
use serde_json::json;

/// Log lines: what edge nodes upload and the cloud sends, and what compresses well.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 200);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "{{\"seq\":{i},\"sensor\":\"temp-{}\",\"value\":{}.{},\"unit\":\"C\"}}\n",
                i % 17,
                20 + i % 9,
                i % 10
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// The CSS's object data bytes on its node-to-node routes, `direction` `sent` or `received`.
async fn css_data_bytes(css: &TestNode, direction: &str) -> f64 {
    let text = css.api().get_as(SYNC_ADMIN, "/metrics").await.text();
    value(
        &parse(&text),
        "edge_sync_transport_bytes_total",
        &[("transport", "http"), ("direction", direction)],
    )
    .unwrap_or(0.0)
}

/// Publishes `data` on the CSS for node1 and waits until the ESS has it, byte for byte; the
/// data bytes the CSS sent for it.
async fn to_the_ess(css: &TestNode, ess: &TestNode, id: &str, data: &[u8]) -> f64 {
    let before = css_data_bytes(css, "sent").await;
    let path = css.obj("logs", id);
    css.api()
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(data),
        )
        .await;
    eventually("the object on the ESS", &[css, ess], SYNC_DEADLINE, async || {
        listed(ess, "logs", id).await
    })
    .await;
    assert_eq!(ess.api().data(&ess.obj("logs", id)).await, data, "the ESS's copy");
    css_data_bytes(css, "sent").await - before
}

/// Creates `data` on the ESS and waits until the CSS has it, byte for byte; the data bytes
/// the CSS received for it.
async fn to_the_css(css: &TestNode, ess: &TestNode, id: &str, data: &[u8]) -> f64 {
    let before = css_data_bytes(css, "received").await;
    let path = ess.obj("upload", id);
    ess.api().create(&path, json!({}), None).await;
    let response = ess.api().put_bytes(&format!("{path}/data"), data.to_vec()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    eventually("the object on the CSS", &[css, ess], SYNC_DEADLINE, async || {
        listed(css, "upload", id).await
    })
    .await;
    assert_eq!(css.api().data(&css.obj("upload", id)).await, data, "the CSS's copy");
    css_data_bytes(css, "received").await - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressible_data_travels_compressed_both_ways_and_the_rest_as_it_is() {
    let css = TestNode::css();
    let ess = http_ess(css.port(), &[("MAX_DATA_CHUNK_SIZE", "1048576")]);
    wait_registered(&css, &ess, "node1").await;
    let logs = text(3 * 1024 * 1024 + 123);

    let down = to_the_ess(&css, &ess, "logs", &logs).await;
    assert!(
        down > 0.0 && down < logs.len() as f64 / 5.0,
        "{down} bytes sent for {}",
        logs.len()
    );
    let up = to_the_css(&css, &ess, "logs", &logs).await;
    assert!(
        up > 0.0 && up < logs.len() as f64 / 5.0,
        "{up} bytes received for {}",
        logs.len()
    );

    let random = edge_sync_service::random::noise(2 * 1024 * 1024);
    let down = to_the_ess(&css, &ess, "random", &random).await;
    assert_eq!(
        down,
        random.len() as f64,
        "data that does not compress is sent as it is"
    );
    let up = to_the_css(&css, &ess, "random", &random).await;
    assert_eq!(up, random.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_take_part_gets_the_original_protocol() {
    // An ESS that neither asks for nor sends compressed data, as the original's.
    let css = TestNode::css();
    let plain_ess = http_ess(css.port(), &[("DATA_COMPRESSION", "false")]);
    wait_registered(&css, &plain_ess, "node1").await;
    let logs = text(1024 * 1024);
    assert_eq!(to_the_ess(&css, &plain_ess, "a", &logs).await, logs.len() as f64);
    assert_eq!(to_the_css(&css, &plain_ess, "a", &logs).await, logs.len() as f64);
    drop(plain_ess);

    // A CSS that neither offers nor takes them, as the original's: our ESS asks, gets the
    // data as it is, and uploads as it is.
    let plain_css = common::sync::css_with(&[("DATA_COMPRESSION", "false")]);
    let ess = http_ess(plain_css.port(), &[]);
    wait_registered(&plain_css, &ess, "node1").await;
    assert_eq!(to_the_ess(&plain_css, &ess, "b", &logs).await, logs.len() as f64);
    assert_eq!(to_the_css(&plain_css, &ess, "b", &logs).await, logs.len() as f64);
}
