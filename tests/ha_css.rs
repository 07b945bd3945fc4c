//! Several CSS instances on one PostgreSQL database (spec: css-ess-protocol.md §9): requests
//! spread over two instances see one state; a long poll waiting in one instance ends at once
//! when another commits news for its node; chunks of one upload may go to either instance;
//! one instance leads, and when it is killed with `kill -9` the other takes its periodic work
//! over within `LeadershipTimeout`; a database restart during traffic loses nothing that was
//! acknowledged.

mod common;

use common::cluster::{leads, scrape, two_instances, two_instances_with, LEADERSHIP_TIMEOUT};
use common::postgres::PgCluster;
use common::proxy::RoundRobin;
use common::sync::{eventually, http_ess, listed, wait_for, wait_registered};
use common::{NodeOptions, Role, TestNode, ADMIN, ORG};
use serde_json::json;
use std::time::Duration;

/// Longer than any wait below: an ESS only gets news earlier when its long poll is woken.
const POLLING_INTERVAL: &str = "30";
/// Well below the polling interval: news that arrives within this came through a wake-up.
const WOKEN_DEADLINE: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(30);

/// An ESS `edge`/`id` polling the instance on `port`, with long polls held for
/// [`POLLING_INTERVAL`].
fn ess_of(port: u16, id: &str) -> TestNode {
    http_ess(
        port,
        &[("DESTINATION_ID", id), ("HTTP_POLLING_INTERVAL", POLLING_INTERVAL)],
    )
}

#[tokio::test]
async fn requests_spread_over_two_instances_see_one_service() {
    let cluster = common::postgres::shared();
    let (first, second) = two_instances(cluster).await;
    assert_eq!(leads(&second).await, Some(false), "only one instance leads");
    let ess = ess_of(second.port(), "node1");
    wait_registered(&first, &ess, "node1").await;
    let (api1, api2) = (first.api(), second.api());

    // Created through one instance: visible and downloadable through the other at once.
    let model = first.obj("model", "m1");
    let data = common::pattern(300_000, 7);
    api1.create(
        &model,
        json!({"destinationType": "edge", "destinationID": "node1"}),
        None,
    )
    .await;
    assert_eq!(api1.put_bytes(&format!("{model}/data"), data.clone()).await.status, 204);
    assert_eq!(api2.meta(&model).await["objectID"], "m1");
    assert_eq!(api2.data(&model).await, data);

    // The ESS's long poll waits in the second instance; the commit in the first ends it.
    eventually("m1 on the ESS", &[&first, &second, &ess], WOKEN_DEADLINE, async || {
        listed(&ess, "model", "m1").await
    })
    .await;
    assert_eq!(ess.api().data(&ess.obj("model", "m1")).await, data);
    let consumed = ess
        .api()
        .put_empty_as(ADMIN, &format!("{}/consumed", ess.obj("model", "m1")))
        .await;
    assert_eq!(consumed.status, 204, "{}", consumed.text());
    wait_for(
        "the first instance to see m1 consumed",
        &[&first, &ess],
        DEADLINE,
        async || {
            let response = api1.get(&format!("{model}/destinations")).await;
            response.status == 200
                && response.json().as_array().is_some_and(|list| {
                    list.iter()
                        .any(|d| d["destinationID"] == "node1" && d["status"] == "consumed")
                })
        },
    )
    .await;

    // From the edge: uploaded to the second instance, readable through the first.
    let report = ess.obj("report", "r1");
    ess.api().create(&report, json!({}), Some(b"from the edge")).await;
    let on_cloud = first.obj("report", "r1");
    wait_for(
        "r1 on the first instance",
        &[&first, &second, &ess],
        DEADLINE,
        async || api1.get(&format!("{on_cloud}/data")).await.status == 200,
    )
    .await;
    assert_eq!(api1.data(&on_cloud).await, b"from the edge");

    // One chunked upload, its chunks sent to different instances.
    let chunked = first.obj("model", "chunked");
    api1.create(&chunked, json!({}), None).await;
    for (api, range, fill) in [(&api1, "bytes 0-9/20", 1u8), (&api2, "bytes 10-19/20", 2u8)] {
        let response = api
            .send(
                api.request(reqwest::Method::PUT, &format!("{chunked}/data"), Some(ADMIN))
                    .header("Content-Range", range)
                    .body(vec![fill; 10]),
            )
            .await;
        assert_eq!(response.status, 204, "{range}: {}", response.text());
    }
    assert_eq!(api2.status_of(&chunked).await, "ready");
    let mut expected = vec![1u8; 10];
    expected.extend([2u8; 10]);
    assert_eq!(api1.data(&chunked).await, expected);
    assert_eq!(api2.data(&chunked).await, expected);
}

/// Objects written through both instances at once get distinct instance IDs, so their data
/// in the database never collide.
#[tokio::test]
async fn concurrent_writes_through_both_instances_keep_every_object_s_data() {
    let cluster = common::postgres::shared();
    let (first, second) = two_instances(cluster).await;
    let writers: Vec<_> = [&first, &second]
        .into_iter()
        .enumerate()
        .map(|(n, node)| {
            let (api, paths) = (node.api(), (0..40).map(|i| node.obj("model", &format!("w{n}-{i}"))));
            let paths: Vec<String> = paths.collect();
            tokio::spawn(async move {
                for (i, path) in paths.iter().enumerate() {
                    let data = format!("{path} {i}");
                    api.create(path, json!({}), Some(data.as_bytes())).await;
                }
                paths
            })
        })
        .collect();
    let mut instance_ids = std::collections::HashSet::new();
    for writer in writers {
        for path in writer.await.expect("writer") {
            let meta = first.api().meta(&path).await;
            assert!(instance_ids.insert(meta["instanceID"].as_i64().expect("instanceID")));
            let index = path.rsplit('-').next().unwrap();
            assert_eq!(second.api().data(&path).await, format!("{path} {index}").as_bytes());
        }
    }
    assert_eq!(instance_ids.len(), 80);
}

#[tokio::test]
async fn killing_the_leader_hands_the_periodic_work_to_the_other_instance() {
    let cluster = common::postgres::shared();
    let (mut first, second) = two_instances(cluster).await;
    assert_eq!(leads(&second).await, Some(false));
    let nodes: Vec<TestNode> = ["node1", "node2", "node3"]
        .into_iter()
        .map(|id| ess_of(second.port(), id))
        .collect();
    for (ess, id) in nodes.iter().zip(["node1", "node2", "node3"]) {
        wait_registered(&second, ess, id).await;
    }

    // An object for every edge node that only the leader's activation pass releases.
    let path = second.obj("model", "fanout");
    let activation = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let activation = activation
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    second
        .api()
        .create(
            &path,
            json!({
                "destinationType": "edge",
                "inactive": true,
                "activationTime": activation,
            }),
            Some(b"to every node"),
        )
        .await;
    first.kill9();

    let takeover = Duration::from_secs(LEADERSHIP_TIMEOUT + 5);
    wait_for(
        "the second instance to take the leadership over",
        &[&second],
        takeover,
        async || leads(&second).await == Some(true),
    )
    .await;
    for ess in &nodes {
        let mut watched: Vec<&TestNode> = vec![&second];
        watched.extend(nodes.iter());
        eventually("the activated object on every ESS", &watched, DEADLINE, async || {
            listed(ess, "model", "fanout").await
        })
        .await;
        assert_eq!(ess.api().data(&ess.obj("model", "fanout")).await, b"to every node");
    }
    assert!(
        second.log().contains("this instance is now the leader"),
        "{}",
        second.log()
    );
}

#[tokio::test]
async fn a_database_restart_during_traffic_loses_nothing_acknowledged() {
    let mut cluster = PgCluster::start();
    let (first, second) = two_instances(&cluster).await;
    let ess = ess_of(second.port(), "node1");
    wait_registered(&first, &ess, "node1").await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let instances = [first.base(), second.base()];
    let mut acknowledged = Vec::new();
    // Each write is acknowledged (its path) or refused (the status; 0 when no answer came).
    let write = async |n: usize| -> Result<String, u16> {
        let path = format!("/api/v1/objects/{ORG}/model/t{n}");
        let body = common::object_body(&path, json!({}), Some(format!("data {n}").as_bytes()));
        let sent = client
            .put(format!("{}{path}", instances[n % 2]))
            .basic_auth(ADMIN, Some("secret"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 204 => Ok(path),
            Ok(response) => Err(response.status().as_u16()),
            Err(_) => Err(0),
        }
    };
    let mut n = 0;
    while acknowledged.len() < 20 {
        acknowledged.extend(write(n).await.ok());
        n += 1;
    }
    cluster.stop();
    let refusal = loop {
        match write(n).await {
            Ok(path) => acknowledged.push(path),
            Err(status) => break status,
        }
        n += 1;
    };
    n += 1;
    assert_eq!(
        refusal, 503,
        "a write while the database is down is refused as unavailable"
    );
    cluster.start_again();
    let before_restart = acknowledged.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.len() < before_restart + 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "writes did not resume after the restart"
        );
        acknowledged.extend(write(n).await.ok());
        n += 1;
    }
    for path in &acknowledged {
        let n: usize = path.rsplit('t').next().unwrap().parse().unwrap();
        for node in [&first, &second] {
            assert_eq!(node.api().data(path).await, format!("data {n}").as_bytes(), "{path}");
        }
    }

    // Leadership and the wake-ups between instances came back with the database.
    wait_for("one leader again", &[&first, &second], DEADLINE, async || {
        leads(&first).await == Some(true) && leads(&second).await == Some(false)
    })
    .await;
    let first_news = first.obj("model", "after-restart");
    first
        .api()
        .create(
            &first_news,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"news"),
        )
        .await;
    eventually(
        "news after the restart on the ESS",
        &[&first, &second, &ess],
        Duration::from_secs(60),
        async || listed(&ess, "model", "after-restart").await,
    )
    .await;
    let woken = first.obj("model", "woken");
    first
        .api()
        .create(
            &woken,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"woken"),
        )
        .await;
    eventually(
        "the next news without waiting for the poll's end",
        &[&first, &second, &ess],
        WOKEN_DEADLINE,
        async || listed(&ess, "model", "woken").await,
    )
    .await;
}

/// Over MQTT the leader alone talks to the broker: messages committed by the other instance
/// reach edge nodes through it, and when it dies its successor connects and takes over.
#[tokio::test]
async fn mqtt_nodes_are_served_by_the_leader_and_then_by_its_successor() {
    let broker = common::broker::Broker::start();
    let cluster = common::postgres::shared();
    let (mut first, second) = two_instances_with(cluster, broker.env()).await;
    let mut options = NodeOptions::new(Role::Ess);
    options.env.extend(broker.env());
    options.env.push(("RESEND_INTERVAL".into(), "1".into()));
    let ess = TestNode::start(options);
    wait_registered(&second, &ess, "node1").await;
    assert!(second
        .api()
        .get("/api/v1/health")
        .await
        .json()
        .get("mqttHealth")
        .is_none());

    let before = second.obj("model", "before");
    second
        .api()
        .create(
            &before,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"one"),
        )
        .await;
    eventually(
        "an object of the follower on the ESS",
        &[&first, &second, &ess],
        DEADLINE,
        async || listed(&ess, "model", "before").await,
    )
    .await;

    first.kill9();
    wait_for("the follower to lead", &[&second], DEADLINE, async || {
        leads(&second).await == Some(true)
    })
    .await;
    let after = second.obj("model", "after");
    second
        .api()
        .create(
            &after,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"two"),
        )
        .await;
    eventually(
        "an object of the new leader on the ESS",
        &[&second, &ess],
        DEADLINE,
        async || listed(&ess, "model", "after").await,
    )
    .await;
    assert_eq!(ess.api().data(&ess.obj("model", "after")).await, b"two");
    let report = ess.obj("report", "edge-news");
    ess.api().create(&report, json!({}), Some(b"from the edge")).await;
    let on_cloud = second.obj("report", "edge-news");
    wait_for(
        "the edge's object on the new leader",
        &[&second, &ess],
        DEADLINE,
        async || second.api().get(&format!("{on_cloud}/data")).await.status == 200,
    )
    .await;
    assert_eq!(second.api().data(&on_cloud).await, b"from the edge");
}

/// `/spi/v1` requests an instance answered, from its metrics.
async fn node_requests_served(node: &TestNode) -> f64 {
    scrape(node)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|s| s.name == "edge_sync_http_requests_total")
        .filter(|s| s.labels.get("route").is_some_and(|route| route.starts_with("spi")))
        .map(|s| s.value)
        .sum()
}

/// An ESS behind a balancer that spreads its connections over both instances: whichever
/// instance each request reaches, objects flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ess_behind_a_round_robin_balancer_is_served_by_both_instances() {
    let cluster = common::postgres::shared();
    let (first, second) = two_instances(cluster).await;
    let balancer = RoundRobin::start(vec![first.port(), second.port()]).await;
    let ess = ess_of(balancer.port(), "node1");
    wait_registered(&first, &ess, "node1").await;
    for (i, css) in [&first, &second, &first, &second].into_iter().enumerate() {
        let id = format!("spread{i}");
        let data = format!("object {i}");
        css.api()
            .create(
                &css.obj("model", &id),
                json!({"destinationType": "edge", "destinationID": "node1"}),
                Some(data.as_bytes()),
            )
            .await;
        eventually(
            &format!("{id} on the ESS"),
            &[&first, &second, &ess],
            WOKEN_DEADLINE,
            async || listed(&ess, "model", &id).await,
        )
        .await;
        assert_eq!(ess.api().data(&ess.obj("model", &id)).await, data.as_bytes());
    }
    let report = ess.obj("report", "through-the-balancer");
    ess.api().create(&report, json!({}), Some(b"edge data")).await;
    for css in [&first, &second] {
        let on_cloud = css.obj("report", "through-the-balancer");
        wait_for(
            "the edge's object on every instance",
            &[&first, &second, &ess],
            DEADLINE,
            async || css.api().get(&format!("{on_cloud}/data")).await.status == 200,
        )
        .await;
        assert_eq!(css.api().data(&on_cloud).await, b"edge data");
    }
    for css in [&first, &second] {
        assert!(node_requests_served(css).await > 0.0, "every instance served the ESS");
    }
}
