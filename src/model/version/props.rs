//! Property tests of the version and version-range parsers: any text is a version (range)
//! that prints and parses back as itself, or nothing; numbers beyond `i64::MAX`, as in the
//! original, are refused rather than wrapped.

use super::*;
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

/// One version part as written: in range, at and past `i64::MAX`, leading zero, signed.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..1000).prop_map(|n| n.to_string()),
        1 => (0..=i64::MAX as u64).prop_map(|n| n.to_string()),
        1 => (i64::MAX as u64..=u64::MAX).prop_map(|n| n.to_string()),
        1 => "[0-9]{20,30}",
        1 => prop::sample::select(vec!["", "00", "01", "+1", "-1", " 1", "1 ", "x", "INFINITY", "1e3"]).prop_map(str::to_string),
    ]
}

fn version_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(part(), 1..5).prop_map(|parts| parts.join(".")),
        Just("INFINITY".to_string()),
        "\\PC{0,12}",
    ]
}

fn range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        version_text(),
        (
            "[\\[( ]{0,2}",
            version_text(),
            "[ ,]{0,2}",
            version_text(),
            "[\\])]{0,2}"
        )
            .prop_map(|(open, start, comma, end, close)| format!("{open}{start}{comma}{end}{close}")),
        (prop::bool::ANY, version_text(), version_text(), prop::bool::ANY).prop_map(
            |(inclusive_start, start, end, inclusive_end)| {
                let open = if inclusive_start { '[' } else { '(' };
                let close = if inclusive_end { ']' } else { ')' };
                format!("{open}{start},{end}{close}")
            }
        ),
        "\\PC{0,16}",
    ]
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn versions_print_and_parse_back(text in version_text()) {
        if let Some(version) = Version::parse(&text) {
            prop_assert_eq!(Version::parse(&version.to_string()), Some(version));
            if let Some(parts) = version.parts() {
                prop_assert!(parts.iter().all(|&p| i64::try_from(p).is_ok()), "{parts:?}");
                let numbers: Vec<u64> = text.trim().split('.').map(|p| p.parse().unwrap_or(u64::MAX)).collect();
                prop_assert_eq!(&parts[..numbers.len()], &numbers[..]);
            }
        }
    }

    #[test]
    fn numbered_versions_read_back(parts in prop::array::uniform3(0..=i64::MAX as u64)) {
        let [major, minor, fix] = parts;
        let version = Version::parse(&format!("{major}.{minor}.{fix}"));
        prop_assert_eq!(version.and_then(|v| v.parts()), Some(parts));
        prop_assert!(version.is_some_and(|v| v < Version::INFINITY));
    }

    #[test]
    fn ranges_print_and_parse_back(text in range_text()) {
        if let Some(range) = VersionRange::parse(&text) {
            prop_assert!(!range.start().is_infinity());
            prop_assert_eq!(VersionRange::parse(&range.to_string()), Some(range));
        }
    }

    /// A range contains a version exactly as its printed bounds say.
    #[test]
    fn ranges_contain_what_their_bounds_admit(text in range_text(), probe in version_text()) {
        let (Some(range), Some(version)) = (VersionRange::parse(&text), Version::parse(&probe)) else {
            return Ok(());
        };
        let printed = range.to_string();
        let above_start = if printed.starts_with('[') { version >= range.start() } else { version > range.start() };
        let below_end = if printed.ends_with(']') { version <= range.end() } else { version < range.end() };
        prop_assert_eq!(range.contains(&version), above_start && below_end);
    }
}
