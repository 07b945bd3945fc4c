//! Property tests of request reading: path segments under a route prefix, query strings,
//! and the names and booleans read from them. Any input is read, redirected to its clean
//! form, or refused with a 400; none gets past as a segment that could address something
//! else (a `/` inside a segment, `.` or `..`).

use super::*;
use crate::proptest_cases::{budget, QUICK};
use axum::response::IntoResponse;
use proptest::prelude::*;

const PREFIX: &str = "/api/v1/objects";

/// One raw (still percent-encoded) path segment, favouring the spellings that matter:
/// empty, dot segments, encoded slashes and dots, broken escapes, non-UTF-8 escapes.
fn raw_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_.~-]{1,8}",
        1 => Just(String::new()),
        1 => Just(".".to_string()),
        1 => Just("..".to_string()),
        1 => prop::sample::select(vec!["%2F", "%2f", "a%2Fb", "%2E", "%2e", "%2E%2E", ".%2e", "%2e.", "%2E%2E%2F"])
            .prop_map(str::to_string),
        1 => prop::sample::select(vec!["%", "%2", "%G0", "%FF", "%C3", "%C3%A9", "%25", "%252F", "%%2F", "a%20b", "%00"])
            .prop_map(str::to_string),
        1 => "[!$&'()*+,;=:@%0-9A-Fa-f./]{1,6}",
    ]
}

/// A raw path under the prefix: generated segments, or any text after the prefix.
fn raw_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::collection::vec(raw_segment(), 0..6), any::<bool>()).prop_map(|(parts, trailing)| {
            let slash = if trailing { "/" } else { "" };
            format!("{PREFIX}/{}{slash}", parts.join("/"))
        }),
        1 => "[ -~]{0,24}".prop_map(|rest| format!("{PREFIX}/{rest}")),
        1 => "\\PC{0,12}".prop_map(|rest| format!("{PREFIX}/{rest}")),
    ]
}

/// The raw segments after `{PREFIX}/`.
fn raw_segments(path: &str) -> Vec<&str> {
    path.strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| rest.split('/').collect())
        .unwrap_or_default()
}

fn decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// A literal empty (other than the last), `.` or `..` raw segment: what a redirect cleans.
fn needs_cleaning(path: &str) -> bool {
    let segments = raw_segments(path);
    segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i + 1 < segments.len()))
}

/// A `/`, `.` or `..` that only percent-decoding reveals.
fn has_encoded_separator(path: &str) -> bool {
    raw_segments(path).iter().any(|raw| {
        let text = decoded(raw);
        text.contains('/') || (raw.contains('%') && (text == "." || text == ".."))
    })
}

fn is_400_with_reason(error: &ApiError) -> bool {
    matches!(error, ApiError::BadRequest(message) if !message.is_empty())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    /// True of the segment rule before and after encoded separators became 400s.
    #[test]
    fn segments_are_plain_names_or_a_redirect_or_a_400(path in raw_path()) {
        match segments(&path, PREFIX, None) {
            Ok(parts) => {
                for part in &parts {
                    prop_assert!(!part.contains('/') && part != "." && part != "..", "{part:?}");
                }
                if !has_encoded_separator(&path) {
                    let mut expected: Vec<String> = raw_segments(&path).into_iter().map(decoded).collect();
                    // A trailing slash adds no segment; the prefix and a slash alone address
                    // no segment at all.
                    if expected.len() > 1 && expected.last().is_some_and(String::is_empty) {
                        expected.pop();
                    }
                    if expected == [""] {
                        expected.clear();
                    }
                    prop_assert_eq!(parts, expected);
                }
            }
            Err(ApiError::Redirect(location)) => prop_assert!(location.starts_with('/')),
            Err(error) => prop_assert!(is_400_with_reason(&error), "{error:?}"),
        }
    }

    /// The contract of encoded separators: a redirect only cleans what the client literally
    /// sent, and never turns an encoded `/` into a real one; an encoded separator is a 400.
    #[test]
    fn redirects_clean_only_literal_segments_and_encoded_separators_are_refused(path in raw_path()) {
        let result = segments(&path, PREFIX, None);
        if has_encoded_separator(&path) {
            prop_assert!(matches!(&result, Err(e) if is_400_with_reason(e)), "{result:?}");
        }
        if let Err(ApiError::Redirect(location)) = &result {
            prop_assert!(needs_cleaning(&path), "redirected a clean path to {location}");
            if !path.contains('%') {
                prop_assert!(!location.contains('%'), "{location}");
            }
            for segment in location.split('/') {
                prop_assert!(!decoded(segment).contains('/'), "{location}");
            }
            // Following the redirect must not redirect again.
            if location.starts_with(&format!("{PREFIX}/")) {
                prop_assert!(!matches!(segments(location, PREFIX, None), Err(ApiError::Redirect(_))), "{location}");
            }
        }
    }

    #[test]
    fn redirects_keep_the_query(path in raw_path(), query in "[a-z0-9=&]{1,12}") {
        if let Err(ApiError::Redirect(location)) = segments(&path, PREFIX, Some(&query)) {
            prop_assert!(location.ends_with(&format!("?{query}")), "{location}");
        }
    }

    #[test]
    fn any_query_string_is_read(raw in "\\PC{0,40}", name in "[a-zA-Z%+=&]{1,6}") {
        let query = Query::parse(Some(&raw));
        if let Some(value) = query.get(&name) {
            prop_assert!(!value.is_empty());
        }
        match query.bool(&name) {
            Ok(Some(value)) => prop_assert_eq!(query.get(&name).and_then(parse_bool), Some(value)),
            Ok(None) => prop_assert_eq!(query.get(&name), None),
            Err(error) => {
                prop_assert!(query.get(&name).is_some_and(|v| parse_bool(v).is_none()));
                prop_assert_eq!(error.into_response().status(), axum::http::StatusCode::BAD_REQUEST);
            }
        }
        if let Err(error) = query.name(&name, "object type") {
            prop_assert!(is_400_with_reason(&error), "{error:?}");
        }
    }

    /// Whatever the encoding, the first non-empty value of a key is the one read.
    #[test]
    fn encoded_queries_read_back(pairs in prop::collection::vec(("[a-z]{1,3}", "\\PC{0,8}"), 0..6)) {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let query = Query::parse(Some(&encoded));
        for (key, _) in &pairs {
            let first = pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            prop_assert_eq!(query.get(key), first.filter(|v| !v.is_empty()));
        }
    }

    #[test]
    fn booleans_are_exactly_the_go_spellings(text in prop_oneof![
        prop::sample::select(vec!["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"]).prop_map(str::to_string),
        "[a-zA-Z01 ]{0,6}",
    ]) {
        let expected = match text.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        };
        prop_assert_eq!(parse_bool(&text), expected);
    }

    /// A refused name is echoed HTML-escaped, so the 400's body cannot carry markup.
    #[test]
    fn refused_names_are_echoed_without_markup(value in "\\PC{0,16}") {
        let ApiError::BadRequest(message) = invalid_name("object ID", &value) else {
            return Err(TestCaseError::fail("invalid_name is not a 400"));
        };
        prop_assert!(!message.contains(['<', '>', '"', '\'']), "{message}");
    }
}
