//! edge-sync-service: the cloud (CSS) and edge (ESS) roles of a cloud-edge object
//! synchronization service, compatible with Open Horizon's sync service (MMS).
//!
//! Layers, in the order data flows through them:
//! - [`config`]: `sync.conf` and environment, with the original's key names and defaults.
//! - [`model`]: metadata, statuses, names and their validation; the wire types.
//! - [`store`]: persistent state (SQLite, or PostgreSQL for a CSS) and object data files.
//! - [`auth`]: identities from credentials, and access decisions.
//! - [`api`]: the REST API; the only layer that speaks HTTP to applications.
//! - [`engine`]: object operations shared by both roles.
//! - [`cluster`]: several CSS instances on one PostgreSQL store: leader election, wake-ups.
//! - [`server`]: listeners and graceful shutdown.
//! - [`signals`]: the stop signals, and the deadline of a stop.
//! - [`metrics`]: the Prometheus metrics served at `/metrics`.
//! - [`healthcheck`]: the `--healthcheck` probe of a running node, for container images.
//! - [`logging`]: log and trace destinations, levels, files and rotation (`LogTraceDestination`).
//! - [`zero_copy`]: downloads over plain TCP sent from the page cache by `sendfile(2)`.
//! - [`tls`]: the HTTPS server certificate (configured or generated) and TLS settings;
//!   client-side trust for the ESS → CSS and MQTT broker connections.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod backoff;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod data_copy;
pub mod delta;
pub mod engine;
pub mod healthcheck;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod random;
pub mod server;
pub mod signals;
pub mod store;
pub mod sync;
pub mod tls;
pub mod transport;
pub mod ui;
pub mod uploads;
pub mod zero_copy;

#[cfg(test)]
mod proptest_cases;

use config::{Config, ObjectDataStorage, StorageKind};
use engine::{Node, NodeSettings};
use model::Role;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::blobs::BlobStore;
use store::postgres::PostgresStore;
use store::sqlite::SqliteStore;
use store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a run of the node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Stopped,
    /// The shutdown route asked for a restart.
    RestartRequested,
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare the persistence folder {path}: {source}")]
    Persistence { path: String, source: std::io::Error },
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot start the node: {0}")]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Listen(#[from] server::ListenError),
    #[error("Unknown Authentication handler identifier {0}. Valid values are dummy, preset.")]
    UnknownAuthenticator(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot start the synchronization with the CSS: {0}")]
    Sync(#[from] transport::SyncStartError),
}

impl StartError {
    /// The process exit status for this failure: 99 for an unknown authenticator, as the
    /// original; 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::UnknownAuthenticator(_) => 99,
            _ => 1,
        }
    }
}

pub use signals::STOP_GRACE;

/// Opens the store, binds the listeners and serves until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<RunOutcome, StartError> {
    let client_tls = ClientTls::prepare(&config)?;
    tracing::debug!(
        css = client_tls.css.is_some(),
        mqtt = client_tls.mqtt.is_some(),
        "client TLS configurations prepared"
    );
    // The MQTT transport will connect with `client_tls.mqtt`.
    let authenticator = authenticator(&config)?;
    let sync_root = config.persistence_root_path.join("sync");
    let storage = open_storage(&config, &sync_root, client_tls.postgres.clone()).await?;
    let store = storage.store.clone();
    let mut node_settings = settings(&config);
    node_settings.store_created = storage.created;
    if let Some(shared) = &storage.shared {
        node_settings.instance_slot = Some(shared.next_instance_slot().await?);
    }
    let node = Node::start(node_settings, store.clone(), storage.blobs, authenticator).await?;
    node.set_webhook_poster(std::sync::Arc::new(transport::http::webhooks::HttpWebhooks::default()));
    let listeners = server::bind(&config).await?;
    for listener in &listeners {
        tracing::info!(role = ?node.role(), address = %listener.describe(), "edge-sync-service listening");
    }
    let control = api::NodeControl::new(shutdown.clone());
    let tracker = TaskTracker::new();
    if let Some(shared) = storage.shared {
        let timeout = std::time::Duration::from_secs(u64::try_from(config.leadership_timeout).unwrap_or(45).max(1));
        cluster::join(&node, shared, timeout, &tracker, &shutdown);
    }
    engine::timers::spawn_timers(node.clone(), timer_settings(&config), &tracker, &shutdown);
    let transport_tls = transport::TransportTls {
        css: client_tls.css.clone(),
        mqtt: client_tls.mqtt.clone(),
    };
    if !config.is_css() && (config.communication_protocol.uses_http() || config.communication_protocol.uses_mqtt()) {
        transport::start_ess(node.clone(), &config, &transport_tls, &tracker, shutdown.clone())?;
    }
    if config.is_css() && config.communication_protocol.uses_mqtt() {
        // Instances sharing a store leave the broker to their leader.
        let start = if config.storage_provider == StorageKind::Postgres {
            transport::mqtt::css::spawn_while_leading
        } else {
            transport::mqtt::css::spawn
        };
        start(
            node.clone(),
            &config,
            transport_tls.mqtt.clone(),
            &tracker,
            shutdown.clone(),
        );
    }
    let uploads = start_uploads(&node, &config, &tracker, &shutdown);
    let unregistering = node.clone();
    let state = api::AppState {
        node,
        uploads,
        control: control.clone(),
        metrics: Arc::new(metrics::Metrics::new()),
        metrics_access: config.metrics_access,
    };
    // The nodes' routes are the HTTP transport's, above api: handed to its router here.
    let spi = api::Spi {
        handler: axum::routing::any(transport::http::css::dispatch),
        recognise: transport::http::css::recognise,
    };
    // The status page is above the API: it reads through the same engine and authentication.
    let router = api::router(state.clone(), spi).merge(ui::router(state));
    server::serve(listeners, router, &shutdown, &tracker);
    tracker.close();
    shutdown.cancelled().await;
    unregistering.stop_holding_polls();
    // Requests and transfers still running get a grace period, not forever: an upload whose
    // client went silent would otherwise hold the stop indefinitely.
    if tokio::time::timeout(STOP_GRACE, tracker.wait()).await.is_err() {
        tracing::warn!(grace = ?STOP_GRACE, unfinished = tracker.len(), "stopping with requests or transfers still running");
    }
    // A restart runs the next node in this runtime: the old node's calls must not linger.
    unregistering.stop_webhooks();
    store.close();
    if unregistering.was_unregistered() {
        forget_local_state(&sync_root)?;
    }
    tracing::info!("edge-sync-service stopped");
    Ok(if control.restart_requested() {
        RunOutcome::RestartRequested
    } else {
        RunOutcome::Stopped
    })
}

/// The upload sources of an ESS (`UploadSources`), acting until `shutdown`.
fn start_uploads(
    node: &Node,
    config: &Config,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Option<Arc<uploads::Uploads>> {
    // The configuration refuses sources on a CSS.
    (!config.upload_sources.is_empty()).then(|| {
        uploads::start(
            node,
            config.upload_sources.clone(),
            &config.persistence_root_path,
            tracker,
            shutdown.clone(),
        )
    })
}

/// The client-side TLS configurations (spec security.md §8.3), built at start-up so that a
/// misconfigured CA, certificate or key stops the node with an error naming the key.
struct ClientTls {
    /// ESS → CSS over HTTPS.
    css: Option<Arc<rustls::ClientConfig>>,
    /// Node → MQTT broker over TLS.
    mqtt: Option<Arc<rustls::ClientConfig>>,
    /// CSS → PostgreSQL database over TLS.
    postgres: Option<Arc<rustls::ClientConfig>>,
}

impl ClientTls {
    fn prepare(config: &Config) -> Result<ClientTls, tls::TlsError> {
        Ok(ClientTls {
            css: tls::css_client_config(config)?,
            mqtt: tls::mqtt_client_config(config)?,
            postgres: tls::postgres_client_config(config)?,
        })
    }
}

fn authenticator(config: &Config) -> Result<Box<dyn auth::Authenticator>, StartError> {
    let sync_root = config.persistence_root_path.join("sync");
    match config.authentication_handler.to_ascii_lowercase().as_str() {
        "" | "dummy" => {
            tracing::warn!(
                "AuthenticationHandler is 'dummy': credentials are NOT checked and anyone who can reach this port can act as any user; use it for development only"
            );
            let outgoing = auth::OutgoingIdentity {
                css_base_url: config.css_base_url(),
                org: config.org_id.clone(),
                dest_type: config.destination_type.clone(),
                dest_id: config.destination_id.clone(),
            };
            let users = sync_root.join("dummy-auth.json");
            Ok(Box::new(
                auth::dummy::DummyAuthenticator::from_file(&users).with_outgoing(outgoing),
            ))
        }
        "preset" => {
            let file = sync_root.join("preset-auth.json");
            let preset = auth::preset::PresetAuthenticator::from_file(&file, config.css_base_url());
            Ok(Box::new(auth::cache::CachedAuthenticator::new(Box::new(preset))))
        }
        _ => Err(StartError::UnknownAuthenticator(config.authentication_handler.clone())),
    }
}

/// After an unregistration the ESS starts from nothing: its database and data files go.
fn forget_local_state(sync_root: &std::path::Path) -> Result<(), StartError> {
    for folder in ["db", "objects", "volatile", "uploads"] {
        let path = sync_root.join(folder);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StartError::Persistence {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// The opened store and data files.
struct Storage {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    /// The database was created now (a first start, or a persistence folder that was emptied).
    created: bool,
    /// The store other CSS instances may share.
    shared: Option<Arc<PostgresStore>>,
}

/// Opens the store and the object data. On PostgreSQL the data is in the database unless
/// `ObjectDataStorage files` keeps it under the persistence root, a folder that CSS instances
/// sharing the database must then share too.
async fn open_storage(
    config: &Config,
    sync_root: &Path,
    postgres_tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Storage, StartError> {
    let (store, shared, blob_root, created): (Arc<dyn Store>, _, PathBuf, bool) = match config.storage_provider {
        StorageKind::Postgres => {
            let budget = std::time::Duration::from_secs(u64::try_from(config.database_connect_timeout).unwrap_or(0));
            let (store, created) = PostgresStore::connect(config.postgres_url.expose(), postgres_tls, budget).await?;
            let store = Arc::new(store);
            if config.object_data_storage == ObjectDataStorage::Database {
                warn_of_unused_data_files(&sync_root.join("objects").join("data"));
                let blobs = BlobStore::in_database(store.data()?);
                return Ok(Storage {
                    store: store.clone(),
                    blobs,
                    created,
                    shared: Some(store),
                });
            }
            (store.clone(), Some(store), sync_root.join("objects"), created)
        }
        StorageKind::Sqlite | StorageKind::InMemory => {
            let (store, blob_root, created) = open_sqlite(config, sync_root)?;
            (store, None, blob_root, created)
        }
    };
    prepare_folder(&blob_root)?;
    let blobs = BlobStore::open(&blob_root).map_err(|source| StartError::Persistence {
        path: blob_root.display().to_string(),
        source,
    })?;
    Ok(Storage {
        store,
        blobs,
        created,
        shared,
    })
}

/// Data files left in the persistence folder of a CSS that now keeps data in the database
/// (an installation of the shared-folder mode after an upgrade): their objects answer 404
/// until the files are copied, which the log must say.
fn warn_of_unused_data_files(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let files = entries.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file())).count();
    if files > 0 {
        tracing::warn!(
            files,
            folder = %folder.display(),
            "object data files are in the persistence folder, but data is kept in the database \
             (ObjectDataStorage database): copy them with --copy-data-into-database, or set \
             ObjectDataStorage files to keep using them"
        );
    }
}

/// The SQLite store of the persistence root (or of its volatile folder, emptied first, for
/// the in-memory store); also returns the folder of the data files.
fn open_sqlite(config: &Config, sync_root: &Path) -> Result<(Arc<dyn Store>, PathBuf, bool), StartError> {
    let role_name = if config.is_css() { "css" } else { "ess" };
    let durable = config.storage_provider == StorageKind::Sqlite;
    let db_dir = if durable {
        sync_root.join("db")
    } else {
        // Nothing of an unpersisted store may survive a restart.
        let volatile = sync_root.join("volatile");
        if volatile.exists() {
            std::fs::remove_dir_all(&volatile).map_err(|source| StartError::Persistence {
                path: volatile.display().to_string(),
                source,
            })?;
        }
        volatile
    };
    prepare_folder(&db_dir)?;
    let db_file = db_dir.join(format!("{role_name}-sync.sqlite3"));
    let created = !db_file.exists();
    let store = SqliteStore::open(&db_file, durable)?;
    let blob_root = db_dir
        .parent()
        .unwrap_or(sync_root)
        .join(if durable { "objects" } else { "volatile/objects" });
    Ok((Arc::new(store), blob_root, created || !durable))
}

fn prepare_folder(path: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(path).map_err(|source| StartError::Persistence {
        path: path.display().to_string(),
        source,
    })
}

fn timer_settings(config: &Config) -> engine::timers::TimerSettings {
    // The configuration refuses non-positive periods.
    let seconds = |value: i64| std::time::Duration::from_secs(u64::try_from(value).unwrap_or(1).max(1));
    const DAY: u64 = 24 * 60 * 60;
    let removal = match (
        config.remove_ess_registration_seconds,
        config.remove_ess_registration_time,
    ) {
        (seconds, _) if seconds > 0 => Some(std::time::Duration::from_secs(seconds as u64)),
        (_, days) if days > 0 => Some(std::time::Duration::from_secs(days as u64 * DAY)),
        _ => None,
    };
    engine::timers::TimerSettings {
        resend: std::time::Duration::from_secs(u64::try_from(config.resend_interval).unwrap_or(10).max(1)),
        remove_inactive_nodes: removal,
        activation: seconds(config.object_activation_interval.into()),
        maintenance: seconds(config.storage_maintenance_interval.into()),
    }
}

fn settings(config: &Config) -> NodeSettings {
    let role = if config.is_css() { Role::Css } else { Role::Ess };
    let org = match role {
        Role::Ess => Some(config.org_id.clone()),
        Role::Css => config.single_org().map(str::to_string),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let multiplier = usize::try_from(config.http_css_obj_download_concurrency_multiplier)
        .unwrap_or(1)
        .max(1);
    let scheme = if config.mqtt_use_ssl { "ssl" } else { "tcp" };
    NodeSettings {
        role,
        org,
        dest_type: config.destination_type.clone(),
        dest_id: config.destination_id.clone(),
        chunk_size: i32::try_from(config.max_data_chunk_size).unwrap_or(i32::MAX),
        ranged_download_slots: cpus * multiplier,
        data_stream_slots: usize::try_from(config.max_data_streams).unwrap_or(1),
        max_metadata_body: 64 * 1024 * 1024,
        broker_address: format!("{scheme}://{}:{}", config.broker_address, config.broker_port),
        resend_interval_secs: i64::from(config.resend_interval),
        serves_spi: role == Role::Css && config.communication_protocol.uses_http(),
        store_created: false,
        data_uri_roots: config.data_uri_roots.clone(),
        data_uri_reserved: vec![config.persistence_root_path.join("sync")],
        allowed_data_file_extensions: config.allowed_data_file_extensions.clone(),
        max_object_size: u64::try_from(config.max_object_size).ok().filter(|&limit| limit > 0),
        instance_slot: None,
        link_windows: engine::LinkWindows::from_intervals(
            config.http_polling_interval,
            config.ess_ping_interval,
            engine::MAX_LONG_POLL.as_secs(),
        ),
        // Three polls missed, and never less than half a minute of failures.
        link_patience: std::time::Duration::from_secs((3 * u64::from(config.http_polling_interval)).max(30)),
        data_compression: config.data_compression,
        delta_transfer: config.delta_transfer,
    }
}
