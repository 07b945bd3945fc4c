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

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..` so that a new field does not compile until it is
        // placed here, and so cannot leak by accident.
        let Config {
            node_type,
            destination_type,
            destination_id,
            org_id,
            listening_type,
            listening_address,
            unix_socket_file_permissions,
            secure_listening_port,
            unsecure_listening_port,
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
            max_inflight_chunks,
            object_queue_buffer_size,
            verify_queue_buffer_size,
            leadership_timeout,
            object_activation_interval,
            shutdown_quiesce_time,
            broker_address,
            broker_port,
            mqtt_client_id,
            mqtt_user_name,
            mqtt_password,
            mqtt_use_ssl,
            mqtt_ca_certificate,
            mqtt_ssl_cert,
            mqtt_ssl_key,
            mqtt_allow_invalid_certificates,
            mqtt_pinned_cert_fingerprints,
            mqtt_broker_connect_timeout,
            mqtt_parallel_mode,
            http_css_host,
            http_css_port,
            http_css_use_ssl,
            http_css_ca_certificate,
            http_polling_interval,
            http_ess_client_timeout,
            http_ess_obj_client_timeout,
            ess_call_spi_retry_interval,
            ess_spi_max_retry,
            http_css_obj_download_concurrency_multiplier,
            allow_private_ips,
            persistence_root_path,
            storage_provider,
            objects_data_path,
            storage_maintenance_interval,
            database_connect_timeout,
            postgres_url,
            postgres_ca_certificate,
            ess_consumed_objects_kept,
            allowed_data_file_extensions,
            data_uri_roots,
            max_object_size,
            mongo_address_csv,
            mongo_auth_mechanism,
            mongo_auth_db_name,
            mongo_db_name,
            mongo_username,
            mongo_password,
            mongo_use_ssl,
            mongo_ca_certificate,
            mongo_allow_invalid_certificates,
            mongo_pinned_cert_fingerprints,
            mongo_sleep_time_between_retry,
            mongo_session_cache_size,
            messaging_group_cache_expiration,
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
            unknown_keys,
            config_file_missing,
        } = self;
        f.debug_struct("Config")
            .field("node_type", node_type)
            .field("destination_type", destination_type)
            .field("destination_id", destination_id)
            .field("org_id", org_id)
            .field("listening_type", listening_type)
            .field("listening_address", listening_address)
            .field("unix_socket_file_permissions", unix_socket_file_permissions)
            .field("secure_listening_port", secure_listening_port)
            .field("unsecure_listening_port", unsecure_listening_port)
            .field("server_certificate", &Hidden(server_certificate))
            .field("server_key", server_key)
            .field("http_server_read_header_timeout", http_server_read_header_timeout)
            .field("authentication_handler", authentication_handler)
            .field("communication_protocol", communication_protocol)
            .field("css_on_wiotp", css_on_wiotp)
            .field("using_edge_connector", using_edge_connector)
            .field("resend_interval", resend_interval)
            .field("ess_ping_interval", ess_ping_interval)
            .field("remove_ess_registration_time", remove_ess_registration_time)
            .field("remove_ess_registration_seconds", remove_ess_registration_seconds)
            .field("enable_data_chunk", enable_data_chunk)
            .field("max_data_chunk_size", max_data_chunk_size)
            .field("max_inflight_chunks", max_inflight_chunks)
            .field("object_queue_buffer_size", object_queue_buffer_size)
            .field("verify_queue_buffer_size", verify_queue_buffer_size)
            .field("leadership_timeout", leadership_timeout)
            .field("object_activation_interval", object_activation_interval)
            .field("shutdown_quiesce_time", shutdown_quiesce_time)
            .field("broker_address", broker_address)
            .field("broker_port", broker_port)
            .field("mqtt_client_id", mqtt_client_id)
            .field("mqtt_user_name", &Hidden(mqtt_user_name))
            .field("mqtt_password", mqtt_password)
            .field("mqtt_use_ssl", mqtt_use_ssl)
            .field("mqtt_ca_certificate", &Hidden(mqtt_ca_certificate))
            .field("mqtt_ssl_cert", &Hidden(mqtt_ssl_cert))
            .field("mqtt_ssl_key", mqtt_ssl_key)
            .field("mqtt_allow_invalid_certificates", mqtt_allow_invalid_certificates)
            .field("mqtt_pinned_cert_fingerprints", mqtt_pinned_cert_fingerprints)
            .field("mqtt_broker_connect_timeout", mqtt_broker_connect_timeout)
            .field("mqtt_parallel_mode", mqtt_parallel_mode)
            .field("http_css_host", http_css_host)
            .field("http_css_port", http_css_port)
            .field("http_css_use_ssl", http_css_use_ssl)
            .field("http_css_ca_certificate", &Hidden(http_css_ca_certificate))
            .field("http_polling_interval", http_polling_interval)
            .field("http_ess_client_timeout", http_ess_client_timeout)
            .field("http_ess_obj_client_timeout", http_ess_obj_client_timeout)
            .field("ess_call_spi_retry_interval", ess_call_spi_retry_interval)
            .field("ess_spi_max_retry", ess_spi_max_retry)
            .field(
                "http_css_obj_download_concurrency_multiplier",
                http_css_obj_download_concurrency_multiplier,
            )
            .field("allow_private_ips", allow_private_ips)
            .field("persistence_root_path", persistence_root_path)
            .field("storage_provider", storage_provider)
            .field("objects_data_path", objects_data_path)
            .field("storage_maintenance_interval", storage_maintenance_interval)
            .field("database_connect_timeout", database_connect_timeout)
            .field("postgres_url", postgres_url)
            .field("postgres_ca_certificate", &Hidden(postgres_ca_certificate))
            .field("ess_consumed_objects_kept", ess_consumed_objects_kept)
            .field("allowed_data_file_extensions", allowed_data_file_extensions)
            .field("data_uri_roots", data_uri_roots)
            .field("max_object_size", max_object_size)
            .field("mongo_address_csv", mongo_address_csv)
            .field("mongo_auth_mechanism", mongo_auth_mechanism)
            .field("mongo_auth_db_name", mongo_auth_db_name)
            .field("mongo_db_name", mongo_db_name)
            .field("mongo_username", &Hidden(mongo_username))
            .field("mongo_password", mongo_password)
            .field("mongo_use_ssl", mongo_use_ssl)
            .field("mongo_ca_certificate", &Hidden(mongo_ca_certificate))
            .field("mongo_allow_invalid_certificates", mongo_allow_invalid_certificates)
            .field("mongo_pinned_cert_fingerprints", mongo_pinned_cert_fingerprints)
            .field("mongo_sleep_time_between_retry", mongo_sleep_time_between_retry)
            .field("mongo_session_cache_size", mongo_session_cache_size)
            .field("messaging_group_cache_expiration", messaging_group_cache_expiration)
            .field("allowed_certificate_extensions", allowed_certificate_extensions)
            .field("allowed_key_extensions", allowed_key_extensions)
            .field("log_level", log_level)
            .field("trace_level", trace_level)
            .field("log_trace_destination", log_trace_destination)
            .field("log_root_path", log_root_path)
            .field("log_file_name", log_file_name)
            .field("trace_root_path", trace_root_path)
            .field("trace_file_name", trace_file_name)
            .field("log_trace_file_size_kb", log_trace_file_size_kb)
            .field(
                "max_compressed_log_trace_files_number",
                max_compressed_log_trace_files_number,
            )
            .field("log_trace_maintenance_interval", log_trace_maintenance_interval)
            .field("log_format", log_format)
            .field("metrics_access", metrics_access)
            .field("unknown_keys", unknown_keys)
            .field("config_file_missing", config_file_missing)
            .finish()
    }
}
