//! The closed value sets of the configuration (node type, listening mode, protocol,
//! store, MQTT parallel mode, log destinations, log format, metrics access) and the `Secret`
//! wrapper that keeps passwords and private keys out of `Debug` output. Parsing of the raw
//! strings into these types is done by `choices` (the protocol by `protocol`); this file
//! only defines them.

use std::fmt;

/// Whether plain-HTTP downloads are sent from the page cache by `sendfile(2)`
/// (`SendfileDownloads`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendfileDownloads {
    /// For clients on other hosts. A client on the same host (a loopback address) reads
    /// the data from the page cache itself when it is sent this way, and was measured
    /// slower for it than when the service copies: it keeps the copying path.
    Auto,
    /// For every plain TCP client.
    Always,
    /// Never: every download is read and copied by the service.
    Never,
}

impl SendfileDownloads {
    /// Whether a download to a client at `peer` is sent from the page cache.
    pub fn for_peer(self, peer: std::net::IpAddr) -> bool {
        match self {
            SendfileDownloads::Auto => !peer.to_canonical().is_loopback(),
            SendfileDownloads::Always => true,
            SendfileDownloads::Never => false,
        }
    }
}

/// Which role the node plays (`NodeType`, spec config.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// Cloud Sync Service.
    Css,
    /// Edge Sync Service.
    Ess,
}

impl NodeType {
    /// The spelling used in logs and on the wire: `CSS` or `ESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Css => "CSS",
            NodeType::Ess => "ESS",
        }
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the API is served (`ListeningType`, spec config.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListeningType {
    /// HTTPS on `SecureListeningPort`.
    Secure,
    /// Plain HTTP on `UnsecureListeningPort`.
    Unsecure,
    /// Both of the above.
    Both,
    /// Plain HTTP on the Unix socket `ListeningAddress` (ESS only).
    Unix,
    /// HTTPS on the Unix socket `ListeningAddress` (ESS only).
    SecureUnix,
}

impl ListeningType {
    /// The configuration spelling (`secure`, `unsecure`, `both`, `unix`, `secure-unix`).
    pub fn as_str(self) -> &'static str {
        match self {
            ListeningType::Secure => "secure",
            ListeningType::Unsecure => "unsecure",
            ListeningType::Both => "both",
            ListeningType::Unix => "unix",
            ListeningType::SecureUnix => "secure-unix",
        }
    }

    /// True for the modes that serve HTTPS on a TCP port (`secure`, `both`).
    pub fn serves_tcp_tls(self) -> bool {
        matches!(self, ListeningType::Secure | ListeningType::Both)
    }

    /// True for the modes that serve plain HTTP on a TCP port (`unsecure`, `both`).
    pub fn serves_tcp_plain(self) -> bool {
        matches!(self, ListeningType::Unsecure | ListeningType::Both)
    }

    /// True for the Unix-socket modes (`unix`, `secure-unix`).
    pub fn is_unix(self) -> bool {
        matches!(self, ListeningType::Unix | ListeningType::SecureUnix)
    }
}

impl fmt::Display for ListeningType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CSS–ESS transport after normalisation (spec config.md §5 step 8, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// All traffic through an MQTT broker.
    Mqtt,
    /// ESS polls the CSS over HTTP.
    Http,
    /// MQTT through the Watson IoT Platform.
    Wiotp,
    /// CSS only: each ESS uses MQTT or HTTP, whichever it registered with.
    HybridMqtt,
    /// CSS only: each ESS uses WIoTP or HTTP, whichever it registered with.
    HybridWiotp,
}

impl Protocol {
    /// The normalised spelling (`mqtt`, `http`, `wiotp`, `hybrid-mqtt`, `hybrid-wiotp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Http => "http",
            Protocol::Wiotp => "wiotp",
            Protocol::HybridMqtt => "hybrid-mqtt",
            Protocol::HybridWiotp => "hybrid-wiotp",
        }
    }

    /// True when an MQTT broker is used directly (`mqtt`, `hybrid-mqtt`).
    pub fn uses_mqtt(self) -> bool {
        matches!(self, Protocol::Mqtt | Protocol::HybridMqtt)
    }

    /// True when the Watson IoT Platform is used (`wiotp`, `hybrid-wiotp`).
    pub fn uses_wiotp(self) -> bool {
        matches!(self, Protocol::Wiotp | Protocol::HybridWiotp)
    }

    /// True when HTTP between CSS and ESS is used (`http` or a hybrid).
    pub fn uses_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::HybridMqtt | Protocol::HybridWiotp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which store holds metadata and data (`StorageProvider`). The original's `mongo` is not
/// supported; its `bolt` maps to our embedded SQLite store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// Embedded single-file SQLite store under the persistence root (`bolt` or empty).
    Sqlite,
    /// Everything in memory, lost on restart (`inmemory`).
    InMemory,
    /// Metadata in a PostgreSQL database (`postgres`, CSS only), so that several CSS
    /// instances can share it; object data there too unless [`ObjectDataStorage::Files`].
    Postgres,
}

/// Where a CSS on PostgreSQL keeps object data (`ObjectDataStorage`, extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectDataStorage {
    /// In the database beside the metadata (the default): instances share nothing else.
    Database,
    /// In files under the persistence root, which instances sharing the database must
    /// share too (a network file system or a shared volume).
    Files,
}

/// Where the log and the trace go (`LogTraceDestination`, spec config.md §4.8): any
/// non-empty combination of the four destinations the original knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogDestinations {
    /// `file`: `{LogRootPath}/{LogFileName}.log` and `{TraceRootPath}/{TraceFileName}.log`,
    /// rotated by size.
    pub file: bool,
    /// `stdout`: standard output.
    pub stdout: bool,
    /// `syslog`: the local syslog socket, tagged with `LogFileName`.
    pub syslog: bool,
    /// `glog`: the original's Google-logging destination; standard error here.
    pub glog: bool,
}

impl LogDestinations {
    /// True when no destination is chosen (the original refuses to start then).
    pub fn is_empty(self) -> bool {
        !(self.file || self.stdout || self.syslog || self.glog)
    }
}

/// How log lines are written (`LogFormat`, an extension of this implementation); syslog
/// always gets text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (`text`, the default).
    Text,
    /// One JSON object per line, for log collectors (`json`).
    Json,
}

/// Who may read `GET /metrics` (`MetricsAccess`, an extension of this implementation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Sync admins only, with the usual Basic credentials (`admin`, the default).
    Admin,
    /// Anyone who reaches the listener, without credentials (`open`): for a Prometheus
    /// scraper on a trusted network.
    Open,
    /// The route is not served (`off`): the router's 404.
    Off,
}

/// Parallel processing of incoming MQTT messages (`MQTTParallelMode`, spec config.md §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParallelMode {
    /// Messages are handled one at a time (`none` or empty).
    None,
    /// 4 command queues of 4, 16 data workers, data queue 32.
    Small,
    /// 8 command queues of 8, 32 data workers, data queue 64.
    Medium,
    /// 16 command queues of 16, 64 data workers, data queue 128.
    Large,
}

/// A value that must never appear in logs: passwords and private keys (paths or inline PEM).
/// `Debug` prints `<redacted>` when set and `""` when empty, so a dump still shows whether
/// the value was configured.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no value is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}
