//! Several CSS instances on PostgreSQL against one on SQLite: metadata PUT (durable) and GET
//! rates at concurrency 32, requests spread round-robin over the instances, and the fan-out
//! of a 1 MB object to simulated edge nodes whose long polls are spread over the instances
//! (so that most of them are woken through the database's `NOTIFY`).

use crate::fanout::{self, FanoutStats};
use crate::load::{self, LoadStats};
use crate::postgres::Postgres;
use crate::server::{self, Server, TempDir};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CONCURRENCY: usize = 32;

/// One set-up's figures.
pub struct Setup {
    pub name: &'static str,
    pub put: LoadStats,
    pub get: LoadStats,
    /// Server CPU (all instances) per GET, microseconds.
    pub get_cpu_us: f64,
    pub fanout: FanoutStats,
}

/// How much work each phase does.
pub struct Work {
    pub puts: u64,
    pub gets: u64,
    pub nodes: usize,
}

/// Runs the three set-ups: one instance on SQLite, one on PostgreSQL, two on PostgreSQL.
pub async fn run(binary: &Path, work: &Work) -> Result<Vec<Setup>, String> {
    let dir = TempDir::create()?;
    crate::progress("starting a PostgreSQL server");
    let database = Postgres::start(dir.path())?;
    let postgres = vec![
        ("STORAGE_PROVIDER".to_string(), "postgres".to_string()),
        ("POSTGRES_URL".to_string(), database.url()),
    ];
    let mut results = Vec::new();
    for (name, env, instances) in [
        ("1 CSS, SQLite", Vec::new(), 1),
        ("1 CSS, PostgreSQL", postgres.clone(), 1),
        ("2 CSS, PostgreSQL", postgres, 2),
    ] {
        crate::progress(&format!("{name}: starting"));
        let run_dir = TempDir::create()?;
        let mut servers = Vec::new();
        for i in 0..instances {
            // Each instance a persistence folder of its own: data is in the database.
            servers.push(Server::start_with(
                binary,
                &run_dir.path().join(format!("css{i}")),
                &env,
            )?);
        }
        let outcome = measure(name, &mut servers, work).await;
        let logs: String = servers.iter().map(|s| s.log_tail()).collect();
        for server in &mut servers {
            server.stop();
        }
        results.push(outcome.map_err(|e| format!("{name}: {e}{logs}"))?);
        if !env.is_empty() {
            clear(&database).await?;
        }
    }
    Ok(results)
}

/// Empties the database between set-ups, so each one starts from nothing.
async fn clear(database: &Postgres) -> Result<(), String> {
    database
        .client()
        .await?
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await
        .map_err(|e| format!("cannot empty the bench database: {e}"))
}

async fn measure(name: &'static str, servers: &mut [Server], work: &Work) -> Result<Setup, String> {
    let admin = crate::http_client()?;
    let mut instances = Vec::new();
    for server in servers.iter_mut() {
        let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{}", server.port));
        server.wait_healthy(&admin, &base, Duration::from_secs(60)).await?;
        instances.push((base, server.pid()));
    }
    let bases: Arc<Vec<Arc<str>>> = Arc::new(instances.iter().map(|(base, _)| base.clone()).collect());
    let pick = |bases: &Arc<Vec<Arc<str>>>, i: u64| bases[i as usize % bases.len()].clone();

    crate::progress(&format!(
        "{name}: {} metadata PUTs at concurrency {CONCURRENCY}",
        work.puts
    ));
    let put = {
        let (client, bases) = (admin.clone(), bases.clone());
        load::run(CONCURRENCY, work.puts, move |i| {
            let (client, base) = (client.clone(), pick(&bases, i));
            // Addressed to no node of the fan-out, which measures one object on its own.
            let meta = serde_json::json!({"noData": true, "destinationType": "elsewhere"});
            async move { fanout::put_object(&client, &base, "ha", &format!("o{i}"), meta).await }
        })
        .await?
    };
    crate::progress(&format!(
        "{name}: {} metadata GETs at concurrency {CONCURRENCY}",
        work.gets
    ));
    let ticks = server::clock_ticks_per_second();
    let cpu = || -> Option<u64> { instances.iter().map(|(_, pid)| server::cpu_ticks(*pid)).sum() };
    let before = cpu();
    let objects = work.puts;
    let get = {
        let (client, bases) = (admin.clone(), bases.clone());
        load::run(CONCURRENCY, work.gets, move |i| {
            let (client, base) = (client.clone(), pick(&bases, i));
            async move { load::get_meta(&client, &base, "ha", &format!("o{}", i % objects)).await }
        })
        .await?
    };
    let get_cpu_us = match (before, cpu()) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / ticks as f64 * 1e6 / work.gets as f64,
        _ => f64::NAN,
    };
    crate::progress(&format!("{name}: fan-out to {} simulated edge nodes", work.nodes));
    let fanout = fanout::fanout_over(&instances, work.nodes).await?;
    Ok(Setup {
        name,
        put,
        get,
        get_cpu_us,
        fanout,
    })
}
