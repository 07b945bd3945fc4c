//! Delta transfer of new versions between two nodes of this implementation, on both
//! transports: an ESS holding the previous version of an object fetches only the parts of
//! the new one it does not hold, rebuilds it byte for byte, and keeps nothing of the old
//! version afterwards. A node that does not take part (the original, simulated by
//! `DeltaTransfer false`) sends or gets the whole data as before, and a previous version
//! damaged on the ESS costs bytes on the wire, never a wrong copy.

mod common;

use common::sync::{eventually, send_to_node1, send_to_the_css, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::TestNode;

/// `data` with `places` runs of `len` bytes replaced, spread over it.
fn changed(data: &[u8], places: usize, len: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    let fresh = edge_sync_service::random::noise(places * len);
    let step = data.len() / places;
    for (i, run) in fresh.chunks(len).enumerate() {
        let at = i * step + step / 2;
        out[at..at + len].copy_from_slice(run);
    }
    out
}

/// Publishes `data` as the object `model/m` for node1 and waits until the ESS's copy is
/// exactly it; the bytes the CSS sent meanwhile.
async fn publish(net: &Net, css: &TestNode, ess: &TestNode, data: &[u8]) -> f64 {
    send_to_node1(net, css, ess, ("model", "m"), data).await
}

/// Writes `data` as the ESS's object `report/r` and waits until the CSS's copy is exactly
/// it; the bytes the CSS received meanwhile.
async fn upload(net: &Net, css: &TestNode, ess: &TestNode, data: &[u8]) -> f64 {
    send_to_the_css(net, css, ess, ("report", "r"), data).await
}

/// Chunks of 1 MiB: several messages per object over MQTT.
const CHUNK: (&str, &str) = ("MAX_DATA_CHUNK_SIZE", "1048576");

const SIZE: usize = 6 * 1024 * 1024 + 321;

async fn a_new_version_travels_as_its_changes(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let ess = net.ess(&css, &[CHUNK]);
    wait_registered(&css, &ess, "node1").await;
    let first = edge_sync_service::random::noise(SIZE);
    let full = publish(&net, &css, &ess, &first).await;
    assert!(full >= SIZE as f64, "the first version travels whole: {full}");

    // 12 places of 200 bytes: 2,400 bytes changed.
    let second = changed(&first, 12, 200);
    let delta = publish(&net, &css, &ess, &second).await;
    assert!(
        delta < SIZE as f64 / 10.0,
        "the second version cost {delta} bytes for {SIZE}"
    );
    assert!(ess.log().contains("copied from the previous one"), "{}", ess.log());

    // Bytes inserted and removed move content: it is still found.
    let mut third = second.clone();
    third.splice(1_000_000..1_000_000, edge_sync_service::random::noise(5000));
    third.drain(4_000_000..4_003_000);
    let delta = publish(&net, &css, &ess, &third).await;
    assert!(
        delta < SIZE as f64 / 10.0,
        "the third version cost {delta} bytes for {SIZE}"
    );

    // Only the current version's data stays on the ESS.
    eventually("the previous versions removed", &[&ess], SYNC_DEADLINE, async || {
        (ess.files_in("data").len() == 1 && ess.files_in("partial").is_empty()).then_some(())
    })
    .await;
}

async fn a_new_version_from_the_edge_travels_as_its_changes(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let ess = net.ess(&css, &[CHUNK]);
    wait_registered(&css, &ess, "node1").await;
    let first = edge_sync_service::random::noise(SIZE);
    let full = upload(&net, &css, &ess, &first).await;
    assert!(full >= SIZE as f64, "the first version travels whole: {full}");
    if transport == Transport::Http {
        // Without a previous version on the CSS no manifest is offered.
        assert_eq!(full, SIZE as f64, "only the data of the first version");
    }
    let second = changed(&first, 12, 200);
    let delta = upload(&net, &css, &ess, &second).await;
    assert!(
        delta < SIZE as f64 / 10.0,
        "the second version cost {delta} bytes for {SIZE}"
    );
    assert!(css.log().contains("copied from the previous one"), "{}", css.log());
    eventually("the previous version removed", &[&css], SYNC_DEADLINE, async || {
        (css.files_in("data").len() == 1 && css.files_in("partial").is_empty()).then_some(())
    })
    .await;

    drop(ess);
    drop(css);

    // A CSS that does not take part gets all of it, as the original's.
    let net = Net::new(transport);
    let plain_css = net.css(&[CHUNK, ("DELTA_TRANSFER", "false")]);
    let ess = net.ess(&plain_css, &[CHUNK]);
    wait_registered(&plain_css, &ess, "node1").await;
    upload(&net, &plain_css, &ess, &first).await;
    let sent = upload(&net, &plain_css, &ess, &second).await;
    assert!(sent >= SIZE as f64, "whole to a CSS that does not take part: {sent}");
}

async fn nodes_that_do_not_take_part_send_and_get_whole_versions(transport: Transport) {
    // An ESS that does not ask for manifests, as the original's.
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let plain_ess = net.ess(&css, &[CHUNK, ("DELTA_TRANSFER", "false")]);
    wait_registered(&css, &plain_ess, "node1").await;
    let first = edge_sync_service::random::noise(2 * 1024 * 1024);
    publish(&net, &css, &plain_ess, &first).await;
    let second = changed(&first, 4, 100);
    let sent = publish(&net, &css, &plain_ess, &second).await;
    assert!(
        sent >= second.len() as f64,
        "whole to an ESS that does not take part: {sent}"
    );
    drop(plain_ess);
    drop(css);

    // A CSS that does not answer with manifests, as the original's: our ESS asks, and uses
    // the data it gets instead.
    let net = Net::new(transport);
    let plain_css = net.css(&[CHUNK, ("DELTA_TRANSFER", "false")]);
    let ess = net.ess(&plain_css, &[CHUNK]);
    wait_registered(&plain_css, &ess, "node1").await;
    publish(&net, &plain_css, &ess, &first).await;
    let sent = publish(&net, &plain_css, &ess, &second).await;
    assert!(
        sent >= second.len() as f64,
        "whole from a CSS that does not take part: {sent}"
    );
    assert!(!ess.log().contains("copied from the previous one"));
}

async fn a_damaged_previous_version_costs_bytes_not_correctness(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[CHUNK]);
    let ess = net.ess(&css, &[CHUNK]);
    wait_registered(&css, &ess, "node1").await;
    let first = edge_sync_service::random::noise(SIZE);
    publish(&net, &css, &ess, &first).await;

    // A disk error flips bytes of the stored copy in its second half.
    let stored = ess.files_in("data");
    assert_eq!(stored.len(), 1, "{stored:?}");
    let mut damaged = std::fs::read(&stored[0]).expect("the stored copy");
    for byte in &mut damaged[SIZE / 2..SIZE / 2 + 1_000_000] {
        *byte ^= 0x5a;
    }
    std::fs::write(&stored[0], &damaged).expect("damage the stored copy");

    let second = changed(&first, 4, 100);
    let sent = publish(&net, &css, &ess, &second).await;
    // The damaged megabyte travels again, the rest is copied.
    assert!(sent > 1_000_000.0 && sent < SIZE as f64 / 2.0, "{sent} bytes");
}

on_both_transports!(
    a_new_version_travels_as_its_changes,
    a_new_version_from_the_edge_travels_as_its_changes,
    nodes_that_do_not_take_part_send_and_get_whole_versions,
    a_damaged_previous_version_costs_bytes_not_correctness,
);
