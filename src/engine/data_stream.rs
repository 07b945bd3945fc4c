//! An object's data being served: its open data and the part of it requested. A file is
//! read by one thread into a few reused buffers, data in the database a few rows at a time;
//! either way the connection gets a stream of chunks.

use super::data::DataRange;
use crate::store::blobs::DataSource;
use crate::store::buffers::BufferPool;
use crate::zero_copy::FileSends;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

/// What admits one download: a data stream slot, and for a ranged read a ranged-download
/// permit. Held until the last byte of the download left for the network, so that the
/// buffers of at most `MaxDataStreams` downloads exist at once, however many nodes
/// download.
pub struct Admission {
    pub(super) _ranged: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(super) _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Open data and the range of it requested.
pub struct DataStream {
    pub source: DataSource,
    pub range: DataRange,
    pub admission: Admission,
}

/// Read buffer of one data download: large enough to keep a single download near disk speed.
const DOWNLOAD_BUFFER: usize = 256 * 1024;
/// Chunks of a download read ahead of the network by the reader thread.
const READ_AHEAD: usize = 2;
/// Buffers of one download: read ahead, being sent, and one being read into.
const DOWNLOAD_BUFFERS: usize = READ_AHEAD + 2;
/// The download buffers of every download, kept when a download ends: enough for sixteen
/// downloads at once (several times the ranged-download slots of a small machine) before
/// further ones are freed.
static DOWNLOAD_BUFFER_POOL: BufferPool = BufferPool::new(DOWNLOAD_BUFFER, 16 * DOWNLOAD_BUFFERS);

/// A download buffer lent to the HTTP body as `Bytes`: when the last view of it is dropped
/// (its bytes were sent), it goes back to its download's reader for the next read, or to the
/// pool once that reader has finished.
///
/// It shares the download's admission: the connection may still queue the last buffers
/// after the body ended, and the slot is free only once they are gone.
struct Lent {
    buffer: Vec<u8>,
    len: usize,
    home: std::sync::mpsc::SyncSender<Vec<u8>>,
    pool: &'static BufferPool,
    _admission: std::sync::Arc<Admission>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // Never full (it holds every buffer of the download); disconnected once the reader
        // has finished.
        if let Err(returned) = self.home.try_send(std::mem::take(&mut self.buffer)) {
            let (std::sync::mpsc::TrySendError::Full(buffer) | std::sync::mpsc::TrySendError::Disconnected(buffer)) =
                returned;
            self.pool.give_back(buffer);
        }
    }
}

impl DataStream {
    /// The range's bytes as a stream of chunks of up to [`DOWNLOAD_BUFFER`] bytes. One
    /// blocking thread reads the file from start to end, at most `READ_AHEAD` chunks ahead of
    /// the consumer, instead of one hop to the blocking pool and one extra copy per read. Its
    /// few buffers come from the pool and go back to it, so a download of any size holds
    /// `DOWNLOAD_BUFFERS` chunks and allocates nothing per chunk. The admission is held by
    /// the thread, the stream and every lent buffer: released when the thread has read the
    /// range, it would let every further download fill its buffers while the earlier ones
    /// still wait to be sent, and memory would grow with the number of nodes downloading at
    /// once (10,000 nodes fetching 1 MB took 4 GB).
    pub async fn into_chunks(self) -> BoxStream<'static, std::io::Result<Bytes>> {
        self.into_chunks_from(&DOWNLOAD_BUFFER_POOL).await
    }

    /// The range's bytes as placeholder chunks that the connection sends from the file with
    /// `sendfile(2)` (plain TCP connections only: see [`crate::zero_copy`]). Nothing is read
    /// by the process and no buffer is held; the admission is held until the last chunk has
    /// been sent, as for [`DataStream::into_chunks`]. Data that is not a file (rows of the
    /// database) is streamed as by [`DataStream::into_chunks`].
    pub async fn into_file_sends(self, sends: &FileSends) -> BoxStream<'static, std::io::Result<Bytes>> {
        let DataStream {
            source,
            range,
            admission,
        } = self;
        let file = match source {
            DataSource::File(file) => file.into_std().await,
            source => {
                return DataStream {
                    source,
                    range,
                    admission,
                }
                .into_chunks()
                .await
                .boxed()
            }
        };
        sends
            .body(file, range.start, range.len, std::sync::Arc::new(admission))
            .boxed()
    }

    /// The range's bytes in one buffer, for a transfer that sends a bounded chunk at once.
    pub async fn read_all(self) -> std::io::Result<Bytes> {
        self.source.read_range(self.range.start, self.range.len).await
    }

    /// [`DataStream::into_chunks`] with buffers of `pool`.
    async fn into_chunks_from(self, pool: &'static BufferPool) -> BoxStream<'static, std::io::Result<Bytes>> {
        let DataStream {
            source,
            range,
            admission,
        } = self;
        let admission = std::sync::Arc::new(admission);
        let file = match source {
            DataSource::File(file) => file,
            source => return database_chunks(source, range, admission).await,
        };
        let reader_admission = admission.clone();
        let mut file = file.into_std().await;
        let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek};
            if let Err(e) = file.seek(std::io::SeekFrom::Start(range.start)) {
                let _ = sender.blocking_send(Err(e));
                return;
            }
            let (home, returned) = std::sync::mpsc::sync_channel::<Vec<u8>>(DOWNLOAD_BUFFERS);
            // A small object gets a buffer of its size, not a pooled whole chunk.
            let small = usize::try_from(range.len).ok().filter(|&len| len < DOWNLOAD_BUFFER);
            let mut lent = 0;
            let mut left = range.len;
            while left > 0 {
                let mut buffer = match returned.try_recv() {
                    Ok(buffer) => buffer,
                    Err(_) if lent < DOWNLOAD_BUFFERS => {
                        lent += 1;
                        match small {
                            Some(len) => vec![0u8; len],
                            None => {
                                let mut buffer = pool.take();
                                buffer.resize(DOWNLOAD_BUFFER, 0);
                                buffer
                            }
                        }
                    }
                    Err(_) => match returned.recv() {
                        Ok(buffer) => buffer,
                        Err(_) => break,
                    },
                };
                let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let item = match file.read(&mut buffer[..want]) {
                    Ok(0) => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the data file is shorter than its object",
                    )),
                    Ok(len) => {
                        left -= len as u64;
                        Ok(Bytes::from_owner(Lent {
                            buffer,
                            len,
                            home: home.clone(),
                            pool,
                            _admission: reader_admission.clone(),
                        }))
                    }
                    Err(e) => {
                        pool.give_back(buffer);
                        Err(e)
                    }
                };
                let failed = item.is_err();
                if sender.blocking_send(item).is_err() || failed {
                    break;
                }
            }
            // Buffers already sent come back here; those still in flight go to the pool
            // themselves once the receiver below is gone (one dropped in between is freed).
            drop(home);
            while let Ok(buffer) = returned.try_recv() {
                pool.give_back(buffer);
            }
        });
        chunks_of(receiver, admission)
    }
}

/// The chunks a reader task sends, as a stream that holds the download's admission.
fn chunks_of(
    receiver: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    admission: std::sync::Arc<Admission>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures_util::stream::unfold((receiver, admission), |(mut receiver, admission)| async move {
        receiver.recv().await.map(|item| (item, (receiver, admission)))
    })
    .boxed()
}

/// The range's bytes of data in the database: a task reads its rows `READ_AHEAD` chunks
/// ahead of the connection, so that the database and the network work at the same time.
async fn database_chunks(
    source: DataSource,
    range: DataRange,
    admission: std::sync::Arc<Admission>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        let mut rows = match source.range_stream(range.start, range.len).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        while let Some(item) = rows.next().await {
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    chunks_of(receiver, admission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    /// A stream of the whole of a file holding `data`.
    async fn stream_of(dir: &std::path::Path, data: &[u8]) -> DataStream {
        let path = dir.join("data");
        std::fs::write(&path, data).expect("data file");
        let size = data.len() as u64;
        DataStream {
            source: DataSource::File(tokio::fs::File::open(&path).await.expect("open")),
            range: DataRange {
                start: 0,
                len: size,
                size,
                partial: false,
            },
            admission: Admission {
                _ranged: None,
                _slot: Arc::new(Semaphore::new(1)).try_acquire_owned().expect("a slot"),
            },
        }
    }

    /// Reads the whole stream, keeping every chunk until the stream has ended.
    async fn read_all(stream: DataStream, pool: &'static BufferPool) -> Vec<Bytes> {
        let chunks: Vec<Bytes> = stream
            .into_chunks_from(pool)
            .await
            .map(|chunk| chunk.expect("a chunk"))
            .collect()
            .await;
        chunks
    }

    #[tokio::test]
    async fn the_buffers_of_a_finished_download_serve_the_next_one() {
        static POOL: BufferPool = BufferPool::new(DOWNLOAD_BUFFER, 16);
        let dir = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..DOWNLOAD_BUFFER * 5 / 2).map(|i| (i % 251) as u8).collect();
        let chunks = read_all(stream_of(dir.path(), &data).await, &POOL).await;
        assert_eq!(chunks.concat(), data);
        // Three reads, three buffers, all still held by the chunks.
        assert_eq!(POOL.idle(), 0);
        let addresses: Vec<*const u8> = chunks.iter().map(|c| c.as_ptr()).collect();
        drop(chunks);
        assert_eq!(POOL.idle(), 3, "every buffer went back to the pool");

        let again = read_all(stream_of(dir.path(), &data).await, &POOL).await;
        assert_eq!(again.concat(), data);
        assert_eq!(POOL.idle(), 0, "the next download took them");
        assert!(again.iter().all(|c| addresses.contains(&c.as_ptr())), "no new buffer");
    }

    #[tokio::test]
    async fn a_small_object_gets_a_buffer_of_its_size_outside_the_pool() {
        static POOL: BufferPool = BufferPool::new(DOWNLOAD_BUFFER, 16);
        let dir = tempfile::tempdir().expect("temp dir");
        let chunks = read_all(stream_of(dir.path(), b"a small object").await, &POOL).await;
        assert_eq!(chunks.concat(), b"a small object");
        drop(chunks);
        assert_eq!(POOL.idle(), 0);
    }
}
