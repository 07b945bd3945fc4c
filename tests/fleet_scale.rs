//! Short forms of the fleet-scale bench modes (`edge-sync-bench --fleet`): a few hundred
//! simulated edge nodes against one real CSS. They assert correctness (every node gets every
//! object once and every byte as published; memory bounded by the download limits, not by
//! the number of nodes), not speed.

mod common;

use common::sync::css_with;
use common::{pattern, TestNode};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How long every wait of these tests may last.
const DEADLINE: Duration = Duration::from_secs(120);
const FLEET_TYPE: &str = "fleet";
/// `MaxDataStreams` of the CSS in the memory test.
const STREAMS: usize = 4;

/// A simulated edge node speaking /spi/v1 as an ESS does.
#[derive(Clone)]
struct SimNode {
    base: Arc<str>,
    client: reqwest::Client,
    dest: String,
}

impl SimNode {
    fn new(css: &TestNode, client: &reqwest::Client, id: &str) -> Self {
        SimNode {
            base: Arc::from(css.base()),
            client: client.clone(),
            dest: format!("{}/edge/{id}", common::ORG),
        }
    }

    /// A request with the node's credentials, repeated while the CSS answers 429 (its
    /// ranged-download slots are taken: the node is to come back, not to give up).
    async fn send(&self, method: reqwest::Method, path: &str, range: Option<(u64, u64)>) -> reqwest::Response {
        let deadline = Instant::now() + DEADLINE;
        let mut pause = Duration::from_millis(10);
        loop {
            let mut request = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(&self.dest, Some(""))
                .header("X-Sync-Service-Dest", &self.dest);
            if let Some((start, end)) = range {
                request = request.header("Range", format!("bytes={start}-{end}"));
            }
            let response = request.send().await.expect("request to the CSS");
            if response.status() != 429 {
                return response;
            }
            assert!(
                Instant::now() < deadline,
                "{} {path}: still 429 after {DEADLINE:?}",
                self.dest
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    async fn put(&self, path: &str) {
        let response = self.send(reqwest::Method::PUT, path, None).await;
        let status = response.status().as_u16();
        assert!(status == 204 || status == 409, "{} PUT {path}: {status}", self.dest);
    }

    async fn register_new(&self) {
        self.put(&format!("/spi/v1/register-new/{}?persistent-storage=true", self.dest))
            .await;
    }

    /// One poll: the items, empty for a 204.
    async fn poll(&self, wait: Option<u64>) -> Vec<Value> {
        let path = match wait {
            Some(seconds) => format!("/spi/v1/objects/?wait={seconds}"),
            None => "/spi/v1/objects/".to_string(),
        };
        let response = self.send(reqwest::Method::GET, &path, None).await;
        match response.status().as_u16() {
            204 => Vec::new(),
            200 => serde_json::from_slice(&response.bytes().await.expect("poll body")).expect("poll JSON"),
            status => panic!("{} poll: {status}", self.dest),
        }
    }

    fn object_path(meta: &Value, action: &str) -> String {
        format!(
            "/spi/v1/objects/{}/{}/{}/{}/{}/{action}",
            meta["destinationOrgID"].as_str().expect("org"),
            meta["objectType"].as_str().expect("type"),
            meta["objectID"].as_str().expect("id"),
            meta["instanceID"],
            meta["dataID"]
        )
    }

    /// Downloads the data in `chunkSize` ranges, as an ESS does.
    async fn download(&self, meta: &Value) -> Vec<u8> {
        let size = meta["objectSize"].as_u64().expect("objectSize");
        let chunk = meta["chunkSize"].as_u64().filter(|c| *c > 0).unwrap_or(size);
        let path = Self::object_path(meta, "data");
        let mut data = Vec::with_capacity(size as usize);
        while (data.len() as u64) < size {
            let start = data.len() as u64;
            let end = (start + chunk).min(size) - 1;
            let range = (chunk < size).then_some((start, end));
            let response = self.send(reqwest::Method::GET, &path, range).await;
            assert!(
                [200, 206].contains(&response.status().as_u16()),
                "{} GET {path}: {}",
                self.dest,
                response.status()
            );
            data.extend_from_slice(&response.bytes().await.expect("data"));
        }
        data
    }

    /// Polls until an update of the fleet's type arrives, handles it as an ESS does and
    /// returns its object ID with the data downloaded.
    async fn receive_one(&self) -> (String, Vec<u8>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(
                Instant::now() < deadline,
                "{}: no object within {DEADLINE:?}",
                self.dest
            );
            for item in self.poll(Some(5)).await {
                let meta = &item["MetaData"];
                if item["Type"] != "update" || meta["objectType"] != FLEET_TYPE {
                    continue;
                }
                let data = if meta["noData"] == true {
                    Vec::new()
                } else {
                    self.put(&Self::object_path(meta, "updated")).await;
                    self.download(meta).await
                };
                self.put(&Self::object_path(meta, "received")).await;
                return (meta["objectID"].as_str().expect("id").to_string(), data);
            }
        }
    }
}

fn node_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(DEADLINE).build().expect("client")
}

/// Registers `count` nodes, a few at a time (a burst of connects would cost SYN retries).
async fn register(css: &TestNode, count: usize) -> Vec<SimNode> {
    let client = node_client();
    let nodes: Vec<SimNode> = (0..count)
        .map(|i| SimNode::new(css, &client, &format!("n{i}")))
        .collect();
    let gate = Arc::new(Semaphore::new(32));
    join_all(nodes.iter().map(|node| {
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await.expect("gate");
            node.register_new().await;
        }
    }))
    .await;
    nodes
}

/// Every node receives the object published by `publish` exactly once, with `data`.
async fn every_node_receives(css: &TestNode, nodes: &[SimNode], id: &str, data: &[u8], publish: impl AsyncFnOnce()) {
    let receiving: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            tokio::spawn(async move { node.receive_one().await })
        })
        .collect();
    publish().await;
    for (node, received) in nodes.iter().zip(join_all(receiving).await) {
        let (object_id, bytes) = received.expect("node task");
        assert_eq!(object_id, id, "{} got another object", node.dest);
        assert!(
            bytes == data,
            "{} got {} bytes that differ from the published ones",
            node.dest,
            bytes.len()
        );
    }
    let destinations = css
        .api()
        .get(&format!("{}/destinations", css.obj(FLEET_TYPE, id)))
        .await;
    let delivered = destinations
        .json()
        .as_array()
        .expect("destinations")
        .iter()
        .filter(|d| d["status"] == "delivered")
        .count();
    assert_eq!(delivered, nodes.len(), "destinations listed as delivered");
    // Once: nothing of the object waits for any node any more.
    for node in nodes.iter().take(20) {
        let again = node.poll(None).await;
        assert!(
            again.iter().all(|item| item["MetaData"]["objectID"] != id),
            "{} is offered {id} again",
            node.dest
        );
    }
}

/// Short form of `waiting`: long-polling nodes each get a metadata-only object and a data
/// object once; the CSS's memory stays within what its download slots hold, although every
/// node asks for the data at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_of_long_polling_nodes_gets_every_object_once() {
    let css = css_with(&[("MAX_DATA_STREAMS", &STREAMS.to_string())]);
    let nodes = register(&css, 300).await;
    every_node_receives(&css, &nodes, "meta-only", &[], async || {
        let path = css.obj(FLEET_TYPE, "meta-only");
        css.api().create(&path, json!({"noData": true}), None).await;
    })
    .await;

    let before = css.peak_rss();
    let data = pattern(1 << 20, 7);
    every_node_receives(&css, &nodes, "one-mib", &data, async || {
        let path = css.obj(FLEET_TYPE, "one-mib");
        css.api().create(&path, json!({}), None).await;
        let stored = css.api().put_bytes(&format!("{path}/data"), data.clone()).await;
        assert_eq!(stored.status, 204, "{}", stored.text());
    })
    .await;
    // 300 MiB were sent. The streams hold the buffers of at most `STREAMS` downloads of
    // 1 MiB each; a download that let go of its stream before its buffers were sent let the
    // next ones fill theirs, and the CSS grew with the number of nodes downloading.
    let growth = css.peak_rss().saturating_sub(before);
    assert!(
        growth < 24 << 20,
        "the CSS grew by {} MiB while 300 nodes downloaded 1 MiB each through {STREAMS} streams",
        growth >> 20
    );
}

/// Short form of `big-object`: more nodes than ranged-download slots fetch an object in
/// chunks at once; those told to come back (429) do, and every byte arrives as published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_downloading_one_object_in_chunks_gets_every_byte() {
    let css = css_with(&[("MAX_DATA_CHUNK_SIZE", "262144")]);
    let nodes = register(&css, 100).await;
    let data = pattern(2 << 20, 11);
    every_node_receives(&css, &nodes, "big", &data, async || {
        let path = css.obj(FLEET_TYPE, "big");
        css.api().create(&path, json!({}), None).await;
        let stored = css.api().put_bytes(&format!("{path}/data"), data.clone()).await;
        assert_eq!(stored.status, 204, "{}", stored.text());
    })
    .await;
}

/// Short form of `publish`: with many objects addressed to every node, a new version of one
/// reaches every node, and a node registering as new is offered every object at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishing_to_a_fleet_reaches_every_node_and_newcomers_get_everything() {
    const OBJECTS: usize = 50;
    let css = css_with(&[]);
    let nodes = register(&css, 200).await;
    for i in 0..OBJECTS {
        let path = css.obj(FLEET_TYPE, &format!("o{i}"));
        css.api().create(&path, json!({"noData": true}), None).await;
    }
    // Every node is offered every object, once.
    let offered: Vec<HashMap<String, u64>> = join_all(nodes.iter().map(|node| async move {
        let mut seen = HashMap::new();
        for item in node.poll(None).await {
            let meta = &item["MetaData"];
            node.put(&SimNode::object_path(meta, "received")).await;
            *seen
                .entry(meta["objectID"].as_str().expect("id").to_string())
                .or_insert(0) += 1;
        }
        seen
    }))
    .await;
    for (node, seen) in nodes.iter().zip(&offered) {
        assert_eq!(seen.len(), OBJECTS, "{} was offered {} objects", node.dest, seen.len());
        assert!(
            seen.values().all(|count| *count == 1),
            "{} was offered one twice",
            node.dest
        );
    }

    every_node_receives(&css, &nodes, "o0", &[], async || {
        let path = css.obj(FLEET_TYPE, "o0");
        css.api()
            .create(&path, json!({"noData": true, "version": "2"}), None)
            .await;
    })
    .await;

    let newcomer = SimNode::new(&css, &node_client(), "newcomer");
    newcomer.register_new().await;
    let listed = newcomer.poll(None).await;
    let catalog = listed
        .iter()
        .filter(|item| item["MetaData"]["objectType"] == FLEET_TYPE)
        .count();
    assert_eq!(catalog, OBJECTS, "objects offered to a node registering as new");
}
