//! The original's end-to-end update sequence (`common::sequence`) between one CSS and one
//! ESS, as its client test suite runs it: from the CSS to the ESS for each way of addressing
//! a node, and from the ESS to the CSS; each on HTTP and on MQTT. Applications on the
//! receiving side poll as the original's SDKs do and must see exactly what the original's
//! see.

mod common;

use common::sequence::{run, Addressing, Receiver, Sender};
use common::sync::{wait_registered, Net, Transport};
use common::TestNode;

/// Timers at their shortest, as the original's suite sets them.
const FAST_TIMERS: [(&str, &str); 4] = [
    ("STORAGE_MAINTENANCE_INTERVAL", "1"),
    ("OBJECT_ACTIVATION_INTERVAL", "1"),
    ("RESEND_INTERVAL", "1"),
    ("HTTP_POLLING_INTERVAL", "1"),
];

/// A CSS and one ESS (`edge`/`node1`, on the store `ess_storage`) on `net`, registered.
async fn pair(net: &Net, ess_storage: &'static str) -> (TestNode, TestNode) {
    let css = net.css(&FAST_TIMERS);
    let mut options = net.ess_options(&css, &FAST_TIMERS);
    options.storage = ess_storage;
    let ess = TestNode::start(options);
    wait_registered(&css, &ess, "node1").await;
    (css, ess)
}

async fn to_the_ess(transport: Transport, addressing: Addressing, ess_storage: &'static str) {
    let net = Net::new(transport);
    let (css, ess) = pair(&net, ess_storage).await;
    let receivers = [Receiver::start(&ess, "node1")];
    run(&Sender::of(&css), &receivers, addressing, &[&css, &ess]).await;
}

async fn addressed_to_the_node(transport: Transport) {
    to_the_ess(transport, Addressing::Node, "bolt").await;
}

async fn addressed_to_the_node_with_an_unpersisted_edge_store(transport: Transport) {
    to_the_ess(transport, Addressing::Node, "inmemory").await;
}

async fn addressed_to_the_destination_type(transport: Transport) {
    to_the_ess(transport, Addressing::Type, "bolt").await;
}

async fn addressed_by_a_destinations_list(transport: Transport) {
    to_the_ess(transport, Addressing::List, "bolt").await;
}

async fn from_the_ess_to_the_css(transport: Transport) {
    let net = Net::new(transport);
    let (css, ess) = pair(&net, "bolt").await;
    let receivers = [Receiver::start(&css, "cloud")];
    run(&Sender::of(&ess), &receivers, Addressing::ToCss, &[&css, &ess]).await;
}

/// New data for an object the ESS is downloading: the CSS answers the requests for the old
/// instance's data as replaced, and the application is only ever offered a copy whose data
/// is there, ending with the new data.
async fn data_replaced_while_the_edge_downloads_it_is_offered_only_complete(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&[("MAX_DATA_CHUNK_SIZE", "4096")]);
    let ess = net.ess(&css, &FAST_TIMERS);
    wait_registered(&css, &ess, "node1").await;
    let app = common::app::ReceivingApp::start(&ess, "replaced");
    app.only_receive("m1");
    let path = css.obj("replaced", "m1");
    let first = common::pattern(2 << 20, 1);
    let second = common::pattern(2 << 20, 2);
    let api = css.api();
    api.create(
        &path,
        serde_json::json!({"destinationType": "edge", "destinationID": "node1"}),
        None,
    )
    .await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), first.clone()).await.status, 204);
    common::sync::wait_for(
        "the download to begin",
        &[&css, &ess],
        common::sync::SYNC_DEADLINE,
        async || !ess.files_in("partial").is_empty() || !app.seen().is_empty(),
    )
    .await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), second.clone()).await.status, 204);
    let newest = common::sync::eventually(
        "the new data on the ESS",
        &[&css, &ess],
        common::sync::SYNC_DEADLINE,
        async || {
            app.seen()
                .into_iter()
                .find(|s| s.data.as_deref() == Some(second.as_slice()))
        },
    )
    .await;
    assert_eq!(newest.failure, None);
    for seen in app.seen() {
        assert_eq!(
            seen.failure, None,
            "the application was offered a copy without its data"
        );
        let data = seen.data.expect("data");
        assert!(data == first || data == second, "the data of one instance, whole");
    }
}

on_both_transports!(
    data_replaced_while_the_edge_downloads_it_is_offered_only_complete,
    addressed_to_the_node,
    addressed_to_the_node_with_an_unpersisted_edge_store,
    addressed_to_the_destination_type,
    addressed_by_a_destinations_list,
    from_the_ess_to_the_css,
);
