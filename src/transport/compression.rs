//! Object data compressed with zstd between two nodes of this implementation, over HTTP.
//! Negotiated per request with headers the original ignores, so that an original node on
//! either side sees the original protocol:
//! - a receiver that takes compressed data says so in its request ([`ENCODING_HEADER`]: `zstd`),
//!   and a sender that compresses says so in its answer, or in its request for an upload;
//! - a CSS that takes compressed uploads says so on its poll answers ([`ACCEPTED_HEADER`]).
//!
//! Ranges stay those of the data itself: a `Content-Range` names the bytes the decompressed
//! body holds. Whether to compress is decided from a sample of the first bytes, so data that
//! does not compress (models already compressed, media, encrypted files) is sent as it is and
//! costs no CPU. Memory is the codec's window, bounded on both sides whatever the peer asks.

use async_compression::tokio::bufread::{ZstdDecoder, ZstdEncoder};
use async_compression::zstd::{CParameter, DParameter};
use async_compression::Level;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use std::io;
use tokio_util::io::{ReaderStream, StreamReader};

/// Request header of a receiver that takes, and of an upload that carries, compressed data;
/// answer header of a download whose body is compressed.
pub const ENCODING_HEADER: &str = "x-sync-data-encoding";
/// Answer header of a CSS that takes compressed uploads.
pub const ACCEPTED_HEADER: &str = "x-sync-data-encodings";
/// The one encoding.
pub const ZSTD: &str = "zstd";

/// Bytes sampled to decide.
const SAMPLE: usize = 64 * 1024;
/// Data shorter than this is sent as it is: the frame would cost more than it saves.
const TOO_SHORT: usize = 512;
/// The sample must shrink to this share (in percent) or less for the data to be compressed.
const WORTH: usize = 90;
/// zstd's fastest level: on a slow link any compression wins, on a fast one CPU matters.
const LEVEL: i32 = 1;
/// The encoder's window (2^20 = 1 MiB), and the largest a decoder accepts from a peer (2^23):
/// the memory of one transfer, whatever the object's size.
const WINDOW_LOG: u32 = 20;
const MAX_WINDOW_LOG: u32 = 23;
/// Read size of the codec streams.
const BUFFER: usize = 64 * 1024;

/// True when a header value lists `zstd`.
pub fn names_zstd(value: Option<&axum::http::HeaderValue>) -> bool {
    value.and_then(|v| v.to_str().ok()).is_some_and(lists_zstd)
}

/// True when a comma-separated list of encodings holds `zstd`.
pub fn lists_zstd(encodings: &str) -> bool {
    encodings.split(',').any(|e| e.trim().eq_ignore_ascii_case(ZSTD))
}

/// True when compressing `sample` (the start of the data) saves enough to be worth it.
pub fn worth_compressing(sample: &[u8]) -> bool {
    shrunk(sample).is_some()
}

/// `data` compressed, when that saves enough to be worth it.
fn shrunk(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < TOO_SHORT {
        return None;
    }
    zstd::bulk::compress(data, LEVEL)
        .ok()
        .filter(|compressed| compressed.len() * 100 <= data.len() * WORTH)
}

/// `data` compressed when a sample of its first bytes compresses; the flag says whether it
/// was. The sample is read ahead and sent first either way.
pub async fn compress_if_worth(
    data: BoxStream<'static, io::Result<Bytes>>,
) -> io::Result<(bool, BoxStream<'static, io::Result<Bytes>>)> {
    // Fused: data shorter than the sample has ended when it is chained after the sample,
    // and a stream may not be polled again once it ended.
    let mut data = data.fuse();
    let mut sample: Vec<Bytes> = Vec::new();
    let mut sampled = 0;
    while sampled < SAMPLE {
        match data.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                sampled += chunk.len();
                sample.push(chunk);
            }
            None => break,
        }
    }
    let head: Vec<u8> = sample.iter().flat_map(|c| c.iter().copied()).take(SAMPLE).collect();
    let worth = worth_compressing(&head);
    let whole = stream::iter(sample.into_iter().map(Ok)).chain(data).boxed();
    if !worth {
        return Ok((false, whole));
    }
    let encoder = ZstdEncoder::with_quality_and_params(
        StreamReader::new(whole),
        Level::Precise(LEVEL),
        &[CParameter::window_log(WINDOW_LOG)],
    );
    Ok((true, ReaderStream::with_capacity(encoder, BUFFER).boxed()))
}

/// The data of a compressed body.
pub fn decompress(body: BoxStream<'static, io::Result<Bytes>>) -> BoxStream<'static, io::Result<Bytes>> {
    let decoder = ZstdDecoder::with_params(StreamReader::new(body), &[DParameter::window_log_max(MAX_WINDOW_LOG)]);
    ReaderStream::with_capacity(decoder, BUFFER).boxed()
}

/// A chunk that travels whole in one message (MQTT) compressed, when a sample of it
/// compresses and the whole comes out smaller; `None` to send it as it is.
pub fn compress_chunk(data: &[u8]) -> Option<Vec<u8>> {
    // A chunk no longer than the sample is its own sample: compressed once.
    if data.len() <= SAMPLE {
        return shrunk(data);
    }
    if !worth_compressing(&data[..SAMPLE]) {
        return None;
    }
    zstd::bulk::compress(data, LEVEL)
        .ok()
        .filter(|compressed| compressed.len() < data.len())
}

/// The data of a compressed chunk, refused when it would be larger than `limit` bytes (the
/// frame records its size: a larger one is refused before anything is allocated).
pub fn decompress_chunk(data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    zstd::bulk::decompress(data, limit)
}

/// A body stream with its errors as io errors.
pub fn io_stream<E: std::error::Error + Send + Sync + 'static>(
    body: impl futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> BoxStream<'static, io::Result<Bytes>> {
    body.map_err(io::Error::other).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        let line = br#"{"time":"2026-12-04T19:00:00Z","level":"info","message":"reading sensor","value":42}"#;
        line.iter().copied().cycle().take(len).collect()
    }

    async fn round_trip(data: Vec<u8>, piece: usize) -> (bool, usize, Vec<u8>) {
        let chunks: Vec<io::Result<Bytes>> = data.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        // An unfold, as the store's readers are: it panics when polled again after its end.
        let source = stream::unfold(
            chunks.into_iter(),
            |mut rest| async move { rest.next().map(|c| (c, rest)) },
        );
        let (compressed, body) = compress_if_worth(source.boxed()).await.unwrap();
        let wire: Vec<Bytes> = body.try_collect().await.unwrap();
        let wire_len = wire.iter().map(Bytes::len).sum();
        let received = if compressed {
            let back: Vec<Bytes> = decompress(stream::iter(wire.into_iter().map(Ok)).boxed())
                .try_collect()
                .await
                .unwrap();
            back.concat()
        } else {
            wire.concat()
        };
        (compressed, wire_len, received)
    }

    #[tokio::test]
    async fn text_is_compressed_and_comes_back_whole() {
        let data = text(3 * 1024 * 1024 + 17);
        let (compressed, wire, received) = round_trip(data.clone(), 10_000).await;
        assert!(compressed);
        assert!(wire * 10 < data.len(), "{wire} bytes on the wire for {}", data.len());
        assert_eq!(received, data);
    }

    #[tokio::test]
    async fn noise_and_short_data_are_sent_as_they_are() {
        let data = crate::random::noise(1024 * 1024);
        let (compressed, wire, received) = round_trip(data.clone(), 4096).await;
        assert!(!compressed);
        assert_eq!((wire, received), (data.len(), data));
        let short = text(100);
        let (compressed, _, received) = round_trip(short.clone(), 7).await;
        assert!(!compressed);
        assert_eq!(received, short);
        let (compressed, wire, _) = round_trip(Vec::new(), 1).await;
        assert!(!compressed && wire == 0);
    }

    #[tokio::test]
    async fn a_corrupt_body_is_an_error_not_data() {
        let garbage = stream::iter(vec![Ok(Bytes::from_static(b"\x28\xb5\x2f\xfd not really zstd"))]).boxed();
        let result: io::Result<Vec<Bytes>> = decompress(garbage).try_collect().await;
        assert!(result.is_err());
    }

    #[test]
    fn the_header_may_list_several_encodings() {
        let value = axum::http::HeaderValue::from_static("gzip, ZSTD");
        assert!(names_zstd(Some(&value)));
        assert!(!names_zstd(Some(&axum::http::HeaderValue::from_static("gzip"))));
        assert!(!names_zstd(None));
    }

    #[test]
    fn chunks_are_compressed_only_when_it_pays_and_bounded_when_read() {
        let logs = text(256 * 1024);
        let compressed = compress_chunk(&logs).expect("log lines compress");
        assert!(compressed.len() < logs.len() / 4, "{} bytes", compressed.len());
        assert_eq!(decompress_chunk(&compressed, logs.len()).unwrap(), logs);
        assert!(
            decompress_chunk(&compressed, logs.len() - 1).is_err(),
            "more than the limit"
        );
        assert!(decompress_chunk(b"not zstd at all", 1024).is_err());
        assert_eq!(compress_chunk(&crate::random::noise(256 * 1024)), None);
        assert_eq!(compress_chunk(&logs[..100]), None, "too short to be worth a frame");
    }
}
