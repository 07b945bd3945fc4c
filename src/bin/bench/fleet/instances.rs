//! Mode `instances`: three CSS instances sharing one PostgreSQL (and nothing else: object
//! data is in the database, each instance has a persistence folder of its own),
//! a fleet of simulated nodes spread over them in turn (as a load balancer without session
//! affinity would), all long-polling. Checks docs/SCALING.md's model of several instances,
//! which was built from one CSS on SQLite: each instance's memory and the database's while
//! the fleet waits, CPU and store statements per idle poll, a metadata-only and a 1 MiB object
//! published through one instance to every node (the others woken through `NOTIFY`), and the
//! store's size per (object, node) pair.

use super::sim::{self, FLEET_TYPE};
use super::waiting::{Delivery, Stage, DELIVERY_HEADER, IDLE_WINDOW, MIB, STALL, WAIT};
use super::{mb, percent, Outcome};
use crate::postgres::Postgres;
use crate::server::{self, cpu_seconds, Server, TempDir};
use bytes::Bytes;
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// CSS instances on the one database.
const INSTANCES: usize = 3;
/// Descriptors an instance needs beyond one per node it serves (database pool, files).
const INSTANCE_FD_MARGIN: u64 = 256;
/// Pause between the registrations and the idle window: one whole long-poll period, so that
/// every node is in its steady idle cycle, and longer than PostgreSQL's delay in publishing
/// a backend's statistics (up to 10 s once idle), so that the registrations' writes are
/// counted before the window rather than in it.
const WARM_UP: Duration = Duration::from_secs(WAIT + 1);
/// Schema of the bench's own extension, apart from the service's tables.
const BENCH_SCHEMA: &str = "bench";
/// The model's figures (docs/SCALING.md), measured on one CSS on SQLite.
const MODEL_KB_PER_NODE: f64 = 25.0;
const MODEL_CPU_PERCENT_PER_10K: f64 = 8.9;
const MODEL_READS_PER_POLL: f64 = 3.0;
const MODEL_BYTES_PER_PAIR: f64 = 1_388.0;

/// Database counters at one moment.
#[derive(Clone, Copy)]
struct Counters {
    /// Statements executed by anyone but the bench (pg_stat_statements), when it is loaded.
    statements: Option<i64>,
    /// Transactions of the whole database, autovacuum's included (after many registrations
    /// it analyzes the tables during the idle window).
    transactions: i64,
    /// Of `transactions`, those rolled back: statements that failed, which
    /// pg_stat_statements does not list.
    rollbacks: i64,
    /// Rows read and written in the service's tables (not the catalogs, which autovacuum's
    /// statistics write).
    rows_read: i64,
    rows_written: i64,
    size: i64,
    /// Write-ahead log position, in bytes.
    wal: i64,
}

impl Counters {
    async fn read(client: &tokio_postgres::Client, statements: bool) -> Result<Counters, String> {
        // One statement, so that the bench adds one call per reading, which it subtracts.
        let calls = if statements {
            format!("(SELECT coalesce(sum(calls), 0)::bigint FROM {BENCH_SCHEMA}.pg_stat_statements)")
        } else {
            "NULL::bigint".into()
        };
        let row = client
            .query_one(
                &format!(
                    "SELECT {calls}, (xact_commit + xact_rollback)::bigint, \
                     (SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::bigint \
                      FROM pg_stat_user_tables), \
                     (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint \
                      FROM pg_stat_user_tables), \
                     pg_database_size(current_database())::bigint, \
                     pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, xact_rollback \
                     FROM pg_stat_database WHERE datname = current_database()"
                ),
                &[],
            )
            .await
            .map_err(|e| format!("cannot read the database's statistics: {e}"))?;
        Ok(Counters {
            statements: row.get(0),
            transactions: row.get(1),
            rows_read: row.get(2),
            rows_written: row.get(3),
            size: row.get(4),
            wal: row.get(5),
            rollbacks: row.get(6),
        })
    }

    /// What happened from `before` to `self`, without the bench's one reading.
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            statements: self.statements.zip(before.statements).map(|(a, b)| a - b - 1),
            transactions: self.transactions - before.transactions - 1,
            rollbacks: self.rollbacks - before.rollbacks,
            rows_read: self.rows_read - before.rows_read,
            rows_written: self.rows_written - before.rows_written,
            size: self.size - before.size,
            wal: self.wal - before.wal,
        }
    }
}

/// One statement of the idle window: calls, rows, buffers touched, its text.
type Statement = (i64, i64, i64, String);

/// Empties pg_stat_statements, so that what it lists next is what came after.
async fn reset_statements(client: &tokio_postgres::Client) -> Result<(), String> {
    client
        .execute(&format!("SELECT {BENCH_SCHEMA}.pg_stat_statements_reset()"), &[])
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot reset pg_stat_statements: {e}"))
}

/// The most frequent statements since [`reset_statements`], the bench's own left out.
async fn busiest_statements(client: &tokio_postgres::Client) -> Result<Vec<Statement>, String> {
    let rows = client
        .query(
            &format!(
                "SELECT calls, rows, shared_blks_hit + shared_blks_read, \
                 left(regexp_replace(query, '\\s+', ' ', 'g'), 100) \
                 FROM {BENCH_SCHEMA}.pg_stat_statements WHERE query NOT LIKE '%pg_stat%' \
                 ORDER BY calls DESC LIMIT 8"
            ),
            &[],
        )
        .await
        .map_err(|e| format!("cannot read pg_stat_statements: {e}"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

/// A throw-away PostgreSQL with pg_stat_statements loaded when the installation has it.
async fn database(dir: &Path) -> Result<(Postgres, bool), String> {
    let preload = [
        "shared_preload_libraries=pg_stat_statements",
        "pg_stat_statements.track=all",
    ];
    let database = match Postgres::start_with(&dir.join("counted"), &preload) {
        Ok(database) => database,
        Err(e) => {
            crate::progress(&format!("fleet: PostgreSQL without pg_stat_statements ({e})"));
            return Ok((Postgres::start(&dir.join("plain"))?, false));
        }
    };
    let created = database
        .client()
        .await?
        .batch_execute(&format!(
            "CREATE SCHEMA {BENCH_SCHEMA}; CREATE EXTENSION pg_stat_statements SCHEMA {BENCH_SCHEMA};"
        ))
        .await;
    Ok((database, created.is_ok()))
}

/// Mode `instances`.
pub async fn run(binary: &Path, nodes: usize) -> Result<Outcome, String> {
    // Raised before the instances start: they inherit it.
    sim::make_room(nodes)?;
    let dir = TempDir::create()?;
    crate::progress("fleet: starting a PostgreSQL server");
    let (database, counted) = database(dir.path()).await?;
    let stats = database.client().await?;
    let css_dir = TempDir::create()?;
    let env = [
        ("STORAGE_PROVIDER".to_string(), "postgres".to_string()),
        ("POSTGRES_URL".to_string(), database.url()),
    ];
    let mut css = Vec::with_capacity(INSTANCES);
    for i in 0..INSTANCES {
        // A folder of its own for its log and its persistence folder.
        css.push(Server::start_with(
            binary,
            &css_dir.path().join(format!("css{i}")),
            &env,
        )?);
    }
    let needed = (nodes.div_ceil(INSTANCES)) as u64 + INSTANCE_FD_MARGIN;
    let limits: Vec<Option<u64>> = css.iter().map(|s| server::open_file_limit(s.pid())).collect();
    if let Some(low) = limits.iter().flatten().find(|&&l| l < needed) {
        return Err(format!(
            "a CSS instance may open {low} files, fewer than the {needed} its nodes need"
        ));
    }
    let mut stage = Stage::with(css_dir, css, nodes).await?;

    tokio::time::sleep(WARM_UP).await;
    let pids = stage.pids();
    let rss_before: Vec<u64> = pids.iter().map(|&p| server::rss_kb(p).unwrap_or(0)).collect();
    crate::progress(&format!(
        "fleet: {nodes} nodes waiting; CPU and statements over {IDLE_WINDOW:?}"
    ));
    if counted {
        reset_statements(&stats).await?;
    }
    let idle_start = Counters::read(&stats, counted).await?;
    let (css_cpu, db_cpu, polls) = (stage.cpu_ticks(), database.cpu_ticks(), stage.fleet.polls());
    let started = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let window = started.elapsed().as_secs_f64();
    let idle_polls = stage.fleet.polls() - polls;
    let css_cpu = cpu_seconds(css_cpu, stage.cpu_ticks());
    let db_cpu = cpu_seconds(db_cpu, database.cpu_ticks());
    let idle = Counters::read(&stats, counted).await?.since(&idle_start);
    let busiest = if counted {
        busiest_statements(&stats).await?
    } else {
        Vec::new()
    };
    let rss: Vec<u64> = pids
        .iter()
        .zip(&rss_before)
        .map(|(&p, &before)| server::rss_kb(p).unwrap_or(0).max(before))
        .collect();
    let (db_rss, db_pss) = (database.rss_kb(), database.pss_kb());
    let bench_rss = server::rss_kb(std::process::id()).unwrap_or(0);

    let before = Counters::read(&stats, counted).await?;
    let db_cpu_before = database.cpu_ticks();
    crate::progress("fleet: a metadata-only object to every node");
    let meta_only = stage.deliver("meta-only", Bytes::new(), STALL).await?;
    let meta_db_cpu = cpu_seconds(db_cpu_before, database.cpu_ticks());
    crate::progress("fleet: a 1 MiB object to every node");
    let db_cpu_before = database.cpu_ticks();
    let data = stage.deliver("one-mib", sim::content(MIB), STALL).await?;
    let data_db_cpu = cpu_seconds(db_cpu_before, database.cpu_ticks());
    let delivered = Counters::read(&stats, counted).await?.since(&before);
    let pairs = 2.0 * nodes as f64;

    let figures = Figures {
        nodes,
        registration: stage.registration,
        limits,
        rss,
        db_rss,
        db_pss,
        bench_rss,
        window,
        idle_polls,
        css_cpu,
        db_cpu,
        idle,
        busiest,
        meta_only,
        meta_db_cpu,
        data,
        data_db_cpu,
        bytes_per_pair: delivered.size as f64 / pairs,
        wal_per_pair: delivered.wal as f64 / pairs,
    };
    let failed = figures.meta_only.delivered != nodes || figures.data.delivered != nodes;
    Ok(Outcome {
        table: figures.table(),
        json: figures.json(),
        failed,
    })
}

/// Everything the mode measured.
struct Figures {
    nodes: usize,
    registration: Duration,
    limits: Vec<Option<u64>>,
    /// Each instance's RSS while the fleet waits, kB.
    rss: Vec<u64>,
    db_rss: u64,
    db_pss: Option<u64>,
    bench_rss: u64,
    /// The idle window, seconds.
    window: f64,
    idle_polls: u64,
    /// CPU seconds over the idle window: all instances, the database.
    css_cpu: f64,
    db_cpu: f64,
    idle: Counters,
    busiest: Vec<Statement>,
    meta_only: Delivery,
    meta_db_cpu: f64,
    data: Delivery,
    data_db_cpu: f64,
    bytes_per_pair: f64,
    wal_per_pair: f64,
}

impl Figures {
    fn per_poll(&self, count: i64) -> f64 {
        count as f64 / self.idle_polls.max(1) as f64
    }

    fn css_rss_kb(&self) -> u64 {
        self.rss.iter().sum()
    }

    fn table(&self) -> String {
        let nodes = self.nodes;
        let polls = self.idle_polls.max(1) as f64;
        let mut t = format!(
            "fleet: instances  ({INSTANCES} CSS on one PostgreSQL, {nodes} simulated nodes long-polling with \
             wait={WAIT} round-robin over them, {} CPUs shared by all)\n\
             registration of all nodes: {:.2} s; open-file limit of each instance: {}\n\n\
             while the fleet waits:\n",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            self.registration.as_secs_f64(),
            self.limits
                .iter()
                .map(|l| l.map_or("unlimited".to_string(), |l| l.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let each: Vec<String> = self.rss.iter().map(|&kb| format!("{:.1}", mb(kb))).collect();
        let _ = writeln!(
            t,
            "  CSS RSS: {} MB = {:.1} MB ({:.1} kB per node); model {:.0} MB ({MODEL_KB_PER_NODE} kB per node)",
            each.join(" + "),
            mb(self.css_rss_kb()),
            self.css_rss_kb() as f64 * 1.024 / nodes as f64,
            MODEL_KB_PER_NODE * nodes as f64 / 1e3,
        );
        let _ = writeln!(
            t,
            "  PostgreSQL: RSS {:.1} MB over its processes (PSS {}); the bench's {nodes} clients: {:.1} MB",
            mb(self.db_rss),
            self.db_pss.map_or("unknown".into(), |kb| format!("{:.1} MB", mb(kb))),
            mb(self.bench_rss),
        );
        let _ = writeln!(
            t,
            "  over {:.0} s: {} polls answered ({:.0}/s); CPU of all CSS {:.2} % of one core ({:.0} us per poll), \
             PostgreSQL {:.2} % ({:.0} us per poll); model {:.2} % for the CSS",
            self.window,
            self.idle_polls,
            polls / self.window,
            percent(self.css_cpu, self.window),
            self.css_cpu * 1e6 / polls,
            percent(self.db_cpu, self.window),
            self.db_cpu * 1e6 / polls,
            MODEL_CPU_PERCENT_PER_10K * nodes as f64 / 10_000.0,
        );
        let _ = writeln!(
            t,
            "  store per idle poll: {} statements, {:.2} transactions ({:.2} rolled back; database-wide, autovacuum included), {:.1} rows read, \
             {:.2} rows written in the service's tables \
             (model: {MODEL_READS_PER_POLL} indexed reads)",
            self.idle
                .statements
                .map_or("unknown (no pg_stat_statements)".into(), |s| format!(
                    "{:.2}",
                    self.per_poll(s)
                )),
            self.per_poll(self.idle.transactions),
            self.per_poll(self.idle.rollbacks),
            self.per_poll(self.idle.rows_read),
            self.per_poll(self.idle.rows_written),
        );
        if !self.busiest.is_empty() {
            t.push_str("  busiest statements: calls per poll, rows per call, buffers per call, statement\n");
            for (calls, rows, buffers, query) in &self.busiest {
                let per_call = |n: i64| n as f64 / (*calls).max(1) as f64;
                let _ = writeln!(
                    t,
                    "  {:>6.3} {:>6.1} {:>6.1}  {query}",
                    self.per_poll(*calls),
                    per_call(*rows),
                    per_call(*buffers)
                );
            }
            t.push('\n');
        }
        t.push_str(DELIVERY_HEADER);
        t.push_str(&self.meta_only.row("metadata-only"));
        t.push_str(&self.data.row("1 MiB"));
        let _ = writeln!(
            t,
            "\nPUT ms: publishing through the first instance until answered; then from the answer: polled = \
             the last node's poll brought it, p50/p99/all = nodes' `received` answered (every byte of the \
             1 MiB object compared); CSS peak = sum of each instance's peak, CPU = all instances; \
             PostgreSQL CPU {:.2} s (metadata-only) and {:.2} s (1 MiB)\n\
             store per (object, node) pair after both deliveries: {:.0} bytes of database, {:.0} bytes of \
             write-ahead log written (model, SQLite: {MODEL_BYTES_PER_PAIR} bytes)",
            self.meta_db_cpu, self.data_db_cpu, self.bytes_per_pair, self.wal_per_pair,
        );
        t
    }

    fn json(&self) -> serde_json::Value {
        let polls = self.idle_polls.max(1) as f64;
        json!({
            "mode": "instances",
            "instances": INSTANCES,
            "nodes": self.nodes,
            "object_type": FLEET_TYPE,
            "registration_s": self.registration.as_secs_f64(),
            "open_file_limits": self.limits,
            "waiting_rss_mb_each": self.rss.iter().map(|&kb| mb(kb)).collect::<Vec<_>>(),
            "waiting_rss_mb": mb(self.css_rss_kb()),
            "postgres_rss_mb": mb(self.db_rss),
            "postgres_pss_mb": self.db_pss.map(mb),
            "bench_rss_mb": mb(self.bench_rss),
            "idle_window_s": self.window,
            "idle_polls": self.idle_polls,
            "waiting_cpu_percent": percent(self.css_cpu, self.window),
            "postgres_cpu_percent": percent(self.db_cpu, self.window),
            "css_cpu_us_per_poll": self.css_cpu * 1e6 / polls,
            "postgres_cpu_us_per_poll": self.db_cpu * 1e6 / polls,
            "statements_per_poll": self.idle.statements.map(|s| self.per_poll(s)),
            "transactions_per_poll": self.per_poll(self.idle.transactions),
            "rollbacks_per_poll": self.per_poll(self.idle.rollbacks),
            "rows_read_per_poll": self.per_poll(self.idle.rows_read),
            "rows_written_per_poll": self.per_poll(self.idle.rows_written),
            "busiest_statements": self.busiest.iter().map(|(calls, rows, buffers, query)| json!({
                "calls_per_poll": self.per_poll(*calls),
                "rows": rows,
                "buffers": buffers,
                "query": query,
            })).collect::<Vec<_>>(),
            "metadata_only": self.meta_only.json(),
            "metadata_only_postgres_cpu_s": self.meta_db_cpu,
            "one_mib": self.data.json(),
            "one_mib_postgres_cpu_s": self.data_db_cpu,
            "store_bytes_per_pair": self.bytes_per_pair,
            "wal_bytes_per_pair": self.wal_per_pair,
        })
    }
}
