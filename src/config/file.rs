//! Reading the `sync.conf` properties file (spec config.md §3): one `key value` per line,
//! whitespace runs joined, `#` comments only in column one, duplicates rejected. This
//! file knows nothing about which keys exist or what their values mean.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;

use super::ConfigError;

/// Longest accepted line, in bytes without the line terminator (the original's 64 KiB
/// scanner buffer).
pub(super) const MAX_LINE_BYTES: usize = 64 * 1024;

/// The key/value pairs of one configuration file.
#[derive(Debug, Default)]
pub(super) struct FileProps {
    /// Key → value, values already joined.
    pub(super) values: HashMap<String, String>,
    /// Keys in the order they appear, so unknown keys are reported in file order.
    pub(super) order: Vec<String>,
    /// The file name as given, for error messages.
    pub(super) name: String,
    /// True when the file did not exist and was treated as empty.
    pub(super) missing: bool,
}

/// Reads and parses `path`. A missing file yields empty properties with `missing` set; any
/// other read failure is a load error.
pub(super) fn read(path: &Path) -> Result<FileProps, ConfigError> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| {
                ConfigError::Load(format!(
                    "The file '{name}' is not valid UTF-8 text (byte {})",
                    e.utf8_error().valid_up_to()
                ))
            })?;
            parse(&text, &name)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(FileProps {
            name,
            missing: true,
            ..FileProps::default()
        }),
        Err(e) => Err(ConfigError::Load(format!("Failed to read the file '{name}': {e}"))),
    }
}

/// Parses the text of a configuration file named `name` (used only in messages).
pub(super) fn parse(text: &str, name: &str) -> Result<FileProps, ConfigError> {
    let mut props = FileProps {
        name: name.to_string(),
        ..FileProps::default()
    };
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.len() > MAX_LINE_BYTES {
            return Err(ConfigError::Load(format!(
                "Line {} of the file '{name}' is longer than {MAX_LINE_BYTES} bytes",
                index + 1
            )));
        }
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else {
            continue; // empty or blank line
        };
        let value: String = fields.collect();
        if props.values.contains_key(key) {
            return Err(ConfigError::Load(format!(
                "The property '{key}' is found twice in the file '{name}'"
            )));
        }
        props.order.push(key.to_string());
        props.values.insert(key.to_string(), value);
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(props: &'a FileProps, key: &str) -> Option<&'a str> {
        props.values.get(key).map(String::as_str)
    }

    #[test]
    fn joins_whitespace_runs_without_separator() {
        let props = parse("AllowedKeyExtensions .pem, .key\nX a  b\tc\n", "f").unwrap();
        assert_eq!(value(&props, "AllowedKeyExtensions"), Some(".pem,.key"));
        assert_eq!(value(&props, "X"), Some("abc"));
    }

    #[test]
    fn comment_only_in_column_one() {
        let props = parse("# NodeType ESS\nLogLevel INFO #x\n", "f").unwrap();
        assert_eq!(value(&props, "NodeType"), None);
        assert_eq!(value(&props, "LogLevel"), Some("INFO#x"));
        assert_eq!(props.order, vec!["LogLevel"]);
    }

    #[test]
    fn indented_comment_is_a_key_and_two_of_them_collide() {
        let props = parse("  # one\n", "f").unwrap();
        assert_eq!(value(&props, "#"), Some("one"));
        let err = parse("  # one\n  # two\n", "sync.conf").unwrap_err();
        assert_eq!(
            err.to_string(),
            "The property '#' is found twice in the file 'sync.conf'"
        );
    }

    #[test]
    fn key_alone_sets_empty_value() {
        let props = parse("DestinationType\r\nOrgID   \n", "f").unwrap();
        assert_eq!(value(&props, "DestinationType"), Some(""));
        assert_eq!(value(&props, "OrgID"), Some(""));
    }

    #[test]
    fn blank_lines_and_crlf_are_skipped() {
        let props = parse("\n   \r\n\t\nA 1\r\n", "f").unwrap();
        assert_eq!(props.values.len(), 1);
        assert_eq!(value(&props, "A"), Some("1"));
    }

    #[test]
    fn duplicate_key_is_a_load_error_naming_key_and_file() {
        let err = parse("OrgID a\nOrgID b\n", "/etc/sync.conf").unwrap_err();
        assert!(matches!(err, ConfigError::Load(_)));
        assert_eq!(
            err.to_string(),
            "The property 'OrgID' is found twice in the file '/etc/sync.conf'"
        );
    }

    #[test]
    fn keys_are_case_sensitive() {
        let props = parse("OrgID a\norgid b\n", "f").unwrap();
        assert_eq!(props.values.len(), 2);
    }

    #[test]
    fn overlong_line_is_a_load_error() {
        let ok = format!("K {}", "v".repeat(MAX_LINE_BYTES - 2));
        assert!(parse(&ok, "f").is_ok());
        let long = format!("K {}", "v".repeat(MAX_LINE_BYTES));
        let err = parse(&long, "f").unwrap_err();
        assert!(matches!(err, ConfigError::Load(_)));
        assert!(err.to_string().contains("Line 1"));
    }

    #[test]
    fn missing_file_is_empty_and_flagged() {
        let path = std::env::temp_dir().join("cfg-test-surely-missing-4f1c/sync.conf");
        let props = read(&path).unwrap();
        assert!(props.missing);
        assert!(props.values.is_empty());
    }

    #[test]
    fn unreadable_path_is_a_load_error() {
        // A directory exists but cannot be read as a file.
        let err = read(&std::env::temp_dir()).unwrap_err();
        assert!(matches!(err, ConfigError::Load(_)));
        assert_eq!(err.exit_code(), 99);
    }

    #[test]
    fn existing_file_is_read() {
        let dir = std::env::temp_dir().join(format!("cfg-test-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sync.conf");
        std::fs::write(&path, "NodeType ESS\n").unwrap();
        let props = read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!props.missing);
        assert_eq!(value(&props, "NodeType"), Some("ESS"));
    }
}
