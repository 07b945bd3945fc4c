//! Reading every key from the sources with its names and default: the one place where
//! keys, environment variables and defaults are listed (spec config.md §4), apart from the
//! ignored keys of `ignored`. Only load errors (exit 99) happen here, so that a value that
//! cannot be read is reported before any that is wrong. What `validate` still has to decide
//! stays text here (the `Raw*` fields typed `String` where `Config` has an enum or a path);
//! everything else already has its final type.
//!
//! Keys are read in the order of [`Config`]'s fields: when several values are unreadable,
//! the first one in that order is reported.
//!
//! [`Config`]: super::Config

use std::path::PathBuf;

use super::file::FileProps;
use super::ignored::{self, IgnoredKey};
use super::source::{Key, Sources};
use super::types::Secret;
use super::ConfigError;

/// Default extensions for certificate and CA paths (§4.7).
const DEFAULT_CERTIFICATE_EXTENSIONS: &[&str] = &[".pem", ".crt", ".cert"];
/// Default extensions for private-key paths (§4.7).
const DEFAULT_KEY_EXTENSIONS: &[&str] = &[".pem", ".key"];

/// Everything read from the sources, grouped as in spec §4.
pub(super) struct Raw {
    pub(super) node: RawNode,
    pub(super) listening: RawListening,
    pub(super) comms: Comms,
    pub(super) mqtt: RawMqtt,
    pub(super) http: Http,
    pub(super) storage: RawStorage,
    pub(super) extensions: Extensions,
    pub(super) logging: RawLogging,
    pub(super) report: Report,
}

/// §4.1.
pub(super) struct RawNode {
    pub(super) node_type: String,
    pub(super) destination_type: String,
    pub(super) destination_id: String,
    pub(super) org_id: String,
}

/// §4.2.
pub(super) struct RawListening {
    pub(super) listening_type: String,
    pub(super) listening_address: String,
    pub(super) unix_socket_file_permissions: String,
    pub(super) secure_listening_port: u16,
    pub(super) unsecure_listening_port: u16,
    pub(super) sendfile_downloads: String,
    pub(super) server_certificate: String,
    pub(super) server_key: Secret,
    pub(super) http_server_read_header_timeout: i64,
    pub(super) authentication_handler: String,
}

/// §4.3.
pub(super) struct Comms {
    pub(super) communication_protocol: String,
    pub(super) css_on_wiotp: bool,
    pub(super) using_edge_connector: bool,
    pub(super) resend_interval: i16,
    pub(super) ess_ping_interval: i16,
    pub(super) remove_ess_registration_time: i16,
    pub(super) remove_ess_registration_seconds: i64,
    pub(super) enable_data_chunk: bool,
    pub(super) max_data_chunk_size: i64,
    pub(super) max_data_streams: i64,
    pub(super) max_inflight_chunks: i64,
    pub(super) object_queue_buffer_size: u64,
    pub(super) verify_queue_buffer_size: u64,
    pub(super) leadership_timeout: i32,
    pub(super) object_activation_interval: i16,
}

/// §4.4.
pub(super) struct RawMqtt {
    pub(super) broker_address: String,
    pub(super) broker_port: u16,
    pub(super) mqtt_client_id: String,
    pub(super) mqtt_user_name: String,
    pub(super) mqtt_password: Secret,
    pub(super) mqtt_use_ssl: bool,
    pub(super) mqtt_ca_certificate: String,
    pub(super) mqtt_ssl_cert: String,
    pub(super) mqtt_ssl_key: Secret,
    pub(super) mqtt_allow_invalid_certificates: bool,
    pub(super) mqtt_pinned_cert_fingerprints: Vec<String>,
    pub(super) mqtt_parallel_mode: String,
}

/// §4.5.
pub(super) struct Http {
    pub(super) http_css_host: String,
    pub(super) http_css_port: u16,
    pub(super) http_css_use_ssl: bool,
    pub(super) http_css_ca_certificate: String,
    pub(super) http_polling_interval: u16,
    pub(super) http_ess_client_timeout: i64,
    pub(super) http_ess_obj_client_timeout: i64,
    pub(super) ess_call_spi_retry_interval: i32,
    pub(super) ess_spi_max_retry: i64,
    pub(super) http_css_obj_download_concurrency_multiplier: i64,
    pub(super) data_compression: bool,
    pub(super) delta_transfer: bool,
}

/// §4.6.
pub(super) struct RawStorage {
    pub(super) persistence_root_path: String,
    pub(super) storage_provider: String,
    pub(super) object_data_storage: String,
    pub(super) objects_data_path: String,
    pub(super) storage_maintenance_interval: i16,
    pub(super) database_connect_timeout: i64,
    pub(super) postgres_url: Secret,
    pub(super) postgres_ca_certificate: String,
    pub(super) ess_consumed_objects_kept: i64,
    pub(super) allowed_data_file_extensions: Vec<String>,
    pub(super) data_uri_roots: Vec<PathBuf>,
    pub(super) max_object_size: i64,
    pub(super) upload_sources: String,
}

/// §4.7.
pub(super) struct Extensions {
    pub(super) allowed_certificate_extensions: Vec<String>,
    pub(super) allowed_key_extensions: Vec<String>,
}

/// §4.8 and our `LogFormat` and `MetricsAccess`.
pub(super) struct RawLogging {
    pub(super) log_level: String,
    pub(super) trace_level: String,
    pub(super) log_trace_destination: String,
    pub(super) log_root_path: PathBuf,
    pub(super) log_file_name: String,
    pub(super) trace_root_path: PathBuf,
    pub(super) trace_file_name: String,
    pub(super) log_trace_file_size_kb: i64,
    pub(super) max_compressed_log_trace_files_number: i64,
    pub(super) log_trace_maintenance_interval: i16,
    pub(super) log_format: String,
    pub(super) metrics_access: String,
}

/// What the load noticed about the sources themselves, for `main` to report.
pub(super) struct Report {
    pub(super) ignored_keys: Vec<IgnoredKey>,
    pub(super) unknown_keys: Vec<String>,
    pub(super) config_file_missing: bool,
}

/// Reads every key.
pub(super) fn read(props: &FileProps, env: &dyn Fn(&str) -> Option<String>) -> Result<Raw, ConfigError> {
    let mut s = Sources::new(env, props);
    let node = read_node(&mut s);
    let listening = read_listening(&mut s)?;
    let comms = read_comms(&mut s)?;
    let mqtt = read_mqtt(&mut s)?;
    let http = read_http(&mut s)?;
    let storage = read_storage(&mut s)?;
    let ignored_keys = ignored::read(&mut s)?;
    let extensions = read_extensions(&mut s);
    let logging = read_logging(&mut s)?;
    let report = Report {
        ignored_keys,
        // Only now is every key consulted.
        unknown_keys: s.unknown_keys(),
        config_file_missing: props.missing,
    };
    Ok(Raw {
        node,
        listening,
        comms,
        mqtt,
        http,
        storage,
        extensions,
        logging,
        report,
    })
}

fn read_node(s: &mut Sources<'_>) -> RawNode {
    RawNode {
        node_type: s.string(Key::new("NodeType", "NODE_TYPE"), "CSS"),
        destination_type: s.string(Key::new("DestinationType", "DESTINATION_TYPE"), ""),
        destination_id: s.string(
            Key::new("DestinationID", "DESTINATION_ID").file_alias("DestinationId"),
            "",
        ),
        org_id: s.string(Key::new("OrgID", "ORG_ID").file_alias("OrgId"), ""),
    }
}

fn read_listening(s: &mut Sources<'_>) -> Result<RawListening, ConfigError> {
    Ok(RawListening {
        listening_type: s.string(Key::new("ListeningType", "LISTENING_TYPE"), ""),
        listening_address: s.string(Key::new("ListeningAddress", "LISTENING_ADDRESS"), ""),
        unix_socket_file_permissions: s.string(
            Key::new("UnixSocketFilePermissions", "UNIX_SOCKET_FILE_PERMISSIONS"),
            "0660",
        ),
        secure_listening_port: s.int(Key::new("SecureListeningPort", "SECURE_LISTENING_PORT"), 8443)?,
        unsecure_listening_port: s.int(Key::new("UnsecureListeningPort", "UNSECURE_LISTENING_PORT"), 8080)?,
        sendfile_downloads: s.string(Key::new("SendfileDownloads", "SENDFILE_DOWNLOADS"), "auto"),
        server_certificate: s.string(Key::new("ServerCertificate", "SERVER_CERTIFICATE"), ""),
        server_key: Secret::new(s.string(Key::new("ServerKey", "SERVER_KEY"), "")),
        // The original's environment variable for this key is the key itself.
        http_server_read_header_timeout: s.int(
            Key::new("HTTPServerReadHeaderTimeout", "HTTPServerReadHeaderTimeout"),
            60,
        )?,
        authentication_handler: s.string(Key::new("AuthenticationHandler", "AUTHENTICATION_HANDLER"), "dummy"),
    })
}

fn read_comms(s: &mut Sources<'_>) -> Result<Comms, ConfigError> {
    Ok(Comms {
        communication_protocol: s.string(Key::new("CommunicationProtocol", "COMMUNICATION_PROTOCOL"), "mqtt"),
        css_on_wiotp: s.boolean(Key::new("CSSOnWIoTP", "CSS_ON_WIOTP"), false)?,
        using_edge_connector: s.boolean(Key::new("UsingEdgeConnector", "USING_EDGE_CONNECTOR"), false)?,
        resend_interval: s.int(Key::new("ResendInterval", "RESEND_INTERVAL"), 10)?,
        ess_ping_interval: s.int(Key::new("ESSPingInterval", "ESS_PING_INTERVAL"), 1)?,
        remove_ess_registration_time: s.int(
            Key::new("RemoveESSRegistrationTime", "REMOVE_ESS_REGISTRATION_TIME"),
            30,
        )?,
        remove_ess_registration_seconds: s.int(
            Key::new("RemoveESSRegistrationSeconds", "REMOVE_ESS_REGISTRATION_SECONDS"),
            0,
        )?,
        enable_data_chunk: s.boolean(Key::new("EnableDataChunk", "ENABLE_DATA_CHUNK"), true)?,
        max_data_chunk_size: s.int(Key::new("MaxDataChunkSize", "MAX_DATA_CHUNK_SIZE"), 5_242_880)?,
        max_data_streams: s.int(Key::new("MaxDataStreams", "MAX_DATA_STREAMS"), 64)?,
        max_inflight_chunks: s.int(Key::new("MaxInflightChunks", "MAX_INFLIGHT_CHUNKS"), 1)?,
        object_queue_buffer_size: s.int(Key::new("ObjectQueueBufferSize", "OBJECT_QUEUE_BUFFER_SIZE"), 0)?,
        verify_queue_buffer_size: s.int(Key::new("VerifyQueueBufferSize", "VERIFY_QUEUE_BUFFER_SIZE"), 500)?,
        leadership_timeout: s.int(Key::new("LeadershipTimeout", "LEADERSHIP_TIMEOUT"), 45)?,
        object_activation_interval: s.int(Key::new("ObjectActivationInterval", "OBJECT_ACTIVATION_INTERVAL"), 30)?,
    })
}

fn read_mqtt(s: &mut Sources<'_>) -> Result<RawMqtt, ConfigError> {
    Ok(RawMqtt {
        broker_address: s.string(Key::new("BrokerAddress", "BROKER_ADDRESS"), ""),
        broker_port: s.int(Key::new("BrokerPort", "BROKER_PORT"), 0)?,
        mqtt_client_id: s.string(
            Key::new("MQTTClientID", "MQTT_CLIENT_ID").file_alias("MQTTClientId"),
            "",
        ),
        mqtt_user_name: s.string(Key::new("MQTTUserName", "MQTT_USER_NAME"), ""),
        mqtt_password: Secret::new(s.string(Key::new("MQTTPassword", "MQTT_PASSWORD"), "")),
        mqtt_use_ssl: s.boolean(Key::new("MQTTUseSSL", "MQTT_USE_SSL"), true)?,
        mqtt_ca_certificate: s.string(
            Key::new("MQTTCACertificate", "MQTT_CA_CERTIFICATE"),
            "broker/ca/ca.cert.pem",
        ),
        mqtt_ssl_cert: s.string(Key::new("MQTTSSLCert", "MQTT_SSL_CERT"), ""),
        mqtt_ssl_key: Secret::new(s.string(Key::new("MQTTSSLKey", "MQTT_SSL_KEY"), "")),
        mqtt_allow_invalid_certificates: s.boolean(
            Key::new("MQTTAllowInvalidCertificates", "MQTT_ALLOW_INVALID_CERTIFICATES"),
            false,
        )?,
        mqtt_pinned_cert_fingerprints: s.list(
            Key::new("MQTTPinnedCertFingerprints", "MQTT_PINNED_CERT_FINGERPRINTS")
                .legacy_name("MQTTCertificatePinningFingerprints")
                .legacy_env("MQTT_CERTIFICATE_PINNING_FINGERPRINTS"),
            &[],
        ),
        mqtt_parallel_mode: s.string(Key::new("MQTTParallelMode", "PARALLEL_MQTT_MODE"), ""),
    })
}

fn read_http(s: &mut Sources<'_>) -> Result<Http, ConfigError> {
    // For some of these keys the original's environment variable is the key itself.
    Ok(Http {
        http_css_host: s.string(Key::new("HTTPCSSHost", "HTTP_CSS_HOST"), ""),
        http_css_port: s.int(Key::new("HTTPCSSPort", "HTTP_CSS_PORT"), 0)?,
        http_css_use_ssl: s.boolean(Key::new("HTTPCSSUseSSL", "HTTP_CSS_USE_SSL"), false)?,
        data_compression: s.boolean(Key::new("DataCompression", "DATA_COMPRESSION"), true)?,
        delta_transfer: s.boolean(Key::new("DeltaTransfer", "DELTA_TRANSFER"), true)?,
        http_css_ca_certificate: s.string(Key::new("HTTPCSSCACertificate", "HTTP_CSS_CA_CERTIFICATE"), ""),
        http_polling_interval: s.int(Key::new("HTTPPollingInterval", "HTTP_POLLING_INTERVAL"), 10)?,
        http_ess_client_timeout: s.int(Key::new("HTTPESSClientTimeout", "HTTPESSClientTimeout"), 120)?,
        http_ess_obj_client_timeout: s.int(Key::new("HTTPESSObjClientTimeout", "HTTPESSObjClientTimeout"), 600)?,
        ess_call_spi_retry_interval: s.int(Key::new("ESSCallSPIRetryInterval", "ESS_CALL_SPI_RETRY_INTERVAL"), 2)?,
        ess_spi_max_retry: s.int(Key::new("ESSSPIMaxRetry", "ESSSPIMaxRetry"), 1000)?,
        http_css_obj_download_concurrency_multiplier: s.int(
            Key::new(
                "HTTPCSSObjDownloadConcurrencyMultiplier",
                "HTTPCSSObjDownloadConcurrencyMultiplier",
            ),
            1,
        )?,
    })
}

fn read_storage(s: &mut Sources<'_>) -> Result<RawStorage, ConfigError> {
    Ok(RawStorage {
        persistence_root_path: s.string(
            Key::new("PersistenceRootPath", "PERSISTENCE_ROOT_PATH"),
            "/var/edge-sync-service/persist",
        ),
        storage_provider: s.string(Key::new("StorageProvider", "STORAGE_PROVIDER"), ""),
        object_data_storage: s.string(Key::new("ObjectDataStorage", "OBJECT_DATA_STORAGE"), "database"),
        objects_data_path: s.string(Key::new("ObjectsDataPath", "OBJECTS_DATA_PATH"), ""),
        storage_maintenance_interval: s.int(
            Key::new("StorageMaintenanceInterval", "STORAGE_MAINTENANCE_INTERVAL"),
            30,
        )?,
        database_connect_timeout: s.int(Key::new("DatabaseConnectTimeout", "DATABASE_CONNECT_TIMEOUT"), 300)?,
        postgres_url: Secret::new(s.string(Key::new("PostgresURL", "POSTGRES_URL"), "")),
        postgres_ca_certificate: s.string(Key::new("PostgresCACertificate", "POSTGRES_CA_CERTIFICATE"), ""),
        ess_consumed_objects_kept: s.int(Key::new("ESSConsumedObjectsKept", "ESS_CONSUMED_OBJECTS_KEPT"), 1000)?,
        allowed_data_file_extensions: s.list(
            Key::new("AllowedDataFileExtensions", "ALLOWED_DATA_FILE_EXTENSIONS"),
            &[],
        ),
        data_uri_roots: s
            .list(Key::new("DataURIRoots", "DATA_URI_ROOTS"), &[])
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        max_object_size: s.int(Key::new("MaxObjectSize", "MAX_OBJECT_SIZE"), 0)?,
        upload_sources: s.string(Key::new("UploadSources", "UPLOAD_SOURCES"), ""),
    })
}

fn read_extensions(s: &mut Sources<'_>) -> Extensions {
    Extensions {
        allowed_certificate_extensions: extension_list(
            s,
            Key::new("AllowedCertificateExtensions", "ALLOWED_CERTIFICATE_EXTENSIONS"),
            DEFAULT_CERTIFICATE_EXTENSIONS,
        ),
        allowed_key_extensions: extension_list(
            s,
            Key::new("AllowedKeyExtensions", "ALLOWED_KEY_EXTENSIONS"),
            DEFAULT_KEY_EXTENSIONS,
        ),
    }
}

fn read_logging(s: &mut Sources<'_>) -> Result<RawLogging, ConfigError> {
    Ok(RawLogging {
        log_level: s.string(Key::new("LogLevel", "LOG_LEVEL"), "INFO"),
        trace_level: s.string(Key::new("TraceLevel", "TRACE_LEVEL"), "INFO"),
        log_trace_destination: s.string(Key::new("LogTraceDestination", "LOG_TRACE_DESTINATION"), "file"),
        log_root_path: PathBuf::from(s.string(Key::new("LogRootPath", "LOG_ROOT_PATH"), "/var/edge-sync-service/log")),
        log_file_name: s.string(Key::new("LogFileName", "LOG_FILE_NAME"), "sync-service"),
        trace_root_path: PathBuf::from(s.string(
            Key::new("TraceRootPath", "TRACE_ROOT_PATH"),
            "/var/edge-sync-service/trace",
        )),
        trace_file_name: s.string(Key::new("TraceFileName", "TRACE_FILE_NAME"), "sync-service"),
        log_trace_file_size_kb: s.int(Key::new("LogTraceFileSizeKB", "LOG_TRACE_FILE_SIZE_KB"), 20_000)?,
        max_compressed_log_trace_files_number: s.int(
            Key::new(
                "MaxCompressedlLogTraceFilesNumber",
                "MAX_COMPRESSED_LOG_TRACE_FILES_NUMBER",
            ),
            50,
        )?,
        log_trace_maintenance_interval: s.int(
            Key::new("LogTraceMaintenanceInterval", "LOG_TRACE_MAINTENANCE_INTERVAL"),
            60,
        )?,
        log_format: s.string(Key::new("LogFormat", "LOG_FORMAT"), "text"),
        metrics_access: s.string(Key::new("MetricsAccess", "METRICS_ACCESS"), "admin"),
    })
}

/// An explicitly empty extension list means "the default list" (§4.7).
fn extension_list(s: &mut Sources<'_>, key: Key, default: &[&str]) -> Vec<String> {
    let list = s.list(key, default);
    if list.is_empty() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        list
    }
}
