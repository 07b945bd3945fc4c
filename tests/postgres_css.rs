//! A CSS on PostgreSQL (`StorageProvider postgres`, `POSTGRES_URL`) end to end: objects and
//! their data survive a `kill -9`, the metadata in the database and the data files under the
//! persistence root; an ESS refuses the PostgreSQL store.

mod common;

use common::{run_to_exit, NodeOptions, Role, TestNode};
use serde_json::json;
use std::time::Duration;

async fn css_on_postgres() -> TestNode {
    let url = common::postgres::shared().create_database().await;
    let mut options = NodeOptions::new(Role::Css);
    options.storage = "postgres";
    options.env.push(("POSTGRES_URL".into(), url));
    TestNode::start(options)
}

#[tokio::test]
async fn objects_and_data_survive_kill9_on_postgres() {
    let mut node = css_on_postgres().await;
    let api = node.api();
    let with_data = node.obj("model", "kept");
    let chunked = node.obj("model", "chunked");
    let meta_only = node.obj("model", "meta-only");
    let data = common::pattern(3 * 1024 * 1024 + 5, 31);
    api.create(&with_data, json!({"description": "on postgres"}), None)
        .await;
    assert_eq!(
        api.put_bytes(&format!("{with_data}/data"), data.clone()).await.status,
        204
    );
    api.create(&meta_only, json!({"consumers": 3}), None).await;
    api.create(&chunked, json!({}), None).await;
    // Half of a chunked upload: the session must survive the restart too.
    let first_half = api
        .request(reqwest::Method::PUT, &format!("{chunked}/data"), Some(common::ADMIN))
        .header("Content-Range", "bytes 0-9/20")
        .body(vec![7u8; 10])
        .send()
        .await
        .expect("first chunk");
    assert_eq!(first_half.status(), 204);
    assert!(api.data(&with_data).await == data, "data readable before the restart");
    let before = api.meta(&with_data).await;
    assert_eq!(before["description"], "on postgres");

    node.kill9();
    node.restart();
    let api = node.api();
    assert_eq!(api.meta(&with_data).await, before, "metadata unchanged");
    assert_eq!(api.status_of(&with_data).await, "ready");
    assert!(api.data(&with_data).await == data, "data byte-identical after kill -9");
    assert_eq!(api.meta(&meta_only).await["consumers"], 3);
    assert_eq!(api.status_of(&meta_only).await, "notReady");
    let second_half = api
        .request(reqwest::Method::PUT, &format!("{chunked}/data"), Some(common::ADMIN))
        .header("Content-Range", "bytes 10-19/20")
        .body(vec![8u8; 10])
        .send()
        .await
        .expect("second chunk");
    assert_eq!(second_half.status(), 204);
    assert_eq!(api.status_of(&chunked).await, "ready");
    let mut expected = vec![7u8; 10];
    expected.extend([8u8; 10]);
    assert_eq!(api.data(&chunked).await, expected);

    let listed = api.get(&format!("{}?all_objects=true", node.type_path("model"))).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json().as_array().map(Vec::len), Some(3));
    let deleted = api.delete_as(common::ADMIN, &meta_only).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_eq!(api.get(&meta_only).await.status, 404);
}

#[test]
fn an_ess_cannot_use_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "ESS"),
            ("DESTINATION_TYPE", "edge"),
            ("DESTINATION_ID", "node1"),
            ("ORG_ID", "org"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("COMMUNICATION_PROTOCOL", "http"),
            ("HTTP_CSS_HOST", "127.0.0.1"),
            ("HTTP_CSS_PORT", "9"),
            ("STORAGE_PROVIDER", "postgres"),
            ("POSTGRES_URL", "postgres://sync:secret@127.0.0.1:9/sync"),
        ],
        &["-c", &config],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(
        output.contains("StorageProvider") && output.contains("CSS only"),
        "{output}"
    );
    assert!(!output.contains("secret"), "{output}");
}

#[tokio::test]
async fn a_refused_login_stops_the_css_at_once() {
    let cluster = common::postgres::shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    let port = common::free_port().to_string();
    // The cluster trusts every local login but has no such database.
    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/no_such_database?sslmode=disable",
        cluster.port()
    );
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", &port),
            ("COMMUNICATION_PROTOCOL", "http"),
            ("STORAGE_PROVIDER", "postgres"),
            ("POSTGRES_URL", &url),
        ],
        &["-c", &config],
        Duration::from_secs(20),
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("no_such_database"), "{output}");
    assert!(!output.contains("hunter2"), "{output}");
}

/// A CA, and a server certificate for 127.0.0.1 signed by it (certificate PEM, key PEM).
fn database_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test DB CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    let certificate = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

/// `sslmode=require` with `PostgresCACertificate`: the CSS talks TLS to the database and
/// verifies its certificate; a database whose certificate the CA did not sign is refused at
/// once, not retried for `DatabaseConnectTimeout`.
#[tokio::test]
async fn the_database_connection_uses_verified_tls() {
    let (ca, certificate, key) = database_pki();
    let cluster = common::postgres::PgCluster::start_with_tls(&certificate, &key);
    let plain_url = cluster.create_database().await;
    let database = plain_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let tls_url = format!(
        "postgres://postgres@127.0.0.1:{}/{database}?sslmode=require",
        cluster.port()
    );

    let mut options = NodeOptions::new(Role::Css);
    options.storage = "postgres";
    options.env.push(("POSTGRES_URL".into(), tls_url.clone()));
    options.env.push(("POSTGRES_CA_CERTIFICATE".into(), ca));
    let node = TestNode::start(options);
    let api = node.api();
    let path = node.obj("model", "over-tls");
    api.create(&path, json!({}), Some(b"bytes")).await;
    assert_eq!(api.data(&path).await, b"bytes");

    let (client, connection) = tokio_postgres::connect(&plain_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let encrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'edge-sync-service' AND datname = $1",
            &[&database],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the CSS's connections are encrypted");
    let unencrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE NOT ssl AND application_name = 'edge-sync-service'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unencrypted, 0);
    drop(node);

    // Another CA: the handshake fails and the CSS stops at once.
    let (other_ca, _, _) = database_pki();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    let port = common::free_port().to_string();
    let started = std::time::Instant::now();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", &port),
            ("COMMUNICATION_PROTOCOL", "http"),
            ("STORAGE_PROVIDER", "postgres"),
            ("POSTGRES_URL", &tls_url),
            ("POSTGRES_CA_CERTIFICATE", &other_ca),
        ],
        &["-c", &config],
        Duration::from_secs(60),
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("certificate"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(30), "not retried: {output}");
}
