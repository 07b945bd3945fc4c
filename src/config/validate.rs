//! Validation and derived values, in the order of spec config.md §5 (every failure is
//! `ConfigError::Invalid`, exit 98), followed by the log destinations (checked by the
//! original when it opens its log, also exit 98) and our additional checks (non-positive
//! periods, log file limits). Works on a freshly read `Config` plus the raw [`Choices`]
//! text; no I/O except asking for the working directory when a relative path needs it.

use std::io;
use std::path::{Path, PathBuf};

use super::load::Choices;
use super::paths;
use super::protocol::{validate_broker, ProtocolKinds};
use super::types::{
    ListeningType, LogDestinations, LogFormat, MetricsAccess, NodeType, ParallelMode, Protocol, StorageKind,
};
use super::{Config, ConfigError};
use crate::model::names::is_valid_name;

/// Destination type and ID a CSS always uses.
const CLOUD: &str = "Cloud";

/// A validation error (exit 98) with `message`.
pub(super) fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Checks `config` and fills in its enum fields and derived values from `choices`.
pub(super) fn validate(
    config: &mut Config,
    choices: Choices,
    cwd: &dyn Fn() -> io::Result<PathBuf>,
) -> Result<(), ConfigError> {
    let current_dir = || cwd().map_err(|e| invalid(format!("Couldn't determine the current directory. Error: {e}")));

    // Step 1 (and 15: we keep the path without a trailing slash).
    let root = choices.persistence_root_path.as_str();
    if root.is_empty() {
        return Err(invalid("PersistenceRootPath must not be empty"));
    }
    config.persistence_root_path = if root.starts_with("./") || root.starts_with("../") {
        paths::absolute(Path::new(root), &current_dir()?)
    } else {
        paths::clean(Path::new(root))
    };

    // Data URI roots (an extension): relative entries live in the persistence root; none
    // configured means the persistence root itself, as in the original.
    let roots = std::mem::take(&mut config.data_uri_roots);
    config.data_uri_roots = if roots.is_empty() {
        vec![config.persistence_root_path.clone()]
    } else {
        roots
            .iter()
            .map(|r| paths::absolute(r, &config.persistence_root_path))
            .collect()
    };
    if config.max_object_size < 0 {
        return Err(invalid(format!(
            "MaxObjectSize must be zero (no limit) or a number of bytes (got {})",
            config.max_object_size
        )));
    }

    // Step 2, then start-up step 4: a CSS is always destination Cloud/Cloud.
    config.node_type = parse_node_type(&choices.node_type)?;
    if config.is_css() {
        config.destination_type = CLOUD.to_string();
        config.destination_id = CLOUD.to_string();
    }

    // Steps 3–5.
    if config.destination_type.is_empty() {
        return Err(invalid("Please specify the destination type in the configuration file"));
    }
    if !is_valid_name(&config.destination_type) {
        return Err(invalid("Destination type contains invalid characters"));
    }
    if config.destination_id.is_empty() {
        return Err(invalid("Please specify the destination id in the configuration file"));
    }
    if !is_valid_name(&config.destination_id) {
        return Err(invalid("Destination ID contains invalid characters"));
    }
    if config.node_type == NodeType::Ess {
        if config.org_id.is_empty() {
            return Err(invalid("Please specify the organization id in the configuration file"));
        }
        if !is_valid_name(&config.org_id) {
            return Err(invalid("Organization ID contains invalid characters"));
        }
    }

    // Step 6 is `Config::single_org`. Step 7.
    validate_listening(config, &choices)?;

    // Steps 8–14.
    let kinds = ProtocolKinds::parse(&choices.communication_protocol);
    config.communication_protocol = kinds.normalise(config.node_type)?;
    if config.communication_protocol.uses_mqtt() {
        config.enable_data_chunk = true;
    }
    validate_broker(config, kinds)?;
    if config.node_type == NodeType::Ess
        && config.communication_protocol == Protocol::Http
        && (config.http_css_host.is_empty() || config.http_css_port == 0)
    {
        return Err(invalid(
            "Please specify the host and port of CSS for HTTP communication in the configuration file",
        ));
    }

    // Step 16.
    config.mqtt_parallel_mode = match choices.mqtt_parallel_mode.to_lowercase().as_str() {
        "" | "none" => ParallelMode::None,
        "small" => ParallelMode::Small,
        "medium" => ParallelMode::Medium,
        "large" => ParallelMode::Large,
        _ => {
            return Err(invalid(
                "Invalid MQTTParallelMode, please specify any off: 'none', 'small', 'medium', 'large', or leave as empty string",
            ))
        }
    };

    // Step 17.
    config.max_inflight_chunks = config.max_inflight_chunks.max(1);
    if config.is_css() {
        config.max_inflight_chunks = config.max_inflight_chunks.min(64);
    }

    // Steps 18–19.
    config.storage_provider = parse_storage_provider(&choices.storage_provider, config.node_type)?;
    if config.storage_provider == StorageKind::Postgres {
        check_postgres_url(config.postgres_url.expose())?;
    }
    config.objects_data_path = objects_data_path(config, &choices.objects_data_path, &current_dir)?;

    // Step 20.
    if config.object_queue_buffer_size == 0 {
        config.object_queue_buffer_size = if config.is_css() { 1000 } else { 2 };
    }
    if config.verify_queue_buffer_size == 0 {
        config.verify_queue_buffer_size = 500;
    }

    // Start-up step 6 of the original (opening the log), then our extensions.
    config.log_trace_destination = parse_log_destinations(&choices.log_trace_destination)?;
    config.log_format = parse_log_format(&choices.log_format)?;
    config.metrics_access = parse_metrics_access(&choices.metrics_access)?;

    // Step 21, then our own checks.
    check_paths(config, kinds)?;
    check_positive_periods(config)?;
    check_log_file_limits(config)
}

fn parse_node_type(value: &str) -> Result<NodeType, ConfigError> {
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

/// §5 step 7.
fn validate_listening(config: &mut Config, choices: &Choices) -> Result<(), ConfigError> {
    config.listening_type = match choices.listening_type.to_lowercase().as_str() {
        "" if config.is_css() => ListeningType::Unsecure,
        "" => ListeningType::Secure,
        "secure" => ListeningType::Secure,
        "unsecure" => ListeningType::Unsecure,
        "both" => ListeningType::Both,
        "unix" => ListeningType::Unix,
        "secure-unix" => ListeningType::SecureUnix,
        _ => {
            return Err(invalid(
                "ListeningType must be both, secure, unsecure, unix, or secure-unix",
            ))
        }
    };
    let listening = config.listening_type;
    if listening.serves_tcp_plain() && config.unsecure_listening_port == 0 {
        return Err(invalid(
            "Have requested unsecure API serving, but the UnsecureListeningPort is zero.",
        ));
    }
    if listening.serves_tcp_tls() && config.secure_listening_port == 0 {
        return Err(invalid(
            "Have requested secure API serving, but the SecureListeningPort is zero.",
        ));
    }
    if config.is_css() && listening.serves_tcp_tls() {
        if config.server_certificate.is_empty() {
            return Err(invalid(
                "Have requested secure API serving, but no server certificate has been specified.",
            ));
        }
        if config.server_key.is_empty() {
            return Err(invalid(
                "Have requested secure API serving, but no server private key has been specified.",
            ));
        }
    }
    if listening.is_unix() {
        if config.is_css() {
            return Err(invalid("Only an ESS can listen via Unix Sockets"));
        }
        if config.listening_address.is_empty() {
            return Err(invalid(
                "When Listening via Unix Sockets, you must specify the Socket file using the ListeningAddress property",
            ));
        }
        config.unix_socket_file_permissions =
            u32::from_str_radix(&choices.unix_socket_file_permissions, 8).map_err(|e| {
                invalid(format!(
                    "UnixSocketFilePermissions must be a valid octal number (e.g., 0660). Error: {e}"
                ))
            })?;
    } else if let Ok(mode) = u32::from_str_radix(&choices.unix_socket_file_permissions, 8) {
        // Unused without a Unix socket; the original does not check it then either.
        config.unix_socket_file_permissions = mode;
    }
    Ok(())
}

/// `LogTraceDestination`: comma-separated `file`, `stdout`, `syslog`, `glog`, any case;
/// unknown items are ignored as in the original, but at least one must be known.
fn parse_log_destinations(value: &str) -> Result<LogDestinations, ConfigError> {
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

/// `LogFormat`: `text` or `json`, any case.
fn parse_log_format(value: &str) -> Result<LogFormat, ConfigError> {
    match value.to_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(format!(
            "Invalid LogFormat '{value}', please specify 'text' or 'json'"
        ))),
    }
}

/// `MetricsAccess`: `admin`, `open` or `off`, any case.
fn parse_metrics_access(value: &str) -> Result<MetricsAccess, ConfigError> {
    match value.to_lowercase().as_str() {
        "admin" => Ok(MetricsAccess::Admin),
        "open" => Ok(MetricsAccess::Open),
        "off" => Ok(MetricsAccess::Off),
        _ => Err(invalid(format!(
            "Invalid MetricsAccess '{value}', please specify 'admin', 'open' or 'off'"
        ))),
    }
}

/// §5 step 18 with our mapping: empty/`bolt` → SQLite, `inmemory` → memory, `postgres` →
/// PostgreSQL (CSS only), `mongo` refused.
fn parse_storage_provider(value: &str, node_type: NodeType) -> Result<StorageKind, ConfigError> {
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

/// `PostgresURL` must be set and readable as a connection string naming a host. Messages
/// never quote the value: it holds the password.
fn check_postgres_url(url: &str) -> Result<(), ConfigError> {
    if url.is_empty() {
        return Err(invalid(
            "StorageProvider 'postgres' needs PostgresURL (environment POSTGRES_URL), e.g. postgres://user:password@host:5432/database?sslmode=require",
        ));
    }
    let parsed: tokio_postgres::Config = url.parse().map_err(|e| invalid(format!("Invalid PostgresURL: {e}")))?;
    if parsed.get_hosts().is_empty() {
        return Err(invalid("Invalid PostgresURL: it names no host"));
    }
    Ok(())
}

/// §5 step 19, plus the containment check the spec asks for (§11): data files outside
/// the persistence root would be refused at every access.
fn objects_data_path(
    config: &Config,
    value: &str,
    current_dir: &dyn Fn() -> Result<PathBuf, ConfigError>,
) -> Result<Option<PathBuf>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    if config.storage_provider == StorageKind::InMemory {
        return Err(invalid(
            "Invalid ObjectsDataPath, it can only be set when StorageProvider is 'bolt' or empty",
        ));
    }
    let path = Path::new(value);
    let root = &config.persistence_root_path;
    let (path, root) = if path.is_absolute() && root.is_absolute() {
        (paths::clean(path), root.clone())
    } else {
        let cwd = current_dir().map_err(|e| {
            invalid(format!(
                "Invalid ObjectsDataPath ({value}): failed to convert to absolute path, err= {e}"
            ))
        })?;
        (paths::absolute(path, &cwd), paths::absolute(root, &cwd))
    };
    if !paths::is_within(&path, &root) {
        return Err(invalid(format!(
            "Invalid ObjectsDataPath ({value}): {}",
            paths::traversal_detail(&path, &root)
        )));
    }
    Ok(Some(path))
}

/// §5 step 21, limited to the lexical checks (no symlink resolution).
fn check_paths(config: &Config, kinds: ProtocolKinds) -> Result<(), ConfigError> {
    let certs = &config.allowed_certificate_extensions;
    let keys = &config.allowed_key_extensions;
    let mut checks: Vec<(&str, &str, &[String])> = Vec::new();
    if config.is_css() && config.listening_type.serves_tcp_tls() {
        checks.push(("ServerCertificate", &config.server_certificate, certs));
        checks.push(("ServerKey", config.server_key.expose(), keys));
    }
    if kinds.mqtt && config.mqtt_use_ssl {
        checks.push(("MQTTCACertificate", &config.mqtt_ca_certificate, certs));
        checks.push(("MQTTSSLCert", &config.mqtt_ssl_cert, certs));
        checks.push(("MQTTSSLKey", config.mqtt_ssl_key.expose(), keys));
    }
    for (name, value, allowed) in checks {
        if value.starts_with('/') {
            paths::check_file_path(value, allowed)
                .map_err(|detail| invalid(format!("Invalid {name} path: {detail}")))?;
        }
    }

    if config.listening_type.is_unix() {
        let address = &config.listening_address;
        let socket_error = |detail: String| invalid(format!("Invalid ListeningAddress (Unix socket) path: {detail}"));
        if address.contains('\0') {
            return Err(socket_error("invalid file path: path contains null byte".to_string()));
        }
        let root = &config.persistence_root_path;
        let socket = root.join(address);
        if !Path::new(address).is_absolute() && !paths::is_within(&socket, root) {
            return Err(socket_error(paths::traversal_detail(&paths::clean(&socket), root)));
        }
    }
    Ok(())
}

/// Periods of zero or less make the original spin or panic; we refuse them (spec §5).
fn check_positive_periods(config: &Config) -> Result<(), ConfigError> {
    let periods: [(&str, i64); 8] = [
        ("ResendInterval", config.resend_interval.into()),
        ("ESSPingInterval", config.ess_ping_interval.into()),
        ("ObjectActivationInterval", config.object_activation_interval.into()),
        ("StorageMaintenanceInterval", config.storage_maintenance_interval.into()),
        ("HTTPPollingInterval", config.http_polling_interval.into()),
        (
            "LogTraceMaintenanceInterval",
            config.log_trace_maintenance_interval.into(),
        ),
        ("LeadershipTimeout", config.leadership_timeout.into()),
        ("MaxDataChunkSize", config.max_data_chunk_size),
    ];
    match periods.iter().find(|(_, value)| *value <= 0) {
        Some((name, value)) => Err(invalid(format!("{name} must be greater than zero (got {value})"))),
        None => Ok(()),
    }
}

/// Log files need a positive rotation size and a non-negative number of kept files; the
/// original would rotate at every check or keep nothing useful. Without file logging the
/// values are unused and not checked, as in the original.
fn check_log_file_limits(config: &Config) -> Result<(), ConfigError> {
    if !config.log_trace_destination.file {
        return Ok(());
    }
    if config.log_trace_file_size_kb <= 0 {
        return Err(invalid(format!(
            "LogTraceFileSizeKB must be greater than zero (got {})",
            config.log_trace_file_size_kb
        )));
    }
    if config.max_compressed_log_trace_files_number < 0 {
        return Err(invalid(format!(
            "MaxCompressedlLogTraceFilesNumber must be zero or more (got {})",
            config.max_compressed_log_trace_files_number
        )));
    }
    Ok(())
}
