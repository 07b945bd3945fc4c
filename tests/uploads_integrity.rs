//! Files from the edge, end to end, what they keep: a file changed while it is read is sent
//! again whole, never half old and half new; what was sent survives a restart and is not sent
//! twice, and a send cut by a crash is redone; an object lost before the CSS had it is sent
//! again; the transfer of a large file cut by a crash of the CSS resumes once it is back;
//! a source with a signing key signs its objects; a file above `MaxObjectSize` fails with the
//! reason. Real CSS and ESS processes over HTTP; every wait has a deadline.

mod common;

use common::faults::{Fault, FaultProxy};
use common::sync::{listed, wait_registered, Net, Transport};
use common::uploads::*;
use common::{pattern, TestNode, ADMIN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn a_file_changed_while_it_is_read_is_sent_again_whole() {
    let sources = json!([{
        "name": "big",
        "folder": "inbox",
        "patterns": ["*.bin"],
        "objectType": "upload",
        "settleSeconds": 1,
        "triggers": {"onChange": {"scanSeconds": 1}},
    }]);
    let (_net, css, ess) = start("changing", sources).await;
    let path = inbox(&ess).join("big.bin");
    let first = pattern(48 << 20, 1);
    std::fs::write(&path, &first).unwrap();
    // Rewrite the file in place as soon as the ESS reads it.
    eventually("the ESS to read the file", &[&css, &ess], async || {
        uploads(&ess)
            .await
            .into_iter()
            .find(|u| u["path"] == "big.bin" && u["phase"] != "selected")
    })
    .await;
    let second = pattern(48 << 20, 2);
    std::fs::write(&path, &second).unwrap();

    let meta = eventually("the second version on the CSS", &[&css, &ess], async || {
        let meta = listed(&css, "upload", "big.bin").await?;
        let wanted = format!("sha256={}", sha256_hex(&second));
        meta["description"].as_str()?.contains(&wanted).then_some(meta)
    })
    .await;
    let got = css.api().data(&css.obj("upload", "big.bin")).await;
    assert_integrity(&meta, &got, &second);
    let caught = ess.log().contains("the file changed while it was read");
    println!(
        "the rewrite {}",
        if caught {
            "was caught during the read and the file sent again"
        } else {
            "came after the first send; the change was sent as a new version"
        }
    );
}

#[tokio::test]
async fn a_large_file_cut_by_a_css_crash_resumes_when_it_is_back() {
    let net = Net::new(Transport::Http);
    let mut css = net.css(&[]);
    // The ESS reaches the CSS through a link of 4 MB/s, so the crash comes mid-transfer.
    let link = FaultProxy::start(css.port()).await;
    link.set(Fault::Bandwidth(4_000_000));
    let port = link.port().to_string();
    let sources = json!([source("logs", json!({"explicit": true}))]);
    let settings = [("HTTP_CSS_PORT", port.as_str()), ("MAX_DATA_CHUNK_SIZE", "262144")];
    let ess = ess_with(&net, &css, "crashing", sources, &settings, &[]);
    wait_registered(&css, &ess, "crashing").await;
    let data = pattern(16 << 20, 6);
    std::fs::write(inbox(&ess).join("large.log"), &data).unwrap();
    assert_eq!(ess.api().post_as(ADMIN, "/api/v1/uploads/logs").await.status, 202);
    // A quarter of the data through the link: parts the CSS acknowledged before it goes down.
    eventually("a quarter of the data on its way", &[&css, &ess], async || {
        (link.bytes_up() >= 4 << 20).then_some(())
    })
    .await;
    css.kill9();
    css.restart();
    let (meta, got) = on_css(&css, &ess, "large.log").await;
    assert_integrity(&meta, &got, &data);
    wait_delivered(&css, &ess, "logs", "large.log").await;
    let sends = ess.log().matches("uploads: file sent as an object").count();
    assert_eq!(sends, 1, "the file was read and hashed once:\n{}", ess.log());
    // A quarter was through when the CSS went: sent again from the start, the link would
    // carry at least 20 MiB.
    assert!(
        link.bytes_up() < data.len() as u64 + (2 << 20),
        "the transfer went on from what the CSS had: {} bytes for {}",
        link.bytes_up(),
        data.len()
    );
}

#[tokio::test]
async fn what_was_sent_survives_a_restart_and_an_unfinished_send_is_redone() {
    let sources = json!([
        source("logs", json!({"periodic": {"intervalSeconds": 1}})),
        // Explicit only: nothing but the recorded unfinished send makes it upload.
        {
            "name": "manual",
            "folder": "manual",
            "patterns": ["*.log"],
            "objectType": "upload",
            "objectId": "manual-{name}",
            "settleSeconds": 1,
            "triggers": {"explicit": true},
        },
    ]);
    let (_net, css, mut ess) = start("restarted", sources).await;
    let folder = inbox(&ess);
    std::fs::write(folder.join("kept.log"), b"sent once").unwrap();
    let (meta, _) = on_css(&css, &ess, "kept.log").await;
    wait_delivered(&css, &ess, "logs", "kept.log").await;

    // A send of the explicit source wanted before a stop and not finished: recorded as
    // unfinished in the state (what a stop between selection and creation leaves).
    let manual = ess.root().join("manual");
    std::fs::create_dir_all(&manual).unwrap();
    std::fs::write(manual.join("cut.log"), b"cut short").unwrap();
    ess.kill9();
    let state_path = ess.root().join("sync/uploads/state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["sources"]["manual"] = json!({"cut.log": {"created": false, "size": 9, "mtimeNanos": 0}});
    std::fs::write(&state_path, state.to_string()).unwrap();
    ess.restart();

    let (cut, data) = on_css(&css, &ess, "manual-cut.log").await;
    assert_integrity(&cut, &data, b"cut short");
    let delivered = wait_delivered(&css, &ess, "logs", "kept.log").await;
    assert_eq!(delivered["sha256"], sha256_hex(b"sent once"), "the status survives too");
    // A new file goes with a later pass, and the file sent before the restart is not sent
    // again.
    std::fs::write(folder.join("new.log"), b"after the restart").unwrap();
    on_css(&css, &ess, "new.log").await;
    let again = listed(&css, "upload", "kept.log").await.expect("kept.log on the CSS");
    assert_eq!(again["instanceID"], meta["instanceID"], "kept.log was not sent twice");
    let resent = ess
        .log()
        .lines()
        .any(|line| line.contains("file sent as an object") && line.contains("kept.log"));
    assert!(!resent, "the restarted ESS did not send kept.log:\n{}", ess.log());
}

#[tokio::test]
async fn an_object_lost_before_the_css_had_it_is_sent_again() {
    let net = Net::new(Transport::Http);
    let mut css = net.css(&[]);
    let sources = json!([source("logs", json!({"onChange": {"scanSeconds": 1}}))]);
    let mut options = net.ess_options(
        &css,
        &[
            ("DESTINATION_ID", "volatile"),
            ("UPLOAD_SOURCES", &sources.to_string()),
            ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
        ],
    );
    // An in-memory store: a restart loses the objects the CSS did not acknowledge yet.
    options.storage = "inmemory";
    let mut ess = TestNode::start(options);
    wait_registered(&css, &ess, "volatile").await;
    css.kill9();
    std::fs::write(inbox(&ess).join("lost.log"), b"kept by the file only").unwrap();
    eventually("the object created on the ESS", &[&css, &ess], async || {
        uploads(&ess)
            .await
            .into_iter()
            .find(|u| u["path"] == "lost.log" && u["phase"] == "sending")
    })
    .await;
    ess.restart();
    css.restart();
    let (meta, data) = on_css(&css, &ess, "lost.log").await;
    assert_integrity(&meta, &data, b"kept by the file only");
    wait_delivered(&css, &ess, "logs", "lost.log").await;
    let resent = ess
        .log()
        .lines()
        .any(|line| line.contains("file sent as an object") && line.contains("lost.log"));
    assert!(resent, "the restarted ESS sent the file again:\n{}", ess.log());
}

#[tokio::test]
async fn a_source_with_a_signing_key_signs_its_objects() {
    use base64::Engine as _;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("an RSA key");
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    let public = private.to_public_key().to_public_key_der().unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());

    let net = Net::new(Transport::Http);
    let css = net.css(&[]);
    let mut sources = source("signed", json!({"explicit": true}));
    sources["signingKey"] = json!("keys/upload.pem");
    let mut options = net.ess_options(
        &css,
        &[
            ("DESTINATION_ID", "signer"),
            ("UPLOAD_SOURCES", &json!([sources]).to_string()),
            ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
        ],
    );
    options.files.push(("keys/upload.pem".into(), pem));
    let ess = TestNode::start(options);
    wait_registered(&css, &ess, "signer").await;
    let data = pattern(100_000, 4);
    std::fs::write(inbox(&ess).join("signed.log"), &data).unwrap();
    let response = ess.api().post_as(ADMIN, "/api/v1/uploads/signed").await;
    assert_eq!(response.status, 202, "{}", response.text());

    let (meta, got) = on_css(&css, &ess, "signed.log").await;
    assert_integrity(&meta, &got, &data);
    assert_eq!(meta["hashAlgorithm"], "SHA256");
    assert_eq!(meta["publicKey"], public.as_str());
    let signature = meta["signature"].as_str().expect("a signature");
    edge_sync_service::engine::verify::verify_digest("SHA256", &public, signature, &Sha256::digest(&data))
        .expect("the signature verifies with the source's public key");
    // The CSS verified the data against the signature when it stored it.
    assert_eq!(
        css.api().status_of(&css.obj("upload", "signed.log")).await,
        "completelyReceived"
    );
    wait_delivered(&css, &ess, "signed", "signed.log").await;
}

#[tokio::test]
async fn a_send_cut_by_a_crash_is_redone_after_the_restart() {
    // Explicit only: after the restart nothing but the recorded unfinished send sends it.
    let (_net, css, mut ess) = start("crashed", json!([source("manual", json!({"explicit": true}))])).await;
    let data = pattern(48 << 20, 6);
    std::fs::write(inbox(&ess).join("large.log"), &data).unwrap();
    let response = ess.api().post_as(ADMIN, "/api/v1/uploads/manual").await;
    assert_eq!(response.status, 202, "{}", response.text());
    eventually("the ESS to read the file", &[&css, &ess], async || {
        uploads(&ess)
            .await
            .into_iter()
            .find(|u| u["path"] == "large.log" && u["phase"] != "selected")
    })
    .await;
    ess.kill9();
    let state = std::fs::read_to_string(ess.root().join("sync/uploads/state.json")).unwrap();
    let cut = state.contains("\"created\": false");
    ess.restart();
    let (meta, got) = on_css(&css, &ess, "large.log").await;
    assert_integrity(&meta, &got, &data);
    wait_delivered(&css, &ess, "manual", "large.log").await;
    println!(
        "the crash {}",
        if cut {
            "cut the send before the object was created; the restarted ESS sent the file again"
        } else {
            "came after the object was created; the ESS's delivery took it on"
        }
    );
}

#[tokio::test]
async fn a_file_above_max_object_size_fails_with_the_reason() {
    // No CSS is needed to see the refusal: the object is never created.
    let sources = json!([source("big", json!({"explicit": true}))]);
    let mut options = common::NodeOptions::new(common::Role::Ess);
    options.env.extend([
        ("UPLOAD_SOURCES".to_string(), sources.to_string()),
        ("MAX_OBJECT_SIZE".to_string(), "1000".to_string()),
    ]);
    let ess = TestNode::start(options);
    std::fs::write(inbox(&ess).join("huge.log"), pattern(5000, 1)).unwrap();
    let response = ess.api().post_as(ADMIN, "/api/v1/uploads/big").await;
    assert_eq!(response.status, 202, "{}", response.text());
    let failed = eventually("the upload to fail", &[&ess], async || {
        uploads(&ess)
            .await
            .into_iter()
            .find(|u| u["path"] == "huge.log" && u["phase"] == "failed")
    })
    .await;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("MaxObjectSize"), "{reason}");
    // The data files left are the node's status objects', none of the refused file.
    let left: Vec<u64> = ess
        .files_in("data")
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .collect();
    assert!(
        left.iter().all(|&len| len < 1000),
        "no data of the refused file is left: {left:?}"
    );
    assert!(ess.files_in("tmp").is_empty(), "no temporary file is left");
}
