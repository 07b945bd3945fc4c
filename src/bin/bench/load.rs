//! Request-rate phases: N workers pulling request numbers from a shared counter.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Outcome of one request-rate phase.
pub struct LoadStats {
    pub requests: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
}

impl LoadStats {
    pub fn ops_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q` (0..=1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((q * self.latencies_us.len() as f64).ceil() as usize).clamp(1, self.latencies_us.len());
        self.latencies_us[rank - 1] as f64 / 1000.0
    }
}

/// Runs `request(i)` for every i in `0..total` on `concurrency` tasks; the first error
/// stops all workers and is returned.
pub async fn run<F, Fut>(concurrency: usize, total: u64, request: F) -> Result<LoadStats, String>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let next = next.clone();
        let failed = failed.clone();
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity((total as usize / concurrency.max(1)) + 1);
            loop {
                if failed.load(Ordering::Relaxed) {
                    return Ok(latencies);
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok(latencies);
                }
                let t0 = Instant::now();
                if let Err(e) = request(i).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                latencies.push(t0.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut latencies_us = Vec::with_capacity(total as usize);
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(mut l)) => latencies_us.append(&mut l),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(e) => first_error = first_error.or(Some(format!("worker task failed: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = first_error {
        return Err(e);
    }
    latencies_us.sort_unstable();
    Ok(LoadStats {
        requests: latencies_us.len() as u64,
        elapsed,
        latencies_us,
    })
}

/// Creates (upserts) a metadata-only object `{type}/{id}`; expects 204.
pub async fn put_meta(client: &reqwest::Client, base: &str, object_type: &str, id: &str) -> Result<(), String> {
    let body = format!(r#"{{"meta":{{"objectID":"{id}","objectType":"{object_type}","noData":true}}}}"#);
    let response = client
        .put(format!("{base}/api/v1/objects/bench/{object_type}/{id}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("PUT {object_type}/{id}: {e}"))?;
    let status = response.status();
    let text = response
        .bytes()
        .await
        .map_err(|e| format!("PUT {object_type}/{id}: {e}"))?;
    if status != reqwest::StatusCode::NO_CONTENT {
        return Err(format!(
            "PUT {object_type}/{id}: status {status}: {}",
            String::from_utf8_lossy(&text)
        ));
    }
    Ok(())
}

/// Reads the metadata of `{type}/{id}`; expects 200 with a body naming the object.
pub async fn get_meta(client: &reqwest::Client, base: &str, object_type: &str, id: &str) -> Result<(), String> {
    let response = client
        .get(format!("{base}/api/v1/objects/bench/{object_type}/{id}"))
        .send()
        .await
        .map_err(|e| format!("GET {object_type}/{id}: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {object_type}/{id}: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "GET {object_type}/{id}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let needle = format!(r#""{id}""#);
    if !body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
        return Err(format!("GET {object_type}/{id}: the answer does not name the object"));
    }
    Ok(())
}
