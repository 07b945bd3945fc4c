//! The closed value sets: text of `NodeType`, `ListeningType`, `MQTTParallelMode`,
//! `StorageProvider`, `LogTraceDestination`, `LogFormat` and `MetricsAccess` to their types.
//! All case-insensitive; every failure is a validation error (exit 98) with the original's
//! message where the original has one.

use super::types::{
    ListeningType, LogDestinations, LogFormat, MetricsAccess, NodeType, ObjectDataStorage, ParallelMode,
    SendfileDownloads, StorageKind,
};
use super::validate::invalid;
use super::ConfigError;

/// §5 step 2.
pub(super) fn node_type(value: &str) -> Result<NodeType, ConfigError> {
    if value.eq_ignore_ascii_case("CSS") {
        Ok(NodeType::Css)
    } else if value.eq_ignore_ascii_case("ESS") {
        Ok(NodeType::Ess)
    } else {
        Err(invalid(format!(
            "The node type specified in the configuration file ({value}) is incorrect. It must be CSS or ESS."
        )))
    }
}

/// §5 step 7; empty means the role's default.
pub(super) fn listening_type(value: &str, node_type: NodeType) -> Result<ListeningType, ConfigError> {
    match value.to_lowercase().as_str() {
        "" if node_type == NodeType::Css => Ok(ListeningType::Unsecure),
        "" | "secure" => Ok(ListeningType::Secure),
        "unsecure" => Ok(ListeningType::Unsecure),
        "both" => Ok(ListeningType::Both),
        "unix" => Ok(ListeningType::Unix),
        "secure-unix" => Ok(ListeningType::SecureUnix),
        _ => Err(invalid(
            "ListeningType must be both, secure, unsecure, unix, or secure-unix",
        )),
    }
}

/// `SendfileDownloads` (extension).
pub(super) fn sendfile_downloads(value: &str) -> Result<SendfileDownloads, ConfigError> {
    match value.to_lowercase().as_str() {
        "" | "auto" => Ok(SendfileDownloads::Auto),
        "always" => Ok(SendfileDownloads::Always),
        "never" => Ok(SendfileDownloads::Never),
        _ => Err(invalid(format!(
            "SendfileDownloads must be auto, always or never, not '{value}'"
        ))),
    }
}

/// §5 step 16.
pub(super) fn parallel_mode(value: &str) -> Result<ParallelMode, ConfigError> {
    match value.to_lowercase().as_str() {
        "" | "none" => Ok(ParallelMode::None),
        "small" => Ok(ParallelMode::Small),
        "medium" => Ok(ParallelMode::Medium),
        "large" => Ok(ParallelMode::Large),
        _ => Err(invalid(
            "Invalid MQTTParallelMode, please specify any off: 'none', 'small', 'medium', 'large', or leave as empty string",
        )),
    }
}

/// `ObjectDataStorage` (extension): where a CSS on PostgreSQL keeps object data. Any value
/// is checked, but only `postgres` reads it: the other stores keep data in files.
pub(super) fn object_data_storage(value: &str) -> Result<ObjectDataStorage, ConfigError> {
    match value.to_lowercase().as_str() {
        "" | "database" => Ok(ObjectDataStorage::Database),
        "files" => Ok(ObjectDataStorage::Files),
        _ => Err(invalid(format!(
            "ObjectDataStorage must be database or files, not '{value}'"
        ))),
    }
}

/// §5 step 18 with our mapping: empty/`bolt` → SQLite, `inmemory` → memory, `postgres` →
/// PostgreSQL (CSS only), `mongo` refused.
pub(super) fn storage_provider(value: &str, node_type: NodeType) -> Result<StorageKind, ConfigError> {
    match value.to_lowercase().as_str() {
        "" | "bolt" => Ok(StorageKind::Sqlite),
        "inmemory" => Ok(StorageKind::InMemory),
        "postgres" if node_type == NodeType::Css => Ok(StorageKind::Postgres),
        "postgres" => Err(invalid(
            "Invalid StorageProvider 'postgres': PostgreSQL is for a CSS only, for ESS please specify any of: 'bolt', 'inmemory', or leave as empty string",
        )),
        "mongo" => Err(invalid(
            "StorageProvider 'mongo' is not supported: MongoDB is not available in this implementation, use the embedded store (leave StorageProvider empty or set it to 'bolt') or, for several CSS instances sharing one database, 'postgres' with PostgresURL",
        )),
        _ => Err(invalid(format!(
            "Invalid StorageProvider '{value}', please specify any of: 'bolt', 'inmemory', 'postgres' (CSS), or leave as empty string"
        ))),
    }
}

/// Comma-separated `file`, `stdout`, `syslog`, `glog`; unknown items are ignored as in the
/// original, which refuses to start only when none is known.
pub(super) fn log_destinations(value: &str) -> Result<LogDestinations, ConfigError> {
    let mut destinations = LogDestinations::default();
    for item in value.split(',').map(str::trim) {
        match item.to_lowercase().as_str() {
            "file" => destinations.file = true,
            "stdout" => destinations.stdout = true,
            "syslog" => destinations.syslog = true,
            "glog" => destinations.glog = true,
            _ => {}
        }
    }
    if destinations.is_empty() {
        return Err(invalid(format!(
            "Invalid log/trace destinations list: LogTraceDestination '{value}' names none of file, stdout, syslog, glog (comma-separated)"
        )));
    }
    Ok(destinations)
}

/// `text` or `json`.
pub(super) fn log_format(value: &str) -> Result<LogFormat, ConfigError> {
    match value.to_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(format!(
            "Invalid LogFormat '{value}', please specify 'text' or 'json'"
        ))),
    }
}

/// `admin`, `open` or `off`.
pub(super) fn metrics_access(value: &str) -> Result<MetricsAccess, ConfigError> {
    match value.to_lowercase().as_str() {
        "admin" => Ok(MetricsAccess::Admin),
        "open" => Ok(MetricsAccess::Open),
        "off" => Ok(MetricsAccess::Off),
        _ => Err(invalid(format!(
            "Invalid MetricsAccess '{value}', please specify 'admin', 'open' or 'off'"
        ))),
    }
}
