//! Validation of a PUT object request (spec: metadata.md §3), with the spec's "Flaw:" fixes:
//! the data-URI message names the ESS, `destinationOrgID` must match the path org, negative
//! `consumers` other than -1 are refused, and every sender copy (including `objdeleted` and
//! `consumedByDest`) may be updated.
//!
//! Pure decisions: the caller supplies the stored object, the clock and a file-existence
//! probe, so nothing here touches the store or the file system. Rule 1 (the path org) and
//! rule 26 (registered destinations) are checked by the caller.

use crate::model::names::{is_valid_destination_part, is_valid_name};
use crate::model::version::VersionRange;
use crate::model::{MetaData, ObjectRecord, Policy, Role};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Everything besides the metadata that a PUT object decision depends on.
pub struct PutContext<'a> {
    /// Role of this node.
    pub role: Role,
    /// Organization from the URL path.
    pub path_org: &'a str,
    /// Object type from the URL path.
    pub path_type: &'a str,
    /// Object ID from the URL path.
    pub path_id: &'a str,
    /// The request carried non-empty inline `data`.
    pub has_inline_data: bool,
    /// The stored object with the same key, if any.
    pub existing: Option<&'a ObjectRecord>,
    /// The current time, for expiration and activation checks.
    pub now: OffsetDateTime,
    /// Reports whether a local file exists (rule 22, `sourceDataUri`).
    pub file_exists: &'a dyn Fn(&Path) -> bool,
}

/// Why a PUT object request was refused; the text is the 400 response message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

type Check = fn(&MetaData, &PutContext) -> Result<(), ValidationError>;

/// The checks in spec order; each covers one rule (or one flaw fix next to its rule).
const CHECKS: &[Check] = &[
    check_object_id,            // rules 2-4
    check_object_type,          // rule 5
    check_hash_algorithm,       // rule 6
    check_base64_fields,        // rule 7
    check_expiration,           // rule 8
    check_version,              // rule 9
    check_description,          // rule 10
    check_meta_only,            // rule 11
    check_destination_id,       // rule 12
    check_destinations_list,    // rules 13-15
    check_destination_policy,   // rule 16
    check_destination_type,     // rule 17
    check_autodelete,           // rule 18
    check_activation_time,      // rule 19
    check_deleted,              // rule 20
    check_destination_data_uri, // rule 21
    check_source_data_uri,      // rule 22
    check_origin,               // rule 23
    check_destination_org,      // rule 24 and the path-org flaw fix
    check_consumers,            // flaw fix: negative consumers
    check_existing_is_sender,   // rule 25
    check_policy_existence,     // rule 27
];

/// Rules 2-25 and 27 of metadata.md §3 in that order (rule 1, the path org, and rule 26,
/// registered destinations, are checked elsewhere); first failure wins.
pub fn validate_put(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    CHECKS.iter().try_for_each(|check| check(meta, ctx))
}

/// Splits "{type}:{id}" (exactly one ':', no '<' or '>'), else
/// `ValidationError("Invalid destination {d}")`. Empty parts are refused too: no node can be
/// registered under an empty type or ID.
pub fn parse_destination_entry(entry: &str) -> Result<(&str, &str), ValidationError> {
    let invalid = || fail(format!("Invalid destination {entry}"));
    let (dest_type, dest_id) = entry.split_once(':').ok_or_else(invalid)?;
    let well_formed = !dest_type.is_empty()
        && !dest_id.is_empty()
        && !dest_id.contains(':')
        && is_valid_destination_part(dest_type)
        && is_valid_destination_part(dest_id);
    if well_formed {
        Ok((dest_type, dest_id))
    } else {
        Err(invalid())
    }
}

/// RFC 3339 timestamp as an instant (offsets honoured; compare instants, never strings).
/// Like Go's `time.RFC3339` layout, only an upper-case `T` separator and `Z` designator are
/// accepted (the `time` crate alone would also take a space or lower case).
pub fn parse_rfc3339(value: &str) -> Result<OffsetDateTime, ValidationError> {
    let invalid = |reason: &dyn std::fmt::Display| fail(format!("parsing time \"{value}\" as RFC 3339: {reason}"));
    if value.as_bytes().get(10) != Some(&b'T') || value.ends_with('z') {
        return Err(invalid(
            &"expected an upper-case 'T' separator and 'Z' or a numeric offset",
        ));
    }
    OffsetDateTime::parse(value, &Rfc3339).map_err(|err| invalid(&err))
}

/// The local path named by a `file:` URI with an empty host (scheme case-insensitive,
/// path percent-decoded, query and fragment ignored); `None` for anything else. Used for
/// `sourceDataUri` here and by whoever later reads the file.
pub fn file_uri_path(uri: &str) -> Option<PathBuf> {
    let parsed = FileUri::parse(uri)?;
    if parsed.path.is_empty() {
        return None;
    }
    Some(PathBuf::from(parsed.path))
}

fn fail(message: impl Into<String>) -> ValidationError {
    ValidationError(message.into())
}

/// Fails with `message` when `bad` holds.
fn reject_if(bad: bool, message: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if bad {
        Err(fail(message()))
    } else {
        Ok(())
    }
}

/// Suffix of the original's messages for fields checked with the name rule.
const INVALID_CHARS_EG: &str = "contains one/some invalid characters (eg: <, >, =, ', \", &, space, \\, /)";

// Rules 2-4.
fn check_object_id(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let id = meta.object_id.as_str();
    reject_if(id.is_empty(), || {
        "Object's meta data does not contain object's ID".into()
    })?;
    reject_if(id != ctx.path_id, || {
        format!(
            "Object ID ({}) in the URL doesn't match the object-id ({id}) in the payload",
            ctx.path_id
        )
    })?;
    reject_if(!is_valid_name(id), || {
        format!("Object ID ({id}) contains invalid characters")
    })
}

// Rule 5.
fn check_object_type(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let object_type = meta.object_type.as_str();
    reject_if(object_type.is_empty(), || {
        "Object's meta data does not contain object's type".into()
    })?;
    reject_if(object_type != ctx.path_type, || {
        format!(
            "Object type ({}) in the URL doesn't match the object-type ({object_type}) in the payload",
            ctx.path_type
        )
    })?;
    reject_if(!is_valid_name(object_type), || {
        format!("Object type ({object_type}) contains invalid characters")
    })
}

// Rule 6.
fn check_hash_algorithm(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let algorithm = meta.hash_algorithm.as_str();
    reject_if(!matches!(algorithm, "" | "SHA1" | "SHA256"), || {
        format!("Hash Algorithm ({algorithm}) is not supported. Please use SHA1 or SHA256 if specify")
    })
}

// Rule 7.
fn check_base64_fields(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    check_base64("PublicKey", &meta.public_key)?;
    check_base64("Signature", &meta.signature)
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required, non-zero trailing bits
/// tolerated. Go also skips CR and LF anywhere in the input; [`check_base64`] strips them.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

fn check_base64(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Ok(());
    }
    let without_newlines: String = value.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    GO_STD_BASE64
        .decode(without_newlines)
        .map(drop)
        .map_err(|err| fail(format!("{field} is not base64 encoded. Error: {err}")))
}

// Rule 8.
fn check_expiration(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    if meta.expiration.is_empty() {
        return Ok(());
    }
    reject_if(ctx.role == Role::Ess, || "Object expiration is disabled on ESS".into())?;
    let expiration = parse_rfc3339(&meta.expiration).map_err(|err| {
        fail(format!(
            "Failed to parse expiration in object's meta data. Error: {err}"
        ))
    })?;
    reject_if(ctx.now > expiration, || {
        "Invalid expiration time in object's meta data".into()
    })
}

// Rule 9.
fn check_version(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let version = meta.version.as_str();
    reject_if(!version.is_empty() && !is_valid_name(version), || {
        format!("Version ({version}) {INVALID_CHARS_EG}")
    })
}

// Rule 10.
fn check_description(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let description = meta.description.as_str();
    reject_if(contains_tag(description), || {
        format!("Description ({description}) contains one/some invalid characters (<, >, =, ', \", &, space, \\, /)")
    })
}

/// True when `text` contains `<word>` or `</word>`, a word being one or more letters or digits.
fn contains_tag(text: &str) -> bool {
    text.match_indices('<').any(|(at, _)| {
        let after = &text[at + 1..];
        let name = after.strip_prefix('/').unwrap_or(after);
        let word_len: usize = name
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .map(char::len_utf8)
            .sum();
        word_len > 0 && name[word_len..].starts_with('>')
    })
}

// Rule 11.
fn check_meta_only(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    reject_if(meta.meta_only && ctx.has_inline_data, || {
        "Can't update data if MetaOnly is true".into()
    })
}

// Rule 12.
fn check_destination_id(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    reject_if(
        !meta.destination_id.is_empty() && meta.destination_type.is_empty(),
        || "Destination ID provided without destination type in object's meta data".into(),
    )
}

// Rules 13-15.
fn check_destinations_list(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let Some(list) = &meta.destinations_list else {
        return Ok(());
    };
    reject_if(ctx.role == Role::Ess, || {
        "Destinations list is not supported for ESS".into()
    })?;
    reject_if(!meta.destination_type.is_empty(), || {
        "Both destinations list and destination type are specified".into()
    })?;
    reject_if(!list.iter().all(|entry| is_valid_destination_part(entry)), || {
        "Unsupported char <, > in destinationsList.".into()
    })
}

// Rule 16.
fn check_destination_policy(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let Some(policy) = &meta.destination_policy else {
        return Ok(());
    };
    reject_if(!meta.destination_type.is_empty(), || {
        "Both destination policy and destination type are specified".into()
    })?;
    reject_if(meta.destinations_list.is_some(), || {
        "Both destination policy and destination list are specified".into()
    })?;
    check_policy_properties(policy)?;
    check_policy_services(policy)
}

fn check_policy_properties(policy: &Policy) -> Result<(), ValidationError> {
    let properties = policy.properties.as_deref().unwrap_or_default();
    reject_if(properties.iter().any(|p| p.name.is_empty()), || {
        "A property in the DestinationPolicy must have a name".into()
    })
}

fn check_policy_services(policy: &Policy) -> Result<(), ValidationError> {
    for service in policy.services.as_deref().unwrap_or_default() {
        let incomplete = [&service.org_id, &service.arch, &service.service_name, &service.version]
            .iter()
            .any(|field| field.is_empty());
        reject_if(incomplete, || {
            "A service in a DestinationPolicy must have an organization ID, architecture, service name, and version specified"
                .into()
        })?;
        reject_if(VersionRange::parse(&service.version).is_none(), || {
            format!(
                "A service in the DestinationPolicy has an invalid version `{}`",
                service.version
            )
        })?;
    }
    Ok(())
}

// Rule 17.
fn check_destination_type(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let dest_type = meta.destination_type.as_str();
    reject_if(!dest_type.is_empty() && !is_valid_name(dest_type), || {
        format!("Destination type ({dest_type}) contains invalid characters")
    })
}

// Rule 18.
fn check_autodelete(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let addressed = meta.destinations_list.is_some() || !meta.destination_id.is_empty();
    reject_if(meta.autodelete && !addressed, || {
        "AutoDelete can be used only for objects with DestinationsList or DestID set".into()
    })
}

// Rule 19.
fn check_activation_time(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    if !meta.inactive || meta.activation_time.is_empty() {
        return Ok(());
    }
    let activation = parse_rfc3339(&meta.activation_time).map_err(|err| {
        fail(format!(
            "Failed to parse activation time in object's meta data. Error: {err}"
        ))
    })?;
    reject_if(ctx.now > activation, || {
        "Invalid activation time in object's meta data".into()
    })
}

// Rule 20.
fn check_deleted(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    reject_if(meta.deleted, || "Object marked as deleted".into())
}

// Rule 21.
fn check_destination_data_uri(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    if meta.destination_data_uri.is_empty() {
        return Ok(());
    }
    reject_if(ctx.role == Role::Ess, || "Data URI is disabled on ESS".into())?;
    reject_if(FileUri::parse(&meta.destination_data_uri).is_none(), || {
        "Invalid destination data URI".into()
    })
}

// Rule 22.
fn check_source_data_uri(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    if meta.source_data_uri.is_empty() {
        return Ok(());
    }
    reject_if(ctx.role == Role::Css, || "Data URI is disabled on CSS".into())?;
    reject_if(ctx.has_inline_data, || "Both source data URI and data are set".into())?;
    let readable = file_uri_path(&meta.source_data_uri).is_some_and(|path| (ctx.file_exists)(&path));
    reject_if(!readable, || "Invalid source data URI".into())
}

// Rule 23.
fn check_origin(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let (origin_type, origin_id) = (meta.origin_type.as_str(), meta.origin_id.as_str());
    if origin_type.is_empty() || origin_id.is_empty() {
        return Ok(());
    }
    reject_if(!is_valid_name(origin_type), || {
        format!("OriginType ({origin_type}) {INVALID_CHARS_EG}")
    })?;
    reject_if(!is_valid_name(origin_id), || {
        format!("OriginID ({origin_id}) {INVALID_CHARS_EG}")
    })
}

// Rule 24, plus the fix for cross-org writes: a non-empty owner org must be the path org.
fn check_destination_org(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let org = meta.destination_org_id.as_str();
    if org.is_empty() {
        return Ok(());
    }
    reject_if(!is_valid_name(org), || format!("DestOrgID ({org}) {INVALID_CHARS_EG}"))?;
    reject_if(org != ctx.path_org, || {
        format!(
            "DestOrgID ({org}) does not match the organization in the URL ({})",
            ctx.path_org
        )
    })
}

// Fix: a negative count other than -1 (unlimited) would make the object unconsumable.
fn check_consumers(meta: &MetaData, _ctx: &PutContext) -> Result<(), ValidationError> {
    let consumers = meta.consumers;
    reject_if(consumers < -1, || {
        format!("Consumers ({consumers}) must be -1 (unlimited), 0 (default) or a positive number")
    })
}

// Rule 25: any copy this node created may be replaced (`objdeleted` and `consumedByDest`
// included); a copy received from the other side may not.
fn check_existing_is_sender(_meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let received_copy = ctx.existing.is_some_and(|existing| !existing.sender);
    reject_if(received_copy, || "Can't update object of the receiving side".into())
}

// Rule 27.
fn check_policy_existence(meta: &MetaData, ctx: &PutContext) -> Result<(), ValidationError> {
    let changed = ctx
        .existing
        .is_some_and(|existing| existing.meta.destination_policy.is_some() != meta.destination_policy.is_some());
    reject_if(changed, || "Can't update the existence of Destination Policy".into())
}

/// The parts of a `file:` URI that the rules look at, parsed like Go's `url.Parse`.
struct FileUri {
    /// Percent-decoded path; empty for an opaque URI such as `file:relative`.
    path: String,
}

impl FileUri {
    /// `None` unless the URI parses, its scheme is `file` (any case) and its host is empty.
    fn parse(uri: &str) -> Option<FileUri> {
        if uri.chars().any(|c| c.is_ascii_control()) {
            return None;
        }
        let (scheme, rest) = uri.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("file") {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let rest = rest.split('?').next().unwrap_or_default();
        let raw_path = match rest.strip_prefix("//") {
            Some(after_slashes) => path_after_empty_host(after_slashes)?,
            None if rest.starts_with('/') => rest,
            None => "",
        };
        Some(FileUri {
            path: percent_decode(raw_path)?,
        })
    }
}

/// The path following an authority, which must name no host (user info is tolerated,
/// as in Go).
fn path_after_empty_host(after_slashes: &str) -> Option<&str> {
    let authority_end = after_slashes.find('/').unwrap_or(after_slashes.len());
    let (authority, path) = after_slashes.split_at(authority_end);
    let host = authority.rsplit('@').next().unwrap_or_default();
    host.is_empty().then_some(path)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            decoded.push(u8::from_str_radix(text, 16).ok()?);
            index += 3;
        } else {
            decoded.push(byte);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests;
