//! Confinement of data URIs (spec: lifecycle.md §10, security.md "Data URIs", config.md
//! `AllowedDataFileExtensions`): which local file a `sourceDataUri` or `destinationDataUri`
//! may name. A URI must be `file:` with an empty host and an absolute path without NUL or
//! `..`; the file (symlinks resolved) must lie in one of the data URI roots and outside the
//! service's own storage, and carry an allowed extension when a list is configured.
//!
//! The checks run where a URI is accepted (PUT) and again each time its file is used, since
//! the file system may have changed in between. Opening re-checks that the file descriptor
//! obtained is the very file found inside the roots, so a path swapped for a symlink between
//! the check and the open is refused rather than followed.

use crate::model::validate::file_uri_path;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Which metadata field a URI came from; it names the field in every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Source,
    Destination,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Source => "source",
            Self::Destination => "destination",
        })
    }
}

/// Where data URI files may be.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Directories the files must lie in (after resolving symlinks).
    pub roots: Vec<PathBuf>,
    /// Directories inside the roots that are off limits: the service's databases and data.
    pub reserved: Vec<PathBuf>,
    /// Allowed extensions (with or without the dot, any case); empty allows all.
    pub extensions: Vec<String>,
}

/// Why a data URI cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataUriError {
    /// The URI or the file it resolves to breaks a rule.
    #[error("Invalid {field} data URI: {reason}")]
    Refused { field: Field, reason: String },
    /// The file (or, for a target, its directory) does not exist.
    #[error("Invalid {field} data URI: {} does not exist", path.display())]
    Missing { field: Field, path: PathBuf },
}

impl DataUriError {
    fn refused(field: Field, reason: impl Into<String>) -> Self {
        Self::Refused {
            field,
            reason: reason.into(),
        }
    }
}

/// The path a URI names, checked without touching the file system: `file:` scheme, empty
/// host, absolute path, no NUL byte, no `..` component, allowed extension.
pub fn checked_path(uri: &str, field: Field, extensions: &[String]) -> Result<PathBuf, DataUriError> {
    let path = file_uri_path(uri).ok_or_else(|| {
        DataUriError::refused(
            field,
            format!("{uri} is not a file URI with an empty host and an absolute path"),
        )
    })?;
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(DataUriError::refused(field, "the path contains a NUL byte"));
    }
    if !path.is_absolute() {
        return Err(DataUriError::refused(
            field,
            format!("{} is not an absolute path", path.display()),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(DataUriError::refused(field, "path traversal ('..') is not allowed"));
    }
    check_extension(&path, field, extensions)?;
    Ok(path)
}

/// The existing file a URI names, with symlinks resolved and confined to the roots.
pub fn confined_file(uri: &str, field: Field, rules: &Rules) -> Result<PathBuf, DataUriError> {
    let path = checked_path(uri, field, &rules.extensions)?;
    let canonical = canonicalize(&path, field)?;
    confine(&path, &canonical, field, rules)?;
    // A symlink named `x.bin` must not hand out `y.exe`.
    check_extension(&canonical, field, &rules.extensions)?;
    if !canonical.is_file() {
        return Err(DataUriError::refused(
            field,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(canonical)
}

/// Opens the existing file a URI names for reading, confined to the roots. The open file is
/// checked to be the file found by the confinement (same device and inode), so a path
/// component replaced by a symlink in between cannot redirect the read.
pub fn open_confined(uri: &str, field: Field, rules: &Rules) -> Result<(File, Metadata), DataUriError> {
    let canonical = confined_file(uri, field, rules)?;
    let file = File::open(&canonical).map_err(|e| io_refusal(field, &canonical, &e))?;
    let opened = file.metadata().map_err(|e| io_refusal(field, &canonical, &e))?;
    let still_there = std::fs::symlink_metadata(&canonical).is_ok_and(|m| same_file(&m, &opened));
    if !still_there {
        return Err(DataUriError::refused(
            field,
            format!("{} changed while it was opened", canonical.display()),
        ));
    }
    Ok((file, opened))
}

/// A file to be written (or removed) in place of a URI's file: its directory resolved and
/// confined; the file itself may not exist yet.
#[derive(Debug, Clone)]
pub struct Target {
    /// The directory, canonical.
    pub dir: PathBuf,
    name: OsString,
    dir_id: (u64, u64),
}

impl Target {
    /// The file the URI names.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// `{path}.tmp`, where the file is written before it is renamed into place.
    pub fn tmp_path(&self) -> PathBuf {
        let mut name = self.name.clone();
        name.push(".tmp");
        self.dir.join(name)
    }

    /// True while the directory confined earlier is still the one at its canonical path (no
    /// component was swapped for a symlink since): checked right before the final rename.
    pub fn still_in_place(&self) -> bool {
        std::fs::canonicalize(&self.dir).is_ok_and(|now| now == self.dir)
            && std::fs::metadata(&self.dir).is_ok_and(|m| (m.dev(), m.ino()) == self.dir_id)
    }
}

/// The target a URI names: the file name must be allowed and the directory (symlinks
/// resolved) must exist inside the roots. A symlink at the file name itself is harmless for
/// writes (the rename replaces the link, never its target) and is refused on reads.
pub fn confined_target(uri: &str, field: Field, rules: &Rules) -> Result<Target, DataUriError> {
    let path = checked_path(uri, field, &rules.extensions)?;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(DataUriError::refused(
            field,
            format!("{} does not name a file", path.display()),
        ));
    };
    let dir = canonicalize(parent, field)?;
    let target_lexical = parent.join(name);
    confine(&target_lexical, &dir.join(name), field, rules)?;
    let meta = std::fs::metadata(&dir).map_err(|e| io_refusal(field, &dir, &e))?;
    if !meta.is_dir() {
        return Err(DataUriError::refused(
            field,
            format!("{} is not a directory", parent.display()),
        ));
    }
    Ok(Target {
        dir,
        name: name.to_os_string(),
        dir_id: (meta.dev(), meta.ino()),
    })
}

/// True when two metadata describe the same file.
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn canonicalize(path: &Path, field: Field) -> Result<PathBuf, DataUriError> {
    std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataUriError::Missing {
            field,
            path: path.to_path_buf(),
        },
        _ => io_refusal(field, path, &e),
    })
}

fn io_refusal(field: Field, path: &Path, error: &std::io::Error) -> DataUriError {
    DataUriError::refused(field, format!("cannot resolve {}: {error}", path.display()))
}

/// Requires `canonical` (what `lexical` resolves to) to be inside a root and outside the
/// reserved directories. A lexical path inside a root that resolves elsewhere went through a
/// symlink, which gets its own message.
fn confine(lexical: &Path, canonical: &Path, field: Field, rules: &Rules) -> Result<(), DataUriError> {
    let roots: Vec<(PathBuf, PathBuf)> = rules
        .roots
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok().map(|c| (root.clone(), c)))
        .collect();
    if !roots.iter().any(|(_, root)| canonical.starts_with(root)) {
        let through_symlink = roots
            .iter()
            .any(|(raw, root)| lexical.starts_with(raw) || lexical.starts_with(root));
        let reason = if through_symlink {
            "symlink escapes the allowed directories".to_string()
        } else {
            format!("{} is outside the allowed data directories", lexical.display())
        };
        return Err(DataUriError::refused(field, reason));
    }
    let reserved = rules
        .reserved
        .iter()
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .any(|dir| canonical.starts_with(dir));
    if reserved {
        return Err(DataUriError::refused(
            field,
            format!("{} is inside the service's own storage", lexical.display()),
        ));
    }
    Ok(())
}

fn check_extension(path: &Path, field: Field, extensions: &[String]) -> Result<(), DataUriError> {
    if extensions.is_empty() {
        return Ok(());
    }
    let extension = path
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy().to_lowercase()));
    let allowed = extension.as_deref().is_some_and(|extension| {
        extensions
            .iter()
            .any(|entry| entry.trim_start_matches('.').eq_ignore_ascii_case(&extension[1..]))
    });
    if allowed {
        return Ok(());
    }
    Err(DataUriError::refused(
        field,
        match extension {
            Some(extension) => format!("file extension {extension} is not allowed"),
            None => "a file without an extension is not allowed".to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        reserved: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        let reserved = root.join("sync");
        for d in [&root, &outside, &reserved, &root.join("sub")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("sub/data.bin"), b"inside").unwrap();
        std::fs::write(outside.join("secret.bin"), b"outside").unwrap();
        std::fs::write(reserved.join("db.bin"), b"state").unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
            reserved,
        }
    }

    /// The fixture's root, with its `sync` directory reserved.
    fn rules(f: &Fixture, extensions: &[&str]) -> Rules {
        Rules {
            roots: vec![f.root.clone()],
            reserved: vec![f.reserved.clone()],
            extensions: extensions.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn uri(path: &Path) -> String {
        format!("file://{}", path.display())
    }

    fn message<T: std::fmt::Debug>(result: Result<T, DataUriError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_file_inside_a_root_is_accepted_and_resolved() {
        let f = fixture();
        let rules = &rules(&f, &[]);
        let path = confined_file(&uri(&f.root.join("sub/data.bin")), Field::Source, rules).unwrap();
        assert_eq!(path, std::fs::canonicalize(f.root.join("sub/data.bin")).unwrap());
        let (_, meta) = open_confined(&uri(&f.root.join("sub/data.bin")), Field::Source, rules).unwrap();
        assert_eq!(meta.len(), 6);
        // The other spellings of a file URI and percent-escapes work too.
        let spelled = format!("FILE:{}", f.root.join("sub/data%2Ebin").display());
        assert!(confined_file(&spelled, Field::Source, rules).is_ok());
    }

    #[test]
    fn syntax_refusals_have_their_own_messages() {
        let none: &[String] = &[];
        let cases = [
            (
                "http:///x/y.bin",
                "Invalid source data URI: http:///x/y.bin is not a file URI",
            ),
            ("file://host/x/y.bin", "is not a file URI with an empty host"),
            ("file:relative.bin", "is not a file URI"),
            ("file:///a/../etc/passwd", "path traversal ('..') is not allowed"),
            ("file:///a/%2e%2e/etc/passwd", "path traversal ('..') is not allowed"),
            ("file:///a/x%00.bin", "the path contains a NUL byte"),
        ];
        for (uri, expected) in cases {
            let text = message(checked_path(uri, Field::Source, none));
            assert!(text.contains(expected), "{uri}: {text}");
            assert!(text.starts_with("Invalid source data URI: "), "{uri}: {text}");
        }
        let text = message(checked_path("file:///a/../b", Field::Destination, none));
        assert_eq!(
            text,
            "Invalid destination data URI: path traversal ('..') is not allowed"
        );
    }

    #[test]
    fn extensions_are_compared_case_insensitively() {
        let allowed = [".bin".to_string(), "TXT".to_string()];
        assert!(checked_path("file:///a/x.BIN", Field::Source, &allowed).is_ok());
        assert!(checked_path("file:///a/x.txt", Field::Source, &allowed).is_ok());
        assert_eq!(
            message(checked_path("file:///a/x.exe", Field::Source, &allowed)),
            "Invalid source data URI: file extension .exe is not allowed"
        );
        assert_eq!(
            message(checked_path("file:///a/x", Field::Source, &allowed)),
            "Invalid source data URI: a file without an extension is not allowed"
        );
        assert!(checked_path("file:///a/x.exe", Field::Source, &[]).is_ok());
    }

    #[test]
    fn files_outside_the_roots_or_reached_through_symlinks_are_refused() {
        let f = fixture();
        let rules = &rules(&f, &[]);
        let secret = f.outside.join("secret.bin");
        assert_eq!(
            message(confined_file(&uri(&secret), Field::Source, rules)),
            format!(
                "Invalid source data URI: {} is outside the allowed data directories",
                secret.display()
            )
        );
        std::os::unix::fs::symlink(&secret, f.root.join("link.bin")).unwrap();
        assert_eq!(
            message(confined_file(&uri(&f.root.join("link.bin")), Field::Source, rules)),
            "Invalid source data URI: symlink escapes the allowed directories"
        );
        std::os::unix::fs::symlink(&f.outside, f.root.join("linkdir")).unwrap();
        let via_dir = f.root.join("linkdir/secret.bin");
        assert!(message(confined_file(&uri(&via_dir), Field::Source, rules)).contains("symlink escapes"));
        assert!(message(open_confined(&uri(&via_dir), Field::Source, rules)).contains("symlink escapes"));
        assert!(message(confined_target(&uri(&via_dir), Field::Destination, rules)).contains("symlink escapes"));
        assert!(
            message(confined_file(&uri(&f.reserved.join("db.bin")), Field::Source, rules))
                .contains("is inside the service's own storage")
        );
        assert!(matches!(
            confined_file(&uri(&f.root.join("absent.bin")), Field::Source, rules),
            Err(DataUriError::Missing { .. })
        ));
        assert!(message(confined_file(&uri(&f.root.join("sub")), Field::Source, rules)).contains("not a regular file"));
    }

    #[test]
    fn a_symlink_with_an_allowed_name_must_not_reveal_another_extension() {
        let f = fixture();
        std::fs::write(f.root.join("tool.exe"), b"x").unwrap();
        std::os::unix::fs::symlink(f.root.join("tool.exe"), f.root.join("tool.bin")).unwrap();
        let rules = &rules(&f, &[".bin"]);
        assert!(
            message(confined_file(&uri(&f.root.join("tool.bin")), Field::Source, rules))
                .contains("file extension .exe is not allowed")
        );
    }

    #[test]
    fn targets_need_an_existing_confined_directory() {
        let f = fixture();
        let rules = &rules(&f, &[]);
        let target = confined_target(&uri(&f.root.join("sub/new.bin")), Field::Destination, rules).unwrap();
        let canonical_dir = std::fs::canonicalize(f.root.join("sub")).unwrap();
        assert_eq!(target.path(), canonical_dir.join("new.bin"));
        assert_eq!(target.tmp_path(), canonical_dir.join("new.bin.tmp"));
        assert!(target.still_in_place());
        assert!(matches!(
            confined_target(&uri(&f.root.join("nodir/new.bin")), Field::Destination, rules),
            Err(DataUriError::Missing { .. })
        ));
        assert!(message(confined_target(
            &uri(&f.outside.join("new.bin")),
            Field::Destination,
            rules
        ))
        .contains("outside the allowed data directories"));
        // The directory swapped for a symlink after the check is noticed before the rename.
        std::fs::rename(f.root.join("sub"), f.root.join("moved")).unwrap();
        std::os::unix::fs::symlink(&f.outside, f.root.join("sub")).unwrap();
        assert!(!target.still_in_place());
    }
}
