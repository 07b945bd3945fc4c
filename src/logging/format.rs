//! How lines look: the original's `{NodeType}: ` (log) and `* {NodeType}: ` (trace) line
//! prefixes ahead of the timestamp, as its Go logger writes them; JSON lines (`LogFormat
//! json`) carry no prefix, so that every line stays one JSON object.

use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, NodeType};

/// One destination's layer, boxed so that destinations of different writer types can be
/// installed together.
pub(super) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Which of the original's two streams a destination carries; decides the line prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    /// Operational events, at `LogLevel`.
    Log,
    /// Diagnostics, at `TraceLevel`.
    Trace,
}

impl Stream {
    /// The original's prefix of this stream's lines.
    pub(super) fn prefix(self, node_type: NodeType) -> String {
        match self {
            Stream::Log => format!("{node_type}: "),
            Stream::Trace => format!("* {node_type}: "),
        }
    }
}

/// Writes the line prefix in the timestamp's place, the first thing on a text line, then
/// the timestamp unless `clock` is off (syslog stamps its datagrams itself).
#[derive(Debug, Clone)]
pub(super) struct PrefixedTime {
    prefix: String,
    clock: bool,
}

impl PrefixedTime {
    /// A prefix followed by the time (RFC 3339, UTC).
    pub(super) fn with_clock(prefix: String) -> Self {
        PrefixedTime { prefix, clock: true }
    }

    /// The prefix alone.
    pub(super) fn without_clock(prefix: String) -> Self {
        let prefix = prefix.trim_end().to_string();
        PrefixedTime { prefix, clock: false }
    }
}

impl FormatTime for PrefixedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&self.prefix)?;
        if self.clock {
            SystemTime.format_time(w)?;
        }
        Ok(())
    }
}

/// A layer writing `format` lines to `writer` with `timer`; colours only if `ansi` (text).
/// JSON lines flatten the event's fields next to `level` and `message` and put the fields of
/// the enclosing request or transfer span under `span`.
pub(super) fn layer<W>(writer: W, format: LogFormat, ansi: bool, timer: PrefixedTime) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_target(false);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).with_timer(timer).boxed(),
        LogFormat::Json => layer
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer_output(timer: &PrefixedTime) -> String {
        let mut text = String::new();
        timer.format_time(&mut Writer::new(&mut text)).unwrap();
        text
    }

    #[test]
    fn streams_have_the_original_prefixes() {
        assert_eq!(Stream::Log.prefix(NodeType::Css), "CSS: ");
        assert_eq!(Stream::Trace.prefix(NodeType::Ess), "* ESS: ");
    }

    #[test]
    fn the_prefix_comes_before_the_timestamp() {
        let text = timer_output(&PrefixedTime::with_clock("* ESS: ".into()));
        let stamp = text.strip_prefix("* ESS: ").expect("prefix first");
        assert!(stamp.ends_with('Z') && stamp.contains('T'), "{text}");
        assert_eq!(timer_output(&PrefixedTime::without_clock("CSS: ".into())), "CSS:");
    }
}
