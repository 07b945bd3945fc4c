//! Property tests of the MQTT payload decoder, whose input comes from the broker: any
//! payload is a message or a dropped payload with a reason, never a panic or a field read
//! past the payload's end; encoded messages decode as themselves.

use super::*;
use crate::model::hostile_json::{metadata_object, value};
use crate::proptest_cases::{budget, QUICK};
use proptest::prelude::*;

fn word(value: u32) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// A field length: fitting, short, long, or at the top of the range.
fn field_len(actual: usize) -> impl Strategy<Value = u32> {
    let actual = u32::try_from(actual).unwrap_or(u32::MAX);
    prop_oneof![
        4 => Just(actual),
        1 => Just(actual.saturating_add(1)),
        1 => Just(actual.saturating_sub(1)),
        1 => prop::sample::select(vec![0, 7, 9, u32::MAX - 3, u32::MAX]),
    ]
}

fn data_field() -> impl Strategy<Value = Vec<u8>> {
    (1u32..=8, prop::collection::vec(any::<u8>(), 0..24))
        .prop_flat_map(|(kind, value)| (Just(kind), field_len(value.len()), Just(value)))
        .prop_map(|(kind, len, value)| [word(kind), word(len), value].concat())
}

/// A data message as a broken or hostile sender might write it: right magic, any version,
/// field count and fields, with trailing bytes or cut short.
fn data_payload() -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![4 => Just((1u32, 0u32)), 1 => (any::<u32>(), any::<u32>())];
    let count = prop_oneof![4 => 0u32..8, 1 => Just(u32::MAX)];
    (
        version,
        count,
        prop::collection::vec(data_field(), 0..8),
        prop::collection::vec(any::<u8>(), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|((major, minor), count, fields, trailer, cut, truncate)| {
            let mut payload = [word(DATA_MAGIC), word(major), word(minor), word(count)].concat();
            payload.extend(fields.concat());
            payload.extend(trailer);
            if truncate {
                payload.truncate(cut.index(payload.len() + 1));
            }
            payload
        })
}

/// A control message with hostile metadata and fields of any type.
fn control_payload() -> impl Strategy<Value = String> {
    let version = prop_oneof![
        3 => Just(r#"{"Major":1,"Minor":0}"#.to_string()),
        1 => value(&["Major", "Minor"]),
    ];
    let other = prop::collection::vec(
        (
            prop::sample::select(vec![
                "offset",
                "destination",
                "persistent",
                "feedback-code",
                "feedback-from-origin",
                "retry",
                "reason",
            ]),
            value(&[
                "destinationOrgID",
                "destinationType",
                "destinationID",
                "communication",
                "codeVersion",
            ]),
        ),
        0..4,
    );
    (version, value(&[]), metadata_object(), other).prop_map(|(version, command, meta, other)| {
        let rest: String = other.iter().map(|(k, v)| format!(r#","{k}":{v}"#)).collect();
        format!(r#"{{"version":{version},"command":{command},"meta":{meta}{rest}}}"#)
    })
}

fn chunk() -> impl Strategy<Value = DataChunk> {
    (
        "\\PC{0,8}",
        "\\PC{0,8}",
        "\\PC{0,8}",
        any::<i64>(),
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(org, object_type, object_id, offset, instance_id, data)| DataChunk {
            org,
            object_type,
            object_id,
            offset,
            instance_id,
            data: bytes::Bytes::from(data),
            manifest: false,
        })
}

fn control() -> impl Strategy<Value = Control> {
    let destination = ("\\PC{0,6}", "\\PC{0,6}", "\\PC{0,6}", "[a-z]{0,4}", "\\PC{0,4}").prop_map(
        |(org, dest_type, dest_id, communication, code_version)| Destination {
            org,
            dest_type,
            dest_id,
            communication,
            code_version,
        },
    );
    let meta = ("\\PC{0,8}", "\\PC{0,8}", any::<i64>(), any::<i32>(), any::<bool>()).prop_map(
        |(object_type, object_id, instance_id, consumers, deleted)| MetaData {
            object_type,
            object_id,
            instance_id,
            consumers,
            deleted,
            ..MetaData::default()
        },
    );
    (
        "[a-zA-Z]{1,12}",
        meta,
        any::<i64>(),
        destination,
        any::<bool>(),
        any::<i32>(),
        any::<bool>(),
        any::<i32>(),
        "\\PC{0,12}",
    )
        .prop_map(
            |(command, meta, offset, destination, persistent, feedback_code, feedback_from_origin, retry, reason)| {
                Control {
                    meta,
                    offset,
                    destination,
                    persistent,
                    feedback_code,
                    feedback_from_origin,
                    retry,
                    reason,
                    ..Control::new(&command)
                }
            },
        )
}

fn assert_reason(error: &DecodeError) -> Result<(), TestCaseError> {
    prop_assert!(!error.to_string().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(budget(QUICK))]

    #[test]
    fn any_payload_is_a_message_or_a_reason(payload in prop::collection::vec(any::<u8>(), 0..96)) {
        if let Err(error) = decode(&bytes::Bytes::from(payload), usize::MAX) {
            assert_reason(&error)?;
        }
    }

    #[test]
    fn hostile_data_messages_are_read_within_the_payload_or_dropped(payload in data_payload()) {
        let len = payload.len();
        match decode(&bytes::Bytes::from(payload), usize::MAX) {
            Ok(Message::Data(chunk)) => {
                prop_assert!(chunk.data.len() + chunk.object_type.len() + chunk.object_id.len() <= len);
            }
            Ok(Message::Control(control)) => prop_assert!(false, "a data message read as control: {control:?}"),
            Err(error) => assert_reason(&error)?,
        }
    }

    #[test]
    fn hostile_control_messages_are_read_or_dropped(payload in control_payload()) {
        match decode(&bytes::Bytes::from(payload), usize::MAX) {
            Ok(Message::Control(control)) => prop_assert_eq!(control.version, VERSION),
            Ok(Message::Data(_)) => prop_assert!(false, "JSON read as a data message"),
            Err(error) => assert_reason(&error)?,
        }
    }

    #[test]
    fn data_messages_decode_as_themselves(chunk in chunk()) {
        match decode(&encode_data(&chunk, false), usize::MAX) {
            Ok(Message::Data(decoded)) => prop_assert_eq!(decoded, chunk),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn control_messages_decode_as_themselves(control in control()) {
        match decode(&encode_control(&control), usize::MAX) {
            Ok(Message::Control(decoded)) => prop_assert_eq!(*decoded, control),
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
