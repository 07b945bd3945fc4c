//! Object data, kept apart from the metadata records that name it: in files ([`files`], the
//! embedded stores and a CSS told to keep data in a shared folder) or in the PostgreSQL
//! database ([`crate::store::postgres::DatabaseData`], several CSS instances sharing nothing
//! else). Both keep the same promises: data under a name is complete or absent, a chunked
//! upload gathers its chunks under its session until it is promoted to a name, and reads of
//! any size hold a bounded number of buffers.

pub mod files;

use crate::store::postgres::DatabaseData;
use crate::store::StoreError;
use bytes::Bytes;
use files::FileBlobs;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A hash fed, in data order, every byte a write stores. Fed while the data arrives:
/// verifying a signature then costs no read of the stored data afterwards, which on an edge
/// device may no longer be in the page cache.
pub type RunningHash = Box<dyn sha2::digest::DynDigest + Send>;

/// What a write stored.
pub struct Written {
    /// Bytes written.
    pub len: u64,
    /// The hash the write was given, fed with exactly those bytes.
    pub hash: Option<RunningHash>,
}

/// What writing data can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The client's body stream failed (disconnect, timeout).
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The body is longer than the caller allowed.
    #[error("the body is longer than {0} bytes")]
    TooLong(u64),
    #[error("data file error: {0}")]
    Io(#[from] std::io::Error),
    /// The database holding the data failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Where a node keeps object data.
#[derive(Clone)]
pub enum BlobStore {
    Files(Arc<FileBlobs>),
    Database(Arc<DatabaseData>),
}

/// The stored data of an object, opened for reading.
pub enum DataSource {
    File(tokio::fs::File),
    Database { data: Arc<DatabaseData>, name: String },
}

/// Bytes read at a time from a file by [`DataSource::range_stream`]: what an ESS sends its
/// CSS through, one part at a time.
const RANGE_READ_BUFFER: usize = 64 * 1024;
/// Bytes read at a time from a file that is hashed.
const DIGEST_READ_BUFFER: usize = 256 * 1024;

impl DataSource {
    /// `len` bytes from `start`, as a stream of chunks of bounded size.
    pub async fn range_stream(
        self,
        start: u64,
        len: u64,
    ) -> std::io::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        match self {
            DataSource::File(mut file) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                if start > 0 {
                    file.seek(std::io::SeekFrom::Start(start)).await?;
                }
                let taken = file.take(len);
                Ok(tokio_util::io::ReaderStream::with_capacity(taken, RANGE_READ_BUFFER).boxed())
            }
            DataSource::Database { data, name } => Ok(data.read(name, start, len).boxed()),
        }
    }

    /// `len` bytes from `start` in one buffer (a chunk of a transfer, bounded by its caller).
    pub async fn read_range(self, start: u64, len: u64) -> std::io::Result<Bytes> {
        let mut stream = self.range_stream(start, len).await?;
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            data.extend_from_slice(&chunk?);
        }
        if (data.len() as u64) < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stored data is shorter than its object",
            ));
        }
        Ok(Bytes::from(data))
    }
}

impl BlobStore {
    /// Data in files under `root` (see [`FileBlobs::open`]).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        Ok(BlobStore::Files(Arc::new(FileBlobs::open(root)?)))
    }

    /// Data in the database.
    pub fn in_database(data: DatabaseData) -> Self {
        BlobStore::Database(Arc::new(data))
    }

    /// True when leftovers are found by the store itself, safely while other instances
    /// write (the database), so that collecting them periodically is worth it.
    pub fn collects_itself(&self) -> bool {
        matches!(self, BlobStore::Database(_))
    }

    /// The file holding the data `name`, when data is kept in files.
    pub fn file_path(&self, name: &str) -> Option<PathBuf> {
        match self {
            BlobStore::Files(files) => Some(files.path(name)),
            BlobStore::Database(_) => None,
        }
    }

    /// Streams `body` into the data `name`, feeding `hash` with it; returns what was written
    /// once it is durable. Nothing is visible under `name` unless the whole body arrived.
    pub async fn write_whole<S, E>(
        &self,
        name: &str,
        body: S,
        max_len: u64,
        hash: Option<RunningHash>,
    ) -> Result<Written, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        match self {
            BlobStore::Files(files) => files.write_whole(name, body, max_len, hash).await,
            BlobStore::Database(data) => data.write_whole(name, body, max_len, hash).await,
        }
    }

    /// Writes `body` at `offset` of the partial data of an upload session of `total` bytes,
    /// feeding `hash` with it; returns what was written once it is durable.
    pub async fn write_chunk<S, E>(
        &self,
        session: i64,
        total: u64,
        offset: u64,
        body: S,
        hash: Option<RunningHash>,
    ) -> Result<Written, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        match self {
            BlobStore::Files(files) => files.write_chunk(session, total, offset, body, hash).await,
            BlobStore::Database(data) => data.write_chunk(session, total, offset, body, hash).await,
        }
    }

    /// Makes the first `len` bytes of a completed upload session's partial data the data
    /// `name`. The session's partial data may only be removed once the commit that ends the
    /// session is durable ([`BlobStore::remove_partial`]).
    pub async fn promote_partial(&self, session: i64, name: &str, len: u64) -> Result<(), BlobError> {
        match self {
            BlobStore::Files(files) => files.promote_partial(session, name, len).await,
            BlobStore::Database(data) => Ok(data.promote_partial(session, name, len).await?),
        }
    }

    /// Removes the data `name`; missing data is not an error, and a failure is logged (what
    /// is left is collected later).
    pub async fn remove(&self, name: &str) {
        match self {
            BlobStore::Files(files) => files.remove(name).await,
            BlobStore::Database(data) => data.remove(name).await,
        }
    }

    /// Removes the partial data of an upload session, if any.
    pub async fn remove_partial(&self, session: i64) {
        match self {
            BlobStore::Files(files) => files.remove_partial(session).await,
            BlobStore::Database(data) => data.remove_partial(session).await,
        }
    }

    /// Opens the data `name` for reading, with its length; `None` when it does not exist.
    pub async fn open_data(&self, name: &str) -> Result<Option<(DataSource, u64)>, BlobError> {
        match self {
            BlobStore::Files(files) => Ok(files
                .open_data(name)
                .await?
                .map(|(file, len)| (DataSource::File(file), len))),
            BlobStore::Database(data) => Ok(data.size(name).await?.map(|len| {
                let source = DataSource::Database {
                    data: data.clone(),
                    name: name.to_string(),
                };
                (source, len)
            })),
        }
    }

    /// Feeds `hash` with the whole data `name`; returns the digest.
    pub async fn digest(&self, name: &str, mut hash: RunningHash) -> Result<Box<[u8]>, BlobError> {
        let Some((source, len)) = self.open_data(name).await? else {
            return Err(BlobError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the data does not exist",
            )));
        };
        if let DataSource::File(file) = source {
            // Hashed on a blocking thread: a large file would hold an async worker for seconds.
            let mut file = file.into_std().await;
            return Ok(tokio::task::spawn_blocking(move || -> std::io::Result<Box<[u8]>> {
                use std::io::Read;
                let mut buffer = vec![0u8; DIGEST_READ_BUFFER];
                loop {
                    let read = file.read(&mut buffer)?;
                    if read == 0 {
                        return Ok(hash.finalize());
                    }
                    hash.update(&buffer[..read]);
                }
            })
            .await
            .map_err(std::io::Error::other)??);
        }
        let mut stream = source.range_stream(0, len).await?;
        while let Some(chunk) = stream.next().await {
            hash.update(&chunk?);
        }
        Ok(hash.finalize())
    }

    /// Removes what interrupted writes left. For files: temporary files, data files no object
    /// of `store` references and partial files of sessions it no longer has; with `min_age`,
    /// only files untouched for that long (other processes may be writing into a shared
    /// folder). In the database, the same kinds of leftovers, found by the database itself.
    /// Returns how many went.
    pub async fn collect_garbage(
        &self,
        store: &dyn crate::store::Store,
        min_age: Option<std::time::Duration>,
    ) -> Result<usize, BlobError> {
        match self {
            BlobStore::Files(files) => {
                let referenced: HashSet<String> = store.referenced_blobs().await?.into_iter().collect();
                let sessions: HashSet<i64> = store.upload_session_ids().await?.into_iter().collect();
                Ok(files.collect_garbage(referenced, sessions, min_age).await?)
            }
            BlobStore::Database(data) => Ok(data.collect_garbage().await?),
        }
    }
}
