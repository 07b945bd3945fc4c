//! Reading every field from the sources with its names and default: the one place where
//! keys, environment variables and defaults are listed (spec config.md §4). Only load
//! errors (exit 99) happen here; values with a closed set of spellings are kept as text
//! in [`Choices`] for `validate`, which fills the matching enum fields of [`Config`].

use std::path::PathBuf;

use super::file::FileProps;
use super::source::{Key, Sources};
use super::types::{
    ListeningType, LogDestinations, LogFormat, MetricsAccess, NodeType, ParallelMode, Protocol, Secret, StorageKind,
};
use super::{Config, ConfigError};

/// Default extensions for certificate and CA paths (§4.7).
pub(super) const DEFAULT_CERTIFICATE_EXTENSIONS: &[&str] = &[".pem", ".crt", ".cert"];
/// Default extensions for private-key paths (§4.7).
pub(super) const DEFAULT_KEY_EXTENSIONS: &[&str] = &[".pem", ".key"];

/// Raw text of the fields that `validate` turns into enums or checked paths.
#[derive(Debug)]
pub(super) struct Choices {
    pub(super) node_type: String,
    pub(super) listening_type: String,
    pub(super) unix_socket_file_permissions: String,
    pub(super) communication_protocol: String,
    pub(super) mqtt_parallel_mode: String,
    pub(super) persistence_root_path: String,
    pub(super) storage_provider: String,
    pub(super) objects_data_path: String,
    pub(super) log_trace_destination: String,
    pub(super) log_format: String,
    pub(super) metrics_access: String,
}

/// Reads every field. The enum fields of the returned `Config` are placeholders until
/// `validate` has run; the returned value must not be used before that.
pub(super) fn read(props: &FileProps, env: &dyn Fn(&str) -> Option<String>) -> Result<(Config, Choices), ConfigError> {
    let mut s = Sources::new(env, props);
    let choices = Choices {
        node_type: s.string(Key::new("NodeType", "NODE_TYPE"), "CSS"),
        listening_type: s.string(Key::new("ListeningType", "LISTENING_TYPE"), ""),
        unix_socket_file_permissions: s.string(
            Key::new("UnixSocketFilePermissions", "UNIX_SOCKET_FILE_PERMISSIONS"),
            "0660",
        ),
        communication_protocol: s.string(Key::new("CommunicationProtocol", "COMMUNICATION_PROTOCOL"), "mqtt"),
        mqtt_parallel_mode: s.string(Key::new("MQTTParallelMode", "PARALLEL_MQTT_MODE"), ""),
        persistence_root_path: s.string(
            Key::new("PersistenceRootPath", "PERSISTENCE_ROOT_PATH"),
            "/var/edge-sync-service/persist",
        ),
        storage_provider: s.string(Key::new("StorageProvider", "STORAGE_PROVIDER"), ""),
        objects_data_path: s.string(Key::new("ObjectsDataPath", "OBJECTS_DATA_PATH"), ""),
        log_trace_destination: s.string(Key::new("LogTraceDestination", "LOG_TRACE_DESTINATION"), "file"),
        log_format: s.string(Key::new("LogFormat", "LOG_FORMAT"), "text"),
        metrics_access: s.string(Key::new("MetricsAccess", "METRICS_ACCESS"), "admin"),
    };

    let config = Config {
        node_type: NodeType::Css,
        destination_type: s.string(Key::new("DestinationType", "DESTINATION_TYPE"), ""),
        destination_id: s.string(
            Key::new("DestinationID", "DESTINATION_ID").file_alias("DestinationId"),
            "",
        ),
        org_id: s.string(Key::new("OrgID", "ORG_ID").file_alias("OrgId"), ""),

        listening_type: ListeningType::Unsecure,
        listening_address: s.string(Key::new("ListeningAddress", "LISTENING_ADDRESS"), ""),
        unix_socket_file_permissions: 0o660,
        secure_listening_port: s.int(Key::new("SecureListeningPort", "SECURE_LISTENING_PORT"), 8443)?,
        unsecure_listening_port: s.int(Key::new("UnsecureListeningPort", "UNSECURE_LISTENING_PORT"), 8080)?,
        server_certificate: s.string(Key::new("ServerCertificate", "SERVER_CERTIFICATE"), ""),
        server_key: Secret::new(s.string(Key::new("ServerKey", "SERVER_KEY"), "")),
        http_server_read_header_timeout: s.int(
            Key::new("HTTPServerReadHeaderTimeout", "HTTPServerReadHeaderTimeout"),
            60,
        )?,
        authentication_handler: s.string(Key::new("AuthenticationHandler", "AUTHENTICATION_HANDLER"), "dummy"),

        communication_protocol: Protocol::Mqtt,
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
        max_inflight_chunks: s.int(Key::new("MaxInflightChunks", "MAX_INFLIGHT_CHUNKS"), 1)?,
        object_queue_buffer_size: s.int(Key::new("ObjectQueueBufferSize", "OBJECT_QUEUE_BUFFER_SIZE"), 0)?,
        verify_queue_buffer_size: s.int(Key::new("VerifyQueueBufferSize", "VERIFY_QUEUE_BUFFER_SIZE"), 500)?,
        leadership_timeout: s.int(Key::new("LeadershipTimeout", "LEADERSHIP_TIMEOUT"), 45)?,
        object_activation_interval: s.int(Key::new("ObjectActivationInterval", "OBJECT_ACTIVATION_INTERVAL"), 30)?,
        shutdown_quiesce_time: s.int(Key::new("ShutdownQuiesceTime", "SHUTDOWN_QUIESCE_TIME"), 60)?,

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
        mqtt_broker_connect_timeout: s.int(Key::new("MQTTBrokerConnectTimeout", "MQTT_BROKER_CONNECT_TIMEOUT"), 300)?,
        mqtt_parallel_mode: ParallelMode::None,

        http_css_host: s.string(Key::new("HTTPCSSHost", "HTTP_CSS_HOST"), ""),
        http_css_port: s.int(Key::new("HTTPCSSPort", "HTTP_CSS_PORT"), 0)?,
        http_css_use_ssl: s.boolean(Key::new("HTTPCSSUseSSL", "HTTP_CSS_USE_SSL"), false)?,
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
        allow_private_ips: s.boolean(Key::new("AllowPrivateIPs", "ALLOW_PRIVATE_IPS"), true)?,

        persistence_root_path: PathBuf::new(),
        storage_provider: StorageKind::Sqlite,
        objects_data_path: None,
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
        mongo_address_csv: s.string(
            Key::new("MongoAddressCsv", "MONGO_ADDRESS_CSV"),
            "mongodb://localhost:27017",
        ),
        mongo_auth_mechanism: s.string(Key::new("MongoAuthMechanism", "MONGO_AUTH_MECHANISM"), "SCRAM-SHA-256"),
        mongo_auth_db_name: s.string(Key::new("MongoAuthDbName", "MONGO_AUTH_DB_NAME"), "admin"),
        mongo_db_name: s.string(Key::new("MongoDbName", "MONGO_DB_NAME"), "d_edge"),
        mongo_username: s.string(Key::new("MongoUsername", "MONGO_USERNAME"), ""),
        mongo_password: Secret::new(s.string(Key::new("MongoPassword", "MONGO_PASSWORD"), "")),
        mongo_use_ssl: s.boolean(Key::new("MongoUseSSL", "MONGO_USE_SSL"), false)?,
        mongo_ca_certificate: s.string(
            Key::new("MongoCACertificate", "MONGO_CA_CERTIFICATE").legacy_env("MONGO_SSL_CA_FILE"),
            "",
        ),
        mongo_allow_invalid_certificates: s.boolean(
            Key::new("MongoAllowInvalidCertificates", "MONGO_ALLOW_INVALID_CERTIFICATES"),
            false,
        )?,
        mongo_pinned_cert_fingerprints: s.list(
            Key::new("MongoPinnedCertFingerprints", "MONGO_PINNED_CERT_FINGERPRINTS")
                .legacy_name("MongoDBCertificatePinningFingerprints")
                .legacy_env("MONGODB_CERTIFICATE_PINNING_FINGERPRINTS"),
            &[],
        ),
        mongo_sleep_time_between_retry: s.int(
            Key::new("MongoSleepTimeBetweenRetry", "MONGO_SLEEP_TIME_BETWEEN_RETRY"),
            4000,
        )?,
        mongo_session_cache_size: s.int(Key::new("MongoSessionCacheSize", "MONGO_SESSION_CACHE_SIZE"), 1)?,
        messaging_group_cache_expiration: s.int(
            Key::new("MessagingGroupCacheExpiration", "MESSAGING_GROUP_CACHE_EXPIRATION"),
            60,
        )?,

        allowed_certificate_extensions: or_default(
            s.list(
                Key::new("AllowedCertificateExtensions", "ALLOWED_CERTIFICATE_EXTENSIONS"),
                DEFAULT_CERTIFICATE_EXTENSIONS,
            ),
            DEFAULT_CERTIFICATE_EXTENSIONS,
        ),
        allowed_key_extensions: or_default(
            s.list(
                Key::new("AllowedKeyExtensions", "ALLOWED_KEY_EXTENSIONS"),
                DEFAULT_KEY_EXTENSIONS,
            ),
            DEFAULT_KEY_EXTENSIONS,
        ),

        log_level: s.string(Key::new("LogLevel", "LOG_LEVEL"), "INFO"),
        trace_level: s.string(Key::new("TraceLevel", "TRACE_LEVEL"), "INFO"),
        log_trace_destination: LogDestinations::default(),
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
        log_format: LogFormat::Text,
        metrics_access: MetricsAccess::Admin,

        unknown_keys: Vec::new(),
        config_file_missing: props.missing,
    };
    let config = Config {
        unknown_keys: s.unknown_keys(),
        ..config
    };
    Ok((config, choices))
}

/// An explicitly empty extension list means "the default list" (§4.7).
fn or_default(list: Vec<String>, default: &[&str]) -> Vec<String> {
    if list.is_empty() {
        default.iter().map(|s| s.to_string()).collect()
    } else {
        list
    }
}
