//! Threads that own the SQLite connections. One writer thread applies writes in batches: every
//! write waiting when a batch starts shares one transaction and one fsync (group commit), each
//! inside its own savepoint so that one failing write does not undo the others. A fixed set of
//! reader threads, each with its own read-only connection, serves reads (WAL lets them proceed
//! while the writer commits). A fixed set keeps memory flat however many requests wait: each
//! connection has its own page cache. Nothing here blocks the async runtime.

use crate::store::space::is_sqlite_full;
use crate::store::{StoreError, StoreResult};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;
/// Reader threads (and read connections).
const READERS: usize = 4;
/// Page cache of each connection, in KiB.
const CACHE_KIB: u32 = 2048;

/// What a batch's commit ended with, handed to each of its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Done,
    /// The database file could not grow (`SQLITE_FULL`): the batch was rolled back.
    DiskFull,
    Failed,
}

type Job = Box<dyn FnOnce(&Connection) -> Box<dyn FnOnce(Commit) + Send> + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Handle to the writer thread and the read connections of one database file.
pub struct SqlitePool {
    path: std::path::PathBuf,
    durable: bool,
    /// Lives as long as the pool; identifies it to the per-thread connections.
    alive: Arc<()>,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Option<mpsc::Sender<ReadJob>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl SqlitePool {
    /// Opens (creating if needed) the database, brings its schema up to date with `setup`
    /// and starts the writer.
    /// `durable` selects `synchronous=FULL`; otherwise the database may lose recent writes
    /// on power loss (used by the unpersisted store).
    pub fn open(path: &Path, setup: fn(&Connection) -> StoreResult<()>, durable: bool) -> StoreResult<Self> {
        let writer_conn = open_connection(path, durable, false)?;
        setup(&writer_conn)?;
        let spawn_error = |e: std::io::Error| StoreError::Corrupt(format!("cannot start a database thread: {e}"));
        let (sender, receiver) = mpsc::channel::<Job>();
        let mut threads = vec![std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, receiver))
            .map_err(spawn_error)?];
        let (read_sender, read_receiver) = mpsc::channel::<ReadJob>();
        let read_receiver = Arc::new(Mutex::new(read_receiver));
        for index in 0..READERS {
            let conn = open_connection(path, durable, true)?;
            let jobs = Arc::clone(&read_receiver);
            let thread = std::thread::Builder::new()
                .name(format!("sqlite-reader-{index}"))
                .spawn(move || reader_loop(conn, jobs))
                .map_err(spawn_error)?;
            threads.push(thread);
        }
        Ok(Self {
            path: path.to_path_buf(),
            durable,
            alive: Arc::new(()),
            writer: Mutex::new(Some(sender)),
            readers: Mutex::new(Some(read_sender)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `work` inside the next write batch and returns its result once the batch is
    /// committed (durable, when the pool is).
    pub async fn write<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        self.write_then(work, || {}).await
    }

    /// Like [`Self::write`], and runs `settled` on the writer thread once the batch is
    /// committed or rolled back, before the caller hears of it. It runs even when the caller
    /// has stopped waiting, so what it keeps in step with the database cannot miss a write.
    pub async fn write_then<R, F>(&self, work: F, settled: impl FnOnce() + Send + 'static) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<R>>();
        let job: Job = Box::new(move |conn| {
            let outcome = run_in_savepoint(conn, work);
            Box::new(move |commit| {
                settled();
                let result = match (outcome, commit) {
                    (Ok(value), Commit::Done) => Ok(value),
                    (Ok(_), Commit::DiskFull) => Err(StoreError::Full),
                    (Ok(_), Commit::Failed) => {
                        Err(StoreError::Corrupt("the transaction could not be committed".into()))
                    }
                    (Err(e), _) => Err(e),
                };
                let _ = reply.send(result);
            })
        });
        {
            let guard = self.writer.lock();
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on one of the reader threads.
    pub async fn read<R, F>(&self, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<R>>();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(work(conn));
        });
        {
            let guard = self.readers.lock();
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a short lookup on the calling thread with that thread's own read connection.
    /// A point lookup by primary key takes microseconds and never waits for the writer in
    /// WAL mode, so handing it to a reader thread would cost more than it saves.
    pub fn read_here<R>(&self, work: impl FnOnce(&Connection) -> StoreResult<R>) -> StoreResult<R> {
        // Keyed by the pool's lifetime, not its path: a store reopened at the same path (a
        // restart in the same process) must not read through a connection to the old file.
        thread_local! {
            static CONNECTIONS: std::cell::RefCell<Vec<(std::sync::Weak<()>, Connection)>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        CONNECTIONS.with(|cell| {
            let mut connections = cell.borrow_mut();
            connections.retain(|(pool, _)| pool.strong_count() > 0);
            let index = match connections
                .iter()
                .position(|(pool, _)| pool.ptr_eq(&Arc::downgrade(&self.alive)))
            {
                Some(index) => index,
                None => {
                    connections.push((
                        Arc::downgrade(&self.alive),
                        open_connection(&self.path, self.durable, true)?,
                    ));
                    connections.len() - 1
                }
            };
            work(&connections[index].1)
        })
    }

    /// Stops the threads after the work already queued.
    pub fn close(&self) {
        self.writer.lock().take();
        self.readers.lock().take();
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for SqlitePool {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_connection(path: &Path, durable: bool, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let synchronous = if durable { "FULL" } else { "OFF" };
    let journal = if read_only { "" } else { "PRAGMA journal_mode=WAL;" };
    conn.execute_batch(&format!(
        "{journal} PRAGMA synchronous={synchronous}; PRAGMA cache_size=-{CACHE_KIB};"
    ))?;
    Ok(conn)
}

fn run_in_savepoint<R>(conn: &Connection, work: impl FnOnce(&Connection) -> StoreResult<R>) -> StoreResult<R> {
    conn.execute_batch("SAVEPOINT job")?;
    match work(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

fn reader_loop(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = jobs.lock().recv();
        match next {
            Ok(job) => job(&conn),
            Err(_) => return,
        }
    }
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        let replies: Vec<_> = batch.into_iter().map(|job| job(&conn)).collect();
        let committed = began.and_then(|()| conn.execute_batch("COMMIT"));
        let commit = match committed {
            Ok(()) => Commit::Done,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(
                    writes = replies.len(),
                    error = %e,
                    "database commit failed; the batch was rolled back"
                );
                if is_sqlite_full(&e) {
                    Commit::DiskFull
                } else {
                    Commit::Failed
                }
            }
        };
        replies.into_iter().for_each(|reply| reply(commit));
    }
}
