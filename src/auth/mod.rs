//! Who is calling: identities (spec: security.md §2) and the authenticators that map Basic
//! credentials to them. [`access`] decides what an identity may do; it knows no HTTP.

pub mod access;
pub mod dummy;

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

/// Maps credentials to identities; one implementation per `AuthenticationHandler` value.
/// Embedding products can add their own.
pub trait Authenticator: Send + Sync + 'static {
    /// Classifies a caller from its Basic app key and secret.
    fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity;

    /// The app key and secret this node presents on an outgoing request to `url` (an ESS
    /// calling its CSS); `None` for URLs that get no credentials.
    fn credentials_for(&self, url: &str) -> Option<(String, String)>;
}
