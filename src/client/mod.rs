//! The command-line client: `edge-sync-service object ...` and `edge-sync-service nodes`,
//! for a CSS or an ESS of this implementation or of the original (it speaks only the
//! public REST API). A subcommand of the service's binary rather than a second program, so
//! that the container image and every release carry it without another artifact.
//!
//! Commands and flags follow `hzn mms object` where they fit (`-t`, `-i`, `-m`, `-f`); the
//! service and credentials come from flags or the environment (see [`connection`]). Each
//! failure is one line on stderr and an exit code: 1 refused or not found, 2 wrong usage
//! or settings, 3 service unreachable.

pub mod connection;
mod download;
mod inspect;
mod progress;
mod publish;

use connection::{ClientResult, Connection, ConnectionArgs};
use std::path::PathBuf;

/// Examples shown by `edge-sync-service object --help`.
const OBJECT_EXAMPLES: &str = "\
Examples:
  export EDGE_SYNC_URL=https://css.example.com:8443 HZN_ORG_ID=myorg HZN_EXCHANGE_USER_AUTH=myorg/admin:secret
  edge-sync-service object publish -t model -i m1 --dest-type edge -f model.bin
  edge-sync-service object publish -m meta.json -f model.bin      # run again to continue after an interruption
  tar c config | edge-sync-service object publish -t config -i c1 -f -
  edge-sync-service object list -t model
  edge-sync-service object status -t model -i m1
  edge-sync-service object watch -t model -i m1 --until consumed --timeout 900
  edge-sync-service object download -t model -i m1 -f /tmp/m1.bin
  edge-sync-service object delete -t model -i m1";

/// What `object` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ObjectCommand {
    /// Create or replace an object: its metadata, and its data from a file or stdin
    Publish(publish::PublishArgs),
    /// List the objects of the organization (a table, or --json)
    List(inspect::ListArgs),
    /// Download an object's data into a file (continues an interrupted download)
    #[command(visible_alias = "get")]
    Download(download::DownloadArgs),
    /// Delete an object
    Delete(inspect::ObjectName),
    /// An object's status and how many destinations are in each delivery state
    Status(inspect::StatusArgs),
    /// Follow an object's delivery until every destination reached a state
    Watch(inspect::WatchArgs),
    /// The delivery state of an object at each destination
    Destinations {
        #[command(flatten)]
        object: inspect::ObjectName,
        #[command(flatten)]
        table: inspect::TableArgs,
    },
}

/// The client's commands, as subcommands of the service's command line.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Publish, list, download, delete and follow objects
    #[command(after_help = OBJECT_EXAMPLES)]
    Object {
        #[command(subcommand)]
        command: ObjectCommand,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// The edge nodes registered with a CSS
    Nodes {
        #[command(flatten)]
        table: inspect::TableArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

/// Runs a client command; returns the process's exit code.
pub fn run(command: ClientCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return connection::USAGE;
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}

async fn execute(command: ClientCommand) -> ClientResult<()> {
    match command {
        ClientCommand::Object { command, connection } => {
            // What the command line alone can tell is told before connecting.
            let meta = match &command {
                ObjectCommand::Publish(args) => Some(publish::metadata(args)?),
                _ => None,
            };
            let connection = Connection::open(&connection).await?;
            match command {
                ObjectCommand::Publish(args) => publish::run(&connection, &args, meta.unwrap_or_default()).await,
                ObjectCommand::List(args) => inspect::list(&connection, &args).await,
                ObjectCommand::Download(args) => download::run(&connection, &args).await,
                ObjectCommand::Delete(object) => inspect::delete(&connection, &object).await,
                ObjectCommand::Status(args) => inspect::status(&connection, &args).await,
                ObjectCommand::Watch(args) => inspect::watch(&connection, &args).await,
                ObjectCommand::Destinations { object, table } => {
                    inspect::destinations(&connection, &object, &table).await
                }
            }
        }
        ClientCommand::Nodes { table, connection } => {
            inspect::nodes(&Connection::open(&connection).await?, &table).await
        }
    }
}

/// Where the client keeps what it must remember between runs (how far a publish got):
/// `$XDG_STATE_HOME/edge-sync-service`, else `~/.local/state/edge-sync-service`.
fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("edge-sync-service")
}
