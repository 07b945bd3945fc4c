//! `object download`: an object's data into a file, through `{file}.part-{instance}` renamed
//! into place when complete. An interrupted download continues with a `Range` request
//! when run again, as long as the object is still the same instance (a new instance has
//! other data, and its partial file another name).

use super::connection::{refusal, ClientError, ClientResult, Connection};
use super::progress::Progress;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, clap::Args)]
pub struct DownloadArgs {
    /// Object type
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub object_type: String,
    /// Object ID
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub object_id: String,
    /// File to write (default: the object ID in the current folder); - writes to stdout
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Replace the file when it exists
    #[arg(long)]
    pub overwrite: bool,
    /// No progress output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub async fn run(connection: &Connection, args: &DownloadArgs) -> ClientResult<()> {
    let path = connection.object_path(&args.object_type, &args.object_id);
    let label = connection.name_of(&args.object_type, &args.object_id);
    let target = args.file.clone().unwrap_or_else(|| PathBuf::from(&args.object_id));
    if target == Path::new("-") {
        return to_stdout(connection, &path).await;
    }
    if target.exists() && !args.overwrite {
        return Err(ClientError::usage(format!(
            "{} exists; give --overwrite to replace it",
            target.display()
        )));
    }
    let meta = connection.get_json("reading the metadata", &path).await?;
    let instance = meta["instanceID"].as_i64().unwrap_or(0);
    let partial = partial_path(&target, instance);
    remove_other_partials(&target, &partial);
    let have = std::fs::metadata(&partial).map_or(0, |m| m.len());
    let mut request = connection.request(Method::GET, &format!("{path}/data"));
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = connection.send("downloading the data", request).await?;
    let (start, total) = match response.status() {
        StatusCode::OK => (0, response.content_length()),
        StatusCode::PARTIAL_CONTENT => (have, total_of(&response)),
        // The partial file already holds everything.
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => (have, Some(have)),
        _ => return Err(refusal("downloading the data", response).await),
    };
    if start > 0 && total != Some(have) {
        eprintln!("{label}: continuing an interrupted download at byte {start}");
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(start == 0)
        .append(start > 0)
        .open(&partial)
        .await
        .map_err(|e| ClientError::usage(format!("{}: {e}", partial.display())))?;
    let mut progress = Progress::new(label.clone(), start, total, args.quiet);
    let mut body = response.bytes_stream();
    let mut written = start;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError::network("downloading the data", &e))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| ClientError::usage(format!("{}: {e}", partial.display())))?;
        written += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    file.sync_all()
        .await
        .map_err(|e| ClientError::usage(format!("{}: {e}", partial.display())))?;
    progress.finish();
    if let Some(total) = total.filter(|&t| t != written) {
        return Err(ClientError::refused(format!(
            "downloading the data: {written} of {total} bytes arrived; run again to continue"
        )));
    }
    std::fs::rename(&partial, &target).map_err(|e| ClientError::usage(format!("{}: {e}", target.display())))?;
    Ok(())
}

/// The partial file of a download of one instance.
fn partial_path(target: &Path, instance: i64) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".part-{instance}"));
    target.with_file_name(name)
}

/// Partial files of other instances of the same target are of no use any more.
fn remove_other_partials(target: &Path, keep: &Path) {
    let Some(prefix) = target.file_name().map(|n| format!("{}.part-", n.to_string_lossy())) else {
        return;
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_partial = entry.file_name().to_string_lossy().starts_with(&prefix);
        if is_partial && path.file_name() != keep.file_name() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The total size from a `Content-Range: bytes a-b/total` answer.
fn total_of(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    value.rsplit('/').next()?.parse().ok()
}

async fn to_stdout(connection: &Connection, path: &str) -> ClientResult<()> {
    let response = connection
        .expect(
            "downloading the data",
            connection.request(Method::GET, &format!("{path}/data")),
            &[StatusCode::OK],
        )
        .await?;
    let mut out = tokio::io::stdout();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError::network("downloading the data", &e))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| ClientError::usage(format!("stdout: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| ClientError::usage(format!("stdout: {e}")))
}
