use super::*;
use bytes::Buf;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

/// A connected pair on loopback: the server side as a [`SendfileStream`], and the client.
async fn connection() -> (SendfileStream, FileSends, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("address"));
    let (client, accepted) = tokio::join!(client, listener.accept());
    let (stream, sends) = SendfileStream::new(accepted.expect("accept").0);
    (stream, sends, client.expect("connect"))
}

/// A data file of `len` bytes in a pattern that shows any misplaced byte.
fn data_file(dir: &std::path::Path, len: usize) -> (File, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
    let path = dir.join("data");
    std::fs::write(&path, &data).expect("data file");
    (File::open(&path).expect("open"), data)
}

/// Writes `bufs` in order as the HTTP connection does: vectored writes of what is left,
/// advancing by what each write took, dropping each buffer once written.
async fn write_all(stream: &mut SendfileStream, mut bufs: VecDeque<Bytes>) -> io::Result<()> {
    while !bufs.is_empty() {
        let written = std::future::poll_fn(|cx| {
            let slices: Vec<IoSlice<'_>> = bufs.iter().map(|buf| IoSlice::new(buf)).collect();
            Pin::new(&mut *stream).poll_write_vectored(cx, &slices)
        })
        .await?;
        let mut left = written;
        while left > 0 {
            let front = bufs.front_mut().expect("a buffer");
            let take = left.min(front.len());
            front.advance(take);
            left -= take;
            if front.is_empty() {
                bufs.pop_front();
            }
        }
    }
    Ok(())
}

async fn read_to_end(mut client: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.expect("read");
    received
}

#[tokio::test]
async fn placeholder_chunks_arrive_as_their_file_ranges_between_ordinary_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, data) = data_file(dir.path(), 2 * PLACEHOLDER_LEN + 12_345);
    let (mut stream, sends, client) = connection().await;
    let reader = tokio::spawn(read_to_end(client));
    let start = 1_000;
    let len = data.len() - 2_000;
    let mut bufs: VecDeque<Bytes> = sends
        .body(file, start as u64, len as u64, Arc::new(()))
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    assert_eq!(bufs.len(), 3, "chunks of at most {PLACEHOLDER_LEN} bytes");
    bufs.push_front(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
    bufs.push_back(Bytes::from_static(b"after"));
    write_all(&mut stream, bufs).await.expect("written");
    drop(stream);
    let received = reader.await.expect("reader");
    let mut expected = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    expected.extend_from_slice(&data[start..start + len]);
    expected.extend_from_slice(b"after");
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the bytes sent are the file's");
    assert!(sends.0.lock().ranges.is_empty(), "every range went with its chunk");
}

#[tokio::test]
async fn a_chunk_dropped_unsent_leaves_nothing_for_the_next_response() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, data) = data_file(dir.path(), 4096);
    let (mut stream, sends, client) = connection().await;
    let reader = tokio::spawn(read_to_end(client));
    let abandoned: Vec<_> = sends
        .body(file.try_clone().expect("clone"), 0, 100, Arc::new(()))
        .collect()
        .await;
    drop(abandoned);
    let next: VecDeque<Bytes> = sends
        .body(file, 2000, 1000, Arc::new(()))
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    write_all(&mut stream, next).await.expect("written");
    drop(stream);
    assert_eq!(reader.await.expect("reader"), data[2000..3000]);
}

#[tokio::test]
async fn a_chunk_written_out_of_order_fails_instead_of_sending_wrong_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, _) = data_file(dir.path(), 4096);
    let (mut stream, sends, client) = connection().await;
    let reader = tokio::spawn(read_to_end(client));
    let first: Vec<_> = sends
        .body(file.try_clone().expect("clone"), 0, 100, Arc::new(()))
        .collect()
        .await;
    let second: VecDeque<Bytes> = sends
        .body(file, 100, 100, Arc::new(()))
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    let error = write_all(&mut stream, second).await.expect_err("refused");
    assert!(error.to_string().contains("out of order"), "{error}");
    drop((first, stream));
    assert!(reader.await.expect("reader").is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_file_shorter_than_its_range_fails_the_response() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, _) = data_file(dir.path(), 100);
    let (mut stream, sends, client) = connection().await;
    let reader = tokio::spawn(read_to_end(client));
    let chunks: VecDeque<Bytes> = sends
        .body(file, 0, 200, Arc::new(()))
        .map(|c| c.expect("chunk"))
        .collect()
        .await;
    let error = write_all(&mut stream, chunks).await.expect_err("short file");
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    drop(stream);
    assert_eq!(reader.await.expect("reader").len(), 100);
}

#[tokio::test]
async fn what_a_body_keeps_lives_until_its_last_chunk_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, _) = data_file(dir.path(), 100);
    let sends = FileSends::default();
    let keep = Arc::new(());
    let body = sends.body(file, 0, 100, keep.clone());
    let chunks: Vec<_> = body.collect().await;
    assert_eq!(Arc::strong_count(&keep), 2, "held by the chunk after the body ended");
    drop(chunks);
    assert_eq!(Arc::strong_count(&keep), 1);
}

#[test]
fn only_views_of_the_placeholder_are_recognised() {
    assert_eq!(placeholder_offset(&placeholder()[10..20]), Some(10));
    let end = placeholder().len();
    assert_eq!(placeholder_offset(&placeholder()[end - 1..]), Some(end - 1));
    assert_eq!(
        placeholder_offset(&placeholder()[10..10]),
        None,
        "an empty slice is nothing to send"
    );
    assert_eq!(placeholder_offset(b"ordinary bytes"), None);
    assert_eq!(placeholder_offset(&[0u8; 64]), None);
}
