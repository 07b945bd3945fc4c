//! The `file` destination: `{LogRootPath}/{LogFileName}.log` for the log and
//! `{TraceRootPath}/{TraceFileName}.log` for the trace, rotated by size into gzip files
//! (`….log.1.gz` newest, at most `MaxCompressedlLogTraceFilesNumber` kept), as the original
//! does. Lines are handed to a writer thread (see `in_background`), so logging never waits
//! for the disk; when that thread falls behind, new lines are dropped rather than slowing the
//! node down.
//!
//! The original checks sizes every `LogTraceMaintenanceInterval` seconds; here every write
//! checks, so a file never grows past the limit by more than one line.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::filter::LevelFilter;

use super::format::Stream;
use super::LoggingError;
use crate::config::Config;

/// `LogTraceFileSizeKB`'s default, the only value the original adapts to the file system.
const DEFAULT_SIZE_KIB: i64 = 20_000;

/// One log file to write: which stream, where, and at what level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileTarget {
    /// The stream whose prefix the lines carry (the log's when both share the file).
    pub(super) stream: Stream,
    /// The folder, made absolute once it exists.
    pub(super) folder: PathBuf,
    /// `{FileName}.log` inside the folder.
    pub(super) path: PathBuf,
    /// The stream's level.
    pub(super) level: LevelFilter,
}

/// An opened log file: the writer handing lines to its thread, and the guard that flushes
/// them when dropped.
pub(super) struct OpenedFile {
    pub(super) target: FileTarget,
    pub(super) writer: NonBlocking,
    pub(super) guard: WorkerGuard,
}

/// Creates the folders (mode 0755), then opens the log and trace files for appending; one
/// file when both streams name the same one.
pub(super) fn open(
    config: &Config,
    log_level: LevelFilter,
    trace_level: LevelFilter,
) -> Result<Vec<OpenedFile>, LoggingError> {
    let log = target(Stream::Log, &config.log_root_path, &config.log_file_name, log_level)?;
    let trace = target(
        Stream::Trace,
        &config.trace_root_path,
        &config.trace_file_name,
        trace_level,
    )?;
    merge_same_file(log, trace)
        .into_iter()
        .map(|target| open_target(target, config))
        .collect()
}

/// Which stream's settings name a file, for error messages.
fn keys(stream: Stream) -> (&'static str, &'static str, &'static str) {
    match stream {
        Stream::Log => ("log", "LogRootPath", "LogFileName"),
        Stream::Trace => ("trace", "TraceRootPath", "TraceFileName"),
    }
}

fn target(stream: Stream, folder: &Path, file_name: &str, level: LevelFilter) -> Result<FileTarget, LoggingError> {
    let (name, root_key, _) = keys(stream);
    let failed = |e: io::Error| {
        LoggingError::new(
            name,
            format!("cannot create the folder {} ({root_key}): {e}", folder.display()),
        )
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(folder)
        .map_err(failed)?;
    // Absolute and without symbolic links, so that two spellings of one file are seen as one.
    let folder = fs::canonicalize(folder).map_err(failed)?;
    let path = folder.join(format!("{file_name}.log"));
    Ok(FileTarget {
        stream,
        folder,
        path,
        level,
    })
}

/// Two streams naming one file get one writer at the more verbose level: two rotators on
/// one file would rename it under each other.
pub(super) fn merge_same_file(log: FileTarget, trace: FileTarget) -> Vec<FileTarget> {
    if log.path == trace.path {
        let level = log.level.max(trace.level);
        vec![FileTarget { level, ..log }]
    } else {
        vec![log, trace]
    }
}

fn open_target(target: FileTarget, config: &Config) -> Result<OpenedFile, LoggingError> {
    let (name, root_key, file_key) = keys(target.stream);
    let path = &target.path;
    // file-rotate panics on a file it cannot open or a folder it cannot list; check both
    // here so that start-up fails with a message instead.
    let cannot = |what: &str, e: io::Error| {
        LoggingError::new(
            name,
            format!("cannot {what} {} ({root_key}, {file_key}): {e}", path.display()),
        )
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| cannot("open", e))?;
    fs::read_dir(&target.folder).map_err(|e| cannot("list the folder of", e))?;

    let size_kib = rotation_size_kib(config.log_trace_file_size_kb, &target.folder);
    let kept = usize::try_from(config.max_compressed_log_trace_files_number).unwrap_or(0);
    let limit = usize::try_from(size_kib.saturating_mul(1024))
        .unwrap_or(usize::MAX)
        .max(1);
    let rotating = FileRotate::new(
        path,
        AppendCount::new(kept),
        ContentLimit::BytesSurpassed(limit),
        // Every rotated file is compressed at once, as the original's `….log.N.gz`.
        Compression::OnRotate(0),
        None,
    );
    let (writer, guard) = super::in_background(rotating, &format!("{name}-file"));
    Ok(OpenedFile { target, writer, guard })
}

/// The rotation size for `LogTraceFileSizeKB` = `configured`: left at its default, it is
/// capped at 1 % of the file system holding `folder` (20 KiB on one under 2000 KiB), as
/// the original does; any other value is used as given.
fn rotation_size_kib(configured: i64, folder: &Path) -> i64 {
    if configured != DEFAULT_SIZE_KIB {
        return configured;
    }
    match rustix::fs::statvfs(folder) {
        Ok(fs) => {
            let total_kib = fs.f_blocks.saturating_mul(fs.f_frsize) / 1024;
            capped_default_size_kib(configured, i64::try_from(total_kib).unwrap_or(i64::MAX))
        }
        Err(_) => configured,
    }
}

/// The original's cap on the default size, for a file system of `total_kib`.
fn capped_default_size_kib(size_kib: i64, total_kib: i64) -> i64 {
    if size_kib <= total_kib / 100 {
        size_kib
    } else if total_kib > 2000 {
        total_kib / 100
    } else {
        20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(stream: Stream, path: &str, level: LevelFilter) -> FileTarget {
        let path = PathBuf::from(path);
        FileTarget {
            stream,
            folder: path.parent().unwrap().to_path_buf(),
            path,
            level,
        }
    }

    #[test]
    fn one_file_named_twice_is_written_once_at_the_more_verbose_level() {
        let log = target(Stream::Log, "/l/sync-service.log", LevelFilter::INFO);
        let trace = target(Stream::Trace, "/l/sync-service.log", LevelFilter::TRACE);
        assert_eq!(
            merge_same_file(log.clone(), trace),
            vec![FileTarget {
                level: LevelFilter::TRACE,
                ..log.clone()
            }]
        );
        let quiet_trace = target(Stream::Trace, "/l/sync-service.log", LevelFilter::OFF);
        assert_eq!(merge_same_file(log.clone(), quiet_trace), vec![log]);
    }

    #[test]
    fn two_files_keep_their_own_levels() {
        let log = target(Stream::Log, "/l/sync-service.log", LevelFilter::INFO);
        let trace = target(Stream::Trace, "/t/sync-service.log", LevelFilter::TRACE);
        assert_eq!(merge_same_file(log.clone(), trace.clone()), vec![log, trace]);
    }

    #[test]
    fn the_default_size_is_capped_at_one_percent_of_the_file_system() {
        // 100 GiB: 1 % is far above the default.
        assert_eq!(capped_default_size_kib(20_000, 100 * 1024 * 1024), 20_000);
        // 1 GiB: 1 % of it.
        assert_eq!(capped_default_size_kib(20_000, 1024 * 1024), 10_485);
        // Tiny file systems get 20 KiB.
        assert_eq!(capped_default_size_kib(20_000, 1500), 20);
    }

    #[test]
    fn only_the_default_size_is_adapted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(rotation_size_kib(1, dir.path()), 1);
        assert_eq!(rotation_size_kib(30_000, dir.path()), 30_000);
        let adapted = rotation_size_kib(DEFAULT_SIZE_KIB, dir.path());
        assert!((20..=DEFAULT_SIZE_KIB).contains(&adapted), "{adapted}");
    }

    #[test]
    fn folders_are_created_and_named_when_they_cannot_be() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let made = super::target(Stream::Trace, &nested, "x", LevelFilter::INFO).unwrap();
        assert!(nested.is_dir());
        assert_eq!(made.path, fs::canonicalize(&nested).unwrap().join("x.log"));

        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let under_a_file = blocker.join("log");
        let error = super::target(Stream::Log, &under_a_file, "x", LevelFilter::INFO).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("Failed to initialize the log. Error: "),
            "{message}"
        );
        assert!(message.contains(&under_a_file.display().to_string()), "{message}");
        assert!(message.contains("LogRootPath"), "{message}");
    }
}
