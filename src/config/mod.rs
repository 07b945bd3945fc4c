//! Service configuration (spec `config.md`): the `sync.conf` file, the environment and
//! built-in defaults merged into one validated [`Config`], with derived values filled in.
//!
//! Data flow, in one step with no half-built `Config` in between: `file` parses the file,
//! `source` looks each key up in the environment and the file by precedence, `load` reads
//! every key (load errors, exit 99) and `ignored` the keys without effect here; `validate`
//! checks and decides the rest in the order of spec §5 (exit 98), with the closed value
//! sets in `choices`, the protocol and broker rules in `protocol` and the path rules in
//! `paths`; `assemble` builds the `Config` and `checks` runs the checks that need it
//! finished. `debug` redacts secrets. This module does no logging and opens no sockets or
//! stores, because logging is set up from its result: `main` reports `ignored_keys`,
//! `unknown_keys` and `config_file_missing` once it is.

mod assemble;
mod checks;
mod choices;
mod debug;
mod file;
mod ignored;
mod load;
mod paths;
mod protocol;
mod source;
mod types;
pub mod upload_sources;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use ignored::{ignored_key_names, IgnoredKey};
pub use types::{
    ListeningType, LogDestinations, LogFormat, MetricsAccess, NodeType, ObjectDataStorage, ParallelMode, Protocol,
    Secret, SendfileDownloads, StorageKind,
};
pub use upload_sources::{DailyWindow, Periodic, UploadSource, UPLOAD_REQUEST_TYPE};

/// Why the configuration could not be used. The message is meant to be shown as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a value could not be read (bad syntax, duplicate key, unparsable
    /// number or boolean). Exit status 99.
    #[error("{0}")]
    Load(String),
    /// The values were read but are not acceptable (spec §5). Exit status 98.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// The process exit status the original uses for this kind of failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Load(_) => 99,
            ConfigError::Invalid(_) => 98,
        }
    }
}

/// The effective configuration, complete and validated: [`Config::load`] builds it in one
/// step once every check has passed, and no field has an "undecided" value. Every key of
/// spec config.md §4 is a field named after it in snake case, except those of
/// [`ignored_key_names`] (reported in `ignored_keys` when set); durations are plain
/// integers in the unit named on the field. `Debug` redacts secrets and credentials
/// (security.md §9).
#[derive(Clone)]
pub struct Config {
    // --- Node identity (§4.1) ---
    /// `NodeType`.
    pub node_type: NodeType,
    /// `DestinationType`; always `Cloud` on a CSS.
    pub destination_type: String,
    /// `DestinationID` (file alias `DestinationId`); always `Cloud` on a CSS.
    pub destination_id: String,
    /// `OrgID` (file alias `OrgId`); required on an ESS, selects single-org mode on a CSS.
    pub org_id: String,

    // --- API listening (§4.2) ---
    /// `ListeningType`, defaulted per role when empty.
    pub listening_type: ListeningType,
    /// `ListeningAddress`: bind host for TCP modes, socket file for Unix modes (relative →
    /// under the persistence root, see [`Config::resolve_path`]).
    pub listening_address: String,
    /// `UnixSocketFilePermissions`, parsed from octal (default 0o660).
    pub unix_socket_file_permissions: u32,
    /// `SecureListeningPort`.
    pub secure_listening_port: u16,
    /// `UnsecureListeningPort`.
    pub unsecure_listening_port: u16,
    /// `SendfileDownloads` (extension): `auto` (default), `always` or `never`.
    pub sendfile_downloads: SendfileDownloads,
    /// `ServerCertificate`: inline PEM or path (relative → persistence root).
    pub server_certificate: String,
    /// `ServerKey`: inline PEM or path (relative → persistence root).
    pub server_key: Secret,
    /// `HTTPServerReadHeaderTimeout`, seconds; 0 = no limit.
    pub http_server_read_header_timeout: i64,
    /// `AuthenticationHandler` as given (`dummy` or `preset`, checked by the caller).
    pub authentication_handler: String,

    // --- CSS–ESS communication (§4.3) ---
    /// `CommunicationProtocol`, normalised.
    pub communication_protocol: Protocol,
    /// `CSSOnWIoTP`.
    pub css_on_wiotp: bool,
    /// `UsingEdgeConnector`.
    pub using_edge_connector: bool,
    /// `ResendInterval`, seconds (> 0).
    pub resend_interval: i16,
    /// `ESSPingInterval`, hours (> 0).
    pub ess_ping_interval: i16,
    /// `RemoveESSRegistrationTime`, days; ≤ 0 disables the clean-up.
    pub remove_ess_registration_time: i16,
    /// `RemoveESSRegistrationSeconds` (an extension of this implementation), seconds; when
    /// positive it replaces `RemoveESSRegistrationTime` with a finer period.
    pub remove_ess_registration_seconds: i64,
    /// `EnableDataChunk`; forced true for `mqtt` and `hybrid-mqtt`.
    pub enable_data_chunk: bool,
    /// `MaxDataChunkSize`, bytes (> 0).
    pub max_data_chunk_size: i64,
    /// `MaxDataStreams` (extension): data downloads served at once (> 0); further ones
    /// wait for a free stream. Each holds up to 1 MiB of buffers.
    pub max_data_streams: i64,
    /// `MaxInflightChunks`, clamped to at least 1 (at most 64 on a CSS).
    pub max_inflight_chunks: i64,
    /// `ObjectQueueBufferSize`; 0 became 1000 (CSS) / 2 (ESS).
    pub object_queue_buffer_size: u64,
    /// `VerifyQueueBufferSize`; 0 became 500.
    pub verify_queue_buffer_size: u64,
    /// `LeadershipTimeout`, seconds (> 0).
    pub leadership_timeout: i32,
    /// `ObjectActivationInterval`, seconds (> 0).
    pub object_activation_interval: i16,

    // --- MQTT (§4.4) ---
    /// `BrokerAddress`, derived when empty (§6).
    pub broker_address: String,
    /// `BrokerPort`, derived when 0 (§6).
    pub broker_port: u16,
    /// `MQTTClientID` (file alias `MQTTClientId`), derived when empty (§6).
    pub mqtt_client_id: String,
    /// `MQTTUserName`.
    pub mqtt_user_name: String,
    /// `MQTTPassword`.
    pub mqtt_password: Secret,
    /// `MQTTUseSSL`.
    pub mqtt_use_ssl: bool,
    /// `MQTTCACertificate`: path (relative → persistence root) or inline PEM.
    pub mqtt_ca_certificate: String,
    /// `MQTTSSLCert`: path or inline PEM.
    pub mqtt_ssl_cert: String,
    /// `MQTTSSLKey`: path or inline PEM.
    pub mqtt_ssl_key: Secret,
    /// `MQTTAllowInvalidCertificates` (ESS only).
    pub mqtt_allow_invalid_certificates: bool,
    /// `MQTTPinnedCertFingerprints` (legacy name `MQTTCertificatePinningFingerprints`).
    pub mqtt_pinned_cert_fingerprints: Vec<String>,
    /// `MQTTParallelMode` (environment variable `PARALLEL_MQTT_MODE`).
    pub mqtt_parallel_mode: ParallelMode,

    // --- HTTP transport (§4.5) ---
    /// `HTTPCSSHost`.
    pub http_css_host: String,
    /// `HTTPCSSPort`.
    pub http_css_port: u16,
    /// `HTTPCSSUseSSL`.
    pub http_css_use_ssl: bool,
    /// `DataCompression` (extension): object data between two nodes of this implementation
    /// travels zstd-compressed over HTTP when it compresses; negotiated per request, so an
    /// original node on the other side sees the original protocol.
    pub data_compression: bool,
    /// `DeltaTransfer` (extension): a new version of an object's data travels as the parts
    /// the receiver does not hold from the previous version, between two nodes of this
    /// implementation (asked for with headers and fields an original node ignores).
    pub delta_transfer: bool,
    /// `HTTPCSSCACertificate`: path (relative → persistence root) or inline PEM.
    pub http_css_ca_certificate: String,
    /// `HTTPPollingInterval`, seconds (> 0).
    pub http_polling_interval: u16,
    /// `HTTPESSClientTimeout`, seconds.
    pub http_ess_client_timeout: i64,
    /// `HTTPESSObjClientTimeout`, seconds.
    pub http_ess_obj_client_timeout: i64,
    /// `ESSCallSPIRetryInterval`, seconds.
    pub ess_call_spi_retry_interval: i32,
    /// `ESSSPIMaxRetry`, attempts.
    pub ess_spi_max_retry: i64,
    /// `HTTPCSSObjDownloadConcurrencyMultiplier`, multiplied by the CPU count.
    pub http_css_obj_download_concurrency_multiplier: i64,

    // --- Storage (§4.6) ---
    /// `PersistenceRootPath`, without trailing slash; `./x` and `../x` made absolute.
    pub persistence_root_path: PathBuf,
    /// `StorageProvider`, mapped to our stores.
    pub storage_provider: StorageKind,
    /// `ObjectDataStorage` (extension): with `postgres`, object data in the database
    /// (default) or in files under the persistence root.
    pub object_data_storage: ObjectDataStorage,
    /// `ObjectsDataPath`, absolute, inside the persistence root; `None` when not set.
    pub objects_data_path: Option<PathBuf>,
    /// `StorageMaintenanceInterval`, seconds (> 0).
    pub storage_maintenance_interval: i16,
    /// `DatabaseConnectTimeout`, seconds: how long a CSS on PostgreSQL keeps trying to reach
    /// the database at start.
    pub database_connect_timeout: i64,
    /// `PostgresURL` (an extension): the database of `StorageProvider postgres`, as a
    /// `postgres://user:password@host:port/db?sslmode=...` URL or a key=value string. Holds a
    /// password, so it never appears in the configuration dump.
    pub postgres_url: Secret,
    /// `PostgresCACertificate` (an extension): CA that the database's certificate must chain
    /// to when `sslmode` is `prefer` or `require` (inline PEM or a path, relative paths under
    /// the persistence root); empty = the system roots.
    pub postgres_ca_certificate: String,
    /// `ESSConsumedObjectsKept`, objects.
    pub ess_consumed_objects_kept: i64,
    /// `AllowedDataFileExtensions`; empty = all.
    pub allowed_data_file_extensions: Vec<String>,
    /// `DataURIRoots` (an extension of this implementation): directories that `sourceDataUri`
    /// and `destinationDataUri` files must lie in; relative entries are taken from the
    /// persistence root. Empty means the persistence root alone, as in the original.
    pub data_uri_roots: Vec<PathBuf>,
    /// `MaxObjectSize` (an extension of this implementation), bytes; larger object data is
    /// refused with 413. 0 means no limit, as in the original.
    pub max_object_size: i64,
    /// `UploadSources` (extension, ESS only): the folders whose files the ESS turns into
    /// objects for the CSS (`uploads`), given as inline JSON or the path of a JSON file
    /// (relative to the persistence root), read and checked at load; empty = none.
    pub upload_sources: Vec<UploadSource>,

    // --- Path validation (§4.7) ---
    /// `AllowedCertificateExtensions`; empty became `.pem,.crt,.cert`.
    pub allowed_certificate_extensions: Vec<String>,
    /// `AllowedKeyExtensions`; empty became `.pem,.key`.
    pub allowed_key_extensions: Vec<String>,

    // --- Logging and tracing (§4.8) ---
    /// `LogLevel` as given (interpreted by the logging set-up).
    pub log_level: String,
    /// `TraceLevel` as given.
    pub trace_level: String,
    /// `LogTraceDestination`: the recognised items of the comma-separated list.
    pub log_trace_destination: LogDestinations,
    /// `LogRootPath`.
    pub log_root_path: PathBuf,
    /// `LogFileName`.
    pub log_file_name: String,
    /// `TraceRootPath`.
    pub trace_root_path: PathBuf,
    /// `TraceFileName`.
    pub trace_file_name: String,
    /// `LogTraceFileSizeKB`, KiB (> 0 when logging to files).
    pub log_trace_file_size_kb: i64,
    /// `MaxCompressedlLogTraceFilesNumber` (sic in the key), files (≥ 0 when logging to files).
    pub max_compressed_log_trace_files_number: i64,
    /// `LogTraceMaintenanceInterval`, seconds (> 0).
    pub log_trace_maintenance_interval: i16,
    /// `LogFormat` (an extension of this implementation): `text` (default) or `json` lines.
    pub log_format: LogFormat,
    /// `MetricsAccess` (an extension of this implementation): who may read `/metrics`;
    /// `admin` (default), `open` or `off`.
    pub metrics_access: MetricsAccess,

    // --- About the load itself ---
    /// Keys of the original that were set but have no effect here (see
    /// [`ignored_key_names`]), in a fixed order.
    pub ignored_keys: Vec<IgnoredKey>,
    /// Keys found in the file that no field uses (probably typos), in file order.
    pub unknown_keys: Vec<String>,
    /// True when the configuration file did not exist and was treated as empty.
    pub config_file_missing: bool,
}

impl Config {
    /// Loads the file (a missing file counts as empty, see `config_file_missing`) and the
    /// environment (`env` returns a variable's value, `None` when unset), then validates
    /// and derives (spec §2–§6). Relative `./` and `../` paths use the current directory.
    pub fn load(file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let props = file::read(file)?;
        Config::from_props(&props, env, &std::env::current_dir)
    }

    /// Builds the configuration from parsed file properties, the environment and a source
    /// for the working directory (asked only when a relative path needs it).
    fn from_props(
        props: &file::FileProps,
        env: &dyn Fn(&str) -> Option<String>,
        cwd: &dyn Fn() -> std::io::Result<PathBuf>,
    ) -> Result<Config, ConfigError> {
        validate::validate(load::read(props, env)?, cwd)
    }

    /// The organization a single-org CSS serves (CSS, not on WIoTP, `OrgID` set); `None`
    /// on an ESS and on a multi-org CSS.
    pub fn single_org(&self) -> Option<&str> {
        single_org(self.node_type, self.css_on_wiotp, &self.org_id)
    }

    /// True when this node is a CSS.
    pub fn is_css(&self) -> bool {
        self.node_type == NodeType::Css
    }

    /// The CSS base URL an ESS uses with the `http` protocol:
    /// `http[s]://{HTTPCSSHost}:{HTTPCSSPort}`.
    pub fn css_base_url(&self) -> String {
        let scheme = if self.http_css_use_ssl { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.http_css_host, self.http_css_port)
    }

    /// Resolves a configured file location: absolute paths as given, relative ones under
    /// the persistence root (certificates, keys, CA files, a Unix `ListeningAddress`).
    pub fn resolve_path(&self, value: &str) -> PathBuf {
        self.persistence_root_path.join(value)
    }
}

/// See [`Config::single_org`]; also needed while the `Config` is being built.
fn single_org(node_type: NodeType, css_on_wiotp: bool, org_id: &str) -> Option<&str> {
    let single = node_type == NodeType::Css && !css_on_wiotp && !org_id.is_empty();
    single.then_some(org_id)
}
