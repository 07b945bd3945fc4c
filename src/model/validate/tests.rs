//! Table-driven tests of the PUT object validation rules.

use super::*;
use crate::model::{ObjectStatus, PolicyProperty, ServiceID};

const PRESENT_FILE: &str = "/data/present.bin";
const SPACED_FILE: &str = "/data/with space.bin";
const BAD_CHARS: &str = "contains one/some invalid characters (eg: <, >, =, ', \", &, space, \\, /)";

/// A PUT request as the handler would see it, owning what `PutContext` borrows.
struct Request {
    role: Role,
    path_id: String,
    inline: bool,
    existing: Option<ObjectRecord>,
    meta: MetaData,
}

impl Request {
    fn new(role: Role) -> Self {
        let meta = MetaData {
            object_id: "obj1".into(),
            object_type: "model".into(),
            ..MetaData::default()
        };
        Request {
            role,
            path_id: "obj1".into(),
            inline: false,
            existing: None,
            meta,
        }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let file_exists = |path: &Path| path == Path::new(PRESENT_FILE) || path == Path::new(SPACED_FILE);
        let ctx = PutContext {
            role: self.role,
            path_org: "org1",
            path_type: "model",
            path_id: &self.path_id,
            has_inline_data: self.inline,
            existing: self.existing.as_ref(),
            now: now(),
            file_exists: &file_exists,
        };
        validate_put(&self.meta, &ctx)
    }
}

fn now() -> OffsetDateTime {
    parse_rfc3339("2024-06-01T12:00:00Z").unwrap_or_else(|err| panic!("{err}"))
}

fn record(sender: bool, status: ObjectStatus, with_policy: bool) -> ObjectRecord {
    let meta = MetaData {
        object_id: "obj1".into(),
        object_type: "model".into(),
        destination_org_id: "org1".into(),
        destination_policy: with_policy.then(Policy::default),
        ..MetaData::default()
    };
    ObjectRecord {
        meta,
        status,
        sender,
        remaining_consumers: 1,
        remaining_receivers: 1,
        policy_received: false,
        blob: None,
        revision: 1,
    }
}

fn service(version: &str) -> ServiceID {
    ServiceID {
        org_id: "o".into(),
        arch: "amd64".into(),
        service_name: "s".into(),
        version: version.into(),
    }
}

fn policy_with(properties: Vec<PolicyProperty>, services: Vec<ServiceID>) -> Option<Policy> {
    Some(Policy {
        properties: Some(properties),
        services: Some(services),
        ..Policy::default()
    })
}

fn property(name: &str) -> PolicyProperty {
    PolicyProperty {
        name: name.into(),
        ..PolicyProperty::default()
    }
}

use Role::{Css, Ess};

/// (case, role, edit, expected message prefix or `None` for accepted).
type Case = (&'static str, Role, fn(&mut Request), Option<&'static str>);

fn run_cases(cases: &[Case]) {
    for (name, role, edit, expected) in cases {
        let mut request = Request::new(*role);
        edit(&mut request);
        let outcome = request.validate();
        match (expected, &outcome) {
            (None, Ok(())) => {}
            (Some(prefix), Err(ValidationError(message))) if message.starts_with(prefix) => {}
            _ => panic!("{name} ({role:?}): expected {expected:?}, got {outcome:?}"),
        }
    }
}

#[test]
fn object_id_and_type_rules_2_to_5() {
    run_cases(&[
        ("minimal object", Css, |_| {}, None),
        ("minimal object", Ess, |_| {}, None),
        (
            "unicode id",
            Css,
            |r| (r.meta.object_id, r.path_id) = ("модель".into(), "модель".into()),
            None,
        ),
        (
            "empty id",
            Css,
            |r| r.meta.object_id.clear(),
            Some("Object's meta data does not contain object's ID"),
        ),
        (
            "id differs from path",
            Css,
            |r| r.meta.object_id = "other".into(),
            Some("Object ID (obj1) in the URL doesn't match the object-id (other) in the payload"),
        ),
        (
            "invalid id",
            Ess,
            |r| (r.meta.object_id, r.path_id) = ("a b".into(), "a b".into()),
            Some("Object ID (a b) contains invalid characters"),
        ),
        (
            "empty type",
            Css,
            |r| r.meta.object_type.clear(),
            Some("Object's meta data does not contain object's type"),
        ),
        (
            "type differs from path",
            Css,
            |r| r.meta.object_type = "other".into(),
            Some("Object type (model) in the URL doesn't match the object-type (other) in the payload"),
        ),
    ]);
}

#[test]
fn invalid_object_type_rule_5() {
    let file_exists = |_: &Path| false;
    let meta = MetaData {
        object_id: "obj1".into(),
        object_type: "a/b".into(),
        ..MetaData::default()
    };
    let ctx = PutContext {
        role: Role::Css,
        path_org: "org1",
        path_type: "a/b",
        path_id: "obj1",
        has_inline_data: false,
        existing: None,
        now: now(),
        file_exists: &file_exists,
    };
    assert_eq!(
        validate_put(&meta, &ctx),
        Err(fail("Object type (a/b) contains invalid characters"))
    );
}

#[test]
fn signature_fields_rules_6_and_7() {
    run_cases(&[
        ("SHA1", Css, |r| r.meta.hash_algorithm = "SHA1".into(), None),
        ("SHA256", Ess, |r| r.meta.hash_algorithm = "SHA256".into(), None),
        (
            "lower-case algorithm",
            Css,
            |r| r.meta.hash_algorithm = "sha256".into(),
            Some("Hash Algorithm (sha256) is not supported. Please use SHA1 or SHA256 if specify"),
        ),
        (
            "MD5",
            Ess,
            |r| r.meta.hash_algorithm = "MD5".into(),
            Some("Hash Algorithm (MD5) is not supported"),
        ),
        ("padded key", Css, |r| r.meta.public_key = "aGVsbG8=".into(), None),
        (
            "key with line breaks",
            Css,
            |r| r.meta.public_key = "aGVs\r\nbG8=".into(),
            None,
        ),
        (
            "non-zero trailing bits",
            Css,
            |r| r.meta.public_key = "aGVsbG9=".into(),
            None,
        ),
        (
            "unpadded key",
            Css,
            |r| r.meta.public_key = "aGVsbG8".into(),
            Some("PublicKey is not base64 encoded. Error: "),
        ),
        (
            "url-safe key",
            Css,
            |r| r.meta.public_key = "a-b_".into(),
            Some("PublicKey is not base64 encoded. Error: "),
        ),
        ("good signature", Ess, |r| r.meta.signature = "AAAA".into(), None),
        (
            "bad signature",
            Ess,
            |r| r.meta.signature = "!!!!".into(),
            Some("Signature is not base64 encoded. Error: "),
        ),
    ]);
}

#[test]
fn expiration_rule_8() {
    run_cases(&[
        (
            "future",
            Css,
            |r| r.meta.expiration = "2030-01-01T00:00:00Z".into(),
            None,
        ),
        (
            "exactly now",
            Css,
            |r| r.meta.expiration = "2024-06-01T12:00:00Z".into(),
            None,
        ),
        (
            "fractional seconds",
            Css,
            |r| r.meta.expiration = "2030-01-01T00:00:00.123456789Z".into(),
            None,
        ),
        // 11:30-01:00 is 12:30Z: in the future although it sorts before "12:00" as text.
        (
            "future with offset",
            Css,
            |r| r.meta.expiration = "2024-06-01T11:30:00-01:00".into(),
            None,
        ),
        // 13:00+02:00 is 11:00Z: past although it sorts after "12:00" as text.
        (
            "past with offset",
            Css,
            |r| r.meta.expiration = "2024-06-01T13:00:00+02:00".into(),
            Some("Invalid expiration time in object's meta data"),
        ),
        (
            "past",
            Css,
            |r| r.meta.expiration = "2020-01-01T00:00:00Z".into(),
            Some("Invalid expiration time in object's meta data"),
        ),
        (
            "not a time",
            Css,
            |r| r.meta.expiration = "tomorrow".into(),
            Some("Failed to parse expiration in object's meta data. Error: "),
        ),
        (
            "no offset",
            Css,
            |r| r.meta.expiration = "2030-01-01T00:00:00".into(),
            Some("Failed to parse expiration in object's meta data. Error: "),
        ),
        (
            "on the ESS",
            Ess,
            |r| r.meta.expiration = "2030-01-01T00:00:00Z".into(),
            Some("Object expiration is disabled on ESS"),
        ),
    ]);
}

#[test]
fn version_and_description_rules_9_and_10() {
    run_cases(&[
        ("version", Css, |r| r.meta.version = "1.0.0-beta_2".into(), None),
        (
            "version with space",
            Ess,
            |r| r.meta.version = "1.0 beta".into(),
            Some("Version (1.0 beta) contains"),
        ),
        (
            "version with slash",
            Css,
            |r| r.meta.version = "1/2".into(),
            Some("Version (1/2) contains one/some"),
        ),
        (
            "plain description",
            Css,
            |r| r.meta.description = "a model, v2 & more".into(),
            None,
        ),
        (
            "comparison text",
            Css,
            |r| r.meta.description = "a < b > c, x <= y, <>".into(),
            None,
        ),
        ("tag with space", Css, |r| r.meta.description = "<a b>".into(), None),
        (
            "opening tag",
            Css,
            |r| r.meta.description = "<b>bold".into(),
            Some("Description (<b>bold) contains one/some invalid characters (<, >, =, ', \", &, space, \\, /)"),
        ),
        (
            "closing tag",
            Ess,
            |r| r.meta.description = "x</script>".into(),
            Some("Description (x</script>)"),
        ),
        (
            "unicode tag",
            Css,
            |r| r.meta.description = "<ü1>".into(),
            Some("Description (<ü1>)"),
        ),
    ]);
}

#[test]
fn addressing_rules_11_to_15() {
    run_cases(&[
        ("metaOnly without data", Css, |r| r.meta.meta_only = true, None),
        ("data without metaOnly", Css, |r| r.inline = true, None),
        (
            "metaOnly with data",
            Ess,
            |r| (r.meta.meta_only, r.inline) = (true, true),
            Some("Can't update data if MetaOnly is true"),
        ),
        (
            "type and id",
            Css,
            |r| (r.meta.destination_type, r.meta.destination_id) = ("edge".into(), "n1".into()),
            None,
        ),
        (
            "id without type",
            Css,
            |r| r.meta.destination_id = "n1".into(),
            Some("Destination ID provided without destination type in object's meta data"),
        ),
        (
            "empty list on CSS",
            Css,
            |r| r.meta.destinations_list = Some(vec![]),
            None,
        ),
        (
            "empty list on ESS",
            Ess,
            |r| r.meta.destinations_list = Some(vec![]),
            Some("Destinations list is not supported for ESS"),
        ),
        (
            "list and type",
            Css,
            |r| (r.meta.destinations_list, r.meta.destination_type) = (Some(vec!["edge:n1".into()]), "edge".into()),
            Some("Both destinations list and destination type are specified"),
        ),
        (
            "list entries",
            Css,
            |r| r.meta.destinations_list = Some(vec!["edge:n1".into(), "gw:n2".into()]),
            None,
        ),
        (
            "angle bracket in list",
            Css,
            |r| r.meta.destinations_list = Some(vec!["edge:n1".into(), "edge:<n2>".into()]),
            Some("Unsupported char <, > in destinationsList."),
        ),
    ]);
}

#[test]
fn destination_policy_rule_16() {
    run_cases(&[
        ("full policy on CSS", Css, |r| r.meta.destination_policy = policy_with(vec![property("p")], vec![service("[1.0,2.0)")]), None),
        ("full policy on ESS", Ess, |r| r.meta.destination_policy = policy_with(vec![property("p")], vec![service("1.5")]), None),
        ("empty policy", Css, |r| r.meta.destination_policy = Some(Policy::default()), None),
        (
            "policy and type",
            Css,
            |r| (r.meta.destination_policy, r.meta.destination_type) = (Some(Policy::default()), "edge".into()),
            Some("Both destination policy and destination type are specified"),
        ),
        (
            "policy and list",
            Css,
            |r| (r.meta.destination_policy, r.meta.destinations_list) = (Some(Policy::default()), Some(vec![])),
            Some("Both destination policy and destination list are specified"),
        ),
        (
            "unnamed property",
            Ess,
            |r| r.meta.destination_policy = policy_with(vec![property("p"), property("")], vec![]),
            Some("A property in the DestinationPolicy must have a name"),
        ),
        (
            "service without arch",
            Css,
            |r| r.meta.destination_policy = policy_with(vec![], vec![ServiceID { arch: String::new(), ..service("1.0") }]),
            Some("A service in a DestinationPolicy must have an organization ID, architecture, service name, and version specified"),
        ),
        (
            "service without version",
            Css,
            |r| r.meta.destination_policy = policy_with(vec![], vec![service("")]),
            Some("A service in a DestinationPolicy must have"),
        ),
        (
            "service with bad range",
            Ess,
            |r| r.meta.destination_policy = policy_with(vec![], vec![service("[1.0")]),
            Some("A service in the DestinationPolicy has an invalid version `[1.0`"),
        ),
        (
            "service with INFINITY start",
            Css,
            |r| r.meta.destination_policy = policy_with(vec![], vec![service("[INFINITY,2)")]),
            Some("A service in the DestinationPolicy has an invalid version `[INFINITY,2)`"),
        ),
    ]);
}

#[test]
fn type_autodelete_activation_deleted_rules_17_to_20() {
    run_cases(&[
        ("valid type", Css, |r| r.meta.destination_type = "edge-1".into(), None),
        (
            "type with space",
            Css,
            |r| r.meta.destination_type = "edge node".into(),
            Some("Destination type (edge node) contains invalid characters"),
        ),
        (
            "autodelete alone",
            Css,
            |r| r.meta.autodelete = true,
            Some("AutoDelete can be used only for objects with DestinationsList or DestID set"),
        ),
        (
            "autodelete with type only",
            Css,
            |r| (r.meta.autodelete, r.meta.destination_type) = (true, "edge".into()),
            Some("AutoDelete can be used only"),
        ),
        (
            "autodelete with list",
            Css,
            |r| (r.meta.autodelete, r.meta.destinations_list) = (true, Some(vec![])),
            None,
        ),
        (
            "autodelete with id",
            Css,
            |r| {
                r.meta.autodelete = true;
                (r.meta.destination_type, r.meta.destination_id) = ("edge".into(), "n1".into());
            },
            None,
        ),
        (
            "inactive, future activation",
            Ess,
            |r| (r.meta.inactive, r.meta.activation_time) = (true, "2030-01-01T00:00:00+05:00".into()),
            None,
        ),
        ("inactive, no activation time", Css, |r| r.meta.inactive = true, None),
        (
            "active ignores activation time",
            Css,
            |r| r.meta.activation_time = "whenever".into(),
            None,
        ),
        (
            "inactive, past activation",
            Css,
            |r| (r.meta.inactive, r.meta.activation_time) = (true, "2024-06-01T13:59:59+02:00".into()),
            Some("Invalid activation time in object's meta data"),
        ),
        (
            "inactive, bad activation",
            Ess,
            |r| (r.meta.inactive, r.meta.activation_time) = (true, "whenever".into()),
            Some("Failed to parse activation time in object's meta data. Error: "),
        ),
        (
            "deleted",
            Css,
            |r| r.meta.deleted = true,
            Some("Object marked as deleted"),
        ),
        (
            "deleted on ESS",
            Ess,
            |r| r.meta.deleted = true,
            Some("Object marked as deleted"),
        ),
    ]);
}

#[test]
fn destination_data_uri_rule_21() {
    run_cases(&[
        (
            "file URI",
            Css,
            |r| r.meta.destination_data_uri = "file:///var/data/x".into(),
            None,
        ),
        (
            "upper-case scheme",
            Css,
            |r| r.meta.destination_data_uri = "FILE:///var/data/x".into(),
            None,
        ),
        (
            "opaque file URI",
            Css,
            |r| r.meta.destination_data_uri = "file:relative".into(),
            None,
        ),
        (
            "on the ESS",
            Ess,
            |r| r.meta.destination_data_uri = "file:///var/data/x".into(),
            Some("Data URI is disabled on ESS"),
        ),
        (
            "http",
            Css,
            |r| r.meta.destination_data_uri = "http://host/x".into(),
            Some("Invalid destination data URI"),
        ),
        (
            "with host",
            Css,
            |r| r.meta.destination_data_uri = "file://host/x".into(),
            Some("Invalid destination data URI"),
        ),
        (
            "bad escape",
            Css,
            |r| r.meta.destination_data_uri = "file:///x%zz".into(),
            Some("Invalid destination data URI"),
        ),
        (
            "no scheme",
            Css,
            |r| r.meta.destination_data_uri = "/var/data/x".into(),
            Some("Invalid destination data URI"),
        ),
    ]);
}

#[test]
fn source_data_uri_rule_22() {
    run_cases(&[
        (
            "existing file",
            Ess,
            |r| r.meta.source_data_uri = "file:///data/present.bin".into(),
            None,
        ),
        (
            "upper-case scheme",
            Ess,
            |r| r.meta.source_data_uri = "File:///data/present.bin".into(),
            None,
        ),
        (
            "single slash",
            Ess,
            |r| r.meta.source_data_uri = "file:/data/present.bin".into(),
            None,
        ),
        (
            "escaped space",
            Ess,
            |r| r.meta.source_data_uri = "file:///data/with%20space.bin".into(),
            None,
        ),
        (
            "query ignored",
            Ess,
            |r| r.meta.source_data_uri = "file:///data/present.bin?x=1#frag".into(),
            None,
        ),
        (
            "on the CSS",
            Css,
            |r| r.meta.source_data_uri = "file:///data/present.bin".into(),
            Some("Data URI is disabled on CSS"),
        ),
        (
            "with inline data",
            Ess,
            |r| (r.meta.source_data_uri, r.inline) = ("file:///data/present.bin".into(), true),
            Some("Both source data URI and data are set"),
        ),
        (
            "missing file",
            Ess,
            |r| r.meta.source_data_uri = "file:///data/missing.bin".into(),
            Some("Invalid source data URI"),
        ),
        (
            "with host",
            Ess,
            |r| r.meta.source_data_uri = "file://host/data/present.bin".into(),
            Some("Invalid source data URI"),
        ),
        (
            "http",
            Ess,
            |r| r.meta.source_data_uri = "http:///data/present.bin".into(),
            Some("Invalid source data URI"),
        ),
        (
            "opaque",
            Ess,
            |r| r.meta.source_data_uri = "file:data/present.bin".into(),
            Some("Invalid source data URI"),
        ),
        (
            "control char",
            Ess,
            |r| r.meta.source_data_uri = "file:///data/present.bin\n".into(),
            Some("Invalid source data URI"),
        ),
    ]);
}

#[test]
fn origin_and_org_rules_23_and_24() {
    run_cases(&[
        (
            "valid origin",
            Css,
            |r| (r.meta.origin_type, r.meta.origin_id) = ("edge".into(), "n1".into()),
            None,
        ),
        (
            "half origin is not checked",
            Css,
            |r| r.meta.origin_type = "a b".into(),
            None,
        ),
        (
            "bad origin type",
            Css,
            |r| (r.meta.origin_type, r.meta.origin_id) = ("a b".into(), "n1".into()),
            Some("OriginType (a b) contains one/some invalid characters (eg: <, >, =, ', \", &, space, \\, /)"),
        ),
        (
            "bad origin id",
            Ess,
            |r| (r.meta.origin_type, r.meta.origin_id) = ("edge".into(), "n/1".into()),
            Some("OriginID (n/1) contains one/some"),
        ),
        (
            "owner org equals path",
            Css,
            |r| r.meta.destination_org_id = "org1".into(),
            None,
        ),
        (
            "owner org equals path",
            Ess,
            |r| r.meta.destination_org_id = "org1".into(),
            None,
        ),
        (
            "invalid owner org",
            Css,
            |r| r.meta.destination_org_id = "org 1".into(),
            Some("DestOrgID (org 1) contains one/some invalid characters"),
        ),
        (
            "other owner org",
            Css,
            |r| r.meta.destination_org_id = "org2".into(),
            Some("DestOrgID (org2) does not match the organization in the URL (org1)"),
        ),
        (
            "other owner org",
            Ess,
            |r| r.meta.destination_org_id = "org2".into(),
            Some("DestOrgID (org2) does not match"),
        ),
    ]);
}

#[test]
fn consumers_flaw_fix() {
    run_cases(&[
        ("unlimited", Css, |r| r.meta.consumers = -1, None),
        ("default", Css, |r| r.meta.consumers = 0, None),
        ("several", Ess, |r| r.meta.consumers = 5, None),
        (
            "minus two",
            Css,
            |r| r.meta.consumers = -2,
            Some("Consumers (-2) must be -1 (unlimited)"),
        ),
        (
            "minimum",
            Ess,
            |r| r.meta.consumers = i32::MIN,
            Some("Consumers (-2147483648)"),
        ),
    ]);
}

#[test]
fn existing_copy_rules_25_and_27() {
    run_cases(&[
        (
            "sender ready",
            Css,
            |r| r.existing = Some(record(true, ObjectStatus::Ready, false)),
            None,
        ),
        (
            "sender notReady",
            Ess,
            |r| r.existing = Some(record(true, ObjectStatus::NotReady, false)),
            None,
        ),
        (
            "sender verificationFailed",
            Css,
            |r| r.existing = Some(record(true, ObjectStatus::VerificationFailed, false)),
            None,
        ),
        (
            "sender objdeleted",
            Css,
            |r| r.existing = Some(record(true, ObjectStatus::ObjDeleted, false)),
            None,
        ),
        (
            "sender consumedByDest",
            Ess,
            |r| r.existing = Some(record(true, ObjectStatus::ConsumedByDest, false)),
            None,
        ),
        (
            "received copy",
            Css,
            |r| r.existing = Some(record(false, ObjectStatus::CompletelyReceived, false)),
            Some("Can't update object of the receiving side"),
        ),
        (
            "received copy deleted by origin",
            Ess,
            |r| r.existing = Some(record(false, ObjectStatus::ObjDeleted, false)),
            Some("Can't update object of the receiving side"),
        ),
        (
            "policy removed",
            Css,
            |r| r.existing = Some(record(true, ObjectStatus::Ready, true)),
            Some("Can't update the existence of Destination Policy"),
        ),
        (
            "policy added",
            Css,
            |r| {
                r.existing = Some(record(true, ObjectStatus::Ready, false));
                r.meta.destination_policy = Some(Policy::default());
            },
            Some("Can't update the existence of Destination Policy"),
        ),
        (
            "policy kept",
            Ess,
            |r| {
                r.existing = Some(record(true, ObjectStatus::Ready, true));
                r.meta.destination_policy = policy_with(vec![property("q")], vec![]);
            },
            None,
        ),
        (
            "new object with policy",
            Css,
            |r| r.meta.destination_policy = Some(Policy::default()),
            None,
        ),
    ]);
}

#[test]
fn first_failure_wins_on_the_ess() {
    run_cases(&[
        (
            "id before hash",
            Ess,
            |r| (r.meta.object_id, r.meta.hash_algorithm) = (String::new(), "MD5".into()),
            Some("Object's meta data does not contain object's ID"),
        ),
        (
            "expiration before version",
            Ess,
            |r| (r.meta.expiration, r.meta.version) = ("x".into(), "a b".into()),
            Some("Object expiration is disabled on ESS"),
        ),
        (
            "list refused before list/type conflict",
            Ess,
            |r| (r.meta.destinations_list, r.meta.destination_type) = (Some(vec!["<".into()]), "t".into()),
            Some("Destinations list is not supported for ESS"),
        ),
        (
            "deleted before received copy",
            Ess,
            |r| (r.meta.deleted, r.existing) = (true, Some(record(false, ObjectStatus::CompletelyReceived, false))),
            Some("Object marked as deleted"),
        ),
        (
            "destination URI before source URI",
            Ess,
            |r| (r.meta.destination_data_uri, r.meta.source_data_uri) = ("file:///x".into(), "bad".into()),
            Some("Data URI is disabled on ESS"),
        ),
        (
            "inline data before missing file",
            Ess,
            |r| (r.meta.source_data_uri, r.inline) = ("file:///data/missing.bin".into(), true),
            Some("Both source data URI and data are set"),
        ),
    ]);
}

type Step = (&'static str, fn(&mut Request));

/// Starts from a CSS request that breaks every rule and repairs one at a time: each
/// attempt must report the earliest rule still broken.
#[test]
fn first_failure_wins_through_every_rule_on_the_css() {
    let mut request = Request::new(Css);
    request.path_id = "a b".into();
    request.inline = true;
    request.existing = Some(record(false, ObjectStatus::CompletelyReceived, false));
    request.meta = MetaData {
        object_id: String::new(),
        object_type: String::new(),
        hash_algorithm: "MD5".into(),
        public_key: "@@".into(),
        signature: "@@".into(),
        expiration: "soon".into(),
        version: "a b".into(),
        description: "<b>x</b>".into(),
        meta_only: true,
        destination_id: "n1".into(),
        destinations_list: Some(vec!["edge:<x>".into()]),
        destination_policy: policy_with(
            vec![property("")],
            vec![ServiceID {
                arch: String::new(),
                ..service("[1.0")
            }],
        ),
        autodelete: true,
        inactive: true,
        activation_time: "later".into(),
        deleted: true,
        destination_data_uri: "http://x/y".into(),
        source_data_uri: "file:///data/present.bin".into(),
        origin_type: "a b".into(),
        origin_id: "c d".into(),
        destination_org_id: "org 1".into(),
        consumers: -5,
        ..MetaData::default()
    };
    let steps: &[Step] = &[
        ("Object's meta data does not contain object's ID", |r| {
            r.meta.object_id = "x".into()
        }),
        ("Object ID (a b) in the URL doesn't match the object-id (x)", |r| {
            r.meta.object_id = "a b".into()
        }),
        ("Object ID (a b) contains invalid characters", |r| {
            (r.path_id, r.meta.object_id) = ("obj1".into(), "obj1".into())
        }),
        ("Object's meta data does not contain object's type", |r| {
            r.meta.object_type = "other".into()
        }),
        ("Object type (model) in the URL doesn't match", |r| {
            r.meta.object_type = "model".into()
        }),
        ("Hash Algorithm (MD5) is not supported", |r| {
            r.meta.hash_algorithm = "SHA256".into()
        }),
        ("PublicKey is not base64 encoded", |r| r.meta.public_key.clear()),
        ("Signature is not base64 encoded", |r| r.meta.signature.clear()),
        ("Failed to parse expiration", |r| {
            r.meta.expiration = "2020-01-01T00:00:00Z".into()
        }),
        ("Invalid expiration time", |r| r.meta.expiration.clear()),
        ("Version (a b)", |r| r.meta.version.clear()),
        ("Description (<b>x</b>)", |r| r.meta.description.clear()),
        ("Can't update data if MetaOnly is true", |r| r.meta.meta_only = false),
        ("Destination ID provided without destination type", |r| {
            r.meta.destination_type = "bad type".into()
        }),
        ("Both destinations list and destination type", |r| {
            r.meta.destination_type.clear();
            r.meta.destination_id.clear();
        }),
        ("Unsupported char <, > in destinationsList.", |r| {
            r.meta.destinations_list = Some(vec!["edge:n1".into()])
        }),
        ("Both destination policy and destination list", |r| {
            r.meta.destinations_list = None;
            r.meta.destination_type = "bad type".into();
        }),
        ("Both destination policy and destination type", |r| {
            r.meta.destination_type.clear()
        }),
        ("A property in the DestinationPolicy must have a name", |r| {
            r.meta.destination_policy = policy_with(
                vec![property("p")],
                vec![ServiceID {
                    arch: String::new(),
                    ..service("[1.0")
                }],
            );
        }),
        ("A service in a DestinationPolicy must have", |r| {
            r.meta.destination_policy = policy_with(vec![property("p")], vec![service("[1.0")]);
        }),
        (
            "A service in the DestinationPolicy has an invalid version `[1.0`",
            |r| {
                r.meta.destination_policy = None;
                r.meta.destination_type = "bad type".into();
            },
        ),
        ("Destination type (bad type) contains invalid characters", |r| {
            r.meta.destination_type = "edge".into()
        }),
        ("AutoDelete can be used only", |r| r.meta.autodelete = false),
        ("Failed to parse activation time", |r| {
            r.meta.activation_time = "2020-01-01T00:00:00Z".into()
        }),
        ("Invalid activation time", |r| r.meta.activation_time.clear()),
        ("Object marked as deleted", |r| r.meta.deleted = false),
        ("Invalid destination data URI", |r| r.meta.destination_data_uri.clear()),
        ("Data URI is disabled on CSS", |r| r.meta.source_data_uri.clear()),
        ("OriginType (a b)", |r| r.meta.origin_type = "t".into()),
        ("OriginID (c d)", |r| r.meta.origin_id = "i".into()),
        ("DestOrgID (org 1) contains", |r| {
            r.meta.destination_org_id = "org2".into()
        }),
        (
            "DestOrgID (org2) does not match the organization in the URL (org1)",
            |r| {
                r.meta.destination_org_id = "org1".into();
            },
        ),
        ("Consumers (-5)", |r| r.meta.consumers = -1),
        ("Can't update object of the receiving side", |r| {
            r.existing = Some(record(true, ObjectStatus::Ready, true))
        }),
        ("Can't update the existence of Destination Policy", |r| {
            r.existing = None
        }),
    ];
    for (expected, repair) in steps {
        match request.validate() {
            Err(ValidationError(message)) if message.starts_with(expected) => {}
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        repair(&mut request);
    }
    assert_eq!(request.validate(), Ok(()));
}

#[test]
fn messages_are_exact() {
    let mut request = Request::new(Ess);
    request.meta.version = "a b".into();
    let expected = format!("Version (a b) {BAD_CHARS}");
    assert_eq!(request.validate(), Err(fail(expected)));
    assert!(!BAD_CHARS.ends_with('\n'));
    request.meta.version.clear();
    request.meta.expiration = "nope".into();
    let message = request.validate().err().map(|e| e.0).unwrap_or_default();
    assert_eq!(message, "Object expiration is disabled on ESS");
}

#[test]
fn parses_destination_entries() {
    assert_eq!(parse_destination_entry("edge:n1"), Ok(("edge", "n1")));
    assert_eq!(parse_destination_entry("edge type:n 1"), Ok(("edge type", "n 1")));
    for bad in ["edge", "edge:n1:x", "edge:<n1>", "<e>:n1", ":n1", "edge:", ":", ""] {
        assert_eq!(
            parse_destination_entry(bad),
            Err(fail(format!("Invalid destination {bad}"))),
            "{bad:?}"
        );
    }
}

#[test]
fn parses_rfc3339_as_instants() {
    let with_offset = parse_rfc3339("2024-06-01T14:00:00+02:00").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(with_offset, now());
    assert!(parse_rfc3339("2024-06-01T13:00:00+02:00").is_ok_and(|t| t < now()));
    for bad in [
        "",
        "2024-06-01",
        "2024-06-01 12:00:00Z",
        "2024-06-01t12:00:00Z",
        "2024-06-01T12:00:00z",
        "2024-13-01T00:00:00Z",
        "12:00",
    ] {
        assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn extracts_file_uri_paths() {
    let cases: &[(&str, Option<&str>)] = &[
        ("file:///data/x", Some("/data/x")),
        ("FILE:///data/x", Some("/data/x")),
        ("file:/data/x", Some("/data/x")),
        ("file://user@/data/x", Some("/data/x")),
        ("file:///data/a%20b%2Fc", Some("/data/a b/c")),
        ("file:///data/x?q#f", Some("/data/x")),
        ("file:data/x", None),
        ("file://", None),
        ("file://host/data/x", None),
        ("file://:80/data/x", None),
        ("http:///data/x", None),
        ("/data/x", None),
        ("file:///data/%", None),
        ("file:///data/%ff", None),
        ("file:///da\tta", None),
    ];
    for (uri, path) in cases {
        assert_eq!(file_uri_path(uri), path.map(PathBuf::from), "{uri:?}");
    }
}
