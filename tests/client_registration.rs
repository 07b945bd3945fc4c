//! Registration of an edge node as the original's client test suite checks it, on HTTP and
//! on MQTT: a node registers when it starts; a node that starts while the CSS is out of its
//! reach (a reverse proxy answering `502`, or a broker it cannot connect to) registers as
//! soon as it can; objects created on either side meanwhile arrive then, and not before.

mod common;

use common::proxy::{Closed, Gate};
use common::sequence::{run_while_unreachable, Addressing, Receiver, Sender};
use common::sync::{wait_for, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{TestNode, ORG};

/// Timers at their shortest, as the original's suite sets them.
const FAST_TIMERS: [(&str, &str); 3] = [
    ("OBJECT_ACTIVATION_INTERVAL", "1"),
    ("RESEND_INTERVAL", "1"),
    ("HTTP_POLLING_INTERVAL", "1"),
];

/// The nodes the CSS lists as registered, as `type/id`.
async fn registered(css: &TestNode) -> Vec<String> {
    let response = css.api().get(&format!("/api/v1/destinations/{ORG}")).await;
    if response.status != 200 {
        return Vec::new();
    }
    response
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{}/{}",
                d["destinationType"].as_str().unwrap_or_default(),
                d["destinationID"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

async fn a_node_registers_when_it_starts(transport: Transport) {
    let net = Net::new(transport);
    let css = net.css(&FAST_TIMERS);
    let ess = net.ess(&css, &FAST_TIMERS);
    wait_registered(&css, &ess, "node1").await;
    assert_eq!(registered(&css).await, vec!["edge/node1".to_string()]);
    let listing = css.api().get(&format!("/api/v1/destinations/{ORG}")).await.json();
    let wanted = match transport {
        Transport::Http => "http",
        Transport::Mqtt => "mqtt",
    };
    assert_eq!(listing[0]["communication"], wanted, "{listing}");
}

/// A CSS on `net`, and an ESS of it that reaches the CSS (or, over MQTT, the broker) only
/// through a closed gate.
async fn behind_a_gate(net: &Net) -> (TestNode, TestNode, Gate) {
    let css = net.css(&FAST_TIMERS);
    let (target, closed, port_key) = match net.transport {
        Transport::Http => (css.port(), Closed::BadGateway, "HTTP_CSS_PORT"),
        Transport::Mqtt => (
            net.broker.as_ref().expect("an MQTT network has a broker").port(),
            Closed::Dropped,
            "BROKER_PORT",
        ),
    };
    let gate = Gate::start(target, closed).await;
    let mut options = net.ess_options(&css, &FAST_TIMERS);
    options.env.push((port_key.to_string(), gate.port().to_string()));
    let ess = TestNode::start(options);
    (css, ess, gate)
}

async fn a_node_that_cannot_reach_the_css_registers_once_it_can(transport: Transport) {
    let net = Net::new(transport);
    let (css, ess, gate) = behind_a_gate(&net).await;
    wait_for("the node to try the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        gate.refused() >= 2
    })
    .await;
    assert_eq!(
        registered(&css).await,
        Vec::<String>::new(),
        "not registered while out of reach"
    );
    gate.open();
    wait_registered(&css, &ess, "node1").await;
    assert_eq!(registered(&css).await, vec!["edge/node1".to_string()]);
}

async fn to_a_node_out_of_reach(transport: Transport, addressing: Addressing) {
    let net = Net::new(transport);
    let (css, ess, gate) = behind_a_gate(&net).await;
    let receiver = Receiver::start(&ess, "node1");
    run_while_unreachable(&Sender::of(&css), &receiver, addressing, &gate, &[&css, &ess]).await;
}

async fn objects_for_a_node_out_of_reach_arrive_once_it_can_reach_the_css(transport: Transport) {
    to_a_node_out_of_reach(transport, Addressing::Node).await;
}

async fn objects_for_the_type_of_a_node_out_of_reach_arrive_once_it_can_reach_the_css(transport: Transport) {
    to_a_node_out_of_reach(transport, Addressing::Type).await;
}

async fn objects_of_a_node_out_of_reach_arrive_once_it_can_reach_the_css(transport: Transport) {
    let net = Net::new(transport);
    let (css, ess, gate) = behind_a_gate(&net).await;
    let receiver = Receiver::start(&css, "cloud");
    run_while_unreachable(&Sender::of(&ess), &receiver, Addressing::ToCss, &gate, &[&css, &ess]).await;
}

on_both_transports!(
    a_node_registers_when_it_starts,
    a_node_that_cannot_reach_the_css_registers_once_it_can,
    objects_for_a_node_out_of_reach_arrive_once_it_can_reach_the_css,
    objects_for_the_type_of_a_node_out_of_reach_arrive_once_it_can_reach_the_css,
    objects_of_a_node_out_of_reach_arrive_once_it_can_reach_the_css,
);
