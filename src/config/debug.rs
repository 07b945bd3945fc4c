//! The redacting `Debug` of [`Config`], used for the start-up dump to the trace
//! (security.md §9): secrets print as `<redacted>` (see `Secret`), and the credentials,
//! certificates and CA settings listed there print as `<...>` when set.

use std::fmt;

use super::Config;

/// Shows whether a sensitive but non-secret value (user name, certificate, CA) is set
/// without showing it.
struct Hidden<'a>(&'a str);

impl fmt::Debug for Hidden<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<...>")
        }
    }
}

/// `Debug` for `Config` from one list of its fields, each printed as is or, marked
/// `hidden`, through [`Hidden`]. The list destructures the struct without `..`, so a new
/// field does not compile until it is listed here, and so cannot leak by accident.
macro_rules! redacting_debug {
    ($($(#[$hidden:ident])? $field:ident),* $(,)?) => {
        impl fmt::Debug for Config {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let Config { $($field),* } = self;
                f.debug_struct("Config")
                    $(.field(stringify!($field), redacting_debug!(@value $(#[$hidden])? $field)))*
                    .finish()
            }
        }
    };
    (@value #[hidden] $field:ident) => { &Hidden($field) };
    (@value $field:ident) => { $field };
}

redacting_debug!(
    node_type,
    destination_type,
    destination_id,
    org_id,
    listening_type,
    listening_address,
    unix_socket_file_permissions,
    secure_listening_port,
    unsecure_listening_port,
    sendfile_downloads,
    #[hidden]
    server_certificate,
    server_key,
    http_server_read_header_timeout,
    authentication_handler,
    communication_protocol,
    css_on_wiotp,
    using_edge_connector,
    resend_interval,
    ess_ping_interval,
    remove_ess_registration_time,
    remove_ess_registration_seconds,
    enable_data_chunk,
    max_data_chunk_size,
    max_data_streams,
    max_inflight_chunks,
    object_queue_buffer_size,
    verify_queue_buffer_size,
    leadership_timeout,
    object_activation_interval,
    broker_address,
    broker_port,
    mqtt_client_id,
    #[hidden]
    mqtt_user_name,
    mqtt_password,
    mqtt_use_ssl,
    #[hidden]
    mqtt_ca_certificate,
    #[hidden]
    mqtt_ssl_cert,
    mqtt_ssl_key,
    mqtt_allow_invalid_certificates,
    mqtt_pinned_cert_fingerprints,
    mqtt_parallel_mode,
    http_css_host,
    http_css_port,
    http_css_use_ssl,
    data_compression,
    delta_transfer,
    #[hidden]
    http_css_ca_certificate,
    http_polling_interval,
    http_ess_client_timeout,
    http_ess_obj_client_timeout,
    ess_call_spi_retry_interval,
    ess_spi_max_retry,
    http_css_obj_download_concurrency_multiplier,
    persistence_root_path,
    storage_provider,
    object_data_storage,
    objects_data_path,
    storage_maintenance_interval,
    database_connect_timeout,
    postgres_url,
    #[hidden]
    postgres_ca_certificate,
    ess_consumed_objects_kept,
    allowed_data_file_extensions,
    data_uri_roots,
    max_object_size,
    upload_sources,
    allowed_certificate_extensions,
    allowed_key_extensions,
    log_level,
    trace_level,
    log_trace_destination,
    log_root_path,
    log_file_name,
    trace_root_path,
    trace_file_name,
    log_trace_file_size_kb,
    max_compressed_log_trace_files_number,
    log_trace_maintenance_interval,
    log_format,
    metrics_access,
    ignored_keys,
    unknown_keys,
    config_file_missing,
);
