//! Validation and derived values (spec config.md §5, §6) and our departures: storage
//! mapping, path checks, non-positive periods.

use super::*;

// --- Identity (§5 steps 1–6) ---

#[test]
fn persistence_root_is_made_absolute_and_slash_free() {
    assert_eq!(
        ok("PersistenceRootPath ./p/\n", &[]).persistence_root_path,
        PathBuf::from("/cwd/p")
    );
    assert_eq!(
        ok("PersistenceRootPath ../p\n", &[]).persistence_root_path,
        PathBuf::from("/p")
    );
    assert_eq!(
        ok("PersistenceRootPath /var/x/\n", &[]).persistence_root_path,
        PathBuf::from("/var/x")
    );
    assert_eq!(
        ok("PersistenceRootPath rel\n", &[]).persistence_root_path,
        PathBuf::from("rel")
    );
    assert!(invalid("", &[("PERSISTENCE_ROOT_PATH", "")]).contains("PersistenceRootPath"));
}

#[test]
fn working_directory_failure_is_reported() {
    let props = match file::parse("PersistenceRootPath ./p\n", "f") {
        Ok(props) => props,
        Err(e) => panic!("{e}"),
    };
    let cwd = || Err(std::io::Error::other("gone"));
    match Config::from_props(&props, &|_| None, &cwd) {
        Err(ConfigError::Invalid(m)) => {
            assert_eq!(m, "Couldn't determine the current directory. Error: gone")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn node_type_is_case_insensitive_and_checked() {
    assert!(ok("NodeType css\n", &[]).is_css());
    assert_eq!(ok(&ESS.replace("ESS", "eSs"), &[]).node_type, NodeType::Ess);
    assert_eq!(
        invalid("NodeType XSS\n", &[]),
        "The node type specified in the configuration file (XSS) is incorrect. It must be CSS or ESS."
    );
}

#[test]
fn css_forces_destination_to_cloud() {
    let c = ok("DestinationType a/b\nDestinationId x\nOrgID any/thing\n", &[]);
    assert_eq!(
        (c.destination_type.as_str(), c.destination_id.as_str()),
        ("Cloud", "Cloud")
    );
    assert_eq!(c.org_id, "any/thing"); // not character-checked on a CSS
}

#[test]
fn ess_requires_destination_and_org() {
    let c = ok(ESS, &[]);
    assert_eq!(
        (c.destination_type.as_str(), c.destination_id.as_str()),
        ("edge", "node1")
    );
    assert_eq!(c.org_id, "org1");
    assert_eq!(c.listening_type, ListeningType::Secure);
    let cases = [
        (
            "DestinationType edge",
            "DestinationType",
            "Please specify the destination type in the configuration file",
        ),
        (
            "DestinationType edge",
            "DestinationType a/b",
            "Destination type contains invalid characters",
        ),
        (
            "DestinationId node1",
            "DestinationId",
            "Please specify the destination id in the configuration file",
        ),
        (
            "DestinationId node1",
            "DestinationId a:b",
            "Destination ID contains invalid characters",
        ),
        (
            "OrgId org1",
            "OrgId",
            "Please specify the organization id in the configuration file",
        ),
        (
            "OrgId org1",
            "OrgId o%2F",
            "Organization ID contains invalid characters",
        ),
    ];
    for (from, to, message) in cases {
        assert_eq!(invalid(&ESS.replace(from, to), &[]), message, "{to}");
    }
}

#[test]
fn single_org_only_for_css_with_org_outside_wiotp() {
    assert_eq!(ok("OrgID acme\n", &[]).single_org(), Some("acme"));
    assert_eq!(ok("", &[]).single_org(), None);
    let on_wiotp = "OrgID acme\nCSSOnWIoTP true\nCommunicationProtocol wiotp\nBrokerAddress [{}]\n";
    assert_eq!(ok(on_wiotp, &[]).single_org(), None);
    assert_eq!(ok(ESS, &[]).single_org(), None);
}

// --- Listening (§5 step 7) ---

#[test]
fn listening_validation_messages() {
    assert_eq!(
        invalid("ListeningType tls\n", &[]),
        "ListeningType must be both, secure, unsecure, unix, or secure-unix"
    );
    assert_eq!(
        invalid("UnsecureListeningPort 0\n", &[]),
        "Have requested unsecure API serving, but the UnsecureListeningPort is zero."
    );
    let secure = "ListeningType Both\nServerCertificate c.pem\nServerKey k.pem\n";
    assert_eq!(ok(secure, &[]).listening_type, ListeningType::Both);
    assert_eq!(
        invalid(&format!("{secure}SecureListeningPort 0\n"), &[]),
        "Have requested secure API serving, but the SecureListeningPort is zero."
    );
    assert_eq!(
        invalid("ListeningType secure\nServerKey k.pem\n", &[]),
        "Have requested secure API serving, but no server certificate has been specified."
    );
    assert_eq!(
        invalid("ListeningType secure\nServerCertificate c.pem\n", &[]),
        "Have requested secure API serving, but no server private key has been specified."
    );
    // An ESS may listen securely without a certificate (a self-signed one is generated).
    assert_eq!(ok(ESS, &[]).listening_type, ListeningType::Secure);
}

#[test]
fn unix_listening_rules() {
    assert_eq!(
        invalid("ListeningType unix\nListeningAddress s\n", &[]),
        "Only an ESS can listen via Unix Sockets"
    );
    assert_eq!(
        invalid(&format!("{ESS}ListeningType secure-unix\n"), &[]),
        "When Listening via Unix Sockets, you must specify the Socket file using the ListeningAddress property"
    );
    let unix = format!("{ESS}ListeningType unix\nListeningAddress sock\n");
    let c = ok(&format!("{unix}UnixSocketFilePermissions 0600\n"), &[]);
    assert_eq!(
        (c.listening_type, c.unix_socket_file_permissions),
        (ListeningType::Unix, 0o600)
    );
    assert_eq!(
        c.resolve_path(&c.listening_address),
        PathBuf::from("/var/edge-sync-service/persist/sock")
    );
    let message = invalid(&format!("{unix}UnixSocketFilePermissions 0698\n"), &[]);
    assert!(message.starts_with("UnixSocketFilePermissions must be a valid octal number (e.g., 0660). Error: "));
    // Not checked when no Unix socket is used.
    assert_eq!(
        ok("UnixSocketFilePermissions rw\n", &[]).unix_socket_file_permissions,
        0o660
    );
}

#[test]
fn unix_socket_must_stay_inside_persistence_root() {
    let escape = format!("{ESS}PersistenceRootPath /p\nListeningType unix\nListeningAddress ../etc/sock\n");
    assert_eq!(
        invalid(&escape, &[]),
        "Invalid ListeningAddress (Unix socket) path: invalid file path: path traversal detected: /etc/sock is outside allowed directory /p"
    );
    let absolute = format!("{ESS}ListeningType unix\nListeningAddress /run/sync.sock\n");
    assert_eq!(ok(&absolute, &[]).listening_address, "/run/sync.sock");
    let inner = format!("{ESS}ListeningType unix\nListeningAddress a/../b.sock\n");
    assert!(build(&inner, &[]).is_ok());
}

// --- Protocols and brokers (§5 steps 8–14) ---

#[test]
fn protocol_recognition_errors() {
    let none = "Invalid communication protocol, please choose either HTTP or MQTT or WIoTP";
    assert_eq!(invalid("CommunicationProtocol amqp\n", &[]), none);
    assert_eq!(invalid("", &[("COMMUNICATION_PROTOCOL", " http")]), none);
    assert_eq!(invalid("", &[("COMMUNICATION_PROTOCOL", "")]), none);
    assert_eq!(
        invalid(&format!("{ESS}CommunicationProtocol mqtt,http\n"), &[]),
        "Invalid communication protocol, please choose one of HTTP, MQTT or WIoTP"
    );
    assert_eq!(
        invalid("CommunicationProtocol mqtt,wiotp\n", &[]),
        "Invalid communication protocol, please choose either MQTT or WIoTP"
    );
}

#[test]
fn protocols_are_normalised_and_mqtt_forces_chunking() {
    let css = |p: &str| ok(&format!("CommunicationProtocol {p}\nEnableDataChunk false\n"), &[]);
    let cases = [
        ("http,mqtt", Protocol::HybridMqtt, true),
        ("HTTP,WIoTP", Protocol::HybridWiotp, false),
        ("http,bogus", Protocol::Http, false),
        ("MQTT", Protocol::Mqtt, true),
        ("wiotp", Protocol::Wiotp, false),
    ];
    for (value, protocol, chunked) in cases {
        let c = css(value);
        assert_eq!(
            (c.communication_protocol, c.enable_data_chunk),
            (protocol, chunked),
            "{value}"
        );
    }
    let ess = |p: &str| {
        ok(
            &format!("{ESS}CommunicationProtocol {p}\nHTTPCSSHost h\nHTTPCSSPort 1\nMQTTUserName u\nMQTTPassword pw\n"),
            &[],
        )
    };
    assert_eq!(ess("http").communication_protocol, Protocol::Http);
    assert_eq!(ess("wiotp").communication_protocol, Protocol::Wiotp);
    assert_eq!(ess("mqtt").communication_protocol, Protocol::Mqtt);
    assert_eq!(ess("http").css_base_url(), "http://h:1");
    let tls = ok(
        &format!("{ESS}CommunicationProtocol http\nHTTPCSSHost css.example\nHTTPCSSPort 8443\nHTTPCSSUseSSL true\n"),
        &[],
    );
    assert_eq!(tls.css_base_url(), "https://css.example:8443");
}

#[test]
fn css_broker_rules() {
    assert_eq!(
        invalid("CSSOnWIoTP true\nCommunicationProtocol mqtt\n", &[]),
        "CSS on Watson IoTP should use wiotp protocol"
    );
    assert_eq!(
        invalid(
            "CSSOnWIoTP true\nCommunicationProtocol wiotp\nBrokerAddress host\n",
            &[]
        ),
        "Please specify the broker addresses for messaging groups"
    );
    assert_eq!(
        invalid("BrokerAddress [{\"messagingGroup\":\"g\"}]\n", &[]),
        "Please provide one broker address for CSS outside WIoTP"
    );
    // The broker address is not looked at with plain http.
    assert!(build("CommunicationProtocol http\nBrokerAddress [x]\n", &[]).is_ok());
    assert_eq!(
        invalid("MQTTPassword secret\n", &[]),
        "Please specify the user name for MQTT communication in the configuration file"
    );
}

#[test]
fn css_broker_defaults() {
    let c = ok("", &[]);
    assert_eq!((c.broker_address.as_str(), c.broker_port), ("localhost", 1883));
    assert!(c
        .mqtt_client_id
        .strip_prefix("CSS-")
        .is_some_and(|n| n.parse::<u64>().is_ok()));
    let single = ok("OrgID acme\nCommunicationProtocol wiotp,http\n", &[]);
    assert_eq!(single.broker_address, "acme.messaging.internetofthings.ibmcloud.com");
    assert_eq!(
        (single.broker_port, single.mqtt_client_id.as_str()),
        (8883, "A:acme:CSS")
    );
    let multi = ok("CommunicationProtocol wiotp\n", &[]);
    assert_eq!(multi.broker_address, "messaging.internetofthings.ibmcloud.com");
    assert_eq!(multi.mqtt_client_id, "");
    let kept = ok("BrokerAddress b\nBrokerPort 9\nMQTTClientID me\n", &[]);
    assert_eq!(
        (
            kept.broker_address.as_str(),
            kept.broker_port,
            kept.mqtt_client_id.as_str()
        ),
        ("b", 9, "me")
    );
}

#[test]
fn ess_broker_rules_and_defaults() {
    assert_eq!(
        invalid(&format!("{ESS}BrokerAddress [a]\n"), &[]),
        "Please provide one broker address"
    );
    assert_eq!(
        invalid(&format!("{ESS}CommunicationProtocol wiotp\n"), &[]),
        "Please provide password for MQTT connection"
    );
    let mqtt = ok(ESS, &[]);
    assert_eq!((mqtt.broker_address.as_str(), mqtt.broker_port), ("localhost", 1883));
    assert!(mqtt.mqtt_client_id.starts_with("ESS-"));
    let direct = ok(&format!("{ESS}CommunicationProtocol wiotp\nMQTTPassword token\n"), &[]);
    assert_eq!(direct.mqtt_user_name, "use-token-auth");
    assert_eq!(direct.mqtt_client_id, "g:org1:edge:node1");
    assert_eq!(direct.broker_address, "org1.messaging.internetofthings.ibmcloud.com");
    assert_eq!(direct.broker_port, 8883);
    let connector = ok(
        &format!("{ESS}CommunicationProtocol wiotp\nUsingEdgeConnector true\n"),
        &[],
    );
    assert_eq!(connector.mqtt_client_id, "a:sync-service");
    assert_eq!(
        (connector.broker_address.as_str(), connector.broker_port),
        ("edge-connector", 8883)
    );
    assert_eq!(
        invalid(
            &format!("{ESS}CommunicationProtocol wiotp\nUsingEdgeConnector true\nMQTTPassword p\n"),
            &[]
        ),
        "Please specify the user name for MQTT communication in the configuration file"
    );
}

#[test]
fn ess_http_needs_css_host_and_port() {
    let message = "Please specify the host and port of CSS for HTTP communication in the configuration file";
    assert_eq!(
        invalid(&format!("{ESS}CommunicationProtocol http\nHTTPCSSPort 80\n"), &[]),
        message
    );
    assert_eq!(
        invalid(&format!("{ESS}CommunicationProtocol http\nHTTPCSSHost h\n"), &[]),
        message
    );
}

// --- Steps 16–20 ---

#[test]
fn parallel_mode_values() {
    assert_eq!(
        ok("MQTTParallelMode Medium\n", &[]).mqtt_parallel_mode,
        ParallelMode::Medium
    );
    assert_eq!(
        ok("MQTTParallelMode none\n", &[]).mqtt_parallel_mode,
        ParallelMode::None
    );
    assert_eq!(
        invalid("MQTTParallelMode huge\n", &[]),
        "Invalid MQTTParallelMode, please specify any off: 'none', 'small', 'medium', 'large', or leave as empty string"
    );
}

#[test]
fn inflight_chunks_are_clamped() {
    assert_eq!(ok("MaxInflightChunks 0\n", &[]).max_inflight_chunks, 1);
    assert_eq!(ok("MaxInflightChunks 100\n", &[]).max_inflight_chunks, 64);
    assert_eq!(
        ok(&format!("{ESS}MaxInflightChunks 100\n"), &[]).max_inflight_chunks,
        100
    );
}

#[test]
fn storage_provider_mapping() {
    assert_eq!(ok(ESS, &[]).storage_provider, StorageKind::Sqlite);
    assert_eq!(ok("StorageProvider Bolt\n", &[]).storage_provider, StorageKind::Sqlite);
    assert_eq!(
        ok("StorageProvider inmemory\n", &[]).storage_provider,
        StorageKind::InMemory
    );
    assert_eq!(
        ok(&format!("{ESS}StorageProvider InMemory\n"), &[]).storage_provider,
        StorageKind::InMemory
    );
    let mongo = invalid("StorageProvider mongo\n", &[]);
    assert!(
        mongo.contains("MongoDB") && mongo.contains("embedded") && !mongo.contains('\n'),
        "{mongo}"
    );
    let other = invalid("StorageProvider redis\n", &[]);
    assert!(other.contains("StorageProvider") && other.contains("'bolt'") && other.contains("'inmemory'"));
}

#[test]
fn postgres_is_for_a_css_with_a_readable_url() {
    let url = "postgres://sync:pa55word@db.example:5432/sync?sslmode=require";
    let c = ok("StorageProvider Postgres\n", &[("POSTGRES_URL", url)]);
    assert_eq!(c.storage_provider, StorageKind::Postgres);
    assert_eq!(c.postgres_url.expose(), url);
    let dump = format!("{c:?}");
    assert!(
        !dump.contains("pa55word") && dump.contains("postgres_url: <redacted>"),
        "{dump}"
    );
    let ess = invalid(&format!("{ESS}StorageProvider postgres\n"), &[("POSTGRES_URL", url)]);
    assert!(ess.contains("StorageProvider") && ess.contains("CSS only"), "{ess}");
    let missing = invalid("StorageProvider postgres\n", &[]);
    assert!(missing.contains("PostgresURL"), "{missing}");
    let secret = "postgres://sync:pa55word@db.example/sync?sslmode=verify-full";
    let bad = invalid("StorageProvider postgres\n", &[("PostgresURL", secret)]);
    assert!(
        bad.starts_with("Invalid PostgresURL") && !bad.contains("pa55word"),
        "{bad}"
    );
    let hostless = invalid("StorageProvider postgres\n", &[("PostgresURL", "dbname=sync")]);
    assert!(hostless.contains("no host"), "{hostless}");
}

#[test]
fn objects_data_path_rules() {
    let root = "PersistenceRootPath /p\n";
    assert_eq!(
        invalid(
            &format!("{root}StorageProvider inmemory\nObjectsDataPath /p/data\n"),
            &[]
        ),
        "Invalid ObjectsDataPath, it can only be set when StorageProvider is 'bolt' or empty"
    );
    let c = ok(&format!("{root}ObjectsDataPath /p/data/\n"), &[]);
    assert_eq!(c.objects_data_path, Some(PathBuf::from("/p/data")));
    let relative = ok(
        "PersistenceRootPath /cwd\nStorageProvider bolt\nObjectsDataPath ./d\n",
        &[],
    );
    assert_eq!(relative.objects_data_path, Some(PathBuf::from("/cwd/d")));
    let outside = invalid(&format!("{root}ObjectsDataPath /q/data\n"), &[]);
    assert!(
        outside.starts_with("Invalid ObjectsDataPath (/q/data): invalid file path: path traversal detected"),
        "{outside}"
    );
    assert_eq!(ok("", &[]).objects_data_path, None);
}

#[test]
fn queue_size_defaults_per_role() {
    let css = ok("VerifyQueueBufferSize 0\n", &[]);
    assert_eq!(
        (css.object_queue_buffer_size, css.verify_queue_buffer_size),
        (1000, 500)
    );
    assert_eq!(ok(ESS, &[]).object_queue_buffer_size, 2);
    assert_eq!(ok("ObjectQueueBufferSize 7\n", &[]).object_queue_buffer_size, 7);
}

// --- Step 21 and our own checks ---

#[test]
fn absolute_certificate_paths_are_checked() {
    let secure = "ListeningType secure\n";
    assert_eq!(
        invalid(
            &format!("{secure}ServerCertificate /etc/c.txt\nServerKey /etc/k.key\n"),
            &[]
        ),
        "Invalid ServerCertificate path: invalid file path: file extension .txt not allowed"
    );
    assert_eq!(
        invalid(
            &format!("{secure}ServerCertificate /etc/c.crt\nServerKey /etc/k.crt\n"),
            &[]
        ),
        "Invalid ServerKey path: invalid file path: file extension .crt not allowed"
    );
    let inline = [
        ("SERVER_CERTIFICATE", "-----BEGIN CERTIFICATE-----\nAA\n"),
        ("SERVER_KEY", "-----BEGIN PRIVATE KEY-----\nBB\n"),
    ];
    assert!(build(secure, &inline).is_ok());
    assert!(build(&format!("{secure}ServerCertificate c.txt\nServerKey k.txt\n"), &[]).is_ok());
    assert_eq!(
        invalid("MQTTCACertificate /etc/ca.der\n", &[]),
        "Invalid MQTTCACertificate path: invalid file path: file extension .der not allowed"
    );
    assert!(invalid("MQTTSSLKey /k.cert\n", &[]).starts_with("Invalid MQTTSSLKey path"));
    assert!(build("MQTTCACertificate /etc/ca.der\nMQTTUseSSL false\n", &[]).is_ok());
    assert!(build(
        "AllowedCertificateExtensions .der\nMQTTCACertificate /etc/ca.DER\n",
        &[]
    )
    .is_ok());
}

#[test]
fn non_positive_periods_are_rejected_by_name() {
    for key in [
        "ResendInterval",
        "ESSPingInterval",
        "ObjectActivationInterval",
        "StorageMaintenanceInterval",
        "HTTPPollingInterval",
        "LogTraceMaintenanceInterval",
        "LeadershipTimeout",
        "MaxDataChunkSize",
    ] {
        let message = invalid(&format!("{key} 0\n"), &[]);
        assert_eq!(message, format!("{key} must be greater than zero (got 0)"));
    }
    assert!(invalid("ResendInterval -2\n", &[]).contains("ResendInterval"));
    assert!(build("RemoveESSRegistrationTime 0\n", &[]).is_ok());
}

// --- Our extensions: log format and metrics access ---

#[test]
fn log_format_is_text_or_json() {
    assert_eq!(ok("", &[]).log_format, LogFormat::Text);
    assert_eq!(ok("LogFormat JSON\n", &[]).log_format, LogFormat::Json);
    assert_eq!(
        ok("LogFormat json\n", &[("LOG_FORMAT", "text")]).log_format,
        LogFormat::Text
    );
    assert_eq!(
        invalid("", &[("LOG_FORMAT", "yaml")]),
        "Invalid LogFormat 'yaml', please specify 'text' or 'json'"
    );
}

#[test]
fn metrics_access_is_admin_open_or_off() {
    assert_eq!(ok("", &[]).metrics_access, MetricsAccess::Admin);
    assert_eq!(ok("MetricsAccess Open\n", &[]).metrics_access, MetricsAccess::Open);
    assert_eq!(ok("", &[("METRICS_ACCESS", "off")]).metrics_access, MetricsAccess::Off);
    assert_eq!(
        invalid("MetricsAccess public\n", &[]),
        "Invalid MetricsAccess 'public', please specify 'admin', 'open' or 'off'"
    );
}
