//! The original's level names (`LogLevel`, `TraceLevel`) mapped onto tracing's levels, and
//! the per-stream filter, which `RUST_LOG` replaces when set.
//!
//! `RUST_LOG` takes a level and `target=level` pairs, comma-separated
//! (`info,edge_sync_service::sync=debug`): per-module levels are what an operator needs to
//! look into one part, and a filter of fixed targets decides from the callsite alone, once,
//! where span and field patterns would be matched on every request.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// The tracing level of one of the original's level names (any case); `None` when the name
/// is unknown. STATUS and FATAL have no tracing level of their own and count as errors.
fn level_filter(name: &str) -> Option<LevelFilter> {
    match name.to_ascii_uppercase().as_str() {
        "NONE" => Some(LevelFilter::OFF),
        "STATUS" | "FATAL" | "ERROR" => Some(LevelFilter::ERROR),
        "WARNING" => Some(LevelFilter::WARN),
        "INFO" => Some(LevelFilter::INFO),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "TRACE" | "XTRACE" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

/// Like [`level_filter`], with the original's fallback: an unknown name means INFO, said
/// once on stderr (stdout may be carrying JSON log lines).
pub(super) fn level_or_info(key: &str, name: &str) -> LevelFilter {
    level_filter(name).unwrap_or_else(|| {
        eprintln!("Invalid log level {name} specified for {key}. Using INFO instead");
        LevelFilter::INFO
    })
}

/// The filter of one stream: `level`, unless `rust_log` (the `RUST_LOG` variable) holds a
/// valid, non-empty filter, which then applies to every stream as it did before.
pub(super) fn stream_filter(level: LevelFilter, rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| directives.trim().parse::<Targets>().ok())
        .unwrap_or_else(|| {
            // mio (under tokio) logs every socket it registers at the trace level: noise
            // for an operator who asked for the node's own trace; RUST_LOG can still ask.
            Targets::new()
                .with_default(level)
                .with_target("mio", level.min(LevelFilter::INFO))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::layer::Filter;

    trait Hint {
        fn hint(&self) -> Option<LevelFilter>;
    }

    impl Hint for Targets {
        fn hint(&self) -> Option<LevelFilter> {
            Filter::<tracing_subscriber::Registry>::max_level_hint(self)
        }
    }

    #[test]
    fn the_node_s_trace_leaves_out_the_sockets_mio_registers() {
        let trace = stream_filter(LevelFilter::TRACE, None);
        assert!(trace.would_enable("edge_sync_service::sync", &Level::TRACE));
        assert!(!trace.would_enable("mio::poll", &Level::TRACE));
        assert!(trace.would_enable("mio::poll", &Level::INFO));
        let warn = stream_filter(LevelFilter::WARN, None);
        assert!(
            !warn.would_enable("mio::poll", &Level::INFO),
            "never more than the node's level"
        );
        let asked = stream_filter(LevelFilter::INFO, Some("mio=trace"));
        assert!(asked.would_enable("mio::poll", &Level::TRACE), "RUST_LOG can still ask");
    }

    #[test]
    fn rust_log_sets_levels_per_module() {
        let filter = stream_filter(LevelFilter::WARN, Some(" info,edge_sync_service::sync=debug "));
        assert!(filter.would_enable("edge_sync_service::sync::ess_loop", &Level::DEBUG));
        assert!(!filter.would_enable("edge_sync_service::api", &Level::DEBUG));
        assert!(filter.would_enable("edge_sync_service::api", &Level::INFO));
        assert!(!filter.would_enable("edge_sync_service::sync", &Level::TRACE));
    }

    #[test]
    fn original_names_map_onto_tracing_levels() {
        let cases = [
            ("NONE", LevelFilter::OFF),
            ("status", LevelFilter::ERROR),
            ("Fatal", LevelFilter::ERROR),
            ("ERROR", LevelFilter::ERROR),
            ("warning", LevelFilter::WARN),
            ("INFO", LevelFilter::INFO),
            ("debug", LevelFilter::DEBUG),
            ("TRACE", LevelFilter::TRACE),
            ("xtrace", LevelFilter::TRACE),
        ];
        for (name, level) in cases {
            assert_eq!(level_filter(name), Some(level), "{name}");
        }
        assert_eq!(level_filter("WARN"), None);
        assert_eq!(level_filter(""), None);
    }

    #[test]
    fn unknown_names_fall_back_to_info() {
        assert_eq!(level_or_info("LogLevel", "verbose"), LevelFilter::INFO);
        assert_eq!(level_or_info("TraceLevel", "DEBUG"), LevelFilter::DEBUG);
    }

    #[test]
    fn rust_log_replaces_the_level_when_it_is_usable() {
        assert_eq!(stream_filter(LevelFilter::WARN, None).hint(), Some(LevelFilter::WARN));
        assert_eq!(stream_filter(LevelFilter::OFF, None).hint(), Some(LevelFilter::OFF));
        assert_eq!(
            stream_filter(LevelFilter::WARN, Some("debug")).hint(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            stream_filter(LevelFilter::WARN, Some(" ")).hint(),
            Some(LevelFilter::WARN)
        );
        assert_eq!(
            stream_filter(LevelFilter::WARN, Some("=[bogus")).hint(),
            Some(LevelFilter::WARN)
        );
    }
}
