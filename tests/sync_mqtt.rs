//! Scratch: MQTT end to end.
mod common;

use common::pattern;
use common::sync::{eventually, wait_registered, Net, Transport, SYNC_DEADLINE};
use serde_json::json;

#[tokio::test]
async fn both_directions_over_mqtt() {
    let net = Net::new(Transport::Mqtt);
    let css = net.css(&[("MAX_DATA_CHUNK_SIZE", "65536")]);
    let ess = net.ess(&css, &[]);
    wait_registered(&css, &ess, "node1").await;
    let data = pattern(1 << 20, 3);
    let path = css.obj("model", "m1");
    css.api().create(&path, json!({}), None).await;
    assert_eq!(
        css.api().put_bytes(&format!("{path}/data"), data.clone()).await.status,
        204
    );
    let ess_path = ess.obj("model", "m1");
    let ess_api = ess.api();
    eventually("on the ESS", &[&css, &ess], SYNC_DEADLINE, async || {
        let r = ess_api.get(&format!("{ess_path}/status")).await;
        (r.status == 200 && r.text() == "completelyReceived").then_some(())
    })
    .await;
    assert_eq!(ess_api.data(&ess_path).await, data);

    let up = pattern(300_000, 5);
    let own = ess.obj("report", "r1");
    ess_api.create(&own, json!({}), Some(&up)).await;
    let css_copy = css.obj("report", "r1");
    let css_api = css.api();
    eventually("on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        let r = css_api.get(&format!("{css_copy}/status")).await;
        (r.status == 200 && r.text() == "completelyReceived").then_some(())
    })
    .await;
    assert_eq!(css_api.data(&css_copy).await, up);
}
