//! `UploadSources` (extension, ESS): the folders whose files the ESS turns into objects
//! for the CSS (`uploads`), a JSON array inline or in its own file, read once at start.
//! Everything a source says is checked here, so that a mistake stops the start with a
//! message naming the source and the field instead of surfacing at the first scan.

use crate::model::names::is_valid_name;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The object type of the requests a CSS sends to make nodes upload (`remote` trigger): the
/// request's `description` names the source; empty asks every source that allows it.
pub const UPLOAD_REQUEST_TYPE: &str = "edge-sync-upload-request";

/// How long a file must keep its size and modification time before it counts as complete,
/// when the source does not say.
const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
/// How often an `onChange` source looks at its folder, when it does not say.
const DEFAULT_SCAN: Duration = Duration::from_secs(10);

/// One folder whose matching files become objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    pub name: String,
    pub folder: PathBuf,
    pub patterns: Vec<String>,
    pub object_type: String,
    pub id_rule: String,
    pub destination_type: String,
    pub destination_id: String,
    pub settle: Duration,
    pub periodic: Option<Periodic>,
    pub on_change: Option<Duration>,
    pub explicit: bool,
    pub remote: bool,
    /// An RSA private key (PEM, PKCS#8 or PKCS#1) to sign the objects' data with; only its
    /// path is kept here, so the key never appears in the configuration's dump.
    pub signing_key: Option<PathBuf>,
}

/// `periodic`: every `interval`, only within `window` when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periodic {
    pub interval: Duration,
    pub window: Option<DailyWindow>,
}

/// A daily time window in UTC, minutes after midnight; `start > end` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    pub start: u32,
    pub end: u32,
}

impl DailyWindow {
    /// Reads `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("window {text:?} is not HH:MM-HH:MM"))?;
        Ok(Self {
            start: minutes(start.trim())?,
            end: minutes(end.trim())?,
        })
    }

    /// True when `unix_secs` falls in the window.
    pub fn contains(&self, unix_secs: i64) -> bool {
        let minute = u32::try_from(unix_secs.rem_euclid(86_400) / 60).unwrap_or(0);
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

fn minutes(text: &str) -> Result<u32, String> {
    let bad = || format!("time {text:?} is not HH:MM");
    let (hours, mins) = text.split_once(':').ok_or_else(bad)?;
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let mins: u32 = mins.parse().map_err(|_| bad())?;
    if hours > 23 || mins > 59 || text.len() != 5 {
        return Err(bad());
    }
    Ok(hours * 60 + mins)
}

/// A source as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSource {
    name: String,
    folder: String,
    patterns: Vec<String>,
    object_type: String,
    #[serde(default = "default_id_rule")]
    object_id: String,
    #[serde(default, rename = "destinationType")]
    destination_type: String,
    #[serde(default, rename = "destinationID")]
    destination_id: String,
    #[serde(default)]
    settle_seconds: Option<u64>,
    #[serde(default)]
    signing_key: Option<String>,
    triggers: RawTriggers,
}

fn default_id_rule() -> String {
    "{relpath}".to_string()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTriggers {
    periodic: Option<RawPeriodic>,
    on_change: Option<RawOnChange>,
    #[serde(default)]
    explicit: bool,
    #[serde(default)]
    remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPeriodic {
    interval_seconds: u64,
    window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOnChange {
    scan_seconds: Option<u64>,
}

/// Reads the sources `UploadSources` gives: inline JSON (a value starting with `[`) or the
/// path of a JSON file. Relative paths, of the file and of the folders in it, are taken
/// from `root`, the persistence root.
pub fn load(setting: &str, root: &Path) -> Result<Vec<UploadSource>, String> {
    if setting.trim_start().starts_with('[') {
        return parse(setting.as_bytes(), root);
    }
    let file = root.join(setting);
    let text = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    parse(&text, root).map_err(|e| format!("{}: {e}", file.display()))
}

/// Reads sources from JSON text.
pub fn parse(text: &[u8], root: &Path) -> Result<Vec<UploadSource>, String> {
    let raw: Vec<RawSource> = serde_json::from_slice(text).map_err(|e| format!("not a JSON array of sources: {e}"))?;
    let mut sources = Vec::with_capacity(raw.len());
    for source in raw {
        let name = source.name.clone();
        let checked = check(source, root).map_err(|e| format!("source {name:?}: {e}"))?;
        if sources.iter().any(|s: &UploadSource| s.name == checked.name) {
            return Err(format!("source {name:?} is named twice"));
        }
        sources.push(checked);
    }
    Ok(sources)
}

fn check(raw: RawSource, root: &Path) -> Result<UploadSource, String> {
    if !is_valid_name(&raw.name) {
        return Err("name must be letters, digits or | ! @ # $ ^ * - _ . ~".into());
    }
    if !is_valid_name(&raw.object_type) || raw.object_type == UPLOAD_REQUEST_TYPE {
        return Err(format!("objectType {:?} is not a usable object type", raw.object_type));
    }
    if raw.folder.is_empty() {
        return Err("folder is empty".into());
    }
    if raw.patterns.is_empty() || raw.patterns.iter().any(|p| p.is_empty()) {
        return Err("patterns must list at least one non-empty pattern".into());
    }
    check_id_rule(&raw.object_id)?;
    let settle = raw.settle_seconds.map_or(DEFAULT_SETTLE, Duration::from_secs);
    let (explicit, remote) = (raw.triggers.explicit, raw.triggers.remote);
    let periodic = match raw.triggers.periodic {
        Some(p) if p.interval_seconds == 0 => return Err("periodic intervalSeconds must be above 0".into()),
        Some(p) => Some(Periodic {
            interval: Duration::from_secs(p.interval_seconds),
            window: p.window.as_deref().map(DailyWindow::parse).transpose()?,
        }),
        None => None,
    };
    let on_change = match raw.triggers.on_change {
        Some(RawOnChange { scan_seconds: Some(0) }) => return Err("onChange scanSeconds must be above 0".into()),
        Some(o) => Some(o.scan_seconds.map_or(DEFAULT_SCAN, Duration::from_secs)),
        None => None,
    };
    if periodic.is_none() && on_change.is_none() && !explicit && !remote {
        return Err("no trigger: give periodic, onChange, explicit or remote".into());
    }
    let signing_key = raw.signing_key.as_deref().map(|key| root.join(key));
    if let Some(key) = &signing_key {
        read_signing_key(key)?;
    }
    Ok(UploadSource {
        name: raw.name,
        folder: root.join(&raw.folder),
        patterns: raw.patterns,
        object_type: raw.object_type,
        id_rule: raw.object_id,
        destination_type: raw.destination_type,
        destination_id: raw.destination_id,
        settle,
        periodic,
        on_change,
        explicit,
        remote,
        signing_key,
    })
}

/// Reads the RSA private key of `signingKey` (PEM, PKCS#8 or PKCS#1). Errors name the file,
/// never its contents.
pub fn read_signing_key(path: &Path) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(path).map_err(|e| format!("signingKey {}: {e}", path.display()))?;
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(&pem))
        .map_err(|_| {
            format!(
                "signingKey {}: not an RSA private key in PEM (PKCS#8 or PKCS#1)",
                path.display()
            )
        })
}

const ID_PLACEHOLDERS: &[&str] = &["{name}", "{relpath}", "{mtime}", "{source}"];

fn check_id_rule(rule: &str) -> Result<(), String> {
    let mut rest = rule;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("objectId {rule:?} has an unclosed {{"))?;
        let placeholder = &rest[open..open + close + 1];
        if !ID_PLACEHOLDERS.contains(&placeholder) {
            return Err(format!(
                "objectId {rule:?} uses {placeholder}; known are {}",
                ID_PLACEHOLDERS.join(" ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if !rule.contains("{name}") && !rule.contains("{relpath}") {
        return Err(format!("objectId {rule:?} names no file: use {{name}} or {{relpath}}"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sources of `json`, relative folders under `/root`.
    pub(crate) fn source(json: &str) -> Result<Vec<UploadSource>, String> {
        parse(json.as_bytes(), Path::new("/root"))
    }

    pub(crate) const MINIMAL: &str = r#"[{"name":"logs","folder":"in","patterns":["*.log"],"objectType":"log",
        "triggers":{"explicit":true}}]"#;

    #[test]
    fn a_minimal_source_gets_the_defaults() {
        let sources = source(MINIMAL).unwrap();
        assert_eq!(sources.len(), 1);
        let s = &sources[0];
        assert_eq!(s.folder, Path::new("/root/in"));
        assert_eq!(s.id_rule, "{relpath}");
        assert_eq!(s.settle, DEFAULT_SETTLE);
        assert!(s.explicit && !s.remote && s.periodic.is_none() && s.on_change.is_none());
    }

    #[test]
    fn every_trigger_is_read() {
        let s = &source(
            r#"[{"name":"a","folder":"/abs","patterns":["x"],"objectType":"t","objectId":"{name}-{mtime}",
            "settleSeconds":1,"triggers":{"periodic":{"intervalSeconds":60,"window":"22:00-02:30"},
            "onChange":{"scanSeconds":2},"explicit":true,"remote":true}}]"#,
        )
        .unwrap()[0];
        assert_eq!(s.folder, Path::new("/abs"));
        assert_eq!(s.settle, Duration::from_secs(1));
        let periodic = s.periodic.unwrap();
        assert_eq!(periodic.interval, Duration::from_secs(60));
        assert_eq!(periodic.window, Some(DailyWindow { start: 1320, end: 150 }));
        assert_eq!(s.on_change, Some(Duration::from_secs(2)));
        assert!(s.explicit && s.remote);
    }

    #[test]
    fn mistakes_name_the_source_and_the_field() {
        let cases = [
            (r#"{}"#, "JSON array"),
            (
                r#"[{"name":"a b","folder":"f","patterns":["*"],"objectType":"t","triggers":{"explicit":true}}]"#,
                "name",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":[],"objectType":"t","triggers":{"explicit":true}}]"#,
                "patterns",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","triggers":{}}]"#,
                "no trigger",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","objectId":"{mtime}","triggers":{"explicit":true}}]"#,
                "names no file",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","objectId":"{size}","triggers":{"explicit":true}}]"#,
                "{size}",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","triggers":{"periodic":{"intervalSeconds":0}}}]"#,
                "intervalSeconds",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","triggers":{"periodic":{"intervalSeconds":5,"window":"25:00-01:00"}}}]"#,
                "HH:MM",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"edge-sync-upload-request","triggers":{"explicit":true}}]"#,
                "objectType",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","triggers":{"explicit":true},"extra":1}]"#,
                "extra",
            ),
            (
                r#"[{"name":"a","folder":"f","patterns":["*"],"objectType":"t","signingKey":"absent.pem","triggers":{"explicit":true}}]"#,
                "signingKey /root/absent.pem",
            ),
        ];
        for (json, expected) in cases {
            let error = source(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let twice = format!("[{0},{0}]", &MINIMAL[1..MINIMAL.len() - 1]);
        assert!(source(&twice).unwrap_err().contains("named twice"));
    }

    #[test]
    fn windows_may_span_midnight() {
        let night = DailyWindow::parse("22:00-02:00").unwrap();
        let at = |h: i64, m: i64| 86_400 * 3 + h * 3600 + m * 60;
        assert!(night.contains(at(23, 0)) && night.contains(at(1, 59)));
        assert!(!night.contains(at(2, 0)) && !night.contains(at(12, 0)));
        let day = DailyWindow::parse("08:00-09:00").unwrap();
        assert!(day.contains(at(8, 30)) && !day.contains(at(9, 0)));
    }
}
