//! Property tests of the `PUT {obj}` body reader and the validation after it: any body is
//! read or refused with a 400 that names the problem, and validation decides on anything
//! that was read without failing itself.

use super::*;
use crate::model::hostile_json::{deep_value, metadata_object, value, well_typed_metadata_object};
use crate::model::validate::{parse_destination_entry, ValidationError};
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

/// A `PUT {obj}` body: hostile metadata with hostile inline data, or anything else.
fn put_body() -> impl Strategy<Value = String> {
    let data = prop_oneof![
        Just(r#""QUJD""#.to_string()),
        Just(r#""not base64!""#.to_string()),
        Just(r#""""#.to_string()),
        value(&[]),
    ];
    prop_oneof![
        4 => (metadata_object(), data).prop_map(|(meta, data)| format!(r#"{{"meta":{meta},"data":{data}}}"#)),
        1 => metadata_object().prop_map(|meta| format!(r#"{{"META":{meta}}}"#)),
        1 => value(&["meta", "data"]),
        1 => deep_value(),
    ]
}

fn assert_400(error: EngineError) -> Result<(), TestCaseError> {
    let EngineError::Invalid(message) = &error else {
        return Err(TestCaseError::fail(format!("not a 400: {error:?}")));
    };
    prop_assert!(message.starts_with("Invalid JSON for update. Error: "), "{message}");
    prop_assert!(
        message.len() > "Invalid JSON for update. Error: ".len(),
        "no reason given"
    );
    Ok(())
}

/// Validation of what was read, on both roles, with and without inline data.
fn validate_everywhere(meta: &MetaData) -> Result<(), TestCaseError> {
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    for role in [Role::Css, Role::Ess] {
        for has_inline_data in [false, true] {
            let context = PutContext {
                role,
                path_org: "org",
                path_type: &meta.object_type,
                path_id: &meta.object_id,
                has_inline_data,
                existing: None,
                now,
                file_exists: &|_| true,
            };
            if let Err(ValidationError(message)) = validate_put(meta, &context) {
                prop_assert!(!message.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn any_bytes_are_read_or_refused_with_a_400(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Err(error) = read_put_body(&body) {
            assert_400(error)?;
        }
    }

    #[test]
    fn hostile_bodies_are_read_and_decided_or_refused_with_a_400(body in put_body()) {
        match read_put_body(body.as_bytes()) {
            Ok(request) => {
                if let Err(error) = inline_data(request.data.as_deref()) {
                    assert_400(error)?;
                }
                validate_everywhere(&request.meta)?;
                for entry in request.meta.destinations_list.iter().flatten() {
                    if let Err(ValidationError(message)) = parse_destination_entry(entry) {
                        prop_assert!(message.starts_with("Invalid destination"));
                    }
                }
            }
            Err(error) => assert_400(error)?,
        }
    }

    /// No false refusals: a body whose every field has its type and width is read, whatever
    /// the letter case of its keys, and validation decides on it.
    #[test]
    fn well_typed_bodies_are_read(meta in well_typed_metadata_object()) {
        let body = format!(r#"{{"meta":{meta},"data":"QUJD"}}"#);
        let request = read_put_body(body.as_bytes());
        prop_assert!(request.is_ok(), "{request:?} for {body}");
        if let Ok(request) = request {
            prop_assert_eq!(inline_data(request.data.as_deref()).ok().flatten(), Some(b"ABC".to_vec()));
            validate_everywhere(&request.meta)?;
        }
    }
}
