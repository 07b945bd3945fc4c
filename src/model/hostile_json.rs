//! Hostile JSON texts for the body readers: valid-looking documents whose fields have every
//! wrong type, numbers past every integer width, deep nesting, duplicate and case-folded keys,
//! broken escapes. Built as text, so that numbers no JSON value type holds (`1e400`) and
//! duplicate keys reach the reader as a client would send them.

use super::metadata::{METADATA_FIELDS, POLICY_FIELDS, SERVICE_FIELDS};
use proptest::prelude::*;

/// Numbers at and past the edges of the integer and float types.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e400",
    "-1e400",
    "1.5",
    "1E2",
    "0.0",
    "01",
    "+1",
];

/// Strings the validation rules look into: times, URIs, ranges, destinations, markup.
const EDGE_STRINGS: &[&str] = &[
    "",
    "2024-01-01T00:00:00Z",
    "9999-12-31T23:59:59+23:59",
    "0000-01-01T00:00:00-23:59",
    "2024-13-45T25:61:61Z",
    "2024-01-01t00:00:00z",
    "2024-01-01T00:00:00.999999999999Z",
    "file:///tmp/x",
    "file://host/x",
    "FILE:/a%2Fb",
    "file:%zz",
    "file:///%FF%FE",
    "file://@/x?y#z",
    "[1.0,2.0)",
    "(INFINITY,1]",
    "1.2.3.4",
    "9223372036854775808",
    "SHA1",
    "SHA256",
    "t:i",
    "a:b:c",
    ":",
    "<x>:y",
    "<b>bold</b>",
    "a b",
    "QUJD",
    "QUJD=",
    "Q\r\nUJD",
    "é/ü",
];

/// A JSON string literal: an edge string, any text, or a broken escape.
pub fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(EDGE_STRINGS).prop_map(quoted),
        2 => "\\PC{0,12}".prop_map(|s| quoted(&s)),
        1 => prop::sample::select(vec![r#""\ud800""#, r#""\udc00x""#, r#""\u12""#, r#""\x41""#, "\"unterminated", "\"tab\tinside\""])
            .prop_map(str::to_string),
    ]
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Any number as text, in range of some integer type or past all of them.
pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EDGE_NUMBERS).prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number(),
        string_literal(),
    ]
}

/// A key of `fields` in any letter case, or another key.
fn key(fields: &'static [&'static str]) -> BoxedStrategy<String> {
    let made_up = "[a-zA-Z]{1,8}".prop_map(|k| quoted(&k));
    if fields.is_empty() {
        return made_up.boxed();
    }
    prop_oneof![
        3 => prop::sample::select(fields).prop_map(quoted),
        1 => prop::sample::select(fields).prop_map(|k| quoted(&k.to_uppercase())),
        1 => made_up,
    ]
    .boxed()
}

fn object_of(entries: Vec<(String, String)>) -> String {
    let body: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", body.join(","))
}

/// Any JSON value a few levels deep, keys taken from `fields` or made up.
pub fn value(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    scalar().prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key(fields), inner), 0..5).prop_map(object_of),
        ]
    })
}

/// A value nested far deeper than any reader should follow (serde_json stops at 128).
pub fn deep_value() -> impl Strategy<Value = String> {
    (1usize..400, prop::bool::ANY).prop_map(|(depth, arrays)| {
        let (open, close) = if arrays { ("[", "]") } else { (r#"{"a":"#, "}") };
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    })
}

/// A value of the type a metadata field has, or of any other type.
fn field_value(field: &str) -> BoxedStrategy<String> {
    let right_type = match field {
        "consumers" | "chunkSize" | "instanceID" | "dataID" | "objectSize" | "uploadChunkSize" => number().boxed(),
        "inactive" | "noData" | "metaOnly" | "autodelete" | "deleted" | "public" => {
            prop::sample::select(vec!["true", "false"])
                .prop_map(str::to_string)
                .boxed()
        }
        "destinationsList" => prop::collection::vec(string_literal(), 0..4)
            .prop_map(|items| format!("[{}]", items.join(",")))
            .boxed(),
        "destinationPolicy" => policy().boxed(),
        _ => string_literal().boxed(),
    };
    prop_oneof![3 => right_type, 1 => value(METADATA_FIELDS), 1 => deep_value()].boxed()
}

/// A destination policy: properties, constraints and services of any shape.
fn policy() -> impl Strategy<Value = String> {
    let service = prop::collection::vec((key(SERVICE_FIELDS), string_literal()), 0..5).prop_map(object_of);
    let field = prop_oneof![
        (
            Just(quoted("services")),
            prop::collection::vec(service, 0..3).prop_map(|s| format!("[{}]", s.join(",")))
        ),
        (key(POLICY_FIELDS), value(&["name", "value", "type"])),
    ];
    prop::collection::vec(field, 0..4).prop_map(object_of)
}

/// A metadata object: known fields (in any case, repeated or not) with values of the right
/// type or any other, and unknown fields.
pub fn metadata_object() -> impl Strategy<Value = String> {
    let entry = prop::sample::select(METADATA_FIELDS).prop_flat_map(|field| {
        let spelled = prop_oneof![Just(field.to_string()), Just(field.to_lowercase())].prop_map(|k| quoted(&k));
        (spelled, field_value(field))
    });
    prop::collection::vec(entry, 0..12).prop_map(object_of)
}

/// A metadata object whose every field has its right type and fits its width: what a
/// reader must accept.
pub fn well_typed_metadata_object() -> impl Strategy<Value = String> {
    let entry = prop::sample::select(METADATA_FIELDS).prop_flat_map(|field| {
        let value = match field {
            "consumers" | "chunkSize" => any::<i32>().prop_map(|n| n.to_string()).boxed(),
            "instanceID" | "dataID" | "objectSize" | "uploadChunkSize" => {
                any::<i64>().prop_map(|n| n.to_string()).boxed()
            }
            "inactive" | "noData" | "metaOnly" | "autodelete" | "deleted" | "public" => {
                any::<bool>().prop_map(|b| b.to_string()).boxed()
            }
            "destinationsList" => prop::collection::vec("\\PC{0,8}".prop_map(|s| quoted(&s)), 0..4)
                .prop_map(|items| format!("[{}]", items.join(",")))
                .boxed(),
            "destinationPolicy" => (
                prop::collection::vec("\\PC{0,8}".prop_map(|s| quoted(&s)), 0..3),
                any::<i64>(),
            )
                .prop_map(|(constraints, timestamp)| {
                    format!(
                        r#"{{"constraints":[{}],"timestamp":{timestamp}}}"#,
                        constraints.join(",")
                    )
                })
                .boxed(),
            _ => prop_oneof![
                prop::sample::select(EDGE_STRINGS).prop_map(quoted),
                "\\PC{0,12}".prop_map(|s| quoted(&s))
            ]
            .boxed(),
        };
        let spelled = prop_oneof![Just(field.to_string()), Just(field.to_uppercase())].prop_map(|k| quoted(&k));
        (spelled, prop_oneof![4 => value, 1 => Just("null".to_string())])
    });
    prop::collection::vec(entry, 0..12).prop_map(object_of)
}
