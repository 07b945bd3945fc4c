//! `object publish`: metadata from a file or flags, data from a file or stdin. Data larger
//! than one chunk goes in chunks (`Content-Range`), and how far a publish got is kept in a
//! small state file: run again after an interruption, it continues after the last chunk the
//! service acknowledged, as long as the object is still the instance it created and the file
//! is unchanged.

use super::connection::{ClientError, ClientResult, Connection};
use super::progress::Progress;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Object type (overrides the metadata file's objectType)
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub object_type: Option<String>,
    /// Object ID (overrides the metadata file's objectID)
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub object_id: Option<String>,
    /// Metadata file: the object's JSON metadata, or {"meta": ...}
    #[arg(short = 'm', long = "object", value_name = "FILE")]
    pub meta_file: Option<PathBuf>,
    /// Data file; - reads the data from stdin (sent whole, without resuming)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Destination type of the edge nodes that get the object
    #[arg(long = "dest-type", value_name = "TYPE")]
    pub destination_type: Option<String>,
    /// Destination ID (one node of --dest-type)
    #[arg(long = "dest-id", value_name = "ID")]
    pub destination_id: Option<String>,
    /// Version of the object
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Data larger than this goes in chunks of this size, each acknowledged before the next
    #[arg(long = "chunk-size", value_name = "BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: u64,
    /// Start over even when an earlier publish of this object and file was interrupted
    #[arg(long = "no-resume")]
    pub no_resume: bool,
    /// No progress output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// How far a chunked publish got, kept between runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct PublishState {
    file: PathBuf,
    size: u64,
    modified_nanos: u128,
    chunk_size: u64,
    instance_id: i64,
    /// Bytes from the start acknowledged by the service.
    acknowledged: u64,
}

/// Publishes `meta` (from [`metadata`], checked before connecting) and the data.
pub async fn run(connection: &Connection, args: &PublishArgs, meta: Value) -> ClientResult<()> {
    let object_type = meta["objectType"].as_str().unwrap_or_default().to_string();
    let object_id = meta["objectID"].as_str().unwrap_or_default().to_string();
    let path = connection.object_path(&object_type, &object_id);
    let label = connection.name_of(&object_type, &object_id);
    let file = match args.data.as_deref() {
        Some(file) if file == Path::new("-") => {
            put_meta(connection, &path, &meta).await?;
            return put_stdin(connection, &path, &label, args.quiet).await;
        }
        Some(file) => Some(file),
        None => None,
    };
    let Some(file) = file else {
        put_meta(connection, &path, &meta).await?;
        eprintln!("{label}: metadata published");
        return Ok(());
    };
    let opened = std::fs::metadata(file).map_err(|e| ClientError::usage(format!("{}: {e}", file.display())))?;
    let size = opened.len();
    let modified_nanos = opened
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let state_file = state_path(connection, &object_type, &object_id);
    let fresh = PublishState {
        file: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
        size,
        modified_nanos,
        chunk_size: args.chunk_size,
        instance_id: 0,
        acknowledged: 0,
    };
    let mut state = match (args.no_resume, read_state(&state_file)) {
        (false, Some(saved))
            if saved.same_upload(&fresh) && still_waiting(connection, &path, saved.instance_id).await =>
        {
            eprintln!(
                "{label}: continuing an interrupted publish at byte {}",
                saved.acknowledged
            );
            saved
        }
        _ => {
            put_meta(connection, &path, &meta).await?;
            PublishState {
                instance_id: instance_of(connection, &path).await?,
                ..fresh
            }
        }
    };
    if size <= args.chunk_size {
        put_whole(connection, &path, &label, file, size, args.quiet).await?;
    } else {
        write_state(&state_file, &state);
        put_chunks(connection, &path, &label, file, &mut state, &state_file, args.quiet).await?;
    }
    let _ = std::fs::remove_file(&state_file);
    Ok(())
}

impl PublishState {
    fn same_upload(&self, other: &PublishState) -> bool {
        (&self.file, self.size, self.modified_nanos, self.chunk_size)
            == (&other.file, other.size, other.modified_nanos, other.chunk_size)
    }
}

/// The metadata to publish: the file's, with the flags' values over it.
pub fn metadata(args: &PublishArgs) -> ClientResult<Value> {
    let mut meta = match &args.meta_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ClientError::usage(format!("{}: {e}", path.display())))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| ClientError::usage(format!("{}: not JSON: {e}", path.display())))?;
            match value.get("meta") {
                Some(inner) => inner.clone(),
                None => value,
            }
        }
        None => json!({}),
    };
    let Some(fields) = meta.as_object_mut() else {
        return Err(ClientError::usage("the metadata must be a JSON object"));
    };
    for (key, value) in [
        ("objectType", &args.object_type),
        ("objectID", &args.object_id),
        ("destinationType", &args.destination_type),
        ("destinationID", &args.destination_id),
        ("version", &args.version),
    ] {
        if let Some(value) = value {
            fields.insert(key.into(), Value::String(value.clone()));
        }
    }
    for key in ["objectType", "objectID"] {
        if fields.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ClientError::usage(format!(
                "no {key}: give {} or put it in the metadata file",
                if key == "objectType" { "-t" } else { "-i" }
            )));
        }
    }
    if args.data.is_none() && !fields.contains_key("noData") {
        fields.insert("noData".into(), Value::Bool(true));
    }
    Ok(meta)
}

async fn put_meta(connection: &Connection, path: &str, meta: &Value) -> ClientResult<()> {
    let body = serde_json::to_vec(&json!({ "meta": meta })).unwrap_or_default();
    let request = connection
        .request(Method::PUT, path)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    connection
        .expect(
            "publishing the metadata",
            request,
            &[StatusCode::NO_CONTENT, StatusCode::OK],
        )
        .await?;
    Ok(())
}

/// The instance ID the service gave the object.
async fn instance_of(connection: &Connection, path: &str) -> ClientResult<i64> {
    let meta = connection.get_json("reading the metadata back", path).await?;
    Ok(meta["instanceID"].as_i64().unwrap_or(0))
}

/// True when the object is still the instance an earlier run created, waiting for its data.
async fn still_waiting(connection: &Connection, path: &str, instance_id: i64) -> bool {
    let same = matches!(instance_of(connection, path).await, Ok(id) if id == instance_id && id != 0);
    let status = connection
        .send("", connection.request(Method::GET, &format!("{path}/status")))
        .await;
    let waiting = match status {
        Ok(response) if response.status() == StatusCode::OK => response.text().await.is_ok_and(|s| s == "notReady"),
        _ => false,
    };
    same && waiting
}

async fn put_whole(
    connection: &Connection,
    path: &str,
    label: &str,
    file: &Path,
    size: u64,
    quiet: bool,
) -> ClientResult<()> {
    let body = file_body(file, 0, size, Progress::new(label, 0, Some(size), quiet)).await?;
    let request = connection
        .request(Method::PUT, &format!("{path}/data"))
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(body);
    connection
        .expect("uploading the data", request, &[StatusCode::NO_CONTENT, StatusCode::OK])
        .await?;
    Ok(())
}

async fn put_chunks(
    connection: &Connection,
    path: &str,
    label: &str,
    file: &Path,
    state: &mut PublishState,
    state_file: &Path,
    quiet: bool,
) -> ClientResult<()> {
    let size = state.size;
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new(
        label,
        state.acknowledged,
        Some(size),
        quiet,
    )));
    while state.acknowledged < size {
        let start = state.acknowledged;
        let len = state.chunk_size.min(size - start);
        let body = shared_file_body(file, start, len, progress.clone(), false).await?;
        let request = connection
            .request(Method::PUT, &format!("{path}/data"))
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header("Content-Range", format!("bytes {start}-{}/{size}", start + len - 1))
            .body(body);
        connection
            .expect(
                &format!("uploading bytes {start}-{}", start + len - 1),
                request,
                &[StatusCode::NO_CONTENT, StatusCode::OK],
            )
            .await?;
        state.acknowledged = start + len;
        write_state(state_file, state);
    }
    if let Ok(mut progress) = progress.lock() {
        progress.finish();
    }
    Ok(())
}

/// `len` bytes of `file` from `start` as a request body that reports its progress, and its
/// last line once the body has been read.
async fn file_body(file: &Path, start: u64, len: u64, progress: Progress) -> ClientResult<reqwest::Body> {
    let progress = std::sync::Arc::new(std::sync::Mutex::new(progress));
    shared_file_body(file, start, len, progress, true).await
}

/// [`file_body`] with a progress shared by the chunks of one publish; `last` tells whether
/// the end of this body is the end of the transfer.
async fn shared_file_body(
    file: &Path,
    start: u64,
    len: u64,
    progress: std::sync::Arc<std::sync::Mutex<Progress>>,
    last: bool,
) -> ClientResult<reqwest::Body> {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut opened = tokio::fs::File::open(file)
        .await
        .map_err(|e| ClientError::usage(format!("{}: {e}", file.display())))?;
    opened
        .seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ClientError::usage(format!("{}: {e}", file.display())))?;
    let mut left = len;
    let stream = tokio_util::io::ReaderStream::with_capacity(opened.take(len), 256 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            left = left.saturating_sub(bytes.len() as u64);
            if let Ok(mut progress) = progress.lock() {
                progress.advance(bytes.len() as u64);
                if left == 0 && last {
                    progress.finish();
                }
            }
        }
        chunk
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// Data from stdin, streamed whole: its size is not known before it ends.
async fn put_stdin(connection: &Connection, path: &str, label: &str, quiet: bool) -> ClientResult<()> {
    use futures_util::StreamExt;
    let mut progress = Progress::new(label, 0, None, quiet);
    let stream = tokio_util::io::ReaderStream::with_capacity(tokio::io::stdin(), 256 * 1024).map(move |chunk| {
        match &chunk {
            Ok(bytes) => progress.advance(bytes.len() as u64),
            Err(_) => progress.finish(),
        }
        chunk
    });
    let request = connection
        .request(Method::PUT, &format!("{path}/data"))
        .body(reqwest::Body::wrap_stream(stream));
    connection
        .expect("uploading the data", request, &[StatusCode::NO_CONTENT, StatusCode::OK])
        .await?;
    if !quiet {
        eprintln!("{label}: data published");
    }
    Ok(())
}

/// Where the state of a publish of one object to one service is kept.
fn state_path(connection: &Connection, object_type: &str, object_id: &str) -> PathBuf {
    use sha2::Digest;
    let key = format!("{}\n{}\n{object_type}\n{object_id}", connection.base(), connection.org);
    let digest = sha2::Sha256::digest(key.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    super::state_dir().join(format!("publish-{name}.json"))
}

fn read_state(path: &Path) -> Option<PublishState> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Saves how far the publish got; a failure only loses the ability to resume.
fn write_state(path: &Path, state: &PublishState) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(text) = serde_json::to_vec(state) {
        let temporary = path.with_extension("tmp");
        if std::fs::write(&temporary, text).is_ok() {
            let _ = std::fs::rename(&temporary, path);
        }
    }
}
