//! Putting the values `load` read and the ones `validate` decided together into the
//! [`Config`]: the only place a `Config` is built, so none ever exists with a value still
//! to be decided. Also the derived values that cannot fail (§5 steps 8, 17 and 20).

use super::load::Raw;
use super::types::NodeType;
use super::validate::Decided;
use super::Config;

/// The finished configuration.
pub(super) fn config(raw: Raw, decided: Decided) -> Config {
    let Raw {
        node: _,
        listening,
        comms,
        mqtt,
        http,
        storage,
        extensions,
        logging,
        report,
    } = raw;
    let Decided {
        node,
        listening: chosen,
        communication_protocol,
        broker,
        mqtt_parallel_mode,
        storage: place,
        log_trace_destination,
        log_format,
        metrics_access,
    } = decided;
    let css = node.node_type == NodeType::Css;
    Config {
        node_type: node.node_type,
        destination_type: node.destination_type,
        destination_id: node.destination_id,
        org_id: node.org_id,

        listening_type: chosen.listening_type,
        listening_address: listening.listening_address,
        unix_socket_file_permissions: chosen.unix_socket_file_permissions,
        secure_listening_port: listening.secure_listening_port,
        unsecure_listening_port: listening.unsecure_listening_port,
        sendfile_downloads: chosen.sendfile_downloads,
        server_certificate: listening.server_certificate,
        server_key: listening.server_key,
        http_server_read_header_timeout: listening.http_server_read_header_timeout,
        authentication_handler: listening.authentication_handler,

        communication_protocol,
        css_on_wiotp: comms.css_on_wiotp,
        using_edge_connector: comms.using_edge_connector,
        resend_interval: comms.resend_interval,
        ess_ping_interval: comms.ess_ping_interval,
        remove_ess_registration_time: comms.remove_ess_registration_time,
        remove_ess_registration_seconds: comms.remove_ess_registration_seconds,
        // Step 8: brokers limit message sizes, so data sent through one always travels in chunks.
        enable_data_chunk: comms.enable_data_chunk || communication_protocol.uses_mqtt(),
        max_data_chunk_size: comms.max_data_chunk_size,
        max_data_streams: comms.max_data_streams,
        max_inflight_chunks: max_inflight_chunks(comms.max_inflight_chunks, css),
        object_queue_buffer_size: object_queue_buffer_size(comms.object_queue_buffer_size, css),
        verify_queue_buffer_size: match comms.verify_queue_buffer_size {
            0 => 500,
            value => value,
        },
        leadership_timeout: comms.leadership_timeout,
        object_activation_interval: comms.object_activation_interval,

        broker_address: broker.address,
        broker_port: broker.port,
        mqtt_client_id: broker.client_id,
        mqtt_user_name: broker.user_name,
        mqtt_password: mqtt.mqtt_password,
        mqtt_use_ssl: mqtt.mqtt_use_ssl,
        mqtt_ca_certificate: mqtt.mqtt_ca_certificate,
        mqtt_ssl_cert: mqtt.mqtt_ssl_cert,
        mqtt_ssl_key: mqtt.mqtt_ssl_key,
        mqtt_allow_invalid_certificates: mqtt.mqtt_allow_invalid_certificates,
        mqtt_pinned_cert_fingerprints: mqtt.mqtt_pinned_cert_fingerprints,
        mqtt_parallel_mode,

        http_css_host: http.http_css_host,
        http_css_port: http.http_css_port,
        http_css_use_ssl: http.http_css_use_ssl,
        data_compression: http.data_compression,
        delta_transfer: http.delta_transfer,
        http_css_ca_certificate: http.http_css_ca_certificate,
        http_polling_interval: http.http_polling_interval,
        http_ess_client_timeout: http.http_ess_client_timeout,
        http_ess_obj_client_timeout: http.http_ess_obj_client_timeout,
        ess_call_spi_retry_interval: http.ess_call_spi_retry_interval,
        ess_spi_max_retry: http.ess_spi_max_retry,
        http_css_obj_download_concurrency_multiplier: http.http_css_obj_download_concurrency_multiplier,

        persistence_root_path: place.persistence_root_path,
        storage_provider: place.storage_provider,
        object_data_storage: place.object_data_storage,
        objects_data_path: place.objects_data_path,
        storage_maintenance_interval: storage.storage_maintenance_interval,
        database_connect_timeout: storage.database_connect_timeout,
        postgres_url: storage.postgres_url,
        postgres_ca_certificate: storage.postgres_ca_certificate,
        ess_consumed_objects_kept: storage.ess_consumed_objects_kept,
        allowed_data_file_extensions: storage.allowed_data_file_extensions,
        data_uri_roots: place.data_uri_roots,
        max_object_size: storage.max_object_size,
        upload_sources: place.upload_sources,

        allowed_certificate_extensions: extensions.allowed_certificate_extensions,
        allowed_key_extensions: extensions.allowed_key_extensions,

        log_level: logging.log_level,
        trace_level: logging.trace_level,
        log_trace_destination,
        log_root_path: logging.log_root_path,
        log_file_name: logging.log_file_name,
        trace_root_path: logging.trace_root_path,
        trace_file_name: logging.trace_file_name,
        log_trace_file_size_kb: logging.log_trace_file_size_kb,
        max_compressed_log_trace_files_number: logging.max_compressed_log_trace_files_number,
        log_trace_maintenance_interval: logging.log_trace_maintenance_interval,
        log_format,
        metrics_access,

        ignored_keys: report.ignored_keys,
        unknown_keys: report.unknown_keys,
        config_file_missing: report.config_file_missing,
    }
}

/// Step 17: at least one chunk in flight, and at most 64 per ESS on a CSS.
fn max_inflight_chunks(value: i64, css: bool) -> i64 {
    let value = value.max(1);
    if css {
        value.min(64)
    } else {
        value
    }
}

/// Step 20: 0 means the role's default.
fn object_queue_buffer_size(value: u64, css: bool) -> u64 {
    match value {
        0 if css => 1000,
        0 => 2,
        value => value,
    }
}
