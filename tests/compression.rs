//! Object data compressed with zstd between two nodes of this implementation, on both
//! transports, negotiated per request (an HTTP header, a field of MQTT's `getdata`):
//! compressible data travels compressed both ways and arrives byte for byte; data that does
//! not compress, and every exchange with a node that does not take part (the original,
//! simulated by `DataCompression false`), travels as it is.

mod common;

use common::sync::{send_to_node1, send_to_the_css, wait_registered, Net, Transport};
use common::TestNode;

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

/// Publishes `data` on the CSS for node1 and waits until the ESS has it, byte for byte; the
/// bytes the CSS sent meanwhile.
async fn to_the_ess(net: &Net, css: &TestNode, ess: &TestNode, id: &str, data: &[u8]) -> f64 {
    send_to_node1(net, css, ess, ("logs", id), data).await
}

/// Creates `data` on the ESS and waits until the CSS has it, byte for byte; the bytes the
/// CSS received meanwhile.
async fn to_the_css(net: &Net, css: &TestNode, ess: &TestNode, id: &str, data: &[u8]) -> f64 {
    send_to_the_css(net, css, ess, ("upload", id), data).await
}

/// Asserts that `bytes` on the wire carried `len` bytes of data as they are: exactly over
/// HTTP (object data only), with the messages' few headers over MQTT.
fn sent_as_it_is(transport: Transport, bytes: f64, len: usize, what: &str) {
    let len = len as f64;
    match transport {
        Transport::Http => assert_eq!(bytes, len, "{what}"),
        Transport::Mqtt => assert!(
            bytes >= len && bytes < len * 1.02 + 65536.0,
            "{what}: {bytes} for {len}"
        ),
    }
}

/// Asserts that `bytes` on the wire carried `len` bytes of log lines compressed.
fn sent_compressed(bytes: f64, len: usize, what: &str) {
    assert!(
        bytes > 0.0 && bytes < len as f64 / 5.0,
        "{what}: {bytes} bytes for {len}"
    );
}

/// Chunks of 1 MiB both ways: several messages per object over MQTT.
const CHUNK: (&str, &str) = ("MAX_DATA_CHUNK_SIZE", "1048576");

async fn compressible_data_travels_compressed_both_ways_and_the_rest_as_it_is(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let ess = net.ess(&css, &[CHUNK]);
    wait_registered(&css, &ess, "node1").await;
    let logs = text(3 * 1024 * 1024 + 123);
    sent_compressed(to_the_ess(&net, &css, &ess, "logs", &logs).await, logs.len(), "down");
    sent_compressed(to_the_css(&net, &css, &ess, "logs", &logs).await, logs.len(), "up");

    let random = edge_sync_service::random::noise(2 * 1024 * 1024);
    let down = to_the_ess(&net, &css, &ess, "random", &random).await;
    sent_as_it_is(transport, down, random.len(), "random bytes down");
    let up = to_the_css(&net, &css, &ess, "random", &random).await;
    sent_as_it_is(transport, up, random.len(), "random bytes up");
}

async fn a_node_that_does_not_take_part_gets_the_original_protocol(transport: Transport) {
    // An ESS that neither asks for nor sends compressed data, as the original's.
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let plain_ess = net.ess(&css, &[CHUNK, ("DATA_COMPRESSION", "false")]);
    wait_registered(&css, &plain_ess, "node1").await;
    let logs = text(1024 * 1024 + 17);
    let down = to_the_ess(&net, &css, &plain_ess, "a", &logs).await;
    sent_as_it_is(transport, down, logs.len(), "to an ESS that does not take part");
    let up = to_the_css(&net, &css, &plain_ess, "a", &logs).await;
    sent_as_it_is(transport, up, logs.len(), "from an ESS that does not take part");
    drop(plain_ess);
    drop(css);

    // A CSS that neither offers nor takes them, as the original's: our ESS asks, gets the
    // data as it is, and uploads as it is.
    let plain_css = net.css(&[CHUNK, ("DATA_COMPRESSION", "false")]);
    let ess = net.ess(&plain_css, &[CHUNK]);
    wait_registered(&plain_css, &ess, "node1").await;
    let down = to_the_ess(&net, &plain_css, &ess, "b", &logs).await;
    sent_as_it_is(transport, down, logs.len(), "from a CSS that does not take part");
    let up = to_the_css(&net, &plain_css, &ess, "b", &logs).await;
    sent_as_it_is(transport, up, logs.len(), "to a CSS that does not take part");
}

on_both_transports!(
    compressible_data_travels_compressed_both_ways_and_the_rest_as_it_is,
    a_node_that_does_not_take_part_gets_the_original_protocol,
);
