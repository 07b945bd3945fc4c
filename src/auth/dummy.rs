//! The `dummy` authenticator (spec: security.md §3.2): derives the identity from the shape of
//! the app key and never checks the secret. It is the original's default, kept for
//! compatibility; the service warns loudly at start when it is in use.

use super::{is_under_base_url, Authenticator, Identity, IdentityKind, OutgoingIdentity};
use serde::Deserialize;
use std::path::Path;

/// Users file of the dummy authenticator (`sync/dummy-auth.json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DummyUsers {
    #[serde(rename = "regularUsers")]
    pub regular_users: Vec<String>,
    #[serde(rename = "syncAdmins")]
    pub sync_admins: Vec<String>,
    #[serde(rename = "exchangeAdmins")]
    pub exchange_admins: Vec<String>,
}

static USERS_SHAPE: crate::model::json::Shape = crate::model::json::Shape {
    fields: &["regularUsers", "syncAdmins", "exchangeAdmins"],
    nested: &[],
};

/// Classifies app keys by their separators, with lists from the users file.
#[derive(Debug, Default)]
pub struct DummyAuthenticator {
    users: DummyUsers,
    outgoing: OutgoingIdentity,
}

impl DummyAuthenticator {
    /// Uses the given lists; no outgoing credentials until [`Self::with_outgoing`].
    pub fn new(users: DummyUsers) -> Self {
        Self {
            users,
            outgoing: OutgoingIdentity::default(),
        }
    }

    /// Presents `{org}/{destType}/{destID}` with an empty secret to URLs under the CSS base URL.
    pub fn with_outgoing(mut self, outgoing: OutgoingIdentity) -> Self {
        self.outgoing = outgoing;
        self
    }

    /// Loads the users file; a missing or unparsable file leaves the lists empty, with a warning.
    pub fn from_file(path: &Path) -> Self {
        let users = match std::fs::read(path) {
            Ok(bytes) => crate::model::json::from_lenient(&bytes, &USERS_SHAPE).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "the dummy users file is not valid JSON; its lists are ignored");
                DummyUsers::default()
            }),
            Err(e) => {
                tracing::info!(file = %path.display(), error = %e, "no dummy users file; every user@org key is an org admin");
                DummyUsers::default()
            }
        };
        Self::new(users)
    }
}

fn identity(kind: IdentityKind, org: &str, user: &str) -> Identity {
    Identity {
        kind,
        org: org.to_string(),
        user: user.to_string(),
    }
}

impl Authenticator for DummyAuthenticator {
    fn credentials_for(&self, url: &str) -> Option<(String, String)> {
        if !is_under_base_url(url, &self.outgoing.css_base_url) {
            return None;
        }
        let OutgoingIdentity {
            org,
            dest_type,
            dest_id,
            ..
        } = &self.outgoing;
        Some((format!("{org}/{dest_type}/{dest_id}"), String::new()))
    }

    fn authenticate(&self, app_key: &str, _app_secret: &str) -> Identity {
        let slash: Vec<&str> = app_key.split('/').collect();
        match slash.as_slice() {
            [org, dest_type, dest_id] => {
                return identity(IdentityKind::EdgeNode, org, &format!("{dest_type}/{dest_id}"))
            }
            [org, user] => {
                let kind = if self.users.exchange_admins.iter().any(|a| a == user) {
                    IdentityKind::OrgAdmin
                } else {
                    IdentityKind::ObjectAdmin
                };
                return identity(kind, org, user);
            }
            _ => {}
        }
        if let [org, service_org, version, name] = app_key.split('$').collect::<Vec<_>>().as_slice() {
            return identity(IdentityKind::Service, org, &format!("{service_org}/{version}/{name}"));
        }
        if let [node, org] = app_key.split('%').collect::<Vec<_>>().as_slice() {
            return identity(IdentityKind::NodeUser, org, node);
        }
        let at: Vec<&str> = app_key.split('@').collect();
        let (name, org) = match at.as_slice() {
            [user, org] => (user.to_string(), *org),
            [user, domain, org] => (format!("{user}@{domain}"), *org),
            _ => return Identity::failed(),
        };
        if self.users.regular_users.contains(&name) {
            identity(IdentityKind::User, org, &name)
        } else if self.users.sync_admins.contains(&name) {
            identity(IdentityKind::SyncAdmin, "", &name)
        } else {
            identity(IdentityKind::OrgAdmin, org, &name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> DummyAuthenticator {
        DummyAuthenticator::new(DummyUsers {
            regular_users: vec!["alice".into(), "bob@example.com".into()],
            sync_admins: vec!["operator".into()],
            exchange_admins: vec!["boss".into()],
        })
    }

    #[test]
    fn classifies_keys_by_shape() {
        let auth = authenticator();
        let cases = [
            ("org1/edge/node1", IdentityKind::EdgeNode, "org1", "edge/node1"),
            ("org1/boss", IdentityKind::OrgAdmin, "org1", "boss"),
            ("org1/worker", IdentityKind::ObjectAdmin, "org1", "worker"),
            (
                "org1$svcorg$1.0.0$svc",
                IdentityKind::Service,
                "org1",
                "svcorg/1.0.0/svc",
            ),
            ("node7%org1", IdentityKind::NodeUser, "org1", "node7"),
            ("alice@org1", IdentityKind::User, "org1", "alice"),
            ("bob@example.com@org1", IdentityKind::User, "org1", "bob@example.com"),
            ("operator@anything", IdentityKind::SyncAdmin, "", "operator"),
            ("carol@org1", IdentityKind::OrgAdmin, "org1", "carol"),
        ];
        for (key, kind, org, user) in cases {
            let id = auth.authenticate(key, "ignored");
            assert_eq!(
                (id.kind, id.org.as_str(), id.user.as_str()),
                (kind, org, user),
                "key {key}"
            );
        }
    }

    #[test]
    fn outgoing_credentials_only_for_the_css() {
        let auth = authenticator().with_outgoing(OutgoingIdentity {
            css_base_url: "https://css.example:9443".into(),
            org: "org1".into(),
            dest_type: "edge".into(),
            dest_id: "node1".into(),
        });
        assert_eq!(
            auth.credentials_for("https://css.example:9443/spi/v1/objects/org1"),
            Some(("org1/edge/node1".to_string(), String::new()))
        );
        assert_eq!(auth.credentials_for("https://elsewhere:9443/spi/v1"), None);
        assert_eq!(auth.credentials_for("http://css.example:9443/spi/v1"), None);
        assert_eq!(authenticator().credentials_for("https://css.example:9443/spi/v1"), None);
    }

    #[test]
    fn keys_without_separators_fail() {
        let auth = authenticator();
        for key in ["plain", "", "a@b@c@d", "a%b%c"] {
            assert_eq!(auth.authenticate(key, "").kind, IdentityKind::Failed, "key {key:?}");
        }
    }
}
