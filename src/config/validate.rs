//! Validation and derived values, in the order of spec config.md §5 (every failure is
//! `ConfigError::Invalid`, exit 98), followed by the log destinations (checked by the
//! original when it opens its log, also exit 98) and our additional checks. Turns what
//! `load` read into the finished [`Config`]; the checks run in the original's order, so
//! that of several problems the same one is reported. No I/O except asking for the working
//! directory when a relative path needs it.

use std::io;
use std::path::{Path, PathBuf};

use super::load::{Raw, RawListening, RawNode, RawStorage};
use super::protocol::{self, Broker, ProtocolKinds};
use super::types::{
    ListeningType, LogDestinations, LogFormat, MetricsAccess, NodeType, ObjectDataStorage, ParallelMode, Protocol,
    SendfileDownloads, StorageKind,
};
use super::{assemble, checks, choices, paths, Config, ConfigError};
use crate::model::names::is_valid_name;

/// Destination type and ID a CSS always uses.
const CLOUD: &str = "Cloud";

/// A validation error (exit 98) with `message`.
pub(super) fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// The working directory, asked for only when a relative path needs it.
type CurrentDir<'a> = &'a dyn Fn() -> Result<PathBuf, ConfigError>;

/// Who this node is (§5 steps 2–5).
pub(super) struct Node {
    pub(super) node_type: NodeType,
    pub(super) destination_type: String,
    pub(super) destination_id: String,
    pub(super) org_id: String,
}

/// How the API is served (§5 step 7).
pub(super) struct Listening {
    pub(super) listening_type: ListeningType,
    pub(super) sendfile_downloads: SendfileDownloads,
    pub(super) unix_socket_file_permissions: u32,
}

/// Where objects are kept (§5 steps 1, 18, 19, and our data URI roots).
pub(super) struct Storage {
    pub(super) persistence_root_path: PathBuf,
    pub(super) data_uri_roots: Vec<PathBuf>,
    pub(super) storage_provider: StorageKind,
    pub(super) object_data_storage: ObjectDataStorage,
    pub(super) objects_data_path: Option<PathBuf>,
    pub(super) upload_sources: Vec<super::UploadSource>,
}

/// Everything `validate` decides; the rest of [`Config`] is taken from [`Raw`] as read.
pub(super) struct Decided {
    pub(super) node: Node,
    pub(super) listening: Listening,
    pub(super) communication_protocol: Protocol,
    pub(super) broker: Broker,
    pub(super) mqtt_parallel_mode: ParallelMode,
    pub(super) storage: Storage,
    pub(super) log_trace_destination: LogDestinations,
    pub(super) log_format: LogFormat,
    pub(super) metrics_access: MetricsAccess,
}

/// Validates `raw` and completes it into a `Config`.
pub(super) fn validate(raw: Raw, cwd: &dyn Fn() -> io::Result<PathBuf>) -> Result<Config, ConfigError> {
    let current_dir = || cwd().map_err(|e| invalid(format!("Couldn't determine the current directory. Error: {e}")));
    let (decided, kinds) = decide(&raw, &current_dir)?;
    let config = assemble::config(raw, decided);
    // Step 21, then our own checks: they only look at finished values.
    checks::paths(&config, kinds)?;
    checks::positive_periods(&config)?;
    checks::log_file_limits(&config)?;
    Ok(config)
}

/// §5 steps 1–20 and the log settings, in that order.
fn decide(raw: &Raw, current_dir: CurrentDir<'_>) -> Result<(Decided, ProtocolKinds), ConfigError> {
    let root = persistence_root(&raw.storage.persistence_root_path, current_dir)?;
    let data_uri_roots = data_uri_roots(&raw.storage.data_uri_roots, &root);
    check_max_object_size(raw.storage.max_object_size)?;
    let node = node(&raw.node)?;
    // Step 6 is `Config::single_org`.
    let listening = listening(&raw.listening, node.node_type)?;
    let kinds = ProtocolKinds::parse(&raw.comms.communication_protocol);
    let communication_protocol = kinds.normalise(node.node_type)?;
    let broker = protocol::broker(raw, &node, communication_protocol, kinds)?;
    check_ess_http(raw, node.node_type, communication_protocol)?;
    let mqtt_parallel_mode = choices::parallel_mode(&raw.mqtt.mqtt_parallel_mode)?;
    let storage = storage(&raw.storage, node.node_type, root, data_uri_roots, current_dir)?;
    let decided = Decided {
        node,
        listening,
        communication_protocol,
        broker,
        mqtt_parallel_mode,
        storage,
        // Start-up step 6 of the original (opening the log), then our extensions.
        log_trace_destination: choices::log_destinations(&raw.logging.log_trace_destination)?,
        log_format: choices::log_format(&raw.logging.log_format)?,
        metrics_access: choices::metrics_access(&raw.logging.metrics_access)?,
    };
    Ok((decided, kinds))
}

/// Step 1 (and 15: we keep the path without a trailing slash).
fn persistence_root(root: &str, current_dir: CurrentDir<'_>) -> Result<PathBuf, ConfigError> {
    if root.is_empty() {
        return Err(invalid("PersistenceRootPath must not be empty"));
    }
    Ok(if root.starts_with("./") || root.starts_with("../") {
        paths::absolute(Path::new(root), &current_dir()?)
    } else {
        paths::clean(Path::new(root))
    })
}

/// Data URI roots (an extension): relative entries live in the persistence root; none
/// configured means the persistence root itself, as in the original.
fn data_uri_roots(roots: &[PathBuf], persistence_root: &Path) -> Vec<PathBuf> {
    if roots.is_empty() {
        return vec![persistence_root.to_path_buf()];
    }
    roots.iter().map(|r| paths::absolute(r, persistence_root)).collect()
}

fn check_max_object_size(size: i64) -> Result<(), ConfigError> {
    if size < 0 {
        return Err(invalid(format!(
            "MaxObjectSize must be zero (no limit) or a number of bytes (got {size})"
        )));
    }
    Ok(())
}

/// Steps 2–5, with start-up step 4: a CSS is always destination Cloud/Cloud.
fn node(raw: &RawNode) -> Result<Node, ConfigError> {
    let node_type = choices::node_type(&raw.node_type)?;
    let (destination_type, destination_id) = match node_type {
        NodeType::Css => (CLOUD.to_string(), CLOUD.to_string()),
        NodeType::Ess => (raw.destination_type.clone(), raw.destination_id.clone()),
    };
    if destination_type.is_empty() {
        return Err(invalid("Please specify the destination type in the configuration file"));
    }
    if !is_valid_name(&destination_type) {
        return Err(invalid("Destination type contains invalid characters"));
    }
    if destination_id.is_empty() {
        return Err(invalid("Please specify the destination id in the configuration file"));
    }
    if !is_valid_name(&destination_id) {
        return Err(invalid("Destination ID contains invalid characters"));
    }
    if node_type == NodeType::Ess {
        if raw.org_id.is_empty() {
            return Err(invalid("Please specify the organization id in the configuration file"));
        }
        if !is_valid_name(&raw.org_id) {
            return Err(invalid("Organization ID contains invalid characters"));
        }
    }
    Ok(Node {
        node_type,
        destination_type,
        destination_id,
        org_id: raw.org_id.clone(),
    })
}

/// Step 7.
fn listening(raw: &RawListening, node_type: NodeType) -> Result<Listening, ConfigError> {
    let listening_type = choices::listening_type(&raw.listening_type, node_type)?;
    let css = node_type == NodeType::Css;
    if listening_type.serves_tcp_plain() && raw.unsecure_listening_port == 0 {
        return Err(invalid(
            "Have requested unsecure API serving, but the UnsecureListeningPort is zero.",
        ));
    }
    if listening_type.serves_tcp_tls() && raw.secure_listening_port == 0 {
        return Err(invalid(
            "Have requested secure API serving, but the SecureListeningPort is zero.",
        ));
    }
    if css && listening_type.serves_tcp_tls() {
        if raw.server_certificate.is_empty() {
            return Err(invalid(
                "Have requested secure API serving, but no server certificate has been specified.",
            ));
        }
        if raw.server_key.is_empty() {
            return Err(invalid(
                "Have requested secure API serving, but no server private key has been specified.",
            ));
        }
    }
    let unix_socket_file_permissions = if listening_type.is_unix() {
        unix_socket(raw, css)?
    } else {
        // Unused without a Unix socket, and the original does not check it then either.
        u32::from_str_radix(&raw.unix_socket_file_permissions, 8).unwrap_or(0o660)
    };
    Ok(Listening {
        listening_type,
        sendfile_downloads: choices::sendfile_downloads(&raw.sendfile_downloads)?,
        unix_socket_file_permissions,
    })
}

/// Step 7 for the Unix-socket modes: the socket's file permissions.
fn unix_socket(raw: &RawListening, css: bool) -> Result<u32, ConfigError> {
    if css {
        return Err(invalid("Only an ESS can listen via Unix Sockets"));
    }
    if raw.listening_address.is_empty() {
        return Err(invalid(
            "When Listening via Unix Sockets, you must specify the Socket file using the ListeningAddress property",
        ));
    }
    u32::from_str_radix(&raw.unix_socket_file_permissions, 8).map_err(|e| {
        invalid(format!(
            "UnixSocketFilePermissions must be a valid octal number (e.g., 0660). Error: {e}"
        ))
    })
}

/// Step 14.
fn check_ess_http(raw: &Raw, node_type: NodeType, protocol: Protocol) -> Result<(), ConfigError> {
    if node_type == NodeType::Ess
        && protocol == Protocol::Http
        && (raw.http.http_css_host.is_empty() || raw.http.http_css_port == 0)
    {
        return Err(invalid(
            "Please specify the host and port of CSS for HTTP communication in the configuration file",
        ));
    }
    Ok(())
}

/// Steps 18–19.
fn storage(
    raw: &RawStorage,
    node_type: NodeType,
    persistence_root_path: PathBuf,
    data_uri_roots: Vec<PathBuf>,
    current_dir: CurrentDir<'_>,
) -> Result<Storage, ConfigError> {
    let storage_provider = choices::storage_provider(&raw.storage_provider, node_type)?;
    if storage_provider == StorageKind::Postgres {
        check_postgres_url(raw.postgres_url.expose())?;
    }
    let objects_data_path = objects_data_path(
        &raw.objects_data_path,
        storage_provider,
        &persistence_root_path,
        current_dir,
    )?;
    let upload_sources = upload_sources(&raw.upload_sources, node_type, &persistence_root_path)?;
    Ok(Storage {
        persistence_root_path,
        data_uri_roots,
        storage_provider,
        object_data_storage: choices::object_data_storage(&raw.object_data_storage)?,
        objects_data_path,
        upload_sources,
    })
}

/// `UploadSources` (an extension): an ESS's sources, read and checked now so that a mistake
/// stops the start naming the key, the source and the field.
fn upload_sources(setting: &str, node_type: NodeType, root: &Path) -> Result<Vec<super::UploadSource>, ConfigError> {
    if setting.trim().is_empty() {
        return Ok(Vec::new());
    }
    if node_type == NodeType::Css {
        return Err(invalid("UploadSources is for an ESS: a CSS uploads no files"));
    }
    super::upload_sources::load(setting, root).map_err(|e| invalid(format!("UploadSources: {e}")))
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

/// Step 19, plus the containment check the spec asks for (§11): data files outside the
/// persistence root would be refused at every access.
fn objects_data_path(
    value: &str,
    provider: StorageKind,
    root: &Path,
    current_dir: CurrentDir<'_>,
) -> Result<Option<PathBuf>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    if provider == StorageKind::InMemory {
        return Err(invalid(
            "Invalid ObjectsDataPath, it can only be set when StorageProvider is 'bolt' or empty",
        ));
    }
    let path = Path::new(value);
    let (path, root) = if path.is_absolute() && root.is_absolute() {
        (paths::clean(path), root.to_path_buf())
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
