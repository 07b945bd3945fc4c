//! ESS -> CSS synchronization, end to end, over HTTP and over MQTT through a mosquitto
//! broker (each scenario runs on both, see `on_both_transports!` at the end): objects
//! created by applications on an ESS reach the CSS (over HTTP the ESS uploads the data in
//! chunks; over MQTT the CSS pulls it chunk by chunk with `getdata`), the CSS's consumption
//! and deletion acknowledgements come back. Real CSS and ESS processes; every wait has a
//! deadline.

mod common;

use common::sync::{listed, wait_registered, Net, Transport, SYNC_DEADLINE as DEADLINE};
use common::{pattern, TestNode, ADMIN};
use serde_json::json;
use std::future::Future;

/// An ESS (`edge`/`id`) of the CSS on `net` with 64 KiB chunks and `ResendInterval` 1 s
/// (over HTTP, `HTTPPollingInterval` 2 s).
fn ess(net: &Net, css: &TestNode, id: &str) -> TestNode {
    net.ess(
        css,
        &[
            ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
            ("MAX_DATA_CHUNK_SIZE", "65536"),
            ("DESTINATION_ID", id),
        ],
    )
}

/// Polls `probe` until it returns `Some`, within the sync deadline.
async fn eventually<T, F, Fut>(what: &str, nodes: &[&TestNode], mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::sync::eventually(what, nodes, DEADLINE, async || probe().await).await
}

async fn status(node: &TestNode, path: &str) -> Option<String> {
    let response = node.api().get(&format!("{path}/status")).await;
    (response.status == 200).then(|| response.text())
}

fn print_warnings(nodes: &[(&str, &TestNode)]) {
    for (name, node) in nodes {
        for line in node.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
            println!("{name}: {line}");
        }
    }
}

async fn an_object_created_on_the_ess_reaches_the_css_and_is_consumed_there(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[]);
    let ess = ess(&net, &css, "node1");
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());

    // 1 MiB on the ESS: 16 chunks of 64 KiB.
    let big = pattern(1 << 20, 11);
    let ess_path = ess.obj("report", "big");
    ess_api.create(&ess_path, json!({}), None).await;
    let response = ess_api.put_bytes(&format!("{ess_path}/data"), big.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());

    let meta = eventually("the ESS object on the CSS", &[&css, &ess], || {
        listed(&css, "report", "big")
    })
    .await;
    assert_eq!(meta["objectSize"], big.len());
    assert_eq!(meta["chunkSize"], 65536);
    assert_eq!(meta["originType"], "edge");
    assert_eq!(meta["originID"], "node1");
    let css_path = css.obj("report", "big");
    assert_eq!(css_api.status_of(&css_path).await, "completelyReceived");
    assert_eq!(css_api.data(&css_path).await, big, "identical data on the CSS");
    // Over HTTP the ESS uploads and logs the upload after the CSS answered the last chunk,
    // so the line may come a moment after the copy is complete. Over MQTT there is no
    // upload to log: the CSS pulls the chunks (of the ESS's 64 KiB, checked by the
    // `chunkSize` above), and the identical data is the evidence.
    if transport == Transport::Http {
        let uploaded = eventually("the upload to be logged", &[&css, &ess], || async {
            ess.log()
                .lines()
                .find(|l| l.contains("data uploaded to the CSS"))
                .map(str::to_string)
        })
        .await;
        assert!(uploaded.contains("parts=16"), "16 chunks were uploaded: {uploaded:?}");
    }

    // The CSS's `received` comes back through the poll (no visible change on the ESS; the
    // CSS drops its pending element once acknowledged). Then an application on the CSS
    // consumes the copy: the ESS object becomes consumedByDest without data, and the CSS
    // copy goes once the ESS acknowledged.
    let response = css_api.put_empty_as(ADMIN, &format!("{css_path}/consumed")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    eventually("consumedByDest on the ESS", &[&css, &ess], || async {
        (status(&ess, &ess_path).await.as_deref() == Some("consumedByDest")).then_some(())
    })
    .await;
    eventually("the CSS copy to go", &[&css, &ess], || async {
        (css_api.get(&css_path).await.status == 404).then_some(())
    })
    .await;
    assert!(
        ess.files_in("data").is_empty(),
        "the consumed object's data is gone on the ESS"
    );
    assert!(
        css.files_in("data").is_empty(),
        "the consumed copy's data is gone on the CSS"
    );
    let response = ess_api.get(&format!("{ess_path}/data")).await;
    assert_eq!(response.status, 404, "no data after consumption");

    // A consumed key can be stored again: a fresh instance travels again.
    ess_api.create(&ess_path, json!({}), Some(b"second round")).await;
    eventually("the second instance on the CSS", &[&css, &ess], || async {
        let meta = listed(&css, "report", "big").await?;
        (meta["objectSize"] == 12).then_some(())
    })
    .await;
    assert_eq!(css_api.data(&css_path).await, b"second round");
    print_warnings(&[("CSS", &css), ("ESS", &ess)]);
}

async fn a_deletion_on_the_ess_reaches_the_css(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[]);
    let ess = ess(&net, &css, "node2");
    wait_registered(&css, &ess, "node2").await;
    let (css_api, ess_api) = (css.api(), ess.api());

    let ess_path = ess.obj("report", "gone");
    ess_api.create(&ess_path, json!({}), Some(b"short lived")).await;
    // An object without data travels too.
    let no_data_path = ess.obj("report", "flag");
    ess_api.create(&no_data_path, json!({"noData": true}), None).await;
    eventually("the objects on the CSS", &[&css, &ess], || async {
        listed(&css, "report", "gone").await?;
        listed(&css, "report", "flag").await
    })
    .await;
    let css_path = css.obj("report", "gone");
    assert_eq!(css_api.data(&css_path).await, b"short lived");

    // The ESS object goes once the CSS acknowledged the delete; the CSS copy is marked
    // deleted for its applications.
    let response = ess_api.delete_as(ADMIN, &ess_path).await;
    assert_eq!(response.status, 204, "{}", response.text());
    let meta = eventually("the deletion on the CSS", &[&css, &ess], || async {
        listed(&css, "report", "gone").await.filter(|m| m["deleted"] == true)
    })
    .await;
    assert_eq!(meta["objectID"], "gone");
    eventually("the ESS object to go", &[&css, &ess], || async {
        (ess_api.get(&ess_path).await.status == 404).then_some(())
    })
    .await;
    assert_eq!(css_api.status_of(&css_path).await, "objdeleted");

    // The CSS application acknowledges; the `deleted` handshake removes the CSS copy.
    let response = css_api.put_empty_as(ADMIN, &format!("{css_path}/deleted")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    eventually("the CSS copy to go", &[&css, &ess], || async {
        (css_api.get(&css_path).await.status == 404).then_some(())
    })
    .await;
    // The object without data is untouched.
    assert_eq!(ess_api.status_of(&no_data_path).await, "ready");
    print_warnings(&[("CSS", &css), ("ESS", &ess)]);
}

async fn an_object_stored_while_the_css_is_down_arrives_when_it_is_back(transport: Transport) {
    let net = Net::new(transport);
    let mut css = net.css(&[]);
    let ess = net.ess(
        &css,
        &[
            ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
            ("MAX_DATA_CHUNK_SIZE", "65536"),
            ("DESTINATION_ID", "node3"),
            ("RUST_LOG", "info,edge_sync_service::sync::ess_loop=debug"),
        ],
    );
    wait_registered(&css, &ess, "node3").await;
    css.kill9();
    let data = pattern(300 * 1024, 5);
    let ess_path = ess.obj("report", "late");
    ess_api_create(&ess, &ess_path, &data).await;
    // The ESS finds the CSS gone before the CSS comes back: over HTTP its poll fails; over
    // MQTT the broker is up, so the sign is the ESS's `update` going unanswered (logged at
    // debug level, which this ESS has; it takes the link's 10 s answer timeout). On both,
    // when the CSS was killed before its answer to the registration left, the sign is the
    // registration failing instead.
    let registration_failed = "ESS: registration with the CSS failed";
    let signs: &[&str] = match transport {
        Transport::Http => &["ESS: poll failed", registration_failed],
        Transport::Mqtt => &["no answer to update from the CSS", registration_failed],
    };
    eventually("the ESS to notice the CSS is down", &[&css, &ess], || async {
        let log = ess.log();
        signs.iter().any(|sign| log.contains(sign)).then_some(())
    })
    .await;
    css.restart();
    eventually("the object on the CSS after its restart", &[&css, &ess], || {
        listed(&css, "report", "late")
    })
    .await;
    assert_eq!(css.api().data(&css.obj("report", "late")).await, data);
}

async fn ess_api_create(ess: &TestNode, path: &str, data: &[u8]) {
    let api = ess.api();
    api.create(path, json!({}), None).await;
    let response = api.put_bytes(&format!("{path}/data"), data.to_vec()).await;
    assert_eq!(response.status, 204, "{}", response.text());
}

async fn an_upload_interrupted_by_a_css_crash_resumes(transport: Transport) {
    let net = Net::new(transport);
    let mut css = net.css(&[]);
    let ess = ess(&net, &css, "node4");
    wait_registered(&css, &ess, "node4").await;
    // 16 MiB in 256 chunks of 64 KiB.
    let data = pattern(16 << 20, 9);
    let ess_path = ess.obj("report", "huge");
    ess_api_create(&ess, &ess_path, &data).await;
    // Kill the CSS once part of the data is on its disk (if the upload was quicker, the
    // restart simply finds the copy complete).
    eventually("a partial upload on the CSS", &[&css, &ess], || async {
        let partial = css.files_in("partial");
        let done = listed(&css, "report", "huge").await.is_some();
        (done || partial.iter().any(|p| p.metadata().map_or(0, |m| m.len()) > 0)).then_some(())
    })
    .await;
    css.kill9();
    css.restart();
    eventually("the object on the CSS after the crash", &[&css, &ess], || {
        listed(&css, "report", "huge")
    })
    .await;
    assert_eq!(css.api().data(&css.obj("report", "huge")).await, data);
    // Over HTTP the ESS resumes its upload; over MQTT the restarted CSS resumes its pull.
    let resumed = match transport {
        Transport::Http => ess.log().contains("resuming an upload"),
        Transport::Mqtt => css.log().contains("MQTT: resuming the pull"),
    };
    println!(
        "upload after the CSS crash: {}",
        if resumed {
            "resumed"
        } else {
            "was already complete (or restarted)"
        }
    );
}

on_both_transports!(
    an_object_created_on_the_ess_reaches_the_css_and_is_consumed_there,
    a_deletion_on_the_ess_reaches_the_css,
    an_object_stored_while_the_css_is_down_arrives_when_it_is_back,
    an_upload_interrupted_by_a_css_crash_resumes,
);
