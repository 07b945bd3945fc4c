//! Property tests of the small parsers of the model: the valid-name rule and the wire
//! spellings of ACL kinds, roles and user types, object and delivery statuses and actions.
//! Each spelling parses back to itself, and nothing else parses (no case folding, no
//! trimming).

use super::acl::{AclKind, AclRole, AclUserType};
use super::names::{is_valid_destination_part, is_valid_name};
use super::status::{DeliveryStatus, ObjectStatus};
use super::sync::Action;
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

/// Every wire spelling, next to what its parser returns for a text.
fn spellings() -> Vec<&'static str> {
    let mut all = vec![
        "objects",
        "destinations",
        "user",
        "node",
        "aclWriter",
        "aclReader",
        "na",
    ];
    all.extend(ObjectStatus::ALL.iter().map(|s| s.as_str()));
    all.extend(
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivering,
            DeliveryStatus::Delivered,
            DeliveryStatus::Consumed,
            DeliveryStatus::Deleted,
            DeliveryStatus::Error,
        ]
        .iter()
        .map(|s| s.as_str()),
    );
    all.extend(Action::ALL.iter().map(|a| a.as_str()));
    all
}

/// The spellings each parser reads `text` as, printed back.
fn read_back(text: &str) -> Vec<&'static str> {
    [
        AclKind::parse(text).map(AclKind::as_str),
        AclRole::parse(text).map(AclRole::as_str),
        AclUserType::parse(text).map(AclUserType::as_str),
        ObjectStatus::parse(text).map(ObjectStatus::as_str),
        DeliveryStatus::parse(text).map(DeliveryStatus::as_str),
        Action::parse(text).map(Action::as_str),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A spelling, altered or not: case changed, padded, cut short, or any text.
fn near_spelling() -> impl Strategy<Value = String> {
    let spelling = prop::sample::select(spellings());
    prop_oneof![
        spelling.clone().prop_map(str::to_string),
        spelling.clone().prop_map(str::to_uppercase),
        spelling.clone().prop_map(|s| format!(" {s}")),
        (spelling, any::<prop::sample::Index>()).prop_map(|(s, cut)| s[..cut.index(s.len())].to_string()),
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn wire_spellings_parse_exactly(text in near_spelling()) {
        let parsed = read_back(&text);
        for spelling in &parsed {
            prop_assert_eq!(*spelling, text.as_str());
        }
        prop_assert_eq!(!parsed.is_empty(), spellings().contains(&text.as_str()));
    }

    /// A valid name can stand in a path segment, a query value, a topic level and a log
    /// line without escaping: no separator, space, quote, markup or percent sign.
    #[test]
    fn valid_names_carry_no_separator(text in prop_oneof!["\\PC{0,12}", "[a-z0-9 /\\\\<>=&'\"%?#:+,.~*-]{0,8}"]) {
        if is_valid_name(&text) {
            prop_assert!(!text.is_empty());
            prop_assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()), "{text:?}");
            prop_assert!(!text.contains(['/', '\\', '<', '>', '=', '&', '\'', '"', '%', '?', ':', '+', ',']), "{text:?}");
            prop_assert!(is_valid_destination_part(&text));
        }
    }

    #[test]
    fn destination_parts_refuse_only_markup(text in "\\PC{0,12}") {
        prop_assert_eq!(is_valid_destination_part(&text), !text.contains(['<', '>']));
    }
}
