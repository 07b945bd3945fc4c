//! Looking up one configuration field in the environment and the file, in the order of
//! spec config.md §2, and turning the raw text into a typed value (§3.1, with the stricter
//! boolean and integer rules of our reimplementation). Errors here are load errors
//! (exit 99). This file knows how values are spelled, not what they mean.

use std::collections::HashSet;
use std::fmt;

use super::file::FileProps;
use super::ConfigError;

/// The names under which one field may be given.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    /// Field name: file key and first environment variable.
    pub(super) name: &'static str,
    /// Tagged environment variable (second).
    pub(super) env: &'static str,
    /// Alternative file key of the original (`DestinationId`, `OrgId`, `MQTTClientId`).
    pub(super) file_alias: Option<&'static str>,
    /// Name documented by the original's sample file but ignored by it (config.md §10);
    /// accepted as environment variable and file key, below every real name.
    pub(super) legacy_name: Option<&'static str>,
    /// Environment variable documented by the original but ignored by it (config.md §10).
    pub(super) legacy_env: Option<&'static str>,
}

impl Key {
    /// A field known by its field name and its tagged environment variable.
    pub(super) const fn new(name: &'static str, env: &'static str) -> Key {
        Key {
            name,
            env,
            file_alias: None,
            legacy_name: None,
            legacy_env: None,
        }
    }

    /// Adds the original's alternative file key.
    pub(super) const fn file_alias(mut self, alias: &'static str) -> Key {
        self.file_alias = Some(alias);
        self
    }

    /// Adds a documented-but-ignored key name (also usable as environment variable).
    pub(super) const fn legacy_name(mut self, name: &'static str) -> Key {
        self.legacy_name = Some(name);
        self
    }

    /// Adds a documented-but-ignored environment variable.
    pub(super) const fn legacy_env(mut self, env: &'static str) -> Key {
        self.legacy_env = Some(env);
        self
    }
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    Env(&'static str),
    File { key: &'static str, file: &'a str },
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::File { key, file } => write!(f, "key {key} in the file '{file}'"),
        }
    }
}

/// The environment and the parsed file, queried field by field. Remembers which file keys
/// were consulted so the rest can be reported as unknown.
pub(super) struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: &'a FileProps,
    consulted: HashSet<&'static str>,
}

impl<'a> Sources<'a> {
    /// Queries `env` first and `file` second.
    pub(super) fn new(env: &'a dyn Fn(&str) -> Option<String>, file: &'a FileProps) -> Self {
        Sources {
            env,
            file,
            consulted: HashSet::new(),
        }
    }

    /// The raw value with the highest priority, if any source has one. A set-but-empty
    /// environment variable counts as present.
    fn lookup(&mut self, key: &Key) -> Option<(String, Origin<'a>)> {
        let file_keys = [Some(key.name), key.file_alias, key.legacy_name];
        self.consulted.extend(file_keys.iter().flatten());

        let env_names = [Some(key.name), Some(key.env)];
        let file_names = [Some(key.name), key.file_alias];
        let legacy_envs = [key.legacy_name, key.legacy_env];
        let legacy_files = [key.legacy_name];

        self.lookup_env(&env_names)
            .or_else(|| self.lookup_file(&file_names))
            .or_else(|| self.lookup_env(&legacy_envs))
            .or_else(|| self.lookup_file(&legacy_files))
    }

    fn lookup_env(&self, names: &[Option<&'static str>]) -> Option<(String, Origin<'a>)> {
        names
            .iter()
            .flatten()
            .find_map(|name| (self.env)(name).map(|v| (v, Origin::Env(name))))
    }

    fn lookup_file(&self, names: &[Option<&'static str>]) -> Option<(String, Origin<'a>)> {
        let file: &'a FileProps = self.file;
        names.iter().flatten().find_map(|name| {
            file.values.get(*name).map(|v| {
                let origin = Origin::File {
                    key: name,
                    file: &file.name,
                };
                (v.clone(), origin)
            })
        })
    }

    /// A string field: taken verbatim.
    pub(super) fn string(&mut self, key: Key, default: &str) -> String {
        self.lookup(&key)
            .map_or_else(|| default.to_string(), |(value, _)| value)
    }

    /// A boolean field: `1`/`t`/`true` or `0`/`f`/`false` in any case; empty is false.
    pub(super) fn boolean(&mut self, key: Key, default: bool) -> Result<bool, ConfigError> {
        match self.lookup(&key) {
            Some((value, origin)) => bool_value(&key, &value, origin),
            None => Ok(default),
        }
    }

    /// An integer field of type `T`: see [`parse_int`].
    pub(super) fn int<T: ConfigInt>(&mut self, key: Key, default: T) -> Result<T, ConfigError> {
        match self.lookup(&key) {
            Some((value, origin)) => int_value(&key, &value, origin),
            None => Ok(default),
        }
    }

    /// A key whose value configures nothing: where it was set, if anywhere. The value is
    /// still parsed as `kind`, because the original refuses an unparsable value for it too.
    pub(super) fn unused(&mut self, key: Key, kind: ValueKind) -> Result<Option<String>, ConfigError> {
        let Some((value, origin)) = self.lookup(&key) else {
            return Ok(None);
        };
        match kind {
            ValueKind::Text => {}
            ValueKind::Bool => {
                bool_value(&key, &value, origin)?;
            }
            ValueKind::Int16 => {
                int_value::<i16>(&key, &value, origin)?;
            }
            ValueKind::Int64 => {
                int_value::<i64>(&key, &value, origin)?;
            }
        }
        Ok(Some(origin.to_string()))
    }

    /// A list field: comma-separated, elements trimmed, empty elements dropped.
    pub(super) fn list(&mut self, key: Key, default: &[&str]) -> Vec<String> {
        match self.lookup(&key) {
            Some((value, _)) => split_list(&value),
            None => default.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// File keys that no field consulted, in file order.
    pub(super) fn unknown_keys(&self) -> Vec<String> {
        self.file
            .order
            .iter()
            .filter(|key| !self.consulted.contains(key.as_str()))
            .cloned()
            .collect()
    }
}

/// How an unused key's value is spelled, so that it is checked as the original checks it.
#[derive(Debug, Clone, Copy)]
pub(super) enum ValueKind {
    /// Any text (also lists).
    Text,
    /// A boolean, see [`parse_bool`].
    Bool,
    /// A 16-bit integer, see [`parse_int`].
    Int16,
    /// A 64-bit integer, see [`parse_int`].
    Int64,
}

fn bool_value(key: &Key, value: &str, origin: Origin<'_>) -> Result<bool, ConfigError> {
    parse_bool(value).ok_or_else(|| {
        ConfigError::Load(format!(
            "Invalid value '{value}' for {} ({origin}): expected true/false, t/f or 1/0",
            key.name
        ))
    })
}

fn int_value<T: ConfigInt>(key: &Key, value: &str, origin: Origin<'_>) -> Result<T, ConfigError> {
    parse_int::<T>(value).map_err(|problem| {
        ConfigError::Load(format!(
            "Invalid value '{value}' for {} ({origin}): {problem}",
            key.name
        ))
    })
}

/// Parses a boolean; `None` for a spelling we do not accept (`yes`, `on`, …).
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Some(true),
        "" | "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

/// Splits a comma-separated list, trimming elements and dropping empty ones.
pub(super) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// The integer widths used by configuration fields.
pub(super) trait ConfigInt: Copy + TryFrom<i128> {
    /// Smallest value of the type.
    const MIN: i128;
    /// Largest value of the type.
    const MAX: i128;
}

macro_rules! config_int {
    ($($t:ty),*) => {$(
        impl ConfigInt for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
    )*};
}
config_int!(i16, i32, i64, u16, u32, u64);

/// Parses the leading decimal integer of `value` as the original does (leading whitespace
/// skipped, optional sign, trailing text ignored so `10s` is 10, empty is 0), but rejects
/// values outside `T`'s range instead of truncating them. The error says why.
pub(super) fn parse_int<T: ConfigInt>(value: &str) -> Result<T, String> {
    let text = value.trim_start();
    if text.is_empty() {
        return T::try_from(0).map_err(|_| "zero is not representable".to_string());
    }
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digit_count = digits.bytes().take_while(u8::is_ascii_digit).count();
    if digit_count == 0 {
        return Err("expected an integer".to_string());
    }
    let range = || format!("out of range, must be between {} and {}", T::MIN, T::MAX);
    let mut number: i128 = 0;
    for digit in digits.bytes().take(digit_count) {
        number = number
            .checked_mul(10)
            .and_then(|n| n.checked_add(i128::from(digit - b'0')))
            .ok_or_else(range)?;
    }
    if negative {
        number = -number;
    }
    if number < 0 && T::MIN == 0 {
        return Err("must not be negative".to_string());
    }
    if number < T::MIN || number > T::MAX {
        return Err(range());
    }
    T::try_from(number).map_err(|_| range())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn booleans_accept_original_spellings_and_reject_others() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["", "0", "f", "F", "false", "FaLsE"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "on", "no", "off", "2", " true"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_are_lenient_about_trailing_text_and_empty() {
        assert_eq!(parse_int::<i16>("10s"), Ok(10));
        assert_eq!(parse_int::<i16>("  42"), Ok(42));
        assert_eq!(parse_int::<i16>(""), Ok(0));
        assert_eq!(parse_int::<i64>("-5"), Ok(-5));
        assert_eq!(parse_int::<u16>("+8080"), Ok(8080));
    }

    #[test]
    fn integers_reject_missing_number_negative_unsigned_and_out_of_range() {
        assert!(parse_int::<i16>("abc").unwrap_err().contains("integer"));
        assert!(parse_int::<i16>("-").unwrap_err().contains("integer"));
        assert!(parse_int::<u16>("-1").unwrap_err().contains("negative"));
        assert!(parse_int::<u64>("-1").unwrap_err().contains("negative"));
        let err = parse_int::<u16>("70000").unwrap_err();
        assert!(err.contains("between 0 and 65535"), "{err}");
        assert!(parse_int::<i16>("40000").is_err());
        assert!(parse_int::<i16>("-40000").is_err());
        assert!(parse_int::<i64>("99999999999999999999999999999999999999999999").is_err());
        assert_eq!(parse_int::<u64>("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn lists_are_trimmed_and_empty_elements_dropped() {
        assert_eq!(split_list(".pem, .crt,,.cert,"), vec![".pem", ".crt", ".cert"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn error_names_key_and_origin() {
        let env: HashMap<&str, &str> = HashMap::from([("MQTT_USE_SSL", "yes")]);
        let lookup = |name: &str| env.get(name).map(|v| v.to_string());
        let file = FileProps::default();
        let mut sources = Sources::new(&lookup, &file);
        let err = sources
            .boolean(Key::new("MQTTUseSSL", "MQTT_USE_SSL"), true)
            .unwrap_err();
        assert_eq!(err.exit_code(), 99);
        let text = err.to_string();
        assert!(text.contains("MQTTUseSSL") && text.contains("'yes'"), "{text}");
        assert!(text.contains("environment variable MQTT_USE_SSL"), "{text}");
    }
}
