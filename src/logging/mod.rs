//! Log and trace output as the original's logging keys ask (spec config.md §4.8): which
//! destinations (`LogTraceDestination`), at which levels (`LogLevel` for the log,
//! `TraceLevel` for the trace), in which files, and in which format (`LogFormat`, ours).
//!
//! Every event goes through `tracing`; the two streams are two level filters:
//! - `file`: the log file gets the events at `LogLevel`, the trace file those at
//!   `TraceLevel` (see `files`; one file at the more verbose level when both are one).
//! - `stdout`, `glog` (standard error here: no Google-logging library) and `syslog`: one
//!   stream each, at the more verbose of the two levels, so that no line comes twice.
//!
//! `RUST_LOG`, when set, replaces the level of every stream. Text lines start with the
//! original's prefixes (`CSS: ` for the log, `* CSS: ` for the trace); `LogFormat json`
//! writes JSON lines to every destination but syslog.

mod files;
mod format;
mod levels;
mod syslog;

use std::io::IsTerminal;
use std::path::Path;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};
use tracing_subscriber::Layer;

use crate::config::{Config, LogFormat};
use format::{BoxedLayer, PrefixedTime, Stream};

/// Why the log or the trace could not be set up: the message names the stream, the path and
/// the key. Start-up ends with exit status [`LoggingError::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
#[error("Failed to initialize the {stream}. Error: {detail}")]
pub struct LoggingError {
    stream: &'static str,
    detail: String,
}

impl LoggingError {
    /// The original's exit status when its log cannot be opened.
    pub const EXIT_CODE: i32 = 98;

    fn new(stream: &'static str, detail: String) -> LoggingError {
        LoggingError { stream, detail }
    }
}

/// Keeps the writers' threads; [`LoggingGuard::finish`] writes out the lines they still hold.
/// `std::process::exit` runs no destructors, so finish it before calling that.
#[must_use = "dropping the guard stops logging"]
pub struct LoggingGuard {
    _writers: Vec<WorkerGuard>,
}

/// How long the writers may take to write out their last lines at exit.
const FINISH_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

impl LoggingGuard {
    /// Writes out the lines the writers still hold, for at most [`FINISH_WITHIN`]. A writer
    /// stuck on a destination that takes no more lines (a console pipe nobody reads) must not
    /// hold up the exit: its guard then reports on stdout, whose lock that writer holds, so
    /// the guards are dropped on a thread of their own and left behind when it is late.
    pub fn finish(self) {
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("log-finish".into()).spawn(move || {
            drop(self);
            let _ = done.send(());
        });
        if spawned.is_ok() {
            let _ = finished.recv_timeout(FINISH_WITHIN);
        }
    }
}

/// Lines waiting for a writer thread, at most; further lines are dropped until it catches up.
/// The queue's slots are allocated up front, so this is resident memory per destination.
const BUFFERED_LINES: usize = 2_048;

/// Hands `writer` to a thread of its own behind a bounded queue. A destination that stops
/// taking lines (a slow disk, or a console pipe its reader no longer drains) then costs
/// lines, never the service: written from the runtime's threads, a full standard-error pipe
/// once blocked every one of them, and with them every request and the stop signal.
fn in_background<W: std::io::Write + Send + 'static>(writer: W, name: &str) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name(name)
        .finish(writer)
}

/// Installs the global `tracing` subscriber for `config`. Call once, before the first event.
pub fn init(config: &Config) -> Result<LoggingGuard, LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let rust_log = rust_log.as_deref();
    let destinations = config.log_trace_destination;
    let format = config.log_format;
    let log_level = levels::level_or_info("LogLevel", &config.log_level);
    let trace_level = levels::level_or_info("TraceLevel", &config.trace_level);
    let console_level = log_level.max(trace_level);
    let log_prefix = Stream::Log.prefix(config.node_type);

    // Each destination's layer with the level of its stream.
    let mut streams: Vec<(BoxedLayer, LevelFilter)> = Vec::new();
    let mut writers = Vec::new();
    if destinations.file {
        for file in files::open(config, log_level, trace_level)? {
            let timer = PrefixedTime::with_clock(file.target.stream.prefix(config.node_type));
            streams.push((format::layer(file.writer, format, false, timer), file.target.level));
            writers.push(file.guard);
        }
    }
    if destinations.stdout {
        let ansi = colours(std::io::stdout().is_terminal());
        let timer = PrefixedTime::with_clock(log_prefix.clone());
        let (stdout, guard) = in_background(std::io::stdout(), "log-stdout");
        writers.push(guard);
        streams.push((format::layer(stdout, format, ansi, timer), console_level));
    }
    if destinations.glog {
        let ansi = colours(std::io::stderr().is_terminal());
        let timer = PrefixedTime::with_clock(log_prefix.clone());
        let (stderr, guard) = in_background(std::io::stderr(), "log-stderr");
        writers.push(guard);
        streams.push((format::layer(stderr, format, ansi, timer), console_level));
    }
    if destinations.syslog {
        if let Some(layer) = syslog_layer(config) {
            streams.push((layer, console_level));
        }
    }
    install(streams, rust_log).map_err(|e| LoggingError::new("log", format!("a logger is already installed: {e}")))?;
    Ok(LoggingGuard { _writers: writers })
}

/// Installs the streams. When they all take the same events (one level, or `RUST_LOG` for
/// all), one filter in front of them all decides: events and spans below it cost nothing,
/// while a filter per stream is consulted for every span of every request.
fn install(streams: Vec<(BoxedLayer, LevelFilter)>, rust_log: Option<&str>) -> Result<(), TryInitError> {
    let first = streams.first().map_or(LevelFilter::OFF, |(_, level)| *level);
    let one_filter = rust_log.is_some_and(|d| !d.trim().is_empty()) || streams.iter().all(|(_, level)| *level == first);
    if one_filter {
        let layers: Vec<BoxedLayer> = streams.into_iter().map(|(layer, _)| layer).collect();
        return tracing_subscriber::registry()
            .with(layers)
            .with(levels::stream_filter(first, rust_log))
            .try_init();
    }
    let layers: Vec<BoxedLayer> = streams
        .into_iter()
        .map(|(layer, level)| layer.with_filter(levels::stream_filter(level, rust_log)).boxed())
        .collect();
    tracing_subscriber::registry().with(layers).try_init()
}

/// Colours for a terminal, unless `NO_COLOR` asks for none (no-color.org).
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// The syslog layer (always text, no colours, the daemon adds the time); `None`, after a
/// warning on stderr, when no syslog daemon listens: the node runs on without it rather
/// than not at all.
fn syslog_layer(config: &Config) -> Option<BoxedLayer> {
    let socket = Path::new(syslog::SYSTEM_SOCKET);
    match syslog::SyslogWriter::connect(socket, &config.log_file_name) {
        Ok(writer) => {
            let timer = PrefixedTime::without_clock(Stream::Log.prefix(config.node_type));
            Some(format::layer(writer, LogFormat::Text, false, timer))
        }
        Err(e) => {
            eprintln!(
                "Warning: LogTraceDestination syslog: cannot reach the syslog socket {} ({e}); going on without syslog",
                socket.display()
            );
            None
        }
    }
}
