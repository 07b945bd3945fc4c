//! Property tests of the `Range` and `Content-Range` parsers: any header text is either
//! parsed into a range that keeps the header's numbers and order, or refused with a 400
//! that says what is wrong; printed ranges read back as themselves.

use super::*;
use crate::proptest_cases::{budget, QUICK};
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use proptest::prelude::*;

/// A range bound as a client might send it: plain numbers, numbers at and past `u64::MAX`,
/// padded, signed or not numbers at all.
fn bound() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        Just(u64::MAX.to_string()),
        (0u128..1000).prop_map(|k| (u128::from(u64::MAX) + 1 + k).to_string()),
        "[0-9]{19,40}",
        any::<u64>().prop_map(|n| format!(" {n}\t")),
        any::<i64>().prop_map(|n| format!("{n:+}")),
        Just(String::new()),
        "[ -~]{0,8}",
    ]
}

/// `bytes=start-end` texts, including reversed, overflowing and multi-range ones.
fn range_header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (bound(), bound()).prop_map(|(start, end)| format!("bytes={start}-{end}")),
        (bound(), bound(), bound(), bound()).prop_map(|(a, b, c, d)| format!("bytes={a}-{b},{c}-{d}")),
        ("[a-zA-Z =]{0,8}", bound(), bound()).prop_map(|(unit, start, end)| format!("{unit}{start}-{end}")),
        ".*",
    ]
}

/// `bytes start-end/total` texts, including `*` totals and overflowing numbers.
fn content_range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (bound(), bound(), bound()).prop_map(|(s, e, t)| format!("bytes {s}-{e}/{t}")),
        (bound(), bound()).prop_map(|(s, e)| format!("bytes {s}-{e}/*")),
        ("[a-z =]{0,7}", bound(), bound(), bound()).prop_map(|(unit, s, e, t)| format!("{unit}{s}-{e}/{t}")),
        ".*",
    ]
}

fn header_map(name: HeaderName, value: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    Some(headers)
}

/// A refused header is a 400 whose body says what is wrong.
fn assert_bad_request(error: ApiError) -> Result<(), TestCaseError> {
    let ApiError::BadRequest(message) = &error else {
        return Err(TestCaseError::fail(format!("not a 400: {error:?}")));
    };
    prop_assert!(!message.is_empty(), "a 400 without a reason");
    prop_assert_eq!(error.into_response().status(), axum::http::StatusCode::BAD_REQUEST);
    Ok(())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn range_headers_parse_to_ordered_bounds_or_a_reason(text in range_header_text()) {
        match range(&text) {
            Ok(RangeRequest::FromTo(start, end)) => {
                prop_assert!(start <= end);
                prop_assert!(text.contains(&start.to_string()) && text.contains(&end.to_string()));
            }
            Ok(RangeRequest::From(start)) => prop_assert!(text.contains(&start.to_string())),
            Ok(RangeRequest::Suffix(len)) => prop_assert!(text.contains(&len.to_string())),
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn printed_ranges_read_back(start in any::<u64>(), end in any::<u64>()) {
        let expected = if start <= end { Ok(RangeRequest::FromTo(start, end)) } else { Err(()) };
        prop_assert_eq!(range(&format!("bytes={start}-{end}")).map_err(drop), expected);
        prop_assert_eq!(range(&format!("bytes={start}-")), Ok(RangeRequest::From(start)));
        prop_assert_eq!(range(&format!("bytes=-{end}")), Ok(RangeRequest::Suffix(end)));
    }

    #[test]
    fn bounds_past_u64_max_are_refused(excess in 1u128..=u128::from(u64::MAX)) {
        let huge = u128::from(u64::MAX) + excess;
        let (ending_past, starting_past) = (format!("bytes=0-{huge}"), format!("bytes={huge}-"));
        let content_past = format!("bytes 0-{huge}/{huge}");
        prop_assert!(range(&ending_past).is_err());
        prop_assert!(range(&starting_past).is_err());
        prop_assert!(content_range(&content_past).is_err());
    }

    #[test]
    fn content_ranges_lie_within_their_total_or_give_a_reason(text in content_range_text()) {
        match content_range(&text) {
            Ok(part) => {
                prop_assert!(part.start <= part.end);
                prop_assert!(part.total == 0 || part.start < part.total);
                let span = u128::from(part.end) - u128::from(part.start) + 1;
                prop_assert_eq!(u128::from(part.byte_count()), span.min(u128::from(u64::MAX)));
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// The node-to-node download prints `bytes {start}-{end}/{size}` and the ESS reads the
    /// start back from it; the upload parses the same form.
    #[test]
    fn printed_content_ranges_read_back(start in any::<u64>(), end in any::<u64>(), total in any::<u64>()) {
        let printed = format!("bytes {start}-{end}/{total}");
        prop_assert_eq!(content_range(&printed), ContentRange::checked(start, end, total));
    }

    #[test]
    fn any_header_bytes_give_a_range_or_a_400(value in proptest::collection::vec(any::<u8>(), 0..48)) {
        if let Some(headers) = header_map(header::RANGE, &value) {
            if let Err(error) = range_header(&headers) {
                assert_bad_request(error)?;
            }
        }
        if let Some(headers) = header_map(header::CONTENT_RANGE, &value) {
            if let Err(error) = content_range_header(&headers) {
                assert_bad_request(error)?;
            }
        }
    }

    #[test]
    fn structured_headers_give_a_range_or_a_400(text in prop_oneof![range_header_text(), content_range_text()]) {
        if let Some(headers) = header_map(header::RANGE, text.as_bytes()) {
            if let Err(error) = range_header(&headers) {
                assert_bad_request(error)?;
            }
        }
        if let Some(headers) = header_map(header::CONTENT_RANGE, text.as_bytes()) {
            if let Err(error) = content_range_header(&headers) {
                assert_bad_request(error)?;
            }
        }
    }
}
