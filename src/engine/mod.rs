//! Object operations shared by both roles. The engine reads from the store, decides with the
//! pure functions of `model` and `auth::access`, and writes back with a revision check so
//! that concurrent requests never lose each other's changes. It knows nothing of HTTP.

mod attached;
mod consumer;
mod css_receive;
mod data;
mod data_files;
mod data_stream;
pub mod data_uri;
mod delivery;
mod delta_transfer;
mod destinations;
mod file_objects;
mod fleet_view;
mod grants;
mod lifecycle;
mod link_status;
mod listings;
mod objects;
mod organizations;
pub mod origin;
mod pollers;
pub mod receive;
mod receive_data;
mod receive_plan;
mod reports;
pub mod security;
pub mod spi;
mod spi_nodes;
pub mod timers;
pub mod verify;
mod webhooks;

pub use attached::{BrokerHealth, BrokerStatus, LeaderRole};
pub use consumer::Report;
pub use css_receive::ReceptionScope;
pub use data::{ContentRange, DataRange, RangeRequest, RangedRead};
pub use data_files::{DataFile, DataFileError};
pub use data_stream::DataStream;
pub use file_objects::{OwnDelivery, StagedData};
pub use fleet_view::{DeliveryCounts, LinkState, LinkWindows, NodeView, ObjectSummary};
pub use link_status::{LinkCondition, LinkError, LinkMonitor, LinkReason, LinkReport};
pub use listings::{Filters, OrgQuery, OrgQueryResult};
pub use reports::StoreUsage;
pub use spi::MAX_LONG_POLL;
pub use webhooks::{PostResult, WebhookPoster};

use crate::auth::{Authenticator, Identity};
use crate::clock::Instant;
use crate::model::{ObjectKey, Role};
use crate::store::blobs::{BlobError, BlobStore};
use crate::store::space::is_out_of_space;
use crate::store::{InstanceClock, Store, StoreError};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why an operation was refused or failed. The texts here are for the log; what a client is
/// answered (status and body, the original's wording where clients know it) is decided by
/// each transport, once: the API in `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The caller may not do this.
    #[error("the caller may not do this")]
    Forbidden,
    /// A data read refused: the object may not exist, or the caller may not read it.
    #[error("the caller may not read this object's data, or it does not exist")]
    DataForbidden,
    /// Nothing found.
    #[error("not found")]
    NotFound,
    /// The request is wrong; the text says why, for the client.
    #[error("{0}")]
    Invalid(String),
    /// The request collides with another one in progress; the text says why, for the client.
    #[error("{0}")]
    Conflict(String),
    /// The body exceeds a limit; the text says which, for the client.
    #[error("{0}")]
    TooLarge(String),
    /// A range outside the data; carries the object size.
    #[error("the requested range is outside the object's {0} bytes")]
    RangeNotSatisfiable(u64),
    /// The edge node is not registered.
    #[error("the node is not registered")]
    NotRegistered,
    /// Too many ranged downloads at once.
    #[error("too many data downloads at once")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A data file operation failed (a full disk is [`StoreError::Full`] instead).
    #[error("data file error: {0}")]
    Io(std::io::Error),
}

impl EngineError {
    /// True when the node's disk is full: the same write can succeed once space is freed.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, EngineError::Store(StoreError::Full))
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        if is_out_of_space(&e) {
            EngineError::Store(StoreError::Full)
        } else if e.kind() == std::io::ErrorKind::FileTooLarge {
            // Larger than the file system (or its largest file) can ever hold: retrying
            // after space is freed would not help, so the client hears it is too large.
            EngineError::TooLarge(e.to_string())
        } else {
            EngineError::Io(e)
        }
    }
}

impl From<BlobError> for EngineError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Body(message) => EngineError::Invalid(format!("Failed to read the data: {message}")),
            BlobError::TooLong(limit) => {
                EngineError::TooLarge(format!("The data is longer than the {limit} bytes announced"))
            }
            BlobError::Io(e) => e.into(),
            BlobError::Store(e) => e.into(),
        }
    }
}

/// Result of engine operations.
pub type EngineResult<T> = Result<T, EngineError>;

/// How a node is set up, independent of the configuration file format.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub role: Role,
    /// The ESS's organization, or the CSS's single organization when set.
    pub org: Option<String>,
    /// This node's destination type and ID (`Cloud`/`Cloud` on the CSS); used as origin.
    pub dest_type: String,
    pub dest_id: String,
    /// Chunk size recorded in new objects (`MaxDataChunkSize`).
    pub chunk_size: i32,
    /// Concurrent ranged downloads allowed.
    pub ranged_download_slots: usize,
    /// Data downloads streamed at the same time (`MaxDataStreams`).
    pub data_stream_slots: usize,
    /// Largest JSON body of a metadata PUT (inline data included).
    pub max_metadata_body: usize,
    /// Broker address reported for the single org in the organization listing.
    pub broker_address: String,
    /// `ResendInterval`: unacknowledged messages are repeated after six of these.
    pub resend_interval_secs: i64,
    /// True on a CSS whose protocol includes http: it serves `/spi/v1` to edge nodes.
    pub serves_spi: bool,
    /// True when the store was created at this start (first start, emptied persistence
    /// folder, or an unpersisted store): an ESS then holds nothing the CSS may think it has.
    pub store_created: bool,
    /// Directories that data URI files must lie in (symlinks resolved).
    pub data_uri_roots: Vec<std::path::PathBuf>,
    /// Directories data URI files may never be in, even inside a root: the service's own
    /// databases and data files.
    pub data_uri_reserved: Vec<std::path::PathBuf>,
    /// `AllowedDataFileExtensions`: when not empty, data URI files need one of these
    /// extensions (compared case-insensitively).
    pub allowed_data_file_extensions: Vec<String>,
    /// Largest object data accepted, in bytes; `None` for no limit.
    pub max_object_size: Option<u64>,
    /// Set when other processes write the same store and data folder (CSS instances on
    /// PostgreSQL): a number no other process gets, which picks this process's slot of
    /// instance IDs and is part of its data file names.
    pub instance_slot: Option<i64>,
    /// How long a silent edge node still counts as online, then late (the status page).
    pub link_windows: fleet_view::LinkWindows,
    /// ESS: how long exchanges with the CSS may fail before its link counts as offline.
    pub link_patience: std::time::Duration,
    /// `DataCompression`: object data may travel compressed to and from nodes that ask.
    pub data_compression: bool,
    /// `DeltaTransfer`: new versions may travel as their changed parts to and from nodes
    /// that ask.
    pub delta_transfer: bool,
}

/// Age after which an unreferenced file in a data folder shared by several instances is
/// taken for a leftover of a crash rather than a write in progress.
const SHARED_LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Cheap handle to the node's state; clone it freely.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    settings: NodeSettings,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    authenticator: Box<dyn Authenticator>,
    clock: InstanceClock,
    /// Where data URI files may be, from the settings.
    data_uri_rules: Arc<data_uri::Rules>,
    /// Keys with a whole-data upload in progress, to refuse a racing second upload.
    uploads_in_flight: Mutex<HashSet<ObjectKey>>,
    ranged_downloads: Arc<tokio::sync::Semaphore>,
    /// Data streams served at once; further downloads wait for a slot, so a thousand nodes
    /// fetching together cannot grow memory without bound.
    stream_slots: Arc<tokio::sync::Semaphore>,
    /// Data bodies being written right now (uploads, chunks, downloads from the other
    /// node), for `/metrics`.
    receiving: std::sync::atomic::AtomicUsize,
    started: Instant,
    client_requests: AtomicU64,
    pollers: pollers::PollRegistry,
    /// When each edge node was last heard from by this process.
    last_heard: fleet_view::LastHeard,
    /// ESS: how its link to the CSS stands (`None` on a CSS).
    css_link: Option<LinkMonitor>,
    /// ESS: wakes the sync client when an application report recorded a message for the CSS.
    outbox_signal: tokio::sync::Notify,
    /// An application asked (through `/api/v1/resend`) for everything to be sent again; the
    /// sync client repeats the request until the CSS acknowledges it.
    resend_requested: std::sync::atomic::AtomicBool,
    /// The shutdown route asked this ESS to unregister from its CSS while stopping.
    unregister_requested: std::sync::atomic::AtomicBool,
    /// The CSS confirmed the unregistration: the local store is wiped after stopping.
    unregistered: std::sync::atomic::AtomicBool,
    /// The broker connection's state, when the node talks MQTT (health, metrics).
    broker: Mutex<Option<Arc<dyn BrokerStatus>>>,
    /// Failed verifications per (object, node, instance), to stop re-sending data that a
    /// node can never verify.
    verification_failures: Mutex<std::collections::HashMap<(ObjectKey, crate::model::sync::Remote, i64), u32>>,
    webhooks: webhooks::Notifier,
    /// Whether this instance does the cluster-wide periodic work; unset on a node alone on
    /// its store, which always does.
    leadership: std::sync::OnceLock<Arc<dyn LeaderRole>>,
    /// Previous versions kept for downloads, manifests served.
    delta: delta_transfer::DeltaState,
}

impl Node {
    /// Builds the node over an opened store; removes what a crash may have left behind.
    pub async fn start(
        settings: NodeSettings,
        store: Arc<dyn Store>,
        blobs: BlobStore,
        authenticator: Box<dyn Authenticator>,
    ) -> EngineResult<Self> {
        // Files another instance is writing right now are not referenced yet: with a shared
        // data folder only files untouched for a long time are leftovers.
        let min_age = settings.instance_slot.map(|_| SHARED_LEFTOVER_AGE);
        let removed = blobs.collect_garbage(store.as_ref(), min_age).await?;
        if removed > 0 {
            tracing::info!(data = removed, "removed object data left over by an interrupted write");
        }
        let clock = InstanceClock::starting_after(store.max_instance_id().await?);
        let clock = match settings.instance_slot {
            Some(slot) => clock.in_slot(slot),
            None => clock,
        };
        let slots = settings.ranged_download_slots.max(1);
        let streams = settings.data_stream_slots.max(1);
        let data_uri_rules = Arc::new(data_uri::Rules {
            roots: settings.data_uri_roots.clone(),
            reserved: settings.data_uri_reserved.clone(),
            extensions: settings.allowed_data_file_extensions.clone(),
        });
        let css_link = (settings.role == Role::Ess).then(|| LinkMonitor::new(settings.link_patience));
        Ok(Self(Arc::new(Inner {
            settings,
            store,
            blobs,
            authenticator,
            clock,
            data_uri_rules,
            uploads_in_flight: Mutex::new(HashSet::new()),
            ranged_downloads: Arc::new(tokio::sync::Semaphore::new(slots)),
            stream_slots: Arc::new(tokio::sync::Semaphore::new(streams)),
            receiving: std::sync::atomic::AtomicUsize::new(0),
            started: Instant::now(),
            client_requests: AtomicU64::new(0),
            pollers: pollers::PollRegistry::default(),
            last_heard: fleet_view::LastHeard::default(),
            css_link,
            outbox_signal: tokio::sync::Notify::new(),
            resend_requested: std::sync::atomic::AtomicBool::new(false),
            unregister_requested: std::sync::atomic::AtomicBool::new(false),
            unregistered: std::sync::atomic::AtomicBool::new(false),
            broker: Mutex::new(None),
            verification_failures: Mutex::new(std::collections::HashMap::new()),
            webhooks: webhooks::Notifier::start(),
            leadership: std::sync::OnceLock::new(),
            delta: delta_transfer::DeltaState::default(),
        })))
    }

    /// The node's role.
    pub fn role(&self) -> Role {
        self.0.settings.role
    }

    /// The node's settings.
    /// Makes the broker connection's state part of the node's health (replacing the one of
    /// a connection closed before).
    pub fn set_broker(&self, state: Arc<dyn BrokerStatus>) {
        *self.0.broker.lock() = Some(state);
    }

    /// The node stopped talking MQTT (a CSS instance that is no longer the leader).
    pub fn forget_broker(&self) {
        *self.0.broker.lock() = None;
    }

    /// The broker connection's state, when the node talks MQTT.
    pub fn broker(&self) -> Option<Arc<dyn BrokerStatus>> {
        self.0.broker.lock().clone()
    }

    /// Makes this node one of several instances sharing its store, leading only as
    /// `leadership` says.
    pub fn set_leadership(&self, leadership: Arc<dyn LeaderRole>) {
        let _ = self.0.leadership.set(leadership);
    }

    /// True when this node does the cluster-wide periodic work: always, unless it shares its
    /// store with other instances and another one leads.
    pub fn is_leader(&self) -> bool {
        self.0.leadership.get().is_none_or(|leadership| leadership.is_leader())
    }

    /// Follows [`Node::is_leader`].
    pub fn leadership_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        match self.0.leadership.get() {
            Some(leadership) => leadership.changes(),
            // A node alone on its store always leads; with the sender gone nothing changes.
            None => tokio::sync::watch::channel(true).1,
        }
    }

    /// Every node with new messages is also sent to `peers` (the other instances sharing the
    /// store).
    pub fn announce_wakeups_to(&self, peers: tokio::sync::mpsc::UnboundedSender<(String, crate::model::sync::Remote)>) {
        self.0.pollers.set_peers(peers);
    }

    /// Wakes the long polls of a node waiting in this instance, and its MQTT pusher if it
    /// runs one (news from another instance).
    pub fn wake_polls_of(&self, org: &str, remote: &crate::model::sync::Remote) {
        self.0.pollers.wake_here(org, remote);
    }

    /// Wakes every long poll waiting in this instance, to look for news again.
    pub fn wake_all_polls(&self) {
        self.0.pollers.wake_all_polls();
    }

    /// The node is stopping: held long polls answer now, later ones are not held.
    pub fn stop_holding_polls(&self) {
        self.0.pollers.stop_holding();
    }

    /// Every node with new messages is sent to `pusher` (the MQTT transport of a CSS).
    pub fn push_messages_to(&self, pusher: tokio::sync::mpsc::UnboundedSender<(String, crate::model::sync::Remote)>) {
        self.0.pollers.set_pusher(pusher);
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.0.settings
    }

    /// Classifies a caller.
    pub fn authenticate(&self, app_key: &str, app_secret: &str) -> Identity {
        self.0.authenticator.authenticate(app_key, app_secret)
    }

    /// Seconds since the node started.
    pub fn uptime_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }

    /// Counts an API call that reached the object layer (health `clientRequests`).
    pub fn count_request(&self) {
        self.0.client_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Data transfers in progress: streams being served (each holds a stream slot until
    /// its body is sent) and bodies being received.
    pub fn transfers_in_flight(&self) -> TransfersInFlight {
        TransfersInFlight {
            sending: self
                .0
                .settings
                .data_stream_slots
                .max(1)
                .saturating_sub(self.0.stream_slots.available_permits()),
            receiving: self.0.receiving.load(Ordering::Relaxed),
        }
    }

    /// Counts a data body as being received until the guard is dropped.
    fn receiving(&self) -> ReceivingGuard<'_> {
        self.0.receiving.fetch_add(1, Ordering::Relaxed);
        ReceivingGuard(&self.0.receiving)
    }

    /// API calls counted so far.
    pub fn client_requests(&self) -> u64 {
        self.0.client_requests.load(Ordering::Relaxed)
    }

    /// ESS: the record of its link to the CSS, which the transports keep up to date.
    pub fn css_link(&self) -> Option<&LinkMonitor> {
        self.0.css_link.as_ref()
    }

    /// The organization an ESS serves (its configured org); on the CSS the path's org.
    pub fn org_for<'a>(&'a self, path_org: Option<&'a str>) -> &'a str {
        match (self.role(), path_org) {
            (Role::Css, Some(org)) => org,
            _ => self.0.settings.org.as_deref().unwrap_or(""),
        }
    }
}

impl Node {
    /// Records an application's request that the CSS send everything again (ESS).
    pub fn request_resend(&self) {
        self.0.resend_requested.store(true, Ordering::SeqCst);
        self.0.outbox_signal.notify_one();
    }

    /// Takes the pending resend request, if any; the caller puts it back when the CSS did
    /// not acknowledge it.
    pub fn take_resend_request(&self) -> bool {
        self.0.resend_requested.swap(false, Ordering::SeqCst)
    }

    /// Asks the ESS to unregister from its CSS while it stops (`essunregister=true`).
    pub fn request_unregister(&self) {
        self.0.unregister_requested.store(true, Ordering::SeqCst);
    }

    /// True when the shutdown route asked for an unregistration.
    pub fn unregister_requested(&self) -> bool {
        self.0.unregister_requested.load(Ordering::SeqCst)
    }

    /// Records that the CSS confirmed the unregistration.
    pub fn mark_unregistered(&self) {
        self.0.unregistered.store(true, Ordering::SeqCst);
    }

    /// True when this node unregistered from its CSS and must forget its state.
    pub fn was_unregistered(&self) -> bool {
        self.0.unregistered.load(Ordering::SeqCst)
    }

    /// Keeps a resend request for the next pass.
    pub fn keep_resend_request(&self) {
        self.0.resend_requested.store(true, Ordering::SeqCst);
    }
}

/// Data transfers in progress ([`Node::transfers_in_flight`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransfersInFlight {
    pub sending: usize,
    pub receiving: usize,
}

/// Ends the count of one received body however its write ends.
struct ReceivingGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for ReceivingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Releases a key from the in-flight upload set when the upload ends, however it ends.
struct UploadGuard<'a> {
    set: &'a Mutex<HashSet<ObjectKey>>,
    key: ObjectKey,
}

impl<'a> UploadGuard<'a> {
    fn acquire(set: &'a Mutex<HashSet<ObjectKey>>, key: &ObjectKey) -> EngineResult<Self> {
        let mut keys = set.lock();
        if !keys.insert(key.clone()) {
            return Err(EngineError::Conflict(format!(
                "Another upload of the data of {key} is in progress; retry when it has finished"
            )));
        }
        Ok(Self { set, key: key.clone() })
    }
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

/// Attempts at a read-decide-write cycle before giving up on a hot key.
const WRITE_ATTEMPTS: usize = 16;
