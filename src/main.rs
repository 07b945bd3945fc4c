//! `edge-sync-service -c sync.conf`: loads the configuration and runs the node until
//! SIGINT or SIGTERM. With `--healthcheck` it instead probes the node that configuration
//! describes and exits 0 (healthy) or 1; with `--copy-data-into-database` it copies a CSS's
//! object data files into its PostgreSQL database (see `data_copy`).

use clap::Parser;
use edge_sync_service::config::Config;
use edge_sync_service::{logging, run, signals, RunOutcome};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// See Cargo.toml: musl's allocator is the slowest part of the static build.
#[cfg(all(target_env = "musl", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cloud-edge object synchronization service (CSS or ESS, chosen by NodeType).
#[derive(Parser, Debug)]
#[command(name = "edge-sync-service", version, about)]
struct Args {
    /// Configuration file to read (keys as in the original's sync.conf; environment wins).
    #[arg(short = 'c', value_name = "FILE", default_value = "/etc/edge-sync-service/sync.conf")]
    config: PathBuf,
    /// Check the health of the node this configuration describes (GET /api/v1/health on
    /// its listener) and exit 0 if it is healthy, 1 if not: for container health checks.
    #[arg(long)]
    healthcheck: bool,
    /// CSS on PostgreSQL: copy the object data files of the persistence folder (kept there
    /// with `ObjectDataStorage files`) into the database, verifying each one's size and
    /// SHA-256, then exit 0 when every object's data is in the database. Safe to run again:
    /// what is there already is verified, not copied.
    #[arg(long, conflicts_with = "healthcheck")]
    copy_data_into_database: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Instead of running the service: a command-line client of one, or a completion script.
// Parsed once per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Client(edge_sync_service::client::ClientCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion { shell: clap_complete::Shell },
}

fn main() {
    let args = Args::parse();
    match args.command {
        Some(Command::Client(command)) => std::process::exit(edge_sync_service::client::run(command)),
        Some(Command::Completion { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Args::command(), "edge-sync-service", &mut std::io::stdout());
            return;
        }
        None => {}
    }
    let env = |name: &str| std::env::var(name).ok();
    let config = match Config::load(&args.config, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            // Container engines read any status but 0 and 1 of a health check as reserved.
            std::process::exit(if args.healthcheck { 1 } else { e.exit_code() });
        }
    };
    if args.healthcheck {
        std::process::exit(healthcheck(&config));
    }
    if args.copy_data_into_database {
        std::process::exit(copy_data_into_database(&config));
    }
    let logging = match logging::init(&config) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(logging::LoggingError::EXIT_CODE);
        }
    };
    if config.config_file_missing {
        tracing::warn!(file = %args.config.display(), "configuration file not found; using environment and defaults");
    }
    for key in &config.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    for ignored in &config.ignored_keys {
        tracing::warn!(
            key = ignored.key,
            set_by = %ignored.origin,
            reason = ignored.reason,
            "configuration key has no effect in this implementation; ignored"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Failed to start the async runtime. Error: {e}");
            logging.finish();
            std::process::exit(98);
        }
    };
    let stop = CancellationToken::new();
    if let Err(e) = signals::watch(stop.clone()) {
        eprintln!("Failed to watch the stop signals. Error: {e}");
        logging.finish();
        std::process::exit(98);
    }
    let code = runtime.block_on(async move {
        loop {
            // A restart asked through the API ends one run; a stop signal ends them all.
            match run(config.clone(), stop.child_token()).await {
                Ok(RunOutcome::RestartRequested) => tracing::info!("restarting"),
                Ok(RunOutcome::Stopped) => return 0,
                Err(e) => {
                    tracing::error!(error = %e, "start-up failed");
                    if matches!(e, edge_sync_service::StartError::UnknownAuthenticator(_)) {
                        println!("{e}");
                    } else {
                        eprintln!("{e}");
                    }
                    return e.exit_code();
                }
            }
        }
    });
    // `exit` runs no destructors: write out the lines the file writers still hold first.
    logging.finish();
    std::process::exit(code);
}

/// Copies the data files into the database, telling of each on stderr and summing up on
/// stdout: 0 when every object's data is in the database, 1 when some is missing or
/// differs, 2 when the copy could not run.
fn copy_data_into_database(config: &Config) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Failed to start the async runtime. Error: {e}");
            return 2;
        }
    };
    let progress = |line: &str| eprintln!("{line}");
    match runtime.block_on(edge_sync_service::data_copy::copy_into_database(config, &progress)) {
        Ok(summary) => {
            print!("{summary}");
            if summary.complete() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// Runs the probe on a single-threaded runtime (the node's own runtime is not needed) and
/// prints its verdict: stdout when healthy, stderr when not, as health-check logs keep both.
fn healthcheck(config: &Config) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Failed to start the async runtime. Error: {e}");
            return 1;
        }
    };
    match runtime.block_on(edge_sync_service::healthcheck::probe(config)) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            1
        }
    }
}
