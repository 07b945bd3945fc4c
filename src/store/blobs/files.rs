//! Object data as files. A whole upload is streamed into a temporary file, fsynced and renamed
//! into place, so a data file is either complete or absent; a chunked upload writes into a
//! partial file at the chunk's offset, linked into place once complete. Names come from the
//! engine (unique per upload), never from user input. File writes happen on a blocking thread
//! fed through a small channel, so memory stays bounded by a few buffers whatever the object
//! size. That thread can also hash the bytes it writes, so that data to be verified needs no
//! second pass over its file.

use super::{BlobError, RunningHash, Written};
use crate::store::buffers::BufferPool;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the buffers handed to the writer thread: at most five are in use per upload (see
/// [`stream_into`]). Measured on 1 GiB uploads against 1 MiB buffers, the peak RSS of the
/// glibc build was 19-20 MB instead of 23-24, at the same rate; the rate is bounded by the
/// kernel's copy into the page cache, not by the number of writes.
const WRITE_BUFFER: usize = 256 * 1024;
/// Buffers queued between the request and the writer thread: writing into the page cache is
/// faster than a network fills a buffer, so two keep the writer busy.
const WRITE_QUEUE: usize = 2;
/// The write buffers of every write, kept when a write ends: enough for two writes at once
/// (an ESS mostly writes one download at a time) before further ones are freed.
static WRITE_BUFFER_POOL: BufferPool = BufferPool::new(WRITE_BUFFER, 2 * (WRITE_QUEUE + 3));

/// The directory of data files of one node.
pub struct FileBlobs {
    data_dir: PathBuf,
    tmp_dir: PathBuf,
    partial_dir: PathBuf,
    temp_counter: AtomicU64,
}

impl FileBlobs {
    /// Uses (creating) `root/data`, `root/tmp` and `root/partial`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let store = Self {
            data_dir: root.join("data"),
            tmp_dir: root.join("tmp"),
            partial_dir: root.join("partial"),
            temp_counter: AtomicU64::new(0),
        };
        for dir in [&store.data_dir, &store.tmp_dir, &store.partial_dir] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(store)
    }

    /// Path of a stored data file.
    pub fn path(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    fn partial_path(&self, session: i64) -> PathBuf {
        self.partial_dir.join(format!("{session}.part"))
    }

    /// Streams `body` into the data file `name`, feeding `hash` with it; returns what was
    /// written once it is durable. Nothing is visible under `name` unless the whole body
    /// arrived.
    pub async fn write_whole<S, E>(
        &self,
        name: &str,
        body: S,
        max_len: u64,
        hash: Option<RunningHash>,
    ) -> Result<Written, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let temp = self
            .tmp_dir
            .join(format!("{}-{name}", self.temp_counter.fetch_add(1, Ordering::Relaxed)));
        let file = std::fs::File::create(&temp)?;
        let written = match stream_into(file, 0, body, max_len, hash).await {
            Ok(written) => written,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        let (target, data_dir) = (self.path(name), self.data_dir.clone());
        blocking(move || {
            let placed = std::fs::rename(&temp, &target).and_then(|()| sync_dir(&data_dir));
            if placed.is_err() {
                // Whatever failed (a full disk), the temporary file must not keep its space.
                let _ = std::fs::remove_file(&temp);
            }
            placed
        })
        .await?;
        Ok(written)
    }

    /// Writes `body` at `offset` of the partial file of an upload session of `total` bytes,
    /// feeding `hash` with it; returns what was written once it is durable.
    ///
    /// The partial file reserves its `total` bytes first, so an upload that does not fit on
    /// the disk fails at its first chunk with nothing written, instead of holding the space
    /// of the chunks that did fit while the rest cannot come.
    pub async fn write_chunk<S, E>(
        &self,
        session: i64,
        total: u64,
        offset: u64,
        body: S,
        hash: Option<RunningHash>,
    ) -> Result<Written, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.partial_path(session);
        let file = blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            reserve(&file, total)?;
            Ok(file)
        })
        .await?;
        stream_into(file, offset, body, total.saturating_sub(offset), hash).await
    }

    /// Puts a completed partial file in place as the data file `name`. The partial file is
    /// linked, not moved: it must stay until the commit that ends its upload session (then
    /// [`FileBlobs::remove_partial`]), since a crash before that commit leaves the session
    /// with its chunks recorded and the new data file unreferenced (collected at start); a
    /// chunk sent again then completes the upload from the partial file's bytes.
    pub async fn promote_partial(&self, session: i64, name: &str, len: u64) -> Result<(), BlobError> {
        let (partial, target, data_dir) = (self.partial_path(session), self.path(name), self.data_dir.clone());
        blocking(move || {
            let file = std::fs::OpenOptions::new().write(true).open(&partial)?;
            // A tail chunk sent twice with a larger body must not leave bytes past the end.
            file.set_len(len)?;
            file.sync_all()?;
            std::fs::hard_link(&partial, &target)?;
            sync_dir(&data_dir)
        })
        .await?;
        Ok(())
    }

    /// Opens a data file with its length; `None` when it does not exist.
    pub async fn open_data(&self, name: &str) -> std::io::Result<Option<(tokio::fs::File, u64)>> {
        let path = self.path(name);
        let opened = blocking(move || match std::fs::File::open(&path) {
            Ok(file) => {
                let len = file.metadata()?.len();
                Ok(Some((file, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        Ok(opened.map(|(file, len)| (tokio::fs::File::from_std(file), len)))
    }

    /// Removes a data file; a missing file is not an error.
    pub async fn remove(&self, name: &str) {
        remove_quietly(self.path(name)).await;
    }

    /// Removes the partial file of an upload session, if any.
    pub async fn remove_partial(&self, session: i64) {
        remove_quietly(self.partial_path(session)).await;
    }

    /// Deletes temporary files, data files no object references and partial files of
    /// sessions that no longer exist: the leftovers of a crash. With `min_age`, only files
    /// not modified for that long go (other processes may be writing into the folder).
    pub async fn collect_garbage(
        &self,
        referenced: HashSet<String>,
        sessions: HashSet<i64>,
        min_age: Option<std::time::Duration>,
    ) -> std::io::Result<usize> {
        let (data_dir, tmp_dir, partial_dir) = (self.data_dir.clone(), self.tmp_dir.clone(), self.partial_dir.clone());
        blocking(move || {
            let old_enough = |entry: &std::fs::DirEntry| -> std::io::Result<bool> {
                let Some(min_age) = min_age else {
                    return Ok(true);
                };
                let modified = entry.metadata()?.modified()?;
                Ok(modified.elapsed().is_ok_and(|age| age >= min_age))
            };
            let mut removed = 0;
            for entry in std::fs::read_dir(&tmp_dir)? {
                let entry = entry?;
                if old_enough(&entry)? {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            for entry in std::fs::read_dir(&data_dir)? {
                let entry = entry?;
                if !referenced.contains(entry.file_name().to_string_lossy().as_ref()) && old_enough(&entry)? {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            for entry in std::fs::read_dir(&partial_dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let session = name.strip_suffix(".part").and_then(|n| n.parse::<i64>().ok());
                if !session.is_some_and(|s| sessions.contains(&s)) && old_enough(&entry)? {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}

async fn remove_quietly(path: PathBuf) {
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "could not remove a data file");
        }
    }
}

async fn blocking<R: Send + 'static>(work: impl FnOnce() -> std::io::Result<R> + Send + 'static) -> std::io::Result<R> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}

/// Allocates the blocks of the first `total` bytes of `file` (growing it to that length),
/// so that writing them later cannot fail for lack of space. On a full disk the file is
/// shrunk back to its previous length, giving back what the attempt took. File systems that
/// cannot allocate ahead are written without a reservation.
///
/// A `total` larger than the whole file system fails with [`std::io::ErrorKind::FileTooLarge`]
/// before anything is allocated: freeing space would never make it fit, so it must not be
/// reported as a full disk, whose writer is told to try again later.
fn reserve(file: &std::fs::File, total: u64) -> std::io::Result<()> {
    let before = file.metadata()?.len();
    if before >= total {
        return Ok(());
    }
    let stats = rustix::fs::fstatvfs(file)?;
    let capacity = stats.f_blocks.saturating_mul(stats.f_frsize);
    if total > capacity {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("The data's {total} bytes are more than this node's storage of {capacity} bytes could hold"),
        ));
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, total) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
        Err(errno) => {
            let _ = file.set_len(before);
            Err(errno.into())
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Data written between two background flushes of a large upload.
const EARLY_FLUSH: usize = 64 << 20;

/// Flushes a file being written from a second thread, so that the disk writes the data of a
/// large upload while more of it arrives; the final fsync then only waits for the tail.
/// Without it the kernel would hold the whole upload in dirty pages until that fsync.
struct EarlyFlusher {
    requests: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl EarlyFlusher {
    fn start(file: std::fs::File) -> std::io::Result<Self> {
        let (requests, pending) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("blob-flush".into()).spawn(move || {
            while pending.recv().is_ok() {
                // A failure shows again in the final fsync, which the upload waits for.
                let _ = file.sync_data();
            }
        })?;
        Ok(Self { requests, thread })
    }

    /// Asks for a flush; a request made while one is pending is merged with it.
    fn request(&self) {
        let _ = self.requests.try_send(());
    }

    fn finish(self) {
        drop(self.requests);
        let _ = self.thread.join();
    }
}

/// Copies `body` into `file` from `offset`, on a blocking writer thread that also feeds
/// `hash` with each buffer it wrote, then fsyncs.
///
/// The request fills a buffer of `WRITE_BUFFER` bytes and hands it to the writer, which hands
/// it back once written. A buffer is taken from the pool only while none is waiting to be
/// reused, so at most `WRITE_QUEUE` + 3 are in use per upload (queued, being written, waiting
/// to be queued, being filled): an upload of any size holds a few MiB, and they go back to
/// the pool at its end.
async fn stream_into<S, E>(
    file: std::fs::File,
    offset: u64,
    mut body: S,
    max_len: u64,
    mut hash: Option<RunningHash>,
) -> Result<Written, BlobError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let (recycler, mut recycled) = tokio::sync::mpsc::channel::<Vec<u8>>(WRITE_QUEUE + 3);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<Option<RunningHash>> {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        let mut flusher: Option<EarlyFlusher> = None;
        let mut unflushed = 0usize;
        while let Some(mut buffer) = receiver.blocking_recv() {
            file.write_all(&buffer)?;
            if let Some(hash) = hash.as_mut() {
                hash.update(&buffer);
            }
            unflushed += buffer.len();
            buffer.clear();
            // Never full: no more buffers exist than it holds.
            let _ = recycler.try_send(buffer);
            if unflushed >= EARLY_FLUSH {
                unflushed = 0;
                match flusher.as_ref() {
                    Some(flusher) => flusher.request(),
                    None => flusher = Some(EarlyFlusher::start(file.try_clone()?)?),
                }
            }
        }
        if let Some(flusher) = flusher {
            flusher.finish();
        }
        file.sync_all()?;
        Ok(hash)
    });
    let fresh = || {
        let mut buffer = WRITE_BUFFER_POOL.take();
        buffer.clear();
        buffer
    };
    let mut pending = fresh();
    let mut total: u64 = 0;
    let mut failure = None;
    'body: while let Some(frame) = body.next().await {
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                failure = Some(BlobError::Body(e.to_string()));
                break;
            }
        };
        total += frame.len() as u64;
        if total > max_len {
            failure = Some(BlobError::TooLong(max_len));
            break;
        }
        while !frame.is_empty() {
            let room = WRITE_BUFFER - pending.len();
            let part = frame.split_to(room.min(frame.len()));
            pending.extend_from_slice(&part);
            if pending.len() == WRITE_BUFFER {
                let next = recycled.try_recv().unwrap_or_else(|_| fresh());
                if sender.send(std::mem::replace(&mut pending, next)).await.is_err() {
                    break 'body;
                }
            }
        }
    }
    if failure.is_none() && !pending.is_empty() {
        let _ = sender.send(pending).await;
    } else {
        WRITE_BUFFER_POOL.give_back(pending);
    }
    drop(sender);
    let written = writer.await.map_err(std::io::Error::other);
    // The writer has finished: every buffer it wrote is back here.
    while let Ok(buffer) = recycled.try_recv() {
        WRITE_BUFFER_POOL.give_back(buffer);
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    let hash = written??;
    Ok(Written { len: total, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_grows_the_file_and_a_failed_one_gives_everything_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("1.part")).unwrap();
        file.set_len(10).unwrap();
        reserve(&file, 4096).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4096);
        reserve(&file, 100).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4096, "never shrinks a larger file");
        // More than any disk holds: refused as too large, and the file keeps its length.
        let refused = reserve(&file, 1 << 60).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::FileTooLarge);
        assert_eq!(file.metadata().unwrap().len(), 4096);
    }

    fn sha256() -> Option<RunningHash> {
        Some(Box::new(<sha2::Sha256 as sha2::Digest>::new()))
    }

    /// A body in pieces that straddle the writer's buffers.
    fn body(data: &[u8]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        let pieces: Vec<_> = data.chunks(300_001).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        futures_util::stream::iter(pieces)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_whole_write_hashes_exactly_the_bytes_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::open(dir.path()).unwrap();
        let data = pattern(3 * WRITE_BUFFER + 12_345);
        let written = blobs.write_whole("d1", body(&data), u64::MAX, sha256()).await.unwrap();
        assert_eq!(written.len, data.len() as u64);
        let stored = std::fs::read(blobs.path("d1")).unwrap();
        assert_eq!(stored, data);
        let expected = <sha2::Sha256 as sha2::Digest>::digest(&stored);
        assert_eq!(*written.hash.unwrap().finalize(), *expected);

        let unhashed = blobs.write_whole("d2", body(&data), u64::MAX, None).await.unwrap();
        assert!(unhashed.hash.is_none());
    }

    #[tokio::test]
    async fn a_chunk_write_hashes_only_its_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::open(dir.path()).unwrap();
        let data = pattern(2 * WRITE_BUFFER);
        let (head, tail) = data.split_at(WRITE_BUFFER + 7);
        let total = data.len() as u64;
        let first = blobs.write_chunk(1, total, 0, body(head), sha256()).await.unwrap();
        let second = blobs
            .write_chunk(1, total, head.len() as u64, body(tail), first.hash)
            .await
            .unwrap();
        assert_eq!((first.len, second.len), (head.len() as u64, tail.len() as u64));
        let expected = <sha2::Sha256 as sha2::Digest>::digest(&data);
        assert_eq!(
            *second.hash.unwrap().finalize(),
            *expected,
            "the chunks in order make the data"
        );
    }
}
