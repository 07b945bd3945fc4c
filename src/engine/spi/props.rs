//! Property tests of what the CSS reads from a node over the node-to-node protocol: the
//! `X-Sync-Service-Dest` header, the bodies of `update`, `deleted` and `feedback`, and (on
//! the ESS) a poll answer. Any input is read or refused; a refused update is a 400.

use super::*;
use crate::auth::edge::node_for_request;
use crate::auth::{Identity, IdentityKind};
use crate::engine::objects::METADATA_SHAPE;
use crate::model::hostile_json::{deep_value, metadata_object, value};
use crate::model::json::from_lenient;
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

/// A body a node might send with an action: hostile metadata, feedback of any shape, noise.
fn action_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => metadata_object().prop_map(String::into_bytes),
        2 => value(&["Code", "RetryInterval", "Reason"]).prop_map(String::into_bytes),
        1 => deep_value().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..48),
    ]
}

fn identity_kind() -> impl Strategy<Value = IdentityKind> {
    prop::sample::select(vec![
        IdentityKind::Failed,
        IdentityKind::EdgeNode,
        IdentityKind::OrgAdmin,
        IdentityKind::ObjectAdmin,
        IdentityKind::User,
        IdentityKind::NodeUser,
    ])
}

/// `{org}/{destType}/{destID}` headers, well formed or not.
fn dest_header() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop_oneof!["[a-z]{1,3}", Just(String::new()), "\\PC{1,3}"], 0..5)
            .prop_map(|parts| parts.join("/")),
        "\\PC{0,16}",
    ]
}

proptest! {
    #![proptest_config(budget(QUICK))]

    /// An `update` body is read as metadata or refused with a 400 naming the problem.
    #[test]
    fn update_bodies_are_metadata_or_a_400(body in action_body()) {
        let read: Result<MetaData, _> = from_lenient(&body, &METADATA_SHAPE);
        if let Err(e) = read {
            // Answered as `EngineError::Invalid`, which the API maps to 400 (api::error's
            // tests); here only that there is a reason to give.
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A `deleted` body names a node only when it names both its type and ID; a `feedback`
    /// body that does not read is no feedback at all (code 0), never a failure.
    #[test]
    fn deleted_and_feedback_bodies_never_fail(body in action_body()) {
        if let Some(remote) = deleted_remote(&body) {
            prop_assert!(!remote.dest_type.is_empty() && !remote.dest_id.is_empty());
        }
        let feedback: Feedback = serde_json::from_slice(&body).unwrap_or_default();
        if serde_json::from_slice::<Feedback>(&body).is_err() {
            prop_assert_eq!(feedback, Feedback::default());
        }
    }

    /// The node a request acts for is named by three non-empty header parts, and only an
    /// org admin (of the node's org) or the node itself speaks for it without a grant.
    #[test]
    fn destination_headers_name_one_node_or_none(
        kind in identity_kind(),
        header in dest_header(),
        org in "[a-z]{1,2}",
        user in "[a-z/]{0,5}",
        granted in any::<bool>(),
    ) {
        let identity = Identity { kind, org: org.clone(), user: user.clone() };
        if let Some(node) = node_for_request(&identity, &header, granted) {
            let parts: Vec<&str> = header.split('/').collect();
            prop_assert_eq!(parts.len(), 3);
            prop_assert!(parts.iter().all(|p| !p.is_empty()));
            prop_assert_eq!(node.org.as_str(), org.as_str());
            prop_assert_eq!((node.dest_type.as_str(), node.dest_id.as_str()), (parts[1], parts[2]));
            match kind {
                IdentityKind::EdgeNode => prop_assert_eq!(user, format!("{}/{}", parts[1], parts[2])),
                IdentityKind::OrgAdmin => prop_assert_eq!(parts[0], org.as_str()),
                IdentityKind::User => prop_assert!(granted),
                other => prop_assert!(false, "{other:?} spoke for a node"),
            }
        }
    }

    /// A poll answer (read by the ESS) is a list of items or refused, never a panic.
    #[test]
    fn poll_answers_are_items_or_refused(items in prop::collection::vec(metadata_object(), 0..3), kind in value(&[])) {
        let body: Vec<String> = items.iter().map(|meta| format!(r#"{{"Type":{kind},"MetaData":{meta}}}"#)).collect();
        let body = format!("[{}]", body.join(","));
        if let Ok(read) = serde_json::from_str::<Vec<PollItem>>(&body) {
            prop_assert_eq!(read.len(), items.len());
        }
    }
}
