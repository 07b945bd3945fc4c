//! The HTTP headers that carry byte ranges: `Content-Range` on a chunked upload and `Range`
//! on a download, read into the engine's [`ContentRange`] and [`RangeRequest`].

use super::error::{ApiError, ApiResult};
use crate::engine::{ContentRange, RangeRequest};
use axum::http::{header, HeaderMap, HeaderName};

/// The `Range` header of a download, if any; one that is not a single byte range is a 400.
pub fn range_header(headers: &HeaderMap) -> ApiResult<Option<RangeRequest>> {
    header_text(headers, header::RANGE)?
        .map(|text| range(text).map_err(ApiError::BadRequest))
        .transpose()
}

/// The `Content-Range` header of an upload chunk, if any; a malformed one is a 400 with the
/// original's text.
pub fn content_range_header(headers: &HeaderMap) -> ApiResult<Option<ContentRange>> {
    header_text(headers, header::CONTENT_RANGE)?
        .map(|text| {
            content_range(text)
                .map_err(|e| ApiError::BadRequest(format!("Failed to parse Content-Range header, Error: {e}")))
        })
        .transpose()
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> ApiResult<Option<&str>> {
    headers
        .get(&name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::BadRequest(format!("The {name} header is not valid text")))
        })
        .transpose()
}

/// `Content-Range: bytes {start}-{end}/{total}`; the total must be a number (no `*`).
pub fn content_range(header: &str) -> Result<ContentRange, String> {
    let spec = header
        .trim()
        .strip_prefix("bytes ")
        .ok_or("it must start with 'bytes '")?;
    let (range, total) = spec.split_once('/').ok_or("the total size is missing")?;
    let (start, end) = range.split_once('-').ok_or("the range must be start-end")?;
    let number = |text: &str, what: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid {what} ({text})"))
    };
    ContentRange::checked(
        number(start, "start")?,
        number(end, "end")?,
        number(total, "total size")?,
    )
}

/// A single-range `Range` header: `bytes=start-end`, `bytes=start-` or `bytes=-suffix`.
pub fn range(header: &str) -> Result<RangeRequest, String> {
    let spec = header
        .trim()
        .strip_prefix("bytes=")
        .ok_or("only 'bytes=' ranges are supported")?;
    if spec.contains(',') {
        return Err("only a single range is supported".into());
    }
    let (start, end) = spec.split_once('-').ok_or("the range must be start-end")?;
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid range bound ({text})"))
    };
    match (start.trim().is_empty(), end.trim().is_empty()) {
        (false, false) => RangeRequest::from_to(number(start)?, number(end)?),
        (false, true) => Ok(RangeRequest::From(number(start)?)),
        (true, false) => Ok(RangeRequest::Suffix(number(end)?)),
        (true, true) => Err("the range has no bounds".into()),
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_and_rejects() {
        assert_eq!(
            content_range("bytes 0-9/20"),
            Ok(ContentRange {
                start: 0,
                end: 9,
                total: 20
            })
        );
        for bad in [
            "0-9/20",
            "bytes 9-0/20",
            "bytes 0-9/*",
            "bytes x-9/20",
            "bytes 0-9",
            "bytes 20-25/20",
        ] {
            assert!(content_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn range_headers_parse_and_reject() {
        assert_eq!(range("bytes=0-9"), Ok(RangeRequest::FromTo(0, 9)));
        assert_eq!(range("bytes=90-"), Ok(RangeRequest::From(90)));
        assert_eq!(range("bytes=-10"), Ok(RangeRequest::Suffix(10)));
        for bad in [
            "",
            "bytes",
            "bytes=5",
            "bytes=a-b",
            "bytes=9-1",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-",
        ] {
            assert!(range(bad).is_err(), "{bad}");
        }
    }

    /// A part ending at `u64::MAX` is a valid header; the node-to-node upload used to take its
    /// length as `end - start + 1`, which overflows (a panic with overflow checks).
    #[test]
    fn a_part_ending_at_u64_max_has_a_saturated_length() {
        let part = content_range("bytes 0-18446744073709551615/10").unwrap();
        assert_eq!(part.byte_count(), u64::MAX);
        assert_eq!(content_range("bytes 5-9/10").unwrap().byte_count(), 5);
    }
}
