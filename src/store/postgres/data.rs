//! Object data in the database, so that CSS instances share nothing but PostgreSQL.
//!
//! Data is kept as rows of `bytea` of at most [`ROW`] bytes (`object_data_chunks`, keyed by
//! data name and byte offset), with one `object_data` row per complete data giving its
//! size. Rows rather than large objects, by measurement (PostgreSQL 15, 256 MiB of random
//! bytes in 256 KiB pieces, server side): written in 1.1-2.1 s as rows against 2.2-3.6 s
//! with `lo_put`, read back in 0.2 s against 0.6 s with `lo_get`, and 534 MB on disk for two
//! copies against 689 MB. Rows are also read by range with an index, written in plain
//! transactions, removed by a plain `DELETE` and vacuumed and replicated like every other
//! table, while large objects need their own unlinking. The column is stored uncompressed
//! (`STORAGE EXTERNAL`): models and archives rarely compress, and trying costs CPU on every
//! row.
//!
//! - A whole upload writes its rows and its `object_data` row in one transaction: a crash or
//!   a failed body leaves nothing.
//! - A chunk of a chunked upload is one transaction writing rows under the session's
//!   partial name (`partial-{session}`), so chunks may arrive at any instance. Promotion
//!   renames the rows (a cheap update: the `bytea` values stay where they are) and, in the
//!   same transaction, clears the session's received ranges: should the process die before
//!   the object commit, the session has no ranges that its rows no longer back, and the
//!   client's retry starts the data again instead of completing it from missing rows.
//! - Reads fetch [`ROWS_PER_READ`] rows per query and hold a connection only for that query.
//! - Data goes through its own pool of [`DATA_CONNECTIONS`], so long uploads never take the
//!   connections that metadata requests need.

use super::to_i64;
use crate::store::blobs::{BlobError, RunningHash, Written};
use crate::store::{StoreError, StoreResult};
use bytes::{Bytes, BytesMut};
use deadpool_postgres::{GenericClient, Pool};
use futures_util::{Stream, StreamExt, TryStreamExt};

/// Largest row of data: a read holds a few rows per download, so that downloads from the
/// database hold about as much memory as downloads from files (whose buffers are this size).
const ROW: usize = 256 * 1024;
/// Rows read by one query.
const ROWS_PER_READ: u64 = 2;
/// Queries of one read under way at once.
const READS_IN_FLIGHT: usize = 2;
/// Connections of the data pool: uploads and downloads of data at once beyond these wait
/// for one (up to the pool's wait timeout, then the request fails as unavailable).
pub const DATA_CONNECTIONS: usize = 8;
/// Age after which complete data no object references is taken for a leftover of an
/// interrupted request rather than data about to be attached to its object.
const LEFTOVER_AGE_SECONDS: f64 = 3600.0;

/// A chunk sent again may be cut into rows at other bounds than the first time: a row is
/// replaced only by one at least as long, so that no byte that arrived goes missing.
const UPSERT_ROW: &str = "INSERT INTO object_data_chunks (name, start, data) VALUES ($1, $2, $3)
     ON CONFLICT (name, start) DO UPDATE SET data = excluded.data
     WHERE octet_length(excluded.data) >= octet_length(object_data_chunks.data)";
const UPSERT_DATA: &str = "INSERT INTO object_data (name, size, created_at) VALUES ($1, $2, clock_timestamp())
     ON CONFLICT (name) DO UPDATE SET size = excluded.size, created_at = excluded.created_at";

/// Object data in PostgreSQL.
pub struct DatabaseData {
    pool: Pool,
}

/// The name the rows of an upload session's chunks are kept under.
fn partial_name(session: i64) -> String {
    format!("partial-{session}")
}

impl DatabaseData {
    pub(super) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Streams `body` into the data `name` in one transaction.
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
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let transaction = client.transaction().await.map_err(StoreError::from)?;
        let written = write_rows(&transaction, name, 0, body, max_len, hash).await?;
        let statement = transaction
            .prepare_cached(UPSERT_DATA)
            .await
            .map_err(StoreError::from)?;
        transaction
            .execute(&statement, &[&name, &to_i64(written.len)])
            .await
            .map_err(StoreError::from)?;
        transaction.commit().await.map_err(StoreError::from)?;
        Ok(written)
    }

    /// Writes one chunk of an upload session at `offset`, in one transaction.
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
        let mut client = self.pool.get().await.map_err(StoreError::from)?;
        let transaction = client.transaction().await.map_err(StoreError::from)?;
        let name = partial_name(session);
        let written = write_rows(&transaction, &name, offset, body, total.saturating_sub(offset), hash).await?;
        transaction.commit().await.map_err(StoreError::from)?;
        Ok(written)
    }

    /// Makes the rows of session `session` the data `name` of `len` bytes, and clears the
    /// session's received ranges (see the module's notes).
    pub async fn promote_partial(&self, session: i64, name: &str, len: u64) -> StoreResult<()> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let partial = partial_name(session);
        // Rows of a tail chunk sent again with a longer body lie past the end: reads stop
        // at the size, and the rows go with the data.
        transaction
            .execute(
                "UPDATE object_data_chunks SET name = $2 WHERE name = $1",
                &[&partial, &name],
            )
            .await?;
        let statement = transaction.prepare_cached(UPSERT_DATA).await?;
        transaction.execute(&statement, &[&name, &to_i64(len)]).await?;
        transaction
            .execute(
                "UPDATE uploads SET ranges = '[]', first_chunk_size = NULL WHERE id = $1",
                &[&session],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Removes the data `name`.
    pub async fn remove(&self, name: &str) {
        if let Err(e) = self.remove_named(name, true).await {
            tracing::warn!(error = %e, "could not remove object data from the database; it is collected later");
        }
    }

    /// Removes the partial rows of an upload session.
    pub async fn remove_partial(&self, session: i64) {
        if let Err(e) = self.remove_named(&partial_name(session), false).await {
            tracing::warn!(error = %e, "could not remove partial object data from the database; it is collected later");
        }
    }

    async fn remove_named(&self, name: &str, complete: bool) -> StoreResult<()> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if complete {
            transaction
                .execute("DELETE FROM object_data WHERE name = $1", &[&name])
                .await?;
        }
        transaction
            .execute("DELETE FROM object_data_chunks WHERE name = $1", &[&name])
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The size of the complete data `name`; `None` when there is none.
    pub async fn size(&self, name: &str) -> StoreResult<Option<u64>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT size FROM object_data WHERE name = $1")
            .await?;
        let rows = client.query(&statement, &[&name]).await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => {
                let size: i64 = row.try_get(0)?;
                Ok(Some(u64::try_from(size).unwrap_or(0)))
            }
        }
    }

    /// `len` bytes of the data `name` from `start`, [`ROWS_PER_READ`] rows per query with
    /// [`READS_IN_FLIGHT`] queries at once, so that the database reads the next rows while
    /// the connection sends the last ones. Bytes missing in the range (rows lost or removed
    /// meanwhile) end the stream with an error rather than a short or wrong read.
    pub fn read(
        self: std::sync::Arc<Self>,
        name: String,
        start: u64,
        len: u64,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let end = start.saturating_add(len);
        // No row is longer than ROW: the row holding `start` begins after this.
        let first = start.saturating_sub(ROW as u64 - 1);
        let window = (ROW as u64) * ROWS_PER_READ;
        let windows = (first..end).step_by(usize::try_from(window).unwrap_or(usize::MAX));
        let rows = futures_util::stream::iter(windows)
            .map(move |from| {
                let (data, name) = (self.clone(), name.clone());
                async move { data.rows(&name, from, (from + window).min(end)).await }
            })
            .buffered(READS_IN_FLIGHT)
            .map(|rows| rows.map(|rows| futures_util::stream::iter(rows.into_iter().map(Ok::<_, std::io::Error>))))
            .try_flatten()
            .boxed();
        futures_util::stream::try_unfold((rows, start), move |(mut rows, position)| async move {
            loop {
                if position >= end {
                    return Ok(None);
                }
                let Some((row_start, bytes)) = rows.try_next().await? else {
                    return Err(missing(position));
                };
                let row_end = row_start + bytes.len() as u64;
                if row_start > position {
                    return Err(missing(position));
                }
                if row_end <= position {
                    // A row wholly before the position (rows of chunks sent with other bounds).
                    continue;
                }
                let skip = usize::try_from(position - row_start).unwrap_or(usize::MAX);
                let take = usize::try_from(end.min(row_end) - position).unwrap_or(usize::MAX);
                let bytes = bytes.slice(skip..skip + take);
                let position = position + bytes.len() as u64;
                return Ok(Some((bytes, (rows, position))));
            }
        })
    }

    /// The rows of `name` starting in `[from, to)`, in order.
    async fn rows(&self, name: &str, from: u64, to: u64) -> std::io::Result<Vec<(u64, Bytes)>> {
        let fetched = async {
            let client = self.pool.get().await?;
            let statement = client
                .prepare_cached(
                    "SELECT start, data FROM object_data_chunks
                     WHERE name = $1 AND start >= $2 AND start < $3 ORDER BY start",
                )
                .await?;
            let rows = client.query(&statement, &[&name, &to_i64(from), &to_i64(to)]).await?;
            let mut fetched = Vec::with_capacity(rows.len());
            for row in rows {
                let start: i64 = row.try_get(0)?;
                let data: &[u8] = row.try_get(1)?;
                fetched.push((u64::try_from(start).unwrap_or(0), Bytes::copy_from_slice(data)));
            }
            Ok::<_, StoreError>(fetched)
        };
        fetched.await.map_err(std::io::Error::other)
    }

    /// Removes complete data no object references (older than an hour, so that data about
    /// to be attached to its object is left alone) and rows that belong neither to complete
    /// data nor to an upload session. Returns how many data and partial data went.
    pub async fn collect_garbage(&self) -> StoreResult<usize> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let orphans = transaction
            .query(
                "DELETE FROM object_data d
                 WHERE d.created_at < clock_timestamp() - make_interval(secs => $1)
                   AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.blob = d.name)
                 RETURNING name",
                &[&LEFTOVER_AGE_SECONDS],
            )
            .await?;
        // Rows being written by an open transaction are invisible here, and complete data
        // and sessions are committed with or before their rows: nothing in progress goes.
        let leftovers = transaction
            .query(
                "DELETE FROM object_data_chunks c
                 WHERE NOT EXISTS (SELECT 1 FROM object_data d WHERE d.name = c.name)
                   AND NOT EXISTS (SELECT 1 FROM uploads u WHERE c.name = 'partial-' || u.id)
                 RETURNING name",
                &[],
            )
            .await?;
        let leftovers: std::collections::HashSet<String> =
            leftovers.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        transaction.commit().await?;
        Ok(orphans.len() + leftovers.len())
    }
}

fn missing(position: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the object data in the database has no bytes at offset {position}"),
    )
}

/// Writes `body` as rows from `offset` (at most `max_len` bytes), feeding `hash`. While one
/// row is being inserted, the next is read from the body.
async fn write_rows<S, E>(
    client: &impl GenericClient,
    name: &str,
    offset: u64,
    mut body: S,
    max_len: u64,
    mut hash: Option<RunningHash>,
) -> Result<Written, BlobError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let statement = client.prepare_cached(UPSERT_ROW).await.map_err(StoreError::from)?;
    let mut rows = RowFiller {
        body: &mut body,
        carry: Bytes::new(),
        total: 0,
        max_len,
        ended: false,
    };
    let mut position = offset;
    let mut next = rows.next_row().await?;
    while let Some(row) = next {
        if let Some(hash) = hash.as_mut() {
            hash.update(&row);
        }
        let start = to_i64(position);
        position += row.len() as u64;
        let data: &[u8] = &row;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&name, &start, &data];
        let insert = client.execute(&statement, &params);
        let (inserted, following) = tokio::join!(insert, rows.next_row());
        inserted.map_err(StoreError::from)?;
        next = following?;
    }
    Ok(Written { len: rows.total, hash })
}

/// Cuts a body into rows of [`ROW`] bytes (the last one shorter).
struct RowFiller<'a, S> {
    body: &'a mut S,
    /// Bytes of the last frame that did not fit in the previous row.
    carry: Bytes,
    total: u64,
    max_len: u64,
    /// The body has ended: it must not be polled again.
    ended: bool,
}

impl<S, E> RowFiller<'_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    async fn next_row(&mut self) -> Result<Option<BytesMut>, BlobError> {
        let mut row = BytesMut::new();
        loop {
            if !self.carry.is_empty() {
                let room = ROW - row.len();
                let part = self.carry.split_to(room.min(self.carry.len()));
                row.extend_from_slice(&part);
                if row.len() == ROW {
                    return Ok(Some(row));
                }
            }
            if self.ended {
                return Ok((!row.is_empty()).then_some(row));
            }
            match self.body.next().await {
                None => {
                    self.ended = true;
                    return Ok((!row.is_empty()).then_some(row));
                }
                Some(Err(e)) => return Err(BlobError::Body(e.to_string())),
                Some(Ok(frame)) => {
                    self.total += frame.len() as u64;
                    if self.total > self.max_len {
                        return Err(BlobError::TooLong(self.max_len));
                    }
                    if row.capacity() == 0 {
                        row.reserve(ROW);
                    }
                    self.carry = frame;
                }
            }
        }
    }
}
