//! Loading: defaults, precedence of environment and file, value parsing (exit 99),
//! unknown keys, and the redacted `Debug`.

use super::*;

// --- Defaults, precedence, unknown keys ---

#[test]
fn empty_css_config_starts_with_documented_defaults() {
    let c = ok("", &[]);
    assert!(c.is_css());
    assert_eq!(
        (c.destination_type.as_str(), c.destination_id.as_str()),
        ("Cloud", "Cloud")
    );
    assert_eq!(c.listening_type, ListeningType::Unsecure);
    assert_eq!((c.secure_listening_port, c.unsecure_listening_port), (8443, 8080));
    assert_eq!(c.communication_protocol, Protocol::Mqtt);
    assert_eq!(c.storage_provider, StorageKind::Sqlite);
    assert_eq!(c.persistence_root_path, PathBuf::from("/var/edge-sync-service/persist"));
    assert_eq!(c.unix_socket_file_permissions, 0o660);
    assert_eq!(c.resend_interval, 10);
    assert_eq!(c.leadership_timeout, 45);
    assert_eq!(c.max_data_chunk_size, 5_242_880);
    assert_eq!(c.http_polling_interval, 10);
    assert_eq!(c.http_css_obj_download_concurrency_multiplier, 1);
    assert_eq!(c.authentication_handler, "dummy");
    assert_eq!(c.log_level, "INFO");
    assert!(c.mqtt_use_ssl && c.enable_data_chunk);
    assert_eq!(c.mqtt_ca_certificate, "broker/ca/ca.cert.pem");
    assert_eq!(c.allowed_certificate_extensions, vec![".pem", ".crt", ".cert"]);
    assert_eq!(c.allowed_key_extensions, vec![".pem", ".key"]);
    assert_eq!(c.single_org(), None);
    assert!(c.unknown_keys.is_empty() && !c.config_file_missing);
    assert!(c.ignored_keys.is_empty());
}

#[test]
fn field_name_env_beats_tagged_env_beats_file_key_beats_alias() {
    let file = "OrgID from-file\nOrgId from-alias\n";
    let both = [("OrgID", "field-env"), ("ORG_ID", "tagged-env")];
    assert_eq!(ok(file, &both).org_id, "field-env");
    assert_eq!(ok(file, &[("ORG_ID", "tagged-env")]).org_id, "tagged-env");
    assert_eq!(ok(file, &[]).org_id, "from-file");
    assert_eq!(ok("OrgId from-alias\n", &[]).org_id, "from-alias");
    assert_eq!(ok("", &[]).org_id, "");
}

#[test]
fn set_but_empty_env_counts_as_present() {
    let c = ok(
        "OrgID from-file\nMQTTUseSSL true\n",
        &[("ORG_ID", ""), ("SECURE_LISTENING_PORT", ""), ("MQTT_USE_SSL", "")],
    );
    assert_eq!(c.org_id, "");
    assert_eq!(c.secure_listening_port, 0);
    assert!(!c.mqtt_use_ssl);
}

#[test]
fn aliases_are_file_only_and_names_case_sensitive() {
    let c = ok("", &[("OrgId", "alias-env"), ("orgid", "lower"), ("org_id", "lower")]);
    assert_eq!(c.org_id, "");
    let c = ok("DestinationId x\nMQTTClientId client-7\n", &[]);
    assert_eq!(c.mqtt_client_id, "client-7");
    assert!(c.unknown_keys.is_empty());
    let ess = ok(&ESS.replace("DestinationId", "DestinationID"), &[]);
    assert_eq!(ess.destination_id, "node1");
}

#[test]
fn legacy_documented_names_rank_below_real_names() {
    let legacy_file = "MQTTCertificatePinningFingerprints aa,bb\n";
    assert_eq!(ok(legacy_file, &[]).mqtt_pinned_cert_fingerprints, vec!["aa", "bb"]);
    let both = "MQTTCertificatePinningFingerprints aa\nMQTTPinnedCertFingerprints cc\n";
    assert_eq!(ok(both, &[]).mqtt_pinned_cert_fingerprints, vec!["cc"]);
    let env = [("MQTT_CERTIFICATE_PINNING_FINGERPRINTS", "dd")];
    assert_eq!(ok("", &env).mqtt_pinned_cert_fingerprints, vec!["dd"]);
    let c = ok("MQTTPinnedCertFingerprints cc\n", &env);
    assert_eq!(c.mqtt_pinned_cert_fingerprints, vec!["cc"]);
    // The Mongo keys are ignored, so which name was used shows in the report only.
    let mongo = ok(
        "MongoDBCertificatePinningFingerprints ee\n",
        &[("MONGO_SSL_CA_FILE", "/ca.pem")],
    );
    assert_eq!(
        origins(&mongo),
        vec![
            (
                "MongoCACertificate",
                "environment variable MONGO_SSL_CA_FILE".to_string()
            ),
            (
                "MongoPinnedCertFingerprints",
                "key MongoDBCertificatePinningFingerprints in the file 'test.conf'".to_string()
            ),
        ]
    );
    let real = ok(
        "",
        &[("MONGO_SSL_CA_FILE", "/a.pem"), ("MONGO_CA_CERTIFICATE", "/b.pem")],
    );
    assert_eq!(
        origins(&real),
        vec![(
            "MongoCACertificate",
            "environment variable MONGO_CA_CERTIFICATE".to_string()
        )]
    );
}

fn origins(config: &Config) -> Vec<(&'static str, String)> {
    config.ignored_keys.iter().map(|k| (k.key, k.origin.clone())).collect()
}

#[test]
fn unknown_file_keys_are_collected_in_file_order() {
    let c = ok(
        "Zebra 1\nOrgID x\nLogLevl DEBUG\nMQTTCertificatePinningFingerprints a\n",
        &[],
    );
    assert_eq!(c.unknown_keys, vec!["Zebra", "LogLevl"]);
}

#[test]
fn env_only_fields_use_their_field_name_as_tag() {
    let c = ok(
        "",
        &[("HTTPServerReadHeaderTimeout", "5"), ("PARALLEL_MQTT_MODE", "Large")],
    );
    assert_eq!(c.http_server_read_header_timeout, 5);
    assert_eq!(c.mqtt_parallel_mode, ParallelMode::Large);
    assert_eq!(
        ok("", &[("MQTT_PARALLEL_MODE", "bogus")]).mqtt_parallel_mode,
        ParallelMode::None
    );
}

#[test]
fn shipped_sample_file_works_on_css_and_fails_on_ess() {
    let sample =
        "# comment\nDestinationType\nDestinationId\nMQTTClientId\nPersistenceRootPath /var/wiotp-edge/persist\n";
    let css = ok(sample, &[]);
    assert_eq!(css.destination_type, "Cloud");
    assert_eq!(css.persistence_root_path, PathBuf::from("/var/wiotp-edge/persist"));
    assert_eq!(
        invalid(sample, &[("NODE_TYPE", "ESS")]),
        "Please specify the destination type in the configuration file"
    );
}

// --- Value parsing (load errors, exit 99) ---

#[test]
fn booleans_accept_t_f_1_0_and_reject_yes_on() {
    assert!(!ok("MQTTUseSSL F\n", &[]).mqtt_use_ssl);
    assert!(ok("CSSOnWIoTP 1\nCommunicationProtocol wiotp\nBrokerAddress [x]\n", &[]).css_on_wiotp);
    let message = load_error("MQTTUseSSL yes\n", &[]);
    assert!(message.contains("MQTTUseSSL") && message.contains("'yes'"), "{message}");
    let message = load_error("", &[("ALLOW_PRIVATE_IPS", "on")]);
    assert!(message.contains("AllowPrivateIPs") && message.contains("ALLOW_PRIVATE_IPS"));
}

#[test]
fn integers_reject_out_of_range_negative_and_missing_numbers() {
    let message = load_error("SecureListeningPort 70000\n", &[]);
    assert!(
        message.contains("SecureListeningPort") && message.contains("65535"),
        "{message}"
    );
    assert!(message.contains("in the file 'test.conf'"), "{message}");
    assert!(load_error("BrokerPort -1\n", &[]).contains("BrokerPort"));
    assert!(load_error("ObjectQueueBufferSize -5\n", &[]).contains("negative"));
    assert!(load_error("ResendInterval 40000\n", &[]).contains("ResendInterval"));
    assert!(load_error("", &[("RESEND_INTERVAL", "abc")]).contains("RESEND_INTERVAL"));
    assert_eq!(ok("ResendInterval 15s\n", &[]).resend_interval, 15);
    assert_eq!(
        ok("RemoveESSRegistrationTime -3\n", &[]).remove_ess_registration_time,
        -3
    );
}

#[test]
fn duplicate_file_key_is_a_load_error() {
    let message = load_error("LogLevel INFO\nLogLevel DEBUG\n", &[]);
    assert_eq!(
        message,
        "The property 'LogLevel' is found twice in the file 'test.conf'"
    );
}

#[test]
fn lists_split_on_commas_and_empty_extension_list_means_default() {
    let c = ok(
        "AllowedDataFileExtensions .bin,.TXT\n",
        &[("ALLOWED_KEY_EXTENSIONS", " , ")],
    );
    assert_eq!(c.allowed_data_file_extensions, vec![".bin", ".TXT"]);
    assert_eq!(c.allowed_key_extensions, vec![".pem", ".key"]);
}

#[test]
fn exit_codes_follow_the_original() {
    assert_eq!(ConfigError::Load(String::new()).exit_code(), 99);
    assert_eq!(ConfigError::Invalid(String::new()).exit_code(), 98);
}

#[test]
fn load_treats_missing_file_as_empty_and_flags_it() {
    let path = Path::new("/nonexistent-cfg-dir-51d3/sync.conf");
    let config = match Config::load(path, &|_| None) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert!(config.config_file_missing);
    assert!(config.is_css());
}

// --- Redaction ---

#[test]
fn debug_redacts_secrets_and_credentials() {
    let c = ok(
        "MQTTUserName mqtt-user-x\nMQTTPassword mqtt-pass-x\nMongoPassword mongo-pass-x\nMongoUsername mongo-user-x\nMQTTSSLCert /c.pem\nMQTTSSLKey /key-path-x.pem\n",
        &[("SERVER_KEY", "-----BEGIN PRIVATE KEY-----\nsecret-key-x\n-----END PRIVATE KEY-----")],
    );
    let dump = format!("{c:?}");
    for secret in [
        "mqtt-pass-x",
        "mongo-pass-x",
        "secret-key-x",
        "BEGIN PRIVATE",
        "key-path-x",
        "mqtt-user-x",
        "mongo-user-x",
    ] {
        assert!(!dump.contains(secret), "{secret} leaked: {dump}");
    }
    assert!(dump.contains("mqtt_password: <redacted>"), "{dump}");
    assert!(dump.contains("mqtt_user_name: <...>"), "{dump}");
    assert!(dump.contains("mqtt_ca_certificate: <...>"), "{dump}");
    assert!(dump.contains("server_certificate: \"\""), "{dump}");
    assert!(dump.contains("resend_interval: 10"), "{dump}");
    assert_eq!(c.mqtt_password.expose(), "mqtt-pass-x");
}
