//! Property tests of the object routes' path reading: whatever segments a client sends, the
//! route either addresses objects by valid names or is refused with a client error.

use super::*;
use crate::api::routes::checks::any_method;
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

/// A decoded path segment as `segments` yields them (never empty): valid names, names with
/// refused characters, operations.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9|!@#$^*_.~-]{1,8}",
        1 => prop::sample::select(Operation::ALL.iter().map(|&(name, _)| name).collect::<Vec<_>>())
            .prop_map(str::to_string),
        1 => "\\PC{1,6}",
        1 => "[a-z]{0,3}[ /<>=&'\"\\\\%?:+,][a-z]{0,3}",
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Css), Just(Role::Ess)]
}

fn raw_path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(segment(), 0..7).prop_map(|parts| {
            let encoded: Vec<String> = parts
                .iter()
                .map(|p| percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC).to_string())
                .collect();
            format!("{PREFIX}/{}", encoded.join("/"))
        }),
        "[ -~]{0,30}".prop_map(|rest| format!("{PREFIX}{rest}")),
    ]
}

fn assert_valid_key(key: &ObjectKey, role: Role) -> Result<(), TestCaseError> {
    match role {
        Role::Css => prop_assert!(is_valid_name(&key.org), "{key:?}"),
        Role::Ess => prop_assert_eq!(key.org.as_str(), "myorg"),
    }
    prop_assert!(
        is_valid_name(&key.object_type) && is_valid_name(&key.object_id),
        "{key:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn targets_name_objects_by_valid_names_or_are_a_400(role in role(), parts in prop::collection::vec(segment(), 0..7)) {
        let count = parts.len();
        match parse_target(role, "myorg", parts) {
            Ok(Target::Org(org)) => prop_assert!(role == Role::Ess || is_valid_name(&org)),
            Ok(Target::Type(_, object_type)) => prop_assert!(is_valid_name(&object_type)),
            Ok(Target::Object(key)) => assert_valid_key(&key, role)?,
            Ok(Target::Operation(key, _)) => {
                assert_valid_key(&key, role)?;
                let segments_of_an_operation = if role == Role::Css { 4 } else { 3 };
                prop_assert_eq!(count, segments_of_an_operation);
            }
            Err(error) => prop_assert!(matches!(error, ApiError::BadRequest(_)), "{error:?}"),
        }
    }

    /// Every request under the prefix is routed or refused with a client error (a redirect
    /// to the clean path included); never a server error.
    #[test]
    fn any_request_is_routed_or_refused_with_a_client_error(role in role(), method in any_method(), path in raw_path()) {
        if let Err(error) = recognise(role, &method, &path) {
            let status = error.into_response().status();
            prop_assert!(status.is_client_error() || status == StatusCode::MOVED_PERMANENTLY, "{status} for {path}");
        }
    }
}
