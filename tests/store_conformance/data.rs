//! Object data on both kinds of data store: files beside the embedded store, and rows in
//! PostgreSQL. `data_conformance!` makes a `files::<case>` and a `database::<case>` test of
//! each `async fn(Arc<dyn Store>, BlobStore)`.

use super::{key, record};
use bytes::Bytes;
use edge_sync_service::store::blobs::{BlobError, BlobStore};
use edge_sync_service::store::{Expect, Store};
use futures_util::StreamExt;
use sha2::Digest;
use std::sync::Arc;

/// One MiB: a row of the database store, so data of a few MiB spans several rows.
const MIB: usize = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A body of `data` in pieces of `piece` bytes, as a network delivers it.
fn body(data: &[u8], piece: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    let pieces: Vec<_> = data.chunks(piece).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    futures_util::stream::iter(pieces)
}

/// The whole data `name`, or `None` when there is none.
async fn read(blobs: &BlobStore, name: &str, start: u64, len: u64) -> Option<Vec<u8>> {
    let (source, _) = blobs.open_data(name).await.expect("open")?;
    let mut stream = source.range_stream(start, len).await.expect("a stream");
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.expect("a chunk"));
    }
    Some(data)
}

async fn size(blobs: &BlobStore, name: &str) -> Option<u64> {
    blobs.open_data(name).await.expect("open").map(|(_, size)| size)
}

pub async fn whole_data_reads_back_whole_by_range_and_hashed(_store: Arc<dyn Store>, blobs: BlobStore) {
    let data = pattern(2 * MIB + 12_345, 3);
    let hash: Box<dyn sha2::digest::DynDigest + Send> = Box::new(sha2::Sha256::new());
    let written = blobs
        .write_whole("d1.bin", body(&data, 300_001), u64::MAX, Some(hash))
        .await
        .expect("written");
    assert_eq!(written.len, data.len() as u64);
    assert_eq!(
        *written.hash.expect("the hash").finalize(),
        *sha2::Sha256::digest(&data)
    );
    assert_eq!(size(&blobs, "d1.bin").await, Some(data.len() as u64));
    let total = data.len() as u64;
    assert_eq!(read(&blobs, "d1.bin", 0, total).await.as_deref(), Some(&data[..]));
    // Ranges inside a row, across row boundaries, and the last byte.
    for (start, len) in [
        (10u64, 100u64),
        (MIB as u64 - 5, 10),
        (MIB as u64 / 2, MIB as u64 + 1000),
        (total - 1, 1),
    ] {
        let got = read(&blobs, "d1.bin", start, len).await.expect("present");
        assert_eq!(
            got,
            &data[start as usize..(start + len) as usize],
            "range {start}+{len}"
        );
    }
    let digest = blobs
        .digest("d1.bin", Box::new(sha2::Sha256::new()))
        .await
        .expect("a digest");
    assert_eq!(*digest, *sha2::Sha256::digest(&data));

    // Empty data is data, not absent data.
    blobs
        .write_whole("empty.bin", body(&[], 1), u64::MAX, None)
        .await
        .expect("written");
    assert_eq!(size(&blobs, "empty.bin").await, Some(0));
    assert_eq!(read(&blobs, "empty.bin", 0, 0).await, Some(Vec::new()));

    blobs.remove("d1.bin").await;
    assert_eq!(size(&blobs, "d1.bin").await, None);
    blobs.remove("d1.bin").await; // removing twice is harmless
}

pub async fn a_failed_or_overlong_body_leaves_no_data(_store: Arc<dyn Store>, blobs: BlobStore) {
    let data = pattern(3 * MIB, 5);
    let mut pieces: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(MIB / 2).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    pieces.push(Err(std::io::Error::other("the client went away")));
    let failed = blobs
        .write_whole("cut.bin", futures_util::stream::iter(pieces), u64::MAX, None)
        .await;
    assert!(matches!(failed, Err(BlobError::Body(_))), "{:?}", failed.err());
    assert_eq!(
        size(&blobs, "cut.bin").await,
        None,
        "nothing of a failed body is visible"
    );

    let too_long = blobs
        .write_whole("long.bin", body(&data, MIB), 2 * MIB as u64, None)
        .await;
    assert!(matches!(too_long, Err(BlobError::TooLong(_))), "{:?}", too_long.err());
    assert_eq!(size(&blobs, "long.bin").await, None);
}

pub async fn chunks_in_any_order_and_sent_twice_become_the_data(store: Arc<dyn Store>, blobs: BlobStore) {
    let data = pattern(3 * MIB + 777, 9);
    let total = data.len() as u64;
    let session = store.upload_session(&key("model", "chunked"), total).await.unwrap();
    // Out of order, one chunk sent twice, and one sent again with other bounds.
    let cut = |from: usize, to: usize| (from as u64, data[from..to].to_vec());
    let chunks = [
        cut(2 * MIB, data.len()),
        cut(0, MIB + 10),
        cut(2 * MIB, data.len()),
        cut(MIB + 10, 2 * MIB),
        cut(MIB, 2 * MIB + 100),
    ];
    for (offset, bytes) in chunks {
        let written = blobs
            .write_chunk(session.id, total, offset, body(&bytes, 64 * 1024), None)
            .await
            .expect("a chunk");
        assert_eq!(written.len, bytes.len() as u64);
        store.record_chunk(session.id, offset, written.len).await.unwrap();
    }
    assert_eq!(
        size(&blobs, "chunked.bin").await,
        None,
        "nothing visible before promotion"
    );
    blobs
        .promote_partial(session.id, "chunked.bin", total)
        .await
        .expect("promoted");
    blobs.remove_partial(session.id).await;
    assert_eq!(size(&blobs, "chunked.bin").await, Some(total));
    assert_eq!(read(&blobs, "chunked.bin", 0, total).await.as_deref(), Some(&data[..]));
    let middle = read(&blobs, "chunked.bin", MIB as u64 + 5, 20).await.unwrap();
    assert_eq!(middle, &data[MIB + 5..MIB + 25]);

    // A chunk running past the total is refused.
    let session = store.upload_session(&key("model", "other"), 10).await.unwrap();
    let past = blobs.write_chunk(session.id, 10, 5, body(&[1; 6], 6), None).await;
    assert!(matches!(past, Err(BlobError::TooLong(_))), "{:?}", past.err());
}

pub async fn leftovers_are_collected_and_referenced_data_kept(store: Arc<dyn Store>, blobs: BlobStore) {
    let data = pattern(MIB + 1, 1);
    for name in ["kept.bin", "orphan.bin"] {
        blobs
            .write_whole(name, body(&data, MIB), u64::MAX, None)
            .await
            .expect("written");
    }
    let mut object = record("model", "m1");
    object.blob = Some("kept.bin".into());
    store.write_object(object, Expect::Absent, false).await.unwrap();
    // Partial data of a live session and of one that ended.
    let live = store.upload_session(&key("model", "live"), 100).await.unwrap();
    let ended = store.upload_session(&key("model", "ended"), 100).await.unwrap();
    for session in [live.id, ended.id] {
        blobs
            .write_chunk(session, 100, 0, body(&[7; 50], 50), None)
            .await
            .expect("a chunk");
    }
    store
        .write_object(record("model", "ended"), Expect::Absent, true)
        .await
        .unwrap();
    assert_eq!(store.upload_session_ids().await.unwrap(), vec![live.id]);

    let removed = blobs.collect_garbage(store.as_ref(), None).await.expect("collected");
    assert_eq!(
        read(&blobs, "kept.bin", 0, data.len() as u64).await.as_deref(),
        Some(&data[..])
    );
    // The live session completes from what it had.
    let rest = blobs
        .write_chunk(live.id, 100, 50, body(&[8; 50], 50), None)
        .await
        .unwrap();
    assert_eq!(rest.len, 50);
    blobs.promote_partial(live.id, "live.bin", 100).await.unwrap();
    let mut expected = vec![7u8; 50];
    expected.extend([8u8; 50]);
    assert_eq!(read(&blobs, "live.bin", 0, 100).await, Some(expected));
    if blobs.collects_itself() {
        // Shared by instances: unreferenced complete data may be about to be attached to
        // its object by another instance, so only old leftovers go.
        assert_eq!(removed, 1, "the ended session's rows");
        assert!(size(&blobs, "orphan.bin").await.is_some());
    } else {
        assert_eq!(removed, 2, "the orphan file and the ended session's partial file");
        assert_eq!(size(&blobs, "orphan.bin").await, None);
    }
}
