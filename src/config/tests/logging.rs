//! `LogTraceDestination` parsing (spec config.md §4.8) and the limits of log files.

use super::*;

fn destinations(value: &str) -> LogDestinations {
    ok("", &[("LOG_TRACE_DESTINATION", value)]).log_trace_destination
}

#[test]
fn file_is_the_default_destination() {
    let chosen = ok("", &[]).log_trace_destination;
    assert_eq!(
        chosen,
        LogDestinations {
            file: true,
            ..LogDestinations::default()
        }
    );
}

#[test]
fn destinations_are_a_case_insensitive_comma_separated_list() {
    assert_eq!(
        destinations("STDOUT,Syslog"),
        LogDestinations {
            stdout: true,
            syslog: true,
            ..LogDestinations::default()
        }
    );
    assert_eq!(
        destinations("file,stdout,syslog,glog"),
        LogDestinations {
            file: true,
            stdout: true,
            syslog: true,
            glog: true
        }
    );
    assert_eq!(
        ok("LogTraceDestination glog\n", &[]).log_trace_destination,
        LogDestinations {
            glog: true,
            ..LogDestinations::default()
        }
    );
}

#[test]
fn unknown_items_are_ignored_while_one_is_known() {
    assert_eq!(
        destinations("console,stdout,,kafka"),
        LogDestinations {
            stdout: true,
            ..LogDestinations::default()
        }
    );
}

#[test]
fn nothing_known_is_refused_naming_the_key_and_the_value() {
    for value in ["console", "", ",", "files"] {
        let message = invalid("", &[("LOG_TRACE_DESTINATION", value)]);
        assert!(message.contains("LogTraceDestination"), "{message}");
        assert!(message.contains(&format!("'{value}'")), "{message}");
    }
    let message = invalid("LogTraceDestination kafka\n", &[]);
    assert!(message.contains("'kafka'"), "{message}");
}

#[test]
fn file_logging_needs_a_positive_size_and_a_non_negative_count() {
    assert_eq!(
        invalid("", &[("LOG_TRACE_FILE_SIZE_KB", "0")]),
        "LogTraceFileSizeKB must be greater than zero (got 0)"
    );
    assert_eq!(
        invalid("MaxCompressedlLogTraceFilesNumber -1\n", &[]),
        "MaxCompressedlLogTraceFilesNumber must be zero or more (got -1)"
    );
    assert_eq!(
        ok("MaxCompressedlLogTraceFilesNumber 0\n", &[]).max_compressed_log_trace_files_number,
        0
    );
    // Unused without file logging, so not checked, as in the original.
    let console = [("LOG_TRACE_DESTINATION", "stdout"), ("LOG_TRACE_FILE_SIZE_KB", "0")];
    assert_eq!(ok("", &console).log_trace_file_size_kb, 0);
}

#[test]
fn file_settings_have_the_original_defaults() {
    let config = ok("", &[]);
    assert_eq!(config.log_root_path, PathBuf::from("/var/edge-sync-service/log"));
    assert_eq!(config.trace_root_path, PathBuf::from("/var/edge-sync-service/trace"));
    assert_eq!(config.log_file_name, "sync-service");
    assert_eq!(config.trace_file_name, "sync-service");
    assert_eq!(config.log_trace_file_size_kb, 20_000);
    assert_eq!(config.max_compressed_log_trace_files_number, 50);
}
