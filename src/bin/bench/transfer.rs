//! Data transfers: streamed uploads and downloads of generated content, peak server RSS
//! while they run, and the `cp` baseline on the same disk.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generated data comes in blocks of this size; the checksum weighs each block by its index.
pub const BLOCK: u64 = 1 << 20;

/// Outcome of one upload or download.
pub struct TransferStats {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Server VmRSS when the transfer started, and its maximum while it ran.
    pub start_rss_kb: u64,
    pub peak_rss_kb: u64,
}

impl TransferStats {
    pub fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Deterministic content: a pseudo-random 1 MiB pattern whose first 8 bytes are replaced
/// by the block number in every block, so that blocks differ.
#[derive(Clone)]
pub struct Content {
    pattern: Bytes,
}

impl Content {
    pub fn new() -> Self {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut pattern = Vec::with_capacity(BLOCK as usize);
        while pattern.len() < BLOCK as usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            pattern.extend_from_slice(&state.to_le_bytes());
        }
        Content {
            pattern: Bytes::from(pattern),
        }
    }

    /// Block `k` of an object of `size` bytes (shorter for the last block).
    pub fn block(&self, k: u64, size: u64) -> Bytes {
        let len = (size - k * BLOCK).min(BLOCK) as usize;
        let header = k.to_le_bytes();
        let h = len.min(header.len());
        let mut block = BytesMut::with_capacity(len);
        block.extend_from_slice(&header[..h]);
        block.extend_from_slice(&self.pattern[h..len]);
        block.freeze()
    }

    pub fn blocks(size: u64) -> u64 {
        size.div_ceil(BLOCK)
    }

    /// The [`Checksum`] of the whole content of `size` bytes, computed without generating it.
    pub fn expected_checksum(&self, size: u64) -> u64 {
        let full_tail = byte_sum(&self.pattern[8..]);
        let mut sum = 0u64;
        for k in 0..Content::blocks(size) {
            let len = (size - k * BLOCK).min(BLOCK) as usize;
            let h = len.min(8);
            let header = byte_sum(&k.to_le_bytes()[..h]);
            let tail = if len == BLOCK as usize {
                full_tail
            } else {
                byte_sum(&self.pattern[h..len])
            };
            sum = sum.wrapping_add((header + tail).wrapping_mul(k + 1));
        }
        sum
    }
}

/// Sum of the bytes of a slice of at most one block (fits in u32, vectorizes well).
fn byte_sum(bytes: &[u8]) -> u64 {
    u64::from(bytes.iter().fold(0u32, |acc, &b| acc + u32::from(b)))
}

/// Cheap order-aware checksum: Σ over blocks k of (k + 1) × (sum of the bytes of block k),
/// independent of how the stream is cut into chunks.
#[derive(Default)]
pub struct Checksum {
    pub position: u64,
    pub sum: u64,
}

impl Checksum {
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let block = self.position / BLOCK;
            let room = (BLOCK - self.position % BLOCK) as usize;
            let take = room.min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            self.sum = self.sum.wrapping_add(byte_sum(head).wrapping_mul(block + 1));
            self.position += take as u64;
            bytes = rest;
        }
    }
}

/// Samples a process's VmRSS every 20 ms on its own thread and keeps the maximum.
pub struct RssSampler {
    start_kb: u64,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let start_kb = crate::server::rss_kb(pid).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = start_kb;
            loop {
                peak = peak.max(crate::server::rss_kb(pid).unwrap_or(0));
                if flag.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { start_kb, stop, thread }
    }

    /// Stops sampling and returns the RSS at the start and the peak, in kB.
    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.join().unwrap_or(0);
        (self.start_kb, peak.max(self.start_kb))
    }
}

/// Object type of the objects the transfer helpers create and read.
pub const BLOB_TYPE: &str = "blob";

fn object_url(base: &str, id: &str) -> String {
    format!("{base}/api/v1/objects/{}/{BLOB_TYPE}/{id}", crate::ORG)
}

/// Creates object `blob/{id}` and streams `size` bytes of generated content into it.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    size: u64,
    content: &Content,
    pid: u32,
) -> Result<TransferStats, String> {
    let meta = format!(r#"{{"meta":{{"objectID":"{id}","objectType":"{BLOB_TYPE}"}}}}"#);
    let response = client
        .put(object_url(base, id))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(meta)
        .send()
        .await
        .map_err(|e| format!("PUT blob/{id}: {e}"))?;
    expect_status(response, reqwest::StatusCode::NO_CONTENT, &format!("PUT blob/{id}")).await?;
    upload_data(client, base, id, size, content, pid).await
}

/// Streams `size` bytes of generated content into the data of the existing object
/// `blob/{id}`; the content is generated block by block as the request sends it, so no more
/// than a few blocks are ever held.
pub async fn upload_data(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    size: u64,
    content: &Content,
    pid: u32,
) -> Result<TransferStats, String> {
    // Start from a clean page cache so earlier phases' writeback does not slow this one.
    flush_file_systems();
    let generator = content.clone();
    let stream = futures_util::stream::iter(0..Content::blocks(size))
        .map(move |k| Ok::<Bytes, std::io::Error>(generator.block(k, size)));
    let sampler = RssSampler::start(pid);
    let start = Instant::now();
    let sent = client
        .put(format!("{}/data", object_url(base, id)))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    let result = match sent {
        Ok(response) => {
            expect_status(
                response,
                reqwest::StatusCode::NO_CONTENT,
                &format!("PUT blob/{id}/data"),
            )
            .await
        }
        Err(e) => Err(format!("PUT blob/{id}/data: {e}")),
    };
    let elapsed = start.elapsed();
    let (start_rss_kb, peak_rss_kb) = sampler.finish();
    result?;
    Ok(TransferStats {
        bytes: size,
        elapsed,
        start_rss_kb,
        peak_rss_kb,
    })
}

/// Streams the data of `blob/{id}` back, checking its length and checksum.
pub async fn download(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    size: u64,
    content: &Content,
    pid: u32,
) -> Result<TransferStats, String> {
    download_url(client, &format!("{}/data", object_url(base, id)), size, content, pid).await
}

/// Streams the data at `url` (an object's `.../data` on any node), checking that it is the
/// generated content of `size` bytes; `pid`'s peak RSS is sampled meanwhile.
pub async fn download_url(
    client: &reqwest::Client,
    url: &str,
    size: u64,
    content: &Content,
    pid: u32,
) -> Result<TransferStats, String> {
    let expected = content.expected_checksum(size);
    let sampler = RssSampler::start(pid);
    let start = Instant::now();
    let result = async {
        let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = response.bytes().await.unwrap_or_default();
            return Err(format!(
                "GET {url}: status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let mut checksum = Checksum::default();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("GET {url}: {e}"))?;
            checksum.update(&chunk);
        }
        Ok(checksum)
    }
    .await;
    let elapsed = start.elapsed();
    let (start_rss_kb, peak_rss_kb) = sampler.finish();
    let checksum = result?;
    if checksum.position != size {
        return Err(format!(
            "GET {url}: received {} bytes, expected {size}",
            checksum.position
        ));
    }
    if checksum.sum != expected {
        return Err(format!("GET {url}: checksum mismatch"));
    }
    Ok(TransferStats {
        bytes: size,
        elapsed,
        start_rss_kb,
        peak_rss_kb,
    })
}

async fn expect_status(response: reqwest::Response, expected: reqwest::StatusCode, what: &str) -> Result<(), String> {
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{what}: {e}"))?;
    if status != expected {
        return Err(format!("{what}: status {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// Times of `cp` of a `size`-byte file within one folder, alone and followed by `sync` of
/// the copy: medians over the runs.
pub struct CpStats {
    pub bytes: u64,
    pub cp: Duration,
    pub cp_sync: Duration,
    /// (cp, cp + sync) of every run.
    pub runs: Vec<(Duration, Duration)>,
}

impl CpStats {
    pub fn cp_mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.cp.as_secs_f64()
    }

    pub fn cp_sync_mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.cp_sync.as_secs_f64()
    }
}

/// The median of some durations (the lower one of the middle two for an even count).
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times
        .get(times.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// Writes (and fsyncs) a source file of generated content, then `runs` times: times `cp` of
/// it to a second file and `sync` of that file, and removes the copy. The source is removed
/// afterwards.
pub fn cp_baseline(dir: &Path, size: u64, content: &Content, runs: usize) -> Result<CpStats, String> {
    use std::io::Write;
    let source = dir.join("cp-source");
    let target = dir.join("cp-target");
    let outcome = (|| {
        let mut file =
            std::fs::File::create(&source).map_err(|e| format!("cannot create {}: {e}", source.display()))?;
        for k in 0..Content::blocks(size) {
            file.write_all(&content.block(k, size))
                .map_err(|e| format!("cannot write {}: {e}", source.display()))?;
        }
        file.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", source.display()))?;
        drop(file);

        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            flush_file_systems();
            let start = Instant::now();
            run_command(Command::new("cp").arg(&source).arg(&target))?;
            let cp = start.elapsed();
            run_command(Command::new("sync").arg(&target))?;
            times.push((cp, start.elapsed()));
            std::fs::remove_file(&target).map_err(|e| format!("cannot remove {}: {e}", target.display()))?;
        }
        Ok(CpStats {
            bytes: size,
            cp: median(times.iter().map(|t| t.0).collect()),
            cp_sync: median(times.iter().map(|t| t.1).collect()),
            runs: times,
        })
    })();
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&target);
    outcome
}

/// `sync` of every file system: pending writeback of earlier phases is flushed before a timed
/// write starts.
pub fn flush_file_systems() {
    let _ = Command::new("sync").status();
}

fn run_command(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed: {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_checksum_matches_the_generated_content_cut_anywhere() {
        let content = Content::new();
        for size in [0, 5, 8, 9, BLOCK - 1, BLOCK, BLOCK + 3, 3 * BLOCK + 12_345] {
            let mut whole = Vec::new();
            for k in 0..Content::blocks(size) {
                whole.extend_from_slice(&content.block(k, size));
            }
            assert_eq!(whole.len() as u64, size);
            let mut checksum = Checksum::default();
            for piece in whole.chunks(77_777) {
                checksum.update(piece);
            }
            assert_eq!(checksum.position, size);
            assert_eq!(checksum.sum, content.expected_checksum(size), "size {size}");
        }
    }

    #[test]
    fn median_takes_the_middle() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(vec![ms(4), ms(1)]), ms(1));
        assert_eq!(median(vec![ms(7)]), ms(7));
    }

    #[test]
    fn blocks_differ() {
        let content = Content::new();
        assert_ne!(content.block(0, 2 * BLOCK), content.block(1, 2 * BLOCK));
    }
}
