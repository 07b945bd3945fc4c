//! The `syslog` destination: one RFC 3164-style datagram per line to the local syslog
//! socket, `<PRI>Mmm dd hh:mm:ss {tag}[{pid}]: {line}`, the form the original's Go syslog
//! writer sends locally, tagged with `LogFileName`.
//!
//! Priority: the original's severity NOTICE for every line (the level is in the line
//! itself), with facility `user`. The original's value leaves the facility 0 (`kern`),
//! which is reserved for the kernel and which the C library's `syslog()` never sends for
//! a program; `user` is what that function would use.
//!
//! The socket is non-blocking: when the syslog daemon does not keep up, lines are dropped
//! rather than stalling the node.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing_subscriber::fmt::MakeWriter;

/// Where the local syslog daemon listens.
pub(super) const SYSTEM_SOCKET: &str = "/dev/log";

/// Facility `user` (1) × 8 + severity NOTICE (5).
const PRIORITY: u8 = 13;

/// Sends lines to a syslog socket; one datagram per event.
#[derive(Debug)]
pub(super) struct SyslogWriter {
    socket: UnixDatagram,
    path: PathBuf,
    tag: String,
    pid: u32,
}

impl SyslogWriter {
    /// Connects to the datagram socket at `path` (normally [`SYSTEM_SOCKET`]); fails when no
    /// daemon listens there.
    pub(super) fn connect(path: &Path, tag: &str) -> io::Result<SyslogWriter> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_nonblocking(true)?;
        Ok(SyslogWriter {
            socket,
            path: path.to_path_buf(),
            tag: tag.to_string(),
            pid: std::process::id(),
        })
    }

    fn send(&self, line: &str) {
        let stamp = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
        let datagram = datagram(&stamp, &self.tag, self.pid, line);
        match self.socket.send(datagram.as_bytes()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // A restarted daemon has a new socket at the same path: reconnect once.
            Err(_) => {
                if self.socket.connect(&self.path).is_ok() {
                    let _ = self.socket.send(datagram.as_bytes());
                }
            }
        }
    }
}

/// The datagram for `line` (its final newline removed) sent at `stamp`.
fn datagram(stamp: &str, tag: &str, pid: u32, line: &str) -> String {
    format!("<{PRIORITY}>{stamp} {tag}[{pid}]: {}", line.trim_end_matches('\n'))
}

/// Collects one formatted event and sends it when dropped, which the formatting layer does
/// right after writing the event.
pub(super) struct SyslogLine<'a> {
    writer: &'a SyslogWriter,
    buffer: Vec<u8>,
}

impl Write for SyslogLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.writer.send(&String::from_utf8_lossy(&self.buffer));
        }
    }
}

impl<'a> MakeWriter<'a> for SyslogWriter {
    type Writer = SyslogLine<'a>;

    fn make_writer(&'a self) -> SyslogLine<'a> {
        SyslogLine {
            writer: self,
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, NodeType};
    use crate::logging::format::{layer, PrefixedTime, Stream};
    use crate::logging::levels::stream_filter;
    use std::time::Duration;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt;

    /// A socket standing in for the syslog daemon, in a temporary folder.
    fn daemon() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, path, socket)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = vec![0; 65536];
        let length = socket.recv(&mut buffer).expect("a datagram");
        String::from_utf8(buffer[..length].to_vec()).unwrap()
    }

    #[test]
    fn a_datagram_is_priority_stamp_tag_pid_and_line() {
        assert_eq!(
            datagram("Jan  2 15:04:05", "sync-service", 42, "CSS:  INFO started\n"),
            "<13>Jan  2 15:04:05 sync-service[42]: CSS:  INFO started"
        );
    }

    #[test]
    fn each_event_is_one_datagram_with_the_log_prefix_and_no_colours() {
        let (_dir, path, daemon) = daemon();
        let writer = SyslogWriter::connect(&path, "edge-sync").unwrap();
        let timer = PrefixedTime::without_clock(Stream::Log.prefix(NodeType::Ess));
        let filter = stream_filter(LevelFilter::INFO, None);
        let subscriber = tracing_subscriber::registry()
            .with(layer(writer, LogFormat::Text, false, timer))
            .with(filter);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(object = "o1", "object received");
            tracing::debug!("filtered out");
            tracing::warn!("second");
        });

        let first = receive(&daemon);
        let pid = std::process::id();
        let (head, line) = first.split_once(&format!(" edge-sync[{pid}]: ")).expect(&first);
        assert!(head.starts_with("<13>"), "{first}");
        assert_eq!(head.len(), "<13>Jan  2 15:04:05".len(), "{first}");
        assert_eq!(line, "ESS:  INFO object received object=\"o1\"");
        let second = receive(&daemon);
        assert!(second.ends_with("ESS:  WARN second"), "{second}");
        daemon.set_nonblocking(true).unwrap();
        assert!(daemon.recv(&mut [0; 16]).is_err(), "the debug line was sent");
    }

    #[test]
    fn an_absent_socket_is_an_error_at_connect() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SyslogWriter::connect(&dir.path().join("no-daemon"), "x").is_err());
    }
}
