//! Keys of the original that configure nothing in this implementation. They stay accepted
//! so that an existing `sync.conf` or container environment keeps working, and each one
//! that is set is reported, so that nobody believes it has an effect. `Config` has no
//! fields for them: this table is the only place they are named.

use std::fmt;

use super::source::{Key, Sources, ValueKind};
use super::ConfigError;

/// One key without effect here, with the reason given to the user.
struct Unused {
    key: Key,
    kind: ValueKind,
    reason: &'static str,
}

const NO_MONGO: &str = "MongoDB is not supported";

/// Every key the original accepts that this implementation ignores, with the original's
/// environment variables (and the legacy names its documentation gives).
const UNUSED: &[Unused] = &[
    unused(
        Key::new("MongoAddressCsv", "MONGO_ADDRESS_CSV"),
        ValueKind::Text,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoAuthMechanism", "MONGO_AUTH_MECHANISM"),
        ValueKind::Text,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoAuthDbName", "MONGO_AUTH_DB_NAME"),
        ValueKind::Text,
        NO_MONGO,
    ),
    unused(Key::new("MongoDbName", "MONGO_DB_NAME"), ValueKind::Text, NO_MONGO),
    unused(Key::new("MongoUsername", "MONGO_USERNAME"), ValueKind::Text, NO_MONGO),
    unused(Key::new("MongoPassword", "MONGO_PASSWORD"), ValueKind::Text, NO_MONGO),
    unused(Key::new("MongoUseSSL", "MONGO_USE_SSL"), ValueKind::Bool, NO_MONGO),
    unused(
        Key::new("MongoCACertificate", "MONGO_CA_CERTIFICATE").legacy_env("MONGO_SSL_CA_FILE"),
        ValueKind::Text,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoAllowInvalidCertificates", "MONGO_ALLOW_INVALID_CERTIFICATES"),
        ValueKind::Bool,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoPinnedCertFingerprints", "MONGO_PINNED_CERT_FINGERPRINTS")
            .legacy_name("MongoDBCertificatePinningFingerprints")
            .legacy_env("MONGODB_CERTIFICATE_PINNING_FINGERPRINTS"),
        ValueKind::Text,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoSleepTimeBetweenRetry", "MONGO_SLEEP_TIME_BETWEEN_RETRY"),
        ValueKind::Int64,
        NO_MONGO,
    ),
    unused(
        Key::new("MongoSessionCacheSize", "MONGO_SESSION_CACHE_SIZE"),
        ValueKind::Int64,
        "MongoDB is not supported (the original does not use it either)",
    ),
    unused(
        Key::new("MessagingGroupCacheExpiration", "MESSAGING_GROUP_CACHE_EXPIRATION"),
        ValueKind::Int16,
        "the original does not use it either",
    ),
    unused(
        Key::new("AllowPrivateIPs", "ALLOW_PRIVATE_IPS"),
        ValueKind::Bool,
        "outgoing requests are not filtered by address (the original does not enforce it either)",
    ),
    unused(
        Key::new("ShutdownQuiesceTime", "SHUTDOWN_QUIESCE_TIME"),
        ValueKind::Int64,
        "a stop waits a fixed grace period for running work",
    ),
    unused(
        Key::new("MQTTBrokerConnectTimeout", "MQTT_BROKER_CONNECT_TIMEOUT"),
        ValueKind::Int64,
        "the MQTT client keeps reconnecting instead of giving up",
    ),
];

const fn unused(key: Key, kind: ValueKind, reason: &'static str) -> Unused {
    Unused { key, kind, reason }
}

/// A key of the original that was set but has no effect here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredKey {
    /// The key's name, e.g. `MongoAddressCsv`.
    pub key: &'static str,
    /// Where it was set: `environment variable MONGO_ADDRESS_CSV` or
    /// `key MongoAddressCsv in the file 'sync.conf'`. Never the value: some are passwords.
    pub origin: String,
    /// Why it has no effect.
    pub reason: &'static str,
}

impl fmt::Display for IgnoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.key, self.origin, self.reason)
    }
}

/// Names of all the keys this implementation accepts and ignores, in table order.
pub fn ignored_key_names() -> impl Iterator<Item = &'static str> {
    UNUSED.iter().map(|entry| entry.key.name)
}

/// The ignored keys that are set, in table order. Their values are checked as the original
/// checks them, so an unparsable one is a load error as before.
pub(super) fn read(sources: &mut Sources<'_>) -> Result<Vec<IgnoredKey>, ConfigError> {
    let mut found = Vec::new();
    for entry in UNUSED {
        if let Some(origin) = sources.unused(entry.key, entry.kind)? {
            found.push(IgnoredKey {
                key: entry.key.name,
                origin,
                reason: entry.reason,
            });
        }
    }
    Ok(found)
}
