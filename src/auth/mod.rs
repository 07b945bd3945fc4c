//! Who is calling: identities (spec: security.md §2) and the authenticators that map Basic
//! credentials to them. [`access`] decides what an identity may do; it knows no HTTP.

pub mod access;
pub mod cache;
pub mod dummy;
pub mod edge;
pub mod preset;

/// Kinds of caller with distinct powers (spec: rest-api.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// Not authenticated.
    Failed,
    /// An ESS node talking to the CSS; `user` is `{destType}/{destID}`.
    EdgeNode,
    /// Administrator of its org, including the agent-upgrade manifest type.
    OrgAdmin,
    /// Administrator of its org's objects, except the agent-upgrade manifest type.
    ObjectAdmin,
    /// Regular user governed by ACLs of user type `user`.
    User,
    /// Edge node authenticated with node credentials, governed by ACLs of user type `node`.
    NodeUser,
    /// Operator of the service, every org.
    SyncAdmin,
    /// Edge service calling its local ESS; `user` is `{serviceOrg}/{version}/{serviceName}`.
    Service,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: IdentityKind,
    /// The caller's organization (empty for a sync admin).
    pub org: String,
    pub user: String,
}

impl Identity {
    /// The identity of a request that did not authenticate.
    pub fn failed() -> Self {
        Self {
            kind: IdentityKind::Failed,
            org: String::new(),
            user: String::new(),
        }
    }

    /// True for identities that may never use the application API.
    pub fn is_shut_out(&self) -> bool {
        matches!(self.kind, IdentityKind::Failed | IdentityKind::EdgeNode)
    }

    /// `{userOrg}/{userID}` as recorded in `ownerID` (a sync admin has an empty org).
    pub fn owner_id(&self) -> String {
        format!("{}/{}", self.org, self.user)
    }

    /// For a service identity: its org, version and name.
    pub fn service_parts(&self) -> Option<(&str, &str, &str)> {
        if self.kind != IdentityKind::Service {
            return None;
        }
        let mut parts = self.user.splitn(3, '/');
        Some((parts.next()?, parts.next()?, parts.next()?))
    }
}

/// Who this node is when it calls its CSS: what an authenticator needs to choose outgoing
/// credentials (spec: security.md §3.2, config.md §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingIdentity {
    /// `http[s]://{HTTPCSSHost}:{HTTPCSSPort}`; URLs under it get the CSS credentials.
    pub css_base_url: String,
    /// `OrgID`.
    pub org: String,
    /// `DestinationType`.
    pub dest_type: String,
    /// `DestinationID`.
    pub dest_id: String,
}

/// True when `url` is the CSS base URL or a URL under it. Stricter than the original's plain
/// prefix test: the base must end at a path, query or fragment boundary, so that a base of
/// `http://css:80` does not match `http://css:8080/...`.
pub fn is_under_base_url(url: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        return false;
    }
    match url.strip_prefix(base) {
        Some(rest) => rest.is_empty() || rest.starts_with(['/', '?', '#']),
        None => false,
    }
}

/// Maps credentials to identities; one implementation per `AuthenticationHandler` value.
/// Embedding products can add their own and hand it to [`crate::engine::Node::start`];
/// wrap slow ones in [`cache::CachedAuthenticator`].
pub trait Authenticator: Send + Sync + 'static {
    /// Classifies a caller from its Basic app key and secret.
    fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity;

    /// The app key and secret this node presents on an outgoing request to `url` (an ESS
    /// calling its CSS); `None` for URLs that get no credentials.
    fn credentials_for(&self, url: &str) -> Option<(String, String)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_matching_stops_at_a_boundary() {
        let base = "http://css:80";
        assert!(is_under_base_url("http://css:80", base));
        assert!(is_under_base_url("http://css:80/spi/v1/objects", base));
        assert!(is_under_base_url("http://css:80?x", base));
        assert!(is_under_base_url("http://css:80/x", "http://css:80/"));
        assert!(!is_under_base_url("http://css:8080/spi/v1", base));
        assert!(!is_under_base_url("https://css:80/spi/v1", base));
        assert!(!is_under_base_url("http://other:80/", base));
        assert!(!is_under_base_url("http://css:80/", ""));
    }
}
