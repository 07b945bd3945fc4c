//! The `preset` authenticator (spec: security.md §3.3): a fixed credential table read once at
//! start from `sync/preset-auth.json` under the persistence root.
//!
//! Departures from the original, all on the side of safety:
//! - secrets are compared in constant time;
//! - a stored secret may be a hash instead of clear text: a PHC string starting with
//!   `$argon2` (argon2i, argon2d or argon2id) or a bcrypt string starting with `$2a$`, `$2b$`
//!   or `$2y$`; anything else is clear text;
//! - credentials with an unknown `type`, unparsable hashes, and an unparsable file are logged at
//!   start instead of being ignored silently.
//!
//! Verifying a hashed secret is deliberately slow; wrap this authenticator in
//! [`super::cache::CachedAuthenticator`].

use super::{is_under_base_url, Authenticator, Identity, IdentityKind};
use crate::model::json::{fold, Nested, Shape};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

static FILE_SHAPE: Shape = Shape {
    fields: &["credentials", "cssCredentials"],
    nested: &[("cssCredentials", Nested::Object(&CSS_SHAPE))],
};
static CSS_SHAPE: Shape = Shape {
    fields: &["key", "secret"],
    nested: &[],
};
static CREDENTIAL_SHAPE: Shape = Shape {
    fields: &["secret", "orgID", "username", "type"],
    nested: &[],
};

/// One entry of `credentials`, keyed by app key.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct PresetCredential {
    /// Clear text, or an argon2 PHC string, or a bcrypt string.
    pub secret: String,
    #[serde(rename = "orgID")]
    pub org_id: String,
    pub username: String,
    /// `admin`, `edgenode`, `user`, `syncadmin` or `service` (case-insensitive).
    #[serde(rename = "type")]
    pub kind: String,
}

/// `cssCredentials`: what an ESS presents to its CSS.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct CssCredentials {
    pub key: String,
    pub secret: String,
}

/// The contents of `sync/preset-auth.json`.
#[derive(Clone, Default)]
pub struct PresetFile {
    pub credentials: HashMap<String, PresetCredential>,
    pub css_credentials: CssCredentials,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFile {
    credentials: Option<HashMap<String, Value>>,
    #[serde(rename = "cssCredentials")]
    css_credentials: CssCredentials,
}

impl PresetFile {
    /// Parses the file with the original's rules: keys of the file's objects matched
    /// case-insensitively (app keys themselves exactly), unknown keys ignored, and any
    /// malformed entry making the whole file invalid.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: RawFile = crate::model::json::from_lenient(bytes, &FILE_SHAPE)?;
        let mut credentials = HashMap::new();
        for (app_key, mut value) in raw.credentials.unwrap_or_default() {
            fold(&mut value, &CREDENTIAL_SHAPE);
            let credential = if value.is_null() {
                PresetCredential::default()
            } else {
                serde_json::from_value(value)?
            };
            credentials.insert(app_key, credential);
        }
        Ok(Self {
            credentials,
            css_credentials: raw.css_credentials,
        })
    }
}

// No Debug derive on the types above would print secrets; these say what is there only.
impl std::fmt::Debug for PresetCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresetCredential")
            .field("org_id", &self.org_id)
            .field("username", &self.username)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CssCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CssCredentials")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PresetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresetFile")
            .field("credentials", &self.credentials.len())
            .field("css_credentials", &self.css_credentials)
            .finish()
    }
}

/// How a stored secret is checked.
enum StoredSecret {
    /// SHA-256 of the clear-text secret, compared in constant time.
    Clear([u8; 32]),
    /// An argon2 PHC string.
    Argon2(String),
    /// A bcrypt string.
    Bcrypt(String),
}

impl StoredSecret {
    fn classify(secret: &str) -> Self {
        if secret.starts_with("$argon2") {
            Self::Argon2(secret.to_string())
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| secret.starts_with(p)) {
            Self::Bcrypt(secret.to_string())
        } else {
            Self::Clear(Sha256::digest(secret.as_bytes()).into())
        }
    }

    /// Whether a hashed secret can be verified at all; clear text always can.
    fn parses(&self) -> bool {
        match self {
            Self::Clear(_) => true,
            Self::Argon2(phc) => argon2::PasswordHash::new(phc).is_ok(),
            Self::Bcrypt(hash) => hash.parse::<bcrypt::HashParts>().is_ok(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        match self {
            Self::Clear(digest) => {
                let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                presented.ct_eq(digest).into()
            }
            Self::Argon2(phc) => {
                use argon2::PasswordVerifier as _;
                argon2::PasswordHash::new(phc)
                    .and_then(|hash| argon2::Argon2::default().verify_password(presented.as_bytes(), &hash))
                    .is_ok()
            }
            Self::Bcrypt(hash) => bcrypt::verify(presented.as_bytes(), hash).unwrap_or(false),
        }
    }
}

struct Entry {
    secret: StoredSecret,
    /// `None`: the credential can never log in (unknown type or unusable hash).
    identity: Option<Identity>,
}

/// Checks app keys and secrets against a fixed table.
pub struct PresetAuthenticator {
    entries: HashMap<String, Entry>,
    css_credentials: CssCredentials,
    css_base_url: String,
}

impl std::fmt::Debug for PresetAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresetAuthenticator")
            .field("credentials", &self.entries.len())
            .field("css_credentials", &self.css_credentials)
            .field("css_base_url", &self.css_base_url)
            .finish()
    }
}

/// The identity class of a credential `type`, or `None` for a type that cannot log in.
pub fn class_of(kind: &str) -> Option<IdentityKind> {
    match kind.to_ascii_lowercase().as_str() {
        "admin" => Some(IdentityKind::OrgAdmin),
        "edgenode" => Some(IdentityKind::EdgeNode),
        "user" => Some(IdentityKind::User),
        "syncadmin" => Some(IdentityKind::SyncAdmin),
        "service" => Some(IdentityKind::Service),
        _ => None,
    }
}

impl PresetAuthenticator {
    /// Uses credentials supplied by the caller; `css_base_url` selects the URLs that get
    /// `cssCredentials`. Problems with individual credentials are logged here.
    pub fn new(file: PresetFile, css_base_url: impl Into<String>) -> Self {
        let mut entries = HashMap::with_capacity(file.credentials.len());
        for (app_key, credential) in file.credentials {
            let secret = StoredSecret::classify(&credential.secret);
            let mut identity = class_of(&credential.kind).map(|kind| Identity {
                kind,
                org: credential.org_id,
                user: credential.username,
            });
            if identity.is_none() {
                tracing::warn!(
                    app_key = ?app_key,
                    r#type = ?credential.kind,
                    "preset credential has an unknown type and can never log in; valid types are admin, edgenode, user, syncadmin and service"
                );
            } else if !secret.parses() {
                tracing::warn!(app_key = ?app_key, "preset credential has a malformed argon2 or bcrypt secret and can never log in");
                identity = None;
            } else if credential.secret.is_empty() {
                tracing::warn!(app_key = ?app_key, "preset credential has an empty secret: it logs in with an empty secret");
            }
            entries.insert(app_key, Entry { secret, identity });
        }
        Self {
            entries,
            css_credentials: file.css_credentials,
            css_base_url: css_base_url.into(),
        }
    }

    /// Loads `path`; a missing, unreadable or invalid file leaves the table empty (every request
    /// fails), with a warning.
    pub fn from_file(path: &Path, css_base_url: impl Into<String>) -> Self {
        let file = match std::fs::read(path) {
            Ok(bytes) => PresetFile::parse(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "the preset credentials file is not valid; no credential can log in");
                PresetFile::default()
            }),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the preset credentials file; no credential can log in");
                PresetFile::default()
            }
        };
        let authenticator = Self::new(file, css_base_url);
        tracing::info!(
            file = %path.display(),
            credentials = authenticator.entries.len(),
            "preset credentials loaded"
        );
        authenticator
    }
}

/// Digest compared against for unknown app keys, so that they cost about as much as a wrong
/// clear-text secret.
const UNKNOWN_KEY_DIGEST: [u8; 32] = [0; 32];

impl Authenticator for PresetAuthenticator {
    fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity {
        let Some(entry) = self.entries.get(app_key) else {
            let _ = StoredSecret::Clear(UNKNOWN_KEY_DIGEST).matches(app_secret);
            return Identity::failed();
        };
        // The secret is checked even for credentials that cannot log in, to keep timing even.
        let matches = entry.secret.matches(app_secret);
        match &entry.identity {
            Some(identity) if matches => identity.clone(),
            _ => Identity::failed(),
        }
    }

    fn credentials_for(&self, url: &str) -> Option<(String, String)> {
        if self.css_credentials.key.is_empty() || !is_under_base_url(url, &self.css_base_url) {
            return None;
        }
        Some((self.css_credentials.key.clone(), self.css_credentials.secret.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://css.example:8080";

    fn from_json(json: &str) -> PresetAuthenticator {
        PresetAuthenticator::new(PresetFile::parse(json.as_bytes()).expect("valid file"), BASE)
    }

    fn credential(secret: &str, kind: &str) -> String {
        format!(r#"{{"secret":"{secret}","orgID":"org1","username":"name","type":"{kind}"}}"#)
    }

    #[test]
    fn every_type_maps_to_its_class() {
        let cases = [
            ("admin", IdentityKind::OrgAdmin),
            ("Admin", IdentityKind::OrgAdmin),
            ("edgenode", IdentityKind::EdgeNode),
            ("EdgeNode", IdentityKind::EdgeNode),
            ("user", IdentityKind::User),
            ("USER", IdentityKind::User),
            ("syncadmin", IdentityKind::SyncAdmin),
            ("SyncAdmin", IdentityKind::SyncAdmin),
            ("service", IdentityKind::Service),
            ("Service", IdentityKind::Service),
        ];
        for (kind, class) in cases {
            let auth = from_json(&format!(r#"{{"credentials":{{"k":{}}}}}"#, credential("s3cret", kind)));
            let id = auth.authenticate("k", "s3cret");
            assert_eq!(
                id,
                Identity {
                    kind: class,
                    org: "org1".into(),
                    user: "name".into()
                },
                "type {kind}"
            );
        }
    }

    #[test]
    fn wrong_secret_and_unknown_key_fail() {
        let auth = from_json(&format!(
            r#"{{"credentials":{{"k":{}}}}}"#,
            credential("s3cret", "admin")
        ));
        assert_eq!(auth.authenticate("k", "s3cret").kind, IdentityKind::OrgAdmin);
        for (key, secret) in [
            ("k", "wrong"),
            ("k", ""),
            ("k", "s3cret "),
            ("K", "s3cret"),
            ("other", "s3cret"),
        ] {
            assert_eq!(auth.authenticate(key, secret), Identity::failed(), "{key}:{secret}");
        }
    }

    #[test]
    fn unknown_types_never_log_in() {
        for kind in ["objectadmin", "nodeuser", "", "admins"] {
            let auth = from_json(&format!(r#"{{"credentials":{{"k":{}}}}}"#, credential("s3cret", kind)));
            assert_eq!(auth.authenticate("k", "s3cret"), Identity::failed(), "type {kind:?}");
        }
    }

    #[test]
    fn file_keys_match_case_insensitively_but_app_keys_exactly() {
        let auth = from_json(
            r#"{"CREDENTIALS":{"App/Key":{"Secret":"s","ORGID":"o","UserName":"u","TYPE":"user","extra":1}},
                "csscredentials":{"KEY":"ck","Secret":"cs"}}"#,
        );
        assert_eq!(
            auth.authenticate("App/Key", "s"),
            Identity {
                kind: IdentityKind::User,
                org: "o".into(),
                user: "u".into()
            }
        );
        assert_eq!(auth.authenticate("app/key", "s").kind, IdentityKind::Failed);
        assert_eq!(
            auth.credentials_for(&format!("{BASE}/spi/v1/objects")),
            Some(("ck".to_string(), "cs".to_string()))
        );
    }

    #[test]
    fn invalid_files_are_errors() {
        for bad in [
            "not json",
            r#"{"credentials":{"k":"a string"}}"#,
            r#"{"credentials":{"k":{"secret":5}}}"#,
            r#"{"credentials":[]}"#,
        ] {
            assert!(PresetFile::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let empty = PresetFile::parse(b"{}").unwrap();
        assert!(empty.credentials.is_empty());
    }

    #[test]
    fn missing_file_leaves_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let auth = PresetAuthenticator::from_file(&dir.path().join("absent.json"), BASE);
        assert_eq!(auth.authenticate("k", "s").kind, IdentityKind::Failed);
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let auth = PresetAuthenticator::from_file(&dir.path().join("bad.json"), BASE);
        assert_eq!(auth.authenticate("k", "s").kind, IdentityKind::Failed);
        std::fs::write(
            dir.path().join("good.json"),
            format!(r#"{{"credentials":{{"k":{}}}}}"#, credential("s", "admin")),
        )
        .unwrap();
        let auth = PresetAuthenticator::from_file(&dir.path().join("good.json"), BASE);
        assert_eq!(auth.authenticate("k", "s").kind, IdentityKind::OrgAdmin);
    }

    #[test]
    fn bcrypt_secrets_are_verified() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert!(hash.starts_with("$2b$"));
        let y = hash.replacen("$2b$", "$2y$", 1);
        let a = hash.replacen("$2b$", "$2a$", 1);
        let json = format!(
            r#"{{"credentials":{{"b":{},"y":{},"a":{}}}}}"#,
            credential(&hash, "user"),
            credential(&y, "user"),
            credential(&a, "user")
        );
        let auth = from_json(&json);
        for key in ["b", "y", "a"] {
            assert_eq!(auth.authenticate(key, "s3cret").kind, IdentityKind::User, "{key}");
            assert_eq!(auth.authenticate(key, "wrong").kind, IdentityKind::Failed, "{key}");
            assert_eq!(
                auth.authenticate(key, &hash).kind,
                IdentityKind::Failed,
                "the hash is no password"
            );
        }
    }

    #[test]
    fn argon2_secrets_are_verified() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = hasher.hash_password(b"s3cret", &salt).unwrap().to_string();
        assert!(phc.starts_with("$argon2id$"));
        let auth = from_json(&format!(
            r#"{{"credentials":{{"k":{}}}}}"#,
            credential(&phc, "edgenode")
        ));
        assert_eq!(auth.authenticate("k", "s3cret").kind, IdentityKind::EdgeNode);
        assert_eq!(auth.authenticate("k", "wrong").kind, IdentityKind::Failed);
        assert_eq!(auth.authenticate("k", &phc).kind, IdentityKind::Failed);
    }

    #[test]
    fn malformed_hashes_never_log_in() {
        let auth = from_json(&format!(
            r#"{{"credentials":{{"a":{},"b":{}}}}}"#,
            credential("$argon2id$garbage", "admin"),
            credential("$2b$04$short", "admin")
        ));
        assert_eq!(auth.authenticate("a", "$argon2id$garbage").kind, IdentityKind::Failed);
        assert_eq!(auth.authenticate("b", "$2b$04$short").kind, IdentityKind::Failed);
    }

    #[test]
    fn outgoing_credentials_only_under_the_css_base_url() {
        let auth = from_json(r#"{"credentials":{},"cssCredentials":{"key":"org1/edge/n1","secret":"cs"}}"#);
        let expected = Some(("org1/edge/n1".to_string(), "cs".to_string()));
        assert_eq!(auth.credentials_for(&format!("{BASE}/spi/v1/objects/org1")), expected);
        assert_eq!(auth.credentials_for(BASE), expected);
        assert_eq!(auth.credentials_for("http://elsewhere:8080/spi/v1"), None);
        assert_eq!(auth.credentials_for("http://css.example:80801/spi/v1"), None);
        let without = from_json(r#"{"credentials":{}}"#);
        assert_eq!(without.credentials_for(&format!("{BASE}/spi/v1")), None);
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let file = PresetFile::parse(
            format!(
                r#"{{"credentials":{{"k":{}}},"cssCredentials":{{"key":"ck","secret":"css-secret"}}}}"#,
                credential("top-secret", "admin")
            )
            .as_bytes(),
        )
        .unwrap();
        let shown = format!("{file:?} {:?}", PresetAuthenticator::new(file.clone(), BASE));
        assert!(
            !shown.contains("top-secret") && !shown.contains("css-secret"),
            "{shown}"
        );
    }
}
