//! Lexical path helpers for validation (spec config.md §5 steps 1, 19 and 21): making paths
//! absolute, cleaning `.`/`..`, containment and extension checks. No file system access:
//! symlinks are not resolved here (the store re-checks data paths when it opens them).

use std::path::{Component, Path, PathBuf};

/// Removes `.` components and resolves `..` against the preceding component, like Go's
/// `filepath.Clean`. `..` at the root stays at the root; leading `..` of a relative path
/// are kept. Also drops any trailing slash.
pub(super) fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(component),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// `path` made absolute against `cwd` (when relative) and cleaned.
pub(super) fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    clean(&cwd.join(path))
}

/// True when the cleaned `path` is `dir` or lies below it (both cleaned, same anchoring).
pub(super) fn is_within(path: &Path, dir: &Path) -> bool {
    clean(path).starts_with(clean(dir))
}

/// Checks an absolute certificate or key path: no NUL byte and an allowed extension
/// (case-insensitive; entries may be given with or without the leading dot). Returns the
/// detail text of §5 step 21 on failure.
pub(super) fn check_file_path(value: &str, allowed_extensions: &[String]) -> Result<(), String> {
    if value.contains('\0') {
        return Err("invalid file path: path contains null byte".to_string());
    }
    let extension = Path::new(value)
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    let allowed = allowed_extensions.iter().any(|entry| {
        let entry = entry.to_lowercase();
        let entry = if entry.starts_with('.') {
            entry
        } else {
            format!(".{entry}")
        };
        entry == extension
    });
    if allowed {
        Ok(())
    } else {
        Err(format!("invalid file path: file extension {extension} not allowed"))
    }
}

/// The detail text for a path that escapes its directory.
pub(super) fn traversal_detail(path: &Path, dir: &Path) -> String {
    format!(
        "invalid file path: path traversal detected: {} is outside allowed directory {}",
        path.display(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_resolves_dots_and_trailing_slash() {
        assert_eq!(clean(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(clean(Path::new("../a/..")), PathBuf::from(".."));
        assert_eq!(clean(Path::new("./")), PathBuf::from("."));
        assert_eq!(clean(Path::new("/")), PathBuf::from("/"));
    }

    #[test]
    fn absolute_joins_relative_paths_only() {
        let cwd = Path::new("/srv/dir");
        assert_eq!(absolute(Path::new("./x"), cwd), PathBuf::from("/srv/dir/x"));
        assert_eq!(absolute(Path::new("../x"), cwd), PathBuf::from("/srv/x"));
        assert_eq!(absolute(Path::new("/abs/y/"), cwd), PathBuf::from("/abs/y"));
    }

    #[test]
    fn within_compares_whole_components() {
        let root = Path::new("/var/persist");
        assert!(is_within(Path::new("/var/persist/sock"), root));
        assert!(is_within(Path::new("/var/persist"), root));
        assert!(!is_within(Path::new("/var/persist2/sock"), root));
        assert!(!is_within(Path::new("/var/persist/../sock"), root));
    }

    #[test]
    fn extension_check_is_case_insensitive_and_rejects_nul() {
        let allowed = vec![".pem".to_string(), "crt".to_string()];
        assert!(check_file_path("/etc/a.PEM", &allowed).is_ok());
        assert!(check_file_path("/etc/a.crt", &allowed).is_ok());
        assert_eq!(
            check_file_path("/etc/a.txt", &allowed).unwrap_err(),
            "invalid file path: file extension .txt not allowed"
        );
        assert_eq!(
            check_file_path("/etc/a\0.pem", &allowed).unwrap_err(),
            "invalid file path: path contains null byte"
        );
        assert!(check_file_path("/etc/noext", &allowed).is_err());
    }
}
