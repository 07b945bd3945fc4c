//! Decision tables of the access rules, including the ACL walks.

use super::*;
use crate::model::{Policy, ServiceID};

fn id(kind: IdentityKind, org: &str) -> Identity {
    Identity {
        kind,
        org: org.into(),
        user: "bob".into(),
    }
}

fn meta(object_type: &str) -> MetaData {
    MetaData {
        object_type: object_type.into(),
        object_id: "o".into(),
        ..MetaData::default()
    }
}

fn entry(name: &str, user_type: AclUserType, role: AclRole) -> AclEntry {
    AclEntry {
        username: name.into(),
        user_type,
        role,
    }
}

fn none() -> Grants {
    Grants::default()
}

#[test]
fn css_admins_of_the_org_read_and_write_others_do_not() {
    let m = meta("model");
    assert!(may_write(Role::Css, &id(IdentityKind::OrgAdmin, "a"), "a", &m, &none()));
    assert!(may_write(
        Role::Css,
        &id(IdentityKind::ObjectAdmin, "a"),
        "a",
        &m,
        &none()
    ));
    assert!(!may_write(
        Role::Css,
        &id(IdentityKind::OrgAdmin, "b"),
        "a",
        &m,
        &none()
    ));
    assert!(!may_write(Role::Css, &id(IdentityKind::User, "a"), "a", &m, &none()));
    assert!(!may_write(
        Role::Css,
        &id(IdentityKind::EdgeNode, "a"),
        "a",
        &m,
        &none()
    ));
    assert!(may_write(Role::Css, &id(IdentityKind::SyncAdmin, ""), "a", &m, &none()));
    assert!(!may_write(
        Role::Css,
        &id(IdentityKind::ObjectAdmin, "a"),
        "a",
        &meta(MANIFEST_TYPE),
        &none()
    ));
    assert!(may_read_all(
        Role::Css,
        &id(IdentityKind::NodeUser, "a"),
        "a",
        MANIFEST_TYPE,
        &none()
    ));
}

#[test]
fn public_objects_are_readable_across_orgs_but_not_by_edge_nodes() {
    let mut m = meta("model");
    m.public = true;
    assert!(may_read(Role::Css, &id(IdentityKind::User, "b"), "a", &m, &none()));
    assert!(!may_read(Role::Css, &id(IdentityKind::EdgeNode, "a"), "a", &m, &none()));
    m.public = false;
    assert!(!may_read(Role::Css, &id(IdentityKind::User, "b"), "a", &m, &none()));
}

#[test]
fn any_role_in_the_type_or_org_wide_objects_acl_grants_reading() {
    let user = id(IdentityKind::User, "a");
    let reader = Grants {
        type_objects: vec![entry("bob", AclUserType::User, AclRole::Reader)],
        ..none()
    };
    assert!(may_read_all(Role::Css, &user, "a", "model", &reader));
    let everyone = Grants {
        org_objects: vec![entry("*", AclUserType::User, AclRole::Writer)],
        ..none()
    };
    assert!(may_read_all(Role::Css, &user, "a", "model", &everyone));
    let node_entry = Grants {
        type_objects: vec![entry("bob", AclUserType::Node, AclRole::Writer)],
        ..none()
    };
    assert!(
        !may_read_all(Role::Css, &user, "a", "model", &node_entry),
        "entries are filtered by user type"
    );
    assert!(
        !may_read_all(Role::Css, &id(IdentityKind::User, "b"), "a", "model", &reader),
        "other org"
    );
}

#[test]
fn the_first_matching_entry_decides_writing() {
    let user = id(IdentityKind::User, "a");
    let m = MetaData {
        destination_type: "edge".into(),
        ..meta("model")
    };
    let edge = HashMap::from([(
        "edge".to_string(),
        vec![entry("bob", AclUserType::User, AclRole::NotApplicable)],
    )]);
    let grants = |type_objects: Vec<AclEntry>, org_objects: Vec<AclEntry>| Grants {
        type_objects,
        org_objects,
        destinations: edge.clone(),
        org_destinations: vec![],
    };
    let writer = entry("bob", AclUserType::User, AclRole::Writer);
    let star_reader = entry("*", AclUserType::User, AclRole::Reader);
    assert!(may_write(
        Role::Css,
        &user,
        "a",
        &m,
        &grants(vec![writer.clone()], vec![])
    ));
    assert!(!may_write(
        Role::Css,
        &user,
        "a",
        &m,
        &grants(vec![star_reader.clone(), writer.clone()], vec![])
    ));
    assert!(may_write(
        Role::Css,
        &user,
        "a",
        &m,
        &grants(vec![writer.clone(), star_reader.clone()], vec![])
    ));
    assert!(
        may_write(Role::Css, &user, "a", &m, &grants(vec![], vec![writer.clone()])),
        "org-wide decides next"
    );
    assert!(
        !may_write(Role::Css, &user, "a", &m, &grants(vec![star_reader], vec![writer])),
        "a reader in the type ACL masks an org-wide writer"
    );
}

#[test]
fn writers_also_need_grants_for_what_the_object_addresses() {
    let user = id(IdentityKind::User, "a");
    let writer = vec![entry("bob", AclUserType::User, AclRole::Writer)];
    let named = vec![entry("bob", AclUserType::User, AclRole::NotApplicable)];
    let broadcast = meta("model");
    let only_objects = Grants {
        type_objects: writer.clone(),
        ..none()
    };
    assert!(!may_write(Role::Css, &user, "a", &broadcast, &only_objects));
    let org_wide = Grants {
        type_objects: writer.clone(),
        org_destinations: named.clone(),
        ..none()
    };
    assert!(may_write(Role::Css, &user, "a", &broadcast, &org_wide));

    let listed = MetaData {
        destinations_list: Some(vec!["edge:n1".into(), "gpu:n2".into()]),
        ..meta("model")
    };
    let edge_only = Grants {
        type_objects: writer.clone(),
        destinations: HashMap::from([("edge".to_string(), named.clone())]),
        ..none()
    };
    assert!(
        !may_write(Role::Css, &user, "a", &listed, &edge_only),
        "gpu is not granted"
    );
    let policy = MetaData {
        destination_policy: Some(Policy::default()),
        ..meta("model")
    };
    assert!(
        may_write(Role::Css, &user, "a", &policy, &only_objects),
        "policy objects need no destination grant"
    );
    assert!(
        may_write_type(Role::Css, &user, "a", "model", &only_objects),
        "webhooks need no destination grant"
    );
}

#[test]
fn addressed_types_are_distinct_and_ordered() {
    let m = MetaData {
        destination_type: "edge".into(),
        destinations_list: Some(vec!["gpu:1".into(), "edge:2".into(), "gpu:3".into()]),
        ..meta("model")
    };
    assert_eq!(addressed_types(&m), vec!["edge", "gpu"]);
}

#[test]
fn ess_services_follow_the_destination_policy() {
    let service = Identity {
        kind: IdentityKind::Service,
        org: "a".into(),
        user: "sorg/1.5.0/svc".into(),
    };
    let mut m = meta("model");
    assert!(
        may_read(Role::Ess, &service, "a", &m, &none()),
        "no policy admits every service"
    );
    m.destination_policy = Some(Policy {
        services: Some(vec![ServiceID {
            org_id: "sorg".into(),
            arch: "amd64".into(),
            service_name: "svc".into(),
            version: "[1.0.0,2.0.0)".into(),
        }]),
        ..Policy::default()
    });
    assert!(may_read(Role::Ess, &service, "a", &m, &none()));
    let old = Identity {
        user: "sorg/0.9/svc".into(),
        ..service.clone()
    };
    assert!(!may_read(Role::Ess, &old, "a", &m, &none()));
    assert!(!may_act_as_consumer(Role::Ess, &old, "a", &m, &none()));
}
