//! Property tests of the configuration reading: the `sync.conf` syntax, the boolean and
//! integer value parsers, and the whole pipeline from file text to `Config`. Any file text
//! gives a configuration or a load or validation error (exit 99 or 98), never a panic.

use super::*;
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;
use source::{parse_bool, parse_int, ConfigInt};

/// Keys whose values are numbers, booleans or choices; none names a file the reading would
/// open.
const TYPED_KEYS: &[&str] = &[
    "NodeType",
    "ListeningType",
    "UnsecureListeningPort",
    "SecureListeningPort",
    "CommunicationProtocol",
    "StorageProvider",
    "MaxDataChunkSize",
    "MaxInflightChunks",
    "MaxObjectSize",
    "ResendInterval",
    "ESSPingInterval",
    "ESSSPIMaxRetry",
    "HTTPPollingInterval",
    "HTTPCSSPort",
    "HTTPCSSUseSSL",
    "MQTTUseSSL",
    "BrokerPort",
    "EnableDataChunk",
    "LogLevel",
    "TraceLevel",
    "LogFormat",
    "LogTraceDestination",
    "LogTraceFileSizeKB",
    "ObjectActivationInterval",
    "RemoveESSRegistrationTime",
    "RemoveESSRegistrationSeconds",
    "MetricsAccess",
    "UnixSocketFilePermissions",
    "OrgID",
    "DestinationType",
    "DestinationID",
    "CSSOnWIoTP",
];

/// A value as an operator might write it: numbers at the edges of every width, signed,
/// with units, booleans in several spellings, choices, several words, anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "-1",
            "65535",
            "65536",
            "2147483648",
            "9223372036854775808",
            "99999999999999999999999999999999999999999",
            "10s",
            "+8080",
            "-",
            "",
            "true",
            "FALSE",
            "t",
            "yes",
            "CSS",
            "ESS",
            "both",
            "secure",
            "http,mqtt",
            "stdout",
            "file,syslog",
            "INFO",
            "0777",
            "0o777",
            "1e3",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
        "\\PC{0,8}",
    ]
}

/// A file of `Key value` lines with comments, blank lines, CRLF, repeated keys.
fn file_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        6 => (prop::sample::select(TYPED_KEYS), "[ \t]{1,3}", value()).prop_map(|(k, sep, v)| format!("{k}{sep}{v}")),
        1 => "#[ -~]{0,10}",
        1 => "[ \t]{0,3}",
        1 => "\\PC{0,16}",
    ];
    (prop::collection::vec(line, 0..10), any::<bool>())
        .prop_map(|(lines, crlf)| lines.join(if crlf { "\r\n" } else { "\n" }))
}

/// A mapping of distinct keys to values of several words.
fn distinct_properties() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    prop::collection::btree_map(
        "[A-Za-z][A-Za-z0-9_.-]{0,10}",
        prop::collection::vec("[!-~]{1,6}", 0..4),
        0..8,
    )
    .prop_map(|map| map.into_iter().collect())
}

/// What `parse_int` must give, worked out in a wider integer from the text's leading number.
fn expected_int<T: ConfigInt>(text: &str) -> Result<i128, ()> {
    let text = text.trim_start();
    if text.is_empty() {
        return Ok(0);
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let magnitude: i128 = digits.parse().map_err(drop)?;
    let number = if negative { -magnitude } else { magnitude };
    if (T::MIN..=T::MAX).contains(&number) {
        Ok(number)
    } else {
        Err(())
    }
}

fn check_int<T: ConfigInt + Into<i128> + std::fmt::Debug>(text: &str) -> Result<(), TestCaseError> {
    match (parse_int::<T>(text), expected_int::<T>(text)) {
        (Ok(value), Ok(expected)) => prop_assert_eq!(value.into(), expected),
        (Err(reason), Err(())) => prop_assert!(!reason.is_empty()),
        (got, expected) => prop_assert!(false, "{text:?}: got {got:?}, expected {expected:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn any_text_is_read_into_single_word_keys_or_a_load_error(text in prop_oneof![file_text(), "\\PC{0,64}"]) {
        match file::parse(&text, "sync.conf") {
            Ok(props) => {
                prop_assert_eq!(props.order.len(), props.values.len(), "a key was kept twice");
                for (key, value) in &props.values {
                    prop_assert!(!key.is_empty() && !key.contains(char::is_whitespace), "{key:?}");
                    prop_assert!(!value.contains(char::is_whitespace), "{value:?}");
                }
            }
            Err(error) => {
                prop_assert!(matches!(&error, ConfigError::Load(m) if m.contains("sync.conf")), "{error:?}");
            }
        }
    }

    /// Printed properties read back, words joined, whatever the spacing and line endings.
    #[test]
    fn printed_properties_read_back(properties in distinct_properties(), spacing in "[ \t]{1,3}", crlf in any::<bool>()) {
        let mut text = String::from("# written by the test\n\n");
        for (key, words) in &properties {
            text.push_str(&format!("{key}{spacing}{}{}", words.join(&spacing), if crlf { "\r\n" } else { "\n" }));
        }
        let props = file::parse(&text, "f");
        prop_assert!(props.is_ok(), "{props:?}");
        let props = props.unwrap_or_default();
        let keys: Vec<&String> = properties.iter().map(|(k, _)| k).collect();
        prop_assert_eq!(props.order.iter().collect::<Vec<_>>(), keys);
        for (key, words) in &properties {
            prop_assert_eq!(props.values.get(key), Some(&words.concat()));
        }
    }

    #[test]
    fn booleans_are_the_original_spellings_in_any_case(text in prop_oneof![
        prop::sample::select(vec!["1", "t", "true", "", "0", "f", "false"]).prop_map(str::to_string),
        "[tTfFrRuUeEaAlLsS01 ]{0,6}",
    ]) {
        let expected = match text.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Some(true),
            "" | "0" | "f" | "false" => Some(false),
            _ => None,
        };
        prop_assert_eq!(parse_bool(&text), expected);
    }

    #[test]
    fn integers_are_the_leading_number_within_the_width(text in prop_oneof![value(), "[ +-]{0,2}[0-9]{0,45}[a-z ]{0,2}"]) {
        check_int::<i16>(&text)?;
        check_int::<u16>(&text)?;
        check_int::<i32>(&text)?;
        check_int::<u32>(&text)?;
        check_int::<i64>(&text)?;
        check_int::<u64>(&text)?;
    }

    #[test]
    fn any_file_gives_a_configuration_or_an_error_with_its_exit_status(text in file_text()) {
        if let Err(error) = build(&text, &[]) {
            prop_assert!([98, 99].contains(&error.exit_code()));
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
