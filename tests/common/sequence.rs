//! The update sequence of the original's end-to-end tests, in our words: one application
//! creates, updates, deletes, activates and lets objects expire in a fixed order; a
//! [`ReceivingApp`] on each receiving node must see exactly what the original's
//! applications see, no more: every delivered object once with its flags and data, every
//! deletion once, nothing while an object is inactive, nothing when an object expires.
//! Afterwards the sender's view of each node's objects must match what the applications did.

use super::app::{ReceivingApp, Seen};
use super::proxy::Gate;
use super::sync::eventually;
use super::{Api, Role, TestNode, ORG};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The object type every step uses.
pub const OBJECT_TYPE: &str = "sequence";
/// How long one step may take to reach an application.
const STEP_DEADLINE: Duration = Duration::from_secs(30);
/// Seconds before an expiring object expires: enough for every application to take it.
const EXPIRES_AFTER: i64 = 4;
/// Seconds before a timed activation.
const ACTIVATES_AFTER: i64 = 2;

/// What a step does with its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Create or replace the object (and upload its data unless `noData`/`metaOnly`).
    Update,
    /// Delete it.
    Delete,
    /// Activate it through the activate route.
    Activate,
    /// Create it inactive with an activation time two seconds ahead.
    ActivateLater,
    /// Create it with an expiration four seconds ahead (an ESS refuses expiration).
    Expire,
}

/// One step of the sequence.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub id: &'static str,
    pub op: Op,
    pub inactive: bool,
    pub no_data: bool,
    pub meta_only: bool,
    /// The application consumes the object (else it only marks it received).
    pub consume: bool,
}

const fn step(id: &'static str, op: Op, consume: bool) -> Step {
    Step {
        id,
        op,
        inactive: false,
        no_data: false,
        meta_only: false,
        consume,
    }
}

const fn inactive(mut step: Step) -> Step {
    step.inactive = true;
    step
}

const fn no_data(mut step: Step) -> Step {
    step.no_data = true;
    step
}

const fn meta_only(mut step: Step) -> Step {
    step.meta_only = true;
    step
}

/// The original's sequence: each kind of change once with a consuming application, then
/// again with one that only marks objects received.
pub const STEPS: [Step; 17] = [
    step("u1", Op::Update, true),
    step("u2", Op::Update, true),
    step("u2", Op::Delete, true),
    inactive(step("u3", Op::Update, true)),
    step("u3", Op::Activate, true),
    inactive(step("u4", Op::ActivateLater, true)),
    no_data(step("u5", Op::Update, true)),
    step("u6", Op::Expire, true),
    step("u7", Op::Update, false),
    step("u8", Op::Update, false),
    step("u8", Op::Delete, false),
    inactive(step("u9", Op::Update, false)),
    step("u9", Op::Activate, false),
    inactive(step("u10", Op::ActivateLater, false)),
    meta_only(step("u10", Op::Update, false)),
    no_data(step("u11", Op::Update, false)),
    step("u12", Op::Expire, false),
];

/// The objects of the original's blocked-registration test: created while the receiving
/// node cannot reach the CSS, with and without data, consumed or only received.
pub const WHILE_UNREACHABLE: [Step; 4] = [
    step("r1", Op::Update, true),
    step("r2", Op::Update, false),
    no_data(step("r3", Op::Update, true)),
    no_data(step("r4", Op::Update, false)),
];

/// The data of an object: the same for every instance, so a `metaOnly` update keeps it.
pub fn payload(object_id: &str) -> Vec<u8> {
    format!("data of {object_id}: {}", "0123456789".repeat(object_id.len())).into_bytes()
}

/// How the sender addresses the receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `destinationType` + `destinationID` of the one receiving ESS.
    Node,
    /// `destinationType` only: every ESS of the type.
    Type,
    /// `destinationsList` naming the one receiving ESS.
    List,
    /// One object per ESS, each addressed to its node (`{id}-{destinationID}`).
    EachNode,
    /// The sender is an ESS; its objects go to the CSS.
    ToCss,
}

/// Where the sending application makes its requests: a node, or a balancer in front of
/// several CSS instances.
pub struct Sender {
    api: Api,
    role: Role,
}

impl Sender {
    /// The application of `node`.
    pub fn of(node: &TestNode) -> Self {
        Self {
            api: node.api(),
            role: node.role,
        }
    }

    /// An application of the CSS reached through the loopback `port`.
    pub fn css_at(port: u16) -> Self {
        Self {
            api: super::api_at(port),
            role: Role::Css,
        }
    }

    fn obj(&self, object_id: &str) -> String {
        format!("{}/{object_id}", super::type_path(self.role, OBJECT_TYPE))
    }
}

/// A node whose application takes part, and the destination ID it has as an ESS.
pub struct Receiver<'a> {
    pub node: &'a TestNode,
    pub app: ReceivingApp,
    pub dest_id: String,
}

impl<'a> Receiver<'a> {
    /// Starts the application of `node` (an ESS `edge`/`dest_id`, or the CSS).
    pub fn start(node: &'a TestNode, dest_id: &str) -> Self {
        Self {
            node,
            app: ReceivingApp::start(node, OBJECT_TYPE),
            dest_id: dest_id.to_string(),
        }
    }

    /// The ID this receiver's application knows `id` by.
    fn object_id(&self, id: &str, addressing: Addressing) -> String {
        match addressing {
            Addressing::EachNode => format!("{id}-{}", self.dest_id),
            _ => id.to_string(),
        }
    }
}

/// Runs the whole sequence from `sender` to `receivers` and checks everything the
/// applications and the sender report; `nodes` are the processes whose logs explain a failure.
pub async fn run(sender: &Sender, receivers: &[Receiver<'_>], addressing: Addressing, nodes: &[&TestNode]) {
    for receiver in receivers {
        for step in STEPS.iter().filter(|s| !s.consume) {
            receiver.app.only_receive(&receiver.object_id(step.id, addressing));
        }
    }
    let mut expected_events: Vec<Vec<(String, bool)>> = vec![Vec::new(); receivers.len()];
    let mut expired: Vec<&str> = Vec::new();
    for (number, step) in STEPS.iter().enumerate() {
        let before: Vec<usize> = receivers.iter().map(|r| r.app.seen().len()).collect();
        if step.op == Op::Activate {
            for receiver in receivers {
                let id = receiver.object_id(step.id, addressing);
                assert!(
                    receiver.app.seen().iter().all(|s| s.object_id != id),
                    "step {number}: the application saw {id} while it was inactive"
                );
            }
        }
        if !perform(sender, receivers, addressing, step).await {
            continue;
        }
        if step.op == Op::Expire {
            expired.push(step.id);
        }
        if step.inactive && step.op != Op::ActivateLater {
            continue;
        }
        let deleted = step.op == Op::Delete;
        for (index, receiver) in receivers.iter().enumerate() {
            let id = receiver.object_id(step.id, addressing);
            let seen = wait_for_new(receiver, &id, deleted, before[index], nodes).await;
            check_seen(number, step, &seen);
            expected_events[index].push((id, deleted));
        }
    }
    settle(sender, receivers, addressing, &expired, nodes).await;
    for (index, receiver) in receivers.iter().enumerate() {
        let seen: Vec<(String, bool)> = receiver
            .app
            .seen()
            .into_iter()
            .map(|s| (s.object_id, s.deleted))
            .collect();
        assert_eq!(
            seen, expected_events[index],
            "what the application of {} was handed, in order",
            receiver.dest_id
        );
        assert_eq!(
            receiver.app.relisted(),
            Default::default(),
            "objects listed again to the application of {} after it handled them",
            receiver.dest_id
        );
    }
    if addressing != Addressing::ToCss {
        for receiver in receivers {
            check_delivery_statuses(sender, receiver, addressing, &STEPS, nodes).await;
        }
    }
}

/// Creates [`WHILE_UNREACHABLE`]'s objects while the receiving node cannot reach the CSS
/// through `gate`: its application sees none of them while the node keeps trying, then all
/// of them once the gate opens, and the CSS reports them as the application left them.
pub async fn run_while_unreachable(
    sender: &Sender,
    receiver: &Receiver<'_>,
    addressing: Addressing,
    gate: &Gate,
    nodes: &[&TestNode],
) {
    for step in WHILE_UNREACHABLE.iter().filter(|s| !s.consume) {
        receiver.app.only_receive(step.id);
    }
    for step in &WHILE_UNREACHABLE {
        assert!(perform(sender, std::slice::from_ref(receiver), addressing, step).await);
    }
    let refused = gate.refused();
    super::sync::wait_for("the node to try the CSS again", nodes, STEP_DEADLINE, async || {
        gate.refused() >= refused + 2
    })
    .await;
    receiver.app.wait_polls(2, nodes, STEP_DEADLINE).await;
    assert_eq!(
        receiver.app.seen(),
        Vec::new(),
        "nothing arrives while the CSS is unreachable"
    );
    gate.open();
    for step in &WHILE_UNREACHABLE {
        let seen = wait_for_new(receiver, step.id, false, 0, nodes).await;
        check_seen(0, step, &seen);
    }
    if addressing != Addressing::ToCss {
        check_delivery_statuses(sender, receiver, addressing, &WHILE_UNREACHABLE, nodes).await;
    }
}

/// Carries out one step on the sender; false when the sender refused it as it must (an ESS
/// refuses expiration).
async fn perform(sender: &Sender, receivers: &[Receiver<'_>], addressing: Addressing, step: &Step) -> bool {
    let api = &sender.api;
    let targets: Vec<(String, Option<&str>)> = match addressing {
        Addressing::EachNode => receivers
            .iter()
            .map(|r| (r.object_id(step.id, addressing), Some(r.dest_id.as_str())))
            .collect(),
        _ => vec![(step.id.to_string(), receivers.first().map(|r| r.dest_id.as_str()))],
    };
    for (object_id, dest_id) in targets {
        let path = sender.obj(&object_id);
        match step.op {
            Op::Delete => {
                let response = api.delete_as(super::ADMIN, &path).await;
                assert_eq!(response.status, 204, "DELETE {path}: {}", response.text());
            }
            Op::Activate => {
                let response = api.put_empty_as(super::ADMIN, &format!("{path}/activate")).await;
                assert_eq!(response.status, 204, "activating {path}: {}", response.text());
            }
            Op::Update | Op::ActivateLater | Op::Expire => {
                let meta = metadata(step, &object_id, addressing, dest_id);
                let response = api.put_json(&path, &json!({ "meta": meta })).await;
                if step.op == Op::Expire && addressing == Addressing::ToCss {
                    assert_eq!(response.status, 400, "an ESS refuses expiration: {}", response.text());
                    return false;
                }
                assert_eq!(response.status, 204, "PUT {path}: {}", response.text());
                if !step.no_data && !step.meta_only {
                    let response = api.put_bytes(&format!("{path}/data"), payload(step.id)).await;
                    assert_eq!(response.status, 204, "data of {path}: {}", response.text());
                }
            }
        }
    }
    true
}

/// The metadata a step's update sends.
fn metadata(step: &Step, object_id: &str, addressing: Addressing, dest_id: Option<&str>) -> Value {
    let mut meta = json!({
        "objectID": object_id,
        "objectType": OBJECT_TYPE,
        "inactive": step.inactive,
        "noData": step.no_data,
        "metaOnly": step.meta_only,
    });
    let in_secs = |secs: i64| {
        (OffsetDateTime::now_utc() + time::Duration::seconds(secs))
            .format(&Rfc3339)
            .expect("RFC 3339")
    };
    if step.op == Op::ActivateLater {
        meta["activationTime"] = in_secs(ACTIVATES_AFTER).into();
    }
    if step.op == Op::Expire {
        meta["expiration"] = in_secs(EXPIRES_AFTER).into();
    }
    let dest_id = dest_id.unwrap_or_default();
    match addressing {
        Addressing::Node | Addressing::EachNode => {
            meta["destinationType"] = "edge".into();
            meta["destinationID"] = dest_id.into();
        }
        Addressing::Type => meta["destinationType"] = "edge".into(),
        Addressing::List => meta["destinationsList"] = json!([format!("edge:{dest_id}")]),
        Addressing::ToCss => {}
    }
    meta
}

/// Waits for the first event about `id` (with that `deleted` flag) after the first `after`.
async fn wait_for_new(receiver: &Receiver<'_>, id: &str, deleted: bool, after: usize, nodes: &[&TestNode]) -> Seen {
    eventually(
        &format!(
            "the application of {} to see {id} (deleted: {deleted})",
            receiver.dest_id
        ),
        nodes,
        STEP_DEADLINE,
        async || {
            receiver
                .app
                .seen()
                .into_iter()
                .skip(after)
                .find(|s| s.object_id == id && s.deleted == deleted)
        },
    )
    .await
}

/// What the application must have seen of a step: the flags as sent and the data.
fn check_seen(number: usize, step: &Step, seen: &Seen) {
    let what = format!("step {number} ({:?} of {})", step.op, seen.object_id);
    assert_eq!(seen.failure, None, "{what}: the application's handling failed");
    if step.op == Op::Delete {
        return;
    }
    assert_eq!(seen.meta_only, step.meta_only, "{what}: metaOnly as sent");
    assert_eq!(seen.no_data, step.no_data, "{what}: noData as sent");
    let data = (!step.no_data).then(|| payload(step.id));
    assert_eq!(seen.data, data, "{what}: the data");
}

/// Waits until expired objects are gone from the sender and every receiver, then for two
/// more polls of every application, so that anything they would still be shown has been.
async fn settle(
    sender: &Sender,
    receivers: &[Receiver<'_>],
    addressing: Addressing,
    expired: &[&str],
    nodes: &[&TestNode],
) {
    for id in expired {
        for receiver in receivers {
            let object_id = receiver.object_id(id, addressing);
            let on_receiver = receiver.node.obj(OBJECT_TYPE, &object_id);
            for (api, path) in [
                (sender.api.clone(), sender.obj(&object_id)),
                (receiver.node.api(), on_receiver),
            ] {
                eventually(&format!("{path} to expire"), nodes, STEP_DEADLINE, async || {
                    (api.get(&path).await.status == 404).then_some(())
                })
                .await;
            }
        }
    }
    for receiver in receivers {
        receiver.app.wait_polls(2, nodes, STEP_DEADLINE).await;
    }
}

/// The statuses the CSS reports for the objects of one node: `consumed` or `delivered` as
/// its application did, and nothing for deleted or expired objects.
async fn check_delivery_statuses(
    css: &Sender,
    receiver: &Receiver<'_>,
    addressing: Addressing,
    steps: &[Step],
    nodes: &[&TestNode],
) {
    let mut expected = BTreeMap::new();
    for step in steps {
        let id = receiver.object_id(step.id, addressing);
        match step.op {
            Op::Delete | Op::Expire => {
                expected.remove(&id);
            }
            Op::Update if step.inactive => {}
            _ => {
                expected.insert(id, if step.consume { "consumed" } else { "delivered" });
            }
        }
    }
    let path = format!("/api/v1/destinations/{ORG}/edge/{}/objects", receiver.dest_id);
    let deadline = std::time::Instant::now() + STEP_DEADLINE;
    loop {
        let response = css.api.get(&path).await;
        let listed: BTreeMap<String, String> = match response.status {
            200 => response
                .json()
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["objectType"] == OBJECT_TYPE)
                .map(|s| {
                    let id = s["objectID"].as_str().unwrap_or_default().to_string();
                    (id, s["status"].as_str().unwrap_or_default().to_string())
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let matches = listed.len() == expected.len()
            && expected
                .iter()
                .all(|(id, want)| listed.get(id).is_some_and(|s| s == want));
        if matches {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
            panic!(
                "the CSS lists {listed:?} for {}, expected {expected:?}\n--- logs ---\n{}",
                receiver.dest_id,
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
