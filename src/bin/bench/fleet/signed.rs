//! Mode `signed`: one large object signed as the original's publishing tools sign it
//! (RSA-PSS over the SHA-256 of the data, the largest salt, as Go's `rsa.SignPSS` with
//! automatic salt length), published on a CSS for one real ESS process of the binary.
//!
//! The same data is published unsigned and signed, in turn, each into a new object, so
//! that the cost of verification is what signing adds: on the CSS to the data PUT (the
//! CSS verifies before it answers), on the ESS to the arrival (it verifies before it lists
//! the object as complete). The processes' peak RSS while each transfer runs shows whether
//! verification holds memory that grows with the object. Every signed object is read back
//! from the ESS and its SHA-256 compared with the publisher's, and a tampered copy of the
//! data (one byte changed) under the publisher's signature must be refused by the CSS.

use super::sim;
use super::{mb, verdict, Outcome};
use crate::fanout::{self, EssFleet, ORG};
use crate::server::cpu_seconds;
use crate::server::{self, Server, TempDir};
use crate::transfer::{self, RssSampler};
use base64::Engine as _;
use bytes::Bytes;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::hazmat::RandomizedPrehashSigner;
use rsa::signature::SignatureEncoding;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Object size of the full run (MB = 10^6 bytes, as everywhere in the bench).
const SIZE: u64 = 160_000_000;
/// Object size of `--quick`.
const QUICK_SIZE: u64 = 16_000_000;
/// Transfers of each kind; medians of the times, maxima of the peaks are reported.
const RUNS: usize = 5;
/// Key size of the publisher: the size the original's documentation uses.
const KEY_BITS: usize = 2048;
/// Object type of the published objects.
const SIGNED_TYPE: &str = "signed";
/// The real ESS the objects are addressed to (`edge/n0` of the bench org).
const ESS_ID: &str = "n0";
/// How long an object may take to arrive complete on the ESS.
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(300);
/// How often the ESS's API is asked whether the object arrived.
const ARRIVAL_PROBE: Duration = Duration::from_millis(20);
/// What verification may cost, per node (the target).
const TARGET: Duration = Duration::from_secs(3);
/// How far a signed transfer's peak RSS may exceed the unsigned one's and still count as
/// flat: a few buffers, well below the quick run's object, so reading the object into memory
/// cannot pass unnoticed.
const FLAT_MARGIN_KB: u64 = 8 * 1024;
/// The status the CSS answers a data PUT that does not match its signature with (the
/// original answers 500; this service answers 400 with the same message).
const REFUSED: u16 = 400;

/// Mode `signed`.
pub async fn run(binary: &Path, quick: bool) -> Result<Outcome, String> {
    let size = if quick { QUICK_SIZE } else { SIZE };
    // Declared first: removed last, after the processes using it stopped.
    let dir = TempDir::create()?;
    let mut css = Server::start(binary, dir.path())?;
    let admin = crate::http_client()?;
    let base = format!("http://127.0.0.1:{}", css.port);
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    let mut fleet = EssFleet::new();
    fleet.spawn(binary, dir.path(), css.port, 0, 1)?;
    let outcome = match fleet.wait_registered(&admin, &base, Duration::from_secs(60)).await {
        Ok(_) => {
            let stage = Stage {
                admin,
                css_base: base,
                css_pid: css.pid(),
                ess_base: fleet.members[0].base(),
                ess_pid: fleet.members[0].pid(),
            };
            measure(&stage, size).await
        }
        Err(e) => Err(e),
    };
    let tails = format!("{}{}", css.log_tail(), fleet.members[0].log_tail());
    fleet.stop();
    css.stop();
    outcome.map_err(|e| format!("{e}{tails}"))
}

/// The running CSS and ESS.
struct Stage {
    admin: reqwest::Client,
    css_base: String,
    css_pid: u32,
    ess_base: String,
    ess_pid: u32,
}

/// A publisher's key and its signature of one content, as the object's metadata carries them.
struct Publisher {
    public_key: String,
    signature: String,
}

impl Publisher {
    /// Signs the SHA-256 `digest` with a new key, with the largest salt the key allows.
    fn new(digest: &[u8]) -> Result<Self, String> {
        let mut rng = rsa::rand_core::OsRng;
        let key = rsa::RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| format!("RSA key: {e}"))?;
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| format!("public key DER: {e}"))?;
        let largest_salt = KEY_BITS.div_ceil(8) - digest.len() - 2;
        let signature = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(key, largest_salt)
            .sign_prehash_with_rng(&mut rng, digest)
            .map_err(|e| format!("RSA-PSS signature: {e}"))?;
        let base64 = base64::engine::general_purpose::STANDARD;
        Ok(Publisher {
            public_key: base64.encode(public.as_bytes()),
            signature: base64.encode(signature.to_bytes()),
        })
    }

    /// The metadata of an object addressed to the ESS, signed or not.
    fn meta(&self, signed: bool) -> serde_json::Value {
        let mut meta = json!({"destinationType": "edge", "destinationID": ESS_ID});
        if signed {
            meta["hashAlgorithm"] = json!("SHA256");
            meta["publicKey"] = json!(self.public_key);
            meta["signature"] = json!(self.signature);
        }
        meta
    }
}

/// One object published and arrived on the ESS.
struct Transfer {
    /// The data PUT until answered (the CSS has stored and, if signed, verified the data).
    put: Duration,
    /// From the PUT's answer until the ESS lists the object complete.
    arrival: Duration,
    css_cpu_s: f64,
    ess_cpu_s: f64,
    /// Peak RSS of each process from the data PUT until the arrival, and before it, in kB.
    css_peak_kb: u64,
    ess_peak_kb: u64,
    css_start_kb: u64,
    ess_start_kb: u64,
}

async fn measure(stage: &Stage, size: u64) -> Result<Outcome, String> {
    crate::progress(&format!(
        "fleet: generating {} MB and signing its SHA-256 with a new {KEY_BITS}-bit RSA key",
        size / 1_000_000
    ));
    let data = sim::content(size);
    let digest = Sha256::digest(&data);
    let publisher = Publisher::new(&digest)?;

    let (mut plain, mut verified) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // Each kind goes first in every other run: what a transfer leaves behind (writeback,
        // the node's `received` round) weighs on both kinds alike.
        let order = if run % 2 == 0 { [false, true] } else { [true, false] };
        for signed in order {
            let kind = if signed { "signed" } else { "unsigned" };
            crate::progress(&format!(
                "fleet: {} MB {kind} to the ESS, run {}/{RUNS}",
                size / 1_000_000,
                run + 1
            ));
            let id = format!("{kind}-{run}");
            let transfer = publish(stage, &id, publisher.meta(signed), data.clone()).await?;
            if signed {
                verified.push((id, transfer));
            } else {
                plain.push(transfer);
            }
        }
    }

    crate::progress("fleet: reading the signed objects back from the ESS");
    let mut matching = 0;
    for (id, _) in &verified {
        if ess_data_sha256(stage, id).await?.as_slice() == digest.as_slice() {
            matching += 1;
        }
    }

    crate::progress("fleet: tampered data under the publisher's signature");
    let tampered = refuse_tampered(stage, &publisher, &data).await?;

    let verified: Vec<Transfer> = verified.into_iter().map(|(_, t)| t).collect();
    let failed = matching != RUNS || !tampered.refused();
    Ok(report(size, &plain, &verified, matching, &tampered, failed))
}

/// Publishes `data` as object `id` with `meta` and waits until the ESS lists it complete.
async fn publish(stage: &Stage, id: &str, meta: serde_json::Value, data: Bytes) -> Result<Transfer, String> {
    fanout::put_object(&stage.admin, &stage.css_base, SIGNED_TYPE, id, meta).await?;
    // Writeback of the earlier transfers must not slow this one.
    transfer::flush_file_systems();
    let css_sampler = RssSampler::start(stage.css_pid);
    let ess_sampler = RssSampler::start(stage.ess_pid);
    let css_cpu = server::cpu_ticks(stage.css_pid);
    let ess_cpu = server::cpu_ticks(stage.ess_pid);
    let started = Instant::now();
    let stored = fanout::put_data(&stage.admin, &stage.css_base, SIGNED_TYPE, id, data).await;
    let put = started.elapsed();
    let css_cpu_s = cpu_seconds(css_cpu, server::cpu_ticks(stage.css_pid));
    let arrived = match stored {
        Ok(()) => wait_arrival(stage, id).await,
        Err(e) => Err(e),
    };
    let arrival = started.elapsed().saturating_sub(put);
    let ess_cpu_s = cpu_seconds(ess_cpu, server::cpu_ticks(stage.ess_pid));
    let (css_start_kb, css_peak_kb) = css_sampler.finish();
    let (ess_start_kb, ess_peak_kb) = ess_sampler.finish();
    arrived?;
    Ok(Transfer {
        put,
        arrival,
        css_cpu_s,
        ess_cpu_s,
        css_peak_kb,
        ess_peak_kb,
        css_start_kb,
        ess_start_kb,
    })
}

async fn wait_arrival(stage: &Stage, id: &str) -> Result<(), String> {
    let started = Instant::now();
    while !fanout::ess_lists(&stage.admin, &stage.ess_base, SIGNED_TYPE, id).await {
        if started.elapsed() > ARRIVAL_DEADLINE {
            return Err(format!(
                "{SIGNED_TYPE}/{id} did not arrive complete on the ESS within {ARRIVAL_DEADLINE:?}"
            ));
        }
        tokio::time::sleep(ARRIVAL_PROBE).await;
    }
    Ok(())
}

/// The SHA-256 of the data the ESS serves for `id`, hashed as it streams in.
async fn ess_data_sha256(stage: &Stage, id: &str) -> Result<Vec<u8>, String> {
    // An ESS names its objects without the organization (it has one).
    let url = format!("{}/api/v1/objects/{SIGNED_TYPE}/{id}/data", stage.ess_base);
    let mut response = stage
        .admin
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", fanout::describe(&e)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    let mut hash = Sha256::new();
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {}", fanout::describe(&e)))?
    {
        hash.update(&piece);
    }
    Ok(hash.finalize().to_vec())
}

/// How the CSS answered data that does not match its signature.
struct Tampered {
    status: u16,
    message: String,
    elapsed: Duration,
    /// The object's status afterwards.
    object_status: String,
}

impl Tampered {
    fn refused(&self) -> bool {
        self.status == REFUSED
            && self.message.contains("Failed to verify and store data")
            && self.object_status == "verificationFailed"
    }
}

/// Publishes `data` with its middle byte changed under the signature of the original.
async fn refuse_tampered(stage: &Stage, publisher: &Publisher, data: &Bytes) -> Result<Tampered, String> {
    let id = "tampered";
    fanout::put_object(&stage.admin, &stage.css_base, SIGNED_TYPE, id, publisher.meta(true)).await?;
    let mut changed = data.to_vec();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x01;
    let object = format!("{}/api/v1/objects/{ORG}/{SIGNED_TYPE}/{id}", stage.css_base);
    let started = Instant::now();
    let response = stage
        .admin
        .put(format!("{object}/data"))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(changed)
        .send()
        .await
        .map_err(|e| format!("PUT {SIGNED_TYPE}/{id}/data: {}", fanout::describe(&e)))?;
    let status = response.status().as_u16();
    let message = response.text().await.unwrap_or_default();
    let elapsed = started.elapsed();
    let object_status = stage
        .admin
        .get(format!("{object}/status"))
        .send()
        .await
        .map_err(|e| format!("GET {SIGNED_TYPE}/{id}/status: {}", fanout::describe(&e)))?
        .text()
        .await
        .unwrap_or_default();
    Ok(Tampered {
        status,
        message: message.trim().to_string(),
        elapsed,
        object_status,
    })
}

/// Median of the durations `of` the transfers.
fn median(transfers: &[Transfer], of: impl Fn(&Transfer) -> Duration) -> Duration {
    transfer::median(transfers.iter().map(of).collect())
}

/// Median of the figures `of` the transfers.
fn median_f64(transfers: &[Transfer], of: impl Fn(&Transfer) -> f64) -> f64 {
    let mut values: Vec<f64> = transfers.iter().map(of).collect();
    values.sort_unstable_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

fn peak(transfers: &[Transfer], of: impl Fn(&Transfer) -> u64) -> u64 {
    transfers.iter().map(of).max().unwrap_or(0)
}

/// Signed minus unsigned, in seconds: what verification adds.
fn added(signed: Duration, plain: Duration) -> f64 {
    signed.as_secs_f64() - plain.as_secs_f64()
}

fn report(
    size: u64,
    plain: &[Transfer],
    signed: &[Transfer],
    matching: usize,
    tampered: &Tampered,
    failed: bool,
) -> Outcome {
    let row = |transfers: &[Transfer]| {
        json!({
            "put_s": median(transfers, |t| t.put).as_secs_f64(),
            "arrival_s": median(transfers, |t| t.arrival).as_secs_f64(),
            "css_cpu_s": median_f64(transfers, |t| t.css_cpu_s),
            "ess_cpu_s": median_f64(transfers, |t| t.ess_cpu_s),
            "css_start_rss_mb": mb(peak(transfers, |t| t.css_start_kb)),
            "css_peak_rss_mb": mb(peak(transfers, |t| t.css_peak_kb)),
            "ess_start_rss_mb": mb(peak(transfers, |t| t.ess_start_kb)),
            "ess_peak_rss_mb": mb(peak(transfers, |t| t.ess_peak_kb)),
            "runs_put_s": transfers.iter().map(|t| t.put.as_secs_f64()).collect::<Vec<_>>(),
            "runs_arrival_s": transfers.iter().map(|t| t.arrival.as_secs_f64()).collect::<Vec<_>>(),
        })
    };
    let css_verification = added(median(signed, |t| t.put), median(plain, |t| t.put));
    let ess_verification = added(median(signed, |t| t.arrival), median(plain, |t| t.arrival));
    let css_flat = peak(signed, |t| t.css_peak_kb) <= peak(plain, |t| t.css_peak_kb) + FLAT_MARGIN_KB;
    let ess_flat = peak(signed, |t| t.ess_peak_kb) <= peak(plain, |t| t.ess_peak_kb) + FLAT_MARGIN_KB;

    let mut table = format!(
        "fleet: signed  (one {} MB object, RSA-PSS {KEY_BITS}-bit over SHA-256; a CSS and one ESS process; \
         {} CPUs; medians of {RUNS} runs, peak RSS the highest)\n\n\
         {:<13} {:>10} {:>10} {:>12} {:>11} {:>10} {:>12}\n",
        size / 1_000_000,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "object",
        "PUT s",
        "CSS CPU s",
        "CSS peak MB",
        "on ESS s",
        "ESS CPU s",
        "ESS peak MB",
    );
    for (label, transfers) in [("unsigned", plain), ("signed", signed)] {
        let _ = writeln!(
            table,
            "{label:<13} {:>10.2} {:>10.2} {:>12.1} {:>11.2} {:>10.2} {:>12.1}",
            median(transfers, |t| t.put).as_secs_f64(),
            median_f64(transfers, |t| t.css_cpu_s),
            mb(peak(transfers, |t| t.css_peak_kb)),
            median(transfers, |t| t.arrival).as_secs_f64(),
            median_f64(transfers, |t| t.ess_cpu_s),
            mb(peak(transfers, |t| t.ess_peak_kb)),
        );
    }
    let _ = writeln!(
        table,
        "{:<13} {css_verification:>10.2} {:>10.2} {:>+12.1} {ess_verification:>11.2} {:>10.2} {:>+12.1}",
        "verification",
        median_f64(signed, |t| t.css_cpu_s) - median_f64(plain, |t| t.css_cpu_s),
        mb(peak(signed, |t| t.css_peak_kb)) - mb(peak(plain, |t| t.css_peak_kb)),
        median_f64(signed, |t| t.ess_cpu_s) - median_f64(plain, |t| t.ess_cpu_s),
        mb(peak(signed, |t| t.ess_peak_kb)) - mb(peak(plain, |t| t.ess_peak_kb)),
    );
    let _ = writeln!(
        table,
        "\nPUT s: the data PUT until answered (the CSS verifies before it answers); on ESS s: from that \
         answer until the ESS lists the object complete (it verifies before); CPU s of each process over \
         those spans; peak RSS sampled every 20 ms from the PUT until the arrival; verification = signed \
         minus unsigned\n\
         the ESS serves the publisher's SHA-256 for {matching} of {RUNS} signed objects\n\
         tampered data (one byte changed) under the publisher's signature: the CSS answered {} in {:.2} s \
         ({}), object {}\n\
         targets: CSS verification < {} s {}, ESS verification < {} s {}, RSS flat (signed peak within {} MB \
         of unsigned) CSS {} ESS {}",
        tampered.status,
        tampered.elapsed.as_secs_f64(),
        tampered.message.lines().next().unwrap_or_default(),
        tampered.object_status,
        TARGET.as_secs(),
        verdict(css_verification < TARGET.as_secs_f64()),
        TARGET.as_secs(),
        verdict(ess_verification < TARGET.as_secs_f64()),
        FLAT_MARGIN_KB / 1024,
        verdict(css_flat),
        verdict(ess_flat),
    );
    let json = json!({
        "mode": "signed",
        "object_bytes": size,
        "key_bits": KEY_BITS,
        "runs": RUNS,
        "unsigned": row(plain),
        "signed": row(signed),
        "css_verification_s": css_verification,
        "ess_verification_s": ess_verification,
        "css_rss_flat": css_flat,
        "ess_rss_flat": ess_flat,
        "ess_sha256_matching": matching,
        "tampered": {
            "status": tampered.status,
            "message": tampered.message,
            "seconds": tampered.elapsed.as_secs_f64(),
            "object_status": tampered.object_status,
            "refused": tampered.refused(),
        },
    });
    Outcome { table, json, failed }
}
