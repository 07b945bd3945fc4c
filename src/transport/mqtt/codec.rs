//! MQTT payloads (spec: css-ess-protocol.md §4.4-4.5): JSON control messages and binary data
//! messages, and the topics both roles use (§4.2).

use crate::model::{Destination, MetaData, ObjectKey};
use crate::transport::compression;
use serde::{Deserialize, Serialize};

/// First bytes of a data message; a JSON message can never start with them.
const DATA_MAGIC: u32 = 0x0101_0101;
const FIELD_ORG: u32 = 1;
const FIELD_TYPE: u32 = 2;
const FIELD_ID: u32 = 3;
const FIELD_OFFSET: u32 = 4;
const FIELD_DATA: u32 = 5;
const FIELD_INSTANCE: u32 = 6;
/// An extension: the encoding of the data field (`zstd`), present only in answers to a
/// receiver that asked for it with [`Control::data_encoding`]. The original's parser skips
/// fields it does not know, and is never sent one.
const FIELD_ENCODING: u32 = 101;
/// An extension: the message carries bytes of the manifest of the data (field value: the
/// format's name, [`crate::delta::FORMAT`]), from the offset, not the data; only in answers
/// to a receiver that asked for it with [`Control::delta_manifest`].
const FIELD_MANIFEST: u32 = 102;

/// Protocol version of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    #[serde(rename = "Major")]
    pub major: i32,
    #[serde(rename = "Minor")]
    pub minor: i32,
}

/// The only version spoken.
pub const VERSION: Version = Version { major: 1, minor: 0 };

/// A control message. `meta` and `destination` are always written; the other fields only
/// when set, as the original does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub version: Version,
    pub command: String,
    #[serde(default)]
    pub meta: MetaData,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: i64,
    #[serde(default = "empty_destination")]
    pub destination: Destination,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
    #[serde(rename = "feedback-code", default, skip_serializing_if = "is_zero_i32")]
    pub feedback_code: i32,
    #[serde(rename = "feedback-from-origin", default, skip_serializing_if = "std::ops::Not::not")]
    pub feedback_from_origin: bool,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retry: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// An extension on `getdata`: the receiver takes chunks in this encoding (`zstd`). The
    /// original ignores the field and never writes it.
    #[serde(rename = "dataEncoding", default, skip_serializing_if = "String::is_empty")]
    pub data_encoding: String,
    /// An extension on `getdata`: the receiver asks for the manifest of the data in this
    /// format, from the offset, instead of the data (see [`crate::delta`]). The original
    /// ignores it and answers with the data.
    #[serde(rename = "deltaManifest", default, skip_serializing_if = "String::is_empty")]
    pub delta_manifest: String,
    /// An extension on `getdata`: at most this many bytes are wanted (the hole between parts
    /// the receiver already holds); 0 for a whole chunk, as the original always sends.
    #[serde(rename = "dataLength", default, skip_serializing_if = "is_zero")]
    pub data_length: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

fn empty_destination() -> Destination {
    Destination {
        org: String::new(),
        dest_type: String::new(),
        dest_id: String::new(),
        communication: String::new(),
        code_version: String::new(),
    }
}

impl Control {
    /// A message with only the command set.
    pub fn new(command: &str) -> Self {
        Self {
            version: VERSION,
            command: command.to_string(),
            meta: MetaData::default(),
            offset: 0,
            destination: empty_destination(),
            persistent: false,
            feedback_code: 0,
            feedback_from_origin: false,
            retry: 0,
            reason: String::new(),
            data_encoding: String::new(),
            delta_manifest: String::new(),
            data_length: 0,
        }
    }

    /// A message about an object.
    pub fn about(command: &str, meta: MetaData) -> Self {
        Self {
            meta,
            ..Self::new(command)
        }
    }

    /// A message naming a node (registration, ping, resend).
    pub fn from_node(command: &str, destination: Destination, persistent: bool) -> Self {
        Self {
            destination,
            persistent,
            ..Self::new(command)
        }
    }
}

/// Metadata naming an object in a message an edge node `node` sends about it (spec §4.4):
/// the object's key, instance and data ID, with the node as origin of its own objects
/// (`own`) and as destination of the copies it receives: the fields the CSS finds the
/// sender by.
pub fn node_meta(node: &Destination, key: &ObjectKey, instance_id: i64, data_id: i64, own: bool) -> MetaData {
    let mut meta = MetaData {
        destination_org_id: key.org.clone(),
        object_type: key.object_type.clone(),
        object_id: key.object_id.clone(),
        instance_id,
        data_id,
        ..MetaData::default()
    };
    if own {
        meta.origin_type = node.dest_type.clone();
        meta.origin_id = node.dest_id.clone();
    } else {
        meta.destination_type = node.dest_type.clone();
        meta.destination_id = node.dest_id.clone();
    }
    meta
}

/// One chunk of an object's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChunk {
    pub org: String,
    pub object_type: String,
    pub object_id: String,
    pub offset: i64,
    pub instance_id: i64,
    pub data: bytes::Bytes,
    /// The bytes are the manifest's, not the data's ([`FIELD_MANIFEST`]).
    pub manifest: bool,
}

/// An incoming payload.
#[derive(Debug)]
pub enum Message {
    Control(Box<Control>),
    Data(DataChunk),
}

/// Why a payload was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a valid control message: {0}")]
    Json(String),
    #[error("unsupported protocol version {0}.{1}")]
    Version(i32, i32),
    #[error("malformed data message: {0}")]
    Data(&'static str),
}

/// Decodes a payload of either kind; compressed data must come out at most `largest_chunk`
/// bytes long.
pub fn decode(payload: &bytes::Bytes, largest_chunk: usize) -> Result<Message, DecodeError> {
    if payload.len() >= 4 && payload[..4] == DATA_MAGIC.to_be_bytes() {
        return decode_data(payload, largest_chunk).map(Message::Data);
    }
    let control: Control = serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
    if control.version != VERSION {
        return Err(DecodeError::Version(control.version.major, control.version.minor));
    }
    Ok(Message::Control(Box::new(control)))
}

/// Encodes a control message.
pub fn encode_control(message: &Control) -> bytes::Bytes {
    // Serializing plain structs of strings and numbers cannot fail.
    bytes::Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// Encodes a data message, fields in the original's order (data last, no padding). With
/// `compress` (the receiver asked for it), the data is compressed when that pays, and the
/// message says so in a field of its own.
pub fn encode_data(chunk: &DataChunk, compress: bool) -> bytes::Bytes {
    let compressed = if compress {
        compression::compress_chunk(&chunk.data)
    } else {
        None
    };
    let text_fields = [
        (FIELD_ORG, chunk.org.as_bytes()),
        (FIELD_TYPE, chunk.object_type.as_bytes()),
        (FIELD_ID, chunk.object_id.as_bytes()),
    ];
    let mut out = Vec::with_capacity(16 + 6 * 8 + 16 + chunk.data.len() + 64);
    let fields = 6 + u32::from(compressed.is_some()) + u32::from(chunk.manifest);
    for word in [DATA_MAGIC, VERSION.major as u32, VERSION.minor as u32, fields] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    let mut field = |kind: u32, value: &[u8]| {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    };
    for (kind, value) in text_fields {
        field(kind, value);
    }
    field(FIELD_OFFSET, &chunk.offset.to_be_bytes());
    field(FIELD_INSTANCE, &chunk.instance_id.to_be_bytes());
    if chunk.manifest {
        field(FIELD_MANIFEST, crate::delta::FORMAT.as_bytes());
    }
    match &compressed {
        Some(compressed) => {
            field(FIELD_ENCODING, compression::ZSTD.as_bytes());
            field(FIELD_DATA, compressed);
        }
        None => field(FIELD_DATA, &chunk.data),
    }
    bytes::Bytes::from(out)
}

fn decode_data(payload: &bytes::Bytes, largest_chunk: usize) -> Result<DataChunk, DecodeError> {
    let mut at = 0usize;
    let word = |at: &mut usize| -> Result<u32, DecodeError> {
        let bytes = payload.get(*at..*at + 4).ok_or(DecodeError::Data("truncated"))?;
        *at += 4;
        Ok(u32::from_be_bytes(bytes.try_into().unwrap_or_default()))
    };
    let _magic = word(&mut at)?;
    let (major, minor) = (word(&mut at)?, word(&mut at)?);
    if (major, minor) != (VERSION.major as u32, VERSION.minor as u32) {
        return Err(DecodeError::Version(major as i32, minor as i32));
    }
    let count = word(&mut at)?;
    let (mut org, mut object_type, mut object_id, mut offset, mut instance_id, mut data) =
        (None, None, None, 0i64, 0i64, None);
    let mut encoding = None;
    let mut manifest = false;
    for _ in 0..count {
        let kind = word(&mut at)?;
        let len = word(&mut at)? as usize;
        let end = at.checked_add(len).ok_or(DecodeError::Data("field length overflows"))?;
        if end > payload.len() {
            return Err(DecodeError::Data("a field runs past the end"));
        }
        let value = payload.slice(at..end);
        at = end;
        let text = |value: &bytes::Bytes| {
            String::from_utf8(value.to_vec()).map_err(|_| DecodeError::Data("a name is not UTF-8"))
        };
        let number = |value: &bytes::Bytes| -> Result<i64, DecodeError> {
            let raw: [u8; 8] = value[..]
                .try_into()
                .map_err(|_| DecodeError::Data("offset and instanceID must be 8 bytes"))?;
            Ok(i64::from_be_bytes(raw))
        };
        match kind {
            FIELD_ORG => org = Some(text(&value)?),
            FIELD_TYPE => object_type = Some(text(&value)?),
            FIELD_ID => object_id = Some(text(&value)?),
            FIELD_OFFSET => offset = number(&value)?,
            FIELD_INSTANCE => instance_id = number(&value)?,
            FIELD_DATA => data = Some(value),
            FIELD_ENCODING => encoding = Some(value),
            FIELD_MANIFEST if value.as_ref() == crate::delta::FORMAT.as_bytes() => manifest = true,
            FIELD_MANIFEST => return Err(DecodeError::Data("unknown manifest format")),
            // Unknown fields are skipped, as the original's parser does.
            _ => {}
        }
    }
    Ok(DataChunk {
        org: org.unwrap_or_default(),
        object_type: object_type.ok_or(DecodeError::Data("no objectType"))?,
        object_id: object_id.ok_or(DecodeError::Data("no objectID"))?,
        offset,
        instance_id,
        data: decoded(data.ok_or(DecodeError::Data("no data"))?, encoding, largest_chunk)?,
        manifest,
    })
}

/// The data of a data field in `encoding` (none: as it is).
fn decoded(
    data: bytes::Bytes,
    encoding: Option<bytes::Bytes>,
    largest_chunk: usize,
) -> Result<bytes::Bytes, DecodeError> {
    match encoding {
        None => Ok(data),
        Some(name) if name.eq_ignore_ascii_case(compression::ZSTD.as_bytes()) => {
            compression::decompress_chunk(&data, largest_chunk)
                .map(bytes::Bytes::from)
                .map_err(|_| DecodeError::Data("compressed data is damaged or larger than a chunk may be"))
        }
        Some(_) => Err(DecodeError::Data("unknown data encoding")),
    }
}

/// Topic the CSS publishes to for one ESS.
pub fn to_ess_topic(dest_type: &str, dest_id: &str) -> String {
    format!("iot-2/type/{dest_type}/id/{dest_id}/cmd/sync-cmd/fmt/bin")
}

/// Topic an ESS publishes on; `leader` for multi-chunk traffic.
pub fn from_ess_topic(dest_type: &str, dest_id: &str, leader: bool) -> String {
    let suffix = if leader { "sync-cmd-leader" } else { "sync-cmd" };
    format!("iot-2/type/{dest_type}/id/{dest_id}/evt/{suffix}/fmt/bin")
}

/// What the CSS subscribes to: every ESS's messages, normal and leader traffic.
pub const CSS_SUBSCRIPTIONS: [&str; 2] = [
    "iot-2/type/+/id/+/evt/sync-cmd/fmt/bin",
    "iot-2/type/+/id/+/evt/sync-cmd-leader/fmt/bin",
];

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn chunk() -> DataChunk {
        DataChunk {
            org: "org".into(),
            object_type: "model".into(),
            object_id: "m1".into(),
            offset: 5_242_880,
            instance_id: 42,
            data: bytes::Bytes::from_static(b"chunk bytes"),
            manifest: false,
        }
    }

    #[test]
    fn manifest_pages_say_so_and_unknown_formats_are_refused() {
        let page = DataChunk {
            manifest: true,
            ..chunk()
        };
        let encoded = encode_data(&page, false);
        match decode(&encoded, LIMIT).unwrap() {
            Message::Data(decoded) => assert_eq!(decoded, page),
            other => panic!("{other:?}"),
        }
        let text = String::from_utf8_lossy(&encoded).into_owned();
        let other_format = text.replace(crate::delta::FORMAT, "ESCDC999");
        assert!(decode(&bytes::Bytes::from(other_format.into_bytes()), LIMIT).is_err());
        // A data message without the field is data, as the original sends it.
        assert!(!String::from_utf8_lossy(&encode_data(&chunk(), false)).contains(crate::delta::FORMAT));
    }

    #[test]
    fn data_messages_round_trip() {
        let encoded = encode_data(&chunk(), false);
        assert_eq!(&encoded[..4], &[1, 1, 1, 1]);
        match decode(&encoded, LIMIT).unwrap() {
            Message::Data(decoded) => assert_eq!(decoded, chunk()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn compressed_data_comes_back_as_it_was_and_is_bounded() {
        let line = b"{\"level\":\"info\",\"msg\":\"sensor reading\",\"temp\":21.5}\n";
        let logs: Vec<u8> = line.iter().copied().cycle().take(200_000).collect();
        let big = DataChunk {
            data: bytes::Bytes::from(logs),
            ..chunk()
        };
        let compressed = encode_data(&big, true);
        assert!(compressed.len() < big.data.len() / 4, "{} bytes", compressed.len());
        match decode(&compressed, LIMIT).unwrap() {
            Message::Data(decoded) => assert_eq!(decoded, big),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode(&compressed, big.data.len() - 1).unwrap_err(),
            DecodeError::Data("compressed data is damaged or larger than a chunk may be")
        );
        // What does not compress goes as it is, in the original's six fields.
        let short = encode_data(&chunk(), true);
        assert_eq!(short, encode_data(&chunk(), false));
        let mut unknown = compressed.to_vec();
        let at = unknown.windows(4).position(|w| w == b"zstd").unwrap();
        unknown[at..at + 4].copy_from_slice(b"lzma");
        assert_eq!(
            decode(&bytes::Bytes::from(unknown), LIMIT).unwrap_err(),
            DecodeError::Data("unknown data encoding")
        );
    }

    #[test]
    fn padding_after_the_data_is_ignored_and_bad_fields_refused() {
        let mut padded = encode_data(&chunk(), false).to_vec();
        padded.extend_from_slice(&[0; 100]);
        match decode(&bytes::Bytes::from(padded), LIMIT).unwrap() {
            Message::Data(decoded) => assert_eq!(decoded.data, chunk().data),
            other => panic!("{other:?}"),
        }
        let mut truncated = encode_data(&chunk(), false).to_vec();
        truncated.truncate(truncated.len() - 3);
        assert!(decode(&bytes::Bytes::from(truncated), LIMIT).is_err());
        let mut wrong_version = encode_data(&chunk(), false).to_vec();
        wrong_version[7] = 2;
        assert_eq!(
            decode(&bytes::Bytes::from(wrong_version), LIMIT).unwrap_err(),
            DecodeError::Version(2, 0)
        );
    }

    #[test]
    fn control_messages_omit_zero_fields_and_check_the_version() {
        let message = Control::about("updated", MetaData::default());
        let text = String::from_utf8(encode_control(&message).to_vec()).unwrap();
        assert!(text.contains(r#""version":{"Major":1,"Minor":0}"#), "{text}");
        assert!(text.contains(r#""destination":{"#), "{text}");
        assert!(
            !text.contains("offset")
                && !text.contains("feedback-code")
                && !text.contains("dataEncoding")
                && !text.contains("deltaManifest")
                && !text.contains("dataLength"),
            "{text}"
        );
        match decode(&encode_control(&message), LIMIT).unwrap() {
            Message::Control(decoded) => assert_eq!(*decoded, message),
            other => panic!("{other:?}"),
        }
        let other_version = br#"{"version":{"Major":2,"Minor":0},"command":"update"}"#;
        assert_eq!(
            decode(&bytes::Bytes::from_static(other_version), LIMIT).unwrap_err(),
            DecodeError::Version(2, 0)
        );
        let minimal = br#"{"version":{"Major":1,"Minor":0},"command":"regack"}"#;
        assert!(matches!(
            decode(&bytes::Bytes::from_static(minimal), LIMIT),
            Ok(Message::Control(_))
        ));
    }
}
