//! The original's end-to-end update sequence (`common::sequence`) over a fleet, as its client
//! test suite runs it: five ESS with one object each, and five ESS sharing the objects of
//! their type, on HTTP and on MQTT; and two CSS instances on one PostgreSQL database behind a
//! round-robin balancer that the sending application and every ESS go through.

mod common;

use common::cluster::two_instances_with;
use common::proxy::RoundRobin;
use common::sequence::{run, Addressing, Receiver, Sender};
use common::sync::{wait_registered, Net, Transport};
use common::{NodeOptions, Role, TestNode};

/// Timers at their shortest, as the original's suite sets them.
const FAST_TIMERS: [(&str, &str); 4] = [
    ("STORAGE_MAINTENANCE_INTERVAL", "1"),
    ("OBJECT_ACTIVATION_INTERVAL", "1"),
    ("RESEND_INTERVAL", "1"),
    ("HTTP_POLLING_INTERVAL", "1"),
];
const FLEET: usize = 5;

/// `ess0` … `ess{count-1}`.
fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("ess{i}")).collect()
}

/// An ESS `edge`/`id` on an unpersisted store (the original suite's edge store) started with
/// `options`.
fn unpersisted(mut options: NodeOptions, id: &str) -> TestNode {
    options.storage = "inmemory";
    options.env.push(("DESTINATION_ID".into(), id.into()));
    TestNode::start(options)
}

async fn fleet_on(transport: Transport, addressing: Addressing) {
    let net = Net::new(transport);
    let css = net.css(&FAST_TIMERS);
    let ids = names(FLEET);
    let fleet: Vec<TestNode> = ids
        .iter()
        .map(|id| unpersisted(net.ess_options(&css, &FAST_TIMERS), id))
        .collect();
    for (ess, id) in fleet.iter().zip(&ids) {
        wait_registered(&css, ess, id).await;
    }
    let receivers: Vec<Receiver> = fleet
        .iter()
        .zip(&ids)
        .map(|(ess, id)| Receiver::start(ess, id))
        .collect();
    let mut nodes: Vec<&TestNode> = vec![&css];
    nodes.extend(fleet.iter());
    run(&Sender::of(&css), &receivers, addressing, &nodes).await;
}

async fn five_ess_each_with_objects_of_its_own(transport: Transport) {
    fleet_on(transport, Addressing::EachNode).await;
}

async fn five_ess_sharing_the_objects_of_their_type(transport: Transport) {
    fleet_on(transport, Addressing::Type).await;
}

on_both_transports!(
    five_ess_each_with_objects_of_its_own,
    five_ess_sharing_the_objects_of_their_type,
);

/// Two CSS instances on one database behind a balancer: the sending application and every
/// ESS reach whichever instance the balancer picks.
async fn two_css_instances_behind_a_balancer(addressing: Addressing) {
    let cluster = common::postgres::shared();
    let extra = vec![("HTTP_POLLING_INTERVAL".to_string(), "1".to_string())];
    let (first, second) = two_instances_with(cluster, extra).await;
    let balancer = RoundRobin::start(vec![first.port(), second.port()]).await;
    let ids = names(3);
    let fleet: Vec<TestNode> = ids
        .iter()
        .map(|id| {
            let mut options = NodeOptions::new(Role::Ess);
            options.env = http_ess_env(balancer.port());
            unpersisted(options, id)
        })
        .collect();
    for (ess, id) in fleet.iter().zip(&ids) {
        wait_registered(&first, ess, id).await;
    }
    let receivers: Vec<Receiver> = fleet
        .iter()
        .zip(&ids)
        .map(|(ess, id)| Receiver::start(ess, id))
        .collect();
    let mut nodes: Vec<&TestNode> = vec![&first, &second];
    nodes.extend(fleet.iter());
    run(&Sender::css_at(balancer.port()), &receivers, addressing, &nodes).await;
}

/// The settings of an ESS polling the CSS on `css_port` over HTTP with the fast timers.
fn http_ess_env(css_port: u16) -> Vec<(String, String)> {
    let port = css_port.to_string();
    let mut env = vec![
        ("COMMUNICATION_PROTOCOL", "http"),
        ("HTTP_CSS_HOST", "127.0.0.1"),
        ("HTTP_CSS_PORT", port.as_str()),
    ];
    env.extend(FAST_TIMERS);
    env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_css_instances_each_ess_with_objects_of_its_own() {
    two_css_instances_behind_a_balancer(Addressing::EachNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_css_instances_ess_sharing_the_objects_of_their_type() {
    two_css_instances_behind_a_balancer(Addressing::Type).await;
}
