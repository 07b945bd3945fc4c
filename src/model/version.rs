//! Service versions and version ranges of destination policies (spec: metadata.md §5).
//!
//! A version is up to three dot-separated non-negative integers without leading zeros
//! (missing parts are 0) or `INFINITY`. A range is a plain version `v`, meaning
//! `[v, INFINITY)`, or a bracketed pair such as `[1.0,2.0)`. Pure parsing and comparison:
//! this module knows nothing about objects or services.

use std::fmt;

/// A service version: `major.minor.fix` or the unbounded `INFINITY`.
///
/// Ordering is numeric part by part; `INFINITY` is greater than every numbered version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(Level);

/// Private so that a `Version` can only be built by [`Version::parse`] or the constants.
/// Variant order gives the derived ordering: every numbered version sorts before `Infinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Level {
    Numbered([u64; 3]),
    Infinity,
}

impl Version {
    /// The unbounded version, spelled `INFINITY`.
    pub const INFINITY: Version = Version(Level::Infinity);

    /// Parses `1`, `1.2`, `1.2.3` or `INFINITY` (surrounding whitespace trimmed).
    /// Rejects empty parts, leading zeros (`01`), signs, more than three parts and values
    /// beyond `i64::MAX` (the original's limit).
    pub fn parse(s: &str) -> Option<Version> {
        let trimmed = s.trim();
        if trimmed == "INFINITY" {
            return Some(Self::INFINITY);
        }
        let mut parts = [0u64; 3];
        for (index, text) in trimmed.split('.').enumerate() {
            *parts.get_mut(index)? = parse_part(text)?;
        }
        Some(Version(Level::Numbered(parts)))
    }

    /// True for `INFINITY`.
    pub fn is_infinity(&self) -> bool {
        self.0 == Level::Infinity
    }

    /// `[major, minor, fix]`, or `None` for `INFINITY`.
    pub fn parts(&self) -> Option<[u64; 3]> {
        match self.0 {
            Level::Numbered(parts) => Some(parts),
            Level::Infinity => None,
        }
    }
}

/// One numeric part: ASCII digits, no leading zero unless the part is exactly `0`.
fn parse_part(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    let value: i64 = text.parse().ok()?;
    u64::try_from(value).ok()
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Level::Numbered([major, minor, fix]) => write!(f, "{major}.{minor}.{fix}"),
            Level::Infinity => f.write_str("INFINITY"),
        }
    }
}

/// A range of versions with inclusive or exclusive bounds; the start is never `INFINITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionRange {
    start: Version,
    end: Version,
    start_inclusive: bool,
    end_inclusive: bool,
}

impl VersionRange {
    /// Parses a plain version `v` (= `[v, INFINITY)`) or `[`/`(` + `start,end` + `]`/`)`.
    /// Whitespace around the whole range and around each value is trimmed.
    pub fn parse(s: &str) -> Option<VersionRange> {
        let trimmed = s.trim();
        let start_inclusive = match trimmed.chars().next()? {
            '[' => true,
            '(' => false,
            _ => return Self::parse_plain(trimmed),
        };
        let inner = &trimmed[1..];
        let (inner, end_inclusive) = if let Some(rest) = inner.strip_suffix(']') {
            (rest, true)
        } else {
            (inner.strip_suffix(')')?, false)
        };
        let (start_text, end_text) = split_bounds(inner)?;
        let start = Version::parse(start_text).filter(|v| !v.is_infinity())?;
        let end = Version::parse(end_text)?;
        Some(VersionRange {
            start,
            end,
            start_inclusive,
            end_inclusive,
        })
    }

    /// A lone version `v` means every version from `v` on.
    fn parse_plain(trimmed: &str) -> Option<VersionRange> {
        if trimmed.ends_with([']', ')']) {
            return None;
        }
        let start = Version::parse(trimmed).filter(|v| !v.is_infinity())?;
        Some(VersionRange {
            start,
            end: Version::INFINITY,
            start_inclusive: true,
            end_inclusive: false,
        })
    }

    /// True when `v` lies within the range, honouring the inclusiveness of each bound.
    pub fn contains(&self, v: &Version) -> bool {
        let above_start = if self.start_inclusive {
            *v >= self.start
        } else {
            *v > self.start
        };
        let below_end = if self.end_inclusive {
            *v <= self.end
        } else {
            *v < self.end
        };
        above_start && below_end
    }

    /// The lower bound.
    pub fn start(&self) -> Version {
        self.start
    }

    /// The upper bound (`INFINITY` for an open-ended range).
    pub fn end(&self) -> Version {
        self.end
    }
}

/// Splits `start,end`; exactly one comma.
fn split_bounds(inner: &str) -> Option<(&str, &str)> {
    let (start, end) = inner.split_once(',')?;
    if end.contains(',') {
        return None;
    }
    Some((start, end))
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.start_inclusive { '[' } else { '(' };
        let close = if self.end_inclusive { ']' } else { ')' };
        write!(f, "{open}{},{}{close}", self.start, self.end)
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    #[test]
    fn parses_versions() {
        let cases: &[(&str, Option<[u64; 3]>)] = &[
            ("1", Some([1, 0, 0])),
            ("1.2", Some([1, 2, 0])),
            ("1.2.3", Some([1, 2, 3])),
            ("0", Some([0, 0, 0])),
            ("0.0.0", Some([0, 0, 0])),
            ("10.20.30", Some([10, 20, 30])),
            (" 1.2.3\t", Some([1, 2, 3])),
            ("9223372036854775807", Some([9_223_372_036_854_775_807, 0, 0])),
        ];
        for (text, parts) in cases {
            let parsed = Version::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"));
            assert_eq!(parsed.parts(), *parts, "{text:?}");
            assert!(!parsed.is_infinity());
        }
    }

    #[test]
    fn parses_infinity() {
        for text in ["INFINITY", "  INFINITY "] {
            let parsed = v(text);
            assert!(parsed.is_infinity());
            assert_eq!(parsed.parts(), None);
            assert_eq!(parsed.to_string(), "INFINITY");
        }
    }

    #[test]
    fn rejects_malformed_versions() {
        let bad = [
            "",
            " ",
            "01",
            "1.02",
            "1.2.03",
            "00",
            "1.2.3.4",
            "1..2",
            "1.",
            ".1",
            "a",
            "1.a",
            "-1",
            "+1",
            "1 .2",
            "1. 2",
            "1.2-beta",
            "infinity",
            "Infinity",
            "9223372036854775808",
            "1e3",
            "１",
        ];
        for text in bad {
            assert_eq!(Version::parse(text), None, "{text:?} should be rejected");
        }
    }

    #[test]
    fn orders_versions() {
        assert!(v("1") < v("1.0.1"));
        assert_eq!(v("1"), v("1.0.0"));
        assert!(v("1.10") > v("1.9"));
        assert!(v("2") > v("1.99.99"));
        assert!(v("999999") < Version::INFINITY);
        assert_eq!(v("1.2").to_string(), "1.2.0");
    }

    #[test]
    fn parses_ranges() {
        let cases: &[(&str, &str)] = &[
            ("[1.0,2.0)", "[1.0.0,2.0.0)"),
            ("(1,2]", "(1.0.0,2.0.0]"),
            ("[1,2]", "[1.0.0,2.0.0]"),
            ("(1,2)", "(1.0.0,2.0.0)"),
            ("1.5", "[1.5.0,INFINITY)"),
            ("  1.5  ", "[1.5.0,INFINITY)"),
            ("[1.0.0, INFINITY)", "[1.0.0,INFINITY)"),
            (" [ 1.0 , 2.0 ] ", "[1.0.0,2.0.0]"),
            ("[2,1]", "[2.0.0,1.0.0]"),
        ];
        for (text, shown) in cases {
            let range = VersionRange::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"));
            assert_eq!(range.to_string(), *shown, "{text:?}");
        }
    }

    #[test]
    fn rejects_malformed_ranges() {
        let bad = [
            "",
            "INFINITY",
            "[INFINITY,2)",
            "(INFINITY,INFINITY]",
            "[1.0,2.0",
            "1.0,2.0)",
            "1.0]",
            "[1.0]",
            "[1,2,3]",
            "[,2]",
            "[1,]",
            "[",
            "()",
            "[01,2]",
            "[1,2.0.0.0]",
            "{1,2}",
            "[1;2]",
        ];
        for text in bad {
            assert_eq!(VersionRange::parse(text), None, "{text:?} should be rejected");
        }
    }

    #[test]
    fn contains_honours_bounds() {
        let cases: &[(&str, &str, bool)] = &[
            ("[1.0,2.0)", "1.0", true),
            ("[1.0,2.0)", "1.9.9", true),
            ("[1.0,2.0)", "2.0", false),
            ("[1.0,2.0)", "0.9", false),
            ("(1,2]", "1", false),
            ("(1,2]", "1.0.1", true),
            ("(1,2]", "2", true),
            ("(1,2]", "2.0.1", false),
            ("1.5", "1.5", true),
            ("1.5", "1.4.9", false),
            ("1.5", "100", true),
            ("1.5", "INFINITY", false),
            ("[1,INFINITY]", "INFINITY", true),
            ("[2,1]", "1.5", false),
        ];
        for (range, version, expected) in cases {
            let parsed = VersionRange::parse(range).unwrap_or_else(|| panic!("{range:?} should parse"));
            assert_eq!(parsed.contains(&v(version)), *expected, "{version} in {range}");
        }
    }

    #[test]
    fn exposes_bounds() {
        let range = VersionRange::parse("1.5").unwrap_or_else(|| panic!("should parse"));
        assert_eq!(range.start(), v("1.5"));
        assert_eq!(range.end(), Version::INFINITY);
    }
}
