//! `kill -9` trials: a CSS or an ESS is killed at seeded random points of whole uploads,
//! chunked uploads, fan-outs to several ESS, downloads and ESS-origin uploads, then started
//! again. A ledger records every acknowledged write with the SHA-256 of its data and is the
//! oracle: after the restart each acknowledged object must be served whole by the node that
//! acknowledged it, a cut-off chunked upload must take its remaining chunks and complete, each
//! receiving application must be handed every object once, and a transfer cut by a kill must
//! fetch again at most two chunks. `KILL_TRIALS` sets the trials per kind, `TRIAL_SEED` the
//! seed (each trial prints its own); each kind ends with a summary line.

mod common;

use bytes::Bytes;
use common::faults::{Fault, FaultProxy};
use common::kill_points::{acknowledged, feed_and_kill, feed_and_kill_when, wait_relayed, Feed, KillPoint, PIECE};
use common::sync::{css_with, http_ess, wait_registered};
use common::trials::{sha256, Inbox, Ledger, Schedule, SplitMix64, Tally};
use common::TestNode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Chunk size of transfers between nodes and of the applications' chunked uploads: small, so
/// that "at most two chunks fetched again" is a measurable bound.
const CHUNK: u64 = 64 * 1024;
/// Most bytes a transfer cut by a kill may send again: the chunk in flight and the one being
/// stored when the kill came.
const REFETCH_LIMIT: u64 = 2 * CHUNK;
/// Rate of the proxies between nodes: slow enough for a kill to land inside a transfer.
const PROXY_RATE: u64 = 8 * 1024 * 1024;
/// Objects the CSS's applications write.
const MODEL: &str = "model";
/// Objects an ESS's applications write.
const SENSOR: &str = "sensor";
/// How long a resumed chunked upload may take to become `ready`.
const READY_DEADLINE: Duration = Duration::from_secs(20);

fn css() -> TestNode {
    css_with(&[("MAX_DATA_CHUNK_SIZE", &CHUNK.to_string())])
}

/// ESS `edge`/`node{number}` of the CSS reached on `port` (the CSS itself or a proxy to it).
fn ess(port: u16, number: usize) -> TestNode {
    http_ess(
        port,
        &[
            ("DESTINATION_ID", &format!("node{number}")),
            ("MAX_DATA_CHUNK_SIZE", &CHUNK.to_string()),
        ],
    )
}

/// SHA-256 of the data `node` serves for the object at `path`, if it serves any.
async fn served(node: &TestNode, path: &str) -> Option<String> {
    let response = node.api().get(&format!("{path}/data")).await;
    (response.status == 200).then(|| sha256(&response.body))
}

/// Judges what `node` serves of `id` after a restart; only objects with an acknowledged write
/// count as checked ones.
async fn check_served(node: &TestNode, path: &str, id: &str, ledger: &Ledger, tally: &mut Tally, label: &str) {
    let verdict = ledger.judge(id, served(node, path).await.as_deref());
    let what = format!("{id} at {label} after its restart");
    if ledger.latest(id).is_some() {
        tally.check(&what, verdict);
    } else {
        tally.check_unacknowledged(&what, verdict);
    }
}

/// Uploads the whole `data` of an object; true when acknowledged.
async fn put_whole(node: &TestNode, path: &str, data: &[u8]) -> bool {
    node.api()
        .put_bytes(&format!("{path}/data"), data.to_vec())
        .await
        .status
        == 204
}

/// A CSS with `count` ESS, each reaching it through a counting proxy when `proxied`.
struct Fleet {
    css: TestNode,
    proxies: Vec<FaultProxy>,
    esses: Vec<TestNode>,
    inboxes: Vec<Inbox>,
}

impl Fleet {
    async fn start(count: usize, proxied: bool) -> Self {
        let css = css();
        let mut proxies = Vec::new();
        let mut esses = Vec::new();
        for number in 1..=count {
            let port = if proxied {
                let proxy = FaultProxy::start(css.port()).await;
                proxy.set(Fault::Bandwidth(PROXY_RATE));
                proxies.push(proxy);
                proxies[number - 1].port()
            } else {
                css.port()
            };
            esses.push(ess(port, number));
            wait_registered(&css, &esses[number - 1], &format!("node{number}")).await;
        }
        let inboxes = (1..=count).map(|n| Inbox::new(format!("node{n}"), MODEL)).collect();
        Self {
            css,
            proxies,
            esses,
            inboxes,
        }
    }

    /// Has every ESS's application take the last acknowledged data of `ids`.
    async fn deliver(&mut self, ids: &[String], ledger: &Ledger, tally: &mut Tally) {
        for (ess, inbox) in self.esses.iter().zip(self.inboxes.iter_mut()) {
            inbox.receive(ess, ids, ledger, tally).await;
        }
    }

    /// Publishes `id`, of random size and content, to every ESS and waits until the proxy of
    /// ESS number `watched` (from 0) relayed a random part of it. Returns the object's path,
    /// its size and what each proxy had relayed before.
    async fn publish_until_part_relayed(
        &self,
        id: &str,
        watched: usize,
        rng: &mut SplitMix64,
        ledger: &mut Ledger,
    ) -> (String, u64, Vec<u64>) {
        let path = self.css.obj(MODEL, id);
        let size = rng.between(8 * CHUNK, 40 * CHUNK);
        let data = rng.bytes(size as usize);
        let before = self.sent_back();
        self.css
            .api()
            .create(&path, json!({"destinationType": "edge"}), None)
            .await;
        let write = ledger.attempt(id, &data);
        assert!(put_whole(&self.css, &path, &data).await, "upload of {id}");
        ledger.acknowledge(id, write);
        let proxy = &self.proxies[watched];
        wait_relayed(|| proxy.bytes_down(), before[watched], size * rng.below(101) / 100).await;
        (path, size, before)
    }

    /// Bytes each proxy relayed to its ESS so far.
    fn sent_back(&self) -> Vec<u64> {
        self.proxies.iter().map(FaultProxy::bytes_down).collect()
    }

    /// Records, per proxy, the bytes relayed since `before` beyond the `size` of the one object
    /// of `id` that moved: what was fetched again (protocol messages included).
    fn record_refetched(&self, id: &str, before: &[u64], size: u64, tally: &mut Tally) {
        for (number, (now, then)) in self.sent_back().iter().zip(before).enumerate() {
            let what = format!("{id} to node{}", number + 1);
            tally.refetched(&what, (now - then).saturating_sub(size), REFETCH_LIMIT);
        }
    }
}

/// A CSS is killed while applications upload whole objects (new ones and new versions) that
/// fan out to two ESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn css_killed_during_whole_uploads() {
    let schedule = Schedule::from_env("css-whole-uploads");
    let mut tally = Tally::new(schedule.kind);
    let mut fleet = Fleet::start(2, false).await;
    let mut ledger = Ledger::default();
    let mut written: Vec<String> = Vec::new();
    for trial in 0..schedule.trials {
        let mut rng = schedule.trial(trial);
        let mut ids = Vec::new();
        for upload in 0..rng.between(2, 4) {
            let id = if !written.is_empty() && rng.chance(30) {
                written[rng.below(written.len() as u64) as usize].clone()
            } else {
                let id = format!("whole-{trial}-{upload}");
                let path = fleet.css.obj(MODEL, &id);
                fleet
                    .css
                    .api()
                    .create(&path, json!({"destinationType": "edge"}), None)
                    .await;
                written.push(id.clone());
                id
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let api = fleet.css.api();
        let mut feeds = Vec::new();
        let mut uploads = Vec::new();
        for id in &ids {
            let size = rng.between(1, 24 * CHUNK);
            let data = rng.bytes(size as usize);
            let write = ledger.attempt(id, &data);
            let (sender, task) = api.put_data_streamed(&fleet.css.obj(MODEL, id), None);
            feeds.push(Feed::new(sender, data.clone()));
            uploads.push((id.clone(), data, write, task));
        }
        let total = feeds.iter().map(Feed::len).sum();
        feed_and_kill(&mut fleet.css, &mut feeds, KillPoint::draw(&mut rng, total)).await;
        let mut cut_off = Vec::new();
        for (id, data, write, task) in uploads {
            if acknowledged(task).await {
                ledger.acknowledge(&id, write);
            } else {
                cut_off.push((id, data));
            }
        }
        fleet.css.restart();
        for id in &ids {
            check_served(
                &fleet.css,
                &fleet.css.obj(MODEL, id),
                id,
                &ledger,
                &mut tally,
                "the CSS",
            )
            .await;
        }
        // The application sends again what was not acknowledged, as it would.
        for (id, data) in cut_off {
            let write = ledger.attempt(&id, &data);
            if put_whole(&fleet.css, &fleet.css.obj(MODEL, &id), &data).await {
                ledger.acknowledge(&id, write);
            } else {
                tally.fail(format!("{id}: upload refused after the restart"));
            }
        }
        fleet.deliver(&ids, &ledger, &mut tally).await;
        tally.trials += 1;
    }
    tally.finish();
}

/// A CSS is killed during chunked uploads (`Content-Range`); after the restart the application
/// sends the chunks that were not acknowledged, and the objects must complete and fan out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn css_killed_during_chunked_uploads() {
    let schedule = Schedule::from_env("css-chunked-uploads");
    let mut tally = Tally::new(schedule.kind);
    let mut fleet = Fleet::start(2, false).await;
    let mut ledger = Ledger::default();
    for trial in 0..schedule.trials {
        let mut rng = schedule.trial(trial);
        let mut uploads = Vec::new();
        for upload in 0..rng.between(1, 2) {
            let id = format!("chunked-{trial}-{upload}");
            let path = fleet.css.obj(MODEL, &id);
            fleet
                .css
                .api()
                .create(&path, json!({"destinationType": "edge"}), None)
                .await;
            let size = rng.between(3 * CHUNK, 10 * CHUNK) + rng.below(CHUNK);
            let data = rng.bytes(size as usize);
            let write = ledger.attempt(&id, &data);
            let chunks: Vec<u64> = (0..size.div_ceil(CHUNK)).map(|c| c * CHUNK).collect();
            uploads.push(ChunkedUpload {
                id,
                path,
                data,
                write,
                unacknowledged: chunks,
            });
        }
        let order = chunk_order(&uploads);
        let kill = ChunkKill::draw(&mut rng, &order);
        send_chunks_and_kill(&mut fleet.css, &mut uploads, &order, kill).await;
        fleet.css.restart();
        for upload in &uploads {
            if upload.unacknowledged.is_empty() {
                ledger.acknowledge(&upload.id, upload.write);
            }
            check_served(&fleet.css, &upload.path, &upload.id, &ledger, &mut tally, "the CSS").await;
        }
        for upload in &mut uploads {
            if !upload.unacknowledged.is_empty() {
                resume(&fleet.css, upload, &mut ledger, &mut tally).await;
            }
        }
        let ids: Vec<String> = uploads.iter().map(|u| u.id.clone()).collect();
        let settled: Vec<String> = ids.into_iter().filter(|id| ledger.settled(id)).collect();
        fleet.deliver(&settled, &ledger, &mut tally).await;
        tally.trials += 1;
    }
    tally.finish();
}

/// A chunked upload of one object and the chunks (by start offset) not acknowledged yet.
struct ChunkedUpload {
    id: String,
    path: String,
    data: Vec<u8>,
    write: usize,
    unacknowledged: Vec<u64>,
}

impl ChunkedUpload {
    fn chunk(&self, start: u64) -> (String, &[u8]) {
        let end = (start + CHUNK).min(self.data.len() as u64);
        let range = format!("bytes {start}-{}/{}", end - 1, self.data.len());
        (range, &self.data[start as usize..end as usize])
    }
}

/// The order chunks are sent in: the uploads in turns, each from its first chunk on, as
/// (upload, chunk start) pairs.
fn chunk_order(uploads: &[ChunkedUpload]) -> Vec<(usize, u64)> {
    let rounds = uploads.iter().map(|u| u.unacknowledged.len()).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            uploads
                .iter()
                .enumerate()
                .filter_map(move |(upload, u)| u.unacknowledged.get(round).map(|&start| (upload, start)))
        })
        .collect()
}

/// Where a run of chunked uploads is cut: during chunk `chunk` of the order (past the last
/// one: after all), once `pieces` pieces of its body went out; a body sent whole is cut
/// `delay` after it ended, around its answer.
#[derive(Debug, Clone, Copy)]
struct ChunkKill {
    chunk: usize,
    pieces: usize,
    delay: Duration,
}

impl ChunkKill {
    fn draw(rng: &mut SplitMix64, order: &[(usize, u64)]) -> Self {
        let pieces_per_chunk = (CHUNK as usize).div_ceil(PIECE);
        // The last chunk of an upload completes it, the step with the most to commit: a third
        // of the kills land on one, around its answer.
        let last_chunks: Vec<usize> = (0..order.len())
            .filter(|&n| order[n + 1..].iter().all(|(upload, _)| *upload != order[n].0))
            .collect();
        let (chunk, pieces) = if rng.chance(33) {
            let chunk = last_chunks[rng.below(last_chunks.len() as u64) as usize];
            (chunk, pieces_per_chunk)
        } else {
            let chunk = rng.below(order.len() as u64 + 1) as usize;
            (chunk, rng.below(pieces_per_chunk as u64 + 1) as usize)
        };
        let delay = Duration::from_micros(rng.below(20_000));
        Self { chunk, pieces, delay }
    }
}

/// Sends the chunks of `uploads` in `order`, one request at a time, and kills `node` as `kill`
/// says.
async fn send_chunks_and_kill(
    node: &mut TestNode,
    uploads: &mut [ChunkedUpload],
    order: &[(usize, u64)],
    kill: ChunkKill,
) {
    let api = node.api();
    for (number, &(index, start)) in order.iter().enumerate() {
        let upload = &mut uploads[index];
        let (range, body) = upload.chunk(start);
        let (sender, task) = api.put_data_streamed(&upload.path, Some(range));
        let pieces: Vec<&[u8]> = body.chunks(PIECE).collect();
        let killed_here = number == kill.chunk;
        let sent = if killed_here {
            kill.pieces.min(pieces.len())
        } else {
            pieces.len()
        };
        for piece in &pieces[..sent] {
            let _ = sender.send(Bytes::copy_from_slice(piece)).await;
        }
        match (killed_here, sent == pieces.len()) {
            (false, _) => drop(sender),
            (true, true) => {
                drop(sender);
                tokio::time::sleep(kill.delay).await;
                node.kill9();
            }
            (true, false) => {
                node.kill9();
                drop(sender);
            }
        }
        if acknowledged(task).await {
            upload.unacknowledged.retain(|&s| s != start);
        }
        if killed_here {
            return;
        }
    }
    tokio::time::sleep(kill.delay).await;
    node.kill9();
}

/// Sends the chunks of `upload` that were not acknowledged; the object must then become
/// `ready` with the whole data.
async fn resume(node: &TestNode, upload: &mut ChunkedUpload, ledger: &mut Ledger, tally: &mut Tally) {
    let api = node.api();
    for start in std::mem::take(&mut upload.unacknowledged) {
        let (range, body) = upload.chunk(start);
        let request = api
            .request(
                reqwest::Method::PUT,
                &format!("{}/data", upload.path),
                Some(common::ADMIN),
            )
            .header("Content-Range", range.clone())
            .body(body.to_vec());
        let response = api.send(request).await;
        if response.status != 204 {
            tally.fail(format!(
                "{}: chunk {range} refused after the restart: {}",
                upload.id, response.status
            ));
            return;
        }
    }
    let deadline = Instant::now() + READY_DEADLINE;
    while api.status_of(&upload.path).await != "ready" {
        if Instant::now() >= deadline {
            tally.fail(format!("{}: the resumed upload never became ready", upload.id));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ledger.acknowledge(&upload.id, upload.write);
    let verdict = ledger.judge(&upload.id, served(node, &upload.path).await.as_deref());
    tally.check(&format!("{} completed by its resumed upload", upload.id), verdict);
}

/// A CSS is killed while it sends an object to three ESS at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn css_killed_during_fan_outs() {
    let schedule = Schedule::from_env("css-fan-outs");
    let mut tally = Tally::new(schedule.kind);
    let mut fleet = Fleet::start(3, true).await;
    let mut ledger = Ledger::default();
    for trial in 0..schedule.trials {
        let mut rng = schedule.trial(trial);
        let id = format!("fan-out-{trial}");
        let watched = rng.below(fleet.proxies.len() as u64) as usize;
        let (path, size, before) = fleet
            .publish_until_part_relayed(&id, watched, &mut rng, &mut ledger)
            .await;
        fleet.css.kill9();
        fleet.css.restart();
        check_served(&fleet.css, &path, &id, &ledger, &mut tally, "the CSS").await;
        fleet.deliver(std::slice::from_ref(&id), &ledger, &mut tally).await;
        fleet.record_refetched(&id, &before, size, &mut tally);
        tally.trials += 1;
    }
    tally.finish();
}

/// An ESS is killed while it downloads an object from its CSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ess_killed_during_downloads() {
    let schedule = Schedule::from_env("ess-downloads");
    let mut tally = Tally::new(schedule.kind);
    let mut fleet = Fleet::start(1, true).await;
    let mut ledger = Ledger::default();
    for trial in 0..schedule.trials {
        let mut rng = schedule.trial(trial);
        let id = format!("download-{trial}");
        let (_, size, before) = fleet.publish_until_part_relayed(&id, 0, &mut rng, &mut ledger).await;
        tokio::time::sleep(Duration::from_micros(rng.below(20_000))).await;
        fleet.esses[0].kill9();
        fleet.esses[0].restart();
        fleet.deliver(std::slice::from_ref(&id), &ledger, &mut tally).await;
        fleet.record_refetched(&id, &before, size, &mut tally);
        tally.trials += 1;
    }
    tally.finish();
}

/// An ESS is killed while its application uploads an object to it, or while it sends that
/// object on to its CSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ess_killed_during_its_own_uploads() {
    let schedule = Schedule::from_env("ess-uploads");
    let mut tally = Tally::new(schedule.kind);
    let fleet = Fleet::start(1, true).await;
    let (css, proxy, mut ess) = (fleet.css, &fleet.proxies[0], fleet.esses.into_iter().next().unwrap());
    let mut inbox = Inbox::new("the CSS", SENSOR);
    let mut ledger = Ledger::default();
    for trial in 0..schedule.trials {
        let mut rng = schedule.trial(trial);
        let id = format!("origin-{trial}");
        let path = ess.obj(SENSOR, &id);
        let size = rng.between(4 * CHUNK, 24 * CHUNK);
        let data = rng.bytes(size as usize);
        let before = proxy.bytes_up();
        ess.api().create(&path, json!({}), None).await;
        let write = ledger.attempt(&id, &data);
        let (sender, task) = ess.api().put_data_streamed(&path, None);
        let mut feeds = [Feed::new(sender, data.clone())];
        // Half of the points lie in the application's upload, half in the ESS's own.
        let at = rng.below(2 * size);
        if at < size {
            feed_and_kill(&mut ess, &mut feeds, KillPoint::Fed(at)).await;
        } else {
            feed_and_kill_when(&mut ess, &mut feeds, || proxy.bytes_up(), before, at - size).await;
        }
        let acknowledged_before_kill = acknowledged(task).await;
        if acknowledged_before_kill {
            ledger.acknowledge(&id, write);
        }
        ess.restart();
        check_served(&ess, &path, &id, &ledger, &mut tally, "the ESS").await;
        if !acknowledged_before_kill {
            let write = ledger.attempt(&id, &data);
            if put_whole(&ess, &path, &data).await {
                ledger.acknowledge(&id, write);
            } else {
                tally.fail(format!("{id}: upload refused after the restart"));
            }
        }
        inbox
            .receive(&css, std::slice::from_ref(&id), &ledger, &mut tally)
            .await;
        // A cut-off upload sent again is a second instance: only a single one measures resumption.
        if acknowledged_before_kill {
            let refetched = (proxy.bytes_up() - before).saturating_sub(size);
            tally.refetched(&format!("{id} to the CSS"), refetched, REFETCH_LIMIT);
        }
        tally.trials += 1;
    }
    tally.finish();
}
