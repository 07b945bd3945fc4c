//! Fan-out of one object to many edge nodes over the HTTP transport (spec:
//! css-ess-protocol.md §3): simulated ESS nodes as tasks of this process, and real ESS
//! processes of the release binary.
//!
//! A simulated node registers with `register-new`, long-polls `GET /spi/v1/objects/?wait=N`,
//! and on an `update` item sends `updated`, downloads the data (whole, or in `Range` chunks
//! when the object is larger than its `chunkSize`), checks the byte count and sends
//! `received`, as an ESS does.

use crate::server::{self, Server, TempDir};
use crate::transfer::{Content, RssSampler};
use edge_sync_service::model::sync::PollItem;
use edge_sync_service::model::MetaData;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, Semaphore};

pub const ORG: &str = crate::ORG;
/// Object type of the fanned-out objects.
const FANOUT_TYPE: &str = "fanout";
/// Size of the fanned-out object (1 MB).
pub const FANOUT_SIZE: u64 = 1_000_000;
/// Long-poll wait of the simulated nodes during the fan-out, seconds.
const FANOUT_WAIT: u64 = 30;
/// Registrations in flight at once (a burst of connects beyond the listen backlog would
/// cost SYN retransmissions of a second).
const REGISTER_CONCURRENCY: usize = 64;
/// Descriptors the bench and the CSS need beyond one per simulated node.
const FD_MARGIN: u64 = 256;

/// Quantile `q` (0..=1) of sorted durations in milliseconds, nearest rank.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Outcome of one fan-out.
pub struct FanoutStats {
    pub nodes: usize,
    /// Time until every node was registered (simulated) or listed by the CSS (real).
    pub setup: Duration,
    /// From the data PUT's 204 until the last node completed.
    pub total: Duration,
    /// Per-node completion times, sorted.
    pub per_node: Vec<Duration>,
    pub start_rss_kb: u64,
    pub peak_rss_kb: u64,
    pub cpu_seconds: f64,
    /// Nodes the CSS lists as `delivered` at the end.
    pub delivered: usize,
    /// Median RSS of the ESS processes at the end (real processes only).
    pub ess_rss_kb: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// Descriptor limit

/// Soft and hard `RLIMIT_NOFILE` of this process (`None` = unlimited).
fn nofile_limits() -> Option<(Option<u64>, Option<u64>)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| -> Option<Option<u64>> {
        match v? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Makes sure this process (and so the CSS it starts afterwards) may open `needed`
/// descriptors. Raises the soft limit towards the hard one with `prlimit` (util-linux) when
/// that is possible without privileges; otherwise explains how to raise it.
pub fn ensure_descriptors(needed: u64, what: &str) -> Result<(), String> {
    let Some((soft, hard)) = nofile_limits() else {
        return Ok(()); // not Linux-like; let the connections tell
    };
    let enough = |limit: Option<u64>| limit.is_none_or(|l| l >= needed);
    if enough(soft) {
        return Ok(());
    }
    if enough(hard) {
        let target = hard.map_or(needed, |h| h.min(needed.max(65_536)));
        let hard_text = hard.map_or("unlimited".to_string(), |h| h.to_string());
        let _ = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={target}:{hard_text}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some((soft_now, _)) = nofile_limits() {
            if enough(soft_now) {
                crate::progress(&format!(
                    "raised the open-file limit from {} to {} for {what}",
                    soft.unwrap_or(0),
                    soft_now.map_or("unlimited".to_string(), |s| s.to_string())
                ));
                return Ok(());
            }
        }
    }
    Err(format!(
        "{what} need about {needed} open files, but the open-file limit (ulimit -n) is {} (hard {}). \
         Raise it in the shell first, e.g. `ulimit -n {}`, or run with --quick / a smaller --nodes",
        soft.unwrap_or(0),
        hard.map_or("unlimited".to_string(), |h| h.to_string()),
        needed.max(4096)
    ))
}

/// Error text of a failed request, with its causes and a hint when descriptors ran out.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.contains("Too many open files") || text.contains("os error 24") {
        text.push_str(" (the open-file limit is too low for this many connections: raise `ulimit -n`)");
    }
    text
}

// ---------------------------------------------------------------------------------------
// Simulated edge node

/// The HTTP client shared by all simulated nodes: keeps up to `connections` idle connections
/// to the CSS, so that every node reuses its own.
pub fn node_client(connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// One simulated ESS: `{org}/edge/{id}` with an empty secret (dummy authenticator).
#[derive(Clone)]
pub struct SimNode {
    client: reqwest::Client,
    base: Arc<str>,
    dest: String,
}

/// How long a simulated node repeats a request the CSS answered as busy.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Small generator for retry jitter.
struct XorShift(u64);

impl XorShift {
    fn seeded(text: &str) -> Self {
        let seed = text.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
        XorShift(seed | 1)
    }

    /// A duration in `0..limit`.
    fn below(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = limit.as_micros().max(1) as u64;
        Duration::from_micros(self.0 % micros)
    }
}

/// Statuses after which a request is repeated: the CSS is busy or restarting.
fn retryable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)
}

impl SimNode {
    pub fn new(client: reqwest::Client, base: Arc<str>, dest_type: &str, id: &str) -> Self {
        SimNode {
            client,
            base,
            dest: format!("{ORG}/{dest_type}/{id}"),
        }
    }

    /// Sends a request built by `build` (the node's credentials and header added), repeating
    /// it for up to [`RETRY_FOR`] after busy answers (429 when the CSS's ranged-download slots
    /// are taken, 503…) and transient transport failures, with a growing, jittered pause.
    async fn send(
        &self,
        what: &str,
        timeout: Duration,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(5);
        let mut jitter = XorShift::seeded(&self.dest);
        loop {
            let sent = build()
                .basic_auth(&self.dest, Some(""))
                .header("X-Sync-Service-Dest", &self.dest)
                .timeout(timeout)
                .send()
                .await;
            let last_chance = started.elapsed() > RETRY_FOR;
            match sent {
                Ok(response) if !retryable(response.status()) => return Ok(response),
                Ok(response) if last_chance => {
                    return Err(format!("{} {what}: status {}", self.dest, response.status()))
                }
                Err(e) if last_chance || !(e.is_connect() || e.is_request()) || e.is_timeout() => {
                    return Err(format!("{} {what}: {}", self.dest, describe(&e)));
                }
                Err(e) if describe(&e).contains("ulimit") => {
                    return Err(format!("{} {what}: {}", self.dest, describe(&e)));
                }
                _ => {}
            }
            tokio::time::sleep(delay / 2 + jitter.below(delay)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    async fn put_expect(&self, path: &str, expected: &[u16]) -> Result<u16, String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .send(&format!("PUT {path}"), Duration::from_secs(60), || {
                self.client.put(&url)
            })
            .await?;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        if !expected.contains(&status) {
            return Err(format!(
                "{} PUT {path}: status {status}: {}",
                self.dest,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(status)
    }

    /// `PUT /spi/v1/register-new/...`.
    pub async fn register_new(&self) -> Result<(), String> {
        self.put_expect(
            &format!("/spi/v1/register-new/{}?persistent-storage=true", self.dest),
            &[204],
        )
        .await
        .map(|_| ())
    }

    /// One poll, long (`wait` seconds) or plain; the items, empty for a 204.
    pub async fn poll(&self, wait: Option<u64>) -> Result<Vec<PollItem>, String> {
        let url = match wait {
            Some(seconds) => format!("{}/spi/v1/objects/?wait={seconds}", self.base),
            None => format!("{}/spi/v1/objects/", self.base),
        };
        let timeout = Duration::from_secs(wait.unwrap_or(0) + 60);
        let response = self.send("poll", timeout, || self.client.get(&url)).await?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{} poll: {}", self.dest, describe(&e)))?;
        match status {
            204 => Ok(Vec::new()),
            200 => serde_json::from_slice(&body).map_err(|e| format!("{} poll: bad JSON: {e}", self.dest)),
            _ => Err(format!(
                "{} poll: status {status}: {}",
                self.dest,
                String::from_utf8_lossy(&body)
            )),
        }
    }

    fn object_path(meta: &MetaData, tail: &str) -> String {
        format!(
            "/spi/v1/objects/{}/{}/{}/{}/{}/{tail}",
            meta.destination_org_id, meta.object_type, meta.object_id, meta.instance_id, meta.data_id
        )
    }

    /// An object action (`updated`, `received`…); 204 expected, 409 (already done) accepted.
    pub async fn action(&self, meta: &MetaData, action: &str) -> Result<(), String> {
        self.put_expect(&Self::object_path(meta, action), &[204, 409])
            .await
            .map(|_| ())
    }

    /// Downloads the object's data as the ESS does: whole when it fits in one chunk, else
    /// in sequential `Range` chunks of `chunkSize`. Returns the byte count.
    pub async fn download(&self, meta: &MetaData) -> Result<u64, String> {
        self.download_checked(meta, |_, _| Ok(())).await
    }

    /// Like [`SimNode::download`], streaming: `check(offset, bytes)` sees every piece of the
    /// body as it arrives, so a node holds no more than one network read of the data.
    pub async fn download_checked(
        &self,
        meta: &MetaData,
        mut check: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<u64, String> {
        let url = format!("{}{}", self.base, Self::object_path(meta, "data"));
        let size = u64::try_from(meta.object_size).unwrap_or(0);
        let chunk = u64::try_from(meta.chunk_size).unwrap_or(0);
        let ranges: Vec<Option<(u64, u64)>> = if chunk == 0 || size <= chunk {
            vec![None]
        } else {
            (0..size.div_ceil(chunk))
                .map(|k| Some((k * chunk, ((k + 1) * chunk - 1).min(size - 1))))
                .collect()
        };
        let mut received = 0u64;
        for range in ranges {
            let mut response = self
                .send("data", Duration::from_secs(600), || {
                    let request = self.client.get(&url);
                    match range {
                        Some((start, end)) => request.header(reqwest::header::RANGE, format!("bytes={start}-{end}")),
                        None => request,
                    }
                })
                .await?;
            let status = response.status().as_u16();
            let (start, expected_len) = match (range, status) {
                (_, 200) => (0, size),
                (Some((start, end)), 206) => (start, end - start + 1),
                _ => {
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(format!(
                        "{} data {range:?}: status {status}: {}",
                        self.dest,
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    ));
                }
            };
            let mut got = 0u64;
            while let Some(piece) = response
                .chunk()
                .await
                .map_err(|e| format!("{} data: {}", self.dest, describe(&e)))?
            {
                check(start + got, &piece).map_err(|e| format!("{} data: {e}", self.dest))?;
                got += piece.len() as u64;
            }
            if got != expected_len {
                return Err(format!(
                    "{} data {range:?}: {got} bytes instead of {expected_len}",
                    self.dest
                ));
            }
            received += got;
            if status == 200 {
                break;
            }
        }
        Ok(received)
    }
}

// ---------------------------------------------------------------------------------------
// Admin side (the cloud application)

/// `PUT {obj}` with the given metadata JSON (objectID and objectType added).
pub async fn put_object(
    client: &reqwest::Client,
    base: &str,
    object_type: &str,
    id: &str,
    extra: serde_json::Value,
) -> Result<(), String> {
    let mut meta = serde_json::json!({"objectID": id, "objectType": object_type});
    if let (Some(meta), serde_json::Value::Object(extra)) = (meta.as_object_mut(), extra) {
        meta.extend(extra);
    }
    let response = client
        .put(format!("{base}/api/v1/objects/{ORG}/{object_type}/{id}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "meta": meta }).to_string())
        .send()
        .await
        .map_err(|e| format!("PUT {object_type}/{id}: {}", describe(&e)))?;
    expect(response, 204, &format!("PUT {object_type}/{id}")).await
}

/// `PUT {obj}/data` with the body.
pub async fn put_data(
    client: &reqwest::Client,
    base: &str,
    object_type: &str,
    id: &str,
    data: bytes::Bytes,
) -> Result<(), String> {
    let response = client
        .put(format!("{base}/api/v1/objects/{ORG}/{object_type}/{id}/data"))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(data)
        .send()
        .await
        .map_err(|e| format!("PUT {object_type}/{id}/data: {}", describe(&e)))?;
    expect(response, 204, &format!("PUT {object_type}/{id}/data")).await
}

async fn expect(response: reqwest::Response, status: u16, what: &str) -> Result<(), String> {
    let got = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    if got != status {
        return Err(format!("{what}: status {got}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// GET a body (an object's data) as the admin.
pub async fn get_bytes(client: &reqwest::Client, url: &str) -> Result<bytes::Bytes, String> {
    let response = client.get(url).send().await.map_err(|e| describe(&e))?;
    response.bytes().await.map_err(|e| describe(&e))
}

/// GET a JSON document as the admin; `None` for 404.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<Option<serde_json::Value>, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
    match status {
        404 => Ok(None),
        200 => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("GET {url}: bad JSON: {e}")),
        _ => Err(format!(
            "GET {url}: status {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

/// How many destinations of `{type}/{id}` the CSS lists as `delivered`, and how many it lists.
pub async fn delivered_count(
    client: &reqwest::Client,
    base: &str,
    object_type: &str,
    id: &str,
) -> Result<(usize, usize), String> {
    let url = format!("{base}/api/v1/objects/{ORG}/{object_type}/{id}/destinations");
    let list = get_json(client, &url).await?.unwrap_or_default();
    let entries = list.as_array().cloned().unwrap_or_default();
    let delivered = entries.iter().filter(|d| d["status"] == "delivered").count();
    Ok((delivered, entries.len()))
}

/// IDs of the edge nodes the CSS knows in the bench org.
pub async fn registered_ids(client: &reqwest::Client, base: &str) -> Result<Vec<String>, String> {
    let list = get_json(client, &format!("{base}/api/v1/destinations/{ORG}")).await?;
    Ok(list
        .and_then(|l| l.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d["destinationID"].as_str().map(str::to_string))
        .collect())
}

// ---------------------------------------------------------------------------------------
// Simulated fan-out

/// Starts a CSS, registers `nodes` simulated edge nodes that long-poll it, publishes a 1 MB
/// broadcast object and times its delivery to all of them.
pub async fn simulated(binary: &Path, nodes: usize) -> Result<FanoutStats, String> {
    ensure_descriptors(nodes as u64 + FD_MARGIN, &format!("{nodes} simulated edge nodes"))?;
    let dir = TempDir::create()?;
    let mut css = Server::start(binary, dir.path())?;
    let result = simulated_on(&mut css, nodes).await;
    css.stop();
    result.map_err(|e| format!("{e}{}", css.log_tail()))
}

async fn simulated_on(css: &mut Server, nodes: usize) -> Result<FanoutStats, String> {
    let admin = crate::http_client()?;
    let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{}", css.port));
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    fanout_over(&[(base, css.pid())], nodes).await
}

/// The simulated fan-out over CSS instances sharing one store, given by base URL and
/// process ID: node `i` registers with and polls instance `i % n`, the object is published
/// through the first; CPU is summed over the instances, RSS is the first one's.
pub async fn fanout_over(instances: &[(Arc<str>, u32)], nodes: usize) -> Result<FanoutStats, String> {
    let admin = crate::http_client()?;
    let (base, pid) = instances.first().cloned().ok_or("no CSS instance")?;
    let client = node_client(nodes + 16)?;

    crate::progress(&format!("fan-out: registering {nodes} simulated edge nodes"));
    let registered = Arc::new(AtomicUsize::new(0));
    let registered_signal = Arc::new(Notify::new());
    let gate = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Instant, String>>();
    let setup_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..nodes {
        let polled = instances[i % instances.len()].0.clone();
        let node = SimNode::new(client.clone(), polled, "edge", &format!("n{i}"));
        let (registered, signal, gate, done) = (
            registered.clone(),
            registered_signal.clone(),
            gate.clone(),
            done_tx.clone(),
        );
        tasks.spawn(async move {
            let outcome = async {
                {
                    let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
                    node.register_new().await?;
                }
                registered.fetch_add(1, Ordering::SeqCst);
                signal.notify_one();
                fanout_node(&node).await
            }
            .await;
            if outcome.is_err() {
                // Also wakes the registration wait.
                signal.notify_one();
            }
            let _ = done.send(outcome);
        });
    }
    drop(done_tx);

    // Every node registered (or the first failure).
    loop {
        let notified = registered_signal.notified();
        if registered.load(Ordering::SeqCst) == nodes {
            break;
        }
        if let Ok(Err(e)) = done_rx.try_recv() {
            tasks.abort_all();
            return Err(e);
        }
        if setup_start.elapsed() > Duration::from_secs(120) {
            tasks.abort_all();
            return Err(format!(
                "only {} of {nodes} nodes registered within 120 s",
                registered.load(Ordering::SeqCst)
            ));
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
    let setup = setup_start.elapsed();
    // Let the first long polls park.
    tokio::time::sleep(Duration::from_millis(500)).await;

    crate::progress(&format!("fan-out: 1 MB broadcast object to {nodes} nodes"));
    let id = "f1";
    put_object(&admin, &base, FANOUT_TYPE, id, serde_json::json!({})).await?;
    let data = Content::new().block(0, FANOUT_SIZE);
    let sampler = RssSampler::start(pid);
    let cpu_ticks = || -> Option<u64> { instances.iter().map(|(_, pid)| server::cpu_ticks(*pid)).sum() };
    let cpu_before = cpu_ticks();
    let sent = put_data(&admin, &base, FANOUT_TYPE, id, data).await;
    let start = Instant::now();
    let mut finished = Vec::with_capacity(nodes);
    let mut failure = sent.err();
    while failure.is_none() && finished.len() < nodes {
        match tokio::time::timeout(Duration::from_secs(60), done_rx.recv()).await {
            Ok(Some(Ok(at))) => finished.push(at.saturating_duration_since(start)),
            Ok(Some(Err(e))) => failure = Some(e),
            Ok(None) => failure = Some("the simulated nodes stopped".into()),
            Err(_) => {
                failure = Some(format!(
                    "only {} of {nodes} nodes received the object within 60 s of the last one",
                    finished.len()
                ))
            }
        }
    }
    let total = start.elapsed();
    let cpu = server::cpu_seconds(cpu_before, cpu_ticks());
    let (start_rss_kb, peak_rss_kb) = sampler.finish();
    tasks.abort_all();
    if let Some(e) = failure {
        return Err(e);
    }
    let (delivered, listed) = delivered_count(&admin, &base, FANOUT_TYPE, id).await?;
    if delivered != nodes {
        return Err(format!(
            "the CSS lists {delivered} of {listed} destinations as delivered, expected {nodes}"
        ));
    }
    finished.sort_unstable();
    Ok(FanoutStats {
        nodes,
        setup,
        total,
        per_node: finished,
        start_rss_kb,
        peak_rss_kb,
        cpu_seconds: cpu,
        delivered,
        ess_rss_kb: None,
    })
}

/// A node's life during the fan-out: long polls until the fanned-out object arrives, then
/// `updated`, the download and `received`; returns when `received` was answered.
async fn fanout_node(node: &SimNode) -> Result<Instant, String> {
    loop {
        for item in node.poll(Some(FANOUT_WAIT)).await? {
            if item.kind != "update" || item.meta.object_type != FANOUT_TYPE {
                continue;
            }
            let meta = &item.meta;
            node.action(meta, "updated").await?;
            let bytes = node.download(meta).await?;
            if bytes != FANOUT_SIZE || meta.object_size != FANOUT_SIZE as i64 {
                return Err(format!(
                    "downloaded {bytes} bytes of {}/{} (objectSize {}), expected {FANOUT_SIZE}",
                    meta.object_type, meta.object_id, meta.object_size
                ));
            }
            node.action(meta, "received").await?;
            return Ok(Instant::now());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Real ESS processes

/// One ESS process of the release binary with its own persistence folder.
pub struct EssProcess {
    child: Child,
    pub id: String,
    pub port: u16,
    log: PathBuf,
}

impl EssProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The exit status if the process has ended.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nESS {} log:\n{tail}", self.id)
        }
    }
}

/// Free loopback ports, distinct from each other (all held until every one is chosen).
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect()
}

/// ESS processes `edge/n{i}` of org `bench`, all stopped (by pid) when dropped.
pub struct EssFleet {
    pub members: Vec<EssProcess>,
}

impl EssFleet {
    pub fn new() -> Self {
        EssFleet { members: Vec::new() }
    }

    /// Starts ESS processes `n{first}..n{first+count}` for the CSS on `css_port`, each with its
    /// own folder under `dir`.
    pub fn spawn(
        &mut self,
        binary: &Path,
        dir: &Path,
        css_port: u16,
        first: usize,
        count: usize,
    ) -> Result<(), String> {
        let ports = free_ports(count)?;
        for (k, port) in ports.into_iter().enumerate() {
            let id = format!("n{}", first + k);
            let home = dir.join(format!("ess-{id}"));
            let persist = home.join("persist");
            std::fs::create_dir_all(&persist).map_err(|e| format!("cannot create {}: {e}", persist.display()))?;
            let log = home.join("ess.log");
            let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
            let child = Command::new(binary)
                .arg("-c")
                .arg(home.join("no-such-sync.conf"))
                .env("NODE_TYPE", "ESS")
                .env("DESTINATION_TYPE", "edge")
                .env("DESTINATION_ID", &id)
                .env("ORG_ID", ORG)
                .env("COMMUNICATION_PROTOCOL", "http")
                .env("HTTP_CSS_HOST", "127.0.0.1")
                .env("HTTP_CSS_PORT", css_port.to_string())
                .env("LISTENING_TYPE", "unsecure")
                .env("LISTENING_ADDRESS", "127.0.0.1")
                .env("UNSECURE_LISTENING_PORT", port.to_string())
                .env("PERSISTENCE_ROOT_PATH", &persist)
                .env("HTTP_POLLING_INTERVAL", "10")
                .env("LOG_LEVEL", "WARNING")
                .env("LOG_TRACE_DESTINATION", "stdout")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(
                    log_file
                        .try_clone()
                        .map_err(|e| format!("cannot share {}: {e}", log.display()))?,
                )
                .stderr(log_file)
                .spawn()
                .map_err(|e| format!("cannot start ESS {id} ({}): {e}", binary.display()))?;
            self.members.push(EssProcess { child, id, port, log });
        }
        Ok(())
    }

    /// Waits until the CSS lists every member as a destination; fails early when a member
    /// exits.
    pub async fn wait_registered(
        &mut self,
        admin: &reqwest::Client,
        css_base: &str,
        deadline: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            for member in &mut self.members {
                if let Some(status) = member.exited() {
                    return Err(format!("ESS {} exited ({status}){}", member.id, member.log_tail()));
                }
            }
            let known = registered_ids(admin, css_base).await.unwrap_or_default();
            let missing: Vec<&str> = self
                .members
                .iter()
                .filter(|m| !known.contains(&m.id))
                .map(|m| m.id.as_str())
                .collect();
            if missing.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > deadline {
                let tail = self
                    .members
                    .iter()
                    .find(|m| m.id == missing[0])
                    .map(EssProcess::log_tail)
                    .unwrap_or_default();
                return Err(format!(
                    "{} of {} ESS processes did not appear in GET /api/v1/destinations/{ORG} within {deadline:?} (first: {}){tail}",
                    missing.len(),
                    self.members.len(),
                    missing[0]
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM to every member by pid, SIGKILL to those still running after a grace period.
    pub fn stop(&mut self) {
        let mut running = Vec::new();
        for member in &mut self.members {
            if member.exited().is_none() {
                running.push(member.pid().to_string());
            }
        }
        if !running.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&running)
                .stderr(Stdio::null())
                .status();
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) && self.members.iter_mut().any(|m| m.exited().is_none()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for member in &mut self.members {
            if member.exited().is_none() {
                let _ = member.child.kill();
            }
            let _ = member.child.wait();
        }
        self.members.clear();
    }
}

impl Drop for EssFleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the ESS lists `{type}/{id}` in `GET /api/v1/objects/{type}` (an ESS's paths carry
/// no org: objects it received completely that the application has not yet marked received).
pub async fn ess_lists(client: &reqwest::Client, ess_base: &str, object_type: &str, id: &str) -> bool {
    let url = format!("{ess_base}/api/v1/objects/{object_type}");
    let Ok(response) = client.get(&url).send().await else {
        return false;
    };
    if response.status() != reqwest::StatusCode::OK {
        return false;
    }
    let Ok(body) = response.bytes().await else {
        return false;
    };
    let needle = format!("\"{id}\"");
    body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// For every member of `fleet` in order, the time from `start` until it listed
/// `{object_type}/{id}` ([`ess_lists`], asked every `period`); `None` for a member that did
/// not within `deadline` of `start`.
pub async fn wait_listed(
    client: &reqwest::Client,
    fleet: &EssFleet,
    object_type: &str,
    id: &str,
    start: Instant,
    period: Duration,
    deadline: Duration,
) -> Vec<Option<Duration>> {
    let watchers = fleet.members.iter().map(|member| {
        let base = member.base();
        async move {
            loop {
                if ess_lists(client, &base, object_type, id).await {
                    return Some(start.elapsed());
                }
                if start.elapsed() > deadline {
                    return None;
                }
                tokio::time::sleep(period).await;
            }
        }
    });
    futures_util::future::join_all(watchers).await
}

/// The real-process fan-out on a CSS and fleet already running and registered: a 1 MB
/// broadcast object, timed until every ESS lists it.
pub async fn real(
    admin: &reqwest::Client,
    css_base: &str,
    css_pid: u32,
    fleet: &EssFleet,
    setup: Duration,
) -> Result<FanoutStats, String> {
    let nodes = fleet.members.len();
    let id = "r1";
    put_object(admin, css_base, FANOUT_TYPE, id, serde_json::json!({})).await?;
    let data = Content::new().block(0, FANOUT_SIZE);
    let sampler = RssSampler::start(css_pid);
    let cpu_before = server::cpu_ticks(css_pid);
    let sent = put_data(admin, css_base, FANOUT_TYPE, id, data).await;
    let start = Instant::now();
    if let Err(e) = sent {
        sampler.finish();
        return Err(e);
    }
    // Each ESS is asked every 100 ms (every 20 ms for small fleets) until it lists the object.
    let period = if nodes > 20 {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(20)
    };
    let listed = wait_listed(admin, fleet, FANOUT_TYPE, id, start, period, Duration::from_secs(60)).await;
    let mut finished: Vec<Duration> = listed.into_iter().flatten().collect();
    let total = start.elapsed();
    let cpu = server::cpu_seconds(cpu_before, server::cpu_ticks(css_pid));
    let (start_rss_kb, peak_rss_kb) = sampler.finish();
    if finished.len() < nodes {
        return Err(format!(
            "only {} of {nodes} ESS processes listed the object within 60 s",
            finished.len()
        ));
    }
    finished.sort_unstable();
    let total = finished.last().copied().unwrap_or(total);
    let mut ess_rss: Vec<u64> = fleet.members.iter().filter_map(|m| server::rss_kb(m.pid())).collect();
    ess_rss.sort_unstable();
    // The ESS reports `received` after listing; give the last ones a moment.
    let mut delivered = 0;
    for _ in 0..50 {
        delivered = delivered_count(admin, css_base, FANOUT_TYPE, id).await?.0;
        if delivered == nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(FanoutStats {
        nodes,
        setup,
        total,
        per_node: finished,
        start_rss_kb,
        peak_rss_kb,
        cpu_seconds: cpu,
        delivered,
        ess_rss_kb: ess_rss.get(ess_rss.len().saturating_sub(1) / 2).copied(),
    })
}

/// What the real-process phase found.
pub enum RealOutcome {
    /// The binary does not (yet) work as an HTTP ESS: why.
    NotMeasurable(String),
    Measured {
        fanout: Result<FanoutStats, String>,
        propagation: Result<crate::propagation::Latencies, String>,
    },
}

/// Real ESS processes: checks with one ESS that the binary registers with a CSS over HTTP;
/// if so, runs `count` of them, fans a 1 MB object out to all, and measures propagation of
/// `objects` objects to the first one. Every process is stopped at the end, also on errors.
pub async fn real_processes(binary: &Path, count: usize, objects: usize) -> Result<RealOutcome, String> {
    // Declared first: dropped last, after the processes using it stopped.
    let dir = TempDir::create()?;
    let mut css = Server::start(binary, dir.path())?;
    let admin = crate::http_client()?;
    let base = format!("http://127.0.0.1:{}", css.port);
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    // Declared after the CSS: stopped before it.
    let mut fleet = EssFleet::new();
    crate::progress("real ESS: checking that one ESS process registers with the CSS over HTTP");
    fleet.spawn(binary, dir.path(), css.port, 0, 1)?;
    if let Err(reason) = fleet.wait_registered(&admin, &base, Duration::from_secs(15)).await {
        fleet.stop();
        css.stop();
        return Ok(RealOutcome::NotMeasurable(reason));
    }
    crate::progress(&format!(
        "real ESS: starting {} more ESS processes",
        count.saturating_sub(1)
    ));
    let spawned = Instant::now();
    fleet.spawn(binary, dir.path(), css.port, 1, count.saturating_sub(1))?;
    let fanout = match fleet.wait_registered(&admin, &base, Duration::from_secs(60)).await {
        Ok(_) => {
            crate::progress(&format!("real ESS: 1 MB broadcast object to {count} ESS processes"));
            real(&admin, &base, css.pid(), &fleet, spawned.elapsed()).await
        }
        Err(e) => Err(e),
    };
    crate::progress(&format!("real ESS: propagation of {objects} objects to ESS n0"));
    let propagation = crate::propagation::real(&admin, &base, &fleet, objects, Duration::from_secs(60)).await;
    fleet.stop();
    let tail = css.log_tail();
    css.stop();
    Ok(RealOutcome::Measured {
        fanout: fanout.map_err(|e| format!("{e}{tail}")),
        propagation: propagation.map_err(|e| format!("{e}{tail}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&ms, 0.5), 50.0);
        assert_eq!(quantile_ms(&ms, 0.99), 99.0);
        assert_eq!(quantile_ms(&ms[..1], 0.99), 1.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn jitter_stays_below_its_limit() {
        let mut jitter = XorShift::seeded("bench/edge/n1");
        for _ in 0..1000 {
            assert!(jitter.below(Duration::from_millis(7)) < Duration::from_millis(7));
        }
    }
}
