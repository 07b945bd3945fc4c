//! Downloads over plain TCP without copying: the bytes of a data file go from the page cache
//! to the socket by `sendfile(2)`, never through a buffer of the process.
//!
//! The HTTP connection writes a response body only as the chunks the body yields, so a
//! download on a plain TCP connection yields *placeholder chunks*: views of one shared,
//! never-written buffer, each standing for a range of a data file and registered, in the
//! order the body yields them, with the connection's [`FileSends`]. The connection's socket
//! ([`SendfileStream`]) recognises a placeholder by its address when the connection writes
//! it and sends the file range instead. This relies on the connection queueing body chunks
//! as they are (hyper's vectored write strategy, set explicitly where the connection is
//! built) rather than copying them into its own buffer, which would send the placeholder's
//! zeros: the stream checks that every placeholder it is handed is the next file range in
//! order and fails the connection otherwise, and the download tests compare every byte.
//!
//! TLS connections never get placeholders (their bytes must be encrypted in the process):
//! they are served from read-ahead buffers.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The longest placeholder chunk, so the file range one chunk stands for: large enough that
/// a chunk fills the socket's send buffer several times over, small enough that the
/// placeholder's address space is nothing.
const PLACEHOLDER_LEN: usize = 4 << 20;

/// Placeholder chunks start at one of this many addresses, by their number: a chunk is
/// recognised by where its view starts, so that one written out of order is caught rather
/// than sent as another chunk's range.
const VIEW_STARTS: usize = 4096;

/// The memory every placeholder chunk views. Zeroed on allocation by the allocator (a fresh
/// mapping for this size), and never read nor written, so it takes no resident memory.
fn placeholder() -> &'static [u8] {
    static PLACEHOLDER: OnceLock<Box<[u8]>> = OnceLock::new();
    PLACEHOLDER.get_or_init(|| vec![0u8; VIEW_STARTS + PLACEHOLDER_LEN].into_boxed_slice())
}

/// Where `slice` starts within the placeholder memory, if it is a view of it.
fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let base = placeholder().as_ptr() as usize;
    let at = (slice.as_ptr() as usize).checked_sub(base)?;
    (at < VIEW_STARTS + PLACEHOLDER_LEN && !slice.is_empty()).then_some(at)
}

/// One file range registered for a placeholder chunk not yet dropped.
struct FileRange {
    id: u64,
    file: Arc<File>,
    /// File offset of the chunk's first byte.
    start: u64,
    /// Where the chunk's view of the placeholder starts.
    view_start: usize,
    /// Bytes of the chunk already sent.
    sent: usize,
}

#[derive(Default)]
struct Registered {
    next_id: u64,
    ranges: VecDeque<FileRange>,
}

/// The file ranges of one connection's placeholder chunks, in the order its responses'
/// bodies yielded them; shared by the connection's socket and its requests (as a request
/// extension, present only on connections that can send files).
#[derive(Clone, Default)]
pub struct FileSends(Arc<Mutex<Registered>>);

/// A placeholder chunk's owner: it unregisters its range when the chunk is dropped, sent or
/// not (a response abandoned half-way leaves nothing behind for the next one).
struct Placeholder {
    id: u64,
    view_start: usize,
    len: usize,
    sends: FileSends,
    _keep: Arc<dyn Send + Sync>,
}

impl AsRef<[u8]> for Placeholder {
    fn as_ref(&self) -> &[u8] {
        &placeholder()[self.view_start..self.view_start + self.len]
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        self.sends.0.lock().ranges.retain(|range| range.id != self.id);
    }
}

impl FileSends {
    /// `len` bytes of `file` from `start` as a body of placeholder chunks, each registered
    /// when the body yields it. `keep` lives until the last chunk is dropped (the download's
    /// admission: held until its last byte has left).
    pub fn body(
        &self,
        file: File,
        start: u64,
        len: u64,
        keep: Arc<dyn Send + Sync>,
    ) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
        let file = Arc::new(file);
        let sends = self.clone();
        let chunks = len.div_ceil(PLACEHOLDER_LEN as u64);
        futures_util::stream::iter((0..chunks).map(move |n| {
            let offset = n * PLACEHOLDER_LEN as u64;
            let chunk_len = (len - offset).min(PLACEHOLDER_LEN as u64) as usize;
            Ok(sends.chunk(&file, start + offset, chunk_len, keep.clone()))
        }))
    }

    fn chunk(&self, file: &Arc<File>, start: u64, len: usize, keep: Arc<dyn Send + Sync>) -> Bytes {
        let mut registered = self.0.lock();
        let id = registered.next_id;
        registered.next_id += 1;
        let view_start = (id % VIEW_STARTS as u64) as usize;
        registered.ranges.push_back(FileRange {
            id,
            file: file.clone(),
            start,
            view_start,
            sent: 0,
        });
        drop(registered);
        Bytes::from_owner(Placeholder {
            id,
            view_start,
            len,
            sends: self.clone(),
            _keep: keep,
        })
    }

    /// The file, file offset and chunk of the next bytes to send, given that the connection
    /// is writing the placeholder from `at`: it must be the oldest registered range's chunk,
    /// at the point reached so far.
    fn next(&self, at: usize) -> io::Result<(Arc<File>, u64, u64)> {
        let registered = self.0.lock();
        match registered.ranges.front() {
            Some(range) if range.view_start + range.sent == at => {
                Ok((range.file.clone(), range.start + range.sent as u64, range.id))
            }
            _ => Err(io::Error::other(
                "a download's file range was written out of order; the connection is closed",
            )),
        }
    }

    fn advance(&self, id: u64, sent: usize) {
        if let Some(range) = self.0.lock().ranges.iter_mut().find(|range| range.id == id) {
            range.sent += sent;
        }
    }
}

/// A plain TCP connection that sends the file range of a placeholder chunk with
/// `sendfile(2)` and everything else as written.
pub struct SendfileStream {
    tcp: TcpStream,
    sends: FileSends,
}

impl SendfileStream {
    pub fn new(tcp: TcpStream) -> (Self, FileSends) {
        let sends = FileSends::default();
        (
            SendfileStream {
                tcp,
                sends: sends.clone(),
            },
            sends,
        )
    }

    fn poll_send_file(&self, cx: &mut Context<'_>, at: usize, len: usize) -> Poll<io::Result<usize>> {
        let (file, offset, id) = self.sends.next(at)?;
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let mut position = offset;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.tcp, &*file, Some(&mut position), len).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the data file is shorter than its object",
                    )))
                }
                Ok(sent) => {
                    self.sends.advance(id, sent);
                    return Poll::Ready(Ok(sent));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match placeholder_offset(buf) {
            Some(at) => this.poll_send_file(cx, at, buf.len()),
            None => Pin::new(&mut this.tcp).poll_write(cx, buf),
        }
    }

    /// Writes the leading slices up to the first placeholder in one call, or sends the
    /// placeholder's file range when it comes first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first_placeholder = bufs
            .iter()
            .enumerate()
            .find_map(|(index, buf)| placeholder_offset(buf).map(|at| (index, at)));
        let Some((index, at)) = first_placeholder else {
            return Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        };
        if bufs[..index].iter().all(|buf| buf.is_empty()) {
            return this.poll_send_file(cx, at, bufs[index].len());
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[..index])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
