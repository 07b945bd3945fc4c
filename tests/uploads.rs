//! Files from the edge, end to end, by trigger: an ESS with upload sources (`UploadSources`)
//! turns the files of a folder into objects that reach the CSS with the file's bytes, size
//! and SHA-256, periodically, on change once the file settled (found by a scan or by the
//! folder's change events), when asked through the ESS API, and when the CSS asks one node
//! or every node of a type; a mistake in the sources stops the start. Real CSS and ESS
//! processes over HTTP (the transport is the ESS's usual delivery of its own objects, tested
//! on both transports elsewhere), and over MQTT for the CSS's request and the statuses it
//! reads; every wait has a deadline.

mod common;

use common::sync::{listed, wait_registered, Net, Transport};
use common::uploads::*;
use common::{pattern, ADMIN, EDGE_NODE};
use serde_json::json;

#[tokio::test]
async fn a_periodic_source_sends_each_matching_file_once() {
    let (_net, css, ess) = start(
        "periodic",
        json!([source("logs", json!({"periodic": {"intervalSeconds": 1}}))]),
    )
    .await;
    let folder = inbox(&ess);
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let a = pattern(200 * 1024, 3);
    std::fs::write(folder.join("a.log"), &a).unwrap();
    std::fs::write(folder.join("sub/c.log"), b"nested").unwrap();
    std::fs::write(folder.join("skipped.txt"), b"not a log").unwrap();

    let (meta, data) = on_css(&css, &ess, "a.log").await;
    assert_integrity(&meta, &data, &a);
    assert_eq!(meta["originType"], "edge");
    assert_eq!(meta["originID"], "periodic");
    let (nested, nested_data) = on_css(&css, &ess, "sub~c.log").await;
    assert_integrity(&nested, &nested_data, b"nested");
    let status = wait_delivered(&css, &ess, "logs", "a.log").await;
    assert_eq!(status["sha256"], sha256_hex(&a));
    assert_eq!(status["objectID"], "a.log");

    // A later file goes with a later pass; the passes in between sent nothing again.
    std::fs::write(folder.join("later.log"), b"later").unwrap();
    on_css(&css, &ess, "later.log").await;
    let again = listed(&css, "upload", "a.log").await.expect("a.log still on the CSS");
    assert_eq!(again["instanceID"], meta["instanceID"], "a.log was not sent twice");
    assert!(listed(&css, "upload", "skipped.txt").await.is_none());
    let sends = ess.log().matches("file sent as an object").count();
    assert_eq!(sends, 3, "one send per file:\n{}", ess.log());

    // A file gone from the folder, delivered, is forgotten: off the list and the state.
    std::fs::remove_file(folder.join("a.log")).unwrap();
    eventually("a.log forgotten", &[&css, &ess], async || {
        (!uploads(&ess).await.iter().any(|u| u["path"] == "a.log")).then_some(())
    })
    .await;
    let state = std::fs::read_to_string(ess.root().join("sync/uploads/state.json")).unwrap();
    assert!(!state.contains("\"a.log\"") && state.contains("later.log"), "{state}");
}

#[tokio::test]
async fn an_on_change_source_waits_for_the_file_to_settle() {
    let sources = json!([{
        "name": "growing",
        "folder": "inbox",
        "patterns": ["*.log"],
        "objectType": "upload",
        "settleSeconds": 3,
        "triggers": {"onChange": {"scanSeconds": 1}},
    }]);
    let (_net, css, ess) = start("onchange", sources).await;
    let path = inbox(&ess).join("grow.log");
    // The writer rewrites the file, a little longer each time, ten times as often as the
    // settle time: the file is never complete until the writer stops.
    let mut written = Vec::new();
    for round in 0..8u8 {
        let piece = pattern(10_000, round);
        written.extend_from_slice(&piece);
        std::fs::write(&path, &written).unwrap();
        assert!(
            listed(&css, "upload", "grow.log").await.is_none(),
            "nothing is sent while the file keeps changing"
        );
        assert!(
            !uploads(&ess).await.iter().any(|u| u["path"] == "grow.log"),
            "an unsettled file is not even selected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let (meta, data) = on_css(&css, &ess, "grow.log").await;
    assert_integrity(&meta, &data, &written);
    wait_delivered(&css, &ess, "growing", "grow.log").await;
}

#[tokio::test]
async fn a_change_in_the_folder_is_seen_without_waiting_for_the_scan() {
    // The folder is scanned once an hour: within the test's deadline only its change events
    // can bring these files.
    let sources = json!([{
        "name": "watched",
        "folder": "inbox",
        "patterns": ["*.log"],
        "objectType": "upload",
        "settleSeconds": 1,
        "triggers": {"onChange": {"scanSeconds": 3600}},
    }]);
    let net = Net::new(Transport::Http);
    let css = net.css(&[]);
    // The folder is there at the start, so its watch is placed then.
    let ess = ess_with(&net, &css, "watched", sources, &[], &[("inbox/readme.txt", "no log")]);
    wait_registered(&css, &ess, "watched").await;
    let first = pattern(30_000, 4);
    std::fs::write(inbox(&ess).join("first.log"), &first).unwrap();
    let (meta, got) = on_css(&css, &ess, "first.log").await;
    assert_integrity(&meta, &got, &first);
    wait_delivered(&css, &ess, "watched", "first.log").await;

    // Long after the start's scan: a subfolder made now, and a file written into it in
    // pieces, sent once complete.
    let day = inbox(&ess).join("day1");
    std::fs::create_dir_all(&day).unwrap();
    let second = pattern(40_000, 5);
    let mut file = std::fs::File::create(day.join("second.log")).unwrap();
    for piece in second.chunks(10_000) {
        std::io::Write::write_all(&mut file, piece).unwrap();
        file.sync_data().unwrap();
    }
    drop(file);
    let (meta, got) = on_css(&css, &ess, "day1~second.log").await;
    assert_integrity(&meta, &got, &second);
    assert!(
        listed(&css, "upload", "readme.txt").await.is_none(),
        "a file the patterns do not want stays"
    );
}

#[tokio::test]
async fn an_explicit_trigger_sends_a_source_now() {
    let sources = json!([
        source("manual", json!({"explicit": true})),
        {
            "name": "timed",
            "folder": "elsewhere",
            "patterns": ["*"],
            "objectType": "upload",
            "triggers": {"periodic": {"intervalSeconds": 3600}},
        },
    ]);
    let (_net, css, ess) = start("explicit", sources).await;
    let api = ess.api();
    let data = pattern(70_000, 8);
    std::fs::write(inbox(&ess).join("now.log"), &data).unwrap();

    // Refusals: plain-text 4xx.
    let unknown = api.post_as(ADMIN, "/api/v1/uploads/nothing").await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.text().contains("no upload source is named"),
        "{}",
        unknown.text()
    );
    let not_explicit = api.post_as(ADMIN, "/api/v1/uploads/timed").await;
    assert_eq!(not_explicit.status, 409);
    assert!(
        not_explicit.text().contains("triggers.explicit"),
        "{}",
        not_explicit.text()
    );
    assert_eq!(api.post_as(EDGE_NODE, "/api/v1/uploads/manual").await.status, 403);
    assert_eq!(api.get_as(EDGE_NODE, "/api/v1/uploads").await.status, 403);
    assert_eq!(api.delete_as(ADMIN, "/api/v1/uploads").await.status, 405);

    let accepted = api.post_as(ADMIN, "/api/v1/uploads/manual").await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let (meta, got) = on_css(&css, &ess, "now.log").await;
    assert_integrity(&meta, &got, &data);
    wait_delivered(&css, &ess, "manual", "now.log").await;

    // The node's statuses reach the CSS too, as an object of the node.
    wait_delivered_on_css(&css, &ess, "edge~explicit", "now.log", &data).await;
}

mod asked {
    use super::*;

    #[tokio::test]
    async fn http() {
        the_css_asks_a_node_to_upload(Transport::Http).await;
    }

    #[tokio::test]
    async fn mqtt() {
        the_css_asks_a_node_to_upload(Transport::Mqtt).await;
    }
}

async fn the_css_asks_a_node_to_upload(transport: Transport) {
    let (_net, css, ess) = start_on(
        transport,
        "asked",
        json!([source("remote-logs", json!({"remote": true}))]),
    )
    .await;
    let data = pattern(50_000, 2);
    std::fs::write(inbox(&ess).join("wanted.log"), &data).unwrap();

    // The request: an object of the reserved type for that node, naming the source.
    let request = css.obj("edge-sync-upload-request", "r1");
    css.api()
        .create(
            &request,
            json!({
                "destinationType": "edge",
                "destinationID": "asked",
                "noData": true,
                "description": "remote-logs",
            }),
            None,
        )
        .await;
    let (meta, got) = on_css(&css, &ess, "wanted.log").await;
    assert_integrity(&meta, &got, &data);
    wait_delivered(&css, &ess, "remote-logs", "wanted.log").await;
    // The ESS marked the request consumed once it acted on it: the CSS learns it and the
    // request goes.
    eventually("the request consumed", &[&css, &ess], async || {
        let response = css.api().get(&format!("{request}/destinations")).await;
        (response.status == 404 || response.text().contains("consumed")).then_some(())
    })
    .await;
    // The node's statuses reach the CSS as an object of the node.
    wait_delivered_on_css(&css, &ess, "edge~asked", "wanted.log", &data).await;
    assert!(
        !ess.log().contains("marking the upload request consumed failed"),
        "{}",
        ess.log()
    );
}

#[test]
fn a_mistake_in_the_sources_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    let ess = [
        ("NODE_TYPE", "ESS"),
        ("DESTINATION_TYPE", "edge"),
        ("DESTINATION_ID", "node1"),
        ("ORG_ID", "org"),
        ("PERSISTENCE_ROOT_PATH", root.as_str()),
        ("LISTENING_TYPE", "unsecure"),
        ("COMMUNICATION_PROTOCOL", "http"),
        ("HTTP_CSS_HOST", "127.0.0.1"),
        ("HTTP_CSS_PORT", "9"),
    ];
    let limit = std::time::Duration::from_secs(30);
    let bad = r#"[{"name": "logs", "folder": "in", "patterns": ["*.log"], "objectType": "log",
        "triggers": {"periodic": {"intervalSeconds": 0}}}]"#;
    let (status, output) = common::run_to_exit(
        &[ess.as_slice(), &[("UPLOAD_SOURCES", bad)]].concat(),
        &["-c", &config],
        limit,
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(
        output.contains("UploadSources: source \"logs\": periodic intervalSeconds must be above 0"),
        "{output}"
    );

    let (status, output) = common::run_to_exit(
        &[ess.as_slice(), &[("UPLOAD_SOURCES", "missing.json")]].concat(),
        &["-c", &config],
        limit,
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("missing.json"), "{output}");

    let css = [
        ("NODE_TYPE", "CSS"),
        ("PERSISTENCE_ROOT_PATH", root.as_str()),
        ("LISTENING_TYPE", "unsecure"),
        ("UPLOAD_SOURCES", bad),
    ];
    let (status, output) = common::run_to_exit(&css, &["-c", &config], limit);
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("UploadSources is for an ESS"), "{output}");
}

#[tokio::test]
async fn the_css_asks_every_node_of_a_type_to_upload() {
    let net = Net::new(Transport::Http);
    let css = net.css(&[]);
    let sources = json!([source("remote-logs", json!({"remote": true}))]);
    let first = ess_with_sources(&net, &css, "fleet1", sources.clone());
    let second = ess_with_sources(&net, &css, "fleet2", sources);
    wait_registered(&css, &first, "fleet1").await;
    wait_registered(&css, &second, "fleet2").await;
    for (node, name) in [(&first, "one.log"), (&second, "two.log")] {
        std::fs::write(inbox(node).join(name), name.as_bytes()).unwrap();
    }
    // Addressed to the type, no ID: every node of the type; no description: every source
    // that allows remote triggers.
    css.api()
        .create(
            &css.obj("edge-sync-upload-request", "all"),
            json!({"destinationType": "edge", "noData": true}),
            None,
        )
        .await;
    for (node, name) in [(&first, "one.log"), (&second, "two.log")] {
        let (meta, data) = on_css(&css, node, name).await;
        assert_integrity(&meta, &data, name.as_bytes());
        assert_eq!(meta["originID"], if name == "one.log" { "fleet1" } else { "fleet2" });
    }
}
