//! Tests of the whole configuration pipeline (file text + environment map → `Config`),
//! with shared helpers: `loading` covers defaults, precedence, value parsing and the
//! redacted `Debug`; `validation` every message of spec §5 that applies to us, derived
//! values and our storage mapping; `logging` the log destinations and log file limits;
//! `ignored` the keys without effect here. The real process environment is never read.

mod ignored;
mod loading;
mod logging;
mod props;
mod validation;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;

const ESS: &str = "NodeType ESS\nDestinationType edge\nDestinationId node1\nOrgId org1\n";

fn build(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let props = file::parse(file, "test.conf")?;
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |name: &str| env.get(name).cloned();
    Config::from_props(&props, &lookup, &|| Ok(PathBuf::from("/cwd")))
}

fn ok(file: &str, env: &[(&str, &str)]) -> Config {
    match build(file, env) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn invalid(file: &str, env: &[(&str, &str)]) -> String {
    match build(file, env) {
        Err(ConfigError::Invalid(message)) => message,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn load_error(file: &str, env: &[(&str, &str)]) -> String {
    match build(file, env) {
        Err(ConfigError::Load(message)) => message,
        other => panic!("expected a load error, got {other:?}"),
    }
}
