//! The checks that need only finished values: §5 step 21 (certificate and key paths, the
//! Unix socket), then ours: non-positive periods and log file limits. Run by `validate`
//! after everything is decided, before the `Config` is handed out.

use std::path::Path;

use super::paths;
use super::protocol::ProtocolKinds;
use super::validate::invalid;
use super::{Config, ConfigError};

/// §5 step 21, limited to the lexical checks (no symlink resolution).
pub(super) fn paths(config: &Config, kinds: ProtocolKinds) -> Result<(), ConfigError> {
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
    // Relative paths and inline PEM are not file paths the original checks.
    for (name, value, allowed) in checks {
        if value.starts_with('/') {
            paths::check_file_path(value, allowed)
                .map_err(|detail| invalid(format!("Invalid {name} path: {detail}")))?;
        }
    }
    if config.listening_type.is_unix() {
        unix_socket_path(&config.listening_address, &config.persistence_root_path)?;
    }
    Ok(())
}

/// A relative socket address lives in the persistence root and must stay there.
fn unix_socket_path(address: &str, root: &Path) -> Result<(), ConfigError> {
    let socket_error = |detail: String| invalid(format!("Invalid ListeningAddress (Unix socket) path: {detail}"));
    if address.contains('\0') {
        return Err(socket_error("invalid file path: path contains null byte".to_string()));
    }
    let socket = root.join(address);
    if !Path::new(address).is_absolute() && !paths::is_within(&socket, root) {
        return Err(socket_error(paths::traversal_detail(&paths::clean(&socket), root)));
    }
    Ok(())
}

/// Periods of zero or less make the original spin or panic; we refuse them (spec §5).
pub(super) fn positive_periods(config: &Config) -> Result<(), ConfigError> {
    let periods: [(&str, i64); 9] = [
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
        ("MaxDataStreams", config.max_data_streams),
    ];
    match periods.iter().find(|(_, value)| *value <= 0) {
        Some((name, value)) => Err(invalid(format!("{name} must be greater than zero (got {value})"))),
        None => Ok(()),
    }
}

/// Log files need a positive rotation size and a non-negative number of kept files; the
/// original would rotate at every check or keep nothing useful. Without file logging the
/// values are unused and not checked, as in the original.
pub(super) fn log_file_limits(config: &Config) -> Result<(), ConfigError> {
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
